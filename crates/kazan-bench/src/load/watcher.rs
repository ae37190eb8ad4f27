//! The watcher process of the load scenario: one `Watcher::supervise` per namespace, typed `Pod`,
//! all on one `kazan::Client` (so HTTP/2 multiplexes the watches on as few connections as the
//! server's stream limit allows) and all sending to one channel (Kazan's `send_to`). The consumer
//! keeps a cache of every namespace (name → resourceVersion), as a controller would, checks that
//! each watch's versions only go up, and prints a [`Sample`] every second. On `Gone`, the
//! supervised watcher relists by itself as the seed prescribes (`Gone`, then every object as
//! `Added`, then `Synced`): the consumer clears that namespace's cache and rebuilds it.

use std::{
    collections::{BTreeMap, HashMap},
    io::Write as _,
    time::{Duration, SystemTime},
};

use k8s_openapi::api::core::v1::Pod;
use kazan::{
    Request,
    watcher::{Event, EventKind, Watcher, WatcherHandle, WatcherOptions},
};
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    sync::mpsc,
};

use super::{Final, Sample, WatcherLine, WatcherReport};
use crate::{consumers::kazan_client, error::ConsumeError, job::Job, measure, sink::unix_seconds};

/// The channel every watcher sends to.
const CHANNEL_CAPACITY: usize = 1024;
/// How often the process reports where its watches are.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How often, once told the final versions, the watches that relisted are checked for them.
const CATCH_UP_POLL: Duration = Duration::from_millis(20);
/// How many messages of unusual events are kept for the report.
const MESSAGES_KEPT: usize = 10;

/// One watch as the consumer sees it.
#[derive(Debug, Default)]
struct WatchState {
    /// The last object event's version (0 before the first; reset by a relist).
    last_rv: u64,
    /// The highest version among the objects of the last relist.
    relist_rv: u64,
    /// The watcher's resume point, read from its stats once the watch has relisted (it knows the
    /// list's version, which no event carries).
    resume_rv: u64,
    /// Object events outside relists.
    events: u64,
    /// Between `Gone` and `Synced`: the objects are the relist's.
    relisting: bool,
    gones: u64,
    /// name → resourceVersion.
    cache: BTreeMap<String, u64>,
}

impl WatchState {
    /// How far the consumer's view of this namespace is.
    fn at(&self) -> u64 {
        self.ordered_after().max(self.resume_rv)
    }

    /// The version the next object event must be above.
    fn ordered_after(&self) -> u64 {
        self.last_rv.max(self.relist_rv)
    }
}

/// Runs the watchers until the harness's final versions are reached (or stdin closes), printing
/// samples and then the report.
pub async fn run(job: &Job) -> Result<(), ConsumeError> {
    let client = kazan_client(job)?;
    let cpu_at_start = measure::cpu_seconds();
    let scopes = job.scopes();
    let (sender, mut events) = mpsc::channel::<Event<Pod>>(CHANNEL_CAPACITY);
    let mut handles: Vec<WatcherHandle<Event<Pod>>> = Vec::with_capacity(scopes.len());
    let mut index_of = HashMap::with_capacity(scopes.len());
    for (index, scope) in scopes.into_iter().enumerate() {
        let namespace = scope.unwrap_or_default();
        let options = WatcherOptions::new()
            .resource_version(job.first_rv.saturating_sub(1).to_string())
            .name(namespace.clone())
            .send_to(sender.clone());
        let request = Request::list::<Pod>().namespace(&namespace);
        let handle = Watcher::supervise(client.clone(), request, options)
            .map_err(|e| ConsumeError::KazanWatcher(Box::new(e)))?;
        index_of.insert(handle.id().get(), index);
        handles.push(handle);
    }
    drop(sender);

    let mut watches: Vec<WatchState> = (0..handles.len()).map(|_| WatchState::default()).collect();
    let mut report = WatcherReport::default();
    let mut delivered = 0u64;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    // Once the harness says where every watch must get to: the target per watch, and how many
    // have not reached it.
    let mut target: Option<(Vec<u64>, usize)> = None;
    let mut sample_timer = tokio::time::interval(SAMPLE_EVERY);
    let mut catch_up_timer = tokio::time::interval(CATCH_UP_POLL);

    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                let Some(&index) = index_of.get(&event.from.get()) else { continue };
                let Some(watch) = watches.get_mut(index) else { continue };
                if on_event(watch, event, &mut report) {
                    delivered += 1;
                }
                if let Some((targets, remaining)) = &mut target
                    && targets.get(index).is_some_and(|t| *t != u64::MAX && watch.at() >= *t) {
                        if let Some(t) = targets.get_mut(index) {
                            *t = u64::MAX;
                        }
                        *remaining -= 1;
                    }
            }
            _ = sample_timer.tick() => {
                print_line(&WatcherLine::Sample(Sample {
                    unix_s: unix_seconds(SystemTime::now()).unwrap_or(0.0),
                    rss_bytes: measure::rss_bytes(),
                    cpu_seconds: measure::cpu_seconds(),
                    delivered,
                    rvs: watches.iter().map(WatchState::at).collect(),
                }))?;
            }
            _ = catch_up_timer.tick(), if target.is_some() => {
                // A watch that relisted may be at the final version without an event saying so:
                // its resume point (from the watcher's stats) tells.
                if let Some((targets, remaining)) = &mut target {
                    for ((watch, handle), t) in watches.iter_mut().zip(&handles).zip(targets.iter_mut()) {
                        if *t == u64::MAX || watch.gones == 0 || watch.relisting {
                            continue;
                        }
                        let resume = handle.stats().resource_version.and_then(|rv| rv.parse().ok());
                        watch.resume_rv = watch.resume_rv.max(resume.unwrap_or(0));
                        if watch.at() >= *t {
                            *t = u64::MAX;
                            *remaining -= 1;
                        }
                    }
                }
            }
            line = stdin.next_line() => {
                match line {
                    Ok(Some(line)) => {
                        let last: Final = serde_json::from_str(&line)
                            .map_err(|e| ConsumeError::Report(std::io::Error::other(e)))?;
                        let mut targets = last.last_rvs;
                        targets.resize(watches.len(), 0);
                        let mut remaining = 0;
                        for (t, watch) in targets.iter_mut().zip(&watches) {
                            if watch.at() >= *t {
                                *t = u64::MAX;
                            } else {
                                remaining += 1;
                            }
                        }
                        target = Some((targets, remaining));
                    }
                    // The harness is gone or gave up: report what there is.
                    Ok(None) | Err(_) => break,
                }
            }
        }
        if let Some((_, 0)) = target {
            report.caught_up_unix_s = unix_seconds(SystemTime::now());
            break;
        }
    }

    for handle in &handles {
        let stats = handle.stats();
        report.resumes += stats.resumes;
        report.retries += stats.retries;
    }
    report.cpu_seconds = (measure::cpu_seconds() - cpu_at_start).max(0.0);
    report.peak_rss_bytes = measure::peak_rss_bytes();
    report.events = watches.iter().map(|w| w.events).collect();
    report.gone_watches = (0..watches.len())
        .filter(|i| watches.get(*i).is_some_and(|w| w.gones > 0))
        .collect();
    report.cache = watches
        .iter()
        .map(|w| w.cache.iter().map(|(name, rv)| (name.clone(), *rv)).collect())
        .collect();
    print_line(&WatcherLine::Report(report))
}

/// Applies one event to its watch; true when it delivered an object outside a relist.
fn on_event(watch: &mut WatchState, event: Event<Pod>, report: &mut WatcherReport) -> bool {
    let rv_of = |pod: &Pod| {
        pod.metadata
            .resource_version
            .as_deref()
            .and_then(|rv| rv.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let note = |report: &mut WatcherReport, message: String| {
        if report.messages.len() < MESSAGES_KEPT {
            report.messages.push(message);
        }
    };
    let (pod, deleted) = match event.kind {
        EventKind::Added(pod) | EventKind::Modified(pod) => (pod, false),
        EventKind::Deleted(pod) => (pod, true),
        EventKind::Bookmark => return false,
        EventKind::Synced => {
            watch.relisting = false;
            return false;
        }
        EventKind::Gone { message } => {
            // Clear the cache; the supervised watcher relists next.
            report.gones += 1;
            note(report, format!("Gone: {message}"));
            watch.gones += 1;
            watch.relisting = true;
            watch.cache.clear();
            watch.last_rv = 0;
            watch.relist_rv = 0;
            watch.resume_rv = 0;
            return false;
        }
        EventKind::Skipped(error) => {
            report.skipped += 1;
            note(report, format!("Skipped: {error}"));
            return false;
        }
        EventKind::Failed(error) => {
            report.failed += 1;
            note(report, format!("Failed: {error}"));
            return false;
        }
    };
    let rv = rv_of(&pod);
    let name = pod.metadata.name.unwrap_or_default();
    if deleted {
        watch.cache.remove(&name);
    } else {
        watch.cache.insert(name, rv);
    }
    if watch.relisting {
        // A relist delivers objects in name order, not version order.
        report.relist_events += 1;
        watch.relist_rv = watch.relist_rv.max(rv);
        return false;
    }
    if rv <= watch.ordered_after() {
        report.out_of_order += 1;
    }
    watch.last_rv = watch.last_rv.max(rv);
    watch.events += 1;
    true
}

fn print_line(line: &WatcherLine) -> Result<(), ConsumeError> {
    let text = serde_json::to_string(line).map_err(|e| ConsumeError::Report(std::io::Error::other(e)))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}").map_err(ConsumeError::Report)?;
    stdout.flush().map_err(ConsumeError::Report)
}
