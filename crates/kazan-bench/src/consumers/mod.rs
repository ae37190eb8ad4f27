//! The consumers measured side by side. Each runs in its own process: the Rust ones are this
//! binary re-executed with the hidden `consume` subcommand, the Python one is `python3` running the
//! embedded script. Adding a Rust consumer is a variant, one match arm in [`consume`], and one
//! module with its `consume(job, sink)` function.

pub mod cache;
mod decode_bound;
mod kazan_watcher;
mod kube_runtime;

pub(crate) use kazan_watcher::client as kazan_client;

use std::{path::Path, process::Stdio};

use kazan::Decoder;
use tokio::process::{Child, Command};

use crate::{
    error::{BenchError, ConsumeError},
    job::{Job, ScenarioName},
    sink::Sink,
};

/// The Python consumer's script, run with `python3 -c`.
const PYTHON_SCRIPT: &str = include_str!("../../python/watch_pods.py");

/// A consumer, by the name the command line and the tables use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Consumer {
    /// kube-runtime's `watcher` (kube 5), typed `Pod`: the reference every ratio is taken against.
    KubeRuntime,
    /// kazan's Watcher, spawned, events through its handle's channel; typed `Pod`.
    KazanChannel,
    /// kazan's Watcher, spawned as `kazan-channel` is, with objects decoded ahead on the runtime's
    /// other threads (`decode_concurrency(4)`); typed `Pod`.
    KazanParallel,
    /// kazan's Watcher as a `Stream`; typed `Pod`.
    KazanStream,
    /// kazan's Watcher as a `Stream` of `RawObject`s: the lazy form (identity read, the object
    /// kept as JSON and not decoded).
    KazanRaw,
    /// `serde_json` into `{type, object: Pod}` over the same bytes in memory: no I/O.
    DecodeBound,
    /// kazan-channel with serde_json as its decoder (kazan's default is the fastest it has).
    KazanChannelSerdeJson,
    /// kazan-stream with serde_json as its decoder.
    KazanStreamSerdeJson,
    /// kazan-channel with sonic-rs as its decoder.
    KazanChannelSonicRs,
    /// kazan-stream with sonic-rs as its decoder.
    KazanStreamSonicRs,
    /// The decode bound with simd-json (`serde::from_slice_with_buffers`, each line copied into
    /// a reused buffer first, the copy included).
    DecodeBoundSimdJson,
    /// The decode bound with sonic-rs (`from_slice`).
    DecodeBoundSonicRs,
    /// The decode bound with simd-json over two threads: one parses each line into simd-json's
    /// tape, the other builds the `Pod` from it and drops it.
    DecodeBoundSimdJsonPipelined,
    /// The official Python client's `watch.Watch`.
    Python,
    /// Cache: kube-runtime's `reflector` over `watcher` with a `Store<Pod>`, default config.
    KubeReflector,
    /// Cache: the same with `.modify()` clearing `managedFields` before the store.
    KubeReflectorModify,
    /// Cache: the same over `Api<PartialObjectMeta<Pod>>` (metadata-only requests).
    KubeReflectorMetadata,
    /// Cache: kazan's informer, typed `Pod`, initial list and relist page by page.
    KazanInformerPaginated,
    /// Cache: kazan's informer, typed `Pod`, lists streamed (watch-list).
    KazanInformerStreaming,
    /// Cache: kazan's informer, typed `Pod`, lists streamed, objects built by serde_json (the
    /// others by kazan-bench's default decoder, simd-json).
    KazanInformerSerdeJson,
    /// Cache: kazan's informer, typed `Pod`, `strip_managed_fields` as its transform.
    KazanInformerTransform,
    /// Cache: kazan's informer with a compact store (objects kept as compact JSON).
    KazanCompact,
    /// Cache: kazan's informer of `PartialObjectMetadata`.
    KazanMetadata,
}

impl Consumer {
    /// The consumer every ratio is taken against.
    pub const REFERENCE: Consumer = Consumer::KubeRuntime;

    /// The name in tables, reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Consumer::KubeRuntime => "kube-runtime",
            Consumer::KazanChannel => "kazan-channel",
            Consumer::KazanParallel => "kazan-parallel",
            Consumer::KazanStream => "kazan-stream",
            Consumer::KazanRaw => "kazan-raw",
            Consumer::DecodeBound => "decode-bound",
            Consumer::KazanChannelSerdeJson => "kazan-channel-serde-json",
            Consumer::KazanStreamSerdeJson => "kazan-stream-serde-json",
            Consumer::KazanChannelSonicRs => "kazan-channel-sonic-rs",
            Consumer::KazanStreamSonicRs => "kazan-stream-sonic-rs",
            Consumer::DecodeBoundSimdJson => "decode-bound-simd-json",
            Consumer::DecodeBoundSonicRs => "decode-bound-sonic-rs",
            Consumer::DecodeBoundSimdJsonPipelined => "decode-bound-simd-json-pipelined",
            Consumer::Python => "python",
            Consumer::KubeReflector => "kube-reflector",
            Consumer::KubeReflectorModify => "kube-reflector-modify",
            Consumer::KubeReflectorMetadata => "kube-reflector-metadata",
            Consumer::KazanInformerPaginated => "kazan-informer-paginated",
            Consumer::KazanInformerStreaming => "kazan-informer-streaming",
            Consumer::KazanInformerSerdeJson => "kazan-informer-serde-json",
            Consumer::KazanInformerTransform => "kazan-informer-transform",
            Consumer::KazanCompact => "kazan-compact",
            Consumer::KazanMetadata => "kazan-metadata",
        }
    }

    /// The consumers that take part in `scenario`, reference first.
    pub fn in_scenario(scenario: ScenarioName) -> Vec<Consumer> {
        match scenario {
            ScenarioName::Throughput => vec![
                Consumer::KubeRuntime,
                Consumer::KazanChannel,
                Consumer::KazanParallel,
                Consumer::KazanStream,
                Consumer::KazanRaw,
                Consumer::DecodeBound,
                Consumer::Python,
                Consumer::KazanChannelSerdeJson,
                Consumer::KazanStreamSerdeJson,
                Consumer::KazanChannelSonicRs,
                Consumer::KazanStreamSonicRs,
                Consumer::DecodeBoundSimdJson,
                Consumer::DecodeBoundSonicRs,
                Consumer::DecodeBoundSimdJsonPipelined,
            ],
            ScenarioName::ManyWatches => vec![
                Consumer::KubeRuntime,
                Consumer::KazanChannel,
                Consumer::KazanStream,
            ],
            ScenarioName::Load => vec![Consumer::KazanChannel],
            ScenarioName::Cache => cache::CONSUMERS.iter().map(|(consumer, _)| *consumer).collect(),
            ScenarioName::Resume | ScenarioName::SlowConsumer => vec![
                Consumer::KubeRuntime,
                Consumer::KazanChannel,
                Consumer::KazanStream,
                Consumer::Python,
            ],
        }
    }

    /// How many events this consumer gets where the others get `events`: the Python client is
    /// an order of magnitude slower, so it gets a tenth (its ratios are per event).
    pub fn events_for(self, events: u64) -> u64 {
        match self {
            Consumer::Python => (events / 10).max(1),
            _ => events,
        }
    }

    /// Whether this consumer reads from a server (the decode bound reads from memory).
    pub fn uses_a_server(self) -> bool {
        self.decode_bound().is_none()
    }

    /// The parser of a decode bound; `None` for the consumers that read from a server.
    pub fn decode_bound(self) -> Option<Decoder> {
        match self {
            Consumer::DecodeBound => Some(Decoder::SerdeJson),
            Consumer::DecodeBoundSimdJson => Some(Decoder::SimdJson),
            Consumer::DecodeBoundSonicRs => Some(Decoder::SonicRs),
            Consumer::DecodeBoundSimdJsonPipelined => Some(Decoder::SimdJson),
            _ => None,
        }
    }

    /// Whether this consumer can run here (the Python client may not be installed).
    pub async fn available(self) -> Result<(), String> {
        match self {
            Consumer::Python => {
                let output = Command::new("python3")
                    .args(["-c", "import kubernetes"])
                    .output()
                    .await
                    .map_err(|e| format!("python3 cannot be run: {e}"))?;
                if output.status.success() {
                    Ok(())
                } else {
                    Err("the kubernetes Python package is not installed (pip install kubernetes)".to_owned())
                }
            }
            _ => Ok(()),
        }
    }

    /// Starts this consumer on `job` as a child that speaks a line protocol over its stdin and
    /// stdout (the cache and load scenarios), its stderr the harness's, killed when dropped;
    /// `label` names it in errors.
    pub fn spawn_piped(
        self,
        bench_exe: &Path,
        job: &Job,
        wrap: &[String],
        label: &str,
    ) -> Result<Child, BenchError> {
        let mut command = self.command(bench_exe, job, wrap);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        command.spawn().map_err(|source| BenchError::Spawn {
            consumer: label.to_owned(),
            program: format!("{:?}", command.as_std().get_program()),
            source,
        })
    }

    /// The command that runs this consumer on `job` in its own process; a Rust consumer runs
    /// under `wrap` (a profiler and its arguments) when that is not empty.
    pub fn command(self, bench_exe: &Path, job: &Job, wrap: &[String]) -> Command {
        let mut command = match self {
            Consumer::Python => {
                let mut command = Command::new("python3");
                command.args(["-c", PYTHON_SCRIPT]);
                command
            }
            _ => match wrap.split_first() {
                Some((program, args)) => {
                    let mut command = Command::new(program);
                    command.args(args).arg(bench_exe).arg("consume");
                    command
                }
                None => {
                    let mut command = Command::new(bench_exe);
                    command.arg("consume");
                    command
                }
            },
        };
        command.args(["--consumer", self.name()]).args(job.to_args());
        command
    }
}

/// How many chunks of events `kazan-parallel` decodes at once.
const PARALLEL_DECODES: usize = 4;

/// Runs `consumer` on `job` in this process, delivering every event to `sink`.
pub async fn consume(consumer: Consumer, job: &Job, sink: &mut Sink) -> Result<(), ConsumeError> {
    match consumer {
        Consumer::KubeRuntime => kube_runtime::consume(job, sink).await,
        Consumer::KazanChannel => kazan_watcher::consume_channel(job, sink, 1, Decoder::default()).await,
        Consumer::KazanParallel => {
            kazan_watcher::consume_channel(job, sink, PARALLEL_DECODES, Decoder::default()).await
        }
        Consumer::KazanStream => kazan_watcher::consume_stream(job, sink, Decoder::default()).await,
        Consumer::KazanChannelSerdeJson => {
            kazan_watcher::consume_channel(job, sink, 1, Decoder::SerdeJson).await
        }
        Consumer::KazanStreamSerdeJson => kazan_watcher::consume_stream(job, sink, Decoder::SerdeJson).await,
        Consumer::KazanChannelSonicRs => kazan_watcher::consume_channel(job, sink, 1, Decoder::SonicRs).await,
        Consumer::KazanStreamSonicRs => kazan_watcher::consume_stream(job, sink, Decoder::SonicRs).await,
        Consumer::KazanRaw => kazan_watcher::consume_raw(job, sink).await,
        Consumer::DecodeBound
        | Consumer::DecodeBoundSimdJson
        | Consumer::DecodeBoundSonicRs
        | Consumer::DecodeBoundSimdJsonPipelined => {
            let decoder = consumer.decode_bound().unwrap_or(Decoder::SerdeJson);
            let pipelined = consumer == Consumer::DecodeBoundSimdJsonPipelined;
            decode_bound::consume(job, sink, decoder, pipelined).await
        }
        Consumer::Python => Err(ConsumeError::External(consumer.name())),
        // The cache scenario's consumers speak its line protocol (see `cache::run`).
        _ => Err(ConsumeError::CacheOnly(consumer.name())),
    }
}
