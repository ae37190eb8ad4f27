//! What the harness asks of one consumer process, and what the process reports back.
//!
//! The parent turns a [`Job`] into command-line flags ([`Job::to_args`]); a Rust consumer parses
//! them back with clap, the Python consumer with argparse. The child prints one [`ChildReport`] as
//! a JSON line on stdout.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The scenarios, by the names the command line takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioName {
    /// A replay server streams N events as fast as the socket takes them.
    Throughput,
    /// 1,000 concurrent watches on the embedded API server, then a burst of writes.
    ManyWatches,
    /// The server ends each watch cleanly after every K events; the consumer resumes.
    Resume,
    /// A consumer slower than the stream; its memory must stay flat.
    SlowConsumer,
    /// 2,000 concurrent watches on the embedded API server under writes as fast as it accepts them
    /// for 60 s: lag and memory over time (issue 7). Runs only when named.
    Load,
    /// N pods listed into each consumer's cache, then one forced relist under writes: time to
    /// sync, CPU, steady and relist memory (issue 18). Runs only when named.
    Cache,
}

impl ScenarioName {
    /// The scenarios a run without `--scenario` runs, in order (`load`, a reliability run rather
    /// than a comparison, and `cache`, which holds gigabytes, run only when named).
    pub const ALL: [ScenarioName; 4] = [
        ScenarioName::Throughput,
        ScenarioName::ManyWatches,
        ScenarioName::Resume,
        ScenarioName::SlowConsumer,
    ];

    /// The name on the command line and in the results.
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioName::Throughput => "throughput",
            ScenarioName::ManyWatches => "many-watches",
            ScenarioName::Resume => "resume",
            ScenarioName::SlowConsumer => "slow-consumer",
            ScenarioName::Load => "load",
            ScenarioName::Cache => "cache",
        }
    }
}

/// One consumer run: where to watch, what to expect, and how to behave.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct Job {
    /// The scenario this run belongs to.
    #[arg(long, value_enum)]
    pub scenario: ScenarioName,
    /// The server to watch, e.g. `http://127.0.0.1:PORT` (none for the decode bound).
    #[arg(long)]
    pub server: Option<String>,
    /// A PEM file with the CA that signed the server's certificate (TLS scenarios).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// The resourceVersion of the first expected event; the watch starts just before it.
    #[arg(long)]
    pub first_rv: u64,
    /// How many events to expect (resourceVersions `first_rv ..= first_rv + events - 1`).
    #[arg(long)]
    pub events: u64,
    /// The server ends each watch after this many events: time the gap at every boundary.
    #[arg(long)]
    pub gap_every: Option<u64>,
    /// Be slow: sleep after every this many events...
    #[arg(long)]
    pub pace_every: Option<u64>,
    /// ...for this many microseconds.
    #[arg(long)]
    pub pace_sleep_us: Option<u64>,
    /// Also read the peak RSS after this many events.
    #[arg(long)]
    pub checkpoint: Option<u64>,
    /// The pod JSON the events are built from (decode bound; defaults to the shipped pod).
    #[arg(long)]
    pub pod: Option<PathBuf>,
    /// Watch this many namespaces, `{namespace_prefix}0` ... (one watch each) instead of all
    /// namespaces with one watch; `events` are spread evenly over them.
    #[arg(long)]
    pub watches: Option<u64>,
    /// The prefix of the watched namespaces' names.
    #[arg(long)]
    pub namespace_prefix: Option<String>,
    /// resourceVersions need not be contiguous: a real server shares its counter across
    /// resources, so only the count and the order of each watch's events are checked.
    #[arg(long)]
    pub sparse_rvs: bool,
}

impl Job {
    /// The server's URL, parsed (what every consumer's client is built from).
    pub fn server_url(&self) -> Result<http::Uri, crate::error::ConsumeError> {
        let url = self.server.clone().unwrap_or_default();
        url.parse()
            .map_err(|e: http::uri::InvalidUri| crate::error::ConsumeError::ServerUrl {
                url: url.clone(),
                reason: e.to_string(),
            })
    }

    /// A job for `scenario` expecting `events` events from resourceVersion `first_rv`.
    pub fn new(scenario: ScenarioName, first_rv: u64, events: u64) -> Self {
        Job {
            scenario,
            server: None,
            ca_file: None,
            first_rv,
            events,
            gap_every: None,
            pace_every: None,
            pace_sleep_us: None,
            checkpoint: None,
            pod: None,
            watches: None,
            namespace_prefix: None,
            sparse_rvs: false,
        }
    }

    /// The namespaces to watch, one watch each; `[None]` is one watch of all namespaces.
    pub fn scopes(&self) -> Vec<Option<String>> {
        match &self.namespace_prefix {
            Some(prefix) => (0..self.watches.unwrap_or(1).max(1))
                .map(|i| Some(format!("{prefix}{i}")))
                .collect(),
            None => vec![None],
        }
    }

    /// How many watches the job runs.
    pub fn watch_count(&self) -> usize {
        match &self.namespace_prefix {
            Some(_) => usize::try_from(self.watches.unwrap_or(1).max(1)).unwrap_or(usize::MAX),
            None => 1,
        }
    }

    /// Which of [`Job::scopes`] an object in `namespace` came through (0 when watching all).
    pub fn watch_index(&self, namespace: Option<&str>) -> usize {
        match (&self.namespace_prefix, namespace) {
            (Some(prefix), Some(namespace)) => namespace
                .strip_prefix(prefix.as_str())
                .and_then(|i| i.parse().ok())
                .unwrap_or(usize::MAX),
            (Some(_), None) => usize::MAX,
            (None, _) => 0,
        }
    }

    /// The resourceVersion of the last expected event.
    pub fn last_rv(&self) -> u64 {
        (self.first_rv + self.events).saturating_sub(1)
    }

    /// The job as command-line flags, the way [`clap::Args`] parses them back.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--scenario".to_owned(),
            self.scenario.as_str().to_owned(),
            "--first-rv".to_owned(),
            self.first_rv.to_string(),
            "--events".to_owned(),
            self.events.to_string(),
        ];
        let mut push = |flag: &str, value: Option<String>| {
            if let Some(value) = value {
                args.push(flag.to_owned());
                args.push(value);
            }
        };
        push("--server", self.server.clone());
        push(
            "--ca-file",
            self.ca_file.as_ref().map(|p| p.display().to_string()),
        );
        push("--gap-every", self.gap_every.map(|n| n.to_string()));
        push("--pace-every", self.pace_every.map(|n| n.to_string()));
        push("--pace-sleep-us", self.pace_sleep_us.map(|n| n.to_string()));
        push("--checkpoint", self.checkpoint.map(|n| n.to_string()));
        push("--pod", self.pod.as_ref().map(|p| p.display().to_string()));
        push("--watches", self.watches.map(|n| n.to_string()));
        push("--namespace-prefix", self.namespace_prefix.clone());
        if self.sparse_rvs {
            args.push("--sparse-rvs".to_owned());
        }
        args
    }
}

/// What a consumer process measured, printed by it as one JSON line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildReport {
    /// The consumer's name.
    pub consumer: String,
    /// Events received (repeats included).
    pub events: u64,
    /// Seconds from the first request to the last expected event.
    pub seconds: f64,
    /// User + system CPU seconds over the same span.
    pub cpu_seconds: f64,
    /// Peak resident memory of the whole process (`VmHWM`), in bytes.
    pub peak_rss_bytes: u64,
    /// The highest resourceVersion received.
    pub last_rv: Option<u64>,
    /// Expected resourceVersions that never arrived.
    pub lost: u64,
    /// Events whose resourceVersion was not above every one before it.
    pub repeated: u64,
    /// Errors the consumer's watcher reported and recovered from.
    #[serde(default)]
    pub errors: u64,
    /// The median time, in milliseconds, from the last event of one watch to the first of the
    /// next (resume).
    #[serde(default)]
    pub gap_ms: Option<f64>,
    /// How many such gaps were timed.
    #[serde(default)]
    pub gaps: u64,
    /// Peak resident memory when the checkpoint was reached (slow consumer).
    #[serde(default)]
    pub peak_rss_at_checkpoint_bytes: Option<u64>,
    /// When the last expected event arrived, in seconds since the Unix epoch (the clock the
    /// harness shares with the consumer, to time a burst it wrote).
    #[serde(default)]
    pub finished_unix_s: Option<f64>,
    /// TCP connections the server accepted during the run (filled in by the parent).
    #[serde(default)]
    pub connections: Option<u64>,
    /// CPU seconds the harness process used while the consumer ran (filled in by the parent):
    /// the server the consumer reads from, which shares the machine's cores with it.
    #[serde(default)]
    pub server_cpu_seconds: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        job: Job,
    }

    #[test]
    fn a_job_survives_the_trip_through_command_line_flags() {
        let mut job = Job::new(ScenarioName::Resume, 2, 10_010);
        job.server = Some("http://127.0.0.1:4000".to_owned());
        job.gap_every = Some(10);
        job.pace_every = Some(5);
        job.pace_sleep_us = Some(1000);
        job.checkpoint = Some(100);
        job.ca_file = Some(PathBuf::from("/tmp/ca.pem"));
        job.watches = Some(3);
        job.namespace_prefix = Some("mw-".to_owned());
        job.sparse_rvs = true;
        let args = std::iter::once("x".to_owned()).chain(job.to_args());
        let parsed = Wrapper::try_parse_from(args).map(|w| w.job);
        assert_eq!(parsed.ok(), Some(job));
    }

    #[test]
    fn namespaced_jobs_watch_one_namespace_each_and_map_objects_back_to_their_watch() {
        let mut job = Job::new(ScenarioName::ManyWatches, 2, 30);
        assert_eq!(job.scopes(), [None]);
        assert_eq!(job.watch_index(Some("anything")), 0);
        job.watches = Some(3);
        job.namespace_prefix = Some("mw-".to_owned());
        assert_eq!(
            job.scopes(),
            [
                Some("mw-0".to_owned()),
                Some("mw-1".to_owned()),
                Some("mw-2".to_owned())
            ]
        );
        assert_eq!(job.watch_count(), 3);
        assert_eq!(job.watch_index(Some("mw-2")), 2);
        assert_eq!(job.watch_index(Some("other")), usize::MAX);
        assert_eq!(job.watch_index(None), usize::MAX);
    }

    #[test]
    fn the_last_expected_resource_version_follows_from_the_first_and_the_count() {
        assert_eq!(Job::new(ScenarioName::Throughput, 2, 100).last_rv(), 101);
    }
}
