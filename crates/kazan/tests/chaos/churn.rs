//! Steady churn: creates, updates and deletes of ConfigMaps and Pods across the namespaces, at a
//! fixed rate, chosen by a seeded generator. Every write stamps the annotation [`MARK`] with a
//! number unique to the write, so a cache can be compared with the server by content as well as
//! by resourceVersion.

use std::{collections::HashSet, sync::Arc, time::Duration};

use kazan_apiserver::ApiServer;
use serde_json::{Value, json};
use tokio::time::{Instant, MissedTickBehavior};

use super::settings::Settings;

/// The annotation each write sets to a fresh number.
pub const MARK: &str = "chaos.kazan.dev/write";

/// The two kinds the churn writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    ConfigMap,
    Pod,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::ConfigMap, Kind::Pod];

    pub fn name(self) -> &'static str {
        match self {
            Kind::ConfigMap => "ConfigMap",
            Kind::Pod => "Pod",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmaps",
            Kind::Pod => "pods",
        }
    }

    fn object(self, namespace: &str, name: &str, mark: u64) -> Value {
        let metadata = json!({"name": name, "namespace": namespace, "annotations": {MARK: mark.to_string()}});
        match self {
            Kind::ConfigMap => json!({
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
                "data": {"write": mark.to_string()}
            }),
            Kind::Pod => json!({
                "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
                "spec": {"containers": [{"name": "main", "image": "busybox"}]},
                "status": {"phase": "Running"}
            }),
        }
    }
}

/// How many writes of each sort the churn made.
#[derive(Clone, Debug, Default)]
pub struct ChurnCounts {
    pub creates: u64,
    pub updates: u64,
    pub deletes: u64,
}

impl ChurnCounts {
    pub fn total(&self) -> u64 {
        self.creates + self.updates + self.deletes
    }
}

/// The churn's generator and what it knows exists.
pub struct Churn {
    server: Arc<ApiServer>,
    rng: fastrand::Rng,
    namespaces: Vec<String>,
    names: usize,
    existing: HashSet<(Kind, usize, usize)>,
    next_mark: u64,
    pub counts: ChurnCounts,
}

impl Churn {
    pub fn new(server: Arc<ApiServer>, settings: &Settings) -> Churn {
        Churn {
            server,
            rng: fastrand::Rng::with_seed(settings.seed ^ 0x6368_7572_6e00_0001),
            namespaces: settings.namespaces.clone(),
            names: settings.names_per_namespace,
            existing: HashSet::new(),
            next_mark: 1,
            counts: ChurnCounts::default(),
        }
    }

    /// Creates about half of the objects, so the first lists are not empty.
    pub fn populate(&mut self) -> Result<(), String> {
        for kind in Kind::ALL {
            for ns in 0..self.namespaces.len() {
                for name in 0..self.names {
                    if self.rng.bool() {
                        self.write(kind, ns, name)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes at `writes_per_second` until `until`.
    pub async fn run(&mut self, writes_per_second: u32, until: Instant) -> Result<(), String> {
        let period = Duration::from_secs(1) / writes_per_second.max(1);
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        while Instant::now() < until {
            ticks.tick().await;
            let kind = Kind::ALL[self.rng.usize(..Kind::ALL.len())];
            let ns = self.rng.usize(..self.namespaces.len());
            let name = self.rng.usize(..self.names);
            self.write(kind, ns, name)?;
        }
        Ok(())
    }

    /// One write to the object: create it if missing, else update it (three times in four) or
    /// delete it.
    fn write(&mut self, kind: Kind, ns: usize, name: usize) -> Result<(), String> {
        let namespace = &self.namespaces[ns];
        let object_name = format!("{}-{name:02}", kind.plural());
        let mark = self.next_mark;
        self.next_mark += 1;
        let key = (kind, ns, name);
        let result = if !self.existing.contains(&key) {
            self.counts.creates += 1;
            self.existing.insert(key);
            self.server.create(kind.object(namespace, &object_name, mark))
        } else if self.rng.u8(..4) < 3 {
            self.counts.updates += 1;
            self.server.merge_patch(
                "v1",
                kind.name(),
                Some(namespace),
                &object_name,
                json!({"metadata": {"annotations": {MARK: mark.to_string()}}}),
            )
        } else {
            self.counts.deletes += 1;
            self.existing.remove(&key);
            self.server
                .delete("v1", kind.name(), Some(namespace), &object_name)
        };
        result
            .map(|_| ())
            .map_err(|e| format!("churn write to {namespace}/{object_name}: {e}"))
    }
}
