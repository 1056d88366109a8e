//! Analysis of run directories. It never runs an engine: everything here is computed from the
//! raw data a run wrote, so any number can be recomputed anywhere from committed data.

pub mod stats;
