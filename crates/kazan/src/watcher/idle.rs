//! The watch stream's stall detector: one timer per open watch, moved only when it fires.
//!
//! A new timer for every read registered it with the runtime's timer wheel and, when no other
//! timer was due sooner, woke the I/O driver to recompute its wait (an `eventfd` write and an
//! `epoll` wake-up per chunk read). Here a read only notes the time; when the timer fires, it is
//! moved to the last read plus the limit, and only a stream quiet for the whole limit is stalled.

use std::{pin::Pin, time::Duration};

use tokio::time::{Instant, Sleep};

/// Fires once nothing has been read for `limit`.
#[derive(Debug)]
pub(crate) struct IdleTimer {
    sleep: Pin<Box<Sleep>>,
    last_read: Instant,
    limit: Duration,
}

impl IdleTimer {
    /// A timer for a stream opened at `now`.
    pub(crate) fn new(now: Instant, limit: Duration) -> Self {
        IdleTimer {
            sleep: Box::pin(tokio::time::sleep_until(now + limit)),
            last_read: now,
            limit,
        }
    }

    /// Something was read: the stream is alive until at least `limit` from now.
    pub(crate) fn read(&mut self) {
        self.last_read = Instant::now();
    }

    /// Resolves once the stream has been quiet for the whole limit.
    pub(crate) async fn stalled(&mut self) {
        loop {
            self.sleep.as_mut().await;
            let deadline = self.last_read + self.limit;
            if deadline <= Instant::now() {
                return;
            }
            self.sleep.as_mut().reset(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn a_quiet_stream_stalls_after_the_limit() {
        let opened = Instant::now();
        let mut idle = IdleTimer::new(opened, LIMIT);
        idle.stalled().await;
        assert_eq!(Instant::now() - opened, LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn each_read_moves_the_stall_to_a_limit_after_it() {
        let opened = Instant::now();
        let mut idle = IdleTimer::new(opened, LIMIT);
        // Reads at 4 s and 13 s: the stream stalls 10 s after the last one, at 23 s.
        tokio::time::sleep(Duration::from_secs(4)).await;
        idle.read();
        tokio::time::sleep(Duration::from_secs(9)).await;
        idle.read();
        idle.stalled().await;
        assert_eq!(Instant::now() - opened, Duration::from_secs(23));
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_while_waiting_keeps_the_stream_alive() {
        let opened = Instant::now();
        let mut idle = IdleTimer::new(opened, LIMIT);
        // The wait is cut short at 8 s (as a read does in the watcher's select), then resumed.
        let cut = tokio::time::timeout(Duration::from_secs(8), idle.stalled()).await;
        assert!(cut.is_err(), "stalled before the limit");
        idle.read();
        idle.stalled().await;
        assert_eq!(Instant::now() - opened, Duration::from_secs(18));
    }
}
