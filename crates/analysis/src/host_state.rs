//! The host's state during each request, from the run's own host-probe readings (the runner's
//! fixed-work probe on the engines' CPUs: before and after every measured request, and 20 times a
//! second in `raw_data/host.jsonl`). No machine's numbers are built in: the readings of the run are
//! split in two where the split leaves the least spread within each side (Otsu's rule on the
//! logarithms), and the split is used only when the two sides are far enough apart and both
//! substantial; otherwise the host had one state during the run and every reading is `fast`.

use serde::Serialize;

use crate::run::Run;
use crate::stats::{quantile, sorted};
use run_format::Request;

/// The slower side's median must exceed the faster's by this share for two states to be told
/// apart (a smaller difference is within what one state varies).
pub const MIN_SEPARATION: f64 = 0.20;
/// Each side must hold at least this share of the readings (a few stray readings are no state).
pub const MIN_SHARE: f64 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// Both probes (before and after the request) on the fast side.
    Fast,
    /// Both on the slow side.
    Slow,
    /// One on each side: the host switched during the request (or around it).
    Mixed,
}

impl HostState {
    pub const ALL: [HostState; 3] = [HostState::Fast, HostState::Slow, HostState::Mixed];

    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Fast => "fast",
            HostState::Slow => "slow",
            HostState::Mixed => "mixed",
        }
    }
}

/// The rule as applied to one run, with the distribution it was derived from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostStates {
    pub rule: &'static str,
    /// Probe readings the rule was derived from.
    pub readings: usize,
    pub probe_p05_us: f64,
    pub probe_p50_us: f64,
    pub probe_p95_us: f64,
    /// Whether the run's readings form two states.
    pub two_states: bool,
    /// Readings at or below it are `fast` (null: one state, every reading fast).
    pub threshold_us: Option<f64>,
    pub fast_median_us: f64,
    pub slow_median_us: Option<f64>,
    /// Share of readings on the slow side.
    pub slow_share: f64,
    /// Measured requests per state (requests without probes are not counted).
    pub requests_fast: usize,
    pub requests_slow: usize,
    pub requests_mixed: usize,
}

/// Where to split sorted values in two: the index of the first value of the upper side that
/// minimises the summed squared deviations of both sides (None below 2 values).
fn otsu_split(s: &[f64]) -> Option<usize> {
    if s.len() < 2 {
        return None;
    }
    let (mut sum, mut sq) = (vec![0.0; s.len() + 1], vec![0.0; s.len() + 1]);
    for (i, x) in s.iter().enumerate() {
        sum[i + 1] = sum[i] + x;
        sq[i + 1] = sq[i] + x * x;
    }
    let within = |a: usize, b: usize| {
        let n = (b - a) as f64;
        (sq[b] - sq[a]) - (sum[b] - sum[a]).powi(2) / n
    };
    (1..s.len()).min_by(|&i, &j| (within(0, i) + within(i, s.len())).total_cmp(&(within(0, j) + within(j, s.len()))))
}

impl HostStates {
    /// Derives the rule from readings in nanoseconds (None without readings).
    pub fn from_readings(ns: &[f64]) -> Option<HostStates> {
        if ns.is_empty() {
            return None;
        }
        let s = sorted(ns);
        let logs: Vec<f64> = s.iter().map(|x| x.max(1.0).ln()).collect();
        let us = |x: f64| x / 1e3;
        let mut h = HostStates {
            rule: "Otsu split of log probe time; two states when the slow side's median is ≥ 20 % above the fast side's and each side holds ≥ 5 % of readings",
            readings: s.len(),
            probe_p05_us: us(quantile(&s, 0.05)),
            probe_p50_us: us(quantile(&s, 0.5)),
            probe_p95_us: us(quantile(&s, 0.95)),
            two_states: false,
            threshold_us: None,
            fast_median_us: us(quantile(&s, 0.5)),
            slow_median_us: None,
            slow_share: 0.0,
            requests_fast: 0,
            requests_slow: 0,
            requests_mixed: 0,
        };
        if let Some(k) = otsu_split(&logs) {
            let (fast, slow) = s.split_at(k);
            let (mf, ms) = (quantile(fast, 0.5), quantile(slow, 0.5));
            let share = slow.len() as f64 / s.len() as f64;
            if ms >= mf * (1.0 + MIN_SEPARATION) && share >= MIN_SHARE && share <= 1.0 - MIN_SHARE {
                h.two_states = true;
                // Halfway (geometrically) between the two sides' nearest readings.
                h.threshold_us = Some(us((fast[fast.len() - 1] * slow[0]).sqrt()));
                h.fast_median_us = us(mf);
                h.slow_median_us = Some(us(ms));
                h.slow_share = share;
            }
        }
        Some(h)
    }

    /// The state of one reading.
    pub fn is_slow(&self, ns: u64) -> bool {
        self.threshold_us.is_some_and(|t| ns as f64 / 1e3 > t)
    }

    /// The state of a request from its two probes; None when it has no probes.
    pub fn of(&self, r: &Request) -> Option<HostState> {
        let (a, b) = (r.host_probe_before_ns?, r.host_probe_after_ns.or(r.host_probe_before_ns)?);
        Some(match (self.is_slow(a), self.is_slow(b)) {
            (false, false) => HostState::Fast,
            (true, true) => HostState::Slow,
            _ => HostState::Mixed,
        })
    }
}

/// The run's rule: from every probe reading it holds (continuous samples and the requests' own).
pub fn host_states(run: &Run) -> Option<HostStates> {
    let mut ns: Vec<f64> = run.host.iter().map(|s| s.probe_ns as f64).collect();
    for r in run.requests.iter() {
        ns.extend(r.host_probe_before_ns.iter().chain(r.host_probe_after_ns.iter()).map(|&x| x as f64));
    }
    let mut h = HostStates::from_readings(&ns)?;
    for r in run.requests.iter().filter(|r| !r.warmup) {
        match h.of(&r) {
            Some(HostState::Fast) => h.requests_fast += 1,
            Some(HostState::Slow) => h.requests_slow += 1,
            Some(HostState::Mixed) => h.requests_mixed += 1,
            None => {}
        }
    }
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_speeds_are_told_apart_and_one_speed_is_one_state() {
        // A host at ~200 µs or ~360 µs per probe, with jitter: two states, split between them.
        let mut rng = seeded_rng::SplitMix64(5);
        let mut jitter = || 1.0 + (rng.next_u64() % 1000) as f64 / 1000.0 * 0.06;
        let two: Vec<f64> = (0..600).map(|i| if (i / 50) % 3 == 2 { 360e3 } else { 200e3 } * jitter()).collect();
        let h = HostStates::from_readings(&two).unwrap();
        assert!(h.two_states);
        let t = h.threshold_us.unwrap();
        assert!(t > 212.0 && t < 360.0, "{t}");
        assert!((h.slow_share - 1.0 / 3.0).abs() < 0.02, "{}", h.slow_share);
        assert!(h.is_slow(350_000) && !h.is_slow(205_000));
        // One speed with the same jitter: no split, every reading fast.
        let one: Vec<f64> = (0..600).map(|_| 200e3 * jitter()).collect();
        let h = HostStates::from_readings(&one).unwrap();
        assert!(!h.two_states && h.threshold_us.is_none());
        assert!(!h.is_slow(10_000_000));
        // A few stray slow readings are not a state.
        let stray: Vec<f64> = (0..600).map(|i| if i % 100 == 0 { 900e3 } else { 200e3 * jitter() }).collect();
        assert!(!HostStates::from_readings(&stray).unwrap().two_states);
        assert!(HostStates::from_readings(&[]).is_none());
    }

    #[test]
    fn a_request_is_fast_slow_or_mixed_by_its_two_probes() {
        let h = HostStates::from_readings(&(0..100).map(|i| if i < 50 { 100e3 } else { 200e3 }).collect::<Vec<_>>()).unwrap();
        let mut r = crate::requests::tests::request("e", 1, 5, &[5]);
        let state = |r: &run_format::records::RequestRecord| h.of(&Request::from(r));
        assert_eq!(state(&r), None);
        (r.host_probe_before_ns, r.host_probe_after_ns) = (Some(100_000), Some(101_000));
        assert_eq!(state(&r), Some(HostState::Fast));
        (r.host_probe_before_ns, r.host_probe_after_ns) = (Some(199_000), Some(201_000));
        assert_eq!(state(&r), Some(HostState::Slow));
        (r.host_probe_before_ns, r.host_probe_after_ns) = (Some(100_000), Some(201_000));
        assert_eq!(state(&r), Some(HostState::Mixed));
    }
}
