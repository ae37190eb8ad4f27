//! `kazan get`: one list (every page) or one object, in the same output forms as `kazan watch`.

use std::process::ExitCode;

use bytes::Bytes;
use jiff::Timestamp;
use kazan::{DynamicObject, Request, discovery::CachedDiscovery};
use serde_json::Value;

use crate::{
    cluster::{Cluster, ClusterArgs, Scope},
    error::CliError,
    logging,
    output::{
        OutputFormat, fill_types,
        jsonpath::{CustomColumns, Path, Template},
        render_list, render_lists, render_object,
        server_table::{self, Print, Table},
    },
    resolve::{ResourceType, resolve, resolve_in},
    terminal::emit,
};

/// kubectl's refusal of a name with `-A` (get and watch alike).
pub const ACROSS_NAMESPACES: &str =
    "a resource cannot be retrieved by name across all namespaces (give -n NAMESPACE instead of -A)";

const EXAMPLES: &str = "\
Examples:
  # The pods of the current namespace
  kazan get pods

  # Several types, one table each (names as pod/web-1)
  kazan get po,svc

  # Deployments everywhere, with more columns
  kazan get deploy -A -o wide

  # One config map as JSON; a list prints as {\"kind\":\"List\",\"items\":[...]}
  kazan get cm settings -n prod -o json

  # Names only, of pods labelled app=web
  kazan get po -l app=web -o name

  # A custom resource, through discovery, as YAML
  kazan get widgets.example.com -o yaml

  # The list, then every change (the same as `kazan watch pods`)
  kazan get pods -w";

/// Arguments of `kazan get`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct GetArgs {
    /// The resource type: plural, singular, short name or kind (`pods`, `pod`, `po`, `Pod`), or
    /// `resource.group` / `resource.version.group` (`deployments.apps`, `widgets.v1.example.com`);
    /// several separated by commas (`po,svc`).
    #[arg(value_name = "RESOURCE")]
    resource: String,

    /// Get only the object with this name (or give `TYPE/NAME` as the resource: `pod/web-1`).
    #[arg(value_name = "NAME")]
    name: Option<String>,

    /// Label selector, e.g. `app=web,tier!=db`.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    selector: Option<String>,

    /// Field selector, e.g. `status.phase=Running`.
    #[arg(long, value_name = "SELECTOR")]
    field_selector: Option<String>,

    /// Output form: table, wide, json, yaml, name, `jsonpath=TEMPLATE` (e.g.
    /// `jsonpath={.items[*].metadata.name}`) or `custom-columns=HEADER:PATH,...` (e.g.
    /// `custom-columns=NAME:.metadata.name,NODE:.spec.nodeName`), as kubectl's.
    #[arg(short = 'o', long, value_name = "FORMAT", default_value = "table", value_parser = parse_output)]
    output: OutputArg,

    /// Sort the objects by this field (a JSONPath such as `.metadata.name` or
    /// `{.status.startTime}`): numbers by value, anything else as text, objects without it first.
    #[arg(long, value_name = "JSONPATH", value_parser = parse_sort_by)]
    sort_by: Option<Path>,

    /// Print the table without its header line.
    #[arg(long)]
    no_headers: bool,

    /// A LABELS column with every label of each object.
    #[arg(long)]
    show_labels: bool,

    /// A column with the value of each of these labels (comma-separated or repeated).
    #[arg(
        short = 'L',
        long = "label-columns",
        value_name = "KEY",
        value_delimiter = ','
    )]
    label_columns: Vec<String>,

    /// After the list, print every change as it happens: the same as `kazan watch` (as
    /// `kubectl get -w`).
    #[arg(short = 'w', long)]
    watch: bool,

    /// Print only the changes, not the objects there now (implies --watch).
    #[arg(long)]
    watch_only: bool,

    /// Accepted as kubectl accepts it with -w: the watch always prints the event type.
    #[arg(long)]
    output_watch_events: bool,

    /// Ask for the objects' metadata only (`PartialObjectMetadata`) with -o json, yaml or name: less
    /// to send and hold. (The table output reads the server's Table rows, which hold only the
    /// cells and the metadata anyway.)
    #[arg(long)]
    metadata_only: bool,

    #[command(flatten)]
    cluster: ClusterArgs,
}

/// `-o`: one of the fixed forms, or a template.
#[derive(Debug, Clone)]
pub enum OutputArg {
    /// table, wide, json, yaml, name.
    Plain(OutputFormat),
    /// `jsonpath=...`.
    JsonPath(Template),
    /// `custom-columns=...`.
    CustomColumns(CustomColumns),
}

fn parse_sort_by(text: &str) -> Result<Path, String> {
    Path::parse(text).map_err(|e| e.to_string())
}

/// The order `--sort-by` gives: absent first, then numbers by value, then text.
fn sort_key(value: Option<&Value>) -> (u8, f64, String) {
    match value {
        None | Some(Value::Null) => (0, 0.0, String::new()),
        Some(Value::Number(n)) => (1, n.as_f64().unwrap_or(0.0), String::new()),
        Some(Value::String(s)) => (2, 0.0, s.clone()),
        Some(other) => (2, 0.0, other.to_string()),
    }
}

/// Sorts `objects` by `--sort-by`, stable as kubectl's sort.
fn sort_objects(objects: &mut [DynamicObject], by: &Path) {
    let keys: Vec<(u8, f64, String)> = objects
        .iter()
        .map(|o| sort_key(serde_json::to_value(o).ok().as_ref().and_then(|v| by.first(v))))
        .collect();
    let mut order: Vec<usize> = (0..objects.len()).collect();
    order.sort_by(|&a, &b| {
        let (ka, kb) = (&keys[a], &keys[b]);
        ka.0.cmp(&kb.0)
            .then(ka.1.total_cmp(&kb.1))
            .then_with(|| ka.2.cmp(&kb.2))
    });
    let sorted: Vec<DynamicObject> = order.iter().map(|&i| objects[i].clone()).collect();
    objects.clone_from_slice(&sorted);
}

fn parse_output(text: &str) -> Result<OutputArg, String> {
    if let Some(template) = text.strip_prefix("jsonpath=") {
        return Template::parse(template)
            .map(OutputArg::JsonPath)
            .map_err(|e| e.to_string());
    }
    if let Some(spec) = text.strip_prefix("custom-columns=") {
        return CustomColumns::parse(spec)
            .map(OutputArg::CustomColumns)
            .map_err(|e| e.to_string());
    }
    <OutputFormat as clap::ValueEnum>::from_str(text, true)
        .map(OutputArg::Plain)
        .map_err(|_| {
            format!("{text:?}: use table, wide, json, yaml, name, jsonpath=TEMPLATE or custom-columns=SPEC")
        })
}

impl GetArgs {
    /// The fixed form (JSON for templates, which read the objects as JSON).
    fn format(&self) -> OutputFormat {
        match self.output {
            OutputArg::Plain(format) => format,
            _ => OutputFormat::Json,
        }
    }
}

/// Runs `kazan get`.
pub async fn run(mut args: GetArgs) -> ExitCode {
    // `get pod/web-1`, as kubectl's TYPE/NAME.
    if args.name.is_none()
        && let Some((resource, name)) = args.resource.clone().split_once('/')
    {
        args.resource = resource.to_string();
        args.name = Some(name.to_string());
    }
    if (args.watch || args.watch_only) && !matches!(args.output, OutputArg::Plain(_)) {
        eprintln!("error: -o jsonpath and custom-columns do not go with --watch yet");
        return ExitCode::FAILURE;
    }
    if args.watch || args.watch_only {
        let format = args.format();
        let watch = crate::watch::WatchArgs::from_get(
            args.resource,
            args.name,
            args.selector,
            args.field_selector,
            format,
            args.watch_only,
            args.cluster,
        );
        return crate::watch::run(watch).await;
    }
    logging::init(args.cluster.log_level);
    match get(args).await {
        Ok(()) | Err(CliError::StdoutClosed) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn get(args: GetArgs) -> Result<(), CliError> {
    let cluster = Cluster::connect(&args.cluster)?;
    if !matches!(args.output, OutputArg::Plain(_)) {
        return get_templated(&args, &cluster).await;
    }
    if args.resource.contains(',') {
        return get_several(&args, &cluster).await;
    }
    let resource = resolve(&cluster.client, &args.resource).await?;
    let scope = cluster.scope(&resource.api);
    let now = Timestamp::now();
    if let Some(name) = &args.name {
        if args.selector.is_some() || args.field_selector.is_some() {
            return Err(CliError::Usage(
                "a name and a selector do not go together: give one or the other".into(),
            ));
        }
        let request = match &scope {
            Scope::Namespace(ns) => {
                Request::get_of::<DynamicObject>(resource.api.clone(), name).namespace(ns)
            }
            Scope::Cluster => Request::get_of::<DynamicObject>(resource.api.clone(), name),
            Scope::AllNamespaces => {
                return Err(CliError::Usage(ACROSS_NAMESPACES.into()));
            }
        }
        .metadata_only(args.metadata_only);
        let what = format!(
            "getting {}",
            scope.describe(&format!("{} \"{name}\"", resource.api.plural))
        );
        if args.format().is_table()
            && let Some(table) = server_table(&cluster, &request.path_and_query(), &what).await?
        {
            return emit(&server_table::render(&table, &print(&args, &scope, None)));
        }
        let mut object = cluster
            .client
            .run(&request)
            .await
            .map_err(|source| CliError::Request {
                what,
                source: Box::new(source),
            })?;
        fill_types(&mut object, &resource.api);
        return emit(&render_object(args.format(), &resource, &object, now)?);
    }
    if args.format().is_table() {
        let table = table_of(&args, &cluster, &resource).await?;
        if table.rows.is_empty() {
            no_resources(&scope);
        }
        return emit(&server_table::render(&table, &print(&args, &scope, None)));
    }
    let items = list(&args, &cluster, &resource).await?;
    emit(&render_list(
        args.format(),
        &resource,
        scope.shows_namespaces(),
        &items,
        now,
    )?)
}

/// `-o jsonpath=` (applied to the object, or to a `List` of the objects, as kubectl) and
/// `-o custom-columns=` (one row per object).
async fn get_templated(args: &GetArgs, cluster: &Cluster) -> Result<(), CliError> {
    let mut objects = Vec::new();
    let mut single = None;
    let discovery = CachedDiscovery::new(cluster.client.clone());
    for name in args.resource.split(',').filter(|n| !n.is_empty()) {
        let resource = resolve_in(&discovery, &cluster.client, name).await?;
        let scope = cluster.scope(&resource.api);
        match &args.name {
            Some(object_name) => {
                let request = match &scope {
                    Scope::AllNamespaces => return Err(CliError::Usage(ACROSS_NAMESPACES.into())),
                    Scope::Namespace(ns) => {
                        Request::get_of::<DynamicObject>(resource.api.clone(), object_name).namespace(ns)
                    }
                    Scope::Cluster => Request::get_of::<DynamicObject>(resource.api.clone(), object_name),
                };
                let mut object = cluster
                    .client
                    .run(&request)
                    .await
                    .map_err(|source| CliError::Request {
                        what: format!(
                            "getting {}",
                            scope.describe(&format!("{} \"{object_name}\"", resource.api.plural))
                        ),
                        source: Box::new(source),
                    })?;
                fill_types(&mut object, &resource.api);
                single = Some(object.clone());
                objects.push(object);
            }
            None => objects.extend(list(args, cluster, &resource).await?),
        }
    }
    let values: Vec<Value> = objects
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(|e| CliError::Output(std::io::Error::other(e)))?;
    match &args.output {
        OutputArg::JsonPath(template) => {
            let data = match (&single, values.as_slice()) {
                (Some(_), [object]) => object.clone(),
                _ => {
                    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": values, "metadata": {"resourceVersion": ""}})
                }
            };
            emit(&template.render(&data))
        }
        OutputArg::CustomColumns(columns) => {
            let rows: Vec<Vec<String>> = values.iter().map(|v| columns.row(v)).collect();
            emit(&crate::output::columns_text(
                &columns.headers(),
                &rows,
                args.no_headers,
            ))
        }
        OutputArg::Plain(_) => Ok(()),
    }
}

/// How the server's Table is printed for these arguments.
fn print(args: &GetArgs, scope: &Scope, kind_prefix: Option<String>) -> Print {
    Print {
        wide: args.format() == OutputFormat::Wide,
        namespaces: scope.shows_namespaces(),
        kind_prefix,
        no_headers: args.no_headers,
        label_columns: args.label_columns.clone(),
        show_labels: args.show_labels,
    }
}

/// The Table of every object of `resource` in scope, as the server prints it; NAME and AGE when
/// the server does not serve Tables.
async fn table_of(args: &GetArgs, cluster: &Cluster, resource: &ResourceType) -> Result<Table, CliError> {
    let scope = cluster.scope(&resource.api);
    let what = format!("listing {}", scope.describe(&resource.api.plural));
    let mut request = scope.apply(Request::list_dynamic(&resource.api)).limit(500);
    if let Some(labels) = &args.selector {
        request = request.labels(labels);
    }
    if let Some(fields) = &args.field_selector {
        request = request.fields(fields);
    }
    let mut table: Option<Table> = None;
    let mut next = request.clone();
    // Bounded: a server that kept sending continue tokens would be a bug; kubectl stops never.
    for _ in 0..MAX_PAGES {
        let Some(answer) = fetch(cluster, &next.path_and_query(), &what).await? else {
            break;
        };
        let Some(page) = Table::parse(&answer) else {
            // Not a Table: the server's plain list, printed as NAME and AGE.
            let items = list(args, cluster, resource).await?;
            return Ok(server_table::fallback(&items, Timestamp::now()));
        };
        match table.as_mut() {
            Some(table) => table.extend(page),
            None => table = Some(page),
        }
        match answer
            .pointer("/metadata/continue")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            Some(token) => next = request.clone().continue_token(token),
            None => break,
        }
    }
    let mut table = table.unwrap_or_default();
    if args.sort_by.is_some() {
        // The Table's rows carry metadata only: the order comes from the objects themselves.
        let objects = list(args, cluster, resource).await?;
        let rank: std::collections::HashMap<(String, String), usize> = objects
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let key = (
                    o.metadata.namespace.clone().unwrap_or_default(),
                    o.metadata.name.clone().unwrap_or_default(),
                );
                (key, i)
            })
            .collect();
        table.rows.sort_by_key(|r| {
            rank.get(&(r.namespace.clone(), r.name.clone()))
                .copied()
                .unwrap_or(usize::MAX)
        });
    }
    Ok(table)
}

/// The most pages of 500 a `get` reads.
const MAX_PAGES: usize = 100_000;

/// The server's Table of one object or list at `path`, or `None` if it answers in another form.
async fn server_table(cluster: &Cluster, path: &str, what: &str) -> Result<Option<Table>, CliError> {
    Ok(fetch(cluster, path, what).await?.as_ref().and_then(Table::parse))
}

/// GET `path` asking for a Table; the answer as JSON (`None` if it is not JSON).
async fn fetch(cluster: &Cluster, path: &str, what: &str) -> Result<Option<Value>, CliError> {
    fetch_table(&cluster.client, path)
        .await
        .map_err(|source| CliError::Request {
            what: what.to_string(),
            source: Box::new(source),
        })
}

/// GET `path` asking for a Table, as kubectl asks; the answer as JSON (`None` if it is not JSON:
/// a Table, or the plain form of a server without Tables).
pub async fn fetch_table(client: &kazan::Client, path: &str) -> Result<Option<Value>, kazan::Error> {
    let request = http::Request::get(path)
        .header(http::header::ACCEPT, server_table::TABLE_ACCEPT)
        .body(Bytes::new())
        .map_err(|e| kazan::Error::InvalidRequest(format!("GET {path}: {e}")))?;
    let response = client.send_raw(request).await?;
    let body = response.into_body().read_all(MAX_TABLE_BYTES).await?;
    Ok(serde_json::from_slice(&body).ok())
}

/// The largest Table page read.
const MAX_TABLE_BYTES: usize = 256 * 1024 * 1024;

/// As kubectl: on stderr, so that stdout stays empty.
fn no_resources(scope: &Scope) {
    match scope {
        Scope::Namespace(ns) => eprintln!("No resources found in {ns} namespace."),
        _ => eprintln!("No resources found"),
    }
}

/// Every object of `resource` in the command's scope and selectors (every page).
async fn list(
    args: &GetArgs,
    cluster: &Cluster,
    resource: &ResourceType,
) -> Result<Vec<DynamicObject>, CliError> {
    let scope = cluster.scope(&resource.api);
    let mut request = scope
        .apply(Request::list_dynamic(&resource.api))
        .limit(500)
        .metadata_only(args.metadata_only);
    if let Some(labels) = &args.selector {
        request = request.labels(labels);
    }
    if let Some(fields) = &args.field_selector {
        request = request.fields(fields);
    }
    let list = cluster
        .client
        .list_all(&request)
        .await
        .map_err(|source| CliError::Request {
            what: format!("listing {}", scope.describe(&resource.api.plural)),
            source: Box::new(source),
        })?;
    let mut items = list.items;
    for object in &mut items {
        fill_types(object, &resource.api);
    }
    if let Some(by) = &args.sort_by {
        sort_objects(&mut items, by);
    }
    Ok(items)
}

/// `get po,svc`: each type listed in turn, printed as kubectl prints several types.
async fn get_several(args: &GetArgs, cluster: &Cluster) -> Result<(), CliError> {
    if args.name.is_some() {
        return Err(CliError::Usage(format!(
            "a name goes with one resource type, not several (\"{}\")",
            args.resource
        )));
    }
    let discovery = CachedDiscovery::new(cluster.client.clone());
    let mut resources = Vec::new();
    for name in args.resource.split(',').filter(|n| !n.is_empty()) {
        resources.push(resolve_in(&discovery, &cluster.client, name).await?);
    }
    if resources.is_empty() {
        return Err(CliError::UnknownResource(args.resource.clone()));
    }
    if args.format().is_table() {
        let mut tables = Vec::new();
        for resource in &resources {
            let table = table_of(args, cluster, resource).await?;
            let print = print(args, &cluster.scope(&resource.api), Some(resource.name_prefix()));
            tables.push(server_table::render(&table, &print));
        }
        let tables: Vec<String> = tables.into_iter().filter(|t| !t.is_empty()).collect();
        if tables.is_empty() {
            no_resources(&if cluster.all_namespaces {
                Scope::AllNamespaces
            } else {
                Scope::Namespace(cluster.namespace.clone())
            });
        }
        return emit(&tables.join("\n"));
    }
    let mut groups = Vec::new();
    for resource in resources {
        let items = list(args, cluster, &resource).await?;
        groups.push((resource, items));
    }
    emit(&render_lists(
        args.format(),
        &groups,
        cluster.all_namespaces,
        Timestamp::now(),
    )?)
}
