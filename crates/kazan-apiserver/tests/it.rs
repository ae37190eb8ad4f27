//! The embedded API server's integration tests, one binary: each topic is a module (a file of its
//! own beside this one) sharing the `common` helpers, so that the tests link once (issue 16).

mod common;

#[path = "access.rs"]
mod access;
#[path = "changelog.rs"]
mod changelog;
#[path = "compression.rs"]
mod compression;
#[path = "faults.rs"]
mod faults;
#[path = "fidelity.rs"]
mod fidelity;
#[path = "field_validation.rs"]
mod field_validation;
#[path = "list.rs"]
mod list;
#[path = "load.rs"]
mod load;
#[path = "metadata_only.rs"]
mod metadata_only;
#[path = "openapi.rs"]
mod openapi;
#[path = "sharding.rs"]
mod sharding;
#[path = "watch.rs"]
mod watch;
#[path = "writes.rs"]
mod writes;
