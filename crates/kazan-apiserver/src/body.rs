//! Response bodies: a whole body at once, or a stream fed by a task through a bounded channel (watch
//! streams, and answers that a fault writes in pieces or slowly). A stream can end cleanly (the
//! terminating chunk) or be cut (the connection is dropped without it).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// The body error that makes hyper drop the connection without ending the body properly.
#[derive(Debug, thiserror::Error)]
#[error("response cut by fault injection")]
pub struct Cut;

/// What a streaming body is fed with.
pub(crate) type Chunk = Result<Bytes, Cut>;

/// The body of every answer.
pub enum ResponseBody {
    /// The whole body (taken on the first poll).
    Full(Option<Bytes>),
    /// Chunks written by a task; the body ends when the task drops its sender.
    Stream(mpsc::Receiver<Chunk>),
}

impl ResponseBody {
    /// A whole body.
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        ResponseBody::Full(Some(bytes.into()))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        match &mut *self {
            ResponseBody::Full(bytes) => {
                Poll::Ready(bytes.take().filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b))))
            }
            ResponseBody::Stream(rx) => rx.poll_recv(cx).map(|chunk| chunk.map(|c| c.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            ResponseBody::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            ResponseBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// Why a write to a streaming body stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteEnd {
    /// The client went away (the body was dropped).
    Closed,
    /// The writer fell too far behind (slow client); the stream is to be ended.
    Lagged,
}

/// The sending side of a streaming body, with the write faults: split points (absolute byte
/// offsets in the body, each followed by a flush and a short pause) and a delay before every write.
pub(crate) struct BodyWriter {
    tx: mpsc::Sender<Chunk>,
    written: u64,
    splits: Vec<u64>,
    delay: Option<Duration>,
}

/// The pause between the pieces of a split write, so the client reads them separately.
const SPLIT_PAUSE: Duration = Duration::from_millis(15);
/// How often a blocked writer checks whether it has fallen too far behind.
const LAG_CHECK: Duration = Duration::from_millis(100);

impl BodyWriter {
    /// A writer and the body it feeds. `capacity` is the number of chunks buffered.
    pub(crate) fn new(capacity: usize, splits: Vec<u64>, delay: Option<Duration>) -> (Self, ResponseBody) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let mut splits = splits;
        splits.sort_unstable();
        splits.dedup();
        splits.reverse();
        (
            BodyWriter {
                tx,
                written: 0,
                splits,
                delay,
            },
            ResponseBody::Stream(rx),
        )
    }

    /// Resolves when the client has gone away.
    pub(crate) async fn closed(&self) {
        self.tx.closed().await
    }

    /// Writes bytes (split and delayed as configured). `lagging` is polled while the client does
    /// not read; when it says true the write gives up with [`WriteEnd::Lagged`].
    pub(crate) async fn write(
        &mut self,
        bytes: Bytes,
        lagging: &(dyn Fn() -> bool + Sync),
    ) -> Result<(), WriteEnd> {
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let end = self.written + rest.len() as u64;
            while self.splits.last().is_some_and(|s| *s <= self.written) {
                self.splits.pop();
            }
            let piece = match self.splits.last() {
                Some(split) if *split < end => {
                    let at = (*split - self.written) as usize;
                    self.splits.pop();
                    rest.split_to(at)
                }
                _ => std::mem::take(&mut rest),
            };
            let split_here = !rest.is_empty();
            self.send(piece, lagging).await?;
            if split_here {
                tokio::time::sleep(SPLIT_PAUSE).await;
            }
        }
        Ok(())
    }

    async fn send(&mut self, piece: Bytes, lagging: &(dyn Fn() -> bool + Sync)) -> Result<(), WriteEnd> {
        let len = piece.len() as u64;
        match self.tx.try_reserve() {
            Ok(permit) => permit.send(Ok(piece)),
            Err(mpsc::error::TrySendError::Closed(())) => return Err(WriteEnd::Closed),
            Err(mpsc::error::TrySendError::Full(())) => loop {
                tokio::select! {
                    permit = self.tx.reserve() => {
                        permit.map_err(|_| WriteEnd::Closed)?.send(Ok(piece));
                        break;
                    }
                    _ = tokio::time::sleep(LAG_CHECK) => {
                        if lagging() {
                            return Err(WriteEnd::Lagged);
                        }
                    }
                }
            },
        }
        self.written += len;
        Ok(())
    }

    /// Writes `partial` (e.g. half an event), lets it reach the client, then drops the connection
    /// without the terminating chunk.
    pub(crate) async fn cut(self, partial: Bytes) {
        if !partial.is_empty() && self.tx.send(Ok(partial)).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = self.tx.send(Err(Cut)).await;
    }
}

/// Streams a whole answer through a writer (when a split or delay fault applies to it).
pub(crate) fn spawn_full(bytes: Bytes, splits: Vec<u64>, delay: Option<Duration>) -> ResponseBody {
    let (mut writer, body) = BodyWriter::new(4, splits, delay);
    tokio::spawn(async move {
        let _ = writer.write(bytes, &|| false).await;
    });
    body
}
