//! The writers of the load scenario: tasks that create, update and delete realistic pods, each
//! waiting for its answer before the next write, so together they write as fast as the server
//! accepts. Creates and updates go through the server's HTTP API (one `kazan::Client`, as a
//! controller writes); deletes go through its in-process API, because its HTTP DELETE answers
//! with a `Status` that does not carry the deletion's resourceVersion (watchers see both the
//! same way). Each writer owns
//! its namespaces (no two write the same one), keeps a few pods in each, and logs every write's
//! resourceVersion and time: the harness's truth about what each watch must see.

use std::{sync::Arc, time::SystemTime};

use k8s_openapi::api::core::v1::Pod;
use kazan::{ApiResource, Client, Request};
use kazan_apiserver::ApiServer;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{error::BenchError, sink::unix_seconds};

/// Pod names kept alive per namespace; each is created, updated six times, deleted, and again.
pub const SLOTS: usize = 4;
/// Of every this many writes to one slot, the first creates the pod and the last deletes it.
const CYCLE: u64 = 8;

/// One write the server accepted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Write {
    /// The namespace's index (the watch that must see it).
    pub namespace: u32,
    /// The version the server gave it.
    pub rv: u64,
    /// When its answer arrived, in Unix seconds (the write happened before).
    pub unix_s: f64,
}

/// What the writers did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteLog {
    /// Every write, per writer in its own order.
    pub writes: Vec<Write>,
    /// Creates, updates (merge patches) and deletes.
    pub creates: u64,
    /// Updates.
    pub updates: u64,
    /// Deletes.
    pub deletes: u64,
}

impl WriteLog {
    fn merge(&mut self, other: WriteLog) {
        self.writes.extend(other.writes);
        self.creates += other.creates;
        self.updates += other.updates;
        self.deletes += other.deletes;
    }
}

/// The next operation on a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Create(String),
    Update(String),
    Delete(String),
}

/// The pods of one namespace, as its writer knows them.
#[derive(Debug, Default)]
struct NamespacePlan {
    slots: [Option<String>; SLOTS],
    step: u64,
    created: u64,
}

impl NamespacePlan {
    /// The next write, round-robin over the slots: create an empty slot, otherwise update, and
    /// delete on the last step of each cycle.
    fn next(&mut self) -> Op {
        let slot = (self.step % SLOTS as u64) as usize;
        let round = self.step / SLOTS as u64;
        self.step += 1;
        let Some(entry) = self.slots.get_mut(slot) else {
            return Op::Create(String::new());
        };
        match entry.take() {
            None => {
                let name = format!("pod-{slot}-{:06}", self.created);
                self.created += 1;
                *entry = Some(name.clone());
                Op::Create(name)
            }
            Some(name) if round % CYCLE == CYCLE - 1 => Op::Delete(name),
            Some(name) => {
                *entry = Some(name.clone());
                Op::Update(name)
            }
        }
    }
}

/// Where the writers write, and what.
#[derive(Debug, Clone)]
pub struct Writers {
    /// The client they share.
    pub client: Client,
    /// The server, for deletes.
    pub server: Arc<ApiServer>,
    /// The realistic pod (no name, namespace, uid or resourceVersion).
    pub pod: Arc<Value>,
    /// The namespaces' names, by index.
    pub namespaces: Arc<Vec<String>>,
}

impl Writers {
    /// Runs `count` writers until `deadline`; returns every write.
    pub async fn run(&self, count: usize, deadline: Instant) -> Result<WriteLog, BenchError> {
        let mut tasks = tokio::task::JoinSet::new();
        for writer in 0..count.max(1) {
            let this = self.clone();
            let count = count.max(1);
            tasks.spawn(async move { this.write(writer, count, deadline).await });
        }
        let mut log = WriteLog::default();
        while let Some(done) = tasks.join_next().await {
            let part = done.map_err(|e| BenchError::ApiServer(format!("a writer task failed: {e}")))??;
            log.merge(part);
        }
        Ok(log)
    }

    /// One writer: namespaces `writer`, `writer + count`, ... in turn, one write each.
    async fn write(&self, writer: usize, count: usize, deadline: Instant) -> Result<WriteLog, BenchError> {
        let owned: Vec<usize> = (writer..self.namespaces.len()).step_by(count).collect();
        let mut plans: Vec<NamespacePlan> = owned.iter().map(|_| NamespacePlan::default()).collect();
        let mut log = WriteLog::default();
        if owned.is_empty() {
            return Ok(log);
        }
        let mut sequence = 0u64;
        while Instant::now() < deadline {
            for (&index, plan) in owned.iter().zip(plans.iter_mut()) {
                if Instant::now() >= deadline {
                    break;
                }
                let namespace = self.namespaces.get(index).map_or("", String::as_str);
                sequence += 1;
                let op = plan.next();
                let rv = self.send(namespace, &op, sequence).await?;
                match op {
                    Op::Create(_) => log.creates += 1,
                    Op::Update(_) => log.updates += 1,
                    Op::Delete(_) => log.deletes += 1,
                }
                log.writes.push(Write {
                    namespace: u32::try_from(index).unwrap_or(u32::MAX),
                    rv,
                    unix_s: unix_seconds(SystemTime::now()).unwrap_or(0.0),
                });
            }
        }
        Ok(log)
    }

    /// Sends one write and returns the version the server gave it.
    async fn send(&self, namespace: &str, op: &Op, sequence: u64) -> Result<u64, BenchError> {
        let resource = ApiResource::of::<Pod>();
        let fail = |what: &str, name: &str, e: &dyn std::fmt::Display| {
            BenchError::ApiServer(format!("{what} pod {namespace}/{name}: {e}"))
        };
        let body = match op {
            Op::Create(name) => {
                let mut pod = Value::clone(&self.pod);
                if let Some(metadata) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
                    metadata.insert("name".to_owned(), json!(name));
                    metadata.insert("namespace".to_owned(), json!(namespace));
                }
                let request = Request::create_of::<Value>(resource, &pod)
                    .map_err(|e| fail("encoding", name, &e))?
                    .namespace(namespace);
                self.client
                    .run_raw(&request)
                    .await
                    .map_err(|e| fail("creating", name, &e))?
            }
            Op::Update(name) => {
                let patch = json!({"metadata": {"annotations": {"kazan-bench/write": sequence.to_string()}}});
                let request =
                    Request::patch_of::<Value>(resource, name, &patch, "application/merge-patch+json")
                        .namespace(namespace);
                self.client
                    .run_raw(&request)
                    .await
                    .map_err(|e| fail("updating", name, &e))?
            }
            Op::Delete(name) => {
                let last = self
                    .server
                    .delete("v1", "Pod", Some(namespace), name)
                    .map_err(|e| fail("deleting", name, &e))?;
                // Let the server's connection tasks on this worker run between writes.
                tokio::task::yield_now().await;
                return last
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .and_then(|rv| rv.parse().ok())
                    .ok_or_else(|| fail("reading the resourceVersion of deleted", name, &"none"));
            }
        };
        let name = match op {
            Op::Create(name) | Op::Update(name) | Op::Delete(name) => name,
        };
        let written: Written =
            serde_json::from_slice(&body).map_err(|e| fail("reading the answer for", name, &e))?;
        written
            .metadata
            .resource_version
            .parse()
            .map_err(|e| fail("reading the resourceVersion of", name, &e))
    }
}

/// The part of a written object the writers read back.
#[derive(Deserialize)]
struct Written {
    metadata: WrittenMeta,
}

#[derive(Deserialize)]
struct WrittenMeta {
    #[serde(rename = "resourceVersion")]
    resource_version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_slot_is_created_updated_six_times_and_deleted_in_turn() {
        let mut plan = NamespacePlan::default();
        let ops: Vec<Op> = (0..SLOTS as u64 * CYCLE * 2).map(|_| plan.next()).collect();
        let slot0: Vec<&Op> = ops.iter().step_by(SLOTS).collect();
        let first = "pod-0-000000".to_owned();
        let second = format!("pod-0-{:06}", SLOTS);
        let mut expected = vec![Op::Create(first.clone())];
        expected.extend((0..6).map(|_| Op::Update(first.clone())));
        expected.push(Op::Delete(first));
        expected.push(Op::Create(second.clone()));
        expected.extend((0..6).map(|_| Op::Update(second.clone())));
        expected.push(Op::Delete(second));
        assert_eq!(slot0, expected.iter().collect::<Vec<_>>());
        let creates = ops.iter().filter(|op| matches!(op, Op::Create(_))).count();
        let deletes = ops.iter().filter(|op| matches!(op, Op::Delete(_))).count();
        assert_eq!((creates, deletes), (2 * SLOTS, 2 * SLOTS));
    }
}
