//! The test instruments that have no counterpart in a real API server: fault injection, the request
//! journal, the change log, and the admin API that exposes them over HTTP.

pub(crate) mod admin;
pub(crate) mod changelog;
pub(crate) mod faults;
pub(crate) mod journal;
