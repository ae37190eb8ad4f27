//! The server's own columns: [`TableRow`], one row of a `meta.k8s.io/v1` `Table`, what the server
//! sends when asked as kubectl asks (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`).
//!
//! The server decides what `kubectl get` shows: each kind's columns, custom resources'
//! `additionalPrinterColumns`, the cells already formatted (`3 (5m ago)`, `1/1`). A program that
//! shows objects as kubectl does (kazan's own `watch`) asks for Tables and prints their cells,
//! instead of reimplementing kubectl's printers.
//!
//! Any request whose object type is [`TableRow`] asks for Tables by itself, as
//! [`PartialObjectMetadata`](crate::PartialObjectMetadata) requests ask for metadata, so that a
//! [`Watcher`](crate::Watcher) or an informer of `TableRow`s works as of any object type: resumes,
//! 410 Gone, relists. On the wire:
//! - a watch event's object is a Table of one row; the first event of a watch carries the
//!   `columnDefinitions`, later ones `null` (the real server saves the bytes: apiserver
//!   `pkg/endpoints/handlers/response.go`, `watchEmbeddedEncoder`);
//! - a list is one Table of many rows (the definitions once per page): its rows read as one-row
//!   Tables, the first of each page with the definitions (see [`ObjectList`](crate::ObjectList));
//! - each row's `object` is the object's `PartialObjectMetadata` (`includeObject=Metadata`, the
//!   default), so [`TableRow::metadata`] is the object's whole metadata;
//! - a server (or a resource) without Tables answers with the plain object, after the
//!   `application/json` fallback in `Accept`: it reads as a row with no columns and no cells
//!   ([`TableRow::is_table`] false), with the object's metadata, so a caller can print its own
//!   minimal columns.
//!
//! Followed: apimachinery `pkg/apis/meta/v1/types.go` (`Table`, `TableColumnDefinition`,
//! `TableRow`), apiserver `pkg/endpoints/handlers/response.go` (`asTable`), kubectl
//! `pkg/cmd/get/get.go` (`transformRequests`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::Object;

/// `Accept` of a request for Tables, as kubectl sends it (`v1`, then `v1beta1`), with the plain
/// form last for a server without them.
pub const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// One column of a Table (`TableColumnDefinition`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableColumn {
    /// As the server names it (`Ready`, `Nominated Node`); kubectl prints it upper-cased.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date` (OpenAPI types).
    #[serde(rename = "type", default)]
    pub column_type: String,
    /// An OpenAPI format (`name`, `date-time`...), or empty.
    #[serde(default)]
    pub format: String,
    /// What the column holds.
    #[serde(default)]
    pub description: String,
    /// 0: always shown; above: only with `-o wide`.
    #[serde(default)]
    pub priority: i64,
}

/// One row of a Table, with the object's metadata: usable as `K` wherever an object type is
/// (requests, the Watcher, the informer); see the [module docs](self).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableRow {
    /// The Table's column definitions, when the Table that carried this row had them (the first
    /// event of a watch, the first row of a list page); `None` afterwards: the columns seen last
    /// still apply.
    pub columns: Option<Vec<TableColumn>>,
    /// The cells, one per column, as the server formatted them.
    pub cells: Vec<Value>,
    /// The object's metadata (from the row's `PartialObjectMetadata`, or from the plain object).
    pub metadata: ObjectMeta,
    /// Whether the server sent a Table; `false`: it answered with the plain object (no Table
    /// support for it), and there are no columns nor cells.
    pub is_table: bool,
}

impl Object for TableRow {
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> Option<&mut ObjectMeta> {
        Some(&mut self.metadata)
    }
}

/// Whether `K` is [`TableRow`]: its requests then ask for Tables.
pub(crate) fn is_table<K: 'static>() -> bool {
    std::any::TypeId::of::<K>() == std::any::TypeId::of::<TableRow>()
}

/// A Table or a plain object, as it comes.
#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<ObjectMeta>,
    #[serde(default, rename = "columnDefinitions")]
    column_definitions: Option<Vec<TableColumn>>,
    #[serde(default)]
    rows: Option<Vec<WireRow>>,
}

#[derive(Deserialize)]
struct WireRow {
    #[serde(default)]
    cells: Option<Vec<Value>>,
    #[serde(default)]
    object: Option<WireObject>,
}

#[derive(Deserialize)]
struct WireObject {
    #[serde(default)]
    metadata: Option<ObjectMeta>,
}

impl<'de> Deserialize<'de> for TableRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(d)?;
        if wire.kind.as_deref() != Some("Table") {
            return Ok(TableRow {
                columns: None,
                cells: Vec::new(),
                metadata: wire.metadata.unwrap_or_default(),
                is_table: false,
            });
        }
        let mut rows = wire.rows.unwrap_or_default();
        if rows.len() != 1 {
            return Err(serde::de::Error::custom(format!(
                "a Table of {} rows where one row (one object) was expected",
                rows.len()
            )));
        }
        let row = rows.remove(0);
        // `includeObject=None` leaves the row without its object: the Table's own metadata
        // (the object's resourceVersion) is all there is.
        let metadata = row
            .object
            .and_then(|o| o.metadata)
            .or(wire.metadata)
            .unwrap_or_default();
        Ok(TableRow {
            columns: wire.column_definitions.filter(|c| !c.is_empty()),
            cells: row.cells.unwrap_or_default(),
            metadata,
            is_table: true,
        })
    }
}

/// A row serializes as the one-row Table it came in (a plain object's row as
/// `PartialObjectMetadata`), so that it reads back the same (informer checkpoints).
impl Serialize for TableRow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Table<'a> {
            kind: &'static str,
            #[serde(rename = "apiVersion")]
            api_version: &'static str,
            metadata: TableMeta<'a>,
            #[serde(rename = "columnDefinitions")]
            column_definitions: &'a Option<Vec<TableColumn>>,
            rows: [RowOut<'a>; 1],
        }
        #[derive(Serialize)]
        struct TableMeta<'a> {
            #[serde(rename = "resourceVersion", skip_serializing_if = "Option::is_none")]
            resource_version: Option<&'a str>,
        }
        #[derive(Serialize)]
        struct RowOut<'a> {
            cells: &'a [Value],
            object: Partial<'a>,
        }
        #[derive(Serialize)]
        struct Partial<'a> {
            kind: &'static str,
            #[serde(rename = "apiVersion")]
            api_version: &'static str,
            metadata: &'a ObjectMeta,
        }
        let partial = Partial {
            kind: "PartialObjectMetadata",
            api_version: "meta.k8s.io/v1",
            metadata: &self.metadata,
        };
        if !self.is_table {
            return partial.serialize(s);
        }
        Table {
            kind: "Table",
            api_version: "meta.k8s.io/v1",
            metadata: TableMeta {
                resource_version: self.metadata.resource_version.as_deref(),
            },
            column_definitions: &self.columns,
            rows: [RowOut {
                cells: &self.cells,
                object: partial,
            }],
        }
        .serialize(s)
    }
}

/// The rows of a list answer that is a Table, as one-row Tables (the column definitions on the
/// first only), so that a list's items read as a watch's events do.
pub(crate) fn rows_as_tables(columns: Option<Value>, rows: Vec<Value>) -> impl Iterator<Item = Value> {
    let mut columns = columns;
    rows.into_iter().map(move |row| {
        serde_json::json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "columnDefinitions": columns.take().unwrap_or(Value::Null),
            "rows": [row],
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_table(columns: Value) -> Value {
        json!({
            "kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": "12"},
            "columnDefinitions": columns,
            "rows": [{
                "cells": ["web-1", "1/1", "Running", "3 (5m ago)", "2m"],
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                           "metadata": {"name": "web-1", "namespace": "w", "resourceVersion": "12"}}
            }]
        })
    }

    #[test]
    fn a_watch_events_table_reads_as_its_row_with_the_objects_metadata() -> Result<(), serde_json::Error> {
        let row: TableRow = serde_json::from_value(pod_table(
            json!([{"name": "Name", "type": "string", "format": "name", "description": "d", "priority": 0}]),
        ))?;
        assert!(row.is_table);
        assert_eq!(row.name(), "web-1");
        assert_eq!(row.namespace(), Some("w"));
        assert_eq!(row.resource_version(), Some("12"));
        assert_eq!(row.cells[3], "3 (5m ago)");
        assert_eq!(row.columns.as_ref().map(|c| c[0].name.as_str()), Some("Name"));
        // Later events carry no definitions (`null`, as Go writes a nil slice).
        let later: TableRow = serde_json::from_value(pod_table(Value::Null))?;
        assert_eq!(later.columns, None);
        Ok(())
    }

    #[test]
    fn a_plain_object_reads_as_a_row_without_cells() -> Result<(), serde_json::Error> {
        let row: TableRow = serde_json::from_value(json!({
            "kind": "Widget", "apiVersion": "example.com/v1",
            "metadata": {"name": "w", "resourceVersion": "3"}, "spec": {"size": 1}
        }))?;
        assert!(!row.is_table);
        assert!(row.cells.is_empty() && row.columns.is_none());
        assert_eq!(row.name(), "w");
        Ok(())
    }

    #[test]
    fn a_table_of_several_rows_is_not_one_row() {
        let mut table = pod_table(Value::Null);
        table["rows"] = json!([{"cells": []}, {"cells": []}]);
        assert!(serde_json::from_value::<TableRow>(table).is_err());
    }

    #[test]
    fn a_row_serializes_as_the_table_it_came_in() -> Result<(), serde_json::Error> {
        for table in [
            pod_table(
                json!([{"name": "Name", "type": "string", "format": "", "description": "", "priority": 0}]),
            ),
            pod_table(Value::Null),
        ] {
            let row: TableRow = serde_json::from_value(table)?;
            let again: TableRow = serde_json::from_value(serde_json::to_value(&row)?)?;
            assert_eq!(again, row);
        }
        let plain: TableRow = serde_json::from_value(json!({"metadata": {"name": "w"}}))?;
        let again: TableRow = serde_json::from_value(serde_json::to_value(&plain)?)?;
        assert_eq!(again, plain);
        Ok(())
    }
}
