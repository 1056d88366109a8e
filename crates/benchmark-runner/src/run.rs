//! A run: plan the cells, drive each engine in fresh processes, append every measurement to the
//! run directory as it happens. Nothing here computes a statistic (that is `summary`'s job).

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use shared_protocol::{Dtype, GenerateRequest, LoadRequest, LogitsResult, PROTOCOL_VERSION};

use crate::config::{Config, Workload};
use crate::gate;
use crate::process::{EngineProcess, Fault};
use crate::prompts::prompt_tokens;
use crate::records::{unix_ms, EngineRecord, FailureRecord, RawData, RequestRecord, SCHEMA};
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

/// A cell ends early on an engine fault (recorded, the run goes on) or when the run directory
/// cannot be written (the run stops: nothing could be kept).
enum CellError {
    Fault(Fault),
    Write(std::io::Error),
}

impl From<Fault> for CellError {
    fn from(f: Fault) -> Self {
        CellError::Fault(f)
    }
}

struct Runner<'a> {
    cfg: &'a Config,
    paths: &'a RunPaths,
    raw: RawData,
    vocab_size: usize,
    registry: &'a Registry,
    /// Reference answers per compute dtype, made on first need (None: the reference failed).
    references: std::collections::HashMap<Dtype, Option<Vec<LogitsResult>>>,
}

fn fail(engine: &str, stage: &str, cell: Option<(usize, usize)>, fault: &Fault) -> FailureRecord {
    FailureRecord {
        schema: SCHEMA,
        engine: engine.into(),
        stage: stage.into(),
        batch_size: cell.map(|c| c.0),
        prompt_tokens: cell.map(|c| c.1),
        kind: fault.kind().into(),
        message: fault.to_string(),
        unix_ms: unix_ms(),
    }
}

fn vocab_size(model: &Path) -> anyhow::Result<usize> {
    let path = model.join("config.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    v["vocab_size"]
        .as_u64()
        .map(|n| n as usize)
        .with_context(|| format!("{}: vocab_size missing", path.display()))
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
        vocab_size: vocab_size(&cfg.benchmark.model_path)?,
        registry,
        references: Default::default(),
    };
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
            let r = gate::run_probes(&mut p, &self.cfg.correctness, self.vocab_size, self.cfg.benchmark.request_timeout_s);
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
        for w in &self.cfg.workloads {
            self.workload(&l, w, &mut gate_done)?;
        }
        Ok(())
    }

    /// One scenario of one engine, in a fresh process (a new one after any fault that kills it).
    fn workload(&mut self, l: &Launch, w: &Workload, gate_done: &mut bool) -> anyhow::Result<()> {
        let name = &l.spec.name;
        let cells: Vec<(usize, usize)> =
            w.batch_sizes.iter().flat_map(|&b| w.sequence_lengths.iter().map(move |&s| (b, s))).collect();
        let per_cell = self.cfg.benchmark.warmup_iterations + w.iterations;
        let bar = ProgressBar::new((cells.len() * per_cell) as u64).with_style(
            ProgressStyle::with_template("{prefix:>28} {bar:30} {pos}/{len} requests {elapsed}")
                .expect("valid template"),
        );
        bar.set_prefix(format!("{name} · {}", w.name));

        let mut proc: Option<EngineProcess> = None;
        for (i, &(batch, len)) in cells.iter().enumerate() {
            if proc.is_none() {
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
                        for &cell in &cells[i..] {
                            self.raw.append("failures", &fail(name, &w.name, Some(cell), &Fault::Spawn(format!("load failed: {f}"))))?;
                        }
                        bar.finish_and_clear();
                        return Ok(());
                    }
                }
            }
            let p = proc.as_mut().expect("started above");
            if let Err(e) = self.cell(p, l, w, batch, len, &bar) {
                let f = match e {
                    CellError::Fault(f) => f,
                    CellError::Write(e) => return Err(e).context("writing raw data"),
                };
                bar.println(format!("✗ {name} {} batch {batch} prompt {len}: {f}", w.name));
                self.raw.append("failures", &fail(name, &w.name, Some((batch, len)), &f))?;
                bar.set_position(((i + 1) * per_cell) as u64);
                if !f.process_survives() {
                    proc = None; // dropped: killed if still running
                }
            }
        }
        if let Some(p) = proc {
            p.shutdown();
        }
        bar.finish_and_clear();
        Ok(())
    }

    fn gate(&mut self, p: &mut EngineProcess, l: &Launch) -> anyhow::Result<()> {
        let Some(reference) = self.reference(l.load.dtype)? else { return Ok(()) };
        let c = &self.cfg.correctness;
        match gate::run_probes(p, c, self.vocab_size, self.cfg.benchmark.request_timeout_s) {
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

    /// Warm-up then measured requests of one (batch size, prompt length) cell.
    fn cell(&mut self, p: &mut EngineProcess, l: &Launch, w: &Workload, batch: usize, len: usize, bar: &ProgressBar) -> Result<(), CellError> {
        let b = &self.cfg.benchmark;
        for i in 0..b.warmup_iterations + w.iterations {
            let warmup = i < b.warmup_iterations;
            let iteration = if warmup { i } else { i - b.warmup_iterations };
            let req = GenerateRequest {
                id: format!("{}-b{batch}-p{len}-{}{iteration}", w.name, if warmup { "w" } else { "m" }),
                prompt: prompt_tokens(len, b.seed.wrapping_mul(1_000_003).wrapping_add(i as u64), self.vocab_size),
                max_new_tokens: w.max_new_tokens,
                batch_size: batch,
                stream: true,
            };
            let t = p.generate(req, b.request_timeout_s)?;
            let generated_tokens = t.done.tokens.iter().map(Vec::len).sum();
            if t.done.tokens.len() != batch || t.done.tokens.iter().any(|r| r.len() != w.max_new_tokens) {
                return Err(CellError::Fault(Fault::Unexpected {
                    expected: format!("{batch} rows of {} tokens", w.max_new_tokens),
                    got: format!("{:?}", t.done.tokens.iter().map(Vec::len).collect::<Vec<_>>()),
                }));
            }
            let record = RequestRecord {
                schema: SCHEMA,
                engine: l.spec.name.clone(),
                workload: w.name.clone(),
                scenario: "latency".into(),
                device: l.device.clone(),
                dtype: l.load.dtype.to_string(),
                batch_size: batch,
                prompt_tokens: len,
                max_new_tokens: w.max_new_tokens,
                warmup,
                iteration,
                generated_tokens,
                queue_ns: t.done.queue_ns,
                ttft_ns: t.done.ttft_ns,
                token_ns: t.done.token_ns,
                total_ns: t.done.total_ns,
                runner_ttft_ns: t.runner_ttft_ns,
                runner_total_ns: t.runner_total_ns,
                unix_ms: unix_ms(),
            };
            self.raw.append("requests", &record).map_err(CellError::Write)?;
            bar.inc(1);
        }
        Ok(())
    }
}
