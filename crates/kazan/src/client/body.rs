//! Response bodies: [`ResponseBody`], which holds its HTTP/2 stream slot until the body ends, and
//! [`BodyStream`], the body of a checked 2xx response read chunk by chunk as it arrives.

use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::{
    client::{http1::DrivenBody, response::body_error, slots::Slot},
    error::{BoxError, Error},
};

/// A body as the transport receives it: from hyper's pooled HTTP/1.1 client, from an HTTP/1.1
/// connection the body drives itself (a stream request, see [`super::http1`]), or an HTTP/2
/// stream of a lane, whose flow-control window is given back as each chunk is read.
#[derive(Debug)]
pub(crate) enum Received {
    Http1(Incoming),
    Http1Driven(Box<DrivenBody>),
    Http2(h2::RecvStream),
}

impl Body for Received {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Received::Http1(body) => Pin::new(body).poll_frame(cx).map_err(|e| Box::new(e) as BoxError),
            Received::Http1Driven(body) => Pin::new(body.as_mut()).poll_frame(cx),
            Received::Http2(stream) => match stream.poll_data(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(Ok(data))) => {
                    // Read, so the server may send as much again (what hyper did too).
                    let _ = stream.flow_control().release_capacity(data.len());
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(http2_error(e)))),
                Poll::Ready(None) => match stream.poll_trailers(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Ok(Some(trailers))) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
                    Poll::Ready(Ok(None)) => Poll::Ready(None),
                    Poll::Ready(Err(e)) => Poll::Ready(Some(Err(http2_error(e)))),
                },
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Received::Http1(body) => body.is_end_stream(),
            Received::Http1Driven(body) => body.is_end_stream(),
            Received::Http2(stream) => stream.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Received::Http1(body) => body.size_hint(),
            Received::Http1Driven(body) => body.size_hint(),
            Received::Http2(_) => SizeHint::default(),
        }
    }
}

/// An HTTP/2 failure as an error whose chain can be searched: an I/O error (e.g. a TLS alert
/// read from the socket) is passed on as itself, as hyper did, so that it is recognised.
pub(crate) fn http2_error(e: h2::Error) -> BoxError {
    if e.is_io() {
        if let Some(io) = e.into_io() {
            return Box::new(io);
        }
        return Box::new(std::io::Error::other("HTTP/2 connection I/O error"));
    }
    Box::new(e)
}

/// A response body that holds the stream slot of its lane (see [`super::lanes`]) until it has
/// been read to the end, has failed, or is dropped: until then the stream is open on the
/// connection and counts against the server's limit. Bodies of the pooled HTTP/1.1 client hold
/// no slot.
#[derive(Debug)]
pub(crate) struct ResponseBody<B = Received> {
    body: B,
    slot: Option<Slot>,
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(body: B, slot: Option<Slot>) -> Self {
        ResponseBody { body, slot }
    }
}

impl<B: Body + Unpin> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            // The stream is over (ended, or reset): its slot is free for another request.
            this.slot = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The body of a successful response, as a stream of [`Bytes`] chunks in arrival order.
///
/// Returned by [`Client::stream`](crate::Client::stream) (the watcher reads watch events from it)
/// and inside the response of [`Client::send_raw`](crate::Client::send_raw). Chunk boundaries
/// are wherever the network put them, not at event boundaries. No deadline applies to the body:
/// a watch may stay quiet for minutes. Dropping it closes the stream (over HTTP/2 only that
/// stream; the connection stays, and the stream's slot is free for another request).
pub struct BodyStream {
    body: ResponseBody,
    url: String,
    version: Version,
    headers: HeaderMap,
}

impl BodyStream {
    pub(crate) fn new(response: http::Response<ResponseBody>, url: String) -> Self {
        let (parts, body) = response.into_parts();
        BodyStream {
            body,
            url,
            version: parts.version,
            headers: parts.headers,
        }
    }

    /// Drops the response headers. A watch keeps its body for minutes and the watcher reads no
    /// header, while a header map costs about 600 bytes: 0.6 MB for a thousand watches.
    pub(crate) fn drop_headers(&mut self) {
        self.headers = HeaderMap::new();
    }

    /// The next chunk; `None` at the end of the body.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Reads the rest of the body into one buffer, refusing to grow past `limit` bytes.
    pub async fn read_all(mut self, limit: usize) -> Result<Bytes, Error> {
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = self.chunk().await {
            let chunk = chunk?;
            if buf.len() + chunk.len() > limit {
                return Err(Error::Http {
                    url: self.url,
                    source: format!("the response body is larger than {limit} bytes").into(),
                });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// The URL of the request.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The HTTP version of the response (`HTTP/2.0` when ALPN chose HTTP/2).
    pub fn version(&self) -> Version {
        self.version
    }

    /// The response headers (e.g. `Content-Type`, to tell a JSON watch from a protobuf one).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

impl Stream for BodyStream {
    type Item = Result<Bytes, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Some(Err(body_error(&this.url, e))));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers carry nothing a watch needs; empty data frames are skipped.
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, None)
    }
}

impl fmt::Debug for BodyStream {
    // The URL and version only: headers may be long, and the body is not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyStream")
            .field("url", &self.url)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http_body_util::{BodyExt, StreamBody};
    use tokio::sync::Notify;

    use super::*;
    use crate::client::slots::Slots;

    type Frames = futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, &'static str>>>;

    fn body(frames: Vec<Result<Frame<Bytes>, &'static str>>) -> StreamBody<Frames> {
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_body_read_to_the_end_frees_its_slot_before_it_is_dropped() {
        let slots = Slots::new(Arc::new(Notify::new()));
        let mut response = ResponseBody::new(
            body(vec![Ok(Frame::data(Bytes::from_static(b"{}")))]),
            Some(slots.take()),
        );
        assert_eq!(slots.open(), 1);
        let first = response.frame().await;
        assert!(matches!(first, Some(Ok(_))));
        assert_eq!(slots.open(), 1, "more may come");
        assert!(response.frame().await.is_none());
        assert_eq!(slots.open(), 0);
        drop(response);
        assert_eq!(slots.open(), 0, "released once");
    }

    #[tokio::test]
    async fn a_failed_or_dropped_body_frees_its_slot() {
        let slots = Slots::new(Arc::new(Notify::new()));
        let mut failed = ResponseBody::new(body(vec![Err("reset")]), Some(slots.take()));
        let dropped = ResponseBody::new(body(vec![]), Some(slots.take()));
        assert_eq!(slots.open(), 2);

        assert!(matches!(failed.frame().await, Some(Err("reset"))));
        assert_eq!(slots.open(), 1);
        drop(dropped);
        assert_eq!(slots.open(), 0);
    }
}
