//! How long a failed key waits before its retry: the per-key exponential backoff and the overall
//! token bucket of client-go's `DefaultControllerRateLimiter`
//! (`k8s.io/client-go/util/workqueue/default_rate_limiters.go`), behind one trait so that either
//! can be tuned or replaced.
//!
//! Unlike client-go's limiters, these hold no per-key failure counts: the [`WorkQueue`] counts
//! failures itself, because only the queue knows whether a failed attempt had actually waited for
//! its backoff (see the [queue's documentation](super::queue)).
//!
//! [`WorkQueue`]: super::queue::WorkQueue

use std::time::Duration;

use tokio::time::Instant;

use super::key::ObjectKey;

/// Decides how long a key waits before its next retry after a failure.
pub trait RateLimiter: Send + 'static {
    /// The delay before retrying `key`, which has failed `failures` times in a row (counted as
    /// the queue counts them; at least 1). Called once per failure; may keep overall state (a
    /// token bucket takes a token).
    fn when(&mut self, key: &ObjectKey, failures: u32, now: Instant) -> Duration;
}

/// Per-key exponential backoff: `base * 2^(failures - 1)`, capped at `max` (client-go's
/// `ItemExponentialFailureRateLimiter`; its defaults are 5 ms and 1,000 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExponentialBackoff {
    /// The delay after the first failure.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for ExponentialBackoff {
    fn default() -> Self {
        ExponentialBackoff {
            base: Duration::from_millis(5),
            max: Duration::from_secs(1000),
        }
    }
}

impl ExponentialBackoff {
    /// The delay after `failures` failures in a row.
    pub fn delay(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1);
        if exponent >= 32 {
            return self.max;
        }
        self.base.saturating_mul(1u32 << exponent.min(31)).min(self.max)
    }
}

impl RateLimiter for ExponentialBackoff {
    fn when(&mut self, _key: &ObjectKey, failures: u32, _now: Instant) -> Duration {
        self.delay(failures)
    }
}

/// An overall token bucket over all keys' retries (client-go's `BucketRateLimiter`, a
/// `rate.Limiter` of 10 per second with a burst of 100 by default): each retry takes a token;
/// when none is left the retry waits until one has accrued.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl Default for TokenBucket {
    fn default() -> Self {
        TokenBucket::new(10.0, 100)
    }
}

impl TokenBucket {
    /// A bucket that refills `per_second` tokens a second up to `burst`, and starts full.
    pub fn new(per_second: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            per_second: if per_second > 0.0 {
                per_second
            } else {
                f64::MIN_POSITIVE
            },
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// Takes one token and says how long the caller must wait for it (zero if one was there);
    /// like `rate.Limiter.Reserve`, the tokens may go negative: later callers wait longer.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        }
        self.last = Some(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.per_second)
        }
    }
}

impl RateLimiter for TokenBucket {
    fn when(&mut self, _key: &ObjectKey, _failures: u32, now: Instant) -> Duration {
        self.reserve(now)
    }
}

/// The longest delay of several limiters (client-go's `MaxOfRateLimiter`); every limiter is asked
/// each time, so the token bucket takes its token even when the backoff is longer.
pub struct MaxOf(pub Vec<Box<dyn RateLimiter>>);

impl std::fmt::Debug for MaxOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MaxOf({} limiters)", self.0.len())
    }
}

impl RateLimiter for MaxOf {
    fn when(&mut self, key: &ObjectKey, failures: u32, now: Instant) -> Duration {
        self.0
            .iter_mut()
            .map(|l| l.when(key, failures, now))
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

/// client-go's `DefaultControllerRateLimiter`: the larger of the per-key backoff (5 ms doubling
/// to 1,000 s) and an overall bucket of 10 retries a second, burst 100.
pub fn default_rate_limiter() -> MaxOf {
    MaxOf(vec![
        Box::new(ExponentialBackoff::default()),
        Box::new(TokenBucket::default()),
    ])
}
