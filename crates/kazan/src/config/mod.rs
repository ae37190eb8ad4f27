//! Where the API server is and how to talk to it, resolved as kubectl resolves it.
//!
//! Three sources: explicit ([`Config::new`] and its fields), a kubeconfig
//! ([`Config::from_kubeconfig`]: `--kubeconfig` path, else the `KUBECONFIG` list merged first-wins,
//! else `~/.kube/config`), and in-cluster ([`Config::incluster`]). [`Config::infer`] tries the
//! kubeconfig, then in-cluster, and names every source it tried when none works.

use std::{path::PathBuf, time::Duration};

use secrecy::SecretString;

/// Everything the client needs to reach one API server.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// The server's base URL, e.g. `https://10.0.0.1:6443` or `http://127.0.0.1:8080`.
    pub cluster_url: http::Uri,
    /// The namespace used when a namespaced single-object request names none.
    pub default_namespace: String,
    /// PEM certificates to trust for the server (kubeconfig `certificate-authority[-data]`);
    /// `None` trusts the system's roots.
    pub root_certs_pem: Option<Vec<u8>>,
    /// Skip server certificate verification. Only when asked for explicitly.
    pub insecure_skip_tls_verify: bool,
    /// The name to verify the server certificate against, if not the URL's host.
    pub tls_server_name: Option<String>,
    /// A client certificate and key for TLS client authentication.
    pub client_identity: Option<ClientIdentity>,
    /// How requests are authenticated.
    pub auth: AuthConfig,
    /// An HTTP proxy to tunnel through (kubeconfig `proxy-url`).
    pub proxy_url: Option<http::Uri>,
    /// Deadline for the TCP connect and TLS handshake.
    pub connect_timeout: Duration,
    /// Deadline for a whole non-streaming request, and for the response headers of a stream.
    pub request_timeout: Duration,
    /// TCP keep-alive idle time.
    pub tcp_keepalive: Option<Duration>,
    /// Where this configuration came from, for error messages.
    pub origin: String,
}

/// A client certificate chain and its private key, PEM encoded. The key never appears in `Debug`.
#[derive(Clone)]
pub struct ClientIdentity {
    /// The certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// The private key (RSA, EC or PKCS#8), PEM.
    pub key_pem: secrecy::SecretSlice<u8>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert_pem_bytes", &self.cert_pem.len())
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

/// How requests are authenticated. Secrets inside never appear in `Debug`.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum AuthConfig {
    /// No credentials (or TLS client certificates only).
    #[default]
    None,
    /// A bearer token.
    Token(SecretString),
    /// A bearer token read from a file, re-read when the file changes (rotated service-account tokens).
    TokenFile(PathBuf),
    /// HTTP basic auth.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: SecretString,
    },
    /// An exec credential plugin (`client.authentication.k8s.io/v1` or `v1beta1`).
    Exec(ExecConfig),
}

/// A kubeconfig `exec` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecConfig {
    /// `apiVersion` of the ExecCredential exchanged.
    pub api_version: String,
    /// The command; relative paths with a separator are resolved against the kubeconfig's folder.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// `interactiveMode`: `Never`, `IfAvailable` or `Always`.
    pub interactive_mode: Option<String>,
    /// `provideClusterInfo`.
    pub provide_cluster_info: bool,
    /// `installHint`, shown when the command is missing.
    pub install_hint: Option<String>,
}

/// Which kubeconfig, and which context, cluster and user in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KubeconfigOptions {
    /// An explicit path (like `--kubeconfig`); else `KUBECONFIG`, else `~/.kube/config`.
    pub path: Option<PathBuf>,
    /// The context to use instead of `current-context`.
    pub context: Option<String>,
    /// The cluster to use instead of the context's.
    pub cluster: Option<String>,
    /// The user to use instead of the context's.
    pub user: Option<String>,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Placeholder until the config module is written.
    #[error("configuration error: {0}")]
    Other(String),
}

impl ConfigError {
    /// Placeholder.
    pub fn other(msg: impl Into<String>) -> Self {
        ConfigError::Other(msg.into())
    }
}

impl Config {
    /// A configuration for a server URL with no credentials and default deadlines.
    pub fn new(cluster_url: http::Uri) -> Self {
        Config {
            cluster_url,
            default_namespace: "default".to_string(),
            root_certs_pem: None,
            insecure_skip_tls_verify: false,
            tls_server_name: None,
            client_identity: None,
            auth: AuthConfig::None,
            proxy_url: None,
            connect_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            tcp_keepalive: Some(Duration::from_secs(30)),
            origin: "explicit configuration".to_string(),
        }
    }

    /// Tries the kubeconfig, then in-cluster.
    pub fn infer() -> Result<Self, ConfigError> {
        Err(ConfigError::other("not written yet"))
    }

    /// Loads a kubeconfig as kubectl does.
    pub fn from_kubeconfig(_options: &KubeconfigOptions) -> Result<Self, ConfigError> {
        Err(ConfigError::other("not written yet"))
    }

    /// Loads the in-cluster configuration of a pod.
    pub fn incluster() -> Result<Self, ConfigError> {
        Err(ConfigError::other("not written yet"))
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("cluster_url", &self.cluster_url)
            .field("default_namespace", &self.default_namespace)
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("tls_server_name", &self.tls_server_name)
            .field("client_identity", &self.client_identity)
            .field("auth", &self.auth)
            .field("proxy_url", &self.proxy_url)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthConfig::None => f.write_str("None"),
            AuthConfig::Token(_) => f.write_str("Token([redacted])"),
            AuthConfig::TokenFile(p) => f.debug_tuple("TokenFile").field(p).finish(),
            AuthConfig::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"[redacted]")
                .finish(),
            AuthConfig::Exec(e) => f.debug_tuple("Exec").field(&e.command).finish(),
        }
    }
}
