//! The admin HTTP API under `/_kazan/` (a prefix real clients never use): the fault-injection and
//! observability controls of [`crate::Faults`] and [`crate::ApiServer`] for the CLI and for tests
//! written in other languages. Same authentication as the rest of the server. Never journaled and
//! never matched by fault rules.
//!
//! | method | path | effect |
//! |---|---|---|
//! | GET | `/_kazan/` | this list |
//! | POST | `/_kazan/watches/end[?resource=pods]` | end open watches cleanly |
//! | POST | `/_kazan/watches/cut[?resource=]` | cut them mid-event (no terminating chunk) |
//! | POST | `/_kazan/watches/stall?millis=N[&resource=]` | stop writing for N ms |
//! | POST | `/_kazan/watches/bookmark[?resource=]` | send a BOOKMARK now |
//! | POST | `/_kazan/watches/end-after?events=K` | end each new watch after K change events (0 = off) |
//! | POST | `/_kazan/history/compact` | every resume from an older version gets 410 |
//! | GET, POST, DELETE | `/_kazan/rules` | list, add (a rule or an array of rules, JSON), clear fault rules |
//! | POST | `/_kazan/expired?http410=bool&gone=bool&etcdMessage=bool` | how "too old" is reported |
//! | POST | `/_kazan/watch-list?reject=bool` | reject `sendInitialEvents` watches with 422 |
//! | GET, DELETE | `/_kazan/journal` | the request journal; clear it |
//! | GET | `/_kazan/stats` | counters (connections, requests, open watches per resource) |
//! | GET | `/_kazan/resource-version` | the current global resourceVersion |

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::faults::FaultRule;
use crate::http::App;
use crate::query::Query;
use crate::status::Status;

/// The admin endpoints, for the index answer.
const ENDPOINTS: &[&str] = &[
    "POST /_kazan/watches/end[?resource=]",
    "POST /_kazan/watches/cut[?resource=]",
    "POST /_kazan/watches/stall?millis=N[&resource=]",
    "POST /_kazan/watches/bookmark[?resource=]",
    "POST /_kazan/watches/end-after?events=K",
    "POST /_kazan/history/compact",
    "GET|POST|DELETE /_kazan/rules",
    "POST /_kazan/expired?http410=bool&gone=bool&etcdMessage=bool",
    "POST /_kazan/watch-list?reject=bool",
    "GET|DELETE /_kazan/journal",
    "GET /_kazan/stats",
    "GET /_kazan/resource-version",
];

/// Serves one admin request: (status code, JSON body).
pub(crate) fn handle(
    app: &App,
    method: &Method,
    path: &str,
    query: &Query,
    body: &[u8],
) -> (StatusCode, Value) {
    let faults = &app.faults;
    let resource = query.non_empty("resource");
    let ok = |what: &str| (StatusCode::OK, json!({"ok": true, "done": what}));
    let route = path.trim_start_matches("/_kazan").trim_end_matches('/');
    match (method.as_str(), route) {
        ("GET", "") => (StatusCode::OK, json!({"endpoints": ENDPOINTS})),
        ("POST", "/watches/end") => {
            faults.end_watches(resource);
            ok("watches ended")
        }
        ("POST", "/watches/cut") => {
            faults.cut_watches(resource);
            ok("watches cut")
        }
        ("POST", "/watches/stall") => {
            let millis = match query.non_empty("millis").map(str::parse::<u64>) {
                Some(Ok(m)) => m,
                _ => match query.non_empty("seconds").map(str::parse::<u64>) {
                    Some(Ok(s)) => s * 1000,
                    _ => return bad("stall needs millis=N or seconds=N"),
                },
            };
            faults.stall_watches(resource, Duration::from_millis(millis));
            ok("watches stalled")
        }
        ("POST", "/watches/bookmark") => {
            faults.send_bookmark(resource);
            ok("bookmark sent")
        }
        ("POST", "/watches/end-after") => match query.non_empty("events").map(str::parse::<u64>) {
            Some(Ok(k)) => {
                faults.end_watches_after_events(Some(k).filter(|k| *k > 0));
                ok("end-after set")
            }
            None => {
                faults.end_watches_after_events(None);
                ok("end-after cleared")
            }
            Some(Err(_)) => bad("events must be a number"),
        },
        ("POST", "/history/compact") => {
            faults.compact_history();
            (
                StatusCode::OK,
                json!({"ok": true, "resourceVersion": app.store.current_rv().to_string()}),
            )
        }
        ("GET", "/rules") => (StatusCode::OK, json!({"rules": faults.rules()})),
        ("POST", "/rules") => {
            let rules: Result<Vec<FaultRule>, _> = match serde_json::from_slice::<Value>(body) {
                Ok(Value::Array(items)) => items.into_iter().map(serde_json::from_value).collect(),
                Ok(one) => serde_json::from_value(one).map(|r| vec![r]),
                Err(e) => return bad(&format!("rules must be JSON: {e}")),
            };
            match rules {
                Ok(rules) => {
                    let n = rules.len();
                    for rule in rules {
                        faults.add_rule(rule);
                    }
                    (StatusCode::OK, json!({"ok": true, "added": n}))
                }
                Err(e) => bad(&format!("invalid rule: {e}")),
            }
        }
        ("DELETE", "/rules") => {
            faults.clear_rules();
            ok("rules cleared")
        }
        ("POST", "/expired") => {
            if let Some(on) = query.optional_flag("http410") {
                faults.expired_as_http_410(on);
            }
            if let Some(on) = query.optional_flag("gone") {
                faults.expired_reason_gone(on);
            }
            if let Some(on) = query.optional_flag("etcdMessage") {
                faults.expired_etcd_message(on);
            }
            ok("expired reporting set")
        }
        ("POST", "/watch-list") => {
            faults.reject_watch_list(query.flag("reject"));
            ok("watch-list setting changed")
        }
        ("GET", "/journal") => (StatusCode::OK, json!({"entries": app.observer.journal()})),
        ("DELETE", "/journal") => {
            app.observer.clear_journal();
            ok("journal cleared")
        }
        ("GET", "/stats") => (
            StatusCode::OK,
            serde_json::to_value(app.observer.stats()).unwrap_or_default(),
        ),
        ("GET", "/resource-version") => (
            StatusCode::OK,
            json!({"resourceVersion": app.store.current_rv().to_string()}),
        ),
        _ => (StatusCode::NOT_FOUND, Status::path_not_found().to_value()),
    }
}

fn bad(message: &str) -> (StatusCode, Value) {
    (StatusCode::BAD_REQUEST, Status::bad_request(message).to_value())
}
