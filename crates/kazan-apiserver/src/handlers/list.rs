//! Lists: the list options' validation, consistent snapshots, and pagination with the continue-token
//! codec.

use super::reply::{Ctx, JSON, Reply, TABLE_JSON};
use crate::app::App;
use crate::registry::ResourceDef;
use crate::selector::Filter;
use crate::selector::{FieldSelector, LabelSelector, supported_fields};
use crate::status::{FieldCause, Status};
use crate::store::{PageRange, VersionError, is_builtin, with_type};
use crate::table;
use base64::Engine;
use http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

/// Namespace, label and field selection of a list, watch or deletecollection.
/// `sharding`: whether `shardSelector` is honoured (else ignored, as by a server without the
/// `ShardedListAndWatch` feature).
pub(super) fn build_filter(
    ctx: &Ctx,
    def: &ResourceDef,
    ns: Option<&str>,
    sharding: bool,
) -> Result<Filter, Box<Status>> {
    let labels = LabelSelector::parse(ctx.query.get("labelSelector").unwrap_or_default())
        .map_err(|e| Box::new(Status::bad_request(e.to_string())))?;
    let supported = supported_fields(&def.group, &def.kind);
    let fields = FieldSelector::parse(ctx.query.get("fieldSelector").unwrap_or_default(), &supported)
        .map_err(|e| Box::new(Status::bad_request(e.to_string())))?;
    let shard = match ctx.query.non_empty("shardSelector") {
        // The list options' conversion refuses a malformed selector, which the handler answers
        // with 400 (apimachinery meta/internalversion conversion.go; apiserver handlers/get.go).
        Some(selector) if sharding => Some(
            kazan::shard::ShardSelector::parse(selector)
                .map_err(|e| Box::new(Status::bad_request(format!("invalid shard selector: {e}"))))?,
        ),
        _ => None,
    };
    Ok(Filter {
        namespace: ns.map(str::to_string),
        labels,
        fields,
        shard,
    })
}

/// Parses a resourceVersion (`""`/`"0"` = 0).
pub(super) fn parse_rv(value: Option<&str>) -> Result<Option<u64>, Box<Status>> {
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
pub(super) struct ContinueToken {
    v: String,
    rv: i64,
    start: String,
}

pub(super) fn encode_continue(rv: i64, key: &(String, String)) -> String {
    let token = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: format!("{}/{}", key.0, key.1),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

pub(super) fn decode_continue(token: &str) -> Option<(i64, (String, String))> {
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

pub(super) const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

pub(super) async fn list(app: &Arc<App>, ctx: &Ctx, def: &Arc<ResourceDef>, ns: Option<&str>) -> Reply {
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
    let filter = match build_filter(ctx, def, ns, app.settings.sharding) {
        Ok(f) => f,
        Err(s) => return s.into(),
    };
    let limit = match q.non_empty("limit").map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) if n > 0 => Some(n as usize),
        Some(Ok(_)) => None,
        Some(Err(_)) => return Status::bad_request("invalid value for limit").into(),
    };
    // The watch cache serves `resourceVersion=0` (not Exact) whole: it ignores `limit`
    // (apiserver/pkg/storage/cacher/delegator.go, `shouldDelegateList`).
    let limit =
        limit.filter(|_| !(rv_param == Some("0") && rv_match != Some("Exact") && continue_token.is_none()));
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
    let selectors = !filter.labels.is_empty() || !filter.fields.is_empty();
    // The namespace is the page's range; the other selectors look into each object.
    let selects_all = !selectors && filter.shard.is_none();
    let range = PageRange {
        namespace: filter.namespace.as_deref(),
        after: after.as_ref(),
        limit,
    };
    // remainingItemCount is only given for an unfiltered list, as the real server does.
    let page = match app.store.list_page(
        def,
        at,
        range,
        |object| selects_all || filter.matches(object),
        !selectors,
    ) {
        Ok(page) => page,
        Err(VersionError::TooOld { .. }) => {
            return Status::expired("The resourceVersion for the provided list is too old.", false).into();
        }
        Err(VersionError::TooLarge { current }) => {
            return Status::resource_version_too_large(at.unwrap_or_default(), current).into();
        }
    };
    let more = match page.items.last() {
        Some((key, _)) if page.rest > 0 => Some((
            encode_continue(page.rv as i64, key),
            (!selectors).then_some(page.rest),
        )),
        _ => None,
    };
    let items = page
        .items
        .iter()
        .map(|(_, object)| list_item(def, object))
        .collect();
    let shard = filter.shard.as_ref().map(ToString::to_string);
    list_reply(ctx, def, page.rv, items, more, shard)
}

pub(super) fn list_reply(
    ctx: &Ctx,
    def: &ResourceDef,
    rv: u64,
    items: Vec<Value>,
    more: Option<(String, Option<usize>)>,
    shard: Option<String>,
) -> Reply {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    // The selector as the server's parser writes it back (storage SelectionPredicate
    // SetShardInfoOnList): how a client knows the list was filtered.
    if let Some(selector) = shard {
        metadata["shardInfo"] = json!({"selector": selector});
    }
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

/// An item of a list: built-in kinds come without `kind`/`apiVersion` (the typed list's items do
/// not carry them), custom resources with them (unstructured lists keep each item's).
fn list_item(def: &ResourceDef, object: &Value) -> Value {
    if !is_builtin(def) {
        return with_type(def, object);
    }
    let mut item = object.clone();
    if let Some(map) = item.as_object_mut() {
        map.remove("kind");
        map.remove("apiVersion");
    }
    item
}
