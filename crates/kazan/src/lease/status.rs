//! What a Lease says about its holder, for showing (`kazan lease`) rather than deciding: an
//! elector judges expiry by its own clock since it saw a change, never by these times.

use k8s_openapi::{api::coordination::v1::Lease, jiff::Timestamp};

use super::record::Record;

/// The election record of a Lease, as written by client-go's or kazan's elector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseStatus {
    /// `holderIdentity`; `None` when it names nobody (released, or never held).
    pub holder: Option<String>,
    /// `leaseDurationSeconds`.
    pub lease_duration_seconds: i32,
    /// `acquireTime`: when the current holder took it.
    pub acquire_time: Option<Timestamp>,
    /// `renewTime`: the holder's last renewal, by the holder's clock.
    pub renew_time: Option<Timestamp>,
    /// `leaseTransitions`: how many times it changed hands.
    pub transitions: i32,
}

impl LeaseStatus {
    /// Reads a Lease's spec (absent fields as client-go reads them).
    pub fn of(lease: &Lease) -> LeaseStatus {
        let record = Record::from_spec(lease.spec.as_ref());
        LeaseStatus {
            holder: Some(record.holder).filter(|h| !h.is_empty()),
            lease_duration_seconds: record.lease_duration_seconds,
            acquire_time: record.acquire_time,
            renew_time: record.renew_time,
            transitions: record.transitions,
        }
    }

    /// Whether, by `now` on this machine's wall clock, the last renewal is older than the lease
    /// duration: a hint for display only (clocks may disagree), what `kubectl` users read from
    /// `renewTime`.
    pub fn looks_expired_at(&self, now: Timestamp) -> bool {
        let Some(renewed) = self.renew_time else {
            return true;
        };
        let duration = k8s_openapi::jiff::SignedDuration::from_secs(i64::from(self.lease_duration_seconds));
        renewed.checked_add(duration).map_or(true, |until| until < now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_released_lease_names_no_holder_and_looks_expired_a_second_later()
    -> Result<(), Box<dyn std::error::Error>> {
        let lease: Lease = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "l", "namespace": "default"},
            "spec": {"holderIdentity": "", "leaseDurationSeconds": 1,
                     "acquireTime": "2026-12-06T08:00:00.000000Z", "renewTime": "2026-12-06T08:00:00.000000Z",
                     "leaseTransitions": 2},
        }))?;
        let status = LeaseStatus::of(&lease);
        assert_eq!(status.holder, None);
        assert_eq!(status.transitions, 2);
        assert!(!status.looks_expired_at("2026-12-06T08:00:00.500000Z".parse()?));
        assert!(status.looks_expired_at("2026-12-06T08:00:01.500000Z".parse()?));
        Ok(())
    }
}
