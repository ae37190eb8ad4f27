//! Slow consumer: a consumer slower than the stream (it sleeps after every few events) reads 4N
//! events; its peak memory after N and after 4N must stay within 10 % of each other, or the
//! watcher is buffering what the consumer has not taken yet.

use super::{Context, servers::Servers};
use crate::{
    consumers::Consumer,
    error::BenchError,
    events::{DEFAULT_FIRST_RV, EventSet},
    job::{Job, ScenarioName},
    report::{Column, ScenarioReport, rows_with_ratios},
    runner::NoHooks,
    stats::thousands,
};

/// Sleep after every this many events...
const PACE_EVENTS: u64 = 10;
/// ...for this long: at most 10,000 events/s, well under what any Rust consumer takes.
const PACE_SLEEP_US: u64 = 1_000;

/// Runs the scenario.
pub async fn run(context: &Context) -> Result<ScenarioReport, BenchError> {
    let scenario = ScenarioName::SlowConsumer;
    // N is a tenth of the throughput N: the pace makes every event cost 0.1 ms at least.
    let n = (context.events / 10).max(1_000);
    let events = EventSet::build(&context.pod, 4 * n, DEFAULT_FIRST_RV)?;
    let mut servers = Servers::new(events);
    let mut entries = Vec::new();
    for consumer in Consumer::in_scenario(scenario) {
        let consumer_n = consumer.events_for(n);
        let mut job = Job::new(scenario, DEFAULT_FIRST_RV, 4 * consumer_n);
        job.checkpoint = Some(consumer_n);
        job.pace_every = Some(PACE_EVENTS);
        job.pace_sleep_us = Some(PACE_SLEEP_US);
        entries.push(servers.entry(consumer, job, context).await?);
    }
    let runs = context.runner.run_rounds(&entries, &NoHooks).await;
    Ok(ScenarioReport {
        name: scenario.as_str().to_owned(),
        description: format!(
            "The replay server streams 4N events as fast as the socket takes them (N = {}; the \
             Python client gets a tenth); the consumer sleeps {} µs after every {} events. Peak \
             RSS of the consumer process after N events and after 4N (target: within 10 %). \
             Medians over {} round(s).",
            thousands(n),
            PACE_SLEEP_US,
            PACE_EVENTS,
            context.runner.rounds,
        ),
        results: rows_with_ratios(&runs),
        load: None,
        columns: vec![
            Column::Consumer,
            Column::Events,
            Column::RssAtN,
            Column::RssAt4N,
            Column::RssGrowth,
            Column::PeakRssRatio,
            Column::Check,
        ],
    })
}
