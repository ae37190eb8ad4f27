//! What a handler answers (before faults shape the bytes), the per-request facts handlers need, and
//! the turning of a reply into an HTTP response.

use crate::body::{ResponseBody, spawn_full};
use crate::error::StoreError;
use crate::instruments::journal::LiveEntry;
use crate::query::Query;
use crate::status::Status;
use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// What a handler answers, before faults shape the bytes.
pub(super) enum Reply {
    Json(StatusCode, Value, &'static str),
    Error(Status),
    /// Status, content type, body, `Retry-After`, extra headers.
    Raw(StatusCode, String, Bytes, Option<u64>, Vec<(String, String)>),
    Stream(ResponseBody, &'static str),
}

impl From<StoreError> for Reply {
    fn from(e: StoreError) -> Self {
        Reply::Error(e.status().clone())
    }
}

impl From<Status> for Reply {
    fn from(s: Status) -> Self {
        Reply::Error(s)
    }
}

impl From<Box<Status>> for Reply {
    fn from(s: Box<Status>) -> Self {
        Reply::Error(*s)
    }
}

pub(super) const JSON: &str = "application/json";

pub(super) const TABLE_JSON: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// Per-request facts handlers need.
pub(super) struct Ctx {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) query: Query,
    pub(super) accept: String,
    pub(super) content_type: Option<String>,
    /// `User-Agent`: names the field manager of writes without `fieldManager`.
    pub(super) user_agent: Option<String>,
    pub(super) split: Vec<u64>,
    pub(super) delay: Option<Duration>,
    pub(super) live: Arc<LiveEntry>,
    /// `dryRun=All`: writes are validated and answered but not stored.
    pub(super) dry_run: bool,
}

pub(super) fn json_response(code: StatusCode, value: &Value, content_type: &str) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(ResponseBody::full(bytes));
    *response.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response
}

pub(super) fn stream_response(body: ResponseBody, content_type: &str) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    response
}

/// Turns a reply into a response; `split`/`delay` faults stream the body in pieces; `gzip_above`
/// gzips a body longer than that many bytes (the client accepts gzip).
pub(super) fn into_response(
    reply: Reply,
    split: &[u64],
    delay: Option<Duration>,
    gzip_above: Option<usize>,
) -> Response<ResponseBody> {
    let (code, content_type, bytes, retry_after, extra) = match reply {
        Reply::Json(code, value, content_type) => (
            code,
            content_type.to_string(),
            Bytes::from(serde_json::to_vec(&value).unwrap_or_default()),
            None,
            Vec::new(),
        ),
        Reply::Error(status) => (
            StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            JSON.to_string(),
            Bytes::from(serde_json::to_vec(&status).unwrap_or_default()),
            status.retry_after_seconds(),
            Vec::new(),
        ),
        Reply::Raw(code, content_type, bytes, retry_after, extra) => {
            (code, content_type, bytes, retry_after, extra)
        }
        Reply::Stream(body, content_type) => return stream_response(body, content_type),
    };
    let gzipped = gzip_above.and_then(|threshold| super::compression::gzip_above(&bytes, threshold));
    let compressed = gzipped.is_some();
    let bytes = gzipped.unwrap_or(bytes);
    let body = if split.is_empty() && delay.is_none() {
        ResponseBody::full(bytes)
    } else {
        spawn_full(bytes, split.to_vec(), delay)
    };
    let mut response = Response::new(body);
    *response.status_mut() = code;
    // An empty content type (a 406 without a body) sends no header.
    if !content_type.is_empty()
        && let Ok(v) = HeaderValue::from_str(&content_type)
    {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    for (name, value) in extra {
        // A header that is not valid HTTP is left out rather than failing the answer.
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    if compressed {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    response
}
