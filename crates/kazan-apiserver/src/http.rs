//! The HTTP API: authentication, fault rules, discovery, and the resource endpoints (list, watch,
//! get, create, replace, patch, delete, deletecollection, `/status`), every error as a
//! `metav1.Status`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::body::{BodyWriter, ResponseBody, spawn_full};
use crate::error::StoreError;
use crate::faults::{FaultAction, Faults};
use crate::journal::{JournalEntry, LiveEntry, Observer};
use crate::patch::{self, PatchKind};
use crate::query::{ApiPath, Query, parse_api_path};
use crate::registry::ResourceDef;
use crate::selector::Filter;
use crate::selector::{FieldSelector, LabelSelector, supported_fields};
use crate::status::{FieldCause, Status};
use crate::store::{DeleteOutcome, StartRequest, Store, VersionError, WriteOptions, with_type};
use crate::watch::{WatchTask, error_line};
use crate::{admin, conversion, discovery, protobuf, table};

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub token: Option<String>,
    pub bookmark_interval: Duration,
    pub default_watch_timeout: Duration,
    pub too_large_wait: Duration,
    pub watch_list_defaulting: bool,
    pub max_body_bytes: usize,
    /// Whether the admin API under `/_kazan/` is served.
    pub admin: bool,
}

/// Everything a request handler reaches.
pub(crate) struct App {
    pub store: Arc<Store>,
    pub faults: Faults,
    pub observer: Arc<Observer>,
    pub settings: Settings,
    pub shutdown: CancellationToken,
}

/// What a handler answers, before faults shape the bytes.
enum Reply {
    Json(StatusCode, Value, &'static str),
    Error(Status),
    /// Status, content type, body, `Retry-After`, extra headers.
    Raw(StatusCode, String, Bytes, Option<u64>, Vec<(String, String)>),
    Stream(ResponseBody, &'static str),
}

impl From<StoreError> for Reply {
    fn from(e: StoreError) -> Self {
        Reply::Error(e.status().clone())
    }
}

impl From<Status> for Reply {
    fn from(s: Status) -> Self {
        Reply::Error(s)
    }
}

impl From<Box<Status>> for Reply {
    fn from(s: Box<Status>) -> Self {
        Reply::Error(*s)
    }
}

const JSON: &str = "application/json";
/// Chunks a watch may have written that the connection has not taken yet. With batches of at
/// most 32 KiB this bounds a watch's own buffer to about 128 KiB (plus hyper's and the socket's).
const WATCH_CHUNKS: usize = 4;
/// Longest watch a client can ask for (keeps deadlines representable).
const MAX_WATCH_SECONDS: u64 = 366 * 24 * 3600;
const TABLE_JSON: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// Per-request facts handlers need.
struct Ctx {
    method: Method,
    path: String,
    query: Query,
    accept: String,
    content_type: Option<String>,
    split: Vec<u64>,
    delay: Option<Duration>,
    live: Arc<LiveEntry>,
    /// `dryRun=All`: writes are validated and answered but not stored.
    dry_run: bool,
}

/// The service error that makes hyper drop the connection without answering (a fault).
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by fault injection")]
pub(crate) struct DroppedByFault;

/// Serves one request.
pub(crate) async fn handle<B>(
    app: Arc<App>,
    request: Request<B>,
) -> Result<Response<ResponseBody>, DroppedByFault>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let header_str = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };

    let allowed = app
        .settings
        .token
        .as_deref()
        .is_none_or(|token| authorized(&parts.headers, token));
    if app.settings.admin && (path.starts_with("/_kazan/") || path == "/_kazan") {
        if !allowed {
            return Ok(into_response(Reply::Error(Status::unauthorized()), &[], None));
        }
        let body = match read_body(body, app.settings.max_body_bytes).await {
            Ok(b) => b,
            Err(status) => return Ok(into_response(Reply::Error(status), &[], None)),
        };
        let (code, value) = admin::handle(&app, &parts.method, &path, &Query::parse(&raw_query), &body);
        return Ok(json_response(code, &value, JSON));
    }

    let query = Query::parse(&raw_query);
    let api_path = parse_api_path(&path, |g, v, p| {
        app.store.registry().get(g, v, p).is_some_and(|d| d.namespaced)
    });
    // `watch=` applies to collections; a named object is watched only through a legacy path.
    let is_watch = parts.method == Method::GET
        && api_path
            .as_ref()
            .is_some_and(|p| p.watch || (p.name.is_none() && query.flag("watch")));
    let entry = JournalEntry {
        seq: 0,
        method: parts.method.to_string(),
        path: path.clone(),
        query: raw_query.clone(),
        accept: header_str(header::ACCEPT),
        content_type: header_str(header::CONTENT_TYPE),
        user_agent: header_str(header::USER_AGENT),
        impersonation: impersonation_headers(&parts.headers),
        version: format!("{:?}", parts.version),
        status: 0,
        watch: is_watch,
        events: 0,
    };

    let live = app.observer.record(entry);
    let dry_run = query.get("dryRun") == Some("All");
    let mut ctx = Ctx {
        method: parts.method.clone(),
        path: path.clone(),
        query,
        accept: header_str(header::ACCEPT).unwrap_or_default(),
        content_type: header_str(header::CONTENT_TYPE),
        split: Vec::new(),
        delay: None,
        live: live.clone(),
        dry_run,
    };
    let fault = if allowed {
        app.faults.take_matching(parts.method.as_str(), &path, is_watch)
    } else {
        None
    };
    let reply = match fault {
        _ if !allowed => Reply::Error(Status::unauthorized()),
        Some(FaultAction::Drop) => {
            live.status.store(0, std::sync::atomic::Ordering::Relaxed);
            return Err(DroppedByFault);
        }
        Some(action @ FaultAction::Status { .. }) => {
            Reply::Error(action.to_status().unwrap_or_else(|| Status::internal("fault")))
        }
        Some(FaultAction::Raw {
            code,
            content_type,
            body,
            retry_after,
            headers,
        }) => Reply::Raw(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            content_type,
            Bytes::from(body),
            retry_after,
            headers.into_iter().collect(),
        ),
        other => {
            match other {
                Some(FaultAction::Split { offsets }) => ctx.split = offsets,
                Some(FaultAction::Delay { millis }) => {
                    let delay = Duration::from_millis(millis);
                    ctx.delay = Some(delay);
                    tokio::time::sleep(delay).await;
                }
                _ => {}
            }
            match read_body(body, app.settings.max_body_bytes).await {
                Ok(body) => route(&app, &ctx, api_path, is_watch, body).await,
                Err(status) => Reply::Error(status),
            }
        }
    };
    let status = match &reply {
        Reply::Json(code, ..) | Reply::Raw(code, ..) => code.as_u16(),
        Reply::Error(status) => status.code,
        Reply::Stream(..) => 200,
    };
    live.status.store(status, std::sync::atomic::Ordering::Relaxed);
    let response = match reply {
        Reply::Stream(body, content_type) => stream_response(body, content_type),
        other => into_response(other, &ctx.split, ctx.delay),
    };
    Ok(response)
}

/// The `Impersonate-*` headers of a request, for the journal.
fn impersonation_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("impersonate-"))
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_string(), value)
        })
        .collect()
}

/// Checks `Authorization: Bearer <token>` (scheme case-insensitive).
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, value)| {
            scheme.eq_ignore_ascii_case("bearer") && constant_time_eq(value.trim(), token)
        })
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, Status>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let collected = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            Status::failure(
                413,
                "RequestEntityTooLarge",
                format!("cannot read the request body: {e}"),
            )
        })?;
    Ok(collected.to_bytes())
}

fn json_response(code: StatusCode, value: &Value, content_type: &str) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(ResponseBody::full(bytes));
    *response.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response
}

fn stream_response(body: ResponseBody, content_type: &str) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    response
}

/// Turns a reply into a response; `split`/`delay` faults stream the body in pieces.
fn into_response(reply: Reply, split: &[u64], delay: Option<Duration>) -> Response<ResponseBody> {
    let (code, content_type, bytes, retry_after, extra) = match reply {
        Reply::Json(code, value, content_type) => (
            code,
            content_type.to_string(),
            Bytes::from(serde_json::to_vec(&value).unwrap_or_default()),
            None,
            Vec::new(),
        ),
        Reply::Error(status) => (
            StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            JSON.to_string(),
            Bytes::from(serde_json::to_vec(&status).unwrap_or_default()),
            status.retry_after_seconds(),
            Vec::new(),
        ),
        Reply::Raw(code, content_type, bytes, retry_after, extra) => {
            (code, content_type, bytes, retry_after, extra)
        }
        Reply::Stream(body, content_type) => return stream_response(body, content_type),
    };
    let body = if split.is_empty() && delay.is_none() {
        ResponseBody::full(bytes)
    } else {
        spawn_full(bytes, split.to_vec(), delay)
    };
    let mut response = Response::new(body);
    *response.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    for (name, value) in extra {
        // A header that is not valid HTTP is left out rather than failing the answer.
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

async fn route(app: &Arc<App>, ctx: &Ctx, api_path: Option<ApiPath>, is_watch: bool, body: Bytes) -> Reply {
    if ctx.method == Method::GET
        && let Some(answer) = discovery::respond(app.store.registry(), &ctx.path, &ctx.accept)
    {
        return Reply::Json(
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK),
            answer.body,
            answer.content_type,
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
    // Hook: Accept negotiation (406) and the metadata-only conversions, in conversion.rs.
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
            Method::POST => create(app, ctx, &def, ns, &body),
            Method::DELETE => delete_collection(app, ctx, &def, ns),
            _ => Status::method_not_allowed(ctx.method.as_str(), &def.plural).into(),
        },
        (Some(name), sub) => {
            if def.namespaced && ns.is_none() {
                return Status::path_not_found().into();
            }
            let status_only = match sub.as_deref() {
                None => false,
                Some("status") => true,
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
fn object_reply(ctx: &Ctx, def: &ResourceDef, code: StatusCode, object: Value) -> Reply {
    if table::wants_table(&ctx.accept) {
        let table = table::to_table(def, &[&object], None);
        if !table.is_null() {
            return Reply::Json(code, table, TABLE_JSON);
        }
    }
    Reply::Json(code, object, JSON)
}

/// Decodes a create/replace body: JSON (also when no content type is sent), YAML, or protobuf.
fn decode_object(ctx: &Ctx, def: &ResourceDef, body: &[u8]) -> Result<Value, Box<Status>> {
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

fn create(app: &Arc<App>, ctx: &Ctx, def: &ResourceDef, ns: Option<&str>, body: &[u8]) -> Reply {
    let object = match decode_object(ctx, def, body) {
        Ok(o) => o,
        Err(s) => return s.into(),
    };
    match app.store.create(def, ns, object, ctx.dry_run) {
        Ok(created) => Reply::Json(StatusCode::CREATED, created, JSON),
        Err(e) => e.into(),
    }
}

fn replace(
    app: &Arc<App>,
    ctx: &Ctx,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    body: &[u8],
    status_only: bool,
) -> Reply {
    let object = match decode_object(ctx, def, body) {
        Ok(o) => o,
        Err(s) => return s.into(),
    };
    match app.store.update(def, ns, name, object, status_only, ctx.dry_run) {
        Ok(updated) => Reply::Json(StatusCode::OK, updated, JSON),
        Err(e) => e.into(),
    }
}

fn patch_object(
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
    let patch_doc = match patch::parse_body(kind, body) {
        Ok(p) => p,
        Err(e) => return Status::bad_request(e.to_string()).into(),
    };
    match app.store.patch(
        def,
        ns,
        name,
        kind,
        &patch_doc,
        WriteOptions {
            status_only,
            dry_run: ctx.dry_run,
        },
    ) {
        Ok((object, created)) => Reply::Json(
            if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            object,
            JSON,
        ),
        Err(e) => e.into(),
    }
}

fn delete(app: &Arc<App>, ctx: &Ctx, def: &ResourceDef, ns: Option<&str>, name: &str, body: &[u8]) -> Reply {
    let options: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return Status::bad_request(format!(
                    "the body of the request could not be decoded as DeleteOptions: {e}"
                ))
                .into();
            }
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
    let precondition = options
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str);
    let dry_run = ctx.dry_run
        || options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|values| values.iter().any(|v| v == "All"));
    match app.store.delete(def, ns, name, precondition, dry_run) {
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

fn delete_collection(app: &Arc<App>, ctx: &Ctx, def: &ResourceDef, ns: Option<&str>) -> Reply {
    let filter = match build_filter(ctx, def, ns) {
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
        match app.store.delete(def, vns.as_deref(), &vname, None, ctx.dry_run) {
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

/// Namespace, label and field selection of a list, watch or deletecollection.
fn build_filter(ctx: &Ctx, def: &ResourceDef, ns: Option<&str>) -> Result<Filter, Box<Status>> {
    let labels = LabelSelector::parse(ctx.query.get("labelSelector").unwrap_or_default())
        .map_err(|e| Box::new(Status::bad_request(e.to_string())))?;
    let supported = supported_fields(&def.group, &def.kind);
    let fields = FieldSelector::parse(ctx.query.get("fieldSelector").unwrap_or_default(), &supported)
        .map_err(|e| Box::new(Status::bad_request(e.to_string())))?;
    Ok(Filter {
        namespace: ns.map(str::to_string),
        labels,
        fields,
    })
}

/// Parses a resourceVersion (`""`/`"0"` = 0).
fn parse_rv(value: Option<&str>) -> Result<Option<u64>, Box<Status>> {
    let parsed: Result<Option<u64>, Status> = match value {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| Status::bad_request(format!("invalid resource version: {v}"))),
    };
    parsed.map_err(Box::new)
}

/// The continue token: base64 of `{"v":"meta.k8s.io/v1","rv":<snapshot>,"start":"<ns>/<name>"}`,
/// continuing after that key; rv -1 = the latest state (the token of an expired-continue 410).
#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: i64,
    start: String,
}

fn encode_continue(rv: i64, key: &(String, String)) -> String {
    let token = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: format!("{}/{}", key.0, key.1),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

fn decode_continue(token: &str) -> Option<(i64, (String, String))> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .ok()?;
    let token: ContinueToken = serde_json::from_slice(&bytes).ok()?;
    if token.v != "meta.k8s.io/v1" || token.rv < -1 || token.rv == 0 {
        return None;
    }
    let (ns, name) = token.start.split_once('/')?;
    Some((token.rv, (ns.to_string(), name.to_string())))
}

const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

async fn list(app: &Arc<App>, ctx: &Ctx, def: &Arc<ResourceDef>, ns: Option<&str>) -> Reply {
    let q = &ctx.query;
    let rv_param = q.get("resourceVersion");
    let rv_match = q.get("resourceVersionMatch").filter(|m| !m.is_empty());
    let continue_token = q.non_empty("continue");
    // ValidateListOptions.
    let mut causes = Vec::new();
    if let Some(m) = rv_match {
        if rv_param.is_none_or(str::is_empty) {
            causes.push(FieldCause::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if continue_token.is_some() {
            causes.push(FieldCause::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        match m {
            "NotOlderThan" => {}
            "Exact" if rv_param == Some("0") => causes.push(FieldCause::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            )),
            "Exact" => {}
            other => causes.push(FieldCause::not_supported(
                "resourceVersionMatch",
                other,
                &["Exact", "NotOlderThan"],
            )),
        }
    }
    if q.get("sendInitialEvents").is_some() {
        causes.push(FieldCause::forbidden(
            "sendInitialEvents",
            "sendInitialEvents is forbidden for list",
        ));
    }
    if !causes.is_empty() {
        return Status::invalid_list_options(&causes).into();
    }
    let filter = match build_filter(ctx, def, ns) {
        Ok(f) => f,
        Err(s) => return s.into(),
    };
    let limit = match q.non_empty("limit").map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) if n > 0 => Some(n as usize),
        Some(Ok(_)) => None,
        Some(Err(_)) => return Status::bad_request("invalid value for limit").into(),
    };
    let requested = match parse_rv(rv_param) {
        Ok(rv) => rv.filter(|rv| *rv > 0),
        Err(s) => return s.into(),
    };
    let mut after: Option<(String, String)> = None;
    let at = if let Some(token) = continue_token {
        if requested.is_some() {
            return Status::bad_request("specifying resource version is not allowed when using continue")
                .into();
        }
        let Some((rv, key)) = decode_continue(token) else {
            return Status::bad_request("invalid continue token").into();
        };
        after = Some(key.clone());
        if rv == -1 {
            None
        } else {
            let rv = rv as u64;
            if rv < app.store.floor(def) {
                let fresh = encode_continue(-1, &key);
                let mut status = Status::expired(CONTINUE_EXPIRED, false);
                status.metadata = json!({"continue": fresh});
                return status.into();
            }
            Some(rv)
        }
    } else {
        match (requested, rv_match) {
            (None, _) => None,
            (Some(n), Some("Exact")) => Some(n),
            (Some(n), None) if limit.is_some() => Some(n),
            (Some(n), _) => {
                // NotOlderThan: the current state, once it is at least n.
                if n > app.store.current_rv() && !app.store.wait_for_rv(n, app.settings.too_large_wait).await
                {
                    return Status::resource_version_too_large(n, app.store.current_rv()).into();
                }
                None
            }
        }
    };
    if let Some(n) = at
        && n > app.store.current_rv()
        && !app.store.wait_for_rv(n, app.settings.too_large_wait).await
    {
        return Status::resource_version_too_large(n, app.store.current_rv()).into();
    }
    let snapshot = match app.store.snapshot(def, at) {
        Ok(s) => s,
        Err(VersionError::TooOld { .. }) => {
            return Status::expired("The resourceVersion for the provided list is too old.", false).into();
        }
        Err(VersionError::TooLarge { current }) => {
            return Status::resource_version_too_large(at.unwrap_or_default(), current).into();
        }
    };
    let selectors = !filter.labels.is_empty() || !filter.fields.is_empty();
    let mut selected = snapshot
        .items
        .iter()
        .filter(|(key, _)| after.as_ref().is_none_or(|a| key > a))
        .filter(|(_, object)| filter.matches(object));
    let mut items = Vec::new();
    let mut last_key = None;
    let mut remaining = 0;
    for (key, object) in selected.by_ref() {
        if limit.is_some_and(|l| items.len() >= l) {
            remaining = 1 + selected.count();
            break;
        }
        items.push(with_type(def, object));
        last_key = Some(key);
    }
    let more = match last_key {
        Some(key) if remaining > 0 => Some((
            encode_continue(snapshot.rv as i64, key),
            (!selectors).then_some(remaining),
        )),
        _ => None,
    };
    list_reply(ctx, def, snapshot.rv, items, more)
}

fn list_reply(
    ctx: &Ctx,
    def: &ResourceDef,
    rv: u64,
    items: Vec<Value>,
    more: Option<(String, Option<usize>)>,
) -> Reply {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some((token, remaining)) = more {
        metadata["continue"] = json!(token);
        if let Some(remaining) = remaining {
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    if table::wants_table(&ctx.accept) {
        let refs: Vec<&Value> = items.iter().collect();
        let table = table::to_table(def, &refs, Some(&metadata));
        if !table.is_null() {
            return Reply::Json(StatusCode::OK, table, TABLE_JSON);
        }
    }
    Reply::Json(
        StatusCode::OK,
        json!({"kind": def.list_kind(), "apiVersion": def.api_version(), "metadata": metadata, "items": items}),
        JSON,
    )
}

async fn watch(
    app: &Arc<App>,
    ctx: &Ctx,
    def: &Arc<ResourceDef>,
    ns: Option<&str>,
    pinned_name: Option<&str>,
    target: conversion::Target,
) -> Reply {
    if let conversion::Target::PartialList(_) = target {
        // Each event's object is one object: `asPartialObjectMetadataList` refuses it.
        return conversion::convert(target, &json!({})).err().map_or_else(
            || Status::internal("conversion").into(),
            |status| (*status).into(),
        );
    }
    let q = &ctx.query;
    let send_initial = q.optional_flag("sendInitialEvents");
    let rv_match = q.get("resourceVersionMatch").filter(|m| !m.is_empty());
    // validateWatchOptions.
    let mut causes = Vec::new();
    if send_initial.is_some() {
        if rv_match != Some("NotOlderThan") {
            causes.push(FieldCause::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if app.faults.rejects_watch_list() {
            causes.push(FieldCause::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
            ));
        }
    }
    if let Some(m) = rv_match {
        if send_initial.is_none() {
            causes.push(FieldCause::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ));
        }
        if m != "NotOlderThan" {
            causes.push(FieldCause::not_supported(
                "resourceVersionMatch",
                m,
                &["NotOlderThan"],
            ));
        }
        if q.non_empty("continue").is_some() {
            causes.push(FieldCause::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
    }
    if !causes.is_empty() {
        return Status::invalid_list_options(&causes).into();
    }
    let mut filter = match build_filter(ctx, def, ns) {
        Ok(f) => f,
        Err(s) => return s.into(),
    };
    if let Some(name) = pinned_name {
        let supported = supported_fields(&def.group, &def.kind);
        let extra = format!("metadata.name={name}");
        let combined = match q.non_empty("fieldSelector") {
            Some(existing) => format!("{existing},{extra}"),
            None => extra,
        };
        match FieldSelector::parse(&combined, &supported) {
            Ok(f) => filter.fields = f,
            Err(e) => return Status::bad_request(e.to_string()).into(),
        }
    }
    let requested = match parse_rv(q.get("resourceVersion")) {
        Ok(rv) => rv.unwrap_or(0),
        Err(s) => return s.into(),
    };
    let timeout = match q.non_empty("timeoutSeconds").map(str::parse::<u64>) {
        None | Some(Ok(0)) => app.settings.default_watch_timeout,
        Some(Ok(s)) => Duration::from_secs(s.min(MAX_WATCH_SECONDS)),
        Some(Err(_)) => return Status::bad_request("invalid value for timeoutSeconds").into(),
    };
    let bookmarks = q.flag("allowWatchBookmarks");
    let table = table::wants_table(&ctx.accept);
    // Watch streams are `application/json` whatever the objects are (§3.1).
    let content_type = JSON;

    let (start, initial_end_bookmark) = match send_initial {
        Some(true) => {
            if requested > app.store.current_rv()
                && !app
                    .store
                    .wait_for_rv(requested, app.settings.too_large_wait)
                    .await
            {
                let status = Status::resource_version_too_large(requested, app.store.current_rv());
                return single_event_stream(ctx, error_line(&status), content_type);
            }
            (StartRequest::Initial, bookmarks)
        }
        Some(false) => (
            StartRequest::From(if requested == 0 {
                app.store.current_rv()
            } else {
                requested
            }),
            false,
        ),
        None if requested == 0 => (
            StartRequest::Initial,
            bookmarks && app.settings.watch_list_defaulting && !app.faults.rejects_watch_list(),
        ),
        None => (StartRequest::From(requested), false),
    };
    let filter = Arc::new(filter);
    let (start, subscription) = match app.store.subscribe(def, start, filter.clone()) {
        Ok(s) => s,
        Err(VersionError::TooOld { floor }) => {
            let status = app.faults.expired_status(requested, floor);
            if app.faults.expired_as_http() {
                return status.into();
            }
            return single_event_stream(ctx, error_line(&status), content_type);
        }
        Err(VersionError::TooLarge { current }) => {
            return Status::resource_version_too_large(requested, current).into();
        }
    };
    let (writer, body) = BodyWriter::new(WATCH_CHUNKS, ctx.split.clone(), ctx.delay);
    let observer = app.observer.clone();
    let task = WatchTask {
        def: def.clone(),
        api_version: def.api_version(),
        store: app.store.clone(),
        filter,
        start,
        rx: subscription.rx,
        lagged: subscription.lagged,
        bookmarks,
        initial_end_bookmark,
        timeout,
        bookmark_interval: app.settings.bookmark_interval,
        table,
        partial: conversion::partial_watch(target),
        control: app.faults.state.control.subscribe(),
        shutdown: app.shutdown.clone(),
        end_after_events: app.faults.end_after_events(),
        writer,
        live: ctx.live.clone(),
        guard: app.observer.watch_started(&def.plural),
        on_lag: Box::new(move || observer.watch_lagged()),
    };
    tokio::spawn(task.run());
    Reply::Stream(body, content_type)
}

/// A 200 watch stream that sends one line (an ERROR event) and ends.
fn single_event_stream(ctx: &Ctx, line: Bytes, content_type: &'static str) -> Reply {
    let (mut writer, body) = BodyWriter::new(2, ctx.split.clone(), ctx.delay);
    let live = ctx.live.clone();
    tokio::spawn(async move {
        if writer.write(line, &|| false).await.is_ok() {
            live.events.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    Reply::Stream(body, content_type)
}
