//! `kazan watch`: the objects of a resource type and then every change to them, as they happen,
//! built on [`kazan::Watcher`] (which resumes across server timeouts and dropped connections).
//!
//! On 410 Gone the watch cannot go on from where it was: it prints a GONE line and exits with
//! status 3, or, with `--relist`, lists again, prints what changed while it was away and watches on
//! from the new list. With `--relist` (and no `--resource-version`) it runs on
//! [`kazan::informer`], which relists in place and reports the objects that vanished meanwhile;
//! `--checkpoint FILE` keeps the informer's store in a file, so that the next run watches on from
//! its version with no list.

use std::{collections::BTreeMap, path::PathBuf, process::ExitCode, time::Duration};

use jiff::Timestamp;
use kazan::{
    Client, DynamicObject, Object, ObjectList, Request,
    informer::{
        self, CheckpointStatus, Informer, InformerError, InformerOptions, Overflow, SubscribeOptions,
    },
    watcher::{EventKind, EventType, InitialList, WatcherHandle, WatcherOptions},
};

#[path = "shards.rs"]
mod shards;

use crate::{
    cluster::{Cluster, ClusterArgs, Scope},
    error::CliError,
    logging,
    output::{OutputFormat, WatchPrinter, Watched, columns::fallback_columns},
    reach::Reachability,
    resolve::{ResourceType, resolve},
    terminal::{Signals, emit, stdout_closed},
};

/// How often a quiet watch looks at whether stdout's reader and the server are still there.
const TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// The exit status after 410 Gone without `--relist`.
pub const EXIT_GONE: u8 = 3;

/// How often `--checkpoint` writes its file (when something changed), besides on exit.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

const EXAMPLES: &str = "\
Examples:
  # The pods of the current namespace, then every change (Ctrl-C stops)
  kazan watch pods

  # Deployments in every namespace, with more columns
  kazan watch deploy -A -o wide

  # One config map, as one JSON object per line, into jq
  kazan watch cm settings -n prod -o json | jq -c '[.type, .object.metadata.resourceVersion]'

  # Only changes, of pods labelled app=web, with the watcher's retries and resumes logged
  kazan watch po -l app=web --watch-only --log-level info

  # Every change after a resourceVersion, as `type kind/name`
  kazan watch configmaps --resource-version 48213 -o name

  # Each change with the time it was received
  kazan watch pods --timestamps

  # A custom resource; on 410 Gone list again and go on instead of exiting with status 3
  kazan watch widgets.example.com --relist

  # Go on where the last run stopped: only what changed since is printed
  kazan watch pods -A --checkpoint pods.checkpoint

  # The watcher's metrics for Prometheus at http://127.0.0.1:9464/metrics
  kazan watch pods -A --metrics-addr 127.0.0.1:9464

  # Run this on 3 machines: each prints only the pods of the slots it holds (of 6), and takes
  # over a stopped or dead one's (see `kazan lease --prefix pod-watchers`)
  kazan watch pods -A --shards 6 --shard-lease pod-watchers --lease-namespace default

A DELETED? event (\"finalStateUnknown\": true in -o json) is an object a relist no longer
found: its deletion was not seen, the object shown is its last known state.

When the server cannot be reached, stderr says so once (kazan keeps retrying) and once when it
answers again; --log-level warn shows each retry.

Exit status: 0 after Ctrl-C or SIGTERM, 3 after 410 Gone (without --relist), 1 on an error.";

/// Arguments of `kazan watch`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct WatchArgs {
    /// The resource type: plural, singular, short name or kind (`pods`, `pod`, `po`, `Pod`), or
    /// `resource.group` / `resource.version.group` (`deployments.apps`, `widgets.v1.example.com`).
    #[arg(value_name = "RESOURCE")]
    resource: String,

    /// Watch only the object with this name (or give `TYPE/NAME` as the resource: `pod/web-1`).
    #[arg(value_name = "NAME")]
    name: Option<String>,

    /// Label selector, e.g. `app=web,tier!=db`.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    selector: Option<String>,

    /// Field selector, e.g. `status.phase=Running`.
    #[arg(long, value_name = "SELECTOR")]
    field_selector: Option<String>,

    /// Print every change after this resourceVersion (no list first).
    #[arg(long, value_name = "RV")]
    resource_version: Option<String>,

    /// Print only changes, not the objects that exist at the start.
    #[arg(long)]
    watch_only: bool,

    /// Output form.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT", default_value_t)]
    output: OutputFormat,

    /// Show when each event was received: a TIME column first (a `time` field in JSON and YAML,
    /// a prefix with -o name), RFC 3339 in UTC.
    #[arg(long)]
    timestamps: bool,

    /// A name for the watcher, shown on its log lines [default: the resource].
    #[arg(long = "name", value_name = "NAME", id = "watcher_name")]
    watcher_name: Option<String>,

    /// Accepted for kubectl's `get -w --output-watch-events`: kazan's watch always prints the
    /// event type.
    #[arg(long, hide = true)]
    output_watch_events: bool,

    /// After 410 Gone, list again, print what changed meanwhile (vanished objects as DELETED) and
    /// watch on, instead of printing GONE and exiting with status 3. (With --resource-version,
    /// objects not seen since that version print as ADDED.)
    #[arg(long)]
    relist: bool,

    /// Keep what was seen in FILE (written every second when something changed, and on exit): a
    /// later run with the same FILE watches on from its version, with no list, and prints only
    /// what changed since. Implies --relist.
    #[arg(long, value_name = "FILE", conflicts_with = "resource_version")]
    checkpoint: Option<PathBuf>,

    /// How the objects that exist at the start (and at a relist) are fetched: `streaming` in one
    /// watch (sendInitialEvents, Kubernetes 1.32+ by default), `paginated` in list pages, `auto`
    /// streams and lists page by page when the server does not stream.
    #[arg(long, value_enum, value_name = "HOW", default_value_t)]
    initial_list: InitialListArg,

    /// Watch the objects' metadata only (`PartialObjectMetadata`) with -o json, yaml or name: less
    /// to send and hold. (The table output reads the server's Table rows, which hold only the
    /// cells and the metadata anyway.)
    #[arg(long)]
    metadata_only: bool,

    /// Serve the watcher's metrics (events, resumes, retries, bookmarks, lines read, seconds since
    /// the last event) in the Prometheus text format at http://ADDR/metrics, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,

    /// Watch one shard I/N of the objects (KEP-5866): those whose metadata.uid hashes (FNV-1a 64)
    /// into [I·2⁶⁴/N, (I+1)·2⁶⁴/N). N watches 0/N..N-1/N together see every object once. The
    /// selector is sent to the server (Kubernetes 1.36+ with ShardedListAndWatch filters); an
    /// older server sends everything and kazan filters itself.
    #[arg(long, value_name = "I/N")]
    shard: Option<kazan::shard::FixedShard>,

    #[command(flatten)]
    shards: shards::ShardsArgs,

    #[command(flatten)]
    cluster: ClusterArgs,
}

impl WatchArgs {
    /// `kazan get -w`: the same watch as `kazan watch` with these arguments (as `kubectl get -w`).
    pub fn from_get(
        resource: String,
        name: Option<String>,
        selector: Option<String>,
        field_selector: Option<String>,
        output: OutputFormat,
        watch_only: bool,
        cluster: ClusterArgs,
    ) -> WatchArgs {
        WatchArgs {
            resource,
            name,
            selector,
            field_selector,
            resource_version: None,
            watch_only,
            output,
            watcher_name: None,
            timestamps: false,
            output_watch_events: true,
            relist: false,
            checkpoint: None,
            initial_list: InitialListArg::default(),
            metadata_only: false,
            metrics_addr: None,
            shard: None,
            shards: shards::ShardsArgs::default(),
            cluster,
        }
    }
}

/// `--initial-list`: kazan's [`InitialList`].
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
enum InitialListArg {
    #[default]
    Auto,
    Streaming,
    Paginated,
}

impl From<InitialListArg> for InitialList {
    fn from(arg: InitialListArg) -> Self {
        match arg {
            InitialListArg::Auto => InitialList::Auto,
            InitialListArg::Streaming => InitialList::Streaming,
            InitialListArg::Paginated => InitialList::Paginated,
        }
    }
}

/// Runs `kazan watch`.
pub async fn run(args: WatchArgs) -> ExitCode {
    logging::init(args.cluster.log_level);
    match watch(args).await {
        Ok(code) => code,
        Err(CliError::StdoutClosed) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the consumer knows, keyed by namespace and name (`--relist` compares it with a new list).
struct Known<K> {
    objects: BTreeMap<(String, String), K>,
}

impl<K> Default for Known<K> {
    fn default() -> Self {
        Known {
            objects: BTreeMap::new(),
        }
    }
}

fn key(object: &impl Object) -> (String, String) {
    (
        object.namespace().unwrap_or_default().to_string(),
        object.name().to_string(),
    )
}

impl<K: Object + Clone> Known<K> {
    fn apply(&mut self, event_type: EventType, object: &K) {
        match event_type {
            EventType::Deleted => {
                self.objects.remove(&key(object));
            }
            _ => {
                self.objects.insert(key(object), object.clone());
            }
        }
    }

    /// What changed between what is known and `fresh`: vanished objects as DELETED (with their
    /// last known state), then new ones as ADDED and changed ones as MODIFIED, in list order.
    /// Afterwards, `fresh` is what is known.
    fn replace(&mut self, fresh: Vec<K>) -> Vec<(EventType, K)> {
        let mut fresh_map: BTreeMap<(String, String), K> = BTreeMap::new();
        let mut changes = Vec::new();
        let mut order = Vec::new();
        for object in fresh {
            let k = key(&object);
            order.push(k.clone());
            fresh_map.insert(k, object);
        }
        for (k, old) in &self.objects {
            if !fresh_map.contains_key(k) {
                changes.push((EventType::Deleted, old.clone()));
            }
        }
        for k in order {
            let Some(object) = fresh_map.get(&k) else {
                continue;
            };
            match self.objects.get(&k) {
                None => changes.push((EventType::Added, object.clone())),
                Some(old) if old.resource_version() != object.resource_version() => {
                    changes.push((EventType::Modified, object.clone()));
                }
                Some(_) => {}
            }
        }
        self.objects = fresh_map;
        changes
    }
}

/// One `kazan watch`, from its arguments to its end: of whole objects (`K` = [`DynamicObject`],
/// for `-o json|yaml|name`) or of the rows of the server's Tables (`K` =
/// [`TableRow`](kazan::table::TableRow), for the table output).
struct Session<K> {
    client: Client,
    resource: ResourceType,
    request: Request<ObjectList<K>>,
    /// `watching configmaps in namespace "w"`, for messages.
    what: String,
    scope: Scope,
    watcher_name: String,
    initial_list: InitialList,
    /// `--shard`: the shard watched, if any.
    shard: Option<kazan::shard::ShardSelector>,
    printer: WatchPrinter,
    known: Option<Known<K>>,
    /// The one object watched, if a name was given.
    name: Option<String>,
    /// `--metrics-addr`: fed after every event and every tick.
    metrics: Option<kazan::runtime::metrics::WatcherMetrics>,
}

async fn watch(mut args: WatchArgs) -> Result<ExitCode, CliError> {
    // `watch pod/web-1`, as kubectl's TYPE/NAME.
    if args.name.is_none()
        && let Some((resource, name)) = args.resource.clone().split_once('/')
    {
        args.resource = resource.to_string();
        args.name = Some(name.to_string());
    }
    if args.watch_only && args.resource_version.is_some() {
        return Err(CliError::Usage(
            "--watch-only and --resource-version do not go together: a watch from a version prints only changes anyway".into(),
        ));
    }
    if args.resource.contains(',') {
        // kubectl's answer to `get po,svc -w`: a watch is of one type.
        return Err(CliError::Usage(format!(
            "you may only specify a single resource type (\"{}\" names several): run one kazan watch per type",
            args.resource
        )));
    }
    let mut signals = Signals::new()?;
    let cluster = Cluster::connect(&args.cluster)?;
    let resource = resolve(&cluster.client, &args.resource).await?;
    let scope = cluster.scope(&resource.api);
    if args.name.is_some() && scope == Scope::AllNamespaces {
        return Err(CliError::Usage(crate::get::ACROSS_NAMESPACES.into()));
    }
    let subject = match &args.name {
        Some(name) => format!("{} \"{name}\"", resource.api.plural),
        None => resource.api.plural.clone(),
    };
    let watcher_name = args
        .watcher_name
        .clone()
        .unwrap_or_else(|| resource.api.plural.clone());
    let metrics = match args.metrics_addr {
        Some(addr) => Some(crate::metrics::serve(addr, &watcher_name).await?),
        None => None,
    };
    let setup = Setup {
        client: cluster.client.clone(),
        metrics,
        printer: WatchPrinter::new(args.output, resource.clone(), scope.shows_namespaces())
            .with_timestamps(args.timestamps),
        watcher_name,
        initial_list: args.initial_list.into(),
        shard: match args.shard {
            Some(shard) => Some(
                shard
                    .selector(kazan::shard::ShardKey::Uid)
                    .map_err(|e| CliError::Usage(e.to_string()))?,
            ),
            None => None,
        },
        what: format!("watching {}", scope.describe(&subject)),
        resource,
        scope,
    };
    // The table output prints the server's columns, as kubectl does: a watch of Table rows.
    match args.output.is_table() {
        true => {
            setup
                .session::<kazan::table::TableRow>(&args)
                .run(&args, &mut signals)
                .await
        }
        false => {
            setup
                .session::<DynamicObject>(&args)
                .run(&args, &mut signals)
                .await
        }
    }
}

/// What a [`Session`] is made of, whatever it watches.
struct Setup {
    client: Client,
    resource: ResourceType,
    what: String,
    scope: Scope,
    watcher_name: String,
    initial_list: InitialList,
    shard: Option<kazan::shard::ShardSelector>,
    printer: WatchPrinter,
    metrics: Option<kazan::runtime::metrics::WatcherMetrics>,
}

impl Setup {
    fn session<K: Watched>(self, args: &WatchArgs) -> Session<K> {
        let mut request = self
            .scope
            .apply(Request::list_of::<K>(&self.resource.api))
            .metadata_only(args.metadata_only);
        if let Some(labels) = &args.selector {
            request = request.labels(labels);
        }
        let fields = [
            args.name.as_ref().map(|n| format!("metadata.name={n}")),
            args.field_selector.clone(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
        if !fields.is_empty() {
            request = request.fields(&fields.join(","));
        }
        Session {
            client: self.client,
            resource: self.resource,
            request,
            what: self.what,
            scope: self.scope,
            watcher_name: self.watcher_name,
            initial_list: self.initial_list,
            shard: self.shard,
            printer: self.printer,
            known: args.relist.then(Known::default),
            name: args.name.clone(),
            metrics: self.metrics,
        }
    }
}

impl<K: Watched> Session<K> {
    async fn run(&mut self, args: &WatchArgs, signals: &mut Signals) -> Result<ExitCode, CliError> {
        if args.shards.on() {
            return self.run_sharded(args, signals).await;
        }
        if (args.relist || args.checkpoint.is_some()) && args.resource_version.is_none() {
            return self.run_informer(args, signals).await;
        }
        let print_first_batch = args.resource_version.is_none() && !args.watch_only;
        if !print_first_batch {
            self.ensure_columns(&[]).await;
            emit(&self.printer.start(Timestamp::now())?)?;
        }
        let mut start = match &args.resource_version {
            Some(rv) => Start::From(rv.clone()),
            None => Start::List {
                print: print_first_batch,
            },
        };
        loop {
            let handle = self.start_watcher(&start)?;
            match self.consume(handle, &start, signals).await? {
                Ended::Stopped => return Ok(ExitCode::SUCCESS),
                Ended::Gone(message) if self.known.is_none() => {
                    emit(&self.printer.gone(&message)?)?;
                    eprintln!(
                        "error: {}: the watch expired (410 Gone: {message}); run it again, or add --relist to list again and go on",
                        self.what
                    );
                    return Ok(ExitCode::from(EXIT_GONE));
                }
                Ended::Gone(message) => {
                    start = Start::From(self.relist(&message).await?);
                }
            }
        }
    }

    fn start_watcher(&self, start: &Start) -> Result<WatcherHandle<kazan::watcher::Event<K>>, CliError> {
        let mut options = WatcherOptions::new()
            .name(self.watcher_name.clone())
            .initial_list(self.initial_list)
            .log(Some(tracing::Level::INFO));
        if let Some(shard) = &self.shard {
            options = options.shard(shard.clone());
        }
        options = match start {
            Start::From(rv) => options.resource_version(rv.clone()),
            Start::List { .. } => options.deliver_initial_list(self.delivers_first_list(start)),
        };
        kazan::Watcher::start(self.client.clone(), self.request.clone(), options).map_err(|e| {
            CliError::Watch {
                what: self.what.clone(),
                source: std::sync::Arc::new(e),
            }
        })
    }

    /// Whether the watcher delivers its first list: when it is printed, or must be known to
    /// compare with after Gone (`--relist`).
    fn delivers_first_list(&self, start: &Start) -> bool {
        match start {
            Start::List { print } => *print || self.known.is_some(),
            Start::From(_) => false,
        }
    }

    /// Prints the events of one watcher until it ends (Gone), a signal stops it, or it fails.
    async fn consume(
        &mut self,
        mut handle: WatcherHandle<kazan::watcher::Event<K>>,
        start: &Start,
        signals: &mut Signals,
    ) -> Result<Ended, CliError> {
        // The objects of the first list, when it is delivered: held until the list is complete
        // (so that a table can fit them), then printed or only remembered.
        let print_first_batch = matches!(start, Start::List { print: true });
        let mut first_batch: Option<Vec<K>> = (self.delivers_first_list(start)).then(Vec::new);
        let mut reach = Reachability::new(&self.client);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                biased;
                () = signals.recv() => {
                    handle.stop().await;
                    return Ok(Ended::Stopped);
                }
                event = handle.recv() => event,
                _ = tick.tick() => {
                    if stdout_closed() {
                        handle.stop().await;
                        return Err(CliError::StdoutClosed);
                    }
                    let stats = handle.stats();
                    // The watcher counts an event once it is handed over, which may be just after
                    // the consumer took it: the tick catches the metrics up within a second.
                    if let Some(metrics) = &self.metrics {
                        metrics.update(&stats);
                    }
                    reach.check(stats.retries).await;
                    continue;
                }
            };
            let Some(event) = event else {
                // The watcher always ends with Gone or Failed; a silent end is a bug to report.
                return Err(CliError::Unexpected(format!(
                    "{}: the watcher ended without saying why ({:?})",
                    self.what,
                    handle.end_reason()
                )));
            };
            if let Some(metrics) = &self.metrics {
                metrics.update(&handle.stats());
            }
            let event_type = event.event_type();
            match event.kind {
                EventKind::Added(mut object)
                | EventKind::Modified(mut object)
                | EventKind::Deleted(mut object) => {
                    object.prepare(&self.resource.api);
                    if let Some(batch) = first_batch.as_mut() {
                        batch.push(object);
                        continue;
                    }
                    if let Some(known) = self.known.as_mut() {
                        known.apply(event_type, &object);
                    }
                    self.ensure_columns(std::slice::from_ref(&object)).await;
                    emit(&self.printer.event(event_type, &object, Timestamp::now())?)?;
                }
                EventKind::Synced => {
                    let batch = first_batch.take().unwrap_or_default();
                    if let (Some(name), true) = (&self.name, batch.is_empty() && print_first_batch) {
                        // Not silent: `kazan watch po svc` watches for a pod named "svc".
                        eprintln!(
                            "kazan: no {} yet; watching for it (Ctrl-C stops)",
                            self.scope
                                .describe(&format!("{} \"{name}\"", self.resource.singular))
                        );
                    }
                    if print_first_batch {
                        self.ensure_columns(&batch).await;
                        emit(&self.printer.first_batch(&batch, Timestamp::now())?)?;
                    }
                    if let Some(known) = self.known.as_mut() {
                        // Nothing was known before the first list: no changes to print.
                        let _ = known.replace(batch);
                    }
                }
                EventKind::Gone { message } => return Ok(Ended::Gone(message)),
                EventKind::Failed(source) => {
                    return Err(CliError::Watch {
                        what: self.what.clone(),
                        source,
                    });
                }
                // Bookmarks move the resume point only; skipped events were logged by the watcher.
                EventKind::Bookmark | EventKind::Skipped(_) => {}
            }
        }
    }

    /// After Gone with `--relist`: lists again, prints what changed meanwhile, and returns the
    /// version to watch on from.
    async fn relist(&mut self, message: &str) -> Result<String, CliError> {
        tracing::warn!(
            "{}: the watch expired (410 Gone: {message}); listing again",
            self.what
        );
        let list = self
            .client
            .list_all(&self.request.clone().limit(500))
            .await
            .map_err(|source| CliError::Request {
                what: format!(
                    "listing {} again after 410 Gone",
                    self.scope.describe(&self.resource.api.plural)
                ),
                source: Box::new(source),
            })?;
        let rv = list
            .metadata
            .resource_version
            .clone()
            .filter(|rv| !rv.is_empty())
            .ok_or_else(|| {
                CliError::Unexpected(format!(
                    "{}: the server's list answer carries no resourceVersion to watch from",
                    self.what
                ))
            })?;
        let mut items = list.items;
        for object in &mut items {
            object.prepare(&self.resource.api);
        }
        let changes = self.known.get_or_insert_with(Known::default).replace(items);
        tracing::info!(
            "{}: {} changes while the watch was away; watching on from resourceVersion {rv}",
            self.what,
            changes.len()
        );
        for (event_type, object) in changes {
            self.ensure_columns(std::slice::from_ref(&object)).await;
            emit(&self.printer.event(event_type, &object, Timestamp::now())?)?;
        }
        Ok(rv)
    }

    /// Gives a table its columns when none are known and `items` bring none: the server sends
    /// its column definitions with the first list page and the first event of each watch, and a
    /// watch that starts with no object (or whose first event was a bookmark) has none to print
    /// under. They are asked for once, as a Table of at most one object; NAME and AGE if the
    /// server has no Table for the resource (or cannot be asked now: the next item asks again).
    async fn ensure_columns(&mut self, items: &[K]) {
        if !self.printer.needs_columns(items) {
            return;
        }
        let request = self.request.clone().limit(1).param("includeObject", "None");
        let path = request.path_and_query();
        let columns = match crate::get::fetch_table(&self.client, &path).await {
            Ok(Some(answer)) if answer.get("kind").and_then(serde_json::Value::as_str) == Some("Table") => {
                serde_json::from_value(answer["columnDefinitions"].clone())
                    .unwrap_or_else(|_| fallback_columns())
            }
            // Not a Table, or (for a server that knows no plain fallback) 406 Not Acceptable.
            Ok(_) => fallback_columns(),
            Err(e) if e.status_code() == Some(406) => fallback_columns(),
            Err(e) => {
                tracing::warn!(
                    "{}: asking the server for its table columns failed: {e}",
                    self.what
                );
                return;
            }
        };
        self.printer.set_columns(columns);
    }
}

impl<K: Watched> Session<K> {
    /// `--relist` (or `--checkpoint`) without a starting version: an informer keeps the store,
    /// relists in place after Gone and reports what vanished meanwhile. Its events are printed as
    /// they come; the first list (or the checkpoint's snapshot) is printed as one batch, unless
    /// `--watch-only` or the run resumes from a checkpoint.
    async fn run_informer(&mut self, args: &WatchArgs, signals: &mut Signals) -> Result<ExitCode, CliError> {
        let mut watcher = WatcherOptions::new()
            .name(self.watcher_name.clone())
            .initial_list(self.initial_list)
            .log(Some(tracing::Level::INFO));
        if let Some(shard) = &self.shard {
            watcher = watcher.shard(shard.clone());
        }
        let mut options = InformerOptions::new().watcher(watcher);
        if let Some(path) = &args.checkpoint {
            options = options.checkpoint(path, CHECKPOINT_INTERVAL);
        }
        // Every event is printed: a slow stdout holds the watch back rather than coalescing. The
        // subscription is taken before the informer applies anything, so that its snapshot is the
        // initial state alone (the checkpoint's objects are not printed again; what changed since
        // comes as events).
        let (informer, mut events) = Informer::start_subscribed(
            self.client.clone(),
            self.request.clone(),
            options,
            SubscribeOptions::new().overflow(Overflow::Backpressure),
        )
        .map_err(|e| self.informer_error(&e))?;
        let resumed = match informer.checkpoint_status() {
            CheckpointStatus::Loaded { .. } => true,
            CheckpointStatus::Rejected(error) => {
                eprintln!("warning: {error}; listing afresh");
                false
            }
            _ => false,
        };
        let print_first_batch = !args.watch_only && !resumed;
        if !print_first_batch {
            self.ensure_columns(&[]).await;
            emit(&self.printer.start(Timestamp::now())?)?;
        }
        // Until the first Synced: the first list, or the checkpoint's objects.
        let mut first_batch: Option<Vec<K>> = Some(Vec::new());
        let mut informer_events = 0u64;
        loop {
            let event = tokio::select! {
                biased;
                () = signals.recv() => {
                    drop(events);
                    // Writes the checkpoint one last time.
                    informer.stop().await.map_err(|e| self.informer_error(&e))?;
                    return Ok(ExitCode::SUCCESS);
                }
                event = events.recv() => event,
            };
            let Some(event) = event else {
                return Err(match informer.wait().await {
                    Err(e) => self.informer_error(&e),
                    Ok(()) => {
                        CliError::Unexpected(format!("{}: the informer ended without saying why", self.what))
                    }
                });
            };
            if let Some(metrics) = &self.metrics
                && event.object().is_some()
            {
                // The informer does not expose its watcher's counters: count what it hands over.
                informer_events += 1;
                metrics.update(&kazan::watcher::WatcherStats {
                    events: informer_events,
                    ..Default::default()
                });
            }
            let unseen = event.is_final_state_unknown();
            let event_type = event.event_type();
            let object = match event.kind {
                informer::EventKind::Added(o)
                | informer::EventKind::Modified { new: o, .. }
                | informer::EventKind::Deleted { last: o, .. } => o,
                informer::EventKind::Synced => {
                    if let Some(batch) = first_batch.take()
                        && print_first_batch
                    {
                        self.ensure_columns(&batch).await;
                        emit(&self.printer.first_batch(&batch, Timestamp::now())?)?;
                    }
                    continue;
                }
            };
            if first_batch.is_some() && !print_first_batch {
                continue;
            }
            let mut object = K::clone(&object);
            object.prepare(&self.resource.api);
            if let Some(batch) = first_batch.as_mut() {
                batch.push(object);
                continue;
            }
            self.ensure_columns(std::slice::from_ref(&object)).await;
            let line = match unseen {
                true => self.printer.unseen_delete(&object, Timestamp::now())?,
                false => self.printer.event(event_type, &object, Timestamp::now())?,
            };
            emit(&line)?;
        }
    }

    fn informer_error(&self, error: &InformerError) -> CliError {
        match error {
            InformerError::Watch(source) => CliError::Watch {
                what: self.what.clone(),
                source: source.clone(),
            },
            other => CliError::Unexpected(format!("{}: {other}", self.what)),
        }
    }
}

/// How a watcher starts.
enum Start {
    /// List first (`print`: show the list as ADDED events).
    List { print: bool },
    /// Strictly after this resourceVersion.
    From(String),
}

/// How a watcher ended, when the command may go on.
enum Ended {
    /// Ctrl-C or SIGTERM.
    Stopped,
    /// 410 Gone, with the server's message.
    Gone(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(name: &str, rv: &str) -> Result<DynamicObject, serde_json::Error> {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "w", "resourceVersion": rv}}))
    }

    fn summary(changes: &[(EventType, DynamicObject)]) -> Vec<String> {
        changes
            .iter()
            .map(|(t, o)| format!("{t} {}", o.metadata.name.as_deref().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn a_relist_reports_what_vanished_appeared_and_changed() -> Result<(), serde_json::Error> {
        let mut known = Known::default();
        known.apply(EventType::Added, &object("a", "1")?);
        known.apply(EventType::Added, &object("b", "2")?);
        known.apply(EventType::Added, &object("c", "3")?);
        known.apply(EventType::Deleted, &object("c", "4")?);
        let changes = known.replace(vec![object("d", "9")?, object("a", "7")?]);
        assert_eq!(summary(&changes), ["DELETED b", "ADDED d", "MODIFIED a"]);
        // Nothing changed since: nothing to print.
        assert!(
            known
                .replace(vec![object("d", "9")?, object("a", "7")?])
                .is_empty()
        );
        Ok(())
    }
}
