//! Waiting until an object meets a condition, on a watch: from a version the caller knows (the
//! version of the write it just made, so nothing is listed and no change after it is missed), or
//! from a list when it knows none.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::{
    Client, Object, Request,
    resource::ObjectList,
    watcher::{EventKind, WatchError, Watcher, WatcherOptions},
};

/// Why [`await_condition`] returned without the condition met.
#[derive(Debug, thiserror::Error)]
pub enum AwaitError {
    /// The condition was not met within the timeout.
    #[error("condition not met within {0:?}")]
    Timeout(Duration),
    /// The version to watch from is too old for the server (410 Gone): read the object again and
    /// wait from its new version.
    #[error("the version to wait from is gone: {0}")]
    Gone(String),
    /// The watch could not start.
    #[error("the watch could not start")]
    Start(#[source] WatchError),
    /// The watch failed for good.
    #[error("the watch failed")]
    Failed(#[source] Arc<WatchError>),
    /// The watch ended without an error (it should not).
    #[error("the watch ended before the condition was met")]
    Ended,
}

/// Waits until `condition` holds for the object `request` selects (typically one object, through
/// a `metadata.name` field selector), for at most `timeout`.
///
/// With `from_version`, the watch starts at that version and nothing is listed: the condition is
/// checked on every change after it (check the object you hold yourself before waiting). Without
/// it, the objects are listed first and checked, then watched. `condition` gets `None` when the
/// object is deleted, or when the list is empty. Returns the object that met the condition
/// (`None` if its absence did).
pub async fn await_condition<K, C>(
    client: &Client,
    request: Request<ObjectList<K>>,
    from_version: Option<&str>,
    mut condition: C,
    timeout: Duration,
) -> Result<Option<K>, AwaitError>
where
    K: Object + DeserializeOwned + Send + 'static,
    C: FnMut(Option<&K>) -> bool,
{
    let options = WatcherOptions::new().log(None);
    let options = match from_version {
        Some(rv) => options.resource_version(rv),
        None => options.deliver_initial_list(true),
    };
    let mut events = Watcher::stream(client.clone(), request, options).map_err(AwaitError::Start)?;
    let wait = async {
        let mut seen_any = false;
        while let Some(event) = events.next().await {
            match event.kind {
                EventKind::Added(obj) | EventKind::Modified(obj) => {
                    seen_any = true;
                    if condition(Some(&obj)) {
                        return Ok(Some(obj));
                    }
                }
                EventKind::Deleted(_) => {
                    if condition(None) {
                        return Ok(None);
                    }
                }
                EventKind::Synced => {
                    if !seen_any && condition(None) {
                        return Ok(None);
                    }
                }
                EventKind::Gone { message } => return Err(AwaitError::Gone(message)),
                EventKind::Failed(err) => return Err(AwaitError::Failed(err)),
                EventKind::Bookmark | EventKind::Skipped(_) => {}
            }
        }
        Err(AwaitError::Ended)
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(result) => result,
        Err(_) => Err(AwaitError::Timeout(timeout)),
    }
}
