//! From a path to a handler: discovery, health, and the resource endpoints.

use super::list::list;
use super::reply::{Ctx, JSON, Reply, TABLE_JSON};
use super::subresources::{bind, evict, scale, self_subject_access_review};
use super::watch::watch;
use super::writes::{create, delete, delete_collection, patch_object, replace};
use crate::app::App;
use crate::query::ApiPath;
use crate::registry::ResourceDef;
use crate::status::Status;
use crate::{conversion, discovery, table};
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::Value;
use std::sync::Arc;

pub(super) async fn route(
    app: &Arc<App>,
    ctx: &Ctx,
    api_path: Option<ApiPath>,
    is_watch: bool,
    body: Bytes,
) -> Reply {
    if ctx.method == Method::GET
        && let Some(answer) = discovery::respond(app.store.registry(), &ctx.path, &ctx.accept)
    {
        return Reply::Json(
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK),
            answer.body,
            answer.content_type,
        );
    }
    if ctx.method == Method::GET
        && let Some(answer) = discovery::openapi_v2(app.store.registry(), &ctx.path, &ctx.accept)
    {
        let mut headers = vec![("Vary".to_string(), "Accept".to_string())];
        headers.extend(answer.etag.map(|etag| ("ETag".to_string(), etag)));
        return Reply::Raw(
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK),
            answer.content_type.to_string(),
            Bytes::from(answer.body),
            None,
            headers,
        );
    }
    if ctx.method == Method::GET && matches!(ctx.path.as_str(), "/healthz" | "/livez" | "/readyz") {
        return Reply::Raw(
            StatusCode::OK,
            "text/plain; charset=utf-8".into(),
            Bytes::from_static(b"ok"),
            None,
            Vec::new(),
        );
    }
    let Some(api_path) = api_path else {
        return Status::path_not_found().into();
    };
    let Some(def) = app
        .store
        .registry()
        .get(&api_path.group, &api_path.version, &api_path.plural)
    else {
        return Status::path_not_found().into();
    };
    if !def.namespaced && api_path.namespace.is_some() {
        return Status::path_not_found().into();
    }
    if let Some(value) = ctx.query.non_empty("dryRun")
        && value != "All"
    {
        return Status::bad_request(format!(
            "Unsupported value: \"{value}\": supported values: \"All\""
        ))
        .into();
    }
    // Accept negotiation (406) and the metadata-only conversions (conversion.rs).
    let target = match conversion::negotiate(&ctx.accept, is_watch) {
        Ok(target) => target,
        Err(status) => return (*status).into(),
    };
    let reply = resource_reply(app, ctx, &def, &api_path, is_watch, body, target).await;
    match reply {
        Reply::Json(code, value, content_type) if code.is_success() => {
            match conversion::convert(target, &value) {
                Ok(Some(converted)) => Reply::Json(code, converted, JSON),
                Ok(None) => Reply::Json(code, value, content_type),
                Err(status) => (*status).into(),
            }
        }
        other => other,
    }
}

/// What a resource endpoint answers, before any conversion.
async fn resource_reply(
    app: &Arc<App>,
    ctx: &Ctx,
    def: &Arc<ResourceDef>,
    api_path: &ApiPath,
    is_watch: bool,
    body: Bytes,
    target: conversion::Target,
) -> Reply {
    let def = def.clone();
    let ns = api_path.namespace.as_deref();
    match (&api_path.name, &api_path.subresource) {
        (None, _) => match ctx.method {
            Method::GET if is_watch => watch(app, ctx, &def, ns, None, target).await,
            Method::GET => list(app, ctx, &def, ns).await,
            Method::POST if def.namespaced && ns.is_none() => {
                Status::method_not_allowed("POST", &format!("{} across all namespaces", def.plural)).into()
            }
            Method::POST if def.group == "authorization.k8s.io" => self_subject_access_review(&body),
            Method::POST => create(app, ctx, &def, ns, &body),
            Method::DELETE => delete_collection(app, ctx, &def, ns),
            _ => Status::method_not_allowed(ctx.method.as_str(), &def.plural).into(),
        },
        (Some(name), sub) => {
            if def.namespaced && ns.is_none() {
                return Status::path_not_found().into();
            }
            let served = |s: &str| def.subresources.iter().any(|d| d == s);
            let status_only = match sub.as_deref() {
                None => false,
                Some("status") if def.has_status() => true,
                Some("scale") if served("scale") => {
                    return scale(app, ctx, &def, ns, name, &body);
                }
                Some(s @ ("eviction" | "binding")) if served(s) => {
                    if ctx.method != Method::POST {
                        return Status::method_not_allowed(
                            ctx.method.as_str(),
                            &format!("{}/{s}", def.plural),
                        )
                        .into();
                    }
                    return if s == "eviction" {
                        evict(app, ctx, &def, ns, name, &body)
                    } else {
                        bind(app, ctx, &def, ns, name, &body)
                    };
                }
                Some(_) => return Status::path_not_found().into(),
            };
            match ctx.method {
                Method::GET if api_path.watch => watch(app, ctx, &def, ns, Some(name), target).await,
                Method::GET => match app.store.get(&def, ns, name) {
                    Ok(object) => object_reply(ctx, &def, StatusCode::OK, object),
                    Err(e) => e.into(),
                },
                Method::PUT => replace(app, ctx, &def, ns, name, &body, status_only),
                Method::PATCH => patch_object(app, ctx, &def, ns, name, &body, status_only),
                Method::DELETE if !status_only => delete(app, ctx, &def, ns, name, &body),
                _ => Status::method_not_allowed(ctx.method.as_str(), &def.plural).into(),
            }
        }
    }
}

/// One object, as JSON or (when asked) a Table.
pub(super) fn object_reply(ctx: &Ctx, def: &ResourceDef, code: StatusCode, object: Value) -> Reply {
    if table::wants_table(&ctx.accept) {
        let table = table::to_table(def, &[&object], None);
        if !table.is_null() {
            return Reply::Json(code, table, TABLE_JSON);
        }
    }
    Reply::Json(code, object, JSON)
}
