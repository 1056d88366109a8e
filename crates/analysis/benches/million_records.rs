//! How long the analysis of a run with one million request records takes (the goal is ≤ 2 s on
//! the project's 2-core machines). Writes a synthetic run directory once into
//! `target/bench-million/` (5 engines × 4 load levels × 50,000 requests, 32 new tokens each, plus
//! a latency workload). Then it times `analysis::analyze` in five fresh processes (the figure
//! that counts: `benchmark-runner analyze` is one), and in one process three times, stage by stage.
//!
//!     cargo bench -p analysis --bench million_records
//!
//! `-- --first-only` runs one fresh-process analysis alone (for a profiler); `--stages` with it
//! times each stage of that one.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use run_format::records::{LoadLevel, RequestRecord};
use seeded_rng::SplitMix64;

const ENGINES: [&str; 5] = ["pytorch_baseline", "pytorch_compiled", "candle_cuda", "burn_cuda", "mistral_rs_cuda"];
const LEVELS: [LoadLevel; 4] = [
    LoadLevel::Closed { users: 8 },
    LoadLevel::Closed { users: 32 },
    LoadLevel::Open { rate_per_s: 4.0 },
    LoadLevel::Open { rate_per_s: 16.0 },
];
const PER_CELL: usize = 50_000;
const LATENCY_PER_ENGINE: usize = 1_000;
const NEW_TOKENS: usize = 32;

fn record(rng: &mut SplitMix64, engine: usize, level: Option<LoadLevel>, i: usize) -> RequestRecord {
    let speed = 1.0 + engine as f64;
    let mut jitter = || 1.0 + (rng.next_u64() % 1000) as f64 / 5000.0;
    let ttft = (20e6 / speed * jitter()) as u64;
    let token_ns: Vec<u64> = (1..NEW_TOKENS).map(|_| (10e6 / speed * jitter()) as u64).collect();
    let total = ttft + token_ns.iter().sum::<u64>();
    RequestRecord {
        schema: 1,
        engine: ENGINES[engine].into(),
        workload: if level.is_some() { "chat-load".into() } else { "latency".into() },
        scenario: if level.is_some() { "concurrent".into() } else { "latency".into() },
        device: "cuda:0".into(),
        dtype: "bf16".into(),
        batch_size: 1,
        prompt_tokens: 128,
        max_new_tokens: NEW_TOKENS,
        warmup: false,
        iteration: i,
        generated_tokens: NEW_TOKENS,
        queue_ns: 1000,
        ttft_ns: ttft,
        token_ns,
        total_ns: total,
        runner_ttft_ns: Some(ttft + 200_000),
        runner_total_ns: total + 300_000,
        load: level,
        sent_offset_ns: level.map(|_| i as u64 * 1_000_000),
        unix_ms: 1_795_975_853_950 + i as u128,
        block: None,
        attempt: None,
        host_probe_before_ns: None,
        host_probe_after_ns: None,
    }
}

fn write_run(dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir.join("raw_data"))?;
    std::fs::write(dir.join("config.yaml"), format!("benchmark: {{name: one million requests}}\nengines: {ENGINES:?}\nworkloads:\n  - {{name: chat-load, slo: {{ttft_ms: 50, tpot_ms: 20}}}}\n"))?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("raw_data/requests.jsonl"))?);
    let mut rng = SplitMix64(1);
    let mut n = 0;
    for e in 0..ENGINES.len() {
        for i in 0..LATENCY_PER_ENGINE {
            serde_json::to_writer(&mut f, &record(&mut rng, e, None, i))?;
            f.write_all(b"\n")?;
            n += 1;
        }
        for level in LEVELS {
            for i in 0..PER_CELL {
                serde_json::to_writer(&mut f, &record(&mut rng, e, Some(level), i))?;
                f.write_all(b"\n")?;
                n += 1;
            }
        }
    }
    f.flush()?;
    Ok(n)
}

fn main() -> anyhow::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-million");
    let requests = dir.join("raw_data/requests.jsonl");
    if !requests.exists() {
        let t = Instant::now();
        let n = write_run(&dir)?;
        eprintln!("wrote {n} records ({:.0} MB) in {:.1} s", std::fs::metadata(&requests)?.len() as f64 / 1e6, t.elapsed().as_secs_f64());
    }
    // First the analysis as `benchmark-runner analyze` meets it: in a fresh process, whose memory
    // is still to be mapped (the page cache is warm: the file was just written or read).
    if std::env::args().any(|a| a == "--first-only") {
        let t = Instant::now();
        if std::env::args().any(|a| a == "--stages") {
            let run = analysis::Run::load(&dir)?;
            eprintln!("  read+parse {:.2} s", t.elapsed().as_secs_f64());
            stages(run)?;
        } else {
            let report = analysis::analyze(&dir)?;
            println!("{} {:.3}", report.run.requests.len(), t.elapsed().as_secs_f64());
        }
        return Ok(());
    }
    let mut fresh = Vec::new();
    for _ in 0..5 {
        let out = std::process::Command::new(std::env::current_exe()?).arg("--first-only").output()?;
        anyhow::ensure!(out.status.success(), "fresh-process run failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout)?;
        let seconds: f64 =
            text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| anyhow::anyhow!("unexpected output {text:?}"))?;
        fresh.push(seconds);
    }
    let in_order = fresh.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>().join(", ");
    fresh.sort_by(f64::total_cmp);
    println!("fresh process, 5 runs in the order they ran: {in_order} s; median {:.2} s", fresh[2]);
    // The runner's layout takes the fast path (run_format::request_line); check it does here.
    let text = std::fs::read(&requests)?;
    let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
    anyhow::ensure!(run_format::request_line::decode(first).is_some(), "the fast path refused the bench's records");
    let t = Instant::now();
    let (mut n, mut at, mut tokens) = (0, 0, Vec::new());
    while let Some((_, _, used)) = run_format::request_line::decode_fields(&text[at..], &mut tokens).filter(|_| n < 100_000) {
        (n, at) = (n + 1, at + used);
    }
    eprintln!("one thread: {n} lines decoded in {:.2} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let n = text.split(|&b| b == b'\n').take(100_000).filter(|l| serde_json::from_slice::<RequestRecord>(l).is_ok()).count();
    eprintln!("one thread: {n} lines with serde_json in {:.2} s", t.elapsed().as_secs_f64());
    drop(text);
    let t = Instant::now();
    let bytes = std::fs::read(&requests)?.len();
    eprintln!("reading the file (copied, not mapped): {bytes} bytes in {:.2} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let rs = run_format::read_requests(&dir.join("raw_data"))?;
    eprintln!("read_requests: {} requests in {:.2} s", rs.len(), t.elapsed().as_secs_f64());
    drop(rs);
    let mut best = f64::INFINITY;
    for round in 0..3 {
        let t0 = Instant::now();
        let run = analysis::Run::load(&dir)?;
        let t_load = t0.elapsed().as_secs_f64();
        let n = run.requests.len();
        let t1 = Instant::now();
        let report = analysis::analyze_loaded(run)?;
        let t_analyse = t1.elapsed().as_secs_f64();
        let total = t0.elapsed().as_secs_f64();
        best = best.min(total);
        println!(
            "round {round}: {n} requests, {} cells, {} comparisons: read+parse {t_load:.2} s, analysis {t_analyse:.2} s, total {total:.2} s",
            report.cells.len(),
            report.comparisons.len()
        );
        if round == 0 {
            let mut report = report;
            let t = Instant::now();
            analysis::write(&mut report)?;
            eprintln!("  writing summary, tables, plots {:6.2} s", t.elapsed().as_secs_f64());
            stages(report.run)?;
        }
    }
    println!(
        "in one process, best of 3: {best:.2} s; fresh process, median of 5: {:.2} s (threads: {})",
        fresh[2],
        rayon::current_num_threads()
    );
    Ok(())
}

/// The analysis stage by stage (the same calls as `analyze_loaded`), to show where the time goes.
fn stages(run: analysis::Run) -> anyhow::Result<()> {
    let settings = run.config.analysis.clone();
    let mut t = Instant::now();
    let mut lap = |what: &str| {
        eprintln!("  {what:<28} {:6.2} s", t.elapsed().as_secs_f64());
        t = Instant::now();
    };
    let requests = analysis::requests::frame(&[&run])?;
    lap("requests frame");
    let cells = analysis::cells::samples(&requests)?;
    lap("cells (grouping)");
    let metrics = analysis::cells::describe_all(&cells, &settings);
    lap("describe");
    let comparisons =
        analysis::compare::compare(&cells, &[run_format::engines::BASELINE, run_format::engines::COMPILED_REFERENCE], &settings);
    lap("compare");
    let _ = analysis::business::roofline(&run, &cells);
    lap("roofline");
    let _ = analysis::summary::assemble(&run, &metrics, &comparisons, &cells);
    lap("summary");
    Ok(())
}
