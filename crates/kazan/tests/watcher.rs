//! The Watcher against the embedded API server: each test sets up the server, acts, and asserts the
//! exact sequence of events the consumer receives and the resourceVersion each (re)connect asks for.

use std::{collections::BTreeSet, time::Duration};

use k8s_openapi::api::{batch::v1::Job, core::v1::ConfigMap, core::v1::Namespace};
use kazan::{
    ApiResource, Client, Config, DynamicObject, Request,
    watcher::{EndReason, Event, EventKind, EventType, InitialList, StopOutcome, WatchError, Watcher},
};
use kazan_apiserver::{ApiServer, FaultAction, FaultRule};
use serde_json::{Value, json};

use crate::support::{TestError, TestResult};

#[path = "watcher/counters.rs"]
mod counters;
#[path = "watcher/first_day.rs"]
mod first_day;
#[path = "watcher/metadata_only.rs"]
mod metadata_only;
#[path = "watcher/resume_after_stop.rs"]
mod resume_after_stop;
#[path = "watcher/shards.rs"]
mod shards;
#[path = "watcher/streaming_lists.rs"]
mod streaming_lists;
#[path = "watcher/tables.rs"]
mod tables;
use crate::support;
use support::{WAIT, query_param};

async fn server() -> Result<ApiServer, Box<dyn std::error::Error + Send + Sync>> {
    Ok(ApiServer::builder().namespaces(&["w", "other"]).start().await?)
}

fn client(server: &ApiServer) -> Result<Client, Box<dyn std::error::Error + Send + Sync>> {
    Ok(Client::new(Config::new(server.url().parse()?))?)
}

fn cm(ns: &str, name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"v": value}})
}

fn rv_of(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn next<M: Send + 'static>(handle: &mut kazan::watcher::WatcherHandle<M>) -> Result<M, String> {
    match tokio::time::timeout(WAIT, handle.recv()).await {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err("the watcher's channel closed".into()),
        Err(_) => Err("no event within the bound".into()),
    }
}

/// (type, name, data.v) of a ConfigMap event; what the assertions compare.
fn summary(ev: &Event<ConfigMap>) -> (EventType, String, String) {
    let (name, v) = match ev.object() {
        Some(o) => (
            o.metadata.name.clone().unwrap_or_default(),
            o.data
                .as_ref()
                .and_then(|d| d.get("v").cloned())
                .unwrap_or_default(),
        ),
        None => (String::new(), String::new()),
    };
    (ev.event_type(), name, v)
}

fn added(name: &str, v: &str) -> (EventType, String, String) {
    (EventType::Added, name.to_string(), v.to_string())
}

/// The `resourceVersion` each watch request to `path` asked for, in order.
fn watch_versions(server: &ApiServer, path: &str) -> Vec<String> {
    server
        .journal()
        .iter()
        .filter(|e| e.watch && e.path == path)
        .map(|e| query_param(&e.query, "resourceVersion").unwrap_or_default())
        .collect()
}

const CM_PATH: &str = "/api/v1/namespaces/w/configmaps";

#[tokio::test]
async fn starts_strictly_after_the_given_version() -> TestResult {
    let server = server().await?;
    let a = server.create(cm("w", "a", "1"))?;
    server.create(cm("w", "b", "1"))?;
    server.create(cm("w", "c", "1"))?;
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().resource_version(rv_of(&a)),
    )?;
    assert_eq!(summary(&next(&mut w).await?), added("b", "1"));
    assert_eq!(summary(&next(&mut w).await?), added("c", "1"));
    let a2 = server.merge_patch("v1", "ConfigMap", Some("w"), "a", json!({"data": {"v": "2"}}))?;
    let ev = next(&mut w).await?;
    assert_eq!(summary(&ev), (EventType::Modified, "a".into(), "2".into()));
    assert_eq!(ev.resource_version, Some(rv_of(&a2)));
    assert_eq!(ev.from, w.id());
    assert_eq!(watch_versions(&server, CM_PATH), vec![rv_of(&a)]);
    // No list was made: the version was given.
    assert!(!server.journal().iter().any(|e| !e.watch && e.path == CM_PATH));
    Ok(())
}

#[tokio::test]
async fn a_list_request_without_a_version_lists_first_and_watches_from_the_list() -> TestResult {
    let server = server().await?;
    server.create(cm("w", "old", "1"))?;
    let list_rv = server.resource_version().to_string();
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options(),
    )?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.create(cm("w", "new", "1"))?;
    // The existing object is not delivered (as in Kazan); only what changed after the list.
    assert_eq!(summary(&next(&mut w).await?), added("new", "1"));
    let lists: Vec<_> = server
        .journal()
        .into_iter()
        .filter(|e| !e.watch && e.path == CM_PATH)
        .collect();
    assert_eq!(lists.len(), 1);
    assert_eq!(query_param(&lists[0].query, "limit").as_deref(), Some("500"));
    assert_eq!(watch_versions(&server, CM_PATH), vec![list_rv]);
    Ok(())
}

#[tokio::test]
async fn the_initial_list_can_be_delivered_page_by_page() -> TestResult {
    let server = server().await?;
    for i in 0..7 {
        server.create(cm("w", &format!("item-{i}"), "1"))?;
    }
    server.create(cm("other", "elsewhere", "1"))?;
    let list_rv = server.resource_version().to_string();
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options()
            .deliver_initial_list(true)
            .initial_list(InitialList::Paginated)
            .page_size(3),
    )?;
    for i in 0..7 {
        assert_eq!(summary(&next(&mut w).await?), added(&format!("item-{i}"), "1"));
    }
    let synced = next(&mut w).await?;
    assert_eq!(synced.event_type(), EventType::Synced);
    assert_eq!(synced.resource_version.as_deref(), Some(list_rv.as_str()));
    server.create(cm("w", "later", "1"))?;
    assert_eq!(summary(&next(&mut w).await?), added("later", "1"));
    // Three pages of at most 3; the later pages carry `continue` and no resourceVersion.
    let lists: Vec<_> = server
        .journal()
        .into_iter()
        .filter(|e| !e.watch && e.path == CM_PATH)
        .collect();
    assert_eq!(lists.len(), 3);
    for (i, page) in lists.iter().enumerate() {
        assert_eq!(query_param(&page.query, "limit").as_deref(), Some("3"));
        assert_eq!(query_param(&page.query, "continue").is_some(), i > 0);
        assert_eq!(query_param(&page.query, "resourceVersion"), None);
    }
    assert_eq!(watch_versions(&server, CM_PATH), vec![list_rv]);
    Ok(())
}

#[tokio::test]
async fn a_list_snapshot_that_expires_after_pages_were_delivered_is_gone() -> TestResult {
    use futures_util::StreamExt;
    let server = server().await?;
    for i in 0..5 {
        server.create(cm("w", &format!("item-{i}"), "1"))?;
    }
    // The stream form fetches the next page only when asked for the next event.
    let mut stream = Watcher::stream(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options()
            .deliver_initial_list(true)
            .initial_list(InitialList::Paginated)
            .page_size(2),
    )?;
    let mut first_page = Vec::new();
    for _ in 0..2 {
        let ev = tokio::time::timeout(WAIT, stream.next())
            .await?
            .ok_or("stream ended")?;
        first_page.push(summary(&ev));
    }
    assert_eq!(first_page, vec![added("item-0", "1"), added("item-1", "1")]);
    // Between pages, a delivered object is deleted and the snapshot compacted away: listing again
    // would deliver the survivors but could not take item-0 back, so the consumer is told to start
    // over (as after any 410), not handed a second list on top of the first.
    server.delete("v1", "ConfigMap", Some("w"), "item-0")?;
    server.faults().compact_history();
    let ev = tokio::time::timeout(WAIT, stream.next())
        .await?
        .ok_or("stream ended")?;
    assert_eq!(ev.event_type(), EventType::Gone, "{ev:?}");
    assert!(tokio::time::timeout(WAIT, stream.next()).await?.is_none());
    Ok(())
}

#[tokio::test]
async fn a_watch_request_needs_a_version() -> TestResult {
    let server = server().await?;
    let c = client(&server)?;
    let refused = Watcher::start(
        c.clone(),
        Request::watch_list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options(),
    );
    assert!(matches!(refused, Err(WatchError::NoResourceVersion)));
    assert!(matches!(
        Watcher::stream(
            c.clone(),
            Request::watch_list::<ConfigMap>(),
            support::fast_watcher_options()
        ),
        Err(WatchError::NoResourceVersion)
    ));
    // With a version, on the request or in the options, it starts.
    let a = server.create(cm("w", "a", "1"))?;
    let mut w = Watcher::start(
        c.clone(),
        Request::watch_list::<ConfigMap>()
            .namespace("w")
            .resource_version(&rv_of(&a)),
        support::fast_watcher_options(),
    )?;
    server.create(cm("w", "b", "1"))?;
    assert_eq!(summary(&next(&mut w).await?), added("b", "1"));
    Ok(())
}

#[tokio::test]
async fn clean_ends_resume_from_the_last_event_with_nothing_lost_or_repeated() -> TestResult {
    let server = server().await?;
    let start = server.resource_version().to_string();
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options()
            .resource_version(start.clone())
            .channel_capacity(1000),
    )?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    // Writes and server-side ends interleave: the server ends every watch after 3 events too.
    server.faults().end_watches_after_events(Some(3));
    let writer = {
        let faults = server.faults();
        let names: Vec<String> = (0..60).map(|i| format!("cm-{i:02}")).collect();
        let server_objects: Vec<Value> = names.iter().map(|n| cm("w", n, "1")).collect();
        (faults, server_objects)
    };
    for (i, obj) in writer.1.into_iter().enumerate() {
        server.create(obj)?;
        if i % 7 == 0 {
            writer.0.end_watches(Some("configmaps"));
        }
        tokio::task::yield_now().await;
    }
    let mut seen = Vec::new();
    let mut versions = Vec::new();
    for _ in 0..60 {
        let ev = next(&mut w).await?;
        versions.push(ev.resource_version.clone().unwrap_or_default());
        seen.push(summary(&ev));
    }
    let expected: Vec<_> = (0..60).map(|i| added(&format!("cm-{i:02}"), "1")).collect();
    assert_eq!(seen, expected);
    // Every watch after the first resumed from the start or the version of an event already
    // delivered, never going back.
    let asked = watch_versions(&server, CM_PATH);
    assert!(asked.len() >= 20, "only {} watches", asked.len());
    assert_eq!(asked[0], start);
    let mut delivered: BTreeSet<&str> = versions.iter().map(String::as_str).collect();
    delivered.insert(start.as_str());
    let mut last = start.parse::<u64>()?;
    for rv in &asked[1..] {
        assert!(
            delivered.contains(rv.as_str()),
            "resumed from {rv}, which was not delivered"
        );
        let rv: u64 = rv.parse()?;
        assert!(rv >= last, "went back from {last} to {rv}");
        last = rv;
    }
    assert!(w.stats().resumes >= 19);
    // Nothing further arrives.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), w.recv())
            .await
            .is_err()
    );
    Ok(())
}

#[tokio::test]
async fn the_servers_timeout_is_a_seamless_resume() -> TestResult {
    let server = server().await?;
    let start = server.resource_version().to_string();
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w").timeout_seconds(1),
        support::fast_watcher_options().resource_version(start.clone()),
    )?;
    for i in 0..3 {
        assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
        let obj = server.create(cm("w", &format!("t{i}"), "1"))?;
        assert_eq!(summary(&next(&mut w).await?), added(&format!("t{i}"), "1"));
        // Wait for the server to end this watch (timeoutSeconds=1) and the watcher to resume.
        let before = watch_versions(&server, CM_PATH).len();
        let resumed = tokio::time::timeout(WAIT, async {
            loop {
                if watch_versions(&server, CM_PATH).len() > before {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(resumed.is_ok());
        assert_eq!(watch_versions(&server, CM_PATH).last(), Some(&rv_of(&obj)));
    }
    let asked = watch_versions(&server, CM_PATH);
    assert_eq!(asked[0], start);
    assert!(
        server
            .journal()
            .iter()
            .filter(|e| e.watch)
            .all(|e| query_param(&e.query, "timeoutSeconds").as_deref() == Some("1"))
    );
    Ok(())
}

#[tokio::test]
async fn a_connection_cut_mid_event_resumes_from_the_last_complete_event() -> TestResult {
    let server = server().await?;
    let start = server.resource_version().to_string();
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().resource_version(start),
    )?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    let a = server.create(cm("w", "a", "1"))?;
    assert_eq!(summary(&next(&mut w).await?), added("a", "1"));
    server.faults().cut_watches(None);
    let b = server.create(cm("w", "b", "1"))?;
    assert_eq!(summary(&next(&mut w).await?), added("b", "1"));
    server.create(cm("w", "c", "1"))?;
    assert_eq!(summary(&next(&mut w).await?), added("c", "1"));
    let asked = watch_versions(&server, CM_PATH);
    // The resume asked for everything after `a` (the last complete event), or after `b` if `b`
    // made it through before the cut.
    assert!(asked.len() >= 2);
    assert!(
        asked[1] == rv_of(&a) || asked[1] == rv_of(&b),
        "resumed from {}",
        asked[1]
    );
    assert!(w.stats().retries >= 1);
    Ok(())
}

async fn quiet_watcher_after_compaction(
    bookmarks: bool,
) -> Result<
    (ApiServer, kazan::watcher::WatcherHandle<Event<ConfigMap>>),
    Box<dyn std::error::Error + Send + Sync>,
> {
    let server = server().await?;
    let start = server.resource_version().to_string();
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options()
            .resource_version(start)
            .bookmarks(bookmarks),
    )?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.create(cm("w", "a", "1"))?;
    assert_eq!(summary(&next(&mut w).await?), added("a", "1"));
    // Elsewhere, the world moves on: the watcher sees none of it.
    for i in 0..5 {
        server.create(cm("other", &format!("x{i}"), "1"))?;
    }
    if bookmarks {
        server.faults().send_bookmark(None);
        let current = server.resource_version().to_string();
        let caught_up = tokio::time::timeout(WAIT, async {
            while w.stats().resource_version.as_deref() != Some(current.as_str()) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(caught_up.is_ok(), "the bookmark did not reach the watcher");
    }
    server.faults().compact_history();
    server.faults().end_watches(None);
    Ok((server, w))
}

#[tokio::test]
async fn compacted_history_ends_the_watcher_with_gone_and_the_servers_message() -> TestResult {
    let (server, mut w) = quiet_watcher_after_compaction(false).await?;
    let ev = next(&mut w).await?;
    match &ev.kind {
        EventKind::Gone { message } => assert!(message.starts_with("too old resource version"), "{message}"),
        other => panic!("expected Gone, got {other:?}"),
    }
    assert!(matches!(w.wait().await, EndReason::Gone { .. }));
    assert!(w.recv().await.is_none());
    // It did not try again.
    let watches = watch_versions(&server, CM_PATH).len();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(watch_versions(&server, CM_PATH).len(), watches);
    assert_eq!(w.stop().await, StopOutcome::AlreadyStopped);
    Ok(())
}

#[tokio::test]
async fn an_http_410_answer_to_the_watch_is_gone_too() -> TestResult {
    let server = server().await?;
    let start = server.resource_version().to_string();
    server.faults().add_rule(
        FaultRule::new(FaultAction::status(410, "Gone", "the resource version is gone")).watch(true),
    );
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().resource_version(start),
    )?;
    let ev = next(&mut w).await?;
    assert!(matches!(&ev.kind, EventKind::Gone { message } if message == "the resource version is gone"));
    assert!(matches!(w.wait().await, EndReason::Gone { .. }));
    Ok(())
}

#[tokio::test]
async fn old_servers_reason_gone_in_the_stream_is_gone() -> TestResult {
    let server = server().await?;
    server.faults().expired_reason_gone(true);
    server.faults().expired_etcd_message(true);
    let old = server.resource_version().to_string();
    server.create(cm("w", "a", "1"))?;
    server.create(cm("w", "b", "1"))?;
    server.faults().compact_history();
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().resource_version(old),
    )?;
    let ev = next(&mut w).await?;
    assert!(
        matches!(&ev.kind, EventKind::Gone { message } if message == "The resourceVersion for the provided watch is too old."),
        "{ev:?}"
    );
    Ok(())
}

#[tokio::test]
async fn bookmarks_keep_a_quiet_watcher_alive_through_compaction() -> TestResult {
    let (server, mut w) = quiet_watcher_after_compaction(true).await?;
    let bookmark_rv = w.stats().resource_version.clone().unwrap_or_default();
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.create(cm("w", "b", "1"))?;
    assert_eq!(summary(&next(&mut w).await?), added("b", "1"));
    assert!(w.is_running());
    // The resume asked for the bookmark's version, not the last event's.
    assert_eq!(watch_versions(&server, CM_PATH).get(1), Some(&bookmark_rv));
    Ok(())
}

#[tokio::test]
async fn bookmarks_can_be_delivered() -> TestResult {
    let server = server().await?;
    let start = server.resource_version().to_string();
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options()
            .resource_version(start)
            .deliver_bookmarks(true),
    )?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.create(cm("other", "x", "1"))?;
    server.faults().send_bookmark(None);
    let ev = next(&mut w).await?;
    assert_eq!(ev.event_type(), EventType::Bookmark);
    assert_eq!(ev.resource_version, Some(server.resource_version().to_string()));
    assert!(ev.object().is_none());
    Ok(())
}

#[tokio::test]
async fn a_500_is_retried_from_the_same_version() -> TestResult {
    let server = server().await?;
    let a = server.create(cm("w", "a", "1"))?;
    server.faults().add_rule(
        FaultRule::new(FaultAction::status(
            500,
            "InternalError",
            "Internal error occurred: boom",
        ))
        .watch(true)
        .times(2),
    );
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().resource_version(rv_of(&a)),
    )?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.create(cm("w", "b", "1"))?;
    assert_eq!(summary(&next(&mut w).await?), added("b", "1"));
    let watches: Vec<_> = server
        .journal()
        .into_iter()
        .filter(|e| e.watch && e.path == CM_PATH)
        .collect();
    assert_eq!(
        watches.iter().map(|e| e.status).collect::<Vec<_>>(),
        vec![500, 500, 200]
    );
    assert!(
        watches
            .iter()
            .all(|e| query_param(&e.query, "resourceVersion") == Some(rv_of(&a)))
    );
    assert_eq!(w.stats().retries, 2);
    Ok(())
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried() -> TestResult {
    let server = server().await?;
    let a = server.create(cm("w", "a", "1"))?;
    server.faults().add_rule(
        FaultRule::new(
            FaultAction::raw(429, "text/plain", "Too many requests, please try again later.").retry_after(1),
        )
        .watch(true),
    );
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().resource_version(rv_of(&a)),
    )?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.create(cm("w", "b", "1"))?;
    assert_eq!(summary(&next(&mut w).await?), added("b", "1"));
    let statuses: Vec<u16> = server
        .journal()
        .iter()
        .filter(|e| e.watch)
        .map(|e| e.status)
        .collect();
    assert_eq!(statuses, vec![429, 200]);
    Ok(())
}

#[tokio::test]
async fn a_403_ends_the_watcher_with_a_final_failed_event() -> TestResult {
    let server = server().await?;
    let message = "configmaps is forbidden: User \"system:serviceaccount:w:app\" cannot watch resource \"configmaps\" in API group \"\" in the namespace \"w\"";
    server
        .faults()
        .add_rule(FaultRule::new(FaultAction::status(403, "Forbidden", message)).watch(true));
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().resource_version(server.resource_version().to_string()),
    )?;
    let ev = next(&mut w).await?;
    let EventKind::Failed(error) = &ev.kind else {
        panic!("expected Failed, got {ev:?}")
    };
    let api = error.api_error().ok_or("no API error")?;
    assert_eq!((api.code, api.reason()), (403, Some("Forbidden")));
    assert_eq!(api.message(), Some(message));
    assert!(matches!(w.wait().await, EndReason::Failed { .. }));
    assert!(w.recv().await.is_none());
    assert_eq!(
        server.journal().iter().filter(|e| e.watch).count(),
        1,
        "a 403 is not retried"
    );
    Ok(())
}

#[tokio::test]
async fn a_failed_initial_list_is_terminal_for_404_and_retried_for_503() -> TestResult {
    let server = server().await?;
    // An unknown resource: 404 from the list.
    let widgets = ApiResource::new("example.com", "v1", "Widget", "widgets", true);
    let mut w = Watcher::start(
        client(&server)?,
        Request::list_dynamic(&widgets).namespace("w"),
        support::fast_watcher_options(),
    )?;
    let ev = next(&mut w).await?;
    assert!(
        matches!(&ev.kind, EventKind::Failed(e) if matches!(**e, WatchError::List { .. }) && e.api_error().map(|a| a.code) == Some(404))
    );
    // 503 on the list: retried, then the watch runs.
    server.faults().add_rule(
        FaultRule::new(FaultAction::status(
            503,
            "ServiceUnavailable",
            "apiserver is shutting down",
        ))
        .watch(false)
        .path_prefix(CM_PATH),
    );
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options(),
    )?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.create(cm("w", "a", "1"))?;
    assert_eq!(summary(&next(&mut w).await?), added("a", "1"));
    Ok(())
}

#[tokio::test]
async fn every_split_of_the_body_decodes_identically() -> TestResult {
    let server = server().await?;
    let start = server.resource_version().to_string();
    server.create(cm("w", "a", "x"))?;
    server.merge_patch("v1", "ConfigMap", Some("w"), "a", json!({"data": {"v": "y"}}))?;
    server.delete("v1", "ConfigMap", Some("w"), "a")?;
    let expected = vec![
        (EventType::Added, "a".to_string(), "x".to_string()),
        (EventType::Modified, "a".to_string(), "y".to_string()),
        (EventType::Deleted, "a".to_string(), "y".to_string()),
    ];
    // The length of the watch body holding those three events.
    let raw = client(&server)?
        .run_raw(
            &Request::list::<ConfigMap>()
                .namespace("w")
                .resource_version(&start)
                .param("watch", "1")
                .timeout_seconds(1),
        )
        .await?;
    let len = raw.len() as u64;
    assert_eq!(raw.iter().filter(|b| **b == b'\n').count(), 3);
    // One watcher per split point (and one with every byte in its own piece), eight at a time.
    let mut splits: Vec<Vec<u64>> = (1..len).map(|i| vec![i]).collect();
    splits.push((1..len).step_by(7).collect());
    for batch in splits.chunks(8) {
        let mut tasks = tokio::task::JoinSet::new();
        for offsets in batch {
            server.faults().add_rule(
                FaultRule::new(FaultAction::Split {
                    offsets: offsets.clone(),
                })
                .watch(true),
            );
        }
        for _ in batch {
            let c = client(&server)?;
            let start = start.clone();
            tasks.spawn(async move {
                let mut w = Watcher::start(
                    c,
                    Request::list::<ConfigMap>().namespace("w"),
                    support::fast_watcher_options().resource_version(start),
                )?;
                let mut got = Vec::new();
                for _ in 0..3 {
                    got.push(summary(&next(&mut w).await?));
                }
                w.stop().await;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(got)
            });
        }
        while let Some(result) = tasks.join_next().await {
            assert_eq!(result??, expected);
        }
    }
    assert!(server.faults().rules().is_empty(), "every split was used");
    Ok(())
}

#[tokio::test]
async fn a_slow_consumer_holds_back_the_socket_and_memory_stays_bounded() -> TestResult {
    const N: usize = 100_000;
    let server = ApiServer::builder()
        .namespaces(&["w"])
        .history_limit(N + 10)
        .start()
        .await?;
    let start = server.resource_version().to_string();
    for i in 0..N {
        server.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}"), "namespace": "w"}}))?;
    }
    let capacity = 64;
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options()
            .resource_version(start)
            .channel_capacity(capacity),
    )?;
    let mut received = 0usize;
    let mut most_buffered = 0u64;
    while received < N {
        let ev = next(&mut w).await?;
        assert_eq!(ev.event_type(), EventType::Added);
        received += 1;
        if received.is_multiple_of(1000) {
            // The consumer is slow: the watcher must wait for it, not read ahead.
            tokio::time::sleep(Duration::from_millis(2)).await;
            let stats = w.stats();
            most_buffered = most_buffered.max(stats.lines_read.saturating_sub(received as u64));
        }
    }
    // Read ahead of the consumer: at most the channel, the batch the task holds, and the batches
    // being decoded (a few chunks' worth of lines) — never a large share of the stream.
    assert!(
        most_buffered < 10_000,
        "{most_buffered} events buffered ahead of the consumer"
    );
    assert!(
        most_buffered >= capacity as u64 / 2,
        "the test did not make the consumer slow"
    );
    Ok(())
}

#[tokio::test]
async fn stop_is_idempotent_and_dropping_the_receiver_ends_the_watcher() -> TestResult {
    let server = server().await?;
    let rv = server.resource_version().to_string();
    let w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().resource_version(rv.clone()),
    )?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    assert!(w.is_running());
    assert_eq!(w.stop().await, StopOutcome::Stopped);
    assert_eq!(w.stop().await, StopOutcome::AlreadyStopped);
    assert!(matches!(w.wait().await, EndReason::Stopped { .. }));
    assert!(
        server.wait_for_watches("configmaps", 0, WAIT).await,
        "the watch connection was not closed"
    );

    // The consumer goes away while the watch is idle: the watcher notices and ends.
    let (tx, rx) = tokio::sync::mpsc::channel::<Event<ConfigMap>>(8);
    let w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().resource_version(rv).send_to(tx),
    )?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    drop(rx);
    assert!(matches!(
        tokio::time::timeout(WAIT, w.wait()).await?,
        EndReason::ConsumerGone { .. }
    ));
    assert_eq!(w.stop().await, StopOutcome::AlreadyStopped);
    Ok(())
}

/// The seed's example: one consumer, two watchers of different kinds, matched on the object type.
/// (A Job is large; boxing keeps every message small.)
enum Message {
    Namespace(Box<Event<Namespace>>),
    Job(Box<Event<Job>>),
}

impl From<Event<Namespace>> for Message {
    fn from(e: Event<Namespace>) -> Self {
        Message::Namespace(Box::new(e))
    }
}

impl From<Event<Job>> for Message {
    fn from(e: Event<Job>) -> Self {
        Message::Job(Box::new(e))
    }
}

#[tokio::test]
async fn two_watchers_of_different_kinds_feed_one_consumer() -> TestResult {
    let server = server().await?;
    let c = client(&server)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(16);
    let namespaces = Watcher::start(
        c.clone(),
        Request::list::<Namespace>(),
        support::fast_watcher_options()
            .name("namespaces")
            .send_to(tx.clone()),
    )?;
    let jobs = Watcher::start(
        c.clone(),
        Request::list::<Job>().namespace("w"),
        support::fast_watcher_options().name("jobs").send_to(tx),
    )?;
    assert!(server.wait_for_watches("namespaces", 1, WAIT).await);
    assert!(server.wait_for_watches("jobs", 1, WAIT).await);
    server.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}))?;
    server.create(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "backup", "namespace": "w"},
        "spec": {"template": {"spec": {"containers": [{"name": "b", "image": "busybox"}], "restartPolicy": "Never"}}}}))?;
    let mut seen = BTreeSet::new();
    for _ in 0..2 {
        let message = tokio::time::timeout(WAIT, rx.recv())
            .await?
            .ok_or("channel closed")?;
        match message {
            Message::Namespace(ev) => {
                assert_eq!(ev.from, namespaces.id());
                let ns = ev.object().ok_or("no object")?;
                seen.insert(format!(
                    "{} namespace {}",
                    ev.event_type(),
                    ns.metadata.name.as_deref().unwrap_or("")
                ));
            }
            Message::Job(ev) => {
                assert_eq!(ev.from, jobs.id());
                let job = ev.object().ok_or("no object")?;
                seen.insert(format!(
                    "{} job {}",
                    ev.event_type(),
                    job.metadata.name.as_deref().unwrap_or("")
                ));
            }
        }
    }
    assert_eq!(
        seen,
        BTreeSet::from([
            "ADDED job backup".to_string(),
            "ADDED namespace team-a".to_string()
        ])
    );
    assert_eq!(namespaces.stop().await, StopOutcome::Stopped);
    assert_eq!(jobs.stop().await, StopOutcome::Stopped);
    Ok(())
}

#[tokio::test]
async fn the_stream_form_delivers_the_same_events() -> TestResult {
    use futures_util::StreamExt;
    let server = server().await?;
    let start = server.resource_version().to_string();
    server.create(cm("w", "a", "1"))?;
    server.delete("v1", "ConfigMap", Some("w"), "a")?;
    let mut stream = Watcher::stream(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().resource_version(start),
    )?;
    let mut got = Vec::new();
    for _ in 0..2 {
        let ev = tokio::time::timeout(WAIT, stream.next())
            .await?
            .ok_or("stream ended")?;
        got.push(summary(&ev));
    }
    assert_eq!(
        got,
        vec![added("a", "1"), (EventType::Deleted, "a".into(), "1".into())]
    );
    Ok(())
}

/// The `Stream` form tells its counters as the handle does: events, resumes, and the version it
/// would resume from.
#[tokio::test]
async fn the_stream_form_tells_its_counters() -> TestResult {
    use futures_util::StreamExt;
    let server = server().await?;
    let start = server.resource_version().to_string();
    let mut stream = Watcher::stream(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().resource_version(start),
    )?;
    let a = server.create(cm("w", "a", "1"))?;
    let ev = tokio::time::timeout(WAIT, stream.next())
        .await?
        .ok_or("stream ended")?;
    assert_eq!(summary(&ev), added("a", "1"));
    assert_eq!(ev.from, stream.id());
    // The server ends the watch cleanly; the stream, polled, resumes from `a`.
    server.faults().end_watches(Some("configmaps"));
    let deadline = tokio::time::Instant::now() + WAIT;
    while watch_versions(&server, CM_PATH).len() < 2 {
        if let Ok(ev) = tokio::time::timeout(Duration::from_millis(10), stream.next()).await {
            return Err(format!("nothing was written, yet the stream gave {ev:?}").into());
        }
        if tokio::time::Instant::now() > deadline {
            return Err("the stream did not resume".into());
        }
    }
    let b = server.create(cm("w", "b", "1"))?;
    let ev = tokio::time::timeout(WAIT, stream.next())
        .await?
        .ok_or("stream ended")?;
    assert_eq!(summary(&ev), added("b", "1"));
    let stats = stream.stats();
    assert_eq!(stats.events, 2);
    assert_eq!(stats.resumes, 1);
    assert_eq!(stats.retries, 0);
    assert_eq!(stats.resource_version, Some(rv_of(&b)));
    assert_eq!(watch_versions(&server, CM_PATH).get(1), Some(&rv_of(&a)));
    Ok(())
}

#[tokio::test]
async fn custom_resources_are_watched_as_dynamic_objects() -> TestResult {
    let server = server().await?;
    server.register(kazan_apiserver::ResourceDef::new(
        "example.com",
        "v1",
        "Widget",
        "widgets",
        true,
    ));
    let widgets = ApiResource::new("example.com", "v1", "Widget", "widgets", true);
    let mut w = Watcher::start(
        client(&server)?,
        Request::list_of::<DynamicObject>(widgets).namespace("w"),
        support::fast_watcher_options(),
    )?;
    assert!(server.wait_for_watches("widgets", 1, WAIT).await);
    server.create(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "w"}, "spec": {"size": 3}}))?;
    let ev = next(&mut w).await?;
    let obj = ev.object().ok_or("no object")?;
    assert_eq!(obj.metadata.name.as_deref(), Some("w1"));
    assert_eq!(obj.data["spec"]["size"], 3);
    Ok(())
}

#[tokio::test]
async fn an_object_that_does_not_decode_is_skipped_and_reported() -> TestResult {
    let server = server().await?;
    let start = server.resource_version().to_string();
    // A ConfigMap whose `data` is not a map of strings cannot become a typed ConfigMap.
    let bad = server.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad", "namespace": "w"}, "data": {"v": 42}}))?;
    server.create(cm("w", "good", "1"))?;
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().resource_version(start),
    )?;
    let ev = next(&mut w).await?;
    match &ev.kind {
        EventKind::Skipped(e) => {
            assert!(matches!(**e, WatchError::Decode { .. }));
            let text = e.to_string();
            assert!(text.contains("w/bad") && text.contains(&rv_of(&bad)), "{text}");
        }
        other => panic!("expected Skipped, got {other:?}"),
    }
    assert_eq!(ev.resource_version, Some(rv_of(&bad)));
    assert_eq!(summary(&next(&mut w).await?), added("good", "1"));
    Ok(())
}

#[tokio::test]
async fn garbage_lines_unknown_types_and_huge_lines_are_reported_not_fatal() -> TestResult {
    let server = server().await?;
    let a = server.create(cm("w", "a", "1"))?;
    let a_line = json!({"type": "ADDED", "object": a}).to_string();
    // What no real server sends, but a broken proxy might: one answer carrying an unknown event
    // type, an over-long line, then a line that is not JSON.
    let body = format!(
        "{a_line}\n{{\"type\":\"SURPRISE\",\"object\":{{}}}}\n{{\"type\":\"ADDED\",\"object\":{{\"pad\":\"{}\"}}}}\nnot json at all\n",
        "x".repeat(4096)
    );
    server
        .faults()
        .add_rule(FaultRule::new(FaultAction::raw(200, "application/json", &body)).watch(true));
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options()
            .resource_version("1")
            .max_line_bytes(2048),
    )?;
    assert_eq!(summary(&next(&mut w).await?), added("a", "1"));
    let ev = next(&mut w).await?;
    assert!(
        matches!(&ev.kind, EventKind::Skipped(e) if matches!(&**e, WatchError::UnknownEventType(t) if t == "SURPRISE"))
    );
    let ev = next(&mut w).await?;
    assert!(
        matches!(&ev.kind, EventKind::Skipped(e) if matches!(**e, WatchError::LineTooLong { max: 2048, .. }))
    );
    // The line that is not JSON makes the watcher resume from `a`, which the real server then serves.
    server.create(cm("w", "b", "1"))?;
    assert_eq!(summary(&next(&mut w).await?), added("b", "1"));
    assert_eq!(watch_versions(&server, CM_PATH), vec!["1".to_string(), rv_of(&a)]);
    Ok(())
}

#[tokio::test]
async fn the_supervisor_relists_after_gone() -> TestResult {
    let server = server().await?;
    server.create(cm("w", "a", "1"))?;
    let mut w = Watcher::supervise(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().bookmarks(false),
    )?;
    assert_eq!(summary(&next(&mut w).await?), added("a", "1"));
    assert_eq!(next(&mut w).await?.event_type(), EventType::Synced);
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    // The watcher falls out of the history window.
    server.create(cm("other", "x", "1"))?;
    server.delete("v1", "ConfigMap", Some("w"), "a")?;
    server.create(cm("w", "b", "1"))?;
    let deleted = next(&mut w).await?;
    assert_eq!(deleted.event_type(), EventType::Deleted);
    let added_b = next(&mut w).await?;
    assert_eq!(summary(&added_b), added("b", "1"));
    server.create(cm("other", "y", "1"))?;
    server.faults().compact_history();
    server.faults().end_watches(None);
    let gone = next(&mut w).await?;
    assert_eq!(gone.event_type(), EventType::Gone);
    assert_eq!(gone.from, w.id());
    // Relisted: the current state as Added, then Synced, then it watches on.
    assert_eq!(summary(&next(&mut w).await?), added("b", "1"));
    assert_eq!(next(&mut w).await?.event_type(), EventType::Synced);
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.create(cm("w", "c", "1"))?;
    assert_eq!(summary(&next(&mut w).await?), added("c", "1"));
    assert!(w.is_running());
    assert_eq!(w.stop().await, StopOutcome::Stopped);
    Ok(())
}

#[tokio::test]
async fn a_per_watcher_request_deadline_turns_a_hung_list_into_a_retry() -> TestResult {
    let server = server().await?;
    server.faults().add_rule(
        FaultRule::new(FaultAction::Delay { millis: 3_000 })
            .watch(false)
            .path_prefix(CM_PATH),
    );
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().request_timeout(Duration::from_millis(300)),
    )?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.create(cm("w", "a", "1"))?;
    assert_eq!(summary(&next(&mut w).await?), added("a", "1"));
    assert_eq!(w.stats().retries, 1);
    let lists = server
        .journal()
        .iter()
        .filter(|e| !e.watch && e.path == CM_PATH)
        .count();
    assert_eq!(lists, 2);
    Ok(())
}

#[tokio::test]
async fn a_stalled_watch_is_abandoned_after_the_idle_deadline_and_resumed() -> TestResult {
    let server = server().await?;
    let start = server.resource_version().to_string();
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options()
            .resource_version(start)
            .idle_timeout(Duration::from_millis(500)),
    )?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    let a = server.create(cm("w", "a", "1"))?;
    assert_eq!(summary(&next(&mut w).await?), added("a", "1"));
    // The connection stays open but nothing comes: a half-dead connection, as a load balancer
    // that dropped the flow would leave it.
    server.faults().stall_watches(None, Duration::from_secs(60));
    server.create(cm("w", "b", "1"))?;
    assert_eq!(summary(&next(&mut w).await?), added("b", "1"));
    assert_eq!(w.stats().retries, 1);
    assert_eq!(watch_versions(&server, CM_PATH).get(1), Some(&rv_of(&a)));
    Ok(())
}

#[tokio::test]
async fn an_event_repeating_the_last_version_is_dropped_as_kazan_does() -> TestResult {
    let server = server().await?;
    let start = server.resource_version().to_string();
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().resource_version(start.clone()),
    )?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    let a = server.create(cm("w", "a", "1"))?;
    assert_eq!(summary(&next(&mut w).await?), added("a", "1"));
    // The same event again on the wire (as a buggy proxy or server might replay it).
    let again = format!("{}\n", json!({"type": "ADDED", "object": a}));
    server
        .faults()
        .inject_into_watches(Some("configmaps"), again.into_bytes());
    // Let the injected line go out before the next real event.
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.create(cm("w", "b", "1"))?;
    assert_eq!(summary(&next(&mut w).await?), added("b", "1"));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), w.recv())
            .await
            .is_err(),
        "an extra event arrived"
    );
    // Every watch request carries a server-side timeout drawn from 5–10 minutes, and bookmarks.
    for entry in server.journal().iter().filter(|e| e.watch) {
        let timeout: u32 = query_param(&entry.query, "timeoutSeconds")
            .ok_or("no timeoutSeconds")?
            .parse()?;
        assert!((300..600).contains(&timeout), "timeoutSeconds={timeout}");
        assert_eq!(
            query_param(&entry.query, "allowWatchBookmarks").as_deref(),
            Some("true")
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_lazy_form_delivers_raw_objects_that_decode_on_demand() -> TestResult {
    use kazan::{Object, RawObject};
    let server = server().await?;
    let start = server.resource_version().to_string();
    let a = server.create(cm("w", "a", "1"))?;
    let configmaps = ApiResource::of::<ConfigMap>();
    let mut w = Watcher::start(
        client(&server)?,
        Request::list_of::<RawObject>(configmaps).namespace("w"),
        support::fast_watcher_options().resource_version(start),
    )?;
    let ev = next(&mut w).await?;
    assert_eq!(ev.event_type(), EventType::Added);
    let raw = ev.object().ok_or("no object")?;
    assert_eq!((raw.name(), raw.namespace()), ("a", Some("w")));
    assert_eq!(raw.resource_version().map(str::to_string), Some(rv_of(&a)));
    let typed: ConfigMap = raw.decode()?;
    assert_eq!(typed.data.and_then(|d| d.get("v").cloned()).as_deref(), Some("1"));
    Ok(())
}

#[tokio::test]
async fn the_handles_receiver_can_be_taken_into_another_task() -> TestResult {
    let server = server().await?;
    let start = server.resource_version().to_string();
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options().resource_version(start),
    )?;
    let mut rx = w.take_receiver().ok_or("no receiver")?;
    assert!(w.take_receiver().is_none());
    assert!(w.recv().await.is_none(), "events now go to the taken receiver");
    let reader = tokio::spawn(async move { tokio::time::timeout(WAIT, rx.recv()).await });
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.create(cm("w", "a", "1"))?;
    let ev = reader.await??.ok_or("channel closed")?;
    assert_eq!(summary(&ev), added("a", "1"));
    assert_eq!(w.stop().await, StopOutcome::Stopped);
    Ok(())
}

/// One watch answer of `objects` ADDED lines with an unknown type and an over-long line among
/// them, ending in a line that is not JSON; and the summaries the consumer must see for it, in order.
fn a_long_answer_with_problems(objects: &[Value]) -> (String, Vec<String>) {
    let mut body = String::new();
    let mut expected = Vec::new();
    for (i, obj) in objects.iter().enumerate() {
        if i == objects.len() / 3 {
            body.push_str("{\"type\":\"SURPRISE\",\"object\":{}}\n");
            expected.push("skipped: unknown type".to_string());
        }
        if i == 2 * objects.len() / 3 {
            body.push_str(&format!(
                "{{\"type\":\"ADDED\",\"object\":{{\"pad\":\"{}\"}}}}\n",
                "x".repeat(4096)
            ));
            expected.push("skipped: too long".to_string());
        }
        body.push_str(&json!({"type": "ADDED", "object": obj}).to_string());
        body.push('\n');
        expected.push(format!(
            "added {}",
            obj["metadata"]["name"].as_str().unwrap_or_default()
        ));
    }
    body.push_str("not json at all\n");
    (body, expected)
}

/// What a test compares of an event from [`a_long_answer_with_problems`].
fn described(ev: &Event<ConfigMap>) -> String {
    match &ev.kind {
        EventKind::Added(o) => format!("added {}", o.metadata.name.as_deref().unwrap_or_default()),
        EventKind::Skipped(e) if matches!(&**e, WatchError::UnknownEventType(_)) => {
            "skipped: unknown type".into()
        }
        EventKind::Skipped(e) if matches!(&**e, WatchError::LineTooLong { .. }) => "skipped: too long".into(),
        other => format!("unexpected {other:?}"),
    }
}

/// A ConfigMap's metadata, with the thread that decoded it.
#[derive(Debug)]
struct DecodedOn {
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    thread: std::thread::ThreadId,
}

impl<'de> serde::Deserialize<'de> for DecodedOn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Fields {
            #[serde(default)]
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        }
        Ok(DecodedOn {
            metadata: Fields::deserialize(d)?.metadata,
            thread: std::thread::current().id(),
        })
    }
}

impl kazan::Object for DecodedOn {
    fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &self.metadata
    }
}

/// `decode_concurrency` does what it says in the spawned form too: above 1, objects are decoded
/// on the runtime's worker threads, not by `recv` on the consumer's; at 1 (the default), every
/// object is decoded on the consumer's thread, where it will be dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spawned_form_decodes_ahead_on_other_threads_only_when_asked() -> TestResult {
    for concurrency in [1, 4] {
        let server = server().await?;
        let objects = (0..200)
            .map(|i| server.create(cm("w", &format!("cm-{i:03}"), "1")))
            .collect::<Result<Vec<_>, _>>()?;
        // One answer holding every event, so that chunks carry many lines.
        let body: String = objects
            .iter()
            .map(|obj| format!("{}\n", json!({"type": "ADDED", "object": obj})))
            .collect();
        server
            .faults()
            .add_rule(FaultRule::new(FaultAction::raw(200, "application/json", &body)).watch(true));
        let options = support::fast_watcher_options()
            .resource_version("1")
            .decode_concurrency(concurrency);
        let request = Request::list_of::<DecodedOn>(ApiResource::of::<ConfigMap>()).namespace("w");
        let mut w = Watcher::start(client(&server)?, request, options)?;
        // The test's body runs on the runtime's own thread, which is not one of its workers.
        let consumer = std::thread::current().id();
        let mut names = Vec::new();
        let mut elsewhere = 0;
        for _ in 0..objects.len() {
            match next(&mut w).await?.kind {
                EventKind::Added(o) => {
                    names.push(o.metadata.name.clone().unwrap_or_default());
                    elsewhere += usize::from(o.thread != consumer);
                }
                other => return Err(format!("unexpected {other:?}").into()),
            }
        }
        let expected: Vec<String> = (0..200).map(|i| format!("cm-{i:03}")).collect();
        assert_eq!(names, expected, "decode_concurrency({concurrency})");
        if concurrency == 1 {
            assert_eq!(elsewhere, 0, "decoded off the consumer's thread");
        } else {
            // Only a chunk holding a single line is decoded where it is delivered.
            assert!(
                elsewhere > objects.len() / 2,
                "{elsewhere} of {} decoded on other threads",
                objects.len()
            );
        }
    }
    Ok(())
}

/// With objects decoded ahead on the runtime's threads, chunk by chunk, events still arrive in the
/// order of the lines, problems included, in both forms, and the resume after the line that is not
/// JSON asks for the last object's version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decoding_ahead_on_other_threads_keeps_the_order_of_the_lines() -> TestResult {
    use futures_util::StreamExt;
    for form in ["spawned", "stream"] {
        let server = server().await?;
        let objects = (0..300)
            .map(|i| server.create(cm("w", &format!("cm-{i:03}"), "1")))
            .collect::<Result<Vec<_>, _>>()?;
        let (body, mut expected) = a_long_answer_with_problems(&objects);
        server
            .faults()
            .add_rule(FaultRule::new(FaultAction::raw(200, "application/json", &body)).watch(true));
        let options = support::fast_watcher_options()
            .resource_version("1")
            .max_line_bytes(2048)
            .decode_concurrency(4);
        let request = Request::list::<ConfigMap>().namespace("w");
        // After the line that is not JSON, the real server serves what follows the last object.
        expected.push("added after".into());
        let mut got = Vec::new();
        if form == "spawned" {
            let mut w = Watcher::start(client(&server)?, request, options)?;
            for _ in 0..expected.len() - 1 {
                got.push(described(&next(&mut w).await?));
            }
            server.create(cm("w", "after", "1"))?;
            got.push(described(&next(&mut w).await?));
        } else {
            let mut stream = Watcher::stream(client(&server)?, request, options)?;
            for _ in 0..expected.len() - 1 {
                let ev = tokio::time::timeout(WAIT, stream.next())
                    .await?
                    .ok_or("stream ended")?;
                got.push(described(&ev));
            }
            server.create(cm("w", "after", "1"))?;
            let ev = tokio::time::timeout(WAIT, stream.next())
                .await?
                .ok_or("stream ended")?;
            got.push(described(&ev));
        }
        assert_eq!(got, expected, "{form} form");
        let last = objects.last().map(rv_of).unwrap_or_default();
        assert_eq!(
            watch_versions(&server, CM_PATH),
            vec!["1".to_string(), last],
            "{form} form"
        );
    }
    Ok(())
}
