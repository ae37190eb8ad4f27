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
//! - **A lane** is one HTTP/2 connection made with the `h2` crate over the client's connector
//!   (TCP or proxy tunnel, then TLS with ALPN, under the connect deadline), pinged every 30 s and
//!   closed when a ping goes 15 s unanswered. Its connection runs in one task ([`Driven`]), which
//!   marks the lane dead when the connection ends. A request is handed to `h2` on the requester's
//!   own task and its answer awaited there: no task and no channel per request (hyper's HTTP/2
//!   client, used here before, spawned a task for every request, about 1.3 KiB each while a
//!   thousand watches open).
//! - **Slots.** A request takes a slot on a lane before it is sent and holds it until its response
//!   body has ended, failed or been dropped: a watch for as long as its
//!   [`BodyStream`](crate::client::BodyStream) lives, [`Client::run`](crate::Client::run) until it
//!   has read the body. A new request takes the least-loaded live lane with a free slot (see
//!   [`super::slots`]).
//! - **Limits.** Until a lane's first response, h2 may not have applied the server's SETTINGS yet
//!   (h2 starts from 100). Such a lane counts as 100 streams, but carries a single request, the
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
//! - **Certificate rotation.** Each lane remembers the generation of the exec plugin's client
//!   certificate it was made in ([`CertEpoch`]). When the plugin returns another certificate,
//!   lanes of earlier generations leave the set: they take no new request, their open streams
//!   run on until they end, and h2 closes the connection then. New requests open a lane that
//!   presents the new certificate.
//! - **Death.** GOAWAY, an I/O error or an unanswered ping ends the connection: the lane is marked
//!   dead and dropped from the set. Its in-flight requests fail as they always did (the watcher
//!   resumes its watches); later requests take other lanes or open a new one. A request that the
//!   closing connection handed back unsent is sent once more, on another lane.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use h2::{
    Ping, PingPong, RecvStream,
    client::{Builder, Connection, SendRequest},
};
use http::{HeaderValue, Response, Uri, header};
use hyper_util::{client::legacy::connect::Connection as _, rt::TokioIo};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::Notify,
    time::{Instant, Sleep},
};

use crate::client::{
    Prepared,
    body::http2_error,
    response::ConnectFailure,
    slots::{self, Choice, Limit, Load, Slot, Slots},
    transport::{self, CertEpoch, Connector, H2_KEEP_ALIVE_INTERVAL, H2_KEEP_ALIVE_TIMEOUT, Io},
};

/// The lanes of one client (shared by its clones).
pub(crate) struct Lanes {
    /// `scheme://host:port` of the server: where connections go.
    origin: Uri,
    connector: Connector,
    builder: Builder,
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
    /// Which client certificate new connections present.
    epoch: CertEpoch,
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
    pub(crate) fn new(origin: Uri, connector: Connector, builder: Builder, epoch: CertEpoch) -> Self {
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
            epoch,
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
                if failures.count > failures_seen
                    && let Some(last) = &failures.last
                {
                    return Err(last.clone());
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

    /// Drops dead lanes, and lanes made with an earlier client certificate, and takes a slot on
    /// the least-loaded lane with room, if any.
    fn pick(&self) -> Picked {
        let epoch = self.epoch.current();
        let mut lanes = lock(&self.lanes);
        lanes.retain(|lane| {
            let current = lane.epoch == epoch;
            if !current {
                tracing::debug!(
                    lane = lane.id,
                    "client certificate changed: the connection takes no new requests"
                );
            }
            current && lane.is_live()
        });
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
        // Read before connecting: the handshake presents this generation's certificate or a
        // later one, never an earlier one.
        let epoch = self.epoch.current();
        let io = transport::connect(&self.connector, &self.origin).await?;
        if !io.connected().is_negotiated_h2() {
            tracing::debug!(
                server = %self.origin,
                "the server chose HTTP/1.1: requests go through the connection pool"
            );
            return Ok(None);
        }
        // h2 speaks tokio's I/O traits, the connector hyper's.
        let (sender, connection) = self
            .builder
            .handshake::<_, Bytes>(TokioIo::new(io))
            .await
            .map_err(|e| ConnectFailure::new(http2_error(e)))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(LaneState {
            known: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            changed: self.changed.clone(),
        });
        tokio::spawn(Driven::new(id, connection, state.clone()));
        tracing::debug!(server = %self.origin, lane = id, "HTTP/2 connection opened");
        Ok(Some(Arc::new(Lane {
            id,
            epoch,
            sender,
            slots: Slots::new(self.changed.clone()),
            state,
        })))
    }
}

/// One HTTP/2 connection and its open streams.
pub(crate) struct Lane {
    id: u64,
    /// The client certificate generation it was made in.
    epoch: u64,
    sender: SendRequest<Bytes>,
    slots: Arc<Slots>,
    state: Arc<LaneState>,
}

/// What the connection task reports about its lane.
struct LaneState {
    /// A response has come back, so the limit h2 reports includes the server's SETTINGS.
    known: AtomicBool,
    /// The connection has ended.
    dead: AtomicBool,
    /// The lanes' notifier.
    changed: Arc<Notify>,
}

/// Why a request sent on a lane has no response.
#[derive(Debug)]
pub(crate) enum LaneFailure {
    /// The connection refused the request before sending any of it (it is closing or closed):
    /// it may be sent again on another lane.
    Unsent(h2::Error),
    /// The request was sent, and its stream or the connection failed before the answer came.
    Failed(h2::Error),
}

impl Lane {
    /// Sends a request; the response comes back as soon as its headers have.
    pub(crate) async fn send(
        &self,
        prepared: &Prepared,
        credential: Option<&HeaderValue>,
    ) -> Result<Response<RecvStream>, LaneFailure> {
        let mut sender = self.sender.clone();
        // Fails at once if the connection has ended (GOAWAY, I/O error); a fresh clone has no
        // stream pending, so it does not wait otherwise.
        std::future::poll_fn(|cx| sender.poll_ready(cx))
            .await
            .map_err(LaneFailure::Unsent)?;
        let body = prepared.body();
        let (response, mut stream) = sender
            .send_request(http2_request(prepared, credential), body.is_empty())
            .map_err(LaneFailure::Unsent)?;
        if !body.is_empty() {
            // Buffered by h2 and sent as the server's window allows; bodies here are small.
            stream
                .send_data(body.clone(), true)
                .map_err(LaneFailure::Failed)?;
        }
        let response = response.await.map_err(LaneFailure::Failed)?;
        if !self.state.known.load(Ordering::Acquire) {
            self.learn_limit();
        }
        Ok(response)
    }

    /// The connection refused a request unsent: it is closing, take no more requests.
    pub(crate) fn mark_closed(&self) {
        if !self.state.dead.swap(true, Ordering::AcqRel) {
            tracing::debug!(lane = self.id, "HTTP/2 connection closing");
            self.state.changed.notify_waiters();
        }
    }

    fn is_live(&self) -> bool {
        !self.state.dead.load(Ordering::Acquire)
    }

    fn load(&self) -> Load {
        let limit = if self.state.known.load(Ordering::Acquire) {
            let servers = self.sender.current_max_send_streams();
            Limit::Known(servers.min(super::transport::H2_STREAMS_PER_LANE))
        } else {
            Limit::Unknown
        };
        Load {
            open: self.slots.open(),
            limit,
        }
    }

    /// After a response: the limit h2 reports now includes the server's SETTINGS, so it is marked
    /// known (each look reads it afresh, should the server change it) and waiting requests may
    /// use it.
    fn learn_limit(&self) {
        let limit = self.sender.current_max_send_streams();
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

/// The request as h2 takes it: the body goes separately, and headers that HTTP/2 forbids (the
/// connection-specific ones a caller of `send_raw` may have set) are dropped, as hyper did.
fn http2_request(prepared: &Prepared, credential: Option<&HeaderValue>) -> http::Request<()> {
    let mut request = prepared.request(credential, ());
    let headers = request.headers_mut();
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        http::HeaderName::from_static("keep-alive"),
        http::HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
    if headers.get(header::TE).is_some_and(|te| te != "trailers") {
        headers.remove(header::TE);
    }
    let length = prepared.body().len();
    let has_payload = matches!(
        *request.method(),
        http::Method::POST | http::Method::PUT | http::Method::PATCH
    );
    if length > 0 || has_payload {
        request
            .headers_mut()
            .entry(header::CONTENT_LENGTH)
            .or_insert_with(|| HeaderValue::from(length));
    }
    request
}

/// Drives a lane's connection and its keep-alive PINGs; when the connection ends (GOAWAY, I/O
/// error, unanswered ping, or the lane dropped with no stream left: h2 closes it then), it marks
/// the lane dead.
struct Driven<T = TokioIo<Io>> {
    id: u64,
    connection: Pin<Box<Connection<T, Bytes>>>,
    keep_alive: Option<KeepAlive>,
    state: Arc<LaneState>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Driven<T> {
    /// The task for `connection`.
    fn new(id: u64, mut connection: Connection<T, Bytes>, state: Arc<LaneState>) -> Self {
        let keep_alive = connection.ping_pong().map(KeepAlive::new);
        Driven {
            id,
            connection: Box::pin(connection),
            keep_alive,
            state,
        }
    }

    /// Marks the lane dead; returning makes the task drop the connection, which fails the
    /// streams still open on it (their watchers resume elsewhere).
    fn end(&mut self) -> Poll<()> {
        self.state.dead.store(true, Ordering::Release);
        self.state.changed.notify_waiters();
        Poll::Ready(())
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Future for Driven<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Some(keep_alive) = &mut this.keep_alive
            && keep_alive.poll_unanswered(cx).is_ready()
        {
            tracing::debug!(
                lane = this.id,
                "HTTP/2 connection closed: a ping went unanswered for {H2_KEEP_ALIVE_TIMEOUT:?}"
            );
            return this.end();
        }
        let Poll::Ready(result) = this.connection.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        match result {
            Ok(()) => tracing::debug!(lane = this.id, "HTTP/2 connection closed"),
            Err(e) => tracing::debug!(lane = this.id, error = %e, "HTTP/2 connection failed"),
        }
        this.end()
    }
}

/// PINGs the server every [`H2_KEEP_ALIVE_INTERVAL`] and notices when one goes unanswered for
/// [`H2_KEEP_ALIVE_TIMEOUT`]: a peer that vanished without closing the connection (a dead node,
/// a dropped NAT mapping) would otherwise leave its watches silent until their idle deadline.
struct KeepAlive {
    ping_pong: PingPong,
    timer: Pin<Box<Sleep>>,
    /// A ping is out, and `timer` is its deadline.
    awaiting_pong: bool,
}

impl KeepAlive {
    fn new(ping_pong: PingPong) -> Self {
        KeepAlive {
            ping_pong,
            timer: Box::pin(tokio::time::sleep(H2_KEEP_ALIVE_INTERVAL)),
            awaiting_pong: false,
        }
    }

    /// Ready when a ping has gone unanswered for too long; otherwise sends pings as they fall due
    /// and stays pending. A failure to ping means the connection is ending, which its own poll
    /// reports.
    fn poll_unanswered(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.awaiting_pong {
                match self.ping_pong.poll_pong(cx) {
                    Poll::Ready(Ok(_)) => {
                        self.awaiting_pong = false;
                        self.rearm(H2_KEEP_ALIVE_INTERVAL);
                    }
                    Poll::Ready(Err(_)) => return Poll::Pending,
                    Poll::Pending => {}
                }
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if self.awaiting_pong {
                return Poll::Ready(());
            }
            if self.ping_pong.send_ping(Ping::opaque()).is_err() {
                return Poll::Pending;
            }
            self.awaiting_pong = true;
            self.rearm(H2_KEEP_ALIVE_TIMEOUT);
        }
    }

    fn rearm(&mut self, after: std::time::Duration) {
        self.timer.as_mut().reset(Instant::now() + after);
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (counters and lists).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::HeaderMap;

    use super::*;

    /// A lane's connection task over an in-memory pipe, and the server's end of the pipe after
    /// the HTTP/2 handshake.
    async fn lane_over_a_pipe() -> (
        Driven<tokio::io::DuplexStream>,
        SendRequest<Bytes>,
        Arc<LaneState>,
        h2::server::Connection<tokio::io::DuplexStream, Bytes>,
    ) {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let (client, server) =
            tokio::join!(h2::client::handshake(client_io), h2::server::handshake(server_io));
        let (Ok((sender, connection)), Ok(server)) = (client, server) else {
            panic!("an HTTP/2 handshake over an in-memory pipe");
        };
        let state = Arc::new(LaneState {
            known: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            changed: Arc::new(Notify::new()),
        });
        let driven = Driven::new(1, connection, state.clone());
        (driven, sender, state, server)
    }

    /// Serves the server's end: answers PINGs and SETTINGS, accepts nothing.
    fn serve(mut server: h2::server::Connection<tokio::io::DuplexStream, Bytes>) {
        tokio::spawn(async move { while let Some(Ok(_)) = server.accept().await {} });
    }

    #[test]
    fn http2_requests_drop_connection_headers_and_say_their_length() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.insert(header::TE, HeaderValue::from_static("gzip"));
        let prepared = Prepared {
            method: http::Method::POST,
            uri: Uri::from_static("https://127.0.0.1:6443/api/v1/namespaces"),
            url: "https://127.0.0.1:6443/api/v1/namespaces".to_string(),
            headers,
            body: Bytes::from_static(b"{}"),
            stream: false,
        };
        let request = http2_request(&prepared, Some(&HeaderValue::from_static("Bearer t")));
        let headers = request.headers();
        let names: Vec<&str> = headers.keys().map(|name| name.as_str()).collect();
        assert_eq!(names, ["accept", "authorization", "content-length"]);
        assert_eq!(headers.get(header::CONTENT_LENGTH), Some(&HeaderValue::from(2)));
        assert!(
            headers
                .get(header::AUTHORIZATION)
                .is_some_and(HeaderValue::is_sensitive)
        );
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.uri(), &prepared.uri);
    }

    #[tokio::test(start_paused = true)]
    async fn a_ping_unanswered_for_the_timeout_closes_the_connection() {
        let (driven, _sender, state, _silent_server) = lane_over_a_pipe().await;
        let task = tokio::spawn(driven);
        // The first ping goes out after the interval; the connection ends once the timeout follows.
        let quiet = H2_KEEP_ALIVE_INTERVAL + H2_KEEP_ALIVE_TIMEOUT - Duration::from_secs(1);
        tokio::time::sleep(quiet).await;
        assert!(
            !state.dead.load(Ordering::Acquire),
            "closed before the ping timed out"
        );
        let ended = tokio::time::timeout(Duration::from_secs(2), task).await;
        assert!(matches!(ended, Ok(Ok(()))), "the connection task did not end");
        assert!(state.dead.load(Ordering::Acquire));
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_answers_pings_keeps_the_connection() {
        let (driven, _sender, state, server) = lane_over_a_pipe().await;
        serve(server);
        let task = tokio::spawn(driven);
        // Ten rounds of pings, every one answered.
        tokio::time::sleep(10 * H2_KEEP_ALIVE_INTERVAL).await;
        assert!(!state.dead.load(Ordering::Acquire));
        assert!(!task.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_lane_closes_its_idle_connection() {
        let (driven, sender, state, server) = lane_over_a_pipe().await;
        serve(server);
        let task = tokio::spawn(driven);
        tokio::task::yield_now().await;
        assert!(!task.is_finished());
        drop(sender);
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await;
        assert!(matches!(ended, Ok(Ok(()))), "the connection outlived its lane");
        assert!(state.dead.load(Ordering::Acquire));
    }
}
