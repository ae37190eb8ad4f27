//! The watch event stream every scenario replays: built once, in memory, from one realistic pod.
//!
//! Each event is one line of compact JSON, `{"type":…,"object":…}\n`, with `type` before `object`
//! as the API server writes them. Event `i` concerns pod `i / 2`: even events are `ADDED`, odd ones
//! `MODIFIED`, so the stream mixes both. Name, namespace and uid follow the pod; resourceVersions
//! increase by one per event from [`EventSet::first_rv`].
//!
//! The pod is serialized once with marker strings in the varying fields; every event is then the
//! template's literal pieces with the values spliced in, so building 100,000 events is a few hundred
//! megabytes of copying rather than 100,000 serializations.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use serde_json::Value;

use crate::error::BenchError;

/// The realistic pod shipped with the bench (a copy of the project's shared `pod.json`).
pub const DEFAULT_POD: &str = include_str!("../data/pod.json");

/// The resourceVersion of the first event when a scenario does not say otherwise; the empty list
/// the replay server answers with carries the one before it.
pub const DEFAULT_FIRST_RV: u64 = 2;

/// A field of the pod that changes from event to event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Type,
    Name,
    Namespace,
    Uid,
    ResourceVersion,
}

impl Field {
    const ALL: [Field; 5] = [
        Field::Type,
        Field::Name,
        Field::Namespace,
        Field::Uid,
        Field::ResourceVersion,
    ];

    /// The string put in the field while the template is serialized; chosen so that it cannot
    /// occur in a pod.
    fn marker(self) -> &'static str {
        match self {
            Field::Type => "@@kazan-bench:type@@",
            Field::Name => "@@kazan-bench:name@@",
            Field::Namespace => "@@kazan-bench:namespace@@",
            Field::Uid => "@@kazan-bench:uid@@",
            Field::ResourceVersion => "@@kazan-bench:resourceVersion@@",
        }
    }
}

/// One piece of the serialized template: literal bytes, or a field to fill in.
#[derive(Debug)]
enum Piece {
    Literal(Vec<u8>),
    Field(Field),
}

/// The identity of event `index` in a stream starting at `first_rv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventIdentity {
    /// `ADDED` or `MODIFIED`.
    pub event_type: &'static str,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.resourceVersion`.
    pub resource_version: u64,
}

impl EventIdentity {
    /// What event `index` of a stream whose first resourceVersion is `first_rv` carries.
    pub fn of(index: u64, first_rv: u64) -> Self {
        let pod = index / 2;
        EventIdentity {
            event_type: if index.is_multiple_of(2) {
                "ADDED"
            } else {
                "MODIFIED"
            },
            name: format!("web-{}-{pod:06}", pod % 10),
            namespace: format!("team-{}", pod % 100),
            uid: format!("6f1c2a3e-0000-4b7d-9c1e-{pod:012}"),
            resource_version: first_rv + index,
        }
    }

    fn value(&self, field: Field) -> std::borrow::Cow<'_, str> {
        match field {
            Field::Type => self.event_type.into(),
            Field::Name => self.name.as_str().into(),
            Field::Namespace => self.namespace.as_str().into(),
            Field::Uid => self.uid.as_str().into(),
            Field::ResourceVersion => self.resource_version.to_string().into(),
        }
    }
}

/// N watch events as one contiguous buffer, with the byte offset where each starts.
#[derive(Debug, Clone)]
pub struct EventSet {
    bytes: Bytes,
    /// `offsets[i]` is where event `i` starts; the last entry is the buffer's length.
    offsets: Vec<usize>,
    first_rv: u64,
}

impl EventSet {
    /// Builds `count` events from `pod_json` (a pod object), the first with resourceVersion
    /// `first_rv`.
    pub fn build(pod_json: &str, count: u64, first_rv: u64) -> Result<Self, BenchError> {
        let pieces = template(pod_json)?;
        let literal_len: usize = pieces
            .iter()
            .map(|piece| match piece {
                Piece::Literal(bytes) => bytes.len(),
                Piece::Field(_) => 0,
            })
            .sum();
        let capacity = usize::try_from(count)
            .ok()
            .and_then(|n| n.checked_mul(literal_len + 128))
            .ok_or(BenchError::TooManyEvents(count))?;
        let mut bytes = BytesMut::with_capacity(capacity);
        let mut offsets = Vec::with_capacity(usize::try_from(count).unwrap_or(0) + 1);
        for index in 0..count {
            offsets.push(bytes.len());
            let identity = EventIdentity::of(index, first_rv);
            for piece in &pieces {
                match piece {
                    Piece::Literal(literal) => bytes.extend_from_slice(literal),
                    Piece::Field(field) => bytes.extend_from_slice(identity.value(*field).as_bytes()),
                }
            }
        }
        offsets.push(bytes.len());
        Ok(EventSet {
            bytes: bytes.freeze(),
            offsets,
            first_rv,
        })
    }

    /// How many events the set holds.
    pub fn len(&self) -> u64 {
        self.offsets.len().saturating_sub(1) as u64
    }

    /// The resourceVersion of the first event.
    pub fn first_rv(&self) -> u64 {
        self.first_rv
    }

    /// The resourceVersion of the last event (the one before the first if the set is empty).
    #[cfg(test)]
    pub fn last_rv(&self) -> u64 {
        (self.first_rv + self.len()).saturating_sub(1)
    }

    /// All events, one per line.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The events with indices in `range` (clamped to the set), as one buffer sharing this one's
    /// memory.
    pub fn slice(&self, range: Range<u64>) -> Bytes {
        let len = self.len();
        let start = range.start.min(len);
        let end = range.end.clamp(start, len);
        let offset = |index: u64| {
            usize::try_from(index)
                .ok()
                .and_then(|i| self.offsets.get(i).copied())
                .unwrap_or(self.bytes.len())
        };
        self.bytes.slice(offset(start)..offset(end))
    }

    /// The index of the first event whose resourceVersion is greater than `resource_version`.
    pub fn index_after(&self, resource_version: u64) -> u64 {
        if resource_version < self.first_rv {
            0
        } else {
            (resource_version - self.first_rv + 1).min(self.len())
        }
    }

    /// The first `count` events (all of them if the set has fewer), sharing this set's memory.
    pub fn prefix(&self, count: u64) -> EventSet {
        let count = count.min(self.len());
        let kept = usize::try_from(count).unwrap_or(0) + 1;
        let offsets: Vec<usize> = self.offsets.iter().take(kept).copied().collect();
        let end = offsets.last().copied().unwrap_or(0);
        EventSet {
            bytes: self.bytes.slice(..end),
            offsets,
            first_rv: self.first_rv,
        }
    }
}

/// Serializes the event line once with markers in the varying fields and cuts it into pieces.
fn template(pod_json: &str) -> Result<Vec<Piece>, BenchError> {
    let mut pod: Value = serde_json::from_str(pod_json).map_err(BenchError::Pod)?;
    let metadata = pod
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or(BenchError::PodShape("the pod has no metadata object"))?;
    for (key, field) in [
        ("name", Field::Name),
        ("namespace", Field::Namespace),
        ("uid", Field::Uid),
        ("resourceVersion", Field::ResourceVersion),
    ] {
        metadata.insert(key.to_owned(), Value::String(field.marker().to_owned()));
    }
    // `type` before `object`, as the API server writes them; the object itself is compact JSON,
    // its top level and its metadata in the Go structs' field order.
    let object = in_go_field_order(&pod).map_err(BenchError::Pod)?;
    let line = format!("{{\"type\":\"{}\",\"object\":{object}}}\n", Field::Type.marker());

    let mut pieces = Vec::new();
    let mut rest = line.as_str();
    loop {
        let next = Field::ALL
            .iter()
            .filter_map(|field| rest.find(field.marker()).map(|at| (at, *field)))
            .min_by_key(|(at, _)| *at);
        match next {
            Some((at, field)) => {
                let (literal, tail) = rest.split_at(at);
                pieces.push(Piece::Literal(literal.as_bytes().to_vec()));
                pieces.push(Piece::Field(field));
                rest = tail.get(field.marker().len()..).unwrap_or("");
            }
            None => {
                pieces.push(Piece::Literal(rest.as_bytes().to_vec()));
                break;
            }
        }
    }
    Ok(pieces)
}

/// The object's fields as the API server writes them: Go's `encoding/json` follows the struct,
/// so `kind` and `apiVersion` (`TypeMeta`, inline) come first, then `metadata`, `spec`, `status`;
/// inside `metadata`, `ObjectMeta`'s order puts `name`, `namespace`, `uid` and `resourceVersion`
/// before labels, annotations and `managedFields` (apimachinery `pkg/apis/meta/v1/types.go`). A
/// client that reads the identity ahead (kazan's lazy form and spawned watcher) stops there, as it
/// does against a real server; `serde_json::Value` would sort the keys, putting `managedFields`
/// first. Deeper objects keep sorted keys, which no client reads in order.
fn in_go_field_order(object: &Value) -> Result<String, serde_json::Error> {
    const TOP: &[&str] = &["kind", "apiVersion", "metadata", "spec", "status"];
    const OBJECT_META: &[&str] = &[
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    ];
    /// `map` as a JSON object, the keys of `order` first in that order, then the others.
    fn ordered(
        map: &serde_json::Map<String, Value>,
        order: &[&str],
        value: impl Fn(&str, &Value) -> Result<String, serde_json::Error>,
    ) -> Result<String, serde_json::Error> {
        let rest = map.keys().filter(|k| !order.contains(&k.as_str()));
        let keys = order.iter().copied().filter(|k| map.contains_key(*k));
        let mut fields = Vec::with_capacity(map.len());
        for key in keys.chain(rest.map(String::as_str)) {
            if let Some(v) = map.get(key) {
                fields.push(format!("{}:{}", serde_json::to_string(key)?, value(key, v)?));
            }
        }
        Ok(format!("{{{}}}", fields.join(",")))
    }
    let Some(top) = object.as_object() else {
        return serde_json::to_string(object);
    };
    ordered(top, TOP, |key, v| match (key, v.as_object()) {
        ("metadata", Some(metadata)) => ordered(metadata, OBJECT_META, |_, v| serde_json::to_string(v)),
        _ => serde_json::to_string(v),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Line {
        #[serde(rename = "type")]
        type_: String,
        object: Pod,
    }

    fn lines(bytes: &[u8]) -> Vec<&[u8]> {
        bytes
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .collect()
    }

    #[test]
    fn every_event_is_one_compact_line_that_decodes_into_a_typed_pod() -> Result<(), BenchError> {
        let events = EventSet::build(DEFAULT_POD, 6, 10)?;
        let text = std::str::from_utf8(events.bytes()).map_err(|_| BenchError::PodShape("utf8"))?;
        assert_eq!(text.matches('\n').count(), 6);
        assert!(text.ends_with('\n'));
        for (index, line) in lines(events.bytes()).into_iter().enumerate() {
            assert!(line.starts_with(br#"{"type":""#), "type comes before object");
            assert!(!line.windows(3).any(|w| w == b"\": "), "compact JSON");
            let decoded: Line = serde_json::from_slice(line).map_err(BenchError::Pod)?;
            let expected = EventIdentity::of(index as u64, 10);
            let metadata = &decoded.object.metadata;
            assert_eq!(decoded.type_, expected.event_type);
            assert_eq!(metadata.name.as_deref(), Some(expected.name.as_str()));
            assert_eq!(metadata.namespace.as_deref(), Some(expected.namespace.as_str()));
            assert_eq!(metadata.uid.as_deref(), Some(expected.uid.as_str()));
            let rv = (10 + index).to_string();
            assert_eq!(metadata.resource_version.as_deref(), Some(rv.as_str()));
            // The rest of the pod is the shipped one, untouched.
            assert_eq!(metadata.generate_name.as_deref(), Some("web-0-"));
            assert_eq!(decoded.object.spec.map(|s| s.containers.len()), Some(1));
        }
        Ok(())
    }

    /// apimachinery `pkg/apis/meta/v1/types.go`: `TypeMeta` (kind, apiVersion) inline first, then
    /// `ObjectMeta`, whose identity fields come before labels, annotations and managedFields.
    #[test]
    fn the_object_and_its_metadata_are_written_in_the_go_field_order() -> Result<(), BenchError> {
        let events = EventSet::build(DEFAULT_POD, 1, 10)?;
        let text = std::str::from_utf8(events.bytes()).map_err(|_| BenchError::PodShape("utf8"))?;
        let at = |needle: &str| text.find(needle).unwrap_or(usize::MAX);
        let order = [
            r#""kind":"Pod""#,
            r#""apiVersion":"v1""#,
            r#""metadata":{"name":"#,
            r#""generateName":"#,
            r#""namespace":"#,
            r#""uid":"#,
            r#""resourceVersion":"10""#,
            r#""creationTimestamp":"#,
            r#""labels":"#,
            r#""annotations":"#,
            r#""ownerReferences":"#,
            r#""managedFields":"#,
            r#""spec":"#,
            r#""status":"#,
        ];
        for pair in order.windows(2) {
            assert!(at(pair[0]) < at(pair[1]), "{} before {}", pair[0], pair[1]);
            assert!(at(pair[1]) != usize::MAX, "{} is written", pair[1]);
        }
        // The same pod as the shipped one, whatever the order.
        let written: Value = serde_json::from_str(text.trim_end()).map_err(BenchError::Pod)?;
        let shipped: Value = serde_json::from_str(DEFAULT_POD).map_err(BenchError::Pod)?;
        let (Some(written), Some(shipped)) = (written["object"].as_object(), shipped.as_object()) else {
            return Err(BenchError::PodShape("objects"));
        };
        assert_eq!(written.len(), shipped.len());
        assert_eq!(written.get("spec"), shipped.get("spec"));
        assert_eq!(
            written["metadata"]["managedFields"],
            shipped["metadata"]["managedFields"]
        );
        Ok(())
    }

    #[test]
    fn the_stream_mixes_added_and_modified_of_the_same_pods() {
        let added = EventIdentity::of(4, 2);
        let modified = EventIdentity::of(5, 2);
        assert_eq!(added.event_type, "ADDED");
        assert_eq!(modified.event_type, "MODIFIED");
        assert_eq!(added.name, modified.name);
        assert_eq!(added.uid, modified.uid);
        assert_ne!(added.name, EventIdentity::of(6, 2).name);
        assert_eq!(modified.resource_version, 7);
    }

    #[test]
    fn events_are_about_the_size_of_the_realistic_pod() -> Result<(), BenchError> {
        let events = EventSet::build(DEFAULT_POD, 100, DEFAULT_FIRST_RV)?;
        let per_event = events.bytes().len() / 100;
        assert!((3_700..4_100).contains(&per_event), "{per_event} bytes per event");
        Ok(())
    }

    #[test]
    fn slices_and_prefixes_cut_on_event_boundaries() -> Result<(), BenchError> {
        let events = EventSet::build(DEFAULT_POD, 10, 2)?;
        assert_eq!(events.len(), 10);
        assert_eq!(events.last_rv(), 11);
        let middle = events.slice(3..5);
        assert_eq!(lines(&middle).len(), 2);
        let first: Line = serde_json::from_slice(lines(&middle)[0]).map_err(BenchError::Pod)?;
        assert_eq!(first.object.metadata.resource_version.as_deref(), Some("5"));
        assert!(events.slice(8..50).ends_with(b"\n"));
        assert!(events.slice(20..30).is_empty());

        let prefix = events.prefix(4);
        assert_eq!(prefix.len(), 4);
        assert_eq!(prefix.last_rv(), 5);
        assert_eq!(prefix.bytes(), &events.slice(0..4));
        Ok(())
    }

    #[test]
    fn resuming_after_a_resource_version_skips_what_was_seen() -> Result<(), BenchError> {
        let events = EventSet::build(DEFAULT_POD, 10, 2)?;
        assert_eq!(events.index_after(0), 0);
        assert_eq!(events.index_after(1), 0);
        assert_eq!(events.index_after(2), 1);
        assert_eq!(events.index_after(11), 10);
        assert_eq!(events.index_after(500), 10);
        Ok(())
    }
}
