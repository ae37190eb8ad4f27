//! CustomResourceDefinitions: creating one registers its kinds, deleting one removes them.

use super::rules::{now_rfc3339, set_path};
use super::state::{Inner, ResourceKey, Store, key_of};
use crate::error::StoreError;
use crate::registry::{PrinterColumn, ResourceDef};
use crate::status::{FieldCause, Status};
use serde_json::{Value, json};
use std::sync::Arc;

pub(super) const CRD_GROUP: &str = "apiextensions.k8s.io";

pub(super) const CRD_PLURAL: &str = "customresourcedefinitions";

impl Store {
    /// Registers the resources a CRD defines.
    pub(super) fn register_crd(&self, inner: &mut Inner, defs: &[ResourceDef]) {
        for def in defs {
            self.registry.register(def.clone());
            let key = key_of(def);
            Self::state(inner, &key);
        }
    }

    /// Registers a resource given through the Rust API.
    pub(crate) fn register(&self, def: ResourceDef) -> Arc<ResourceDef> {
        let def = self.registry.register(def);
        let mut inner = self.lock();
        Self::state(&mut inner, &key_of(&def));
        def
    }
}

/// The storage key of the custom resources a CRD object defines.
pub(super) fn crd_storage_key(crd: &Value) -> Option<ResourceKey> {
    let group = crd.pointer("/spec/group")?.as_str()?;
    let plural = crd.pointer("/spec/names/plural")?.as_str()?;
    Some((group.to_string(), plural.to_string()))
}

/// The resource definitions (one per served version) of a CRD object.
pub(crate) fn crd_resource_defs(crd: &Value) -> Result<Vec<ResourceDef>, StoreError> {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let invalid = |field: &str, detail: &str| -> StoreError {
        Status::invalid(
            CRD_GROUP,
            "CustomResourceDefinition",
            name,
            &[FieldCause::required(field, detail)],
        )
        .into()
    };
    let str_at = |p: &str| crd.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty());
    let group = str_at("/spec/group").ok_or_else(|| invalid("spec.group", "must be set"))?;
    let kind = str_at("/spec/names/kind").ok_or_else(|| invalid("spec.names.kind", "must be set"))?;
    let plural = str_at("/spec/names/plural").ok_or_else(|| invalid("spec.names.plural", "must be set"))?;
    let singular = str_at("/spec/names/singular")
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    let namespaced = str_at("/spec/scope") != Some("Cluster");
    let strings = |p: &str| -> Vec<String> {
        crd.pointer(p)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let short_names = strings("/spec/names/shortNames");
    let categories = strings("/spec/names/categories");
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        return Err(invalid(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    }
    let mut defs = Vec::new();
    for version in versions {
        if version.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let Some(version_name) = version.get("name").and_then(Value::as_str) else {
            continue;
        };
        let mut def = ResourceDef::new(group, version_name, kind, plural, namespaced);
        def.singular = singular.clone();
        def.short_names = short_names.clone();
        def.categories = categories.clone();
        def.schema = version.pointer("/schema/openAPIV3Schema").cloned();
        if let Some(subresources) = version.get("subresources").and_then(Value::as_object) {
            def.subresources = ["status", "scale"]
                .iter()
                .filter(|s| subresources.contains_key(**s))
                .map(|s| s.to_string())
                .collect();
        }
        for column in version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let get = |k: &str| {
                column
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            def.printer_columns.push(PrinterColumn {
                name: get("name"),
                column_type: if get("type").is_empty() {
                    "string".into()
                } else {
                    get("type")
                },
                json_path: get("jsonPath"),
                priority: column.get("priority").and_then(Value::as_i64).unwrap_or(0) as i32,
                description: get("description"),
            });
        }
        defs.push(def);
    }
    Ok(defs)
}

/// A CRD is immediately `Established` with its names accepted.
pub(super) fn prepare_crd_status(crd: &mut Value) {
    let names = crd.pointer("/spec/names").cloned().unwrap_or_else(|| json!({}));
    let now = now_rfc3339();
    let condition = |t: &str, reason: &str, message: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message});
    set_path(crd, &["status", "acceptedNames"], names);
    set_path(
        crd,
        &["status", "conditions"],
        json!([
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition(
                "Established",
                "InitialNamesAccepted",
                "the initial names have been accepted"
            ),
        ]),
    );
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    set_path(crd, &["status", "storedVersions"], Value::Array(stored));
}
