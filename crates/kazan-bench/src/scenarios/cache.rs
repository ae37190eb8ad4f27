//! Cache (issue 18): N distinct pods (default 100,000, from `--events`) made from the realistic
//! pod in the embedded API server; each consumer, in its own process, lists them into its cache
//! (kazan's informer in four forms, kube-runtime's `reflector` in three), settles, and then the
//! harness compacts the server's history and expires the watch (an in-stream 410), so that the
//! consumer must relist once while the harness patches 1,000 of the pods. Time and CPU until
//! synced, steady RSS after the sync, peak RSS through the relist, and the store's own byte count
//! where it keeps one; ratios against the kube-runtime reflector doing the same job. The consumer
//! side is `consumers::cache`.

use std::time::Duration;

use kazan_apiserver::ApiServer;
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines},
    process::ChildStdout,
};

use super::Context;
use crate::{
    consumers::{
        Consumer,
        cache::{CONSUMERS, CacheLine, Done, Final, Ready, SETTLE, Synced},
    },
    error::BenchError,
    job::{Job, ScenarioName},
    report::{Column, ResultRow, ScenarioReport},
    stats::{median, ratio, thousands},
};

/// The namespaces the pods are spread over.
const NAMESPACES: u64 = 100;
/// Pods the harness patches while the consumer relists.
const WRITES: u64 = 1_000;
/// The pause between two of those writes, so that they go on through the relist.
const WRITE_EVERY: Duration = Duration::from_millis(2);
/// The server's event history: every write of a run, with room (the default is 1,000, which the
/// writes alone would fill while a relisted watch still needs the first of them).
const HISTORY_LIMIT: usize = 10_000;
/// How long the harness waits for the previous run's watches to close.
const WATCHES_CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// What one run of one consumer reported.
#[derive(Debug, Clone)]
struct Round {
    synced: Synced,
    ready: Ready,
    done: Done,
}

/// Runs the scenario.
pub async fn run(context: &Context) -> Result<ScenarioReport, BenchError> {
    let scenario = ScenarioName::Cache;
    let pods = context.events;
    let server = ApiServer::builder()
        .history_limit(HISTORY_LIMIT)
        .start()
        .await
        .map_err(|e| BenchError::ApiServer(format!("cannot start: {e}")))?;
    let started = std::time::Instant::now();
    let pod_bytes = fill(&server, &context.pod, pods).await?;
    eprintln!(
        "  {} pods created in {:.1} s",
        thousands(pods),
        started.elapsed().as_secs_f64()
    );
    let mut job = Job::new(scenario, 0, pods);
    job.server = Some(server.url());

    let runner = &context.runner;
    let selected: Vec<(Consumer, Consumer)> = CONSUMERS
        .iter()
        .copied()
        .filter(|(consumer, _)| runner.only.is_empty() || runner.only.contains(consumer))
        .collect();
    let mut rounds: Vec<Vec<Round>> = vec![Vec::new(); selected.len()];
    let mut failures: Vec<Vec<String>> = vec![Vec::new(); selected.len()];
    let mut patch = 0u64;
    for round in 1..=runner.rounds {
        for (i, (consumer, _)) in selected.iter().enumerate() {
            eprintln!("  round {round}/{}: {}", runner.rounds, consumer.name());
            drain_watches(&server).await;
            let once = run_once(&server, context, *consumer, &job, &mut patch);
            let result = match tokio::time::timeout(runner.timeout, once).await {
                Ok(result) => result,
                Err(_) => Err(BenchError::ChildTimeout {
                    consumer: consumer.name().to_owned(),
                    seconds: runner.timeout.as_secs(),
                }),
            };
            let (Some(runs), Some(failed)) = (rounds.get_mut(i), failures.get_mut(i)) else {
                continue;
            };
            match result {
                Ok(r) if r.done.objects != pods || r.synced.objects != pods => failed.push(format!(
                    "the store held {} objects after the sync and {} at the end, not {pods}",
                    r.synced.objects, r.done.objects
                )),
                Ok(r) => runs.push(r),
                Err(error) => {
                    eprintln!("  {error}");
                    failed.push(error.to_string());
                }
            }
        }
    }
    server.shutdown().await;

    let mut rows: Vec<ResultRow> = selected
        .iter()
        .zip(&rounds)
        .zip(failures)
        .map(|(((consumer, reference), runs), failures)| row(*consumer, *reference, pods, runs, failures))
        .collect();
    let references = rows.clone();
    let plain = references
        .iter()
        .find(|r| r.consumer == Consumer::KubeReflector.name() && r.rounds > 0)
        .and_then(|r| r.steady_rss_bytes);
    for row in &mut rows {
        row.steady_rss_vs_plain = ratio(row.steady_rss_bytes.map(|v| v as f64), plain.map(|v| v as f64));
        let Some(reference) = references
            .iter()
            .find(|r| Some(&r.consumer) == row.reference.as_ref() && r.rounds > 0)
        else {
            continue;
        };
        let as_f64 = |v: Option<u64>| v.map(|v| v as f64);
        row.sync_seconds_ratio = ratio(row.sync_seconds, reference.sync_seconds);
        row.sync_cpu_ratio = ratio(row.sync_cpu_seconds, reference.sync_cpu_seconds);
        row.steady_rss_ratio = ratio(as_f64(row.steady_rss_bytes), as_f64(reference.steady_rss_bytes));
    }
    Ok(ScenarioReport {
        name: scenario.as_str().to_owned(),
        description: format!(
            "{} distinct pods (the realistic pod, {pod_bytes} bytes of compact JSON as the server \
             serves it, with managedFields; {} namespaces, names and uids varied) in the embedded \
             API server over loopback HTTP/1.1. Each consumer, in its own process, fills its cache \
             with every pod; the time and CPU to sync run from its first request to the synced \
             store. It then settles for {} s (steady RSS read then) and resets its peak RSS; the \
             harness compacts the server's history and expires the watch (an in-stream 410), so \
             the consumer relists once while the harness patches {} pods, one every {} ms; the \
             relist peak is the peak RSS from then until the consumer holds the last write. Each \
             kazan row's ratios are against the kube-runtime reflector in its `against` column; \
             `relist peak ÷ own steady` is each consumer's own. kazan rows: `Informer` with its \
             initial list `Paginated` (500 a page) or `Streaming` (watch-list); `transform` is \
             `strip_managed_fields`; `compact` keeps objects as compact JSON; `metadata` is an \
             informer of `PartialObjectMetadata`. kube-runtime rows: `reflector` over `watcher` \
             with the default config (a list 500 a page, then a watch) and `default_backoff()`, \
             into a `Store<Pod>`, with `.modify()` clearing `managedFields`, or over \
             `Api<PartialObjectMeta<Pod>>`. Store bytes are the store's own count (kazan's compact \
             store only); `peak RSS` is the peak up to the sync. Medians over {} round(s); consumers alternate within each round.",
            thousands(pods),
            NAMESPACES,
            SETTLE.as_secs(),
            thousands(WRITES),
            WRITE_EVERY.as_millis(),
            runner.rounds,
        ),
        results: rows,
        load: None,
        columns: vec![
            Column::Consumer,
            Column::Reference,
            Column::SyncSeconds,
            Column::SyncSecondsRatio,
            Column::SyncCpu,
            Column::SyncCpuRatio,
            Column::PeakRss,
            Column::SteadyRss,
            Column::SteadyRssRatio,
            Column::SteadyRssVsPlain,
            Column::RelistPeakRss,
            Column::RelistPeakOverSteady,
            Column::StoreBytes,
            Column::RelistSeconds,
            Column::Errors,
        ],
    })
}

/// One consumer's row: medians over its rounds.
fn row(
    consumer: Consumer,
    reference: Consumer,
    pods: u64,
    runs: &[Round],
    failures: Vec<String>,
) -> ResultRow {
    let med = |field: fn(&Round) -> Option<f64>| median(&runs.iter().filter_map(field).collect::<Vec<_>>());
    let med_u64 = |field: fn(&Round) -> Option<u64>| {
        median(
            &runs
                .iter()
                .filter_map(field)
                .map(|v| v as f64)
                .collect::<Vec<_>>(),
        )
        .map(|v| v.round() as u64)
    };
    ResultRow {
        consumer: consumer.name().to_owned(),
        events: pods,
        rounds: runs.len(),
        failures,
        reference: Some(reference.name().to_owned()),
        sync_seconds: med(|r| Some(r.synced.seconds)),
        sync_cpu_seconds: med(|r| Some(r.synced.cpu_seconds)),
        steady_rss_bytes: med_u64(|r| Some(r.ready.rss_bytes)),
        relist_peak_rss_bytes: med_u64(|r| Some(r.done.relist_peak_rss_bytes)),
        relist_peak_over_steady: med(|r| {
            (r.ready.rss_bytes > 0).then(|| r.done.relist_peak_rss_bytes as f64 / r.ready.rss_bytes as f64)
        }),
        store_bytes: med_u64(|r| r.ready.store_bytes),
        relist_seconds: med(|r| Some(r.done.relist_seconds)),
        relist_cpu_seconds: med(|r| Some(r.done.relist_cpu_seconds)),
        objects: runs.iter().map(|r| r.done.objects).min(),
        errors: runs.iter().map(|r| r.done.errors).max(),
        peak_rss_bytes: med_u64(|r| Some(r.synced.peak_rss_bytes)),
        ..ResultRow::default()
    }
}

/// Creates `count` pods from the realistic one, round-robin over the namespaces; returns the size
/// of one as the server serves it (compact JSON).
async fn fill(server: &ApiServer, pod_json: &str, count: u64) -> Result<usize, BenchError> {
    let mut template: Value = serde_json::from_str(pod_json).map_err(BenchError::Pod)?;
    let metadata = template
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or(BenchError::PodShape("the pod has no metadata object"))?;
    for assigned_by_the_server in ["name", "namespace", "uid", "resourceVersion"] {
        metadata.remove(assigned_by_the_server);
    }
    for i in 0..NAMESPACES {
        let object = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace(i)},
        });
        server
            .create(object)
            .map_err(|e| BenchError::ApiServer(format!("creating namespace {}: {e}", namespace(i))))?;
    }
    let mut size = 0;
    for i in 0..count {
        let mut pod = template.clone();
        if let Some(metadata) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert("name".to_owned(), Value::String(pod_name(i)));
            metadata.insert("namespace".to_owned(), Value::String(namespace(i % NAMESPACES)));
        }
        let created = server
            .create(pod)
            .map_err(|e| BenchError::ApiServer(format!("creating {}: {e}", pod_name(i))))?;
        if i == 0 {
            size = serde_json::to_vec(&created).map_err(BenchError::Pod)?.len();
        }
        if i % 256 == 0 {
            tokio::task::yield_now().await;
        }
    }
    Ok(size)
}

fn namespace(i: u64) -> String {
    format!("cache-{i:03}")
}

fn pod_name(i: u64) -> String {
    format!("pod-{i:06}")
}

/// Waits until the previous run's watches are closed, so that the next consumer's relist is
/// forced on its own watch alone.
async fn drain_watches(server: &ApiServer) {
    let deadline = tokio::time::Instant::now() + WATCHES_CLOSE_TIMEOUT;
    let open = || server.stats().active_watches.get("pods").copied().unwrap_or(0);
    while open() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One consumer process through the scenario's steps.
async fn run_once(
    server: &ApiServer,
    context: &Context,
    consumer: Consumer,
    job: &Job,
    patch: &mut u64,
) -> Result<Round, BenchError> {
    let runner = &context.runner;
    let name = consumer.name().to_owned();
    let mut child = consumer.spawn_piped(&runner.exe, job, &runner.wrap, &name)?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(BenchError::Protocol {
            consumer: name,
            problem: "no stdin or stdout".to_owned(),
        });
    };
    let mut lines = BufReader::new(stdout).lines();
    let CacheLine::Synced(synced) = next_line(&mut lines, &name).await? else {
        return Err(unexpected(&name, "Synced"));
    };
    let CacheLine::Ready(ready) = next_line(&mut lines, &name).await? else {
        return Err(unexpected(&name, "Ready"));
    };
    let faults = server.faults();
    faults.compact_history();
    faults.expire_watches(Some("pods"));
    let mut last_rv = 0;
    let mut timer = tokio::time::interval(WRITE_EVERY);
    for _ in 0..WRITES {
        timer.tick().await;
        let i = *patch % job.events.max(1);
        *patch += 1;
        let written = server
            .merge_patch(
                "v1",
                "Pod",
                Some(&namespace(i % NAMESPACES)),
                &pod_name(i),
                serde_json::json!({"metadata": {"annotations": {"kazan-bench/write": patch.to_string()}}}),
            )
            .map_err(|e| BenchError::ApiServer(format!("patching {}: {e}", pod_name(i))))?;
        let rv = written
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|rv| rv.parse().ok())
            .unwrap_or(0);
        last_rv = u64::max(last_rv, rv);
    }
    let line = serde_json::to_string(&Final {
        resource_version: last_rv,
    })
    .map_err(BenchError::Results)?;
    stdin
        .write_all(format!("{line}\n").as_bytes())
        .await
        .map_err(|source| BenchError::File {
            path: "consumer stdin".into(),
            source,
        })?;
    let _ = stdin.flush().await;
    let CacheLine::Done(done) = next_line(&mut lines, &name).await? else {
        return Err(unexpected(&name, "Done"));
    };
    drop(stdin);
    let status = child.wait().await.map_err(|source| BenchError::Spawn {
        consumer: name.clone(),
        program: runner.exe.display().to_string(),
        source,
    })?;
    if !status.success() {
        return Err(BenchError::ChildFailed {
            consumer: name,
            status,
        });
    }
    Ok(Round { synced, ready, done })
}

/// The consumer's next line; an error when it ends first (its stderr says why).
async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>, name: &str) -> Result<CacheLine, BenchError> {
    loop {
        let line = lines.next_line().await.map_err(|source| BenchError::File {
            path: "consumer stdout".into(),
            source,
        })?;
        let Some(line) = line else {
            return Err(BenchError::Protocol {
                consumer: name.to_owned(),
                problem: "ended early (its stderr is above)".to_owned(),
            });
        };
        if line.trim().is_empty() {
            continue;
        }
        return serde_json::from_str(&line).map_err(|source| BenchError::ChildReport {
            consumer: name.to_owned(),
            line: line.chars().take(200).collect(),
            source,
        });
    }
}

fn unexpected(name: &str, wanted: &str) -> BenchError {
    BenchError::Protocol {
        consumer: name.to_owned(),
        problem: format!("printed another line where {wanted} was due"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(sync_s: f64, steady: u64, peak: u64) -> Round {
        Round {
            synced: Synced {
                seconds: sync_s,
                cpu_seconds: sync_s / 2.0,
                peak_rss_bytes: steady,
                objects: 10,
            },
            ready: Ready {
                rss_bytes: steady,
                store_bytes: None,
                objects: 10,
                peak_reset: true,
            },
            done: Done {
                relist_seconds: 1.0,
                relist_cpu_seconds: 0.5,
                relist_peak_rss_bytes: peak,
                rss_bytes: steady,
                objects: 10,
                store_bytes: None,
                errors: 0,
            },
        }
    }

    #[test]
    fn a_row_holds_medians_and_the_relist_peak_over_the_consumers_own_steady_memory() {
        let runs = [round(1.0, 100, 200), round(3.0, 100, 180), round(2.0, 300, 330)];
        let row = row(
            Consumer::KubeReflector,
            Consumer::KubeReflector,
            10,
            &runs,
            Vec::new(),
        );
        assert_eq!(row.rounds, 3);
        assert_eq!(row.sync_seconds, Some(2.0));
        assert_eq!(row.steady_rss_bytes, Some(100));
        assert_eq!(row.relist_peak_rss_bytes, Some(200));
        // 2.0, 1.8 and 1.1: the median of each round's own ratio.
        assert_eq!(row.relist_peak_over_steady, Some(1.8));
        assert_eq!(row.reference.as_deref(), Some("kube-reflector"));
        assert_eq!(row.objects, Some(10));
    }

    #[test]
    fn pods_are_spread_over_the_namespaces_with_distinct_names() {
        assert_eq!(namespace(7), "cache-007");
        assert_eq!(pod_name(99_999), "pod-099999");
        assert_ne!(pod_name(1), pod_name(101));
    }
}
