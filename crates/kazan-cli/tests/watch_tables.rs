//! `kazan watch`'s table output is the server's Table, as kubectl's `get -w` prints it (kubectl
//! `pkg/cmd/get/get.go`: the Table Accept on the list and on the watch; cli-runtime
//! `printers/tableprinter.go`: the columns of the first Table kept for the events that carry none,
//! a new header for other columns): custom resources' printer columns included, a relist printed
//! under the same header, the columns asked for when the first list is empty, and NAME and AGE
//! for a server that sends no Tables.

use crate::support;

use kazan_apiserver::{FaultAction, FaultRule};
use serde_json::json;
use support::{Cluster, Result, mask_ages};

const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

#[tokio::test(flavor = "multi_thread")]
async fn custom_resources_print_their_additional_printer_columns() -> Result {
    let cluster = Cluster::start().await?;
    cluster.server.create(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                   "additionalPrinterColumns": [
                     {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                     {"name": "Color", "type": "string", "jsonPath": ".spec.color", "priority": 1}
                   ]}]}
    }))?;
    cluster.server.create(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "w"}, "spec": {"size": 3, "color": "red"}
    }))?;
    let mut kazan = cluster.kazan(&["watch", "widgets", "-n", "w"])?;
    let first: Vec<String> = kazan.lines(2).await?.iter().map(|l| mask_ages(l)).collect();
    assert_eq!(
        first,
        [
            "EVENT      NAME                   SIZE   AGE",
            "ADDED      w1                     3      <age>",
        ]
    );
    let mut wide = cluster.kazan(&["watch", "widgets", "-n", "w", "-o", "wide"])?;
    let first: Vec<String> = wide.lines(2).await?.iter().map(|l| mask_ages(l)).collect();
    assert_eq!(
        first,
        [
            "EVENT      NAME                   SIZE   AGE   COLOR",
            "ADDED      w1                     3      <age> red",
        ]
    );
    cluster.watching("widgets", 2).await?;
    cluster.server.create(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w2", "namespace": "w"}, "spec": {"size": 5, "color": "blue"}
    }))?;
    assert_eq!(
        mask_ages(&kazan.line().await?),
        "ADDED      w2                     5      <age>"
    );
    assert_eq!(
        mask_ages(&wide.line().await?),
        "ADDED      w2                     5      <age> blue"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_list_and_the_watch_both_ask_for_tables() -> Result {
    for how in ["paginated", "streaming"] {
        let cluster = Cluster::start().await?;
        cluster.configmap("a", json!({}))?;
        let mut kazan = cluster.kazan(&["watch", "cm", "-n", "w", "--initial-list", how])?;
        kazan.lines(2).await?;
        cluster.watching("configmaps", 1).await?;
        let asked: Vec<(bool, Option<String>)> = cluster
            .server
            .journal()
            .iter()
            .filter(|e| e.path == "/api/v1/namespaces/w/configmaps")
            .map(|e| (e.watch, e.accept.clone()))
            .collect();
        assert!(asked.iter().any(|(watch, _)| *watch), "{how}: {asked:?}");
        for (_, accept) in &asked {
            assert_eq!(accept.as_deref(), Some(TABLE_ACCEPT), "{how}: {asked:?}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_start_asks_for_the_columns_and_prints_later_rows_under_them() -> Result {
    for how in ["paginated", "streaming"] {
        let cluster = Cluster::start().await?;
        let mut kazan = cluster.kazan(&["watch", "nodes", "--initial-list", how])?;
        assert_eq!(
            kazan.line().await?,
            "EVENT      NAME                   STATUS        ROLES   AGE   VERSION",
            "{how}"
        );
        cluster.watching("nodes", 1).await?;
        cluster.server.create(json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "nodeInfo": {"kubeletVersion": "v1.34.0"}}
        }))?;
        assert_eq!(
            mask_ages(&kazan.line().await?),
            "ADDED      node-a                 Ready         <none>   <age> v1.34.0",
            "{how}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relist_in_table_output_prints_what_changed_under_the_same_header() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({}))?;
    cluster.configmap("b", json!({}))?;
    let mut kazan = cluster.kazan(&["watch", "cm", "-n", "w", "--relist"])?;
    let first: Vec<String> = kazan.lines(3).await?.iter().map(|l| mask_ages(l)).collect();
    assert_eq!(
        first,
        [
            "EVENT      NAME                   DATA   AGE",
            "ADDED      a                      0      <age>",
            "ADDED      b                      0      <age>",
        ]
    );
    cluster.watching("configmaps", 1).await?;
    let faults = cluster.server.faults();
    faults.add_rule(
        FaultRule::new(FaultAction::status(503, "ServiceUnavailable", "away"))
            .path_prefix("/api/v1/namespaces/w/configmaps")
            .watch(true)
            .times(1000),
    );
    faults.cut_watches(Some("configmaps"));
    let deadline = tokio::time::Instant::now() + support::DEADLINE;
    while faults.rules().first().is_some_and(|r| r.times == 1000) {
        if tokio::time::Instant::now() > deadline {
            return Err("the watcher did not come back".into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    cluster.delete_configmap("b")?;
    cluster.configmap("c", json!({}))?;
    cluster.patch_configmap("a", json!({"x": "1"}))?;
    faults.compact_history();
    faults.clear_rules();
    let changes: Vec<String> = kazan.lines(3).await?.iter().map(|l| mask_ages(l)).collect();
    let mut sorted = changes.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "ADDED      c                      0      <age>",
            // A delete the relist found, not seen: its last known state.
            "DELETED?   b                      0      <age>",
            "MODIFIED   a                      1      <age>",
        ],
        "{changes:?}"
    );
    cluster.watching("configmaps", 1).await?;
    cluster.configmap("d", json!({"k": "v"}))?;
    assert_eq!(
        mask_ages(&kazan.line().await?),
        "ADDED      d                      1      <age>"
    );
    Ok(())
}

/// A server that answers the Table Accept with plain objects (its `application/json` fallback:
/// no Tables for the resource) gets NAME and AGE, as kubectl's default printer shows any object.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_tables_gets_name_and_age() -> Result {
    let cluster = Cluster::start().await?;
    let stored = cluster.configmap("a", json!({"k": "v"}))?;
    let rv = stored["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let list = json!({"kind": "ConfigMapList", "apiVersion": "v1",
        "metadata": {"resourceVersion": rv}, "items": [stored]});
    let b = json!({"kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {"name": "b", "namespace": "w", "resourceVersion": "999999",
                     "creationTimestamp": "2026-01-01T00:00:00Z"}});
    let faults = cluster.server.faults();
    faults.add_rule(
        FaultRule::new(FaultAction::raw(200, "application/json", &list.to_string()))
            .path_prefix("/api/v1/namespaces/w/configmaps")
            .watch(false)
            .times(1),
    );
    faults.add_rule(
        FaultRule::new(FaultAction::raw(
            200,
            "application/json",
            &format!("{}\n", json!({"type": "ADDED", "object": b})),
        ))
        .path_prefix("/api/v1/namespaces/w/configmaps")
        .watch(true)
        .times(1),
    );
    let mut kazan = cluster.kazan(&["watch", "cm", "-n", "w", "--initial-list", "paginated"])?;
    let lines: Vec<String> = kazan.lines(3).await?.iter().map(|l| mask_ages(l)).collect();
    assert_eq!(lines[0], "EVENT      NAME                   AGE");
    assert_eq!(lines[1], "ADDED      a                      <age>");
    assert!(
        lines[2].starts_with("ADDED      b                      "),
        "{lines:?}"
    );
    assert!(!lines[2].contains("<age>") || lines[2].ends_with("<age>"));
    Ok(())
}

/// A checkpoint of Table rows (the table output) is not one of whole objects: a later run with
/// `-o json` and the same file says so and lists afresh, rather than printing Tables as objects.
#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_of_table_rows_does_not_serve_a_watch_of_whole_objects() -> Result {
    let cluster = Cluster::start().await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("cm.checkpoint");
    let file_arg = file.to_string_lossy().to_string();
    cluster.configmap("a", json!({}))?;
    let mut table = cluster.kazan(&["watch", "cm", "-n", "w", "--checkpoint", &file_arg])?;
    assert_eq!(table.lines(2).await?.len(), 2);
    table.terminate().await?;
    let finished = table.finish().await?;
    assert_eq!(finished.code, Some(0), "{}", finished.stderr);
    assert!(file.exists());
    let mut json = cluster.kazan(&["watch", "cm", "-n", "w", "-o", "json", "--checkpoint", &file_arg])?;
    let first: serde_json::Value = serde_json::from_str(&json.line().await?)?;
    assert_eq!(first["object"]["kind"], "ConfigMap");
    assert_eq!(first["object"]["metadata"]["name"], "a");
    let warning = json.stderr_line("listing afresh").await?;
    assert!(warning.contains("as Table"), "{warning}");
    Ok(())
}
