//! The work queue between the sources of changes and the reconcilers: it holds keys, not objects,
//! and decides when each key is handed to a worker.
//!
//! Guarantees:
//! - **Deduplication**: a key waits in the queue at most once; adding it again merges (the earlier
//!   ready time and the higher priority win, as in controller-runtime's priority queue).
//! - **One at a time per key**: a key handed out is not handed out again until its [`Lease`] ends.
//!   Adds that arrive meanwhile are remembered, and the key is handed out once more after the
//!   lease ends, however many adds came.
//! - **Per-key backoff that counts only waited-for failures**: [`Lease::retry`] schedules the key
//!   after the [`RateLimiter`]'s delay for its failure count. A failure increases the count only if
//!   the attempt that failed had waited for its backoff: when a change wakes the key early and that
//!   attempt fails too, the count stays, and the retry is scheduled at the same delay again. This
//!   is the flaw of client-go's rate-limited queue (kubernetes/kubernetes#132805), where every
//!   early failure doubles the delay, so a busy object ends up waiting far longer than its
//!   failures in time justify. [`Lease::forget`] (a success) resets the count.
//! - **Two priorities**: keys added at [`Priority::Low`] (initial lists and relists) are handed out
//!   only when no [`Priority::Normal`] key (live changes, retries) is ready, as controller-runtime's
//!   priority queue does, so a restart or relist does not delay fresh changes.
//! - **Bounded concurrency**: at most `workers` leases at a time.
//! - **Observable**: depth, delayed keys, leases, the oldest ready key's age, each key's retries.
//! - **Graceful shutdown**: [`WorkQueue::shutdown`] stops handing out keys, waits for the leases
//!   up to a deadline, and reports the keys still leased then.
//!
//! All times are tokio's, so tests can pause and advance the clock.

use std::{
    collections::{BTreeSet, HashMap},
    pin::pin,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

use super::{
    key::ObjectKey,
    rate_limit::{RateLimiter, default_rate_limiter},
};

/// Which keys go first among the ready ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// Live changes, retries and requeues.
    Normal,
    /// Keys from initial lists and relists: they run after every ready `Normal` key.
    Low,
}

/// How a [`WorkQueue`] is set up.
pub struct QueueOptions {
    workers: usize,
    rate_limiter: Box<dyn RateLimiter>,
}

impl std::fmt::Debug for QueueOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueOptions")
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl Default for QueueOptions {
    /// Two workers and client-go's default controller rate limiter.
    fn default() -> Self {
        QueueOptions {
            workers: 2,
            rate_limiter: Box::new(default_rate_limiter()),
        }
    }
}

impl QueueOptions {
    /// How many keys may be leased at once (at least 1).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// The limiter deciding retry delays after failures.
    pub fn rate_limiter(mut self, limiter: impl RateLimiter) -> Self {
        self.rate_limiter = Box::new(limiter);
        self
    }
}

/// A snapshot of the queue's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Keys ready to be handed out now.
    pub depth: usize,
    /// Keys waiting for a later time (backoff, requeue).
    pub delayed: usize,
    /// Keys handed out and not yet done.
    pub leased: usize,
    /// How long the longest-waiting ready key has been ready.
    pub oldest_ready_age: Option<Duration>,
    /// Retries scheduled after failures since the queue began (all keys).
    pub retries: u64,
}

/// What [`WorkQueue::shutdown`] reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Keys still leased when the deadline came: their work was cut short.
    pub cut: Vec<ObjectKey>,
    /// Keys that were waiting (ready or delayed) and were never handed out.
    pub not_started: usize,
}

/// The deduplicating, rate-limited, two-priority work queue. See the [module documentation](self).
#[derive(Clone)]
pub struct WorkQueue {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WorkQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkQueue").field("stats", &self.stats()).finish()
    }
}

struct Shared {
    state: Mutex<State>,
    /// Woken on every change that could let a waiting `next` or `shutdown` proceed.
    changed: Notify,
}

/// When a wanted key should run and at which priority.
#[derive(Debug, Clone, Copy)]
struct Want {
    at: Instant,
    priority: Priority,
}

impl Want {
    fn merge(self, other: Want) -> Want {
        Want {
            at: self.at.min(other.at),
            priority: self.priority.min(other.priority),
        }
    }
}

/// Where a waiting key sits in the indices.
#[derive(Debug, Clone, Copy)]
enum Slot {
    None,
    Ready { priority: Priority, seq: u64 },
    Delayed { at: Instant, seq: u64 },
}

#[derive(Debug)]
struct Entry {
    want: Option<Want>,
    slot: Slot,
    /// When the key became ready (for the oldest age).
    ready_since: Option<Instant>,
    leased: bool,
    /// Failures in a row, counted only when the failed attempt had waited for its backoff.
    failures: u32,
    /// When the scheduled backoff retry is due; an attempt before then did not wait for it.
    retry_due: Option<Instant>,
    /// Whether the current lease's failure counts toward the backoff.
    attempt_counts: bool,
}

impl Entry {
    fn new() -> Self {
        Entry {
            want: None,
            slot: Slot::None,
            ready_since: None,
            leased: false,
            failures: 0,
            retry_due: None,
            attempt_counts: true,
        }
    }

    fn idle(&self) -> bool {
        !self.leased && self.want.is_none() && self.failures == 0 && self.retry_due.is_none()
    }
}

struct State {
    entries: HashMap<ObjectKey, Entry>,
    ready: BTreeSet<(Priority, u64, ObjectKey)>,
    delayed: BTreeSet<(Instant, u64, ObjectKey)>,
    seq: u64,
    leased: usize,
    workers: usize,
    retries: u64,
    shutting_down: bool,
    limiter: Box<dyn RateLimiter>,
}

impl State {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Takes the key out of its index (if it is in one).
    fn unslot(&mut self, key: &ObjectKey) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        match std::mem::replace(&mut entry.slot, Slot::None) {
            Slot::None => {}
            Slot::Ready { priority, seq } => {
                self.ready.remove(&(priority, seq, key.clone()));
            }
            Slot::Delayed { at, seq } => {
                self.delayed.remove(&(at, seq, key.clone()));
            }
        }
    }

    /// Puts a key that is not leased into the index its want says.
    fn slot(&mut self, key: &ObjectKey, now: Instant) {
        self.unslot(key);
        let Some(want) = self.entries.get(key).and_then(|e| e.want) else {
            return;
        };
        let seq = self.next_seq();
        let (slot, ready_since) = if want.at <= now {
            self.ready.insert((want.priority, seq, key.clone()));
            (
                Slot::Ready {
                    priority: want.priority,
                    seq,
                },
                Some(want.at),
            )
        } else {
            self.delayed.insert((want.at, seq, key.clone()));
            (Slot::Delayed { at: want.at, seq }, None)
        };
        if let Some(entry) = self.entries.get_mut(key) {
            entry.slot = slot;
            entry.ready_since = ready_since;
        }
    }

    /// Records that `key` is wanted; merges with an earlier want.
    fn want(&mut self, key: &ObjectKey, want: Want, now: Instant) {
        let entry = self.entries.entry(key.clone()).or_insert_with(Entry::new);
        let merged = match entry.want {
            Some(old) => old.merge(want),
            None => want,
        };
        let changed = entry
            .want
            .is_none_or(|old| old.at != merged.at || old.priority != merged.priority);
        entry.want = Some(merged);
        if entry.leased || !changed {
            return;
        }
        // Keep a ready key's place (and age) when only its priority rises.
        if let (Slot::Ready { priority, seq }, true) = (entry.slot, merged.at <= now) {
            let since = entry.ready_since;
            entry.slot = Slot::Ready {
                priority: merged.priority,
                seq,
            };
            entry.ready_since = since;
            self.ready.remove(&(priority, seq, key.clone()));
            self.ready.insert((merged.priority, seq, key.clone()));
            return;
        }
        self.slot(key, now);
    }

    /// Moves delayed keys whose time has come into the ready index.
    fn promote(&mut self, now: Instant) {
        while let Some((at, _, _)) = self.delayed.first() {
            if *at > now {
                break;
            }
            let Some((_, _, key)) = self.delayed.pop_first() else {
                break;
            };
            if let Some(entry) = self.entries.get_mut(&key) {
                entry.slot = Slot::None;
            }
            self.slot(&key, now);
        }
    }

    fn remove_if_idle(&mut self, key: &ObjectKey) {
        if self.entries.get(key).is_some_and(Entry::idle) {
            self.entries.remove(key);
        }
    }
}

impl Default for WorkQueue {
    fn default() -> Self {
        WorkQueue::new(QueueOptions::default())
    }
}

impl WorkQueue {
    /// A queue with these options.
    pub fn new(options: QueueOptions) -> Self {
        WorkQueue {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    entries: HashMap::new(),
                    ready: BTreeSet::new(),
                    delayed: BTreeSet::new(),
                    seq: 0,
                    leased: 0,
                    workers: options.workers.max(1),
                    retries: 0,
                    shutting_down: false,
                    limiter: options.rate_limiter,
                }),
                changed: Notify::new(),
            }),
        }
    }

    /// A handle that does not keep the queue alive (for metrics that must end with it).
    pub(crate) fn downgrade(&self) -> WeakQueue {
        WeakQueue(Arc::downgrade(&self.shared))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent indices (no await inside), so a
        // poisoned lock is still usable.
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a key for a live change: ready now, normal priority.
    pub fn add(&self, key: ObjectKey) {
        self.add_with(key, Priority::Normal);
    }

    /// Adds a key, ready now, at this priority (`Low` for keys from lists and relists).
    pub fn add_with(&self, key: ObjectKey, priority: Priority) {
        self.push(key, Duration::ZERO, priority);
    }

    /// Wants the key again after `delay` (the earlier time wins if it is already wanted). Does not
    /// touch the key's failure count.
    pub fn requeue_after(&self, key: ObjectKey, delay: Duration) {
        self.push(key, delay, Priority::Normal);
    }

    fn push(&self, key: ObjectKey, delay: Duration, priority: Priority) {
        {
            let mut st = self.lock();
            if st.shutting_down {
                return;
            }
            let now = Instant::now();
            st.want(
                &key,
                Want {
                    at: now + delay,
                    priority,
                },
                now,
            );
        }
        self.shared.changed.notify_waiters();
    }

    /// Waits for the next ready key and leases it, or returns `None` once the queue shuts down.
    /// Cancel-safe: a key is leased only when this returns it.
    pub async fn next(&self) -> Option<Lease> {
        loop {
            let mut notified = pin!(self.shared.changed.notified());
            notified.as_mut().enable();
            let wake_at = match self.take() {
                Take::Leased(lease) => return Some(lease),
                Take::ShutDown => return None,
                Take::Wait(wake_at) => wake_at,
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Leases the next ready key if there is one and a worker is free, without waiting.
    pub fn try_next(&self) -> Option<Lease> {
        match self.take() {
            Take::Leased(lease) => Some(lease),
            Take::ShutDown | Take::Wait(_) => None,
        }
    }

    fn take(&self) -> Take {
        let mut st = self.lock();
        if st.shutting_down {
            return Take::ShutDown;
        }
        let now = Instant::now();
        st.promote(now);
        let popped = if st.leased < st.workers {
            st.ready.pop_first()
        } else {
            None
        };
        let Some((_, _, key)) = popped else {
            return Take::Wait(st.delayed.first().map(|(at, _, _)| *at));
        };
        st.leased += 1;
        let entry = st.entries.entry(key.clone()).or_insert_with(Entry::new);
        entry.slot = Slot::None;
        entry.want = None;
        entry.ready_since = None;
        entry.leased = true;
        // Woken before its backoff retry was due: a failure now does not count.
        entry.attempt_counts = entry.retry_due.is_none_or(|due| now >= due);
        entry.retry_due = None;
        let retries = entry.failures;
        Take::Leased(Lease {
            key,
            retries,
            queue: Some(self.clone()),
        })
    }

    /// The queue's counters now.
    pub fn stats(&self) -> QueueStats {
        let st = self.lock();
        let now = Instant::now();
        let oldest = st
            .ready
            .iter()
            .filter_map(|(_, _, k)| st.entries.get(k).and_then(|e| e.ready_since))
            .min();
        QueueStats {
            depth: st.ready.len(),
            delayed: st.delayed.len(),
            leased: st.leased,
            oldest_ready_age: oldest.map(|t| now.saturating_duration_since(t)),
            retries: st.retries,
        }
    }

    /// How many failures in a row count toward the key's backoff now.
    pub fn retries(&self, key: &ObjectKey) -> u32 {
        self.lock().entries.get(key).map_or(0, |e| e.failures)
    }

    /// Whether [`shutdown`](Self::shutdown) has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.lock().shutting_down
    }

    /// Stops handing out keys (every `next` returns `None`), waits until every lease has ended or
    /// `deadline` has passed, and reports the keys still leased then and the keys never started.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        let until = Instant::now() + deadline;
        {
            self.lock().shutting_down = true;
        }
        self.shared.changed.notify_waiters();
        loop {
            let mut notified = pin!(self.shared.changed.notified());
            notified.as_mut().enable();
            {
                let st = self.lock();
                if st.leased == 0 || Instant::now() >= until {
                    let mut cut: Vec<ObjectKey> = st
                        .entries
                        .iter()
                        .filter(|(_, e)| e.leased)
                        .map(|(k, _)| k.clone())
                        .collect();
                    cut.sort();
                    let not_started = st
                        .entries
                        .values()
                        .filter(|e| !e.leased && e.want.is_some())
                        .count();
                    return ShutdownReport { cut, not_started };
                }
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    fn finish(&self, key: &ObjectKey, outcome: Outcome) -> Duration {
        let delay = {
            let mut st = self.lock();
            let now = Instant::now();
            let Some(entry) = st.entries.get_mut(key) else {
                return Duration::ZERO;
            };
            if !entry.leased {
                return Duration::ZERO;
            }
            entry.leased = false;
            let (at, delay) = match outcome {
                Outcome::Done => (None, Duration::ZERO),
                Outcome::Forget => {
                    entry.failures = 0;
                    entry.retry_due = None;
                    (None, Duration::ZERO)
                }
                Outcome::RequeueAfter(d) => (Some(now + d), d),
                Outcome::ForgetAndRequeueAfter(d) => {
                    entry.failures = 0;
                    entry.retry_due = None;
                    (Some(now + d), d)
                }
                Outcome::Retry => {
                    if entry.attempt_counts || entry.failures == 0 {
                        entry.failures = entry.failures.saturating_add(1);
                    }
                    let failures = entry.failures;
                    st.retries += 1;
                    let delay = st.limiter.when(key, failures, now);
                    if let Some(entry) = st.entries.get_mut(key) {
                        entry.retry_due = Some(now + delay);
                    }
                    (Some(now + delay), delay)
                }
            };
            if let Some(at) = at {
                st.want(
                    key,
                    Want {
                        at,
                        priority: Priority::Normal,
                    },
                    now,
                );
            }
            st.leased = st.leased.saturating_sub(1);
            // Adds that came during the lease (and the retry or requeue just wanted) now enter
            // the indices, unless the queue is shutting down.
            if !st.shutting_down {
                st.slot(key, now);
            }
            st.remove_if_idle(key);
            delay
        };
        self.shared.changed.notify_waiters();
        delay
    }
}

/// A [`WorkQueue`] that may have ended.
#[derive(Clone)]
pub(crate) struct WeakQueue(std::sync::Weak<Shared>);

impl WeakQueue {
    /// The queue, if it is still alive and not shut down.
    pub(crate) fn live(&self) -> Option<WorkQueue> {
        let queue = WorkQueue {
            shared: self.0.upgrade()?,
        };
        (!queue.is_shutting_down()).then_some(queue)
    }
}

/// What one look at the queue found.
enum Take {
    Leased(Lease),
    ShutDown,
    /// Nothing to hand out now; the earliest delayed key's time, if any.
    Wait(Option<Instant>),
}

enum Outcome {
    Done,
    Forget,
    RequeueAfter(Duration),
    ForgetAndRequeueAfter(Duration),
    Retry,
}

/// A key handed out by [`WorkQueue::next`]: while it lives, the key is not handed out again. End
/// it with one of its methods; dropping it is [`done`](Self::done).
#[derive(Debug)]
#[must_use = "a lease ends when it is finished or dropped"]
pub struct Lease {
    key: ObjectKey,
    retries: u32,
    queue: Option<WorkQueue>,
}

impl Lease {
    /// The key to work on.
    pub fn key(&self) -> &ObjectKey {
        &self.key
    }

    /// Failures in a row counted toward this key's backoff when it was handed out.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Ends the lease; the key comes back only if it was added meanwhile or later. Keeps the
    /// failure count.
    pub fn done(mut self) {
        self.end(Outcome::Done);
    }

    /// Ends the lease after a success: the failure count and any pending backoff are reset.
    pub fn forget(mut self) {
        self.end(Outcome::Forget);
    }

    /// Ends the lease and wants the key again after `delay` (failure count kept).
    pub fn requeue_after(mut self, delay: Duration) {
        self.end(Outcome::RequeueAfter(delay));
    }

    /// Ends the lease after a success that asks to come back after `delay`: resets the failure
    /// count and wants the key again then.
    pub fn forget_and_requeue_after(mut self, delay: Duration) {
        self.end(Outcome::ForgetAndRequeueAfter(delay));
    }

    /// Ends the lease after a failure and schedules the retry after the rate limiter's delay; the
    /// failure counts toward the backoff only if this attempt had waited for the previous one.
    /// Returns the delay.
    pub fn retry(mut self) -> Duration {
        self.end(Outcome::Retry)
    }

    fn end(&mut self, outcome: Outcome) -> Duration {
        match self.queue.take() {
            Some(queue) => queue.finish(&self.key, outcome),
            None => Duration::ZERO,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.end(Outcome::Done);
    }
}
