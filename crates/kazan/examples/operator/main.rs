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

mod greeting;

use std::{process::ExitCode, sync::Arc, time::Duration};

use k8s_openapi::{
    api::core::v1::ConfigMap,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kazan::{Client, Config, Request, runtime::Controller};
use kazan_apiserver::ApiServer;
use serde_json::json;

use greeting::{
    BoxError, CONVERGE, CRD_NAME, Context, Greeting, GreetingSpec, api_version, converged, crd,
    crd_established, error_policy, get_opt, kind, reconcile,
};
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
    match client.run(&Request::create(&crd()?)?).await {
        Ok(_) => {}
        Err(e) if e.status_code() == Some(409) => println!("the CRD exists already"),
        Err(e) => return Err(e.into()),
    }
    wait_for("the CRD to be established", || crd_established(client)).await
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
