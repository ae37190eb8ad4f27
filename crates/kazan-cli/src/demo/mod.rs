//! `kazan demo`: the watcher at work, for someone with no cluster at hand.
//!
//! An embedded API server runs in this process. A workload creates, changes and deletes ConfigMaps
//! and Jobs; two watchers (one per kind) feed one consumer that keeps a cache. On the way the
//! server ends watches on their timeout, cuts a connection, and compacts its history so that a
//! watcher gets 410 Gone, after which the consumer does what Kazan's documentation says. At the
//! end the consumer's cache is compared with the server's objects, name by name and
//! resourceVersion by resourceVersion: the exit status is 0 only when they match.

mod consumer;
mod narrator;
mod workload;

use std::{collections::BTreeMap, process::ExitCode, time::Duration};

use kazan::{Client, Config, watcher::WatchError};
use kazan_apiserver::{ApiServer, FaultAction, FaultRule, ServerError, StoreError};
use serde_json::Value;
use tokio::sync::{oneshot, watch};

use consumer::{Consumer, Progress, Report, SideReport};
use narrator::Narrator;
use workload::Workload;

/// The namespace the demo works in.
pub const NAMESPACE: &str = "demo";

/// The configmaps watcher's `timeoutSeconds`: short, so the server ends its watches often.
const CONFIGMAPS_TIMEOUT: u32 = 3;

/// The pause between two workload steps.
const PACE: Duration = Duration::from_millis(600);

const ABOUT: &str = "\
What it shows:
  1. events flowing from two watchers into one consumer, and watches that the server ends on
     their timeoutSeconds, resumed at once from the last resourceVersion: no gap, no repeat;
  2. a connection cut in the middle of an event: the watcher retries after a backoff and resumes
     from the last complete event, so what happened meanwhile still arrives;
  3. history compaction while a watcher is away: 410 Gone, after which the consumer clears its
     cache, lists again and starts a new watcher (Kazan.Watcher's rule).
It ends by itself after about 15 seconds with a summary; the exit status is 0 only when the
consumer's cache equals the server's state.

Examples:
  kazan demo
  cargo run --release -p kazan-cli -- demo";

/// Arguments of `kazan demo`.
#[derive(clap::Args, Debug)]
#[command(after_help = ABOUT)]
pub struct DemoArgs {}

/// Why the demo could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The embedded server did not start.
    #[error("cannot start the embedded API server: {0}")]
    Server(#[from] Box<ServerError>),
    /// A workload step failed.
    #[error("the workload could not {what}: {source}")]
    Workload {
        /// The step.
        what: String,
        /// The server's answer.
        source: Box<StoreError>,
    },
    /// A request of the consumer failed.
    #[error("{what}: {source}")]
    Client {
        /// What was asked.
        what: String,
        /// Why it failed.
        source: Box<kazan::Error>,
    },
    /// A watcher could not start.
    #[error("cannot start the {what} watcher: {source}")]
    Watcher {
        /// Which.
        what: &'static str,
        /// Why.
        source: Box<WatchError>,
    },
    /// Something the demo waits for did not happen in time.
    #[error("{0}")]
    Stuck(String),
}

/// Runs `kazan demo`.
pub async fn run(_args: DemoArgs) -> ExitCode {
    match demo().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: kazan demo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn pause() {
    tokio::time::sleep(PACE).await;
}

/// Waits until the consumer's progress satisfies `condition`, at most `limit`.
async fn wait_for(
    progress: &mut watch::Receiver<Progress>,
    limit: Duration,
    condition: impl FnMut(&Progress) -> bool,
) -> bool {
    matches!(
        tokio::time::timeout(limit, progress.wait_for(condition)).await,
        Ok(Ok(_))
    )
}

async fn demo() -> Result<bool, DemoError> {
    let n = Narrator::new();
    n.plain("kazan demo: Kazan.Watcher's semantics at work, against an API server embedded in this process.");
    n.plain("");
    n.plain("A workload creates, changes and deletes ConfigMaps and Jobs in namespace \"demo\". Two");
    n.plain("watchers, one per kind, send their events into one channel; one consumer reads it and");
    n.plain("keeps a cache of both kinds (Kazan's send_to pattern). On the way the server ends watches,");
    n.plain("drops a connection and compacts its history; the cache must still end equal to the server.");
    n.plain("");

    let server = ApiServer::start().await.map_err(Box::new)?;
    n.say(
        "server",
        format!("embedded API server listening on {}", server.url()),
    );
    let work = Workload::new(&server, n.clone());
    work.namespace()?;
    work.create_configmap("cm-1", true)?;
    work.create_configmap("cm-2", true)?;
    work.create_job("job-1", true)?;
    n.say(
        "workload",
        format!("created namespace {NAMESPACE}, configmaps cm-1 and cm-2, job job-1"),
    );

    let url = server
        .url()
        .parse()
        .map_err(|e| DemoError::Stuck(format!("the server URL {} does not parse: {e}", server.url())))?;
    let client = Client::new(Config::new(url)).map_err(|source| DemoError::Client {
        what: "building a client".into(),
        source: Box::new(source),
    })?;
    n.section("Start: list, then watch from the list's resourceVersion");
    n.note("As Kazan.Watcher's docs say: list to fill the cache, then start each watcher from the");
    n.note("list's resourceVersion, sending its events to the consumer's channel.");
    let consumer = Consumer::start(client, CONFIGMAPS_TIMEOUT, n.clone()).await?;
    let (progress_tx, mut progress) = watch::channel(Progress::default());
    let (finish_tx, finish_rx) = oneshot::channel();
    let consumer_task = tokio::spawn(consumer.run(finish_rx, progress_tx));
    for plural in ["configmaps", "jobs"] {
        if !server.wait_for_watches(plural, 1, Duration::from_secs(10)).await {
            return Err(DemoError::Stuck(format!(
                "the {plural} watch did not open within 10 s"
            )));
        }
    }

    n.section(format!(
        "1. Events, and watches the server ends every {CONFIGMAPS_TIMEOUT} s"
    ));
    n.note(format!(
        "The configmaps watcher asks the server to end each watch after {CONFIGMAPS_TIMEOUT} s"
    ));
    n.note("(timeoutSeconds; real servers end watches every 5-10 minutes). It then watches again");
    n.note("at once from the last resourceVersion it saw: the consumer sees no gap, no repeat.");
    work.create_configmap("cm-3", false)?;
    pause().await;
    work.update_configmap("cm-1", 2)?;
    pause().await;
    work.create_job("job-2", false)?;
    pause().await;
    work.complete_job("job-1")?;
    pause().await;
    work.update_configmap("cm-3", 2)?;
    pause().await;
    work.delete_configmap("cm-2")?;
    pause().await;
    work.create_configmap("cm-4", false)?;
    pause().await;
    work.update_configmap("cm-1", 3)?;
    if !wait_for(&mut progress, Duration::from_secs(8), |p| {
        p.configmaps_resumes >= 1
    })
    .await
    {
        return Err(DemoError::Stuck(
            "the server did not end the configmaps watch on its timeout".into(),
        ));
    }
    pause().await;

    n.section("2. A dropped connection");
    n.note("The server cuts the configmaps watch in the middle of an event. The watcher drops the");
    n.note("half event, waits a backoff (about 0.8 s) and watches again from the last complete");
    n.note("event, so the changes made meanwhile arrive after it reconnects.");
    let retries_before = progress.borrow().configmaps_retries;
    n.say("server", "cut the configmaps watch mid-event");
    server.faults().cut_watches(Some("configmaps"));
    work.update_configmap("cm-4", 2)?;
    work.create_configmap("cm-5", false)?;
    if !wait_for(&mut progress, Duration::from_secs(5), |p| {
        p.configmaps_retries > retries_before
    })
    .await
    {
        return Err(DemoError::Stuck(
            "the configmaps watcher did not see the cut".into(),
        ));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    work.update_configmap("cm-5", 2)?;
    pause().await;

    n.section("3. History compaction: 410 Gone");
    n.note("The server keeps only recent history (etcd compacts it every 5 minutes). The jobs");
    n.note("watch loses its connection and the server refuses it for a while (503); meanwhile jobs");
    n.note("change and the history is compacted. When the watcher is back, its resourceVersion is");
    n.note("too old: the server answers 410 Gone and the watcher ends with a GONE event.");
    let faults = server.faults();
    faults.add_rule(
        FaultRule::new(
            FaultAction::status(503, "ServiceUnavailable", "the demo keeps the jobs watch away")
                .retry_after(1),
        )
        .path_prefix(&format!("/apis/batch/v1/namespaces/{NAMESPACE}/jobs"))
        .watch(true)
        .times(1000),
    );
    let jobs_retries = progress.borrow().jobs_retries;
    n.say(
        "server",
        "cut the jobs watch, and answer 503 to jobs watches for now",
    );
    faults.cut_watches(Some("jobs"));
    pause().await;
    work.delete_job("job-1")?;
    work.create_job("job-3", false)?;
    work.complete_job("job-2")?;
    work.update_configmap("cm-3", 3)?;
    // Away for real: the cut, then at least one 503.
    if !wait_for(&mut progress, Duration::from_secs(8), |p| {
        p.jobs_retries >= jobs_retries + 2
    })
    .await
    {
        return Err(DemoError::Stuck(
            "the jobs watcher did not come back for a 503".into(),
        ));
    }
    let now = server.resource_version();
    // The configmaps watcher is meant to stay current: only the jobs watcher falls behind.
    if !wait_for(&mut progress, Duration::from_secs(5), |p| p.configmaps_rv >= now).await {
        n.note("(the configmaps watcher is behind too: it may get Gone as well, handled the same way)");
    }
    faults.compact_history();
    n.say(
        "server",
        format!("compacted its history: a watch from before rv {now} now gets 410 Gone"),
    );
    faults.clear_rules();
    n.say("server", "takes jobs watches again");
    if !wait_for(&mut progress, Duration::from_secs(15), |p| p.gone_handled >= 1).await {
        return Err(DemoError::Stuck(
            "no watcher reported 410 Gone after the compaction".into(),
        ));
    }
    pause().await;

    n.section("4. After the restart");
    n.note("The new jobs watcher sends to the same channel; its events carry a new `from`.");
    work.create_job("job-4", false)?;
    pause().await;
    work.update_configmap("cm-5", 3)?;
    pause().await;
    work.delete_configmap("cm-3")?;
    pause().await;
    work.complete_job("job-3")?;
    pause().await;
    work.delete_job("job-2")?;
    pause().await;

    // Both watchers must reach the final version; a bookmark carries it to a quiet watch.
    let target = server.resource_version();
    let _ = finish_tx.send(target);
    let mut consumer_task = consumer_task;
    let report = loop {
        server.faults().send_bookmark(None);
        tokio::select! {
            report = &mut consumer_task => {
                break report.map_err(|e| DemoError::Stuck(format!("the consumer task failed: {e}")))?;
            }
            () = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
    };
    let configmaps = server_versions(&server, "v1", "ConfigMap")?;
    let jobs = server_versions(&server, "batch/v1", "Job")?;
    let equal = summary(&n, &report, &configmaps, &jobs);
    server.shutdown().await;
    next_steps(&n);
    Ok(equal)
}

/// The server's objects of a kind in the demo namespace: name → resourceVersion.
fn server_versions(
    server: &ApiServer,
    api_version: &str,
    kind: &str,
) -> Result<BTreeMap<String, String>, DemoError> {
    let items = server
        .list(api_version, kind, Some(NAMESPACE))
        .map_err(|source| DemoError::Workload {
            what: format!("list {kind}s"),
            source: Box::new(source),
        })?;
    Ok(items
        .iter()
        .map(|o| {
            let field = |p: &str| {
                o.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            (field("/metadata/name"), field("/metadata/resourceVersion"))
        })
        .collect())
}

fn describe_events(side: &SideReport) -> String {
    let [added, modified, deleted] = side.events;
    format!(
        "{} (ADDED {added}, MODIFIED {modified}, DELETED {deleted})",
        added + modified + deleted
    )
}

fn describe_cache(cache: &BTreeMap<String, String>) -> String {
    if cache.is_empty() {
        return "(none)".to_string();
    }
    cache
        .iter()
        .map(|(name, rv)| format!("{name}@{rv}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Differences between the cache and the server, one phrase each.
fn differences(
    kind: &str,
    cache: &BTreeMap<String, String>,
    server: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, rv) in cache {
        match server.get(name) {
            None => out.push(format!(
                "{kind} {name}: in the cache (rv {rv}), not on the server"
            )),
            Some(s) if s != rv => out.push(format!("{kind} {name}: rv {rv} in the cache, {s} on the server")),
            Some(_) => {}
        }
    }
    for (name, rv) in server {
        if !cache.contains_key(name) {
            out.push(format!(
                "{kind} {name}: on the server (rv {rv}), not in the cache"
            ));
        }
    }
    out
}

/// What the demo showed that `kubectl get -w` does not do, and what a newcomer runs next.
fn next_steps(n: &Narrator) {
    n.plain("");
    n.plain(
        "What kubectl get -w does not do: resume after a timeout or a cut without losing or repeating an event, handle 410 Gone by listing again, and prove its cache equal to the server.",
    );
    n.section("Next");
    n.plain("kazan serve                                      # an embedded API server; writes ./kazan.kubeconfig");
    n.plain(
        "KUBECONFIG=./kazan.kubeconfig kazan watch cm -A  # in another terminal; change objects with kubectl",
    );
    n.plain("kazan watch pods -A                              # or your own cluster, through ~/.kube/config");
}

/// Prints the summary; returns whether the cache equals the server's state.
fn summary(
    n: &Narrator,
    report: &Report,
    configmaps: &BTreeMap<String, String>,
    jobs: &BTreeMap<String, String>,
) -> bool {
    n.section("Summary");
    let rows = [("configmaps", &report.configmaps), ("jobs", &report.jobs)];
    for (i, (plural, side)) in rows.iter().enumerate() {
        let label = if i == 0 { "events seen" } else { "" };
        n.plain(format!("{label:<18}{plural:<11} {}", describe_events(side)));
    }
    for (i, (plural, side)) in rows.iter().enumerate() {
        let label = if i == 0 { "resumes" } else { "" };
        n.plain(format!(
            "{label:<18}{plural:<11} {} after a server timeout, {} after an error (retries), {} watcher{}",
            side.resumes,
            side.retries,
            side.watchers,
            if side.watchers == 1 { "" } else { "s" }
        ));
    }
    n.plain(format!(
        "{:<18}{} (cache cleared, listed again, new watcher started)",
        "gone handled", report.gone_handled
    ));
    n.plain(format!(
        "{:<18}{:<11} {}",
        "consumer cache",
        "configmaps",
        describe_cache(&report.configmaps.cache)
    ));
    n.plain(format!(
        "{:<18}{:<11} {}",
        "",
        "jobs",
        describe_cache(&report.jobs.cache)
    ));
    n.plain(format!(
        "{:<18}{:<11} {}",
        "server state",
        "configmaps",
        describe_cache(configmaps)
    ));
    n.plain(format!("{:<18}{:<11} {}", "", "jobs", describe_cache(jobs)));
    let mut diffs = differences("configmap", &report.configmaps.cache, configmaps);
    diffs.extend(differences("job", &report.jobs.cache, jobs));
    if !report.settled {
        n.plain("(the watchers did not reach the final resourceVersion within the time allowed)");
    }
    for d in &diffs {
        n.plain(format!("difference        {d}"));
    }
    let equal = diffs.is_empty();
    n.plain(format!(
        "final cache == server state: {}",
        if equal { "yes" } else { "no" }
    ));
    equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_cache_that_differs_from_the_server_is_reported() {
        let cache = versions(&[("a", "3"), ("b", "5"), ("c", "7")]);
        let server = versions(&[("a", "3"), ("b", "6"), ("d", "8")]);
        assert_eq!(
            differences("configmap", &cache, &server),
            [
                "configmap b: rv 5 in the cache, 6 on the server",
                "configmap c: in the cache (rv 7), not on the server",
                "configmap d: on the server (rv 8), not in the cache",
            ]
        );
        assert!(differences("configmap", &cache, &cache).is_empty());
    }
}
