//! What can go wrong while watching, and which of it ends the watcher.
//!
//! The watcher retries what may pass (connection errors, 5xx, 429, a stall, a server ERROR event
//! other than 410) and ends on what will not (400, 403, 404, a 401 that survived a credential
//! refresh, a request that cannot be built). 410 is neither: it is Gone, the consumer's cue to relist.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;

use crate::Error;

/// An error seen by a watcher: delivered in a final `Failed` event when terminal, in a `Skipped`
/// event when an event had to be skipped, and logged when the watcher retries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// A watch request with no starting resourceVersion: Kazan needs one (or a list request).
    #[error(
        "a watch request needs a starting resourceVersion: pass `resource_version` in the options, or start from a list request"
    )]
    NoResourceVersion,
    /// The initial list failed.
    #[error("listing {what} failed: {source}")]
    List {
        /// The resource listed, as a path.
        what: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// Opening the watch failed.
    #[error("opening the watch of {what} failed: {source}")]
    Open {
        /// The resource watched, as a path.
        what: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// Reading the watch stream failed (connection reset, truncated chunk...).
    #[error("reading the watch of {what} failed: {source}")]
    Stream {
        /// The resource watched, as a path.
        what: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// No bytes arrived (not even a bookmark) for longer than the idle deadline.
    #[error("the watch of {what} received nothing for {idle:?}; assuming the connection is dead")]
    Idle {
        /// The resource watched, as a path.
        what: String,
        /// The idle deadline.
        idle: Duration,
    },
    /// The server sent an ERROR event other than 410.
    #[error("the server sent an ERROR event{}", describe_status(.0))]
    ServerError(Box<Status>),
    /// An event line was longer than the limit; it was dropped.
    #[error("an event line of {len} bytes or more exceeds the limit of {max} bytes; it was dropped")]
    LineTooLong {
        /// Bytes seen before giving up on the line.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A line was not a watch event (not JSON, or no type/object). Its content is not shown: it
    /// may hold a Secret's data.
    #[error("a {len}-byte line is not a watch event: {source}")]
    MalformedLine {
        /// The line's length.
        len: usize,
        /// The JSON error (position and what was expected).
        #[source]
        source: serde_json::Error,
    },
    /// An event of a type the watcher does not know; it was skipped.
    #[error("unknown watch event type {0:?}; skipped")]
    UnknownEventType(String),
    /// An ADDED, MODIFIED or DELETED event whose object has no `metadata.name` (no metadata at
    /// all, say): no consumer could tell which object changed, so the event was skipped (past its
    /// resourceVersion, when it had one).
    #[error(
        "the {event_type} event at resourceVersion {resource_version} carries an object without metadata.name; skipped"
    )]
    MissingName {
        /// The event type (`ADDED`...).
        event_type: &'static str,
        /// The object's resourceVersion, or `?`.
        resource_version: String,
    },
    /// An object that does not decode as the watched type; the event was skipped.
    #[error(
        "the {event_type} event for {object} (resourceVersion {resource_version}) does not decode: {source}"
    )]
    Decode {
        /// The event type (`ADDED`...).
        event_type: String,
        /// `namespace/name` of the object, as far as it could be read.
        object: String,
        /// The event's resourceVersion, or `?`.
        resource_version: String,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
}

fn describe_status(status: &Status) -> String {
    let mut out = String::new();
    if let Some(code) = status.code {
        out.push_str(&format!(" {code}"));
    }
    if let Some(reason) = &status.reason {
        out.push_str(&format!(" {reason}"));
    }
    if let Some(message) = &status.message {
        out.push_str(&format!(": {message}"));
    }
    out
}

/// What the watcher does about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Wait (at least the given time, if the server said) and try again from the last version.
    Retry(Option<Duration>),
    /// 410: deliver Gone and end.
    Gone,
    /// End the watcher with a Failed event.
    Terminal,
}

/// Classifies a client error from a list or a watch request.
pub(crate) fn classify(error: &Error) -> Disposition {
    match error {
        Error::Api(api) => match api.code {
            410 => Disposition::Gone,
            408 | 429 => Disposition::Retry(api.retry_after),
            code if code >= 500 => Disposition::Retry(api.retry_after),
            _ => Disposition::Terminal,
        },
        Error::Auth(e) if e.is_retryable() => Disposition::Retry(None),
        other if other.is_retryable() => Disposition::Retry(None),
        _ => Disposition::Terminal,
    }
}

/// Classifies an ERROR event's Status.
pub(crate) fn classify_status(status: &Status) -> Disposition {
    let retry_after = status
        .details
        .as_ref()
        .and_then(|d| d.retry_after_seconds)
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs);
    match status.code {
        Some(410) => Disposition::Gone,
        _ if matches!(status.reason.as_deref(), Some("Expired" | "Gone")) => Disposition::Gone,
        _ => Disposition::Retry(retry_after),
    }
}

impl WatchError {
    /// The server's answer, when the error is one.
    pub fn api_error(&self) -> Option<&crate::ApiError> {
        match self {
            WatchError::List { source, .. }
            | WatchError::Open { source, .. }
            | WatchError::Stream { source, .. } => source.api(),
            _ => None,
        }
    }
}
