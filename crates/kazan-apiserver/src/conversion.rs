//! What a resource endpoint answers for the `Accept` header: the objects as stored, a Table, or
//! their metadata only (`PartialObjectMetadata`, `PartialObjectMetadataList`); and 406 with a
//! Status for an `Accept` none of these fits.
//!
//! Followed: apiserver `pkg/endpoints/handlers/negotiation/negotiate.go`
//! (`NegotiateMediaTypeOptions`: the first clause whose type and `as`/`g`/`v` the endpoint accepts
//! wins; none is `NotAcceptable`, naming the media types served), `negotiation/errors.go` (the 406
//! Status), `handlers/rest.go` (`AllowsMediaTypeTransform`: `PartialObjectMetadata(List)` in
//! `meta.k8s.io/v1` or `v1beta1`, Table as JSON or YAML), and `handlers/response.go`
//! (`asPartialObjectMetadata`: kind, apiVersion and the whole `metadata`; a list asked for as
//! `PartialObjectMetadata` is 406, and one object asked for as `PartialObjectMetadataList` too;
//! `asPartialObjectMetadataList`: the list's `resourceVersion`, `continue` and
//! `remainingItemCount`, and its items each as `PartialObjectMetadata`). A watch converts each
//! event's object (bookmarks included, ERROR Statuses not), as `doTransformObject` does per event.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Map, Value, json};

use crate::status::Status;

/// The media types a resource endpoint serves, as the real server names them in a 406.
const SERVED: &str = "application/json, application/yaml, application/vnd.kubernetes.protobuf";
/// The same for a watch.
const SERVED_STREAMS: &str =
    "application/json;stream=watch, application/vnd.kubernetes.protobuf;stream=watch";

/// What the client asked the objects to be converted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// As stored (or as JSON, YAML, protobuf: all answered as JSON here).
    Plain,
    /// A `meta.k8s.io` Table (served by `table.rs`).
    Table,
    /// `PartialObjectMetadata` (in `meta.k8s.io/v1` or `v1beta1`).
    Partial(&'static str),
    /// `PartialObjectMetadataList`.
    PartialList(&'static str),
}

/// The first clause of `accept` this server can produce, or the 406 Status. An empty header is
/// plain JSON.
pub(crate) fn negotiate(accept: &str, watch: bool) -> Result<Target, Box<Status>> {
    if accept.trim().is_empty() {
        return Ok(Target::Plain);
    }
    for clause in accept.split(',') {
        let mut parts = clause.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let (mut kind, mut group, mut version, mut zero) = (None, None, None, false);
        for param in parts {
            match param.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("as", v)) => kind = Some(v),
                Some(("g", v)) => group = Some(v),
                Some(("v", v)) => version = Some(v),
                Some(("q", v)) => zero = v.parse::<f32>().is_ok_and(|q| q <= 0.0),
                _ => {}
            }
        }
        let served = matches!(
            media.as_str(),
            "application/json"
                | "application/yaml"
                | "application/vnd.kubernetes.protobuf"
                | "application/*"
                | "*/*"
        );
        if zero || !served {
            continue;
        }
        if kind.is_none() && group.is_none() && version.is_none() {
            return Ok(Target::Plain);
        }
        let version = match (group, version) {
            (Some("meta.k8s.io"), Some("v1")) => "v1",
            (Some("meta.k8s.io"), Some("v1beta1")) => "v1beta1",
            _ => continue,
        };
        match kind {
            Some("PartialObjectMetadata") => return Ok(Target::Partial(version)),
            Some("PartialObjectMetadataList") => return Ok(Target::PartialList(version)),
            Some("Table") if media != "application/vnd.kubernetes.protobuf" => return Ok(Target::Table),
            _ => continue,
        }
    }
    let served = if watch { SERVED_STREAMS } else { SERVED };
    Err(not_acceptable(format!(
        "only the following media types are accepted: {served}"
    )))
}

fn not_acceptable(message: String) -> Box<Status> {
    Box::new(Status::failure(406, "NotAcceptable", message))
}

fn api_version(version: &str) -> String {
    format!("meta.k8s.io/{version}")
}

/// `object` (one object or a list, as this server answers it) converted to `target`'s
/// metadata-only form; `Ok(None)` when `target` is not metadata-only.
pub(crate) fn convert(target: Target, value: &Value) -> Result<Option<Value>, Box<Status>> {
    let is_list = value.get("items").is_some_and(Value::is_array);
    match target {
        Target::Plain | Target::Table => Ok(None),
        Target::Partial(_) if is_list => Err(not_acceptable(format!(
            "you requested PartialObjectMetadata, but the requested object is a list ({})",
            kind_of(value)
        ))),
        Target::PartialList(_) if !is_list => Err(not_acceptable(format!(
            "you requested PartialObjectMetadataList, but the requested object is not a list ({})",
            kind_of(value)
        ))),
        Target::Partial(version) => Ok(Some(partial(value, version))),
        Target::PartialList(version) => Ok(Some(partial_list(value, version))),
    }
}

fn kind_of(value: &Value) -> String {
    value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string()
}

/// One object as `PartialObjectMetadata`: its kind and apiVersion replaced, its metadata kept
/// whole (`meta.AsPartialObjectMetadata` copies every `ObjectMeta` field).
pub(crate) fn partial(object: &Value, version: &str) -> Value {
    let metadata = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
    json!({"kind": "PartialObjectMetadata", "apiVersion": api_version(version), "metadata": metadata})
}

/// A list as `PartialObjectMetadataList`: the list metadata the real server copies, and each
/// item as `PartialObjectMetadata`.
fn partial_list(list: &Value, version: &str) -> Value {
    let mut metadata = Map::new();
    if let Some(list_meta) = list.get("metadata") {
        for key in ["resourceVersion", "continue", "remainingItemCount"] {
            if let Some(v) = list_meta.get(key).filter(|v| !v.is_null()) {
                metadata.insert(key.to_string(), v.clone());
            }
        }
    }
    let items: Vec<Value> = list
        .get("items")
        .and_then(Value::as_array)
        .map(|items| items.iter().map(|o| partial(o, version)).collect())
        .unwrap_or_default();
    json!({"kind": "PartialObjectMetadataList", "apiVersion": api_version(version),
        "metadata": metadata, "items": items})
}

/// Watch event lines (`{"type":..,"object":..}\n`, one or more) with each object as
/// `PartialObjectMetadata`; ERROR events' Statuses and lines that are not events pass unchanged.
/// Written in the Go structs' field order, as the real server writes them (a `Value` would sort
/// the keys): `type` before `object` (`metav1.WatchEvent`), and `kind`, `apiVersion`, `metadata`
/// (`PartialObjectMetadata`, its `TypeMeta` inline first). A client that reads the type first and
/// stops at the metadata (kazan's lazy read, client-go's streaming decoder) relies on it.
pub(crate) fn partial_event_lines(bytes: &Bytes, version: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(bytes.len());
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        match serde_json::from_slice::<Value>(body) {
            Ok(event) if event.get("type").and_then(Value::as_str) != Some("ERROR") => {
                match partial_event(&event, version) {
                    Ok(encoded) => {
                        out.put_slice(&encoded);
                        out.put_u8(b'\n');
                    }
                    Err(_) => out.put_slice(line),
                }
            }
            _ => out.put_slice(line),
        }
    }
    out.freeze()
}

/// `{"type":..,"object":<PartialObjectMetadata>}` of one event.
fn partial_event(event: &Value, version: &str) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(1024);
    write_partial_event(
        &mut out,
        event.get("type").unwrap_or(&Value::Null),
        event.get("object"),
        version,
    )?;
    Ok(out)
}

/// The line (`\n` included) of one event of a metadata-only watch, written straight from the
/// stored object: only its metadata is serialized, where converting the object's full line
/// ([`partial_event_lines`]) parses all of it again. The same bytes either way.
pub(crate) fn partial_event_line(kind: &str, object: &Value, version: &str) -> Bytes {
    let mut out = Vec::with_capacity(1024);
    match write_partial_event(&mut out, &Value::from(kind), Some(object), version) {
        Ok(()) => {
            out.push(b'\n');
            Bytes::from(out)
        }
        // A `Value` always serializes; were it ever not to, the full line's conversion decides.
        Err(_) => partial_event_lines(&crate::store::event_line(kind, object), version),
    }
}

/// Writes `{"type":<kind>,"object":{"kind":"PartialObjectMetadata","apiVersion":..,"metadata":..}}`
/// (no object: `{"type":<kind>}`) in the Go structs' field order.
fn write_partial_event(
    out: &mut Vec<u8>,
    kind: &Value,
    object: Option<&Value>,
    version: &str,
) -> serde_json::Result<()> {
    out.extend_from_slice(b"{\"type\":");
    serde_json::to_writer(&mut *out, kind)?;
    if let Some(object) = object {
        out.extend_from_slice(b",\"object\":{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":");
        serde_json::to_writer(&mut *out, &api_version(version))?;
        out.extend_from_slice(b",\"metadata\":");
        match object.get("metadata") {
            Some(metadata) => serde_json::to_writer(&mut *out, metadata)?,
            None => out.extend_from_slice(b"{}"),
        }
        out.push(b'}');
    }
    out.push(b'}');
    Ok(())
}

/// The metadata-only group version a watch asked for, if it did.
pub(crate) fn partial_watch(target: Target) -> Option<&'static str> {
    match target {
        Target::Partial(version) => Some(version),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// apimachinery `pkg/apis/meta/v1/watch.go` (`WatchEvent`: Type, then Object) and `types.go`
    /// (`PartialObjectMetadata`: TypeMeta inline, then ObjectMeta): the field order of the lines.
    #[test]
    fn a_partial_watch_event_is_written_in_the_go_field_order() {
        let line = br#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","resourceVersion":"7"},"spec":{"containers":[]}}}"#;
        let mut bytes = line.to_vec();
        bytes.push(b'\n');
        let error = br#"{"type":"ERROR","object":{"code":410,"kind":"Status"}}"#;
        bytes.extend_from_slice(error);
        bytes.push(b'\n');
        let out = partial_event_lines(&Bytes::from(bytes), "v1");
        let expected = concat!(
            r#"{"type":"ADDED","object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","#,
            r#""metadata":{"name":"a","resourceVersion":"7"}}}"#,
            "\n",
            r#"{"type":"ERROR","object":{"code":410,"kind":"Status"}}"#,
            "\n"
        );
        assert_eq!(String::from_utf8_lossy(&out), expected);
    }

    /// A metadata-only watch writes its lines straight from the stored objects; they must be the
    /// bytes the conversion of the full line gives, for every kind of event and an object with
    /// no metadata.
    #[test]
    fn a_partial_line_written_from_the_object_is_the_converted_full_line() {
        let objects = [
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "a", "namespace": "n", "resourceVersion": "7",
                    "labels": {"z": "1", "a": "é\"\n"},
                    "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {".": {}}}}]},
                "spec": {"containers": [{"name": "c"}]}}),
            json!({"apiVersion": "v1", "kind": "Pod"}),
        ];
        for object in &objects {
            for kind in ["ADDED", "MODIFIED", "DELETED", "BOOKMARK"] {
                let full = crate::store::event_line(kind, object);
                let converted = partial_event_lines(&full, "v1");
                let direct = partial_event_line(kind, object, "v1");
                assert_eq!(
                    String::from_utf8_lossy(&direct),
                    String::from_utf8_lossy(&converted),
                    "{kind} {object}"
                );
                assert!(direct.ends_with(b"\n") && !direct[..direct.len() - 1].contains(&b'\n'));
            }
        }
    }

    #[test]
    fn the_first_clause_the_server_can_produce_wins() {
        let client_go = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";
        assert_eq!(negotiate(client_go, false).ok(), Some(Target::Partial("v1")));
        assert_eq!(
            negotiate(
                "application/json;as=Widget;g=meta.k8s.io;v=v1,application/json",
                false
            )
            .ok(),
            Some(Target::Plain)
        );
        assert_eq!(negotiate("*/*", false).ok(), Some(Target::Plain));
        assert_eq!(negotiate("", false).ok(), Some(Target::Plain));
        let refused = negotiate("text/html", false).err().map(|s| s.code);
        assert_eq!(refused, Some(406));
    }
}
