//! Publishing `events.k8s.io/v1` Events about objects, with repeats folded into one Event's
//! `series` instead of one Event per occurrence, as client-go's `tools/events` broadcaster does
//! (`k8s.io/client-go/tools/events/event_broadcaster.go`):
//! - two events are the same (isomorphic) when action, reason, reporting controller, regarding and
//!   related objects are equal; the note is not compared;
//! - the first occurrence creates an Event; the second sets its `series` (count 2,
//!   `lastObservedTime`) by a merge patch; later ones only count in memory;
//! - the counts are written on a heartbeat: [`Recorder::flush`] writes every series whose count
//!   grew since its last write, and `publish` itself writes one whose last write is older than the
//!   refresh interval (30 minutes, as client-go);
//! - a series idle for longer than the finish interval (6 minutes, as client-go) is forgotten: the
//!   next occurrence creates a new Event;
//! - if a series' Event is gone (404 on the patch), a new Event is created.
//!
//! Unlike client-go, publishing is a direct call that returns the write's error (no background
//! goroutine that retries twelve times and logs): the caller decides whether an Event matters.

use std::{collections::HashMap, time::Duration};

use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event as KubeEvent},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use serde_json::json;
use tokio::{sync::Mutex, time::Instant};

use crate::{Client, Object, Request};

/// Who reports the events: `reportingController` (for example `example.com/my-operator`) and
/// `reportingInstance` (for example the pod's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reporter {
    /// `reportingController`.
    pub controller: String,
    /// `reportingInstance`.
    pub instance: String,
}

/// `Normal` or `Warning`, the two types Kubernetes accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something may need attention.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One occurrence to publish.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// `Normal` or `Warning`.
    pub event_type: EventType,
    /// Why, in UpperCamelCase (`Reconciled`, `FailedCreate`).
    pub reason: String,
    /// What was done or failed (`Create`, `Reconcile`).
    pub action: String,
    /// Human-readable detail (at most 1 kB); not part of the series identity.
    pub note: Option<String>,
    /// The object the event is about.
    pub regarding: ObjectReference,
    /// A second object involved, if any.
    pub related: Option<ObjectReference>,
}

/// The identity of a series: what client-go's `getKey` compares.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    action: String,
    reason: String,
    regarding: String,
    related: String,
}

#[derive(Debug)]
struct Cached {
    namespace: String,
    name: String,
    count: i32,
    written_count: i32,
    last_observed: Timestamp,
    last_seen: Instant,
    last_written: Instant,
}

/// Writes Events for one reporter, folding repeats into series. See the
/// [module documentation](self).
#[derive(Debug)]
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    refresh: Duration,
    finish: Duration,
    cache: Mutex<HashMap<SeriesKey, Cached>>,
}

/// A reference to `object` for [`NewEvent::regarding`], with its kind and apiVersion.
pub fn reference_to<K>(object: &K) -> ObjectReference
where
    K: k8s_openapi::Resource + Object,
{
    let meta: &ObjectMeta = object.meta();
    ObjectReference {
        api_version: Some(K::API_VERSION.to_string()),
        kind: Some(K::KIND.to_string()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        field_path: None,
    }
}

impl Recorder {
    /// A recorder writing through `client` as `reporter`, with client-go's intervals.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Recorder {
            client,
            reporter,
            refresh: Duration::from_secs(30 * 60),
            finish: Duration::from_secs(6 * 60),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// How old a series' last write may get before an occurrence writes its count again.
    pub fn refresh_interval(mut self, every: Duration) -> Self {
        self.refresh = every;
        self
    }

    /// How long a series may stay idle before it is forgotten (a later occurrence starts anew).
    pub fn finish_interval(mut self, after: Duration) -> Self {
        self.finish = after;
        self
    }

    /// Publishes one occurrence: creates an Event, or counts it in the series of the same event.
    pub async fn publish(&self, event: NewEvent) -> Result<(), crate::Error> {
        let key = SeriesKey {
            action: event.action.clone(),
            reason: event.reason.clone(),
            regarding: serde_json::to_string(&event.regarding)?,
            related: serde_json::to_string(&event.related)?,
        };
        let now = Instant::now();
        let observed = Timestamp::now();
        let mut cache = self.cache.lock().await;
        cache.retain(|_, c| now.saturating_duration_since(c.last_seen) < self.finish);
        if let Some(cached) = cache.get_mut(&key) {
            cached.count = cached.count.saturating_add(1);
            cached.last_observed = observed;
            cached.last_seen = now;
            let due = cached.written_count < 2
                || now.saturating_duration_since(cached.last_written) >= self.refresh;
            if !due {
                return Ok(());
            }
            if self.write_series(cached).await? {
                cached.written_count = cached.count;
                cached.last_written = now;
                return Ok(());
            }
            // The Event is gone: start over with a new one.
            cache.remove(&key);
        }
        let created = self.create(&event, observed).await?;
        cache.insert(
            key,
            Cached {
                namespace: created.0,
                name: created.1,
                count: 1,
                written_count: 1,
                last_observed: observed,
                last_seen: now,
                last_written: now,
            },
        );
        Ok(())
    }

    /// Writes every series whose count grew since its last write (the heartbeat; call it
    /// periodically and before shutting down).
    pub async fn flush(&self) -> Result<(), crate::Error> {
        let now = Instant::now();
        let mut cache = self.cache.lock().await;
        let mut gone = Vec::new();
        for (key, cached) in cache.iter_mut() {
            if cached.count <= cached.written_count {
                continue;
            }
            if self.write_series(cached).await? {
                cached.written_count = cached.count;
                cached.last_written = now;
            } else {
                gone.push(key.clone());
            }
        }
        for key in gone {
            cache.remove(&key);
        }
        Ok(())
    }

    /// Creates the Event; returns its namespace and name.
    async fn create(&self, event: &NewEvent, at: Timestamp) -> Result<(String, String), crate::Error> {
        let namespace = event
            .regarding
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let regarding_name = event.regarding.name.clone().unwrap_or_default();
        // client-go: "<regarding name>.<unix nanoseconds in hex>".
        let name = format!("{regarding_name}.{:x}", at.as_nanosecond());
        let body = KubeEvent {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(at)),
            type_: Some(event.event_type.as_str().to_string()),
            reason: Some(event.reason.clone()),
            action: Some(event.action.clone()),
            note: event.note.clone(),
            regarding: Some(event.regarding.clone()),
            related: event.related.clone(),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(self.reporter.instance.clone()),
            ..KubeEvent::default()
        };
        self.client
            .run(&Request::create(&body)?.namespace(&namespace))
            .await?;
        Ok((namespace, name))
    }

    /// Writes the series' count; `Ok(false)` if its Event is gone.
    async fn write_series(&self, cached: &Cached) -> Result<bool, crate::Error> {
        let patch = json!({"series": {
            "count": cached.count,
            "lastObservedTime": MicroTime(cached.last_observed),
        }});
        match self
            .client
            .run(&Request::merge_patch::<KubeEvent>(&cached.name, &patch).namespace(&cached.namespace))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status_code() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
