//! Streaming lists (watch-list, KEP-3157): the initial list as one watch with
//! `sendInitialEvents=true`, ended by the BOOKMARK annotated `k8s.io/initial-events-end`, and the
//! fallbacks of `InitialList::Auto` to a paginated list.
//!
//! Followed: client-go `tools/cache/reflector.go` (`watchList`: the request's parameters, the
//! annotated bookmark as the end, a fallback to a list on an error answer or ERROR event it would
//! not retry, a 410 retried from ""), apiserver `pkg/storage/cacher` (the initial events and the
//! bookmark), and kube-rs PR #1882 (a resumed watch must not ask for initial events again).

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kazan::{
    Request,
    watcher::{Event, EventKind, EventType, InitialList, WatchError, Watcher, WatcherHandle},
};
use kazan_apiserver::{ApiServer, FaultAction, FaultRule, JournalEntry};
use serde_json::{Value, json};

use super::{CM_PATH, TestResult, WAIT, client, cm, next, query_param, server, support};

/// The watch and list requests to the ConfigMaps of "w", in order.
fn requests(server: &ApiServer) -> Vec<JournalEntry> {
    server
        .journal()
        .into_iter()
        .filter(|e| e.path == CM_PATH)
        .collect()
}

fn asks_initial_events(e: &JournalEntry) -> bool {
    query_param(&e.query, "sendInitialEvents").as_deref() == Some("true")
}

/// Three ConfigMaps in "w"; the server's version after them.
fn three(server: &ApiServer) -> Result<String, super::TestError> {
    for name in ["a", "b", "c"] {
        server.create(cm("w", name, "1"))?;
    }
    Ok(server.resource_version().to_string())
}

/// A delivered event: (type, name).
fn short(ev: &Event<ConfigMap>) -> (EventType, String) {
    let name = ev
        .object()
        .and_then(|o| o.metadata.name.clone())
        .unwrap_or_default();
    (ev.event_type(), name)
}

/// Receives events until `Synced` (bounded) and returns them, `Synced` included.
async fn until_synced(
    w: &mut WatcherHandle<Event<ConfigMap>>,
) -> Result<Vec<Event<ConfigMap>>, super::TestError> {
    let mut seen = Vec::new();
    for _ in 0..50 {
        let ev = next(w).await?;
        let synced = matches!(ev.kind, EventKind::Synced);
        seen.push(ev);
        if synced {
            return Ok(seen);
        }
    }
    Err("no Synced within 50 events".into())
}

fn added(names: &[&str]) -> Vec<(EventType, String)> {
    names.iter().map(|n| (EventType::Added, n.to_string())).collect()
}

fn delivering(how: InitialList) -> kazan::watcher::WatcherOptions {
    support::fast_watcher_options()
        .deliver_initial_list(true)
        .initial_list(how)
}

/// A watch event line holding `object`.
fn line(event_type: &str, object: &Value) -> String {
    format!("{}\n", json!({"type": event_type, "object": object}))
}

/// The next watch request to the ConfigMaps of "w" is answered with `body` (a 200 stream).
fn answer_next_watch_with(server: &ApiServer, body: &str) {
    server.faults().add_rule(
        FaultRule::new(FaultAction::raw(200, "application/json", body))
            .path_prefix(CM_PATH)
            .watch(true),
    );
}

#[tokio::test]
async fn a_streamed_initial_list_ends_at_the_annotated_bookmark_with_synced_at_its_version() -> TestResult {
    let server = server().await?;
    let list_rv = three(&server)?;
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        delivering(InitialList::Streaming),
    )?;
    let seen = until_synced(&mut w).await?;
    let (synced, objects) = seen.split_last().ok_or("no events")?;
    let mut names: Vec<_> = objects.iter().map(short).collect();
    names.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(names, added(&["a", "b", "c"]));
    assert_eq!(synced.resource_version.as_deref(), Some(list_rv.as_str()));
    assert_eq!(w.stats().resource_version.as_deref(), Some(list_rv.as_str()));
    // One watch, with the parameters of client-go's watchList, and no list at all.
    let reqs = requests(&server);
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(reqs[0].watch);
    assert!(asks_initial_events(&reqs[0]));
    assert_eq!(
        query_param(&reqs[0].query, "resourceVersionMatch").as_deref(),
        Some("NotOlderThan")
    );
    assert_eq!(
        query_param(&reqs[0].query, "allowWatchBookmarks").as_deref(),
        Some("true")
    );
    assert_eq!(
        query_param(&reqs[0].query, "resourceVersion").unwrap_or_default(),
        ""
    );
    // The same watch goes on with the changes after the list.
    server.create(cm("w", "d", "1"))?;
    assert_eq!(short(&next(&mut w).await?), (EventType::Added, "d".into()));
    assert_eq!(requests(&server).len(), 1);
    Ok(())
}

#[tokio::test]
async fn the_initial_streams_objects_do_not_move_the_resume_version_before_synced() -> TestResult {
    let server = server().await?;
    let list_rv = three(&server)?;
    let mut stream = Watcher::stream(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        delivering(InitialList::Streaming),
    )?;
    for _ in 0..3 {
        let ev = tokio::time::timeout(WAIT, stream.next()).await?.ok_or("ended")?;
        assert_eq!(ev.event_type(), EventType::Added);
        // A stream of initial events cannot be resumed in the middle.
        assert_eq!(stream.stats().resource_version, None);
    }
    let ev = tokio::time::timeout(WAIT, stream.next()).await?.ok_or("ended")?;
    assert_eq!(ev.event_type(), EventType::Synced);
    assert_eq!(stream.stats().resource_version.as_deref(), Some(list_rv.as_str()));
    Ok(())
}

#[tokio::test]
async fn a_watch_resuming_after_the_streamed_list_never_asks_for_initial_events_again() -> TestResult {
    let server = server().await?;
    let list_rv = three(&server)?;
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        delivering(InitialList::Auto),
    )?;
    until_synced(&mut w).await?;
    for round in 0..2 {
        server.faults().end_watches(None);
        let name = format!("after-{round}");
        server.create(cm("w", &name, "1"))?;
        assert_eq!(short(&next(&mut w).await?), (EventType::Added, name));
    }
    let watches: Vec<_> = requests(&server).into_iter().filter(|e| e.watch).collect();
    assert!(watches.len() >= 3, "{watches:?}");
    assert!(asks_initial_events(&watches[0]));
    for resumed in &watches[1..] {
        assert!(!asks_initial_events(resumed), "{resumed:?}");
        assert_eq!(query_param(&resumed.query, "resourceVersionMatch"), None);
    }
    assert_eq!(
        query_param(&watches[1].query, "resourceVersion").as_deref(),
        Some(list_rv.as_str())
    );
    Ok(())
}

#[tokio::test]
async fn auto_lists_page_by_page_when_the_server_rejects_watch_list() -> TestResult {
    let server = ApiServer::builder()
        .namespaces(&["w"])
        .reject_watch_list(true)
        .start()
        .await?;
    let list_rv = three(&server)?;
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        delivering(InitialList::Auto).page_size(2),
    )?;
    let seen = until_synced(&mut w).await?;
    let names: Vec<_> = seen.iter().map(short).collect();
    let mut want = added(&["a", "b", "c"]);
    want.push((EventType::Synced, String::new()));
    assert_eq!(names, want);
    assert_eq!(seen[3].resource_version.as_deref(), Some(list_rv.as_str()));
    // The refused watch-list (422), two pages, then a plain watch from the list's version.
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    let reqs = requests(&server);
    assert!(
        reqs[0].watch && asks_initial_events(&reqs[0]) && reqs[0].status == 422,
        "{reqs:?}"
    );
    assert!(!reqs[1].watch && !reqs[2].watch, "{reqs:?}");
    assert!(reqs[3].watch && !asks_initial_events(&reqs[3]), "{reqs:?}");
    assert_eq!(
        query_param(&reqs[3].query, "resourceVersion").as_deref(),
        Some(list_rv.as_str())
    );
    Ok(())
}

#[tokio::test]
async fn streaming_without_fallback_ends_on_the_servers_refusal() -> TestResult {
    let server = ApiServer::builder()
        .namespaces(&["w"])
        .reject_watch_list(true)
        .start()
        .await?;
    three(&server)?;
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        delivering(InitialList::Streaming),
    )?;
    let ev = next(&mut w).await?;
    let event_type = ev.event_type();
    match ev.kind {
        EventKind::Failed(error) => assert!(error.to_string().contains("422"), "{error}"),
        _ => return Err(format!("expected Failed, got {event_type:?}").into()),
    }
    assert!(requests(&server).iter().all(|e| e.watch));
    Ok(())
}

#[tokio::test]
async fn auto_lists_page_by_page_after_an_error_event_in_the_watch_list() -> TestResult {
    let server = server().await?;
    three(&server)?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 400,
        "reason": "BadRequest", "message": "sendInitialEvents is not understood here"});
    answer_next_watch_with(&server, &line("ERROR", &status));
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        delivering(InitialList::Auto),
    )?;
    let names: Vec<_> = until_synced(&mut w).await?.iter().map(short).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    let reqs = requests(&server);
    assert!(reqs[0].watch && asks_initial_events(&reqs[0]));
    assert!(!reqs[1].watch, "a list follows the refusal: {reqs:?}");
    Ok(())
}

#[tokio::test]
async fn auto_lists_page_by_page_when_the_watch_list_ends_at_once_without_its_end() -> TestResult {
    let server = server().await?;
    three(&server)?;
    answer_next_watch_with(&server, "");
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        delivering(InitialList::Auto),
    )?;
    let names: Vec<_> = until_synced(&mut w).await?.iter().map(short).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    let reqs = requests(&server);
    assert!(reqs[0].watch && asks_initial_events(&reqs[0]));
    assert!(!reqs[1].watch, "a list follows: {reqs:?}");
    Ok(())
}

/// A server (or proxy) that drops the end bookmark's annotation: the stream delivers objects and
/// ends without the end. Those objects cannot be taken back: the consumer gets `Gone` (start
/// over), and the supervised watcher relists page by page, for good.
#[tokio::test]
async fn auto_starts_over_page_by_page_when_the_stream_ends_without_the_annotated_bookmark() -> TestResult {
    let server = server().await?;
    three(&server)?;
    let a = server.get("v1", "ConfigMap", Some("w"), "a")?;
    answer_next_watch_with(&server, &line("ADDED", &a));
    let mut w = Watcher::supervise(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        delivering(InitialList::Auto),
    )?;
    assert_eq!(short(&next(&mut w).await?), (EventType::Added, "a".into()));
    assert_eq!(next(&mut w).await?.event_type(), EventType::Gone);
    let names: Vec<_> = until_synced(&mut w).await?.iter().map(short).collect();
    let mut want = added(&["a", "b", "c"]);
    want.push((EventType::Synced, String::new()));
    assert_eq!(names, want);
    let reqs = requests(&server);
    assert!(asks_initial_events(&reqs[0]));
    assert!(!reqs[1].watch, "the relist is paginated: {reqs:?}");
    assert!(reqs[1..].iter().all(|e| !asks_initial_events(e)), "{reqs:?}");
    Ok(())
}

/// A server that ignores `sendInitialEvents` answers a plain watch from "": its ADDED burst is
/// the list and its first other event (here a bookmark without the annotation) ends it.
#[tokio::test]
async fn a_server_ignoring_send_initial_events_is_followed_to_the_end_of_its_burst() -> TestResult {
    let server = server().await?;
    let list_rv = three(&server)?;
    let a = server.get("v1", "ConfigMap", Some("w"), "a")?;
    let bookmark = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": list_rv}});
    let body = format!("{}{}", line("ADDED", &a), line("BOOKMARK", &bookmark));
    answer_next_watch_with(&server, &body);
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        delivering(InitialList::Auto),
    )?;
    let seen = until_synced(&mut w).await?;
    assert_eq!(
        seen.iter().map(short).collect::<Vec<_>>(),
        vec![(EventType::Added, "a".into()), (EventType::Synced, String::new())]
    );
    assert_eq!(seen[1].resource_version.as_deref(), Some(list_rv.as_str()));
    server.create(cm("w", "d", "1"))?;
    assert_eq!(short(&next(&mut w).await?), (EventType::Added, "d".into()));
    let watches: Vec<_> = requests(&server).into_iter().filter(|e| e.watch).collect();
    assert_eq!(
        query_param(&watches[1].query, "resourceVersion").as_deref(),
        Some(list_rv.as_str())
    );
    assert!(!asks_initial_events(&watches[1]));
    Ok(())
}

#[tokio::test]
async fn a_requests_send_initial_events_is_honoured_never_dropped() -> TestResult {
    let server = server().await?;
    three(&server)?;
    let request = || {
        Request::list::<ConfigMap>()
            .namespace("w")
            .send_initial_events(true)
    };
    // Against an explicit paginated list: refused, with a typed error.
    let refused = Watcher::start(client(&server)?, request(), delivering(InitialList::Paginated));
    assert!(matches!(
        refused,
        Err(WatchError::InitialListConflict { requested: true, .. })
    ));
    // Otherwise it selects streaming, even against a server that refuses it (no fallback).
    let mut w = Watcher::start(client(&server)?, request(), delivering(InitialList::Auto))?;
    until_synced(&mut w).await?;
    let reqs = requests(&server);
    assert_eq!(reqs.len(), 1);
    assert!(asks_initial_events(&reqs[0]));
    Ok(())
}

#[tokio::test]
async fn a_streamed_list_from_a_given_version_asks_for_it() -> TestResult {
    let server = server().await?;
    let list_rv = three(&server)?;
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>()
            .namespace("w")
            .resource_version(&list_rv),
        delivering(InitialList::Streaming),
    )?;
    let seen = until_synced(&mut w).await?;
    assert_eq!(seen.len(), 4);
    let reqs = requests(&server);
    assert_eq!(
        query_param(&reqs[0].query, "resourceVersion").as_deref(),
        Some(list_rv.as_str())
    );
    Ok(())
}

/// A paginated list asks for the next page as soon as a page is in, and decodes and delivers this
/// one meanwhile, so the server's time and the client's overlap: page 2 is asked for while the
/// consumer has not taken a single event (and the watcher waits on its full channel), and the
/// pages, their events and their order are those of a list fetched one page after the other.
#[tokio::test]
async fn a_paginated_list_fetches_the_next_page_while_it_delivers_this_one() -> TestResult {
    let server = ApiServer::builder().namespaces(&["w"]).start().await?;
    let names = ["a", "b", "c", "d", "e"];
    for name in names {
        server.create(cm("w", name, "1"))?;
    }
    let list_rv = server.resource_version().to_string();
    let mut w = Watcher::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        delivering(InitialList::Paginated)
            .page_size(2)
            .channel_capacity(1),
    )?;
    let continued = |server: &ApiServer| {
        requests(server)
            .iter()
            .filter(|e| !e.watch && query_param(&e.query, "continue").is_some())
            .count()
    };
    let mut asked_ahead = false;
    for _ in 0..200 {
        if continued(&server) > 0 {
            asked_ahead = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        asked_ahead,
        "page 2 not asked for before any event was taken: {:?}",
        requests(&server)
    );
    let seen = until_synced(&mut w).await?;
    let mut want = added(&names);
    want.push((EventType::Synced, String::new()));
    assert_eq!(seen.iter().map(short).collect::<Vec<_>>(), want);
    assert_eq!(seen[5].resource_version.as_deref(), Some(list_rv.as_str()));
    // Three pages, each asked for once.
    let lists: Vec<_> = requests(&server).into_iter().filter(|e| !e.watch).collect();
    assert_eq!(lists.len(), 3, "{lists:?}");
    assert_eq!(continued(&server), 2);
    Ok(())
}
