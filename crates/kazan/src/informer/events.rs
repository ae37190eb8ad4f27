//! What an informer tells its subscribers: changes of its store, each with the previous state where
//! a controller needs it, and a mark after every complete (re)list.

use std::sync::Arc;

use crate::watcher::{EventType, WatcherId};

/// A change of the informer's store, as a subscriber receives it.
///
/// Objects are shared with the store and with every other subscriber: `Arc<K>`, never copied.
#[derive(Debug)]
pub enum EventKind<K> {
    /// A key the store (or this subscriber) did not hold.
    Added(Arc<K>),
    /// A known key changed: `old` is the store's previous copy, `new` the current one.
    Modified {
        /// The previous state, as this subscriber last saw it.
        old: Arc<K>,
        /// The current state.
        new: Arc<K>,
    },
    /// The object is gone.
    Deleted {
        /// Its last state: the server's final one, or, when `final_state_unknown`, the last one
        /// known here.
        last: Arc<K>,
        /// The deletion was not seen: a relist (after 410 Gone, or after a checkpoint too old to
        /// watch from) did not contain the object any more, or this subscriber was cut off and
        /// re-synchronised. client-go's `DeletedFinalStateUnknown`; kube-runtime drops these.
        final_state_unknown: bool,
    },
    /// Every object of a complete (re)list (or of a subscriber's snapshot, or of a checkpoint)
    /// has been delivered: the subscriber's view equals the store at `resource_version`.
    Synced,
}

impl<K> Clone for EventKind<K> {
    fn clone(&self) -> Self {
        match self {
            EventKind::Added(o) => EventKind::Added(o.clone()),
            EventKind::Modified { old, new } => EventKind::Modified {
                old: old.clone(),
                new: new.clone(),
            },
            EventKind::Deleted {
                last,
                final_state_unknown,
            } => EventKind::Deleted {
                last: last.clone(),
                final_state_unknown: *final_state_unknown,
            },
            EventKind::Synced => EventKind::Synced,
        }
    }
}

/// One change, with the watcher it came from and the resourceVersion it carries.
#[derive(Debug)]
pub struct Event<K> {
    /// The informer's watcher (the same id for every event of one informer).
    pub from: WatcherId,
    /// The object's resourceVersion; for `Synced` and synthesized deletes, the version of the
    /// store at that point.
    pub resource_version: Option<String>,
    /// What changed.
    pub kind: EventKind<K>,
}

impl<K> Clone for Event<K> {
    fn clone(&self) -> Self {
        Event {
            from: self.from,
            resource_version: self.resource_version.clone(),
            kind: self.kind.clone(),
        }
    }
}

impl<K> Event<K> {
    /// The type of the event, as the watcher names it (`ADDED`, `MODIFIED`, `DELETED`, `SYNCED`).
    pub fn event_type(&self) -> EventType {
        match &self.kind {
            EventKind::Added(_) => EventType::Added,
            EventKind::Modified { .. } => EventType::Modified,
            EventKind::Deleted { .. } => EventType::Deleted,
            EventKind::Synced => EventType::Synced,
        }
    }

    /// The object as it is now (Added, Modified) or was last (Deleted); `None` for Synced.
    pub fn object(&self) -> Option<&Arc<K>> {
        match &self.kind {
            EventKind::Added(o) | EventKind::Modified { new: o, .. } => Some(o),
            EventKind::Deleted { last, .. } => Some(last),
            EventKind::Synced => None,
        }
    }

    /// The state a subscriber held before this event, as far as the event tells: `None` for Added
    /// and Synced; a watched delete's `last` is the server's final state, not the one held.
    pub(crate) fn before(&self) -> Option<&Arc<K>> {
        match &self.kind {
            EventKind::Modified { old, .. } => Some(old),
            EventKind::Deleted { last, .. } => Some(last),
            EventKind::Added(_) | EventKind::Synced => None,
        }
    }

    /// Whether this is a delete the informer did not see but inferred.
    pub fn is_final_state_unknown(&self) -> bool {
        matches!(
            self.kind,
            EventKind::Deleted {
                final_state_unknown: true,
                ..
            }
        )
    }
}
