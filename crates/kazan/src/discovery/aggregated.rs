//! The aggregated discovery document (`apidiscovery.k8s.io/v2`, `APIGroupDiscoveryList`), as far
//! as resolving names needs it.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub(super) struct GroupList {
    #[serde(default)]
    pub items: Vec<Group>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Group {
    #[serde(default)]
    pub metadata: Name,
    #[serde(default)]
    pub versions: Vec<Version>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Name {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct Version {
    pub version: String,
    #[serde(default)]
    pub resources: Vec<Resource>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Resource {
    pub resource: String,
    #[serde(default)]
    pub response_kind: Option<Kind>,
    #[serde(default)]
    pub scope: String,
    #[serde(default)]
    pub singular_resource: String,
    #[serde(default)]
    pub short_names: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Kind {
    #[serde(default)]
    pub kind: String,
}
