//! Requests to the API server: what to call, on which resource, in which scope, with which parameters.
//!
//! A [`Request<T>`] describes one HTTP call and carries in `T` what running it returns:
//! [`ObjectList<K>`] for a list, `K` for a get, create, replace or patch, [`DeleteOutcome<K>`] for a
//! delete, and [`WatchEvents<K>`] for a watch (which the [`Watcher`](crate::Watcher) runs, not
//! [`Client::run`](crate::Client::run)).
//!
//! ```
//! use k8s_openapi::api::core::v1::Pod;
//! use kazan::Request;
//!
//! let req = Request::list::<Pod>().namespace("default").labels("app=web").limit(100);
//! assert_eq!(req.path(), "/api/v1/namespaces/default/pods");
//! assert_eq!(req.query(), "labelSelector=app%3Dweb&limit=100");
//! ```
//!
//! Parameters follow <https://kubernetes.io/docs/reference/using-api/api-concepts/>.

use std::{fmt, marker::PhantomData};

use bytes::Bytes;
use http::Method;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{
    metadata,
    resource::{ApiResource, DynamicObject, ObjectList},
    table,
};

/// The content type of a JSON merge patch (RFC 7386).
pub const MERGE_PATCH: &str = "application/merge-patch+json";
/// The content type of a JSON patch (RFC 6902).
pub const JSON_PATCH: &str = "application/json-patch+json";

/// Marker for what a watch request yields: a stream of events about `K` objects.
///
/// Watch requests are run by the [`Watcher`](crate::Watcher); the marker keeps the object type.
pub struct WatchEvents<K>(PhantomData<fn() -> K>);

/// What a delete returns: the object (still present with a `deletionTimestamp` while finalizers run,
/// or its last state), or a `Status`.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // a delete answer is used once; boxing would change the API
pub enum DeleteOutcome<K> {
    /// The server answered with the object.
    Object(K),
    /// The server answered with a `Status` (e.g. `Success`).
    Status(k8s_openapi::apimachinery::pkg::apis::meta::v1::Status),
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for DeleteOutcome<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        if value.get("kind").and_then(|k| k.as_str()) == Some("Status") {
            serde_json::from_value(value)
                .map(DeleteOutcome::Status)
                .map_err(serde::de::Error::custom)
        } else {
            serde_json::from_value(value)
                .map(DeleteOutcome::Object)
                .map_err(serde::de::Error::custom)
        }
    }
}

/// `resourceVersionMatch`: how a list interprets `resourceVersion`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionMatch {
    /// Data at least as new as the given version.
    NotOlderThan,
    /// Exactly the given version (410 if it was compacted).
    Exact,
}

impl VersionMatch {
    fn as_str(self) -> &'static str {
        match self {
            VersionMatch::NotOlderThan => "NotOlderThan",
            VersionMatch::Exact => "Exact",
        }
    }
}

/// What the request does; decides the HTTP method and which parameters make sense.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// `GET` a collection.
    List,
    /// `GET` a collection with `watch=true`.
    Watch,
    /// `GET` one object.
    Get,
    /// `POST` to a collection.
    Create,
    /// `PUT` one object.
    Replace,
    /// `PATCH` one object.
    Patch,
    /// `DELETE` one object.
    Delete,
}

/// The list and watch parameters a request may carry (`ListOptions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    /// `labelSelector`, e.g. `app=web,tier!=db`.
    pub label_selector: Option<String>,
    /// `fieldSelector`, e.g. `metadata.name=x`.
    pub field_selector: Option<String>,
    /// `limit`: page size of a list.
    pub limit: Option<u32>,
    /// `continue`: the token of the next page.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<VersionMatch>,
    /// `timeoutSeconds`: how long the server keeps a watch (or list) open.
    pub timeout_seconds: Option<u32>,
    /// `allowWatchBookmarks`.
    pub allow_watch_bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial_events: Option<bool>,
    /// Any other query parameters, sent as given (e.g. `fieldManager`, `propagationPolicy`).
    pub extra: Vec<(String, String)>,
}

/// One call to the API server; `T` is what running it returns.
///
/// Build one with [`Request::list`], [`Request::get`], [`Request::watch_list`] and the others, or
/// with the `_of` forms for a resource described at run time ([`ApiResource`]).
#[must_use]
pub struct Request<T> {
    pub(crate) verb: Verb,
    pub(crate) resource: ApiResource,
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) subresource: Option<String>,
    pub(crate) params: Params,
    pub(crate) body: Option<Bytes>,
    pub(crate) content_type: Option<&'static str>,
    /// Asks for `PartialObjectMetadata` (see [`crate::metadata`]).
    pub(crate) metadata_only: bool,
    /// Asks for Tables (see [`crate::table`]).
    pub(crate) table: bool,
    _out: PhantomData<fn() -> T>,
}

impl<T> Clone for Request<T> {
    fn clone(&self) -> Self {
        Request {
            verb: self.verb,
            resource: self.resource.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            subresource: self.subresource.clone(),
            params: self.params.clone(),
            body: self.body.clone(),
            content_type: self.content_type,
            metadata_only: self.metadata_only,
            table: self.table,
            _out: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Request<T> {
    // The body is left out: it may hold a Secret's data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("path", &self.path())
            .field("query", &self.query())
            .field("body_bytes", &self.body.as_ref().map(Bytes::len))
            .finish()
    }
}

/// Constructors. Typed forms read the resource from `k8s_openapi`; `_of` forms take an
/// [`ApiResource`] and decode into any type, e.g. [`DynamicObject`].
impl Request<()> {
    fn build<T>(verb: Verb, resource: ApiResource) -> Request<T> {
        Request {
            verb,
            resource,
            namespace: None,
            name: None,
            subresource: None,
            params: Params::default(),
            body: None,
            content_type: None,
            metadata_only: false,
            table: false,
            _out: PhantomData,
        }
    }

    /// Lists `K` objects (all namespaces until [`Request::namespace`] narrows it).
    pub fn list<K: k8s_openapi::Resource + DeserializeOwned + 'static>() -> Request<ObjectList<K>> {
        Self::list_of(ApiResource::of::<K>())
    }

    /// Lists objects of a resource described at run time.
    pub fn list_of<K: DeserializeOwned + 'static>(
        resource: impl Into<ApiResource>,
    ) -> Request<ObjectList<K>> {
        Self::build::<ObjectList<K>>(Verb::List, resource.into()).typed_for::<K>()
    }

    /// Lists objects of a resource described at run time, as [`DynamicObject`]s.
    pub fn list_dynamic(resource: impl Into<ApiResource>) -> Request<ObjectList<DynamicObject>> {
        Self::list_of(resource)
    }

    /// Watches `K` objects. A watch request needs a starting `resourceVersion`
    /// ([`Request::resource_version`] or the watcher's option).
    pub fn watch_list<K: k8s_openapi::Resource + DeserializeOwned + 'static>() -> Request<WatchEvents<K>> {
        Self::watch_list_of(ApiResource::of::<K>())
    }

    /// Watches objects of a resource described at run time.
    pub fn watch_list_of<K: DeserializeOwned + 'static>(
        resource: impl Into<ApiResource>,
    ) -> Request<WatchEvents<K>> {
        Self::build::<WatchEvents<K>>(Verb::Watch, resource.into()).typed_for::<K>()
    }

    /// Reads one object by name.
    pub fn get<K: k8s_openapi::Resource + DeserializeOwned + 'static>(name: &str) -> Request<K> {
        Self::get_of(ApiResource::of::<K>(), name)
    }

    /// Reads one object of a resource described at run time.
    pub fn get_of<K: DeserializeOwned + 'static>(resource: impl Into<ApiResource>, name: &str) -> Request<K> {
        Self::build::<K>(Verb::Get, resource.into())
            .with_name(name)
            .typed_for::<K>()
    }

    /// Creates an object; its namespace is taken from `metadata.namespace` unless set on the request.
    ///
    /// The error is the object's serialization's; `?` turns it into [`crate::Error`].
    pub fn create<K>(object: &K) -> Result<Request<K>, serde_json::Error>
    where
        K: k8s_openapi::Resource + Serialize + DeserializeOwned,
    {
        Self::create_of::<K>(ApiResource::of::<K>(), object)
    }

    /// Creates an object of a resource described at run time from any serializable value; as
    /// with [`Request::create`], its namespace is taken from `metadata.namespace` in the value
    /// unless set on the request.
    pub fn create_of<K: DeserializeOwned>(
        resource: impl Into<ApiResource>,
        object: &impl Serialize,
    ) -> Result<Request<K>, serde_json::Error> {
        let body = Body::of(object)?;
        let mut req = Self::build::<K>(Verb::Create, resource.into());
        req.set_body(body);
        Ok(req)
    }

    /// Replaces an object (`PUT`); the server answers 409 if its `resourceVersion` is stale.
    /// Its name and namespace are taken from `metadata`.
    pub fn replace<K>(object: &K) -> Result<Request<K>, serde_json::Error>
    where
        K: k8s_openapi::Resource
            + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>
            + Serialize
            + DeserializeOwned,
    {
        let name = object.metadata().name.clone().unwrap_or_default();
        Self::replace_of::<K>(ApiResource::of::<K>(), &name, object)
    }

    /// Replaces an object of a resource described at run time; its namespace is taken from
    /// `metadata.namespace` in the value unless set on the request.
    pub fn replace_of<K: DeserializeOwned>(
        resource: impl Into<ApiResource>,
        name: &str,
        object: &impl Serialize,
    ) -> Result<Request<K>, serde_json::Error> {
        let body = Body::of(object)?;
        let mut req = Self::build::<K>(Verb::Replace, resource.into()).with_name(name);
        req.set_body(body);
        Ok(req)
    }

    /// Applies a JSON merge patch (RFC 7386) to an object.
    pub fn merge_patch<K: k8s_openapi::Resource + DeserializeOwned>(
        name: &str,
        patch: &serde_json::Value,
    ) -> Request<K> {
        Self::patch_of(ApiResource::of::<K>(), name, patch, MERGE_PATCH)
    }

    /// Applies a JSON patch (RFC 6902, a list of operations) to an object.
    pub fn json_patch<K: k8s_openapi::Resource + DeserializeOwned>(
        name: &str,
        patch: &serde_json::Value,
    ) -> Request<K> {
        Self::patch_of(ApiResource::of::<K>(), name, patch, JSON_PATCH)
    }

    /// Patches an object of a resource described at run time with the given patch content type.
    pub fn patch_of<K: DeserializeOwned>(
        resource: impl Into<ApiResource>,
        name: &str,
        patch: &serde_json::Value,
        content_type: &'static str,
    ) -> Request<K> {
        let mut req = Self::build::<K>(Verb::Patch, resource.into()).with_name(name);
        req.body = Some(patch.to_string().into());
        req.content_type = Some(content_type);
        req
    }

    /// Deletes an object by name.
    pub fn delete<K: k8s_openapi::Resource + DeserializeOwned>(name: &str) -> Request<DeleteOutcome<K>> {
        Self::delete_of(ApiResource::of::<K>(), name)
    }

    /// Deletes an object of a resource described at run time.
    pub fn delete_of<K: DeserializeOwned>(
        resource: impl Into<ApiResource>,
        name: &str,
    ) -> Request<DeleteOutcome<K>> {
        Self::build::<DeleteOutcome<K>>(Verb::Delete, resource.into()).with_name(name)
    }
}

/// A JSON request body, with the namespace its object names (if any).
struct Body {
    bytes: Bytes,
    namespace: Option<String>,
}

impl Body {
    /// Serializes `object`, reading `metadata.namespace` on the way, so that a typed object and a
    /// dynamic value (a `serde_json::Value`, a `DynamicObject`) name their namespace alike.
    fn of(object: &impl Serialize) -> Result<Body, serde_json::Error> {
        let value = serde_json::to_value(object)?;
        let namespace = value
            .pointer("/metadata/namespace")
            .and_then(serde_json::Value::as_str)
            .filter(|ns| !ns.is_empty())
            .map(str::to_string);
        Ok(Body {
            bytes: serde_json::to_vec(&value)?.into(),
            namespace,
        })
    }
}

impl<T> Request<T> {
    /// Sets a JSON body, and the body's namespace unless the request names one.
    fn set_body(&mut self, body: Body) {
        if self.namespace.is_none() {
            self.namespace = body.namespace;
        }
        self.body = Some(body.bytes);
        self.content_type = Some("application/json");
    }
}

impl<T> Request<T> {
    fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// Narrows the request to one namespace (ignored for cluster-scoped resources).
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_string());
        self
    }

    /// Widens a namespaced request to all namespaces (lists and watches only).
    pub fn all_namespaces(mut self) -> Self {
        self.namespace = None;
        self
    }

    /// Addresses a subresource of the object, e.g. `status`.
    pub fn subresource(mut self, subresource: &str) -> Self {
        self.subresource = Some(subresource.to_string());
        self
    }

    /// Sets `labelSelector`.
    pub fn labels(mut self, selector: &str) -> Self {
        self.params.label_selector = Some(selector.to_string());
        self
    }

    /// Sets `fieldSelector`.
    pub fn fields(mut self, selector: &str) -> Self {
        self.params.field_selector = Some(selector.to_string());
        self
    }

    /// Sets `limit` (page size).
    pub fn limit(mut self, limit: u32) -> Self {
        self.params.limit = Some(limit);
        self
    }

    /// Sets `continue` (the next page's token).
    pub fn continue_token(mut self, token: &str) -> Self {
        self.params.continue_token = Some(token.to_string());
        self
    }

    /// Sets `resourceVersion`.
    pub fn resource_version(mut self, rv: &str) -> Self {
        self.params.resource_version = Some(rv.to_string());
        self
    }

    /// Sets `resourceVersionMatch`.
    pub fn resource_version_match(mut self, m: VersionMatch) -> Self {
        self.params.resource_version_match = Some(m);
        self
    }

    /// Sets `timeoutSeconds`.
    pub fn timeout_seconds(mut self, seconds: u32) -> Self {
        self.params.timeout_seconds = Some(seconds);
        self
    }

    /// Sets `allowWatchBookmarks`.
    pub fn bookmarks(mut self, allow: bool) -> Self {
        self.params.allow_watch_bookmarks = allow;
        self
    }

    /// Sets `sendInitialEvents` (streaming lists).
    pub fn send_initial_events(mut self, send: bool) -> Self {
        self.params.send_initial_events = Some(send);
        self
    }

    /// Sets `shardSelector` (server-side sharded list and watch, KEP-5866): only objects whose
    /// key field hashes into the shard's ranges are sent, by a server with the
    /// `ShardedListAndWatch` feature; an older server ignores it and sends everything (see
    /// [`ShardSelector::mode_of`](crate::shard::ShardSelector::mode_of) and
    /// [`ShardSelector::matches_meta`](crate::shard::ShardSelector::matches_meta)).
    pub fn shard(self, selector: &crate::shard::ShardSelector) -> Self {
        self.param(crate::shard::PARAMETER, &selector.to_string())
    }

    /// Adds any other query parameter.
    pub fn param(mut self, key: &str, value: &str) -> Self {
        self.params.extra.push((key.to_string(), value.to_string()));
        self
    }

    /// What the request does.
    pub fn verb(&self) -> Verb {
        self.verb
    }

    /// The resource it addresses.
    pub fn resource(&self) -> &ApiResource {
        &self.resource
    }

    /// The namespace it is narrowed to, if any.
    pub fn namespace_name(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The object name, for single-object requests.
    pub fn object_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Its list and watch parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Mutable access to its list and watch parameters.
    pub fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    /// The body, if any (create, replace, patch).
    pub fn body(&self) -> Option<&Bytes> {
        self.body.as_ref()
    }

    /// The body's content type, if any.
    pub fn content_type(&self) -> Option<&'static str> {
        self.content_type
    }

    /// The HTTP method.
    pub fn method(&self) -> Method {
        match self.verb {
            Verb::List | Verb::Watch | Verb::Get => Method::GET,
            Verb::Create => Method::POST,
            Verb::Replace => Method::PUT,
            Verb::Patch => Method::PATCH,
            Verb::Delete => Method::DELETE,
        }
    }

    /// Whether the server treats this request as a watch.
    pub fn is_watch(&self) -> bool {
        self.verb == Verb::Watch
    }

    /// The same request with another output type (the watcher turns a list into a watch with it).
    #[allow(dead_code)] // used by the watcher, on its own branch
    pub(crate) fn retype<U>(self, verb: Verb) -> Request<U> {
        Request {
            verb,
            resource: self.resource,
            namespace: self.namespace,
            name: self.name,
            subresource: self.subresource,
            params: self.params,
            body: self.body,
            content_type: self.content_type,
            metadata_only: self.metadata_only,
            table: self.table,
            _out: PhantomData,
        }
    }

    /// Asks for what the object type `K` is: metadata only for
    /// [`PartialObjectMetadata`](crate::PartialObjectMetadata), Tables for
    /// [`TableRow`](crate::table::TableRow).
    fn typed_for<K: 'static>(mut self) -> Self {
        self.metadata_only = metadata::is_partial::<K>();
        self.table = table::is_table::<K>();
        self
    }

    /// Whether to ask the server for the objects' metadata only (`PartialObjectMetadata`): set by
    /// itself for requests of [`PartialObjectMetadata`](crate::PartialObjectMetadata); set it on a
    /// request of another type that reads only metadata (a [`DynamicObject`] keeps it).
    pub fn metadata_only(mut self, on: bool) -> Self {
        self.metadata_only = on;
        self
    }

    /// The `Accept` header this request sends: JSON, Tables (for [`TableRow`](crate::table::TableRow)
    /// requests, the same for a list, one object and a watch, as kubectl's), or the metadata-only
    /// forms (the list form for a list, the object form for one object and for a watch's events).
    pub fn accept(&self) -> &'static str {
        if self.table {
            return table::TABLE_ACCEPT;
        }
        match (self.metadata_only, self.verb) {
            (false, _) => "application/json",
            (true, Verb::List) => metadata::PARTIAL_OBJECT_METADATA_LIST,
            (true, _) => metadata::PARTIAL_OBJECT_METADATA,
        }
    }

    /// The URL path, percent-encoding names.
    pub fn path(&self) -> String {
        let mut path = self.resource.group_version_path();
        if self.resource.namespaced
            && let Some(ns) = &self.namespace
        {
            path.push_str("/namespaces/");
            push_segment(&mut path, ns);
        }
        path.push('/');
        path.push_str(&self.resource.plural);
        if let Some(name) = &self.name {
            path.push('/');
            push_segment(&mut path, name);
        }
        if let Some(sub) = &self.subresource {
            path.push('/');
            push_segment(&mut path, sub);
        }
        path
    }

    /// The query string (without `?`), parameters in a stable order.
    pub fn query(&self) -> String {
        let p = &self.params;
        let mut q = Query::default();
        if self.verb == Verb::Watch {
            q.push("watch", "true");
        }
        if let Some(v) = &p.label_selector {
            q.push("labelSelector", v);
        }
        if let Some(v) = &p.field_selector {
            q.push("fieldSelector", v);
        }
        if let Some(v) = p.limit {
            q.push("limit", &v.to_string());
        }
        if let Some(v) = &p.continue_token {
            q.push("continue", v);
        }
        if let Some(v) = &p.resource_version {
            q.push("resourceVersion", v);
        }
        if let Some(v) = p.resource_version_match {
            q.push("resourceVersionMatch", v.as_str());
        }
        if let Some(v) = p.timeout_seconds {
            q.push("timeoutSeconds", &v.to_string());
        }
        if p.allow_watch_bookmarks && self.verb == Verb::Watch {
            q.push("allowWatchBookmarks", "true");
        }
        if let Some(v) = p.send_initial_events {
            q.push("sendInitialEvents", if v { "true" } else { "false" });
        }
        for (k, v) in &p.extra {
            q.push(k, v);
        }
        q.0
    }

    /// Path and query, as sent on the request line.
    pub fn path_and_query(&self) -> String {
        let query = self.query();
        if query.is_empty() {
            self.path()
        } else {
            format!("{}?{}", self.path(), query)
        }
    }
}

#[derive(Default)]
struct Query(String);

impl Query {
    fn push(&mut self, key: &str, value: &str) {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        push_encoded(&mut self.0, key);
        self.0.push('=');
        push_encoded(&mut self.0, value);
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn push_encoded(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn push_segment(out: &mut String, s: &str) {
    push_encoded(out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::{
        apps::v1::Deployment,
        core::v1::{Namespace, Pod},
    };

    #[test]
    fn paths_follow_scope_and_group() {
        assert_eq!(Request::list::<Pod>().path(), "/api/v1/pods");
        assert_eq!(
            Request::list::<Pod>().namespace("a").path(),
            "/api/v1/namespaces/a/pods"
        );
        assert_eq!(
            Request::list::<Namespace>().namespace("ignored").path(),
            "/api/v1/namespaces"
        );
        assert_eq!(
            Request::get::<Deployment>("web").namespace("prod").path(),
            "/apis/apps/v1/namespaces/prod/deployments/web"
        );
        let widgets = ApiResource::new("example.com", "v1", "Widget", "widgets", true);
        assert_eq!(
            Request::list_dynamic(&widgets).namespace("x").path(),
            "/apis/example.com/v1/namespaces/x/widgets"
        );
        assert_eq!(
            Request::get::<Pod>("p")
                .namespace("a")
                .subresource("status")
                .path(),
            "/api/v1/namespaces/a/pods/p/status"
        );
    }

    #[test]
    fn watch_queries_carry_watch_and_bookmarks() {
        let req = Request::watch_list::<Pod>()
            .resource_version("42")
            .bookmarks(true)
            .timeout_seconds(300)
            .fields("metadata.name=a b");
        assert_eq!(
            req.query(),
            "watch=true&fieldSelector=metadata.name%3Da%20b&resourceVersion=42&timeoutSeconds=300&allowWatchBookmarks=true"
        );
        assert!(req.is_watch());
    }

    #[test]
    fn a_shard_is_sent_as_the_shard_selector_parameter() -> Result<(), crate::shard::ShardRangeError> {
        use crate::shard::{ShardKey, ShardSelector};
        let req = Request::list::<Pod>().shard(&ShardSelector::fixed(ShardKey::Uid, 1, 2)?);
        assert_eq!(
            req.query(),
            "shardSelector=shardRange%28object.metadata.uid%2C%20%270x8000000000000000%27%2C%20%270x10000000000000000%27%29"
        );
        Ok(())
    }

    #[test]
    fn names_are_percent_encoded() {
        assert_eq!(
            Request::get::<Namespace>("a/b").path(),
            "/api/v1/namespaces/a%2Fb"
        );
    }

    #[test]
    fn delete_outcome_tells_status_from_object() -> Result<(), serde_json::Error> {
        let s: DeleteOutcome<Namespace> =
            serde_json::from_str(r#"{"kind":"Status","apiVersion":"v1","status":"Success"}"#)?;
        assert!(matches!(s, DeleteOutcome::Status(_)));
        let o: DeleteOutcome<Namespace> =
            serde_json::from_str(r#"{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"x"}}"#)?;
        assert!(matches!(o, DeleteOutcome::Object(_)));
        Ok(())
    }

    #[test]
    fn debug_leaves_the_body_out() -> Result<(), serde_json::Error> {
        let secret = serde_json::json!({"metadata":{"name":"s"},"stringData":{"password":"hunter2"}});
        let req = Request::create_of::<DynamicObject>(
            ApiResource::new("", "v1", "Secret", "secrets", true),
            &secret,
        )?;
        assert!(!format!("{req:?}").contains("hunter2"));
        Ok(())
    }
}
