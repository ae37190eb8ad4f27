//! Fuzz targets for the watch stream: the line framer and the event decoder, fed arbitrary bytes
//! cut at arbitrary chunk boundaries, and well-formed event streams built from a realistic pod
//! mixed with garbage.
//!
//! Properties: nothing panics; the framer's output equals a plain reference model (split on `\n`,
//! one `\r` stripped, blank lines skipped, lines over the limit reported as too long) whatever the
//! chunking; the framer never buffers more than the limit plus one byte between chunks; the typed,
//! dynamic and raw decoders agree on every line; and well-formed lines decode to exactly what was
//! written. Cases default to a few hundred per property; `PROPTEST_CASES=N` runs more. The corpus in
//! `tests/corpus/watch_stream/` is replayed through the same checks.

use std::{collections::VecDeque, fmt, path::PathBuf, sync::LazyLock};

use bytes::Bytes;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use proptest::{prelude::*, test_runner::TestCaseError};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{
    decode::{Decoded, ObjectEvent, decode_line, decode_line_reading},
    frame::{Frame, LineFramer},
};
use crate::{Decoder, DynamicObject, Object, RawObject, raw::IdentityRead};

/// Proptest settings: `default_cases` unless `PROPTEST_CASES` says otherwise.
fn config(default_cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default_cases;
    }
    config
}

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target)
}

/// The realistic pod the benchmarks stream.
static POD: LazyLock<Value> = LazyLock::new(|| {
    let text = include_str!("../../tests/corpus/pod.json");
    serde_json::from_str(text).unwrap_or(Value::Null)
});

// ---------------------------------------------------------------------------------------------
// The framer against its reference model.

/// A frame with the over-long length reduced to its documented guarantee (checked separately).
#[derive(Debug, Clone, PartialEq, Eq)]
enum ModelFrame {
    Line(Vec<u8>),
    TooLong,
}

/// What the framer must produce for `bytes`, by the plain definition: the lines ended by `\n`,
/// one trailing `\r` stripped, blank (whitespace-only) lines skipped, lines over `limit` reported;
/// an unfinished last line is reported only once it is known to be too long. Also returns the
/// bytes the framer must still hold at the end, and, for each `TooLong`, the line's raw length.
fn model(bytes: &[u8], limit: usize) -> (Vec<ModelFrame>, usize, Vec<usize>) {
    let mut frames = Vec::new();
    let mut raw_lens = Vec::new();
    let mut pieces: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let last = pieces.pop().unwrap_or_default();
    for raw in pieces {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.len() > limit {
            frames.push(ModelFrame::TooLong);
            raw_lens.push(raw.len());
        } else if !line.iter().all(u8::is_ascii_whitespace) {
            frames.push(ModelFrame::Line(line.to_vec()));
        }
    }
    let could_still_fit = last.len() <= limit || (last.len() == limit + 1 && last.ends_with(b"\r"));
    let pending = if could_still_fit {
        last.len()
    } else {
        frames.push(ModelFrame::TooLong);
        raw_lens.push(last.len());
        0
    };
    (frames, pending, raw_lens)
}

/// Cuts `bytes` at `cuts` (any order, any value: they are reduced modulo the length).
fn chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Bytes> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.dedup();
    points
        .windows(2)
        .filter_map(|w| bytes.get(w[0]..w[1]))
        .map(Bytes::copy_from_slice)
        .collect()
}

/// Runs the framer over `chunks`, checking its memory after every chunk.
fn frame_all(chunks: &[Bytes], limit: usize) -> Result<(Vec<Frame>, usize), TestCaseError> {
    let mut framer = LineFramer::new(limit);
    let mut out = VecDeque::new();
    let largest_chunk = chunks.iter().map(Bytes::len).max().unwrap_or(0);
    for chunk in chunks {
        framer.push(chunk.clone(), &mut out);
        // Between chunks only an unfinished line is held, and never more than the limit (plus a
        // `\r` that a following `\n` would strip).
        prop_assert!(
            framer.pending() <= limit + 1,
            "holding {} bytes with a limit of {limit}",
            framer.pending()
        );
        // The buffer's allocation is bounded by what one chunk and one line need, whatever the
        // length of the stream.
        let bound = 2 * (limit + 1 + largest_chunk) + 64;
        prop_assert!(
            framer.buffered_capacity() <= bound,
            "buffer capacity {} over {bound}",
            framer.buffered_capacity()
        );
    }
    Ok((out.into(), framer.pending()))
}

/// The framer's output for `bytes` cut at `cuts` equals the model's.
fn check_framing(bytes: &[u8], cuts: &[usize], limit: usize) -> Result<Vec<Frame>, TestCaseError> {
    let (expected, expected_pending, raw_lens) = model(bytes, limit);
    let (frames, pending) = frame_all(&chunks(bytes, cuts), limit)?;
    let got: Vec<ModelFrame> = frames
        .iter()
        .map(|f| match f {
            Frame::Line(line) => ModelFrame::Line(line.to_vec()),
            Frame::TooLong { .. } => ModelFrame::TooLong,
        })
        .collect();
    prop_assert_eq!(&got, &expected, "limit {}, cuts {:?}", limit, cuts);
    prop_assert_eq!(pending, expected_pending);
    // `len` is documented as a lower bound: more than the limit, at most the line's length.
    let too_long = frames.iter().filter_map(|f| match f {
        Frame::TooLong { len } => Some(*len),
        Frame::Line(_) => None,
    });
    for (len, raw_len) in too_long.zip(raw_lens) {
        prop_assert!(
            len > limit && len <= raw_len,
            "len {len}, limit {limit}, line {raw_len}"
        );
    }
    Ok(frames)
}

// ---------------------------------------------------------------------------------------------
// The decoders against each other.

/// A decoded line in a comparable form.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Object {
        event: ObjectEvent,
        name: String,
        namespace: Option<String>,
        resource_version: Option<String>,
    },
    Bookmark {
        resource_version: Option<String>,
        initial_events_end: bool,
    },
    Error {
        code: Option<i32>,
        reason: Option<String>,
        message: Option<String>,
    },
    UnknownType(String),
    Undecodable {
        type_name: String,
        resource_version: Option<String>,
        name: Option<String>,
        namespace: Option<String>,
    },
    Malformed,
}

fn outcome<K: Object>(decoded: &Decoded<K>) -> Outcome {
    match decoded {
        Decoded::Object { event, object } => Outcome::Object {
            event: *event,
            name: object.name().to_string(),
            namespace: object.namespace().map(str::to_string),
            resource_version: object.resource_version().map(str::to_string),
        },
        Decoded::Bookmark {
            resource_version,
            initial_events_end,
        } => Outcome::Bookmark {
            resource_version: resource_version.clone(),
            initial_events_end: *initial_events_end,
        },
        Decoded::Error(status) => Outcome::Error {
            code: status.code,
            reason: status.reason.clone(),
            message: status.message.clone(),
        },
        Decoded::UnknownType { type_name } => Outcome::UnknownType(type_name.clone()),
        Decoded::Undecodable {
            type_name,
            resource_version,
            name,
            namespace,
            ..
        } => Outcome::Undecodable {
            type_name: type_name.clone(),
            resource_version: resource_version.clone(),
            name: name.clone(),
            namespace: namespace.clone(),
        },
        Decoded::Malformed(_) => Outcome::Malformed,
    }
}

fn decode<K: DeserializeOwned + Object + 'static>(line: &Bytes) -> (Outcome, Decoded<K>) {
    let decoded = decode_line::<K>(line);
    (outcome(&decoded), decoded)
}

/// What each decoder made of one line.
#[derive(Debug, PartialEq)]
struct Decodings {
    dynamic: Outcome,
    pod: Outcome,
    config_map: Outcome,
    raw: Outcome,
}

/// Every decoder of the build (`Decoder::available`) makes of `line` exactly what serde_json
/// makes of it: the same objects field for field, the same errors, the same outcome.
fn check_decoders_agree<K: DeserializeOwned + fmt::Debug + 'static>(
    line: &Bytes,
) -> Result<(), TestCaseError> {
    let reference = format!(
        "{:?}",
        decode_line_reading::<K>(line, IdentityRead::Full, Decoder::SerdeJson)
    );
    for &decoder in Decoder::available() {
        let decoded = format!(
            "{:?}",
            decode_line_reading::<K>(line, IdentityRead::Full, decoder)
        );
        prop_assert_eq!(
            &decoded,
            &reference,
            "{} on {:?}",
            decoder.name(),
            String::from_utf8_lossy(line)
        );
    }
    Ok(())
}

/// A lazy object decodes later to the same object, or the same error, whatever the decoder.
fn check_raw_decoders_agree<K: DeserializeOwned + fmt::Debug>(raw: &RawObject) -> Result<(), TestCaseError> {
    let reference = format!("{:?}", raw.decode_with::<K>(Decoder::SerdeJson));
    for &decoder in Decoder::available() {
        let decoded = format!("{:?}", raw.decode_with::<K>(decoder));
        prop_assert_eq!(&decoded, &reference, "{}", decoder.name());
    }
    Ok(())
}

/// Decodes one line every way, and checks that the ways agree.
fn check_line(line: &Bytes) -> Result<Decodings, TestCaseError> {
    check_decoders_agree::<Pod>(line)?;
    check_decoders_agree::<ConfigMap>(line)?;
    check_decoders_agree::<DynamicObject>(line)?;
    let (dynamic, dynamic_object) = decode::<DynamicObject>(line);
    let (pod, _) = decode::<Pod>(line);
    let (config_map, _) = decode::<ConfigMap>(line);
    let (raw, raw_object) = decode::<RawObject>(line);

    // Events that carry no object decode the same whatever the object type.
    let kind_free = |o: &Outcome| {
        matches!(
            o,
            Outcome::Bookmark { .. } | Outcome::Error { .. } | Outcome::UnknownType(_)
        )
    };
    if kind_free(&dynamic) {
        prop_assert_eq!(&pod, &dynamic);
        prop_assert_eq!(&config_map, &dynamic);
        prop_assert_eq!(&raw, &dynamic);
    }
    // Whatever a typed decoder accepts, the dynamic one accepts with the same identity. Four known
    // exceptions, none of which an API server sends: an object nesting deeper than the JSON
    // parser's recursion limit (128) allows a `Value` to (the typed kinds skip unknown fields
    // without building them), a duplicated `metadata` key (the typed kinds keep the last one,
    // as Go does; serde's derive refuses it), and a lone UTF-16 surrogate escape (`"\ud800"`) in
    // a field the typed kinds skip (serde_json checks it only in a string it builds), or there a
    // number beyond a float's range (`1e400`: checked only in a number it builds).
    let dynamic_refuses = match &dynamic_object {
        Decoded::Undecodable { error, .. } | Decoded::Malformed(error) => {
            let error = error.to_string();
            error.contains("recursion limit")
                || error.contains("duplicate field")
                || error.contains("surrogate")
                || error.contains("hex escape")
                || error.contains("number out of range")
        }
        _ => false,
    };
    for typed in [&pod, &config_map] {
        if let Outcome::Object { .. } = typed
            && !dynamic_refuses
        {
            prop_assert_eq!(typed, &dynamic);
        }
        // An object that does not fit the type is not a broken line: the dynamic decoder takes it.
        if let Outcome::Undecodable { type_name, .. } = typed {
            prop_assert!(
                dynamic != Outcome::Malformed,
                "{} event undecodable as a type but malformed as dynamic",
                type_name
            );
        }
    }
    // The lazy form accepts every event the dynamic decoder accepts, and decodes to the same
    // object. It reads only up to the metadata, so an envelope with a duplicated `object` key
    // (never sent by an API server) is caught when the object is decoded, not before.
    if let Decoded::Object {
        object: dynamic_obj, ..
    } = &dynamic_object
    {
        let Decoded::Object { object: raw_obj, .. } = &raw_object else {
            return Err(TestCaseError::fail(format!(
                "dynamic {dynamic:?} but raw {raw:?}"
            )));
        };
        match raw_obj.decode::<DynamicObject>() {
            Ok(again) => {
                prop_assert_eq!(&raw, &dynamic);
                prop_assert_eq!(&again.metadata, &dynamic_obj.metadata);
                prop_assert_eq!(&again.data, &dynamic_obj.data);
                prop_assert_eq!(&again.types, &dynamic_obj.types);
                prop_assert!(raw_obj.json().is_ok());
            }
            Err(e) => prop_assert!(
                e.to_string().contains("duplicate field `object`"),
                "the raw object does not decode again: {}",
                e
            ),
        }
    }
    // The lazy form may accept a line whose object is broken after its metadata; decoding it
    // later must then fail cleanly (and never panic).
    if let Decoded::Object { object: raw_obj, .. } = &raw_object {
        check_raw_decoders_agree::<Pod>(raw_obj)?;
        check_raw_decoders_agree::<DynamicObject>(raw_obj)?;
        let _ = raw_obj.decode::<Pod>();
        let _ = raw_obj.json();
        let _ = format!("{raw_obj:?}");
    }
    Ok(Decodings {
        dynamic,
        pod,
        config_map,
        raw,
    })
}

/// The framer and every decoder over `bytes` cut at `cuts`: same frames as the model, and the
/// same decoded events as the stream in one chunk.
fn check_stream(bytes: &[u8], cuts: &[usize], limit: usize) -> Result<Vec<Option<Decodings>>, TestCaseError> {
    let frames = check_framing(bytes, cuts, limit)?;
    let whole = check_framing(bytes, &[], limit)?;
    let decode_all = |frames: &[Frame]| -> Result<Vec<Option<Decodings>>, TestCaseError> {
        frames
            .iter()
            .map(|f| match f {
                Frame::Line(line) => check_line(line).map(Some).map_err(|e| {
                    TestCaseError::fail(format!("line {:?}: {e}", String::from_utf8_lossy(line)))
                }),
                Frame::TooLong { .. } => Ok(None),
            })
            .collect()
    };
    // The frames are the same (both equal the model), and decoding depends on a line alone: the
    // events are the same however the stream was cut.
    prop_assert_eq!(frames.len(), whole.len());
    prop_assert_eq!(&frames, &whole_without_lengths(&whole, &frames));
    decode_all(&frames)
}

/// `whole` with each too-long length taken from `split` (the one part allowed to differ).
fn whole_without_lengths(whole: &[Frame], split: &[Frame]) -> Vec<Frame> {
    whole
        .iter()
        .zip(split)
        .map(|(w, s)| match (w, s) {
            (Frame::TooLong { .. }, Frame::TooLong { len }) => Frame::TooLong { len: *len },
            (w, _) => w.clone(),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Well-formed streams.

/// One line of a generated stream, and what it must decode to.
#[derive(Debug, Clone)]
enum Piece {
    /// An object event of the pod with a new identity.
    Pod {
        event: ObjectEvent,
        name: String,
        namespace: String,
        resource_version: String,
        object_first: bool,
    },
    /// The pod with `spec.containers` of the wrong type: not a `Pod`, but a fine dynamic object.
    MisfitPod {
        resource_version: String,
    },
    Bookmark {
        resource_version: String,
        initial_events_end: bool,
    },
    Error {
        code: i32,
        message: String,
    },
    Unknown(String),
    /// The start of a pod event, cut short.
    Truncated(usize),
    /// Anything without a newline.
    Garbage(Vec<u8>),
    Blank(String),
}

fn event_name(event: ObjectEvent) -> &'static str {
    match event {
        ObjectEvent::Added => "ADDED",
        ObjectEvent::Modified => "MODIFIED",
        ObjectEvent::Deleted => "DELETED",
    }
}

fn json_string(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn pod_with(name: &str, namespace: &str, resource_version: &str) -> Value {
    let mut pod = POD.clone();
    if let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("name".into(), name.into());
        meta.insert("namespace".into(), namespace.into());
        meta.insert("resourceVersion".into(), resource_version.into());
    }
    pod
}

fn pod_line(event: &str, pod: &Value, object_first: bool) -> String {
    if object_first {
        format!(r#"{{"object":{pod},"type":{}}}"#, json_string(event))
    } else {
        format!(r#"{{"type":{},"object":{pod}}}"#, json_string(event))
    }
}

impl Piece {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Piece::Pod {
                event,
                name,
                namespace,
                resource_version,
                object_first,
            } => pod_line(
                event_name(*event),
                &pod_with(name, namespace, resource_version),
                *object_first,
            )
            .into_bytes(),
            Piece::MisfitPod { resource_version } => {
                let mut pod = pod_with("misfit", "ns", resource_version);
                if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.insert("containers".into(), "nope".into());
                }
                pod_line("MODIFIED", &pod, false).into_bytes()
            }
            Piece::Bookmark {
                resource_version,
                initial_events_end,
            } => {
                let annotations = if *initial_events_end {
                    r#","annotations":{"k8s.io/initial-events-end":"true"}"#
                } else {
                    ""
                };
                format!(
                    r#"{{"type":"BOOKMARK","object":{{"kind":"Pod","apiVersion":"v1","metadata":{{"resourceVersion":{}{annotations}}},"spec":{{"containers":null}},"status":{{}}}}}}"#,
                    json_string(resource_version)
                )
                .into_bytes()
            }
            Piece::Error { code, message } => format!(
                r#"{{"type":"ERROR","object":{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":{},"reason":"Expired","code":{code}}}}}"#,
                json_string(message)
            )
            .into_bytes(),
            Piece::Unknown(type_name) => {
                format!(r#"{{"type":{},"object":{{"metadata":{{}}}}}}"#, json_string(type_name)).into_bytes()
            }
            Piece::Truncated(at) => {
                let line = pod_line("ADDED", &POD, false).into_bytes();
                // At least one byte: an empty line would be skipped as blank.
                let cut = at % line.len().saturating_sub(1).max(1) + 1;
                line.get(..cut).unwrap_or_default().to_vec()
            }
            Piece::Garbage(bytes) => bytes.clone(),
            Piece::Blank(s) => s.clone().into_bytes(),
        }
    }

    /// What the line must decode to, where that is known: (dynamic, pod, raw).
    fn expected(&self) -> Option<(Outcome, Outcome, Outcome)> {
        let same = |o: Outcome| Some((o.clone(), o.clone(), o));
        match self {
            Piece::Pod {
                event,
                name,
                namespace,
                resource_version,
                ..
            } => same(Outcome::Object {
                event: *event,
                name: name.clone(),
                namespace: Some(namespace.clone()),
                resource_version: Some(resource_version.clone()),
            }),
            Piece::MisfitPod { resource_version } => {
                let object = Outcome::Object {
                    event: ObjectEvent::Modified,
                    name: "misfit".into(),
                    namespace: Some("ns".into()),
                    resource_version: Some(resource_version.clone()),
                };
                let undecodable = Outcome::Undecodable {
                    type_name: "MODIFIED".into(),
                    resource_version: Some(resource_version.clone()),
                    name: Some("misfit".into()),
                    namespace: Some("ns".into()),
                };
                Some((object.clone(), undecodable, object))
            }
            Piece::Bookmark {
                resource_version,
                initial_events_end,
            } => same(Outcome::Bookmark {
                resource_version: Some(resource_version.clone()),
                initial_events_end: *initial_events_end,
            }),
            Piece::Error { code, message } => same(Outcome::Error {
                code: Some(*code),
                reason: Some("Expired".into()),
                message: Some(message.clone()),
            }),
            Piece::Unknown(type_name) => same(Outcome::UnknownType(type_name.clone())),
            // A cut JSON document is never an event for the eager decoders (the lazy one may
            // accept it if the cut is past the metadata; `check_line` covers that).
            Piece::Truncated(_) => Some((Outcome::Malformed, Outcome::Malformed, Outcome::Malformed)),
            Piece::Garbage(_) | Piece::Blank(_) => None,
        }
    }
}

fn arb_event() -> impl Strategy<Value = ObjectEvent> {
    prop_oneof![
        Just(ObjectEvent::Added),
        Just(ObjectEvent::Modified),
        Just(ObjectEvent::Deleted)
    ]
}

/// Names and versions: short printable text, quotes, backslashes, control characters, non-ASCII.
fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9][a-z0-9.-]{0,20}",
        "[0-9]{1,20}",
        any::<String>().prop_map(|s| s.chars().take(24).collect()),
        Just(String::new()),
    ]
}

/// Bytes that stress the framer and the JSON parser: newlines, CRs, braces, quotes, anything.
fn arb_stream_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => any::<u8>(),
        2 => Just(b'\n'),
        1 => Just(b'\r'),
        1 => Just(b' '),
        2 => prop::sample::select(b"{}[]\":,\\0123456789truefalsn".to_vec()),
    ]
}

fn arb_piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        6 => (arb_event(), arb_text(), arb_text(), arb_text(), any::<bool>()).prop_map(
            |(event, name, namespace, resource_version, object_first)| Piece::Pod {
                event,
                name,
                namespace,
                resource_version,
                object_first,
            }
        ),
        1 => arb_text().prop_map(|resource_version| Piece::MisfitPod { resource_version }),
        2 => (arb_text(), any::<bool>()).prop_map(|(resource_version, initial_events_end)| {
            Piece::Bookmark {
                resource_version,
                initial_events_end,
            }
        }),
        1 => (any::<i32>(), arb_text()).prop_map(|(code, message)| Piece::Error { code, message }),
        1 => arb_text()
            .prop_filter("a known type", |t| {
                !["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"].contains(&t.as_str())
            })
            .prop_map(Piece::Unknown),
        1 => any::<usize>().prop_map(Piece::Truncated),
        2 => prop::collection::vec(arb_stream_byte(), 1..200).prop_map(|bytes| {
            let mut bytes: Vec<u8> = bytes.into_iter().filter(|b| *b != b'\n' && *b != b'\r').collect();
            bytes.push(b'x');
            Piece::Garbage(bytes)
        }),
        1 => "[ \t]{0,4}".prop_map(Piece::Blank),
    ]
}

/// A stream of pieces, each ended by `\n` or `\r\n`, the last one possibly unfinished.
fn arb_pieces() -> impl Strategy<Value = (Vec<(Piece, bool)>, bool)> {
    (
        prop::collection::vec((arb_piece(), any::<bool>()), 0..10),
        any::<bool>(),
    )
}

fn join(pieces: &[(Piece, bool)], finished: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (piece, crlf)) in pieces.iter().enumerate() {
        out.extend(piece.bytes());
        if finished || i + 1 < pieces.len() {
            out.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
        }
    }
    out
}

/// Each finished, non-blank piece gives one frame (a line, or too long), decoded as expected; an
/// unfinished last piece gives one only when it is already too long.
fn check_pieces(
    pieces: &[(Piece, bool)],
    finished: bool,
    limit: usize,
    decodings: &[Option<Decodings>],
) -> Result<(), TestCaseError> {
    let lines = pieces
        .iter()
        .enumerate()
        .filter(|(i, _)| finished || i + 1 < pieces.len())
        .filter(|(_, (piece, _))| !matches!(piece, Piece::Blank(_)));
    let mut seen = 0;
    for ((_, (piece, _)), decoding) in lines.zip(decodings) {
        seen += 1;
        let (Some(decoding), Some((dynamic, pod, raw))) = (decoding, piece.expected()) else {
            continue;
        };
        prop_assert_eq!(&decoding.dynamic, &dynamic, "{:?}", piece);
        prop_assert_eq!(&decoding.pod, &pod, "{:?}", piece);
        if !matches!(piece, Piece::Truncated(_)) || decoding.raw == Outcome::Malformed {
            prop_assert_eq!(&decoding.raw, &raw, "{:?}", piece);
        }
    }
    let unfinished_too_long = !finished && pieces.last().is_some_and(|(p, _)| p.bytes().len() > limit);
    prop_assert_eq!(seen + usize::from(unfinished_too_long), decodings.len());
    Ok(())
}

fn pod_line_len() -> usize {
    pod_line("MODIFIED", &POD, false).len()
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary bytes, arbitrary chunks, small limits: the framer matches the model and the
    /// decoders never panic and agree.
    #[test]
    fn fuzz_watch_stream_arbitrary_bytes(
        bytes in prop::collection::vec(arb_stream_byte(), 0..512),
        cuts in prop::collection::vec(any::<usize>(), 0..24),
        limit in prop_oneof![1usize..8, 8usize..128, 128usize..4096],
    ) {
        check_stream(&bytes, &cuts, limit)?;
    }

    /// JSON-ish lines: short values that parse, nearly parse or almost look like events.
    #[test]
    fn fuzz_watch_stream_jsonish_lines(
        lines in prop::collection::vec(
            prop_oneof![
                r#"\{"type":"(ADDED|MODIFIED|DELETED|BOOKMARK|ERROR|X)","object":\{"metadata":\{("name":"[a-z]{0,3}",?)?("resourceVersion":"[0-9]{0,3}",?)?("namespace":(null|1|"n"))?\}(,"spec":(\{\}|\[\]|null|1))?\}\}"#,
                r#"\{"object":\{"kind":"(Pod|ConfigMap|Status)","metadata":(\{\}|null|\[\])\},"type":"(ADDED|BOOKMARK|ERROR)"\}"#,
                r#"\{("type":("ADDED"|1|null),?)?("object":(\{\}|\[\]|"x"|\{"metadata":\{"name":1\}\}),?)?("extra":[\[\]\{\}0-9,]{0,6})?\}"#,
                "[ -~]{0,40}",
            ],
            0..12,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..24),
        crlf in any::<bool>(),
    ) {
        let sep = if crlf { "\r\n" } else { "\n" };
        let bytes = lines.join(sep).into_bytes();
        check_stream(&bytes, &cuts, 4096)?;
    }

    /// Realistic streams (the pod, bookmarks, errors, unknown types, cut lines, garbage) cut
    /// anywhere, with a limit near the size of a pod event: every line decodes to what was written.
    #[test]
    fn fuzz_watch_stream_pod_events(
        (pieces, finished) in arb_pieces(),
        cuts in prop::collection::vec(any::<usize>(), 0..32),
        slack in -200isize..4000,
    ) {
        let limit = pod_line_len().saturating_add_signed(slack);
        let bytes = join(&pieces, finished);
        let decodings = check_stream(&bytes, &cuts, limit)?;
        check_pieces(&pieces, finished, limit, &decodings)?;
    }
}

/// JSON text for a value: numbers valid and not (leading zeros, out of range, many digits),
/// strings with every kind of escape (lone and paired surrogates among them), literals, and
/// arrays and objects of them (duplicate keys included).
fn arb_json_value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,4})?",
        r"-?0[0-9]{1,3}",
        any::<f64>().prop_map(|f| f.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<u64>().prop_map(|u| u.to_string()),
        r#""([a-z/<>&]|\\[nrtbf/\\"]|\\u[0-9a-fA-F]{4}|\\u[dD][89abAB][0-9a-fA-F]{2}(\\u[dD][c-fC-F][0-9a-fA-F]{2})?|\\x){0,8}""#,
        any::<String>().prop_map(|s| json_string(&s)),
        Just("true".to_string()),
        Just("false".to_string()),
        Just("null".to_string()),
    ];
    scalar.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec((prop_oneof!["[a-c]", Just("name".to_string())], inner), 0..6).prop_map(
                |fields| {
                    let fields: Vec<String> = fields
                        .iter()
                        .map(|(k, v)| format!("{}:{v}", json_string(k)))
                        .collect();
                    format!("{{{}}}", fields.join(","))
                }
            ),
        ]
    })
}

proptest! {
    #![proptest_config(config(256))]

    /// Objects whose fields hold arbitrary JSON values: every decoder of the build agrees with
    /// serde_json on each typed, dynamic and lazy decode, values and errors alike.
    #[test]
    fn fuzz_decoders_agree_on_arbitrary_values(
        data in arb_json_value(),
        spec in arb_json_value(),
        labels in arb_json_value(),
        event in prop_oneof![Just("ADDED"), Just("BOOKMARK"), Just("ERROR")],
    ) {
        let line = format!(
            r#"{{"type":"{event}","object":{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"a","resourceVersion":"1","labels":{labels}}},"data":{data},"spec":{spec}}}}}"#
        );
        check_line(&Bytes::from(line))?;
        let line = format!(r#"{{"type":"ADDED","object":{{"metadata":{{"name":"a"}},"data":{{"k":{data}}},"spec":{spec}}}}}"#);
        check_line(&Bytes::from(line))?;
    }
}

/// Split strategies for the corpus: one chunk, halves, a few strides, and (for small files)
/// every byte.
fn corpus_cuts(len: usize) -> Vec<Vec<usize>> {
    let stride = |n: usize| (n..len).step_by(n).collect::<Vec<_>>();
    let mut all = vec![vec![], vec![len / 2], stride(7), stride(61), stride(1024)];
    if len <= 16 * 1024 {
        all.extend([stride(1), stride(2), stride(3)]);
    }
    all
}

/// Every file of `tests/corpus/watch_stream/` through the framer and decoders, with several limits
/// and chunkings.
#[test]
fn fuzz_watch_stream_corpus_replays() -> Result<(), Box<dyn std::error::Error>> {
    let mut replayed = 0;
    for entry in std::fs::read_dir(corpus_dir("watch_stream"))? {
        let path = entry?.path();
        let bytes = std::fs::read(&path)?;
        for limit in [1, 16, 256, 4096, pod_line_len(), 1 << 20] {
            for cuts in corpus_cuts(bytes.len()) {
                check_stream(&bytes, &cuts, limit)
                    .map_err(|e| format!("{}: limit {limit}: {e}", path.display()))?;
            }
        }
        replayed += 1;
    }
    assert!(replayed >= 10, "only {replayed} corpus files");
    Ok(())
}

/// The generated pod stream itself is sound: the pod decodes as a `Pod`, so the pod property
/// exercises the success path and not only errors.
#[test]
fn fuzz_watch_stream_seed_pod_decodes() -> Result<(), Box<dyn std::error::Error>> {
    let line = Bytes::from(pod_line("ADDED", &pod_with("p", "n", "7"), false));
    let decodings = check_line(&line).map_err(|e| e.to_string())?;
    let expected = Outcome::Object {
        event: ObjectEvent::Added,
        name: "p".into(),
        namespace: Some("n".into()),
        resource_version: Some("7".into()),
    };
    assert_eq!(decodings.pod, expected);
    assert_eq!(decodings.raw, expected);
    assert_eq!(decodings.dynamic, expected);
    Ok(())
}
