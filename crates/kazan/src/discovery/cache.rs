//! A [`Discovery`] kept for a while, so that resolving several names (or one name per command of
//! a long-running program) asks the server once, and asked again when a name is not found, since a
//! CustomResourceDefinition may have been created since (kubectl's discovery cache does both).

use std::{sync::Arc, time::Duration};

use tokio::{sync::Mutex, time::Instant};

use super::{Discovery, ResourceType};
use crate::{Client, Error};

/// How long an answer is used by default before the server is asked again.
const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// The kept answer and when it was fetched.
type Kept = Option<(Instant, Arc<Discovery>)>;

/// A client's discovery, cached. Clones share the cache.
#[derive(Clone)]
pub struct CachedDiscovery {
    client: Client,
    ttl: Duration,
    cached: Arc<Mutex<Kept>>,
}

impl std::fmt::Debug for CachedDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedDiscovery")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl CachedDiscovery {
    /// Nothing asked yet; answers are kept for five minutes.
    pub fn new(client: Client) -> Self {
        CachedDiscovery {
            client,
            ttl: DEFAULT_TTL,
            cached: Arc::default(),
        }
    }

    /// Keeps answers for `ttl` instead.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The server's resource types: the kept answer while it is fresh, else a new one.
    pub async fn get(&self) -> Result<Arc<Discovery>, Error> {
        let mut cached = self.cached.lock().await;
        if let Some((at, discovery)) = cached.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(discovery.clone());
        }
        let discovery = Arc::new(Discovery::fetch(&self.client).await?);
        *cached = Some((Instant::now(), discovery.clone()));
        Ok(discovery)
    }

    /// Asks the server again, whatever the age of the kept answer.
    pub async fn refresh(&self) -> Result<Arc<Discovery>, Error> {
        let mut cached = self.cached.lock().await;
        let discovery = Arc::new(Discovery::fetch(&self.client).await?);
        *cached = Some((Instant::now(), discovery.clone()));
        Ok(discovery)
    }

    /// The resource type `name` stands for (see [`Discovery::find`]); when the kept answer does
    /// not know it, the server is asked once more before `None`.
    pub async fn resolve(&self, name: &str) -> Result<Option<ResourceType>, Error> {
        let fresh = self.cached.lock().await.is_none();
        let discovery = self.get().await?;
        if let Some(found) = discovery.find(name) {
            return Ok(Some(found.clone()));
        }
        if fresh {
            return Ok(None);
        }
        Ok(self.refresh().await?.find(name).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use kazan_apiserver::{ApiServer, ResourceDef};

    fn discovery_requests(server: &ApiServer) -> usize {
        server.journal().iter().filter(|e| e.path == "/apis").count()
    }

    /// Known names come from the kept answer; a name the answer does not know (a resource
    /// registered since) makes it ask the server again, once.
    #[tokio::test]
    async fn names_resolve_from_the_kept_answer_and_new_types_are_found()
    -> Result<(), Box<dyn std::error::Error>> {
        let server = ApiServer::start().await?;
        let client = Client::new(Config::new(server.url().parse()?))?;
        let discovery = CachedDiscovery::new(client);
        let bound = Duration::from_secs(20);
        let pods = tokio::time::timeout(bound, discovery.resolve("po")).await??;
        assert_eq!(pods.map(|r| r.api.plural).as_deref(), Some("pods"));
        let deployments = tokio::time::timeout(bound, discovery.resolve("deploy")).await??;
        assert_eq!(
            deployments.map(|r| r.name_prefix()).as_deref(),
            Some("deployment.apps")
        );
        assert_eq!(discovery_requests(&server), 1);

        server.register(ResourceDef::new("example.com", "v1", "Widget", "widgets", true));
        let widgets = tokio::time::timeout(bound, discovery.resolve("widgets.example.com")).await??;
        assert_eq!(widgets.map(|r| r.api.kind).as_deref(), Some("Widget"));
        assert_eq!(discovery_requests(&server), 2);
        assert!(
            tokio::time::timeout(bound, discovery.resolve("nosuch"))
                .await??
                .is_none()
        );
        Ok(())
    }
}
