//! The full column sets of the built-in kinds whose `kubectl get` columns are not NAME, the
//! registry's printer columns and AGE: events (no NAME first, LAST SEEN instead of AGE), and kinds
//! with computed or wide-only columns. Each follows the kind's printer in the real server
//! (kubernetes `pkg/printers/internalversion/printers.go`: its `*ColumnDefinitions` and
//! `print*` functions), which generates every column and leaves the hiding of priority-1 columns
//! to the client.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{NONE, age};

/// One column of a built-in kind.
#[derive(Debug)]
pub(super) struct KindColumn {
    pub(super) name: &'static str,
    pub(super) column_type: &'static str,
    pub(super) format: &'static str,
    /// 0: shown by default; 1: only with `-o wide`.
    pub(super) priority: i32,
    pub(super) cell: fn(&Value, Timestamp) -> Value,
}

const fn col(name: &'static str, priority: i32, cell: fn(&Value, Timestamp) -> Value) -> KindColumn {
    KindColumn {
        name,
        column_type: "string",
        format: "",
        priority,
        cell,
    }
}

const fn typed(
    name: &'static str,
    column_type: &'static str,
    priority: i32,
    cell: fn(&Value, Timestamp) -> Value,
) -> KindColumn {
    KindColumn {
        name,
        column_type,
        format: "",
        priority,
        cell,
    }
}

const NAME: KindColumn = KindColumn {
    name: "Name",
    column_type: "string",
    format: "name",
    priority: 0,
    cell: name,
};
const AGE: KindColumn = col("Age", 0, created);

/// The columns of `group`/`kind`, when this module defines them.
pub(super) fn columns(group: &str, kind: &str) -> Option<&'static [KindColumn]> {
    let columns: &'static [KindColumn] = match (group, kind) {
        ("", "Event") => {
            const C: &[KindColumn] = &[
                col("Last Seen", 0, event_last_seen),
                col("Type", 0, |e, _| text(e, "/type")),
                col("Reason", 0, |e, _| text(e, "/reason")),
                col("Object", 0, event_object),
                col("Subobject", 1, |e, _| text(e, "/involvedObject/fieldPath")),
                col("Source", 1, event_source),
                col("Message", 0, |e, _| json!(str_at(e, "/message").trim())),
                col("First Seen", 1, event_first_seen),
                typed("Count", "string", 1, event_count),
                KindColumn { priority: 1, ..NAME },
            ];
            C
        }
        ("", "Endpoints") => {
            const C: &[KindColumn] = &[NAME, col("Endpoints", 0, endpoints), AGE];
            C
        }
        ("", "PersistentVolumeClaim") => {
            const C: &[KindColumn] = &[
                NAME,
                col("Status", 0, |c, _| text(c, "/status/phase")),
                col("Volume", 0, |c, _| text(c, "/spec/volumeName")),
                col("Capacity", 0, |c, _| text(c, "/status/capacity/storage")),
                col("Access Modes", 0, |c, _| {
                    json!(access_modes(c.pointer("/status/accessModes")))
                }),
                col("StorageClass", 0, storage_class),
                col("VolumeAttributesClass", 0, |c, _| {
                    or_unset(c, "/spec/volumeAttributesClassName")
                }),
                AGE,
                col("VolumeMode", 1, volume_mode),
            ];
            C
        }
        ("", "PersistentVolume") => {
            const C: &[KindColumn] = &[
                NAME,
                col("Capacity", 0, |v, _| text(v, "/spec/capacity/storage")),
                col("Access Modes", 0, |v, _| {
                    json!(access_modes(v.pointer("/spec/accessModes")))
                }),
                col("Reclaim Policy", 0, |v, _| {
                    text(v, "/spec/persistentVolumeReclaimPolicy")
                }),
                col("Status", 0, |v, _| text(v, "/status/phase")),
                col("Claim", 0, pv_claim),
                col("StorageClass", 0, storage_class),
                col("VolumeAttributesClass", 0, |v, _| {
                    or_unset(v, "/spec/volumeAttributesClassName")
                }),
                col("Reason", 0, |v, _| text(v, "/status/reason")),
                AGE,
                col("VolumeMode", 1, volume_mode),
            ];
            C
        }
        ("", "Node") => {
            const C: &[KindColumn] = &[
                NAME,
                col("Status", 0, |n, _| json!(super::printers::node_status(n))),
                col("Roles", 0, |n, _| json!(super::printers::node_roles(n))),
                AGE,
                col("Version", 0, |n, _| text(n, "/status/nodeInfo/kubeletVersion")),
                col("Internal-IP", 1, |n, _| json!(node_address(n, "InternalIP"))),
                col("External-IP", 1, |n, _| json!(node_address(n, "ExternalIP"))),
                col("OS-Image", 1, |n, _| or_unknown(n, "/status/nodeInfo/osImage")),
                col("Kernel-Version", 1, |n, _| {
                    or_unknown(n, "/status/nodeInfo/kernelVersion")
                }),
                col("Container-Runtime", 1, |n, _| {
                    or_unknown(n, "/status/nodeInfo/containerRuntimeVersion")
                }),
            ];
            C
        }
        ("apps", "DaemonSet") => {
            const C: &[KindColumn] = &[
                NAME,
                typed("Desired", "integer", 0, |d, _| {
                    int(d, "/status/desiredNumberScheduled")
                }),
                typed("Current", "integer", 0, |d, _| {
                    int(d, "/status/currentNumberScheduled")
                }),
                typed("Ready", "integer", 0, |d, _| int(d, "/status/numberReady")),
                typed("Up-to-date", "integer", 0, |d, _| {
                    int(d, "/status/updatedNumberScheduled")
                }),
                typed("Available", "integer", 0, |d, _| {
                    int(d, "/status/numberAvailable")
                }),
                col("Node Selector", 0, |d, _| {
                    json!(labels(d.pointer("/spec/template/spec/nodeSelector")))
                }),
                AGE,
                col("Containers", 1, |d, _| {
                    json!(containers(d, "/spec/template/spec/containers", "name"))
                }),
                col("Images", 1, |d, _| {
                    json!(containers(d, "/spec/template/spec/containers", "image"))
                }),
                col("Selector", 1, |d, _| {
                    json!(super::printers::label_selector(d.pointer("/spec/selector")))
                }),
            ];
            C
        }
        ("batch", "Job") => {
            const C: &[KindColumn] = &[
                NAME,
                col("Status", 0, |j, _| json!(super::printers::job_status(j))),
                col("Completions", 0, |j, _| {
                    json!(super::printers::job_completions(j))
                }),
                col("Duration", 0, job_duration),
                AGE,
                col("Containers", 1, |j, _| {
                    json!(containers(j, "/spec/template/spec/containers", "name"))
                }),
                col("Images", 1, |j, _| {
                    json!(containers(j, "/spec/template/spec/containers", "image"))
                }),
                col("Selector", 1, |j, _| {
                    json!(super::printers::label_selector(j.pointer("/spec/selector")))
                }),
            ];
            C
        }
        ("batch", "CronJob") => {
            const C: &[KindColumn] = &[
                NAME,
                col("Schedule", 0, |c, _| text(c, "/spec/schedule")),
                col("Timezone", 0, |c, _| text(c, "/spec/timeZone")),
                typed("Suspend", "boolean", 0, |c, _| {
                    json!(
                        c.pointer("/spec/suspend")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                    )
                }),
                typed("Active", "integer", 0, |c, _| {
                    json!(
                        c.pointer("/status/active")
                            .and_then(Value::as_array)
                            .map_or(0, Vec::len)
                    )
                }),
                col("Last Schedule", 0, |c, now| {
                    match c.pointer("/status/lastScheduleTime") {
                        Some(time) => json!(age(Some(time), now)),
                        None => json!(NONE),
                    }
                }),
                AGE,
                col("Containers", 1, |c, _| {
                    json!(containers(
                        c,
                        "/spec/jobTemplate/spec/template/spec/containers",
                        "name"
                    ))
                }),
                col("Images", 1, |c, _| {
                    json!(containers(
                        c,
                        "/spec/jobTemplate/spec/template/spec/containers",
                        "image"
                    ))
                }),
                col("Selector", 1, |c, _| {
                    json!(super::printers::label_selector(
                        c.pointer("/spec/jobTemplate/spec/selector")
                    ))
                }),
            ];
            C
        }
        _ => return None,
    };
    Some(columns)
}

/// DURATION: from the start to the completion, or to now while running; empty before the start.
fn job_duration(job: &Value, now: Timestamp) -> Value {
    let time = |pointer: &str| {
        job.pointer(pointer)
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<Timestamp>().ok())
    };
    let Some(start) = time("/status/startTime") else {
        return json!("");
    };
    let end = time("/status/completionTime").unwrap_or(now);
    json!(super::human_duration(end.as_second() - start.as_second()))
}

fn name(object: &Value, _: Timestamp) -> Value {
    object
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or_else(|| json!(""))
}

fn created(object: &Value, now: Timestamp) -> Value {
    json!(age(object.pointer("/metadata/creationTimestamp"), now))
}

fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The string at `pointer`, empty when unset (as Go prints a zero string).
fn text(object: &Value, pointer: &str) -> Value {
    json!(str_at(object, pointer))
}

fn int(object: &Value, pointer: &str) -> Value {
    json!(object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0))
}

fn or_unset(object: &Value, pointer: &str) -> Value {
    match str_at(object, pointer) {
        "" => json!("<unset>"),
        s => json!(s),
    }
}

fn or_unknown(object: &Value, pointer: &str) -> Value {
    match str_at(object, pointer) {
        "" => json!("<unknown>"),
        s => json!(s),
    }
}

/// `translateTimestampSince`: the age, `<unknown>` for a zero time.
fn since(time: Option<&Value>, now: Timestamp) -> String {
    age(time.filter(|t| t.as_str().is_some_and(|s| !s.is_empty())), now)
}

fn event_first_seen(event: &Value, now: Timestamp) -> Value {
    match event.pointer("/firstTimestamp").filter(|t| !t.is_null()) {
        Some(first) => json!(since(Some(first), now)),
        None => json!(since(event.pointer("/eventTime"), now)),
    }
}

fn event_last_seen(event: &Value, now: Timestamp) -> Value {
    if let Some(last) = event.pointer("/series/lastObservedTime") {
        return json!(since(Some(last), now));
    }
    match event.pointer("/lastTimestamp").filter(|t| !t.is_null()) {
        Some(last) => json!(since(Some(last), now)),
        None => event_first_seen(event, now),
    }
}

fn event_count(event: &Value, _: Timestamp) -> Value {
    let count = match event.pointer("/series/count").and_then(Value::as_i64) {
        Some(count) => count,
        None => match event.pointer("/count").and_then(Value::as_i64).unwrap_or(0) {
            // Singleton events have no count in the new API.
            0 => 1,
            count => count,
        },
    };
    json!(count)
}

/// `kind/name` of the involved object, lower-case kind.
fn event_object(event: &Value, _: Timestamp) -> Value {
    let kind = str_at(event, "/involvedObject/kind").to_lowercase();
    match str_at(event, "/involvedObject/name") {
        "" => json!(kind),
        name => json!(format!("{kind}/{name}")),
    }
}

/// `component, host`, from the source or the reporting controller and instance.
fn event_source(event: &Value, _: Timestamp) -> Value {
    let first = |a: &str, b: &str| {
        let a = str_at(event, a);
        if a.is_empty() {
            str_at(event, b).to_string()
        } else {
            a.to_string()
        }
    };
    let component = first("/source/component", "/reportingComponent");
    let instance = first("/source/host", "/reportingInstance");
    json!(match (component.is_empty(), instance.is_empty()) {
        (true, _) => String::new(),
        (false, true) => component,
        (false, false) => format!("{component}, {instance}"),
    })
}

/// `formatEndpoints`: `ip:port` pairs, at most three, then ` + N more...`; `<none>` when empty.
fn endpoints(object: &Value, _: Timestamp) -> Value {
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut count = 0;
    let subsets = object.pointer("/subsets").and_then(Value::as_array);
    for subset in subsets.into_iter().flatten() {
        let addresses = subset.get("addresses").and_then(Value::as_array);
        let ports = subset.get("ports").and_then(Value::as_array);
        for address in addresses.into_iter().flatten() {
            let ip = address.get("ip").and_then(Value::as_str).unwrap_or_default();
            match ports.filter(|p| !p.is_empty()) {
                None => {
                    if list.len() < MAX {
                        list.push(ip.to_string());
                    }
                    count += 1;
                }
                Some(ports) => {
                    for port in ports {
                        if list.len() < MAX {
                            let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
                            list.push(format!("{ip}:{number}"));
                        }
                        count += 1;
                    }
                }
            }
        }
    }
    let mut out = list.join(",");
    if count > list.len() {
        out.push_str(&format!(" + {} more...", count - list.len()));
    }
    if out.is_empty() {
        out = NONE.to_string();
    }
    json!(out)
}

/// `GetAccessModesAsString`: RWO, ROX, RWX, RWOP in that order, comma-separated.
fn access_modes(modes: Option<&Value>) -> String {
    let modes: Vec<&str> = modes
        .and_then(Value::as_array)
        .map(|m| m.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| modes.contains(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

fn storage_class(object: &Value, _: Timestamp) -> Value {
    let class = match str_at(object, "/spec/storageClassName") {
        "" => object
            .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        class => class,
    };
    json!(class)
}

fn volume_mode(object: &Value, _: Timestamp) -> Value {
    match str_at(object, "/spec/volumeMode") {
        "" => json!("<unset>"),
        mode => json!(mode),
    }
}

fn pv_claim(pv: &Value, _: Timestamp) -> Value {
    match str_at(pv, "/spec/claimRef/name") {
        "" => json!(""),
        name => json!(format!("{}/{name}", str_at(pv, "/spec/claimRef/namespace"))),
    }
}

fn node_address(node: &Value, kind: &str) -> String {
    node.pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|a| a.get("type").and_then(Value::as_str) == Some(kind))
        .and_then(|a| a.get("address").and_then(Value::as_str))
        .unwrap_or(NONE)
        .to_string()
}

/// `labels.FormatLabels`: `k=v` sorted by key, `<none>` when empty.
fn labels(map: Option<&Value>) -> String {
    let Some(map) = map.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return NONE.to_string();
    };
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    pairs.join(",")
}

fn containers(object: &Value, pointer: &str, field: &str) -> String {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get(field).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(",")
}
