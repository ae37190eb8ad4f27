//! The change log: every write the store committed, in order, for tests that check a watcher
//! delivered exactly what happened. The history is bounded (it serves resumes) and so cannot say
//! what a watcher should have seen over a long run; this log can. It is off unless asked for
//! ([`ApiServerBuilder::record_changes`](crate::ApiServerBuilder::record_changes)) and grows without
//! bound while on (about a hundred bytes per write).

use std::sync::Mutex;

/// The type of a recorded change: the watch event type a watcher without selectors receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeType {
    /// The object was created.
    Added,
    /// The object was changed (including being marked for deletion).
    Modified,
    /// The object was removed.
    Deleted,
}

/// One committed write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The resourceVersion the write got (unique and increasing across the server).
    pub resource_version: u64,
    /// What the write did.
    pub change_type: ChangeType,
    /// The resource's API group (`""` for the core group).
    pub group: String,
    /// The resource's plural name, e.g. `configmaps`.
    pub plural: String,
    /// The object's namespace (`""` for cluster-scoped objects).
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

/// The log itself; appended to under the store's lock, so its order is the commit order.
#[derive(Debug, Default)]
pub(crate) struct ChangeLog {
    enabled: bool,
    changes: Mutex<Vec<Change>>,
}

impl ChangeLog {
    pub(crate) fn new(enabled: bool) -> Self {
        ChangeLog {
            enabled,
            changes: Mutex::new(Vec::new()),
        }
    }

    /// Records a change when the log is on. `make` is called only then.
    pub(crate) fn record(&self, make: impl FnOnce() -> Change) {
        if self.enabled {
            self.changes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(make());
        }
    }

    /// Every change recorded so far, oldest first.
    pub(crate) fn changes(&self) -> Vec<Change> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
