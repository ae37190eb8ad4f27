//! One watch stream: initial events (synthetic ADDED or history replay), then live events from the
//! watch's own bounded queue, which the store fills with the events the watch selects (an object
//! entering the selection becomes ADDED, one leaving it DELETED), with bookmarks, a timeout that
//! ends the body cleanly, and the watch faults. Each watch runs on its own task and writes into a
//! small bounded channel; a watch whose client does not keep up fills its queue, is dropped by the
//! store and ends cleanly, so writers and other watchers never wait for it.

use std::borrow::Cow;

use super::list::{build_filter, parse_rv};
use super::reply::{Ctx, JSON, Reply};
use crate::app::App;
use crate::body::BodyWriter;
use crate::body::WriteEnd;
use crate::instruments::faults::WatchCommand;
use crate::instruments::journal::LiveEntry;
use crate::instruments::journal::WatchGuard;
use crate::registry::ResourceDef;
use crate::selector::Filter;
use crate::selector::{FieldSelector, supported_fields};
use crate::status::{FieldCause, Status};
use crate::store::{Event, EventType, WatchStart, event_line, set_path};
use crate::store::{StartRequest, Store, VersionError, with_type};
use crate::table;
use bytes::Bytes;
use bytes::BytesMut;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc::{self, error::TryRecvError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Chunks a watch may have written that the connection has not taken yet. With batches of at
/// most 32 KiB this bounds a watch's own buffer to about 128 KiB (plus hyper's and the socket's).
pub(super) const WATCH_CHUNKS: usize = 4;

/// Longest watch a client can ask for (keeps deadlines representable).
pub(super) const MAX_WATCH_SECONDS: u64 = 366 * 24 * 3600;

pub(super) async fn watch(
    app: &Arc<App>,
    ctx: &Ctx,
    def: &Arc<ResourceDef>,
    ns: Option<&str>,
    pinned_name: Option<&str>,
    target: crate::conversion::Target,
) -> Reply {
    if let crate::conversion::Target::PartialList(_) = target {
        // Each event's object is one object: `asPartialObjectMetadataList` refuses it.
        return crate::conversion::convert(target, &serde_json::json!({}))
            .err()
            .map_or_else(
                || Status::internal("conversion").into(),
                |status| (*status).into(),
            );
    }
    let q = &ctx.query;
    let send_initial = q.optional_flag("sendInitialEvents");
    let rv_match = q.get("resourceVersionMatch").filter(|m| !m.is_empty());
    // validateWatchOptions.
    let mut causes = Vec::new();
    if send_initial.is_some() {
        if rv_match != Some("NotOlderThan") {
            causes.push(FieldCause::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if app.faults.rejects_watch_list() {
            causes.push(FieldCause::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
            ));
        }
    }
    if let Some(m) = rv_match {
        if send_initial.is_none() {
            causes.push(FieldCause::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ));
        }
        if m != "NotOlderThan" {
            causes.push(FieldCause::not_supported(
                "resourceVersionMatch",
                m,
                &["NotOlderThan"],
            ));
        }
        if q.non_empty("continue").is_some() {
            causes.push(FieldCause::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
    }
    if !causes.is_empty() {
        return Status::invalid_list_options(&causes).into();
    }
    let mut filter = match build_filter(ctx, def, ns, app.settings.sharding) {
        Ok(f) => f,
        Err(s) => return s.into(),
    };
    if let Some(name) = pinned_name {
        let supported = supported_fields(&def.group, &def.kind);
        let extra = format!("metadata.name={name}");
        let combined = match q.non_empty("fieldSelector") {
            Some(existing) => format!("{existing},{extra}"),
            None => extra,
        };
        match FieldSelector::parse(&combined, &supported) {
            Ok(f) => filter.fields = f,
            Err(e) => return Status::bad_request(e.to_string()).into(),
        }
    }
    let requested = match parse_rv(q.get("resourceVersion")) {
        Ok(rv) => rv.unwrap_or(0),
        Err(s) => return s.into(),
    };
    let timeout = match q.non_empty("timeoutSeconds").map(str::parse::<u64>) {
        None | Some(Ok(0)) => app.settings.default_watch_timeout,
        Some(Ok(s)) => Duration::from_secs(s.min(MAX_WATCH_SECONDS)),
        Some(Err(_)) => return Status::bad_request("invalid value for timeoutSeconds").into(),
    };
    let bookmarks = q.flag("allowWatchBookmarks");
    let table = table::wants_table(&ctx.accept);
    // Watch streams are `application/json` whatever the objects are (§3.1).
    let content_type = JSON;

    let (start, initial_end_bookmark) = match send_initial {
        Some(true) => {
            if requested > app.store.current_rv()
                && !app
                    .store
                    .wait_for_rv(requested, app.settings.too_large_wait)
                    .await
            {
                let status = Status::resource_version_too_large(requested, app.store.current_rv());
                return single_event_stream(ctx, error_line(&status), content_type);
            }
            (StartRequest::Initial, bookmarks)
        }
        Some(false) => (
            StartRequest::From(if requested == 0 {
                app.store.current_rv()
            } else {
                requested
            }),
            false,
        ),
        None if requested == 0 => (
            StartRequest::Initial,
            bookmarks && app.settings.watch_list_defaulting && !app.faults.rejects_watch_list(),
        ),
        None => (StartRequest::From(requested), false),
    };
    let filter = Arc::new(filter);
    let (start, subscription) = match app.store.subscribe(def, start, filter.clone()) {
        Ok(s) => s,
        Err(VersionError::TooOld { floor }) => {
            let status = app.faults.expired_status(requested, floor);
            if app.faults.expired_as_http() {
                return status.into();
            }
            return single_event_stream(ctx, error_line(&status), content_type);
        }
        Err(VersionError::TooLarge { current }) => {
            return Status::resource_version_too_large(requested, current).into();
        }
    };
    let (writer, body) = BodyWriter::new(WATCH_CHUNKS, ctx.split.clone(), ctx.delay);
    let observer = app.observer.clone();
    let task = WatchTask {
        def: def.clone(),
        api_version: def.api_version(),
        store: app.store.clone(),
        filter,
        start,
        rx: subscription.rx,
        lagged: subscription.lagged,
        bookmarks,
        initial_end_bookmark,
        timeout,
        bookmark_interval: app.settings.bookmark_interval,
        table,
        table_columns_sent: std::cell::Cell::new(false),
        partial: crate::conversion::partial_watch(target),
        control: app.faults.state.control.subscribe(),
        shutdown: app.shutdown.clone(),
        end_after_events: app.faults.end_after_events(),
        writer,
        live: ctx.live.clone(),
        guard: app.observer.watch_started(&def.plural),
        on_lag: Box::new(move || observer.watch_lagged()),
    };
    tokio::spawn(task.run());
    Reply::Stream(body, content_type)
}

/// A 200 watch stream that sends one line (an ERROR event) and ends.
pub(super) fn single_event_stream(ctx: &Ctx, line: Bytes, content_type: &'static str) -> Reply {
    let (mut writer, body) = BodyWriter::new(2, ctx.split.clone(), ctx.delay);
    let live = ctx.live.clone();
    tokio::spawn(async move {
        if writer.write(line, &|| false).await.is_ok() {
            live.events.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    Reply::Stream(body, content_type)
}

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
    /// A Table watch sends the column definitions on its first event only, `null` after: set
    /// once they went out.
    pub table_columns_sent: std::cell::Cell<bool>,
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
                    batch.push(self.bookmark(snapshot_rv, true));
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
                            if self.bookmarks
                                && let Some(end) = self.send_bookmark(start_rv, true, &mut changes_sent).await?
                            {
                                return Ok(end);
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
            batch.push(self.bookmark(rv, false));
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
        let plain = !self.table && self.partial.is_none() && !self.needs_retyping(&event.object);
        let current = self.filter.matches(&event.object);
        let (kind, object): (&str, Cow<'_, Value>) = match event.kind {
            EventType::Added | EventType::Deleted => {
                if !current {
                    return None;
                }
                if plain {
                    return Some(event.line.clone());
                }
                (event.kind.as_str(), Cow::Borrowed(&*event.object))
            }
            EventType::Modified => {
                let before = event.prev.as_deref().is_some_and(|p| self.filter.matches(p));
                match (before, current) {
                    (true, true) => {
                        if plain {
                            return Some(event.line.clone());
                        }
                        ("MODIFIED", Cow::Borrowed(&*event.object))
                    }
                    (false, true) => ("ADDED", Cow::Borrowed(&*event.object)),
                    (true, false) => {
                        // Left the selection: DELETED with the previous content and the new version.
                        let mut previous = event.prev.as_deref().cloned().unwrap_or(Value::Null);
                        set_path(
                            &mut previous,
                            &["metadata", "resourceVersion"],
                            json!(event.rv.to_string()),
                        );
                        ("DELETED", Cow::Owned(previous))
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
        if let Some(version) = self.partial {
            // Only the metadata is written: nothing to retype, no full line to parse again.
            return crate::conversion::partial_event_line(kind, object, version);
        }
        if !self.table && !self.needs_retyping(object) {
            return event_line(kind, object);
        }
        let typed = with_type(&self.def, object);
        if self.table
            && let Some(table) = self.as_table(&typed)
        {
            return event_line(kind, &table);
        }
        event_line(kind, &typed)
    }

    /// One event's object as the Table of one row that the real server sends: the column
    /// definitions with the first event of the watch (bookmarks included), `null` afterwards
    /// (apiserver `pkg/endpoints/handlers/response.go`, `watchEmbeddedEncoder.doEncode`, which
    /// sets `NoHeaders` after the first object; kubectl's table printer reuses the columns it
    /// has). `None` for a resource without a Table.
    fn as_table(&self, object: &Value) -> Option<Value> {
        let mut table = table::to_table(&self.def, &[object], None);
        if table.is_null() {
            return None;
        }
        if self.table_columns_sent.replace(true) {
            table["columnDefinitions"] = Value::Null;
        }
        Some(table)
    }

    /// A BOOKMARK line; in a Table watch, a Table as every other event's object (asTable keeps the
    /// `k8s.io/initial-events-end` annotation in the row's object).
    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let line = bookmark_line(&self.def, rv, initial_events_end);
        if let Some(version) = self.partial {
            return crate::conversion::partial_event_lines(&line, version);
        }
        if !self.table {
            return line;
        }
        let object = serde_json::from_slice::<Value>(&line)
            .ok()
            .and_then(|mut event| event.get_mut("object").map(Value::take));
        match object.and_then(|object| self.as_table(&object)) {
            Some(table) => event_line("BOOKMARK", &table),
            None => line,
        }
    }

    /// Writes a line made elsewhere (an ERROR, a test's injected line): a metadata-only watch
    /// converts it here, where every line this watch renders itself is converted as it is made.
    async fn send(&mut self, line: Bytes) -> Result<(), WriteEnd> {
        let line = match self.partial {
            Some(version) => crate::conversion::partial_event_lines(&line, version),
            None => line,
        };
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
