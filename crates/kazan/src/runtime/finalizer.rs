//! A finalizer around a reconcile, so that cleanup runs before the object goes away: the
//! finalizer is added before the first real reconcile, cleanup runs once `deletionTimestamp` is
//! set, and the finalizer is removed only after cleanup succeeded.
//!
//! Every write is a JSON patch that starts with a `test` of `/metadata/resourceVersion`, so it
//! applies only to the object the decision was made on: two replicas (or a stale cache) cannot
//! both add the finalizer, nor remove it after someone else changed the object. When the test
//! fails (the server answers 409 or 422) the helper reads the object again and decides anew, a
//! bounded number of times. kube-runtime's `finalizer` tests only the finalizers list.
//! The contract mirrors kube-runtime's (`kube_runtime::finalizer`): `reconcile` must be
//! idempotent, since an `Apply` may run again for an object already handled and a `Cleanup` may
//! run again after a crash before the finalizer was removed.

use std::{future::Future, sync::Arc};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{key::ObjectKey, reconciler::Action};
use crate::{Client, Object, Request};

/// How many times the helper reads the object again after a lost race before giving up.
const MAX_ATTEMPTS: u32 = 5;

/// What the wrapped reconcile is asked to do.
#[derive(Debug)]
pub enum Event<K> {
    /// The object is live (and carries the finalizer): bring the world in line with it.
    Apply(Arc<K>),
    /// The object is being deleted and still carries the finalizer: clean up what it owns
    /// outside Kubernetes. The finalizer is removed once this returns `Ok`.
    Cleanup(Arc<K>),
}

/// Why [`finalizer`] failed.
#[derive(Debug, thiserror::Error)]
pub enum FinalizerError<E: std::error::Error + 'static> {
    /// The reconcile of a live object failed.
    #[error("reconcile of {key} failed")]
    Apply {
        /// The object.
        key: ObjectKey,
        /// The reconcile's error.
        #[source]
        source: E,
    },
    /// The cleanup of a deleted object failed; the finalizer stays.
    #[error("cleanup of {key} failed; finalizer kept")]
    Cleanup {
        /// The object.
        key: ObjectKey,
        /// The cleanup's error.
        #[source]
        source: E,
    },
    /// Writing the finalizer (adding or removing it) failed for a reason other than a lost race.
    #[error("{action} finalizer {finalizer} on {key} failed")]
    Write {
        /// `adding` or `removing`.
        action: &'static str,
        /// The finalizer's name.
        finalizer: String,
        /// The object.
        key: ObjectKey,
        /// The request's error.
        #[source]
        source: crate::Error,
    },
    /// Reading the object again after a lost race failed.
    #[error("reading {key} again after a conflicting write failed")]
    Reread {
        /// The object.
        key: ObjectKey,
        /// The request's error.
        #[source]
        source: crate::Error,
    },
    /// The object kept changing under the helper's writes.
    #[error("{key} changed under every one of {attempts} finalizer writes; giving up for now")]
    Contended {
        /// The object.
        key: ObjectKey,
        /// Writes attempted.
        attempts: u32,
    },
    /// The object has no `metadata.resourceVersion`, so no write could be guarded.
    #[error("{key} has no resourceVersion; finalizer writes must be guarded by one")]
    NoResourceVersion {
        /// The object.
        key: ObjectKey,
    },
}

/// Runs `reconcile` under the finalizer `name` (for example `example.com/cleanup`):
/// - live object without the finalizer: adds it (guarded write), then `Apply` on the patched
///   object;
/// - live object with it: `Apply`;
/// - deleted object with it: `Cleanup`, then removes the finalizer (guarded write) and returns
///   cleanup's action;
/// - deleted object without it: nothing to do ([`Action::await_change`]).
///
/// After a lost race (the object changed since `object` was read) the object is read again and
/// the decision is made again; `Cleanup` runs at most once per call.
pub async fn finalizer<K, F, Fut, E>(
    client: &Client,
    name: &str,
    object: Arc<K>,
    reconcile: F,
) -> Result<Action, FinalizerError<E>>
where
    K: k8s_openapi::Resource
        + k8s_openapi::Metadata<Ty = ObjectMeta>
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
    F: FnOnce(Event<K>) -> Fut,
    Fut: Future<Output = Result<Action, E>>,
    E: std::error::Error + 'static,
{
    let mut reconcile = Some(reconcile);
    let mut object = object;
    let mut cleaned: Option<Action> = None;
    let key = ObjectKey::of(object.as_ref());
    for _ in 0..MAX_ATTEMPTS {
        let meta = object.meta();
        let position = meta
            .finalizers
            .as_ref()
            .and_then(|f| f.iter().position(|x| x == name));
        let deleting = meta.deletion_timestamp.is_some();
        let Some(rv) = meta.resource_version.clone() else {
            return Err(FinalizerError::NoResourceVersion { key });
        };
        match (deleting, position) {
            (false, Some(_)) => {
                let Some(reconcile) = reconcile.take() else {
                    break;
                };
                return reconcile(Event::Apply(object))
                    .await
                    .map_err(|source| FinalizerError::Apply { key, source });
            }
            (false, None) => {
                let add = if meta.finalizers.is_some() {
                    json!({"op": "add", "path": "/metadata/finalizers/-", "value": name})
                } else {
                    json!({"op": "add", "path": "/metadata/finalizers", "value": [name]})
                };
                match guarded_patch(client, object.as_ref(), &rv, vec![add]).await {
                    Ok(patched) => {
                        let Some(reconcile) = reconcile.take() else {
                            break;
                        };
                        return reconcile(Event::Apply(Arc::new(patched)))
                            .await
                            .map_err(|source| FinalizerError::Apply { key, source });
                    }
                    Err(err) => {
                        match after_failed_write(client, object.as_ref(), &rv, err, "adding", name).await? {
                            Some(fresh) => object = Arc::new(fresh),
                            // Gone meanwhile: nothing to reconcile.
                            None => return Ok(Action::await_change()),
                        }
                    }
                }
            }
            (true, Some(index)) => {
                let action = match cleaned {
                    Some(action) => action,
                    None => {
                        let Some(reconcile) = reconcile.take() else {
                            break;
                        };
                        let action = reconcile(Event::Cleanup(object.clone()))
                            .await
                            .map_err(|source| FinalizerError::Cleanup {
                                key: key.clone(),
                                source,
                            })?;
                        cleaned = Some(action);
                        action
                    }
                };
                let path = format!("/metadata/finalizers/{index}");
                let ops = vec![
                    json!({"op": "test", "path": path, "value": name}),
                    json!({"op": "remove", "path": path}),
                ];
                match guarded_patch(client, object.as_ref(), &rv, ops).await {
                    Ok(_) => return Ok(action),
                    Err(err) => {
                        match after_failed_write(client, object.as_ref(), &rv, err, "removing", name).await? {
                            Some(fresh) => object = Arc::new(fresh),
                            None => return Ok(action),
                        }
                    }
                }
            }
            (true, None) => return Ok(cleaned.unwrap_or_else(Action::await_change)),
        }
    }
    Err(FinalizerError::Contended {
        key,
        attempts: MAX_ATTEMPTS,
    })
}

/// The request for `object` by name, in its namespace if it has one.
fn scoped<T>(request: Request<T>, object: &impl Object) -> Request<T> {
    match object.namespace() {
        Some(ns) => request.namespace(ns),
        None => request,
    }
}

/// Applies `ops` as a JSON patch guarded by a `test` of the resourceVersion `rv`.
async fn guarded_patch<K>(client: &Client, object: &K, rv: &str, ops: Vec<Value>) -> Result<K, crate::Error>
where
    K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta> + DeserializeOwned + Send + 'static,
{
    let mut patch = vec![json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv})];
    patch.extend(ops);
    let request = scoped(
        Request::json_patch::<K>(object.name(), &Value::Array(patch)),
        object,
    );
    client.run(&request).await
}

/// After a failed write: a 409 or 422 from a changed object is a lost race (the fresh object is
/// returned, or `None` if it is gone); anything else, or a 422 on an unchanged object, is an error.
async fn after_failed_write<K, E>(
    client: &Client,
    object: &K,
    rv: &str,
    err: crate::Error,
    action: &'static str,
    name: &str,
) -> Result<Option<K>, FinalizerError<E>>
where
    K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta> + DeserializeOwned + Send + 'static,
    E: std::error::Error + 'static,
{
    let key = ObjectKey::of(object);
    let write_error = |source| FinalizerError::Write {
        action,
        finalizer: name.to_string(),
        key: key.clone(),
        source,
    };
    if err.status_code() == Some(404) {
        return Ok(None);
    }
    if !matches!(err.status_code(), Some(409 | 422)) {
        return Err(write_error(err));
    }
    let fresh: K = match client
        .run(&scoped(Request::get::<K>(object.name()), object))
        .await
    {
        Ok(fresh) => fresh,
        Err(e) if e.status_code() == Some(404) => return Ok(None),
        Err(source) => {
            return Err(FinalizerError::Reread {
                key: key.clone(),
                source,
            });
        }
    };
    if fresh.resource_version() == Some(rv) {
        // Not a race: the patch itself was refused.
        return Err(write_error(err));
    }
    tracing::debug!(%key, action, "finalizer write lost a race; deciding again on the fresh object");
    Ok(Some(fresh))
}
