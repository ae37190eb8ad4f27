//! Security checks of RELIABILITY.md: secrets never reach logs (at any level, from kazan or the
//! libraries under it), `Debug` output or errors; TLS verification is on by default; credentials
//! never follow a redirect to another host.
//!
//! This test binary installs one global subscriber at TRACE (and routes the `log` records of
//! rustls into it) before anything runs, so every line logged by any test here is captured.

use crate::support;
use support::{WAIT, b64, bounded};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kazan::{
    Client, Config, Error, Request,
    auth::Authenticator,
    config::{AuthConfig, ClientIdentity, ExecConfig},
    watcher::{EventKind, Watcher, WatcherOptions},
};
use kazan_apiserver::{ApiServer, FaultAction, FaultRule};
use rcgen::KeyPair;
use serde_json::json;
use support::{TestCa, TestError, TestResult, logs::logs};

const TOKEN: &str = "sec-bearer-token-4f1a9c";
const USERNAME: &str = "sec-user";
const PASSWORD: &str = "sec-password-77b2e1";
const EXEC_TOKEN: &str = "sec-exec-token-c3d8a0";
const EXEC_ARG_SECRET: &str = "sec-exec-arg-5e6f70";

/// The strings that must never show: each secret, and its base64.
fn forbidden(secrets: &[String]) -> Vec<String> {
    secrets
        .iter()
        .flat_map(|s| [s.clone(), b64(s)])
        .chain([b64(format!("{USERNAME}:{PASSWORD}"))])
        .collect()
}

fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for secret in forbidden(secrets) {
        assert!(!text.contains(&secret), "{what} leaks `{secret}`: {text}");
    }
}

/// Pieces of a private key's PEM body long enough to be recognised (each full base64 line).
fn key_lines(key_pem: &str) -> Vec<String> {
    key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_string)
        .collect()
}

/// Quick retries, and every log line the watcher writes (the logs are searched for secrets).
fn fast() -> WatcherOptions {
    support::fast_watcher_options().log(Some(tracing::Level::TRACE))
}

/// What a session leaves to inspect: Debug and Display texts of everything it touched.
#[derive(Default)]
struct Texts(Vec<String>);

impl Texts {
    fn debug(&mut self, value: &impl std::fmt::Debug) {
        self.0.push(format!("{value:?}"));
        self.0.push(format!("{value:#?}"));
    }

    fn error(&mut self, error: &(impl std::fmt::Debug + std::fmt::Display)) {
        self.debug(error);
        self.0.push(error.to_string());
    }
}

/// A full session: list, watch (one event), a request that fails with 404, then one that fails
/// with 401 (the same credentials against a server that wants other ones).
async fn session(config: Config, server: &ApiServer, stranger: &str, texts: &mut Texts) -> TestResult {
    texts.debug(&config);
    texts.debug(&Authenticator::new(&config.auth)?);
    let client = Client::new(config.clone())?;
    texts.debug(&client);

    let namespaces = bounded(client.run(&Request::list::<Namespace>())).await??;
    assert!(!namespaces.items.is_empty());

    let start = server.resource_version().to_string();
    let mut w = Watcher::start(
        client.clone(),
        Request::list::<ConfigMap>().namespace("default"),
        fast().resource_version(start),
    )?;
    if !server.wait_for_watches("configmaps", 1, WAIT).await {
        return Err("the watch did not open".into());
    }
    let name = format!("cm-{}", server.resource_version());
    server.create(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}}),
    )?;
    let ev = bounded(w.recv()).await?.ok_or("the watcher ended")?;
    assert!(matches!(&ev.kind, EventKind::Added(cm) if cm.metadata.name.as_deref() == Some(&name)));
    texts.debug(&ev);
    w.stop().await;

    let missing = bounded(client.run(&Request::get::<Pod>("missing").namespace("default")))
        .await?
        .err()
        .ok_or("a missing pod was found")?;
    assert_eq!(missing.status_code(), Some(404));
    texts.error(&missing);

    let mut elsewhere = config;
    elsewhere.cluster_url = stranger.parse()?;
    let refused = bounded(Client::new(elsewhere)?.run(&Request::list::<Pod>()))
        .await?
        .err()
        .ok_or("a server wanting another token accepted these credentials")?;
    assert_eq!(refused.status_code(), Some(401));
    texts.error(&refused);
    // The watcher's view of the refusal.
    let mut elsewhere_watch = Watcher::start(
        Client::new({
            let mut c = client.config().clone();
            c.cluster_url = stranger.parse()?;
            c
        })?,
        Request::list::<Pod>(),
        fast(),
    )?;
    let failed = bounded(elsewhere_watch.recv())
        .await?
        .ok_or("the watcher ended silently")?;
    match &failed.kind {
        EventKind::Failed(e) => texts.error(&**e),
        other => return Err(format!("expected Failed, got {other:?}").into()),
    }
    Ok(())
}

#[cfg(unix)]
fn exec_plugin(dir: &std::path::Path, token: &str) -> Result<String, TestError> {
    use std::os::unix::fs::PermissionsExt;
    let credential = json!({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": {"token": token}});
    let path = dir.join("plugin");
    std::fs::write(&path, format!("#!/bin/sh\nprintf '%s\\n' '{credential}'\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path.to_string_lossy().into_owned())
}

#[cfg(unix)]
#[tokio::test]
async fn secrets_never_appear_in_trace_logs_debug_output_or_errors() -> TestResult {
    let logs = logs();
    let mut texts = Texts::default();
    // Servers wanting other credentials, for the refused requests.
    let stranger = ApiServer::builder().token("not-the-one").start().await?;
    let stranger_tls = ApiServer::builder()
        .tls(true)
        .token("not-the-one")
        .start()
        .await?;

    // A bearer token, over plain HTTP/1.1 and over TLS with HTTP/2.
    for tls in [false, true] {
        let server = ApiServer::builder().tls(tls).token(TOKEN).start().await?;
        let mut config = Config::new(server.url().parse()?);
        config.auth = AuthConfig::Token(TOKEN.to_string().into());
        let stranger_url = if tls {
            config.root_certs_pem = server.ca_pem().map(String::into_bytes);
            // The stranger's CA is another one: the refusal is a TLS error, also inspected.
            stranger_tls.url()
        } else {
            stranger.url()
        };
        if tls {
            let client = Client::new(config.clone())?;
            bounded(client.run(&Request::list::<Namespace>())).await??;
            let mut other = config.clone();
            other.cluster_url = stranger_url.parse()?;
            let err = bounded(Client::new(other)?.run(&Request::list::<Pod>()))
                .await?
                .err()
                .ok_or("a server of another CA was trusted")?;
            texts.error(&err);
            // The session's refused request goes to a plain server wanting another token.
            session(config, &server, &stranger.url(), &mut texts).await?;
        } else {
            session(config, &server, &stranger_url, &mut texts).await?;
        }
    }

    // Basic auth (the embedded server takes bearer tokens only: every request is refused).
    let mut basic = Config::new(stranger.url().parse()?);
    basic.auth = AuthConfig::Basic {
        username: USERNAME.to_string(),
        password: PASSWORD.to_string().into(),
    };
    texts.debug(&basic);
    texts.debug(&Authenticator::new(&basic.auth)?);
    let client = Client::new(basic)?;
    texts.debug(&client);
    let refused = bounded(client.run(&Request::list::<Pod>()))
        .await?
        .err()
        .ok_or("basic auth was accepted")?;
    assert_eq!(refused.status_code(), Some(401));
    texts.error(&refused);

    // An exec plugin printing a token, with a secret argument and environment value.
    let dir = tempfile::tempdir()?;
    let server = ApiServer::builder().token(EXEC_TOKEN).start().await?;
    let mut exec = ExecConfig::new(
        "client.authentication.k8s.io/v1",
        exec_plugin(dir.path(), EXEC_TOKEN)?,
    );
    exec.args = vec![format!("--client-secret={EXEC_ARG_SECRET}")];
    exec.env = vec![("CLIENT_SECRET".to_string(), EXEC_ARG_SECRET.to_string())];
    let mut config = Config::new(server.url().parse()?);
    config.auth = AuthConfig::Exec(exec);
    session(config, &server, &stranger.url(), &mut texts).await?;

    // A client certificate and key (the server requires one).
    let ca = TestCa::new("ca")?;
    let mtls = support::mtls_server(&ca).await?;
    let key = KeyPair::generate()?;
    let key_pem = key.serialize_pem();
    let mut config = Config::new(mtls.url.parse()?);
    config.root_certs_pem = Some(ca.pem().into_bytes());
    config.client_identity = Some(ClientIdentity {
        cert_pem: ca.client_cert(&key, "sec-user")?.into_bytes(),
        key_pem: key_pem.clone().into_bytes().into(),
    });
    texts.debug(&config);
    let client = Client::new(config.clone())?;
    texts.debug(&client);
    bounded(client.run(&Request::list::<Pod>())).await??;
    assert_eq!(mtls.journal()[0].client_cn.as_deref(), Some("sec-user"));
    // The same key with a certificate of another CA: refused in the handshake.
    config.client_identity = Some(ClientIdentity {
        cert_pem: TestCa::new("other")?.client_cert(&key, "sec-user")?.into_bytes(),
        key_pem: key_pem.clone().into_bytes().into(),
    });
    let refused = bounded(Client::new(config)?.run(&Request::list::<Pod>()))
        .await?
        .err()
        .ok_or("a certificate of an unknown CA was accepted")?;
    texts.error(&refused);

    let mut secrets: Vec<String> = [TOKEN, PASSWORD, EXEC_TOKEN, EXEC_ARG_SECRET]
        .map(String::from)
        .to_vec();
    secrets.extend(key_lines(&key_pem));
    assert!(secrets.len() > 4, "the key has no body lines");
    for text in &texts.0 {
        assert_clean("Debug or Display output", text, &secrets);
    }

    // The capture works: TRACE lines of kazan, h2 and rustls are there.
    let captured = logs.text();
    for expected in ["TRACE", "DEBUG", "running exec credential plugin", "h2", "rustls"] {
        assert!(
            captured.contains(expected),
            "the logs lack `{expected}`; capture broken?\n{captured}"
        );
    }
    assert_clean("the TRACE logs", &captured, &secrets);
    Ok(())
}

#[tokio::test]
async fn tls_verification_is_on_by_default() -> TestResult {
    logs();
    let server = ApiServer::builder().tls(true).start().await?;
    let config = Config::new(server.url().parse()?);
    assert!(!config.insecure_skip_tls_verify);
    assert_eq!(config.root_certs_pem, None);
    // With only the system's roots, the server's own CA is unknown: no request gets through.
    match Client::new(config) {
        Ok(client) => {
            support::assert_tls_refused(
                &client,
                "invalid peer certificate: UnknownIssuer",
                "a server of an unknown CA was trusted",
            )
            .await?;
        }
        // A machine without system roots refuses earlier, with a typed error.
        Err(err) => assert!(
            matches!(
                err,
                Error::ClientSetup(kazan::error::ClientSetupError::NoSystemRoots { .. })
            ),
            "{err:?}"
        ),
    }
    assert!(server.journal().is_empty());
    Ok(())
}

#[tokio::test]
async fn credentials_never_follow_a_redirect_to_another_host() -> TestResult {
    logs();
    // The other host counts every request it gets.
    let elsewhere = ApiServer::start().await?;
    let server = ApiServer::builder()
        .token(TOKEN)
        .namespaces(&["default"])
        .start()
        .await?;
    let mut config = Config::new(server.url().parse()?);
    config.auth = AuthConfig::Token(TOKEN.to_string().into());
    let client = Client::new(config)?;
    let target = format!("{}/api/v1/pods", elsewhere.url());
    for code in [301, 302, 303, 307, 308] {
        server.faults().add_rule(FaultRule::new(
            FaultAction::raw(code, "text/html", "<html>moved</html>").header("Location", &target),
        ));
        let err = bounded(client.run(&Request::list::<Pod>()))
            .await?
            .err()
            .ok_or_else(|| format!("{code} was followed"))?;
        let api = err
            .api()
            .ok_or_else(|| format!("{code}: not an API error: {err:?}"))?;
        assert_eq!(api.code, code);
        assert!(!err.is_retryable(), "{code}");

        // A watch, and a watcher: the same, and the watcher ends.
        server.faults().add_rule(
            FaultRule::new(
                FaultAction::raw(code, "text/html", "<html>moved</html>").header("Location", &target),
            )
            .times(2),
        );
        let err = bounded(client.stream(&Request::watch_list::<Pod>().resource_version("1")))
            .await?
            .err()
            .ok_or_else(|| format!("{code} was followed by a watch"))?;
        assert_eq!(err.status_code(), Some(code));
        let mut w = Watcher::start(
            client.clone(),
            Request::list::<Pod>(),
            fast().resource_version("1"),
        )?;
        let ev = bounded(w.recv()).await?.ok_or("the watcher ended silently")?;
        assert!(
            matches!(&ev.kind, EventKind::Failed(e) if e.api_error().map(|a| a.code) == Some(code)),
            "{ev:?}"
        );
    }
    assert!(
        elsewhere.journal().is_empty(),
        "requests reached the other host: {:?}",
        elsewhere.journal()
    );
    assert_eq!(server.journal().len(), 15);
    // Asked directly for a URL on another host, the client refuses to send it.
    let request = http::Request::get(target.as_str()).body(bytes::Bytes::new())?;
    let err = bounded(client.send_raw(request))
        .await?
        .err()
        .ok_or("sent to another host")?;
    assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
    assert!(elsewhere.journal().is_empty());
    Ok(())
}
