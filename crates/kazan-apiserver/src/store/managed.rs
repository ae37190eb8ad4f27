//! Server-side apply and `managedFields`, after apimachinery's `pkg/util/managedfields` and
//! sigs.k8s.io/structured-merge-diff (`merge/update.go`, `fieldpath`): every write records which
//! manager owns which fields; an apply merges the applied configuration, fails with 409 when it
//! changes a field another manager owns (unless forced), and removes the fields its manager stopped
//! applying that nobody else owns.
//!
//! List semantics: the keyed lists of the built-in kinds (containers by `name`, ports by
//! `containerPort`...) are associative (`k:` elements), `metadata.finalizers` is a set (`v:`
//! elements), every other list is atomic. Custom resources' `x-kubernetes-list-type` is not read.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::rules::now_rfc3339;
use crate::patch::merge_key;

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    /// A map field: `f:name`.
    Field(String),
    /// An element of an associative list by its key fields (canonical JSON): `k:{"name":"a"}`.
    Key(String),
    /// An element of a set list by its value (JSON): `v:"x"`.
    Value(String),
}

type Path = Vec<Step>;
type FieldSet = BTreeSet<Path>;

/// A manager's entry (`metav1.ManagedFieldsEntry`) as a set.
#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    fields: FieldSet,
}

/// Who writes and how.
#[derive(Clone, Debug)]
pub(crate) struct Manager<'a> {
    /// The field manager's name.
    pub name: &'a str,
    /// The object's `apiVersion` as the request sent it.
    pub api_version: &'a str,
    /// The subresource written (`status`), if any.
    pub subresource: Option<&'a str>,
}

/// A field path as structured-merge-diff prints it: `.spec.containers[name="a"].image`.
fn display(path: &Path) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            Step::Key(k) => {
                let map: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            Step::Value(v) => out.push_str(&format!("[={v}]")),
        }
    }
    out
}

/// The list type of `field` under `parent` (a dotted path).
enum ListType {
    Map(&'static str),
    Set,
    Atomic,
}

fn list_type(parent: &str, field: &str) -> ListType {
    if parent == "metadata" && field == "finalizers" {
        return ListType::Set;
    }
    match merge_key(parent, field) {
        Some(key) => ListType::Map(key),
        None => ListType::Atomic,
    }
}

/// The fields of an object, as the leaves and list elements it sets.
fn field_set(value: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    if let Value::Object(map) = value {
        walk_map(map, &mut Vec::new(), "", &mut set);
    }
    set
}

fn walk_map(map: &Map<String, Value>, prefix: &mut Path, dotted: &str, set: &mut FieldSet) {
    for (key, value) in map {
        prefix.push(Step::Field(key.clone()));
        let child_dotted = if dotted.is_empty() {
            key.clone()
        } else {
            format!("{dotted}.{key}")
        };
        match value {
            Value::Object(child) if !child.is_empty() => walk_map(child, prefix, &child_dotted, set),
            Value::Array(items) => match list_type(dotted, key) {
                ListType::Map(merge) => {
                    for item in items {
                        let Some(k) = item.get(merge) else {
                            continue;
                        };
                        prefix.push(Step::Key(json!({ merge: k }).to_string()));
                        set.insert(prefix.clone());
                        if let Value::Object(fields) = item {
                            walk_map(fields, prefix, &child_dotted, set);
                        }
                        prefix.pop();
                    }
                    if items.is_empty() {
                        set.insert(prefix.clone());
                    }
                }
                ListType::Set => {
                    for item in items {
                        prefix.push(Step::Value(item.to_string()));
                        set.insert(prefix.clone());
                        prefix.pop();
                    }
                    if items.is_empty() {
                        set.insert(prefix.clone());
                    }
                }
                ListType::Atomic => {
                    set.insert(prefix.clone());
                }
            },
            _ => {
                set.insert(prefix.clone());
            }
        }
        prefix.pop();
    }
}

/// The value at a path (for a list element, the element).
fn value_at<'a>(root: &'a Value, path: &Path) -> Option<&'a Value> {
    let mut current = root;
    for step in path {
        current = match step {
            Step::Field(f) => current.get(f)?,
            Step::Key(k) => {
                let key: Map<String, Value> = serde_json::from_str(k).ok()?;
                current
                    .as_array()?
                    .iter()
                    .find(|item| key.iter().all(|(name, v)| item.get(name) == Some(v)))?
            }
            Step::Value(v) => {
                let wanted: Value = serde_json::from_str(v).ok()?;
                current.as_array()?.iter().find(|item| **item == wanted)?
            }
        };
    }
    Some(current)
}

/// Whether a write changes what `path` holds: a leaf's value, or a list element's presence.
fn changes(old: &Value, new: &Value, path: &Path) -> bool {
    match path.last() {
        Some(Step::Key(_) | Step::Value(_)) => value_at(old, path).is_some() != value_at(new, path).is_some(),
        _ => value_at(old, path) != value_at(new, path),
    }
}

/// Removes what a path holds.
fn remove_at(root: &mut Value, path: &Path) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = root;
    for step in parents {
        let next = match step {
            Step::Field(f) => current.get_mut(f),
            Step::Key(k) => {
                let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                current.as_array_mut().and_then(|items| {
                    items
                        .iter_mut()
                        .find(|item| key.iter().all(|(n, v)| item.get(n) == Some(v)))
                })
            }
            Step::Value(_) => None,
        };
        let Some(next) = next else {
            return;
        };
        current = next;
    }
    match last {
        Step::Field(f) => {
            if let Some(map) = current.as_object_mut() {
                map.remove(f);
            }
        }
        Step::Key(k) => {
            let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            if let Some(items) = current.as_array_mut() {
                items.retain(|item| !key.iter().all(|(n, v)| item.get(n) == Some(v)));
            }
        }
        Step::Value(v) => {
            let wanted: Value = serde_json::from_str(v).unwrap_or(Value::Null);
            if let Some(items) = current.as_array_mut() {
                items.retain(|item| *item != wanted);
            }
        }
    }
}

/// Merges an applied configuration into the object: maps field by field, associative lists by
/// key, sets as a union, everything else replaced.
fn merge(target: &mut Value, applied: &Value, dotted: &str) {
    let (Value::Object(out), Value::Object(patch)) = (&mut *target, applied) else {
        *target = applied.clone();
        return;
    };
    for (key, value) in patch {
        let child_dotted = if dotted.is_empty() {
            key.clone()
        } else {
            format!("{dotted}.{key}")
        };
        match (out.get_mut(key), value) {
            (Some(existing @ Value::Object(_)), Value::Object(_)) => merge(existing, value, &child_dotted),
            (Some(Value::Array(existing)), Value::Array(items)) => match list_type(dotted, key) {
                ListType::Map(merge_key) => {
                    for item in items {
                        let position = existing.iter().position(|e| {
                            e.get(merge_key).is_some() && e.get(merge_key) == item.get(merge_key)
                        });
                        match position {
                            Some(i) => merge(&mut existing[i], item, &child_dotted),
                            None => existing.push(item.clone()),
                        }
                    }
                }
                ListType::Set => {
                    for item in items {
                        if !existing.contains(item) {
                            existing.push(item.clone());
                        }
                    }
                }
                ListType::Atomic => *existing = items.clone(),
            },
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The fields the field manager never tracks (identity and server-owned metadata), and `status`
/// (or everything but it) by subresource.
fn tracked(set: FieldSet, status_subresource: bool, subresource: Option<&str>) -> FieldSet {
    const IGNORED_METADATA: &[&str] = &[
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generateName",
    ];
    set.into_iter()
        .filter(|path| match path.as_slice() {
            [Step::Field(f), ..] if f == "apiVersion" || f == "kind" => false,
            [Step::Field(m), Step::Field(f), ..] if m == "metadata" => {
                !IGNORED_METADATA.contains(&f.as_str())
            }
            [Step::Field(m)] if m == "metadata" => false,
            [Step::Field(s), ..] if s == "status" => !status_subresource || subresource == Some("status"),
            _ => subresource != Some("status"),
        })
        .collect()
}

fn encode(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        insert_encoded(&mut root, path);
    }
    Value::Object(root)
}

fn insert_encoded(map: &mut Map<String, Value>, path: &[Step]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let key = match first {
        Step::Field(f) => format!("f:{f}"),
        Step::Key(k) => format!("k:{k}"),
        Step::Value(v) => format!("v:{v}"),
    };
    let next = map.entry(key).or_insert_with(|| json!({}));
    if !next.is_object() {
        *next = json!({});
    }
    if let Some(child) = next.as_object_mut() {
        if rest.is_empty() {
            if matches!(first, Step::Key(_)) {
                child.insert(".".into(), json!({}));
            }
        } else {
            insert_encoded(child, rest);
        }
    }
}

fn decode(value: &Value, prefix: &mut Path, set: &mut FieldSet) {
    let Some(map) = value.as_object() else {
        return;
    };
    if map.is_empty() && !prefix.is_empty() {
        set.insert(prefix.clone());
        return;
    }
    for (key, child) in map {
        if key == "." {
            set.insert(prefix.clone());
            continue;
        }
        let step = if let Some(f) = key.strip_prefix("f:") {
            Step::Field(f.to_string())
        } else if let Some(k) = key.strip_prefix("k:") {
            // Canonical form, whatever order the keys came in.
            let parsed: Value = serde_json::from_str(k).unwrap_or(Value::Null);
            Step::Key(parsed.to_string())
        } else if let Some(v) = key.strip_prefix("v:") {
            Step::Value(v.to_string())
        } else {
            continue;
        };
        prefix.push(step);
        decode(child, prefix, set);
        prefix.pop();
    }
}

fn entries_of(object: &Value) -> Vec<Entry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            let mut fields = FieldSet::new();
            if let Some(v) = e.get("fieldsV1") {
                decode(v, &mut Vec::new(), &mut fields);
            }
            Entry {
                manager: text("manager"),
                operation: text("operation"),
                api_version: text("apiVersion"),
                time: text("time"),
                subresource: e.get("subresource").and_then(Value::as_str).map(str::to_string),
                fields,
            }
        })
        .collect()
}

fn store_entries(object: &mut Value, entries: &[Entry]) {
    let values: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": encode(&e.fields),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if values.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(values));
        }
    }
}

/// The entry of a manager for an operation, created when missing.
fn entry_mut<'a>(entries: &'a mut Vec<Entry>, manager: &Manager<'_>, operation: &str) -> &'a mut Entry {
    let subresource = manager.subresource.map(str::to_string);
    let position = entries.iter().position(|e| {
        e.manager == manager.name
            && e.operation == operation
            && e.subresource == subresource
            && (operation == "Apply" || e.api_version == manager.api_version)
    });
    let index = match position {
        Some(i) => i,
        None => {
            entries.push(Entry {
                manager: manager.name.to_string(),
                operation: operation.to_string(),
                api_version: manager.api_version.to_string(),
                time: String::new(),
                subresource,
                fields: FieldSet::new(),
            });
            entries.len() - 1
        }
    };
    let entry = &mut entries[index];
    entry.api_version = manager.api_version.to_string();
    entry.time = now_rfc3339();
    entry
}

/// An `Update` (create, replace, non-apply patch): the manager takes the fields the write
/// changed; the others lose them.
pub(crate) fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &Manager<'_>,
    status_subresource: bool,
) {
    let mut entries = old.map(entries_of).unwrap_or_default();
    let empty = json!({});
    let before = old.unwrap_or(&empty);
    let new_set = tracked(field_set(new), status_subresource, manager.subresource);
    let old_set = tracked(field_set(before), status_subresource, manager.subresource);
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| changes(before, new, p))
        .cloned()
        .collect();
    let removed: FieldSet = old_set.difference(&new_set).cloned().collect();
    if changed.is_empty() && removed.is_empty() {
        store_entries(new, &entries);
        return;
    }
    for entry in &mut entries {
        entry
            .fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    let entry = entry_mut(&mut entries, manager, "Update");
    entry.fields.extend(changed);
    store_entries(new, &entries);
}

/// A field another manager owns that an apply would change.
pub(crate) struct Conflict {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    path: String,
}

impl Conflict {
    /// `printManager` (apimachinery internal/conflict.go).
    fn manager_text(&self) -> String {
        let mut text = format!("{:?}", self.manager);
        if let Some(s) = &self.subresource {
            text = format!("{text} with subresource {s:?}");
        }
        if self.operation == "Update" {
            text = format!("{text} using {} at {}", self.api_version, self.time);
        }
        text
    }
}

/// The 409 message of `NewConflictError` (apimachinery internal/conflict.go) and its causes.
pub(crate) fn conflict_message(conflicts: &[Conflict]) -> (String, Vec<(String, String)>) {
    let causes = conflicts
        .iter()
        .map(|c| (format!("conflict with {}", c.manager_text()), c.path.clone()))
        .collect();
    let body = match conflicts {
        [one] => format!("conflict with {}: {}", one.manager_text(), one.path),
        many => {
            let mut by_manager: BTreeMap<String, Vec<&str>> = BTreeMap::new();
            for c in many {
                by_manager.entry(c.manager_text()).or_default().push(&c.path);
            }
            let mut lines = Vec::new();
            for (manager, paths) in by_manager {
                lines.push(format!("conflicts with {manager}:"));
                lines.extend(paths.iter().map(|p| format!("- {p}")));
            }
            lines.join("\n")
        }
    };
    let plural = if conflicts.len() == 1 { "" } else { "s" };
    (
        format!("Apply failed with {} conflict{plural}: {body}", conflicts.len()),
        causes,
    )
}

/// Server-side apply of `applied` onto `live` (None: the object is created) by `manager`.
pub(crate) fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &Manager<'_>,
    force: bool,
    status_subresource: bool,
) -> Result<Value, Vec<Conflict>> {
    let empty = json!({});
    let live_value = live.unwrap_or(&empty);
    let mut entries = live.map(entries_of).unwrap_or_default();
    let applied_set = tracked(field_set(applied), status_subresource, manager.subresource);
    let is_mine = |e: &Entry| {
        e.manager == manager.name && e.operation == "Apply" && e.subresource.as_deref() == manager.subresource
    };
    let mut conflicts = Vec::new();
    for entry in entries.iter().filter(|e| !is_mine(e)) {
        for path in entry.fields.intersection(&applied_set) {
            let differs = match path.last() {
                Some(Step::Key(_) | Step::Value(_)) => value_at(live_value, path).is_none(),
                _ => value_at(live_value, path) != value_at(applied, path),
            };
            if differs {
                conflicts.push(Conflict {
                    manager: entry.manager.clone(),
                    operation: entry.operation.clone(),
                    api_version: entry.api_version.clone(),
                    time: entry.time.clone(),
                    subresource: entry.subresource.clone(),
                    path: display(path),
                });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let previous: FieldSet = entries
        .iter()
        .filter(|e| is_mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    if force {
        for entry in entries.iter_mut().filter(|e| !is_mine(e)) {
            entry
                .fields
                .retain(|p| !applied_set.contains(p) || value_at(live_value, p) == value_at(applied, p));
        }
    }
    let others: FieldSet = entries
        .iter()
        .filter(|e| !is_mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let mut result = live_value.clone();
    // Fields this manager applied before and dropped now, that nobody else owns, go; a removed
    // list element takes its fields with it.
    let mut dropped: Vec<&Path> = previous
        .iter()
        .filter(|p| !applied_set.contains(*p) && !others.contains(*p))
        .filter(|p| !applied_set.iter().any(|a| a.starts_with(p)))
        .filter(|p| !others.iter().any(|o| o.starts_with(p)))
        .collect();
    dropped.sort_by_key(|p| p.len());
    let mut removed: Vec<&Path> = Vec::new();
    for path in dropped {
        if removed.iter().any(|r| path.starts_with(r)) {
            continue;
        }
        remove_at(&mut result, path);
        removed.push(path);
    }
    let mut config = applied.clone();
    if let Some(meta) = config.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    merge(&mut result, &config, "");
    let entry = entry_mut(&mut entries, manager, "Apply");
    entry.fields = applied_set;
    store_entries(&mut result, &entries);
    Ok(result)
}
