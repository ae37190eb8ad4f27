//! `kazan serve`: the embedded API server, until interrupted.
//!
//! It prints two lines on stdout, in a format scripts can read, and flushes them before serving:
//! ```text
//! url: http://127.0.0.1:40123
//! kubeconfig: /home/me/kazan.kubeconfig
//! ```
//! Everything else (what was loaded, logs) goes to stderr.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use kazan_apiserver::{ApiServer, ApiServerBuilder};

use crate::cluster::parse_duration;
use serde_json::Value;

/// Arguments of `kazan serve`.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,

    /// Serve HTTPS with a CA and server certificate generated at start; the kubeconfig carries
    /// the CA, so clients verify the server for real. Without --token a random token is generated
    /// and written into the kubeconfig (kubectl asks for a username when an HTTPS server's user
    /// has no credential).
    #[arg(long)]
    tls: bool,

    /// Require this bearer token (401 otherwise); written into the kubeconfig. Implies --tls:
    /// kubectl sends credentials to HTTPS servers only.
    #[arg(long, env = "KAZAN_SERVE_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// Where to write a kubeconfig that reaches the server. A file there that kazan serve did not
    /// write (its first line says so) is not replaced without --force; the directory must exist.
    #[arg(long, value_name = "PATH", default_value = "kazan.kubeconfig")]
    write_kubeconfig: PathBuf,

    /// Replace the --write-kubeconfig file even if kazan serve did not write it.
    #[arg(long)]
    force: bool,

    /// Create the objects of a YAML or JSON manifest file at start (repeatable). Namespaces and
    /// CustomResourceDefinitions are created first, so the rest can use them.
    #[arg(long, value_name = "FILE.yaml")]
    load: Vec<PathBuf>,

    /// Interval of BOOKMARK events on watches that ask for them (e.g. `500ms`, `5s`, `1m`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    bookmark_interval: Option<Duration>,

    /// Events kept per resource for resuming watches; older versions get 410 Gone.
    #[arg(long, value_name = "EVENTS")]
    history_limit: Option<usize>,

    /// How long a watch without `timeoutSeconds` lasts before the server ends it.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    default_watch_timeout: Option<Duration>,

    /// Serve the admin API under `/_kazan/` (fault injection, request journal, stats; same token
    /// as the API). Off by default: it lets a caller cut watches and read every request path.
    #[arg(long)]
    admin: bool,
}

const EXAMPLES: &str = "\
Examples:
  # Serve on a random loopback port; kubectl and any client reach it through the kubeconfig.
  kazan serve
  KUBECONFIG=./kazan.kubeconfig kubectl get namespaces

  # A fixed port, with objects loaded at start.
  kazan serve --addr 127.0.0.1:8080 --load demo.yaml --load more.yaml

  # Real TLS and a bearer token (--token implies --tls), the kubeconfig written elsewhere.
  kazan serve --token s3cret --write-kubeconfig /tmp/kazan.kubeconfig

  # Fast bookmarks and a short history, to exercise a watcher's resume and 410 handling.
  kazan serve --bookmark-interval 2s --history-limit 20

  # The admin API, to inject faults from a script (off unless asked for).
  kazan serve --admin
  curl -X POST http://127.0.0.1:PORT/_kazan/watches/cut

Ctrl-C or SIGTERM stops the server: open watches end cleanly.";

// The token is a secret: never in Debug output.
impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeArgs")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("write_kubeconfig", &self.write_kubeconfig)
            .field("force", &self.force)
            .field("load", &self.load)
            .field("bookmark_interval", &self.bookmark_interval)
            .field("history_limit", &self.history_limit)
            .field("default_watch_timeout", &self.default_watch_timeout)
            .field("admin", &self.admin)
            .finish()
    }
}

/// Why `kazan serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    #[error("cannot read {path}: {source}")]
    ReadManifest { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    ParseManifest {
        path: PathBuf,
        source: kazan_apiserver::load::LoadError,
    },
    #[error("{path}: cannot create {what}: {source}")]
    CreateObject {
        path: PathBuf,
        what: String,
        source: kazan_apiserver::StoreError,
    },
    #[error("cannot start the server: {0}")]
    Start(#[from] kazan_apiserver::ServerError),
    #[error("cannot write the kubeconfig to {path}: {source}")]
    WriteKubeconfig { path: PathBuf, source: std::io::Error },
    #[error(
        "{path} exists and kazan serve did not write it: not replacing it (give --force to replace it, or --write-kubeconfig another path)"
    )]
    NotOurKubeconfig { path: PathBuf },
    #[error("cannot write the kubeconfig to {path}: the directory {dir} does not exist")]
    NoDirectory { path: PathBuf, dir: PathBuf },
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
    #[error("cannot listen for signals: {0}")]
    Signal(std::io::Error),
}

/// Runs `kazan serve`.
pub async fn run(args: ServeArgs) -> ExitCode {
    init_logging();
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kazan serve: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Another subscriber already set (in tests) is fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn serve(args: ServeArgs) -> Result<(), ServeError> {
    // Read every manifest before starting, so a typo fails fast.
    let mut manifests = Vec::new();
    for path in &args.load {
        let text = std::fs::read_to_string(path).map_err(|source| ServeError::ReadManifest {
            path: path.clone(),
            source,
        })?;
        let objects =
            kazan_apiserver::load::parse_manifests(&text).map_err(|source| ServeError::ParseManifest {
                path: path.clone(),
                source,
            })?;
        manifests.push((path.clone(), objects));
    }

    let kubeconfig = std::path::absolute(&args.write_kubeconfig).unwrap_or(args.write_kubeconfig.clone());
    // Before the server starts: a file that must not be replaced stops it here.
    may_write_kubeconfig(&kubeconfig, args.force)?;
    if args.token.is_some() && !args.tls {
        eprintln!("kazan serve: --token implies --tls (kubectl sends credentials to HTTPS servers only)");
    }
    let mut args = args;
    if args.tls && args.token.is_none() {
        // Every client works unchanged only if the kubeconfig's user has a credential: kubectl
        // prompts for a username against an HTTPS server otherwise. Not printed: it is in the
        // kubeconfig, readable by its owner only.
        args.token = Some(uuid::Uuid::new_v4().simple().to_string());
        eprintln!(
            "kazan serve: --tls without --token: a token was generated and written into the kubeconfig"
        );
    }
    let server = builder(&args).start().await?;
    let loaded = load_objects(&server, manifests)?;

    write_kubeconfig(&server, &kubeconfig)?;

    let stop = Stop::listen()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "url: {}", server.url()).map_err(ServeError::Stdout)?;
    writeln!(stdout, "kubeconfig: {}", kubeconfig.display()).map_err(ServeError::Stdout)?;
    stdout.flush().map_err(ServeError::Stdout)?;
    drop(stdout);
    if loaded > 0 {
        eprintln!("kazan serve: loaded {loaded} objects");
    }
    eprintln!(
        "kazan serve: try `KUBECONFIG={} kubectl get namespaces`; Ctrl-C stops",
        kubeconfig.display()
    );

    let signal = stop.wait().await;
    eprintln!("kazan serve: stopping");
    server.shutdown().await;
    signal
}

fn builder(args: &ServeArgs) -> ApiServerBuilder {
    let mut builder = ApiServer::builder()
        .addr(args.addr)
        // kubectl sends a token to an HTTPS server only (client-go's clientcmd reads the user's
        // credentials only when the transport is TLS), so a token implies TLS.
        .tls(args.tls || args.token.is_some())
        .admin(args.admin);
    if let Some(token) = &args.token {
        builder = builder.token(token.clone());
    }
    if let Some(interval) = args.bookmark_interval {
        builder = builder.bookmark_interval(interval);
    }
    if let Some(limit) = args.history_limit {
        builder = builder.history_limit(limit);
    }
    if let Some(timeout) = args.default_watch_timeout {
        builder = builder.default_watch_timeout(timeout);
    }
    builder
}

/// Creates the loaded objects: CustomResourceDefinitions first (they register kinds), then
/// namespaces (others live in them), then everything else in file order. A namespace that already
/// exists (`default`) is not an error.
fn load_objects(server: &ApiServer, manifests: Vec<(PathBuf, Vec<Value>)>) -> Result<usize, ServeError> {
    let rank = |object: &Value| match object.get("kind").and_then(Value::as_str) {
        Some("CustomResourceDefinition") => 0,
        Some("Namespace") => 1,
        _ => 2,
    };
    let mut objects: Vec<(PathBuf, Value)> = manifests
        .into_iter()
        .flat_map(|(path, objects)| objects.into_iter().map(move |o| (path.clone(), o)))
        .collect();
    objects.sort_by_key(|(_, object)| rank(object));
    let mut created = 0;
    for (path, object) in objects {
        let what = describe(&object);
        match server.create(object.clone()) {
            Ok(_) => created += 1,
            Err(kazan_apiserver::StoreError::AlreadyExists(_)) if rank(&object) == 1 => {}
            Err(source) => return Err(ServeError::CreateObject { path, what, source }),
        }
    }
    Ok(created)
}

/// `ConfigMap default/settings`, for error messages.
fn describe(object: &Value) -> String {
    let field = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let kind = field("/kind");
    let name = field("/metadata/name");
    match field("/metadata/namespace") {
        "" => format!("{kind} {name}"),
        ns => format!("{kind} {ns}/{name}"),
    }
}

/// The first line of every kubeconfig `kazan serve` writes: how it knows a file it may replace.
pub const KUBECONFIG_MARK: &str = "# Written by `kazan serve`, which replaces it at its next start.";

/// Whether the kubeconfig may be written at `path`: its directory exists, and no file is there or
/// it is one `kazan serve` wrote (or `force`).
fn may_write_kubeconfig(path: &Path, force: bool) -> Result<(), ServeError> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(ServeError::NoDirectory {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    }
    if force {
        return Ok(());
    }
    match std::fs::read_to_string(path) {
        Ok(text) if text.lines().next() == Some(KUBECONFIG_MARK) => Ok(()),
        Ok(_) => Err(ServeError::NotOurKubeconfig {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        // Not readable as text (binary, a directory, no permission): not ours either way.
        Err(_) => Err(ServeError::NotOurKubeconfig {
            path: path.to_path_buf(),
        }),
    }
}

fn write_kubeconfig(server: &ApiServer, path: &Path) -> Result<(), ServeError> {
    let error = |source| ServeError::WriteKubeconfig {
        path: path.to_path_buf(),
        source,
    };
    let text = format!("{KUBECONFIG_MARK}\n{}", server.kubeconfig());
    std::fs::write(path, text).map_err(error)?;
    restrict_permissions(path).map_err(error)
}

/// The kubeconfig may carry a token: readable by its owner only.
#[cfg(unix)]
fn restrict_permissions(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Ctrl-C or (on Unix) SIGTERM, listened for from its creation on: it is made before the URL is
/// printed, so a script that reads the URL and stops the server at once stops it cleanly.
struct Stop {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Stop {
    fn listen() -> Result<Stop, ServeError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Stop {
                terminate: signal(SignalKind::terminate()).map_err(ServeError::Signal)?,
                interrupt: signal(SignalKind::interrupt()).map_err(ServeError::Signal)?,
            })
        }
        #[cfg(not(unix))]
        Ok(Stop {})
    }

    /// Waits for the signal.
    async fn wait(mut self) -> Result<(), ServeError> {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.terminate.recv() => Ok(()),
                _ = self.interrupt.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await.map_err(ServeError::Signal)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[tokio::test]
    async fn loading_creates_definitions_and_namespaces_first() -> Result<(), Box<dyn std::error::Error>> {
        let server = ApiServer::start().await?;
        let objects = kazan_apiserver::load::parse_manifests(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: shop}\n---\n\
             apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n\
             apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n---\n\
             apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
             metadata: {name: widgets.example.com}\n\
             spec: {group: example.com, scope: Namespaced, names: {plural: widgets, kind: Widget},\n\
             \x20 versions: [{name: v1, served: true, storage: true}]}\n",
        )?;
        let created = load_objects(&server, vec![(PathBuf::from("objects.yaml"), objects)])?;
        // The existing `default` namespace is skipped, not an error.
        assert_eq!(created, 3);
        let widget = server.get("example.com/v1", "Widget", Some("shop"), "w")?;
        assert_eq!(widget["metadata"]["name"], "w");
        server.shutdown().await;
        Ok(())
    }

    #[tokio::test]
    async fn a_load_failure_names_the_file_and_the_object() -> Result<(), Box<dyn std::error::Error>> {
        let server = ApiServer::start().await?;
        let objects = kazan_apiserver::load::parse_manifests(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: nowhere}\n",
        )?;
        let error = load_objects(&server, vec![(PathBuf::from("objects.yaml"), objects)])
            .err()
            .ok_or("a configmap in a missing namespace was created")?;
        assert!(
            error
                .to_string()
                .starts_with("objects.yaml: cannot create ConfigMap nowhere/c: "),
            "{error}"
        );
        server.shutdown().await;
        Ok(())
    }

    #[test]
    fn the_admin_api_is_off_unless_the_flag_is_given() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        assert!(!Cli::parse_from(["kazan"]).serve.admin);
        assert!(Cli::parse_from(["kazan", "--admin"]).serve.admin);
    }

    #[tokio::test]
    async fn the_built_server_serves_the_admin_api_only_with_the_flag()
    -> Result<(), Box<dyn std::error::Error>> {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        for (args, expected) in [(&["kazan"][..], 404), (&["kazan", "--admin"][..], 200)] {
            let server = builder(&Cli::parse_from(args).serve).start().await?;
            let client = kazan::Client::new(kazan::Config::new(server.url().parse()?))?;
            let request = http::Request::get("/_kazan/stats").body(bytes::Bytes::new())?;
            let answer = tokio::time::timeout(Duration::from_secs(20), client.send_raw(request)).await?;
            let status = match answer {
                Ok(response) => response.status().as_u16(),
                Err(e) => e.status_code().ok_or(e)?,
            };
            assert_eq!(status, expected, "{args:?}");
            server.shutdown().await;
        }
        Ok(())
    }

    #[test]
    fn the_token_stays_out_of_debug_output() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let cli = Cli::parse_from(["kazan", "--token", "hunter2"]);
        assert!(!format!("{:?}", cli.serve).contains("hunter2"));
        assert_eq!(cli.serve.token.as_deref(), Some("hunter2"));
    }
}
