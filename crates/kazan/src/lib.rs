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

pub mod auth;
pub mod client;
pub mod config;
pub mod discovery;
pub mod error;
pub mod raw;
pub mod request;
pub mod resource;
pub mod watcher;

pub use client::Client;
pub use config::Config;
pub use error::{ApiError, Error};
pub use raw::RawObject;
pub use request::{DeleteOutcome, Request, WatchEvents};
pub use resource::{ApiResource, DynamicObject, Object, ObjectList};
pub use watcher::Watcher;
