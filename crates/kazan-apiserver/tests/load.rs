//! Load: thousands of concurrent watches each get every event in order; a watcher that never reads
//! is ended without holding up writers or other watchers.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use kazan_apiserver::ApiServer;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const WATCHES: usize = 2_000;
const WRITES: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_watches_each_receive_every_event_in_order() -> TestResult {
    let server = ApiServer::start().await?;
    let addr = server.addr();
    let started = std::time::Instant::now();
    let from = server.resource_version();
    let path =
        format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={from}&timeoutSeconds=120");
    // Open the watches a few hundred at a time (the listen backlog is finite).
    let opening = Arc::new(Semaphore::new(200));
    let mut watchers = JoinSet::new();
    for _ in 0..WATCHES {
        let path = path.clone();
        let opening = opening.clone();
        watchers.spawn(async move {
            let permit = opening.acquire_owned().await?;
            let mut watch = WatchStream::open(addr, &path).await?;
            drop(permit);
            if watch.status != 200 {
                return Err(format!("status {}", watch.status).into());
            }
            let mut names = Vec::with_capacity(WRITES);
            for _ in 0..WRITES {
                // The first event comes only once every watch is open: wait long.
                match watch.next_within(Duration::from_secs(50)).await? {
                    Some(Next::Event(event)) if event["type"] == "ADDED" => {
                        names.push(name_of(&event["object"]).to_string());
                    }
                    other => return Err(format!("unexpected {other:?}").into()),
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(names)
        });
    }
    assert!(
        server
            .wait_for_watches("configmaps", WATCHES, Duration::from_secs(50))
            .await,
        "only {:?} watches connected",
        server.stats().active_watches.get("configmaps")
    );
    eprintln!("{WATCHES} watches open after {:?}", started.elapsed());
    let expected: Vec<String> = (0..WRITES).map(|i| format!("cm-{i:03}")).collect();
    for name in &expected {
        server.create(configmap("default", name, json!({"k": "v"})))?;
    }
    let mut completed = 0;
    while let Some(result) = tokio::time::timeout(Duration::from_secs(55), watchers.join_next()).await? {
        let names = result??;
        assert_eq!(names, expected);
        completed += 1;
    }
    assert_eq!(completed, WATCHES);
    eprintln!("every watch got every event after {:?}", started.elapsed());
    assert!(server.stats().connections_accepted >= WATCHES as u64);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_never_reads_is_ended_while_writers_and_other_watchers_go_on() -> TestResult {
    const EVENTS: usize = 400;
    const BATCH: usize = 16;
    let server = ApiServer::builder().watch_queue_capacity(32).start().await?;
    let addr = server.addr();
    server.create(configmap("default", "big", json!({})))?;
    let from = server.resource_version();
    let path = format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={from}");

    // The slow watcher: sends its request and never reads a byte.
    let mut slow = tokio::net::TcpStream::connect(addr).await?;
    slow.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);

    // The fast watcher counts what it receives.
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let mut fast = WatchStream::open(addr, &path).await?;
    let reader = tokio::spawn(async move {
        let mut versions = Vec::new();
        for _ in 0..EVENTS {
            let (kind, object) = fast.event().await?;
            if kind != "MODIFIED" {
                return Err(format!("unexpected {kind}").into());
            }
            versions.push(rv_of(&object));
            counter.fetch_add(1, Ordering::SeqCst);
        }
        // Keep the stream open: the fast watcher stays connected.
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((versions, fast))
    });
    assert!(server.wait_for_watches("configmaps", 2, WAIT).await);

    let payload = "x".repeat(64 * 1024);
    let mut written = Vec::new();
    for i in 0..EVENTS {
        let object = server.merge_patch(
            "v1",
            "ConfigMap",
            Some("default"),
            "big",
            json!({"data": {"i": i.to_string(), "blob": payload}}),
        )?;
        written.push(rv_of(&object));
        if (i + 1) % BATCH == 0 {
            // Pace the writer to the fast watcher so only the slow one falls behind.
            let target = i + 1;
            tokio::time::timeout(Duration::from_secs(30), async {
                while received.load(Ordering::SeqCst) < target {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
            .await?;
        }
    }
    let (versions, fast) = tokio::time::timeout(Duration::from_secs(30), reader).await???;
    assert_eq!(versions, written, "the fast watcher got every event in order");

    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let stats = server.stats();
            if stats.watches_lagged == 1 && stats.active_watches.get("configmaps") == Some(&1) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the slow watcher was not ended: {:?}",
        server.stats()
    );
    drop((slow, fast));
    Ok(())
}

#[tokio::test]
async fn a_burst_in_other_namespaces_does_not_fill_a_namespace_watch_queue() -> TestResult {
    let server = ApiServer::builder().watch_queue_capacity(8).start().await?;
    server.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "quiet"}}))?;
    let from = server.resource_version();
    let mut quiet = WatchStream::open(
        server.addr(),
        &format!("/api/v1/namespaces/quiet/configmaps?watch=1&resourceVersion={from}"),
    )
    .await?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    for i in 0..200 {
        server.create(configmap("default", &format!("noise-{i}"), json!({})))?;
    }
    server.create(configmap("quiet", "signal", json!({})))?;
    let (t, o) = quiet.event().await?;
    assert_eq!((t.as_str(), name_of(&o)), ("ADDED", "signal"));
    assert_eq!(server.stats().watches_lagged, 0);
    Ok(())
}
