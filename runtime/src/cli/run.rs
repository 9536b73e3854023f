//! `ursa run`, `ursa validate` and `ursa connectors describe`: the connector runtime's commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::connect::active_topics::ActiveTopics;
use crate::connect::api::{ApiError, ConnectApi, FlatConfig};
use crate::connect::config::connector::common_keys;
use crate::connect::config::worker::{Mode, WorkerConfig};
use crate::connect::config::{Key, Secret, flatten};
use crate::connect::connector::Env;
use crate::connect::rest::{RestConfig, RestServer};
use crate::connect::sinks;
use crate::connect::telemetry::{Telemetry, init_logging};
use crate::connect::worker::Worker;

/// Arguments of `ursa run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The worker config (TOML).
    worker: PathBuf,
    /// Connector configs (TOML), started in standalone mode.
    connectors: Vec<PathBuf>,
}

/// Arguments of `ursa validate`.
#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The worker config (TOML).
    worker: PathBuf,
    /// Connector configs (TOML).
    connectors: Vec<PathBuf>,
    /// Also check that Kafka, the registry and each sink are reachable.
    #[arg(long)]
    connect: bool,
}

/// Connector plugin commands.
#[derive(clap::Subcommand)]
pub enum ConnectorsCommand {
    /// Print every config key of a connector type (and the common keys), with types, defaults and docs.
    Describe {
        /// The connector type, e.g. `file`.
        plugin: String,
    },
    /// List the connector types.
    List,
}

/// Reads a connector TOML file into Kafka Connect's flat form.
pub fn load_connector(path: &Path) -> Result<FlatConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: toml::Value = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let json = serde_json::to_value(doc).map_err(|e| format!("{}: {e}", path.display()))?;
    flatten(&json).map_err(|e| format!("{}: {e}", path.display()))
}

fn kafka_config(w: &WorkerConfig) -> Result<ClientConfig, String> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &w.kafka.bootstrap_servers);
    for (k, v) in &w.kafka.properties {
        let mut s = Secret::parse(v);
        s.resolve()
            .map_err(|e| format!("kafka.properties.{k}: {e}"))?;
        c.set(k, s.expose().unwrap_or_default());
    }
    Ok(c)
}

fn registry(w: &WorkerConfig) -> Result<Option<Arc<ursa_registry::RegistryClient>>, String> {
    let Some(r) = &w.registry else {
        return Ok(None);
    };
    let secret = |v: &Option<String>, what: &str| -> Result<Option<String>, String> {
        v.as_ref()
            .map(|v| {
                let mut s = Secret::parse(v);
                s.resolve().map_err(|e| format!("registry.{what}: {e}"))?;
                Ok(s.expose().unwrap_or_default().to_owned())
            })
            .transpose()
    };
    let mut c = ursa_registry::ClientConfig::new(&r.url);
    c.timeout = r.timeout;
    c.ca_cert = r.ca_cert.clone();
    c.auth = match (
        &r.user,
        secret(&r.password, "password")?,
        secret(&r.token, "token")?,
    ) {
        (Some(user), password, None) => ursa_registry::Auth::Basic {
            user: user.clone(),
            password: password.unwrap_or_default(),
        },
        (None, None, Some(token)) => ursa_registry::Auth::Bearer { token },
        (None, None, None) => ursa_registry::Auth::None,
        _ => return Err("registry: use user/password or token, not both".into()),
    };
    ursa_registry::RegistryClient::new(c)
        .map(|c| Some(Arc::new(c)))
        .map_err(|e| format!("registry: {e}"))
}

/// A loaded worker config, the worker, and its connector configs by file.
type Prepared = (WorkerConfig, Worker, Vec<(PathBuf, FlatConfig)>);

/// Builds a worker and its configs, or the list of problems (exit 2).
fn prepare(worker: &Path, connectors: &[PathBuf]) -> Result<Prepared, Vec<String>> {
    let w = WorkerConfig::load(worker).map_err(|e| vec![e])?;
    let kafka = kafka_config(&w).map_err(|e| vec![e])?;
    let registry = registry(&w).map_err(|e| vec![e])?;
    let telemetry = Telemetry::default();
    // Configured, else `<hostname>:<port>` (`#<pid>` added for an OS-chosen port).
    let worker_id = w.worker_id();
    let env = Env {
        kafka,
        registry,
        telemetry,
        drain_deadline: w.drain_deadline,
        worker_id,
        active_topics: Arc::new(ActiveTopics::with_reset(
            w.topic_tracking.enable,
            w.topic_tracking.allow_reset,
        )),
    };
    let worker = Worker::new(env);
    let mut problems = Vec::new();
    let mut configs = Vec::new();
    for path in connectors {
        match load_connector(path) {
            Ok(flat) => match worker.parse(&flat) {
                Ok(_) => configs.push((path.clone(), flat)),
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            },
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        Ok((w, worker, configs))
    } else {
        Err(problems)
    }
}

/// `ursa run`.
pub async fn run(args: RunArgs) -> ExitCode {
    let (w, worker, configs) = match prepare(&args.worker, &args.connectors) {
        Ok(x) => x,
        Err(problems) => {
            for p in problems {
                eprintln!("error: {p}");
            }
            return ExitCode::from(2);
        }
    };
    init_logging(w.log.format, w.log.level.as_deref());
    let worker = Arc::new(worker);
    let pending = configs;
    let token = match &w.rest.token {
        Some(t) => {
            let mut s = Secret::parse(t);
            if let Err(e) = s.resolve() {
                eprintln!("error: rest.token: {e}");
                return ExitCode::from(2);
            }
            s.expose().map(str::to_owned)
        }
        None => None,
    };
    let worker: Arc<Worker> = match (&w.mode, &w.distributed) {
        (Mode::Distributed, Some(d)) => match Worker::distributed(
            worker.into_env(),
            sinks::builtin(),
            &d.config_topic,
            &d.status_topic,
            d.replication_factor,
        )
        .await
        {
            Ok(dw) => dw,
            Err(e) => {
                eprintln!("error: joining worker group {}: {e}", d.group_id);
                return ExitCode::from(2);
            }
        },
        _ => worker,
    };
    // Standalone: the files are the connectors. Distributed: the config topic is; a file creates its
    // connector when the topic does not have it, and never reverts what REST changed since.
    let distributed = w.mode == Mode::Distributed;
    for (path, flat) in pending {
        let name = flat.get("name").cloned().unwrap_or_default();
        match worker.put_connector(name.clone(), flat, distributed).await {
            Ok(_) => {}
            Err(ApiError::Conflict(_)) if distributed => {
                tracing::info!(connector = %name, file = %path.display(), "connector already in the config topic: kept as it is there");
            }
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    let api: Arc<dyn ConnectApi> = worker.clone();
    let server = match RestServer::bind(
        RestConfig {
            listen: w.rest.listen,
            token,
            references: w.rest.references(),
            allowed_hosts: w.rest.allowed_hosts.clone(),
        },
        api,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", w.rest.listen);
            return ExitCode::from(2);
        }
    };
    tracing::info!(url = %server.url(), "ursa worker started");
    println!("ursa worker listening on {}", server.url());
    let rest = server.spawn();
    super::shutdown_signal().await;
    tracing::info!("shutting down: draining connectors (a second signal exits at once)");
    // A second signal exits immediately.
    tokio::spawn(async {
        super::shutdown_signal().await;
        std::process::exit(130);
    });
    worker.shutdown().await;
    let _ = rest.stop().await;
    ExitCode::SUCCESS
}

/// `ursa validate`.
pub async fn validate(args: ValidateArgs) -> ExitCode {
    let (w, worker, configs) = match prepare(&args.worker, &args.connectors) {
        Ok(x) => x,
        Err(problems) => {
            for p in problems {
                eprintln!("error: {p}");
            }
            return ExitCode::from(2);
        }
    };
    println!(
        "configs are valid: {} and {} connector(s)",
        args.worker.display(),
        configs.len()
    );
    if !args.connect {
        return ExitCode::SUCCESS;
    }
    let mut failed = false;
    let consumer: Result<BaseConsumer, _> = kafka_config(&w).unwrap_or_default().create();
    match consumer
        .map(|c| tokio::task::block_in_place(|| c.fetch_metadata(None, Duration::from_secs(10))))
    {
        Ok(Ok(md)) => println!(
            "ok: Kafka at {} ({} topics)",
            w.kafka.bootstrap_servers,
            md.topics().len()
        ),
        Ok(Err(e)) | Err(e) => {
            failed = true;
            eprintln!("error: Kafka at {}: {e}", w.kafka.bootstrap_servers);
        }
    }
    if let Ok(Some(r)) = registry(&w) {
        match r.subjects().await {
            Ok(s) => println!("ok: registry at {} ({} subjects)", r.url(), s.len()),
            Err(e) => {
                failed = true;
                eprintln!("error: registry at {}: {e}", r.url());
            }
        }
    }
    for (path, flat) in &configs {
        match worker.parse(flat) {
            Ok(c) => match c
                .plugin
                .build(&c.parsed, ursa_connect::SinkContext::detached(&c.name))
            {
                Ok(sink) => match sink.health().await {
                    Ok(()) => println!(
                        "ok: {} ({} sink reachable)",
                        path.display(),
                        c.plugin.name()
                    ),
                    Err(e) => {
                        failed = true;
                        eprintln!("error: {}: sink health check: {e}", path.display());
                    }
                },
                Err(e) => {
                    failed = true;
                    eprintln!("error: {}: building the sink: {e}", path.display());
                }
            },
            Err(e) => {
                failed = true;
                eprintln!("error: {}: {e}", path.display());
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_keys(title: &str, keys: &[Key]) {
    println!("{title}");
    for k in keys {
        let default = match k.default {
            None => "required".to_owned(),
            Some("") => "optional".to_owned(),
            Some(d) => format!("default {d}"),
        };
        println!(
            "  {:<48} {:<10} {default}\n      {}",
            k.name,
            format!("{:?}", k.kind)
                .split('(')
                .next()
                .unwrap_or("")
                .to_uppercase(),
            k.documentation
        );
    }
}

/// `ursa connectors …`.
pub fn connectors(cmd: ConnectorsCommand) -> ExitCode {
    match cmd {
        ConnectorsCommand::List => {
            for p in sinks::builtin() {
                println!("{:<10} sink  {}", p.name(), p.description());
            }
            ExitCode::SUCCESS
        }
        ConnectorsCommand::Describe { plugin } => match sinks::find(&plugin) {
            Some(p) => {
                println!("{} — {}\n", p.name(), p.description());
                print_keys(&format!("{} keys:", p.name()), &p.keys());
                println!();
                print_keys("common keys (every connector):", &common_keys());
                ExitCode::SUCCESS
            }
            None => {
                let names: Vec<&str> = sinks::builtin().iter().map(|p| p.name()).collect();
                eprintln!(
                    "error: unknown connector type {plugin:?}; available: {}",
                    names.join(", ")
                );
                ExitCode::from(2)
            }
        },
    }
}
