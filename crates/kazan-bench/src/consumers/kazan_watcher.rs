//! kazan's Watcher, typed `Pod`, in its two forms: spawned (`Watcher::start`, events through the
//! handle's bounded channel) and as a `Stream` (`Watcher::stream`, progress only while polled).
//! Both start strictly after the resourceVersion just before the first expected event, with the
//! watcher's default options otherwise.

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kazan::{
    Client, Request,
    watcher::{Event, EventKind, Watcher, WatcherOptions},
};

use crate::{
    error::ConsumeError,
    job::Job,
    sink::{Flow, Sink},
};

/// The spawned form: events arrive through the handle's channel.
pub async fn consume_channel(job: &Job, sink: &mut Sink) -> Result<(), ConsumeError> {
    let client = client(job)?;
    sink.start();
    let mut handle =
        Watcher::start(client, Request::list::<Pod>(), options(job)).map_err(ConsumeError::KazanWatcher)?;
    while let Some(event) = handle.recv().await {
        if deliver(event, sink).await? == Flow::Done {
            handle.stop().await;
            return Ok(());
        }
    }
    Err(sink.ended_early())
}

/// The `Stream` form: the watch runs as the stream is polled.
pub async fn consume_stream(job: &Job, sink: &mut Sink) -> Result<(), ConsumeError> {
    let client = client(job)?;
    sink.start();
    let mut events =
        Watcher::stream(client, Request::list::<Pod>(), options(job)).map_err(ConsumeError::KazanWatcher)?;
    while let Some(event) = events.next().await {
        if deliver(event, sink).await? == Flow::Done {
            return Ok(());
        }
    }
    Err(sink.ended_early())
}

fn client(job: &Job) -> Result<Client, ConsumeError> {
    let url = job.server.clone().unwrap_or_default();
    let cluster_url = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| ConsumeError::ServerUrl {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    let mut config = kazan::Config::new(cluster_url);
    if let Some(path) = &job.ca_file {
        let pem = std::fs::read(path).map_err(|source| crate::error::BenchError::File {
            path: path.clone(),
            source,
        })?;
        config.root_certs_pem = Some(pem);
    }
    Client::new(config).map_err(ConsumeError::KazanClient)
}

fn options(job: &Job) -> WatcherOptions {
    WatcherOptions::new().resource_version(job.first_rv.saturating_sub(1).to_string())
}

/// Hands an object event to the sink; a watcher that ends or skips an event fails the run.
async fn deliver(event: Event<Pod>, sink: &mut Sink) -> Result<Flow, ConsumeError> {
    match event.kind {
        EventKind::Added(pod) | EventKind::Modified(pod) | EventKind::Deleted(pod) => {
            sink.event(pod.metadata.resource_version.as_deref()).await
        }
        EventKind::Bookmark | EventKind::Synced => Ok(Flow::More),
        EventKind::Gone { message } => Err(ConsumeError::KazanEnded(format!("Gone: {message}"))),
        EventKind::Failed(error) => Err(ConsumeError::KazanEnded(format!("Failed: {error}"))),
        EventKind::Skipped(error) => Err(ConsumeError::KazanEnded(format!("Skipped an event: {error}"))),
    }
}
