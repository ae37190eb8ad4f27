//! kazan's Watcher, typed `Pod`, in its two forms: spawned (`Watcher::start`, events through the
//! handle's bounded channel, or through one channel shared by all the watchers when there are
//! several, as Kazan's `send_to` does) and as a `Stream` (`Watcher::stream`, progress only while
//! polled; several are merged with `select_all`). Every watcher starts strictly after the
//! resourceVersion just before the first expected event, with default options otherwise.

use futures_util::{StreamExt, stream::BoxStream};
use k8s_openapi::api::core::v1::Pod;
use kazan::{
    Client, Decoder, ObjectList, Request,
    watcher::{Event, EventKind, Watcher, WatcherOptions},
};
use tokio::sync::mpsc;

use crate::{
    error::{BenchError, ConsumeError},
    job::Job,
    sink::{Flow, Sink},
};

/// The capacity of the channel several watchers share (the same as one watcher's own channel).
const SHARED_CHANNEL_CAPACITY: usize = 100;

/// The spawned form: events arrive through a channel. With `decode_concurrency` above 1, objects
/// are decoded ahead on the runtime's threads instead of in `recv`.
pub async fn consume_channel(
    job: &Job,
    sink: &mut Sink,
    decode_concurrency: usize,
    decoder: Decoder,
) -> Result<(), ConsumeError> {
    let client = client(job)?;
    sink.start();
    let mut scopes = job.scopes();
    if scopes.len() == 1 {
        let request = request(scopes.pop().flatten());
        let options = options(job)
            .decode_concurrency(decode_concurrency)
            .decoder(decoder);
        let mut handle =
            Watcher::start(client, request, options).map_err(|e| ConsumeError::KazanWatcher(Box::new(e)))?;
        while let Some(event) = handle.recv().await {
            if deliver(job, event, sink).await? == Flow::Done {
                return Ok(());
            }
        }
        return Err(sink.ended_early());
    }
    let (sender, mut events) = mpsc::channel::<Event<Pod>>(SHARED_CHANNEL_CAPACITY);
    let mut handles = Vec::with_capacity(scopes.len());
    for scope in scopes {
        let options = options(job)
            .decode_concurrency(decode_concurrency)
            .decoder(decoder)
            .send_to(sender.clone());
        let handle = Watcher::start(client.clone(), request(scope), options)
            .map_err(|e| ConsumeError::KazanWatcher(Box::new(e)))?;
        handles.push(handle);
    }
    drop(sender);
    while let Some(event) = events.recv().await {
        if deliver(job, event, sink).await? == Flow::Done {
            return Ok(());
        }
    }
    Err(sink.ended_early())
}

/// The `Stream` form: the watches run as the stream is polled.
pub async fn consume_stream(job: &Job, sink: &mut Sink, decoder: Decoder) -> Result<(), ConsumeError> {
    let client = client(job)?;
    sink.start();
    let mut streams = Vec::new();
    for scope in job.scopes() {
        let stream = Watcher::stream(client.clone(), request(scope), options(job).decoder(decoder))
            .map_err(|e| ConsumeError::KazanWatcher(Box::new(e)))?;
        streams.push(stream);
    }
    let mut events: BoxStream<'_, Event<Pod>> = match streams.pop() {
        Some(only) if streams.is_empty() => only.boxed(),
        Some(last) => {
            streams.push(last);
            futures_util::stream::select_all(streams).boxed()
        }
        None => return Err(sink.ended_early()),
    };
    while let Some(event) = events.next().await {
        if deliver(job, event, sink).await? == Flow::Done {
            return Ok(());
        }
    }
    Err(sink.ended_early())
}

/// The lazy form: a `Stream` of `RawObject`s, typed decoding left to the consumer (not done).
pub async fn consume_raw(job: &Job, sink: &mut Sink) -> Result<(), ConsumeError> {
    use kazan::{ApiResource, Object, RawObject};
    let client = client(job)?;
    sink.start();
    let mut streams = Vec::new();
    for scope in job.scopes() {
        let request = Request::list_of::<RawObject>(ApiResource::of::<Pod>());
        let request = match scope {
            Some(namespace) => request.namespace(&namespace),
            None => request,
        };
        let stream = Watcher::stream(client.clone(), request, options(job))
            .map_err(|e| ConsumeError::KazanWatcher(Box::new(e)))?;
        streams.push(stream);
    }
    let mut events = futures_util::stream::select_all(streams);
    while let Some(event) = events.next().await {
        let flow = match event.kind {
            EventKind::Added(raw) | EventKind::Modified(raw) | EventKind::Deleted(raw) => {
                let watch = job.watch_index(raw.namespace());
                sink.event(watch, raw.resource_version()).await?
            }
            EventKind::Bookmark | EventKind::Synced => Flow::More,
            EventKind::Gone { message } => return Err(ConsumeError::KazanEnded(format!("Gone: {message}"))),
            EventKind::Failed(error) => return Err(ConsumeError::KazanEnded(format!("Failed: {error}"))),
            EventKind::Skipped(error) => {
                return Err(ConsumeError::KazanEnded(format!("Skipped an event: {error}")));
            }
        };
        if flow == Flow::Done {
            return Ok(());
        }
    }
    Err(sink.ended_early())
}

/// The one `kazan::Client` of a consumer process: the job's server, trusting its CA file.
pub(crate) fn client(job: &Job) -> Result<Client, ConsumeError> {
    let mut config = kazan::Config::new(job.server_url()?);
    // The same bodies as the peer: kube-runtime is built here without kube's `gzip` feature, so
    // it asks for plain answers; kazan asks for gzip by default (as client-go does), which made
    // the server compress each 2 MB list page for kazan alone in the cache runs before this.
    config.disable_compression = true;
    if let Some(path) = &job.ca_file {
        let pem = std::fs::read(path).map_err(|source| BenchError::File {
            path: path.clone(),
            source,
        })?;
        config.root_certs_pem = Some(pem);
    }
    Client::new(config).map_err(|e| ConsumeError::KazanClient(Box::new(e)))
}

fn request(scope: Option<String>) -> Request<ObjectList<Pod>> {
    match scope {
        Some(namespace) => Request::list::<Pod>().namespace(&namespace),
        None => Request::list::<Pod>(),
    }
}

fn options(job: &Job) -> WatcherOptions {
    WatcherOptions::new().resource_version(job.first_rv.saturating_sub(1).to_string())
}

/// Hands an object event to the sink; a watcher that ends or skips an event fails the run.
async fn deliver(job: &Job, event: Event<Pod>, sink: &mut Sink) -> Result<Flow, ConsumeError> {
    match event.kind {
        EventKind::Added(pod) | EventKind::Modified(pod) | EventKind::Deleted(pod) => {
            let watch = job.watch_index(pod.metadata.namespace.as_deref());
            sink.event(watch, pod.metadata.resource_version.as_deref()).await
        }
        EventKind::Bookmark | EventKind::Synced => Ok(Flow::More),
        EventKind::Gone { message } => Err(ConsumeError::KazanEnded(format!("Gone: {message}"))),
        EventKind::Failed(error) => Err(ConsumeError::KazanEnded(format!("Failed: {error}"))),
        EventKind::Skipped(error) => Err(ConsumeError::KazanEnded(format!("Skipped an event: {error}"))),
    }
}
