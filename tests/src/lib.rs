//! Test harness shared by the integration tests: real object-store servers started on
//! 127.0.0.1, a Switchyard engine started in-process, and clients pointed at it.

pub mod compat;
pub mod emulators;
pub mod harness;
pub mod torture;
pub mod wasm;
