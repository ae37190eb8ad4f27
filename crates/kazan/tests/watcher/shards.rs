//! Sharded watches (KEP-5866, kubernetes/enhancements keps/sig-api-machinery/5866): N watchers,
//! each with a fixed shard I/N of the UID hash space, together deliver exactly what one unsharded
//! watcher delivers, each object to one shard only — whether the server filters (as one with the
//! `ShardedListAndWatch` feature, k8s.io/apiserver pkg/storage/selection_predicate.go) or ignores
//! the selector (an older server), when each watcher filters what it receives itself.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ConfigMap;
use kazan::{
    Request,
    shard::{ShardKey, ShardMode, ShardSelector},
    watcher::{EventKind, Watcher, WatcherHandle},
};
use kazan_apiserver::ApiServer;
use serde_json::json;

use super::{TestError, TestResult, WAIT, client, cm, support};

/// (event type, name, resourceVersion) of every object event: all the watcher has to deliver,
/// read until it has handed over the version of the last write (the unsharded watcher), or until
/// it has been quiet for a while after its list (a shard, which hears nothing of the others'
/// writes; the writes are all made before this reads).
async fn collect(
    w: &mut WatcherHandle<kazan::watcher::Event<ConfigMap>>,
    until_rv: Option<u64>,
) -> Result<Vec<(String, String, u64)>, TestError> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    let quiet = std::time::Duration::from_millis(700);
    loop {
        let at: u64 = w
            .stats()
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if until_rv.is_some_and(|rv| at >= rv) {
            while let Ok(Some(ev)) =
                tokio::time::timeout(std::time::Duration::from_millis(100), w.recv()).await
            {
                push(&mut seen, &ev);
            }
            return Ok(seen);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("not caught up within the bound (at {at})").into());
        }
        match tokio::time::timeout(quiet, w.recv()).await {
            Ok(Some(ev)) => push(&mut seen, &ev),
            Ok(None) => return Err("the watcher ended".into()),
            Err(_) if until_rv.is_none() && seen.iter().any(|e| e.0 == "SYNCED") => return Ok(seen),
            Err(_) => {}
        }
    }
}

fn push(seen: &mut Vec<(String, String, u64)>, ev: &kazan::watcher::Event<ConfigMap>) {
    if let Some(o) = ev.object() {
        let rv = ev
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        seen.push((
            ev.event_type().to_string(),
            o.metadata.name.clone().unwrap_or_default(),
            rv,
        ));
    }
    if matches!(ev.kind, EventKind::Synced) {
        seen.push(("SYNCED".into(), String::new(), 0));
    }
}

/// Writes creates, updates and deletes; returns the last resourceVersion.
fn churn(server: &ApiServer, round: usize) -> Result<u64, TestError> {
    for i in 0..30 {
        server.create(cm("w", &format!("r{round}-{i}"), "1"))?;
    }
    for i in (0..30).step_by(3) {
        server.merge_patch(
            "v1",
            "ConfigMap",
            Some("w"),
            &format!("r{round}-{i}"),
            json!({"data": {"v": "2"}}),
        )?;
    }
    for i in (0..30).step_by(5) {
        server.delete("v1", "ConfigMap", Some("w"), &format!("r{round}-{i}"))?;
    }
    Ok(server.resource_version())
}

async fn sharded_union_equals_unsharded(total: u64, server_filters: bool) -> TestResult {
    let server = ApiServer::builder()
        .namespaces(&["w"])
        .sharding(server_filters)
        // A shard the server filters hears nothing of the others' writes: its bookmarks tell it
        // how far the stream has gone.
        .bookmark_interval(std::time::Duration::from_millis(200))
        .start()
        .await?;
    // Objects listed at the start, and changes while watching.
    churn(&server, 0)?;
    let start = |shard: Option<ShardSelector>| {
        let mut options = support::fast_watcher_options().deliver_initial_list(true);
        if let Some(shard) = shard {
            options = options.shard(shard);
        }
        Watcher::supervise(
            client(&server)?,
            Request::list::<ConfigMap>().namespace("w"),
            options,
        )
        .map_err(TestError::from)
    };
    let mut whole = start(None)?;
    let mut shards = Vec::new();
    for i in 0..total {
        shards.push(start(Some(ShardSelector::fixed(ShardKey::Uid, i, total)?))?);
    }
    assert!(
        server
            .wait_for_watches("configmaps", 1 + total as usize, WAIT)
            .await
    );
    let last = churn(&server, 1)?;

    let expected = collect(&mut whole, Some(last)).await?;
    let mut union: BTreeMap<(String, String, u64), u64> = BTreeMap::new();
    let mut filtered = 0;
    for (i, shard) in shards.iter_mut().enumerate() {
        let got = collect(shard, None).await?;
        for event in got {
            if event.0 == "SYNCED" {
                continue;
            }
            if let Some(other) = union.insert(event.clone(), i as u64) {
                return Err(format!("{event:?} delivered by shards {other} and {i}").into());
            }
        }
        let stats = shard.stats();
        let mode = if server_filters {
            ShardMode::ServerSide
        } else {
            ShardMode::ClientSide
        };
        assert_eq!(stats.shard_mode, Some(mode));
        filtered += stats.shard_filtered;
    }
    let expected: BTreeSet<_> = expected.into_iter().filter(|e| e.0 != "SYNCED").collect();
    let union: BTreeSet<_> = union.into_keys().collect();
    assert_eq!(
        union, expected,
        "the shards together deliver what one watcher does"
    );
    if server_filters {
        assert_eq!(filtered, 0, "the server sent each shard only its objects");
    } else {
        assert!(filtered > 0, "the shards dropped the others' objects");
    }
    // Every list and watch request carried the selector.
    let journal = server.journal();
    let sharded = journal
        .iter()
        .filter(|e| e.path == "/api/v1/namespaces/w/configmaps" && e.query.contains("shardSelector="))
        .count();
    assert!(sharded >= 2 * total as usize, "{sharded} sharded requests");
    Ok(())
}

#[tokio::test]
async fn two_shards_filtered_by_the_server_deliver_together_exactly_what_one_watcher_does() -> TestResult {
    sharded_union_equals_unsharded(2, true).await
}

#[tokio::test]
async fn three_shards_filtered_by_the_server_deliver_together_exactly_what_one_watcher_does() -> TestResult {
    sharded_union_equals_unsharded(3, true).await
}

#[tokio::test]
async fn two_shards_filtered_by_the_watchers_deliver_together_exactly_what_one_watcher_does() -> TestResult {
    sharded_union_equals_unsharded(2, false).await
}

#[tokio::test]
async fn three_shards_filtered_by_the_watchers_deliver_together_exactly_what_one_watcher_does() -> TestResult
{
    sharded_union_equals_unsharded(3, false).await
}
