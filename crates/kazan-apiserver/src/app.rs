//! What every request handler reaches: the store, the instruments, the settings.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::instruments::faults::Faults;
use crate::instruments::journal::Observer;
use crate::store::Store;

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub token: Option<String>,
    pub bookmark_interval: Duration,
    pub default_watch_timeout: Duration,
    pub too_large_wait: Duration,
    pub watch_list_defaulting: bool,
    /// Whether `shardSelector` is honoured (the `ShardedListAndWatch` feature gate).
    pub sharding: bool,
    pub max_body_bytes: usize,
    /// Whether the admin API under `/_kazan/` is served.
    pub admin: bool,
}

/// Everything a request handler reaches.
pub(crate) struct App {
    pub store: Arc<Store>,
    pub faults: Faults,
    pub observer: Arc<Observer>,
    pub settings: Settings,
    pub shutdown: CancellationToken,
}
