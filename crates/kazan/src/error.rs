//! The client's error type: what went wrong talking to the API server, with the context a user
//! needs to act (which file, which context, which URL, what the server said).
//!
//! Layers have their own enums ([`ConfigError`], [`AuthError`], [`ClientSetupError`]); [`Error`]
//! wraps them for the client. No variant ever carries a credential: request headers are never
//! kept, and TLS key errors name what is wrong without quoting the key.

use std::{fmt, time::Duration};

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
    /// The configuration was loaded but a client cannot be built from it (TLS material, proxy, URL).
    #[error(transparent)]
    ClientSetup(#[from] ClientSetupError),
    /// The request cannot be sent as built (e.g. a header that is not valid HTTP).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A request body could not be serialized (from the request constructors, via `?`).
    #[error("cannot encode the request body as JSON: {0}")]
    Encode(#[from] serde_json::Error),
    /// No connection could be made (refused, unreachable, DNS, proxy).
    #[error("cannot connect to {url}: {}", Chain(source.as_ref()))]
    Connect {
        /// The URL tried.
        url: String,
        /// What failed.
        #[source]
        source: BoxError,
    },
    /// The TLS handshake failed (unknown CA, name mismatch, bad client certificate...).
    #[error("TLS with {url} failed: {}", Chain(source.as_ref()))]
    Tls {
        /// The URL tried.
        url: String,
        /// What failed; a [`rustls::Error`] is somewhere in its source chain.
        #[source]
        source: BoxError,
    },
    /// A deadline passed.
    #[error("the {what} deadline of {after:?} passed for {url}")]
    Timeout {
        /// The URL tried.
        url: String,
        /// Which deadline: `"connect"` (TCP, proxy tunnel and TLS), `"request"` (a whole
        /// non-streaming request) or `"response headers"` (of a stream).
        what: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The server answered with a non-2xx status.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// Reading or sending a body failed (connection reset, truncated stream, HTTP protocol error).
    #[error("HTTP exchange with {url} failed: {}", Chain(source.as_ref()))]
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
        /// The Rust type it was decoded as.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
}

/// Why a [`Config`](crate::Config) cannot be turned into a working client.
///
/// Key errors say what is wrong with the key without quoting any of it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientSetupError {
    /// The server URL is not `http://` or `https://`.
    #[error("the server URL {url} must start with http:// or https://")]
    UnsupportedScheme {
        /// The URL given.
        url: String,
    },
    /// The proxy URL is not an `http://` proxy (the only kind supported).
    #[error("the proxy URL {url} is not supported: only http:// proxies (HTTP CONNECT) are")]
    UnsupportedProxy {
        /// The URL given, without credentials.
        url: String,
    },
    /// A certificate bundle could not be read as PEM.
    #[error("cannot read the {what} as PEM: {source}")]
    CertificatePem {
        /// Which bundle: `"certificate authority"` or `"client certificate"`.
        what: &'static str,
        /// The PEM parser's error.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A certificate bundle holds no certificate.
    #[error("the {what} holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)")]
    NoCertificate {
        /// Which bundle: `"certificate authority"` or `"client certificate"`.
        what: &'static str,
    },
    /// A certificate authority certificate is not a valid X.509 certificate.
    #[error("certificate {index} of the certificate authority bundle is unusable: {source}")]
    InvalidCaCertificate {
        /// Its position in the bundle, from 1.
        index: usize,
        /// Why rustls refused it.
        #[source]
        source: rustls::Error,
    },
    /// No system root certificate could be loaded, and the configuration names no CA.
    #[error("no certificate authority configured and no system root certificate could be loaded{}", if errors.is_empty() { String::new() } else { format!(": {errors}") })]
    NoSystemRoots {
        /// What went wrong loading them, if anything did.
        errors: String,
    },
    /// The client key is missing, malformed or of an unknown kind.
    #[error("the client key is unusable: {reason}")]
    InvalidClientKey {
        /// What is wrong (never the key itself).
        reason: &'static str,
    },
    /// rustls refused the client certificate and key (unsupported key type, key not matching).
    #[error("the client certificate and key cannot be used: {source}")]
    InvalidClientIdentity {
        /// Why rustls refused them.
        #[source]
        source: rustls::Error,
    },
    /// The TLS server name override is not a valid DNS name or IP address.
    #[error("the TLS server name {name:?} is not a valid DNS name or IP address")]
    InvalidServerName {
        /// The name given.
        name: String,
    },
    /// rustls refused the protocol versions (should not happen with the built-in provider).
    #[error("cannot set up TLS: {0}")]
    Tls(#[source] rustls::Error),
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
    /// The `Status` the server sent, if the body was one (`kind: "Status"`).
    pub status: Option<Status>,
    /// The body, when it was not a `Status` (an HTML page from a proxy, say): lossy UTF-8,
    /// truncated to a few KiB.
    pub body: Option<String>,
    /// `Retry-After` (the header in integer seconds, else `details.retryAfterSeconds`).
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

/// How much of a raw body `Display` shows; the whole (truncated) body stays in [`ApiError::body`].
const DISPLAY_BODY_CHARS: usize = 200;
/// How much of a Status `message` `Display` shows; the whole message stays in [`ApiError::status`].
const DISPLAY_MESSAGE_CHARS: usize = 1024;
/// How much of a Status `reason` (one CamelCase word from a real server) `Display` shows.
const DISPLAY_REASON_CHARS: usize = 64;

/// `text` on one line (runs of whitespace, newlines included, become one space), cut to `max`
/// characters with `…` marking the cut: whatever the server sent, an error is one log line.
fn one_line(text: &str, max: usize) -> String {
    let mut shown = String::new();
    let mut count = 0;
    for (i, word) in text.split_whitespace().enumerate() {
        for c in (i > 0).then_some(' ').into_iter().chain(word.chars()) {
            // Other control characters (a bare `\u{1b}`, say) are shown escaped.
            let escaped = c.is_control().then(|| c.escape_default());
            count += escaped.as_ref().map_or(1, ExactSizeIterator::len);
            if count > max {
                shown.push('…');
                return shown;
            }
            match escaped {
                Some(escaped) => shown.extend(escaped),
                None => shown.push(c),
            }
        }
    }
    shown
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} answered {}", self.method, self.url, self.code)?;
        if let Some(reason) = self.reason() {
            write!(f, " {}", one_line(reason, DISPLAY_REASON_CHARS))?;
        }
        match (
            self.status.as_ref().and_then(|s| s.message.as_deref()),
            &self.body,
        ) {
            (Some(message), _) => write!(f, ": {}", one_line(message, DISPLAY_MESSAGE_CHARS))?,
            // An HTML page should not flood a log line.
            (None, Some(body)) if !body.trim().is_empty() => {
                write!(f, ": {}", one_line(body, DISPLAY_BODY_CHARS))?
            }
            _ => {}
        }
        if let Some(after) = self.retry_after {
            write!(f, " (retry after {}s)", after.as_secs())?;
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

    /// How long the server asked to wait before trying again, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.api().and_then(|e| e.retry_after)
    }

    /// The URL of the request, when the error is about one.
    pub fn url(&self) -> Option<&str> {
        match self {
            Error::Connect { url, .. }
            | Error::Tls { url, .. }
            | Error::Timeout { url, .. }
            | Error::Http { url, .. }
            | Error::Decode { url, .. } => Some(url),
            Error::Api(e) => Some(&e.url),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: connection, timeout and transfer errors, 408, 429
    /// and 5xx. TLS, configuration and decode errors will not go away by themselves.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Timeout { .. } | Error::Http { .. } => true,
            Error::Api(e) => matches!(e.code, 408 | 429) || e.code >= 500,
            Error::Auth(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// Displays an error and its sources on one line, skipping a source whose message the previous
/// one already contains. `std::io::Error` hides its inner error from `source()`, so it is
/// unwrapped by hand.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut previous = String::new();
        let mut first = true;
        for err in chain(self.0) {
            let message = err.to_string();
            if message.is_empty() || previous.contains(&message) {
                continue;
            }
            if !first {
                f.write_str(": ")?;
            }
            f.write_str(&message)?;
            first = false;
            previous = message;
        }
        Ok(())
    }
}

/// Every error in a source chain, the first one included, looking inside `std::io::Error`s.
pub(crate) fn chain<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    // Bounded: a cyclic chain (never seen, but cheap to guard) ends after 32 links.
    let mut next = Some(err);
    std::iter::from_fn(move || {
        let current = next?;
        next = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static))
                .or_else(|| current.source()),
            None => current.source(),
        };
        Some(current)
    })
    .take(32)
}

/// The first error of type `E` in a source chain.
pub(crate) fn find_in_chain<'a, E: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    chain(err).find_map(|e| e.downcast_ref::<E>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_sees_through_io_errors_and_skips_repeats() {
        let tls = rustls::Error::General("bad thing".into());
        let io = std::io::Error::other(tls);
        let outer = std::io::Error::other(io);
        assert!(find_in_chain::<rustls::Error>(&outer).is_some());
        assert_eq!(Chain(&outer).to_string(), "unexpected error: bad thing");
    }

    #[test]
    fn raw_bodies_are_shortened_to_one_line_in_display() {
        let e = ApiError {
            method: "GET".into(),
            url: "https://x/api".into(),
            code: 502,
            status: None,
            body: Some(format!("<html>\n<body>{}</body></html>", "x".repeat(500))),
            retry_after: Some(Duration::from_secs(3)),
        };
        let shown = e.to_string();
        assert!(shown.starts_with("GET https://x/api answered 502: <html> <body>xxx"));
        assert!(shown.ends_with("… (retry after 3s)"));
        assert!(shown.len() < 300);
    }

    #[test]
    fn status_messages_are_shown_on_one_bounded_line() {
        // Found by the error-body fuzz target: a Status message was shown as sent, newlines and
        // all, however long.
        let status = Status {
            reason: Some("Invalid\nReason".into()),
            message: Some(format!("line one\n\tline two\r\n\u{1b}[31m{}", "y".repeat(5000))),
            ..Status::default()
        };
        let e = ApiError {
            method: "PATCH".into(),
            url: "https://x/api".into(),
            code: 422,
            status: Some(status),
            body: None,
            retry_after: None,
        };
        let shown = e.to_string();
        assert!(
            shown.starts_with(
                "PATCH https://x/api answered 422 Invalid Reason: line one line two \\u{1b}[31myyy"
            ),
            "{shown}"
        );
        assert!(shown.ends_with("y…"), "{shown}");
        assert!(!shown.contains(['\n', '\r']));
        assert!(shown.chars().count() < 1200);
    }
}
