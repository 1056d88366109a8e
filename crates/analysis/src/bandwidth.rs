//! The copy-bandwidth probe's reading checked against the GPU's datasheet: a reading above what
//! the memory can do is a measuring error, and is not used.

use serde::Serialize;

/// Memory bandwidth from the vendor's datasheet, GB/s, for the GPUs this suite has met or is
/// likely to (a probe above it is a measuring error).
pub fn datasheet_bandwidth_gb_s(gpu: &str) -> Option<f64> {
    let g = gpu.to_ascii_uppercase();
    let table: [(&str, f64); 9] = [
        ("H200", 4800.0),
        ("H100 NVL", 3900.0),
        ("H100 PCIE", 2000.0),
        ("H100", 3350.0),
        ("A100-SXM4-80GB", 2039.0),
        ("A100 80GB PCIE", 1935.0),
        ("A100", 1555.0),
        ("L40S", 864.0),
        ("RTX 4090", 1008.0),
    ];
    table.iter().find(|(name, _)| g.contains(name)).map(|(_, bw)| *bw)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BandwidthCheck {
    pub measured_gb_s: f64,
    pub datasheet_gb_s: Option<f64>,
    /// Whether the reading is used (the roofline's memory roof, shares of bandwidth).
    pub accepted: bool,
    pub note: String,
}

/// The probe's reading against the datasheet: refused when above it (by more than 5 %).
pub fn bandwidth_check(measured_gb_s: f64, gpu: Option<&str>) -> BandwidthCheck {
    let datasheet = gpu.and_then(datasheet_bandwidth_gb_s);
    let (accepted, note) = match datasheet {
        Some(d) if measured_gb_s > d * 1.05 => {
            (false, format!("refused: {measured_gb_s:.0} GB/s is above the datasheet's {d:.0} GB/s, so the probe mismeasured"))
        }
        Some(d) => (true, format!("{:.0} % of the datasheet's {d:.0} GB/s", 100.0 * measured_gb_s / d)),
        None => (true, "unchecked: no datasheet figure for this GPU".into()),
    };
    BandwidthCheck { measured_gb_s, datasheet_gb_s: datasheet, accepted, note }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_above_the_datasheet_is_refused() {
        let c = bandwidth_check(153_312.8, Some("NVIDIA H200"));
        assert!(!c.accepted && c.note.starts_with("refused: 153313 GB/s is above the datasheet's 4800"), "{}", c.note);
        let c = bandwidth_check(4250.0, Some("NVIDIA H200"));
        assert!(c.accepted && c.note.starts_with("89 %"), "{}", c.note);
        assert_eq!(datasheet_bandwidth_gb_s("NVIDIA H100 PCIe"), Some(2000.0));
        assert_eq!(datasheet_bandwidth_gb_s("NVIDIA H100 80GB HBM3"), Some(3350.0));
        assert!(bandwidth_check(1.0, Some("Some GPU")).note.starts_with("unchecked"));
    }
}
