//! The API server stops and starts again on the same port while several watchers are open, over
//! plain HTTP (HTTP/1.1 stream connections) and over TLS (HTTP/2 lanes): each watcher reconnects
//! within its backoff and delivers the objects created after the restart.
//!
//! A stopping server ends its watches cleanly, may still accept a connection or a request while it
//! closes, and then its connections go away; none of that may leave a watcher waiting on a
//! connection to a server that is gone (issue 23: a watcher waited 60 s for the response headers
//! on such a connection).
//!
//! The restarted server keeps counting resourceVersions from where the first one stopped (as a
//! real API server does, its versions come from etcd), so the watchers resume from the version
//! they had and miss nothing.

use crate::support;

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use k8s_openapi::api::core::v1::ConfigMap;
use kazan::{
    Client, Config, Request,
    watcher::{BackoffConfig, EventType, Watcher, WatcherHandle},
};
use kazan_apiserver::ApiServer;
use serde_json::{Value, json};
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};
use support::{TestError, TestResult};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// How many watchers are open across each restart.
const WATCHERS: usize = 6;
/// The watchers' backoff: a reconnect waits at most `BACKOFF_MAX`.
const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// How long a watcher may take to deliver an object created after the restart: generous next to
/// the backoff (a few failed attempts while the server is down, each at most `BACKOFF_MAX` apart,
/// plus the server's one-second Retry-After on a too-large version), far below the 60 s request
/// deadline a watch stalled on a dead connection waits for.
const DELIVERY_BOUND: Duration = Duration::from_secs(15);

async fn start(addr: SocketAddr, tls: bool) -> Result<ApiServer, TestError> {
    Ok(ApiServer::builder()
        .addr(addr)
        .tls(tls)
        .namespaces(&["w", "filler"])
        .start()
        .await?)
}

fn cm(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}})
}

/// Writes in another namespace until the new server's resourceVersion is past `rv`.
fn catch_up(server: &ApiServer, rv: u64) -> TestResult {
    for i in 0..=rv {
        if server.resource_version() > rv {
            return Ok(());
        }
        server.create(cm("filler", &format!("f-{i}")))?;
    }
    Ok(())
}

/// The next ADDED ConfigMap's name, within `bound`.
async fn next_added(
    w: &mut WatcherHandle<kazan::watcher::Event<ConfigMap>>,
    bound: Duration,
) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + bound;
    // Bounded: each round takes one event, and there are few besides the ADDED ones.
    for _ in 0..1000 {
        let event = match tokio::time::timeout_at(deadline, w.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => return Err("the watcher's channel closed".into()),
            Err(_) => return Err(format!("no object within {bound:?}")),
        };
        if event.event_type() == EventType::Added
            && let Some(object) = event.object()
        {
            return Ok(object.metadata.name.clone().unwrap_or_default());
        }
    }
    Err("too many events without an ADDED one".into())
}

async fn watchers_resume_across_restarts(tls: bool) -> TestResult {
    let mut server = start("127.0.0.1:0".parse()?, tls).await?;
    let addr = server.addr();
    let mut config = Config::new(server.url().parse()?);
    // Each server generates its own CA.
    config.insecure_skip_tls_verify = tls;
    let client = Client::new(config)?;
    let options = || {
        kazan::watcher::WatcherOptions::new()
            .backoff(BackoffConfig {
                initial: Duration::from_millis(50),
                max: BACKOFF_MAX,
                reset_after: Duration::from_secs(60),
            })
            .resource_version(server.resource_version().to_string())
            .log(None)
    };
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        watchers.push(Watcher::start(
            client.clone(),
            Request::list::<ConfigMap>().namespace("w"),
            options(),
        )?);
    }
    assert!(
        server
            .wait_for_watches("configmaps", WATCHERS, Duration::from_secs(20))
            .await
    );
    for round in 0..3 {
        let name = format!("before-{round}");
        server.create(cm("w", &name))?;
        for w in &mut watchers {
            assert_eq!(next_added(w, DELIVERY_BOUND).await?, name);
        }
        let rv = server.resource_version();
        server.shutdown().await;
        drop(server);
        server = start(addr, tls).await?;
        catch_up(&server, rv)?;
        // Stopped again as soon as the watchers are back: their watches end at once with no
        // event, so they back off, and the connections they kept meanwhile are closed by the
        // stopping server before they are taken again.
        assert!(
            server
                .wait_for_watches("configmaps", WATCHERS, Duration::from_secs(20))
                .await
        );
        let rv = server.resource_version();
        server.shutdown().await;
        drop(server);
        server = start(addr, tls).await?;
        catch_up(&server, rv)?;
        let name = format!("after-{round}");
        server.create(cm("w", &name))?;
        for (i, w) in watchers.iter_mut().enumerate() {
            let got = next_added(w, DELIVERY_BOUND)
                .await
                .map_err(|e| format!("round {round}, watcher {i}: {e}"))?;
            assert_eq!(got, name, "round {round}, watcher {i}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_over_plain_http_resume_within_their_backoff_when_the_server_restarts_on_the_same_port()
-> TestResult {
    watchers_resume_across_restarts(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_over_tls_resume_within_their_backoff_when_the_server_restarts_on_the_same_port()
-> TestResult {
    watchers_resume_across_restarts(true).await
}

/// Reads a stream request's body to its end, within `bound`.
async fn read_to_end(client: &Client, bound: Duration) -> Result<Bytes, TestError> {
    let request = Request::watch_list::<ConfigMap>().resource_version("1");
    let read = async {
        let body = client.stream(&request).await?;
        body.read_all(1 << 20).await
    };
    Ok(tokio::time::timeout(bound, read)
        .await
        .map_err(|_| format!("no answer within {bound:?}"))??)
}

/// A server that answers one request per connection with an empty 200 (keeping the connection
/// open, as HTTP/1.1 allows), then closes the connection after `close_after`, reading on so that
/// the close is a clean FIN. Returns its URL and how many connections it accepted.
async fn closing_server(close_after: Duration) -> Result<(String, Arc<AtomicUsize>), TestError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
                if tcp.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                tokio::time::sleep(close_after).await;
                let _ = tcp.shutdown().await;
                // Drain whatever comes, so the close stays a FIN (no RST for unread data).
                while let Ok(n) = tcp.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    Ok((url, accepted))
}

/// A server ends a watch and then closes the connection (as a server does on its way down, or at
/// its idle timeout): the next watch does not go on that connection, where it would wait for an
/// answer that never comes until the request deadline (60 s by default), but on a new one. A raw
/// server, as neither the embedded server nor the one in `support/` closes a kept connection on
/// its own.
#[tokio::test]
async fn a_watch_after_one_whose_server_closed_the_connection_goes_on_a_new_connection() -> TestResult {
    let (url, accepted) = closing_server(Duration::from_millis(50)).await?;
    let client = Client::new(Config::new(url.parse()?))?;
    for round in 0..3 {
        assert_eq!(
            read_to_end(&client, DELIVERY_BOUND).await?,
            Bytes::new(),
            "round {round}"
        );
        // The server's FIN arrives while the connection is kept.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    Ok(())
}
