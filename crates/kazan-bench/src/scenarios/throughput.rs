//! Throughput: a replay server streams N events as fast as the socket takes them; each consumer
//! counts them to N, checks the order and the last resourceVersion, and reports events/s over the
//! stream, CPU seconds and peak memory.

use super::{Context, servers::Servers};
use crate::{
    consumers::Consumer,
    error::BenchError,
    events::{DEFAULT_FIRST_RV, EventSet},
    job::{Job, ScenarioName},
    replay::CHUNK_BYTES,
    report::{Column, ScenarioReport, rows_with_ratios},
    runner::NoHooks,
    stats::thousands,
};

/// Runs the scenario.
pub async fn run(context: &Context) -> Result<ScenarioReport, BenchError> {
    let scenario = ScenarioName::Throughput;
    let events = EventSet::build(&context.pod, context.events, DEFAULT_FIRST_RV)?;
    let bytes_per_event = events.bytes().len() as u64 / events.len().max(1);
    let mut servers = Servers::new(events);
    let mut entries = Vec::new();
    for consumer in Consumer::in_scenario(scenario) {
        let job = Job::new(scenario, DEFAULT_FIRST_RV, consumer.events_for(context.events));
        entries.push(servers.entry(consumer, job, context).await?);
    }
    let runs = context.runner.run_rounds(&entries, &NoHooks).await;
    Ok(ScenarioReport {
        name: scenario.as_str().to_owned(),
        description: format!(
            "{} watch events of pods (~{} bytes of JSON each, ADDED and MODIFIED) streamed by a \
             replay server over loopback HTTP/1.1 in {} KiB chunks, decoded into typed `Pod`s; \
             the Python client gets a tenth as many. Medians over {} round(s); CPU and memory of the \
             consumer process only (the decode bound's RSS includes the stream it holds in memory); \
             the server's CPU is the harness process's while the consumer ran (the decode bound \
             has no server).",
            thousands(context.events),
            bytes_per_event,
            CHUNK_BYTES / 1024,
            context.runner.rounds,
        ),
        results: rows_with_ratios(&runs),
        load: None,
        columns: vec![
            Column::Consumer,
            Column::Events,
            Column::EventsPerSec,
            Column::EventsPerSecRatio,
            Column::CpuSeconds,
            Column::CpuPerEvent,
            Column::CpuPerEventRatio,
            Column::ServerCpuPerEvent,
            Column::PeakRss,
            Column::PeakRssRatio,
            Column::Connections,
            Column::Check,
        ],
    })
}
