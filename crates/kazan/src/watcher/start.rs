//! Getting a watcher going: a request and options prepared once ([`Prepared`]), the state machine
//! run as a stream of steps, and the spawned forms' sources — one stream ([`Single`]) or a new one
//! after each Gone ([`Supervised`]).

use std::{sync::Arc, time::Duration};

use futures_util::Stream;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::{
    backoff::{Backoff, BackoffConfig},
    deferred,
    error::WatchError,
    event::{Event, WatcherId},
    machine::{Machine, Settings},
    options::{InitialList, WatcherOptions},
    spawn::{self, WatcherHandle},
    stats::StatsCell,
    step::Step,
    stream::StepStream,
    stream::WatchStream,
};
use crate::{
    Client, Object, RawObject,
    raw::IdentityRead,
    request::{Request, Verb, WatchEvents},
    resource::ObjectList,
};

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

/// A watcher's request and settings, checked once; every stream of the watcher starts from it.
pub(super) struct Prepared<K> {
    id: WatcherId,
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
    pub(super) fn new<S, R: WatchRequest<K>>(
        client: Client,
        request: R,
        options: &WatcherOptions<S>,
        id: WatcherId,
    ) -> Result<Self, WatchError> {
        let (mut request, is_watch) = request.into_parts();
        let request_rv = request.params_mut().resource_version.take();
        // The request's `sendInitialEvents` chooses how to list: honoured, or refused when the
        // options chose the other way, never dropped.
        let initial_list = match (
            request.params_mut().send_initial_events.take(),
            options.initial_list,
        ) {
            (None, chosen) => chosen,
            (Some(true), InitialList::Auto | InitialList::Streaming) => InitialList::Streaming,
            (Some(false), InitialList::Auto | InitialList::Paginated) => InitialList::Paginated,
            (Some(requested), chosen) => {
                return Err(WatchError::InitialListConflict {
                    requested,
                    options: chosen,
                });
            }
        };
        // A sharded watcher learns whether the server filters from a list's `shardInfo`, which a
        // streamed list does not carry: Auto lists page by page for it.
        let initial_list = match (initial_list, &options.shard) {
            (InitialList::Auto, Some(_)) => InitialList::Paginated,
            (chosen, _) => chosen,
        };
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
        if let Some(shard) = &options.shard {
            request = request.shard(shard);
        }
        let client = match options.request_timeout {
            Some(timeout) => client.with_request_timeout(timeout),
            None => client,
        };
        let name = options.name.clone().unwrap_or_else(|| id.to_string());
        let span = tracing::info_span!("watcher", name = %name, id = id.get());
        Ok(Prepared {
            id,
            client,
            request,
            start_rv,
            settings: Settings::from_options(options, fixed_timeout, initial_list),
            backoff: options.backoff,
            span,
        })
    }

    /// The same watcher over undecoded objects, each decoded whole later (by the handle's `recv`
    /// or before it is sent): only their name, namespace and version are read ahead.
    fn raw(self) -> Prepared<RawObject> {
        let mut settings = self.settings;
        // The brief read stops at the name and version; a shard needs the uid or namespace too.
        if settings.shard.is_none() {
            settings.identity_read = IdentityRead::Brief;
        }
        Prepared {
            client: self.client,
            request: self.request.retype(Verb::List),
            id: self.id,
            start_rv: self.start_rv,
            settings,
            backoff: self.backoff,
            span: self.span,
        }
    }

    /// The [`WatchStream`] form of this watcher.
    pub(super) fn into_watch_stream(self) -> WatchStream<K> {
        let stats = Arc::<StatsCell>::default();
        WatchStream {
            steps: self.stream(
                self.id,
                self.start_rv.clone(),
                self.settings.clone(),
                stats.clone(),
            ),
            id: self.id,
            stats,
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
    capacity: usize,
    supervised: bool,
}

impl<K> Start<K>
where
    K: Object + DeserializeOwned + Send + 'static,
{
    pub(super) fn new(prepared: Prepared<K>, capacity: usize, supervised: bool) -> Self {
        Start {
            prepared,
            capacity,
            supervised,
        }
    }

    fn spawn_task<M: Send + 'static>(
        self,
        tx: tokio::sync::mpsc::Sender<M>,
        message: impl Fn(Event<K>) -> M + Send + 'static,
        stats: Arc<StatsCell>,
    ) -> spawn::Control {
        let Start {
            prepared, supervised, ..
        } = self;
        let id = prepared.id;
        if supervised {
            // Relists after Gone are spaced by the watcher's own backoff (jittered, so that a
            // fleet of watchers Gone at once does not relist in step).
            let mut backoff = Backoff::new(prepared.backoff);
            let source = Supervised {
                prepared,
                id,
                stats: stats.clone(),
            };
            spawn::spawn(id, source, tx, message, stats, move |_restart| {
                backoff.next_delay(tokio::time::Instant::now(), None)
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
    pub(super) fn spawn_into<M: Send + 'static>(
        self,
        tx: tokio::sync::mpsc::Sender<M>,
        map: impl Fn(Event<K>) -> M + Send + 'static,
    ) -> WatcherHandle<M> {
        let capacity = self.capacity;
        let control = if self.decodes_in_the_task() {
            self.spawn_task(tx, map, Arc::default())
        } else {
            let decoder = self.prepared.settings.decoder;
            self.into_raw().spawn_task(
                tx,
                move |event| map(deferred::finish::<K>(event, decoder)),
                Arc::default(),
            )
        };
        WatcherHandle::new(control, spawn::Inbox::Elsewhere, capacity)
    }

    /// Whether the task decodes each object whole, instead of reading its identity ahead and
    /// leaving the rest to the receiver: with `decode_concurrency` above 1, as the option says,
    /// and for [`TableRow`](crate::table::TableRow)s, whose identity is inside their row
    /// (`rows[0].object.metadata`), where the brief read of a raw object does not look. And for
    /// [`PartialObjectMetadata`](crate::PartialObjectMetadata): its metadata is all of it, so the
    /// read ahead would parse the whole object twice.
    fn decodes_in_the_task(&self) -> bool {
        self.prepared.settings.decode_concurrency > 1
            || crate::table::is_table::<K>()
            || crate::metadata::is_partial::<K>()
    }

    /// The same watcher over undecoded objects.
    fn into_raw(self) -> Start<RawObject> {
        Start {
            prepared: self.prepared.raw(),
            capacity: self.capacity,
            supervised: self.supervised,
        }
    }

    /// Spawns the watcher with the handle's own channel, objects decoded by `recv`; with
    /// `decode_concurrency` above 1, decoded ahead on the runtime's threads instead, as the option
    /// says, and queued decoded.
    pub(super) fn spawn_with_own_channel(self) -> WatcherHandle<Event<K>> {
        let capacity = self.capacity;
        if self.decodes_in_the_task() {
            let (tx, rx) = tokio::sync::mpsc::channel::<Event<K>>(capacity);
            let control = self.spawn_task(tx, |event| event, Arc::default());
            let inbox = deferred::DecodedAhead { rx };
            return WatcherHandle::new(control, spawn::Inbox::Decoding(Box::new(inbox)), capacity);
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Event<RawObject>>(capacity);
        let decoder = self.prepared.settings.decoder;
        let control = self.into_raw().spawn_task(tx, |event| event, Arc::default());
        let inbox = deferred::DecodeOnReceive::<K> {
            rx,
            decoder,
            _k: std::marker::PhantomData,
        };
        WatcherHandle::new(control, spawn::Inbox::Decoding(Box::new(inbox)), capacity)
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
            |event| deferred::finish::<Pod>(event, crate::Decoder::default()),
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
