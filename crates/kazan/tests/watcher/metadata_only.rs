//! Metadata-only watches: `PartialObjectMetadata` as the Watcher's object type asks for it
//! (client-go `metadata/metadata.go`'s Accept: the list form for list pages, the object form for
//! the watch), and gets kind `PartialObjectMetadata`, apiVersion `meta.k8s.io/v1` and the whole
//! metadata from the embedded server (its conversion follows apiserver
//! `pkg/endpoints/handlers/response.go`).

use k8s_openapi::api::core::v1::ConfigMap;
use kazan::{
    ApiResource, PartialObjectMetadata, Request,
    watcher::{EventKind, EventType, InitialList, Watcher},
};

use super::{CM_PATH, TestResult, client, cm, next, server, support};

const PARTIAL: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";
const PARTIAL_LIST: &str =
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";

#[tokio::test]
async fn a_metadata_only_watcher_asks_for_and_gets_partial_object_metadata() -> TestResult {
    for how in [InitialList::Paginated, InitialList::Streaming] {
        let server = server().await?;
        let stored = server.create(cm("w", "a", "1"))?;
        let mut w = Watcher::start(
            client(&server)?,
            Request::list_of::<PartialObjectMetadata>(ApiResource::of::<ConfigMap>()).namespace("w"),
            support::fast_watcher_options()
                .deliver_initial_list(true)
                .initial_list(how),
        )?;
        let first = next(&mut w).await?;
        let EventKind::Added(object) = first.kind else {
            return Err(format!("{how:?}: expected Added").into());
        };
        assert_eq!(object.kind, "PartialObjectMetadata");
        assert_eq!(object.api_version, "meta.k8s.io/v1");
        let expected: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
            serde_json::from_value(stored["metadata"].clone())?;
        assert_eq!(object.metadata, expected);
        assert_eq!(next(&mut w).await?.event_type(), EventType::Synced);
        server.create(cm("w", "b", "1"))?;
        let later = next(&mut w).await?;
        assert_eq!(later.event_type(), EventType::Added);
        assert_eq!(
            later.object().map(|o| o.kind.as_str()),
            Some("PartialObjectMetadata")
        );
        // Lists asked for the list form, watches for the object form.
        for entry in server.journal().iter().filter(|e| e.path == CM_PATH) {
            let want = if entry.watch { PARTIAL } else { PARTIAL_LIST };
            assert_eq!(entry.accept.as_deref(), Some(want), "{how:?}: {entry:?}");
        }
        w.stop().await;
    }
    Ok(())
}
