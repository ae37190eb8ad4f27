//! Access: bearer-token auth, TLS with the generated CA (HTTP/1.1 and HTTP/2 via ALPN), and the
//! emitted kubeconfig.

use crate::common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kazan_apiserver::ApiServer;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;

#[tokio::test]
async fn token_auth_answers_401_status_without_the_right_token() -> TestResult {
    let server = ApiServer::builder().token("s3cret").admin(true).start().await?;
    let none = get(server.addr(), "/api/v1/namespaces").await?;
    assert_eq!(none.status, 401);
    assert_eq!(
        none.json()?,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401})
    );
    let wrong = request(
        server.addr(),
        "GET",
        "/api/v1/namespaces",
        &[("Authorization", "Bearer nope")],
        None,
    )
    .await?;
    assert_eq!(wrong.status, 401);
    let admin = request(server.addr(), "GET", "/_kazan/stats", &[], None).await?;
    assert_eq!(admin.status, 401, "the admin API is protected too");
    // Python sends the header in lower case; the scheme is case-insensitive.
    let right = request(
        server.addr(),
        "GET",
        "/api/v1/namespaces",
        &[("authorization", "bearer s3cret")],
        None,
    )
    .await?;
    assert_eq!(right.status, 200);
    assert!(server.kubeconfig().contains("token: \"s3cret\""));
    assert!(
        !format!("{server:?}").contains("s3cret"),
        "the token never appears in Debug output"
    );
    Ok(())
}

fn tls_connector(ca_pem: &str, alpn: &[&[u8]]) -> TestResult<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes())?)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[tokio::test]
async fn tls_clients_trusting_the_emitted_ca_connect_and_multiplex_watches_over_h2() -> TestResult {
    let server = ApiServer::builder().tls(true).token("t").start().await?;
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let ca = server.ca_pem().ok_or("no CA")?;
    let kubeconfig = server.kubeconfig();
    assert!(kubeconfig.contains("certificate-authority-data: "));
    assert!(kubeconfig.contains(&format!("server: {}", server.url())));
    server.create(configmap("default", "a", json!({})))?;

    let connector = tls_connector(&ca, &[b"h2", b"http/1.1"])?;
    let tcp = TcpStream::connect(server.addr()).await?;
    let tls = connector.connect(ServerName::try_from("localhost")?, tcp).await?;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
    tokio::spawn(connection);

    // Two watches on one HTTP/2 connection.
    let mut bodies = Vec::new();
    for path in [
        "/api/v1/configmaps?watch=1",
        "/api/v1/namespaces/default/configmaps?watch=1",
    ] {
        let request = http::Request::get(format!("{}{path}", server.url()))
            .header("authorization", "Bearer t")
            .body(Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers().get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        bodies.push(response.into_body());
    }
    assert!(server.wait_for_watches("configmaps", 2, WAIT).await);
    server.create(configmap("default", "b", json!({})))?;
    for mut body in bodies {
        let mut text = Vec::new();
        while text.iter().filter(|b| **b == b'\n').count() < 2 {
            let frame = tokio::time::timeout(WAIT, body.frame())
                .await?
                .ok_or("stream ended")??;
            if let Ok(data) = frame.into_data() {
                text.extend_from_slice(&data);
            }
        }
        let lines: Vec<Value> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(serde_json::from_slice)
            .collect::<Result<_, _>>()?;
        assert_eq!(lines[0]["object"]["metadata"]["name"], "a");
        assert_eq!(lines[1]["object"]["metadata"]["name"], "b");
    }
    let journal = server.journal();
    assert!(
        journal
            .iter()
            .filter(|e| e.watch)
            .all(|e| e.version == "HTTP/2.0")
    );
    Ok(())
}

#[tokio::test]
async fn tls_serves_http1_too_and_rejects_clients_that_do_not_trust_the_ca() -> TestResult {
    let server = ApiServer::builder().tls(true).start().await?;
    let ca = server.ca_pem().ok_or("no CA")?;
    let connector = tls_connector(&ca, &[b"http/1.1"])?;
    let tcp = TcpStream::connect(server.addr()).await?;
    let tls = connector.connect(ServerName::try_from("127.0.0.1")?, tcp).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    let response = sender
        .send_request(
            http::Request::get("/api/v1/namespaces")
                .header("host", "127.0.0.1")
                .body(Empty::<Bytes>::new())?,
        )
        .await?;
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await?.to_bytes();
    let list: Value = serde_json::from_slice(&body)?;
    assert_eq!(list["kind"], "NamespaceList");

    let other = ApiServer::builder().tls(true).start().await?;
    let stranger = tls_connector(&other.ca_pem().ok_or("no CA")?, &[b"http/1.1"])?;
    let tcp = TcpStream::connect(server.addr()).await?;
    assert!(
        stranger
            .connect(ServerName::try_from("localhost")?, tcp)
            .await
            .is_err()
    );
    Ok(())
}

#[tokio::test]
async fn kubeconfig_is_written_to_a_file() -> TestResult {
    let server = ApiServer::start().await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kazan.kubeconfig");
    server.write_kubeconfig(&path)?;
    let text = std::fs::read_to_string(&path)?;
    assert_eq!(text, server.kubeconfig());
    assert!(text.contains(&format!("    server: http://{}\n", server.addr())));
    assert!(text.contains("current-context: kazan"));
    assert!(!text.contains("token"));
    assert!(server.stats().connections_accepted == 0);
    Ok(())
}

#[tokio::test]
async fn health_endpoints_answer_ok() -> TestResult {
    let server = ApiServer::start().await?;
    for path in ["/healthz", "/livez", "/readyz"] {
        let response = get(server.addr(), path).await?;
        assert_eq!((response.status, response.text().as_str()), (200, "ok"), "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn plain_http2_with_prior_knowledge_is_served() -> TestResult {
    let server = ApiServer::start().await?;
    let tcp = TcpStream::connect(server.addr()).await?;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await?;
    tokio::spawn(connection);
    let response = sender
        .send_request(
            http::Request::get(format!("{}/api/v1/namespaces", server.url())).body(Empty::<Bytes>::new())?,
        )
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let list: Value = serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
    assert_eq!(list["kind"], "NamespaceList");
    Ok(())
}

#[test]
fn the_server_handle_can_be_shared_across_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ApiServer>();
    assert_send_sync::<kazan_apiserver::Faults>();
}

#[tokio::test]
async fn the_default_server_listens_on_loopback_only() -> TestResult {
    let server = ApiServer::start().await?;
    assert!(server.addr().ip().is_loopback(), "{}", server.addr());
    assert!(server.url().starts_with("http://127.0.0.1:"), "{}", server.url());
    let tls = ApiServer::builder().tls(true).start().await?;
    assert!(tls.addr().ip().is_loopback(), "{}", tls.addr());
    Ok(())
}

/// One path of each kind the server answers: API (core and group), discovery (legacy and
/// aggregated), OpenAPI, version, health, admin.
const EVERY_KIND_OF_PATH: &[&str] = &[
    "/api/v1/namespaces",
    "/api/v1/namespaces/default/configmaps?watch=1",
    "/apis/apps/v1/deployments",
    "/api",
    "/apis",
    "/api/v1",
    "/apis/apps/v1",
    "/openapi/v2",
    "/openapi/v3",
    "/openapi/v3/api/v1",
    "/version",
    "/healthz",
    "/livez",
    "/readyz",
    "/_kazan/",
    "/_kazan/stats",
    "/_kazan/journal",
    "/no/such/path",
];

#[tokio::test]
async fn a_token_is_required_on_every_path_admin_included() -> TestResult {
    let server = ApiServer::builder().token("s3cret").admin(true).start().await?;
    for path in EVERY_KIND_OF_PATH {
        let anonymous = request(server.addr(), "GET", path, &[], None).await?;
        assert_eq!(anonymous.status, 401, "{path} without a token");
        let wrong = request(
            server.addr(),
            "GET",
            path,
            &[("Authorization", "Bearer s3cre")],
            None,
        )
        .await?;
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
        let basic = request(
            server.addr(),
            "GET",
            path,
            &[("Authorization", "Basic czNjcmV0")],
            None,
        )
        .await?;
        assert_eq!(basic.status, 401, "{path} with the token as basic auth");
        assert!(!anonymous.text().contains("s3cret"), "{path} echoes the token");
    }
    // POSTs to the admin API are refused too, and change nothing.
    let rv = server.resource_version();
    let post = request(
        server.addr(),
        "POST",
        "/_kazan/resource-version/advance?by=100",
        &[],
        None,
    )
    .await?;
    assert_eq!(post.status, 401);
    assert_eq!(server.resource_version(), rv);
    // With the token, each of them is served (the watch is not read to its end here).
    for path in EVERY_KIND_OF_PATH
        .iter()
        .filter(|p| !p.contains("watch=1") && !p.starts_with("/no/"))
    {
        let allowed = request(
            server.addr(),
            "GET",
            path,
            &[("Authorization", "Bearer s3cret")],
            None,
        )
        .await?;
        assert_eq!(allowed.status, 200, "{path} with the token");
    }
    Ok(())
}

#[tokio::test]
async fn the_admin_api_is_off_unless_asked_for() -> TestResult {
    let server = ApiServer::start().await?;
    let rv = server.resource_version();
    for (method, path) in [
        ("GET", "/_kazan/"),
        ("GET", "/_kazan/journal"),
        ("GET", "/_kazan/stats"),
        ("POST", "/_kazan/resource-version/advance?by=100"),
        ("POST", "/_kazan/history/compact"),
    ] {
        let answer = request(server.addr(), method, path, &[], None).await?;
        assert_eq!(answer.status, 404, "{method} {path}");
        assert_eq!(answer.json()?["reason"], "NotFound", "{method} {path}");
    }
    assert_eq!(server.resource_version(), rv, "an admin command ran");
    // The Rust handle works without it.
    server.faults().advance_resource_version(5);
    assert_eq!(server.resource_version(), rv + 5);

    let with_admin = ApiServer::builder().admin(true).start().await?;
    assert_eq!(get(with_admin.addr(), "/_kazan/stats").await?.status, 200);
    Ok(())
}
