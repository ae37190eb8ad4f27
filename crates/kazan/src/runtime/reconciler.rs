//! The reconcile loop over the [`WorkQueue`]: keys come in from a stream of triggers, objects are
//! read from an [`ObjectSource`] when their key is handed out (so a reconcile always sees the
//! object as it is now, never the one from the event that queued it), and the result decides
//! when the key comes back.
//!
//! Guarantees (each from the queue): never two reconciles of one key at once; a key triggered
//! during its reconcile is reconciled once more afterwards, however many triggers came; at most
//! `workers` reconciles at once; graceful shutdown that reports what was cut.
//!
//! # How the [`Controller`](super::Controller) sits on the informer
//! A `Controller<K>` is a thin layer over [`Runner`]:
//! - the primary informer's store is the [`ObjectSource<K>`] (`store.get(key)`);
//! - its changes map to triggers: objects from the initial list and from relists as
//!   `(key, Priority::Low)`, live adds, updates and deletes as `(key, Priority::Normal)`;
//! - `owns::<C>()` adds an informer on `C` whose changes map each child to the keys of its
//!   `ownerReferences` with `controller: true` and the primary's kind (old and new object on an
//!   update, so a re-parented child triggers both owners);
//! - `watches::<O>(mapper)` adds an informer on `O` and triggers the keys `mapper(&obj)` returns;
//! - the triggers of all sources are merged into the one stream `run` takes, and `run` starts
//!   only once every informer has synced;
//! - predicates compare the store's old and new object before a trigger is sent (no hash cache);
//! - a lost leadership ends the run with [`Runner::run_until`] and a zero deadline.

use std::{
    future::Future, marker::PhantomData, panic::AssertUnwindSafe, pin::pin, sync::Arc, time::Duration,
};

use futures_util::{FutureExt, Stream, StreamExt};
use tokio::{
    task::{AbortHandle, JoinSet},
    time::Instant,
};

use super::{
    key::ObjectKey,
    metrics::ControllerMetrics,
    queue::{Lease, Priority, WorkQueue},
};

/// What to do with a key after its reconcile (or after its error, from the error policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action(ActionKind);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActionKind {
    Requeue(Duration),
    AwaitChange,
    Backoff,
}

impl Action {
    /// Reconcile the key again after `after`, or earlier if it changes.
    pub fn requeue(after: Duration) -> Self {
        Action(ActionKind::Requeue(after))
    }

    /// Reconcile the key again only when it changes.
    pub fn await_change() -> Self {
        Action(ActionKind::AwaitChange)
    }

    /// Retry after the queue's per-key backoff (exponential in the failures in a row, counting
    /// only failures that waited for their backoff): the usual answer of an error policy.
    pub fn backoff() -> Self {
        Action(ActionKind::Backoff)
    }

    /// The delay asked by [`requeue`](Self::requeue), if this is one.
    pub fn requeue_after(&self) -> Option<Duration> {
        match self.0 {
            ActionKind::Requeue(d) => Some(d),
            _ => None,
        }
    }
}

/// Where the runner reads the object for a key when the key is handed out: the informer's store,
/// or anything that can answer "this object now".
pub trait ObjectSource<K>: Send + Sync + 'static {
    /// The object for `key` now, or `None` if there is none (deleted or never seen): its key is
    /// then dropped without a reconcile.
    fn object(&self, key: &ObjectKey) -> Option<Arc<K>>;
}

impl<K, F> ObjectSource<K> for F
where
    F: Fn(&ObjectKey) -> Option<Arc<K>> + Send + Sync + 'static,
{
    fn object(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self(key)
    }
}

/// What a [`Runner::run`] did, reported when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunReport {
    /// Reconciles that returned (successes and errors).
    pub reconciles: u64,
    /// Reconciles that returned an error.
    pub errors: u64,
    /// Reconciles that panicked (retried after the backoff).
    pub panics: u64,
    /// Keys whose reconcile was still running at the shutdown deadline and was cancelled.
    pub cut: Vec<ObjectKey>,
    /// Keys waiting in the queue at shutdown, never started.
    pub not_started: usize,
}

/// Runs reconciles of keys from a [`WorkQueue`]. See the [module documentation](self).
pub struct Runner<K, S, Ctx> {
    queue: WorkQueue,
    source: Arc<S>,
    ctx: Arc<Ctx>,
    shutdown_deadline: Duration,
    metrics: Option<Arc<ControllerMetrics>>,
    _object: PhantomData<fn() -> K>,
}

impl<K, S, Ctx> std::fmt::Debug for Runner<K, S, Ctx> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("queue", &self.queue)
            .field("shutdown_deadline", &self.shutdown_deadline)
            .finish_non_exhaustive()
    }
}

/// Counts kept while the runner runs.
#[derive(Debug, Default)]
struct Tally {
    reconciles: u64,
    errors: u64,
    panics: u64,
}

/// How one reconcile ended.
enum Ended {
    Ok,
    Err,
    Panicked,
    NoObject,
}

impl<K, S, Ctx> Runner<K, S, Ctx>
where
    K: Send + Sync + 'static,
    S: ObjectSource<K>,
    Ctx: Send + Sync + 'static,
{
    /// A runner over `queue` (its options bound the concurrent reconciles), reading objects from
    /// `source`, passing `ctx` to every reconcile. The shutdown deadline is 30 seconds.
    pub fn new(queue: WorkQueue, source: S, ctx: Arc<Ctx>) -> Self {
        Runner {
            queue,
            source: Arc::new(source),
            ctx,
            shutdown_deadline: Duration::from_secs(30),
            metrics: None,
            _object: PhantomData,
        }
    }

    /// How long in-flight reconciles may take to finish once shutdown begins.
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.shutdown_deadline = deadline;
        self
    }

    /// Records every reconcile's outcome and duration in these metrics.
    pub fn metrics(mut self, metrics: ControllerMetrics) -> Self {
        self.metrics = Some(Arc::new(metrics));
        self
    }

    /// The queue, for its stats and for adding keys directly.
    pub fn queue(&self) -> &WorkQueue {
        &self.queue
    }

    /// Reconciles keys from `triggers` until `shutdown` completes, then lets in-flight reconciles
    /// finish up to the deadline, cancels the rest, and reports.
    ///
    /// `reconcile` gets the object as the source has it when its key is handed out; its
    /// `Ok(action)` resets the key's backoff and applies the action. On `Err`, `error_policy`
    /// decides ([`Action::backoff`] for the per-key backoff; a requeue or await-change keeps the
    /// failure count for later). A panic counts as an error with the backoff.
    pub async fn run<E, T, R, RFut, P>(
        self,
        triggers: T,
        reconcile: R,
        error_policy: P,
        shutdown: impl Future<Output = ()>,
    ) -> RunReport
    where
        T: Stream<Item = (ObjectKey, Priority)> + Send + 'static,
        R: Fn(Arc<K>, Arc<Ctx>) -> RFut + Send + Sync + 'static,
        RFut: Future<Output = Result<Action, E>> + Send + 'static,
        P: Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + Sync + 'static,
        E: Send + 'static,
    {
        let deadline = self.shutdown_deadline;
        self.run_until(triggers, reconcile, error_policy, async move {
            shutdown.await;
            deadline
        })
        .await
    }

    /// As [`run`](Self::run), but the shutdown future tells how long in-flight reconciles may
    /// still take: `Duration::ZERO` cancels them at once (a controller that lost its leadership
    /// must stop acting now, not after a grace period).
    pub async fn run_until<E, T, R, RFut, P>(
        self,
        triggers: T,
        reconcile: R,
        error_policy: P,
        shutdown: impl Future<Output = Duration>,
    ) -> RunReport
    where
        T: Stream<Item = (ObjectKey, Priority)> + Send + 'static,
        R: Fn(Arc<K>, Arc<Ctx>) -> RFut + Send + Sync + 'static,
        RFut: Future<Output = Result<Action, E>> + Send + 'static,
        P: Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + Sync + 'static,
        E: Send + 'static,
    {
        let reconcile = Arc::new(reconcile);
        let error_policy = Arc::new(error_policy);
        let feeder = {
            let queue = self.queue.clone();
            tokio::spawn(async move {
                let mut triggers = pin!(triggers);
                while let Some((key, priority)) = triggers.next().await {
                    queue.add_with(key, priority);
                }
            })
        };
        let mut tasks: JoinSet<Ended> = JoinSet::new();
        // Which task reconciles which key, to cancel exactly the ones cut at shutdown.
        let mut running: Vec<(ObjectKey, AbortHandle)> = Vec::new();
        let mut tally = Tally::default();
        let mut shutdown = pin!(shutdown);
        let mut deadline = self.shutdown_deadline;
        loop {
            tokio::select! {
                d = &mut shutdown => {
                    deadline = d;
                    break;
                }
                lease = self.queue.next() => match lease {
                    Some(lease) => {
                        let key = lease.key().clone();
                        let handle = tasks.spawn(reconcile_one(
                            lease,
                            self.source.clone(),
                            self.ctx.clone(),
                            reconcile.clone(),
                            error_policy.clone(),
                            self.metrics.clone(),
                        ));
                        running.retain(|(_, h)| !h.is_finished());
                        running.push((key, handle));
                    }
                    None => break,
                },
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => tally.count(joined),
            }
        }
        feeder.abort();
        // Stop handing out keys; count what finishes while the queue waits for the leases.
        let report = {
            let mut wait = pin!(self.queue.shutdown(deadline));
            loop {
                tokio::select! {
                    report = &mut wait => break report,
                    Some(joined) = tasks.join_next(), if !tasks.is_empty() => tally.count(joined),
                }
            }
        };
        // The reconciles still running at the deadline were cut: cancel them (their leases end
        // when dropped); the others have ended their leases and are returning.
        for (key, handle) in &running {
            if report.cut.contains(key) {
                handle.abort();
            }
        }
        while let Some(joined) = tasks.join_next().await {
            tally.count(joined);
        }
        RunReport {
            reconciles: tally.reconciles,
            errors: tally.errors,
            panics: tally.panics,
            cut: report.cut,
            not_started: report.not_started,
        }
    }
}

impl Tally {
    fn count(&mut self, joined: Result<Ended, tokio::task::JoinError>) {
        match joined {
            Ok(Ended::Ok) => self.reconciles += 1,
            Ok(Ended::Err) => {
                self.reconciles += 1;
                self.errors += 1;
            }
            Ok(Ended::Panicked) => self.panics += 1,
            Ok(Ended::NoObject) | Err(_) => {}
        }
    }
}

async fn reconcile_one<K, Ctx, E, S, R, RFut, P>(
    lease: Lease,
    source: Arc<S>,
    ctx: Arc<Ctx>,
    reconcile: Arc<R>,
    error_policy: Arc<P>,
    metrics: Option<Arc<ControllerMetrics>>,
) -> Ended
where
    S: ObjectSource<K>,
    R: Fn(Arc<K>, Arc<Ctx>) -> RFut,
    RFut: Future<Output = Result<Action, E>>,
    P: Fn(Arc<K>, &E, Arc<Ctx>) -> Action,
{
    let Some(object) = source.object(lease.key()) else {
        lease.forget();
        return Ended::NoObject;
    };
    let started = Instant::now();
    let outcome = AssertUnwindSafe(reconcile(object.clone(), ctx.clone()))
        .catch_unwind()
        .await;
    if let Some(metrics) = &metrics {
        metrics.record(started.elapsed(), !matches!(outcome, Ok(Ok(_))));
    }
    match outcome {
        Ok(Ok(action)) => {
            apply(lease, action, true);
            Ended::Ok
        }
        Ok(Err(error)) => {
            let action = error_policy(object, &error, ctx);
            apply(lease, action, false);
            Ended::Err
        }
        Err(_panic) => {
            tracing::warn!(key = %lease.key(), "reconcile panicked; retrying after the backoff");
            lease.retry();
            Ended::Panicked
        }
    }
}

/// Ends the lease as the action says; a success first resets the key's backoff.
fn apply(lease: Lease, action: Action, success: bool) {
    match (action.0, success) {
        (ActionKind::Backoff, _) => {
            lease.retry();
        }
        (ActionKind::AwaitChange, true) => lease.forget(),
        (ActionKind::AwaitChange, false) => lease.done(),
        (ActionKind::Requeue(after), true) => lease.forget_and_requeue_after(after),
        (ActionKind::Requeue(after), false) => lease.requeue_after(after),
    }
}
