//! Which JSON parser builds typed objects out of watch events and [`RawObject`](crate::RawObject)s.
//!
//! Decoding a typed object is most of what a typed watcher costs. `serde_json` is always there;
//! the `simd-json` (on by default) and `sonic-rs` cargo features add parsers that build the same
//! objects faster (`BENCHMARKS.md`, issue 22). A faster parser is only ever a shortcut: any line
//! it refuses, and any line it might read differently (nesting deeper than [`MAX_FAST_DEPTH`], raw
//! control bytes, the number `-0`), is decoded by `serde_json`, so results and errors are
//! `serde_json`'s. The lazy form's identity read stays on `serde_json` (it stops early, which the
//! others cannot).

#[cfg(feature = "simd-json")]
use std::cell::RefCell;

use serde::de::DeserializeOwned;

#[cfg(any(feature = "simd-json", feature = "sonic-rs"))]
use guard::shallow_and_clean;

/// Deepest nesting of arrays and objects a faster parser is given: well under `serde_json`'s
/// recursion limit (128), so the parsers cannot disagree on it, and no deeper than any parser's
/// recursion into a `Value` can go without exhausting a thread's stack (simd-json has no limit).
pub const MAX_FAST_DEPTH: usize = 100;

/// The parser that builds typed objects (not the lazy form's identity read, always `serde_json`).
///
/// The default is the fastest this build has: simd-json with the `simd-json` feature (a default
/// feature), else sonic-rs with the `sonic-rs` feature, else `serde_json`. Whichever is chosen, a
/// line it refuses is decoded again by `serde_json`, so the objects and the errors are the same;
/// only the time differs.
///
/// ```
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use kazan::Decoder;
///
/// let json = br#"{"metadata":{"name":"a"},"data":{"k":"v"}}"#;
/// for decoder in Decoder::available() {
///     let cm: ConfigMap = decoder.from_slice(json)?;
///     assert_eq!(cm.data.unwrap()["k"], "v");
/// }
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Decoder {
    /// `serde_json`: always available; the reference the others must agree with.
    SerdeJson,
    /// simd-json (serde mode), on a copy of the line in a reusable per-thread buffer.
    #[cfg(feature = "simd-json")]
    SimdJson,
    /// sonic-rs, straight from the line.
    #[cfg(feature = "sonic-rs")]
    SonicRs,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::FASTEST
    }
}

/// Every decoder of this build, `serde_json` first.
const AVAILABLE: &[Decoder] = &[
    Decoder::SerdeJson,
    #[cfg(feature = "simd-json")]
    Decoder::SimdJson,
    #[cfg(feature = "sonic-rs")]
    Decoder::SonicRs,
];

impl Decoder {
    /// The fastest decoder of this build (the default), by the benchmark's measurements.
    #[cfg(feature = "simd-json")]
    pub const FASTEST: Decoder = Decoder::SimdJson;
    /// The fastest decoder of this build (the default), by the benchmark's measurements.
    #[cfg(all(not(feature = "simd-json"), feature = "sonic-rs"))]
    pub const FASTEST: Decoder = Decoder::SonicRs;
    /// The fastest decoder of this build (the default), by the benchmark's measurements.
    #[cfg(not(any(feature = "simd-json", feature = "sonic-rs")))]
    pub const FASTEST: Decoder = Decoder::SerdeJson;

    /// Every decoder of this build, `serde_json` first: what a benchmark compares.
    pub fn available() -> &'static [Decoder] {
        AVAILABLE
    }

    /// The parser's crate name (`serde_json`, `simd-json`, `sonic-rs`), as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            Decoder::SerdeJson => "serde_json",
            #[cfg(feature = "simd-json")]
            Decoder::SimdJson => "simd-json",
            #[cfg(feature = "sonic-rs")]
            Decoder::SonicRs => "sonic-rs",
        }
    }

    /// The decoder named `name` (as [`name`](Self::name) spells it), if this build has it.
    pub fn from_name(name: &str) -> Option<Decoder> {
        AVAILABLE.iter().copied().find(|d| d.name() == name)
    }

    /// Decodes one JSON document into `T`. A document this decoder refuses, or might read
    /// differently, is decoded by `serde_json`, whose error it returns.
    pub fn from_slice<T: DeserializeOwned>(self, json: &[u8]) -> Result<T, serde_json::Error> {
        match self.fast(json) {
            Some(value) => Ok(value),
            None => match std::str::from_utf8(json) {
                Ok(text) => serde_json::from_str(text),
                Err(_) => serde_json::from_slice(json),
            },
        }
    }

    /// `T` out of `json` by this decoder when it is not `serde_json` and the document is one the
    /// parsers cannot read differently; `None` leaves it to `serde_json` (and its errors).
    pub(crate) fn fast<T: DeserializeOwned>(self, json: &[u8]) -> Option<T> {
        #[cfg(not(any(feature = "simd-json", feature = "sonic-rs")))]
        let _ = json;
        match self {
            Decoder::SerdeJson => None,
            #[cfg(feature = "simd-json")]
            Decoder::SimdJson => shallow_and_clean(json).then(|| simd_json_decode(json)).flatten(),
            #[cfg(feature = "sonic-rs")]
            Decoder::SonicRs => shallow_and_clean(json)
                .then(|| sonic_rs::from_slice(json).ok())
                .flatten(),
        }
    }
}

/// What keeps a faster parser to the documents it reads as serde_json does.
#[cfg(any(feature = "simd-json", feature = "sonic-rs"))]
mod guard {
    use super::MAX_FAST_DEPTH;

    /// Whether a faster parser may decode `json`: it nests no deeper than [`MAX_FAST_DEPTH`], holds
    /// no byte below 0x20 (JSON's whitespace between tokens included: the parsers differ on raw
    /// control bytes in strings, and compact JSON, as the API server writes it, has none), and no
    /// number `-0`. Counting brackets is a vectorised pass and bounds the depth; only documents
    /// with more brackets than that are walked exactly.
    ///
    /// simd-json 0.15 also needed lone surrogate escapes (read as a NUL) and numbers of 16
    /// characters or more (floats of 19 digits misread) kept from it; 0.19 refuses the first and
    /// the integers it cannot hold, which serde_json then decodes, and reads the floats right: the
    /// differential fuzz (`fuzz_decoders_agree_on_arbitrary_values`, 20,000 cases) agrees
    /// without those two checks, which took two thirds of the guard's time on a pod (0.63 of
    /// 0.97 µs a line, in a loop over 200 distinct pod lines held in cache).
    pub(super) fn shallow_and_clean(json: &[u8]) -> bool {
        let (control, brackets) = control_bytes_and_brackets(json);
        if control || has_negative_zero(json) {
            return false;
        }
        brackets <= MAX_FAST_DEPTH || depth_at_most(json, MAX_FAST_DEPTH)
    }

    /// Whether `json` has a byte below 0x20, and how many `{` and `[`, in one pass without early
    /// exits, in blocks whose counts fit a byte, so that the compiler vectorises it (a per-byte
    /// `any` was a sixth of the Stream form's CPU in `perf`).
    fn control_bytes_and_brackets(json: &[u8]) -> (bool, usize) {
        let mut control = false;
        let mut brackets = 0usize;
        for block in json.chunks(255) {
            let (c, n) = block.iter().fold((0u8, 0u8), |(c, n), &b| {
                (
                    c | u8::from(b < 0x20),
                    n.wrapping_add(u8::from(b == b'{' || b == b'[')),
                )
            });
            control |= c != 0;
            brackets += usize::from(n);
        }
        (control, brackets)
    }

    /// Whether `json` holds a number that starts `-0` (`-0`, `-0.0`, `-0e0`, `-0.5`...), or what looks
    /// like one inside a string. serde_json reads `-0` as the float -0.0, which no integer field
    /// takes, where simd-json reads the integer 0, and sonic-rs loses the sign of `-0e0`; such numbers
    /// are rare enough to leave to serde_json. (`-0` followed by a quote or a digit, as in the names
    /// `web-0` or dates, is no number.)
    fn has_negative_zero(json: &[u8]) -> bool {
        memchr::memmem::find_iter(json, b"-0").any(|at| {
            matches!(
                json.get(at + 2),
                None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n' | b'.' | b'e' | b'E')
            )
        })
    }

    /// Whether the nesting of arrays and objects outside strings stays within `limit`. On broken JSON
    /// the answer does not matter: the parsers refuse it and `serde_json` decides.
    pub(super) fn depth_at_most(json: &[u8], limit: usize) -> bool {
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        for &b in json {
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => {
                    depth += 1;
                    if depth > limit {
                        return false;
                    }
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        true
    }
}

/// What simd-json reuses from line to line on a thread: the padded copy of the line (it parses in
/// place; the event's bytes are shared and immutable), its working buffers, and the tape's nodes.
#[cfg(feature = "simd-json")]
struct SimdJsonScratch {
    copy: Vec<u8>,
    buffers: simd_json::Buffers,
    nodes: Vec<simd_json::Node<'static>>,
}

#[cfg(feature = "simd-json")]
impl SimdJsonScratch {
    fn new(len: usize) -> Self {
        SimdJsonScratch {
            copy: Vec::new(),
            buffers: simd_json::Buffers::new(len),
            nodes: Vec::new(),
        }
    }

    /// Copies `json` into the padded buffer, parses it into the tape and gives the tape to `then`,
    /// which gives it back; `None` when simd-json refuses the document. The copy is padded here,
    /// so simd-json does not copy the line again into a padded buffer of its own, and the tape's
    /// allocation is kept for the next line.
    fn parse<R>(
        &mut self,
        json: &[u8],
        then: impl for<'de> FnOnce(simd_json::Tape<'de>) -> (R, simd_json::Tape<'de>),
    ) -> Option<R> {
        let SimdJsonScratch { copy, buffers, nodes } = self;
        copy.clear();
        copy.extend_from_slice(json);
        copy.resize(json.len() + simd_json::INPUT_PADDING, b' ');
        let mut tape = simd_json::Tape(std::mem::take(nodes));
        let (result, tape) = match simd_json::fill_tape_padded(copy, json.len(), buffers, &mut tape) {
            Ok(()) => {
                let (result, tape) = then(tape);
                (Some(result), tape)
            }
            Err(_) => (None, tape),
        };
        // A tape of a big document is not kept: its nodes take six times the document's size.
        if tape.0.capacity() <= KEPT_TAPE_NODES {
            *nodes = tape.reset().0;
        }
        result
    }
}

/// The most nodes of a tape kept on a thread for the next line (some 400 KiB; a pod's tape has
/// about 450).
#[cfg(feature = "simd-json")]
const KEPT_TAPE_NODES: usize = 16 * 1024;

/// A line longer than this is parsed in fresh buffers, which are then freed, so that one huge
/// object does not keep its size allocated on the thread.
#[cfg(feature = "simd-json")]
const KEPT_BUFFER_BYTES: usize = 1024 * 1024;

#[cfg(feature = "simd-json")]
thread_local! {
    static SIMD_JSON_SCRATCH: RefCell<SimdJsonScratch> = RefCell::new(SimdJsonScratch::new(0));
}

/// Runs `parse` with this thread's simd-json scratch, or fresh buffers for a huge line or when the
/// scratch is in use (only if a `Deserialize` impl decoded with kazan from inside a decode).
#[cfg(feature = "simd-json")]
fn with_simd_json_scratch<R>(json: &[u8], parse: impl FnOnce(&mut SimdJsonScratch) -> R) -> Option<R> {
    if json.len() > KEPT_BUFFER_BYTES {
        return Some(parse(&mut SimdJsonScratch::new(json.len())));
    }
    SIMD_JSON_SCRATCH
        .try_with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => parse(&mut scratch),
            Err(_) => parse(&mut SimdJsonScratch::new(json.len())),
        })
        .ok()
}

#[cfg(feature = "simd-json")]
fn simd_json_decode<T: DeserializeOwned>(json: &[u8]) -> Option<T> {
    with_simd_json_scratch(json, |scratch| {
        scratch.parse(json, |tape| {
            let mut deserializer = simd_json::Deserializer::from_tape(tape);
            let value = T::deserialize(&mut deserializer).ok();
            (value, deserializer.into_tape())
        })
    })
    .flatten()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(any(feature = "simd-json", feature = "sonic-rs"))]
    use super::guard::depth_at_most;

    #[cfg(any(feature = "simd-json", feature = "sonic-rs"))]
    #[test]
    fn depth_is_counted_outside_strings_only() {
        assert!(depth_at_most(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(!depth_at_most(br#"{"a":[1,{"b":2}]}"#, 2));
        assert!(depth_at_most(br#"{"a":"[[[[{{{{\"[[["}"#, 1));
        assert!(!depth_at_most(br#"{"a":"\\","b":[[]]}"#, 2));
    }

    #[cfg(any(feature = "simd-json", feature = "sonic-rs"))]
    #[test]
    fn deep_or_raw_control_bytes_go_to_serde_json() {
        let deep = format!(
            "{}1{}",
            "[".repeat(MAX_FAST_DEPTH + 1),
            "]".repeat(MAX_FAST_DEPTH + 1)
        );
        assert!(!shallow_and_clean(deep.as_bytes()));
        let just = format!("{}1{}", "[".repeat(MAX_FAST_DEPTH), "]".repeat(MAX_FAST_DEPTH));
        assert!(shallow_and_clean(just.as_bytes()));
        // Many brackets side by side are not deep.
        let wide = format!("[{}1]", "[],".repeat(3 * MAX_FAST_DEPTH));
        assert!(shallow_and_clean(wide.as_bytes()));
        assert!(!shallow_and_clean(b"{\"a\":\"x\x01\"}"));
        assert!(!shallow_and_clean(b"{\"a\":\t1}"));
        assert!(!shallow_and_clean(br#"{"a":-0}"#));
        assert!(!shallow_and_clean(br#"[1,-0,2]"#));
        assert!(!shallow_and_clean(br#"{"a":-0e0}"#));
        // Digits inside a string, as in a container id, are no number.
        let id = format!(r#"{{"containerID":"containerd://{}"}}"#, "0".repeat(64));
        assert!(shallow_and_clean(id.as_bytes()));
        assert!(!shallow_and_clean(br#"{"a":-0.0}"#));
        assert!(shallow_and_clean(
            br#"{"a":"web-0","t":"2024-01-05","b":-1.5,"c":-10}"#
        ));
        assert!(shallow_and_clean(br#"{"a":"\u00e9\u2028\uE000\u0026"}"#));
    }

    /// What simd-json 0.15 read differently from serde_json and the guard once kept from it (lone
    /// surrogates, long floats and integers): every decoder now gives serde_json's value, or its
    /// error.
    #[test]
    fn numbers_and_surrogates_the_guard_no_longer_holds_back_decode_as_serde_json_does() {
        let lines: [&[u8]; 9] = [
            br#"{"a":"\ud800"}"#,
            br#"{"a":"x\uDBFF\uDC00"}"#,
            br#"{"a":"\uDBFF\uDFFF\ud83d\ude00"}"#,
            br#"{"a":185.00000000000000000}"#,
            br#"[1,12345678901234567,0.1000000000000000055511151231257827]"#,
            br#"{"a": 12345678901234567}"#,
            br#"[12345678901234567890123]"#,
            br#"[18446744073709551616,-9223372036854775809]"#,
            br#"[1.7976931348623157e308,5e-324,123456789.12345678901234567890e-5]"#,
        ];
        for line in lines {
            let expected = serde_json::from_slice::<serde_json::Value>(line).ok();
            for decoder in Decoder::available() {
                let got = decoder.from_slice::<serde_json::Value>(line).ok();
                assert_eq!(
                    got,
                    expected,
                    "{} on {}",
                    decoder.name(),
                    String::from_utf8_lossy(line)
                );
            }
        }
    }

    /// The guards let an API server's pod through (compact JSON, as it writes it): the faster
    /// parser is used, not only serde_json.
    #[cfg(any(feature = "simd-json", feature = "sonic-rs"))]
    #[test]
    fn an_api_servers_pod_is_left_to_the_faster_parser() -> Result<(), serde_json::Error> {
        let pod: serde_json::Value = serde_json::from_str(include_str!("../tests/corpus/pod.json"))?;
        let line = format!(r#"{{"type":"ADDED","object":{pod}}}"#);
        assert!(shallow_and_clean(line.as_bytes()));
        Ok(())
    }

    /// Bytes that are not UTF-8 never become a `String`, whichever parser reads them: every
    /// decoder refuses them (simd-json 0.15's fallback for CPUs without AVX2 or SSE4.2 did not
    /// check, upstream #445, hence 0.18 or later).
    #[test]
    fn bytes_that_are_not_utf8_are_refused_by_every_decoder() {
        let lines: [&[u8]; 4] = [
            b"{\"a\":\"\xff\"}",
            b"{\"a\":\"ok\xc3\"}",
            b"{\"a\":\"\xed\xa0\x80\"}",
            b"{\"\xc0\xaf\":\"b\"}",
        ];
        for decoder in Decoder::available() {
            for line in lines {
                let decoded = decoder.from_slice::<std::collections::BTreeMap<String, String>>(line);
                assert!(decoded.is_err(), "{} took {line:?}: {decoded:?}", decoder.name());
            }
        }
    }

    /// simd-json's buffers and tape are reused from line to line on a thread: a long document,
    /// then one it refuses, then a short one each decode as serde_json decodes them, nothing of
    /// one left in the next.
    #[test]
    fn documents_in_a_row_share_the_buffers_and_decode_alone() {
        let long = format!(
            r#"{{"items":[{}]}}"#,
            vec![r#"{"a":"x\ny","b":[1,2.5,null]}"#; 500].join(",")
        );
        let docs: [&[u8]; 4] = [
            long.as_bytes(),
            br#"{"items":[{"a":"#,
            br#"{"items":[]}"#,
            br#"{"z":"\u00e9"}"#,
        ];
        for decoder in Decoder::available() {
            for doc in docs {
                let expected = serde_json::from_slice::<serde_json::Value>(doc).ok();
                let got = decoder.from_slice::<serde_json::Value>(doc).ok();
                assert_eq!(
                    got,
                    expected,
                    "{} on {}",
                    decoder.name(),
                    String::from_utf8_lossy(doc)
                );
            }
        }
    }

    /// The tape of a big document is not kept on the thread; a pod's is.
    #[cfg(feature = "simd-json")]
    #[test]
    fn only_a_small_tape_is_kept_for_the_next_line() -> Result<(), serde_json::Error> {
        let kept = || SIMD_JSON_SCRATCH.with(|scratch| scratch.borrow().nodes.capacity());
        let big = format!("[{}]", vec!["1"; 2 * KEPT_TAPE_NODES].join(","));
        let _: Vec<u32> = Decoder::SimdJson.from_slice(big.as_bytes())?;
        assert!(kept() <= KEPT_TAPE_NODES, "{} nodes kept", kept());
        let pod: serde_json::Value = serde_json::from_str(include_str!("../tests/corpus/pod.json"))?;
        let _: serde_json::Value = Decoder::SimdJson.from_slice(pod.to_string().as_bytes())?;
        assert!(kept() > 0, "the pod's tape was not kept");
        Ok(())
    }

    #[test]
    fn every_decoder_by_its_name() {
        for decoder in Decoder::available() {
            assert_eq!(Decoder::from_name(decoder.name()), Some(*decoder));
        }
        assert_eq!(Decoder::available().first(), Some(&Decoder::SerdeJson));
        assert_eq!(Decoder::from_name("nope"), None);
    }
}
