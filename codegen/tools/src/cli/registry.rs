//! A registry client from the command-line options, and running async registry calls from sync commands.

use ursa_registry::{Auth, ClientConfig, ClientError, RegistryClient};

use crate::ToolError;
use crate::cli::RegistryArgs;

/// Builds the client; a bad option (e.g. an unreadable CA file) is bad input.
pub(crate) fn client(url: &str, args: &RegistryArgs) -> Result<RegistryClient, ToolError> {
    let auth = match (
        &args.registry_user,
        &args.registry_password,
        &args.registry_token,
    ) {
        (Some(user), password, None) => Auth::Basic {
            user: user.clone(),
            password: password.clone().unwrap_or_default(),
        },
        (None, None, Some(token)) => Auth::Bearer {
            token: token.clone(),
        },
        (None, None, None) => Auth::None,
        _ => {
            return Err(ToolError::Usage(
                "use either --registry-user/--registry-password or --registry-token, not both"
                    .into(),
            ));
        }
    };
    let mut config = ClientConfig::new(url);
    config.auth = auth;
    config.ca_cert = args.registry_ca.clone();
    config.timeout = args.registry_timeout;
    RegistryClient::new(config).map_err(|e| ToolError::Usage(format!("registry {url}: {e}")))
}

/// Runs a future on a runtime of its own (the schema commands are synchronous).
pub(crate) fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, ToolError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ToolError::Usage(format!("cannot start the async runtime: {e}")))?;
    Ok(rt.block_on(f))
}

/// Errors that mean the registry cannot be used at all (bad input, exit 2) rather than a rejected change.
pub(crate) fn is_unusable(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Connect { .. }
            | ClientError::Timeout { .. }
            | ClientError::Transport { .. }
            | ClientError::Unauthorized { .. }
            | ClientError::Protocol { .. }
            | ClientError::Config(_)
    )
}
