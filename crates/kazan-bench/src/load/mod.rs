//! Load: thousands of concurrent watches on the embedded API server while writers drive creates,
//! updates and deletes as fast as the server accepts them, for a fixed time; then the watches must
//! catch up. It answers two questions of issue 7: does any watch fall behind without bound, and
//! does the watcher process's memory stay bounded?
//!
//! The harness process holds the server and the writers ([`scenario`], [`writers`]); the watcher
//! process (this binary re-executed, [`watcher`]) runs one kazan watcher per namespace on one
//! shared client. They talk over the child's standard streams, one JSON line per message
//! ([`WatcherLine`] out, [`Final`] in), and the figures are worked out afterwards from the
//! harness's write log and the watcher's samples ([`figures`]).

pub mod figures;
pub mod scenario;
pub mod watcher;
pub mod writers;

use serde::{Deserialize, Serialize};

/// What the watcher process prints on stdout, one per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatcherLine {
    /// Where every watch is, taken once a second.
    Sample(Sample),
    /// The last line: counts, checks and the consumer's cache.
    Report(WatcherReport),
}

/// One second's look at the watcher process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When, in seconds since the Unix epoch (the clock both processes share).
    pub unix_s: f64,
    /// Resident memory of the watcher process now (`VmRSS`), in bytes.
    pub rss_bytes: u64,
    /// User + system CPU seconds of the watcher process so far.
    pub cpu_seconds: f64,
    /// Object events delivered so far, over every watch.
    pub delivered: u64,
    /// Per watch (in namespace order): the resourceVersion of the last object event delivered to
    /// the consumer, or the version a relist brought it to, whichever is higher.
    pub rvs: Vec<u64>,
}

/// What the watcher process saw over the whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatcherReport {
    /// Object events delivered per watch, outside relists (each should be one write).
    pub events: Vec<u64>,
    /// Object events whose resourceVersion was not above the previous one of the same watch.
    pub out_of_order: u64,
    /// `Gone` events received (each followed by a relist, done by `Watcher::supervise`).
    pub gones: u64,
    /// The watches that got at least one `Gone` (their event counts include no relist events).
    pub gone_watches: Vec<usize>,
    /// Objects delivered by relists after `Gone`.
    pub relist_events: u64,
    /// Events skipped because they did not decode.
    pub skipped: u64,
    /// Watchers that ended on a terminal error.
    pub failed: u64,
    /// The first few messages of `Gone`, `Skipped` and `Failed` events.
    pub messages: Vec<String>,
    /// Watches re-opened after the server ended one cleanly, summed over the watchers.
    pub resumes: u64,
    /// Attempts repeated after an error, summed over the watchers.
    pub retries: u64,
    /// When every watch had reached the final version it was told, in Unix seconds; `None` when
    /// the harness gave up waiting first.
    pub caught_up_unix_s: Option<f64>,
    /// User + system CPU seconds from the first request to the end.
    pub cpu_seconds: f64,
    /// Peak resident memory of the watcher process (`VmHWM`), in bytes.
    pub peak_rss_bytes: u64,
    /// The consumer's cache per watch at the end: `(name, resourceVersion)`, sorted by name.
    pub cache: Vec<Vec<(String, u64)>>,
}

/// What the harness sends the watcher process once the writes have stopped: for every watch, the
/// version of the last write to its namespace (0 when there was none). The watcher reports when
/// every watch has reached it, then ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Final {
    /// The last write's resourceVersion per watch.
    pub last_rvs: Vec<u64>,
}
