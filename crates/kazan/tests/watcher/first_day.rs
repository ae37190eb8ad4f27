//! What a newcomer meets on day one (issue 24's rough edges), each pinned: the dynamic and typed
//! creates read the namespace from the object alike, resources are passed by reference or by value
//! without clones, a request constructor's error goes through `?` into `kazan::Error`, and
//! `send_to_with` feeds one channel from several kinds with no `From` impls.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kazan::{
    ApiResource, DynamicObject, Request,
    watcher::{Event, EventKind, Watcher},
};
use serde_json::json;

use super::{TestResult, WAIT, client, server, support};

#[tokio::test]
async fn a_dynamic_create_goes_to_the_namespace_in_its_body_as_a_typed_one_does() -> TestResult {
    let server = server().await?;
    let c = client(&server)?;
    let config_maps = ApiResource::of::<ConfigMap>();
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "dynamic", "namespace": "other"}, "data": {"k": "v"}});
    let created: DynamicObject = c.run(&Request::create_of(&config_maps, &body)?).await?;
    assert_eq!(created.metadata.namespace.as_deref(), Some("other"));

    let typed = ConfigMap {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("typed".into()),
            namespace: Some("other".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = c.run(&Request::create(&typed)?).await?;
    assert_eq!(created.metadata.namespace.as_deref(), Some("other"));

    // The request's own namespace wins over the body's.
    let elsewhere = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "moved"}});
    let req = Request::create_of::<DynamicObject>(&config_maps, &elsewhere)?.namespace("w");
    assert_eq!(req.path(), "/api/v1/namespaces/w/configmaps");

    // By reference and by value alike, no clone at the call site.
    let listed = c
        .run(&Request::list_dynamic(&config_maps).namespace("other"))
        .await?;
    assert_eq!(listed.items.len(), 2);
    let listed = c
        .run(&Request::list_of::<DynamicObject>(config_maps).namespace("other"))
        .await?;
    assert_eq!(listed.items.len(), 2);
    Ok(())
}

/// A serialization failure, as a request constructor reports it.
struct Unserializable;

impl serde::Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this value refuses to be JSON"))
    }
}

fn build_in_a_function_returning_kazan_errors() -> Result<Request<DynamicObject>, kazan::Error> {
    let req = Request::create_of(ApiResource::of::<ConfigMap>(), &Unserializable)?;
    Ok(req)
}

#[test]
fn a_request_constructors_error_converts_into_kazans_error_with_question_mark() {
    match build_in_a_function_returning_kazan_errors() {
        Err(kazan::Error::Encode(e)) => assert!(e.to_string().contains("refuses"), "{e}"),
        other => panic!("expected an encoding error, got {other:?}"),
    }
}

/// One consumer's messages, with no `From` impl: the variants are the mapping functions.
enum Message {
    ConfigMap(Event<ConfigMap>),
    Namespace(Event<Namespace>),
}

#[tokio::test]
async fn send_to_with_feeds_one_channel_from_several_kinds_without_from_impls() -> TestResult {
    let server = server().await?;
    let c = client(&server)?;
    let rv = server.resource_version().to_string();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(8);
    let cms = Watcher::start(
        c.clone(),
        Request::list::<ConfigMap>().namespace("w"),
        support::fast_watcher_options()
            .resource_version(rv.clone())
            .send_to_with(tx.clone(), Message::ConfigMap),
    )?;
    let namespaces = Watcher::start(
        c,
        Request::list::<Namespace>(),
        support::fast_watcher_options()
            .resource_version(rv)
            .send_to_with(tx, Message::Namespace),
    )?;
    assert!(server.wait_for_watches("configmaps", 1, WAIT).await);
    assert!(server.wait_for_watches("namespaces", 1, WAIT).await);
    server.create(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "w"}}),
    )?;
    server.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}))?;
    let mut seen = Vec::new();
    for _ in 0..2 {
        match tokio::time::timeout(WAIT, rx.recv()).await?.ok_or("closed")? {
            Message::ConfigMap(Event {
                kind: EventKind::Added(cm),
                from,
                ..
            }) => {
                assert_eq!(from, cms.id());
                seen.push(format!("configmap {}", cm.metadata.name.unwrap_or_default()));
            }
            Message::Namespace(Event {
                kind: EventKind::Added(ns),
                from,
                ..
            }) => {
                assert_eq!(from, namespaces.id());
                seen.push(format!("namespace {}", ns.metadata.name.unwrap_or_default()));
            }
            _ => return Err("an event other than Added".into()),
        }
    }
    seen.sort();
    assert_eq!(seen, ["configmap a", "namespace team"]);
    cms.stop().await;
    namespaces.stop().await;
    Ok(())
}
