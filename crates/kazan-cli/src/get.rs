//! `kazan get`: one list (every page) or one object, in the same output forms as `kazan watch`.

use std::process::ExitCode;

use jiff::Timestamp;
use kazan::{DynamicObject, Request};

use crate::{
    cluster::{Cluster, ClusterArgs, Scope},
    error::CliError,
    logging,
    output::{OutputFormat, fill_types, render_list, render_lists, render_object},
    resolve::{ResourceType, resolve},
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
  kazan get widgets.example.com -o yaml";

/// Arguments of `kazan get`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct GetArgs {
    /// The resource type: plural, singular, short name or kind (`pods`, `pod`, `po`, `Pod`), or
    /// `resource.group` / `resource.version.group` (`deployments.apps`, `widgets.v1.example.com`).
    #[arg(value_name = "RESOURCE")]
    resource: String,

    /// Get only the object with this name.
    #[arg(value_name = "NAME")]
    name: Option<String>,

    /// Label selector, e.g. `app=web,tier!=db`.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    selector: Option<String>,

    /// Field selector, e.g. `status.phase=Running`.
    #[arg(long, value_name = "SELECTOR")]
    field_selector: Option<String>,

    /// Output form.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t)]
    output: OutputFormat,

    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Runs `kazan get`.
pub async fn run(args: GetArgs) -> ExitCode {
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
        };
        let mut object = cluster
            .client
            .run(&request)
            .await
            .map_err(|source| CliError::Request {
                what: format!(
                    "getting {}",
                    scope.describe(&format!("{} \"{name}\"", resource.api.plural))
                ),
                source: Box::new(source),
            })?;
        fill_types(&mut object, &resource.api);
        return emit(&render_object(args.output, &resource, &object, now)?);
    }
    let items = list(&args, &cluster, &resource).await?;
    if items.is_empty() && matches!(args.output, OutputFormat::Table | OutputFormat::Wide) {
        no_resources(&scope);
    }
    emit(&render_list(
        args.output,
        &resource,
        scope.shows_namespaces(),
        &items,
        now,
    )?)
}

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
    let mut request = scope.apply(Request::list_dynamic(&resource.api)).limit(500);
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
    let mut groups = Vec::new();
    for name in args.resource.split(',').filter(|n| !n.is_empty()) {
        let resource = resolve(&cluster.client, name).await?;
        let items = list(args, cluster, &resource).await?;
        groups.push((resource, items));
    }
    if groups.is_empty() {
        return Err(CliError::UnknownResource(args.resource.clone()));
    }
    if groups.iter().all(|(_, items)| items.is_empty())
        && matches!(args.output, OutputFormat::Table | OutputFormat::Wide)
    {
        no_resources(&if cluster.all_namespaces {
            Scope::AllNamespaces
        } else {
            Scope::Namespace(cluster.namespace.clone())
        });
    }
    emit(&render_lists(
        args.output,
        &groups,
        cluster.all_namespaces,
        Timestamp::now(),
    )?)
}
