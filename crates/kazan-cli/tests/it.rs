//! The CLI's integration tests, one binary: each topic is a module (a file of its own beside this
//! one) sharing the `support` helpers, so that the tests link once (issue 16).

mod support;

#[path = "demo.rs"]
mod demo;
#[path = "get.rs"]
mod get;
#[path = "metrics.rs"]
mod metrics;
#[path = "serve.rs"]
mod serve;
#[path = "shards.rs"]
mod shards;
#[path = "watch.rs"]
mod watch;
#[path = "watch_tables.rs"]
mod watch_tables;
