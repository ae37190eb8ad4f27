//! The HTTP API: authentication, fault rules, discovery, and the resource endpoints (list, watch,
//! get, create, replace, patch, delete, deletecollection, `/status`), every error as a
//! `metav1.Status`.

mod compression;
mod field_validation;
mod front_door;
mod list;
mod reply;
mod router;
mod subresources;
mod watch;
mod writes;

pub(crate) use front_door::handle;
