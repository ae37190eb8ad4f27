//! Writes over HTTP: create, get, replace, patch (each kind), delete (finalizers, namespaces),
//! deletecollection, `/status`, CRDs, and the Status answers of each failure.

use crate::common;

use std::time::Duration;

use common::*;
use kazan_apiserver::ApiServer;
use serde_json::json;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn create_sets_server_fields_and_answers_201() -> TestResult {
    let server = ApiServer::start().await?;
    let response = post(server.addr(), CMS, &configmap("default", "a", json!({"k": "v"}))).await?;
    assert_eq!(response.status, 201);
    let created = response.json()?;
    assert_eq!(created["kind"], "ConfigMap");
    assert_eq!(
        created["metadata"]["resourceVersion"],
        server.resource_version().to_string()
    );
    assert_eq!(created["metadata"]["uid"].as_str().map(str::len), Some(36));
    assert!(
        created["metadata"]["creationTimestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    // The ConfigMap strategy sets no generation (issue 19 row 13; this test expected 1 before).
    assert!(created["metadata"].get("generation").is_none());

    let fetched = get_json(server.addr(), &format!("{CMS}/a")).await?;
    assert_eq!(fetched, created);
    Ok(())
}

#[tokio::test]
async fn create_without_content_type_is_json_and_generate_name_makes_a_name() -> TestResult {
    let server = ApiServer::start().await?;
    let body = serde_json::to_vec(
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}),
    )?;
    let response = request(server.addr(), "POST", CMS, &[], Some(&body)).await?;
    assert_eq!(response.status, 201, "{}", response.text());
    let name = response.json()?["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    Ok(())
}

#[tokio::test]
async fn create_of_an_existing_name_is_409_already_exists() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(configmap("default", "a", json!({})))?;
    let response = post(server.addr(), CMS, &configmap("default", "a", json!({}))).await?;
    assert_eq!(response.status, 409);
    assert_eq!(
        response.json()?,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \"a\" already exists",
               "reason":"AlreadyExists","details":{"name":"a","kind":"configmaps"},"code":409})
    );
    Ok(())
}

#[tokio::test]
async fn get_of_a_missing_object_is_404_naming_it() -> TestResult {
    let server = ApiServer::start().await?;
    let response = get(server.addr(), "/apis/apps/v1/namespaces/default/deployments/nope").await?;
    assert_eq!(response.status, 404);
    assert_eq!(
        response.json()?,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"deployments.apps \"nope\" not found",
               "reason":"NotFound","details":{"name":"nope","group":"apps","kind":"deployments"},"code":404})
    );
    Ok(())
}

#[tokio::test]
async fn namespaced_objects_need_their_namespace() -> TestResult {
    let server = ApiServer::start().await?;
    let response = post(
        server.addr(),
        "/api/v1/namespaces/ghost/configmaps",
        &configmap("ghost", "a", json!({})),
    )
    .await?;
    assert_eq!(response.status, 404);
    let status = response.json()?;
    assert_eq!(status["message"], "namespaces \"ghost\" not found");
    assert_eq!(status["details"], json!({"name": "ghost", "kind": "namespaces"}));
    assert!(matches!(
        server.create(configmap("ghost", "a", json!({}))),
        Err(kazan_apiserver::StoreError::NotFound(_))
    ));
    Ok(())
}

#[tokio::test]
async fn namespaces_get_their_label_finalizer_and_phase() -> TestResult {
    let server = ApiServer::start().await?;
    let response = post(
        server.addr(),
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}),
    )
    .await?;
    assert_eq!(response.status, 201);
    let ns = response.json()?;
    assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "demo");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(ns["status"]["phase"], "Active");
    Ok(())
}

#[tokio::test]
async fn replace_with_a_stale_version_is_409_conflict_and_a_fresh_one_bumps_generation() -> TestResult {
    let server = ApiServer::start().await?;
    let created = server.create(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 1}}))?;
    let path = "/apis/apps/v1/namespaces/default/deployments/web";
    let mut next = created.clone();
    next["spec"]["replicas"] = json!(3);
    let response = send_json(server.addr(), "PUT", path, "application/json", &next).await?;
    assert_eq!(response.status, 200, "{}", response.text());
    let updated = response.json()?;
    assert_eq!(updated["metadata"]["generation"], 2);
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
    assert!(rv_of(&updated) > rv_of(&created));

    let stale = send_json(server.addr(), "PUT", path, "application/json", &next).await?;
    assert_eq!(stale.status, 409);
    let status = stale.json()?;
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
    );
    Ok(())
}

#[tokio::test]
async fn an_unchanged_replace_writes_nothing() -> TestResult {
    let server = ApiServer::start().await?;
    let created = server.create(configmap("default", "a", json!({"k": "v"})))?;
    let before = server.resource_version();
    let response = send_json(
        server.addr(),
        "PUT",
        &format!("{CMS}/a"),
        "application/json",
        &created,
    )
    .await?;
    assert_eq!(response.status, 200);
    assert_eq!(server.resource_version(), before);
    assert_eq!(
        response.json()?["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    Ok(())
}

#[tokio::test]
async fn patches_of_each_kind() -> TestResult {
    let server = ApiServer::start().await?;
    // A Deployment's pod template, not a Pod: a Pod's env cannot change (`ValidatePodUpdate`),
    // which this test ignored before issue 19 row 11.
    server.create(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "p", "namespace": "default", "labels": {"a": "1"}},
        "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
                                {"name": "side", "image": "side:1"}]}}}}))?;
    let path = "/apis/apps/v1/namespaces/default/deployments/p";

    let merged = send_json(
        server.addr(),
        "PATCH",
        path,
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"a": null, "b": "2"}}}),
    )
    .await?;
    assert_eq!(merged.status, 200, "{}", merged.text());
    assert_eq!(merged.json()?["metadata"]["labels"], json!({"b": "2"}));

    let json_patched = send_json(
        server.addr(),
        "PATCH",
        path,
        "application/json-patch+json",
        &json!([{"op": "replace", "path": "/spec/template/spec/containers/1/image", "value": "side:2"}]),
    )
    .await?;
    assert_eq!(json_patched.status, 200);
    assert_eq!(
        json_patched.json()?["spec"]["template"]["spec"]["containers"][1]["image"],
        "side:2"
    );

    let failed_test = send_json(
        server.addr(),
        "PATCH",
        path,
        "application/json-patch+json",
        &json!([{"op": "test", "path": "/spec/template/spec/containers/1/image", "value": "nope"}]),
    )
    .await?;
    assert_eq!(failed_test.status, 422);

    let strategic = send_json(server.addr(), "PATCH", path, "application/strategic-merge-patch+json",
        &json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "app:2", "env": [{"name": "B", "value": "2"}]}]}}}})).await?;
    assert_eq!(strategic.status, 200);
    let pod = strategic.json()?;
    assert_eq!(
        pod["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "merged by name, not replaced"
    );
    assert_eq!(pod["spec"]["template"]["spec"]["containers"][0]["image"], "app:2");
    assert_eq!(
        pod["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    );

    let unsupported = request(
        server.addr(),
        "PATCH",
        path,
        &[("Content-Type", "text/plain")],
        Some(b"x"),
    )
    .await?;
    assert_eq!(unsupported.status, 415);
    assert_eq!(unsupported.json()?["reason"], "UnsupportedMediaType");

    let stale = send_json(
        server.addr(),
        "PATCH",
        path,
        "application/merge-patch+json",
        &json!({"metadata": {"resourceVersion": "1", "labels": {"c": "3"}}}),
    )
    .await?;
    assert_eq!(stale.status, 409);
    Ok(())
}

#[tokio::test]
async fn server_side_apply_creates_with_201_then_updates_with_200() -> TestResult {
    let server = ApiServer::start().await?;
    let path = "/api/v1/namespaces/default/configmaps/applied?fieldManager=kubectl&force=false";
    let yaml = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: \"1\"\n";
    let created = request(
        server.addr(),
        "PATCH",
        path,
        &[("Content-Type", "application/apply-patch+yaml")],
        Some(yaml),
    )
    .await?;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()?["data"], json!({"a": "1"}));
    let again = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"applied"},"data":{"b":"2"}}"#;
    let updated = request(
        server.addr(),
        "PATCH",
        path,
        &[("Content-Type", "application/apply-patch+yaml")],
        Some(again),
    )
    .await?;
    assert_eq!(updated.status, 200);
    // The same manager stopped applying `a`: real server-side apply removes it (issue 19 row 2;
    // this test expected the old merge, {"a": "1", "b": "2"}).
    assert_eq!(updated.json()?["data"], json!({"b": "2"}));
    Ok(())
}

#[tokio::test]
async fn delete_answers_a_success_status_and_the_object_is_gone() -> TestResult {
    let server = ApiServer::start().await?;
    let created = server.create(configmap("default", "a", json!({})))?;
    let body = serde_json::to_vec(&json!({"propagationPolicy": "Background"}))?;
    let response = request(
        server.addr(),
        "DELETE",
        &format!("{CMS}/a"),
        &[("Content-Type", "application/json")],
        Some(&body),
    )
    .await?;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.json()?,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success",
               "details":{"name":"a","kind":"configmaps","uid": created["metadata"]["uid"]},"code":200})
    );
    assert_eq!(get(server.addr(), &format!("{CMS}/a")).await?.status, 404);
    assert_eq!(
        request(server.addr(), "DELETE", &format!("{CMS}/a"), &[], None)
            .await?
            .status,
        404
    );
    Ok(())
}

#[tokio::test]
async fn finalizers_keep_a_deleted_object_until_they_are_cleared() -> TestResult {
    let server = ApiServer::start().await?;
    let mut object = configmap("default", "held", json!({}));
    object["metadata"]["finalizers"] = json!(["example.com/hold"]);
    server.create(object)?;
    let mut watch = WatchStream::open(
        server.addr(),
        &format!("{CMS}?watch=1&resourceVersion={}", server.resource_version()),
    )
    .await?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);

    let response = request(server.addr(), "DELETE", &format!("{CMS}/held"), &[], None).await?;
    assert_eq!(response.status, 200);
    let marked = response.json()?;
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    let (t, o) = watch.event().await?;
    assert_eq!(t, "MODIFIED");
    assert!(o["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(
        get(server.addr(), &format!("{CMS}/held")).await?.status,
        200,
        "still there"
    );

    let cleared = send_json(
        server.addr(),
        "PATCH",
        &format!("{CMS}/held"),
        "application/merge-patch+json",
        &json!({"metadata": {"finalizers": null}}),
    )
    .await?;
    assert_eq!(cleared.status, 200);
    let (t, o) = watch.event().await?;
    assert_eq!(t, "DELETED");
    assert_eq!(name_of(&o), "held");
    assert_eq!(get(server.addr(), &format!("{CMS}/held")).await?.status, 404);
    Ok(())
}

#[tokio::test]
async fn deleting_a_namespace_terminates_it_then_removes_it_with_its_objects() -> TestResult {
    let server = ApiServer::builder()
        .namespace_delete_delay(Duration::from_millis(200))
        .start()
        .await?;
    server.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}}))?;
    server.create(configmap("doomed", "inside", json!({})))?;
    let from = server.resource_version();
    let mut namespaces = WatchStream::open(
        server.addr(),
        &format!("/api/v1/namespaces?watch=1&resourceVersion={from}"),
    )
    .await?;
    let mut configmaps = WatchStream::open(
        server.addr(),
        &format!("/api/v1/configmaps?watch=1&resourceVersion={from}"),
    )
    .await?;
    assert!(server.wait_for_watches("namespaces", 1, WAIT).await);
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);

    let response = request(server.addr(), "DELETE", "/api/v1/namespaces/doomed", &[], None).await?;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()?["status"]["phase"], "Terminating");
    let refused = post(
        server.addr(),
        "/api/v1/namespaces/doomed/configmaps",
        &configmap("doomed", "late", json!({})),
    )
    .await?;
    assert_eq!(refused.status, 403);

    let (t, o) = namespaces.event().await?;
    assert_eq!(
        (t.as_str(), o["status"]["phase"].as_str()),
        ("MODIFIED", Some("Terminating"))
    );
    let (t, o) = configmaps.event().await?;
    assert_eq!((t.as_str(), name_of(&o)), ("DELETED", "inside"));
    let (t, o) = namespaces.event().await?;
    assert_eq!((t.as_str(), name_of(&o)), ("DELETED", "doomed"));
    assert_eq!(get(server.addr(), "/api/v1/namespaces/doomed").await?.status, 404);
    Ok(())
}

#[tokio::test]
async fn deletecollection_deletes_the_selected_objects() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(pod("default", "a", json!({"app": "web"}), "Running"))?;
    server.create(pod("default", "b", json!({"app": "db"}), "Running"))?;
    let response = request(
        server.addr(),
        "DELETE",
        "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb",
        &[],
        None,
    )
    .await?;
    assert_eq!(response.status, 200);
    let deleted = response.json()?;
    assert_eq!(deleted["kind"], "PodList");
    assert_eq!(deleted["items"].as_array().map(Vec::len), Some(1));
    let left = server.list("v1", "Pod", Some("default"))?;
    assert_eq!(
        left.iter().map(|p| name_of(p).to_string()).collect::<Vec<_>>(),
        ["b"]
    );
    Ok(())
}

#[tokio::test]
async fn status_subresource_changes_only_the_status() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(pod("default", "p", json!({"app": "web"}), "Pending"))?;
    let path = "/api/v1/namespaces/default/pods/p/status";
    let patched = send_json(
        server.addr(),
        "PATCH",
        path,
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"app": "changed"}}, "status": {"phase": "Running"}}),
    )
    .await?;
    assert_eq!(patched.status, 200, "{}", patched.text());
    let pod = patched.json()?;
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(pod["metadata"]["labels"]["app"], "web");
    assert_eq!(get_json(server.addr(), path).await?["status"]["phase"], "Running");
    Ok(())
}

#[tokio::test]
async fn a_crd_registers_its_kind_and_deleting_it_unregisters() -> TestResult {
    let server = ApiServer::start().await?;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"], "categories": ["all"]},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]}]}});
    let response = post(
        server.addr(),
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &crd,
    )
    .await?;
    assert_eq!(response.status, 201, "{}", response.text());
    let def = server
        .registry()
        .get("example.com", "v1", "widgets")
        .ok_or("not registered")?;
    assert_eq!(def.short_names, ["wd"]);
    assert_eq!(def.printer_columns[0].json_path, ".spec.size");

    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}});
    let created = post(
        server.addr(),
        "/apis/example.com/v1/namespaces/default/widgets",
        &widget,
    )
    .await?;
    assert_eq!(created.status, 201, "{}", created.text());
    let list = get_json(server.addr(), "/apis/example.com/v1/widgets").await?;
    assert_eq!(list["kind"], "WidgetList");
    assert_eq!(list["items"][0]["spec"]["size"], 3);

    let deleted = request(
        server.addr(),
        "DELETE",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
        &[],
        None,
    )
    .await?;
    assert_eq!(deleted.status, 200);
    assert!(server.registry().get("example.com", "v1", "widgets").is_none());
    assert_eq!(
        get(server.addr(), "/apis/example.com/v1/widgets").await?.status,
        404
    );
    Ok(())
}

#[tokio::test]
async fn resources_registered_from_rust_are_served() -> TestResult {
    let server = ApiServer::builder()
        .resource(kazan_apiserver::ResourceDef::new(
            "example.com",
            "v1",
            "Gadget",
            "gadgets",
            false,
        ))
        .start()
        .await?;
    server.register(kazan_apiserver::ResourceDef::new(
        "example.com",
        "v1",
        "Gizmo",
        "gizmos",
        true,
    ));
    server.create(json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}}))?;
    server.create(json!({"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "z", "namespace": "default"}}))?;
    assert_eq!(
        get_json(server.addr(), "/apis/example.com/v1/gadgets/g").await?["kind"],
        "Gadget"
    );
    assert_eq!(
        get_json(server.addr(), "/apis/example.com/v1/namespaces/default/gizmos/z").await?["kind"],
        "Gizmo"
    );
    Ok(())
}

#[tokio::test]
async fn invalid_names_and_missing_names_are_422() -> TestResult {
    let server = ApiServer::start().await?;
    let bad = post(server.addr(), CMS, &configmap("default", "Not_Valid", json!({}))).await?;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json()?["details"]["causes"][0]["field"], "metadata.name");
    let missing = post(
        server.addr(),
        CMS,
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
    )
    .await?;
    assert_eq!(missing.status, 422);
    assert_eq!(
        missing.json()?["message"],
        "ConfigMap \"\" is invalid: metadata.name: Required value: name or generateName is required"
    );
    let not_json = request(
        server.addr(),
        "POST",
        CMS,
        &[("Content-Type", "application/json")],
        Some(b"{"),
    )
    .await?;
    assert_eq!(not_json.status, 400);
    Ok(())
}

#[tokio::test]
async fn the_direct_api_applies_creates_updates_and_reports_statuses() -> TestResult {
    let server = ApiServer::start().await?;
    let created = server.apply(configmap("default", "a", json!({"x": "1"})))?;
    assert_eq!(created["data"], json!({"x": "1"}));
    let merged = server.apply(configmap("default", "a", json!({"y": "2"})))?;
    assert_eq!(merged["data"], json!({"x": "1", "y": "2"}));
    let mut stale = created.clone();
    stale["data"] = json!({"z": "3"});
    match server.update(stale) {
        Err(e) => assert_eq!((e.code(), e.status().reason.as_str()), (409, "Conflict")),
        Ok(_) => return Err("a stale update succeeded".into()),
    }
    let got = server.get("v1", "ConfigMap", Some("default"), "a")?;
    assert_eq!(got, merged);
    match server.get("v1", "Widget", Some("default"), "a") {
        Err(e) => assert_eq!(e.code(), 404),
        Ok(_) => return Err("an unknown kind was found".into()),
    }
    let last = server.delete("v1", "ConfigMap", Some("default"), "a")?;
    assert_eq!(last["data"], json!({"x": "1", "y": "2"}));
    assert!(server.list("v1", "ConfigMap", None)?.is_empty());
    Ok(())
}

#[tokio::test]
async fn dry_run_writes_answer_but_store_nothing() -> TestResult {
    let server = ApiServer::start().await?;
    server.create(configmap("default", "kept", json!({"v": "1"})))?;
    let before = server.resource_version();
    let created = post(
        server.addr(),
        &format!("{CMS}?dryRun=All"),
        &configmap("default", "dry", json!({})),
    )
    .await?;
    assert_eq!(created.status, 201);
    assert!(created.json()?["metadata"]["uid"].is_string());
    let patched = send_json(
        server.addr(),
        "PATCH",
        &format!("{CMS}/kept?dryRun=All"),
        "application/merge-patch+json",
        &json!({"data": {"v": "2"}}),
    )
    .await?;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.json()?["data"]["v"], "2");
    let deleted = request(
        server.addr(),
        "DELETE",
        &format!("{CMS}/kept?dryRun=All"),
        &[],
        None,
    )
    .await?;
    assert_eq!(deleted.status, 200);
    assert_eq!(server.resource_version(), before);
    assert_eq!(get(server.addr(), &format!("{CMS}/dry")).await?.status, 404);
    assert_eq!(
        get_json(server.addr(), &format!("{CMS}/kept")).await?["data"]["v"],
        "1"
    );
    let bad = post(
        server.addr(),
        &format!("{CMS}?dryRun=Some"),
        &configmap("default", "x", json!({})),
    )
    .await?;
    assert_eq!(bad.status, 400);
    Ok(())
}

#[tokio::test]
async fn a_terminating_namespace_waits_for_objects_held_by_finalizers() -> TestResult {
    let server = ApiServer::builder()
        .namespace_delete_delay(Duration::from_millis(100))
        .start()
        .await?;
    server.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "held"}}))?;
    let mut object = configmap("held", "guarded", json!({}));
    object["metadata"]["finalizers"] = json!(["example.com/guard"]);
    server.create(object)?;
    let from = server.resource_version();
    let mut watch = WatchStream::open(
        server.addr(),
        &format!("/api/v1/configmaps?watch=1&resourceVersion={from}"),
    )
    .await?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    server.delete("v1", "Namespace", None, "held")?;

    let (t, o) = watch.event().await?;
    assert_eq!(t, "MODIFIED");
    assert!(
        o["metadata"]["deletionTimestamp"].is_string(),
        "marked for deletion, not removed"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.get("v1", "Namespace", None, "held")?["status"]["phase"],
        "Terminating"
    );

    server.merge_patch(
        "v1",
        "ConfigMap",
        Some("held"),
        "guarded",
        json!({"metadata": {"finalizers": null}}),
    )?;
    assert_eq!(watch.event().await?.0, "DELETED");
    let gone = tokio::time::timeout(WAIT, async {
        while server.get("v1", "Namespace", None, "held").is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        gone.is_ok(),
        "the namespace was not removed once its objects were gone"
    );
    Ok(())
}
