//! `kazan get`, run as a binary against an embedded API server: each output form for a list and
//! for one object, the errors that name what is at fault (object, kubeconfig, context), and
//! impersonation (`--as`, `--as-uid`, `--as-group`).

use crate::support;

use serde_json::{Value, json};
use support::{Cluster, Result, mask_ages, without_server_fields};

async fn two_configmaps() -> Result<Cluster> {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({"k": "v"}))?;
    cluster.configmap("settings", json!({"mode": "fast", "size": "3"}))?;
    Ok(cluster)
}

#[tokio::test(flavor = "multi_thread")]
async fn get_prints_a_table_and_with_all_namespaces_the_namespace_column() -> Result {
    let cluster = two_configmaps().await?;
    let finished = cluster.run(&["get", "cm", "-n", "w"]).await?;
    assert_eq!(finished.code, Some(0));
    let lines: Vec<String> = finished.stdout.lines().map(mask_ages).collect();
    assert_eq!(
        lines,
        [
            "NAME       DATA   AGE",
            "a          1      <age>",
            "settings   2      <age>"
        ]
    );
    let finished = cluster.run(&["get", "configmaps", "-A", "-o", "wide"]).await?;
    let lines: Vec<String> = finished.stdout.lines().map(mask_ages).collect();
    assert_eq!(
        lines,
        [
            "NAMESPACE   NAME       DATA   AGE",
            "w           a          1      <age>",
            "w           settings   2      <age>",
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn get_json_prints_a_list_or_the_object() -> Result {
    let cluster = two_configmaps().await?;
    let finished = cluster.run(&["get", "cm", "-n", "w", "-o", "json"]).await?;
    assert_eq!(finished.code, Some(0));
    let mut list: Value = serde_json::from_str(&finished.stdout)?;
    if let Some(items) = list["items"].as_array_mut() {
        for item in items {
            *item = without_server_fields(item.take());
        }
    }
    assert_eq!(
        list,
        json!({
            "apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
            "items": [
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "w"}, "data": {"k": "v"}},
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "w"},
                 "data": {"mode": "fast", "size": "3"}}
            ]
        })
    );
    let finished = cluster
        .run(&["get", "configmap", "settings", "-n", "w", "-o", "json"])
        .await?;
    let object: Value = serde_json::from_str(&finished.stdout)?;
    assert_eq!(
        without_server_fields(object),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "w"},
               "data": {"mode": "fast", "size": "3"}})
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn get_yaml_and_name_forms() -> Result {
    let cluster = two_configmaps().await?;
    let finished = cluster
        .run(&["get", "cm", "settings", "-n", "w", "-o", "yaml"])
        .await?;
    assert_eq!(finished.code, Some(0));
    let object: Value = serde_saphyr::from_str(&finished.stdout)?;
    assert_eq!(
        without_server_fields(object),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "w"},
               "data": {"mode": "fast", "size": "3"}})
    );
    let finished = cluster.run(&["get", "cm", "-n", "w", "-o", "yaml"]).await?;
    let list: Value = serde_saphyr::from_str(&finished.stdout)?;
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][1]["metadata"]["name"], "settings");
    let finished = cluster.run(&["get", "cm", "-n", "w", "-o", "name"]).await?;
    assert_eq!(finished.stdout, "configmap/a\nconfigmap/settings\n");
    let finished = cluster
        .run(&[
            "get",
            "cm",
            "-n",
            "w",
            "-o",
            "name",
            "--field-selector",
            "metadata.name=a",
        ])
        .await?;
    assert_eq!(finished.stdout, "configmap/a\n");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn get_of_a_kind_with_columns_and_of_a_custom_resource() -> Result {
    let cluster = Cluster::start().await?;
    cluster.server.create(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "w", "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "nginx:1.29"}]}}}
    }))?;
    let finished = cluster
        .run(&["get", "deploy", "-n", "w", "-o", "wide", "-l", "app=web"])
        .await?;
    let lines: Vec<String> = finished.stdout.lines().map(mask_ages).collect();
    assert_eq!(
        lines,
        [
            "NAME   READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS   IMAGES       SELECTOR",
            "web    0/2     0            0           <age> app          nginx:1.29   app=web",
        ]
    );
    cluster.server.registry().register(
        kazan_apiserver::ResourceDef::new("example.com", "v1", "Gadget", "gadgets", false)
            .short_names(&["gd"]),
    );
    cluster
        .server
        .create(json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}}))?;
    let finished = cluster.run(&["get", "gd", "-o", "name"]).await?;
    assert_eq!(finished.stdout, "gadget.example.com/g1\n");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_name_the_object_the_file_and_the_context_at_fault() -> Result {
    let cluster = Cluster::start().await?;
    let finished = cluster.run(&["get", "cm", "missing", "-n", "w"]).await?;
    assert_eq!(finished.code, Some(1));
    assert_eq!(
        finished.stderr,
        "error: getting configmaps \"missing\" in namespace \"w\": 404 NotFound: configmaps \"missing\" not found\n"
    );

    let finished = cluster.run(&["get", "cm", "-n", "w"]).await?;
    assert_eq!(finished.code, Some(0));
    assert_eq!(finished.stdout, "");
    assert_eq!(finished.stderr, "No resources found in w namespace.\n");

    let finished = cluster.run(&["get", "cm", "--context", "nowhere"]).await?;
    assert_eq!(finished.code, Some(1));
    assert!(finished.stderr.starts_with("error: "), "{}", finished.stderr);
    assert!(finished.stderr.contains("nowhere"), "{}", finished.stderr);
    assert!(
        finished
            .stderr
            .contains(&cluster.kubeconfig.display().to_string()),
        "{}",
        finished.stderr
    );

    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kazan"));
    command.args(["get", "pods", "--kubeconfig", "/nonexistent/kubeconfig"]);
    let finished = support::Kazan::spawn(command)?.finish().await?;
    assert_eq!(finished.code, Some(1));
    assert_eq!(
        finished.stderr,
        "error: kubeconfig /nonexistent/kubeconfig does not exist\n"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn as_flags_impersonate_on_every_request() -> Result {
    let cluster = two_configmaps().await?;
    let finished = cluster
        .run(&[
            "get",
            "cm",
            "-n",
            "w",
            "-o",
            "name",
            "--as",
            "jane",
            "--as-uid",
            "1001",
            "--as-group",
            "devs",
            "--as-group",
            "ops",
        ])
        .await?;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);

    every_request_impersonates(
        &cluster,
        &[
            ("impersonate-user", "jane"),
            ("impersonate-uid", "1001"),
            ("impersonate-group", "devs"),
            ("impersonate-group", "ops"),
        ],
    );
    Ok(())
}

/// Every request the server saw carried exactly these `Impersonate-*` headers, in this order.
fn every_request_impersonates(cluster: &Cluster, headers: &[(&str, &str)]) {
    let expected: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let journal = cluster.server.journal();
    assert!(!journal.is_empty());
    for entry in &journal {
        assert_eq!(entry.impersonation, expected, "{} {}", entry.method, entry.path);
    }
}

/// As kubectl: a kubeconfig user's `as-groups` without `as` loads, and `--as` completes it.
#[tokio::test(flavor = "multi_thread")]
async fn as_completes_the_kubeconfigs_groups() -> Result {
    let cluster = Cluster::start().await?;
    let kubeconfig = std::fs::read_to_string(&cluster.kubeconfig)?;
    let (before, after) = kubeconfig
        .split_once("users:\n- name: kazan\n")
        .ok_or("the server's kubeconfig has its user")?;
    let user = match after.strip_prefix("  user: {}\n") {
        Some(rest) => format!("  user:\n    as-groups: [devs]\n{rest}"),
        None => after.replacen("  user:\n", "  user:\n    as-groups: [devs]\n", 1),
    };
    std::fs::write(
        &cluster.kubeconfig,
        format!("{before}users:\n- name: kazan\n{user}"),
    )?;

    let refused = cluster.run(&["get", "cm", "-n", "w"]).await?;
    assert_eq!(refused.code, Some(1));
    assert!(
        refused
            .stderr
            .contains("requesting as-groups without impersonating a user"),
        "{}",
        refused.stderr
    );
    assert!(
        cluster.server.journal().is_empty(),
        "nothing is sent without a user"
    );

    let finished = cluster.run(&["get", "cm", "-n", "w", "--as", "jane"]).await?;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    every_request_impersonates(
        &cluster,
        &[("impersonate-user", "jane"), ("impersonate-group", "devs")],
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn as_group_without_a_user_to_impersonate_is_refused_before_any_request() -> Result {
    let cluster = Cluster::start().await?;
    let finished = cluster
        .run(&["get", "cm", "-n", "w", "--as-group", "devs"])
        .await?;
    assert_eq!(finished.code, Some(1));
    assert!(
        finished
            .stderr
            .contains("requesting as-groups without impersonating a user"),
        "{}",
        finished.stderr
    );
    assert!(
        finished
            .stderr
            .contains(&cluster.kubeconfig.display().to_string()),
        "{}",
        finished.stderr
    );
    assert!(cluster.server.journal().is_empty());
    Ok(())
}

/// Node STATUS as kubectl's printNode (pkg/printers/internalversion/printers.go) writes it: the
/// Ready condition (`Ready`, or `NotReady` for any other status), `Unknown` without one, and
/// `,SchedulingDisabled` for a cordoned node.
#[tokio::test(flavor = "multi_thread")]
async fn node_status_is_unknown_without_a_ready_condition() -> Result {
    let cluster = Cluster::start().await?;
    let ready = |status: &str| json!({"conditions": [{"type": "Ready", "status": status}]});
    for (name, status, unschedulable) in [
        ("a-new", json!({}), false),
        ("b-ready", ready("True"), false),
        ("c-lost", ready("Unknown"), false),
        ("d-cordoned", ready("True"), true),
        ("e-down", ready("False"), true),
    ] {
        cluster.server.create(json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"unschedulable": unschedulable}, "status": status
        }))?;
    }
    let finished = cluster.run(&["get", "nodes"]).await?;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    let status: Vec<&str> = finished
        .stdout
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        status,
        [
            "Unknown",
            "Ready",
            "NotReady",
            "Ready,SchedulingDisabled",
            "NotReady,SchedulingDisabled"
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_only_gets_partial_object_metadata_for_a_list_and_an_object() -> Result {
    let cluster = two_configmaps().await?;
    let finished = cluster
        .run(&["get", "cm", "-n", "w", "-o", "json", "--metadata-only"])
        .await?;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    let list: Value = serde_json::from_str(&finished.stdout)?;
    let items = list["items"].as_array().ok_or("no items")?;
    assert_eq!(items.len(), 2);
    for item in items {
        assert_eq!(item["kind"], "PartialObjectMetadata");
        assert_eq!(item["apiVersion"], "meta.k8s.io/v1");
        assert!(item.get("data").is_none(), "{item}");
    }
    let finished = cluster
        .run(&["get", "cm", "a", "-n", "w", "-o", "json", "--metadata-only"])
        .await?;
    let object: Value = serde_json::from_str(&finished.stdout)?;
    assert_eq!(object["kind"], "PartialObjectMetadata");
    assert_eq!(object["metadata"]["name"], "a");
    let accepts: Vec<Option<String>> = cluster
        .server
        .journal()
        .iter()
        .filter(|e| e.path.starts_with("/api/v1/namespaces/w/configmaps"))
        .map(|e| e.accept.clone())
        .collect();
    assert_eq!(
        accepts,
        [
            Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
                    .to_string()
            ),
            Some("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json".to_string()),
        ]
    );
    Ok(())
}

/// `get po,cm` as kubectl prints several types: one table per type that has objects, a blank line
/// between, names as `pod/web-1`; `-o name` lists them all.
#[tokio::test(flavor = "multi_thread")]
async fn get_of_several_types_prints_one_table_each_with_kind_slash_name() -> Result {
    let cluster = two_configmaps().await?;
    cluster.server.create(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "w"},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]}
    }))?;
    let finished = cluster.run(&["get", "po,svc,cm", "-n", "w"]).await?;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    let lines: Vec<String> = finished.stdout.lines().map(mask_ages).collect();
    assert_eq!(
        lines,
        [
            "NAME        READY   STATUS    RESTARTS   AGE",
            "pod/web-1   0/1     Pending   0          <age>",
            "",
            "NAME                 DATA   AGE",
            "configmap/a          1      <age>",
            "configmap/settings   2      <age>",
        ]
    );
    let names = cluster.run(&["get", "cm,po", "-n", "w", "-o", "name"]).await?;
    assert_eq!(names.stdout, "configmap/a\nconfigmap/settings\npod/web-1\n");
    Ok(())
}

/// kubectl refuses a name with `-A` for get and watch alike (with the same words).
#[tokio::test(flavor = "multi_thread")]
async fn a_name_across_all_namespaces_is_refused_by_get_and_watch() -> Result {
    let cluster = two_configmaps().await?;
    for command in ["get", "watch"] {
        let finished = cluster.run(&[command, "cm", "a", "-A"]).await?;
        assert_eq!(finished.code, Some(1), "{command}");
        assert_eq!(
            finished.stderr,
            "error: a resource cannot be retrieved by name across all namespaces (give -n NAMESPACE instead of -A)\n",
            "{command}"
        );
    }
    Ok(())
}

/// A wrong token: the error starts with the server's 401, not with what kazan was doing.
#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_token_is_said_first() -> Result {
    let server = kazan_apiserver::ApiServer::builder()
        .token("right")
        .start()
        .await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig().replace("\"right\"", "\"wrong\""))?;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kazan"));
    command.args(["get", "cm"]).arg("--kubeconfig").arg(&kubeconfig);
    let finished = support::Kazan::spawn(command)?.finish().await?;
    assert_eq!(finished.code, Some(1));
    assert!(
        finished.stderr.starts_with("error: 401 Unauthorized"),
        "{}",
        finished.stderr
    );
    assert!(
        finished
            .stderr
            .contains("(while discovering the resource types of http://127.0.0.1:"),
        "{}",
        finished.stderr
    );
    Ok(())
}

/// `get -w` (with kubectl's `--output-watch-events`) is the watch, as `kubectl get -w`.
#[tokio::test(flavor = "multi_thread")]
async fn get_w_lists_then_prints_every_change() -> Result {
    let cluster = two_configmaps().await?;
    let mut kazan = cluster.kazan(&[
        "get",
        "cm",
        "-n",
        "w",
        "-w",
        "--output-watch-events",
        "-o",
        "name",
    ])?;
    assert_eq!(
        kazan.lines(2).await?,
        ["ADDED configmap/a", "ADDED configmap/settings"]
    );
    cluster.watching("configmaps", 1).await?;
    cluster.delete_configmap("a")?;
    assert_eq!(kazan.line().await?, "DELETED configmap/a");
    kazan.terminate().await?;
    assert_eq!(kazan.finish().await?.code, Some(0));
    Ok(())
}

/// `kazan ARGS` with no kubeconfig anywhere (an empty HOME), so only the flags say where to go.
async fn without_kubeconfig(args: &[&str]) -> Result<support::Finished> {
    let home = tempfile::tempdir()?;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kazan"));
    command
        .args(args)
        .env("HOME", home.path())
        .env_remove("KUBERNETES_SERVICE_HOST");
    support::Kazan::spawn(command)?.finish().await
}

/// `--server`, `--token` and `--insecure-skip-tls-verify` as kubectl's: enough without a
/// kubeconfig, and the server's certificate is checked unless the last is given.
#[tokio::test(flavor = "multi_thread")]
async fn server_token_and_insecure_flags_reach_a_server_without_a_kubeconfig() -> Result {
    let server = kazan_apiserver::ApiServer::builder()
        .tls(true)
        .token("s3cret")
        .start()
        .await?;
    let url = server.url();
    let ok = without_kubeconfig(&[
        "get",
        "ns",
        "-o",
        "name",
        "--server",
        &url,
        "--token",
        "s3cret",
        "--insecure-skip-tls-verify",
    ])
    .await?;
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    assert!(ok.stdout.contains("namespace/default\n"), "{}", ok.stdout);
    let unverified = without_kubeconfig(&["get", "ns", "--server", &url, "--token", "s3cret"]).await?;
    assert_eq!(unverified.code, Some(1));
    assert!(unverified.stderr.contains("certificate"), "{}", unverified.stderr);
    let wrong = without_kubeconfig(&[
        "get",
        "ns",
        "--server",
        &url,
        "--token",
        "nope",
        "--insecure-skip-tls-verify",
    ])
    .await?;
    assert!(
        wrong.stderr.starts_with("error: 401 Unauthorized"),
        "{}",
        wrong.stderr
    );
    assert!(!wrong.stderr.contains("nope"), "{}", wrong.stderr);
    Ok(())
}

/// `kazan version` prints the client's version and the server's, as kubectl does;
/// `kazan completion bash` prints a completion script.
#[tokio::test(flavor = "multi_thread")]
async fn version_and_completion() -> Result {
    let cluster = Cluster::start().await?;
    let version = cluster.run(&["version"]).await?;
    assert_eq!(version.code, Some(0), "{}", version.stderr);
    let lines: Vec<&str> = version.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", version.stdout);
    assert_eq!(
        lines[0],
        format!("Client Version: v{}", env!("CARGO_PKG_VERSION"))
    );
    assert!(lines[1].starts_with("Server Version: v1."), "{}", lines[1]);
    let completion = without_kubeconfig(&["completion", "bash"]).await?;
    assert_eq!(completion.code, Some(0));
    assert!(
        completion.stdout.contains("complete -F _kazan"),
        "{}",
        completion.stdout
    );
    Ok(())
}

/// `--sort-by` orders the table's rows (and every other form) by a field of the objects, as
/// kubectl's: here the configmap created last has the lowest rank.
#[tokio::test(flavor = "multi_thread")]
async fn sort_by_orders_the_rows_by_a_field() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({"rank": "3"}))?;
    cluster.configmap("b", json!({"rank": "1"}))?;
    cluster.configmap("c", json!({"rank": "2"}))?;
    let table = cluster
        .run(&["get", "cm", "-n", "w", "--sort-by=.data.rank", "--no-headers"])
        .await?;
    let names: Vec<&str> = table
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["b", "c", "a"], "{}", table.stderr);
    let named = cluster
        .run(&["get", "cm", "-n", "w", "--sort-by={.data.rank}", "-o", "name"])
        .await?;
    assert_eq!(named.stdout, "configmap/b\nconfigmap/c\nconfigmap/a\n");
    Ok(())
}
