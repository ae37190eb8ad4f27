//! Where the API server is and how to talk to it, resolved as kubectl resolves it.
//!
//! Three sources: explicit ([`Config::new`] and its fields), a kubeconfig
//! ([`Config::from_kubeconfig`]: `--kubeconfig` path, else the `KUBECONFIG` list merged first-wins,
//! else `~/.kube/config`), and in-cluster ([`Config::incluster`]). [`Config::infer`] tries the
//! kubeconfig, then in-cluster, and names every source it tried when none works.
//!
//! Secrets (tokens, passwords, private keys, proxy credentials, exec plugin arguments and
//! environment) never appear in the `Debug` output of these types nor in [`ConfigError`].

mod error;
mod impersonation;
mod incluster;
mod kubeconfig;

use std::{ffi::OsString, path::PathBuf, time::Duration};

use secrecy::SecretString;

pub use error::{ConfigAttempt, ConfigError};
pub(crate) use impersonation::IMPERSONATE_USER;
pub use impersonation::{Impersonation, ImpersonationError};

/// Everything the client needs to reach one API server.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// The server's base URL, e.g. `https://10.0.0.1:6443` or `http://127.0.0.1:8080`.
    pub cluster_url: http::Uri,
    /// The namespace used when a namespaced single-object request names none.
    pub default_namespace: String,
    /// PEM certificates to trust for the server (kubeconfig `certificate-authority[-data]`), every
    /// certificate of a bundle kept; `None` trusts the system's roots.
    pub root_certs_pem: Option<Vec<u8>>,
    /// Skip server certificate verification. Only when asked for explicitly.
    pub insecure_skip_tls_verify: bool,
    /// The name to verify the server certificate against, if not the URL's host.
    pub tls_server_name: Option<String>,
    /// A client certificate and key for TLS client authentication. When set, it is presented
    /// rather than one an exec plugin returns, as client-go does.
    pub client_identity: Option<ClientIdentity>,
    /// How requests are authenticated.
    pub auth: AuthConfig,
    /// Whom to act as (kubeconfig `as`, `as-uid`, `as-groups`, `as-user-extra`): sent as
    /// `Impersonate-*` headers on every request. Empty means the authenticated user itself.
    pub impersonation: Impersonation,
    /// An HTTP proxy to tunnel through (kubeconfig `proxy-url`). It may carry credentials in its
    /// user-info part, which `Debug` hides.
    pub proxy_url: Option<http::Uri>,
    /// Deadline for the TCP connect and TLS handshake.
    pub connect_timeout: Duration,
    /// Deadline for a whole non-streaming request, and for the response headers of a stream.
    pub request_timeout: Duration,
    /// TCP keep-alive idle time.
    pub tcp_keepalive: Option<Duration>,
    /// Ask for plain answers instead of gzip (kubeconfig `disable-compression`, client-go's
    /// `rest.Config.DisableCompression`): gzip saves the network's time on a large list and costs
    /// CPU on both ends, which a fast network does not repay.
    pub disable_compression: bool,
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
    /// An exec credential plugin (`client.authentication.k8s.io/v1` or `v1beta1`). Its token is
    /// sent as a bearer token, and its client certificate (`clientCertificateData` and
    /// `clientKeyData`), if any, presented in the TLS handshakes of the connections a
    /// [`Client`](crate::Client) opens; both are renewed when they expire or are refused (401).
    Exec(ExecConfig),
}

/// A kubeconfig `exec` entry: a command that prints an `ExecCredential`.
///
/// `Debug` shows the command but not the arguments nor the environment values, which often carry
/// client secrets (`--oidc-client-secret=...`).
#[derive(Clone, Default, PartialEq, Eq)]
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
    /// `interactiveMode`: `Never`, `IfAvailable` or `Always`. kazan never runs a plugin
    /// interactively, so `Always` is refused and the others run it with stdin closed.
    pub interactive_mode: Option<String>,
    /// `provideClusterInfo`.
    pub provide_cluster_info: bool,
    /// `installHint`, shown when the command is missing.
    pub install_hint: Option<String>,
    /// The cluster passed to the plugin in `KUBERNETES_EXEC_INFO` when `provide_cluster_info` is
    /// set; filled in by the kubeconfig loader.
    pub cluster: Option<Box<ExecClusterInfo>>,
    /// How long one run of the plugin may take before it is killed and the attempt fails with
    /// [`AuthError::ExecTimeout`](crate::auth::AuthError::ExecTimeout) (retryable); `None` means
    /// [`ExecConfig::DEFAULT_TIMEOUT`]. A kubeconfig cannot set it.
    pub timeout: Option<std::time::Duration>,
}

impl ExecConfig {
    /// How long a plugin may run when [`ExecConfig::timeout`] is unset: long enough for a slow
    /// identity provider, short enough that a hung plugin does not stall every request for ever.
    pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

    /// An exec plugin configuration for a command and an ExecCredential `apiVersion`
    /// (`client.authentication.k8s.io/v1` or `client.authentication.k8s.io/v1beta1`).
    pub fn new(api_version: impl Into<String>, command: impl Into<String>) -> Self {
        ExecConfig {
            api_version: api_version.into(),
            command: command.into(),
            ..ExecConfig::default()
        }
    }
}

impl std::fmt::Debug for ExecConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env_names: Vec<&str> = self.env.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("ExecConfig")
            .field("api_version", &self.api_version)
            .field("command", &self.command)
            .field("args", &format_args!("[{} redacted]", self.args.len()))
            .field("env_names", &env_names)
            .field("interactive_mode", &self.interactive_mode)
            .field("provide_cluster_info", &self.provide_cluster_info)
            .field("install_hint", &self.install_hint)
            .field("cluster", &self.cluster)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The ExecCredential `apiVersion`s kazan speaks.
pub(crate) const EXEC_API_VERSIONS: [&str; 2] = [
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
];

/// The cluster an exec plugin is told about (`ExecCredential.spec.cluster`).
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecClusterInfo {
    /// The server URL, as written in the kubeconfig.
    pub server: String,
    /// `tls-server-name`.
    pub tls_server_name: Option<String>,
    /// `insecure-skip-tls-verify`.
    pub insecure_skip_tls_verify: bool,
    /// The CA bundle (PEM), from `certificate-authority` or `-data`.
    pub certificate_authority_data: Option<Vec<u8>>,
    /// `proxy-url` (may carry credentials; hidden from `Debug`).
    pub proxy_url: Option<String>,
    /// `disable-compression`.
    pub disable_compression: bool,
    /// The cluster's `client.authentication.k8s.io/exec` extension, as JSON text.
    pub config: Option<String>,
}

impl std::fmt::Debug for ExecClusterInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecClusterInfo")
            .field("server", &redact_url_text(&self.server))
            .field("tls_server_name", &self.tls_server_name)
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field(
                "certificate_authority_bytes",
                &self.certificate_authority_data.as_ref().map(Vec::len),
            )
            .field("proxy_url", &self.proxy_url.as_ref().map(|_| "[redacted]"))
            .field("disable_compression", &self.disable_compression)
            .field("config", &self.config.as_ref().map(|_| "[present]"))
            .finish()
    }
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

impl KubeconfigOptions {
    /// Options that read this kubeconfig file only (like `kubectl --kubeconfig <path>`).
    pub fn path(path: impl Into<PathBuf>) -> Self {
        KubeconfigOptions {
            path: Some(path.into()),
            ..KubeconfigOptions::default()
        }
    }

    /// Uses this context instead of `current-context` (like `kubectl --context`).
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    /// Uses this cluster instead of the context's (like `kubectl --cluster`).
    pub fn with_cluster(mut self, cluster: impl Into<String>) -> Self {
        self.cluster = Some(cluster.into());
        self
    }

    /// Uses this user instead of the context's (like `kubectl --user`).
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }
}

/// The parts of the process environment that configuration reads, gathered in one place so that
/// tests can inject them instead of mutating the process environment.
#[doc(hidden)]
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ConfigEnv {
    /// `KUBECONFIG`.
    pub kubeconfig: Option<OsString>,
    /// The home directory holding `.kube/config`.
    pub home: Option<PathBuf>,
    /// `KUBERNETES_SERVICE_HOST`.
    pub service_host: Option<String>,
    /// `KUBERNETES_SERVICE_PORT`.
    pub service_port: Option<String>,
    /// The service-account folder (`token`, `ca.crt`, `namespace`).
    pub service_account_dir: PathBuf,
}

/// Where Kubernetes mounts a pod's service-account credentials.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

impl ConfigEnv {
    /// The real process environment.
    pub fn from_process() -> Self {
        ConfigEnv {
            kubeconfig: std::env::var_os("KUBECONFIG"),
            home: home::home_dir(),
            service_host: std::env::var("KUBERNETES_SERVICE_HOST").ok(),
            service_port: std::env::var("KUBERNETES_SERVICE_PORT").ok(),
            service_account_dir: PathBuf::from(SERVICE_ACCOUNT_DIR),
        }
    }

    /// An empty environment: no `KUBECONFIG`, no home, no service variables, and the given
    /// service-account folder.
    pub fn empty(service_account_dir: impl Into<PathBuf>) -> Self {
        ConfigEnv {
            service_account_dir: service_account_dir.into(),
            ..ConfigEnv::default()
        }
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
            impersonation: Impersonation::default(),
            proxy_url: None,
            connect_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            tcp_keepalive: Some(Duration::from_secs(30)),
            disable_compression: false,
            origin: "explicit configuration".to_string(),
        }
    }

    /// Tries the kubeconfig (`KUBECONFIG`, else `~/.kube/config`), then the in-cluster service
    /// account. When neither works, the error names every source tried and why each failed.
    ///
    /// A kubeconfig that exists but cannot be used is logged as a warning before in-cluster is tried.
    pub fn infer() -> Result<Self, ConfigError> {
        Self::infer_in(&ConfigEnv::from_process())
    }

    /// [`Config::infer`] with an injected environment.
    #[doc(hidden)]
    pub fn infer_in(env: &ConfigEnv) -> Result<Self, ConfigError> {
        let kubeconfig_source = kubeconfig::describe_default_source(env);
        let kubeconfig_error = match Self::from_kubeconfig_in(&KubeconfigOptions::default(), env) {
            Ok(config) => return Ok(config),
            Err(e) => e,
        };
        if kubeconfig_error.is_missing_source() {
            tracing::debug!(source = %kubeconfig_source, error = %kubeconfig_error, "no kubeconfig; trying in-cluster");
        } else {
            tracing::warn!(source = %kubeconfig_source, error = %kubeconfig_error, "kubeconfig unusable; trying in-cluster");
        }
        match Self::incluster_in(env) {
            Ok(config) => Ok(config),
            Err(incluster_error) => Err(ConfigError::NoConfiguration {
                attempts: vec![
                    ConfigAttempt {
                        source: kubeconfig_source,
                        error: Box::new(kubeconfig_error),
                    },
                    ConfigAttempt {
                        source: format!(
                            "in-cluster service account ({})",
                            env.service_account_dir.display()
                        ),
                        error: Box::new(incluster_error),
                    },
                ],
            }),
        }
    }

    /// Loads a kubeconfig as kubectl does: `options.path`, else every file of `KUBECONFIG` merged
    /// (the first file to set a value wins), else `~/.kube/config`; then the chosen or current
    /// context, with its cluster, user and namespace.
    pub fn from_kubeconfig(options: &KubeconfigOptions) -> Result<Self, ConfigError> {
        Self::from_kubeconfig_in(options, &ConfigEnv::from_process())
    }

    /// [`Config::from_kubeconfig`] with an injected environment.
    #[doc(hidden)]
    pub fn from_kubeconfig_in(options: &KubeconfigOptions, env: &ConfigEnv) -> Result<Self, ConfigError> {
        kubeconfig::load(options, env)
    }

    /// Loads the in-cluster configuration of a pod: `KUBERNETES_SERVICE_HOST`/`PORT`, the
    /// service-account token (re-read when it rotates), its `ca.crt`, and the pod's namespace.
    pub fn incluster() -> Result<Self, ConfigError> {
        Self::incluster_in(&ConfigEnv::from_process())
    }

    /// [`Config::incluster`] with an injected environment.
    #[doc(hidden)]
    pub fn incluster_in(env: &ConfigEnv) -> Result<Self, ConfigError> {
        incluster::load(env)
    }
}

/// A URI for display, with any user-info (proxy credentials) replaced.
pub(crate) fn redact_uri(uri: &http::Uri) -> String {
    match uri.authority() {
        Some(authority) if authority.as_str().contains('@') => {
            let host = authority.as_str().rsplit('@').next().unwrap_or_default();
            let scheme = uri.scheme_str().map(|s| format!("{s}://")).unwrap_or_default();
            let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or_default();
            format!("{scheme}[redacted]@{host}{path}")
        }
        _ => uri.to_string(),
    }
}

/// A URL as written in a kubeconfig, for display, with any user-info replaced (and the whole
/// text hidden if it does not parse but might hold some).
pub(crate) fn redact_url_text(text: &str) -> String {
    match text.parse::<http::Uri>() {
        Ok(uri) => redact_uri(&uri),
        Err(_) if text.contains('@') => "[redacted]".to_string(),
        Err(_) => text.to_string(),
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("cluster_url", &redact_uri(&self.cluster_url))
            .field("default_namespace", &self.default_namespace)
            .field(
                "root_certs_pem_bytes",
                &self.root_certs_pem.as_ref().map(Vec::len),
            )
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("tls_server_name", &self.tls_server_name)
            .field("client_identity", &self.client_identity)
            .field("auth", &self.auth)
            .field("impersonation", &self.impersonation)
            .field("proxy_url", &self.proxy_url.as_ref().map(redact_uri))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("tcp_keepalive", &self.tcp_keepalive)
            .field("disable_compression", &self.disable_compression)
            .field("origin", &self.origin)
            .finish()
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
            AuthConfig::Exec(e) => f.debug_tuple("Exec").field(e).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_cluster_info_debug_hides_credentials_in_the_server_url() {
        // Found by the kubeconfig fuzz target: the server URL handed to an exec plugin was shown
        // in `Debug` as written, user-info and all.
        let info = ExecClusterInfo {
            server: "https://admin:hunter2@127.0.0.1:6443".to_string(),
            ..ExecClusterInfo::default()
        };
        let shown = format!("{info:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("https://[redacted]@127.0.0.1:6443"), "{shown}");
        let unparsable = ExecClusterInfo {
            server: "https://admin:hunter 2@[::1".to_string(),
            ..ExecClusterInfo::default()
        };
        assert!(!format!("{unparsable:?}").contains("hunter"));
    }
}
