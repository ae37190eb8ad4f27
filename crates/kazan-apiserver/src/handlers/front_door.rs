//! The front door: authentication, the admin API, the journal entry and the fault rules a request
//! meets before it is routed.

use super::compression::{GZIP_THRESHOLD_BYTES, OPENAPI_V2_GZIP_THRESHOLD_BYTES, accepts_gzip};
use super::reply::{Ctx, JSON, Reply, into_response, json_response, stream_response};
use super::router::route;
use crate::app::App;
use crate::body::ResponseBody;
use crate::instruments::admin;
use crate::instruments::faults::FaultAction;
use crate::instruments::journal::JournalEntry;
use crate::query::{Query, parse_api_path};
use crate::status::Status;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;

/// The service error that makes hyper drop the connection without answering (a fault).
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by fault injection")]
pub(crate) struct DroppedByFault;

/// Serves one request. Every answer carries an `Audit-Id` (the real server's audit filter sets
/// one on each response, `apiserver/pkg/endpoints/filters/with_audit_init.go`).
pub(crate) async fn handle<B>(
    app: Arc<App>,
    request: Request<B>,
) -> Result<Response<ResponseBody>, DroppedByFault>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut response = serve(app, request).await?;
    if let Ok(id) = http::HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        response.headers_mut().insert("audit-id", id);
    }
    Ok(response)
}

async fn serve<B>(app: Arc<App>, request: Request<B>) -> Result<Response<ResponseBody>, DroppedByFault>
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
            return Ok(into_response(
                Reply::Error(Status::unauthorized()),
                &[],
                None,
                None,
            ));
        }
        let body = match read_body(body, app.settings.max_body_bytes).await {
            Ok(b) => b,
            Err(status) => return Ok(into_response(Reply::Error(status), &[], None, None)),
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
        user_agent: header_str(header::USER_AGENT),
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
    // Answers a fault makes up are sent as the fault says, never compressed.
    let gzip_above =
        (accepts_gzip(&parts.headers) && allowed && fault.is_none()).then_some(if path == "/openapi/v2" {
            OPENAPI_V2_GZIP_THRESHOLD_BYTES
        } else {
            GZIP_THRESHOLD_BYTES
        });
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
        other => into_response(other, &ctx.split, ctx.delay, gzip_above),
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
