//! Watch streams against watch-protocol.md §2–§4: framing, initial state, resume, 410, bookmarks,
//! timeouts, selectors, watch-list.

use crate::common;

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

#[tokio::test]
async fn history_eviction_makes_old_versions_too_old_with_oldest_minus_one_in_the_message() -> TestResult {
    let server = ApiServer::builder().history_limit(3).start().await?;
    let start = server.resource_version();
    let mut rvs = Vec::new();
    for i in 0..6 {
        rvs.push(rv_of(&server.create(configmap(
            "default",
            &format!("c{i}"),
            json!({}),
        ))?));
    }
    // History holds the last 3 events; the oldest is rvs[3], so versions >= rvs[3]-1 are servable.
    let oldest = rvs[3];
    let mut too_old = WatchStream::open(
        server.addr(),
        &format!("/api/v1/configmaps?watch=1&resourceVersion={start}"),
    )
    .await?;
    let (t, o) = too_old.event().await?;
    assert_eq!(t, "ERROR");
    assert_eq!(
        o["message"],
        format!("too old resource version: {start} ({})", oldest - 1)
    );
    too_old.expect_end().await?;

    let mut ok = WatchStream::open(
        server.addr(),
        &format!("/api/v1/configmaps?watch=1&resourceVersion={}", oldest - 1),
    )
    .await?;
    for expected in &rvs[3..] {
        let (t, o) = ok.event().await?;
        assert_eq!((t.as_str(), rv_of(&o)), ("ADDED", *expected));
    }
    Ok(())
}

#[tokio::test]
async fn expired_can_be_reported_as_http_410_with_reason_gone_or_the_etcd_message() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(configmap("default", "a", json!({})))?;
    server.faults().compact_history();
    let path = "/api/v1/configmaps?watch=true&resourceVersion=1";

    server.faults().expired_reason_gone(true);
    server.faults().expired_etcd_message(true);
    let mut watch = WatchStream::open(server.addr(), path).await?;
    let (t, o) = watch.event().await?;
    assert_eq!(t, "ERROR");
    assert_eq!(o["reason"], "Gone");
    assert_eq!(
        o["message"],
        "The resourceVersion for the provided watch is too old."
    );
    assert_eq!(o["code"], 410);

    server.faults().expired_reason_gone(false);
    server.faults().expired_etcd_message(false);
    server.faults().expired_as_http_410(true);
    let response = get(server.addr(), path).await?;
    assert_eq!(response.status, 410);
    let status = response.json()?;
    assert_eq!(status["reason"], "Expired");
    assert_eq!(
        status["message"],
        format!("too old resource version: 1 ({})", server.resource_version())
    );
    Ok(())
}

#[tokio::test]
async fn periodic_bookmarks_carry_the_current_global_version_and_only_the_version() -> TestResult {
    let server = ApiServer::builder()
        .bookmark_interval(Duration::from_millis(200))
        .start()
        .await?;
    let from = server.resource_version();
    let mut watch = WatchStream::open(
        server.addr(),
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true&resourceVersion={from}"
        ),
    )
    .await?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    // A write to another resource moves the global version: the bookmark reports it.
    server.create(pod("default", "p", json!({}), "Running"))?;
    let current = server.resource_version();
    let (t, o) = watch.event().await?;
    assert_eq!(t, "BOOKMARK");
    assert_eq!(
        o,
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": current.to_string()}})
    );
    Ok(())
}

#[tokio::test]
async fn a_bookmark_comes_shortly_before_the_timeout_then_the_body_ends() -> TestResult {
    let server = ApiServer::start().await?;
    let from = server.resource_version();
    let mut watch = WatchStream::open(
        server.addr(),
        &format!(
            "/api/v1/configmaps?watch=1&allowWatchBookmarks=true&resourceVersion={from}&timeoutSeconds=4"
        ),
    )
    .await?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.create(pod("default", "p", json!({}), "Running"))?;
    let (t, o) = watch.event().await?;
    assert_eq!(t, "BOOKMARK");
    assert_eq!(rv_of(&o), server.resource_version());
    watch.expect_end().await?;
    Ok(())
}

#[tokio::test]
async fn watch_list_sends_initial_events_then_the_end_bookmark_then_changes() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(configmap("default", "a", json!({})))?;
    server.create(configmap("default", "b", json!({})))?;
    let snapshot = server.resource_version();
    let mut watch = WatchStream::open(
        server.addr(),
        "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
    )
    .await?;
    assert_eq!(watch.status, 200);
    let (t1, o1) = watch.event().await?;
    let (t2, o2) = watch.event().await?;
    assert_eq!(
        [(t1.as_str(), name_of(&o1)), (t2.as_str(), name_of(&o2))],
        [("ADDED", "a"), ("ADDED", "b")]
    );
    let (t, o) = watch.event().await?;
    assert_eq!(t, "BOOKMARK");
    assert_eq!(
        o,
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": snapshot.to_string(),
               "annotations": {"k8s.io/initial-events-end": "true"}}})
    );
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.create(configmap("default", "c", json!({})))?;
    let (t, o) = watch.change().await?;
    assert_eq!((t.as_str(), name_of(&o)), ("ADDED", "c"));
    Ok(())
}

#[tokio::test]
async fn legacy_watch_from_zero_with_bookmarks_gets_the_end_bookmark_like_watch_list_defaulting() -> TestResult
{
    let server = ApiServer::start().await?;
    server.create(configmap("default", "a", json!({})))?;
    let mut watch = WatchStream::open(
        server.addr(),
        "/api/v1/configmaps?watch=true&resourceVersion=0&allowWatchBookmarks=true",
    )
    .await?;
    assert_eq!(watch.event().await?.0, "ADDED");
    let (t, o) = watch.event().await?;
    assert_eq!(t, "BOOKMARK");
    assert_eq!(o["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");

    let plain = ApiServer::builder().watch_list_defaulting(false).start().await?;
    plain.create(configmap("default", "a", json!({})))?;
    let mut watch = WatchStream::open(
        plain.addr(),
        "/api/v1/configmaps?watch=true&resourceVersion=0&allowWatchBookmarks=true",
    )
    .await?;
    assert_eq!(watch.event().await?.0, "ADDED");
    assert!(watch.next_within(Duration::from_millis(300)).await?.is_none());
    Ok(())
}

#[tokio::test]
async fn watch_list_without_bookmarks_sends_no_end_bookmark() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(configmap("default", "a", json!({})))?;
    let mut watch = WatchStream::open(
        server.addr(),
        "/api/v1/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1",
    )
    .await?;
    assert_eq!(watch.event().await?.0, "ADDED");
    watch.expect_end().await?;
    Ok(())
}

#[tokio::test]
async fn invalid_watch_option_combinations_are_422_and_the_switch_rejects_watch_list() -> TestResult {
    let server = ApiServer::builder().reject_watch_list(true).start().await?;
    let rejected = get(
        server.addr(),
        "/api/v1/namespaces?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
    )
    .await?;
    assert_eq!(rejected.status, 422);
    assert_eq!(
        rejected.json()?,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
               "message":"ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
               "reason":"Invalid",
               "details":{"name":"","group":"meta.k8s.io","kind":"ListOptions","causes":[{"reason":"FieldValueForbidden",
                 "message":"Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled","field":"sendInitialEvents"}]},
               "code":422})
    );
    server.faults().reject_watch_list(false);
    for (query, field) in [
        ("sendInitialEvents=true", "resourceVersionMatch"),
        (
            "resourceVersionMatch=NotOlderThan&resourceVersion=1",
            "resourceVersionMatch",
        ),
        (
            "sendInitialEvents=true&resourceVersionMatch=Exact",
            "resourceVersionMatch",
        ),
    ] {
        let response = get(server.addr(), &format!("/api/v1/namespaces?watch=true&{query}")).await?;
        assert_eq!(response.status, 422, "{query}");
        assert_eq!(
            response.json()?["details"]["causes"][0]["field"],
            field,
            "{query}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn watch_list_for_a_version_never_reached_gets_an_in_stream_504() -> TestResult {
    let server = ApiServer::builder()
        .too_large_resource_version_wait(Duration::from_millis(200))
        .start()
        .await?;
    let future = server.resource_version() + 100;
    let mut watch = WatchStream::open(
        server.addr(),
        &format!("/api/v1/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion={future}"),
    )
    .await?;
    assert_eq!(watch.status, 200);
    let (t, o) = watch.event().await?;
    assert_eq!(t, "ERROR");
    assert_eq!(o["code"], 504);
    assert_eq!(o["details"]["causes"][0]["reason"], "ResourceVersionTooLarge");
    watch.expect_end().await?;
    Ok(())
}

#[tokio::test]
async fn plain_watch_from_a_future_version_waits_for_events_after_it() -> TestResult {
    let server = ApiServer::start().await?;
    let future = server.resource_version() + 2;
    let mut watch = WatchStream::open(
        server.addr(),
        &format!("/api/v1/configmaps?watch=true&resourceVersion={future}"),
    )
    .await?;
    assert_eq!(watch.status, 200);
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    for name in ["one", "two", "three"] {
        server.create(configmap("default", name, json!({})))?;
    }
    let (t, o) = watch.event().await?;
    assert_eq!((t.as_str(), name_of(&o)), ("ADDED", "three"));
    Ok(())
}

#[tokio::test]
async fn objects_entering_a_selection_are_added_and_leaving_it_are_deleted() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(pod("default", "p", json!({"app": "other"}), "Pending"))?;
    let from = server.resource_version();
    let mut watch = WatchStream::open(
        server.addr(),
        &format!("/api/v1/namespaces/default/pods?watch=1&labelSelector=app%3Dweb&resourceVersion={from}"),
    )
    .await?;
    assert!(server.wait_for_watches("pods", 1, WAIT).await);
    server.merge_patch(
        "v1",
        "Pod",
        Some("default"),
        "p",
        json!({"metadata": {"labels": {"app": "web"}}}),
    )?;
    let (t, o) = watch.event().await?;
    assert_eq!(
        (t.as_str(), o["metadata"]["labels"]["app"].as_str()),
        ("ADDED", Some("web"))
    );
    server.merge_patch(
        "v1",
        "Pod",
        Some("default"),
        "p",
        json!({"status": {"phase": "Running"}}),
    )?;
    assert_eq!(watch.event().await?.0, "MODIFIED");
    let left = server.merge_patch(
        "v1",
        "Pod",
        Some("default"),
        "p",
        json!({"metadata": {"labels": {"app": "db"}}}),
    )?;
    let (t, o) = watch.event().await?;
    assert_eq!(t, "DELETED");
    assert_eq!(o["metadata"]["labels"]["app"], "web", "previous content");
    assert_eq!(o["status"]["phase"], "Running");
    assert_eq!(rv_of(&o), rv_of(&left), "new version");
    // Changes outside the selection are not sent.
    server.merge_patch(
        "v1",
        "Pod",
        Some("default"),
        "p",
        json!({"status": {"phase": "Failed"}}),
    )?;
    assert!(watch.next_within(Duration::from_millis(300)).await?.is_none());

    // Field selectors work the same way.
    let mut running = WatchStream::open(
        server.addr(),
        &format!(
            "/api/v1/pods?watch=1&fieldSelector=status.phase%3DRunning&resourceVersion={}",
            server.resource_version()
        ),
    )
    .await?;
    assert!(server.wait_for_watches("pods", 2, WAIT).await);
    server.merge_patch(
        "v1",
        "Pod",
        Some("default"),
        "p",
        json!({"status": {"phase": "Running"}}),
    )?;
    assert_eq!(running.event().await?.0, "ADDED");
    server.delete("v1", "Pod", Some("default"), "p")?;
    assert_eq!(running.event().await?.0, "DELETED");
    Ok(())
}

#[tokio::test]
async fn legacy_watch_paths_watch_a_collection_or_one_object() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(configmap("default", "a", json!({})))?;
    server.create(configmap("default", "b", json!({})))?;
    let mut one = WatchStream::open(server.addr(), "/api/v1/watch/namespaces/default/configmaps/b").await?;
    assert_eq!(one.status, 200);
    let (t, o) = one.event().await?;
    assert_eq!((t.as_str(), name_of(&o)), ("ADDED", "b"));
    assert!(one.next_within(Duration::from_millis(200)).await?.is_none());
    let mut all = WatchStream::open(server.addr(), "/api/v1/watch/configmaps").await?;
    assert_eq!(name_of(&all.event().await?.1), "a");
    assert_eq!(name_of(&all.event().await?.1), "b");
    Ok(())
}

#[tokio::test]
async fn watch_flag_follows_the_boolean_rule() -> TestResult {
    let server = ApiServer::start().await?;
    for (query, is_watch) in [
        ("watch=true", true),
        ("watch=1", true),
        ("watch=", true),
        ("watch=0", false),
        ("watch=False", false),
    ] {
        let response = get(
            server.addr(),
            &format!("/api/v1/namespaces?{query}&timeoutSeconds=1"),
        )
        .await?;
        assert_eq!(response.status, 200);
        let body = response.text();
        assert_eq!(body.starts_with("{\"type\":"), is_watch, "{query}: {body}");
    }
    Ok(())
}

#[tokio::test]
async fn shutdown_ends_open_watches_cleanly() -> TestResult {
    let server = ApiServer::start().await?;
    let mut watch =
        WatchStream::open(server.addr(), "/api/v1/configmaps?watch=true&resourceVersion=1").await?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.shutdown().await;
    watch.expect_end().await?;
    Ok(())
}

#[tokio::test]
async fn events_older_than_the_history_age_are_evicted() -> TestResult {
    let server = ApiServer::builder()
        .history_max_age(Duration::from_millis(100))
        .start()
        .await?;
    let before = server.resource_version();
    server.create(configmap("default", "old", json!({})))?;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let fresh = server.create(configmap("default", "fresh", json!({})))?;
    let mut watch = WatchStream::open(
        server.addr(),
        &format!("/api/v1/configmaps?watch=1&resourceVersion={before}"),
    )
    .await?;
    let (t, o) = watch.event().await?;
    assert_eq!(t, "ERROR");
    assert_eq!(
        o["message"],
        format!("too old resource version: {before} ({})", rv_of(&fresh) - 1)
    );
    Ok(())
}

/// kubectl's `get -w` asks for Tables on the watch too: every event's object is a
/// `meta.k8s.io/v1` Table of one row whose object is `PartialObjectMetadata`; the column
/// definitions come with the first event only, `null` after, bookmarks included (apiserver
/// `pkg/endpoints/handlers/response.go`: `watchEmbeddedEncoder.doEncode` sets `NoHeaders` after
/// the first object, `asTable` turns every object, a bookmark's too, into a Table).
#[tokio::test]
async fn a_table_watch_sends_one_row_tables_with_the_columns_on_the_first_event_only() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(configmap("default", "a", json!({"k": "1"})))?;
    server.create(configmap("default", "b", json!({})))?;
    let mut watch = WatchStream::open_with(
        server.addr(),
        "/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan",
        &[("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")],
    )
    .await?;
    assert_eq!(watch.status, 200);
    let (t, first) = watch.event().await?;
    assert_eq!(t, "ADDED");
    assert_eq!(first["kind"], "Table");
    assert_eq!(first["apiVersion"], "meta.k8s.io/v1");
    let names: Vec<&str> = first["columnDefinitions"]
        .as_array()
        .ok_or("the first event carries the column definitions")?
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["Name", "Data", "Age"]);
    assert_eq!(first["rows"].as_array().map(Vec::len), Some(1));
    assert_eq!(first["rows"][0]["cells"][0], "a");
    assert_eq!(first["rows"][0]["cells"][1], 1);
    assert_eq!(first["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(first["rows"][0]["object"]["metadata"]["name"], "a");
    assert_eq!(
        first["metadata"]["resourceVersion"],
        first["rows"][0]["object"]["metadata"]["resourceVersion"]
    );
    let (_, second) = watch.event().await?;
    assert_eq!(second["rows"][0]["cells"][0], "b");
    assert!(second["columnDefinitions"].is_null(), "{second}");
    // The end of the initial events is a Table as well, its marker in the row's object.
    let (t, bookmark) = watch.event().await?;
    assert_eq!(t, "BOOKMARK");
    assert_eq!(bookmark["kind"], "Table");
    assert!(bookmark["columnDefinitions"].is_null());
    assert_eq!(
        bookmark["rows"][0]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.merge_patch(
        "v1",
        "ConfigMap",
        Some("default"),
        "b",
        json!({"data": {"x": "y"}}),
    )?;
    let (t, modified) = watch.change().await?;
    assert_eq!(t, "MODIFIED");
    assert_eq!(modified["rows"][0]["cells"][1], 1);
    assert!(modified["columnDefinitions"].is_null());
    Ok(())
}
