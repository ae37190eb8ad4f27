//! The server's own columns: a `meta.k8s.io/v1` Table, asked for as kubectl asks for it, printed as
//! kubectl prints it (cli-runtime's `printers/tableprinter.go`): the columns of priority 0 (every
//! column with `-o wide`) with their names upper-cased, the NAMESPACE column first for several
//! namespaces (from each row's object metadata), `kind/name` in the first column for several
//! types, each cell as it came.
//!
//! So `kazan get` shows exactly what `kubectl get` shows on any server, custom resources'
//! `additionalPrinterColumns` included; a server that does not serve Tables gets NAME and AGE
//! (see [`fallback`]).

use std::collections::BTreeMap;

use jiff::Timestamp;
use kazan::{DynamicObject, table::TableColumn};
use serde_json::Value;

use super::{columns, table::Layout};

/// What kubectl sends for `get`: a Table, else the plain form.
pub use kazan::table::TABLE_ACCEPT;

/// One row: its cells, and the metadata of its object.
#[derive(Debug, Clone)]
pub struct Row {
    /// The cells, one per column, as the server sent them.
    pub cells: Vec<Value>,
    /// `object.metadata.namespace`.
    pub namespace: String,
    /// `object.metadata.name`.
    pub name: String,
    /// `object.metadata.labels`.
    pub labels: BTreeMap<String, String>,
}

/// A Table answer (or several pages of one).
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// The columns.
    pub columns: Vec<TableColumn>,
    /// The rows.
    pub rows: Vec<Row>,
}

impl Table {
    /// The Table in `answer`, or `None` when the answer is not one (the server does not serve
    /// Tables for this resource).
    pub fn parse(answer: &Value) -> Option<Table> {
        if answer.get("kind").and_then(Value::as_str) != Some("Table") {
            return None;
        }
        let columns = answer
            .get("columnDefinitions")?
            .as_array()?
            .iter()
            .map(|c| TableColumn {
                name: c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                ..TableColumn::default()
            })
            .collect();
        let rows = answer
            .get("rows")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|r| Row {
                cells: r
                    .get("cells")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                namespace: r
                    .pointer("/object/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                name: r
                    .pointer("/object/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                labels: r
                    .pointer("/object/metadata/labels")
                    .and_then(Value::as_object)
                    .map(|labels| {
                        labels
                            .iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        Some(Table { columns, rows })
    }

    /// Adds the rows of a later page.
    pub fn extend(&mut self, page: Table) {
        self.rows.extend(page.rows);
    }
}

/// How a Table is printed.
#[derive(Debug, Clone, Default)]
pub struct Print {
    /// `-o wide`: every column.
    pub wide: bool,
    /// `-A`: a NAMESPACE column first.
    pub namespaces: bool,
    /// With several types: `kind/` before each name (`pod/web-1`, `deployment.apps/web`).
    pub kind_prefix: Option<String>,
    /// `--no-headers`.
    pub no_headers: bool,
    /// `-L`: a column for each of these labels, after the others.
    pub label_columns: Vec<String>,
    /// `--show-labels`: a LABELS column last.
    pub show_labels: bool,
}

/// A cell as kubectl prints it (Go's `fmt.Fprint` of the decoded JSON value).
pub fn cell_text(cell: &Value) -> String {
    match cell {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// The header and rows of `table` as text cells.
pub fn cells(table: &Table, print: &Print) -> (Vec<String>, Vec<Vec<String>>) {
    let shown: Vec<usize> = (0..table.columns.len())
        .filter(|&i| print.wide || table.columns[i].priority == 0)
        .collect();
    let mut headers = Vec::new();
    if print.namespaces {
        headers.push("NAMESPACE".to_string());
    }
    headers.extend(shown.iter().map(|&i| table.columns[i].name.to_uppercase()));
    // kubectl's formatLabelHeaders: the last segment of the key, upper-cased.
    headers.extend(
        print
            .label_columns
            .iter()
            .map(|key| key.rsplit('/').next().unwrap_or(key).to_uppercase()),
    );
    if print.show_labels {
        headers.push("LABELS".to_string());
    }
    let rows = table
        .rows
        .iter()
        .map(|row| {
            let mut cells = Vec::new();
            if print.namespaces {
                cells.push(row.namespace.clone());
            }
            for (n, &i) in shown.iter().enumerate() {
                let text = row.cells.get(i).map(cell_text).unwrap_or_default();
                match (&print.kind_prefix, n) {
                    (Some(kind), 0) => cells.push(format!("{kind}/{text}")),
                    _ => cells.push(text),
                }
            }
            for key in &print.label_columns {
                cells.push(row.labels.get(key).cloned().unwrap_or_default());
            }
            if print.show_labels {
                cells.push(labels_text(&row.labels));
            }
            cells
        })
        .collect();
    (headers, rows)
}

/// `table` as kubectl prints it; nothing for no rows.
pub fn render(table: &Table, print: &Print) -> String {
    if table.rows.is_empty() {
        return String::new();
    }
    let (headers, rows) = cells(table, print);
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let layout = if print.no_headers {
        Layout::fit::<Vec<String>>(&vec![""; headers.len()], &rows, |_| 0)
    } else {
        Layout::fit(&header_refs, &rows, |_| 0)
    };
    let mut out = String::new();
    if !print.no_headers {
        out.push_str(&layout.line(&headers));
        out.push('\n');
    }
    for row in &rows {
        out.push_str(&layout.line(row));
        out.push('\n');
    }
    out
}

/// kubectl's `labels.FormatLabels`: `k=v` by key, `<none>` for none.
fn labels_text(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "<none>".to_string();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// For a server that does not serve Tables: NAME and AGE of each object, as kubectl's default
/// printer shows them.
pub fn fallback(objects: &[DynamicObject], now: Timestamp) -> Table {
    let rows = objects
        .iter()
        .map(|o| Row {
            cells: columns::fallback_cells(&o.metadata, now),
            namespace: o.metadata.namespace.clone().unwrap_or_default(),
            name: o.metadata.name.clone().unwrap_or_default(),
            labels: o
                .metadata
                .labels
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
        })
        .collect();
    Table {
        columns: columns::fallback_columns(),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> Option<Table> {
        Table::parse(&json!({
            "kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "columnDefinitions": [
                {"name": "Name", "type": "string", "priority": 0},
                {"name": "Ready", "type": "string", "priority": 0},
                {"name": "Restarts", "type": "string", "priority": 0},
                {"name": "IP", "type": "string", "priority": 1},
            ],
            "rows": [
                {"cells": ["web-1", "1/1", "3 (5m ago)", "10.0.0.7"], "object": {"metadata": {"name": "web-1", "namespace": "w"}}},
                {"cells": ["a", "0/1", 0, null], "object": {"metadata": {"name": "a", "namespace": "x"}}},
            ]
        }))
    }

    #[test]
    fn priority_columns_show_only_wide_and_cells_print_as_kubectl_prints_them() {
        let Some(table) = pods() else {
            panic!("a Table");
        };
        assert_eq!(
            render(&table, &Print::default()),
            "NAME    READY   RESTARTS\nweb-1   1/1     3 (5m ago)\na       0/1     0\n"
        );
        let print = Print {
            wide: true,
            namespaces: true,
            kind_prefix: Some("pod".into()),
            ..Print::default()
        };
        assert_eq!(
            render(&table, &print),
            "NAMESPACE   NAME        READY   RESTARTS     IP\n\
             w           pod/web-1   1/1     3 (5m ago)   10.0.0.7\n\
             x           pod/a       0/1     0            <nil>\n"
        );
    }

    #[test]
    fn a_server_without_tables_gets_name_and_age() -> Result<(), Box<dyn std::error::Error>> {
        let objects: Vec<DynamicObject> = vec![
            serde_json::from_value(json!({"metadata": {"name": "a", "namespace": "w",
                "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "web"}}}))?,
            serde_json::from_value(json!({"metadata": {"name": "longer-name", "namespace": "x"}}))?,
        ];
        let now: Timestamp = "2026-01-01T00:02:05Z".parse()?;
        let print = Print {
            namespaces: true,
            show_labels: true,
            ..Print::default()
        };
        assert_eq!(
            render(&fallback(&objects, now), &print),
            "NAMESPACE   NAME          AGE         LABELS\n\
             w           a             2m5s        app=web\n\
             x           longer-name   <unknown>   <none>\n"
        );
        Ok(())
    }

    #[test]
    fn an_answer_that_is_not_a_table_is_none() {
        assert!(Table::parse(&json!({"kind": "PodList", "items": []})).is_none());
    }
}
