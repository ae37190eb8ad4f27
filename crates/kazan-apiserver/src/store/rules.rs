//! The rules every object follows: typed bodies, names, namespaces, the metadata the server owns.

use super::strategy::is_builtin;
use crate::error::StoreError;
use crate::registry::ResourceDef;
use crate::status::{FieldCause, Status};
use serde_json::{Map, Value, json};

/// Namespace for storage: "" for cluster-scoped kinds.
pub(super) fn scope_ns(def: &ResourceDef, namespace: Option<&str>) -> String {
    if def.namespaced {
        namespace.unwrap_or_default().to_string()
    } else {
        String::new()
    }
}

/// The namespace a created object goes into (URL first; the body must agree).
pub(super) fn resolve_namespace(
    def: &ResourceDef,
    namespace: Option<&str>,
    object: &Value,
) -> Result<String, StoreError> {
    if !def.namespaced {
        return Ok(String::new());
    }
    let body_ns = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    match (namespace, body_ns) {
        (Some(url), Some(body)) if url != body => Err(Status::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )
        .into()),
        (Some(url), _) => Ok(url.to_string()),
        (None, Some(body)) => Ok(body.to_string()),
        (None, None) => Ok("default".to_string()),
    }
}

/// The (namespace, name) key of an object.
pub(crate) fn object_key(object: &Value) -> (String, String) {
    let get = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (get("/metadata/namespace"), get("/metadata/name"))
}

/// A copy of the object with `kind`/`apiVersion` of the definition (the version asked for).
pub(crate) fn with_type(def: &ResourceDef, object: &Value) -> Value {
    let mut out = object.clone();
    if let Some(map) = out.as_object_mut() {
        map.insert("apiVersion".into(), json!(def.api_version()));
        map.insert("kind".into(), json!(def.kind));
    }
    out
}

/// Checks and fills `kind`/`apiVersion`, makes sure `metadata` is an object.
pub(super) fn prepare_typed(def: &ResourceDef, object: &mut Value) -> Result<(), StoreError> {
    let Some(map) = object.as_object_mut() else {
        return Err(Status::bad_request("the body of the request was not a JSON object").into());
    };
    if let Some(kind) = map.get("kind").and_then(Value::as_str)
        && !kind.is_empty()
        && kind != def.kind
    {
        return Err(Status::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            def.kind
        ))
        .into());
    }
    if let Some(api_version) = map.get("apiVersion").and_then(Value::as_str)
        && !api_version.is_empty()
        && api_version.rsplit_once('/').map_or("", |(group, _)| group) != def.group
    {
        return Err(Status::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            def.api_version()
        ))
        .into());
    }
    if let Some(api_version) = map.get("apiVersion").and_then(Value::as_str)
        && !api_version.is_empty()
        && api_version != def.api_version()
        && is_builtin(def)
    {
        // The decoder knows the built-in kinds only in their served versions
        // (apiserver/pkg/endpoints/handlers/rest.go, `transformDecodeError`).
        let version = api_version.rsplit('/').next().unwrap_or(api_version);
        return Err(Status::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: no kind \"{kind}\" is registered for version \"{api_version}\" in scheme \"pkg/api/legacyscheme/scheme.go:30\"",
            kind = def.kind
        ))
        .into());
    }
    map.insert("apiVersion".into(), json!(def.api_version()));
    map.insert("kind".into(), json!(def.kind));
    match map.get("metadata") {
        Some(Value::Object(_)) => {}
        None | Some(Value::Null) => {
            map.insert("metadata".into(), json!({}));
        }
        Some(_) => return Err(Status::bad_request("metadata must be an object").into()),
    }
    Ok(())
}

pub(super) fn metadata_mut(object: &mut Value) -> Result<&mut Map<String, Value>, StoreError> {
    object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| Status::bad_request("metadata must be an object").into())
}

/// Sets a value at a path of object keys, creating objects on the way.
pub(crate) fn set_path(target: &mut Value, path: &[&str], value: Value) {
    let mut current = target;
    for (i, part) in path.iter().enumerate() {
        if !current.is_object() {
            *current = json!({});
        }
        let Some(map) = current.as_object_mut() else {
            return;
        };
        if i + 1 == path.len() {
            map.insert((*part).to_string(), value);
            return;
        }
        current = map.entry((*part).to_string()).or_insert_with(|| json!({}));
    }
}

pub(super) fn is_kind(def: &ResourceDef, group: &str, plural: &str) -> bool {
    def.group == group && def.plural == plural
}

/// `generateName` + 5 random characters from the real server's alphabet.
pub(super) fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let random = uuid::Uuid::new_v4();
    let suffix: String = random
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// Names must be DNS subdomains (lowercase alphanumerics, `-`, `.`, ≤ 253, alphanumeric ends).
pub(super) fn validate_name(def: &ResourceDef, name: &str) -> Result<(), StoreError> {
    let ok_edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let valid = name.len() <= 253
        && ok_edge(name.chars().next())
        && ok_edge(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if valid {
        return Ok(());
    }
    Err(Status::invalid(
        &def.group,
        &def.kind,
        name,
        &[FieldCause::invalid(
            "metadata.name",
            name,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        )],
    )
    .into())
}

/// `2026-01-31T12:00:00Z`.
pub(crate) fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
