//! Sharded watching under churn with replicas killed and restarted (issue 20): three replicas of a
//! [`ShardedWatcher`] share the slots of one namespace's ConfigMaps through slot Leases on the
//! embedded API server while a writer creates, changes and deletes ConfigMaps. A seeded schedule
//! kills a replica (its runtime is dropped: no release, no goodbye), waits, and starts a new one in
//! its place (a new identity, as a new pod), a bounded number of times.
//!
//! Each replica records every acquisition, loss and event it is handed, each with the instant
//! [`ShardedWatcher::recv`] returned it. One ownership of a slot by one replica, from
//! `Acquired` to `Lost` (or the kill), is a *term*. Checked at the end, against the server's own
//! change log:
//!
//! - **Every list is right, no change is lost within a term**: every list a term delivers (at
//!   acquisition, and after a 410 Gone) is exactly the slot's objects at the list's version, and the
//!   events after it are exactly the slot's later changes, in order, none lost or repeated, up to
//!   where the term ended.
//! - **Every change is delivered by an owner, or covered by a new owner's list**: each change of a
//!   slot is either delivered as an event by the term that owned the slot then, or its effect is in
//!   the list of a later term (the change happened while the slot had no live owner: a killed
//!   replica's lease was running out). After the churn, every slot's owner has delivered its last
//!   change. Both counts are printed.
//! - **No object is delivered by two owners at once**: for each slot, the spans of distinct terms
//!   (first to last delivery) never overlap. The *fencing window* is the margin between a holder's
//!   fence and the earliest moment another replica may take its Lease over
//!   (`leaseDurationSeconds − renewDeadline`, 1 s here; `kazan::lease` documents the arithmetic);
//!   it has to absorb the time between `recv`'s ownership check and the instant recorded here.
//!   Every replica runs in this process on one monotonic clock, so no overlap at all is tolerated.
//! - **Takeover**: for each kill, how long after it each of the dead replica's slots was acquired,
//!   and first delivered, by another replica, is printed (not asserted: it depends on the machine;
//!   it should be about the lease duration plus a retry period or two).
//!
//! Disabling the stop on loss (in `ShardedWatcher`, events handed out and the watcher kept after
//! the slot left `owned`) makes the overlap check fail: on every restart the others shed slots to
//! the newcomer and go on delivering them.
//!
//! The Leases follow client-go's leader election (`tools/leaderelection/leaderelection.go`,
//! `resourcelock/leaselock.go`); the lists and watches of a slot send KEP-5866's `shardSelector`,
//! which the embedded server filters. `KAZAN_CHAOS_SEED` replays a schedule.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::{api::core::v1::ConfigMap, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kazan::{
    Client, Config, Request,
    lease::ElectionConfig,
    shard::{MembershipConfig, ShardKey, ShardSelector, ShardedEvent, ShardedWatcher},
    watcher::{EventKind, WatcherOptions},
};
use kazan_apiserver::{ApiServer, Change, ChangeType};
use serde_json::json;
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const NS: &str = "shards-chaos";
const SLOTS: u64 = 6;
const REPLICAS: usize = 3;
/// Kill-and-restart cycles.
const KILLS: usize = 4;
/// Live objects the writer keeps around.
const LIVE: usize = 40;
/// Bound for the slots to settle and catch up after the churn.
const SETTLE: Duration = Duration::from_secs(60);
/// Bound for the whole run.
const BOUND: Duration = Duration::from_secs(240);

fn election() -> ElectionConfig {
    ElectionConfig {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_secs(1),
        retry_period: Duration::from_millis(250),
        ..ElectionConfig::default()
    }
}

/// (namespace, name)
type Key = String;

/// One segment of a term: a list and the watch after it.
#[derive(Debug, Default)]
struct Segment {
    /// The list's version (from `Synced`); `None` while the list is still coming.
    list_rv: Option<u64>,
    listed: Vec<(Key, u64)>,
    /// (resourceVersion, change type, name)
    events: Vec<(u64, ChangeType, Key)>,
}

/// One ownership of one slot by one replica.
#[derive(Debug)]
struct Term {
    owner: String,
    slot: u64,
    acquired: Instant,
    /// `None` while held (or when the owner was killed holding it).
    lost: Option<Instant>,
    first_delivery: Option<Instant>,
    last_delivery: Option<Instant>,
    segments: Vec<Segment>,
}

/// What every replica recorded.
#[derive(Debug, Default)]
struct Log {
    terms: Vec<Term>,
    failures: Vec<String>,
}

fn number(rv: Option<&str>) -> Option<u64> {
    rv.and_then(|rv| rv.parse().ok())
}

/// A replica's consumer: records what it is handed until its runtime is dropped.
async fn consume(identity: String, client: Client, log: Arc<Mutex<Log>>) {
    let membership = MembershipConfig {
        namespace: NS.into(),
        lease_prefix: "cm".into(),
        identity: identity.clone(),
        slots: SLOTS,
        election: election(),
    };
    let options = WatcherOptions::new()
        .page_size(7)
        .log(Some(tracing::Level::DEBUG));
    let request = Request::list::<ConfigMap>().namespace(NS);
    let mut watcher = match ShardedWatcher::start(&client, request, options, ShardKey::Uid, membership) {
        Ok(w) => w,
        Err(e) => {
            lock(&log).failures.push(format!("{identity}: cannot start: {e}"));
            return;
        }
    };
    // The term of each slot held, as an index into the log.
    let mut terms: BTreeMap<u64, usize> = BTreeMap::new();
    while let Some(event) = watcher.recv().await {
        let now = Instant::now();
        let mut log = lock(&log);
        match event {
            ShardedEvent::Acquired { slot } => {
                terms.insert(slot, log.terms.len());
                log.terms.push(Term {
                    owner: identity.clone(),
                    slot,
                    acquired: now,
                    lost: None,
                    first_delivery: None,
                    last_delivery: None,
                    segments: vec![Segment::default()],
                });
            }
            ShardedEvent::Lost { slot } => {
                if let Some(term) = terms.remove(&slot).and_then(|i| log.terms.get_mut(i)) {
                    term.lost = Some(now);
                }
            }
            ShardedEvent::Failed { slot, error } => {
                log.failures.push(format!("{identity}: slot {slot}: {error}"))
            }
            ShardedEvent::Event { slot, event } => {
                let Some(term) = terms.get(&slot).copied().and_then(|i| log.terms.get_mut(i)) else {
                    log.failures
                        .push(format!("{identity}: an event of slot {slot}, never acquired"));
                    continue;
                };
                term.first_delivery.get_or_insert(now);
                term.last_delivery = Some(now);
                let rv = number(event.resource_version.as_deref());
                let Some(segment) = term.segments.last_mut() else {
                    continue;
                };
                let (change, object) = match event.kind {
                    EventKind::Added(o) => (ChangeType::Added, o),
                    EventKind::Modified(o) => (ChangeType::Modified, o),
                    EventKind::Deleted(o) => (ChangeType::Deleted, o),
                    EventKind::Synced => {
                        segment.list_rv = rv;
                        continue;
                    }
                    EventKind::Gone { .. } => {
                        term.segments.push(Segment::default());
                        continue;
                    }
                    EventKind::Failed(e) => {
                        let failure = format!("{identity}: slot {slot}: the watcher failed: {e}");
                        log.failures.push(failure);
                        continue;
                    }
                    _ => continue,
                };
                let name = object.metadata.name.clone().unwrap_or_default();
                let rv = rv.unwrap_or_default();
                if segment.list_rv.is_none() {
                    segment.listed.push((name, rv));
                } else {
                    segment.events.push((rv, change, name));
                }
            }
            _ => {}
        }
    }
}

fn lock(log: &Mutex<Log>) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// A replica: its own runtime, dropped without a word to kill it.
struct Replica {
    identity: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Replica {
    fn start(identity: String, url: &str, log: &Arc<Mutex<Log>>) -> Result<Replica, BoxError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let client = Client::new(Config::new(url.parse()?))?;
        runtime.spawn(consume(identity.clone(), client, log.clone()));
        Ok(Replica {
            identity,
            runtime: Some(runtime),
        })
    }

    fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the writer did: each object's UID (names are never reused, so a name is one object).
#[derive(Default)]
struct Written {
    uids: BTreeMap<Key, String>,
    writes: usize,
}

/// Creates, changes and deletes ConfigMaps until `stop`; names are never reused.
async fn write(client: Client, stop: CancellationToken, mut rng: fastrand::Rng) -> Result<Written, BoxError> {
    let mut written = Written::default();
    let mut live: Vec<String> = Vec::new();
    let mut next = 0usize;
    while !stop.is_cancelled() {
        let op = if live.len() < LIVE / 2 { 0 } else { rng.u8(..8) };
        match op {
            0 | 1 if live.len() < LIVE => {
                let name = format!("cm-{next}");
                next += 1;
                let cm = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        ..ObjectMeta::default()
                    },
                    data: Some([("n".to_string(), "0".to_string())].into()),
                    ..ConfigMap::default()
                };
                let created = client.run(&Request::create(&cm)?.namespace(NS)).await?;
                let uid = created.metadata.uid.ok_or("a created ConfigMap without a UID")?;
                written.uids.insert(name.clone(), uid);
                live.push(name);
            }
            2..=5 if !live.is_empty() => {
                let name = &live[rng.usize(..live.len())];
                let patch = json!({"data": {"n": rng.u32(..).to_string()}});
                client
                    .run(&Request::merge_patch::<ConfigMap>(name, &patch).namespace(NS))
                    .await?;
            }
            _ if !live.is_empty() => {
                let name = live.swap_remove(rng.usize(..live.len()));
                client
                    .run(&Request::delete::<ConfigMap>(&name).namespace(NS))
                    .await?;
            }
            _ => continue,
        }
        written.writes += 1;
        tokio::time::sleep(Duration::from_millis(rng.u64(10..40))).await;
    }
    Ok(written)
}

/// A kill: when, whom, and the slots it held then.
struct Kill {
    at: Instant,
    identity: String,
    held: BTreeSet<u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_under_churn_and_kills_deliver_every_change_and_never_a_slot_twice_at_once()
-> Result<(), BoxError> {
    let seed = match std::env::var("KAZAN_CHAOS_SEED") {
        Ok(s) => s.trim().parse()?,
        Err(_) => fastrand::u64(..),
    };
    println!(
        "shards chaos: seed {seed} (replay: KAZAN_CHAOS_SEED={seed} cargo test -p kazan --test chaos shards)"
    );
    match tokio::time::timeout(BOUND, run(seed)).await {
        Ok(Ok(report)) => {
            use std::io::Write as _;
            let _ = std::io::stderr().write_all(format!("\n{report}\n").as_bytes());
            Ok(())
        }
        Ok(Err(e)) => Err(format!("shards chaos failed (seed {seed}): {e}").into()),
        Err(_) => Err(format!("shards chaos (seed {seed}) did not finish within {BOUND:?}").into()),
    }
}

async fn run(seed: u64) -> Result<String, BoxError> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let server = ApiServer::builder()
        .namespaces(&[NS])
        .record_changes(true)
        .start()
        .await?;
    let url = server.url().to_string();
    let client = Client::new(Config::new(url.parse()?))?;
    let log = Arc::new(Mutex::new(Log::default()));
    let mut incarnation = 0usize;
    let mut identity = |i: usize| {
        incarnation += 1;
        format!("r{i}-{incarnation}")
    };
    let mut replicas: Vec<Replica> = Vec::new();
    for i in 0..REPLICAS {
        replicas.push(Replica::start(identity(i), &url, &log)?);
    }

    let stop = CancellationToken::new();
    let writer = tokio::spawn(write(
        client.clone(),
        stop.clone(),
        fastrand::Rng::with_seed(seed ^ 0x5eed),
    ));
    // Kill and restart, one replica at a time.
    let mut kills = Vec::new();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rng.u64(1000..3000))).await;
        let victim = rng.usize(..REPLICAS);
        let at = Instant::now();
        let held = {
            let log = lock(&log);
            log.terms
                .iter()
                .filter(|t| t.owner == replicas[victim].identity && t.lost.is_none())
                .map(|t| t.slot)
                .collect()
        };
        replicas[victim].kill();
        kills.push(Kill {
            at,
            identity: replicas[victim].identity.clone(),
            held,
        });
        tokio::time::sleep(Duration::from_millis(rng.u64(500..3500))).await;
        replicas[victim] = Replica::start(identity(victim), &url, &log)?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let written = writer.await??;

    // Settle: every slot held by one live replica whose term has delivered its last change.
    let slot_of = |name: &str| -> Option<u64> {
        let uid = written.uids.get(name)?;
        (0..SLOTS)
            .find(|i| ShardSelector::fixed(ShardKey::Uid, *i, SLOTS).is_ok_and(|s| s.matches_value(uid)))
    };
    let changes: Vec<Change> = server
        .changes()
        .into_iter()
        .filter(|c| c.group.is_empty() && c.plural == "configmaps" && c.namespace == NS)
        .collect();
    let mut by_slot: BTreeMap<u64, Vec<&Change>> = BTreeMap::new();
    for change in &changes {
        let slot =
            slot_of(&change.name).ok_or_else(|| format!("{}: not written by the writer", change.name))?;
        by_slot.entry(slot).or_default().push(change);
    }
    let live: BTreeSet<String> = replicas.iter().map(|r| r.identity.clone()).collect();
    let settle_from = Instant::now();
    loop {
        let behind = {
            let log = lock(&log);
            if !log.failures.is_empty() {
                return Err(log.failures.join("\n").into());
            }
            (0..SLOTS)
                .filter(|slot| {
                    let last = by_slot
                        .get(slot)
                        .and_then(|c| c.last())
                        .map_or(0, |c| c.resource_version);
                    let current: Vec<&Term> = log
                        .terms
                        .iter()
                        .filter(|t| t.slot == *slot && t.lost.is_none() && live.contains(&t.owner))
                        .collect();
                    match current.as_slice() {
                        [term] => !term.segments.last().is_some_and(|s| {
                            s.list_rv.is_some_and(|l| l >= last)
                                || s.events.last().is_some_and(|e| e.0 >= last)
                        }),
                        _ => true,
                    }
                })
                .count()
        };
        if behind == 0 {
            break;
        }
        if settle_from.elapsed() > SETTLE {
            return Err(
                format!("{behind} slots without one caught-up owner {SETTLE:?} after the churn").into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let settled = settle_from.elapsed();
    for replica in &mut replicas {
        replica.kill();
    }
    server.shutdown().await;

    let log = lock(&log);
    let checked = check(&log.terms, &by_slot)?;
    let mut report = String::new();
    writeln!(
        report,
        "shards chaos: seed {seed} | {REPLICAS} replicas, {SLOTS} slots, lease 2 s / renew deadline 1 s / retry 0.25 s"
    )?;
    writeln!(
        report,
        "writes: {} ({} objects); changes logged by the server: {}; kills and restarts: {}",
        written.writes,
        written.uids.len(),
        changes.len(),
        kills.len()
    )?;
    writeln!(
        report,
        "terms: {}; lists: {}; events delivered: {}; changes delivered as events: {}; covered by a later owner's list only: {}",
        log.terms.len(),
        checked.lists,
        checked.events,
        checked.delivered,
        checked.covered
    )?;
    writeln!(report, "settled {:.1} s after the churn", settled.as_secs_f64())?;
    for kill in &kills {
        let mut acquired = Vec::new();
        let mut delivered = Vec::new();
        for slot in &kill.held {
            let next = log
                .terms
                .iter()
                .filter(|t| t.slot == *slot && t.owner != kill.identity && t.acquired > kill.at)
                .min_by_key(|t| t.acquired);
            if let Some(next) = next {
                acquired.push(next.acquired.duration_since(kill.at).as_secs_f64());
                if let Some(first) = next.first_delivery {
                    delivered.push(first.duration_since(kill.at).as_secs_f64());
                }
            }
        }
        let show = |v: &[f64]| v.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>().join(", ");
        writeln!(
            report,
            "kill of {} (slots {:?}): taken over after [{}] s, first delivered after [{}] s",
            kill.identity,
            kill.held,
            show(&acquired),
            show(&delivered)
        )?;
    }
    if checked.events == 0 || kills.is_empty() {
        return Err(format!("nothing was delivered or killed: the run proves nothing\n{report}").into());
    }
    Ok(report)
}

/// What the checks counted.
struct Checked {
    lists: usize,
    events: usize,
    delivered: usize,
    covered: usize,
}

/// The checks of the module documentation, over every term.
fn check(terms: &[Term], by_slot: &BTreeMap<u64, Vec<&Change>>) -> Result<Checked, String> {
    let mut checked = Checked {
        lists: 0,
        events: 0,
        delivered: 0,
        covered: 0,
    };
    let none = Vec::new();
    for slot in 0..SLOTS {
        let changes = by_slot.get(&slot).unwrap_or(&none);
        let mut slot_terms: Vec<&Term> = terms.iter().filter(|t| t.slot == slot).collect();
        slot_terms.sort_by_key(|t| t.acquired);
        // No overlap: the delivery spans of distinct terms are disjoint.
        let spans: Vec<(Instant, Instant, &Term)> = slot_terms
            .iter()
            .filter_map(|t| Some((t.first_delivery?, t.last_delivery?, *t)))
            .collect();
        for (i, (a_first, a_last, a)) in spans.iter().enumerate() {
            for (b_first, b_last, b) in spans.iter().skip(i + 1) {
                if a_first <= b_last && b_first <= a_last {
                    let (early, late) = if a_first <= b_first { (a, b) } else { (b, a) };
                    let overlap = a_last.min(b_last).duration_since(*a_first.max(b_first));
                    return Err(format!(
                        "slot {slot} delivered by {} and {} at once, for {overlap:?} (the first term's last delivery \
                         after the second's first)",
                        early.owner, late.owner
                    ));
                }
            }
        }
        // Every list right, every term's events exactly the changes after its list.
        let mut delivered_rvs = BTreeSet::new();
        let mut list_rvs = Vec::new();
        for term in &slot_terms {
            for (i, segment) in term.segments.iter().enumerate() {
                let Some(at) = segment.list_rv else {
                    if !segment.events.is_empty() {
                        return Err(format!(
                            "{} slot {slot}: events before its list ended",
                            term.owner
                        ));
                    }
                    continue;
                };
                checked.lists += 1;
                list_rvs.push(at);
                let mut state: BTreeMap<&str, u64> = BTreeMap::new();
                for change in changes.iter().filter(|c| c.resource_version <= at) {
                    match change.change_type {
                        ChangeType::Deleted => state.remove(change.name.as_str()),
                        _ => state.insert(&change.name, change.resource_version),
                    };
                }
                let listed: BTreeMap<&str, u64> =
                    segment.listed.iter().map(|(k, rv)| (k.as_str(), *rv)).collect();
                if listed.len() != segment.listed.len() || listed != state {
                    return Err(format!(
                        "{} slot {slot} segment {i}: the list at {at} is not the slot's state then: listed {listed:?}, \
                         server {state:?}",
                        term.owner
                    ));
                }
                let after: Vec<(u64, ChangeType, String)> = changes
                    .iter()
                    .filter(|c| c.resource_version > at)
                    .map(|c| (c.resource_version, c.change_type, c.name.clone()))
                    .collect();
                if segment.events.len() > after.len() || segment.events[..] != after[..segment.events.len()] {
                    let j = segment
                        .events
                        .iter()
                        .zip(&after)
                        .take_while(|(d, w)| d == w)
                        .count();
                    return Err(format!(
                        "{} slot {slot} segment {i} (list at {at}): event {j} is {:?}, the server's change there is {:?}",
                        term.owner,
                        segment.events.get(j),
                        after.get(j)
                    ));
                }
                checked.events += segment.events.len();
                delivered_rvs.extend(segment.events.iter().map(|e| e.0));
            }
        }
        // Every change delivered, or in a later list.
        for change in changes {
            if delivered_rvs.contains(&change.resource_version) {
                checked.delivered += 1;
            } else if list_rvs.iter().any(|l| *l >= change.resource_version) {
                checked.covered += 1;
            } else {
                return Err(format!(
                    "slot {slot}: change {} ({:?} {}) was neither delivered nor in a later list",
                    change.resource_version, change.change_type, change.name
                ));
            }
        }
    }
    Ok(checked)
}
