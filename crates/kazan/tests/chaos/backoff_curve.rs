//! The work queue's retry backoff, checked from outside while the operator runs under chaos.
//!
//! A few "stubborn" Greetings fail their reconcile on a fixed plan (nothing else writes them, and
//! their failing reconciles write nothing, so only the backoff and the test's own touches wake
//! them). The test records each attempt (when it started and ended, the resourceVersion it was
//! handed, whether it failed) and, through a recording [`RateLimiter`], the failure count the
//! queue computed for each failure. [`check`] then replays the queue's rule
//! (`kazan::runtime::queue`, after client-go's `ItemExponentialFailureRateLimiter` in
//! `k8s.io/client-go/util/workqueue/default_rate_limiters.go`, without the flaw of
//! kubernetes/kubernetes#132805):
//! - a retry not woken by a change comes no earlier than `base * 2^(failures - 1)` after the
//!   failure;
//! - a failure counts only when its attempt waited for the backoff: an attempt woken early by a
//!   change that fails again keeps the count (client-go doubles it);
//! - a success resets the count.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use kazan::runtime::{ExponentialBackoff, ObjectKey, RateLimiter};
use tokio::time::Instant;

/// The names of the stubborn Greetings start with this.
pub const PREFIX: &str = "stubborn-";

/// How early before its backoff's end an attempt with a new resourceVersion must come to be
/// certainly early: between the test's clock readings and the queue's there are a few scheduling
/// steps, so an attempt closer to the end than this may have come either way.
const SLACK: Duration = Duration::from_millis(50);

/// What a stubborn key's reconcile does on one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Fail; if `touch`, touch the object shortly after, waking the key before its backoff ends.
    Fail { touch: bool },
    /// Succeed without writing anything, then touch the object to start the second round.
    SucceedThenTouch,
    /// The plan is over: the operator's real reconcile.
    Real,
}

/// Round 1: six failures (backoff 5 ms doubling), then a success. Round 2 (after the touch): ten
/// failures of which the 7th, 8th and 9th come early (touched after the 6th, 7th and 8th), then
/// the real reconcile.
pub fn plan(attempt: usize) -> Plan {
    match attempt {
        0..=5 => Plan::Fail { touch: false },
        6 => Plan::SucceedThenTouch,
        7..=16 => Plan::Fail {
            touch: (12..=14).contains(&attempt),
        },
        _ => Plan::Real,
    }
}

/// One reconcile of a stubborn key, as the test saw it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub start: Instant,
    pub end: Instant,
    pub resource_version: String,
    pub failed: bool,
}

/// The failure counts the queue passed to the rate limiter, per stubborn key, in order.
pub type Counted = Arc<Mutex<HashMap<String, Vec<u32>>>>;

/// The configured backoff, recording the failure count the queue computed for stubborn keys.
pub struct Recording {
    pub backoff: ExponentialBackoff,
    pub counted: Counted,
}

impl RateLimiter for Recording {
    fn when(&mut self, key: &ObjectKey, failures: u32, _now: Instant) -> Duration {
        if key.name.starts_with(PREFIX) {
            self.counted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key.name.clone())
                .or_default()
                .push(failures);
        }
        self.backoff.delay(failures)
    }
}

/// How the attempts after a failure came.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CurveReport {
    /// Woken by the backoff (same resourceVersion as the failed attempt).
    pub waited: usize,
    /// Woken by a change, certainly before the backoff ended.
    pub early: usize,
    /// Woken by a change close to the backoff's end: either way is right.
    pub either: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Came {
    /// The first attempt, or the first after a success: the count starts again.
    Fresh,
    Waited,
    Early,
    Either,
}

/// Replays the queue's rule over one key's attempts and the counts the queue computed for its
/// failures; says where they part.
pub fn check(
    attempts: &[Attempt],
    counted: &[u32],
    backoff: ExponentialBackoff,
) -> Result<CurveReport, String> {
    let mut report = CurveReport::default();
    let mut counts = counted.iter().copied();
    let mut failures = 0u32;
    let mut previous: Option<(&Attempt, Instant)> = None;
    for (i, attempt) in attempts.iter().enumerate() {
        let came = match previous {
            Some((failed, due)) if attempt.resource_version == failed.resource_version => {
                // Nothing changed: only the backoff can have woken it. The test's `due` is never
                // later than the queue's, nor its `start` earlier, so this cannot fail spuriously.
                if attempt.start < due {
                    return Err(format!(
                        "attempt {i} came {:?} before the end of its backoff (after {failures} \
                         failures: {:?}) with no change to wake it",
                        due - attempt.start,
                        backoff.delay(failures)
                    ));
                }
                report.waited += 1;
                Came::Waited
            }
            Some((_, due)) if attempt.start + SLACK < due => {
                report.early += 1;
                Came::Early
            }
            Some(_) => {
                report.either += 1;
                Came::Either
            }
            None => Came::Fresh,
        };
        if !attempt.failed {
            failures = 0;
            previous = None;
            continue;
        }
        let Some(count) = counts.next() else {
            return Err(format!(
                "attempt {i} failed, but the queue asked the rate limiter for no delay"
            ));
        };
        let wanted: &[u32] = match came {
            Came::Fresh => &[1],
            Came::Waited => &[failures + 1],
            // The queue counts a failure of an early attempt only if it is the first.
            Came::Early => &[failures.max(1)],
            Came::Either => &[failures, failures + 1],
        };
        if !wanted.contains(&count) {
            return Err(format!(
                "attempt {i} ({came:?}) failed: the queue counted {count} failures in a row, the \
                 curve wants {wanted:?} (attempts: {:?}, counts: {counted:?})",
                attempts.iter().map(|a| a.failed).collect::<Vec<_>>()
            ));
        }
        failures = count;
        previous = Some((attempt, attempt.end + backoff.delay(count)));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Attempts at the given start offsets (ms), each lasting 1 ms, with the given versions and
    /// outcomes.
    fn attempts(t0: Instant, spec: &[(u64, &str, bool)]) -> Vec<Attempt> {
        spec.iter()
            .map(|&(at, rv, failed)| Attempt {
                start: t0 + MS * at as u32,
                end: t0 + MS * (at as u32 + 1),
                resource_version: rv.into(),
                failed,
            })
            .collect()
    }

    fn backoff() -> ExponentialBackoff {
        ExponentialBackoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(100),
        }
    }

    /// The check's error, or an error if it accepted.
    fn rejected(result: Result<CurveReport, String>) -> Result<String, String> {
        match result {
            Ok(report) => Err(format!("accepted: {report:?}")),
            Err(e) => Ok(e),
        }
    }

    #[test]
    fn the_check_accepts_a_queue_that_keeps_the_count_on_early_failures() -> Result<(), String> {
        let t0 = Instant::now();
        // Failures at 0 (count 1, due at 101) and 101 (count 2, due at 302); a change wakes it at
        // 150 (early: the count stays 2, due at 351); then it waits (count 3) and succeeds.
        let a = attempts(
            t0,
            &[
                (0, "1", true),
                (101, "1", true),
                (150, "2", true),
                (351, "2", true),
                (800, "2", false),
            ],
        );
        let report = check(&a, &[1, 2, 2, 3], backoff())?;
        assert_eq!(
            report,
            CurveReport {
                waited: 3,
                early: 1,
                either: 0
            }
        );
        Ok(())
    }

    #[test]
    fn the_check_rejects_client_go_doubling_the_delay_on_an_early_failure() -> Result<(), String> {
        let t0 = Instant::now();
        let a = attempts(t0, &[(0, "1", true), (101, "1", true), (150, "2", true)]);
        let err = rejected(check(&a, &[1, 2, 3], backoff()))?;
        assert!(err.contains("counted 3"), "{err}");
        Ok(())
    }

    #[test]
    fn the_check_rejects_a_retry_before_its_backoff_ended() -> Result<(), String> {
        let t0 = Instant::now();
        let a = attempts(t0, &[(0, "1", true), (101, "1", true), (150, "1", true)]);
        let err = rejected(check(&a, &[1, 2, 3], backoff()))?;
        assert!(err.contains("before the end of its backoff"), "{err}");
        Ok(())
    }

    #[test]
    fn the_check_rejects_a_count_that_survives_a_success() -> Result<(), String> {
        let t0 = Instant::now();
        let a = attempts(t0, &[(0, "1", true), (101, "1", false), (300, "2", true)]);
        let err = rejected(check(&a, &[1, 2], backoff()))?;
        assert!(err.contains("counted 2"), "{err}");
        Ok(())
    }
}
