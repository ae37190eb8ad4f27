//! A cache kept by a Watcher, the way the original Kazan documentation prescribes: list, watch from
//! the list's resourceVersion, apply every event, and on Gone clear, relist and start again.
//!
//! It runs against the embedded API server, so it needs no cluster:
//!
//! ```text
//! cargo run -p kazan --example cache
//! ```

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::ConfigMap;
use kazan::{
    Client, Config, Request,
    watcher::{EventKind, Watcher, WatcherOptions},
};
use serde_json::json;

type Cache = BTreeMap<String, ConfigMap>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Arc::new(kazan_apiserver::ApiServer::start().await?);
    let client = Client::new(Config::new(server.url().parse()?))?;

    // Someone else changes ConfigMaps in the background.
    let writer = tokio::spawn(workload(server.clone()));

    let mut cache = Cache::new();
    let mut generation = 0;
    'relist: while generation < 3 {
        generation += 1;
        // List: the cache is the list, and the list's resourceVersion is where the watch starts.
        let list = client
            .run(&Request::list::<ConfigMap>().namespace("default"))
            .await?;
        cache = list.items.into_iter().map(|cm| (name(&cm), cm)).collect();
        let from = list.metadata.resource_version.unwrap_or_default();
        println!("listed {} ConfigMaps at resourceVersion {from}", cache.len());

        let options = WatcherOptions::new().resource_version(from).name("configmaps");
        let mut watcher = Watcher::start(
            client.clone(),
            Request::list::<ConfigMap>().namespace("default"),
            options,
        )?;
        loop {
            // Quiet for a second after the workload ended: the cache has seen everything.
            let event = match tokio::time::timeout(Duration::from_secs(1), watcher.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(_) if writer.is_finished() => break,
                Err(_) => continue,
            };
            let rv = event.resource_version.clone().unwrap_or_default();
            match event.kind {
                EventKind::Added(cm) | EventKind::Modified(cm) => {
                    println!("{:<8} {:<10} at {rv}", event_name(true), name(&cm));
                    cache.insert(name(&cm), cm);
                }
                EventKind::Deleted(cm) => {
                    println!("{:<8} {:<10} at {rv}", event_name(false), name(&cm));
                    cache.remove(&name(&cm));
                }
                EventKind::Gone { message } => {
                    println!("gone: {message}; relisting");
                    continue 'relist;
                }
                EventKind::Failed(error) => return Err(error.into()),
                _ => {}
            }
        }
        watcher.stop().await;
        break;
    }

    let server_names: Vec<String> = server
        .list("v1", "ConfigMap", Some("default"))?
        .iter()
        .filter_map(|cm| cm["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    println!("cache: {:?}", cache.keys().collect::<Vec<_>>());
    println!("server: {server_names:?}");
    server.shutdown().await;
    Ok(())
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

fn name(cm: &ConfigMap) -> String {
    cm.metadata.name.clone().unwrap_or_default()
}

fn event_name(upsert: bool) -> &'static str {
    if upsert { "upsert" } else { "delete" }
}
