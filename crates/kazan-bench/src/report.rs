//! The results: medians over rounds, ratios to the reference consumer, a Markdown table per
//! scenario and the JSON file.

use serde::Serialize;

use crate::{
    consumers::Consumer,
    job::ChildReport,
    load::figures::LoadFigures,
    runner::Runs,
    stats::{median, ratio, thousands},
};

/// One consumer's figures in one scenario: medians over its successful rounds. Fields that do not
/// apply to the scenario are `None` (`null` in JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResultRow {
    /// The consumer's name.
    pub consumer: String,
    /// Events it was asked for each round.
    pub events: u64,
    /// Rounds that succeeded.
    pub rounds: usize,
    /// Events per second, from the first request to the last expected event.
    pub events_per_sec: Option<f64>,
    /// `events_per_sec` over the reference's (higher is better).
    pub events_per_sec_ratio: Option<f64>,
    /// Seconds from the first request to the last expected event.
    pub seconds: Option<f64>,
    /// `seconds` over the reference's (lower is better).
    pub seconds_ratio: Option<f64>,
    /// User + system CPU seconds over the same span.
    pub cpu_seconds: Option<f64>,
    /// CPU microseconds per event.
    pub cpu_us_per_event: Option<f64>,
    /// `cpu_us_per_event` over the reference's (lower is better).
    pub cpu_per_event_ratio: Option<f64>,
    /// CPU microseconds per event the server (the harness process) used while this consumer
    /// ran: with the consumer's own, what one event costs the machine.
    pub server_cpu_us_per_event: Option<f64>,
    /// Peak resident memory of the consumer process, in bytes.
    pub peak_rss_bytes: Option<u64>,
    /// `peak_rss_bytes` over the reference's (lower is better).
    pub peak_rss_ratio: Option<f64>,
    /// TCP connections the server accepted during a run.
    pub connections: Option<u64>,
    /// Median gap, in milliseconds, from the end of one watch to the first event of the next.
    pub gap_ms: Option<f64>,
    /// `gap_ms` over the reference's (lower is better).
    pub gap_ratio: Option<f64>,
    /// Expected events that never arrived, at worst over the rounds.
    pub lost: Option<u64>,
    /// Events that arrived again or out of order, at worst over the rounds.
    pub repeated: Option<u64>,
    /// Errors the watcher reported and recovered from, at worst over the rounds.
    pub errors: Option<u64>,
    /// Peak resident memory after N events (slow consumer).
    pub peak_rss_at_n_bytes: Option<u64>,
    /// Peak resident memory after 4N events (slow consumer).
    pub peak_rss_at_4n_bytes: Option<u64>,
    /// How much the peak grew from N to 4N, in percent.
    pub rss_growth_percent: Option<f64>,
    /// Why rounds failed, or why the consumer did not run.
    pub failures: Vec<String>,
    /// Cache: the consumer this row's ratios are taken against (its kube-runtime peer).
    pub reference: Option<String>,
    /// Cache: seconds from the first request to the synced store.
    pub sync_seconds: Option<f64>,
    /// Cache: `sync_seconds` over the reference's (lower is better).
    pub sync_seconds_ratio: Option<f64>,
    /// Cache: CPU seconds until the synced store.
    pub sync_cpu_seconds: Option<f64>,
    /// Cache: `sync_cpu_seconds` over the reference's (lower is better).
    pub sync_cpu_ratio: Option<f64>,
    /// Cache: resident memory once settled after the sync.
    pub steady_rss_bytes: Option<u64>,
    /// Cache: `steady_rss_bytes` over the reference's (lower is better).
    pub steady_rss_ratio: Option<f64>,
    /// Cache: `steady_rss_bytes` over kube-runtime's plain reflector's, whatever the reference.
    pub steady_rss_vs_plain: Option<f64>,
    /// Cache: peak resident memory from the settled state through the relist and the writes.
    pub relist_peak_rss_bytes: Option<u64>,
    /// Cache: `relist_peak_rss_bytes` over this consumer's own `steady_rss_bytes`.
    pub relist_peak_over_steady: Option<f64>,
    /// Cache: the bytes the store counts itself (kazan's compact store).
    pub store_bytes: Option<u64>,
    /// Cache: seconds from the settled state to the end of the relist.
    pub relist_seconds: Option<f64>,
    /// Cache: CPU seconds over the relist.
    pub relist_cpu_seconds: Option<f64>,
    /// Cache: objects in the store at the end, at worst over the rounds.
    pub objects: Option<u64>,
}

impl ResultRow {
    /// The medians of `runs`. Lost and repeated counts are the worst round's, not the median.
    pub fn from_runs(runs: &Runs) -> Self {
        let reports = &runs.reports;
        let med = |field: fn(&ChildReport) -> Option<f64>| {
            median(&reports.iter().filter_map(field).collect::<Vec<_>>())
        };
        let med_u64 = |field: fn(&ChildReport) -> Option<u64>| {
            let values: Vec<f64> = reports.iter().filter_map(field).map(|v| v as f64).collect();
            median(&values).map(|v| v.round() as u64)
        };
        let cpu_seconds = med(|r| Some(r.cpu_seconds));
        let cpu_us_per_event = med(|r| (r.events > 0).then(|| r.cpu_seconds * 1e6 / r.events as f64));
        let server_cpu_us_per_event = med(|r| {
            r.server_cpu_seconds
                .filter(|_| r.events > 0)
                .map(|cpu| cpu * 1e6 / r.events as f64)
        });
        let peak_rss_at_n_bytes = med_u64(|r| r.peak_rss_at_checkpoint_bytes);
        let peak_rss_bytes = med_u64(|r| Some(r.peak_rss_bytes));
        let has_checkpoint = reports.iter().any(|r| r.peak_rss_at_checkpoint_bytes.is_some());
        let worst = |field: fn(&ChildReport) -> u64| reports.iter().map(field).max();
        ResultRow {
            consumer: runs.consumer.name().to_owned(),
            events: runs.events,
            rounds: reports.len(),
            events_per_sec: med(|r| (r.seconds > 0.0).then(|| r.events as f64 / r.seconds)),
            seconds: med(|r| Some(r.seconds)),
            cpu_seconds,
            cpu_us_per_event,
            server_cpu_us_per_event,
            peak_rss_bytes,
            connections: med_u64(|r| r.connections),
            gap_ms: med(|r| r.gap_ms),
            lost: worst(|r| r.lost),
            repeated: worst(|r| r.repeated),
            errors: worst(|r| r.errors),
            peak_rss_at_n_bytes,
            peak_rss_at_4n_bytes: if has_checkpoint { peak_rss_bytes } else { None },
            rss_growth_percent: match (peak_rss_at_n_bytes, peak_rss_bytes) {
                (Some(at_n), Some(at_end)) if has_checkpoint && at_n > 0 => {
                    Some((at_end as f64 / at_n as f64 - 1.0) * 100.0)
                }
                _ => None,
            },
            failures: runs.failures.clone(),
            ..ResultRow::default()
        }
    }

    /// Fills in every ratio against `reference`.
    pub fn set_ratios(&mut self, reference: &ResultRow) {
        let as_f64 = |v: Option<u64>| v.map(|v| v as f64);
        self.events_per_sec_ratio = ratio(self.events_per_sec, reference.events_per_sec);
        self.seconds_ratio = ratio(self.seconds, reference.seconds);
        self.cpu_per_event_ratio = ratio(self.cpu_us_per_event, reference.cpu_us_per_event);
        self.peak_rss_ratio = ratio(as_f64(self.peak_rss_bytes), as_f64(reference.peak_rss_bytes));
        self.gap_ratio = ratio(self.gap_ms, reference.gap_ms);
    }
}

/// The rows of a scenario, with ratios against the reference consumer (when it has figures).
pub fn rows_with_ratios(runs: &[Runs]) -> Vec<ResultRow> {
    let mut rows: Vec<ResultRow> = runs.iter().map(ResultRow::from_runs).collect();
    let reference = rows
        .iter()
        .find(|row| row.consumer == Consumer::REFERENCE.name() && row.rounds > 0)
        .cloned();
    if let Some(reference) = reference {
        for row in &mut rows {
            row.set_ratios(&reference);
        }
    }
    rows
}

/// A column of a scenario's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// The consumer's name.
    Consumer,
    /// Events per round.
    Events,
    /// Events per second.
    EventsPerSec,
    /// Events per second over the reference's.
    EventsPerSecRatio,
    /// Seconds until the last expected event.
    Seconds,
    /// Seconds over the reference's.
    SecondsRatio,
    /// CPU seconds.
    CpuSeconds,
    /// CPU microseconds per event.
    CpuPerEvent,
    /// CPU per event over the reference's.
    CpuPerEventRatio,
    /// The server's CPU per event while the consumer ran.
    ServerCpuPerEvent,
    /// Peak RSS.
    PeakRss,
    /// Peak RSS over the reference's.
    PeakRssRatio,
    /// Connections accepted by the server.
    Connections,
    /// Median resume gap.
    GapMs,
    /// Gap over the reference's.
    GapRatio,
    /// Lost and repeated events.
    Check,
    /// Errors retried.
    Errors,
    /// Peak RSS at N.
    RssAtN,
    /// Peak RSS at 4N.
    RssAt4N,
    /// Growth from N to 4N.
    RssGrowth,
    /// Cache: the row's reference consumer.
    Reference,
    /// Cache: seconds to the synced store.
    SyncSeconds,
    /// Cache: over the reference's.
    SyncSecondsRatio,
    /// Cache: CPU seconds to the synced store.
    SyncCpu,
    /// Cache: over the reference's.
    SyncCpuRatio,
    /// Cache: steady RSS after the sync.
    SteadyRss,
    /// Cache: over the reference's.
    SteadyRssRatio,
    /// Cache: steady RSS over kube-runtime's plain reflector's.
    SteadyRssVsPlain,
    /// Cache: peak RSS through the relist.
    RelistPeakRss,
    /// Cache: over the consumer's own steady RSS.
    RelistPeakOverSteady,
    /// Cache: bytes the store counts.
    StoreBytes,
    /// Cache: seconds of the relist.
    RelistSeconds,
}

impl Column {
    fn header(self) -> String {
        let reference = Consumer::REFERENCE.name();
        match self {
            Column::Consumer => "consumer".to_owned(),
            Column::Events => "events".to_owned(),
            Column::EventsPerSec => "events/s".to_owned(),
            Column::EventsPerSecRatio => format!("events/s ÷ {reference} (higher is better)"),
            Column::Seconds => "seconds".to_owned(),
            Column::SecondsRatio => format!("time ÷ {reference} (lower is better)"),
            Column::CpuSeconds => "CPU s".to_owned(),
            Column::CpuPerEvent => "CPU µs/event".to_owned(),
            Column::CpuPerEventRatio => format!("CPU/event ÷ {reference} (lower is better)"),
            Column::ServerCpuPerEvent => "server CPU µs/event".to_owned(),
            Column::PeakRss => "peak RSS".to_owned(),
            Column::PeakRssRatio => format!("peak RSS ÷ {reference} (lower is better)"),
            Column::Connections => "TCP connections".to_owned(),
            Column::GapMs => "median gap ms".to_owned(),
            Column::GapRatio => format!("gap ÷ {reference} (lower is better)"),
            Column::Check => "lost / repeated".to_owned(),
            Column::Errors => "errors retried".to_owned(),
            Column::RssAtN => "peak RSS at N".to_owned(),
            Column::RssAt4N => "peak RSS at 4N".to_owned(),
            Column::RssGrowth => "growth N→4N".to_owned(),
            Column::Reference => "against".to_owned(),
            Column::SyncSeconds => "time to sync s".to_owned(),
            Column::SyncSecondsRatio => "time ÷ against".to_owned(),
            Column::SyncCpu => "CPU to sync s".to_owned(),
            Column::SyncCpuRatio => "CPU ÷ against".to_owned(),
            Column::SteadyRss => "steady RSS".to_owned(),
            Column::SteadyRssRatio => "steady RSS ÷ against".to_owned(),
            Column::SteadyRssVsPlain => "steady RSS ÷ kube-reflector".to_owned(),
            Column::RelistPeakRss => "peak RSS in relist".to_owned(),
            Column::RelistPeakOverSteady => "relist peak ÷ own steady".to_owned(),
            Column::StoreBytes => "store bytes".to_owned(),
            Column::RelistSeconds => "relist s".to_owned(),
        }
    }

    fn cell(self, row: &ResultRow) -> String {
        let or_dash = |value: Option<String>| value.unwrap_or_else(|| "—".to_owned());
        match self {
            Column::Consumer => row.consumer.clone(),
            Column::Events => thousands(row.events),
            Column::EventsPerSec => or_dash(row.events_per_sec.map(|v| thousands(v.round() as u64))),
            Column::EventsPerSecRatio => or_dash(row.events_per_sec_ratio.map(times)),
            Column::Seconds => or_dash(row.seconds.map(|v| format!("{v:.3}"))),
            Column::SecondsRatio => or_dash(row.seconds_ratio.map(times)),
            Column::CpuSeconds => or_dash(row.cpu_seconds.map(|v| format!("{v:.2}"))),
            Column::CpuPerEvent => or_dash(row.cpu_us_per_event.map(|v| format!("{v:.1}"))),
            Column::CpuPerEventRatio => or_dash(row.cpu_per_event_ratio.map(times)),
            Column::ServerCpuPerEvent => or_dash(row.server_cpu_us_per_event.map(|v| format!("{v:.1}"))),
            Column::PeakRss => or_dash(row.peak_rss_bytes.map(mib)),
            Column::PeakRssRatio => or_dash(row.peak_rss_ratio.map(times)),
            Column::Connections => or_dash(row.connections.map(thousands)),
            Column::GapMs => or_dash(row.gap_ms.map(|v| format!("{v:.3}"))),
            Column::GapRatio => or_dash(row.gap_ratio.map(times)),
            Column::Check => match (row.lost, row.repeated) {
                (Some(lost), Some(repeated)) => format!("{lost} / {repeated}"),
                _ => "—".to_owned(),
            },
            Column::Errors => or_dash(row.errors.map(thousands)),
            Column::RssAtN => or_dash(row.peak_rss_at_n_bytes.map(mib)),
            Column::RssAt4N => or_dash(row.peak_rss_at_4n_bytes.map(mib)),
            Column::RssGrowth => or_dash(row.rss_growth_percent.map(|v| format!("{v:+.1} %"))),
            Column::Reference => or_dash(row.reference.clone()),
            Column::SyncSeconds => or_dash(row.sync_seconds.map(|v| format!("{v:.2}"))),
            Column::SyncSecondsRatio => or_dash(row.sync_seconds_ratio.map(times)),
            Column::SyncCpu => or_dash(row.sync_cpu_seconds.map(|v| format!("{v:.2}"))),
            Column::SyncCpuRatio => or_dash(row.sync_cpu_ratio.map(times)),
            Column::SteadyRss => or_dash(row.steady_rss_bytes.map(mib)),
            Column::SteadyRssRatio => or_dash(row.steady_rss_ratio.map(times)),
            Column::SteadyRssVsPlain => or_dash(row.steady_rss_vs_plain.map(times)),
            Column::RelistPeakRss => or_dash(row.relist_peak_rss_bytes.map(mib)),
            Column::RelistPeakOverSteady => or_dash(row.relist_peak_over_steady.map(times)),
            Column::StoreBytes => or_dash(row.store_bytes.map(mib)),
            Column::RelistSeconds => or_dash(row.relist_seconds.map(|v| format!("{v:.2}"))),
        }
    }
}

/// One scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// The scenario's name.
    pub name: String,
    /// What was run, in a sentence: sizes, options.
    pub description: String,
    /// One row per consumer, reference first.
    pub results: Vec<ResultRow>,
    /// The table's columns.
    #[serde(skip)]
    pub columns: Vec<Column>,
    /// The load scenario's figures (lag and memory over time, checks), which no table of
    /// consumers holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<Box<LoadFigures>>,
}

impl ScenarioReport {
    /// The scenario as a Markdown section: a heading, the description, the table and any failures.
    pub fn markdown(&self) -> String {
        let mut out = format!("### {}\n\n{}\n\n", self.name, self.description);
        if let Some(load) = &self.load {
            out.push_str(&load.markdown());
            return out;
        }
        let headers: Vec<String> = self.columns.iter().map(|c| c.header()).collect();
        out.push_str(&format!("| {} |\n", headers.join(" | ")));
        let rule: Vec<&str> = self
            .columns
            .iter()
            .map(|c| if *c == Column::Consumer { "---" } else { "---:" })
            .collect();
        out.push_str(&format!("|{}|\n", rule.join("|")));
        for row in &self.results {
            let cells: Vec<String> = self.columns.iter().map(|c| c.cell(row)).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        let failures: Vec<String> = self
            .results
            .iter()
            .flat_map(|row| {
                row.failures
                    .iter()
                    .map(move |f| format!("- {}: {f}\n", row.consumer))
            })
            .collect();
        if !failures.is_empty() {
            out.push_str("\nNot measured or failed:\n\n");
            out.extend(failures);
        }
        out
    }
}

fn times(value: f64) -> String {
    format!("{value:.2}×")
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(consumer: &str, events: u64, seconds: f64, cpu: f64, rss: u64) -> ChildReport {
        ChildReport {
            consumer: consumer.to_owned(),
            events,
            seconds,
            cpu_seconds: cpu,
            peak_rss_bytes: rss,
            last_rv: Some(events + 1),
            lost: 0,
            repeated: 0,
            errors: 0,
            gap_ms: None,
            gaps: 0,
            peak_rss_at_checkpoint_bytes: None,
            finished_unix_s: None,
            connections: None,
            server_cpu_seconds: None,
        }
    }

    fn runs(consumer: Consumer, reports: Vec<ChildReport>) -> Runs {
        Runs {
            consumer,
            events: reports.first().map_or(0, |r| r.events),
            reports,
            failures: Vec::new(),
        }
    }

    #[test]
    fn rows_hold_medians_over_rounds_and_ratios_to_kube_runtime() {
        let kube = runs(
            Consumer::KubeRuntime,
            vec![
                report("kube-runtime", 1000, 1.0, 2.0, 10 << 20),
                report("kube-runtime", 1000, 2.0, 1.0, 30 << 20),
                report("kube-runtime", 1000, 4.0, 4.0, 20 << 20),
            ],
        );
        let python = runs(
            Consumer::Python,
            vec![
                report("python", 100, 1.0, 1.0, 40 << 20),
                report("python", 100, 2.0, 2.0, 40 << 20),
            ],
        );
        let rows = rows_with_ratios(&[kube, python]);
        let [kube, python] = rows.as_slice() else {
            panic!("two rows expected, got {rows:?}");
        };
        // kube-runtime: 1000, 500, 250 events/s → 500; CPU 2, 1, 4 s → 2 s → 2000 µs/event.
        assert_eq!(kube.events_per_sec, Some(500.0));
        assert_eq!(kube.cpu_us_per_event, Some(2000.0));
        assert_eq!(kube.peak_rss_bytes, Some(20 << 20));
        assert_eq!(kube.events_per_sec_ratio, Some(1.0));
        // python: 100 and 50 events/s → 75; 10,000 and 20,000 µs/event → 15,000.
        assert_eq!(python.events_per_sec, Some(75.0));
        assert_eq!(python.events_per_sec_ratio, Some(0.15));
        assert_eq!(python.cpu_per_event_ratio, Some(7.5));
        assert_eq!(python.peak_rss_ratio, Some(2.0));
    }

    #[test]
    fn without_a_reference_there_are_no_ratios() {
        let python = runs(Consumer::Python, vec![report("python", 100, 1.0, 1.0, 1)]);
        let rows = rows_with_ratios(&[python]);
        assert_eq!(rows.first().and_then(|r| r.events_per_sec_ratio), None);
    }

    #[test]
    fn memory_growth_is_measured_from_the_checkpoint_to_the_end() {
        let mut at_end = report("kube-runtime", 4000, 1.0, 1.0, 11 << 20);
        at_end.peak_rss_at_checkpoint_bytes = Some(10 << 20);
        let row = ResultRow::from_runs(&runs(Consumer::KubeRuntime, vec![at_end]));
        assert_eq!(row.peak_rss_at_n_bytes, Some(10 << 20));
        assert_eq!(row.peak_rss_at_4n_bytes, Some(11 << 20));
        let growth = row.rss_growth_percent.unwrap_or(f64::NAN);
        assert!((growth - 10.0).abs() < 1e-9, "{growth}");
    }

    #[test]
    fn the_servers_cpu_is_per_event_and_a_median_over_the_rounds_that_measured_it() {
        let with_server = |cpu: Option<f64>| {
            let mut r = report("kazan-channel", 1_000, 1.0, 1.0, 1);
            r.server_cpu_seconds = cpu;
            r
        };
        let row = ResultRow::from_runs(&runs(
            Consumer::KazanChannel,
            vec![
                with_server(Some(0.004)),
                with_server(None),
                with_server(Some(0.010)),
            ],
        ));
        let per_event = row.server_cpu_us_per_event.unwrap_or(f64::NAN);
        assert!((per_event - 7.0).abs() < 1e-9, "{per_event}");
        let row = ResultRow::from_runs(&runs(Consumer::KazanChannel, vec![with_server(None)]));
        assert_eq!(row.server_cpu_us_per_event, None);
        assert_eq!(Column::ServerCpuPerEvent.cell(&row), "—");
    }

    #[test]
    fn lost_and_repeated_are_the_worst_round() {
        let mut bad = report("python", 10, 1.0, 1.0, 1);
        bad.lost = 3;
        let row = ResultRow::from_runs(&runs(
            Consumer::Python,
            vec![report("python", 10, 1.0, 1.0, 1), bad],
        ));
        assert_eq!((row.lost, row.repeated), (Some(3), Some(0)));
    }

    #[test]
    fn the_markdown_table_has_a_header_a_rule_and_one_line_per_consumer() {
        let scenario = ScenarioReport {
            name: "throughput".to_owned(),
            description: "N events.".to_owned(),
            results: rows_with_ratios(&[runs(
                Consumer::KubeRuntime,
                vec![report("kube-runtime", 100_000, 2.0, 1.6, 9 << 20)],
            )]),
            columns: vec![
                Column::Consumer,
                Column::EventsPerSec,
                Column::EventsPerSecRatio,
                Column::PeakRss,
            ],
            load: None,
        };
        let markdown = scenario.markdown();
        let table: Vec<&str> = markdown.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(
            table,
            [
                "| consumer | events/s | events/s ÷ kube-runtime (higher is better) | peak RSS |",
                "|---|---:|---:|---:|",
                "| kube-runtime | 50,000 | 1.00× | 9.0 MiB |",
            ]
        );
    }

    #[test]
    fn large_numbers_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(63_000), "63,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
