//! The decode bound: the same bytes a watcher would receive, already in memory, split into lines
//! and decoded into `{type, object: Pod}` by one parser (serde_json, simd-json or sonic-rs), used
//! bare, as its documentation advises. No I/O, no runtime machinery: what any watcher that decodes
//! the whole typed object with that parser would cost if the network were free. The targets are
//! judged against the best parser's bound.

use k8s_openapi::api::core::v1::Pod;
use kazan::Decoder;
use serde::Deserialize;

use crate::{
    error::{BenchError, ConsumeError},
    events::{DEFAULT_POD, EventSet},
    job::Job,
    sink::{Flow, Sink},
};

/// One watch event as a plain struct (not k8s-openapi's `WatchEvent`, whose tagged enum costs more).
#[derive(Deserialize)]
struct WatchLine {
    #[serde(rename = "type")]
    type_: String,
    object: Pod,
}

/// Builds the job's events in memory (not measured), then splits and decodes them (measured).
pub async fn consume(
    job: &Job,
    sink: &mut Sink,
    decoder: Decoder,
    pipelined: bool,
) -> Result<(), ConsumeError> {
    let pod = match &job.pod {
        Some(path) => std::fs::read_to_string(path).map_err(|source| BenchError::File {
            path: path.clone(),
            source,
        })?,
        None => DEFAULT_POD.to_owned(),
    };
    let events = EventSet::build(&pod, job.events, job.first_rv)?;
    let bytes = events.bytes();
    if pipelined {
        return consume_pipelined(bytes.to_vec(), sink);
    }

    let mut parser = Parser::new(decoder);
    sink.start();
    let mut start = 0;
    for (index, end) in (0u64..).zip(memchr::memchr_iter(b'\n', bytes)) {
        let line = bytes.get(start..end).unwrap_or_default();
        start = end + 1;
        let event = parser
            .decode(line)
            .map_err(|reason| ConsumeError::DecodeBound { index, reason })?;
        if !matches!(event.type_.as_str(), "ADDED" | "MODIFIED" | "DELETED") {
            return Err(ConsumeError::UnexpectedType {
                index,
                event_type: event.type_,
            });
        }
        if sink
            .event(0, event.object.metadata.resource_version.as_deref())
            .await?
            == Flow::Done
        {
            return Ok(());
        }
    }
    Err(sink.ended_early())
}

/// How many parsed lines the parsing thread of the pipelined bound may be ahead of the builder.
const PIPELINE_DEPTH: usize = 256;

/// simd-json split over two threads, as a pipeline that frees on the thread that allocates would
/// split it (issue 22): a parsing thread runs simd-json's stages 1 and 2 on each line (structural
/// index, then the tape: strings unescaped in place, numbers parsed), which allocate nothing the
/// consumer keeps; this thread builds the `Pod` from the tape (every `String`, `Vec` and map) and
/// drops it. Only the tape crosses threads (one allocation per event, freed here). The lines are
/// copied once, before the clock starts, into the buffer simd-json parses in place.
fn consume_pipelined(mut bytes: Vec<u8>, sink: &mut Sink) -> Result<(), ConsumeError> {
    let runtime = tokio::runtime::Handle::current();
    let lines: &mut [u8] = &mut bytes;
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel(PIPELINE_DEPTH);
            sink.start();
            scope.spawn(move || {
                let mut buffers = simd_json::Buffers::default();
                let mut rest = lines;
                while let Some(end) = memchr::memchr(b'\n', rest) {
                    let (line, tail) = std::mem::take(&mut rest).split_at_mut(end);
                    rest = tail.get_mut(1..).unwrap_or_default();
                    let parsed = simd_json::Deserializer::from_slice_with_buffers(line, &mut buffers)
                        .map_err(|e| e.to_string());
                    if tx.send(parsed).is_err() {
                        return;
                    }
                }
            });
            for (index, parsed) in (0u64..).zip(rx) {
                let event = parsed
                    .and_then(|mut de| WatchLine::deserialize(&mut de).map_err(|e| e.to_string()))
                    .map_err(|reason| ConsumeError::DecodeBound { index, reason })?;
                if !matches!(event.type_.as_str(), "ADDED" | "MODIFIED" | "DELETED") {
                    return Err(ConsumeError::UnexpectedType {
                        index,
                        event_type: event.type_,
                    });
                }
                let rv = event.object.metadata.resource_version.as_deref();
                if runtime.block_on(sink.event(0, rv))? == Flow::Done {
                    return Ok(());
                }
            }
            Err(sink.ended_early())
        })
    })
}

/// One parser, with what it reuses from line to line.
enum Parser {
    SerdeJson,
    /// simd-json parses in place: each line is copied into `copy` first (the bytes a watcher
    /// receives are shared and immutable); its working buffers are reused.
    SimdJson {
        copy: Vec<u8>,
        buffers: simd_json::Buffers,
    },
    SonicRs,
}

impl Parser {
    fn new(decoder: Decoder) -> Self {
        match decoder {
            Decoder::SimdJson => Parser::SimdJson {
                copy: Vec::new(),
                buffers: simd_json::Buffers::default(),
            },
            Decoder::SonicRs => Parser::SonicRs,
            _ => Parser::SerdeJson,
        }
    }

    fn decode(&mut self, line: &[u8]) -> Result<WatchLine, String> {
        match self {
            Parser::SerdeJson => serde_json::from_slice(line).map_err(|e| e.to_string()),
            Parser::SimdJson { copy, buffers } => {
                copy.clear();
                copy.extend_from_slice(line);
                simd_json::serde::from_slice_with_buffers(copy, buffers).map_err(|e| e.to_string())
            }
            Parser::SonicRs => sonic_rs::from_slice(line).map_err(|e| e.to_string()),
        }
    }
}
