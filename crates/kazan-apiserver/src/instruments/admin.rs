//! The admin HTTP API under `/_kazan/` (a prefix real clients never use): the fault-injection and
//! observability controls of [`crate::Faults`] and [`crate::ApiServer`] for the CLI and for tests
//! written in other languages. Same authentication as the rest of the server. Never journaled and
//! never matched by fault rules.
//!
#![doc = include_str!("admin.md")]

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::app::App;
use crate::instruments::faults::FaultRule;
use crate::query::Query;
use crate::status::Status;

/// The endpoint table, written once: the crate docs and this module's docs include it, and the
/// index answer (`GET /_kazan/`) is read from it.
const TABLE: &str = include_str!("admin.md");

/// The admin endpoints for the index answer: `METHOD path: effect`, one per row of [`TABLE`].
fn endpoints() -> Vec<String> {
    TABLE
        .lines()
        .filter(|line| line.starts_with("| ") && !line.starts_with("| method"))
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            let [method, path, effect] = cells.as_slice() else {
                return None;
            };
            let plain = |s: &str| s.replace(['`', '[', ']'], "");
            let effect = effect.split(" ([").next().unwrap_or(effect);
            Some(format!(
                "{} {}: {}",
                method.replace(", ", "|"),
                plain(path),
                plain(effect)
            ))
        })
        .collect()
}

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
        ("GET", "") => (StatusCode::OK, json!({"endpoints": endpoints()})),
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
        ("POST", "/watches/expire") => {
            faults.expire_watches(resource);
            ok("watches expired")
        }
        ("POST", "/watches/inject") => {
            faults.inject_into_watches(resource, bytes::Bytes::copy_from_slice(body));
            ok("bytes injected")
        }
        ("POST", "/resource-version/advance") => match query.non_empty("by").map(str::parse::<u64>) {
            Some(Ok(n)) => {
                faults.advance_resource_version(n);
                (
                    StatusCode::OK,
                    json!({"ok": true, "resourceVersion": app.store.current_rv().to_string()}),
                )
            }
            _ => bad("advance needs by=N"),
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

#[cfg(test)]
mod tests {
    use super::endpoints;

    #[test]
    fn the_index_lists_every_row_of_the_endpoint_table() {
        let rows = endpoints();
        assert_eq!(rows.len(), 16);
        assert!(
            rows.contains(&"POST /_kazan/watches/end?resource=pods: end open watches cleanly".to_string())
        );
        assert!(
            rows.contains(
                &"GET|POST|DELETE /_kazan/rules: list, add (one FaultRule or an array, JSON), clear rules"
                    .to_string()
            )
        );
    }
}
