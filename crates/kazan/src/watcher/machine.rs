//! The watcher's state machine: list (when it has no version), open a watch from the last version,
//! read events, and decide what every ending means. Every input the server can send is handled in
//! one visible place:
//!
//! - what any error means (retry, Gone or the end): [`WatchError::disposition`], one table, and
//!   [`Machine::on_error`], the one place that acts on it;
//! - what happens on a 410, wherever it comes from (an HTTP 410 answer to a list or a watch, an
//!   ERROR event with code 410 or reason `Expired`/`Gone`, an expired continue token after pages
//!   were delivered): [`Machine::on_gone`]: a `Gone` event with the server's message, then the end;
//! - what happens when the connection drops or the server ends the watch: [`Machine::on_stream_end`]:
//!   resume from the last version, at once after a clean end, after a backoff after an error;
//! - what happens on each event line: [`Machine::on_item`].

use std::{
    any::TypeId,
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde::de::DeserializeOwned;
use tokio::{task::JoinHandle, time::Instant};
use tracing::Level;

use super::{
    backoff::Backoff,
    decode::{Decoded, ObjectEvent, decode_line_reading},
    error::{Disposition, WatchError},
    event::{Event, EventKind, WatcherId},
    frame::{Frame, LineFramer},
    idle::IdleTimer,
    options::{InitialList, WatcherOptions},
    stats::StatsCell,
    step::{Resume, Step},
};
use crate::{
    Client, Error, Object, RawObject,
    client::BodyStream,
    raw::IdentityRead,
    request::{Request, Verb, VersionMatch, WatchEvents},
    resource::ObjectList,
};

/// A watch that ends this quickly without an event is treated as a failure (backoff), so a server
/// or proxy that closes every watch at once is not hammered.
const SHORT_WATCH: Duration = Duration::from_secs(1);

/// After this many malformed lines in a row at the same version, the line is skipped (reported)
/// instead of resuming again, so a server that always sends the same bad line cannot loop us.
const MALFORMED_RETRIES: u32 = 3;

/// Settings the machine reads; the non-generic part of [`WatcherOptions`].
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) log: Option<Level>,
    pub(crate) bookmarks: bool,
    pub(crate) deliver_bookmarks: bool,
    pub(crate) deliver_initial_list: bool,
    pub(crate) page_size: u32,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_line_bytes: usize,
    pub(crate) decode_concurrency: usize,
    pub(crate) fixed_timeout: Option<u32>,
    /// How much of a lazy object's metadata each line is read for: the forms that decode every
    /// object later need only its name and version now.
    pub(crate) identity_read: IdentityRead,
    /// The parser that builds typed objects.
    pub(crate) decoder: crate::Decoder,
    /// The shard watched, if any: objects of other shards are not delivered.
    pub(crate) shard: Option<Arc<crate::shard::ShardSelector>>,
    watch_timeout: std::ops::Range<u32>,
    initial_list: InitialList,
    /// Set once the server showed it does not stream lists ([`InitialList::Auto`]); shared by
    /// every stream of the watcher, so a relist after Gone lists page by page at once.
    streaming_refused: Arc<AtomicBool>,
}

impl Settings {
    pub(crate) fn from_options<S>(
        o: &WatcherOptions<S>,
        fixed_timeout: Option<u32>,
        initial_list: InitialList,
    ) -> Self {
        Settings {
            log: o.log,
            bookmarks: o.bookmarks,
            deliver_bookmarks: o.deliver_bookmarks,
            deliver_initial_list: o.deliver_initial_list,
            page_size: o.page_size,
            idle_timeout: o.idle_timeout,
            max_line_bytes: o.max_line_bytes,
            decode_concurrency: o.decode_concurrency,
            fixed_timeout,
            identity_read: IdentityRead::Full,
            decoder: o.decoder,
            shard: o.shard.clone(),
            watch_timeout: o.watch_timeout.clone(),
            initial_list,
            streaming_refused: Arc::default(),
        }
    }

    /// Whether the initial list is streamed (only when it is delivered).
    fn streams_initial_list(&self) -> bool {
        self.deliver_initial_list
            && match self.initial_list {
                InitialList::Streaming => true,
                InitialList::Auto => !self.streaming_refused.load(Ordering::Relaxed),
                InitialList::Paginated => false,
            }
    }

    fn timeout_seconds(&self) -> u32 {
        self.fixed_timeout
            .unwrap_or_else(|| fastrand::u32(self.watch_timeout.clone()))
    }
}

/// One decoded line, or an over-long line that was dropped.
enum Item<K> {
    Decoded { decoded: Decoded<K>, len: usize },
    TooLong { len: usize },
}

fn decode_frame<K: DeserializeOwned + 'static>(
    frame: Frame,
    read: IdentityRead,
    decoder: crate::Decoder,
) -> Item<K> {
    match frame {
        Frame::Line(line) => Item::Decoded {
            decoded: decode_line_reading(&line, read, decoder),
            len: line.len(),
        },
        Frame::TooLong { len } => Item::TooLong { len },
    }
}

/// The lines of one chunk, in stream order.
enum Batch<K> {
    /// Decoded one at a time as events are asked for: each object is built just before it is
    /// delivered, on the consumer's thread, and never waits in a buffer.
    Lines(VecDeque<Frame>),
    /// Being decoded on another thread (`decode_concurrency` > 1).
    Decoding(JoinHandle<VecDeque<Item<K>>>),
    /// Decoded on another thread, waiting for their turn.
    Decoded(VecDeque<Item<K>>),
}

/// How a watch stream ended.
enum StreamEnd {
    /// The server ended the body cleanly (its timeout, a restart, a slow-watcher cut).
    Eof,
    /// Reading failed.
    Error(Error),
    /// Nothing arrived for the idle deadline.
    Idle,
}

struct Streaming<K> {
    body: BodyStream,
    batches: VecDeque<Batch<K>>,
    ended: Option<StreamEnd>,
    opened_at: Instant,
    events: u64,
    idle: IdleTimer,
}

impl<K> Drop for Streaming<K> {
    fn drop(&mut self) {
        for b in &self.batches {
            if let Batch::Decoding(h) = b {
                h.abort();
            }
        }
    }
}

enum State<K> {
    /// Deciding between listing and watching.
    Start,
    /// Listing; `token` is the next page's, `rv` the first page's version.
    Listing {
        token: Option<String>,
        rv: Option<String>,
    },
    /// Opening a watch from the last version.
    Connecting,
    /// Reading events.
    Streaming(Box<Streaming<K>>),
    /// Waiting before the next attempt.
    Waiting { until: Instant, then: Box<State<K>> },
    /// Ended (after Gone or Failed, or when the consumer is done).
    Done,
}

/// A streamed initial list in progress: the watch asks for initial events until the bookmark
/// that ends them.
struct InitialStream {
    /// The version to stream from ("" for the most recent): the list request's own, if any.
    from: String,
    /// Objects delivered so far: once there are some, a stream cut before its end cannot be taken
    /// back, and the consumer must start over (Gone), as after a page's 410.
    delivered: u64,
}

/// The watcher itself; [`Machine::next_event`] drives it one event at a time.
pub(crate) struct Machine<K> {
    client: Client,
    request: Request<ObjectList<K>>,
    what: String,
    id: WatcherId,
    settings: Settings,
    state: State<K>,
    /// Steps ready for the consumer, boxed so that queueing one moves a pointer.
    pending: VecDeque<Box<Step<K>>>,
    /// The version to resume from.
    rv: Option<String>,
    /// The version of the last object event delivered (Kazan drops a repeat of it).
    last_delivered: Option<String>,
    /// Watching from "0"/"": the synthetic ADDED burst carries unordered versions, so the resume
    /// version is not advanced until the burst is over (as client-go does).
    in_initial_burst: bool,
    /// `Some` while the initial list is being streamed.
    initial: Option<InitialStream>,
    malformed: Option<(Option<String>, u32)>,
    backoff: Backoff,
    framer: LineFramer,
    stats: Arc<StatsCell>,
    /// The next page of the list, fetched while this one is decoded and delivered.
    prefetch: Option<Prefetch>,
}

/// A list page being fetched ahead, by its continue token; the fetch is cancelled when dropped.
struct Prefetch {
    token: String,
    task: JoinHandle<Result<(String, bytes::Bytes), Error>>,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The continue token of a list page, read before its items are decoded (they are skipped).
#[derive(serde::Deserialize)]
struct PagePeek {
    #[serde(default)]
    metadata: PeekMeta,
}

#[derive(serde::Deserialize, Default)]
struct PeekMeta {
    #[serde(rename = "continue", default)]
    continue_: Option<String>,
}

impl<K> Machine<K>
where
    K: Object + DeserializeOwned + Send + 'static,
{
    pub(crate) fn new(
        client: Client,
        request: Request<ObjectList<K>>,
        id: WatcherId,
        start_rv: Option<String>,
        settings: Settings,
        backoff: super::backoff::BackoffConfig,
        stats: Arc<StatsCell>,
    ) -> Self {
        stats.at(start_rv.as_deref());
        let what = request.path();
        let in_initial_burst = matches!(start_rv.as_deref(), Some("0" | ""));
        let framer = LineFramer::new(settings.max_line_bytes);
        Machine {
            client,
            request,
            what,
            id,
            state: State::Start,
            pending: VecDeque::new(),
            rv: start_rv,
            last_delivered: None,
            in_initial_burst,
            initial: None,
            malformed: None,
            backoff: Backoff::new(backoff),
            framer,
            stats,
            settings,
            prefetch: None,
        }
    }

    /// A step already decoded and waiting, if any (no work, no logging span needed).
    pub(crate) fn ready_step(&mut self) -> Option<Box<Step<K>>> {
        self.pending.pop_front()
    }

    /// The next step, or `None` once the watcher has ended (after Gone or Failed).
    pub(crate) async fn next_step(&mut self) -> Option<Step<K>> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Some(*ev);
            }
            self.state = match std::mem::replace(&mut self.state, State::Done) {
                State::Done => return None,
                State::Start => {
                    if self.rv.is_some() {
                        State::Connecting
                    } else if self.settings.streams_initial_list() {
                        self.initial = Some(InitialStream {
                            from: self.request.params().resource_version.clone().unwrap_or_default(),
                            delivered: 0,
                        });
                        self.in_initial_burst = true;
                        State::Connecting
                    } else {
                        State::Listing {
                            token: None,
                            rv: None,
                        }
                    }
                }
                // Listing and connecting run a request (hyper's futures, the retry logic) and
                // happen once per connection: boxed, their state is allocated only while they
                // run, instead of making every idle watch as large as the largest request.
                State::Listing { token, rv } => Box::pin(self.list_page(token, rv)).await,
                State::Connecting => Box::pin(self.connect()).await,
                State::Streaming(s) => self.read(s).await,
                State::Waiting { until, then } => {
                    tokio::time::sleep_until(until).await;
                    *then
                }
            };
        }
    }

    /// Queues an event for the consumer; `resume` is how handing it over moves the resume version.
    fn push(&mut self, resource_version: Option<String>, kind: EventKind<K>, resume: Resume) {
        self.pending.push_back(Box::new(Step {
            event: Some(Event {
                from: self.id,
                resource_version,
                kind,
            }),
            resume,
        }));
    }

    /// Queues a move of the resume version with no event (a bookmark or a list not delivered):
    /// it takes effect once everything queued before it was handed over.
    fn advance(&mut self, rv: String) {
        self.pending.push_back(Box::new(Step {
            event: None,
            resume: Resume::At(rv),
        }));
    }

    /// How an event at `rv` moves the resume version: not during the synthetic ADDED burst of a
    /// watch from "0" (its versions are unordered), else to `rv`.
    fn resume_at(&self, rv: Option<&String>) -> Resume {
        match rv {
            Some(rv) if !self.in_initial_burst => Resume::At(rv.clone()),
            _ => Resume::Keep,
        }
    }

    fn log(&self, msg: std::fmt::Arguments<'_>) {
        if let Some(level) = self.settings.log {
            match level {
                Level::ERROR => tracing::error!("{msg}"),
                Level::WARN => tracing::warn!("{msg}"),
                Level::INFO => tracing::info!("{msg}"),
                Level::DEBUG => tracing::debug!("{msg}"),
                Level::TRACE => tracing::trace!("{msg}"),
            }
        }
    }

    fn problem(&self, msg: std::fmt::Arguments<'_>) {
        match self.settings.log {
            None => {}
            Some(Level::ERROR) => tracing::error!("{msg}"),
            Some(_) => tracing::warn!("{msg}"),
        }
    }

    /// The request for the page after `token` (the first page without one).
    fn page_request(&self, token: Option<&str>) -> Request<ObjectList<K>> {
        let mut req = self.request.clone().limit(self.settings.page_size);
        if let Some(t) = token {
            req = req.continue_token(t);
            req.params_mut().resource_version = None;
            req.params_mut().resource_version_match = None;
        }
        req
    }

    /// The page after `token`: the one fetched ahead if it is that page, else fetched now. As
    /// soon as a page's bytes are in, the next page is fetched ahead while this one is decoded
    /// and delivered, so the server's time for a page and the client's overlap.
    async fn fetch_page(&mut self, token: Option<&str>) -> Result<(String, bytes::Bytes), Error> {
        let ahead = self.prefetch.take().filter(|p| Some(p.token.as_str()) == token);
        let fetched = match ahead {
            Some(mut prefetch) => match (&mut prefetch.task).await {
                Ok(fetched) => fetched,
                // Cancelled or panicked: fetch it now.
                Err(_) => self.client.run_bytes(&self.page_request(token)).await,
            },
            None => self.client.run_bytes(&self.page_request(token)).await,
        };
        if let Ok((_, bytes)) = &fetched
            && self.settings.deliver_initial_list
            && let Ok(peek) = serde_json::from_slice::<PagePeek>(bytes)
            && let Some(next) = peek.metadata.continue_.filter(|t| !t.is_empty())
        {
            let client = self.client.clone();
            let req = self.page_request(Some(&next));
            let task = tokio::spawn(async move { client.run_bytes(&req).await });
            self.prefetch = Some(Prefetch { token: next, task });
        }
        fetched
    }

    async fn list_page(&mut self, token: Option<String>, first_rv: Option<String>) -> State<K> {
        self.log(format_args!(
            "listing {} (page size {})",
            self.what, self.settings.page_size
        ));
        // A page of typed objects is decoded by the watcher's parser, as its events are (and
        // with simd-json every `Vec` is allocated at its length, as a stored object should be);
        // a lazy object keeps serde_json's `RawValue`, which only serde_json fills.
        let decoder = if TypeId::of::<K>() == TypeId::of::<RawObject>() {
            crate::Decoder::SerdeJson
        } else {
            self.settings.decoder
        };
        let fetched = self.fetch_page(token.as_deref()).await;
        let decoded =
            fetched.and_then(|(url, bytes)| Client::decode_body::<ObjectList<K>>(url, &bytes, decoder));
        let list = match decoded {
            Ok(list) => list,
            Err(e) => {
                let error = WatchError::List {
                    what: self.what.clone(),
                    source: Box::new(e),
                };
                // A 410 to a list is an expired continue token. After pages were delivered, a new
                // list could not take back the delivered objects deleted since: the consumer must
                // start over, as after any 410 (`on_error`). With nothing delivered, the watcher
                // lists again from the start by itself.
                let delivered = token.is_some() && self.settings.deliver_initial_list;
                if error.disposition() == Disposition::Gone && !delivered {
                    let from_the_start = State::Listing {
                        token: None,
                        rv: None,
                    };
                    return self.retry(error, None, from_the_start);
                }
                return self.on_error(error, State::Listing { token, rv: first_rv });
            }
        };
        let rv = first_rv.or_else(|| list.metadata.resource_version.clone().filter(|v| !v.is_empty()));
        let next = list.metadata.continue_.clone().filter(|t| !t.is_empty());
        let mut items = list.items;
        if let Some(shard) = self.settings.shard.clone() {
            if token.is_none() {
                self.on_shard_mode(shard.mode_of(&list.metadata));
            }
            let before = items.len();
            items.retain(|item| shard.matches_meta(item.meta()));
            self.stats.shard_filtered((before - items.len()) as u64);
        }
        if self.settings.deliver_initial_list {
            for item in items {
                let item_rv = item.resource_version().map(str::to_string);
                let kind = if item.name().is_empty() {
                    // As for a watch event: a consumer's cache could not place it.
                    let error = WatchError::MissingName {
                        event_type: "ADDED",
                        resource_version: item_rv.clone().unwrap_or_else(|| "?".into()),
                    };
                    self.problem(format_args!("skipping a listed object: {error}"));
                    EventKind::Skipped(Arc::new(error))
                } else {
                    EventKind::Added(item)
                };
                // A list cannot be resumed in the middle: the version moves at `Synced`.
                self.push(item_rv, kind, Resume::Keep);
            }
            if let Some(t) = next {
                return State::Listing { token: Some(t), rv };
            }
        }
        match rv {
            Some(rv) => {
                self.log(format_args!("starting from the list's resourceVersion {rv}"));
                if self.settings.deliver_initial_list {
                    self.push(Some(rv.clone()), EventKind::Synced, Resume::At(rv.clone()));
                } else {
                    self.advance(rv.clone());
                }
                self.rv = Some(rv);
                State::Connecting
            }
            None => self.on_error(
                WatchError::ListWithoutVersion {
                    what: self.what.clone(),
                },
                State::Done,
            ),
        }
    }

    fn watch_request(&self) -> Request<WatchEvents<K>> {
        let mut req: Request<WatchEvents<K>> = self.request.clone().retype(Verb::Watch);
        let p = req.params_mut();
        p.limit = None;
        p.continue_token = None;
        p.resource_version_match = None;
        p.send_initial_events = None;
        p.resource_version = self.rv.clone();
        p.allow_watch_bookmarks = self.settings.bookmarks;
        // Initial events are asked for only until their end: a watch that resumes after it
        // never asks again (kube-rs PR #1882 fixed duplicate lists every few minutes from that).
        if let Some(initial) = &self.initial {
            p.send_initial_events = Some(true);
            p.resource_version_match = Some(VersionMatch::NotOlderThan);
            p.resource_version = Some(initial.from.clone());
            p.allow_watch_bookmarks = true;
        }
        p.timeout_seconds = Some(self.settings.timeout_seconds());
        req
    }

    async fn connect(&mut self) -> State<K> {
        self.log(format_args!(
            "watching {} from resourceVersion {}",
            self.what,
            self.rv.as_deref().unwrap_or("(none)")
        ));
        // Built in a statement of its own, so that the wait does not hold the request (400 bytes).
        let prepared = self.client.prepare_stream(&self.watch_request());
        let opened = match prepared {
            Ok(prepared) => self.client.stream_prepared(prepared).await,
            Err(e) => Err(e),
        };
        match opened {
            Ok(mut body) => {
                body.drop_headers();
                let now = Instant::now();
                self.backoff.healthy(now);
                self.framer.reset();
                State::Streaming(Box::new(Streaming {
                    body,
                    batches: VecDeque::new(),
                    ended: None,
                    opened_at: now,
                    events: 0,
                    idle: IdleTimer::new(now, self.settings.idle_timeout),
                }))
            }
            Err(e) => {
                let error = WatchError::Open {
                    what: self.what.clone(),
                    source: Box::new(e),
                };
                if self.initial.is_some() {
                    if let Some(next) = self.on_initial_stream_refused(&error) {
                        return next;
                    }
                    if let Some(next) = self.on_initial_stream_cut(&error) {
                        return next;
                    }
                }
                self.on_error(error, State::Connecting)
            }
        }
    }

    /// Reads until at least one event is pending or the stream is over.
    async fn read(&mut self, mut s: Box<Streaming<K>>) -> State<K> {
        loop {
            // Deliver in order, one line at a time.
            let (read, decoder) = (self.settings.identity_read, self.settings.decoder);
            while self.pending.is_empty() {
                let item = match s.batches.front_mut() {
                    Some(Batch::Lines(frames)) => frames.pop_front().map(|f| decode_frame(f, read, decoder)),
                    Some(Batch::Decoded(items)) => items.pop_front(),
                    Some(Batch::Decoding(_)) | None => break,
                };
                match item {
                    Some(item) => {
                        if let Some(next) = self.on_item(item, &mut s) {
                            return next;
                        }
                    }
                    None => {
                        s.batches.pop_front();
                    }
                }
            }
            if !self.pending.is_empty() {
                return State::Streaming(s);
            }
            if s.batches.is_empty()
                && let Some(end) = s.ended.take()
            {
                return self.on_stream_end(end, &s);
            }
            let can_read = s.ended.is_none() && s.batches.len() < self.settings.decode_concurrency;
            tokio::select! {
                biased;
                done = front_batch(&mut s.batches) => match done {
                    Ok(items) => {
                        if let Some(front) = s.batches.front_mut() {
                            *front = Batch::Decoded(items);
                        }
                    }
                    Err(join_error) => {
                        let error = WatchError::DecodeAhead {
                            what: self.what.clone(),
                            source: join_error,
                        };
                        return self.on_error(error, State::Connecting);
                    }
                },
                chunk = s.body.chunk(), if can_read => match chunk {
                    None => s.ended = Some(StreamEnd::Eof),
                    Some(Err(e)) => s.ended = Some(StreamEnd::Error(e)),
                    Some(Ok(bytes)) => {
                        s.idle.read();
                        self.stats.read_bytes(bytes.len());
                        let mut frames = VecDeque::new();
                        self.framer.push(bytes, &mut frames);
                        if !frames.is_empty() {
                            self.stats.read_lines(frames.len());
                            s.batches.push_back(self.batch(frames));
                        }
                    }
                },
                () = s.idle.stalled(), if s.ended.is_none() => {
                    s.ended = Some(StreamEnd::Idle);
                }
            }
        }
    }

    fn batch(&self, frames: VecDeque<Frame>) -> Batch<K> {
        if self.settings.decode_concurrency > 1 && frames.len() > 1 {
            let (read, decoder) = (self.settings.identity_read, self.settings.decoder);
            Batch::Decoding(tokio::spawn(async move {
                frames
                    .into_iter()
                    .map(|f| decode_frame(f, read, decoder))
                    .collect()
            }))
        } else {
            Batch::Lines(frames)
        }
    }

    /// What each line means.
    fn on_item(&mut self, item: Item<K>, s: &mut Streaming<K>) -> Option<State<K>> {
        let (decoded, len) = match item {
            Item::TooLong { len } => {
                let error = WatchError::LineTooLong {
                    len,
                    max: self.settings.max_line_bytes,
                };
                self.problem(format_args!("{error}"));
                self.push(None, EventKind::Skipped(Arc::new(error)), Resume::Keep);
                return None;
            }
            Item::Decoded { decoded, len } => (decoded, len),
        };
        match decoded {
            Decoded::Object { event, object } => {
                s.events += 1;
                self.malformed = None;
                let rv = object.resource_version().map(str::to_string);
                if object.name().is_empty() {
                    // A real server never sends this; a consumer's cache could not place it.
                    let error = WatchError::MissingName {
                        event_type: match event {
                            ObjectEvent::Added => "ADDED",
                            ObjectEvent::Modified => "MODIFIED",
                            ObjectEvent::Deleted => "DELETED",
                        },
                        resource_version: rv.clone().unwrap_or_else(|| "?".into()),
                    };
                    self.problem(format_args!("skipping an event: {error}"));
                    // Skip past it, as for an object that does not decode.
                    let resume = self.resume_at(rv.as_ref());
                    if let Resume::At(rv) = &resume {
                        self.rv = Some(rv.clone());
                    }
                    self.push(rv, EventKind::Skipped(Arc::new(error)), resume);
                    return None;
                }
                if rv.is_some() && rv == self.last_delivered {
                    self.log(format_args!(
                        "dropping a repeated event at resourceVersion {}",
                        rv.as_deref().unwrap_or("")
                    ));
                    return None;
                }
                if event != ObjectEvent::Added && self.initial.is_some() {
                    // Only a server that ignored `sendInitialEvents` sends this before the end
                    // bookmark: a plain watch from "", whose ADDED burst was the list.
                    self.end_initial_stream(None, "an event other than ADDED");
                }
                if self.in_initial_burst && event != ObjectEvent::Added {
                    self.in_initial_burst = false;
                }
                if let Some(shard) = &self.settings.shard
                    && !shard.matches_meta(object.meta())
                {
                    // Another shard's object, sent by a server that does not filter: not
                    // delivered, but the resume version moves past it.
                    self.stats.shard_filtered(1);
                    let resume = self.resume_at(rv.as_ref());
                    if let Resume::At(rv) = resume {
                        self.rv = Some(rv.clone());
                        self.advance(rv);
                    }
                    return None;
                }
                if let Some(initial) = &mut self.initial {
                    initial.delivered += 1;
                }
                let resume = self.resume_at(rv.as_ref());
                if let Resume::At(rv) = &resume {
                    // Copied into the string it replaces: no allocation per event.
                    match &mut self.rv {
                        Some(read) => read.clone_from(rv),
                        None => self.rv = Some(rv.clone()),
                    }
                }
                self.last_delivered.clone_from(&rv);
                let kind = match event {
                    ObjectEvent::Added => EventKind::Added(*object),
                    ObjectEvent::Modified => EventKind::Modified(*object),
                    ObjectEvent::Deleted => EventKind::Deleted(*object),
                };
                self.push(rv, kind, resume);
                None
            }
            Decoded::Bookmark {
                resource_version,
                initial_events_end,
            } => {
                s.events += 1;
                let rv = resource_version.filter(|v| !v.is_empty());
                if self.initial.is_some() {
                    if initial_events_end {
                        self.log(format_args!("initial events delivered"));
                        self.end_initial_stream(rv, "");
                    } else {
                        self.end_initial_stream(
                            rv,
                            "a bookmark without the k8s.io/initial-events-end annotation",
                        );
                    }
                    return None;
                }
                if initial_events_end {
                    self.log(format_args!("initial events delivered"));
                }
                if let Some(rv) = rv {
                    self.in_initial_burst = false;
                    self.stats.bookmarked();
                    self.rv = Some(rv.clone());
                    if self.settings.deliver_bookmarks {
                        self.push(Some(rv.clone()), EventKind::Bookmark, Resume::At(rv));
                    } else {
                        self.advance(rv);
                    }
                }
                None
            }
            Decoded::Error(status) => {
                let error = WatchError::ServerError(status);
                if self.initial.is_some() {
                    if let Some(next) = self.on_initial_stream_refused(&error) {
                        return Some(next);
                    }
                    if let Some(next) = self.on_initial_stream_cut(&error) {
                        return Some(next);
                    }
                }
                Some(self.on_error(error, State::Connecting))
            }
            Decoded::UnknownType { type_name } => {
                let error = WatchError::UnknownEventType(type_name);
                self.problem(format_args!("{error}"));
                self.push(None, EventKind::Skipped(Arc::new(error)), Resume::Keep);
                None
            }
            Decoded::Undecodable {
                type_name,
                resource_version,
                name,
                namespace,
                error,
            } => {
                s.events += 1;
                let object = match namespace {
                    Some(ns) => format!("{ns}/{}", name.as_deref().unwrap_or("?")),
                    None => name.unwrap_or_else(|| "?".to_string()),
                };
                let error = WatchError::Decode {
                    event_type: type_name,
                    object,
                    resource_version: resource_version.clone().unwrap_or_else(|| "?".into()),
                    source: error,
                };
                self.problem(format_args!("skipping an event: {error}"));
                // Skip past it, so a resume does not bring it back forever.
                let resume = self.resume_at(resource_version.as_ref());
                if let Resume::At(rv) = &resume {
                    self.rv = Some(rv.clone());
                }
                self.push(resource_version, EventKind::Skipped(Arc::new(error)), resume);
                None
            }
            Decoded::Malformed(source) => {
                let error = WatchError::MalformedLine { len, source };
                let count = match &self.malformed {
                    Some((at, n)) if *at == self.rv => n + 1,
                    _ => 1,
                };
                self.malformed = Some((self.rv.clone(), count));
                if count >= MALFORMED_RETRIES {
                    self.problem(format_args!(
                        "{error}; seen {count} times at the same place, skipping it"
                    ));
                    self.push(None, EventKind::Skipped(Arc::new(error)), Resume::Keep);
                    None
                } else {
                    // Most likely a damaged stream: resume from the last good version.
                    Some(self.retry(error, None, State::Connecting))
                }
            }
        }
    }

    /// What happens when the connection drops or the server ends the watch.
    fn on_stream_end(&mut self, end: StreamEnd, s: &Streaming<K>) -> State<K> {
        if self.framer.pending() > 0 {
            self.log(format_args!(
                "the watch of {} ended inside an event ({} bytes of it received); resuming before it",
                self.what,
                self.framer.pending()
            ));
        }
        if self.initial.is_some()
            && let Some(next) = self.on_initial_stream_end(&end)
        {
            return next;
        }
        match end {
            StreamEnd::Eof => {
                let lasted = Instant::now().saturating_duration_since(s.opened_at);
                if s.events == 0 && lasted < SHORT_WATCH {
                    let error = WatchError::EndedAtOnce {
                        what: self.what.clone(),
                    };
                    return self.on_error(error, State::Connecting);
                }
                self.stats.resumed();
                self.log(format_args!(
                    "the server ended the watch of {}; resuming from resourceVersion {}",
                    self.what,
                    self.rv.as_deref().unwrap_or("(none)")
                ));
                State::Connecting
            }
            StreamEnd::Error(e) => {
                let error = WatchError::Stream {
                    what: self.what.clone(),
                    source: Box::new(e),
                };
                self.on_error(error, State::Connecting)
            }
            StreamEnd::Idle => {
                let error = WatchError::Idle {
                    what: self.what.clone(),
                    idle: self.settings.idle_timeout,
                };
                self.on_error(error, State::Connecting)
            }
        }
    }

    /// Tells once per list who filters the shard, and logs a change of it.
    fn on_shard_mode(&self, mode: crate::shard::ShardMode) {
        let before = self.stats.snapshot().shard_mode;
        if before.as_ref() != Some(&mode) {
            match &mode {
                crate::shard::ShardMode::ServerSide => {
                    self.log(format_args!("the server filters the shard of {}", self.what))
                }
                crate::shard::ShardMode::ClientSide => self.log(format_args!(
                    "the server ignores shardSelector for {}: filtering the shard here",
                    self.what
                )),
                crate::shard::ShardMode::Mismatch { echoed } => self.problem(format_args!(
                    "the server echoed another shard selector for {} ({echoed}); filtering the shard here",
                    self.what
                )),
            }
        }
        self.stats.shard_mode(mode);
    }

    /// The end of a streamed initial list: the consumer gets `Synced` at the end's version, as at
    /// the end of a paginated list, and the watch goes on from there without asking for initial
    /// events again. `why`, when not empty, is the sign that the server ignored
    /// `sendInitialEvents` and sent a plain watch from "" (whose first non-ADDED event ends its
    /// burst, as client-go's reflector reads it): Auto lists page by page from then on.
    fn end_initial_stream(&mut self, rv: Option<String>, why: &str) {
        self.initial = None;
        self.in_initial_burst = false;
        if !why.is_empty() {
            self.refuse_streaming(format_args!(
                "the server sent {why} before the end of the initial events"
            ));
        }
        match rv {
            Some(rv) => {
                self.stats.bookmarked();
                self.rv = Some(rv.clone());
                self.push(Some(rv.clone()), EventKind::Synced, Resume::At(rv));
            }
            None => self.push(None, EventKind::Synced, Resume::Keep),
        }
    }

    /// Auto: the server does not stream lists; page by page for the rest of the watcher's life.
    fn refuse_streaming(&self, why: std::fmt::Arguments<'_>) {
        if self.settings.initial_list == InitialList::Auto {
            self.settings.streaming_refused.store(true, Ordering::Relaxed);
            self.log(format_args!(
                "{why}: listing {} page by page from now on",
                self.what
            ));
        }
    }

    /// An error answer to the watch-list request, or an ERROR event in it before its end, that
    /// says the server does not stream lists (client-go's reflector falls back to a list on
    /// every error it would not retry; a 410 or a 5xx is retried here instead): with Auto, list
    /// page by page. `None` when it is not such an answer.
    fn on_initial_stream_refused(&mut self, error: &WatchError) -> Option<State<K>> {
        if self.settings.initial_list != InitialList::Auto {
            return None;
        }
        let code = match error {
            WatchError::ServerError(status) => status.code,
            other => other.api_error().map(|a| i32::from(a.code)),
        }?;
        if !(400..500).contains(&code) || matches!(code, 408 | 410 | 429) {
            return None;
        }
        self.refuse_streaming(format_args!("the server refused to stream the list ({error})"));
        let delivered = self.initial.as_ref().map_or(0, |i| i.delivered);
        self.initial = None;
        self.in_initial_burst = false;
        if delivered > 0 {
            return Some(self.on_gone(format!(
                "the initial event stream of {} failed after {delivered} objects ({error}); start over",
                self.what
            )));
        }
        Some(State::Listing {
            token: None,
            rv: None,
        })
    }

    /// A streamed initial list broken before its end by a retryable error or a 410: with objects
    /// delivered, the consumer must start over (Gone), as when a paginated list's snapshot
    /// expires between pages; with none, a 410 streams again from the most recent version (as
    /// client-go's reflector does) and other errors are retried as usual. `None` to retry.
    fn on_initial_stream_cut(&mut self, error: &WatchError) -> Option<State<K>> {
        let initial = self.initial.as_mut()?;
        if initial.delivered > 0 {
            let delivered = initial.delivered;
            self.initial = None;
            return Some(self.on_gone(format!(
                "the initial event stream of {} was cut after {delivered} objects ({error}); start over",
                self.what
            )));
        }
        if error.disposition() == Disposition::Gone {
            initial.from.clear();
            return Some(self.retry_now(error));
        }
        None
    }

    /// The initial event stream ended before the bookmark that ends its initial events. A clean
    /// end is taken as a server that does not stream lists (Auto lists page by page; client-go's
    /// reflector would stream again and again); the objects delivered meanwhile cannot be taken
    /// back, so the consumer starts over (Gone). `None` to handle it as any watch's end.
    fn on_initial_stream_end(&mut self, end: &StreamEnd) -> Option<State<K>> {
        let delivered = self.initial.as_ref()?.delivered;
        let clean = matches!(end, StreamEnd::Eof);
        if clean {
            self.refuse_streaming(format_args!(
                "the watch-list request ended without the bookmark that ends its initial events"
            ));
        }
        let refused = self.settings.initial_list == InitialList::Auto && clean;
        if delivered > 0 {
            self.initial = None;
            return Some(self.on_gone(format!(
                "the initial event stream of {} ended after {delivered} objects, before the bookmark that ends them; start over",
                self.what
            )));
        }
        if refused {
            self.initial = None;
            self.in_initial_burst = false;
            return Some(State::Listing {
                token: None,
                rv: None,
            });
        }
        None
    }

    /// A retry at once, without a backoff (a 410 before anything was delivered).
    fn retry_now(&self, error: &WatchError) -> State<K> {
        self.log(format_args!(
            "{error}; streaming the list again from the most recent version"
        ));
        State::Connecting
    }

    /// What happens on any error: what [`WatchError::disposition`] says. A retry goes on with
    /// `then` after the backoff.
    fn on_error(&mut self, error: WatchError, then: State<K>) -> State<K> {
        match error.disposition() {
            Disposition::Gone => self.on_gone(error.gone_message()),
            Disposition::Retry(retry_after) => self.retry(error, retry_after, then),
            Disposition::Terminal => self.fail(error),
        }
    }

    /// A 410, from wherever: the consumer gets `Gone` with the server's message, and the watcher
    /// ends (the supervised form then relists).
    fn on_gone(&mut self, message: String) -> State<K> {
        self.stats.gone();
        self.problem(format_args!(
            "410 Gone from {}: {message}; the watcher ends",
            self.what
        ));
        self.push(None, EventKind::Gone { message }, Resume::Clear);
        State::Done
    }

    fn fail(&mut self, error: WatchError) -> State<K> {
        self.problem(format_args!("the watcher ends: {error}"));
        self.push(None, EventKind::Failed(Arc::new(error)), Resume::Keep);
        State::Done
    }

    fn retry(&mut self, error: WatchError, retry_after: Option<Duration>, then: State<K>) -> State<K> {
        let now = Instant::now();
        let delay = self.backoff.next_delay(now, retry_after);
        self.stats.retried(retry_cause(&error));
        self.problem(format_args!(
            "{error}; retrying in {delay:?} (attempt {})",
            self.backoff.attempts()
        ));
        State::Waiting {
            until: now + delay,
            then: Box::new(then),
        }
    }
}

/// Waits for the oldest batch being decoded; never resolves when there is none.
async fn front_batch<K>(
    batches: &mut VecDeque<Batch<K>>,
) -> Result<VecDeque<Item<K>>, tokio::task::JoinError> {
    match batches.front_mut() {
        Some(Batch::Decoding(handle)) => handle.await,
        _ => std::future::pending().await,
    }
}

/// Which [`RetryCauses`](super::stats::RetryCauses) counter a retried error counts in (its index
/// in `RetryCauses::by_name`).
fn retry_cause(error: &WatchError) -> usize {
    const UNREACHABLE: usize = 0;
    const SERVER_ERROR: usize = 1;
    const THROTTLED: usize = 2;
    const STREAM: usize = 3;
    const IDLE: usize = 4;
    const MALFORMED: usize = 5;
    if let Some(api) = error.api_error() {
        return match api.code {
            408 | 429 => THROTTLED,
            _ => SERVER_ERROR,
        };
    }
    match error {
        WatchError::ServerError(status) if matches!(status.code, Some(408 | 429)) => THROTTLED,
        WatchError::ServerError(_) => SERVER_ERROR,
        WatchError::Idle { .. } => IDLE,
        WatchError::MalformedLine { .. } | WatchError::LineTooLong { .. } => MALFORMED,
        WatchError::Stream { .. } | WatchError::EndedAtOnce { .. } | WatchError::DecodeAhead { .. } => STREAM,
        _ => UNREACHABLE,
    }
}
