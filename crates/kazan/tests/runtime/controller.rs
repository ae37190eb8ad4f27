//! The controller against the embedded API server: sources and their sync, owner mapping,
//! priorities of listed keys, predicates, graceful shutdown and leader election. The primary
//! resource is ConfigMaps in `ctl`; children and watched objects are Secrets.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kazan::{
    Client, Config, Request,
    lease::{ElectionConfig, Leadership, LeaseLock},
    runtime::{Action, Controller, ControllerError, ObjectKey, Predicate, QueueOptions, RunReport},
};
use kazan_apiserver::{ApiServer, FaultAction, FaultRule};
use serde_json::{Value, json};
use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
    time::Instant,
};

use super::{TestError, TestResult};

const NS: &str = "ctl";
use crate::support::{WAIT, scrape};
/// How long a test watches for a reconcile that must not happen.
const QUIET: Duration = Duration::from_millis(800);

async fn server() -> Result<ApiServer, TestError> {
    Ok(ApiServer::builder().namespaces(&[NS]).start().await?)
}

fn client(server: &ApiServer) -> Result<Client, TestError> {
    Ok(Client::new(Config::new(server.url().parse()?))?)
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::namespaced(NS, name)
}

async fn create_cm(client: &Client, name: &str) -> Result<ConfigMap, TestError> {
    let cm: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS},
        "data": {"v": "1"}
    }))?;
    Ok(client.run(&Request::create(&cm)?.namespace(NS)).await?)
}

async fn patch_cm(client: &Client, name: &str, patch: Value) -> Result<ConfigMap, TestError> {
    Ok(client
        .run(&Request::merge_patch::<ConfigMap>(name, &patch).namespace(NS))
        .await?)
}

fn owner_ref(owner: &ConfigMap, controller: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "name": owner.metadata.name, "uid": owner.metadata.uid, "controller": controller
    })
}

async fn create_secret(
    client: &Client,
    name: &str,
    owners: Vec<Value>,
    annotations: Value,
) -> Result<Secret, TestError> {
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": NS, "ownerReferences": owners, "annotations": annotations},
        "stringData": {"v": "1"}
    }))?;
    Ok(client.run(&Request::create(&secret)?.namespace(NS)).await?)
}

async fn patch_secret(client: &Client, name: &str, patch: Value) -> Result<Secret, TestError> {
    Ok(client
        .run(&Request::merge_patch::<Secret>(name, &patch).namespace(NS))
        .await?)
}

/// What the reconciles of a test saw: every start, in order, with the resourceVersion read.
#[derive(Default)]
struct Log {
    starts: Mutex<Vec<(String, String)>>,
    changed: Notify,
}

impl Log {
    fn record(&self, cm: &ConfigMap) {
        self.starts.lock().unwrap_or_else(|e| e.into_inner()).push((
            cm.metadata.name.clone().unwrap_or_default(),
            cm.metadata.resource_version.clone().unwrap_or_default(),
        ));
        self.changed.notify_waiters();
    }

    fn names(&self) -> Vec<String> {
        self.starts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn count(&self, name: &str) -> usize {
        self.names().iter().filter(|n| *n == name).count()
    }

    /// Waits until `done` holds over the names reconciled so far.
    async fn wait_until(&self, what: &str, done: impl Fn(&[String]) -> bool) -> TestResult {
        let until = Instant::now() + WAIT;
        loop {
            let notified = self.changed.notified();
            if done(&self.names()) {
                return Ok(());
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return Err(format!("{what}: not within {WAIT:?}; reconciled {:?}", self.names()).into());
            }
        }
    }

    fn clear(&self) {
        self.starts.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Runs `controller` with a reconcile that logs and succeeds, until `stop` is notified.
fn spawn_logging(
    controller: Controller<ConfigMap>,
    log: Arc<Log>,
) -> JoinHandle<Result<RunReport, ControllerError>> {
    tokio::spawn(controller.run(
        |cm: Arc<ConfigMap>, log: Arc<Log>| async move {
            log.record(&cm);
            Ok::<_, std::io::Error>(Action::await_change())
        },
        |_cm, _err, _log| Action::backoff(),
        log,
    ))
}

/// A reconcile never starts while a source has not synced: when the owned resource cannot be
/// listed at all (403), the controller reports which source did not sync and never reconciles,
/// although the primary store synced (controller-runtime `Controller.Start` waits for
/// `WaitForCacheSync` of every source before starting workers, pkg/internal/controller).
#[tokio::test]
async fn no_reconcile_runs_before_every_source_has_synced() -> TestResult {
    let server = server().await?;
    let client = client(&server)?;
    create_cm(&client, "a").await?;
    server.faults().add_rule(
        FaultRule::new(FaultAction::status(403, "Forbidden", "secrets are not for you"))
            .method("GET")
            .path_prefix(&format!("/api/v1/namespaces/{NS}/secrets"))
            .times(1000),
    );
    let controller = Controller::new(client.clone(), Request::list::<ConfigMap>().namespace(NS))?
        .owns(Request::list::<Secret>().namespace(NS))?;
    let primary = controller.store();
    let log = Arc::new(Log::default());
    let run = spawn_logging(controller, log.clone());
    let ended = tokio::time::timeout(WAIT, run).await??;
    assert!(primary.is_synced(), "the primary store should have synced");
    match ended {
        Err(ControllerError::NotSynced { resource, .. }) => {
            assert!(resource.contains("secrets"), "{resource}")
        }
        other => return Err(format!("expected NotSynced for secrets, got {other:?}").into()),
    }
    assert_eq!(
        log.names(),
        Vec::<String>::new(),
        "reconciled before the owned store synced"
    );
    Ok(())
}

/// controller-runtime `handler.EnqueueRequestForOwner(..., OnlyControllerOwner())`
/// (pkg/handler/enqueue_owner.go): a child maps to the owner in its ownerReferences that has
/// `controller: true` and the primary's kind; on an update both the old and the new owners.
#[tokio::test]
async fn owned_children_trigger_their_controller_owner_old_and_new() -> TestResult {
    let server = server().await?;
    let client = client(&server)?;
    let a = create_cm(&client, "a").await?;
    let b = create_cm(&client, "b").await?;
    create_cm(&client, "c").await?;
    create_secret(&client, "child", vec![owner_ref(&a, true)], json!({})).await?;
    create_secret(&client, "not-controlled", vec![owner_ref(&b, false)], json!({})).await?;
    let controller = Controller::new(client.clone(), Request::list::<ConfigMap>().namespace(NS))?
        .owns(Request::list::<Secret>().namespace(NS))?;
    let log = Arc::new(Log::default());
    let run = spawn_logging(controller, log.clone());
    log.wait_until("initial reconciles", |n| {
        ["a", "b", "c"].iter().all(|x| n.iter().any(|y| y == x))
    })
    .await?;
    tokio::time::sleep(QUIET).await;
    log.clear();

    patch_secret(&client, "child", json!({"stringData": {"v": "2"}})).await?;
    log.wait_until("owner of the changed child", |n| n.iter().any(|x| x == "a"))
        .await?;

    patch_secret(&client, "not-controlled", json!({"stringData": {"v": "2"}})).await?;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        log.count("b"),
        0,
        "a non-controller owner reference triggered a reconcile"
    );

    log.clear();
    patch_secret(
        &client,
        "child",
        json!({"metadata": {"ownerReferences": [owner_ref(&b, true)]}}),
    )
    .await?;
    log.wait_until("both owners of a re-parented child", |n| {
        n.iter().any(|x| x == "a") && n.iter().any(|x| x == "b")
    })
    .await?;
    assert_eq!(log.count("c"), 0);
    run.abort();
    Ok(())
}

/// kube-runtime `Controller::watches(api, config, mapper)`: any object maps to the keys its mapper
/// returns.
#[tokio::test]
async fn watched_objects_trigger_the_keys_their_mapper_returns() -> TestResult {
    let server = server().await?;
    let client = client(&server)?;
    create_cm(&client, "target").await?;
    create_cm(&client, "bystander").await?;
    create_secret(
        &client,
        "pointer",
        vec![],
        json!({"example.com/target": "target"}),
    )
    .await?;
    let controller = Controller::new(client.clone(), Request::list::<ConfigMap>().namespace(NS))?.watches(
        Request::list::<Secret>().namespace(NS),
        |secret: &Secret| {
            let target = secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("example.com/target"));
            target.map(|t| key(t)).into_iter().collect()
        },
    )?;
    let log = Arc::new(Log::default());
    let run = spawn_logging(controller, log.clone());
    log.wait_until("initial reconciles", |n| n.iter().any(|x| x == "bystander"))
        .await?;
    tokio::time::sleep(QUIET).await;
    log.clear();
    patch_secret(&client, "pointer", json!({"stringData": {"v": "2"}})).await?;
    log.wait_until("the mapped key", |n| n.iter().any(|x| x == "target"))
        .await?;
    tokio::time::sleep(QUIET).await;
    assert_eq!(log.count("bystander"), 0);
    run.abort();
    Ok(())
}

/// A reconcile that blocks its one worker on the first key until released.
fn spawn_blocking_first(
    controller: Controller<ConfigMap>,
    log: Arc<Log>,
    release: Arc<Notify>,
) -> JoinHandle<Result<RunReport, ControllerError>> {
    let first = Arc::new(Mutex::new(true));
    tokio::spawn(controller.run(
        move |cm: Arc<ConfigMap>, log: Arc<Log>| {
            let release = release.clone();
            let first = std::mem::replace(&mut *first.lock().unwrap_or_else(|e| e.into_inner()), false);
            async move {
                log.record(&cm);
                if first {
                    release.notified().await;
                }
                Ok::<_, std::io::Error>(Action::await_change())
            }
        },
        |_cm, _err, _log| Action::backoff(),
        log,
    ))
}

/// controller-runtime's priority queue (pkg/controller/priorityqueue, used by
/// pkg/internal/controller for `handler.WithLowPriorityWhenUnchanged`): objects of the initial
/// list are queued at low priority, so a live change made meanwhile is reconciled before them.
#[tokio::test]
async fn keys_of_the_initial_list_run_after_a_live_change() -> TestResult {
    let server = server().await?;
    let client = client(&server)?;
    for i in 0..5 {
        create_cm(&client, &format!("listed-{i}")).await?;
    }
    let controller = Controller::new(client.clone(), Request::list::<ConfigMap>().namespace(NS))?
        .queue_options(|| QueueOptions::default().workers(1));
    let store = controller.store();
    let log = Arc::new(Log::default());
    let release = Arc::new(Notify::new());
    let run = spawn_blocking_first(controller, log.clone(), release.clone());
    log.wait_until("the first listed key", |n| !n.is_empty()).await?;
    create_cm(&client, "live").await?;
    let until = Instant::now() + WAIT;
    while store.get(NS, "live").is_none() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The store has it; give the trigger a moment to reach the queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    release.notify_waiters();
    log.wait_until("every key", |n| n.len() >= 6).await?;
    let names = log.names();
    assert_eq!(
        names[1], "live",
        "a listed key ran before the live change: {names:?}"
    );
    run.abort();
    Ok(())
}

/// The same after a relist: the watch is cut, changes happen while it cannot come back, the
/// history is compacted, so the informer relists (410 Gone): the keys the relist finds changed are
/// queued at low priority, after a live change made during their wait (client-go's reflector
/// relists on `Expired`, tools/cache/reflector.go; controller-runtime lowers the priority of
/// objects from a list).
#[tokio::test]
async fn keys_found_changed_by_a_relist_run_after_a_live_change() -> TestResult {
    let server = server().await?;
    let client = client(&server)?;
    create_cm(&client, "blocker").await?;
    create_cm(&client, "live").await?;
    for i in 0..3 {
        create_cm(&client, &format!("relisted-{i}")).await?;
    }
    let controller = Controller::new(client.clone(), Request::list::<ConfigMap>().namespace(NS))?
        .queue_options(|| QueueOptions::default().workers(1));
    let store = controller.store();
    let log = Arc::new(Log::default());
    let gate = Arc::new(Gate::default());
    let run = spawn_gated(controller, log.clone(), gate.clone());
    log.wait_until("every initial key", |n| n.len() >= 5).await?;
    tokio::time::sleep(QUIET).await;
    log.clear();

    // The one worker is held by `blocker`.
    gate.arm("blocker");
    patch_cm(&client, "blocker", json!({"data": {"v": "2"}})).await?;
    log.wait_until("the blocker", |n| n.len() == 1).await?;
    // The watch goes and cannot come back at once; meanwhile changes, then the history goes.
    server.faults().add_rule(
        FaultRule::new(FaultAction::status(500, "InternalError", "watch unavailable"))
            .path_prefix(&format!("/api/v1/namespaces/{NS}/configmaps"))
            .watch(true)
            .times(2),
    );
    server.faults().cut_watches(Some("configmaps"));
    for i in 0..3 {
        patch_cm(&client, &format!("relisted-{i}"), json!({"data": {"v": "2"}})).await?;
    }
    server.faults().compact_history();
    let until = Instant::now() + WAIT;
    let relisted = |store: &kazan::informer::Store<ConfigMap>| {
        (0..3).all(|i| {
            store
                .get(NS, &format!("relisted-{i}"))
                .and_then(|cm| cm.data.clone())
                .and_then(|d| d.get("v").cloned())
                .as_deref()
                == Some("2")
        })
    };
    while (store.is_relisting() || !relisted(&store)) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(relisted(&store), "the relist did not bring the changes");
    // A live change after the relist.
    patch_cm(&client, "live", json!({"data": {"v": "2"}})).await?;
    let until = Instant::now() + WAIT;
    while store
        .get(NS, "live")
        .and_then(|cm| cm.data.clone())
        .and_then(|d| d.get("v").cloned())
        .as_deref()
        != Some("2")
        && Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    gate.release();
    log.wait_until("the live and relisted keys", |n| n.len() >= 5)
        .await?;
    let names = log.names();
    assert_eq!(
        names[1], "live",
        "a relisted key ran before the live change: {names:?}"
    );
    let mut rest = names[2..5].to_vec();
    rest.sort();
    assert_eq!(rest, ["relisted-0", "relisted-1", "relisted-2"]);
    run.abort();
    Ok(())
}

/// Holds the reconcile of one armed key until released.
#[derive(Default)]
struct Gate {
    armed: Mutex<Option<String>>,
    open: Notify,
}

impl Gate {
    fn arm(&self, name: &str) {
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) = Some(name.to_string());
    }

    fn release(&self) {
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.open.notify_waiters();
    }

    fn holds(&self, name: &str) -> bool {
        self.armed.lock().unwrap_or_else(|e| e.into_inner()).as_deref() == Some(name)
    }
}

fn spawn_gated(
    controller: Controller<ConfigMap>,
    log: Arc<Log>,
    gate: Arc<Gate>,
) -> JoinHandle<Result<RunReport, ControllerError>> {
    tokio::spawn(controller.run(
        move |cm: Arc<ConfigMap>, log: Arc<Log>| {
            let gate = gate.clone();
            async move {
                let name = cm.metadata.name.clone().unwrap_or_default();
                let opened = gate.open.notified();
                log.record(&cm);
                if gate.holds(&name) {
                    opened.await;
                }
                Ok::<_, std::io::Error>(Action::await_change())
            }
        },
        |_cm, _err, _log| Action::backoff(),
        log,
    ))
}

/// controller-runtime `predicate.GenerationChangedPredicate`, `LabelChangedPredicate`,
/// `AnnotationChangedPredicate` (pkg/predicate/predicate.go), combined with `Or`: decided on the
/// old and new object of the update, nothing cached.
#[tokio::test]
async fn predicates_compare_the_old_and_new_object_from_the_store() -> TestResult {
    let server = server().await?;
    let client = client(&server)?;
    create_cm(&client, "p").await?;
    let controller = Controller::new(client.clone(), Request::list::<ConfigMap>().namespace(NS))?
        .with_predicate(Predicate::labels_changed().or(Predicate::annotations_changed()));
    let log = Arc::new(Log::default());
    let run = spawn_logging(controller, log.clone());
    log.wait_until("initial reconcile", |n| n.len() == 1).await?;

    patch_cm(&client, "p", json!({"data": {"v": "2"}})).await?;
    tokio::time::sleep(QUIET).await;
    assert_eq!(log.count("p"), 1, "a data change passed labels-or-annotations");

    patch_cm(&client, "p", json!({"metadata": {"labels": {"tier": "web"}}})).await?;
    log.wait_until("label change", |n| n.len() == 2).await?;
    patch_cm(&client, "p", json!({"metadata": {"annotations": {"note": "x"}}})).await?;
    log.wait_until("annotation change", |n| n.len() == 3).await?;
    tokio::time::sleep(QUIET).await;
    assert_eq!(log.count("p"), 3);
    run.abort();

    // generation: set by the strategies of kinds that have a spec (a ConfigMap has none, as on a
    // real server: pkg/registry/core/configmap/strategy.go), so the objects are built here with
    // the generations such a server would give them.
    let at = |generation: i64, tier: &str| ConfigMap {
        metadata: kazan::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("p".into()),
            generation: Some(generation),
            labels: Some([("tier".to_string(), tier.to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let (before, relabelled, changed) = (at(1, "web"), at(1, "db"), at(2, "db"));
    let generation = Predicate::<ConfigMap>::generation_changed();
    assert!(
        !generation.passes(&before, &relabelled),
        "a label change is no new generation"
    );
    assert!(
        generation.passes(&relabelled, &changed),
        "a new generation passes"
    );
    let both = Predicate::<ConfigMap>::generation_changed().and(Predicate::labels_changed());
    assert!(!both.passes(&relabelled, &changed));
    Ok(())
}

/// kube-runtime `Controller::graceful_shutdown_on`: no new keys, in-flight reconciles finish up
/// to the deadline, those still running then are cut and reported.
#[tokio::test]
async fn graceful_shutdown_lets_reconciles_finish_up_to_the_deadline_and_reports_the_cut() -> TestResult {
    let server = server().await?;
    let client = client(&server)?;
    create_cm(&client, "quick").await?;
    create_cm(&client, "stuck").await?;
    let stop = Arc::new(Notify::new());
    let finished: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = Arc::new(Log::default());
    let controller = Controller::new(client.clone(), Request::list::<ConfigMap>().namespace(NS))?
        .queue_options(|| QueueOptions::default().workers(2))
        .shutdown_deadline(Duration::from_secs(2))
        .graceful_shutdown_on({
            let stop = stop.clone();
            async move { stop.notified().await }
        });
    let run = {
        let finished = finished.clone();
        tokio::spawn(controller.run(
            move |cm: Arc<ConfigMap>, log: Arc<Log>| {
                let finished = finished.clone();
                async move {
                    log.record(&cm);
                    let name = cm.metadata.name.clone().unwrap_or_default();
                    let took = if name == "quick" {
                        Duration::from_millis(300)
                    } else {
                        WAIT * 10
                    };
                    tokio::time::sleep(took).await;
                    finished.lock().unwrap_or_else(|e| e.into_inner()).push(name);
                    Ok::<_, std::io::Error>(Action::await_change())
                }
            },
            |_cm, _err, _log| Action::backoff(),
            log.clone(),
        ))
    };
    log.wait_until("both started", |n| n.len() == 2).await?;
    stop.notify_one();
    let report = tokio::time::timeout(WAIT, run).await???;
    assert_eq!(report.cut, vec![key("stuck")]);
    assert_eq!(
        *finished.lock().unwrap_or_else(|e| e.into_inner()),
        vec!["quick".to_string()]
    );
    assert_eq!(report.reconciles, 1);
    Ok(())
}

/// Drops record when a reconcile future is dropped before finishing (cancelled).
struct OnCancel(Arc<Mutex<Vec<(String, Instant)>>>, String, bool);

impl Drop for OnCancel {
    fn drop(&mut self) {
        if !self.2 {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((self.1.clone(), Instant::now()));
        }
    }
}

type Cancelled = Arc<Mutex<Vec<(String, Instant)>>>;

/// A reconcile that never finishes, recording its start and its cancellation.
fn spawn_hanging(
    controller: Controller<ConfigMap>,
    log: Arc<Log>,
    cancelled: Cancelled,
) -> JoinHandle<Result<RunReport, ControllerError>> {
    tokio::spawn(controller.run(
        move |cm: Arc<ConfigMap>, log: Arc<Log>| {
            let guard = OnCancel(
                cancelled.clone(),
                cm.metadata.name.clone().unwrap_or_default(),
                false,
            );
            async move {
                log.record(&cm);
                tokio::time::sleep(WAIT * 10).await;
                let mut guard = guard;
                guard.2 = true;
                Ok::<_, std::io::Error>(Action::await_change())
            }
        },
        |_cm, _err, _log| Action::backoff(),
        log,
    ))
}

/// kube-runtime has no leader election; client-go's `leaderelection.RunOrDie` calls
/// `OnStoppedLeading` and controllers exit. Here: no reconcile while following; a loss cancels
/// the in-flight reconcile at once; leading again starts a new term from the whole store.
#[tokio::test]
async fn reconciles_run_only_while_leading_and_a_loss_cancels_them() -> TestResult {
    let server = server().await?;
    let client = client(&server)?;
    create_cm(&client, "a").await?;
    let (tx, rx) = watch::channel(Leadership::Following { holder: None });
    let controller =
        Controller::new(client.clone(), Request::list::<ConfigMap>().namespace(NS))?.leader_elected(rx);
    let store = controller.store();
    let log = Arc::new(Log::default());
    let cancelled: Cancelled = Arc::default();
    let run = spawn_hanging(controller, log.clone(), cancelled.clone());
    store.wait_synced().await.map_err(|e| e.to_string())?;
    tokio::time::sleep(QUIET).await;
    assert_eq!(log.names(), Vec::<String>::new(), "reconciled while following");

    tx.send_replace(Leadership::Leading { transitions: 0 });
    log.wait_until("a reconcile once leading", |n| n.len() == 1)
        .await?;
    tx.send_replace(Leadership::Following {
        holder: Some("someone".into()),
    });
    let until = Instant::now() + WAIT;
    while cancelled.lock().unwrap_or_else(|e| e.into_inner()).is_empty() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        cancelled.lock().unwrap_or_else(|e| e.into_inner()).len(),
        1,
        "the in-flight reconcile was not cancelled"
    );

    tx.send_replace(Leadership::Leading { transitions: 2 });
    log.wait_until("a new term reconciles the store again", |n| n.len() == 2)
        .await?;
    drop(tx);
    let report = tokio::time::timeout(WAIT, run).await???;
    assert_eq!(report.reconciles, 0);
    Ok(())
}

/// With a real Lease: renewals fail (500 on writes to the Lease), so the holder reaches its fence
/// (renew deadline after its last successful renewal) and its in-flight reconcile is cancelled
/// before another candidate can acquire the Lease (client-go tools/leaderelection/leaderelection.go
/// `renew`; kazan's fence is described in `kazan::lease`).
#[tokio::test]
async fn losing_the_lease_cancels_in_flight_reconciles_before_another_candidate_leads() -> TestResult {
    let server = server().await?;
    let client = client(&server)?;
    create_cm(&client, "a").await?;
    let config = ElectionConfig {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(500),
        release_on_cancel: false,
        rejoin_after_loss: false,
    };
    let controller = Controller::new(client.clone(), Request::list::<ConfigMap>().namespace(NS))?
        .leader_elected_on(LeaseLock::new(NS, "ctl-lease", "first"), config.clone())?;
    let log = Arc::new(Log::default());
    let cancelled: Cancelled = Arc::default();
    let run = spawn_hanging(controller, log.clone(), cancelled.clone());
    log.wait_until("the leader reconciles", |n| n.len() == 1).await?;

    // Renewals fail from now on, for long enough to pass the fence.
    server.faults().add_rule(
        FaultRule::new(FaultAction::status(500, "InternalError", "etcd is unhappy"))
            .method("PUT")
            .path_prefix(&format!("/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"))
            .times(8),
    );
    let second =
        kazan::lease::LeaderElector::new(&client, LeaseLock::new(NS, "ctl-lease", "second"), config)?.start();
    let mut leadership = second.leadership();
    tokio::time::timeout(WAIT * 2, leadership.wait_for(Leadership::is_leading)).await??;
    let second_leads = Instant::now();
    let cancelled = cancelled.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(
        cancelled.len(),
        1,
        "the first holder's reconcile was not cancelled"
    );
    assert!(
        cancelled[0].1 < second_leads,
        "cancelled only after the second candidate led"
    );
    let report = tokio::time::timeout(WAIT, run).await???;
    assert_eq!(report.reconciles, 0);
    second.stop().await;
    Ok(())
}

/// The watcher series of the metrics: scraped as Prometheus text (parsed with a Prometheus text
/// parser), counting what the watcher handed over, and gone once the watcher's metrics handle is
/// dropped (kubernetes/kubernetes#73587 leaked such series).
#[tokio::test]
async fn watcher_metrics_scrape_as_prometheus_text_and_disappear_with_their_watcher() -> TestResult {
    use kazan::{
        runtime::metrics::RuntimeMetrics,
        watcher::{EventKind, Watcher, WatcherOptions},
    };
    use prometheus_client::registry::Registry;

    fn events(scrape: &prometheus_parse::Scrape) -> Option<f64> {
        scrape
            .samples
            .iter()
            .find_map(|s| match (&s.value, s.metric.as_str(), s.labels.get("watcher")) {
                (prometheus_parse::Value::Counter(v), "kazan_watcher_events_total", Some("cms")) => Some(*v),
                _ => None,
            })
    }

    let server = server().await?;
    let client = client(&server)?;
    for name in ["a", "b", "c"] {
        create_cm(&client, name).await?;
    }
    let mut registry = Registry::default();
    let metrics = RuntimeMetrics::new(&mut registry);
    let watcher_metrics = metrics.watcher("cms");
    let mut handle = Watcher::start(
        client.clone(),
        Request::list::<ConfigMap>().namespace(NS),
        WatcherOptions::new().deliver_initial_list(true),
    )?;
    let mut objects = 0;
    let until = Instant::now() + WAIT;
    while objects < 4 && Instant::now() < until {
        let Ok(Some(event)) = tokio::time::timeout_at(until, handle.recv()).await else {
            break;
        };
        if matches!(event.kind, EventKind::Added(_) | EventKind::Modified(_)) {
            objects += 1;
            watcher_metrics.update(&handle.stats());
        }
        if matches!(event.kind, EventKind::Synced) {
            create_cm(&client, "d").await?;
        }
    }
    assert_eq!(objects, 4);
    let scraped = scrape(&registry)?;
    assert_eq!(events(&scraped), Some(4.0));
    for metric in ["kazan_watcher_bytes_read_total", "kazan_watcher_gones_total"] {
        assert!(
            scraped
                .samples
                .iter()
                .any(|s| s.metric == metric && s.labels.get("watcher") == Some("cms")),
            "no {metric}"
        );
    }
    let causes: Vec<&str> = scraped
        .samples
        .iter()
        .filter(|s| {
            s.metric == "kazan_watcher_retries_by_cause_total" && s.labels.get("watcher") == Some("cms")
        })
        .filter_map(|s| s.labels.get("cause"))
        .collect();
    assert_eq!(
        causes,
        [
            "unreachable",
            "server_error",
            "throttled",
            "stream",
            "idle",
            "malformed"
        ]
    );
    assert!(
        scraped
            .samples
            .iter()
            .any(|s| s.metric == "kazan_watcher_seconds_since_last_event"
                && s.labels.get("watcher") == Some("cms")),
        "no seconds-since-last-event gauge"
    );
    handle.stop().await;
    drop(watcher_metrics);
    let scraped = scrape(&registry)?;
    assert!(
        scraped.samples.iter().all(|s| s.labels.get("watcher").is_none()),
        "a dropped watcher's series stayed"
    );
    Ok(())
}

/// An informer whose watch fails for good after it synced (here 403 on every request for the owned
/// resource once its watch is cut) stops the controller with the resource named, instead of
/// leaving it to reconcile from a store that no longer follows the server.
#[tokio::test]
async fn a_source_that_fails_for_good_after_syncing_stops_the_controller() -> TestResult {
    let server = server().await?;
    let client = client(&server)?;
    create_cm(&client, "a").await?;
    let controller = Controller::new(client.clone(), Request::list::<ConfigMap>().namespace(NS))?
        .owns(Request::list::<Secret>().namespace(NS))?;
    let log = Arc::new(Log::default());
    let run = spawn_logging(controller, log.clone());
    log.wait_until("initial reconcile", |n| n.len() == 1).await?;
    server.faults().add_rule(
        FaultRule::new(FaultAction::status(
            403,
            "Forbidden",
            "access to secrets was revoked",
        ))
        .path_prefix(&format!("/api/v1/namespaces/{NS}/secrets"))
        .times(1000),
    );
    server.faults().cut_watches(Some("secrets"));
    match tokio::time::timeout(WAIT, run).await?? {
        Err(ControllerError::SourceEnded { resource, .. }) => {
            assert!(resource.contains("secrets"), "{resource}")
        }
        other => return Err(format!("expected SourceEnded for secrets, got {other:?}").into()),
    }
    Ok(())
}

/// A controller with metrics: its reconciles and queue appear under `controller="<name>"` and its
/// primary informer under `informer="<name>"` while it runs, and its series are gone once it has
/// stopped.
#[tokio::test]
async fn a_controllers_metrics_count_its_reconciles_and_go_when_it_stops() -> TestResult {
    use kazan::runtime::metrics::RuntimeMetrics;
    use prometheus_client::registry::Registry;

    fn reconciles(scrape: &prometheus_parse::Scrape) -> Option<f64> {
        scrape.samples.iter().find_map(
            |s| match (&s.value, s.metric.as_str(), s.labels.get("controller")) {
                (prometheus_parse::Value::Counter(v), "kazan_reconciles_total", Some("cms")) => Some(*v),
                _ => None,
            },
        )
    }

    let server = server().await?;
    let client = client(&server)?;
    create_cm(&client, "a").await?;
    create_cm(&client, "b").await?;
    let mut registry = Registry::default();
    let metrics = RuntimeMetrics::new(&mut registry);
    let stop = Arc::new(Notify::new());
    let controller = Controller::new(client.clone(), Request::list::<ConfigMap>().namespace(NS))?
        .metrics(metrics, "cms")
        .graceful_shutdown_on({
            let stop = stop.clone();
            async move { stop.notified().await }
        });
    let log = Arc::new(Log::default());
    let run = spawn_logging(controller, log.clone());
    log.wait_until("both reconciled", |n| n.len() == 2).await?;
    let until = Instant::now() + WAIT;
    while reconciles(&scrape(&registry)?) != Some(2.0) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let scraped = scrape(&registry)?;
    assert_eq!(reconciles(&scraped), Some(2.0));
    assert!(
        scraped
            .samples
            .iter()
            .any(|s| s.metric == "kazan_queue_depth" && s.labels.get("controller") == Some("cms")),
        "no queue series while running"
    );
    assert!(
        scraped
            .samples
            .iter()
            .any(|s| s.metric == "kazan_informer_objects"
                && s.labels.get("informer") == Some("cms")
                && matches!(s.value, prometheus_parse::Value::Gauge(v) if v == 2.0)),
        "no informer series with the primary's two objects while running"
    );
    stop.notify_one();
    tokio::time::timeout(WAIT, run).await???;
    let scraped = scrape(&registry)?;
    assert!(
        scraped
            .samples
            .iter()
            .all(|s| s.labels.get("controller").is_none() && s.labels.get("informer").is_none()),
        "a stopped controller's series stayed"
    );
    Ok(())
}

/// client-go `workqueue` dirty set (util/workqueue/queue.go), through the whole controller: five
/// changes while the key's reconcile runs give exactly one more reconcile, after it, and that one
/// reads the latest version from the store.
#[tokio::test]
async fn changes_during_a_reconcile_give_one_more_reconcile_at_the_latest_version() -> TestResult {
    let server = server().await?;
    let client = client(&server)?;
    create_cm(&client, "a").await?;
    let controller = Controller::new(client.clone(), Request::list::<ConfigMap>().namespace(NS))?
        .queue_options(|| QueueOptions::default().workers(4));
    let store = controller.store();
    let log = Arc::new(Log::default());
    let gate = Arc::new(Gate::default());
    gate.arm("a");
    let run = spawn_gated(controller, log.clone(), gate.clone());
    log.wait_until("the first reconcile", |n| n.len() == 1).await?;
    let mut latest = String::new();
    for i in 0..5 {
        let cm = patch_cm(&client, "a", json!({"data": {"v": format!("x{i}")}})).await?;
        latest = cm.metadata.resource_version.unwrap_or_default();
    }
    let until = Instant::now() + WAIT;
    while store
        .get(NS, "a")
        .and_then(|cm| cm.metadata.resource_version.clone())
        .as_deref()
        != Some(latest.as_str())
        && Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        log.names().len(),
        1,
        "a second reconcile of a key started during the first"
    );
    gate.release();
    log.wait_until("one more reconcile", |n| n.len() == 2).await?;
    tokio::time::sleep(QUIET).await;
    let starts = log.starts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(
        starts.len(),
        2,
        "five changes gave more than one more reconcile: {starts:?}"
    );
    assert_eq!(
        starts[1].1, latest,
        "the reconcile after the changes did not read the latest version"
    );
    run.abort();
    Ok(())
}
