//! Exec credential plugins (`client.authentication.k8s.io/v1` and `v1beta1`): run the command with
//! `KUBERNETES_EXEC_INFO`, read the ExecCredential it prints, and cache it until shortly before
//! its `expirationTimestamp` (or until a refresh, when it has none).
//!
//! The plugin runs at most once at a time: concurrent callers wait on the cache's lock and then
//! share the fresh credential. A client certificate it returns is checked (PEM, key matching the
//! certificate) as its output is read, and handed to the TLS layer ([`PluginCertificate`]) each
//! time the plugin runs. Its stdin is closed (kazan is never interactive), its stdout is
//! parsed and never shown, its stderr is shown (truncated) when it fails.

use std::{process::Stdio, sync::Arc, time::Duration};

use base64::Engine as _;
use http::HeaderValue;
use jiff::{SignedDuration, Timestamp};
use rustls::{InconsistentKeys, sign::CertifiedKey};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use super::{AuthError, PluginCertificate, header::bearer};
use crate::{
    config::{ClientIdentity, ExecConfig},
    error::ClientSetupError,
    tls::{certified_key, pem},
};

/// The most of a failing plugin's stderr shown in an error.
const STDERR_LIMIT: usize = 1024;

/// A credential is refreshed this long before it expires, or after half its remaining life when
/// that is shorter.
const EXPIRY_MARGIN: SignedDuration = SignedDuration::from_secs(60);

/// What a plugin gave: a token, a client certificate, or both.
#[derive(Clone)]
pub(super) struct Credential {
    pub(super) header: Option<HeaderValue>,
    pub(super) identity: Option<ClientIdentity>,
    /// `identity` loaded for TLS handshakes.
    certified: Option<Arc<CertifiedKey>>,
}

struct Cached {
    credential: Credential,
    /// When to run the plugin again; `None` = only on a refresh.
    refresh_at: Option<Timestamp>,
}

pub(super) struct ExecAuth {
    config: ExecConfig,
    cache: Mutex<Option<Cached>>,
    /// The client certificate of the last run, for TLS handshakes.
    certificate: Arc<PluginCertificate>,
}

impl ExecAuth {
    pub(super) fn new(config: ExecConfig) -> Result<Self, AuthError> {
        if !crate::config::EXEC_API_VERSIONS.contains(&config.api_version.as_str()) {
            return Err(AuthError::ExecConfig {
                command: config.command.clone(),
                reason: format!(
                    "apiVersion `{}` is not supported (use {})",
                    config.api_version,
                    crate::config::EXEC_API_VERSIONS.join(" or ")
                ),
            });
        }
        match config.interactive_mode.as_deref() {
            None | Some("Never") | Some("IfAvailable") => {}
            Some("Always") => {
                return Err(AuthError::ExecInteractive {
                    command: config.command.clone(),
                });
            }
            Some(other) => {
                return Err(AuthError::ExecConfig {
                    command: config.command.clone(),
                    reason: format!("interactiveMode `{other}` is not one of Never, IfAvailable, Always"),
                });
            }
        }
        Ok(ExecAuth {
            config,
            cache: Mutex::new(None),
            certificate: Arc::default(),
        })
    }

    pub(super) fn command(&self) -> &str {
        &self.config.command
    }

    /// The client certificate TLS handshakes present: the one of the plugin's last run.
    pub(super) fn certificate(&self) -> Arc<PluginCertificate> {
        self.certificate.clone()
    }

    /// The cached credential if still fresh, else a new one from the plugin.
    pub(super) async fn credential(&self) -> Result<Credential, AuthError> {
        let mut cache = self.cache.lock().await;
        let now = Timestamp::now();
        if let Some(cached) = cache.as_ref()
            && cached.refresh_at.is_none_or(|at| now < at)
        {
            return Ok(cached.credential.clone());
        }
        // Boxed: the plugin run (a child process, its pipes, a deadline) is rare, and inline it
        // would make every request's future carry its size.
        let (credential, expiry) = Box::pin(self.run()).await?;
        let refresh_at = expiry.map(|expiry| refresh_time(Timestamp::now(), expiry));
        // Under the cache's lock, so certificates are handed over in the order the runs ended.
        self.certificate.set(credential.certified.clone());
        *cache = Some(Cached {
            credential: credential.clone(),
            refresh_at,
        });
        Ok(credential)
    }

    /// Forgets the cached credential; with `rejected`, only if it is still the one rejected.
    pub(super) async fn forget(&self, rejected: Option<&HeaderValue>) {
        let mut cache = self.cache.lock().await;
        let still_current = match (rejected, cache.as_ref()) {
            (None, _) => true,
            (Some(rejected), Some(cached)) => cached.credential.header.as_ref() == Some(rejected),
            (Some(_), None) => false,
        };
        if still_current {
            *cache = None;
        }
    }

    async fn run(&self) -> Result<(Credential, Option<Timestamp>), AuthError> {
        let config = &self.config;
        let info = exec_info(config).to_string();
        let mut busy_retries = 0;
        let output = loop {
            let mut command = tokio::process::Command::new(&config.command);
            command
                .args(&config.args)
                .envs(config.env.iter().map(|(k, v)| (k, v)))
                .env("KUBERNETES_EXEC_INFO", &info)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            tracing::debug!(command = %config.command, "running exec credential plugin");
            // `kill_on_drop`: a plugin past its deadline is killed when its future is dropped.
            let deadline = config.timeout.unwrap_or(ExecConfig::DEFAULT_TIMEOUT);
            let Ok(outcome) = tokio::time::timeout(deadline, command.output()).await else {
                return Err(AuthError::ExecTimeout {
                    command: config.command.clone(),
                    after: deadline,
                });
            };
            match outcome {
                Ok(output) => break output,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(AuthError::ExecNotFound {
                        command: config.command.clone(),
                        install_hint: config.install_hint.clone(),
                    });
                }
                // The plugin file is being written (updated, or just created): wait briefly.
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && busy_retries < 5 => {
                    busy_retries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(source) => {
                    return Err(AuthError::ExecSpawn {
                        command: config.command.clone(),
                        source,
                    });
                }
            }
        };
        if !output.status.success() {
            return Err(AuthError::ExecFailed {
                command: config.command.clone(),
                status: output.status.to_string(),
                stderr: truncate(&String::from_utf8_lossy(&output.stderr)),
            });
        }
        parse_credential(config, &output.stdout)
    }
}

/// When to run the plugin again for a credential expiring at `expiry`.
fn refresh_time(now: Timestamp, expiry: Timestamp) -> Timestamp {
    let remaining = expiry.duration_since(now);
    if remaining <= SignedDuration::ZERO {
        return expiry;
    }
    let margin = EXPIRY_MARGIN.min(remaining / 2);
    expiry.checked_sub(margin).unwrap_or(expiry)
}

/// The ExecCredential request passed in `KUBERNETES_EXEC_INFO`.
fn exec_info(config: &ExecConfig) -> Value {
    let mut spec = Map::new();
    spec.insert("interactive".to_string(), Value::Bool(false));
    if let Some(cluster) = config.cluster.as_ref().filter(|_| config.provide_cluster_info) {
        let mut c = Map::new();
        c.insert("server".to_string(), json!(cluster.server));
        if let Some(name) = &cluster.tls_server_name {
            c.insert("tls-server-name".to_string(), json!(name));
        }
        if cluster.insecure_skip_tls_verify {
            c.insert("insecure-skip-tls-verify".to_string(), json!(true));
        }
        if let Some(ca) = &cluster.certificate_authority_data {
            let encoded = base64::engine::general_purpose::STANDARD.encode(ca);
            c.insert("certificate-authority-data".to_string(), json!(encoded));
        }
        if let Some(proxy) = &cluster.proxy_url {
            c.insert("proxy-url".to_string(), json!(proxy));
        }
        if cluster.disable_compression {
            c.insert("disable-compression".to_string(), json!(true));
        }
        if let Some(extension) = cluster
            .config
            .as_deref()
            .and_then(|c| serde_json::from_str::<Value>(c).ok())
        {
            c.insert("config".to_string(), extension);
        }
        spec.insert("cluster".to_string(), Value::Object(c));
    }
    json!({
        "apiVersion": config.api_version,
        "kind": "ExecCredential",
        "spec": spec,
    })
}

/// Reads the ExecCredential a plugin printed. Faults are described by field, never by value.
fn parse_credential(
    config: &ExecConfig,
    stdout: &[u8],
) -> Result<(Credential, Option<Timestamp>), AuthError> {
    let fault = |reason: String| AuthError::ExecOutput {
        command: config.command.clone(),
        reason,
    };
    let value: Value = serde_json::from_slice(stdout).map_err(|e| {
        let kind = match e.classify() {
            serde_json::error::Category::Eof => "it ends early",
            _ => "syntax error",
        };
        fault(format!(
            "stdout is not JSON ({kind} at line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let object = value
        .as_object()
        .ok_or_else(|| fault("stdout is not a JSON object".to_string()))?;
    if object.get("kind").and_then(Value::as_str) != Some("ExecCredential") {
        return Err(fault("`kind` is not `ExecCredential`".to_string()));
    }
    if object.get("apiVersion").and_then(Value::as_str) != Some(config.api_version.as_str()) {
        return Err(fault(format!(
            "`apiVersion` is not `{}`, the version configured",
            config.api_version
        )));
    }
    let status = object
        .get("status")
        .and_then(Value::as_object)
        .ok_or_else(|| fault("it has no `status` object".to_string()))?;
    let field = |name: &str| -> Result<Option<&str>, AuthError> {
        match status.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(fault(format!("`status.{name}` is not a string"))),
        }
    };

    let header = match field("token")? {
        Some(token) => Some(bearer(
            token,
            &format!("token from exec plugin `{}`", config.command),
        )?),
        None => None,
    };
    let identity = match (field("clientCertificateData")?, field("clientKeyData")?) {
        (Some(cert), Some(key)) => {
            pem::check_certificates(cert.as_bytes())
                .map_err(|reason| fault(format!("`status.clientCertificateData`: {reason}")))?;
            pem::check_private_key(key.as_bytes())
                .map_err(|reason| fault(format!("`status.clientKeyData`: {reason}")))?;
            Some(ClientIdentity {
                cert_pem: cert.as_bytes().to_vec(),
                key_pem: key.as_bytes().to_vec().into(),
            })
        }
        (Some(_), None) => {
            return Err(fault(
                "`status.clientCertificateData` is set without `status.clientKeyData`".to_string(),
            ));
        }
        (None, Some(_)) => {
            return Err(fault(
                "`status.clientKeyData` is set without `status.clientCertificateData`".to_string(),
            ));
        }
        (None, None) => None,
    };
    if header.is_none() && identity.is_none() {
        return Err(fault(
            "`status` has neither a `token` nor `clientCertificateData` and `clientKeyData`".to_string(),
        ));
    }
    let expiry = match field("expirationTimestamp")? {
        Some(text) => Some(
            text.parse::<Timestamp>()
                .map_err(|_| fault("`status.expirationTimestamp` is not an RFC 3339 time".to_string()))?,
        ),
        None => None,
    };
    let certified = match &identity {
        Some(identity) => Some(Arc::new(
            certified_key(identity).map_err(|e| fault(identity_fault(&e)))?,
        )),
        None => None,
    };
    Ok((
        Credential {
            header,
            identity,
            certified,
        },
        expiry,
    ))
}

/// Why a plugin's certificate and key cannot be used, naming the output field at fault. The PEM
/// was checked before, so what is left is what only loading them finds: a key the crypto provider
/// cannot load, or a key of another certificate. rustls' words never quote the key.
fn identity_fault(error: &ClientSetupError) -> String {
    match error {
        ClientSetupError::InvalidClientIdentity {
            source: rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch),
        } => "`status.clientKeyData` is not the private key of the certificate in `status.clientCertificateData`"
            .to_string(),
        ClientSetupError::InvalidClientIdentity { source } => {
            format!("`status.clientKeyData`: the private key cannot be used ({source})")
        }
        ClientSetupError::CertificatePem { .. } | ClientSetupError::NoCertificate { .. } => {
            format!("`status.clientCertificateData`: {error}")
        }
        ClientSetupError::InvalidClientKey { reason } => format!("`status.clientKeyData`: {reason}"),
        other => format!("`status.clientCertificateData` and `status.clientKeyData`: {other}"),
    }
}

/// The first [`STDERR_LIMIT`] bytes of `text`, cut at a character boundary.
fn truncate(text: &str) -> String {
    let text = text.trim();
    if text.len() <= STDERR_LIMIT {
        return text.to_string();
    }
    let mut end = STDERR_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… (truncated)", text.get(..end).unwrap_or_default())
}
