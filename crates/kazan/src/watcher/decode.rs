//! Decoding one watch event line: `{"type": ..., "object": ...}`.
//!
//! The API server writes `type` before `object`, so the object is decoded in the same pass, straight
//! into its final type (no intermediate `Value`, no second parse). Events in the other order still
//! work (the object is kept raw until the type is known). Anything that does not decode is classified
//! so the watcher can report it with context and go on: an object that does not fit `K` keeps its
//! type and resourceVersion (from a cheap second parse) so the watcher can skip it and advance.

use std::{
    any::{Any, TypeId},
    collections::BTreeMap,
    fmt,
    marker::PhantomData,
};

use bytes::Bytes;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use serde::{
    Deserialize, Deserializer,
    de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor},
};
use serde_json::value::RawValue;

use crate::{Decoder, RawObject, raw::IdentityRead};

/// The annotation that marks the end of the initial events of a watch-list.
pub(crate) const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// The three event types that carry an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ObjectEvent {
    Added,
    Modified,
    Deleted,
}

/// One decoded line.
#[derive(Debug)]
pub(crate) enum Decoded<K> {
    /// ADDED, MODIFIED or DELETED with its object.
    /// The object is boxed: a decoded object is large (a `Pod` is about 2.5 KB) and is handed
    /// on a few times before it reaches the consumer.
    Object { event: ObjectEvent, object: Box<K> },
    /// BOOKMARK.
    Bookmark {
        resource_version: Option<String>,
        initial_events_end: bool,
    },
    /// ERROR, with the server's Status.
    Error(Box<Status>),
    /// A type this watcher does not know.
    UnknownType { type_name: String },
    /// A well-formed event whose object does not decode as `K`.
    Undecodable {
        type_name: String,
        resource_version: Option<String>,
        name: Option<String>,
        namespace: Option<String>,
        error: serde_json::Error,
    },
    /// Not a watch event at all (not JSON, or no `type`/`object`).
    Malformed(serde_json::Error),
}

/// [`decode_line_reading`] with every identity field of a lazy object read, and the default
/// decoder.
#[cfg(test)]
pub(crate) fn decode_line<K: DeserializeOwned + 'static>(line: &Bytes) -> Decoded<K> {
    decode_line_reading(line, IdentityRead::Full, Decoder::default())
}

/// Decodes one line; a lazy object's metadata is read only as far as `read` says, a typed object
/// is built by `decoder`.
///
/// The line is checked for UTF-8 once, as a whole (fast for the ASCII that JSON mostly is), so the
/// parser does not check every string again: about an eighth less work per event.
pub(crate) fn decode_line_reading<K: DeserializeOwned + 'static>(
    line: &Bytes,
    read: IdentityRead,
    decoder: Decoder,
) -> Decoded<K> {
    // The lazy form reads only up to the object's metadata, and keeps the line.
    if TypeId::of::<K>() == TypeId::of::<RawObject>() {
        if let Some((event, raw)) = super::event_line::from_event_line(line, read) {
            let object: Box<dyn Any> = Box::new(raw);
            if let Ok(object) = object.downcast::<K>() {
                return Decoded::Object { event, object };
            }
        }
        // A raw object keeps serde_json's `RawValue`, which only serde_json fills.
        return decode_whole_line(line);
    }
    // The usual line (`type` first, an object that decodes) by the faster parser; anything else,
    // errors included, as serde_json reads it.
    match decoder.fast::<InOrder<K>>(line) {
        Some(InOrder(WireEvent(decoded))) => decoded,
        None => decode_whole_line(line),
    }
}

/// Decodes the whole line, object included, with serde_json.
fn decode_whole_line<K: DeserializeOwned>(line: &[u8]) -> Decoded<K> {
    let parsed = match std::str::from_utf8(line) {
        Ok(text) => serde_json::from_str::<WireEvent<K>>(text),
        // Not UTF-8: the byte parser says where.
        Err(_) => serde_json::from_slice::<WireEvent<K>>(line),
    };
    match parsed {
        Ok(ev) => ev.0,
        Err(error) => classify_failure(line, error),
    }
}

/// After a failed decode: was it the object (skip it, knowing its version) or the line?
fn classify_failure<K>(line: &[u8], error: serde_json::Error) -> Decoded<K> {
    #[derive(Deserialize)]
    struct Lenient {
        #[serde(rename = "type")]
        type_name: String,
        object: MetaOnly,
    }
    match serde_json::from_slice::<Lenient>(line) {
        Ok(l) => {
            let meta = l.object.metadata.unwrap_or_default();
            Decoded::Undecodable {
                type_name: l.type_name,
                resource_version: meta.resource_version,
                name: meta.name,
                namespace: meta.namespace,
                error,
            }
        }
        Err(_) => Decoded::Malformed(error),
    }
}

#[derive(Deserialize, Default)]
struct MetaOnly {
    metadata: Option<MetaFields>,
    /// A Table's (a watch of [`TableRow`](crate::table::TableRow)s): the real server sends a
    /// bookmark as a Table too, its row's object the bookmark's metadata, end marker included
    /// (apiserver `response.go`, `asTable`).
    #[serde(default)]
    rows: Option<Vec<MetaRow>>,
}

#[derive(Deserialize, Default)]
struct MetaRow {
    #[serde(default)]
    object: Option<MetaOnlyObject>,
}

#[derive(Deserialize, Default)]
struct MetaOnlyObject {
    metadata: Option<MetaFields>,
}

#[derive(Deserialize, Default)]
struct MetaFields {
    name: Option<String>,
    namespace: Option<String>,
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
}

/// The `type` field, matched without allocating for the known values.
enum TypeTag {
    Object(ObjectEvent),
    Bookmark,
    Error,
    Other(String),
}

impl<'de> Deserialize<'de> for TypeTag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TagVisitor;
        impl Visitor<'_> for TagVisitor {
            type Value = TypeTag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event type string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TypeTag, E> {
                Ok(match v {
                    "ADDED" => TypeTag::Object(ObjectEvent::Added),
                    "MODIFIED" => TypeTag::Object(ObjectEvent::Modified),
                    "DELETED" => TypeTag::Object(ObjectEvent::Deleted),
                    "BOOKMARK" => TypeTag::Bookmark,
                    "ERROR" => TypeTag::Error,
                    other => TypeTag::Other(other.to_string()),
                })
            }
        }
        d.deserialize_str(TagVisitor)
    }
}

/// Decodes the object once the type is known.
struct PayloadSeed<'a, K> {
    tag: &'a TypeTag,
    _k: PhantomData<fn() -> K>,
}

impl<'de, K: DeserializeOwned> DeserializeSeed<'de> for PayloadSeed<'_, K> {
    type Value = Decoded<K>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Decoded<K>, D::Error> {
        Ok(match self.tag {
            TypeTag::Object(event) => Decoded::Object {
                event: *event,
                object: Box::new(K::deserialize(d)?),
            },
            TypeTag::Bookmark => {
                let only = MetaOnly::deserialize(d)?;
                let row_meta = only
                    .rows
                    .and_then(|rows| rows.into_iter().next())
                    .and_then(|row| row.object)
                    .and_then(|object| object.metadata);
                let meta = only.metadata.unwrap_or_default();
                let ends = |meta: &MetaFields| {
                    meta.annotations
                        .as_ref()
                        .and_then(|a| a.get(INITIAL_EVENTS_END))
                        .is_some_and(|v| v == "true")
                };
                Decoded::Bookmark {
                    initial_events_end: ends(&meta) || row_meta.as_ref().is_some_and(ends),
                    resource_version: meta
                        .resource_version
                        .or_else(|| row_meta.and_then(|m| m.resource_version)),
                }
            }
            TypeTag::Error => Decoded::Error(Box::new(Status::deserialize(d)?)),
            TypeTag::Other(name) => {
                IgnoredAny::deserialize(d)?;
                Decoded::UnknownType {
                    type_name: name.clone(),
                }
            }
        })
    }
}

struct WireEvent<K>(Decoded<K>);

/// A watch event with `type` before `object` only: what a parser other than serde_json decodes
/// (the other order keeps the object as serde_json's `RawValue`, which only serde_json fills).
struct InOrder<K>(WireEvent<K>);

impl<'de, K: DeserializeOwned> Deserialize<'de> for InOrder<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventVisitor {
            object_first: false,
            _k: PhantomData,
        })
        .map(InOrder)
    }
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for WireEvent<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventVisitor {
            object_first: true,
            _k: PhantomData,
        })
    }
}

/// Reads `{"type", "object"}`; an object before its type only where `object_first` allows.
struct EventVisitor<K> {
    object_first: bool,
    _k: PhantomData<fn() -> K>,
}

impl<'de, K: DeserializeOwned> Visitor<'de> for EventVisitor<K> {
    type Value = WireEvent<K>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a watch event {\"type\", \"object\"}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireEvent<K>, A::Error> {
        let mut tag: Option<TypeTag> = None;
        let mut decoded: Option<Decoded<K>> = None;
        let mut raw: Option<Box<RawValue>> = None;
        while let Some(key) = map.next_key::<KeyName>()? {
            match key {
                KeyName::Type => tag = Some(map.next_value()?),
                KeyName::Object => match &tag {
                    Some(t) => {
                        decoded = Some(map.next_value_seed(PayloadSeed {
                            tag: t,
                            _k: PhantomData,
                        })?)
                    }
                    None if self.object_first => raw = Some(map.next_value()?),
                    None => return Err(de::Error::custom("the object before its type")),
                },
                KeyName::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let tag = tag.ok_or_else(|| de::Error::missing_field("type"))?;
        if let Some(d) = decoded {
            return Ok(WireEvent(d));
        }
        let raw = raw.ok_or_else(|| de::Error::missing_field("object"))?;
        let mut de = serde_json::Deserializer::from_str(raw.get());
        PayloadSeed {
            tag: &tag,
            _k: PhantomData,
        }
        .deserialize(&mut de)
        .map(WireEvent)
        .map_err(de::Error::custom)
    }
}

enum KeyName {
    Type,
    Object,
    Other,
}

impl<'de> Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyName, E> {
                Ok(match v {
                    "type" => KeyName::Type,
                    "object" => KeyName::Object,
                    _ => KeyName::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::DynamicObject;
    use k8s_openapi::api::core::v1::{Namespace, Pod};

    #[test]
    fn object_events_decode_in_one_pass() {
        let line = br#"{"type":"MODIFIED","object":{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"a","resourceVersion":"12"}}}"#;
        match decode_line::<Namespace>(&Bytes::copy_from_slice(line)) {
            Decoded::Object {
                event: ObjectEvent::Modified,
                object,
            } => {
                assert_eq!(object.metadata.name.as_deref(), Some("a"));
                assert_eq!(object.metadata.resource_version.as_deref(), Some("12"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn object_before_type_still_decodes() {
        let line = br#"{"object":{"metadata":{"name":"a","resourceVersion":"3"}},"type":"DELETED"}"#;
        assert!(matches!(
            decode_line::<Namespace>(&Bytes::copy_from_slice(line)),
            Decoded::Object {
                event: ObjectEvent::Deleted,
                ..
            }
        ));
    }

    #[test]
    fn bookmarks_read_only_version_and_end_marker() {
        // A pod bookmark with the empty fields a Go server serialises; a full Pod decode would fail.
        let line = br#"{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"99","creationTimestamp":null,"annotations":{"k8s.io/initial-events-end":"true"}},"spec":{"containers":null},"status":{}}}"#;
        match decode_line::<Pod>(&Bytes::copy_from_slice(line)) {
            Decoded::Bookmark {
                resource_version,
                initial_events_end,
            } => {
                assert_eq!(resource_version.as_deref(), Some("99"));
                assert!(initial_events_end);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A Table watch's bookmark is a Table: the version in its metadata, the end marker in its
    /// row's object (apiserver `pkg/endpoints/handlers/response.go`, `asTable`).
    #[test]
    fn a_table_bookmark_keeps_its_version_and_end_marker() {
        let line = br#"{"type":"BOOKMARK","object":{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"41"},"columnDefinitions":null,"rows":[{"cells":["","<unknown>"],"object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"41","annotations":{"k8s.io/initial-events-end":"true"}}}}]}}"#;
        match decode_line::<crate::table::TableRow>(&Bytes::copy_from_slice(line)) {
            Decoded::Bookmark {
                resource_version,
                initial_events_end,
            } => {
                assert_eq!(resource_version.as_deref(), Some("41"));
                assert!(initial_events_end);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn errors_carry_the_status() {
        let line = br#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}}"#;
        match decode_line::<Pod>(&Bytes::copy_from_slice(line)) {
            Decoded::Error(status) => {
                assert_eq!(status.code, Some(410));
                assert_eq!(status.reason.as_deref(), Some("Expired"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_types_are_named() {
        let line = br#"{"type":"SURPRISE","object":{"metadata":{"resourceVersion":"4"}}}"#;
        assert!(
            matches!(decode_line::<Pod>(&Bytes::copy_from_slice(line)), Decoded::UnknownType { type_name } if type_name == "SURPRISE")
        );
    }

    #[test]
    fn an_object_that_does_not_fit_keeps_its_version() {
        // `spec.containers` must be a list in a Pod.
        let line = br#"{"type":"ADDED","object":{"metadata":{"name":"p","namespace":"n","resourceVersion":"7"},"spec":{"containers":"nope"}}}"#;
        match decode_line::<Pod>(&Bytes::copy_from_slice(line)) {
            Decoded::Undecodable {
                type_name,
                resource_version,
                name,
                namespace,
                ..
            } => {
                assert_eq!(type_name, "ADDED");
                assert_eq!(resource_version.as_deref(), Some("7"));
                assert_eq!((name.as_deref(), namespace.as_deref()), (Some("p"), Some("n")));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn garbage_is_malformed() {
        for line in [
            &b"not json"[..],
            b"{\"type\":\"ADDED\"}",
            b"{\"object\":{}}",
            b"[1,2]",
            b"{\"type\":\"ADDED\",\"object\":{",
        ] {
            assert!(
                matches!(
                    decode_line::<DynamicObject>(&Bytes::copy_from_slice(line)),
                    Decoded::Malformed(_)
                ),
                "{line:?}"
            );
        }
    }

    #[test]
    fn dynamic_objects_take_any_kind() {
        let line = br#"{"type":"ADDED","object":{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w","resourceVersion":"8"},"spec":{"size":1}}}"#;
        match decode_line::<DynamicObject>(&Bytes::copy_from_slice(line)) {
            Decoded::Object { object, .. } => assert_eq!(object.data["spec"]["size"], 1),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[cfg(test)]
mod fast_path_tests {
    use k8s_openapi::api::core::v1::Pod;

    use super::*;

    /// A pod event as an API server writes it is decoded by each faster parser itself, not
    /// handed back to serde_json.
    #[test]
    fn a_pod_event_is_decoded_by_the_faster_parsers_themselves() -> Result<(), serde_json::Error> {
        let pod: serde_json::Value = serde_json::from_str(include_str!("../../tests/corpus/pod.json"))?;
        let line = format!(r#"{{"type":"ADDED","object":{pod}}}"#);
        for &decoder in Decoder::available() {
            if decoder == Decoder::SerdeJson {
                continue;
            }
            let decoded = decoder.fast::<InOrder<Pod>>(line.as_bytes());
            assert!(decoded.is_some(), "{} handed the line back", decoder.name());
        }
        Ok(())
    }
}
