//! `kazan version`: the client's version, then the server's (its `/version`), as `kubectl
//! version` prints them.

use std::process::ExitCode;

use bytes::Bytes;
use serde_json::Value;

use crate::{
    cluster::{Cluster, ClusterArgs},
    error::CliError,
    logging,
};

/// Arguments of `kazan version`.
#[derive(clap::Args, Debug)]
pub struct VersionArgs {
    /// The client's version only; no request to a server.
    #[arg(long)]
    client: bool,

    #[command(flatten)]
    cluster: ClusterArgs,
}

/// The largest `/version` answer read.
const MAX_VERSION_BYTES: usize = 1024 * 1024;

/// Runs `kazan version`.
pub async fn run(args: VersionArgs) -> ExitCode {
    logging::init(args.cluster.log_level);
    println!("Client Version: v{}", env!("CARGO_PKG_VERSION"));
    if args.client {
        return ExitCode::SUCCESS;
    }
    match server_version(&args.cluster).await {
        Ok(version) => {
            println!("Server Version: {version}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The server's `gitVersion`.
async fn server_version(args: &ClusterArgs) -> Result<String, CliError> {
    let cluster = Cluster::connect(args)?;
    let failed = |source| CliError::Request {
        what: format!("asking {} for its version", cluster.client.config().cluster_url),
        source: Box::new(source),
    };
    let request = http::Request::get("/version")
        .body(Bytes::new())
        .map_err(|e| CliError::Unexpected(e.to_string()))?;
    let response = cluster.client.send_raw(request).await.map_err(failed)?;
    let body = response
        .into_body()
        .read_all(MAX_VERSION_BYTES)
        .await
        .map_err(failed)?;
    let version: Value = serde_json::from_slice(&body)
        .map_err(|e| CliError::Unexpected(format!("the server's /version is not JSON: {e}")))?;
    version
        .get("gitVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| CliError::Unexpected("the server's /version has no gitVersion".into()))
}
