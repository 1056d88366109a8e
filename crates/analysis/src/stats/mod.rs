//! The statistics the report states, one concept per module, each checked against scipy on
//! committed fixtures (`fixtures/make_scipy_fixtures.py`).

pub mod bootstrap;
pub mod describe;
pub mod effect_size;
pub mod hypothesis;
pub mod multiple;
pub mod outliers;
pub mod percentiles;
pub mod sorting;

pub use bootstrap::{bootstrap, median_interval, median_interval_exact, median_interval_sorted, ratio_of_medians, EXACT_BOOTSTRAP_ABOVE};
pub use describe::{mean, median, t_interval, variance};
pub use effect_size::{cliffs_delta, cliffs_delta_sorted, hodges_lehmann};
pub use hypothesis::{mann_whitney_min_p, mann_whitney_u, mann_whitney_u_sorted, welch_t, TestResult};
pub use multiple::holm;
pub use outliers::Fences;
pub use percentiles::{percentiles, quantile, Percentiles};
pub use sorting::sorted;
