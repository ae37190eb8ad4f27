//! Leader election on `coordination.k8s.io/v1` Leases, with client-go's semantics, so that kazan
//! candidates and client-go candidates (kube-controller-manager's, an operator's) can contend for
//! the same Lease.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kazan::Client;
//! use kazan::lease::{ElectionConfig, LeaderElector, LeaseLock};
//!
//! let client = Client::try_default().await?;
//! let lock = LeaseLock::new("default", "my-controller", "pod-a-7f3c");
//! let election = LeaderElector::new(&client, lock, ElectionConfig::default())?.start();
//! let mut leadership = election.leadership();
//! loop {
//!     // Wait until this candidate leads, then act until that changes.
//!     leadership.wait_for(|l| l.is_leading()).await?;
//!     tokio::select! {
//!         _ = leadership.wait_for(|l| !l.is_leading()) => {} // fenced: stop at once
//!         () = do_the_work() => {}
//!     }
//! }
//! # }
//! # async fn do_the_work() {}
//! ```
//!
//! # How it matches client-go
//!
//! Followed: `tools/leaderelection/leaderelection.go` and `resourcelock/leaselock.go`.
//!
//! - **Timings and their checks**: [`ElectionConfig`] has client-go's `LeaseDuration`,
//!   `RenewDeadline` and `RetryPeriod` (defaults 15 s, 10 s, 2 s), checked in client-go's order
//!   (`LeaseDuration > RenewDeadline > 1.2 × RetryPeriod`, all above zero, a non-empty identity)
//!   with a typed [`ElectionConfigError`]. kazan adds one rule, below.
//! - **The record**: `holderIdentity`, `leaseDurationSeconds` (the lease duration in whole
//!   seconds), `acquireTime`, `renewTime` (`MicroTime`: six fractional digits, UTC) and
//!   `leaseTransitions` are written on every write, as `LeaderElectionRecordToLeaseSpec` writes
//!   them; `acquireTime` is kept across renewals, `leaseTransitions` grows by one when the Lease
//!   changes hands; `preferredHolder` and `strategy` are dropped as client-go's (uncoordinated)
//!   elector drops them.
//! - **Acquire and renew** (`tryAcquireOrRenew`): the holder first updates the Lease it last saw
//!   (with its `resourceVersion`); otherwise the Lease is read (created if missing), and taken
//!   only if it names nobody, names this candidate, or has not changed for its
//!   `leaseDurationSeconds` as measured on *this* process's clock since the change was seen
//!   (never by comparing `renewTime` with the local clock: clocks need not agree). Every write is
//!   an update carrying the `resourceVersion` read, so of two candidates writing at once one gets
//!   409 Conflict and loses the round.
//! - **Pacing**: a candidate tries every `RetryPeriod` plus up to 1.2 × `RetryPeriod` at random
//!   (`wait.JitterUntil`, sliding); the holder renews every `RetryPeriod` and retries a failed
//!   renewal every `RetryPeriod`.
//! - **Release** ([`ElectionConfig::release_on_cancel`], client-go's `ReleaseOnCancel`): on stop,
//!   the Lease is written with `holderIdentity: ""`, `leaseDurationSeconds: 1`, both times now and
//!   the transitions kept, retried on 409 within `RenewDeadline`. Unlike client-go, the Lease is
//!   read first and released only if it still names this candidate (client-go judges by what it
//!   last saw and can clear a successor's Lease after losing it).
//! - **Observing**: [`Election::leadership`] is a `tokio::sync::watch` receiver of
//!   [`Leadership`]: `Leading` (client-go's `OnStartedLeading`), `Following { holder }` when the
//!   observed holder changes (`OnNewLeader`), `Stopped` at the end (`OnStoppedLeading`).
//!
//! # Fencing: the holder stops before anyone can take over
//!
//! client-go gives a renewal round `RenewDeadline` from the *start of the round*, which begins a
//! `RetryPeriod` after the last success: a holder may go on acting up to
//! `RetryPeriod + RenewDeadline` after its last successful renewal, which exceeds `LeaseDuration`
//! with settings its validation accepts (e.g. 15 s, 14 s, 2 s). kazan counts the deadline from
//! the last success instead:
//!
//! - Let `s` be the instant the holder *sent* its last successful write (acquisition or
//!   renewal). The server applied it at some `c ≥ s`.
//! - Any other candidate can only take the Lease over after it has seen that write (an update
//!   from an older read fails with 409), at some `o ≥ c`, and then waited
//!   `leaseDurationSeconds` (`L`, whole seconds) on its own clock: not before `c + L ≥ s + L`.
//! - The holder's term ends at the **fence** `s + RenewDeadline`: [`Leadership`] changes from
//!   `Leading` at that instant, whatever request is in flight (each renewal also carries the time
//!   left until the fence as its own request deadline, see
//!   [`Client::with_request_timeout`](crate::Client::with_request_timeout), so a stalled
//!   connection cannot hold it past the fence). The elector also has connections of its own
//!   ([`LeaderElector::new`]): over HTTP/2, watches nobody reads fill a shared connection's
//!   flow-control window and would starve renewals on it (the holder would then step down at its
//!   fence: safe, but needless).
//! - kazan requires `L > RenewDeadline` (not only `LeaseDuration > RenewDeadline`: a 10.5 s
//!   lease is written as 10 s), [`ElectionConfigError::WholeSecondsNotAboveRenewDeadline`]. So the
//!   holder stops at least `L − RenewDeadline` (5 s with the defaults) before any contender may
//!   write.
//!
//! Limits, which no lease-based scheme escapes without help from the resource it guards:
//!
//! - The margin `L − RenewDeadline` must cover the difference in *rate* between the holder's and
//!   the contenders' clocks over one lease duration, and the time the holder's code takes to
//!   notice the change (a task blocked for seconds does not see it). Wall clocks need not agree.
//! - A write the holder sent before the fence may reach its destination after it (a slow
//!   connection, a retry in a client library). Stopping at the fence bounds when writes are
//!   *sent*, not when they land. Where that matters, carry the term's `leaseTransitions` with each
//!   write and have the destination refuse older terms (a fencing token), or write with
//!   preconditions on objects the Lease guards.
//! - A contender that never saw the holder's last renewal still cannot win: its update carries
//!   an older `resourceVersion` and gets 409.
//! - client-go candidates contending for the same Lease keep client-go's own, weaker, deadline;
//!   the guarantee above is about a kazan holder.

mod config;
mod elector;
mod record;
mod status;

pub use config::{ElectionConfig, ElectionConfigError, ElectionError, JITTER_FACTOR};
pub use elector::{Election, LeaderElector, Leadership, LeaseLock};
pub use status::LeaseStatus;
