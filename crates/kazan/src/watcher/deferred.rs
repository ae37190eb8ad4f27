//! Decoding on the receiving side: the spawned watcher's task queues [`RawObject`] events and the
//! handle's `recv` turns them into typed ones. Objects are then built and dropped on the
//! consumer's thread (allocators make objects freed on another thread dear: the profile of a
//! watcher decoding on its own task showed about twice the CPU per event), and reading the socket
//! overlaps with decoding.

use std::{
    marker::PhantomData,
    sync::Arc,
    task::{Context, Poll},
};

use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::{
    error::WatchError,
    event::{Event, EventKind},
    spawn::DecodingInbox,
};
use crate::{Object, RawObject};

/// The handle's own channel, carrying undecoded objects.
pub(crate) struct DecodeOnReceive<K> {
    pub(crate) rx: mpsc::Receiver<Event<RawObject>>,
    pub(crate) decoder: crate::Decoder,
    pub(crate) _k: PhantomData<fn() -> K>,
}

impl<K: DeserializeOwned + Send + 'static> DecodingInbox<Event<K>> for DecodeOnReceive<K> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event<K>>> {
        let decoder = self.decoder;
        self.rx
            .poll_recv(cx)
            .map(|event| event.map(|event| finish(event, decoder)))
    }
}

/// The handle's own channel when objects are decoded ahead on the runtime's threads
/// (`decode_concurrency` above 1): its events are already typed.
pub(crate) struct DecodedAhead<K> {
    pub(crate) rx: mpsc::Receiver<Event<K>>,
}

impl<K: Send + 'static> DecodingInbox<Event<K>> for DecodedAhead<K> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event<K>>> {
        self.rx.poll_recv(cx)
    }
}

/// Decodes the object of an event; one that does not decode becomes a `Skipped` event, as it
/// would have on the watcher's task.
pub(crate) fn finish<K: DeserializeOwned>(event: Event<RawObject>, decoder: crate::Decoder) -> Event<K> {
    let Event {
        from,
        resource_version,
        kind,
    } = event;
    let decoded = |raw: RawObject, event_type: &str| -> Result<K, EventKind<K>> {
        raw.decode_with::<K>(decoder).map_err(|source| {
            let object = match raw.namespace() {
                Some(ns) => format!("{ns}/{}", raw.name()),
                None => raw.name().to_string(),
            };
            EventKind::Skipped(Arc::new(WatchError::Decode {
                event_type: event_type.to_string(),
                object,
                resource_version: raw.resource_version().unwrap_or("?").to_string(),
                source,
            }))
        })
    };
    let kind = match kind {
        EventKind::Added(raw) => decoded(raw, "ADDED").map_or_else(|skip| skip, EventKind::Added),
        EventKind::Modified(raw) => decoded(raw, "MODIFIED").map_or_else(|skip| skip, EventKind::Modified),
        EventKind::Deleted(raw) => decoded(raw, "DELETED").map_or_else(|skip| skip, EventKind::Deleted),
        EventKind::Bookmark => EventKind::Bookmark,
        EventKind::Synced => EventKind::Synced,
        EventKind::Skipped(e) => EventKind::Skipped(e),
        EventKind::Gone { message } => EventKind::Gone { message },
        EventKind::Failed(e) => EventKind::Failed(e),
    };
    Event {
        from,
        resource_version,
        kind,
    }
}
