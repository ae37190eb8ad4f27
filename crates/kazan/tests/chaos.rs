//! Chaos: the embedded API server under steady churn (creates, updates and deletes of ConfigMaps
//! and Pods across 20 namespaces) while a seeded fault schedule cuts watches mid-event, ends them,
//! stalls them past the watchers' idle deadline, answers watch and list requests with 500, 503 and
//! 429 + Retry-After, and compacts the history (forcing 410 Gone). Several consumers — the spawned
//! form (own channel and `send_to`), the `Stream` form and the supervised form, typed and dynamic,
//! over all namespaces and over one — keep a cache and relist after Gone.
//!
//! At the end, with the churn stopped and the watchers caught up, every consumer's cache equals
//! the server's objects (resourceVersion and content), and every list and the watch after it equal
//! the server's own change log: the list is the state at its version, the watch delivers every
//! later change of its resource and scope once, in order, up to the end or the next Gone.
//!
//! The seed is printed at the start and in any failure; `KAZAN_CHAOS_SEED=<seed>` replays the
//! schedule. `KAZAN_CHAOS_MINUTES` and `KAZAN_CHAOS_FAULT_RATE` make a longer, harsher run
//! (`scripts/soak`). The counts are written to stderr and to `target/chaos-report.txt`.

mod chaos {
    pub mod backoff_curve;
    pub mod churn;
    pub mod consumer;
    pub mod informers;
    pub mod operator;
    pub mod schedule;
    pub mod settings;
    pub mod shards;
    pub mod verify;
}

use std::{
    collections::BTreeMap,
    fmt,
    io::Write as _,
    sync::{Arc, Mutex},
    time::Duration,
};

use chaos::{
    churn::{Churn, ChurnCounts, Kind, MARK},
    consumer::{self, Cached, Form, Key, Progress, Record, Spec},
    schedule::{self, FaultCounts},
    settings::Settings,
    verify,
};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kazan::{
    ApiResource, Client, Config, DynamicObject, Request,
    watcher::{BackoffConfig, WatcherOptions},
};
use kazan_apiserver::{ApiServer, Stats};
use serde_json::Value;
use tokio::{task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

/// A failure, shown as is (the test harness prints the `Debug` of a returned error).
struct Failure(String);

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How long the watchers get to catch up once the churn and the faults have stopped.
const CATCH_UP: Duration = Duration::from_secs(60);
/// Beyond the churn: setup, catch-up, checks.
const OVERHEAD: Duration = Duration::from_secs(150);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_watcher_delivers_every_change_once_and_in_order_through_faults() -> Result<(), Failure> {
    let settings = Settings::from_env().map_err(Failure)?;
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let header = format!(
        "chaos: seed {} | churn {:.1} s at {} writes/s | {} faults/s | {} namespaces x {} names x 2 kinds | idle deadline {:?}\n\
         replay: {}\n",
        settings.seed,
        settings.churn.as_secs_f64(),
        settings.writes_per_second,
        settings.fault_rate,
        settings.namespaces.len(),
        settings.names_per_namespace,
        settings.idle_timeout,
        settings.replay_command()
    );
    println!("{header}");
    let outcome = match tokio::time::timeout(settings.churn + OVERHEAD, run(&settings)).await {
        Ok(outcome) => outcome,
        Err(_) => Err((
            format!("the run did not finish within {:?}", settings.churn + OVERHEAD),
            Counts::default(),
        )),
    };
    let (verdict, counts, result) = match outcome {
        Ok(counts) => ("PASS".to_string(), counts, Ok(())),
        Err((error, counts)) => (
            format!("FAIL: {error}"),
            counts,
            Err(Failure(format!(
                "chaos run failed (seed {}): {error}\nreplay: {}",
                settings.seed,
                settings.replay_command()
            ))),
        ),
    };
    let report = format!("{header}{counts}result: {verdict}\n");
    publish(&settings, &report);
    result
}

/// Shows the report even when the test's output is captured (a direct write to the standard
/// error is not captured, unlike `eprintln!`), and keeps a copy in a file.
fn publish(settings: &Settings, report: &str) {
    let _ = std::io::stderr().write_all(format!("\n{report}\n").as_bytes());
    if let Some(dir) = std::path::Path::new(&settings.report_path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(&settings.report_path, report);
}

/// The consumers: every form, typed and dynamic, all namespaces and one.
fn specs(settings: &Settings) -> Vec<Spec> {
    let ns = |i: usize| settings.namespaces.get(i).cloned();
    vec![
        Spec {
            form: Form::Spawned,
            kind: Kind::ConfigMap,
            dynamic: false,
            namespace: None,
            page_size: 25,
            stop_every: Some(150),
        },
        Spec {
            form: Form::SendTo,
            kind: Kind::Pod,
            dynamic: false,
            namespace: None,
            page_size: 500,
            stop_every: Some(120),
        },
        Spec {
            form: Form::Stream,
            kind: Kind::ConfigMap,
            dynamic: false,
            namespace: ns(3),
            page_size: 3,
            stop_every: Some(20),
        },
        Spec {
            form: Form::Stream,
            kind: Kind::Pod,
            dynamic: true,
            namespace: None,
            page_size: 40,
            stop_every: None,
        },
        Spec {
            form: Form::Supervised,
            kind: Kind::ConfigMap,
            dynamic: true,
            namespace: None,
            page_size: 500,
            stop_every: Some(170),
        },
        Spec {
            form: Form::Spawned,
            kind: Kind::Pod,
            dynamic: true,
            namespace: ns(11),
            page_size: 500,
            stop_every: None,
        },
    ]
}

fn options(settings: &Settings) -> WatcherOptions {
    WatcherOptions::new()
        .log(Some(tracing::Level::DEBUG))
        .idle_timeout(settings.idle_timeout)
        .watch_timeout(3..8)
        .request_timeout(Duration::from_secs(10))
        .backoff(BackoffConfig {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(500),
            reset_after: Duration::from_secs(60),
        })
}

type Consumer = (Spec, Arc<Mutex<Progress>>, JoinHandle<Result<Record, String>>);

fn spawn_consumer(
    spec: Spec,
    client: &Client,
    options: &WatcherOptions,
    stop: &CancellationToken,
) -> Consumer {
    let progress = Arc::new(Mutex::new(Progress::default()));
    let (client, options, stop, p) = (client.clone(), options.clone(), stop.clone(), progress.clone());
    let s = spec.clone();
    let task = match (spec.kind, spec.dynamic) {
        (Kind::ConfigMap, false) => {
            let request = scoped(Request::list::<ConfigMap>(), &spec);
            tokio::spawn(consumer::run(s, client, request, options, stop, p))
        }
        (Kind::Pod, false) => {
            let request = scoped(Request::list::<Pod>(), &spec);
            tokio::spawn(consumer::run(s, client, request, options, stop, p))
        }
        (Kind::ConfigMap, true) => {
            let request = scoped(
                Request::list_of::<DynamicObject>(ApiResource::of::<ConfigMap>()),
                &spec,
            );
            tokio::spawn(consumer::run(s, client, request, options, stop, p))
        }
        (Kind::Pod, true) => {
            let request = scoped(Request::list_of::<DynamicObject>(ApiResource::of::<Pod>()), &spec);
            tokio::spawn(consumer::run(s, client, request, options, stop, p))
        }
    };
    (spec, progress, task)
}

fn scoped<T>(request: Request<T>, spec: &Spec) -> Request<T> {
    match &spec.namespace {
        Some(ns) => request.namespace(ns),
        None => request,
    }
}

/// Everything the report counts.
#[derive(Default)]
struct Counts {
    churn: ChurnCounts,
    changes: usize,
    faults: FaultCounts,
    server: Stats,
    records: Vec<(String, consumer::Counts)>,
    catch_up: Option<Duration>,
    informers: Vec<String>,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.churn;
        writeln!(
            f,
            "writes: {} ({} creates, {} updates, {} deletes); changes logged by the server: {}",
            c.total(),
            c.creates,
            c.updates,
            c.deletes,
            self.changes
        )?;
        let by_kind: Vec<String> = self
            .faults
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        writeln!(
            f,
            "faults: {} ({}); error answers not injected (enough pending): {}",
            self.faults.total(),
            by_kind.join(", "),
            self.faults.skipped
        )?;
        writeln!(
            f,
            "server: {} requests, {} watches started, {} watches ended for lagging",
            self.server.requests, self.server.watches_started, self.server.watches_lagged
        )?;
        if let Some(d) = self.catch_up {
            writeln!(f, "caught up {:.1} s after the churn stopped", d.as_secs_f64())?;
        }
        writeln!(
            f,
            "{:<38} {:>8} {:>7} {:>6} {:>6} {:>9} {:>6} {:>8} {:>8} {:>9}",
            "consumer",
            "events",
            "listed",
            "lists",
            "gones",
            "restarts",
            "stops",
            "resumes",
            "retries",
            "bookmarks"
        )?;
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let mut total = consumer::Counts::default();
        for (name, n) in &self.records {
            writeln!(
                f,
                "{:<38} {:>8} {:>7} {:>6} {:>6} {:>9} {:>6} {:>8} {:>8} {:>9}",
                name,
                n.events,
                n.listed,
                n.lists,
                n.gones,
                n.restarts,
                n.stops,
                opt(n.resumes),
                opt(n.retries),
                opt(n.bookmarks)
            )?;
            total.events += n.events;
            total.listed += n.listed;
            total.lists += n.lists;
            total.gones += n.gones;
            total.gones_while_listing += n.gones_while_listing;
            total.restarts += n.restarts;
            total.stops += n.stops;
        }
        writeln!(
            f,
            "{:<38} {:>8} {:>7} {:>6} {:>6} {:>9} {:>6}",
            "total", total.events, total.listed, total.lists, total.gones, total.restarts, total.stops
        )?;
        writeln!(
            f,
            "(stops: watchers stopped with a full channel and replaced by one started from their reported version; \
             resumes, retries, bookmarks: the watchers' own counters; gones during a list: {})",
            total.gones_while_listing
        )?;
        for line in &self.informers {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// One chaos run. On failure, the error and the counts so far.
async fn run(settings: &Settings) -> Result<Counts, (String, Counts)> {
    let mut counts = Counts::default();
    match run_inner(settings, &mut counts).await {
        Ok(()) => Ok(counts),
        Err(e) => Err((e, counts)),
    }
}

async fn run_inner(settings: &Settings, counts: &mut Counts) -> Result<(), String> {
    let namespaces: Vec<&str> = settings.namespaces.iter().map(String::as_str).collect();
    let server = Arc::new(
        ApiServer::builder()
            .namespaces(&namespaces)
            .record_changes(true)
            .bookmark_interval(Duration::from_millis(400))
            .start()
            .await
            .map_err(|e| format!("starting the server: {e}"))?,
    );
    let client = Client::new(Config::new(
        server
            .url()
            .parse()
            .map_err(|e| format!("the server's URL: {e}"))?,
    ))
    .map_err(|e| format!("the client: {e}"))?;
    let mut churn = Churn::new(server.clone(), settings);
    churn.populate()?;

    let stop = CancellationToken::new();
    let options = options(settings);
    let consumers: Vec<Consumer> = specs(settings)
        .into_iter()
        .map(|spec| spawn_consumer(spec, &client, &options, &stop))
        .collect();

    let until = Instant::now() + settings.churn;
    let informer_consumers = chaos::informers::InformerConsumers::spawn(
        &client,
        &options,
        settings.namespaces.get(5).cloned().unwrap_or_default(),
        settings.churn,
        until,
    )?;
    let schedule = tokio::spawn(schedule::run(
        server.faults(),
        settings.seed,
        settings.fault_rate,
        settings.idle_timeout,
        until,
    ));
    let churned = churn.run(settings.writes_per_second, until).await;
    counts.churn = churn.counts.clone();
    counts.faults = schedule.await.map_err(|e| format!("the fault schedule: {e}"))?;
    server.faults().clear_rules();
    churned?;

    // Every consumer watching, at the last change of its resource and scope.
    let changes = server.changes();
    counts.changes = changes.len();
    let stopped_at = Instant::now();
    let deadline = stopped_at + CATCH_UP;
    let targets: Vec<u64> = consumers
        .iter()
        .map(|(spec, _, _)| {
            changes
                .iter()
                .filter(|c| {
                    c.group.is_empty()
                        && c.plural == spec.kind.plural()
                        && spec.namespace.as_deref().is_none_or(|ns| c.namespace == ns)
                })
                .map(|c| c.resource_version)
                .max()
                .unwrap_or(0)
        })
        .collect();
    loop {
        let behind: Vec<String> = consumers
            .iter()
            .zip(&targets)
            .filter_map(|((spec, progress, task), target)| {
                let p = progress.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let done = task.is_finished() || (p.watching && p.at >= *target);
                (!done).then(|| {
                    format!(
                        "{} at {} (watching: {}) of {target}",
                        spec.name(),
                        p.at,
                        p.watching
                    )
                })
            })
            .collect();
        let mut behind = behind;
        behind.extend(informer_consumers.behind(|kind, ns| server_objects(&server, kind, ns))?);
        if behind.is_empty() {
            counts.catch_up = Some(stopped_at.elapsed());
            break;
        }
        if Instant::now() >= deadline {
            stop.cancel();
            return Err(format!(
                "not caught up within {CATCH_UP:?}: {}",
                behind.join("; ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();

    let mut records = Vec::new();
    let mut failures = Vec::new();
    for (spec, _, task) in consumers {
        match tokio::time::timeout(Duration::from_secs(20), task).await {
            Ok(Ok(Ok(record))) => records.push(record),
            Ok(Ok(Err(e))) => failures.push(e),
            Ok(Err(e)) => failures.push(format!("{}: the task failed: {e}", spec.name())),
            Err(_) => failures.push(format!("{}: did not stop within 20 s", spec.name())),
        }
    }
    counts.records = records
        .iter()
        .map(|r| (r.spec.name(), r.counts.clone()))
        .collect();
    counts.server = server.stats();
    match informer_consumers.finish(&changes).await {
        Ok(lines) => counts.informers = lines,
        Err(e) => failures.push(e),
    }
    if !failures.is_empty() {
        return Err(failures.join("\n"));
    }

    for record in &records {
        let relevant = verify::changes_for(record, &changes);
        verify::check_segments(record, &relevant)?;
        let objects = server_objects(&server, record.spec.kind, record.spec.namespace.as_deref())?;
        verify::check_cache(record, &objects)?;
        if record.counts.events == 0 {
            return Err(format!(
                "{}: no event was delivered: the run proves nothing",
                record.spec.name()
            ));
        }
    }
    server.shutdown().await;
    Ok(())
}

/// The server's objects of a kind and scope, as the caches keep them.
fn server_objects(
    server: &ApiServer,
    kind: Kind,
    namespace: Option<&str>,
) -> Result<BTreeMap<Key, Cached>, String> {
    let items = server
        .list("v1", kind.name(), namespace)
        .map_err(|e| format!("listing {} on the server: {e}", kind.plural()))?;
    let mut objects = BTreeMap::new();
    for item in items {
        let text = |path: &str| {
            item.pointer(path)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let rv = text("/metadata/resourceVersion");
        let rv = rv
            .parse()
            .map_err(|e| format!("a server object's resourceVersion {rv:?}: {e}"))?;
        let mark = item
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(MARK))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        objects.insert(
            (text("/metadata/namespace"), text("/metadata/name")),
            Cached { rv, mark },
        );
    }
    Ok(objects)
}

/// The checks themselves: they accept the exact history and reject a lost event, a repeated one,
/// a list that is not the state at its version, and a stale cache.
#[test]
fn the_checks_reject_a_lost_or_repeated_event_a_wrong_list_and_a_stale_cache() -> Result<(), Failure> {
    use chaos::consumer::{Delivered, Segment};
    use kazan::watcher::EventType;
    use kazan_apiserver::{Change, ChangeType};

    let change = |rv: u64, change_type: ChangeType, name: &str| Change {
        resource_version: rv,
        change_type,
        group: String::new(),
        plural: "configmaps".into(),
        namespace: "ns".into(),
        name: name.into(),
    };
    let changes = [
        change(1, ChangeType::Added, "a"),
        change(2, ChangeType::Added, "b"),
        change(3, ChangeType::Modified, "a"),
        change(4, ChangeType::Deleted, "b"),
    ];
    let key = |name: &str| ("ns".to_string(), name.to_string());
    let delivered = |rv: u64, event: EventType, name: &str| Delivered {
        rv,
        event,
        key: key(name),
    };
    let record = |listed: Vec<(Key, u64)>, events: Vec<Delivered>| Record {
        spec: Spec {
            form: Form::Stream,
            kind: Kind::ConfigMap,
            dynamic: false,
            namespace: None,
            page_size: 1,
            stop_every: None,
        },
        segments: vec![Segment {
            list_rv: 2,
            listed,
            events,
            ended_by_gone: false,
        }],
        cache: BTreeMap::from([(
            key("a"),
            Cached {
                rv: 3,
                mark: "m".into(),
            },
        )]),
        counts: consumer::Counts::default(),
    };
    let relevant: Vec<&Change> = changes.iter().collect();
    let list = vec![(key("a"), 1), (key("b"), 2)];
    let exact = record(
        list.clone(),
        vec![
            delivered(3, EventType::Modified, "a"),
            delivered(4, EventType::Deleted, "b"),
        ],
    );
    verify::check_segments(&exact, &relevant).map_err(Failure)?;
    let server = BTreeMap::from([(
        key("a"),
        Cached {
            rv: 3,
            mark: "m".into(),
        },
    )]);
    verify::check_cache(&exact, &server).map_err(Failure)?;

    let lost = record(list.clone(), vec![delivered(4, EventType::Deleted, "b")]);
    let lost_at_end = record(list.clone(), vec![delivered(3, EventType::Modified, "a")]);
    let repeated = record(
        list.clone(),
        vec![
            delivered(3, EventType::Modified, "a"),
            delivered(4, EventType::Deleted, "b"),
            delivered(4, EventType::Deleted, "b"),
        ],
    );
    let wrong_list = record(vec![(key("a"), 1)], exact.segments[0].events.clone());
    for (what, bad) in [
        ("lost", lost),
        ("lost at the end", lost_at_end),
        ("repeated", repeated),
        ("wrong list", wrong_list),
    ] {
        if verify::check_segments(&bad, &relevant).is_ok() {
            return Err(Failure(format!("the {what} history passed the check")));
        }
    }
    let stale = BTreeMap::from([(
        key("a"),
        Cached {
            rv: 5,
            mark: "n".into(),
        },
    )]);
    if verify::check_cache(&exact, &stale).is_ok() {
        return Err(Failure("a stale cache passed the check".into()));
    }
    Ok(())
}
