//! The subresources beyond `/status`: `scale` (Deployments, ReplicaSets, StatefulSets, custom
//! resources with `subresources.scale`), `pods/eviction`, `pods/binding`, and the
//! SelfSubjectAccessReview the server answers for its single user. Followed:
//! `pkg/registry/apps/deployment/storage/storage.go` (`ScaleREST`),
//! `apiextensions-apiserver/pkg/registry/customresource/etcd.go` (`ScaleREST`),
//! `pkg/registry/core/pod/storage/eviction.go` and `storage.go` (`BindingREST`).

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::reply::{Ctx, JSON, Reply};
use super::writes::json_body;
use crate::app::App;
use crate::patch::{self, PatchKind};
use crate::registry::ResourceDef;
use crate::status::Status;
use crate::store::{DeleteOptions, DeleteOutcome, WriteOptions, is_builtin};

/// Where a kind keeps what its Scale shows (JSON pointers).
struct ScalePaths {
    spec_replicas: String,
    status_replicas: String,
    /// A string field holding the selector (custom resources), or None: `spec.selector` as a
    /// label selector (built-in kinds).
    label_selector: Option<String>,
}

/// `.spec.replicas` → `/spec/replicas`.
fn pointer(json_path: &str) -> String {
    json_path
        .trim_start_matches('.')
        .split('.')
        .fold(String::new(), |acc, p| format!("{acc}/{p}"))
}

fn scale_paths(app: &App, def: &ResourceDef) -> Option<ScalePaths> {
    if is_builtin(def) {
        return Some(ScalePaths {
            spec_replicas: "/spec/replicas".into(),
            status_replicas: "/status/replicas".into(),
            label_selector: None,
        });
    }
    let crd_def = app
        .store
        .registry()
        .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")?;
    let crd = app
        .store
        .get(&crd_def, None, &format!("{}.{}", def.plural, def.group))
        .ok()?;
    let version = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(def.version.as_str()))?;
    let scale = version.pointer("/subresources/scale")?;
    let path = |k: &str| scale.get(k).and_then(Value::as_str).map(pointer);
    Some(ScalePaths {
        spec_replicas: path("specReplicasPath")?,
        status_replicas: path("statusReplicasPath").unwrap_or_else(|| "/status/replicas".into()),
        label_selector: Some(path("labelSelectorPath").unwrap_or_default()),
    })
}

/// `metav1.LabelSelectorAsSelector(...).String()`: `a=b,c in (d,e)`, keys sorted.
fn selector_string(selector: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    for expression in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = expression.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = expression
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let part = match expression.get("operator").and_then(Value::as_str) {
            Some("In") => format!("{key} in ({})", values.join(",")),
            Some("NotIn") => format!("{key} notin ({})", values.join(",")),
            Some("Exists") => key.to_string(),
            Some("DoesNotExist") => format!("!{key}"),
            _ => continue,
        };
        parts.push(part);
    }
    parts.sort();
    parts.join(",")
}

/// The `autoscaling/v1` Scale of an object.
fn scale_of(object: &Value, paths: &ScalePaths) -> Value {
    let meta = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let keep = ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"];
    let metadata: serde_json::Map<String, Value> = meta
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| keep.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let selector = match &paths.label_selector {
        None => object
            .pointer("/spec/selector")
            .map(selector_string)
            .unwrap_or_default(),
        Some(p) if p.is_empty() => String::new(),
        Some(p) => object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    };
    let mut status =
        json!({"replicas": object.pointer(&paths.status_replicas).and_then(Value::as_i64).unwrap_or(0)});
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": object.pointer(&paths.spec_replicas).and_then(Value::as_i64).unwrap_or(0)},
        "status": status,
    })
}

/// `/scale`: GET the Scale; PUT or PATCH it to change the replicas.
pub(super) fn scale(
    app: &Arc<App>,
    ctx: &Ctx,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    body: &[u8],
) -> Reply {
    let Some(paths) = scale_paths(app, def) else {
        return Status::path_not_found().into();
    };
    let current = match app.store.get(def, ns, name) {
        Ok(o) => o,
        Err(e) => return e.into(),
    };
    let current_scale = scale_of(&current, &paths);
    let wanted = match ctx.method {
        Method::GET => return Reply::Json(StatusCode::OK, current_scale, JSON),
        Method::PUT => match json_body(body, "a Scale") {
            Ok(v) => v,
            Err(status) => return (*status).into(),
        },
        Method::PATCH => {
            let Some(kind) = ctx.content_type.as_deref().and_then(PatchKind::from_content_type) else {
                return Status::unsupported_media_type("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json").into();
            };
            let patched =
                patch::parse_body(kind, body).and_then(|doc| patch::apply(kind, &current_scale, &doc));
            match patched {
                Ok(v) => v,
                Err(e) => return Status::bad_request(e.to_string()).into(),
            }
        }
        _ => return Status::method_not_allowed(ctx.method.as_str(), &format!("{}/scale", def.plural)).into(),
    };
    let Some(replicas) = wanted.pointer("/spec/replicas").and_then(Value::as_i64) else {
        return Status::bad_request("the Scale has no spec.replicas").into();
    };
    if replicas < 0 {
        return Status::invalid(
            "autoscaling",
            "Scale",
            name,
            &[crate::status::FieldCause::invalid(
                "spec.replicas",
                &replicas.to_string(),
                "must be greater than or equal to 0",
            )],
        )
        .into();
    }
    // A merge patch of the object: the Scale's resourceVersion is a precondition.
    let mut change = json!({});
    crate::store::set_path(
        &mut change,
        &paths
            .spec_replicas
            .trim_start_matches('/')
            .split('/')
            .collect::<Vec<_>>(),
        json!(replicas),
    );
    if let Some(rv) = wanted
        .pointer("/metadata/resourceVersion")
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    {
        change["metadata"] = json!({"resourceVersion": rv});
    }
    let options = WriteOptions {
        dry_run: ctx.dry_run,
        ..WriteOptions::default()
    };
    match app.store.patch(def, ns, name, PatchKind::Merge, &change, options) {
        Ok((updated, _)) => Reply::Json(StatusCode::OK, scale_of(&updated, &paths), JSON),
        Err(e) => e.into(),
    }
}

fn success(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}

/// `pods/eviction`: deletes the Pod with the Eviction's delete options (PodDisruptionBudgets are
/// not consulted) and answers 201 Success.
pub(super) fn evict(
    app: &Arc<App>,
    ctx: &Ctx,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    body: &[u8],
) -> Reply {
    let eviction = match json_body(body, "an Eviction") {
        Ok(v) => v,
        Err(status) => return (*status).into(),
    };
    if let Some(n) = eviction.pointer("/metadata/name").and_then(Value::as_str)
        && n != name
    {
        return Status::bad_request(format!(
            "name in URL does not match name in Eviction object: {name} != {n}"
        ))
        .into();
    }
    let options = eviction
        .get("deleteOptions")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let text = |p: &str| options.pointer(p).and_then(Value::as_str).map(str::to_string);
    let request = DeleteOptions {
        uid: text("/preconditions/uid"),
        resource_version: text("/preconditions/resourceVersion"),
        grace_period: options.get("gracePeriodSeconds").and_then(Value::as_i64),
        propagation: text("/propagationPolicy"),
        dry_run: ctx.dry_run,
    };
    match app.store.delete(def, ns, name, &request) {
        Ok(DeleteOutcome::Deleted(_) | DeleteOutcome::Pending(_)) => {
            Reply::Json(StatusCode::CREATED, success(201), JSON)
        }
        Err(e) => e.into(),
    }
}

/// `pods/binding`: what the scheduler posts; sets `spec.nodeName` and the `PodScheduled`
/// condition, 409 when the Pod is already bound.
pub(super) fn bind(
    app: &Arc<App>,
    ctx: &Ctx,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    body: &[u8],
) -> Reply {
    let binding = match json_body(body, "a Binding") {
        Ok(v) => v,
        Err(status) => return (*status).into(),
    };
    let Some(node) = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return Status::invalid(
            "",
            "Binding",
            name,
            &[crate::status::FieldCause::required("target.name", "")],
        )
        .into();
    };
    match app.store.bind(def, ns, name, node, ctx.dry_run) {
        Ok(()) => Reply::Json(StatusCode::CREATED, success(201), JSON),
        Err(e) => e.into(),
    }
}

/// A SelfSubjectAccessReview: the server's single user may do everything (`kubectl auth can-i`
/// answers yes). Nothing is stored. kubectl sends it as protobuf, which has no table here: the
/// answer does not depend on the question, so a body that is not JSON gets an empty spec.
pub(super) fn self_subject_access_review(body: &[u8]) -> Reply {
    let mut review: Value = serde_json::from_slice(body)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({"spec": {}}));
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectAccessReview");
    review["metadata"] = json!({"creationTimestamp": null});
    review["status"] =
        json!({"allowed": true, "reason": "kazan: the server's single user may do everything"});
    Reply::Json(StatusCode::CREATED, review, JSON)
}
