//! The Watcher (being written).

/// Placeholder.
pub struct Watcher;
