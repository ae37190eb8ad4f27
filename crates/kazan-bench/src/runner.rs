//! The harness side of a run: starts each consumer in its own process, round after round, in
//! alternation (A B A B ...), and collects what each reports.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::{consumers::Consumer, error::BenchError, job::ChildReport, job::Job};

/// What a scenario does around each consumer run, on the harness side.
pub trait Hooks: Sync {
    /// The job for run `run` (counted over the whole scenario) before its process starts: a
    /// scenario on a live server gives each run fresh namespaces and a start version.
    fn prepare(
        &self,
        _run: u64,
        job: &Job,
    ) -> impl std::future::Future<Output = Result<Job, BenchError>> + Send {
        let job = job.clone();
        async move { Ok(job) }
    }

    /// Runs beside the consumer process (writes to the server, say); the run fails if this fails.
    fn during(&self, _job: &Job) -> impl std::future::Future<Output = Result<(), BenchError>> + Send {
        async { Ok(()) }
    }

    /// Completes the consumer's report with what the harness saw.
    fn finish(&self, _job: &Job, _report: &mut ChildReport) {}
}

/// A scenario that does nothing around its runs.
#[derive(Debug, Clone, Copy)]
pub struct NoHooks;

impl Hooks for NoHooks {}

/// One consumer's part in a scenario: what it is asked to do, and where to count the server's
/// accepted connections (if the scenario reports them).
#[derive(Debug, Clone)]
pub struct Entry {
    /// The consumer.
    pub consumer: Consumer,
    /// Its job, the same every round.
    pub job: Job,
    /// The server's counter of accepted connections; the difference over a run is reported.
    pub connections: Option<Arc<AtomicU64>>,
}

/// What one consumer did over all rounds.
#[derive(Debug, Clone)]
pub struct Runs {
    /// The consumer.
    pub consumer: Consumer,
    /// Events it was asked for each round.
    pub events: u64,
    /// One report per successful round.
    pub reports: Vec<ChildReport>,
    /// Why a round failed, or why the consumer did not run at all.
    pub failures: Vec<String>,
}

/// Starts consumer processes.
#[derive(Debug, Clone)]
pub struct Runner {
    /// This binary, re-executed for the Rust consumers.
    pub exe: PathBuf,
    /// How many rounds each scenario runs.
    pub rounds: u32,
    /// The longest one consumer run may take before it is killed.
    pub timeout: Duration,
    /// Only these consumers run (all of a scenario's when empty).
    pub only: Vec<Consumer>,
    /// A program (and its arguments) the Rust consumers run under, for profiling: from
    /// `KAZAN_BENCH_WRAP`, split on whitespace (e.g. `heaptrack -o /tmp/consumer`).
    pub wrap: Vec<String>,
}

impl Runner {
    /// Runs every entry once per round, alternating, and returns their runs in entry order.
    /// A consumer that cannot run here (see [`Consumer::available`]) is reported, not run.
    pub async fn run_rounds(&self, entries: &[Entry], hooks: &impl Hooks) -> Vec<Runs> {
        let mut runs = Vec::with_capacity(entries.len());
        let mut runnable = Vec::with_capacity(entries.len());
        let selected = |e: &&Entry| self.only.is_empty() || self.only.contains(&e.consumer);
        let entries: Vec<&Entry> = entries.iter().filter(selected).collect();
        for entry in &entries {
            let availability = entry.consumer.available().await;
            runnable.push(availability.is_ok());
            runs.push(Runs {
                consumer: entry.consumer,
                events: entry.job.events,
                reports: Vec::new(),
                failures: availability.err().into_iter().collect(),
            });
        }
        let mut run = 0;
        for round in 1..=self.rounds {
            for ((entry, runs), runnable) in entries.iter().zip(&mut runs).zip(&runnable) {
                if !runnable {
                    continue;
                }
                eprintln!(
                    "  round {round}/{}: {} ({} events)",
                    self.rounds,
                    entry.consumer.name(),
                    entry.job.events
                );
                run += 1;
                match self.run_once(entry, hooks, run).await {
                    Ok(report) => runs.reports.push(report),
                    Err(error) => {
                        eprintln!("  {error}");
                        runs.failures.push(error.to_string());
                    }
                }
            }
        }
        runs
    }

    /// Runs one consumer process to the end, with the scenario's hooks around it, and reads its
    /// report.
    pub async fn run_once(
        &self,
        entry: &Entry,
        hooks: &impl Hooks,
        run: u64,
    ) -> Result<ChildReport, BenchError> {
        let consumer = entry.consumer.name().to_owned();
        let job = hooks.prepare(run, &entry.job).await?;
        let mut command = entry.consumer.command(&self.exe, &job, &self.wrap);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let connections_before = entry.connections.as_ref().map(|c| c.load(Ordering::Relaxed));
        // This process is the server's (and the writers'), and otherwise waits for the child.
        let server_cpu_before = crate::measure::cpu_seconds();
        let child = command.spawn().map_err(|source| BenchError::Spawn {
            consumer: consumer.clone(),
            program: format!("{:?}", command.as_std().get_program()),
            source,
        })?;
        let wait = tokio::time::timeout(self.timeout, child.wait_with_output());
        tokio::pin!(wait);
        let during = hooks.during(&job);
        tokio::pin!(during);
        let mut during_done = false;
        // Dropping `wait` on an error of `during` kills the child (`kill_on_drop`).
        let output = loop {
            tokio::select! {
                result = &mut during, if !during_done => {
                    result?;
                    during_done = true;
                }
                output = &mut wait => break output,
            }
        };
        let output = output
            .map_err(|_| BenchError::ChildTimeout {
                consumer: consumer.clone(),
                seconds: self.timeout.as_secs(),
            })?
            .map_err(|source| BenchError::Spawn {
                consumer: consumer.clone(),
                program: format!("{:?}", command.as_std().get_program()),
                source,
            })?;
        if !output.status.success() {
            return Err(BenchError::ChildFailed {
                consumer,
                status: output.status,
            });
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        let mut report: ChildReport =
            serde_json::from_str(line).map_err(|source| BenchError::ChildReport {
                consumer,
                line: line.chars().take(200).collect(),
                source,
            })?;
        if entry.consumer.uses_a_server() {
            report.server_cpu_seconds = Some((crate::measure::cpu_seconds() - server_cpu_before).max(0.0));
        }
        if let (Some(counter), Some(before)) = (&entry.connections, connections_before) {
            report.connections = Some(counter.load(Ordering::Relaxed).saturating_sub(before));
        }
        hooks.finish(&job, &mut report);
        Ok(report)
    }
}
