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
    /// The request asks for one way of listing (`send_initial_events`) and the options for the
    /// other ([`WatcherOptions::initial_list`](super::WatcherOptions::initial_list)).
    #[error(
        "the request says sendInitialEvents={requested} but the options ask for a {options:?} initial list; set one of them"
    )]
    InitialListConflict {
        /// The request's `sendInitialEvents`.
        requested: bool,
        /// The options' choice.
        options: super::InitialList,
    },
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
    /// The server sent an ERROR event (a 410 in one is Gone, not this).
    #[error("the server sent an ERROR event{}", describe_status(.0))]
    ServerError(Box<Status>),
    /// The server ended a watch at once, with no event (within a second): retried after a
    /// backoff, so that a server or proxy that closes every watch at once is not hammered.
    #[error("the server ended the watch of {what} at once, with no event")]
    EndedAtOnce {
        /// The resource watched, as a path.
        what: String,
    },
    /// Decoding events ahead on another thread (`decode_concurrency` above 1) failed: the task
    /// panicked or was cancelled. Retried from the last version.
    #[error("decoding the events of {what} on another thread failed: {source}")]
    DecodeAhead {
        /// The resource watched, as a path.
        what: String,
        /// The task's failure.
        #[source]
        source: tokio::task::JoinError,
    },
    /// A list answer without `metadata.resourceVersion`: there is no version to watch from. No
    /// real server does this; terminal.
    #[error("the list of {what} carries no metadata.resourceVersion, so there is no version to watch from")]
    ListWithoutVersion {
        /// The resource listed, as a path.
        what: String,
    },
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

impl WatchError {
    /// What the watcher does about this error: the one place where that is decided (issue 16).
    ///
    /// | error | disposition |
    /// |---|---|
    /// | HTTP 410 answer, ERROR event with code 410 or reason `Expired`/`Gone` | Gone |
    /// | HTTP 408, 429, 5xx; ERROR event of any other code | Retry (after `Retry-After` if given) |
    /// | connection, TLS handshake, timeout, body errors; a retryable credential error | Retry |
    /// | a stalled stream, a watch ended at once, a damaged line, a failed decode-ahead task | Retry |
    /// | other HTTP 4xx (400, 401 after refresh, 403, 404…), a bad configuration | Terminal |
    /// | no starting version, a list without a version | Terminal |
    pub(crate) fn disposition(&self) -> Disposition {
        match self {
            WatchError::List { source, .. }
            | WatchError::Open { source, .. }
            | WatchError::Stream { source, .. } => classify(source),
            WatchError::ServerError(status) => classify_status(status),
            WatchError::NoResourceVersion
            | WatchError::InitialListConflict { .. }
            | WatchError::ListWithoutVersion { .. } => Disposition::Terminal,
            WatchError::Idle { .. }
            | WatchError::EndedAtOnce { .. }
            | WatchError::DecodeAhead { .. }
            | WatchError::MalformedLine { .. }
            | WatchError::LineTooLong { .. }
            | WatchError::UnknownEventType(_)
            | WatchError::MissingName { .. }
            | WatchError::Decode { .. } => Disposition::Retry(None),
        }
    }

    /// The server's message for a Gone: what the consumer is told.
    pub(crate) fn gone_message(&self) -> String {
        match self {
            WatchError::ServerError(status) => status.message.clone().unwrap_or_default(),
            other => other
                .api_error()
                .and_then(|a| a.message().map(str::to_string))
                .unwrap_or_else(|| other.to_string()),
        }
    }
}

/// Classifies a client error from a list or a watch request.
fn classify(error: &Error) -> Disposition {
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
fn classify_status(status: &Status) -> Disposition {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusDetails};

    use super::*;
    use crate::ApiError;

    fn answered(code: u16, retry_after: Option<u64>) -> WatchError {
        WatchError::Open {
            what: "/api/v1/pods".into(),
            source: Box::new(Error::Api(Box::new(ApiError {
                method: "GET".into(),
                url: "https://127.0.0.1/api/v1/pods".into(),
                code,
                status: Some(Status {
                    code: Some(i32::from(code)),
                    message: Some(format!("the server's words for {code}")),
                    ..Status::default()
                }),
                body: None,
                retry_after: retry_after.map(Duration::from_secs),
            }))),
        }
    }

    fn error_event(code: Option<i32>, reason: Option<&str>, retry_after: Option<i32>) -> WatchError {
        WatchError::ServerError(Box::new(Status {
            code,
            reason: reason.map(str::to_string),
            message: Some("from the stream".into()),
            details: retry_after.map(|s| StatusDetails {
                retry_after_seconds: Some(s),
                ..StatusDetails::default()
            }),
            ..Status::default()
        }))
    }

    fn what() -> String {
        "/api/v1/pods".into()
    }

    /// The whole decision table, one row per kind of input, so that a change to what is retried
    /// is a change to this test.
    #[test]
    fn every_error_has_one_stated_disposition() {
        let retry = |s: u64| Disposition::Retry(Some(Duration::from_secs(s)));
        let table: Vec<(&str, WatchError, Disposition)> = vec![
            ("HTTP 410", answered(410, None), Disposition::Gone),
            (
                "ERROR event 410",
                error_event(Some(410), None, None),
                Disposition::Gone,
            ),
            (
                "ERROR event reason Expired",
                error_event(None, Some("Expired"), None),
                Disposition::Gone,
            ),
            (
                "ERROR event reason Gone",
                error_event(Some(500), Some("Gone"), None),
                Disposition::Gone,
            ),
            ("HTTP 429 Retry-After", answered(429, Some(7)), retry(7)),
            ("HTTP 408", answered(408, None), Disposition::Retry(None)),
            ("HTTP 500", answered(500, None), Disposition::Retry(None)),
            ("HTTP 503 Retry-After", answered(503, Some(3)), retry(3)),
            ("ERROR event 500", error_event(Some(500), None, Some(2)), retry(2)),
            ("HTTP 400", answered(400, None), Disposition::Terminal),
            ("HTTP 401", answered(401, None), Disposition::Terminal),
            ("HTTP 403", answered(403, None), Disposition::Terminal),
            ("HTTP 404", answered(404, None), Disposition::Terminal),
            (
                "connection refused",
                WatchError::Open {
                    what: what(),
                    source: Box::new(Error::Connect {
                        url: "https://127.0.0.1:1".into(),
                        source: "connection refused".into(),
                    }),
                },
                Disposition::Retry(None),
            ),
            (
                "idle",
                WatchError::Idle {
                    what: what(),
                    idle: Duration::from_secs(1),
                },
                Disposition::Retry(None),
            ),
            (
                "ended at once",
                WatchError::EndedAtOnce { what: what() },
                Disposition::Retry(None),
            ),
            (
                "no starting version",
                WatchError::NoResourceVersion,
                Disposition::Terminal,
            ),
            (
                "a list without a version",
                WatchError::ListWithoutVersion { what: what() },
                Disposition::Terminal,
            ),
        ];
        for (row, error, want) in table {
            assert_eq!(error.disposition(), want, "{row}: {error}");
        }
    }

    #[test]
    fn a_gone_tells_the_servers_message() {
        assert_eq!(answered(410, None).gone_message(), "the server's words for 410");
        assert_eq!(
            error_event(Some(410), None, None).gone_message(),
            "from the stream"
        );
    }
}
