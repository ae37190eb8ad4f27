//! The minimal OpenAPI v3 documents `kubectl apply` and `kubectl create -f` need.
//!
//! kubectl (default `--validate=strict`) downloads `/openapi/v3`, then the document of the
//! object's group-version, and looks for a PATCH operation tagged with the object's
//! `x-kubernetes-group-version-kind` that takes a `fieldValidation` query parameter. Finding it,
//! kubectl leaves validation to the server (`?fieldValidation=Strict`). Without the document, apply
//! fails ("failed to download openapi"); without the group-version in the index, kubectl decides a
//! custom resource is unknown. The schemas (see `group_version_document`) carry the patch
//! strategies of the keyed lists, which kubectl's client-side apply reads to build its strategic
//! merge patches; without them it would replace whole lists.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde_json::{Map, Value, json};

use super::{ApiGroup, GroupVersions, SERVER_GIT_VERSION};
use crate::registry::ResourceDef;

/// `/openapi/v3`: every group-version, each linked with a hash of its document so that kubectl's
/// cache notices when a kind is registered.
pub(super) fn index(groups: &GroupVersions) -> Value {
    let mut paths = Map::new();
    for (path, group) in groups.all_versions() {
        let doc = group_version_document(&group);
        let url = format!("/openapi/v3/{path}?hash={}", content_hash(&doc));
        paths.insert(path, json!({ "serverRelativeURL": url }));
    }
    json!({ "paths": paths })
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`; `None` for anything else.
pub(super) fn document(groups: &GroupVersions, rest: &[&str]) -> Option<Value> {
    let group = match rest {
        ["api", "v1"] => groups.core(),
        ["apis", group, version] => groups.group(group)?.only(version)?,
        _ => return None,
    };
    Some(group_version_document(&group))
}

pub(super) fn content_hash(doc: &Value) -> String {
    let mut hasher = DefaultHasher::new();
    doc.to_string().hash(&mut hasher);
    format!("{:016X}", hasher.finish())
}

/// The document of one group-version: an item path per resource with a PATCH operation.
/// The schemas are those of the generated tables for the built-in kinds (field names and types,
/// no descriptions) and the CRD's `openAPIV3Schema` for custom resources, each root tagged with
/// its `x-kubernetes-group-version-kind` as `kubectl explain` looks them up.
fn group_version_document(group: &ApiGroup) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for version in &group.versions {
        for def in &version.resources {
            paths.insert(item_path(def), item_operations(def));
            let root = match &def.schema {
                Some(schema) => {
                    let name = format!("{}.{}.{}", def.group, def.version, def.kind);
                    schemas.insert(name.clone(), schema.clone());
                    Some(name)
                }
                None => crate::protobuf::openapi_schema(def, &mut schemas),
            };
            if let Some(root) = root
                && let Some(Value::Object(schema)) = schemas.get_mut(&root)
            {
                schema.insert(
                    "x-kubernetes-group-version-kind".into(),
                    json!([{ "group": def.group, "version": def.version, "kind": def.kind }]),
                );
                if let Some(Value::Object(properties)) = schema.get_mut("properties") {
                    properties
                        .entry("apiVersion")
                        .or_insert_with(|| json!({"type": "string"}));
                    properties
                        .entry("kind")
                        .or_insert_with(|| json!({"type": "string"}));
                }
            }
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": SERVER_GIT_VERSION },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

/// `/api/v1/namespaces/{namespace}/configmaps/{name}` and the like (v3's and v2's paths).
pub(super) fn item_path(def: &ResourceDef) -> String {
    let prefix = if def.group.is_empty() {
        format!("/api/{}", def.version)
    } else {
        format!("/apis/{}/{}", def.group, def.version)
    };
    if def.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", def.plural)
    } else {
        format!("{prefix}/{}/{{name}}", def.plural)
    }
}

fn query_parameter(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "query",
        "description": description,
        "schema": { "type": "string" },
    })
}

fn path_parameter(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "description": description,
        "required": true,
        "schema": { "type": "string" },
    })
}

fn item_operations(def: &ResourceDef) -> Value {
    let mut path_parameters = vec![path_parameter("name", &format!("name of the {}", def.kind))];
    if def.namespaced {
        path_parameters.push(path_parameter(
            "namespace",
            "object name and auth scope, such as for teams and projects",
        ));
    }
    let gvk = json!({ "group": def.group, "version": def.version, "kind": def.kind });
    let patch_types = [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ];
    let request_content: Map<String, Value> = patch_types
        .iter()
        .map(|t| (t.to_string(), json!({ "schema": { "type": "object" } })))
        .collect();
    json!({
        "parameters": path_parameters,
        "patch": {
            "description": format!("partially update the specified {}", def.kind),
            "operationId": format!("patch{}", def.kind),
            "parameters": [
                query_parameter("dryRun", "When present, modifications are not persisted."),
                query_parameter("fieldManager", "The actor or entity making these changes."),
                query_parameter(
                    "fieldValidation",
                    "How the server treats unknown or duplicate fields: Ignore, Warn or Strict.",
                ),
                query_parameter("force", "Force apply requests."),
            ],
            "requestBody": { "content": request_content, "required": true },
            "responses": {
                "200": { "description": "OK" },
                "201": { "description": "Created" },
            },
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
        },
    })
}
