//! The scenarios: each prepares its server, gives every consumer its job, runs the rounds and
//! returns its table.

mod cache;
mod embedded;
mod many_watches;
mod resume;
mod servers;
mod slow_consumer;
mod throughput;

use std::path::PathBuf;

use crate::{
    error::BenchError, job::ScenarioName, load::scenario::LoadSettings, report::ScenarioReport,
    runner::Runner,
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
        ScenarioName::Cache => cache::run(context).await,
    }
}
