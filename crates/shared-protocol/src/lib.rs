//! The wire contract between the benchmark runner and an engine process.
//!
//! One JSON object per line: the runner writes [`Command`]s to the engine's stdin, the engine writes
//! [`Event`]s to its stdout; stderr is the engine's free-form log. `README.md` beside this crate is the
//! specification (a Python engine is written from it); this module is its Rust form.
//!
//! A Rust engine implements the small [`Model`] trait and calls [`serve`]: the loop here does the
//! parsing, queueing, greedy decoding, timing and error reporting, so every engine is timed the same way.

mod messages;
mod serve;

pub use messages::*;
pub use serve::{argmax, serve, serve_io, EngineError, Model, Step};
