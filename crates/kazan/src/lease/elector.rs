//! The election loop: acquire, renew, fence, release; client-go's `LeaderElector` step for step
//! (`tools/leaderelection/leaderelection.go`), with the holder's deadline counted from its last
//! successful renewal.

use std::time::Duration;

use k8s_openapi::{api::coordination::v1::Lease, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use tokio::{sync::watch, task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{
    config::{ElectionConfig, ElectionConfigError, ElectionError, jittered},
    record::{self, Record},
};
use crate::{Client, Error, Request};

/// Which Lease the candidates contend for, and who this candidate is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseLock {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This candidate's `holderIdentity`: unique among the candidates and among the incarnations
    /// of one (client-go's components use the host name and a random suffix). A candidate that
    /// reads its own identity in the Lease takes it as its own at once, so a restarted process
    /// that reuses the identity of a live one would lead alongside it.
    pub identity: String,
}

impl LeaseLock {
    /// The Lease `namespace/name`, contended for as `identity`.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        LeaseLock {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
        }
    }
}

/// What a candidate may do now; the value of the election's watch channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// Not leading: do not act. `holder` is who the last read of the Lease named as its holder
    /// (`None` before the first read, or when the Lease names nobody).
    Following {
        /// The observed holder's identity.
        holder: Option<String>,
    },
    /// This candidate holds the Lease and may act, until the value changes.
    Leading {
        /// The Lease's `leaseTransitions` when this term began: it grows by one each time the
        /// Lease changes hands, so it tells terms apart (a fencing token for writes that carry it).
        transitions: i32,
    },
    /// The election has ended (stopped, or the Lease was lost without
    /// [`rejoin_after_loss`](ElectionConfig::rejoin_after_loss)): do not act.
    Stopped,
}

impl Leadership {
    /// Whether this candidate may act.
    pub fn is_leading(&self) -> bool {
        matches!(self, Leadership::Leading { .. })
    }
}

/// A validated election, ready to [`start`](LeaderElector::start).
#[derive(Debug)]
pub struct LeaderElector {
    client: Client,
    lock: LeaseLock,
    config: ElectionConfig,
    /// A record this process already saw, and when (see [`LeaderElector::seen`]).
    seen: Option<(Record, Instant)>,
}

impl LeaderElector {
    /// Checks the configuration (client-go's rules, see [`ElectionConfig::validate`]) and the lock,
    /// and builds the elector's own client from `client`'s configuration.
    ///
    /// The elector does not share `client`'s connections: over HTTP/2, watches whose bodies are
    /// not read (a stalled consumer) hold the connection's flow-control window, and requests on
    /// that connection then get no answer. On connections of its own, renewals are not held up
    /// by anything else the process does (credentials are obtained separately too).
    pub fn new(client: &Client, lock: LeaseLock, config: ElectionConfig) -> Result<Self, ElectionError> {
        config.validate()?;
        if lock.identity.is_empty() {
            return Err(ElectionConfigError::EmptyIdentity.into());
        }
        if lock.name.is_empty() {
            return Err(ElectionConfigError::EmptyLease { which: "name" }.into());
        }
        if lock.namespace.is_empty() {
            return Err(ElectionConfigError::EmptyLease { which: "namespace" }.into());
        }
        let client = Client::new(client.config().clone()).map_err(ElectionError::Client)?;
        Ok(LeaderElector {
            client,
            lock,
            config,
            seen: None,
        })
    }

    /// Starts the elector's clock from an earlier look of this process at the Lease: `lease` as
    /// read at `at`. client-go's `observedRecord` and `observedTime`, set by another part of the
    /// same process (a shard membership lists every slot's Lease each round): if the Lease still
    /// holds that very record, it has gone unchanged since `at` on this process's clock, and
    /// expires `leaseDurationSeconds` after `at` rather than after the elector's first read.
    pub(crate) fn seen(mut self, lease: &Lease, at: Instant) -> Self {
        self.seen = Some((Record::from_spec(lease.spec.as_ref()), at));
        self
    }

    /// Starts contending on the current Tokio runtime (it panics outside one, as `tokio::spawn`
    /// does). Leadership is reported on the returned [`Election`]'s watch channel; dropping the
    /// `Election` stops contending.
    pub fn start(self) -> Election {
        let (tx, rx) = watch::channel(Leadership::Following { holder: None });
        let cancel = CancellationToken::new();
        let state = State {
            client: self.client,
            lock: self.lock,
            config: self.config,
            observed: self.seen.as_ref().map(|(r, _)| r.clone()).unwrap_or_default(),
            observed_raw: self.seen.as_ref().map(|(r, _)| r.clone()),
            observed_at: self.seen.as_ref().map(|(_, at)| *at),
            lease: None,
            reported: None,
            tx,
        };
        let task = tokio::spawn(state.run(cancel.clone()));
        Election {
            leadership: rx,
            cancel,
            task,
        }
    }
}

/// A running election. Dropping it stops the election (and releases the Lease if so configured)
/// in the background; [`Election::stop`] does the same and waits for it.
#[derive(Debug)]
pub struct Election {
    leadership: watch::Receiver<Leadership>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Election {
    /// A receiver of this candidate's leadership: act only while it is
    /// [`Leading`](Leadership::Leading), and stop as soon as it changes.
    pub fn leadership(&self) -> watch::Receiver<Leadership> {
        self.leadership.clone()
    }

    /// Whether this candidate may act now.
    pub fn is_leading(&self) -> bool {
        self.leadership.borrow().is_leading()
    }

    /// Stops the election: leadership becomes [`Stopped`](Leadership::Stopped) first, then the
    /// Lease is released if [`release_on_cancel`](ElectionConfig::release_on_cancel) is set (within
    /// the renew deadline). Returns when the election's task has ended.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        // A panic in the task has already been reported by the runtime; nothing is left to do.
        let _ = (&mut self.task).await;
    }
}

impl Drop for Election {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// How a term ended.
enum TermEnd {
    /// The renew deadline passed without a successful renewal, or another holder was seen.
    Lost,
    /// The election was stopped.
    Cancelled,
}

/// The elector's bookkeeping (client-go's `LeaderElector` fields and `LeaseLock.lease`).
struct State {
    client: Client,
    lock: LeaseLock,
    config: ElectionConfig,
    /// The last record read or written (`observedRecord`).
    observed: Record,
    /// The last record read (`observedRawRecord`): a read that differs from it restarts the clock.
    observed_raw: Option<Record>,
    /// When `observed` was set (`observedTime`), on this process's monotonic clock.
    observed_at: Option<Instant>,
    /// The Lease as last read or written, whose `resourceVersion` the next update carries.
    lease: Option<Lease>,
    /// The holder last reported on the channel (`reportedLeader`).
    reported: Option<String>,
    tx: watch::Sender<Leadership>,
}

impl State {
    async fn run(mut self, cancel: CancellationToken) {
        loop {
            let Some(fence) = self.acquire(&cancel).await else {
                break;
            };
            tracing::info!(lease = %self.describe(), identity = %self.lock.identity, "acquired the lease");
            self.publish(Leadership::Leading {
                transitions: self.observed.transitions,
            });
            match self.renew(fence, &cancel).await {
                TermEnd::Cancelled => break,
                TermEnd::Lost => {
                    if self.config.rejoin_after_loss {
                        let holder = self.holder();
                        self.publish(Leadership::Following { holder });
                        continue;
                    }
                    break;
                }
            }
        }
        // Stop acting first: a release lets a contender in at once.
        self.publish(Leadership::Stopped);
        if self.config.release_on_cancel {
            self.release().await;
        }
    }

    /// Tries until the Lease is ours (`acquire`): the fence of the new term, or `None` if stopped.
    async fn acquire(&mut self, cancel: &CancellationToken) -> Option<Instant> {
        let deadline = self.config.renew_deadline;
        let client = self.client.with_request_timeout(deadline);
        loop {
            let sent = Instant::now();
            let acquired = tokio::select! {
                biased;
                () = cancel.cancelled() => return None,
                outcome = tokio::time::timeout(deadline, self.try_acquire_or_renew(&client)) => {
                    outcome.unwrap_or(false)
                }
            };
            let fence = sent + deadline;
            if acquired && Instant::now() < fence {
                return Some(fence);
            }
            self.report_holder();
            tokio::select! {
                biased;
                () = cancel.cancelled() => return None,
                () = tokio::time::sleep(jittered(self.config.retry_period)) => {}
            }
        }
    }

    /// Renews every retry period until a renewal fails to succeed by the fence (`renew`).
    ///
    /// The fence is the send time of the last successful write plus the renew deadline; at the
    /// fence the term ends whatever is in flight.
    async fn renew(&mut self, mut fence: Instant, cancel: &CancellationToken) -> TermEnd {
        let retry = self.config.retry_period;
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return TermEnd::Cancelled,
                () = tokio::time::sleep_until(fence) => return self.lost(),
                () = tokio::time::sleep(retry) => {}
            }
            loop {
                let sent = Instant::now();
                let Some(remaining) = fence.checked_duration_since(sent).filter(|d| !d.is_zero()) else {
                    return self.lost();
                };
                // Its own deadline, whatever the client's: a renewal must not outlive the term.
                let client = self.client.with_request_timeout(remaining);
                let renewed = tokio::select! {
                    biased;
                    () = cancel.cancelled() => return TermEnd::Cancelled,
                    () = tokio::time::sleep_until(fence) => return self.lost(),
                    renewed = self.try_acquire_or_renew(&client) => renewed,
                };
                if renewed {
                    fence = sent + self.config.renew_deadline;
                    tracing::trace!(lease = %self.describe(), "renewed the lease");
                    break;
                }
                if !self.is_leader() && self.observed_at.is_some() {
                    // Someone else holds it: the term is over, whatever the deadline says.
                    tracing::warn!(
                        lease = %self.describe(),
                        identity = %self.lock.identity,
                        holder = %self.observed.holder,
                        "another candidate holds the lease: stopped leading"
                    );
                    return TermEnd::Lost;
                }
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return TermEnd::Cancelled,
                    () = tokio::time::sleep_until(fence) => return self.lost(),
                    () = tokio::time::sleep(retry) => {}
                }
            }
        }
    }

    fn lost(&self) -> TermEnd {
        tracing::warn!(
            lease = %self.describe(),
            identity = %self.lock.identity,
            renew_deadline = ?self.config.renew_deadline,
            "failed to renew the lease within the renew deadline: stopped leading"
        );
        TermEnd::Lost
    }

    /// One try (`tryAcquireOrRenew`): `true` if the Lease is now ours.
    async fn try_acquire_or_renew(&mut self, client: &Client) -> bool {
        let now = record::now();
        let mut record = Record {
            holder: self.lock.identity.clone(),
            lease_duration_seconds: self.config.lease_duration_seconds(),
            acquire_time: Some(now),
            renew_time: Some(now),
            ..Record::default()
        };

        // 1. The holder updates optimistically, assuming the Lease is as it last saw it.
        if self.is_leader()
            && self.lease_valid(Instant::now())
            && let Some(lease) = self.lease.clone()
        {
            record.acquire_time = self.observed.acquire_time;
            record.transitions = self.observed.transitions;
            match self.update(client, lease, &record).await {
                Ok(()) => {
                    self.set_observed(record);
                    return true;
                }
                Err(e) => tracing::debug!(
                    lease = %self.describe(),
                    error = %e,
                    "failed to update the lease optimistically, reading it"
                ),
            }
        }

        // 2. Read the Lease, or create it.
        let get = Request::get::<Lease>(&self.lock.name).namespace(&self.lock.namespace);
        let lease = match client.run(&get).await {
            Ok(lease) => lease,
            Err(e) if e.status_code() == Some(404) => {
                return match self.create(client, &record).await {
                    Ok(()) => {
                        self.set_observed(record);
                        true
                    }
                    Err(e) => {
                        tracing::debug!(lease = %self.describe(), error = %e, "failed to create the lease");
                        false
                    }
                };
            }
            Err(e) => {
                tracing::debug!(lease = %self.describe(), error = %e, "failed to read the lease");
                return false;
            }
        };
        let old = Record::from_spec(lease.spec.as_ref());
        self.lease = Some(lease.clone());

        // 3. A changed record restarts the clock; a valid Lease of someone else is left alone.
        if self.observed_raw.as_ref() != Some(&old) {
            self.set_observed(old.clone());
            self.observed_raw = Some(old.clone());
        }
        if !old.holder.is_empty() && self.lease_valid(Instant::now()) && !self.is_leader() {
            return false;
        }

        // 4. Take or keep it.
        if self.is_leader() {
            record.acquire_time = old.acquire_time;
            record.transitions = old.transitions;
        } else {
            record.transitions = old.transitions.saturating_add(1);
        }
        match self.update(client, lease, &record).await {
            Ok(()) => {
                self.set_observed(record);
                true
            }
            Err(e) => {
                tracing::debug!(lease = %self.describe(), error = %e, "failed to update the lease");
                false
            }
        }
    }

    /// Gives the Lease up if it is still ours (`release`): no holder, a one-second duration, the
    /// transitions kept. Retried on a conflict, within the renew deadline.
    async fn release(&mut self) {
        let deadline = self.config.renew_deadline;
        let client = self.client.with_request_timeout(deadline);
        let released = tokio::time::timeout(deadline, async {
            loop {
                let get = Request::get::<Lease>(&self.lock.name).namespace(&self.lock.namespace);
                let lease = match client.run(&get).await {
                    Ok(lease) => lease,
                    Err(e) => {
                        tracing::debug!(lease = %self.describe(), error = %e, "cannot read the lease to release it");
                        return false;
                    }
                };
                let old = Record::from_spec(lease.spec.as_ref());
                // client-go judges by what it last observed; a fresh read also keeps a
                // candidate that lost the Lease from clearing its successor's.
                if old.holder != self.lock.identity {
                    return false;
                }
                let now = record::now();
                let record = Record {
                    lease_duration_seconds: 1,
                    acquire_time: Some(now),
                    renew_time: Some(now),
                    transitions: old.transitions,
                    ..Record::default()
                };
                match self.update(&client, lease, &record).await {
                    Ok(()) => {
                        self.set_observed(record);
                        return true;
                    }
                    Err(e) if e.status_code() == Some(409) => continue,
                    Err(e) => {
                        tracing::debug!(lease = %self.describe(), error = %e, "failed to release the lease");
                        return false;
                    }
                }
            }
        })
        .await
        .unwrap_or(false);
        if released {
            tracing::info!(lease = %self.describe(), identity = %self.lock.identity, "released the lease");
        }
    }

    async fn create(&mut self, client: &Client, record: &Record) -> Result<(), Error> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.lock.name.clone()),
                namespace: Some(self.lock.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(record.to_spec()),
        };
        let request = Request::create(&lease).map_err(|e| Error::InvalidRequest(e.to_string()))?;
        self.lease = Some(client.run(&request).await?);
        Ok(())
    }

    /// Writes `record` into `lease` (with its `resourceVersion`: a 409 means someone else wrote
    /// first).
    async fn update(&mut self, client: &Client, mut lease: Lease, record: &Record) -> Result<(), Error> {
        lease.spec = Some(record.to_spec());
        let request = Request::replace(&lease).map_err(|e| Error::InvalidRequest(e.to_string()))?;
        self.lease = Some(client.run(&request).await?);
        Ok(())
    }

    fn set_observed(&mut self, record: Record) {
        self.observed = record;
        self.observed_at = Some(Instant::now());
    }

    /// Whether the last observed record names this candidate (`IsLeader`).
    fn is_leader(&self) -> bool {
        self.observed_at.is_some() && self.observed.holder == self.lock.identity
    }

    /// Whether the observed record's duration has not run out since it was observed
    /// (`isLeaseValid`): measured on this process's clock, never against the Lease's times.
    fn lease_valid(&self, now: Instant) -> bool {
        let Some(at) = self.observed_at else {
            return false;
        };
        let seconds = u64::try_from(self.observed.lease_duration_seconds).unwrap_or(0);
        at + Duration::from_secs(seconds) > now
    }

    fn holder(&self) -> Option<String> {
        Some(self.observed.holder.clone()).filter(|h| !h.is_empty())
    }

    /// Reports a new observed holder to followers (`maybeReportTransition`).
    fn report_holder(&mut self) {
        let holder = self.holder();
        if holder == self.reported {
            return;
        }
        self.reported = holder.clone();
        self.publish(Leadership::Following { holder });
    }

    fn publish(&self, leadership: Leadership) {
        self.tx.send_if_modified(|current| {
            if *current == leadership {
                false
            } else {
                *current = leadership;
                true
            }
        });
    }

    fn describe(&self) -> String {
        format!("{}/{}", self.lock.namespace, self.lock.name)
    }
}
