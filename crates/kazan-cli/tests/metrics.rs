//! `kazan watch --metrics-addr`: the watcher's metrics served at `/metrics` in the Prometheus text
//! format, parsed with a Prometheus text parser.

use crate::support;

use serde_json::json;
use support::{Cluster, Result};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// A loopback port nobody listens on now.
async fn free_port() -> Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?.port())
}

/// `GET path` over HTTP/1.1: the status line and the body.
async fn get(port: u16, path: &str) -> Result<(String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut reply = String::new();
    tokio::time::timeout(support::DEADLINE, stream.read_to_string(&mut reply)).await??;
    let (head, body) = reply.split_once("\r\n\r\n").ok_or("no end of the reply's head")?;
    Ok((
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    ))
}

fn events_total(body: &str) -> Result<Option<f64>> {
    let scrape = support::parse_metrics(body)?;
    Ok(scrape
        .samples
        .iter()
        .find_map(|s| match (&s.value, s.metric.as_str()) {
            (prometheus_parse::Value::Counter(v), "kazan_watcher_events_total")
                if s.labels.get("watcher") == Some("configmaps") =>
            {
                Some(*v)
            }
            _ => None,
        }))
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_serves_the_watchers_metrics_in_the_prometheus_text_format() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({"k": "v"}))?;
    let port = free_port().await?;
    let addr = format!("127.0.0.1:{port}");
    let mut kazan = cluster.kazan(&["watch", "configmaps", "-n", "w", "--metrics-addr", &addr])?;
    kazan.lines(2).await?;
    cluster.configmap("b", json!({}))?;
    kazan.lines(1).await?;
    // The counters are fed after each event and each second: the second event shows within a
    // few scrapes.
    let until = tokio::time::Instant::now() + support::DEADLINE;
    let (status, body) = loop {
        let (status, body) = get(port, "/metrics").await?;
        if events_total(&body)? == Some(2.0) || tokio::time::Instant::now() > until {
            break (status, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(events_total(&body)?, Some(2.0), "{body}");
    assert!(
        body.contains("kazan_watcher_seconds_since_last_event{watcher=\"configmaps\"}"),
        "{body}"
    );
    let (status, _) = get(port, "/other").await?;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    kazan.terminate().await?;
    Ok(())
}
