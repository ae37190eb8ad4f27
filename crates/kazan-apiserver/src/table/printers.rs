//! Cells that kubectl's printers compute rather than read from one field: a pod's READY, STATUS
//! and RESTARTS, a deployment's READY, a service's PORT(S)... Each follows the logic of the real
//! server's printers for that column, simplified where the difference never shows here.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{NONE, age};
use crate::registry::ResourceDef;

/// The computed cell of `column` for `object`, or `None` when the column is a plain JSONPath.
pub(super) fn computed(def: &ResourceDef, column: &str, object: &Value, now: Timestamp) -> Option<Value> {
    let column = column.to_ascii_lowercase();
    let cell = match (def.group.as_str(), def.kind.as_str(), column.as_str()) {
        ("", "Pod", "ready") => json!(pod_ready(object)),
        ("", "Pod", "status") => json!(pod_status(object)),
        ("", "Pod", "restarts") => json!(pod_restarts(object, now)),
        ("", "Namespace", "status") => json!(str_at(object, "/status/phase").unwrap_or("Active")),
        ("", "Service", "cluster-ip") => json!(str_at(object, "/spec/clusterIP").unwrap_or(NONE)),
        ("", "Service", "external-ip") => json!(service_external_ip(object)),
        ("", "Service", "port(s)") => json!(service_ports(object)),
        ("", "Secret", "data") | ("", "ConfigMap", "data") => json!(count_data(object)),
        ("", "Node", "status") => json!(node_status(object)),
        ("", "Node", "roles") => json!(node_roles(object)),
        ("", "Event", "object") => json!(event_object(object)),
        ("apps", "Deployment", "ready") | ("apps", "StatefulSet", "ready") => json!(format!(
            "{}/{}",
            int_at(object, "/status/readyReplicas"),
            object
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
        )),
        ("apps", _, "containers") => json!(joined(object, "/spec/template/spec/containers", "name")),
        ("apps", _, "images") => json!(joined(object, "/spec/template/spec/containers", "image")),
        ("apps", _, "selector") => json!(label_selector(object.pointer("/spec/selector"))),
        ("batch", "Job", "status") => json!(job_status(object)),
        ("batch", "Job", "completions") => json!(job_completions(object)),
        ("batch", "CronJob", "active") => json!(array_len(object, "/status/active")),
        ("batch", "CronJob", "last schedule") => match object.pointer("/status/lastScheduleTime") {
            Some(time) => json!(age(Some(time), now)),
            None => json!(NONE),
        },
        _ => return None,
    };
    Some(cell)
}

fn str_at<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn int_at(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn array<'a>(object: &'a Value, pointer: &str) -> &'a [Value] {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn array_len(object: &Value, pointer: &str) -> usize {
    array(object, pointer).len()
}

fn joined(object: &Value, pointer: &str, field: &str) -> String {
    let parts: Vec<&str> = array(object, pointer)
        .iter()
        .filter_map(|c| c.get(field)?.as_str())
        .collect();
    if parts.is_empty() {
        NONE.to_string()
    } else {
        parts.join(",")
    }
}

/// READY: ready and running containers over the containers of the spec.
fn pod_ready(pod: &Value) -> String {
    let total = array_len(pod, "/spec/containers");
    let ready = array(pod, "/status/containerStatuses")
        .iter()
        .filter(|c| c.get("ready") == Some(&json!(true)) && c.pointer("/state/running").is_some())
        .count();
    format!("{ready}/{total}")
}

/// STATUS: the phase, overridden by the pod's reason, an init container's progress, a
/// container's waiting or terminated reason, and `Terminating` once deletion started.
fn pod_status(pod: &Value) -> String {
    let mut reason = str_at(pod, "/status/phase").unwrap_or("Pending").to_string();
    if let Some(r) = str_at(pod, "/status/reason") {
        reason = r.to_string();
    }
    let init_total = array_len(pod, "/spec/initContainers");
    let mut initializing = false;
    for (i, status) in array(pod, "/status/initContainerStatuses").iter().enumerate() {
        let terminated = status.pointer("/state/terminated");
        if terminated.and_then(|t| t.get("exitCode")).and_then(Value::as_i64) == Some(0) {
            continue;
        }
        initializing = true;
        reason = if let Some(t) = terminated {
            format!("Init:{}", terminated_reason(t))
        } else if let Some(w) = str_at(status, "/state/waiting/reason").filter(|r| *r != "PodInitializing") {
            format!("Init:{w}")
        } else {
            format!("Init:{i}/{init_total}")
        };
        break;
    }
    if !initializing {
        let mut has_running = false;
        for status in array(pod, "/status/containerStatuses").iter().rev() {
            if let Some(w) = str_at(status, "/state/waiting/reason") {
                reason = w.to_string();
            } else if let Some(t) = status.pointer("/state/terminated") {
                reason = terminated_reason(t);
            } else if status.get("ready") == Some(&json!(true)) && status.pointer("/state/running").is_some()
            {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            let ready_condition = array(pod, "/status/conditions")
                .iter()
                .any(|c| c.get("type") == Some(&json!("Ready")) && c.get("status") == Some(&json!("True")));
            reason = if ready_condition { "Running" } else { "NotReady" }.to_string();
        }
    }
    if pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        reason = if str_at(pod, "/status/reason") == Some("NodeLost") {
            "Unknown"
        } else {
            "Terminating"
        }
        .to_string();
    }
    reason
}

fn terminated_reason(terminated: &Value) -> String {
    if let Some(reason) = str_at(terminated, "/reason") {
        return reason.to_string();
    }
    match terminated
        .get("signal")
        .and_then(Value::as_i64)
        .filter(|s| *s != 0)
    {
        Some(signal) => format!("Signal:{signal}"),
        None => format!("ExitCode:{}", int_at(terminated, "/exitCode")),
    }
}

/// RESTARTS: the sum of the containers' restart counts, with the age of the last restart.
fn pod_restarts(pod: &Value, now: Timestamp) -> String {
    let statuses = array(pod, "/status/containerStatuses");
    let restarts: i64 = statuses.iter().map(|c| int_at(c, "/restartCount")).sum();
    let last = statuses
        .iter()
        .filter_map(|c| str_at(c, "/lastState/terminated/finishedAt"))
        .filter_map(|t| t.parse::<Timestamp>().ok())
        .max();
    match last {
        Some(last) if restarts > 0 => {
            format!("{restarts} ({} ago)", age(Some(&json!(last.to_string())), now))
        }
        _ => restarts.to_string(),
    }
}

fn service_external_ip(service: &Value) -> String {
    let external: Vec<&str> = array(service, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match str_at(service, "/spec/type").unwrap_or("ClusterIP") {
        "ExternalName" => str_at(service, "/spec/externalName").unwrap_or(NONE).to_string(),
        "LoadBalancer" => {
            let mut ips: Vec<&str> = array(service, "/status/loadBalancer/ingress")
                .iter()
                .filter_map(|i| str_at(i, "/ip").or_else(|| str_at(i, "/hostname")))
                .collect();
            ips.extend(external);
            if ips.is_empty() {
                "<pending>".to_string()
            } else {
                ips.join(",")
            }
        }
        _ if !external.is_empty() => external.join(","),
        _ => NONE.to_string(),
    }
}

fn service_ports(service: &Value) -> String {
    let ports: Vec<String> = array(service, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = str_at(p, "/protocol").unwrap_or("TCP");
            let port = int_at(p, "/port");
            match p.get("nodePort").and_then(Value::as_i64).filter(|n| *n != 0) {
                Some(node_port) => format!("{port}:{node_port}/{protocol}"),
                None => format!("{port}/{protocol}"),
            }
        })
        .collect();
    if ports.is_empty() {
        NONE.to_string()
    } else {
        ports.join(",")
    }
}

fn count_data(object: &Value) -> usize {
    ["/data", "/binaryData"]
        .iter()
        .filter_map(|p| object.pointer(p).and_then(Value::as_object))
        .map(|m| m.len())
        .sum()
}

pub(super) fn node_status(node: &Value) -> String {
    let ready = array(node, "/status/conditions")
        .iter()
        .find(|c| c.get("type") == Some(&json!("Ready")))
        .and_then(|c| c.get("status").and_then(Value::as_str));
    // As kubectl's printNode (pkg/printers/internalversion/printers.go): the Ready condition's
    // state (any status but True is NotReady), `Unknown` without one.
    let mut status = match ready {
        Some("True") => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }
    .to_string();
    if node.pointer("/spec/unschedulable") == Some(&json!(true)) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

pub(super) fn node_roles(node: &Value) -> String {
    let mut roles: Vec<&str> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default();
    roles.sort_unstable();
    if roles.is_empty() {
        NONE.to_string()
    } else {
        roles.join(",")
    }
}

fn event_object(event: &Value) -> String {
    let kind = str_at(event, "/involvedObject/kind")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let name = str_at(event, "/involvedObject/name").unwrap_or_default();
    format!("{kind}/{name}")
}

/// A `LabelSelector` written as kubectl writes it: `app=web,tier in (a,b),!legacy`.
pub(super) fn label_selector(selector: Option<&Value>) -> String {
    let Some(selector) = selector else {
        return NONE.to_string();
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (key, value) in labels {
            requirements.push((
                key.clone(),
                format!("{key}={}", value.as_str().unwrap_or_default()),
            ));
        }
    }
    for expression in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = str_at(expression, "/key").unwrap_or_default();
        let values: Vec<&str> = array(expression, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>();
        let text = match str_at(expression, "/operator").unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other}"),
        };
        requirements.push((key.to_string(), text));
    }
    requirements.sort();
    if requirements.is_empty() {
        NONE.to_string()
    } else {
        requirements
            .into_iter()
            .map(|(_, text)| text)
            .collect::<Vec<_>>()
            .join(",")
    }
}

pub(super) fn job_status(job: &Value) -> String {
    let conditions = array(job, "/status/conditions");
    let holds = |kind: &str| {
        conditions
            .iter()
            .any(|c| c.get("type") == Some(&json!(kind)) && c.get("status") == Some(&json!("True")))
    };
    if holds("Complete") {
        "Complete"
    } else if holds("Failed") {
        "Failed"
    } else if job.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if holds("Suspended") {
        "Suspended"
    } else {
        "Running"
    }
    .to_string()
}

pub(super) fn job_completions(job: &Value) -> String {
    let succeeded = int_at(job, "/status/succeeded");
    match job.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => {
            let parallelism = job
                .pointer("/spec/parallelism")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    }
}
