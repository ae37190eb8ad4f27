//! Resource names as kubectl accepts them, resolved through the server's discovery by the library
//! ([`kazan::discovery`]), with the CLI's error for each way it fails.

use kazan::{Client, discovery::CachedDiscovery};

pub use kazan::discovery::ResourceType;

use crate::error::CliError;

/// Finds the resource type `name` stands for, asking the server's discovery.
pub async fn resolve(client: &Client, name: &str) -> Result<ResourceType, CliError> {
    resolve_in(&CachedDiscovery::new(client.clone()), client, name).await
}

/// [`resolve`] with a discovery kept across several names (`get po,svc,cm` asks once).
pub async fn resolve_in(
    discovery: &CachedDiscovery,
    client: &Client,
    name: &str,
) -> Result<ResourceType, CliError> {
    discovery
        .resolve(name)
        .await
        .map_err(|source| CliError::Discovery {
            server: client
                .config()
                .cluster_url
                .to_string()
                .trim_end_matches('/')
                .to_string(),
            origin: client.config().origin.clone(),
            source: Box::new(source),
        })?
        .ok_or_else(|| CliError::UnknownResource(name.to_string()))
}
