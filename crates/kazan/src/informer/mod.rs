//! The informer: a [`Store`] that controllers read, kept by a supervised [`Watcher`], with events
//! that carry what a controller needs, relists that report what vanished, shared subscriptions and
//! checkpoints.
//!
//! An [`Informer`] lists (page by page), watches from the list's version, and applies every event
//! to its store before handing it to its subscribers as an [`Event`]: `Added(new)`,
//! `Modified { old, new }` (old from the store), `Deleted { last, final_state_unknown }` and
//! `Synced` after every complete (re)list. Objects are `Arc<K>`, shared by the store and every
//! subscriber.
//!
//! ```no_run
//! use k8s_openapi::api::core::v1::Pod;
//! use kazan::{Client, Request, informer::{EventKind, Informer, InformerOptions}};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let client = Client::try_default().await?;
//! let informer = Informer::start(client, Request::list::<Pod>().namespace("web"), InformerOptions::new())?;
//! informer.index_by("node", |pod: &Pod| {
//!     pod.spec.as_ref().and_then(|s| s.node_name.clone()).into_iter().collect()
//! });
//! let store = informer.store();
//! store.wait_synced().await?; // every page of the first list is in the store
//! let mut changes = informer.subscribe();
//! while let Some(event) = changes.recv().await {
//!     // Reconcile from the store's current state, not from the event alone.
//!     let Some(object) = event.object() else { continue };
//!     let name = object.metadata.name.as_deref().unwrap_or_default();
//!     match store.get("web", name) {
//!         Some(pod) => println!("reconcile {name} at {:?}", pod.metadata.resource_version),
//!         None => println!("{name} is gone; clean up"),
//!     }
//!     if let EventKind::Deleted { final_state_unknown: true, .. } = event.kind {
//!         println!("{name} was deleted while we were away");
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # How it differs from kube-runtime's reflector and client-go's informer
//!
//! - **Relists are applied in place and report what vanished.** After a 410 Gone the relist is
//!   applied page by page to the store: a new key is `Added`, a known key at a new version is
//!   `Modified { old, new }`, the same version is nothing (client-go hands every listed object to
//!   its handlers as an update, changed or not); when the list is complete every key it
//!   did not contain is removed and reported as `Deleted { final_state_unknown: true }` with its
//!   last known state (client-go's `DeletedFinalStateUnknown`). Keys are marked with the relist's
//!   generation and swept at the end, so no second map of the store is ever built: a relist does
//!   not double memory (kube-runtime's reflector buffers the whole relist and swaps it in, kube-rs
//!   #1209, and drops the deletes silently). Readers may see a half-applied relist (as with
//!   client-go, whose indexer is updated delta by delta); the store's `resource_version()` stays at
//!   the version before the relist until it is complete. For readers that must never see a
//!   half-applied relist, [`InformerOptions::atomic_relists`] buffers the relist and applies it in
//!   one step at its end, at the cost of holding the whole relist decoded beside the store (up to
//!   twice the store's memory, as kube-runtime does).
//! - **The store tells its version** ([`Store::resource_version`]); kube-runtime's has none and
//!   client-go added one only lately.
//! - **Indexes** ([`Informer::index_by`], [`Store::by_index`]): the namespace index is built in, user
//!   indexes are kept incrementally (client-go's `Indexers`; kube-runtime has none).
//! - **Subscribing at any time is exact** ([`Informer::subscribe`]): the snapshot and the live
//!   changes are taken under one lock, so a late subscriber misses nothing and gets nothing twice
//!   (the race of kube-rs #1630); client-go replays its store to a late handler too, but its
//!   listener buffers grow without bound.
//! - **Each subscriber has a bounded queue** with a policy per subscriber ([`Overflow`]): the
//!   default, [`Overflow::Resync`], cuts a subscriber off when its queue is full and later hands it
//!   the net changes it missed (coalesced, deletes as `final_state_unknown`), so a slow
//!   subscriber never holds the others back and costs at most one entry per changed object;
//!   [`Overflow::Backpressure`] makes the informer wait for it instead (every event delivered, the
//!   watch paused meanwhile). Default capacity: 1024 events.
//! - **Checkpoints** ([`InformerOptions::checkpoint`]): the store is written to a file (versioned,
//!   checksummed, atomically replaced) at an interval and on stop; a restart watches from its
//!   version with no list, and if that version is too old, relists and reports what vanished. A
//!   corrupt, truncated or foreign file is a [`CheckpointError`], logged, and the informer lists
//!   afresh ([`Informer::checkpoint_status`]). kube-runtime cannot start from a version (kube-rs
//!   #1419); client-go has no checkpoints.
//! - **Shared informers** ([`Informers`]): one watch per (kind, path, label selector, field
//!   selector) for any number of consumers; the watch stops when the last handle or subscription
//!   is dropped, after a linger (default 0 for a lone informer, 30 s in the factory).
//!
//! - **Big caches**: lists are streamed (watch-list, [`InformerOptions::initial_list`]) where the
//!   server can, with no list response built in memory on either side; a
//!   [`transform`](InformerOptions::transform) (e.g. [`strip_managed_fields`]) runs once per object
//!   before anything holds it; [`PartialObjectMetadata`](crate::PartialObjectMetadata) caches
//!   metadata alone; and [`InformerOptions::compact_store`] keeps objects as compact JSON. With
//!   the `simd-json` feature (on by default), typed objects (listed or watched) are built by
//!   simd-json, which knows each array's length and allocates every `Vec` at it: a store of them
//!   is about a fifth smaller than of the same objects built by `serde_json`, whose `Vec`s keep
//!   the room they grew while decoding (`BENCHMARKS.md`, the `cache` scenario).
//!
//! Followed: client-go `tools/cache/reflector.go` (list then watch, relist after Gone),
//! `delta_fifo.go` (`Replace` and `DeletedFinalStateUnknown`), `shared_informer.go`
//! (`AddEventHandler` on a running informer replays the store), and kube-runtime's
//! `reflector/store.rs`.

mod checkpoint;
mod events;
mod factory;
mod index;
mod shared;
pub(crate) mod store;

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

pub use checkpoint::{CheckpointError, CheckpointStatus, FORMAT_VERSION};
pub use events::{Event, EventKind};
pub use factory::Informers;
pub use index::IndexFn;
pub use shared::{Overflow, SubscribeOptions, Subscription};
pub use store::{Store, StoreStats};

use crate::{
    Client, Object, Request,
    resource::ObjectList,
    watcher::{
        Event as WatchEvent, EventKind as WatchKind, InitialList, WatchError, Watcher, WatcherHandle,
        WatcherId, WatcherOptions,
    },
};
use checkpoint::Identity;
use shared::{Change, Hub};
use store::{Codec, Listed, SyncState, key_of};

/// Why an informer could not start or ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InformerError {
    /// The watch could not be started (the request or the options are wrong).
    #[error("the informer's watch could not start: {0}")]
    Start(#[from] WatchError),
    /// The watch ended on an error it cannot recover from (403, 404...).
    #[error("the informer's watch failed: {0}")]
    Watch(Arc<WatchError>),
    /// [`InformerOptions::transform`] was given a transform of another object type.
    #[error("the informer's transform takes {transform}, but the informer holds {informer}")]
    TransformType {
        /// The transform's object type.
        transform: &'static str,
        /// The informer's object type.
        informer: &'static str,
    },
    /// The informer was stopped (or its watch ended) before its store was synced.
    #[error("the informer ended before its store was synced")]
    Ended,
    /// The checkpoint could not be written when the informer stopped.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// A transform of the informer's objects, as [`InformerOptions::transform`] takes it.
pub type TransformFn<K> = Arc<dyn Fn(&mut K) + Send + Sync>;

/// Removes `metadata.managedFields`, usually the largest part of an object and of no use to a
/// controller: a ready-made [`InformerOptions::transform`] (client-go users write the same
/// `TransformFunc`; kube-runtime's `reflector` docs suggest it for `.modify()`).
///
/// ```
/// use k8s_openapi::api::core::v1::Pod;
/// use kazan::informer::{InformerOptions, strip_managed_fields};
///
/// let options = InformerOptions::new().transform(strip_managed_fields::<Pod>);
/// ```
pub fn strip_managed_fields<K: Object>(object: &mut K) {
    if let Some(meta) = object.meta_mut() {
        meta.managed_fields = None;
    }
}

/// How an informer runs.
#[derive(Clone, Debug)]
#[must_use]
pub struct InformerOptions {
    pub(crate) watcher: WatcherOptions,
    pub(crate) checkpoint: Option<(PathBuf, Duration)>,
    pub(crate) linger: Duration,
    pub(crate) atomic_relists: bool,
    pub(crate) transform: Option<AnyTransform>,
    pub(crate) compact_store: bool,
}

/// A [`TransformFn`] of some object type, checked against the informer's at its start: the
/// options are not generic over the object type.
#[derive(Clone)]
pub(crate) struct AnyTransform {
    function: Arc<dyn std::any::Any + Send + Sync>,
    type_name: &'static str,
}

impl std::fmt::Debug for AnyTransform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "transform of {}", self.type_name)
    }
}

impl AnyTransform {
    /// The transform for objects of type `K`, or the typed error naming both types.
    fn of<K: 'static>(&self) -> Result<TransformFn<K>, InformerError> {
        self.function
            .downcast_ref::<TransformFn<K>>()
            .cloned()
            .ok_or(InformerError::TransformType {
                transform: self.type_name,
                informer: std::any::type_name::<K>(),
            })
    }
}

impl Default for InformerOptions {
    fn default() -> Self {
        InformerOptions {
            watcher: WatcherOptions::new(),
            checkpoint: None,
            linger: Duration::ZERO,
            atomic_relists: false,
            transform: None,
            compact_store: false,
        }
    }
}

impl InformerOptions {
    /// The defaults: the watcher's defaults, no checkpoint, no linger.
    pub fn new() -> Self {
        Self::default()
    }

    /// The options of the informer's watcher (page size, timeouts, backoff, logging...). Its
    /// `resource_version` is ignored (a checkpoint gives one), and bookmarks are always delivered
    /// to the informer, so that the store's version follows them.
    pub fn watcher(mut self, options: WatcherOptions) -> Self {
        self.watcher = options;
        self
    }

    /// How the informer's (re)lists are fetched (default [`InitialList::Auto`]: streamed
    /// with `sendInitialEvents`, page by page when the server does not stream lists); the same
    /// as setting it in [`watcher`](Self::watcher)'s options.
    pub fn initial_list(mut self, how: InitialList) -> Self {
        self.watcher = self.watcher.initial_list(how);
        self
    }

    /// Applies `transform` to every object the watch brings (listed, added, modified or deleted),
    /// once, before it is stored or handed to subscribers: what it removes is never held.
    /// Objects loaded from a checkpoint are not transformed again (they were when first stored).
    /// The transform's object type must be the informer's; otherwise the informer does not start
    /// ([`InformerError::TransformType`]). See [`strip_managed_fields`].
    pub fn transform<K: 'static>(mut self, transform: impl Fn(&mut K) + Send + Sync + 'static) -> Self {
        let function: TransformFn<K> = Arc::new(transform);
        self.transform = Some(AnyTransform {
            function: Arc::new(function),
            type_name: std::any::type_name::<K>(),
        });
        self
    }

    /// Keeps each object in the store as compact JSON (no whitespace) in an allocation of its own,
    /// decoded again on every read (default no: objects kept decoded, shared with subscribers).
    /// A decoded Kubernetes object takes several times its JSON's size in memory; a compact store
    /// takes about the JSON's size, at the cost of a decode per read (`get`, `list`, indexes,
    /// `Modified`'s `old`). Each object's name, namespace and resourceVersion are kept beside its
    /// bytes ([`Store::resource_version_of`] reads them without decoding), and
    /// [`Store::stats`] tells the bytes held. The bytes are encoded from the object after the
    /// [`transform`](Self::transform), never a slice of a network read buffer, so a cached object
    /// never keeps a whole chunk of the watch stream alive.
    pub fn compact_store(mut self, compact: bool) -> Self {
        self.compact_store = compact;
        self
    }

    /// Keeps a checkpoint in `path`: written every `interval` when the store changed, and when
    /// the informer stops; read when it starts (then it watches from the checkpoint's version,
    /// with no list). `path`'s directory must be writable (the file is written beside it first).
    pub fn checkpoint(mut self, path: impl Into<PathBuf>, interval: Duration) -> Self {
        self.checkpoint = Some((path.into(), interval.max(Duration::from_millis(1))));
        self
    }

    /// Whether a relist after 410 Gone is applied in one step (default no: page by page, in
    /// place). In one step, readers of the store never see a mix of the old state and the new,
    /// and subscribers get the relist's changes together at its end; the cost is the whole relist
    /// held decoded until then, beside the store: up to twice the store's memory at the peak
    /// (the in-place default holds one object beyond the store). The first list is applied in
    /// place either way (the store is not synced before it).
    pub fn atomic_relists(mut self, atomic: bool) -> Self {
        self.atomic_relists = atomic;
        self
    }

    /// How long the watch goes on after the last handle and subscription are dropped (default 0);
    /// a subscriber arriving meanwhile (through [`Informers`]) finds it warm.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }
}

/// What the informer's handles, subscriptions and task share.
pub(crate) struct Core<K> {
    store: Store<K>,
    hub: Hub<K>,
    watcher_id: WatcherId,
    users: AtomicUsize,
    idle: Notify,
    stop: CancellationToken,
    retired: AtomicBool,
    linger: Duration,
    checkpoint_status: Mutex<CheckpointStatus>,
    ended: watch::Sender<Option<Result<(), Arc<InformerError>>>>,
    registration: Option<factory::Registration>,
}

impl<K> Core<K> {
    fn watcher_id(&self) -> WatcherId {
        self.watcher_id
    }

    /// Whether the informer may stop now that it has been idle for its linger: nobody came back.
    /// In a factory, decided under the factory's lock, so that nobody gets it meanwhile.
    fn retire(&self) -> bool {
        let decide = || {
            if self.users.load(Ordering::SeqCst) == 0 {
                self.retired.store(true, Ordering::SeqCst);
                true
            } else {
                false
            }
        };
        match &self.registration {
            Some(registration) => registration.retire(decide),
            None => decide(),
        }
    }
}

/// One user of an informer (a handle or a subscription): the watch runs while there is one.
pub(crate) struct UserGuard<K>(Arc<Core<K>>);

impl<K> UserGuard<K> {
    fn new(core: Arc<Core<K>>) -> Self {
        core.users.fetch_add(1, Ordering::SeqCst);
        UserGuard(core)
    }

    pub(crate) fn core(&self) -> &Core<K> {
        &self.0
    }
}

impl<K> Clone for UserGuard<K> {
    fn clone(&self) -> Self {
        UserGuard::new(self.0.clone())
    }
}

impl<K> Drop for UserGuard<K> {
    fn drop(&mut self) {
        if self.0.users.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_one();
        }
    }
}

/// A running informer. Cheap to clone; the watch runs while a clone or a [`Subscription`] lives
/// (and for the linger after), or until [`stop`](Self::stop). See the [module documentation](self).
pub struct Informer<K: Object + Send + Sync + 'static> {
    user: UserGuard<K>,
}

impl<K: Object + Send + Sync + 'static> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            user: self.user.clone(),
        }
    }
}

impl<K: Object + Send + Sync + 'static> std::fmt::Debug for Informer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informer")
            .field("watcher", &self.core().watcher_id)
            .finish_non_exhaustive()
    }
}

/// What one informer's checkpoint is and was written for.
#[derive(Clone)]
struct CheckpointPlan {
    path: PathBuf,
    interval: Duration,
    identity: Identity,
}

impl<K> Informer<K>
where
    K: Object + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Starts an informer over `request` (a list request: its namespace and selectors are what is
    /// cached). With a checkpoint, its file is read here (a blocking read) and, when usable, the
    /// store starts from it and the watch from its version, with no list. Must be called inside a
    /// Tokio runtime.
    pub fn start(
        client: Client,
        request: Request<ObjectList<K>>,
        options: InformerOptions,
    ) -> Result<Self, InformerError> {
        Ok(Self::start_registered(client, request, options, None, None)?.0)
    }

    /// [`start`](Self::start), with a subscription taken before the informer applies its first
    /// event: it sees the initial state (the list, or the checkpoint's snapshot) and then every
    /// change, none folded into its snapshot. What a consumer that treats the snapshot apart
    /// (say, skips a checkpoint's objects it printed before) needs.
    pub fn start_subscribed(
        client: Client,
        request: Request<ObjectList<K>>,
        options: InformerOptions,
        subscription: SubscribeOptions,
    ) -> Result<(Self, Subscription<K>), InformerError> {
        let (informer, first) = Self::start_registered(client, request, options, None, Some(subscription))?;
        let first = first.unwrap_or_else(|| informer.subscribe_with(subscription));
        Ok((informer, first))
    }

    pub(crate) fn start_registered(
        client: Client,
        request: Request<ObjectList<K>>,
        options: InformerOptions,
        registration: Option<factory::Registration>,
        first: Option<SubscribeOptions>,
    ) -> Result<(Self, Option<Subscription<K>>), InformerError> {
        let transform = options
            .transform
            .as_ref()
            .map(AnyTransform::of::<K>)
            .transpose()?;
        let codec = options.compact_store.then_some(Codec::<K> {
            encode: |object| serde_json::to_vec(object),
            decode: |bytes| serde_json::from_slice(bytes),
        });
        let store = Store::<K>::new(codec);
        let name = options.watcher.name.clone().unwrap_or_else(|| request.path());
        let plan = options
            .checkpoint
            .as_ref()
            .map(|(path, interval)| CheckpointPlan {
                path: path.clone(),
                interval: *interval,
                identity: Identity {
                    server: client.config().cluster_url.to_string(),
                    // Table rows are not the objects: a checkpoint of one does not serve the other.
                    resource: match crate::table::is_table::<K>() {
                        true => format!("{} as Table", request.path()),
                        false => request.path(),
                    },
                    label_selector: request.params().label_selector.clone(),
                    field_selector: request.params().field_selector.clone(),
                },
            });
        let mut status = CheckpointStatus::None;
        let mut watcher_options = options.watcher.clone().deliver_bookmarks(true);
        watcher_options.resource_version = None;
        if let Some(plan) = &plan {
            status = match checkpoint::load::<K>(&plan.path, &plan.identity) {
                Ok(Some(loaded)) => {
                    let objects = loaded.objects.len();
                    {
                        let mut state = store.write();
                        for object in loaded.objects {
                            state.upsert(Arc::new(object), 0);
                        }
                        state.resource_version = Some(loaded.resource_version.clone());
                    }
                    store.set_sync_state(SyncState::Synced);
                    tracing::info!(
                        informer = %name,
                        "loaded checkpoint {} ({objects} objects at resourceVersion {}): watching from it",
                        plan.path.display(),
                        loaded.resource_version
                    );
                    watcher_options = watcher_options.resource_version(loaded.resource_version.clone());
                    CheckpointStatus::Loaded {
                        resource_version: loaded.resource_version,
                        objects,
                    }
                }
                Ok(None) => CheckpointStatus::Missing,
                Err(error) => {
                    tracing::warn!(informer = %name, "{error}; listing afresh");
                    CheckpointStatus::Rejected(Arc::new(error))
                }
            };
        }
        let listing = !matches!(status, CheckpointStatus::Loaded { .. });
        let loaded_rv = store.resource_version();
        let watcher = Watcher::supervise(client, request, watcher_options)?;
        let core = Arc::new(Core {
            store,
            hub: Hub::new(),
            watcher_id: watcher.id(),
            users: AtomicUsize::new(0),
            idle: Notify::new(),
            stop: CancellationToken::new(),
            retired: AtomicBool::new(false),
            linger: options.linger,
            checkpoint_status: Mutex::new(status),
            ended: watch::Sender::new(None),
            registration,
        });
        let user = UserGuard::new(core.clone());
        let task = Task {
            core,
            watcher,
            listing,
            generation: 1,
            atomic: options.atomic_relists,
            buffered: None,
            transform,
            plan,
            saved_rv: loaded_rv,
            name,
        };
        let informer = Informer { user };
        // Subscribed before the task runs, so the subscription's snapshot is the initial state.
        let first = first.map(|options| informer.subscribe_with(options));
        tokio::spawn(task.run());
        Ok((informer, first))
    }
}

impl<K: Object + Send + Sync + 'static> Informer<K> {
    fn core(&self) -> &Core<K> {
        self.user.core()
    }

    pub(crate) fn from_core(core: Arc<Core<K>>) -> Self {
        Informer {
            user: UserGuard::new(core),
        }
    }

    /// The informer's store: cheap to clone, readable from any task.
    pub fn store(&self) -> Store<K> {
        self.core().store.clone()
    }

    /// Subscribes with the default options (a queue of 1024, [`Overflow::Resync`]).
    pub fn subscribe(&self) -> Subscription<K> {
        self.subscribe_with(SubscribeOptions::new())
    }

    /// Subscribes, at any time: the subscription starts with the store's snapshot (each object as
    /// `Added`, then `Synced` if the store is synced) and continues with every change after it.
    pub fn subscribe_with(&self, options: SubscribeOptions) -> Subscription<K> {
        let core = self.core();
        let slot = core.hub.subscribe(&core.store, core.watcher_id, options);
        Subscription::new(self.user.clone(), slot)
    }

    /// Adds (or replaces) the index `name`: `index` gives the values an object is filed under.
    /// Built at once over the objects present, then kept up to date on every change; read it with
    /// [`Store::by_index`].
    pub fn index_by(&self, name: &str, index: impl Fn(&K) -> Vec<String> + Send + Sync + 'static) {
        self.core().store.add_index(name, Arc::new(index));
    }

    /// The id of the informer's watcher (the `from` of its events).
    pub fn id(&self) -> WatcherId {
        self.core().watcher_id
    }

    /// What became of the checkpoint this informer started with.
    pub fn checkpoint_status(&self) -> CheckpointStatus {
        self.core()
            .checkpoint_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the informer is still running.
    pub fn is_running(&self) -> bool {
        self.core().ended.borrow().is_none()
    }

    /// Stops the informer (for every handle and subscriber): the watch ends, the checkpoint is
    /// written one last time, subscribers receive what is queued and then the end. Returns how it
    /// ended: an error if its watch had failed or the last checkpoint could not be written.
    pub async fn stop(&self) -> Result<(), Arc<InformerError>> {
        self.core().stop.cancel();
        self.wait().await
    }

    /// Waits until the informer has ended, and tells how.
    pub async fn wait(&self) -> Result<(), Arc<InformerError>> {
        let mut rx = self.core().ended.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(end) => end.clone().unwrap_or(Ok(())),
            Err(_) => Err(Arc::new(InformerError::Ended)),
        }
    }
}

/// The informer's task: applies the watcher's events to the store and fans them out.
struct Task<K> {
    core: Arc<Core<K>>,
    watcher: WatcherHandle<WatchEvent<K>>,
    /// A (re)list is being applied: its `Added` events mark keys with `generation`.
    listing: bool,
    generation: u64,
    /// `atomic_relists`: a relist after Gone is buffered here and applied at its end.
    atomic: bool,
    buffered: Option<Vec<K>>,
    transform: Option<TransformFn<K>>,
    plan: Option<CheckpointPlan>,
    /// The version of the last checkpoint written (or loaded): nothing to write while unchanged.
    saved_rv: Option<String>,
    name: String,
}

impl<K> Task<K>
where
    K: Object + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    async fn run(mut self) {
        let core = self.core.clone();
        let mut idle_deadline: Option<tokio::time::Instant> = None;
        let mut ticker = self.plan.as_ref().map(|p| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + p.interval, p.interval);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        let ended: Result<(), Arc<InformerError>> = loop {
            if !core.hub.wait_for_room(&core.stop).await {
                break Ok(());
            }
            tokio::select! {
                biased;
                _ = core.stop.cancelled() => break Ok(()),
                _ = core.idle.notified() => {
                    if core.users.load(Ordering::SeqCst) == 0 {
                        idle_deadline = Some(tokio::time::Instant::now() + core.linger);
                    }
                }
                _ = sleep_until(idle_deadline), if idle_deadline.is_some() => {
                    idle_deadline = None;
                    if core.retire() {
                        tracing::debug!(informer = %self.name, "no user left: stopping");
                        break Ok(());
                    }
                }
                _ = tick(&mut ticker), if ticker.is_some() => {
                    if let Err(error) = self.save().await {
                        tracing::warn!(informer = %self.name, "{error}");
                    }
                }
                event = self.watcher.recv() => match event {
                    Some(event) => {
                        if let Some(error) = self.on_event(event) {
                            break Err(error);
                        }
                    }
                    None => break Err(Arc::new(InformerError::Ended)),
                },
            }
        };
        self.watcher.stop().await;
        let ended = match (ended, self.save().await) {
            (Ok(()), Err(error)) => {
                tracing::warn!(informer = %self.name, "{error}");
                Err(Arc::new(InformerError::Checkpoint(error)))
            }
            (ended, _) => ended,
        };
        if !core.store.is_synced() {
            let why = match &ended {
                Err(e) => e.clone(),
                Ok(()) => Arc::new(InformerError::Ended),
            };
            core.store.set_sync_state(SyncState::Ended(why));
        }
        core.retired.store(true, Ordering::SeqCst);
        if let Some(registration) = &core.registration {
            registration.forget();
        }
        core.hub.close();
        core.ended.send_replace(Some(ended));
    }

    /// Writes the checkpoint if there is one, the store is consistent (not mid-relist) and it
    /// changed since the last one.
    async fn save(&mut self) -> Result<(), CheckpointError> {
        let Some(plan) = self.plan.clone() else {
            return Ok(());
        };
        if self.listing {
            return Ok(());
        }
        let (rv, objects) = {
            let state = self.core.store.read();
            (state.resource_version.clone(), state.iter().collect::<Vec<_>>())
        };
        let Some(rv) = rv else { return Ok(()) };
        if self.saved_rv.as_deref() == Some(rv.as_str()) {
            return Ok(());
        }
        let path = plan.path.clone();
        let version = rv.clone();
        let written = tokio::task::spawn_blocking(move || {
            checkpoint::save(&plan.path, &plan.identity, &version, &objects)
        })
        .await;
        match written {
            Ok(Ok(())) => {
                tracing::debug!(informer = %self.name, "checkpoint {} written at resourceVersion {rv}", path.display());
                self.saved_rv = Some(rv);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(join) => Err(CheckpointError::Io {
                path,
                source: std::io::Error::other(join.to_string()),
            }),
        }
    }

    /// Applies one watcher event; `Some` when the watch failed for good.
    fn on_event(&mut self, mut event: WatchEvent<K>) -> Option<Arc<InformerError>> {
        if let Some(transform) = &self.transform {
            // Here, once per event, before anything holds the object.
            if let WatchKind::Added(object) | WatchKind::Modified(object) | WatchKind::Deleted(object) =
                &mut event.kind
            {
                transform(object);
            }
        }
        let core = &*self.core;
        let from = event.from;
        let rv = event.resource_version;
        let generation = self.generation;
        let made = |kind| {
            Change::new(Event {
                from,
                resource_version: rv.clone(),
                kind,
            })
        };
        match event.kind {
            WatchKind::Added(object) if self.listing && self.buffered.is_some() => {
                if let Some(buffer) = self.buffered.as_mut() {
                    buffer.push(object);
                }
            }
            WatchKind::Added(object) if self.listing => {
                core.hub.apply(&core.store, |state| {
                    match state.apply_listed(object, generation) {
                        Listed::Added(new) => vec![made(EventKind::Added(new))],
                        Listed::Modified { old, new } => vec![made(EventKind::Modified { old, new })],
                        Listed::Unchanged => Vec::new(),
                    }
                });
            }
            WatchKind::Added(object) | WatchKind::Modified(object) => {
                core.hub.apply(&core.store, |state| {
                    let new = Arc::new(object);
                    let old = state.upsert(new.clone(), generation);
                    state.resource_version = rv.clone();
                    vec![made(match old {
                        None => EventKind::Added(new),
                        Some(old) => EventKind::Modified { old, new },
                    })]
                });
            }
            WatchKind::Deleted(object) => {
                core.hub.apply(&core.store, |state| {
                    let (namespace, name) = key_of(&object);
                    let held = state.remove(&namespace, &name);
                    state.resource_version = rv.clone();
                    let mut change = made(EventKind::Deleted {
                        last: Arc::new(object),
                        final_state_unknown: false,
                    });
                    change.before = held;
                    vec![change]
                });
            }
            WatchKind::Bookmark => {
                if !self.listing {
                    core.hub.apply(&core.store, |state| {
                        state.resource_version = rv.clone();
                        Vec::new()
                    });
                }
            }
            WatchKind::Synced => {
                let store = &core.store;
                let buffered = self.buffered.take().unwrap_or_default();
                core.hub.apply(store, |state| {
                    // An atomic relist: every listed object now, under the same lock.
                    let mut events: Vec<Change<K>> = Vec::new();
                    for object in buffered {
                        let object_rv = object.resource_version().map(str::to_string);
                        let kind = match state.apply_listed(object, generation) {
                            Listed::Added(new) => EventKind::Added(new),
                            Listed::Modified { old, new } => EventKind::Modified { old, new },
                            Listed::Unchanged => continue,
                        };
                        events.push(Change::new(Event {
                            from,
                            resource_version: object_rv,
                            kind,
                        }));
                    }
                    let swept: Vec<Change<K>> = state
                        .sweep(generation)
                        .into_iter()
                        .map(|last| {
                            made(EventKind::Deleted {
                                last,
                                final_state_unknown: true,
                            })
                        })
                        .collect();
                    if state.relisting {
                        state.relists += 1;
                    }
                    state.synthesized_deletes += swept.len() as u64;
                    if !swept.is_empty() {
                        tracing::info!(
                            informer = %self.name,
                            "the relist did not contain {} objects: reported deleted",
                            swept.len()
                        );
                    }
                    events.extend(swept);
                    state.resource_version = rv.clone();
                    state.relisting = false;
                    // Under the hub's lock: a subscriber joining now sees the store synced.
                    store.set_sync_state(SyncState::Synced);
                    events.push(made(EventKind::Synced));
                    events
                });
                self.listing = false;
            }
            WatchKind::Gone { message } => {
                tracing::info!(informer = %self.name, "410 Gone ({message}): relisting in place");
                self.listing = true;
                self.generation += 1;
                // The store is synced, so this is a relist; a list cut by Gone starts over.
                if self.atomic && core.store.is_synced() {
                    self.buffered = Some(Vec::new());
                }
                core.store.write().relisting = true;
            }
            WatchKind::Failed(error) => return Some(Arc::new(InformerError::Watch(error))),
            WatchKind::Skipped(error) => {
                tracing::warn!(informer = %self.name, "an event was skipped: {error}");
            }
        }
        None
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
