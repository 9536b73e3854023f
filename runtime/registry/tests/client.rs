//! The registry client: against the dev registry, and against tiny local servers that fail on purpose.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use common::{start, user_incompatible, user_v1, user_v2};
use serde_json::json;
use tokio::net::TcpListener;
use ursa_registry::{
    Auth, ClientConfig, ClientError, CompatibilityLevel, Reference, RegistryClient, RetryPolicy,
    VersionId,
};

fn fast_retries(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
    }
}

fn client(url: &str) -> RegistryClient {
    RegistryClient::new(ClientConfig {
        retries: fast_retries(2),
        ..ClientConfig::new(url)
    })
    .unwrap()
}

/// Serves `app` on a random local port.
async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn every_method_against_the_dev_registry() {
    let server = start().await;
    let c = client(&server.url());
    let v1 = user_v1().to_string();
    let v2 = user_v2().to_string();

    assert_eq!(c.subjects().await.unwrap(), Vec::<String>::new());
    assert_eq!(c.lookup("users-value", &v1, &[]).await.unwrap(), None);
    let id1 = c.register("users-value", &v1, &[]).await.unwrap();
    assert_eq!(c.register("users-value", &v1, &[]).await.unwrap(), id1);
    assert_eq!(
        c.lookup("users-value", &v1, &[]).await.unwrap(),
        Some((id1, 1))
    );
    assert_eq!(c.lookup("users-value", &v2, &[]).await.unwrap(), None);

    let (ok, messages) = c
        .test_compatibility("users-value", Some(VersionId::Latest), &v2, &[], true)
        .await
        .unwrap();
    assert!(ok && messages.is_empty());
    let (ok, _) = c
        .test_compatibility("users-value", None, &v2, &[], false)
        .await
        .unwrap();
    assert!(ok);
    let id2 = c.register("users-value", &v2, &[]).await.unwrap();
    assert_eq!(c.versions("users-value").await.unwrap(), vec![1, 2]);
    let latest = c.version("users-value", VersionId::Latest).await.unwrap();
    assert_eq!((latest.version, latest.id), (2, id2));
    let first = c.version("users-value", 1).await.unwrap();
    assert_eq!(first.id, id1);
    assert_eq!(c.subjects().await.unwrap(), vec!["users-value".to_owned()]);

    assert_eq!(
        c.get_config(None).await.unwrap(),
        CompatibilityLevel::Backward
    );
    assert_eq!(
        c.set_config(Some("users-value"), CompatibilityLevel::FullTransitive)
            .await
            .unwrap(),
        CompatibilityLevel::FullTransitive
    );
    assert_eq!(
        c.get_config(Some("users-value")).await.unwrap(),
        CompatibilityLevel::FullTransitive
    );
    assert_eq!(
        c.get_config(Some("elsewhere")).await.unwrap(),
        CompatibilityLevel::Backward
    );
    c.set_config(None, CompatibilityLevel::Forward)
        .await
        .unwrap();
    assert_eq!(
        c.get_config(None).await.unwrap(),
        CompatibilityLevel::Forward
    );

    // References.
    let address = json!({"type": "record", "name": "Address", "namespace": "com.acme",
                         "fields": [{"name": "street", "type": "string"}]});
    let customer = json!({"type": "record", "name": "Customer", "namespace": "com.acme",
                          "fields": [{"name": "address", "type": "com.acme.Address"}]});
    c.register("address", &address.to_string(), &[])
        .await
        .unwrap();
    let refs = [Reference {
        name: "com.acme.Address".into(),
        subject: "address".into(),
        version: 1,
    }];
    let cid = c
        .register("customer", &customer.to_string(), &refs)
        .await
        .unwrap();
    let info = c.schema_info_by_id(cid).await.unwrap();
    assert_eq!(info.references, refs);

    // Typed errors.
    match c.version("users-value", 9).await {
        Err(ClientError::VersionNotFound { .. }) => {}
        other => panic!("{other:?}"),
    }
    match c.versions("nope").await {
        Err(e @ ClientError::SubjectNotFound { .. }) => assert_eq!(e.error_code(), Some(40401)),
        other => panic!("{other:?}"),
    }
    match c.register("bad", "{\"type\": \"nope\"}", &[]).await {
        Err(e @ ClientError::InvalidSchema { .. }) => assert!(!e.is_retriable()),
        other => panic!("{other:?}"),
    }
    match c.schema_by_id(4242).await {
        Err(ClientError::SchemaNotFound { .. }) => {}
        other => panic!("{other:?}"),
    }
    {
        c.set_config(Some("users-value"), CompatibilityLevel::Backward)
            .await
            .unwrap();
        let bad = user_incompatible().to_string();
        let (ok, messages) = c
            .test_compatibility("users-value", Some(VersionId::Latest), &bad, &[], true)
            .await
            .unwrap();
        assert!(!ok && !messages.is_empty());
        match c.register("users-value", &bad, &[]).await {
            Err(ClientError::Incompatible { message }) => {
                assert!(message.contains("incompatible"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    // Deleting.
    assert_eq!(c.delete_subject("customer", false).await.unwrap(), vec![1]);
    assert_eq!(c.delete_subject("customer", true).await.unwrap(), vec![1]);

    // Schemas by id are cached: they still come back once the registry is gone.
    let text = c.schema_by_id(id1).await.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        user_v1()
    );
    server.stop().await.unwrap();
    assert_eq!(c.schema_by_id(id1).await.unwrap(), text);
    match c.schema_by_id(id2).await {
        Err(e @ ClientError::Connect { .. }) => assert!(e.is_retriable()),
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[tokio::test]
async fn retries_transient_failures() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&hits);
    let app = Router::new().route(
        "/schemas/ids/{id}",
        get(move || {
            let h = Arc::clone(&h);
            async move {
                if h.fetch_add(1, Ordering::SeqCst) < 2 {
                    (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response()
                } else {
                    axum::Json(json!({"schema": "\"string\""})).into_response()
                }
            }
        }),
    );
    let addr = serve(app).await;
    let url = format!("http://{addr}");

    let c = RegistryClient::new(ClientConfig {
        retries: fast_retries(3),
        ..ClientConfig::new(&url)
    })
    .unwrap();
    assert_eq!(&*c.schema_by_id(1).await.unwrap(), "\"string\"");
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // With one retry only, two 503s are too many.
    hits.store(0, Ordering::SeqCst);
    let c = RegistryClient::new(ClientConfig {
        retries: fast_retries(1),
        ..ClientConfig::new(&url)
    })
    .unwrap();
    match c.schema_by_id(1).await {
        Err(e @ ClientError::Unavailable { status: 503, .. }) => assert!(e.is_retriable()),
        other => panic!("{other:?}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn does_not_retry_client_errors_and_honours_429() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&hits);
    let app = Router::new()
        .route(
            "/subjects",
            get(move || {
                let h = Arc::clone(&h);
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        axum::Json(json!({"error_code": 42205, "message": "read-only"})),
                    )
                }
            }),
        )
        .route(
            "/schemas/ids/{id}",
            get(|| async {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "0")],
                    axum::Json(json!({"error_code": 429, "message": "slow down"})),
                )
            }),
        );
    let addr = serve(app).await;
    let c = client(&format!("http://{addr}"));
    match c.subjects().await {
        Err(e @ ClientError::Registry { code: 42205, .. }) => assert!(!e.is_retriable()),
        other => panic!("{other:?}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    match c.schema_by_id(1).await {
        Err(ClientError::Unavailable { status: 429, .. }) => {}
        other => panic!("{other:?}"),
    }
}

async fn check_auth(headers: HeaderMap) -> axum::response::Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        accept.contains("application/vnd.schemaregistry.v1+json"),
        "{accept}"
    );
    match auth {
        // base64("user:pa ss") and a bearer token.
        "Basic dXNlcjpwYSBzcw==" => axum::Json(json!(["basic"])).into_response(),
        "Bearer tok-123" => axum::Json(json!(["bearer"])).into_response(),
        _ => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error_code": 401, "message": "Unauthorized"})),
        )
            .into_response(),
    }
}

#[tokio::test]
async fn sends_auth_headers() {
    let addr = serve(Router::new().route("/subjects", get(check_auth))).await;
    let url = format!("http://{addr}");
    let with = |auth: Auth| {
        RegistryClient::new(ClientConfig {
            auth,
            ..ClientConfig::new(&url)
        })
        .unwrap()
    };
    let basic = with(Auth::Basic {
        user: "user".into(),
        password: "pa ss".into(),
    });
    assert_eq!(basic.subjects().await.unwrap(), vec!["basic".to_owned()]);
    let bearer = with(Auth::Bearer {
        token: "tok-123".into(),
    });
    assert_eq!(bearer.subjects().await.unwrap(), vec!["bearer".to_owned()]);
    // Credentials in the URL are Basic auth, and never shown.
    let in_url =
        RegistryClient::new(ClientConfig::new(format!("http://user:pa%20ss@{addr}"))).unwrap();
    assert!(!format!("{in_url:?}").contains("pa%20ss"));
    assert!(!in_url.url().contains("pa"));
    assert_eq!(in_url.subjects().await.unwrap(), vec!["basic".to_owned()]);

    match with(Auth::None).subjects().await {
        Err(e @ ClientError::Unauthorized { status: 401, .. }) => {
            assert!(!e.is_retriable());
            assert!(e.to_string().contains("credentials"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let wrong = with(Auth::Basic {
        user: "user".into(),
        password: "wrong".into(),
    });
    assert!(matches!(
        wrong.subjects().await,
        Err(ClientError::Unauthorized { .. })
    ));
    let debug = format!("{wrong:?}");
    assert!(!debug.contains("wrong"), "{debug}");
}

#[tokio::test]
async fn garbage_bodies_are_protocol_errors() {
    let app = Router::new()
        .route(
            "/subjects",
            get(|| async { "<html><body>Welcome to nginx!</body></html>" }),
        )
        .route(
            "/subjects/{s}/versions",
            get(|| async { (StatusCode::BAD_REQUEST, "<html>bad gateway config</html>") }),
        )
        .route(
            "/schemas/ids/{id}",
            get(|| async { axum::Json(json!({"nope": 1})) }),
        );
    let addr = serve(app).await;
    let c = client(&format!("http://{addr}"));
    match c.subjects().await {
        Err(e @ ClientError::Protocol { status: 200, .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("HTTP 200") && text.contains("Welcome to nginx"),
                "{text}"
            );
            assert!(!e.is_retriable());
        }
        other => panic!("{other:?}"),
    }
    match c.versions("x").await {
        Err(e @ ClientError::Protocol { status: 400, .. }) => {
            assert!(e.to_string().contains("bad gateway config"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.schema_by_id(1).await,
        Err(ClientError::Protocol { status: 200, .. })
    ));
}

#[tokio::test]
async fn times_out() {
    let app = Router::new().route(
        "/subjects",
        get(|| async {
            std::future::pending::<()>().await;
            ""
        }),
    );
    let addr = serve(app).await;
    let c = RegistryClient::new(ClientConfig {
        timeout: Duration::from_millis(200),
        retries: RetryPolicy::none(),
        ..ClientConfig::new(format!("http://{addr}"))
    })
    .unwrap();
    match c.subjects().await {
        Err(e @ ClientError::Timeout { .. }) => assert!(e.is_retriable()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn configuration_errors() {
    assert!(matches!(
        RegistryClient::new(ClientConfig::new("not a url")),
        Err(ClientError::Config(_))
    ));
    assert!(matches!(
        RegistryClient::new(ClientConfig::new("ftp://host")),
        Err(ClientError::Config(_))
    ));
    let missing = RegistryClient::new(ClientConfig {
        ca_cert: Some("/definitely/not/here.pem".into()),
        ..ClientConfig::new("https://localhost:8081")
    });
    match missing {
        Err(ClientError::Config(m)) => assert!(m.contains("here.pem"), "{m}"),
        other => panic!("{other:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "no certificates here").unwrap();
    assert!(matches!(
        RegistryClient::new(ClientConfig {
            ca_cert: Some(not_pem),
            ..ClientConfig::new("https://localhost:8081")
        }),
        Err(ClientError::Config(_))
    ));
    let ca = dir.path().join("ca-ok.pem");
    std::fs::write(&ca, TEST_CA_PEM).unwrap();
    RegistryClient::new(ClientConfig {
        ca_cert: Some(ca),
        ..ClientConfig::new("https://localhost:8081")
    })
    .expect("a PEM CA certificate is accepted");
}

/// A self-signed CA certificate (no key kept), to check PEM loading.
const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBhjCCASugAwIBAgIUbNlbSW7v4aasRodGGTQq/ZbwP4wwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMdXJzYS10ZXN0LWNhMCAXDTI2MTEyNjIxNTAyNVoYDzIxMjYx
MTAyMjE1MDI1WjAXMRUwEwYDVQQDDAx1cnNhLXRlc3QtY2EwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAATGGIubh8hVDbFm4myhrUJtHPFlOm7Epog3SCLM59YiQsul
mZLHASYzgDO4jkMxPlDBuScQsT+840rIFG/qPEm1o1MwUTAdBgNVHQ4EFgQUBDRN
9lrNTO+c2q2sQr20CpllLL4wHwYDVR0jBBgwFoAUBDRN9lrNTO+c2q2sQr20Cpll
LL4wDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEAtv5DUJDMUKxw
AqD1AiZ3oAOQ3IUYGyk5D9LGdf0r+dcCIQDtM04kIZd2kCxSFBRMUBxx0Dk9IUtB
EH8/XCfnOWpQkA==
-----END CERTIFICATE-----
";
