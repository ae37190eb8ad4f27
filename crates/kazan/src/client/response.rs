//! Turning what came back into a result: status checks, `metav1.Status` decoding, `Retry-After`,
//! bounded body reads, gzip, and sorting transport failures into [`Error`] variants.

use std::{io::Read as _, sync::Arc, time::Duration};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Response, header};
use http_body_util::BodyExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use serde::Deserialize;

use crate::{
    client::{
        body::{ResponseBody, http2_error},
        transport::ConnectTimedOut,
    },
    error::{ApiError, BoxError, Error, chain, find_in_chain},
};

/// How much of an error body is read: a `Status` is small, an HTML error page need not be whole.
pub(crate) const MAX_ERROR_BODY: usize = 64 * 1024;
/// How much of a non-`Status` error body is kept in [`ApiError::body`].
pub(crate) const MAX_KEPT_ERROR_BODY: usize = 4 * 1024;
/// The largest body a gzip response may expand to; a larger one is refused rather than
/// exhausting memory.
pub(crate) const MAX_DECODED_BODY: usize = 1 << 30;

/// Passes a 2xx response through; reads any other one (bounded) into an [`Error::Api`].
pub(crate) async fn check_status(
    method: &Method,
    url: &str,
    response: Response<ResponseBody>,
) -> Result<Response<ResponseBody>, Error> {
    if response.status().is_success() {
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = read_error_body(body, &parts.headers).await;
    Err(Error::Api(Box::new(api_error(
        method,
        url,
        parts.status.as_u16(),
        &parts.headers,
        &bytes,
    ))))
}

/// Reads at most [`MAX_ERROR_BODY`] bytes of an error body, gunzipped when it was compressed.
/// A failure part way keeps what was read: the status code is what matters.
pub(crate) async fn read_error_body(mut body: ResponseBody, headers: &HeaderMap) -> Bytes {
    let mut buf = BytesMut::new();
    while buf.len() < MAX_ERROR_BODY {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(_)) | None => break,
        }
    }
    decode_error_body(buf.freeze(), headers)
}

/// The first [`MAX_ERROR_BODY`] bytes of what was read, gunzipped (to at most as many bytes)
/// when it was compressed.
pub(crate) fn decode_error_body(mut bytes: Bytes, headers: &HeaderMap) -> Bytes {
    bytes.truncate(MAX_ERROR_BODY);
    if is_gzip(headers) {
        let (decoded, _complete) = gunzip(&bytes, MAX_ERROR_BODY);
        decoded
    } else {
        bytes
    }
}

/// Reads a whole successful body, gunzipped when it was compressed.
pub(crate) async fn read_body(url: &str, response: Response<ResponseBody>) -> Result<Bytes, Error> {
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.map_err(|e| body_error(url, e))?.to_bytes();
    if !is_gzip(&parts.headers) {
        return Ok(bytes);
    }
    match gunzip(&bytes, MAX_DECODED_BODY) {
        (decoded, true) => Ok(decoded),
        (_, false) => Err(Error::Http {
            url: url.to_string(),
            source: format!(
                "the gzip response body is corrupt, or larger than {} MiB decoded",
                MAX_DECODED_BODY >> 20
            )
            .into(),
        }),
    }
}

fn is_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"))
}

/// Gunzips at most `limit` bytes; `true` when the stream was whole, valid and within the limit.
fn gunzip(bytes: &[u8], limit: usize) -> (Bytes, bool) {
    let mut out = Vec::new();
    let decoder = flate2::read::GzDecoder::new(bytes);
    // One byte past the limit tells "exactly at the limit" from "over it".
    let read = decoder.take(limit as u64 + 1).read_to_end(&mut out);
    let complete = read.is_ok() && out.len() <= limit;
    out.truncate(limit);
    (out.into(), complete)
}

/// Builds the error for a non-2xx answer: the `Status` when the body is one, else the raw body.
pub(crate) fn api_error(method: &Method, url: &str, code: u16, headers: &HeaderMap, body: &[u8]) -> ApiError {
    let status = decode_status(body);
    let body = match status {
        Some(_) => None,
        None => Some(kept_body(body)),
    };
    let retry_after = retry_after_header(headers).or_else(|| {
        status
            .as_ref()
            .and_then(|s| s.details.as_ref())
            .and_then(|d| d.retry_after_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
    });
    ApiError {
        method: method.to_string(),
        url: url.to_string(),
        code,
        status,
        body,
        retry_after,
    }
}

/// A `metav1.Status`, if the body is one (`kind: "Status"`).
fn decode_status(body: &[u8]) -> Option<Status> {
    #[derive(Deserialize)]
    struct Kind<'a> {
        #[serde(borrow)]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    let kind: Kind<'_> = serde_json::from_slice(body).ok()?;
    if kind.kind.as_deref() != Some("Status") {
        return None;
    }
    serde_json::from_slice(body).ok()
}

/// The first [`MAX_KEPT_ERROR_BODY`] bytes as lossy UTF-8, marked when cut.
fn kept_body(body: &[u8]) -> String {
    let cut = body.len() > MAX_KEPT_ERROR_BODY;
    let kept = body.get(..MAX_KEPT_ERROR_BODY).unwrap_or(body);
    let mut text = String::from_utf8_lossy(kept).into_owned();
    if cut {
        // The cut may split a multi-byte character into U+FFFD; harmless.
        text.push_str("…[truncated]");
    }
    text
}

/// `Retry-After` in integer seconds (the form the API server sends).
fn retry_after_header(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Sorts a failure of the pooled client into connect, TLS, deadline or HTTP errors.
pub(crate) fn send_error(url: &str, err: hyper_util::client::legacy::Error) -> Error {
    let url = url.to_string();
    if let Some(ConnectTimedOut(after)) = find_in_chain::<ConnectTimedOut>(&err) {
        return Error::Timeout {
            url,
            what: "connect",
            after: *after,
        };
    }
    let is_connect = err.is_connect();
    let source: BoxError = Box::new(err);
    if is_tls_failure(source.as_ref()) {
        Error::Tls { url, source }
    } else if is_connect {
        Error::Connect { url, source }
    } else {
        Error::Http { url, source }
    }
}

/// A failed attempt to open an HTTP/2 connection, sorted once and kept so that every request
/// that waited for the attempt gets the same answer (as Go's transport shares one dial).
#[derive(Clone, Debug)]
pub(crate) enum ConnectFailure {
    /// The connect deadline passed.
    TimedOut(Duration),
    /// The TLS handshake failed.
    Tls(SharedError),
    /// TCP, the proxy tunnel or the HTTP/2 handshake failed.
    Connect(SharedError),
}

/// An error shared by several requests. It shows as the error itself, which is also its source,
/// so that a search of the source chain (for a [`rustls::Error`], say) still finds what is inside.
#[derive(Clone, Debug)]
pub(crate) struct SharedError(Arc<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl ConnectFailure {
    /// Sorts what the connector (TCP, tunnel, TLS, deadline) or the HTTP/2 handshake returned.
    pub(crate) fn new(err: BoxError) -> Self {
        if let Some(ConnectTimedOut(after)) = find_in_chain::<ConnectTimedOut>(err.as_ref()) {
            return ConnectFailure::TimedOut(*after);
        }
        let shared = SharedError(Arc::from(err));
        if is_tls_failure(&shared) {
            ConnectFailure::Tls(shared)
        } else {
            ConnectFailure::Connect(shared)
        }
    }

    /// The error of a request to `url` that needed this connection.
    pub(crate) fn to_error(&self, url: &str) -> Error {
        let url = url.to_string();
        match self {
            ConnectFailure::TimedOut(after) => Error::Timeout {
                url,
                what: "connect",
                after: *after,
            },
            ConnectFailure::Tls(source) => Error::Tls {
                url,
                source: Box::new(source.clone()),
            },
            ConnectFailure::Connect(source) => Error::Connect {
                url,
                source: Box::new(source.clone()),
            },
        }
    }
}

/// Sorts a failure of a request sent on an HTTP/2 lane: TLS (an alert after the handshake, e.g.
/// a refused client certificate) or HTTP (reset stream, connection lost).
pub(crate) fn lane_send_error(url: &str, err: h2::Error) -> Error {
    body_error(url, http2_error(err))
}

/// Sorts a failure while reading a body: TLS (e.g. an alert after the handshake) or HTTP.
pub(crate) fn body_error(url: &str, source: BoxError) -> Error {
    let url = url.to_string();
    if is_tls_failure(source.as_ref()) {
        Error::Tls { url, source }
    } else {
        Error::Http { url, source }
    }
}

/// Whether a [`rustls::Error`] caused this failure. Over HTTP/2 the `h2` crate keeps only the
/// kind and text of an I/O error, so a TLS alert received after the handshake (a TLS 1.3 server
/// refusing the client certificate) is recognised by rustls's wording as well.
fn is_tls_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    const RUSTLS_WORDING: &[&str] = &[
        "received fatal alert: ",
        "invalid peer certificate: ",
        "peer sent no certificates",
        "peer is incompatible: ",
        "peer misbehaved: ",
    ];
    find_in_chain::<rustls::Error>(err).is_some()
        || chain(err).any(|e| {
            e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData)
                && RUSTLS_WORDING.iter().any(|w| e.to_string().starts_with(w))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    http::HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn status_bodies_are_decoded_with_retry_after_from_details() {
        let body = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"storage is (re)initializing","reason":"TooManyRequests","details":{"retryAfterSeconds":2},"code":429}"#;
        let e = api_error(&Method::GET, "u", 429, &HeaderMap::new(), body);
        assert_eq!(e.reason(), Some("TooManyRequests"));
        assert_eq!(e.retry_after, Some(Duration::from_secs(2)));
        assert_eq!(e.body, None);
    }

    #[test]
    fn the_retry_after_header_wins_and_bad_values_are_ignored() {
        let e = api_error(&Method::GET, "u", 503, &headers(&[("retry-after", " 7 ")]), b"");
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        let e = api_error(
            &Method::GET,
            "u",
            503,
            &headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
            b"",
        );
        assert_eq!(e.retry_after, None);
    }

    #[test]
    fn json_that_is_not_a_status_is_kept_raw() {
        let e = api_error(&Method::GET, "u", 500, &HeaderMap::new(), br#"{"kind":"Pod"}"#);
        assert_eq!(e.status, None);
        assert_eq!(e.body.as_deref(), Some(r#"{"kind":"Pod"}"#));
    }

    #[test]
    fn long_and_invalid_utf8_bodies_are_cut_lossily() {
        let mut body = vec![0xff, b'a'];
        body.extend(std::iter::repeat_n(b'x', 10_000));
        let e = api_error(&Method::GET, "u", 502, &HeaderMap::new(), &body);
        let kept = e.body.unwrap_or_default();
        assert!(kept.starts_with("\u{fffd}axxx"));
        assert!(kept.ends_with("…[truncated]"));
        assert!(kept.len() < MAX_KEPT_ERROR_BODY + 32);
    }

    #[test]
    fn a_shared_connect_failure_keeps_its_kind_and_its_causes() {
        let refused = ConnectFailure::new(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        let untrusted = ConnectFailure::new(Box::new(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        )));
        let late = ConnectFailure::new(Box::new(ConnectTimedOut(Duration::from_secs(3))));

        // Every request that waited for the attempt gets its own error naming its own URL.
        for url in ["https://h/api/v1/pods", "https://h/api/v1/configmaps"] {
            let err = refused.to_error(url);
            assert!(
                matches!(&err, Error::Connect { url: u, .. } if u == url),
                "{err:?}"
            );
            let err = untrusted.to_error(url);
            assert!(matches!(&err, Error::Tls { .. }), "{err:?}");
            assert!(find_in_chain::<rustls::Error>(&err).is_some());
            assert_eq!(
                err.to_string(),
                format!("TLS with {url} failed: invalid peer certificate: UnknownIssuer")
            );
            let err = late.to_error(url);
            assert!(
                matches!(err, Error::Timeout { what: "connect", after, .. } if after == Duration::from_secs(3)),
                "{err:?}"
            );
        }
    }

    #[test]
    fn gunzip_stops_at_the_limit() -> std::io::Result<()> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&vec![b'a'; 10_000])?;
        let gz = enc.finish()?;
        let (whole, complete) = gunzip(&gz, 10_000);
        assert!(complete);
        assert_eq!(whole.len(), 10_000);
        let (cut, complete) = gunzip(&gz, 100);
        assert!(!complete);
        assert_eq!(cut.len(), 100);
        let (_, complete) = gunzip(b"not gzip", 100);
        assert!(!complete);
        Ok(())
    }
}
