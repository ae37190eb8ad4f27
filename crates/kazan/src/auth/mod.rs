//! Credentials that live as long as the client: bearer tokens, token files re-read when they
//! change, basic auth, and exec plugins cached until they expire. On a 401 the client asks for a
//! refresh once and retries.
//!
//! An exec plugin may return a client certificate instead of (or besides) a token: it is handed
//! to the client's TLS configuration (a plugin certificate) each time the plugin runs, and new
//! connections present it.
//!
//! Header values are marked sensitive, and no error or log line carries a token, a password, a
//! private key or an exec plugin's output.

mod client_cert;
mod exec;
mod header;
mod token_file;

use std::sync::Arc;

use http::HeaderValue;
use secrecy::ExposeSecret;

use crate::config::{AuthConfig, ClientIdentity};

use self::{
    exec::ExecAuth,
    header::{basic, bearer},
    token_file::TokenFile,
};
pub(crate) use client_cert::PluginCertificate;

/// Why credentials could not be obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A token, password or user name cannot be sent in an HTTP header (control characters).
    #[error("the {what} cannot be sent in an HTTP header: it holds characters a header cannot")]
    InvalidHeader {
        /// What was being sent, e.g. "bearer token from /var/run/.../token".
        what: String,
    },
    /// The token file could not be read, and no earlier token is known.
    #[error("cannot read the token file {}: {source}", path.display())]
    TokenFile {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The token file is empty, and no earlier token is known.
    #[error("the token file {} is empty", path.display())]
    EmptyTokenFile {
        /// The file.
        path: std::path::PathBuf,
    },
    /// The exec plugin's configuration cannot be used (unsupported `apiVersion`, invalid
    /// `interactiveMode`).
    #[error("exec plugin `{command}`: {reason}")]
    ExecConfig {
        /// The command.
        command: String,
        /// What is wrong.
        reason: String,
    },
    /// The exec plugin requires an interactive terminal (`interactiveMode: Always`); kazan never
    /// runs plugins interactively.
    #[error(
        "exec plugin `{command}` requires an interactive terminal (interactiveMode: Always), but kazan \
         never runs credential plugins interactively; log in beforehand or configure a non-interactive plugin"
    )]
    ExecInteractive {
        /// The command.
        command: String,
    },
    /// The exec plugin's command does not exist.
    #[error("exec plugin command `{command}` was not found{}", install_hint.as_deref().map(|h| format!("; {h}")).unwrap_or_default())]
    ExecNotFound {
        /// The command.
        command: String,
        /// The kubeconfig's `installHint`.
        install_hint: Option<String>,
    },
    /// The exec plugin could not be started (not executable, no resources...).
    #[error("cannot start exec plugin `{command}`: {source}")]
    ExecSpawn {
        /// The command.
        command: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The exec plugin did not finish within its deadline ([`ExecConfig::timeout`]); it was
    /// killed.
    ///
    /// [`ExecConfig::timeout`]: crate::config::ExecConfig::timeout
    #[error("exec plugin `{command}` did not finish within {after:?}; it was killed")]
    ExecTimeout {
        /// The command.
        command: String,
        /// The deadline.
        after: std::time::Duration,
    },
    /// The exec plugin ran but failed.
    #[error("exec plugin `{command}` failed ({status}){}", if stderr.is_empty() { String::new() } else { format!("; stderr: {stderr}") })]
    ExecFailed {
        /// The command.
        command: String,
        /// How it ended, e.g. "exit status: 1".
        status: String,
        /// Its standard error, truncated (its standard output is never shown: it may hold a token).
        stderr: String,
    },
    /// The exec plugin printed something that is not a usable ExecCredential.
    #[error("exec plugin `{command}` printed an unusable ExecCredential: {reason}")]
    ExecOutput {
        /// The command.
        command: String,
        /// What is wrong (its output is never shown: it may hold a token).
        reason: String,
    },
}

impl AuthError {
    /// Whether trying again later may succeed: a token file that could not be read (it may be
    /// mid-rotation), or an exec plugin that failed to run or exited non-zero (its identity
    /// provider may be briefly unreachable) or timed out.
    pub fn is_retryable(&self) -> bool {
        match self {
            AuthError::TokenFile { .. } | AuthError::EmptyTokenFile { .. } => true,
            AuthError::ExecFailed { .. } | AuthError::ExecSpawn { .. } | AuthError::ExecTimeout { .. } => {
                true
            }
            AuthError::InvalidHeader { .. }
            | AuthError::ExecConfig { .. }
            | AuthError::ExecInteractive { .. }
            | AuthError::ExecNotFound { .. }
            | AuthError::ExecOutput { .. } => false,
        }
    }
}

/// Produces the `Authorization` header for each request, keeping refreshable credentials
/// (token files, exec plugins) fresh. Shared by every request of a client; safe to use from many
/// tasks at once.
pub struct Authenticator {
    kind: Kind,
}

enum Kind {
    None,
    Static(HeaderValue),
    TokenFile(TokenFile),
    Exec(Box<ExecAuth>),
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::None => "none".to_string(),
            Kind::Static(_) => "static([redacted])".to_string(),
            Kind::TokenFile(t) => format!("token file {}", t.path().display()),
            Kind::Exec(e) => format!("exec plugin `{}`", e.command()),
        };
        f.debug_struct("Authenticator").field("kind", &kind).finish()
    }
}

impl Authenticator {
    /// Prepares the credentials of `config`. Nothing is read or run yet: a token file is read and
    /// an exec plugin run on the first [`header`](Self::header). An exec plugin that demands an
    /// interactive terminal, or speaks an unknown `apiVersion`, is refused here.
    pub fn new(config: &AuthConfig) -> Result<Self, AuthError> {
        let kind = match config {
            AuthConfig::None => Kind::None,
            AuthConfig::Token(token) => Kind::Static(bearer(token.expose_secret(), "bearer token")?),
            AuthConfig::TokenFile(path) => Kind::TokenFile(TokenFile::new(path.clone())),
            AuthConfig::Basic { username, password } => {
                Kind::Static(basic(username, password.expose_secret())?)
            }
            AuthConfig::Exec(exec) => Kind::Exec(Box::new(ExecAuth::new(exec.clone())?)),
        };
        Ok(Authenticator { kind })
    }

    /// The `Authorization` value to send, marked sensitive; `None` when there are no credentials
    /// (or only a client certificate). A token file is re-read if it changed since the last read;
    /// an exec plugin is run if it has no valid cached credential.
    pub async fn header(&self) -> Result<Option<HeaderValue>, AuthError> {
        match &self.kind {
            Kind::None => Ok(None),
            Kind::Static(value) => Ok(Some(value.clone())),
            Kind::TokenFile(file) => file.header().await.map(Some),
            Kind::Exec(exec) => exec.credential().await.map(|c| c.header),
        }
    }

    /// Drops cached credentials so that the next [`header`](Self::header) gets fresh ones: the
    /// token file is re-read now, the exec plugin's credential is forgotten (the plugin runs again
    /// on the next use). Returns whether anything can be refreshed: `false` for a static token,
    /// basic auth or no credentials, where retrying cannot help.
    pub async fn refresh(&self) -> Result<bool, AuthError> {
        match &self.kind {
            Kind::None | Kind::Static(_) => Ok(false),
            Kind::TokenFile(file) => file.refresh().await.map(|()| true),
            Kind::Exec(exec) => {
                exec.forget(None).await;
                Ok(true)
            }
        }
    }

    /// Like [`refresh`](Self::refresh), for a request that was rejected (401) with `rejected`:
    /// when another task has already replaced that credential, the newer one is kept, so that many
    /// requests rejected at once run an exec plugin once rather than once each.
    pub async fn refresh_rejected(&self, rejected: &HeaderValue) -> Result<bool, AuthError> {
        match &self.kind {
            Kind::None | Kind::Static(_) => Ok(false),
            Kind::TokenFile(file) => file.refresh().await.map(|()| true),
            Kind::Exec(exec) => {
                exec.forget(Some(rejected)).await;
                Ok(true)
            }
        }
    }

    /// The client certificate an exec plugin returned (`clientCertificateData` and
    /// `clientKeyData`), running the plugin if it has no valid cached credential; `None` for every
    /// other kind of credential. A certificate from the kubeconfig itself is in
    /// [`Config::client_identity`](crate::Config::client_identity).
    ///
    /// A [`Client`](crate::Client) presents it in its TLS handshakes by itself (unless the
    /// kubeconfig has a certificate of its own); this is for callers building their own transport.
    pub async fn client_identity(&self) -> Result<Option<ClientIdentity>, AuthError> {
        match &self.kind {
            Kind::Exec(exec) => exec.credential().await.map(|c| c.identity),
            _ => Ok(None),
        }
    }

    /// For an exec plugin, the certificate its TLS handshakes present: replaced each time the
    /// plugin runs ([`header`](Self::header) runs it when its credential has expired or was
    /// refreshed). `None` for every other kind of credential.
    pub(crate) fn plugin_certificate(&self) -> Option<Arc<PluginCertificate>> {
        match &self.kind {
            Kind::Exec(exec) => Some(exec.certificate()),
            _ => None,
        }
    }
}
