//! The GPU's state while each cell was measured, from the NVML samples: SM clocks and throttle
//! (clocks-event) reasons. A cell measured with the GPU slowed down is flagged, never silently
//! compared.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::run::Run;
use crate::stats::{quantile, sorted};

/// NVML clocks-event reasons that mean the GPU was slowed (power cap, hardware slowdown, thermal
/// slowdowns, power brake). Idle, application clocks, sync boost and display clocks are not.
pub const SLOWDOWN_REASONS: u64 = 0x4 | 0x8 | 0x20 | 0x40 | 0x80;
const GPU_IDLE: u64 = 0x1;
/// A busy sample's SM clock below this share of the maximum is a slowed GPU.
pub const MIN_CLOCK_SHARE: f64 = 0.97;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuCellState {
    pub engine: String,
    pub workload: String,
    pub cell: String,
    /// Samples of the measured phase with the GPU busy (not flagged idle).
    pub busy_samples: usize,
    pub min_sm_clock_mhz: Option<u32>,
    pub median_sm_clock_mhz: Option<f64>,
    pub max_sm_clock_mhz: Option<u32>,
    /// The GPU's maximum SM clock (environment.json).
    pub rated_sm_clock_mhz: Option<u32>,
    /// Every clocks-event reason seen (NVML bits, ORed).
    pub throttle_reasons: u64,
    pub max_temp_c: Option<u32>,
    /// Why the cell is flagged (empty: not flagged).
    pub flags: Vec<String>,
}

/// The state of every cell that has measured-phase samples.
pub fn gpu_states(run: &Run) -> Vec<GpuCellState> {
    let rated = run
        .environment
        .pointer("/gpus/0/max_sm_clock_mhz")
        .and_then(|v| v.as_str().and_then(|s| s.trim().parse::<u32>().ok()).or_else(|| v.as_u64().map(|x| x as u32)));
    let mut by_cell: BTreeMap<(String, String, String), Vec<&run_format::records::Sample>> = BTreeMap::new();
    for s in run.monitor.iter().filter(|s| s.tag.phase.as_deref() == Some("measured")) {
        let (Some(e), Some(w), Some(c)) = (&s.tag.engine, &s.tag.workload, &s.tag.cell) else { continue };
        by_cell.entry((e.clone(), w.clone(), c.clone())).or_default().push(s);
    }
    by_cell
        .into_iter()
        .map(|((engine, workload, cell), samples)| {
            let busy: Vec<&&run_format::records::Sample> =
                samples.iter().filter(|s| s.throttle_reasons.unwrap_or(0) & GPU_IDLE == 0).collect();
            let clocks: Vec<u32> = busy.iter().filter_map(|s| s.sm_clock_mhz).collect();
            let throttle_reasons = samples.iter().filter_map(|s| s.throttle_reasons).fold(0, |a, b| a | b);
            let mut flags = Vec::new();
            if throttle_reasons & SLOWDOWN_REASONS != 0 {
                flags.push(format!("throttled (NVML clocks-event reasons {:#x})", throttle_reasons & SLOWDOWN_REASONS));
            }
            if let (Some(min), Some(r)) = (clocks.iter().min(), rated) {
                if (*min as f64) < r as f64 * MIN_CLOCK_SHARE {
                    flags.push(format!("SM clock down to {min} MHz of {r} MHz while busy"));
                }
            }
            let sorted_clocks = sorted(&clocks.iter().map(|&c| c as f64).collect::<Vec<_>>());
            GpuCellState {
                engine,
                workload,
                cell,
                busy_samples: busy.len(),
                min_sm_clock_mhz: clocks.iter().min().copied(),
                median_sm_clock_mhz: (!sorted_clocks.is_empty()).then(|| quantile(&sorted_clocks, 0.5)),
                max_sm_clock_mhz: clocks.iter().max().copied(),
                rated_sm_clock_mhz: rated,
                throttle_reasons,
                max_temp_c: samples.iter().filter_map(|s| s.temp_c).max(),
                flags,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slowed_cells_are_flagged_and_idle_samples_do_not_count() {
        let sample = |cell: &str, clock: u32, reasons: u64| run_format::records::Sample {
            schema: 1,
            unix_ms: 0,
            tag: run_format::records::Tag {
                engine: Some("e".into()),
                workload: Some("w".into()),
                cell: Some(cell.into()),
                phase: Some("measured".into()),
                pid: None,
            },
            gpu_util_pct: None,
            mem_util_pct: None,
            mem_used_bytes: None,
            mem_total_bytes: None,
            proc_mem_bytes: None,
            power_mw: None,
            energy_mj: None,
            sm_clock_mhz: Some(clock),
            mem_clock_mhz: None,
            temp_c: Some(40),
            throttle_reasons: Some(reasons),
        };
        let mut run = crate::requests::tests::run("r", vec![]);
        run.environment = serde_json::json!({"gpus": [{"max_sm_clock_mhz": "1980"}]});
        run.monitor = vec![
            sample("ok", 1980, 0),
            sample("ok", 345, GPU_IDLE),
            sample("hot", 1980, 0),
            sample("hot", 1600, 0x40),
            sample("slow", 1700, 0),
        ];
        let st = gpu_states(&run);
        let flags = |c: &str| st.iter().find(|s| s.cell == c).unwrap().flags.clone();
        assert!(flags("ok").is_empty(), "{:?}", flags("ok"));
        assert_eq!(flags("hot").len(), 2);
        assert!(flags("hot")[0].contains("throttled (NVML clocks-event reasons 0x40)"));
        assert_eq!(flags("slow"), vec!["SM clock down to 1700 MHz of 1980 MHz while busy".to_string()]);
    }
}
