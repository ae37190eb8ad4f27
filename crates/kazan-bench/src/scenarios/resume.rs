//! Resume: the embedded API server ends each watch cleanly after every K events (its fault option),
//! so each consumer resumes from the last resourceVersion it saw, 1,000 times in a run; the median
//! gap from the last event of one watch to the first of the next, and a check that nothing was
//! lost or repeated (count and order of resourceVersions).

use kazan_apiserver::ApiServer;

use super::{Context, embedded::Embedded};
use crate::{
    consumers::Consumer,
    error::BenchError,
    job::{ChildReport, Job, ScenarioName},
    report::{Column, ScenarioReport, rows_with_ratios},
    runner::{Entry, Hooks},
    stats::thousands,
};

struct Resume {
    embedded: Embedded,
    count: u64,
}

impl Hooks for Resume {
    async fn prepare(&self, run: u64, job: &Job) -> Result<Job, BenchError> {
        let prefix = format!("resume{run}-");
        self.embedded.drain_watches().await;
        let rv = self.embedded.begin_run(&prefix, 1)?;
        let mut job = job.clone();
        job.namespace_prefix = Some(prefix);
        job.first_rv = rv + 1;
        Ok(job)
    }

    async fn during(&self, job: &Job) -> Result<(), BenchError> {
        let prefix = job.namespace_prefix.clone().unwrap_or_default();
        self.embedded.burst(&prefix, 1, self.count).await
    }

    fn finish(&self, _job: &Job, report: &mut ChildReport) {
        self.embedded.end_run(report, false);
    }
}

/// Runs the scenario.
pub async fn run(context: &Context) -> Result<ScenarioReport, BenchError> {
    let scenario = ScenarioName::Resume;
    let every = context.resume_every.max(1);
    // One more watch than closes, so that every close is followed by an event.
    let count = every * (context.resume_closes + 1);
    let history = usize::try_from(count.saturating_mul(2)).unwrap_or(usize::MAX);
    let server = ApiServer::builder()
        .history_limit(history)
        .start()
        .await
        .map_err(|e| BenchError::ApiServer(format!("cannot start: {e}")))?;
    server.faults().end_watches_after_events(Some(every));
    let hooks = Resume {
        embedded: Embedded::new(server, &context.pod)?,
        count,
    };
    let entries: Vec<Entry> = Consumer::in_scenario(scenario)
        .into_iter()
        .map(|consumer| {
            let mut job = Job::new(scenario, 0, count);
            job.server = Some(hooks.embedded.server.url());
            job.watches = Some(1);
            job.gap_every = Some(every);
            job.sparse_rvs = true;
            Entry {
                consumer,
                job,
                connections: None,
            }
        })
        .collect();
    let runs = context.runner.run_rounds(&entries, &hooks).await;
    Ok(ScenarioReport {
        name: scenario.as_str().to_owned(),
        description: format!(
            "The embedded API server ends each watch cleanly after every {every} events; the \
             harness writes {} pods into one fresh namespace as soon as the consumer's watch is \
             open, so the consumer resumes {} times from the last resourceVersion it saw (the \
             server replays from its history). The gap is timed in the consumer, from the last \
             event of one watch to the first of the next (the median over the run, then over {} \
             round(s)); seconds are the whole run. Lost and repeated come from the count and \
             order of resourceVersions (worst round).",
            thousands(count),
            thousands(context.resume_closes),
            context.runner.rounds,
        ),
        results: rows_with_ratios(&runs),
        load: None,
        columns: vec![
            Column::Consumer,
            Column::Events,
            Column::GapMs,
            Column::GapRatio,
            Column::Seconds,
            Column::SecondsRatio,
            Column::Connections,
            Column::Check,
            Column::Errors,
        ],
    })
}
