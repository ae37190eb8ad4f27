//! The `Authorization` header values credentials become, marked sensitive so that hyper and h2
//! their `Debug` form hides them and HTTP/2 never indexes them in HPACK. One home for every kind of
//! credential (static tokens, token files, exec plugins, basic auth).

use base64::Engine as _;
use http::HeaderValue;

use super::AuthError;

/// `Bearer <token>`, marked sensitive.
pub(super) fn bearer(token: &str, what: &str) -> Result<HeaderValue, AuthError> {
    sensitive(format!("Bearer {}", token.trim()), what)
}

/// `Basic base64(user:password)`, marked sensitive.
pub(super) fn basic(username: &str, password: &str) -> Result<HeaderValue, AuthError> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    sensitive(format!("Basic {encoded}"), "basic auth credentials")
}

/// `value` as a header value that is never logged; `what` names it in the error.
fn sensitive(value: String, what: &str) -> Result<HeaderValue, AuthError> {
    let mut value = HeaderValue::try_from(value).map_err(|_| AuthError::InvalidHeader {
        what: what.to_string(),
    })?;
    value.set_sensitive(true);
    Ok(value)
}
