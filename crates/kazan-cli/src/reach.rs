//! Whether the server can be reached, told to the user once when it cannot and once when it can
//! again, whatever the log level.
//!
//! The watcher retries on its own, and logs each retry at `warn`, which the default log level
//! (`error`) does not show: without this a watch whose server is gone looked the same as a quiet
//! one (issue 23). When the watcher's retry count grows, the server is asked for `/version`; if
//! that fails to connect, one line on stderr says so and that kazan keeps retrying; then the
//! server is asked again on each tick until it answers, and one line says it is back.

use std::time::Duration;

use bytes::Bytes;
use kazan::{Client, Error};

/// How long one question to the server may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the user has been told about the server.
pub struct Reachability {
    client: Client,
    /// The watcher's retries when last looked at.
    retries: u64,
    /// The user was told the server cannot be reached, and not yet that it is back.
    down: bool,
}

impl Reachability {
    /// Nothing told yet.
    pub fn new(client: &Client) -> Self {
        Reachability {
            client: client.with_request_timeout(PROBE_TIMEOUT),
            retries: 0,
            down: false,
        }
    }

    /// Called on each tick with the watcher's retry count: asks the server when the count grew or
    /// the server was down, and tells the user when that changes.
    pub async fn check(&mut self, retries: u64) {
        let grew = retries > self.retries;
        self.retries = retries;
        if !(grew || self.down) {
            return;
        }
        match self.probe().await {
            Some(error) if !self.down => {
                self.down = true;
                eprintln!(
                    "kazan: the server cannot be reached ({error}); kazan keeps retrying (Ctrl-C stops)"
                );
            }
            None if self.down => {
                self.down = false;
                eprintln!(
                    "kazan: the server at {} answers again; the watch goes on",
                    self.client.config().cluster_url
                );
            }
            _ => {}
        }
    }

    /// `None` when the server answers (any HTTP status: it is there), else why it cannot be
    /// reached.
    async fn probe(&self) -> Option<Error> {
        let request = http::Request::get("/version").body(Bytes::new()).ok()?;
        match self.client.send_raw(request).await {
            Ok(_) => None,
            Err(e) if unreachable(&e) => Some(e),
            Err(_) => None,
        }
    }
}

/// Whether an error means no answer came from the server at all.
fn unreachable(error: &Error) -> bool {
    matches!(
        error,
        Error::Connect { .. } | Error::Tls { .. } | Error::Timeout { .. } | Error::Http { .. }
    )
}
