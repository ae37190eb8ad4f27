//! Errors of the harness (parent side) and of a consumer run (child side).

use std::path::PathBuf;

/// What can go wrong while the harness prepares a scenario, runs its children or writes results.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The pod every event is built from is not JSON.
    #[error("the pod JSON does not parse or serialize: {0}")]
    Pod(#[source] serde_json::Error),
    /// The pod JSON parses but is not shaped like a pod.
    #[error("the pod JSON is not a pod: {0}")]
    PodShape(&'static str),
    /// The event count does not fit in memory on this platform.
    #[error("{0} events do not fit in one buffer")]
    TooManyEvents(u64),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A server could not bind its loopback port.
    #[error("cannot listen on 127.0.0.1:0: {0}")]
    Bind(#[source] std::io::Error),
    /// A consumer process could not be started.
    #[error("cannot start the {consumer} consumer ({program}): {source}")]
    Spawn {
        /// The consumer's name.
        consumer: String,
        /// The program that was executed.
        program: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A consumer process failed; its own message is on stderr, above.
    #[error("the {consumer} consumer exited with {status} (its stderr is above)")]
    ChildFailed {
        /// The consumer's name.
        consumer: String,
        /// How it exited.
        status: std::process::ExitStatus,
    },
    /// A consumer process ran past the time a round may take and was killed.
    #[error("the {consumer} consumer did not finish within {seconds} s and was killed")]
    ChildTimeout {
        /// The consumer's name.
        consumer: String,
        /// The limit.
        seconds: u64,
    },
    /// A consumer process printed something that is not a report.
    #[error("the {consumer} consumer's report does not parse ({line:?}): {source}")]
    ChildReport {
        /// The consumer's name.
        consumer: String,
        /// The line it printed last.
        line: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// The async runtime could not be built.
    #[error("cannot build the tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A consumer process broke the cache scenario's line protocol.
    #[error("the {consumer} consumer: {problem}")]
    Protocol {
        /// The consumer's name.
        consumer: String,
        /// What went wrong.
        problem: String,
    },
    /// The embedded API server failed to start or to take a write.
    #[error("embedded API server: {0}")]
    ApiServer(String),
    /// The results could not be written as JSON.
    #[error("cannot serialize the results: {0}")]
    Results(#[source] serde_json::Error),
}

/// What can go wrong inside a consumer process while it watches.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The events could not be built (decode bound).
    #[error(transparent)]
    Events(#[from] BenchError),
    /// The server address given to the consumer is not a URL.
    #[error("the server address {url:?} is not a URL: {reason}")]
    ServerUrl {
        /// The address.
        url: String,
        /// Why it does not parse.
        reason: String,
    },
    /// kube-runtime's client could not be built.
    #[error("kube client: {0}")]
    KubeClient(#[source] Box<kube::Error>),
    /// kazan's client could not be built.
    #[error("kazan client: {0}")]
    KazanClient(#[source] Box<kazan::Error>),
    /// kazan's Watcher could not be started.
    #[error("kazan watcher: {0}")]
    KazanWatcher(#[source] Box<kazan::watcher::WatchError>),
    /// kazan's Watcher ended or skipped an event before the last expected one.
    #[error("kazan watcher: {0}")]
    KazanEnded(String),
    /// A line of the in-memory stream did not decode (decode bound).
    #[error("event {index} does not decode: {reason}")]
    DecodeBound {
        /// The event's index in the stream.
        index: u64,
        /// The parser's error (serde_json's, simd-json's or sonic-rs's).
        reason: String,
    },
    /// An event carried a type no watch stream of pods should.
    #[error("event {index} has the unexpected type {event_type:?}")]
    UnexpectedType {
        /// The event's index in the stream.
        index: u64,
        /// Its type.
        event_type: String,
    },
    /// An object arrived without a resourceVersion, or with one that is not a number.
    #[error("an object arrived with the resourceVersion {0:?}, not a number")]
    ResourceVersion(Option<String>),
    /// An object arrived from a namespace the consumer does not watch.
    #[error("an object arrived for watch {watch}, but there are {watch_count} watches")]
    UnknownWatch {
        /// The watch index the object's namespace maps to.
        watch: usize,
        /// How many watches there are.
        watch_count: usize,
    },
    /// The stream ended before every expected event arrived.
    #[error("the stream ended after {received} of {expected} events")]
    Ended {
        /// Events received.
        received: u64,
        /// Events expected.
        expected: u64,
    },
    /// kazan's informer could not be started (cache scenario).
    #[error("kazan informer: {0}")]
    KazanInformer(#[source] Box<kazan::informer::InformerError>),
    /// A cache consumer's watch ended, or it did not get where the scenario needs it in time.
    #[error("the cache ended or stalled {0}")]
    CacheEnded(&'static str),
    /// The consumer takes part in the cache scenario only.
    #[error("the {0} consumer runs in the cache scenario only")]
    CacheOnly(&'static str),
    /// The consumer runs in another program, not inside this binary.
    #[error("the {0} consumer does not run inside this binary")]
    External(&'static str),
    /// The report could not be written.
    #[error("cannot write the report: {0}")]
    Report(#[source] std::io::Error),
    /// The runtime could not be built.
    #[error("cannot build the tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
}
