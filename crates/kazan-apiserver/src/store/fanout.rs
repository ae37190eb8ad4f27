//! Watch fan-out: each watch's bounded queue, filled by `commit` with the events it selects, and
//! where a new watch starts (initial state or a replay from the history).

use super::history::VersionError;
use super::state::{Store, key_of};
use crate::registry::ResourceDef;
use crate::selector::Filter;
use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::mpsc;

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

/// A subscribed watch, as the store sees it.
pub(super) struct Watcher {
    pub(super) filter: Arc<Filter>,
    pub(super) tx: mpsc::Sender<Arc<Event>>,
    pub(super) lagged: Arc<AtomicBool>,
}

impl Watcher {
    /// Queues the event if the watch selects the object now or selected it before (so it can
    /// send ADDED/DELETED on entering/leaving). False when the watch is gone or fell behind.
    pub(super) fn offer(&self, event: &Arc<Event>) -> bool {
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

impl Store {
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
}
