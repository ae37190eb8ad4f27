//! A simd-json tape that owns its strings, so that a line can be parsed on one thread and its
//! object built on another (issue 22's pipeline).
//!
//! simd-json parses in two stages (the structural index, then a tape of nodes with strings
//! unescaped and numbers read) and builds a typed object from the tape. The stages allocate
//! nothing the object keeps; building does (every `String`, `Vec` and map of a `Pod`). The spawned
//! watcher runs the stages on its task and the handle's `recv` builds the object from the tape,
//! on the consumer's thread, where the object is also dropped: glibc frees an object dearly on a
//! thread other than the one that built it. simd-json's own tape borrows the line it was parsed
//! from; this one copies the strings into one `String` so that it can travel.

#[cfg(feature = "simd-json")]
pub(crate) use parsed::OwnedTape;

/// Without simd-json there is no tape: nothing is parsed ahead.
#[cfg(not(feature = "simd-json"))]
#[derive(Clone, Debug)]
pub(crate) enum OwnedTape {}

#[cfg(not(feature = "simd-json"))]
impl OwnedTape {
    pub(crate) fn parse(_json: &[u8]) -> Option<OwnedTape> {
        None
    }

    pub(crate) fn decode<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        match *self {}
    }
}

#[cfg(feature = "simd-json")]
mod parsed {
    use std::{cell::RefCell, sync::Mutex};

    use serde::de::DeserializeOwned;
    use simd_json::{Deserializer, Node, StaticNode, Tape};

    /// One node of the tape, its string (if any) a range of [`OwnedTape::strings`].
    #[derive(Clone, Copy, Debug)]
    enum Slot {
        Str { start: u32, end: u32 },
        Static(StaticNode),
        Array { len: u32, count: u32 },
        Object { len: u32, count: u32 },
    }

    /// A parsed JSON document: simd-json's tape, with its strings in one owned `String`. Its
    /// buffers go back to [`SPARE`] when it is dropped, for the next line parsed.
    pub(crate) struct OwnedTape {
        slots: Vec<Slot>,
        strings: String,
    }

    impl Clone for OwnedTape {
        fn clone(&self) -> Self {
            OwnedTape {
                slots: self.slots.clone(),
                strings: self.strings.clone(),
            }
        }
    }

    /// Buffers of tapes already decoded, given back to be parsed into again. A tape is parsed on
    /// the watcher's task and dropped on the consumer's thread; glibc frees a block on a thread
    /// other than the one that allocated it by taking the other thread's arena lock, and the two
    /// threads then wait on each other (`perf`: a tenth of the CPU in futex waits and wakes). Reused
    /// buffers are never freed, so never across threads. Shared by every watcher of the process.
    static SPARE: Mutex<Vec<(Vec<Slot>, String)>> = Mutex::new(Vec::new());

    /// How many spare buffers are kept: about as many tapes as two handles' channels hold at the
    /// default capacity (100), some 2 MiB for pods.
    const SPARE_TAPES: usize = 200;

    /// Buffers larger than this (a tape of some 4,000 nodes) are freed, not kept.
    const SPARE_SLOTS: usize = 4096;

    impl Drop for OwnedTape {
        fn drop(&mut self) {
            if self.slots.capacity() > SPARE_SLOTS {
                return;
            }
            let (mut slots, mut strings) =
                (std::mem::take(&mut self.slots), std::mem::take(&mut self.strings));
            if let Ok(mut spare) = SPARE.lock()
                && spare.len() < SPARE_TAPES
            {
                slots.clear();
                strings.clear();
                spare.push((slots, strings));
            }
        }
    }

    impl std::fmt::Debug for OwnedTape {
        // The strings are left out: they may be a Secret's.
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("OwnedTape")
                .field("nodes", &self.slots.len())
                .field("string_bytes", &self.strings.len())
                .finish()
        }
    }

    thread_local! {
        /// The nodes a tape is rebuilt into to be decoded, reused.
        static DECODE_NODES: RefCell<Vec<Node<'static>>> = const { RefCell::new(Vec::new()) };
    }

    impl OwnedTape {
        /// Parses `json`, or `None` when simd-json may not read it as serde_json does (the
        /// decoder's guard) or refuses it: the object is then decoded from the line as before.
        pub(crate) fn parse(json: &[u8]) -> Option<OwnedTape> {
            if !crate::decoder::shallow_and_clean(json) || u32::try_from(json.len()).is_err() {
                return None;
            }
            crate::decoder::with_simd_json_scratch(json, |scratch| {
                scratch.parse(json, |tape| (own(&tape.0), tape)).flatten()
            })
            .flatten()
        }

        /// Builds `T` from the tape; `None` if it does not fit `T` (serde_json then decodes the
        /// line, for its error).
        pub(crate) fn decode<T: DeserializeOwned>(&self) -> Option<T> {
            DECODE_NODES
                .try_with(|kept| match kept.try_borrow_mut() {
                    Ok(mut kept) => {
                        let (value, nodes) = self.decode_into(std::mem::take(&mut *kept));
                        *kept = nodes;
                        value
                    }
                    Err(_) => self.decode_into(Vec::new()).0,
                })
                .ok()
                .flatten()
        }

        /// Decodes `T` with `nodes` as the rebuilt tape; gives the nodes' allocation back.
        fn decode_into<T: DeserializeOwned>(
            &self,
            nodes: Vec<Node<'static>>,
        ) -> (Option<T>, Vec<Node<'static>>) {
            let mut tape: Tape<'_> = Tape(nodes).reset();
            tape.0.reserve(self.slots.len());
            for slot in self.slots.iter() {
                let node = match *slot {
                    Slot::Str { start, end } => match self.strings.get(start as usize..end as usize) {
                        Some(s) => Node::String(s),
                        None => return (None, tape.reset().0),
                    },
                    Slot::Static(value) => Node::Static(value),
                    Slot::Array { len, count } => Node::Array {
                        len: len as usize,
                        count: count as usize,
                    },
                    Slot::Object { len, count } => Node::Object {
                        len: len as usize,
                        count: count as usize,
                    },
                };
                tape.0.push(node);
            }
            let mut deserializer = Deserializer::from_tape(tape);
            let value = T::deserialize(&mut deserializer).ok();
            (value, deserializer.into_tape().reset().0)
        }
    }

    /// The tape with its strings copied into one `String`, in spare buffers if there are any.
    fn own(nodes: &[Node<'_>]) -> Option<OwnedTape> {
        let (mut slots, mut strings) = SPARE
            .lock()
            .ok()
            .and_then(|mut spare| spare.pop())
            .unwrap_or_default();
        slots.reserve(nodes.len());
        for node in nodes {
            slots.push(match *node {
                Node::String(s) => {
                    let start = u32::try_from(strings.len()).ok()?;
                    strings.push_str(s);
                    let end = u32::try_from(strings.len()).ok()?;
                    Slot::Str { start, end }
                }
                Node::Static(value) => Slot::Static(value),
                Node::Array { len, count } => Slot::Array {
                    len: u32::try_from(len).ok()?,
                    count: u32::try_from(count).ok()?,
                },
                Node::Object { len, count } => Slot::Object {
                    len: u32::try_from(len).ok()?,
                    count: u32::try_from(count).ok()?,
                },
            });
        }
        Some(OwnedTape { slots, strings })
    }

    #[cfg(test)]
    mod tests {
        use std::collections::BTreeMap;

        use k8s_openapi::api::core::v1::Pod;

        use super::*;

        /// A tape parsed on one thread decodes on another into what serde_json decodes.
        #[test]
        fn a_tape_parsed_on_one_thread_decodes_on_another_as_serde_json_does()
        -> Result<(), Box<dyn std::error::Error>> {
            let pod: serde_json::Value = serde_json::from_str(include_str!("../tests/corpus/pod.json"))?;
            let line = format!(r#"{{"type":"MODIFIED","object":{pod}}}"#);
            #[derive(serde::Deserialize, Debug, PartialEq)]
            struct Line {
                #[serde(rename = "type")]
                type_: String,
                object: Pod,
            }
            let tape = OwnedTape::parse(line.as_bytes()).ok_or("the pod was not parsed")?;
            let decoded = std::thread::spawn(move || tape.decode::<Line>())
                .join()
                .map_err(|_| "the decoding thread panicked")?
                .ok_or("the tape did not decode")?;
            assert_eq!(decoded, serde_json::from_str::<Line>(&line)?);
            Ok(())
        }

        #[test]
        fn escapes_numbers_and_nesting_come_through() {
            let lines: [&[u8]; 5] = [
                br#"{"a":"line\nbreak \u00e9\ud83d\ude00 \"q\"","b":[1,-2,3.5,1e300,null,true,false],"c":{}}"#,
                br#"[[],[[]],{"x":{"y":[{"z":"w"}]}}]"#,
                br#""just a string""#,
                br#"18446744073709551615"#,
                br#"{"":"","k":"\\"}"#,
            ];
            for line in lines {
                let tape = OwnedTape::parse(line);
                let decoded = tape.and_then(|t| t.decode::<serde_json::Value>());
                let expected = serde_json::from_slice::<serde_json::Value>(line).ok();
                assert_eq!(decoded, expected, "{}", String::from_utf8_lossy(line));
            }
        }

        /// What simd-json refuses, or may read differently, is not parsed ahead; what parses but
        /// does not fit the type does not decode.
        #[test]
        fn refused_or_unfit_documents_give_nothing() {
            for line in [
                &br#"{"a":"#[..],
                b"{\"a\":\"\xff\"}",
                br#"{"a":-0}"#,
                b"{\"a\":\"x\x01\"}",
            ] {
                assert!(
                    OwnedTape::parse(line).is_none(),
                    "{}",
                    String::from_utf8_lossy(line)
                );
            }
            let tape = OwnedTape::parse(br#"{"a":1}"#);
            assert!(tape.is_some());
            assert_eq!(tape.and_then(|t| t.decode::<BTreeMap<String, String>>()), None);
        }
    }
}
