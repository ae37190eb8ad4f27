//! What the scenarios on the embedded API server share: namespaces made fresh for every run, the
//! realistic pod written in bursts, and the server's counters read around each run.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, SystemTime},
};

use kazan_apiserver::ApiServer;
use serde_json::Value;

use crate::{error::BenchError, job::ChildReport, sink::unix_seconds};

/// How long the harness waits for a consumer's watches to open.
pub const WATCHES_OPEN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the harness waits for the server to close the watches of the previous run.
pub const WATCHES_CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// The embedded server of one scenario, and what the harness noted about the current run.
#[derive(Debug)]
pub struct Embedded {
    /// The server.
    pub server: ApiServer,
    /// The realistic pod, ready to be created (no name, namespace, uid or resourceVersion).
    pod: Value,
    /// The CA file consumers trust, when the server speaks TLS.
    pub ca_file: Option<PathBuf>,
    run: Mutex<RunNotes>,
}

/// What the harness noted when a run started.
#[derive(Debug, Default, Clone, Copy)]
struct RunNotes {
    connections_before: u64,
    pod_watches_before: usize,
    burst_started_unix_s: Option<f64>,
}

impl Embedded {
    /// Wraps a started server; with TLS, writes its CA where consumers can read it.
    pub fn new(server: ApiServer, pod_json: &str) -> Result<Self, BenchError> {
        let mut pod: Value = serde_json::from_str(pod_json).map_err(BenchError::Pod)?;
        let metadata = pod
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or(BenchError::PodShape("the pod has no metadata object"))?;
        for assigned_by_the_server in ["name", "namespace", "uid", "resourceVersion"] {
            metadata.remove(assigned_by_the_server);
        }
        let ca_file = match server.ca_pem() {
            Some(pem) => {
                let path = std::env::temp_dir().join(format!(
                    "kazan-bench-{}-{}-ca.pem",
                    std::process::id(),
                    server.addr().port()
                ));
                write(&path, pem.as_bytes())?;
                Some(path)
            }
            None => None,
        };
        Ok(Embedded {
            server,
            pod,
            ca_file,
            run: Mutex::new(RunNotes::default()),
        })
    }

    /// Waits until the watches of the previous run are closed (its process has exited, but the
    /// server notices each closed connection in its own time), so that counting the next run's
    /// watches is not thrown off by old ones closing meanwhile.
    pub async fn drain_watches(&self) {
        let deadline = tokio::time::Instant::now() + WATCHES_CLOSE_TIMEOUT;
        while self.pod_watches() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.pod_watches();
        if left > 0 {
            eprintln!(
                "  {left} watches of the previous run still open after {} s",
                WATCHES_CLOSE_TIMEOUT.as_secs()
            );
        }
    }

    fn pod_watches(&self) -> usize {
        self.server
            .stats()
            .active_watches
            .get("pods")
            .copied()
            .unwrap_or(0)
    }

    /// Creates namespaces `{prefix}0 .. {prefix}{count - 1}` and notes the server's counters:
    /// call it just before a consumer process starts. Returns the resourceVersion after them.
    pub fn begin_run(&self, prefix: &str, count: u64) -> Result<u64, BenchError> {
        for i in 0..count {
            let namespace = serde_json::json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": format!("{prefix}{i}")},
            });
            self.server
                .create(namespace)
                .map_err(|e| BenchError::ApiServer(format!("creating namespace {prefix}{i}: {e}")))?;
        }
        let stats = self.server.stats();
        let notes = RunNotes {
            connections_before: stats.connections_accepted,
            pod_watches_before: stats.active_watches.get("pods").copied().unwrap_or(0),
            burst_started_unix_s: None,
        };
        *self.run.lock().unwrap_or_else(|e| e.into_inner()) = notes;
        Ok(self.server.resource_version())
    }

    /// Waits until the consumer's `watches` pod watches are open, then creates `per_namespace`
    /// pods in each of the namespaces `{prefix}0 ..`, round-robin, as fast as the store takes them.
    pub async fn burst(&self, prefix: &str, namespaces: u64, per_namespace: u64) -> Result<(), BenchError> {
        let before = self.notes().pod_watches_before;
        let wanted = before + usize::try_from(namespaces).unwrap_or(usize::MAX);
        if !self
            .server
            .wait_for_watches("pods", wanted, WATCHES_OPEN_TIMEOUT)
            .await
        {
            let open = self
                .server
                .stats()
                .active_watches
                .get("pods")
                .copied()
                .unwrap_or(0);
            return Err(BenchError::ApiServer(format!(
                "only {} of the consumer's {namespaces} watches opened within {} s",
                open.saturating_sub(before),
                WATCHES_OPEN_TIMEOUT.as_secs()
            )));
        }
        self.run
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .burst_started_unix_s = unix_seconds(SystemTime::now());
        let mut written = 0u64;
        for k in 0..per_namespace {
            for i in 0..namespaces {
                let mut pod = self.pod.clone();
                if let Some(metadata) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
                    metadata.insert("name".to_owned(), Value::String(format!("pod-{k:06}")));
                    metadata.insert("namespace".to_owned(), Value::String(format!("{prefix}{i}")));
                }
                self.server
                    .create(pod)
                    .map_err(|e| BenchError::ApiServer(format!("creating pod-{k:06} in {prefix}{i}: {e}")))?;
                written += 1;
                // The store is called directly: let the server's connection tasks on this worker
                // run between writes.
                if written.is_multiple_of(64) {
                    tokio::task::yield_now().await;
                }
            }
        }
        Ok(())
    }

    /// Fills in the connections the server accepted during the run and, when `from_burst`, the
    /// seconds from the start of the burst to the consumer's last expected event.
    pub fn end_run(&self, report: &mut ChildReport, from_burst: bool) {
        let notes = self.notes();
        report.connections = Some(
            self.server
                .stats()
                .connections_accepted
                .saturating_sub(notes.connections_before),
        );
        if from_burst && let (Some(done), Some(burst)) = (report.finished_unix_s, notes.burst_started_unix_s)
        {
            report.seconds = (done - burst).max(0.0);
        }
    }

    fn notes(&self) -> RunNotes {
        *self.run.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(path) = &self.ca_file {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), BenchError> {
    std::fs::write(path, bytes).map_err(|source| BenchError::File {
        path: path.to_owned(),
        source,
    })
}
