//! HTTP/2 lanes: a client's connections to a server that speaks HTTP/2, as many as the server's
//! per-connection stream limit requires.
//!
//! # Why
//!
//! An HTTP/2 server caps the streams open at once on one connection
//! (SETTINGS_MAX_CONCURRENT_STREAMS: kube-apiserver's `--http2-max-streams-per-connection`, 100
//! when unset; 200 on hyper's server). A watch holds its stream for minutes, so on a single connection the watch
//! over the limit waits inside h2 for another stream to end, silently, possibly for a whole watch
//! timeout; and hyper then holds every later request of that connection behind it. Users of other
//! libraries know this stall (client-go#456, csharp#1304). Go's transport opens another
//! connection when one is full; lanes do the same.
//!
//! # How
//!
//! - **A lane** is one HTTP/2 connection made with hyper's connection API over the client's
//!   connector (TCP or proxy tunnel, then TLS with ALPN, under the connect deadline), pinged every
//!   30 s while idle and closed when a ping goes 15 s unanswered. Its connection future is wrapped
//!   ([`Driven`]) so that after every poll it records the server's limit as h2 reports it, answers
//!   limit queries, and marks the lane dead when the connection ends.
//! - **Slots.** A request takes a slot on a lane before it is sent and holds it until its response
//!   body has ended, failed or been dropped: a watch for as long as its
//!   [`BodyStream`](crate::client::BodyStream) lives, [`Client::run`](crate::Client::run) until it
//!   has read the body. A new request takes the least-loaded live lane with a free slot (see
//!   [`super::slots`]).
//! - **Limits.** Until a lane's first response, h2 may not have applied the server's SETTINGS yet
//!   (hyper starts from 100). Such a lane counts as 100 streams, but carries a single request, the
//!   probe; other requests wait for the probe's answer rather than open a connection the lane may
//!   make needless. Once a response has come back, the SETTINGS have been applied (they are the
//!   first frame a server sends, and h2 applies them before it reads another frame), so the limit
//!   read after it is exact, and `usize::MAX` then means that the server set none.
//! - **Opening.** When every lane is full, one requester opens a connection and the others wait
//!   for it instead of each opening their own; if it fails, they all get its error (as waiters of
//!   one dial do in Go).
//! - **Mode.** The first connection decides: ALPN `h2` gives lanes for every request; ALPN
//!   `http/1.1` drops that connection and sends every request through the pooled HTTP/1.1 client
//!   (which needs its pool of connections). Should a later connection get `http/1.1`, the client
//!   switches to the pool for good. Plain `http://` never comes here.
//! - **Death.** GOAWAY, an I/O error or an unanswered ping ends the connection: the lane is marked
//!   dead and dropped from the set. Its in-flight requests fail as they always did (the watcher
//!   resumes its watches); later requests take other lanes or open a new one. A request that the
//!   closing connection handed back unsent is sent once more, on another lane.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::{
    body::Incoming,
    client::conn::{TrySendError, http2},
};
use hyper_util::{client::legacy::connect::Connection as _, rt::TokioExecutor};
use tokio::sync::{Notify, mpsc, oneshot};
use tower_service::Service as _;

use crate::client::{
    response::ConnectFailure,
    slots::{self, Choice, Limit, Load, Slot, Slots},
    transport::{Connector, Io},
};

/// The HTTP/2 connection future of one lane.
type Http2Connection = http2::Connection<Io, Full<Bytes>, TokioExecutor>;

/// The lanes of one client (shared by its clones).
pub(crate) struct Lanes {
    /// `scheme://host:port` of the server: where connections go.
    origin: Uri,
    connector: Connector,
    builder: http2::Builder<TokioExecutor>,
    /// Live lanes, oldest first. Slots are taken only under this lock.
    lanes: Mutex<Vec<Arc<Lane>>>,
    /// Told whenever room may have appeared: a slot was released, a lane learnt its limit or
    /// died, or the client switched to HTTP/1.1.
    changed: Arc<Notify>,
    /// Held by the one requester opening a connection.
    opening: tokio::sync::Mutex<()>,
    /// Failed connection attempts, for the requesters that waited for them.
    failures: Mutex<Failures>,
    /// The server chose HTTP/1.1: every request goes through the pooled client.
    http1: AtomicBool,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Failures {
    count: u64,
    last: Option<ConnectFailure>,
}

/// Where a request goes.
pub(crate) enum Route {
    /// On this lane, holding this slot.
    Lane(Arc<Lane>, Slot),
    /// Through the pooled HTTP/1.1 client.
    Pooled,
}

enum Picked {
    Lane(Arc<Lane>, Slot),
    Wait,
    Open,
}

impl Lanes {
    /// No connection yet: the first request opens one.
    pub(crate) fn new(origin: Uri, connector: Connector, builder: http2::Builder<TokioExecutor>) -> Self {
        Lanes {
            origin,
            connector,
            builder,
            lanes: Mutex::new(Vec::new()),
            changed: Arc::new(Notify::new()),
            opening: tokio::sync::Mutex::new(()),
            failures: Mutex::new(Failures::default()),
            http1: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
        }
    }

    /// Finds a lane with room for one more request and takes a slot on it, waiting for a probe
    /// or opening a connection when none has room.
    pub(crate) async fn route(&self) -> Result<Route, ConnectFailure> {
        loop {
            // Enabled before looking, so that a change after the look is not missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.http1.load(Ordering::Acquire) {
                return Ok(Route::Pooled);
            }
            match self.pick() {
                Picked::Lane(lane, slot) => return Ok(Route::Lane(lane, slot)),
                Picked::Wait => {
                    changed.await;
                    continue;
                }
                Picked::Open => {}
            }

            let failures_seen = lock(&self.failures).count;
            let _opening = self.opening.lock().await;
            // Whoever held the lock may have opened a lane, or slots may have been freed.
            if self.http1.load(Ordering::Acquire) {
                return Ok(Route::Pooled);
            }
            match self.pick() {
                Picked::Lane(lane, slot) => return Ok(Route::Lane(lane, slot)),
                Picked::Wait => continue,
                Picked::Open => {}
            }
            {
                let failures = lock(&self.failures);
                if failures.count > failures_seen {
                    if let Some(last) = &failures.last {
                        return Err(last.clone());
                    }
                }
            }
            // Boxed: connecting (DNS, TCP, TLS, the h2 handshake) is a large future, needed by the
            // one request that opens a connection; inline, every request would carry its size.
            return match Box::pin(self.open()).await {
                Ok(Some(lane)) => {
                    // Taken before the lane is visible: this request is its probe.
                    let slot = lane.slots.take();
                    lock(&self.lanes).push(lane.clone());
                    Ok(Route::Lane(lane, slot))
                }
                Ok(None) => {
                    self.http1.store(true, Ordering::Release);
                    self.changed.notify_waiters();
                    Ok(Route::Pooled)
                }
                Err(failure) => {
                    let mut failures = lock(&self.failures);
                    failures.count += 1;
                    failures.last = Some(failure.clone());
                    Err(failure)
                }
            };
        }
    }

    /// Drops dead lanes and takes a slot on the least-loaded lane with room, if any.
    fn pick(&self) -> Picked {
        let mut lanes = lock(&self.lanes);
        lanes.retain(|lane| lane.is_live());
        match slots::choose(lanes.iter().map(|lane| lane.load())) {
            Choice::Take(index) => match lanes.get(index) {
                Some(lane) => Picked::Lane(lane.clone(), lane.slots.take()),
                None => Picked::Open,
            },
            Choice::Wait => Picked::Wait,
            Choice::Open => Picked::Open,
        }
    }

    /// Connects; `None` when ALPN chose HTTP/1.1 (the connection is dropped).
    async fn open(&self) -> Result<Option<Arc<Lane>>, ConnectFailure> {
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(ConnectFailure::new)?;
        let io = connector
            .call(self.origin.clone())
            .await
            .map_err(ConnectFailure::new)?;
        if !io.connected().is_negotiated_h2() {
            tracing::debug!(
                server = %self.origin,
                "the server chose HTTP/1.1: requests go through the connection pool"
            );
            return Ok(None);
        }
        let (sender, connection) = self
            .builder
            .handshake(io)
            .await
            .map_err(|e| ConnectFailure::new(Box::new(e)))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(LaneState {
            reported: AtomicUsize::new(slots::ASSUMED_STREAMS),
            known: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            changed: self.changed.clone(),
        });
        let (queries, queried) = mpsc::unbounded_channel();
        tokio::spawn(Driven {
            id,
            connection: Box::pin(connection),
            state: state.clone(),
            queries: queried,
        });
        tracing::debug!(server = %self.origin, lane = id, "HTTP/2 connection opened");
        Ok(Some(Arc::new(Lane {
            id,
            sender,
            slots: Slots::new(self.changed.clone()),
            state,
            queries,
        })))
    }
}

/// One HTTP/2 connection and its open streams.
pub(crate) struct Lane {
    id: u64,
    sender: http2::SendRequest<Full<Bytes>>,
    slots: Arc<Slots>,
    state: Arc<LaneState>,
    /// Asks the connection task for the limit h2 knows now.
    queries: mpsc::UnboundedSender<oneshot::Sender<usize>>,
}

/// What the connection task reports about its lane.
struct LaneState {
    /// SETTINGS_MAX_CONCURRENT_STREAMS as h2 last reported it.
    reported: AtomicUsize,
    /// `reported` was read after a response came back, so the server's SETTINGS are in it.
    known: AtomicBool,
    /// The connection has ended.
    dead: AtomicBool,
    /// The lanes' notifier.
    changed: Arc<Notify>,
}

impl Lane {
    /// Sends a request; the response comes back as soon as its headers have. A request the
    /// connection never took (it was closing) is handed back in the error.
    pub(crate) async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, TrySendError<Request<Full<Bytes>>>> {
        let response = self.sender.clone().try_send_request(request).await?;
        if !self.state.known.load(Ordering::Acquire) {
            self.learn_limit().await;
        }
        Ok(response)
    }

    /// The connection handed a request back unsent: it is closing, take no more requests.
    pub(crate) fn mark_closed(&self) {
        if !self.state.dead.swap(true, Ordering::AcqRel) {
            tracing::debug!(lane = self.id, "HTTP/2 connection closing");
            self.state.changed.notify_waiters();
        }
    }

    fn is_live(&self) -> bool {
        !self.state.dead.load(Ordering::Acquire) && !self.sender.is_closed()
    }

    fn load(&self) -> Load {
        let limit = if self.state.known.load(Ordering::Acquire) {
            Limit::Known(self.state.reported.load(Ordering::Acquire))
        } else {
            Limit::Unknown
        };
        Load {
            open: self.slots.open(),
            limit,
        }
    }

    /// After a response: asks the connection task for the limit, which now includes the
    /// server's SETTINGS, and lets waiting requests use it.
    async fn learn_limit(&self) {
        let (reply, answer) = oneshot::channel();
        if self.queries.send(reply).is_err() {
            return;
        }
        // No answer: the connection ended, and the lane is dead anyway.
        let Ok(limit) = answer.await else {
            return;
        };
        self.state.reported.store(limit, Ordering::Release);
        if !self.state.known.swap(true, Ordering::AcqRel) {
            tracing::debug!(
                lane = self.id,
                max_concurrent_streams = limit,
                "HTTP/2 stream limit known"
            );
        }
        self.state.changed.notify_waiters();
    }
}

/// Drives a lane's connection. After every poll it records the limit h2 reports
/// (`current_max_send_streams`) and answers queries with it; when the connection ends (GOAWAY,
/// I/O error, unanswered ping, every sender dropped), it marks the lane dead.
struct Driven {
    id: u64,
    connection: Pin<Box<Http2Connection>>,
    state: Arc<LaneState>,
    queries: mpsc::UnboundedReceiver<oneshot::Sender<usize>>,
}

impl Future for Driven {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let polled = this.connection.as_mut().poll(cx);
        let limit = this.connection.current_max_send_streams();
        this.state.reported.store(limit, Ordering::Release);
        while let Poll::Ready(Some(reply)) = this.queries.poll_recv(cx) {
            let _ = reply.send(limit);
        }
        let Poll::Ready(result) = polled else {
            return Poll::Pending;
        };
        match result {
            Ok(()) => tracing::debug!(lane = this.id, "HTTP/2 connection closed"),
            Err(e) => tracing::debug!(lane = this.id, error = %e, "HTTP/2 connection failed"),
        }
        this.state.dead.store(true, Ordering::Release);
        this.state.changed.notify_waiters();
        Poll::Ready(())
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (counters and lists).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
