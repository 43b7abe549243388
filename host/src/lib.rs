//! Switchyard: an S3-compatible gateway that puts many object stores behind one endpoint,
//! with placement and routing decided by policies.
//!
//! Layers, each calling only those below it: `frontend` (s3s) → `router` → `listing` →
//! `policy` / `backends` → `config` / `model`. `main.rs` only parses arguments and calls
//! [`run`] or [`start`], which tests call too.

pub mod access;
pub mod admin;
pub mod backends;
pub mod checksum;
pub mod config;
pub mod frontend;
pub mod iam;
pub mod jobs;
pub mod listing;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod mover;
pub mod policy;
pub mod reload;
pub mod router;
pub mod server;
pub mod tagging;
pub mod tls;
pub mod versions;
pub mod watch;

pub use config::Config;

/// This build's version (the package's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit this build was made from: 12 hex digits, with `-dirty` when tracked files
/// differed from it; empty when unknown (built without git or outside a checkout). Set by
/// `build.rs`.
pub const COMMIT: &str = env!("SWITCHYARD_COMMIT");
pub use server::{Server, StartError, run, run_with, start, start_with};
