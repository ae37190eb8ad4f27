//! The object store: objects as JSON per resource, one global resourceVersion counter that every
//! write increments (like etcd's revision), a bounded per-resource event history (count and age),
//! and a bounded queue per watch that each write fills with the events the watch selects (as the
//! real watch cache dispatches). Writes never wait for watchers: a watch whose queue is full is
//! dropped (its stream then ends cleanly, as the real server ends a watcher that cannot keep up).
//!
//! The history serves three things: watches resuming from a version (every event strictly after
//! it), consistent list pages (the state at the snapshot version is rebuilt by undoing newer
//! events), and `resourceVersionMatch=Exact` lists. A version older than the history is "too old"
//! (410), with the real watch cache's rule: too old iff `N < oldest - 1` (`floor` below).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Map, Value, json};
use std::sync::atomic::AtomicBool;

use tokio::sync::mpsc;

use crate::changelog::{Change, ChangeLog, ChangeType};
use crate::error::StoreError;
use crate::patch::{self, PatchKind};
use crate::registry::{PrinterColumn, Registry, ResourceDef};
use crate::selector::Filter;
use crate::status::{FieldCause, Status};

/// Identifies a resource's storage: `(group, plural)` (all versions of a kind share objects).
pub(crate) type ResourceKey = (String, String);

/// The storage key of a resource definition.
pub(crate) fn key_of(def: &ResourceDef) -> ResourceKey {
    (def.group.clone(), def.plural.clone())
}

/// The type of a stored change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in the history and dispatched to watchers.
#[derive(Debug)]
pub(crate) struct Event {
    /// The resourceVersion of the write.
    pub rv: u64,
    /// ADDED, MODIFIED or DELETED.
    pub kind: EventType,
    /// The new state (for DELETED, the last state with the delete's resourceVersion).
    pub object: Arc<Value>,
    /// The state before the change (None for ADDED).
    pub prev: Option<Arc<Value>>,
    /// The serialized watch event line `{"type":..,"object":..}\n`, computed once for all watchers.
    pub line: Bytes,
    /// When the write happened (for age-based history eviction).
    pub at: Instant,
}

/// Serializes a watch event line.
pub(crate) fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    if serde_json::to_writer(&mut out, object).is_err() {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

/// Per-resource state.
struct ResourceState {
    /// Objects by (namespace, name); sorted, so lists come out sorted by namespace/name.
    objects: BTreeMap<(String, String), Arc<Value>>,
    /// Recent events, oldest first.
    history: VecDeque<Arc<Event>>,
    /// The smallest resourceVersion a watch may start from ("oldest - 1").
    floor: u64,
    /// Watches of every namespace (and of cluster-scoped resources).
    watchers: Vec<Watcher>,
    /// Watches of one namespace, by namespace: a write only looks at those of its namespace.
    namespace_watchers: HashMap<String, Vec<Watcher>>,
}

/// A subscribed watch, as the store sees it.
struct Watcher {
    filter: Arc<Filter>,
    tx: mpsc::Sender<Arc<Event>>,
    lagged: Arc<AtomicBool>,
}

impl Watcher {
    /// Queues the event if the watch selects the object now or selected it before (so it can
    /// send ADDED/DELETED on entering/leaving). False when the watch is gone or fell behind.
    fn offer(&self, event: &Arc<Event>) -> bool {
        let selected = self.filter.matches(&event.object)
            || event.prev.as_deref().is_some_and(|p| self.filter.matches(p));
        if !selected {
            return !self.tx.is_closed();
        }
        match self.tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Dropping the sender ends the queue; the flag tells the watch why.
                self.lagged.store(true, Ordering::Release);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// What a watch receives from the store: its queue, and whether it was dropped for falling behind.
pub(crate) struct Subscription {
    pub rx: mpsc::Receiver<Arc<Event>>,
    pub lagged: Arc<AtomicBool>,
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
}

struct Inner {
    rv: u64,
    resources: HashMap<ResourceKey, ResourceState>,
    /// Resources removed (CRD deleted) and when: a re-created one starts with that floor.
    removed_at: HashMap<ResourceKey, u64>,
}

/// Where a watch starts.
pub(crate) enum StartRequest {
    /// The current state as synthetic ADDED events, then changes.
    Initial,
    /// Every change strictly after this version, then live ones.
    From(u64),
}

/// What a watch gets when it subscribes.
pub(crate) enum WatchStart {
    /// Current objects (the snapshot) and the version it corresponds to.
    Initial {
        objects: Vec<Arc<Value>>,
        snapshot_rv: u64,
    },
    /// History events after `from`.
    Replay { events: Vec<Arc<Event>>, from: u64 },
}

/// A consistent list snapshot.
pub(crate) struct Snapshot {
    pub rv: u64,
    pub items: Vec<((String, String), Arc<Value>)>,
}

/// Why a snapshot or watch start is not available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VersionError {
    /// Older than the history; carries the floor (smallest servable version).
    TooOld { floor: u64 },
    /// Newer than the current version.
    TooLarge { current: u64 },
}

/// How a write is done.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WriteOptions {
    /// Only `status` changes (the `/status` subresource).
    pub status_only: bool,
    /// Answer without storing (`dryRun=All`).
    pub dry_run: bool,
}

/// What a DELETE did.
pub(crate) enum DeleteOutcome {
    /// Removed now; the last state (with the delete's version).
    Deleted(Value),
    /// Marked for deletion (finalizers, namespace termination); the object as it is now.
    Pending(Value),
}

/// The store shared by the HTTP handlers and the direct API.
pub(crate) struct Store {
    inner: Mutex<Inner>,
    /// The version up to which every event has been broadcast (read without the lock by watchers
    /// about to send a bookmark).
    published_rv: AtomicU64,
    rv_tx: tokio::sync::watch::Sender<u64>,
    config: StoreConfig,
    registry: Registry,
    shutdown: tokio_util::sync::CancellationToken,
    /// Every committed write, when `config.record_changes` is on.
    changelog: ChangeLog,
}

const CRD_GROUP: &str = "apiextensions.k8s.io";
const CRD_PLURAL: &str = "customresourcedefinitions";

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
            }),
            published_rv: AtomicU64::new(0),
            rv_tx,
            changelog: ChangeLog::new(config.record_changes),
            config,
            registry,
            shutdown,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every write committed so far (empty unless the change log is on).
    pub(crate) fn changes(&self) -> Vec<Change> {
        self.changelog.changes()
    }

    /// The current global resourceVersion.
    pub(crate) fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// The version up to which all events are in the broadcast channels.
    pub(crate) fn published_rv(&self) -> u64 {
        self.published_rv.load(Ordering::Acquire)
    }

    /// Waits until the global version reaches `rv`, at most `timeout`; true if it did.
    pub(crate) async fn wait_for_rv(&self, rv: u64, timeout: Duration) -> bool {
        let mut rx = self.rv_tx.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|current| *current >= rv)).await;
        matches!(reached, Ok(Ok(_)))
    }

    fn state<'a>(inner: &'a mut Inner, key: &ResourceKey) -> &'a mut ResourceState {
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

    /// Drops history beyond the count and age limits, moving the floor.
    fn evict(state: &mut ResourceState, config: &StoreConfig, now: Instant) {
        while let Some(front) = state.history.front() {
            let too_many = state.history.len() > config.history_limit;
            let too_old = now.saturating_duration_since(front.at) > config.history_max_age;
            if !(too_many || too_old) {
                break;
            }
            let evicted_rv = front.rv;
            state.history.pop_front();
            state.floor = match state.history.front() {
                Some(next) => next.rv.saturating_sub(1).max(evicted_rv),
                None => evicted_rv,
            };
        }
    }

    /// Records a change: bumps the version, stamps it, updates the objects, the history and the
    /// broadcast. `object` is the new state (for DELETED, the last state).
    fn commit(
        &self,
        inner: &mut Inner,
        def: &ResourceDef,
        kind: EventType,
        mut object: Value,
        dry_run: bool,
    ) -> Arc<Value> {
        if dry_run {
            // What the write would store; nothing changes. A created object has no version yet.
            if kind == EventType::Added
                && let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut)
            {
                meta.remove("resourceVersion");
            }
            return Arc::new(object);
        }
        inner.rv += 1;
        let rv = inner.rv;
        set_path(
            &mut object,
            &["metadata", "resourceVersion"],
            json!(rv.to_string()),
        );
        let obj_key = object_key(&object);
        let key = key_of(def);
        // Under the lock, before any watcher is offered the event: the log is in commit order and
        // holds a change before a watcher can deliver it.
        self.changelog.record(|| Change {
            resource_version: rv,
            change_type: match kind {
                EventType::Added => ChangeType::Added,
                EventType::Modified => ChangeType::Modified,
                EventType::Deleted => ChangeType::Deleted,
            },
            group: def.group.clone(),
            plural: def.plural.clone(),
            namespace: obj_key.0.clone(),
            name: obj_key.1.clone(),
        });
        let config = self.config.clone();
        let state = Self::state(inner, &key);
        let object = Arc::new(object);
        let prev = match kind {
            EventType::Deleted => state.objects.remove(&obj_key),
            _ => state.objects.insert(obj_key, object.clone()),
        };
        let event = Arc::new(Event {
            rv,
            kind,
            line: event_line(kind.as_str(), &object),
            object: object.clone(),
            prev,
            at: Instant::now(),
        });
        state.history.push_back(event.clone());
        Self::evict(state, &config, event.at);
        state.watchers.retain(|w| w.offer(&event));
        let namespace = event
            .object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(watchers) = state.namespace_watchers.get_mut(namespace) {
            watchers.retain(|w| w.offer(&event));
            if watchers.is_empty() {
                state.namespace_watchers.remove(namespace);
            }
        }
        self.published_rv.store(rv, Ordering::Release);
        self.rv_tx.send_replace(rv);
        object
    }

    /// Moves the global version forward without a write.
    pub(crate) fn advance(&self, n: u64) {
        let mut inner = self.lock();
        inner.rv += n;
        let rv = inner.rv;
        self.published_rv.store(rv, Ordering::Release);
        self.rv_tx.send_replace(rv);
    }

    /// Drops the history of every resource: every watch or continue token from a version before
    /// now is too old.
    pub(crate) fn compact(&self) {
        let mut inner = self.lock();
        let rv = inner.rv;
        for state in inner.resources.values_mut() {
            state.history.clear();
            state.floor = rv;
        }
        for def in self.registry.all() {
            let key = key_of(&def);
            if !inner.resources.contains_key(&key) {
                Self::state(&mut inner, &key).floor = rv;
            }
        }
    }

    /// The floor of a resource: the smallest version a watch can start from.
    pub(crate) fn floor(&self, def: &ResourceDef) -> u64 {
        let mut inner = self.lock();
        let state = Self::state(&mut inner, &key_of(def));
        Self::evict(state, &self.config, Instant::now());
        state.floor
    }

    /// The objects of a resource at version `at` (None = now), sorted by namespace/name.
    pub(crate) fn snapshot(&self, def: &ResourceDef, at: Option<u64>) -> Result<Snapshot, VersionError> {
        let mut inner = self.lock();
        let current = inner.rv;
        let state = Self::state(&mut inner, &key_of(def));
        Self::evict(state, &self.config, Instant::now());
        let at = at.unwrap_or(current);
        if at > current {
            return Err(VersionError::TooLarge { current });
        }
        if at == current {
            let items = state
                .objects
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            return Ok(Snapshot { rv: current, items });
        }
        if at < state.floor {
            return Err(VersionError::TooOld { floor: state.floor });
        }
        let mut objects = state.objects.clone();
        for event in state.history.iter().rev().take_while(|e| e.rv > at) {
            let obj_key = object_key(&event.object);
            match (&event.kind, &event.prev) {
                (EventType::Added, _) | (_, None) => {
                    objects.remove(&obj_key);
                }
                (_, Some(prev)) => {
                    objects.insert(obj_key, prev.clone());
                }
            }
        }
        Ok(Snapshot {
            rv: at,
            items: objects.into_iter().collect(),
        })
    }

    /// Subscribes a watch: the starting point and a queue for later events, taken under the same
    /// lock so nothing is missed or repeated. The queue holds at most the configured capacity of
    /// selected events.
    pub(crate) fn subscribe(
        &self,
        def: &ResourceDef,
        start: StartRequest,
        filter: Arc<Filter>,
    ) -> Result<(WatchStart, Subscription), VersionError> {
        let mut inner = self.lock();
        let current = inner.rv;
        let state = Self::state(&mut inner, &key_of(def));
        Self::evict(state, &self.config, Instant::now());
        let start = match start {
            StartRequest::Initial => WatchStart::Initial {
                objects: state.objects.values().cloned().collect(),
                snapshot_rv: current,
            },
            StartRequest::From(from) => {
                if from < state.floor {
                    return Err(VersionError::TooOld { floor: state.floor });
                }
                let first = state.history.partition_point(|e| e.rv <= from);
                WatchStart::Replay {
                    events: state.history.range(first..).cloned().collect(),
                    from,
                }
            }
        };
        let (tx, rx) = mpsc::channel(self.config.queue_capacity.max(1));
        let lagged = Arc::new(AtomicBool::new(false));
        let namespace = filter.namespace.clone().filter(|_| def.namespaced);
        let watcher = Watcher {
            filter,
            tx,
            lagged: lagged.clone(),
        };
        match namespace {
            Some(ns) => {
                let watchers = state.namespace_watchers.entry(ns).or_default();
                watchers.retain(|w| !w.tx.is_closed());
                watchers.push(watcher);
            }
            None => {
                state.watchers.retain(|w| !w.tx.is_closed());
                state.watchers.push(watcher);
            }
        }
        Ok((start, Subscription { rx, lagged }))
    }

    /// One object.
    pub(crate) fn get(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, StoreError> {
        let mut inner = self.lock();
        let state = Self::state(&mut inner, &key_of(def));
        state
            .objects
            .get(&(scope_ns(def, namespace), name.to_string()))
            .map(|v| with_type(def, v))
            .ok_or_else(|| Status::not_found(&def.group, &def.plural, name).into())
    }

    /// Checks the namespace a namespaced object goes into: it must exist and not be terminating.
    fn check_namespace(
        inner: &Inner,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        if !def.namespaced {
            return Ok(());
        }
        let ns = inner
            .resources
            .get(&(String::new(), "namespaces".to_string()))
            .and_then(|s| s.objects.get(&(String::new(), namespace.to_string())));
        match ns {
            None => Err(Status::not_found("", "namespaces", namespace).into()),
            Some(ns) if ns.pointer("/metadata/deletionTimestamp").is_some() => {
                Err(Status::namespace_terminating(&def.group, &def.plural, name, namespace).into())
            }
            Some(_) => Ok(()),
        }
    }

    /// Creates an object (POST). `namespace` is the request's namespace (None = take the object's).
    pub(crate) fn create(
        self: &Arc<Self>,
        def: &ResourceDef,
        namespace: Option<&str>,
        mut object: Value,
        dry_run: bool,
    ) -> Result<Value, StoreError> {
        prepare_typed(def, &mut object)?;
        let ns = resolve_namespace(def, namespace, &object)?;
        let meta = metadata_mut(&mut object)?;
        if def.namespaced {
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        let mut inner = self.lock();
        let name = match meta.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            Some(name) => name.to_string(),
            None => match meta
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                Some(prefix) => {
                    let state = Self::state(&mut inner, &key_of(def));
                    let mut name = generate_name(prefix);
                    while state.objects.contains_key(&(ns.clone(), name.clone())) {
                        name = generate_name(prefix);
                    }
                    name
                }
                None => {
                    return Err(Status::invalid(
                        &def.group,
                        &def.kind,
                        "",
                        &[FieldCause::required(
                            "metadata.name",
                            "name or generateName is required",
                        )],
                    )
                    .into());
                }
            },
        };
        validate_name(def, &name)?;
        Self::check_namespace(&inner, def, &ns, &name)?;
        let state = Self::state(&mut inner, &key_of(def));
        if state.objects.contains_key(&(ns.clone(), name.clone())) {
            return Err(Status::already_exists(&def.group, &def.plural, &name).into());
        }
        meta.insert("name".into(), json!(name));
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.insert("generation".into(), json!(1));
        for server_owned in ["deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
            meta.remove(server_owned);
        }
        if is_kind(def, "", "namespaces") {
            prepare_namespace(&mut object, &name);
        }
        if is_kind(def, CRD_GROUP, CRD_PLURAL) {
            let defs = crd_resource_defs(&object)?;
            prepare_crd_status(&mut object);
            if !dry_run {
                self.register_crd(&mut inner, &defs);
            }
        }
        let created = self.commit(&mut inner, def, EventType::Added, object, dry_run);
        Ok(with_type(def, &created))
    }

    /// Replaces an object (PUT). Conflict if the body's resourceVersion is set and stale.
    pub(crate) fn update(
        self: &Arc<Self>,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        mut object: Value,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Value, StoreError> {
        prepare_typed(def, &mut object)?;
        let ns = scope_ns(def, namespace);
        {
            let meta = metadata_mut(&mut object)?;
            match meta.get("name").and_then(Value::as_str) {
                Some(n) if n != name => {
                    return Err(Status::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    ))
                    .into());
                }
                _ => {
                    meta.insert("name".into(), json!(name));
                }
            }
            match meta.get("namespace").and_then(Value::as_str) {
                Some(n) if def.namespaced && !n.is_empty() && n != ns => {
                    return Err(Status::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    )
                    .into());
                }
                _ if def.namespaced => {
                    meta.insert("namespace".into(), json!(ns));
                }
                _ => {
                    meta.remove("namespace");
                }
            }
        }
        let mut inner = self.lock();
        let state = Self::state(&mut inner, &key_of(def));
        let existing = state
            .objects
            .get(&(ns.clone(), name.to_string()))
            .cloned()
            .ok_or_else(|| StoreError::from(Status::not_found(&def.group, &def.plural, name)))?;
        if let Some(rv) = object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && !rv.is_empty()
            && Some(rv)
                != existing
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return Err(Status::conflict(&def.group, &def.plural, name).into());
        }
        let object = if status_only {
            let mut merged = Value::clone(&existing);
            match object.get("status") {
                Some(status) => set_path(&mut merged, &["status"], status.clone()),
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            merged
        } else {
            object
        };
        self.write_updated(&mut inner, def, &existing, object, dry_run)
    }

    /// Finishes an update: keeps server-owned fields, bumps `generation` when the spec changed,
    /// skips no-op writes, and deletes an object whose last finalizer was removed while it was
    /// being deleted.
    fn write_updated(
        self: &Arc<Self>,
        inner: &mut Inner,
        def: &ResourceDef,
        existing: &Value,
        mut object: Value,
        dry_run: bool,
    ) -> Result<Value, StoreError> {
        let old_meta = existing.get("metadata").cloned().unwrap_or_else(|| json!({}));
        {
            let meta = metadata_mut(&mut object)?;
            for owned in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                match old_meta.get(owned) {
                    Some(v) => meta.insert(owned.into(), v.clone()),
                    None => meta.remove(owned),
                };
            }
            meta.insert(
                "resourceVersion".into(),
                old_meta.get("resourceVersion").cloned().unwrap_or(Value::Null),
            );
            let generation = old_meta.get("generation").and_then(Value::as_i64).unwrap_or(1);
            meta.insert("generation".into(), json!(generation));
            if meta.get("generateName").is_none()
                && let Some(g) = old_meta.get("generateName")
            {
                meta.insert("generateName".into(), g.clone());
            }
        }
        if spec_of(&object) != spec_of(existing) {
            let generation = old_meta.get("generation").and_then(Value::as_i64).unwrap_or(1) + 1;
            set_path(&mut object, &["metadata", "generation"], json!(generation));
        }
        if is_kind(def, "", "namespaces") {
            let name = object_key(&object).1;
            prepare_namespace(&mut object, &name);
        }
        if object == *existing {
            return Ok(with_type(def, existing));
        }
        let finalizers_left = object
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if is_kind(def, CRD_GROUP, CRD_PLURAL) {
            let defs = crd_resource_defs(&object)?;
            prepare_crd_status(&mut object);
            if !dry_run {
                let old_defs = crd_resource_defs(existing).unwrap_or_default();
                for old in &old_defs {
                    if !defs.iter().any(|d| d.version == old.version) {
                        self.registry.unregister(&old.group, &old.version, &old.plural);
                    }
                }
                self.register_crd(inner, &defs);
            }
        }
        if object.pointer("/metadata/deletionTimestamp").is_some()
            && !finalizers_left
            && !is_kind(def, "", "namespaces")
        {
            let deleted = self.remove_now(inner, def, object, dry_run);
            return Ok(with_type(def, &deleted));
        }
        let updated = self.commit(inner, def, EventType::Modified, object, dry_run);
        Ok(with_type(def, &updated))
    }

    /// Patches an object (PATCH). Apply patches create the object when missing (`true` = created).
    pub(crate) fn patch(
        self: &Arc<Self>,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        kind: PatchKind,
        patch_doc: &Value,
        options: WriteOptions,
    ) -> Result<(Value, bool), StoreError> {
        let WriteOptions { status_only, dry_run } = options;
        let ns = scope_ns(def, namespace);
        // Patches are applied under the store lock: nothing can change in between.
        let mut inner = self.lock();
        let state = Self::state(&mut inner, &key_of(def));
        let existing = state.objects.get(&(ns, name.to_string())).cloned();
        let Some(current) = existing else {
            drop(inner);
            if kind == PatchKind::Apply && !status_only {
                let mut object = patch_doc.clone();
                if let Some(n) = object.pointer("/metadata/name").and_then(Value::as_str)
                    && n != name
                {
                    return Err(Status::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    ))
                    .into());
                }
                set_path(&mut object, &["metadata", "name"], json!(name));
                return self.create(def, namespace, object, dry_run).map(|o| (o, true));
            }
            return Err(Status::not_found(&def.group, &def.plural, name).into());
        };
        let patched = patch::apply(kind, &current, patch_doc).map_err(|e| match e {
            patch::PatchError::Decode(m) => StoreError::from(Status::bad_request(m)),
            patch::PatchError::Apply(m) => StoreError::from(Status::failure(422, "Invalid", m)),
        })?;
        let current_rv = current
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str);
        let asked_rv = patched
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str);
        if asked_rv.is_some_and(|asked| !asked.is_empty() && Some(asked) != current_rv) {
            // The patch carries a stale resourceVersion precondition.
            return Err(Status::conflict(&def.group, &def.plural, name).into());
        }
        let mut patched = patched;
        prepare_typed(def, &mut patched)?;
        set_path(&mut patched, &["metadata", "name"], json!(name));
        let object = if status_only {
            let mut merged = Value::clone(&current);
            match patched.get("status") {
                Some(status) => set_path(&mut merged, &["status"], status.clone()),
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            merged
        } else {
            patched
        };
        self.write_updated(&mut inner, def, &current, object, dry_run)
            .map(|o| (o, false))
    }

    /// Deletes an object: at once, or by marking it (finalizers; namespaces terminate and are
    /// removed with their objects after the configured delay).
    pub(crate) fn delete(
        self: &Arc<Self>,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        precondition_rv: Option<&str>,
        dry_run: bool,
    ) -> Result<DeleteOutcome, StoreError> {
        let ns = scope_ns(def, namespace);
        let mut inner = self.lock();
        let state = Self::state(&mut inner, &key_of(def));
        let existing = state
            .objects
            .get(&(ns.clone(), name.to_string()))
            .cloned()
            .ok_or_else(|| StoreError::from(Status::not_found(&def.group, &def.plural, name)))?;
        if let Some(rv) = precondition_rv
            && Some(rv)
                != existing
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return Err(Status::conflict(&def.group, &def.plural, name).into());
        }
        if existing.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(DeleteOutcome::Pending(with_type(def, &existing)));
        }
        let has_finalizers = existing
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let is_namespace = is_kind(def, "", "namespaces");
        if has_finalizers || is_namespace {
            let mut marked = Value::clone(&existing);
            set_path(
                &mut marked,
                &["metadata", "deletionTimestamp"],
                json!(now_rfc3339()),
            );
            set_path(&mut marked, &["metadata", "deletionGracePeriodSeconds"], json!(0));
            if is_namespace {
                set_path(&mut marked, &["status", "phase"], json!("Terminating"));
            }
            let marked = self.commit(&mut inner, def, EventType::Modified, marked, dry_run);
            drop(inner);
            if is_namespace && !dry_run {
                self.schedule_namespace_removal(name.to_string());
            }
            return Ok(DeleteOutcome::Pending(with_type(def, &marked)));
        }
        let deleted = self.remove_now(&mut inner, def, Value::clone(&existing), dry_run);
        Ok(DeleteOutcome::Deleted(with_type(def, &deleted)))
    }

    /// Removes an object now (DELETED with `last` as content and a new version).
    fn remove_now(&self, inner: &mut Inner, def: &ResourceDef, last: Value, dry_run: bool) -> Arc<Value> {
        if is_kind(def, CRD_GROUP, CRD_PLURAL) && !dry_run {
            for old in crd_resource_defs(&last).unwrap_or_default() {
                self.registry.unregister(&old.group, &old.version, &old.plural);
            }
            let key = crd_storage_key(&last);
            if let Some(key) = key {
                inner.resources.remove(&key);
                inner.removed_at.insert(key, inner.rv + 1);
            }
        }
        self.commit(inner, def, EventType::Deleted, last, dry_run)
    }

    /// After the namespace delay: deletes every object in the namespace, then the namespace.
    fn schedule_namespace_removal(self: &Arc<Self>, namespace: String) {
        let store = self.clone();
        let delay = self.config.namespace_delete_delay;
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    // Like the namespace controller: retry until the objects held by finalizers
                    // are gone.
                    let retry = delay.max(Duration::from_millis(50));
                    let mut wait = delay;
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = store.shutdown.cancelled() => return,
                        }
                        if store.finish_namespace(&namespace) {
                            return;
                        }
                        wait = retry;
                    }
                });
            }
            Err(_) => {
                store.finish_namespace(&namespace);
            }
        }
    }

    /// Deletes the objects of a terminating namespace, then the namespace. Objects with
    /// finalizers are only marked for deletion; while any remain the namespace stays (false).
    fn finish_namespace(&self, namespace: &str) -> bool {
        let mut inner = self.lock();
        let ns_key = (String::new(), "namespaces".to_string());
        let still_terminating = inner
            .resources
            .get(&ns_key)
            .and_then(|s| s.objects.get(&(String::new(), namespace.to_string())))
            .is_some_and(|ns| ns.pointer("/metadata/deletionTimestamp").is_some());
        if !still_terminating {
            return true;
        }
        let mut held = false;
        for def in self.registry.all() {
            if !def.namespaced {
                continue;
            }
            let key = key_of(&def);
            let victims: Vec<Value> = match inner.resources.get(&key) {
                Some(state) => state
                    .objects
                    .range((namespace.to_string(), String::new())..)
                    .take_while(|((ns, _), _)| ns == namespace)
                    .map(|(_, v)| Value::clone(v))
                    .collect(),
                None => continue,
            };
            for mut victim in victims {
                let has_finalizers = victim
                    .pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|f| !f.is_empty());
                if !has_finalizers {
                    self.commit(&mut inner, &def, EventType::Deleted, victim, false);
                    continue;
                }
                held = true;
                if victim.pointer("/metadata/deletionTimestamp").is_none() {
                    set_path(
                        &mut victim,
                        &["metadata", "deletionTimestamp"],
                        json!(now_rfc3339()),
                    );
                    set_path(&mut victim, &["metadata", "deletionGracePeriodSeconds"], json!(0));
                    self.commit(&mut inner, &def, EventType::Modified, victim, false);
                }
            }
        }
        if held {
            return false;
        }
        let ns_obj = inner
            .resources
            .get(&ns_key)
            .and_then(|s| s.objects.get(&(String::new(), namespace.to_string())))
            .map(|v| Value::clone(v));
        if let (Some(mut ns_obj), Some(def)) = (ns_obj, self.registry.get("", "v1", "namespaces")) {
            set_path(&mut ns_obj, &["spec", "finalizers"], json!([]));
            self.commit(&mut inner, &def, EventType::Deleted, ns_obj, false);
        }
        true
    }

    /// Registers the resources a CRD defines.
    fn register_crd(&self, inner: &mut Inner, defs: &[ResourceDef]) {
        for def in defs {
            self.registry.register(def.clone());
            let key = key_of(def);
            Self::state(inner, &key);
        }
    }

    /// Registers a resource given through the Rust API.
    pub(crate) fn register(&self, def: ResourceDef) -> Arc<ResourceDef> {
        let def = self.registry.register(def);
        let mut inner = self.lock();
        Self::state(&mut inner, &key_of(&def));
        def
    }

    /// Every object of a resource (optionally in one namespace), sorted.
    pub(crate) fn list(&self, def: &ResourceDef, namespace: Option<&str>) -> Vec<Value> {
        let mut inner = self.lock();
        let state = Self::state(&mut inner, &key_of(def));
        state
            .objects
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|want| !def.namespaced || ns == want))
            .map(|(_, v)| with_type(def, v))
            .collect()
    }
}

/// Namespace for storage: "" for cluster-scoped kinds.
fn scope_ns(def: &ResourceDef, namespace: Option<&str>) -> String {
    if def.namespaced {
        namespace.unwrap_or_default().to_string()
    } else {
        String::new()
    }
}

/// The namespace a created object goes into (URL first; the body must agree).
fn resolve_namespace(
    def: &ResourceDef,
    namespace: Option<&str>,
    object: &Value,
) -> Result<String, StoreError> {
    if !def.namespaced {
        return Ok(String::new());
    }
    let body_ns = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    match (namespace, body_ns) {
        (Some(url), Some(body)) if url != body => Err(Status::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )
        .into()),
        (Some(url), _) => Ok(url.to_string()),
        (None, Some(body)) => Ok(body.to_string()),
        (None, None) => Ok("default".to_string()),
    }
}

/// The (namespace, name) key of an object.
pub(crate) fn object_key(object: &Value) -> (String, String) {
    let get = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (get("/metadata/namespace"), get("/metadata/name"))
}

/// A copy of the object with `kind`/`apiVersion` of the definition (the version asked for).
pub(crate) fn with_type(def: &ResourceDef, object: &Value) -> Value {
    let mut out = object.clone();
    if let Some(map) = out.as_object_mut() {
        map.insert("apiVersion".into(), json!(def.api_version()));
        map.insert("kind".into(), json!(def.kind));
    }
    out
}

/// Checks and fills `kind`/`apiVersion`, makes sure `metadata` is an object.
fn prepare_typed(def: &ResourceDef, object: &mut Value) -> Result<(), StoreError> {
    let Some(map) = object.as_object_mut() else {
        return Err(Status::bad_request("the body of the request was not a JSON object").into());
    };
    if let Some(kind) = map.get("kind").and_then(Value::as_str)
        && !kind.is_empty()
        && kind != def.kind
    {
        return Err(Status::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            def.kind
        ))
        .into());
    }
    if let Some(api_version) = map.get("apiVersion").and_then(Value::as_str)
        && !api_version.is_empty()
        && api_version.rsplit_once('/').map_or("", |(group, _)| group) != def.group
    {
        return Err(Status::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            def.api_version()
        ))
        .into());
    }
    map.insert("apiVersion".into(), json!(def.api_version()));
    map.insert("kind".into(), json!(def.kind));
    match map.get("metadata") {
        Some(Value::Object(_)) => {}
        None | Some(Value::Null) => {
            map.insert("metadata".into(), json!({}));
        }
        Some(_) => return Err(Status::bad_request("metadata must be an object").into()),
    }
    Ok(())
}

fn metadata_mut(object: &mut Value) -> Result<&mut Map<String, Value>, StoreError> {
    object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| Status::bad_request("metadata must be an object").into())
}

/// Everything but `metadata`, `status`, `kind`, `apiVersion`: a change bumps `generation`.
fn spec_of(object: &Value) -> Value {
    match object {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status" | "kind" | "apiVersion"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// Sets a value at a path of object keys, creating objects on the way.
pub(crate) fn set_path(target: &mut Value, path: &[&str], value: Value) {
    let mut current = target;
    for (i, part) in path.iter().enumerate() {
        if !current.is_object() {
            *current = json!({});
        }
        let Some(map) = current.as_object_mut() else {
            return;
        };
        if i + 1 == path.len() {
            map.insert((*part).to_string(), value);
            return;
        }
        current = map.entry((*part).to_string()).or_insert_with(|| json!({}));
    }
}

fn is_kind(def: &ResourceDef, group: &str, plural: &str) -> bool {
    def.group == group && def.plural == plural
}

/// Namespaces get the name label, the `kubernetes` finalizer and a phase.
fn prepare_namespace(object: &mut Value, name: &str) {
    set_path(
        object,
        &["metadata", "labels", "kubernetes.io/metadata.name"],
        json!(name),
    );
    if object.pointer("/spec/finalizers").is_none() {
        set_path(object, &["spec", "finalizers"], json!(["kubernetes"]));
    }
    let terminating = object.pointer("/metadata/deletionTimestamp").is_some();
    set_path(
        object,
        &["status", "phase"],
        json!(if terminating { "Terminating" } else { "Active" }),
    );
}

/// `generateName` + 5 random characters from the real server's alphabet.
fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let random = uuid::Uuid::new_v4();
    let suffix: String = random
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// Names must be DNS subdomains (lowercase alphanumerics, `-`, `.`, ≤ 253, alphanumeric ends).
fn validate_name(def: &ResourceDef, name: &str) -> Result<(), StoreError> {
    let ok_edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let valid = name.len() <= 253
        && ok_edge(name.chars().next())
        && ok_edge(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if valid {
        return Ok(());
    }
    Err(Status::invalid(
        &def.group,
        &def.kind,
        name,
        &[FieldCause::invalid(
            "metadata.name",
            name,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        )],
    )
    .into())
}

/// `2026-01-31T12:00:00Z`.
pub(crate) fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The storage key of the custom resources a CRD object defines.
fn crd_storage_key(crd: &Value) -> Option<ResourceKey> {
    let group = crd.pointer("/spec/group")?.as_str()?;
    let plural = crd.pointer("/spec/names/plural")?.as_str()?;
    Some((group.to_string(), plural.to_string()))
}

/// The resource definitions (one per served version) of a CRD object.
pub(crate) fn crd_resource_defs(crd: &Value) -> Result<Vec<ResourceDef>, StoreError> {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let invalid = |field: &str, detail: &str| -> StoreError {
        Status::invalid(
            CRD_GROUP,
            "CustomResourceDefinition",
            name,
            &[FieldCause::required(field, detail)],
        )
        .into()
    };
    let str_at = |p: &str| crd.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty());
    let group = str_at("/spec/group").ok_or_else(|| invalid("spec.group", "must be set"))?;
    let kind = str_at("/spec/names/kind").ok_or_else(|| invalid("spec.names.kind", "must be set"))?;
    let plural = str_at("/spec/names/plural").ok_or_else(|| invalid("spec.names.plural", "must be set"))?;
    let singular = str_at("/spec/names/singular")
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    let namespaced = str_at("/spec/scope") != Some("Cluster");
    let strings = |p: &str| -> Vec<String> {
        crd.pointer(p)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let short_names = strings("/spec/names/shortNames");
    let categories = strings("/spec/names/categories");
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        return Err(invalid(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    }
    let mut defs = Vec::new();
    for version in versions {
        if version.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let Some(version_name) = version.get("name").and_then(Value::as_str) else {
            continue;
        };
        let mut def = ResourceDef::new(group, version_name, kind, plural, namespaced);
        def.singular = singular.clone();
        def.short_names = short_names.clone();
        def.categories = categories.clone();
        for column in version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let get = |k: &str| {
                column
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            def.printer_columns.push(PrinterColumn {
                name: get("name"),
                column_type: if get("type").is_empty() {
                    "string".into()
                } else {
                    get("type")
                },
                json_path: get("jsonPath"),
                priority: column.get("priority").and_then(Value::as_i64).unwrap_or(0) as i32,
                description: get("description"),
            });
        }
        defs.push(def);
    }
    Ok(defs)
}

/// A CRD is immediately `Established` with its names accepted.
fn prepare_crd_status(crd: &mut Value) {
    let names = crd.pointer("/spec/names").cloned().unwrap_or_else(|| json!({}));
    let now = now_rfc3339();
    let condition = |t: &str, reason: &str, message: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message});
    set_path(crd, &["status", "acceptedNames"], names);
    set_path(
        crd,
        &["status", "conditions"],
        json!([
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition(
                "Established",
                "InitialNamesAccepted",
                "the initial names have been accepted"
            ),
        ]),
    );
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    set_path(crd, &["status", "storedVersions"], Value::Array(stored));
}
