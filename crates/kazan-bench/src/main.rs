//! kazan-bench: kazan's watcher side by side with its peers, in one run.
//!
//! `cargo run --release -p kazan-bench -- [--events N] [--rounds R] [--json FILE] [--scenario NAME]`
//! runs every scenario (or the one named; `--consumer` picks consumers, and `KAZAN_BENCH_WRAP` runs
//! the Rust ones under a profiler) and prints a Markdown table per scenario. Each consumer
//! runs in its own process (this binary re-executed with the hidden `consume` subcommand, or
//! `python3` for the Python client), so the CPU time and peak memory it reports are its own.
//! Every Rust consumer is built with the workspace's release profile and runs with the system
//! allocator, declared below so that no dependency can change it; the `mimalloc` feature swaps it
//! for mimalloc in every process (peers included), to see what an application that chose it gets.

mod child;
mod consumers;
mod error;
mod events;
mod job;
mod load;
mod machine;
mod measure;
mod replay;
mod report;
mod runner;
mod scenarios;
mod sink;
mod stats;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::{
    consumers::Consumer,
    error::BenchError,
    events::DEFAULT_POD,
    job::{Job, ScenarioName},
    load::scenario::LoadSettings,
    machine::Machine,
    report::ScenarioReport,
    runner::Runner,
    scenarios::Context,
};

/// The same allocator for every consumer: the system's (a library cannot choose it; the
/// application does, and a figure that depends on it is not the library's).
#[cfg(not(feature = "mimalloc"))]
#[global_allocator]
static ALLOCATOR: std::alloc::System = std::alloc::System;

/// With the `mimalloc` feature, mimalloc for every consumer alike: an experiment, since an
/// application may choose it (its frees from another thread are cheap, where glibc's are dear).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The allocator this build uses, as the report names it.
const ALLOCATOR_NAME: &str = if cfg!(feature = "mimalloc") {
    "mimalloc (the `mimalloc` feature)"
} else {
    "the system's (glibc malloc)"
};

/// kazan's watcher side by side with kube-runtime, a bare decode and the Python client.
#[derive(Debug, Parser)]
#[command(name = "kazan-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// N: events per throughput run (the other scenarios derive their sizes from it).
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Rounds per scenario; consumers alternate within each round and the tables give medians.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Also write the results to this file as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run only this scenario.
    #[arg(long, value_enum)]
    scenario: Option<ScenarioName>,
    /// Run only these consumers (repeat the flag, or separate with commas); every ratio needs
    /// kube-runtime among them.
    #[arg(long = "consumer", value_enum, value_delimiter = ',')]
    consumers: Vec<Consumer>,
    /// Build the events from this pod JSON instead of the shipped one.
    #[arg(long)]
    pod: Option<PathBuf>,
    /// Resume: the server ends each watch after this many events.
    #[arg(long, default_value_t = 10)]
    resume_every: u64,
    /// Resume: how many watches end in a run.
    #[arg(long, default_value_t = 1_000)]
    resume_closes: u64,
    /// Many watches and load: how many concurrent watches, one namespace each (default 1,000 for
    /// many-watches, 2,000 for load).
    #[arg(long)]
    watches: Option<u64>,
    /// Load: how many seconds the writers write.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Load: how many writer tasks (each waits for the server's answer before its next write).
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Kill a consumer run that takes longer than this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs one consumer on one job and prints its report (the harness starts these).
    #[command(hide = true)]
    Consume {
        /// The consumer.
        #[arg(long, value_enum)]
        consumer: Consumer,
        /// What it is asked to do.
        #[command(flatten)]
        job: Job,
    },
}

/// Everything the run produced, as the JSON file holds it.
#[derive(Debug, Serialize)]
struct Results {
    machine: Machine,
    allocator: &'static str,
    load_average_at_end: Option<String>,
    command: String,
    scenarios: Vec<ScenarioReport>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Consume { consumer, job }) = &cli.command {
        return match child::run(*consumer, job) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("kazan-bench {}: {error}", consumer.name());
                ExitCode::FAILURE
            }
        };
    }
    match run_harness(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(error) => {
            eprintln!("kazan-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the scenarios; `Ok(false)` when one of them could not run at all.
fn run_harness(cli: &Cli) -> Result<bool, BenchError> {
    let exe = std::env::current_exe().map_err(|source| BenchError::File {
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    let pod = match &cli.pod {
        Some(path) => std::fs::read_to_string(path).map_err(|source| BenchError::File {
            path: path.clone(),
            source,
        })?,
        None => DEFAULT_POD.to_owned(),
    };
    let context = Context {
        runner: Runner {
            exe,
            rounds: cli.rounds.max(1),
            timeout: Duration::from_secs(cli.timeout_secs),
            only: cli.consumers.clone(),
            wrap: std::env::var("KAZAN_BENCH_WRAP")
                .map(|w| w.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        },
        events: cli.events.max(1),
        pod,
        pod_path: cli.pod.clone(),
        resume_every: cli.resume_every,
        resume_closes: cli.resume_closes,
        watches: cli.watches.unwrap_or(1_000).max(1),
        load: LoadSettings {
            watches: cli.watches.unwrap_or(2_000).max(1),
            seconds: cli.seconds.max(1),
            writers: cli.writers.max(1),
        },
    };
    let machine = Machine::read();
    let command = std::iter::once("kazan-bench".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    println!(
        "## kazan-bench\n\nMachine: {}\n\nCommand: `{command}`\n\nAllocator: {ALLOCATOR_NAME}\n",
        machine.summary()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    let selected: Vec<ScenarioName> = match cli.scenario {
        Some(one) => vec![one],
        None => ScenarioName::ALL.to_vec(),
    };
    let mut reports = Vec::new();
    let mut all_ran = true;
    for scenario in selected {
        eprintln!("scenario {}", scenario.as_str());
        match runtime.block_on(scenarios::run(scenario, &context)) {
            Ok(report) => {
                println!("{}", report.markdown());
                reports.push(report);
            }
            Err(error) => {
                println!("### {}\n\nNot run: {error}\n", scenario.as_str());
                all_ran = false;
            }
        }
    }
    let load_at_end = machine::load_average();
    println!(
        "Load average at the end: {}",
        load_at_end.as_deref().unwrap_or("unknown")
    );
    if let Some(path) = &cli.json {
        let results = Results {
            machine,
            allocator: ALLOCATOR_NAME,
            load_average_at_end: load_at_end,
            command,
            scenarios: reports,
        };
        let text = serde_json::to_string_pretty(&results).map_err(BenchError::Results)?;
        std::fs::write(path, text + "\n").map_err(|source| BenchError::File {
            path: path.clone(),
            source,
        })?;
    }
    Ok(all_ran)
}
