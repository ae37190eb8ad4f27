//! A cache kept by an informer: list, watch, relist after Gone, all done by `kazan::informer`,
//! with a reconcile loop that reads the store, an index, and a checkpoint that lets a restart skip
//! the list.
//!
//! It runs against the embedded API server, so it needs no cluster:
//!
//! ```text
//! cargo run -p kazan --example cache
//! ```

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::ConfigMap;
use kazan::{
    Client, Config, Request,
    informer::{CheckpointStatus, EventKind, Informer, InformerOptions},
};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let server = Arc::new(kazan_apiserver::ApiServer::start().await?);
    let client = Client::new(Config::new(server.url().parse()?))?;
    let dir = std::env::temp_dir().join(format!("kazan-cache-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let checkpoint = dir.join("configmaps.checkpoint");
    let request = || Request::list::<ConfigMap>().namespace("default");
    let options = || InformerOptions::new().checkpoint(&checkpoint, Duration::from_secs(5));

    let informer = Informer::start(client.clone(), request(), options())?;
    // Which ConfigMaps are at which step: a lookup by value, kept up to date on every change.
    informer.index_by("step", |cm: &ConfigMap| {
        cm.data
            .as_ref()
            .and_then(|d| d.get("step").cloned())
            .into_iter()
            .collect()
    });
    let store = informer.store();
    let mut changes = informer.subscribe();
    store.wait_synced().await?;
    println!(
        "synced: {} ConfigMaps at resourceVersion {:?}",
        store.len(),
        store.resource_version()
    );

    // Someone else changes ConfigMaps in the background.
    let writer = tokio::spawn(workload(server.clone()));

    // The reconcile loop: an event says which object to look at; the store says how it is now.
    loop {
        let event = match tokio::time::timeout(Duration::from_secs(1), changes.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(_) if writer.is_finished() => break,
            Err(_) => continue,
        };
        let Some(object) = event.object() else {
            println!("synced at {:?}", event.resource_version);
            continue;
        };
        let name = object.metadata.name.clone().unwrap_or_default();
        match (&event.kind, store.get("default", &name)) {
            (EventKind::Modified { old, .. }, Some(now)) => {
                println!("reconcile {name}: step {:?} -> {:?}", step(old), step(&now))
            }
            (_, Some(now)) => println!("reconcile {name}: step {:?}", step(&now)),
            (
                EventKind::Deleted {
                    final_state_unknown, ..
                },
                None,
            ) => {
                println!("clean up {name} (deletion seen: {})", !final_state_unknown)
            }
            (_, None) => println!("{name} is already gone"),
        }
    }
    let at_two = store.by_index("step", "2").unwrap_or_default();
    println!("{} ConfigMaps at step 2", at_two.len());
    // Stopping writes the checkpoint; the next start watches from it, with no list.
    informer.stop().await?;
    drop(changes);

    let again = Informer::start(client, request(), options())?;
    if let CheckpointStatus::Loaded {
        resource_version,
        objects,
    } = again.checkpoint_status()
    {
        println!("restarted from the checkpoint: {objects} objects at {resource_version}, no list");
    }
    again.stop().await?;

    let server_names: Vec<String> = server
        .list("v1", "ConfigMap", Some("default"))?
        .iter()
        .filter_map(|cm| cm["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let cached: Vec<String> = store
        .list()
        .iter()
        .filter_map(|cm| cm.metadata.name.clone())
        .collect();
    println!("cache:  {cached:?}");
    println!("server: {server_names:?}");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn step(cm: &ConfigMap) -> Option<String> {
    cm.data.as_ref().and_then(|d| d.get("step").cloned())
}

/// Creates, updates and deletes ConfigMaps, one change every 50 ms.
async fn workload(server: Arc<kazan_apiserver::ApiServer>) {
    for i in 0..6 {
        let name = format!("settings-{i}");
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": {"step": "1"}});
        if server.create(object).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let patch = json!({"data": {"step": "2"}});
        if server
            .merge_patch("v1", "ConfigMap", Some("default"), &name, patch)
            .is_err()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if i % 2 == 1 && server.delete("v1", "ConfigMap", Some("default"), &name).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
