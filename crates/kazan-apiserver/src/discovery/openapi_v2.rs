//! `/openapi/v2`: one Swagger 2.0 document for every group-version, as JSON or as gnostic's
//! protobuf (`gnostic`), which is the form kubectl reads.
//!
//! kubectl needs it in two places (kubectl `pkg/validation/validation.go`, cli-runtime
//! `pkg/resource/query_param_verifier.go`): with `--validate=strict` (the default) it validates
//! the items of a `kind: List` manifest itself against the v2 definitions (a List has no endpoint
//! that could validate it on the server), and it falls back to the v2 paths when the v3 document
//! of a group-version cannot say whether a PATCH takes `fieldValidation`. Without the document,
//! `kubectl create -f list.yaml` fails with "failed to download openapi".
//!
//! The definitions are those of `/openapi/v3` (the generated tables for the built-in kinds, the
//! CRDs' schemas), converted to Swagger 2.0: references to `#/definitions/`, int-or-string as
//! `type: string, format: int-or-string`, and the CRD schemas made v2-compatible as
//! apiextensions-apiserver does (`pkg/controller/openapi/v2/conversion.go`,
//! `ToStructuralOpenAPIV2`; `pkg/controller/openapi/builder/builder.go`, `buildKubeNative`).
//! Built-in definitions carry the real model names (`io.k8s.api.core.v1.ConfigMap`,
//! `io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta`), which kubectl prints in its validation
//! errors; CRDs are named as the real server names them (`com.example.v1.Widget`).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{GroupVersions, SERVER_GIT_VERSION, openapi::item_path};
use crate::registry::ResourceDef;

/// The messages of `k8s.io/apimachinery/pkg/apis/meta/v1` the tables reach.
const META_MESSAGES: &[&str] = &[
    "ObjectMeta",
    "OwnerReference",
    "ManagedFieldsEntry",
    "LabelSelector",
    "LabelSelectorRequirement",
    "Condition",
];

/// Messages of `k8s.io/api/core/v1` that only other groups' kinds reach (so that the first kind
/// reaching them would otherwise name their package).
const CORE_MESSAGES_REACHED_FROM_OTHER_GROUPS: &[&str] = &["PodTemplateSpec"];

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The Swagger 2.0 document of every group-version the registry serves.
pub(super) fn document(groups: &GroupVersions) -> Value {
    let mut definitions = Map::new();
    let mut paths = Map::new();
    // The v2 name of each table message, fixed by the first group-version reaching it (the
    // core group comes first).
    let mut names: HashMap<String, String> = HashMap::new();
    for (_, group) in groups.all_versions() {
        for version in &group.versions {
            for def in &version.resources {
                let root = match &def.schema {
                    Some(schema) => {
                        let name = crd_model_name(def);
                        definitions.insert(name.clone(), crd_schema(schema));
                        Some(name)
                    }
                    None => built_in_definitions(def, &mut names, &mut definitions),
                };
                if let Some(root) = &root
                    && let Some(Value::Object(schema)) = definitions.get_mut(root)
                {
                    let gvk = json!({ "group": def.group, "version": def.version, "kind": def.kind });
                    // The tables hold no TypeMeta (protobuf carries it outside the message).
                    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
                        for field in ["apiVersion", "kind"] {
                            properties
                                .entry(field)
                                .or_insert_with(|| json!({ "type": "string" }));
                        }
                    }
                    let list = schema
                        .entry("x-kubernetes-group-version-kind")
                        .or_insert_with(|| json!([]));
                    if let Value::Array(list) = list
                        && !list.contains(&gvk)
                    {
                        list.push(gvk);
                    }
                }
                paths.insert(item_path(def), item_operations(def, root.as_deref()));
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": SERVER_GIT_VERSION },
        "paths": paths,
        "definitions": definitions,
    })
}

/// The protobuf form of [`document`].
pub(super) fn protobuf(doc: &Value) -> Vec<u8> {
    super::gnostic::document(doc)
}

/// Adds the definitions of a built-in kind (from its v3 schemas) and answers its root's name.
fn built_in_definitions(
    def: &ResourceDef,
    names: &mut HashMap<String, String>,
    definitions: &mut Map<String, Value>,
) -> Option<String> {
    let mut v3 = Map::new();
    let root = crate::protobuf::openapi_schema(def, &mut v3)?;
    let package = api_package(&def.group, &def.version);
    for v3_name in v3.keys() {
        names
            .entry(v3_name.clone())
            .or_insert_with(|| model_name(v3_name, &package));
    }
    for (v3_name, schema) in &v3 {
        let Some(name) = names.get(v3_name) else {
            continue;
        };
        if !definitions.contains_key(name) {
            definitions.insert(name.clone(), from_v3(schema, names));
        }
    }
    names.get(&root).cloned()
}

/// `io.k8s.api.apps.v1` for `apps/v1`, `io.k8s.api.rbac.v1` for `rbac.authorization.k8s.io/v1`.
fn api_package(group: &str, version: &str) -> String {
    match group {
        "" => format!("io.k8s.api.core.{version}"),
        "apiextensions.k8s.io" => {
            format!("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}")
        }
        _ => {
            let short = group.split('.').next().unwrap_or(group);
            format!("io.k8s.api.{short}.{version}")
        }
    }
}

/// The v2 name of the v3 schema `kazan.<Message>`.
fn model_name(v3_name: &str, package: &str) -> String {
    let message = v3_name.strip_prefix("kazan.").unwrap_or(v3_name);
    if META_MESSAGES.contains(&message) {
        format!("io.k8s.apimachinery.pkg.apis.meta.v1.{message}")
    } else if CORE_MESSAGES_REACHED_FROM_OTHER_GROUPS.contains(&message) {
        format!("io.k8s.api.core.v1.{message}")
    } else {
        format!("{package}.{message}")
    }
}

/// A table schema in Swagger 2.0 form: plain `$ref`s to `#/definitions/` (kubectl's parser
/// reads neither `allOf` nor `components`), int-or-string as the real `IntOrString` definition.
fn from_v3(schema: &Value, names: &HashMap<String, String>) -> Value {
    let Value::Object(object) = schema else {
        return schema.clone();
    };
    if let Some(Value::Array(all_of)) = object.get("allOf")
        && let [single] = all_of.as_slice()
        && let Some(reference) = single.get("$ref").and_then(Value::as_str)
    {
        let v3_name = reference.trim_start_matches("#/components/schemas/");
        let name = names.get(v3_name).map(String::as_str).unwrap_or(v3_name);
        return json!({ "$ref": format!("#/definitions/{name}") });
    }
    if object.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return json!({ "type": "string", "format": "int-or-string" });
    }
    let mut out = Map::new();
    for (key, value) in object {
        let value = match key.as_str() {
            "items" | "additionalProperties" => from_v3(value, names),
            "properties" => match value {
                Value::Object(properties) => Value::Object(
                    properties
                        .iter()
                        .map(|(k, v)| (k.clone(), from_v3(v, names)))
                        .collect(),
                ),
                other => other.clone(),
            },
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    Value::Object(out)
}

/// `com.example.v1.Widget`: the group reversed, as apiextensions-apiserver's `gvkToModelName`.
fn crd_model_name(def: &ResourceDef) -> String {
    let group: Vec<&str> = def.group.split('.').rev().collect();
    format!("{}.{}.{}", group.join("."), def.version, def.kind)
}

/// A CRD's schema as the real server publishes it in v2 (`buildKubeNative` with `opts.V2`): made
/// v2-compatible, with `metadata`, `apiVersion` and `kind`; a schema preserving unknown fields at
/// its root is published as a bare object, since kubectl would call every field unknown.
fn crd_schema(schema: &Value) -> Value {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return json!({ "type": "object" });
    }
    let mut out = to_structural_v2(schema);
    if let Value::Object(object) = &mut out {
        let properties = object.entry("properties").or_insert_with(|| json!({}));
        if let Value::Object(properties) = properties {
            properties.insert(
                "metadata".into(),
                json!({ "$ref": format!("#/definitions/{OBJECT_META}") }),
            );
            properties.insert("apiVersion".into(), json!({ "type": "string" }));
            properties.insert("kind".into(), json!({ "type": "string" }));
        }
    }
    out
}

/// apiextensions-apiserver's `ToStructuralOpenAPIV2`: no junctors, nullable values untyped and
/// without items or properties, values preserving unknown fields without items or properties
/// (and untyped objects), untyped arrays without items, nullable fields not required.
fn to_structural_v2(schema: &Value) -> Value {
    let Value::Object(object) = schema else {
        return schema.clone();
    };
    let mut s = object.clone();
    for junctor in ["allOf", "oneOf", "anyOf", "not"] {
        s.remove(junctor);
    }
    let is_true = |s: &Map<String, Value>, key: &str| s.get(key) == Some(&Value::Bool(true));
    if is_true(&s, "nullable") {
        s.remove("type");
        s.remove("nullable");
        s.remove("items");
        s.remove("properties");
    }
    if is_true(&s, "x-kubernetes-preserve-unknown-fields") {
        s.remove("items");
        s.remove("properties");
    }
    let typed = |s: &Map<String, Value>, t: &str| s.get("type").and_then(Value::as_str) == Some(t);
    if !s.contains_key("items") && typed(&s, "array") {
        s.remove("type");
    }
    if is_true(&s, "x-kubernetes-preserve-unknown-fields") && typed(&s, "object") {
        s.remove("type");
    }
    let nullable_fields: Vec<String> = match s.get("properties") {
        Some(Value::Object(properties)) => properties
            .iter()
            .filter(|(_, v)| v.get("nullable") == Some(&Value::Bool(true)))
            .map(|(k, _)| k.clone())
            .collect(),
        _ => Vec::new(),
    };
    if let Some(Value::Array(required)) = s.get_mut("required") {
        required.retain(|r| !r.as_str().is_some_and(|r| nullable_fields.iter().any(|f| f == r)));
    }
    if s.get("additionalProperties")
        .and_then(|a| a.get("nullable"))
        .is_some_and(|n| n == &Value::Bool(true))
    {
        s.remove("required");
    }
    for key in ["items", "additionalProperties"] {
        if let Some(inner @ Value::Object(_)) = s.get(key) {
            let converted = to_structural_v2(inner);
            s.insert(key.into(), converted);
        }
    }
    if let Some(Value::Object(properties)) = s.get_mut("properties") {
        for value in properties.values_mut() {
            *value = to_structural_v2(value);
        }
    }
    Value::Object(s)
}

fn parameter(name: &str, place: &str, description: &str) -> Value {
    let mut p = json!({
        "name": name,
        "in": place,
        "description": description,
        "type": "string",
        "uniqueItems": true,
    });
    if place == "path" {
        p["required"] = json!(true);
    }
    p
}

/// `patchCoreV1NamespacedConfigMap`, `patchRbacAuthorizationV1ClusterRole`: the real ids.
fn operation_id(def: &ResourceDef) -> String {
    let group = if def.group.is_empty() {
        "core"
    } else {
        def.group.trim_end_matches(".k8s.io")
    };
    let capital = |s: &str| {
        let mut chars = s.chars();
        chars
            .next()
            .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
            .unwrap_or_default()
    };
    let group: String = group.split(['.', '-']).map(capital).collect();
    let scope = if def.namespaced { "Namespaced" } else { "" };
    format!("patch{group}{}{scope}{}", capital(&def.version), def.kind)
}

/// The item path's PATCH, tagged with the kind and taking `fieldValidation`, as kubectl's
/// `supportsQueryParam` looks for it.
fn item_operations(def: &ResourceDef, root: Option<&str>) -> Value {
    let mut shared = vec![parameter("name", "path", &format!("name of the {}", def.kind))];
    if def.namespaced {
        shared.push(parameter(
            "namespace",
            "path",
            "object name and auth scope, such as for teams and projects",
        ));
    }
    let answer = |description: &str| match root {
        Some(root) => json!({
            "description": description,
            "schema": { "$ref": format!("#/definitions/{root}") },
        }),
        None => json!({ "description": description }),
    };
    json!({
        "parameters": shared,
        "patch": {
            "consumes": [
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml",
            ],
            "description": format!("partially update the specified {}", def.kind),
            "operationId": operation_id(def),
            "parameters": [
                { "name": "body", "in": "body", "required": true, "schema": { "type": "object" } },
                parameter("dryRun", "query", "When present, modifications are not persisted."),
                parameter("fieldManager", "query", "The actor or entity making these changes."),
                parameter(
                    "fieldValidation",
                    "query",
                    "How the server treats unknown or duplicate fields: Ignore, Warn or Strict.",
                ),
                parameter("force", "query", "Force apply requests."),
            ],
            "produces": ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"],
            "responses": {
                "200": answer("OK"),
                "201": answer("Created"),
                "401": { "description": "Unauthorized" },
            },
            "schemes": ["https"],
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": { "group": def.group, "version": def.version, "kind": def.kind },
        },
    })
}
