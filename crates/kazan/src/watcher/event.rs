//! What a watcher delivers: Kazan's `%Watcher.Event{type, object, from}`, with the
//! resourceVersion, and the few events Kazan did not have (bookmarks on request, skipped objects,
//! the final failure).

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use super::error::WatchError;

/// Identifies the watcher an event came from (Kazan's `from`): unique within the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatcherId(u64);

impl WatcherId {
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        WatcherId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The number behind the id.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for WatcherId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "watcher-{}", self.0)
    }
}

/// The type of an event, without its payload; handy for matching and printing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// The object was created (or, for an initial list delivered as events, exists).
    Added,
    /// The object changed.
    Modified,
    /// The object was deleted (or left the selector's set); the object is its last state.
    Deleted,
    /// The server's progress marker (delivered only when asked for).
    Bookmark,
    /// The initial list has been delivered (only when the initial list is delivered).
    Synced,
    /// An event that could not be decoded was skipped; the watch goes on.
    Skipped,
    /// The server said 410 Gone: the watcher has ended. Clear the cache, relist, start again.
    Gone,
    /// The watcher ended on an error it cannot recover from (403, 404, bad request...).
    Failed,
}

impl EventType {
    /// The wire name (`ADDED`, `MODIFIED`, ...), upper case.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
            EventType::Bookmark => "BOOKMARK",
            EventType::Synced => "SYNCED",
            EventType::Skipped => "SKIPPED",
            EventType::Gone => "GONE",
            EventType::Failed => "FAILED",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened, with the object where there is one.
#[derive(Debug, Clone)]
pub enum EventKind<K> {
    /// ADDED.
    Added(K),
    /// MODIFIED.
    Modified(K),
    /// DELETED: the object's last state.
    Deleted(K),
    /// BOOKMARK: the watch is at least as far as `resource_version`.
    Bookmark,
    /// Every object of the initial list has been delivered as `Added`.
    Synced,
    /// An event was skipped because it could not be decoded (the error says why and where).
    Skipped(Arc<WatchError>),
    /// 410 Gone, with the server's message. The last event of this watcher.
    Gone {
        /// What the server said, e.g. `too old resource version: 12 (40)`.
        message: String,
    },
    /// A terminal error. The last event of this watcher.
    Failed(Arc<WatchError>),
}

/// One event from a watcher.
///
/// ```
/// # use kazan::watcher::{Event, EventKind, EventType};
/// # use k8s_openapi::api::core::v1::Namespace;
/// fn on_event(event: Event<Namespace>) {
///     match event.kind {
///         EventKind::Added(ns) | EventKind::Modified(ns) => println!("{:?} is here", ns.metadata.name),
///         EventKind::Deleted(ns) => println!("{:?} is gone", ns.metadata.name),
///         EventKind::Gone { message } => println!("relist: {message}"),
///         _ => {}
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Event<K> {
    /// The watcher that sent it.
    pub from: WatcherId,
    /// The resourceVersion the event carries (the object's, or the bookmark's); `None` for
    /// events that carry none (Gone, Failed, Synced, some Skipped).
    pub resource_version: Option<String>,
    /// What happened.
    pub kind: EventKind<K>,
}

impl<K> Event<K> {
    /// The type of the event.
    pub fn event_type(&self) -> EventType {
        match &self.kind {
            EventKind::Added(_) => EventType::Added,
            EventKind::Modified(_) => EventType::Modified,
            EventKind::Deleted(_) => EventType::Deleted,
            EventKind::Bookmark => EventType::Bookmark,
            EventKind::Synced => EventType::Synced,
            EventKind::Skipped(_) => EventType::Skipped,
            EventKind::Gone { .. } => EventType::Gone,
            EventKind::Failed(_) => EventType::Failed,
        }
    }

    /// The object, for Added, Modified and Deleted.
    pub fn object(&self) -> Option<&K> {
        match &self.kind {
            EventKind::Added(o) | EventKind::Modified(o) | EventKind::Deleted(o) => Some(o),
            _ => None,
        }
    }

    /// The object, by value.
    pub fn into_object(self) -> Option<K> {
        match self.kind {
            EventKind::Added(o) | EventKind::Modified(o) | EventKind::Deleted(o) => Some(o),
            _ => None,
        }
    }

    /// Whether this is the watcher's last event (Gone or Failed).
    pub fn is_terminal(&self) -> bool {
        matches!(self.kind, EventKind::Gone { .. } | EventKind::Failed(_))
    }
}
