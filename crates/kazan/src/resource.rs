//! What the client needs to know about a kind of resource to build its paths, and the object shapes
//! that every kind shares: lists, dynamic objects, and the metadata the watcher reads.
//!
//! Typed resources come from [`k8s_openapi`]; [`ApiResource::of`] reads their group, version, kind,
//! plural and scope. Custom resources and kinds the types do not know use [`ApiResource::new`] and
//! [`DynamicObject`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};
use serde::{Deserialize, Serialize};

/// Where a resource lives, and what its collection paths look like.
///
/// See <https://kubernetes.io/docs/reference/using-api/api-concepts/#standard-api-terminology>.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ApiResource {
    /// API group; empty for the core ("legacy") group served under `/api`.
    pub group: String,
    /// API version within the group, e.g. `v1`.
    pub version: String,
    /// `group/version`, or just `version` for the core group; what objects carry as `apiVersion`.
    pub api_version: String,
    /// The kind of one object, e.g. `Pod`.
    pub kind: String,
    /// The plural name used in paths, e.g. `pods`.
    pub plural: String,
    /// Whether objects live inside a namespace.
    pub namespaced: bool,
}

/// Request constructors take `impl Into<ApiResource>`: pass a reference to keep using yours.
impl From<&ApiResource> for ApiResource {
    fn from(resource: &ApiResource) -> Self {
        resource.clone()
    }
}

impl ApiResource {
    /// Describes a resource by hand (a custom resource, or a kind the types do not know).
    ///
    /// ```
    /// let widgets = kazan::ApiResource::new("example.com", "v1", "Widget", "widgets", true);
    /// assert_eq!(widgets.api_version, "example.com/v1");
    /// ```
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        ApiResource {
            group: group.to_string(),
            version: version.to_string(),
            api_version,
            kind: kind.to_string(),
            plural: plural.to_string(),
            namespaced,
        }
    }

    /// Describes a typed resource from `k8s_openapi`.
    ///
    /// ```
    /// use k8s_openapi::api::core::v1::Pod;
    /// let pods = kazan::ApiResource::of::<Pod>();
    /// assert_eq!((pods.plural.as_str(), pods.namespaced), ("pods", true));
    /// ```
    pub fn of<K: k8s_openapi::Resource>() -> Self {
        // `type_name` needs no `'static` bound (a `TypeId` would spread one through every caller).
        let namespaced = std::any::type_name::<K::Scope>().ends_with("::NamespaceResourceScope");
        ApiResource {
            group: K::GROUP.to_string(),
            version: K::VERSION.to_string(),
            api_version: K::API_VERSION.to_string(),
            kind: K::KIND.to_string(),
            plural: K::URL_PATH_SEGMENT.to_string(),
            namespaced,
        }
    }

    /// The path prefix of the group-version: `/api/v1` or `/apis/{group}/{version}`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

/// A list as the API server returns it: list metadata and items.
///
/// The server may omit `kind` and `apiVersion` on items of built-in lists, so neither is required.
/// A `Table` answer (asked for by [`TableRow`](crate::table::TableRow) requests) reads as a list
/// too: each row an item, as the one-row Table a watch event carries.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(bound(serialize = "K: Serialize"))]
pub struct ObjectList<K> {
    /// `resourceVersion` (the version to watch from) and `continue` (more pages follow).
    pub metadata: ListMeta,
    /// The objects of this page.
    pub items: Vec<K>,
}

impl<'de, K: Deserialize<'de>> Deserialize<'de> for ObjectList<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(bound(deserialize = "K: Deserialize<'de>"))]
        struct Wire<K> {
            #[serde(default)]
            kind: Option<String>,
            #[serde(default)]
            metadata: ListMeta,
            #[serde(default = "Vec::new", deserialize_with = "null_as_empty")]
            items: Vec<K>,
            /// A Table's.
            #[serde(default)]
            rows: Option<Vec<serde_json::Value>>,
            /// A Table's.
            #[serde(default, rename = "columnDefinitions")]
            column_definitions: Option<serde_json::Value>,
        }
        let wire = Wire::<K>::deserialize(d)?;
        let mut items = wire.items;
        if wire.kind.as_deref() == Some("Table") {
            for table in crate::table::rows_as_tables(wire.column_definitions, wire.rows.unwrap_or_default())
            {
                items.push(K::deserialize(table).map_err(serde::de::Error::custom)?);
            }
        }
        Ok(ObjectList {
            metadata: wire.metadata,
            items,
        })
    }
}

fn null_as_empty<'de, D, K>(d: D) -> Result<Vec<K>, D::Error>
where
    D: serde::Deserializer<'de>,
    K: Deserialize<'de>,
{
    Ok(Option::<Vec<K>>::deserialize(d)?.unwrap_or_default())
}

/// `apiVersion` and `kind`, as every object on the wire carries them.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct TypeMeta {
    /// `group/version` (or `version` for the core group).
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// The object's kind.
    pub kind: String,
}

/// An object of any kind, kept as JSON apart from its metadata.
///
/// Use it for custom resources and for kinds `k8s_openapi` does not know.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct DynamicObject {
    /// `apiVersion` and `kind`, when the server sent them.
    #[serde(flatten, default)]
    pub types: Option<TypeMeta>,
    /// Standard object metadata (`null` or absent reads as empty, as the typed kinds read it).
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
    /// Every other field (`spec`, `status`, `data`, ...).
    #[serde(flatten)]
    pub data: serde_json::Value,
}

/// `null` read as the default value, as Go and the `k8s_openapi` kinds read it.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// Read access to the metadata of any object the client and the watcher handle.
///
/// Implemented for every `k8s_openapi` type with standard object metadata and for [`DynamicObject`].
pub trait Object: Send + 'static {
    /// The object's metadata.
    fn meta(&self) -> &ObjectMeta;

    /// `metadata.resourceVersion`, if set.
    fn resource_version(&self) -> Option<&str> {
        self.meta().resource_version.as_deref()
    }

    /// `metadata.name`, or `""`.
    ///
    /// A `&str`, not an `Option` (kube-rs's `name_any()` is the same idea): the watcher never
    /// delivers an object without a name (such an event is `Skipped` with
    /// [`WatchError::MissingName`](crate::watcher::WatchError::MissingName)), so in a consumer the
    /// name is always there, and an `Option` would make every consumer unwrap what cannot be
    /// missing. Objects you build yourself may lack one: check `meta().name` there.
    fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or("")
    }

    /// `metadata.namespace`, if the object is namespaced.
    fn namespace(&self) -> Option<&str> {
        self.meta().namespace.as_deref()
    }

    /// The metadata, to change (a transform stripping `managedFields`), or `None` for a type whose
    /// metadata is not held decoded (`RawObject`).
    fn meta_mut(&mut self) -> Option<&mut ObjectMeta> {
        None
    }
}

impl<K> Object for K
where
    K: k8s_openapi::Metadata<Ty = ObjectMeta> + Send + 'static,
{
    fn meta(&self) -> &ObjectMeta {
        self.metadata()
    }

    fn meta_mut(&mut self) -> Option<&mut ObjectMeta> {
        Some(self.metadata_mut())
    }
}

impl Object for DynamicObject {
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> Option<&mut ObjectMeta> {
        Some(&mut self.metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::{batch::v1::Job, core::v1::Namespace};

    #[test]
    fn typed_resources_know_their_paths() {
        let ns = ApiResource::of::<Namespace>();
        assert_eq!(ns.group_version_path(), "/api/v1");
        assert!(!ns.namespaced);
        let jobs = ApiResource::of::<Job>();
        assert_eq!(jobs.group_version_path(), "/apis/batch/v1");
        assert_eq!(jobs.api_version, "batch/v1");
        assert!(jobs.namespaced);
    }

    #[test]
    fn dynamic_objects_keep_unknown_fields() -> Result<(), serde_json::Error> {
        let obj: DynamicObject = serde_json::from_str(
            r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w","resourceVersion":"7"},"spec":{"size":3}}"#,
        )?;
        assert_eq!(obj.resource_version(), Some("7"));
        assert_eq!(obj.types.as_ref().map(|t| t.kind.as_str()), Some("Widget"));
        assert_eq!(obj.data["spec"]["size"], 3);
        Ok(())
    }

    #[test]
    fn lists_accept_null_items_and_missing_kinds() -> Result<(), serde_json::Error> {
        let list: ObjectList<Namespace> = serde_json::from_str(
            r#"{"kind":"NamespaceList","metadata":{"resourceVersion":"9"},"items":null}"#,
        )?;
        assert!(list.items.is_empty());
        assert_eq!(list.metadata.resource_version.as_deref(), Some("9"));
        Ok(())
    }
}
