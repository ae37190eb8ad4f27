//! Where every Rust consumer delivers its events: one place that counts them, checks their order,
//! times the scenario, plays the slow consumer, and writes the report. A consumer only has to hand
//! over each object's resourceVersion, so adding one cannot change what is measured.

use std::time::{Duration, Instant};

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

/// Counts, checks and times the events of one consumer run.
#[derive(Debug)]
pub struct Sink {
    first_rv: u64,
    last_rv: u64,
    received: u64,
    highest: Option<u64>,
    lost: u64,
    repeated: u64,
    started: Instant,
    cpu_at_start: f64,
    finished: Option<Instant>,
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
        Sink {
            first_rv: job.first_rv,
            last_rv: job.last_rv(),
            received: 0,
            highest: None,
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

    /// Takes one event, by its object's resourceVersion.
    pub async fn event(&mut self, resource_version: Option<&str>) -> Result<Flow, ConsumeError> {
        let flow = self.record(resource_version, Instant::now)?;
        if let Some((every, sleep)) = self.pace {
            if self.received % every == 0 {
                tokio::time::sleep(sleep).await;
            }
        }
        Ok(flow)
    }

    /// The bookkeeping of [`Sink::event`], with the clock passed in so tests can drive it.
    fn record(
        &mut self,
        resource_version: Option<&str>,
        now: impl Fn() -> Instant,
    ) -> Result<Flow, ConsumeError> {
        let rv: u64 = resource_version
            .and_then(|rv| rv.parse().ok())
            .ok_or_else(|| ConsumeError::ResourceVersion(resource_version.map(str::to_owned)))?;
        self.received += 1;
        let expected_next = self.highest.map_or(self.first_rv, |h| h + 1);
        if rv < expected_next {
            self.repeated += 1;
        } else {
            self.lost += rv - expected_next;
            self.highest = Some(rv);
        }
        if let Some(every) = self.gap_every {
            let at = now();
            let index = rv.saturating_sub(self.first_rv);
            match self.last_event_at {
                Some(previous) if index > 0 && index % every == 0 => {
                    self.gaps.push(at.saturating_duration_since(previous));
                }
                _ => {}
            }
            self.last_event_at = Some(at);
        }
        if self.checkpoint == Some(self.received) {
            self.rss_at_checkpoint = Some(measure::peak_rss_bytes());
        }
        if self.highest.is_some_and(|h| h >= self.last_rv) {
            if self.finished.is_none() {
                self.finished = Some(now());
                self.cpu_at_finish = measure::cpu_seconds();
            }
            return Ok(Flow::Done);
        }
        Ok(Flow::More)
    }

    /// The error for a stream that ended early.
    pub fn ended_early(&self) -> ConsumeError {
        ConsumeError::Ended {
            received: self.received,
            expected: self.last_rv + 1 - self.first_rv,
        }
    }

    /// The report of this run, with the process's peak memory read now.
    pub fn report(&self, consumer: &str) -> ChildReport {
        let (finished, cpu_at_finish) = match self.finished {
            Some(at) => (at, self.cpu_at_finish),
            None => (Instant::now(), measure::cpu_seconds()),
        };
        let never_reached = self
            .last_rv
            .saturating_sub(self.highest.unwrap_or(self.first_rv.saturating_sub(1)));
        let gaps_ms: Vec<f64> = self.gaps.iter().map(|gap| gap.as_secs_f64() * 1e3).collect();
        ChildReport {
            consumer: consumer.to_owned(),
            events: self.received,
            seconds: finished.saturating_duration_since(self.started).as_secs_f64(),
            cpu_seconds: (cpu_at_finish - self.cpu_at_start).max(0.0),
            peak_rss_bytes: measure::peak_rss_bytes(),
            last_rv: self.highest,
            lost: self.lost + never_reached,
            repeated: self.repeated,
            gap_ms: stats::median(&gaps_ms),
            gaps: gaps_ms.len() as u64,
            peak_rss_at_checkpoint_bytes: self.rss_at_checkpoint,
            connections: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::ScenarioName;

    fn feed(sink: &mut Sink, rvs: &[u64]) -> Result<Vec<Flow>, ConsumeError> {
        let now = Instant::now();
        rvs.iter()
            .map(|rv| sink.record(Some(&rv.to_string()), || now))
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
    fn an_object_without_a_numeric_resource_version_is_an_error() {
        let mut sink = Sink::new(&Job::new(ScenarioName::Throughput, 2, 3));
        let now = Instant::now();
        assert!(sink.record(None, || now).is_err());
        assert!(sink.record(Some("abc"), || now).is_err());
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
            sink.record(Some(&rv.to_string()), || base + Duration::from_millis(ms))?;
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
