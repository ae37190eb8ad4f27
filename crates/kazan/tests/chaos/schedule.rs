//! The fault schedule: at seeded random intervals (exponential, mean 1/rate), the next fault from
//! a deck holding every kind once, shuffled each round, so every kind comes up in every round.
//! Watch faults act on open watches; error answers are rules for the next requests (watch or list)
//! and are followed half the time by a cut so that watchers meet them at once; compaction is
//! followed most of the time by a cut, so that the watchers resume from a compacted version and
//! get 410 Gone.

use std::{collections::BTreeMap, fmt, time::Duration};

use kazan_apiserver::{FaultAction, FaultRule, Faults};
use tokio::time::Instant;

/// The kinds of fault injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// Open watches cut inside an event (half a line, then the connection drops).
    Cut,
    /// Open watches ended cleanly.
    End,
    /// Open watches stalled past the watchers' idle deadline.
    Stall,
    /// The next watch requests answered 500.
    Watch500,
    /// The next watch requests answered 503.
    Watch503,
    /// The next watch requests answered 429 with Retry-After.
    Watch429,
    /// The next list requests answered 500.
    List500,
    /// The next list requests answered 503 with Retry-After.
    List503,
    /// The history compacted: resumes from older versions get 410 Gone.
    Compact,
}

impl FaultKind {
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Cut,
        FaultKind::End,
        FaultKind::Stall,
        FaultKind::Watch500,
        FaultKind::Watch503,
        FaultKind::Watch429,
        FaultKind::List500,
        FaultKind::List503,
        FaultKind::Compact,
    ];
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            FaultKind::Cut => "cut mid-event",
            FaultKind::End => "clean end",
            FaultKind::Stall => "stall past idle deadline",
            FaultKind::Watch500 => "watch 500",
            FaultKind::Watch503 => "watch 503",
            FaultKind::Watch429 => "watch 429 + Retry-After",
            FaultKind::List500 => "list 500",
            FaultKind::List503 => "list 503 + Retry-After",
            FaultKind::Compact => "history compaction",
        };
        f.write_str(name)
    }
}

/// Error rules waiting for requests are capped, so that they do not pile up while no watcher
/// reconnects (list rules wait for a relist).
const MAX_PENDING_RULES: usize = 4;

/// The resources a fault may target (None: every watch).
const TARGETS: [Option<&str>; 3] = [None, Some("configmaps"), Some("pods")];

/// What the schedule did.
#[derive(Clone, Debug, Default)]
pub struct FaultCounts {
    pub by_kind: BTreeMap<FaultKind, u64>,
    /// Error answers not injected because enough were still waiting for requests.
    pub skipped: u64,
}

impl FaultCounts {
    pub fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }
}

/// Runs the schedule until `until`.
pub async fn run(faults: Faults, seed: u64, rate: f64, idle: Duration, until: Instant) -> FaultCounts {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x6661_756c_7400_0002);
    let mut counts = FaultCounts::default();
    let mut deck: Vec<FaultKind> = Vec::new();
    loop {
        // Exponential gaps, capped so one long gap cannot eat the run.
        let gap = (-(1.0 - rng.f64()).ln() / rate).min(5.0 / rate);
        let at = Instant::now() + Duration::from_secs_f64(gap);
        if at >= until {
            tokio::time::sleep_until(until).await;
            return counts;
        }
        tokio::time::sleep_until(at).await;
        if deck.is_empty() {
            deck = FaultKind::ALL.to_vec();
            rng.shuffle(&mut deck);
        }
        let Some(kind) = deck.pop() else { continue };
        let target = TARGETS[rng.usize(..TARGETS.len())];
        if inject(&faults, &mut rng, kind, target, idle) {
            *counts.by_kind.entry(kind).or_default() += 1;
        } else {
            counts.skipped += 1;
        }
    }
}

fn inject(
    faults: &Faults,
    rng: &mut fastrand::Rng,
    kind: FaultKind,
    target: Option<&str>,
    idle: Duration,
) -> bool {
    match kind {
        FaultKind::Cut => faults.cut_watches(target),
        FaultKind::End => faults.end_watches(target),
        FaultKind::Stall => {
            let over = Duration::from_millis(200 + rng.u64(..800));
            faults.stall_watches(target, idle + over);
        }
        FaultKind::Compact => {
            faults.compact_history();
            if rng.u8(..10) < 7 {
                faults.cut_watches(target);
            }
        }
        FaultKind::Watch500
        | FaultKind::Watch503
        | FaultKind::Watch429
        | FaultKind::List500
        | FaultKind::List503 => {
            let action = match kind {
                FaultKind::Watch500 | FaultKind::List500 => {
                    FaultAction::status(500, "InternalError", "chaos: internal error")
                }
                FaultKind::Watch503 => FaultAction::status(503, "ServiceUnavailable", "chaos: unavailable"),
                FaultKind::List503 => {
                    FaultAction::status(503, "ServiceUnavailable", "chaos: unavailable").retry_after(1)
                }
                _ => FaultAction::status(429, "TooManyRequests", "chaos: slow down").retry_after(1),
            };
            let watch = matches!(
                kind,
                FaultKind::Watch500 | FaultKind::Watch503 | FaultKind::Watch429
            );
            let pending = faults.rules().iter().filter(|r| r.watch == Some(watch)).count();
            if pending >= MAX_PENDING_RULES {
                return false;
            }
            faults.add_rule(FaultRule::new(action).watch(watch).times(rng.u32(1..=3)));
            if watch && rng.bool() {
                faults.cut_watches(target);
            }
        }
    }
    true
}
