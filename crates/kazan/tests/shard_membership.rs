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
