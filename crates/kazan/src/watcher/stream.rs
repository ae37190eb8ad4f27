//! The [`Stream`] form's face: the events of one watch, and the watcher's counters beside them.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::Stream;

use super::{
    event::{Event, WatcherId},
    stats::{StatsCell, WatcherStats},
    step::Step,
};

/// A watcher's events as a stream ([`Watcher::stream`](super::Watcher::stream)). It ends after a `Gone` or `Failed` event;
/// dropping it stops the watch. Like the spawned form's handle, it tells the watcher's id and
/// counters, so a consumer of the stream can see resumes and retries too.
#[must_use = "a watch makes progress only while its stream is polled"]
pub struct WatchStream<K> {
    pub(crate) steps: StepStream<K>,
    pub(crate) id: WatcherId,
    pub(crate) stats: Arc<StatsCell>,
}

/// The steps of one watch, boxed: what the spawned form's task and [`WatchStream`] drive.
pub(crate) type StepStream<K> = Pin<Box<dyn Stream<Item = Step<K>> + Send>>;

impl<K> WatchStream<K> {
    /// The watcher's id (the `from` of its events).
    pub fn id(&self) -> WatcherId {
        self.id
    }

    /// The watcher's counters: resumes, retries, events, and the version it would resume from.
    ///
    /// The version covers exactly the events this stream has yielded: drop the stream after any
    /// event, start a new watcher from `stats().resource_version`, and it delivers every later
    /// event once, none of the earlier ones.
    pub fn stats(&self) -> WatcherStats {
        self.stats.snapshot()
    }
}

impl<K> Stream for WatchStream<K> {
    type Item = Event<K>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event<K>>> {
        loop {
            let step = match self.steps.as_mut().poll_next(cx) {
                Poll::Ready(Some(step)) => step,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            // Yielded now: the resume version moves with it, not before.
            self.stats.handed(&step.resume, step.counts());
            if let Some(event) = step.event {
                return Poll::Ready(Some(event));
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.steps.size_hint().1)
    }
}

impl<K> std::fmt::Debug for WatchStream<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}
