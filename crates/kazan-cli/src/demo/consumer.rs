//! The consumer: two watchers, one per kind, send their events into one channel (Kazan's
//! `send_to`: an enum message with a `From<Event<K>>` impl per kind), and one task reads it,
//! keeps a cache of both kinds, and follows the seed's instructions on Gone: clear the cache,
//! list again, start a new watcher.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::{batch::v1::Job, core::v1::ConfigMap};
use kazan::{
    Client, Object, Request,
    watcher::{Event, EventKind, EventType, WatcherHandle, WatcherId, WatcherOptions, WatcherStats},
};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot, watch};

use super::{DemoError, NAMESPACE, narrator::Narrator};

/// One message on the consumer's channel: an event of either kind (boxed, so that the channel's
/// slots stay small).
pub enum Msg {
    /// From the ConfigMap watcher.
    ConfigMap(Box<Event<ConfigMap>>),
    /// From the Job watcher.
    Job(Box<Event<Job>>),
}

impl From<Event<ConfigMap>> for Msg {
    fn from(event: Event<ConfigMap>) -> Self {
        Msg::ConfigMap(Box::new(event))
    }
}

impl From<Event<Job>> for Msg {
    fn from(event: Event<Job>) -> Self {
        Msg::Job(Box::new(event))
    }
}

/// A few words on an object's state, for the event lines.
pub trait Detail {
    /// e.g. `version=3`, `complete`.
    fn detail(&self) -> String;
}

impl Detail for ConfigMap {
    fn detail(&self) -> String {
        let version = self
            .data
            .as_ref()
            .and_then(|d| d.get("version"))
            .map_or("-", String::as_str);
        format!("version={version}")
    }
}

impl Detail for Job {
    fn detail(&self) -> String {
        let status = self.status.as_ref();
        let complete = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Complete" && c.status == "True"));
        if complete {
            "complete".to_string()
        } else if status.and_then(|s| s.active).unwrap_or(0) > 0 {
            "running".to_string()
        } else {
            "pending".to_string()
        }
    }
}

/// What the script may wait for, published as the consumer goes.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// Where the configmaps watcher would resume from.
    pub configmaps_rv: u64,
    /// Its clean resumes (after server timeouts).
    pub configmaps_resumes: u64,
    /// Its retries (after errors).
    pub configmaps_retries: u64,
    /// Retries of the current jobs watcher (after errors).
    pub jobs_retries: u64,
    /// Gone events handled (cache cleared, relisted, new watcher started).
    pub gone_handled: u32,
}

/// What one kind's side saw, for the summary.
#[derive(Debug, Default)]
pub struct SideReport {
    /// ADDED, MODIFIED, DELETED received.
    pub events: [u64; 3],
    /// Clean resumes, over every watcher of the kind.
    pub resumes: u64,
    /// Retries after errors, over every watcher of the kind.
    pub retries: u64,
    /// How many watchers the kind had (1 + restarts after Gone).
    pub watchers: usize,
    /// The cache at the end: name → resourceVersion.
    pub cache: BTreeMap<String, String>,
}

/// What the consumer hands back at the end.
#[derive(Debug, Default)]
pub struct Report {
    /// ConfigMaps.
    pub configmaps: SideReport,
    /// Jobs.
    pub jobs: SideReport,
    /// Gone events handled.
    pub gone_handled: u32,
    /// Whether both watchers reached the final version before the deadline.
    pub settled: bool,
}

fn version_number(rv: Option<&str>) -> u64 {
    rv.and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// One kind: its cache, its current watcher, and its counters.
struct Side<K> {
    kind: &'static str,
    plural: &'static str,
    /// The `timeoutSeconds` its watch requests carry, if fixed.
    timeout: Option<u32>,
    cache: BTreeMap<String, K>,
    handle: Option<WatcherHandle<Msg>>,
    /// Stats of the watchers that ended on Gone.
    retired: Vec<WatcherStats>,
    /// The stats last looked at, to tell what changed.
    seen: WatcherStats,
    events: [u64; 3],
    /// The highest version this side has seen (objects, bookmarks, lists).
    reached: u64,
}

impl<K> Side<K>
where
    K: k8s_openapi::Resource + Object + DeserializeOwned + Clone + Detail + Send + 'static,
    Msg: From<Event<K>>,
{
    fn new(kind: &'static str, plural: &'static str, timeout: Option<u32>) -> Self {
        Side {
            kind,
            plural,
            timeout,
            cache: BTreeMap::new(),
            handle: None,
            retired: Vec::new(),
            seen: WatcherStats::default(),
            events: [0; 3],
            reached: 0,
        }
    }

    fn versions(&self) -> BTreeMap<String, String> {
        self.cache
            .iter()
            .map(|(name, o)| (name.clone(), o.resource_version().unwrap_or_default().to_string()))
            .collect()
    }

    /// Lists into a fresh cache and starts a watcher from the list's version (the seed's steps 1
    /// and 2). Returns that version.
    async fn list_and_watch(&mut self, client: &Client, tx: &mpsc::Sender<Msg>) -> Result<String, DemoError> {
        let list = client
            .list_all(&Request::list::<K>().namespace(NAMESPACE))
            .await
            .map_err(|source| DemoError::Client {
                what: format!("listing {}", self.plural),
                source: Box::new(source),
            })?;
        let rv =
            list.metadata.resource_version.clone().ok_or_else(|| {
                DemoError::Stuck(format!("the {} list has no resourceVersion", self.plural))
            })?;
        self.cache = list
            .items
            .into_iter()
            .map(|o| (o.name().to_string(), o))
            .collect();
        self.reached = self.reached.max(version_number(Some(&rv)));
        let mut request = Request::list::<K>().namespace(NAMESPACE);
        if let Some(seconds) = self.timeout {
            request = request.timeout_seconds(seconds);
        }
        let options = WatcherOptions::new()
            .send_to(tx.clone())
            .resource_version(rv.clone())
            .name(self.plural)
            .deliver_bookmarks(true)
            .log(None);
        let handle =
            kazan::Watcher::start(client.clone(), request, options).map_err(|source| DemoError::Watcher {
                what: self.plural,
                source: Box::new(source),
            })?;
        self.seen = handle.stats();
        self.handle = Some(handle);
        Ok(rv)
    }

    fn watcher_id(&self) -> String {
        self.handle
            .as_ref()
            .map_or_else(|| "-".to_string(), |h| h.id().to_string())
    }

    /// Applies one event to the cache and prints it. Returns the message of a Gone.
    fn on_event(&mut self, event: Event<K>, narrator: &Narrator) -> Option<String> {
        let from: WatcherId = event.from;
        let event_type = event.event_type();
        let rv = event.resource_version.clone();
        self.reached = self.reached.max(version_number(rv.as_deref()));
        let (index, object) = match event.kind {
            EventKind::Added(o) => (0, o),
            EventKind::Modified(o) => (1, o),
            EventKind::Deleted(o) => (2, o),
            EventKind::Gone { message } => return Some(message),
            EventKind::Failed(error) => {
                narrator.say("consumer", format!("FAILED    {}: {error}", self.plural));
                return None;
            }
            EventKind::Bookmark | EventKind::Synced | EventKind::Skipped(_) => return None,
        };
        let name = object.name().to_string();
        let detail = object.detail();
        if event_type == EventType::Deleted {
            self.cache.remove(&name);
        } else {
            self.cache.insert(name.clone(), object);
        }
        if let Some(count) = self.events.get_mut(index) {
            *count += 1;
        }
        narrator.say(
            "consumer",
            format!(
                "{:<9} {:<16} rv {:<4} {:<12} from {from}",
                event_type.as_str(),
                format!("{} {name}", self.kind),
                rv.as_deref().unwrap_or("?"),
                detail,
            ),
        );
        None
    }

    /// Tells what the watcher did on its own since last looked: resumes and retries.
    fn monitor(&mut self, narrator: &Narrator) {
        let Some(handle) = &self.handle else {
            return;
        };
        let now = handle.stats();
        let at = now.resource_version.as_deref().unwrap_or("?");
        if now.resumes > self.seen.resumes {
            let why = match self.timeout {
                Some(s) => format!("timeoutSeconds={s}"),
                None => "its timeout".to_string(),
            };
            narrator.say(
                "watcher",
                format!(
                    "{}: watch ended by the server ({why}); {} resumed from rv {at}",
                    self.plural,
                    handle.id()
                ),
            );
        }
        if now.retries > self.seen.retries {
            narrator.say(
                "watcher",
                format!(
                    "{}: watch failed (retry {} of {}); retrying from rv {at} after a backoff",
                    self.plural,
                    now.retries,
                    handle.id()
                ),
            );
        }
        self.seen = now;
    }

    /// The seed's instructions after Gone: clear the cache, list again, start a new watcher.
    async fn restart_after_gone(
        &mut self,
        message: &str,
        client: &Client,
        tx: &mpsc::Sender<Msg>,
        narrator: &Narrator,
    ) -> Result<(), DemoError> {
        let old_id = self.watcher_id();
        narrator.say(
            "consumer",
            format!("GONE      {} from {old_id}: {message}", self.plural),
        );
        narrator.note(format!(
            "{old_id} has ended. Kazan's rule: clear the cache, list again, start a new watcher."
        ));
        if let Some(handle) = self.handle.take() {
            self.retired.push(handle.stats());
        }
        let before = self.versions();
        self.cache.clear();
        narrator.say(
            "consumer",
            format!("cleared the {} cache ({} objects)", self.plural, before.len()),
        );
        let rv = self.list_and_watch(client, tx).await?;
        let after = self.versions();
        let mut changes = Vec::new();
        for (name, old_rv) in &before {
            match after.get(name) {
                None => changes.push(format!("{name} deleted")),
                Some(rv) if rv != old_rv => changes.push(format!("{name} changed")),
                Some(_) => {}
            }
        }
        for name in after.keys().filter(|n| !before.contains_key(*n)) {
            changes.push(format!("{name} created"));
        }
        let missed = if changes.is_empty() {
            "nothing changed while away".to_string()
        } else {
            format!("while the watch was away: {}", changes.join(", "))
        };
        narrator.say(
            "consumer",
            format!("listed {}: {} at rv {rv}; {missed}", self.plural, after.len()),
        );
        narrator.say(
            "consumer",
            format!("started {} for {} from rv {rv}", self.watcher_id(), self.plural),
        );
        Ok(())
    }

    async fn finish(&mut self) -> SideReport {
        let mut stats = self.retired.clone();
        if let Some(handle) = self.handle.take() {
            handle.stop().await;
            stats.push(handle.stats());
        }
        SideReport {
            events: self.events,
            resumes: stats.iter().map(|s| s.resumes).sum(),
            retries: stats.iter().map(|s| s.retries).sum(),
            watchers: stats.len(),
            cache: self.versions(),
        }
    }
}

/// The consumer task's state.
pub struct Consumer {
    client: Client,
    tx: mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
    configmaps: Side<ConfigMap>,
    jobs: Side<Job>,
    narrator: Narrator,
    gone_handled: u32,
}

/// How long the consumer waits, once told the workload is over, for both watchers to reach the
/// final version.
const SETTLE: Duration = Duration::from_secs(10);

impl Consumer {
    /// Lists both kinds into the cache and starts both watchers from their lists.
    pub async fn start(
        client: Client,
        configmaps_timeout: u32,
        narrator: Narrator,
    ) -> Result<Consumer, DemoError> {
        let (tx, rx) = mpsc::channel(64);
        let mut consumer = Consumer {
            client,
            tx,
            rx,
            configmaps: Side::new("configmap", "configmaps", Some(configmaps_timeout)),
            jobs: Side::new("job", "jobs", None),
            narrator,
            gone_handled: 0,
        };
        let rv = consumer
            .configmaps
            .list_and_watch(&consumer.client, &consumer.tx)
            .await?;
        consumer.narrator.say(
            "consumer",
            format!(
                "listed configmaps: {} at rv {rv} -> cache; started {} from rv {rv} (timeoutSeconds={configmaps_timeout})",
                consumer.configmaps.cache.len(),
                consumer.configmaps.watcher_id()
            ),
        );
        let rv = consumer
            .jobs
            .list_and_watch(&consumer.client, &consumer.tx)
            .await?;
        consumer.narrator.say(
            "consumer",
            format!(
                "listed jobs: {} at rv {rv} -> cache; started {} from rv {rv}",
                consumer.jobs.cache.len(),
                consumer.jobs.watcher_id()
            ),
        );
        Ok(consumer)
    }

    fn progress(&self) -> Progress {
        Progress {
            configmaps_rv: version_number(self.configmaps.seen.resource_version.as_deref()),
            configmaps_resumes: self.configmaps.seen.resumes,
            configmaps_retries: self.configmaps.seen.retries,
            jobs_retries: self.jobs.seen.retries,
            gone_handled: self.gone_handled,
        }
    }

    /// Reads the channel until told the final version (`finish`) and both kinds reached it, or
    /// until the settle deadline passes.
    pub async fn run(
        mut self,
        mut finish: oneshot::Receiver<u64>,
        progress: watch::Sender<Progress>,
    ) -> Report {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut target: Option<u64> = None;
        let deadline = tokio::time::sleep(Duration::MAX / 4);
        tokio::pin!(deadline);
        let settled = loop {
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(msg) => self.on_message(msg).await,
                    // Never: the consumer holds a sender for the watchers it starts.
                    None => break false,
                },
                _ = tick.tick() => {
                    self.configmaps.monitor(&self.narrator);
                    self.jobs.monitor(&self.narrator);
                }
                t = &mut finish, if target.is_none() => {
                    target = Some(t.unwrap_or(0));
                    deadline.as_mut().reset(tokio::time::Instant::now() + SETTLE);
                }
                () = &mut deadline => break false,
            }
            progress.send_replace(self.progress());
            if target.is_some_and(|t| self.configmaps.reached >= t && self.jobs.reached >= t) {
                break true;
            }
        };
        Report {
            configmaps: self.configmaps.finish().await,
            jobs: self.jobs.finish().await,
            gone_handled: self.gone_handled,
            settled,
        }
    }

    async fn on_message(&mut self, msg: Msg) {
        // The seed's consumer matches on the kind of object; so does this one.
        let restarted = match msg {
            Msg::ConfigMap(event) => match self.configmaps.on_event(*event, &self.narrator) {
                Some(message) => Some(
                    self.configmaps
                        .restart_after_gone(&message, &self.client, &self.tx, &self.narrator)
                        .await,
                ),
                None => None,
            },
            Msg::Job(event) => match self.jobs.on_event(*event, &self.narrator) {
                Some(message) => Some(
                    self.jobs
                        .restart_after_gone(&message, &self.client, &self.tx, &self.narrator)
                        .await,
                ),
                None => None,
            },
        };
        match restarted {
            Some(Ok(())) => self.gone_handled += 1,
            Some(Err(e)) => self
                .narrator
                .say("consumer", format!("could not restart after Gone: {e}")),
            None => {}
        }
    }
}
