//! The operator's resource and its reconcile, shared by the example (`main.rs`) and by the chaos
//! test that runs the same controller under faults (`tests/chaos/operator.rs`).

use std::{sync::Arc, time::Duration};

use k8s_openapi::{
    NamespaceResourceScope,
    api::core::v1::ConfigMap,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, OwnerReference, Time},
};
use kazan::{
    Client, Object, Request,
    runtime::{
        Action, ObjectKey,
        finalizer::{Event, FinalizerError, finalizer},
    },
};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const GROUP: &str = "example.kazan.dev";
pub const CRD_NAME: &str = "greetings.example.kazan.dev";
pub const FINALIZER: &str = "example.kazan.dev/cleanup";
/// How long each check waits for the operator to converge.
pub const CONVERGE: Duration = Duration::from_secs(30);

/// The custom resource: `spec.name` is who to greet.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Greeting {
    #[serde(default = "api_version")]
    pub api_version: String,
    #[serde(default = "kind")]
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: GreetingSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<GreetingStatus>,
}

/// `apiVersion` of Greetings.
pub fn api_version() -> String {
    format!("{GROUP}/v1")
}

/// `kind` of Greetings.
pub fn kind() -> String {
    "Greeting".into()
}

/// What the user wants: who to greet.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GreetingSpec {
    pub name: String,
}

/// What the operator reports: a `Ready` condition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GreetingStatus {
    #[serde(default)]
    pub conditions: Vec<Condition>,
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
pub struct Context {
    pub client: Client,
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
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

pub fn config_map_name(greeting: &Greeting) -> String {
    format!("greeting-{}", greeting.name())
}

pub fn message(greeting: &Greeting) -> String {
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

pub async fn reconcile(
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

pub fn error_policy(
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

/// The CRD of Greetings: namespaced, one version, the `status` subresource.
pub fn crd() -> Result<CustomResourceDefinition, serde_json::Error> {
    serde_json::from_value(json!({
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
    }))
}

/// Whether the CRD says `Established`: its resource is served.
pub async fn crd_established(client: &Client) -> Result<bool, BoxError> {
    let crd: CustomResourceDefinition = client.run(&Request::get(CRD_NAME)).await?;
    Ok(crd
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True"))
}

/// The object, or `None` if it does not exist.
pub async fn get_opt<K>(client: &Client, request: Request<K>) -> Result<Option<K>, BoxError>
where
    K: serde::de::DeserializeOwned + Send + 'static,
{
    match client.run(&request).await {
        Ok(object) => Ok(Some(object)),
        Err(e) if e.status_code() == Some(404) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The ConfigMap says `message` and is owned by the Greeting, which carries the finalizer and is
/// Ready at its current generation.
pub async fn converged(
    client: &Client,
    namespace: &str,
    name: &str,
    message: &str,
) -> Result<bool, BoxError> {
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
