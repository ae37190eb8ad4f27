//! Fault injection from Rust and through the admin API, and the request journal.

use crate::common;

use std::time::Duration;

use common::*;
use kazan_apiserver::{ApiServer, FaultAction, FaultRule};
use serde_json::json;

#[tokio::test]
async fn ending_watches_of_one_resource_ends_only_those_cleanly() -> TestResult {
    let server = ApiServer::start().await?;
    let mut pods = WatchStream::open(server.addr(), "/api/v1/pods?watch=1&resourceVersion=1").await?;
    let mut cms = WatchStream::open(server.addr(), "/api/v1/configmaps?watch=1&resourceVersion=1").await?;
    assert!(server.wait_for_watches("pods", 1, WAIT).await);
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.faults().end_watches(Some("pods"));
    pods.expect_end().await?;
    server.create(configmap("default", "still", json!({})))?;
    let (t, o) = cms.event().await?;
    assert_eq!((t.as_str(), name_of(&o)), ("ADDED", "still"));
    Ok(())
}

#[tokio::test]
async fn cutting_watches_writes_half_an_event_and_drops_the_connection_without_the_last_chunk() -> TestResult
{
    let server = ApiServer::start().await?;
    let mut watch = WatchStream::open(server.addr(), "/api/v1/configmaps?watch=1&resourceVersion=1").await?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.faults().cut_watches(None);
    match watch.next().await? {
        Next::Cut(partial) => {
            assert!(!partial.is_empty(), "half an event was written");
            assert!(partial.starts_with(b"{\"type\":"));
            assert!(!partial.contains(&b'\n'));
        }
        other => return Err(format!("expected a cut, got {other:?}").into()),
    }
    Ok(())
}

#[tokio::test]
async fn stalled_watches_send_nothing_for_a_while_then_resume() -> TestResult {
    let server = ApiServer::start().await?;
    let mut watch = WatchStream::open(server.addr(), "/api/v1/configmaps?watch=1&resourceVersion=1").await?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.faults().stall_watches(None, Duration::from_millis(700));
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.create(configmap("default", "late", json!({})))?;
    assert!(
        watch.next_within(Duration::from_millis(300)).await?.is_none(),
        "stalled"
    );
    let (t, o) = watch.event().await?;
    assert_eq!((t.as_str(), name_of(&o)), ("ADDED", "late"));
    Ok(())
}

#[tokio::test]
async fn a_bookmark_can_be_sent_now() -> TestResult {
    let server = ApiServer::start().await?;
    let rv = server.resource_version();
    let mut watch = WatchStream::open(
        server.addr(),
        &format!("/api/v1/configmaps?watch=1&allowWatchBookmarks=1&resourceVersion={rv}"),
    )
    .await?;
    let mut no_bookmarks = WatchStream::open(
        server.addr(),
        &format!("/api/v1/configmaps?watch=1&resourceVersion={rv}"),
    )
    .await?;
    assert!(server.wait_for_watches("configmaps", 2, WAIT).await);
    server.faults().send_bookmark(Some("configmaps"));
    let (t, o) = watch.event().await?;
    assert_eq!(t, "BOOKMARK");
    assert_eq!(rv_of(&o), rv);
    assert!(
        no_bookmarks
            .next_within(Duration::from_millis(200))
            .await?
            .is_none()
    );
    Ok(())
}

#[tokio::test]
async fn watches_end_after_every_k_events() -> TestResult {
    let server = ApiServer::start().await?;
    server.faults().end_watches_after_events(Some(2));
    let from = server.resource_version();
    for name in ["a", "b", "c"] {
        server.create(configmap("default", name, json!({})))?;
    }
    let mut watch = WatchStream::open(
        server.addr(),
        &format!("/api/v1/configmaps?watch=1&resourceVersion={from}"),
    )
    .await?;
    assert_eq!(name_of(&watch.event().await?.1), "a");
    assert_eq!(name_of(&watch.event().await?.1), "b");
    watch.expect_end().await?;
    Ok(())
}

#[tokio::test]
async fn rules_answer_the_next_matching_requests_then_expire() -> TestResult {
    let server = ApiServer::start().await?;
    server.faults().add_rule(
        FaultRule::new(FaultAction::status(503, "ServiceUnavailable", "try later").retry_after(2))
            .method("GET")
            .path_prefix("/api/v1/namespaces/default/pods")
            .watch(true)
            .times(2),
    );
    let list = get(server.addr(), "/api/v1/namespaces/default/pods").await?;
    assert_eq!(list.status, 200, "not a watch: the rule does not match");
    for _ in 0..2 {
        let response = get(
            server.addr(),
            "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1",
        )
        .await?;
        assert_eq!(response.status, 503);
        assert_eq!(response.header("retry-after"), Some("2"));
        assert_eq!(
            response.json()?,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"try later",
                   "reason":"ServiceUnavailable","details":{"retryAfterSeconds":2},"code":503})
        );
    }
    let third = get(
        server.addr(),
        "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1",
    )
    .await?;
    assert_eq!(third.status, 200);
    assert!(server.faults().rules().is_empty());

    server.faults().add_rule(FaultRule::new(FaultAction::raw(
        502,
        "text/html",
        "<html>bad gateway</html>",
    )));
    let html = get(server.addr(), "/api/v1/pods").await?;
    assert_eq!(html.status, 502);
    assert_eq!(html.header("content-type"), Some("text/html"));
    assert_eq!(html.text(), "<html>bad gateway</html>");
    Ok(())
}

#[tokio::test]
async fn http_410_on_open_can_be_scripted() -> TestResult {
    let server = ApiServer::start().await?;
    server.faults().add_rule(
        FaultRule::new(FaultAction::status(
            410,
            "Expired",
            "too old resource version: 1 (5)",
        ))
        .watch(true),
    );
    let response = get(server.addr(), "/api/v1/pods?watch=1&resourceVersion=1").await?;
    assert_eq!(response.status, 410);
    assert_eq!(response.json()?["reason"], "Expired");
    Ok(())
}

#[tokio::test]
async fn split_rule_writes_the_body_in_pieces_at_the_offsets() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(configmap("default", "a", json!({})))?;
    server
        .faults()
        .add_rule(FaultRule::new(FaultAction::Split { offsets: vec![5, 12] }).watch(true));
    let mut watch = WatchStream::open(server.addr(), "/api/v1/configmaps?watch=1").await?;
    let (t, o) = watch.event().await?;
    assert_eq!((t.as_str(), name_of(&o)), ("ADDED", "a"));
    assert_eq!(
        &watch.chunks[..2],
        &[5, 7],
        "the event arrived in pieces: {:?}",
        watch.chunks
    );

    server
        .faults()
        .add_rule(FaultRule::new(FaultAction::Split { offsets: vec![10] }).watch(false));
    let list = get(server.addr(), "/api/v1/configmaps").await?;
    assert_eq!(list.status, 200);
    assert!(list.chunked);
    assert_eq!(list.json()?["items"][0]["metadata"]["name"], "a");
    Ok(())
}

#[tokio::test]
async fn delayed_answers_still_arrive_whole() -> TestResult {
    let server = ApiServer::start().await?;
    server
        .faults()
        .add_rule(FaultRule::new(FaultAction::Delay { millis: 100 }));
    let list = get(server.addr(), "/api/v1/namespaces").await?;
    assert_eq!(list.status, 200);
    assert_eq!(list.json()?["kind"], "NamespaceList");
    Ok(())
}

#[tokio::test]
async fn the_admin_api_drives_the_same_faults() -> TestResult {
    let server = ApiServer::builder().admin(true).start().await?;
    let index = get_json(server.addr(), "/_kazan/").await?;
    assert!(index["endpoints"].as_array().is_some_and(|e| !e.is_empty()));

    let rule = json!({"method": "GET", "pathPrefix": "/api/v1/secrets", "times": 1,
        "action": {"type": "status", "code": 429, "reason": "TooManyRequests", "message": "slow down", "retryAfter": 1}});
    let added = post(server.addr(), "/_kazan/rules", &rule).await?;
    assert_eq!(added.status, 200, "{}", added.text());
    let limited = get(server.addr(), "/api/v1/secrets").await?;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("1"));

    server.create(configmap("default", "a", json!({})))?;
    let old = server.resource_version() - 1;
    assert_eq!(
        request(server.addr(), "POST", "/_kazan/history/compact", &[], None)
            .await?
            .status,
        200
    );
    let mut watch = WatchStream::open(
        server.addr(),
        &format!("/api/v1/configmaps?watch=1&resourceVersion={old}"),
    )
    .await?;
    assert_eq!(watch.event().await?.1["code"], 410);

    let mut open = WatchStream::open(server.addr(), "/api/v1/configmaps?watch=1&resourceVersion=0").await?;
    assert_eq!(open.event().await?.0, "ADDED");
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    assert_eq!(
        request(
            server.addr(),
            "POST",
            "/_kazan/watches/end?resource=configmaps",
            &[],
            None
        )
        .await?
        .status,
        200
    );
    open.expect_end().await?;

    let stats = get_json(server.addr(), "/_kazan/stats").await?;
    assert!(stats["connectionsAccepted"].as_u64().is_some_and(|n| n >= 5));
    let journal = get_json(server.addr(), "/_kazan/journal").await?;
    assert!(journal["entries"].as_array().is_some_and(|e| {
        e.iter()
            .all(|x| !x["path"].as_str().unwrap_or("/_kazan").starts_with("/_kazan"))
    }));
    assert_eq!(get(server.addr(), "/_kazan/nope").await?.status, 404);
    Ok(())
}

#[tokio::test]
async fn the_journal_records_requests_and_watch_event_counts() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(configmap("default", "a", json!({})))?;
    server.create(configmap("default", "b", json!({})))?;
    let mut watch =
        WatchStream::open(server.addr(), "/api/v1/configmaps?watch=true&timeoutSeconds=1").await?;
    watch.event().await?;
    watch.event().await?;
    watch.expect_end().await?;
    let missing = get(server.addr(), "/api/v1/namespaces/default/configmaps/zzz").await?;
    assert_eq!(missing.status, 404);

    let journal = server.journal();
    let watch_entry = journal.iter().find(|e| e.watch).ok_or("no watch entry")?;
    assert_eq!(watch_entry.method, "GET");
    assert_eq!(watch_entry.path, "/api/v1/configmaps");
    assert_eq!(watch_entry.query, "watch=true&timeoutSeconds=1");
    assert_eq!(watch_entry.accept.as_deref(), Some("application/json"));
    assert_eq!(watch_entry.status, 200);
    assert_eq!(watch_entry.events, 2);
    let get_entry = journal.last().ok_or("empty journal")?;
    assert_eq!((get_entry.status, get_entry.watch), (404, false));
    Ok(())
}

#[tokio::test]
async fn open_watches_can_be_expired_in_stream() -> TestResult {
    let server = ApiServer::start().await?;
    let from = server.resource_version();
    let mut watch = WatchStream::open(
        server.addr(),
        &format!("/api/v1/pods?watch=1&resourceVersion={from}"),
    )
    .await?;
    assert!(server.wait_for_watches("pods", 1, WAIT).await);
    server.faults().expire_watches(Some("pods"));
    let (t, o) = watch.event().await?;
    assert_eq!(t, "ERROR");
    assert_eq!(
        o,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
               "message": format!("too old resource version: {from} ({from})"),"reason":"Expired","code":410})
    );
    watch.expect_end().await?;
    Ok(())
}

#[tokio::test]
async fn the_resource_version_can_jump_forward_and_bookmarks_report_it() -> TestResult {
    let server = ApiServer::builder().admin(true).start().await?;
    let from = server.resource_version();
    let mut watch = WatchStream::open(
        server.addr(),
        &format!("/api/v1/pods?watch=1&allowWatchBookmarks=1&resourceVersion={from}"),
    )
    .await?;
    assert!(server.wait_for_watches("pods", 1, WAIT).await);
    let advanced = request(
        server.addr(),
        "POST",
        "/_kazan/resource-version/advance?by=100",
        &[],
        None,
    )
    .await?;
    assert_eq!(advanced.status, 200);
    assert_eq!(server.resource_version(), from + 100);
    server.faults().send_bookmark(None);
    let (t, o) = watch.event().await?;
    assert_eq!((t.as_str(), rv_of(&o)), ("BOOKMARK", from + 100));
    let created = server.create(pod("default", "p", json!({}), "Running"))?;
    assert_eq!(rv_of(&created), from + 101);
    Ok(())
}

#[tokio::test]
async fn status_rules_can_carry_details() -> TestResult {
    let server = ApiServer::start().await?;
    server.faults().add_rule(
        FaultRule::new(
            FaultAction::status(403, "Forbidden", "pods is forbidden")
                .details(json!({"kind": "pods"}))
                .retry_after(3),
        )
        .path_prefix("/api/v1/pods"),
    );
    let response = get(server.addr(), "/api/v1/pods").await?;
    assert_eq!(response.status, 403);
    assert_eq!(response.header("retry-after"), Some("3"));
    assert_eq!(
        response.json()?["details"],
        json!({"kind": "pods", "retryAfterSeconds": 3})
    );
    Ok(())
}

#[tokio::test]
async fn a_drop_rule_closes_the_connection_without_an_answer() -> TestResult {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = ApiServer::start().await?;
    server
        .faults()
        .add_rule(FaultRule::new(FaultAction::Drop).path_prefix("/api/v1/pods"));
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await?;
    stream
        .write_all(b"GET /api/v1/pods HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await?;
    let mut received = Vec::new();
    // A reset is as good as a close here: either way no answer arrives.
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut received)).await?;
    assert!(
        received.is_empty(),
        "got {:?}",
        String::from_utf8_lossy(&received)
    );
    assert_eq!(
        get(server.addr(), "/api/v1/pods").await?.status,
        200,
        "the rule expired"
    );
    Ok(())
}

#[tokio::test]
async fn bytes_can_be_injected_into_open_watches() -> TestResult {
    let server = ApiServer::builder().admin(true).start().await?;
    let mut watch = WatchStream::open(server.addr(), "/api/v1/configmaps?watch=1&resourceVersion=1").await?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    let injected = request(
        server.addr(),
        "POST",
        "/_kazan/watches/inject?resource=configmaps",
        &[],
        Some(b"{\"type\":\"MODIFIED\"}\n"),
    )
    .await?;
    assert_eq!(injected.status, 200);
    let next = watch.next().await?;
    assert_eq!(next, Next::Event(json!({"type": "MODIFIED"})));
    server.create(configmap("default", "after", json!({})))?;
    assert_eq!(name_of(&watch.event().await?.1), "after");
    Ok(())
}

#[tokio::test]
async fn a_raw_answer_can_carry_extra_headers_such_as_a_redirect() -> TestResult {
    let server = ApiServer::start().await?;
    server.faults().add_rule(FaultRule::new(
        FaultAction::raw(307, "text/plain", "moved").header("Location", "http://127.0.0.1:9/api/v1/pods"),
    ));
    let moved = get(server.addr(), "/api/v1/pods").await?;
    assert_eq!(moved.status, 307);
    assert_eq!(moved.header("location"), Some("http://127.0.0.1:9/api/v1/pods"));
    assert_eq!(moved.text(), "moved");
    Ok(())
}
