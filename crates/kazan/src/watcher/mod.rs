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
//! A watcher that delivers its initial list ([`WatcherOptions::deliver_initial_list`], the
//! supervised form, the informer) streams it by default ([`InitialList::Auto`]): one watch with
//! `sendInitialEvents=true`, whose objects come as `Added` and whose bookmark annotated
//! `k8s.io/initial-events-end` becomes `Synced`, exactly as at the end of a paginated list; the
//! watch then goes on and never asks for initial events again. When the server shows it does not
//! stream lists (an error answer, an ERROR event, a watch that ends without that bookmark), the
//! watcher lists page by page from then on (`InitialList` says how each case is detected).
//!
//! Three forms share one state machine: the spawned form above ([`Watcher::start`], events in a
//! bounded channel, a handle to stop it), the [`Stream`](futures_util::Stream) form
//! ([`Watcher::stream`]) and the supervised form ([`Watcher::supervise`], which relists after Gone).
//! The handle and the stream both tell the watcher's counters ([`WatcherStats`]).
//! See <https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes>.

mod backoff;
mod decode;
mod deferred;
mod error;
mod event;
mod event_line;
mod frame;
#[cfg(test)]
mod fuzz;
mod idle;
mod machine;
mod options;
mod spawn;
mod start;
mod stats;
mod step;
mod stream;

use serde::de::DeserializeOwned;

pub use backoff::BackoffConfig;
pub use error::WatchError;
pub use event::{Event, EventKind, EventType, WatcherId};
pub use options::{InitialList, OwnChannel, SendMapped, SendTarget, WatcherOptions};
pub use spawn::{EndReason, StopOutcome, WatcherHandle};
#[doc(hidden)]
pub use start::Start;
pub use start::WatchRequest;
pub use stats::{RetryCauses, WatcherStats};
pub use stream::WatchStream;

use crate::{Client, Object, request::Request, resource::ObjectList};
use start::Prepared;

/// Starts watchers. See the [module documentation](self).
#[derive(Debug)]
pub struct Watcher;

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
        let start = Start::new(prepared, options.channel_capacity, false);
        Ok(options.send_to.spawn(start))
    }

    /// The same watcher as a [`Stream`](futures_util::Stream) of events, for consumers that prefer streams. Nothing is
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
        Ok(Prepared::new(client, request, &options, id)?.into_watch_stream())
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
        let start = Start::new(prepared, options.channel_capacity, true);
        Ok(options.send_to.spawn(start))
    }
}
