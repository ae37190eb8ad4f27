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
pub async fn consume(job: &Job, sink: &mut Sink, decoder: Decoder) -> Result<(), ConsumeError> {
    let pod = match &job.pod {
        Some(path) => std::fs::read_to_string(path).map_err(|source| BenchError::File {
            path: path.clone(),
            source,
        })?,
        None => DEFAULT_POD.to_owned(),
    };
    let events = EventSet::build(&pod, job.events, job.first_rv)?;
    let bytes = events.bytes();

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
