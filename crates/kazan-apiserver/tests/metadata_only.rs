//! Metadata-only answers (`Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1`)
//! for get, list and watch, and 406 for an `Accept` the server cannot produce.
//!
//! Compared with the real server's source: apiserver `pkg/endpoints/handlers/response.go`
//! (`asPartialObjectMetadata`, `asPartialObjectMetadataList`: kind, apiVersion `meta.k8s.io/v1`,
//! the whole metadata; the list's `resourceVersion`/`continue`/`remainingItemCount`; the wrong
//! form is 406 NotAcceptable), `handlers/negotiation/negotiate.go` and `errors.go` (the first
//! clause the endpoint accepts wins; none is 406 "only the following media types are accepted"),
//! and apimachinery `pkg/apis/meta/v1/types.go` (`PartialObjectMetadata(List)`).

use crate::common;

use common::*;
use kazan_apiserver::ApiServer;
use serde_json::{Value, json};

/// client-go's `metadata` client's Accept for one object and for watches.
const PARTIAL: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";
/// The same for lists.
const PARTIAL_LIST: &str =
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";

async fn get_with(server: &ApiServer, path: &str, accept: &str) -> TestResult<HttpResponse> {
    request(server.addr(), "GET", path, &[("Accept", accept)], None).await
}

async fn a_pod(server: &ApiServer, name: &str) -> TestResult<Value> {
    let mut p = pod("default", name, json!({"app": "web"}), "Running");
    p["metadata"]["annotations"] = json!({"note": "kept"});
    p["metadata"]["finalizers"] = json!(["example.com/keep"]);
    Ok(server.create(p)?)
}

#[tokio::test]
async fn get_as_partial_object_metadata_is_kind_api_version_and_the_whole_metadata() -> TestResult {
    let server = ApiServer::start().await?;
    let stored = a_pod(&server, "web-1").await?;
    let answer = get_with(&server, "/api/v1/namespaces/default/pods/web-1", PARTIAL).await?;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json()?,
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": stored["metadata"]})
    );
    // Asked for as a list, one object is refused, as the real server does.
    let refused = get_with(&server, "/api/v1/namespaces/default/pods/web-1", PARTIAL_LIST).await?;
    assert_eq!(refused.status, 406);
    let status = refused.json()?;
    assert_eq!(status["reason"], "NotAcceptable");
    assert_eq!(
        status["message"],
        "you requested PartialObjectMetadataList, but the requested object is not a list (Pod)"
    );
    Ok(())
}

#[tokio::test]
async fn list_as_partial_object_metadata_list_keeps_the_list_metadata_and_converts_each_item() -> TestResult {
    let server = ApiServer::start().await?;
    let a = a_pod(&server, "a").await?;
    let b = a_pod(&server, "b").await?;
    a_pod(&server, "c").await?;
    let answer = get_with(&server, "/api/v1/namespaces/default/pods?limit=2", PARTIAL_LIST).await?;
    assert_eq!(answer.status, 200);
    let list = answer.json()?;
    let plain = get_json(server.addr(), "/api/v1/namespaces/default/pods?limit=2").await?;
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(list["metadata"], plain["metadata"]);
    assert!(list["metadata"]["continue"].is_string());
    assert_eq!(
        list["items"],
        json!([
            {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": a["metadata"]},
            {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": b["metadata"]},
        ])
    );
    // An empty list has `items: []`.
    let empty = get_with(&server, "/api/v1/namespaces/kube-system/pods", PARTIAL_LIST).await?;
    assert_eq!(empty.json()?["items"], json!([]));
    // Asked for as one object, a list is refused.
    let refused = get_with(&server, "/api/v1/namespaces/default/pods", PARTIAL).await?;
    assert_eq!(refused.status, 406);
    assert_eq!(
        refused.json()?["message"],
        "you requested PartialObjectMetadata, but the requested object is a list (PodList)"
    );
    Ok(())
}

#[tokio::test]
async fn a_watch_as_partial_object_metadata_converts_every_event_and_bookmark() -> TestResult {
    let server = ApiServer::start().await?;
    let a = a_pod(&server, "a").await?;
    let mut watch = WatchStream::open_with(
        server.addr(),
        "/api/v1/namespaces/default/pods?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
        &[("Accept", PARTIAL)],
    )
    .await?;
    assert_eq!(watch.status, 200);
    let (t, o) = watch.event().await?;
    assert_eq!(t, "ADDED");
    assert_eq!(
        o,
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": a["metadata"]})
    );
    let (t, o) = watch.event().await?;
    assert_eq!(t, "BOOKMARK");
    assert_eq!(o["kind"], "PartialObjectMetadata");
    assert_eq!(o["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
    assert!(server.wait_for_watches("pods", 1, WAIT).await);
    let b = a_pod(&server, "b").await?;
    let (t, o) = watch.change().await?;
    assert_eq!(t, "ADDED");
    assert_eq!(
        o,
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": b["metadata"]})
    );
    Ok(())
}

#[tokio::test]
async fn an_accept_the_server_cannot_produce_is_406_with_a_status() -> TestResult {
    let server = ApiServer::start().await?;
    a_pod(&server, "a").await?;
    for (path, accept) in [
        ("/api/v1/namespaces/default/pods", "text/html"),
        (
            "/api/v1/namespaces/default/pods/a",
            "application/json;as=Widget;g=meta.k8s.io;v=v1",
        ),
        (
            "/api/v1/namespaces/default/pods/a",
            "application/json;as=PartialObjectMetadata;g=example.com;v=v1",
        ),
    ] {
        let answer = get_with(&server, path, accept).await?;
        assert_eq!(answer.status, 406, "{path} {accept}");
        let status = answer.json()?;
        assert_eq!(
            status,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
                "reason": "NotAcceptable", "code": 406})
        );
    }
    // A later clause the server can produce is taken, and `*/*` is plain JSON.
    let answer = get_with(&server, "/api/v1/namespaces/default/pods/a", "text/html, */*").await?;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()?["kind"], "Pod");
    Ok(())
}
