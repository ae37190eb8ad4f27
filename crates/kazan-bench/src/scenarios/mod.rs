//! The scenarios: each prepares its server, gives every consumer its job, runs the rounds and
//! returns its table.

mod embedded;
mod many_watches;
mod resume;
mod slow_consumer;
mod throughput;

use std::{collections::BTreeMap, path::PathBuf};

use crate::{
    consumers::Consumer,
    error::BenchError,
    events::EventSet,
    job::{Job, ScenarioName},
    load::scenario::LoadSettings,
    replay::ReplayServer,
    report::ScenarioReport,
    runner::{Entry, Runner},
};

/// What every scenario needs from the command line.
#[derive(Debug, Clone)]
pub struct Context {
    /// Starts the consumer processes.
    pub runner: Runner,
    /// N: events per consumer run (throughput), or the base of the scenario's own sizes.
    pub events: u64,
    /// The pod JSON every event is built from.
    pub pod: String,
    /// Where it was read from, if not the shipped pod (passed on to the decode bound).
    pub pod_path: Option<PathBuf>,
    /// Resume: the embedded server ends each watch after this many events...
    pub resume_every: u64,
    /// ...and this many watches end in a run.
    pub resume_closes: u64,
    /// Many watches: concurrent watches, one namespace each.
    pub watches: u64,
    /// Load: watches, seconds of writes, writers.
    pub load: LoadSettings,
}

/// Runs one scenario.
pub async fn run(scenario: ScenarioName, context: &Context) -> Result<ScenarioReport, BenchError> {
    match scenario {
        ScenarioName::Throughput => throughput::run(context).await,
        ScenarioName::Resume => resume::run(context).await,
        ScenarioName::SlowConsumer => slow_consumer::run(context).await,
        ScenarioName::ManyWatches => many_watches::run(context).await,
        ScenarioName::Load => crate::load::scenario::run(&context.runner, &context.pod, context.load).await,
    }
}

/// Replay servers for one scenario, one per distinct event count (a smaller count is a prefix of
/// the same events, so the memory is shared).
struct Servers {
    events: EventSet,
    by_count: BTreeMap<u64, ReplayServer>,
}

impl Servers {
    fn new(events: EventSet) -> Self {
        Servers {
            events,
            by_count: BTreeMap::new(),
        }
    }

    /// An entry for `consumer` expecting `count` events, with a server streaming exactly those
    /// (none for the decode bound, which builds its own bytes).
    async fn entry(
        &mut self,
        consumer: Consumer,
        mut job: Job,
        context: &Context,
    ) -> Result<Entry, BenchError> {
        job.pod = context.pod_path.clone();
        if !consumer.uses_a_server() {
            return Ok(Entry {
                consumer,
                job,
                connections: None,
            });
        }
        let count = job.events;
        let server = match self.by_count.entry(count) {
            std::collections::btree_map::Entry::Occupied(server) => server.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                let events = self.events.prefix(count);
                slot.insert(ReplayServer::start(events).await?)
            }
        };
        job.server = Some(server.url());
        Ok(Entry {
            consumer,
            job,
            connections: Some(server.connection_counter()),
        })
    }
}
