//! The output forms (`-o table|wide|json|yaml|name`), for a watch (one event at a time, a line or
//! a document each) and for `get` (one list or one object).
//!
//! Rendering returns text; the commands write it to stdout and flush after each event, so a pipe
//! into `jq` or `grep` sees every event as it happens.

pub mod columns;
pub mod jsonpath;
pub mod server_table;
mod table;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kazan::{
    ApiResource, DynamicObject, Object,
    resource::TypeMeta,
    table::{TableColumn, TableRow},
    watcher::EventType,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use table::Layout;

use crate::{error::CliError, resolve::ResourceType};

/// `-o`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// The server's columns, as kubectl prints them (a watch adds EVENT).
    #[default]
    Table,
    /// The server's columns with the wide ones (IP and NODE of pods, IMAGES of deployments...).
    Wide,
    /// A watch: one compact `{"type","object"}` per line; get: the object, or a List.
    Json,
    /// A watch: `---`-separated `type`/`object` documents; get: the object, or a List.
    Yaml,
    /// `kind/name`, after the event type for a watch (`ADDED pod/web-1`).
    Name,
}

impl OutputFormat {
    /// `table` or `wide`.
    pub fn is_table(self) -> bool {
        matches!(self, OutputFormat::Table | OutputFormat::Wide)
    }
}

/// Sets `apiVersion` and `kind` when the server left them out (list items usually lack them).
pub fn fill_types(object: &mut DynamicObject, resource: &ApiResource) {
    if object.types.as_ref().is_none_or(|t| t.kind.is_empty()) {
        object.types = Some(TypeMeta {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
        });
    }
}

/// One event of `-o json` and `-o yaml`.
#[derive(Serialize)]
struct EventDocument<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<&'a DynamicObject>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    /// A delete found by a relist, not seen: client-go's `DeletedFinalStateUnknown`.
    #[serde(rename = "finalStateUnknown", skip_serializing_if = "std::ops::Not::not")]
    final_state_unknown: bool,
    /// When the event was received (`--timestamps`).
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<String>,
}

/// The EVENT cell of a delete a relist found but the watch did not see.
pub const UNSEEN_DELETE: &str = "DELETED?";

/// What `get -o json|yaml` prints for a list, as kubectl does.
#[derive(Serialize)]
struct ListDocument<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    items: &'a [DynamicObject],
    kind: &'static str,
    metadata: ListMetadata,
}

#[derive(Serialize)]
struct ListMetadata {
    #[serde(rename = "resourceVersion")]
    resource_version: &'static str,
}

fn output_error(e: impl std::fmt::Display) -> CliError {
    CliError::Output(std::io::Error::other(e.to_string()))
}

fn json_line(value: &impl Serialize) -> Result<String, CliError> {
    let mut line = serde_json::to_string(value).map_err(output_error)?;
    line.push('\n');
    Ok(line)
}

fn json_pretty(value: &impl Serialize) -> Result<String, CliError> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut serializer).map_err(output_error)?;
    out.push(b'\n');
    String::from_utf8(out).map_err(output_error)
}

fn yaml(value: &impl Serialize) -> Result<String, CliError> {
    let mut text = serde_saphyr::to_string(value).map_err(output_error)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// The object as kubectl prints it in JSON and YAML: without `metadata.managedFields` (kubectl's
/// `--show-managed-fields` defaults to false; `kubectl/pkg/cmd/get/get.go`).
fn without_managed_fields(object: &DynamicObject) -> std::borrow::Cow<'_, DynamicObject> {
    if object.metadata.managed_fields.is_none() {
        return std::borrow::Cow::Borrowed(object);
    }
    let mut shown = object.clone();
    shown.metadata.managed_fields = None;
    std::borrow::Cow::Owned(shown)
}

fn object_name(resource: &ResourceType, object: &DynamicObject) -> String {
    format!(
        "{}/{}",
        resource.name_prefix(),
        object.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The narrowest a watch's column may be, so that a stream that starts empty still lines up.
fn watch_floor(header: &str) -> usize {
    match header {
        "EVENT" => "MODIFIED".len(),
        "NAMESPACE" => 12,
        "NAME" => 20,
        "STATUS" => "Terminating".len(),
        "TIME" => "2006-01-02T15:04:05Z".len(),
        _ => 0,
    }
}

/// What a watch prints: whole objects (`-o json|yaml|name`), or the rows of the server's Tables
/// (`-o table|wide`, as kubectl's `get -w`).
pub trait Watched: Object + Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Readies the object for printing (list items lack their `kind`).
    fn prepare(&mut self, resource: &ApiResource);
    /// What the printer shows of it.
    fn shown(&self) -> Shown<'_>;
}

/// An object or a Table row, for the printer.
pub enum Shown<'a> {
    /// A whole object.
    Object(&'a DynamicObject),
    /// A row of the server's Table (or, from a server without Tables, the object's metadata).
    Row(&'a TableRow),
}

impl Watched for DynamicObject {
    fn prepare(&mut self, resource: &ApiResource) {
        fill_types(self, resource);
    }

    fn shown(&self) -> Shown<'_> {
        Shown::Object(self)
    }
}

impl Watched for TableRow {
    fn prepare(&mut self, _: &ApiResource) {}

    fn shown(&self) -> Shown<'_> {
        Shown::Row(self)
    }
}

impl Shown<'_> {
    fn metadata(&self) -> &ObjectMeta {
        match self {
            Shown::Object(o) => &o.metadata,
            Shown::Row(r) => &r.metadata,
        }
    }

    /// The columns this item brings: the server's, when its Table carried them; NAME and AGE for
    /// anything that is not a Table row; `None` for a row that relies on the columns of before.
    fn columns(&self) -> Option<Vec<TableColumn>> {
        match self {
            Shown::Row(row) if row.is_table => row.columns.clone(),
            _ => Some(columns::fallback_columns()),
        }
    }

    /// Its cells under its columns: the server's, or NAME and AGE.
    fn cells(&self, now: Timestamp) -> Vec<Value> {
        match self {
            Shown::Row(row) if row.is_table => row.cells.clone(),
            _ => columns::fallback_cells(self.metadata(), now),
        }
    }

    fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }
}

/// Renders a watch's events in one output form.
///
/// In a table, the columns are the server's (kubectl's, on any cluster): those that came with the
/// first list or event, kept for the events that carry none, and a new header line if the server
/// sends other ones (as kubectl's table printer does). Before any, [`WatchPrinter::needs_columns`]
/// says the caller must fetch them ([`WatchPrinter::set_columns`]).
pub struct WatchPrinter {
    format: OutputFormat,
    resource: ResourceType,
    /// `-A`: a NAMESPACE column.
    shows_namespaces: bool,
    /// The columns in force (table output).
    columns: Option<Vec<TableColumn>>,
    layout: Option<Layout>,
    /// `--timestamps`: each event says when it was received.
    timestamps: bool,
}

/// A receipt time as printed by `--timestamps`: RFC 3339, UTC, to the second.
fn time_of(now: Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl WatchPrinter {
    /// A printer for events of `resource`; `shows_namespaces` adds the NAMESPACE column.
    pub fn new(format: OutputFormat, resource: ResourceType, shows_namespaces: bool) -> Self {
        WatchPrinter {
            format,
            resource,
            shows_namespaces,
            columns: None,
            layout: None,
            timestamps: false,
        }
    }

    /// With `--timestamps`: a TIME column first (a `time` field in JSON and YAML, a prefix with
    /// `-o name`), the moment each event was received, since a watch is a log of changes.
    pub fn with_timestamps(mut self, on: bool) -> Self {
        self.timestamps = on;
        self
    }

    /// Whether a table must be given its columns before these items can be printed: none known
    /// yet, and none of the items brings them (a watch whose definitions the server spent on a
    /// bookmark, or an empty first list).
    pub fn needs_columns<K: Watched>(&self, items: &[K]) -> bool {
        self.format.is_table()
            && self.columns.is_none()
            && items.iter().all(|item| item.shown().columns().is_none())
    }

    /// The columns to print under (the server's, fetched; or NAME and AGE).
    pub fn set_columns(&mut self, columns: Vec<TableColumn>) {
        self.columns = Some(columns);
    }

    fn time(&self, now: Timestamp) -> Option<String> {
        self.timestamps.then(|| time_of(now))
    }

    fn print(&self) -> server_table::Print {
        server_table::Print {
            wide: self.format == OutputFormat::Wide,
            namespaces: self.shows_namespaces,
            ..server_table::Print::default()
        }
    }

    /// The server's columns (or NAME and AGE) as a Table of `rows`.
    fn table(&self, rows: Vec<server_table::Row>) -> server_table::Table {
        let columns = self.columns.clone().unwrap_or_else(columns::fallback_columns);
        server_table::Table { columns, rows }
    }

    fn headers(&self) -> Vec<String> {
        let mut headers: Vec<String> = self.timestamps.then(|| "TIME".to_string()).into_iter().collect();
        headers.push("EVENT".to_string());
        headers.extend(server_table::cells(&self.table(Vec::new()), &self.print()).0);
        headers
    }

    fn row(&self, event_type: &str, item: &Shown<'_>, now: Timestamp) -> Vec<String> {
        let metadata = item.metadata();
        let row = server_table::Row {
            cells: item.cells(now),
            namespace: metadata.namespace.clone().unwrap_or_default(),
            name: item.name().to_string(),
            labels: Default::default(),
        };
        let mut cells: Vec<String> = self.time(now).into_iter().collect();
        cells.push(event_type.to_string());
        let (_, mut rows) = server_table::cells(&self.table(vec![row]), &self.print());
        cells.extend(rows.pop().unwrap_or_default());
        cells
    }

    /// The header line, with widths that fit `rows`.
    fn header_for(&mut self, rows: &[Vec<String>]) -> String {
        let headers = self.headers();
        let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
        let layout = Layout::fit(&header_refs, rows, watch_floor);
        let mut out = layout.line(&headers);
        out.push('\n');
        self.layout = Some(layout);
        out
    }

    /// The objects there at the start, as ADDED events; in a table, the header comes first and
    /// the widths fit these rows.
    pub fn first_batch<K: Watched>(&mut self, items: &[K], now: Timestamp) -> Result<String, CliError> {
        if !self.format.is_table() {
            let mut out = String::new();
            for item in items {
                out.push_str(&self.event(EventType::Added, item, now)?);
            }
            return Ok(out);
        }
        if let Some(columns) = items.iter().find_map(|item| item.shown().columns()) {
            self.columns = Some(columns);
        }
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|item| self.row(EventType::Added.as_str(), &item.shown(), now))
            .collect();
        let mut out = self.header_for(&rows);
        for row in &rows {
            out.push_str(&self.layout.as_ref().map(|l| l.line(row)).unwrap_or_default());
            out.push('\n');
        }
        Ok(out)
    }

    /// Starts a watch that has no first batch (`--watch-only`, `--resource-version`): the table
    /// header, with the floor widths.
    pub fn start(&mut self, now: Timestamp) -> Result<String, CliError> {
        if self.format.is_table() {
            self.first_batch::<DynamicObject>(&[], now)
        } else {
            Ok(String::new())
        }
    }

    /// One event.
    pub fn event<K: Watched>(
        &mut self,
        event_type: EventType,
        item: &K,
        now: Timestamp,
    ) -> Result<String, CliError> {
        self.render(event_type, false, &item.shown(), now)
    }

    /// A delete that a relist found and the watch did not see (the object is its last known
    /// state): `"finalStateUnknown": true` in JSON and YAML, `DELETED?` in a table's EVENT column,
    /// `DELETED` with `-o name`.
    pub fn unseen_delete<K: Watched>(&mut self, item: &K, now: Timestamp) -> Result<String, CliError> {
        self.render(EventType::Deleted, true, &item.shown(), now)
    }

    fn render(
        &mut self,
        event_type: EventType,
        final_state_unknown: bool,
        item: &Shown<'_>,
        now: Timestamp,
    ) -> Result<String, CliError> {
        if self.format.is_table() {
            return Ok(self.table_line(event_type, final_state_unknown, item, now));
        }
        let object = match item {
            Shown::Object(object) => object,
            // Rows are asked for in table output only.
            Shown::Row(_) => {
                return Err(CliError::Unexpected(
                    "a Table row reached a printer of whole objects".into(),
                ));
            }
        };
        let shown = without_managed_fields(object);
        let document = EventDocument {
            event_type: event_type.as_str(),
            object: Some(&shown),
            message: None,
            final_state_unknown,
            time: self.time(now),
        };
        match self.format {
            OutputFormat::Json => json_line(&document),
            OutputFormat::Yaml => Ok(format!("---\n{}", yaml(&document)?)),
            _ => Ok(format!(
                "{}{} {}\n",
                self.time(now).map(|t| t + " ").unwrap_or_default(),
                event_type.as_str(),
                object_name(&self.resource, object)
            )),
        }
    }

    /// One event as a table line; first a header line if it brings other columns than those in
    /// force (or none was printed).
    fn table_line(
        &mut self,
        event_type: EventType,
        final_state_unknown: bool,
        item: &Shown<'_>,
        now: Timestamp,
    ) -> String {
        let mut out = String::new();
        let mut header = self.layout.is_none();
        if let Some(columns) = item.columns()
            && self.columns.as_ref() != Some(&columns)
        {
            header |= self.columns.is_some() || self.layout.is_none();
            self.columns = Some(columns);
        }
        let label = match final_state_unknown {
            true => UNSEEN_DELETE,
            false => event_type.as_str(),
        };
        let row = self.row(label, item, now);
        if header {
            out.push_str(&self.header_for(std::slice::from_ref(&row)));
        }
        out.push_str(&self.layout.as_ref().map(|l| l.line(&row)).unwrap_or_default());
        out.push('\n');
        out
    }

    /// The GONE line: the watch expired (410) and will not go on.
    pub fn gone(&mut self, message: &str) -> Result<String, CliError> {
        let document = EventDocument {
            event_type: EventType::Gone.as_str(),
            object: None,
            message: Some(message),
            final_state_unknown: false,
            time: self.time(Timestamp::now()),
        };
        match self.format {
            OutputFormat::Json => json_line(&document),
            OutputFormat::Yaml => Ok(format!("---\n{}", yaml(&document)?)),
            OutputFormat::Name => Ok(format!(
                "{}GONE {message}\n",
                self.time(Timestamp::now()).map(|t| t + " ").unwrap_or_default()
            )),
            OutputFormat::Table | OutputFormat::Wide if self.timestamps => {
                let time = time_of(Timestamp::now());
                let layout = match self.layout.clone() {
                    Some(layout) => layout,
                    None => {
                        let headers = self.headers();
                        let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
                        Layout::fit::<Vec<String>>(&refs, &[], watch_floor)
                    }
                };
                Ok(format!(
                    "{}{message}\n",
                    layout.line(&[time.as_str(), "GONE", ""])
                ))
            }
            OutputFormat::Table | OutputFormat::Wide => {
                let start = self
                    .layout
                    .as_ref()
                    .map_or(watch_floor("EVENT") + 3, Layout::first_column_end);
                Ok(format!("{:<start$}{message}\n", "GONE"))
            }
        }
    }
}

/// `get` of several objects: NAME and AGE (when the server gave no Table; nothing when empty), a
/// `List`, or names.
pub fn render_list(
    format: OutputFormat,
    resource: &ResourceType,
    shows_namespaces: bool,
    objects: &[DynamicObject],
    now: Timestamp,
) -> Result<String, CliError> {
    match format {
        OutputFormat::Json | OutputFormat::Yaml => {
            let shown: Vec<DynamicObject> = objects
                .iter()
                .map(|o| without_managed_fields(o).into_owned())
                .collect();
            let list = ListDocument {
                api_version: "v1",
                items: &shown,
                kind: "List",
                metadata: ListMetadata { resource_version: "" },
            };
            if format == OutputFormat::Json {
                json_pretty(&list)
            } else {
                yaml(&list)
            }
        }
        OutputFormat::Name => Ok(objects.iter().map(|o| object_name(resource, o) + "\n").collect()),
        OutputFormat::Table | OutputFormat::Wide => Ok(server_table::render(
            &server_table::fallback(objects, now),
            &server_table::Print {
                wide: format == OutputFormat::Wide,
                namespaces: shows_namespaces,
                ..server_table::Print::default()
            },
        )),
    }
}

/// `get` of several types (`get po,svc`), as kubectl prints it: one table per type with objects,
/// a blank line between them and names as `pod/web-1` (NAME and AGE, when the server gave no
/// Tables); names; or one `List` of every object.
pub fn render_lists(
    format: OutputFormat,
    groups: &[(ResourceType, Vec<DynamicObject>)],
    shows_namespaces: bool,
    now: Timestamp,
) -> Result<String, CliError> {
    match format {
        OutputFormat::Json | OutputFormat::Yaml => {
            let all: Vec<DynamicObject> = groups.iter().flat_map(|(_, objects)| objects.clone()).collect();
            render_list(format, &groups[0].0, shows_namespaces, &all, now)
        }
        OutputFormat::Name => {
            let mut out = String::new();
            for (resource, objects) in groups {
                out.push_str(&render_list(format, resource, shows_namespaces, objects, now)?);
            }
            Ok(out)
        }
        OutputFormat::Table | OutputFormat::Wide => {
            let tables: Vec<String> = groups
                .iter()
                .filter(|(_, objects)| !objects.is_empty())
                .map(|(resource, objects)| {
                    let print = server_table::Print {
                        wide: format == OutputFormat::Wide,
                        namespaces: shows_namespaces,
                        kind_prefix: Some(resource.name_prefix()),
                        ..server_table::Print::default()
                    };
                    server_table::render(&server_table::fallback(objects, now), &print)
                })
                .collect();
            Ok(tables.join("\n"))
        }
    }
}

/// Rows under headers, laid out as kubectl lays out a table (the headers left out if asked).
pub fn columns_text(headers: &[&str], rows: &[Vec<String>], no_headers: bool) -> String {
    let layout = Layout::fit(headers, rows, |_| 0);
    let mut out = String::new();
    if !no_headers {
        out.push_str(&layout.line(headers));
        out.push('\n');
    }
    for row in rows {
        out.push_str(&layout.line(row));
        out.push('\n');
    }
    out
}

/// `get` of one object: the object itself for JSON and YAML, else as a list of one.
pub fn render_object(
    format: OutputFormat,
    resource: &ResourceType,
    object: &DynamicObject,
    now: Timestamp,
) -> Result<String, CliError> {
    match format {
        OutputFormat::Json => json_pretty(&*without_managed_fields(object)),
        OutputFormat::Yaml => yaml(&*without_managed_fields(object)),
        _ => render_list(format, resource, false, std::slice::from_ref(object), now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn configmaps() -> ResourceType {
        ResourceType {
            api: ApiResource::new("", "v1", "ConfigMap", "configmaps", true),
            singular: "configmap".into(),
            short_names: vec!["cm".into()],
        }
    }

    fn cm(name: &str, data: serde_json::Value) -> Result<DynamicObject, serde_json::Error> {
        let mut o: DynamicObject = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "w", "resourceVersion": "7",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "data": data
        }))?;
        fill_types(&mut o, &configmaps().api);
        Ok(o)
    }

    fn now() -> Result<Timestamp, jiff::Error> {
        "2026-01-01T00:00:05Z".parse()
    }

    /// A one-row Table as the server sends it in a watch event (`columns`: `null` after the
    /// first event).
    fn row(name: &str, data: i64, columns: serde_json::Value) -> Result<TableRow, serde_json::Error> {
        serde_json::from_value(json!({
            "kind": "Table", "apiVersion": "meta.k8s.io/v1", "columnDefinitions": columns,
            "rows": [{"cells": [name, data, "5s"],
                      "object": {"metadata": {"name": name, "namespace": "w", "resourceVersion": "7"}}}]
        }))
    }

    fn cm_columns() -> serde_json::Value {
        json!([{"name": "Name", "type": "string", "priority": 0},
               {"name": "Data", "type": "integer", "priority": 0},
               {"name": "Age", "type": "string", "priority": 0}])
    }

    #[test]
    fn watch_tables_fix_their_widths_on_the_first_batch() -> Result<(), Box<dyn std::error::Error>> {
        let mut printer = WatchPrinter::new(OutputFormat::Table, configmaps(), false);
        let first = printer.first_batch(&[row("a", 1, cm_columns())?], now()?)?;
        assert_eq!(
            first,
            "EVENT      NAME                   DATA   AGE\n\
             ADDED      a                      1      5s\n"
        );
        // Later events carry no columns: those of before apply.
        let line = printer.event(EventType::Modified, &row("a", 2, json!(null))?, now()?)?;
        assert_eq!(line, "MODIFIED   a                      2      5s\n");
        // The same columns again (a new watch's first event): no second header.
        let line = printer.event(EventType::Modified, &row("a", 3, cm_columns())?, now()?)?;
        assert_eq!(line, "MODIFIED   a                      3      5s\n");
        assert_eq!(
            printer.gone("too old resource version: 3 (9)")?,
            "GONE       too old resource version: 3 (9)\n"
        );
        Ok(())
    }

    /// cli-runtime's table printer: a header again when a Table brings other columns; rows of a
    /// server without Tables (plain objects) print as NAME and AGE.
    #[test]
    fn other_columns_print_a_new_header_and_plain_objects_name_and_age()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut printer = WatchPrinter::new(OutputFormat::Table, configmaps(), false);
        printer.first_batch(&[row("a", 1, cm_columns())?], now()?)?;
        let other = json!([{"name": "Name", "type": "string", "priority": 0},
                           {"name": "Size", "type": "integer", "priority": 0}]);
        let line = printer.event(EventType::Added, &row("b", 4, other)?, now()?)?;
        assert_eq!(
            line,
            "EVENT      NAME                   SIZE\n\
             ADDED      b                      4\n"
        );
        let mut printer = WatchPrinter::new(OutputFormat::Table, configmaps(), true);
        let plain: TableRow = serde_json::from_value(json!({"kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "w", "creationTimestamp": "2026-01-01T00:00:00Z"}}))?;
        assert!(!printer.needs_columns(std::slice::from_ref(&plain)));
        assert_eq!(
            printer.first_batch(&[plain], now()?)?,
            "EVENT      NAMESPACE      NAME                   AGE\n\
             ADDED      w              a                      5s\n"
        );
        let printer = WatchPrinter::new(OutputFormat::Table, configmaps(), false);
        assert!(printer.needs_columns::<TableRow>(&[]));
        assert!(printer.needs_columns(&[row("a", 1, json!(null))?]));
        assert!(!printer.needs_columns(&[row("a", 1, cm_columns())?]));
        Ok(())
    }

    #[test]
    fn watch_json_is_one_compact_line_per_event_with_type_and_object()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut printer = WatchPrinter::new(OutputFormat::Json, configmaps(), false);
        let line = printer.event(EventType::Deleted, &cm("a", json!({"k": "v"}))?, now()?)?;
        assert_eq!(
            line,
            "{\"type\":\"DELETED\",\"object\":{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\
             \"metadata\":{\"creationTimestamp\":\"2026-01-01T00:00:00Z\",\"name\":\"a\",\"namespace\":\"w\",\
             \"resourceVersion\":\"7\"},\"data\":{\"k\":\"v\"}}}\n"
        );
        assert_eq!(
            printer.gone("expired")?,
            "{\"type\":\"GONE\",\"message\":\"expired\"}\n"
        );
        Ok(())
    }

    /// A delete found by a relist is marked: `finalStateUnknown` in JSON (client-go's
    /// `DeletedFinalStateUnknown`), `DELETED?` in a table, plain `DELETED` for `-o name` scripts.
    #[test]
    fn an_unseen_delete_is_marked_in_json_and_in_the_event_column() -> Result<(), Box<dyn std::error::Error>>
    {
        let mut printer = WatchPrinter::new(OutputFormat::Json, configmaps(), false);
        let line: serde_json::Value =
            serde_json::from_str(&printer.unseen_delete(&cm("a", json!({}))?, now()?)?)?;
        assert_eq!(line["type"], "DELETED");
        assert_eq!(line["finalStateUnknown"], true);
        assert_eq!(line["object"]["metadata"]["name"], "a");
        let seen: serde_json::Value =
            serde_json::from_str(&printer.event(EventType::Deleted, &cm("a", json!({}))?, now()?)?)?;
        assert!(seen.get("finalStateUnknown").is_none());
        let mut printer = WatchPrinter::new(OutputFormat::Table, configmaps(), false);
        printer.set_columns(serde_json::from_value(cm_columns())?);
        printer.first_batch::<TableRow>(&[], now()?)?;
        assert_eq!(
            printer.unseen_delete(&row("a", 0, json!(null))?, now()?)?,
            "DELETED?   a                      0      5s\n"
        );
        let mut printer = WatchPrinter::new(OutputFormat::Name, configmaps(), false);
        assert_eq!(
            printer.unseen_delete(&cm("a", json!({}))?, now()?)?,
            "DELETED configmap/a\n"
        );
        Ok(())
    }

    #[test]
    fn watch_yaml_and_names() -> Result<(), Box<dyn std::error::Error>> {
        let mut printer = WatchPrinter::new(OutputFormat::Yaml, configmaps(), false);
        let doc = printer.event(EventType::Added, &cm("a", json!({"k": "v"}))?, now()?)?;
        assert_eq!(
            doc,
            "---\ntype: ADDED\nobject:\n  apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    \
             creationTimestamp: \"2026-01-01T00:00:00Z\"\n    name: a\n    namespace: w\n    \
             resourceVersion: \"7\"\n  data:\n    k: v\n"
        );
        let mut printer = WatchPrinter::new(OutputFormat::Name, configmaps(), false);
        assert_eq!(
            printer.event(EventType::Added, &cm("a", json!({}))?, now()?)?,
            "ADDED configmap/a\n"
        );
        Ok(())
    }

    #[test]
    fn get_prints_lists_like_kubectl() -> Result<(), Box<dyn std::error::Error>> {
        let objects = [cm("a", json!({"k": "v"}))?, cm("bb", json!({}))?];
        assert_eq!(
            render_list(OutputFormat::Table, &configmaps(), true, &objects, now()?)?,
            "NAMESPACE   NAME   AGE\nw           a      5s\nw           bb     5s\n"
        );
        assert_eq!(
            render_list(OutputFormat::Name, &configmaps(), false, &objects, now()?)?,
            "configmap/a\nconfigmap/bb\n"
        );
        let list: serde_json::Value = serde_json::from_str(&render_list(
            OutputFormat::Json,
            &configmaps(),
            false,
            &objects,
            now()?,
        )?)?;
        assert_eq!(list["kind"], "List");
        assert_eq!(list["items"][1]["metadata"]["name"], "bb");
        assert_eq!(
            render_list(OutputFormat::Table, &configmaps(), false, &[], now()?)?,
            ""
        );
        Ok(())
    }
}
