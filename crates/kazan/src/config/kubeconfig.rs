//! The kubeconfig file format, and how kubectl finds, merges and resolves it.
//!
//! Files: an explicit path, else every file of `KUBECONFIG` (missing ones skipped), else
//! `~/.kube/config`. Merging follows client-go: the first file to set `current-context` wins, and
//! a cluster, user or context name belongs wholly to the first file defining it. Relative paths
//! inside an entry are resolved against the folder of the file that defined the entry.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{
    AuthConfig, ClientIdentity, Config, ConfigEnv, ConfigError, EXEC_API_VERSIONS, ExecClusterInfo,
    ExecConfig, Impersonation, KubeconfigOptions,
};
use crate::tls::pem;

/// The name of the cluster extension passed to exec plugins as `spec.cluster.config`.
const EXEC_EXTENSION: &str = "client.authentication.k8s.io/exec";

/// One kubeconfig file (`kind: Config`). Unknown fields are ignored.
#[derive(Deserialize, Default)]
struct KubeconfigFile {
    #[serde(rename = "current-context")]
    current_context: Option<String>,
    clusters: Option<Vec<NamedCluster>>,
    users: Option<Vec<NamedUser>>,
    contexts: Option<Vec<NamedContext>>,
}

#[derive(Deserialize)]
struct NamedCluster {
    name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    cluster: Cluster,
}

#[derive(Deserialize)]
struct NamedUser {
    name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    user: User,
}

#[derive(Deserialize)]
struct NamedContext {
    name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    context: Context,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    server: Option<String>,
    certificate_authority: Option<String>,
    certificate_authority_data: Option<String>,
    insecure_skip_tls_verify: Option<bool>,
    tls_server_name: Option<String>,
    proxy_url: Option<String>,
    disable_compression: Option<bool>,
    extensions: Option<Vec<NamedExtension>>,
}

#[derive(Deserialize)]
struct NamedExtension {
    name: String,
    extension: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct User {
    client_certificate: Option<String>,
    client_certificate_data: Option<String>,
    client_key: Option<String>,
    client_key_data: Option<Secret>,
    token: Option<Secret>,
    #[serde(rename = "tokenFile")]
    token_file: Option<String>,
    #[serde(rename = "as")]
    impersonate: Option<String>,
    #[serde(rename = "as-uid")]
    impersonate_uid: Option<String>,
    #[serde(rename = "as-groups")]
    impersonate_groups: Option<Vec<String>>,
    #[serde(rename = "as-user-extra")]
    impersonate_extra: Option<BTreeMap<String, Vec<String>>>,
    username: Option<String>,
    password: Option<Secret>,
    auth_provider: Option<AuthProvider>,
    exec: Option<Exec>,
}

#[derive(Deserialize)]
struct AuthProvider {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Exec {
    command: Option<String>,
    args: Option<Vec<String>>,
    env: Option<Vec<ExecEnvVar>>,
    api_version: Option<String>,
    install_hint: Option<String>,
    provide_cluster_info: Option<bool>,
    interactive_mode: Option<String>,
}

#[derive(Deserialize)]
struct ExecEnvVar {
    name: String,
    value: Option<String>,
}

#[derive(Deserialize, Default)]
struct Context {
    cluster: Option<String>,
    user: Option<String>,
    namespace: Option<String>,
}

/// `null` (as kubectl writes for empty entries) read as the default value.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// A secret string field (token, password, key data), kept out of `Debug`.
struct Secret(SecretString);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|s| Secret(SecretString::from(s)))
    }
}

impl Secret {
    fn non_empty(&self) -> Option<&str> {
        Some(self.0.expose_secret()).filter(|s| !s.is_empty())
    }
}

/// A kubeconfig file that was read, with its absolute path.
struct Source {
    path: PathBuf,
    file: KubeconfigFile,
}

impl Source {
    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }
}

/// An entry and the file that defined it.
struct Defined<'a, T> {
    entry: &'a T,
    source: &'a Source,
}

impl<T> Clone for Defined<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Defined<'_, T> {}

/// The files merged with kubectl's first-wins rules.
struct Merged<'a> {
    current_context: Option<&'a str>,
    clusters: BTreeMap<&'a str, Defined<'a, Cluster>>,
    users: BTreeMap<&'a str, Defined<'a, User>>,
    contexts: BTreeMap<&'a str, Defined<'a, Context>>,
    /// "kubeconfig /a, /b", for messages.
    origin: String,
}

/// Describes where [`load`] looks without options, for [`Config::infer`](super::Config::infer)'s error.
pub(super) fn describe_default_source(env: &ConfigEnv) -> String {
    let listed = listed_files(env);
    if !listed.is_empty() {
        let list: Vec<String> = listed.iter().map(|p| p.display().to_string()).collect();
        format!("kubeconfig from KUBECONFIG ({})", list.join(", "))
    } else if let Some(home) = &env.home {
        format!("kubeconfig {}", home.join(".kube").join("config").display())
    } else {
        "kubeconfig ~/.kube/config".to_string()
    }
}

/// The non-empty, deduplicated entries of `KUBECONFIG`, in order.
fn listed_files(env: &ConfigEnv) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(list) = &env.kubeconfig {
        for path in std::env::split_paths(list) {
            if !path.as_os_str().is_empty() && !files.contains(&path) {
                files.push(path);
            }
        }
    }
    files
}

/// Loads the kubeconfig chosen by `options` and `env` and resolves it into a [`Config`].
pub(super) fn load(options: &KubeconfigOptions, env: &ConfigEnv) -> Result<Config, ConfigError> {
    let sources = read_sources(options, env)?;
    let merged = merge(&sources)?;
    resolve(&merged, options)
}

fn read_sources(options: &KubeconfigOptions, env: &ConfigEnv) -> Result<Vec<Source>, ConfigError> {
    if let Some(path) = &options.path {
        return Ok(vec![read_required(path)?]);
    }
    let listed = listed_files(env);
    if !listed.is_empty() {
        let mut sources = Vec::new();
        for path in &listed {
            match read_source(path)? {
                Some(source) => sources.push(source),
                None => {
                    tracing::debug!(path = %path.display(), "kubeconfig listed in KUBECONFIG does not exist; skipped")
                }
            }
        }
        if sources.is_empty() {
            return Err(ConfigError::NoKubeconfigInList { paths: listed });
        }
        return Ok(sources);
    }
    let home = env.home.as_ref().ok_or(ConfigError::NoHomeDirectory)?;
    Ok(vec![read_required(&home.join(".kube").join("config"))?])
}

fn read_required(path: &Path) -> Result<Source, ConfigError> {
    read_source(path)?.ok_or_else(|| ConfigError::KubeconfigNotFound {
        path: path.to_path_buf(),
    })
}

/// Reads and parses one kubeconfig; `None` if it does not exist.
fn read_source(path: &Path) -> Result<Option<Source>, ConfigError> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let bytes = match std::fs::read(&absolute) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::ReadFile {
                what: "kubeconfig".to_string(),
                path: absolute,
                source,
            });
        }
    };
    let file = parse(&absolute, &bytes)?;
    Ok(Some(Source { path: absolute, file }))
}

/// Parses kubeconfig YAML. Errors give the position and the kind of fault, never a snippet of the
/// file, which may hold tokens.
fn parse(path: &Path, bytes: &[u8]) -> Result<KubeconfigFile, ConfigError> {
    let malformed = |line, column, message: String| ConfigError::MalformedKubeconfig {
        path: path.to_path_buf(),
        line,
        column,
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes
            .get(..e.valid_up_to())
            .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64 + 1);
        malformed(line, None, "not UTF-8 text".to_string())
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Ok(KubeconfigFile::default());
    }
    let options = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let location = e.location();
        let message = e.render_with_options(serde_saphyr::render_options! {
            formatter: &serde_saphyr::UserMessageFormatter,
            snippets: serde_saphyr::SnippetMode::Off,
        });
        malformed(
            location.map(|l| l.line()),
            location.map(|l| l.column()),
            strip_location_suffix(&message).to_string(),
        )
    })
}

/// serde-saphyr ends messages with " at line L, column C"; the error carries those separately.
fn strip_location_suffix(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(", column ") => &message[..i],
        _ => message,
    }
}

fn merge(sources: &[Source]) -> Result<Merged<'_>, ConfigError> {
    let mut merged = Merged {
        current_context: None,
        clusters: BTreeMap::new(),
        users: BTreeMap::new(),
        contexts: BTreeMap::new(),
        origin: format!(
            "kubeconfig {}",
            sources
                .iter()
                .map(|s| s.path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    for source in sources {
        if merged.current_context.is_none() {
            merged.current_context = source.file.current_context.as_deref().filter(|c| !c.is_empty());
        }
        let clusters = source.file.clusters.iter().flatten();
        add_all(
            &mut merged.clusters,
            source,
            "cluster",
            clusters.map(|c| (&c.name, &c.cluster)),
        )?;
        let users = source.file.users.iter().flatten();
        add_all(
            &mut merged.users,
            source,
            "user",
            users.map(|u| (&u.name, &u.user)),
        )?;
        let contexts = source.file.contexts.iter().flatten();
        add_all(
            &mut merged.contexts,
            source,
            "context",
            contexts.map(|c| (&c.name, &c.context)),
        )?;
    }
    Ok(merged)
}

/// Adds one file's entries: a name already defined by an earlier file keeps its first
/// definition; a name repeated within one file is an error, as in client-go.
fn add_all<'a, T: 'a>(
    map: &mut BTreeMap<&'a str, Defined<'a, T>>,
    source: &'a Source,
    kind: &'static str,
    entries: impl Iterator<Item = (&'a String, &'a T)>,
) -> Result<(), ConfigError> {
    let mut seen_here: Vec<&str> = Vec::new();
    for (name, entry) in entries {
        if seen_here.contains(&name.as_str()) {
            return Err(ConfigError::DuplicateName {
                path: source.path.clone(),
                kind,
                name: name.clone(),
            });
        }
        seen_here.push(name);
        map.entry(name).or_insert(Defined { entry, source });
    }
    Ok(())
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn names<T>(map: &BTreeMap<&str, T>) -> Vec<String> {
    map.keys().map(|k| k.to_string()).collect()
}

/// Picks the context, cluster and user, and turns them into a [`Config`].
fn resolve(merged: &Merged<'_>, options: &KubeconfigOptions) -> Result<Config, ConfigError> {
    let origin = &merged.origin;
    let chosen = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
    let context_name = chosen(&options.context).or(merged.current_context.map(str::to_string));
    let context = match &context_name {
        Some(name) => {
            Some(
                merged
                    .contexts
                    .get(name.as_str())
                    .ok_or_else(|| ConfigError::ContextNotFound {
                        name: name.clone(),
                        available: names(&merged.contexts),
                        origin: origin.clone(),
                    })?,
            )
        }
        // Like `kubectl --cluster x`, a chosen cluster works without any context.
        None if options.cluster.is_some() => None,
        None => {
            return Err(ConfigError::NoCurrentContext {
                origin: origin.clone(),
            });
        }
    };
    let context_entry = context.map(|c| c.entry);

    let (cluster_name, cluster_via_context) = match chosen(&options.cluster) {
        Some(name) => (name, None),
        None => match context_entry.and_then(|c| non_empty(&c.cluster)) {
            Some(name) => (name.to_string(), context_name.clone()),
            None => {
                return Err(ConfigError::ContextWithoutCluster {
                    context: context_name.unwrap_or_default(),
                    origin: origin.clone(),
                });
            }
        },
    };
    let cluster =
        *merged
            .clusters
            .get(cluster_name.as_str())
            .ok_or_else(|| ConfigError::ClusterNotFound {
                name: cluster_name.clone(),
                context: cluster_via_context,
                available: names(&merged.clusters),
                origin: origin.clone(),
            })?;

    let (user_name, user_via_context) = match chosen(&options.user) {
        Some(name) => (Some(name), None),
        None => (
            context_entry.and_then(|c| non_empty(&c.user)).map(str::to_string),
            context_name.clone(),
        ),
    };
    let user = match &user_name {
        Some(name) => Some((
            name.as_str(),
            *merged
                .users
                .get(name.as_str())
                .ok_or_else(|| ConfigError::UserNotFound {
                    name: name.clone(),
                    context: user_via_context,
                    available: names(&merged.users),
                    origin: origin.clone(),
                })?,
        )),
        None => None,
    };

    let settings = resolve_cluster(&cluster_name, cluster)?;
    let mut config = Config::new(settings.url);
    config.root_certs_pem = settings.root_certs_pem;
    config.insecure_skip_tls_verify = settings.insecure;
    config.tls_server_name = settings.tls_server_name;
    config.proxy_url = settings.proxy_url;
    config.disable_compression = settings.exec_info.disable_compression;
    if let Some((name, user)) = user {
        let user = resolve_user(name, user, &settings.exec_info)?;
        config.auth = user.auth;
        config.client_identity = user.identity;
        config.impersonation = user.impersonation;
    }
    if let Some(namespace) = context_entry.and_then(|c| non_empty(&c.namespace)) {
        config.default_namespace = namespace.to_string();
    }
    config.origin = match &context_name {
        Some(name) => format!("{origin} (context `{name}`)"),
        None => format!("{origin} (cluster `{cluster_name}`)"),
    };
    Ok(config)
}

/// A cluster entry, checked and with its files read.
struct ClusterSettings {
    url: http::Uri,
    root_certs_pem: Option<Vec<u8>>,
    insecure: bool,
    tls_server_name: Option<String>,
    proxy_url: Option<http::Uri>,
    exec_info: ExecClusterInfo,
}

fn resolve_cluster(name: &str, cluster: Defined<'_, Cluster>) -> Result<ClusterSettings, ConfigError> {
    let c = cluster.entry;
    let entry = format!("cluster `{name}` (in {})", cluster.source.path.display());
    let server = non_empty(&c.server).ok_or_else(|| ConfigError::MissingServer {
        cluster: name.to_string(),
        path: cluster.source.path.clone(),
    })?;
    let url = parse_url(server, &["https", "http"]).map_err(|reason| ConfigError::InvalidUrl {
        field: "server",
        entry: entry.clone(),
        reason,
    })?;

    let root_certs_pem = if let Some(data) = non_empty(&c.certificate_authority_data) {
        let pem = pem::decode_base64(data).map_err(|reason| ConfigError::InvalidBase64 {
            field: "certificate-authority-data",
            entry: entry.clone(),
            reason,
        })?;
        pem::check_certificates(&pem).map_err(|reason| ConfigError::InvalidPem {
            what: format!("certificate-authority-data of {entry}"),
            reason,
        })?;
        Some(pem)
    } else if let Some(file) = non_empty(&c.certificate_authority) {
        let (path, pem) = read_referenced(cluster.source, file, "certificate-authority", &entry)?;
        pem::check_certificates(&pem).map_err(|reason| ConfigError::InvalidPem {
            what: format!("certificate-authority {} of {entry}", path.display()),
            reason,
        })?;
        Some(pem)
    } else {
        None
    };

    let insecure = c.insecure_skip_tls_verify.unwrap_or(false);
    if insecure && root_certs_pem.is_some() {
        return Err(ConfigError::InvalidEntry {
            entry,
            reason: "insecure-skip-tls-verify is set together with a certificate-authority; \
                     kubectl refuses this combination too, remove one of them"
                .to_string(),
        });
    }

    let proxy_url = non_empty(&c.proxy_url)
        .map(|p| parse_url(p, &["http", "https", "socks5", "socks5h"]))
        .transpose()
        .map_err(|reason| ConfigError::InvalidUrl {
            field: "proxy-url",
            entry: entry.clone(),
            reason,
        })?;

    let extension_config = c
        .extensions
        .iter()
        .flatten()
        .find(|e| e.name == EXEC_EXTENSION)
        .and_then(|e| e.extension.as_ref())
        .map(|v| v.to_string());
    let exec_info = ExecClusterInfo {
        server: server.to_string(),
        tls_server_name: non_empty(&c.tls_server_name).map(str::to_string),
        insecure_skip_tls_verify: insecure,
        certificate_authority_data: root_certs_pem.clone(),
        proxy_url: non_empty(&c.proxy_url).map(str::to_string),
        disable_compression: c.disable_compression.unwrap_or(false),
        config: extension_config,
    };
    Ok(ClusterSettings {
        url,
        root_certs_pem,
        insecure,
        tls_server_name: non_empty(&c.tls_server_name).map(str::to_string),
        proxy_url,
        exec_info,
    })
}

/// Parses a URL field; a server without a scheme is `https`, as in client-go. The reason never
/// repeats the value, which may hold credentials.
fn parse_url(value: &str, schemes: &[&str]) -> Result<http::Uri, String> {
    let with_scheme = if value.contains("://") {
        value.to_string()
    } else {
        format!("https://{value}")
    };
    let uri: http::Uri = with_scheme
        .parse()
        .map_err(|e: http::uri::InvalidUri| e.to_string())?;
    let scheme = uri.scheme_str().unwrap_or_default();
    if !schemes.contains(&scheme) {
        return Err(format!("scheme `{scheme}` is not one of {}", schemes.join(", ")));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("it has no host".to_string());
    }
    Ok(uri)
}

/// A path from a kubeconfig, resolved against the folder of the file defining it.
fn resolve_path(source: &Source, value: &str) -> PathBuf {
    let path = Path::new(value);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        source.dir().join(path)
    }
}

fn read_referenced(
    source: &Source,
    value: &str,
    field: &str,
    entry: &str,
) -> Result<(PathBuf, Vec<u8>), ConfigError> {
    let path = resolve_path(source, value);
    match std::fs::read(&path) {
        Ok(bytes) => Ok((path, bytes)),
        Err(e) => Err(ConfigError::ReadFile {
            what: format!("{field} of {entry}"),
            path,
            source: e,
        }),
    }
}

/// What a kubeconfig user entry resolves to.
struct UserSettings {
    auth: AuthConfig,
    identity: Option<ClientIdentity>,
    impersonation: Impersonation,
}

fn resolve_user(
    name: &str,
    user: Defined<'_, User>,
    cluster: &ExecClusterInfo,
) -> Result<UserSettings, ConfigError> {
    let u = user.entry;
    let entry = format!("user `{name}` (in {})", user.source.path.display());
    let invalid = |reason: &str| ConfigError::InvalidEntry {
        entry: entry.clone(),
        reason: reason.to_string(),
    };

    if let Some(provider) = &u.auth_provider {
        return Err(ConfigError::Unsupported {
            entry,
            feature: format!("auth-provider `{}`", provider.name.as_deref().unwrap_or("")),
            hint: Some(
                "configure an exec credential plugin instead (kubelogin for OIDC and Azure, \
                 gke-gcloud-auth-plugin for GKE)"
                    .to_string(),
            ),
        });
    }
    let identity = resolve_identity(u, user.source, &entry)?;

    let token_file = non_empty(&u.token_file).map(|f| resolve_path(user.source, f));
    let token = u.token.as_ref().and_then(Secret::non_empty);
    let password = u.password.as_ref().and_then(Secret::non_empty);
    let basic = non_empty(&u.username).is_some() || password.is_some();
    if (token.is_some() || token_file.is_some()) && basic {
        return Err(invalid(
            "both a token and basic auth (username/password) are set; kubectl allows only one",
        ));
    }
    let exec = match &u.exec {
        Some(exec) => Some(resolve_exec(exec, user.source, &entry, cluster)?),
        None => None,
    };

    // client-go's order: a token file (re-read as it rotates) over a static token, either over
    // basic auth (refused above), and explicit credentials over an exec plugin.
    let auth = if let Some(path) = token_file {
        AuthConfig::TokenFile(path)
    } else if let Some(token) = token {
        AuthConfig::Token(SecretString::from(token.to_string()))
    } else if basic {
        AuthConfig::Basic {
            username: non_empty(&u.username).unwrap_or_default().to_string(),
            password: SecretString::from(password.unwrap_or_default().to_string()),
        }
    } else if let Some(exec) = exec {
        AuthConfig::Exec(exec)
    } else {
        AuthConfig::None
    };
    let impersonation = resolve_impersonation(u, &entry)?;
    Ok(UserSettings {
        auth,
        identity,
        impersonation,
    })
}

/// `as`, `as-uid`, `as-groups` and `as-user-extra`, checked as headers can carry them. That a
/// uid, groups or extra need `as` is checked when the client is built, as kubectl checks it once
/// its `--as` flags are applied.
fn resolve_impersonation(u: &User, entry: &str) -> Result<Impersonation, ConfigError> {
    let mut impersonation = Impersonation::default();
    // Not trimmed: a name is sent as written, as client-go sends it.
    let set = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
    impersonation.user = set(&u.impersonate);
    impersonation.uid = set(&u.impersonate_uid);
    impersonation.groups = u.impersonate_groups.clone().unwrap_or_default();
    impersonation.extra = u.impersonate_extra.clone().unwrap_or_default();
    impersonation
        .check_values()
        .map_err(|source| ConfigError::Impersonation {
            entry: entry.to_string(),
            source,
        })?;
    Ok(impersonation)
}

fn resolve_identity(u: &User, source: &Source, entry: &str) -> Result<Option<ClientIdentity>, ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidEntry {
        entry: entry.to_string(),
        reason: reason.to_string(),
    };
    let cert_pem = match (
        non_empty(&u.client_certificate_data),
        non_empty(&u.client_certificate),
    ) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "client-certificate and client-certificate-data are both set",
            ));
        }
        (Some(data), None) => {
            let pem = pem::decode_base64(data).map_err(|reason| ConfigError::InvalidBase64 {
                field: "client-certificate-data",
                entry: entry.to_string(),
                reason,
            })?;
            pem::check_certificates(&pem).map_err(|reason| ConfigError::InvalidPem {
                what: format!("client-certificate-data of {entry}"),
                reason,
            })?;
            Some(pem)
        }
        (None, Some(file)) => {
            let (path, pem) = read_referenced(source, file, "client-certificate", entry)?;
            pem::check_certificates(&pem).map_err(|reason| ConfigError::InvalidPem {
                what: format!("client-certificate {} of {entry}", path.display()),
                reason,
            })?;
            Some(pem)
        }
        (None, None) => None,
    };
    let key_data = u.client_key_data.as_ref().and_then(Secret::non_empty);
    let key_pem = match (key_data, non_empty(&u.client_key)) {
        (Some(_), Some(_)) => return Err(invalid("client-key and client-key-data are both set")),
        (Some(data), None) => {
            let pem = pem::decode_base64(data).map_err(|reason| ConfigError::InvalidBase64 {
                field: "client-key-data",
                entry: entry.to_string(),
                reason,
            })?;
            pem::check_private_key(&pem).map_err(|reason| ConfigError::InvalidPem {
                what: format!("client-key-data of {entry}"),
                reason,
            })?;
            Some(pem)
        }
        (None, Some(file)) => {
            let (path, pem) = read_referenced(source, file, "client-key", entry)?;
            pem::check_private_key(&pem).map_err(|reason| ConfigError::InvalidPem {
                what: format!("client-key {} of {entry}", path.display()),
                reason,
            })?;
            Some(pem)
        }
        (None, None) => None,
    };
    match (cert_pem, key_pem) {
        (Some(cert_pem), Some(key_pem)) => Ok(Some(ClientIdentity {
            cert_pem,
            key_pem: key_pem.into(),
        })),
        (Some(_), None) => Err(invalid("a client certificate is set without client-key[-data]")),
        (None, Some(_)) => Err(invalid("a client key is set without client-certificate[-data]")),
        (None, None) => Ok(None),
    }
}

fn resolve_exec(
    exec: &Exec,
    source: &Source,
    entry: &str,
    cluster: &ExecClusterInfo,
) -> Result<ExecConfig, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidEntry {
        entry: entry.to_string(),
        reason,
    };
    let command = non_empty(&exec.command).ok_or_else(|| invalid("exec has no command".to_string()))?;
    let api_version =
        non_empty(&exec.api_version).ok_or_else(|| invalid("exec has no apiVersion".to_string()))?;
    if !EXEC_API_VERSIONS.contains(&api_version) {
        return Err(invalid(format!(
            "exec apiVersion `{api_version}` is not supported (use {})",
            EXEC_API_VERSIONS.join(" or ")
        )));
    }
    let interactive_mode = non_empty(&exec.interactive_mode).map(str::to_string);
    if let Some(mode) = &interactive_mode
        && !["Never", "IfAvailable", "Always"].contains(&mode.as_str())
    {
        return Err(invalid(format!(
            "exec interactiveMode `{mode}` is not one of Never, IfAvailable, Always"
        )));
    }
    // A command with a separator is a path, relative to the kubeconfig; a bare name is looked up
    // in PATH.
    let command = if command.chars().any(std::path::is_separator) {
        resolve_path(source, command).to_string_lossy().into_owned()
    } else {
        command.to_string()
    };
    let provide_cluster_info = exec.provide_cluster_info.unwrap_or(false);
    Ok(ExecConfig {
        api_version: api_version.to_string(),
        command,
        args: exec.args.clone().unwrap_or_default(),
        env: exec
            .env
            .iter()
            .flatten()
            .map(|v| (v.name.clone(), v.value.clone().unwrap_or_default()))
            .collect(),
        interactive_mode,
        provide_cluster_info,
        install_hint: non_empty(&exec.install_hint).map(str::to_string),
        cluster: provide_cluster_info.then(|| Box::new(cluster.clone())),
        timeout: None,
    })
}
