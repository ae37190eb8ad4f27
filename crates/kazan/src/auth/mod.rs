//! Credentials that live as long as the client: bearer tokens, token files re-read when they
//! change, basic auth, and exec plugins cached until they expire. On a 401 the client asks for a
//! refresh once and retries.

use http::HeaderValue;

use crate::config::AuthConfig;

/// Why credentials could not be obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Placeholder until the auth module is written.
    #[error("authentication error: {0}")]
    Other(String),
}

impl AuthError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// Produces the `Authorization` header for each request.
#[derive(Debug)]
pub(crate) struct Authenticator {
    config: AuthConfig,
}

impl Authenticator {
    pub(crate) fn new(config: &AuthConfig) -> Result<Self, AuthError> {
        Ok(Authenticator {
            config: config.clone(),
        })
    }

    /// The header to send, marked sensitive; `None` when there are no credentials.
    pub(crate) async fn header(&self) -> Result<Option<HeaderValue>, AuthError> {
        match &self.config {
            AuthConfig::None => Ok(None),
            _ => Err(AuthError::Other("not written yet".into())),
        }
    }

    /// Drops cached credentials so the next `header` obtains fresh ones; `true` if anything can be refreshed.
    pub(crate) async fn refresh(&self) -> Result<bool, AuthError> {
        Ok(false)
    }
}
