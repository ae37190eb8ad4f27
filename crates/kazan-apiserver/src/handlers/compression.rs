//! gzip of large answers, as the real server's `deferredResponseWriter` does it
//! (apiserver `pkg/endpoints/handlers/responsewriters/writers.go`, feature `APIResponseCompression`,
//! on by default): an object, list, error or discovery answer larger than 128 KiB is gzipped when
//! the request's `Accept-Encoding` lists the token `gzip` (without parameters:
//! `responseContentEncodingSupported` compares whole tokens). Watches, watch-lists included, are
//! streamed uncompressed, as the real watch handler writes them. `/openapi/v2` is gzipped from
//! 1400 bytes, as kube-openapi's handler wraps it in `gziphandler`.

use std::io::Write;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::{HeaderMap, header};

/// `defaultGzipThresholdBytes`: answers up to this size are sent as they are.
pub(super) const GZIP_THRESHOLD_BYTES: usize = 128 * 1024;

/// gziphandler's `DefaultMinSize`, which kube-openapi's `/openapi/v2` handler uses.
pub(super) const OPENAPI_V2_GZIP_THRESHOLD_BYTES: usize = 1400;

/// Whether `Accept-Encoding` has the token `gzip`.
pub(super) fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim() == "gzip")
}

/// `bytes` gzipped when longer than `threshold`; None to send them as they are.
pub(super) fn gzip_above(bytes: &[u8], threshold: usize) -> Option<Bytes> {
    if bytes.len() <= threshold {
        return None;
    }
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::default());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok().map(Bytes::from)
}
