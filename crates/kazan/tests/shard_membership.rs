//! Shard membership over Leases (issue 20): replicas divide the slots among the live ones, no slot
//! is ever owned by two replicas at once, a replica that leaves hands its slots over at once, and
//! one that dies loses them after its lease duration. The Leases follow client-go's leader
//! election (tools/leaderelection/leaderelection.go), one per slot.

use std::{collections::BTreeSet, time::Duration};

use kazan::{
    Client, Config,
    lease::ElectionConfig,
    shard::{MembershipConfig, ShardMembership},
};
use kazan_apiserver::ApiServer;
use tokio::sync::watch;

use crate::support::{TestError, TestResult};

const SLOTS: u64 = 6;

fn config(identity: &str) -> MembershipConfig {
    MembershipConfig {
        namespace: "default".into(),
        lease_prefix: "workers".into(),
        identity: identity.into(),
        slots: SLOTS,
        election: ElectionConfig {
            lease_duration: Duration::from_secs(2),
            renew_deadline: Duration::from_millis(1500),
            retry_period: Duration::from_millis(200),
            ..ElectionConfig::default()
        },
    }
}

fn client(server: &ApiServer) -> Result<Client, TestError> {
    Ok(Client::new(Config::new(server.url().parse()?))?)
}

/// Samples the replicas' owned slots until `done` holds (bounded), checking at every sample that
/// no slot is owned twice; returns the samples taken.
async fn until(
    replicas: &[(&str, watch::Receiver<BTreeSet<u64>>)],
    done: impl Fn(&[BTreeSet<u64>]) -> bool,
) -> Result<u64, TestError> {
    for sample in 0..600u64 {
        let owned: Vec<BTreeSet<u64>> = replicas.iter().map(|(_, rx)| rx.borrow().clone()).collect();
        for (i, a) in owned.iter().enumerate() {
            for (j, b) in owned.iter().enumerate().skip(i + 1) {
                let both: Vec<_> = a.intersection(b).collect();
                if !both.is_empty() {
                    return Err(format!(
                        "slots {both:?} owned by {} and {} at once",
                        replicas[i].0, replicas[j].0
                    )
                    .into());
                }
            }
        }
        if done(&owned) {
            return Ok(sample);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let owned: Vec<_> = replicas.iter().map(|(n, rx)| (n, rx.borrow().clone())).collect();
    Err(format!("not settled within the bound: {owned:?}").into())
}

fn covers_all_evenly(owned: &[BTreeSet<u64>]) -> bool {
    let union: BTreeSet<u64> = owned.iter().flatten().copied().collect();
    let share = SLOTS.div_ceil(owned.len() as u64);
    union.len() as u64 == SLOTS && owned.iter().all(|o| o.len() as u64 == share)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_divide_the_slots_hand_them_over_on_leaving_and_take_over_a_dead_ones() -> TestResult {
    let server = ApiServer::start().await?;
    let a = ShardMembership::start(&client(&server)?, config("a"))?;
    // b runs on a runtime of its own, so that it can die without a word (below).
    let b_runtime = Dies(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?,
    ));
    let b = {
        let _inside = b_runtime.0.as_ref().ok_or("no runtime")?.enter();
        ShardMembership::start(&client(&server)?, config("b"))?
    };
    let c = ShardMembership::start(&client(&server)?, config("c"))?;

    // Three replicas: two slots each, every slot owned.
    let three = [("a", a.owned()), ("b", b.owned()), ("c", c.owned())];
    until(&three, covers_all_evenly).await?;

    // c leaves: its slots leave its set, are released, and a and b take three each.
    c.stop().await;
    let two = [("a", a.owned()), ("b", b.owned())];
    until(&two, covers_all_evenly).await?;

    // b dies without a word: its runtime is gone with every task, nothing is released. a owns
    // everything once b's Leases have gone unchanged for their duration.
    drop(b_runtime);
    drop(b);
    let one = [("a", a.owned())];
    until(&one, |o| o[0].len() as u64 == SLOTS).await?;
    a.stop().await;
    Ok(())
}

/// A runtime that dies without waiting for its tasks when dropped (also inside an async test).
struct Dies(Option<tokio::runtime::Runtime>);

impl Drop for Dies {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// What a sharded watcher handed out, with the instant `recv` returned it.
#[derive(Default)]
struct Handed {
    /// slot → when it was acquired and lost.
    acquired: std::collections::BTreeMap<u64, std::time::Instant>,
    lost: std::collections::BTreeMap<u64, std::time::Instant>,
    /// The slots whose list was handed out in full (`Synced`).
    synced: BTreeSet<u64>,
    /// slot → (name, instant) of each object listed or changed.
    objects: std::collections::BTreeMap<u64, Vec<(String, std::time::Instant)>>,
}

/// Reads `watcher` until `done` holds (bounded in count and time).
async fn handed_until(
    watcher: &mut kazan::shard::ShardedWatcher<k8s_openapi::api::core::v1::ConfigMap>,
    handed: &mut Handed,
    done: impl Fn(&Handed) -> bool,
) -> Result<(), TestError> {
    use kazan::shard::ShardedEvent;
    for _ in 0..500 {
        if done(handed) {
            return Ok(());
        }
        let event = tokio::time::timeout(Duration::from_secs(20), watcher.recv())
            .await?
            .ok_or("the sharded watcher ended")?;
        let now = std::time::Instant::now();
        match event {
            ShardedEvent::Acquired { slot } => {
                handed.acquired.insert(slot, now);
                handed.lost.remove(&slot);
                handed.synced.remove(&slot);
            }
            ShardedEvent::Lost { slot } => {
                handed.lost.insert(slot, now);
            }
            ShardedEvent::Event { slot, event } => {
                if matches!(event.kind, kazan::watcher::EventKind::Synced) {
                    handed.synced.insert(slot);
                }
                if let Some(object) = event.object() {
                    let name = object.metadata.name.clone().unwrap_or_default();
                    handed.objects.entry(slot).or_default().push((name, now));
                }
            }
            ShardedEvent::Failed { error, .. } => return Err(error.to_string().into()),
            _ => {}
        }
    }
    Err("not done within 500 events".into())
}

/// A replica lists the slots it wins; when a second joins, the first loses the slots it sheds
/// (handed out as `Lost`, after its last object of the slot) before the second lists them, and
/// between the slots each keeps, every object is handed out by the replica that holds its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_watchers_list_the_slots_they_win_and_hand_one_over_lost_before_listed() -> TestResult {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kazan::{Request, shard::ShardKey, shard::ShardedWatcher, watcher::WatcherOptions};

    let server = ApiServer::start().await?;
    let names: BTreeSet<String> = (0..24).map(|i| format!("c{i:02}")).collect();
    for name in &names {
        server.create(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}
        }))?;
    }
    let start = |identity: &str| {
        let mut membership = config(identity);
        membership.slots = 4;
        ShardedWatcher::start(
            &client(&server)?,
            Request::list::<ConfigMap>().namespace("default"),
            WatcherOptions::new(),
            ShardKey::Uid,
            membership,
        )
        .map_err(TestError::from)
    };
    let listed = |h: &Handed| -> BTreeSet<String> {
        h.objects
            .iter()
            .filter(|(slot, _)| !h.lost.contains_key(*slot))
            .flat_map(|(_, o)| o.iter().map(|(n, _)| n.clone()))
            .collect()
    };
    let mut a = start("a")?;
    let mut from_a = Handed::default();
    handed_until(&mut a, &mut from_a, |h| h.synced.len() == 4).await?;
    assert_eq!(listed(&from_a), names, "a alone lists every object");

    let mut b = start("b")?;
    let mut from_b = Handed::default();
    handed_until(&mut a, &mut from_a, |h| h.lost.len() == 2).await?;
    handed_until(&mut b, &mut from_b, |h| h.synced.len() == 2).await?;
    for (slot, lost) in &from_a.lost {
        let won = from_b
            .acquired
            .get(slot)
            .ok_or(format!("slot {slot} lost by a, not won by b"))?;
        assert!(lost < won, "slot {slot} won by b before a lost it");
        let last_of_a = from_a.objects.get(slot).and_then(|o| o.last()).map(|(_, at)| *at);
        assert!(
            last_of_a.is_none_or(|at| at < *won),
            "a handed out slot {slot} after b won it"
        );
    }
    // Between them, every object once, each from the holder of its slot.
    let mut union = listed(&from_a);
    let of_b = listed(&from_b);
    assert!(
        union.is_disjoint(&of_b),
        "objects handed out by both: {:?}",
        union.intersection(&of_b).collect::<Vec<_>>()
    );
    union.extend(of_b);
    assert_eq!(
        union,
        names,
        "a: acquired {:?} lost {:?} synced {:?}; b: acquired {:?} lost {:?} synced {:?}",
        from_a.acquired.keys().collect::<Vec<_>>(),
        from_a.lost.keys().collect::<Vec<_>>(),
        from_a.synced,
        from_b.acquired.keys().collect::<Vec<_>>(),
        from_b.lost.keys().collect::<Vec<_>>(),
        from_b.synced
    );
    a.stop().await;
    b.stop().await;
    Ok(())
}
