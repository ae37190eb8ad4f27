//! A cache kept by an informer: list, watch, relist after Gone, all done by `kazan::informer`,
//! with a reconcile loop that reads the store, an index, and a checkpoint that lets a restart skip
//! the list. While it is stopped, ConfigMaps change and the server compacts its history, so the
//! restart from the checkpoint meets a real 410 Gone: the informer relists and reports what
//! vanished meanwhile. It ends by comparing every cached object, whole, with the server's, and
//! exits with status 1 if they differ.
//!
//! It runs against the embedded API server, so it needs no cluster:
//!
//! ```text
//! cargo run -p kazan --example cache
//! ```

use std::{process::ExitCode, sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::ConfigMap;
use kazan::{
    Client, Config, Request,
    informer::{CheckpointStatus, EventKind, Informer, InformerOptions},
};
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => {
            println!("cache == server: yes");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cache example failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
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

    // While nobody watches: one ConfigMap changes, one goes, one comes, and the server compacts
    // its history, so the checkpoint's version is too old to watch from.
    server.merge_patch(
        "v1",
        "ConfigMap",
        Some("default"),
        "settings-0",
        json!({"data": {"step": "3"}}),
    )?;
    server.delete("v1", "ConfigMap", Some("default"), "settings-2")?;
    server.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "late", "namespace": "default"}, "data": {"step": "1"}}))?;
    server.faults().compact_history();

    let again = Informer::start(client.clone(), request(), options())?;
    if let CheckpointStatus::Loaded {
        resource_version,
        objects,
    } = again.checkpoint_status()
    {
        println!("restarted from the checkpoint: {objects} objects at {resource_version}, no list");
    }
    let mut changes = again.subscribe();
    let mut gone_seen = false;
    let mut snapshot_done = false;
    // The snapshot of the checkpoint, then the watch's Gone, the relist's changes and Synced.
    for _ in 0..1_000 {
        let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(10), changes.recv()).await else {
            return Err("the informer did not relist after the compaction".into());
        };
        match &event.kind {
            EventKind::Deleted {
                last,
                final_state_unknown: true,
            } => {
                gone_seen = true;
                println!("vanished while stopped: {:?}", last.metadata.name);
            }
            EventKind::Modified { new, .. } => println!("changed while stopped: {:?}", new.metadata.name),
            EventKind::Added(new) if snapshot_done => {
                println!("added while stopped: {:?}", new.metadata.name)
            }
            // The relist's end: its deletions come just before it.
            EventKind::Synced if gone_seen => break,
            EventKind::Synced => snapshot_done = true,
            _ => {}
        }
    }
    if !gone_seen {
        return Err("the restart did not meet the compaction (no deletion reported)".into());
    }

    // Whole objects, compared with the server's.
    let listed = client.run(&request()).await?.items;
    let cached = again.store().list();
    again.stop().await?;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    let mut cached: Vec<&ConfigMap> = cached.iter().map(|cm| &**cm).collect();
    let mut listed: Vec<&ConfigMap> = listed.iter().collect();
    cached.sort_by_key(|cm| cm.metadata.name.clone());
    listed.sort_by_key(|cm| cm.metadata.name.clone());
    if cached != listed {
        return Err(format!(
            "the cache ({} objects) differs from the server ({} objects)",
            cached.len(),
            listed.len()
        )
        .into());
    }
    println!("{} ConfigMaps compared whole", cached.len());
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
