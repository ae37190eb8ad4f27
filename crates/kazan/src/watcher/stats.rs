//! Counters a running watcher keeps, so its health can be seen from outside (how often it resumed,
//! how often it had to retry, where it is).

use std::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering},
};

/// Retries by what caused them, so that a dashboard can tell a flapping network from a server
/// that throttles or fails.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryCauses {
    /// No connection, TLS failures, request deadlines: the server could not be reached.
    pub unreachable: u64,
    /// 5xx answers and ERROR events the server sent.
    pub server_error: u64,
    /// 429 Too Many Requests (and 408).
    pub throttled: u64,
    /// A watch whose connection broke while reading, or that the server ended at once.
    pub stream: u64,
    /// Nothing received for the idle deadline.
    pub idle: u64,
    /// A line that was not a watch event (a damaged stream), resumed before it.
    pub malformed: u64,
}

impl RetryCauses {
    /// Each cause's name (the metrics' `cause` label) and count.
    pub fn by_name(&self) -> [(&'static str, u64); 6] {
        [
            ("unreachable", self.unreachable),
            ("server_error", self.server_error),
            ("throttled", self.throttled),
            ("stream", self.stream),
            ("idle", self.idle),
            ("malformed", self.malformed),
        ]
    }
}

/// A snapshot of a watcher's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatcherStats {
    /// Watches re-opened after the server ended one cleanly (its timeout): invisible to consumers.
    pub resumes: u64,
    /// Attempts repeated after an error (connection lost, 5xx, 429, stall...), after a backoff.
    pub retries: u64,
    /// The same retries by cause.
    pub retries_by_cause: RetryCauses,
    /// 410 Gone answers met (each ends the watch; the supervised form relists).
    pub gones: u64,
    /// Bytes of watch responses read off the socket.
    pub bytes_read: u64,
    /// Object events (`Added`, `Modified`, `Deleted`) handed to the consumer: put in its channel,
    /// or yielded by the stream. Objects of a delivered initial list count too. An event the
    /// watcher held when it was stopped was not handed over and does not count.
    pub events: u64,
    /// Bookmarks received.
    pub bookmarks: u64,
    /// Event lines read off the socket (delivered or not yet): with `events`, how far the watcher
    /// has read ahead of its consumer.
    pub lines_read: u64,
    /// With a [shard](super::WatcherOptions::shard): who filters, as the last list's `shardInfo`
    /// told (`None` before the first list, or without a shard).
    pub shard_mode: Option<crate::shard::ShardMode>,
    /// With a shard: objects the watcher received from the server but dropped because they
    /// belong to other shards (the server did not filter them).
    pub shard_filtered: u64,
    /// The resourceVersion a new watcher resumes from to continue exactly after the last event
    /// handed to the consumer (nothing skipped, nothing repeated). `None` while an initial list is
    /// being delivered (a list cannot be resumed in the middle) and after `Gone` (relist).
    pub resource_version: Option<String>,
}

/// The live counters, shared between the watcher and whoever asks.
#[derive(Debug, Default)]
pub(crate) struct StatsCell {
    resumes: AtomicU64,
    retries: AtomicU64,
    retry_causes: [AtomicU64; 6],
    gones: AtomicU64,
    bytes_read: AtomicU64,
    events: AtomicU64,
    bookmarks: AtomicU64,
    lines_read: AtomicU64,
    shard_filtered: AtomicU64,
    shard_mode: Mutex<Option<crate::shard::ShardMode>>,
    resource_version: Mutex<Option<String>>,
}

impl StatsCell {
    pub(crate) fn resumed(&self) {
        self.resumes.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a retry; `cause` indexes [`RetryCauses::by_name`].
    pub(crate) fn retried(&self, cause: usize) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        if let Some(counter) = self.retry_causes.get(cause) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn gone(&self) {
        self.gones.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn read_bytes(&self, n: usize) {
        self.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn delivered(&self) {
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn bookmarked(&self) {
        self.bookmarks.fetch_add(1, Ordering::Relaxed);
    }

    /// Records who filters the shard, as a list's `shardInfo` said.
    pub(crate) fn shard_mode(&self, mode: crate::shard::ShardMode) {
        *self.shard_mode.lock().unwrap_or_else(|e| e.into_inner()) = Some(mode);
    }

    /// Counts objects dropped because they belong to other shards.
    pub(crate) fn shard_filtered(&self, n: u64) {
        self.shard_filtered.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn read_lines(&self, n: usize) {
        self.lines_read.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn at(&self, rv: Option<&str>) {
        let mut guard = self.resource_version.lock().unwrap_or_else(|e| e.into_inner());
        match (guard.as_mut(), rv) {
            (Some(current), Some(rv)) if current.as_str() != rv => {
                current.clear();
                current.push_str(rv);
            }
            (Some(_), Some(_)) => {}
            (_, rv) => *guard = rv.map(str::to_string),
        }
    }

    pub(crate) fn snapshot(&self) -> WatcherStats {
        WatcherStats {
            resumes: self.resumes.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            retries_by_cause: {
                let cause = |i: usize| self.retry_causes[i].load(Ordering::Relaxed);
                RetryCauses {
                    unreachable: cause(0),
                    server_error: cause(1),
                    throttled: cause(2),
                    stream: cause(3),
                    idle: cause(4),
                    malformed: cause(5),
                }
            },
            gones: self.gones.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            bookmarks: self.bookmarks.load(Ordering::Relaxed),
            lines_read: self.lines_read.load(Ordering::Relaxed),
            shard_mode: self.shard_mode.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            shard_filtered: self.shard_filtered.load(Ordering::Relaxed),
            resource_version: self
                .resource_version
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}
