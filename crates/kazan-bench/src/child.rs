//! The consumer side of a run: this binary re-executed as `kazan-bench consume --consumer NAME
//! ...`. It runs one consumer on one job and prints its [`ChildReport`](crate::job::ChildReport) as
//! one JSON line on stdout.

use std::io::Write as _;

use crate::{
    consumers::{self, Consumer},
    error::ConsumeError,
    job::{Job, ScenarioName},
    load,
    sink::Sink,
};

/// Runs `consumer` on `job` and prints the report. Every Rust consumer gets the same runtime: a
/// multi-threaded tokio runtime with the default number of workers.
pub fn run(consumer: Consumer, job: &Job) -> Result<(), ConsumeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ConsumeError::Runtime)?;
    if job.scenario == ScenarioName::Load {
        // The load scenario's watcher process speaks its own line protocol (see `load`). Its
        // stdin is read on a blocking thread that only returns when the harness closes it, so
        // the runtime is not waited for once the report is out.
        let result = runtime.block_on(load::watcher::run(job));
        runtime.shutdown_background();
        return result;
    }
    if job.scenario == ScenarioName::Cache {
        return runtime.block_on(consumers::cache::run(consumer, job));
    }
    let report = runtime.block_on(async {
        let mut sink = Sink::new(job);
        consumers::consume(consumer, job, &mut sink).await?;
        Ok::<_, ConsumeError>(sink.report(consumer.name()))
    })?;
    let line = serde_json::to_string(&report).map_err(|e| ConsumeError::Report(std::io::Error::other(e)))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").map_err(ConsumeError::Report)?;
    stdout.flush().map_err(ConsumeError::Report)
}
