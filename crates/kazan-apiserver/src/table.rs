//! `kubectl get` output: `Table` answers (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`)
//! with the columns kubectl shows for each kind.

use crate::registry::ResourceDef;

/// Whether the `Accept` header asks for a Table.
pub(crate) fn wants_table(accept: &str) -> bool {
    let _ = accept;
    false
}

/// A `meta.k8s.io/v1` Table of `objects`: for a list (with `list_metadata`, the list's `metadata`),
/// for one object, or for one watch event (one row). Rows carry `PartialObjectMetadata`.
pub(crate) fn to_table(
    def: &ResourceDef,
    objects: &[&serde_json::Value],
    list_metadata: Option<&serde_json::Value>,
) -> serde_json::Value {
    let _ = (def, objects, list_metadata);
    serde_json::Value::Null
}
