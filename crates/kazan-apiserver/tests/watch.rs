//! Watch streams against watch-protocol.md §2–§4: framing, initial state, resume, 410, bookmarks,
//! timeouts, selectors, watch-list.

mod common;

use std::time::Duration;

use common::*;
use kazan_apiserver::ApiServer;
use serde_json::json;

#[tokio::test]
async fn watch_without_version_sends_current_state_then_changes_one_json_line_each() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(configmap("default", "a", json!({"k": "1"})))?;
    server.create(configmap("default", "b", json!({"k": "2"})))?;
    let mut watch =
        WatchStream::open(server.addr(), "/api/v1/namespaces/default/configmaps?watch=true").await?;
    assert_eq!(watch.status, 200);
    assert_eq!(watch.header("content-type"), Some("application/json"));
    assert_eq!(watch.header("transfer-encoding"), Some("chunked"));
    let (t1, o1) = watch.event().await?;
    let (t2, o2) = watch.event().await?;
    assert_eq!((t1.as_str(), name_of(&o1)), ("ADDED", "a"));
    assert_eq!((t2.as_str(), name_of(&o2)), ("ADDED", "b"));
    assert_eq!(o1["kind"], "ConfigMap");
    assert_eq!(o1["apiVersion"], "v1");

    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    let updated = server.merge_patch(
        "v1",
        "ConfigMap",
        Some("default"),
        "a",
        json!({"data": {"k": "9"}}),
    )?;
    let (t, o) = watch.event().await?;
    assert_eq!(t, "MODIFIED");
    assert_eq!(o["data"]["k"], "9");
    assert_eq!(rv_of(&o), rv_of(&updated));
    server.delete("v1", "ConfigMap", Some("default"), "b")?;
    let (t, o) = watch.event().await?;
    assert_eq!(t, "DELETED");
    assert_eq!(name_of(&o), "b");
    assert_eq!(o["data"]["k"], "2", "DELETED carries the last state");
    assert_eq!(
        rv_of(&o),
        server.resource_version(),
        "DELETED carries the delete's version"
    );
    Ok(())
}

#[tokio::test]
async fn watch_from_a_version_gets_every_change_strictly_after_it_and_nothing_else() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(configmap("default", "a", json!({"v": "0"})))?;
    let from = server.resource_version();
    let mut expected = Vec::new();
    for i in 1..=5 {
        let o = server.merge_patch(
            "v1",
            "ConfigMap",
            Some("default"),
            "a",
            json!({"data": {"v": i.to_string()}}),
        )?;
        expected.push(("MODIFIED".to_string(), rv_of(&o)));
    }
    let created = server.create(configmap("default", "b", json!({})))?;
    expected.push(("ADDED".to_string(), rv_of(&created)));
    // A write to another resource is not an event of this watch.
    server.create(pod("default", "p", json!({}), "Running"))?;

    let path = format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={from}");
    let mut watch = WatchStream::open(server.addr(), &path).await?;
    let mut got = Vec::new();
    for _ in 0..expected.len() {
        let (t, o) = watch.event().await?;
        got.push((t, rv_of(&o)));
    }
    assert_eq!(got, expected);
    assert!(
        watch.next_within(Duration::from_millis(300)).await?.is_none(),
        "nothing else is sent"
    );
    Ok(())
}

#[tokio::test]
async fn watch_from_compacted_version_gets_200_then_one_expired_error_event_then_the_end() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(configmap("default", "a", json!({})))?;
    let old = server.resource_version() - 1;
    server.faults().compact_history();
    let current = server.resource_version();
    let mut watch = WatchStream::open(
        server.addr(),
        &format!("/api/v1/configmaps?watch=true&resourceVersion={old}"),
    )
    .await?;
    assert_eq!(watch.status, 200);
    let (t, o) = watch.event().await?;
    assert_eq!(t, "ERROR");
    assert_eq!(
        o,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
               "message": format!("too old resource version: {old} ({current})"),"reason":"Expired","code":410})
    );
    watch.expect_end().await?;
    Ok(())
}

#[tokio::test]
async fn timeout_seconds_ends_the_body_cleanly() -> TestResult {
    let server = ApiServer::start().await?;
    let mut watch = WatchStream::open(
        server.addr(),
        "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1",
    )
    .await?;
    assert_eq!(watch.status, 200);
    watch.expect_end().await?;
    Ok(())
}
