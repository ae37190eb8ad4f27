//! Configuration sources, resolved as kubectl resolves them: kubeconfig files (explicit path,
//! `KUBECONFIG` list merged first-wins, `~/.kube/config`), in-cluster, and `Config::infer`.
//! The environment is injected (`ConfigEnv`), never mutated.

use std::{
    error::Error,
    ffi::OsString,
    path::{Path, PathBuf},
};

use kazan::{
    Client, Config,
    auth::Authenticator,
    config::{AuthConfig, ConfigEnv, ConfigError, ImpersonationError, KubeconfigOptions},
};
use secrecy::ExposeSecret;
use support::impersonation::{as_jane, jane_headers};

use crate::support;
use support::{b64, pki};

type TestResult = Result<(), Box<dyn Error>>;

/// Writes `content` to `dir/name`, creating folders, and returns the path.
fn write(dir: &Path, name: &str, content: &str) -> Result<PathBuf, Box<dyn Error>> {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, content)?;
    Ok(path)
}

/// An environment with no kubeconfig, no home, not in a pod.
fn empty_env(dir: &Path) -> ConfigEnv {
    ConfigEnv::empty(dir.join("no-service-account"))
}

fn env_with_list(dir: &Path, files: &[&Path]) -> Result<ConfigEnv, Box<dyn Error>> {
    let mut env = empty_env(dir);
    env.kubeconfig = Some(std::env::join_paths(files)?);
    Ok(env)
}

/// A one-cluster, one-user kubeconfig with `user_body` indented under `user:`.
fn simple_kubeconfig(server: &str, user_body: &str) -> String {
    let user_body: String = user_body.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: main\n\
         clusters:\n- name: c\n  cluster:\n    server: {server}\n\
         contexts:\n- name: main\n  context:\n    cluster: c\n    user: u\n\
         users:\n- name: u\n  user:\n{user_body}"
    )
}

fn load(path: &Path) -> Result<Config, ConfigError> {
    Config::from_kubeconfig(&KubeconfigOptions::path(path))
}

fn token_of(config: &Config) -> Option<String> {
    match &config.auth {
        AuthConfig::Token(token) => Some(token.expose_secret().to_string()),
        _ => None,
    }
}

// --- Which files: explicit path, KUBECONFIG, ~/.kube/config ----------------------------------

const FIRST: &str = "\
clusters:
- name: shared
  cluster:
    server: https://first.example:6443
contexts:
- name: ctx-first
  context: {cluster: shared, user: shared-user, namespace: first-ns}
users:
- name: shared-user
  user:
    token: token-from-first
";

/// The second file's `shared-user` also has a client certificate: since the first file's
/// definition wins whole, it must not be merged in.
fn second() -> String {
    format!(
        "\
current-context: ctx-second
clusters:
- name: shared
  cluster:
    server: https://second.example:6443
- name: only-second
  cluster:
    server: https://only-second.example
contexts:
- name: ctx-second
  context: {{cluster: only-second, user: shared-user}}
- name: ctx-first
  context: {{cluster: only-second, user: second-user}}
users:
- name: shared-user
  user:
    token: token-from-second
    client-certificate: {}
    client-key: {}
- name: second-user
  user:
    token: token-of-second-user
",
        pki::path("client-ec.crt").display(),
        pki::path("client-ec.key").display()
    )
}

const THIRD: &str = "\
current-context: ctx-first
";

#[test]
fn kubeconfig_list_merges_with_the_first_file_to_define_a_name_winning() -> TestResult {
    let dir = tempfile::tempdir()?;
    let first = write(dir.path(), "a/first", FIRST)?;
    let second = write(dir.path(), "b/second", &second())?;
    let env = env_with_list(dir.path(), &[&first, &second])?;

    // The current context comes from the second file (the first sets none); it names a cluster
    // only the second defines and a user both define: the first file's user is used, whole.
    let config = Config::from_kubeconfig_in(&KubeconfigOptions::default(), &env)?;
    assert_eq!(config.cluster_url.host(), Some("only-second.example"));
    assert_eq!(token_of(&config).as_deref(), Some("token-from-first"));
    assert!(config.client_identity.is_none());
    assert_eq!(config.default_namespace, "default");

    // `ctx-first` is defined by both files: the first file's context wins, with its cluster
    // `shared` also taken from the first file.
    let config = Config::from_kubeconfig_in(&KubeconfigOptions::default().with_context("ctx-first"), &env)?;
    assert_eq!(config.cluster_url.host(), Some("first.example"));
    assert_eq!(token_of(&config).as_deref(), Some("token-from-first"));
    assert_eq!(config.default_namespace, "first-ns");
    Ok(())
}

#[test]
fn kubeconfig_list_takes_current_context_from_the_first_file_setting_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let first = write(dir.path(), "first", FIRST)?;
    let second = write(dir.path(), "second", &second())?;
    let third = write(dir.path(), "third", THIRD)?;

    let env = env_with_list(dir.path(), &[&third, &first, &second])?;
    let config = Config::from_kubeconfig_in(&KubeconfigOptions::default(), &env)?;
    assert!(config.origin.contains("context `ctx-first`"), "{}", config.origin);
    assert_eq!(config.cluster_url.host(), Some("first.example"));

    let env = env_with_list(dir.path(), &[&first, &second, &third])?;
    let config = Config::from_kubeconfig_in(&KubeconfigOptions::default(), &env)?;
    assert!(
        config.origin.contains("context `ctx-second`"),
        "{}",
        config.origin
    );
    Ok(())
}

#[test]
fn kubeconfig_list_skips_missing_files_and_empty_entries() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("missing");
    let second = write(dir.path(), "second", &second())?;
    let mut env = empty_env(dir.path());
    env.kubeconfig = Some(std::env::join_paths([
        Path::new(""),
        &missing,
        Path::new(""),
        &second,
    ])?);
    let config = Config::from_kubeconfig_in(&KubeconfigOptions::default(), &env)?;
    assert_eq!(config.cluster_url.host(), Some("only-second.example"));
    assert_eq!(token_of(&config).as_deref(), Some("token-from-second"));
    assert!(config.client_identity.is_some());
    Ok(())
}

#[test]
fn kubeconfig_list_with_no_existing_file_names_the_files() -> TestResult {
    let dir = tempfile::tempdir()?;
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let env = env_with_list(dir.path(), &[&a, &b])?;
    let err = Config::from_kubeconfig_in(&KubeconfigOptions::default(), &env)
        .err()
        .ok_or("expected an error")?;
    assert!(
        matches!(&err, ConfigError::NoKubeconfigInList { paths } if paths == &vec![a.clone(), b.clone()])
    );
    let message = err.to_string();
    assert!(message.contains(&a.display().to_string()) && message.contains(&b.display().to_string()));
    Ok(())
}

#[test]
fn kubeconfig_list_with_a_malformed_file_is_an_error_naming_the_file_and_position() -> TestResult {
    let dir = tempfile::tempdir()?;
    let good = write(dir.path(), "good", FIRST)?;
    let bad = write(
        dir.path(),
        "bad",
        "current-context: x\nusers:\n- name: u\n  user: [\n",
    )?;
    let env = env_with_list(dir.path(), &[&good, &bad])?;
    let err = Config::from_kubeconfig_in(&KubeconfigOptions::default(), &env)
        .err()
        .ok_or("expected an error")?;
    match &err {
        ConfigError::MalformedKubeconfig { path, line, .. } => {
            assert_eq!(path, &bad);
            assert!(line.is_some_and(|l| l >= 4), "line {line:?}");
        }
        other => return Err(format!("unexpected error {other:?}").into()),
    }
    assert!(err.to_string().contains(&bad.display().to_string()), "{err}");
    Ok(())
}

#[test]
fn kubeconfig_that_cannot_be_read_is_an_error_naming_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let folder = dir.path().join("a-folder");
    std::fs::create_dir(&folder)?;
    let err = load(&folder).err().ok_or("expected an error")?;
    assert!(
        matches!(&err, ConfigError::ReadFile { path, .. } if path == &folder),
        "{err:?}"
    );
    assert!(err.to_string().contains("a-folder"), "{err}");
    Ok(())
}

#[test]
fn explicit_path_beats_kubeconfig_env() -> TestResult {
    let dir = tempfile::tempdir()?;
    let listed = write(dir.path(), "listed", &second())?;
    let explicit = write(
        dir.path(),
        "explicit",
        &simple_kubeconfig("https://explicit.example", "token: t"),
    )?;
    let env = env_with_list(dir.path(), &[&listed])?;
    let config = Config::from_kubeconfig_in(&KubeconfigOptions::path(&explicit), &env)?;
    assert_eq!(config.cluster_url.host(), Some("explicit.example"));
    assert!(config.origin.contains("explicit"), "{}", config.origin);
    Ok(())
}

#[test]
fn explicit_path_that_does_not_exist_is_an_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("nope");
    let err = load(&missing).err().ok_or("expected an error")?;
    assert!(matches!(&err, ConfigError::KubeconfigNotFound { path } if path == &missing));
    Ok(())
}

#[test]
fn home_kube_config_is_the_fallback_without_kubeconfig_env() -> TestResult {
    let dir = tempfile::tempdir()?;
    write(
        dir.path(),
        "home/.kube/config",
        &simple_kubeconfig("https://home.example", "token: t"),
    )?;
    let mut env = empty_env(dir.path());
    env.home = Some(dir.path().join("home"));
    // An empty KUBECONFIG counts as unset, as in kubectl.
    env.kubeconfig = Some(OsString::new());
    let config = Config::from_kubeconfig_in(&KubeconfigOptions::default(), &env)?;
    assert_eq!(config.cluster_url.host(), Some("home.example"));

    env.home = Some(dir.path().join("elsewhere"));
    let err = Config::from_kubeconfig_in(&KubeconfigOptions::default(), &env)
        .err()
        .ok_or("expected an error")?;
    assert!(
        matches!(&err, ConfigError::KubeconfigNotFound { path } if path.ends_with("elsewhere/.kube/config")),
        "{err:?}"
    );
    Ok(())
}

// --- Which context, cluster and user -------------------------------------------------------

const TWO_CONTEXTS: &str = "\
current-context: dev
clusters:
- name: dev-cluster
  cluster: {server: https://dev.example}
- name: prod-cluster
  cluster: {server: https://prod.example:8443/prefix}
contexts:
- name: dev
  context: {cluster: dev-cluster, user: dev-user}
- name: prod
  context: {cluster: prod-cluster, user: prod-user, namespace: payments}
users:
- name: dev-user
  user: {token: dev-token}
- name: prod-user
  user: {token: prod-token}
";

#[test]
fn current_context_is_used_with_the_default_namespace() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write(dir.path(), "config", TWO_CONTEXTS)?;
    let config = load(&path)?;
    assert_eq!(config.cluster_url.to_string(), "https://dev.example/");
    assert_eq!(token_of(&config).as_deref(), Some("dev-token"));
    assert_eq!(config.default_namespace, "default");
    Ok(())
}

#[test]
fn chosen_context_brings_its_cluster_user_and_namespace() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write(dir.path(), "config", TWO_CONTEXTS)?;
    let config = Config::from_kubeconfig(&KubeconfigOptions::path(&path).with_context("prod"))?;
    assert_eq!(config.cluster_url.to_string(), "https://prod.example:8443/prefix");
    assert_eq!(token_of(&config).as_deref(), Some("prod-token"));
    assert_eq!(config.default_namespace, "payments");
    Ok(())
}

#[test]
fn chosen_cluster_and_user_override_the_contexts() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write(dir.path(), "config", TWO_CONTEXTS)?;
    let options = KubeconfigOptions::path(&path)
        .with_context("prod")
        .with_cluster("dev-cluster")
        .with_user("dev-user");
    let config = Config::from_kubeconfig(&options)?;
    assert_eq!(config.cluster_url.host(), Some("dev.example"));
    assert_eq!(token_of(&config).as_deref(), Some("dev-token"));
    assert_eq!(config.default_namespace, "payments");
    Ok(())
}

#[test]
fn missing_context_is_an_error_naming_it_and_listing_the_existing_ones() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write(dir.path(), "config", TWO_CONTEXTS)?;
    let err = Config::from_kubeconfig(&KubeconfigOptions::path(&path).with_context("staging"))
        .err()
        .ok_or("expected an error")?;
    match &err {
        ConfigError::ContextNotFound { name, available, .. } => {
            assert_eq!(name, "staging");
            assert_eq!(available, &["dev".to_string(), "prod".to_string()]);
        }
        other => return Err(format!("unexpected error {other:?}").into()),
    }
    let message = err.to_string();
    assert!(
        message.contains("`staging`") && message.contains("`dev`, `prod`"),
        "{message}"
    );
    assert!(message.contains(&path.display().to_string()), "{message}");
    Ok(())
}

#[test]
fn missing_cluster_or_user_is_an_error_naming_it_and_its_context() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write(
        dir.path(),
        "config",
        "current-context: broken\n\
         clusters:\n- name: real\n  cluster: {server: https://x}\n\
         users:\n- name: someone\n  user: {token: t}\n\
         contexts:\n- name: broken\n  context: {cluster: ghost, user: someone}\n\
         - name: no-user\n  context: {cluster: real, user: phantom}\n",
    )?;
    let err = load(&path).err().ok_or("expected an error")?;
    assert!(
        matches!(&err, ConfigError::ClusterNotFound { name, context: Some(c), available, .. }
            if name == "ghost" && c == "broken" && available == &["real".to_string()]),
        "{err:?}"
    );
    assert!(err.to_string().contains("`ghost`"), "{err}");

    let err = Config::from_kubeconfig(&KubeconfigOptions::path(&path).with_context("no-user"))
        .err()
        .ok_or("expected an error")?;
    assert!(
        matches!(&err, ConfigError::UserNotFound { name, available, .. }
            if name == "phantom" && available == &["someone".to_string()]),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn no_current_context_is_an_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write(
        dir.path(),
        "config",
        "clusters:\n- name: c\n  cluster: {server: https://x}\n",
    )?;
    let err = load(&path).err().ok_or("expected an error")?;
    assert!(matches!(err, ConfigError::NoCurrentContext { .. }), "{err:?}");
    Ok(())
}

#[test]
fn cluster_without_server_is_an_error_naming_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write(dir.path(), "config", &simple_kubeconfig("", "token: t"))?;
    let err = load(&path).err().ok_or("expected an error")?;
    assert!(
        matches!(&err, ConfigError::MissingServer { cluster, path: p } if cluster == "c" && p == &path),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn a_name_defined_twice_in_one_file_is_an_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write(
        dir.path(),
        "config",
        "current-context: x\nusers:\n- name: twin\n  user: {token: a}\n- name: twin\n  user: {token: b}\n",
    )?;
    let err = load(&path).err().ok_or("expected an error")?;
    assert!(
        matches!(&err, ConfigError::DuplicateName { kind: "user", name, .. } if name == "twin"),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn unknown_fields_and_empty_entries_are_accepted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write(
        dir.path(),
        "config",
        "apiVersion: v1\nkind: Config\npreferences: {colors: true}\ncurrent-context: main\n\
         clusters:\n- name: c\n  cluster:\n    server: https://x\n    some-future-field: [1, 2]\n    \
         extensions:\n    - name: client.authentication.k8s.io/exec\n      extension: {audience: kazan}\n\
         contexts:\n- name: main\n  context: {cluster: c, user: anonymous}\n  extra: 1\n\
         users:\n- name: anonymous\n  user: null\n",
    )?;
    let config = load(&path)?;
    assert!(matches!(config.auth, AuthConfig::None));
    assert!(config.client_identity.is_none());
    Ok(())
}

// --- Cluster fields -------------------------------------------------------------------------

#[test]
fn relative_paths_resolve_against_the_folder_of_the_defining_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ca = pki::text("ca.crt")?;
    write(dir.path(), "one/certs/ca.crt", &ca)?;
    write(dir.path(), "two/id/client.crt", &pki::text("client-ec.crt")?)?;
    write(dir.path(), "two/id/client.key", &pki::text("client-ec.key")?)?;
    let one = write(
        dir.path(),
        "one/config",
        "current-context: main\n\
         clusters:\n- name: c\n  cluster:\n    server: https://x\n    certificate-authority: certs/ca.crt\n\
         contexts:\n- name: main\n  context: {cluster: c, user: cert-user}\n",
    )?;
    let two = write(
        dir.path(),
        "two/config",
        "users:\n- name: cert-user\n  user:\n    client-certificate: id/client.crt\n    client-key: ./id/client.key\n\
         - name: file-user\n  user:\n    tokenFile: secrets/token\n\
         - name: exec-user\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      \
         command: ./bin/plugin\n      interactiveMode: Never\n\
         - name: path-exec-user\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      \
         command: plugin-in-path\n",
    )?;
    let env = env_with_list(dir.path(), &[&one, &two])?;

    let config = Config::from_kubeconfig_in(&KubeconfigOptions::default(), &env)?;
    assert_eq!(config.root_certs_pem.as_deref(), Some(ca.as_bytes()));
    let identity = config.client_identity.ok_or("expected a client identity")?;
    assert_eq!(identity.cert_pem, pki::text("client-ec.crt")?.as_bytes());
    assert_eq!(
        identity.key_pem.expose_secret(),
        pki::text("client-ec.key")?.as_bytes()
    );

    let with_user =
        |user: &str| Config::from_kubeconfig_in(&KubeconfigOptions::default().with_user(user), &env);
    match with_user("file-user")?.auth {
        AuthConfig::TokenFile(path) => assert_eq!(path, dir.path().join("two/secrets/token")),
        other => return Err(format!("unexpected auth {other:?}").into()),
    }
    match with_user("exec-user")?.auth {
        AuthConfig::Exec(exec) => {
            assert_eq!(Path::new(&exec.command), dir.path().join("two/./bin/plugin"))
        }
        other => return Err(format!("unexpected auth {other:?}").into()),
    }
    match with_user("path-exec-user")?.auth {
        AuthConfig::Exec(exec) => assert_eq!(exec.command, "plugin-in-path"),
        other => return Err(format!("unexpected auth {other:?}").into()),
    }
    Ok(())
}

#[test]
fn certificate_authority_data_keeps_every_certificate_of_the_bundle() -> TestResult {
    let dir = tempfile::tempdir()?;
    let bundle = format!("{}{}", pki::text("ca.crt")?, pki::text("client-rsa.crt")?);
    // Line-wrapped base64, as some tools write it.
    let encoded = b64(bundle.as_bytes());
    let wrapped: Vec<String> = encoded
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let path = write(
        dir.path(),
        "config",
        &format!(
            "current-context: m\ncontexts:\n- name: m\n  context: {{cluster: c}}\n\
             clusters:\n- name: c\n  cluster:\n    server: https://x\n    certificate-authority-data: |\n      {}\n",
            wrapped.join("\n      ")
        ),
    )?;
    let config = load(&path)?;
    let pem = config.root_certs_pem.ok_or("expected root certificates")?;
    assert_eq!(pem, bundle.as_bytes());
    assert_eq!(String::from_utf8(pem)?.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(!config.insecure_skip_tls_verify);
    Ok(())
}

#[test]
fn certificate_authority_file_that_is_not_pem_names_the_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ca = write(dir.path(), "ca.crt", "not a certificate")?;
    let path = write(
        dir.path(),
        "config",
        &format!(
            "current-context: m\ncontexts:\n- name: m\n  context: {{cluster: c}}\n\
             clusters:\n- name: c\n  cluster:\n    server: https://x\n    certificate-authority: {}\n",
            ca.display()
        ),
    )?;
    let err = load(&path).err().ok_or("expected an error")?;
    assert!(matches!(err, ConfigError::InvalidPem { .. }), "{err:?}");
    assert!(err.to_string().contains(&ca.display().to_string()), "{err}");

    std::fs::remove_file(&ca)?;
    let err = load(&path).err().ok_or("expected an error")?;
    assert!(
        matches!(&err, ConfigError::ReadFile { path, .. } if path == &ca),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("certificate-authority of cluster `c`"),
        "{err}"
    );
    Ok(())
}

#[test]
fn insecure_flag_tls_server_name_proxy_url_and_compression_are_carried() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write(
        dir.path(),
        "config",
        "current-context: m\ncontexts:\n- name: m\n  context: {cluster: c}\n\
         clusters:\n- name: c\n  cluster:\n    server: 10.0.0.1:6443\n    insecure-skip-tls-verify: true\n    \
         tls-server-name: kubernetes.internal\n    proxy-url: http://proxy.example:3128\n    \
         disable-compression: true\n",
    )?;
    let config = load(&path)?;
    assert!(config.disable_compression);
    // A server without a scheme is https, as in client-go.
    assert_eq!(config.cluster_url.to_string(), "https://10.0.0.1:6443/");
    assert!(config.insecure_skip_tls_verify);
    assert_eq!(config.tls_server_name.as_deref(), Some("kubernetes.internal"));
    assert_eq!(
        config.proxy_url.map(|u| u.to_string()).as_deref(),
        Some("http://proxy.example:3128/")
    );
    Ok(())
}

#[test]
fn tls_verification_is_on_unless_the_kubeconfig_turns_it_off() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write(dir.path(), "config", &simple_kubeconfig("https://x", "token: t"))?;
    assert!(!load(&path)?.insecure_skip_tls_verify);
    Ok(())
}

#[test]
fn insecure_flag_with_a_certificate_authority_is_refused_as_kubectl_does() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write(
        dir.path(),
        "config",
        &format!(
            "current-context: m\ncontexts:\n- name: m\n  context: {{cluster: c}}\n\
             clusters:\n- name: c\n  cluster:\n    server: https://x\n    insecure-skip-tls-verify: true\n    \
             certificate-authority-data: {}\n",
            b64(pki::text("ca.crt")?.as_bytes())
        ),
    )?;
    let err = load(&path).err().ok_or("expected an error")?;
    assert!(matches!(err, ConfigError::InvalidEntry { .. }), "{err:?}");
    assert!(err.to_string().contains("insecure-skip-tls-verify"), "{err}");
    Ok(())
}

#[test]
fn bad_base64_in_a_data_field_names_the_field() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write(
        dir.path(),
        "config",
        &simple_kubeconfig(
            "https://x",
            &format!(
                "client-certificate-data: {}\nclient-key-data: not*base64",
                b64(pki::text("client-ec.crt")?.as_bytes())
            ),
        ),
    )?;
    let err = load(&path).err().ok_or("expected an error")?;
    assert!(
        matches!(
            &err,
            ConfigError::InvalidBase64 {
                field: "client-key-data",
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("client-key-data") && message.contains("user `u`"),
        "{message}"
    );
    Ok(())
}

// --- User fields ----------------------------------------------------------------------------

#[test]
fn client_certificates_and_keys_of_every_format_load_from_files_and_data() -> TestResult {
    let dir = tempfile::tempdir()?;
    for kind in ["rsa", "ec", "pkcs8"] {
        let cert = pki::text(&format!("client-{kind}.crt"))?;
        let key = pki::text(&format!("client-{kind}.key"))?;
        let from_files = write(
            dir.path(),
            &format!("{kind}-files"),
            &simple_kubeconfig(
                "https://x",
                &format!(
                    "client-certificate: {}\nclient-key: {}",
                    pki::path(&format!("client-{kind}.crt")).display(),
                    pki::path(&format!("client-{kind}.key")).display()
                ),
            ),
        )?;
        let from_data = write(
            dir.path(),
            &format!("{kind}-data"),
            &simple_kubeconfig(
                "https://x",
                &format!(
                    "client-certificate-data: {}\nclient-key-data: {}",
                    b64(cert.as_bytes()),
                    b64(key.as_bytes())
                ),
            ),
        )?;
        for path in [from_files, from_data] {
            let config = load(&path)?;
            let identity = config.client_identity.ok_or("expected a client identity")?;
            assert_eq!(identity.cert_pem, cert.as_bytes(), "{kind}");
            assert_eq!(identity.key_pem.expose_secret(), key.as_bytes(), "{kind}");
            assert!(matches!(config.auth, AuthConfig::None));
        }
    }
    Ok(())
}

#[test]
fn client_key_without_a_private_key_block_names_the_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    // A certificate where the key should be: a classic mix-up.
    let path = write(
        dir.path(),
        "config",
        &simple_kubeconfig(
            "https://x",
            &format!(
                "client-certificate: {}\nclient-key: {}",
                pki::path("client-ec.crt").display(),
                pki::path("client-ec.crt").display()
            ),
        ),
    )?;
    let err = load(&path).err().ok_or("expected an error")?;
    assert!(matches!(err, ConfigError::InvalidPem { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("client-key")
            && message.contains("client-ec.crt")
            && message.contains("private key"),
        "{message}"
    );
    Ok(())
}

#[test]
fn client_certificate_without_key_is_an_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write(
        dir.path(),
        "config",
        &simple_kubeconfig(
            "https://x",
            &format!("client-certificate: {}", pki::path("client-ec.crt").display()),
        ),
    )?;
    let err = load(&path).err().ok_or("expected an error")?;
    assert!(matches!(err, ConfigError::InvalidEntry { .. }), "{err:?}");
    assert!(err.to_string().contains("client-key"), "{err}");
    Ok(())
}

#[test]
fn token_token_file_and_basic_auth_are_read() -> TestResult {
    let dir = tempfile::tempdir()?;
    let token = write(dir.path(), "token", &simple_kubeconfig("https://x", "token: abc"))?;
    assert_eq!(token_of(&load(&token)?).as_deref(), Some("abc"));

    // A token file wins over an inline token, as in client-go.
    let token_file = write(
        dir.path(),
        "token-file",
        &simple_kubeconfig("https://x", "token: inline\ntokenFile: /run/token"),
    )?;
    match load(&token_file)?.auth {
        AuthConfig::TokenFile(path) => assert_eq!(path, Path::new("/run/token")),
        other => return Err(format!("unexpected auth {other:?}").into()),
    }

    let basic = write(
        dir.path(),
        "basic",
        &simple_kubeconfig("https://x", "username: admin\npassword: hunter2"),
    )?;
    match load(&basic)?.auth {
        AuthConfig::Basic { username, password } => {
            assert_eq!(username, "admin");
            assert_eq!(password.expose_secret(), "hunter2");
        }
        other => return Err(format!("unexpected auth {other:?}").into()),
    }

    let both = write(
        dir.path(),
        "both",
        &simple_kubeconfig("https://x", "token: t\nusername: admin\npassword: p"),
    )?;
    let err = load(&both).err().ok_or("expected an error")?;
    assert!(matches!(err, ConfigError::InvalidEntry { .. }), "{err:?}");
    Ok(())
}

#[test]
fn exec_entry_is_read_with_cluster_info_when_asked() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write(
        dir.path(),
        "config",
        &format!(
            "current-context: m\ncontexts:\n- name: m\n  context: {{cluster: c, user: u}}\n\
             clusters:\n- name: c\n  cluster:\n    server: https://api.example:6443\n    \
             certificate-authority-data: {}\n    tls-server-name: api.internal\n    extensions:\n    \
             - name: client.authentication.k8s.io/exec\n      extension: {{audience: kazan}}\n\
             users:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      \
             command: /usr/bin/get-token\n      args: [--cluster, prod]\n      env:\n      - {{name: REGION, value: eu}}\n      \
             installHint: install get-token\n      provideClusterInfo: true\n      interactiveMode: Never\n",
            b64(pki::text("ca.crt")?.as_bytes())
        ),
    )?;
    let exec = match load(&path)?.auth {
        AuthConfig::Exec(exec) => exec,
        other => return Err(format!("unexpected auth {other:?}").into()),
    };
    assert_eq!(exec.api_version, "client.authentication.k8s.io/v1beta1");
    assert_eq!(exec.command, "/usr/bin/get-token");
    assert_eq!(exec.args, ["--cluster", "prod"]);
    assert_eq!(exec.env, [("REGION".to_string(), "eu".to_string())]);
    assert_eq!(exec.install_hint.as_deref(), Some("install get-token"));
    assert_eq!(exec.interactive_mode.as_deref(), Some("Never"));
    assert!(exec.provide_cluster_info);
    let cluster = exec.cluster.ok_or("expected cluster info")?;
    assert_eq!(cluster.server, "https://api.example:6443");
    assert_eq!(cluster.tls_server_name.as_deref(), Some("api.internal"));
    assert_eq!(
        cluster.certificate_authority_data.as_deref(),
        Some(pki::text("ca.crt")?.as_bytes())
    );
    assert_eq!(cluster.config.as_deref(), Some(r#"{"audience":"kazan"}"#));
    Ok(())
}

#[test]
fn auth_providers_are_refused_with_a_hint() -> TestResult {
    let dir = tempfile::tempdir()?;
    let provider = write(
        dir.path(),
        "provider",
        &simple_kubeconfig(
            "https://x",
            "auth-provider:\n  name: oidc\n  config: {id-token: x}",
        ),
    )?;
    let err = load(&provider).err().ok_or("expected an error")?;
    assert!(matches!(err, ConfigError::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("auth-provider `oidc`"), "{err}");
    assert!(err.to_string().contains("exec credential plugin"), "{err}");
    Ok(())
}

// --- Impersonation ----------------------------------------------------------------------------

#[test]
fn kubeconfig_impersonation_fields_fill_the_config_and_its_headers() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write(
        dir.path(),
        "config",
        &simple_kubeconfig(
            "https://x",
            "token: t\n\
             as: jane\n\
             as-uid: \"1001\"\n\
             as-groups: [devs, \"system:authenticated\"]\n\
             as-user-extra:\n  \
               example.com/team name: [blue, green]\n  \
               reason: [incident 42]",
        ),
    )?;
    let config = load(&path)?;

    assert_eq!(config.impersonation, as_jane());
    assert_eq!(token_of(&config).as_deref(), Some("t"));

    // Extra keys escaped as client-go escapes them (`/` and space are not header-name
    // characters); header names travel lower-cased.
    let headers: Vec<(String, String)> = config
        .impersonation
        .headers()?
        .iter()
        .map(|(name, value)| Ok((name.to_string(), value.to_str()?.to_string())))
        .collect::<Result<_, http::header::ToStrError>>()?;
    assert_eq!(headers, jane_headers());
    assert!(format!("{config:?}").contains("jane"));
    Ok(())
}

#[test]
fn a_kubeconfig_user_without_impersonation_impersonates_nobody() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write(dir.path(), "config", &simple_kubeconfig("https://x", "token: t"))?;
    let config = load(&path)?;
    assert!(config.impersonation.is_empty());
    assert!(config.impersonation.headers()?.is_empty());
    Ok(())
}

/// As kubectl: a kubeconfig's uid, groups or extra without `as` load (a `--as` flag may complete
/// them), and a client built without a user to impersonate is refused, naming the field.
#[test]
fn impersonating_groups_uid_or_extra_without_a_user_is_refused_by_the_client_naming_the_field() -> TestResult
{
    let dir = tempfile::tempdir()?;
    for (body, field) in [
        ("as-groups: [devs]", "as-groups"),
        ("as-uid: \"1001\"", "as-uid"),
        ("as-user-extra: {reason: [x]}", "as-user-extra"),
    ] {
        let path = write(
            dir.path(),
            field,
            &simple_kubeconfig("https://x", &format!("token: t\n{body}")),
        )?;
        let config = load(&path)?;
        assert_eq!(config.impersonation.user, None);
        let origin = config.origin.clone();
        let err = Client::new(config.clone()).err().ok_or("expected an error")?;
        let kazan::Error::Config(ConfigError::Impersonation { entry, source }) = &err else {
            return Err(format!("not an impersonation error: {err:?}").into());
        };
        assert_eq!(entry, &origin);
        assert_eq!(source, &ImpersonationError::WithoutUser { field });
        assert!(
            err.to_string()
                .contains(&format!("requesting {field} without impersonating a user")),
            "{err}"
        );
        // What `--as` does.
        let mut config = config;
        config.impersonation.user = Some("jane".into());
        Client::new(config)?;
    }
    Ok(())
}

// --- In-cluster -----------------------------------------------------------------------------

fn service_account(dir: &Path, namespace: Option<&str>) -> Result<PathBuf, Box<dyn Error>> {
    let sa = dir.join("serviceaccount");
    write(&sa, "token", "sa-token\n")?;
    write(&sa, "ca.crt", &pki::text("ca.crt")?)?;
    if let Some(ns) = namespace {
        write(&sa, "namespace", ns)?;
    }
    Ok(sa)
}

fn pod_env(sa: &Path, host: &str, port: &str) -> ConfigEnv {
    let mut env = ConfigEnv::empty(sa);
    env.service_host = Some(host.to_string());
    env.service_port = Some(port.to_string());
    env
}

#[tokio::test]
async fn incluster_reads_the_service_environment_and_account_folder() -> TestResult {
    let dir = tempfile::tempdir()?;
    let sa = service_account(dir.path(), Some("team-a\n"))?;
    let config = Config::incluster_in(&pod_env(&sa, "10.96.0.1", "443"))?;
    assert_eq!(config.cluster_url.to_string(), "https://10.96.0.1:443/");
    assert_eq!(config.default_namespace, "team-a");
    assert_eq!(
        config.root_certs_pem.as_deref(),
        Some(pki::text("ca.crt")?.as_bytes())
    );
    assert!(!config.insecure_skip_tls_verify);
    match &config.auth {
        AuthConfig::TokenFile(path) => assert_eq!(path, &sa.join("token")),
        other => return Err(format!("unexpected auth {other:?}").into()),
    }
    let header = Authenticator::new(&config.auth)?
        .header()
        .await?
        .ok_or("no header")?;
    assert_eq!(header.to_str()?, "Bearer sa-token");
    Ok(())
}

#[test]
fn incluster_brackets_ipv6_hosts_and_defaults_the_namespace() -> TestResult {
    let dir = tempfile::tempdir()?;
    let sa = service_account(dir.path(), None)?;
    let config = Config::incluster_in(&pod_env(&sa, "fd00:10:96::1", "6443"))?;
    assert_eq!(config.cluster_url.to_string(), "https://[fd00:10:96::1]:6443/");
    assert_eq!(config.default_namespace, "default");
    Ok(())
}

#[test]
fn incluster_outside_a_pod_says_which_variable_is_missing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let sa = service_account(dir.path(), None)?;
    let mut env = pod_env(&sa, "10.96.0.1", "443");
    env.service_port = None;
    let err = Config::incluster_in(&env).err().ok_or("expected an error")?;
    assert!(
        matches!(
            err,
            ConfigError::InClusterEnvMissing {
                var: "KUBERNETES_SERVICE_PORT"
            }
        ),
        "{err:?}"
    );

    let no_token = ConfigEnv::empty(dir.path().join("absent"));
    let mut no_token = no_token;
    no_token.service_host = Some("10.96.0.1".into());
    no_token.service_port = Some("443".into());
    let err = Config::incluster_in(&no_token).err().ok_or("expected an error")?;
    assert!(
        matches!(&err, ConfigError::ReadFile { path, .. } if path.ends_with("absent/token")),
        "{err:?}"
    );
    Ok(())
}

// --- infer ----------------------------------------------------------------------------------

#[test]
fn infer_prefers_the_kubeconfig_over_in_cluster() -> TestResult {
    let dir = tempfile::tempdir()?;
    let sa = service_account(dir.path(), None)?;
    let kubeconfig = write(
        dir.path(),
        "kubeconfig",
        &simple_kubeconfig("https://from-kubeconfig", "token: t"),
    )?;
    let mut env = pod_env(&sa, "10.96.0.1", "443");
    env.kubeconfig = Some(kubeconfig.into_os_string());
    let config = Config::infer_in(&env)?;
    assert_eq!(config.cluster_url.host(), Some("from-kubeconfig"));
    Ok(())
}

#[test]
fn infer_falls_back_to_in_cluster_without_a_kubeconfig() -> TestResult {
    let dir = tempfile::tempdir()?;
    let sa = service_account(dir.path(), Some("ns"))?;
    let mut env = pod_env(&sa, "10.96.0.1", "443");
    env.home = Some(dir.path().join("home-without-kube"));
    let config = Config::infer_in(&env)?;
    assert_eq!(config.cluster_url.host(), Some("10.96.0.1"));
    assert_eq!(config.default_namespace, "ns");
    assert!(config.origin.contains("in-cluster"), "{}", config.origin);
    Ok(())
}

#[test]
fn infer_names_every_source_it_tried_and_why_each_failed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut env = empty_env(dir.path());
    env.home = Some(dir.path().join("home"));
    let err = Config::infer_in(&env).err().ok_or("expected an error")?;
    let attempts = match &err {
        ConfigError::NoConfiguration { attempts } => attempts,
        other => return Err(format!("unexpected error {other:?}").into()),
    };
    assert_eq!(attempts.len(), 2);
    assert!(matches!(
        *attempts[0].error,
        ConfigError::KubeconfigNotFound { .. }
    ));
    assert!(matches!(
        *attempts[1].error,
        ConfigError::InClusterEnvMissing {
            var: "KUBERNETES_SERVICE_HOST"
        }
    ));
    let message = err.to_string();
    let home_config = dir.path().join("home/.kube/config").display().to_string();
    assert!(message.contains(&home_config), "{message}");
    assert!(message.contains("in-cluster"), "{message}");
    assert!(
        message.contains("KUBERNETES_SERVICE_HOST is not set"),
        "{message}"
    );

    // A broken kubeconfig from KUBECONFIG is named with its fault.
    let broken = write(dir.path(), "broken", "current-context: nowhere\n")?;
    env.kubeconfig = Some(broken.clone().into_os_string());
    let message = Config::infer_in(&env)
        .err()
        .ok_or("expected an error")?
        .to_string();
    assert!(message.contains("KUBECONFIG"), "{message}");
    assert!(message.contains("context `nowhere` does not exist"), "{message}");
    Ok(())
}

// --- Secrets --------------------------------------------------------------------------------

const SECRET: &str = "PLANTED-s3cr3t-value";

/// Checks that none of the texts holds the planted secret (or its base64 form).
fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} leaks the secret: {text}");
    assert!(
        !text.contains(&b64(SECRET.as_bytes())),
        "{what} leaks the secret (base64): {text}"
    );
}

#[tokio::test]
async fn secrets_never_appear_in_debug_display_or_errors() -> TestResult {
    let dir = tempfile::tempdir()?;
    let key_with_secret = format!("{}# {SECRET}\n", pki::text("client-ec.key")?);
    let cases = [
        ("token", format!("token: {SECRET}")),
        ("basic", format!("username: admin\npassword: {SECRET}")),
        (
            "client key data",
            format!(
                "client-certificate-data: {}\nclient-key-data: {}",
                b64(pki::text("client-ec.crt")?.as_bytes()),
                b64(key_with_secret.as_bytes())
            ),
        ),
        (
            "exec",
            format!(
                "exec:\n  apiVersion: client.authentication.k8s.io/v1\n  command: plugin\n  \
                 args: [--client-secret={SECRET}]\n  env: [{{name: CLIENT_SECRET, value: {SECRET}}}]\n  \
                 interactiveMode: Never\n  provideClusterInfo: true"
            ),
        ),
    ];
    for (what, user) in &cases {
        let text = simple_kubeconfig("https://api.example", user).replace(
            "server: https://api.example\n",
            &format!("server: https://api.example\n    proxy-url: http://user:{SECRET}@proxy.example:3128\n"),
        );
        let path = write(dir.path(), &format!("config-{}", what.replace(' ', "-")), &text)?;
        let config = load(&path)?;
        assert_no_secret(what, &format!("{config:?}"));
        assert_no_secret(what, &format!("{:?}", config.auth));
        assert_no_secret(what, &format!("{:?}", config.client_identity));
        let auth = Authenticator::new(&config.auth)?;
        assert_no_secret(what, &format!("{auth:?}"));
        if let Some(header) = auth.header().await.ok().flatten() {
            assert!(header.is_sensitive(), "{what}");
            assert_no_secret(what, &format!("{header:?}"));
        }
    }

    // Malformed files, faulty key data, bad base64: errors name the place, never the value.
    let faulty_users = [
        format!("token: {SECRET}\n  : broken"),
        format!("token: [{SECRET}]"),
        format!("password: {SECRET}\nusername: [x"),
        format!(
            "client-certificate-data: {}\nclient-key-data: {}",
            b64(pki::text("client-ec.crt")?.as_bytes()),
            b64(SECRET.as_bytes())
        ),
        format!(
            "client-certificate-data: {}\nclient-key-data: {SECRET}*",
            b64(pki::text("client-ec.crt")?.as_bytes())
        ),
        format!("token: {SECRET}\nusername: admin"),
        format!("token: {SECRET}\nauth-provider: {{name: oidc, config: {{id-token: {SECRET}}}}}"),
    ];
    for (i, user) in faulty_users.iter().enumerate() {
        let path = write(
            dir.path(),
            &format!("faulty-{i}"),
            &simple_kubeconfig("https://x", user),
        )?;
        let err = load(&path).err().ok_or_else(|| format!("case {i} should fail"))?;
        assert_no_secret(&format!("error {i}"), &err.to_string());
        assert_no_secret(&format!("error {i}"), &format!("{err:?}"));
        let infer_like = kazan::Error::from(err);
        assert_no_secret(&format!("client error {i}"), &infer_like.to_string());
    }

    // A proxy URL that does not parse must not be echoed either.
    let path = write(
        dir.path(),
        "bad-proxy",
        &simple_kubeconfig("https://x", "token: t").replace(
            "server: https://x\n",
            &format!("server: https://x\n    proxy-url: \"http://user:{SECRET}@bad host\"\n"),
        ),
    )?;
    let err = load(&path).err().ok_or("bad proxy should fail")?;
    assert!(
        matches!(
            err,
            ConfigError::InvalidUrl {
                field: "proxy-url",
                ..
            }
        ),
        "{err:?}"
    );
    assert_no_secret("proxy error", &err.to_string());
    Ok(())
}
