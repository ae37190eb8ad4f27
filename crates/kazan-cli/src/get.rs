//! `kazan get`: one list (every page) or one object, in the same output forms as `kazan watch`.

use std::process::ExitCode;

use jiff::Timestamp;
use kazan::{DynamicObject, Request};

use crate::{
    cluster::{Cluster, ClusterArgs, Scope},
    error::CliError,
    logging,
    output::{OutputFormat, fill_types, render_list, render_object},
    resolve::resolve,
    terminal::emit,
};

const EXAMPLES: &str = "\
Examples:
  # The pods of the current namespace
  kazan get pods

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

    /// Ask for the objects' metadata only (`PartialObjectMetadata`): less to send and hold; table
    /// columns read from the spec or status are then empty.
    #[arg(long)]
    metadata_only: bool,

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
                return Err(CliError::Usage(
                    "an object cannot be got by name across all namespaces: give -n NAMESPACE instead of -A"
                        .into(),
                ));
            }
        }
        .metadata_only(args.metadata_only);
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
    if items.is_empty() && matches!(args.output, OutputFormat::Table | OutputFormat::Wide) {
        // As kubectl: on stderr, so that stdout stays empty.
        match &scope {
            Scope::Namespace(ns) => eprintln!("No resources found in {ns} namespace."),
            _ => eprintln!("No resources found"),
        }
    }
    emit(&render_list(
        args.output,
        &resource,
        scope.shows_namespaces(),
        &items,
        now,
    )?)
}
