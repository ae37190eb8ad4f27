//! kubectl's table columns for the common kinds, computed from the object itself (a watch streams
//! objects, not server-side Tables): NAME, the kind's own columns, AGE, and with `-o wide` a few
//! more. Kinds without a printer here get NAME and AGE.

use jiff::Timestamp;
use kazan::{ApiResource, DynamicObject};
use serde_json::Value;

/// Where a column goes: before AGE, after AGE (kubectl's node VERSION), or with `-o wide` only.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    BeforeAge,
    AfterAge,
    Wide,
}

/// One column of a kind.
struct Column {
    header: &'static str,
    place: Place,
    cell: fn(&DynamicObject) -> String,
    /// For a cell that depends on the time (RESTARTS' `(5m ago)`): used instead of `cell`.
    cell_at: Option<fn(&DynamicObject, Timestamp) -> String>,
}

const fn col(header: &'static str, place: Place, cell: fn(&DynamicObject) -> String) -> Column {
    Column {
        header,
        place,
        cell,
        cell_at: None,
    }
}

const fn col_at(header: &'static str, place: Place, cell: fn(&DynamicObject, Timestamp) -> String) -> Column {
    Column {
        header,
        place,
        cell: |_| String::new(),
        cell_at: Some(cell),
    }
}

impl Column {
    fn text(&self, object: &DynamicObject, now: Timestamp) -> String {
        match self.cell_at {
            Some(cell) => cell(object, now),
            None => (self.cell)(object),
        }
    }
}

use Place::{AfterAge, BeforeAge, Wide};

const POD: &[Column] = &[
    col("READY", BeforeAge, pod_ready),
    col("STATUS", BeforeAge, pod_status),
    col_at("RESTARTS", BeforeAge, pod_restarts),
    col("IP", Wide, |o| text_or_none(o, "/status/podIP")),
    col("NODE", Wide, |o| text_or_none(o, "/spec/nodeName")),
    col("NOMINATED NODE", Wide, |o| {
        text_or_none(o, "/status/nominatedNodeName")
    }),
    col("READINESS GATES", Wide, readiness_gates),
];

const DEPLOYMENT: &[Column] = &[
    col("READY", BeforeAge, |o| {
        format!("{}/{}", int(o, "/status/readyReplicas"), desired_replicas(o))
    }),
    col("UP-TO-DATE", BeforeAge, |o| {
        int(o, "/status/updatedReplicas").to_string()
    }),
    col("AVAILABLE", BeforeAge, |o| {
        int(o, "/status/availableReplicas").to_string()
    }),
    col("CONTAINERS", Wide, template_containers),
    col("IMAGES", Wide, template_images),
    col("SELECTOR", Wide, selector),
];

const REPLICA_SET: &[Column] = &[
    col("DESIRED", BeforeAge, |o| desired_replicas(o).to_string()),
    col("CURRENT", BeforeAge, |o| int(o, "/status/replicas").to_string()),
    col("READY", BeforeAge, |o| {
        int(o, "/status/readyReplicas").to_string()
    }),
    col("CONTAINERS", Wide, template_containers),
    col("IMAGES", Wide, template_images),
    col("SELECTOR", Wide, selector),
];

const STATEFUL_SET: &[Column] = &[
    col("READY", BeforeAge, |o| {
        format!("{}/{}", int(o, "/status/readyReplicas"), desired_replicas(o))
    }),
    col("CONTAINERS", Wide, template_containers),
    col("IMAGES", Wide, template_images),
];

const DAEMON_SET: &[Column] = &[
    col("DESIRED", BeforeAge, |o| {
        int(o, "/status/desiredNumberScheduled").to_string()
    }),
    col("CURRENT", BeforeAge, |o| {
        int(o, "/status/currentNumberScheduled").to_string()
    }),
    col("READY", BeforeAge, |o| int(o, "/status/numberReady").to_string()),
    col("UP-TO-DATE", BeforeAge, |o| {
        int(o, "/status/updatedNumberScheduled").to_string()
    }),
    col("AVAILABLE", BeforeAge, |o| {
        int(o, "/status/numberAvailable").to_string()
    }),
    col("NODE SELECTOR", BeforeAge, |o| {
        labels_at(o, "/spec/template/spec/nodeSelector")
    }),
    col("CONTAINERS", Wide, template_containers),
    col("IMAGES", Wide, template_images),
    col("SELECTOR", Wide, selector),
];

const JOB: &[Column] = &[
    col("STATUS", BeforeAge, job_status),
    col("COMPLETIONS", BeforeAge, job_completions),
    col_at("DURATION", BeforeAge, job_duration),
    col("CONTAINERS", Wide, template_containers),
    col("IMAGES", Wide, template_images),
    col("SELECTOR", Wide, selector),
];

const SERVICE: &[Column] = &[
    col("TYPE", BeforeAge, |o| {
        text(o, "/spec/type").unwrap_or("ClusterIP").to_string()
    }),
    col("CLUSTER-IP", BeforeAge, |o| text_or_none(o, "/spec/clusterIP")),
    col("EXTERNAL-IP", BeforeAge, service_external_ip),
    col("PORT(S)", BeforeAge, service_ports),
    col("SELECTOR", Wide, |o| labels_at(o, "/spec/selector")),
];

const NAMESPACE: &[Column] = &[col("STATUS", BeforeAge, |o| {
    text(o, "/status/phase").unwrap_or("Active").to_string()
})];

const CONFIG_MAP: &[Column] = &[col("DATA", BeforeAge, |o| {
    (entries(o, "/data") + entries(o, "/binaryData")).to_string()
})];

const SECRET: &[Column] = &[
    col("TYPE", BeforeAge, |o| {
        text(o, "/type").unwrap_or("Opaque").to_string()
    }),
    col("DATA", BeforeAge, |o| entries(o, "/data").to_string()),
];

const NODE: &[Column] = &[
    col("STATUS", BeforeAge, node_status),
    col("ROLES", BeforeAge, node_roles),
    // As kubectl's printNode: the kubelet's version as it is, empty when unknown.
    col("VERSION", AfterAge, |o| {
        text(o, "/status/nodeInfo/kubeletVersion")
            .unwrap_or_default()
            .to_string()
    }),
    col("INTERNAL-IP", Wide, |o| node_address(o, "InternalIP")),
    col("EXTERNAL-IP", Wide, |o| node_address(o, "ExternalIP")),
    col("OS-IMAGE", Wide, |o| {
        text_or_unknown(o, "/status/nodeInfo/osImage")
    }),
    col("KERNEL-VERSION", Wide, |o| {
        text_or_unknown(o, "/status/nodeInfo/kernelVersion")
    }),
    col("CONTAINER-RUNTIME", Wide, |o| {
        text_or_unknown(o, "/status/nodeInfo/containerRuntimeVersion")
    }),
];

/// The columns of one resource type.
#[derive(Clone)]
pub struct Columns {
    kind: &'static [Column],
    wide: bool,
    namespace: bool,
}

impl Columns {
    /// The columns of `resource`; `wide` for `-o wide`, `namespace` to lead with NAMESPACE.
    pub fn new(resource: &ApiResource, wide: bool, namespace: bool) -> Self {
        let kind: &'static [Column] = match (resource.group.as_str(), resource.kind.as_str()) {
            ("", "Pod") => POD,
            ("apps", "Deployment") => DEPLOYMENT,
            ("apps", "ReplicaSet") => REPLICA_SET,
            ("apps", "StatefulSet") => STATEFUL_SET,
            ("apps", "DaemonSet") => DAEMON_SET,
            ("batch", "Job") => JOB,
            ("", "Service") => SERVICE,
            ("", "Namespace") => NAMESPACE,
            ("", "ConfigMap") => CONFIG_MAP,
            ("", "Secret") => SECRET,
            ("", "Node") => NODE,
            _ => &[],
        };
        Columns {
            kind,
            wide,
            namespace: namespace && resource.namespaced,
        }
    }

    fn shown(&self, place: Place) -> impl Iterator<Item = &Column> {
        let wide = self.wide;
        self.kind
            .iter()
            .filter(move |c| c.place == place && (place != Wide || wide))
    }

    /// The headers, in order.
    pub fn headers(&self) -> Vec<&'static str> {
        let mut headers = Vec::new();
        if self.namespace {
            headers.push("NAMESPACE");
        }
        headers.push("NAME");
        headers.extend(self.shown(BeforeAge).map(|c| c.header));
        headers.push("AGE");
        headers.extend(self.shown(AfterAge).map(|c| c.header));
        headers.extend(self.shown(Wide).map(|c| c.header));
        headers
    }

    /// The cells of one object, in the order of [`Columns::headers`]; ages as of `now`.
    pub fn cells(&self, object: &DynamicObject, now: Timestamp) -> Vec<String> {
        let mut cells = Vec::new();
        if self.namespace {
            cells.push(object.metadata.namespace.clone().unwrap_or_default());
        }
        cells.push(object.metadata.name.clone().unwrap_or_default());
        cells.extend(self.shown(BeforeAge).map(|c| c.text(object, now)));
        cells.push(age(object, now));
        cells.extend(self.shown(AfterAge).map(|c| c.text(object, now)));
        cells.extend(self.shown(Wide).map(|c| c.text(object, now)));
        cells
    }
}

/// The object's age as kubectl prints it, or `<unknown>` without a creation time.
fn age(object: &DynamicObject, now: Timestamp) -> String {
    match &object.metadata.creation_timestamp {
        Some(created) => {
            let seconds = now.as_second().saturating_sub(created.0.as_second());
            human_duration(seconds)
        }
        None => "<unknown>".to_string(),
    }
}

/// kubectl's `duration.HumanDuration`: `45s`, `119s`, `2m5s`, `15m`, `3h20m`, `20h`, `3d4h`,
/// `45d`, `2y30d`, `9y`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    let seconds = seconds.max(0);
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let years = hours / 24 / 365;
        return match (hours / 24) % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn at<'a>(object: &'a DynamicObject, pointer: &str) -> Option<&'a Value> {
    object.data.pointer(pointer)
}

fn text<'a>(object: &'a DynamicObject, pointer: &str) -> Option<&'a str> {
    at(object, pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn text_or_none(object: &DynamicObject, pointer: &str) -> String {
    text(object, pointer).unwrap_or("<none>").to_string()
}

fn int(object: &DynamicObject, pointer: &str) -> i64 {
    at(object, pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn array(value: Option<&Value>) -> &[Value] {
    value
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn entries(object: &DynamicObject, pointer: &str) -> usize {
    at(object, pointer)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

/// `spec.replicas`, which the API server defaults to 1.
fn desired_replicas(object: &DynamicObject) -> i64 {
    at(object, "/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

fn joined<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let all: Vec<&str> = values.collect();
    if all.is_empty() {
        "<none>".to_string()
    } else {
        all.join(",")
    }
}

fn template_containers(object: &DynamicObject) -> String {
    joined(
        array(at(object, "/spec/template/spec/containers"))
            .iter()
            .filter_map(|c| c.get("name").and_then(Value::as_str)),
    )
}

fn template_images(object: &DynamicObject) -> String {
    joined(
        array(at(object, "/spec/template/spec/containers"))
            .iter()
            .filter_map(|c| c.get("image").and_then(Value::as_str)),
    )
}

/// `a=b,c=d` from a label map.
fn labels_at(object: &DynamicObject, pointer: &str) -> String {
    match at(object, pointer).and_then(Value::as_object) {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".to_string(),
    }
}

fn selector(object: &DynamicObject) -> String {
    labels_at(object, "/spec/selector/matchLabels")
}

fn container_statuses<'a>(object: &'a DynamicObject, which: &str) -> &'a [Value] {
    array(at(object, &format!("/status/{which}")))
}

fn pod_ready(object: &DynamicObject) -> String {
    let total = array(at(object, "/spec/containers")).len();
    let ready = container_statuses(object, "containerStatuses")
        .iter()
        .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    format!("{ready}/{total}")
}

/// The restarts of the containers, and how long ago the last one ended: `3 (5m ago)`, as
/// kubectl's printPod.
fn pod_restarts(object: &DynamicObject, now: Timestamp) -> String {
    let statuses = container_statuses(object, "containerStatuses");
    let restarts: i64 = statuses
        .iter()
        .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
        .sum();
    let last = statuses
        .iter()
        .filter_map(|c| str_at(c, "/lastState/terminated/finishedAt"))
        .filter_map(|t| t.parse::<Timestamp>().ok())
        .max();
    match last {
        Some(last) if restarts > 0 => format!(
            "{restarts} ({} ago)",
            human_duration(now.as_second().saturating_sub(last.as_second()))
        ),
        _ => restarts.to_string(),
    }
}

/// READINESS GATES: how many of the pod's gates are true, `<none>` without gates.
fn readiness_gates(object: &DynamicObject) -> String {
    let gates = array(at(object, "/spec/readinessGates"));
    if gates.is_empty() {
        return "<none>".to_string();
    }
    let conditions = array(at(object, "/status/conditions"));
    let true_gates = gates
        .iter()
        .filter(|g| {
            let kind = str_at(g, "/conditionType");
            conditions
                .iter()
                .any(|c| str_at(c, "/type") == kind && str_at(c, "/status") == Some("True"))
        })
        .count();
    format!("{true_gates}/{}", gates.len())
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A terminated container's reason, or `Signal:N` / `ExitCode:N`.
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
        None => format!(
            "ExitCode:{}",
            terminated.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
        ),
    }
}

/// kubectl's pod STATUS: the phase or reason, refined by init and app container states, and
/// `Terminating` once deletion started.
fn pod_status(object: &DynamicObject) -> String {
    let mut reason = text(object, "/status/reason")
        .or_else(|| text(object, "/status/phase"))
        .unwrap_or("Pending")
        .to_string();
    let init_total = array(at(object, "/spec/initContainers")).len();
    let mut initializing = false;
    for (i, c) in container_statuses(object, "initContainerStatuses")
        .iter()
        .enumerate()
    {
        if let Some(terminated) = c.pointer("/state/terminated") {
            if terminated.get("exitCode").and_then(Value::as_i64) == Some(0) {
                continue;
            }
            reason = format!("Init:{}", terminated_reason(terminated));
        } else if let Some(waiting) = str_at(c, "/state/waiting/reason").filter(|r| *r != "PodInitializing") {
            reason = format!("Init:{waiting}");
        } else {
            reason = format!("Init:{i}/{init_total}");
        }
        initializing = true;
        break;
    }
    if !initializing {
        let mut has_running = false;
        for c in container_statuses(object, "containerStatuses").iter().rev() {
            if let Some(waiting) = str_at(c, "/state/waiting/reason") {
                reason = waiting.to_string();
            } else if let Some(terminated) = c.pointer("/state/terminated") {
                reason = terminated_reason(terminated);
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && c.pointer("/state/running").is_some()
            {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            let ready = array(at(object, "/status/conditions"))
                .iter()
                .any(|c| str_at(c, "/type") == Some("Ready") && str_at(c, "/status") == Some("True"));
            reason = if ready { "Running" } else { "NotReady" }.to_string();
        }
    }
    if object.metadata.deletion_timestamp.is_some() {
        reason = if text(object, "/status/reason") == Some("NodeLost") {
            "Unknown".to_string()
        } else {
            "Terminating".to_string()
        };
    }
    reason
}

fn condition_true(object: &DynamicObject, kind: &str) -> bool {
    array(at(object, "/status/conditions"))
        .iter()
        .any(|c| str_at(c, "/type") == Some(kind) && str_at(c, "/status") == Some("True"))
}

/// kubectl's job STATUS (1.30+).
fn job_status(object: &DynamicObject) -> String {
    let status = if condition_true(object, "Failed") {
        "Failed"
    } else if condition_true(object, "Complete") {
        "Complete"
    } else if condition_true(object, "Suspended") {
        "Suspended"
    } else if condition_true(object, "FailureTarget") {
        "FailureTarget"
    } else if condition_true(object, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else if object.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else {
        "Running"
    };
    status.to_string()
}

/// DURATION: from the start to the completion, or to now while running; empty before the start.
fn job_duration(object: &DynamicObject, now: Timestamp) -> String {
    let time = |pointer: &str| {
        at(object, pointer)
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<Timestamp>().ok())
    };
    match time("/status/startTime") {
        None => String::new(),
        Some(start) => {
            let end = time("/status/completionTime").unwrap_or(now);
            human_duration(end.as_second() - start.as_second())
        }
    }
}

fn job_completions(object: &DynamicObject) -> String {
    let succeeded = int(object, "/status/succeeded");
    match at(object, "/spec/completions").and_then(Value::as_i64) {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => match at(object, "/spec/parallelism").and_then(Value::as_i64) {
            Some(p) if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    }
}

fn service_external_ip(object: &DynamicObject) -> String {
    match text(object, "/spec/type").unwrap_or("ClusterIP") {
        "ExternalName" => text_or_none(object, "/spec/externalName"),
        "LoadBalancer" => {
            let ingress = array(at(object, "/status/loadBalancer/ingress"));
            let addresses: Vec<&str> = ingress
                .iter()
                .filter_map(|i| str_at(i, "/ip").or_else(|| str_at(i, "/hostname")))
                .collect();
            if addresses.is_empty() {
                "<pending>".to_string()
            } else {
                addresses.join(",")
            }
        }
        _ => joined(
            array(at(object, "/spec/externalIPs"))
                .iter()
                .filter_map(Value::as_str),
        ),
    }
}

fn service_ports(object: &DynamicObject) -> String {
    let ports: Vec<String> = array(at(object, "/spec/ports"))
        .iter()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let protocol = str_at(p, "/protocol").unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(node_port) => format!("{port}:{node_port}/{protocol}"),
                None => format!("{port}/{protocol}"),
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    }
}

fn node_status(object: &DynamicObject) -> String {
    let ready = array(at(object, "/status/conditions"))
        .iter()
        .find(|c| str_at(c, "/type") == Some("Ready"))
        .and_then(|c| str_at(c, "/status"));
    // As kubectl's printNode: the Ready condition's state, `Unknown` without one.
    let mut status = match ready {
        Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if at(object, "/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

fn node_roles(object: &DynamicObject) -> String {
    let labels = object.metadata.labels.as_ref();
    joined(labels.into_iter().flatten().filter_map(|(k, _)| {
        k.strip_prefix("node-role.kubernetes.io/")
            .filter(|role| !role.is_empty())
    }))
}

/// The node's first address of this type, `<none>` without one (kubectl's getNodeInternalIP).
fn node_address(object: &DynamicObject, kind: &str) -> String {
    array(at(object, "/status/addresses"))
        .iter()
        .find(|a| str_at(a, "/type") == Some(kind))
        .and_then(|a| str_at(a, "/address"))
        .unwrap_or("<none>")
        .to_string()
}

fn text_or_unknown(object: &DynamicObject, pointer: &str) -> String {
    at(object, pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("<unknown>")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Result<DynamicObject, serde_json::Error> {
        serde_json::from_value(value)
    }

    fn now() -> Result<Timestamp, jiff::Error> {
        "2026-01-01T00:01:00Z".parse()
    }

    #[test]
    fn ages_read_like_kubectl() {
        let cases = [
            (0, "0s"),
            (-1, "0s"),
            (-5, "<invalid>"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 20 * 60, "3h20m"),
            (20 * 3600, "20h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (45 * 86400, "45d"),
            (2 * 365 * 86400 + 30 * 86400, "2y30d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (seconds, shown) in cases {
            assert_eq!(human_duration(seconds), shown, "{seconds}");
        }
    }

    #[test]
    fn pods_show_ready_status_restarts_and_with_wide_their_ip_and_node()
    -> Result<(), Box<dyn std::error::Error>> {
        let pod = object(json!({
            "metadata": {"name": "web-1", "namespace": "w", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": "node-a", "containers": [{"name": "app"}, {"name": "sidecar"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.7", "containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 2, "state": {"running": {}}},
                {"name": "sidecar", "ready": false, "restartCount": 1,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"finishedAt": "2026-01-01T00:00:15Z"}}}
            ]}
        }))?;
        let pods = ApiResource::new("", "v1", "Pod", "pods", true);
        let wide = Columns::new(&pods, true, true);
        assert_eq!(
            wide.headers(),
            [
                "NAMESPACE",
                "NAME",
                "READY",
                "STATUS",
                "RESTARTS",
                "AGE",
                "IP",
                "NODE",
                "NOMINATED NODE",
                "READINESS GATES"
            ]
        );
        assert_eq!(
            wide.cells(&pod, now()?),
            [
                "w",
                "web-1",
                "1/2",
                "CrashLoopBackOff",
                "3 (45s ago)",
                "60s",
                "10.0.0.7",
                "node-a",
                "<none>",
                "<none>"
            ]
        );
        let narrow = Columns::new(&pods, false, false);
        assert_eq!(narrow.headers(), ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
        Ok(())
    }

    #[test]
    fn pod_status_follows_init_containers_and_deletion() -> Result<(), serde_json::Error> {
        let initializing = object(json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 0}}},
                {"name": "b", "state": {"running": {}}}
            ]}
        }))?;
        assert_eq!(pod_status(&initializing), "Init:1/2");
        let failed_init = object(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 3}}}
            ]}
        }))?;
        assert_eq!(pod_status(&failed_init), "Init:ExitCode:3");
        let deleting = object(json!({
            "metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Running"}
        }))?;
        assert_eq!(pod_status(&deleting), "Terminating");
        let fresh = object(json!({"metadata": {"name": "p"}}))?;
        assert_eq!(pod_status(&fresh), "Pending");
        Ok(())
    }

    #[test]
    fn deployments_jobs_and_others_show_their_kubectl_columns() -> Result<(), Box<dyn std::error::Error>> {
        let deployment = object(json!({
            "metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:30Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
        }))?;
        let deployments = ApiResource::new("apps", "v1", "Deployment", "deployments", true);
        let columns = Columns::new(&deployments, true, false);
        assert_eq!(
            columns.headers(),
            [
                "NAME",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "AGE",
                "CONTAINERS",
                "IMAGES",
                "SELECTOR"
            ]
        );
        assert_eq!(
            columns.cells(&deployment, now()?),
            ["web", "2/3", "3", "2", "30s", "app", "nginx:1", "app=web"]
        );

        let job = object(json!({
            "metadata": {"name": "backup"},
            "spec": {"completions": 2},
            "status": {"succeeded": 2, "conditions": [{"type": "Complete", "status": "True"}],
                       "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:42Z"}
        }))?;
        let jobs = ApiResource::new("batch", "v1", "Job", "jobs", true);
        assert_eq!(
            Columns::new(&jobs, false, false).cells(&job, now()?),
            ["backup", "Complete", "2/2", "42s", "<unknown>"]
        );

        let ns = object(json!({"metadata": {"name": "w"}, "status": {"phase": "Terminating"}}))?;
        let namespaces = ApiResource::new("", "v1", "Namespace", "namespaces", false);
        // Cluster-scoped: no NAMESPACE column even with -A.
        let columns = Columns::new(&namespaces, false, true);
        assert_eq!(columns.headers(), ["NAME", "STATUS", "AGE"]);
        assert_eq!(columns.cells(&ns, now()?), ["w", "Terminating", "<unknown>"]);

        let svc = object(json!({
            "metadata": {"name": "api"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10",
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}
        }))?;
        let services = ApiResource::new("", "v1", "Service", "services", true);
        assert_eq!(
            Columns::new(&services, false, false).cells(&svc, now()?),
            [
                "api",
                "NodePort",
                "10.96.0.10",
                "<none>",
                "80:30080/TCP,53/UDP",
                "<unknown>"
            ]
        );

        let widget = object(json!({"metadata": {"name": "w1"}, "spec": {"size": 3}}))?;
        let widgets = ApiResource::new("example.com", "v1", "Widget", "widgets", true);
        let columns = Columns::new(&widgets, true, true);
        assert_eq!(columns.headers(), ["NAMESPACE", "NAME", "AGE"]);
        assert_eq!(columns.cells(&widget, now()?), ["", "w1", "<unknown>"]);
        Ok(())
    }
}
