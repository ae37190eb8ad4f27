//! The resource types a server serves, and resource names as kubectl accepts them (plural,
//! singular, short name, kind, `resource.group`, `resource.version.group`), found through the
//! server's discovery so that custom resources work like built-in ones (as kube-rs's
//! `kube::discovery` and client-go's `discovery` and `restmapper`).
//!
//! Discovery is asked in the aggregated form first (`/api` and `/apis`, two requests, as kubectl
//! does against 1.26+ servers); a server that answers in the legacy form gets the legacy walk
//! (`/api/v1`, `/apis`, then every `/apis/{group}/{version}`). [`CachedDiscovery`] keeps an answer
//! for a while and asks again when a name is not found (a CustomResourceDefinition created since),
//! as kubectl's discovery cache does.

mod aggregated;
mod cache;

pub use cache::CachedDiscovery;

use bytes::Bytes;
use futures_util::future;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroupList, APIResourceList};

use crate::{ApiResource, Client, Error};

/// What kubectl sends to ask for aggregated discovery, with the legacy form as the fallback.
const AGGREGATED_ACCEPT: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";

/// The largest discovery document accepted.
const MAX_DISCOVERY_BYTES: usize = 64 * 1024 * 1024;

/// A resource type the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// Group, version, kind, plural and scope: what requests are built from.
    pub api: ApiResource,
    /// The singular name (`pod`), lower case.
    pub singular: String,
    /// Short names (`po`).
    pub short_names: Vec<String>,
}

impl ResourceType {
    /// What `-o name` prints before the slash, as kubectl does: `pod`, `deployment.apps`.
    pub fn name_prefix(&self) -> String {
        let kind = self.api.kind.to_ascii_lowercase();
        if self.api.group.is_empty() {
            kind
        } else {
            format!("{kind}.{}", self.api.group)
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    resource: ResourceType,
    /// Whether this is the group's preferred version.
    preferred: bool,
}

/// Every resource type the server serves: the core group first, then the named groups in the
/// server's order, each group's versions in the server's order of preference.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    entries: Vec<Entry>,
}

/// How a name may match a resource type, in the order they are tried.
#[derive(Clone, Copy)]
enum NameMatch {
    Plural,
    Singular,
    ShortName,
    Kind,
}

impl NameMatch {
    fn matches(self, resource: &ResourceType, name: &str) -> bool {
        match self {
            NameMatch::Plural => resource.api.plural.eq_ignore_ascii_case(name),
            NameMatch::Singular => resource.singular.eq_ignore_ascii_case(name),
            NameMatch::ShortName => resource.short_names.iter().any(|s| s.eq_ignore_ascii_case(name)),
            NameMatch::Kind => resource.api.kind.eq_ignore_ascii_case(name),
        }
    }
}

impl Discovery {
    /// Asks the server.
    pub async fn fetch(client: &Client) -> Result<Discovery, Error> {
        match Self::fetch_aggregated(client).await {
            Ok(Some(discovery)) => return Ok(discovery),
            Ok(None) => {}
            // An older server may refuse the media type: the legacy form follows.
            Err(e) if e.status_code().is_some_and(|c| c != 401 && c != 403) => {
                tracing::debug!(error = %e, "aggregated discovery refused; using the legacy form");
            }
            Err(e) => return Err(e),
        }
        Self::fetch_legacy(client).await
    }

    /// The resource type `name` stands for: `resource.version.group` and `resource.group` look in
    /// that group only; a bare name is tried as a plural, a singular, a short name and a kind,
    /// preferred versions first, the core group before the others.
    pub fn find(&self, name: &str) -> Option<&ResourceType> {
        if let Some((resource, rest)) = name.split_once('.') {
            if let Some((version, group)) = rest.split_once('.')
                && looks_like_version(version)
            {
                let found = self.find_where(resource, |r| {
                    r.api.version == version && r.api.group.eq_ignore_ascii_case(group)
                });
                if found.is_some() {
                    return found;
                }
            }
            return self.find_where(resource, |r| r.api.group.eq_ignore_ascii_case(rest));
        }
        self.find_where(name, |_| true)
    }

    fn find_where(&self, name: &str, scope: impl Fn(&ResourceType) -> bool) -> Option<&ResourceType> {
        let how = [
            NameMatch::Plural,
            NameMatch::Singular,
            NameMatch::ShortName,
            NameMatch::Kind,
        ];
        [true, false].into_iter().find_map(|preferred| {
            how.into_iter().find_map(|how| {
                self.entries
                    .iter()
                    .filter(|e| e.preferred == preferred && scope(&e.resource))
                    .find(|e| how.matches(&e.resource, name))
                    .map(|e| &e.resource)
            })
        })
    }

    async fn fetch_aggregated(client: &Client) -> Result<Option<Discovery>, Error> {
        let (core, groups) = future::try_join(
            get(client, "/api", AGGREGATED_ACCEPT),
            get(client, "/apis", AGGREGATED_ACCEPT),
        )
        .await?;
        let aggregated = |answer: &Answer| answer.content_type.contains("as=APIGroupDiscoveryList");
        if !aggregated(&core) || !aggregated(&groups) {
            return Ok(None);
        }
        let mut discovery = Discovery::default();
        for answer in [core, groups] {
            let list: aggregated::GroupList = answer.decode("APIGroupDiscoveryList")?;
            discovery.add_aggregated(list);
        }
        Ok(Some(discovery))
    }

    /// Adds the groups of an aggregated discovery answer.
    fn add_aggregated(&mut self, list: aggregated::GroupList) {
        for group in list.items {
            let group_name = group.metadata.name;
            for (index, version) in group.versions.into_iter().enumerate() {
                for r in version.resources {
                    if r.resource.contains('/') {
                        continue;
                    }
                    let kind = r.response_kind.map(|k| k.kind).unwrap_or_default();
                    let api = ApiResource::new(
                        &group_name,
                        &version.version,
                        &kind,
                        &r.resource,
                        r.scope == "Namespaced",
                    );
                    self.entries.push(Entry {
                        resource: ResourceType {
                            singular: singular_or_kind(r.singular_resource, &kind),
                            short_names: r.short_names,
                            api,
                        },
                        preferred: index == 0,
                    });
                }
            }
        }
    }

    async fn fetch_legacy(client: &Client) -> Result<Discovery, Error> {
        let core: APIResourceList = get(client, "/api/v1", "application/json")
            .await?
            .decode("APIResourceList")?;
        let groups: APIGroupList = get(client, "/apis", "application/json")
            .await?
            .decode("APIGroupList")?;
        let mut wanted = Vec::new();
        for group in &groups.groups {
            let preferred = group.preferred_version.as_ref().map(|v| v.version.as_str());
            for (index, version) in group.versions.iter().enumerate() {
                let is_preferred = preferred.map_or(index == 0, |p| p == version.version.as_str());
                wanted.push((version.group_version.clone(), is_preferred));
            }
        }
        let lists = future::join_all(wanted.iter().map(|(gv, _)| async move {
            let path = format!("/apis/{gv}");
            get(client, &path, "application/json")
                .await?
                .decode::<APIResourceList>("APIResourceList")
        }))
        .await;
        let mut discovery = Discovery::default();
        discovery.add_legacy(core, true);
        for ((group_version, preferred), list) in wanted.into_iter().zip(lists) {
            match list {
                Ok(list) => discovery.add_legacy(list, preferred),
                // As kubectl does: one unavailable group (an aggregated API that is down) does
                // not hide the others.
                Err(e) => tracing::warn!("cannot discover the resources of {group_version}: {e}"),
            }
        }
        Ok(discovery)
    }

    /// Adds the resources of a legacy `APIResourceList`.
    fn add_legacy(&mut self, list: APIResourceList, preferred: bool) {
        let (group, version) = match list.group_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), list.group_version.clone()),
        };
        for r in list.resources {
            if r.name.contains('/') {
                continue;
            }
            let api = ApiResource::new(&group, &version, &r.kind, &r.name, r.namespaced);
            self.entries.push(Entry {
                resource: ResourceType {
                    singular: singular_or_kind(r.singular_name, &r.kind),
                    short_names: r.short_names.unwrap_or_default(),
                    api,
                },
                preferred,
            });
        }
    }
}

/// Servers before 1.27 may leave the singular name empty; kubectl then uses the kind.
fn singular_or_kind(singular: String, kind: &str) -> String {
    if singular.is_empty() {
        kind.to_ascii_lowercase()
    } else {
        singular
    }
}

/// `v1`, `v2beta1`, `v1alpha3`.
fn looks_like_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    if digits == 0 {
        return false;
    }
    let tail = rest.get(digits..).unwrap_or_default();
    tail.is_empty()
        || ["alpha", "beta"].iter().any(|stage| {
            tail.strip_prefix(stage)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// A discovery answer: its `Content-Type` and body.
struct Answer {
    url: String,
    content_type: String,
    body: Bytes,
}

impl Answer {
    fn decode<T: serde::de::DeserializeOwned>(&self, what: &'static str) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|source| Error::Decode {
            url: self.url.clone(),
            what,
            source,
        })
    }
}

async fn get(client: &Client, path: &str, accept: &str) -> Result<Answer, Error> {
    let request = http::Request::get(path)
        .header(http::header::ACCEPT, accept)
        .body(Bytes::new())
        .map_err(|e| Error::InvalidRequest(format!("GET {path}: {e}")))?;
    let response = client.send_raw(request).await?;
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let url = format!(
        "{}{path}",
        client.config().cluster_url.to_string().trim_end_matches('/')
    );
    let body = response.into_body().read_all(MAX_DISCOVERY_BYTES).await?;
    Ok(Answer {
        url,
        content_type,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn discovery() -> Result<Discovery, serde_json::Error> {
        let core = json!({"items": [{"metadata": {}, "versions": [{"version": "v1", "resources": [
            {"resource": "pods", "responseKind": {"kind": "Pod"}, "scope": "Namespaced",
             "singularResource": "pod", "shortNames": ["po"]},
            {"resource": "pods/status", "responseKind": {"kind": "Pod"}, "scope": "Namespaced"},
            {"resource": "events", "responseKind": {"kind": "Event"}, "scope": "Namespaced",
             "singularResource": "event", "shortNames": ["ev"]},
            {"resource": "namespaces", "responseKind": {"kind": "Namespace"}, "scope": "Cluster",
             "singularResource": "namespace", "shortNames": ["ns"]}
        ]}]}]});
        let groups = json!({"items": [
            {"metadata": {"name": "apps"}, "versions": [{"version": "v1", "resources": [
                {"resource": "deployments", "responseKind": {"kind": "Deployment"}, "scope": "Namespaced",
                 "singularResource": "deployment", "shortNames": ["deploy"]}]}]},
            {"metadata": {"name": "events.k8s.io"}, "versions": [{"version": "v1", "resources": [
                {"resource": "events", "responseKind": {"kind": "Event"}, "scope": "Namespaced",
                 "singularResource": "event", "shortNames": ["ev"]}]}]},
            {"metadata": {"name": "example.com"}, "versions": [
                {"version": "v2", "resources": [
                    {"resource": "widgets", "responseKind": {"kind": "Widget"}, "scope": "Namespaced",
                     "singularResource": "widget", "shortNames": ["wd"]}]},
                {"version": "v1", "resources": [
                    {"resource": "widgets", "responseKind": {"kind": "Widget"}, "scope": "Namespaced",
                     "singularResource": "widget", "shortNames": ["wd"]},
                    {"resource": "gadgets", "responseKind": {"kind": "Gadget"}, "scope": "Cluster",
                     "singularResource": ""}]}]}
        ]});
        let mut d = Discovery::default();
        d.add_aggregated(serde_json::from_value(core)?);
        d.add_aggregated(serde_json::from_value(groups)?);
        Ok(d)
    }

    fn found(d: &Discovery, name: &str) -> Option<String> {
        d.find(name)
            .map(|r| format!("{}/{} {}", r.api.api_version, r.api.plural, r.api.kind))
    }

    #[test]
    fn names_resolve_as_kubectl_resolves_them() -> Result<(), serde_json::Error> {
        let d = discovery()?;
        for name in ["pods", "pod", "po", "Pod", "PODS"] {
            assert_eq!(found(&d, name).as_deref(), Some("v1/pods Pod"), "{name}");
        }
        assert_eq!(
            found(&d, "deploy").as_deref(),
            Some("apps/v1/deployments Deployment")
        );
        assert_eq!(
            found(&d, "deployments.apps").as_deref(),
            Some("apps/v1/deployments Deployment")
        );
        assert_eq!(
            found(&d, "deploy.apps").as_deref(),
            Some("apps/v1/deployments Deployment")
        );
        assert_eq!(
            found(&d, "deployments.v1.apps").as_deref(),
            Some("apps/v1/deployments Deployment")
        );
        assert_eq!(found(&d, "ns").as_deref(), Some("v1/namespaces Namespace"));
        assert_eq!(d.find("ns").map(|r| r.api.namespaced), Some(false));
        Ok(())
    }

    #[test]
    fn the_core_group_and_preferred_versions_come_first() -> Result<(), serde_json::Error> {
        let d = discovery()?;
        assert_eq!(found(&d, "events").as_deref(), Some("v1/events Event"));
        assert_eq!(
            found(&d, "events.events.k8s.io").as_deref(),
            Some("events.k8s.io/v1/events Event")
        );
        assert_eq!(found(&d, "wd").as_deref(), Some("example.com/v2/widgets Widget"));
        assert_eq!(
            found(&d, "widgets.v1.example.com").as_deref(),
            Some("example.com/v1/widgets Widget")
        );
        // Only in a version that is not preferred: still found.
        assert_eq!(
            found(&d, "gadgets").as_deref(),
            Some("example.com/v1/gadgets Gadget")
        );
        // No singular name served: the kind stands in.
        assert_eq!(
            found(&d, "gadget").as_deref(),
            Some("example.com/v1/gadgets Gadget")
        );
        Ok(())
    }

    #[test]
    fn unknown_names_and_subresources_are_not_found() -> Result<(), serde_json::Error> {
        let d = discovery()?;
        assert_eq!(found(&d, "nosuch"), None);
        assert_eq!(found(&d, "pods/status"), None);
        assert_eq!(found(&d, "pods.apps"), None);
        assert_eq!(found(&d, "deployments.v2.apps"), None);
        Ok(())
    }

    #[test]
    fn output_names_carry_the_group_like_kubectl() -> Result<(), serde_json::Error> {
        let d = discovery()?;
        assert_eq!(
            d.find("po").map(ResourceType::name_prefix).as_deref(),
            Some("pod")
        );
        assert_eq!(
            d.find("deploy").map(ResourceType::name_prefix).as_deref(),
            Some("deployment.apps")
        );
        Ok(())
    }

    #[test]
    fn versions_are_recognised() {
        for v in ["v1", "v2beta1", "v1alpha3", "v10"] {
            assert!(looks_like_version(v), "{v}");
        }
        for v in ["v", "k8s", "vbeta1", "v1beta", "v1gamma1", "example"] {
            assert!(!looks_like_version(v), "{v}");
        }
    }
}
