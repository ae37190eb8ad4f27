//! The client against real servers on loopback: errors, TLS, HTTP versions, deadlines,
//! pagination, namespaces, proxies and secrecy.

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Response, StatusCode, Version};
use http_body_util::Full;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kazan::{
    Client, Config, Error, Request,
    config::{AuthConfig, ClientIdentity},
    error::ClientSetupError,
};
use rcgen::KeyPair;
use support::{
    Reply, Seen, TestCa, TestError, TestProxy, TestResult, TestServer, closed_port, json, object,
    silent_listener, status,
};

/// Every wait in these tests ends within this bound.
const BOUND: Duration = Duration::from_secs(20);

fn config(url: &str) -> Result<Config, TestError> {
    Ok(Config::new(url.parse()?))
}

fn tls_config(url: &str, ca: &TestCa) -> Result<Config, TestError> {
    let mut config = config(url)?;
    config.root_certs_pem = Some(ca.pem().into_bytes());
    Ok(config)
}

async fn bounded<T>(fut: impl Future<Output = T>) -> Result<T, TestError> {
    Ok(tokio::time::timeout(BOUND, fut).await?)
}

fn pod_list(items: &[serde_json::Value], rv: &str, continue_: Option<&str>) -> serde_json::Value {
    let mut meta = serde_json::json!({"resourceVersion": rv});
    if let Some(c) = continue_ {
        meta["continue"] = c.into();
    }
    serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": items})
}

async fn pod_server() -> std::io::Result<TestServer> {
    TestServer::start(None, |_| async { json(200, &object("Pod", "default", "web", 7)) }).await
}

// ---- Errors -----------------------------------------------------------------------------------

#[tokio::test]
async fn a_404_status_becomes_an_api_error_with_reason_and_message() -> TestResult {
    let server = TestServer::start(None, |_| async {
        json(404, &status(404, "NotFound", "pods \"web\" not found"))
    })
    .await?;
    let client = Client::new(config(&server.url)?)?;

    let err = bounded(client.run(&Request::get::<Pod>("web").namespace("prod")))
        .await?
        .err()
        .ok_or("a 404 must be an error")?;

    let api = err.api().ok_or("not an API error")?;
    assert_eq!(api.code, 404);
    assert_eq!(api.method, "GET");
    assert_eq!(api.url, format!("{}/api/v1/namespaces/prod/pods/web", server.url));
    assert_eq!(api.reason(), Some("NotFound"));
    assert_eq!(api.message(), Some("pods \"web\" not found"));
    assert_eq!(api.body, None);
    assert_eq!(err.status_code(), Some(404));
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        format!(
            "GET {}/api/v1/namespaces/prod/pods/web answered 404 NotFound: pods \"web\" not found",
            server.url
        )
    );
    Ok(())
}

#[tokio::test]
async fn an_html_error_page_is_kept_as_the_raw_body() -> TestResult {
    let page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>";
    let server = TestServer::start(None, move |_| async move {
        let mut reply = Response::new(Full::new(Bytes::from(page)));
        *reply.status_mut() = StatusCode::BAD_GATEWAY;
        reply.headers_mut().insert(
            "content-type",
            "text/html"
                .parse()
                .unwrap_or(http::HeaderValue::from_static("text/html")),
        );
        reply
    })
    .await?;
    let client = Client::new(config(&server.url)?)?;

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
async fn retry_after_comes_from_the_header_or_the_status_details() -> TestResult {
    let server = TestServer::start(None, |seen: Seen| async move {
        if seen.path.contains("configmaps") {
            // API Priority and Fairness: plain text with a header.
            let mut reply = Response::new(Full::new(Bytes::from_static(
                b"Too many requests, please try again later.\n",
            )));
            *reply.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            reply
                .headers_mut()
                .insert("retry-after", http::HeaderValue::from_static("3"));
            reply
        } else {
            // The watch cache: a Status with details.retryAfterSeconds.
            let mut body = status(429, "TooManyRequests", "storage is (re)initializing");
            body["details"] = serde_json::json!({"retryAfterSeconds": 2});
            json(429, &body)
        }
    })
    .await?;
    let client = Client::new(config(&server.url)?)?;

    let from_header = bounded(client.run(&Request::list::<ConfigMap>()))
        .await?
        .err()
        .ok_or("429 expected")?;
    assert_eq!(from_header.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(
        from_header.api().and_then(|a| a.message()),
        Some("Too many requests, please try again later.\n")
    );
    assert!(from_header.is_retryable());

    let from_details = bounded(client.run(&Request::list::<Pod>()))
        .await?
        .err()
        .ok_or("429 expected")?;
    assert_eq!(from_details.retry_after(), Some(Duration::from_secs(2)));
    assert_eq!(
        from_details.api().and_then(|a| a.reason()),
        Some("TooManyRequests")
    );
    Ok(())
}

#[tokio::test]
async fn a_body_of_the_wrong_shape_is_a_decode_error_naming_the_url_and_type() -> TestResult {
    let server = TestServer::start(None, |_| async {
        json(
            200,
            &serde_json::json!({"kind": "Pod", "metadata": "not an object"}),
        )
    })
    .await?;
    let client = Client::new(config(&server.url)?)?;

    let err = bounded(client.run(&Request::get::<Pod>("web").namespace("a")))
        .await?
        .err()
        .ok_or("decode must fail")?;

    match &err {
        Error::Decode { url, what, .. } => {
            assert_eq!(*url, format!("{}/api/v1/namespaces/a/pods/web", server.url));
            assert!(
                what.starts_with("k8s_openapi::") && what.ends_with("::Pod"),
                "{what}"
            );
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
            .starts_with(&format!("cannot connect to http://{addr}/api/v1/pods: "))
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
    Ok(())
}

// ---- TLS --------------------------------------------------------------------------------------

#[tokio::test]
async fn a_server_certificate_of_another_ca_is_a_tls_error() -> TestResult {
    let server_ca = TestCa::new("server ca")?;
    let other_ca = TestCa::new("other ca")?;
    let server = TestServer::start(Some(server_ca.server_tls(&["127.0.0.1"], true)?), |_| async {
        json(200, &pod_list(&[], "1", None))
    })
    .await?;
    let client = Client::new(tls_config(&server.url, &other_ca)?)?;

    let err = bounded(client.run(&Request::list::<Pod>()))
        .await?
        .err()
        .ok_or("an unknown CA must be refused")?;

    match &err {
        Error::Tls { url, .. } => assert_eq!(*url, format!("{}/api/v1/pods", server.url)),
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
async fn insecure_mode_connects_to_a_server_of_an_unknown_ca() -> TestResult {
    let ca = TestCa::new("unknown ca")?;
    let server = TestServer::start(Some(ca.server_tls(&["elsewhere.example"], true)?), |_| async {
        json(200, &pod_list(&[object("Pod", "a", "p", 3)], "9", None))
    })
    .await?;
    let mut cfg = config(&server.url)?;
    cfg.insecure_skip_tls_verify = true;
    let client = Client::new(cfg)?;

    let pods = bounded(client.run(&Request::list::<Pod>())).await??;

    assert_eq!(pods.items.len(), 1);
    assert_eq!(pods.metadata.resource_version.as_deref(), Some("9"));
    Ok(())
}

#[tokio::test]
async fn tls_server_name_is_verified_and_sent_instead_of_the_url_host() -> TestResult {
    let ca = TestCa::new("cluster ca")?;
    let server = TestServer::start(
        Some(ca.server_tls(&["kubernetes.default.svc"], true)?),
        |_| async { json(200, &pod_list(&[], "1", None)) },
    )
    .await?;

    let without = Client::new(tls_config(&server.url, &ca)?)?;
    let err = bounded(without.run(&Request::list::<Pod>()))
        .await?
        .err()
        .ok_or("the certificate does not name 127.0.0.1")?;
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("invalid peer certificate: certificate not valid for name \"127.0.0.1\""),
        "{err}"
    );

    let mut cfg = tls_config(&server.url, &ca)?;
    cfg.tls_server_name = Some("kubernetes.default.svc".into());
    let with = Client::new(cfg)?;
    bounded(with.run(&Request::list::<Pod>())).await??;

    let journal = server.journal();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].sni.as_deref(), Some("kubernetes.default.svc"));
    Ok(())
}

/// Starts a server that requires a client certificate of `ca` and answers with an empty list.
async fn mtls_server(ca: &TestCa) -> Result<TestServer, TestError> {
    let mut tls = ca.server_tls(&["127.0.0.1"], true)?;
    tls.client_ca = Some(ca.der());
    Ok(TestServer::start(Some(tls), |_| async { json(200, &pod_list(&[], "1", None)) }).await?)
}

async fn list_with_identity(
    server: &TestServer,
    ca: &TestCa,
    cert_pem: String,
    key_pem: &str,
) -> Result<(), TestError> {
    let mut cfg = tls_config(&server.url, ca)?;
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
    let key = KeyPair::from_pem(include_str!("support/keys/rsa-pkcs8.pem"))?;
    let cert = ca.client_cert(&key, "rsa-user")?;

    list_with_identity(&server, &ca, cert, include_str!("support/keys/rsa-pkcs1.pem")).await?;

    assert_eq!(server.journal()[0].client_cn.as_deref(), Some("rsa-user"));
    Ok(())
}

#[tokio::test]
async fn a_client_certificate_with_an_ec_sec1_key_reaches_the_server() -> TestResult {
    let ca = TestCa::new("ca")?;
    let server = mtls_server(&ca).await?;
    let key = KeyPair::from_pem(include_str!("support/keys/ec-pkcs8.pem"))?;
    let cert = ca.client_cert(&key, "ec-user")?;

    list_with_identity(&server, &ca, cert, include_str!("support/keys/ec-sec1.pem")).await?;

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
    let client = Client::new(tls_config(&server.url, &ca)?)?;

    let err = bounded(client.run(&Request::list::<Pod>()))
        .await?
        .err()
        .ok_or("the server requires a certificate")?;

    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(server.journal().is_empty());
    Ok(())
}

// ---- HTTP versions and connections ------------------------------------------------------------

#[tokio::test]
async fn http2_is_negotiated_and_concurrent_requests_share_one_connection() -> TestResult {
    let ca = TestCa::new("ca")?;
    let server = TestServer::start(
        Some(ca.server_tls(&["127.0.0.1"], true)?),
        |seen: Seen| async move {
            let name = seen.path.rsplit('/').next().unwrap_or_default().to_string();
            json(200, &object("ConfigMap", "a", &name, 1))
        },
    )
    .await?;
    let client = Client::new(tls_config(&server.url, &ca)?)?;

    // The first request opens the connection; ALPN makes it HTTP/2.
    let first = bounded(client.stream(&Request::get::<ConfigMap>("first").namespace("a"))).await??;
    assert_eq!(first.version(), Version::HTTP_2);
    drop(first);

    let requests = (0..24).map(|i| {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .run(&Request::get::<ConfigMap>(&format!("cm-{i}")).namespace("a"))
                .await
        })
    });
    let results = bounded(futures_util::future::join_all(requests)).await?;
    for (i, result) in results.into_iter().enumerate() {
        let cm = result??;
        assert_eq!(cm.metadata.name, Some(format!("cm-{i}")));
    }

    assert_eq!(server.connections(), 1);
    let journal = server.journal();
    assert_eq!(journal.len(), 25);
    assert!(journal.iter().all(|s| s.version == Version::HTTP_2));
    Ok(())
}

#[tokio::test]
async fn a_tls_server_without_h2_is_spoken_to_in_http1() -> TestResult {
    let ca = TestCa::new("ca")?;
    let server = TestServer::start(Some(ca.server_tls(&["127.0.0.1"], false)?), |_| async {
        json(200, &pod_list(&[], "1", None))
    })
    .await?;
    let client = Client::new(tls_config(&server.url, &ca)?)?;

    let body = bounded(client.stream(&Request::list::<Pod>())).await??;

    assert_eq!(body.version(), Version::HTTP_11);
    assert_eq!(server.journal()[0].version, Version::HTTP_11);
    Ok(())
}

#[tokio::test]
async fn plain_http_works_with_http1_and_reuses_the_connection() -> TestResult {
    let server = pod_server().await?;
    let client = Client::new(config(&server.url)?)?;

    for _ in 0..3 {
        let pod = bounded(client.run(&Request::get::<Pod>("web"))).await??;
        assert_eq!(pod.metadata.name.as_deref(), Some("web"));
    }

    assert_eq!(server.connections(), 1);
    assert!(server.journal().iter().all(|s| s.version == Version::HTTP_11));
    Ok(())
}

#[tokio::test]
async fn user_agent_accept_and_gzip_are_asked_for_and_gzip_is_decoded() -> TestResult {
    let server = TestServer::start(None, |seen: Seen| async move {
        let list = pod_list(&[object("Pod", "a", "p", 3)], "5", None);
        let wants_gzip = seen.header("accept-encoding").is_some_and(|v| v.contains("gzip"));
        if !wants_gzip {
            return json(200, &list);
        }
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = std::io::Write::write_all(&mut enc, list.to_string().as_bytes());
        let gz = enc.finish().unwrap_or_default();
        let mut reply = Response::new(Full::new(Bytes::from(gz)));
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
    assert_eq!(first_chunk.first(), Some(&b'{'), "streams are not compressed");
    let journal = server.journal();
    assert_eq!(journal[0].header("accept-encoding").as_deref(), Some("gzip"));
    assert_eq!(journal[1].header("accept-encoding"), None);
    for seen in &journal {
        assert_eq!(
            seen.header("user-agent"),
            Some(format!("kazan/{}", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(seen.header("accept").as_deref(), Some("application/json"));
    }
    Ok(())
}

#[tokio::test]
async fn an_http_proxy_tunnels_the_connection_with_connect() -> TestResult {
    let ca = TestCa::new("ca")?;
    let server = TestServer::start(Some(ca.server_tls(&["127.0.0.1"], true)?), |_| async {
        json(200, &pod_list(&[], "1", None))
    })
    .await?;
    let proxy = TestProxy::start().await?;
    let mut cfg = tls_config(&server.url, &ca)?;
    let proxy_with_user = proxy.url.replace("http://", "http://alice:s3cret@");
    cfg.proxy_url = Some(proxy_with_user.parse()?);
    let client = Client::new(cfg)?;

    bounded(client.run(&Request::list::<Pod>())).await??;

    let connects = proxy.connects.lock().map(|c| c.clone()).unwrap_or_default();
    assert_eq!(connects.len(), 1);
    let authority = server.url.trim_start_matches("https://");
    assert!(connects[0].starts_with(&format!("CONNECT {authority} HTTP/1.1\r\n")));
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
async fn the_request_deadline_fires_when_the_server_never_answers() -> TestResult {
    let server = TestServer::start(None, |_| std::future::pending::<Reply>()).await?;
    let mut cfg = config(&server.url)?;
    cfg.request_timeout = Duration::from_millis(200);
    let client = Client::new(cfg)?;

    let err = bounded(client.run(&Request::list::<Pod>()))
        .await?
        .err()
        .ok_or("no answer came")?;
    match &err {
        Error::Timeout { url, what, after } => {
            assert_eq!(*url, format!("{}/api/v1/pods", server.url));
            assert_eq!(*what, "request");
            assert_eq!(*after, Duration::from_millis(200));
        }
        other => return Err(format!("expected a timeout, got {other:?}").into()),
    }
    assert!(err.is_retryable());

    let err = bounded(client.stream(&Request::watch_list::<Pod>().resource_version("1")))
        .await?
        .err()
        .ok_or("no headers came")?;
    assert!(
        matches!(
            err,
            Error::Timeout {
                what: "response headers",
                ..
            }
        ),
        "{err:?}"
    );
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
async fn a_stream_body_outlives_the_request_deadline() -> TestResult {
    // A chunked body in two parts from a raw socket (the support server answers with whole
    // bodies). The second part is released only once the request deadline has long passed.
    const DEADLINE: Duration = Duration::from_secs(1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let slow = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok((mut tcp, _)) = listener.accept().await else {
            return;
        };
        let mut buf = [0u8; 4096];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n11\r\n{\"type\":\"ADDED\"}\n\r\n")
            .await;
        let _ = tokio::time::timeout(BOUND, released).await;
        let _ = tcp
            .write_all(b"14\r\n{\"type\":\"MODIFIED\"}\n\r\n0\r\n\r\n")
            .await;
    });
    let mut cfg = config(&format!("http://{addr}"))?;
    cfg.request_timeout = DEADLINE;
    let client = Client::new(cfg)?;

    let mut body = bounded(client.stream(&Request::watch_list::<Pod>().resource_version("1"))).await??;
    let first = bounded(body.chunk()).await?.ok_or("no first part")??;
    tokio::time::sleep(DEADLINE * 2).await;
    let _ = release.send(());
    let mut received = first.to_vec();
    while let Some(chunk) = bounded(body.chunk()).await? {
        received.extend_from_slice(&chunk?);
    }

    assert_eq!(received, b"{\"type\":\"ADDED\"}\n{\"type\":\"MODIFIED\"}\n");
    slow.await?;
    Ok(())
}

#[tokio::test]
async fn a_stream_checks_the_status_before_any_body() -> TestResult {
    let server = TestServer::start(None, |_| async {
        json(
            403,
            &status(
                403,
                "Forbidden",
                "pods is forbidden: User \"system:serviceaccount:demo:app\" cannot watch resource \"pods\"",
            ),
        )
    })
    .await?;
    let client = Client::new(config(&server.url)?)?;

    let err = bounded(client.stream(&Request::watch_list::<Pod>().resource_version("5")))
        .await?
        .err()
        .ok_or("403 expected")?;

    assert_eq!(err.status_code(), Some(403));
    assert_eq!(err.api().and_then(|a| a.reason()), Some("Forbidden"));
    Ok(())
}

// ---- Requests ---------------------------------------------------------------------------------

/// A server with five pods, served two per page; a `continue` token is the index of the next item.
/// `expire_once` answers the first continued request with 410 Expired.
async fn paged_server(expire_once: bool) -> std::io::Result<TestServer> {
    let expired = Arc::new(AtomicUsize::new(usize::from(expire_once)));
    TestServer::start(None, move |seen: Seen| {
        let expired = expired.clone();
        async move {
            let pods: Vec<_> = (0..5)
                .map(|i| object("Pod", "a", &format!("p{i}"), 10 + i))
                .collect();
            let start: usize = seen.param("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
            if start > 0 && expired.fetch_sub(1, Ordering::SeqCst) == 1 {
                let mut body = status(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result.",
                );
                body["metadata"] = serde_json::json!({"continue": "fresh"});
                return json(410, &body);
            }
            let limit: usize = seen.param("limit").and_then(|l| l.parse().ok()).unwrap_or(5);
            let end = (start + limit).min(pods.len());
            let next = (end < pods.len()).then(|| end.to_string());
            json(
                200,
                &pod_list(pods.get(start..end).unwrap_or_default(), "42", next.as_deref()),
            )
        }
    })
    .await
}

#[tokio::test]
async fn list_all_follows_continue_to_the_last_page() -> TestResult {
    let server = paged_server(false).await?;
    let client = Client::new(config(&server.url)?)?;

    let req = Request::list::<Pod>()
        .namespace("a")
        .limit(2)
        .resource_version("0");
    let pods = bounded(client.list_all(&req)).await??;

    let names: Vec<_> = pods
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4"]);
    assert_eq!(pods.metadata.resource_version.as_deref(), Some("42"));
    assert_eq!(pods.metadata.continue_, None);
    let paths: Vec<_> = server.journal().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/namespaces/a/pods?limit=2&resourceVersion=0",
            "/api/v1/namespaces/a/pods?limit=2&continue=2",
            "/api/v1/namespaces/a/pods?limit=2&continue=4",
        ]
    );
    Ok(())
}

#[tokio::test]
async fn list_all_starts_over_once_when_a_continue_token_expires() -> TestResult {
    let server = paged_server(true).await?;
    let client = Client::new(config(&server.url)?)?;

    let pods = bounded(client.list_all(&Request::list::<Pod>().namespace("a").limit(2))).await??;

    assert_eq!(pods.items.len(), 5);
    let paths: Vec<_> = server.journal().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/namespaces/a/pods?limit=2",
            "/api/v1/namespaces/a/pods?limit=2&continue=2",
            "/api/v1/namespaces/a/pods?limit=2",
            "/api/v1/namespaces/a/pods?limit=2&continue=2",
            "/api/v1/namespaces/a/pods?limit=2&continue=4",
        ]
    );
    Ok(())
}

#[tokio::test]
async fn single_object_requests_without_a_namespace_use_the_default_one() -> TestResult {
    let server = pod_server().await?;
    let mut cfg = config(&server.url)?;
    cfg.default_namespace = "team-a".into();
    let client = Client::new(cfg)?;
    assert_eq!(client.default_namespace(), "team-a");

    bounded(client.run(&Request::get::<Pod>("web"))).await??;
    bounded(client.run_raw(&Request::delete::<Pod>("web"))).await??;
    bounded(client.run_raw(&Request::list::<Pod>())).await??;
    bounded(client.run_raw(&Request::get::<Pod>("web").namespace("other"))).await??;

    let seen: Vec<_> = server
        .journal()
        .into_iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert_eq!(
        seen,
        [
            "GET /api/v1/namespaces/team-a/pods/web",
            "DELETE /api/v1/namespaces/team-a/pods/web",
            "GET /api/v1/pods",
            "GET /api/v1/namespaces/other/pods/web",
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_server_url_with_a_path_prefixes_every_request() -> TestResult {
    let server = pod_server().await?;
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
    let server = pod_server().await?;
    let client = Client::new(config(&server.url)?)?;

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
    let server = TestServer::start(None, |seen: Seen| async move {
        if seen.path == "/api" {
            json(
                200,
                &serde_json::json!({"kind": "APIVersions", "versions": ["v1"]}),
            )
        } else {
            json(
                404,
                &status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            )
        }
    })
    .await?;
    let client = Client::new(config(&server.url)?)?;

    let response = bounded(client.send_raw(http::Request::get("/api").body(Bytes::new())?)).await??;
    assert_eq!(response.status(), StatusCode::OK);
    let body = bounded(response.into_body().read_all(1 << 20)).await??;
    let versions: serde_json::Value = serde_json::from_slice(&body)?;
    assert_eq!(versions["versions"][0], "v1");

    let missing = bounded(client.send_raw(http::Request::get("/apis/nope").body(Bytes::new())?)).await?;
    assert_eq!(missing.err().and_then(|e| e.status_code()), Some(404));

    let elsewhere = client
        .send_raw(http::Request::get("http://127.0.0.2:1/api").body(Bytes::new())?)
        .await;
    assert!(matches!(elsewhere, Err(Error::InvalidRequest(_))));
    assert_eq!(server.journal().len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_401_without_refreshable_credentials_is_returned_after_one_request() -> TestResult {
    let server = TestServer::start(None, |_| async {
        json(401, &status(401, "Unauthorized", "Unauthorized"))
    })
    .await?;
    let client = Client::new(config(&server.url)?)?;

    let err = bounded(client.run(&Request::list::<Pod>()))
        .await?
        .err()
        .ok_or("401 expected")?;

    assert_eq!(err.status_code(), Some(401));
    assert_eq!(err.api().and_then(|a| a.reason()), Some("Unauthorized"));
    assert_eq!(server.journal().len(), 1);
    assert_eq!(server.journal()[0].header("authorization"), None);
    Ok(())
}

// ---- Secrecy ----------------------------------------------------------------------------------

#[tokio::test]
async fn debug_and_display_of_the_client_and_its_errors_never_show_the_token() -> TestResult {
    const TOKEN: &str = "tok-7f3e9a-very-secret";
    let server = TestServer::start(None, |_| async {
        json(401, &status(401, "Unauthorized", "Unauthorized"))
    })
    .await?;
    let addr = closed_port().await?;

    for url in [server.url.clone(), format!("http://{addr}")] {
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
