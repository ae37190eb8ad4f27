//! Acting as another user: the kubeconfig's `as`, `as-uid`, `as-groups` and `as-user-extra`
//! (kubectl's `--as`, `--as-uid`, `--as-group`), sent as `Impersonate-*` headers on every request.
//!
//! The server checks that the authenticated user may impersonate; kazan only says whom. The
//! headers are built as client-go's `impersonatingRoundTripper` builds them, extra keys escaped as
//! its `headerKeyEscape` escapes them, so a server sees the same request from kazan as from kubectl.

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue};

/// `Impersonate-User`.
pub(crate) const IMPERSONATE_USER: HeaderName = HeaderName::from_static("impersonate-user");
/// `Impersonate-Uid`.
const IMPERSONATE_UID: HeaderName = HeaderName::from_static("impersonate-uid");
/// `Impersonate-Group`, once per group.
const IMPERSONATE_GROUP: HeaderName = HeaderName::from_static("impersonate-group");
/// The prefix of `Impersonate-Extra-<key>`, once per value of the key.
const IMPERSONATE_EXTRA_PREFIX: &str = "impersonate-extra-";

/// Whom the client acts as, instead of the user its credentials authenticate. Empty (the
/// default) means no impersonation.
///
/// A uid, groups or extra need a user: the API server refuses them alone, and
/// [`Client::new`](crate::Client::new) (like the kubeconfig loader) refuses them with
/// [`ImpersonationError::WithoutUser`] before anything is sent.
///
/// ```
/// use kazan::config::Impersonation;
///
/// let as_admin = Impersonation::user("jane")
///     .with_group("system:masters")
///     .with_extra("reason", "incident 42");
/// assert!(!as_admin.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Impersonation {
    /// The user to act as (`Impersonate-User`; kubeconfig `as`, kubectl `--as`).
    pub user: Option<String>,
    /// The user's uid (`Impersonate-Uid`; kubeconfig `as-uid`, kubectl `--as-uid`).
    pub uid: Option<String>,
    /// The groups to act as a member of (one `Impersonate-Group` each; kubeconfig `as-groups`,
    /// kubectl `--as-group`).
    pub groups: Vec<String>,
    /// Extra user information, each key with its values (`Impersonate-Extra-<key>` once per
    /// value, the key percent-encoded where it holds characters not allowed in a header name;
    /// kubeconfig `as-user-extra`). The server reads keys case-insensitively.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Why impersonation settings cannot be sent. Fields are named as in a kubeconfig (`as`,
/// `as-uid`, `as-groups`, `as-user-extra`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImpersonationError {
    /// A uid, groups or extra are set but no user (as client-go, and the API server, refuse).
    #[error(
        "requesting {field} without impersonating a user: set `as` (kubectl --as) too, \
         or remove {field}"
    )]
    WithoutUser {
        /// The field set without `as`: `as-uid`, `as-groups` or `as-user-extra`.
        field: &'static str,
    },
    /// A value holds characters an HTTP header cannot carry (control characters, line breaks).
    #[error("{field} holds a character that cannot be sent in an HTTP header (a control character)")]
    InvalidValue {
        /// The field at fault.
        field: &'static str,
    },
}

impl Impersonation {
    /// Acts as `user`.
    pub fn user(user: impl Into<String>) -> Self {
        Impersonation {
            user: Some(user.into()),
            ..Impersonation::default()
        }
    }

    /// Sets the user's uid.
    #[must_use]
    pub fn with_uid(mut self, uid: impl Into<String>) -> Self {
        self.uid = Some(uid.into());
        self
    }

    /// Adds a group.
    #[must_use]
    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.groups.push(group.into());
        self
    }

    /// Adds a value to an extra key.
    #[must_use]
    pub fn with_extra(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.entry(key.into()).or_default().push(value.into());
        self
    }

    /// Whether nothing is impersonated (no header is sent).
    pub fn is_empty(&self) -> bool {
        self.user.is_none()
            && self.uid.is_none()
            && self.groups.is_empty()
            && self.extra.values().all(Vec::is_empty)
    }

    /// Checks that every value can be sent in a header, leaving the need for a user to
    /// [`validate`](Self::validate): a kubeconfig's `as-groups` may be completed by kubectl's
    /// `--as` (or a caller's [`user`](Self::user)) after it is loaded.
    pub(crate) fn check_values(&self) -> Result<(), ImpersonationError> {
        self.header_list().map(drop)
    }

    /// Checks that a uid, groups or extra come with a user.
    pub fn validate(&self) -> Result<(), ImpersonationError> {
        if self.user.is_some() {
            return Ok(());
        }
        let field = if self.uid.is_some() {
            "as-uid"
        } else if !self.groups.is_empty() {
            "as-groups"
        } else if !self.extra.values().all(Vec::is_empty) {
            "as-user-extra"
        } else {
            return Ok(());
        };
        Err(ImpersonationError::WithoutUser { field })
    }

    /// The headers every request carries: `Impersonate-User`, `Impersonate-Uid`, one
    /// `Impersonate-Group` per group and one `Impersonate-Extra-<escaped key>` per extra value,
    /// in that order. Empty when nothing is impersonated.
    pub fn headers(&self) -> Result<HeaderMap, ImpersonationError> {
        self.validate()?;
        self.header_list()
    }

    /// The headers, user or not: every value checked, whether or not a user comes with it.
    fn header_list(&self) -> Result<HeaderMap, ImpersonationError> {
        let mut headers = HeaderMap::new();
        if let Some(user) = &self.user {
            headers.append(IMPERSONATE_USER, header_value(user, "as")?);
        }
        if let Some(uid) = &self.uid {
            headers.append(IMPERSONATE_UID, header_value(uid, "as-uid")?);
        }
        for group in &self.groups {
            headers.append(IMPERSONATE_GROUP, header_value(group, "as-groups")?);
        }
        for (key, values) in &self.extra {
            let name = format!("{IMPERSONATE_EXTRA_PREFIX}{}", escape_extra_key(key));
            // Escaped, every byte is a token character: the name always parses.
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| ImpersonationError::InvalidValue {
                    field: "as-user-extra",
                })?;
            for value in values {
                headers.append(name.clone(), header_value(value, "as-user-extra")?);
            }
        }
        Ok(headers)
    }
}

/// A header value from text; UTF-8 beyond ASCII is sent as its bytes, as Go sends it.
fn header_value(text: &str, field: &'static str) -> Result<HeaderValue, ImpersonationError> {
    HeaderValue::from_bytes(text.as_bytes()).map_err(|_| ImpersonationError::InvalidValue { field })
}

/// An extra key as a header name suffix, as client-go's `headerKeyEscape`: every byte that is not
/// an RFC 7230 token character, and `%` itself, becomes `%XX` (upper-case hex). Header names
/// travel lower-cased (HTTP/2 requires it; the `http` crate always does it), and the server
/// lower-cases the name before unescaping it (`url.PathUnescape`), so keys are case-insensitive.
fn escape_extra_key(key: &str) -> String {
    let mut escaped = String::with_capacity(key.len());
    for &byte in key.as_bytes() {
        if is_token_byte(byte) && byte != b'%' {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

/// RFC 7230 `tchar`: the characters of a header name.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_keys_are_escaped_as_client_go_escapes_them() {
        assert_eq!(escape_extra_key("scopes"), "scopes");
        assert_eq!(escape_extra_key("Reason"), "Reason");
        assert_eq!(
            escape_extra_key("example.com/team name"),
            "example.com%2Fteam%20name"
        );
        assert_eq!(escape_extra_key("100%"), "100%25");
        assert_eq!(escape_extra_key("a:b=c"), "a%3Ab%3Dc");
        assert_eq!(escape_extra_key("é"), "%C3%A9");
        assert_eq!(escape_extra_key("!#$&'*+-.^_`|~"), "!#$&'*+-.^_`|~");
    }

    #[test]
    fn a_value_with_a_line_break_is_refused_naming_its_field() {
        let err = Impersonation::user("jane").with_group("a\nb").headers();
        assert_eq!(err, Err(ImpersonationError::InvalidValue { field: "as-groups" }));
    }
}
