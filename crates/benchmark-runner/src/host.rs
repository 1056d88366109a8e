//! The host's state, measured where the engines run. A cloud GPU machine's CPU switches between
//! speeds (../shared/MEASURING.md), and every engine that is launch-bound inherits them. So each
//! engine process is pinned to a stated CPU set, and a fixed-work probe runs on the same CPUs:
//! right before and right after every measured request (never inside its timed window), and
//! continuously at [`PERIOD`] into `raw_data/host.jsonl`, together with the system's CPU use and
//! the engine process's own CPU time.

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use run_format::records::{unix_ms, SCHEMA};
pub use run_format::records::{HostSample, ProbeParts, Tag};
use seeded_rng::SplitMix64;
use crate::sampler::SamplerThread;

/// 20 Hz: often enough to see episodes of a few seconds, cheap enough (a probe is ~0.3–0.5 ms)
/// to take about 1 % of one of the engine's CPUs.
pub const PERIOD: Duration = Duration::from_millis(50);

/// The probe's working set for [`ProbeParts::memory_ns`]: well beyond any per-core cache, so
/// each step of the chase is a trip to memory (or to a shared last-level cache under pressure).
const CHASE_BYTES: usize = 64 << 20;

/// The fixed-work probe, in five parts of roughly equal time (each ~30–150 µs on a current server
/// core), because a launch-bound engine's host work is not one kind of work (an interpreter loop,
/// library calls, memory traffic, the driver's system calls). A dependent integer chain alone (the
/// core's clock) stayed within ±10 % on the H200 machine while eager decode there varied 2×, so
/// each part is kept and analysed separately.
pub struct Probe {
    /// A random single cycle through [`CHASE_BYTES`] of indices (Sattolo's shuffle), and where
    /// the last chase stopped: each probe walks on, so it never finds its own lines in a cache.
    chase: Vec<u32>,
    at: u32,
    /// [`interp`]'s program.
    program: Vec<u8>,
}

impl Default for Probe {
    fn default() -> Probe {
        Probe::with_chase_bytes(CHASE_BYTES)
    }
}

impl Probe {
    fn with_chase_bytes(bytes: usize) -> Probe {
        let n = bytes / 4;
        let mut chase: Vec<u32> = (0..n as u32).collect();
        let mut rng = SplitMix64(0x5EED);
        for i in (1..n).rev() {
            let j = (rng.next_u64() % i as u64) as usize;
            chase.swap(i, j);
        }
        let program = (0..512).map(|_| (rng.next_u64() % 6) as u8).collect();
        Probe { chase, at: 0, program }
    }

    /// Runs every part once.
    pub fn run(&mut self) -> ProbeParts {
        ProbeParts {
            chain_ns: timed(chain),
            ilp_ns: timed(ilp),
            interp_ns: timed(|| interp(&self.program)),
            memory_ns: timed(|| {
                let mut at = self.at;
                for _ in 0..black_box(256) {
                    at = self.chase[at as usize];
                }
                self.at = black_box(at);
            }),
            syscall_ns: timed(|| {
                for _ in 0..black_box(512) {
                    // SAFETY: getppid takes nothing and cannot fail; called through syscall(2) so
                    // no library can answer it without entering the kernel.
                    black_box(unsafe { libc::syscall(libc::SYS_getppid) });
                }
            }),
        }
    }
}

fn timed(f: impl FnOnce()) -> u64 {
    let started = Instant::now();
    f();
    started.elapsed().as_nanos() as u64
}

/// Dependent integer operations: latency-bound, so its time is the core's clock and what the
/// scheduler leaves of it (another thread on the same physical core barely slows it).
fn chain() {
    let mut x = black_box(0x9E37_79B9_7F4A_7C15u64);
    for i in 0..black_box(1u64 << 15) {
        x = (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9).wrapping_add(i);
    }
    black_box(x);
}

/// Eight independent chains: throughput-bound, so it slows when another thread shares the core's
/// execution units (a neighbour on the physical core's other hyperthread).
fn ilp() {
    let mut x = black_box([1u64, 2, 3, 4, 5, 6, 7, 8]);
    for i in 0..black_box(1u64 << 13) {
        for v in &mut x {
            *v = (*v ^ (*v >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9).wrapping_add(i);
        }
    }
    black_box(x);
}

/// A tiny bytecode interpreter over a seeded random program (a jump table, data-dependent
/// branches, loads and stores in a small frame), the shape of CPython's evaluation loop.
fn interp(program: &[u8]) {
    let mut frame = [0u64; 64];
    let mut acc = black_box(1u64);
    for round in 0..black_box(24u64) {
        for (pc, &op) in program.iter().enumerate() {
            let slot = (acc as usize ^ pc) & 63;
            match black_box(op) {
                0 => acc = acc.wrapping_add(frame[slot]),
                1 => frame[slot] = acc ^ round,
                2 => acc = acc.rotate_left(7) ^ pc as u64,
                3 if acc & 1 == 0 => acc = acc.wrapping_mul(3).wrapping_add(1),
                3 => acc >>= 1,
                4 => acc = acc.wrapping_sub(frame[(slot + 1) & 63]),
                _ => frame[slot] = frame[slot].wrapping_add(acc),
            }
        }
    }
    black_box((acc, frame));
}

/// Parses a CPU list as Linux writes them (`0-3,8,10-11`).
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |s: &str| s.trim().parse::<usize>().map_err(|_| format!("`{s}` is not a CPU number (in `{text}`)"));
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("`{part}` is an empty range (in `{text}`)"));
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(num(part)?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    if cpus.is_empty() {
        return Err(format!("`{text}` names no CPU"));
    }
    Ok(cpus)
}

/// Writes a CPU list back in the compact form (`0-3,8`).
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { cpus[i].to_string() } else { format!("{}-{}", cpus[i], cpus[j]) });
        i = j + 1;
    }
    parts.join(",")
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the kernel fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// Pins the calling thread (and the threads and processes it starts afterwards) to `cpus`.
/// Async-signal-safe, so it can run between fork and exec.
pub fn pin_current(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: the set is a plain bit array on the stack; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Busy and total jiffies of all CPUs (the first line of /proc/stat).
fn system_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = f.iter().take(8).sum();
    let idle = f.get(3)? + f.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// A process's CPU time (user + system, its waited-for children included) and the CPU its main
/// thread last ran on.
#[derive(Clone, Copy)]
struct ProcessCpu {
    cpu_ms: u64,
    last_cpu: u32,
}

fn process_cpu(pid: u32) -> Option<ProcessCpu> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted from its closing parenthesis (field 3).
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ProcessCpu { cpu_ms: ticks * 1000 / hz, last_cpu: fields.get(36)?.parse().ok()? })
}

/// The CPU the calling thread is on.
fn current_cpu() -> Option<u32> {
    // SAFETY: sched_getcpu has no preconditions; it returns -1 on error.
    u32::try_from(unsafe { libc::sched_getcpu() }).ok()
}

/// The probe thread: pinned to the engines' CPUs, sampling continuously, and answering
/// [`HostProbe::probe`] between samples (so a probe never overlaps another).
pub struct HostProbe {
    ask: Sender<Sender<u64>>,
    tag: Arc<Mutex<Tag>>,
    _thread: SamplerThread,
}

impl HostProbe {
    /// Starts the probe thread on `cpus`, appending samples to `path`.
    pub fn start(cpus: Vec<usize>, path: &Path) -> std::io::Result<HostProbe> {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let (ask, asks) = mpsc::channel::<Sender<u64>>();
        let tag = Arc::new(Mutex::new(Tag::default()));
        let tag2 = tag.clone();
        let thread = SamplerThread::spawn("host-probe", move |stop2| {
            if let Err(e) = pin_current(&cpus) {
                eprintln!("host probe: could not pin to CPUs {}: {e}", format_cpu_list(&cpus));
            }
            let mut probe = Probe::default();
            let mut last = system_jiffies();
            let mut next = Instant::now();
            while !SamplerThread::stopped(&stop2) {
                match asks.recv_timeout(next.saturating_duration_since(Instant::now())) {
                    Ok(reply) => {
                        let _ = reply.send(probe.run().total_ns());
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                    Err(RecvTimeoutError::Timeout) => {}
                }
                let parts = probe.run();
                let probe_cpu = current_cpu();
                let now = system_jiffies();
                let busy_pct = match (last, now) {
                    (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => Some(100.0 * (b1 - b0) as f64 / (t1 - t0) as f64),
                    _ => None,
                };
                last = now;
                let tag = tag2.lock().expect("host probe tag").clone();
                let engine = tag.pid.and_then(process_cpu);
                let sample = HostSample {
                    schema: SCHEMA,
                    unix_ms: unix_ms(),
                    engine_cpu_ms: engine.map(|e| e.cpu_ms),
                    engine_on_cpu: engine.map(|e| e.last_cpu),
                    probe_on_cpu: probe_cpu,
                    tag,
                    probe_ns: parts.total_ns(),
                    parts: Some(parts),
                    system_busy_pct: busy_pct,
                };
                if let Ok(line) = serde_json::to_string(&sample) {
                    let _ = writeln!(file, "{line}").and_then(|_| file.flush());
                }
                next += PERIOD;
                if next < Instant::now() {
                    next = Instant::now() + PERIOD;
                }
            }
        })?;
        Ok(HostProbe { ask, tag, _thread: thread })
    }

    /// One probe on the engines' CPUs, in nanoseconds (None if the probe thread is gone).
    pub fn probe(&self) -> Option<u64> {
        let (reply, answer) = mpsc::channel();
        self.ask.send(reply).ok()?;
        answer.recv_timeout(Duration::from_secs(5)).ok()
    }

    /// Tags the samples that follow (the engine, workload and cell that holds the CPUs).
    pub fn tag(&self, tag: Tag) {
        *self.tag.lock().expect("host probe tag") = tag;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_read_and_write_like_linux() {
        assert_eq!(parse_cpu_list("0-3,8, 10-11").unwrap(), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[5]), "5");
        assert!(parse_cpu_list("3-1").unwrap_err().contains("empty range"));
        assert!(parse_cpu_list("a").unwrap_err().contains("`a` is not a CPU number"));
        assert!(parse_cpu_list(" ").unwrap_err().contains("names no CPU"));
    }

    #[test]
    fn the_chase_is_one_cycle_through_every_index_and_each_probe_walks_on() {
        let mut p = Probe::with_chase_bytes(4 * 10_000);
        let (mut at, mut steps) = (p.chase[0], 1);
        while at != 0 {
            at = p.chase[at as usize];
            steps += 1;
        }
        assert_eq!(steps, 10_000, "a single cycle visits every index once");
        let parts = p.run();
        assert!(parts.values().iter().all(|&ns| ns > 0), "{parts:?}");
        assert_eq!(parts.total_ns(), parts.values().iter().sum::<u64>());
        let first = p.at;
        p.run();
        assert_ne!(p.at, first, "the next probe starts where the last one stopped");
    }

    #[test]
    fn the_probe_answers_and_samples_on_the_given_cpus() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        let path = std::env::temp_dir().join(format!("host-probe-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let p = HostProbe::start(cpus[..1].to_vec(), &path).unwrap();
        p.tag(Tag { engine: Some("e".into()), pid: Some(std::process::id()), ..Tag::default() });
        let ns = p.probe().unwrap();
        assert!(ns > 1000 && ns < 1_000_000_000, "{ns}");
        std::thread::sleep(PERIOD * 5);
        drop(p);
        let samples: Vec<HostSample> = std::fs::read_to_string(&path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(samples.len() >= 2, "{} samples", samples.len());
        assert!(samples.iter().all(|s| s.probe_ns > 0 && s.tag.engine.as_deref() == Some("e")));
        assert!(samples.iter().all(|s| s.parts.is_some_and(|p| p.total_ns() == s.probe_ns)));
        assert!(samples.iter().all(|s| s.probe_on_cpu == Some(cpus[0] as u32)), "the probe ran where it was pinned");
        assert!(samples.iter().any(|s| s.engine_on_cpu.is_some()));
        assert!(samples.iter().any(|s| s.engine_cpu_ms.is_some()), "this process's own CPU time is readable");
        std::fs::remove_file(&path).unwrap();
    }
}
