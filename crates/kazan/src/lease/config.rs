//! The timings of an election and the rules client-go checks them against.

use std::time::Duration;

/// client-go's `leaderelection.JitterFactor`: a candidate waits between `retryPeriod` and
/// `JitterFactor + 1` times it between tries to acquire, and `renewDeadline` must exceed
/// `JitterFactor × retryPeriod` so that a holder gets at least one retry before its deadline.
pub const JITTER_FACTOR: f64 = 1.2;

/// The timings of an election, as client-go's `LeaderElectionConfig` names them, and what happens
/// when the election is stopped.
///
/// The defaults are the core components' (kube-controller-manager, kube-scheduler): 15 s, 10 s,
/// 2 s, no release on stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectionConfig {
    /// How long a Lease stays held after its last renewal, as seen by other candidates: they take
    /// it over once they have seen no change to the Lease for this long. Written to the Lease as
    /// `leaseDurationSeconds`, in whole seconds (the fraction is dropped, as client-go drops it).
    pub lease_duration: Duration,
    /// How long the holder keeps acting without a successful renewal. Counted from the moment the
    /// last successful renewal was *sent*; when it passes, the holder is told to stop acting
    /// (fencing), which is before any other candidate may take the Lease over (see the module
    /// documentation for the arithmetic).
    pub renew_deadline: Duration,
    /// The wait between tries: between renewals, between retries of a failed renewal, and (with
    /// up to [`JITTER_FACTOR`] × this added at random) between tries to acquire.
    pub retry_period: Duration,
    /// Whether stopping the election while holding the Lease gives it up at once (client-go's
    /// `ReleaseOnCancel`): the Lease is written with no holder and a one-second duration, so a
    /// contender can take it without waiting for it to expire. The holder is told to stop acting
    /// before the release is sent.
    pub release_on_cancel: bool,
    /// Whether a candidate that lost the Lease (a renewal deadline passed) becomes a candidate
    /// again. client-go's `Run` returns instead (`false`, the default); a long-running member
    /// of a group that should stay available sets it.
    pub rejoin_after_loss: bool,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        ElectionConfig {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            release_on_cancel: false,
            rejoin_after_loss: false,
        }
    }
}

/// Why an election cannot start: the checks of client-go's `NewLeaderElector`, in its order, then
/// kazan's own (an empty Lease name or namespace, and the whole-seconds rule that fencing needs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ElectionConfigError {
    /// `leaseDuration` must exceed `renewDeadline`: a holder must give up before others may take
    /// over.
    #[error("leaseDuration ({lease_duration:?}) must be greater than renewDeadline ({renew_deadline:?})")]
    LeaseDurationNotAboveRenewDeadline {
        /// The lease duration given.
        lease_duration: Duration,
        /// The renew deadline given.
        renew_deadline: Duration,
    },
    /// `renewDeadline` must exceed `JitterFactor × retryPeriod`.
    #[error(
        "renewDeadline ({renew_deadline:?}) must be greater than retryPeriod*JitterFactor ({retry_period:?} × 1.2 = {jittered:?})"
    )]
    RenewDeadlineNotAboveJitteredRetry {
        /// The renew deadline given.
        renew_deadline: Duration,
        /// The retry period given.
        retry_period: Duration,
        /// `retryPeriod × 1.2`.
        jittered: Duration,
    },
    /// A duration is zero.
    #[error("{which} must be greater than zero")]
    Zero {
        /// `leaseDuration`, `renewDeadline` or `retryPeriod`.
        which: &'static str,
    },
    /// The candidate's identity (`holderIdentity`) is empty: an empty holder means "nobody".
    #[error("the lock identity is empty: every candidate needs a distinct, non-empty identity")]
    EmptyIdentity,
    /// The Lease name or namespace is empty.
    #[error("the Lease {which} is empty")]
    EmptyLease {
        /// `name` or `namespace`.
        which: &'static str,
    },
    /// `leaseDurationSeconds` is an integer: the duration other candidates wait is the lease
    /// duration rounded down to whole seconds, and that must still exceed the renew deadline for
    /// the holder to stop acting before anyone may take over. client-go does not check this (a
    /// 1.5 s lease is written as 1 s, a 0.9 s lease as 0 s: taken over at once).
    #[error(
        "leaseDuration ({lease_duration:?}) is written to the Lease in whole seconds, as {written}s, which must be greater than renewDeadline ({renew_deadline:?})"
    )]
    WholeSecondsNotAboveRenewDeadline {
        /// The lease duration given.
        lease_duration: Duration,
        /// What is written as `leaseDurationSeconds`.
        written: u64,
        /// The renew deadline given.
        renew_deadline: Duration,
    },
}

/// Why an election cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ElectionError {
    /// The timings or the lock are invalid.
    #[error(transparent)]
    Config(#[from] ElectionConfigError),
    /// The elector's own client (its own connections) could not be built from the configuration.
    #[error("cannot build the elector's client: {0}")]
    Client(#[source] crate::Error),
}

impl ElectionConfig {
    /// Checks the timings as client-go's `NewLeaderElector` does, in the same order, then that the
    /// whole seconds written to the Lease still exceed the renew deadline.
    pub fn validate(&self) -> Result<(), ElectionConfigError> {
        let ElectionConfig {
            lease_duration,
            renew_deadline,
            retry_period,
            ..
        } = *self;
        if lease_duration <= renew_deadline {
            return Err(ElectionConfigError::LeaseDurationNotAboveRenewDeadline {
                lease_duration,
                renew_deadline,
            });
        }
        let jittered = jittered_retry(retry_period);
        if renew_deadline <= jittered {
            return Err(ElectionConfigError::RenewDeadlineNotAboveJitteredRetry {
                renew_deadline,
                retry_period,
                jittered,
            });
        }
        for (which, value) in [
            ("leaseDuration", lease_duration),
            ("renewDeadline", renew_deadline),
            ("retryPeriod", retry_period),
        ] {
            if value.is_zero() {
                return Err(ElectionConfigError::Zero { which });
            }
        }
        let written = self.lease_duration_seconds_u64();
        if Duration::from_secs(written) <= renew_deadline {
            return Err(ElectionConfigError::WholeSecondsNotAboveRenewDeadline {
                lease_duration,
                written,
                renew_deadline,
            });
        }
        Ok(())
    }

    /// `leaseDurationSeconds` as client-go writes it: `int(LeaseDuration / time.Second)`.
    pub(crate) fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration_seconds_u64()).unwrap_or(i32::MAX)
    }

    fn lease_duration_seconds_u64(&self) -> u64 {
        self.lease_duration.as_secs()
    }
}

/// `time.Duration(JitterFactor * float64(retryPeriod))`, truncated to nanoseconds as in Go.
fn jittered_retry(retry_period: Duration) -> Duration {
    let nanos = JITTER_FACTOR * retry_period.as_nanos() as f64;
    // Saturating float-to-int cast, as Go's conversion is for any sane duration.
    Duration::from_nanos(nanos as u64)
}

/// A wait between tries to acquire: `retryPeriod + rand × JitterFactor × retryPeriod`, as
/// client-go's `wait.Jitter`.
pub(crate) fn jittered(retry_period: Duration) -> Duration {
    retry_period + retry_period.mul_f64(fastrand::f64() * JITTER_FACTOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_core_components_and_valid() {
        let c = ElectionConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.lease_duration_seconds(), 15);
    }

    #[test]
    fn renew_deadline_must_exceed_jittered_retry_period_strictly() {
        let c = ElectionConfig {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_millis(2400),
            retry_period: Duration::from_secs(2),
            ..ElectionConfig::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ElectionConfigError::RenewDeadlineNotAboveJitteredRetry { jittered, .. })
                if jittered == Duration::from_millis(2400)
        ));
    }

    #[test]
    fn jittered_waits_stay_within_client_gos_bounds() {
        let rp = Duration::from_millis(100);
        for _ in 0..1000 {
            let wait = jittered(rp);
            assert!(wait >= rp && wait < rp.mul_f64(1.0 + JITTER_FACTOR));
        }
    }
}
