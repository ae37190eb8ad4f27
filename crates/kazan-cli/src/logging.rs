//! Logs go to stderr through `tracing`, so stdout carries only the output proper (and stays
//! parseable by `jq` and friends).

use std::io::IsTerminal;

use tracing_subscriber::filter::LevelFilter;

/// `--log-level`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Nothing.
    Off,
    /// Errors only (the default: the command prints its own final error).
    Error,
    /// Problems: retries, skipped events.
    Warn,
    /// Also what the watcher does: lists, watches, resumes.
    Info,
    /// Also every request.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    fn filter(self) -> LevelFilter {
        match self {
            LogLevel::Off => LevelFilter::OFF,
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Trace => LevelFilter::TRACE,
        }
    }
}

/// Sends log lines at `level` and above to stderr.
pub fn init(level: LogLevel) {
    // A subscriber set already (never in the binary) is not worth failing for.
    let _ = tracing_subscriber::fmt()
        .with_max_level(level.filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
