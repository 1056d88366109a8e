//! GPU monitoring: an NVML sampler thread beside every cell, at 20 Hz. Each sample is appended to
//! `raw_data/monitor.jsonl` tagged with the engine, workload and cell it was taken in; per cell the
//! sampler also keeps the peaks and the energy counter's start and end, which the runner writes
//! into the cell's record. Without NVML (no driver, no GPU) the runner says so once and goes on.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::Nvml;

use run_format::records::{unix_ms, SCHEMA};
pub use run_format::records::{CellStats, Sample, Tag};
use crate::sampler::SamplerThread;

/// 25 Hz on a fixed schedule, so the rate stays above 20 Hz however long a round of NVML calls takes.
pub const PERIOD: Duration = Duration::from_millis(40);

/// The samples of one tag (engine, workload, cell, phase, process) and the energy drawn while it
/// held the GPU: the counter's increments between consecutive samples of that tag, so that in an
/// interleaved cell each engine is charged only for its own stretches.
#[derive(Default)]
struct Accumulated {
    samples: Vec<Sample>,
    energy_mj: Option<u64>,
}

#[derive(Default)]
struct Shared {
    tag: Tag,
    latest: Option<Sample>,
    cells: std::collections::HashMap<Tag, Accumulated>,
}

pub struct Monitor {
    shared: Arc<Mutex<Shared>>,
    _thread: SamplerThread,
}

fn opt_max(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

/// Summarises a cell's samples (pure, so it is tested without a GPU).
pub fn cell_stats(samples: &[Sample]) -> CellStats {
    let mean = |xs: Vec<f64>| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
    let energies: Vec<u64> = samples.iter().filter_map(|s| s.energy_mj).collect();
    CellStats {
        samples: samples.len(),
        gpu_proc_peak_bytes: samples.iter().map(|s| s.proc_mem_bytes).fold(None, opt_max),
        gpu_device_peak_bytes: samples.iter().map(|s| s.mem_used_bytes).fold(None, opt_max),
        energy_mj: (energies.len() >= 2).then(|| energies[energies.len() - 1].saturating_sub(energies[0])),
        mean_power_w: mean(samples.iter().filter_map(|s| s.power_mw).map(|p| p as f64 / 1000.0).collect()),
        mean_gpu_util_pct: mean(samples.iter().filter_map(|s| s.gpu_util_pct).map(f64::from).collect()),
        max_temp_c: samples.iter().filter_map(|s| s.temp_c).max(),
    }
}

impl Monitor {
    /// Starts sampling GPU `index` into `path`; an error says why NVML is not usable here.
    pub fn start(index: u32, path: &Path) -> Result<Monitor, String> {
        let nvml = Nvml::init().map_err(|e| format!("NVML unavailable: {e}"))?;
        nvml.device_by_index(index).map_err(|e| format!("NVML has no GPU {index}: {e}"))?;
        drop(nvml);
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let s2 = shared.clone();
        let thread = SamplerThread::spawn("nvml-monitor", move |stop2| {
            // NVML handles are not Send: the sampler owns its own.
            let Ok(nvml) = Nvml::init() else { return };
            let Ok(dev) = nvml.device_by_index(index) else { return };
            let mut next = std::time::Instant::now();
            while !SamplerThread::stopped(&stop2) {
                let tag = s2.lock().expect("monitor lock").tag.clone();
                let mem = dev.memory_info().ok();
                let util = dev.utilization_rates().ok();
                let proc_mem = tag.pid.and_then(|pid| {
                    dev.running_compute_processes().ok()?.into_iter().find(|p| p.pid == pid).and_then(|p| match p.used_gpu_memory {
                        UsedGpuMemory::Used(b) => Some(b),
                        UsedGpuMemory::Unavailable => None,
                    })
                });
                let sample = Sample {
                    schema: SCHEMA,
                    unix_ms: unix_ms(),
                    tag,
                    gpu_util_pct: util.as_ref().map(|u| u.gpu),
                    mem_util_pct: util.as_ref().map(|u| u.memory),
                    mem_used_bytes: mem.as_ref().map(|m| m.used),
                    mem_total_bytes: mem.as_ref().map(|m| m.total),
                    proc_mem_bytes: proc_mem,
                    power_mw: dev.power_usage().ok(),
                    energy_mj: dev.total_energy_consumption().ok(),
                    sm_clock_mhz: dev.clock_info(Clock::SM).ok(),
                    mem_clock_mhz: dev.clock_info(Clock::Memory).ok(),
                    temp_c: dev.temperature(TemperatureSensor::Gpu).ok(),
                    throttle_reasons: dev.current_throttle_reasons().ok().map(|r| r.bits()),
                };
                if let Ok(line) = serde_json::to_string(&sample) {
                    let _ = writeln!(file, "{line}").and_then(|_| file.flush());
                }
                {
                    let mut s = s2.lock().expect("monitor lock");
                    if s.tag.cell.is_some() && s.tag == sample.tag {
                        let step = match (s.latest.as_ref().filter(|l| l.tag == sample.tag).and_then(|l| l.energy_mj), sample.energy_mj) {
                            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                            _ => None,
                        };
                        let acc = s.cells.entry(sample.tag.clone()).or_default();
                        if let Some(d) = step {
                            acc.energy_mj = Some(acc.energy_mj.unwrap_or(0) + d);
                        }
                        acc.samples.push(sample.clone());
                    }
                    s.latest = Some(sample);
                }
                next += PERIOD;
                std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
            }
        })
        .map_err(|e| format!("starting the NVML sampler: {e}"))?;
        Ok(Monitor { shared, _thread: thread })
    }

    /// Tags the samples that follow. Statistics are kept per tag, so a cell's engines can take
    /// turns (interleaved) and each keeps its own.
    pub fn tag(&self, tag: Tag) {
        self.shared.lock().expect("monitor lock").tag = tag;
    }

    /// Statistics of the current tag's samples so far, which are then let go.
    pub fn cell(&self) -> CellStats {
        let tag = self.shared.lock().expect("monitor lock").tag.clone();
        self.take_cell(&tag)
    }

    /// Statistics of the samples taken under `tag`, which are then let go.
    pub fn take_cell(&self, tag: &Tag) -> CellStats {
        let acc = self.shared.lock().expect("monitor lock").cells.remove(tag).unwrap_or_default();
        CellStats { energy_mj: acc.energy_mj, ..cell_stats(&acc.samples) }
    }

    pub fn temperature_c(&self) -> Option<u32> {
        self.shared.lock().expect("monitor lock").latest.as_ref().and_then(|s| s.temp_c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(energy: u64, power_mw: u32, used: u64, proc_mem: Option<u64>) -> Sample {
        Sample {
            schema: 1,
            unix_ms: 0,
            tag: Tag::default(),
            gpu_util_pct: Some(50),
            mem_util_pct: None,
            mem_used_bytes: Some(used),
            mem_total_bytes: None,
            proc_mem_bytes: proc_mem,
            power_mw: Some(power_mw),
            energy_mj: Some(energy),
            sm_clock_mhz: None,
            mem_clock_mhz: None,
            temp_c: Some(40),
            throttle_reasons: Some(0),
        }
    }

    #[test]
    fn cell_statistics_take_peaks_energy_difference_and_mean_power() {
        let s = cell_stats(&[sample(1000, 100_000, 5, None), sample(1600, 300_000, 9, Some(4)), sample(2500, 200_000, 7, Some(6))]);
        assert_eq!(s.samples, 3);
        assert_eq!(s.energy_mj, Some(1500));
        assert_eq!(s.gpu_device_peak_bytes, Some(9));
        assert_eq!(s.gpu_proc_peak_bytes, Some(6));
        assert_eq!(s.mean_power_w, Some(200.0));
        assert_eq!(cell_stats(&[sample(1, 1, 1, None)]).energy_mj, None, "one sample spans no time");
    }

    #[test]
    fn without_a_driver_start_says_why() {
        // On machines with a GPU this starts; everywhere else it must fail with a reason, not panic.
        match Monitor::start(0, &std::env::temp_dir().join("monitor-test.jsonl")) {
            Ok(m) => drop(m),
            Err(e) => assert!(e.starts_with("NVML"), "{e}"),
        }
    }
}
