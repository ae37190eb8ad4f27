//! `fieldValidation`: what the real server does with the unknown fields and wrong types of a
//! write's body, per kind of write (apiserver `pkg/endpoints/handlers/create.go`, `update.go`,
//! `patch.go`; apiextensions-apiserver's pruning for custom resources).
//!
//! Unknown fields are those the kind's Go type does not have (built-in kinds, from the generated
//! tables) or that pruning removes (custom resources, against their CRD's structural schema). They
//! are dropped with a `Warning` each (`Warn`, the default), silently (`Ignore`), or refused
//! (`Strict`): a create or replace with a 400, a JSON, merge or strategic merge patch with a 422
//! on the field `patch`. A server-side apply of a field its type does not declare fails whatever
//! the directive, as the real field manager cannot type the applied object.

use serde_json::Value;

use super::reply::Ctx;
use crate::patch::PatchKind;
use crate::registry::ResourceDef;
use crate::status::{FieldCause, Status};

/// `fieldValidation`, `Warn` when absent (`fieldValidation` in handlers/rest.go).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Directive {
    Ignore,
    Warn,
    Strict,
}

fn directive(ctx: &Ctx) -> Directive {
    match ctx.query.non_empty("fieldValidation") {
        Some("Ignore") => Directive::Ignore,
        Some("Strict") => Directive::Strict,
        _ => Directive::Warn,
    }
}

/// The unknown fields of `object` (a built-in kind's are removed from it; a custom resource's
/// are left to the store's pruning), or the decoder's message for a value of the wrong type.
fn unknown_fields(def: &ResourceDef, object: &mut Value) -> Result<Vec<String>, String> {
    match crate::protobuf::check_fields(def, object) {
        Some(result) => result,
        None => Ok(def
            .schema
            .as_ref()
            .map(|schema| crate::store::custom_resource_unknown_fields(schema, object))
            .unwrap_or_default()),
    }
}

fn messages(unknown: &[String]) -> Vec<String> {
    unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect()
}

/// A create or replace body (create.go, update.go: `transformDecodeError`): the warnings to send,
/// or the 400 for a wrong type or, with `Strict`, for unknown fields.
pub(super) fn check_body(
    ctx: &Ctx,
    def: &ResourceDef,
    object: &mut Value,
) -> Result<Vec<String>, Box<Status>> {
    let cannot = |why: &str| -> Box<Status> {
        Box::new(Status::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {why}",
            kind = def.kind,
            version = def.version
        )))
    };
    let unknown = unknown_fields(def, object).map_err(|type_error| cannot(&type_error))?;
    let messages = messages(&unknown);
    match directive(ctx) {
        Directive::Ignore => Ok(Vec::new()),
        Directive::Strict if !messages.is_empty() => {
            Err(cannot(&format!("strict decoding error: {}", messages.join(", "))))
        }
        _ => Ok(messages),
    }
}

/// The object a JSON, merge or strategic merge patch produced, before it is stored (patch.go:
/// `jsonPatcher.applyPatchToCurrentObject`, `applyPatchToObject`): the warnings to send, or the
/// 422 `Invalid value` on `patch` for a wrong type or, with `Strict`, for unknown fields. Its
/// value is the patched object's JSON for JSON and merge patches, Go's `%+v` of the patch for
/// strategic ones.
pub(super) fn check_patched(
    ctx: &Ctx,
    def: &ResourceDef,
    kind: PatchKind,
    patch: &Value,
    patched: &Value,
) -> Result<Vec<String>, Box<Status>> {
    let refuse = |why: &str| -> Box<Status> {
        let value = match kind {
            PatchKind::Strategic => go_format(patch),
            _ => patched.to_string(),
        };
        let cause = FieldCause {
            field: "patch".into(),
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {}: {why}", Value::String(value)),
        };
        Box::new(Status::invalid("", "", "", &[cause]))
    };
    let unknown = unknown_fields(def, &mut patched.clone()).map_err(|type_error| refuse(&type_error))?;
    let messages = messages(&unknown);
    match directive(ctx) {
        Directive::Ignore => Ok(Vec::new()),
        Directive::Strict if !messages.is_empty() => {
            Err(refuse(&format!("strict decoding error: {}", messages.join(", "))))
        }
        _ => Ok(messages),
    }
}

/// A server-side apply of a built-in kind (apimachinery `managedfields/internal/
/// structuredmerge.go`, `Apply`): a field the type does not declare fails to type the applied
/// object, a 500 with no reason (the error is not a Status), whatever `fieldValidation` says.
pub(super) fn check_applied(def: &ResourceDef, applied: &Value) -> Result<(), Box<Status>> {
    let Some(Ok(unknown)) = crate::protobuf::check_fields(def, &mut applied.clone()) else {
        return Ok(());
    };
    if unknown.is_empty() {
        return Ok(());
    }
    let errors: Vec<String> = unknown
        .iter()
        .map(|path| format!("{}: field not declared in schema", typed_path(applied, path)))
        .collect();
    // structured-merge-diff's `ValidationErrors.Error`: one error alone, or a list.
    let errors = match errors.as_slice() {
        [one] => one.clone(),
        _ => format!("errors:\n  {}", errors.join("\n  ")),
    };
    let text = |pointer: &str| {
        applied
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let group_version = if def.group.is_empty() {
        format!("/{}", def.version)
    } else {
        format!("{}/{}", def.group, def.version)
    };
    Err(Box::new(Status::failure(
        500,
        "",
        format!(
            "failed to create typed patch object ({}/{}; {group_version}, Kind={}): {errors}",
            text("/metadata/namespace"),
            text("/metadata/name"),
            def.kind
        ),
    )))
}

/// structured-merge-diff's path of a field: `.spec.containers[name="main"].foo` for an item of
/// a keyed list, `[0]` for an item of an atomic one.
fn typed_path(object: &Value, path: &str) -> String {
    let mut out = String::new();
    let mut current = Some(object);
    let mut parent = String::new();
    for segment in path.split('.') {
        let (field, indexes) = match segment.split_once('[') {
            Some((field, rest)) => (field, Some(rest)),
            None => (segment, None),
        };
        out.push('.');
        out.push_str(field);
        current = current.and_then(|v| v.get(field));
        let Some(indexes) = indexes else {
            parent = if parent.is_empty() {
                field.to_string()
            } else {
                format!("{parent}.{field}")
            };
            continue;
        };
        for index in indexes.split('[').map(|i| i.trim_end_matches(']')) {
            let item = index
                .parse::<usize>()
                .ok()
                .and_then(|i| current.and_then(|list| list.get(i)));
            let key = crate::patch::merge_key(&parent, field).and_then(|key| Some((key, item?.get(key)?)));
            match key {
                Some((key, value)) => out.push_str(&format!("[{key}={value}]")),
                None => out.push_str(&format!("[{index}]")),
            }
            current = item;
        }
        parent = field.to_string();
    }
    out
}

/// Go's `%+v` of a decoded JSON value (`map[a:1 b:[x y]]`, keys sorted), as the real server
/// prints a strategic merge patch in its errors.
fn go_format(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(go_format).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let entries: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", go_format(v)))
                .collect();
            format!("map[{}]", entries.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_format_prints_maps_with_sorted_keys_and_lists_with_spaces() {
        let patch = json!({"spec": {"replicas": 2, "foo": [1, "a", null, true]}, "a": 1.5});
        assert_eq!(
            go_format(&patch),
            "map[a:1.5 spec:map[foo:[1 a <nil> true] replicas:2]]"
        );
    }

    #[test]
    fn typed_paths_name_keyed_list_items_by_their_key() {
        let applied = json!({"spec": {"containers": [{"name": "main", "bogus": 1}],
                                      "tolerations": [{"key": "k", "bogus": 1}]}});
        assert_eq!(
            typed_path(&applied, "spec.containers[0].bogus"),
            ".spec.containers[name=\"main\"].bogus"
        );
        assert_eq!(
            typed_path(&applied, "spec.tolerations[0].bogus"),
            ".spec.tolerations[0].bogus"
        );
        assert_eq!(typed_path(&applied, "bogus"), ".bogus");
    }
}
