//! Fuzz target for kubeconfig loading: structured kubeconfigs with secrets everywhere a secret
//! goes (tokens, passwords, key data, exec arguments and environment, credentials in URLs),
//! written as YAML or JSON, then damaged (cut, bytes flipped, text inserted, lines dropped or
//! re-indented), loaded through [`Config::from_kubeconfig_in`].
//!
//! Properties: loading gives a `Config` or a typed `ConfigError`, never a panic; no secret, whole
//! or in part, appears in the error (its `Display`, `Debug` or sources) or in the `Config`'s
//! `Debug`; and an undamaged well-formed kubeconfig loads to exactly what it says.
//! `PROPTEST_CASES=N` runs more cases; the corpus in `tests/corpus/kubeconfig/` is replayed.

use std::{error::Error, path::Path};

use kazan::{
    Config,
    config::{AuthConfig, ConfigEnv, KubeconfigOptions},
};
use kazan_test_support::fuzz_config;
use proptest::{prelude::*, test_runner::TestCaseError};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

/// Every secret in a generated kubeconfig starts with this; nothing else contains it.
const MARK: &str = "s3cr3t";

fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/=._-]{0,12}".prop_map(|s| format!("{MARK}{s}"))
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[a-z][a-z-]{0,7}", 1 => Just(String::new()), 1 => "[ -~]{0,8}"]
        .prop_filter("no secret marker", |n| !n.contains(MARK))
}

fn server() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (1u16..65535).prop_map(|p| json!(format!("https://127.0.0.1:{p}"))),
        1 => Just(json!("http://localhost:8080/prefix")),
        1 => Just(json!("127.0.0.1:6443")),
        1 => secret().prop_map(|s| json!(format!("https://admin:{s}@127.0.0.1:6443"))),
        1 => Just(json!("ftp://127.0.0.1")),
        1 => Just(json!("https://")),
        1 => "[ -~]{0,20}".prop_map(Value::from),
        1 => Just(Value::Null),
        1 => Just(json!(6443)),
    ]
}

fn cluster() -> impl Strategy<Value = Value> {
    (
        server(),
        prop::option::of(prop_oneof![Just("bm90IGEgY2VydA==".to_string()), "[ -~]{0,16}"]),
        prop::option::of(any::<bool>()),
        prop::option::of(prop_oneof![
            secret().prop_map(|s| format!("http://user:{s}@127.0.0.1:3128")),
            Just("socks5://127.0.0.1:1080".to_string()),
            "[ -~]{0,16}",
        ]),
        prop::option::of(Just("missing/ca.crt")),
    )
        .prop_map(|(server, ca_data, insecure, proxy, ca_file)| {
            let mut c = json!({ "server": server });
            if let Some(v) = ca_data {
                c["certificate-authority-data"] = v.into();
            }
            if let Some(v) = insecure {
                c["insecure-skip-tls-verify"] = v.into();
            }
            if let Some(v) = proxy {
                c["proxy-url"] = v.into();
            }
            if let Some(v) = ca_file {
                c["certificate-authority"] = v.into();
            }
            c
        })
}

fn user() -> impl Strategy<Value = Value> {
    (
        prop::option::of(secret()),
        prop::option::of((name(), secret())),
        prop::option::of(secret()),
        prop::option::of((
            prop::collection::vec(secret(), 0..3),
            prop::collection::vec(("[A-Z_]{1,8}", secret()), 0..3),
            prop::option::of(prop::sample::select(vec![
                "client.authentication.k8s.io/v1",
                "client.authentication.k8s.io/v1beta1",
                "v0",
            ])),
        )),
        prop::option::of(Just("token/file")),
        any::<bool>(),
    )
        .prop_map(
            |(token, basic, key_data, exec, token_file, provide_cluster_info)| {
                let mut u = json!({});
                if let Some(v) = token {
                    u["token"] = v.into();
                }
                if let Some((username, password)) = basic {
                    u["username"] = username.into();
                    u["password"] = password.into();
                }
                if let Some(v) = key_data {
                    u["client-key-data"] = v.into();
                }
                if let Some((args, env, api_version)) = exec {
                    let env: Vec<Value> = env
                        .into_iter()
                        .map(|(name, value)| json!({"name": name, "value": value}))
                        .collect();
                    u["exec"] = json!({
                        "command": "/bin/false",
                        "args": args,
                        "env": env,
                        "apiVersion": api_version,
                        "provideClusterInfo": provide_cluster_info,
                    });
                }
                if let Some(v) = token_file {
                    u["tokenFile"] = v.into();
                }
                u
            },
        )
}

/// A kubeconfig with a few clusters, users and contexts that refer to each other (or not).
fn kubeconfig() -> impl Strategy<Value = Value> {
    let names = prop::collection::vec(name(), 1..4);
    (names, prop::collection::vec(cluster(), 1..3), prop::collection::vec(user(), 1..3), any::<prop::sample::Index>())
        .prop_map(|(names, clusters, users, current)| {
            let pick = |i: usize| names[i % names.len()].clone();
            let clusters: Vec<Value> = clusters
                .into_iter()
                .enumerate()
                .map(|(i, c)| json!({"name": pick(i), "cluster": c}))
                .collect();
            let users: Vec<Value> = users
                .into_iter()
                .enumerate()
                .map(|(i, u)| json!({"name": pick(i), "user": u}))
                .collect();
            let contexts: Vec<Value> = (0..names.len())
                .map(|i| json!({"name": pick(i), "context": {"cluster": pick(i), "user": pick(i + 1), "namespace": "ns"}}))
                .collect();
            json!({
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": current.get(&names),
                "clusters": clusters,
                "users": users,
                "contexts": contexts,
            })
        })
}

/// Block-style YAML, with every string double-quoted (a JSON string is a valid YAML one).
fn yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                out.push_str(&format!("\n{pad}{}:", Value::from(k.as_str())));
                yaml(v, indent + 2, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                out.push_str(&format!("\n{pad}-"));
                yaml(item, indent + 2, out);
            }
        }
        scalar => out.push_str(&format!(" {scalar}")),
    }
}

/// A way to damage the file's text.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Cut(usize),
    Flip(usize, u8),
    Insert(usize, String),
    DropLine(usize),
    Indent(usize, usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        2 => Just(Damage::None),
        1 => any::<usize>().prop_map(Damage::Cut),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Flip(i, b)),
        2 => (any::<usize>(), prop_oneof![
            Just(": ".to_string()), Just("\n- ".to_string()), Just("\"".to_string()),
            Just("&a ".to_string()), Just("*a".to_string()), Just("!!binary ".to_string()),
            Just("{".to_string()), Just("\t".to_string()), Just("---\n".to_string()),
            "[ -~\\n]{0,6}",
        ]).prop_map(|(i, s)| Damage::Insert(i, s)),
        1 => any::<usize>().prop_map(Damage::DropLine),
        1 => (any::<usize>(), 0usize..4).prop_map(|(i, n)| Damage::Indent(i, n)),
    ]
}

fn apply(text: &str, damage: &Damage) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    let at = |i: usize| i % (bytes.len() + 1);
    match damage {
        Damage::None => {}
        Damage::Cut(i) => bytes.truncate(at(*i)),
        Damage::Flip(i, b) => {
            let i = at(*i);
            if let Some(byte) = bytes.get_mut(i) {
                *byte = *b;
            }
        }
        Damage::Insert(i, s) => {
            let i = at(*i);
            bytes.splice(i..i, s.bytes());
        }
        Damage::DropLine(i) | Damage::Indent(i, _) => {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            if !lines.is_empty() {
                let n = i % lines.len();
                match damage {
                    Damage::Indent(_, by) => {
                        lines[n] = format!("{}{}", " ".repeat(*by), lines[n].trim_start())
                    }
                    _ => {
                        lines.remove(n);
                    }
                }
            }
            bytes = lines.join("\n").into_bytes();
        }
    }
    bytes
}

/// Loads `bytes` as a kubeconfig with `options` and checks that no secret shows.
fn check_load(bytes: &[u8], options: KubeconfigOptions) -> Result<Result<Config, String>, TestCaseError> {
    let fail = |e: std::io::Error| TestCaseError::fail(e.to_string());
    let dir = tempfile::tempdir().map_err(fail)?;
    let path = dir.path().join("config");
    std::fs::write(&path, bytes).map_err(fail)?;
    let mut options = options;
    options.path = Some(path);
    let env = ConfigEnv::empty(dir.path().join("no-service-account"));
    match Config::from_kubeconfig_in(&options, &env) {
        Ok(config) => {
            let debug = format!("{config:?}");
            prop_assert!(!debug.contains(MARK), "a secret in Debug: {}", debug);
            Ok(Ok(config))
        }
        Err(e) => {
            let mut shown = format!("{e}\n{e:?}");
            let mut source = e.source();
            while let Some(s) = source {
                shown.push_str(&format!("\n{s}"));
                source = s.source();
            }
            prop_assert!(!shown.contains(MARK), "a secret in the error: {}", shown);
            prop_assert!(!e.to_string().is_empty());
            Ok(Err(e.to_string()))
        }
    }
}

fn render(value: &Value, as_yaml: bool) -> String {
    if as_yaml {
        let mut out = String::new();
        yaml(value, 0, &mut out);
        out
    } else {
        serde_json::to_string_pretty(value).unwrap_or_default()
    }
}

proptest! {
    #![proptest_config(fuzz_config(128))]

    /// Generated kubeconfigs, damaged or not, chosen context/cluster/user or not: a `Config` or
    /// a typed error, and never a secret in either.
    #[test]
    fn fuzz_kubeconfig_secrets_never_show(
        file in kubeconfig(),
        as_yaml in any::<bool>(),
        damage in damage(),
        context in prop::option::of(name()),
        cluster in prop::option::of(name()),
        user in prop::option::of(name()),
    ) {
        let bytes = apply(&render(&file, as_yaml), &damage);
        let mut options = KubeconfigOptions::default();
        options.context = context;
        options.cluster = cluster;
        options.user = user;
        let _loaded_or_typed_error = check_load(&bytes, options)?;
    }

    /// Arbitrary text and bytes: never a panic. (Where a secret would be cannot be told in
    /// arbitrary text, and the text holds no secret marker: the check for one stays inert.)
    #[test]
    fn fuzz_kubeconfig_arbitrary_text(
        text in prop_oneof![
            "[ -~\\n\\t]{0,300}",
            prop::collection::vec("(clusters|users|contexts|current-context|name|cluster|user|server|token|exec|args|- |: |\\n  |\\{|\\[|\\]|\\}|\"|'|&a|\\*a|<<|[a-z]{1,4}|null|~|!!str|---|\\.\\.\\.|#|%YAML 1.2)", 0..60)
                .prop_map(|parts| parts.concat()),
        ],
        bytes in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let _loaded_or_typed_error = check_load(text.as_bytes(), KubeconfigOptions::default())?;
        let mut mixed = text.into_bytes();
        mixed.extend(bytes);
        let _loaded_or_typed_error = check_load(&mixed, KubeconfigOptions::default())?;
    }

    /// An undamaged, well-formed kubeconfig loads to exactly what it says.
    #[test]
    fn fuzz_kubeconfig_well_formed_loads(
        port in 1u16..65535,
        token in secret(),
        namespace in "[a-z][a-z0-9-]{0,10}",
        as_yaml in any::<bool>(),
        extra in prop::collection::vec(("[a-z]{1,6}", "[a-z0-9 ]{0,6}"), 0..3),
    ) {
        let mut file = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "ctx",
            "clusters": [{"name": "c", "cluster": {"server": format!("https://127.0.0.1:{port}")}}],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": namespace}}],
        });
        // Fields kazan does not know are ignored, as kubectl ignores them.
        for (k, v) in extra {
            file[format!("x-{k}")] = v.into();
        }
        let config = check_load(render(&file, as_yaml).as_bytes(), KubeconfigOptions::default())?
            .map_err(TestCaseError::fail)?;
        prop_assert_eq!(config.cluster_url.to_string(), format!("https://127.0.0.1:{port}/"));
        prop_assert_eq!(&config.default_namespace, &namespace);
        match &config.auth {
            AuthConfig::Token(t) => prop_assert_eq!(t.expose_secret(), token.as_str()),
            other => return Err(TestCaseError::fail(format!("auth {other:?}"))),
        }
    }
}

/// Every file of `tests/corpus/kubeconfig/` loads to a `Config` or a typed error without
/// showing its secrets (each marked with `s3cr3t`), as is and with a context, cluster and user
/// chosen.
#[test]
fn fuzz_kubeconfig_corpus_replays() -> Result<(), Box<dyn Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/kubeconfig");
    let mut replayed = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let bytes = std::fs::read(&path)?;
        for options in [
            KubeconfigOptions::default(),
            KubeconfigOptions::default().with_context("ctx"),
            KubeconfigOptions::default().with_cluster("c").with_user("u"),
            KubeconfigOptions::default().with_context("missing"),
        ] {
            let _loaded_or_typed_error =
                check_load(&bytes, options).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        replayed += 1;
    }
    assert!(replayed >= 8, "only {replayed} corpus files");
    Ok(())
}
