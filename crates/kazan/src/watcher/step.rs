//! What the state machine hands on: an event (or nothing) and how handing it to the consumer moves
//! the watcher's resume point.
//!
//! The version a watcher reports as "where to resume" (`stats().resource_version`, the end reason)
//! must never run ahead of what the consumer was given: a watcher stopped while it held an event
//! for a full channel drops that event, and a restart from the reported version must bring it
//! back. So the machine does not move the reported version itself; each step carries its move,
//! and whoever hands the event over (the spawned task once the event is in the channel, the
//! `Stream` once it yields it) applies it then. Steps with no event (a bookmark not delivered, a
//! list not delivered) move the version when everything before them was handed over.

use super::{
    event::{Event, EventKind},
    stats::StatsCell,
};

/// How handing a step over moves the resume version.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) enum Resume {
    /// Not at all (a listed object: a list cannot be resumed in the middle; an unknown line).
    #[default]
    Keep,
    /// To this version.
    At(String),
    /// To none: after Gone, the old version is of no use; relist.
    Clear,
}

/// One step of a watch.
pub(crate) struct Step<K> {
    /// The event to hand over, or `None` for a move of the resume version alone.
    pub(crate) event: Option<Event<K>>,
    /// How the resume version moves once the event is handed over.
    pub(crate) resume: Resume,
}

impl<K> Step<K> {
    /// Whether handing this step over counts in `stats().events` (object events only).
    pub(crate) fn counts(&self) -> bool {
        self.event.as_ref().is_some_and(|e| {
            matches!(
                e.kind,
                EventKind::Added(_) | EventKind::Modified(_) | EventKind::Deleted(_)
            )
        })
    }
}

impl StatsCell {
    /// Records that a step was handed to the consumer.
    pub(crate) fn handed(&self, resume: &Resume, counts: bool) {
        if counts {
            self.delivered();
        }
        match resume {
            Resume::Keep => {}
            Resume::At(rv) => self.at(Some(rv)),
            Resume::Clear => self.at(None),
        }
    }
}
