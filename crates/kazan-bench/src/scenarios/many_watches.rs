//! Many watches: 1,000 concurrent watches, one per namespace, on the embedded API server over TLS
//! (so a client that speaks HTTP/2 can multiplex them on one connection; kube-runtime speaks
//! HTTP/1.1 and opens one per watch). Once every watch is open the harness writes a burst of pods
//! across those namespaces; the time until every watch has its events, the peak memory of the
//! consumer process, and the TCP connections the server accepted.

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

/// Pods written into each namespace in the burst.
const PODS_PER_NAMESPACE: u64 = 10;

struct ManyWatches {
    embedded: Embedded,
    watches: u64,
}

impl Hooks for ManyWatches {
    async fn prepare(&self, run: u64, job: &Job) -> Result<Job, BenchError> {
        let prefix = format!("mw{run}-");
        self.embedded.drain_watches().await;
        let rv = self.embedded.begin_run(&prefix, self.watches)?;
        let mut job = job.clone();
        job.namespace_prefix = Some(prefix);
        job.first_rv = rv + 1;
        Ok(job)
    }

    async fn during(&self, job: &Job) -> Result<(), BenchError> {
        let prefix = job.namespace_prefix.clone().unwrap_or_default();
        self.embedded
            .burst(&prefix, self.watches, PODS_PER_NAMESPACE)
            .await
    }

    fn finish(&self, _job: &Job, report: &mut ChildReport) {
        self.embedded.end_run(report, true);
    }
}

/// Runs the scenario.
pub async fn run(context: &Context) -> Result<ScenarioReport, BenchError> {
    let scenario = ScenarioName::ManyWatches;
    // History for every event of a run, so that a watch the server ends for lagging behind the
    // burst can resume instead of getting 410 (what a consumer does then is not measured here).
    let history = usize::try_from(context.watches * PODS_PER_NAMESPACE * 2).unwrap_or(usize::MAX);
    let server = ApiServer::builder()
        .tls(true)
        .history_limit(history)
        .start()
        .await
        .map_err(|e| BenchError::ApiServer(format!("cannot start: {e}")))?;
    let hooks = ManyWatches {
        embedded: Embedded::new(server, &context.pod)?,
        watches: context.watches,
    };
    let events = context.watches * PODS_PER_NAMESPACE;
    let entries: Vec<Entry> = Consumer::in_scenario(scenario)
        .into_iter()
        .map(|consumer| {
            let mut job = Job::new(scenario, 0, events);
            job.server = Some(hooks.embedded.server.url());
            job.ca_file = hooks.embedded.ca_file.clone();
            job.watches = Some(context.watches);
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
            "{} concurrent watches of pods, one per namespace, on the embedded API server over \
             TLS (HTTP/2 offered by ALPN); once all are open the harness creates {} realistic pods \
             in each namespace ({} events). Seconds run from the first write to the last event \
             every watch expects; memory and CPU are the consumer process's; connections are those \
             the server accepted during the run. kube-runtime runs with `default_backoff()` as its \
             documentation advises; its errors (yielded as items) are counted and skipped, while \
             kazan's Watcher retries inside and yields none. Medians over {} round(s).",
            thousands(context.watches),
            PODS_PER_NAMESPACE,
            thousands(events),
            context.runner.rounds,
        ),
        results: rows_with_ratios(&runs),
        load: None,
        columns: vec![
            Column::Consumer,
            Column::Events,
            Column::Seconds,
            Column::SecondsRatio,
            Column::CpuSeconds,
            Column::PeakRss,
            Column::PeakRssRatio,
            Column::Connections,
            Column::Check,
            Column::Errors,
        ],
    })
}
