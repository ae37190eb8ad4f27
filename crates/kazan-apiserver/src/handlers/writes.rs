//! The writes: create, replace, patch, delete, deletecollection (and their `/status` forms).

use super::field_validation;
use super::list::build_filter;
use super::reply::{Ctx, JSON, Reply};
use crate::app::App;
use crate::error::StoreError;
use crate::patch::{self, PatchKind};
use crate::protobuf;
use crate::registry::ResourceDef;
use crate::status::{FieldCause, Status};
use crate::store::{DeleteOptions, DeleteOutcome, WriteOptions, is_builtin};
use http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

/// Decodes a JSON request body that must be `what` (a kind's name with its article, as the real
/// server's message has it), or the 400 it answers otherwise.
pub(super) fn json_body(body: &[u8], what: &str) -> Result<Value, Box<Status>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(Status::bad_request(format!(
            "the body of the request could not be decoded as {what}: {e}"
        )))
    })
}

/// Decodes a create/replace body: JSON (also when no content type is sent), YAML, or protobuf.
pub(super) fn decode_object(ctx: &Ctx, def: &ResourceDef, body: &[u8]) -> Result<Value, Box<Status>> {
    let media = ctx
        .content_type
        .as_deref()
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let decoded: Result<Value, Status> = match media.as_str() {
        "" | "application/json" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            Status::bad_request(format!(
                "the body of the request could not be decoded as JSON: {e}"
            ))
        }),
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let text = std::str::from_utf8(body)
                .map_err(|e| Status::bad_request(format!("body is not UTF-8: {e}")))?;
            serde_saphyr::from_str(text).map_err(|e| Status::bad_request(format!("error decoding YAML: {e}")))
        }
        protobuf::PROTOBUF_MEDIA_TYPE => protobuf::decode_body(def, body).map_err(|e| {
            Status::unsupported_media_type(format!("the body of the request could not be decoded: {e}"))
        }),
        other => Err(Status::unsupported_media_type(format!(
            "the body of the request was in an unknown format ({other}) - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf"
        ))),
    };
    decoded.map_err(Box::new)
}

pub(super) fn create(app: &Arc<App>, ctx: &Ctx, def: &ResourceDef, ns: Option<&str>, body: &[u8]) -> Reply {
    let mut object = match decode_object(ctx, def, body) {
        Ok(o) => o,
        Err(s) => return s.into(),
    };
    let warnings = match field_validation::check_body(ctx, def, &mut object) {
        Ok(w) => w,
        Err(status) => return status.into(),
    };
    // The storage refuses a version on create (apiserver/pkg/storage/etcd3/store.go); the error
    // is not a Status, so it answers 500 with no reason (`ErrorToAPIStatus`).
    if object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|rv| !rv.is_empty())
    {
        return Status::failure(
            500,
            "",
            "resourceVersion should not be set on objects to be created",
        )
        .into();
    }
    match app.store.create(
        def,
        ns,
        object,
        WriteOptions {
            dry_run: ctx.dry_run,
            manager: Some(manager_of(ctx)),
            ..WriteOptions::default()
        },
    ) {
        Ok(created) => with_warnings(Reply::Json(StatusCode::CREATED, created, JSON), &warnings),
        Err(e) => e.into(),
    }
}

pub(super) fn replace(
    app: &Arc<App>,
    ctx: &Ctx,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    body: &[u8],
    status_only: bool,
) -> Reply {
    let mut object = match decode_object(ctx, def, body) {
        Ok(o) => o,
        Err(s) => return s.into(),
    };
    let warnings = match field_validation::check_body(ctx, def, &mut object) {
        Ok(w) => w,
        Err(status) => return status.into(),
    };
    match app.store.update(
        def,
        ns,
        name,
        object,
        WriteOptions {
            status_only,
            dry_run: ctx.dry_run,
            manager: Some(manager_of(ctx)),
            ..WriteOptions::default()
        },
    ) {
        Ok(updated) => with_warnings(Reply::Json(StatusCode::OK, updated, JSON), &warnings),
        Err(e) => e.into(),
    }
}

pub(super) fn patch_object(
    app: &Arc<App>,
    ctx: &Ctx,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    body: &[u8],
    status_only: bool,
) -> Reply {
    let Some(kind) = ctx.content_type.as_deref().and_then(PatchKind::from_content_type) else {
        return Status::unsupported_media_type(format!(
            "the body of the request was in an unknown format ({}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json",
            ctx.content_type.as_deref().unwrap_or("no Content-Type")
        ))
        .into();
    };
    if kind == PatchKind::Strategic && !is_builtin(def) {
        // Custom resources have no patch strategies (apiextensions-apiserver serves only JSON,
        // merge and apply patches; `negotiation.NewUnsupportedMediaTypeError`).
        return Status::unsupported_media_type(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        )
        .into();
    }
    // `ValidatePatchOptions` (apimachinery/pkg/apis/meta/v1/validation/validation.go).
    let force = ctx.query.optional_flag("force");
    let mut causes = Vec::new();
    if kind == PatchKind::Apply {
        if ctx.query.non_empty("fieldManager").is_none() {
            causes.push(FieldCause::required(
                "fieldManager",
                "is required for apply patch",
            ));
        }
    } else if force.is_some() {
        causes.push(FieldCause::forbidden(
            "force",
            "may not be specified for non-apply patch",
        ));
    }
    if !causes.is_empty() {
        return Status::invalid("meta.k8s.io", "PatchOptions", "", &causes).into();
    }
    let patch_doc = match patch::parse_body(kind, body) {
        Ok(p) => p,
        Err(e) => return Status::bad_request(e.to_string()).into(),
    };
    // The fields of what the patch makes (patch.go decodes it into the kind's type before
    // anything else); a missing object is left to the store's 404 (or an apply's create).
    let mut warnings = Vec::new();
    if kind == PatchKind::Apply {
        if let Err(status) = field_validation::check_applied(def, &patch_doc) {
            return status.into();
        }
    } else if let Ok(current) = app.store.get(def, ns, name)
        && let Ok(patched) = patch::apply(kind, &current, &patch_doc)
    {
        match field_validation::check_patched(ctx, def, kind, &patch_doc, &patched) {
            Ok(found) => warnings = found,
            Err(status) => return status.into(),
        }
    }
    match app.store.patch(
        def,
        ns,
        name,
        kind,
        &patch_doc,
        WriteOptions {
            status_only,
            dry_run: ctx.dry_run,
            manager: Some(manager_of(ctx)),
            force: force == Some(true),
            ..WriteOptions::default()
        },
    ) {
        Ok((object, created)) => with_warnings(
            Reply::Json(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                object,
                JSON,
            ),
            &warnings,
        ),
        Err(e) => e.into(),
    }
}

pub(super) fn delete(
    app: &Arc<App>,
    ctx: &Ctx,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    body: &[u8],
) -> Reply {
    let options: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match json_body(body, "DeleteOptions") {
            Ok(v) => v,
            Err(status) => return (*status).into(),
        }
    };
    if let Some(policy) = options.get("propagationPolicy").and_then(Value::as_str)
        && !matches!(policy, "Orphan" | "Background" | "Foreground")
    {
        return Status::invalid_list_options(&[FieldCause::not_supported(
            "propagationPolicy",
            policy,
            &["Foreground", "Background", "Orphan"],
        )])
        .into();
    }
    let text = |p: &str| options.pointer(p).and_then(Value::as_str).map(str::to_string);
    let grace_period = match ctx.query.non_empty("gracePeriodSeconds").map(str::parse::<i64>) {
        Some(Ok(seconds)) => Some(seconds),
        Some(Err(_)) => return Status::bad_request("invalid value for gracePeriodSeconds").into(),
        None => options.get("gracePeriodSeconds").and_then(Value::as_i64),
    };
    let propagation = ctx
        .query
        .non_empty("propagationPolicy")
        .map(str::to_string)
        .or_else(|| text("/propagationPolicy"))
        .or_else(
            || match options.get("orphanDependents").and_then(Value::as_bool) {
                Some(true) => Some("Orphan".to_string()),
                Some(false) => Some("Background".to_string()),
                None => None,
            },
        );
    let dry_run = ctx.dry_run
        || options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|values| values.iter().any(|v| v == "All"));
    let request = DeleteOptions {
        uid: text("/preconditions/uid"),
        resource_version: text("/preconditions/resourceVersion"),
        grace_period,
        propagation,
        dry_run,
    };
    match app.store.delete(def, ns, name, &request) {
        Ok(DeleteOutcome::Pending(object)) => Reply::Json(StatusCode::OK, object, JSON),
        Ok(DeleteOutcome::Deleted(object)) => {
            let uid = object
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Reply::Json(
                StatusCode::OK,
                Status::success_deleted(&def.group, &def.plural, name, uid).to_value(),
                JSON,
            )
        }
        Err(e) => e.into(),
    }
}

pub(super) fn delete_collection(app: &Arc<App>, ctx: &Ctx, def: &ResourceDef, ns: Option<&str>) -> Reply {
    let filter = match build_filter(ctx, def, ns, app.settings.sharding) {
        Ok(f) => f,
        Err(s) => return s.into(),
    };
    let victims: Vec<Value> = app
        .store
        .list(def, ns)
        .into_iter()
        .filter(|o| filter.matches(o))
        .collect();
    let mut items = Vec::new();
    for victim in victims {
        let (vns, vname) = crate::store::object_key(&victim);
        let vns = (!vns.is_empty()).then_some(vns);
        match app.store.delete(
            def,
            vns.as_deref(),
            &vname,
            &DeleteOptions {
                dry_run: ctx.dry_run,
                ..DeleteOptions::default()
            },
        ) {
            Ok(DeleteOutcome::Deleted(o) | DeleteOutcome::Pending(o)) => items.push(o),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return e.into(),
        }
    }
    Reply::Json(
        StatusCode::OK,
        json!({"kind": def.list_kind(), "apiVersion": def.api_version(),
               "metadata": {"resourceVersion": app.store.current_rv().to_string()}, "items": items}),
        JSON,
    )
}

/// `managerOrUserAgent` (apiserver/pkg/endpoints/handlers/rest.go): `fieldManager`, else the
/// User-Agent up to its first `/`.
fn manager_of(ctx: &Ctx) -> String {
    match ctx.query.non_empty("fieldManager") {
        Some(manager) => manager.to_string(),
        None => ctx
            .user_agent
            .as_deref()
            .unwrap_or_default()
            .split('/')
            .next()
            .unwrap_or_default()
            .chars()
            .take(128)
            .collect(),
    }
}

/// Adds `Warning: 299 - "..."` headers (one value, comma-separated, as HTTP allows).
fn with_warnings(reply: Reply, warnings: &[String]) -> Reply {
    if warnings.is_empty() {
        return reply;
    }
    let Reply::Json(code, value, content_type) = reply else {
        return reply;
    };
    let header = warnings
        .iter()
        .map(|w| format!("299 - {}", serde_json::Value::String(w.clone())))
        .collect::<Vec<_>>()
        .join(", ");
    Reply::Raw(
        code,
        content_type.to_string(),
        bytes::Bytes::from(serde_json::to_vec(&value).unwrap_or_default()),
        None,
        vec![("Warning".to_string(), header)],
    )
}
