//! kazan watches Kubernetes resources reliably: the semantics of the Elixir library Kazan's
//! `Kazan.Watcher`, carried into Rust and made fit to run for months.
#![doc = "```no_run"]
#![doc = "# async fn demo() -> Result<(), Box<dyn std::error::Error>> {"]
#![doc = "use k8s_openapi::api::core::v1::Pod;"]
#![doc = "use kazan::{Client, Request};"]
#![doc = ""]
#![doc = "let client = Client::try_default().await?;"]
#![doc = "let pods = client.run(&Request::list::<Pod>().namespace(\"default\")).await?;"]
#![doc = "println!(\"{} pods at version {:?}\", pods.items.len(), pods.metadata.resource_version);"]
#![doc = "# Ok(()) }"]
#![doc = "```"]
#![deny(missing_docs)]

pub mod auth;
pub mod client;
pub mod config;
pub mod decoder;
pub mod discovery;
pub mod error;
pub mod informer;
pub mod lease;
pub mod metadata;
pub mod raw;
pub mod request;
pub mod resource;
pub mod runtime;
pub mod shard;
pub mod table;
mod tls;
pub mod watcher;

/// The Kubernetes types kazan's typed requests and watchers use (k8s-openapi, the `latest`
/// feature: the newest Kubernetes API it knows), re-exported so that your types match kazan's.
pub use k8s_openapi;
/// Serde, re-exported for bounds such as `K: kazan::Object + kazan::serde::de::DeserializeOwned`
/// in generic helpers over kazan's object types.
pub use serde;

pub use client::Client;
pub use config::Config;
pub use decoder::Decoder;
pub use error::{ApiError, Error};
pub use metadata::PartialObjectMetadata;
pub use raw::RawObject;
pub use request::{DeleteOutcome, Request, WatchEvents};
pub use resource::{ApiResource, DynamicObject, Object, ObjectList};
pub use watcher::Watcher;
