//! The per-kind rules of the real registry strategies and scheme defaults, applied to every write
//! made over HTTP: what a create resets and initialises, what an update keeps, which kinds carry
//! `generation` and when it moves, and the Secret conversion. Followed:
//! - `kubernetes/pkg/registry/{core,apps,batch,...}/*/strategy.go` (`PrepareForCreate`,
//!   `PrepareForUpdate`: status reset on create and kept on updates, `generation`),
//! - `apiextensions-apiserver/pkg/registry/customresource/strategy.go` (custom resources),
//! - `kubernetes/pkg/apis/{core,apps,batch}/v1/defaults.go` (the scheme defaults),
//! - `kubernetes/pkg/apis/core/v1/conversion.go` (`stringData` merged into `data`).
//!
//! The direct Rust API ([`crate::ApiServer::create`] and friends) stores `status` as given, since
//! tests use it to set up the state a controller or kubelet would have written.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::error::StoreError;
use crate::registry::ResourceDef;
use crate::status::Status;

use super::rules::set_path;

/// The groups of the built-in kinds; every other group holds custom resources.
const BUILTIN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "coordination.k8s.io",
    "apiextensions.k8s.io",
    "events.k8s.io",
    "rbac.authorization.k8s.io",
    "policy",
    "networking.k8s.io",
    "authorization.k8s.io",
];

/// Whether a resource is a built-in kind (not a custom resource).
pub(crate) fn is_builtin(def: &ResourceDef) -> bool {
    BUILTIN_GROUPS.contains(&def.group.as_str())
}

/// Whether the kind's strategy sets `metadata.generation` (custom resources always do; of the
/// built-in kinds, those with a spec a controller observes).
fn sets_generation(def: &ResourceDef) -> bool {
    !is_builtin(def)
        || matches!(
            (def.group.as_str(), def.plural.as_str()),
            ("", "pods")
                | ("apps", _)
                | ("batch", _)
                | ("apiextensions.k8s.io", _)
                | ("policy", _)
                | ("networking.k8s.io", "ingresses" | "networkpolicies")
        )
}

/// Create: the Secret conversion, the scheme defaults, status reset (unless `keep_status`), and
/// `generation` 1 for the kinds that carry it. Runs after the server set `uid`.
pub(super) fn prepare_for_create(
    def: &ResourceDef,
    object: &mut Value,
    keep_status: bool,
) -> Result<(), StoreError> {
    if is(def, "", "secrets") {
        convert_secret(object)?;
    }
    apply_defaults(def, object, true);
    if def.has_status() && !keep_status {
        reset_status(def, object);
    }
    let meta = object.get_mut("metadata").and_then(Value::as_object_mut);
    if let Some(meta) = meta {
        if sets_generation(def) {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
    }
    Ok(())
}

/// Update of the object itself: the Secret conversion, the scheme defaults, the old `status` kept
/// (kinds with a status subresource, unless `keep_status`), and `generation` as the strategy moves
/// it.
pub(super) fn prepare_for_update(
    def: &ResourceDef,
    old: &Value,
    object: &mut Value,
    keep_status: bool,
) -> Result<(), StoreError> {
    if is(def, "", "secrets") {
        convert_secret(object)?;
    }
    apply_defaults(def, object, false);
    if def.has_status() && !keep_status {
        copy_field(old, object, "status");
    }
    set_generation(def, old, object);
    Ok(())
}

/// The update validation of the kinds whose spec is mostly immutable: a Pod
/// (`ValidatePodUpdate`, `pkg/apis/core/validation/validation.go`) may change only its images,
/// `activeDeadlineSeconds`, `tolerations` and `terminationGracePeriodSeconds`.
pub(super) fn validate_update(def: &ResourceDef, old: &Value, object: &Value) -> Result<(), StoreError> {
    if !is(def, "", "pods") {
        return Ok(());
    }
    let mutable_masked = |pod: &Value| -> Value {
        let mut spec = pod.get("spec").cloned().unwrap_or(Value::Null);
        if let Some(map) = spec.as_object_mut() {
            for field in [
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
                "schedulingGates",
            ] {
                map.remove(field);
            }
            for list in ["containers", "initContainers"] {
                if let Some(containers) = map.get_mut(list).and_then(Value::as_array_mut) {
                    for container in containers {
                        if let Some(c) = container.as_object_mut() {
                            c.remove("image");
                        }
                    }
                }
            }
        }
        spec
    };
    if mutable_masked(old) == mutable_masked(object) {
        return Ok(());
    }
    let name = old
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Err(Status::invalid(
        "",
        "Pod",
        name,
        &[crate::status::FieldCause::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        )],
    )
    .into())
}

/// Keeps (or removes) a top-level field as it is in `old`.
fn copy_field(old: &Value, object: &mut Value, field: &str) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    match old.get(field) {
        Some(value) => map.insert(field.into(), value.clone()),
        None => map.remove(field),
    };
}

/// `generation`: the old one, plus one when what the strategy watches changed (the spec; for a
/// Deployment also its annotations; for a custom resource everything but `metadata`, and
/// `status` when it has the status subresource).
fn set_generation(def: &ResourceDef, old: &Value, object: &mut Value) {
    let old_generation = old.pointer("/metadata/generation").and_then(Value::as_i64);
    let Some(old_generation) = old_generation.filter(|_| sets_generation(def)) else {
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            match old.pointer("/metadata/generation") {
                Some(g) => meta.insert("generation".into(), g.clone()),
                None => meta.remove("generation"),
            };
        }
        return;
    };
    let watched = |o: &Value| -> Value {
        let skip_status = is_builtin(def) || def.has_status();
        match o {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(k, _)| match k.as_str() {
                        "metadata" | "kind" | "apiVersion" => false,
                        "status" => !skip_status,
                        _ => true,
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            _ => Value::Null,
        }
    };
    let mut changed = watched(old) != watched(object);
    if is(def, "apps", "deployments") {
        changed |= old.pointer("/metadata/annotations") != object.pointer("/metadata/annotations");
    }
    let generation = if changed {
        old_generation + 1
    } else {
        old_generation
    };
    set_path(object, &["metadata", "generation"], json!(generation));
}

fn is(def: &ResourceDef, group: &str, plural: &str) -> bool {
    def.group == group && def.plural == plural
}

/// What `PrepareForCreate` leaves in `status` (the Go zero value as the real server serializes
/// it; a Pod starts `Pending` with its QoS class; a Node keeps what its kubelet registered).
fn reset_status(def: &ResourceDef, object: &mut Value) {
    let status = match (def.group.as_str(), def.plural.as_str()) {
        ("", "nodes" | "namespaces") | ("apiextensions.k8s.io", _) => return,
        ("", "pods") => json!({"phase": "Pending", "qosClass": qos_class(object)}),
        ("", "services") | ("networking.k8s.io", "ingresses") => json!({"loadBalancer": {}}),
        ("", "persistentvolumes" | "persistentvolumeclaims") => json!({"phase": "Pending"}),
        ("apps", "replicasets") => json!({"replicas": 0}),
        ("apps", "statefulsets") => json!({"replicas": 0, "availableReplicas": 0}),
        ("apps", "daemonsets") => json!({"currentNumberScheduled": 0, "numberMisscheduled": 0,
                                        "desiredNumberScheduled": 0, "numberReady": 0}),
        ("policy", "poddisruptionbudgets") => json!({"disruptionsAllowed": 0, "currentHealthy": 0,
                                                   "desiredHealthy": 0, "expectedPods": 0}),
        _ if is_builtin(def) => json!({}),
        _ => {
            if let Some(map) = object.as_object_mut() {
                map.remove("status");
            }
            return;
        }
    };
    set_path(object, &["status"], status);
}

/// `qos.GetPodQOS` (`pkg/apis/core/helper/qos`): BestEffort without requests or limits,
/// Guaranteed when every container limits CPU and memory with requests equal to the limits.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let resources = |c: &Value, which: &str| -> Map<String, Value> {
        c.pointer(&format!("/resources/{which}"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let any = containers
        .iter()
        .any(|c| !resources(c, "requests").is_empty() || !resources(c, "limits").is_empty());
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let limits = resources(c, "limits");
        let requests = resources(c, "requests");
        ["cpu", "memory"].iter().all(|r| {
            limits
                .get(*r)
                .is_some_and(|l| requests.get(*r).is_none_or(|q| q == l))
        })
    });
    if guaranteed { "Guaranteed" } else { "Burstable" }
}

/// `Convert_v1_Secret_To_core_Secret` and `SetDefaults_Secret`: `data` must be base64,
/// `stringData` is merged into `data` and never stored, `type` defaults to `Opaque`.
fn convert_secret(object: &mut Value) -> Result<(), StoreError> {
    let engine = base64::engine::general_purpose::STANDARD;
    if let Some(data) = object.get("data").and_then(Value::as_object) {
        for value in data.values() {
            let text = value.as_str().unwrap_or_default();
            if let Err(e) = engine.decode(text) {
                return Err(Status::bad_request(format!(
                    "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte {}",
                    invalid_byte(&e)
                ))
                .into());
            }
        }
    }
    let Some(map) = object.as_object_mut() else {
        return Ok(());
    };
    if let Some(Value::Object(string_data)) = map.remove("stringData") {
        let data = map.entry("data").or_insert_with(|| json!({}));
        if !data.is_object() {
            *data = json!({});
        }
        if let Some(data) = data.as_object_mut() {
            for (key, value) in string_data {
                let text = value.as_str().unwrap_or_default();
                data.insert(key, json!(engine.encode(text)));
            }
        }
    }
    if map.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
        map.insert("type".into(), json!("Opaque"));
    }
    Ok(())
}

/// The input offset Go's decoder names for a base64 error.
fn invalid_byte(error: &base64::DecodeError) -> usize {
    match error {
        base64::DecodeError::InvalidByte(offset, _) | base64::DecodeError::InvalidLastSymbol(offset, _) => {
            *offset
        }
        _ => 0,
    }
}

/// Sets `value` at `key` when it is absent (or null).
fn default(map: &mut Value, key: &str, value: Value) {
    if let Some(m) = map.as_object_mut()
        && m.get(key).is_none_or(Value::is_null)
    {
        m.insert(key.into(), value);
    }
}

/// The object at `path`, created when absent.
fn child<'a>(value: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    let mut current = value;
    for part in path {
        let map = current.as_object_mut()?;
        current = map.entry((*part).to_string()).or_insert_with(|| json!({}));
        if current.is_null() {
            *current = json!({});
        }
    }
    current.is_object().then_some(current)
}

/// The scheme defaults of the built-in kinds (`pkg/apis/*/v1/defaults.go`), and on create the
/// fields `PrepareForCreate` fills (a Job's selector, a Service's cluster IP).
fn apply_defaults(def: &ResourceDef, object: &mut Value, creating: bool) {
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "pods") => {
            if let Some(spec) = child(object, &["spec"]) {
                pod_spec_defaults(spec);
                default(spec, "enableServiceLinks", json!(true));
                default(spec, "serviceAccountName", json!("default"));
                let account = spec
                    .get("serviceAccountName")
                    .cloned()
                    .unwrap_or(json!("default"));
                default(spec, "serviceAccount", account);
            }
        }
        ("apps", "deployments") => {
            if let Some(spec) = child(object, &["spec"]) {
                default(spec, "replicas", json!(1));
                default(spec, "revisionHistoryLimit", json!(10));
                default(spec, "progressDeadlineSeconds", json!(600));
                if let Some(strategy) = child(spec, &["strategy"]) {
                    default(strategy, "type", json!("RollingUpdate"));
                    if strategy.get("type") == Some(&json!("RollingUpdate"))
                        && let Some(rolling) = child(strategy, &["rollingUpdate"])
                    {
                        default(rolling, "maxUnavailable", json!("25%"));
                        default(rolling, "maxSurge", json!("25%"));
                    }
                }
            }
            template_defaults(object, &["spec", "template", "spec"]);
        }
        ("apps", "replicasets") => {
            if let Some(spec) = child(object, &["spec"]) {
                default(spec, "replicas", json!(1));
            }
            template_defaults(object, &["spec", "template", "spec"]);
        }
        ("apps", "statefulsets") => {
            if let Some(spec) = child(object, &["spec"]) {
                default(spec, "replicas", json!(1));
                default(spec, "podManagementPolicy", json!("OrderedReady"));
                default(spec, "revisionHistoryLimit", json!(10));
                default(
                    spec,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
                if let Some(strategy) = child(spec, &["updateStrategy"]) {
                    default(strategy, "type", json!("RollingUpdate"));
                    if strategy.get("type") == Some(&json!("RollingUpdate"))
                        && let Some(rolling) = child(strategy, &["rollingUpdate"])
                    {
                        default(rolling, "partition", json!(0));
                    }
                }
            }
            template_defaults(object, &["spec", "template", "spec"]);
        }
        ("apps", "daemonsets") => {
            if let Some(spec) = child(object, &["spec"]) {
                default(spec, "revisionHistoryLimit", json!(10));
                if let Some(strategy) = child(spec, &["updateStrategy"]) {
                    default(strategy, "type", json!("RollingUpdate"));
                    if strategy.get("type") == Some(&json!("RollingUpdate"))
                        && let Some(rolling) = child(strategy, &["rollingUpdate"])
                    {
                        default(rolling, "maxUnavailable", json!(1));
                        default(rolling, "maxSurge", json!(0));
                    }
                }
            }
            template_defaults(object, &["spec", "template", "spec"]);
        }
        ("batch", "jobs") => {
            if creating {
                job_selector(object);
            }
            if let Some(spec) = child(object, &["spec"]) {
                job_spec_defaults(spec);
            }
            template_defaults(object, &["spec", "template", "spec"]);
        }
        ("batch", "cronjobs") => {
            if let Some(spec) = child(object, &["spec"]) {
                default(spec, "concurrencyPolicy", json!("Allow"));
                default(spec, "suspend", json!(false));
                default(spec, "successfulJobsHistoryLimit", json!(3));
                default(spec, "failedJobsHistoryLimit", json!(1));
            }
            if let Some(spec) = child(object, &["spec", "jobTemplate", "spec"]) {
                job_spec_defaults(spec);
            }
            template_defaults(object, &["spec", "jobTemplate", "spec", "template", "spec"]);
        }
        ("", "services") => {
            if let Some(spec) = child(object, &["spec"]) {
                service_spec_defaults(spec, creating);
            }
        }
        _ => {}
    }
}

/// A pod template's spec gets the pod spec defaults (only when the template exists).
fn template_defaults(object: &mut Value, path: &[&str]) {
    let pointer = format!("/{}", path.join("/"));
    if let Some(spec) = object.pointer_mut(&pointer).filter(|s| s.is_object()) {
        pod_spec_defaults(spec);
    }
}

/// `SetDefaults_PodSpec` and `SetDefaults_Container`.
fn pod_spec_defaults(spec: &mut Value) {
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "securityContext", json!({}));
    default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers {
            default(container, "terminationMessagePath", json!("/dev/termination-log"));
            default(container, "terminationMessagePolicy", json!("File"));
            let image = container.get("image").and_then(Value::as_str).unwrap_or_default();
            default(container, "imagePullPolicy", json!(pull_policy(image)));
            default(container, "resources", json!({}));
            if let Some(ports) = container.get_mut("ports").and_then(Value::as_array_mut) {
                for port in ports {
                    default(port, "protocol", json!("TCP"));
                }
            }
        }
    }
}

/// `Always` for `:latest` or no tag, `IfNotPresent` otherwise (a digest counts as a tag).
fn pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// `SetDefaults_Job`.
fn job_spec_defaults(spec: &mut Value) {
    if spec.get("completions").is_none_or(Value::is_null)
        && spec.get("parallelism").is_none_or(Value::is_null)
    {
        default(spec, "completions", json!(1));
    }
    default(spec, "parallelism", json!(1));
    default(spec, "backoffLimit", json!(6));
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    if spec.get("podFailurePolicy").is_none() {
        default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    }
}

/// The Job strategy's `generateSelector`: the controller-uid and job-name labels on the template
/// and the selector, unless `manualSelector` is set.
fn job_selector(object: &mut Value) {
    if object.pointer("/spec/manualSelector") == Some(&json!(true)) {
        return;
    }
    let uid = object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    for (key, value) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        if let Some(labels) = child(object, &["spec", "template", "metadata", "labels"]) {
            default(labels, key, json!(value));
        }
    }
    if object.pointer("/spec/selector").is_none() {
        set_path(
            object,
            &["spec", "selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
        );
    }
}

/// `SetDefaults_Service` and, on create, the cluster IP and node ports the allocators give.
fn service_spec_defaults(spec: &mut Value, creating: bool) {
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    let service_type = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if service_type != "ExternalName" {
        default(spec, "internalTrafficPolicy", json!("Cluster"));
        if creating {
            default(spec, "clusterIP", json!(random_cluster_ip()));
        }
        let ip = spec.get("clusterIP").cloned().unwrap_or(Value::Null);
        if !ip.is_null() {
            default(spec, "clusterIPs", json!([ip]));
        }
        default(spec, "ipFamilies", json!(["IPv4"]));
        default(spec, "ipFamilyPolicy", json!("SingleStack"));
    }
    let node_ports = matches!(service_type.as_str(), "NodePort" | "LoadBalancer");
    if node_ports {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            default(port, "protocol", json!("TCP"));
            let number = port.get("port").cloned().unwrap_or(Value::Null);
            default(port, "targetPort", number);
            if node_ports && creating {
                default(port, "nodePort", json!(30000 + random_u16() % 2768));
            }
        }
    }
}

fn random_u16() -> u16 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u16::from_le_bytes([bytes[0], bytes[1]])
}

/// An address of the default service range 10.96.0.0/12, never 10.96.0.1 (the `kubernetes`
/// service's).
fn random_cluster_ip() -> String {
    let n = random_u16();
    format!("10.96.{}.{}", n >> 8, 2 + (n & 0xff) % 252)
}

#[cfg(test)]
mod tests {
    use super::{pull_policy, qos_class};
    use serde_json::json;

    #[test]
    fn images_without_a_tag_or_with_latest_are_always_pulled() {
        assert_eq!(pull_policy("nginx"), "Always");
        assert_eq!(pull_policy("nginx:latest"), "Always");
        assert_eq!(pull_policy("registry:5000/nginx"), "Always");
        assert_eq!(pull_policy("nginx:1.27"), "IfNotPresent");
        assert_eq!(pull_policy("nginx@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn qos_classes_follow_requests_and_limits() {
        let pod = |resources| json!({"spec": {"containers": [{"name": "c", "resources": resources}]}});
        assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(qos_class(&pod(json!({"requests": {"cpu": "1"}}))), "Burstable");
        assert_eq!(
            qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
    }
}
