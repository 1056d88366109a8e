//! A run: plan the cells, drive each engine in fresh processes, append every measurement to the
//! run directory as it happens. Nothing here computes a statistic (that is `summary`'s job).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use shared_protocol::{Dtype, GenerateRequest, LoadRequest, LogitsResult, PROTOCOL_VERSION};

use crate::checkpoint::ModelShape;
use crate::config::{Config, Scenario, Workload};
use crate::gate;
use crate::load::{self, LevelOutcome};
use crate::monitor::{Monitor, Tag};
use crate::process::{EngineProcess, Fault, Timed};
use crate::prompts::prompt_tokens;
use crate::records::{unix_ms, CellRecord, EngineRecord, FailureRecord, LoadLevel, RawData, RequestRecord, SCHEMA};
use crate::registry::{EngineSpec, Registry};

pub struct RunPaths {
    pub root: PathBuf,
    pub output: PathBuf,
}

/// How one engine is started for this run: program, device, dtype, options.
struct Launch<'a> {
    spec: &'a EngineSpec,
    device: String,
    load: LoadRequest,
}

/// One unit of measurement: a (batch size, prompt length) pair, or a load level at a prompt length.
#[derive(Debug, Clone, Copy)]
struct Cell {
    batch: usize,
    prompt: usize,
    load: Option<LoadLevel>,
}

impl Cell {
    fn label(&self) -> String {
        match self.load {
            Some(l) => format!("{}-p{}", l.label(), self.prompt),
            None => format!("b{}-p{}", self.batch, self.prompt),
        }
    }
}

fn plan(w: &Workload) -> Vec<Cell> {
    let mut cells = Vec::new();
    if w.scenario == Scenario::Concurrent {
        for &prompt in &w.sequence_lengths {
            let closed = w.concurrency.iter().map(|&users| LoadLevel::Closed { users });
            let open = w.arrival_rates.iter().map(|&rate_per_s| LoadLevel::Open { rate_per_s });
            cells.extend(closed.chain(open).map(|l| Cell { batch: 1, prompt, load: Some(l) }));
        }
    } else {
        for &batch in &w.batch_sizes {
            cells.extend(w.sequence_lengths.iter().map(|&prompt| Cell { batch, prompt, load: None }));
        }
    }
    cells
}

/// What a cell produced. A fault ends the cell; it is recorded and the run goes on.
#[derive(Default)]
struct CellOutcome {
    completed: usize,
    tokens: usize,
    thermal_pause_ms: u64,
    fault: Option<Fault>,
}

struct Runner<'a> {
    cfg: &'a Config,
    paths: &'a RunPaths,
    raw: RawData,
    shape: ModelShape,
    registry: &'a Registry,
    monitor: Option<Monitor>,
    /// Reference answers per compute dtype, made on first need (None: the reference failed).
    references: std::collections::HashMap<Dtype, Option<Vec<LogitsResult>>>,
}

fn fail(engine: &str, stage: &str, cell: Option<(usize, usize)>, fault: &Fault) -> FailureRecord {
    FailureRecord {
        schema: SCHEMA,
        engine: engine.into(),
        stage: stage.into(),
        request: None,
        batch_size: cell.map(|c| c.0),
        prompt_tokens: cell.map(|c| c.1),
        kind: fault.kind().into(),
        message: fault.to_string(),
        unix_ms: unix_ms(),
    }
}

/// Creates the run directory and measures everything the config asks for. Engine failures are
/// recorded and the run goes on; only problems with the run directory itself end it early.
pub fn execute(cfg: &Config, config_text: &str, registry: &Registry, paths: &RunPaths) -> anyhow::Result<()> {
    let out = &paths.output;
    if out.join("raw_data").exists() {
        anyhow::bail!(
            "{} already holds a run; measured data is never overwritten: choose another --output",
            out.display()
        );
    }
    std::fs::create_dir_all(out.join("logs")).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("config.yaml"), config_text).context("writing config.yaml")?;
    let env = crate::environment::collect(&paths.root, &cfg.benchmark.model_path);
    std::fs::write(out.join("environment.json"), serde_json::to_string_pretty(&env)? + "\n")
        .context("writing environment.json")?;
    let mut runner = Runner {
        cfg,
        paths,
        raw: RawData::create(&out.join("raw_data"))?,
        shape: ModelShape::read(&cfg.benchmark.model_path)?,
        registry,
        monitor: None,
        references: Default::default(),
    };
    let on_gpu = cfg.engines.iter().any(|n| runner.launch(registry.get(n).expect("validated"), None).device != "cpu");
    match Monitor::start(cfg.system.gpu_device, &out.join("raw_data/monitor.jsonl")) {
        Ok(m) => runner.monitor = Some(m),
        Err(why) if on_gpu => eprintln!("GPU monitoring off: {why}"),
        Err(_) => {}
    }
    if on_gpu {
        let probe = crate::environment::copy_bandwidth(&paths.root, cfg.system.gpu_device);
        match probe["gb_per_s"].as_f64() {
            Some(g) => eprintln!("device copy bandwidth: {g:.0} GB/s"),
            None => eprintln!("device copy bandwidth probe failed: {probe}"),
        }
        std::fs::write(out.join("raw_data/bandwidth_probe.json"), serde_json::to_string_pretty(&probe)? + "\n")?;
    }
    if cfg.correctness.enabled {
        // References first, each in its own process, so no engine is loaded beside them.
        let mut dtypes: Vec<Dtype> = Vec::new();
        for name in &cfg.engines {
            let d = runner.launch(registry.get(name).expect("validated"), None).load.dtype;
            if !dtypes.contains(&d) {
                dtypes.push(d);
            }
        }
        for d in dtypes {
            runner.reference(d)?;
        }
    }
    for name in &cfg.engines {
        let spec = registry.get(name).expect("validated against the registry");
        runner.engine(spec)?;
    }
    Ok(())
}

impl Runner<'_> {
    fn launch<'s>(&self, spec: &'s EngineSpec, dtype_override: Option<shared_protocol::Dtype>) -> Launch<'s> {
        let b = &self.cfg.benchmark;
        let device = spec.device(&b.device, self.cfg.system.gpu_device);
        let mut options = spec.default_options.clone();
        options.extend(self.cfg.options_for(&spec.name));
        let load = LoadRequest {
            protocol: PROTOCOL_VERSION,
            model_path: b.model_path.display().to_string(),
            device: device.clone(),
            dtype: dtype_override.unwrap_or_else(|| spec.dtype(&device, b.gpu_dtype)),
            options,
        };
        Launch { spec, device, load }
    }

    /// Starts and loads a fresh process. The log file collects every process of the engine.
    fn start(&mut self, l: &Launch, log_name: &str) -> Result<(EngineProcess, shared_protocol::Ready), Fault> {
        let cmd = l.spec.resolve(&self.paths.root).map_err(Fault::Spawn)?;
        let log = self.paths.output.join("logs").join(format!("{log_name}.log"));
        let mut p = EngineProcess::spawn(&cmd, &log)?;
        let ready = p.load(l.load.clone(), self.cfg.benchmark.load_timeout_s)?;
        Ok((p, ready))
    }

    /// The reference's answers at `dtype`: transformers in float32 for f32 engines; for bf16/f16
    /// engines the same eager transformers model at that dtype on the benchmark device, so the gate
    /// compares like with like (half-precision rounding differs from f32 by far more than any bug
    /// worth catching hides behind).
    fn reference(&mut self, dtype: Dtype) -> anyhow::Result<Option<Vec<LogitsResult>>> {
        if let Some(r) = self.references.get(&dtype) {
            return Ok(r.clone());
        }
        let Some(spec) = self.registry.get(gate::REFERENCE_ENGINE) else {
            eprintln!("correctness gate off: no `{}` engine to take the reference from", gate::REFERENCE_ENGINE);
            self.references.insert(dtype, None);
            return Ok(None);
        };
        let l = self.launch(spec, Some(dtype));
        eprintln!("correctness reference: {} {dtype} on {}", spec.name, l.device);
        let got = self.start(&l, &format!("reference-{dtype}")).and_then(|(mut p, _)| {
            let r = gate::run_probes(&mut p, &self.cfg.correctness, self.shape.vocab_size, self.cfg.benchmark.request_timeout_s);
            p.shutdown();
            r
        });
        let r = match got {
            Ok(r) => Some(r),
            Err(f) => {
                eprintln!("correctness reference ({dtype}) failed ({f}); engines at {dtype} will be reported as unchecked");
                self.raw.append("failures", &fail(&format!("reference-{dtype}"), "correctness", None, &f))?;
                None
            }
        };
        self.references.insert(dtype, r.clone());
        Ok(r)
    }

    fn engine(&mut self, spec: &EngineSpec) -> anyhow::Result<()> {
        let l = self.launch(spec, None);
        let mut gate_done = !self.cfg.correctness.enabled;
        for w in self.cfg.workloads.iter().filter(|w| w.applies_to(&spec.name)) {
            self.workload(&l, w, &mut gate_done)?;
        }
        Ok(())
    }

    fn tag(&self, l: &Launch, w: Option<&Workload>, cell: Option<&Cell>, pid: Option<u32>) {
        self.tag_phase(l, w, cell, pid, None);
    }

    /// Tags what follows; a new tag starts new cell statistics, so the measured phase is tagged
    /// apart from the warm-up and the cell's GPU figures cover measured requests only.
    fn tag_phase(&self, l: &Launch, w: Option<&Workload>, cell: Option<&Cell>, pid: Option<u32>, phase: Option<&str>) {
        if let Some(m) = &self.monitor {
            m.tag(Tag {
                engine: Some(l.spec.name.clone()),
                workload: w.map(|w| w.name.clone()),
                cell: cell.map(Cell::label),
                phase: phase.map(String::from),
                pid,
            });
        }
    }

    /// Why a cell should not run at all, if it should not.
    fn skip_reason(&self, l: &Launch, w: &Workload, cell: &Cell, oom_batch: &HashMap<usize, usize>) -> Option<String> {
        if let Some(&b) = oom_batch.get(&cell.prompt).filter(|&&b| cell.load.is_none() && cell.batch > b) {
            return Some(format!("skipped: batch {b} already ran out of memory at {}-token prompts", cell.prompt));
        }
        let dtype_bytes = if l.load.dtype == Dtype::F32 { 4 } else { 2 };
        let in_flight = match cell.load {
            Some(LoadLevel::Closed { users }) => users,
            _ => cell.batch,
        };
        let bytes = self.shape.predicted_bytes(dtype_bytes, in_flight, cell.prompt + w.max_new_tokens);
        let limit = self.cfg.system.memory_limit_gb * 1e9;
        (bytes as f64 > limit).then(|| {
            format!(
                "skipped: weights and KV cache need {:.1} GB, over system.memory_limit_gb = {}",
                bytes as f64 / 1e9,
                self.cfg.system.memory_limit_gb
            )
        })
    }

    /// One workload of one engine, in a fresh process (and a new one after any fault that kills it).
    fn workload(&mut self, l: &Launch, w: &Workload, gate_done: &mut bool) -> anyhow::Result<()> {
        let name = &l.spec.name;
        let cells = plan(w);
        let per_cell = self.cfg.benchmark.warmup_iterations + w.iterations;
        let bar = ProgressBar::new((cells.len() * per_cell) as u64).with_style(
            ProgressStyle::with_template("{prefix:>32} {bar:30} {pos}/{len} requests {elapsed}").expect("valid template"),
        );
        bar.set_prefix(format!("{name} · {}", w.name));

        let mut proc: Option<EngineProcess> = None;
        // Throughput: the smallest batch that ran out of memory, per prompt length.
        let mut oom_batch: HashMap<usize, usize> = HashMap::new();
        for (i, cell) in cells.iter().enumerate() {
            let key = Some((cell.batch, cell.prompt));
            if let Some(why) = self.skip_reason(l, w, cell, &oom_batch) {
                let f = FailureRecord {
                    schema: SCHEMA,
                    engine: name.clone(),
                    stage: w.name.clone(),
                    request: None,
                    batch_size: Some(cell.batch),
                    prompt_tokens: Some(cell.prompt),
                    kind: "skipped".into(),
                    message: why,
                    unix_ms: unix_ms(),
                };
                self.raw.append("failures", &f)?;
                bar.inc(per_cell as u64);
                continue;
            }
            if proc.is_none() {
                self.tag(l, Some(w), None, None);
                match self.start(l, name) {
                    Ok((mut p, ready)) => {
                        let record = EngineRecord { schema: SCHEMA, engine: name.clone(), workload: w.name.clone(), ready, unix_ms: unix_ms() };
                        self.raw.append("engines", &record)?;
                        if !*gate_done {
                            *gate_done = true;
                            self.gate(&mut p, l)?;
                        }
                        proc = Some(p);
                    }
                    Err(f) => {
                        bar.println(format!("✗ {name}: load failed: {f}"));
                        // No process, so none of the remaining cells of this workload can run.
                        let f = Fault::Spawn(format!("load failed: {f}"));
                        for c in &cells[i..] {
                            self.raw.append("failures", &fail(name, &w.name, Some((c.batch, c.prompt)), &f))?;
                        }
                        bar.finish_and_clear();
                        return Ok(());
                    }
                }
            }
            let p = proc.as_mut().expect("started above");
            self.tag_phase(l, Some(w), Some(cell), p.pid(), Some("warmup"));
            let started = Instant::now();
            let started_unix_ms = unix_ms();
            let out = match cell.load {
                None => self.static_cell(p, l, w, cell, &bar)?,
                Some(level) => self.load_level(p, l, w, cell, level, &bar)?,
            };
            let (rss_bytes, peak_rss_bytes) = p.rss();
            let record = CellRecord {
                schema: SCHEMA,
                engine: name.clone(),
                workload: w.name.clone(),
                scenario: w.scenario.as_str().into(),
                device: l.device.clone(),
                batch_size: cell.batch,
                prompt_tokens: cell.prompt,
                max_new_tokens: w.max_new_tokens,
                load: cell.load,
                status: if out.fault.is_some() { "failed".into() } else { "ok".into() },
                completed_requests: out.completed,
                generated_tokens: out.tokens,
                wall_ns: started.elapsed().as_nanos() as u64,
                rss_bytes,
                peak_rss_bytes,
                gpu: self.monitor.as_ref().map(Monitor::cell),
                thermal_pause_ms: out.thermal_pause_ms,
                started_unix_ms,
            };
            self.raw.append("cells", &record)?;
            self.tag(l, Some(w), None, p.pid());
            if let Some(f) = out.fault {
                bar.println(format!("✗ {name} {} {}: {f}", w.name, cell.label()));
                self.raw.append("failures", &fail(name, &w.name, key, &f))?;
                bar.set_position(((i + 1) * per_cell) as u64);
                if f.kind() == "out_of_memory" && cell.load.is_none() {
                    let b = oom_batch.entry(cell.prompt).or_insert(cell.batch);
                    *b = (*b).min(cell.batch);
                }
                if !f.process_survives() {
                    proc = None; // dropped: killed if still running
                }
            }
        }
        if let Some(p) = proc {
            p.shutdown();
        }
        self.tag(l, None, None, None);
        bar.finish_and_clear();
        Ok(())
    }

    fn gate(&mut self, p: &mut EngineProcess, l: &Launch) -> anyhow::Result<()> {
        let Some(reference) = self.reference(l.load.dtype)? else { return Ok(()) };
        let c = &self.cfg.correctness;
        match gate::run_probes(p, c, self.shape.vocab_size, self.cfg.benchmark.request_timeout_s) {
            Ok(got) => {
                for r in gate::compare(&l.spec.name, l.load.dtype, c, &got, &reference) {
                    if !r.passed {
                        eprintln!(
                            "⚠ {} disagrees with {} on a {}-token probe: max relative logit error {:.2e} (tolerance {:.0e}), {}/{} greedy tokens equal ({} required)",
                            r.engine, r.reference, r.prompt_tokens, r.max_rel_logit_err, r.tolerance, r.greedy_match_steps, r.steps, r.required_greedy_steps
                        );
                    }
                    self.raw.append("correctness", &r)?;
                }
            }
            Err(f) => self.raw.append("failures", &fail(&l.spec.name, "correctness", None, &f))?,
        }
        Ok(())
    }

    /// Waits while the GPU is hotter than `system.thermal_limit` (at most five minutes); returns the pause.
    fn cool_down(&self) -> u64 {
        let Some(m) = &self.monitor else { return 0 };
        let started = Instant::now();
        while m.temperature_c().is_some_and(|t| t as f64 > self.cfg.system.thermal_limit) && started.elapsed() < Duration::from_secs(300) {
            std::thread::sleep(Duration::from_millis(500));
        }
        started.elapsed().as_millis() as u64
    }

    fn request(&self, w: &Workload, cell: &Cell, i: usize, warmup: bool, iteration: usize) -> GenerateRequest {
        let b = &self.cfg.benchmark;
        GenerateRequest {
            id: format!("{}-{}-{}{iteration}", w.name, cell.label(), if warmup { "w" } else { "m" }),
            prompt: prompt_tokens(cell.prompt, b.seed.wrapping_mul(1_000_003).wrapping_add(i as u64), self.shape.vocab_size),
            max_new_tokens: w.max_new_tokens,
            batch_size: cell.batch,
            stream: true,
        }
    }

    fn record(&self, l: &Launch, w: &Workload, cell: &Cell, warmup: bool, iteration: usize, t: Timed, sent_offset_ns: Option<u64>) -> RequestRecord {
        RequestRecord {
            schema: SCHEMA,
            engine: l.spec.name.clone(),
            workload: w.name.clone(),
            scenario: w.scenario.as_str().into(),
            device: l.device.clone(),
            dtype: l.load.dtype.to_string(),
            batch_size: cell.batch,
            prompt_tokens: cell.prompt,
            max_new_tokens: w.max_new_tokens,
            warmup,
            iteration,
            generated_tokens: t.done.tokens.iter().map(Vec::len).sum(),
            queue_ns: t.done.queue_ns,
            ttft_ns: t.done.ttft_ns,
            token_ns: t.done.token_ns,
            total_ns: t.done.total_ns,
            runner_ttft_ns: t.runner_ttft_ns,
            runner_total_ns: t.runner_total_ns,
            load: cell.load,
            sent_offset_ns,
            unix_ms: unix_ms(),
        }
    }

    fn check_shape(t: &Timed, rows: usize, tokens: usize) -> Result<(), Fault> {
        if t.done.tokens.len() != rows || t.done.tokens.iter().any(|r| r.len() != tokens) {
            return Err(Fault::Unexpected {
                expected: format!("{rows} rows of {tokens} tokens"),
                got: format!("rows of {:?} tokens", t.done.tokens.iter().map(Vec::len).collect::<Vec<_>>()),
            });
        }
        Ok(())
    }

    /// Warm-up then measured requests, one at a time (latency, throughput and memory scenarios).
    fn static_cell(&mut self, p: &mut EngineProcess, l: &Launch, w: &Workload, cell: &Cell, bar: &ProgressBar) -> anyhow::Result<CellOutcome> {
        let warmups = self.cfg.benchmark.warmup_iterations;
        let mut out = CellOutcome::default();
        for i in 0..warmups + w.iterations {
            out.thermal_pause_ms += self.cool_down();
            let (warmup, iteration) = if i < warmups { (true, i) } else { (false, i - warmups) };
            if i == warmups {
                self.tag_phase(l, Some(w), Some(cell), p.pid(), Some("measured"));
            }
            let t = match p
                .generate(self.request(w, cell, i, warmup, iteration), self.cfg.benchmark.request_timeout_s)
                .and_then(|t| Self::check_shape(&t, cell.batch, w.max_new_tokens).map(|_| t))
            {
                Ok(t) => t,
                Err(f) => {
                    out.fault = Some(f);
                    return Ok(out);
                }
            };
            out.completed += 1;
            if !warmup {
                out.tokens += t.done.tokens.iter().map(Vec::len).sum::<usize>();
            }
            self.raw.append("requests", &self.record(l, w, cell, warmup, iteration, t, None))?;
            bar.inc(1);
        }
        Ok(out)
    }

    /// Warm-up requests one at a time, then the load level: `iterations` requests in flight together.
    fn load_level(&mut self, p: &mut EngineProcess, l: &Launch, w: &Workload, cell: &Cell, level: LoadLevel, bar: &ProgressBar) -> anyhow::Result<CellOutcome> {
        let b = &self.cfg.benchmark;
        let mut out = CellOutcome { thermal_pause_ms: self.cool_down(), ..Default::default() };
        for i in 0..b.warmup_iterations {
            match p.generate(self.request(w, cell, i, true, i), b.request_timeout_s) {
                Ok(t) => {
                    out.completed += 1;
                    self.raw.append("requests", &self.record(l, w, cell, true, i, t, None))?;
                    bar.inc(1);
                }
                Err(f) => {
                    out.fault = Some(f);
                    return Ok(out);
                }
            }
        }
        let requests: Vec<GenerateRequest> =
            (0..w.iterations).map(|k| self.request(w, cell, b.warmup_iterations + k, false, k)).collect();
        let index: HashMap<String, usize> = requests.iter().enumerate().map(|(k, r)| (r.id.clone(), k)).collect();
        self.tag_phase(l, Some(w), Some(cell), p.pid(), Some("measured"));
        let seed = b.seed ^ (cell.prompt as u64).rotate_left(32);
        let LevelOutcome { completed, failed, fault, .. } = load::drive(p, level, requests, seed, b.request_timeout_s);
        for c in completed {
            let k = index[&c.timed.done.id];
            out.completed += 1;
            out.tokens += c.timed.done.tokens.iter().map(Vec::len).sum::<usize>();
            self.raw.append("requests", &self.record(l, w, cell, false, k, c.timed, Some(c.sent_offset_ns)))?;
            bar.inc(1);
        }
        for (id, f) in failed {
            let rec = FailureRecord { request: Some(id), ..fail(&l.spec.name, &w.name, Some((cell.batch, cell.prompt)), &f) };
            self.raw.append("failures", &rec)?;
        }
        out.fault = fault;
        Ok(out)
    }
}
