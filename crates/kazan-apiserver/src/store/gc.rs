//! A small garbage collector, as the controller manager's (`pkg/controller/garbagecollector`):
//! the store keeps an index owner uid → dependents as it commits, and queues an owner when it is
//! deleted or marked with the `orphan` / `foregroundDeletion` finalizer (which `DELETE` adds for
//! `propagationPolicy=Orphan` / `Foreground`). A task then deletes the dependents of a deleted
//! owner (Background), deletes them and waits before releasing a Foreground owner, or removes the
//! owner reference from them before releasing an Orphan owner.

use std::sync::Arc;

use serde_json::{Value, json};

use super::fanout::EventType;
use super::objects::{DeleteOptions, FOREGROUND, ORPHAN};
use super::rules::{object_key, set_path};
use super::state::{Inner, ResourceKey, Store, key_of};
use crate::registry::ResourceDef;

/// An object that names an owner: its storage key, namespace and name.
pub(crate) type Dependent = (ResourceKey, String, String);

/// An owner to look at: its uid and where it lives.
#[derive(Clone, Debug)]
pub(crate) struct GcItem {
    uid: String,
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
}

/// The `ownerReferences` uids of an object.
fn owner_uids(object: &Value) -> Vec<String> {
    owner_refs(object)
        .iter()
        .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
        .collect()
}

fn owner_refs(object: &Value) -> Vec<Value> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

fn uid_of(object: &Value) -> &str {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

impl Store {
    /// Under the commit: keeps the dependents index and queues what the collector must see.
    pub(super) fn track_owners(
        &self,
        inner: &mut Inner,
        def: &ResourceDef,
        kind: EventType,
        object: &Value,
        prev: Option<&Value>,
    ) {
        let (ns, name) = object_key(object);
        let me: Dependent = (key_of(def), ns.clone(), name.clone());
        if let Some(prev) = prev {
            for uid in owner_uids(prev) {
                if let Some(set) = inner.dependents.get_mut(&uid) {
                    set.remove(&me);
                    if set.is_empty() {
                        inner.dependents.remove(&uid);
                    }
                }
            }
        }
        if kind != EventType::Deleted {
            for uid in owner_uids(object) {
                inner.dependents.entry(uid).or_default().insert(me.clone());
            }
        }
        let item = |uid: &str, api_version: &str, kind: &str, namespace: &str, name: &str| GcItem {
            uid: uid.to_string(),
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let mut queued = false;
        let waits_for_dependents = object.pointer("/metadata/deletionTimestamp").is_some()
            && finalizers(object).iter().any(|f| f == ORPHAN || f == FOREGROUND);
        if kind == EventType::Deleted || waits_for_dependents {
            let uid = uid_of(object);
            if !uid.is_empty() && (inner.dependents.contains_key(uid) || waits_for_dependents) {
                let owner = item(uid, &def.api_version(), &def.kind, &ns, &name);
                inner.gc_queue.push(owner);
                queued = true;
            }
        }
        if kind == EventType::Deleted {
            // An owner waiting in the foreground may now be free.
            for reference in owner_refs(object) {
                let get = |k: &str| reference.get(k).and_then(Value::as_str).unwrap_or_default();
                inner
                    .gc_queue
                    .push(item(get("uid"), get("apiVersion"), get("kind"), &ns, get("name")));
                queued = true;
            }
        }
        if queued {
            self.gc_wake.notify_one();
        }
    }

    /// Starts the collector's task (ends at shutdown).
    pub(crate) fn start_garbage_collector(self: &Arc<Self>) {
        let store = self.clone();
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        handle.spawn(async move {
            loop {
                tokio::select! {
                    _ = store.gc_wake.notified() => {}
                    _ = store.shutdown.cancelled() => return,
                }
                loop {
                    let next = store.lock().gc_queue.pop();
                    let Some(item) = next else { break };
                    store.collect(&item);
                }
            }
        });
    }

    /// Looks at one owner: its dependents follow its deletion.
    fn collect(self: &Arc<Self>, item: &GcItem) {
        let owner_def = self.registry.by_kind(&item.api_version, &item.kind);
        let mut inner = self.lock();
        let dependents: Vec<Dependent> = inner
            .dependents
            .get(&item.uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let owner = owner_def.as_ref().and_then(|def| {
            let ns = if def.namespaced {
                item.namespace.clone()
            } else {
                String::new()
            };
            Self::state(&mut inner, &key_of(def))
                .objects
                .get(&(ns, item.name.clone()))
                .filter(|o| uid_of(o) == item.uid)
                .cloned()
        });
        let deleting = owner
            .as_ref()
            .filter(|o| o.pointer("/metadata/deletionTimestamp").is_some());
        match (owner.as_ref(), deleting) {
            (None, _) => {
                drop(inner);
                self.delete_dependents(&dependents);
            }
            (Some(_), None) => {}
            (Some(_), Some(owner)) => {
                let owner_finalizers = finalizers(owner);
                let Some(owner_def) = owner_def else { return };
                if owner_finalizers.iter().any(|f| f == ORPHAN) {
                    for dependent in &dependents {
                        self.drop_owner_reference(&mut inner, dependent, &item.uid);
                    }
                    self.release(&mut inner, &owner_def, owner, ORPHAN);
                } else if owner_finalizers.iter().any(|f| f == FOREGROUND) {
                    if dependents.is_empty() {
                        self.release(&mut inner, &owner_def, owner, FOREGROUND);
                    } else {
                        drop(inner);
                        self.delete_dependents(&dependents);
                    }
                }
            }
        }
    }

    /// Deletes dependents (Background), each guarded by its uid.
    fn delete_dependents(self: &Arc<Self>, dependents: &[Dependent]) {
        for (key, ns, name) in dependents {
            let Some(def) = self.registry.all().into_iter().find(|d| key_of(d) == *key) else {
                continue;
            };
            let namespace = def.namespaced.then_some(ns.as_str());
            // Already being deleted, gone, or replaced: nothing to do, as the real collector.
            let _ = self.delete(&def, namespace, name, &DeleteOptions::default());
        }
    }

    /// Removes the references to `owner_uid` from a dependent (what the collector's patch does).
    fn drop_owner_reference(&self, inner: &mut Inner, dependent: &Dependent, owner_uid: &str) {
        let (key, ns, name) = dependent;
        let Some(def) = self.registry.all().into_iter().find(|d| key_of(d) == *key) else {
            return;
        };
        let Some(current) = Self::state(inner, key)
            .objects
            .get(&(ns.clone(), name.clone()))
            .cloned()
        else {
            return;
        };
        let mut updated = Value::clone(&current);
        let kept: Vec<Value> = owner_refs(&current)
            .into_iter()
            .filter(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid))
            .collect();
        if let Some(meta) = updated.get_mut("metadata").and_then(Value::as_object_mut) {
            if kept.is_empty() {
                meta.remove("ownerReferences");
            } else {
                meta.insert("ownerReferences".into(), json!(kept));
            }
        }
        self.commit(inner, &def, EventType::Modified, updated, false);
    }

    /// Removes the collector's finalizer from an owner; gone when it was the last.
    fn release(&self, inner: &mut Inner, def: &ResourceDef, owner: &Value, finalizer: &str) {
        let mut updated = owner.clone();
        let left: Vec<String> = finalizers(owner).into_iter().filter(|f| f != finalizer).collect();
        if left.is_empty() {
            if let Some(meta) = updated.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("finalizers");
            }
            self.remove_now(inner, def, updated, false);
        } else {
            set_path(&mut updated, &["metadata", "finalizers"], json!(left));
            self.commit(inner, def, EventType::Modified, updated, false);
        }
    }
}
