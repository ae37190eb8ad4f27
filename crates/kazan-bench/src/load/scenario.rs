//! The harness side of the load scenario: the embedded API server over TLS (HTTP/2 by ALPN), one
//! namespace per watch, the watcher process, the writers for the asked time, then the final
//! versions sent to the watcher process and its report read back.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use kazan_apiserver::ApiServer;
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    process::Child,
};

use super::{
    Final, Sample, WatcherLine, WatcherReport,
    figures::{self, LoadFigures, RunFacts},
    writers::{WriteLog, Writers},
};
use crate::{
    consumers::Consumer,
    error::BenchError,
    job::{Job, ScenarioName},
    report::{ResultRow, ScenarioReport},
    runner::Runner,
    sink::unix_seconds,
    stats::thousands,
};

/// The server's event history per resource (its default is 1,000). A watch that resumes (after the
/// server ended it for lagging, or after an error) needs its last version still in the history,
/// or it gets 410 Gone and relists. A resume comes within milliseconds to a few seconds of the end,
/// and 20,000 events are several seconds of writes at the rates this machine reaches, at a bounded
/// cost to the server (each event holds a ~4 KB pod, parsed and serialized: about 400 MB).
pub const HISTORY_LIMIT: usize = 20_000;
/// How long the watch processes may take to open every watch.
const WATCHES_OPEN_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the watches may take to catch up once the writes stop.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);
/// The prefix of the load scenario's namespaces.
const PREFIX: &str = "load-";

/// What the command line asks of the scenario.
#[derive(Debug, Clone, Copy)]
pub struct LoadSettings {
    /// Concurrent watches (one namespace each).
    pub watches: u64,
    /// How long the writers write.
    pub seconds: u64,
    /// How many writer tasks.
    pub writers: usize,
}

/// Runs the scenario.
pub async fn run(
    runner: &Runner,
    pod_json: &str,
    settings: LoadSettings,
) -> Result<ScenarioReport, BenchError> {
    let server = ApiServer::builder()
        .tls(true)
        .history_limit(HISTORY_LIMIT)
        .start()
        .await
        .map_err(|e| BenchError::ApiServer(format!("cannot start: {e}")))?;
    let ca_pem = server.ca_pem().unwrap_or_default();
    let ca_file = std::env::temp_dir().join(format!("kazan-bench-load-{}-ca.pem", std::process::id()));
    std::fs::write(&ca_file, ca_pem.as_bytes()).map_err(|source| BenchError::File {
        path: ca_file.clone(),
        source,
    })?;
    let server = Arc::new(server);
    let result = run_on(&server, runner, pod_json, settings, &ca_file, ca_pem.into_bytes()).await;
    let _ = std::fs::remove_file(&ca_file);
    server.shutdown().await;
    result
}

async fn run_on(
    server: &Arc<ApiServer>,
    runner: &Runner,
    pod_json: &str,
    settings: LoadSettings,
    ca_file: &std::path::Path,
    ca_pem: Vec<u8>,
) -> Result<ScenarioReport, BenchError> {
    let watches = usize::try_from(settings.watches.max(1)).unwrap_or(usize::MAX);
    let namespaces: Vec<String> = (0..watches).map(|i| format!("{PREFIX}{i}")).collect();
    for name in &namespaces {
        let namespace =
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        server
            .create(namespace)
            .map_err(|e| BenchError::ApiServer(format!("creating namespace {name}: {e}")))?;
    }
    let first_rv = server.resource_version() + 1;
    let mut job = Job::new(ScenarioName::Load, first_rv, 0);
    job.server = Some(server.url());
    job.ca_file = Some(ca_file.to_owned());
    job.watches = Some(watches as u64);
    job.namespace_prefix = Some(PREFIX.to_owned());

    let connections_at_start = server.stats().connections_accepted;
    let mut child = Consumer::KazanChannel.spawn_piped(&runner.exe, &job, &runner.wrap, "load watcher")?;
    let lines = Arc::new(Mutex::new(Lines::default()));
    let reader = spawn_reader(&mut child, lines.clone())?;

    eprintln!("  waiting for {} watches to open", thousands(watches as u64));
    if !server
        .wait_for_watches("pods", watches, WATCHES_OPEN_TIMEOUT)
        .await
    {
        let open = server.stats().active_watches.get("pods").copied().unwrap_or(0);
        return Err(BenchError::ApiServer(format!(
            "only {open} of {watches} watches opened within {} s",
            WATCHES_OPEN_TIMEOUT.as_secs()
        )));
    }
    let connections_after_open = server.stats().connections_accepted;

    let mut config = kazan::Config::new(
        server
            .url()
            .parse()
            .map_err(|e| BenchError::ApiServer(format!("the server's URL does not parse: {e}")))?,
    );
    config.root_certs_pem = Some(ca_pem);
    let client =
        kazan::Client::new(config).map_err(|e| BenchError::ApiServer(format!("writers' client: {e}")))?;
    let writers = Writers {
        client,
        server: server.clone(),
        pod: Arc::new(template(pod_json)?),
        namespaces: Arc::new(namespaces),
    };
    eprintln!(
        "  writing for {} s with {} writers",
        settings.seconds, settings.writers
    );
    let start = unix_seconds(SystemTime::now()).unwrap_or(0.0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(settings.seconds);
    let progress = tokio::spawn(progress(lines.clone(), settings.seconds));
    let log = writers.run(settings.writers, deadline).await;
    progress.abort();
    let log = log?;
    let stop = log.writes.iter().map(|w| w.unix_s).fold(start, f64::max);
    let writer_connections = server.stats().connections_accepted - connections_after_open;

    let last_rvs = last_rv_per_namespace(&log, watches);
    eprintln!(
        "  {} writes; waiting for the watches to catch up to version {}",
        thousands(log.writes.len() as u64),
        server.resource_version()
    );
    let final_line = serde_json::to_string(&Final { last_rvs }).map_err(BenchError::Results)?;
    if let Some(mut stdin) = child.stdin.take() {
        let sent = stdin.write_all(format!("{final_line}\n").as_bytes()).await;
        let _ = stdin.flush().await;
        if let Err(source) = sent {
            return Err(BenchError::File {
                path: "watcher process stdin".into(),
                source,
            });
        }
        // Kept open: closing it would tell the watcher process to give up.
        let waited = tokio::time::timeout(CATCH_UP_TIMEOUT, child.wait()).await;
        drop(stdin);
        if waited.is_err() {
            eprintln!(
                "  not every watch caught up within {} s",
                CATCH_UP_TIMEOUT.as_secs()
            );
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }
    let _ = child.kill().await;
    let _ = reader.await;
    let Lines { samples, report } = std::mem::take(&mut *lines.lock().unwrap_or_else(|e| e.into_inner()));
    let report = report.ok_or_else(|| {
        BenchError::ApiServer("the watcher process ended without its report (its stderr is above)".to_owned())
    })?;

    let stats = server.stats();
    let server_state = server_state(server, &writers.namespaces)?;
    let facts = RunFacts {
        watches,
        writers: settings.writers,
        seconds: settings.seconds as f64,
        write_start_unix_s: start,
        write_stop_unix_s: stop,
        history_limit: HISTORY_LIMIT,
        watcher_connections: connections_after_open - connections_at_start,
        writer_connections,
        server_watches_lagged: stats.watches_lagged,
        server_state,
    };
    let figures = figures::compute(facts, &log, &samples, &report);
    Ok(scenario_report(figures))
}

/// What the watcher process printed so far.
#[derive(Debug, Default)]
struct Lines {
    samples: Vec<Sample>,
    report: Option<WatcherReport>,
}

/// Reads the watcher process's stdout line by line into `lines`.
fn spawn_reader(
    child: &mut Child,
    lines: Arc<Mutex<Lines>>,
) -> Result<tokio::task::JoinHandle<()>, BenchError> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| BenchError::ApiServer("the watcher process has no stdout".to_owned()))?;
    Ok(tokio::spawn(async move {
        let mut reader = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
            match serde_json::from_str::<WatcherLine>(&line) {
                Ok(WatcherLine::Sample(sample)) => lines.samples.push(sample),
                Ok(WatcherLine::Report(report)) => lines.report = Some(report),
                Err(error) => eprintln!("  watcher process: unreadable line ({error}): {:.200}", line),
            }
        }
    }))
}

/// Every ten seconds, a line on stderr saying how the watcher process is doing.
async fn progress(lines: Arc<Mutex<Lines>>, seconds: u64) {
    let mut timer = tokio::time::interval(Duration::from_secs(10));
    timer.tick().await;
    for elapsed in (10..=seconds).step_by(10) {
        timer.tick().await;
        let lines = lines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sample) = lines.samples.last() {
            eprintln!(
                "  {elapsed} s: {} events delivered, watcher RSS {:.1} MiB",
                thousands(sample.delivered),
                sample.rss_bytes as f64 / (1024.0 * 1024.0)
            );
        }
    }
}

/// The pod to create: the realistic one without what the server assigns.
fn template(pod_json: &str) -> Result<Value, BenchError> {
    let mut pod: Value = serde_json::from_str(pod_json).map_err(BenchError::Pod)?;
    let metadata = pod
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or(BenchError::PodShape("the pod has no metadata object"))?;
    for assigned_by_the_server in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        metadata.remove(assigned_by_the_server);
    }
    Ok(pod)
}

/// The version of the last write to each namespace (0 for none).
fn last_rv_per_namespace(log: &WriteLog, watches: usize) -> Vec<u64> {
    let mut last = vec![0u64; watches];
    for write in &log.writes {
        if let Some(rv) = last.get_mut(write.namespace as usize) {
            *rv = (*rv).max(write.rv);
        }
    }
    last
}

/// The server's pods per namespace: `(name, resourceVersion)`, sorted by name.
fn server_state(server: &ApiServer, namespaces: &[String]) -> Result<Vec<Vec<(String, u64)>>, BenchError> {
    namespaces
        .iter()
        .map(|namespace| {
            let pods = server
                .list("v1", "Pod", Some(namespace))
                .map_err(|e| BenchError::ApiServer(format!("listing pods in {namespace}: {e}")))?;
            let mut state: Vec<(String, u64)> = pods
                .iter()
                .map(|pod| {
                    let name = pod
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let rv = pod
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .and_then(|rv| rv.parse().ok())
                        .unwrap_or(0);
                    (name.to_owned(), rv)
                })
                .collect();
            state.sort();
            Ok(state)
        })
        .collect()
}

/// The scenario's report: one row (the watcher process) in the shape of the other scenarios, and
/// the load figures beside it.
fn scenario_report(figures: LoadFigures) -> ScenarioReport {
    let f = &figures.facts;
    let row = ResultRow {
        consumer: Consumer::KazanChannel.name().to_owned(),
        events: figures.delivered,
        rounds: 1,
        events_per_sec: (figures.write_seconds > 0.0)
            .then(|| figures.delivered as f64 / figures.write_seconds),
        seconds: Some(figures.write_seconds),
        cpu_seconds: Some(figures.watcher_cpu_seconds),
        cpu_us_per_event: (figures.delivered > 0)
            .then(|| figures.watcher_cpu_seconds * 1e6 / figures.delivered as f64),
        peak_rss_bytes: Some(figures.rss_hwm_bytes),
        connections: Some(f.watcher_connections),
        lost: Some(figures.lost),
        repeated: Some(figures.extra + figures.out_of_order),
        errors: Some(figures.watcher.retries),
        ..ResultRow::default()
    };
    let description = format!(
        "{} concurrent watches of pods, one per namespace, on the embedded API server over TLS \
         (HTTP/2 by ALPN, its default limit of 1,000 streams per connection), in their own process: \
         `Watcher::supervise` per namespace, typed `Pod`, one shared `kazan::Client`, all sending to \
         one channel (`send_to`); the consumer keeps a name → resourceVersion cache per namespace. \
         {} writer tasks in the harness create and update (merge patch) realistic pods through the \
         server's HTTP API and delete them through its in-process API (its HTTP DELETE answers a \
         `Status` without the version), each waiting for its answer, for {} s; then every watch \
         must reach the last write to its namespace. The server's history holds {} events; a watch \
         it ends for lagging resumes from its last version, or relists after `Gone`.",
        thousands(f.watches as u64),
        f.writers,
        f.seconds,
        thousands(f.history_limit as u64),
    );
    ScenarioReport {
        name: ScenarioName::Load.as_str().to_owned(),
        description,
        results: vec![row],
        columns: Vec::new(),
        load: Some(Box::new(figures)),
    }
}
