//! Discovery and OpenAPI: `/version`, `/api`, `/apis`, `/api/v1`, `/apis/{group}[/{version}]` in the
//! aggregated and the legacy form, and the minimal OpenAPI v3 documents `kubectl apply` needs.
//! Everything is generated from the [`Registry`].

use crate::registry::Registry;

/// The media type kubectl asks for and needs back, exactly, for aggregated discovery.
pub(crate) const AGGREGATED_MEDIA_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

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

/// Answers `path` if it is a discovery or OpenAPI path (`/version`, `/api`, `/api/v1`, `/apis`,
/// `/apis/{g}`, `/apis/{g}/{v}`, `/openapi/v2`, `/openapi/v3`, `/openapi/v3/...`), else `None`.
/// `accept` is the request's `Accept` header (aggregated discovery when it asks for it).
pub(crate) fn respond(registry: &Registry, path: &str, accept: &str) -> Option<DiscoveryResponse> {
    let _ = (registry, path, accept);
    None
}
