//! The object operations: get, create, update, patch, delete, list.

use super::crds::{CRD_GROUP, CRD_PLURAL, crd_resource_defs, crd_storage_key, prepare_crd_status};
use super::fanout::EventType;
use super::managed::{self, Manager};
use super::namespaces::prepare_namespace;
use super::rules::{
    generate_name, is_kind, metadata_mut, now_rfc3339, object_key, prepare_typed, resolve_namespace,
    scope_ns, set_path, validate_name, with_type,
};
use super::schema;
use super::state::{Inner, Store, key_of};
use super::strategy::{self, is_builtin};
use crate::error::StoreError;
use crate::patch::{self, PatchKind};
use crate::registry::ResourceDef;
use crate::status::{FieldCause, Status};
use serde_json::{Value, json};
use std::sync::Arc;

/// The namespaces that may not be deleted (`NamespaceLifecycle`'s immortal namespaces).
const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// What a DELETE asks for (`metav1.DeleteOptions`).
#[derive(Clone, Debug, Default)]
pub(crate) struct DeleteOptions {
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `gracePeriodSeconds` (Pods; None = the Pod's own).
    pub grace_period: Option<i64>,
    /// `propagationPolicy`: `Foreground`, `Background` or `Orphan`.
    pub propagation: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// The text of a storage `InvalidObjError` (`apiserver/pkg/storage/errors.go`), with the etcd key
/// the real server would name.
fn storage_invalid(def: &ResourceDef, namespace: &str, name: &str, message: &str) -> String {
    let prefix = match (def.group.as_str(), def.plural.as_str()) {
        ("", "services") => "services/specs".to_string(),
        ("", "nodes") => "minions".to_string(),
        _ if is_builtin(def) => def.plural.clone(),
        _ => format!("{}/{}", def.group, def.plural),
    };
    let key = if def.namespaced {
        format!("/registry/{prefix}/{namespace}/{name}")
    } else {
        format!("/registry/{prefix}/{name}")
    };
    format!(
        "StorageError: invalid object, Code: 4, Key: {key}, ResourceVersion: 0, AdditionalErrorMsg: {message}"
    )
}

/// `podStrategy.CheckGracefulDelete` (pkg/registry/core/pod/strategy.go): the asked period, else
/// the Pod's `terminationGracePeriodSeconds`; 0 for a Pod not scheduled or already terminated.
fn pod_grace_period(pod: &Value, asked: Option<i64>) -> i64 {
    let period = asked.unwrap_or_else(|| {
        pod.pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    });
    let scheduled = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let terminated = matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    match period {
        _ if !scheduled || terminated => 0,
        p if p < 0 => 1,
        p => p,
    }
}

/// `shouldUpdateFinalizers` (registry/generic/registry/store.go): `Orphan` adds the `orphan`
/// finalizer, `Foreground` the `foregroundDeletion` one, `Background` removes both; true when the
/// finalizers changed.
fn propagation_finalizers(object: &mut Value, policy: Option<&str>) -> bool {
    let (add, remove): (Option<&str>, &[&str]) = match policy {
        Some("Orphan") => (Some(ORPHAN), &[FOREGROUND]),
        Some("Foreground") => (Some(FOREGROUND), &[ORPHAN]),
        Some("Background") => (None, &[ORPHAN, FOREGROUND]),
        _ => return false,
    };
    let before: Vec<String> = object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let mut after: Vec<String> = before
        .iter()
        .filter(|f| !remove.contains(&f.as_str()))
        .cloned()
        .collect();
    if let Some(add) = add
        && !after.iter().any(|f| f == add)
    {
        after.push(add.to_string());
    }
    if after == before {
        return false;
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if after.is_empty() {
            meta.remove("finalizers");
        } else {
            meta.insert("finalizers".into(), json!(after));
        }
    }
    true
}

/// The finalizer that orphans dependents.
pub(crate) const ORPHAN: &str = "orphan";
/// The finalizer that waits for dependents to be deleted.
pub(crate) const FOREGROUND: &str = "foregroundDeletion";

/// `now + seconds` in RFC 3339.
fn rfc3339_after(seconds: i64) -> String {
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(seconds);
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The 409 of a conflicting apply (`NewConflictError`, apimachinery internal/conflict.go).
fn apply_conflict(conflicts: &[managed::Conflict]) -> StoreError {
    let (message, causes) = managed::conflict_message(conflicts);
    let causes: Vec<Value> = causes
        .into_iter()
        .map(|(message, field)| json!({"reason": "FieldManagerConflict", "message": message, "field": field}))
        .collect();
    Status::failure(409, "Conflict", message)
        .with_details(json!({"causes": causes}))
        .into()
}

/// `markAsDeleting` (registry/generic/registry/store.go): the first deletion mark moves a
/// `generation` that is set.
pub(super) fn bump_generation(object: &mut Value) {
    if let Some(generation) = object.pointer("/metadata/generation").and_then(Value::as_i64)
        && generation > 0
    {
        set_path(object, &["metadata", "generation"], json!(generation + 1));
    }
}

/// How a write is done.
#[derive(Clone, Debug, Default)]
pub(crate) struct WriteOptions {
    /// The field manager (`fieldManager`, else the User-Agent's product): writes over HTTP record
    /// `managedFields` under it; None (the direct API) records nothing.
    pub manager: Option<String>,
    /// `force=true` on an apply: take the conflicting fields.
    pub force: bool,
    /// Only `status` changes (the `/status` subresource).
    pub status_only: bool,
    /// Answer without storing (`dryRun=All`).
    pub dry_run: bool,
    /// Written through the direct Rust API: `status` is stored as given (tests set up the state a
    /// controller or kubelet would have written), not reset or kept as over HTTP.
    pub direct: bool,
}

/// What a DELETE did.
pub(crate) enum DeleteOutcome {
    /// Removed now; the last state (with the delete's version).
    Deleted(Value),
    /// Marked for deletion (finalizers, namespace termination); the object as it is now.
    Pending(Value),
}

impl Store {
    /// One object.
    pub(crate) fn get(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, StoreError> {
        let mut inner = self.lock();
        let state = Self::state(&mut inner, &key_of(def));
        state
            .objects
            .get(&(scope_ns(def, namespace), name.to_string()))
            .map(|v| with_type(def, v))
            .ok_or_else(|| Status::not_found(&def.group, &def.plural, name).into())
    }

    /// Creates an object (POST). `namespace` is the request's namespace (None = take the object's).
    pub(crate) fn create(
        self: &Arc<Self>,
        def: &ResourceDef,
        namespace: Option<&str>,
        mut object: Value,
        options: WriteOptions,
    ) -> Result<Value, StoreError> {
        let dry_run = options.dry_run;
        prepare_typed(def, &mut object)?;
        let ns = resolve_namespace(def, namespace, &object)?;
        let meta = metadata_mut(&mut object)?;
        if def.namespaced {
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        let mut inner = self.lock();
        let name = match meta.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            Some(name) => name.to_string(),
            None => match meta
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                Some(prefix) => {
                    let state = Self::state(&mut inner, &key_of(def));
                    let mut name = generate_name(prefix);
                    while state.objects.contains_key(&(ns.clone(), name.clone())) {
                        name = generate_name(prefix);
                    }
                    name
                }
                None => {
                    return Err(Status::invalid(
                        &def.group,
                        &def.kind,
                        "",
                        &[FieldCause::required(
                            "metadata.name",
                            "name or generateName is required",
                        )],
                    )
                    .into());
                }
            },
        };
        validate_name(def, &name)?;
        Self::check_namespace(&inner, def, &ns, &name)?;
        meta.insert("name".into(), json!(name));
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        for server_owned in ["deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
            meta.remove(server_owned);
        }
        strategy::prepare_for_create(def, &mut object, options.direct)?;
        self.check_custom_resource(&mut inner, def, &mut object)?;
        // After validation, as the storage's create comes after `BeforeCreate`.
        let state = Self::state(&mut inner, &key_of(def));
        if state.objects.contains_key(&(ns.clone(), name.clone())) {
            return Err(Status::already_exists(&def.group, &def.plural, &name).into());
        }
        if let Some(name) = options.manager.as_deref() {
            let api_version = def.api_version();
            let manager = Manager {
                name,
                api_version: &api_version,
                subresource: None,
            };
            managed::record_update(None, &mut object, &manager, def.has_status());
        }
        if is_kind(def, "", "namespaces") {
            prepare_namespace(&mut object, &name);
        }
        if is_kind(def, CRD_GROUP, CRD_PLURAL) {
            let defs = crd_resource_defs(&object)?;
            prepare_crd_status(&mut object);
            if !dry_run {
                self.register_crd(&mut inner, &defs);
            }
        }
        let created = self.commit(&mut inner, def, EventType::Added, object, dry_run);
        Ok(with_type(def, &created))
    }

    /// Replaces an object (PUT). Conflict if the body's resourceVersion is set and stale.
    pub(crate) fn update(
        self: &Arc<Self>,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        mut object: Value,
        options: WriteOptions,
    ) -> Result<Value, StoreError> {
        let status_only = options.status_only;
        prepare_typed(def, &mut object)?;
        let ns = scope_ns(def, namespace);
        {
            let meta = metadata_mut(&mut object)?;
            match meta.get("name").and_then(Value::as_str) {
                Some(n) if n != name => {
                    return Err(Status::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    ))
                    .into());
                }
                _ => {
                    meta.insert("name".into(), json!(name));
                }
            }
            match meta.get("namespace").and_then(Value::as_str) {
                Some(n) if def.namespaced && !n.is_empty() && n != ns => {
                    return Err(Status::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    )
                    .into());
                }
                _ if def.namespaced => {
                    meta.insert("namespace".into(), json!(ns));
                }
                _ => {
                    meta.remove("namespace");
                }
            }
        }
        let mut inner = self.lock();
        let state = Self::state(&mut inner, &key_of(def));
        let existing = state
            .objects
            .get(&(ns.clone(), name.to_string()))
            .cloned()
            .ok_or_else(|| StoreError::from(Status::not_found(&def.group, &def.plural, name)))?;
        if let Some(rv) = object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && !rv.is_empty()
            && Some(rv)
                != existing
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return Err(Status::conflict(&def.group, &def.plural, name).into());
        }
        let object = if status_only {
            let mut merged = Value::clone(&existing);
            match object.get("status") {
                Some(status) => set_path(&mut merged, &["status"], status.clone()),
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            merged
        } else {
            object
        };
        self.write_updated(&mut inner, def, &existing, object, options)
    }

    /// Finishes an update: keeps server-owned fields, bumps `generation` when the spec changed,
    /// skips no-op writes, and deletes an object whose last finalizer was removed while it was
    /// being deleted.
    pub(super) fn write_updated(
        self: &Arc<Self>,
        inner: &mut Inner,
        def: &ResourceDef,
        existing: &Value,
        mut object: Value,
        options: WriteOptions,
    ) -> Result<Value, StoreError> {
        let dry_run = options.dry_run;
        let old_meta = existing.get("metadata").cloned().unwrap_or_else(|| json!({}));
        {
            let meta = metadata_mut(&mut object)?;
            // `rest.DefaultUpdatedObjectInfo` makes a uid in the body a precondition.
            if let (Some(asked), Some(actual)) = (
                meta.get("uid").and_then(Value::as_str).filter(|u| !u.is_empty()),
                old_meta.get("uid").and_then(Value::as_str),
            ) && asked != actual
            {
                let name = old_meta.get("name").and_then(Value::as_str).unwrap_or_default();
                let ns = old_meta
                    .get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let why = storage_invalid(
                    def,
                    ns,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {asked}, UID in object meta: {actual}"
                    ),
                );
                return Err(Status::conflict_because(&def.group, &def.plural, name, &why).into());
            }
            // `ValidateNoNewFinalizers` (apimachinery/pkg/api/validation/objectmeta.go).
            if old_meta.get("deletionTimestamp").is_some() {
                let strings = |v: Option<&Value>| -> Vec<String> {
                    v.and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                        .unwrap_or_default()
                };
                let old_finalizers = strings(old_meta.get("finalizers"));
                let mut added: Vec<String> = strings(meta.get("finalizers"))
                    .into_iter()
                    .filter(|f| !old_finalizers.contains(f))
                    .collect();
                added.sort();
                added.dedup();
                if !added.is_empty() {
                    let list = added
                        .iter()
                        .map(|f| format!("{f:?}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let name = old_meta.get("name").and_then(Value::as_str).unwrap_or_default();
                    return Err(Status::invalid(
                        &def.group,
                        &def.kind,
                        name,
                        &[FieldCause::forbidden(
                            "metadata.finalizers",
                            &format!(
                                "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"
                            ),
                        )],
                    )
                    .into());
                }
            }
            for owned in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                match old_meta.get(owned) {
                    Some(v) => meta.insert(owned.into(), v.clone()),
                    None => meta.remove(owned),
                };
            }
            meta.insert(
                "resourceVersion".into(),
                old_meta.get("resourceVersion").cloned().unwrap_or(Value::Null),
            );
            if meta.get("generateName").is_none()
                && let Some(g) = old_meta.get("generateName")
            {
                meta.insert("generateName".into(), g.clone());
            }
        }
        if options.status_only {
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                match old_meta.get("generation") {
                    Some(g) => meta.insert("generation".into(), g.clone()),
                    None => meta.remove("generation"),
                };
            }
        } else {
            if options.manager.is_some() {
                // A patch's unknown fields are dropped as the decoder into the Go type drops them
                // (a replace's were already checked, with their warnings, by the handler).
                let _ = crate::protobuf::check_fields(def, &mut object);
            }
            strategy::prepare_for_update(def, existing, &mut object, options.direct)?;
            strategy::validate_update(def, existing, &object)?;
            self.check_custom_resource(inner, def, &mut object)?;
        }
        if is_kind(def, "", "namespaces") {
            let name = object_key(&object).1;
            prepare_namespace(&mut object, &name);
        }
        if let Some(name) = options.manager.as_deref() {
            let api_version = def.api_version();
            let manager = Manager {
                name,
                api_version: &api_version,
                subresource: options.status_only.then_some("status"),
            };
            managed::record_update(Some(existing), &mut object, &manager, def.has_status());
        } else if object.pointer("/metadata/managedFields").is_none()
            && let Some(fields) = existing.pointer("/metadata/managedFields")
        {
            set_path(&mut object, &["metadata", "managedFields"], fields.clone());
        }
        if object == *existing {
            return Ok(with_type(def, existing));
        }
        let finalizers_left = object
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if is_kind(def, CRD_GROUP, CRD_PLURAL) {
            let defs = crd_resource_defs(&object)?;
            prepare_crd_status(&mut object);
            if !dry_run {
                let old_defs = crd_resource_defs(existing).unwrap_or_default();
                for old in &old_defs {
                    if !defs.iter().any(|d| d.version == old.version) {
                        self.registry.unregister(&old.group, &old.version, &old.plural);
                    }
                }
                self.register_crd(inner, &defs);
            }
        }
        if object.pointer("/metadata/deletionTimestamp").is_some()
            && !finalizers_left
            && !is_kind(def, "", "namespaces")
        {
            let deleted = self.remove_now(inner, def, object, dry_run);
            return Ok(with_type(def, &deleted));
        }
        let updated = self.commit(inner, def, EventType::Modified, object, dry_run);
        Ok(with_type(def, &updated))
    }

    /// Patches an object (PATCH). Apply patches create the object when missing (`true` = created).
    pub(crate) fn patch(
        self: &Arc<Self>,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        kind: PatchKind,
        patch_doc: &Value,
        options: WriteOptions,
    ) -> Result<(Value, bool), StoreError> {
        let WriteOptions { status_only, .. } = options;
        let ns = scope_ns(def, namespace);
        // Patches are applied under the store lock: nothing can change in between.
        let mut inner = self.lock();
        let state = Self::state(&mut inner, &key_of(def));
        let existing = state.objects.get(&(ns, name.to_string())).cloned();
        let managed_apply = kind == PatchKind::Apply && options.manager.is_some();
        let Some(current) = existing else {
            drop(inner);
            if kind == PatchKind::Apply && !status_only {
                let mut object = patch_doc.clone();
                let mut options = options;
                if let Some(name) = options.manager.take() {
                    let api_version = def.api_version();
                    let manager = Manager {
                        name: &name,
                        api_version: &api_version,
                        subresource: None,
                    };
                    object = managed::apply(None, &object, &manager, options.force, def.has_status())
                        .map_err(|c| apply_conflict(&c))?;
                }
                if let Some(n) = object.pointer("/metadata/name").and_then(Value::as_str)
                    && n != name
                {
                    return Err(Status::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    ))
                    .into());
                }
                set_path(&mut object, &["metadata", "name"], json!(name));
                return self.create(def, namespace, object, options).map(|o| (o, true));
            }
            return Err(Status::not_found(&def.group, &def.plural, name).into());
        };
        let mut options = options;
        let patched = if managed_apply {
            let name = options.manager.take().unwrap_or_default();
            let api_version = def.api_version();
            let manager = Manager {
                name: &name,
                api_version: &api_version,
                subresource: status_only.then_some("status"),
            };
            managed::apply(
                Some(&current),
                patch_doc,
                &manager,
                options.force,
                def.has_status(),
            )
            .map_err(|c| apply_conflict(&c))?
        } else {
            patch::apply(kind, &current, patch_doc).map_err(|e| match e {
                patch::PatchError::Decode(m) => StoreError::from(Status::bad_request(m)),
                patch::PatchError::Apply(m) => StoreError::from(Status::failure(422, "Invalid", m)),
            })?
        };
        let applied_fields = managed_apply
            .then(|| patched.pointer("/metadata/managedFields").cloned())
            .flatten();
        let current_rv = current
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str);
        let asked_rv = patched
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str);
        if asked_rv.is_some_and(|asked| !asked.is_empty() && Some(asked) != current_rv) {
            // The patch carries a stale resourceVersion precondition.
            return Err(Status::conflict(&def.group, &def.plural, name).into());
        }
        let mut patched = patched;
        prepare_typed(def, &mut patched)?;
        // `checkName` (apiserver/pkg/endpoints/handlers/rest.go): a patch cannot rename.
        match patched.pointer("/metadata/name").and_then(Value::as_str) {
            Some(n) if n != name => {
                return Err(Status::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                ))
                .into());
            }
            _ => set_path(&mut patched, &["metadata", "name"], json!(name)),
        }
        let object = if status_only {
            let mut merged = Value::clone(&current);
            match patched.get("status") {
                Some(status) => set_path(&mut merged, &["status"], status.clone()),
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            merged
        } else {
            patched
        };
        let object = match applied_fields {
            // The apply's own managedFields, not the live ones.
            Some(fields) => {
                let mut object = object;
                set_path(&mut object, &["metadata", "managedFields"], fields);
                object
            }
            None => object,
        };
        self.write_updated(&mut inner, def, &current, object, options)
            .map(|o| (o, false))
    }

    /// Deletes an object: at once, or by marking it (finalizers; namespaces terminate and are
    /// removed with their objects after the configured delay).
    pub(crate) fn delete(
        self: &Arc<Self>,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<DeleteOutcome, StoreError> {
        let preconditions = options;
        let dry_run = options.dry_run;
        let ns = scope_ns(def, namespace);
        let mut inner = self.lock();
        let state = Self::state(&mut inner, &key_of(def));
        let existing = state
            .objects
            .get(&(ns.clone(), name.to_string()))
            .cloned()
            .ok_or_else(|| StoreError::from(Status::not_found(&def.group, &def.plural, name)))?;
        // `storage.Preconditions.Check` (apiserver/pkg/storage/interfaces.go).
        let actual = |field: &str| {
            existing
                .pointer(&format!("/metadata/{field}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        if let Some(uid) = preconditions.uid.as_deref()
            && uid != actual("uid")
        {
            let why = storage_invalid(
                def,
                &ns,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    actual("uid")
                ),
            );
            return Err(Status::conflict_because(&def.group, &def.plural, name, &why).into());
        }
        if let Some(rv) = preconditions.resource_version.as_deref()
            && rv != actual("resourceVersion")
        {
            let why = storage_invalid(
                def,
                &ns,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    actual("resourceVersion")
                ),
            );
            return Err(Status::conflict_because(&def.group, &def.plural, name, &why).into());
        }
        if is_kind(def, "", "namespaces") && PROTECTED_NAMESPACES.contains(&name) {
            // The NamespaceLifecycle admission plugin.
            return Err(Status::forbidden(
                &def.group,
                &def.plural,
                name,
                "this namespace may not be deleted",
            )
            .into());
        }
        let is_pod = is_kind(def, "", "pods");
        let grace = if is_pod {
            pod_grace_period(&existing, options.grace_period)
        } else {
            0
        };
        let mut object = Value::clone(&existing);
        let finalizers_changed = propagation_finalizers(&mut object, options.propagation.as_deref());
        let has_finalizers = object
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if existing.pointer("/metadata/deletionTimestamp").is_some() {
            // Already being deleted: a Pod's grace period may only get shorter (`BeforeDelete`,
            // apiserver/pkg/registry/rest/delete.go); the finalizers follow the new policy.
            let current = existing
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if is_pod && grace < current {
                if grace == 0 && !has_finalizers {
                    let deleted = self.remove_now(&mut inner, def, object, dry_run);
                    return Ok(DeleteOutcome::Deleted(with_type(def, &deleted)));
                }
                set_path(
                    &mut object,
                    &["metadata", "deletionTimestamp"],
                    json!(rfc3339_after(grace)),
                );
                set_path(
                    &mut object,
                    &["metadata", "deletionGracePeriodSeconds"],
                    json!(grace),
                );
                let marked = self.commit(&mut inner, def, EventType::Modified, object, dry_run);
                drop(inner);
                if grace > 0 && !dry_run {
                    self.schedule_grace_end(def, &marked, grace);
                }
                return Ok(DeleteOutcome::Pending(with_type(def, &marked)));
            }
            if finalizers_changed {
                let updated = self.commit(&mut inner, def, EventType::Modified, object, dry_run);
                return Ok(DeleteOutcome::Pending(with_type(def, &updated)));
            }
            return Ok(DeleteOutcome::Pending(with_type(def, &existing)));
        }
        if grace > 0 {
            // Graceful deletion: the Pod stays until its grace period ends (the kubelet's part,
            // done by the server itself here).
            set_path(
                &mut object,
                &["metadata", "deletionTimestamp"],
                json!(rfc3339_after(grace)),
            );
            set_path(
                &mut object,
                &["metadata", "deletionGracePeriodSeconds"],
                json!(grace),
            );
            bump_generation(&mut object);
            let marked = self.commit(&mut inner, def, EventType::Modified, object, dry_run);
            drop(inner);
            if !dry_run {
                self.schedule_grace_end(def, &marked, grace);
            }
            return Ok(DeleteOutcome::Pending(with_type(def, &marked)));
        }
        let is_namespace = is_kind(def, "", "namespaces");
        if has_finalizers || is_namespace {
            let mut marked = object;
            set_path(
                &mut marked,
                &["metadata", "deletionTimestamp"],
                json!(now_rfc3339()),
            );
            set_path(&mut marked, &["metadata", "deletionGracePeriodSeconds"], json!(0));
            bump_generation(&mut marked);
            if is_namespace {
                set_path(&mut marked, &["status", "phase"], json!("Terminating"));
            }
            let marked = self.commit(&mut inner, def, EventType::Modified, marked, dry_run);
            drop(inner);
            if is_namespace && !dry_run {
                self.schedule_namespace_removal(name.to_string());
            }
            return Ok(DeleteOutcome::Pending(with_type(def, &marked)));
        }
        let deleted = self.remove_now(&mut inner, def, Value::clone(&existing), dry_run);
        Ok(DeleteOutcome::Deleted(with_type(def, &deleted)))
    }

    /// After a Pod's grace period: what the kubelet's final DELETE (grace 0) does, unless the Pod
    /// was replaced or its deletion changed meanwhile.
    fn schedule_grace_end(self: &Arc<Self>, def: &ResourceDef, pod: &Value, grace: i64) {
        let store = self.clone();
        let def = def.clone();
        let (ns, name) = object_key(pod);
        let uid = pod
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let wait = std::time::Duration::from_secs(u64::try_from(grace).unwrap_or(0));
        handle.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = store.shutdown.cancelled() => return,
            }
            let mut inner = store.lock();
            let state = Self::state(&mut inner, &key_of(&def));
            let Some(current) = state.objects.get(&(ns, name)).cloned() else {
                return;
            };
            let same = current.pointer("/metadata/uid").and_then(Value::as_str) == Some(uid.as_str())
                && current
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    == Some(grace);
            if !same {
                return;
            }
            let mut last = Value::clone(&current);
            let held = last
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
            if held {
                set_path(
                    &mut last,
                    &["metadata", "deletionTimestamp"],
                    json!(now_rfc3339()),
                );
                set_path(&mut last, &["metadata", "deletionGracePeriodSeconds"], json!(0));
                store.commit(&mut inner, &def, EventType::Modified, last, false);
            } else {
                store.remove_now(&mut inner, &def, last, false);
            }
        });
    }

    /// Removes an object now (DELETED with `last` as content and a new version).
    pub(super) fn remove_now(
        &self,
        inner: &mut Inner,
        def: &ResourceDef,
        last: Value,
        dry_run: bool,
    ) -> Arc<Value> {
        if is_kind(def, CRD_GROUP, CRD_PLURAL) && !dry_run {
            for old in crd_resource_defs(&last).unwrap_or_default() {
                self.registry.unregister(&old.group, &old.version, &old.plural);
            }
            let key = crd_storage_key(&last);
            if let Some(key) = key {
                inner.resources.remove(&key);
                inner.removed_at.insert(key, inner.rv + 1);
            }
        }
        self.commit(inner, def, EventType::Deleted, last, dry_run)
    }

    /// A custom resource against its CRD's schema (pruned, defaulted, validated; 422 when
    /// invalid). Kinds without a CRD (built-in, registered from Rust) pass as they are.
    fn check_custom_resource(
        &self,
        inner: &mut Inner,
        def: &ResourceDef,
        object: &mut Value,
    ) -> Result<(), StoreError> {
        if is_builtin(def) {
            return Ok(());
        }
        let crd_key = (CRD_GROUP.to_string(), CRD_PLURAL.to_string());
        let crd = Self::state(inner, &crd_key)
            .objects
            .get(&(String::new(), format!("{}.{}", def.plural, def.group)))
            .cloned();
        let Some(crd) = crd else {
            return Ok(());
        };
        let schema = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .and_then(|versions| {
                versions
                    .iter()
                    .find(|v| v.get("name").and_then(Value::as_str) == Some(def.version.as_str()))
            })
            .and_then(|v| v.pointer("/schema/openAPIV3Schema"));
        let Some(schema) = schema else {
            return Ok(());
        };
        let causes = schema::apply_schema(schema, object);
        if causes.is_empty() {
            return Ok(());
        }
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Err(Status::invalid(&def.group, &def.kind, name, &causes).into())
    }

    /// Binds a Pod to a node (`BindingREST.setPodHostAndAnnotations`,
    /// pkg/registry/core/pod/storage/storage.go): `spec.nodeName` and `PodScheduled=True`.
    pub(crate) fn bind(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
        node: &str,
        dry_run: bool,
    ) -> Result<(), StoreError> {
        let ns = scope_ns(def, namespace);
        let mut inner = self.lock();
        let state = Self::state(&mut inner, &key_of(def));
        let existing = state
            .objects
            .get(&(ns, name.to_string()))
            .cloned()
            .ok_or_else(|| StoreError::from(Status::not_found(&def.group, &def.plural, name)))?;
        if existing.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(Status::conflict_because(
                "",
                "pods/binding",
                name,
                &format!("pod {name} is being deleted, cannot be assigned to a host"),
            )
            .into());
        }
        if let Some(bound) = existing
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(Status::conflict_because(
                "",
                "pods/binding",
                name,
                &format!("pod {name} is already assigned to node \"{bound}\""),
            )
            .into());
        }
        let mut bound = Value::clone(&existing);
        set_path(&mut bound, &["spec", "nodeName"], json!(node));
        let mut conditions: Vec<Value> = bound
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        conditions.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
        conditions.push(json!({"type": "PodScheduled", "status": "True",
                               "lastProbeTime": null, "lastTransitionTime": now_rfc3339()}));
        set_path(&mut bound, &["status", "conditions"], json!(conditions));
        self.commit(&mut inner, def, EventType::Modified, bound, dry_run);
        Ok(())
    }

    /// Every object of a resource (optionally in one namespace), sorted.
    pub(crate) fn list(&self, def: &ResourceDef, namespace: Option<&str>) -> Vec<Value> {
        let mut inner = self.lock();
        let state = Self::state(&mut inner, &key_of(def));
        state
            .objects
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|want| !def.namespaced || ns == want))
            .map(|(_, v)| with_type(def, v))
            .collect()
    }
}
