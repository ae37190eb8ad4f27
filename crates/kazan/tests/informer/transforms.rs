//! Transforms: applied once per object the watch brings, before the store or any subscriber holds
//! it (client-go's `TransformFunc` in `tools/cache/controller.go`, kube-runtime's
//! `WatchStreamExt::modify`).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kazan::{
    Request,
    informer::{Informer, InformerError, strip_managed_fields},
};
use serde_json::{Value, json};

use super::{TestResult, WAIT, client, converged, next, options, server, set_value, start};

/// A ConfigMap with a managedFields entry, as a real server writes one.
fn managed(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "w", "managedFields": [{
            "manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
            "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:v": {}}}}]},
        "data": {"v": "1"}})
}

#[tokio::test]
async fn the_transform_runs_exactly_once_per_object_before_it_is_stored_or_delivered() -> TestResult {
    let server = server().await?;
    for name in ["a", "b", "c"] {
        server.create(managed(name))?;
    }
    let listed = server.get("v1", "ConfigMap", Some("w"), "a")?;
    assert!(
        listed["metadata"]["managedFields"].is_array(),
        "the server keeps them: {listed}"
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let informer = start(
        &server,
        options().transform(move |cm: &mut ConfigMap| {
            counter.fetch_add(1, Ordering::SeqCst);
            strip_managed_fields(cm);
        }),
    )?;
    let mut sub = informer.subscribe();
    let store = informer.store();
    tokio::time::timeout(WAIT, store.wait_synced()).await??;
    set_value(&server, "a", "2")?;
    server.delete("v1", "ConfigMap", Some("w"), "b")?;
    converged(&store, &server).await?;
    // Three listed, one modified, one deleted: five objects, five calls.
    let mut delivered = 0;
    while delivered < 5 {
        let event = next(&mut sub).await?;
        if let Some(object) = event.object() {
            assert_eq!(object.metadata.managed_fields, None, "{event:?}");
            delivered += 1;
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    for object in store.list() {
        assert_eq!(object.metadata.managed_fields, None);
    }
    Ok(())
}

#[tokio::test]
async fn a_transform_of_another_object_type_is_refused_at_start() -> TestResult {
    let server = server().await?;
    let started = Informer::<ConfigMap>::start(
        client(&server)?,
        Request::list::<ConfigMap>().namespace("w"),
        options().transform(strip_managed_fields::<Pod>),
    );
    match started {
        Err(error @ InformerError::TransformType { .. }) => {
            let text = error.to_string();
            assert!(text.contains("Pod") && text.contains("ConfigMap"), "{text}");
        }
        Err(other) => return Err(format!("another error: {other}").into()),
        Ok(_) => return Err("started with a Pod transform on ConfigMaps".into()),
    }
    Ok(())
}
