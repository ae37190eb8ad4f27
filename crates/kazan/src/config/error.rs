//! Why a configuration could not be loaded: each variant names the file, entry and field at fault,
//! and none carries a secret value (only names, paths and the kind of fault).

use std::path::PathBuf;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The kubeconfig file to read does not exist (an explicit path, or `~/.kube/config`).
    #[error("kubeconfig {} does not exist", path.display())]
    KubeconfigNotFound {
        /// The path looked at.
        path: PathBuf,
    },
    /// `KUBECONFIG` lists files, but none of them exists.
    #[error("none of the files listed in KUBECONFIG exists: {}", paths_list(paths))]
    NoKubeconfigInList {
        /// The files listed.
        paths: Vec<PathBuf>,
    },
    /// Neither `KUBECONFIG` is set nor a home directory known, so there is no kubeconfig to read.
    #[error("KUBECONFIG is not set and the home directory (for ~/.kube/config) is unknown")]
    NoHomeDirectory,
    /// A file could not be read: a kubeconfig, or a file it references.
    #[error("cannot read {what} {}: {source}", path.display())]
    ReadFile {
        /// What the file is for, e.g. "kubeconfig" or "client-key of user `alice` (in /home/a/.kube/config)".
        what: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A kubeconfig is not valid YAML, or not shaped like a kubeconfig.
    #[error("kubeconfig {} is malformed{}: {message}", path.display(), location(*line, *column))]
    MalformedKubeconfig {
        /// The file.
        path: PathBuf,
        /// The line of the fault (1-based), when known.
        line: Option<u64>,
        /// The column of the fault (1-based), when known.
        column: Option<u64>,
        /// What is wrong (never the text of the file).
        message: String,
    },
    /// One kubeconfig file defines the same cluster, user or context name twice.
    #[error("kubeconfig {} defines {kind} `{name}` more than once", path.display())]
    DuplicateName {
        /// The file.
        path: PathBuf,
        /// `cluster`, `user` or `context`.
        kind: &'static str,
        /// The repeated name.
        name: String,
    },
    /// No context was chosen and the kubeconfig sets no `current-context`.
    #[error("{origin} sets no current-context and no context was chosen")]
    NoCurrentContext {
        /// The kubeconfig files read.
        origin: String,
    },
    /// The chosen or current context does not exist.
    #[error(
        "context `{name}` does not exist in {origin}; contexts defined: {}",
        names_list(available)
    )]
    ContextNotFound {
        /// The context asked for.
        name: String,
        /// The contexts that exist.
        available: Vec<String>,
        /// The kubeconfig files read.
        origin: String,
    },
    /// The context's (or the chosen) cluster does not exist.
    #[error(
        "cluster `{name}`{} does not exist in {origin}; clusters defined: {}",
        for_context(context),
        names_list(available)
    )]
    ClusterNotFound {
        /// The cluster asked for.
        name: String,
        /// The context naming it, if it came from one.
        context: Option<String>,
        /// The clusters that exist.
        available: Vec<String>,
        /// The kubeconfig files read.
        origin: String,
    },
    /// The context's (or the chosen) user does not exist.
    #[error(
        "user `{name}`{} does not exist in {origin}; users defined: {}",
        for_context(context),
        names_list(available)
    )]
    UserNotFound {
        /// The user asked for.
        name: String,
        /// The context naming it, if it came from one.
        context: Option<String>,
        /// The users that exist.
        available: Vec<String>,
        /// The kubeconfig files read.
        origin: String,
    },
    /// The context names no cluster and none was chosen.
    #[error("context `{context}` in {origin} names no cluster")]
    ContextWithoutCluster {
        /// The context.
        context: String,
        /// The kubeconfig files read.
        origin: String,
    },
    /// A cluster has no `server`.
    #[error("cluster `{cluster}` in {} has no server", path.display())]
    MissingServer {
        /// The cluster.
        cluster: String,
        /// The kubeconfig file defining it.
        path: PathBuf,
    },
    /// A URL field (`server`, `proxy-url`, the in-cluster host and port) cannot be parsed.
    #[error("{field} of {entry} is not a usable URL: {reason}")]
    InvalidUrl {
        /// The field, e.g. `server`.
        field: &'static str,
        /// Which entry, e.g. "cluster `prod` (in /home/a/.kube/config)".
        entry: String,
        /// What is wrong with it (the value itself is not repeated, it may hold credentials).
        reason: String,
    },
    /// A `-data` field is not valid base64.
    #[error("{field} of {entry} is not valid base64: {reason}")]
    InvalidBase64 {
        /// The field, e.g. `client-key-data`.
        field: &'static str,
        /// Which entry, e.g. "user `alice` (in /home/a/.kube/config)".
        entry: String,
        /// What is wrong (position only; the data is not repeated).
        reason: String,
    },
    /// A certificate or key is not usable PEM (no certificate, no private key block...).
    #[error("{what} is not usable: {reason}")]
    InvalidPem {
        /// Which field or file, e.g. "client-key /keys/a.pem of user `alice` (in /home/a/.kube/config)".
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A user or cluster entry is inconsistent (two authentication methods, a certificate without
    /// its key, the insecure flag with a CA...).
    #[error("{entry}: {reason}")]
    InvalidEntry {
        /// Which entry.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// A user's impersonation settings (kubeconfig `as`, `as-uid`, `as-groups`,
    /// `as-user-extra`, or [`Config::impersonation`](super::Config::impersonation)) cannot be
    /// sent: a uid, groups or extra without a user, or a value no HTTP header can carry.
    #[error("{entry}: {source}")]
    Impersonation {
        /// Which entry, e.g. "user `alice` (in /home/a/.kube/config)", or the configuration's
        /// origin when it was set in code.
        entry: String,
        /// What is wrong, naming the field.
        #[source]
        source: super::ImpersonationError,
    },
    /// A user needs a feature kazan does not have (an `auth-provider`).
    #[error("{entry} uses {feature}, which kazan does not support{}", hint.as_deref().map(|h| format!("; {h}")).unwrap_or_default())]
    Unsupported {
        /// Which entry.
        entry: String,
        /// The feature.
        feature: String,
        /// What to do instead.
        hint: Option<String>,
    },
    /// Not running in a pod: a service environment variable is missing.
    #[error("not running in a cluster: {var} is not set")]
    InClusterEnvMissing {
        /// The variable.
        var: &'static str,
    },
    /// No source produced a configuration; each attempt and its failure, in order.
    #[error("no usable Kubernetes configuration found; tried:{}", attempts_list(attempts))]
    NoConfiguration {
        /// What was tried and why it failed.
        attempts: Vec<ConfigAttempt>,
    },
}

/// One configuration source [`Config::infer`](super::Config::infer) tried, and why it failed.
#[derive(Debug)]
pub struct ConfigAttempt {
    /// The source, e.g. "kubeconfig ~/.kube/config" or "in-cluster service account".
    pub source: String,
    /// Why it could not be used.
    pub error: Box<ConfigError>,
}

impl ConfigError {
    /// Whether the error only says that the source does not exist (no kubeconfig file, not in a
    /// pod), as opposed to a source that exists but is broken.
    pub fn is_missing_source(&self) -> bool {
        matches!(
            self,
            ConfigError::KubeconfigNotFound { .. }
                | ConfigError::NoKubeconfigInList { .. }
                | ConfigError::NoHomeDirectory
                | ConfigError::InClusterEnvMissing { .. }
        )
    }
}

fn paths_list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn names_list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn for_context(context: &Option<String>) -> String {
    context
        .as_deref()
        .map(|c| format!(" (of context `{c}`)"))
        .unwrap_or_default()
}

fn location(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

fn attempts_list(attempts: &[ConfigAttempt]) -> String {
    attempts
        .iter()
        .map(|a| format!("\n  - {}: {}", a.source, a.error))
        .collect()
}
