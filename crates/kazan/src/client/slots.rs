//! Stream slots: how many requests one HTTP/2 connection (a lane) may carry at once, and which
//! lane a new request takes.
//!
//! Pure bookkeeping, no I/O: [`choose`] decides from each lane's open streams and [`Limit`], and a
//! [`Slot`] counts one open stream until it is dropped. The lane set in
//! [`lanes`](super::lanes) calls [`choose`] and takes the slot under one lock, so two requests
//! never take the last slot of a lane; releases only ever make room, so they need no lock.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tokio::sync::Notify;

/// Streams a lane is assumed to allow before its limit is known: the minimum RFC 9113 (§6.5.2)
/// recommends servers to advertise, hyper's initial value, and what Go's transport assumes.
pub(crate) const ASSUMED_STREAMS: usize = 100;

/// What is known of a lane's limit on concurrent streams (SETTINGS_MAX_CONCURRENT_STREAMS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    /// No response has come back on the lane yet, so the server's SETTINGS may not have been
    /// applied: [`ASSUMED_STREAMS`] are assumed, but only one request (the probe) is sent.
    Unknown,
    /// The server's limit; `usize::MAX` when it advertised none.
    Known(usize),
}

impl Limit {
    /// How many streams the lane is counted for when deciding whether another connection is
    /// needed.
    pub(crate) fn assumed(self) -> usize {
        match self {
            Limit::Unknown => ASSUMED_STREAMS,
            Limit::Known(n) => n,
        }
    }

    /// How many streams may be open on the lane right now. Until the limit is known, one: a
    /// burst sent before the server's SETTINGS are applied could exceed its real limit, and the
    /// excess would be refused (REFUSED_STREAM) or would queue inside h2 behind streams that
    /// may stay open for minutes, holding up every later request on that connection.
    pub(crate) fn sendable(self) -> usize {
        match self {
            Limit::Unknown => 1,
            Limit::Known(n) => n,
        }
    }
}

/// One lane as [`choose`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Load {
    /// Streams open on the lane (slots taken and not yet released).
    pub(crate) open: usize,
    /// Its limit.
    pub(crate) limit: Limit,
}

/// What a new request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Choice {
    /// Take a slot on the lane at this index.
    Take(usize),
    /// Wait: a lane whose limit is not known yet is assumed to have room, and its probe will
    /// tell how much. Opening another connection now would likely be a waste.
    Wait,
    /// Every lane is full: open another connection.
    Open,
}

/// Chooses the least-loaded lane with a free slot (the first one on a tie, so older lanes fill
/// first), else waits for a lane still probing its limit, else asks for a new connection.
pub(crate) fn choose(lanes: impl IntoIterator<Item = Load>) -> Choice {
    let mut best: Option<(usize, usize)> = None;
    let mut probing = false;
    for (index, load) in lanes.into_iter().enumerate() {
        if load.open < load.limit.sendable() && best.is_none_or(|(_, open)| load.open < open) {
            best = Some((index, load.open));
        }
        probing |= load.open < load.limit.assumed();
    }
    match best {
        Some((index, _)) => Choice::Take(index),
        None if probing => Choice::Wait,
        None => Choice::Open,
    }
}

/// The open streams of one lane.
#[derive(Debug)]
pub(crate) struct Slots {
    open: AtomicUsize,
    /// Notified whenever a slot is released (shared by every lane of a client).
    freed: Arc<Notify>,
}

impl Slots {
    /// No stream open; `freed` is told of every release.
    pub(crate) fn new(freed: Arc<Notify>) -> Arc<Slots> {
        Arc::new(Slots {
            open: AtomicUsize::new(0),
            freed,
        })
    }

    /// Streams open now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Counts one more open stream until the returned slot is dropped. The caller has checked
    /// (under the lane set's lock) that the lane has room.
    pub(crate) fn take(self: &Arc<Self>) -> Slot {
        self.open.fetch_add(1, Ordering::AcqRel);
        Slot { slots: self.clone() }
    }
}

/// One open stream on a lane, counted until dropped: the response body holds it until the body
/// ends, fails or is dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.open.fetch_sub(1, Ordering::AcqRel);
        self.slots.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(open: usize, limit: usize) -> Load {
        Load {
            open,
            limit: Limit::Known(limit),
        }
    }

    fn unknown(open: usize) -> Load {
        Load {
            open,
            limit: Limit::Unknown,
        }
    }

    #[test]
    fn a_client_without_lanes_opens_one() {
        assert_eq!(choose([]), Choice::Open);
    }

    #[test]
    fn the_least_loaded_lane_with_room_is_taken() {
        assert_eq!(
            choose([known(7, 10), known(3, 10), known(5, 10)]),
            Choice::Take(1)
        );
        // Full lanes are skipped even when they have fewer streams than others' limits.
        assert_eq!(
            choose([known(10, 10), known(4, 4), known(9, 100)]),
            Choice::Take(2)
        );
    }

    #[test]
    fn on_a_tie_the_older_lane_is_taken() {
        assert_eq!(choose([known(2, 10), known(2, 10)]), Choice::Take(0));
    }

    #[test]
    fn when_every_lane_is_full_another_connection_is_opened() {
        assert_eq!(choose([known(10, 10), known(10, 10)]), Choice::Open);
        // A server may lower its limit below what is open: still full.
        assert_eq!(choose([known(12, 10)]), Choice::Open);
        // A server advertising no stream at all takes nothing.
        assert_eq!(choose([known(0, 0)]), Choice::Open);
    }

    #[test]
    fn a_lane_advertising_no_limit_is_never_full() {
        assert_eq!(choose([known(1_000_000, usize::MAX)]), Choice::Take(0));
    }

    #[test]
    fn before_its_first_response_a_lane_carries_one_probe_and_counts_as_100_streams() {
        assert_eq!(Limit::Unknown.assumed(), 100);
        assert_eq!(Limit::Unknown.sendable(), 1);
        // The probe slot is free: take it.
        assert_eq!(choose([unknown(0)]), Choice::Take(0));
        // The probe is out: wait for it rather than open a connection the lane may not need.
        assert_eq!(choose([unknown(1)]), Choice::Wait);
        assert_eq!(choose([known(10, 10), unknown(1)]), Choice::Wait);
        // A lane with room is taken rather than waiting.
        assert_eq!(choose([unknown(1), known(3, 10)]), Choice::Take(1));
    }

    #[test]
    fn once_known_usize_max_means_unlimited() {
        let limit = Limit::Known(usize::MAX);
        assert_eq!(limit.sendable(), usize::MAX);
        assert_eq!(choose([known(150, usize::MAX)]), Choice::Take(0));
    }

    #[test]
    fn slots_count_until_dropped_and_report_each_release() {
        let freed = Arc::new(Notify::new());
        let slots = Slots::new(freed.clone());
        let first = slots.take();
        let second = slots.take();
        assert_eq!(slots.open(), 2);

        let notified = freed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        drop(first);
        assert_eq!(slots.open(), 1);
        assert!(
            futures_util::FutureExt::now_or_never(notified).is_some(),
            "a release wakes waiters"
        );
        drop(second);
        assert_eq!(slots.open(), 0);
    }
}
