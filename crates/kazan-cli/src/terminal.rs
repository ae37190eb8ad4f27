//! Where output goes and what stops a command: stdout written and flushed per event (a closed
//! pipe ends the command quietly), and Ctrl-C or SIGTERM.

use std::io::Write;

use crate::error::CliError;

/// Writes `text` to stdout and flushes it, so that a pipe sees it now.
pub fn emit(text: &str) -> Result<(), CliError> {
    if text.is_empty() {
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::StdoutClosed),
        Err(e) => Err(CliError::Output(e)),
    }
}

/// Whether the reader of stdout has gone (`kazan watch ... | head -3` after its three lines), so
/// that a quiet watch can end then rather than at the next event it fails to write (issue 23). A
/// pipe whose reader has closed polls as an error; false when that cannot be told (stdout a file
/// or a terminal, or not Unix).
pub fn stdout_closed() -> bool {
    #[cfg(unix)]
    {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let stdout = std::io::stdout();
        let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(poll(&mut fds, Some(&now)), Ok(1) if fds[0].revents().contains(PollFlags::ERR))
    }
    #[cfg(not(unix))]
    false
}

/// Ctrl-C, and SIGTERM on Unix.
pub struct Signals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Starts listening for SIGTERM (Ctrl-C is listened for from the first [`Signals::recv`]).
    pub fn new() -> Result<Signals, CliError> {
        Ok(Signals {
            #[cfg(unix)]
            terminate: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(CliError::Signal)?,
        })
    }

    /// Waits for the next Ctrl-C or SIGTERM.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            () = ctrl_c() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        ctrl_c().await;
    }
}

/// Ctrl-C; never, if it cannot be listened for (rather than a stop at once).
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
