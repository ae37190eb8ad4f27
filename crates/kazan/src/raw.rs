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

use crate::{resource::Object, watcher::ObjectEvent};

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
    /// or any `Deserialize` type.
    pub fn decode<K: DeserializeOwned>(&self) -> Result<K, serde_json::Error> {
        match &self.source {
            Source::Json(json) => serde_json::from_str(json.get()),
            Source::EventLine(line) => match std::str::from_utf8(line) {
                Ok(text) => serde_json::from_str::<ObjectOf<K>>(text).map(|e| e.object),
                Err(_) => serde_json::from_slice::<ObjectOf<K>>(line).map(|e| e.object),
            },
        }
    }

    /// Reads the identity of the object in a watch event line, and stops there. `None` when the
    /// line is not shaped as the API server writes it (`type` first, then `object` with
    /// `metadata` among its first fields): the caller then decodes it the long way.
    pub(crate) fn from_event_line(line: &Bytes, read: IdentityRead) -> Option<(ObjectEvent, RawObject)> {
        let text = std::str::from_utf8(line).ok()?;
        let mut found = None;
        let mut de = serde_json::Deserializer::from_str(text);
        let stopped = (EventSeed {
            found: &mut found,
            read,
        })
        .deserialize(&mut de);
        match (stopped, found) {
            // Stopped on purpose once the metadata was read.
            (Err(_), Some((event_type, identity))) => Some((
                event_type,
                RawObject {
                    source: Source::EventLine(line.clone()),
                    meta: Box::new(identity.into()),
                },
            )),
            _ => None,
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
struct Identity {
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

/// Why the metadata scan stopped early on purpose (not an error: the rest need not be read).
const FOUND: &str = "kazan: metadata found";

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

struct MetadataSeed<'a> {
    found: &'a mut Option<Identity>,
    read: IdentityRead,
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
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "metadata" {
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
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "name" => id.name = map.next_value()?,
                "namespace" => id.namespace = map.next_value()?,
                "resourceVersion" => id.resource_version = map.next_value()?,
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

/// Reads `{"type": T, "object": {... "metadata": {...}` and stops after the metadata.
struct EventSeed<'a> {
    found: &'a mut Option<(ObjectEvent, Identity)>,
    read: IdentityRead,
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EventSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a watch event")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Only the shape the API server writes: `type` first, then `object`.
        match map.next_key::<std::borrow::Cow<'de, str>>()? {
            Some(key) if key == "type" => {}
            _ => return Ok(()),
        }
        let event_type = match map.next_value::<std::borrow::Cow<'de, str>>()?.as_ref() {
            "ADDED" => ObjectEvent::Added,
            "MODIFIED" => ObjectEvent::Modified,
            "DELETED" => ObjectEvent::Deleted,
            // Bookmarks, errors and unknown types are rare: the long way reads them.
            _ => return Ok(()),
        };
        match map.next_key::<std::borrow::Cow<'de, str>>()? {
            Some(key) if key == "object" => {}
            _ => return Ok(()),
        }
        let mut identity = None;
        let read = map.next_value_seed(MetadataSeed {
            found: &mut identity,
            read: self.read,
        });
        match identity {
            Some(identity) => {
                *self.found = Some((event_type, identity));
                Err(de::Error::custom(FOUND))
            }
            // Read to its end without metadata, or broken: the long way decides.
            None => read,
        }
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
    fn an_event_line_is_kept_whole_and_read_up_to_the_metadata() -> Result<(), serde_json::Error> {
        let line = Bytes::from_static(
            br#"{"type":"MODIFIED","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a","namespace":"n","resourceVersion":"9"},"data":{"k":"v"}}}"#,
        );
        let (event, raw) = RawObject::from_event_line(&line, IdentityRead::Full)
            .ok_or_else(|| de::Error::custom("not read"))?;
        assert_eq!(event, ObjectEvent::Modified);
        assert_eq!(
            (raw.name(), raw.namespace(), raw.resource_version()),
            ("a", Some("n"), Some("9"))
        );
        assert_eq!(
            raw.json()?,
            r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a","namespace":"n","resourceVersion":"9"},"data":{"k":"v"}}"#
        );
        let cm: k8s_openapi::api::core::v1::ConfigMap = raw.decode()?;
        assert_eq!(cm.data.map(|d| d["k"].clone()).as_deref(), Some("v"));
        Ok(())
    }

    #[test]
    fn unusual_lines_are_left_to_the_long_way() {
        for line in [
            &br#"{"object":{"metadata":{"name":"a"}},"type":"ADDED"}"#[..],
            br#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"5"}}}"#,
            br#"{"type":"ADDED","object":{"spec":{}}}"#,
            br#"{"type":"ADDED","object":{"metadata":{"name":7}}}"#,
            b"not json",
        ] {
            for read in [IdentityRead::Full, IdentityRead::Brief] {
                assert!(
                    RawObject::from_event_line(&Bytes::copy_from_slice(line), read).is_none(),
                    "{line:?} {read:?}"
                );
            }
        }
    }

    /// The brief read stops once the name and version are known: what comes after them in the
    /// metadata is neither read nor checked until the object is decoded.
    #[test]
    fn a_brief_read_stops_at_the_name_and_version() -> Result<(), serde_json::Error> {
        let pod = include_str!("../tests/corpus/pod.json");
        let line = Bytes::from(format!(r#"{{"type":"ADDED","object":{pod}}}"#));
        let (_, full) = RawObject::from_event_line(&line, IdentityRead::Full)
            .ok_or_else(|| de::Error::custom("not read"))?;
        let (_, brief) = RawObject::from_event_line(&line, IdentityRead::Brief)
            .ok_or_else(|| de::Error::custom("not read"))?;
        assert_eq!(
            (brief.name(), brief.namespace(), brief.resource_version()),
            (full.name(), full.namespace(), full.resource_version())
        );
        assert!(
            full.meta().labels.as_ref().is_some_and(|l| !l.is_empty()),
            "the test pod has labels"
        );
        assert_eq!(brief.meta().labels, None);
        assert_eq!(brief.decode::<Pod>()?, full.decode::<Pod>()?);

        // Bad labels after the version are the decode's to find.
        let line = Bytes::from_static(
            br#"{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5","labels":{"a":1}}}}"#,
        );
        let (_, brief) = RawObject::from_event_line(&line, IdentityRead::Brief)
            .ok_or_else(|| de::Error::custom("not read"))?;
        assert_eq!((brief.name(), brief.resource_version()), ("a", Some("5")));
        assert!(brief.decode::<Pod>().is_err());

        // Without a version, or with `null` metadata, it reads to the end as the full read does.
        for (line, name) in [
            (
                &br#"{"type":"ADDED","object":{"metadata":{"namespace":"n","labels":{"a":"b"},"name":"a"}}}"#
                    [..],
                "a",
            ),
            (br#"{"type":"ADDED","object":{"metadata":null,"spec":{}}}"#, ""),
        ] {
            let line = Bytes::copy_from_slice(line);
            let (_, brief) = RawObject::from_event_line(&line, IdentityRead::Brief)
                .ok_or_else(|| de::Error::custom("not read"))?;
            assert_eq!((brief.name(), brief.resource_version()), (name, None));
        }
        Ok(())
    }

    #[test]
    fn the_rest_of_a_line_is_checked_when_decoded() {
        let line = Bytes::from_static(br#"{"type":"ADDED","object":{"metadata":{"name":"a"},"data":{"k":"#);
        let Some((_, raw)) = RawObject::from_event_line(&line, IdentityRead::Full) else {
            panic!("metadata not read")
        };
        assert_eq!(raw.name(), "a");
        assert!(raw.decode::<serde_json::Value>().is_err());
        assert!(raw.json().is_err());
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
