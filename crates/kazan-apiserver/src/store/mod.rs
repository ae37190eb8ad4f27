//! The object store: objects as JSON per resource, one global resourceVersion counter that every
//! write increments (like etcd's revision), a bounded per-resource event history (count and age),
//! and a bounded queue per watch that each write fills with the events the watch selects (as the
//! real watch cache dispatches). Writes never wait for watchers: a watch whose queue is full is
//! dropped (its stream then ends cleanly, as the real server ends a watcher that cannot keep up).
//!
//! The history serves three things: watches resuming from a version (every event strictly after
//! it), consistent list pages (the state at the snapshot version is rebuilt by undoing newer
//! events), and `resourceVersionMatch=Exact` lists. A version older than the history is "too old"
//! (410), with the real watch cache's rule: too old iff `N < oldest - 1` (`floor` below).

mod crds;
mod fanout;
mod gc;
mod history;
mod managed;
mod namespaces;
mod objects;
mod rules;
mod schema;
mod state;
mod strategy;

pub(crate) use fanout::{Event, EventType, StartRequest, WatchStart, event_line};
pub(crate) use history::{PageRange, VersionError};
pub(crate) use objects::{DeleteOptions, DeleteOutcome, WriteOptions};
pub(crate) use rules::{object_key, set_path, with_type};
pub(crate) use schema::unknown_fields as custom_resource_unknown_fields;
pub(crate) use state::{Store, StoreConfig};
pub(crate) use strategy::is_builtin;
