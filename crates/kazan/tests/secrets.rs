//! The tests that install a process-wide subscriber capturing every log line at TRACE, to search
//! the logs for tokens, passwords and keys: in a binary of their own, so that no other test pays
//! for the capture.

mod support;

#[path = "auth.rs"]
mod auth;
#[path = "exec_client_cert.rs"]
mod exec_client_cert;
#[path = "security.rs"]
mod security;
