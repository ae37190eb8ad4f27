//! The reconcile runner over the queue, on tokio's paused clock: objects come from an in-memory
//! source standing in for the informer's store, triggers from a channel standing in for its
//! events.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::Stream;
use kazan::runtime::{Action, ObjectKey, Priority, QueueOptions, RunReport, Runner, WorkQueue};
use tokio::{
    sync::{Notify, mpsc},
    task::JoinHandle,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::{TestResult, WAIT, key};
use crate::support::scrape;

/// The stand-in object: its version tells which state a reconcile saw.
#[derive(Debug)]
struct Obj {
    version: u64,
}

type Objects = Arc<Mutex<HashMap<ObjectKey, Arc<Obj>>>>;

/// What the reconciles observed.
#[derive(Default)]
struct Seen {
    in_flight: Mutex<HashSet<ObjectKey>>,
    overlaps: AtomicUsize,
    max_concurrent: AtomicUsize,
    /// (key, version seen, virtual time) of every reconcile start.
    starts: Mutex<Vec<(ObjectKey, u64, Instant)>>,
}

impl Seen {
    fn enter(&self, key: &ObjectKey, version: u64) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if !in_flight.insert(key.clone()) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        self.max_concurrent.fetch_max(in_flight.len(), Ordering::SeqCst);
        self.starts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((key.clone(), version, Instant::now()));
    }

    fn leave(&self, key: &ObjectKey) {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    fn starts_of(&self, name: &str) -> Vec<(u64, Instant)> {
        self.starts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(k, _, _)| k.name == name)
            .map(|(_, v, t)| (*v, *t))
            .collect()
    }
}

fn put(objects: &Objects, name: &str, version: u64) {
    objects
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key(name), Arc::new(Obj { version }));
}

fn source(objects: &Objects) -> impl Fn(&ObjectKey) -> Option<Arc<Obj>> + Send + Sync + 'static {
    let objects = objects.clone();
    move |k: &ObjectKey| objects.lock().unwrap_or_else(|e| e.into_inner()).get(k).cloned()
}

fn triggers(
    mut rx: mpsc::UnboundedReceiver<(ObjectKey, Priority)>,
) -> impl Stream<Item = (ObjectKey, Priority)> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Waits (virtual time, bounded) until `done` holds.
async fn until(mut done: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    for _ in 0..100_000 {
        if done() {
            return Ok(());
        }
        if Instant::now() - start > WAIT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Err("condition not reached within the bound".into())
}

/// A running runner and the handles a test drives it with.
struct Running {
    tx: mpsc::UnboundedSender<(ObjectKey, Priority)>,
    stop: CancellationToken,
    task: JoinHandle<RunReport>,
}

impl Running {
    fn trigger(&self, name: &str) {
        let _ = self.tx.send((key(name), Priority::Normal));
    }

    async fn stop(self) -> Result<RunReport, tokio::task::JoinError> {
        self.stop.cancel();
        self.task.await
    }
}

/// Starts a runner whose reconcile records what it sees, waits `work(version)` of virtual time,
/// and returns what `answer(version)` says.
fn start(
    objects: &Objects,
    seen: &Arc<Seen>,
    workers: usize,
    gate: Option<Arc<Notify>>,
    answer: impl Fn(&ObjectKey, u64) -> Result<Action, String> + Send + Sync + 'static,
    error_policy: impl Fn(&str) -> Action + Send + Sync + 'static,
) -> Running {
    let (tx, rx) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let runner = Runner::new(
        WorkQueue::new(
            QueueOptions::default()
                .workers(workers)
                .rate_limiter(kazan::runtime::ExponentialBackoff::default()),
        ),
        source(objects),
        seen.clone(),
    )
    .shutdown_deadline(Duration::from_secs(10));
    let answer = Arc::new(answer);
    let task = tokio::spawn(runner.run(
        triggers(rx),
        move |obj: Arc<Obj>, seen: Arc<Seen>| {
            let answer = answer.clone();
            let gate = gate.clone();
            async move {
                let k = seen_key(&seen, &obj);
                seen.enter(&k, obj.version);
                match &gate {
                    Some(gate) if k.name == "k9" => gate.notified().await,
                    _ => tokio::time::sleep(Duration::from_millis(10)).await,
                }
                seen.leave(&k);
                answer(&k, obj.version)
            }
        },
        move |_obj: Arc<Obj>, err: &String, _seen: Arc<Seen>| error_policy(err),
        stop.clone().cancelled_owned(),
    ));
    Running { tx, stop, task }
}

/// The key of a stand-in object: `k{version / 1000}`.
fn seen_key(_seen: &Seen, obj: &Obj) -> ObjectKey {
    key(&format!("k{}", obj.version / 1000))
}

#[tokio::test(start_paused = true)]
async fn under_churn_a_key_is_never_reconciled_twice_at_once_and_its_last_reconcile_sees_its_last_version()
-> TestResult {
    let objects: Objects = Arc::default();
    let seen = Arc::new(Seen::default());
    let gate = Arc::new(Notify::new());
    // The objects' version encodes their key (version / 1000).
    for i in 0..5u64 {
        put(&objects, &format!("k{i}"), i * 1000);
    }
    let running = start(
        &objects,
        &seen,
        8,
        Some(gate.clone()),
        |_, _| Ok(Action::await_change()),
        |_| Action::backoff(),
    );

    // Churn: every key triggered many times while its reconciles run.
    for round in 0..20u64 {
        for i in 0..5u64 {
            put(&objects, &format!("k{i}"), i * 1000 + round);
            running.trigger(&format!("k{i}"));
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    until(|| seen.in_flight.lock().map(|s| s.is_empty()).unwrap_or(false)).await?;
    assert_eq!(
        seen.overlaps.load(Ordering::SeqCst),
        0,
        "a key was reconciled concurrently"
    );
    // Every key's last reconcile saw its last version.
    for i in 0..5u64 {
        let starts = seen.starts_of(&format!("k{i}"));
        assert_eq!(starts.last().map(|s| s.0), Some(i * 1000 + 19));
    }
    running.stop().await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_key_triggered_many_times_during_its_reconcile_is_reconciled_once_more() -> TestResult {
    let objects: Objects = Arc::default();
    let seen = Arc::new(Seen::default());
    let gate = Arc::new(Notify::new());
    // "k9" is reconciled until the gate opens.
    put(&objects, "k9", 9000);
    let reconciles = Arc::new(AtomicUsize::new(0));
    let counted = reconciles.clone();
    let running = start(
        &objects,
        &seen,
        4,
        Some(gate.clone()),
        move |_, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(Action::await_change())
        },
        |_| Action::backoff(),
    );
    running.trigger("k9");
    until(|| !seen.starts_of("k9").is_empty()).await?;
    for v in 1..=10 {
        put(&objects, "k9", 9000 + v);
        running.trigger("k9");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(seen.starts_of("k9").len(), 1, "reconciled again while in flight");
    gate.notify_one();
    until(|| reconciles.load(Ordering::SeqCst) == 1).await?;
    // The second reconcile waits at the gate too.
    until(|| seen.starts_of("k9").len() == 2).await?;
    gate.notify_one();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let starts = seen.starts_of("k9");
    assert_eq!(starts.len(), 2, "more than one reconcile after the ten triggers");
    assert_eq!(
        starts[1].0, 9010,
        "the second reconcile did not see the latest object"
    );
    running.stop().await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn requeue_reconciles_again_after_the_delay_and_await_change_does_not() -> TestResult {
    let objects: Objects = Arc::default();
    let seen = Arc::new(Seen::default());
    put(&objects, "k1", 1000);
    put(&objects, "k2", 2000);
    let running = start(
        &objects,
        &seen,
        2,
        None,
        |k, _| {
            Ok(if k.name == "k1" {
                Action::requeue(Duration::from_secs(60))
            } else {
                Action::await_change()
            })
        },
        |_| Action::backoff(),
    );
    running.trigger("k1");
    running.trigger("k2");
    tokio::time::sleep(Duration::from_secs(150)).await;
    let k1 = seen.starts_of("k1");
    assert_eq!(k1.len(), 3, "requeue every 60 s over 150 s: at 0, 60, 120");
    assert_eq!(
        k1[2].1 - k1[1].1,
        Duration::from_secs(60) + Duration::from_millis(10)
    );
    assert_eq!(seen.starts_of("k2").len(), 1);
    running.stop().await?;
    Ok(())
}

/// The per-key backoff through the runner: an error with `Action::backoff()` retries after 5,
/// 10, 20 ms (from the end of each failed reconcile); an error policy's requeue is taken as is.
#[tokio::test(start_paused = true)]
async fn errors_retry_after_the_per_key_backoff_or_as_the_error_policy_says() -> TestResult {
    let objects: Objects = Arc::default();
    let seen = Arc::new(Seen::default());
    put(&objects, "k1", 1000);
    put(&objects, "k2", 2000);
    let running = start(
        &objects,
        &seen,
        2,
        None,
        |k, _| Err(k.name.clone()),
        |err| {
            if err == "k2" {
                Action::requeue(Duration::from_secs(1))
            } else {
                Action::backoff()
            }
        },
    );
    running.trigger("k1");
    running.trigger("k2");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let k1 = seen.starts_of("k1");
    let gaps: Vec<Duration> = k1.windows(2).map(|w| w[1].1 - w[0].1).collect();
    // Each gap is the reconcile's 10 ms plus the backoff.
    let expected: Vec<Duration> = [5u64, 10, 20, 40, 80, 160, 320, 640]
        .iter()
        .map(|ms| Duration::from_millis(10 + ms))
        .collect();
    assert_eq!(gaps[..8], expected[..]);
    let k2 = seen.starts_of("k2");
    assert_eq!(k2.len(), 3, "requeued every second: at 0, 1.01 and 2.02 s");
    let report = running.stop().await?;
    assert!(report.errors >= 11);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn no_more_reconciles_run_at_once_than_the_queue_has_workers() -> TestResult {
    let objects: Objects = Arc::default();
    let seen = Arc::new(Seen::default());
    for i in 0..8u64 {
        put(&objects, &format!("k{i}"), i * 1000);
    }
    let running = start(
        &objects,
        &seen,
        3,
        None,
        |_, _| Ok(Action::await_change()),
        |_| Action::backoff(),
    );
    for i in 0..8 {
        running.trigger(&format!("k{i}"));
    }
    until(|| seen.starts.lock().map(|s| s.len() == 8).unwrap_or(false)).await?;
    assert_eq!(seen.max_concurrent.load(Ordering::SeqCst), 3);
    running.stop().await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_key_without_an_object_is_not_reconciled() -> TestResult {
    let objects: Objects = Arc::default();
    let seen = Arc::new(Seen::default());
    let running = start(
        &objects,
        &seen,
        2,
        None,
        |_, _| Ok(Action::await_change()),
        |_| Action::backoff(),
    );
    running.trigger("k1");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(seen.starts_of("k1").is_empty());
    let report = running.stop().await?;
    assert_eq!(report.reconciles, 0);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_reconciles_finish_until_the_deadline_and_reports_the_cut_ones() -> TestResult {
    let objects: Objects = Arc::default();
    let seen = Arc::new(Seen::default());
    let gate = Arc::new(Notify::new());
    put(&objects, "k1", 1000);
    put(&objects, "k2", 2000);
    put(&objects, "k9", 9000);
    // "k9" waits at a gate that never opens; "k1" takes 10 ms; "k2" finds no free worker.
    let running = start(
        &objects,
        &seen,
        2,
        Some(gate),
        |_, _| Ok(Action::await_change()),
        |_| Action::backoff(),
    );
    running.trigger("k9");
    until(|| !seen.starts_of("k9").is_empty()).await?;
    running.trigger("k1");
    until(|| !seen.starts_of("k1").is_empty()).await?;
    running.trigger("k2");
    tokio::task::yield_now().await;
    let report = running.stop().await?;
    assert_eq!(
        report.reconciles, 1,
        "k1 should have finished within the deadline"
    );
    assert_eq!(report.cut, vec![key("k9")]);
    assert_eq!(report.not_started, 1);
    assert!(seen.starts_of("k2").is_empty());
    Ok(())
}

/// The metrics of a running controller, scraped in the Prometheus text format and parsed as a
/// Prometheus server would; once the controller stops, its series are gone (client-go leaked
/// them: kubernetes/kubernetes#73587).
#[tokio::test(start_paused = true)]
async fn metrics_scrape_as_prometheus_text_and_a_stopped_controllers_series_disappear() -> TestResult {
    use kazan::runtime::{ExponentialBackoff, metrics::RuntimeMetrics};
    use prometheus_client::registry::Registry;

    fn value(scrape: &prometheus_parse::Scrape, metric: &str) -> Option<prometheus_parse::Value> {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && s.labels.get("controller") == Some("configmaps"))
            .map(|s| s.value.clone())
    }

    let mut registry = Registry::default();
    let metrics = RuntimeMetrics::new(&mut registry);
    let objects: Objects = Arc::default();
    let seen = Arc::new(Seen::default());
    put(&objects, "k1", 1000);
    put(&objects, "k2", 2000);
    let queue = WorkQueue::new(
        QueueOptions::default()
            .workers(2)
            .rate_limiter(ExponentialBackoff::default()),
    );
    queue.requeue_after(key("k3"), Duration::from_secs(3600));
    let runner = Runner::new(queue.clone(), source(&objects), seen.clone())
        .metrics(metrics.controller("configmaps", &queue));
    drop(queue);
    let (tx, rx) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let task = tokio::spawn(runner.run(
        triggers(rx),
        |obj: Arc<Obj>, seen: Arc<Seen>| async move {
            seen.enter(&key("any"), obj.version);
            seen.leave(&key("any"));
            tokio::time::sleep(Duration::from_millis(10)).await;
            if obj.version == 2000 {
                Err("k2 always fails")
            } else {
                Ok(Action::await_change())
            }
        },
        |_obj: Arc<Obj>, _err: &&str, _seen: Arc<Seen>| Action::backoff(),
        stop.clone().cancelled_owned(),
    ));
    tx.send((key("k1"), Priority::Normal))?;
    tx.send((key("k2"), Priority::Normal))?;
    // k1 once, k2 at 0 and after its 5 ms backoff; the next backoff is 10 ms.
    until(|| seen.starts.lock().map(|s| s.len() >= 3).unwrap_or(false)).await?;
    tokio::time::sleep(Duration::from_millis(12)).await;

    let scraped = scrape(&registry)?;
    let count = |m: &str| match value(&scraped, m) {
        Some(prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v)) => Some(v),
        _ => None,
    };
    let reconciles = count("kazan_reconciles_total").ok_or("no reconcile counter")?;
    let errors = count("kazan_reconcile_errors_total").ok_or("no error counter")?;
    assert!(
        reconciles >= 3.0 && errors >= 2.0 && reconciles - errors == 1.0,
        "{reconciles} {errors}"
    );
    assert_eq!(count("kazan_queue_retries_total"), Some(errors));
    assert_eq!(
        count("kazan_queue_delayed"),
        Some(2.0),
        "k3 requeued, k2 backing off"
    );
    assert!(count("kazan_queue_depth").is_some());
    assert!(count("kazan_queue_oldest_ready_age_seconds").is_some());
    match value(&scraped, "kazan_reconcile_duration_seconds") {
        Some(prometheus_parse::Value::Histogram(buckets)) => {
            let all = buckets.iter().map(|b| b.count).fold(0.0, f64::max);
            assert_eq!(all, reconciles, "every reconcile is in the histogram");
        }
        other => return Err(format!("no duration histogram: {other:?}").into()),
    }

    stop.cancel();
    task.await?;
    let scraped = scrape(&registry)?;
    let left: Vec<_> = scraped
        .samples
        .iter()
        .filter(|s| s.labels.get("controller") == Some("configmaps"))
        .map(|s| s.metric.clone())
        .collect();
    assert!(
        left.is_empty(),
        "series left after the controller stopped: {left:?}"
    );
    Ok(())
}

/// A panicking reconcile does not take the runner down: it counts as a failure and the key is
/// retried after its backoff.
#[tokio::test(start_paused = true)]
async fn a_panicking_reconcile_is_retried_after_the_backoff_and_reported() -> TestResult {
    let objects: Objects = Arc::default();
    let seen = Arc::new(Seen::default());
    put(&objects, "k1", 1000);
    let running = start(
        &objects,
        &seen,
        2,
        None,
        |_, _| -> Result<Action, String> { panic!("reconcile bug") },
        |_| Action::backoff(),
    );
    running.trigger("k1");
    until(|| seen.starts_of("k1").len() >= 3).await?;
    let starts = seen.starts_of("k1");
    // 10 ms of work, then 5 ms, then 10 ms of backoff.
    assert_eq!(starts[1].1 - starts[0].1, Duration::from_millis(15));
    assert_eq!(starts[2].1 - starts[1].1, Duration::from_millis(20));
    let report = running.stop().await?;
    assert!(report.panics >= 3, "{report:?}");
    assert_eq!(report.reconciles, 0);
    Ok(())
}
