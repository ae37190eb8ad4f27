//! The flags every cluster command shares, as kubectl's: which kubeconfig and context, which
//! namespace, whom to impersonate, the request deadline and the log level; and the client and
//! scope they resolve to.

use std::{path::PathBuf, time::Duration};

use kazan::{
    ApiResource, Client, Config, Request,
    config::{Impersonation, KubeconfigOptions},
};

use crate::{error::CliError, logging::LogLevel};

/// Flags shared by `kazan watch` and `kazan get`.
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    /// The kubeconfig file [default: $KUBECONFIG, else ~/.kube/config, else the in-cluster
    /// service account].
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use [default: current-context].
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// The namespace [default: the context's, else "default"].
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Every namespace (the NAMESPACE column is added); overrides --namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// The user to act as (impersonation), overriding the kubeconfig's `as`.
    #[arg(long = "as", value_name = "USER")]
    pub as_user: Option<String>,

    /// A group to act as a member of; repeat for several. Overrides the kubeconfig's `as-groups`;
    /// needs a user to act as (--as, or the kubeconfig's `as`).
    #[arg(long = "as-group", value_name = "GROUP")]
    pub as_groups: Vec<String>,

    /// The uid of the user to act as, overriding the kubeconfig's `as-uid`.
    #[arg(long = "as-uid", value_name = "UID")]
    pub as_uid: Option<String>,

    /// The server URL, overriding the kubeconfig's (as kubectl's --server); with no kubeconfig
    /// found, the flags alone are used.
    #[arg(short = 's', long, value_name = "URL")]
    pub server: Option<String>,

    /// A bearer token, overriding the kubeconfig user's credentials (as kubectl's --token).
    #[arg(long, value_name = "TOKEN", env = "KAZAN_TOKEN", hide_env_values = true)]
    pub token: Option<Token>,

    /// Do not verify the server's certificate (its CA is then ignored too, as in kubectl). Unsafe:
    /// anyone on the path can read and change the traffic.
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,

    /// Deadline of each request other than the watch stream itself (e.g. 10s, 1m; 0 = none)
    /// [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,

    /// What to log on stderr besides the final error: `warn` adds the watcher's retries and
    /// skipped events, `info` also its lists, watches and resumes, `debug` every request.
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = LogLevel::Error)]
    pub log_level: LogLevel,
}

/// A bearer token from the command line; never in `Debug` output.
#[derive(Clone)]
pub struct Token(String);

impl std::str::FromStr for Token {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Token(s.to_string()))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl ClusterArgs {
    /// `--as`, `--as-uid` and `--as-group` over the configuration's impersonation, field by field
    /// as kubectl overrides a kubeconfig user (an empty flag value overrides nothing).
    fn impersonate(&self, impersonation: &mut Impersonation) {
        let given = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        if let Some(user) = given(&self.as_user) {
            impersonation.user = Some(user);
        }
        if let Some(uid) = given(&self.as_uid) {
            impersonation.uid = Some(uid);
        }
        if !self.as_groups.is_empty() {
            impersonation.groups = self.as_groups.clone();
        }
    }
}

/// A client and where the command looks.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The client.
    pub client: Client,
    /// The namespace from `-n`, else the context's.
    pub namespace: String,
    /// `-A`.
    pub all_namespaces: bool,
}

impl Cluster {
    /// Loads the configuration as kubectl does and builds a client.
    ///
    /// With `--kubeconfig` or `--context`, only the kubeconfig is read (its errors name the file
    /// and context); without, `KUBECONFIG` or `~/.kube/config` is tried, then in-cluster.
    pub fn connect(args: &ClusterArgs) -> Result<Cluster, CliError> {
        let server = match &args.server {
            Some(url) => Some(
                url.parse::<http::Uri>()
                    .map_err(|e| CliError::Usage(format!("--server {url:?} is not a URL: {e}")))?,
            ),
            None => None,
        };
        let loaded = if args.kubeconfig.is_some() || args.context.is_some() {
            let mut options = KubeconfigOptions::default();
            options.path = args.kubeconfig.clone();
            options.context = args.context.clone();
            Config::from_kubeconfig(&options)
        } else {
            Config::infer()
        };
        let mut config = match (loaded, &server) {
            (Ok(config), _) => config,
            // No configuration to be found, but the flags say where to go (as kubectl).
            (Err(_), Some(url)) if args.kubeconfig.is_none() && args.context.is_none() => {
                let mut config = Config::new(url.clone());
                config.origin = "the command-line flags".to_string();
                config
            }
            (Err(e), _) => return Err(e.into()),
        };
        if let Some(url) = server {
            config.cluster_url = url;
        }
        if let Some(token) = &args.token {
            config.auth = kazan::config::AuthConfig::Token(secrecy::SecretString::from(token.0.clone()));
        }
        if args.insecure_skip_tls_verify {
            config.insecure_skip_tls_verify = true;
            config.root_certs_pem = None;
        }
        if let Some(timeout) = args.request_timeout {
            config.request_timeout = timeout;
        }
        args.impersonate(&mut config.impersonation);
        let origin = config.origin.clone();
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        // A configuration the client refuses (impersonation without a user) already names its
        // origin.
        let client = Client::new(config).map_err(|source| match source {
            kazan::Error::Config(config) => CliError::Config(Box::new(config)),
            source => CliError::Client {
                origin,
                source: Box::new(source),
            },
        })?;
        Ok(Cluster {
            client,
            namespace,
            all_namespaces: args.all_namespaces,
        })
    }

    /// Where a request for `resource` looks: the namespace, all namespaces, or the cluster scope.
    pub fn scope(&self, resource: &ApiResource) -> Scope {
        if !resource.namespaced {
            Scope::Cluster
        } else if self.all_namespaces {
            Scope::AllNamespaces
        } else {
            Scope::Namespace(self.namespace.clone())
        }
    }
}

/// Where a list or watch looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One namespace.
    Namespace(String),
    /// Every namespace.
    AllNamespaces,
    /// A cluster-scoped resource.
    Cluster,
}

impl Scope {
    /// Narrows a request to the scope.
    pub fn apply<T>(&self, request: Request<T>) -> Request<T> {
        match self {
            Scope::Namespace(ns) => request.namespace(ns),
            Scope::AllNamespaces | Scope::Cluster => request.all_namespaces(),
        }
    }

    /// `configmaps in namespace "w"`, `pods in all namespaces`, `namespaces`.
    pub fn describe(&self, plural: &str) -> String {
        match self {
            Scope::Namespace(ns) => format!("{plural} in namespace \"{ns}\""),
            Scope::AllNamespaces => format!("{plural} in all namespaces"),
            Scope::Cluster => plural.to_string(),
        }
    }

    /// Whether objects of several namespaces are shown (the NAMESPACE column).
    pub fn shows_namespaces(&self) -> bool {
        matches!(self, Scope::AllNamespaces)
    }
}

/// `500ms`, `10s`, `2m`, `1h`, or a number of seconds; `0` means no deadline.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 10s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {text:?}: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_kubectl_writes_them() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
    }

    #[test]
    fn scopes_narrow_requests_and_describe_themselves() {
        let pods = ApiResource::new("", "v1", "Pod", "pods", true);
        let in_w = Scope::Namespace("w".into());
        assert_eq!(
            in_w.apply(Request::list_dynamic(&pods)).path(),
            "/api/v1/namespaces/w/pods"
        );
        assert_eq!(
            Scope::AllNamespaces.apply(Request::list_dynamic(&pods)).path(),
            "/api/v1/pods"
        );
        assert_eq!(in_w.describe("pods"), "pods in namespace \"w\"");
        assert_eq!(Scope::Cluster.describe("namespaces"), "namespaces");
    }
}
