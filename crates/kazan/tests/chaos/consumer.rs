//! The consumers: one watcher lineage each (a watcher, and after each Gone the one that replaces
//! it), in one of the forms the library offers, keeping a cache by (namespace, name) as a user
//! would. On Gone each clears its cache and relists, as Kazan prescribes: the single forms by
//! starting a new watcher that delivers its initial list, the supervised form by itself. Every
//! event is recorded per segment (a list and the watch that follows it) for the comparison with
//! the server's change log.
//!
//! Some consumers also stop their watcher every so many events, with a small channel that is full
//! at the time, read what the stop left in the channel, and start a new watcher from the version
//! the stopped one reports: the segment goes on, and the comparison with the change log proves
//! that the reported version skipped and repeated nothing.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, Mutex},
};

use kazan::{
    Client, Object, Request,
    resource::ObjectList,
    watcher::{
        Event, EventKind, EventType, WatchStream, Watcher, WatcherHandle, WatcherOptions, WatcherStats,
    },
};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::churn::{Kind, MARK};

/// (namespace, name).
pub type Key = (String, String);

/// How a consumer receives its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `Watcher::start` with the handle's own channel (`recv`).
    Spawned,
    /// `Watcher::start` with `send_to` a channel of the consumer's.
    SendTo,
    /// `Watcher::stream`.
    Stream,
    /// `Watcher::supervise`: relists after Gone by itself.
    Supervised,
}

impl fmt::Display for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Form::Spawned => "spawned",
            Form::SendTo => "send_to",
            Form::Stream => "stream",
            Form::Supervised => "supervised",
        })
    }
}

/// What a consumer watches and how.
#[derive(Clone, Debug)]
pub struct Spec {
    pub form: Form,
    pub kind: Kind,
    /// `DynamicObject` rather than the k8s-openapi type.
    pub dynamic: bool,
    /// One namespace, or all.
    pub namespace: Option<String>,
    /// Page size of the lists (small ones make paginated lists).
    pub page_size: u32,
    /// Stop the watcher after this many watch events and start a new one from the version the
    /// stopped one reports (with a channel of 2, so that the stop finds it full).
    pub stop_every: Option<u64>,
}

impl Spec {
    pub fn name(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.form,
            if self.dynamic { "dynamic" } else { "typed" },
            self.kind.plural(),
            self.namespace.as_deref().unwrap_or("all")
        )
    }
}

/// One delivered change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub rv: u64,
    pub event: EventType,
    pub key: Key,
}

/// A list (at `list_rv`) and the events of the watch after it, up to the end or a Gone.
#[derive(Clone, Debug, Default)]
pub struct Segment {
    pub list_rv: u64,
    pub listed: Vec<(Key, u64)>,
    pub events: Vec<Delivered>,
    pub ended_by_gone: bool,
}

/// A cached object: its version and the churn's mark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cached {
    pub rv: u64,
    pub mark: String,
}

/// The counters of a consumer.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Object events delivered by watches (initial lists not included).
    pub events: u64,
    /// Objects delivered by initial lists.
    pub listed: u64,
    /// Lists completed (Synced): the first and every relist.
    pub lists: u64,
    pub gones: u64,
    /// Gones that came while an initial list was being delivered.
    pub gones_while_listing: u64,
    /// Watchers started after a Gone (single forms).
    pub restarts: u64,
    /// Watchers stopped mid-churn and replaced by one started from their reported version.
    pub stops: u64,
    /// The watchers' own counters (every form: the handle's or the stream's `stats()`), summed over the lineage.
    pub resumes: Option<u64>,
    pub retries: Option<u64>,
    pub bookmarks: Option<u64>,
}

/// How far a consumer is, for the wait at the end.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub watching: bool,
    /// The newest version it has: the list's, or the last event's.
    pub at: u64,
}

/// What a consumer hands back when stopped.
#[derive(Debug)]
pub struct Record {
    pub spec: Spec,
    pub segments: Vec<Segment>,
    pub cache: BTreeMap<Key, Cached>,
    pub counts: Counts,
}

/// Where events come from.
enum Feed<K> {
    Handle(WatcherHandle<Event<K>>),
    SendTo(WatcherHandle<Event<K>>, mpsc::Receiver<Event<K>>),
    Stream(WatchStream<K>),
}

impl<K: Send + 'static> Feed<K> {
    async fn next(&mut self) -> Option<Event<K>> {
        use futures_util::StreamExt;
        match self {
            Feed::Handle(h) => h.recv().await,
            Feed::SendTo(_, rx) => rx.recv().await,
            Feed::Stream(s) => s.next().await,
        }
    }

    fn stats(&self) -> Option<WatcherStats> {
        match self {
            Feed::Handle(h) | Feed::SendTo(h, _) => Some(h.stats()),
            Feed::Stream(s) => Some(s.stats()),
        }
    }

    async fn stop(self) {
        match self {
            Feed::Handle(h) | Feed::SendTo(h, _) => {
                h.stop().await;
            }
            Feed::Stream(s) => drop(s),
        }
    }

    /// Stops the watcher, hands what it left in the channel to `take`, and returns the version a
    /// new watcher resumes from, as the stopped one reports it (its end reason and its stats).
    async fn stop_and_drain(
        self,
        mut take: impl FnMut(Event<K>) -> Result<(), String>,
    ) -> Result<Option<String>, String> {
        // Bounded: a stopped watcher's channel holds at most its capacity.
        const MAX_LEFT: usize = 10_000;
        match self {
            Feed::Handle(mut h) => {
                h.stop().await;
                for _ in 0..MAX_LEFT {
                    match h.recv().await {
                        Some(event) => take(event)?,
                        None => break,
                    }
                }
                let reason = h.wait().await;
                let stats = h.stats().resource_version;
                if reason.resume_from() != stats.as_deref() {
                    return Err(format!(
                        "the end reason {reason:?} and stats ({stats:?}) disagree"
                    ));
                }
                Ok(stats)
            }
            Feed::SendTo(h, mut rx) => {
                h.stop().await;
                for _ in 0..MAX_LEFT {
                    match rx.recv().await {
                        Some(event) => take(event)?,
                        None => break,
                    }
                }
                Ok(h.wait().await.resume_from().map(str::to_string))
            }
            Feed::Stream(s) => Ok(s.stats().resource_version),
        }
    }
}

fn open<K>(
    form: Form,
    client: &Client,
    request: &Request<ObjectList<K>>,
    options: &WatcherOptions,
    capacity: usize,
) -> Result<Feed<K>, String>
where
    K: Object + DeserializeOwned + Send + 'static,
{
    let client = client.clone();
    let request = request.clone();
    let options = options.clone();
    let feed = match form {
        Form::Spawned => Feed::Handle(Watcher::start(client, request, options).map_err(|e| e.to_string())?),
        Form::SendTo => {
            let (tx, rx) = mpsc::channel(capacity);
            let handle = Watcher::start(client, request, options.send_to(tx)).map_err(|e| e.to_string())?;
            Feed::SendTo(handle, rx)
        }
        Form::Stream => Feed::Stream(Watcher::stream(client, request, options).map_err(|e| e.to_string())?),
        Form::Supervised => {
            Feed::Handle(Watcher::supervise(client, request, options).map_err(|e| e.to_string())?)
        }
    };
    Ok(feed)
}

/// A consumer's state.
struct Consumer {
    name: String,
    segments: Vec<Segment>,
    /// The objects of the list being delivered, while one is.
    listing: Option<Vec<(Key, u64)>>,
    cache: BTreeMap<Key, Cached>,
    counts: Counts,
    progress: Arc<Mutex<Progress>>,
}

impl Consumer {
    fn set_progress(&self, watching: bool, at: u64) {
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        p.watching = watching;
        p.at = at;
    }

    /// Takes one event; an error is a broken promise (or a watcher that gave up).
    fn on_event<K: Object>(&mut self, event: Event<K>) -> Result<(), String> {
        let name = &self.name;
        let event_type = event.event_type();
        let rv = event.resource_version.clone();
        let parse_rv = |rv: Option<String>| -> Result<u64, String> {
            let rv = rv.ok_or_else(|| format!("{name}: a {event_type} event without a resourceVersion"))?;
            rv.parse()
                .map_err(|e| format!("{name}: a {event_type} event with resourceVersion {rv:?}: {e}"))
        };
        match event.kind {
            EventKind::Added(object) | EventKind::Modified(object) | EventKind::Deleted(object) => {
                let rv = parse_rv(rv)?;
                let key = (
                    object.namespace().unwrap_or_default().to_string(),
                    object.name().to_string(),
                );
                let mark = object
                    .meta()
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(MARK))
                    .cloned()
                    .unwrap_or_default();
                if let Some(listing) = &mut self.listing {
                    if event_type != EventType::Added {
                        return Err(format!("{name}: a {event_type} event during an initial list"));
                    }
                    listing.push((key.clone(), rv));
                    self.cache.insert(key, Cached { rv, mark });
                    self.counts.listed += 1;
                    return Ok(());
                }
                let segment = self
                    .segments
                    .last_mut()
                    .ok_or_else(|| format!("{name}: an event before any list"))?;
                let last = segment.events.last().map_or(segment.list_rv, |d| d.rv);
                if rv <= last {
                    return Err(format!(
                        "{name}: resourceVersion {rv} ({event_type} {}/{}) after {last}: not strictly increasing",
                        key.0, key.1
                    ));
                }
                segment.events.push(Delivered {
                    rv,
                    event: event_type,
                    key: key.clone(),
                });
                if event_type == EventType::Deleted {
                    self.cache.remove(&key);
                } else {
                    self.cache.insert(key, Cached { rv, mark });
                }
                self.counts.events += 1;
                self.set_progress(true, rv);
            }
            EventKind::Synced => {
                let list_rv = parse_rv(rv)?;
                let listed = self
                    .listing
                    .take()
                    .ok_or_else(|| format!("{name}: Synced without a list"))?;
                self.segments.push(Segment {
                    list_rv,
                    listed,
                    events: Vec::new(),
                    ended_by_gone: false,
                });
                self.counts.lists += 1;
                self.set_progress(true, list_rv);
            }
            EventKind::Gone { .. } => {
                self.counts.gones += 1;
                if self.listing.is_some() {
                    self.counts.gones_while_listing += 1;
                } else if let Some(segment) = self.segments.last_mut() {
                    segment.ended_by_gone = true;
                }
                // Clear the cache; the relist fills it again.
                self.cache.clear();
                self.listing = Some(Vec::new());
                self.set_progress(false, 0);
            }
            EventKind::Failed(error) => return Err(format!("{name}: the watcher failed: {error}")),
            EventKind::Skipped(error) => return Err(format!("{name}: an event was skipped: {error}")),
            EventKind::Bookmark => {}
        }
        Ok(())
    }
}

fn add_stats(counts: &mut Counts, stats: Option<WatcherStats>) {
    if let Some(s) = stats {
        *counts.resumes.get_or_insert(0) += s.resumes;
        *counts.retries.get_or_insert(0) += s.retries;
        *counts.bookmarks.get_or_insert(0) += s.bookmarks;
    }
}

/// Runs a consumer until `stop`; returns what it saw.
pub async fn run<K>(
    spec: Spec,
    client: Client,
    request: Request<ObjectList<K>>,
    options: WatcherOptions,
    stop: CancellationToken,
    progress: Arc<Mutex<Progress>>,
) -> Result<Record, String>
where
    K: Object + DeserializeOwned + Send + 'static,
{
    let options = options
        .deliver_initial_list(true)
        .page_size(spec.page_size)
        .name(spec.name());
    // Consumers that stop mid-churn get small channels, so that the stop finds them full.
    let (options, capacity) = match spec.stop_every {
        Some(_) => (options.channel_capacity(2), 2),
        None => (options, 64),
    };
    let mut since_stop = 0u64;
    let mut consumer = Consumer {
        name: spec.name(),
        segments: Vec::new(),
        listing: Some(Vec::new()),
        cache: BTreeMap::new(),
        counts: Counts::default(),
        progress,
    };
    let mut feed = open(spec.form, &client, &request, &options, capacity)?;
    // Bounded by `stop`, which the test cancels within its own bound; the count is a backstop.
    for _ in 0..100_000_000u64 {
        let event = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            event = feed.next() => event,
        };
        let Some(event) = event else {
            return Err(format!(
                "{}: the watcher ended without Gone or Failed",
                consumer.name
            ));
        };
        let gone = matches!(event.kind, EventKind::Gone { .. });
        let watched = consumer.listing.is_none() && event.object().is_some();
        consumer.on_event(event)?;
        if gone && spec.form != Form::Supervised {
            // The watcher has ended: start a new one, which lists first.
            add_stats(&mut consumer.counts, feed.stats());
            feed.stop().await;
            feed = open(spec.form, &client, &request, &options, capacity)?;
            consumer.counts.restarts += 1;
            continue;
        }
        since_stop += u64::from(watched);
        if spec.stop_every.is_some_and(|every| since_stop >= every) {
            since_stop = 0;
            add_stats(&mut consumer.counts, feed.stats());
            let resume = feed.stop_and_drain(|event| consumer.on_event(event)).await?;
            consumer.counts.stops += 1;
            feed = if consumer.listing.is_some() {
                // What was left in the channel ended with a Gone: relist.
                open(spec.form, &client, &request, &options, capacity)?
            } else {
                let rv = resume.ok_or_else(|| {
                    format!(
                        "{}: stopped while watching, but no version to resume from",
                        consumer.name
                    )
                })?;
                open(
                    spec.form,
                    &client,
                    &request,
                    &options.clone().resource_version(rv),
                    capacity,
                )?
            };
        }
    }
    add_stats(&mut consumer.counts, feed.stats());
    feed.stop().await;
    Ok(Record {
        spec,
        segments: consumer.segments,
        cache: consumer.cache,
        counts: consumer.counts,
    })
}
