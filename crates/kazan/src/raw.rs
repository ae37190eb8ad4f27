//! Objects kept as the JSON the server sent, with only their identity read: the lazy form.
//!
//! Decoding a typed object is most of what a watcher costs (a `Pod` event is about 3.8 KB of
//! JSON and a hundred allocations). A consumer that needs only names and versions, or that
//! decodes later or elsewhere, watches [`RawObject`]s: the JSON is checked and kept, the metadata
//! that identifies the object is read, and [`RawObject::decode`] builds the typed object on demand.

use std::{collections::BTreeMap, fmt};

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
#[derive(Clone)]
pub struct RawObject {
    json: Box<RawValue>,
    meta: ObjectMeta,
}

impl RawObject {
    /// The object's JSON, as the server sent it.
    pub fn json(&self) -> &str {
        self.json.get()
    }

    /// Decodes the object into a type: a `k8s_openapi` kind, a [`DynamicObject`](crate::DynamicObject),
    /// or any `Deserialize` type.
    pub fn decode<K: DeserializeOwned>(&self) -> Result<K, serde_json::Error> {
        serde_json::from_str(self.json.get())
    }

    /// The raw JSON, by value.
    pub fn into_json(self) -> Box<RawValue> {
        self.json
    }
}

impl fmt::Debug for RawObject {
    // The JSON is left out: it may be a Secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawObject")
            .field("name", &self.meta.name)
            .field("namespace", &self.meta.namespace)
            .field("resource_version", &self.meta.resource_version)
            .field("json_bytes", &self.json.get().len())
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
        self.json.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = Box::<RawValue>::deserialize(d)?;
        let meta = peek_metadata(json.get()).map_err(de::Error::custom)?;
        Ok(RawObject { json, meta })
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

/// Why the metadata scan stopped early on purpose (not an error: the rest need not be read).
const FOUND: &str = "kazan: metadata found";

/// Reads `metadata` and stops there: the API server writes it right after `kind` and
/// `apiVersion`, so the rest of a large object is not scanned twice.
fn peek_metadata(json: &str) -> Result<ObjectMeta, serde_json::Error> {
    let mut found = None;
    let mut de = serde_json::Deserializer::from_str(json);
    match (MetadataSeed { found: &mut found }).deserialize(&mut de) {
        Ok(()) => Ok(found.map(ObjectMeta::from).unwrap_or_default()),
        Err(e) => match found {
            Some(identity) if e.to_string().starts_with(FOUND) => Ok(identity.into()),
            _ => Err(e),
        },
    }
}

struct MetadataSeed<'a> {
    found: &'a mut Option<Identity>,
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
                *self.found = Some(map.next_value::<Identity>()?);
                return Err(de::Error::custom(FOUND));
            }
            map.next_value::<IgnoredAny>()?;
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
        assert!(!format!("{raw:?}").contains("aHVudGVyMg"));
        Ok(())
    }
}
