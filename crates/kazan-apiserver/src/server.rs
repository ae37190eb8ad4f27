//! The listener: accepts TCP connections (optionally TLS), serves each on its own task with
//! hyper-util's auto builder (HTTP/1.1 and HTTP/2), and shuts down gracefully: open watches end
//! cleanly, connections finish their answers, then close.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::handlers::handle;

/// How long a connection may take to finish after shutdown starts before it is dropped.
const GRACE: Duration = Duration::from_secs(5);
/// Streams per HTTP/2 connection unless [`ApiServerBuilder::max_concurrent_streams`] says
/// otherwise. (kube-apiserver advertises `--http2-max-streams-per-connection`, 100 when unset.)
///
/// [`ApiServerBuilder::max_concurrent_streams`]: crate::ApiServerBuilder::max_concurrent_streams
pub(crate) const MAX_STREAMS: u32 = 1000;

/// Accepts connections until `shutdown` is cancelled.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    max_streams: u32,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        app.observer.connection_accepted();
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let shutdown = shutdown.clone();
        match tls.clone() {
            None => {
                tracker.spawn(serve_connection(stream, app, shutdown, max_streams));
            }
            Some(acceptor) => {
                tracker.spawn(async move {
                    let handshake = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        r = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)) => r,
                    };
                    match handshake {
                        Ok(Ok(tls_stream)) => serve_connection(tls_stream, app, shutdown, max_streams).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// Serves one connection until it closes or the server shuts down; an HTTP/2 client may open
/// `max_streams` streams at once on it (SETTINGS_MAX_CONCURRENT_STREAMS).
async fn serve_connection<I>(io: I, app: Arc<App>, shutdown: CancellationToken, max_streams: u32)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| handle(app.clone(), request));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(max_streams);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(GRACE, connection).await;
        }
    }
}
