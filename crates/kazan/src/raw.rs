//! Objects kept as the JSON the server sent, with only their identity read: the lazy form.
//!
//! Decoding a typed object is most of what a watcher costs (a `Pod` event is about 3.8 KB of
//! JSON and a hundred allocations). A consumer that needs only names and versions, or that
//! decodes later or elsewhere, watches [`RawObject`]s: the JSON is checked and kept, the metadata
//! that identifies the object is read, and [`RawObject::decode`] builds the typed object on demand.

use std::{collections::BTreeMap, fmt};

use bytes::Bytes;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor},
};
use serde_json::value::RawValue;

use crate::resource::Object;

/// An object as raw JSON, with its identity read (`name`, `namespace`, `uid`,
/// `resourceVersion`, `generation`, `creationTimestamp`, `deletionTimestamp`, `labels`).
///
/// ```
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use kazan::{Object, RawObject};
///
/// let raw: RawObject = serde_json::from_str(
///     r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","resourceVersion":"7"},"data":{"k":"v"}}"#,
/// )?;
/// assert_eq!((raw.name(), raw.resource_version()), ("a", Some("7")));
/// let cm: ConfigMap = raw.decode()?;
/// assert_eq!(cm.data.unwrap()["k"], "v");
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// From a watch, a `RawObject` shares the event's line as it was read (no copy) and only its
/// metadata has been read: the rest of the JSON is checked when it is decoded.
#[derive(Clone)]
pub struct RawObject {
    source: Source,
    /// Boxed: `ObjectMeta` is some 380 bytes inline, mostly empty options, and raw objects are
    /// queued in channels whose blocks hold 32 events each, per watcher.
    meta: Box<ObjectMeta>,
}

#[derive(Clone)]
enum Source {
    /// A whole watch event line, `{"type": ..., "object": {...}}`, as received.
    EventLine(Bytes),
    /// The object's JSON alone (from a list, or decoded with serde).
    Json(Box<RawValue>),
}

/// An event line's object, borrowed or decoded.
#[derive(Deserialize)]
struct ObjectOf<T> {
    object: T,
}

impl RawObject {
    /// The object's JSON, as the server sent it.
    pub fn json(&self) -> Result<&str, serde_json::Error> {
        match &self.source {
            Source::Json(json) => Ok(json.get()),
            Source::EventLine(line) => {
                let text = std::str::from_utf8(line).map_err(de::Error::custom)?;
                let event: ObjectOf<&RawValue> = serde_json::from_str(text)?;
                Ok(event.object.get())
            }
        }
    }

    /// Decodes the object into a type: a `k8s_openapi` kind, a [`DynamicObject`](crate::DynamicObject),
    /// or any `Deserialize` type; with the default [`Decoder`](crate::Decoder).
    pub fn decode<K: DeserializeOwned>(&self) -> Result<K, serde_json::Error> {
        self.decode_with(crate::Decoder::default())
    }

    /// [`decode`](Self::decode) with a chosen parser. The result is the same whichever it is; a
    /// line the parser refuses is decoded by `serde_json`, whose error is returned.
    pub fn decode_with<K: DeserializeOwned>(&self, decoder: crate::Decoder) -> Result<K, serde_json::Error> {
        match &self.source {
            Source::Json(json) => decoder.from_slice(json.get().as_bytes()),
            Source::EventLine(line) => match decoder.fast::<ObjectOf<K>>(line) {
                Some(event) => Ok(event.object),
                None => match std::str::from_utf8(line) {
                    Ok(text) => serde_json::from_str::<ObjectOf<K>>(text).map(|e| e.object),
                    Err(_) => serde_json::from_slice::<ObjectOf<K>>(line).map(|e| e.object),
                },
            },
        }
    }

    /// A raw object that shares a watch event line, its identity already read.
    pub(crate) fn of_event_line(line: &Bytes, identity: Identity) -> RawObject {
        RawObject {
            source: Source::EventLine(line.clone()),
            meta: Box::new(identity.into()),
        }
    }
}

impl fmt::Debug for RawObject {
    // The JSON is left out: it may be a Secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawObject")
            .field("name", &self.meta.name)
            .field("namespace", &self.meta.namespace)
            .field("resource_version", &self.meta.resource_version)
            .field(
                "bytes",
                &match &self.source {
                    Source::EventLine(line) => line.len(),
                    Source::Json(json) => json.get().len(),
                },
            )
            .finish()
    }
}

impl Object for RawObject {
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
}

impl Serialize for RawObject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let json = self.json().map_err(serde::ser::Error::custom)?;
        let raw: &RawValue = serde_json::from_str(json).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = Box::<RawValue>::deserialize(d)?;
        let meta = peek_metadata(json.get()).map_err(de::Error::custom)?;
        Ok(RawObject {
            source: Source::Json(json),
            meta: Box::new(meta),
        })
    }
}

/// The identity fields of `metadata`; the rest (annotations, managedFields...) is skipped.
#[derive(Deserialize, Default)]
pub(crate) struct Identity {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
    generation: Option<i64>,
    #[serde(rename = "creationTimestamp")]
    creation_timestamp: Option<Time>,
    #[serde(rename = "deletionTimestamp")]
    deletion_timestamp: Option<Time>,
    labels: Option<BTreeMap<String, String>>,
}

impl From<Identity> for ObjectMeta {
    fn from(i: Identity) -> Self {
        ObjectMeta {
            name: i.name,
            namespace: i.namespace,
            uid: i.uid,
            resource_version: i.resource_version,
            generation: i.generation,
            creation_timestamp: i.creation_timestamp,
            deletion_timestamp: i.deletion_timestamp,
            labels: i.labels,
            ..ObjectMeta::default()
        }
    }
}

/// How much of an object's metadata a watch event line is read for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdentityRead {
    /// Every identity field (what [`RawObject`] promises its users).
    Full,
    /// Only until `name` and `resourceVersion` are known (with `namespace` when it comes before
    /// them, as the API server writes it): for the watchers that decode the whole object later
    /// anyway, so that labels, annotations and managedFields are not read twice.
    Brief,
}

/// Reads a string (a map key, an event type) and says which of `.0` it is (`None` for any other)
/// without allocating it: serde's `Cow<str>` is always an owned `String`, one allocation per key
/// of every identity read.
#[derive(Clone, Copy)]
pub(crate) struct OneOf(pub(crate) &'static [&'static str]);

impl<'de> DeserializeSeed<'de> for OneOf {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for OneOf {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|name| *name == v))
    }
}

/// Why the metadata scan stopped early on purpose (not an error: the rest need not be read).
pub(crate) const FOUND: &str = "kazan: metadata found";

/// Reads `metadata` and stops there: the API server writes it right after `kind` and
/// `apiVersion`, so the rest of a large object is not scanned twice.
fn peek_metadata(json: &str) -> Result<ObjectMeta, serde_json::Error> {
    let mut found = None;
    let mut de = serde_json::Deserializer::from_str(json);
    let seed = MetadataSeed {
        found: &mut found,
        read: IdentityRead::Full,
    };
    match seed.deserialize(&mut de) {
        Ok(()) => Ok(found.map(ObjectMeta::from).unwrap_or_default()),
        Err(e) => match found {
            // Stopped on purpose once the metadata was read.
            Some(identity) => Ok(identity.into()),
            _ => Err(e),
        },
    }
}

pub(crate) struct MetadataSeed<'a> {
    pub(crate) found: &'a mut Option<Identity>,
    pub(crate) read: IdentityRead,
}

impl<'de> DeserializeSeed<'de> for MetadataSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetadataSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(OneOf(&["metadata"]))? {
            if key.is_some() {
                if self.read == IdentityRead::Brief {
                    let mut brief = Brief::default();
                    return match map.next_value_seed(&mut brief) {
                        // Read to its end, or stopped once enough was known.
                        Ok(()) => {
                            *self.found = Some(brief.identity);
                            Err(de::Error::custom(FOUND))
                        }
                        Err(stop) if brief.stopped => {
                            *self.found = Some(brief.identity);
                            Err(stop)
                        }
                        Err(broken) => Err(broken),
                    };
                }
                // `null` is empty metadata, as the typed kinds read it.
                *self.found = Some(map.next_value::<Option<Identity>>()?.unwrap_or_default());
                return Err(de::Error::custom(FOUND));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// Reads `metadata` only until `name` and `resourceVersion` are known ([`IdentityRead::Brief`]).
#[derive(Default)]
struct Brief {
    identity: Identity,
    /// Whether it stopped on purpose, which the error it returns then says.
    stopped: bool,
}

impl<'de> DeserializeSeed<'de> for &mut Brief {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for &mut Brief {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object's metadata")
    }

    // `null` is empty metadata, as the typed kinds read it.
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let id = &mut self.identity;
        while let Some(key) = map.next_key_seed(OneOf(&["name", "namespace", "resourceVersion"]))? {
            match key {
                Some(0) => id.name = map.next_value()?,
                Some(1) => id.namespace = map.next_value()?,
                Some(2) => id.resource_version = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            }
            if id.name.is_some() && id.resource_version.is_some() {
                self.stopped = true;
                return Err(de::Error::custom(FOUND));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    #[test]
    fn identity_is_read_and_the_object_decodes_later() -> Result<(), serde_json::Error> {
        let raw: RawObject = serde_json::from_str(
            r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"n","uid":"u1","resourceVersion":"12","generation":3,"labels":{"app":"web"},"annotations":{"big":"x"}},"spec":{"containers":[{"name":"c","image":"i"}]}}"#,
        )?;
        assert_eq!(
            (raw.name(), raw.namespace(), raw.resource_version()),
            ("p", Some("n"), Some("12"))
        );
        assert_eq!(raw.meta().uid.as_deref(), Some("u1"));
        assert_eq!(raw.meta().generation, Some(3));
        assert_eq!(raw.meta().labels.as_ref().map(|l| l["app"].as_str()), Some("web"));
        assert!(raw.meta().annotations.is_none(), "only identity is read");
        let pod: Pod = raw.decode()?;
        assert_eq!(
            pod.spec.map(|s| s.containers[0].name.clone()).as_deref(),
            Some("c")
        );
        Ok(())
    }

    #[test]
    fn metadata_anywhere_and_none_at_all() -> Result<(), serde_json::Error> {
        let late: RawObject =
            serde_json::from_str(r#"{"spec":{"a":[1,{"b":2}]},"metadata":{"name":"late"}}"#)?;
        assert_eq!(late.name(), "late");
        let none: RawObject = serde_json::from_str(r#"{"spec":{}}"#)?;
        assert_eq!(none.resource_version(), None);
        Ok(())
    }

    #[test]
    fn bad_json_and_bad_metadata_are_errors() {
        assert!(serde_json::from_str::<RawObject>(r#"{"metadata":{"name":5}}"#).is_err());
        assert!(serde_json::from_str::<RawObject>(r#"{"metadata":"#).is_err());
        assert!(serde_json::from_str::<RawObject>(r#"[1]"#).is_err());
    }

    #[test]
    fn serializes_back_to_the_same_json_and_hides_it_from_debug() -> Result<(), serde_json::Error> {
        let text = r#"{"kind":"Secret","metadata":{"name":"s"},"data":{"password":"aHVudGVyMg=="}}"#;
        let raw: RawObject = serde_json::from_str(text)?;
        assert_eq!(serde_json::to_string(&raw)?, text);
        assert_eq!(raw.json()?, text);
        assert!(!format!("{raw:?}").contains("aHVudGVyMg"));
        Ok(())
    }
}
