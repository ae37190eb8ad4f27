//! Lists against watch-protocol.md §1: paths, shape, selectors, pagination over a consistent
//! snapshot, resourceVersion/resourceVersionMatch, and the error answers.

use crate::common;

use std::time::Duration;

use common::*;
use kazan_apiserver::ApiServer;
use serde_json::{Value, json};

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|items| items.iter().map(|i| name_of(i).to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn list_has_kind_version_current_resource_version_and_sorted_items() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}))?;
    server.create(configmap("demo", "b", json!({})))?;
    server.create(configmap("default", "z", json!({})))?;
    server.create(configmap("demo", "a", json!({})))?;
    server.create(pod("default", "unrelated", json!({}), "Running"))?;

    let list = get_json(server.addr(), "/api/v1/namespaces/demo/configmaps").await?;
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(
        list["metadata"]["resourceVersion"],
        server.resource_version().to_string()
    );
    assert_eq!(names(&list), ["a", "b"]);
    assert!(list["metadata"].get("continue").is_none());

    let all = get_json(server.addr(), "/api/v1/configmaps").await?;
    assert_eq!(names(&all), ["z", "a", "b"], "sorted by namespace, then name");

    let empty = get_json(server.addr(), "/api/v1/namespaces/demo/secrets").await?;
    assert_eq!(empty["items"], json!([]));
    assert_eq!(
        empty["metadata"]["resourceVersion"],
        server.resource_version().to_string()
    );

    let namespaces = get_json(server.addr(), "/api/v1/namespaces").await?;
    assert_eq!(
        names(&namespaces),
        ["default", "demo", "kube-node-lease", "kube-public", "kube-system"]
    );
    Ok(())
}

#[tokio::test]
async fn named_group_paths_serve_lists() -> TestResult {
    let server = ApiServer::start().await?;
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1}});
    let created = post(
        server.addr(),
        "/apis/apps/v1/namespaces/default/deployments",
        &deployment,
    )
    .await?;
    assert_eq!(created.status, 201, "{}", created.text());
    let list = get_json(server.addr(), "/apis/apps/v1/namespaces/default/deployments").await?;
    assert_eq!(list["kind"], "DeploymentList");
    assert_eq!(list["apiVersion"], "apps/v1");
    assert_eq!(names(&list), ["web"]);
    Ok(())
}

#[tokio::test]
async fn label_selectors_filter_and_bad_ones_are_400() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(pod(
        "default",
        "a",
        json!({"app": "web", "tier": "front"}),
        "Running",
    ))?;
    server.create(pod("default", "b", json!({"app": "db"}), "Pending"))?;
    server.create(pod("default", "c", json!({"app": "web"}), "Pending"))?;
    for (selector, expected) in [
        ("app%3Dweb", vec!["a", "c"]),
        ("app%3D%3Dweb", vec!["a", "c"]),
        ("app!%3Dweb", vec!["b"]),
        ("app+in+(db,web),tier", vec!["a"]),
        ("app+notin+(web)", vec!["b"]),
        ("!tier", vec!["b", "c"]),
    ] {
        let list = get_json(
            server.addr(),
            &format!("/api/v1/namespaces/default/pods?labelSelector={selector}"),
        )
        .await?;
        assert_eq!(names(&list), expected, "{selector}");
    }
    let bad = get(server.addr(), "/api/v1/pods?labelSelector=app+in+web").await?;
    assert_eq!(bad.status, 400);
    let status = bad.json()?;
    assert_eq!(
        (
            status["kind"].as_str(),
            status["reason"].as_str(),
            status["code"].as_u64()
        ),
        (Some("Status"), Some("BadRequest"), Some(400))
    );
    Ok(())
}

#[tokio::test]
async fn field_selectors_filter_and_unsupported_fields_are_400() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(pod("default", "a", json!({}), "Running"))?;
    server.create(pod("default", "b", json!({}), "Pending"))?;
    server.create(pod("kube-system", "c", json!({}), "Running"))?;
    let running = get_json(server.addr(), "/api/v1/pods?fieldSelector=status.phase%3DRunning").await?;
    assert_eq!(names(&running), ["a", "c"]);
    let not_default = get_json(
        server.addr(),
        "/api/v1/pods?fieldSelector=metadata.namespace!%3Ddefault",
    )
    .await?;
    assert_eq!(names(&not_default), ["c"]);
    let by_name = get_json(server.addr(), "/api/v1/pods?fieldSelector=metadata.name%3D%3Db").await?;
    assert_eq!(names(&by_name), ["b"]);
    let bad = get(
        server.addr(),
        "/api/v1/configmaps?fieldSelector=status.phase%3DRunning",
    )
    .await?;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()?["message"], "field label not supported: status.phase");
    Ok(())
}

#[tokio::test]
async fn pages_are_a_consistent_snapshot_even_when_objects_change_between_them() -> TestResult {
    let server = ApiServer::start().await?;
    for i in 0..7 {
        server.create(configmap("default", &format!("cm-{i}"), json!({"v": "original"})))?;
    }
    let first = get_json(server.addr(), "/api/v1/namespaces/default/configmaps?limit=3").await?;
    let snapshot_rv = first["metadata"]["resourceVersion"].clone();
    assert_eq!(names(&first), ["cm-0", "cm-1", "cm-2"]);
    assert_eq!(first["metadata"]["remainingItemCount"], 4);
    let token = first["metadata"]["continue"]
        .as_str()
        .ok_or("no continue token")?
        .to_string();

    // Changes after the first page must not show in the next pages.
    server.delete("v1", "ConfigMap", Some("default"), "cm-4")?;
    server.merge_patch(
        "v1",
        "ConfigMap",
        Some("default"),
        "cm-5",
        json!({"data": {"v": "changed"}}),
    )?;
    server.create(configmap("default", "cm-3a", json!({})))?;

    let second = get_json(
        server.addr(),
        &format!("/api/v1/namespaces/default/configmaps?limit=3&continue={token}"),
    )
    .await?;
    assert_eq!(names(&second), ["cm-3", "cm-4", "cm-5"]);
    assert_eq!(second["metadata"]["resourceVersion"], snapshot_rv);
    assert_eq!(second["items"][2]["data"]["v"], "original");
    assert_eq!(second["metadata"]["remainingItemCount"], 1);
    let token = second["metadata"]["continue"]
        .as_str()
        .ok_or("no continue token")?
        .to_string();
    let third = get_json(
        server.addr(),
        &format!("/api/v1/namespaces/default/configmaps?limit=3&continue={token}"),
    )
    .await?;
    assert_eq!(names(&third), ["cm-6"]);
    assert!(third["metadata"].get("continue").is_none());
    assert!(third["metadata"].get("remainingItemCount").is_none());
    Ok(())
}

#[tokio::test]
async fn bad_continue_tokens_and_versions_with_continue_are_400() -> TestResult {
    let server = ApiServer::start().await?;
    let bad = get(server.addr(), "/api/v1/configmaps?limit=1&continue=not-a-token").await?;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()?["message"], "invalid continue token");

    server.create(configmap("default", "a", json!({})))?;
    server.create(configmap("default", "b", json!({})))?;
    let first = get_json(server.addr(), "/api/v1/configmaps?limit=1").await?;
    let token = first["metadata"]["continue"]
        .as_str()
        .ok_or("no token")?
        .to_string();
    let with_rv = get(
        server.addr(),
        &format!("/api/v1/configmaps?limit=1&continue={token}&resourceVersion=1"),
    )
    .await?;
    assert_eq!(with_rv.status, 400);
    assert_eq!(
        with_rv.json()?["message"],
        "specifying resource version is not allowed when using continue"
    );
    let with_match = get(
        server.addr(),
        &format!(
            "/api/v1/configmaps?limit=1&continue={token}&resourceVersionMatch=NotOlderThan&resourceVersion=1"
        ),
    )
    .await?;
    assert_eq!(with_match.status, 422);
    Ok(())
}

#[tokio::test]
async fn expired_continue_token_gets_410_with_a_fresh_continue_token() -> TestResult {
    let server = ApiServer::start().await?;
    for name in ["a", "b", "c"] {
        server.create(configmap("default", name, json!({})))?;
    }
    let first = get_json(server.addr(), "/api/v1/namespaces/default/configmaps?limit=1").await?;
    let token = first["metadata"]["continue"]
        .as_str()
        .ok_or("no token")?
        .to_string();
    server.create(configmap("default", "d", json!({})))?;
    server.faults().compact_history();

    let expired = get(
        server.addr(),
        &format!("/api/v1/namespaces/default/configmaps?limit=1&continue={token}"),
    )
    .await?;
    assert_eq!(expired.status, 410);
    let status = expired.json()?;
    assert_eq!(status["reason"], "Expired");
    assert_eq!(status["code"], 410);
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("The provided continue parameter is too old")
    );
    let fresh = status["metadata"]["continue"]
        .as_str()
        .ok_or("no fresh continue token")?
        .to_string();
    // The fresh token continues (inconsistently) at the latest state.
    let rest = get_json(
        server.addr(),
        &format!("/api/v1/namespaces/default/configmaps?continue={fresh}"),
    )
    .await?;
    assert_eq!(names(&rest), ["b", "c", "d"]);
    Ok(())
}

#[tokio::test]
async fn resource_version_semantics_of_list() -> TestResult {
    let server = ApiServer::builder()
        .too_large_resource_version_wait(Duration::from_millis(200))
        .start()
        .await?;
    server.create(configmap("default", "a", json!({"v": "1"})))?;
    let past = server.resource_version();
    server.merge_patch(
        "v1",
        "ConfigMap",
        Some("default"),
        "a",
        json!({"data": {"v": "2"}}),
    )?;
    let current = server.resource_version();

    // Exact past version: served from the history, as it was.
    let exact = get_json(
        server.addr(),
        &format!("/api/v1/configmaps?resourceVersion={past}&resourceVersionMatch=Exact"),
    )
    .await?;
    assert_eq!(exact["metadata"]["resourceVersion"], past.to_string());
    assert_eq!(exact["items"][0]["data"]["v"], "1");
    // NotOlderThan and "0": the current state.
    let not_older = get_json(
        server.addr(),
        &format!("/api/v1/configmaps?resourceVersion={past}&resourceVersionMatch=NotOlderThan"),
    )
    .await?;
    assert_eq!(not_older["metadata"]["resourceVersion"], current.to_string());
    assert_eq!(not_older["items"][0]["data"]["v"], "2");
    let any = get_json(server.addr(), "/api/v1/configmaps?resourceVersion=0").await?;
    assert_eq!(any["metadata"]["resourceVersion"], current.to_string());
    // Legacy: a version with a limit means Exact.
    let legacy = get_json(
        server.addr(),
        &format!("/api/v1/configmaps?resourceVersion={past}&limit=10"),
    )
    .await?;
    assert_eq!(legacy["items"][0]["data"]["v"], "1");

    // Too new: 504 Timeout with the ResourceVersionTooLarge cause and Retry-After: 1.
    let future = current + 10;
    let too_large = get(
        server.addr(),
        &format!("/api/v1/configmaps?resourceVersion={future}&resourceVersionMatch=NotOlderThan"),
    )
    .await?;
    assert_eq!(too_large.status, 504);
    assert_eq!(too_large.header("retry-after"), Some("1"));
    assert_eq!(
        too_large.json()?,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
               "message": format!("Timeout: Too large resource version: {future}, current: {current}"),
               "reason":"Timeout","details":{"causes":[{"reason":"ResourceVersionTooLarge","message":"Too large resource version"}],"retryAfterSeconds":1},"code":504})
    );

    // Exact before the history: 410 Expired.
    server.faults().compact_history();
    let gone = get(
        server.addr(),
        &format!("/api/v1/configmaps?resourceVersion={past}&resourceVersionMatch=Exact"),
    )
    .await?;
    assert_eq!(gone.status, 410);
    assert_eq!(
        gone.json()?["message"],
        "The resourceVersion for the provided list is too old."
    );
    Ok(())
}

#[tokio::test]
async fn invalid_list_options_are_422_on_list_options() -> TestResult {
    let server = ApiServer::start().await?;
    let cases = [
        (
            "resourceVersionMatch=NotOlderThan",
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        (
            "resourceVersion=0&resourceVersionMatch=Exact",
            "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ),
        (
            "resourceVersion=5&resourceVersionMatch=Newest",
            "resourceVersionMatch: Unsupported value: \"Newest\": supported values: \"Exact\", \"NotOlderThan\"",
        ),
        (
            "sendInitialEvents=true",
            "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list",
        ),
    ];
    for (query, detail) in cases {
        let response = get(server.addr(), &format!("/api/v1/configmaps?{query}")).await?;
        assert_eq!(response.status, 422, "{query}");
        let status = response.json()?;
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(status["details"]["kind"], "ListOptions");
        assert_eq!(status["details"]["group"], "meta.k8s.io");
        assert_eq!(
            status["message"],
            format!("ListOptions.meta.k8s.io \"\" is invalid: {detail}"),
            "{query}"
        );
    }
    let bad_rv = get(server.addr(), "/api/v1/configmaps?resourceVersion=abc").await?;
    assert_eq!(bad_rv.status, 400);
    Ok(())
}

#[tokio::test]
async fn unknown_resources_and_paths_are_404_status() -> TestResult {
    let server = ApiServer::start().await?;
    for path in [
        "/api/v1/widgets",
        "/apis/example.com/v1/widgets",
        "/nope",
        "/api/v1/namespaces/default/nodes",
    ] {
        let response = get(server.addr(), path).await?;
        assert_eq!(response.status, 404, "{path}");
        let status = response.json()?;
        assert_eq!(
            (status["kind"].as_str(), status["reason"].as_str()),
            (Some("Status"), Some("NotFound")),
            "{path}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_exact_past_list_undoes_later_deletes_recreates_and_changes() -> TestResult {
    let server = ApiServer::start().await?;
    let original = server.create(configmap("default", "a", json!({"v": "original"})))?;
    server.create(configmap("default", "b", json!({})))?;
    let past = server.resource_version();
    server.delete("v1", "ConfigMap", Some("default"), "a")?;
    server.create(configmap("default", "a", json!({"v": "recreated"})))?;
    server.delete("v1", "ConfigMap", Some("default"), "b")?;
    server.create(configmap("default", "c", json!({})))?;

    let exact = get_json(
        server.addr(),
        &format!("/api/v1/configmaps?resourceVersion={past}&resourceVersionMatch=Exact"),
    )
    .await?;
    assert_eq!(names(&exact), ["a", "b"]);
    assert_eq!(exact["items"][0]["data"]["v"], "original");
    assert_eq!(exact["items"][0]["metadata"]["uid"], original["metadata"]["uid"]);
    assert_eq!(
        exact["items"][0]["metadata"]["resourceVersion"],
        original["metadata"]["resourceVersion"]
    );
    let now = get_json(server.addr(), "/api/v1/configmaps").await?;
    assert_eq!(names(&now), ["a", "c"]);
    Ok(())
}

/// A page is cut from the (namespace, name) order of the whole resource, across namespaces, and
/// shows the objects as they were at the first page's version however they change meanwhile; a
/// namespaced list reads its own namespace only (the store walks the current objects under an
/// overlay of the history's changes, `store/history.rs` `list_page`).
#[tokio::test]
async fn pages_cross_namespaces_in_order_and_a_namespace_reads_only_its_own() -> TestResult {
    let server = ApiServer::start().await?;
    let namespaces = ["default", "kube-public", "kube-system"];
    for ns in namespaces {
        for i in 0..3 {
            server.create(configmap(ns, &format!("cm-{i}"), json!({})))?;
        }
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for page_number in 0..10 {
        let path = match &token {
            Some(t) => format!("/api/v1/configmaps?limit=2&continue={t}"),
            None => "/api/v1/configmaps?limit=2".to_string(),
        };
        let page = get_json(server.addr(), &path).await?;
        if page_number == 0 {
            server.delete("v1", "ConfigMap", Some("kube-public"), "cm-1")?;
            server.create(configmap("default", "cm-9", json!({})))?;
            server.create(configmap("kube-public", "cm-10", json!({})))?;
        }
        for item in page["items"].as_array().ok_or("no items")? {
            let meta = &item["metadata"];
            seen.push(format!(
                "{}/{}",
                meta["namespace"].as_str().unwrap_or_default(),
                meta["name"].as_str().unwrap_or_default()
            ));
        }
        token = page["metadata"]["continue"].as_str().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    let expected: Vec<String> = namespaces
        .iter()
        .flat_map(|ns| (0..3).map(move |i| format!("{ns}/cm-{i}")))
        .collect();
    assert_eq!(seen, expected);
    let public = get_json(server.addr(), "/api/v1/namespaces/kube-public/configmaps?limit=5").await?;
    assert_eq!(names(&public), ["cm-0", "cm-10", "cm-2"]);
    assert!(public["metadata"].get("continue").is_none());
    let first = get_json(server.addr(), "/api/v1/namespaces/kube-public/configmaps?limit=1").await?;
    assert_eq!(names(&first), ["cm-0"]);
    assert_eq!(first["metadata"]["remainingItemCount"], 2);
    Ok(())
}
