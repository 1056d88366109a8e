//! The run directory's contract, shared by the side that writes it (the runner) and the side that
//! reads it (the analysis, the notebooks). Nothing here measures or computes a statistic.
//!
//! ```text
//! records (schema) ─► request_store (block store, Request views) ─► request_line (fast line decoder)
//!         │                                                           └─► streams (readers)
//!         └─► raw_data (writer)
//! config (config.yaml as the analysis reads it), model (the checkpoint's shape), engines (names)
//! ```

pub mod config;
pub mod engines;
pub mod model;
pub mod raw_data;
pub mod records;
pub mod request_line;
pub mod request_store;
pub mod streams;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use raw_data::RawData;
pub use request_store::{Request, Requests};
pub use streams::{read_requests, read_stream};
