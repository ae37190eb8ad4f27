//! A real, small operator: `Greeting` objects (a custom resource) each get a ConfigMap holding
//! their message. Shows the whole controller runtime at work:
//!
//! - the CRD is created through the API (with the `status` subresource);
//! - a [`Controller`] on Greetings that [`owns`](Controller::owns) ConfigMaps: the ConfigMap
//!   carries an `ownerReference` with `controller: true`, so a change to it (someone edits or
//!   deletes it) brings its Greeting back to the reconcile, which repairs it;
//! - `status.conditions` (a `Ready` condition with `observedGeneration`) written through the
//!   `status` subresource, only when it changes;
//! - cleanup through the [`finalizer`](kazan::runtime::finalizer::finalizer) helper: the
//!   ConfigMap is deleted before the Greeting may go (a cluster's garbage collector would delete
//!   it through the ownerReference too; the finalizer stands for cleanup the collector cannot do,
//!   such as something outside Kubernetes).
//!
//! Then it makes changes (create, change the spec, tamper with the ConfigMap, delete), checks the
//! end state after each, and exits with status 1 if anything is wrong.
//!
//! ```text
//! cargo run -p kazan --example operator                   # against an embedded API server
//! cargo run -p kazan --example operator -- --cluster      # against the cluster of your kubeconfig
//! cargo run -p kazan --example operator -- --cluster --namespace demo
//! ```
//!
//! By default it always starts the embedded API server in-process (so a `KUBECONFIG` in your
//! environment is never touched by accident). With `--cluster` the same code runs against the
//! cluster `KUBECONFIG` (or `~/.kube/config`, or the in-cluster service account) points to, in
//! `--namespace` (default `default`); it needs rights to create CustomResourceDefinitions and to
//! manage Greetings and ConfigMaps there. It deletes its Greetings and the CRD at the end.

use std::{process::ExitCode, sync::Arc, time::Duration};

use k8s_openapi::{
    NamespaceResourceScope,
    api::core::v1::ConfigMap,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, OwnerReference, Time},
};
use kazan::{
    Client, Config, Object, Request,
    runtime::{
        Action, Controller, ObjectKey,
        finalizer::{Event, FinalizerError, finalizer},
    },
};
use kazan_apiserver::ApiServer;
use serde::{Deserialize, Serialize};
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const GROUP: &str = "example.kazan.dev";
const CRD_NAME: &str = "greetings.example.kazan.dev";
const FINALIZER: &str = "example.kazan.dev/cleanup";
/// How long each check waits for the operator to converge.
const CONVERGE: Duration = Duration::from_secs(30);

/// The custom resource: `spec.name` is who to greet.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Greeting {
    #[serde(default = "api_version")]
    api_version: String,
    #[serde(default = "kind")]
    kind: String,
    metadata: ObjectMeta,
    spec: GreetingSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<GreetingStatus>,
}

fn api_version() -> String {
    format!("{GROUP}/v1")
}

fn kind() -> String {
    "Greeting".into()
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct GreetingSpec {
    name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GreetingStatus {
    #[serde(default)]
    conditions: Vec<Condition>,
}

impl k8s_openapi::Resource for Greeting {
    const API_VERSION: &'static str = "example.kazan.dev/v1";
    const GROUP: &'static str = GROUP;
    const KIND: &'static str = "Greeting";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "greetings";
    type Scope = NamespaceResourceScope;
}

impl k8s_openapi::Metadata for Greeting {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// What every reconcile gets.
struct Context {
    client: Client,
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error("writing the ConfigMap of {key} failed")]
    ConfigMap {
        key: ObjectKey,
        #[source]
        source: kazan::Error,
    },
    #[error("writing the status of {key} failed")]
    Status {
        key: ObjectKey,
        #[source]
        source: kazan::Error,
    },
    #[error("the Greeting has no uid yet")]
    NoUid,
}

fn config_map_name(greeting: &Greeting) -> String {
    format!("greeting-{}", greeting.name())
}

fn message(greeting: &Greeting) -> String {
    format!("Hello, {}!", greeting.spec.name)
}

/// Brings the ConfigMap and the status in line with the Greeting.
async fn apply(greeting: Arc<Greeting>, client: &Client) -> Result<Action, ReconcileError> {
    let key = ObjectKey::of(greeting.as_ref());
    let namespace = greeting.namespace().unwrap_or("default").to_string();
    let name = config_map_name(&greeting);
    let uid = greeting.metadata.uid.clone().ok_or(ReconcileError::NoUid)?;
    let wanted = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            owner_references: Some(vec![OwnerReference {
                api_version: api_version(),
                kind: kind(),
                name: greeting.name().to_string(),
                uid,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        data: Some([("message".to_string(), message(&greeting))].into()),
        ..ConfigMap::default()
    };
    let cm_error = |source| ReconcileError::ConfigMap {
        key: key.clone(),
        source,
    };
    match client
        .run(&Request::get::<ConfigMap>(&name).namespace(&namespace))
        .await
    {
        Ok(current)
            if current.data == wanted.data
                && current.metadata.owner_references == wanted.metadata.owner_references => {}
        Ok(_) => {
            let patch = json!({"metadata": {"ownerReferences": wanted.metadata.owner_references}, "data": wanted.data});
            client
                .run(&Request::merge_patch::<ConfigMap>(&name, &patch).namespace(&namespace))
                .await
                .map_err(cm_error)?;
        }
        Err(e) if e.status_code() == Some(404) => {
            let create = Request::create(&wanted).map_err(|e| cm_error(e.into()))?;
            client
                .run(&create.namespace(&namespace))
                .await
                .map_err(cm_error)?;
        }
        Err(e) => return Err(cm_error(e)),
    }

    // The status, through the status subresource, only when it says something new.
    let generation = greeting.metadata.generation;
    let ready =
        |c: &Condition| c.type_ == "Ready" && c.status == "True" && c.observed_generation == generation;
    let current = greeting
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    if !current.iter().any(ready) {
        let condition = Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "ConfigMapWritten".into(),
            message: format!("ConfigMap {name} holds the message"),
            observed_generation: generation,
            last_transition_time: Time(jiff::Timestamp::now()),
        };
        let patch = json!({"status": {"conditions": [condition]}});
        client
            .run(
                &Request::merge_patch::<Greeting>(greeting.name(), &patch)
                    .namespace(&namespace)
                    .subresource("status"),
            )
            .await
            .map_err(|source| ReconcileError::Status {
                key: key.clone(),
                source,
            })?;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Deletes the ConfigMap; the finalizer helper removes the finalizer once this succeeded.
async fn cleanup(greeting: Arc<Greeting>, client: &Client) -> Result<Action, ReconcileError> {
    let key = ObjectKey::of(greeting.as_ref());
    let namespace = greeting.namespace().unwrap_or("default");
    let name = config_map_name(&greeting);
    match client
        .run(&Request::delete::<ConfigMap>(&name).namespace(namespace))
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if e.status_code() == Some(404) => Ok(Action::await_change()),
        Err(source) => Err(ReconcileError::ConfigMap { key, source }),
    }
}

async fn reconcile(
    greeting: Arc<Greeting>,
    ctx: Arc<Context>,
) -> Result<Action, FinalizerError<ReconcileError>> {
    let client = &ctx.client;
    finalizer(client, FINALIZER, greeting, |event| async move {
        match event {
            Event::Apply(g) => apply(g, client).await,
            Event::Cleanup(g) => cleanup(g, client).await,
        }
    })
    .await
}

fn error_policy(
    greeting: Arc<Greeting>,
    error: &FinalizerError<ReconcileError>,
    _ctx: Arc<Context>,
) -> Action {
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    eprintln!(
        "reconcile of {} failed: {chain}; retrying after the backoff",
        ObjectKey::of(greeting.as_ref())
    );
    Action::backoff()
}

/// Where the operator runs.
struct Target {
    client: Client,
    namespace: String,
    /// The embedded server, kept alive while the example runs.
    _server: Option<ApiServer>,
}

async fn target() -> Result<Target, BoxError> {
    let mut cluster = false;
    let mut namespace = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cluster" => cluster = true,
            "--namespace" => namespace = Some(args.next().ok_or("--namespace needs a value")?),
            other => {
                return Err(format!("unknown argument {other}; use [--cluster] [--namespace NS]").into());
            }
        }
    }
    let namespace = namespace.unwrap_or_else(|| if cluster { "default".into() } else { "demo".into() });
    if cluster {
        let client = Client::try_default().await?;
        println!(
            "running against {} in namespace {namespace}",
            client.config().cluster_url
        );
        return Ok(Target {
            client,
            namespace,
            _server: None,
        });
    }
    let server = ApiServer::builder()
        .namespaces(&[namespace.as_str()])
        .start()
        .await?;
    let client = Client::new(Config::new(server.url().parse()?))?;
    println!(
        "running against the embedded API server at {} in namespace {namespace}",
        server.url()
    );
    Ok(Target {
        client,
        namespace,
        _server: Some(server),
    })
}

/// Creates the CRD (or finds it) and waits until it is established.
async fn install_crd(client: &Client) -> Result<(), BoxError> {
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "greetings", "singular": "greeting", "kind": "Greeting", "listKind": "GreetingList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "required": ["name"],
                            "properties": {"name": {"type": "string"}}},
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                    }
                }}
            }]
        }
    }))?;
    match client.run(&Request::create(&crd)?).await {
        Ok(_) => {}
        Err(e) if e.status_code() == Some(409) => println!("the CRD exists already"),
        Err(e) => return Err(e.into()),
    }
    wait_for("the CRD to be established", || async {
        let crd: CustomResourceDefinition = client.run(&Request::get(CRD_NAME)).await?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        Ok(established)
    })
    .await
}

/// Polls `check` until it says yes, for at most [`CONVERGE`].
async fn wait_for<F, Fut>(what: &str, check: F) -> Result<(), BoxError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<bool, BoxError>>,
{
    let until = tokio::time::Instant::now() + CONVERGE;
    let mut last_error = None;
    while tokio::time::Instant::now() < until {
        match check().await {
            Ok(true) => {
                println!("ok: {what}");
                return Ok(());
            }
            Ok(false) => {}
            Err(e) => last_error = Some(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("not within {CONVERGE:?}: {what} (last error: {last_error:?})").into())
}

async fn get_opt<K>(client: &Client, request: Request<K>) -> Result<Option<K>, BoxError>
where
    K: serde::de::DeserializeOwned + Send + 'static,
{
    match client.run(&request).await {
        Ok(object) => Ok(Some(object)),
        Err(e) if e.status_code() == Some(404) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The ConfigMap says `message`, and the Greeting is Ready at its current generation.
async fn converged(client: &Client, namespace: &str, name: &str, message: &str) -> Result<bool, BoxError> {
    let Some(greeting) = get_opt(client, Request::get::<Greeting>(name).namespace(namespace)).await? else {
        return Ok(false);
    };
    let cm = get_opt(
        client,
        Request::get::<ConfigMap>(&config_map_name(&greeting)).namespace(namespace),
    )
    .await?;
    let cm_ok = cm.is_some_and(|cm| {
        cm.data.and_then(|d| d.get("message").cloned()).as_deref() == Some(message)
            && cm.metadata.owner_references.unwrap_or_default().iter().any(|r| {
                r.controller == Some(true)
                    && r.kind == "Greeting"
                    && Some(&r.uid) == greeting.metadata.uid.as_ref()
            })
    });
    let ready = greeting.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.type_ == "Ready" && c.status == "True" && c.observed_generation == greeting.metadata.generation
        })
    });
    let finalized = greeting
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER));
    Ok(cm_ok && ready && finalized)
}

async fn scenario(client: &Client, namespace: &str) -> Result<(), BoxError> {
    let greeting = Greeting {
        api_version: api_version(),
        kind: kind(),
        metadata: ObjectMeta {
            name: Some("hello".into()),
            namespace: Some(namespace.into()),
            ..ObjectMeta::default()
        },
        spec: GreetingSpec { name: "world".into() },
        status: None,
    };
    client
        .run(&Request::create(&greeting)?.namespace(namespace))
        .await?;
    wait_for(
        "Greeting hello has its ConfigMap, its finalizer and Ready",
        || converged(client, namespace, "hello", "Hello, world!"),
    )
    .await?;

    let patch = json!({"spec": {"name": "kazan"}});
    client
        .run(&Request::merge_patch::<Greeting>("hello", &patch).namespace(namespace))
        .await?;
    wait_for(
        "a spec change reaches the ConfigMap and observedGeneration",
        || converged(client, namespace, "hello", "Hello, kazan!"),
    )
    .await?;

    // Someone tampers with the owned ConfigMap: the owner is reconciled and repairs it.
    let tamper = json!({"data": {"message": "Goodbye"}});
    client
        .run(&Request::merge_patch::<ConfigMap>("greeting-hello", &tamper).namespace(namespace))
        .await?;
    wait_for("a tampered ConfigMap is repaired", || {
        converged(client, namespace, "hello", "Hello, kazan!")
    })
    .await?;

    client
        .run(&Request::delete::<Greeting>("hello").namespace(namespace))
        .await?;
    wait_for(
        "deleting the Greeting cleans up its ConfigMap and lets it go",
        || async {
            let greeting = get_opt(client, Request::get::<Greeting>("hello").namespace(namespace)).await?;
            let cm = get_opt(
                client,
                Request::get::<ConfigMap>("greeting-hello").namespace(namespace),
            )
            .await?;
            Ok(greeting.is_none() && cm.is_none())
        },
    )
    .await
}

async fn run() -> Result<(), BoxError> {
    let target = target().await?;
    let client = target.client.clone();
    let namespace = target.namespace.clone();
    install_crd(&client).await?;

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = Controller::new(client.clone(), Request::list::<Greeting>().namespace(&namespace))?
        .owns(Request::list::<ConfigMap>().namespace(&namespace))?
        .shutdown_deadline(Duration::from_secs(10))
        .graceful_shutdown_on(async move {
            let _ = stop_rx.await;
        });
    let context = Arc::new(Context {
        client: client.clone(),
    });
    let operator = tokio::spawn(controller.run(reconcile, error_policy, context));

    let outcome = scenario(&client, &namespace).await;

    let _ = stop_tx.send(());
    let report = operator.await??;
    println!(
        "operator stopped: {} reconciles, {} errors, cut {:?}",
        report.reconciles, report.errors, report.cut
    );
    // Leave nothing behind (Greetings first: their finalizer needs the operator, which is gone,
    // so a leftover one is stripped of it).
    if let Some(left) = get_opt(&client, Request::get::<Greeting>("hello").namespace(&namespace)).await? {
        eprintln!(
            "Greeting hello was left behind (finalizers {:?}); removing",
            left.metadata.finalizers
        );
        let strip = json!({"metadata": {"finalizers": null}});
        client
            .run(&Request::merge_patch::<Greeting>("hello", &strip).namespace(&namespace))
            .await?;
    }
    if let Err(e) = client
        .run(&Request::delete::<CustomResourceDefinition>(CRD_NAME))
        .await
    {
        eprintln!("deleting the CRD failed: {e}");
    }
    outcome?;
    if !report.cut.is_empty() {
        return Err(format!("reconciles were cut at shutdown: {:?}", report.cut).into());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => {
            println!("operator example: every check passed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let mut chain = e.to_string();
            let mut source = e.source();
            while let Some(cause) = source {
                chain.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("operator example failed: {chain}");
            ExitCode::FAILURE
        }
    }
}
