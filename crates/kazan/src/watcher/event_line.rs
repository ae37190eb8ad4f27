//! The fast way through a watch event line: `{"type": T, "object": {... "metadata": {...}` read up
//! to the object's identity and no further, the line kept whole in a [`RawObject`] to decode later.
//! Anything not shaped as the API server writes it is left to the long way (`decode`).

use std::fmt;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::decode::ObjectEvent;
use crate::{
    RawObject,
    raw::{FOUND, Identity, IdentityRead, MetadataSeed, OneOf},
};

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
        (Err(_), Some((event_type, identity))) => {
            Some((event_type, RawObject::of_event_line(line, identity)))
        }
        _ => None,
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
        // Keys and the type are matched where they lie, not allocated.
        match map.next_key_seed(OneOf(&["type"]))? {
            Some(Some(_)) => {}
            _ => return Ok(()),
        }
        let event_type = match map.next_value_seed(OneOf(&["ADDED", "MODIFIED", "DELETED"]))? {
            Some(0) => ObjectEvent::Added,
            Some(1) => ObjectEvent::Modified,
            Some(2) => ObjectEvent::Deleted,
            // Bookmarks, errors and unknown types are rare: the long way reads them.
            _ => return Ok(()),
        };
        match map.next_key_seed(OneOf(&["object"]))? {
            Some(Some(_)) => {}
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
    use k8s_openapi::api::core::v1::Pod;

    use super::*;
    use crate::Object;

    #[test]
    fn an_event_line_is_kept_whole_and_read_up_to_the_metadata() -> Result<(), serde_json::Error> {
        let line = Bytes::from_static(
            br#"{"type":"MODIFIED","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a","namespace":"n","resourceVersion":"9"},"data":{"k":"v"}}}"#,
        );
        let (event, raw) =
            from_event_line(&line, IdentityRead::Full).ok_or_else(|| de::Error::custom("not read"))?;
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
                    from_event_line(&Bytes::copy_from_slice(line), read).is_none(),
                    "{line:?} {read:?}"
                );
            }
        }
    }

    /// The brief read stops once the name and version are known: what comes after them in the
    /// metadata is neither read nor checked until the object is decoded.
    #[test]
    fn a_brief_read_stops_at_the_name_and_version() -> Result<(), serde_json::Error> {
        let pod = include_str!("../../tests/corpus/pod.json");
        let line = Bytes::from(format!(r#"{{"type":"ADDED","object":{pod}}}"#));
        let (_, full) =
            from_event_line(&line, IdentityRead::Full).ok_or_else(|| de::Error::custom("not read"))?;
        let (_, brief) =
            from_event_line(&line, IdentityRead::Brief).ok_or_else(|| de::Error::custom("not read"))?;
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
        let (_, brief) =
            from_event_line(&line, IdentityRead::Brief).ok_or_else(|| de::Error::custom("not read"))?;
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
            let (_, brief) =
                from_event_line(&line, IdentityRead::Brief).ok_or_else(|| de::Error::custom("not read"))?;
            assert_eq!((brief.name(), brief.resource_version()), (name, None));
        }
        Ok(())
    }

    #[test]
    fn the_rest_of_a_line_is_checked_when_decoded() {
        let line = Bytes::from_static(br#"{"type":"ADDED","object":{"metadata":{"name":"a"},"data":{"k":"#);
        let Some((_, raw)) = from_event_line(&line, IdentityRead::Full) else {
            panic!("metadata not read")
        };
        assert_eq!(raw.name(), "a");
        assert!(raw.decode::<serde_json::Value>().is_err());
        assert!(raw.json().is_err());
    }
}
