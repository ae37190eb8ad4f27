//! Queue and reconcile metrics in a Prometheus registry.
//!
//! The crate is `prometheus-client`, the Prometheus project's own Rust client: it needs no global
//! registry (a library must not impose one), encodes both the Prometheus text format and
//! OpenMetrics, lets a series be removed (`Family::remove`), and takes collectors that read live
//! values at scrape time. The `metrics` facade would leave the exporter and the removal of series
//! to whichever recorder the application installs.
//!
//! Series, all labelled `controller`:
//! - `kazan_queue_depth`, `kazan_queue_delayed`, `kazan_queue_leased` (gauges),
//!   `kazan_queue_oldest_ready_age_seconds` (gauge), `kazan_queue_retries_total` (counter): read
//!   from the queue at each scrape, and gone once the queue is dropped or shut down;
//! - `kazan_reconciles_total`, `kazan_reconcile_errors_total` (counters) and
//!   `kazan_reconcile_duration_seconds` (histogram, 1 ms to about 65 s): recorded by the
//!   [`Runner`](super::Runner), removed when the [`ControllerMetrics`] is dropped — so a stopped
//!   controller leaves no stale series behind (client-go leaked them: kubernetes/kubernetes#73587).
//!
//! Series labelled `watcher`, from the [`WatcherStats`] a [`WatcherMetrics`] is fed:
//! `kazan_watcher_events_total`, `kazan_watcher_resumes_total`, `kazan_watcher_retries_total`,
//! `kazan_watcher_bookmarks_total`, `kazan_watcher_lines_read_total`,
//! `kazan_watcher_bytes_read_total`, `kazan_watcher_gones_total`,
//! `kazan_watcher_retries_by_cause_total` (labelled `cause` too: unreachable, server_error,
//! throttled, stream, idle, malformed) (counters) and `kazan_watcher_seconds_since_last_event`
//! (gauge); removed when the handle is dropped.
//!
//! Series labelled `informer`, read from the informer's [`Store`] at each scrape
//! ([`RuntimeMetrics::informer`]; a [`Controller`](super::Controller) with metrics registers its
//! primary informer under its own name): `kazan_informer_objects` (gauge),
//! `kazan_informer_store_bytes` (gauge, compact stores only: a store of decoded objects has no
//! size short of asking the allocator), `kazan_informer_relists_total` and
//! `kazan_informer_synthesized_deletes_total` (counters: objects a relist did not contain,
//! reported deleted); removed when the handle or the store is dropped.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{
        MetricType,
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::ConstGauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use super::queue::{QueueStats, WeakQueue, WorkQueue};
use crate::{
    Object,
    informer::{Store, StoreStats, store::StatsReader},
    watcher::WatcherStats,
};

/// The label of every series: which controller (queue) it is about.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: String,
}

fn new_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

struct Inner {
    reconciles: Family<ControllerLabel, Counter>,
    errors: Family<ControllerLabel, Counter>,
    duration: Family<ControllerLabel, Histogram, fn() -> Histogram>,
    queues: Mutex<Vec<(ControllerLabel, QueueHandle)>>,
    /// The last stats reported by each live [`WatcherMetrics`], by its id.
    watchers: Mutex<BTreeMap<u64, WatcherSlot>>,
    next_watcher: AtomicU64,
    /// The stores of the live [`InformerMetrics`], by their id.
    informers: Mutex<BTreeMap<u64, (InformerLabel, StatsReader)>>,
}

/// The label of the informer series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InformerLabel {
    informer: String,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let informers = self
            .informers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f.debug_struct("Inner")
            .field("queues", &self.queues)
            .field("watchers", &self.watchers)
            .field(
                "informers",
                &informers.values().map(|(l, _)| l).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The label of the watcher series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatcherLabel {
    watcher: String,
}

/// The labels of the retries-by-cause series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabel {
    watcher: String,
    cause: &'static str,
}

/// What a watcher last reported.
#[derive(Debug)]
struct WatcherSlot {
    label: WatcherLabel,
    stats: WatcherStats,
    /// When `stats.events` last grew.
    last_event: Option<std::time::Instant>,
}

/// A queue as the collector holds it: weakly, so that the metrics do not keep it alive.
#[derive(Clone)]
struct QueueHandle(WeakQueue);

impl std::fmt::Debug for QueueHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueHandle")
    }
}

/// The runtime's metrics, registered once in a registry; hands out one [`ControllerMetrics`] per
/// controller.
#[derive(Debug, Clone)]
pub struct RuntimeMetrics {
    inner: Arc<Inner>,
}

impl RuntimeMetrics {
    /// Registers the runtime's metrics in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let inner = Arc::new(Inner {
            reconciles: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(new_histogram),
            queues: Mutex::new(Vec::new()),
            watchers: Mutex::new(BTreeMap::new()),
            next_watcher: AtomicU64::new(0),
            informers: Mutex::new(BTreeMap::new()),
        });
        registry.register(
            "kazan_reconciles",
            "Reconciles that returned, by controller",
            inner.reconciles.clone(),
        );
        registry.register(
            "kazan_reconcile_errors",
            "Reconciles that returned an error or panicked, by controller",
            inner.errors.clone(),
        );
        registry.register(
            "kazan_reconcile_duration_seconds",
            "How long reconciles took, by controller",
            inner.duration.clone(),
        );
        registry.register_collector(Box::new(QueueCollector { inner: inner.clone() }));
        registry.register_collector(Box::new(WatcherCollector { inner: inner.clone() }));
        registry.register_collector(Box::new(InformerCollector { inner: inner.clone() }));
        RuntimeMetrics { inner }
    }

    /// The metrics of one controller named `name` working from `queue`: its queue's series
    /// appear now and go with the queue; its reconcile series go when the handle is dropped.
    pub fn controller(&self, name: &str, queue: &WorkQueue) -> ControllerMetrics {
        let label = ControllerLabel {
            controller: name.to_string(),
        };
        self.inner
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((label.clone(), QueueHandle(queue.downgrade())));
        ControllerMetrics {
            inner: self.inner.clone(),
            label,
        }
    }
}

impl RuntimeMetrics {
    /// The metrics of one watcher (or informer) named `name`: feed them its
    /// [`WatcherStats`] with [`WatcherMetrics::update`]; its series
    /// appear at the first update and go when the handle is dropped.
    pub fn watcher(&self, name: &str) -> WatcherMetrics {
        WatcherMetrics {
            inner: self.inner.clone(),
            id: self.inner.next_watcher.fetch_add(1, Ordering::Relaxed),
            label: WatcherLabel {
                watcher: name.to_string(),
            },
        }
    }
}

/// The metrics of one watcher: `kazan_watcher_events_total`, `_resumes_total`, `_retries_total`,
/// `_bookmarks_total`, `_lines_read_total` and `kazan_watcher_seconds_since_last_event`,
/// labelled `watcher`. Dropping it removes its series.
#[derive(Debug)]
pub struct WatcherMetrics {
    inner: Arc<Inner>,
    id: u64,
    label: WatcherLabel,
}

impl WatcherMetrics {
    /// Records the watcher's counters now (call it after each event, or on a timer).
    pub fn update(&self, stats: &WatcherStats) {
        let mut watchers = self
            .inner
            .watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let slot = watchers.entry(self.id).or_insert_with(|| WatcherSlot {
            label: self.label.clone(),
            stats: WatcherStats::default(),
            last_event: None,
        });
        if stats.events > slot.stats.events {
            slot.last_event = Some(std::time::Instant::now());
        }
        slot.stats = stats.clone();
    }
}

impl Drop for WatcherMetrics {
    fn drop(&mut self) {
        self.inner
            .watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// A watcher counter: name, help, and how to read it from the stats.
type WatcherCounterSpec = (&'static str, &'static str, fn(&WatcherStats) -> u64);

/// Reads the watchers' last reported counters at each scrape.
#[derive(Debug)]
struct WatcherCollector {
    inner: Arc<Inner>,
}

impl Collector for WatcherCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = std::time::Instant::now();
        let snapshot: Vec<(WatcherLabel, WatcherStats, Option<f64>)> = self
            .inner
            .watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .map(|s| {
                let since = s
                    .last_event
                    .map(|t| now.saturating_duration_since(t).as_secs_f64());
                (s.label.clone(), s.stats.clone(), since)
            })
            .collect();
        if snapshot.is_empty() {
            return Ok(());
        }
        let counters: [WatcherCounterSpec; 7] = [
            (
                "kazan_watcher_events",
                "Object events handed to the consumer",
                |s| s.events,
            ),
            (
                "kazan_watcher_resumes",
                "Watches re-opened after the server ended one cleanly",
                |s| s.resumes,
            ),
            (
                "kazan_watcher_retries",
                "Attempts repeated after an error, after a backoff",
                |s| s.retries,
            ),
            ("kazan_watcher_bookmarks", "Bookmarks received", |s| s.bookmarks),
            (
                "kazan_watcher_lines_read",
                "Event lines read off the socket",
                |s| s.lines_read,
            ),
            (
                "kazan_watcher_bytes_read",
                "Bytes of watch responses read off the socket",
                |s| s.bytes_read,
            ),
            ("kazan_watcher_gones", "410 Gone answers met", |s| s.gones),
        ];
        for (name, help, value) in counters {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (label, stats, _) in &snapshot {
                ConstCounter::new(value(stats)).encode(metric.encode_family(label)?)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "kazan_watcher_retries_by_cause",
            "Attempts repeated after an error, by what caused them",
            None,
            MetricType::Counter,
        )?;
        for (label, stats, _) in &snapshot {
            for (cause, count) in stats.retries_by_cause.by_name() {
                let label = CauseLabel {
                    watcher: label.watcher.clone(),
                    cause,
                };
                ConstCounter::new(count).encode(metric.encode_family(&label)?)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "kazan_watcher_seconds_since_last_event",
            "Seconds since the watcher last handed over an object event",
            None,
            MetricType::Gauge,
        )?;
        for (label, _, since) in &snapshot {
            if let Some(since) = since {
                ConstGauge::new(*since).encode(metric.encode_family(label)?)?;
            }
        }
        Ok(())
    }
}

/// The reconcile metrics of one controller (give it to [`Runner::metrics`](super::Runner::metrics)).
/// Dropping it removes the controller's series.
#[derive(Debug)]
pub struct ControllerMetrics {
    inner: Arc<Inner>,
    label: ControllerLabel,
}

impl ControllerMetrics {
    /// Records one reconcile that took `took` and failed or not.
    pub fn record(&self, took: Duration, failed: bool) {
        self.inner.reconciles.get_or_create(&self.label).inc();
        if failed {
            self.inner.errors.get_or_create(&self.label).inc();
        }
        self.inner
            .duration
            .get_or_create(&self.label)
            .observe(took.as_secs_f64());
    }
}

impl Drop for ControllerMetrics {
    fn drop(&mut self) {
        self.inner.reconciles.remove(&self.label);
        self.inner.errors.remove(&self.label);
        self.inner.duration.remove(&self.label);
        self.inner
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(l, _)| l != &self.label);
    }
}

/// A queue gauge: name, help, and how to read it from the stats.
type GaugeSpec = (&'static str, &'static str, fn(&QueueStats) -> i64);

/// Reads the live queues' counters at each scrape.
#[derive(Debug)]
struct QueueCollector {
    inner: Arc<Inner>,
}

impl Collector for QueueCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats: Vec<(ControllerLabel, QueueStats)> = {
            let mut queues = self
                .inner
                .queues
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Ended queues leave for good: their series disappear.
            queues.retain(|(_, q)| q.0.live().is_some());
            queues
                .iter()
                .filter_map(|(l, q)| q.0.live().map(|q| (l.clone(), q.stats())))
                .collect()
        };
        let gauges: [GaugeSpec; 3] = [
            ("kazan_queue_depth", "Keys ready to be reconciled", |s| {
                i64::try_from(s.depth).unwrap_or(i64::MAX)
            }),
            (
                "kazan_queue_delayed",
                "Keys waiting for a backoff or requeue",
                |s| i64::try_from(s.delayed).unwrap_or(i64::MAX),
            ),
            ("kazan_queue_leased", "Keys being reconciled", |s| {
                i64::try_from(s.leased).unwrap_or(i64::MAX)
            }),
        ];
        for (name, help, value) in gauges {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (label, s) in &stats {
                ConstGauge::new(value(s)).encode(metric.encode_family(label)?)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "kazan_queue_oldest_ready_age_seconds",
            "How long the longest-waiting ready key has waited",
            None,
            MetricType::Gauge,
        )?;
        for (label, s) in &stats {
            let age = s.oldest_ready_age.unwrap_or_default().as_secs_f64();
            ConstGauge::new(age).encode(metric.encode_family(label)?)?;
        }
        let mut metric = encoder.encode_descriptor(
            "kazan_queue_retries",
            "Retries scheduled after failures",
            None,
            MetricType::Counter,
        )?;
        for (label, s) in &stats {
            ConstCounter::new(s.retries).encode(metric.encode_family(label)?)?;
        }
        Ok(())
    }
}

impl RuntimeMetrics {
    /// The metrics of the informer whose store is `store`, named `name`: read from the store at
    /// each scrape, without keeping it alive. Its series go when the handle or the store is
    /// dropped.
    pub fn informer<K: Object + Send + Sync + 'static>(
        &self,
        name: &str,
        store: &Store<K>,
    ) -> InformerMetrics {
        let id = self.inner.next_watcher.fetch_add(1, Ordering::Relaxed);
        let label = InformerLabel {
            informer: name.to_string(),
        };
        self.inner
            .informers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, (label, store.stats_reader()));
        InformerMetrics {
            inner: self.inner.clone(),
            id,
        }
    }
}

/// The metrics of one informer (`kazan_informer_*`, labelled `informer`). Dropping it removes its
/// series.
#[derive(Debug)]
pub struct InformerMetrics {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for InformerMetrics {
    fn drop(&mut self) {
        self.inner
            .informers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// An informer series: name, help, type, and how to read it from the store's numbers (`None`:
/// no sample for this store).
type InformerSpec = (
    &'static str,
    &'static str,
    MetricType,
    fn(&StoreStats) -> Option<u64>,
);

/// Reads the live informers' stores at each scrape.
#[derive(Debug)]
struct InformerCollector {
    inner: Arc<Inner>,
}

impl Collector for InformerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats: Vec<(InformerLabel, StoreStats)> = {
            let mut informers = self
                .inner
                .informers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // A dropped store leaves for good: its series disappear.
            let mut read = Vec::new();
            informers.retain(|_, (label, reader)| match reader() {
                Some(stats) => {
                    read.push((label.clone(), stats));
                    true
                }
                None => false,
            });
            read
        };
        if stats.is_empty() {
            return Ok(());
        }
        let specs: [InformerSpec; 4] = [
            (
                "kazan_informer_objects",
                "Objects in the informer's store",
                MetricType::Gauge,
                |s| Some(s.objects as u64),
            ),
            (
                "kazan_informer_store_bytes",
                "Bytes of compact JSON the informer's store holds (compact stores only)",
                MetricType::Gauge,
                |s| s.compact.then_some(s.compact_bytes as u64),
            ),
            (
                "kazan_informer_relists",
                "Relists after 410 Gone",
                MetricType::Counter,
                |s| Some(s.relists),
            ),
            (
                "kazan_informer_synthesized_deletes",
                "Objects a relist did not contain, reported deleted with their final state unknown",
                MetricType::Counter,
                |s| Some(s.synthesized_deletes),
            ),
        ];
        for (name, help, kind, value) in specs {
            let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
            for (label, s) in &stats {
                let Some(v) = value(s) else { continue };
                if kind == MetricType::Counter {
                    ConstCounter::new(v).encode(metric.encode_family(label)?)?;
                } else {
                    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
                        .encode(metric.encode_family(label)?)?;
                }
            }
        }
        Ok(())
    }
}
