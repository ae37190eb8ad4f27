//! Resume: the server ends each watch cleanly after every K events, so each consumer resumes from
//! the last resourceVersion it saw, 1,000 times in a run; the median gap from the last event of one
//! watch to the first of the next, and a check that nothing was lost or repeated.

use super::{Context, Servers};
use crate::{
    consumers::Consumer,
    error::BenchError,
    events::{DEFAULT_FIRST_RV, EventSet},
    job::{Job, ScenarioName},
    replay::ReplayOptions,
    report::{Column, ScenarioReport, rows_with_ratios, thousands},
};

/// Runs the scenario.
pub async fn run(context: &Context) -> Result<ScenarioReport, BenchError> {
    let scenario = ScenarioName::Resume;
    let every = context.resume_every.max(1);
    // One more watch than closes, so that every close is followed by an event.
    let count = every * (context.resume_closes + 1);
    let events = EventSet::build(&context.pod, count, DEFAULT_FIRST_RV)?;
    let options = ReplayOptions {
        end_every: Some(every),
    };
    let mut servers = Servers::new(events, options);
    let mut entries = Vec::new();
    for consumer in Consumer::in_scenario(scenario) {
        let mut job = Job::new(scenario, DEFAULT_FIRST_RV, count);
        job.gap_every = Some(every);
        entries.push(servers.entry(consumer, job, context).await?);
    }
    let runs = context.runner.run_rounds(&entries).await;
    Ok(ScenarioReport {
        name: scenario.as_str().to_owned(),
        description: format!(
            "The replay server ends each watch cleanly after every {every} events, {} times in a \
             run of {} events; each consumer resumes from the last resourceVersion it saw. The gap \
             is timed in the consumer, from the last event of one watch to the first of the next \
             (the median over the run, then the median over {} round(s)); seconds are the whole run. Lost and repeated come \
             from the count and order of resourceVersions (worst round).",
            thousands(context.resume_closes),
            thousands(count),
            context.runner.rounds,
        ),
        results: rows_with_ratios(&runs),
        columns: vec![
            Column::Consumer,
            Column::Events,
            Column::GapMs,
            Column::GapRatio,
            Column::Seconds,
            Column::SecondsRatio,
            Column::Connections,
            Column::Check,
        ],
    })
}
