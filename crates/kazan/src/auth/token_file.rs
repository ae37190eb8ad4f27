//! A bearer token read from a file that rotates (bound service-account tokens are replaced about
//! hourly). Each use checks the file's metadata, one `stat` call, and re-reads the file when it
//! changed, or when the last read is a minute old in case a change kept the same metadata. A failed
//! re-read keeps the last good token, with a warning.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use http::HeaderValue;
use tokio::sync::Mutex;

use super::{AuthError, header::bearer};

/// Re-read at least this often, whatever the metadata says (as client-go does).
const MAX_AGE: Duration = Duration::from_secs(60);

pub(super) struct TokenFile {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The last good token, as a header.
    header: Option<HeaderValue>,
    /// The file's metadata when last read (`None` if it could not be read).
    stamp: Option<Stamp>,
    /// When the file was last read, successfully or not.
    read_at: Option<Instant>,
}

/// What changes when a file is rewritten or replaced (the kubelet swaps a symlink).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        // A single stat; cheap enough to do on every request, and not worth a blocking-pool hop.
        let meta = std::fs::metadata(path).ok()?;
        Some(Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            #[cfg(unix)]
            inode: {
                use std::os::unix::fs::MetadataExt;
                (meta.dev(), meta.ino())
            },
        })
    }
}

impl TokenFile {
    pub(super) fn new(path: PathBuf) -> Self {
        TokenFile {
            path,
            state: Mutex::new(State::default()),
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The current token, re-read if the file changed.
    pub(super) async fn header(&self) -> Result<HeaderValue, AuthError> {
        let stamp = Stamp::of(&self.path);
        let mut state = self.state.lock().await;
        if let (Some(header), Some(read_at)) = (&state.header, state.read_at)
            && state.stamp == stamp
            && read_at.elapsed() < MAX_AGE
        {
            return Ok(header.clone());
        }
        // Boxed: a re-read (file I/O on the blocking pool) is rare; see `ExecAuth::credential`.
        Box::pin(self.reload(&mut state, stamp)).await
    }

    /// Re-reads the file now.
    pub(super) async fn refresh(&self) -> Result<(), AuthError> {
        let stamp = Stamp::of(&self.path);
        let mut state = self.state.lock().await;
        self.reload(&mut state, stamp).await.map(|_| ())
    }

    async fn reload(&self, state: &mut State, stamp: Option<Stamp>) -> Result<HeaderValue, AuthError> {
        state.stamp = stamp;
        state.read_at = Some(Instant::now());
        match self.read().await {
            Ok(header) => {
                state.header = Some(header.clone());
                Ok(header)
            }
            Err(error) => match &state.header {
                Some(last) => {
                    tracing::warn!(path = %self.path.display(), %error, "cannot re-read the token file; keeping the last token read");
                    Ok(last.clone())
                }
                None => Err(error),
            },
        }
    }

    async fn read(&self) -> Result<HeaderValue, AuthError> {
        let content = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|source| AuthError::TokenFile {
                path: self.path.clone(),
                source,
            })?;
        let token = content.trim();
        if token.is_empty() {
            return Err(AuthError::EmptyTokenFile {
                path: self.path.clone(),
            });
        }
        bearer(token, &format!("bearer token from {}", self.path.display()))
    }
}
