//! An in-memory Kubernetes API server that speaks list and watch faithfully, with fault injection.
//!
//! It follows the list/watch wire protocol of the real server (status codes, `metav1.Status`
//! bodies, event framing, the 410 cases, bookmarks, watch-list) closely enough that kubectl, the
//! Python client and kube-rs work against it unchanged. Start one in a test on a random loopback
//! port, point a client at [`ApiServer::url`] or [`ApiServer::kubeconfig`], and drive it through
//! HTTP or through the direct object API below (watchers see those writes too).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use serde_json::json;
//!
//! let server = kazan_apiserver::ApiServer::start().await?;
//! server.create(json!({
//!     "apiVersion": "v1", "kind": "ConfigMap",
//!     "metadata": {"name": "settings", "namespace": "default"},
//!     "data": {"mode": "fast"}
//! }))?;
//! let items = server.list("v1", "ConfigMap", Some("default"))?;
//! assert_eq!(items.len(), 1);
//! assert_eq!(items[0]["data"]["mode"], "fast");
//! println!("{} at resourceVersion {}", server.url(), server.resource_version());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # What it serves
//! - Discovery and OpenAPI (`/version`, `/api`, `/apis`, ...), from the [`registry::Registry`].
//! - For every registered resource, at the paths of the real server (core `/api/v1`, named groups
//!   `/apis/{group}/{version}`, one namespace, all namespaces, cluster-scoped, legacy `/watch/`):
//!   list (label and field selectors, `limit`/`continue` over a consistent snapshot,
//!   `resourceVersion`/`resourceVersionMatch`), watch (initial state, resume from a version, 410
//!   when too old, bookmarks, `timeoutSeconds`, watch-list with the initial-events-end bookmark),
//!   get, create, replace, patch (merge, JSON, strategic merge, apply), delete (finalizers,
//!   namespace termination), deletecollection and the `/status` subresource; Table answers when
//!   asked; protobuf request bodies for the built-in kinds.
//! - CustomResourceDefinitions register their kinds when created.
//! - Optional bearer-token auth and TLS with a generated CA ([`ApiServerBuilder::tls`]).
//! - Fault injection ([`Faults`]) and, when turned on with [`ApiServerBuilder::admin`], the admin
//!   API under `/_kazan/` (the table under "Fault injection" below; `GET /_kazan/` lists the endpoints).
//! - On request, a log of every write in commit order ([`ApiServerBuilder::record_changes`],
//!   [`ApiServer::changes`]): the truth to check a watcher's events against.
//!
//! # Fault injection
//! [`ApiServer::faults`] returns a [`Faults`] handle; the same controls exist over HTTP under
//! `/_kazan/` when the server is built with [`ApiServerBuilder::admin`]`(true)` (off by default;
//! same token as the API; never journaled, never matched by rules):
//!
#![doc = include_str!("instruments/admin.md")]
//!
//! A rule in JSON: `{"method":"GET","pathPrefix":"/api/v1/pods","watch":true,"times":2,
//! "action":{"type":"status","code":429,"reason":"TooManyRequests","message":"slow down","retryAfter":1}}`;
//! other actions: `{"type":"raw","code":502,"contentType":"text/html","body":"<html>..."}`,
//! `{"type":"split","offsets":[10,25]}`, `{"type":"delay","millis":200}`, `{"type":"drop"}` (close
//! the connection without answering).
//!
//! # Defaults
//! Server-side watch timeout when a client sends no `timeoutSeconds`: 1800 s (the real server picks
//! 1800–3600 s at random). Bookmarks every 60 s and 2 s before a timeout close (a quarter of the
//! timeout for timeouts under 4 s); like the watch cache, a bookmark is sent only when the global
//! version moved past the version the watch started from. History: 1000 events and 300 s per
//! resource. Each watch has a queue of 1024 events (only those it selects);
//! a watch whose client lets it fill up is ended cleanly. Namespaces
//! `default`, `kube-system`, `kube-public` and `kube-node-lease` exist at start; a deleted
//! namespace is `Terminating` for 1 s, then removed with its objects. A legacy watch from version
//! ""/"0" with `allowWatchBookmarks` gets the initial-events-end bookmark after its ADDED burst, as
//! servers with the WatchList feature send it ([`ApiServerBuilder::watch_list_defaulting`]).
//!
//! # Approximations
//! - Server-side apply records `managedFields`, reports conflicts between field managers (409,
//!   `force=true` takes the fields) and removes the fields an applier stopped applying; lists are
//!   associative for the built-in keyed lists, a set for `metadata.finalizers`, atomic otherwise
//!   (custom resources' `x-kubernetes-list-type` is not read). The direct Rust API's
//!   [`ApiServer::apply`] stays a plain strategic merge without managers. `dryRun=All` answers
//!   writes without storing them.
//! - Strategic merge patch knows the keyed lists of the built-in kinds (containers, env, ports,
//!   volumes, volumeMounts, conditions...) and the `$patch`, `$retainKeys`,
//!   `$setElementOrder` and `$deleteFromPrimitiveList` directives, not every `patchStrategy`.
//! - Writes over HTTP follow the real strategies for status (reset on create, kept by writes to
//!   the object, changed only through `/status`), `generation`, Secrets, preconditions and the
//!   scheme defaults of the common kinds (see the `store::strategy` module); the direct Rust API
//!   stores `status` as given, to set up the state a controller or kubelet would have written.
//!   `/status` writes change only `status`.
//! - Namespace termination deletes the namespace's objects (those with finalizers are marked and
//!   waited for), then the namespace, with no other controller logic. Deleting a CRD removes its
//!   objects at once (no DELETED events; open watches of that kind end).
//! - All versions of a kind share their objects; reading through another version only changes
//!   `apiVersion` (no conversion).
//! - A non-numeric `resourceVersion` is a 400 BadRequest (the etcd path of the real server).
#![deny(missing_docs)]

mod app;
mod body;
mod conversion;
mod discovery;
mod error;
mod handlers;
mod instruments;
mod kubeconfig;
pub mod load;
mod patch;
mod protobuf;
mod query;
pub mod registry;
mod selector;
mod server;
mod status;
mod store;
mod table;
mod tls;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::{ServerError, StoreError};
pub use instruments::changelog::{Change, ChangeType};
pub use instruments::faults::{FaultAction, FaultRule, Faults};
pub use instruments::journal::{JournalEntry, Stats};
pub use patch::PatchKind;
pub use registry::{PrinterColumn, Registry, ResourceDef};
pub use status::{FieldCause, Status};

use crate::app::{App, Settings};
use crate::instruments::journal::Observer;
use crate::store::{DeleteOutcome, Store, StoreConfig, WriteOptions};

/// How the direct object API writes: `status` as given (see [`WriteOptions::direct`]).
const DIRECT: WriteOptions = WriteOptions {
    manager: None,
    force: false,
    status_only: false,
    dry_run: false,
    direct: true,
};

/// The longest interval or timeout the builder accepts (keeps deadlines representable).
const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Configures and starts an [`ApiServer`].
#[derive(Clone)]
pub struct ApiServerBuilder {
    addr: SocketAddr,
    tls: bool,
    token: Option<String>,
    history_limit: usize,
    history_max_age: Duration,
    bookmark_interval: Duration,
    default_watch_timeout: Duration,
    watch_queue_capacity: usize,
    resources: Vec<ResourceDef>,
    reject_watch_list: bool,
    watch_list_defaulting: bool,
    namespace_delete_delay: Duration,
    too_large_wait: Duration,
    namespaces: Vec<String>,
    max_concurrent_streams: u32,
    admin: bool,
    record_changes: bool,
    garbage_collector: bool,
    sharding: bool,
}

impl std::fmt::Debug for ApiServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServerBuilder")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("history_limit", &self.history_limit)
            .field("history_max_age", &self.history_max_age)
            .field("bookmark_interval", &self.bookmark_interval)
            .field("default_watch_timeout", &self.default_watch_timeout)
            .field("watch_queue_capacity", &self.watch_queue_capacity)
            .field("resources", &self.resources.len())
            .field("reject_watch_list", &self.reject_watch_list)
            .field("max_concurrent_streams", &self.max_concurrent_streams)
            .field("admin", &self.admin)
            .field("record_changes", &self.record_changes)
            .field("garbage_collector", &self.garbage_collector)
            .field("sharding", &self.sharding)
            .finish_non_exhaustive()
    }
}

impl Default for ApiServerBuilder {
    fn default() -> Self {
        ApiServerBuilder {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            token: None,
            history_limit: 1000,
            history_max_age: Duration::from_secs(300),
            bookmark_interval: Duration::from_secs(60),
            default_watch_timeout: Duration::from_secs(1800),
            watch_queue_capacity: 1024,
            resources: Vec::new(),
            reject_watch_list: false,
            watch_list_defaulting: true,
            namespace_delete_delay: Duration::from_secs(1),
            too_large_wait: Duration::from_secs(3),
            namespaces: ["default", "kube-system", "kube-public", "kube-node-lease"]
                .map(String::from)
                .to_vec(),
            max_concurrent_streams: server::MAX_STREAMS,
            admin: false,
            record_changes: false,
            garbage_collector: true,
            sharding: true,
        }
    }
}

impl ApiServerBuilder {
    /// Honour `shardSelector` on lists and watches (default on), as a server with the
    /// `ShardedListAndWatch` feature gate (Kubernetes 1.36+, KEP-5866) does: only objects whose
    /// `metadata.uid` or `metadata.namespace` hashes (FNV-1a 64) into the selector's ranges are
    /// sent, and a list echoes the selector in `metadata.shardInfo`. Off, the parameter is
    /// ignored and every object sent, as by an older server.
    pub fn sharding(mut self, on: bool) -> Self {
        self.sharding = on;
        self
    }

    /// Run a garbage collector as the controller manager's (default on; envtest has none): when an
    /// owner is deleted its dependents (objects whose `ownerReferences` name its uid) are deleted;
    /// an owner deleted with `propagationPolicy=Foreground` waits for them, one deleted with
    /// `Orphan` has them lose their owner reference. Dependents whose owner never existed are left
    /// alone (the real collector deletes them).
    pub fn garbage_collector(mut self, on: bool) -> Self {
        self.garbage_collector = on;
        self
    }

    /// The address to listen on (default `127.0.0.1:0`, a random loopback port).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Serve HTTPS with a CA and server certificate generated at start (default off).
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// Require `Authorization: Bearer <token>` on every request (401 otherwise).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Events kept per resource for resuming watches and serving list pages (default 1000).
    pub fn history_limit(mut self, events: usize) -> Self {
        self.history_limit = events;
        self
    }

    /// How long events stay in the history (default 300 s).
    pub fn history_max_age(mut self, age: Duration) -> Self {
        self.history_max_age = age;
        self
    }

    /// Interval of periodic BOOKMARK events (default 60 s).
    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval.clamp(Duration::from_millis(10), MAX_DURATION);
        self
    }

    /// Watch duration when the client sends no `timeoutSeconds` (default 1800 s).
    pub fn default_watch_timeout(mut self, timeout: Duration) -> Self {
        self.default_watch_timeout = timeout.min(MAX_DURATION);
        self
    }

    /// Size of each watch's queue: how many of the events it selects a watch may fall behind
    /// before it is ended (default 1024).
    pub fn watch_queue_capacity(mut self, events: usize) -> Self {
        self.watch_queue_capacity = events.max(1);
        self
    }

    /// Registers an extra resource at start.
    pub fn resource(mut self, def: ResourceDef) -> Self {
        self.resources.push(def);
        self
    }

    /// Reject watch-list requests (`sendInitialEvents`) with 422, like a server without the
    /// WatchList feature (default false). Can also be switched later with [`Faults`].
    pub fn reject_watch_list(mut self, on: bool) -> Self {
        self.reject_watch_list = on;
        self
    }

    /// Whether a legacy watch from version ""/"0" with bookmarks gets the initial-events-end
    /// BOOKMARK after its ADDED burst, as servers with the WatchList feature (1.34+) send it
    /// (default true).
    pub fn watch_list_defaulting(mut self, on: bool) -> Self {
        self.watch_list_defaulting = on;
        self
    }

    /// How long a deleted namespace stays `Terminating` before it and its objects are removed
    /// (default 1 s).
    pub fn namespace_delete_delay(mut self, delay: Duration) -> Self {
        self.namespace_delete_delay = delay;
        self
    }

    /// How long a request for a version newer than the current one waits before the 504
    /// `ResourceVersionTooLarge` answer (default 3 s, the real watch cache's).
    pub fn too_large_resource_version_wait(mut self, wait: Duration) -> Self {
        self.too_large_wait = wait;
        self
    }

    /// The namespaces that exist at start (default `default`, `kube-system`, `kube-public`,
    /// `kube-node-lease`).
    pub fn namespaces(mut self, names: &[&str]) -> Self {
        self.namespaces = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// How many streams an HTTP/2 client may open at once on one connection, advertised as
    /// SETTINGS_MAX_CONCURRENT_STREAMS (default 1000; kube-apiserver advertises its
    /// `--http2-max-streams-per-connection`, 100 when unset). A client that needs more streams
    /// must open more connections.
    pub fn max_concurrent_streams(mut self, streams: u32) -> Self {
        self.max_concurrent_streams = streams;
        self
    }

    /// Serve the admin HTTP API under `/_kazan/` (default off: without it, those paths are
    /// ordinary unknown paths, 404). It lets anyone who can reach the server (and holds its token,
    /// when one is set) cut watches and read the request journal, so it is opt-in. Rust code does
    /// not need it: [`ApiServer::faults`] and [`ApiServer::journal`] work either way.
    pub fn admin(mut self, on: bool) -> Self {
        self.admin = on;
        self
    }

    /// Keep a log of every write, in commit order, for [`ApiServer::changes`] (default off; it
    /// grows by about a hundred bytes per write). Tests use it as the truth to compare a
    /// watcher's events with: the history is bounded, the log is not.
    pub fn record_changes(mut self, on: bool) -> Self {
        self.record_changes = on;
        self
    }

    /// Starts the server.
    pub async fn start(self) -> Result<ApiServer, ServerError> {
        let registry = Registry::with_builtins();
        for def in &self.resources {
            if def.plural.is_empty() || def.kind.is_empty() || def.version.is_empty() {
                return Err(ServerError::Resource(format!(
                    "{def:?}: plural, kind and version are required"
                )));
            }
            registry.register(def.clone());
        }
        let shutdown = CancellationToken::new();
        let store = Store::new(
            registry,
            StoreConfig {
                history_limit: self.history_limit,
                history_max_age: self.history_max_age,
                queue_capacity: self.watch_queue_capacity,
                namespace_delete_delay: self.namespace_delete_delay,
                record_changes: self.record_changes,
                garbage_collector: self.garbage_collector,
            },
            shutdown.clone(),
        );
        if self.garbage_collector {
            store.start_garbage_collector();
        }
        if let Some(ns_def) = store.registry().get("", "v1", "namespaces") {
            for name in &self.namespaces {
                let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
                store
                    .create(&ns_def, None, ns, DIRECT)
                    .map_err(|e| ServerError::Resource(format!("namespace {name}: {e}")))?;
            }
        }
        let tls = if self.tls { Some(tls::generate()?) } else { None };
        let listener = TcpListener::bind(self.addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: self.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: self.addr,
            source,
        })?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{addr}");
        let faults = Faults::new(store.clone(), self.reject_watch_list);
        let observer = Arc::new(Observer::default());
        let app = Arc::new(App {
            store: store.clone(),
            faults: faults.clone(),
            observer: observer.clone(),
            settings: Settings {
                token: self.token.clone(),
                bookmark_interval: self.bookmark_interval,
                default_watch_timeout: self.default_watch_timeout,
                too_large_wait: self.too_large_wait,
                watch_list_defaulting: self.watch_list_defaulting,
                sharding: self.sharding,
                max_body_bytes: 16 * 1024 * 1024,
                admin: self.admin,
            },
            shutdown: shutdown.clone(),
        });
        let tracker = TaskTracker::new();
        let acceptor = tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.config.clone()));
        let accept_task = tokio::spawn(server::accept_loop(
            listener,
            app,
            acceptor,
            shutdown.clone(),
            tracker.clone(),
            self.max_concurrent_streams,
        ));
        tracing::info!(%url, "kazan-apiserver listening");
        Ok(ApiServer {
            addr,
            url,
            ca_pem: tls.map(|t| t.ca_pem),
            token: self.token,
            store,
            faults,
            observer,
            shutdown,
            tracker,
            accept_task: Mutex::new(Some(accept_task)),
        })
    }
}

/// A running server. Dropping it stops it (watches end, the listener closes); [`ApiServer::shutdown`]
/// does the same and waits for connections to finish.
pub struct ApiServer {
    addr: SocketAddr,
    url: String,
    ca_pem: Option<String>,
    token: Option<String>,
    store: Arc<Store>,
    faults: Faults,
    observer: Arc<Observer>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    accept_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("url", &self.url)
            .field("tls", &self.ca_pem.is_some())
            .field("auth", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl ApiServer {
    /// Starts a server with the defaults: `127.0.0.1:0`, plain HTTP, no auth.
    pub async fn start() -> Result<ApiServer, ServerError> {
        ApiServerBuilder::default().start().await
    }

    /// A builder for a configured server.
    pub fn builder() -> ApiServerBuilder {
        ApiServerBuilder::default()
    }

    /// `http://127.0.0.1:PORT` (or `https://...` with TLS).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The PEM of the generated CA, when TLS is on.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// A ready-to-use kubeconfig (cluster, context and user `kazan`; CA data and token when set).
    pub fn kubeconfig(&self) -> String {
        kubeconfig::render(&self.url, self.ca_pem.as_deref(), self.token.as_deref())
    }

    /// Writes [`ApiServer::kubeconfig`] to a file.
    pub fn write_kubeconfig(&self, path: impl AsRef<std::path::Path>) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// The resources the server knows.
    pub fn registry(&self) -> &Registry {
        self.store.registry()
    }

    /// Registers a resource at run time (as a CRD would).
    pub fn register(&self, def: ResourceDef) -> Arc<ResourceDef> {
        self.store.register(def)
    }

    /// The current global resourceVersion (the version of the last write).
    pub fn resource_version(&self) -> u64 {
        self.store.current_rv()
    }

    /// The fault-injection handle.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    /// Every write since start, oldest first, when the server records changes
    /// ([`ApiServerBuilder::record_changes`]); empty otherwise. Each change has the
    /// resourceVersion, type and object identity of the event watchers got for it (a watch with
    /// no selector of that resource and namespace sees exactly these changes). Writes that make no
    /// event (dry runs, a deleted CRD's objects) are not recorded.
    pub fn changes(&self) -> Vec<Change> {
        self.store.changes()
    }

    /// The requests served so far (the last 10,000), oldest first.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.observer.journal()
    }

    /// Empties the journal.
    pub fn clear_journal(&self) {
        self.observer.clear_journal()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.observer.stats()
    }

    /// Waits until at least `n` watches of resource `plural` (e.g. `pods`) are open and subscribed
    /// (writes after this are seen by them), at most `timeout`. True if they are.
    pub async fn wait_for_watches(&self, plural: &str, n: usize, timeout: Duration) -> bool {
        self.observer.wait_for_watches(plural, n, timeout).await
    }

    /// Stops the server: open watches end cleanly, the listener closes, and connections get a few
    /// seconds to finish.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let task = self.accept_task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.tracker.wait()).await;
    }

    fn def_of(&self, api_version: &str, kind: &str) -> Result<Arc<ResourceDef>, StoreError> {
        self.store.registry().by_kind(api_version, kind).ok_or_else(|| {
            Status::failure(
                404,
                "NotFound",
                format!("the server could not find the requested resource (kind {kind} in {api_version})"),
            )
            .into()
        })
    }

    fn def_of_object(&self, object: &Value) -> Result<Arc<ResourceDef>, StoreError> {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
        self.def_of(api_version, kind)
    }

    /// Creates an object (with `apiVersion`, `kind`, `metadata.name` or `generateName`, and
    /// `metadata.namespace` for namespaced kinds, `default` when missing). Returns it as stored.
    pub fn create(&self, object: Value) -> Result<Value, StoreError> {
        let def = self.def_of_object(&object)?;
        let ns = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.store.create(&def, ns.as_deref(), object, DIRECT)
    }

    /// Replaces an object (conflict if its `metadata.resourceVersion` is set and stale).
    pub fn update(&self, object: Value) -> Result<Value, StoreError> {
        let def = self.def_of_object(&object)?;
        let (ns, name) = store::object_key(&object);
        let ns = if def.namespaced && ns.is_empty() {
            "default".to_string()
        } else {
            ns
        };
        self.store.update(&def, Some(&ns), &name, object, DIRECT)
    }

    /// Replaces only the `status` of an object (the `/status` subresource).
    pub fn update_status(&self, object: Value) -> Result<Value, StoreError> {
        let def = self.def_of_object(&object)?;
        let (ns, name) = store::object_key(&object);
        let ns = if def.namespaced && ns.is_empty() {
            "default".to_string()
        } else {
            ns
        };
        self.store.update(
            &def,
            Some(&ns),
            &name,
            object,
            WriteOptions {
                status_only: true,
                ..DIRECT
            },
        )
    }

    /// Applies a JSON merge patch to an object.
    pub fn merge_patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch: Value,
    ) -> Result<Value, StoreError> {
        self.patch(api_version, kind, namespace, name, PatchKind::Merge, patch)
    }

    /// Applies a patch of any kind (an apply patch creates the object when missing).
    pub fn patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch_kind: PatchKind,
        patch: Value,
    ) -> Result<Value, StoreError> {
        let def = self.def_of(api_version, kind)?;
        self.store
            .patch(&def, namespace, name, patch_kind, &patch, DIRECT)
            .map(|(o, _)| o)
    }

    /// Creates the object, or merges it into the existing one (server-side apply, approximated as
    /// a strategic merge). Handy for loading manifests that may name existing objects.
    pub fn apply(&self, object: Value) -> Result<Value, StoreError> {
        let def = self.def_of_object(&object)?;
        let (ns, name) = store::object_key(&object);
        let ns = if def.namespaced && ns.is_empty() {
            "default".to_string()
        } else {
            ns
        };
        let namespace = def.namespaced.then_some(ns.as_str());
        self.store
            .patch(&def, namespace, &name, PatchKind::Apply, &object, DIRECT)
            .map(|(o, _)| o)
    }

    /// Deletes an object. Returns its last state, or (finalizers, namespaces) the object marked
    /// with `deletionTimestamp` that stays until it is finalized.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, StoreError> {
        let def = self.def_of(api_version, kind)?;
        match self.store.delete(
            &def,
            namespace,
            name,
            // Like `--grace-period=0`: a fixture is gone at once.
            &store::DeleteOptions {
                grace_period: Some(0),
                ..store::DeleteOptions::default()
            },
        )? {
            DeleteOutcome::Deleted(o) | DeleteOutcome::Pending(o) => Ok(o),
        }
    }

    /// One object.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, StoreError> {
        let def = self.def_of(api_version, kind)?;
        self.store.get(&def, namespace, name)
    }

    /// Every object of a kind (in one namespace, or all), sorted by namespace and name.
    pub fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<Value>, StoreError> {
        let def = self.def_of(api_version, kind)?;
        Ok(self.store.list(&def, namespace))
    }
}
