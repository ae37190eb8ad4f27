//! `--metrics-addr`: the watcher's metrics in the Prometheus text format at `GET /metrics`, from
//! kazan's `prometheus-client` registry, on a minimal HTTP/1.1 responder (one request per
//! connection: what a Prometheus scraper does).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use kazan::runtime::metrics::{RuntimeMetrics, WatcherMetrics};
use prometheus_client::registry::Registry;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::error::CliError;

/// How long a scraper may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request head read.
const MAX_HEAD: usize = 8 * 1024;

/// Serves `/metrics` on `addr` in the background; returns the watcher's metrics handle.
pub async fn serve(addr: SocketAddr, watcher: &str) -> Result<WatcherMetrics, CliError> {
    let mut registry = Registry::default();
    let metrics = RuntimeMetrics::new(&mut registry);
    let handle = metrics.watcher(watcher);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| CliError::Metrics { addr, source })?;
    let registry = Arc::new(registry);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let registry = registry.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(stream, &registry).await {
                    tracing::debug!("metrics request: {e}");
                }
            });
        }
    });
    Ok(handle)
}

async fn answer(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    if tokio::time::timeout(READ_TIMEOUT, read).await.is_err() {
        return Ok(());
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => {
            let mut text = String::new();
            match prometheus_client::encoding::prometheus_text::encode(&mut text, registry) {
                Ok(()) => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", text),
                Err(e) => ("500 Internal Server Error", "text/plain", format!("{e}\n")),
            }
        }
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "only /metrics is served here\n".into(),
        ),
        _ => ("405 Method Not Allowed", "text/plain", "GET /metrics\n".into()),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}
