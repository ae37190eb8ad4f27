//! The decode bound: the same bytes a watcher would receive, already in memory, split into lines
//! and decoded with `serde_json` into `{type, object: Pod}`. No I/O, no runtime machinery: what any
//! watcher that decodes the whole typed object would cost if the network were free.

use k8s_openapi::api::core::v1::Pod;
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
pub async fn consume(job: &Job, sink: &mut Sink) -> Result<(), ConsumeError> {
    let pod = match &job.pod {
        Some(path) => std::fs::read_to_string(path).map_err(|source| BenchError::File {
            path: path.clone(),
            source,
        })?,
        None => DEFAULT_POD.to_owned(),
    };
    let events = EventSet::build(&pod, job.events, job.first_rv)?;
    let bytes = events.bytes();

    sink.start();
    let mut start = 0;
    for (index, end) in (0u64..).zip(memchr::memchr_iter(b'\n', bytes)) {
        let line = bytes.get(start..end).unwrap_or_default();
        start = end + 1;
        let event: WatchLine =
            serde_json::from_slice(line).map_err(|source| ConsumeError::Decode { index, source })?;
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
