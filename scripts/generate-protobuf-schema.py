#!/usr/bin/env python3
"""Writes crates/kazan-apiserver/src/protobuf/schema.rs: the protobuf field tables of the built-in
kinds, for protobuf-to-JSON decoding.

The field numbers, wire types and nesting come from the prost messages of the `k8s-pb` crate (the
same .proto files kubectl encodes with); the JSON field names come from the serde code of
`k8s-openapi` (the names the JSON API uses, e.g. `podIP` where prost says `pod_ip`). Only their
sources are read, never built: `cargo metadata` downloads them from crates.io into cargo's cache
(or finds them there) and says where they are. `k8s-pb` is pinned by the package
scripts/protobuf-reference (outside kazan's workspace), `k8s-openapi` by kazan's own Cargo.lock.
The output is formatted with rustfmt, as `cargo fmt` leaves it.

Run from anywhere in the repository after changing either crate's version (or ROOTS below):
    python3 scripts/generate-protobuf-schema.py           # writes schema.rs
    python3 scripts/generate-protobuf-schema.py --check   # fails if schema.rs is not current
                                                          # (scripts/test runs this)
"""
import difflib
import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(REPO, "scripts", "protobuf-reference", "Cargo.toml")
OPENAPI_VERSION = "v1_37"
OUT = os.path.join(REPO, "crates", "kazan-apiserver", "src", "protobuf", "schema.rs")

# (module path in both crates, kind): the kinds a protobuf body may carry. kubectl's typed
# generators (`kubectl create namespace|configmap|secret|serviceaccount|deployment|service|job|
# cronjob|quota|role|rolebinding|clusterrole|clusterrolebinding|priorityclass|pdb|ingress`) send
# protobuf; the rest are the server's other built-in kinds.
ROOTS = [
    ("api/core/v1", k)
    for k in [
        "Namespace", "Pod", "Service", "ConfigMap", "Secret", "Event", "Node", "ServiceAccount",
        "Endpoints", "PersistentVolumeClaim", "PersistentVolume", "ResourceQuota", "LimitRange",
    ]
] + [
    ("api/apps/v1", k) for k in ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"]
] + [
    ("api/batch/v1", k) for k in ["Job", "CronJob"]
] + [
    ("api/coordination/v1", "Lease"),
    ("api/rbac/v1", "Role"), ("api/rbac/v1", "RoleBinding"),
    ("api/rbac/v1", "ClusterRole"), ("api/rbac/v1", "ClusterRoleBinding"),
    ("api/networking/v1", "Ingress"),
    ("api/policy/v1", "PodDisruptionBudget"),
    ("api/scheduling/v1", "PriorityClass"),
]

# apiVersion of each module.
API_VERSIONS = {
    "api/core/v1": "v1", "api/apps/v1": "apps/v1", "api/batch/v1": "batch/v1",
    "api/coordination/v1": "coordination.k8s.io/v1", "api/rbac/v1": "rbac.authorization.k8s.io/v1",
    "api/networking/v1": "networking.k8s.io/v1", "api/policy/v1": "policy/v1",
    "api/scheduling/v1": "scheduling.k8s.io/v1",
}

# Messages with their own JSON form.
SPECIAL = {
    "apimachinery/pkg/apis/meta/v1/Time": "Time",
    "apimachinery/pkg/apis/meta/v1/MicroTime": "MicroTime",
    "apimachinery/pkg/apis/meta/v1/FieldsV1": "RawJson",
    "apimachinery/pkg/runtime/RawExtension": "RawJson",
    "apimachinery/pkg/api/resource/Quantity": "Quantity",
    "apimachinery/pkg/util/intstr/IntOrString": "IntOrString",
}

# `Message.field` of the Go pointer fields whose zero value means something (and of the few
# fields the JSON form always carries). kubectl writes a pointer field only when it is set and
# every other field always, so any other zero is dropped, as the JSON form leaves it out.
KEEP_ZERO = {
    "ObjectMeta.deletionGracePeriodSeconds",
    "DeploymentSpec.replicas", "DeploymentSpec.revisionHistoryLimit",
    "DeploymentSpec.progressDeadlineSeconds",
    "RollingUpdateDeployment.maxUnavailable", "RollingUpdateDeployment.maxSurge",
    "ReplicaSetSpec.replicas",
    "StatefulSetSpec.replicas", "StatefulSetSpec.revisionHistoryLimit",
    "RollingUpdateStatefulSetStrategy.partition", "RollingUpdateStatefulSetStrategy.maxUnavailable",
    "DaemonSetSpec.revisionHistoryLimit",
    "RollingUpdateDaemonSet.maxUnavailable", "RollingUpdateDaemonSet.maxSurge",
    "JobSpec.parallelism", "JobSpec.completions", "JobSpec.activeDeadlineSeconds",
    "JobSpec.backoffLimit", "JobSpec.backoffLimitPerIndex", "JobSpec.maxFailedIndexes",
    "JobSpec.ttlSecondsAfterFinished", "JobSpec.suspend", "JobSpec.manualSelector",
    "CronJobSpec.startingDeadlineSeconds", "CronJobSpec.suspend",
    "CronJobSpec.successfulJobsHistoryLimit", "CronJobSpec.failedJobsHistoryLimit",
    "PodSpec.terminationGracePeriodSeconds", "PodSpec.activeDeadlineSeconds",
    "PodSpec.automountServiceAccountToken", "PodSpec.shareProcessNamespace", "PodSpec.priority",
    "PodSpec.enableServiceLinks", "PodSpec.setHostnameAsFQDN", "PodSpec.hostUsers",
    "SecurityContext.privileged", "SecurityContext.runAsUser", "SecurityContext.runAsGroup",
    "SecurityContext.runAsNonRoot", "SecurityContext.readOnlyRootFilesystem",
    "SecurityContext.allowPrivilegeEscalation",
    "PodSecurityContext.runAsUser", "PodSecurityContext.runAsGroup",
    "PodSecurityContext.runAsNonRoot", "PodSecurityContext.fsGroup",
    "ServiceAccount.automountServiceAccountToken", "Secret.immutable", "ConfigMap.immutable",
    "ConfigMapVolumeSource.defaultMode", "ConfigMapVolumeSource.optional",
    "SecretVolumeSource.defaultMode", "SecretVolumeSource.optional",
    "ProjectedVolumeSource.defaultMode", "DownwardAPIVolumeSource.defaultMode", "KeyToPath.mode",
    "ConfigMapKeySelector.optional", "SecretKeySelector.optional",
    "ConfigMapEnvSource.optional", "SecretEnvSource.optional",
    "ConfigMapProjection.optional", "SecretProjection.optional",
    "LeaseSpec.leaseDurationSeconds", "LeaseSpec.leaseTransitions",
    "ContainerStateTerminated.exitCode", "ContainerStatus.restartCount", "ContainerStatus.ready",
    "PriorityClass.value",
    "PodDisruptionBudgetSpec.minAvailable", "PodDisruptionBudgetSpec.maxUnavailable",
}

# Messages with their own JSON form that the decoder does not handle yet (no table uses them).
UNSUPPORTED = {"apimachinery/pkg/apis/meta/v1/Duration"}

SCALARS = {"string": "Str", "bool": "Bool", "int32": "Int32", "int64": "Int64", "bytes": "Bytes"}


def source_dir(manifest, name):
    """The source directory of package `name` as the lock file of `manifest` pins it (cargo
    downloads it if it is not in its cache yet)."""
    host = re.search(r"^host: (\S+)$", subprocess.run(
        ["rustc", "-vV"], check=True, capture_output=True, text=True).stdout, re.M).group(1)
    metadata = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", host,
         "--manifest-path", manifest],
        capture_output=True, text=True,
    )
    if metadata.returncode != 0:
        sys.exit(f"cargo metadata of {manifest} failed:\n{metadata.stderr}")
    found = [p for p in json.loads(metadata.stdout)["packages"] if p["name"] == name]
    if len(found) != 1:
        sys.exit(f"{manifest} pins {len(found)} versions of {name}, not one")
    return os.path.dirname(found[0]["manifest_path"])


PB = os.path.join(source_dir(REFERENCE, "k8s-pb"), "src")
OPENAPI = os.path.join(source_dir(os.path.join(REPO, "Cargo.toml"), "k8s-openapi"), "src", OPENAPI_VERSION)

STRUCT = re.compile(r"pub struct (\w+) \{(.*?)\n\}", re.S)
FIELD = re.compile(r"#\[prost\(([^)]*)\)\]\s*pub (r#)?(\w+):\s*(.*?),\n(?=\s*(?:#\[|///|$))", re.S)
_modules = {}


def module(path):
    if path not in _modules:
        with open(os.path.join(PB, path, "mod.rs")) as f:
            _modules[path] = {m.group(1): m.group(2) for m in STRUCT.finditer(f.read())}
    return _modules[path]


def resolve(path, rust_type):
    """The (module, message) a prost field type names, seen from module `path`."""
    inner = rust_type.replace("\n", " ").replace(" ", "")
    for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<"):
        if inner.startswith(wrapper):
            inner = inner[len(wrapper):-1]
    if inner.startswith("::prost::alloc::collections::BTreeMap<"):
        inner = inner[len("::prost::alloc::collections::BTreeMap<"):-1].rstrip(",").split(",", 1)[1]
    segments = path.split("/")
    parts = inner.split("::")
    while parts and parts[0] == "super":
        segments.pop()
        parts.pop(0)
    return "/".join(segments + parts[:-1]), parts[-1]


def snake(name):
    """`CSIVolumeSource` -> `csi_volume_source`, as k8s-openapi names its files."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


_json_names = {}


def json_names(path, message):
    """The JSON names of a k8s-openapi struct, keyed by their lowercase form (which is also the
    prost field name without underscores: `non_resource_ur_ls` is `nonResourceURLs`)."""
    key = (path, message)
    if key not in _json_names:
        names = {}
        file = os.path.join(OPENAPI, path, snake(message) + ".rs")
        if os.path.exists(file):
            with open(file) as f:
                for json_name, _ in re.findall(r'"([^"]+)" => Field::Key_(\w+),', f.read()):
                    names[json_name.lower()] = json_name
        _json_names[key] = names
    return _json_names[key]


def camel(rust):
    head, *rest = rust.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def const_name(path, message):
    prefix = path.replace("apimachinery/pkg/apis/", "").replace("apimachinery/pkg/", "").replace("api/", "")
    return (prefix.replace("/", "_") + "_" + snake(message)).upper()


messages = {}  # (path, message) -> list of field tuples
kept = set()  # KEEP_ZERO entries found
order = []


def visit(path, message, inherited=None):
    """Adds a message and everything it refers to. `inherited` holds the JSON names of the struct
    a Go-embedded (`json:",inline"`) message is flattened into, since k8s-openapi has no struct of
    its own for it (`VolumeSource` is inlined into `Volume`)."""
    key = (path, message)
    if key in messages or f"{path}/{message}" in SPECIAL:
        return
    body = module(path).get(message)
    if body is None:
        sys.exit(f"message {path}/{message} not found")
    messages[key] = []
    order.append(key)
    names = json_names(path, message) or inherited or {}
    for attrs, _, rust_name, rust_type in FIELD.findall(body + "\n"):
        items = [a.strip() for a in attrs.split(",")]
        tag = int(re.search(r'tag = "(\d+)"', attrs).group(1))
        json_name = names.get(rust_name.replace("_", "")) or camel(rust_name)
        repeated = "repeated" in items
        if f"{message}.{json_name}" in KEEP_ZERO:
            kept.add(f"{message}.{json_name}")
        if items[0].startswith("btree_map"):
            value = re.search(r'btree_map = "string, (\w+)"', attrs).group(1)
            if value == "message":
                target = resolve(path, rust_type)
                kind = kind_of(target)
                if not kind.startswith("Scalar("):
                    sys.exit(f"{path}/{message}.{json_name}: maps of messages are not decoded yet")
                kind = kind.replace("Scalar(", "ScalarMap(", 1)
            else:
                kind = f"ScalarMap({scalar_kind(value)})"
            repeated = False
        elif items[0] == "message":
            target = resolve(path, rust_type)
            embedded = (
                names
                and rust_name.replace("_", "") not in names
                and not repeated
                and f"{target[0]}/{target[1]}" not in SPECIAL
                and all(n.replace("_", "") in names for n in field_names(*target))
            )
            if embedded:
                visit(target[0], target[1], names)
                kind = f"Inline(&{const_name(*target)})"
            else:
                kind = kind_of(target)
        elif items[0].startswith("bytes"):
            kind = "Scalar(Scalar::Bytes)"
        else:
            kind = f"Scalar({scalar_kind(items[0])})"
        messages[key].append((tag, json_name, kind, repeated, f"{message}.{json_name}" in KEEP_ZERO))


def field_names(path, message):
    body = module(path).get(message) or ""
    return [rust_name for _, _, rust_name, _ in FIELD.findall(body + "\n")]


def scalar_kind(proto):
    if proto not in SCALARS:
        sys.exit(f"unhandled scalar {proto}")
    return "Scalar::" + SCALARS[proto]


def kind_of(target):
    path, message = target
    if f"{path}/{message}" in UNSUPPORTED:
        sys.exit(f"{path}/{message} has no JSON mapping in the decoder yet")
    special = SPECIAL.get(f"{path}/{message}")
    if special:
        return f"Scalar(Scalar::{special})"
    visit(path, message)
    return f"Message(&{const_name(path, message)})"


for path, kind in ROOTS:
    visit(path, kind)

if KEEP_ZERO - kept:
    sys.exit(f"KEEP_ZERO names fields that do not exist: {sorted(KEEP_ZERO - kept)}")

out = [
    "//! Generated by `scripts/generate-protobuf-schema.py` from k8s-pb (field numbers) and",
    "//! k8s-openapi (JSON names).",
    "//! Do not edit: change the script and run it again.",
    "",
    "use super::wire::{Field, Kind::*, Message, Scalar};",
    "",
    "/// The message of each kind a protobuf body may carry, by `apiVersion` and kind.",
    "pub(super) static ROOTS: &[(&str, &str, &Message)] = &[",
]
for path, kind in ROOTS:
    out.append(f'    ("{API_VERSIONS[path]}", "{kind}", &{const_name(path, kind)}),')
out.append("];")
for path, message in order:
    out.append("")
    out.append(f'pub(super) static {const_name(path, message)}: Message = Message {{')
    out.append(f'    name: "{message}",')
    out.append("    fields: &[")
    for tag, json_name, kind, repeated, keep in sorted(messages[(path, message)]):
        ctor = "Field::repeated" if repeated else ("Field::keep_zero" if keep else "Field::new")
        out.append(f'        {ctor}({tag}, "{json_name}", {kind}),')
    out.append("    ],")
    out.append("};")

def rustfmt(text):
    """`text` as `cargo fmt` formats it (the workspace's rustfmt.toml and edition)."""
    formatted = subprocess.run(
        ["rustfmt", "--edition", "2024", "--config-path", os.path.join(REPO, "rustfmt.toml"),
         "--emit", "stdout"],
        input=text, check=True, capture_output=True, text=True,
    )
    return formatted.stdout


generated = rustfmt("\n".join(out) + "\n")
if "--check" in sys.argv[1:]:
    with open(OUT) as f:
        current = f.read()
    if current != generated:
        diff = difflib.unified_diff(
            current.splitlines(keepends=True), generated.splitlines(keepends=True),
            "schema.rs (committed)", "schema.rs (generated)",
        )
        sys.stdout.writelines(list(diff)[:200])
        sys.exit(f"{OUT} is not what scripts/generate-protobuf-schema.py writes: run it and commit")
    print(f"{OUT} is current ({len(order)} messages)")
else:
    with open(OUT, "w") as f:
        f.write(generated)
    print(f"wrote {len(order)} messages to {OUT}")
