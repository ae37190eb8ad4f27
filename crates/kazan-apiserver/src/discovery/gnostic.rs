//! A Swagger 2.0 document (JSON) written as the protobuf message `openapi.v2.Document` of
//! `github.com/google/gnostic-models/openapiv2/OpenAPIv2.proto`, which is the only form of
//! `/openapi/v2` that client-go reads (`discovery.OpenAPISchema` asks for
//! `application/com.github.proto-openapi.spec.v2@v1.0+protobuf` and unmarshals the bytes).
//!
//! The real server makes it the same way: kube-openapi's `handler.ToProtoBinary` parses the JSON
//! with gnostic's `ParseDocument` and marshals the result. Only the parts of the document this
//! server writes are mapped (info, paths with their operations, parameters and responses,
//! definitions with every schema keyword); vendor extensions become `NamedAny` values whose `yaml`
//! is the JSON text of the value, as gnostic keeps them (JSON is YAML).

use serde_json::{Map, Value};

/// The protobuf bytes of `doc`, a Swagger 2.0 document.
pub(super) fn document(doc: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(doc) = doc.as_object() else {
        return out;
    };
    string(&mut out, 1, str_of(doc, "swagger"));
    if let Some(Value::Object(info)) = doc.get("info") {
        let mut b = Vec::new();
        string(&mut b, 1, str_of(info, "title"));
        string(&mut b, 2, str_of(info, "version"));
        vendor_extensions(&mut b, 7, info);
        message(&mut out, 2, &b);
    }
    strings(&mut out, 6, doc.get("consumes"));
    strings(&mut out, 7, doc.get("produces"));
    if let Some(Value::Object(paths)) = doc.get("paths") {
        let mut b = Vec::new();
        for (name, item) in paths {
            named(&mut b, 2, name, &path_item(item));
        }
        message(&mut out, 8, &b);
    }
    if let Some(Value::Object(definitions)) = doc.get("definitions") {
        let mut b = Vec::new();
        for (name, s) in definitions {
            named(&mut b, 1, name, &schema(s));
        }
        message(&mut out, 9, &b);
    }
    vendor_extensions(&mut out, 16, doc);
    out
}

/// `PathItem`: the operations by method, the shared parameters.
fn path_item(item: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(item) = item.as_object() else {
        return out;
    };
    string(&mut out, 1, str_of(item, "$ref"));
    for (method, tag) in [
        ("get", 2),
        ("put", 3),
        ("post", 4),
        ("delete", 5),
        ("options", 6),
        ("head", 7),
        ("patch", 8),
    ] {
        if let Some(op) = item.get(method) {
            message(&mut out, tag, &operation(op));
        }
    }
    parameters(&mut out, 9, item.get("parameters"));
    vendor_extensions(&mut out, 10, item);
    out
}

/// `Operation`.
fn operation(op: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(op) = op.as_object() else {
        return out;
    };
    strings(&mut out, 1, op.get("tags"));
    string(&mut out, 2, str_of(op, "summary"));
    string(&mut out, 3, str_of(op, "description"));
    string(&mut out, 5, str_of(op, "operationId"));
    strings(&mut out, 6, op.get("produces"));
    strings(&mut out, 7, op.get("consumes"));
    parameters(&mut out, 8, op.get("parameters"));
    if let Some(Value::Object(responses)) = op.get("responses") {
        let mut b = Vec::new();
        for (code, response) in responses {
            let Some(response) = response.as_object() else {
                continue;
            };
            let mut r = Vec::new();
            string(&mut r, 1, str_of(response, "description"));
            if let Some(s) = response.get("schema") {
                // SchemaItem { oneof { Schema schema = 1; FileSchema file_schema = 2; } }
                let mut item = Vec::new();
                message(&mut item, 1, &schema(s));
                message(&mut r, 2, &item);
            }
            vendor_extensions(&mut r, 5, response);
            // ResponseValue { oneof { Response response = 1; JsonReference json_reference = 2; } }
            let mut value = Vec::new();
            message(&mut value, 1, &r);
            named(&mut b, 1, code, &value);
        }
        vendor_extensions(&mut b, 2, responses);
        message(&mut out, 9, &b);
    }
    strings(&mut out, 10, op.get("schemes"));
    boolean(&mut out, 11, op.get("deprecated"));
    vendor_extensions(&mut out, 13, op);
    out
}

/// Repeated `ParametersItem`: a reference, a body parameter or a query, path or header one.
fn parameters(out: &mut Vec<u8>, tag: u32, list: Option<&Value>) {
    let Some(Value::Array(list)) = list else {
        return;
    };
    for p in list {
        let Some(p) = p.as_object() else {
            continue;
        };
        let mut item = Vec::new();
        if let Some(reference) = p.get("$ref").and_then(Value::as_str) {
            let mut r = Vec::new();
            string(&mut r, 1, reference);
            message(&mut item, 2, &r);
        } else {
            let mut parameter = Vec::new();
            if p.get("in").and_then(Value::as_str) == Some("body") {
                let mut b = Vec::new();
                string(&mut b, 1, str_of(p, "description"));
                string(&mut b, 2, str_of(p, "name"));
                string(&mut b, 3, "body");
                boolean(&mut b, 4, p.get("required"));
                if let Some(s) = p.get("schema") {
                    message(&mut b, 5, &schema(s));
                }
                vendor_extensions(&mut b, 6, p);
                message(&mut parameter, 1, &b);
            } else {
                // NonBodyParameter's sub-schemas share their first fields; they differ in where
                // `type`, `format`, `uniqueItems` and the extensions sit (query has
                // `allowEmptyValue` at 5).
                let (which, type_tag, unique_tag, extension_tag) = match p.get("in").and_then(Value::as_str) {
                    Some("query") => (3, 6, 20, 23),
                    Some("path") => (4, 5, 19, 22),
                    Some("header") => (1, 5, 19, 22),
                    _ => continue,
                };
                let mut b = Vec::new();
                boolean(&mut b, 1, p.get("required"));
                string(&mut b, 2, str_of(p, "in"));
                string(&mut b, 3, str_of(p, "description"));
                string(&mut b, 4, str_of(p, "name"));
                string(&mut b, type_tag, str_of(p, "type"));
                string(&mut b, type_tag + 1, str_of(p, "format"));
                boolean(&mut b, unique_tag, p.get("uniqueItems"));
                vendor_extensions(&mut b, extension_tag, p);
                let mut non_body = Vec::new();
                message(&mut non_body, which, &b);
                message(&mut parameter, 2, &non_body);
            }
            message(&mut item, 1, &parameter);
        }
        message(out, tag, &item);
    }
}

/// `Schema`, with every keyword of Swagger 2.0's schema object.
fn schema(s: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(s) = s.as_object() else {
        return out;
    };
    string(&mut out, 1, str_of(s, "$ref"));
    string(&mut out, 2, str_of(s, "format"));
    string(&mut out, 3, str_of(s, "title"));
    string(&mut out, 4, str_of(s, "description"));
    if let Some(v) = s.get("default") {
        message(&mut out, 5, &any(v));
    }
    for (key, tag) in [("multipleOf", 6), ("maximum", 7), ("minimum", 9)] {
        double(&mut out, tag, s.get(key));
    }
    boolean(&mut out, 8, s.get("exclusiveMaximum"));
    boolean(&mut out, 10, s.get("exclusiveMinimum"));
    for (key, tag) in [
        ("maxLength", 11),
        ("minLength", 12),
        ("maxItems", 14),
        ("minItems", 15),
        ("maxProperties", 17),
        ("minProperties", 18),
    ] {
        int64(&mut out, tag, s.get(key));
    }
    string(&mut out, 13, str_of(s, "pattern"));
    boolean(&mut out, 16, s.get("uniqueItems"));
    strings(&mut out, 19, s.get("required"));
    if let Some(Value::Array(values)) = s.get("enum") {
        for v in values {
            message(&mut out, 20, &any(v));
        }
    }
    match s.get("additionalProperties") {
        // AdditionalPropertiesItem { oneof { Schema schema = 1; bool boolean = 2; } }: a oneof
        // member is written even when false.
        Some(Value::Bool(b)) => {
            let mut item = Vec::new();
            key(&mut item, 2, 0);
            varint(&mut item, u64::from(*b));
            message(&mut out, 21, &item);
        }
        Some(inner @ Value::Object(_)) => {
            let mut item = Vec::new();
            message(&mut item, 1, &schema(inner));
            message(&mut out, 21, &item);
        }
        _ => {}
    }
    match s.get("type") {
        Some(Value::String(t)) => {
            let mut item = Vec::new();
            string(&mut item, 1, t);
            message(&mut out, 22, &item);
        }
        Some(types @ Value::Array(_)) => {
            let mut item = Vec::new();
            strings(&mut item, 1, Some(types));
            message(&mut out, 22, &item);
        }
        _ => {}
    }
    match s.get("items") {
        Some(inner @ Value::Object(_)) => {
            let mut item = Vec::new();
            message(&mut item, 1, &schema(inner));
            message(&mut out, 23, &item);
        }
        Some(Value::Array(list)) => {
            let mut item = Vec::new();
            for inner in list {
                message(&mut item, 1, &schema(inner));
            }
            message(&mut out, 23, &item);
        }
        _ => {}
    }
    if let Some(Value::Array(list)) = s.get("allOf") {
        for inner in list {
            message(&mut out, 24, &schema(inner));
        }
    }
    // `properties: {}` stays a (present, empty) message: kubectl reads an object with
    // properties as a kind whose other fields are unknown, one without as a map.
    if let Some(Value::Object(properties)) = s.get("properties") {
        let mut b = Vec::new();
        for (name, inner) in properties {
            named(&mut b, 1, name, &schema(inner));
        }
        message(&mut out, 25, &b);
    }
    string(&mut out, 26, str_of(s, "discriminator"));
    boolean(&mut out, 27, s.get("readOnly"));
    if let Some(v) = s.get("example") {
        message(&mut out, 30, &any(v));
    }
    vendor_extensions(&mut out, 31, s);
    out
}

/// `NamedAny` per `x-` key of `object`.
fn vendor_extensions(out: &mut Vec<u8>, tag: u32, object: &Map<String, Value>) {
    for (name, value) in object.iter().filter(|(k, _)| k.starts_with("x-")) {
        named(out, tag, name, &any(value));
    }
}

/// `Any { string yaml = 2; }` holding the value as JSON text.
fn any(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    string(&mut out, 2, &value.to_string());
    out
}

/// A `Named*` message: `name = 1`, `value = 2`.
fn named(out: &mut Vec<u8>, tag: u32, name: &str, value: &[u8]) {
    let mut b = Vec::new();
    string(&mut b, 1, name);
    message(&mut b, 2, value);
    message(out, tag, &b);
}

fn str_of<'a>(object: &'a Map<String, Value>, key: &str) -> &'a str {
    object.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn key(out: &mut Vec<u8>, tag: u32, wire_type: u8) {
    varint(out, (u64::from(tag) << 3) | u64::from(wire_type));
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A length-delimited field, written even when empty (a present message).
fn message(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    key(out, tag, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A proto3 string: left out when empty.
fn string(out: &mut Vec<u8>, tag: u32, value: &str) {
    if !value.is_empty() {
        message(out, tag, value.as_bytes());
    }
}

fn strings(out: &mut Vec<u8>, tag: u32, list: Option<&Value>) {
    if let Some(Value::Array(list)) = list {
        for value in list.iter().filter_map(Value::as_str) {
            message(out, tag, value.as_bytes());
        }
    }
}

/// A proto3 bool: left out when false.
fn boolean(out: &mut Vec<u8>, tag: u32, value: Option<&Value>) {
    if value.and_then(Value::as_bool) == Some(true) {
        key(out, tag, 0);
        varint(out, 1);
    }
}

/// A proto3 double: left out when zero.
fn double(out: &mut Vec<u8>, tag: u32, value: Option<&Value>) {
    if let Some(v) = value.and_then(Value::as_f64)
        && v != 0.0
    {
        key(out, tag, 1);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// A proto3 int64: left out when zero.
fn int64(out: &mut Vec<u8>, tag: u32, value: Option<&Value>) {
    if let Some(v) = value.and_then(Value::as_i64)
        && v != 0
    {
        key(out, tag, 0);
        varint(out, v as u64);
    }
}
