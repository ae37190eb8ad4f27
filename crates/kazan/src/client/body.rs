//! [`BodyStream`]: the body of a checked 2xx response, read chunk by chunk as it arrives.

use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, Version};
use http_body::Body as _;
use hyper::body::Incoming;

use crate::{client::response::body_error, error::Error};

/// The body of a successful response, as a stream of [`Bytes`] chunks in arrival order.
///
/// Returned by [`Client::stream`](crate::Client::stream) (the watcher reads watch events from it)
/// and inside the response of [`Client::send_raw`](crate::Client::send_raw). Chunk boundaries
/// are wherever the network put them, not at event boundaries. No deadline applies to the body:
/// a watch may stay quiet for minutes. Dropping it closes the stream (over HTTP/2 only that
/// stream; the connection stays).
pub struct BodyStream {
    body: Incoming,
    url: String,
    version: Version,
    headers: HeaderMap,
}

impl BodyStream {
    pub(crate) fn new(response: http::Response<Incoming>, url: String) -> Self {
        let (parts, body) = response.into_parts();
        BodyStream {
            body,
            url,
            version: parts.version,
            headers: parts.headers,
        }
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
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            return Poll::Ready(Some(Ok(data)));
                        }
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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyStream")
            .field("url", &self.url)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}
