//! What a browser must not be able to do to a worker (the tokenless loopback default included): every request
//! body must be JSON (`Content-Type: application/json`, so a page's "simple" `text/plain` or form POST is
//! refused before it is parsed); a state-changing request from another origin (a browser's `Origin` or
//! `Sec-Fetch-Site`) is refused (CSRF); and on a loopback listener, or when `allowed_hosts` is set, the `Host`
//! must be a loopback name or an allowed one (a DNS-rebinding page reaches 127.0.0.1 under its own name).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN, TRANSFER_ENCODING};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::RestError;

/// The checks of one listener.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    /// Whether `Host` is checked: the listener is on a loopback address, or names are configured.
    check_host: bool,
    /// Host names allowed besides loopback ones (lowercase, without port).
    allowed_hosts: Vec<String>,
}

impl Guard {
    /// For a listener on `loopback` (or not) with extra `allowed_hosts`.
    pub(crate) fn new(loopback: bool, allowed_hosts: &[String]) -> Guard {
        Guard {
            check_host: loopback || !allowed_hosts.is_empty(),
            allowed_hosts: allowed_hosts
                .iter()
                .map(|h| host_name(h).to_ascii_lowercase())
                .collect(),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        let lower = name.to_ascii_lowercase();
        lower == "localhost"
            || lower.ends_with(".localhost")
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
            || self.allowed_hosts.contains(&lower)
    }

    fn check(&self, request: &Request) -> Result<(), RestError> {
        let headers = request.headers();
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        if self.check_host
            && let Some(host) = host
            && !self.host_allowed(host)
        {
            return Err(RestError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "Host {host:?} is not allowed: use a loopback name (localhost, 127.0.0.1) or add it to the worker's [rest] allowed_hosts"
                ),
            ));
        }
        let method = request.method();
        let safe = method == Method::GET || method == Method::HEAD || method == Method::OPTIONS;
        if !safe {
            check_origin(headers, host)?;
            check_content_type(headers, empty_body(headers))?;
        }
        Ok(())
    }
}

/// Whether the request has no body: no `Transfer-Encoding`, and no or a zero `Content-Length`.
fn empty_body(headers: &HeaderMap) -> bool {
    !headers.contains_key(TRANSFER_ENCODING)
        && headers
            .get(CONTENT_LENGTH)
            .is_none_or(|v| v.to_str().is_ok_and(|n| n.trim() == "0"))
}

/// `host[:port]` without the port (an IPv6 literal keeps its brackets).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// A state-changing request from a browser page of another origin is refused: its `Origin` must be this
/// worker's own (`http(s)://<Host>`), and `Sec-Fetch-Site` must not say cross-site. Clients that are not
/// browsers send neither.
fn check_origin(headers: &HeaderMap, host: Option<&str>) -> Result<(), RestError> {
    let refuse = |what: String| {
        Err(RestError::new(
            StatusCode::FORBIDDEN,
            format!(
                "Cross-origin requests are refused ({what}): the REST API is not for web pages of other origins"
            ),
        ))
    };
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let same = host.is_some_and(|h| {
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(|o| o.eq_ignore_ascii_case(h))
        });
        if !same {
            return refuse(format!("origin {origin:?}"));
        }
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && (site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site"))
    {
        return refuse(format!("Sec-Fetch-Site {site}"));
    }
    Ok(())
}

/// A body must be declared JSON; a content type other than JSON is refused even without a body (a form).
fn check_content_type(headers: &HeaderMap, empty_body: bool) -> Result<(), RestError> {
    let unsupported = |found: &str| {
        Err(RestError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "HTTP 415 Unsupported Media Type: request bodies must be sent as Content-Type: application/json ({found})"
            ),
        ))
    };
    match headers.get(CONTENT_TYPE) {
        None if empty_body => Ok(()),
        None => unsupported("no Content-Type"),
        Some(v) => {
            let v = v.to_str().unwrap_or("");
            let essence = v.split(';').next().unwrap_or("").trim();
            if essence.eq_ignore_ascii_case("application/json") {
                Ok(())
            } else {
                unsupported(&format!("found {v:?}"))
            }
        }
    }
}

/// The middleware.
pub(crate) async fn guard(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    match guard.check(&request) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_loopback_names() {
        let g = Guard::new(true, &["Connect.Internal:8443".to_owned()]);
        for ok in [
            "localhost",
            "LOCALHOST:8083",
            "a.localhost:1",
            "127.0.0.1",
            "127.3.4.5:8083",
            "[::1]:8083",
            "[::1]",
            "connect.internal",
            "connect.internal:1",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8083",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.0.0.1:8083",
            "[::2]:8083",
        ] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
    }
}
