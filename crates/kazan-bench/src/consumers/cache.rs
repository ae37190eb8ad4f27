//! The consumer side of the cache scenario: one cache of every pod (kazan's informer in one of its
//! forms, or kube-runtime's `reflector`), filled by its initial list, measured, then relisted once
//! when the harness compacts the server's history and expires the watch.
//!
//! The process and the harness talk over the child's standard streams, one JSON line per message:
//! the process prints [`CacheLine::Synced`] when its store holds the first complete list,
//! [`CacheLine::Ready`] once it has settled (steady memory read, peak memory reset), and
//! [`CacheLine::Done`] after the relist and the harness's writes; the harness sends one
//! [`Final`] line with the version of its last write once it has written.

use std::{
    fmt::Debug,
    hash::Hash,
    io::Write as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kazan::{
    ApiResource, PartialObjectMetadata, Request,
    informer::{Informer, InformerOptions, Store, strip_managed_fields},
    resource::ObjectList,
    watcher::InitialList,
};
use kube::{
    Api, Resource, ResourceExt as _,
    core::PartialObjectMeta,
    runtime::{WatchStreamExt as _, reflector, watcher},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    sync::watch,
};

use super::Consumer;
use crate::{error::ConsumeError, job::Job, measure};

/// The cache scenario's consumers, each with the consumer its ratios are taken against (the
/// kube-runtime reflector that does the same job), in the order a round runs them.
pub const CONSUMERS: [(Consumer, Consumer); 9] = [
    (Consumer::KubeReflector, Consumer::KubeReflector),
    (Consumer::KazanInformerPaginated, Consumer::KubeReflector),
    (Consumer::KazanInformerStreaming, Consumer::KubeReflector),
    (Consumer::KazanInformerSerdeJson, Consumer::KubeReflector),
    (Consumer::KazanCompact, Consumer::KubeReflector),
    (Consumer::KubeReflectorModify, Consumer::KubeReflectorModify),
    (Consumer::KazanInformerTransform, Consumer::KubeReflectorModify),
    (Consumer::KubeReflectorMetadata, Consumer::KubeReflectorMetadata),
    (Consumer::KazanMetadata, Consumer::KubeReflectorMetadata),
];

/// How long the process lets its memory settle after the sync before it reads the steady RSS.
pub const SETTLE: Duration = Duration::from_secs(1);
/// How long the process waits for the relist and then for the harness's last write.
const RELIST_TIMEOUT: Duration = Duration::from_secs(240);
/// How often the kazan consumers look at their store for a relist under way or done.
const POLL: Duration = Duration::from_millis(2);

/// What the process prints, one JSON object per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheLine {
    /// The store holds the first complete list.
    Synced(Synced),
    /// Settled after the sync; the peak memory is reset: the harness may force the relist.
    Ready(Ready),
    /// The relist is done and the harness's last write is in the store.
    Done(Done),
}

/// The initial list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Synced {
    /// Seconds from the process's first request to the synced store.
    pub seconds: f64,
    /// User + system CPU seconds over the same span.
    pub cpu_seconds: f64,
    /// Peak resident memory so far (`VmHWM`).
    pub peak_rss_bytes: u64,
    /// Objects in the store.
    pub objects: u64,
}

/// The settled cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    /// Resident memory (`VmRSS`) after the settle.
    pub rss_bytes: u64,
    /// Bytes the store itself counts (kazan's compact store), when it counts them.
    pub store_bytes: Option<u64>,
    /// Objects in the store.
    pub objects: u64,
    /// Whether the peak memory could be reset (`/proc/self/clear_refs`): if not, the relist's
    /// peak is the whole run's.
    pub peak_reset: bool,
}

/// The relist and the writes after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    /// Seconds from `Ready` to the end of the relist (the harness's reaction and any backoff
    /// included).
    pub relist_seconds: f64,
    /// CPU seconds over the same span.
    pub relist_cpu_seconds: f64,
    /// Peak resident memory since `Ready`.
    pub relist_peak_rss_bytes: u64,
    /// Resident memory at the end.
    pub rss_bytes: u64,
    /// Objects in the store at the end.
    pub objects: u64,
    /// Bytes the store counts at the end.
    pub store_bytes: Option<u64>,
    /// Errors the watcher yielded and recovered from (kube-runtime yields the 410 as one).
    pub errors: u64,
}

/// What the harness sends once its writes are answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Final {
    /// The resourceVersion of its last write.
    pub resource_version: u64,
}

/// A running cache, whichever library fills it.
struct Running {
    /// Completed (re)lists: 1 once synced, 2 after the relist.
    syncs: watch::Receiver<u64>,
    /// The highest resourceVersion the cache is known to reflect.
    max_rv: Arc<AtomicU64>,
    /// Errors yielded and recovered from.
    errors: Arc<AtomicU64>,
    /// Objects in the store now.
    len: Box<dyn Fn() -> u64 + Send>,
    /// Bytes the store counts now, if it counts them.
    store_bytes: Box<dyn Fn() -> Option<u64> + Send>,
    /// The informer or the reflector's task, kept alive for the run.
    _keep: Box<dyn std::any::Any + Send>,
}

/// Runs `consumer`'s cache through the scenario's steps, printing its lines.
pub async fn run(consumer: Consumer, job: &Job) -> Result<(), ConsumeError> {
    let started = Instant::now();
    let cpu_at_start = measure::cpu_seconds();
    let mut cache = start(consumer, job)?;
    cache
        .syncs
        .wait_for(|n| *n >= 1)
        .await
        .map_err(|_| ConsumeError::CacheEnded("before its first sync"))?;
    let synced_at = Instant::now();
    let cpu_at_sync = measure::cpu_seconds();
    print_line(&CacheLine::Synced(Synced {
        seconds: synced_at.duration_since(started).as_secs_f64(),
        cpu_seconds: (cpu_at_sync - cpu_at_start).max(0.0),
        peak_rss_bytes: measure::peak_rss_bytes(),
        objects: (cache.len)(),
    }))?;

    tokio::time::sleep(SETTLE).await;
    let rss_bytes = measure::rss_bytes();
    let peak_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let ready_at = Instant::now();
    let cpu_at_ready = measure::cpu_seconds();
    print_line(&CacheLine::Ready(Ready {
        rss_bytes,
        store_bytes: (cache.store_bytes)(),
        objects: (cache.len)(),
        peak_reset,
    }))?;

    let relisted = tokio::time::timeout(RELIST_TIMEOUT, cache.syncs.wait_for(|n| *n >= 2)).await;
    match relisted {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return Err(ConsumeError::CacheEnded("during the relist")),
        Err(_) => return Err(ConsumeError::CacheEnded("without relisting in time")),
    }
    let relist_seconds = ready_at.elapsed().as_secs_f64();
    let relist_cpu_seconds = (measure::cpu_seconds() - cpu_at_ready).max(0.0);

    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let line = match stdin.next_line().await {
        Ok(Some(line)) => line,
        Ok(None) | Err(_) => return Err(ConsumeError::CacheEnded("waiting for the harness's last write")),
    };
    let last: Final =
        serde_json::from_str(&line).map_err(|e| ConsumeError::Report(std::io::Error::other(e)))?;
    let deadline = Instant::now() + RELIST_TIMEOUT;
    while cache.max_rv.load(Ordering::Relaxed) < last.resource_version {
        if Instant::now() > deadline {
            return Err(ConsumeError::CacheEnded(
                "before the harness's last write arrived",
            ));
        }
        tokio::time::sleep(POLL).await;
    }
    print_line(&CacheLine::Done(Done {
        relist_seconds,
        relist_cpu_seconds,
        relist_peak_rss_bytes: measure::peak_rss_bytes(),
        rss_bytes: measure::rss_bytes(),
        objects: (cache.len)(),
        store_bytes: (cache.store_bytes)(),
        errors: cache.errors.load(Ordering::Relaxed),
    }))
}

/// Starts `consumer`'s cache of every pod on the job's server.
fn start(consumer: Consumer, job: &Job) -> Result<Running, ConsumeError> {
    let pods = || Request::list::<Pod>();
    let options = InformerOptions::new;
    match consumer {
        Consumer::KubeReflector => {
            let api: Api<Pod> = Api::all(super::kube_runtime::client(job)?);
            Ok(kube_cache(
                watcher(api, watcher::Config::default()).default_backoff(),
            ))
        }
        Consumer::KubeReflectorModify => {
            let api: Api<Pod> = Api::all(super::kube_runtime::client(job)?);
            let stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .modify(|pod| pod.managed_fields_mut().clear());
            Ok(kube_cache(stream))
        }
        Consumer::KubeReflectorMetadata => {
            let api: Api<PartialObjectMeta<Pod>> = Api::all(super::kube_runtime::client(job)?);
            Ok(kube_cache(
                watcher(api, watcher::Config::default()).default_backoff(),
            ))
        }
        Consumer::KazanInformerPaginated => {
            kazan_cache(job, pods(), options().initial_list(InitialList::Paginated))
        }
        Consumer::KazanInformerStreaming => {
            kazan_cache(job, pods(), options().initial_list(InitialList::Streaming))
        }
        Consumer::KazanInformerSerdeJson => kazan_cache(
            job,
            pods(),
            options()
                .watcher(kazan::watcher::WatcherOptions::new().decoder(kazan::Decoder::SerdeJson))
                .initial_list(InitialList::Streaming),
        ),
        Consumer::KazanInformerTransform => kazan_cache(
            job,
            pods(),
            options()
                .initial_list(InitialList::Streaming)
                .transform(strip_managed_fields::<Pod>),
        ),
        Consumer::KazanCompact => kazan_cache(
            job,
            pods(),
            options().initial_list(InitialList::Streaming).compact_store(true),
        ),
        Consumer::KazanMetadata => kazan_cache(
            job,
            Request::list_of::<PartialObjectMetadata>(ApiResource::of::<Pod>()),
            options().initial_list(InitialList::Streaming),
        ),
        other => Err(ConsumeError::CacheOnly(other.name())),
    }
}

/// kazan's informer over `request`; a task follows its store for the relist.
fn kazan_cache<K>(
    job: &Job,
    request: Request<ObjectList<K>>,
    options: InformerOptions,
) -> Result<Running, ConsumeError>
where
    K: kazan::Object + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let client = super::kazan_client(job)?;
    let informer =
        Informer::start(client, request, options).map_err(|e| ConsumeError::KazanInformer(Box::new(e)))?;
    let store = informer.store();
    let (syncs, receiver) = watch::channel(0u64);
    let max_rv = Arc::new(AtomicU64::new(0));
    let follower = tokio::spawn(follow_store(store.clone(), syncs, max_rv.clone()));
    let len_store = store.clone();
    let bytes_store = store;
    Ok(Running {
        syncs: receiver,
        max_rv,
        errors: Arc::new(AtomicU64::new(0)),
        len: Box::new(move || len_store.len() as u64),
        store_bytes: Box::new(move || {
            let stats = bytes_store.stats();
            stats.compact.then_some(stats.compact_bytes as u64)
        }),
        _keep: Box::new((informer, AbortOnDrop(follower))),
    })
}

/// Counts the store's completed (re)lists into `syncs` and its version into `max_rv`: the first
/// sync when the store says so, the relist when the store has been relisting and no longer is.
async fn follow_store<K: kazan::Object>(store: Store<K>, syncs: watch::Sender<u64>, max_rv: Arc<AtomicU64>) {
    if store.wait_synced().await.is_err() {
        return;
    }
    syncs.send_replace(1);
    let mut relisting = false;
    loop {
        let now_relisting = store.is_relisting();
        if relisting && !now_relisting {
            syncs.send_modify(|n| *n += 1);
        }
        relisting = now_relisting;
        if !relisting {
            let rv = store
                .resource_version()
                .and_then(|rv| rv.parse().ok())
                .unwrap_or(0);
            max_rv.fetch_max(rv, Ordering::Relaxed);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// kube-runtime's `reflector` into a `Store<K>` over `stream`, driven by a task that counts each
/// `InitDone` (a complete (re)list) and the highest version of the objects it sees.
fn kube_cache<K, S>(stream: S) -> Running
where
    K: Resource + Clone + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    S: futures_util::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let (syncs, receiver) = watch::channel(0u64);
    let max_rv = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let (task_rv, task_errors) = (max_rv.clone(), errors.clone());
    let task = tokio::spawn(async move {
        let mut events = std::pin::pin!(reflector(writer, stream));
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::InitDone) => {
                    syncs.send_modify(|n| *n += 1);
                }
                Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                    let rv = object
                        .resource_version()
                        .and_then(|rv| rv.parse().ok())
                        .unwrap_or(0);
                    task_rv.fetch_max(rv, Ordering::Relaxed);
                }
                Ok(watcher::Event::Delete(_) | watcher::Event::Init) => {}
                Err(_) => {
                    task_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    let len_reader = reader.clone();
    Running {
        syncs: receiver,
        max_rv,
        errors,
        len: Box::new(move || len_reader.len() as u64),
        store_bytes: Box::new(|| None),
        _keep: Box::new((reader, AbortOnDrop(task))),
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn print_line(line: &CacheLine) -> Result<(), ConsumeError> {
    let text = serde_json::to_string(line).map_err(|e| ConsumeError::Report(std::io::Error::other(e)))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}").map_err(ConsumeError::Report)?;
    stdout.flush().map_err(ConsumeError::Report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_of_the_protocol_survives_the_trip_through_json() -> Result<(), serde_json::Error> {
        let lines = [
            CacheLine::Synced(Synced {
                seconds: 1.5,
                cpu_seconds: 0.5,
                peak_rss_bytes: 10 << 20,
                objects: 3,
            }),
            CacheLine::Ready(Ready {
                rss_bytes: 9 << 20,
                store_bytes: Some(1234),
                objects: 3,
                peak_reset: true,
            }),
            CacheLine::Done(Done {
                relist_seconds: 2.0,
                relist_cpu_seconds: 1.0,
                relist_peak_rss_bytes: 11 << 20,
                rss_bytes: 9 << 20,
                objects: 3,
                store_bytes: None,
                errors: 1,
            }),
        ];
        for line in lines {
            let text = serde_json::to_string(&line)?;
            assert!(!text.contains('\n'), "one line: {text}");
            assert_eq!(serde_json::from_str::<CacheLine>(&text)?, line);
        }
        let last: Final = serde_json::from_str(r#"{"resource_version":42}"#)?;
        assert_eq!(last.resource_version, 42);
        Ok(())
    }

    #[test]
    fn every_kazan_consumer_is_measured_against_a_kube_runtime_reflector() {
        let kube = [
            Consumer::KubeReflector,
            Consumer::KubeReflectorModify,
            Consumer::KubeReflectorMetadata,
        ];
        for (consumer, reference) in CONSUMERS {
            assert!(
                kube.contains(&reference),
                "{} against {}",
                consumer.name(),
                reference.name()
            );
            let position = |c: Consumer| CONSUMERS.iter().position(|(x, _)| *x == c);
            assert!(
                position(reference) <= position(consumer),
                "the reference runs first in a round"
            );
        }
    }
}
