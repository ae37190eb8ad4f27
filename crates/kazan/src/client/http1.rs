//! HTTP/1.1 connections for streamed responses (watches), each driven by the body that reads it.
//!
//! # Why
//!
//! hyper's pooled client runs every connection in a task of its own and hands each chunk it reads
//! to the body's reader through a channel: two tasks, usually on two threads, that wake each other
//! for every chunk, and once more when the reader wants the next one. On a watch stream those
//! wake-ups were a fifth of the CPU spent per event when decoding typed objects, and half of it
//! for the lazy form. A watch holds its connection for as long as it runs, so the connection has
//! no other user to serve: here the body polls the connection itself, and the bytes are read from
//! the socket, de-chunked and handed over in the reading task.
//!
//! # How
//!
//! - A stream request takes a kept connection, or connects through the client's connector (TCP or
//!   proxy tunnel, then TLS, under the connect deadline), and polls the connection together with
//!   the response until the headers have come.
//! - The body ([`DrivenBody`]) polls the connection each time it is polled. A slow reader therefore
//!   stops the socket being read, and TCP pushes back on the server, as with the pool.
//! - A connection whose body was read to its end (the server's watch timeout) is kept for the next
//!   stream request, as the pool would keep it, so a resumed watch does not connect again. Kept
//!   connections are not read while they wait: one the server closed meanwhile fails when it is
//!   taken (at once: a request is never left queued on a connection that has ended, where it
//!   waited for the request deadline; issue 23), and the request then goes on another kept
//!   connection or a new one (as does an
//!   idempotent request, such as a watch's GET, that failed as it went out). At most
//!   [`KEPT_MAX`] are kept, each for at most [`KEPT_FOR`].
//! - A body dropped before its end closes its connection, as the pool does.
//! - A kept connection made before the exec plugin's client certificate changed is closed rather
//!   than taken (see [`CertEpoch`]).
//! - When the connection fails outside the reading of the body (writing, say), the body's error is
//!   the connection's own (an I/O error, a TLS alert) where hyper gives the body only a bare
//!   "connection error", so that it is classified as what it is.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError, Weak},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Response, Uri, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::{
    body::Incoming,
    client::conn::http1::{self, Connection, SendRequest},
};
use hyper_util::client::legacy::connect::Connection as _;
use tokio::time::Instant;

use crate::{
    client::{
        Prepared,
        response::{ConnectFailure, body_error},
        transport::{self, CertEpoch, Connector, Io},
    },
    error::{BoxError, Error},
};

/// How many connections are kept for later stream requests.
const KEPT_MAX: usize = 8;
/// How long a kept connection may wait for a request (the pool's idle timeout).
const KEPT_FOR: Duration = Duration::from_secs(90);
/// The most a connection reads at once (hyper's default is 400 KiB). A watch's lines are slices of
/// what was read, and a line still queued (a spawned watcher's channel) keeps its whole read
/// alive: with 400 KiB reads, a consumer a hundred events behind held about 1 MiB more (the
/// throughput benchmark's peak RSS). Response heads are far smaller than this.
const READ_MAX: usize = 64 * 1024;

type Conn = Connection<Io, Full<Bytes>>;

/// The connections of a client's HTTP/1.1 stream requests.
pub(crate) struct Http1Streams {
    /// `scheme://host:port/`: where connections go.
    origin: Uri,
    connector: Connector,
    kept: Arc<Kept>,
    /// Which client certificate new connections present.
    epoch: CertEpoch,
}

/// Connections whose last body was read to its end, newest last.
#[derive(Default)]
struct Kept(Mutex<Vec<Idle>>);

struct Idle {
    sender: SendRequest<Full<Bytes>>,
    conn: Conn,
    since: Instant,
    /// The client certificate generation it was made in.
    epoch: u64,
}

impl Kept {
    /// The newest connection kept for less than [`KEPT_FOR`] and made with the client certificate
    /// of generation `epoch`; others are closed.
    fn take(&self, epoch: u64) -> Option<Idle> {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        kept.retain(|idle| now.saturating_duration_since(idle.since) < KEPT_FOR && idle.epoch == epoch);
        kept.pop()
    }

    fn keep(&self, Link { sender, conn, epoch }: Link) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() >= KEPT_MAX {
            kept.remove(0);
        }
        kept.push(Idle {
            sender,
            conn,
            since: Instant::now(),
            epoch,
        });
    }
}

impl Http1Streams {
    pub(crate) fn new(origin: Uri, connector: Connector, epoch: CertEpoch) -> Self {
        Http1Streams {
            origin,
            connector,
            kept: Arc::default(),
            epoch,
        }
    }

    /// Sends a stream request; the response's body drives its connection.
    pub(crate) async fn send(
        &self,
        prepared: &Prepared,
        credential: Option<&HeaderValue>,
    ) -> Result<Response<DrivenBody>, Error> {
        let url = prepared.url();
        while let Some(idle) = self.kept.take(self.epoch.current()) {
            match exchange(idle.sender, idle.conn, request(prepared, credential)).await {
                Ok(response) => return Ok(self.driven(response, idle.epoch)),
                // Closed while it was kept: sent again on the next kept connection or a new one.
                // So is a request that failed as it went out, when sending it twice does no harm
                // (a watch is a GET).
                Err(Exchange::Unsent(error)) => {
                    tracing::debug!(%url, %error, "kept connection closed; sending on another");
                }
                Err(Exchange::Failed(error)) if prepared.method.is_idempotent() => {
                    tracing::debug!(%url, %error, "kept connection failed; sending on another");
                }
                Err(Exchange::Failed(error)) => return Err(body_error(url, error)),
            }
        }
        // Read before connecting: the handshake presents this generation's certificate or a
        // later one, never an earlier one.
        let epoch = self.epoch.current();
        let (sender, conn) = self.connect().await.map_err(|f| f.to_error(url))?;
        match exchange(sender, conn, request(prepared, credential)).await {
            Ok(response) => Ok(self.driven(response, epoch)),
            Err(Exchange::Unsent(error) | Exchange::Failed(error)) => Err(body_error(url, error)),
        }
    }

    fn driven(&self, (response, sender, conn): Answered, epoch: u64) -> Response<DrivenBody> {
        let kept = Arc::downgrade(&self.kept);
        response.map(|body| DrivenBody {
            body,
            link: Some(Link { sender, conn, epoch }),
            ended: None,
            kept,
        })
    }

    async fn connect(&self) -> Result<(SendRequest<Full<Bytes>>, Conn), ConnectFailure> {
        let io = transport::connect(&self.connector, &self.origin).await?;
        if io.connected().is_negotiated_h2() {
            // The server chose HTTP/1.1 before; were it to choose HTTP/2 now, HTTP/1.1 on this
            // connection would only be misread.
            let changed =
                std::io::Error::other("the server chose HTTP/2 on a connection for an HTTP/1.1 stream");
            return Err(ConnectFailure::new(Box::new(changed)));
        }
        http1::Builder::new()
            .max_buf_size(READ_MAX)
            .handshake(io)
            .await
            .map_err(|e| ConnectFailure::new(Box::new(e)))
    }
}

/// The request in origin form (`/path?query`) with a `Host` header, as HTTP/1.1 sends it.
fn request(prepared: &Prepared, credential: Option<&HeaderValue>) -> http::Request<Full<Bytes>> {
    let mut request = prepared.request(credential, Full::new(prepared.body().clone()));
    let uri = request.uri().clone();
    if let Some(authority) = uri.authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        request.headers_mut().insert(header::HOST, host);
    }
    if let Some(path) = uri.path_and_query() {
        *request.uri_mut() = Uri::from(path.clone());
    }
    request
}

type Answered = (Response<Incoming>, SendRequest<Full<Bytes>>, Conn);

/// How an exchange on one connection failed.
enum Exchange {
    /// The connection was closed before it took the request.
    Unsent(BoxError),
    /// The request was sent, or the connection failed while it was being sent.
    Failed(BoxError),
}

/// Sends `request` on the connection and polls the connection until the response headers come.
///
/// A connection that has ended takes no request and gives no answer: hyper's sender may still say
/// it is ready, and a request it queued then waits for as long as the connection is kept alive,
/// so that a request on a kept connection the server had closed waited for the request deadline.
/// Once the connection has ended, the request fails at once instead: unsent if the connection
/// never took it (it may go on another connection), failed otherwise.
async fn exchange(
    mut sender: SendRequest<Full<Bytes>>,
    mut conn: Conn,
    request: http::Request<Full<Bytes>>,
) -> Result<Answered, Exchange> {
    let mut ended: Option<hyper::Result<()>> = None;
    // Ready first: a kept connection the server closed says so here, before anything is sent.
    let ready = std::future::poll_fn(|cx| {
        poll_connection(&mut conn, &mut ended, cx);
        if ended.is_some() {
            return Poll::Ready(Err(None));
        }
        sender.poll_ready(cx).map_err(Some)
    })
    .await;
    if let Err(e) = ready {
        return Err(Exchange::Unsent(ended_error(ended, e)));
    }
    let mut answer = std::pin::pin!(sender.try_send_request(request));
    let answered = std::future::poll_fn(|cx| {
        poll_connection(&mut conn, &mut ended, cx);
        match answer.as_mut().poll(cx) {
            Poll::Ready(answered) => Poll::Ready(Some(answered)),
            // The connection is over: no answer is coming.
            Poll::Pending if ended.is_some() => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    let mut failure = match answered {
        Some(Ok(response)) => return Ok((response, sender, conn)),
        Some(Err(e)) => e,
        None => {
            // Dropping the connection hands the request back if it was never taken (or fails it
            // if it was), which the answer then says.
            drop(conn);
            match tokio::time::timeout(DROPPED_ANSWER, answer).await {
                Ok(Err(e)) => e,
                // An answer from a connection that is gone cannot be read; no word at all is not
                // expected (hyper answers at once).
                Ok(Ok(_)) | Err(_) => return Err(Exchange::Failed(ended_error(ended, None))),
            }
        }
    };
    let unsent = failure.take_message().is_some();
    let error = connection_error(ended, failure.into_error());
    Err(if unsent {
        Exchange::Unsent(error)
    } else {
        Exchange::Failed(error)
    })
}

/// How long the answer of a request whose connection was dropped may take to say so (hyper says
/// it at once; this only bounds the wait should it not).
const DROPPED_ANSWER: Duration = Duration::from_secs(1);

/// The server closed the connection while it was kept or before it answered.
#[derive(Debug, thiserror::Error)]
#[error("the server closed the connection")]
pub(crate) struct ClosedByServer;

/// Why a request got no answer on a connection that ended (or refused it): the connection's own
/// error if it failed, else `error` (the sender's), else that the server closed it.
fn ended_error(ended: Option<hyper::Result<()>>, error: Option<hyper::Error>) -> BoxError {
    match (ended, error) {
        (Some(Err(e)), _) => Box::new(e),
        (_, Some(e)) => Box::new(e),
        _ => Box::new(ClosedByServer),
    }
}

/// Polls the connection until it has ended, keeping how it ended.
fn poll_connection(conn: &mut Conn, ended: &mut Option<hyper::Result<()>>, cx: &mut Context<'_>) {
    if ended.is_none()
        && let Poll::Ready(result) = Pin::new(conn).poll(cx)
    {
        *ended = Some(result);
    }
}

/// The connection's own error when it failed (it says why), else the request's or the body's.
fn connection_error(ended: Option<hyper::Result<()>>, error: hyper::Error) -> BoxError {
    match ended {
        Some(Err(e)) => Box::new(e),
        _ => Box::new(error),
    }
}

/// A response body that drives its own HTTP/1.1 connection as it is read.
pub(crate) struct DrivenBody {
    body: Incoming,
    /// `None` once the connection has gone back to be kept.
    link: Option<Link>,
    /// How the connection ended, if it has: a failure is then the body's error.
    ended: Option<hyper::Result<()>>,
    kept: Weak<Kept>,
}

struct Link {
    sender: SendRequest<Full<Bytes>>,
    conn: Conn,
    /// The client certificate generation the connection was made in.
    epoch: u64,
}

impl std::fmt::Debug for DrivenBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrivenBody")
            .field("connected", &(self.link.is_some() && self.ended.is_none()))
            .finish_non_exhaustive()
    }
}

impl Body for DrivenBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        // The connection first: it reads what the socket has and hands it to the body.
        if let Some(link) = &mut this.link {
            poll_connection(&mut link.conn, &mut this.ended, cx);
        }
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(connection_error(this.ended.take(), e)))),
            // The connection is over and the body did not end: nothing more will come.
            Poll::Pending if this.ended.is_some() && this.link.is_some() => {
                this.link = None;
                Poll::Ready(Some(Err(ended_error(this.ended.take(), None))))
            }
            Poll::Ready(None) => {
                // Read to its end, the connection still open: it can carry the next stream.
                let link = this.link.take().filter(|_| this.ended.is_none());
                if let (Some(link), Some(kept)) = (link, this.kept.upgrade()) {
                    kept.keep(link);
                }
                Poll::Ready(None)
            }
            other => other.map_err(|e| Box::new(e) as BoxError),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
