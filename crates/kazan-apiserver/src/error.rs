//! Typed errors: [`ServerError`] when the server cannot start, [`StoreError`] when a write or read
//! of the direct object API is refused (carrying the `Status` the HTTP API would answer).

use crate::status::Status;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding the listening socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// Generating the CA or server certificate, or building the TLS configuration, failed.
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    /// A resource given to the builder is invalid.
    #[error("invalid resource {0}")]
    Resource(String),
}

/// Why the store refused a request. Each variant carries the `metav1.Status` the HTTP API answers
/// with (code, reason, message, details).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// 404 NotFound: no such object, namespace or kind.
    #[error("{0}")]
    NotFound(Box<Status>),
    /// 409 AlreadyExists: create of an existing name.
    #[error("{0}")]
    AlreadyExists(Box<Status>),
    /// 409 Conflict: a stale `metadata.resourceVersion`.
    #[error("{0}")]
    Conflict(Box<Status>),
    /// 422 Invalid: the object or options are invalid.
    #[error("{0}")]
    Invalid(Box<Status>),
    /// 400 BadRequest: malformed input.
    #[error("{0}")]
    BadRequest(Box<Status>),
    /// 403 Forbidden: e.g. creating in a terminating namespace.
    #[error("{0}")]
    Forbidden(Box<Status>),
    /// 410 Expired/Gone: a version or continue token older than the history.
    #[error("{0}")]
    Expired(Box<Status>),
    /// Any other status (415, 500, 504...).
    #[error("{0}")]
    Other(Box<Status>),
}

impl StoreError {
    /// The Status the HTTP API answers with.
    pub fn status(&self) -> &Status {
        match self {
            StoreError::NotFound(s)
            | StoreError::AlreadyExists(s)
            | StoreError::Conflict(s)
            | StoreError::Invalid(s)
            | StoreError::BadRequest(s)
            | StoreError::Forbidden(s)
            | StoreError::Expired(s)
            | StoreError::Other(s) => s,
        }
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        self.status().code
    }
}

impl From<Status> for StoreError {
    fn from(status: Status) -> Self {
        let boxed = Box::new(status);
        match (boxed.code, boxed.reason.as_str()) {
            (404, _) => StoreError::NotFound(boxed),
            (409, "AlreadyExists") => StoreError::AlreadyExists(boxed),
            (409, _) => StoreError::Conflict(boxed),
            (422, _) => StoreError::Invalid(boxed),
            (400, _) => StoreError::BadRequest(boxed),
            (403, _) => StoreError::Forbidden(boxed),
            (410, _) => StoreError::Expired(boxed),
            _ => StoreError::Other(boxed),
        }
    }
}
