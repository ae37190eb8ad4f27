//! Watching the server's Tables: `TableRow` as the Watcher's (and the informer's) object type asks
//! for Tables as kubectl's `get -w` does (kubectl `pkg/cmd/get/get.go`, `transformRequests`: the
//! same Accept on the list and the watch), and gets one row per object with its cells and the
//! object's metadata (apiserver `pkg/endpoints/handlers/response.go`, `asTable`); the column
//! definitions come with the first row of a list page and the first event of a watch. Resumes, 410
//! Gone and relists work as for any object type.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kazan::{
    ApiResource, Request,
    informer::{self, Informer, InformerOptions},
    table::{TABLE_ACCEPT, TableRow},
    watcher::{EndReason, EventKind, EventType, InitialList, Watcher},
};

use super::{CM_PATH, TestResult, client, cm, next, server, support};

fn column_names(row: &TableRow) -> Vec<&str> {
    row.columns.iter().flatten().map(|c| c.name.as_str()).collect()
}

#[tokio::test]
async fn a_watcher_of_table_rows_gets_the_servers_cells_and_each_objects_metadata() -> TestResult {
    for how in [InitialList::Paginated, InitialList::Streaming] {
        let server = server().await?;
        let stored = server.create(cm("w", "a", "1"))?;
        let mut w = Watcher::start(
            client(&server)?,
            Request::list_of::<TableRow>(ApiResource::of::<ConfigMap>()).namespace("w"),
            support::fast_watcher_options()
                .deliver_initial_list(true)
                .initial_list(how),
        )?;
        let EventKind::Added(first) = next(&mut w).await?.kind else {
            return Err(format!("{how:?}: expected Added").into());
        };
        assert!(first.is_table, "{how:?}");
        assert_eq!(column_names(&first), ["Name", "Data", "Age"], "{how:?}");
        assert_eq!(first.cells[0], "a");
        assert_eq!(first.cells[1], 1);
        let expected: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
            serde_json::from_value(stored["metadata"].clone())?;
        assert_eq!(
            first.metadata, expected,
            "{how:?}: the row's object is the whole metadata"
        );
        assert_eq!(next(&mut w).await?.event_type(), EventType::Synced);
        server.create(cm("w", "b", "1"))?;
        let later = next(&mut w).await?;
        assert_eq!(later.event_type(), EventType::Added);
        let row = later.object().ok_or("an object")?;
        assert!(row.is_table);
        assert_eq!(row.cells[0], "b");
        for entry in server.journal().iter().filter(|e| e.path == CM_PATH) {
            assert_eq!(entry.accept.as_deref(), Some(TABLE_ACCEPT), "{how:?}: {entry:?}");
        }
        w.stop().await;
    }
    Ok(())
}

#[tokio::test]
async fn a_table_row_watcher_resumes_from_its_version_and_ends_with_gone_when_it_expired() -> TestResult {
    let server = server().await?;
    server.create(cm("w", "a", "1"))?;
    let mut w = Watcher::start(
        client(&server)?,
        Request::list_of::<TableRow>(ApiResource::of::<ConfigMap>()).namespace("w"),
        support::fast_watcher_options().initial_list(InitialList::Paginated),
    )?;
    assert!(server.wait_for_watches("configmaps", 1, super::WAIT).await);
    // The server ends the watch: the watcher resumes from the version it had, no event is lost.
    server.faults().end_watches(None);
    server.create(cm("w", "b", "1"))?;
    let ev = next(&mut w).await?;
    assert_eq!(ev.event_type(), EventType::Added);
    assert_eq!(ev.object().map(|r| r.metadata.name.as_deref()), Some(Some("b")));
    // History compacted while it is away: 410 Gone, as for any object type.
    assert!(server.wait_for_watches("configmaps", 1, super::WAIT).await);
    for i in 0..3 {
        server.create(cm("other", &format!("x{i}"), "1"))?;
    }
    server.faults().compact_history();
    server.faults().end_watches(None);
    let ev = next(&mut w).await?;
    assert!(matches!(ev.kind, EventKind::Gone { .. }), "{ev:?}");
    assert!(matches!(w.wait().await, EndReason::Gone { .. }));
    Ok(())
}

#[tokio::test]
async fn an_informer_of_table_rows_relists_after_gone_and_reports_what_vanished() -> TestResult {
    let server = server().await?;
    server.create(cm("w", "a", "1"))?;
    server.create(cm("w", "gone", "1"))?;
    let (informer, mut events) = Informer::start_subscribed(
        client(&server)?,
        Request::list_of::<TableRow>(ApiResource::of::<ConfigMap>()).namespace("w"),
        InformerOptions::new().watcher(support::fast_watcher_options().initial_list(InitialList::Paginated)),
        informer::SubscribeOptions::new(),
    )?;
    let mut seen = Vec::new();
    let synced = tokio::time::timeout(super::WAIT, async {
        while let Some(ev) = events.recv().await {
            if matches!(ev.kind, informer::EventKind::Synced) {
                return true;
            }
            seen.push(ev.object().map(|r| r.metadata.name.clone().unwrap_or_default()));
        }
        false
    })
    .await?;
    assert!(synced);
    assert_eq!(seen.len(), 2);
    assert!(server.wait_for_watches("configmaps", 1, super::WAIT).await);
    // While the watch is away: one object deleted, one changed, history compacted.
    server.faults().stall_watches(None, Duration::from_millis(300));
    server.delete("v1", "ConfigMap", Some("w"), "gone")?;
    server.merge_patch(
        "v1",
        "ConfigMap",
        Some("w"),
        "a",
        serde_json::json!({"data": {"v": "2"}}),
    )?;
    server.faults().compact_history();
    server.faults().end_watches(None);
    let mut after = Vec::new();
    let done = tokio::time::timeout(super::WAIT, async {
        while let Some(ev) = events.recv().await {
            let name = ev.object().map(|r| r.metadata.name.clone().unwrap_or_default());
            after.push((ev.event_type(), name, ev.is_final_state_unknown()));
            if after.len() == 2 {
                return;
            }
        }
    })
    .await;
    assert!(done.is_ok(), "{after:?}");
    after.sort_by_key(|(_, name, _)| name.clone());
    assert_eq!(after[0].0, EventType::Modified, "{after:?}");
    assert_eq!(after[0].1.as_deref(), Some("a"));
    assert_eq!(
        (after[1].0, after[1].1.as_deref()),
        (EventType::Deleted, Some("gone"))
    );
    let row = informer.store().get("w", "a");
    assert_eq!(row.map(|r| r.cells[0].clone()), Some("a".into()));
    informer.stop().await?;
    Ok(())
}
