//! The spawned form: a task that drives the watcher's stream and sends each event into a bounded
//! channel (Kazan's `send_to`), and the handle that stops it and tells why it ended.

use std::{
    fmt,
    future::IntoFuture,
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
};

use futures_util::{FutureExt, StreamExt};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::{
    error::WatchError,
    event::{Event, EventKind, WatcherId},
    stats::{StatsCell, WatcherStats},
    step::Step,
    stream::StepStream,
};

/// Why a watcher ended, and where a new watcher would resume.
///
/// Every `resource_version` here is the version of the last event handed to the consumer (put in
/// its channel), as [`WatcherHandle::stats`] tells it: start a new watcher from it (after reading
/// what is left in the channel) and it delivers every later event exactly once.
#[derive(Debug, Clone)]
pub enum EndReason {
    /// [`WatcherHandle::stop`] was called (or the runtime shut down).
    Stopped {
        /// Where to resume; `None` if the watcher ended before its initial list was handed over.
        resource_version: Option<String>,
    },
    /// The server said 410 Gone (the message is the server's). Relist and start a new watcher:
    /// there is no version to resume from.
    Gone {
        /// The server's message.
        message: String,
    },
    /// The receiver was dropped: nobody listens any more.
    ConsumerGone {
        /// Where to resume.
        resource_version: Option<String>,
    },
    /// An error the watcher cannot recover from.
    Failed {
        /// What went wrong.
        error: Arc<WatchError>,
        /// Where to resume once the cause is fixed.
        resource_version: Option<String>,
    },
}

impl EndReason {
    /// The version a new watcher resumes from without losing or repeating an event; `None` after
    /// Gone (relist) or before the initial list was handed over.
    pub fn resume_from(&self) -> Option<&str> {
        match self {
            EndReason::Stopped { resource_version }
            | EndReason::ConsumerGone { resource_version }
            | EndReason::Failed { resource_version, .. } => resource_version.as_deref(),
            EndReason::Gone { .. } => None,
        }
    }
}

/// What [`WatcherHandle::stop`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// The watcher was running and is now stopped.
    Stopped,
    /// The watcher had already ended (stopped before, Gone, consumer gone, or failed).
    AlreadyStopped,
}

/// A running watcher.
///
/// Events go to the channel given with [`WatcherOptions::send_to`](super::WatcherOptions::send_to),
/// or, without one, to the handle's own channel, read with [`WatcherHandle::recv`].
///
/// Dropping the handle does not stop the watcher: it runs until [`stop`](Self::stop) is called, the
/// receiver is dropped (with the handle's own channel, dropping the handle drops the receiver), or
/// it ends on Gone or a terminal error. `.await` on the handle waits for the end.
pub struct WatcherHandle<M> {
    control: Control,
    inbox: Inbox<M>,
    capacity: usize,
}

/// What the handle holds of the running task.
pub(crate) struct Control {
    pub(crate) id: WatcherId,
    cancel: CancellationToken,
    end: Arc<EndSignal>,
    pub(crate) stats: Arc<StatsCell>,
}

/// How a watcher ended: told once by its task, read by its handle. Every running watcher keeps
/// one, so it is a cell and one notifier (a `watch` channel carries nine notifiers).
#[derive(Debug, Default)]
pub(crate) struct EndSignal {
    reason: OnceLock<EndReason>,
    told: Notify,
}

impl EndSignal {
    /// Records the reason (the first one told wins) and wakes every waiter.
    pub(crate) fn tell(&self, reason: EndReason) {
        let _ = self.reason.set(reason);
        self.told.notify_waiters();
    }

    fn reason(&self) -> Option<&EndReason> {
        self.reason.get()
    }

    async fn wait(&self) -> EndReason {
        loop {
            // Enabled before looking, so that a reason told after the look is not missed.
            let told = self.told.notified();
            tokio::pin!(told);
            told.as_mut().enable();
            if let Some(reason) = self.reason.get() {
                return reason.clone();
            }
            told.await;
        }
    }
}

/// Held by the task: tells `Stopped` if the task is dropped before it told anything (its runtime
/// shut down), so that no handle waits for ever.
pub(crate) struct EndGuard {
    end: Arc<EndSignal>,
    stats: Arc<StatsCell>,
}

impl EndGuard {
    pub(crate) fn new(end: Arc<EndSignal>, stats: Arc<StatsCell>) -> Self {
        EndGuard { end, stats }
    }

    /// The version a new watcher would resume from now.
    fn resume_version(&self) -> Option<String> {
        self.stats.snapshot().resource_version
    }

    fn tell(&self, reason: EndReason) {
        self.end.tell(reason);
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.end.tell(EndReason::Stopped {
            resource_version: self.resume_version(),
        });
    }
}

/// Where the handle's [`recv`](WatcherHandle::recv) reads from.
pub(crate) enum Inbox<M> {
    /// Events go to a `send_to` channel, or the receiver was taken.
    Elsewhere,
    /// The handle's own channel of undecoded events, decoded as they are received: the objects
    /// are built on the consumer's thread (or already decoded, when decoded ahead).
    Decoding(Box<dyn DecodingInbox<M>>),
}

/// A channel whose messages are finished (decoded) on the receiving side.
pub(crate) trait DecodingInbox<M>: Send + Sync {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<M>>;
}

impl<M> fmt::Debug for WatcherHandle<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatcherHandle")
            .field("id", &self.control.id)
            .field("running", &self.control.end.reason().is_none())
            .finish_non_exhaustive()
    }
}

impl<M> WatcherHandle<M> {
    /// Tells the watcher to stop without waiting for it (a sharded watcher drops a lost slot's
    /// watcher this way, from a synchronous path).
    pub(crate) fn cancel(&self) {
        self.control.cancel.cancel();
    }
}

impl<M: Send + 'static> WatcherHandle<M> {
    pub(crate) fn new(control: Control, inbox: Inbox<M>, capacity: usize) -> Self {
        WatcherHandle {
            control,
            inbox,
            capacity,
        }
    }

    /// The watcher's counters: resumes, retries, events, and the version it would resume from.
    ///
    /// `events` and `resource_version` cover exactly the events put in the consumer's channel
    /// (see [`stop`](Self::stop)).
    pub fn stats(&self) -> WatcherStats {
        self.control.stats.snapshot()
    }

    /// The watcher's id (the `from` of its events).
    pub fn id(&self) -> WatcherId {
        self.control.id
    }

    /// The next event from the handle's own channel; `None` when the watcher has ended and every
    /// event was read, or when events go to a `send_to` channel instead.
    pub async fn recv(&mut self) -> Option<M> {
        match &mut self.inbox {
            Inbox::Elsewhere => None,
            Inbox::Decoding(inbox) => std::future::poll_fn(|cx| inbox.poll_recv(cx)).await,
        }
    }

    /// Takes the handle's own receiver (e.g. to move it into another task). [`recv`](Self::recv)
    /// is cheaper: with the receiver taken, objects are decoded before they are queued.
    pub fn take_receiver(&mut self) -> Option<mpsc::Receiver<M>> {
        match std::mem::replace(&mut self.inbox, Inbox::Elsewhere) {
            Inbox::Elsewhere => None,
            Inbox::Decoding(mut inbox) => {
                let (tx, rx) = mpsc::channel(self.capacity);
                tokio::spawn(async move {
                    while let Some(message) = std::future::poll_fn(|cx| inbox.poll_recv(cx)).await {
                        if tx.send(message).await.is_err() {
                            break;
                        }
                    }
                });
                Some(rx)
            }
        }
    }

    /// Stops the watch and waits for the task to end. Calling it again, or after the watcher ended
    /// on its own, returns [`StopOutcome::AlreadyStopped`].
    ///
    /// Events already in the channel stay there: read them (`recv` until `None`, or your
    /// `send_to` receiver). An event the watcher held because the channel was full is dropped and
    /// not counted, so [`stats`](Self::stats)`().resource_version` (and the end reason's) is the
    /// version of the last event put in the channel: a watcher started from it after the channel
    /// was read delivers the dropped event and everything after it, once.
    pub async fn stop(&self) -> StopOutcome {
        if self.control.end.reason().is_some() {
            return StopOutcome::AlreadyStopped;
        }
        self.control.cancel.cancel();
        match self.wait().await {
            EndReason::Stopped { .. } => StopOutcome::Stopped,
            _ => StopOutcome::AlreadyStopped,
        }
    }

    /// Whether the watcher is still running.
    pub fn is_running(&self) -> bool {
        self.control.end.reason().is_none()
    }

    /// Why the watcher ended, if it has.
    pub fn end_reason(&self) -> Option<EndReason> {
        self.control.end.reason().cloned()
    }

    /// Waits until the watcher ends and tells why.
    pub async fn wait(&self) -> EndReason {
        self.control.end.wait().await
    }
}

impl<M: Send + 'static> IntoFuture for WatcherHandle<M> {
    type Output = EndReason;
    type IntoFuture = Pin<Box<dyn Future<Output = EndReason> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.wait().await })
    }
}

/// Where the events of one watch come from: a single stream, or a new one after each Gone.
pub(crate) trait StreamSource<K>: Send + 'static {
    /// The next stream to drive; `restart` counts the Gones before it.
    fn open(&mut self, restart: u32) -> StepStream<K>;
    /// Whether to open a new stream after Gone (the supervisor) or end (Kazan).
    fn restarts_after_gone(&self) -> bool;
}

/// Spawns the task that drives `source` into `tx`, each event turned into a message by `message`
/// once a channel slot is reserved for it.
pub(crate) fn spawn<K, M, Src>(
    id: WatcherId,
    source: Src,
    tx: mpsc::Sender<M>,
    message: impl Fn(Event<K>) -> M + Send + 'static,
    stats: Arc<StatsCell>,
    restart_delay: impl FnMut(u32) -> std::time::Duration + Send + 'static,
) -> Control
where
    K: Send + 'static,
    M: Send + 'static,
    Src: StreamSource<K>,
{
    let cancel = CancellationToken::new();
    let end = Arc::new(EndSignal::default());
    tokio::spawn(drive(
        Box::new(source),
        tx,
        message,
        cancel.clone(),
        EndGuard::new(end.clone(), stats.clone()),
        stats.clone(),
        restart_delay,
    ));
    Control {
        id,
        cancel,
        end,
        stats,
    }
}

/// The spawned task: what every running watcher keeps allocated, so kept small (see the test).
pub(crate) async fn drive<K, M, Src>(
    mut source: Box<Src>,
    tx: mpsc::Sender<M>,
    message: impl Fn(Event<K>) -> M + Send + 'static,
    task_cancel: CancellationToken,
    end: EndGuard,
    stats: Arc<StatsCell>,
    mut restart_delay: impl FnMut(u32) -> std::time::Duration + Send + 'static,
) where
    K: Send + 'static,
    M: Send + 'static,
    Src: StreamSource<K>,
{
    let mut restart = 0u32;
    let reason = 'outer: loop {
        let mut stream = source.open(restart);
        // Channel slots reserved in a batch once the channel was full: the consumer then
        // wakes this task once per batch rather than once per event.
        let mut permits: Option<mpsc::PermitIterator<'_, M>> = None;
        let ended = loop {
            if task_cancel.is_cancelled() {
                break 'outer stopped(&end);
            }
            let next = match stream.next().now_or_never() {
                Some(next) => next,
                None => {
                    // Nothing ready: do not sit on channel capacity while waiting.
                    permits = None;
                    tokio::select! {
                        biased;
                        _ = task_cancel.cancelled() => break 'outer stopped(&end),
                        _ = tx.closed() => break 'outer consumer_gone(&end),
                        next = stream.next() => next,
                    }
                }
            };
            let Some(step) = next else {
                break 'outer stopped(&end);
            };
            let counts = step.counts();
            let Step { event, resume } = step;
            let Some(event) = event else {
                // A move of the resume version alone: everything before it was handed over.
                stats.handed(&resume, false);
                continue;
            };
            let terminal = match &event.kind {
                EventKind::Gone { message } => Some(EndReason::Gone {
                    message: message.clone(),
                }),
                EventKind::Failed(e) => Some(EndReason::Failed {
                    error: e.clone(),
                    resource_version: None,
                }),
                _ => None,
            };
            // Backpressure: while the consumer is behind, the stream is not polled and the
            // socket is not read.
            let permit = loop {
                if let Some(permit) = permits.as_mut().and_then(Iterator::next) {
                    break permit;
                }
                permits = None;
                match tx.try_reserve() {
                    Ok(permit) => break permit,
                    Err(mpsc::error::TrySendError::Closed(())) => break 'outer consumer_gone(&end),
                    Err(mpsc::error::TrySendError::Full(())) => {
                        let batch = (tx.max_capacity() / 4).max(1);
                        tokio::select! {
                            biased;
                            _ = task_cancel.cancelled() => break 'outer stopped(&end),
                            reserved = tx.reserve_many(batch) => match reserved {
                                Ok(reserved) => permits = Some(reserved),
                                Err(_) => break 'outer consumer_gone(&end),
                            },
                        }
                    }
                }
            };
            permit.send(message(event));
            // In the channel now: the consumer will get it, so the resume version moves past it.
            stats.handed(&resume, counts);
            if let Some(t) = terminal {
                break t;
            }
        };
        match ended {
            EndReason::Gone { .. } if source.restarts_after_gone() => {
                restart = restart.saturating_add(1);
                tokio::select! {
                    biased;
                    _ = task_cancel.cancelled() => break stopped(&end),
                    _ = tx.closed() => break consumer_gone(&end),
                    _ = tokio::time::sleep(restart_delay(restart)) => {}
                }
            }
            EndReason::Failed { error, .. } => {
                break EndReason::Failed {
                    error,
                    resource_version: end.resume_version(),
                };
            }
            other => break other,
        }
    };
    end.tell(reason);
}

fn stopped(end: &EndGuard) -> EndReason {
    EndReason::Stopped {
        resource_version: end.resume_version(),
    }
}

fn consumer_gone(end: &EndGuard) -> EndReason {
    EndReason::ConsumerGone {
        resource_version: end.resume_version(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_task_dropped_without_a_word_ends_its_watcher_as_stopped() {
        let end = Arc::new(EndSignal::default());
        let guard = EndGuard::new(end.clone(), Arc::default());
        let waiter = tokio::spawn({
            let end = end.clone();
            async move { end.wait().await }
        });
        tokio::task::yield_now().await;
        assert!(end.reason().is_none());
        drop(guard);
        let reason = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(matches!(reason, Ok(Ok(EndReason::Stopped { .. }))), "{reason:?}");
    }

    #[tokio::test]
    async fn the_first_reason_told_is_the_one_every_waiter_gets() {
        let end = Arc::new(EndSignal::default());
        let guard = EndGuard::new(end.clone(), Arc::default());
        end.tell(EndReason::ConsumerGone {
            resource_version: None,
        });
        // The task's guard drops after it told why: that changes nothing.
        drop(guard);
        assert!(matches!(end.reason(), Some(EndReason::ConsumerGone { .. })));
        let reason = tokio::time::timeout(Duration::from_secs(5), end.wait()).await;
        assert!(matches!(reason, Ok(EndReason::ConsumerGone { .. })), "{reason:?}");
    }
}
