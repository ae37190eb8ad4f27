//! kazan's integration tests, one binary: each topic is a module (a file of its own beside this
//! one), sharing the test support module, so that the tests link once (issue 16). The tests that
//! capture every log line at TRACE to search them for secrets run in `secrets.rs`, and the chaos
//! test in `chaos.rs`, each a binary of its own: a process-wide TRACE subscriber would slow down
//! and swell every other test.

mod support;

#[path = "bad_input.rs"]
mod bad_input;
#[path = "client.rs"]
mod client;
#[path = "config.rs"]
mod config;
#[path = "fuzz_kubeconfig.rs"]
mod fuzz_kubeconfig;
#[path = "informer.rs"]
mod informer;
#[path = "lease.rs"]
mod lease;
#[path = "restart.rs"]
mod restart;
#[path = "runtime.rs"]
mod runtime;
#[path = "shard_membership.rs"]
mod shard_membership;
#[path = "watcher.rs"]
mod watcher;
