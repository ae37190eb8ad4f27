//! The informer against the embedded API server: the store it keeps, the events it hands out, its
//! relists, indexes, subscribers and checkpoints. The server's journal proves which requests were
//! made (a list or not, from which version a watch started).
//!
//! Semantics followed: client-go `tools/cache/reflector.go` (list, then watch from the list's
//! version; relist after 410), `tools/cache/delta_fifo.go` (`Replace`: keys the relist lacks become
//! `DeletedFinalStateUnknown`), `tools/cache/shared_informer.go` (a handler added to a running
//! informer first gets the store's contents), kube-runtime `reflector/store.rs`.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use k8s_openapi::api::core::v1::ConfigMap;
use kazan::{
    Client, Config, Object, Request,
    informer::{
        CheckpointError, CheckpointStatus, Event, EventKind, Informer, InformerOptions, Informers, Overflow,
        Store, SubscribeOptions, Subscription,
    },
    watcher::{EventType, InitialList},
};
use kazan_apiserver::{ApiServer, FaultAction, FaultRule};
use serde_json::{Value, json};

#[path = "informer/compact_store.rs"]
mod compact_store;
#[path = "informer/metadata_only.rs"]
mod metadata_only;
#[path = "informer/metrics.rs"]
mod metrics;
#[path = "informer/streaming_lists.rs"]
mod streaming_lists;
#[path = "informer/transforms.rs"]
mod transforms;
use crate::support;
use support::{WAIT, query_param};

use crate::support::{TestError, TestResult};

/// The pause between two looks at something a test waits for.
const POLL: Duration = Duration::from_millis(10);
const CM_PATH: &str = "/api/v1/namespaces/w/configmaps";

async fn server() -> Result<ApiServer, TestError> {
    Ok(ApiServer::builder().namespaces(&["w", "other"]).start().await?)
}

fn client(server: &ApiServer) -> Result<Client, TestError> {
    Ok(Client::new(Config::new(server.url().parse()?))?)
}

fn options() -> InformerOptions {
    InformerOptions::new().watcher(support::fast_watcher_options())
}

fn cm(ns: &str, name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"v": value}})
}

fn labeled(ns: &str, name: &str, team: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {"team": team}}, "data": {"v": "1"}})
}

fn set_value(server: &ApiServer, name: &str, value: &str) -> Result<Value, TestError> {
    Ok(server.merge_patch("v1", "ConfigMap", Some("w"), name, json!({"data": {"v": value}}))?)
}

fn start(server: &ApiServer, options: InformerOptions) -> Result<Informer<ConfigMap>, TestError> {
    Ok(Informer::start(
        client(server)?,
        Request::list::<ConfigMap>().namespace("w"),
        options,
    )?)
}

fn name_of<K: Object>(o: &K) -> String {
    o.name().to_string()
}

fn rv_of<K: Object>(o: &K) -> String {
    o.resource_version().unwrap_or_default().to_string()
}

/// (type, name, data.v, final_state_unknown) of an informer event: what assertions compare.
fn summary(ev: &Event<ConfigMap>) -> (EventType, String, String, bool) {
    let (name, v) = match ev.object() {
        Some(o) => (
            name_of(o.as_ref()),
            o.data
                .as_ref()
                .and_then(|d| d.get("v").cloned())
                .unwrap_or_default(),
        ),
        None => (String::new(), String::new()),
    };
    (ev.event_type(), name, v, ev.is_final_state_unknown())
}

fn ev(t: EventType, name: &str, v: &str) -> (EventType, String, String, bool) {
    (t, name.to_string(), v.to_string(), false)
}

fn unseen_delete(name: &str, v: &str) -> (EventType, String, String, bool) {
    (EventType::Deleted, name.to_string(), v.to_string(), true)
}

fn synced() -> (EventType, String, String, bool) {
    (EventType::Synced, String::new(), String::new(), false)
}

async fn next<K: Object + Send + Sync>(sub: &mut Subscription<K>) -> Result<Event<K>, TestError> {
    match tokio::time::timeout(WAIT, sub.recv()).await {
        Ok(Some(ev)) => Ok(ev),
        Ok(None) => Err("the subscription ended".into()),
        Err(_) => Err("no event within the bound".into()),
    }
}

/// The server's ConfigMaps in `w`: name → resourceVersion.
fn server_state(server: &ApiServer) -> Result<BTreeMap<String, String>, TestError> {
    Ok(server
        .list("v1", "ConfigMap", Some("w"))?
        .iter()
        .map(|o| {
            (
                o["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect())
}

fn store_state<K: Object>(store: &Store<K>) -> BTreeMap<String, String> {
    store
        .list()
        .iter()
        .map(|o| (name_of(o.as_ref()), rv_of(o.as_ref())))
        .collect()
}

/// Waits (bounded) until the store holds exactly the server's objects, at their versions.
async fn converged<K: Object>(store: &Store<K>, server: &ApiServer) -> TestResult {
    for _ in 0..(WAIT.as_millis() / POLL.as_millis()) {
        if store_state(store) == server_state(server)? {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
    Err(format!(
        "the store {:?} did not reach the server's state {:?}",
        store_state(store),
        server_state(server)?
    )
    .into())
}

/// Waits (bounded) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) -> TestResult {
    for _ in 0..(WAIT.as_millis() / POLL.as_millis()) {
        if done() {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
    Err(format!("{what}: not within the bound").into())
}

/// The lists made of the `w` ConfigMaps: first pages of paginated lists, and streamed lists
/// (watches with `sendInitialEvents=true`).
fn lists(server: &ApiServer) -> usize {
    server
        .journal()
        .iter()
        .filter(|e| e.method == "GET" && e.path == CM_PATH)
        .filter(|e| {
            if e.watch {
                is_watch_list(e)
            } else {
                query_param(&e.query, "continue").is_none()
            }
        })
        .count()
}

/// Whether a watch request is a streamed list.
fn is_watch_list(e: &kazan_apiserver::JournalEntry) -> bool {
    query_param(&e.query, "sendInitialEvents").as_deref() == Some("true")
}

/// The `resourceVersion` each watch of the `w` ConfigMaps asked for, in order (streamed lists
/// left out: `lists` counts them).
fn watch_versions(server: &ApiServer) -> Vec<String> {
    server
        .journal()
        .iter()
        .filter(|e| e.watch && e.path == CM_PATH && !is_watch_list(e))
        .map(|e| query_param(&e.query, "resourceVersion").unwrap_or_default())
        .collect()
}

/// Takes the informers' watches away (their watches end and reconnecting is refused), lets
/// `changes` happen meanwhile, then compacts the history and lets them back: they come back to a
/// 410 and relist.
async fn while_away(server: &ApiServer, changes: impl FnOnce(&ApiServer) -> TestResult) -> TestResult {
    server.faults().add_rule(
        // Every watch is refused until the history is compacted (not just the first: a watcher
        // that came back before the compaction would see the changes one by one, no relist).
        FaultRule::new(FaultAction::status(503, "ServiceUnavailable", "away for a while"))
            .watch(true)
            .times(u32::MAX),
    );
    server.faults().end_watches(None);
    // A refused watch proves the previous one has ended: nothing after this reaches it.
    until("a watch refused", || {
        server.journal().iter().any(|e| e.watch && e.status == 503)
    })
    .await?;
    changes(server)?;
    server.faults().compact_history();
    server.faults().clear_rules();
    Ok(())
}

/// What a subscriber holds, built from its events alone, with every event checked against it:
/// no Added for a key it holds (no duplicate), no Modified or unseen Deleted whose previous state
/// is not the one it holds (no gap).
#[derive(Default, Debug)]
struct View {
    objects: BTreeMap<String, String>,
    events: usize,
    synced: usize,
    unseen_deletes: Vec<String>,
}

impl View {
    fn apply(&mut self, ev: &Event<ConfigMap>) -> TestResult {
        self.events += 1;
        match &ev.kind {
            EventKind::Added(o) => {
                if let Some(rv) = self.objects.insert(name_of(o.as_ref()), rv_of(o.as_ref())) {
                    return Err(format!("Added {} again (held at {rv})", name_of(o.as_ref())).into());
                }
            }
            EventKind::Modified { old, new } => {
                let held = self.objects.get(&name_of(new.as_ref())).cloned();
                if held != Some(rv_of(old.as_ref())) {
                    return Err(format!(
                        "Modified {} from {} but the subscriber held {held:?}",
                        name_of(new.as_ref()),
                        rv_of(old.as_ref())
                    )
                    .into());
                }
                self.objects.insert(name_of(new.as_ref()), rv_of(new.as_ref()));
            }
            EventKind::Deleted {
                last,
                final_state_unknown,
            } => {
                let held = self.objects.remove(&name_of(last.as_ref()));
                if held.is_none() {
                    return Err(format!("Deleted {} it never held", name_of(last.as_ref())).into());
                }
                if *final_state_unknown {
                    if held != Some(rv_of(last.as_ref())) {
                        return Err(format!(
                            "an unseen delete of {} carries {} but the subscriber held {held:?}",
                            name_of(last.as_ref()),
                            rv_of(last.as_ref())
                        )
                        .into());
                    }
                    self.unseen_deletes.push(name_of(last.as_ref()));
                }
            }
            EventKind::Synced => self.synced += 1,
        }
        Ok(())
    }

    /// Receives (bounded) until the view equals the server's state.
    async fn catch_up(&mut self, sub: &mut Subscription<ConfigMap>, server: &ApiServer) -> TestResult {
        let expected = server_state(server)?;
        while self.objects != expected {
            let ev = next(sub)
                .await
                .map_err(|e| format!("{e}; the view {:?}, the server {expected:?}", self.objects))?;
            self.apply(&ev)?;
        }
        Ok(())
    }
}

/// The first list comes in pages; `wait_synced` must not resolve on the first one. A subscriber
/// with room for one event holds the informer back, so when it sees the 6th object the 7th, and
/// the end of the list, cannot have been applied yet.
#[tokio::test]
async fn wait_synced_resolves_only_after_every_page_of_the_first_list() -> TestResult {
    let server = server().await?;
    for i in 0..7 {
        server.create(cm("w", &format!("item-{i}"), "1"))?;
    }
    let list_rv = server.resource_version().to_string();
    let informer = start(
        &server,
        options()
            .watcher(support::fast_watcher_options().page_size(3))
            .initial_list(InitialList::Paginated),
    )?;
    let store = informer.store();
    let mut slow = informer.subscribe_with(
        SubscribeOptions::new()
            .capacity(1)
            .overflow(Overflow::Backpressure),
    );
    for i in 0..6 {
        let ev = next(&mut slow).await?;
        assert_eq!(summary(&ev), ev_added(&format!("item-{i}")));
        assert!(!store.is_synced(), "synced before item-{}", i + 1);
    }
    let waiter = tokio::spawn({
        let store = store.clone();
        async move { store.wait_synced().await.map(|()| store.len()) }
    });
    assert_eq!(summary(&next(&mut slow).await?), ev_added("item-6"));
    assert_eq!(summary(&next(&mut slow).await?), synced());
    let len = tokio::time::timeout(WAIT, waiter).await???;
    assert_eq!(len, 7);
    assert!(store.is_synced());
    assert_eq!(store.resource_version().as_deref(), Some(list_rv.as_str()));
    // Three pages of at most three, then one watch from the list's version.
    let pages: Vec<_> = server
        .journal()
        .into_iter()
        .filter(|e| !e.watch && e.path == CM_PATH)
        .collect();
    assert_eq!(pages.len(), 3);
    assert!(
        pages
            .iter()
            .all(|p| query_param(&p.query, "limit").as_deref() == Some("3"))
    );
    until("the watch", || !watch_versions(&server).is_empty()).await?;
    assert_eq!(watch_versions(&server), vec![list_rv]);
    informer.stop().await.map_err(|e| e.to_string())?;
    Ok(())
}

fn ev_added(name: &str) -> (EventType, String, String, bool) {
    ev(EventType::Added, name, "1")
}

/// A controller comparing before and after needs the previous object: it comes from the store.
#[tokio::test]
async fn modified_carries_the_previous_object_and_deleted_the_last() -> TestResult {
    let server = server().await?;
    let a1 = server.create(cm("w", "a", "1"))?;
    let informer = start(&server, options())?;
    let mut sub = informer.subscribe();
    assert_eq!(summary(&next(&mut sub).await?), ev_added("a"));
    assert_eq!(summary(&next(&mut sub).await?), synced());
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    let a2 = set_value(&server, "a", "2")?;
    let modified = next(&mut sub).await?;
    match &modified.kind {
        EventKind::Modified { old, new } => {
            assert_eq!(old.resource_version(), a1["metadata"]["resourceVersion"].as_str());
            assert_eq!(
                old.data.as_ref().and_then(|d| d.get("v")).map(String::as_str),
                Some("1")
            );
            assert_eq!(new.resource_version(), a2["metadata"]["resourceVersion"].as_str());
            assert_eq!(
                new.data.as_ref().and_then(|d| d.get("v")).map(String::as_str),
                Some("2")
            );
            // The same object the store holds, not a copy.
            let held = informer.store().get("w", "a").ok_or("a is not in the store")?;
            assert!(Arc::ptr_eq(new, &held));
        }
        other => return Err(format!("expected Modified, got {other:?}").into()),
    }
    assert_eq!(modified.from, informer.id());
    server.delete("v1", "ConfigMap", Some("w"), "a")?;
    assert_eq!(summary(&next(&mut sub).await?), ev(EventType::Deleted, "a", "2"));
    assert!(informer.store().get("w", "a").is_none());
    assert!(informer.store().is_empty());
    Ok(())
}

/// After a 410 the relist is applied in place and reports exactly what happened while away: the
/// changed (Modified, with the old state), the created (Added), the deleted (Deleted with
/// `final_state_unknown` and the last state known); the unchanged ones are not reported.
#[tokio::test]
async fn a_relist_after_compaction_reports_exactly_what_was_deleted_changed_or_created() -> TestResult {
    let server = server().await?;
    for name in ["a", "b", "c", "d"] {
        server.create(cm("w", name, "1"))?;
    }
    let informer = start(&server, options())?;
    let mut sub = informer.subscribe();
    for name in ["a", "b", "c", "d"] {
        assert_eq!(summary(&next(&mut sub).await?), ev_added(name));
    }
    assert_eq!(summary(&next(&mut sub).await?), synced());
    let lists_before = lists(&server);
    while_away(&server, |server| {
        server.delete("v1", "ConfigMap", Some("w"), "b")?;
        set_value(server, "c", "2")?;
        server.create(cm("w", "e", "1"))?;
        server.create(cm("other", "elsewhere", "1"))?;
        Ok(())
    })
    .await?;
    let mut got = Vec::new();
    for _ in 0..4 {
        let event = next(&mut sub).await?;
        if let EventKind::Modified { old, .. } = &event.kind {
            assert_eq!(
                old.data.as_ref().and_then(|d| d.get("v")).map(String::as_str),
                Some("1")
            );
        }
        got.push(summary(&event));
    }
    assert_eq!(
        got,
        vec![
            ev(EventType::Modified, "c", "2"),
            ev_added("e"),
            unseen_delete("b", "1"),
            synced()
        ]
    );
    assert_eq!(lists(&server), lists_before + 1);
    converged(&informer.store(), &server).await?;
    // Nothing else comes: a new object is the next event.
    server.create(cm("w", "f", "1"))?;
    assert_eq!(summary(&next(&mut sub).await?), ev_added("f"));
    Ok(())
}

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// A ConfigMap that counts how many of its kind are alive, and the most ever alive at once.
#[derive(serde::Serialize)]
#[serde(transparent)]
struct Counted(ConfigMap);

impl Counted {
    fn new(cm: ConfigMap) -> Self {
        let live = LIVE.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK.fetch_max(live, Ordering::SeqCst);
        Counted(cm)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<'de> serde::Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ConfigMap::deserialize(d).map(Counted::new)
    }
}

impl k8s_openapi::Resource for Counted {
    const API_VERSION: &'static str = ConfigMap::API_VERSION;
    const GROUP: &'static str = ConfigMap::GROUP;
    const KIND: &'static str = ConfigMap::KIND;
    const VERSION: &'static str = ConfigMap::VERSION;
    const URL_PATH_SEGMENT: &'static str = ConfigMap::URL_PATH_SEGMENT;
    type Scope = <ConfigMap as k8s_openapi::Resource>::Scope;
}

impl k8s_openapi::Metadata for Counted {
    type Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    fn metadata(&self) -> &Self::Ty {
        &self.0.metadata
    }
    fn metadata_mut(&mut self) -> &mut Self::Ty {
        &mut self.0.metadata
    }
}

/// kube-rs #1209: a relist that builds a second map holds two copies of the store at its peak. Here
/// every object changed while away, so the relist replaces every one of them; at no point are
/// there many more objects alive than the store holds.
#[tokio::test]
async fn a_relist_never_holds_two_copies_of_the_store() -> TestResult {
    const N: usize = 300;
    let server = server().await?;
    for i in 0..N {
        server.create(cm("w", &format!("item-{i:03}"), "1"))?;
    }
    let informer = Informer::start(
        client(&server)?,
        Request::list::<Counted>().namespace("w"),
        options().watcher(support::fast_watcher_options().page_size(50)),
    )?;
    let store = informer.store();
    store.wait_synced().await.map_err(|e| e.to_string())?;
    assert_eq!(store.len(), N);
    while_away(&server, |server| {
        for i in 0..N {
            set_value(server, &format!("item-{i:03}"), "2")?;
        }
        Ok(())
    })
    .await?;
    PEAK.store(LIVE.load(Ordering::SeqCst), Ordering::SeqCst);
    converged(&store, &server).await?;
    let peak = PEAK.load(Ordering::SeqCst);
    assert!(
        peak <= N + 10,
        "{peak} objects were alive at once during the relist of {N}"
    );
    assert_eq!(LIVE.load(Ordering::SeqCst), N);
    Ok(())
}

/// The names under `value` in the index, and what a scan of the server finds.
fn index_matches_server(store: &Store<ConfigMap>, server: &ApiServer) -> Result<bool, TestError> {
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for o in server.list("v1", "ConfigMap", Some("w"))? {
        if let Some(team) = o["metadata"]["labels"]["team"].as_str() {
            expected
                .entry(team.to_string())
                .or_default()
                .push(o["metadata"]["name"].as_str().unwrap_or_default().to_string());
        }
    }
    let values = store.index_values("team").ok_or("no index")?;
    if values != expected.keys().cloned().collect::<Vec<_>>() {
        return Ok(false);
    }
    for (team, mut names) in expected {
        names.sort();
        let mut got: Vec<String> = store
            .by_index("team", &team)
            .ok_or("no index")?
            .iter()
            .map(|o| name_of(o.as_ref()))
            .collect();
        got.sort();
        if got != names {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn index_exact(store: &Store<ConfigMap>, server: &ApiServer) -> TestResult {
    converged(store, server).await?;
    if !index_matches_server(store, server)? {
        return Err(format!(
            "the index {:?} does not match the server",
            store.index_values("team")
        )
        .into());
    }
    Ok(())
}

/// An index by label stays exact (every value, every member) through creates, label changes,
/// deletes and a relist that carries all three.
#[tokio::test]
async fn indexes_stay_exact_through_adds_label_changes_deletes_and_relists() -> TestResult {
    let server = server().await?;
    server.create(labeled("w", "a", "red"))?;
    server.create(labeled("w", "b", "red"))?;
    server.create(cm("w", "plain", "1"))?;
    let informer = start(&server, options())?;
    informer.index_by("team", |cm: &ConfigMap| {
        cm.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("team").cloned())
            .into_iter()
            .collect()
    });
    let store = informer.store();
    store.wait_synced().await.map_err(|e| e.to_string())?;
    index_exact(&store, &server).await?;
    assert_eq!(store.by_index("team", "red").map(|v| v.len()), Some(2));
    assert!(store.by_index("no-such-index", "red").is_none());

    server.create(labeled("w", "c", "blue"))?;
    index_exact(&store, &server).await?;
    let relabel = json!({"metadata": {"labels": {"team": "blue"}}});
    server.merge_patch("v1", "ConfigMap", Some("w"), "a", relabel)?;
    index_exact(&store, &server).await?;
    assert_eq!(store.by_index("team", "red").map(|v| v.len()), Some(1));
    server.delete("v1", "ConfigMap", Some("w"), "b")?;
    index_exact(&store, &server).await?;
    assert_eq!(store.index_values("team"), Some(vec!["blue".to_string()]));

    while_away(&server, |server| {
        server.merge_patch(
            "v1",
            "ConfigMap",
            Some("w"),
            "c",
            json!({"metadata": {"labels": {"team": "green"}}}),
        )?;
        server.delete("v1", "ConfigMap", Some("w"), "a")?;
        server.create(labeled("w", "d", "red"))?;
        server.merge_patch(
            "v1",
            "ConfigMap",
            Some("w"),
            "plain",
            json!({"metadata": {"labels": {"team": "red"}}}),
        )?;
        Ok(())
    })
    .await?;
    index_exact(&store, &server).await?;
    assert_eq!(
        store.index_values("team"),
        Some(vec!["green".to_string(), "red".to_string()])
    );
    assert_eq!(store.list_namespace("w").len(), 3);
    assert!(store.list_namespace("other").is_empty());
    Ok(())
}

/// kube-rs #1630: a subscriber joining while writes go on must get the snapshot and then exactly
/// the changes after it. Repeated with the subscribe at different points of a burst of creates,
/// updates and deletes, on two threads so that the informer applies changes while the subscribe
/// runs; every subscriber's events are checked one by one against what it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_subscriber_gets_snapshot_then_tail_with_no_gap_and_no_duplicate() -> TestResult {
    let server = Arc::new(server().await?);
    let informer = start(&server, options())?;
    informer.store().wait_synced().await.map_err(|e| e.to_string())?;
    for round in 0..100u32 {
        let writer = tokio::spawn({
            let server = server.clone();
            async move {
                for i in 0..12u32 {
                    let name = format!("r{}-{}", round % 5, i % 4);
                    let result = match i % 3 {
                        0 => server.create(cm("w", &name, "1")).map(|_| ()),
                        1 => server
                            .merge_patch(
                                "v1",
                                "ConfigMap",
                                Some("w"),
                                &name,
                                json!({"data": {"v": format!("{i}")}}),
                            )
                            .map(|_| ()),
                        _ => server.delete("v1", "ConfigMap", Some("w"), &name).map(|_| ()),
                    };
                    // Conflicts and misses are part of the race; what matters is the end state.
                    let _ = result;
                    if i % 2 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }
        });
        for _ in 0..(round % 7) {
            tokio::task::yield_now().await;
        }
        let mut sub = informer.subscribe();
        writer.await?;
        let mut view = View::default();
        view.catch_up(&mut sub, &server)
            .await
            .map_err(|e| format!("round {round}: {e}"))?;
        assert_eq!(sub.resyncs(), 0);
        assert!(view.synced <= 1, "round {round}: {view:?}");
    }
    Ok(())
}

/// Backpressure: a subscriber that does not read holds the informer at its bound (the store stops
/// moving), and then receives every event, none coalesced.
#[tokio::test]
async fn a_slow_subscriber_with_backpressure_holds_the_informer_and_misses_nothing() -> TestResult {
    let server = server().await?;
    let informer = start(&server, options())?;
    let store = informer.store();
    store.wait_synced().await.map_err(|e| e.to_string())?;
    let mut slow = informer.subscribe_with(
        SubscribeOptions::new()
            .capacity(2)
            .overflow(Overflow::Backpressure),
    );
    assert_eq!(summary(&next(&mut slow).await?), synced());
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    for i in 0..30 {
        server.create(cm("w", &format!("n{i:02}"), "1"))?;
    }
    until("the informer to reach its bound", || slow.queued() == 2).await?;
    // Let the informer run if it could; it cannot: at most the bound and the one in hand.
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(slow.queued(), 2);
    assert!(store.len() <= 3, "the store moved on to {} objects", store.len());
    for i in 0..30 {
        assert_eq!(summary(&next(&mut slow).await?), ev_added(&format!("n{i:02}")));
        assert!(slow.queued() <= 2);
    }
    assert_eq!(slow.resyncs(), 0);
    converged(&store, &server).await?;
    Ok(())
}

/// Resync (the default policy): a subscriber that does not read is cut off at its bound, the
/// others and the store go on, and once it reads it gets its queue and then the net changes it
/// missed: the objects it never saw and that were deleted meanwhile are not reported at all, and
/// an object it saw that was deleted meanwhile is an unseen delete.
#[tokio::test]
async fn a_slow_subscriber_with_resync_is_cut_off_and_resynchronised_from_the_store() -> TestResult {
    let server = server().await?;
    server.create(cm("w", "seen", "1"))?;
    let informer = start(&server, options())?;
    let store = informer.store();
    store.wait_synced().await.map_err(|e| e.to_string())?;
    let mut slow = informer.subscribe_with(SubscribeOptions::new().capacity(3));
    let mut fast = informer.subscribe();
    let mut fast_view = View::default();
    fast_view.catch_up(&mut fast, &server).await?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    // The slow one's queue: Added(seen), Synced, and room for one more.
    server.create(cm("w", "n0", "1"))?;
    for i in 1..40 {
        server.create(cm("w", &format!("n{i:02}"), "1"))?;
    }
    for i in 1..20 {
        server.delete("v1", "ConfigMap", Some("w"), &format!("n{i:02}"))?;
    }
    server.delete("v1", "ConfigMap", Some("w"), "seen")?;
    set_value(&server, "n0", "2")?;
    // The fast subscriber and the store see everything while the slow one sleeps.
    fast_view.catch_up(&mut fast, &server).await?;
    converged(&store, &server).await?;
    assert_eq!(fast_view.events, 1 + 1 + 40 + 20 + 1);
    assert_eq!(slow.queued(), 3);
    let mut slow_view = View::default();
    slow_view.catch_up(&mut slow, &server).await?;
    assert_eq!(slow.resyncs(), 1);
    assert_eq!(slow_view.unseen_deletes, vec!["seen".to_string()]);
    // Added(seen), Synced, Added(n0), then one event per object that differs: n0 modified, seen
    // deleted, n20..n39 added. n01..n19 came and went unseen.
    assert_eq!(slow_view.events, 3 + 1 + 1 + 20);
    Ok(())
}

fn checkpoint_options(path: &Path) -> InformerOptions {
    options().checkpoint(path, Duration::from_secs(3600))
}

/// Starts an informer with a checkpoint, lets it sync, and stops it: the checkpoint is written.
async fn write_checkpoint(server: &ApiServer, path: &Path) -> Result<String, TestError> {
    let informer = start(server, checkpoint_options(path))?;
    informer.store().wait_synced().await.map_err(|e| e.to_string())?;
    converged(&informer.store(), server).await?;
    informer.stop().await.map_err(|e| e.to_string())?;
    // The version the checkpoint holds: its header's.
    let text = std::fs::read_to_string(path)?;
    let header: Value = serde_json::from_str(text.lines().next().ok_or("an empty checkpoint")?)?;
    Ok(header["resourceVersion"]
        .as_str()
        .ok_or("no version")?
        .to_string())
}

/// A restart from a checkpoint watches from its version: the journal shows no list, only a watch
/// from the saved version; the subscriber gets the checkpoint's objects, then what changed since.
#[tokio::test]
async fn a_restart_from_a_checkpoint_watches_from_its_version_with_no_list() -> TestResult {
    let server = server().await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("configmaps.checkpoint");
    server.create(cm("w", "a", "1"))?;
    server.create(cm("w", "b", "1"))?;
    let saved = write_checkpoint(&server, &path).await?;
    set_value(&server, "a", "2")?;
    server.create(cm("w", "c", "1"))?;
    server.clear_journal();

    let informer = start(&server, checkpoint_options(&path))?;
    assert!(matches!(
        informer.checkpoint_status(),
        CheckpointStatus::Loaded { ref resource_version, objects: 2 } if *resource_version == saved
    ));
    let store = informer.store();
    assert!(store.is_synced());
    assert_eq!(store.resource_version().as_deref(), Some(saved.as_str()));
    let mut sub = informer.subscribe();
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(summary(&next(&mut sub).await?));
    }
    assert_eq!(
        got,
        vec![
            ev_added("a"),
            ev_added("b"),
            synced(),
            ev(EventType::Modified, "a", "2"),
            ev_added("c")
        ]
    );
    converged(&store, &server).await?;
    assert_eq!(lists(&server), 0, "{:?}", server.journal());
    assert_eq!(watch_versions(&server), vec![saved]);
    informer.stop().await.map_err(|e| e.to_string())?;
    // No temporary file is left beside the checkpoint.
    let files: Vec<_> = std::fs::read_dir(dir.path())?.collect::<Result<_, _>>()?;
    assert_eq!(files.len(), 1);
    Ok(())
}

/// A checkpoint older than the server's history: the watch from its version is answered 410, the
/// informer relists and reports what vanished meanwhile as unseen deletes, with the checkpoint's
/// state as their last.
#[tokio::test]
async fn a_checkpoint_older_than_the_history_relists_and_reports_what_vanished() -> TestResult {
    let server = server().await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("configmaps.checkpoint");
    for name in ["a", "b", "c"] {
        server.create(cm("w", name, "1"))?;
    }
    let saved = write_checkpoint(&server, &path).await?;
    server.delete("v1", "ConfigMap", Some("w"), "b")?;
    set_value(&server, "c", "2")?;
    server.create(cm("w", "d", "1"))?;
    server.faults().compact_history();
    server.clear_journal();

    let informer = start(&server, checkpoint_options(&path))?;
    let mut sub = informer.subscribe();
    let mut got = Vec::new();
    for _ in 0..8 {
        got.push(summary(&next(&mut sub).await?));
    }
    assert_eq!(
        got,
        vec![
            ev_added("a"),
            ev_added("b"),
            ev_added("c"),
            synced(),
            ev(EventType::Modified, "c", "2"),
            ev_added("d"),
            unseen_delete("b", "1"),
            synced()
        ]
    );
    converged(&informer.store(), &server).await?;
    let versions = watch_versions(&server);
    assert_eq!(versions.first(), Some(&saved));
    assert_eq!(lists(&server), 1);
    Ok(())
}

/// Whether a checkpoint error is the one a case expects.
type IsExpected = fn(&CheckpointError) -> bool;

/// Each bad checkpoint is refused with its own error, logged, and the informer lists afresh.
#[tokio::test]
async fn corrupt_truncated_and_foreign_checkpoints_each_give_their_typed_error_and_a_fresh_list() -> TestResult
{
    let server = server().await?;
    let dir = tempfile::tempdir()?;
    let good = dir.path().join("good.checkpoint");
    for name in ["a", "b", "c"] {
        server.create(cm("w", name, "1"))?;
    }
    write_checkpoint(&server, &good).await?;
    let text = std::fs::read_to_string(&good)?;

    // Another resource (the same kind in another namespace), and another server.
    let other_ns = dir.path().join("other-namespace.checkpoint");
    {
        let informer = Informer::start(
            client(&server)?,
            Request::list::<ConfigMap>().namespace("other"),
            checkpoint_options(&other_ns),
        )?;
        informer.store().wait_synced().await.map_err(|e| e.to_string())?;
        informer.stop().await.map_err(|e| e.to_string())?;
    }
    let other_server = self::server().await?;
    let other_srv = dir.path().join("other-server.checkpoint");
    write_checkpoint(&other_server, &other_srv).await?;

    let cases: Vec<(&str, Vec<u8>, IsExpected)> = vec![
        ("truncated", text.as_bytes()[..text.len() / 2].to_vec(), |e| {
            matches!(e, CheckpointError::Truncated { .. })
        }),
        (
            "no trailer",
            {
                let mut lines: Vec<&str> = text.lines().collect();
                lines.pop();
                (lines.join("\n") + "\n").into_bytes()
            },
            |e| matches!(e, CheckpointError::Truncated { .. }),
        ),
        // Still valid JSON, another value: only the checksum tells.
        (
            "altered",
            text.replacen("\"v\":\"1\"", "\"v\":\"9\"", 1).into_bytes(),
            |e| matches!(e, CheckpointError::Corrupt { .. }),
        ),
        (
            "garbage line",
            {
                let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
                lines[2] = "{not json".into();
                (lines.join("\n") + "\n").into_bytes()
            },
            |e| matches!(e, CheckpointError::Corrupt { line: 3, .. }),
        ),
        ("not a checkpoint", b"hello\n".to_vec(), |e| {
            matches!(e, CheckpointError::NotACheckpoint { .. })
        }),
        (
            "future version",
            text.replacen(
                "\"kazanInformerCheckpoint\":1",
                "\"kazanInformerCheckpoint\":7",
                1,
            )
            .into_bytes(),
            |e| matches!(e, CheckpointError::UnsupportedVersion { found: 7, .. }),
        ),
        ("other resource", std::fs::read(&other_ns)?, |e| {
            matches!(e, CheckpointError::Foreign { what: "resource", .. })
        }),
        ("other server", std::fs::read(&other_srv)?, |e| {
            matches!(e, CheckpointError::Foreign { what: "server", .. })
        }),
    ];
    for (what, bytes, expected) in cases {
        let path = dir.path().join(format!("{what}.checkpoint"));
        std::fs::write(&path, &bytes)?;
        let lists_before = lists(&server);
        let informer = start(&server, checkpoint_options(&path))?;
        match informer.checkpoint_status() {
            CheckpointStatus::Rejected(error) => {
                assert!(expected(&error), "{what}: {error:?}");
                // The error names the file.
                assert!(
                    error.to_string().contains(&path.display().to_string()),
                    "{what}: {error}"
                );
            }
            other => return Err(format!("{what}: {other:?}").into()),
        }
        let store = informer.store();
        store.wait_synced().await.map_err(|e| e.to_string())?;
        converged(&store, &server).await?;
        assert_eq!(lists(&server), lists_before + 1, "{what}: a fresh list");
        // Stopping writes a good checkpoint over the bad one.
        informer.stop().await.map_err(|e| e.to_string())?;
        let again = start(&server, checkpoint_options(&path))?;
        assert!(
            matches!(
                again.checkpoint_status(),
                CheckpointStatus::Loaded { objects: 3, .. }
            ),
            "{what}: {:?}",
            again.checkpoint_status()
        );
        again.stop().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The factory hands one informer (one watch) per kind, path and selectors to every consumer, and
/// stops a watch when its last subscriber leaves.
#[tokio::test]
async fn shared_informers_run_one_watch_per_key_and_stop_when_the_last_subscriber_leaves() -> TestResult {
    let server = server().await?;
    server.create(labeled("w", "a", "red"))?;
    server.create(labeled("w", "b", "blue"))?;
    let informers = Informers::new(client(&server)?).options(options().linger(Duration::ZERO));
    let request = || Request::list::<ConfigMap>().namespace("w");
    let mut first = informers.subscribe(request(), SubscribeOptions::new())?;
    let mut second = informers.subscribe(request(), SubscribeOptions::new())?;
    let mut red = informers.subscribe(request().labels("team=red"), SubscribeOptions::new())?;
    assert_eq!(informers.running(), 2);
    let mut views = [View::default(), View::default()];
    views[0].catch_up(&mut first, &server).await?;
    views[1].catch_up(&mut second, &server).await?;
    assert!(server.wait_for_watches("configmaps", 2, WAIT).await);
    assert_eq!(summary(&next(&mut red).await?), ev_added("a"));
    assert_eq!(summary(&next(&mut red).await?), synced());
    assert_eq!(lists(&server), 2);
    assert!(Arc::ptr_eq(
        &first.store().get("w", "a").ok_or("a")?,
        &second.store().get("w", "a").ok_or("a")?
    ));
    server.create(cm("w", "c", "1"))?;
    views[0].catch_up(&mut first, &server).await?;
    views[1].catch_up(&mut second, &server).await?;
    drop(first);
    assert_eq!(informers.running(), 2);
    drop(second);
    until("the shared watch to stop", || informers.running() == 1).await?;
    drop(red);
    until("every watch to stop", || informers.running() == 0).await?;
    // Asked again, a new watch starts.
    let mut again = informers.subscribe(request(), SubscribeOptions::new())?;
    View::default().catch_up(&mut again, &server).await?;
    assert_eq!(lists(&server), 3);
    Ok(())
}

/// A process killed without stopping keeps what its last interval wrote: the checkpoint is written
/// while the informer runs, every interval when the store moved, and a new informer starts from
/// that file (here a copy taken while the first one still runs) without a list.
#[tokio::test]
async fn a_checkpoint_is_written_at_its_interval_while_the_informer_runs() -> TestResult {
    let server = server().await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("live.checkpoint");
    let informer = start(&server, options().checkpoint(&path, Duration::from_millis(20)))?;
    let store = informer.store();
    store.wait_synced().await.map_err(|e| e.to_string())?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.create(cm("w", "a", "1"))?;
    server.create(cm("w", "b", "1"))?;
    converged(&store, &server).await?;
    let wanted = store.resource_version().ok_or("no version")?;
    let header_version = |path: &Path| -> Option<String> {
        let text = std::fs::read_to_string(path).ok()?;
        let header: Value = serde_json::from_str(text.lines().next()?).ok()?;
        header["resourceVersion"].as_str().map(str::to_string)
    };
    until("a checkpoint at the store's version", || {
        header_version(&path).as_deref() == Some(wanted.as_str())
    })
    .await?;
    // As if the process had been killed now: a copy of what is on disk, under another name.
    let copy = dir.path().join("copy.checkpoint");
    std::fs::copy(&path, &copy)?;
    server.create(cm("w", "c", "1"))?;
    server.clear_journal();
    let restarted = start(&server, checkpoint_options(&copy))?;
    assert!(matches!(
        restarted.checkpoint_status(),
        CheckpointStatus::Loaded { objects: 2, .. }
    ));
    converged(&restarted.store(), &server).await?;
    assert_eq!(lists(&server), 0);
    assert_eq!(watch_versions(&server), vec![wanted]);
    Ok(())
}

/// A watch that fails for good (403 on the list, after a 403 to the streamed list it falls back
/// from) ends the informer: `wait_synced` says so, the
/// subscriptions end (even one made after the end), and `stop` reports the failure.
#[tokio::test]
async fn a_failed_watch_ends_the_informer_its_wait_synced_and_its_subscriptions() -> TestResult {
    let server = server().await?;
    server.faults().add_rule(
        FaultRule::new(FaultAction::status(403, "Forbidden", "configmaps is forbidden"))
            .times(2)
            .path_prefix(CM_PATH),
    );
    let informer = start(&server, options())?;
    let mut sub = informer.subscribe();
    let synced = tokio::time::timeout(WAIT, informer.store().wait_synced()).await?;
    let error = synced.err().ok_or("synced despite the 403")?;
    assert!(
        matches!(*error, kazan::informer::InformerError::Watch(_)),
        "{error:?}"
    );
    assert!(tokio::time::timeout(WAIT, sub.recv()).await?.is_none());
    assert!(informer.stop().await.is_err());
    assert!(!informer.is_running());
    // Subscribing to an ended informer: the (empty) snapshot, then the end, not a wait forever.
    let mut late = informer.subscribe();
    assert!(tokio::time::timeout(WAIT, late.recv()).await?.is_none());
    Ok(())
}

/// With a linger, a consumer that comes back before it elapses finds the shared informer warm:
/// the same store, no new list.
#[tokio::test]
async fn a_shared_informer_lingers_for_a_consumer_that_comes_back() -> TestResult {
    let server = server().await?;
    server.create(cm("w", "a", "1"))?;
    let informers = Informers::new(client(&server)?).options(options().linger(Duration::from_secs(3600)));
    let request = || Request::list::<ConfigMap>().namespace("w");
    let first = informers.informer(request())?;
    first.store().wait_synced().await.map_err(|e| e.to_string())?;
    let held = first.store().get("w", "a").ok_or("a")?;
    drop(first);
    assert_eq!(informers.running(), 1);
    let mut back = informers.subscribe(request(), SubscribeOptions::new())?;
    assert_eq!(summary(&next(&mut back).await?), ev_added("a"));
    assert_eq!(summary(&next(&mut back).await?), synced());
    assert!(Arc::ptr_eq(&held, &back.store().get("w", "a").ok_or("a")?));
    assert_eq!(lists(&server), 1);
    Ok(())
}

/// Any kind: a custom resource as `DynamicObject`, and `RawObject` (kept undecoded, decoded on
/// demand), with the same store and events.
#[tokio::test]
async fn informers_cache_dynamic_and_raw_objects() -> TestResult {
    use kazan::{ApiResource, DynamicObject, RawObject};
    let server = server().await?;
    server.register(kazan_apiserver::ResourceDef::new(
        "example.com",
        "v1",
        "Widget",
        "widgets",
        true,
    ));
    server.create(json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "w"}, "spec": {"size": 3}}))?;
    server.create(cm("w", "a", "1"))?;
    let widgets = Informer::start(
        client(&server)?,
        Request::list_of::<DynamicObject>(ApiResource::new("example.com", "v1", "Widget", "widgets", true))
            .namespace("w"),
        options(),
    )?;
    let raw = Informer::start(
        client(&server)?,
        Request::list_of::<RawObject>(ApiResource::of::<ConfigMap>()).namespace("w"),
        options(),
    )?;
    widgets.store().wait_synced().await.map_err(|e| e.to_string())?;
    raw.store().wait_synced().await.map_err(|e| e.to_string())?;
    let w1 = widgets.store().get("w", "w1").ok_or("w1")?;
    assert_eq!(w1.data["spec"]["size"], 3);
    let a = raw.store().get("w", "a").ok_or("a")?;
    let typed: ConfigMap = a.decode()?;
    assert_eq!(typed.data.and_then(|d| d.get("v").cloned()).as_deref(), Some("1"));
    let mut sub = raw.subscribe();
    assert_eq!(next(&mut sub).await?.event_type(), EventType::Added);
    assert_eq!(next(&mut sub).await?.event_type(), EventType::Synced);
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    set_value(&server, "a", "2")?;
    let ev = next(&mut sub).await?;
    let EventKind::Modified { old, new } = &ev.kind else {
        return Err(format!("expected Modified, got {:?}", ev.event_type()).into());
    };
    assert_eq!(
        old.decode::<ConfigMap>()?
            .data
            .and_then(|d| d.get("v").cloned())
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        new.decode::<ConfigMap>()?
            .data
            .and_then(|d| d.get("v").cloned())
            .as_deref(),
        Some("2")
    );
    Ok(())
}

/// `atomic_relists`: a reader polling the store on another thread during a relist of ten pages,
/// in which every object changed, sees the old state or the new one, never a mix; subscribers
/// get the same changes as in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_atomic_relist_is_never_seen_half_applied() -> TestResult {
    const N: usize = 200;
    let server = server().await?;
    for i in 0..N {
        server.create(cm("w", &format!("item-{i:03}"), "1"))?;
    }
    let informer = start(
        &server,
        options()
            .watcher(support::fast_watcher_options().page_size(20))
            .atomic_relists(true),
    )?;
    let store = informer.store();
    store.wait_synced().await.map_err(|e| e.to_string())?;
    let mut sub = informer.subscribe();
    let mut view = View::default();
    view.catch_up(&mut sub, &server).await?;
    assert_eq!(summary(&next(&mut sub).await?), synced());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = std::thread::spawn({
        let (store, done) = (store.clone(), done.clone());
        move || {
            let (mut mixed, mut looks) = (0usize, 0usize);
            while !done.load(Ordering::SeqCst) && looks < 10_000_000 {
                let values: std::collections::BTreeSet<String> = store
                    .list()
                    .iter()
                    .filter_map(|o| o.data.as_ref().and_then(|d| d.get("v").cloned()))
                    .collect();
                looks += 1;
                if values.len() > 1 {
                    mixed += 1;
                }
            }
            (mixed, looks)
        }
    });
    while_away(&server, |server| {
        for i in 0..N {
            set_value(server, &format!("item-{i:03}"), "2")?;
        }
        Ok(())
    })
    .await?;
    let before = view.events;
    view.catch_up(&mut sub, &server).await?;
    done.store(true, Ordering::SeqCst);
    let (mixed, looks) = reader.join().map_err(|_| "the reader panicked")?;
    assert_eq!(mixed, 0, "{mixed} of {looks} looks saw a half-applied relist");
    assert_eq!(view.events - before, N);
    assert_eq!(summary(&next(&mut sub).await?), synced());
    Ok(())
}
