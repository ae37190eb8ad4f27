//! An informer of `PartialObjectMetadata`: the store holds each object's metadata alone, at the
//! server's versions (the conversion follows apiserver `pkg/endpoints/handlers/response.go`).

use k8s_openapi::api::core::v1::ConfigMap;
use kazan::{ApiResource, PartialObjectMetadata, Request, informer::Informer};

use super::{TestResult, WAIT, client, cm, converged, options, server, set_value};

#[tokio::test]
async fn a_metadata_only_informer_holds_the_metadata_of_every_object() -> TestResult {
    let server = server().await?;
    for name in ["a", "b"] {
        server.create(cm("w", name, "1"))?;
    }
    let informer = Informer::start(
        client(&server)?,
        Request::list_of::<PartialObjectMetadata>(ApiResource::of::<ConfigMap>()).namespace("w"),
        options(),
    )?;
    let store = informer.store();
    tokio::time::timeout(WAIT, store.wait_synced()).await??;
    set_value(&server, "a", "2")?;
    server.create(cm("w", "c", "1"))?;
    converged(&store, &server).await?;
    for object in store.list() {
        assert_eq!(object.kind, "PartialObjectMetadata");
        assert_eq!(object.api_version, "meta.k8s.io/v1");
    }
    Ok(())
}
