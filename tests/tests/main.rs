//! Every integration test, in one test binary: a module per file beside this one.
//!
//! One binary rather than one per file: each was linked against the whole gateway, the AWS
//! SDK and wasmtime, which made 27 links and monomorphised the same clients 27 times (two
//! and a half minutes of a two-core CI build), and `cargo test` ran the binaries one after
//! another, so the last long test of each left a core idle. Here the tests of all files share
//! the test threads. A file's tests are `FILE::name`:
//!
//! ```text
//! cargo test -p switchyard-tests --test suite conformance::
//! cargo test -p switchyard-tests --test suite torture:: -- --nocapture
//! ```
//!
//! What is process-wide is shared now too: a fail point (`fail::cfg`) that a test sets
//! names the one bucket or policy it is for, so tests running beside it are not stopped.

mod access_check;
mod admin;
mod buckets;
mod cli;
mod clients;
mod conformance;
mod console;
mod emulators_smoke;
mod examples;
mod gateway;
mod kubernetes;
mod migrate;
mod migrate_cross;
mod migrate_engines;
mod migrate_model;
mod observability;
mod plugins;
mod policies;
mod policy_check;
mod reload;
mod security;
mod security_fuzz;
mod security_policies;
mod tiering;
mod tls;
mod torture;
mod versioning;
