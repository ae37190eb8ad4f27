//! Every log line a test binary writes, at TRACE, captured for the secrets tests to search.

use std::sync::{Arc, Mutex, OnceLock};

/// What `tracing` (and, through it, the `log` crate) wrote.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut logs) = self.0.lock() {
            logs.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default()
    }
}

/// Installs the capturing subscriber at TRACE, once per test binary; every test that reads the
/// logs calls this before doing anything, so that no log line escapes it.
pub fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::util::SubscriberInitExt as _;
        let logs = Logs::default();
        let writer = logs.clone();
        // `try_init` also forwards the `log` crate's records (rustls logs through it); it fails
        // only if a subscriber is already set, which nothing else in a test binary does.
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
            .try_init();
        logs
    })
}
