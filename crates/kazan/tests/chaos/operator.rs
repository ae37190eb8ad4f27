//! The example operator's controller (examples/operator/greeting.rs, the very same reconcile)
//! against the embedded API server under churn and faults: watches cut and expired, the history
//! compacted (410 Gone and relists), stalled, 500s and 429s on the operator's writes. After the churn and
//! the faults stop: every Greeting is converged (ConfigMap, finalizer, Ready at its generation)
//! and its last reconcile saw its latest resourceVersion; no key was ever reconciled twice at
//! once; once every Greeting is deleted, none stays behind with a finalizer and no ConfigMap is
//! left. Meanwhile a few stubborn Greetings fail on a plan, and their retries are checked against
//! the configured backoff curve (see `backoff_curve.rs`).

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use k8s_openapi::{api::core::v1::ConfigMap, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kazan::{
    Client, Config, Object, Request,
    runtime::{Action, Controller, ExponentialBackoff, QueueOptions},
};

use super::backoff_curve::{self, Attempt, Counted, CurveReport, Plan, Recording};
use kazan_apiserver::{ApiServer, FaultAction, FaultRule};
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[path = "../../examples/operator/greeting.rs"]
#[allow(dead_code)]
mod greeting;

use greeting::{Context, Greeting, GreetingSpec};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const NS: &str = "operator-chaos";
const NAMES: usize = 12;
/// Greetings that fail on a plan, for the backoff check.
const STUBBORN: usize = 3;
const CHURN: Duration = Duration::from_secs(8);
/// Bound for convergence after the churn.
const SETTLE: Duration = Duration::from_secs(90);

/// What the test observes of the reconciles.
struct Tracked {
    operator: Arc<Context>,
    in_flight: Mutex<HashSet<String>>,
    overlaps: AtomicUsize,
    reconciles: AtomicUsize,
    errors: AtomicUsize,
    /// The resourceVersion each key's last reconcile was handed.
    last_seen: Mutex<HashMap<String, String>>,
    /// The attempts of the stubborn keys while they follow their plan.
    stubborn: Mutex<HashMap<String, Vec<Attempt>>>,
}

/// Leaves the in-flight set when the reconcile ends or is dropped.
struct InFlight(Arc<Tracked>, String);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

impl Tracked {
    fn enter(self: &Arc<Self>, greeting: &Greeting) -> InFlight {
        let name = greeting.name().to_string();
        if !self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone())
        {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        self.reconciles.fetch_add(1, Ordering::SeqCst);
        self.last_seen.lock().unwrap_or_else(|e| e.into_inner()).insert(
            name.clone(),
            greeting.resource_version().unwrap_or_default().to_string(),
        );
        InFlight(self.clone(), name)
    }

    /// A stubborn Greeting's attempt while its plan lasts (`None` once the plan is over).
    fn stubborn_attempt(&self, greeting: &Greeting) -> Option<Result<Action, BoxError>> {
        let start = Instant::now();
        let name = greeting.name().to_string();
        let mut stubborn = self.stubborn.lock().unwrap_or_else(|e| e.into_inner());
        let attempts = stubborn.entry(name.clone()).or_default();
        let n = attempts.len();
        let (outcome, touch): (Result<Action, BoxError>, _) = match backoff_curve::plan(n) {
            Plan::Real => return None,
            Plan::Fail { touch } => (Err(format!("{name}: planned failure {n}").into()), touch),
            Plan::SucceedThenTouch => (Ok(Action::await_change()), true),
        };
        attempts.push(Attempt {
            start,
            end: Instant::now(),
            resource_version: greeting.resource_version().unwrap_or_default().to_string(),
            failed: outcome.is_err(),
        });
        if touch {
            let must = outcome.is_ok();
            tokio::spawn(touch_greeting(self.operator.client.clone(), name, n, must));
        }
        Some(outcome)
    }
}

/// Changes a Greeting's annotation 20 ms from now, waking its key before a backoff of that or
/// more ends. One try unless `must` (the change that starts a stubborn key's second round).
async fn touch_greeting(client: Client, name: String, attempt: usize, must: bool) {
    tokio::time::sleep(Duration::from_millis(20)).await;
    let patch = json!({"metadata": {"annotations": {"kazan.dev/touched-after": attempt.to_string()}}});
    for _ in 0..if must { 100 } else { 1 } {
        let touch = Request::merge_patch::<Greeting>(&name, &patch).namespace(NS);
        if client.run(&touch).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates the stubborn Greetings two seconds apart (retrying through injected faults).
async fn create_stubborn(client: Client) -> Result<(), String> {
    for i in 0..STUBBORN {
        let name = format!("{}{i}", backoff_curve::PREFIX);
        let create = Request::create(&greeting_of(&name, "stubborn"))
            .map_err(|e| e.to_string())?
            .namespace(NS);
        let mut tries = 0;
        while let Err(e) = client.run(&create).await {
            tries += 1;
            if tries == 100 {
                return Err(format!("could not create {name}: {e}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(())
}

/// Checks every stubborn key's retries against the backoff curve.
fn check_backoff_curve(tracked: &Tracked, counted: &Counted) -> Result<CurveReport, BoxError> {
    let stubborn = tracked.stubborn.lock().unwrap_or_else(|e| e.into_inner());
    let counted = counted.lock().unwrap_or_else(|e| e.into_inner());
    let mut total = CurveReport::default();
    for i in 0..STUBBORN {
        let name = format!("{}{i}", backoff_curve::PREFIX);
        let attempts = stubborn.get(&name).map_or(&[][..], Vec::as_slice);
        if backoff_curve::plan(attempts.len()) != Plan::Real {
            return Err(format!("{name} ran {} attempts of its plan", attempts.len()).into());
        }
        let counts = counted.get(&name).map_or(&[][..], Vec::as_slice);
        let report = backoff_curve::check(attempts, counts, ExponentialBackoff::default())
            .map_err(|e| format!("{name}: {e}"))?;
        eprintln!("{name}: {report:?}");
        total.waited += report.waited;
        total.early += report.early;
        total.either += report.either;
    }
    Ok(total)
}

fn greeting_of(name: &str, who: &str) -> Greeting {
    Greeting {
        api_version: greeting::api_version(),
        kind: greeting::kind(),
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..ObjectMeta::default()
        },
        spec: GreetingSpec { name: who.into() },
        status: None,
    }
}

/// Creates, changes, tampers with and deletes Greetings at random until `stop`; errors (faults)
/// are ignored. Returns how many writes succeeded.
async fn churn(client: Client, stop: CancellationToken, mut rng: fastrand::Rng) -> usize {
    let mut done = 0;
    while !stop.is_cancelled() {
        let name = format!("g-{}", rng.usize(..NAMES));
        let exists = client
            .run(&Request::get::<Greeting>(&name).namespace(NS))
            .await
            .is_ok();
        let outcome = if !exists {
            match Request::create(&greeting_of(&name, "world")) {
                Ok(create) => client.run(&create.namespace(NS)).await.map(drop),
                Err(e) => Err(e.into()),
            }
        } else {
            match rng.u8(..10) {
                0..=5 => {
                    let patch = json!({"spec": {"name": format!("n{}", rng.u16(..))}});
                    client
                        .run(&Request::merge_patch::<Greeting>(&name, &patch).namespace(NS))
                        .await
                        .map(drop)
                }
                6..=7 => {
                    let patch = json!({"data": {"message": "tampered"}});
                    client
                        .run(
                            &Request::merge_patch::<ConfigMap>(&format!("greeting-{name}"), &patch)
                                .namespace(NS),
                        )
                        .await
                        .map(drop)
                }
                _ => client
                    .run(&Request::delete::<Greeting>(&name).namespace(NS))
                    .await
                    .map(drop),
            }
        };
        if outcome.is_ok() {
            done += 1;
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(10..60))).await;
    }
    done
}

/// Injects a random fault every 150–450 ms until `stop`; returns how many of each kind.
async fn faults(
    server: &ApiServer,
    stop: CancellationToken,
    mut rng: fastrand::Rng,
) -> HashMap<&'static str, usize> {
    let faults = server.faults();
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    let writes = ["POST", "PUT", "PATCH", "DELETE"];
    while !stop.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(rng.u64(150..450))).await;
        let kind = match rng.u8(..7) {
            0 => {
                faults.cut_watches(None);
                "cut"
            }
            1 => {
                faults.compact_history();
                faults.cut_watches(None);
                "compact+cut (410)"
            }
            2 => {
                faults.expire_watches(None);
                "expire (410 in stream)"
            }
            6 => {
                faults.stall_watches(None, Duration::from_millis(rng.u64(200..1500)));
                "stall"
            }
            3 => {
                let method = writes[rng.usize(..writes.len())];
                faults.add_rule(
                    FaultRule::new(FaultAction::status(500, "InternalError", "chaos"))
                        .method(method)
                        .watch(false)
                        .times(2),
                );
                "500 on writes"
            }
            4 => {
                let method = writes[rng.usize(..writes.len())];
                faults.add_rule(
                    FaultRule::new(FaultAction::status(429, "TooManyRequests", "chaos").retry_after(1))
                        .method(method)
                        .watch(false)
                        .times(2),
                );
                "429 on writes"
            }
            _ => {
                faults.add_rule(
                    FaultRule::new(FaultAction::status(500, "InternalError", "chaos"))
                        .path_prefix(&format!("/apis/{}/v1/namespaces/{NS}/greetings", greeting::GROUP))
                        .method("PATCH")
                        .times(3),
                );
                "500 on Greeting patches (finalizer, status)"
            }
        };
        *counts.entry(kind).or_default() += 1;
    }
    counts
}

async fn list_greetings(client: &Client) -> Result<Vec<Greeting>, BoxError> {
    Ok(client
        .run(&Request::list::<Greeting>().namespace(NS))
        .await?
        .items)
}

async fn greeting_config_maps(client: &Client) -> Result<Vec<String>, BoxError> {
    Ok(client
        .run(&Request::list::<ConfigMap>().namespace(NS))
        .await?
        .items
        .into_iter()
        .map(|cm| cm.name().to_string())
        .filter(|n| n.starts_with("greeting-"))
        .collect())
}

/// Why the world is not settled yet, or `None` when it is.
async fn unsettled(client: &Client, tracked: &Tracked) -> Result<Option<String>, BoxError> {
    let greetings = list_greetings(client).await?;
    for g in &greetings {
        let name = g.name();
        if g.metadata.deletion_timestamp.is_some() {
            return Ok(Some(format!("{name} is still being deleted")));
        }
        let message = format!("Hello, {}!", g.spec.name);
        if !greeting::converged(client, NS, name, &message).await? {
            return Ok(Some(format!("{name} is not converged")));
        }
        let seen = tracked
            .last_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned();
        if seen.as_deref() != g.resource_version() {
            return Ok(Some(format!(
                "{name}: last reconciled at {seen:?}, now at {:?}",
                g.resource_version()
            )));
        }
    }
    let live: HashSet<String> = greetings
        .iter()
        .map(|g| format!("greeting-{}", g.name()))
        .collect();
    let orphans: Vec<String> = greeting_config_maps(client)
        .await?
        .into_iter()
        .filter(|c| !live.contains(c))
        .collect();
    if !orphans.is_empty() {
        return Ok(Some(format!("ConfigMaps without a Greeting: {orphans:?}")));
    }
    Ok(None)
}

async fn wait_settled(client: &Client, tracked: &Tracked, what: &str) -> Result<(), BoxError> {
    let until = Instant::now() + SETTLE;
    let mut why = String::new();
    while Instant::now() < until {
        match unsettled(client, tracked).await {
            Ok(None) => return Ok(()),
            Ok(Some(reason)) => why = reason,
            Err(e) => why = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("{what}: not settled within {SETTLE:?}: {why}").into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_operator_converges_under_faults_never_reconciles_a_key_twice_at_once_and_leaves_no_finalizer()
-> Result<(), BoxError> {
    let server = ApiServer::builder().namespaces(&[NS]).start().await?;
    let client = Client::new(Config::new(server.url().parse()?))?;
    client.run(&Request::create(&greeting::crd()?)?).await?;
    let until = Instant::now() + SETTLE;
    while !greeting::crd_established(&client).await? {
        if Instant::now() > until {
            return Err("the CRD was not established".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let tracked = Arc::new(Tracked {
        operator: Arc::new(Context {
            client: client.clone(),
        }),
        in_flight: Mutex::default(),
        overlaps: AtomicUsize::new(0),
        reconciles: AtomicUsize::new(0),
        errors: AtomicUsize::new(0),
        last_seen: Mutex::default(),
        stubborn: Mutex::default(),
    });
    let counted = Counted::default();
    let shutdown = CancellationToken::new();
    let controller = Controller::new(client.clone(), Request::list::<Greeting>().namespace(NS))?
        .owns(Request::list::<ConfigMap>().namespace(NS))?
        // Backoff only (5 ms doubling): the token bucket would pace retries after a burst of
        // injected errors far beyond this test's bounds.
        .queue_options({
            let counted = counted.clone();
            move || {
                QueueOptions::default().workers(4).rate_limiter(Recording {
                    backoff: ExponentialBackoff::default(),
                    counted: counted.clone(),
                })
            }
        })
        .shutdown_deadline(Duration::from_secs(10))
        .graceful_shutdown_on(shutdown.clone().cancelled_owned());
    let operator = tokio::spawn(controller.run(
        |g: Arc<Greeting>, t: Arc<Tracked>| async move {
            let _in_flight = t.enter(&g);
            if let Some(outcome) = t.stubborn_attempt(&g) {
                return outcome;
            }
            greeting::reconcile(g, t.operator.clone())
                .await
                .map_err(BoxError::from)
        },
        |_g, _e, t: Arc<Tracked>| {
            t.errors.fetch_add(1, Ordering::SeqCst);
            Action::backoff()
        },
        tracked.clone(),
    ));

    // `KAZAN_CHAOS_SEED=<seed>` replays the churn and the fault schedule (as in tests/chaos.rs).
    let seed = std::env::var("KAZAN_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("operator chaos seed: {seed}");
    // Two seconds apart, so that one stall or one burst of faults cannot spoil every plan.
    let stubborn = tokio::spawn(create_stubborn(client.clone()));
    let stop = CancellationToken::new();
    let churner = tokio::spawn(churn(
        client.clone(),
        stop.clone(),
        fastrand::Rng::with_seed(seed),
    ));
    let injected = {
        let stop = stop.clone();
        let deadline = tokio::time::sleep(CHURN);
        let injector = faults(
            &server,
            stop.clone(),
            fastrand::Rng::with_seed(seed.wrapping_add(1)),
        );
        tokio::pin!(injector);
        tokio::select! {
            () = deadline => {
                stop.cancel();
                injector.await
            }
            counts = &mut injector => counts,
        }
    };
    let writes = churner.await?;
    stubborn.await??;
    server.faults().clear_rules();
    eprintln!("churn: {writes} writes; faults: {injected:?}");

    wait_settled(&client, &tracked, "after the churn").await?;
    let curve = check_backoff_curve(&tracked, &counted)?;
    eprintln!("backoff curve: {curve:?}");
    assert!(
        curve.early > 0,
        "no stubborn retry was certainly woken early: nothing showed that early failures keep the count"
    );

    for g in list_greetings(&client).await? {
        client
            .run(&Request::delete::<Greeting>(g.name()).namespace(NS))
            .await?;
    }
    let until = Instant::now() + SETTLE;
    loop {
        let left = list_greetings(&client).await?;
        let maps = greeting_config_maps(&client).await?;
        if left.is_empty() && maps.is_empty() {
            break;
        }
        if Instant::now() > until {
            let dangling: Vec<(String, Option<Vec<String>>)> = left
                .iter()
                .map(|g| (g.name().to_string(), g.metadata.finalizers.clone()))
                .collect();
            return Err(format!("left behind: Greetings {dangling:?}, ConfigMaps {maps:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    shutdown.cancel();
    let report = tokio::time::timeout(SETTLE, operator).await???;
    eprintln!(
        "operator: {} reconciles started, {} errors, report {report:?}",
        tracked.reconciles.load(Ordering::SeqCst),
        tracked.errors.load(Ordering::SeqCst)
    );
    assert_eq!(
        tracked.overlaps.load(Ordering::SeqCst),
        0,
        "a key was reconciled twice at once"
    );
    assert!(
        writes > 0 && !injected.is_empty(),
        "no churn or no faults: the test proved nothing"
    );
    Ok(())
}
