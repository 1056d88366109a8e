//! The engines every comparison is made against, by the names the raw data records them under.

/// The engine every speedup is measured against, and the correctness gate's reference.
pub const BASELINE: &str = "pytorch_baseline";
/// The careful-Python reference: a Rust engine has to beat this one to be worth a migration.
pub const COMPILED_REFERENCE: &str = "pytorch_compiled";
