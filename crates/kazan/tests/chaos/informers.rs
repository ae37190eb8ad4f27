//! Informer consumers in the chaos run: one shared informer (ConfigMaps of every namespace, from
//! an `Informers` factory) with an early subscriber, a late one (joining a third into the churn),
//! a slow one cut off and re-synchronised (small queue, `Overflow::Resync`) and a slow one that
//! holds the watch back (`Overflow::Backpressure`); and a Pod informer of one namespace that stops
//! and restarts from its checkpoint every couple of seconds while the churn lasts.
//!
//! Every subscriber checks each event against what it holds (no Added for a key it holds, a
//! Modified's old state and an unseen delete's last state are the ones it holds). At the end every
//! subscriber's view and every store equal the server's objects, and every synthesized delete
//! (`final_state_unknown`) matches a deletion in the server's change log after the state the
//! consumer last saw.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kazan::{
    Client, Object, Request,
    informer::{
        CheckpointStatus, Event, EventKind, Informer, InformerOptions, Informers, Overflow, Store,
        SubscribeOptions, Subscription,
    },
    watcher::WatcherOptions,
};
use kazan_apiserver::{Change, ChangeType};
use serde::{Serialize, de::DeserializeOwned};
use tokio::{task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{
    churn::{Kind, MARK},
    consumer::{Cached, Key},
};

/// What a subscriber holds, built from its events alone.
#[derive(Default, Debug)]
struct View {
    objects: BTreeMap<Key, Cached>,
    events: u64,
    /// Synthesized deletes: the key and the version last held.
    unseen_deletes: Vec<(Key, u64)>,
    resyncs: u64,
    restarts: u64,
    loaded: u64,
}

fn key_of<K: Object>(o: &K) -> Key {
    (
        o.namespace().unwrap_or_default().to_string(),
        o.name().to_string(),
    )
}

fn cached<K: Object>(o: &K) -> Result<Cached, String> {
    let rv = o.resource_version().unwrap_or_default();
    Ok(Cached {
        rv: rv.parse().map_err(|e| format!("resourceVersion {rv:?}: {e}"))?,
        mark: o
            .meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(MARK).cloned())
            .unwrap_or_default(),
    })
}

impl View {
    fn apply<K: Object>(&mut self, ev: &Event<K>) -> Result<(), String> {
        match &ev.kind {
            EventKind::Added(o) => {
                self.events += 1;
                if let Some(held) = self.objects.insert(key_of(o.as_ref()), cached(o.as_ref())?) {
                    return Err(format!(
                        "Added {:?} again (held at {})",
                        key_of(o.as_ref()),
                        held.rv
                    ));
                }
            }
            EventKind::Modified { old, new } => {
                self.events += 1;
                let key = key_of(new.as_ref());
                let held = self.objects.get(&key).map(|c| c.rv);
                let old_rv = cached(old.as_ref())?.rv;
                if held != Some(old_rv) {
                    return Err(format!("Modified {key:?} from {old_rv} but held {held:?}"));
                }
                self.objects.insert(key, cached(new.as_ref())?);
            }
            EventKind::Deleted {
                last,
                final_state_unknown,
            } => {
                self.events += 1;
                let key = key_of(last.as_ref());
                let held = self.objects.remove(&key).map(|c| c.rv);
                if held.is_none() {
                    return Err(format!("Deleted {key:?}, never held"));
                }
                if *final_state_unknown {
                    let last_rv = cached(last.as_ref())?.rv;
                    if held != Some(last_rv) {
                        return Err(format!(
                            "an unseen delete of {key:?} at {last_rv} but held {held:?}"
                        ));
                    }
                    self.unseen_deletes.push((key, last_rv));
                }
            }
            EventKind::Synced => {}
        }
        Ok(())
    }
}

/// How to read a consumer's store, once it has one.
type StoreSlot = Arc<Mutex<Option<Box<dyn Fn() -> BTreeMap<Key, Cached> + Send>>>>;

/// One informer consumer: its name, what it watches, its view.
struct Watched {
    name: String,
    kind: Kind,
    namespace: Option<String>,
    view: Arc<Mutex<View>>,
    store: StoreSlot,
}

/// The informer consumers of a run.
pub struct InformerConsumers {
    watched: Vec<Watched>,
    tasks: Vec<(String, JoinHandle<Result<(), String>>)>,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn store_objects<K: Object + Send + Sync>(store: &Store<K>) -> BTreeMap<Key, Cached> {
    store
        .list()
        .iter()
        .filter_map(|o| Some((key_of(o.as_ref()), cached(o.as_ref()).ok()?)))
        .collect()
}

impl InformerConsumers {
    /// Starts them; the restarting one restarts until `churn_end`.
    pub fn spawn(
        client: &Client,
        options: &WatcherOptions,
        pod_namespace: String,
        churn: Duration,
        churn_end: Instant,
    ) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("a checkpoint directory: {e}"))?;
        let stop = CancellationToken::new();
        let informers = Informers::new(client.clone())
            .options(InformerOptions::new().watcher(options.clone().page_size(30)));
        let mut consumers = InformerConsumers {
            watched: Vec::new(),
            tasks: Vec::new(),
            stop: stop.clone(),
            _dir: dir,
        };
        let subscribers = [
            (
                "informer/shared/early",
                Duration::ZERO,
                SubscribeOptions::new(),
                None,
            ),
            ("informer/shared/late", churn / 3, SubscribeOptions::new(), None),
            (
                "informer/shared/slow-resync",
                Duration::ZERO,
                SubscribeOptions::new().capacity(16),
                Some((10, Duration::from_millis(40))),
            ),
            (
                "informer/shared/slow-backpressure",
                churn / 5,
                SubscribeOptions::new()
                    .capacity(64)
                    .overflow(Overflow::Backpressure),
                Some((20, Duration::from_millis(2))),
            ),
        ];
        for (name, delay, subscribe, slow) in subscribers {
            let watched = consumers.watch(name, Kind::ConfigMap, None);
            let (view, store) = (watched.view.clone(), watched.store.clone());
            let (informers, stop) = (informers.clone(), stop.clone());
            let task = tokio::spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
                let sub = informers
                    .subscribe(Request::list::<ConfigMap>(), subscribe)
                    .map_err(|e| e.to_string())?;
                let s = sub.store();
                *lock(&store) = Some(Box::new(move || store_objects(&s)));
                follow(sub, view, slow, stop).await
            });
            consumers.tasks.push((name.to_string(), task));
        }
        let name = "informer/checkpointed/pods";
        let checkpoint = consumers._dir.path().join("pods.checkpoint");
        let watched = consumers.watch(name, Kind::Pod, Some(pod_namespace.clone()));
        let task = tokio::spawn(restarting(
            client.clone(),
            Request::list::<Pod>().namespace(&pod_namespace),
            InformerOptions::new()
                .watcher(options.clone().page_size(7))
                .checkpoint(checkpoint, Duration::from_millis(300)),
            watched.view.clone(),
            watched.store.clone(),
            churn_end,
            stop,
        ));
        consumers.tasks.push((name.to_string(), task));
        Ok(consumers)
    }

    fn watch(&mut self, name: &str, kind: Kind, namespace: Option<String>) -> &Watched {
        self.watched.push(Watched {
            name: name.to_string(),
            kind,
            namespace,
            view: Arc::default(),
            store: Arc::default(),
        });
        let last = self.watched.len() - 1;
        &self.watched[last]
    }

    /// The consumers whose view or store differs from the server's objects now; an error as soon
    /// as one of them failed.
    pub fn behind(
        &self,
        objects: impl Fn(Kind, Option<&str>) -> Result<BTreeMap<Key, Cached>, String>,
    ) -> Result<Vec<String>, String> {
        for (name, task) in &self.tasks {
            if task.is_finished() {
                return Err(format!("{name}: ended early"));
            }
        }
        let mut behind = Vec::new();
        for w in &self.watched {
            let expected = objects(w.kind, w.namespace.as_deref())?;
            let view_ok = lock(&w.view).objects == expected;
            let store_ok = lock(&w.store).as_ref().is_some_and(|s| s() == expected);
            if !(view_ok && store_ok) {
                behind.push(format!("{} (view: {view_ok}, store: {store_ok})", w.name));
            }
        }
        Ok(behind)
    }

    /// Stops them, and checks every synthesized delete against the change log. Returns a line per
    /// consumer for the report.
    pub async fn finish(self, changes: &[Change]) -> Result<Vec<String>, String> {
        self.stop.cancel();
        let mut failures = Vec::new();
        for (name, task) in self.tasks {
            match tokio::time::timeout(Duration::from_secs(20), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => failures.push(format!("{name}: {e}")),
                Ok(Err(e)) => failures.push(format!("{name}: the task failed: {e}")),
                Err(_) => failures.push(format!("{name}: did not stop within 20 s")),
            }
        }
        if !failures.is_empty() {
            return Err(failures.join("\n"));
        }
        let mut lines = Vec::new();
        for w in &self.watched {
            let view = lock(&w.view);
            for ((namespace, name), last_rv) in &view.unseen_deletes {
                let deleted_later = changes.iter().any(|c| {
                    c.change_type == ChangeType::Deleted
                        && c.group.is_empty()
                        && c.plural == w.kind.plural()
                        && c.namespace == *namespace
                        && c.name == *name
                        && c.resource_version > *last_rv
                });
                if !deleted_later {
                    return Err(format!(
                        "{}: an unseen delete of {namespace}/{name} (last held at {last_rv}) matches no deletion in the server's change log",
                        w.name
                    ));
                }
            }
            if view.events == 0 {
                return Err(format!("{}: no event: the run proves nothing", w.name));
            }
            lines.push(format!(
                "{:<38} {:>8} events, {} unseen deletes, {} resyncs, {} restarts ({} from the checkpoint)",
                w.name,
                view.events,
                view.unseen_deletes.len(),
                view.resyncs,
                view.restarts,
                view.loaded
            ));
        }
        Ok(lines)
    }
}

/// Applies a subscription's events to `view` until stopped; a slow one pauses every `n` events.
async fn follow<K: Object + Send + Sync>(
    mut sub: Subscription<K>,
    view: Arc<Mutex<View>>,
    slow: Option<(u64, Duration)>,
    stop: CancellationToken,
) -> Result<(), String> {
    let mut received = 0u64;
    loop {
        let ev = tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(()),
            ev = sub.recv() => ev.ok_or("the subscription ended")?,
        };
        {
            let mut v = lock(&view);
            v.apply(&ev)?;
            v.resyncs = sub.resyncs();
        }
        received += 1;
        if let Some((every, pause)) = slow
            && received.is_multiple_of(every)
        {
            tokio::time::sleep(pause).await;
        }
    }
}

/// An informer with a checkpoint, stopped and started again from it every two seconds until
/// `churn_end`, then left running. After a restart, the snapshot is what it held when it stopped
/// whenever the last checkpoint was written at the store's last version.
async fn restarting<K>(
    client: Client,
    request: Request<kazan::ObjectList<K>>,
    options: InformerOptions,
    view: Arc<Mutex<View>>,
    store_slot: StoreSlot,
    churn_end: Instant,
    stop: CancellationToken,
) -> Result<(), String>
where
    K: Object + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let mut stopped_at: Option<(String, BTreeMap<Key, Cached>)> = None;
    loop {
        let informer =
            Informer::start(client.clone(), request.clone(), options.clone()).map_err(|e| e.to_string())?;
        let mut sub = informer.subscribe();
        let store = informer.store();
        *lock(&store_slot) = Some(Box::new(move || store_objects(&store)));
        let status = informer.checkpoint_status();
        // A fresh view from the snapshot (or the first list).
        let mut fresh = View::default();
        loop {
            let ev = tokio::select! {
                biased;
                _ = stop.cancelled() => return Ok(()),
                ev = sub.recv() => ev.ok_or("the subscription ended before Synced")?,
            };
            fresh.apply(&ev)?;
            if matches!(ev.kind, EventKind::Synced) {
                break;
            }
        }
        {
            let mut v = lock(&view);
            if let CheckpointStatus::Loaded { resource_version, .. } = &status {
                v.loaded += 1;
                if let Some((at, held)) = &stopped_at
                    && resource_version == at
                    && fresh.objects != *held
                {
                    return Err(format!(
                        "restarted from the checkpoint at {at}, the store differs from what was held at the stop"
                    ));
                }
            }
            v.objects = std::mem::take(&mut fresh.objects);
            v.events += fresh.events;
        }
        let restart_at = Instant::now() + Duration::from_millis(1500 + fastrand::u64(..1000));
        let restart = restart_at < churn_end;
        loop {
            let ev = tokio::select! {
                biased;
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep_until(restart_at), if restart => break,
                ev = sub.recv() => ev.ok_or("the subscription ended")?,
            };
            lock(&view).apply(&ev)?;
        }
        // Stop: the subscriber gets what is queued, then the end; the checkpoint is written.
        let ended = informer.stop().await;
        while let Some(ev) = sub.recv().await {
            lock(&view).apply(&ev)?;
        }
        ended.map_err(|e| format!("stopping: {e}"))?;
        // Stopped mid-relist, the checkpoint is the one before the relist: nothing to compare.
        stopped_at = match informer.store().is_relisting() {
            true => None,
            false => informer
                .store()
                .resource_version()
                .map(|at| (at, lock(&view).objects.clone())),
        };
        lock(&view).restarts += 1;
    }
}
