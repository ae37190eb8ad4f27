//! A small HTTP(S) test server and CONNECT proxy on loopback, for what the embedded API server
//! cannot do: require client certificates, present certificates of a chosen CA and name, offer
//! or withhold HTTP/2, never answer, or hold a TCP connection without a TLS handshake.
//!
//! Everything binds `127.0.0.1:0` and stops when the test's runtime ends. What every crate's
//! tests share (the wait bound, `bounded`, `b64`, the PKI) comes from `kazan-test-support` and is
//! re-exported here under the names the tests use.
#![allow(dead_code)] // two test binaries (`it`, `secrets`) each use a different part of it

pub mod impersonation;
pub mod logs;
pub mod plugin;

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_rustls::TlsAcceptor;

pub use kazan_test_support::{TestError, TestResult, WAIT, b64, bounded, parse_metrics, pki, query_param};

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The HTTP version.
    pub version: Version,
    /// The body.
    pub body: Bytes,
    /// The TLS server name the client sent (SNI), if TLS.
    pub sni: Option<String>,
    /// The common name of the client certificate, if one was presented.
    pub client_cn: Option<String>,
}

impl Seen {
    /// A query parameter's (still percent-encoded) value.
    pub fn param(&self, key: &str) -> Option<String> {
        query_param(self.path.split_once('?')?.1, key)
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// What the server answers.
pub type Reply = Response<Full<Bytes>>;
type Handler = Arc<dyn Fn(Seen) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// TLS settings of a test server.
pub struct ServerTls {
    /// The server's certificate chain.
    pub chain: Vec<CertificateDer<'static>>,
    /// Its key.
    pub key: PrivateKeyDer<'static>,
    /// Require a client certificate issued by this CA.
    pub client_ca: Option<CertificateDer<'static>>,
    /// Offer HTTP/2 by ALPN (else only `http/1.1`).
    pub h2: bool,
}

/// A running test server.
pub struct TestServer {
    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub url: String,
    connections: Arc<AtomicUsize>,
    journal: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Starts a server; `handler` answers every request.
    pub async fn start<F, Fut>(tls: Option<ServerTls>, handler: F) -> io::Result<Self>
    where
        F: Fn(Seen) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |seen| Box::pin(handler(seen)));
        let acceptor = match tls {
            Some(tls) => Some(TlsAcceptor::from(Arc::new(
                server_config(tls).map_err(io::Error::other)?,
            ))),
            None => None,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let connections = Arc::new(AtomicUsize::new(0));
        let journal = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(accept_loop(
            listener,
            acceptor,
            handler,
            connections.clone(),
            journal.clone(),
        ));
        Ok(TestServer {
            url: format!("{scheme}://{addr}"),
            connections,
            journal,
            task,
        })
    }

    /// How many TCP connections the server accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Every request seen so far, in order.
    pub fn journal(&self) -> Vec<Seen> {
        self.journal.lock().map(|j| j.clone()).unwrap_or_default()
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    handler: Handler,
    connections: Arc<AtomicUsize>,
    journal: Arc<Mutex<Vec<Seen>>>,
) {
    while let Ok((tcp, _)) = listener.accept().await {
        connections.fetch_add(1, Ordering::SeqCst);
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        let journal = journal.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve(TokioIo::new(tcp), None, None, handler, journal).await,
                Some(acceptor) => {
                    // A failed handshake is what the client under test reports; nothing to do here.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let (_, conn) = tls.get_ref();
                    let sni = conn.server_name().map(str::to_string);
                    let client_cn = conn
                        .peer_certificates()
                        .and_then(|certs| certs.first())
                        .and_then(|c| common_name(c));
                    serve(TokioIo::new(tls), sni, client_cn, handler, journal).await;
                }
            }
        });
    }
}

async fn serve<IO>(
    io: TokioIo<IO>,
    sni: Option<String>,
    client_cn: Option<String>,
    handler: Handler,
    journal: Arc<Mutex<Vec<Seen>>>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: http::Request<Incoming>| {
        let handler = handler.clone();
        let journal = journal.clone();
        let sni = sni.clone();
        let client_cn = client_cn.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let seen = Seen {
                method: parts.method,
                path: parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
                headers: parts.headers,
                version: parts.version,
                body,
                sni,
                client_cn,
            };
            if let Ok(mut j) = journal.lock() {
                j.push(seen.clone());
            }
            Ok::<_, std::convert::Infallible>(handler(seen).await)
        }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, service)
        .await;
}

fn server_config(tls: ServerTls) -> Result<ServerConfig, TestError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match tls.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(tls.chain, tls.key)?;
    config.alpn_protocols = if tls.h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(config)
}

/// The subject common name of a certificate, found by its OID (2.5.4.3) and read as a string.
fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    const CN_OID: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
    let der = cert.as_ref();
    // The last CN in the certificate is the subject's (the issuer's comes first).
    let at = der.windows(CN_OID.len()).rposition(|w| w == CN_OID)?;
    let rest = der.get(at + CN_OID.len()..)?;
    let len = usize::from(*rest.get(1)?);
    let value = rest.get(2..2 + len)?;
    String::from_utf8(value.to_vec()).ok()
}

/// A test certificate authority.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    /// A new CA with a fresh P-256 key.
    pub fn new(name: &str) -> Result<Self, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(TestCa { issuer })
    }

    /// The CA certificate, PEM (what a kubeconfig's `certificate-authority-data` holds).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// TLS settings for a server whose certificate names `names` (DNS names or IPs).
    pub fn server_tls(&self, names: &[&str], h2: bool) -> Result<ServerTls, TestError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, "test server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ServerTls {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())?,
            client_ca: None,
            h2,
        })
    }

    /// A client certificate (PEM) with common name `cn` for the public half of `key`.
    pub fn client_cert(&self, key: &KeyPair, cn: &str) -> Result<String, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        Ok(params.signed_by(key, &self.issuer)?.pem())
    }

    /// A client certificate (PEM) like [`TestCa::client_cert`] that expired at the end of 2020
    /// (valid from 2020-01-01 to 2020-12-31).
    pub fn expired_client_cert(&self, key: &KeyPair, cn: &str) -> Result<String, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 12, 31);
        Ok(params.signed_by(key, &self.issuer)?.pem())
    }
}

/// A JSON answer.
pub fn json(status: u16, value: &serde_json::Value) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(value.to_string())));
    *reply.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    reply.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    reply
}

/// An address on which nothing listens (bound, then released).
pub async fn closed_port() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    listener.local_addr()
}

/// A TCP listener that accepts connections and never sends a byte (a stuck TLS handshake).
pub async fn silent_listener() -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    Ok((addr, task))
}

/// An HTTP CONNECT proxy that tunnels to loopback addresses only.
pub struct TestProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Every CONNECT request head it received.
    pub connects: Arc<Mutex<Vec<String>>>,
    tunnels: Arc<Mutex<Vec<JoinHandle<()>>>>,
    task: JoinHandle<()>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

impl TestProxy {
    /// Starts the proxy.
    pub async fn start() -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let connects = Arc::new(Mutex::new(Vec::new()));
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let seen = connects.clone();
        let open = tunnels.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let seen = seen.clone();
                let tunnel = tokio::spawn(async move {
                    let _ = tunnel(client, seen).await;
                });
                if let Ok(mut open) = open.lock() {
                    open.push(tunnel);
                }
            }
        });
        Ok(TestProxy {
            url,
            connects,
            tunnels,
            task,
        })
    }

    /// How many CONNECT requests it received.
    pub fn connect_count(&self) -> usize {
        self.connects.lock().map(|c| c.len()).unwrap_or_default()
    }

    /// Drops every tunnel at once, both sockets: to the client, its connections are lost.
    pub fn cut(&self) {
        if let Ok(mut open) = self.tunnels.lock() {
            for tunnel in open.drain(..) {
                tunnel.abort();
            }
        }
    }
}

async fn tunnel(mut client: TcpStream, seen: Arc<Mutex<Vec<String>>>) -> io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || client.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if let Ok(mut s) = seen.lock() {
        s.push(head.clone());
    }
    let target = head
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default()
        .to_string();
    if !target.starts_with("127.0.0.1:") {
        client.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").await?;
        return Ok(());
    }
    let mut upstream = TcpStream::connect(&target).await?;
    client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// A server that requires a client certificate of `ca` (the embedded one does not) and answers
/// every request with an empty `PodList`.
pub async fn mtls_server(ca: &TestCa) -> Result<TestServer, TestError> {
    let mut tls = ca.server_tls(&["127.0.0.1"], true)?;
    tls.client_ca = Some(ca.der());
    Ok(TestServer::start(Some(tls), |_| async {
        json(
            200,
            &serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []}),
        )
    })
    .await?)
}

/// A list against a server that does not answer ends at the request deadline (`Timeout` naming
/// the URL, retryable), and a watch at the response-headers deadline. `base` is the server's URL.
pub async fn assert_the_request_deadlines_fire(
    client: &kazan::Client,
    base: &str,
    deadline: std::time::Duration,
) -> Result<(), TestError> {
    use k8s_openapi::api::core::v1::Pod;
    use kazan::{Error, Request};
    let err = tokio::time::timeout(WAIT, client.run(&Request::list::<Pod>()))
        .await
        .map_err(|_| "the list did not end within its bound")?
        .err()
        .ok_or("no answer came")?;
    match &err {
        Error::Timeout { url, what, after } => {
            assert_eq!(*url, format!("{base}/api/v1/pods"));
            assert_eq!(*what, "request");
            assert_eq!(*after, deadline);
        }
        other => return Err(format!("expected a timeout, got {other:?}").into()),
    }
    assert!(err.is_retryable());

    let err = tokio::time::timeout(
        WAIT,
        client.stream(&Request::watch_list::<Pod>().resource_version("1")),
    )
    .await
    .map_err(|_| "the watch did not end within its bound")?
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

/// A list through `client` fails the TLS handshake: `Error::Tls` whose message has `fragment`
/// (rustls' words for why). `accepted` says what went wrong if the list succeeds. The error is
/// returned for the caller's own checks.
pub async fn assert_tls_refused(
    client: &kazan::Client,
    fragment: &str,
    accepted: &'static str,
) -> Result<kazan::Error, TestError> {
    use k8s_openapi::api::core::v1::Pod;
    use kazan::{Error, Request};
    let err = tokio::time::timeout(WAIT, client.run(&Request::list::<Pod>()))
        .await
        .map_err(|_| "the list did not end within its bound")?
        .err()
        .ok_or(accepted)?;
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains(fragment), "{err}");
    Ok(err)
}

/// Watcher options for tests: quick retries, quiet logs.
pub fn fast_watcher_options() -> kazan::watcher::WatcherOptions {
    kazan::watcher::WatcherOptions::new()
        .backoff(kazan::watcher::BackoffConfig {
            initial: std::time::Duration::from_millis(20),
            max: std::time::Duration::from_millis(200),
            reset_after: std::time::Duration::from_secs(60),
        })
        .log(None)
}

/// The metrics of `registry` as a Prometheus server scrapes and parses them.
pub fn scrape(
    registry: &prometheus_client::registry::Registry,
) -> Result<prometheus_parse::Scrape, TestError> {
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, registry)?;
    Ok(parse_metrics(&text)?)
}
