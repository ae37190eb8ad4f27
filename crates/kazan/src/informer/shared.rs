//! Subscriptions to one informer: each subscriber has its own bounded queue; the informer's task
//! applies each change to the store and queues it for every subscriber under one lock, so a
//! subscriber that joins late gets the store's snapshot and then exactly the changes after it.
//!
//! A subscriber that falls behind its bound is, by its [`Overflow`] policy, either waited for
//! (backpressure: the informer stops reading its watch until there is room) or cut off: its queue
//! stops growing, the informer only notes which keys changed and what the subscriber last saw of
//! them, and once the subscriber has drained its queue it receives the difference between that
//! and the store (coalesced `Added` / `Modified` / `Deleted { final_state_unknown: true }`).

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{
    Core,
    events::{Event, EventKind},
    store::{Key, Store, key_of},
};
use crate::{Object, watcher::WatcherId};

/// What happens when a subscriber's queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Cut the subscriber off and re-synchronise it from the store once it has drained its
    /// queue: it receives the net changes it missed (coalesced, deletes as
    /// `final_state_unknown`). The watch and the other subscribers never wait for it; memory is
    /// bounded by the number of distinct objects that changed meanwhile. The default.
    #[default]
    Resync,
    /// Wait for the subscriber: the informer stops reading its watch (and the watcher its socket)
    /// until the queue has room, so every subscriber of the informer waits with it. Every event
    /// is delivered, none coalesced.
    Backpressure,
}

/// How a subscriber receives events.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct SubscribeOptions {
    pub(crate) capacity: usize,
    pub(crate) overflow: Overflow,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            capacity: 1024,
            overflow: Overflow::Resync,
        }
    }
}

impl SubscribeOptions {
    /// The defaults: a queue of 1024 events, [`Overflow::Resync`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The bound of the subscriber's queue (at least 1). A late subscriber's snapshot, and a
    /// re-synchronisation, are queued whole even above the bound: they are pointers to the
    /// store's objects.
    pub fn capacity(mut self, events: usize) -> Self {
        self.capacity = events.max(1);
        self
    }

    /// What happens when the queue is full (default [`Overflow::Resync`]).
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }
}

/// An event as the informer fans it out, with the state a subscriber held before it (`None` if
/// it did not hold the key): what a cut-off subscriber's re-synchronisation starts from. For a
/// watched delete it is the store's previous copy, not the server's final state the event carries.
pub(crate) struct Change<K> {
    pub(crate) event: Event<K>,
    pub(crate) before: Option<Arc<K>>,
}

impl<K> Change<K> {
    /// A change whose previous state is the one the event carries (`old`, or an unseen delete's
    /// `last`).
    pub(crate) fn new(event: Event<K>) -> Self {
        let before = event.before().cloned();
        Change { event, before }
    }
}

/// What a cut-off subscriber missed: for each key that changed, the state it last saw (`None` if
/// it did not know the key), and whether a `Synced` went by.
struct Missed<K> {
    before: BTreeMap<Key, Option<Arc<K>>>,
    synced: bool,
}

struct SlotState<K> {
    queue: VecDeque<Event<K>>,
    missed: Option<Missed<K>>,
    /// The informer ended: nothing more will come once the queue is drained.
    closed: bool,
    /// The subscription was dropped.
    dropped: bool,
    cutoffs: u64,
}

/// One subscriber's queue, shared by the informer's task and the subscription.
pub(crate) struct Slot<K> {
    capacity: usize,
    overflow: Overflow,
    state: Mutex<SlotState<K>>,
    ready: Notify,
    room: Notify,
}

impl<K: Object> Slot<K> {
    fn lock(&self) -> MutexGuard<'_, SlotState<K>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `change`, or notes it as missed when this subscriber is cut off.
    fn push(&self, change: &Change<K>) {
        let event = &change.event;
        let mut state = self.lock();
        if state.dropped {
            return;
        }
        if state.missed.is_none() && self.overflow == Overflow::Resync && state.queue.len() >= self.capacity {
            state.missed = Some(Missed {
                before: BTreeMap::new(),
                synced: false,
            });
            state.cutoffs += 1;
        }
        match &mut state.missed {
            Some(missed) => match event.object() {
                Some(object) => {
                    missed
                        .before
                        .entry(key_of(object.as_ref()))
                        .or_insert_with(|| change.before.clone());
                }
                None => missed.synced = true,
            },
            None => state.queue.push_back(event.clone()),
        }
        drop(state);
        self.ready.notify_one();
    }

    fn has_room(&self) -> bool {
        let state = self.lock();
        state.dropped || state.queue.len() < self.capacity
    }
}

/// The subscribers of one informer, and the lock that orders every change against every
/// subscribe: held while a change is applied to the store and queued for everyone.
pub(crate) struct Hub<K> {
    slots: Mutex<Slots<K>>,
}

/// The subscribers, and whether the informer has ended (a late subscriber then gets the snapshot
/// and the end).
struct Slots<K> {
    live: Vec<Arc<Slot<K>>>,
    closed: bool,
}

impl<K: Object> Hub<K> {
    pub(crate) fn new() -> Self {
        Hub {
            slots: Mutex::new(Slots {
                live: Vec::new(),
                closed: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots<K>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a change to the store and queues the events it yields for every subscriber, as one
    /// step no subscribe can fall into.
    pub(crate) fn apply(
        &self,
        store: &Store<K>,
        change: impl FnOnce(&mut super::store::StoreState<K>) -> Vec<Change<K>>,
    ) {
        let slots = self.lock();
        let changes = {
            let mut state = store.write();
            change(&mut state)
        };
        for slot in slots.live.iter() {
            for change in &changes {
                slot.push(change);
            }
        }
    }

    /// A new subscriber: its queue starts with the store's snapshot as `Added` events (and
    /// `Synced` when the store is synced), taken under the same lock as changes are applied.
    pub(crate) fn subscribe(
        &self,
        store: &Store<K>,
        from: WatcherId,
        options: SubscribeOptions,
    ) -> Arc<Slot<K>> {
        let mut slots = self.lock();
        let mut queue = VecDeque::new();
        {
            let state = store.read();
            for object in state.iter() {
                queue.push_back(Event {
                    from,
                    resource_version: object.resource_version().map(str::to_string),
                    kind: EventKind::Added(object.clone()),
                });
            }
            if store.is_synced() {
                queue.push_back(Event {
                    from,
                    resource_version: state.resource_version.clone(),
                    kind: EventKind::Synced,
                });
            }
        }
        let slot = Arc::new(Slot {
            capacity: options.capacity,
            overflow: options.overflow,
            state: Mutex::new(SlotState {
                queue,
                missed: None,
                closed: slots.closed,
                dropped: false,
                cutoffs: 0,
            }),
            ready: Notify::new(),
            room: Notify::new(),
        });
        slots.live.push(slot.clone());
        slot
    }

    /// A subscription was dropped: its queue goes.
    fn remove(&self, slot: &Arc<Slot<K>>) {
        self.lock().live.retain(|s| !Arc::ptr_eq(s, slot));
    }

    /// Queues for a cut-off subscriber the difference between what it last saw and the store.
    fn catch_up(&self, store: &Store<K>, slot: &Slot<K>, from: WatcherId) {
        let _slots = self.lock();
        let state = store.read();
        let mut slot_state = slot.lock();
        let Some(missed) = slot_state.missed.take() else {
            return;
        };
        for ((namespace, name), before) in missed.before {
            let now = state.get(&namespace, &name);
            let kind = match (before, now.as_ref()) {
                (None, Some(now)) => EventKind::Added(now.clone()),
                (Some(old), Some(now)) if old.resource_version() != now.resource_version() => {
                    EventKind::Modified {
                        old,
                        new: now.clone(),
                    }
                }
                (Some(last), None) => EventKind::Deleted {
                    last,
                    final_state_unknown: true,
                },
                _ => continue,
            };
            let resource_version = match &kind {
                EventKind::Deleted { .. } => state.resource_version.clone(),
                _ => now.and_then(|o| o.resource_version().map(str::to_string)),
            };
            slot_state.queue.push_back(Event {
                from,
                resource_version,
                kind,
            });
        }
        if missed.synced {
            slot_state.queue.push_back(Event {
                from,
                resource_version: state.resource_version.clone(),
                kind: EventKind::Synced,
            });
        }
    }

    /// Waits until every backpressure subscriber has room for one more event; `false` if `stop`
    /// fired first.
    pub(crate) async fn wait_for_room(&self, stop: &CancellationToken) -> bool {
        let waiting: Vec<Arc<Slot<K>>> = self
            .lock()
            .live
            .iter()
            .filter(|s| s.overflow == Overflow::Backpressure)
            .cloned()
            .collect();
        for slot in waiting {
            loop {
                // Registered before the check: a pop between the check and the wait still wakes.
                let room = slot.room.notified();
                if slot.has_room() {
                    break;
                }
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => return false,
                    _ = room => {}
                }
            }
        }
        true
    }

    /// The informer ended: every subscriber gets what is queued, then the end.
    pub(crate) fn close(&self) {
        let mut slots = self.lock();
        slots.closed = true;
        for slot in slots.live.iter() {
            slot.lock().closed = true;
            slot.ready.notify_one();
        }
    }
}

/// One subscriber's events from an informer: the store's snapshot (`Added` for each object, then
/// `Synced` once the store is synced), then every change after it, no gap and no repeat.
///
/// Dropping it unsubscribes. It keeps its informer running (see [`Informer`](super::Informer)).
pub struct Subscription<K: Object + Send + Sync + 'static> {
    core: super::UserGuard<K>,
    slot: Arc<Slot<K>>,
}

impl<K: Object + Send + Sync + 'static> std::fmt::Debug for Subscription<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("capacity", &self.slot.capacity)
            .field("overflow", &self.slot.overflow)
            .finish_non_exhaustive()
    }
}

impl<K: Object + Send + Sync + 'static> Subscription<K> {
    pub(crate) fn new(core: super::UserGuard<K>, slot: Arc<Slot<K>>) -> Self {
        Subscription { core, slot }
    }

    fn core(&self) -> &Core<K> {
        self.core.core()
    }

    /// The next event; `None` once the informer has ended and everything queued was received.
    pub async fn recv(&mut self) -> Option<Event<K>> {
        loop {
            match self.try_next() {
                Next::Event(event) => return Some(event),
                Next::End => return None,
                Next::Wait => self.slot.ready.notified().await,
            }
        }
    }

    /// The next event if one is queued now, without waiting.
    pub fn try_recv(&mut self) -> Option<Event<K>> {
        match self.try_next() {
            Next::Event(event) => Some(event),
            Next::End | Next::Wait => None,
        }
    }

    fn try_next(&mut self) -> Next<K> {
        for _ in 0..2 {
            let mut state = self.slot.lock();
            if let Some(event) = state.queue.pop_front() {
                drop(state);
                self.slot.room.notify_one();
                return Next::Event(event);
            }
            if state.missed.is_none() {
                return if state.closed { Next::End } else { Next::Wait };
            }
            drop(state);
            let core = self.core();
            core.hub.catch_up(&core.store, &self.slot, core.watcher_id());
        }
        Next::Wait
    }

    /// How many events are queued for this subscriber now.
    pub fn queued(&self) -> usize {
        self.slot.lock().queue.len()
    }

    /// How many times this subscriber was cut off for falling behind and re-synchronised.
    pub fn resyncs(&self) -> u64 {
        self.slot.lock().cutoffs
    }

    /// The informer's store.
    pub fn store(&self) -> Store<K> {
        self.core().store.clone()
    }
}

enum Next<K> {
    Event(Event<K>),
    End,
    Wait,
}

impl<K: Object + Send + Sync + 'static> Drop for Subscription<K> {
    fn drop(&mut self) {
        {
            let mut state = self.slot.lock();
            state.dropped = true;
            state.queue.clear();
            state.missed = None;
        }
        // A task waiting for room in this queue goes on.
        self.slot.room.notify_one();
        self.core.core().hub.remove(&self.slot);
    }
}
