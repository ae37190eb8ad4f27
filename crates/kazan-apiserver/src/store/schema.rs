//! Custom resources against their CRD's structural schema, as apiextensions-apiserver does on
//! every write: unknown fields pruned (`pkg/apiserver/schema/pruning`), defaults applied
//! (`pkg/apiserver/schema/defaulting`), then validated (`pkg/apiserver/validation`, kube-openapi's
//! validate: types, required, enum, minimum/maximum, pattern, min/maxLength, min/maxItems,
//! nullable) with its messages. `x-kubernetes-preserve-unknown-fields` keeps unknown fields,
//! `x-kubernetes-int-or-string` takes both. CEL rules and formats are not checked.

use serde_json::{Map, Value};

use crate::status::FieldCause;

/// Prunes, defaults and validates a custom resource; the causes of a 422 when it is invalid.
pub(super) fn apply_schema(schema: &Value, object: &mut Value) -> Vec<FieldCause> {
    prune_default_validate(schema, object, &mut Vec::new())
}

/// The fields pruning would remove from `object`, as paths (`spec.foo`, `spec.items[0].bar`),
/// sorted: what `PruneWithOptions` with `TrackUnknownFieldPaths` (`pkg/apiserver/schema/pruning`)
/// reports, and the handlers turn into `unknown field` warnings or a `Strict` refusal.
pub(crate) fn unknown_fields(schema: &Value, object: &Value) -> Vec<String> {
    let mut pruned = Vec::new();
    prune_default_validate(schema, &mut object.clone(), &mut pruned);
    pruned.sort();
    pruned
}

fn prune_default_validate(schema: &Value, object: &mut Value, pruned: &mut Vec<String>) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let Some(map) = object.as_object_mut() else {
        return causes;
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    let preserve = preserves(schema);
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match properties.and_then(|p| p.get(&key)) {
            Some(child_schema) => {
                if let Some(child) = map.get_mut(&key) {
                    walk(child_schema, child, &key, &mut causes, pruned);
                }
            }
            None if !preserve => {
                map.remove(&key);
                pruned.push(key);
            }
            None => {}
        }
    }
    defaults_and_required(schema, map, "", &mut causes);
    causes
}

fn preserves(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Go's `%v` of a value in a field error (strings quoted).
fn repr(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "\"null\"".to_string(),
        other => other.to_string(),
    }
}

fn invalid(path: &str, value: &Value, detail: String) -> FieldCause {
    FieldCause {
        field: path.to_string(),
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {}: {detail}", repr(value)),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(expected: &str, value: &Value) -> bool {
    match (expected, value) {
        ("integer", Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        ("number", Value::Number(_)) => true,
        ("string", Value::String(_)) => true,
        ("boolean", Value::Bool(_)) => true,
        ("object", Value::Object(_)) => true,
        ("array", Value::Array(_)) => true,
        _ => false,
    }
}

fn walk(
    schema: &Value,
    value: &mut Value,
    path: &str,
    causes: &mut Vec<FieldCause>,
    pruned: &mut Vec<String>,
) {
    if value.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true)
            && let Some(expected) = schema.get("type").and_then(Value::as_str)
        {
            causes.push(invalid(
                path,
                value,
                format!("{path} in body must be of type {expected}: \"null\""),
            ));
        }
        return;
    }
    let int_or_string = schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    if int_or_string {
        if !matches!(value, Value::String(_)) && !type_ok("integer", value) {
            causes.push(invalid(
                path,
                value,
                format!(
                    "{path} in body must be of type integer,string: {:?}",
                    type_name(value)
                ),
            ));
        }
    } else if let Some(expected) = schema.get("type").and_then(Value::as_str)
        && !type_ok(expected, value)
    {
        causes.push(invalid(
            path,
            value,
            format!(
                "{path} in body must be of type {expected}: {:?}",
                type_name(value)
            ),
        ));
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        let supported: Vec<String> = options.iter().map(repr).collect();
        causes.push(FieldCause {
            field: path.to_string(),
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {}: supported values: {}",
                repr(value),
                supported.join(", ")
            ),
        });
    }
    match value {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or_default();
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                let exclusive = schema.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
                if x < min || (exclusive && x == min) {
                    let op = if exclusive {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    causes.push(invalid(
                        path,
                        &value.clone(),
                        format!("{path} in body should be {op} {}", schema["minimum"]),
                    ));
                }
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                let exclusive = schema.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
                if x > max || (exclusive && x == max) {
                    let op = if exclusive {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    causes.push(invalid(
                        path,
                        &value.clone(),
                        format!("{path} in body should be {op} {}", schema["maximum"]),
                    ));
                }
            }
        }
        Value::String(s) => {
            let length = s.chars().count() as u64;
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && length > max
            {
                causes.push(FieldCause {
                    field: path.to_string(),
                    reason: "FieldValueTooLong",
                    message: format!("Too long: may not be more than {max} bytes"),
                });
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && length < min
            {
                causes.push(invalid(
                    path,
                    &Value::String(s.clone()),
                    format!("{path} in body should be at least {min} chars long"),
                ));
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
                && let Ok(re) = regex::Regex::new(pattern)
                && !re.is_match(s)
            {
                causes.push(invalid(
                    path,
                    &Value::String(s.clone()),
                    format!("{path} in body should match '{pattern}'"),
                ));
            }
        }
        Value::Array(items) => {
            let count = items.len() as u64;
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && count > max
            {
                causes.push(FieldCause {
                    field: path.to_string(),
                    reason: "FieldValueTooMany",
                    message: format!("Too many: {count}: must have at most {max} items"),
                });
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && count < min
            {
                causes.push(invalid(
                    path,
                    &Value::Array(items.clone()),
                    format!("{path} in body should have at least {min} items"),
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), causes, pruned);
                }
            }
        }
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child_schema = properties.and_then(|p| p.get(&key)).or(additional);
                match child_schema {
                    Some(child_schema) => {
                        if let Some(child) = map.get_mut(&key) {
                            walk(child_schema, child, &join(path, &key), causes, pruned);
                        }
                    }
                    None if !preserves(schema) && properties.is_some_or_typed(schema) => {
                        map.remove(&key);
                        pruned.push(join(path, &key));
                    }
                    None => {}
                }
            }
            defaults_and_required(schema, map, path, causes);
        }
        _ => {}
    }
}

/// Whether an object schema prunes: it declares properties, or is typed `object` without
/// `additionalProperties` (then every field is unknown).
trait PrunesUnknown {
    fn is_some_or_typed(&self, schema: &Value) -> bool;
}

impl PrunesUnknown for Option<&Map<String, Value>> {
    fn is_some_or_typed(&self, schema: &Value) -> bool {
        self.is_some() || schema.get("type").and_then(Value::as_str) == Some("object")
    }
}

fn defaults_and_required(
    schema: &Value,
    map: &mut Map<String, Value>,
    path: &str,
    causes: &mut Vec<FieldCause>,
) {
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (key, child) in properties {
            if !map.contains_key(key)
                && let Some(default) = child.get("default")
            {
                map.insert(key.clone(), default.clone());
            }
        }
    }
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(key) = required.as_str()
            && !map.contains_key(key)
        {
            causes.push(FieldCause {
                field: join(path, key),
                reason: "FieldValueRequired",
                message: "Required value".to_string(),
            });
        }
    }
}
