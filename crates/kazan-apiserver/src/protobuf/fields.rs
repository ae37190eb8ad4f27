//! The second use of the generated tables: the JSON fields and types of the built-in kinds, for
//! the field validation of JSON and YAML bodies (`fieldValidation`). A body is checked the way
//! the real server's decoder reads it into the Go type: a field the type does not have is unknown
//! (dropped, or an error with `Strict`), a value of the wrong JSON type fails the decoding.

use serde_json::Value;

use super::wire::{Field, Kind, Message, Scalar};

/// What checking a body found.
pub(crate) struct Checked {
    /// The unknown fields, as paths (`spec.containers[0].foo`), now removed from the body.
    pub unknown: Vec<String>,
}

/// A value of the wrong JSON type: the Go decoder's message.
#[derive(Debug)]
pub(crate) struct TypeError(pub String);

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn go_type(scalar: Scalar) -> &'static str {
    match scalar {
        Scalar::Str | Scalar::Time | Scalar::MicroTime => "string",
        Scalar::Bytes => "[]uint8",
        Scalar::Bool => "bool",
        Scalar::Int32 => "int32",
        Scalar::Int64 => "int64",
        Scalar::Quantity => "resource.Quantity",
        Scalar::IntOrString => "intstr.IntOrString",
        Scalar::RawJson => "runtime.RawExtension",
    }
}

fn scalar_ok(scalar: Scalar, value: &Value) -> bool {
    match (scalar, value) {
        (_, Value::Null) | (Scalar::RawJson, _) => true,
        (Scalar::Str | Scalar::Bytes | Scalar::Time | Scalar::MicroTime, Value::String(_)) => true,
        (Scalar::Bool, Value::Bool(_)) => true,
        (Scalar::Int32 | Scalar::Int64, Value::Number(n)) => n.is_i64() || n.is_u64(),
        (Scalar::Quantity | Scalar::IntOrString, Value::String(_) | Value::Number(_)) => true,
        _ => false,
    }
}

/// Checks and prunes `object` of the kind (`root` names it in messages).
pub(crate) fn check(root: &Message, kind: &str, object: &mut Value) -> Result<Checked, TypeError> {
    let mut unknown = Vec::new();
    if let Value::Object(map) = object {
        // TypeMeta is not in the protobuf messages.
        let type_meta: Vec<(String, Value)> = ["apiVersion", "kind"]
            .iter()
            .filter_map(|k| map.remove(*k).map(|v| (k.to_string(), v)))
            .collect();
        let result = check_message(root, object, "", kind, &mut unknown);
        if let Value::Object(map) = object {
            map.extend(type_meta);
        }
        result?;
    }
    Ok(Checked { unknown })
}

fn find<'a>(message: &'a Message, name: &str) -> Option<&'a Field> {
    message.fields.iter().find_map(|f| match &f.kind {
        _ if f.json == name => Some(f),
        Kind::Inline(inner) => find(inner, name),
        _ => None,
    })
}

fn check_message(
    message: &Message,
    value: &mut Value,
    path: &str,
    go_path: &str,
    unknown: &mut Vec<String>,
) -> Result<(), TypeError> {
    let Value::Object(map) = value else {
        if value.is_null() {
            return Ok(());
        }
        return Err(type_error(value, go_path, message.name));
    };
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        let child_path = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let child_go = format!("{go_path}.{key}");
        let Some(field) = find(message, &key) else {
            unknown.push(child_path);
            map.remove(&key);
            continue;
        };
        let Some(child) = map.get_mut(&key) else {
            continue;
        };
        if field.repeated {
            match child {
                Value::Null => {}
                Value::Array(items) => {
                    for (i, item) in items.iter_mut().enumerate() {
                        check_kind(
                            &field.kind,
                            item,
                            &format!("{child_path}[{i}]"),
                            &child_go,
                            unknown,
                        )?;
                    }
                }
                other => return Err(type_error(other, &child_go, "[]")),
            }
        } else {
            check_kind(&field.kind, child, &child_path, &child_go, unknown)?;
        }
    }
    Ok(())
}

fn check_kind(
    kind: &Kind,
    value: &mut Value,
    path: &str,
    go_path: &str,
    unknown: &mut Vec<String>,
) -> Result<(), TypeError> {
    match kind {
        Kind::Scalar(s) if scalar_ok(*s, value) => Ok(()),
        Kind::Scalar(s) => Err(type_error(value, go_path, go_type(*s))),
        Kind::Message(m) | Kind::Inline(m) => check_message(m, value, path, go_path, unknown),
        Kind::ScalarMap(s) => match value {
            Value::Null => Ok(()),
            Value::Object(map) => {
                for v in map.values() {
                    if !scalar_ok(*s, v) {
                        return Err(type_error(v, go_path, go_type(*s)));
                    }
                }
                Ok(())
            }
            other => Err(type_error(other, go_path, &format!("map[string]{}", go_type(*s)))),
        },
    }
}

fn type_error(value: &Value, go_path: &str, go_type: &str) -> TypeError {
    TypeError(format!(
        "json: cannot unmarshal {} into Go struct field {} of type {go_type}",
        json_type(value),
        go_path.trim_start_matches('.')
    ))
}

/// OpenAPI v3 schemas of a kind and the messages it reaches, named `kazan.<message>` (a message
/// already in `schemas` is not written again): field names and types, no descriptions.
pub(crate) fn openapi_schemas(
    message: &'static Message,
    schemas: &mut serde_json::Map<String, Value>,
) -> String {
    let name = format!("kazan.{}", message.name);
    if schemas.contains_key(&name) {
        return name;
    }
    // Reserved first, so that a message reaching itself ends.
    schemas.insert(name.clone(), Value::Null);
    let mut properties = serde_json::Map::new();
    add_properties(message, &mut properties, schemas);
    schemas.insert(
        name.clone(),
        serde_json::json!({"type": "object", "properties": properties}),
    );
    name
}

fn add_properties(
    message: &'static Message,
    properties: &mut serde_json::Map<String, Value>,
    schemas: &mut serde_json::Map<String, Value>,
) {
    for field in message.fields {
        let schema = match &field.kind {
            Kind::Inline(inner) => {
                add_properties(inner, properties, schemas);
                continue;
            }
            Kind::Message(inner) => {
                let name = openapi_schemas(inner, schemas);
                serde_json::json!({"allOf": [{"$ref": format!("#/components/schemas/{name}")}]})
            }
            Kind::Scalar(s) => scalar_schema(*s),
            Kind::ScalarMap(s) => {
                serde_json::json!({"type": "object", "additionalProperties": scalar_schema(*s)})
            }
        };
        let schema = if field.repeated {
            let mut list = serde_json::json!({"type": "array", "items": schema});
            // The patch strategies kubectl reads from the schema for its strategic merge patches
            // (`x-kubernetes-patch-*`, as the real documents carry them).
            let parent = if message.name.ends_with("Container") {
                "spec.containers"
            } else {
                ""
            };
            if let Some(key) = crate::patch::merge_key(parent, field.json) {
                list["x-kubernetes-patch-merge-key"] = serde_json::json!(key);
                list["x-kubernetes-patch-strategy"] = serde_json::json!("merge");
                list["x-kubernetes-list-type"] = serde_json::json!("map");
                list["x-kubernetes-list-map-keys"] = serde_json::json!([key]);
            } else if message.name == "ObjectMeta" && field.json == "finalizers" {
                list["x-kubernetes-patch-strategy"] = serde_json::json!("merge");
                list["x-kubernetes-list-type"] = serde_json::json!("set");
            }
            list
        } else {
            schema
        };
        properties.insert(field.json.to_string(), schema);
    }
}

fn scalar_schema(scalar: Scalar) -> Value {
    use serde_json::json;
    match scalar {
        Scalar::Str => json!({"type": "string"}),
        Scalar::Bytes => json!({"type": "string", "format": "byte"}),
        Scalar::Bool => json!({"type": "boolean"}),
        Scalar::Int32 => json!({"type": "integer", "format": "int32"}),
        Scalar::Int64 => json!({"type": "integer", "format": "int64"}),
        Scalar::Time | Scalar::MicroTime => json!({"type": "string", "format": "date-time"}),
        Scalar::Quantity | Scalar::IntOrString => json!({"x-kubernetes-int-or-string": true}),
        Scalar::RawJson => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    }
}
