//! History and versions: every write commits through here (one global resourceVersion, a bounded
//! per-resource history), and list snapshots are rebuilt from it.

use super::fanout::{Event, EventType, event_line};
use super::rules::{object_key, set_path};
use super::state::{Inner, ResourceState, Store, StoreConfig, key_of};
use crate::instruments::changelog::{Change, ChangeType};
use crate::registry::ResourceDef;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// One page of a consistent list.
pub(crate) struct Page {
    /// The version the page is of.
    pub rv: u64,
    /// The page's objects, sorted by (namespace, name).
    pub items: Vec<((String, String), Arc<Value>)>,
    /// How many selected objects follow the page (at most 1 when not counted).
    pub rest: usize,
}

/// Which part of a resource's objects a page is taken from.
#[derive(Clone, Copy, Default)]
pub(crate) struct PageRange<'a> {
    /// Only this namespace's objects.
    pub namespace: Option<&'a str>,
    /// Only the objects after this (namespace, name): a continue token's position.
    pub after: Option<&'a (String, String)>,
    /// At most this many objects.
    pub limit: Option<usize>,
}

/// Why a snapshot or watch start is not available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VersionError {
    /// Older than the history; carries the floor (smallest servable version).
    TooOld { floor: u64 },
    /// Newer than the current version.
    TooLarge { current: u64 },
}

impl Store {
    /// The current global resourceVersion.
    pub(crate) fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// The version up to which all events are in the broadcast channels.
    pub(crate) fn published_rv(&self) -> u64 {
        self.published_rv.load(Ordering::Acquire)
    }

    /// Waits until the global version reaches `rv`, at most `timeout`; true if it did.
    pub(crate) async fn wait_for_rv(&self, rv: u64, timeout: Duration) -> bool {
        let mut rx = self.rv_tx.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|current| *current >= rv)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// Drops history beyond the count and age limits, moving the floor.
    pub(super) fn evict(state: &mut ResourceState, config: &StoreConfig, now: Instant) {
        while let Some(front) = state.history.front() {
            let too_many = state.history.len() > config.history_limit;
            let too_old = now.saturating_duration_since(front.at) > config.history_max_age;
            if !(too_many || too_old) {
                break;
            }
            let evicted_rv = front.rv;
            state.history.pop_front();
            state.floor = match state.history.front() {
                Some(next) => next.rv.saturating_sub(1).max(evicted_rv),
                None => evicted_rv,
            };
        }
    }

    /// Records a change: bumps the version, stamps it, updates the objects, the history and the
    /// broadcast. `object` is the new state (for DELETED, the last state).
    pub(super) fn commit(
        &self,
        inner: &mut Inner,
        def: &ResourceDef,
        kind: EventType,
        mut object: Value,
        dry_run: bool,
    ) -> Arc<Value> {
        if dry_run {
            // What the write would store; nothing changes. A created object has no version yet.
            if kind == EventType::Added
                && let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut)
            {
                meta.remove("resourceVersion");
            }
            return Arc::new(object);
        }
        inner.rv += 1;
        let rv = inner.rv;
        set_path(
            &mut object,
            &["metadata", "resourceVersion"],
            json!(rv.to_string()),
        );
        let obj_key = object_key(&object);
        let key = key_of(def);
        // Under the lock, before any watcher is offered the event: the log is in commit order and
        // holds a change before a watcher can deliver it.
        self.changelog.record(|| Change {
            resource_version: rv,
            change_type: match kind {
                EventType::Added => ChangeType::Added,
                EventType::Modified => ChangeType::Modified,
                EventType::Deleted => ChangeType::Deleted,
            },
            group: def.group.clone(),
            plural: def.plural.clone(),
            namespace: obj_key.0.clone(),
            name: obj_key.1.clone(),
        });
        let config = self.config.clone();
        let state = Self::state(inner, &key);
        let object = Arc::new(object);
        let prev = match kind {
            EventType::Deleted => state.objects.remove(&obj_key),
            _ => state.objects.insert(obj_key, object.clone()),
        };
        let event = Arc::new(Event {
            rv,
            kind,
            line: event_line(kind.as_str(), &object),
            object: object.clone(),
            prev,
            at: Instant::now(),
        });
        state.history.push_back(event.clone());
        Self::evict(state, &config, event.at);
        state.watchers.retain(|w| w.offer(&event));
        let namespace = event
            .object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(watchers) = state.namespace_watchers.get_mut(namespace) {
            watchers.retain(|w| w.offer(&event));
            if watchers.is_empty() {
                state.namespace_watchers.remove(namespace);
            }
        }
        if self.config.garbage_collector {
            self.track_owners(inner, def, kind, &event.object, event.prev.as_deref());
        }
        self.published_rv.store(rv, Ordering::Release);
        self.rv_tx.send_replace(rv);
        object
    }

    /// Moves the global version forward without a write.
    pub(crate) fn advance(&self, n: u64) {
        let mut inner = self.lock();
        inner.rv += n;
        let rv = inner.rv;
        self.published_rv.store(rv, Ordering::Release);
        self.rv_tx.send_replace(rv);
    }

    /// Drops the history of every resource: every watch or continue token from a version before
    /// now is too old.
    pub(crate) fn compact(&self) {
        let mut inner = self.lock();
        let rv = inner.rv;
        for state in inner.resources.values_mut() {
            state.history.clear();
            state.floor = rv;
        }
        for def in self.registry.all() {
            let key = key_of(&def);
            if !inner.resources.contains_key(&key) {
                Self::state(&mut inner, &key).floor = rv;
            }
        }
    }

    /// The floor of a resource: the smallest version a watch can start from.
    pub(crate) fn floor(&self, def: &ResourceDef) -> u64 {
        let mut inner = self.lock();
        let state = Self::state(&mut inner, &key_of(def));
        Self::evict(state, &self.config, Instant::now());
        state.floor
    }

    /// One page of a list of a resource at version `at` (None = now): the objects after `after`
    /// in (namespace, name) order that `keep` selects, at most `limit`, and how many more follow
    /// (all of them counted when `count_rest`, else 1 if any does). Only the page is copied out:
    /// an older version is the current objects under an overlay of what changed since, read from
    /// the history, so a page of 500 out of 100,000 objects costs the page, not the whole map.
    pub(crate) fn list_page(
        &self,
        def: &ResourceDef,
        at: Option<u64>,
        range: PageRange<'_>,
        mut keep: impl FnMut(&Value) -> bool,
        count_rest: bool,
    ) -> Result<Page, VersionError> {
        let mut inner = self.lock();
        let current = inner.rv;
        let state = Self::state(&mut inner, &key_of(def));
        Self::evict(state, &self.config, Instant::now());
        let at = at.unwrap_or(current);
        if at > current {
            return Err(VersionError::TooLarge { current });
        }
        if at < current && at < state.floor {
            return Err(VersionError::TooOld { floor: state.floor });
        }
        // What each changed object was at `at` (None: absent). Walking back, the earliest change
        // after `at` is written last.
        let mut overlay: BTreeMap<(String, String), Option<Arc<Value>>> = BTreeMap::new();
        for event in state.history.iter().rev().take_while(|e| e.rv > at) {
            let before = match (&event.kind, &event.prev) {
                (EventType::Added, _) | (_, None) => None,
                (_, Some(prev)) => Some(prev.clone()),
            };
            overlay.insert(object_key(&event.object), before);
        }
        let lower = match (range.after, range.namespace) {
            (Some(after), _) => Bound::Excluded(after.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_owned(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let mut base = state.objects.range((lower.clone(), Bound::Unbounded)).peekable();
        let mut changed = overlay.range((lower, Bound::Unbounded)).peekable();
        let mut items = Vec::new();
        let mut rest = 0;
        loop {
            // The next key of the merged view, the overlay's state winning.
            let (key, object) = match (base.peek(), changed.peek()) {
                (None, None) => break,
                (Some((b, _)), Some((c, _))) if c <= b => {
                    if c == b {
                        base.next();
                    }
                    match changed.next() {
                        Some((key, Some(object))) => (key, object),
                        _ => continue,
                    }
                }
                (Some(_), _) => match base.next() {
                    Some(entry) => entry,
                    None => break,
                },
                (None, Some(_)) => match changed.next() {
                    Some((key, Some(object))) => (key, object),
                    Some((_, None)) => continue,
                    None => break,
                },
            };
            if let Some(ns) = range.namespace {
                match key.0.as_str().cmp(ns) {
                    std::cmp::Ordering::Less => continue,
                    std::cmp::Ordering::Greater => break,
                    std::cmp::Ordering::Equal => {}
                }
            }
            if !keep(object) {
                continue;
            }
            if range.limit.is_some_and(|limit| items.len() >= limit) {
                rest += 1;
                if !count_rest {
                    break;
                }
                continue;
            }
            items.push((key.clone(), object.clone()));
        }
        Ok(Page { rv: at, items, rest })
    }
}
