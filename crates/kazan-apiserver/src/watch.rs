//! One watch stream: initial events (synthetic ADDED or history replay), then live events from the
//! watch's own bounded queue, which the store fills with the events the watch selects (an object
//! entering the selection becomes ADDED, one leaving it DELETED), with bookmarks, a timeout that
//! ends the body cleanly, and the watch faults. Each watch runs on its own task and writes into a
//! small bounded channel; a watch whose client does not keep up fills its queue, is dropped by the
//! store and ends cleanly, so writers and other watchers never wait for it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};
use std::sync::atomic::AtomicBool;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc::{self, error::TryRecvError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::body::{BodyWriter, WriteEnd};
use crate::faults::WatchCommand;
use crate::journal::{LiveEntry, WatchGuard};
use crate::registry::ResourceDef;
use crate::selector::Filter;
use crate::store::{Event, EventType, Store, WatchStart, event_line, set_path, with_type};
use crate::table;

/// Everything a watch task needs.
pub(crate) struct WatchTask {
    pub def: Arc<ResourceDef>,
    /// `def.api_version()`, computed once.
    pub api_version: String,
    pub store: Arc<Store>,
    pub filter: Arc<Filter>,
    pub start: WatchStart,
    /// The watch's queue, filled by the store with the events it selects.
    pub rx: mpsc::Receiver<Arc<Event>>,
    /// Set by the store when it dropped the queue because it was full.
    pub lagged: Arc<AtomicBool>,
    pub bookmarks: bool,
    pub initial_end_bookmark: bool,
    pub timeout: Duration,
    pub bookmark_interval: Duration,
    pub table: bool,
    /// `Some(version)`: every event's object as `PartialObjectMetadata` (conversion.rs).
    pub partial: Option<&'static str>,
    pub control: broadcast::Receiver<WatchCommand>,
    pub shutdown: CancellationToken,
    pub end_after_events: Option<u64>,
    pub writer: BodyWriter,
    pub live: Arc<LiveEntry>,
    pub guard: WatchGuard,
    pub on_lag: Box<dyn Fn() + Send>,
}

/// How the watch loop ended.
enum End {
    Clean,
    Cut,
}

impl WatchTask {
    /// Runs the watch to its end.
    pub(crate) async fn run(mut self) {
        let deadline = Instant::now() + self.timeout;
        let end = match self.stream(deadline).await {
            Ok(end) => end,
            Err(WriteEnd::Lagged) => {
                (self.on_lag)();
                End::Clean
            }
            Err(WriteEnd::Closed) => End::Clean,
        };
        let WatchTask {
            writer,
            guard,
            def,
            store,
            ..
        } = self;
        drop(guard);
        if let End::Cut = end {
            let line = bookmark_line(&def, store.published_rv(), false);
            let half = line.slice(..line.len() / 2);
            writer.cut(half).await;
        }
    }

    async fn stream(&mut self, deadline: Instant) -> Result<End, WriteEnd> {
        // The version the watch starts after: only events newer than it are sent.
        let start_rv = match &self.start {
            WatchStart::Initial { snapshot_rv, .. } => *snapshot_rv,
            WatchStart::Replay { from, .. } => *from,
        };
        let mut changes_sent = 0u64;
        let mut batch = Batch::default();
        match std::mem::replace(
            &mut self.start,
            WatchStart::Replay {
                events: Vec::new(),
                from: start_rv,
            },
        ) {
            WatchStart::Initial { objects, snapshot_rv } => {
                for object in objects {
                    if self.filter.matches(&object) {
                        batch.push(self.render("ADDED", &object));
                        if batch.is_full() {
                            self.flush(&mut batch).await?;
                        }
                    }
                }
                if self.initial_end_bookmark {
                    batch.push(bookmark_line(&self.def, snapshot_rv, true));
                }
                self.flush(&mut batch).await?;
            }
            WatchStart::Replay { events, from } => {
                for event in events {
                    if let Some(line) = self.translate(&event, from) {
                        batch.push(line);
                        changes_sent += 1;
                        if self.end_after_events.is_some_and(|k| changes_sent >= k) {
                            self.flush(&mut batch).await?;
                            return Ok(End::Clean);
                        }
                        if batch.is_full() {
                            self.flush(&mut batch).await?;
                        }
                    }
                }
                self.flush(&mut batch).await?;
            }
        }
        let lead = if self.timeout >= Duration::from_secs(4) {
            Duration::from_secs(2)
        } else {
            self.timeout / 4
        };
        let mut pre_close_bookmark = self.bookmarks.then(|| deadline - lead);
        let mut next_bookmark = Instant::now() + self.bookmark_interval;
        // Long-lived futures, created once: the loop runs for every event of every watch.
        let shutdown = self.shutdown.clone().cancelled_owned();
        let client_gone = self.writer.closed_signal();
        let timeout = tokio::time::sleep_until(deadline);
        let bookmark_timer = tokio::time::sleep_until(next_bookmark);
        tokio::pin!(shutdown, client_gone, timeout, bookmark_timer);
        loop {
            let bookmark_at = match pre_close_bookmark {
                Some(at) if at < next_bookmark => at,
                _ => next_bookmark,
            };
            if self.bookmarks && bookmark_timer.deadline() != bookmark_at {
                bookmark_timer.as_mut().reset(bookmark_at);
            }
            tokio::select! {
                biased;
                _ = &mut shutdown => return Ok(End::Clean),
                _ = &mut client_gone => return Err(WriteEnd::Closed),
                command = self.control.recv() => {
                    let command = match command {
                        Ok(c) => c,
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => return Ok(End::Clean),
                    };
                    if !command.applies_to(&self.def.plural, &self.def.group) {
                        continue;
                    }
                    match command {
                        WatchCommand::End(_) => return Ok(End::Clean),
                        WatchCommand::Cut(_) => return Ok(End::Cut),
                        WatchCommand::Stall(_, duration) => {
                            tokio::select! {
                                _ = tokio::time::sleep(duration) => {}
                                _ = self.shutdown.cancelled() => return Ok(End::Clean),
                            }
                        }
                        WatchCommand::Bookmark(_) => {
                            if self.bookmarks {
                                if let Some(end) = self.send_bookmark(start_rv, true, &mut changes_sent).await? {
                                    return Ok(end);
                                }
                            }
                        }
                        WatchCommand::Inject(_, bytes) => self.send(bytes).await?,
                        WatchCommand::Expire(_, style) => {
                            self.send(error_line(&style.status(start_rv))).await?;
                            return Ok(End::Clean);
                        }
                    }
                }
                _ = &mut timeout => return Ok(End::Clean),
                _ = &mut bookmark_timer, if self.bookmarks => {
                    if pre_close_bookmark.is_some_and(|at| at <= Instant::now()) {
                        pre_close_bookmark = None;
                    } else {
                        next_bookmark = Instant::now() + self.bookmark_interval;
                    }
                    if let Some(end) = self.send_bookmark(start_rv, false, &mut changes_sent).await? {
                        return Ok(end);
                    }
                }
                received = self.rx.recv() => {
                    let mut next = match received {
                        Some(event) => Some(event),
                        None => return self.queue_ended(),
                    };
                    // Everything already queued goes out in one chunk, flushed when the queue is
                    // empty (as the real server flushes).
                    let mut outcome = None;
                    while let Some(event) = next.take() {
                        if let Some(line) = self.translate(&event, start_rv) {
                            batch.push(line);
                            changes_sent += 1;
                            if self.end_after_events.is_some_and(|k| changes_sent >= k) {
                                outcome = Some(Ok(End::Clean));
                                break;
                            }
                        }
                        if batch.is_full() {
                            break;
                        }
                        match self.rx.try_recv() {
                            Ok(event) => next = Some(event),
                            Err(TryRecvError::Empty) => {}
                            Err(TryRecvError::Disconnected) => outcome = Some(self.queue_ended()),
                        }
                    }
                    self.flush(&mut batch).await?;
                    if let Some(outcome) = outcome {
                        return outcome;
                    }
                }
            }
        }
    }

    /// Sends a bookmark at the current version, after delivering every event up to it. A bookmark
    /// not newer than the start version is not sent unless forced (as the watch cache does).
    async fn send_bookmark(
        &mut self,
        start_rv: u64,
        forced: bool,
        changes_sent: &mut u64,
    ) -> Result<Option<End>, WriteEnd> {
        let published = self.store.published_rv();
        let mut last_rv = start_rv;
        let mut batch = Batch::default();
        loop {
            match self.rx.try_recv() {
                Ok(event) => {
                    last_rv = last_rv.max(event.rv);
                    if let Some(line) = self.translate(&event, start_rv) {
                        batch.push(line);
                        *changes_sent += 1;
                        if self.end_after_events.is_some_and(|k| *changes_sent >= k) {
                            self.flush(&mut batch).await?;
                            return Ok(Some(End::Clean));
                        }
                        if batch.is_full() {
                            self.flush(&mut batch).await?;
                        }
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.flush(&mut batch).await?;
                    return self.queue_ended().map(Some);
                }
            }
        }
        let rv = published.max(last_rv);
        if rv > start_rv || forced {
            batch.push(bookmark_line(&self.def, rv, false));
        }
        self.flush(&mut batch).await?;
        Ok(None)
    }

    /// The line this watch sends for a stored event, if any.
    fn translate(&self, event: &Event, start_rv: u64) -> Option<Bytes> {
        if event.rv <= start_rv {
            return None;
        }
        // The precomputed line serves every watch that sends the event as stored.
        let plain = !self.table && !self.needs_retyping(&event.object);
        let current = self.filter.matches(&event.object);
        let (kind, object): (&str, Value) = match event.kind {
            EventType::Added | EventType::Deleted => {
                if !current {
                    return None;
                }
                if plain {
                    return Some(event.line.clone());
                }
                (event.kind.as_str(), Value::clone(&event.object))
            }
            EventType::Modified => {
                let before = event.prev.as_deref().is_some_and(|p| self.filter.matches(p));
                match (before, current) {
                    (true, true) => {
                        if plain {
                            return Some(event.line.clone());
                        }
                        ("MODIFIED", Value::clone(&event.object))
                    }
                    (false, true) => ("ADDED", Value::clone(&event.object)),
                    (true, false) => {
                        // Left the selection: DELETED with the previous content and the new version.
                        let mut previous = event.prev.as_deref().cloned().unwrap_or(Value::Null);
                        set_path(
                            &mut previous,
                            &["metadata", "resourceVersion"],
                            json!(event.rv.to_string()),
                        );
                        ("DELETED", previous)
                    }
                    (false, false) => return None,
                }
            }
        };
        Some(self.render(kind, &object))
    }

    fn needs_retyping(&self, object: &Value) -> bool {
        object.get("apiVersion").and_then(Value::as_str) != Some(self.api_version.as_str())
    }

    /// Serializes one event for this watch (typed for the watched version, or as a Table).
    fn render(&self, kind: &str, object: &Value) -> Bytes {
        if !self.table && !self.needs_retyping(object) {
            return event_line(kind, object);
        }
        let typed = with_type(&self.def, object);
        if self.table {
            let table = table::to_table(&self.def, &[&typed], None);
            if !table.is_null() {
                return event_line(kind, &table);
            }
        }
        event_line(kind, &typed)
    }

    async fn send(&mut self, line: Bytes) -> Result<(), WriteEnd> {
        self.write(line, 1).await
    }

    /// Writes the batched lines as one chunk.
    async fn flush(&mut self, batch: &mut Batch) -> Result<(), WriteEnd> {
        if batch.lines == 0 {
            return Ok(());
        }
        let lines = std::mem::take(&mut batch.lines);
        let bytes = std::mem::take(&mut batch.bytes).freeze();
        self.write(bytes, lines).await
    }

    /// The store closed the queue: because the watch fell behind, or because the resource went
    /// away (a deleted CRD).
    fn queue_ended(&self) -> Result<End, WriteEnd> {
        if self.lagged.load(Ordering::Acquire) {
            Err(WriteEnd::Lagged)
        } else {
            Ok(End::Clean)
        }
    }

    async fn write(&mut self, bytes: Bytes, lines: u64) -> Result<(), WriteEnd> {
        // Hook: a metadata-only watch converts every line it writes (conversion.rs).
        let bytes = match self.partial {
            Some(version) => crate::conversion::partial_event_lines(&bytes, version),
            None => bytes,
        };
        let lagged = &self.lagged;
        let lagging = || lagged.load(Ordering::Acquire);
        self.writer.write(bytes, &lagging).await?;
        self.live.events.fetch_add(lines, Ordering::Relaxed);
        Ok(())
    }
}

/// Event lines waiting to be written together.
#[derive(Default)]
struct Batch {
    bytes: BytesMut,
    lines: u64,
}

/// A batch is written once it reaches this size.
const BATCH_BYTES: usize = 32 * 1024;

impl Batch {
    fn push(&mut self, line: Bytes) {
        self.bytes.extend_from_slice(&line);
        self.lines += 1;
    }

    fn is_full(&self) -> bool {
        self.bytes.len() >= BATCH_BYTES
    }
}

/// `{"type":"BOOKMARK","object":{"kind":K,"apiVersion":V,"metadata":{"resourceVersion":"R"}}}`,
/// with the `k8s.io/initial-events-end` annotation for the end of a watch-list's initial events.
pub(crate) fn bookmark_line(def: &ResourceDef, rv: u64, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let object = json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": metadata});
    event_line("BOOKMARK", &object)
}

/// `{"type":"ERROR","object":<Status>}`.
pub(crate) fn error_line(status: &crate::status::Status) -> Bytes {
    event_line("ERROR", &status.to_value())
}
