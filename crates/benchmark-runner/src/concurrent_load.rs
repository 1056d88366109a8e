//! The concurrent scenario's driver: many requests in flight on one engine process. Closed loop:
//! `users` requests outstanding, each answer releases the next. Open loop: requests sent at
//! seeded Poisson arrival times whether or not earlier ones have finished. Engines that batch
//! concurrent requests do; the others queue them, and their answers' `queue_ns` says so.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use shared_protocol::{Command, Event, GenerateRequest};

use crate::process::{EngineProcess, Fault, Timed};
use run_format::records::LoadLevel;

pub struct Completed {
    pub sent_offset_ns: u64,
    pub timed: Timed,
}

pub struct LevelOutcome {
    pub completed: Vec<Completed>,
    /// Requests the engine refused or failed (the process lived on).
    pub failed: Vec<(String, Fault)>,
    /// From the first request sent to the last answer.
    pub wall_ns: u64,
    /// A fault that ended the level early (the process is unusable); what completed before it is kept.
    pub fault: Option<Fault>,
}

/// Seeded exponential inter-arrival times, accumulated: the send offsets of an open loop.
pub fn poisson_arrivals(n: usize, rate_per_s: f64, seed: u64) -> Vec<Duration> {
    let mut rng = seeded_rng::SplitMix64(seed);
    let mut t = 0.0;
    (0..n)
        .map(|_| {
            t += -rng.open_unit().ln() / rate_per_s;
            Duration::from_secs_f64(t)
        })
        .collect()
}

struct InFlight {
    sent: Instant,
    first_token: Option<Instant>,
    offset_ns: u64,
}

pub fn drive(p: &mut EngineProcess, level: LoadLevel, requests: Vec<GenerateRequest>, seed: u64, timeout_s: f64) -> LevelOutcome {
    let arrivals = match level {
        LoadLevel::Open { rate_per_s } => poisson_arrivals(requests.len(), rate_per_s, seed),
        LoadLevel::Closed { .. } => vec![],
    };
    let timeout = Duration::from_secs_f64(timeout_s);
    let mut pending: VecDeque<GenerateRequest> = requests.into();
    let mut in_flight: HashMap<String, InFlight> = HashMap::new();
    let (mut completed, mut failed) = (Vec::new(), Vec::new());
    let start = Instant::now();
    let mut sent = 0;
    let mut last_answer = start;
    let fault = loop {
        while !pending.is_empty() {
            let due = match level {
                LoadLevel::Closed { users } => in_flight.len() < users,
                LoadLevel::Open { .. } => start + arrivals[sent] <= Instant::now(),
            };
            if !due {
                break;
            }
            let req = pending.pop_front().expect("not empty");
            let id = req.id.clone();
            let at = match p.submit(&Command::Generate(req)) {
                Ok(at) => at,
                Err(f) => return LevelOutcome { completed, failed, wall_ns: (last_answer - start).as_nanos() as u64, fault: Some(f) },
            };
            in_flight.insert(id, InFlight { sent: at, first_token: None, offset_ns: (at - start).as_nanos() as u64 });
            sent += 1;
        }
        if in_flight.is_empty() && pending.is_empty() {
            break None;
        }
        let next_arrival = arrivals.get(sent).map(|a| start + *a).filter(|_| !pending.is_empty());
        let oldest = in_flight.values().map(|f| f.sent + timeout).min();
        let wake = match (next_arrival, oldest) {
            (Some(a), Some(o)) => a.min(o),
            (a, o) => a.or(o).expect("something is pending or in flight"),
        };
        if in_flight.is_empty() {
            std::thread::sleep(wake.saturating_duration_since(Instant::now()));
            continue;
        }
        match p.next_event(wake, timeout_s) {
            Ok((Event::Token(t), at)) => {
                if let Some(f) = in_flight.get_mut(&t.id) {
                    f.first_token.get_or_insert(at);
                }
            }
            Ok((Event::Done(done), at)) => {
                let Some(f) = in_flight.remove(&done.id) else {
                    break Some(Fault::Unexpected { expected: "a request in flight".into(), got: done.id });
                };
                last_answer = at;
                completed.push(Completed {
                    sent_offset_ns: f.offset_ns,
                    timed: Timed {
                        runner_total_ns: (at - f.sent).as_nanos() as u64,
                        runner_ttft_ns: f.first_token.map(|t| (t - f.sent).as_nanos() as u64),
                        done,
                    },
                });
            }
            Ok((Event::Error(e), at)) if e.id.as_ref().is_some_and(|id| in_flight.contains_key(id)) => {
                let id = e.id.clone().expect("checked");
                in_flight.remove(&id);
                last_answer = at;
                failed.push((id, Fault::Engine { kind: e.kind, message: e.message }));
            }
            Ok((other, _)) => break Some(Fault::Unexpected { expected: "an answer to a request in flight".into(), got: other.to_line() }),
            Err(Fault::Timeout(_)) if oldest.is_some_and(|o| Instant::now() < o) => {} // woke for an arrival
            Err(f) => break Some(f),
        }
    };
    LevelOutcome { completed, failed, wall_ns: (last_answer - start).as_nanos() as u64, fault }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_arrivals_have_the_requested_rate_and_repeat_per_seed() {
        let a = poisson_arrivals(20_000, 4.0, 7);
        let mean_gap = a.last().unwrap().as_secs_f64() / a.len() as f64;
        assert!((mean_gap - 0.25).abs() < 0.01, "mean gap {mean_gap}");
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(a[..10], poisson_arrivals(10, 4.0, 7)[..]);
        assert_ne!(a[..10], poisson_arrivals(10, 4.0, 8)[..]);
        // Exponential gaps: about 1/e of them exceed the mean.
        let gaps: Vec<f64> = a.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
        let above = gaps.iter().filter(|g| **g > 0.25).count() as f64 / gaps.len() as f64;
        assert!((above - (-1f64).exp()).abs() < 0.02, "{above}");
    }
}
