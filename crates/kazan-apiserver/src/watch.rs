//! One watch stream: initial events (synthetic ADDED or history replay), then live events from the
//! resource's broadcast channel, filtered by namespace and selectors (an object entering the
//! selection becomes ADDED, one leaving it DELETED), with bookmarks, a timeout that ends the body
//! cleanly, and the watch faults. Each watch runs on its own task and writes into a small bounded
//! channel; a watch whose client does not keep up falls behind the broadcast ring and is ended
//! cleanly, so writers and other watchers never wait for it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::body::{BodyWriter, WriteEnd};
use crate::faults::WatchCommand;
use crate::journal::{LiveEntry, WatchGuard};
use crate::registry::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Event, EventType, Store, WatchStart, event_line, set_path, with_type};
use crate::table;

/// Which objects a list or watch selects.
#[derive(Clone, Debug, Default)]
pub(crate) struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub(crate) fn matches(&self, object: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && object.pointer("/metadata/namespace").and_then(Value::as_str) != Some(ns.as_str())
        {
            return false;
        }
        self.labels.matches(object) && self.fields.matches(object)
    }
}

/// Everything a watch task needs.
pub(crate) struct WatchTask {
    pub def: Arc<ResourceDef>,
    pub store: Arc<Store>,
    pub filter: Filter,
    pub start: WatchStart,
    pub rx: broadcast::Receiver<Arc<Event>>,
    pub capacity: usize,
    pub bookmarks: bool,
    pub initial_end_bookmark: bool,
    pub timeout: Duration,
    pub bookmark_interval: Duration,
    pub table: bool,
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
        loop {
            let bookmark_at = match pre_close_bookmark {
                Some(at) if at < next_bookmark => at,
                _ => next_bookmark,
            };
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Ok(End::Clean),
                _ = self.writer.closed() => return Err(WriteEnd::Closed),
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
                                self.send_bookmark(start_rv, true).await?;
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return Ok(End::Clean),
                _ = tokio::time::sleep_until(bookmark_at), if self.bookmarks => {
                    if pre_close_bookmark.is_some_and(|at| at <= Instant::now()) {
                        pre_close_bookmark = None;
                    } else {
                        next_bookmark = Instant::now() + self.bookmark_interval;
                    }
                    self.send_bookmark(start_rv, false).await?;
                }
                received = self.rx.recv() => {
                    let mut next = match received {
                        Ok(event) => Some(event),
                        Err(RecvError::Lagged(_)) => return Err(WriteEnd::Lagged),
                        Err(RecvError::Closed) => return Ok(End::Clean),
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
                            Err(TryRecvError::Lagged(_)) => outcome = Some(Err(WriteEnd::Lagged)),
                            Err(TryRecvError::Closed) => outcome = Some(Ok(End::Clean)),
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
    async fn send_bookmark(&mut self, start_rv: u64, forced: bool) -> Result<(), WriteEnd> {
        let published = self.store.published_rv();
        let mut last_rv = start_rv;
        loop {
            match self.rx.try_recv() {
                Ok(event) => {
                    last_rv = last_rv.max(event.rv);
                    if let Some(line) = self.translate(&event, start_rv) {
                        self.send(line).await?;
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(_)) => return Err(WriteEnd::Lagged),
                Err(TryRecvError::Closed) => break,
            }
        }
        let rv = published.max(last_rv);
        if rv > start_rv || forced {
            let line = bookmark_line(&self.def, rv, false);
            self.send(line).await?;
        }
        Ok(())
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
        object.get("apiVersion").and_then(Value::as_str) != Some(self.def.api_version().as_str())
    }

    /// Serializes one event for this watch (typed for the watched version, or as a Table).
    fn render(&self, kind: &str, object: &Value) -> Bytes {
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

    async fn write(&mut self, bytes: Bytes, lines: u64) -> Result<(), WriteEnd> {
        let rx = &self.rx;
        let capacity = self.capacity;
        let lagging = || rx.len() > capacity;
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
const BATCH_BYTES: usize = 64 * 1024;

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
