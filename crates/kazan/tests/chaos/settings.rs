//! What a chaos run does, read from the environment so that `scripts/soak` and a replay can change
//! it without a rebuild: the seed (printed, so any run can be replayed), how long the churn lasts,
//! how often faults come.

use std::time::Duration;

/// The seed of the fault schedule and the churn; random unless given.
pub const SEED_VAR: &str = "KAZAN_CHAOS_SEED";
/// How long the churn lasts, in minutes (fractions allowed).
pub const MINUTES_VAR: &str = "KAZAN_CHAOS_MINUTES";
/// Faults per second (fractions allowed).
pub const FAULT_RATE_VAR: &str = "KAZAN_CHAOS_FAULT_RATE";
/// Writes per second of the churn.
pub const WRITES_VAR: &str = "KAZAN_CHAOS_WRITES_PER_SECOND";
/// Where the report is also written (default `target/chaos-report.txt`).
pub const REPORT_VAR: &str = "KAZAN_CHAOS_REPORT";

/// Churn of the ordinary test run: long enough for several rounds of every fault, short enough for
/// a debug build on two cores.
const DEFAULT_CHURN: Duration = Duration::from_secs(60);
/// Faults per second of the ordinary test run.
const DEFAULT_FAULT_RATE: f64 = 1.5;

/// The settings of one run.
#[derive(Clone, Debug)]
pub struct Settings {
    pub seed: u64,
    pub churn: Duration,
    pub fault_rate: f64,
    /// Writes per second of the churn.
    pub writes_per_second: u32,
    /// Namespaces written to.
    pub namespaces: Vec<String>,
    /// Object names per namespace and kind.
    pub names_per_namespace: usize,
    /// The watchers' idle deadline; stalls last longer than this.
    pub idle_timeout: Duration,
    pub report_path: String,
}

impl Settings {
    pub fn from_env() -> Result<Settings, String> {
        let seed = match std::env::var(SEED_VAR) {
            Ok(s) => s
                .trim()
                .parse()
                .map_err(|e| format!("{SEED_VAR}={s:?} is not a u64: {e}"))?,
            Err(_) => fastrand::u64(..),
        };
        let churn = match std::env::var(MINUTES_VAR) {
            Ok(s) => {
                let minutes: f64 = s
                    .trim()
                    .parse()
                    .map_err(|e| format!("{MINUTES_VAR}={s:?} is not a number: {e}"))?;
                if !(minutes > 0.0 && minutes <= 7.0 * 24.0 * 60.0) {
                    return Err(format!("{MINUTES_VAR}={s:?} is out of range (0, one week]"));
                }
                Duration::from_secs_f64(minutes * 60.0)
            }
            Err(_) => DEFAULT_CHURN,
        };
        let fault_rate = match std::env::var(FAULT_RATE_VAR) {
            Ok(s) => {
                let rate: f64 = s
                    .trim()
                    .parse()
                    .map_err(|e| format!("{FAULT_RATE_VAR}={s:?} is not a number: {e}"))?;
                if !(rate > 0.0 && rate <= 100.0) {
                    return Err(format!("{FAULT_RATE_VAR}={s:?} is out of range (0, 100]"));
                }
                rate
            }
            Err(_) => DEFAULT_FAULT_RATE,
        };
        let writes_per_second = match std::env::var(WRITES_VAR) {
            Ok(s) => {
                let rate: u32 = s
                    .trim()
                    .parse()
                    .map_err(|e| format!("{WRITES_VAR}={s:?} is not a whole number: {e}"))?;
                if !(1..=10_000).contains(&rate) {
                    return Err(format!("{WRITES_VAR}={s:?} is out of range [1, 10000]"));
                }
                rate
            }
            Err(_) => 100,
        };
        let report_path = std::env::var(REPORT_VAR).unwrap_or_else(|_| {
            // Integration tests run in the crate's directory; the report goes to the workspace's
            // target directory.
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/chaos-report.txt").to_string()
        });
        Ok(Settings {
            seed,
            churn,
            fault_rate,
            writes_per_second,
            namespaces: (0..20).map(|i| format!("chaos-{i:02}")).collect(),
            names_per_namespace: 10,
            idle_timeout: Duration::from_secs(1),
            report_path,
        })
    }

    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        format!(
            "{SEED_VAR}={} {MINUTES_VAR}={} {FAULT_RATE_VAR}={} {WRITES_VAR}={} cargo test -p kazan --test chaos -- --nocapture",
            self.seed,
            self.churn.as_secs_f64() / 60.0,
            self.fault_rate,
            self.writes_per_second
        )
    }
}
