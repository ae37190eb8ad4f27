//! The client against real servers on loopback: errors, TLS, HTTP versions, deadlines,
//! pagination, namespaces, proxies and secrecy.
//!
//! Tests run against the embedded API server (`kazan-apiserver`) wherever it can produce the
//! situation. The small server in `support/` is used only for what it cannot: requiring a client
//! certificate, presenting a certificate for a chosen name (to see SNI), refusing HTTP/2, gzip
//! answers, serving under a path prefix, and a TCP peer that never completes a TLS handshake.

use crate::support;
use support::{WAIT, bounded};

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, Version};
use http_body_util::Full;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kazan::{
    Client, Config, Error, Request,
    client::BodyStream,
    config::{AuthConfig, ClientIdentity, ConfigError, ImpersonationError},
    error::ClientSetupError,
    request::VersionMatch,
};
use kazan_apiserver::{ApiServer, FaultAction, FaultRule};
use rcgen::KeyPair;
use serde::Deserialize;
use serde_json::json;
use support::{
    Seen, TestCa, TestError, TestProxy, TestResult, TestServer, closed_port,
    impersonation::{as_jane, jane_headers},
    json, mtls_server, silent_listener,
};

fn config(url: &str) -> Result<Config, TestError> {
    Ok(Config::new(url.parse()?))
}

/// A client configuration trusting the CA of an embedded TLS server.
fn trusting(server: &ApiServer) -> Result<Config, TestError> {
    let mut config = config(&server.url())?;
    config.root_certs_pem = Some(server.ca_pem().ok_or("the server has no TLS")?.into_bytes());
    Ok(config)
}

fn trusting_ca(url: &str, ca: &TestCa) -> Result<Config, TestError> {
    let mut config = config(url)?;
    config.root_certs_pem = Some(ca.pem().into_bytes());
    Ok(config)
}

async fn tls_server() -> Result<ApiServer, TestError> {
    Ok(ApiServer::builder().tls(true).start().await?)
}

fn configmap(namespace: &str, name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"k": "v"},
    })
}

fn add_namespace(server: &ApiServer, name: &str) -> Result<(), TestError> {
    server.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))?;
    Ok(())
}

fn queries(server: &ApiServer) -> Vec<String> {
    server.journal().into_iter().map(|e| e.query).collect()
}

// ---- Errors -----------------------------------------------------------------------------------

#[tokio::test]
async fn a_404_status_becomes_an_api_error_with_reason_and_message() -> TestResult {
    let server = ApiServer::start().await?;
    let client = Client::new(config(&server.url())?)?;

    let err = bounded(client.run(&Request::get::<Pod>("web").namespace("default")))
        .await?
        .err()
        .ok_or("a missing pod must be an error")?;

    let url = format!("{}/api/v1/namespaces/default/pods/web", server.url());
    let api = err.api().ok_or("not an API error")?;
    assert_eq!(api.code, 404);
    assert_eq!(api.method, "GET");
    assert_eq!(api.url, url);
    assert_eq!(api.reason(), Some("NotFound"));
    assert_eq!(api.message(), Some("pods \"web\" not found"));
    assert_eq!(api.body, None);
    assert_eq!(err.status_code(), Some(404));
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        format!("GET {url} answered 404 NotFound: pods \"web\" not found")
    );
    Ok(())
}

#[tokio::test]
async fn an_html_error_page_is_kept_as_the_raw_body() -> TestResult {
    let page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>";
    let server = ApiServer::start().await?;
    server
        .faults()
        .add_rule(FaultRule::new(FaultAction::raw(502, "text/html", page)));
    let client = Client::new(config(&server.url())?)?;

    let err = bounded(client.run(&Request::list::<Pod>()))
        .await?
        .err()
        .ok_or("a 502 must be an error")?;

    let api = err.api().ok_or("an HTML page must still be an API error")?;
    assert_eq!(api.code, 502);
    assert_eq!(api.status, None);
    assert_eq!(api.body.as_deref(), Some(page));
    assert!(err.is_retryable());
    Ok(())
}

#[tokio::test]
async fn retry_after_is_read_from_plain_text_and_status_answers() -> TestResult {
    let server = ApiServer::start().await?;
    // API Priority and Fairness answers in plain text with a header.
    server.faults().add_rule(
        FaultRule::new(
            FaultAction::raw(429, "text/plain", "Too many requests, please try again later.\n")
                .retry_after(3),
        )
        .path_prefix("/api/v1/configmaps"),
    );
    // The watch cache answers with a Status carrying details.retryAfterSeconds.
    server.faults().add_rule(
        FaultRule::new(
            FaultAction::status(429, "TooManyRequests", "storage is (re)initializing").retry_after(2),
        )
        .path_prefix("/api/v1/pods"),
    );
    let client = Client::new(config(&server.url())?)?;

    let plain = bounded(client.run(&Request::list::<ConfigMap>()))
        .await?
        .err()
        .ok_or("429 expected")?;
    assert_eq!(plain.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(
        plain.api().and_then(|a| a.message()),
        Some("Too many requests, please try again later.\n")
    );
    assert!(plain.is_retryable());

    let status = bounded(client.run(&Request::list::<Pod>()))
        .await?
        .err()
        .ok_or("429 expected")?;
    assert_eq!(status.retry_after(), Some(Duration::from_secs(2)));
    let api = status.api().ok_or("not an API error")?;
    assert_eq!(api.reason(), Some("TooManyRequests"));
    let details = api.status.as_ref().and_then(|s| s.details.as_ref());
    assert_eq!(details.and_then(|d| d.retry_after_seconds), Some(2));
    Ok(())
}

/// A custom resource type that does not match what the server holds.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Widget {
    spec: serde_json::Value,
}

#[tokio::test]
async fn a_body_of_the_wrong_shape_is_a_decode_error_naming_the_url_and_type() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(configmap("default", "settings"))?;
    let client = Client::new(config(&server.url())?)?;

    let req = Request::get_of::<Widget>(kazan::ApiResource::of::<ConfigMap>(), "settings");
    let err = bounded(client.run(&req)).await?.err().ok_or("decode must fail")?;

    match &err {
        Error::Decode { url, what, source } => {
            assert_eq!(
                *url,
                format!("{}/api/v1/namespaces/default/configmaps/settings", server.url())
            );
            assert!(what.ends_with("client::Widget"), "{what}");
            assert!(source.to_string().starts_with("missing field `spec`"), "{source}");
        }
        other => return Err(format!("expected a decode error, got {other:?}").into()),
    }
    assert!(!err.is_retryable());
    Ok(())
}

#[tokio::test]
async fn connection_refused_is_a_connect_error_naming_the_url() -> TestResult {
    let addr = closed_port().await?;
    let client = Client::new(config(&format!("http://{addr}"))?)?;

    let err = bounded(client.run(&Request::list::<Pod>()))
        .await?
        .err()
        .ok_or("nothing listens there")?;

    match &err {
        Error::Connect { url, .. } => assert_eq!(*url, format!("http://{addr}/api/v1/pods")),
        other => return Err(format!("expected a connect error, got {other:?}").into()),
    }
    assert!(
        err.to_string()
            .starts_with(&format!("cannot connect to http://{addr}/api/v1/pods: ")),
        "{err}"
    );
    assert!(err.is_retryable());
    Ok(())
}

#[tokio::test]
async fn unusable_setups_are_refused_with_what_is_wrong() -> TestResult {
    let err = Client::new(config("ftp://127.0.0.1:21")?)
        .err()
        .ok_or("ftp accepted")?;
    assert!(matches!(
        err,
        Error::ClientSetup(ClientSetupError::UnsupportedScheme { .. })
    ));

    let mut cfg = config("https://127.0.0.1:6443")?;
    cfg.insecure_skip_tls_verify = true;
    cfg.client_identity = Some(ClientIdentity {
        cert_pem: TestCa::new("ca")?.pem().into_bytes(),
        key_pem: b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
            .to_vec()
            .into(),
    });
    let err = Client::new(cfg).err().ok_or("a certificate is not a key")?;
    assert!(
        err.to_string()
            .starts_with("the client key is unusable: no PEM private key found"),
        "{err}"
    );

    let mut cfg = config("https://127.0.0.1:6443")?;
    cfg.root_certs_pem = Some(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec());
    let err = Client::new(cfg).err().ok_or("garbage CA accepted")?;
    assert!(matches!(
        err,
        Error::ClientSetup(ClientSetupError::InvalidCaCertificate { index: 1, .. })
    ));

    let mut cfg = config("https://127.0.0.1:6443")?;
    cfg.insecure_skip_tls_verify = true;
    cfg.proxy_url = Some("socks5://127.0.0.1:1080".parse()?);
    let err = Client::new(cfg).err().ok_or("socks accepted")?;
    assert!(matches!(
        err,
        Error::ClientSetup(ClientSetupError::UnsupportedProxy { .. })
    ));
    Ok(())
}

// ---- TLS --------------------------------------------------------------------------------------

#[tokio::test]
async fn a_server_certificate_of_another_ca_is_a_tls_error() -> TestResult {
    let server = tls_server().await?;
    let client = Client::new(trusting_ca(&server.url(), &TestCa::new("other ca")?)?)?;

    let err = bounded(client.run(&Request::list::<Pod>()))
        .await?
        .err()
        .ok_or("an unknown CA must be refused")?;

    match &err {
        Error::Tls { url, .. } => assert_eq!(*url, format!("{}/api/v1/pods", server.url())),
        other => return Err(format!("expected a TLS error, got {other:?}").into()),
    }
    assert!(
        err.to_string()
            .contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert!(server.journal().is_empty());
    Ok(())
}

#[tokio::test]
async fn the_servers_own_ca_is_trusted() -> TestResult {
    let server = tls_server().await?;
    server.create(configmap("default", "settings"))?;
    let client = Client::new(trusting(&server)?)?;

    let cm = bounded(client.run(&Request::get::<ConfigMap>("settings"))).await??;

    assert_eq!(cm.metadata.name.as_deref(), Some("settings"));
    Ok(())
}

#[tokio::test]
async fn insecure_mode_connects_to_a_server_of_an_unknown_ca() -> TestResult {
    let server = tls_server().await?;
    server.create(configmap("default", "settings"))?;
    let mut cfg = config(&server.url())?;
    cfg.insecure_skip_tls_verify = true;
    let client = Client::new(cfg)?;

    let list = bounded(client.run(&Request::list::<ConfigMap>())).await??;

    assert_eq!(list.items.len(), 1);
    Ok(())
}

#[tokio::test]
async fn tls_server_name_is_the_name_verified() -> TestResult {
    // The embedded server's certificate names 127.0.0.1, localhost and ::1.
    let server = tls_server().await?;

    let mut cfg = trusting(&server)?;
    cfg.tls_server_name = Some("localhost".into());
    bounded(Client::new(cfg)?.run(&Request::list::<Pod>())).await??;

    let mut cfg = trusting(&server)?;
    cfg.tls_server_name = Some("kubernetes.default.svc".into());
    support::assert_tls_refused(
        &Client::new(cfg)?,
        "invalid peer certificate: certificate not valid for name \"kubernetes.default.svc\"",
        "the certificate does not name kubernetes.default.svc",
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn tls_server_name_is_sent_as_sni() -> TestResult {
    // Support server: the embedded one neither chooses its certificate's names nor reports SNI.
    let ca = TestCa::new("cluster ca")?;
    let server = TestServer::start(
        Some(ca.server_tls(&["kubernetes.default.svc"], true)?),
        |_| async { json(200, &json!({"kind": "PodList", "items": []})) },
    )
    .await?;

    let mut cfg = trusting_ca(&server.url, &ca)?;
    cfg.tls_server_name = Some("kubernetes.default.svc".into());
    bounded(Client::new(cfg)?.run(&Request::list::<Pod>())).await??;

    let journal = server.journal();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].sni.as_deref(), Some("kubernetes.default.svc"));
    Ok(())
}

async fn list_with_identity(
    server: &TestServer,
    ca: &TestCa,
    cert_pem: String,
    key_pem: &str,
) -> Result<(), TestError> {
    let mut cfg = trusting_ca(&server.url, ca)?;
    cfg.client_identity = Some(ClientIdentity {
        cert_pem: cert_pem.into_bytes(),
        key_pem: key_pem.as_bytes().to_vec().into(),
    });
    let client = Client::new(cfg)?;
    bounded(client.run(&Request::list::<Pod>())).await??;
    Ok(())
}

#[tokio::test]
async fn a_client_certificate_with_an_rsa_pkcs1_key_reaches_the_server() -> TestResult {
    let ca = TestCa::new("ca")?;
    let server = mtls_server(&ca).await?;
    let key = KeyPair::from_pem(support::pki::RSA_PKCS8)?;
    let cert = ca.client_cert(&key, "rsa-user")?;

    list_with_identity(&server, &ca, cert, support::pki::RSA_PKCS1).await?;

    assert_eq!(server.journal()[0].client_cn.as_deref(), Some("rsa-user"));
    Ok(())
}

#[tokio::test]
async fn a_client_certificate_with_an_ec_sec1_key_reaches_the_server() -> TestResult {
    let ca = TestCa::new("ca")?;
    let server = mtls_server(&ca).await?;
    let key = KeyPair::from_pem(support::pki::EC_PKCS8)?;
    let cert = ca.client_cert(&key, "ec-user")?;

    list_with_identity(&server, &ca, cert, support::pki::EC_SEC1).await?;

    assert_eq!(server.journal()[0].client_cn.as_deref(), Some("ec-user"));
    Ok(())
}

#[tokio::test]
async fn a_client_certificate_with_a_pkcs8_key_reaches_the_server() -> TestResult {
    let ca = TestCa::new("ca")?;
    let server = mtls_server(&ca).await?;
    let key = KeyPair::generate()?;
    let cert = ca.client_cert(&key, "pkcs8-user")?;

    list_with_identity(&server, &ca, cert, &key.serialize_pem()).await?;

    assert_eq!(server.journal()[0].client_cn.as_deref(), Some("pkcs8-user"));
    Ok(())
}

#[tokio::test]
async fn without_a_client_certificate_a_server_requiring_one_gives_a_tls_error() -> TestResult {
    let ca = TestCa::new("ca")?;
    let server = mtls_server(&ca).await?;
    let client = Client::new(trusting_ca(&server.url, &ca)?)?;

    support::assert_tls_refused(
        &client,
        "received fatal alert: CertificateRequired",
        "the server requires a certificate",
    )
    .await?;
    assert!(server.journal().is_empty());
    Ok(())
}

// ---- HTTP versions and connections ------------------------------------------------------------

#[tokio::test]
async fn http2_is_negotiated_and_concurrent_requests_share_one_connection() -> TestResult {
    let server = tls_server().await?;
    for i in 0..24 {
        server.create(configmap("default", &format!("cm-{i}")))?;
    }
    let client = Client::new(trusting(&server)?)?;

    // The first request opens the connection; ALPN makes it HTTP/2.
    let first = bounded(client.stream(&Request::list::<ConfigMap>())).await??;
    assert_eq!(first.version(), Version::HTTP_2);
    drop(first);

    let requests = (0..24).map(|i| {
        let client = client.clone();
        tokio::spawn(async move { client.run(&Request::get::<ConfigMap>(&format!("cm-{i}"))).await })
    });
    let results = bounded(futures_util::future::join_all(requests)).await?;
    for (i, result) in results.into_iter().enumerate() {
        let cm = result??;
        assert_eq!(cm.metadata.name, Some(format!("cm-{i}")));
    }

    assert_eq!(server.stats().connections_accepted, 1);
    let journal = server.journal();
    assert_eq!(journal.len(), 25);
    assert!(journal.iter().all(|e| e.version == "HTTP/2.0"), "{journal:?}");
    Ok(())
}

#[tokio::test]
async fn a_burst_on_a_new_client_opens_one_http2_connection() -> TestResult {
    let server = tls_server().await?;
    let client = Client::new(trusting(&server)?)?;
    let rv = server.resource_version().to_string();
    // A hundred watches start at once on a client that has never connected.
    let watches = (0..100).map(|_| {
        let client = client.clone();
        let rv = rv.clone();
        tokio::spawn(async move {
            client
                .stream(&Request::watch_list::<ConfigMap>().resource_version(&rv))
                .await
        })
    });
    let streams = bounded(futures_util::future::join_all(watches)).await?;
    for stream in &streams {
        assert_eq!(
            stream
                .as_ref()
                .map(|s| s.as_ref().map(|b| b.version()).ok())
                .ok()
                .flatten(),
            Some(Version::HTTP_2)
        );
    }
    assert!(server.wait_for_watches("configmaps", 100, WAIT).await);
    assert_eq!(server.stats().connections_accepted, 1);
    Ok(())
}

#[tokio::test]
async fn watches_and_requests_share_the_http2_connection() -> TestResult {
    let server = tls_server().await?;
    let client = Client::new(trusting(&server)?)?;
    let rv = server.resource_version().to_string();

    let mut watches = Vec::new();
    for _ in 0..5 {
        watches
            .push(bounded(client.stream(&Request::watch_list::<ConfigMap>().resource_version(&rv))).await??);
    }
    assert!(server.wait_for_watches("configmaps", 5, WAIT).await);
    bounded(client.run(&Request::list::<Pod>())).await??;

    assert_eq!(server.stats().connections_accepted, 1);
    assert!(watches.iter().all(|w| w.version() == Version::HTTP_2));
    Ok(())
}

/// Starts `n` config map watches from version `rv` at once on `client`; all must be answered.
async fn start_watches(client: &Client, rv: &str, n: usize) -> Result<Vec<BodyStream>, TestError> {
    let watches = (0..n).map(|_| {
        let client = client.clone();
        let req = Request::watch_list::<ConfigMap>().resource_version(rv);
        tokio::spawn(async move { client.stream(&req).await })
    });
    let mut streams = Vec::new();
    for joined in bounded(futures_util::future::join_all(watches)).await? {
        streams.push(joined??);
    }
    Ok(streams)
}

/// The next event of a watch (its first line from here on).
async fn next_event(watch: &mut BodyStream) -> Result<serde_json::Value, TestError> {
    let mut line = Vec::new();
    bounded(async {
        loop {
            let chunk = watch.chunk().await.ok_or("the watch ended")??;
            line.extend_from_slice(&chunk);
            if let Some(end) = line.iter().position(|b| *b == b'\n') {
                return Ok(serde_json::from_slice(line.get(..end).unwrap_or_default())?);
            }
        }
    })
    .await?
}

/// Reads a watch until it ends: `Some(error)` if it failed, `None` if it ended cleanly.
async fn watch_end(watch: &mut BodyStream) -> Result<Option<Error>, TestError> {
    bounded(async {
        while let Some(chunk) = watch.chunk().await {
            if let Err(e) = chunk {
                return Some(e);
            }
        }
        None
    })
    .await
}

/// Waits until the server counts exactly `n` open config map watches.
async fn wait_for_open_watches(server: &ApiServer, n: usize) -> Result<(), TestError> {
    bounded(async {
        while server
            .stats()
            .active_watches
            .get("configmaps")
            .copied()
            .unwrap_or(0)
            != n
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

async fn tls_server_with_streams(streams: u32) -> Result<ApiServer, TestError> {
    Ok(ApiServer::builder()
        .tls(true)
        .max_concurrent_streams(streams)
        .start()
        .await?)
}

#[tokio::test]
async fn watches_beyond_the_servers_stream_limit_get_more_http2_connections() -> TestResult {
    let server = tls_server_with_streams(10).await?;
    let client = Client::new(trusting(&server)?)?;
    let rv = server.resource_version().to_string();

    // 25 watches at once on a new client: 10 + 10 + 5 streams.
    let mut watches = start_watches(&client, &rv, 25).await?;

    assert!(server.wait_for_watches("configmaps", 25, WAIT).await);
    assert_eq!(server.stats().connections_accepted, 3);
    assert!(watches.iter().all(|w| w.version() == Version::HTTP_2));
    assert!(server.journal().iter().all(|e| e.version == "HTTP/2.0"));
    // None is queued behind another: every one of them sees the next write.
    server.create(configmap("default", "seen-by-all"))?;
    for watch in &mut watches {
        let event = next_event(watch).await?;
        assert_eq!(event["type"], "ADDED");
        assert_eq!(event["object"]["metadata"]["name"], "seen-by-all");
    }
    Ok(())
}

#[tokio::test]
async fn closed_watches_free_their_streams_for_new_requests() -> TestResult {
    let server = tls_server_with_streams(10).await?;
    let client = Client::new(trusting(&server)?)?;
    let rv = server.resource_version().to_string();
    let mut watches = start_watches(&client, &rv, 30).await?;
    assert_eq!(server.stats().connections_accepted, 3, "three full connections");

    // Ten watches end, wherever they were; nine new ones and a list take their streams.
    watches.truncate(20);
    wait_for_open_watches(&server, 20).await?;
    let listing = tokio::spawn({
        let client = client.clone();
        async move { client.run(&Request::list::<ConfigMap>()).await }
    });
    watches.extend(start_watches(&client, &rv, 9).await?);
    bounded(listing).await???;
    // The list's stream is free once its body has been read.
    watches.extend(start_watches(&client, &rv, 1).await?);
    wait_for_open_watches(&server, 30).await?;
    assert_eq!(server.stats().connections_accepted, 3, "freed streams are reused");

    // Full again: one more watch needs a fourth connection.
    watches.extend(start_watches(&client, &rv, 1).await?);
    assert_eq!(server.stats().connections_accepted, 4);
    server.create(configmap("default", "late"))?;
    for watch in &mut watches {
        assert_eq!(next_event(watch).await?["object"]["metadata"]["name"], "late");
    }
    Ok(())
}

#[tokio::test]
async fn a_hundred_watches_and_concurrent_requests_share_one_connection_under_the_default_limit() -> TestResult
{
    let server = tls_server().await?;
    server.create(configmap("default", "settings"))?;
    let client = Client::new(trusting(&server)?)?;
    let rv = server.resource_version().to_string();

    let requests = (0..20).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.run(&Request::get::<ConfigMap>("settings")).await })
    });
    let (watches, answers) = tokio::join!(
        start_watches(&client, &rv, 100),
        bounded(futures_util::future::join_all(requests))
    );
    let watches = watches?;
    for answer in answers? {
        assert_eq!(answer??.metadata.name.as_deref(), Some("settings"));
    }

    assert_eq!(watches.len(), 100);
    assert!(server.wait_for_watches("configmaps", 100, WAIT).await);
    assert_eq!(server.stats().connections_accepted, 1);
    Ok(())
}

#[tokio::test]
async fn a_watch_cut_over_http2_fails_alone_and_frees_its_stream() -> TestResult {
    let server = tls_server_with_streams(10).await?;
    let client = Client::new(trusting(&server)?)?;
    let rv = server.resource_version().to_string();
    let mut watches = start_watches(&client, &rv, 10).await?;
    assert!(server.wait_for_watches("configmaps", 10, WAIT).await);

    // Over HTTP/2 a cut resets each stream; the connection stays.
    server.faults().cut_watches(None);
    for watch in &mut watches {
        let failure = watch_end(watch).await?;
        assert!(matches!(failure, Some(Error::Http { .. })), "{failure:?}");
    }

    // The failed streams are free even though their `BodyStream`s are still held.
    let listing = tokio::spawn({
        let client = client.clone();
        async move { client.run(&Request::list::<Pod>()).await }
    });
    let mut again = start_watches(&client, &rv, 9).await?;
    bounded(listing).await???;
    again.extend(start_watches(&client, &rv, 1).await?);
    assert_eq!(server.stats().connections_accepted, 1);
    server.create(configmap("default", "after-cut"))?;
    for watch in &mut again {
        assert_eq!(
            next_event(watch).await?["object"]["metadata"]["name"],
            "after-cut"
        );
    }
    drop(watches);
    Ok(())
}

#[tokio::test]
async fn a_lost_connection_is_replaced_by_a_new_one() -> TestResult {
    let server = tls_server().await?;
    let proxy = TestProxy::start().await?;
    let mut cfg = trusting(&server)?;
    cfg.proxy_url = Some(proxy.url.parse()?);
    let client = Client::new(cfg)?;
    let rv = server.resource_version().to_string();
    let mut watch =
        bounded(client.stream(&Request::watch_list::<ConfigMap>().resource_version(&rv))).await??;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);

    proxy.cut();
    let failure = watch_end(&mut watch).await?;
    assert!(matches!(failure, Some(Error::Http { .. })), "{failure:?}");

    let list = bounded(client.run(&Request::list::<ConfigMap>())).await??;
    assert!(list.items.is_empty());
    let mut watch =
        bounded(client.stream(&Request::watch_list::<ConfigMap>().resource_version(&rv))).await??;
    server.create(configmap("default", "after-loss"))?;
    assert_eq!(
        next_event(&mut watch).await?["object"]["metadata"]["name"],
        "after-loss"
    );
    assert_eq!(proxy.connect_count(), 2);
    assert_eq!(server.stats().connections_accepted, 2);
    Ok(())
}

#[tokio::test]
async fn after_the_server_restarts_requests_go_on_a_new_connection() -> TestResult {
    let server = tls_server().await?;
    let addr = server.addr();
    let mut cfg = config(&server.url())?;
    // The restarted server makes itself a new CA.
    cfg.insecure_skip_tls_verify = true;
    let client = Client::new(cfg)?;
    let rv = server.resource_version().to_string();
    let mut watch =
        bounded(client.stream(&Request::watch_list::<ConfigMap>().resource_version(&rv))).await??;
    bounded(client.run(&Request::list::<Pod>())).await??;
    assert_eq!(server.stats().connections_accepted, 1);

    // A graceful shutdown: watches end, GOAWAY, the connection closes.
    server.shutdown().await;
    assert!(watch_end(&mut watch).await?.is_none(), "the watch ends cleanly");
    drop(server);
    let restarted = ApiServer::builder().tls(true).addr(addr).start().await?;
    restarted.create(configmap("default", "after-restart"))?;

    let list = bounded(client.run(&Request::list::<ConfigMap>())).await??;

    let names: Vec<_> = list
        .items
        .iter()
        .filter_map(|c| c.metadata.name.as_deref())
        .collect();
    assert_eq!(names, ["after-restart"]);
    assert_eq!(restarted.stats().connections_accepted, 1);
    assert!(restarted.journal().iter().all(|e| e.version == "HTTP/2.0"));
    Ok(())
}

#[tokio::test]
async fn requests_waiting_for_a_connection_that_fails_all_get_its_error() -> TestResult {
    let addr = closed_port().await?;
    let mut cfg = config(&format!("https://{addr}"))?;
    cfg.insecure_skip_tls_verify = true;
    let client = Client::new(cfg)?;

    let requests = (0..10).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.run(&Request::list::<Pod>()).await })
    });
    let results = bounded(futures_util::future::join_all(requests)).await?;

    for result in results {
        match result? {
            Err(Error::Connect { url, .. }) => assert_eq!(url, format!("https://{addr}/api/v1/pods")),
            other => return Err(format!("expected a connect error, got {other:?}").into()),
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_tls_server_without_h2_is_spoken_to_in_http1() -> TestResult {
    // Support server: the embedded one always offers h2.
    let ca = TestCa::new("ca")?;
    let server = TestServer::start(Some(ca.server_tls(&["127.0.0.1"], false)?), |_| async {
        json(200, &json!({"kind": "PodList", "items": []}))
    })
    .await?;
    let client = Client::new(trusting_ca(&server.url, &ca)?)?;

    let body = bounded(client.stream(&Request::list::<Pod>())).await??;
    let requests = (0..5).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.run(&Request::list::<Pod>()).await })
    });
    for answer in bounded(futures_util::future::join_all(requests)).await? {
        answer??;
    }

    assert_eq!(body.version(), Version::HTTP_11);
    let journal = server.journal();
    assert_eq!(journal.len(), 6);
    assert!(journal.iter().all(|seen| seen.version == Version::HTTP_11));
    // The stream went on a connection of its own, the requests through the pool: each says
    // which server it is for.
    let host = server.url.trim_start_matches("https://");
    assert!(
        journal
            .iter()
            .all(|seen| seen.header("host").as_deref() == Some(host))
    );
    assert!(journal.iter().all(|seen| seen.path == "/api/v1/pods"));
    Ok(())
}

#[tokio::test]
async fn plain_http_uses_http1_and_reuses_the_connection() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(configmap("default", "settings"))?;
    let client = Client::new(config(&server.url())?)?;

    for _ in 0..3 {
        let cm = bounded(client.run(&Request::get::<ConfigMap>("settings"))).await??;
        assert_eq!(cm.metadata.name.as_deref(), Some("settings"));
    }

    assert_eq!(server.stats().connections_accepted, 1);
    assert!(server.journal().iter().all(|e| e.version == "HTTP/1.1"));
    Ok(())
}

/// Opens a watch of config maps from `rv`, creates `name`, and reads its event and the watch's
/// clean end (the server ends each watch after one event); returns the event's resourceVersion.
async fn watch_one_event_to_its_end(
    client: &Client,
    server: &ApiServer,
    rv: &str,
    name: &str,
) -> Result<String, TestError> {
    let mut watch =
        bounded(client.stream(&Request::watch_list::<ConfigMap>().resource_version(rv))).await??;
    wait_for_open_watches(server, 1).await?;
    server.create(configmap("default", name))?;
    let event = next_event(&mut watch).await?;
    assert_eq!(event["object"]["metadata"]["name"], name);
    let end = watch_end(&mut watch).await?;
    assert!(end.is_none(), "the watch failed: {end:?}");
    let rv = event["object"]["metadata"]["resourceVersion"].as_str();
    Ok(rv.ok_or("an event without resourceVersion")?.to_string())
}

#[tokio::test]
async fn a_watch_that_ends_cleanly_leaves_its_http1_connection_to_the_next_watch() -> TestResult {
    let server = ApiServer::start().await?;
    let client = Client::new(config(&server.url())?)?;
    // Each watch ends after its first event, as the server's watch timeout ends it.
    server.faults().end_watches_after_events(Some(1));
    let mut rv = server.resource_version().to_string();
    for i in 0..3 {
        rv = watch_one_event_to_its_end(&client, &server, &rv, &format!("cm-{i}")).await?;
    }
    // Three watches, one after the other, on the connection the first one opened.
    assert_eq!(server.journal().iter().filter(|e| e.watch).count(), 3);
    assert_eq!(server.stats().connections_accepted, 1);
    assert!(server.journal().iter().all(|e| e.version == "HTTP/1.1"));
    Ok(())
}

#[tokio::test]
async fn a_kept_http1_connection_lost_while_unused_is_replaced_without_an_error() -> TestResult {
    let server = ApiServer::start().await?;
    let proxy = TestProxy::start().await?;
    let mut cfg = config(&server.url())?;
    cfg.proxy_url = Some(proxy.url.parse()?);
    let client = Client::new(cfg)?;
    server.faults().end_watches_after_events(Some(1));
    let rv = server.resource_version().to_string();
    let rv = watch_one_event_to_its_end(&client, &server, &rv, "before").await?;
    // The connection the first watch left is lost while nobody uses it (a proxy or the server
    // closed it): the next watch goes on a new one and never sees the loss.
    proxy.cut();
    watch_one_event_to_its_end(&client, &server, &rv, "after").await?;
    assert_eq!(proxy.connect_count(), 2);
    assert_eq!(server.journal().iter().filter(|e| e.watch).count(), 2);
    Ok(())
}

#[tokio::test]
async fn an_http1_watch_refused_after_the_tls_handshake_fails_as_a_tls_error() -> TestResult {
    // Support server: HTTP/1.1 only, requiring a client certificate the client does not have.
    // In TLS 1.3 the refusal is an alert sent after the client's handshake is over, so the watch's
    // own connection reads it, while waiting for the answer.
    let ca = TestCa::new("ca")?;
    let mut tls = ca.server_tls(&["127.0.0.1"], false)?;
    tls.client_ca = Some(ca.der());
    let server = TestServer::start(Some(tls), |_| async {
        json(200, &json!({"kind": "PodList", "items": []}))
    })
    .await?;
    let client = Client::new(trusting_ca(&server.url, &ca)?)?;
    let watch = bounded(client.stream(&Request::watch_list::<Pod>().resource_version("1"))).await?;
    let err = watch
        .err()
        .ok_or("a watch without a client certificate was accepted")?;
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("received fatal alert"), "{err}");
    assert!(server.journal().is_empty());
    Ok(())
}

#[tokio::test]
async fn every_request_says_who_it_is_and_asks_for_json() -> TestResult {
    let server = ApiServer::start().await?;
    let client = Client::new(config(&server.url())?)?;

    bounded(client.run(&Request::list::<Pod>())).await??;
    let patch = json!({"data": {"a": "b"}});
    let _ = bounded(client.run(&Request::merge_patch::<ConfigMap>("x", &patch))).await?;

    let journal = server.journal();
    assert_eq!(journal.len(), 2);
    for entry in &journal {
        assert_eq!(
            entry.user_agent,
            Some(format!("kazan/{}", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(entry.accept.as_deref(), Some("application/json"));
    }
    assert_eq!(journal[0].content_type, None);
    assert_eq!(
        journal[1].content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    Ok(())
}

#[tokio::test]
async fn gzip_is_asked_for_non_streaming_requests_and_decoded() -> TestResult {
    // Support server: it records each request's Accept-Encoding, which the embedded server's
    // journal does not (the embedded server's own gzip, over 128 KiB as the real one, is tested in
    // kazan-apiserver's tests/compression.rs).
    let server = TestServer::start(None, |seen: Seen| async move {
        let list = json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "5"},
            "items": [{"metadata": {"name": "p", "namespace": "a"}}]});
        if !seen.header("accept-encoding").is_some_and(|v| v.contains("gzip")) {
            return json(200, &list);
        }
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = std::io::Write::write_all(&mut enc, list.to_string().as_bytes());
        let mut reply = Response::new(Full::new(Bytes::from(enc.finish().unwrap_or_default())));
        reply
            .headers_mut()
            .insert("content-encoding", http::HeaderValue::from_static("gzip"));
        reply
    })
    .await?;
    let client = Client::new(config(&server.url)?)?;

    let pods = bounded(client.run(&Request::list::<Pod>())).await??;
    let mut stream = bounded(client.stream(&Request::list::<Pod>())).await??;
    let first_chunk = bounded(stream.chunk()).await?.ok_or("empty body")??;

    assert_eq!(pods.items.len(), 1);
    assert_eq!(pods.metadata.resource_version.as_deref(), Some("5"));
    assert_eq!(first_chunk.first(), Some(&b'{'), "streams are not compressed");
    let journal = server.journal();
    assert_eq!(journal[0].header("accept-encoding").as_deref(), Some("gzip"));
    assert_eq!(journal[1].header("accept-encoding"), None);

    // kubeconfig `disable-compression` (client-go `rest.Config.DisableCompression`): plain answers.
    let mut plain = config(&server.url)?;
    plain.disable_compression = true;
    let pods = bounded(Client::new(plain)?.run(&Request::list::<Pod>())).await??;
    assert_eq!(pods.items.len(), 1);
    assert_eq!(server.journal()[2].header("accept-encoding"), None);
    Ok(())
}

#[tokio::test]
async fn an_http_proxy_tunnels_the_connection_with_connect() -> TestResult {
    let server = tls_server().await?;
    let proxy = TestProxy::start().await?;
    let mut cfg = trusting(&server)?;
    let proxy_with_user = proxy.url.replace("http://", "http://alice:s3cret@");
    cfg.proxy_url = Some(proxy_with_user.parse()?);
    let client = Client::new(cfg)?;

    bounded(client.run(&Request::list::<Pod>())).await??;

    let connects = proxy.connects.lock().map(|c| c.clone()).unwrap_or_default();
    assert_eq!(connects.len(), 1);
    assert!(connects[0].starts_with(&format!("CONNECT {} HTTP/1.1\r\n", server.addr())));
    // base64("alice:s3cret")
    assert!(
        connects[0]
            .to_ascii_lowercase()
            .contains("proxy-authorization: basic ywxpy2u6cznjcmv0")
    );
    assert_eq!(server.journal().len(), 1);
    assert!(!format!("{client:?}").contains("s3cret"));
    Ok(())
}

// ---- Deadlines --------------------------------------------------------------------------------

#[tokio::test]
async fn the_request_deadline_fires_when_the_server_does_not_answer_in_time() -> TestResult {
    let server = ApiServer::start().await?;
    server
        .faults()
        .add_rule(FaultRule::new(FaultAction::Delay { millis: 60_000 }).times(2));
    let mut cfg = config(&server.url())?;
    cfg.request_timeout = Duration::from_millis(200);
    let client = Client::new(cfg)?;

    support::assert_the_request_deadlines_fire(&client, &server.url(), Duration::from_millis(200)).await?;
    Ok(())
}

#[tokio::test]
async fn the_connect_deadline_covers_the_tls_handshake() -> TestResult {
    let (addr, _listener) = silent_listener().await?;
    let mut cfg = config(&format!("https://{addr}"))?;
    cfg.insecure_skip_tls_verify = true;
    cfg.connect_timeout = Duration::from_millis(200);
    let client = Client::new(cfg)?;

    let err = bounded(client.run(&Request::list::<Pod>()))
        .await?
        .err()
        .ok_or("no handshake came")?;

    assert!(
        matches!(err, Error::Timeout { what: "connect", after, .. } if after == Duration::from_millis(200)),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_watch_stream_outlives_the_request_deadline() -> TestResult {
    const DEADLINE: Duration = Duration::from_secs(1);
    let server = ApiServer::start().await?;
    let mut cfg = config(&server.url())?;
    cfg.request_timeout = DEADLINE;
    let client = Client::new(cfg)?;
    let rv = server.resource_version().to_string();

    let mut watch = bounded(
        client.stream(
            &Request::watch_list::<ConfigMap>()
                .namespace("default")
                .resource_version(&rv),
        ),
    )
    .await??;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    tokio::time::sleep(DEADLINE * 2).await;
    server.create(configmap("default", "late"))?;

    let chunk = bounded(watch.chunk()).await?.ok_or("the watch ended")??;
    let line = chunk.split(|b| *b == b'\n').next().unwrap_or_default();
    let event: serde_json::Value = serde_json::from_slice(line)?;
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["metadata"]["name"], "late");
    Ok(())
}

#[tokio::test]
async fn a_stream_checks_the_status_before_any_body() -> TestResult {
    let server = ApiServer::start().await?;
    server.faults().add_rule(
        FaultRule::new(FaultAction::status(
            403,
            "Forbidden",
            "pods is forbidden: User \"system:serviceaccount:demo:app\" cannot watch resource \"pods\"",
        ))
        .watch(true),
    );
    let client = Client::new(config(&server.url())?)?;

    let err = bounded(client.stream(&Request::watch_list::<Pod>().resource_version("1")))
        .await?
        .err()
        .ok_or("403 expected")?;

    assert_eq!(err.status_code(), Some(403));
    assert_eq!(err.api().and_then(|a| a.reason()), Some("Forbidden"));
    Ok(())
}

// ---- Requests ---------------------------------------------------------------------------------

#[tokio::test]
async fn list_all_follows_continue_to_the_last_page() -> TestResult {
    let server = ApiServer::start().await?;
    add_namespace(&server, "a")?;
    for i in 0..5 {
        server.create(configmap("a", &format!("cm-{i}")))?;
    }
    server.create(configmap("default", "elsewhere"))?;
    let client = Client::new(config(&server.url())?)?;
    let rv = server.resource_version().to_string();

    let req = Request::list::<ConfigMap>()
        .namespace("a")
        .limit(2)
        .resource_version(&rv)
        .resource_version_match(VersionMatch::Exact);
    let list = bounded(client.list_all(&req)).await??;

    let names: Vec<_> = list
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(names, ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4"]);
    assert_eq!(list.metadata.resource_version.as_deref(), Some(rv.as_str()));
    assert_eq!(list.metadata.continue_, None);
    let queries = queries(&server);
    assert_eq!(queries.len(), 3);
    assert_eq!(
        queries[0],
        format!("limit=2&resourceVersion={rv}&resourceVersionMatch=Exact")
    );
    for continued in &queries[1..] {
        assert!(continued.starts_with("limit=2&continue="), "{continued}");
        assert!(!continued.contains("resourceVersion"), "{continued}");
    }
    assert!(server.journal().iter().all(|e| e.status == 200));
    Ok(())
}

#[tokio::test]
async fn list_all_starts_over_once_when_a_continue_token_expires() -> TestResult {
    let server = ApiServer::start().await?;
    add_namespace(&server, "a")?;
    for i in 0..5 {
        server.create(configmap("a", &format!("cm-{i}")))?;
    }
    // The first two requests wait a second each, long enough to expire the first page's token.
    server.faults().add_rule(
        FaultRule::new(FaultAction::Delay { millis: 1000 })
            .path_prefix("/api/v1/namespaces/a/configmaps")
            .times(2),
    );
    let client = Client::new(config(&server.url())?)?;

    let listing = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .list_all(&Request::list::<ConfigMap>().namespace("a").limit(2))
                .await
        }
    });
    // Once the continued request is in, a write and a compaction make its token too old.
    bounded(async {
        while server.journal().len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await?;
    server.create(configmap("a", "cm-5"))?;
    server.faults().compact_history();
    let list = bounded(listing).await???;

    let names: Vec<_> = list
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(names, ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4", "cm-5"]);
    let journal = server.journal();
    let statuses: Vec<_> = journal.iter().map(|e| e.status).collect();
    assert_eq!(statuses, [200, 410, 200, 200, 200]);
    assert_eq!(journal[2].query, "limit=2", "the restart carries no token");
    Ok(())
}

#[tokio::test]
async fn single_object_requests_without_a_namespace_use_the_default_one() -> TestResult {
    let server = ApiServer::start().await?;
    add_namespace(&server, "team-a")?;
    let mut cfg = config(&server.url())?;
    cfg.default_namespace = "team-a".into();
    let client = Client::new(cfg)?;
    assert_eq!(client.default_namespace(), "team-a");

    let created: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "settings"}}))?;
    bounded(client.run(&Request::create(&created)?)).await??;
    let got = bounded(client.run(&Request::get::<ConfigMap>("settings"))).await??;
    bounded(client.run(&Request::delete::<ConfigMap>("settings"))).await??;
    bounded(client.run(&Request::list::<ConfigMap>())).await??;

    assert_eq!(got.metadata.namespace.as_deref(), Some("team-a"));
    let seen: Vec<_> = server
        .journal()
        .into_iter()
        .map(|e| format!("{} {} {}", e.method, e.path, e.status))
        .collect();
    assert_eq!(
        seen,
        [
            "POST /api/v1/namespaces/team-a/configmaps 201",
            "GET /api/v1/namespaces/team-a/configmaps/settings 200",
            "DELETE /api/v1/namespaces/team-a/configmaps/settings 200",
            "GET /api/v1/configmaps 200",
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_server_url_with_a_path_prefixes_every_request() -> TestResult {
    // Support server: the embedded one serves from the root (as behind a Rancher-style proxy).
    let server = TestServer::start(None, |_| async {
        json(200, &json!({"metadata": {"name": "web", "namespace": "a"}}))
    })
    .await?;
    let client = Client::new(config(&format!("{}/k8s/clusters/c-1/", server.url))?)?;

    bounded(client.run(&Request::get::<Pod>("web").namespace("a"))).await??;

    assert_eq!(
        server.journal()[0].path,
        "/k8s/clusters/c-1/api/v1/namespaces/a/pods/web"
    );
    Ok(())
}

#[tokio::test]
async fn run_refuses_a_watch_without_sending_it() -> TestResult {
    let server = ApiServer::start().await?;
    let client = Client::new(config(&server.url())?)?;

    let err = client
        .run_raw(&Request::watch_list::<Pod>().resource_version("1"))
        .await
        .err()
        .ok_or("a watch never ends; run must refuse it")?;

    assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
    assert!(server.journal().is_empty());
    Ok(())
}

#[tokio::test]
async fn send_raw_resolves_paths_against_the_server_and_checks_the_status() -> TestResult {
    let server = ApiServer::start().await?;
    let client = Client::new(config(&server.url())?)?;

    let request = http::Request::get("/api/v1/namespaces/default").body(Bytes::new())?;
    let response = bounded(client.send_raw(request)).await??;
    assert_eq!(response.status(), StatusCode::OK);
    let body = bounded(response.into_body().read_all(1 << 20)).await??;
    let namespace: serde_json::Value = serde_json::from_slice(&body)?;
    assert_eq!(namespace["kind"], "Namespace");
    assert_eq!(namespace["metadata"]["name"], "default");

    let missing =
        bounded(client.send_raw(http::Request::get("/apis/nope.example/v1/things").body(Bytes::new())?))
            .await?;
    assert_eq!(missing.err().and_then(|e| e.status_code()), Some(404));

    let elsewhere = client
        .send_raw(http::Request::get("http://127.0.0.2:1/api").body(Bytes::new())?)
        .await;
    assert!(matches!(elsewhere, Err(Error::InvalidRequest(_))));
    assert_eq!(server.journal().len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_401_without_refreshable_credentials_is_returned_as_an_api_error() -> TestResult {
    let server = ApiServer::builder().token("the-token").start().await?;
    let client = Client::new(config(&server.url())?)?;

    let err = bounded(client.run(&Request::list::<Pod>()))
        .await?
        .err()
        .ok_or("401 expected")?;

    assert_eq!(err.status_code(), Some(401));
    assert_eq!(err.api().and_then(|a| a.reason()), Some("Unauthorized"));
    assert!(!err.is_retryable());
    Ok(())
}

// ---- Impersonation ----------------------------------------------------------------------------

/// Lists the ConfigMaps of `default`, then opens a watch from the server's current version.
async fn list_and_watch(server: &ApiServer, client: &Client) -> TestResult {
    bounded(client.run(&Request::list::<ConfigMap>().namespace("default"))).await??;
    let rv = server.resource_version().to_string();
    let _watch = bounded(
        client.stream(
            &Request::watch_list::<ConfigMap>()
                .namespace("default")
                .resource_version(&rv),
        ),
    )
    .await??;
    Ok(())
}

/// A list, a watch, a write and a raw discovery request, as an impersonating client sends them.
async fn impersonated_requests(server: &ApiServer, mut config: Config) -> TestResult {
    config.impersonation = as_jane();
    let client = Client::new(config)?;

    list_and_watch(server, &client).await?;
    let object: ConfigMap = serde_json::from_value(configmap("default", "c"))?;
    bounded(client.run(&Request::create(&object)?)).await??;
    bounded(client.send_raw(http::Request::get("/api").body(Bytes::new())?)).await??;

    let journal = server.journal();
    let seen: Vec<(&str, bool)> = journal.iter().map(|e| (e.method.as_str(), e.watch)).collect();
    assert_eq!(
        seen,
        [("GET", false), ("GET", true), ("POST", false), ("GET", false)]
    );
    for entry in &journal {
        assert_eq!(
            entry.impersonation,
            jane_headers(),
            "{} {}",
            entry.method,
            entry.path
        );
    }
    Ok(())
}

#[tokio::test]
async fn every_request_carries_the_impersonation_headers_over_http1() -> TestResult {
    let server = ApiServer::start().await?;
    impersonated_requests(&server, config(&server.url())?).await?;
    assert!(server.journal().iter().all(|e| e.version == "HTTP/1.1"));
    Ok(())
}

#[tokio::test]
async fn every_request_carries_the_impersonation_headers_over_http2() -> TestResult {
    let server = tls_server().await?;
    impersonated_requests(&server, trusting(&server)?).await?;
    assert!(server.journal().iter().all(|e| e.version == "HTTP/2.0"));
    Ok(())
}

#[tokio::test]
async fn a_client_without_impersonation_sends_no_impersonate_headers() -> TestResult {
    let server = ApiServer::start().await?;
    let client = Client::new(config(&server.url())?)?;

    list_and_watch(&server, &client).await?;

    let journal = server.journal();
    assert_eq!(journal.len(), 2);
    assert!(journal.iter().all(|e| e.impersonation.is_empty()), "{journal:?}");
    Ok(())
}

#[tokio::test]
async fn a_raw_request_naming_its_own_user_gets_none_of_the_configured_impersonation() -> TestResult {
    let server = ApiServer::start().await?;
    let mut config = config(&server.url())?;
    config.impersonation = as_jane();
    let client = Client::new(config)?;

    let request = http::Request::get("/api")
        .header("Impersonate-User", "bob")
        .body(Bytes::new())?;
    bounded(client.send_raw(request)).await??;

    let journal = server.journal();
    let sent: Vec<_> = journal.iter().map(|e| e.impersonation.clone()).collect();
    assert_eq!(sent, [vec![("impersonate-user".to_string(), "bob".to_string())]]);
    Ok(())
}

#[tokio::test]
async fn a_client_refuses_groups_without_a_user_to_impersonate_before_sending() -> TestResult {
    let server = ApiServer::start().await?;
    let mut config = config(&server.url())?;
    config.impersonation.groups = vec!["devs".to_string()];

    let err = Client::new(config).err().ok_or("groups alone must be refused")?;

    let Error::Config(ConfigError::Impersonation { entry, source }) = &err else {
        return Err(format!("not an impersonation error: {err:?}").into());
    };
    assert_eq!(entry, "explicit configuration");
    assert_eq!(source, &ImpersonationError::WithoutUser { field: "as-groups" });
    assert!(server.journal().is_empty());
    Ok(())
}

// ---- Secrecy ----------------------------------------------------------------------------------

#[tokio::test]
async fn debug_and_display_of_the_client_and_its_errors_never_show_the_token() -> TestResult {
    const TOKEN: &str = "tok-7f3e9a-very-secret";
    let server = ApiServer::builder().token("another-token").start().await?;
    let addr = closed_port().await?;

    for url in [server.url(), format!("http://{addr}")] {
        let mut cfg = config(&url)?;
        cfg.auth = AuthConfig::Token(TOKEN.to_string().into());
        let client = Client::new(cfg)?;
        assert!(!format!("{client:?}").contains(TOKEN));

        let err = bounded(client.run(&Request::list::<Pod>()))
            .await?
            .err()
            .ok_or("must fail")?;
        assert!(!format!("{err:?}").contains(TOKEN), "{err:?}");
        assert!(!err.to_string().contains(TOKEN), "{err}");
    }
    Ok(())
}

/// Watches a consumer does not read hold their streams' HTTP/2 windows, and with them part of the
/// connection's window; a connection window smaller than the streams' together would let a few
/// unread watches starve every other request on the connection (the connection's data stops
/// flowing). The connection window covers every stream the lane opens, as Go's transport does
/// (`transportDefaultConnFlow`, 1 GiB, in golang.org/x/net/http2/transport.go).
#[tokio::test]
async fn unread_http2_watches_do_not_starve_other_requests_on_the_connection() -> TestResult {
    let server = tls_server().await?;
    let big = "x".repeat(900 * 1024);
    for i in 0..4 {
        let mut cm = configmap("default", &format!("big-{i}"));
        cm["data"] = serde_json::json!({ "blob": big });
        server.create(cm)?;
    }
    let client = Client::new(trusting(&server)?)?;
    // Each watch from "0" starts with the 3.6 MB of existing objects, more than a stream's window:
    // left unread, each fills its window.
    let mut unread = Vec::new();
    for _ in 0..4 {
        let watch = Request::watch_list::<ConfigMap>().resource_version("0");
        unread.push(bounded(client.stream(&watch)).await??);
    }
    assert_eq!(server.stats().connections_accepted, 1, "one HTTP/2 connection");
    // Give the server time to fill the windows, then ask for something else.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = bounded(client.run(&Request::get::<ConfigMap>("big-0").namespace("default"))).await??;
    assert_eq!(got.metadata.name.as_deref(), Some("big-0"));
    drop(unread);
    Ok(())
}

/// `with_accept` asks for another form (here the server's Table, as kubectl does) on every request
/// of that handle, a list's and a watch's alike; other handles keep `application/json`.
#[tokio::test]
async fn with_accept_asks_for_tables_on_lists_and_watches() -> TestResult {
    let server = ApiServer::builder().namespaces(&["w"]).start().await?;
    let client = Client::new(config(&server.url())?)?;
    let tables = client.with_accept("application/json;as=Table;v=v1;g=meta.k8s.io")?;
    let list = bounded(tables.run_raw(&Request::list::<ConfigMap>().namespace("w"))).await??;
    let list: serde_json::Value = serde_json::from_slice(&list)?;
    assert_eq!(list["kind"], "Table");
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut watch = bounded(
        tables.stream(
            &Request::watch_list::<ConfigMap>()
                .namespace("w")
                .resource_version(&rv),
        ),
    )
    .await??;
    server.create(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "w"}}),
    )?;
    let event = next_event(&mut watch).await?;
    assert_eq!(event["object"]["kind"], "Table");
    assert_eq!(event["object"]["rows"][0]["cells"][0], "a");
    let plain = bounded(client.run_raw(&Request::list::<ConfigMap>().namespace("w"))).await??;
    let plain: serde_json::Value = serde_json::from_slice(&plain)?;
    assert_eq!(plain["kind"], "ConfigMapList");
    assert!(client.with_accept("bad\nvalue").is_err());
    Ok(())
}
