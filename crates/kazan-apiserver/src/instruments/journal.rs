//! Observability for tests: a bounded journal of requests (what each client sent and got, and for
//! watches how many events it was sent), counters, and a way to wait until watches are connected.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Notify;

/// One request as the server saw and answered it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    /// Order of arrival (0-based).
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string (empty when none).
    pub query: String,
    /// `Accept` header.
    pub accept: Option<String>,
    /// `Content-Type` header.
    pub content_type: Option<String>,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
    /// Every `Impersonate-*` header (`Impersonate-User`, `-Uid`, `-Group`, `-Extra-<key>`), as
    /// lower-case name and value, in the order received, repeated headers each kept; empty when
    /// the client impersonates nobody. The server does not act on them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub impersonation: Vec<(String, String)>,
    /// HTTP version (`HTTP/1.1`, `HTTP/2.0`).
    pub version: String,
    /// Status code of the answer.
    pub status: u16,
    /// Whether the request was a watch.
    pub watch: bool,
    /// Events written so far on a watch (bookmarks and errors included).
    pub events: u64,
}

struct Recorded {
    entry: JournalEntry,
    live: Arc<LiveEntry>,
}

/// The parts of a journal entry known only later: the answer's status, the events of a watch.
#[derive(Default)]
pub(crate) struct LiveEntry {
    pub status: AtomicU16,
    pub events: AtomicU64,
}

/// Counters of the server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// TCP connections accepted since start.
    pub connections_accepted: u64,
    /// Requests served (admin requests excluded).
    pub requests: u64,
    /// Watches started since start.
    pub watches_started: u64,
    /// Open watches by resource plural.
    pub active_watches: BTreeMap<String, usize>,
    /// Watches ended because they fell too far behind.
    pub watches_lagged: u64,
}

/// How many journal entries are kept (oldest dropped first).
const JOURNAL_LIMIT: usize = 10_000;

#[derive(Default)]
pub(crate) struct Observer {
    journal: Mutex<VecDeque<Recorded>>,
    next_seq: AtomicU64,
    stats: Mutex<Stats>,
    changed: Notify,
}

impl Observer {
    pub(crate) fn connection_accepted(&self) {
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .connections_accepted += 1;
    }

    /// Records a request; the answer's status and the watch's event count are filled in later.
    pub(crate) fn record(&self, mut entry: JournalEntry) -> Arc<LiveEntry> {
        let live = Arc::new(LiveEntry::default());
        entry.seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).requests += 1;
        let mut journal = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        if journal.len() >= JOURNAL_LIMIT {
            journal.pop_front();
        }
        journal.push_back(Recorded {
            entry,
            live: live.clone(),
        });
        live
    }

    pub(crate) fn journal(&self) -> Vec<JournalEntry> {
        let journal = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        journal
            .iter()
            .map(|r| JournalEntry {
                status: r.live.status.load(Ordering::Relaxed),
                events: r.live.events.load(Ordering::Relaxed),
                ..r.entry.clone()
            })
            .collect()
    }

    pub(crate) fn clear_journal(&self) {
        self.journal.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub(crate) fn stats(&self) -> Stats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Counts a watch as open until the guard is dropped.
    pub(crate) fn watch_started(self: &Arc<Self>, plural: &str) -> WatchGuard {
        {
            let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            stats.watches_started += 1;
            *stats.active_watches.entry(plural.to_string()).or_default() += 1;
        }
        self.changed.notify_waiters();
        WatchGuard {
            observer: self.clone(),
            plural: plural.to_string(),
        }
    }

    pub(crate) fn watch_lagged(&self) {
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .watches_lagged += 1;
    }

    fn active(&self, plural: &str) -> usize {
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.active_watches.get(plural).copied().unwrap_or(0)
    }

    /// Waits until at least `n` watches of `plural` are open, at most `timeout`.
    pub(crate) async fn wait_for_watches(&self, plural: &str, n: usize, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.active(plural) >= n {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

/// Keeps a watch counted as open.
pub(crate) struct WatchGuard {
    observer: Arc<Observer>,
    plural: String,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        {
            let mut stats = self.observer.stats.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = stats.active_watches.get_mut(&self.plural) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    stats.active_watches.remove(&self.plural);
                }
            }
        }
        self.observer.changed.notify_waiters();
    }
}
