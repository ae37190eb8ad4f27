//! An in-memory Kubernetes API server that speaks list and watch faithfully, with fault injection.
//!
//! Being written.

mod discovery;
pub mod load;
mod protobuf;
pub mod registry;
mod table;
