//! Leader election on Leases against the embedded API server: acquiring, renewing, taking over
//! after expiry, releasing, and fencing when renewals fail or stall.
//!
//! The semantics are client-go's `tools/leaderelection/leaderelection.go` and
//! `resourcelock/leaselock.go`; the fencing rule is kazan's (see `kazan::lease`).
//!
//! Timings are short (`fast()`: 3 s lease, 2 s renew deadline, 250 ms retry period) and every
//! wait is bounded by `WAIT`. Where two candidates run, each has an "actor" task that, while its
//! candidate leads, bumps a shared fencing counter and records who bumped it; the tests check
//! that the record never interleaves two holders.

use crate::support::{TestError, TestResult, WAIT, bounded};
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::{
    api::{coordination::v1::Lease, core::v1::ConfigMap},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kazan::{
    Client, Config, Request,
    config::Impersonation,
    lease::{
        Election, ElectionConfig, ElectionConfigError, ElectionError, LeaderElector, Leadership, LeaseLock,
    },
};
use kazan_apiserver::{ApiServer, FaultAction, FaultRule};
use serde_json::{Value, json};
use tokio::{sync::watch, task::JoinHandle, time::Instant};

const NAME: &str = "leader";
const LEASE_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases/leader";

fn fast() -> ElectionConfig {
    ElectionConfig {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(250),
        ..ElectionConfig::default()
    }
}

/// A client whose requests the server's journal tells apart: it impersonates `identity` (the
/// embedded server records the header and does not act on it).
fn client(server: &ApiServer, identity: &str) -> Result<Client, TestError> {
    let mut config = Config::new(server.url().parse()?);
    config.impersonation = Impersonation::user(identity);
    Ok(Client::new(config)?)
}

fn start(server: &ApiServer, identity: &str, config: ElectionConfig) -> Result<Election, TestError> {
    let lock = LeaseLock::new("default", NAME, identity);
    Ok(LeaderElector::new(&client(server, identity)?, lock, config)?.start())
}

/// The arrival number of the first write to the Lease `identity` sent, if any.
fn first_write_by(server: &ApiServer, identity: &str) -> Option<u64> {
    server
        .journal()
        .into_iter()
        .find(|e| {
            e.path == LEASE_PATH
                && e.method == "PUT"
                && e.impersonation
                    .iter()
                    .any(|(k, v)| k == "impersonate-user" && v == identity)
        })
        .map(|e| e.seq)
}

/// Waits for `identity`'s first write to the Lease.
async fn first_write(server: &ApiServer, identity: &str) -> Result<u64, TestError> {
    bounded(async {
        loop {
            if let Some(seq) = first_write_by(server, identity) {
                return seq;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// The arrival number the next request will get.
fn next_seq(server: &ApiServer) -> u64 {
    server.journal().last().map_or(0, |e| e.seq + 1)
}

/// Waits until `leadership` satisfies `f`; returns when it was seen.
async fn until(
    leadership: &mut watch::Receiver<Leadership>,
    f: impl FnMut(&Leadership) -> bool,
) -> Result<Instant, TestError> {
    bounded(leadership.wait_for(f)).await??;
    Ok(Instant::now())
}

fn lease(server: &ApiServer) -> Result<Value, TestError> {
    Ok(server.get("coordination.k8s.io/v1", "Lease", Some("default"), NAME)?)
}

/// `2026-12-06T08:00:00.123456Z`: a `MicroTime` as Go writes it.
fn is_micro_time(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let b = s.as_bytes();
    s.len() == 27
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[20..26].iter().all(u8::is_ascii_digit)
        && b[26] == b'Z'
}

/// Actions taken by the actors, in order: who acted.
type ActionLog = Arc<Mutex<Vec<String>>>;

/// While `identity` leads, bumps the shared counter every few milliseconds (as a holder's work
/// would), recording who did.
fn actor(identity: &str, leadership: watch::Receiver<Leadership>, log: ActionLog) -> JoinHandle<()> {
    let identity = identity.to_string();
    tokio::spawn(async move {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if leadership.borrow().is_leading() {
                log.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(identity.clone());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

/// Checks that `first` acted, then `second` (waiting for it to act), never interleaved.
async fn acted_in_turn(log: &ActionLog, first: &str, second: &str) -> TestResult {
    let actions = || log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    bounded(async {
        while !actions().iter().any(|who| who == second) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await?;
    let log = actions();
    let last_first = log
        .iter()
        .rposition(|who| who == first)
        .ok_or("the first holder never acted")?;
    let first_second = log
        .iter()
        .position(|who| who == second)
        .ok_or("the second holder never acted")?;
    assert!(
        last_first < first_second,
        "{first} acted after {second} began (actions {} and {}): two holders acted at once",
        last_first,
        first_second
    );
    Ok(())
}

// ---- Acquire and renew ------------------------------------------------------------------------

/// A missing Lease is created naming the candidate, with every field client-go's
/// `LeaderElectionRecordToLeaseSpec` writes (`resourcelock/leaselock.go`).
#[tokio::test]
async fn a_candidate_creates_a_missing_lease_and_writes_it_as_client_go_does() -> TestResult {
    let server = ApiServer::start().await?;
    let election = start(&server, "a", fast())?;
    let mut leadership = election.leadership();
    until(&mut leadership, Leadership::is_leading).await?;
    assert_eq!(*leadership.borrow(), Leadership::Leading { transitions: 0 });

    let spec = &lease(&server)?["spec"];
    assert_eq!(spec["holderIdentity"], "a");
    assert_eq!(spec["leaseDurationSeconds"], 3);
    assert_eq!(spec["leaseTransitions"], 0);
    assert!(
        is_micro_time(&spec["acquireTime"]),
        "acquireTime {}",
        spec["acquireTime"]
    );
    assert!(
        is_micro_time(&spec["renewTime"]),
        "renewTime {}",
        spec["renewTime"]
    );
    assert_eq!(spec["acquireTime"], spec["renewTime"]);
    election.stop().await;
    Ok(())
}

/// The holder renews: `renewTime` moves, `acquireTime` and `leaseTransitions` stay, and the
/// holder keeps leading across several lease durations.
#[tokio::test]
async fn the_holder_renews_and_keeps_its_acquire_time() -> TestResult {
    let server = ApiServer::start().await?;
    let election = start(&server, "a", fast())?;
    let mut leadership = election.leadership();
    until(&mut leadership, Leadership::is_leading).await?;
    let first = lease(&server)?["spec"].clone();

    // Two lease durations without a change of leadership.
    let changed = tokio::time::timeout(Duration::from_secs(6), leadership.changed()).await;
    assert!(changed.is_err(), "leadership changed: {:?}", *leadership.borrow());

    let now = lease(&server)?["spec"].clone();
    assert_eq!(now["holderIdentity"], "a");
    assert_eq!(now["acquireTime"], first["acquireTime"]);
    assert_eq!(now["leaseTransitions"], 0);
    assert_ne!(now["renewTime"], first["renewTime"]);
    election.stop().await;
    Ok(())
}

/// A Lease held by another elector (written as client-go writes it) is left alone while it is
/// renewed, and taken over, with `leaseTransitions` + 1, once it has not changed for its
/// `leaseDurationSeconds` (`tryAcquireOrRenew`, step 3 and 4).
#[tokio::test]
async fn a_lease_held_by_another_elector_is_taken_only_after_it_stops_changing() -> TestResult {
    let server = ApiServer::start().await?;
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    server.create(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": NAME, "namespace": "default"},
        "spec": {"holderIdentity": "client-go", "leaseDurationSeconds": 2,
                 "acquireTime": now, "renewTime": now, "leaseTransitions": 4},
    }))?;
    let election = start(&server, "kazan", fast())?;
    let mut leadership = election.leadership();
    until(&mut leadership, |l| {
        *l == Leadership::Following {
            holder: Some("client-go".into()),
        }
    })
    .await?;

    // The other elector renews for a while: kazan must not take over.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut held = lease(&server)?;
        let renewed = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        held["spec"]["renewTime"] = json!(renewed);
        server.update(held)?;
        assert!(
            !leadership.borrow().is_leading(),
            "took a Lease that was being renewed"
        );
    }

    // It stops renewing: kazan takes over.
    until(&mut leadership, Leadership::is_leading).await?;
    assert_eq!(*leadership.borrow(), Leadership::Leading { transitions: 5 });
    let spec = &lease(&server)?["spec"];
    assert_eq!(spec["holderIdentity"], "kazan");
    assert_eq!(spec["leaseTransitions"], 5);
    assert_eq!(spec["acquireTime"], spec["renewTime"]);
    election.stop().await;
    Ok(())
}

/// When the holder stops without releasing, a contender takes over once the Lease expires; the
/// old holder had stopped acting first.
#[tokio::test]
async fn a_contender_takes_over_after_the_holder_stops_renewing() -> TestResult {
    let server = ApiServer::start().await?;
    let log = ActionLog::default();
    let a = start(&server, "a", fast())?;
    let mut a_leadership = a.leadership();
    let _a_actor = actor("a", a.leadership(), log.clone());
    until(&mut a_leadership, Leadership::is_leading).await?;
    let b = start(&server, "b", fast())?;
    let mut b_leadership = b.leadership();
    let _b_actor = actor("b", b.leadership(), log.clone());
    until(&mut b_leadership, |l| {
        *l == Leadership::Following {
            holder: Some("a".into()),
        }
    })
    .await?;

    a.stop().await;
    assert_eq!(*a_leadership.borrow(), Leadership::Stopped);
    until(&mut b_leadership, Leadership::is_leading).await?;
    assert_eq!(*b_leadership.borrow(), Leadership::Leading { transitions: 1 });
    assert_eq!(lease(&server)?["spec"]["holderIdentity"], "b");
    acted_in_turn(&log, "a", "b").await?;
    b.stop().await;
    Ok(())
}

/// `ReleaseOnCancel`: stopping the holder writes the Lease with no holder and a one-second
/// duration (`release` in leaderelection.go), and a contender takes it.
#[tokio::test]
async fn stopping_with_release_on_cancel_gives_the_lease_up() -> TestResult {
    let server = ApiServer::start().await?;
    let releasing = ElectionConfig {
        release_on_cancel: true,
        ..fast()
    };
    let a = start(&server, "a", releasing)?;
    until(&mut a.leadership(), Leadership::is_leading).await?;
    let before = lease(&server)?["spec"].clone();
    a.stop().await;

    let spec = &lease(&server)?["spec"];
    assert_eq!(spec["holderIdentity"], "");
    assert_eq!(spec["leaseDurationSeconds"], 1);
    assert_eq!(spec["leaseTransitions"], before["leaseTransitions"]);
    assert!(is_micro_time(&spec["renewTime"]));

    // A Lease that names nobody is free: a new candidate takes it on its first read.
    let b = start(&server, "b", fast())?;
    let mut b_leadership = b.leadership();
    until(&mut b_leadership, Leadership::is_leading).await?;
    assert_eq!(*b_leadership.borrow(), Leadership::Leading { transitions: 1 });
    b.stop().await;
    Ok(())
}

/// A candidate that is not the holder releases nothing when it stops, even with
/// `release_on_cancel`.
#[tokio::test]
async fn a_follower_that_stops_leaves_the_holders_lease_alone() -> TestResult {
    let server = ApiServer::start().await?;
    let a = start(&server, "a", fast())?;
    until(&mut a.leadership(), Leadership::is_leading).await?;
    let b = start(
        &server,
        "b",
        ElectionConfig {
            release_on_cancel: true,
            ..fast()
        },
    )?;
    until(&mut b.leadership(), |l| {
        *l == Leadership::Following {
            holder: Some("a".into()),
        }
    })
    .await?;
    b.stop().await;
    assert_eq!(lease(&server)?["spec"]["holderIdentity"], "a");
    assert!(a.is_leading());
    a.stop().await;
    Ok(())
}

// ---- Fencing ----------------------------------------------------------------------------------

/// Renewals answered 500 make the holder stop acting at its renew deadline, before the Lease can
/// be taken: every write to the Lease fails, the contender's first write (its first try to take
/// the Lease over, once it has seen no change for the lease duration) arrives after the holder
/// stopped, and the record of actions shows the holder stopped before the contender began.
///
/// The timings are those where client-go's round deadline (a retry period after the last success,
/// plus the renew deadline: 1 s + 2.2 s) would exceed the lease (3 s); the contender retries
/// often, so it tries as soon as the lease duration allows.
#[tokio::test]
async fn renewals_answered_500_make_the_holder_stop_before_the_lease_can_be_taken() -> TestResult {
    let server = ApiServer::start().await?;
    let config = ElectionConfig {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_millis(2200),
        retry_period: Duration::from_secs(1),
        ..ElectionConfig::default()
    };
    let log = ActionLog::default();
    let a = start(&server, "a", config.clone())?;
    let mut a_leadership = a.leadership();
    let _a_actor = actor("a", a.leadership(), log.clone());
    until(&mut a_leadership, Leadership::is_leading).await?;
    let eager = ElectionConfig {
        retry_period: Duration::from_millis(100),
        ..config.clone()
    };
    let b = start(&server, "b", eager)?;
    let mut b_leadership = b.leadership();
    let _b_actor = actor("b", b.leadership(), log.clone());
    until(&mut b_leadership, |l| {
        *l == Leadership::Following {
            holder: Some("a".into()),
        }
    })
    .await?;

    server.faults().add_rule(
        FaultRule::new(FaultAction::status(500, "InternalError", "etcd is down"))
            .method("PUT")
            .path_prefix(LEASE_PATH)
            .times(10_000),
    );
    until(&mut a_leadership, |l| !l.is_leading()).await?;
    let stepped_down = next_seq(&server);
    assert_eq!(*a_leadership.borrow(), Leadership::Stopped);

    // The contender's first write is its first try to take the Lease over: the moment the Lease
    // could have been taken had the server been well.
    let first_try = first_write(&server, "b").await?;
    assert!(
        first_try >= stepped_down,
        "the contender tried to take the Lease (request {first_try}) before the holder stopped (request {stepped_down})"
    );
    server.faults().clear_rules();
    until(&mut b_leadership, Leadership::is_leading).await?;
    acted_in_turn(&log, "a", "b").await?;
    assert_eq!(lease(&server)?["spec"]["holderIdentity"], "b");
    a.stop().await;
    b.stop().await;
    Ok(())
}

/// A renewal that stalls (the server holds the answer for longer than the lease) does not keep
/// the holder acting: it stops at its renew deadline, and the contender, which sees the Lease
/// unchanged, takes it over after the lease duration.
#[tokio::test]
async fn a_stalled_renewal_makes_the_holder_stop_before_the_lease_can_be_taken() -> TestResult {
    let server = ApiServer::start().await?;
    let log = ActionLog::default();
    let a = start(&server, "a", fast())?;
    let mut a_leadership = a.leadership();
    let _a_actor = actor("a", a.leadership(), log.clone());
    until(&mut a_leadership, Leadership::is_leading).await?;
    let b = start(&server, "b", fast())?;
    let mut b_leadership = b.leadership();
    let _b_actor = actor("b", b.leadership(), log.clone());
    until(&mut b_leadership, |l| {
        *l == Leadership::Following {
            holder: Some("a".into()),
        }
    })
    .await?;

    // Only the holder writes while the Lease is held: the next write is its renewal.
    server.faults().add_rule(
        FaultRule::new(FaultAction::Delay { millis: 15_000 })
            .method("PUT")
            .path_prefix(LEASE_PATH),
    );
    until(&mut a_leadership, |l| !l.is_leading()).await?;
    let stepped_down = next_seq(&server);
    let first_try = first_write(&server, "b").await?;
    assert!(
        first_try >= stepped_down,
        "the contender wrote the Lease (request {first_try}) before the holder stopped (request {stepped_down})"
    );
    until(&mut b_leadership, Leadership::is_leading).await?;
    acted_in_turn(&log, "a", "b").await?;
    a.stop().await;
    b.stop().await;
    Ok(())
}

/// A watch that stalls on the client the elector was built from does not starve the renewals:
/// the holder keeps leading for two lease durations while the watch sends nothing.
#[tokio::test]
async fn renewals_go_on_while_a_watch_on_the_callers_client_stalls() -> TestResult {
    let server = ApiServer::start().await?;
    let client = client(&server, "a")?;
    let lock = LeaseLock::new("default", NAME, "a");
    let election = LeaderElector::new(&client, lock, fast())?.start();
    let mut leadership = election.leadership();
    until(&mut leadership, Leadership::is_leading).await?;

    let watch = Request::watch_list::<Lease>()
        .namespace("default")
        .resource_version("0");
    let _stream = bounded(client.stream(&watch)).await??;
    assert!(bounded(server.wait_for_watches("leases", 1, WAIT)).await?);
    server.faults().stall_watches(None, Duration::from_secs(10));

    let changed = tokio::time::timeout(Duration::from_secs(5), leadership.changed()).await;
    assert!(changed.is_err(), "leadership changed: {:?}", *leadership.borrow());
    election.stop().await;
    Ok(())
}

/// After losing the Lease, a candidate with `rejoin_after_loss` contends again and can lead a
/// new term.
#[tokio::test]
async fn a_candidate_that_rejoins_after_a_loss_leads_again() -> TestResult {
    let server = ApiServer::start().await?;
    let config = ElectionConfig {
        rejoin_after_loss: true,
        ..fast()
    };
    let a = start(&server, "a", config)?;
    let mut leadership = a.leadership();
    until(&mut leadership, Leadership::is_leading).await?;
    server.faults().add_rule(
        FaultRule::new(FaultAction::status(500, "InternalError", "etcd is down"))
            .path_prefix(LEASE_PATH)
            .times(10_000),
    );
    until(&mut leadership, |l| matches!(l, Leadership::Following { .. })).await?;
    server.faults().clear_rules();
    until(&mut leadership, Leadership::is_leading).await?;
    a.stop().await;
    Ok(())
}

/// A candidate under churn and the task that acts for it while it leads.
struct Member {
    election: Election,
    actor: JoinHandle<()>,
}

impl Member {
    /// Starts a candidate whose actor, while it leads, writes a fencing record to the server: a
    /// new ConfigMap naming the holder and its term (`leaseTransitions`). The server's commit
    /// order of those records is what the test checks.
    fn start(server: &ApiServer, identity: &str, config: ElectionConfig) -> Result<Member, TestError> {
        let client = client(server, identity)?;
        let election =
            LeaderElector::new(&client, LeaseLock::new("default", NAME, identity), config)?.start();
        let leadership = election.leadership();
        let identity = identity.to_string();
        let actor = tokio::spawn(async move {
            let deadline = Instant::now() + WAIT * 3;
            let mut n = 0_u32;
            while Instant::now() < deadline {
                let term = match *leadership.borrow() {
                    Leadership::Leading { transitions } => Some(transitions),
                    _ => None,
                };
                if let Some(term) = term {
                    n += 1;
                    let record = ConfigMap {
                        metadata: ObjectMeta {
                            name: Some(format!("fence-{identity}-{}-{n}", fastrand::u32(..))),
                            namespace: Some("default".into()),
                            ..ObjectMeta::default()
                        },
                        data: Some(BTreeMap::from([
                            ("holder".to_string(), identity.clone()),
                            ("term".to_string(), term.to_string()),
                        ])),
                        ..ConfigMap::default()
                    };
                    if let Ok(create) = Request::create(&record) {
                        let _ = client.run(&create).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Ok(Member { election, actor })
    }

    async fn stop(self) {
        self.election.stop().await;
        self.actor.abort();
    }
}

/// Three candidates under churn (the leader stopped and restarted under a new identity, with and
/// without release, and bursts of 500s on the Lease longer than the renew deadline): the fencing records the holders wrote, in the server's
/// commit order, never go back to an older term and never show two holders in one term, so no
/// two holders acted at once.
#[tokio::test]
async fn under_churn_the_fencing_records_never_interleave_two_holders() -> TestResult {
    let server = ApiServer::start().await?;
    let config = |release_on_cancel| ElectionConfig {
        rejoin_after_loss: true,
        release_on_cancel,
        ..fast()
    };
    let names = ["r0", "r1", "r2"];
    let mut members = Vec::new();
    for (i, name) in names.iter().enumerate() {
        members.push(Some(Member::start(&server, name, config(i == 1))?));
    }
    let mut handovers = 0;
    for round in 0..6 {
        let leader = bounded(async {
            loop {
                if let Some(i) = members
                    .iter()
                    .position(|m| m.as_ref().is_some_and(|m| m.election.is_leading()))
                {
                    return i;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(300)).await; // let it act
        if round % 3 == 2 {
            server.faults().add_rule(
                FaultRule::new(FaultAction::status(500, "InternalError", "etcd is down"))
                    .method("PUT")
                    .path_prefix(LEASE_PATH)
                    .times(10_000),
            );
            tokio::time::sleep(fast().renew_deadline + Duration::from_millis(500)).await;
            server.faults().clear_rules();
        } else if let Some(member) = members[leader].take() {
            // A restarted process comes back under a new identity, as a Pod with a new name.
            member.stop().await;
            let identity = format!("{}-{round}", names[leader]);
            members[leader] = Some(Member::start(&server, &identity, config(leader == 1))?);
        }
        handovers += 1;
    }
    for member in members.into_iter().flatten() {
        member.stop().await;
    }

    let mut records: Vec<(u64, String, i64)> = Vec::new();
    for cm in server.list("v1", "ConfigMap", Some("default"))? {
        let rv = cm["metadata"]["resourceVersion"]
            .as_str()
            .ok_or("no resourceVersion")?
            .parse()?;
        let holder = cm["data"]["holder"].as_str().ok_or("no holder")?.to_string();
        let term = cm["data"]["term"].as_str().ok_or("no term")?.parse()?;
        records.push((rv, holder, term));
    }
    records.sort();
    let mut holder_of_term: BTreeMap<i64, String> = BTreeMap::new();
    let mut last_term = i64::MIN;
    for (rv, holder, term) in &records {
        assert!(
            *term >= last_term,
            "record at {rv} from {holder} is of term {term}, after term {last_term}"
        );
        last_term = *term;
        let first = holder_of_term.entry(*term).or_insert_with(|| holder.clone());
        assert_eq!(first, holder, "two holders wrote in term {term}");
    }
    println!(
        "churn: {handovers} disruptions, {} fencing records, {} terms",
        records.len(),
        holder_of_term.len()
    );
    assert!(
        holder_of_term.len() >= 3,
        "too few terms to tell: {holder_of_term:?}"
    );
    Ok(())
}

// ---- Configuration ----------------------------------------------------------------------------

/// client-go's `NewLeaderElector` checks, in its order, then kazan's whole-seconds rule.
#[tokio::test]
async fn invalid_configurations_are_refused_with_the_rule_they_break() -> TestResult {
    let server = ApiServer::start().await?;
    let client = client(&server, "a")?;
    let lock = || LeaseLock::new("default", NAME, "a");
    let with = |lease: u64, renew: u64, retry: u64| ElectionConfig {
        lease_duration: Duration::from_millis(lease),
        renew_deadline: Duration::from_millis(renew),
        retry_period: Duration::from_millis(retry),
        ..ElectionConfig::default()
    };
    let refused = |config: ElectionConfig, lock: LeaseLock| match LeaderElector::new(&client, lock, config) {
        Err(ElectionError::Config(e)) => Some(e),
        _ => None,
    };

    assert!(matches!(
        refused(with(10_000, 10_000, 2_000), lock()),
        Some(ElectionConfigError::LeaseDurationNotAboveRenewDeadline { .. })
    ));
    assert!(matches!(
        refused(with(15_000, 2_400, 2_000), lock()),
        Some(ElectionConfigError::RenewDeadlineNotAboveJitteredRetry { .. })
    ));
    assert!(matches!(
        refused(with(15_000, 10_000, 0), lock()),
        Some(ElectionConfigError::Zero { which: "retryPeriod" })
    ));
    let whole = refused(with(10_500, 10_000, 2_000), lock());
    assert!(matches!(
        whole,
        Some(ElectionConfigError::WholeSecondsNotAboveRenewDeadline { written: 10, .. })
    ));
    let message = whole.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("whole seconds"), "{message}");
    assert_eq!(
        refused(fast(), LeaseLock::new("default", NAME, "")),
        Some(ElectionConfigError::EmptyIdentity)
    );
    assert_eq!(
        refused(fast(), LeaseLock::new("", NAME, "a")),
        Some(ElectionConfigError::EmptyLease { which: "namespace" })
    );
    assert_eq!(refused(ElectionConfig::default(), lock()), None);
    Ok(())
}

/// Over HTTP/2, watches nobody reads fill their connection's flow-control window (kazan's lanes
/// give a stream 2 MiB and a connection 5 MiB): requests on that connection then get no answer.
/// The elector has connections of its own, so four unread watches carrying 10 MiB of events on
/// the caller's client do not starve its renewals.
#[tokio::test]
async fn unread_watches_on_the_callers_http2_client_do_not_starve_renewals() -> TestResult {
    let server = ApiServer::builder().tls(true).start().await?;
    let mut config = Config::new(server.url().parse()?);
    config.root_certs_pem = Some(server.ca_pem().ok_or("no TLS")?.into_bytes());
    let client = Client::new(config)?;
    let election = LeaderElector::new(&client, LeaseLock::new("default", NAME, "a"), fast())?.start();
    let mut leadership = election.leadership();
    until(&mut leadership, Leadership::is_leading).await?;

    let watch = Request::watch_list::<ConfigMap>()
        .namespace("default")
        .resource_version("0");
    let mut unread = Vec::new();
    for _ in 0..4 {
        unread.push(bounded(client.stream(&watch)).await??);
    }
    let big = "x".repeat(256 * 1024);
    for i in 0..40 {
        server.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("big-{i}"), "namespace": "default"}, "data": {"k": big}}))?;
    }
    // The caller's own requests are stuck behind the unread watches.
    let get = Request::get::<Lease>(NAME).namespace("default");
    let stuck = tokio::time::timeout(Duration::from_secs(2), client.run(&get))
        .await
        .is_err();
    println!(
        "a request on the caller's client with unread watches: {}",
        if stuck { "no answer" } else { "answered" }
    );

    let changed = tokio::time::timeout(Duration::from_secs(6), leadership.changed()).await;
    assert!(changed.is_err(), "leadership changed: {:?}", *leadership.borrow());
    drop(unread);
    election.stop().await;
    Ok(())
}
