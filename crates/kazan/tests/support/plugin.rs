//! Exec credential plugins for tests: a shell script in a temporary folder that also holds its
//! state (how often it ran, what it prints).
#![cfg(unix)]

use std::{
    io,
    path::{Path, PathBuf},
};

use kazan::config::ExecConfig;

/// Writes `body` as an executable `#!/bin/sh` script `dir/name`.
pub fn write_plugin(dir: &Path, name: &str, body: &str) -> io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// A temporary folder holding a plugin and its state; the plugin finds the folder in `$STATE`.
pub struct Plugin {
    dir: tempfile::TempDir,
    command: PathBuf,
}

impl Plugin {
    /// A plugin running the shell script `body`.
    pub fn new(body: &str) -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let command = write_plugin(dir.path(), "plugin", body)?;
        Ok(Plugin { dir, command })
    }

    /// The script's path.
    pub fn command(&self) -> &Path {
        &self.command
    }

    /// The plugin's state folder (`$STATE`).
    pub fn state(&self) -> &Path {
        self.dir.path()
    }

    /// How many times it ran, for plugins that append a line to `$STATE/runs` per run.
    pub fn runs(&self) -> usize {
        std::fs::read_to_string(self.state().join("runs"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// The kubeconfig `exec` entry running it, never interactive, with `$STATE`, `$API_VERSION`
    /// and `env` set.
    pub fn config(&self, api_version: &str, env: &[(&str, &str)]) -> ExecConfig {
        let mut exec = ExecConfig::new(api_version, self.command.to_string_lossy());
        exec.env = vec![
            ("STATE".to_string(), self.state().to_string_lossy().into_owned()),
            ("API_VERSION".to_string(), api_version.to_string()),
        ];
        exec.env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        exec.interactive_mode = Some("Never".to_string());
        exec
    }

    /// What every run prints (`$STATE/output`), unless a run has an output of its own.
    pub fn set_output(&self, output: &str) -> io::Result<()> {
        std::fs::write(self.state().join("output"), output)
    }

    /// What the `run`th run prints (from 1), for plugins that read `$STATE/output-N`.
    pub fn set_output_of_run(&self, run: usize, output: &str) -> io::Result<()> {
        std::fs::write(self.state().join(format!("output-{run}")), output)
    }
}
