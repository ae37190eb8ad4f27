//! Watcher options: Kazan's (`send_to`, `resource_version`, `name`, `log`) and the knobs the
//! original lacked (bookmarks, deadlines, backoff, limits).

use std::{ops::Range, time::Duration};

use tokio::sync::mpsc;

use super::backoff::BackoffConfig;

/// Where a spawned watcher sends its events: its own channel, read through the handle (the
/// default, like Kazan's `send_to: self()`), or a sender you pass.
pub trait SendTarget<K>: Send + 'static {
    /// What the receiver receives.
    type Message: Send + 'static;

    #[doc(hidden)]
    fn spawn(self, start: super::start::Start<K>) -> super::spawn::WatcherHandle<Self::Message>;
}

/// No `send_to`: the handle owns the receiver ([`WatcherHandle::recv`](super::WatcherHandle::recv)).
///
/// The watcher's task reads the socket, frames the events and follows the protocol; each object
/// is decoded by `recv`, on the consumer's side, so that it is built and dropped on one thread
/// (unless [`WatcherOptions::decode_concurrency`] asks for decoding ahead on other threads).
#[derive(Clone, Copy, Debug, Default)]
pub struct OwnChannel;

impl<K> SendTarget<K> for OwnChannel
where
    K: crate::Object + serde::de::DeserializeOwned + Send + 'static,
{
    type Message = super::event::Event<K>;

    fn spawn(self, start: super::start::Start<K>) -> super::spawn::WatcherHandle<super::event::Event<K>> {
        start.spawn_with_own_channel()
    }
}

impl<K, M> SendTarget<K> for mpsc::Sender<M>
where
    K: crate::Object + serde::de::DeserializeOwned + Send + 'static,
    M: From<super::event::Event<K>> + Send + 'static,
{
    type Message = M;

    fn spawn(self, start: super::start::Start<K>) -> super::spawn::WatcherHandle<M> {
        start.spawn_into(self, M::from)
    }
}

/// A `send_to` sender with a function that turns each event into your message
/// ([`WatcherOptions::send_to_with`]): no `From` impl needed.
pub struct SendMapped<M, F> {
    sender: mpsc::Sender<M>,
    map: F,
}

impl<M, F: Clone> Clone for SendMapped<M, F> {
    fn clone(&self) -> Self {
        SendMapped {
            sender: self.sender.clone(),
            map: self.map.clone(),
        }
    }
}

impl<M, F> std::fmt::Debug for SendMapped<M, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendMapped")
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

impl<K, M, F> SendTarget<K> for SendMapped<M, F>
where
    K: crate::Object + serde::de::DeserializeOwned + Send + 'static,
    M: Send + 'static,
    F: Fn(super::event::Event<K>) -> M + Send + 'static,
{
    type Message = M;

    fn spawn(self, start: super::start::Start<K>) -> super::spawn::WatcherHandle<M> {
        start.spawn_into(self.sender, self.map)
    }
}

/// How a watcher gets its initial list of objects (when it has no resource version to start from
/// and delivers the list: [`WatcherOptions::deliver_initial_list`], the supervised form, the
/// informer).
///
/// A streaming list (watch-list, KEP-3157) is one watch with `sendInitialEvents=true`: the server
/// sends every object as `ADDED`, then a BOOKMARK annotated `k8s.io/initial-events-end` at the
/// list's version, then the changes after it, from its watch cache and without building a list
/// in memory on either side. A paginated list is one list request per page, then a watch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum InitialList {
    /// Stream, and fall back to a paginated list for the watcher's life as soon as the server
    /// shows it does not stream lists: an error answer to the watch-list request (the 422 of a
    /// server without the WatchList feature, any 4xx), an ERROR event before the end of the
    /// initial events, or a watch that ends without the annotated bookmark. A server that
    /// ignores `sendInitialEvents` and sends a plain watch from "" is followed too: its burst
    /// of `ADDED` events ends at its first other event, as client-go's reflector reads it.
    #[default]
    Auto,
    /// Always stream; errors are handled as any watch's (a 422 ends the watcher).
    Streaming,
    /// Always list page by page ([`WatcherOptions::page_size`]). The next page is asked for as
    /// soon as a page is in, and fetched while that page is decoded and delivered (one page
    /// ahead at most, dropped if the list goes another way).
    Paginated,
}

/// How a watcher runs. Start from [`WatcherOptions::new`] and set what you need.
///
/// ```
/// use std::time::Duration;
/// use kazan::watcher::WatcherOptions;
///
/// let options = WatcherOptions::new()
///     .resource_version("4711")
///     .name("namespaces")
///     .log(Some(tracing::Level::INFO))
///     .idle_timeout(Duration::from_secs(90));
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct WatcherOptions<S = OwnChannel> {
    pub(crate) send_to: S,
    pub(crate) resource_version: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) log: Option<tracing::Level>,
    pub(crate) bookmarks: bool,
    pub(crate) deliver_bookmarks: bool,
    pub(crate) deliver_initial_list: bool,
    pub(crate) page_size: u32,
    pub(crate) watch_timeout: Range<u32>,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_line_bytes: usize,
    pub(crate) channel_capacity: usize,
    pub(crate) backoff: BackoffConfig,
    pub(crate) decode_concurrency: usize,
    pub(crate) decoder: crate::Decoder,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) shard: Option<std::sync::Arc<crate::shard::ShardSelector>>,
    pub(crate) initial_list: InitialList,
}

impl Default for WatcherOptions<OwnChannel> {
    fn default() -> Self {
        WatcherOptions {
            send_to: OwnChannel,
            resource_version: None,
            name: None,
            log: Some(tracing::Level::DEBUG),
            bookmarks: true,
            deliver_bookmarks: false,
            deliver_initial_list: false,
            page_size: 500,
            watch_timeout: 300..600,
            idle_timeout: Duration::from_secs(130),
            max_line_bytes: 16 * 1024 * 1024,
            channel_capacity: 100,
            backoff: BackoffConfig::default(),
            decode_concurrency: 1,
            decoder: crate::Decoder::default(),
            request_timeout: None,
            shard: None,
            initial_list: InitialList::default(),
        }
    }
}

impl WatcherOptions<OwnChannel> {
    /// The defaults: a list first (when no version is given), bookmarks requested, server timeout
    /// jittered in 5–10 minutes, idle deadline 130 s, lines up to 16 MiB, logging at DEBUG.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> WatcherOptions<S> {
    /// Sends events to `sender` instead of the handle's own channel (Kazan's `send_to`). Several
    /// watchers of different kinds may share one receiver: `M` is your enum with a `From` impl per
    /// kind's `Event<K>` (or use [`send_to_with`](Self::send_to_with) and no impl).
    ///
    /// Each object is decoded on the watcher's task once a slot in `sender` is free for it, so a
    /// watcher waiting on a full channel holds the event's JSON line, not a decoded object (unless
    /// [`decode_concurrency`](Self::decode_concurrency) is above 1).
    ///
    /// ```
    /// use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    /// use kazan::watcher::{Event, WatcherOptions};
    ///
    /// enum Msg {
    ///     Pod(Event<Pod>),
    ///     ConfigMap(Event<ConfigMap>),
    /// }
    /// impl From<Event<Pod>> for Msg {
    ///     fn from(e: Event<Pod>) -> Self { Msg::Pod(e) }
    /// }
    /// impl From<Event<ConfigMap>> for Msg {
    ///     fn from(e: Event<ConfigMap>) -> Self { Msg::ConfigMap(e) }
    /// }
    ///
    /// let (tx, _rx) = tokio::sync::mpsc::channel::<Msg>(100);
    /// let pods = WatcherOptions::new().send_to(tx.clone());
    /// let config_maps = WatcherOptions::new().send_to(tx);
    /// # let _ = (pods, config_maps);
    /// ```
    pub fn send_to<M>(self, sender: mpsc::Sender<M>) -> WatcherOptions<mpsc::Sender<M>> {
        self.with_target(sender)
    }

    /// Sends events to `sender`, each turned into your message by `map`: the lighter way to feed
    /// one receiver from watchers of several kinds, with no `From` impl. An enum variant that
    /// holds an event is such a function.
    ///
    /// ```
    /// use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    /// use kazan::watcher::{Event, WatcherOptions};
    ///
    /// enum Msg {
    ///     Pod(Event<Pod>),
    ///     ConfigMap(Event<ConfigMap>),
    /// }
    ///
    /// let (tx, _rx) = tokio::sync::mpsc::channel::<Msg>(100);
    /// let pods = WatcherOptions::new().send_to_with(tx.clone(), Msg::Pod);
    /// let config_maps = WatcherOptions::new().send_to_with(tx, Msg::ConfigMap);
    /// # let _ = (pods, config_maps);
    /// ```
    pub fn send_to_with<M, F>(self, sender: mpsc::Sender<M>, map: F) -> WatcherOptions<SendMapped<M, F>> {
        self.with_target(SendMapped { sender, map })
    }

    /// The same options with another target.
    fn with_target<T>(self, target: T) -> WatcherOptions<T> {
        WatcherOptions {
            send_to: target,
            resource_version: self.resource_version,
            name: self.name,
            log: self.log,
            bookmarks: self.bookmarks,
            deliver_bookmarks: self.deliver_bookmarks,
            deliver_initial_list: self.deliver_initial_list,
            page_size: self.page_size,
            watch_timeout: self.watch_timeout,
            idle_timeout: self.idle_timeout,
            max_line_bytes: self.max_line_bytes,
            channel_capacity: self.channel_capacity,
            backoff: self.backoff,
            decode_concurrency: self.decode_concurrency,
            decoder: self.decoder,
            request_timeout: self.request_timeout,
            shard: self.shard,
            initial_list: self.initial_list,
        }
    }

    /// Starts strictly after this resourceVersion (Kazan's `resource_version`): no list.
    pub fn resource_version(mut self, rv: impl Into<String>) -> Self {
        self.resource_version = Some(rv.into());
        self
    }

    /// A name shown on every log line of this watcher (Kazan's `name`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The level of the watcher's routine log lines, or `None` for no logging at all (Kazan's `log`).
    /// Problems (retries, skipped events) are logged at WARN or above while logging is on.
    pub fn log(mut self, level: Option<tracing::Level>) -> Self {
        self.log = level;
        self
    }

    /// Whether to ask for bookmarks (default yes): they keep the resume version fresh on quiet
    /// resources, so a reconnect does not hit 410.
    pub fn bookmarks(mut self, request: bool) -> Self {
        self.bookmarks = request;
        self
    }

    /// Whether to deliver bookmarks as `Bookmark` events (default no).
    pub fn deliver_bookmarks(mut self, deliver: bool) -> Self {
        self.deliver_bookmarks = deliver;
        self
    }

    /// Whether to deliver the initial list's objects as `Added` events, followed by `Synced`
    /// (default no, as in Kazan). Only applies when the watcher lists (no resource version).
    /// Should the list's snapshot expire between pages (410 on a continue token), the watcher
    /// delivers `Gone`: the objects already delivered may since have been deleted, so clear them
    /// and start again. A streamed list ([`InitialList`]) cut before its end after it delivered
    /// objects is `Gone` likewise (the supervised form and the informer list again by themselves).
    pub fn deliver_initial_list(mut self, deliver: bool) -> Self {
        self.deliver_initial_list = deliver;
        self
    }

    /// How the initial list is fetched (default [`InitialList::Auto`]: streamed, paginated when
    /// the server does not stream lists). A request carrying `send_initial_events(true)` asks for
    /// [`InitialList::Streaming`], `send_initial_events(false)` for [`InitialList::Paginated`];
    /// against the other explicit choice here, the watcher does not start
    /// ([`WatchError::InitialListConflict`](super::WatchError::InitialListConflict)).
    ///
    /// Streaming applies when the list is delivered; a watcher that does not deliver it reads one
    /// page to learn where to start.
    pub fn initial_list(mut self, how: InitialList) -> Self {
        self.initial_list = how;
        self
    }

    /// Page size of the initial list (default 500).
    pub fn page_size(mut self, size: u32) -> Self {
        self.page_size = size.max(1);
        self
    }

    /// The server-side `timeoutSeconds` of each watch request, drawn at random from this range
    /// (default 300..600) so that many watchers do not reconnect in step. A request that sets
    /// `timeoutSeconds` itself keeps its value.
    pub fn watch_timeout(mut self, seconds: Range<u32>) -> Self {
        let start = seconds.start.max(1);
        self.watch_timeout = start..seconds.end.max(start + 1);
        self
    }

    /// How long the watch may go without receiving a byte before the connection is presumed dead
    /// and the watch resumed (default 130 s: a little over two bookmark intervals).
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// The longest event line accepted (default 16 MiB); longer lines are dropped and reported.
    pub fn max_line_bytes(mut self, max: usize) -> Self {
        self.max_line_bytes = max.max(1024);
        self
    }

    /// Capacity of the handle's own channel (default 100). The watcher stops reading the socket
    /// while the channel is full.
    pub fn channel_capacity(mut self, capacity: usize) -> Self {
        self.channel_capacity = capacity.max(1);
        self
    }

    /// Backoff between retries (default 800 ms doubling to 30 s, reset after a healthy minute).
    pub fn backoff(mut self, backoff: BackoffConfig) -> Self {
        self.backoff = backoff;
        self
    }

    /// The deadline of this watcher's requests (each list page, and the response headers of each
    /// watch), instead of the client's; the watch stream itself is bounded by `idle_timeout`.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Watches one shard of the objects (KEP-5866, server-side sharded list and watch): only
    /// those whose `metadata.uid` (or `metadata.namespace`) hashes into the selector's ranges.
    ///
    /// The selector is sent as `shardSelector` on every list and watch. A server with the
    /// `ShardedListAndWatch` feature filters and echoes it in the list's `shardInfo`; an older
    /// server ignores it and sends every object. Either way the watcher also filters what it
    /// receives (one FNV-1a hash per object), so a consumer sees the same objects; objects of
    /// other shards move the resume version but are not delivered. [`WatcherStats::shard_mode`](super::WatcherStats::shard_mode)
    /// says who filtered, and `shard_filtered` how many objects the watcher dropped itself.
    /// Objects never change shards: `uid` and `namespace` are immutable. With
    /// [`InitialList::Auto`](super::InitialList::Auto) a sharded watcher lists page by page, since
    /// only a list's `shardInfo` tells whether the server filtered.
    pub fn shard(mut self, selector: crate::shard::ShardSelector) -> Self {
        self.shard = Some(std::sync::Arc::new(selector));
        self
    }

    /// How many chunks of events may be decoded at once on the runtime's other threads (default 1:
    /// each object is decoded on the consumer's side just before it is delivered), in either form.
    /// Events are delivered in order whatever the value.
    ///
    /// Above 1, objects are built on one thread and dropped on another, which most allocators
    /// make dear: on 2 cores with glibc's malloc, 4 cost about half as much CPU again per event
    /// and took fewer events per second than the default; with mimalloc, the same events per
    /// second for more CPU (`BENCHMARKS.md`). Worth trying only with idle cores to spare and an
    /// allocator that frees across threads cheaply, and worth measuring.
    pub fn decode_concurrency(mut self, n: usize) -> Self {
        self.decode_concurrency = n.max(1);
        self
    }

    /// The parser that builds typed objects (default: [`Decoder::FASTEST`](crate::Decoder::FASTEST),
    /// the fastest this build has; see [`Decoder`](crate::Decoder) and its cargo features). The
    /// objects, and the errors of objects that do not decode, are the same whichever it is:
    /// what a faster parser refuses is decoded by `serde_json`. The lazy form's identity read is
    /// `serde_json`'s whatever the choice.
    pub fn decoder(mut self, decoder: crate::Decoder) -> Self {
        self.decoder = decoder;
        self
    }
}
