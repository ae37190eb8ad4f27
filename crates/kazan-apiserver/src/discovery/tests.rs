use std::cmp::Ordering;

use serde_json::{Value, json};

use super::*;
use crate::registry::{Registry, ResourceDef};

/// What kubectl 1.37 sends for `/api` and `/apis`.
const KUBECTL_ACCEPT: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";

fn registry_with_widgets() -> Registry {
    let registry = Registry::with_builtins();
    registry
        .register(ResourceDef::new("example.com", "v1beta1", "Widget", "widgets", true).short_names(&["wd"]));
    registry.register(ResourceDef::new("example.com", "v1", "Widget", "widgets", true).categories(&["all"]));
    registry
}

fn get(registry: &Registry, path: &str, accept: &str) -> Result<DiscoveryResponse, String> {
    respond(registry, path, accept).ok_or_else(|| format!("{path} not answered"))
}

fn find<'a>(items: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    items
        .as_array()?
        .iter()
        .find(|item| item.pointer(key).and_then(Value::as_str) == Some(value))
}

#[test]
fn aggregated_api_has_the_exact_media_type_and_the_core_resources() -> Result<(), String> {
    let registry = Registry::with_builtins();
    let answer = get(&registry, "/api", KUBECTL_ACCEPT)?;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.content_type,
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    assert_eq!(answer.body["kind"], "APIGroupDiscoveryList");
    assert_eq!(answer.body["apiVersion"], "apidiscovery.k8s.io/v2");
    let items = answer.body["items"].as_array().ok_or("no items")?;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["metadata"], json!({}));
    let version = &items[0]["versions"][0];
    assert_eq!(version["version"], "v1");
    assert_eq!(version["freshness"], "Current");
    let namespaces = find(&version["resources"], "/resource", "namespaces").ok_or("no namespaces")?;
    assert_eq!(
        namespaces,
        &json!({
            "resource": "namespaces",
            "responseKind": {"group": "", "version": "v1", "kind": "Namespace"},
            "scope": "Cluster",
            "singularResource": "namespace",
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": ["ns"],
            "subresources": [{"subresource": "status", "responseKind": {"group": "", "version": "v1", "kind": "Namespace"},
                              "verbs": ["get", "patch", "update"]}],
        })
    );
    let pods = find(&version["resources"], "/resource", "pods").ok_or("no pods")?;
    assert_eq!(pods["scope"], "Namespaced");
    assert_eq!(pods["categories"], json!(["all"]));
    assert_eq!(
        pods["subresources"],
        json!([{"subresource": "status", "responseKind": {"group": "", "version": "v1", "kind": "Pod"},
                "verbs": ["get", "patch", "update"]},
               {"subresource": "binding", "responseKind": {"group": "", "version": "v1", "kind": "Binding"},
                "verbs": ["create"]},
               {"subresource": "eviction", "responseKind": {"group": "policy", "version": "v1", "kind": "Eviction"},
                "verbs": ["create"]}])
    );
    let configmaps = find(&version["resources"], "/resource", "configmaps").ok_or("no configmaps")?;
    assert!(configmaps.get("subresources").is_none());
    // Only core kinds under /api.
    assert!(find(&version["resources"], "/resource", "deployments").is_none());
    Ok(())
}

#[test]
fn aggregated_apis_lists_named_groups_with_preferred_version_first() -> Result<(), String> {
    let registry = registry_with_widgets();
    let answer = get(&registry, "/apis", KUBECTL_ACCEPT)?;
    assert_eq!(answer.content_type, AGGREGATED_MEDIA_TYPE);
    let items = &answer.body["items"];
    assert!(
        find(items, "/metadata/name", "").is_none(),
        "the core group is not under /apis"
    );
    let apps = find(items, "/metadata/name", "apps").ok_or("no apps")?;
    let deployments =
        find(&apps["versions"][0]["resources"], "/resource", "deployments").ok_or("no deployments")?;
    assert_eq!(
        deployments["responseKind"],
        json!({"group": "apps", "version": "v1", "kind": "Deployment"})
    );
    assert_eq!(deployments["shortNames"], json!(["deploy"]));
    let widgets = find(items, "/metadata/name", "example.com").ok_or("no example.com")?;
    let versions: Vec<&str> = widgets["versions"]
        .as_array()
        .ok_or("no versions")?
        .iter()
        .filter_map(|v| v["version"].as_str())
        .collect();
    assert_eq!(versions, ["v1", "v1beta1"]);
    Ok(())
}

#[test]
fn v2beta1_is_answered_with_its_own_media_type() -> Result<(), String> {
    let registry = Registry::with_builtins();
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let answer = get(&registry, "/apis", accept)?;
    assert_eq!(answer.content_type, AGGREGATED_V2BETA1_MEDIA_TYPE);
    assert_eq!(answer.body["apiVersion"], "apidiscovery.k8s.io/v2beta1");
    Ok(())
}

#[test]
fn protobuf_aggregated_is_skipped_for_the_json_alternative() -> Result<(), String> {
    let registry = Registry::with_builtins();
    let accept = "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    assert_eq!(
        get(&registry, "/api", accept)?.content_type,
        AGGREGATED_MEDIA_TYPE
    );
    Ok(())
}

#[test]
fn legacy_api_and_apis_without_the_aggregated_accept() -> Result<(), String> {
    let registry = registry_with_widgets();
    let api = get(&registry, "/api", "application/json")?;
    assert_eq!(api.content_type, "application/json");
    assert_eq!(
        api.body,
        json!({"kind": "APIVersions", "apiVersion": "v1", "versions": ["v1"], "serverAddressByClientCIDRs": []})
    );
    let apis = get(&registry, "/apis", "")?;
    assert_eq!(apis.body["kind"], "APIGroupList");
    let widgets = find(&apis.body["groups"], "/name", "example.com").ok_or("no example.com")?;
    assert_eq!(
        widgets,
        &json!({
            "name": "example.com",
            "versions": [
                {"groupVersion": "example.com/v1", "version": "v1"},
                {"groupVersion": "example.com/v1beta1", "version": "v1beta1"},
            ],
            "preferredVersion": {"groupVersion": "example.com/v1", "version": "v1"},
        })
    );
    Ok(())
}

#[test]
fn legacy_resource_lists_per_group_version() -> Result<(), String> {
    let registry = registry_with_widgets();
    let core = get(&registry, "/api/v1", "application/json")?;
    assert_eq!(core.body["kind"], "APIResourceList");
    assert_eq!(core.body["groupVersion"], "v1");
    let pods = find(&core.body["resources"], "/name", "pods").ok_or("no pods")?;
    assert_eq!(
        pods,
        &json!({
            "name": "pods",
            "singularName": "pod",
            "namespaced": true,
            "kind": "Pod",
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": ["po"],
            "categories": ["all"],
        })
    );
    let pod_status = find(&core.body["resources"], "/name", "pods/status").ok_or("no pods/status")?;
    assert_eq!(
        pod_status,
        &json!({"name": "pods/status", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get", "patch", "update"]})
    );
    let widgets = get(&registry, "/apis/example.com/v1beta1", "application/json")?;
    assert_eq!(widgets.body["groupVersion"], "example.com/v1beta1");
    let widget = find(&widgets.body["resources"], "/name", "widgets").ok_or("no widgets")?;
    assert_eq!(widget["shortNames"], json!(["wd"]));
    let group = get(&registry, "/apis/apps", "application/json")?;
    assert_eq!(group.body["kind"], "APIGroup");
    assert_eq!(group.body["name"], "apps");
    assert_eq!(group.body["preferredVersion"]["groupVersion"], "apps/v1");
    Ok(())
}

#[test]
fn unknown_groups_and_versions_are_404_status() -> Result<(), String> {
    let registry = Registry::with_builtins();
    for path in [
        "/apis/nope.example.com",
        "/apis/apps/v9",
        "/apis/nope/v1",
        "/openapi/v3/apis/nope/v1",
    ] {
        let answer = get(&registry, path, "application/json")?;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.body["kind"], "Status");
        assert_eq!(answer.body["reason"], "NotFound");
        assert_eq!(answer.body["code"], 404);
    }
    Ok(())
}

#[test]
fn resource_paths_are_left_to_the_router() {
    let registry = Registry::with_builtins();
    for path in [
        "/api/v1/namespaces",
        "/api/v1/namespaces/default/pods",
        "/apis/apps/v1/deployments",
        "/healthz",
        "/",
    ] {
        assert_eq!(respond(&registry, path, "application/json"), None, "{path}");
    }
}

#[test]
fn query_strings_and_trailing_slashes_are_ignored() -> Result<(), String> {
    let registry = Registry::with_builtins();
    assert_eq!(
        get(&registry, "/api?timeout=32s", KUBECTL_ACCEPT)?.content_type,
        AGGREGATED_MEDIA_TYPE
    );
    assert_eq!(
        get(&registry, "/apis/apps/v1/", "")?.body["groupVersion"],
        "apps/v1"
    );
    Ok(())
}

#[test]
fn version_reports_a_recent_release() -> Result<(), String> {
    let answer = get(&Registry::with_builtins(), "/version", "application/json")?;
    assert_eq!(answer.body["major"], "1");
    assert_eq!(answer.body["minor"], "37");
    assert_eq!(answer.body["gitVersion"], "v1.37.0+kazan");
    Ok(())
}

#[test]
fn openapi_index_lists_every_group_version_including_custom_ones() -> Result<(), String> {
    let registry = registry_with_widgets();
    let index = get(&registry, "/openapi/v3", "application/json")?.body;
    let paths = index["paths"].as_object().ok_or("no paths")?;
    for gv in [
        "api/v1",
        "apis/apps/v1",
        "apis/batch/v1",
        "apis/example.com/v1",
        "apis/example.com/v1beta1",
    ] {
        let url = paths
            .get(gv)
            .and_then(|p| p["serverRelativeURL"].as_str())
            .ok_or(format!("{gv} missing"))?;
        assert!(url.starts_with(&format!("/openapi/v3/{gv}?hash=")), "{url}");
        // The link answers, hash and all.
        assert_eq!(get(&registry, url, "application/json")?.status, 200);
    }
    Ok(())
}

#[test]
fn openapi_document_has_a_patch_with_gvk_and_field_validation_per_kind() -> Result<(), String> {
    let registry = registry_with_widgets();
    let doc = get(&registry, "/openapi/v3/api/v1", "application/json")?.body;
    assert_eq!(doc["openapi"], "3.0.0");
    let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "", "version": "v1", "kind": "ConfigMap"})
    );
    assert!(find(&patch["parameters"], "/name", "fieldValidation").is_some());
    let namespaces = &doc["paths"]["/api/v1/namespaces/{name}"]["patch"];
    assert_eq!(namespaces["x-kubernetes-group-version-kind"]["kind"], "Namespace");
    let widgets = get(&registry, "/openapi/v3/apis/example.com/v1", "")?.body;
    let widget = &widgets["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"];
    assert_eq!(
        widget["x-kubernetes-group-version-kind"],
        json!({"group": "example.com", "version": "v1", "kind": "Widget"})
    );
    Ok(())
}

#[test]
fn openapi_hash_changes_when_a_kind_is_registered() -> Result<(), String> {
    let registry = Registry::with_builtins();
    let url = |registry: &Registry| -> Result<String, String> {
        let index = get(registry, "/openapi/v3", "")?.body;
        index["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .map(String::from)
            .ok_or("no url".into())
    };
    let before = url(&registry)?;
    registry.register(ResourceDef::new("apps", "v1", "Gadget", "gadgets", true));
    assert_ne!(before, url(&registry)?);
    Ok(())
}

#[test]
fn versions_sort_by_kubernetes_priority() {
    let mut versions = vec![
        "v1alpha1",
        "v1",
        "foo",
        "v2beta1",
        "v1beta2",
        "v2",
        "v1beta1",
        "v11alpha2",
        "bar",
    ];
    versions.sort_by(|a, b| compare_versions(a, b));
    assert_eq!(
        versions,
        [
            "v2",
            "v1",
            "v2beta1",
            "v1beta2",
            "v1beta1",
            "v11alpha2",
            "v1alpha1",
            "bar",
            "foo"
        ]
    );
    assert_eq!(compare_versions("v1", "v1"), Ordering::Equal);
}

/// kube-openapi `pkg/handler/handler.go` negotiates with goautoneg: clauses by quality, then the
/// more specific range first; either protobuf subtype; `*/*` or nothing is JSON.
#[test]
fn openapi_v2_form_follows_the_accept_clauses_by_quality() -> Result<(), String> {
    let registry = Registry::with_builtins();
    let form = |accept: &str| -> Result<(u16, &'static str), String> {
        let answer = openapi_v2(&registry, "/openapi/v2?timeout=32s", accept).ok_or("not answered")?;
        Ok((answer.status, answer.content_type))
    };
    let protobuf = (200, OPENAPI_V2_PROTOBUF);
    let json = (200, JSON_MEDIA_TYPE);
    assert_eq!(
        form("application/com.github.proto-openapi.spec.v2@v1.0+protobuf")?,
        protobuf
    );
    assert_eq!(
        form("application/com.github.proto-openapi.spec.v2.v1.0+protobuf")?,
        protobuf
    );
    assert_eq!(
        form("application/json;q=0.5, application/com.github.proto-openapi.spec.v2@v1.0+protobuf")?,
        protobuf
    );
    assert_eq!(form("*/*, application/json;q=0.9")?, json);
    assert_eq!(form("application/*")?, json);
    assert_eq!(form("")?, json);
    assert_eq!(form("text/html, application/xml")?, (406, ""));
    assert_eq!(openapi_v2(&registry, "/openapi/v3", ""), None);
    Ok(())
}
