use jiff::Timestamp;
use serde_json::{Value, json};

use super::*;
use crate::registry::{PrinterColumn, Registry, ResourceDef};

const KUBECTL_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

fn now() -> Result<Timestamp, String> {
    "2026-01-10T12:00:00Z".parse().map_err(|e| format!("{e}"))
}

fn def(registry: &Registry, group: &str, plural: &str) -> Result<ResourceDef, String> {
    registry
        .all()
        .iter()
        .find(|d| d.group == group && d.plural == plural)
        .map(|d| (**d).clone())
        .ok_or(format!("{plural} not registered"))
}

fn headers(table: &Value) -> Vec<(String, i64)> {
    table["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["priority"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

#[test]
fn wants_table_reads_the_accept_header() {
    assert!(wants_table(KUBECTL_ACCEPT));
    assert!(wants_table("application/json;as=Table;v=v1beta1;g=meta.k8s.io"));
    assert!(wants_table("application/json; as=Table; g=meta.k8s.io; v=v1"));
    assert!(!wants_table("application/json"));
    assert!(!wants_table(""));
    assert!(!wants_table("application/json;as=Table;v=v2;g=meta.k8s.io"));
    assert!(!wants_table(
        "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
    ));
    assert!(!wants_table(
        "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io"
    ));
}

#[test]
fn namespace_list_table_has_name_status_age_rows_and_list_metadata() -> Result<(), String> {
    let registry = Registry::with_builtins();
    let namespaces = def(&registry, "", "namespaces")?;
    let default = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "default", "resourceVersion": "7", "creationTimestamp": "2026-01-05T12:00:00Z",
                     "labels": {"kubernetes.io/metadata.name": "default"}},
        "status": {"phase": "Active"},
    });
    let leaving = json!({
        "metadata": {"name": "leaving", "creationTimestamp": "2026-01-10T11:57:00Z"},
        "status": {"phase": "Terminating"},
    });
    let list_metadata = json!({"resourceVersion": "103", "continue": "abc", "remainingItemCount": 4});
    let table = to_table_at(&namespaces, &[&default, &leaving], Some(&list_metadata), now()?);
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(table["metadata"], list_metadata);
    assert_eq!(
        headers(&table),
        [("Name".into(), 0), ("Status".into(), 0), ("Age".into(), 0)]
    );
    assert_eq!(table["columnDefinitions"][0]["format"], "name");
    assert_eq!(table["rows"][0]["cells"], json!(["default", "Active", "5d"]));
    assert_eq!(table["rows"][1]["cells"], json!(["leaving", "Terminating", "3m"]));
    assert_eq!(
        table["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": default["metadata"]})
    );
    Ok(())
}

#[test]
fn single_object_table_carries_its_resource_version() -> Result<(), String> {
    let registry = Registry::with_builtins();
    let cm = json!({"metadata": {"name": "c", "namespace": "ns1", "resourceVersion": "42"}, "data": {"a": "1", "b": "2"}});
    let table = to_table_at(&def(&registry, "", "configmaps")?, &[&cm], None, now()?);
    assert_eq!(table["metadata"], json!({"resourceVersion": "42"}));
    assert_eq!(
        headers(&table),
        [("Name".into(), 0), ("Data".into(), 0), ("Age".into(), 0)]
    );
    assert_eq!(table["rows"][0]["cells"], json!(["c", 2, "<unknown>"]));
    assert_eq!(table["rows"][0]["object"]["metadata"]["namespace"], "ns1");
    Ok(())
}

#[test]
fn pod_columns_match_kubectl_including_wide_ones() -> Result<(), String> {
    let registry = Registry::with_builtins();
    let pods = def(&registry, "", "pods")?;
    let pod = json!({
        "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": "2026-01-10T11:59:15Z"},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app"}, {"name": "sidecar"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.7",
            "containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-10T11:55:00Z"}}},
                {"name": "sidecar", "ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            ],
        },
    });
    let table = to_table_at(&pods, &[&pod], None, now()?);
    let names: Vec<String> = headers(&table).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    assert_eq!(headers(&table)[5], ("IP".to_string(), 1));
    assert_eq!(
        table["rows"][0]["cells"],
        json!([
            "web-1",
            "1/2",
            "CrashLoopBackOff",
            "3 (5m ago)",
            "45s",
            "10.0.0.7",
            "node-a",
            "<none>",
            "<none>"
        ])
    );
    Ok(())
}

#[test]
fn pod_status_follows_kubectl() -> Result<(), String> {
    let registry = Registry::with_builtins();
    let pods = def(&registry, "", "pods")?;
    let status = |pod: Value| -> Result<Value, String> {
        Ok(to_table_at(&pods, &[&pod], None, now()?)["rows"][0]["cells"][2].clone())
    };
    assert_eq!(status(json!({"metadata": {"name": "p"}}))?, "Pending");
    assert_eq!(
        status(
            json!({"metadata": {"name": "p"}, "spec": {"initContainers": [{}, {}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"state": {"terminated": {"exitCode": 0}}}, {"state": {"running": {}}}]}})
        )?,
        "Init:1/2"
    );
    assert_eq!(
        status(json!({"metadata": {"name": "p"}, "status": {"phase": "Failed",
            "containerStatuses": [{"state": {"terminated": {"exitCode": 137, "signal": 9}}}]}}))?,
        "Signal:9"
    );
    assert_eq!(
        status(
            json!({"metadata": {"name": "p", "deletionTimestamp": "2026-01-10T11:00:00Z"},
            "status": {"phase": "Running"}})
        )?,
        "Terminating"
    );
    Ok(())
}

#[test]
fn deployment_columns_compute_ready_and_selector() -> Result<(), String> {
    let registry = Registry::with_builtins();
    let deployments = def(&registry, "apps", "deployments")?;
    let deployment = json!({
        "metadata": {"name": "web", "creationTimestamp": "2026-01-10T09:30:00Z"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"},
                         "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
            "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}},
        },
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    });
    let table = to_table_at(&deployments, &[&deployment], None, now()?);
    let names: Vec<String> = headers(&table).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(
        table["rows"][0]["cells"],
        json!([
            "web",
            "2/3",
            3,
            2,
            "150m",
            "nginx,log",
            "nginx:1.27,busybox",
            "app=web,tier in (a,b)"
        ])
    );
    // A fresh deployment without status shows zeros, as kubectl does.
    let fresh = json!({"metadata": {"name": "new"}, "spec": {"replicas": 1}});
    assert_eq!(
        to_table_at(&deployments, &[&fresh], None, now()?)["rows"][0]["cells"],
        json!(["new", "0/1", 0, 0, "<unknown>", "<none>", "<none>", "<none>"])
    );
    Ok(())
}

#[test]
fn service_ports_and_external_ip() -> Result<(), String> {
    let registry = Registry::with_builtins();
    let services = def(&registry, "", "services")?;
    let service = json!({
        "metadata": {"name": "svc"},
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "selector": {"app": "web"},
                 "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]},
    });
    let table = to_table_at(&services, &[&service], None, now()?);
    assert_eq!(
        table["rows"][0]["cells"],
        json!([
            "svc",
            "NodePort",
            "10.96.0.10",
            "<none>",
            "80:30080/TCP,53/UDP",
            "<unknown>",
            "app=web"
        ])
    );
    Ok(())
}

#[test]
fn custom_resource_columns_follow_their_json_paths_and_types() -> Result<(), String> {
    let widgets = ResourceDef::new("example.com", "v1", "Widget", "widgets", true)
        .column(PrinterColumn::new("Color", ".spec.color"))
        .column(PrinterColumn {
            column_type: "integer".into(),
            ..PrinterColumn::new("Size", ".spec.size")
        })
        .column(PrinterColumn {
            column_type: "date".into(),
            ..PrinterColumn::new("Seen", ".status.seen")
        })
        .column(PrinterColumn::new("Parts", ".spec.parts[*].name").wide());
    let widget = json!({
        "metadata": {"name": "w1", "creationTimestamp": "2026-01-10T11:00:00Z"},
        "spec": {"color": "blue", "size": 7, "parts": [{"name": "a"}, {"name": "b"}]},
        "status": {"seen": "2026-01-10T11:59:50Z"},
    });
    let table = to_table_at(&widgets, &[&widget], None, now()?);
    let names: Vec<String> = headers(&table).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["Name", "Color", "Size", "Seen", "Age", "Parts"]);
    assert_eq!(table["columnDefinitions"][2]["type"], "integer");
    assert_eq!(
        table["rows"][0]["cells"],
        json!(["w1", "blue", 7, "10s", "60m", "a,b"])
    );
    let bare = json!({"metadata": {"name": "w2"}});
    assert_eq!(
        to_table_at(&widgets, &[&bare], None, now()?)["rows"][0]["cells"],
        json!(["w2", "<none>", 0, "<none>", "<unknown>", "<none>"])
    );
    Ok(())
}

#[test]
fn crds_show_created_at_instead_of_age() -> Result<(), String> {
    let registry = Registry::with_builtins();
    let crd =
        json!({"metadata": {"name": "widgets.example.com", "creationTimestamp": "2026-01-10T11:00:00Z"}});
    let table = to_table_at(
        &def(&registry, "apiextensions.k8s.io", "customresourcedefinitions")?,
        &[&crd],
        None,
        now()?,
    );
    assert_eq!(headers(&table), [("Name".into(), 0), ("Created At".into(), 0)]);
    assert_eq!(
        table["rows"][0]["cells"],
        json!(["widgets.example.com", "2026-01-10T11:00:00Z"])
    );
    Ok(())
}

#[test]
fn a_declared_age_column_is_not_doubled() {
    let def = ResourceDef::new("example.com", "v1", "Thing", "things", false)
        .column(PrinterColumn::new("Age", ".metadata.creationTimestamp"));
    let table = to_table(&def, &[], None);
    assert_eq!(headers(&table), [("Name".into(), 0), ("Age".into(), 0)]);
    assert_eq!(table["rows"], json!([]));
}

#[test]
fn human_duration_matches_kubectl() {
    let cases = [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (200, "3m20s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (5 * 3600 + 3 * 60, "5h3m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (2 * 86400 + 4 * 3600, "2d4h"),
        (30 * 86400, "30d"),
        (2 * 365 * 86400 + 40 * 86400, "2y40d"),
        (9 * 365 * 86400, "9y"),
    ];
    for (seconds, expected) in cases {
        assert_eq!(human_duration(seconds), expected, "{seconds}s");
    }
}

/// The cells of the one row of `object`'s Table.
fn row(def: &ResourceDef, object: &Value) -> Result<Vec<Value>, String> {
    let table = to_table_at(def, &[object], None, now()?);
    table["rows"][0]["cells"]
        .as_array()
        .cloned()
        .ok_or_else(|| format!("no row in {table}"))
}

/// Events as kube's printEvent: LAST SEEN first and no NAME but in `-o wide`, OBJECT as
/// `kind/name`, COUNT 1 for a singleton, SOURCE `component, host`.
#[test]
fn event_columns_follow_kubes_event_printer() -> Result<(), String> {
    let registry = Registry::with_builtins();
    let events = def(&registry, "", "events")?;
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web-1.17f", "namespace": "w", "creationTimestamp": "2026-01-10T11:00:00Z"},
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{app}"},
        "reason": "Pulled", "message": "Container image pulled\n", "type": "Normal",
        "firstTimestamp": "2026-01-10T11:50:00Z", "lastTimestamp": "2026-01-10T11:59:00Z",
        "source": {"component": "kubelet", "host": "node-a"}
    });
    let table = to_table_at(&events, &[&event], None, now()?);
    assert_eq!(
        headers(&table),
        [
            ("Last Seen".to_string(), 0),
            ("Type".to_string(), 0),
            ("Reason".to_string(), 0),
            ("Object".to_string(), 0),
            ("Subobject".to_string(), 1),
            ("Source".to_string(), 1),
            ("Message".to_string(), 0),
            ("First Seen".to_string(), 1),
            ("Count".to_string(), 1),
            ("Name".to_string(), 1),
        ]
    );
    assert_eq!(
        row(&events, &event)?,
        [
            json!("60s"),
            json!("Normal"),
            json!("Pulled"),
            json!("pod/web-1"),
            json!("spec.containers{app}"),
            json!("kubelet, node-a"),
            json!("Container image pulled"),
            json!("10m"),
            json!(1),
            json!("web-1.17f"),
        ]
    );
    Ok(())
}

/// Endpoints as kube's formatEndpoints: `ip:port`, three at most, then ` + N more...`.
#[test]
fn endpoints_list_three_addresses_and_count_the_rest() -> Result<(), String> {
    let registry = Registry::with_builtins();
    let endpoints = def(&registry, "", "endpoints")?;
    let object = json!({
        "metadata": {"name": "web", "namespace": "w", "creationTimestamp": "2026-01-10T11:59:00Z"},
        "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}]
    });
    assert_eq!(
        row(&endpoints, &object)?,
        [
            json!("web"),
            json!("10.0.0.1:80,10.0.0.1:443,10.0.0.2:80 + 1 more..."),
            json!("60s")
        ]
    );
    let empty = json!({"metadata": {"name": "none", "creationTimestamp": "2026-01-10T11:59:00Z"}});
    assert_eq!(row(&endpoints, &empty)?[1], json!("<none>"));
    Ok(())
}

/// Claims and volumes as kube's printers: ACCESS MODES abbreviated, CLAIM `namespace/name`,
/// `<unset>` for no volume attributes class, VOLUMEMODE only wide.
#[test]
fn claims_and_volumes_show_access_modes_and_claims() -> Result<(), String> {
    let registry = Registry::with_builtins();
    let pvcs = def(&registry, "", "persistentvolumeclaims")?;
    let claim = json!({
        "metadata": {"name": "data", "namespace": "w", "creationTimestamp": "2026-01-10T11:59:00Z"},
        "spec": {"volumeName": "pv-1", "storageClassName": "fast", "volumeMode": "Filesystem"},
        "status": {"phase": "Bound", "accessModes": ["ReadWriteMany", "ReadWriteOnce"], "capacity": {"storage": "1Gi"}}
    });
    assert_eq!(
        row(&pvcs, &claim)?,
        [
            json!("data"),
            json!("Bound"),
            json!("pv-1"),
            json!("1Gi"),
            json!("RWO,RWX"),
            json!("fast"),
            json!("<unset>"),
            json!("60s"),
            json!("Filesystem")
        ]
    );
    let pvs = def(&registry, "", "persistentvolumes")?;
    let volume = json!({
        "metadata": {"name": "pv-1", "creationTimestamp": "2026-01-10T11:59:00Z"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": "w", "name": "data"}},
        "status": {"phase": "Bound"}
    });
    assert_eq!(
        row(&pvs, &volume)?,
        [
            json!("pv-1"),
            json!("1Gi"),
            json!("RWO"),
            json!("Retain"),
            json!("Bound"),
            json!("w/data"),
            json!(""),
            json!("<unset>"),
            json!(""),
            json!("60s"),
            json!("<unset>")
        ]
    );
    Ok(())
}

/// Nodes, daemon sets and cron jobs have kubectl's `-o wide` columns.
#[test]
fn wide_columns_of_nodes_daemon_sets_and_cron_jobs() -> Result<(), String> {
    let registry = Registry::with_builtins();
    let wide = |def: &ResourceDef| -> Result<Vec<String>, String> {
        let table = to_table_at(def, &[], None, now()?);
        Ok(headers(&table)
            .into_iter()
            .filter(|(_, priority)| *priority > 0)
            .map(|(name, _)| name)
            .collect())
    };
    assert_eq!(
        wide(&def(&registry, "", "nodes")?)?,
        [
            "Internal-IP",
            "External-IP",
            "OS-Image",
            "Kernel-Version",
            "Container-Runtime"
        ]
    );
    assert_eq!(
        wide(&def(&registry, "apps", "daemonsets")?)?,
        ["Containers", "Images", "Selector"]
    );
    assert_eq!(
        wide(&def(&registry, "batch", "cronjobs")?)?,
        ["Containers", "Images", "Selector"]
    );
    let node = json!({
        "metadata": {"name": "node-a", "creationTimestamp": "2026-01-10T11:59:00Z"},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
                   "nodeInfo": {"kubeletVersion": "v1.37.0", "osImage": "Debian"}}
    });
    assert_eq!(
        row(&def(&registry, "", "nodes")?, &node)?,
        [
            json!("node-a"),
            json!("Unknown"),
            json!("<none>"),
            json!("60s"),
            json!("v1.37.0"),
            json!("10.0.0.5"),
            json!("<none>"),
            json!("Debian"),
            json!("<unknown>"),
            json!("<unknown>")
        ]
    );
    Ok(())
}
