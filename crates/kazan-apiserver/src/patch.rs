//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902, via `json-patch`), strategic
//! merge patch (merge patch, except that the well-known keyed lists of the built-in kinds merge by
//! their key, and `$patch`/`$setElementOrder`/`$retainKeys` directives are understood), and
//! server-side apply (approximated as a strategic merge of the applied configuration).

use serde_json::{Map, Value};

/// The patch media types the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchKind {
    /// The patch kind of a `Content-Type` (parameters ignored), if supported.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(PatchKind::Apply),
            _ => None,
        }
    }
}

/// Why a patch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The body is not a valid patch document (400).
    #[error("{0}")]
    Decode(String),
    /// The patch is well formed but cannot be applied to the object (422).
    #[error("{0}")]
    Apply(String),
}

/// Parses the patch body: JSON, or YAML for apply patches.
pub fn parse_body(kind: PatchKind, body: &[u8]) -> Result<Value, PatchError> {
    match kind {
        PatchKind::Apply => {
            let text = std::str::from_utf8(body)
                .map_err(|e| PatchError::Decode(format!("body is not UTF-8: {e}")))?;
            if let Ok(v) = serde_json::from_str::<Value>(text) {
                return Ok(v);
            }
            serde_saphyr::from_str::<Value>(text)
                .map_err(|e| PatchError::Decode(format!("error decoding YAML: {e}")))
        }
        _ => {
            serde_json::from_slice(body).map_err(|e| PatchError::Decode(format!("error decoding patch: {e}")))
        }
    }
}

/// Applies `patch` (already parsed) of `kind` to `target`, returning the patched object.
pub fn apply(kind: PatchKind, target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let mut doc = target.clone();
    match kind {
        PatchKind::Merge => {
            if !patch.is_object() {
                return Err(PatchError::Decode("a merge patch must be a JSON object".into()));
            }
            json_patch::merge(&mut doc, patch);
        }
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| PatchError::Decode(format!("error decoding JSON patch: {e}")))?;
            // `doc` is a copy, dropped on failure: no undo is needed. (`json_patch::patch` undoes
            // the applied operations on failure, and panics when an undo fails, e.g. after a move
            // to the parent of its source.)
            json_patch::patch_unsafe(&mut doc, &ops).map_err(|e| PatchError::Apply(e.to_string()))?;
        }
        PatchKind::Strategic | PatchKind::Apply => {
            let Value::Object(patch_map) = patch else {
                return Err(PatchError::Decode(
                    "a strategic merge patch must be a JSON object".into(),
                ));
            };
            doc = strategic_merge(doc, patch_map, "");
        }
    }
    Ok(doc)
}

/// The merge key of the well-known keyed lists (`patchMergeKey` in the built-in types), by the
/// list's field name and its parent's path.
pub(crate) fn merge_key(path: &str, field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "hostAliases"
        | "readinessGates"
        | "resourceClaims"
        | "topologySpreadConstraints" => match field {
            "hostAliases" => Some("ip"),
            "readinessGates" => Some("conditionType"),
            "topologySpreadConstraints" => Some("topologyKey"),
            _ => Some("name"),
        },
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ports" if path.ends_with("containers") || path.ends_with("Containers") => Some("containerPort"),
        "ports" => Some("port"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        _ => None,
    }
}

/// Strategic merge of `patch` into `target`. `path` is the dotted path of `target` (used to pick
/// merge keys, e.g. container ports vs service ports).
fn strategic_merge(target: Value, patch: &Map<String, Value>, path: &str) -> Value {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = patch.clone();
        replaced.remove("$patch");
        return Value::Object(strip_directives(replaced));
    }
    let mut out = match target {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if let Some(Value::Array(keys)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
        out.retain(|k, _| keep.contains(&k.as_str()) || patch.contains_key(k));
    }
    // The primitive deletions apply after the merge of the list they name (as `mergeMap` in
    // apimachinery's strategicpatch/patch.go handles `$deleteFromPrimitiveList` last).
    let mut primitive_deletions = Vec::new();
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            primitive_deletions.push((field, value));
            continue;
        }
        if key.starts_with('$') {
            // `$patch`, `$retainKeys` (handled above) and `$setElementOrder` (order is kept).
            continue;
        }
        let child_path = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match value {
            Value::Null => {
                out.remove(key);
            }
            Value::Object(child) => {
                let existing = out.remove(key).unwrap_or(Value::Null);
                if child.get("$patch").and_then(Value::as_str) == Some("delete") {
                    continue;
                }
                out.insert(key.clone(), strategic_merge(existing, child, &child_path));
            }
            Value::Array(items) if path == "metadata" && key == "finalizers" => {
                // `patchStrategy:"merge"` on a list of strings: a union, existing items first.
                let mut merged = match out.remove(key) {
                    Some(Value::Array(existing)) => existing,
                    _ => Vec::new(),
                };
                for item in items {
                    if !merged.contains(item) {
                        merged.push(item.clone());
                    }
                }
                out.insert(key.clone(), Value::Array(merged));
            }
            Value::Array(items) => {
                let merged = match (merge_key(path, key), out.remove(key)) {
                    (Some(merge_key), Some(Value::Array(existing))) => {
                        merge_keyed_list(existing, items, merge_key, &child_path)
                    }
                    _ => Value::Array(items.iter().map(|v| strip_value(v.clone())).collect()),
                };
                out.insert(key.clone(), merged);
            }
            other => {
                out.insert(key.clone(), other.clone());
            }
        }
    }
    for (field, value) in primitive_deletions {
        if let (Some(Value::Array(list)), Value::Array(remove)) = (out.get_mut(field), value) {
            list.retain(|v| !remove.contains(v));
        }
    }
    Value::Object(out)
}

/// Merges a keyed list: patch elements update the element with the same key (or are appended);
/// `{"$patch": "delete", key: ...}` removes one; `[{"$patch": "replace"}]` replaces the list.
fn merge_keyed_list(existing: Vec<Value>, patch: &[Value], key: &str, path: &str) -> Value {
    if patch
        .iter()
        .any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Value::Array(
            patch
                .iter()
                .filter(|p| p.get("$patch").is_none())
                .map(|v| strip_value(v.clone()))
                .collect(),
        );
    }
    let mut list = existing;
    for item in patch {
        let Value::Object(item_map) = item else {
            list.push(item.clone());
            continue;
        };
        let item_key = item_map.get(key);
        let position = item_key.and_then(|k| list.iter().position(|e| e.get(key) == Some(k)));
        let delete = item_map.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                list.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                let current = std::mem::take(&mut list[i]);
                list[i] = strategic_merge(current, item_map, path);
            }
            (None, false) => list.push(strip_value(item.clone())),
        }
    }
    Value::Array(list)
}

fn strip_directives(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k, strip_value(v)))
        .collect()
}

/// Removes `$`-directives from a value that is inserted as a whole.
fn strip_value(value: Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(strip_directives(m)),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_value).collect()),
        other => other,
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_containers_by_name() -> Result<(), PatchError> {
        let target = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ]}});
        let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
                           {"name": "b", "$patch": "delete"}]}});
        let out = apply(PatchKind::Strategic, &target, &patch)?;
        assert_eq!(
            out,
            json!({"spec": {"containers": [
                {"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}
            ]}})
        );
        Ok(())
    }

    #[test]
    fn merge_and_json_patches() -> Result<(), PatchError> {
        let target = json!({"data": {"a": "1", "b": "2"}});
        let merged = apply(PatchKind::Merge, &target, &json!({"data": {"a": null, "c": "3"}}))?;
        assert_eq!(merged, json!({"data": {"b": "2", "c": "3"}}));
        let patched = apply(
            PatchKind::Json,
            &target,
            &json!([{"op": "replace", "path": "/data/a", "value": "9"}]),
        )?;
        assert_eq!(patched, json!({"data": {"a": "9", "b": "2"}}));
        assert!(matches!(
            apply(
                PatchKind::Json,
                &target,
                &json!([{"op": "test", "path": "/data/a", "value": "x"}])
            ),
            Err(PatchError::Apply(_))
        ));
        Ok(())
    }

    #[test]
    fn a_failing_json_patch_after_a_move_to_the_parent_is_an_apply_error() -> Result<(), PatchError> {
        // Found by the patch fuzz target: undoing the move (into its own child) panicked.
        let target = json!({"a": [0, [1]]});
        let patch = json!([
            {"op": "move", "from": "/a/1", "path": "/a"},
            {"op": "test", "path": "/nope", "value": 1}
        ]);
        assert!(matches!(
            apply(PatchKind::Json, &target, &patch),
            Err(PatchError::Apply(_))
        ));
        let moved = apply(
            PatchKind::Json,
            &target,
            &json!([{"op": "move", "from": "/a/1", "path": "/a"}]),
        )?;
        assert_eq!(moved, json!({"a": [1]}));
        Ok(())
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchKind::Merge)
        );
        assert_eq!(PatchKind::from_content_type("application/json"), None);
    }
}
