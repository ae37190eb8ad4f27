//! kube-runtime's `watcher` (kube 5): typed `Pod`, default watcher configuration (a paginated list,
//! then a watch from the list's resourceVersion), over kube's own hyper + rustls client.

use std::pin::pin;

use futures_util::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt as _, watcher},
};

use crate::{
    error::ConsumeError,
    job::Job,
    sink::{Flow, Sink},
};

/// Watches every pod on the job's server with kube-runtime and hands each object to the sink.
pub async fn consume(job: &Job, sink: &mut Sink) -> Result<(), ConsumeError> {
    let url = job.server.clone().unwrap_or_default();
    let cluster_url = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| ConsumeError::ServerUrl {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    let mut config = kube::Config::new(cluster_url);
    config.root_cert_file = job.ca_file.clone();
    let client = Client::try_from(config).map_err(ConsumeError::KubeClient)?;
    let api: Api<Pod> = Api::all(client);

    sink.start();
    let mut pods = pin!(watcher(api, watcher::Config::default()).touched_objects());
    while let Some(pod) = pods.try_next().await.map_err(ConsumeError::KubeWatcher)? {
        if sink.event(pod.metadata.resource_version.as_deref()).await? == Flow::Done {
            return Ok(());
        }
    }
    Err(sink.ended_early())
}
