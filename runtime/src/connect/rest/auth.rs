//! Optional bearer-token auth: with a token configured, every request except `GET /health` must carry
//! `Authorization: Bearer <token>`, compared in constant time. Neither the expected nor the offered token is
//! ever logged.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::RestError;

/// The middleware: `token` is `None` when auth is off.
pub(crate) async fn require_token(
    State(token): State<Option<Arc<str>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return next.run(request).await;
    };
    if is_open(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let offered = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| bearer(v.as_bytes()));
    match offered {
        Some(offered) if constant_time_eq(offered, token.as_bytes()) => next.run(request).await,
        Some(_) => challenge("Invalid bearer token"),
        None => challenge("Missing bearer token: send 'Authorization: Bearer <token>'"),
    }
}

/// `GET /health` (and its `HEAD`) stays reachable for probes.
fn is_open(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD) && path == "/health"
}

/// The credentials of a `Bearer` authorization (the scheme is case-insensitive, RFC 7235).
fn bearer(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = header.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"Bearer") {
        return None;
    }
    let credentials = rest.strip_prefix(b" ")?.trim_ascii();
    (!credentials.is_empty()).then_some(credentials)
}

fn challenge(message: &str) -> Response {
    let mut response = RestError::unauthorized(message).into_response();
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Compares `offered` with `expected` in time that depends only on `expected`'s length, never on where they
/// differ nor on `offered`'s length.
fn constant_time_eq(offered: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(offered.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        let o = offered.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(o ^ e);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret1", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }

    #[test]
    fn parses_bearer_credentials() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearerabc"), None);
    }
}
