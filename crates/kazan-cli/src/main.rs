//! The `kazan` command: watch Kubernetes resources, get them, serve an embedded API server, demo.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cluster;
mod demo;
mod error;
mod get;
mod lease;
mod logging;
mod metrics;
mod output;
mod reach;
mod resolve;
mod serve;
mod terminal;
mod version;
mod watch;

/// Watch Kubernetes resources reliably.
#[derive(Parser, Debug)]
#[command(name = "kazan", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the embedded API server until interrupted.
    Serve(serve::ServeArgs),
    /// Print the objects of a resource type, then every change to them as it happens.
    Watch(watch::WatchArgs),
    /// Print the objects of a resource type, or one object.
    Get(get::GetArgs),
    /// See the watcher at work against an embedded API server: no cluster needed.
    Demo(demo::DemoArgs),
    /// Show who holds which Lease (leader elections, sharded watches' slots).
    Lease(lease::LeaseArgs),
    /// Print the client's version and the server's (as `kubectl version`).
    Version(version::VersionArgs),
    /// Print a shell completion script: `source <(kazan completion bash)`.
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completion { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "kazan", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Watch(args) => watch::run(args).await,
            Command::Get(args) => get::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Version(args) => version::run(args).await,
            Command::Lease(args) => lease::run(args).await,
            // Handled before the runtime starts.
            Command::Completion { .. } => ExitCode::SUCCESS,
        }
    })
}
