//! The election record held in a Lease's spec, read and written field for field as client-go's
//! `resourcelock.LeaseLock` does (`LeaseSpecToLeaderElectionRecord`,
//! `LeaderElectionRecordToLeaseSpec`).

use k8s_openapi::{
    api::coordination::v1::LeaseSpec, apimachinery::pkg::apis::meta::v1::MicroTime, jiff::Timestamp,
};

/// client-go's `LeaderElectionRecord`: absent fields read as empty, zero or the zero time.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct Record {
    /// `holderIdentity`; empty when nobody holds the Lease (after a release).
    pub holder: String,
    /// `leaseDurationSeconds`.
    pub lease_duration_seconds: i32,
    /// `acquireTime`.
    pub acquire_time: Option<Timestamp>,
    /// `renewTime`.
    pub renew_time: Option<Timestamp>,
    /// `leaseTransitions`.
    pub transitions: i32,
    /// `preferredHolder` (coordinated leader election); kept only to compare records.
    pub preferred_holder: String,
    /// `strategy` (coordinated leader election); kept only to compare records.
    pub strategy: String,
}

impl Record {
    /// Reads a Lease's spec as client-go does.
    pub(crate) fn from_spec(spec: Option<&LeaseSpec>) -> Record {
        let Some(spec) = spec else {
            return Record::default();
        };
        Record {
            holder: spec.holder_identity.clone().unwrap_or_default(),
            lease_duration_seconds: spec.lease_duration_seconds.unwrap_or(0),
            acquire_time: spec.acquire_time.as_ref().map(|t| t.0),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
            preferred_holder: spec.preferred_holder.clone().unwrap_or_default(),
            strategy: spec.strategy.clone().unwrap_or_default(),
        }
    }

    /// Writes the spec as client-go does: holder, duration, both times and transitions always
    /// (an empty holder as `""`), `preferredHolder` and `strategy` only when set. The times are
    /// `MicroTime`s (RFC 3339, six fractional digits, UTC).
    pub(crate) fn to_spec(&self) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.holder.clone()),
            lease_duration_seconds: Some(self.lease_duration_seconds),
            acquire_time: self.acquire_time.map(|t| MicroTime(micro(t))),
            renew_time: self.renew_time.map(|t| MicroTime(micro(t))),
            lease_transitions: Some(self.transitions),
            preferred_holder: Some(self.preferred_holder.clone()).filter(|s| !s.is_empty()),
            strategy: Some(self.strategy.clone()).filter(|s| !s.is_empty()),
        }
    }
}

/// A time cut to whole microseconds, what a `MicroTime` keeps. (An unset time is left out of the
/// spec: Go marshals a zero `MicroTime` as `null`.)
fn micro(t: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
}

/// Now, to the microsecond.
pub(crate) fn now() -> Timestamp {
    micro(Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `kubectl get lease -o json` shows for a Lease client-go's elector holds.
    #[test]
    fn a_record_is_written_and_read_back_as_client_go_does() -> Result<(), Box<dyn std::error::Error>> {
        let t: Timestamp = "2026-12-06T08:00:00.123456789Z".parse()?;
        let record = Record {
            holder: "a".into(),
            lease_duration_seconds: 15,
            acquire_time: Some(t),
            renew_time: Some(t),
            transitions: 3,
            ..Record::default()
        };
        let json = serde_json::to_value(record.to_spec())?;
        assert_eq!(
            json,
            serde_json::json!({
                "holderIdentity": "a",
                "leaseDurationSeconds": 15,
                "acquireTime": "2026-12-06T08:00:00.123456Z",
                "renewTime": "2026-12-06T08:00:00.123456Z",
                "leaseTransitions": 3,
            })
        );
        let back = Record::from_spec(Some(&serde_json::from_value(json)?));
        assert_eq!(
            back.acquire_time.map(|t| t.as_microsecond()),
            Some(t.as_microsecond())
        );
        assert_eq!(back.holder, "a");
        assert_eq!(back.transitions, 3);
        Ok(())
    }

    #[test]
    fn a_released_record_names_nobody_with_an_empty_string() -> Result<(), serde_json::Error> {
        let released = Record {
            lease_duration_seconds: 1,
            ..Record::default()
        };
        let json = serde_json::to_value(released.to_spec())?;
        assert_eq!(json["holderIdentity"], "");
        assert_eq!(json["leaseDurationSeconds"], 1);
        assert!(json.get("acquireTime").is_none());
        Ok(())
    }
}
