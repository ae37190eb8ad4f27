//! `kazan watch RESOURCE --shards N --shard-lease NAME`: replicas started the same way share the
//! objects through Leases, each printing only the objects of the slots it holds now, on
//! [`kazan::shard::ShardedWatcher`].
//!
//! The objects are cut into N slots by the FNV-1a hash of their UID (slot `i` is the fixed shard
//! `i/N`, as `--shard i/N`). Each slot has a Lease `NAME-i`, held by one replica at a time with
//! client-go's leader election; each replica also keeps a Lease `NAME-member-ID`, by which the
//! replicas count each other and divide the slots evenly. A replica that wins a slot lists it and
//! watches it; one that loses a slot (shed to a newcomer, or its renewals failing) stops printing
//! it before anyone else can win it. Acquisitions and losses are told on stderr.

use std::{process::ExitCode, time::Duration};

use jiff::Timestamp;
use kazan::{
    lease::ElectionConfig,
    shard::{MembershipConfig, ShardKey, ShardedEvent, ShardedWatcher},
    watcher::{EventKind, WatcherOptions},
};

use super::{Session, TICK, WatchArgs};
use crate::{
    cluster::{Cluster, parse_duration},
    error::CliError,
    output::Watched,
    terminal::{Signals, emit, stdout_closed},
};

/// The flags of a membership-driven watch.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ShardsArgs {
    /// Share the objects with the other replicas started with the same --shards and
    /// --shard-lease: the objects are cut into N slots by the hash of their UID, each replica
    /// holds some slots through Leases and prints only their objects (listing a slot when it
    /// wins it). A replica that stops hands its slots over at once; one that dies, after the
    /// lease duration. Acquisitions and losses are told on stderr.
    #[arg(
        long,
        value_name = "N",
        requires = "shard_lease",
        value_parser = clap::value_parser!(u64).range(1..=4096),
        conflicts_with_all = ["shard", "relist", "checkpoint", "resource_version", "metrics_addr"]
    )]
    pub shards: Option<u64>,

    /// The name prefix of the sharded watch's Leases: NAME-0 .. NAME-(N-1) for the slots and
    /// NAME-member-ID for the replicas (`kazan lease --prefix NAME` shows them).
    #[arg(long, value_name = "NAME", requires = "shards")]
    pub shard_lease: Option<String>,

    /// Where the Leases live [default: the namespace of the watch (-n, else the context's)].
    #[arg(long, value_name = "NS", requires = "shards")]
    pub lease_namespace: Option<String>,

    /// This replica's name in the Leases, distinct per replica [default: HOSTNAME_UUID, as
    /// client-go's components name themselves].
    #[arg(long, value_name = "ID", requires = "shards")]
    pub lease_identity: Option<String>,

    /// How long a slot stays held after its holder's last renewal, as other replicas see it
    /// (client-go's LeaseDuration; whole seconds, above --renew-deadline) [default: 15s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "shards")]
    pub lease_duration: Option<Duration>,

    /// How long a holder goes on without a successful renewal before it stops printing the slot
    /// (client-go's RenewDeadline) [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "shards")]
    pub renew_deadline: Option<Duration>,

    /// The wait between renewals and between tries to win a slot (client-go's RetryPeriod)
    /// [default: 2s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "shards")]
    pub retry_period: Option<Duration>,
}

impl ShardsArgs {
    /// Whether the watch is membership-driven.
    pub fn on(&self) -> bool {
        self.shards.is_some()
    }

    fn election(&self) -> ElectionConfig {
        let defaults = ElectionConfig::default();
        ElectionConfig {
            lease_duration: self.lease_duration.unwrap_or(defaults.lease_duration),
            renew_deadline: self.renew_deadline.unwrap_or(defaults.renew_deadline),
            retry_period: self.retry_period.unwrap_or(defaults.retry_period),
            ..defaults
        }
    }
}

/// `HOSTNAME_UUID`: client-go's components' `id := hostname + "_" + uuid`.
fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kazan".to_string());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

impl<K: Watched> Session<K> {
    /// Runs the membership and prints the events of the slots held, until a signal (which
    /// releases the slots) or an error.
    pub(super) async fn run_sharded(
        &mut self,
        args: &WatchArgs,
        signals: &mut Signals,
    ) -> Result<ExitCode, CliError> {
        let flags = &args.shards;
        let (Some(slots), Some(prefix)) = (flags.shards, flags.shard_lease.clone()) else {
            return Err(CliError::Usage("--shards needs --shard-lease NAME".into()));
        };
        let namespace = match &flags.lease_namespace {
            Some(ns) => ns.clone(),
            None => Cluster::connect(&args.cluster)?.namespace,
        };
        let identity = flags.lease_identity.clone().unwrap_or_else(default_identity);
        let membership = MembershipConfig {
            namespace: namespace.clone(),
            lease_prefix: prefix.clone(),
            identity: identity.clone(),
            slots,
            election: flags.election(),
        };
        let options = WatcherOptions::new()
            .name(self.watcher_name.clone())
            .initial_list(self.initial_list)
            .log(Some(tracing::Level::INFO));
        let mut watcher = ShardedWatcher::start(
            &self.client,
            self.request.clone(),
            options,
            ShardKey::Uid,
            membership,
        )
        .map_err(|e| CliError::Usage(format!("--shards {slots} --shard-lease {prefix}: {e}")))?;
        eprintln!(
            "kazan: {}: replica {identity:?}, sharing {slots} slots through leases {prefix}-0..{} in namespace \"{namespace}\"",
            self.what,
            slots - 1
        );
        emit(&self.printer.start(Timestamp::now())?)?;
        // The slots whose list is still coming (not printed with --watch-only).
        let mut listing = std::collections::BTreeSet::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                biased;
                () = signals.recv() => {
                    // Out of every slot, then the Leases released: the others take over at once.
                    let held: Vec<String> = watcher.owned().iter().map(u64::to_string).collect();
                    eprintln!("kazan: stopping: releasing slots [{}] of {slots}", held.join(", "));
                    watcher.stop().await;
                    return Ok(ExitCode::SUCCESS);
                }
                event = watcher.recv() => event,
                _ = tick.tick() => {
                    if stdout_closed() {
                        watcher.stop().await;
                        return Err(CliError::StdoutClosed);
                    }
                    continue;
                }
            };
            let Some(event) = event else {
                return Err(CliError::Unexpected(format!(
                    "{}: the shard membership ended without saying why",
                    self.what
                )));
            };
            match event {
                ShardedEvent::Acquired { slot } => {
                    listing.insert(slot);
                    eprintln!(
                        "kazan: acquired slot {slot}/{slots} (lease {prefix}-{slot}): listing its objects"
                    );
                }
                ShardedEvent::Lost { slot } => {
                    listing.remove(&slot);
                    eprintln!(
                        "kazan: lost slot {slot}/{slots} (lease {prefix}-{slot}): no longer printing its objects"
                    );
                }
                ShardedEvent::Failed { error, .. } => {
                    watcher.stop().await;
                    return Err(CliError::Watch {
                        what: self.what.clone(),
                        source: error,
                    });
                }
                ShardedEvent::Event { slot, event } => {
                    let event_type = event.event_type();
                    match event.kind {
                        EventKind::Added(object)
                        | EventKind::Modified(object)
                        | EventKind::Deleted(object) => {
                            if args.watch_only && listing.contains(&slot) {
                                continue;
                            }
                            self.print(event_type, object).await?;
                        }
                        EventKind::Synced => {
                            listing.remove(&slot);
                            tracing::info!("{}: slot {slot}/{slots} listed; watching it", self.what);
                        }
                        EventKind::Gone { message } => {
                            listing.insert(slot);
                            tracing::warn!(
                                "{}: slot {slot}/{slots}: the watch expired (410 Gone: {message}); listing the slot again",
                                self.what
                            );
                        }
                        EventKind::Failed(source) => {
                            watcher.stop().await;
                            return Err(CliError::Watch {
                                what: self.what.clone(),
                                source,
                            });
                        }
                        EventKind::Bookmark | EventKind::Skipped(_) => {}
                    }
                }
                _ => {}
            }
        }
    }

    async fn print(&mut self, event_type: kazan::watcher::EventType, mut object: K) -> Result<(), CliError> {
        object.prepare(&self.resource.api);
        self.ensure_columns(std::slice::from_ref(&object)).await;
        emit(&self.printer.event(event_type, &object, Timestamp::now())?)
    }
}
