//! Building blocks of controllers: a work queue with per-key backoff and priorities, a runner
//! that reconciles keys from it, a finalizer helper, an event recorder and `await_condition`.
//!
//! The pieces and what they guarantee:
//! - [`queue`]: keys deduplicated; never two leases of one key at once, and a key added during
//!   its lease handed out once more afterwards; per-key exponential backoff (5 ms doubling to
//!   1,000 s) plus an overall token bucket (10/s, burst 100), both replaceable through
//!   [`RateLimiter`]; a failure counts toward the backoff only if its attempt had waited for it
//!   (client-go's flaw kubernetes/kubernetes#132805 avoided); initial-list keys after live
//!   changes; bounded workers; graceful shutdown reporting what was cut.
//! - [`reconciler`]: runs `reconcile(object, ctx) -> Result<Action, E>` and
//!   `error_policy(object, error, ctx) -> Action` over the queue, fed by a stream of keys and
//!   reading objects from an [`ObjectSource`] (the informer's store, once it lands).
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
//! - kube-runtime's controller has no per-key backoff (kube-rs #1916, #297): `error_policy` must
//!   compute delays itself. Here [`Action::backoff`] (the default answer to an error) uses the
//!   queue's per-key exponential backoff, reset on success.
//! - kube-runtime's predicates keep a hash cache whose entries expire after an hour (kube-rs
//!   #1844); this runtime keeps no hash cache and no TTL: change detection is meant to compare the
//!   old and new objects from the informer's store.
//! - kube-runtime's scheduler merges requeues like this queue does (earliest wins), but has no
//!   priorities: a relist competes with live changes.
//! - `kube::runtime::finalizer` → [`finalizer::finalizer`]; it adds the finalizer with a plain
//!   JSON patch `test` on the finalizers list, this one tests `metadata.resourceVersion` on every
//!   write. `kube::runtime::events::Recorder` → [`events::Recorder`].

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
