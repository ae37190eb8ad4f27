//! Discovery and OpenAPI: `/version`, `/api`, `/apis`, `/api/v1`, `/apis/{group}[/{version}]` in the
//! aggregated and the legacy form, the OpenAPI v3 documents `kubectl apply` and `explain` read, and
//! the OpenAPI v2 document kubectl validates `kind: List` manifests against.
//! Everything is generated from the [`Registry`].
//!
//! kubectl asks `/api` and `/apis` for the aggregated form (`APIGroupDiscoveryList`) and only
//! believes the answer when its `Content-Type` is exactly [`AGGREGATED_MEDIA_TYPE`]; the Python
//! client's `DynamicClient` reads the legacy form (`APIVersions`, `APIGroupList`, then one
//! `APIResourceList` per group-version). Both are served.

mod gnostic;
mod openapi;
mod openapi_v2;

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::registry::{Registry, ResourceDef};

/// The media type kubectl asks for and needs back, exactly, for aggregated discovery.
pub(crate) const AGGREGATED_MEDIA_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// The same for the older `v2beta1` form, which clients before 1.30 ask for.
pub(crate) const AGGREGATED_V2BETA1_MEDIA_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// The media type of every other discovery answer.
pub(crate) const JSON_MEDIA_TYPE: &str = "application/json";

/// The Kubernetes release this server reports at `/version`. kubectl warns when its own minor
/// version is more than one away, so this follows the kubectl the tests use (1.37).
pub(crate) const SERVER_MAJOR: &str = "1";
/// See [`SERVER_MAJOR`].
pub(crate) const SERVER_MINOR: &str = "37";
/// `gitVersion` at `/version`: semver, with build metadata saying which server this is.
pub(crate) const SERVER_GIT_VERSION: &str = "v1.37.0+kazan";

/// An answer to a discovery or OpenAPI request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DiscoveryResponse {
    /// HTTP status code (200, or 404 for an unknown group).
    pub status: u16,
    /// `Content-Type` of the answer.
    pub content_type: &'static str,
    /// The JSON body.
    pub body: serde_json::Value,
}

impl DiscoveryResponse {
    fn ok(body: Value) -> Self {
        DiscoveryResponse {
            status: 200,
            content_type: JSON_MEDIA_TYPE,
            body,
        }
    }

    fn not_found() -> Self {
        DiscoveryResponse {
            status: 404,
            content_type: JSON_MEDIA_TYPE,
            body: json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "the server could not find the requested resource",
                "reason": "NotFound",
                "details": {},
                "code": 404
            }),
        }
    }
}

/// Answers `path` if it is a discovery or OpenAPI path (`/version`, `/api`, `/api/v1`, `/apis`,
/// `/apis/{g}`, `/apis/{g}/{v}`, `/openapi/v3`, `/openapi/v3/...`), else `None`; `/openapi/v2`
/// is [`openapi_v2`].
/// `accept` is the request's `Accept` header (aggregated discovery when it asks for it).
pub(crate) fn respond(registry: &Registry, path: &str, accept: &str) -> Option<DiscoveryResponse> {
    // Be lenient with what the router hands over: a query string or a trailing slash changes
    // nothing here (kubectl adds `?timeout=32s`, the OpenAPI index links carry `?hash=`).
    let path = path.split('?').next().unwrap_or(path);
    let path = path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let groups = || GroupVersions::from_registry(registry);
    match segments.as_slice() {
        ["version"] => Some(DiscoveryResponse::ok(version_info())),
        ["api"] => Some(match aggregated_media_type(accept) {
            Some(media) => aggregated(media, vec![aggregated_group(&groups().core())]),
            None => DiscoveryResponse::ok(api_versions()),
        }),
        ["apis"] => {
            let groups = groups();
            Some(match aggregated_media_type(accept) {
                Some(media) => aggregated(media, groups.named().iter().map(aggregated_group).collect()),
                None => DiscoveryResponse::ok(api_group_list(&groups)),
            })
        }
        ["api", "v1"] => Some(DiscoveryResponse::ok(resource_list(&groups().core()))),
        ["apis", group] => Some(match groups().group(group) {
            Some(g) => DiscoveryResponse::ok(api_group(&g)),
            None => DiscoveryResponse::not_found(),
        }),
        ["apis", group, version] => Some(match groups().group(group).and_then(|g| g.only(version)) {
            Some(g) => DiscoveryResponse::ok(resource_list(&g)),
            None => DiscoveryResponse::not_found(),
        }),
        ["openapi", "v3"] => Some(DiscoveryResponse::ok(openapi::index(&groups()))),
        ["openapi", "v3", rest @ ..] => Some(match openapi::document(&groups(), rest) {
            Some(doc) => DiscoveryResponse::ok(doc),
            None => DiscoveryResponse::not_found(),
        }),
        _ => None,
    }
}

/// The media type of `/openapi/v2` as gnostic's protobuf, as the real server labels it (it also
/// accepts the older `...spec.v2@v1.0+protobuf` that client-go asks for).
pub(crate) const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// An answer to `/openapi/v2`: a document (JSON or protobuf) or a 406 without a body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OpenApiV2Response {
    /// 200, or 406 when `Accept` names neither JSON nor the protobuf form.
    pub status: u16,
    /// `Content-Type` of the answer; empty for the 406.
    pub content_type: &'static str,
    /// The document's bytes.
    pub body: Vec<u8>,
    /// `ETag`: a hash of the JSON document, the same for both forms (as kube-openapi's handler).
    pub etag: Option<String>,
}

/// Answers `/openapi/v2` (kube-openapi `pkg/handler/handler.go`): the first `Accept` clause, by
/// quality, that matches `application/json` or either protobuf subtype picks the form; an empty
/// `Accept` is `*/*` (JSON); nothing matching is a 406. `None` for any other path.
pub(crate) fn openapi_v2(registry: &Registry, path: &str, accept: &str) -> Option<OpenApiV2Response> {
    let path = path.split('?').next().unwrap_or(path);
    if path.trim_end_matches('/') != "/openapi/v2" {
        return None;
    }
    let doc = openapi_v2::document(&GroupVersions::from_registry(registry));
    let json = serde_json::to_vec(&doc).unwrap_or_default();
    let etag = Some(format!("\"{}\"", openapi::content_hash(&doc)));
    Some(match openapi_v2_form(accept) {
        Some(OpenApiV2Form::Json) => OpenApiV2Response {
            status: 200,
            content_type: JSON_MEDIA_TYPE,
            body: json,
            etag,
        },
        Some(OpenApiV2Form::Protobuf) => OpenApiV2Response {
            status: 200,
            content_type: OPENAPI_V2_PROTOBUF,
            body: openapi_v2::protobuf(&doc),
            etag,
        },
        None => OpenApiV2Response {
            status: 406,
            content_type: "",
            body: Vec::new(),
            etag: None,
        },
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum OpenApiV2Form {
    Json,
    Protobuf,
}

/// The form `accept` asks for, in goautoneg's order: by quality, then the more specific range.
fn openapi_v2_form(accept: &str) -> Option<OpenApiV2Form> {
    let accept = if accept.trim().is_empty() { "*/*" } else { accept };
    let mut clauses: Vec<(f64, u8, &str, &str)> = Vec::new();
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let Some((kind, sub)) = parts.next().and_then(|m| m.split_once('/')) else {
            continue;
        };
        let quality = parts
            .find_map(|p| p.strip_prefix("q="))
            .and_then(|q| q.parse::<f64>().ok())
            .unwrap_or(1.0);
        let specificity = match (kind, sub) {
            ("*", _) => 0,
            (_, "*") => 1,
            _ => 2,
        };
        clauses.push((quality, specificity, kind, sub));
    }
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
    let served = [
        ("json", OpenApiV2Form::Json),
        (
            "com.github.proto-openapi.spec.v2@v1.0+protobuf",
            OpenApiV2Form::Protobuf,
        ),
        (
            "com.github.proto-openapi.spec.v2.v1.0+protobuf",
            OpenApiV2Form::Protobuf,
        ),
    ];
    clauses.iter().find_map(|(_, _, kind, sub)| {
        served.iter().find_map(|(served_sub, form)| {
            let kind_matches = *kind == "*" || kind.eq_ignore_ascii_case("application");
            let sub_matches = *sub == "*" || sub.eq_ignore_ascii_case(served_sub);
            (kind_matches && sub_matches).then_some(*form)
        })
    })
}

/// Which aggregated discovery media type `accept` asks for, if any, honouring the client's order.
fn aggregated_media_type(accept: &str) -> Option<&'static str> {
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        if !(media.eq_ignore_ascii_case("application/json") || media == "*/*") {
            continue;
        }
        let (mut group, mut version, mut kind) = (None, None, None);
        for param in parts {
            match param.split_once('=') {
                Some(("g", v)) => group = Some(v),
                Some(("v", v)) => version = Some(v),
                Some(("as", v)) => kind = Some(v),
                _ => {}
            }
        }
        if group != Some("apidiscovery.k8s.io") || kind != Some("APIGroupDiscoveryList") {
            continue;
        }
        match version {
            Some("v2") => return Some(AGGREGATED_MEDIA_TYPE),
            Some("v2beta1") => return Some(AGGREGATED_V2BETA1_MEDIA_TYPE),
            _ => {}
        }
    }
    None
}

/// `/version`.
fn version_info() -> Value {
    json!({
        "major": SERVER_MAJOR,
        "minor": SERVER_MINOR,
        "emulationMajor": SERVER_MAJOR,
        "emulationMinor": SERVER_MINOR,
        "minCompatibilityMajor": SERVER_MAJOR,
        "minCompatibilityMinor": SERVER_MINOR,
        "gitVersion": SERVER_GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": format!("{}/{}", go_os(), go_arch()),
    })
}

fn go_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The registry seen as API groups, each with its versions in preference order.
#[derive(Debug, Clone)]
pub(crate) struct GroupVersions {
    groups: Vec<ApiGroup>,
}

/// One API group (empty name for the core group) and its versions, preferred first.
#[derive(Debug, Clone)]
pub(crate) struct ApiGroup {
    /// Group name; empty for the core group.
    pub name: String,
    /// Versions, preferred first.
    pub versions: Vec<ApiVersion>,
}

/// One version of a group and the resources it serves.
#[derive(Debug, Clone)]
pub(crate) struct ApiVersion {
    /// e.g. `v1`.
    pub version: String,
    /// Resources in registration order.
    pub resources: Vec<Arc<ResourceDef>>,
}

impl GroupVersions {
    /// Groups in order of first registration, the core group first; versions by Kubernetes
    /// version priority (`v2` > `v1` > `v1beta2` > `v1beta1` > `v1alpha1` > anything else).
    pub(crate) fn from_registry(registry: &Registry) -> Self {
        let mut groups: Vec<ApiGroup> = vec![ApiGroup {
            name: String::new(),
            versions: Vec::new(),
        }];
        for def in registry.all() {
            let group = match groups.iter_mut().position(|g| g.name == def.group) {
                Some(i) => &mut groups[i],
                None => {
                    groups.push(ApiGroup {
                        name: def.group.clone(),
                        versions: Vec::new(),
                    });
                    let last = groups.len() - 1;
                    &mut groups[last]
                }
            };
            match group.versions.iter_mut().find(|v| v.version == def.version) {
                Some(version) => version.resources.push(def),
                None => group.versions.push(ApiVersion {
                    version: def.version.clone(),
                    resources: vec![def],
                }),
            }
        }
        for group in &mut groups {
            group
                .versions
                .sort_by(|a, b| compare_versions(&a.version, &b.version));
        }
        GroupVersions { groups }
    }

    /// The core group (`/api`); it always exists and always serves `v1`, even when empty.
    pub(crate) fn core(&self) -> ApiGroup {
        let mut core = self
            .groups
            .iter()
            .find(|g| g.name.is_empty())
            .cloned()
            .unwrap_or(ApiGroup {
                name: String::new(),
                versions: Vec::new(),
            });
        if !core.versions.iter().any(|v| v.version == "v1") {
            core.versions.push(ApiVersion {
                version: "v1".into(),
                resources: Vec::new(),
            });
        }
        core.versions.retain(|v| v.version == "v1");
        core
    }

    /// The named groups (`/apis`), in order.
    pub(crate) fn named(&self) -> Vec<ApiGroup> {
        self.groups
            .iter()
            .filter(|g| !g.name.is_empty())
            .cloned()
            .collect()
    }

    /// A named group.
    pub(crate) fn group(&self, name: &str) -> Option<ApiGroup> {
        self.groups
            .iter()
            .find(|g| !g.name.is_empty() && g.name == name)
            .cloned()
    }

    /// Every group-version path as the OpenAPI v3 index names it: `api/v1`, `apis/<g>/<v>`.
    pub(crate) fn all_versions(&self) -> Vec<(String, ApiGroup)> {
        let mut out = Vec::new();
        let core = self.core();
        out.push(("api/v1".to_string(), core));
        for group in self.named() {
            for version in &group.versions {
                if let Some(single) = group.only(&version.version) {
                    out.push((format!("apis/{}/{}", group.name, version.version), single));
                }
            }
        }
        out
    }
}

impl ApiGroup {
    /// This group restricted to one version.
    pub(crate) fn only(&self, version: &str) -> Option<ApiGroup> {
        let v = self.versions.iter().find(|v| v.version == version)?;
        Some(ApiGroup {
            name: self.name.clone(),
            versions: vec![v.clone()],
        })
    }

    fn group_version(&self, version: &str) -> String {
        if self.name.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.name, version)
        }
    }
}

/// Orders Kubernetes version strings by priority, highest first (as `kubectl` and the apiserver
/// sort them): GA before beta before alpha, higher numbers first, unparseable strings last and
/// alphabetically.
pub(crate) fn compare_versions(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u64, u8, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let major: u64 = rest.get(..digits)?.parse().ok()?;
        let tail = rest.get(digits..)?;
        if tail.is_empty() {
            return Some((major, 2, 0));
        }
        let (stage, minor) = if let Some(m) = tail.strip_prefix("beta") {
            (1, m)
        } else if let Some(m) = tail.strip_prefix("alpha") {
            (0, m)
        } else {
            return None;
        };
        Some((major, stage, minor.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => {
            // Stage first (GA > beta > alpha), then major, then minor; all descending.
            (y.1, y.0, y.2).cmp(&(x.1, x.0, x.2))
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

fn aggregated(media_type: &'static str, items: Vec<Value>) -> DiscoveryResponse {
    let api_version = if media_type == AGGREGATED_MEDIA_TYPE {
        "apidiscovery.k8s.io/v2"
    } else {
        "apidiscovery.k8s.io/v2beta1"
    };
    DiscoveryResponse {
        status: 200,
        content_type: media_type,
        body: json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": api_version,
            "metadata": {},
            "items": items,
        }),
    }
}

/// One `APIGroupDiscovery` item: the group with every version and its resources.
fn aggregated_group(group: &ApiGroup) -> Value {
    let metadata = if group.name.is_empty() {
        json!({})
    } else {
        json!({ "name": group.name })
    };
    let versions: Vec<Value> = group
        .versions
        .iter()
        .map(|v| {
            json!({
                "version": v.version,
                "resources": v.resources.iter().map(|d| aggregated_resource(d)).collect::<Vec<_>>(),
                "freshness": "Current",
            })
        })
        .collect();
    json!({ "metadata": metadata, "versions": versions })
}

const STATUS_VERBS: &[&str] = &["get", "patch", "update"];
const CREATE_VERBS: &[&str] = &["create"];

/// A subresource's kind (group, version, kind) and verbs, as the real server advertises them.
fn subresource_kind(def: &ResourceDef, name: &str) -> (String, String, String, &'static [&'static str]) {
    match name {
        "scale" => ("autoscaling".into(), "v1".into(), "Scale".into(), STATUS_VERBS),
        "eviction" => ("policy".into(), "v1".into(), "Eviction".into(), CREATE_VERBS),
        "binding" => (String::new(), "v1".into(), "Binding".into(), CREATE_VERBS),
        _ => (
            def.group.clone(),
            def.version.clone(),
            def.kind.clone(),
            STATUS_VERBS,
        ),
    }
}

fn aggregated_resource(def: &ResourceDef) -> Value {
    let mut resource = json!({
        "resource": def.plural,
        "responseKind": { "group": def.group, "version": def.version, "kind": def.kind },
        "scope": if def.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": def.singular,
        "verbs": def.verbs,
    });
    if !def.short_names.is_empty() {
        resource["shortNames"] = json!(def.short_names);
    }
    if !def.categories.is_empty() {
        resource["categories"] = json!(def.categories);
    }
    if !def.subresources.is_empty() {
        let subresources: Vec<Value> = def
            .subresources
            .iter()
            .map(|name| {
                let (group, version, kind, verbs) = subresource_kind(def, name);
                json!({
                    "subresource": name,
                    "responseKind": { "group": group, "version": version, "kind": kind },
                    "verbs": verbs,
                })
            })
            .collect();
        resource["subresources"] = json!(subresources);
    }
    resource
}

/// Legacy `/api`.
fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "apiVersion": "v1",
        "versions": ["v1"],
        // Required by the Python client's model; nobody reads it over loopback.
        "serverAddressByClientCIDRs": [],
    })
}

fn group_version_for_discovery(group: &ApiGroup, version: &str) -> Value {
    json!({ "groupVersion": group.group_version(version), "version": version })
}

/// Legacy `/apis/{group}`.
fn api_group(group: &ApiGroup) -> Value {
    let mut value = api_group_entry(group);
    value["kind"] = json!("APIGroup");
    value["apiVersion"] = json!("v1");
    value
}

fn api_group_entry(group: &ApiGroup) -> Value {
    let versions: Vec<Value> = group
        .versions
        .iter()
        .map(|v| group_version_for_discovery(group, &v.version))
        .collect();
    let mut entry = json!({ "name": group.name, "versions": versions });
    if let Some(preferred) = group.versions.first() {
        entry["preferredVersion"] = group_version_for_discovery(group, &preferred.version);
    }
    entry
}

/// Legacy `/apis`.
fn api_group_list(groups: &GroupVersions) -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups.named().iter().map(api_group_entry).collect::<Vec<_>>(),
    })
}

/// Legacy `/api/v1` and `/apis/{group}/{version}` (a group restricted to one version).
fn resource_list(group: &ApiGroup) -> Value {
    let (group_version, resources) = match group.versions.first() {
        Some(v) => (group.group_version(&v.version), v.resources.as_slice()),
        None => (group.group_version("v1"), &[][..]),
    };
    let resources: Vec<Value> = resources
        .iter()
        .flat_map(|def| {
            let mut resource = json!({
                "name": def.plural,
                "singularName": def.singular,
                "namespaced": def.namespaced,
                "kind": def.kind,
                "verbs": def.verbs,
            });
            if !def.short_names.is_empty() {
                resource["shortNames"] = json!(def.short_names);
            }
            if !def.categories.is_empty() {
                resource["categories"] = json!(def.categories);
            }
            let subresources: Vec<Value> = def
                .subresources
                .iter()
                .map(|name| {
                    let (group, version, kind, verbs) = subresource_kind(def, name);
                    let mut sub = json!({
                        "name": format!("{}/{name}", def.plural),
                        "singularName": "",
                        "namespaced": def.namespaced,
                        "kind": kind,
                        "verbs": verbs,
                    });
                    if group != def.group || version != def.version {
                        sub["group"] = json!(group);
                        sub["version"] = json!(version);
                    }
                    sub
                })
                .collect();
            std::iter::once(resource).chain(subresources)
        })
        .collect();
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

#[cfg(test)]
mod tests;
