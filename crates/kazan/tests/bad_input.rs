//! The bad-input catalogue of RELIABILITY.md: every input here is one a real setup can produce
//! (a broken kubeconfig, a dead or hung server, a proxy that mangles bodies, a plugin that hangs),
//! and each test pins what happens: the typed error with its message, and for the watcher that no
//! event is lost (the good events after the bad input arrive, and the watcher's resourceVersion is
//! the last good one).
//!
//! Rows already covered elsewhere are cited in RELIABILITY.md; this file holds the rest. The
//! embedded API server produces every input it can (fault rules, bytes injected into watches); the
//! small server in `support/` serves what it cannot (a client-certificate check, resourceVersions
//! that are not numbers, a peer that accepts and never answers).

use crate::support;
use support::{WAIT, bounded};

use std::{path::Path, time::Duration};

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kazan::{
    Client, Config, Error, Request,
    auth::AuthError,
    config::{AuthConfig, ClientIdentity, ConfigError, ExecConfig, KubeconfigOptions},
    watcher::{EndReason, Event, EventKind, EventType, InitialList, WatchError, Watcher, WatcherOptions},
};
use kazan_apiserver::{ApiServer, FaultAction, FaultRule};
use rcgen::KeyPair;
use serde_json::{Value, json};
use support::{TestCa, TestError, TestResult, TestServer, silent_listener};

const CM_PATH: &str = "/api/v1/namespaces/w/configmaps";

fn write(dir: &Path, name: &str, content: &str) -> Result<std::path::PathBuf, TestError> {
    let path = dir.join(name);
    std::fs::write(&path, content)?;
    Ok(path)
}

fn load(path: &Path) -> Result<Config, ConfigError> {
    Config::from_kubeconfig(&KubeconfigOptions::path(path))
}

fn kubeconfig_with_user(server: &str, user: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
         clusters:\n- name: c\n  cluster:\n    server: {server}\n\
         users:\n- name: u\n  user:\n{user}\n\
         contexts:\n- name: c\n  context: {{cluster: c, user: u}}\n"
    )
}

// ---- Kubeconfig ---------------------------------------------------------------------------------

#[test]
fn empty_or_malformed_kubeconfigs_are_errors_naming_the_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    for (name, content) in [
        ("empty", ""),
        ("blank", "\n  \n"),
        ("comments-only", "# nothing here\n"),
    ] {
        let path = write(dir.path(), name, content)?;
        let err = load(&path).err().ok_or_else(|| format!("{name}: loaded"))?;
        assert!(
            matches!(&err, ConfigError::NoCurrentContext { .. }),
            "{name}: {err:?}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{name}: {err}"
        );
    }
    for (name, content) in [
        ("unclosed", "current-context: c\nclusters: [\n"),
        ("not-a-map", "- just\n- a list\n"),
        ("binary", "\u{0}\u{1}\u{2}garbage: [}"),
        ("wrong-shape", "clusters: 42\n"),
    ] {
        let path = write(dir.path(), name, content)?;
        let err = load(&path).err().ok_or_else(|| format!("{name}: loaded"))?;
        assert!(
            matches!(&err, ConfigError::MalformedKubeconfig { path: p, .. } if p == &path),
            "{name}: {err:?}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{name}: {err}"
        );
    }
    Ok(())
}

#[test]
fn missing_certificate_and_key_files_are_errors_naming_the_file_and_the_field() -> TestResult {
    let dir = tempfile::tempdir()?;
    let cert = dir.path().join("missing-client.crt");
    let key = dir.path().join("missing-client.key");
    let path = write(
        dir.path(),
        "config",
        &kubeconfig_with_user(
            "https://127.0.0.1:6443",
            &format!(
                "    client-certificate: {}\n    client-key: {}",
                cert.display(),
                key.display()
            ),
        ),
    )?;
    let err = load(&path)
        .err()
        .ok_or("a missing certificate file was accepted")?;
    assert!(
        matches!(&err, ConfigError::ReadFile { path: p, .. } if p == &cert),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("missing-client.crt") && message.contains("client-certificate"),
        "{message}"
    );

    // The certificate is there, the key is not.
    let ca = TestCa::new("ca")?;
    std::fs::write(&cert, ca.client_cert(&KeyPair::generate()?, "someone")?)?;
    let err = load(&path).err().ok_or("a missing key file was accepted")?;
    assert!(
        matches!(&err, ConfigError::ReadFile { path: p, .. } if p == &key),
        "{err:?}"
    );
    assert!(err.to_string().contains("client-key"), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_missing_token_file_is_a_retryable_auth_error_at_the_first_request() -> TestResult {
    // Token files are read when used, not when loaded: a pod's projected token may appear later.
    let server = ApiServer::builder().token("t").start().await?;
    let dir = tempfile::tempdir()?;
    let token = dir.path().join("missing-token");
    let path = write(
        dir.path(),
        "config",
        &kubeconfig_with_user(&server.url(), &format!("    tokenFile: {}", token.display())),
    )?;
    let client = Client::new(load(&path)?)?;
    let err = bounded(client.run(&Request::list::<Pod>()))
        .await?
        .err()
        .ok_or("listed without a token")?;
    assert!(
        matches!(&err, Error::Auth(AuthError::TokenFile { path, .. }) if path == &token),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(err.to_string().contains("missing-token"), "{err}");
    assert!(
        server.journal().is_empty(),
        "a request went out without its token"
    );

    std::fs::write(&token, "t\n")?;
    assert_eq!(
        bounded(client.run(&Request::list::<Pod>())).await??.items.len(),
        0
    );
    Ok(())
}

// ---- TLS ----------------------------------------------------------------------------------------

#[tokio::test]
async fn an_expired_client_certificate_is_refused_with_a_tls_error() -> TestResult {
    let ca = TestCa::new("ca")?;
    let server = support::mtls_server(&ca).await?;
    let key = KeyPair::generate()?;
    let mut cfg = Config::new(server.url.parse()?);
    cfg.root_certs_pem = Some(ca.pem().into_bytes());
    cfg.client_identity = Some(ClientIdentity {
        cert_pem: ca.expired_client_cert(&key, "expired-user")?.into_bytes(),
        key_pem: key.serialize_pem().into_bytes().into(),
    });
    let client = Client::new(cfg)?;

    let err = support::assert_tls_refused(
        &client,
        "received fatal alert: CertificateExpired",
        "an expired client certificate was accepted",
    )
    .await?;
    assert!(!err.is_retryable());
    assert!(server.journal().is_empty());
    Ok(())
}

// ---- Network ------------------------------------------------------------------------------------

#[tokio::test]
async fn a_server_that_accepts_and_never_answers_hits_the_request_deadline() -> TestResult {
    let (addr, _listener) = silent_listener().await?;
    let mut cfg = Config::new(format!("http://{addr}").parse()?);
    cfg.request_timeout = Duration::from_millis(300);
    let client = Client::new(cfg)?;

    support::assert_the_request_deadlines_fire(
        &client,
        &format!("http://{addr}"),
        Duration::from_millis(300),
    )
    .await?;

    // A watcher keeps retrying (a hung server may come back) and can always be stopped.
    let mut w = Watcher::start(client, Request::list::<Pod>(), support::fast_watcher_options())?;
    let stats = bounded(async {
        loop {
            let stats = w.stats();
            if stats.retries >= 2 {
                break stats;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await?;
    assert_eq!(stats.events, 0);
    assert!(w.is_running());
    assert_eq!(w.stop().await, kazan::watcher::StopOutcome::Stopped);
    assert!(bounded(w.recv()).await?.is_none());
    Ok(())
}

// ---- Bodies -------------------------------------------------------------------------------------

#[tokio::test]
async fn a_2xx_answer_that_is_not_json_or_is_truncated_is_a_decode_error_naming_the_url() -> TestResult {
    let server = ApiServer::start().await?;
    let truncated = r#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"5"},"items":[{"metadata":{"name":"a""#;
    for body in ["<html><body>Welcome to nginx!</body></html>", truncated, ""] {
        server
            .faults()
            .add_rule(FaultRule::new(FaultAction::raw(200, "application/json", body)));
        let client = Client::new(Config::new(server.url().parse()?))?;
        let err = bounded(client.run(&Request::list::<Pod>()))
            .await?
            .err()
            .ok_or_else(|| format!("{body:?} decoded"))?;
        match &err {
            Error::Decode { url, what, .. } => {
                assert_eq!(*url, format!("{}/api/v1/pods", server.url()));
                assert!(what.contains("ObjectList"), "{what}");
            }
            other => return Err(format!("{body:?}: expected a decode error, got {other:?}").into()),
        }
        assert!(!err.is_retryable());
    }
    Ok(())
}

#[tokio::test]
async fn a_truncated_list_answer_ends_the_watcher_with_a_typed_failure() -> TestResult {
    let server = ApiServer::builder().namespaces(&["w"]).start().await?;
    server.faults().add_rule(
        FaultRule::new(FaultAction::raw(
            200,
            "application/json",
            r#"{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"5"},"items":[{"#,
        ))
        .path_prefix(CM_PATH),
    );
    let mut w = Watcher::start(
        Client::new(Config::new(server.url().parse()?))?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options(),
    )?;
    let ev = next(&mut w).await?;
    match &ev.kind {
        EventKind::Failed(e) => match &**e {
            WatchError::List { what, source } => {
                assert_eq!(what, CM_PATH);
                assert!(matches!(**source, Error::Decode { .. }), "{source:?}");
            }
            other => return Err(format!("expected a list error, got {other:?}").into()),
        },
        other => return Err(format!("expected Failed, got {other:?}").into()),
    }
    assert!(matches!(bounded(w.wait()).await?, EndReason::Failed { .. }));
    Ok(())
}

// ---- Bad lines in a live watch: reported or resumed, nothing lost ------------------------------

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "w"}, "data": {"v": name}})
}

fn rv_of(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn next<M: Send + 'static>(w: &mut kazan::watcher::WatcherHandle<M>) -> Result<M, TestError> {
    Ok(bounded(w.recv()).await?.ok_or("the watcher's channel closed")?)
}

fn added_name(ev: &Event<ConfigMap>) -> Option<String> {
    match &ev.kind {
        EventKind::Added(o) => o.metadata.name.clone(),
        _ => None,
    }
}

/// The `resourceVersion` each watch request of the `w` ConfigMaps asked for, in order.
fn watch_versions(server: &ApiServer) -> Vec<String> {
    server
        .journal()
        .iter()
        .filter(|e| e.watch && e.path == CM_PATH)
        .map(|e| {
            e.query
                .split('&')
                .find_map(|kv| kv.strip_prefix("resourceVersion="))
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// A watcher of the `w` ConfigMaps that has delivered `a`; returns it with `a` as stored.
async fn live_watch(
    server: &ApiServer,
    options: WatcherOptions,
) -> Result<(kazan::watcher::WatcherHandle<Event<ConfigMap>>, Value), TestError> {
    let start = server.resource_version().to_string();
    let mut w = Watcher::start(
        Client::new(Config::new(server.url().parse()?))?,
        Request::list::<ConfigMap>().namespace("w"),
        options.resource_version(start),
    )?;
    if !server.wait_for_watches("configmaps", 1, WAIT).await {
        return Err("the watch did not open".into());
    }
    let a = server.create(cm("a"))?;
    assert_eq!(added_name(&next(&mut w).await?).as_deref(), Some("a"));
    Ok((w, a))
}

/// Creates `b` and `c`; they arrive in order, and the watcher stands at `c`.
async fn the_following_events_arrive(
    server: &ApiServer,
    w: &mut kazan::watcher::WatcherHandle<Event<ConfigMap>>,
) -> TestResult {
    let b = server.create(cm("b"))?;
    let c = server.create(cm("c"))?;
    let ev_b = next(w).await?;
    assert_eq!(added_name(&ev_b).as_deref(), Some("b"), "{ev_b:?}");
    assert_eq!(ev_b.resource_version, Some(rv_of(&b)));
    let ev_c = next(w).await?;
    assert_eq!(added_name(&ev_c).as_deref(), Some("c"), "{ev_c:?}");
    assert_eq!(w.stats().resource_version, Some(rv_of(&c)));
    // Nothing else is waiting.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), w.recv())
            .await
            .is_err(),
        "an extra event arrived"
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_event_type_in_a_live_watch_is_skipped_and_nothing_is_lost() -> TestResult {
    let server = ApiServer::builder().namespaces(&["w"]).start().await?;
    let (mut w, a) = live_watch(&server, support::fast_watcher_options()).await?;
    server.faults().inject_into_watches(
        Some("configmaps"),
        &b"{\"type\":\"SURPRISE\",\"object\":{\"metadata\":{\"name\":\"x\",\"resourceVersion\":\"999\"}}}\n"
            [..],
    );
    let ev = next(&mut w).await?;
    assert!(
        matches!(&ev.kind, EventKind::Skipped(e) if matches!(&**e, WatchError::UnknownEventType(t) if t == "SURPRISE")),
        "{ev:?}"
    );
    assert_eq!(ev.resource_version, None, "an unknown event moves nothing");
    assert_eq!(w.stats().resource_version, Some(rv_of(&a)));
    the_following_events_arrive(&server, &mut w).await?;
    assert_eq!(watch_versions(&server).len(), 1, "the watch was not reopened");
    Ok(())
}

#[tokio::test]
async fn an_object_without_metadata_in_a_live_watch_is_skipped_and_nothing_is_lost() -> TestResult {
    let server = ApiServer::builder().namespaces(&["w"]).start().await?;
    let (mut w, a) = live_watch(&server, support::fast_watcher_options()).await?;
    server.faults().inject_into_watches(
        Some("configmaps"),
        &b"{\"type\":\"ADDED\",\"object\":{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"data\":{\"v\":\"?\"}}}\n"[..],
    );
    let ev = next(&mut w).await?;
    match &ev.kind {
        EventKind::Skipped(e) => {
            assert!(
                matches!(&**e, WatchError::MissingName { event_type: "ADDED", resource_version } if resource_version == "?"),
                "{e:?}"
            );
            assert_eq!(
                e.to_string(),
                "the ADDED event at resourceVersion ? carries an object without metadata.name; skipped"
            );
        }
        other => return Err(format!("expected Skipped, got {other:?}").into()),
    }
    assert_eq!(w.stats().resource_version, Some(rv_of(&a)));
    the_following_events_arrive(&server, &mut w).await?;
    assert_eq!(watch_versions(&server).len(), 1, "the watch was not reopened");
    Ok(())
}

#[tokio::test]
async fn a_listed_object_without_a_name_is_skipped_and_the_rest_of_the_list_is_delivered() -> TestResult {
    let server = ApiServer::builder().namespaces(&["w"]).start().await?;
    let a = server.create(cm("a"))?;
    let now = server.resource_version();
    // No server lists a nameless object; the fault rule stands in for a broken proxy or server.
    let list = json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": now.to_string()},
        "items": [{"metadata": {"namespace": "w", "resourceVersion": "1"}}, a]});
    server.faults().add_rule(
        FaultRule::new(FaultAction::raw(200, "application/json", &list.to_string()))
            .path_prefix(CM_PATH)
            .watch(false)
            .times(1),
    );
    let mut w = Watcher::start(
        Client::new(Config::new(server.url().parse()?))?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options()
            .deliver_initial_list(true)
            .initial_list(InitialList::Paginated),
    )?;

    let skipped = next(&mut w).await?;
    match &skipped.kind {
        EventKind::Skipped(e) => assert!(
            matches!(&**e, WatchError::MissingName { event_type: "ADDED", resource_version } if resource_version == "1"),
            "{e:?}"
        ),
        other => return Err(format!("expected Skipped, got {other:?}").into()),
    }
    assert_eq!(added_name(&next(&mut w).await?).as_deref(), Some("a"));
    assert_eq!(next(&mut w).await?.event_type(), EventType::Synced);
    if !server.wait_for_watches("configmaps", 1, WAIT).await {
        return Err("the watch did not open".into());
    }
    assert_eq!(watch_versions(&server), [now.to_string()]);
    the_following_events_arrive(&server, &mut w).await?;
    Ok(())
}

#[tokio::test]
async fn a_line_over_the_limit_in_a_live_watch_is_skipped_and_nothing_is_lost() -> TestResult {
    let server = ApiServer::builder().namespaces(&["w"]).start().await?;
    let (mut w, a) = live_watch(&server, support::fast_watcher_options().max_line_bytes(4096)).await?;
    let huge = format!(
        "{{\"type\":\"ADDED\",\"object\":{{\"metadata\":{{\"name\":\"huge\",\"resourceVersion\":\"999\"}},\"data\":{{\"v\":\"{}\"}}}}}}\n",
        "x".repeat(64 * 1024)
    );
    server
        .faults()
        .inject_into_watches(Some("configmaps"), huge.into_bytes());
    let ev = next(&mut w).await?;
    assert!(
        matches!(&ev.kind, EventKind::Skipped(e) if matches!(**e, WatchError::LineTooLong { max: 4096, len } if len > 4096)),
        "{ev:?}"
    );
    assert_eq!(w.stats().resource_version, Some(rv_of(&a)));
    the_following_events_arrive(&server, &mut w).await?;
    assert_eq!(watch_versions(&server).len(), 1, "the watch was not reopened");
    Ok(())
}

#[tokio::test]
async fn a_truncated_event_line_resumes_from_the_last_good_version_and_nothing_is_lost() -> TestResult {
    let server = ApiServer::builder().namespaces(&["w"]).start().await?;
    let (mut w, a) = live_watch(&server, support::fast_watcher_options()).await?;
    // Half an event, then a newline: what a proxy that drops part of a chunk leaves.
    server.faults().inject_into_watches(
        Some("configmaps"),
        &b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"half\",\"resourceVer\n"[..],
    );
    // The watcher drops the damaged stream and watches again from `a`.
    bounded(async {
        while watch_versions(&server).len() < 2 || !server.wait_for_watches("configmaps", 1, WAIT).await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await?;
    assert_eq!(watch_versions(&server)[1], rv_of(&a));
    the_following_events_arrive(&server, &mut w).await?;
    assert_eq!(w.stats().retries, 1);
    Ok(())
}

// ---- resourceVersions are opaque strings --------------------------------------------------------

fn configmap_with_rv(name: &str, rv: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "w", "resourceVersion": rv}})
}

fn event_line(event_type: &str, object: Value) -> String {
    format!("{}\n", json!({"type": event_type, "object": object}))
}

#[tokio::test]
async fn resource_versions_that_are_not_numbers_are_resumed_from_unchanged() -> TestResult {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    // A server whose versions are opaque, not ordered as numbers nor as text: the watcher must
    // pass them back exactly as received and compare them only for equality.
    let watches = Arc::new(AtomicUsize::new(0));
    let seen = watches.clone();
    let server = TestServer::start(None, move |request| {
        let watches = seen.clone();
        async move {
            if request.param("watch").as_deref() != Some("true") {
                let list = json!({"kind": "ConfigMapList", "apiVersion": "v1",
                    "metadata": {"resourceVersion": "Zm9v~list"},
                    "items": [configmap_with_rv("a", "a.1")]});
                return support::json(200, &list);
            }
            let body = match watches.fetch_add(1, Ordering::SeqCst) {
                // "zz" then "aa": going down as text; "0010" then "9": going down as numbers.
                0 => [
                    event_line("ADDED", configmap_with_rv("b", "zz_1")),
                    event_line("MODIFIED", configmap_with_rv("b", "aa_2")),
                    event_line("MODIFIED", configmap_with_rv("b", "0010")),
                ]
                .concat(),
                1 => [
                    // The same event again (same version): dropped, as the protocol allows.
                    event_line("MODIFIED", configmap_with_rv("b", "0010")),
                    event_line("MODIFIED", configmap_with_rv("b", "9")),
                    event_line("BOOKMARK", json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": "-bm-"}})),
                ]
                .concat(),
                // Then nothing more: hold the watch open.
                _ => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    String::new()
                }
            };
            let mut reply = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
            reply.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            reply
        }
    })
    .await?;
    let mut w = Watcher::start(
        Client::new(Config::new(server.url.parse()?))?,
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options()
            .bookmarks(true)
            .deliver_bookmarks(true)
            .deliver_initial_list(true)
            .initial_list(InitialList::Paginated),
    )?;
    let mut got = Vec::new();
    for _ in 0..7 {
        let paths: Vec<String> = server.journal().iter().map(|s| s.path.clone()).collect();
        let ev = next(&mut w)
            .await
            .map_err(|e| format!("{e} after {got:?}; requests: {paths:?}"))?;
        got.push((ev.event_type(), ev.resource_version.clone().unwrap_or_default()));
    }
    let expected: Vec<(EventType, String)> = [
        (EventType::Added, "a.1"),
        (EventType::Synced, "Zm9v~list"),
        (EventType::Added, "zz_1"),
        (EventType::Modified, "aa_2"),
        (EventType::Modified, "0010"),
        (EventType::Modified, "9"),
        (EventType::Bookmark, "-bm-"),
    ]
    .into_iter()
    .map(|(t, rv)| (t, rv.to_string()))
    .collect();
    assert_eq!(got, expected);
    let asked = bounded(async {
        loop {
            let asked: Vec<String> = server
                .journal()
                .iter()
                .filter(|s| s.param("watch").as_deref() == Some("true"))
                .map(|s| s.param("resourceVersion").unwrap_or_default())
                .collect();
            if asked.len() >= 3 {
                break asked;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await?;
    assert_eq!(asked, ["Zm9v~list", "0010", "-bm-"]);
    assert_eq!(w.stats().resource_version.as_deref(), Some("-bm-"));
    Ok(())
}

// ---- Selectors ----------------------------------------------------------------------------------

#[tokio::test]
async fn an_invalid_selector_is_a_400_and_a_terminal_watcher_failure() -> TestResult {
    let server = ApiServer::builder().namespaces(&["w"]).start().await?;
    let client = Client::new(Config::new(server.url().parse()?))?;
    for request in [
        Request::list::<ConfigMap>().namespace("w").labels("app in (web"),
        Request::list::<ConfigMap>().namespace("w").labels("=nothing"),
        Request::list::<ConfigMap>()
            .namespace("w")
            .fields("spec.nodeName=x"),
    ] {
        let err = bounded(client.run(&request))
            .await?
            .err()
            .ok_or("an invalid selector was served")?;
        let api = err.api().ok_or_else(|| format!("not an API error: {err:?}"))?;
        assert_eq!((api.code, api.reason()), (400, Some("BadRequest")), "{err}");
        assert!(!err.is_retryable());

        let mut w = Watcher::start(client.clone(), request, support::fast_watcher_options())?;
        let ev = next(&mut w).await?;
        assert!(
            matches!(&ev.kind, EventKind::Failed(e) if e.api_error().map(|a| a.code) == Some(400)),
            "{ev:?}"
        );
        assert!(matches!(bounded(w.wait()).await?, EndReason::Failed { .. }));
    }
    Ok(())
}

// ---- Exec plugins -------------------------------------------------------------------------------

#[cfg(unix)]
fn plugin(dir: &Path, body: &str) -> Result<String, TestError> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("plugin");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path.to_string_lossy().into_owned())
}

#[cfg(unix)]
#[tokio::test]
async fn a_hanging_exec_plugin_is_killed_at_its_deadline_with_a_retryable_error() -> TestResult {
    let server = ApiServer::builder().token("t").start().await?;
    let dir = tempfile::tempdir()?;
    // `exec`: the shell becomes the sleeper, so killing it leaves nothing behind.
    let command = plugin(dir.path(), "exec sleep 30")?;
    let mut exec = ExecConfig::new("client.authentication.k8s.io/v1", command.clone());
    exec.timeout = Some(Duration::from_millis(300));
    let mut cfg = Config::new(server.url().parse()?);
    cfg.auth = AuthConfig::Exec(exec);
    let client = Client::new(cfg)?;

    let err = bounded(client.run(&Request::list::<Pod>()))
        .await?
        .err()
        .ok_or("a hung plugin gave a credential")?;

    assert!(
        matches!(&err, Error::Auth(AuthError::ExecTimeout { command: c, after }) if *c == command && *after == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(
        err.to_string(),
        format!("exec plugin `{command}` did not finish within 300ms; it was killed")
    );
    assert!(
        server.journal().is_empty(),
        "a request went out without a credential"
    );
    assert_eq!(ExecConfig::new("v", "c").timeout, None);
    assert_eq!(ExecConfig::DEFAULT_TIMEOUT, Duration::from_secs(60));
    Ok(())
}
