//! Where every Rust consumer delivers its events: one place that counts them, checks their order,
//! times the scenario, plays the slow consumer, and writes the report. A consumer only has to hand
//! over each object's resourceVersion, so adding one cannot change what is measured.

use std::time::{Duration, Instant, SystemTime};

use crate::{
    error::ConsumeError,
    job::{ChildReport, Job},
    measure, stats,
};

/// Whether the consumer should keep reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// More events are expected.
    More,
    /// The last expected event has arrived.
    Done,
}

/// One watch's progress.
#[derive(Debug, Clone, Default)]
struct WatchState {
    /// Events in order (a resourceVersion above every one before it).
    in_order: u64,
    highest: Option<u64>,
}

/// Counts, checks and times the events of one consumer run, over one or many watches.
///
/// With contiguous resourceVersions (the replay server) each watch must see `first_rv`,
/// `first_rv + 1`, ... exactly; a skipped version is lost, one at or below the highest is
/// repeated, and the run is done at the last version. With sparse versions (a real server shares
/// its counter across resources) each watch must see `per_watch` events in increasing order.
#[derive(Debug)]
pub struct Sink {
    first_rv: u64,
    last_rv: u64,
    sparse: bool,
    per_watch: u64,
    watches: Vec<WatchState>,
    watches_done: usize,
    received: u64,
    errors: u64,
    lost: u64,
    repeated: u64,
    started: Instant,
    cpu_at_start: f64,
    finished: Option<(Instant, SystemTime)>,
    cpu_at_finish: f64,
    gap_every: Option<u64>,
    last_event_at: Option<Instant>,
    gaps: Vec<Duration>,
    pace: Option<(u64, Duration)>,
    checkpoint: Option<u64>,
    rss_at_checkpoint: Option<u64>,
}

impl Sink {
    /// A sink expecting what `job` describes; its clock starts now (see [`Sink::start`]).
    pub fn new(job: &Job) -> Self {
        let pace = match (job.pace_every, job.pace_sleep_us) {
            (Some(every), Some(us)) if every > 0 => Some((every, Duration::from_micros(us))),
            _ => None,
        };
        let watches = job.watch_count();
        Sink {
            first_rv: job.first_rv,
            last_rv: job.last_rv(),
            sparse: job.sparse_rvs,
            per_watch: job.events / watches as u64,
            watches: vec![WatchState::default(); watches],
            watches_done: 0,
            received: 0,
            errors: 0,
            lost: 0,
            repeated: 0,
            started: Instant::now(),
            cpu_at_start: measure::cpu_seconds(),
            finished: None,
            cpu_at_finish: 0.0,
            gap_every: job.gap_every.filter(|k| *k > 0),
            last_event_at: None,
            gaps: Vec::new(),
            pace,
            checkpoint: job.checkpoint,
            rss_at_checkpoint: None,
        }
    }

    /// Restarts the clock and the CPU baseline: a consumer calls it when its preparation (which is
    /// not part of the measurement) is done, just before its first request.
    pub fn start(&mut self) {
        self.cpu_at_start = measure::cpu_seconds();
        self.started = Instant::now();
    }

    /// Takes one event of watch `watch` (see [`Job::watch_index`]), by its object's
    /// resourceVersion.
    pub async fn event(
        &mut self,
        watch: usize,
        resource_version: Option<&str>,
    ) -> Result<Flow, ConsumeError> {
        let flow = self.record(watch, resource_version, Instant::now)?;
        if let Some((every, sleep)) = self.pace
            && self.received.is_multiple_of(every)
        {
            tokio::time::sleep(sleep).await;
        }
        Ok(flow)
    }

    /// The bookkeeping of [`Sink::event`], with the clock passed in so tests can drive it.
    fn record(
        &mut self,
        watch: usize,
        resource_version: Option<&str>,
        now: impl Fn() -> Instant,
    ) -> Result<Flow, ConsumeError> {
        let rv: u64 = resource_version
            .and_then(|rv| rv.parse().ok())
            .ok_or_else(|| ConsumeError::ResourceVersion(resource_version.map(str::to_owned)))?;
        let watch_count = self.watches.len();
        let state = self
            .watches
            .get_mut(watch)
            .ok_or(ConsumeError::UnknownWatch { watch, watch_count })?;
        self.received += 1;
        let expected_next = state.highest.map_or(self.first_rv, |h| h + 1);
        let in_order = if self.sparse {
            state.highest.is_none_or(|h| rv > h)
        } else {
            rv >= expected_next
        };
        if !in_order {
            self.repeated += 1;
        } else {
            if !self.sparse {
                self.lost += rv - expected_next;
            }
            state.highest = Some(rv);
            state.in_order += 1;
        }
        let index = state.in_order.saturating_sub(1);
        let watch_done = if self.sparse {
            in_order && state.in_order == self.per_watch
        } else {
            in_order && rv >= self.last_rv
        };
        if let Some(every) = self.gap_every {
            let at = now();
            match self.last_event_at {
                Some(previous) if in_order && index > 0 && index % every == 0 => {
                    self.gaps.push(at.saturating_duration_since(previous));
                }
                _ => {}
            }
            self.last_event_at = Some(at);
        }
        if self.checkpoint == Some(self.received) {
            self.rss_at_checkpoint = Some(measure::peak_rss_bytes());
        }
        if watch_done {
            self.watches_done += 1;
            if self.watches_done == watch_count {
                self.finished = Some((now(), SystemTime::now()));
                self.cpu_at_finish = measure::cpu_seconds();
            }
        }
        Ok(if self.finished.is_some() {
            Flow::Done
        } else {
            Flow::More
        })
    }

    /// Notes an error the consumer's watcher reported and recovers from by itself; the first few
    /// are shown on stderr.
    pub fn retried_error(&mut self, error: &dyn std::fmt::Display) {
        self.errors += 1;
        if self.errors <= 3 {
            eprintln!("  (retried) {error}");
        }
    }

    /// The error for a stream that ended early.
    pub fn ended_early(&self) -> ConsumeError {
        ConsumeError::Ended {
            received: self.received,
            expected: self.per_watch * self.watches.len() as u64,
        }
    }

    /// The report of this run, with the process's peak memory read now.
    pub fn report(&self, consumer: &str) -> ChildReport {
        let (finished, finished_unix_s, cpu_at_finish) = match self.finished {
            Some((at, wall)) => (at, unix_seconds(wall), self.cpu_at_finish),
            None => (Instant::now(), None, measure::cpu_seconds()),
        };
        let missing: u64 = if self.sparse {
            self.watches
                .iter()
                .map(|w| self.per_watch.saturating_sub(w.in_order))
                .sum()
        } else {
            self.watches
                .iter()
                .map(|w| {
                    self.last_rv
                        .saturating_sub(w.highest.unwrap_or(self.first_rv.saturating_sub(1)))
                })
                .sum::<u64>()
                + self.lost
        };
        let gaps_ms: Vec<f64> = self.gaps.iter().map(|gap| gap.as_secs_f64() * 1e3).collect();
        ChildReport {
            consumer: consumer.to_owned(),
            events: self.received,
            seconds: finished.saturating_duration_since(self.started).as_secs_f64(),
            cpu_seconds: (cpu_at_finish - self.cpu_at_start).max(0.0),
            peak_rss_bytes: measure::peak_rss_bytes(),
            last_rv: self.watches.iter().filter_map(|w| w.highest).max(),
            lost: missing,
            repeated: self.repeated,
            errors: self.errors,
            gap_ms: stats::median(&gaps_ms),
            gaps: gaps_ms.len() as u64,
            peak_rss_at_checkpoint_bytes: self.rss_at_checkpoint,
            finished_unix_s,
            connections: None,
            server_cpu_seconds: None,
        }
    }
}

/// Seconds since the Unix epoch: the one clock the harness and a consumer process share.
pub fn unix_seconds(at: SystemTime) -> Option<f64> {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::ScenarioName;

    fn feed(sink: &mut Sink, rvs: &[u64]) -> Result<Vec<Flow>, ConsumeError> {
        let now = Instant::now();
        rvs.iter()
            .map(|rv| sink.record(0, Some(&rv.to_string()), || now))
            .collect()
    }

    #[test]
    fn a_complete_ordered_stream_is_done_at_the_last_resource_version() -> Result<(), ConsumeError> {
        let mut sink = Sink::new(&Job::new(ScenarioName::Throughput, 2, 3));
        let flows = feed(&mut sink, &[2, 3, 4])?;
        assert_eq!(flows, [Flow::More, Flow::More, Flow::Done]);
        let report = sink.report("test");
        assert_eq!((report.events, report.lost, report.repeated), (3, 0, 0));
        assert_eq!(report.last_rv, Some(4));
        Ok(())
    }

    #[test]
    fn skipped_and_replayed_resource_versions_are_counted() -> Result<(), ConsumeError> {
        let mut sink = Sink::new(&Job::new(ScenarioName::Resume, 2, 6));
        feed(&mut sink, &[2, 3, 5, 5, 4, 6])?;
        let report = sink.report("test");
        assert_eq!(report.lost, 1 + 1, "4 skipped, 7 never reached");
        assert_eq!(report.repeated, 2);
        assert!(sink.finished.is_none());
        Ok(())
    }

    #[test]
    fn with_sparse_versions_each_watch_needs_its_count_in_increasing_order() -> Result<(), ConsumeError> {
        let mut job = Job::new(ScenarioName::ManyWatches, 100, 4);
        job.watches = Some(2);
        job.namespace_prefix = Some("mw-".to_owned());
        job.sparse_rvs = true;
        let mut sink = Sink::new(&job);
        let now = Instant::now();
        let mut flows = Vec::new();
        for (watch, rv) in [(0, 101), (1, 102), (0, 101), (0, 107), (1, 110)] {
            flows.push(sink.record(watch, Some(&rv.to_string()), || now)?);
        }
        assert_eq!(flows.last(), Some(&Flow::Done));
        assert!(flows.iter().take(4).all(|f| *f == Flow::More));
        let report = sink.report("test");
        assert_eq!((report.events, report.lost, report.repeated), (5, 0, 1));
        assert!(report.finished_unix_s.is_some());
        Ok(())
    }

    #[test]
    fn with_sparse_versions_a_watch_short_of_its_count_has_lost_events() -> Result<(), ConsumeError> {
        let mut job = Job::new(ScenarioName::ManyWatches, 100, 6);
        job.watches = Some(3);
        job.namespace_prefix = Some("mw-".to_owned());
        job.sparse_rvs = true;
        let mut sink = Sink::new(&job);
        let now = Instant::now();
        for (watch, rv) in [(0, 101), (0, 104), (1, 102)] {
            sink.record(watch, Some(&rv.to_string()), || now)?;
        }
        let report = sink.report("test");
        assert_eq!(report.lost, 1 + 2, "watch 1 is one short, watch 2 two");
        assert_eq!(report.finished_unix_s, None);
        Ok(())
    }

    #[test]
    fn an_object_without_a_numeric_resource_version_is_an_error() {
        let mut sink = Sink::new(&Job::new(ScenarioName::Throughput, 2, 3));
        let now = Instant::now();
        assert!(sink.record(0, None, || now).is_err());
        assert!(sink.record(0, Some("abc"), || now).is_err());
        assert!(sink.record(1, Some("2"), || now).is_err(), "there is one watch");
    }

    #[test]
    fn gaps_are_timed_only_across_watch_boundaries() -> Result<(), ConsumeError> {
        let mut job = Job::new(ScenarioName::Resume, 2, 6);
        job.gap_every = Some(2);
        let mut sink = Sink::new(&job);
        let base = Instant::now();
        // Two events per watch; the gap across each boundary is 7 ms, within a watch 1 ms.
        let times_ms = [0, 1, 8, 9, 16, 17];
        for (rv, ms) in (2..).zip(times_ms) {
            sink.record(0, Some(&rv.to_string()), || base + Duration::from_millis(ms))?;
        }
        let report = sink.report("test");
        assert_eq!(report.gaps, 2);
        assert_eq!(report.gap_ms, Some(7.0));
        Ok(())
    }

    #[test]
    fn the_peak_memory_is_read_at_the_checkpoint() -> Result<(), ConsumeError> {
        let mut job = Job::new(ScenarioName::SlowConsumer, 2, 4);
        job.checkpoint = Some(2);
        let mut sink = Sink::new(&job);
        feed(&mut sink, &[2])?;
        assert_eq!(sink.report("test").peak_rss_at_checkpoint_bytes, None);
        feed(&mut sink, &[3])?;
        assert!(sink.report("test").peak_rss_at_checkpoint_bytes.is_some());
        Ok(())
    }
}
