//! Shard membership over Leases: N replicas started the same way divide a fixed number of shard
//! slots among the live ones, with no coordination service but the cluster.
//!
//! Why a Lease per *slot* (`{prefix}-{i}` for slot `i` of `slots`) rather than one per replica:
//! a slot's Lease is exactly the thing whose holder may act on the slot, so the leader election's
//! guarantees carry over unchanged. A holder is told to stop acting on a slot (fenced) before its
//! renew deadline runs out, which is before any other replica can take the slot's Lease over
//! (see [`crate::lease`]); a slot is never acted on by two replicas at once. Each replica also
//! keeps a Lease of its own (`{prefix}-member-{identity}`), which is how the others count the live
//! replicas.
//!
//! Every retry period, a replica counts the live members (member Leases renewed within their
//! duration), aims at `⌈slots / live⌉` slots, contends for more slots while it holds fewer (free
//! and expired ones first), and gives up its highest slots while it holds more (released at once,
//! so the replica that needs them takes them within one retry period). So when a replica dies its
//! slots are taken over within the lease duration plus a retry period; when one joins, the others
//! shed slots to it; and rebalancing moves only the slots beyond each replica's share.
//!
//! [`ShardMembership::owned`] is the set of slots this replica may act on now; a slot leaves it
//! at the fence, before anyone else can hold it (also while the membership's own requests are in
//! flight). Watch slot `i` with
//! [`ShardSelector::fixed`](super::ShardSelector::fixed)`(key, i, slots)` (a new owner lists it,
//! so nothing changed meanwhile is lost), and stop when it leaves the set:
//! [`ShardedWatcher`](super::ShardedWatcher) does exactly that.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::{StreamExt, future::BoxFuture, stream::FuturesUnordered};
use k8s_openapi::{api::coordination::v1::Lease, jiff::Timestamp};
use tokio::{sync::watch, task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    Client, Request,
    lease::{Election, ElectionConfig, ElectionError, LeaderElector, LeaseLock, LeaseStatus},
};

/// How a replica takes part: the same `namespace`, `lease_prefix` and `slots` on every replica,
/// a distinct `identity` each.
#[derive(Clone, Debug)]
pub struct MembershipConfig {
    /// Where the Leases live.
    pub namespace: String,
    /// The Leases are `{prefix}-{slot}` and `{prefix}-member-{identity}`.
    pub lease_prefix: String,
    /// This replica's name (a pod name, say); distinct per replica.
    pub identity: String,
    /// How many slots the hash space is cut into (each slot `i` is the range of the fixed shard
    /// `i/slots`); at least 1. More slots than replicas balance better.
    pub slots: u64,
    /// The elections' timings; `release_on_cancel` and `rejoin_after_loss` are set by the
    /// membership (it releases slots it sheds, and stays a candidate).
    pub election: ElectionConfig,
}

/// Why a membership cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// No slots to share.
    #[error("a shard membership needs at least one slot")]
    NoSlots,
    /// The elections' configuration is refused.
    #[error(transparent)]
    Election(#[from] ElectionError),
}

/// A running membership: the slots this replica may act on, as they change.
#[derive(Debug)]
pub struct ShardMembership {
    owned: watch::Receiver<BTreeSet<u64>>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl ShardMembership {
    /// Joins the group and starts contending for slots (on the current Tokio runtime).
    pub fn start(client: &Client, config: MembershipConfig) -> Result<ShardMembership, MembershipError> {
        if config.slots == 0 {
            return Err(MembershipError::NoSlots);
        }
        let mut election = config.election.clone();
        election.release_on_cancel = true;
        election.rejoin_after_loss = true;
        // Checked once here, so that the loop's electors cannot fail.
        let member = LeaderElector::new(client, member_lock(&config), election.clone())?;
        let (tx, owned) = watch::channel(BTreeSet::new());
        let cancel = CancellationToken::new();
        let run = Replica {
            client: client.clone(),
            config,
            election,
            slots: BTreeMap::new(),
            seen: BTreeMap::new(),
            tx,
        };
        let task = tokio::spawn(run.run(member.start(), cancel.clone()));
        Ok(ShardMembership { owned, cancel, task })
    }

    /// The slots this replica may act on now; changes as slots are won, shed or lost (fenced).
    pub fn owned(&self) -> watch::Receiver<BTreeSet<u64>> {
        self.owned.clone()
    }

    /// Leaves the group: every slot leaves [`owned`](Self::owned) first, then its Lease is
    /// released, so the others take the slots over within a retry period.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for ShardMembership {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn member_lock(config: &MembershipConfig) -> LeaseLock {
    LeaseLock::new(
        &config.namespace,
        &format!("{}-member-{}", config.lease_prefix, config.identity),
        &config.identity,
    )
}

fn slot_lease(config: &MembershipConfig, slot: u64) -> String {
    format!("{}-{slot}", config.lease_prefix)
}

/// One replica's bookkeeping.
struct Replica {
    client: Client,
    config: MembershipConfig,
    election: ElectionConfig,
    /// The slots contended for or held, each with its election.
    slots: BTreeMap<u64, Election>,
    /// Each slot's Lease as last read, and when that content was first seen: a slot's elector
    /// starts its clock from there, so a dead holder's slot is taken a lease duration after its
    /// last renewal was seen, not a lease duration after the contention starts.
    seen: BTreeMap<u64, (Lease, Instant)>,
    tx: watch::Sender<BTreeSet<u64>>,
}

/// What the Leases say at one look.
struct Look {
    /// Live members (member Leases renewed within their duration), this one included.
    live: u64,
    /// Slots whose Lease is missing, released or expired: the first to contend for.
    free: BTreeSet<u64>,
    /// The slots' Leases read.
    slot_leases: Vec<(u64, Lease)>,
}

impl Replica {
    async fn run(mut self, member: Election, cancel: CancellationToken) {
        let period = self.election.retry_period;
        loop {
            self.publish();
            if let Some(look) = self.publishing(self.look()).await {
                self.remember(&look.slot_leases);
                let shed = self.rebalance(&look);
                self.publish();
                self.publishing(stop_all(shed)).await;
            }
            // Until the next look, or at once when a slot's leadership changes (a fence).
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(period) => {}
                () = first(self.changes()) => {}
            }
        }
        // Leaving: the slots leave `owned` before their Leases are released.
        let _ = self.tx.send(BTreeSet::new());
        for (_, election) in std::mem::take(&mut self.slots) {
            election.stop().await;
        }
        member.stop().await;
    }

    /// Resolves when the leadership of any slot contended for changes (a win, or a fence).
    /// At once when a slot's leadership already differs from what was published (a change
    /// between the publication and this call is not missed).
    fn changes(&self) -> FuturesUnordered<BoxFuture<'static, ()>> {
        let published = self.tx.borrow().clone();
        self.slots
            .iter()
            .map(|(slot, e)| {
                let mut rx = e.leadership();
                // Marks the value read as seen: `changed` then waits for a later one (a clone
                // starts with the original's notion of seen, which is never updated).
                let stale = rx.borrow_and_update().is_leading() != published.contains(slot);
                let change: BoxFuture<'static, ()> = Box::pin(async move {
                    if stale {
                        return;
                    }
                    if rx.changed().await.is_err() {
                        // The election ended: nothing more will change.
                        std::future::pending::<()>().await;
                    }
                });
                change
            })
            .collect()
    }

    /// Runs `work` (a look at the Leases, releases) while publishing every leadership change at
    /// once: a slot leaves `owned` at its fence even while a request is in flight here.
    async fn publishing<F: Future>(&self, work: F) -> F::Output {
        tokio::pin!(work);
        loop {
            tokio::select! {
                biased;
                out = &mut work => return out,
                () = first(self.changes()) => self.publish(),
            }
        }
    }

    /// Publishes the slots held now.
    fn publish(&self) {
        let held: BTreeSet<u64> = self
            .slots
            .iter()
            .filter(|(_, e)| e.is_leading())
            .map(|(slot, _)| *slot)
            .collect();
        self.tx.send_if_modified(|owned| {
            if *owned == held {
                false
            } else {
                *owned = held;
                true
            }
        });
    }

    /// Reads the group's Leases; `None` when the read failed (the next look tries again).
    async fn look(&self) -> Option<Look> {
        let list = self
            .client
            .run(&Request::list::<Lease>().namespace(&self.config.namespace))
            .await
            .ok()?;
        let now = Timestamp::now();
        let member_prefix = format!("{}-member-", self.config.lease_prefix);
        let mut live = BTreeSet::from([self.config.identity.clone()]);
        let mut taken = BTreeSet::new();
        let mut slot_leases = Vec::new();
        for lease in &list.items {
            let Some(name) = lease.metadata.name.as_deref() else {
                continue;
            };
            let status = LeaseStatus::of(lease);
            let alive = status.holder.is_some() && !status.looks_expired_at(now);
            if let Some(member) = name.strip_prefix(&member_prefix) {
                if alive {
                    live.insert(member.to_string());
                }
            } else if let Some(slot) = name
                .strip_prefix(&self.config.lease_prefix)
                .and_then(|rest| rest.strip_prefix('-'))
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|slot| *slot < self.config.slots)
            {
                if alive {
                    taken.insert(slot);
                }
                slot_leases.push((slot, lease.clone()));
            }
        }
        let free = (0..self.config.slots).filter(|s| !taken.contains(s)).collect();
        Some(Look {
            live: live.len() as u64,
            free,
            slot_leases,
        })
    }

    /// Notes when each slot's Lease was first seen as it is now.
    fn remember(&mut self, leases: &[(u64, Lease)]) {
        let now = Instant::now();
        for (slot, lease) in leases {
            let unchanged = self
                .seen
                .get(slot)
                .is_some_and(|(seen, _)| seen.spec == lease.spec);
            if !unchanged {
                self.seen.insert(*slot, (lease.clone(), now));
            }
        }
    }

    /// Contends for slots up to this replica's share, and sheds those beyond it: returns the
    /// elections of the slots shed or given up, already out of `owned`, to be stopped (released).
    fn rebalance(&mut self, look: &Look) -> Vec<Election> {
        let mut shed = Vec::new();
        let share = self.config.slots.div_ceil(look.live.max(1));
        let held: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, e)| e.is_leading())
            .map(|(s, _)| *s)
            .collect();
        if held.len() as u64 >= share {
            // Enough: stop contending for more, and shed the highest slots beyond the share
            // (out of `owned` first, then released).
            let keep: BTreeSet<u64> = held.iter().take(share as usize).copied().collect();
            let drop: Vec<u64> = self.slots.keys().copied().filter(|s| !keep.contains(s)).collect();
            for slot in drop {
                if let Some(election) = self.slots.remove(&slot) {
                    shed.push(election);
                }
            }
            self.publish();
            return shed;
        }
        // Too few. A contender for a slot some live replica holds waits for nothing while free
        // slots are there: it moves to a free one.
        let free_elsewhere = look.free.iter().filter(|s| !self.slots.contains_key(s)).count();
        if free_elsewhere > 0 {
            let stuck: Vec<u64> = self
                .slots
                .iter()
                .filter(|(s, e)| !e.is_leading() && !look.free.contains(s))
                .map(|(s, _)| *s)
                .collect();
            for slot in stuck {
                if let Some(election) = self.slots.remove(&slot) {
                    shed.push(election);
                }
            }
        }
        let missing = share as usize - held.len();
        let contending = self.slots.len() - held.len();
        if contending >= missing {
            return shed;
        }
        // Free slots first, each replica starting at a place of its own in the ring (so that
        // replicas starting together do not all contend for the same ones), then any slot.
        let start = super::fnv1a_64(self.config.identity.as_bytes()) % self.config.slots;
        let ring = (0..self.config.slots).map(|i| (start + i) % self.config.slots);
        let candidates: Vec<u64> = ring
            .clone()
            .filter(|s| look.free.contains(s))
            .chain(ring)
            .filter(|s| !self.slots.contains_key(s))
            .collect();
        let mut seen = BTreeSet::new();
        for slot in candidates
            .into_iter()
            .filter(|s| seen.insert(*s))
            .take(missing - contending)
        {
            let lock = LeaseLock::new(
                &self.config.namespace,
                &slot_lease(&self.config, slot),
                &self.config.identity,
            );
            // The configuration was checked at start; a failure here would be a bug, and
            // contending for one slot fewer is the safe answer.
            if let Ok(mut elector) = LeaderElector::new(&self.client, lock, self.election.clone()) {
                if let Some((lease, at)) = self.seen.get(&slot) {
                    elector = elector.seen(lease, *at);
                }
                self.slots.insert(slot, elector.start());
            }
        }
        shed
    }
}

/// Stops elections (each releases its Lease if it holds it), all at once.
async fn stop_all(elections: Vec<Election>) {
    let stops: FuturesUnordered<_> = elections.into_iter().map(Election::stop).collect();
    stops.collect::<Vec<()>>().await;
}

/// Resolves when the first of `changes` does; never when there are none.
async fn first<F: Future>(mut changes: FuturesUnordered<F>) {
    if changes.is_empty() {
        std::future::pending::<()>().await;
    }
    let _ = changes.next().await;
}
