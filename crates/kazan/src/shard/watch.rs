//! Watching the slots a replica owns: [`ShardMembership`] says which slots this replica may act
//! on, and [`ShardedWatcher`] runs one watcher per owned slot, started when the slot is won and
//! stopped when it is lost.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kazan::{Client, Request, lease::ElectionConfig, watcher::WatcherOptions};
//! use kazan::shard::{MembershipConfig, ShardKey, ShardedEvent, ShardedWatcher};
//!
//! let client = Client::try_default().await?;
//! let membership = MembershipConfig {
//!     namespace: "default".into(),
//!     lease_prefix: "cm-workers".into(),
//!     identity: "pod-a-7f3c".into(),
//!     slots: 8,
//!     election: ElectionConfig::default(),
//! };
//! let mut watcher = ShardedWatcher::start(
//!     &client,
//!     Request::list::<ConfigMap>(),
//!     WatcherOptions::new(),
//!     ShardKey::Uid,
//!     membership,
//! )?;
//! while let Some(event) = watcher.recv().await {
//!     match event {
//!         ShardedEvent::Acquired { slot } => println!("slot {slot} is mine; its list follows"),
//!         ShardedEvent::Lost { slot } => println!("slot {slot} is not mine any more: forget its objects"),
//!         ShardedEvent::Event { slot, event } => println!("{slot}: {:?}", event.event_type()),
//!         ShardedEvent::Failed { slot, error } => println!("{slot}: cannot watch: {error}"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! What it guarantees, and how:
//!
//! - **An owner lists its slot.** When a slot is won, its watcher is started with the slot's
//!   [`ShardSelector::fixed`] and no resource version: it lists the slot (objects as `Added`,
//!   then `Synced`), then watches on, and after 410 Gone lists again (the supervised form,
//!   [`Watcher::supervise`]). Whatever changed while nobody owned the slot (a dead owner's lease
//!   running out) is in that list: no change is lost, though changes superseded meanwhile are
//!   seen only in their latest state.
//! - **No slot is handed out by two owners at once.** An event of a slot is returned by
//!   [`recv`](ShardedWatcher::recv) only while the slot is in [`ShardMembership::owned`] at the
//!   instant of returning, and only from the watcher started for the current ownership (events
//!   left in the channel by the watcher of an earlier ownership are dropped). A slot leaves
//!   `owned` at the election's fence, which is at least `leaseDurationSeconds − renewDeadline`
//!   before any other replica can win it (see [`crate::lease`]). So, on one clock, the last event
//!   of a slot returned by its old owner precedes the first returned by the new owner.
//! - **The fencing window**: that margin must also cover what the guarantee cannot see — the
//!   time between `recv` returning and the caller acting on the event (a task blocked for
//!   seconds), the membership task noticing the fence (one wake-up of a task), and the difference
//!   in clock *rates* between replicas over a lease duration. Writes sent before the fence may
//!   land after it; guard them with preconditions where that matters.
//! - **A lost slot is stopped.** Its watcher is cancelled at once, and
//!   [`ShardedEvent::Lost`] tells the caller to forget the slot's objects (another replica now
//!   delivers them, after its own list).

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::Arc,
};

use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use super::{MembershipConfig, MembershipError, ShardKey, ShardMembership, ShardSelector};
use crate::{
    Client, Object, Request,
    resource::ObjectList,
    watcher::{Event, WatchError, Watcher, WatcherHandle, WatcherOptions},
};

/// What a [`ShardedWatcher`] hands out.
#[derive(Debug)]
#[non_exhaustive]
pub enum ShardedEvent<K> {
    /// This replica now owns `slot`. Its watcher has started: the slot's objects follow as
    /// `Added`, then `Synced`, then its changes.
    Acquired {
        /// The slot won.
        slot: u64,
    },
    /// This replica no longer owns `slot` (shed to another replica, fenced after failed renewals,
    /// or the membership ended): nothing more of it comes until it is acquired again; forget its
    /// objects.
    Lost {
        /// The slot lost.
        slot: u64,
    },
    /// An event of an owned slot's watcher.
    Event {
        /// The slot the object belongs to.
        slot: u64,
        /// The watcher's event (Gone is followed by the slot's list again).
        event: Event<K>,
    },
    /// The slot's watcher could not start (the request or options are refused); the slot stays
    /// owned but unwatched.
    Failed {
        /// The slot.
        slot: u64,
        /// Why.
        error: Arc<WatchError>,
    },
}

/// An event tagged with the slot and the ownership ("term") whose watcher sent it.
struct Tagged<K> {
    slot: u64,
    term: u64,
    event: Event<K>,
}

/// The watcher of one owned slot.
struct Running<K> {
    term: u64,
    /// `None` when the watcher could not start.
    handle: Option<WatcherHandle<Tagged<K>>>,
}

/// Runs the watchers of the slots this replica owns. See the [module documentation](self).
pub struct ShardedWatcher<K> {
    membership: Option<ShardMembership>,
    owned: watch::Receiver<BTreeSet<u64>>,
    client: Client,
    request: Request<ObjectList<K>>,
    options: WatcherOptions,
    key: ShardKey,
    slots: u64,
    running: BTreeMap<u64, Running<K>>,
    next_term: u64,
    pending: VecDeque<ShardedEvent<K>>,
    tx: mpsc::Sender<Tagged<K>>,
    rx: mpsc::Receiver<Tagged<K>>,
    ended: bool,
}

impl<K> std::fmt::Debug for ShardedWatcher<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedWatcher")
            .field("slots", &self.slots)
            .field("watching", &self.running.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<K> ShardedWatcher<K>
where
    K: Object + DeserializeOwned + Send + 'static,
{
    /// Joins the membership and watches, with `request` and `options`, the slots it wins; each
    /// slot `i` is the fixed shard `i/slots` of `key`'s hash. `options`' shard and resource
    /// version are replaced by the slot's (every slot's watcher lists); its channel capacity is
    /// the shared channel's. Must be called inside a Tokio runtime.
    pub fn start(
        client: &Client,
        request: Request<ObjectList<K>>,
        options: WatcherOptions,
        key: ShardKey,
        membership: MembershipConfig,
    ) -> Result<ShardedWatcher<K>, MembershipError> {
        let slots = membership.slots;
        let membership = ShardMembership::start(client, membership)?;
        let (tx, rx) = mpsc::channel(options.channel_capacity.max(1));
        Ok(ShardedWatcher {
            owned: membership.owned(),
            membership: Some(membership),
            client: client.clone(),
            request,
            options,
            key,
            slots,
            running: BTreeMap::new(),
            next_term: 0,
            pending: VecDeque::new(),
            tx,
            rx,
            ended: false,
        })
    }

    /// The slots owned now (the membership's view).
    pub fn owned(&self) -> BTreeSet<u64> {
        self.owned.borrow().clone()
    }

    /// The next acquisition, loss or event; `None` once the membership has ended (after
    /// [`Lost`](ShardedEvent::Lost) for every slot held).
    pub async fn recv(&mut self) -> Option<ShardedEvent<K>> {
        loop {
            self.follow_ownership();
            if let Some(next) = self.pending.pop_front() {
                return Some(next);
            }
            if self.ended {
                return None;
            }
            tokio::select! {
                biased;
                changed = self.owned.changed() => {
                    if changed.is_err() {
                        // The membership's task is gone: nothing is owned any more.
                        self.ended = true;
                        let slots: Vec<u64> = self.running.keys().copied().collect();
                        for slot in slots {
                            self.lose(slot);
                        }
                    }
                }
                Some(tagged) = self.rx.recv() => {
                    let current = self.running.get(&tagged.slot).is_some_and(|r| r.term == tagged.term);
                    if !current {
                        // Left in the channel by the watcher of an ownership that ended.
                        continue;
                    }
                    if self.owned.borrow().contains(&tagged.slot) {
                        return Some(ShardedEvent::Event { slot: tagged.slot, event: tagged.event });
                    }
                    // Fenced since the last look: the event is not handed out, and the slot is
                    // lost now (a later win lists it again, so nothing is skipped).
                    self.lose(tagged.slot);
                }
            }
        }
    }

    /// Stops every slot's watcher, then leaves the membership (its slots are released, so the
    /// others take them over within a retry period).
    pub async fn stop(mut self) {
        for handle in std::mem::take(&mut self.running)
            .into_values()
            .filter_map(|r| r.handle)
        {
            handle.stop().await;
        }
        if let Some(membership) = self.membership.take() {
            membership.stop().await;
        }
    }

    /// Starts the watchers of slots won and stops those of slots lost, queueing the news.
    fn follow_ownership(&mut self) {
        if self.ended {
            return;
        }
        let owned = self.owned.borrow_and_update().clone();
        let lost: Vec<u64> = self
            .running
            .keys()
            .filter(|s| !owned.contains(s))
            .copied()
            .collect();
        for slot in lost {
            self.lose(slot);
        }
        for slot in owned {
            if !self.running.contains_key(&slot) {
                self.acquire(slot);
            }
        }
    }

    fn lose(&mut self, slot: u64) {
        if let Some(running) = self.running.remove(&slot) {
            if let Some(handle) = &running.handle {
                handle.cancel();
            }
            self.pending.push_back(ShardedEvent::Lost { slot });
        }
    }

    fn acquire(&mut self, slot: u64) {
        self.next_term += 1;
        let term = self.next_term;
        let started = match ShardSelector::fixed(self.key, slot, self.slots) {
            Ok(selector) => {
                let mut options = self.options.clone().shard(selector);
                options.resource_version = None;
                let options =
                    options.send_to_with(self.tx.clone(), move |event| Tagged { slot, term, event });
                Watcher::supervise(self.client.clone(), self.request.clone(), options).map_err(Arc::new)
            }
            // The membership owns only slots below `slots`, each a shard: not reached.
            Err(e) => {
                tracing::error!("slot {slot} of {} names no shard: {e}", self.slots);
                return;
            }
        };
        match started {
            Ok(handle) => {
                self.running.insert(
                    slot,
                    Running {
                        term,
                        handle: Some(handle),
                    },
                );
                self.pending.push_back(ShardedEvent::Acquired { slot });
            }
            Err(error) => {
                // Owned but unwatched, until lost: not retried at every look.
                self.running.insert(slot, Running { term, handle: None });
                self.pending.push_back(ShardedEvent::Failed { slot, error });
            }
        }
    }
}

impl<K> Drop for ShardedWatcher<K> {
    fn drop(&mut self) {
        for handle in self.running.values().filter_map(|r| r.handle.as_ref()) {
            handle.cancel();
        }
    }
}
