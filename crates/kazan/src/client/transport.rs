//! The connector stack, and the [`Transport`] that sends every request of a client: on HTTP/2
//! lanes when the server speaks HTTP/2; else a stream request on a connection its body drives
//! (see [`super::http1`]), and any other request through hyper-util's pooled client.
//!
//! From the socket up: hyper-util's [`HttpConnector`] (TCP keep-alive, `TCP_NODELAY`), optionally
//! through an HTTP CONNECT proxy ([`Tunnel`]), then TLS ([`HttpsConnector`], ALPN `h2` and
//! `http/1.1`, plain `http://` passed through), all under one connect deadline that covers TCP,
//! the proxy tunnel and the TLS handshake. HTTP/2 connections (see [`super::lanes`]), HTTP/1.1
//! stream connections and the pooled client's connections are all made by this stack. HTTP/2
//! connections are pinged every 30 s (closed after 15 s without an answer) so that a dead peer is
//! noticed, as client-go does.
//!
//! A client certificate from an exec plugin is read by TLS at each handshake. When the plugin
//! returns another one ([`CertEpoch`]), connections made before are given no new request: HTTP/2
//! lanes leave the set (their open streams, watches included, run on until they end, and the
//! connection closes then), kept HTTP/1.1 stream connections are closed, and the pooled client
//! is replaced by a new one (its idle connections close; requests in flight finish).

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Uri};
use http_body_util::Full;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, MaybeHttpsStream};
use hyper_util::{
    client::legacy::{
        Client as HyperClient,
        connect::{HttpConnector, proxy::Tunnel},
    },
    rt::{TokioExecutor, TokioIo, TokioTimer},
};
use tokio::net::TcpStream;
use tower_service::Service;

use crate::{
    auth::PluginCertificate,
    client::{
        Prepared,
        body::{Received, ResponseBody},
        http1::Http1Streams,
        lanes::{LaneFailure, Lanes, Route},
        response::{ConnectFailure, lane_send_error, send_error},
        slots, tls,
    },
    config::Config,
    error::{BoxError, ClientSetupError, Error},
};

/// HTTP/2 PING interval (client-go pings after as long without reading: `ReadIdleTimeout`).
pub(crate) const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long to wait for a PING answer before closing the connection (client-go's `PingTimeout`).
pub(crate) const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(15);
/// HTTP/2 flow-control windows and limits of a lane. A stream's window is hyper's default, far
/// above the spec's 64 KiB so that a watch's burst is not held back by round trips.
///
/// The connection's window covers every stream the lane may open, as Go's transport does (1 GiB,
/// `transportDefaultConnFlow`): data a consumer has not read yet holds its stream's window and
/// the same amount of the connection's, so with a smaller connection window (hyper's 5 MiB) three
/// unread watches stopped every other response on the connection. It is credit, not memory:
/// each stream still buffers at most its own window.
const H2_STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const H2_CONNECTION_WINDOW: u32 = 1024 * 1024 * 1024;
/// The most streams a lane carries at once, whatever the server allows, so that unread streams
/// can never take the whole connection window; beyond it, requests open another connection.
pub(crate) const H2_STREAMS_PER_LANE: usize = (H2_CONNECTION_WINDOW / H2_STREAM_WINDOW) as usize;
const H2_MAX_FRAME_SIZE: u32 = 16 * 1024;
const H2_MAX_SEND_BUFFER: usize = 1024 * 1024;
const H2_MAX_HEADER_LIST: u32 = 16 * 1024;
/// How long an unused pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The pooled HTTP client, for HTTP/1.1 servers and plain `http://`.
pub(crate) type HttpClient = HyperClient<Connector, Full<Bytes>>;

/// The full connector: TCP or proxy tunnel, then TLS, under the connect deadline.
pub(crate) type Connector = ConnectDeadline<HttpsConnector<TcpOrTunnel>>;

/// A connection as the connector makes it.
pub(crate) type Io = MaybeHttpsStream<TokioIo<TcpStream>>;

/// Which client certificate new connections present, for telling connections made with an
/// earlier exec plugin certificate from current ones. Always 0 without a plugin certificate.
#[derive(Clone, Debug, Default)]
pub(crate) struct CertEpoch(Option<Arc<PluginCertificate>>);

impl CertEpoch {
    /// The plugin certificate's generation: read before connecting, it is at most the
    /// generation of the certificate the connection presents.
    pub(crate) fn current(&self) -> u64 {
        self.0.as_ref().map_or(0, |cert| cert.generation())
    }
}

/// The pooled client, and the certificate generation its connections were made in.
struct Pooled {
    epoch: u64,
    client: HttpClient,
}

/// Sends the requests of a client (and its clones).
pub(crate) struct Transport {
    pooled: Mutex<Pooled>,
    /// For making a new pooled client when the client certificate changes.
    connector: Connector,
    epoch: CertEpoch,
    /// Stream requests over HTTP/1.1: connections their bodies drive.
    streams: Http1Streams,
    /// For `https://` servers; `None` for plain `http://`, which is always HTTP/1.1.
    lanes: Option<Lanes>,
}

impl Transport {
    /// The transport for `config`: nothing is connected until the first request. `plugin` is the
    /// exec plugin's client certificate, presented when the configuration has none of its own.
    pub(crate) fn new(
        config: &Config,
        plugin: Option<Arc<PluginCertificate>>,
    ) -> Result<Self, ClientSetupError> {
        // The kubeconfig's own certificate wins, as in client-go.
        let plugin = plugin.filter(|_| config.client_identity.is_none());
        let epoch = CertEpoch(plugin.clone());
        let connector = connector(config, plugin)?;
        let pooled = Mutex::new(Pooled {
            epoch: epoch.current(),
            client: pooled_client(&connector),
        });
        let origin = origin(&config.cluster_url)?;
        let streams = Http1Streams::new(origin.clone(), connector.clone(), epoch.clone());
        let lanes = match config.cluster_url.scheme_str() {
            Some("https") => {
                let mut h2 = h2::client::Builder::new();
                h2.initial_window_size(H2_STREAM_WINDOW)
                    .initial_connection_window_size(H2_CONNECTION_WINDOW)
                    .max_frame_size(H2_MAX_FRAME_SIZE)
                    .max_send_buffer_size(H2_MAX_SEND_BUFFER)
                    .max_header_list_size(H2_MAX_HEADER_LIST)
                    .enable_push(false)
                    // What h2 allows before the server's SETTINGS arrive.
                    .initial_max_send_streams(slots::ASSUMED_STREAMS);
                Some(Lanes::new(origin, connector.clone(), h2, epoch.clone()))
            }
            _ => None,
        };
        Ok(Transport {
            pooled,
            connector,
            epoch,
            streams,
            lanes,
        })
    }

    /// The pooled client; a new one (with no connection yet) if the client certificate changed
    /// since the current one was made.
    fn pooled(&self) -> HttpClient {
        let epoch = self.epoch.current();
        let mut pooled = self.pooled.lock().unwrap_or_else(PoisonError::into_inner);
        if pooled.epoch != epoch {
            tracing::debug!("client certificate changed: new HTTP/1.1 connections for later requests");
            *pooled = Pooled {
                epoch,
                client: pooled_client(&self.connector),
            };
        }
        pooled.client.clone()
    }

    /// Sends a request and returns the response as soon as its headers have come.
    pub(crate) async fn send(
        &self,
        prepared: &Prepared,
        credential: Option<&HeaderValue>,
    ) -> Result<http::Response<ResponseBody>, Error> {
        let url = prepared.url();
        let Some(lanes) = &self.lanes else {
            return self.send_http1(prepared, credential).await;
        };
        let mut resent = false;
        loop {
            let (lane, slot) = match lanes.route().await.map_err(|f| f.to_error(url))? {
                Route::Lane(lane, slot) => (lane, slot),
                Route::Pooled => return self.send_http1(prepared, credential).await,
            };
            match lane.send(prepared, credential).await {
                Ok(response) => {
                    return Ok(response.map(|body| ResponseBody::new(Received::Http2(body), Some(slot))));
                }
                // The connection closed before it took the request: safe to send again.
                Err(LaneFailure::Unsent(error)) if !resent => {
                    drop(slot);
                    lane.mark_closed();
                    tracing::debug!(%url, %error, "connection closed before the request was sent; sending it again");
                    resent = true;
                }
                Err(LaneFailure::Unsent(error) | LaneFailure::Failed(error)) => {
                    return Err(lane_send_error(url, error));
                }
            }
        }
    }

    /// HTTP/1.1: a stream on a connection its body drives, anything else through the pool.
    async fn send_http1(
        &self,
        prepared: &Prepared,
        credential: Option<&HeaderValue>,
    ) -> Result<http::Response<ResponseBody>, Error> {
        if !prepared.is_stream() {
            return self.send_pooled(prepared, credential).await;
        }
        // Boxed: the connection and its handshake are large, and inline they would add their
        // size to every request's future, HTTP/2 ones included.
        let response = Box::pin(self.streams.send(prepared, credential)).await?;
        Ok(response.map(|body| ResponseBody::new(Received::Http1Driven(Box::new(body)), None)))
    }

    async fn send_pooled(
        &self,
        prepared: &Prepared,
        credential: Option<&HeaderValue>,
    ) -> Result<http::Response<ResponseBody>, Error> {
        let request = prepared.request(credential, Full::new(prepared.body().clone()));
        let response = self
            .pooled()
            .request(request)
            .await
            .map_err(|e| send_error(prepared.url(), e))?;
        Ok(response.map(|body| ResponseBody::new(Received::Http1(body), None)))
    }
}

/// hyper-util's pooled client over `connector`.
fn pooled_client(connector: &Connector) -> HttpClient {
    HyperClient::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .http2_keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .http2_keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT)
        .http2_keep_alive_while_idle(true)
        .build(connector.clone())
}

/// Opens a connection to `origin` through the connector stack (TCP or proxy tunnel, then TLS,
/// under the connect deadline).
pub(crate) async fn connect(connector: &Connector, origin: &Uri) -> Result<Io, ConnectFailure> {
    let mut connector = connector.clone();
    std::future::poll_fn(|cx| connector.poll_ready(cx))
        .await
        .map_err(ConnectFailure::new)?;
    connector.call(origin.clone()).await.map_err(ConnectFailure::new)
}

/// `scheme://host:port/` of the server URL, without credentials or path: where connections go.
fn origin(url: &Uri) -> Result<Uri, ClientSetupError> {
    let unsupported = || ClientSetupError::UnsupportedScheme {
        url: without_userinfo(url),
    };
    let authority = url.authority().ok_or_else(unsupported)?.as_str();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    Uri::builder()
        .scheme(url.scheme_str().ok_or_else(unsupported)?)
        .authority(host)
        .path_and_query("/")
        .build()
        .map_err(|_| unsupported())
}

/// Builds the connector for `config`, presenting `plugin`'s certificate if given.
fn connector(config: &Config, plugin: Option<Arc<PluginCertificate>>) -> Result<Connector, ClientSetupError> {
    let mut tcp = HttpConnector::new();
    // The scheme is checked by the TLS layer above; this one must let `https` through.
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_keepalive(config.tcp_keepalive);
    tcp.set_connect_timeout(non_zero(config.connect_timeout));

    let transport = match &config.proxy_url {
        None => TcpOrTunnel::Direct(tcp),
        Some(proxy) => TcpOrTunnel::Tunnel(tunnel(proxy, tcp)?),
    };

    let tls_config = tls::client_config(config, plugin)?;
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config)
        .https_or_http();
    let builder = match tls::server_name_override(config)? {
        Some(name) => builder.with_server_name_resolver(FixedServerNameResolver::new(name)),
        None => builder,
    };
    let https = builder.enable_all_versions().wrap_connector(transport);

    Ok(ConnectDeadline {
        inner: https,
        deadline: non_zero(config.connect_timeout),
    })
}

/// A zero duration means "no deadline", as kubectl's `--request-timeout=0` does.
pub(crate) fn non_zero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// An HTTP CONNECT tunnel through `proxy`, with `Proxy-Authorization: Basic` when the URL
/// carries `user:password@`.
fn tunnel(proxy: &Uri, tcp: HttpConnector) -> Result<Tunnel<HttpConnector>, ClientSetupError> {
    let shown = without_userinfo(proxy);
    if proxy.scheme_str() != Some("http") {
        return Err(ClientSetupError::UnsupportedProxy { url: shown });
    }
    let Some(authority) = proxy.authority() else {
        return Err(ClientSetupError::UnsupportedProxy { url: shown });
    };
    let (userinfo, host) = match authority.as_str().rsplit_once('@') {
        Some((userinfo, host)) => (Some(userinfo), host),
        None => (None, authority.as_str()),
    };
    let target: Uri = format!("http://{host}")
        .parse()
        .map_err(|_| ClientSetupError::UnsupportedProxy { url: shown.clone() })?;
    let tunnel = Tunnel::new(target, tcp);
    Ok(match userinfo {
        Some(userinfo) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(userinfo);
            let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
                .map_err(|_| ClientSetupError::UnsupportedProxy { url: shown })?;
            value.set_sensitive(true);
            tunnel.with_auth(value)
        }
        None => tunnel,
    })
}

/// A URL as it may be shown: any `user:password@` is dropped.
pub(crate) fn without_userinfo(uri: &Uri) -> String {
    let text = uri.to_string();
    match (uri.authority(), uri.scheme_str()) {
        (Some(authority), Some(scheme)) if authority.as_str().contains('@') => {
            let host = authority
                .as_str()
                .rsplit_once('@')
                .map_or(authority.as_str(), |(_, h)| h);
            let rest = uri.path_and_query().map_or("", |p| p.as_str());
            format!("{scheme}://{host}{rest}")
        }
        _ => text,
    }
}

/// The TCP layer: a direct connection, or a CONNECT tunnel through a proxy.
#[derive(Clone, Debug)]
pub(crate) enum TcpOrTunnel {
    /// Straight to the server.
    Direct(HttpConnector),
    /// Through an HTTP proxy.
    Tunnel(Tunnel<HttpConnector>),
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl Service<Uri> for TcpOrTunnel {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            TcpOrTunnel::Direct(c) => c.poll_ready(cx).map_err(Into::into),
            TcpOrTunnel::Tunnel(c) => c.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        match self {
            TcpOrTunnel::Direct(c) => {
                let fut = c.call(dst);
                Box::pin(async move { fut.await.map_err(Into::into) })
            }
            TcpOrTunnel::Tunnel(c) => {
                let fut = c.call(dst);
                Box::pin(async move { fut.await.map_err(Into::into) })
            }
        }
    }
}

/// Bounds a whole connection setup (TCP, proxy tunnel, TLS handshake) by one deadline.
#[derive(Clone, Debug)]
pub(crate) struct ConnectDeadline<C> {
    inner: C,
    deadline: Option<Duration>,
}

/// The connect deadline passed; found in an error's source chain to tell it from other failures.
#[derive(Debug, thiserror::Error)]
#[error("connecting took longer than {0:?}")]
pub(crate) struct ConnectTimedOut(pub(crate) Duration);

impl<C> Service<Uri> for ConnectDeadline<C>
where
    C: Service<Uri>,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
    C::Response: Send + 'static,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = BoxFuture<C::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let fut = self.inner.call(dst);
        let deadline = self.deadline;
        Box::pin(async move {
            match deadline {
                Some(after) => match tokio::time::timeout(after, fut).await {
                    Ok(result) => result.map_err(Into::into),
                    Err(_) => Err(Box::new(ConnectTimedOut(after)) as BoxError),
                },
                None => fut.await.map_err(Into::into),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_the_origin_without_credentials() -> Result<(), ClientSetupError> {
        let url = Uri::from_static("https://admin:pw@10.0.0.1:6443/k8s/clusters/c-1");
        assert_eq!(origin(&url)?, Uri::from_static("https://10.0.0.1:6443/"));
        Ok(())
    }

    #[test]
    fn proxy_credentials_are_not_shown() {
        let uri = Uri::from_static("http://user:hunter2@proxy.local:3128/");
        assert_eq!(without_userinfo(&uri), "http://proxy.local:3128/");
    }

    #[test]
    fn only_http_proxies_are_accepted() {
        let mut config = Config::new(Uri::from_static("https://127.0.0.1:6443"));
        config.insecure_skip_tls_verify = true;
        config.proxy_url = Some(Uri::from_static("socks5://user:pw@127.0.0.1:1080"));
        let err = Transport::new(&config, None).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "the proxy URL socks5://127.0.0.1:1080/ is not supported: only http:// proxies (HTTP CONNECT) are"
            )
        );
    }
}
