//! Credentials as the client uses them: `Authenticator::header` before every request and
//! `refresh` after a 401. Bearer tokens, basic auth, rotating token files and exec plugins
//! (small shell scripts written at test time).

use std::{error::Error, sync::Arc};

use http::HeaderValue;
use kazan::{
    Config,
    auth::{AuthError, Authenticator},
    config::{AuthConfig, ExecConfig, KubeconfigOptions},
};
use secrecy::{ExposeSecret, SecretString};

use crate::support;
use support::b64;
use support::logs::logs;
#[cfg(unix)]
use support::plugin::{Plugin, write_plugin};

type TestResult = Result<(), Box<dyn Error>>;

const V1: &str = "client.authentication.k8s.io/v1";
const V1BETA1: &str = "client.authentication.k8s.io/v1beta1";

async fn header_text(auth: &Authenticator) -> Result<String, Box<dyn Error>> {
    let header = tokio::time::timeout(support::WAIT, auth.header())
        .await??
        .ok_or("expected an Authorization header")?;
    assert!(
        header.is_sensitive(),
        "the Authorization header must be marked sensitive"
    );
    Ok(header.to_str()?.to_string())
}

// --- Static credentials ---------------------------------------------------------------------

#[tokio::test]
async fn bearer_token_is_sent_marked_sensitive_and_cannot_be_refreshed() -> TestResult {
    logs();
    let auth = Authenticator::new(&AuthConfig::Token(SecretString::from("abc.def")))?;
    assert_eq!(header_text(&auth).await?, "Bearer abc.def");
    assert!(!auth.refresh().await?);
    Ok(())
}

#[tokio::test]
async fn basic_auth_is_sent_base64_encoded() -> TestResult {
    logs();
    let auth = Authenticator::new(&AuthConfig::Basic {
        username: "admin".to_string(),
        password: SecretString::from("hunter2"),
    })?;
    assert_eq!(
        header_text(&auth).await?,
        format!("Basic {}", b64(b"admin:hunter2"))
    );
    assert!(!auth.refresh().await?);
    Ok(())
}

#[tokio::test]
async fn no_credentials_send_no_header() -> TestResult {
    logs();
    let auth = Authenticator::new(&AuthConfig::None)?;
    assert!(auth.header().await?.is_none());
    assert!(!auth.refresh().await?);
    assert!(auth.client_identity().await?.is_none());
    Ok(())
}

#[test]
fn a_token_that_cannot_be_a_header_is_refused_without_echoing_it() {
    logs();
    let err = Authenticator::new(&AuthConfig::Token(SecretString::from("bad\ntoken-value")))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("cannot be sent in an HTTP header"), "{err}");
    assert!(!err.contains("token-value"), "{err}");
}

// --- Token files ----------------------------------------------------------------------------

#[tokio::test]
async fn rotated_token_file_is_picked_up_by_the_next_header() -> TestResult {
    logs();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("token");
    std::fs::write(&path, "first-token\n")?;
    let auth = Authenticator::new(&AuthConfig::TokenFile(path.clone()))?;
    assert_eq!(header_text(&auth).await?, "Bearer first-token");
    assert_eq!(header_text(&auth).await?, "Bearer first-token");

    // Rewritten in place.
    std::fs::write(&path, "second-token-longer\n")?;
    assert_eq!(header_text(&auth).await?, "Bearer second-token-longer");

    // Replaced by rename, as the kubelet swaps the projected volume, with the same length.
    let staged = dir.path().join("token.new");
    std::fs::write(&staged, "third-token-longer!\n")?;
    std::fs::rename(&staged, &path)?;
    assert_eq!(header_text(&auth).await?, "Bearer third-token-longer!");
    Ok(())
}

#[tokio::test]
async fn token_file_refresh_rereads_and_keeps_the_last_token_when_the_file_vanishes() -> TestResult {
    logs();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("token");
    std::fs::write(&path, "kept-token")?;
    let auth = Authenticator::new(&AuthConfig::TokenFile(path.clone()))?;
    assert_eq!(header_text(&auth).await?, "Bearer kept-token");

    std::fs::remove_file(&path)?;
    assert!(auth.refresh().await?);
    assert_eq!(header_text(&auth).await?, "Bearer kept-token");

    std::fs::write(&path, "new-token")?;
    assert!(auth.refresh().await?);
    assert_eq!(header_text(&auth).await?, "Bearer new-token");
    Ok(())
}

#[tokio::test]
async fn missing_or_empty_token_file_is_a_retryable_error_naming_the_file() -> TestResult {
    logs();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("token");
    let auth = Authenticator::new(&AuthConfig::TokenFile(path.clone()))?;
    let err = auth.header().await.err().ok_or("expected an error")?;
    assert!(
        matches!(&err, AuthError::TokenFile { path: p, .. } if p == &path),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");

    std::fs::write(&path, " \n")?;
    let err = auth.header().await.err().ok_or("expected an error")?;
    assert!(matches!(err, AuthError::EmptyTokenFile { .. }), "{err:?}");
    Ok(())
}

// --- Exec plugins ---------------------------------------------------------------------------

/// A plugin that counts its runs in `$STATE/runs`, records its arguments, `$GREETING` and
/// `KUBERNETES_EXEC_INFO`, and prints a token `exec-token-<run>` expiring at `$EXPIRES` (if set).
#[cfg(unix)]
const COUNTING_PLUGIN: &str = r#"set -e
echo run >> "$STATE/runs"
n=$(wc -l < "$STATE/runs" | tr -d ' ')
printf '%s' "$KUBERNETES_EXEC_INFO" > "$STATE/exec-info"
printf '%s\n' "$@" > "$STATE/args"
printf '%s' "${GREETING:-}" > "$STATE/greeting"
if [ -n "${DELAY:-}" ]; then sleep "$DELAY"; fi
if [ -n "${EXPIRES:-}" ]; then exp=", \"expirationTimestamp\": \"$EXPIRES\""; else exp=""; fi
printf '{"apiVersion": "%s", "kind": "ExecCredential", "status": {"token": "exec-token-%s"%s}}\n' "$API_VERSION" "$n" "$exp"
"#;

/// A plugin that prints `$STATE/output` to stdout and `$STATE/stderr` (if any) to stderr, then
/// exits with `$STATUS` (default 0).
#[cfg(unix)]
const CANNED_PLUGIN: &str = r#"cat "$STATE/output"
if [ -f "$STATE/stderr" ]; then cat "$STATE/stderr" >&2; fi
exit "${STATUS:-0}"
"#;

/// The authenticator of `plugin`'s exec entry.
#[cfg(unix)]
fn authenticator(
    plugin: &Plugin,
    api_version: &str,
    env: &[(&str, &str)],
) -> Result<Authenticator, AuthError> {
    Authenticator::new(&AuthConfig::Exec(plugin.config(api_version, env)))
}

#[cfg(unix)]
#[tokio::test]
async fn exec_plugin_from_a_kubeconfig_gets_its_args_env_and_cluster_info() -> TestResult {
    logs();
    let dir = tempfile::tempdir()?;
    write_plugin(&dir.path().join("bin"), "get-token", COUNTING_PLUGIN)?;
    let ca = support::pki::text("ca.crt")?;
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "current-context: m\ncontexts:\n- name: m\n  context: {{cluster: c, user: u}}\n\
             clusters:\n- name: c\n  cluster:\n    server: https://api.example:6443\n    \
             certificate-authority-data: {}\n    extensions:\n    \
             - name: client.authentication.k8s.io/exec\n      extension: {{audience: kazan}}\n\
             users:\n- name: u\n  user:\n    exec:\n      apiVersion: {V1}\n      command: ./bin/get-token\n      \
             args: [get-token, --cluster=prod]\n      env:\n      - {{name: STATE, value: {}}}\n      \
             - {{name: API_VERSION, value: {V1}}}\n      - {{name: GREETING, value: hello plugin}}\n      \
             provideClusterInfo: true\n      interactiveMode: IfAvailable\n",
            b64(ca.as_bytes()),
            dir.path().display()
        ),
    )?;
    let config = Config::from_kubeconfig(&KubeconfigOptions::path(&kubeconfig))?;
    let auth = Authenticator::new(&config.auth)?;

    assert_eq!(header_text(&auth).await?, "Bearer exec-token-1");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("args"))?,
        "get-token\n--cluster=prod\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("greeting"))?,
        "hello plugin"
    );
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("exec-info"))?)?;
    assert_eq!(
        info,
        serde_json::json!({
            "apiVersion": V1,
            "kind": "ExecCredential",
            "spec": {
                "interactive": false,
                "cluster": {
                    "server": "https://api.example:6443",
                    "certificate-authority-data": b64(ca.as_bytes()),
                    "config": {"audience": "kazan"},
                },
            },
        })
    );
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn exec_credential_is_cached_until_it_expires() -> TestResult {
    logs();
    let plugin = Plugin::new(COUNTING_PLUGIN)?;
    let expires = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string();
    let auth = authenticator(&plugin, V1, &[("EXPIRES", &expires)])?;
    for _ in 0..3 {
        assert_eq!(header_text(&auth).await?, "Bearer exec-token-1");
    }
    assert_eq!(plugin.runs(), 1);

    // A 401: the client refreshes, and the plugin runs again on the next request.
    assert!(auth.refresh().await?);
    assert_eq!(header_text(&auth).await?, "Bearer exec-token-2");
    assert_eq!(plugin.runs(), 2);
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn expired_exec_credential_reruns_the_plugin() -> TestResult {
    logs();
    let plugin = Plugin::new(COUNTING_PLUGIN)?;
    let auth = authenticator(&plugin, V1, &[("EXPIRES", "2001-02-03T04:05:06Z")])?;
    assert_eq!(header_text(&auth).await?, "Bearer exec-token-1");
    assert_eq!(header_text(&auth).await?, "Bearer exec-token-2");
    assert_eq!(plugin.runs(), 2);
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn exec_credential_without_expiry_is_kept_until_a_refresh() -> TestResult {
    logs();
    let plugin = Plugin::new(COUNTING_PLUGIN)?;
    let auth = authenticator(&plugin, V1BETA1, &[])?;
    assert_eq!(header_text(&auth).await?, "Bearer exec-token-1");
    assert_eq!(header_text(&auth).await?, "Bearer exec-token-1");
    assert_eq!(plugin.runs(), 1);
    assert!(auth.refresh().await?);
    assert_eq!(header_text(&auth).await?, "Bearer exec-token-2");
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn v1beta1_plugins_get_a_v1beta1_request_without_cluster_info_unless_asked() -> TestResult {
    logs();
    let plugin = Plugin::new(COUNTING_PLUGIN)?;
    let auth = authenticator(&plugin, V1BETA1, &[])?;
    assert_eq!(header_text(&auth).await?, "Bearer exec-token-1");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(plugin.state().join("exec-info"))?)?;
    assert_eq!(
        info,
        serde_json::json!({"apiVersion": V1BETA1, "kind": "ExecCredential", "spec": {"interactive": false}})
    );
    Ok(())
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_plugin_run() -> TestResult {
    logs();
    let plugin = Plugin::new(COUNTING_PLUGIN)?;
    let auth = Arc::new(authenticator(&plugin, V1, &[("DELAY", "0.3")])?);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let auth = Arc::clone(&auth);
            tokio::spawn(async move { auth.header().await })
        })
        .collect();
    let results = tokio::time::timeout(support::WAIT, futures_util::future::join_all(tasks)).await?;
    for result in results {
        let header = result??.ok_or("expected a header")?;
        assert_eq!(header.to_str()?, "Bearer exec-token-1");
    }
    assert_eq!(plugin.runs(), 1);
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn refresh_after_a_rejection_keeps_a_credential_already_replaced() -> TestResult {
    logs();
    let plugin = Plugin::new(COUNTING_PLUGIN)?;
    let auth = authenticator(&plugin, V1, &[])?;
    let first = auth.header().await?.ok_or("expected a header")?;

    // Another request was rejected with an older credential: the current one stays.
    assert!(
        auth.refresh_rejected(&HeaderValue::from_static("Bearer older"))
            .await?
    );
    assert_eq!(header_text(&auth).await?, "Bearer exec-token-1");
    assert_eq!(plugin.runs(), 1);

    // The current credential itself was rejected: the plugin runs again.
    assert!(auth.refresh_rejected(&first).await?);
    assert_eq!(header_text(&auth).await?, "Bearer exec-token-2");
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn failing_plugin_reports_exit_status_and_stderr_never_stdout() -> TestResult {
    logs();
    let plugin = Plugin::new(CANNED_PLUGIN)?;
    plugin.set_output(&format!(
        r#"{{"apiVersion": "{V1}", "kind": "ExecCredential", "status": {{"token": "stdout-token-value"}}}}"#
    ))?;
    std::fs::write(
        plugin.state().join("stderr"),
        "error: login expired, run `sso login`\n",
    )?;
    let auth = authenticator(&plugin, V1, &[("STATUS", "3")])?;
    let err = auth.header().await.err().ok_or("expected an error")?;
    assert!(matches!(err, AuthError::ExecFailed { .. }), "{err:?}");
    assert!(err.is_retryable());
    let message = err.to_string();
    assert!(message.contains("exit status: 3"), "{message}");
    assert!(message.contains("login expired"), "{message}");
    assert!(
        message.contains(&plugin.command().display().to_string()),
        "{message}"
    );
    assert!(!message.contains("stdout-token-value"), "{message}");
    assert!(!format!("{err:?}").contains("stdout-token-value"));
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn long_stderr_is_truncated() -> TestResult {
    logs();
    let plugin = Plugin::new(CANNED_PLUGIN)?;
    plugin.set_output("")?;
    std::fs::write(plugin.state().join("stderr"), "x".repeat(100_000))?;
    let err = authenticator(&plugin, V1, &[("STATUS", "1")])?
        .header()
        .await
        .err()
        .ok_or("expected an error")?;
    let message = err.to_string();
    assert!(message.contains("(truncated)"), "{}", message.len());
    assert!(message.len() < 2_000, "{}", message.len());
    Ok(())
}

#[tokio::test]
async fn missing_plugin_command_reports_the_install_hint() -> TestResult {
    logs();
    for command in [
        "/nonexistent/kazan-test-plugin",
        "kazan-test-plugin-that-is-not-installed",
    ] {
        let mut exec = ExecConfig::new(V1, command);
        exec.install_hint = Some("install it with `brew install kazan-test-plugin`".to_string());
        let auth = Authenticator::new(&AuthConfig::Exec(exec))?;
        let err = auth.header().await.err().ok_or("expected an error")?;
        assert!(matches!(err, AuthError::ExecNotFound { .. }), "{err:?}");
        assert!(!err.is_retryable());
        let message = err.to_string();
        assert!(message.contains(command), "{message}");
        assert!(message.contains("brew install kazan-test-plugin"), "{message}");
    }
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn plugin_output_that_is_not_an_exec_credential_is_a_clear_error() -> TestResult {
    logs();
    let plugin = Plugin::new(CANNED_PLUGIN)?;
    let auth = authenticator(&plugin, V1, &[])?;
    let cases = [
        ("leaked-value not json", "stdout is not JSON"),
        (r#"["leaked-value"]"#, "not a JSON object"),
        (
            r#"{"kind": "leaked-value", "apiVersion": "x"}"#,
            "`kind` is not `ExecCredential`",
        ),
        (
            r#"{"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1beta1", "status": {"token": "leaked-value"}}"#,
            "`apiVersion` is not `client.authentication.k8s.io/v1`",
        ),
        (
            r#"{"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1"}"#,
            "no `status`",
        ),
        (
            r#"{"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1", "status": {"token": ["leaked-value"]}}"#,
            "`status.token` is not a string",
        ),
        (
            r#"{"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1", "status": {}}"#,
            "neither a `token`",
        ),
        (
            r#"{"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1", "status": {"token": "leaked-value", "expirationTimestamp": "tomorrow"}}"#,
            "`status.expirationTimestamp` is not an RFC 3339 time",
        ),
        (
            r#"{"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1", "status": {"clientCertificateData": "leaked-value"}}"#,
            "without `status.clientKeyData`",
        ),
    ];
    for (output, expected) in cases {
        plugin.set_output(output)?;
        let err = auth
            .header()
            .await
            .err()
            .ok_or_else(|| format!("{output} should fail"))?;
        assert!(matches!(err, AuthError::ExecOutput { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(expected), "{output}: {message}");
        assert!(!message.contains("leaked-value"), "{message}");
    }
    Ok(())
}

#[test]
fn plugins_demanding_an_interactive_terminal_are_refused() {
    logs();
    let mut exec = ExecConfig::new(V1, "kubelogin");
    exec.interactive_mode = Some("Always".to_string());
    let err = Authenticator::new(&AuthConfig::Exec(exec)).err();
    assert!(matches!(err, Some(AuthError::ExecInteractive { .. })), "{err:?}");
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("interactive"), "{message}");

    let err = Authenticator::new(&AuthConfig::Exec(ExecConfig::new(
        "client.authentication.k8s.io/v1alpha1",
        "old-plugin",
    )))
    .err();
    assert!(matches!(err, Some(AuthError::ExecConfig { .. })), "{err:?}");
}

#[cfg(unix)]
#[tokio::test]
async fn client_certificate_from_a_plugin_is_exposed_for_the_transport() -> TestResult {
    logs();
    let plugin = Plugin::new(CANNED_PLUGIN)?;
    let cert = support::pki::text("client-pkcs8.crt")?;
    let key = support::pki::text("client-pkcs8.key")?;
    plugin.set_output(
        &serde_json::json!({
            "apiVersion": V1,
            "kind": "ExecCredential",
            "status": {"clientCertificateData": cert, "clientKeyData": key},
        })
        .to_string(),
    )?;
    let auth = authenticator(&plugin, V1, &[])?;
    assert!(auth.header().await?.is_none());
    let identity = auth
        .client_identity()
        .await?
        .ok_or("expected a client identity")?;
    assert_eq!(identity.cert_pem, cert.as_bytes());
    assert_eq!(identity.key_pem.expose_secret(), key.as_bytes());
    assert!(!format!("{identity:?}").contains("PRIVATE KEY"));
    Ok(())
}

// --- Secrets in logs, Debug and errors ------------------------------------------------------

#[cfg(unix)]
const SECRET: &str = "PLANTED-auth-s3cr3t";

#[cfg(unix)]
#[tokio::test]
async fn secrets_never_appear_in_logs_debug_or_errors() -> TestResult {
    let logs = logs();

    // A token file that becomes unreadable: a warning, naming the file, not the token.
    let dir = tempfile::tempdir()?;
    let token_path = dir.path().join("token");
    std::fs::write(&token_path, SECRET)?;
    let auth = Authenticator::new(&AuthConfig::TokenFile(token_path.clone()))?;
    assert_eq!(header_text(&auth).await?, format!("Bearer {SECRET}"));
    std::fs::remove_file(&token_path)?;
    std::fs::create_dir(&token_path)?; // now unreadable as a file
    auth.refresh().await?;
    let header = auth.header().await?.ok_or("expected the last token")?;
    assert!(format!("{header:?}").contains("Sensitive"));
    assert!(!format!("{auth:?} {header:?}").contains(SECRET));

    // Exec: secret arguments and environment, a token on stdout of a failing and of a
    // malformed run.
    let plugin = Plugin::new(CANNED_PLUGIN)?;
    let mut exec = plugin.config(V1, &[("CLIENT_SECRET", SECRET)]);
    exec.args = vec![format!("--client-secret={SECRET}")];
    plugin.set_output(&format!(r#"{{"token": "{SECRET}""#))?;
    let auth = Authenticator::new(&AuthConfig::Exec(exec.clone()))?;
    let malformed = auth.header().await.err().ok_or("expected an error")?;
    plugin.set_output(&format!(
        r#"{{"apiVersion": "{V1}", "kind": "ExecCredential", "status": {{"token": "{SECRET}"}}}}"#
    ))?;
    exec.env.push(("STATUS".to_string(), "1".to_string()));
    let failing = Authenticator::new(&AuthConfig::Exec(exec.clone()))?;
    let failed = failing.header().await.err().ok_or("expected an error")?;
    let texts = [
        format!("{exec:?}"),
        format!("{:?}", AuthConfig::Exec(exec.clone())),
        format!("{auth:?}"),
        malformed.to_string(),
        format!("{malformed:?}"),
        failed.to_string(),
        format!("{failed:?}"),
        kazan::Error::from(failed).to_string(),
    ];
    for text in texts {
        assert!(!text.contains(SECRET), "leaked: {text}");
    }

    // What every test of this file logged so far: the warning is there, and no token of any test.
    let logs = logs.text();
    assert!(
        logs.contains("keeping the last token"),
        "the warning was not captured: {logs}"
    );
    assert!(logs.contains(&token_path.display().to_string()), "{logs}");
    for secret in [
        SECRET,
        "exec-token-",
        "stdout-token-value",
        "leaked-value",
        "first-token",
        "kept-token",
        "hunter2",
        "abc.def",
    ] {
        assert!(!logs.contains(secret), "logs leak `{secret}`: {logs}");
    }
    Ok(())
}

// --- End to end: credentials reach the embedded API server ----------------------------------

const SERVER_TOKEN: &str = "e2e-server-token";

async fn token_server() -> Result<kazan_apiserver::ApiServer, Box<dyn Error>> {
    Ok(kazan_apiserver::ApiServer::builder()
        .token(SERVER_TOKEN)
        .start()
        .await?)
}

/// Lists namespaces through a client built from `config`: the number listed, or the HTTP status
/// of the refusal.
async fn list_namespaces(config: Config) -> Result<Result<usize, Option<u16>>, Box<dyn Error>> {
    use k8s_openapi::api::core::v1::Namespace;
    let client = kazan::Client::new(config)?;
    let result =
        tokio::time::timeout(support::WAIT, client.run(&kazan::Request::list::<Namespace>())).await?;
    Ok(result.map(|list| list.items.len()).map_err(|e| e.status_code()))
}

#[tokio::test]
async fn kubeconfig_of_the_server_reaches_it_with_its_token() -> TestResult {
    logs();
    let server = token_server().await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config");
    server.write_kubeconfig(&path)?;
    let config = Config::from_kubeconfig(&KubeconfigOptions::path(&path))?;
    assert_eq!(list_namespaces(config).await?, Ok(4));

    let anonymous = Config::new(server.url().parse()?);
    assert_eq!(list_namespaces(anonymous).await?, Err(Some(401)));
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn rotated_token_file_reaches_the_server() -> TestResult {
    logs();
    let server = token_server().await?;
    let dir = tempfile::tempdir()?;
    let token_path = dir.path().join("token");
    std::fs::write(&token_path, "token-before-rotation\n")?;
    let mut config = Config::new(server.url().parse()?);
    config.auth = AuthConfig::TokenFile(token_path.clone());
    let client = kazan::Client::new(config)?;
    let list = kazan::Request::list::<k8s_openapi::api::core::v1::Namespace>();

    let refused = tokio::time::timeout(support::WAIT, client.run(&list)).await?;
    assert_eq!(refused.err().and_then(|e| e.status_code()), Some(401));

    std::fs::write(&token_path, format!("{SERVER_TOKEN}\n"))?;
    let namespaces = tokio::time::timeout(support::WAIT, client.run(&list)).await??;
    assert_eq!(namespaces.items.len(), 4);
    server.shutdown().await;
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn exec_plugin_token_reaches_the_server() -> TestResult {
    logs();
    let server = token_server().await?;
    let plugin = Plugin::new(CANNED_PLUGIN)?;
    let credential = |token: &str| {
        serde_json::json!({"apiVersion": V1, "kind": "ExecCredential", "status": {"token": token}})
            .to_string()
    };
    let mut config = Config::new(server.url().parse()?);
    config.auth = AuthConfig::Exec(plugin.config(V1, &[]));

    plugin.set_output(&credential(SERVER_TOKEN))?;
    assert_eq!(list_namespaces(config.clone()).await?, Ok(4));

    plugin.set_output(&credential("a-token-the-server-does-not-know"))?;
    assert_eq!(list_namespaces(config).await?, Err(Some(401)));
    server.shutdown().await;
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn a_401_refreshes_the_exec_credential_once_and_retries() -> TestResult {
    logs();
    // The server knows only the plugin's second token: the first request is refused, the client
    // runs the plugin again and the same call succeeds.
    let server = kazan_apiserver::ApiServer::builder()
        .token("exec-token-2")
        .start()
        .await?;
    let plugin = Plugin::new(COUNTING_PLUGIN)?;
    let mut config = Config::new(server.url().parse()?);
    config.auth = AuthConfig::Exec(plugin.config(V1, &[]));
    assert_eq!(list_namespaces(config.clone()).await?, Ok(4));
    assert_eq!(plugin.runs(), 2);
    // A credential that is refused again after the refresh is the caller's error: one retry only.
    let stubborn = kazan_apiserver::ApiServer::builder()
        .token("never-issued")
        .start()
        .await?;
    let mut config = Config::new(stubborn.url().parse()?);
    config.auth = AuthConfig::Exec(plugin.config(V1, &[]));
    assert_eq!(list_namespaces(config).await?, Err(Some(401)));
    assert_eq!(
        plugin.runs(),
        4,
        "one run for the first try, one for the single retry"
    );
    server.shutdown().await;
    stubborn.shutdown().await;
    Ok(())
}
