//! The change log (`record_changes`): every committed write, in order, with the version and
//! identity of the event watchers got for it; nothing when it is off, nothing for writes that make
//! no event.

use crate::common;

use common::*;
use kazan_apiserver::{ApiServer, Change, ChangeType};
use serde_json::json;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn change(rv: u64, change_type: ChangeType, plural: &str, namespace: &str, name: &str) -> Change {
    Change {
        resource_version: rv,
        change_type,
        group: String::new(),
        plural: plural.into(),
        namespace: namespace.into(),
        name: name.into(),
    }
}

#[tokio::test]
async fn records_every_write_in_commit_order_with_its_version() -> TestResult {
    let server = ApiServer::builder()
        .namespaces(&["a"])
        .record_changes(true)
        .start()
        .await?;
    let ns = server.get("v1", "Namespace", None, "a")?;
    let created = server.create(configmap("a", "one", json!({"v": "1"})))?;
    let pod = server.create(pod("a", "p", json!({}), "Running"))?;
    let patched = server.merge_patch("v1", "ConfigMap", Some("a"), "one", json!({"data": {"v": "2"}}))?;
    let deleted = server.delete("v1", "ConfigMap", Some("a"), "one")?;
    assert_eq!(
        server.changes(),
        vec![
            change(rv_of(&ns), ChangeType::Added, "namespaces", "", "a"),
            change(rv_of(&created), ChangeType::Added, "configmaps", "a", "one"),
            change(rv_of(&pod), ChangeType::Added, "pods", "a", "p"),
            change(rv_of(&patched), ChangeType::Modified, "configmaps", "a", "one"),
            change(rv_of(&deleted), ChangeType::Deleted, "configmaps", "a", "one"),
        ]
    );
    assert_eq!(rv_of(&deleted), server.resource_version());
    Ok(())
}

#[tokio::test]
async fn a_watch_sees_exactly_the_recorded_changes_of_its_resource() -> TestResult {
    let server = ApiServer::builder().record_changes(true).start().await?;
    let from = server.resource_version();
    let mut watch =
        WatchStream::open(server.addr(), &format!("{CMS}?watch=true&resourceVersion={from}")).await?;
    server.create(configmap("default", "x", json!({})))?;
    server.create(pod("default", "p", json!({}), "Running"))?;
    server.merge_patch(
        "v1",
        "ConfigMap",
        Some("default"),
        "x",
        json!({"data": {"k": "v"}}),
    )?;
    server.delete("v1", "ConfigMap", Some("default"), "x")?;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (kind, object) = watch.change().await?;
        seen.push((kind, rv_of(&object)));
    }
    let expected: Vec<(String, u64)> = server
        .changes()
        .into_iter()
        .filter(|c| c.plural == "configmaps" && c.resource_version > from)
        .map(|c| {
            let kind = match c.change_type {
                ChangeType::Added => "ADDED",
                ChangeType::Modified => "MODIFIED",
                ChangeType::Deleted => "DELETED",
            };
            (kind.to_string(), c.resource_version)
        })
        .collect();
    assert_eq!(seen, expected);
    Ok(())
}

#[tokio::test]
async fn dry_runs_are_not_recorded() -> TestResult {
    let server = ApiServer::builder()
        .namespaces(&["default"])
        .record_changes(true)
        .start()
        .await?;
    let before = server.changes();
    let answer = post(
        server.addr(),
        &format!("{CMS}?dryRun=All"),
        &configmap("default", "dry", json!({})),
    )
    .await?;
    assert_eq!(answer.status, 201);
    assert_eq!(server.changes(), before);
    Ok(())
}

#[tokio::test]
async fn nothing_is_recorded_unless_asked_for() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(configmap("default", "one", json!({})))?;
    assert!(server.changes().is_empty());
    Ok(())
}
