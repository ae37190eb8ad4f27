//! The client's error type: what went wrong talking to the API server, with the context a user
//! needs to act (which file, which context, which URL, what the server said).
//!
//! Layers have their own enums ([`ConfigError`], [`AuthError`]); this one wraps them for the client.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;

pub use crate::auth::AuthError;
pub use crate::config::ConfigError;

/// A boxed error source, for transport errors of several libraries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong running a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration could not be loaded or is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Credentials could not be obtained.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The request cannot be sent as built (e.g. a namespaced get without a namespace).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No connection could be made (refused, unreachable, DNS, proxy).
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL tried.
        url: String,
        /// What failed.
        #[source]
        source: BoxError,
    },
    /// The TLS handshake failed (unknown CA, name mismatch, bad client certificate...).
    #[error("TLS with {url} failed: {source}")]
    Tls {
        /// The URL tried.
        url: String,
        /// What failed.
        #[source]
        source: BoxError,
    },
    /// A deadline passed.
    #[error("{what} for {url} timed out after {after:?}")]
    Timeout {
        /// The URL tried.
        url: String,
        /// Which deadline: connecting, waiting for response headers, reading the body.
        what: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The server answered with a non-2xx status.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// Reading or sending a body failed (connection reset, truncated stream, HTTP protocol error).
    #[error("HTTP exchange with {url} failed: {source}")]
    Http {
        /// The URL of the request.
        url: String,
        /// What failed.
        #[source]
        source: BoxError,
    },
    /// A response could not be decoded.
    #[error("cannot decode the response of {url} as {what}: {source}")]
    Decode {
        /// The URL of the request.
        url: String,
        /// What it was decoded as.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
}

/// A non-2xx answer from the server, with its `metav1.Status` when the body was one.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP method of the request.
    pub method: String,
    /// The URL of the request.
    pub url: String,
    /// The HTTP status code.
    pub code: u16,
    /// The `Status` the server sent, if the body was one.
    pub status: Option<Status>,
    /// The body, when it was not a `Status` (an HTML page from a proxy, say); truncated.
    pub body: Option<String>,
    /// `Retry-After` (header, or `details.retryAfterSeconds`).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// The Status `reason` (e.g. `NotFound`, `Expired`), if any.
    pub fn reason(&self) -> Option<&str> {
        self.status.as_ref().and_then(|s| s.reason.as_deref())
    }

    /// The Status `message`, or the raw body.
    pub fn message(&self) -> Option<&str> {
        self.status
            .as_ref()
            .and_then(|s| s.message.as_deref())
            .or(self.body.as_deref())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} answered {}", self.method, self.url, self.code)?;
        if let Some(reason) = self.reason() {
            write!(f, " {reason}")?;
        }
        if let Some(message) = self.message() {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

impl Error {
    /// The server's answer, if the error is a non-2xx status.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status code, if the server answered.
    pub fn status_code(&self) -> Option<u16> {
        self.api().map(|e| e.code)
    }

    /// Whether trying again later may succeed: connection and timeout errors, 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Timeout { .. } | Error::Http { .. } => true,
            Error::Api(e) => e.code == 429 || e.code >= 500,
            Error::Auth(e) => e.is_retryable(),
            _ => false,
        }
    }
}
