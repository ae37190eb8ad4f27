//! Fault injection, from Rust ([`Faults`]) and from the admin HTTP API under `/_kazan/`: act on
//! open watches (end, cut mid-event, stall, bookmark now, end after every K events), compact the
//! history, answer the next requests matching a rule with a chosen status or raw body, write answers
//! in pieces or slowly, and switch how "too old" is reported (HTTP 410, reason `Gone`, etcd message)
//! or reject watch-list requests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::status::Status;
use crate::store::Store;

/// A command for open watches. `resource` selects watches by plural (`pods`) or `plural.group`
/// (`deployments.apps`); `None` means every watch.
#[derive(Clone, Debug)]
pub(crate) enum WatchCommand {
    /// End cleanly (terminating chunk).
    End(Option<String>),
    /// Write half an event, then drop the connection without the terminating chunk.
    Cut(Option<String>),
    /// Stop writing (connection kept open) for a while.
    Stall(Option<String>, Duration),
    /// Send a BOOKMARK now (to watches that asked for bookmarks).
    Bookmark(Option<String>),
    /// Send an in-stream ERROR 410 (as for a too-old version), then end cleanly.
    Expire(Option<String>, ExpiredStyle),
    /// Write these bytes as they are (e.g. a malformed line), then go on.
    Inject(Option<String>, bytes::Bytes),
}

/// How a 410 is worded: the floor version of the message, and the switches.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ExpiredStyle {
    pub floor: u64,
    pub gone: bool,
    pub etcd_message: bool,
}

impl ExpiredStyle {
    /// The Status of a watch from `requested` that is too old.
    pub(crate) fn status(&self, requested: u64) -> Status {
        let message = if self.etcd_message {
            "The resourceVersion for the provided watch is too old.".to_string()
        } else {
            format!("too old resource version: {requested} ({})", self.floor)
        };
        Status::expired(message, self.gone)
    }
}

impl WatchCommand {
    /// Whether the command is for a watch of this resource.
    pub(crate) fn applies_to(&self, plural: &str, group: &str) -> bool {
        let target = match self {
            WatchCommand::End(r)
            | WatchCommand::Cut(r)
            | WatchCommand::Stall(r, _)
            | WatchCommand::Bookmark(r)
            | WatchCommand::Expire(r, _)
            | WatchCommand::Inject(r, _) => r,
        };
        match target {
            None => true,
            Some(t) => t == plural || (!group.is_empty() && *t == format!("{plural}.{group}")),
        }
    }
}

/// What a matching request gets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum FaultAction {
    /// Answer with a `metav1.Status` error (with `details.retryAfterSeconds` and a `Retry-After`
    /// header when `retry_after` is set).
    #[serde(rename_all = "camelCase")]
    Status {
        /// HTTP status code.
        code: u16,
        /// Status reason, e.g. `InternalError`, `TooManyRequests`, `Expired`.
        #[serde(default)]
        reason: String,
        /// Status message.
        #[serde(default)]
        message: String,
        /// `Retry-After` seconds.
        #[serde(default)]
        retry_after: Option<u64>,
        /// `details` of the Status (name, kind, causes...); `retryAfterSeconds` is set from
        /// `retry_after`.
        #[serde(default)]
        details: Option<serde_json::Value>,
    },
    /// Answer with an arbitrary body (e.g. the HTML page of a proxy, or plain-text 429).
    #[serde(rename_all = "camelCase")]
    Raw {
        /// HTTP status code.
        code: u16,
        /// `Content-Type` of the body.
        content_type: String,
        /// The body.
        body: String,
        /// `Retry-After` seconds.
        #[serde(default)]
        retry_after: Option<u64>,
        /// Extra response headers (e.g. `Location` for a redirect), by name.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
    /// Serve the request normally, writing the body in pieces split at these byte offsets (with
    /// a flush and a short pause between pieces). For watches the offsets count from the start of
    /// the stream.
    Split {
        /// Absolute byte offsets in the body.
        offsets: Vec<u64>,
    },
    /// Serve the request normally, but wait this long before the answer and before every write.
    Delay {
        /// Milliseconds.
        millis: u64,
    },
    /// Close the connection without answering (HTTP/2: reset the stream).
    Drop,
}

impl FaultAction {
    /// A Status error answer.
    pub fn status(code: u16, reason: &str, message: &str) -> Self {
        FaultAction::Status {
            code,
            reason: reason.into(),
            message: message.into(),
            retry_after: None,
            details: None,
        }
    }

    /// A raw answer.
    pub fn raw(code: u16, content_type: &str, body: &str) -> Self {
        FaultAction::Raw {
            code,
            content_type: content_type.into(),
            body: body.into(),
            retry_after: None,
            headers: BTreeMap::new(),
        }
    }

    /// The same raw answer with this extra header, e.g. `Location` for a 3xx (ignored for other
    /// actions).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let FaultAction::Raw { headers, .. } = &mut self {
            headers.insert(name.into(), value.into());
        }
        self
    }

    /// The same Status answer with these `details` (ignored for other actions).
    pub fn details(mut self, value: serde_json::Value) -> Self {
        if let FaultAction::Status { details, .. } = &mut self {
            *details = Some(value);
        }
        self
    }

    /// The same answer with a `Retry-After` (ignored for split and delay).
    pub fn retry_after(mut self, seconds: u64) -> Self {
        match &mut self {
            FaultAction::Status { retry_after, .. } | FaultAction::Raw { retry_after, .. } => {
                *retry_after = Some(seconds)
            }
            _ => {}
        }
        self
    }

    /// The Status a `Status` action answers with.
    pub(crate) fn to_status(&self) -> Option<Status> {
        match self {
            FaultAction::Status {
                code,
                reason,
                message,
                retry_after,
                details,
            } => {
                let mut status = Status::failure(*code, reason, message.clone());
                let mut details = details.clone().filter(serde_json::Value::is_object);
                if let Some(seconds) = retry_after {
                    let map = details.get_or_insert_with(|| serde_json::json!({}));
                    map["retryAfterSeconds"] = serde_json::json!(seconds);
                }
                status.details = details;
                Some(status)
            }
            _ => None,
        }
    }
}

fn one() -> u32 {
    1
}

/// A rule: the next `times` requests matching `method`, `path_prefix` and `watch` get `action`.
/// Rules are checked in the order they were added; the first match applies; a rule expires after
/// its count. Admin requests (`/_kazan/...`) never match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// HTTP method (`GET`, `POST`...); any when unset.
    #[serde(default)]
    pub method: Option<String>,
    /// Path prefix, e.g. `/api/v1/namespaces/demo/pods`; any when unset.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Only watch requests (`true`) or only non-watch requests (`false`); any when unset.
    #[serde(default)]
    pub watch: Option<bool>,
    /// How many matching requests the rule applies to.
    #[serde(default = "one")]
    pub times: u32,
    /// What they get.
    pub action: FaultAction,
}

impl FaultRule {
    /// A rule matching the next request of any kind.
    pub fn new(action: FaultAction) -> Self {
        FaultRule {
            method: None,
            path_prefix: None,
            watch: None,
            times: 1,
            action,
        }
    }

    /// Only this method.
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Only paths starting with this.
    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Only watch (`true`) or non-watch (`false`) requests.
    pub fn watch(mut self, watch: bool) -> Self {
        self.watch = Some(watch);
        self
    }

    /// Applies to this many requests.
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }

    fn matches(&self, method: &str, path: &str, watch: bool) -> bool {
        self.times > 0
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path_prefix.as_deref().is_none_or(|p| path.starts_with(p))
            && self.watch.is_none_or(|w| w == watch)
    }
}

pub(crate) struct FaultState {
    pub(crate) control: broadcast::Sender<WatchCommand>,
    rules: Mutex<Vec<FaultRule>>,
    end_after_events: AtomicU64,
    expired_as_http: AtomicBool,
    pub(crate) expired_reason_gone: AtomicBool,
    pub(crate) expired_etcd_message: AtomicBool,
    pub(crate) reject_watch_list: AtomicBool,
    store: Arc<Store>,
}

/// The fault-injection handle of a server (cheap to clone).
#[derive(Clone)]
pub struct Faults {
    pub(crate) state: Arc<FaultState>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("rules", &self.rules())
            .finish_non_exhaustive()
    }
}

impl Faults {
    pub(crate) fn new(store: Arc<Store>, reject_watch_list: bool) -> Self {
        Faults {
            state: Arc::new(FaultState {
                control: broadcast::channel(64).0,
                rules: Mutex::new(Vec::new()),
                end_after_events: AtomicU64::new(0),
                expired_as_http: AtomicBool::new(false),
                expired_reason_gone: AtomicBool::new(false),
                expired_etcd_message: AtomicBool::new(false),
                reject_watch_list: AtomicBool::new(reject_watch_list),
                store,
            }),
        }
    }

    fn send(&self, command: WatchCommand) {
        let _ = self.state.control.send(command);
    }

    /// Ends open watches cleanly (of one resource, by plural or `plural.group`, or all).
    pub fn end_watches(&self, resource: Option<&str>) {
        self.send(WatchCommand::End(resource.map(str::to_string)));
    }

    /// Cuts open watches abruptly: half an event, then the connection is dropped without the
    /// terminating chunk (HTTP/2: the stream is reset).
    pub fn cut_watches(&self, resource: Option<&str>) {
        self.send(WatchCommand::Cut(resource.map(str::to_string)));
    }

    /// Stalls open watches: nothing is written for `duration`, the connection stays open.
    pub fn stall_watches(&self, resource: Option<&str>, duration: Duration) {
        self.send(WatchCommand::Stall(resource.map(str::to_string), duration));
    }

    /// Sends a BOOKMARK with the current version now to open watches that asked for bookmarks
    /// (even if the version did not move since the watch started).
    pub fn send_bookmark(&self, resource: Option<&str>) {
        self.send(WatchCommand::Bookmark(resource.map(str::to_string)));
    }

    /// Sends open watches an in-stream ERROR 410 `Expired` (worded per the switches, with the
    /// current version as the oldest servable one), then ends them: what a client sees when its
    /// watch falls out of the watch cache. Does not touch the history.
    pub fn expire_watches(&self, resource: Option<&str>) {
        let style = self.expired_style(self.state.store.current_rv());
        self.send(WatchCommand::Expire(resource.map(str::to_string), style));
    }

    /// Writes `bytes` as they are into open watches (e.g. `b"{not json\n"` to test a client's
    /// handling of a malformed line), then the watches go on.
    pub fn inject_into_watches(&self, resource: Option<&str>, bytes: impl Into<bytes::Bytes>) {
        self.send(WatchCommand::Inject(resource.map(str::to_string), bytes.into()));
    }

    /// Moves the global resourceVersion forward by `n` without any write (gaps are legal; the
    /// next bookmark reports the new version).
    pub fn advance_resource_version(&self, n: u64) {
        self.state.store.advance(n);
    }

    /// Compacts the history of every resource: a watch or continue token from any version before
    /// the current one gets 410 from now on.
    pub fn compact_history(&self) {
        self.state.store.compact();
    }

    /// Ends every watch cleanly after it has sent `k` change events (ADDED/MODIFIED/DELETED after
    /// the initial state, so a watch from ""/"0" still delivers its whole initial burst; bookmarks
    /// do not count). `None` turns it off. Applies to watches started after the call.
    pub fn end_watches_after_events(&self, k: Option<u64>) {
        self.state
            .end_after_events
            .store(k.unwrap_or(0), Ordering::Relaxed);
    }

    pub(crate) fn end_after_events(&self) -> Option<u64> {
        Some(self.state.end_after_events.load(Ordering::Relaxed)).filter(|k| *k > 0)
    }

    /// Adds a rule after the existing ones.
    pub fn add_rule(&self, rule: FaultRule) {
        self.state
            .rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(rule);
    }

    /// Removes every rule.
    pub fn clear_rules(&self) {
        self.state.rules.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The rules still active (with their remaining counts).
    pub fn rules(&self) -> Vec<FaultRule> {
        self.state.rules.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes the action of the first rule matching this request, counting it down.
    pub(crate) fn take_matching(&self, method: &str, path: &str, watch: bool) -> Option<FaultAction> {
        let mut rules = self.state.rules.lock().unwrap_or_else(|e| e.into_inner());
        let index = rules.iter().position(|r| r.matches(method, path, watch))?;
        let rule = &mut rules[index];
        rule.times -= 1;
        let action = rule.action.clone();
        if rule.times == 0 {
            rules.remove(index);
        }
        Some(action)
    }

    /// Answer a watch from a too-old version with HTTP 410 instead of 200 + an ERROR event.
    pub fn expired_as_http_410(&self, on: bool) {
        self.state.expired_as_http.store(on, Ordering::Relaxed);
    }

    pub(crate) fn expired_as_http(&self) -> bool {
        self.state.expired_as_http.load(Ordering::Relaxed)
    }

    /// Use reason `Gone` instead of `Expired` for too-old versions (servers ≤ 1.16).
    pub fn expired_reason_gone(&self, on: bool) {
        self.state.expired_reason_gone.store(on, Ordering::Relaxed);
    }

    /// Use the etcd message `The resourceVersion for the provided watch is too old.` instead of
    /// the watch cache's `too old resource version: N (M)`.
    pub fn expired_etcd_message(&self, on: bool) {
        self.state.expired_etcd_message.store(on, Ordering::Relaxed);
    }

    /// Reject watch-list requests (`sendInitialEvents`) with 422, as a server without the
    /// WatchList feature does; also turns off the initial-events-end bookmark on legacy watches.
    pub fn reject_watch_list(&self, on: bool) {
        self.state.reject_watch_list.store(on, Ordering::Relaxed);
    }

    pub(crate) fn rejects_watch_list(&self) -> bool {
        self.state.reject_watch_list.load(Ordering::Relaxed)
    }

    /// The wording of a 410 per the switches, with `floor` as the oldest servable version.
    pub(crate) fn expired_style(&self, floor: u64) -> ExpiredStyle {
        ExpiredStyle {
            floor,
            gone: self.state.expired_reason_gone.load(Ordering::Relaxed),
            etcd_message: self.state.expired_etcd_message.load(Ordering::Relaxed),
        }
    }

    /// The Status of a too-old watch, per the switches.
    pub(crate) fn expired_status(&self, requested: u64, floor: u64) -> Status {
        self.expired_style(floor).status(requested)
    }
}
