//! How long to wait before trying again: client-go's reflector backoff (800 ms doubling to 30 s,
//! jittered, reset after a healthy period), so a failing server is not hammered and a fleet of
//! watchers does not reconnect in step.

use std::time::Duration;

use tokio::time::Instant;

/// Backoff settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
    /// After this long without a failure, the next delay starts from `initial` again.
    pub reset_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(800),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
        }
    }
}

/// The state of one watcher's backoff.
#[derive(Debug)]
pub(crate) struct Backoff {
    config: BackoffConfig,
    /// Failures since the last reset.
    attempt: u32,
    /// When the watcher last became healthy (a watch opened), if it is.
    healthy_since: Option<Instant>,
}

impl Backoff {
    pub(crate) fn new(config: BackoffConfig) -> Self {
        Backoff {
            config,
            attempt: 0,
            healthy_since: None,
        }
    }

    /// Marks the start of a healthy period (a watch opened and is streaming).
    pub(crate) fn healthy(&mut self, now: Instant) {
        if self.healthy_since.is_none() {
            self.healthy_since = Some(now);
        }
    }

    /// The delay before the next attempt after a failure at `now`; `at_least` is a server's
    /// `Retry-After`, which is honoured (up to five minutes).
    pub(crate) fn next_delay(&mut self, now: Instant, at_least: Option<Duration>) -> Duration {
        if let Some(since) = self.healthy_since.take()
            && now.saturating_duration_since(since) >= self.config.reset_after
        {
            self.attempt = 0;
        }
        let base = self
            .config
            .initial
            .checked_mul(1u32.checked_shl(self.attempt.min(16)).unwrap_or(u32::MAX))
            .unwrap_or(self.config.max)
            .min(self.config.max);
        self.attempt = self.attempt.saturating_add(1);
        // ±20 % jitter, never above the cap.
        let jitter = 0.8 + 0.4 * fastrand::f64();
        let delay = base.mul_f64(jitter).min(self.config.max);
        match at_least {
            Some(retry_after) => delay.max(retry_after.min(Duration::from_secs(300))),
            None => delay,
        }
    }

    /// Failures since the last reset.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_800ms_to_a_30s_cap_with_jitter() {
        let mut b = Backoff::new(BackoffConfig::default());
        let now = Instant::now();
        let mut previous_base = Duration::ZERO;
        for attempt in 0..12u32 {
            let d = b.next_delay(now, None);
            let base = Duration::from_millis(800)
                .saturating_mul(1 << attempt)
                .min(Duration::from_secs(30));
            assert!(
                d >= base.mul_f64(0.8) && d <= base.mul_f64(1.2).min(Duration::from_secs(30)),
                "{attempt}: {d:?}"
            );
            assert!(base >= previous_base);
            previous_base = base;
        }
        assert_eq!(b.attempts(), 12);
    }

    #[test]
    fn retry_after_is_honoured() {
        let mut b = Backoff::new(BackoffConfig::default());
        let d = b.next_delay(Instant::now(), Some(Duration::from_secs(7)));
        assert!(d >= Duration::from_secs(7));
    }

    #[test]
    fn a_healthy_minute_resets_the_backoff() {
        let mut b = Backoff::new(BackoffConfig::default());
        let t0 = Instant::now();
        for _ in 0..5 {
            b.next_delay(t0, None);
        }
        // Healthy for only a few seconds: keeps growing.
        b.healthy(t0);
        let d = b.next_delay(t0 + Duration::from_secs(5), None);
        assert!(
            d >= Duration::from_millis(800 * 32)
                .mul_f64(0.8)
                .min(Duration::from_secs(24))
        );
        // Healthy for a minute: starts over.
        b.healthy(t0 + Duration::from_secs(10));
        let d = b.next_delay(t0 + Duration::from_secs(71), None);
        assert!(d <= Duration::from_millis(960), "{d:?}");
    }
}
