//! Protobuf request bodies: kubectl's typed generators (`create namespace`, `create configmap`...)
//! send `application/vnd.kubernetes.protobuf` and do not fall back to JSON. They are decoded into
//! JSON for the built-in kinds; answers are always JSON.
//!
//! A body is the magic `k8s\0` followed by a `runtime.Unknown` envelope whose `typeMeta` names the
//! kind and whose `raw` holds the object's own protobuf. Both are decoded by a small table-driven
//! decoder (`wire`) over tables generated from the `k8s-pb` crate's prost messages and
//! `k8s-openapi` (`schema`, written by `scripts/generate-protobuf-schema.py`): field numbers from
//! the former, JSON names from the latter. Neither crate is built with kazan: the generator reads
//! their sources, and the tests compare with bodies prost encoded (`scripts/protobuf-reference`).

mod fields;
mod schema;
mod wire;

use serde_json::{Map, Value};

use crate::registry::ResourceDef;

/// The protobuf media type.
pub(crate) const PROTOBUF_MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
const MAGIC: &[u8; 4] = b"k8s\0";

/// Why a protobuf body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProtobufError {
    /// The kind has no protobuf decoder here.
    #[error("protobuf bodies are not supported for {0}; send JSON")]
    Unsupported(String),
    /// The bytes are not a well-formed Kubernetes protobuf body.
    #[error("malformed protobuf body: {0}")]
    Malformed(String),
    /// The envelope names another kind than the URL.
    #[error("the body is a {found}, but the request is for {expected}")]
    KindMismatch {
        /// `apiVersion` and kind the URL addresses.
        expected: String,
        /// `apiVersion` and kind the body says it holds.
        found: String,
    },
}

/// Decodes a protobuf body (`k8s\0` + `runtime.Unknown`) of a built-in kind into its JSON form.
pub(crate) fn decode_body(def: &ResourceDef, body: &[u8]) -> Result<serde_json::Value, ProtobufError> {
    let api_version = def.api_version();
    let message = schema::ROOTS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == def.kind)
        .map(|(_, _, message)| *message)
        .ok_or_else(|| ProtobufError::Unsupported(format!("{api_version} {}", def.kind)))?;
    let envelope = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| ProtobufError::Malformed("it does not start with the k8s\\0 magic".into()))?;
    let unknown = wire::decode_unknown(envelope)?;
    if !unknown.content_encoding.is_empty() {
        return Err(ProtobufError::Malformed(format!(
            "content encoding {:?} is not supported",
            unknown.content_encoding
        )));
    }
    let body_api_version = Some(unknown.api_version)
        .filter(|v| !v.is_empty())
        .unwrap_or(api_version.clone());
    let body_kind = Some(unknown.kind)
        .filter(|k| !k.is_empty())
        .unwrap_or(def.kind.clone());
    if body_api_version != api_version || body_kind != def.kind {
        return Err(ProtobufError::KindMismatch {
            expected: format!("{api_version} {}", def.kind),
            found: format!("{body_api_version} {body_kind}"),
        });
    }
    let fields = wire::decode(message, unknown.raw)?;
    let mut object = Map::new();
    object.insert("apiVersion".into(), Value::String(body_api_version));
    object.insert("kind".into(), Value::String(body_kind));
    object.extend(fields);
    Ok(Value::Object(object))
}

/// Field validation of a JSON body of a built-in kind (`fieldValidation`): unknown fields are
/// removed and returned; None when the kind has no table (custom resources, a few built-ins).
pub(crate) fn check_fields(
    def: &ResourceDef,
    object: &mut serde_json::Value,
) -> Option<Result<Vec<String>, String>> {
    let api_version = def.api_version();
    let message = schema::ROOTS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == def.kind)
        .map(|(_, _, message)| *message)?;
    Some(
        fields::check(message, &def.kind, object)
            .map(|checked| checked.unknown)
            .map_err(|e| e.0),
    )
}

/// Adds the OpenAPI v3 schemas of a built-in kind to `schemas`; the name of the kind's own
/// schema, or None when the kind has no table.
pub(crate) fn openapi_schema(
    def: &ResourceDef,
    schemas: &mut serde_json::Map<String, serde_json::Value>,
) -> Option<String> {
    let api_version = def.api_version();
    let message = schema::ROOTS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == def.kind)
        .map(|(_, _, message)| *message)?;
    Some(fields::openapi_schemas(message, schemas))
}

#[cfg(test)]
mod tests;
