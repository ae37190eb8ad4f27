//! The workload: what a cluster's users and controllers would do, here written straight into the
//! embedded server (watchers see those writes like any other), each step announced.

use kazan_apiserver::ApiServer;
use serde_json::{Value, json};

use super::{DemoError, NAMESPACE, narrator::Narrator};

/// Writes ConfigMaps and Jobs into the demo namespace.
pub struct Workload<'a> {
    server: &'a ApiServer,
    narrator: Narrator,
}

impl<'a> Workload<'a> {
    /// A workload on `server`.
    pub fn new(server: &'a ApiServer, narrator: Narrator) -> Self {
        Workload { server, narrator }
    }

    fn step<T>(
        &self,
        what: String,
        quiet: bool,
        write: impl FnOnce(&ApiServer) -> Result<T, kazan_apiserver::StoreError>,
    ) -> Result<T, DemoError> {
        if !quiet {
            self.narrator.say("workload", &what);
        }
        write(self.server).map_err(|source| DemoError::Workload {
            what,
            source: Box::new(source),
        })
    }

    /// Creates the demo namespace.
    pub fn namespace(&self) -> Result<(), DemoError> {
        self.step(format!("create namespace {NAMESPACE}"), true, |s| {
            s.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
        })
        .map(drop)
    }

    /// Creates a ConfigMap at version 1.
    pub fn create_configmap(&self, name: &str, quiet: bool) -> Result<(), DemoError> {
        self.step(format!("create configmap {name}"), quiet, |s| {
            s.create(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "kazan-demo"}},
                "data": {"version": "1"}
            }))
        })
        .map(drop)
    }

    /// Sets a ConfigMap's `data.version`.
    pub fn update_configmap(&self, name: &str, version: u32) -> Result<(), DemoError> {
        self.step(
            format!("update configmap {name}: version={version}"),
            false,
            |s| {
                s.merge_patch(
                    "v1",
                    "ConfigMap",
                    Some(NAMESPACE),
                    name,
                    json!({"data": {"version": version.to_string()}}),
                )
            },
        )
        .map(drop)
    }

    /// Deletes a ConfigMap.
    pub fn delete_configmap(&self, name: &str) -> Result<(), DemoError> {
        self.step(format!("delete configmap {name}"), false, |s| {
            s.delete("v1", "ConfigMap", Some(NAMESPACE), name)
        })
        .map(drop)
    }

    /// Creates a Job, running.
    pub fn create_job(&self, name: &str, quiet: bool) -> Result<(), DemoError> {
        self.step(format!("create job {name}"), quiet, |s| {
            s.create(json!({
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "kazan-demo"}},
                "spec": {"template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "work", "image": "busybox:1.37", "command": ["true"]}]
                }}}
            }))?;
            s.update_status(job_status(name, json!({"active": 1})))
        })
        .map(drop)
    }

    /// Marks a Job complete (its status, as the Job controller would).
    pub fn complete_job(&self, name: &str) -> Result<(), DemoError> {
        self.step(format!("job {name} completes"), false, |s| {
            s.update_status(job_status(
                name,
                json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}),
            ))
        })
        .map(drop)
    }

    /// Deletes a Job.
    pub fn delete_job(&self, name: &str) -> Result<(), DemoError> {
        self.step(format!("delete job {name}"), false, |s| {
            s.delete("batch/v1", "Job", Some(NAMESPACE), name)
        })
        .map(drop)
    }
}

fn job_status(name: &str, status: Value) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "status": status
    })
}
