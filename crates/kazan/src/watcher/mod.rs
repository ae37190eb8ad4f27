//! The Watcher: `Kazan.Watcher`'s semantics in Rust, made fit to run for months.
//!
//! Start one from a list request (it lists once to learn where to start) or from a watch request
//! with a starting `resourceVersion`. It delivers `Added`, `Modified` and `Deleted` events in order,
//! each exactly once, across the server's timeouts, dropped connections and stalls: every new watch
//! resumes from the last resourceVersion received (bookmarks included). When the server says
//! 410 Gone, it delivers `Gone` with the server's message and ends: clear your cache, relist, start
//! again — or let [`Watcher::supervise`] do that for you.
//!
//! ```no_run
//! use k8s_openapi::api::core::v1::Namespace;
//! use kazan::{Client, Request, watcher::{EventKind, Watcher, WatcherOptions}};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::try_default().await?;
//! let mut watcher = Watcher::start(client, Request::list::<Namespace>(), WatcherOptions::new())?;
//! while let Some(event) = watcher.recv().await {
//!     match event.kind {
//!         EventKind::Added(ns) | EventKind::Modified(ns) => println!("{:?}", ns.metadata.name),
//!         EventKind::Deleted(ns) => println!("deleted {:?}", ns.metadata.name),
//!         EventKind::Gone { message } => println!("relist needed: {message}"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Three forms share one state machine: the spawned form above ([`Watcher::start`], events in a
//! bounded channel, a handle to stop it), the [`Stream`] form
//! ([`Watcher::stream`]) and the supervised form ([`Watcher::supervise`], which relists after Gone).
//! The handle and the stream both tell the watcher's counters ([`WatcherStats`]).
//! See <https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes>.

mod backoff;
mod decode;
mod deferred;
mod error;
mod event;
mod frame;
#[cfg(test)]
mod fuzz;
mod idle;
mod machine;
mod options;
mod spawn;
mod stats;
mod step;

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use futures_util::Stream;
use serde::de::DeserializeOwned;
use tracing::Instrument;

pub use backoff::BackoffConfig;
pub(crate) use decode::ObjectEvent;
pub use error::WatchError;
pub use event::{Event, EventKind, EventType, WatcherId};
pub use options::{OwnChannel, SendMapped, SendTarget, WatcherOptions};
pub use spawn::{EndReason, StopOutcome, WatcherHandle};
pub use stats::WatcherStats;

use crate::{
    Client, Object, RawObject,
    raw::IdentityRead,
    request::{Request, Verb, WatchEvents},
    resource::ObjectList,
};
use machine::{Machine, Settings};
use stats::StatsCell;
use std::sync::Arc;
use step::Step;

/// A watcher's events as a stream ([`Watcher::stream`]). It ends after a `Gone` or `Failed` event;
/// dropping it stops the watch. Like the spawned form's handle, it tells the watcher's id and
/// counters, so a consumer of the stream can see resumes and retries too.
#[must_use = "a watch makes progress only while its stream is polled"]
pub struct WatchStream<K> {
    steps: StepStream<K>,
    id: WatcherId,
    stats: Arc<StatsCell>,
}

/// The steps of one watch, boxed: what the spawned form's task and [`WatchStream`] drive.
pub(crate) type StepStream<K> = Pin<Box<dyn Stream<Item = Step<K>> + Send>>;

impl<K> WatchStream<K> {
    /// The watcher's id (the `from` of its events).
    pub fn id(&self) -> WatcherId {
        self.id
    }

    /// The watcher's counters: resumes, retries, events, and the version it would resume from.
    ///
    /// The version covers exactly the events this stream has yielded: drop the stream after any
    /// event, start a new watcher from `stats().resource_version`, and it delivers every later
    /// event once, none of the earlier ones.
    pub fn stats(&self) -> WatcherStats {
        self.stats.snapshot()
    }
}

impl<K> Stream for WatchStream<K> {
    type Item = Event<K>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event<K>>> {
        loop {
            let step = match self.steps.as_mut().poll_next(cx) {
                Poll::Ready(Some(step)) => step,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            // Yielded now: the resume version moves with it, not before.
            self.stats.handed(&step.resume, step.counts());
            if let Some(event) = step.event {
                return Poll::Ready(Some(event));
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.steps.size_hint().1)
    }
}

impl<K> std::fmt::Debug for WatchStream<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What a watcher can start from: a list request (`Request::list::<K>()`) or a watch request
/// (`Request::watch_list::<K>()`, which needs a starting resourceVersion).
pub trait WatchRequest<K>: Send + 'static {
    #[doc(hidden)]
    fn into_parts(self) -> (Request<ObjectList<K>>, bool);
}

impl<K: 'static> WatchRequest<K> for Request<ObjectList<K>> {
    fn into_parts(self) -> (Request<ObjectList<K>>, bool) {
        (self, false)
    }
}

impl<K: 'static> WatchRequest<K> for Request<WatchEvents<K>> {
    fn into_parts(self) -> (Request<ObjectList<K>>, bool) {
        (self.retype(Verb::List), true)
    }
}

/// Starts watchers. See the [module documentation](self).
#[derive(Debug)]
pub struct Watcher;

struct Prepared<K> {
    client: Client,
    request: Request<ObjectList<K>>,
    start_rv: Option<String>,
    settings: Settings,
    backoff: BackoffConfig,
    span: tracing::Span,
}

impl<K> Prepared<K>
where
    K: Object + DeserializeOwned + Send + 'static,
{
    fn new<S, R: WatchRequest<K>>(
        client: Client,
        request: R,
        options: &WatcherOptions<S>,
        id: WatcherId,
    ) -> Result<Self, WatchError> {
        let (mut request, is_watch) = request.into_parts();
        let request_rv = request.params_mut().resource_version.take();
        let fixed_timeout = request.params().timeout_seconds;
        let start_rv = match (&options.resource_version, is_watch) {
            (Some(rv), _) => Some(rv.clone()),
            (None, true) => Some(request_rv.ok_or(WatchError::NoResourceVersion)?),
            (None, false) => {
                // A list request keeps its own resourceVersion for the list itself.
                request.params_mut().resource_version = request_rv;
                None
            }
        };
        let client = match options.request_timeout {
            Some(timeout) => client.with_request_timeout(timeout),
            None => client,
        };
        let name = options.name.clone().unwrap_or_else(|| id.to_string());
        let span = tracing::info_span!("watcher", name = %name, id = id.get());
        Ok(Prepared {
            client,
            request,
            start_rv,
            settings: Settings::from_options(options, fixed_timeout),
            backoff: options.backoff,
            span,
        })
    }

    /// The same watcher over undecoded objects, each decoded whole later (by the handle's `recv`
    /// or before it is sent): only their name, namespace and version are read ahead.
    fn raw(self) -> Prepared<RawObject> {
        let mut settings = self.settings;
        settings.identity_read = IdentityRead::Brief;
        Prepared {
            client: self.client,
            request: self.request.retype(Verb::List),
            start_rv: self.start_rv,
            settings,
            backoff: self.backoff,
            span: self.span,
        }
    }

    fn stream(
        &self,
        id: WatcherId,
        start_rv: Option<String>,
        settings: Settings,
        stats: Arc<StatsCell>,
    ) -> StepStream<K> {
        Box::pin(self.steps(id, start_rv, settings, stats))
    }

    /// [`Self::stream`], unboxed.
    fn steps(
        &self,
        id: WatcherId,
        start_rv: Option<String>,
        settings: Settings,
        stats: Arc<StatsCell>,
    ) -> impl Stream<Item = Step<K>> + Send + use<K> {
        let machine = Machine::new(
            self.client.clone(),
            self.request.clone(),
            id,
            start_rv,
            settings,
            self.backoff,
            stats,
        );
        steps(machine, self.span.clone())
    }
}

/// The machine as a stream of its steps. This is what every idle watch keeps allocated, so it is
/// kept small: the machine is boxed (each step moves a pointer, not the machine), and the machine
/// boxes its one-off request futures (see `Machine::next_step`).
fn steps<K>(machine: Machine<K>, span: tracing::Span) -> impl Stream<Item = Step<K>> + Send
where
    K: Object + DeserializeOwned + Send + 'static,
{
    futures_util::stream::unfold(Box::new(machine), move |mut m| {
        let span = span.clone();
        async move {
            // A step already decoded needs no span; it stays boxed until returned, so that no
            // object is part of this future's state.
            if let Some(step) = m.ready_step() {
                return Some((*step, m));
            }
            let step = m.next_step().instrument(span).await;
            step.map(|step| (step, m))
        }
    })
}

/// A watcher ready to be spawned; what [`SendTarget`] implementations spawn.
#[doc(hidden)]
pub struct Start<K> {
    prepared: Prepared<K>,
    id: WatcherId,
    capacity: usize,
    supervised: bool,
}

impl<K> Start<K>
where
    K: Object + DeserializeOwned + Send + 'static,
{
    fn spawn_task<M: Send + 'static>(
        self,
        tx: tokio::sync::mpsc::Sender<M>,
        message: impl Fn(Event<K>) -> M + Send + 'static,
        stats: Arc<StatsCell>,
    ) -> spawn::Control {
        let Start {
            prepared,
            id,
            supervised,
            ..
        } = self;
        if supervised {
            let backoff = prepared.backoff;
            let source = Supervised {
                prepared,
                id,
                stats: stats.clone(),
            };
            spawn::spawn(id, source, tx, message, stats, move |restart| {
                let exp = backoff
                    .initial
                    .saturating_mul(1u32 << restart.saturating_sub(1).min(16));
                exp.min(backoff.max)
            })
        } else {
            let source = Single {
                prepared: Some(Box::new(prepared)),
                id,
                stats: stats.clone(),
            };
            spawn::spawn(id, source, tx, message, stats, |_| Duration::ZERO)
        }
    }

    /// Spawns the watcher sending typed events into `tx` (`send_to`).
    ///
    /// Each object is decoded once a slot in `tx` is reserved for it: a watcher waiting on a full
    /// channel holds its event's JSON line, not the (larger) decoded object. With a thousand
    /// watchers sharing one channel, that is the difference during a burst. With
    /// `decode_concurrency` above 1, objects are decoded ahead on other threads instead.
    fn spawn_into<M: Send + 'static>(
        self,
        tx: tokio::sync::mpsc::Sender<M>,
        map: impl Fn(Event<K>) -> M + Send + 'static,
    ) -> WatcherHandle<M> {
        let capacity = self.capacity;
        let control = if self.prepared.settings.decode_concurrency > 1 {
            self.spawn_task(tx, map, Arc::default())
        } else {
            self.into_raw()
                .spawn_task(tx, move |event| map(deferred::finish::<K>(event)), Arc::default())
        };
        WatcherHandle::new(control, spawn::Inbox::Elsewhere, capacity)
    }

    /// The same watcher over undecoded objects.
    fn into_raw(self) -> Start<RawObject> {
        Start {
            prepared: self.prepared.raw(),
            id: self.id,
            capacity: self.capacity,
            supervised: self.supervised,
        }
    }

    /// Spawns the watcher with the handle's own channel, objects decoded by `recv`; with
    /// `decode_concurrency` above 1, decoded ahead on the runtime's threads instead, as the option
    /// says, and queued decoded.
    fn spawn_with_own_channel(self) -> WatcherHandle<Event<K>> {
        let capacity = self.capacity;
        if self.prepared.settings.decode_concurrency > 1 {
            let (tx, rx) = tokio::sync::mpsc::channel::<Event<K>>(capacity);
            let control = self.spawn_task(tx, |event| event, Arc::default());
            let inbox = deferred::DecodedAhead { rx };
            return WatcherHandle::new(control, spawn::Inbox::Decoding(Box::new(inbox)), capacity);
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Event<RawObject>>(capacity);
        let control = self.into_raw().spawn_task(tx, |event| event, Arc::default());
        let inbox = deferred::DecodeOnReceive::<K> {
            rx,
            _k: std::marker::PhantomData,
        };
        WatcherHandle::new(control, spawn::Inbox::Decoding(Box::new(inbox)), capacity)
    }
}

impl Watcher {
    /// Spawns a watcher and returns its handle (Kazan's `start_link`).
    ///
    /// Without `resource_version` in the options, a list request is listed once (its
    /// `metadata.resourceVersion` is where the watch starts); a watch request without a version
    /// (in the options or on the request) is an error. Must be called inside a Tokio runtime.
    pub fn start<K, R, S>(
        client: Client,
        request: R,
        options: WatcherOptions<S>,
    ) -> Result<WatcherHandle<S::Message>, WatchError>
    where
        K: Object + DeserializeOwned + Send + 'static,
        R: WatchRequest<K>,
        S: SendTarget<K>,
    {
        let id = WatcherId::next();
        let prepared = Prepared::new(client, request, &options, id)?;
        let start = Start {
            prepared,
            id,
            capacity: options.channel_capacity,
            supervised: false,
        };
        Ok(options.send_to.spawn(start))
    }

    /// The same watcher as a [`Stream`] of events, for consumers that prefer streams. Nothing is
    /// spawned: the watch makes progress while the stream is polled.
    pub fn stream<K, R, S>(
        client: Client,
        request: R,
        options: WatcherOptions<S>,
    ) -> Result<WatchStream<K>, WatchError>
    where
        K: Object + DeserializeOwned + Send + 'static,
        R: WatchRequest<K>,
    {
        let id = WatcherId::next();
        let prepared = Prepared::new(client, request, &options, id)?;
        let settings = prepared.settings.clone();
        let stats = Arc::<StatsCell>::default();
        Ok(WatchStream {
            steps: prepared.stream(id, prepared.start_rv.clone(), settings, stats.clone()),
            id,
            stats,
        })
    }

    /// A watcher that takes care of Gone itself, for those who want the supervisor pattern done for
    /// them: it delivers the `Gone` event (clear your cache), then lists again and delivers every
    /// object as `Added` followed by `Synced`, and watches on. The first start lists too (and
    /// delivers the list) unless the options give a resource version. Restarts after Gone are
    /// spaced by the backoff.
    pub fn supervise<K, S>(
        client: Client,
        request: Request<ObjectList<K>>,
        options: WatcherOptions<S>,
    ) -> Result<WatcherHandle<S::Message>, WatchError>
    where
        K: Object + DeserializeOwned + Send + 'static,
        S: SendTarget<K>,
    {
        let id = WatcherId::next();
        let options = if options.resource_version.is_none() {
            options.deliver_initial_list(true)
        } else {
            options
        };
        let prepared = Prepared::new(client, request, &options, id)?;
        let start = Start {
            prepared,
            id,
            capacity: options.channel_capacity,
            supervised: true,
        };
        Ok(options.send_to.spawn(start))
    }
}

struct Single<K> {
    /// Boxed, and taken when the stream opens: the task keeps the source for its whole life.
    prepared: Option<Box<Prepared<K>>>,
    id: WatcherId,
    stats: Arc<StatsCell>,
}

impl<K: Object + DeserializeOwned + Send + 'static> spawn::StreamSource<K> for Single<K> {
    fn open(&mut self, _restart: u32) -> StepStream<K> {
        match self.prepared.take() {
            Some(p) => {
                let settings = p.settings.clone();
                p.stream(self.id, p.start_rv.clone(), settings, self.stats.clone())
            }
            None => Box::pin(futures_util::stream::empty()),
        }
    }

    fn restarts_after_gone(&self) -> bool {
        false
    }
}

struct Supervised<K> {
    prepared: Prepared<K>,
    id: WatcherId,
    stats: Arc<StatsCell>,
}

impl<K: Object + DeserializeOwned + Send + 'static> spawn::StreamSource<K> for Supervised<K> {
    fn open(&mut self, restart: u32) -> StepStream<K> {
        let mut settings = self.prepared.settings.clone();
        let start_rv = if restart == 0 {
            self.prepared.start_rv.clone()
        } else {
            None
        };
        if start_rv.is_none() {
            settings.deliver_initial_list = true;
        }
        self.prepared
            .stream(self.id, start_rv, settings, self.stats.clone())
    }

    fn restarts_after_gone(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;

    use super::*;

    /// `request` prepared with the default options, on a client that is never used.
    fn prepared<K>(request: Request<ObjectList<K>>) -> Prepared<K>
    where
        K: Object + DeserializeOwned + Send + 'static,
    {
        let options = WatcherOptions::new();
        match Prepared::new(
            crate::client::unused_client(),
            request,
            &options,
            WatcherId::next(),
        ) {
            Ok(prepared) => prepared,
            Err(e) => panic!("a list request prepares: {e}"),
        }
    }

    /// What one watch keeps allocated while idle is mostly its stream's state; with a thousand
    /// watches in one process, every kilobyte here is a megabyte. The request futures (listing,
    /// connecting) are boxed only while they run, so the stream stays small.
    #[test]
    fn a_watch_stream_keeps_its_one_off_request_futures_out_of_its_state() {
        let prepared = prepared(Request::list::<Pod>());
        let stats = Arc::new(StatsCell::default());
        let steps = prepared.steps(WatcherId::next(), None, prepared.settings.clone(), stats);
        let size = std::mem::size_of_val(&steps);
        assert!(size <= 1024, "a watch stream's state is {size} bytes");
    }

    /// The spawned form adds a task per watch; its own state is small beside the stream's.
    #[test]
    fn a_spawned_watchers_task_is_small() {
        let source = Single {
            prepared: Some(Box::new(prepared(Request::list_of::<RawObject>(
                crate::ApiResource::of::<Pod>(),
            )))),
            id: WatcherId::next(),
            stats: Arc::default(),
        };
        let (tx, _rx) = tokio::sync::mpsc::channel::<Event<Pod>>(1);

        let task = spawn::drive(
            Box::new(source),
            tx,
            deferred::finish::<Pod>,
            tokio_util::sync::CancellationToken::new(),
            spawn::EndGuard::new(Arc::default(), Arc::default()),
            Arc::default(),
            |_| Duration::ZERO,
        );
        let size = std::mem::size_of_val(&task);
        assert!(size <= 1024, "a spawned watcher's task is {size} bytes");
        // A raw event is what the task holds while it waits for a channel slot, and what the
        // handle's own channel queues (its blocks hold 32 each).
        let event = std::mem::size_of::<Event<RawObject>>();
        assert!(event <= 128, "a raw event is {event} bytes");
    }
}
