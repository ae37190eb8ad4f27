//! Client certificates from exec credential plugins (`status.clientCertificateData` and
//! `status.clientKeyData`), end to end: the TLS handshakes of every kind of connection present
//! the plugin's current certificate to a loopback server that requires one, and a new
//! certificate (after the old one expires, or after a 401) is presented by the connections
//! opened afterwards.
//!
//! The plugins are small shell scripts written at test time, so these tests run on Unix only.
#![cfg(unix)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kazan::{
    Client, Config, Error, Request,
    auth::AuthError,
    config::{AuthConfig, ClientIdentity, KubeconfigOptions},
};
use rcgen::KeyPair;
use serde_json::json;

use crate::support;
use support::{Seen, TestCa, TestError, TestResult, TestServer, json, logs::logs, plugin::Plugin};
use support::{b64, bounded};

const V1: &str = "client.authentication.k8s.io/v1";

/// A plugin that counts its runs in `$STATE/runs` and prints `$STATE/output-N` for its Nth run
/// if that file exists, else `$STATE/output`.
const PLUGIN: &str = r#"set -e
echo run >> "$STATE/runs"
n=$(wc -l < "$STATE/runs" | tr -d ' ')
if [ -f "$STATE/output-$n" ]; then cat "$STATE/output-$n"; else cat "$STATE/output"; fi
"#;

/// An ExecCredential with a client certificate and key, and an expiry if given.
fn credential(cert_pem: &str, key_pem: &str, expires: Option<&str>) -> String {
    let mut status = json!({"clientCertificateData": cert_pem, "clientKeyData": key_pem});
    if let Some(expires) = expires {
        status["expirationTimestamp"] = json!(expires);
    }
    json!({"apiVersion": V1, "kind": "ExecCredential", "status": status}).to_string()
}

/// A fresh key and a client certificate for it, issued by `ca` with common name `cn`, as the
/// plugin prints them.
fn issued(ca: &TestCa, cn: &str) -> Result<(String, String), TestError> {
    let key = KeyPair::generate()?;
    Ok((ca.client_cert(&key, cn)?, key.serialize_pem()))
}

/// A watch answer: one `ADDED` event, then the end of the stream (the server's timeout).
fn watch_reply() -> support::Reply {
    let event = json!({"type": "ADDED", "object": {"kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "p", "namespace": "default", "resourceVersion": "2"}}});
    let mut reply = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(format!(
        "{event}\n"
    ))));
    reply.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    reply
}

/// A server requiring a client certificate of `ca` (offering HTTP/2 or only HTTP/1.1) that
/// answers a watch with one event and any other request with an empty `PodList`, to clients whose
/// certificate's common name `admits` accepts; others get 401.
async fn server(ca: &TestCa, h2: bool, admits: fn(&str) -> bool) -> Result<TestServer, TestError> {
    let mut tls = ca.server_tls(&["127.0.0.1"], h2)?;
    tls.client_ca = Some(ca.der());
    Ok(TestServer::start(Some(tls), move |seen: Seen| async move {
        if !seen.client_cn.as_deref().is_some_and(admits) {
            return json(
                401,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "Unauthorized", "code": 401}),
            );
        }
        if seen.param("watch").as_deref() == Some("true") {
            return watch_reply();
        }
        json(
            200,
            &json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []}),
        )
    })
    .await?)
}

fn anyone(_: &str) -> bool {
    true
}

/// A client of `server` trusting `ca`, authenticated by the plugin.
fn client(server: &TestServer, ca: &TestCa, plugin: &Plugin) -> Result<Client, TestError> {
    let mut config = Config::new(server.url.parse()?);
    config.root_certs_pem = Some(ca.pem().into_bytes());
    config.auth = AuthConfig::Exec(plugin.config(V1, &[]));
    Ok(Client::new(config)?)
}

/// The common names of the client certificates the server saw, request by request.
fn names_seen(server: &TestServer) -> Vec<String> {
    server
        .journal()
        .iter()
        .map(|seen| seen.client_cn.clone().unwrap_or_default())
        .collect()
}

/// Opens a watch and reads its one event to the end of the stream.
async fn watch_one_event(client: &Client) -> Result<(), TestError> {
    let mut watch = bounded(client.stream(&Request::watch_list::<Pod>().resource_version("1"))).await??;
    let mut text = Vec::new();
    while let Some(chunk) = bounded(watch.chunk()).await? {
        text.extend_from_slice(&chunk?);
    }
    let event: serde_json::Value = serde_json::from_slice(&text)?;
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["metadata"]["name"], "p");
    Ok(())
}

// --- The plugin's certificate is presented ----------------------------------------------------

async fn a_kubeconfig_exec_plugin_certificate_authenticates_requests_and_watches(h2: bool) -> TestResult {
    logs();
    let ca = TestCa::new("cluster ca")?;
    let server = server(&ca, h2, |cn| cn == "plugin-user").await?;
    let plugin = Plugin::new(PLUGIN)?;
    let (cert, key) = issued(&ca, "plugin-user")?;
    plugin.set_output(&credential(&cert, &key, None))?;
    let kubeconfig = plugin.state().join("config");
    std::fs::write(
        &kubeconfig,
        json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "clusters": [{"name": "c", "cluster": {
                "server": server.url,
                "certificate-authority-data": b64(ca.pem().as_bytes()),
            }}],
            "users": [{"name": "u", "user": {"exec": {
                "apiVersion": V1,
                "command": plugin.command(),
                "env": [{"name": "STATE", "value": plugin.state()}],
                "interactiveMode": "Never",
            }}}],
        })
        .to_string(),
    )?;
    let client = Client::new(Config::from_kubeconfig(&KubeconfigOptions::path(&kubeconfig))?)?;

    let pods = bounded(client.run(&Request::list::<Pod>())).await??;
    assert!(pods.items.is_empty());
    watch_one_event(&client).await?;
    bounded(client.run(&Request::list::<Pod>())).await??;

    assert_eq!(names_seen(&server), ["plugin-user"; 3]);
    assert_eq!(
        plugin.runs(),
        1,
        "the credential has no expiry: one run serves every request"
    );
    Ok(())
}

#[tokio::test]
async fn a_kubeconfig_exec_plugin_certificate_authenticates_requests_and_watches_over_http2() -> TestResult {
    a_kubeconfig_exec_plugin_certificate_authenticates_requests_and_watches(true).await
}

#[tokio::test]
async fn a_kubeconfig_exec_plugin_certificate_authenticates_requests_and_watches_over_http1() -> TestResult {
    a_kubeconfig_exec_plugin_certificate_authenticates_requests_and_watches(false).await
}

#[tokio::test]
async fn a_plugin_certificate_of_another_ca_is_a_tls_error() -> TestResult {
    logs();
    let ca = TestCa::new("cluster ca")?;
    let stranger = TestCa::new("some other ca")?;
    for h2 in [true, false] {
        let server = server(&ca, h2, anyone).await?;
        let plugin = Plugin::new(PLUGIN)?;
        let (cert, key) = issued(&stranger, "intruder")?;
        plugin.set_output(&credential(&cert, &key, None))?;
        let client = client(&server, &ca, &plugin)?;

        let err = support::assert_tls_refused(
            &client,
            "received fatal alert",
            "a certificate of an unknown CA was accepted",
        )
        .await?;
        assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");
        let watch = bounded(client.stream(&Request::watch_list::<Pod>().resource_version("1"))).await?;
        let err = watch
            .err()
            .ok_or("a watch with a certificate of an unknown CA was accepted")?;
        assert!(matches!(err, Error::Tls { .. }), "h2 {h2}: {err:?}");
        assert!(server.journal().is_empty());
    }
    Ok(())
}

#[tokio::test]
async fn a_certificate_in_the_config_itself_wins_over_the_plugins() -> TestResult {
    // As in client-go: the exec plugin still provides the token, the kubeconfig the certificate.
    logs();
    let ca = TestCa::new("cluster ca")?;
    let server = server(&ca, true, anyone).await?;
    let plugin = Plugin::new(PLUGIN)?;
    let (cert, key) = issued(&ca, "plugin-user")?;
    plugin.set_output(
        &json!({"apiVersion": V1, "kind": "ExecCredential", "status": {
            "token": "plugin-token", "clientCertificateData": cert, "clientKeyData": key}})
        .to_string(),
    )?;
    let (own_cert, own_key) = issued(&ca, "kubeconfig-user")?;
    let mut config = Config::new(server.url.parse()?);
    config.root_certs_pem = Some(ca.pem().into_bytes());
    config.auth = AuthConfig::Exec(plugin.config(V1, &[]));
    config.client_identity = Some(ClientIdentity {
        cert_pem: own_cert.into_bytes(),
        key_pem: own_key.into_bytes().into(),
    });
    let client = Client::new(config)?;

    bounded(client.run(&Request::list::<Pod>())).await??;

    let journal = server.journal();
    assert_eq!(names_seen(&server), ["kubeconfig-user"]);
    assert_eq!(
        journal
            .first()
            .and_then(|seen| seen.header("authorization"))
            .as_deref(),
        Some("Bearer plugin-token")
    );
    Ok(())
}

// --- Rotation -------------------------------------------------------------------------------

async fn an_expired_plugin_certificate_is_replaced_on_the_next_connection(h2: bool) -> TestResult {
    logs();
    let ca = TestCa::new("cluster ca")?;
    let server = server(&ca, h2, anyone).await?;
    let plugin = Plugin::new(PLUGIN)?;
    // Valid for two seconds: the client runs the plugin again after one (half its life).
    let expires = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(2))?
        .to_string();
    let (cert, key) = issued(&ca, "before")?;
    plugin.set_output(&credential(&cert, &key, Some(&expires)))?;
    let client = client(&server, &ca, &plugin)?;
    bounded(client.run(&Request::list::<Pod>())).await??;
    assert_eq!(names_seen(&server), ["before"]);

    // What the plugin prints from now on; the client runs it again once the first expires.
    let (cert, key) = issued(&ca, "after")?;
    plugin.set_output(&credential(&cert, &key, None))?;
    let rotated = async {
        loop {
            client.run(&Request::list::<Pod>()).await?;
            if names_seen(&server).last().map(String::as_str) == Some("after") {
                return Ok::<_, TestError>(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    bounded(rotated).await??;
    bounded(client.run(&Request::list::<Pod>())).await??;

    let names = names_seen(&server);
    let first_after = names.iter().position(|n| n == "after").ok_or("never rotated")?;
    assert!(names[..first_after].iter().all(|n| n == "before"), "{names:?}");
    assert!(names[first_after..].iter().all(|n| n == "after"), "{names:?}");
    assert_eq!(plugin.runs(), 2);
    // With an HTTP/1.1 server, the client's first connection only learns so (by ALPN) and is
    // closed.
    let alpn_probe = usize::from(!h2);
    assert_eq!(
        server.connections(),
        2 + alpn_probe,
        "one connection per certificate"
    );
    Ok(())
}

#[tokio::test]
async fn an_expired_plugin_certificate_is_replaced_on_the_next_http2_connection() -> TestResult {
    an_expired_plugin_certificate_is_replaced_on_the_next_connection(true).await
}

#[tokio::test]
async fn an_expired_plugin_certificate_is_replaced_on_the_next_http1_connection() -> TestResult {
    an_expired_plugin_certificate_is_replaced_on_the_next_connection(false).await
}

/// A server that admits only the certificate the plugin prints on its second run: the first
/// request is refused with 401, the client runs the plugin again and sends once more, on a
/// connection presenting the new certificate.
async fn a_401_rotates_the_plugin_certificate(h2: bool, watch: bool) -> TestResult {
    let logs = logs();
    let ca = TestCa::new("cluster ca")?;
    let server = server(&ca, h2, |cn| cn == "rotated").await?;
    let plugin = Plugin::new(PLUGIN)?;
    let (cert, first_key) = issued(&ca, "revoked")?;
    plugin.set_output_of_run(1, &credential(&cert, &first_key, None))?;
    let (cert, key) = issued(&ca, "rotated")?;
    plugin.set_output(&credential(&cert, &key, None))?;
    let client = client(&server, &ca, &plugin)?;

    if watch {
        watch_one_event(&client).await?;
    } else {
        bounded(client.run(&Request::list::<Pod>())).await??;
    }
    bounded(client.run(&Request::list::<Pod>())).await??;

    assert_eq!(names_seen(&server), ["revoked", "rotated", "rotated"]);
    assert_eq!(plugin.runs(), 2, "one run per certificate");
    // With an HTTP/1.1 server, the client's first connection only learns so (by ALPN) and is
    // closed; a watch has a connection of its own, and the list after it goes through the pool,
    // which connects once more.
    let alpn_probe = usize::from(!h2);
    let pooled_after_watch = usize::from(watch && !h2);
    assert_eq!(
        server.connections(),
        2 + alpn_probe + pooled_after_watch,
        "one connection per certificate"
    );

    // The rotation is logged; neither key is.
    let logs = logs.text();
    assert!(logs.contains("exec plugin client certificate changed"), "{logs}");
    for key in [first_key, key] {
        let body = key.lines().nth(1).ok_or("the key has a body")?;
        assert!(!logs.contains(body), "the logs show a private key");
    }
    assert!(!logs.contains("PRIVATE KEY"), "the logs show a private key");
    Ok(())
}

#[tokio::test]
async fn a_401_rotates_the_plugin_certificate_of_http2_requests() -> TestResult {
    a_401_rotates_the_plugin_certificate(true, false).await
}

#[tokio::test]
async fn a_401_rotates_the_plugin_certificate_of_http2_watches() -> TestResult {
    a_401_rotates_the_plugin_certificate(true, true).await
}

#[tokio::test]
async fn a_401_rotates_the_plugin_certificate_of_pooled_http1_requests() -> TestResult {
    a_401_rotates_the_plugin_certificate(false, false).await
}

#[tokio::test]
async fn a_401_rotates_the_plugin_certificate_of_http1_watches() -> TestResult {
    a_401_rotates_the_plugin_certificate(false, true).await
}

// --- Unusable certificates ------------------------------------------------------------------

#[tokio::test]
async fn a_plugin_key_that_is_not_the_certificates_is_an_error_naming_the_field() -> TestResult {
    logs();
    let ca = TestCa::new("cluster ca")?;
    let server = server(&ca, true, anyone).await?;
    let plugin = Plugin::new(PLUGIN)?;
    let (cert, _) = issued(&ca, "plugin-user")?;
    let (_, other_key) = issued(&ca, "someone else")?;
    plugin.set_output(&credential(&cert, &other_key, None))?;
    let client = client(&server, &ca, &plugin)?;

    let err = bounded(client.run(&Request::list::<Pod>()))
        .await?
        .err()
        .ok_or("a key of another certificate was accepted")?;
    assert!(
        matches!(err, Error::Auth(AuthError::ExecOutput { .. })),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(
            "`status.clientKeyData` is not the private key of the certificate in `status.clientCertificateData`"
        ),
        "{text}"
    );
    let body = other_key.lines().nth(1).ok_or("the key has a body")?.to_string();
    for shown in [text, format!("{err:?}")] {
        assert!(
            !shown.contains(&body) && !shown.contains("PRIVATE KEY-----"),
            "{shown}"
        );
    }
    assert!(server.journal().is_empty());
    assert_eq!(
        server.connections(),
        0,
        "nothing is sent without usable credentials"
    );
    Ok(())
}

#[tokio::test]
async fn a_plugin_certificate_that_is_not_pem_is_an_error_naming_the_field() -> TestResult {
    logs();
    let ca = TestCa::new("cluster ca")?;
    let server = server(&ca, true, anyone).await?;
    let plugin = Plugin::new(PLUGIN)?;
    let (_, key) = issued(&ca, "plugin-user")?;
    let garbled = "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
    plugin.set_output(&credential(garbled, &key, None))?;
    let client = client(&server, &ca, &plugin)?;

    let err = bounded(client.run(&Request::list::<Pod>()))
        .await?
        .err()
        .ok_or("a garbled certificate was accepted")?;
    assert!(
        matches!(err, Error::Auth(AuthError::ExecOutput { .. })),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("`status.clientCertificateData`"),
        "{err}"
    );
    assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");
    Ok(())
}
