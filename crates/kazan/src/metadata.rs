//! Metadata-only objects: [`PartialObjectMetadata`], what the server sends when asked for
//! `as=PartialObjectMetadata` — kind, apiVersion `meta.k8s.io/v1` and the whole `metadata`, no spec
//! or status. A watcher or informer over them holds a fraction of the memory of the full objects
//! (names, labels, annotations, owners, versions are all there is to many controllers).
//!
//! Any request whose object type is [`PartialObjectMetadata`] asks for it by itself
//! (`Request::list_of::<PartialObjectMetadata>(ApiResource::of::<Pod>())`), sending client-go's
//! `Accept` (`k8s.io/client-go/metadata`): `application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json`
//! for one object or a watch, the `PartialObjectMetadataList` form for a list. The plain
//! `application/json` after it is what a server without the conversion answers: a full object,
//! which decodes as well (its metadata is kept, the rest dropped).
//!
//! Followed: apimachinery `pkg/apis/meta/v1/types.go` (`PartialObjectMetadata`,
//! `PartialObjectMetadataList`), client-go `metadata/metadata.go`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::Object;

/// `Accept` of a request for one object or a watch of metadata-only objects.
pub const PARTIAL_OBJECT_METADATA: &str =
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";

/// `Accept` of a list of metadata-only objects.
pub const PARTIAL_OBJECT_METADATA_LIST: &str =
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";

/// An object's metadata alone (`meta.k8s.io/v1` `PartialObjectMetadata`); usable as `K` wherever
/// an object type is (requests, the Watcher, the informer).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartialObjectMetadata {
    /// `meta.k8s.io/v1` (or the object's own, from a server without the conversion).
    #[serde(default)]
    pub api_version: String,
    /// `PartialObjectMetadata` (or the object's own kind, likewise).
    #[serde(default)]
    pub kind: String,
    /// The object's metadata, whole.
    #[serde(default)]
    pub metadata: ObjectMeta,
}

impl Object for PartialObjectMetadata {
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> Option<&mut ObjectMeta> {
        Some(&mut self.metadata)
    }
}

/// Whether `K` is [`PartialObjectMetadata`]: its requests then ask for it.
pub(crate) fn is_partial<K: 'static>() -> bool {
    std::any::TypeId::of::<K>() == std::any::TypeId::of::<PartialObjectMetadata>()
}
