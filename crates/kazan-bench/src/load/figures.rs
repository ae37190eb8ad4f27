//! The figures of a load run, worked out after it from the writers' log (what each watch must
//! see, and when it was written) and the watcher process's samples and report (what it had
//! delivered, and when): lag per second and per 10-second window, memory over time, catch-up
//! time, and the checks that nothing was lost or repeated.

use serde::Serialize;

use super::{Sample, WatcherReport, writers::WriteLog};
use crate::stats::{median, thousands};

/// The width of the windows the lag and memory are summarised over.
pub const WINDOW_SECONDS: f64 = 10.0;
/// The span at the end of the writes over which the memory slope is taken.
pub const SLOPE_SECONDS: f64 = 20.0;

/// What the harness knows besides the log and the samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunFacts {
    /// Concurrent watches, one per namespace.
    pub watches: usize,
    /// Writer tasks.
    pub writers: usize,
    /// How long the writes were asked to run, in seconds.
    pub seconds: f64,
    /// When the writes started and stopped, in Unix seconds.
    pub write_start_unix_s: f64,
    /// When the last write's answer arrived.
    pub write_stop_unix_s: f64,
    /// The server's event history bound (events per resource).
    pub history_limit: usize,
    /// TCP connections the server accepted from the watcher process.
    pub watcher_connections: u64,
    /// TCP connections the server accepted from the writers.
    pub writer_connections: u64,
    /// Watches the server ended because their queue was full.
    pub server_watches_lagged: u64,
    /// The server's pods per namespace at the end: `(name, resourceVersion)`, sorted by name.
    pub server_state: Vec<Vec<(String, u64)>>,
}

/// Where the watches were at one sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LagSample {
    /// Seconds since the writes started.
    pub t_s: f64,
    /// The server's version then (the last write answered by then).
    pub server_rv: u64,
    /// Watches with writes they had not delivered yet.
    pub watches_behind: usize,
    /// Over those watches, the server's version minus the watch's last delivered one: median,
    /// 99th percentile and maximum (0 when none is behind).
    pub lag_versions_median: u64,
    /// 99th percentile.
    pub lag_versions_p99: u64,
    /// Maximum.
    pub lag_versions_max: u64,
    /// The most undelivered writes of one watch.
    pub max_events_behind: u64,
    /// The age of the oldest undelivered write, in seconds.
    pub oldest_undelivered_s: f64,
    /// The watcher process's resident memory.
    pub rss_bytes: u64,
}

/// One window of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    /// Start, in seconds since the writes started.
    pub from_s: f64,
    /// End.
    pub to_s: f64,
    /// Writes answered in the window, per second.
    pub writes_per_sec: f64,
    /// The highest per-sample maximum lag, in versions.
    pub lag_versions_max: u64,
    /// The highest per-sample p99 lag.
    pub lag_versions_p99: u64,
    /// The most undelivered writes of one watch.
    pub max_events_behind: u64,
    /// The oldest undelivered write's age, in seconds.
    pub oldest_undelivered_s: f64,
    /// The watcher process's resident memory at the last sample of the window.
    pub rss_end_bytes: u64,
}

/// Everything the scenario reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadFigures {
    /// The run's setting and the harness's counters.
    pub facts: RunFacts,
    /// Writes answered.
    pub writes: u64,
    /// Of which creates...
    pub creates: u64,
    /// ...updates (merge patches)...
    pub updates: u64,
    /// ...and deletes.
    pub deletes: u64,
    /// Seconds from the first write to the last answer.
    pub write_seconds: f64,
    /// Writes per second over the run.
    pub writes_per_sec: f64,
    /// Object events the watcher process delivered outside relists.
    pub delivered: u64,
    /// Watches whose event count differs from their namespace's writes (watches with a `Gone`
    /// are checked by their cache only).
    pub watches_with_wrong_count: usize,
    /// Writes never delivered, over the watches without `Gone`.
    pub lost: u64,
    /// Events delivered beyond the writes, over the watches without `Gone`.
    pub extra: u64,
    /// Events not above the previous version of their watch.
    pub out_of_order: u64,
    /// Namespaces whose cache at the end differs from the server's pods.
    pub cache_mismatches: usize,
    /// The watcher process's counters: `Gone`s and the watches that got one, relisted objects,
    /// resumes, retries, skipped events, failed watchers, and their first messages.
    pub watcher: WatcherCounts,
    /// Seconds from the last write's answer until every watch had it; `None` if not every watch
    /// caught up before the harness gave up.
    pub catch_up_seconds: Option<f64>,
    /// Resident memory of the watcher process at the first sample of the writes.
    pub rss_start_bytes: u64,
    /// The highest sampled resident memory during the writes.
    pub rss_peak_sampled_bytes: u64,
    /// The process's peak (`VmHWM`) at the end.
    pub rss_hwm_bytes: u64,
    /// Resident memory at the last sample of the writes.
    pub rss_end_bytes: u64,
    /// Least-squares slope of the resident memory over the last 20 s of writes, in bytes per second.
    pub rss_slope_last_20s_bytes_per_sec: Option<f64>,
    /// CPU seconds of the watcher process over the writes (first to last sample in the window).
    pub watcher_cpu_seconds: f64,
    /// The worst lag of the first and the last window: growing without bound would show here.
    pub lag_versions_max_first_window: u64,
    /// The last window's.
    pub lag_versions_max_last_window: u64,
    /// Per 10-second window.
    pub windows: Vec<Window>,
    /// Per sample.
    pub samples: Vec<LagSample>,
}

/// The watcher process's counters, as reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WatcherCounts {
    /// `Gone` events.
    pub gones: u64,
    /// Watches that got one.
    pub gone_watches: usize,
    /// Objects delivered by relists.
    pub relist_events: u64,
    /// Watch re-opens after a clean end.
    pub resumes: u64,
    /// Retries after errors.
    pub retries: u64,
    /// Skipped events.
    pub skipped: u64,
    /// Watchers failed.
    pub failed: u64,
    /// The first messages of unusual events.
    pub messages: Vec<String>,
}

/// The writes of one namespace, in version order (one writer per namespace, so time order too).
type NamespaceWrites = Vec<(u64, f64)>;

/// Works the figures out.
pub fn compute(facts: RunFacts, log: &WriteLog, samples: &[Sample], report: &WatcherReport) -> LoadFigures {
    let watches = facts.watches;
    let mut per_namespace: Vec<NamespaceWrites> = vec![Vec::new(); watches];
    for write in &log.writes {
        if let Some(list) = per_namespace.get_mut(write.namespace as usize) {
            list.push((write.rv, write.unix_s));
        }
    }
    for list in &mut per_namespace {
        list.sort_by_key(|(rv, _)| *rv);
    }
    // The server's version at a time: the highest version answered by then.
    let mut by_time: Vec<(f64, u64)> = log.writes.iter().map(|w| (w.unix_s, w.rv)).collect();
    by_time.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut highest = 0;
    for entry in &mut by_time {
        highest = highest.max(entry.1);
        entry.1 = highest;
    }
    let server_rv_at = |t: f64| {
        let k = by_time.partition_point(|(at, _)| *at <= t);
        k.checked_sub(1).and_then(|k| by_time.get(k)).map_or(0, |e| e.1)
    };

    let start = facts.write_start_unix_s;
    let stop = facts.write_stop_unix_s;
    let lag_samples: Vec<LagSample> = samples
        .iter()
        .filter(|s| s.unix_s >= start)
        .map(|s| lag_at(s, start, &per_namespace, server_rv_at(s.unix_s)))
        .collect();
    let during: Vec<&LagSample> = lag_samples.iter().filter(|s| s.t_s <= stop - start).collect();

    let mut windows = Vec::new();
    let mut from = 0.0;
    while from < facts.seconds {
        let to = (from + WINDOW_SECONDS).min(facts.seconds);
        let in_window: Vec<&&LagSample> = during.iter().filter(|s| s.t_s > from && s.t_s <= to).collect();
        let writes = log
            .writes
            .iter()
            .filter(|w| w.unix_s - start > from && w.unix_s - start <= to)
            .count();
        windows.push(Window {
            from_s: from,
            to_s: to,
            writes_per_sec: writes as f64 / (to - from).max(f64::EPSILON),
            lag_versions_max: in_window.iter().map(|s| s.lag_versions_max).max().unwrap_or(0),
            lag_versions_p99: in_window.iter().map(|s| s.lag_versions_p99).max().unwrap_or(0),
            max_events_behind: in_window.iter().map(|s| s.max_events_behind).max().unwrap_or(0),
            oldest_undelivered_s: in_window
                .iter()
                .map(|s| s.oldest_undelivered_s)
                .fold(0.0, f64::max),
            rss_end_bytes: in_window.last().map_or(0, |s| s.rss_bytes),
        });
        from = to;
    }

    let gone: std::collections::BTreeSet<usize> = report.gone_watches.iter().copied().collect();
    let (mut wrong, mut lost, mut extra) = (0, 0, 0);
    for (index, writes) in per_namespace.iter().enumerate() {
        if gone.contains(&index) {
            continue;
        }
        let written = writes.len() as u64;
        let delivered = report.events.get(index).copied().unwrap_or(0);
        if written != delivered {
            wrong += 1;
        }
        lost += written.saturating_sub(delivered);
        extra += delivered.saturating_sub(written);
    }
    let cache_mismatches = (0..watches)
        .filter(|i| report.cache.get(*i) != facts.server_state.get(*i))
        .count();

    let samples_during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.unix_s >= start && s.unix_s <= stop)
        .collect();
    let slope_points: Vec<(f64, f64)> = samples_during
        .iter()
        .filter(|s| s.unix_s >= stop - SLOPE_SECONDS)
        .map(|s| (s.unix_s, s.rss_bytes as f64))
        .collect();
    let write_seconds = (stop - start).max(0.0);
    LoadFigures {
        writes: log.writes.len() as u64,
        creates: log.creates,
        updates: log.updates,
        deletes: log.deletes,
        write_seconds,
        writes_per_sec: log.writes.len() as f64 / write_seconds.max(f64::EPSILON),
        delivered: report.events.iter().sum(),
        watches_with_wrong_count: wrong,
        lost,
        extra,
        out_of_order: report.out_of_order,
        cache_mismatches,
        watcher: WatcherCounts {
            gones: report.gones,
            gone_watches: report.gone_watches.len(),
            relist_events: report.relist_events,
            resumes: report.resumes,
            retries: report.retries,
            skipped: report.skipped,
            failed: report.failed,
            messages: report.messages.clone(),
        },
        catch_up_seconds: report.caught_up_unix_s.map(|at| (at - stop).max(0.0)),
        rss_start_bytes: samples_during.first().map_or(0, |s| s.rss_bytes),
        rss_peak_sampled_bytes: samples_during.iter().map(|s| s.rss_bytes).max().unwrap_or(0),
        rss_hwm_bytes: report.peak_rss_bytes,
        rss_end_bytes: samples_during.last().map_or(0, |s| s.rss_bytes),
        rss_slope_last_20s_bytes_per_sec: slope(&slope_points),
        watcher_cpu_seconds: match (samples_during.first(), samples_during.last()) {
            (Some(first), Some(last)) => (last.cpu_seconds - first.cpu_seconds).max(0.0),
            _ => 0.0,
        },
        lag_versions_max_first_window: windows.first().map_or(0, |w| w.lag_versions_max),
        lag_versions_max_last_window: windows.last().map_or(0, |w| w.lag_versions_max),
        windows,
        samples: lag_samples,
        facts,
    }
}

/// Where the watches were at one sample.
fn lag_at(sample: &Sample, start: f64, per_namespace: &[NamespaceWrites], server_rv: u64) -> LagSample {
    let t = sample.unix_s;
    let mut lags = Vec::new();
    let mut max_behind = 0u64;
    let mut oldest = 0.0f64;
    for (writes, &at) in per_namespace.iter().zip(&sample.rvs) {
        let first_pending = writes.partition_point(|(rv, _)| *rv <= at);
        let pending = writes.get(first_pending..).unwrap_or_default();
        let behind = pending.partition_point(|(_, written)| *written <= t) as u64;
        if behind == 0 {
            continue;
        }
        lags.push(server_rv.saturating_sub(at));
        max_behind = max_behind.max(behind);
        if let Some((_, written)) = pending.first() {
            oldest = oldest.max(t - written);
        }
    }
    lags.sort_unstable();
    let as_f64: Vec<f64> = lags.iter().map(|v| *v as f64).collect();
    LagSample {
        t_s: t - start,
        server_rv,
        watches_behind: lags.len(),
        lag_versions_median: median(&as_f64).map_or(0, |v| v.round() as u64),
        lag_versions_p99: percentile(&lags, 0.99),
        lag_versions_max: lags.last().copied().unwrap_or(0),
        max_events_behind: max_behind,
        oldest_undelivered_s: oldest,
        rss_bytes: sample.rss_bytes,
    }
}

/// The `q` quantile of sorted values (nearest rank); 0 for none.
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).copied().unwrap_or(0)
}

/// The least-squares slope of `y` over `x`; `None` with fewer than two distinct `x`.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

impl LoadFigures {
    /// The figures as Markdown: a table of the totals and checks, then one row per window.
    pub fn markdown(&self) -> String {
        let f = &self.facts;
        let w = &self.watcher;
        let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0));
        let mut rows: Vec<(&str, String)> = vec![
            (
                "watches (one per namespace, one client)",
                thousands(f.watches as u64),
            ),
            ("writer tasks (HTTP, one client)", f.writers.to_string()),
            (
                "writes (create / update / delete)",
                format!(
                    "{} ({} / {} / {}) in {:.1} s",
                    thousands(self.writes),
                    thousands(self.creates),
                    thousands(self.updates),
                    thousands(self.deletes),
                    self.write_seconds
                ),
            ),
            (
                "write rate",
                format!("{} /s", thousands(self.writes_per_sec.round() as u64)),
            ),
            (
                "events delivered",
                format!(
                    "{} (expected {}: one per write to the watch's namespace)",
                    thousands(self.delivered),
                    thousands(self.writes)
                ),
            ),
            (
                "lost / extra / out of order",
                format!("{} / {} / {}", self.lost, self.extra, self.out_of_order),
            ),
            (
                "watches with a wrong count",
                self.watches_with_wrong_count.to_string(),
            ),
            (
                "caches differing from the server at the end",
                format!("{} of {}", self.cache_mismatches, f.watches),
            ),
            (
                "catch-up after the last write",
                self.catch_up_seconds
                    .map_or("did not catch up".to_owned(), |s| format!("{s:.2} s")),
            ),
            (
                "worst lag, first / last 10 s (versions)",
                format!(
                    "{} / {}",
                    thousands(self.lag_versions_max_first_window),
                    thousands(self.lag_versions_max_last_window)
                ),
            ),
            (
                "watcher RSS: start / peak sampled / end / VmHWM",
                format!(
                    "{} / {} / {} / {}",
                    mib(self.rss_start_bytes),
                    mib(self.rss_peak_sampled_bytes),
                    mib(self.rss_end_bytes),
                    mib(self.rss_hwm_bytes)
                ),
            ),
            (
                "watcher RSS slope, last 20 s of writes",
                self.rss_slope_last_20s_bytes_per_sec
                    .map_or("—".to_owned(), |s| format!("{:+.1} KiB/s", s / 1024.0)),
            ),
            (
                "watcher CPU during the writes",
                format!("{:.1} s", self.watcher_cpu_seconds),
            ),
            (
                "TCP connections: watcher / writers",
                format!("{} / {}", f.watcher_connections, f.writer_connections),
            ),
            (
                "Gone (watches) / relisted objects",
                format!("{} ({}) / {}", w.gones, w.gone_watches, w.relist_events),
            ),
            (
                "resumes / retries / skipped / failed",
                format!("{} / {} / {} / {}", w.resumes, w.retries, w.skipped, w.failed),
            ),
            (
                "watches the server ended for lagging",
                f.server_watches_lagged.to_string(),
            ),
            (
                "server history bound",
                format!("{} events", thousands(f.history_limit as u64)),
            ),
        ];
        if !w.messages.is_empty() {
            rows.push(("first messages", w.messages.join("; ")));
        }
        let mut out = String::from("| figure | value |\n|---|---:|\n");
        for (name, value) in rows {
            out.push_str(&format!("| {name} | {value} |\n"));
        }
        out.push_str(
            "\nPer 10 s of writes: lag in versions is the server's version minus a watch's last \
             delivered one, over the watches with undelivered writes at a sample (one a second).\n\n\
             | seconds | writes/s | lag max | lag p99 | most writes behind (one watch) | oldest undelivered | watcher RSS |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
        );
        for window in &self.windows {
            out.push_str(&format!(
                "| {:.0}–{:.0} | {} | {} | {} | {} | {:.2} s | {} |\n",
                window.from_s,
                window.to_s,
                thousands(window.writes_per_sec.round() as u64),
                thousands(window.lag_versions_max),
                thousands(window.lag_versions_p99),
                window.max_events_behind,
                window.oldest_undelivered_s,
                mib(window.rss_end_bytes),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::writers::Write;

    fn facts(watches: usize) -> RunFacts {
        RunFacts {
            watches,
            writers: 1,
            seconds: 20.0,
            write_start_unix_s: 1000.0,
            write_stop_unix_s: 1020.0,
            history_limit: 100,
            watcher_connections: 2,
            writer_connections: 1,
            server_watches_lagged: 0,
            server_state: vec![vec![("a".to_owned(), 12)], vec![]],
        }
    }

    fn write(namespace: u32, rv: u64, unix_s: f64) -> Write {
        Write {
            namespace,
            rv,
            unix_s,
        }
    }

    fn sample(unix_s: f64, rss_bytes: u64, rvs: Vec<u64>) -> Sample {
        Sample {
            unix_s,
            rss_bytes,
            cpu_seconds: unix_s - 1000.0,
            delivered: 0,
            rvs,
        }
    }

    #[test]
    fn a_watch_is_behind_by_the_writes_answered_before_the_sample_that_it_has_not_delivered() {
        // Namespace 0 gets versions 10, 11, 12 at 1001, 1002, 1003; namespace 1 gets 13 at 1004.
        let log = WriteLog {
            writes: vec![
                write(0, 10, 1001.0),
                write(0, 11, 1002.0),
                write(0, 12, 1003.0),
                write(1, 13, 1004.0),
            ],
            creates: 2,
            updates: 1,
            deletes: 1,
        };
        let samples = vec![
            // At 1003.5: watch 0 has 10 (11 and 12 pending), watch 1 nothing pending yet.
            sample(1003.5, 100, vec![10, 0]),
            // At 1004.5: watch 0 is done, watch 1 has 13 pending.
            sample(1004.5, 100, vec![12, 0]),
            sample(1010.0, 100, vec![12, 13]),
        ];
        let report = WatcherReport {
            events: vec![3, 1],
            cache: vec![vec![("a".to_owned(), 12)], vec![]],
            caught_up_unix_s: Some(1020.5),
            ..WatcherReport::default()
        };
        let figures = compute(facts(2), &log, &samples, &report);
        let first = figures.samples.first().cloned();
        assert_eq!(
            first.map(|s| (
                s.server_rv,
                s.watches_behind,
                s.lag_versions_max,
                s.max_events_behind
            )),
            Some((12, 1, 2, 2))
        );
        assert_eq!(figures.samples.first().map(|s| s.oldest_undelivered_s), Some(1.5));
        assert_eq!(
            figures
                .samples
                .get(1)
                .map(|s| (s.server_rv, s.lag_versions_max, s.max_events_behind)),
            Some((13, 13, 1))
        );
        assert_eq!(figures.samples.get(2).map(|s| s.watches_behind), Some(0));
        assert_eq!(
            (figures.lost, figures.extra, figures.watches_with_wrong_count),
            (0, 0, 0)
        );
        assert_eq!(figures.cache_mismatches, 0);
        assert_eq!(figures.catch_up_seconds, Some(0.5));
        assert_eq!(figures.windows.len(), 2);
        assert_eq!(
            figures
                .windows
                .first()
                .map(|w| (w.writes_per_sec, w.lag_versions_max)),
            Some((0.4, 13))
        );
        assert_eq!(figures.lag_versions_max_last_window, 0);
    }

    #[test]
    fn counts_that_differ_from_the_writes_are_lost_or_extra_except_for_watches_that_relisted() {
        let log = WriteLog {
            writes: vec![
                write(0, 10, 1001.0),
                write(0, 11, 1002.0),
                write(1, 12, 1003.0),
                write(2, 13, 1003.0),
            ],
            ..WriteLog::default()
        };
        let report = WatcherReport {
            events: vec![1, 2, 0],
            gone_watches: vec![2],
            cache: vec![vec![("a".to_owned(), 12)], vec![("b".to_owned(), 1)], vec![]],
            ..WatcherReport::default()
        };
        let mut facts = facts(3);
        facts.server_state.push(vec![]);
        let figures = compute(facts, &log, &[], &report);
        assert_eq!(
            (figures.lost, figures.extra, figures.watches_with_wrong_count),
            (1, 1, 2)
        );
        assert_eq!(
            figures.cache_mismatches, 1,
            "namespace 1's cache has a pod the server has not"
        );
        assert_eq!(figures.catch_up_seconds, None);
    }

    #[test]
    fn memory_slope_is_taken_over_the_last_twenty_seconds_of_writes() {
        let samples: Vec<Sample> = (0..=20)
            .map(|s| {
                sample(
                    1000.0 + f64::from(s),
                    if s < 5 {
                        1 << 20
                    } else {
                        (1 << 20) + 1000 * u64::from(s as u8)
                    },
                    vec![],
                )
            })
            .collect();
        let figures = compute(
            facts(0),
            &WriteLog::default(),
            &samples,
            &WatcherReport::default(),
        );
        assert_eq!(figures.rss_start_bytes, 1 << 20);
        assert_eq!(figures.rss_end_bytes, (1 << 20) + 20_000);
        let rss_slope = figures.rss_slope_last_20s_bytes_per_sec.unwrap_or(f64::NAN);
        assert!(rss_slope > 0.0, "{rss_slope}");
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), Some(2.0));
        assert_eq!(slope(&[(0.0, 1.0)]), None);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.99), 99);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.99), 0);
    }
}
