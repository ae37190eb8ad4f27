//! Controllers: [`Controller`] (reconcile loops on informers, with owned and watched resources,
//! predicates and leader election), and its building blocks: a work queue with per-key backoff
//! and priorities, a runner that reconciles keys from it, a finalizer helper, an event recorder
//! and `await_condition`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::{sync::Arc, time::Duration};
//! use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
//! use kazan::{Client, Request, runtime::{Action, Controller, Predicate}};
//!
//! let client = Client::try_default().await?;
//! let report = Controller::new(client.clone(), Request::list::<Deployment>().namespace("web"))?
//!     .owns(Request::list::<ConfigMap>().namespace("web"))?
//!     .with_predicate(Predicate::generation_changed().or(Predicate::labels_changed()))
//!     .graceful_shutdown_on(async { tokio::signal::ctrl_c().await.ok(); })
//!     .run(
//!         |deployment: Arc<Deployment>, client: Arc<Client>| async move {
//!             // Bring the world in line with `deployment` (read from the informer's store).
//!             Ok::<_, kazan::Error>(Action::requeue(Duration::from_secs(300)))
//!         },
//!         |_deployment, _error, _client| Action::backoff(),
//!         Arc::new(client),
//!     )
//!     .await?;
//! println!("stopped after {} reconciles; cut short: {:?}", report.reconciles, report.cut);
//! # Ok(()) }
//! ```
//!
//! A complete operator (custom resource, owned ConfigMap, status conditions, finalizer) is
//! `examples/operator/` in this crate.
//!
//! The pieces and what they guarantee:
//! - [`controller`]: a [`Runner`] fed by informers; no reconcile before every source has synced;
//!   initial-list and relist keys at low priority; predicates on the store's old and new object;
//!   graceful shutdown; leader election that cancels in-flight reconciles when leadership ends.
//! - [`queue`]: keys deduplicated; never two leases of one key at once, and a key added during
//!   its lease handed out once more afterwards; per-key exponential backoff (5 ms doubling to
//!   1,000 s) plus an overall token bucket (10/s, burst 100), both replaceable through
//!   [`RateLimiter`]; a failure counts toward the backoff only if its attempt had waited for it
//!   (client-go's flaw kubernetes/kubernetes#132805 avoided); initial-list keys after live
//!   changes; bounded workers; graceful shutdown reporting what was cut.
//! - [`reconciler`]: runs `reconcile(object, ctx) -> Result<Action, E>` and
//!   `error_policy(object, error, ctx) -> Action` over the queue, fed by a stream of keys and
//!   reading objects from an [`ObjectSource`] (the informer's store, in a [`Controller`]).
//! - [`finalizer`]: add the finalizer before the first reconcile, clean up on deletion, remove it
//!   after; every write guarded by the object's resourceVersion.
//! - [`events`]: an `events.k8s.io/v1` Event recorder with series aggregation of repeats.
//! - [`wait`]: [`await_condition`] on a watch from a known version.
//! - [`metrics`]: queue and reconcile metrics in a `prometheus-client` registry; a controller's
//!   series go away with it.
//!
//! ```no_run
//! # async fn demo() {
//! use std::{collections::HashMap, sync::{Arc, Mutex}, time::Duration};
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kazan::runtime::{Action, ObjectKey, Priority, QueueOptions, Runner, WorkQueue};
//!
//! // Until the informer's store can be plugged in, any map of objects is a source.
//! let objects: Arc<Mutex<HashMap<ObjectKey, Arc<ConfigMap>>>> = Arc::default();
//! let source = {
//!     let objects = objects.clone();
//!     move |key: &ObjectKey| objects.lock().ok()?.get(key).cloned()
//! };
//! let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(ObjectKey, Priority)>();
//! let triggers = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
//!
//! let runner = Runner::new(WorkQueue::new(QueueOptions::default().workers(4)), source, Arc::new(()));
//! tx.send((ObjectKey::namespaced("default", "settings"), Priority::Normal)).ok();
//! let report = runner
//!     .run(
//!         triggers,
//!         |cm: Arc<ConfigMap>, _ctx: Arc<()>| async move {
//!             println!("reconciling {:?}", cm.metadata.name);
//!             Ok::<_, std::io::Error>(Action::requeue(Duration::from_secs(300)))
//!         },
//!         |_cm, _err, _ctx| Action::backoff(),
//!         async { tokio::signal::ctrl_c().await.ok(); },
//!     )
//!     .await;
//! println!("stopped; cut short: {:?}", report.cut);
//! # }
//! ```
//!
//! # Coming from kube-runtime
//! | kube-runtime | kazan |
//! |---|---|
//! | `Controller::new(api, watcher::Config)` | [`Controller::new`]`(client, Request::list::<K>())` (or [`Controller::from_informer`] to share an informer) |
//! | `.owns(api, cfg)` / `.watches(api, cfg, mapper)` | [`Controller::owns`]`(request)` / [`Controller::watches`]`(request, mapper)`; `mapper` returns [`ObjectKey`]s |
//! | `.run(reconcile, error_policy, ctx)`, `Action::requeue` / `await_change` | [`Controller::run`]`(reconcile, error_policy, ctx)`, the same [`Action`]s plus [`Action::backoff`] |
//! | `.graceful_shutdown_on(fut)` | [`Controller::graceful_shutdown_on`]`(fut)` and [`Controller::shutdown_deadline`]; the [`RunReport`] says what was cut |
//! | `predicates::generation` + `predicate_filter` | [`Controller::with_predicate`]`(`[`Predicate::generation_changed`]`())`, combinable with `or` / `and` |
//! | `reflector(writer, watcher)`, `Store` | [`crate::informer::Informer`] and [`crate::informer::Store`] ([`Controller::store`]) |
//! | `watcher(api, cfg)` | [`crate::watcher::Watcher`] (`stream`, `start`, `supervise`) |
//! | `finalizer(api, name, obj, reconcile)` | [`finalizer::finalizer`]`(&client, name, obj, reconcile)` |
//! | `events::Recorder` | [`events::Recorder`] |
//! | `wait::await_condition` | [`await_condition`] |
//! | (no leader election) | [`Controller::leader_elected_on`] / [`Controller::leader_elected`] |
//!
//! What differs:
//! - kube-runtime's controller has no per-key backoff (kube-rs #1916, #297): `error_policy` must
//!   compute delays itself. Here [`Action::backoff`] (the default answer to an error) uses the
//!   queue's per-key exponential backoff, reset on success, and an early wake does not double it.
//! - kube-runtime's predicates keep a hash cache whose entries expire after an hour (kube-rs
//!   #1844); [`Predicate`]s compare the old and new objects the informer hands over: no cache, no
//!   TTL. An update that starts a deletion always passes (finalizers must run).
//! - kube-runtime's scheduler merges requeues like this queue does (earliest wins), but has no
//!   priorities: a relist competes with live changes. Here keys of initial lists and relists run
//!   after live changes.
//! - kube-runtime starts reconciling while its stores fill; a [`Controller`] waits until every
//!   source (primary, owned, watched) has synced, so a reconcile never sees a half-listed world.
//! - `kube::runtime::finalizer` adds the finalizer with a JSON patch `test` on the finalizers
//!   list only; [`finalizer::finalizer`] tests `metadata.resourceVersion` on every write.
//! - The reconcile gets `Arc<K>` from the informer's store, read when the key is handed out (as
//!   kube-runtime does), so it always sees the latest state the store holds.

pub mod controller;
pub mod events;
pub mod finalizer;
pub mod key;
pub mod metrics;
pub mod queue;
pub mod rate_limit;
pub mod reconciler;
pub mod wait;

pub use controller::{Controller, ControllerError, Predicate};
pub use key::ObjectKey;
pub use queue::{Lease, Priority, QueueOptions, QueueStats, ShutdownReport, WorkQueue};
pub use rate_limit::{ExponentialBackoff, MaxOf, RateLimiter, TokenBucket, default_rate_limiter};
pub use reconciler::{Action, ObjectSource, RunReport, Runner};
pub use wait::{AwaitError, await_condition};
