//! The replay servers a scenario streams from, shared by the scenarios that replay a fixed
//! stream of events (throughput, slow consumer).

use std::collections::BTreeMap;

use super::Context;
use crate::{
    consumers::Consumer, error::BenchError, events::EventSet, job::Job, replay::ReplayServer, runner::Entry,
};

/// Replay servers for one scenario, one per distinct event count (a smaller count is a prefix of
/// the same events, so the memory is shared).
pub(super) struct Servers {
    events: EventSet,
    by_count: BTreeMap<u64, ReplayServer>,
}

impl Servers {
    pub(super) fn new(events: EventSet) -> Self {
        Servers {
            events,
            by_count: BTreeMap::new(),
        }
    }

    /// An entry for `consumer` expecting `count` events, with a server streaming exactly those
    /// (none for the decode bound, which builds its own bytes).
    pub(super) async fn entry(
        &mut self,
        consumer: Consumer,
        mut job: Job,
        context: &Context,
    ) -> Result<Entry, BenchError> {
        job.pod = context.pod_path.clone();
        if !consumer.uses_a_server() {
            return Ok(Entry {
                consumer,
                job,
                connections: None,
            });
        }
        let count = job.events;
        let server = match self.by_count.entry(count) {
            std::collections::btree_map::Entry::Occupied(server) => server.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                let events = self.events.prefix(count);
                slot.insert(ReplayServer::start(events).await?)
            }
        };
        job.server = Some(server.url());
        Ok(Entry {
            consumer,
            job,
            connections: Some(server.connection_counter()),
        })
    }
}
