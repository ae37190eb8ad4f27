//! What can stop `kazan watch` and `kazan get`: each error names what was being done and what is
//! at fault (the kubeconfig file and context, the resource, the server's answer), on one line.

use std::sync::Arc;

use kazan::watcher::WatchError;

/// An error that ends a command with a non-zero status.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `--metrics-addr` could not be listened on.
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The kubeconfig (or in-cluster configuration) could not be loaded; the message names the
    /// file and context.
    #[error("{0}")]
    Config(Box<kazan::config::ConfigError>),
    /// A client could not be built from a loaded configuration (TLS material, proxy...).
    #[error("cannot use the configuration from {origin}: {source}")]
    Client {
        /// Where the configuration came from (file and context).
        origin: String,
        /// Why.
        source: Box<kazan::Error>,
    },
    /// Discovery does not know the resource type.
    #[error("the server doesn't have a resource type \"{0}\"")]
    UnknownResource(String),
    /// Discovery itself failed. The server's answer comes first (`401 Unauthorized`: a wrong
    /// token is the first thing to read), then what was being done.
    #[error("{}", discovery_failure(source, server, origin))]
    Discovery {
        /// The server URL.
        server: String,
        /// Where the configuration came from.
        origin: String,
        /// Why.
        source: Box<kazan::Error>,
    },
    /// A request failed; `what` says which (`listing configmaps in namespace "w"`).
    #[error("{what}: {}", short(source))]
    Request {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: Box<kazan::Error>,
    },
    /// A watch ended on an error it cannot recover from.
    #[error("{what}: {}", short_watch(source))]
    Watch {
        /// What was being watched (`watching pods in namespace "w"`).
        what: String,
        /// Why it ended.
        source: Arc<WatchError>,
    },
    /// Writing the output failed (other than a closed pipe, which ends quietly).
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
    /// Stdout was closed (the reader of a pipe went away): the command ends quietly.
    #[error("stdout is closed")]
    StdoutClosed,
    /// The arguments cannot work together.
    #[error("{0}")]
    Usage(String),
    /// The server or the watcher did something it should not (a list without a version...).
    #[error("{0}")]
    Unexpected(String),
    /// Signals could not be set up.
    #[error("cannot listen for Ctrl-C and SIGTERM: {0}")]
    Signal(std::io::Error),
}

impl From<kazan::config::ConfigError> for CliError {
    fn from(error: kazan::config::ConfigError) -> Self {
        CliError::Config(Box::new(error))
    }
}

/// A server's answer as `403 Forbidden: pods is forbidden: ...`; any other error as it displays.
pub fn short(error: &kazan::Error) -> String {
    match error.api() {
        Some(api) => {
            let mut out = api.code.to_string();
            if let Some(reason) = api.reason().filter(|r| !r.is_empty()) {
                out.push(' ');
                out.push_str(reason);
            }
            if let Some(message) = api.message().filter(|m| !m.trim().is_empty()) {
                out.push_str(": ");
                // One line, whatever the server sent.
                out.push_str(&message.split_whitespace().collect::<Vec<_>>().join(" "));
            }
            out
        }
        None => error.to_string(),
    }
}

fn discovery_failure(source: &kazan::Error, server: &str, origin: &str) -> String {
    let what = format!("discovering the resource types of {server} (configuration from {origin})");
    match source.api() {
        Some(_) => format!("{} (while {what})", short(source)),
        None => format!("{what}: {}", short(source)),
    }
}

fn short_watch(error: &WatchError) -> String {
    match error {
        WatchError::List { source, .. }
        | WatchError::Open { source, .. }
        | WatchError::Stream { source, .. }
            if source.api().is_some() =>
        {
            short(source)
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_answers_read_as_code_reason_and_message_on_one_line() {
        let api = kazan::ApiError {
            method: "GET".into(),
            url: "http://127.0.0.1:1/api/v1/namespaces/w/pods".into(),
            code: 403,
            status: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Status {
                code: Some(403),
                reason: Some("Forbidden".into()),
                message: Some("pods is forbidden:\n  no".into()),
                ..Default::default()
            }),
            body: None,
            retry_after: None,
        };
        let error = CliError::Request {
            what: "listing pods in namespace \"w\"".into(),
            source: Box::new(kazan::Error::Api(Box::new(api))),
        };
        assert_eq!(
            error.to_string(),
            "listing pods in namespace \"w\": 403 Forbidden: pods is forbidden: no"
        );
    }
}
