//! `kubectl get` output: `Table` answers (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`)
//! with the columns kubectl shows for each kind.
//!
//! kubectl prints a Table's cells as they come, so the server decides what `kubectl get` shows:
//! the columns are NAME, the kind's printer columns (from the [`ResourceDef`]; priority 0 is the
//! default output, higher only with `-o wide`) and AGE. Each row's `object` is a
//! `PartialObjectMetadata` carrying the object's metadata, from which kubectl takes the NAMESPACE
//! column of `-A` and the labels of `--show-labels`.

mod jsonpath;
mod kinds;
mod printers;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::registry::{PrinterColumn, ResourceDef};

/// Whether the `Accept` header asks for a Table (`meta.k8s.io` `v1` or `v1beta1`, JSON encoded).
pub(crate) fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        if !media.eq_ignore_ascii_case("application/json") {
            return false;
        }
        let (mut group, mut version, mut kind) = (None, None, None);
        for param in parts {
            match param.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("g", v)) => group = Some(v),
                Some(("v", v)) => version = Some(v),
                Some(("as", v)) => kind = Some(v),
                _ => {}
            }
        }
        kind == Some("Table")
            && group == Some("meta.k8s.io")
            && matches!(version, Some("v1") | Some("v1beta1"))
    })
}

/// A `meta.k8s.io/v1` Table of `objects`: for a list (with `list_metadata`, the list's `metadata`),
/// for one object, or for one watch event (one row). Rows carry `PartialObjectMetadata`.
pub(crate) fn to_table(
    def: &ResourceDef,
    objects: &[&serde_json::Value],
    list_metadata: Option<&serde_json::Value>,
) -> serde_json::Value {
    to_table_at(def, objects, list_metadata, Timestamp::now())
}

/// [`to_table`] with the current time given, so ages are reproducible in tests.
pub(crate) fn to_table_at(
    def: &ResourceDef,
    objects: &[&Value],
    list_metadata: Option<&Value>,
    now: Timestamp,
) -> Value {
    let columns = columns(def);
    let column_definitions: Vec<Value> = columns.iter().map(Column::definition).collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let cells: Vec<Value> = columns.iter().map(|c| c.cell(def, object, now)).collect();
            json!({
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
                },
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": table_metadata(objects, list_metadata),
        "columnDefinitions": column_definitions,
        "rows": rows,
    })
}

/// A list's `resourceVersion`, `continue` and `remainingItemCount`; for a single object, its
/// `resourceVersion` (as the real server does).
fn table_metadata(objects: &[&Value], list_metadata: Option<&Value>) -> Value {
    let mut metadata = Map::new();
    match list_metadata {
        Some(list) => {
            for key in ["resourceVersion", "continue", "remainingItemCount"] {
                if let Some(value) = list.get(key).filter(|v| !v.is_null() && *v != "") {
                    metadata.insert(key.to_string(), value.clone());
                }
            }
        }
        None => {
            if let [object] = objects
                && let Some(rv) = object.pointer("/metadata/resourceVersion")
            {
                metadata.insert("resourceVersion".to_string(), rv.clone());
            }
        }
    }
    Value::Object(metadata)
}

/// Where a column's cells come from.
#[derive(Debug)]
enum Source<'a> {
    /// `metadata.name`.
    Name,
    /// The age of `metadata.creationTimestamp`, as kubectl writes durations.
    Age,
    /// A printer column of the kind.
    Printer(&'a PrinterColumn),
    /// A column of a built-in kind whose whole column set [`kinds`] defines.
    Kind(&'static kinds::KindColumn),
}

#[derive(Debug)]
struct Column<'a> {
    name: &'a str,
    column_type: &'a str,
    format: &'a str,
    description: &'a str,
    priority: i32,
    source: Source<'a>,
}

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated.";
const AGE_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.";

/// NAME, the priority-0 printer columns, AGE, then the wide-only columns: the order of
/// `kubectl get` and `kubectl get -o wide`. A kind with its own column for the creation time (an
/// `Age` column, or CRDs' `Created At`) gets no second one.
fn columns(def: &ResourceDef) -> Vec<Column<'_>> {
    if let Some(kind_columns) = kinds::columns(&def.group, &def.kind) {
        return kind_columns
            .iter()
            .map(|c| Column {
                name: c.name,
                column_type: c.column_type,
                format: c.format,
                description: "",
                priority: c.priority,
                source: Source::Kind(c),
            })
            .collect();
    }
    let mut columns = vec![Column {
        name: "Name",
        column_type: "string",
        format: "name",
        description: NAME_DESCRIPTION,
        priority: 0,
        source: Source::Name,
    }];
    columns.extend(
        def.printer_columns
            .iter()
            .filter(|c| c.priority <= 0)
            .map(Column::printer),
    );
    let shows_creation = def.printer_columns.iter().any(|c| {
        c.name.eq_ignore_ascii_case("age")
            || c.json_path.trim_matches(['{', '}']) == ".metadata.creationTimestamp"
    });
    if !shows_creation {
        columns.push(Column {
            name: "Age",
            column_type: "string",
            format: "",
            description: AGE_DESCRIPTION,
            priority: 0,
            source: Source::Age,
        });
    }
    columns.extend(
        def.printer_columns
            .iter()
            .filter(|c| c.priority > 0)
            .map(Column::printer),
    );
    columns
}

impl<'a> Column<'a> {
    fn printer(column: &'a PrinterColumn) -> Self {
        Column {
            name: &column.name,
            column_type: &column.column_type,
            format: "",
            description: &column.description,
            priority: column.priority,
            source: Source::Printer(column),
        }
    }

    fn definition(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.column_type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }

    fn cell(&self, def: &ResourceDef, object: &Value, now: Timestamp) -> Value {
        match &self.source {
            Source::Name => object
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or_else(|| json!("")),
            Source::Age => json!(age(object.pointer("/metadata/creationTimestamp"), now)),
            Source::Printer(column) => printers::computed(def, &column.name, object, now)
                .unwrap_or_else(|| json_path_cell(column, object, now)),
            Source::Kind(column) => (column.cell)(object, now),
        }
    }
}

/// A printer column's cell from its JSONPath, typed as the column says (kubectl prints it as is).
fn json_path_cell(column: &PrinterColumn, object: &Value, now: Timestamp) -> Value {
    let found = jsonpath::evaluate(object, &column.json_path);
    match column.column_type.as_str() {
        // A count of entries: kubectl's DATA and SECRETS columns.
        "integer" if found.len() == 1 && (found[0].is_object() || found[0].is_array()) => {
            json!(
                found[0]
                    .as_object()
                    .map(Map::len)
                    .or(found[0].as_array().map(Vec::len))
                    .unwrap_or(0)
            )
        }
        "integer" | "number" => found.first().cloned().cloned().unwrap_or_else(|| json!(0)),
        "boolean" => found.first().cloned().cloned().unwrap_or(Value::Bool(false)),
        "date" => match found.first() {
            Some(value) => json!(age(Some(value), now)),
            None => json!(NONE),
        },
        _ => {
            let parts: Vec<String> = found.iter().filter_map(|v| printable(v)).collect();
            if parts.is_empty() {
                json!(NONE)
            } else {
                json!(parts.join(","))
            }
        }
    }
}

/// What kubectl prints for a value that is not set.
pub(crate) const NONE: &str = "<none>";

/// A JSON value as a table cell string; `None` for nulls and empty strings.
fn printable(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Object(map) => {
            // Label-like maps (`spec.selector`, `nodeSelector`) print as `k=v,k=v`.
            let pairs: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(&v.to_string())))
                .collect();
            if pairs.is_empty() {
                None
            } else {
                Some(pairs.join(","))
            }
        }
        other => Some(other.to_string()),
    }
}

/// The age of an RFC 3339 timestamp as kubectl prints it; `<unknown>` when absent or unreadable.
pub(crate) fn age(timestamp: Option<&Value>, now: Timestamp) -> String {
    let Some(then) = timestamp
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Timestamp>().ok())
    else {
        return "<unknown>".to_string();
    };
    human_duration(now.as_second() - then.as_second())
}

/// kubectl's `HumanDuration` (apimachinery `util/duration`): `5s`, `3m20s`, `45m`, `5h3m`, `2d4h`,
/// `30d`, `2y40d`. Up to 2 seconds in the future counts as now; more is `<invalid>`.
pub(crate) fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests;
