//! kube-runtime's `watcher` (kube 5): typed `Pod`, default watcher configuration (a paginated list,
//! then a watch from the list's resourceVersion), over kube's own hyper + rustls client, which
//! speaks HTTP/1.1 only. One watcher per watched namespace, all on one `Client`, merged with
//! `select_all` when there are several.
//!
//! kube-runtime yields errors as stream items and recovers on the next poll; as its documentation
//! advises, the watcher runs with `default_backoff()`, and an error is counted and skipped rather
//! than ending the run (kazan's Watcher retries inside, the same way).

use futures_util::{StreamExt, stream::BoxStream};
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

/// kube's client for the job's server (trusting the job's CA file, if any).
pub(crate) fn client(job: &Job) -> Result<Client, ConsumeError> {
    let mut config = kube::Config::new(job.server_url()?);
    config.root_cert_file = job.ca_file.clone();
    Client::try_from(config).map_err(|e| ConsumeError::KubeClient(Box::new(e)))
}

/// Watches the job's scopes with kube-runtime and hands each object to the sink.
pub async fn consume(job: &Job, sink: &mut Sink) -> Result<(), ConsumeError> {
    let client = client(job)?;

    sink.start();
    let watch = |scope: Option<String>| {
        let api: Api<Pod> = match scope {
            Some(namespace) => Api::namespaced(client.clone(), &namespace),
            None => Api::all(client.clone()),
        };
        watcher(api, watcher::Config::default())
            .default_backoff()
            .touched_objects()
            .boxed()
    };
    let mut scopes = job.scopes();
    let mut pods: BoxStream<'_, _> = if scopes.len() == 1 {
        watch(scopes.pop().flatten())
    } else {
        futures_util::stream::select_all(scopes.into_iter().map(watch)).boxed()
    };
    while let Some(item) = pods.next().await {
        let pod = match item {
            Ok(pod) => pod,
            Err(error) => {
                sink.retried_error(&error);
                continue;
            }
        };
        let watch = job.watch_index(pod.metadata.namespace.as_deref());
        if sink
            .event(watch, pod.metadata.resource_version.as_deref())
            .await?
            == Flow::Done
        {
            return Ok(());
        }
    }
    Err(sink.ended_early())
}
