//! Namespaces: objects go only into existing, active namespaces; a deleted namespace terminates,
//! then is removed with its objects.

use super::fanout::EventType;
use super::objects::bump_generation;
use super::rules::{now_rfc3339, set_path};
use super::state::{Inner, Store, key_of};
use crate::error::StoreError;
use crate::registry::ResourceDef;
use crate::status::Status;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Namespaces get the name label, the `kubernetes` finalizer and a phase.
pub(super) fn prepare_namespace(object: &mut Value, name: &str) {
    set_path(
        object,
        &["metadata", "labels", "kubernetes.io/metadata.name"],
        json!(name),
    );
    if object.pointer("/spec/finalizers").is_none() {
        set_path(object, &["spec", "finalizers"], json!(["kubernetes"]));
    }
    let terminating = object.pointer("/metadata/deletionTimestamp").is_some();
    set_path(
        object,
        &["status", "phase"],
        json!(if terminating { "Terminating" } else { "Active" }),
    );
}

impl Store {
    /// Checks the namespace a namespaced object goes into: it must exist and not be terminating.
    pub(super) fn check_namespace(
        inner: &Inner,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        if !def.namespaced {
            return Ok(());
        }
        let ns = inner
            .resources
            .get(&(String::new(), "namespaces".to_string()))
            .and_then(|s| s.objects.get(&(String::new(), namespace.to_string())));
        match ns {
            None => Err(Status::not_found("", "namespaces", namespace).into()),
            Some(ns) if ns.pointer("/metadata/deletionTimestamp").is_some() => {
                Err(Status::namespace_terminating(&def.group, &def.plural, name, namespace).into())
            }
            Some(_) => Ok(()),
        }
    }

    /// After the namespace delay: deletes every object in the namespace, then the namespace.
    pub(super) fn schedule_namespace_removal(self: &Arc<Self>, namespace: String) {
        let store = self.clone();
        let delay = self.config.namespace_delete_delay;
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    // Like the namespace controller: retry until the objects held by finalizers
                    // are gone.
                    let retry = delay.max(Duration::from_millis(50));
                    let mut wait = delay;
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = store.shutdown.cancelled() => return,
                        }
                        if store.finish_namespace(&namespace) {
                            return;
                        }
                        wait = retry;
                    }
                });
            }
            Err(_) => {
                store.finish_namespace(&namespace);
            }
        }
    }

    /// Deletes the objects of a terminating namespace, then the namespace. Objects with
    /// finalizers are only marked for deletion; while any remain the namespace stays (false).
    pub(super) fn finish_namespace(&self, namespace: &str) -> bool {
        let mut inner = self.lock();
        let ns_key = (String::new(), "namespaces".to_string());
        let still_terminating = inner
            .resources
            .get(&ns_key)
            .and_then(|s| s.objects.get(&(String::new(), namespace.to_string())))
            .is_some_and(|ns| ns.pointer("/metadata/deletionTimestamp").is_some());
        if !still_terminating {
            return true;
        }
        let mut held = false;
        for def in self.registry.all() {
            if !def.namespaced {
                continue;
            }
            let key = key_of(&def);
            let victims: Vec<Value> = match inner.resources.get(&key) {
                Some(state) => state
                    .objects
                    .range((namespace.to_string(), String::new())..)
                    .take_while(|((ns, _), _)| ns == namespace)
                    .map(|(_, v)| Value::clone(v))
                    .collect(),
                None => continue,
            };
            for mut victim in victims {
                let has_finalizers = victim
                    .pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|f| !f.is_empty());
                if !has_finalizers {
                    self.commit(&mut inner, &def, EventType::Deleted, victim, false);
                    continue;
                }
                held = true;
                if victim.pointer("/metadata/deletionTimestamp").is_none() {
                    set_path(
                        &mut victim,
                        &["metadata", "deletionTimestamp"],
                        json!(now_rfc3339()),
                    );
                    set_path(&mut victim, &["metadata", "deletionGracePeriodSeconds"], json!(0));
                    bump_generation(&mut victim);
                    self.commit(&mut inner, &def, EventType::Modified, victim, false);
                }
            }
        }
        if held {
            return false;
        }
        let ns_obj = inner
            .resources
            .get(&ns_key)
            .and_then(|s| s.objects.get(&(String::new(), namespace.to_string())))
            .map(|v| Value::clone(v));
        if let (Some(mut ns_obj), Some(def)) = (ns_obj, self.registry.get("", "v1", "namespaces")) {
            set_path(&mut ns_obj, &["spec", "finalizers"], json!([]));
            self.commit(&mut inner, &def, EventType::Deleted, ns_obj, false);
        }
        true
    }
}
