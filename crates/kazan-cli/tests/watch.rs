//! `kazan watch`, run as a binary against an embedded API server: every output form on a known
//! sequence of changes, where it starts (`--watch-only`, `--resource-version`), 410 Gone (exit 3,
//! or `--relist`), terminal errors, resource names and custom resources, and signals.

use crate::support;

use kazan_apiserver::{FaultAction, FaultRule};
use serde_json::{Value, json};
use support::{Cluster, Result, mask_ages, masked_event};

/// The known sequence: `a` exists at the start; then `b` is created, `a` changed, `b` deleted.
async fn changes_after_start(cluster: &Cluster) -> Result {
    cluster.watching("configmaps", 1).await?;
    cluster.configmap("b", json!({}))?;
    cluster.patch_configmap("a", json!({"l": "w"}))?;
    cluster.delete_configmap("b")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn table_output_prints_the_objects_then_each_change_with_an_event_column() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({"k": "v"}))?;
    let mut kazan = cluster.kazan(&["watch", "configmaps", "-n", "w"])?;
    let first: Vec<String> = kazan.lines(2).await?.iter().map(|l| mask_ages(l)).collect();
    assert_eq!(
        first,
        [
            "EVENT      NAME                   DATA   AGE",
            "ADDED      a                      1      <age>",
        ]
    );
    changes_after_start(&cluster).await?;
    let changes: Vec<String> = kazan.lines(3).await?.iter().map(|l| mask_ages(l)).collect();
    assert_eq!(
        changes,
        [
            "ADDED      b                      0      <age>",
            "MODIFIED   a                      2      <age>",
            "DELETED    b                      0      <age>",
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn wide_output_adds_columns_and_all_namespaces_adds_the_namespace() -> Result {
    let cluster = Cluster::start().await?;
    cluster.server.create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "w"},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "nginx:1.29"}]}
    }))?;
    let mut kazan = cluster.kazan(&["watch", "po", "-A", "-o", "wide"])?;
    let first: Vec<String> = kazan.lines(2).await?.iter().map(|l| mask_ages(l)).collect();
    assert_eq!(
        first,
        [
            "EVENT      NAMESPACE      NAME                   READY   STATUS        RESTARTS   AGE   IP       NODE     NOMINATED NODE   READINESS GATES",
            "ADDED      w              web-1                  0/1     Pending       0          <age> <none>   node-a   <none>           <none>",
        ]
    );
    cluster.watching("pods", 1).await?;
    cluster.server.update_status(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "w"},
        "status": {"phase": "Running", "podIP": "10.1.2.3", "containerStatuses": [
            {"name": "app", "ready": true, "restartCount": 1, "image": "nginx:1.29", "imageID": "",
             "state": {"running": {}}}
        ]}
    }))?;
    assert_eq!(
        mask_ages(&kazan.line().await?),
        "MODIFIED   w              web-1                  1/1     Running       1          <age> 10.1.2.3   node-a   <none>           <none>"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn json_output_is_one_event_object_per_line() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({"k": "v"}))?;
    let mut kazan = cluster.kazan(&["watch", "cm", "-n", "w", "-o", "json"])?;
    let first: Value = serde_json::from_str(&kazan.line().await?)?;
    changes_after_start(&cluster).await?;
    let mut events = vec![masked_event(first)];
    for line in kazan.lines(3).await? {
        events.push(masked_event(serde_json::from_str(&line)?));
    }
    let cm = |name: &str, data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "w"}, "data": data});
    assert_eq!(
        events,
        [
            json!({"type": "ADDED", "object": cm("a", json!({"k": "v"}))}),
            json!({"type": "ADDED", "object": cm("b", json!({}))}),
            json!({"type": "MODIFIED", "object": cm("a", json!({"k": "v", "l": "w"}))}),
            json!({"type": "DELETED", "object": cm("b", json!({}))}),
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn yaml_output_is_dash_separated_documents_with_type_and_object() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({"k": "v"}))?;
    let mut kazan = cluster.kazan(&["watch", "configmap", "-n", "w", "-o", "yaml"])?;
    assert_eq!(kazan.line().await?, "---");
    changes_after_start(&cluster).await?;
    // A last change marks the end of the fourth document.
    cluster.configmap("end", json!({}))?;
    let mut documents = Vec::new();
    let mut current = String::new();
    while documents.len() < 4 {
        let line = kazan.line().await?;
        if line == "---" {
            documents.push(masked_event(serde_saphyr::from_str::<Value>(&current)?));
            current.clear();
        } else {
            current.push_str(&line);
            current.push('\n');
        }
    }
    let types: Vec<&str> = documents.iter().filter_map(|d| d["type"].as_str()).collect();
    assert_eq!(types, ["ADDED", "ADDED", "MODIFIED", "DELETED"]);
    assert_eq!(
        documents[2],
        json!({"type": "MODIFIED", "object": {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "w"},
            "data": {"k": "v", "l": "w"}
        }})
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn name_output_prints_the_event_type_and_kind_slash_name() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({"k": "v"}))?;
    let mut kazan = cluster.kazan(&["watch", "ConfigMap", "-n", "w", "-o", "name"])?;
    assert_eq!(kazan.line().await?, "ADDED configmap/a");
    changes_after_start(&cluster).await?;
    assert_eq!(
        kazan.lines(3).await?,
        ["ADDED configmap/b", "MODIFIED configmap/a", "DELETED configmap/b"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_only_prints_changes_and_not_the_objects_there_at_the_start() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({"k": "v"}))?;
    let mut kazan = cluster.kazan(&["watch", "cm", "-n", "w", "-o", "name", "--watch-only"])?;
    let mut table = cluster.kazan(&["watch", "cm", "-n", "w", "--watch-only"])?;
    // The header at once (there is no first batch to fit), then only changes.
    assert_eq!(
        table.line().await?,
        "EVENT      NAME                   DATA   AGE"
    );
    cluster.watching("configmaps", 2).await?;
    changes_after_start(&cluster).await?;
    assert_eq!(
        kazan.lines(3).await?,
        ["ADDED configmap/b", "MODIFIED configmap/a", "DELETED configmap/b"]
    );
    assert_eq!(
        mask_ages(&table.line().await?),
        "ADDED      b                      0      <age>"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resource_version_prints_every_change_after_it() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({"k": "v"}))?;
    let rv = cluster.server.resource_version().to_string();
    // Before the watch starts, after the version: replayed from the server's history.
    cluster.patch_configmap("a", json!({"l": "w"}))?;
    cluster.configmap("b", json!({}))?;
    let mut kazan = cluster.kazan(&["watch", "cm", "-n", "w", "-o", "name", "--resource-version", &rv])?;
    assert_eq!(
        kazan.lines(2).await?,
        ["MODIFIED configmap/a", "ADDED configmap/b"]
    );
    cluster.watching("configmaps", 1).await?;
    cluster.delete_configmap("b")?;
    assert_eq!(kazan.line().await?, "DELETED configmap/b");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_watches_that_object_only() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({}))?;
    cluster.configmap("b", json!({}))?;
    let mut kazan = cluster.kazan(&["watch", "cm", "a", "-n", "w", "-o", "name"])?;
    assert_eq!(kazan.line().await?, "ADDED configmap/a");
    cluster.watching("configmaps", 1).await?;
    cluster.patch_configmap("b", json!({"x": "1"}))?;
    cluster.patch_configmap("a", json!({"x": "1"}))?;
    assert_eq!(kazan.line().await?, "MODIFIED configmap/a");
    Ok(())
}

/// Makes the configmaps watch of namespace `w` fall behind a compacted history: it is cut, and
/// refused (503) until `reopen`; meanwhile the caller changes things.
fn keep_the_watch_away(cluster: &Cluster) {
    let faults = cluster.server.faults();
    faults.add_rule(
        FaultRule::new(FaultAction::status(503, "ServiceUnavailable", "away"))
            .path_prefix("/api/v1/namespaces/w/configmaps")
            .watch(true)
            .times(1000),
    );
    faults.cut_watches(Some("configmaps"));
}

/// Waits until the watcher has been refused at least once (so it missed what follows).
async fn refused_once(cluster: &Cluster) -> Result {
    let faults = cluster.server.faults();
    let deadline = tokio::time::Instant::now() + support::DEADLINE;
    while faults.rules().first().is_some_and(|r| r.times == 1000) {
        if tokio::time::Instant::now() > deadline {
            return Err("the watcher did not come back".into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Compacts the history and lets the watch back in: it gets 410 Gone.
fn compact_and_reopen(cluster: &Cluster) {
    let faults = cluster.server.faults();
    faults.compact_history();
    faults.clear_rules();
}

#[tokio::test(flavor = "multi_thread")]
async fn gone_prints_a_gone_line_and_exits_with_status_3() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({}))?;
    let mut kazan = cluster.kazan(&["watch", "cm", "-n", "w", "-o", "json"])?;
    kazan.line().await?;
    cluster.watching("configmaps", 1).await?;
    // The version moves on elsewhere, the history is compacted, the watch ends and resumes: 410.
    cluster
        .server
        .create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "w"}}))?;
    let rv = cluster.server.resource_version();
    cluster.server.faults().compact_history();
    cluster.server.faults().end_watches(Some("configmaps"));
    let gone: Value = serde_json::from_str(&kazan.line().await?)?;
    assert_eq!(gone["type"], "GONE");
    let message = gone["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("too old resource version: ") && message.ends_with(&format!("({rv})")),
        "{gone}"
    );
    let finished = kazan.finish().await?;
    assert_eq!(finished.code, Some(3));
    assert_eq!(finished.stdout, "");
    assert_eq!(
        finished.stderr,
        format!(
            "error: watching configmaps in namespace \"w\": the watch expired (410 Gone: {message}); run it again, or add --relist to list again and go on\n"
        )
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn relist_prints_what_changed_while_away_and_watches_on() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({}))?;
    cluster.configmap("b", json!({}))?;
    let mut kazan = cluster.kazan(&["watch", "cm", "-n", "w", "-o", "name", "--relist"])?;
    assert_eq!(kazan.lines(2).await?, ["ADDED configmap/a", "ADDED configmap/b"]);
    cluster.watching("configmaps", 1).await?;
    keep_the_watch_away(&cluster);
    refused_once(&cluster).await?;
    cluster.delete_configmap("b")?;
    cluster.configmap("c", json!({}))?;
    cluster.patch_configmap("a", json!({"x": "1"}))?;
    compact_and_reopen(&cluster);
    // The relist in list order, then what it no longer found.
    assert_eq!(
        kazan.lines(3).await?,
        ["MODIFIED configmap/a", "ADDED configmap/c", "DELETED configmap/b"]
    );
    cluster.watching("configmaps", 1).await?;
    cluster.configmap("d", json!({}))?;
    assert_eq!(kazan.line().await?, "ADDED configmap/d");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn relist_with_watch_only_still_knows_the_objects_of_the_start() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({}))?;
    let mut kazan = cluster.kazan(&["watch", "cm", "-n", "w", "-o", "json", "--relist", "--watch-only"])?;
    cluster.watching("configmaps", 1).await?;
    keep_the_watch_away(&cluster);
    refused_once(&cluster).await?;
    cluster.delete_configmap("a")?;
    compact_and_reopen(&cluster);
    let deleted = masked_event(serde_json::from_str(&kazan.line().await?)?);
    assert_eq!(
        deleted,
        json!({"type": "DELETED", "object": {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "w"}, "data": {}
        }, "finalStateUnknown": true})
    );
    Ok(())
}

/// The lists `kazan` made of the configmaps of `w`: list requests and streamed lists (watches
/// with `sendInitialEvents=true`).
fn configmap_lists(cluster: &Cluster) -> usize {
    cluster
        .server
        .journal()
        .iter()
        .filter(|e| e.method == "GET" && e.path == "/api/v1/namespaces/w/configmaps")
        .filter(|e| !e.watch || e.query.contains("sendInitialEvents=true"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn initial_list_chooses_a_streamed_or_a_paginated_first_list() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({"k": "v"}))?;
    let journal = |cluster: &Cluster| -> Vec<(bool, bool)> {
        cluster
            .server
            .journal()
            .iter()
            .filter(|e| e.method == "GET" && e.path == "/api/v1/namespaces/w/configmaps")
            .map(|e| (e.watch, e.query.contains("sendInitialEvents=true")))
            .collect()
    };
    let mut streamed = cluster.kazan(&[
        "watch",
        "cm",
        "-n",
        "w",
        "-o",
        "name",
        "--initial-list",
        "streaming",
    ])?;
    assert_eq!(streamed.line().await?, "ADDED configmap/a");
    // One watch that streamed the list (and goes on).
    assert_eq!(journal(&cluster), [(true, true)]);
    let mut paged = cluster.kazan(&[
        "watch",
        "cm",
        "-n",
        "w",
        "-o",
        "name",
        "--initial-list",
        "paginated",
    ])?;
    assert_eq!(paged.line().await?, "ADDED configmap/a");
    cluster.watching("configmaps", 2).await?;
    assert_eq!(journal(&cluster), [(true, true), (false, false), (true, false)]);
    Ok(())
}

/// The `resourceVersion` of a checkpoint file's header.
fn checkpoint_version(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let header: Value = serde_json::from_str(text.lines().next()?).ok()?;
    header["resourceVersion"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_lets_the_next_run_go_on_from_its_version_with_no_list() -> Result {
    let cluster = Cluster::start().await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("cm.checkpoint");
    let file_arg = file.to_string_lossy().to_string();
    let args = [
        "watch",
        "cm",
        "-n",
        "w",
        "-o",
        "name",
        "--checkpoint",
        file_arg.as_str(),
    ];
    cluster.configmap("a", json!({}))?;
    let mut first = cluster.kazan(&args)?;
    assert_eq!(first.line().await?, "ADDED configmap/a");
    cluster.watching("configmaps", 1).await?;
    cluster.configmap("b", json!({}))?;
    assert_eq!(first.line().await?, "ADDED configmap/b");
    first.terminate().await?;
    let finished = first.finish().await?;
    assert_eq!((finished.code, finished.stderr.as_str()), (Some(0), ""));
    let saved = checkpoint_version(&file).ok_or("no checkpoint written on exit")?;

    cluster.patch_configmap("a", json!({"x": "1"}))?;
    cluster.configmap("c", json!({}))?;
    cluster.server.clear_journal();
    let mut second = cluster.kazan(&args)?;
    // Only what changed after the checkpoint: a and b are not printed again.
    assert_eq!(
        second.lines(2).await?,
        ["MODIFIED configmap/a", "ADDED configmap/c"]
    );
    assert_eq!(configmap_lists(&cluster), 0);
    let watches: Vec<String> = cluster
        .server
        .journal()
        .iter()
        .filter(|e| e.watch && e.path == "/api/v1/namespaces/w/configmaps")
        .map(|e| e.query.clone())
        .collect();
    assert!(
        watches
            .first()
            .is_some_and(|q| q.contains(&format!("resourceVersion={saved}"))),
        "{watches:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn after_sigkill_the_next_run_starts_from_the_checkpoint_written_meanwhile() -> Result {
    let cluster = Cluster::start().await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("cm.checkpoint");
    let file_arg = file.to_string_lossy().to_string();
    let args = [
        "watch",
        "cm",
        "-n",
        "w",
        "-o",
        "name",
        "--checkpoint",
        file_arg.as_str(),
    ];
    cluster.configmap("a", json!({}))?;
    let mut first = cluster.kazan(&args)?;
    assert_eq!(first.line().await?, "ADDED configmap/a");
    let deadline = tokio::time::Instant::now() + support::DEADLINE;
    while checkpoint_version(&file).is_none() {
        if tokio::time::Instant::now() > deadline {
            return Err("no checkpoint written while running".into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Dropping the handle kills the process with SIGKILL: no checkpoint on exit.
    drop(first);
    cluster.configmap("d", json!({}))?;
    cluster.server.clear_journal();
    let mut second = cluster.kazan(&args)?;
    assert_eq!(second.line().await?, "ADDED configmap/d");
    assert_eq!(configmap_lists(&cluster), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_older_than_the_history_relists_and_prints_the_vanished_as_unseen_deletes() -> Result {
    let cluster = Cluster::start().await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("cm.checkpoint");
    let file_arg = file.to_string_lossy().to_string();
    cluster.configmap("a", json!({}))?;
    cluster.configmap("b", json!({}))?;
    let args = [
        "watch",
        "cm",
        "-n",
        "w",
        "-o",
        "json",
        "--checkpoint",
        file_arg.as_str(),
    ];
    let mut first = cluster.kazan(&args)?;
    first.lines(2).await?;
    first.terminate().await?;
    first.finish().await?;
    cluster.delete_configmap("a")?;
    cluster.server.faults().compact_history();
    let mut second = cluster.kazan(&args)?;
    let deleted = masked_event(serde_json::from_str(&second.line().await?)?);
    assert_eq!(
        deleted,
        json!({"type": "DELETED", "object": {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "w"}, "data": {}
        }, "finalStateUnknown": true})
    );
    cluster.watching("configmaps", 1).await?;
    cluster.configmap("c", json!({}))?;
    let added: Value = serde_json::from_str(&second.line().await?)?;
    assert_eq!(
        (
            added["type"].as_str(),
            added["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("c"))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forbidden_watch_exits_non_zero_with_one_line_naming_the_resource() -> Result {
    let cluster = Cluster::start().await?;
    cluster.server.faults().add_rule(
        FaultRule::new(FaultAction::status(
            403,
            "Forbidden",
            "configmaps is forbidden: User \"dev\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"w\"",
        ))
        .path_prefix("/api/v1/namespaces/w/configmaps")
        .times(10),
    );
    let finished = cluster.kazan(&["watch", "cm", "-n", "w"])?.finish().await?;
    assert_eq!(finished.code, Some(1));
    assert_eq!(finished.stdout, "");
    assert_eq!(
        finished.stderr,
        "error: watching configmaps in namespace \"w\": 403 Forbidden: configmaps is forbidden: User \"dev\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"w\"\n"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_errors_are_retried_and_logged_without_exiting() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({}))?;
    cluster.server.faults().add_rule(
        FaultRule::new(FaultAction::status(
            503,
            "ServiceUnavailable",
            "the server is restarting",
        ))
        .path_prefix("/api/v1/namespaces/w/configmaps")
        .times(1),
    );
    // The first request (the streamed list) gets the 503: retried, not a reason to page.
    let mut kazan = cluster.kazan(&["watch", "cm", "-n", "w", "-o", "name", "--log-level", "warn"])?;
    assert_eq!(kazan.line().await?, "ADDED configmap/a");
    kazan.terminate().await?;
    let finished = kazan.finish().await?;
    assert_eq!(finished.code, Some(0));
    let retry = finished.stderr.lines().find(|l| l.contains("retrying in"));
    assert!(
        retry.is_some_and(|l| l.contains("WARN") && l.contains("503 ServiceUnavailable")),
        "{}",
        finished.stderr
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_resource_type_exits_non_zero_naming_it() -> Result {
    let cluster = Cluster::start().await?;
    let finished = cluster.kazan(&["watch", "gizmos"])?.finish().await?;
    assert_eq!(finished.code, Some(1));
    assert_eq!(
        finished.stderr,
        "error: the server doesn't have a resource type \"gizmos\"\n"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_selector_is_refused_by_the_server_in_one_line() -> Result {
    let cluster = Cluster::start().await?;
    let finished = cluster
        .kazan(&["watch", "pods", "-n", "w", "-l", "app in (web"])?
        .finish()
        .await?;
    assert_eq!(finished.code, Some(1));
    assert!(
        finished
            .stderr
            .starts_with("error: watching pods in namespace \"w\": 400 BadRequest: "),
        "{}",
        finished.stderr
    );
    assert_eq!(finished.stderr.lines().count(), 1, "{}", finished.stderr);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn short_names_and_qualified_names_reach_the_same_resource() -> Result {
    let cluster = Cluster::start().await?;
    cluster.server.create(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "w"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}
    }))?;
    for name in [
        "deploy",
        "deployment",
        "deployments.apps",
        "deploy.apps",
        "deployments.v1.apps",
    ] {
        let mut kazan = cluster.kazan(&["watch", name, "-n", "w", "-o", "name"])?;
        assert_eq!(kazan.line().await?, "ADDED deployment.apps/web", "{name}");
    }
    let mut kazan = cluster.kazan(&["watch", "ns", "-o", "name"])?;
    let mut namespaces = kazan.lines(5).await?;
    namespaces.sort();
    assert_eq!(
        namespaces,
        [
            "ADDED namespace/default",
            "ADDED namespace/kube-node-lease",
            "ADDED namespace/kube-public",
            "ADDED namespace/kube-system",
            "ADDED namespace/w",
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_resources_are_found_through_discovery_and_watched_alike() -> Result {
    let cluster = Cluster::start().await?;
    cluster.server.create(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                 "versions": [{"name": "v1", "served": true, "storage": true}]}
    }))?;
    cluster.server.create(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "w"}, "spec": {"size": 3}
    }))?;
    let mut kazan = cluster.kazan(&["watch", "wd", "-n", "w", "-o", "json"])?;
    let first = masked_event(serde_json::from_str(&kazan.line().await?)?);
    assert_eq!(
        first,
        json!({"type": "ADDED", "object": {
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w1", "namespace": "w"}, "spec": {"size": 3}
        }})
    );
    let mut by_name = cluster.kazan(&["watch", "widgets.example.com", "-n", "w", "-o", "name"])?;
    assert_eq!(by_name.line().await?, "ADDED widget.example.com/w1");
    cluster.watching("widgets", 2).await?;
    cluster.server.create(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w2", "namespace": "w"}, "spec": {"size": 5}
    }))?;
    assert_eq!(by_name.line().await?, "ADDED widget.example.com/w2");
    let second: Value = serde_json::from_str(&kazan.line().await?)?;
    assert_eq!(second["object"]["spec"]["size"], 5);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_ends_the_watch_quietly() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({}))?;
    let mut kazan = cluster.kazan(&["watch", "cm", "-n", "w", "-o", "name"])?;
    assert_eq!(kazan.line().await?, "ADDED configmap/a");
    cluster.watching("configmaps", 1).await?;
    kazan.close_stdout();
    cluster.configmap("b", json!({}))?;
    let finished = kazan.finish().await?;
    assert_eq!(finished.code, Some(0));
    assert_eq!(finished.stderr, "");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_watch_cleanly_with_status_0() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({}))?;
    let mut kazan = cluster.kazan(&["watch", "cm", "-n", "w", "-o", "name"])?;
    assert_eq!(kazan.line().await?, "ADDED configmap/a");
    cluster.watching("configmaps", 1).await?;
    kazan.terminate().await?;
    let finished = kazan.finish().await?;
    assert_eq!(finished.code, Some(0));
    assert_eq!(finished.stderr, "");
    Ok(())
}

/// The server stops and comes back on the same port: at the default log level, stderr says once
/// that it cannot be reached and that kazan keeps retrying, and once that it is back; the watch
/// goes on and prints what is created afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_goes_away_is_reported_once_and_its_return_once() -> Result {
    let mut cluster = Cluster::start().await?;
    cluster.configmap("a", json!({}))?;
    let mut kazan = cluster.kazan(&["watch", "cm", "-n", "w", "-o", "name"])?;
    assert_eq!(kazan.line().await?, "ADDED configmap/a");
    cluster.watching("configmaps", 1).await?;
    let addr = cluster.server.addr();
    let rv = cluster.server.resource_version();
    cluster.server.shutdown().await;
    let down = kazan.stderr_line("cannot be reached").await?;
    assert!(
        down.starts_with("kazan: the server cannot be reached (cannot connect to http://127.0.0.1:")
            && down.ends_with("; kazan keeps retrying (Ctrl-C stops)"),
        "{down}"
    );
    // Several retries go by while the server is away.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    cluster.server = kazan_apiserver::ApiServer::builder().addr(addr).start().await?;
    // A restarted server counts on from where it was, as a real one (etcd) does.
    cluster
        .server
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "w"}}))?;
    for i in 0..=rv {
        if cluster.server.resource_version() > rv {
            break;
        }
        cluster.server.create(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("filler-{i}")}}),
        )?;
    }
    let back = kazan.stderr_line("answers again").await?;
    assert_eq!(
        back,
        format!("kazan: the server at http://{addr}/ answers again; the watch goes on")
    );
    cluster.watching("configmaps", 1).await?;
    cluster.configmap("b", json!({}))?;
    assert_eq!(kazan.line().await?, "ADDED configmap/b");
    kazan.terminate().await?;
    let finished = kazan.finish().await?;
    assert_eq!(finished.code, Some(0));
    assert_eq!(
        finished.stderr.matches("cannot be reached").count(),
        1,
        "{}",
        finished.stderr
    );
    assert_eq!(
        finished.stderr.matches("answers again").count(),
        1,
        "{}",
        finished.stderr
    );
    Ok(())
}

/// `kazan watch ... | head -1`: once the reader of stdout has gone, the watch ends at once, not at
/// the next event (none comes here), as kubectl's does.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_ends_a_quiet_watch_without_waiting_for_an_event() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({}))?;
    let mut kazan = cluster.kazan(&["watch", "cm", "-n", "w", "-o", "name"])?;
    assert_eq!(kazan.line().await?, "ADDED configmap/a");
    cluster.watching("configmaps", 1).await?;
    kazan.close_stdout();
    // `finish` fails if the command does not end within the deadline.
    let finished = kazan.finish().await?;
    assert_eq!(finished.code, Some(0));
    assert_eq!(finished.stderr, "");
    Ok(())
}

/// A watch is of one type: `watch po,svc` is refused with kubectl's words for `get po,svc -w`.
#[tokio::test(flavor = "multi_thread")]
async fn several_types_are_refused_with_kubectls_words() -> Result {
    let cluster = Cluster::start().await?;
    let finished = cluster.run(&["watch", "po,svc", "-n", "w"]).await?;
    assert_eq!(finished.code, Some(1));
    assert_eq!(
        finished.stderr,
        "error: you may only specify a single resource type (\"po,svc\" names several): run one kazan watch per type\n"
    );
    Ok(())
}

/// `watch po svc` watches for a pod named `svc`: not silently, stderr says none is there yet.
#[tokio::test(flavor = "multi_thread")]
async fn a_named_object_that_is_not_there_is_said_once_and_watched_for() -> Result {
    let cluster = Cluster::start().await?;
    let mut kazan = cluster.kazan(&["watch", "cm", "svc", "-n", "w", "-o", "name"])?;
    let said = kazan.stderr_line("yet").await?;
    assert_eq!(
        said,
        "kazan: no configmap \"svc\" in namespace \"w\" yet; watching for it (Ctrl-C stops)"
    );
    cluster.watching("configmaps", 1).await?;
    cluster.configmap("svc", json!({}))?;
    assert_eq!(kazan.line().await?, "ADDED configmap/svc");
    Ok(())
}

/// `--timestamps`: each event with the time it was received, as a TIME column, a `time` field or
/// a prefix; a time of this run, to the second, in UTC.
#[tokio::test(flavor = "multi_thread")]
async fn timestamps_say_when_each_event_was_received() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({}))?;
    let before = jiff::Timestamp::now().as_second();
    let received = |time: &str| -> Result {
        let at: jiff::Timestamp = time.parse()?;
        assert!(time.ends_with('Z') && time.len() == 20, "{time}");
        assert!(at.as_second() >= before && at.as_second() <= jiff::Timestamp::now().as_second());
        Ok(())
    };
    let mut names = cluster.kazan(&["watch", "cm", "-n", "w", "-o", "name", "--timestamps"])?;
    let line = names.line().await?;
    let (time, rest) = line.split_once(' ').ok_or("no space")?;
    received(time)?;
    assert_eq!(rest, "ADDED configmap/a");
    let mut table = cluster.kazan(&["watch", "cm", "-n", "w", "--timestamps"])?;
    let lines = table.lines(2).await?;
    assert_eq!(
        mask_ages(&lines[0]),
        "TIME                   EVENT      NAME                   DATA   AGE"
    );
    received(lines[1].split_whitespace().next().ok_or("no time")?)?;
    let mut json = cluster.kazan(&["watch", "cm", "-n", "w", "-o", "json", "--timestamps"])?;
    let event: Value = serde_json::from_str(&json.line().await?)?;
    received(event["time"].as_str().ok_or("no time field")?)?;
    assert_eq!(event["type"], "ADDED");
    Ok(())
}

/// `watch cm/a`, kubectl's TYPE/NAME, watches that object.
#[tokio::test(flavor = "multi_thread")]
async fn type_slash_name_watches_one_object() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({}))?;
    cluster.configmap("b", json!({}))?;
    let mut kazan = cluster.kazan(&["watch", "cm/b", "-n", "w", "-o", "name"])?;
    assert_eq!(kazan.line().await?, "ADDED configmap/b");
    cluster.watching("configmaps", 1).await?;
    cluster.patch_configmap("a", json!({"k": "v"}))?;
    cluster.patch_configmap("b", json!({"k": "v"}))?;
    assert_eq!(kazan.line().await?, "MODIFIED configmap/b");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_only_watches_partial_object_metadata() -> Result {
    let cluster = Cluster::start().await?;
    cluster.configmap("a", json!({"k": "v"}))?;
    let mut kazan = cluster.kazan(&["watch", "cm", "-n", "w", "-o", "json", "--metadata-only"])?;
    let first: Value = serde_json::from_str(&kazan.line().await?)?;
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["kind"], "PartialObjectMetadata");
    assert!(first["object"].get("data").is_none(), "{first}");
    cluster.watching("configmaps", 1).await?;
    cluster.configmap("b", json!({}))?;
    let next: Value = serde_json::from_str(&kazan.line().await?)?;
    assert_eq!(next["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(next["object"]["metadata"]["name"], "b");
    Ok(())
}

/// `--shard I/N` (KEP-5866): two watches, 0/2 and 1/2, print every ConfigMap once between them,
/// each the ones whose uid hashes into its half (the embedded server filters, as a server with
/// ShardedListAndWatch: k8s.io/apiserver pkg/storage/selection_predicate.go).
#[tokio::test(flavor = "multi_thread")]
async fn two_shards_print_every_object_once_between_them() -> Result {
    let cluster = Cluster::start().await?;
    let mut names = std::collections::BTreeSet::new();
    for i in 0..12 {
        let name = format!("c{i:02}");
        cluster.configmap(&name, json!({}))?;
        names.insert(format!("ADDED configmap/{name}"));
    }
    // Both watch at once; each prints its list before its watch opens.
    let mut shards = Vec::new();
    for shard in ["0/2", "1/2"] {
        shards.push(cluster.kazan(&["watch", "cm", "-n", "w", "-o", "name", "--shard", shard])?);
    }
    cluster.watching("configmaps", 2).await?;
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0;
    for mut kazan in shards {
        kazan.terminate().await?;
        let finished = kazan.finish().await?;
        assert_eq!(finished.code, Some(0), "{}", finished.stderr);
        assert!(!finished.stdout.is_empty(), "a shard printed nothing");
        for line in finished.stdout.lines() {
            total += 1;
            assert!(seen.insert(line.to_string()), "{line} printed by both shards");
        }
    }
    assert_eq!(seen, names);
    assert_eq!(total, names.len());
    let refused = cluster.run(&["watch", "cm", "-n", "w", "--shard", "2/2"]).await?;
    assert_ne!(refused.code, Some(0));
    assert!(refused.stderr.contains("is not a shard"), "{}", refused.stderr);
    Ok(())
}
