//! Runs the built `kazan` binary against an embedded API server started in the test process, and
//! reads its output line by line with a deadline. Every child is killed when its handle drops.
//! What every crate's tests share comes from `kazan-test-support`.

use std::{path::PathBuf, process::Stdio, time::Duration};

use kazan_apiserver::ApiServer;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines},
    process::{Child, ChildStderr, ChildStdout, Command},
};

pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// How long any single wait may take before the test fails (the bound all crates' tests share).
pub use kazan_test_support::WAIT as DEADLINE;
pub use kazan_test_support::parse_metrics;

/// An embedded server with a kubeconfig on disk and a namespace `w`.
pub struct Cluster {
    pub server: ApiServer,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start() -> Result<Cluster> {
        let server = ApiServer::start().await?;
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig)?;
        server.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "w"}}))?;
        Ok(Cluster {
            server,
            kubeconfig,
            _dir: dir,
        })
    }

    /// `kazan ARGS --kubeconfig <the server's>`, with stdout and stderr piped.
    pub fn kazan(&self, args: &[&str]) -> Result<Kazan> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kazan"));
        command.args(args).arg("--kubeconfig").arg(&self.kubeconfig);
        Kazan::spawn(command)
    }

    /// Runs a command that ends by itself (`get`); returns its status, stdout and stderr.
    pub async fn run(&self, args: &[&str]) -> Result<Finished> {
        self.kazan(args)?.finish().await
    }

    pub fn configmap(&self, name: &str, data: Value) -> Result<Value> {
        Ok(self.server.create(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "w"},
            "data": data
        }))?)
    }

    pub fn patch_configmap(&self, name: &str, data: Value) -> Result<Value> {
        Ok(self
            .server
            .merge_patch("v1", "ConfigMap", Some("w"), name, json!({"data": data}))?)
    }

    pub fn delete_configmap(&self, name: &str) -> Result<Value> {
        Ok(self.server.delete("v1", "ConfigMap", Some("w"), name)?)
    }

    /// Waits until `n` watches of `plural` are open on the server: changes made after this are
    /// seen by them as events.
    pub async fn watching(&self, plural: &str, n: usize) -> Result {
        if self.server.wait_for_watches(plural, n, DEADLINE).await {
            Ok(())
        } else {
            Err(format!("{n} watch(es) of {plural} did not open within {DEADLINE:?}").into())
        }
    }
}

/// A running `kazan`.
pub struct Kazan {
    child: Child,
    stdout: Option<Lines<BufReader<ChildStdout>>>,
    stderr: Option<ChildStderr>,
    /// stderr read line by line, once [`Kazan::stderr_line`] has been called.
    stderr_lines: Option<Lines<BufReader<ChildStderr>>>,
    /// The stderr lines read so far.
    stderr_seen: Vec<String>,
}

/// How a command ended.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Kazan {
    pub fn spawn(mut command: Command) -> Result<Kazan> {
        command
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stderr = child.stderr.take();
        Ok(Kazan {
            child,
            stdout: Some(BufReader::new(stdout).lines()),
            stderr,
            stderr_lines: None,
            stderr_seen: Vec::new(),
        })
    }

    /// The next line of stdout.
    pub async fn line(&mut self) -> Result<String> {
        let stdout = self.stdout.as_mut().ok_or("stdout is closed")?;
        match tokio::time::timeout(DEADLINE, stdout.next_line()).await {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(Ok(None)) => {
                let stderr = self.stderr_now().await;
                Err(format!("stdout ended; stderr: {stderr}").into())
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(format!("no line within {DEADLINE:?}").into()),
        }
    }

    /// The next `n` lines of stdout.
    pub async fn lines(&mut self, n: usize) -> Result<Vec<String>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.line().await?);
        }
        Ok(out)
    }

    /// The next stderr line that contains `needle` (earlier ones are kept for [`Kazan::finish`]).
    pub async fn stderr_line(&mut self, needle: &str) -> Result<String> {
        if self.stderr_lines.is_none() {
            self.stderr_lines = self.stderr.take().map(|e| BufReader::new(e).lines());
        }
        let lines = self.stderr_lines.as_mut().ok_or("stderr is closed")?;
        let deadline = tokio::time::Instant::now() + DEADLINE;
        // Bounded by the deadline: each round reads one line.
        loop {
            match tokio::time::timeout_at(deadline, lines.next_line()).await {
                Ok(Ok(Some(line))) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(needle) {
                        return Ok(line);
                    }
                }
                Ok(Ok(None)) => {
                    return Err(format!("stderr ended without {needle:?}: {:?}", self.stderr_seen).into());
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {
                    return Err(format!(
                        "no stderr line with {needle:?} within {DEADLINE:?}: {:?}",
                        self.stderr_seen
                    )
                    .into());
                }
            }
        }
    }

    async fn stderr_now(&mut self) -> String {
        let mut text = String::new();
        for line in self.stderr_seen.drain(..) {
            text.push_str(&line);
            text.push('\n');
        }
        if let Some(lines) = self.stderr_lines.as_mut() {
            while let Ok(Ok(Some(line))) =
                tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await
            {
                text.push_str(&line);
                text.push('\n');
            }
        }
        if let Some(mut stderr) = self.stderr.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), stderr.read_to_string(&mut text)).await;
        }
        text
    }

    /// Waits for the end; returns the status and what is left of stdout and stderr.
    pub async fn finish(mut self) -> Result<Finished> {
        let mut stdout = String::new();
        if let Some(lines) = self.stdout.as_mut() {
            while let Some(line) = tokio::time::timeout(DEADLINE, lines.next_line())
                .await
                .map_err(|_| "the command did not end")??
            {
                stdout.push_str(&line);
                stdout.push('\n');
            }
        }
        let stderr = self.stderr_now().await;
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .map_err(|_| "the command did not exit")??;
        Ok(Finished {
            code: status.code(),
            stdout,
            stderr,
        })
    }

    /// Closes the reading end of stdout, as `head -1` does once it has its line.
    pub fn close_stdout(&mut self) {
        self.stdout = None;
    }

    /// Sends SIGTERM (as a service manager, or Ctrl-C's cousin, would).
    pub async fn terminate(&mut self) -> Result {
        let pid = self.child.id().ok_or("the child has exited")?;
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await?;
        if status.success() {
            Ok(())
        } else {
            Err("kill -TERM failed".into())
        }
    }
}

/// A table line with each age cell (`5s`, `12s`) and the padding after it replaced by `<age>`
/// and one space (or nothing at the end of the line), so lines compare exactly otherwise.
pub fn mask_ages(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while !rest.is_empty() {
        let token_end = rest.find(' ').unwrap_or(rest.len());
        let (token, after) = rest.split_at(token_end);
        let spaces = after.len() - after.trim_start_matches(' ').len();
        let is_age = token.len() >= 2
            && token.ends_with('s')
            && token[..token.len() - 1].bytes().all(|b| b.is_ascii_digit());
        if is_age {
            out.push_str("<age>");
            if spaces < after.len() {
                out.push(' ');
            }
        } else {
            out.push_str(token);
            out.push_str(&after[..spaces]);
        }
        rest = &after[spaces..];
    }
    out
}

/// An object with the fields the server makes up (uid, times, versions) removed.
pub fn without_server_fields(mut object: Value) -> Value {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "generation",
            "managedFields",
        ] {
            meta.remove(field);
        }
    }
    object
}

/// A watch event (`{"type", "object"}`) with the server's fields removed from the object.
pub fn masked_event(mut event: Value) -> Value {
    if let Some(object) = event.get_mut("object") {
        *object = without_server_fields(object.take());
    }
    event
}
