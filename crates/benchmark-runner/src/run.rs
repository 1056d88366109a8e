//! A run: plan the cells, drive each engine in fresh processes, append every measurement to the
//! run directory as it happens. Nothing here computes a statistic (that is `summary`'s job).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use shared_protocol::{Dtype, GenerateRequest, LoadRequest, LogitsResult, PROTOCOL_VERSION};

use run_format::model::ModelShape;
use crate::config::{Config, Scenario, Workload};
use crate::gate;
use crate::host::HostProbe;
use crate::concurrent_load::{self, LevelOutcome};
use crate::monitor::{Monitor, Tag};
use crate::process::{EngineProcess, Fault, Timed};
use crate::prompts::prompt_tokens;
use run_format::records::{unix_ms, AttemptRecord, CellRecord, EngineRecord, FailureRecord, LoadLevel, RequestRecord, SCHEMA};
use run_format::RawData;
use crate::registry::{EngineSpec, Registry};
use crate::stop::stopping;

pub struct RunPaths {
    pub root: PathBuf,
    pub output: PathBuf,
}

/// How a launch of the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Every cell was measured (or failed, or was skipped, with its reason recorded).
    Finished,
    /// A signal stopped it between requests; `--resume` continues at the first unfinished cell.
    Interrupted,
}

/// How one engine is started for this run: program, device, dtype, options.
pub(crate) struct Launch<'a> {
    pub(crate) spec: &'a EngineSpec,
    pub(crate) device: String,
    pub(crate) load: LoadRequest,
}

/// One unit of measurement: a (batch size, prompt length) pair, or a load level at a prompt length.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cell {
    pub(crate) batch: usize,
    pub(crate) prompt: usize,
    pub(crate) load: Option<LoadLevel>,
}

/// What identifies a cell of one engine across launches of a run (for `--resume`).
pub(crate) type CellId = (String, String, usize, usize, String);

pub(crate) fn cell_id(engine: &str, workload: &str, batch: usize, prompt: usize, load: Option<LoadLevel>) -> CellId {
    (engine.into(), workload.into(), batch, prompt, load.map(|l| l.label()).unwrap_or_default())
}

impl Cell {
    pub(crate) fn label(&self) -> String {
        match self.load {
            Some(l) => format!("{}-p{}", l.label(), self.prompt),
            None => format!("b{}-p{}", self.batch, self.prompt),
        }
    }
}

pub(crate) fn plan(w: &Workload) -> Vec<Cell> {
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
pub(crate) struct CellOutcome {
    pub(crate) completed: usize,
    pub(crate) tokens: usize,
    pub(crate) thermal_pause_ms: u64,
    pub(crate) fault: Option<Fault>,
    /// Measured requests cut short by a stop signal: the cell is not finished.
    pub(crate) interrupted: bool,
}

pub(crate) struct Runner<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) paths: &'a RunPaths,
    pub(crate) raw: RawData,
    pub(crate) shape: ModelShape,
    pub(crate) registry: &'a Registry,
    pub(crate) monitor: Option<Monitor>,
    pub(crate) host: Option<HostProbe>,
    /// The CPUs engines and the host probe run on.
    pub(crate) cpus: Vec<usize>,
    /// This launch of the run (1, then one more per `--resume`).
    pub(crate) attempt: u32,
    /// Cells finished by earlier launches (resumed runs): not measured again.
    pub(crate) finished: std::collections::HashSet<CellId>,
    /// Engines whose correctness gate has run (in this launch or an earlier one).
    pub(crate) gated: std::collections::HashSet<String>,
    /// Reference answers per compute dtype, made on first need (None: the reference failed).
    references: std::collections::HashMap<Dtype, Option<Vec<LogitsResult>>>,
}

/// Measurements taken around one request: its block (interleaved) and the host probe.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Around {
    pub(crate) block: Option<usize>,
    pub(crate) probe_before_ns: Option<u64>,
    pub(crate) probe_after_ns: Option<u64>,
}

pub(crate) fn fail(engine: &str, stage: &str, cell: Option<(usize, usize)>, fault: &Fault) -> FailureRecord {
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
pub fn execute(cfg: &Config, config_text: &str, registry: &Registry, paths: &RunPaths) -> anyhow::Result<Ended> {
    let out = &paths.output;
    if out.join("raw_data").exists() {
        anyhow::bail!(
            "{} already holds a run; measured data is never overwritten: choose another --output (or --resume it)",
            out.display()
        );
    }
    std::fs::create_dir_all(out.join("logs")).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("config.yaml"), config_text).context("writing config.yaml")?;
    if let Some(source) = &cfg.benchmark.source {
        source.ensure()?;
    }
    let mut env = crate::environment::collect(&paths.root, &cfg.benchmark.model_path, cfg.benchmark.source.as_ref());
    env["cpu"]["engine_cpus"] = crate::host::format_cpu_list(&cfg.engine_cpus()).into();
    std::fs::write(out.join("environment.json"), serde_json::to_string_pretty(&env)? + "\n").context("writing environment.json")?;
    let mut runner = Runner::new(cfg, registry, paths, 1, &env)?;
    runner.measure_device()?;
    runner.measure_all()
}

/// Continues the run in `paths.output` (its own config.yaml) at its first unfinished cell.
pub fn resume(cfg: &Config, registry: &Registry, paths: &RunPaths) -> anyhow::Result<Ended> {
    let raw = paths.output.join("raw_data");
    let attempts: Vec<AttemptRecord> = run_format::read_stream(&raw, "attempts")?;
    let cells: Vec<CellRecord> = run_format::read_stream(&raw, "cells")?;
    let failures: Vec<FailureRecord> = run_format::read_stream(&raw, "failures")?;
    let correctness: Vec<run_format::records::CorrectnessRecord> = run_format::read_stream(&raw, "correctness")?;
    let last = attempts.iter().map(|a| a.attempt).max().unwrap_or(1);
    if let Some(source) = &cfg.benchmark.source {
        source.ensure()?;
    }
    let env = crate::environment::collect(&paths.root, &cfg.benchmark.model_path, cfg.benchmark.source.as_ref());
    let mut runner = Runner::new(cfg, registry, paths, last + 1, &env)?;
    runner.finished = cells.iter().map(|c| cell_id(&c.engine, &c.workload, c.batch_size, c.prompt_tokens, c.load)).collect();
    // A skipped cell has only its failure record; skipping again would repeat it.
    runner.finished.extend(
        failures
            .iter()
            .filter(|f| f.kind == "skipped")
            .filter_map(|f| Some(cell_id(&f.engine, &f.stage, f.batch_size?, f.prompt_tokens?, None))),
    );
    runner.gated = correctness.iter().map(|c| c.engine.clone()).collect();
    runner.gated.extend(failures.iter().filter(|f| f.stage == "correctness").map(|f| f.engine.clone()));
    eprintln!("resuming {} as launch {}: {} cells already finished", paths.output.display(), runner.attempt, runner.finished.len());
    runner.measure_all()
}

impl<'a> Runner<'a> {
    /// `env` is this launch's environment (its commit and host go into the launch's record).
    fn new(
        cfg: &'a Config,
        registry: &'a Registry,
        paths: &'a RunPaths,
        attempt: u32,
        env: &serde_json::Value,
    ) -> anyhow::Result<Runner<'a>> {
        let out = &paths.output;
        let mut raw = RawData::create(&out.join("raw_data"))?;
        raw.append(
            "attempts",
            &AttemptRecord {
                schema: SCHEMA,
                attempt,
                git_commit: env["git_commit"].as_str().map(String::from),
                host: env["host"].as_str().map(String::from),
                started_unix_ms: unix_ms(),
                ended: None,
            },
        )?;
        std::fs::create_dir_all(out.join("logs"))?;
        let cpus = cfg.engine_cpus();
        let host = match HostProbe::start(cpus.clone(), &out.join("raw_data/host.jsonl")) {
            Ok(h) => Some(h),
            Err(e) => {
                eprintln!("host probe off: {e}");
                None
            }
        };
        let mut runner = Runner {
            cfg,
            paths,
            raw,
            shape: ModelShape::read(&cfg.benchmark.model_path)?,
            registry,
            monitor: None,
            host,
            cpus,
            attempt,
            finished: Default::default(),
            gated: Default::default(),
            references: Default::default(),
        };
        let on_gpu = runner.on_gpu();
        match Monitor::start(cfg.system.gpu_device, &out.join("raw_data/monitor.jsonl")) {
            Ok(m) => runner.monitor = Some(m),
            Err(why) if on_gpu => eprintln!("GPU monitoring off: {why}"),
            Err(_) => {}
        }
        Ok(runner)
    }

    fn on_gpu(&self) -> bool {
        self.cfg.engines.iter().any(|n| self.launch(self.registry.get(n).expect("validated"), None).device != "cpu")
    }

    /// The device's copy bandwidth (the roofline's memory roof), once per run.
    fn measure_device(&mut self) -> anyhow::Result<()> {
        if !self.on_gpu() {
            return Ok(());
        }
        let probe = crate::environment::copy_bandwidth(&self.paths.root, self.cfg.system.gpu_device);
        match probe["gb_per_s"].as_f64() {
            Some(g) => eprintln!("device copy bandwidth: {g:.0} GB/s"),
            None => eprintln!("device copy bandwidth probe failed: {probe}"),
        }
        std::fs::write(self.paths.output.join("raw_data/bandwidth_probe.json"), serde_json::to_string_pretty(&probe)? + "\n")?;
        Ok(())
    }

    /// Every workload of every engine, skipping cells an earlier launch finished. Workloads that
    /// interleave their engines run workload by workload; a run with none runs engine by engine
    /// (each engine's workloads in turn), as the sequential mode always has.
    fn measure_all(&mut self) -> anyhow::Result<Ended> {
        let cfg = self.cfg;
        if cfg.correctness.enabled {
            // References first, each in its own process, so no engine is loaded beside them.
            let mut dtypes: Vec<Dtype> = Vec::new();
            for name in cfg.engines.iter().filter(|n| !self.gated.contains(*n)) {
                let d = self.launch(self.registry.get(name).expect("validated"), None).load.dtype;
                if !dtypes.contains(&d) {
                    dtypes.push(d);
                }
            }
            for d in dtypes {
                self.reference(d)?;
            }
        }
        let specs: Vec<&EngineSpec> = cfg.engines.iter().map(|n| self.registry.get(n).expect("validated against the registry")).collect();
        if cfg.workloads.iter().any(|w| w.interleaved(&cfg.engines)) {
            for w in &cfg.workloads {
                let engines: Vec<&EngineSpec> = specs.iter().copied().filter(|s| w.applies_to(&s.name)).collect();
                if w.interleaved(&cfg.engines) {
                    self.interleaved_workload(w, &engines)?;
                } else {
                    for spec in engines {
                        let l = self.launch(spec, None);
                        self.workload(&l, w)?;
                    }
                }
                if stopping() {
                    break;
                }
            }
        } else {
            'engines: for spec in specs {
                let l = self.launch(spec, None);
                for w in cfg.workloads.iter().filter(|w| w.applies_to(&spec.name)) {
                    self.workload(&l, w)?;
                    if stopping() {
                        break 'engines;
                    }
                }
            }
        }
        let ended = if stopping() { Ended::Interrupted } else { Ended::Finished };
        let record = AttemptRecord {
            schema: SCHEMA,
            attempt: self.attempt,
            git_commit: None,
            host: None,
            started_unix_ms: unix_ms(),
            ended: Some(if ended == Ended::Finished { "finished" } else { "interrupted" }.into()),
        };
        self.raw.append("attempts", &record)?;
        Ok(ended)
    }
}

impl Runner<'_> {
    pub(crate) fn launch<'s>(&self, spec: &'s EngineSpec, dtype_override: Option<shared_protocol::Dtype>) -> Launch<'s> {
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
    pub(crate) fn start(&mut self, l: &Launch, log_name: &str) -> Result<(EngineProcess, shared_protocol::Ready), Fault> {
        let mut p = self.spawn(l, log_name)?;
        let ready = p.load(l.load.clone(), self.cfg.benchmark.load_timeout_s)?;
        Ok((p, ready))
    }

    /// Starts the engine's process (pinned to the run's CPUs) without loading it.
    pub(crate) fn spawn(&self, l: &Launch, log_name: &str) -> Result<EngineProcess, Fault> {
        let cmd = l.spec.resolve(&self.paths.root).map_err(Fault::Spawn)?;
        let log = self.paths.output.join("logs").join(format!("{log_name}.log"));
        EngineProcess::spawn(&cmd, &log, &self.cpus)
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

    pub(crate) fn tag(&self, l: &Launch, w: Option<&Workload>, cell: Option<&Cell>, pid: Option<u32>) {
        self.tag_phase(l, w, cell, pid, None);
    }

    /// Tags what follows; a new tag starts new cell statistics, so the measured phase is tagged
    /// apart from the warm-up and the cell's GPU figures cover measured requests only.
    pub(crate) fn tag_phase(&self, l: &Launch, w: Option<&Workload>, cell: Option<&Cell>, pid: Option<u32>, phase: Option<&str>) {
        let tag = Tag {
            engine: Some(l.spec.name.clone()),
            workload: w.map(|w| w.name.clone()),
            cell: cell.map(Cell::label),
            phase: phase.map(String::from),
            pid,
        };
        if let Some(h) = &self.host {
            h.tag(tag.clone());
        }
        if let Some(m) = &self.monitor {
            m.tag(tag);
        }
    }

    /// One host probe on the engines' CPUs (None when the probe is off).
    pub(crate) fn probe(&self) -> Option<u64> {
        self.host.as_ref().and_then(HostProbe::probe)
    }

    /// Whether an earlier launch of the run finished this cell of this engine.
    pub(crate) fn is_finished(&self, engine: &str, w: &Workload, cell: &Cell) -> bool {
        self.finished.contains(&cell_id(engine, &w.name, cell.batch, cell.prompt, cell.load))
    }

    /// Records a cell that will not run (see [`Runner::skip_reason`]).
    pub(crate) fn skip(&mut self, engine: &str, w: &Workload, cell: &Cell, why: String) -> anyhow::Result<()> {
        let f = FailureRecord {
            schema: SCHEMA,
            engine: engine.into(),
            stage: w.name.clone(),
            request: None,
            batch_size: Some(cell.batch),
            prompt_tokens: Some(cell.prompt),
            kind: "skipped".into(),
            message: why,
            unix_ms: unix_ms(),
        };
        Ok(self.raw.append("failures", &f)?)
    }

    /// The engine's record once it is loaded, and its correctness gate if it has not had one.
    pub(crate) fn on_ready(
        &mut self,
        p: &mut EngineProcess,
        l: &Launch,
        w: &Workload,
        ready: shared_protocol::Ready,
    ) -> anyhow::Result<()> {
        let name = &l.spec.name;
        let record = EngineRecord { schema: SCHEMA, engine: name.clone(), workload: w.name.clone(), ready, unix_ms: unix_ms() };
        self.raw.append("engines", &record)?;
        if self.cfg.correctness.enabled && self.gated.insert(name.clone()) {
            self.gate(p, l)?;
        }
        Ok(())
    }

    /// Why a cell should not run at all, if it should not.
    pub(crate) fn skip_reason(&self, l: &Launch, w: &Workload, cell: &Cell, oom_batch: &HashMap<usize, usize>) -> Option<String> {
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
    fn workload(&mut self, l: &Launch, w: &Workload) -> anyhow::Result<()> {
        let name = &l.spec.name;
        let cells: Vec<Cell> = plan(w).into_iter().filter(|c| !self.is_finished(name, w, c)).collect();
        if cells.is_empty() {
            return Ok(());
        }
        let per_cell = self.cfg.benchmark.warmup_iterations + w.iterations;
        let bar = ProgressBar::new((cells.len() * per_cell) as u64)
            .with_style(ProgressStyle::with_template("{prefix:>32} {bar:30} {pos}/{len} requests {elapsed}").expect("valid template"));
        bar.set_prefix(format!("{name} · {}", w.name));

        let mut proc: Option<EngineProcess> = None;
        // Throughput: the smallest batch that ran out of memory, per prompt length.
        let mut oom_batch: HashMap<usize, usize> = HashMap::new();
        for (i, cell) in cells.iter().enumerate() {
            if stopping() {
                break;
            }
            let key = Some((cell.batch, cell.prompt));
            if let Some(why) = self.skip_reason(l, w, cell, &oom_batch) {
                self.skip(name, w, cell, why)?;
                bar.inc(per_cell as u64);
                continue;
            }
            if proc.is_none() {
                self.tag(l, Some(w), None, None);
                match self.start(l, name) {
                    Ok((mut p, ready)) => {
                        self.on_ready(&mut p, l, w, ready)?;
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
            if out.interrupted {
                break; // not finished: no cell record, so a resumed run measures it again
            }
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
                attempt: Some(self.attempt),
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

    pub(crate) fn gate(&mut self, p: &mut EngineProcess, l: &Launch) -> anyhow::Result<()> {
        let Some(reference) = self.reference(l.load.dtype)? else { return Ok(()) };
        let c = &self.cfg.correctness;
        match gate::run_probes(p, c, self.shape.vocab_size, self.cfg.benchmark.request_timeout_s) {
            Ok(got) => {
                for r in gate::compare(&l.spec.name, l.load.dtype, c, &got, &reference) {
                    if !r.passed {
                        eprintln!(
                            "⚠ {} disagrees with {} on a {}-token probe: max relative logit error {:.2e} (tolerance {:.0e}), {}/{} greedy tokens equal ({} required{})",
                            r.engine,
                            r.reference,
                            r.prompt_tokens,
                            r.max_rel_logit_err,
                            r.tolerance,
                            r.greedy_match_steps,
                            r.steps,
                            r.required_greedy_steps,
                            r.divergence_gap
                                .zip(r.near_tie_margin)
                                .map(|(g, m)| format!(", parted where the reference's top-2 gap was {g:.3} (near-tie below {m:.3})"))
                                .unwrap_or_default()
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
    pub(crate) fn cool_down(&self) -> u64 {
        let Some(m) = &self.monitor else { return 0 };
        let started = Instant::now();
        while m.temperature_c().is_some_and(|t| t as f64 > self.cfg.system.thermal_limit) && started.elapsed() < Duration::from_secs(300) {
            std::thread::sleep(Duration::from_millis(500));
        }
        started.elapsed().as_millis() as u64
    }

    pub(crate) fn request(&self, w: &Workload, cell: &Cell, i: usize, warmup: bool, iteration: usize) -> GenerateRequest {
        let b = &self.cfg.benchmark;
        GenerateRequest {
            id: format!("{}-{}-{}{iteration}", w.name, cell.label(), if warmup { "w" } else { "m" }),
            prompt: prompt_tokens(cell.prompt, b.seed.wrapping_mul(1_000_003).wrapping_add(i as u64), self.shape.vocab_size),
            max_new_tokens: w.max_new_tokens,
            batch_size: cell.batch,
            // Only the concurrent scenario's clients read tokens as they come (its time to first
            // token is the runner's); elsewhere the engine's own per-token times in `done` are the
            // figures, and writing an event per token would sit inside them.
            stream: w.scenario == Scenario::Concurrent,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        &self,
        l: &Launch,
        w: &Workload,
        cell: &Cell,
        warmup: bool,
        iteration: usize,
        t: Timed,
        sent_offset_ns: Option<u64>,
        around: Around,
    ) -> RequestRecord {
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
            block: around.block,
            attempt: Some(self.attempt),
            host_probe_before_ns: around.probe_before_ns,
            host_probe_after_ns: around.probe_after_ns,
        }
    }

    pub(crate) fn check_shape(t: &Timed, rows: usize, tokens: usize) -> Result<(), Fault> {
        if t.done.tokens.len() != rows || t.done.tokens.iter().any(|r| r.len() != tokens) {
            return Err(Fault::Unexpected {
                expected: format!("{rows} rows of {tokens} tokens"),
                got: format!("rows of {:?} tokens", t.done.tokens.iter().map(Vec::len).collect::<Vec<_>>()),
            });
        }
        Ok(())
    }

    /// Warm-up then measured requests, one at a time (latency, throughput and memory scenarios).
    fn static_cell(
        &mut self,
        p: &mut EngineProcess,
        l: &Launch,
        w: &Workload,
        cell: &Cell,
        bar: &ProgressBar,
    ) -> anyhow::Result<CellOutcome> {
        let warmups = self.cfg.benchmark.warmup_iterations;
        let mut out = CellOutcome::default();
        let mut measured_ns = 0u64;
        let mut i = 0;
        while i < warmups + w.iterations || (i >= warmups && self.wants_more(w, measured_ns, i - warmups)) {
            if stopping() {
                out.interrupted = true;
                return Ok(out);
            }
            out.thermal_pause_ms += self.cool_down();
            let (warmup, iteration) = if i < warmups { (true, i) } else { (false, i - warmups) };
            if i == warmups {
                self.tag_phase(l, Some(w), Some(cell), p.pid(), Some("measured"));
            }
            let probe_before_ns = self.probe();
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
            let around = Around { block: None, probe_before_ns, probe_after_ns: self.probe() };
            out.completed += 1;
            if !warmup {
                out.tokens += t.done.tokens.iter().map(Vec::len).sum::<usize>();
                measured_ns += t.runner_total_ns;
            }
            self.raw.append("requests", &self.record(l, w, cell, warmup, iteration, t, None, around))?;
            bar.inc(1);
            i += 1;
        }
        Ok(out)
    }

    /// Past `iterations`, whether a cell still needs requests to reach `min_measured_s` (capped
    /// at ten times `iterations`, so a very slow or very fast engine cannot run on unbounded).
    pub(crate) fn wants_more(&self, w: &Workload, measured_ns: u64, measured: usize) -> bool {
        let Some(min_s) = w.min_measured_s else { return false };
        measured < w.iterations * 10 && (measured_ns as f64) < min_s * 1e9
    }

    /// Warm-up requests one at a time, then the load level: `iterations` requests in flight together.
    fn load_level(
        &mut self,
        p: &mut EngineProcess,
        l: &Launch,
        w: &Workload,
        cell: &Cell,
        level: LoadLevel,
        bar: &ProgressBar,
    ) -> anyhow::Result<CellOutcome> {
        let b = &self.cfg.benchmark;
        let mut out = CellOutcome { thermal_pause_ms: self.cool_down(), ..Default::default() };
        if stopping() {
            out.interrupted = true;
            return Ok(out);
        }
        for i in 0..b.warmup_iterations {
            match p.generate(self.request(w, cell, i, true, i), b.request_timeout_s) {
                Ok(t) => {
                    out.completed += 1;
                    self.raw.append("requests", &self.record(l, w, cell, true, i, t, None, Around::default()))?;
                    bar.inc(1);
                }
                Err(f) => {
                    out.fault = Some(f);
                    return Ok(out);
                }
            }
        }
        let requests: Vec<GenerateRequest> = (0..w.iterations).map(|k| self.request(w, cell, b.warmup_iterations + k, false, k)).collect();
        let index: HashMap<String, usize> = requests.iter().enumerate().map(|(k, r)| (r.id.clone(), k)).collect();
        self.tag_phase(l, Some(w), Some(cell), p.pid(), Some("measured"));
        let seed = b.seed ^ (cell.prompt as u64).rotate_left(32);
        let LevelOutcome { completed, failed, fault, .. } = concurrent_load::drive(p, level, requests, seed, b.request_timeout_s);
        for c in completed {
            let k = index[&c.timed.done.id];
            out.completed += 1;
            out.tokens += c.timed.done.tokens.iter().map(Vec::len).sum::<usize>();
            self.raw.append("requests", &self.record(l, w, cell, false, k, c.timed, Some(c.sent_offset_ns), Around::default()))?;
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
