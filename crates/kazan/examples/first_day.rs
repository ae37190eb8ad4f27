//! Day one with kazan, end to end: what a controller author coming from kube-rs writes first,
//! run against the embedded API server so that it needs no cluster.
//!
//! ```text
//! cargo run -p kazan --example first_day
//! ```
//!
//! It creates ConfigMaps (typed) and Widgets (a custom resource, dynamic), watches both kinds with
//! two supervised watchers feeding one channel (`send_to_with`, no `From` impls), keeps a cache of
//! whole objects, and then does what a long-running controller meets sooner or later:
//!
//! 1. it stops both watchers with the consumer behind (a full channel), reads what is left, and
//!    starts new watchers from the versions the stopped ones report: nothing lost, nothing twice;
//! 2. it stops them again, the world changes while nobody watches, and the server compacts its
//!    history, so the reported versions are too old: the new watchers get 410 Gone, the consumer
//!    drops that kind's cache, and the supervisors relist by themselves.
//!
//! It ends by comparing every cached object, whole, with the server's, and exits with status 1 if
//! anything differs, if an event was lost or repeated, or if the Gone did not happen.

use std::{collections::BTreeMap, process::ExitCode, time::Duration};

use k8s_openapi::{
    api::core::v1::ConfigMap,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kazan::{
    ApiResource, Client, Config, DynamicObject, Object, Request,
    watcher::{Event, EventKind, Watcher, WatcherHandle, WatcherOptions},
};
use kazan_apiserver::ApiServer;
use serde_json::{Value, json};
use tokio::sync::mpsc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the one consumer receives: the variants are the mapping functions for `send_to_with`.
enum Message {
    ConfigMap(Event<ConfigMap>),
    Widget(Event<DynamicObject>),
}

/// Cached objects by (kind, namespace, name), kept whole as JSON.
type Cache = BTreeMap<(&'static str, String, String), Value>;

/// How long the consumer waits for an event before deciding it has caught up.
const QUIET: Duration = Duration::from_millis(500);

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => {
            println!("cache == server: yes");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("first_day failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let server = ApiServer::builder().namespaces(&["shop"]).start().await?;
    let client = Client::new(Config::new(server.url().parse()?))?;
    let widgets = define_widgets(&client).await?;

    for i in 0..3 {
        client.run(&Request::create(&config_map(i, "v1"))?).await?;
        client
            .run(&Request::create_of::<DynamicObject>(&widgets, &widget(i, 1))?)
            .await?;
    }

    let mut consumer = Consumer::default();
    let (tx, mut rx) = mpsc::channel::<Message>(4);
    let (mut cms, mut ws) = start(&client, &widgets, &tx, None, None)?;
    consumer.catch_up(&mut rx).await?;
    println!("synced: {} objects cached", consumer.cache.len());

    // 1. Writes pile up while the consumer is busy: the channel is full when the stop comes.
    for i in 3..8 {
        client.run(&Request::create(&config_map(i, "v1"))?).await?;
        client
            .run(&Request::create_of::<DynamicObject>(&widgets, &widget(i, 1))?)
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (cm_rv, w_rv) = stop_both(&cms, &ws, &mut rx, &mut consumer).await?;
    println!("stopped with the channel full; resuming from {cm_rv:?} and {w_rv:?}");
    (cms, ws) = start(&client, &widgets, &tx, cm_rv, w_rv)?;
    consumer.catch_up(&mut rx).await?;
    compare(&client, &widgets, &consumer.cache).await?;
    println!("resumed without a gap: {} objects cached", consumer.cache.len());

    // 2. Stopped; the world changes; the history is compacted past the reported versions.
    let (cm_rv, w_rv) = stop_both(&cms, &ws, &mut rx, &mut consumer).await?;
    client
        .run(
            &Request::merge_patch::<ConfigMap>("settings-0", &json!({"data": {"v": "v2"}})).namespace("shop"),
        )
        .await?;
    client
        .run(&Request::delete::<ConfigMap>("settings-1").namespace("shop"))
        .await?;
    client
        .run(&Request::delete_of::<DynamicObject>(&widgets, "widget-2").namespace("shop"))
        .await?;
    client
        .run(&Request::create_of::<DynamicObject>(&widgets, &widget(9, 2))?)
        .await?;
    server.faults().compact_history();
    println!("history compacted while stopped; resuming from {cm_rv:?} and {w_rv:?}");
    let gones_before = consumer.gones;
    (cms, ws) = start(&client, &widgets, &tx, cm_rv, w_rv)?;
    consumer.catch_up(&mut rx).await?;
    if consumer.gones < gones_before + 2 {
        return Err(format!(
            "expected a Gone from each watcher, got {}",
            consumer.gones - gones_before
        )
        .into());
    }
    println!("both watchers got 410 Gone and relisted");
    cms.stop().await;
    ws.stop().await;

    compare(&client, &widgets, &consumer.cache).await?;
    println!(
        "{} objects compared whole; {} events, {} Gones",
        consumer.cache.len(),
        consumer.events,
        consumer.gones
    );
    Ok(())
}

/// Registers the Widget custom resource and returns how to address it.
async fn define_widgets(client: &Client) -> Result<ApiResource, BoxError> {
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))?;
    client.run(&Request::create(&crd)?).await?;
    Ok(ApiResource::new("example.com", "v1", "Widget", "widgets", true))
}

fn config_map(i: usize, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(format!("settings-{i}")),
            namespace: Some("shop".into()),
            ..ObjectMeta::default()
        },
        data: Some([("v".to_string(), value.to_string())].into()),
        ..ConfigMap::default()
    }
}

fn widget(i: usize, size: u32) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": format!("widget-{i}"), "namespace": "shop"}, "spec": {"size": size}})
}

/// Starts the two supervised watchers into one channel, from the given versions (or listing).
fn start(
    client: &Client,
    widgets: &ApiResource,
    tx: &mpsc::Sender<Message>,
    cm_rv: Option<String>,
    w_rv: Option<String>,
) -> Result<(WatcherHandle<Message>, WatcherHandle<Message>), BoxError> {
    let from = |rv: Option<String>| {
        let options = WatcherOptions::new().log(None);
        match rv {
            Some(rv) => options.resource_version(rv),
            None => options,
        }
    };
    let cms = Watcher::supervise(
        client.clone(),
        Request::list::<ConfigMap>().namespace("shop"),
        from(cm_rv)
            .name("configmaps")
            .send_to_with(tx.clone(), Message::ConfigMap),
    )?;
    let ws = Watcher::supervise(
        client.clone(),
        Request::list_dynamic(widgets).namespace("shop"),
        from(w_rv)
            .name("widgets")
            .send_to_with(tx.clone(), Message::Widget),
    )?;
    Ok((cms, ws))
}

/// Stops both watchers, hands what they left in the channel to the consumer, and returns the
/// versions to resume from, as the stopped watchers report them.
async fn stop_both(
    cms: &WatcherHandle<Message>,
    ws: &WatcherHandle<Message>,
    rx: &mut mpsc::Receiver<Message>,
    consumer: &mut Consumer,
) -> Result<(Option<String>, Option<String>), BoxError> {
    let stopping = async {
        cms.stop().await;
        ws.stop().await;
    };
    // The watchers may be waiting for room in the channel; keep reading while they stop.
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            () = &mut stopping => break,
            Some(message) = rx.recv() => consumer.take(message)?,
        }
    }
    // What is still queued was handed over before the stop: it counts.
    while let Ok(message) = rx.try_recv() {
        consumer.take(message)?;
    }
    Ok((
        cms.wait().await.resume_from().map(str::to_string),
        ws.wait().await.resume_from().map(str::to_string),
    ))
}

/// The one consumer: a cache of whole objects.
#[derive(Default)]
struct Consumer {
    cache: Cache,
    events: u64,
    gones: u64,
    /// The last version seen per kind: a repeat or a step back is an error.
    last: BTreeMap<&'static str, u64>,
    /// Kinds between a Gone and the end of their relist (the supervisor backs off first).
    relisting: std::collections::BTreeSet<&'static str>,
}

impl Consumer {
    /// Reads until the channel has been quiet for a while and no relist is under way (bounded in
    /// count and time).
    async fn catch_up(&mut self, rx: &mut mpsc::Receiver<Message>) -> Result<(), BoxError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        for _ in 0..100_000 {
            match tokio::time::timeout(QUIET, rx.recv()).await {
                Ok(Some(message)) => self.take(message)?,
                Ok(None) => return Err("the channel closed".into()),
                Err(_) if self.relisting.is_empty() => return Ok(()),
                Err(_) if tokio::time::Instant::now() > deadline => {
                    return Err(format!("no relist of {:?} after Gone", self.relisting).into());
                }
                Err(_) => {}
            }
        }
        Err("the events did not stop".into())
    }

    fn take(&mut self, message: Message) -> Result<(), BoxError> {
        match message {
            Message::ConfigMap(event) => self.apply("ConfigMap", event),
            Message::Widget(event) => self.apply("Widget", event),
        }
    }

    fn apply<K: Object + serde::Serialize>(
        &mut self,
        kind: &'static str,
        event: Event<K>,
    ) -> Result<(), BoxError> {
        let rv: Option<u64> = event.resource_version.as_deref().and_then(|v| v.parse().ok());
        let key = |o: &K| {
            (
                kind,
                o.namespace().unwrap_or_default().to_string(),
                o.name().to_string(),
            )
        };
        match event.kind {
            EventKind::Added(o) | EventKind::Modified(o) => {
                self.check_order(kind, rv)?;
                self.cache.insert(key(&o), serde_json::to_value(&o)?);
            }
            EventKind::Deleted(o) => {
                self.check_order(kind, rv)?;
                self.cache.remove(&key(&o));
            }
            EventKind::Gone { message } => {
                println!("{kind}: 410 Gone ({message}); dropping the cache, the supervisor relists");
                self.gones += 1;
                self.cache.retain(|k, _| k.0 != kind);
                self.last.remove(kind);
                self.relisting.insert(kind);
            }
            EventKind::Synced => {
                // A list's objects come in name order: versions restart from the list's.
                if let Some(rv) = rv {
                    self.last.insert(kind, rv);
                }
                self.relisting.remove(kind);
            }
            EventKind::Failed(e) | EventKind::Skipped(e) => return Err(format!("{kind}: {e}").into()),
            EventKind::Bookmark => {}
        }
        Ok(())
    }

    /// Watch events of one kind come in increasing versions: a repeat would show here.
    fn check_order(&mut self, kind: &'static str, rv: Option<u64>) -> Result<(), BoxError> {
        self.events += 1;
        let (Some(rv), Some(last)) = (rv, self.last.get(kind).copied()) else {
            return Ok(());
        };
        if rv <= last {
            return Err(format!("{kind}: event at {rv} after {last}: repeated or out of order").into());
        }
        self.last.insert(kind, rv);
        Ok(())
    }
}

/// The cache must equal the server's objects, whole.
async fn compare(client: &Client, widgets: &ApiResource, cache: &Cache) -> Result<(), BoxError> {
    let mut server = Cache::new();
    for cm in client
        .run(&Request::list::<ConfigMap>().namespace("shop"))
        .await?
        .items
    {
        let key = ("ConfigMap", "shop".to_string(), cm.name().to_string());
        server.insert(key, serde_json::to_value(&cm)?);
    }
    for w in client
        .run(&Request::list_dynamic(widgets).namespace("shop"))
        .await?
        .items
    {
        let key = ("Widget", "shop".to_string(), w.name().to_string());
        server.insert(key, serde_json::to_value(&w)?);
    }
    if &server == cache {
        return Ok(());
    }
    let differ: Vec<_> = server
        .keys()
        .chain(cache.keys())
        .filter(|k| server.get(*k) != cache.get(*k))
        .collect();
    Err(format!("the cache differs from the server at {differ:?}").into())
}
