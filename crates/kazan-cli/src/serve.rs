//! `kazan serve`: the embedded API server, until interrupted.

use std::process::ExitCode;

/// Arguments of `kazan serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {}

/// Runs `kazan serve`.
pub async fn run(_args: ServeArgs) -> ExitCode {
    eprintln!("kazan serve: being written");
    ExitCode::FAILURE
}
