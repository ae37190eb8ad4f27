//! The controller: a [`Runner`] fed by informers. One primary resource, whose store is where
//! reconciles read their object; children it [`owns`](Controller::owns) (mapped to their owner
//! through `ownerReferences`); other resources it [`watches`](Controller::watches) (mapped by a
//! function); optional [`Predicate`]s on the primary's updates; optional leader election.
//!
//! Guarantees (beyond the [`Runner`]'s: never two reconciles of one key at once, a key changed
//! during its reconcile reconciled once more after it, bounded concurrency):
//! - **no reconcile before every source has synced**: the runner starts taking keys only once the
//!   store of every informer (primary, owned, watched) holds its first complete list;
//! - **initial lists and relists at low priority**: a key from an informer's initial list (or a
//!   subscriber's snapshot), from a relist after 410 Gone, or from a delete the informer inferred,
//!   is queued at [`Priority::Low`]; a live change at [`Priority::Normal`];
//! - **predicates on the store's old and new object**: an update of the primary triggers a
//!   reconcile only if the predicate says so on `Modified { old, new }`; no hash cache, no TTL;
//! - **graceful shutdown** ([`Controller::graceful_shutdown_on`]): stop taking keys, let
//!   in-flight reconciles finish up to the deadline, report what was cut;
//! - **a source that fails for good stops the controller**: when an informer ends after it
//!   synced (403, 404...), the controller shuts down gracefully and returns
//!   [`ControllerError::SourceEnded`] instead of reconciling from a store that no longer follows
//!   the server;
//! - **leader election** ([`Controller::leader_elected`]): reconciles run only while the
//!   leadership channel says `Leading`; when it changes, in-flight reconciles are cancelled at
//!   once (the elector changes it at its fence, before the renew deadline runs out, so nothing
//!   acts after that), and a new term starts from the stores' full contents.
//!
//! The informer does not mark which of its events come from a relist (a gap worked around here,
//! not in the informer): a relist is recognised by [`Store::is_relisting`] around the moment the
//! events are taken from the subscription, by a `Synced` that follows them in the same batch, and
//! by `final_state_unknown` deletes. A live change taken together with a relist is queued low too;
//! the order is a hint for latency, never a matter of correctness.

use std::{
    collections::BTreeSet,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::{
    FutureExt, StreamExt,
    future::{BoxFuture, Shared, select_all},
    stream::{self, BoxStream},
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    key::ObjectKey,
    metrics::RuntimeMetrics,
    queue::{Priority, QueueOptions, WorkQueue},
    reconciler::{Action, RunReport, Runner},
};
use crate::{
    ApiResource, Client, Object, Request,
    informer::{EventKind, Informer, InformerError, InformerOptions, Store, Subscription},
    lease::{Election, ElectionConfig, ElectionError, LeaderElector, Leadership, LeaseLock},
    resource::ObjectList,
};

/// Why a controller could not start or stopped early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControllerError {
    /// An informer (primary, owned or watched) could not start.
    #[error("the informer on {resource} could not start")]
    Informer {
        /// The resource's path.
        resource: String,
        /// Why.
        #[source]
        source: InformerError,
    },
    /// An informer ended before its store synced (its watch failed: 403, 404...): the controller
    /// cannot know its world and does not reconcile.
    #[error("the informer on {resource} ended before it synced")]
    NotSynced {
        /// The resource's path.
        resource: String,
        /// Why.
        #[source]
        source: Arc<InformerError>,
    },
    /// An informer ended after it had synced (its watch failed for good: 403 after a permission
    /// was revoked, 404 after its CRD was deleted...): the controller stopped (gracefully) rather
    /// than go on with a store that no longer follows the server.
    #[error("the informer on {resource} ended; the controller stopped")]
    SourceEnded {
        /// The resource's path.
        resource: String,
        /// Why.
        #[source]
        source: Arc<InformerError>,
        /// What the last term did.
        report: RunReport,
    },
    /// The leader election could not start.
    #[error("the leader election could not start")]
    Election(#[from] ElectionError),
}

/// Decides, from the store's old and new object, whether an update of the primary resource is
/// worth a reconcile. Combine with [`or`](Self::or) and [`and`](Self::and). Adds and deletes
/// always pass, and so does an update that sets `deletionTimestamp` (finalizers must run).
///
/// Unlike kube-runtime's predicates, nothing is remembered between events: the informer hands
/// over the store's previous object, so there is no hash cache to expire (kube-rs #1844).
pub struct Predicate<K>(Arc<Compare<K>>);

/// A comparison of an old and a new object.
type Compare<K> = dyn Fn(&K, &K) -> bool + Send + Sync;

impl<K> Clone for Predicate<K> {
    fn clone(&self) -> Self {
        Predicate(self.0.clone())
    }
}

impl<K> std::fmt::Debug for Predicate<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Predicate")
    }
}

impl<K: Object> Predicate<K> {
    /// Any comparison of `old` and `new`.
    pub fn new(changed: impl Fn(&K, &K) -> bool + Send + Sync + 'static) -> Self {
        Predicate(Arc::new(changed))
    }

    /// `metadata.generation` changed: the spec changed, not only the status or the metadata
    /// (controller-runtime's `GenerationChangedPredicate`).
    pub fn generation_changed() -> Self {
        Predicate::new(|old: &K, new: &K| old.meta().generation != new.meta().generation)
    }

    /// `metadata.labels` changed (controller-runtime's `LabelChangedPredicate`).
    pub fn labels_changed() -> Self {
        Predicate::new(|old: &K, new: &K| old.meta().labels != new.meta().labels)
    }

    /// `metadata.annotations` changed (controller-runtime's `AnnotationChangedPredicate`).
    pub fn annotations_changed() -> Self {
        Predicate::new(|old: &K, new: &K| old.meta().annotations != new.meta().annotations)
    }

    /// Passes when either passes.
    pub fn or(self, other: Predicate<K>) -> Self {
        Predicate(Arc::new(move |old: &K, new: &K| {
            (self.0)(old, new) || (other.0)(old, new)
        }))
    }

    /// Passes when both pass.
    pub fn and(self, other: Predicate<K>) -> Self {
        Predicate(Arc::new(move |old: &K, new: &K| {
            (self.0)(old, new) && (other.0)(old, new)
        }))
    }

    /// Whether the update from `old` to `new` passes.
    pub fn passes(&self, old: &K, new: &K) -> bool {
        let deleting = old.meta().deletion_timestamp.is_none() && new.meta().deletion_timestamp.is_some();
        deleting || (self.0)(old, new)
    }
}

type Mapper<C> = Arc<dyn Fn(&C) -> Vec<ObjectKey> + Send + Sync>;
type Triggers = BoxStream<'static, (ObjectKey, Priority)>;

/// One informer feeding the controller: how it subscribes and how its sync is awaited.
trait Source: Send + Sync {
    fn resource(&self) -> String;
    fn triggers(&self, stop: CancellationToken) -> Triggers;
    fn wait_synced(&self) -> BoxFuture<'static, Result<(), Arc<InformerError>>>;
    /// Completes when the informer has ended (its watch failed for good, or it was stopped).
    fn ended(&self) -> BoxFuture<'static, Arc<InformerError>>;
}

struct InformerSource<C: Object + Send + Sync + 'static> {
    resource: String,
    informer: Informer<C>,
    map: Mapper<C>,
    predicate: Option<Predicate<C>>,
}

impl<C> Source for InformerSource<C>
where
    C: Object + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn resource(&self) -> String {
        self.resource.clone()
    }

    fn triggers(&self, stop: CancellationToken) -> Triggers {
        let state = Feed {
            subscription: self.informer.subscribe(),
            store: self.informer.store(),
            map: self.map.clone(),
            predicate: self.predicate.clone(),
            synced: false,
        };
        stream::unfold(state, |mut state| async move {
            let keys = state.next().await?;
            Some((stream::iter(keys), state))
        })
        .flatten()
        .take_until(stop.cancelled_owned())
        .boxed()
    }

    fn wait_synced(&self) -> BoxFuture<'static, Result<(), Arc<InformerError>>> {
        let store = self.informer.store();
        async move { store.wait_synced().await }.boxed()
    }

    fn ended(&self) -> BoxFuture<'static, Arc<InformerError>> {
        let informer = self.informer.clone();
        async move {
            match informer.wait().await {
                Err(error) => error,
                Ok(()) => Arc::new(InformerError::Ended),
            }
        }
        .boxed()
    }
}

/// One subscription turned into keys.
struct Feed<C: Object + Send + Sync + 'static> {
    subscription: Subscription<C>,
    store: Store<C>,
    map: Mapper<C>,
    predicate: Option<Predicate<C>>,
    /// The subscription's first `Synced` went by: later events are live, unless a relist.
    synced: bool,
}

impl<C: Object + Send + Sync + 'static> Feed<C> {
    /// The keys of the next events that trigger any; `None` when the informer ended.
    ///
    /// Events are taken in batches (one awaited, then every one already queued) so that a relist
    /// is recognised even when it was applied whole before this feed looked: an event is from a
    /// (re)list if the store was relisting just before or just after the batch was taken, or if a
    /// `Synced` follows it in the batch.
    async fn next(&mut self) -> Option<Vec<(ObjectKey, Priority)>> {
        loop {
            let relisting_before = self.store.is_relisting();
            let first = self.subscription.recv().await?;
            let mut batch = vec![first];
            while let Some(event) = self.subscription.try_recv() {
                batch.push(event);
            }
            let relisting = relisting_before || self.store.is_relisting();
            let last_sync = batch.iter().rposition(|e| matches!(e.kind, EventKind::Synced));
            let mut keys: Vec<(ObjectKey, Priority)> = Vec::new();
            for (i, event) in batch.into_iter().enumerate() {
                let listed = !self.synced
                    || relisting
                    || last_sync.is_some_and(|s| i < s)
                    || event.is_final_state_unknown();
                let priority = if listed { Priority::Low } else { Priority::Normal };
                let mut these: BTreeSet<ObjectKey> = BTreeSet::new();
                match &event.kind {
                    EventKind::Synced => {
                        self.synced = true;
                        continue;
                    }
                    EventKind::Added(object) => these.extend((self.map)(object)),
                    EventKind::Modified { old, new } => {
                        if let Some(predicate) = &self.predicate
                            && !predicate.passes(old, new)
                        {
                            continue;
                        }
                        // Both: a child moved from one owner to another triggers both.
                        these.extend((self.map)(old));
                        these.extend((self.map)(new));
                    }
                    EventKind::Deleted { last, .. } => these.extend((self.map)(last)),
                }
                keys.extend(these.into_iter().map(|k| (k, priority)));
            }
            if !keys.is_empty() {
                return Some(keys);
            }
        }
    }
}

/// The keys of the owners of kind `owner` named in `child`'s `ownerReferences` with
/// `controller: true` (as controller-runtime's `EnqueueRequestForOwner` with `OnlyControllerOwner`).
fn controller_owners(child: &ObjectMeta, owner: &ApiResource) -> Vec<ObjectKey> {
    let Some(references) = &child.owner_references else {
        return Vec::new();
    };
    references
        .iter()
        .filter(|r| r.controller == Some(true) && r.kind == owner.kind && r.api_version == owner.api_version)
        .map(|r| match (&child.namespace, owner.namespaced) {
            (Some(ns), true) => ObjectKey::namespaced(ns.clone(), r.name.clone()),
            _ => ObjectKey::cluster(r.name.clone()),
        })
        .collect()
}

/// Where leadership comes from, when the controller is leader-elected.
struct Leader {
    leadership: watch::Receiver<Leadership>,
    /// The election the controller started itself (kept alive while it runs).
    _election: Option<Election>,
}

/// A controller of the resource `K`. See the [module documentation](self).
pub struct Controller<K: Object + Send + Sync + 'static> {
    client: Client,
    primary: Informer<K>,
    sources: Vec<Box<dyn Source>>,
    predicate: Option<Predicate<K>>,
    queue_options: Box<dyn Fn() -> QueueOptions + Send + Sync>,
    shutdown_deadline: Duration,
    shutdown: Option<Shared<BoxFuture<'static, ()>>>,
    leader: Option<Leader>,
    metrics: Option<(RuntimeMetrics, String)>,
    informer_options: InformerOptions,
}

impl<K: Object + Send + Sync + 'static> std::fmt::Debug for Controller<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("primary", &self.primary)
            .field("sources", &self.sources.len())
            .field("shutdown_deadline", &self.shutdown_deadline)
            .finish_non_exhaustive()
    }
}

impl<K> Controller<K>
where
    K: Object + k8s_openapi::Resource + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// A controller of the objects `request` lists (its namespace and selectors are what is
    /// watched and cached). Starts the primary informer now; must be called inside a Tokio
    /// runtime.
    pub fn new(client: Client, request: Request<ObjectList<K>>) -> Result<Self, ControllerError> {
        Self::with_informer_options(client, request, InformerOptions::new())
    }

    /// As [`new`](Self::new), with these options for the primary informer and every informer
    /// [`owns`](Self::owns) and [`watches`](Self::watches) start later.
    pub fn with_informer_options(
        client: Client,
        request: Request<ObjectList<K>>,
        options: InformerOptions,
    ) -> Result<Self, ControllerError> {
        let primary = start_informer(&client, request, &options)?;
        Ok(Self::from_informer(client, primary).informer_options(options))
    }

    /// A controller of the objects of a running informer (shared, for example, through
    /// [`Informers`](crate::informer::Informers)).
    pub fn from_informer(client: Client, primary: Informer<K>) -> Self {
        Controller {
            client,
            primary,
            sources: Vec::new(),
            predicate: None,
            queue_options: Box::new(QueueOptions::default),
            shutdown_deadline: Duration::from_secs(30),
            shutdown: None,
            leader: None,
            metrics: None,
            informer_options: InformerOptions::new(),
        }
    }

    fn informer_options(mut self, options: InformerOptions) -> Self {
        self.informer_options = options;
        self
    }

    /// The primary informer's store: what reconciles read, and what a reconcile may consult.
    pub fn store(&self) -> Store<K> {
        self.primary.store()
    }

    /// The client the controller was made with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Also reconciles an object when one of its children (the objects `request` lists) changes:
    /// a child maps to the owners of kind `K` named in its `ownerReferences` with
    /// `controller: true`; on an update, the owners of both the old and the new child.
    pub fn owns<C>(self, request: Request<ObjectList<C>>) -> Result<Self, ControllerError>
    where
        C: Object + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let owner = ApiResource::of::<K>();
        self.watches(request, move |child: &C| controller_owners(child.meta(), &owner))
    }

    /// Also reconciles the keys `mapper` returns for any object `request` lists when it changes
    /// (on an update, the keys of the old and of the new object).
    pub fn watches<O>(
        mut self,
        request: Request<ObjectList<O>>,
        mapper: impl Fn(&O) -> Vec<ObjectKey> + Send + Sync + 'static,
    ) -> Result<Self, ControllerError>
    where
        O: Object + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let resource = request.path();
        let informer = start_informer(&self.client, request, &self.informer_options)?;
        self.sources.push(Box::new(InformerSource {
            resource,
            informer,
            map: Arc::new(mapper),
            predicate: None,
        }));
        Ok(self)
    }

    /// Reconciles on an update of the primary only if `predicate` passes on the store's old and
    /// new object. Adds, deletes and the start of a deletion always trigger.
    pub fn with_predicate(mut self, predicate: Predicate<K>) -> Self {
        self.predicate = Some(predicate);
        self
    }

    /// How the work queue is set up (workers, rate limiter); called for each leadership term,
    /// since every term starts with a fresh queue. Default: [`QueueOptions::default`].
    pub fn queue_options(mut self, options: impl Fn() -> QueueOptions + Send + Sync + 'static) -> Self {
        self.queue_options = Box::new(options);
        self
    }

    /// How long in-flight reconciles may take to finish once the shutdown begins (default 30 s).
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.shutdown_deadline = deadline;
        self
    }

    /// Shuts down gracefully when `signal` completes: no new keys, in-flight reconciles finish
    /// up to the [deadline](Self::shutdown_deadline), the rest are cut and reported.
    pub fn graceful_shutdown_on(mut self, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        self.shutdown = Some(signal.boxed().shared());
        self
    }

    /// Records queue and reconcile metrics under the label `controller = name`, and the primary
    /// informer's under `informer = name`.
    pub fn metrics(mut self, metrics: RuntimeMetrics, name: &str) -> Self {
        self.metrics = Some((metrics, name.to_string()));
        self
    }

    /// Reconciles only while `leadership` (from [`Election::leadership`]) is `Leading`. When it
    /// changes, in-flight reconciles are cancelled at once; when leadership comes back, every key
    /// of the stores is reconciled again (at low priority). The informers keep running while
    /// following, so a new leader starts from warm stores (no list).
    pub fn leader_elected(mut self, leadership: watch::Receiver<Leadership>) -> Self {
        self.leader = Some(Leader {
            leadership,
            _election: None,
        });
        self
    }

    /// Starts a leader election on `lock` with the controller's client and reconciles only while
    /// it leads (see [`leader_elected`](Self::leader_elected)). Set
    /// [`rejoin_after_loss`](ElectionConfig::rejoin_after_loss) to contend again after a loss.
    pub fn leader_elected_on(
        mut self,
        lock: LeaseLock,
        config: ElectionConfig,
    ) -> Result<Self, ControllerError> {
        let election = LeaderElector::new(&self.client, lock, config)?.start();
        self.leader = Some(Leader {
            leadership: election.leadership(),
            _election: Some(election),
        });
        Ok(self)
    }

    /// Runs until the shutdown signal (or forever without one): reconciles with `reconcile`,
    /// lets `error_policy` decide after an error ([`Action::backoff`] for the per-key backoff),
    /// passes `ctx` to both. Reports the reconciles of every term and what the last shutdown cut.
    pub async fn run<Ctx, E, R, RFut, P>(
        mut self,
        reconcile: R,
        error_policy: P,
        ctx: Arc<Ctx>,
    ) -> Result<RunReport, ControllerError>
    where
        Ctx: Send + Sync + 'static,
        R: Fn(Arc<K>, Arc<Ctx>) -> RFut + Send + Sync + 'static,
        RFut: Future<Output = Result<Action, E>> + Send + 'static,
        P: Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + Sync + 'static,
        E: Send + 'static,
    {
        let mut sources: Vec<Box<dyn Source>> = vec![Box::new(InformerSource {
            resource: ApiResource::of::<K>().plural,
            informer: self.primary.clone(),
            map: Arc::new(|object: &K| vec![ObjectKey::of(object)]),
            predicate: self.predicate.clone(),
        })];
        sources.append(&mut self.sources);
        let sources: Arc<Vec<Box<dyn Source>>> = Arc::new(sources);
        let reconcile = Arc::new(reconcile);
        let error_policy = Arc::new(error_policy);
        let shutdown = self
            .shutdown
            .take()
            .unwrap_or_else(|| std::future::pending().boxed().shared());
        let mut total = RunReport::default();
        let mut leader = self.leader.take();
        // The primary informer's series, under the controller's name, for the whole run.
        let _informer_metrics = self
            .metrics
            .as_ref()
            .map(|(metrics, name)| metrics.informer(name, &self.primary.store()));
        loop {
            // Wait for leadership (or the end).
            if let Some(leader) = &mut leader {
                // A closed channel keeps its last value: an ended election is not leadership.
                if leader.leadership.has_changed().is_err() {
                    tracing::warn!("the leader election ended: not reconciling any more");
                    break;
                }
                let leading = leader.leadership.wait_for(Leadership::is_leading);
                tokio::select! {
                    () = shutdown.clone() => break,
                    leading = leading => if leading.is_err() {
                        tracing::warn!("the leader election ended: not reconciling any more");
                        break;
                    },
                }
                tracing::info!("leading: reconciling");
            }
            let lost = lost_leadership(leader.as_ref().map(|l| l.leadership.clone()));
            let term = self.term(&sources, &reconcile, &error_policy, &ctx, shutdown.clone(), lost);
            let (report, lost) = term.await?;
            total.reconciles += report.reconciles;
            total.errors += report.errors;
            total.panics += report.panics;
            total.cut = report.cut;
            total.not_started = report.not_started;
            if !lost {
                break;
            }
            tracing::warn!(cut = ?total.cut, "leadership lost: in-flight reconciles cancelled");
            if shutdown.peek().is_some() {
                break;
            }
        }
        Ok(total)
    }

    /// One term: fresh subscriptions and a fresh queue; waits for every source to sync, then runs
    /// until the shutdown (graceful) or the loss of leadership (immediate). Tells whether the term
    /// ended by the loss.
    #[allow(clippy::too_many_arguments)]
    async fn term<Ctx, E, R, RFut, P>(
        &self,
        sources: &Arc<Vec<Box<dyn Source>>>,
        reconcile: &Arc<R>,
        error_policy: &Arc<P>,
        ctx: &Arc<Ctx>,
        shutdown: Shared<BoxFuture<'static, ()>>,
        lost: BoxFuture<'static, ()>,
    ) -> Result<(RunReport, bool), ControllerError>
    where
        Ctx: Send + Sync + 'static,
        R: Fn(Arc<K>, Arc<Ctx>) -> RFut + Send + Sync + 'static,
        RFut: Future<Output = Result<Action, E>> + Send + 'static,
        P: Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + Sync + 'static,
        E: Send + 'static,
    {
        let stop = CancellationToken::new();
        let _stop_feeds = stop.clone().drop_guard();
        // Subscribe first: what changes while the stores sync is held in the subscriptions.
        let triggers = stream::select_all(sources.iter().map(|s| s.triggers(stop.clone())));
        let lost = lost.shared();
        // No reconcile before every source has synced.
        for source in sources.iter() {
            tokio::select! {
                () = shutdown.clone() => return Ok((RunReport::default(), false)),
                () = lost.clone() => return Ok((RunReport::default(), true)),
                synced = source.wait_synced() => synced.map_err(|source_error| ControllerError::NotSynced {
                    resource: source.resource(),
                    source: source_error,
                })?,
            }
        }
        let queue = WorkQueue::new((self.queue_options)());
        let mut runner = Runner::new(queue, store_source(self.primary.store()), ctx.clone())
            .shutdown_deadline(self.shutdown_deadline);
        if let Some((metrics, name)) = &self.metrics {
            let controller_metrics = metrics.controller(name, runner.queue());
            runner = runner.metrics(controller_metrics);
        }
        /// Why the term ended.
        enum End {
            Shutdown,
            Lost,
            SourceEnded(String, Arc<InformerError>),
        }
        let why: Arc<Mutex<Option<End>>> = Arc::default();
        let failed = select_all(sources.iter().map(|source| {
            let resource = source.resource();
            source.ended().map(move |error| End::SourceEnded(resource, error))
        }));
        let ended = {
            let why = why.clone();
            let graceful = self.shutdown_deadline;
            async move {
                let end = select_all([
                    shutdown.map(|()| End::Shutdown).boxed(),
                    lost.map(|()| End::Lost).boxed(),
                    failed.map(|(end, _, _)| end).boxed(),
                ])
                .await
                .0;
                let deadline = if matches!(end, End::Lost) {
                    Duration::ZERO
                } else {
                    graceful
                };
                *why.lock().unwrap_or_else(|e| e.into_inner()) = Some(end);
                deadline
            }
        };
        let reconcile = reconcile.clone();
        let error_policy = error_policy.clone();
        let report = runner
            .run_until(
                triggers,
                move |object, ctx| reconcile(object, ctx),
                move |object, error: &E, ctx| error_policy(object, error, ctx),
                ended,
            )
            .await;
        let end = why.lock().unwrap_or_else(|e| e.into_inner()).take();
        match end {
            Some(End::SourceEnded(resource, source)) => {
                tracing::warn!(%resource, cut = ?report.cut, "an informer ended: the controller stops");
                Err(ControllerError::SourceEnded {
                    resource,
                    source,
                    report,
                })
            }
            Some(End::Lost) => Ok((report, true)),
            Some(End::Shutdown) | None => Ok((report, false)),
        }
    }
}

/// Completes when `leadership` stops saying `Leading` (never without an election).
fn lost_leadership(leadership: Option<watch::Receiver<Leadership>>) -> BoxFuture<'static, ()> {
    match leadership {
        None => std::future::pending().boxed(),
        Some(mut rx) => async move {
            // A closed channel (the election ended) is a loss too.
            let _ = rx.wait_for(|l| !l.is_leading()).await;
        }
        .boxed(),
    }
}

/// The primary store as the runner's object source.
fn store_source<K: Object + Send + Sync + 'static>(
    store: Store<K>,
) -> impl Fn(&ObjectKey) -> Option<Arc<K>> + Send + Sync + 'static {
    move |key: &ObjectKey| store.get(key.namespace.as_deref(), &key.name)
}

fn start_informer<C>(
    client: &Client,
    request: Request<ObjectList<C>>,
    options: &InformerOptions,
) -> Result<Informer<C>, ControllerError>
where
    C: Object + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let resource = request.path();
    Informer::start(client.clone(), request, options.clone())
        .map_err(|source| ControllerError::Informer { resource, source })
}
