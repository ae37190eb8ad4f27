//! The store's state: objects and history per resource under one lock, the settings, and the
//! accessors every other part of the store starts from.

use super::fanout::{Event, Watcher};
use super::gc::{Dependent, GcItem};
use crate::instruments::changelog::{Change, ChangeLog};
use crate::registry::{Registry, ResourceDef};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Identifies a resource's storage: `(group, plural)` (all versions of a kind share objects).
pub(crate) type ResourceKey = (String, String);

/// The storage key of a resource definition.
pub(crate) fn key_of(def: &ResourceDef) -> ResourceKey {
    (def.group.clone(), def.plural.clone())
}

/// Per-resource state.
pub(super) struct ResourceState {
    /// Objects by (namespace, name); sorted, so lists come out sorted by namespace/name.
    pub(super) objects: BTreeMap<(String, String), Arc<Value>>,
    /// Recent events, oldest first.
    pub(super) history: VecDeque<Arc<Event>>,
    /// The smallest resourceVersion a watch may start from ("oldest - 1").
    pub(super) floor: u64,
    /// Watches of every namespace (and of cluster-scoped resources).
    pub(super) watchers: Vec<Watcher>,
    /// Watches of one namespace, by namespace: a write only looks at those of its namespace.
    pub(super) namespace_watchers: HashMap<String, Vec<Watcher>>,
}

/// Store settings.
#[derive(Clone, Debug)]
pub(crate) struct StoreConfig {
    pub history_limit: usize,
    pub history_max_age: Duration,
    pub queue_capacity: usize,
    pub namespace_delete_delay: Duration,
    /// Keep a [`ChangeLog`] of every write.
    pub record_changes: bool,
    /// Run the garbage collector (dependents follow their owners' deletion).
    pub garbage_collector: bool,
}

pub(super) struct Inner {
    pub(super) rv: u64,
    pub(super) resources: HashMap<ResourceKey, ResourceState>,
    /// Resources removed (CRD deleted) and when: a re-created one starts with that floor.
    pub(super) removed_at: HashMap<ResourceKey, u64>,
    /// The garbage collector's index: owner uid → the objects whose `ownerReferences` name it.
    pub(super) dependents: HashMap<String, BTreeSet<Dependent>>,
    /// Owners the garbage collector has to look at (deleted, or marked `orphan`/`foregroundDeletion`).
    pub(super) gc_queue: Vec<GcItem>,
}

/// The store shared by the HTTP handlers and the direct API.
pub(crate) struct Store {
    pub(super) inner: Mutex<Inner>,
    /// The version up to which every event has been broadcast (read without the lock by watchers
    /// about to send a bookmark).
    pub(super) published_rv: AtomicU64,
    pub(super) rv_tx: tokio::sync::watch::Sender<u64>,
    pub(super) config: StoreConfig,
    pub(super) registry: Registry,
    pub(super) shutdown: tokio_util::sync::CancellationToken,
    /// Every committed write, when `config.record_changes` is on.
    pub(super) changelog: ChangeLog,
    /// Wakes the garbage collector when `gc_queue` got work.
    pub(super) gc_wake: tokio::sync::Notify,
}

impl Store {
    pub(crate) fn new(
        registry: Registry,
        config: StoreConfig,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Arc<Self> {
        let (rv_tx, _) = tokio::sync::watch::channel(0);
        Arc::new(Store {
            inner: Mutex::new(Inner {
                rv: 0,
                resources: HashMap::new(),
                removed_at: HashMap::new(),
                dependents: HashMap::new(),
                gc_queue: Vec::new(),
            }),
            published_rv: AtomicU64::new(0),
            rv_tx,
            changelog: ChangeLog::new(config.record_changes),
            gc_wake: tokio::sync::Notify::new(),
            config,
            registry,
            shutdown,
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every write committed so far (empty unless the change log is on).
    pub(crate) fn changes(&self) -> Vec<Change> {
        self.changelog.changes()
    }

    pub(super) fn state<'a>(inner: &'a mut Inner, key: &ResourceKey) -> &'a mut ResourceState {
        let floor = inner.removed_at.get(key).copied().unwrap_or(0);
        inner
            .resources
            .entry(key.clone())
            .or_insert_with(|| ResourceState {
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                floor,
                watchers: Vec::new(),
                namespace_watchers: HashMap::new(),
            })
    }
}
