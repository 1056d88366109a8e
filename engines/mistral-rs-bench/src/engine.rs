//! Loading a mistral.rs pipeline and running protocol requests on it.

use std::sync::Arc;
use std::time::Instant;

use mistralrs::core::{
    DeviceMapSetting, MemoryUsage, MistralRsBuilder, NormalLoaderBuilder, NormalSpecificConfig, Pipeline,
    TokenSource,
};
use mistralrs::{
    Constraint, DefaultSchedulerMethod, Device, MemoryGpuConfig, MistralRs, ModelDType, NormalRequest,
    PagedAttentionConfig, PagedCacheType, Request, RequestMessage, Response, SamplingParams, SchedulerConfig,
};
use serde_json::{json, Map, Value};
use shared_protocol::{
    Done, Dtype, EngineError, EngineInfo, ErrorEvent, ErrorKind, Event, GenerateRequest, LoadRequest, LogitsRequest,
    LogitsResult, Ready, TokenEvent, PROTOCOL_VERSION,
};
use tokio::sync::mpsc;

use crate::out::Out;
use crate::recorder::{Msg, Recorder};

/// The mistralrs version resolved in Cargo.lock (build.rs).
const MISTRALRS_VERSION: &str = env!("MISTRALRS_VERSION");
/// mistral.rs's documented default PagedAttention budget on CUDA: 90% of the GPU memory.
const DEFAULT_PA_FRACTION: f64 = 0.9;
/// mistral.rs's default PagedAttention block size.
const DEFAULT_PA_BLOCK: usize = 32;
/// Sequences the scheduler may run at once. mistral.rs's builders default to 32; the benchmark's
/// batches go up to 64 rows and must run as one batch, so the default here is larger.
const DEFAULT_MAX_NUM_SEQS: usize = 256;

pub struct Engine {
    /// Never read, but owned: dropping it stops mistral.rs's engine thread behind `sender`.
    _runner: Arc<MistralRs>,
    sender: mpsc::Sender<Request>,
    info: EngineInfo,
    vocab_size: usize,
    max_seq_len: Option<usize>,
    memory_bytes: Option<u64>,
    next_id: std::sync::atomic::AtomicUsize,
}

/// Settings read from `load.options` (unknown keys are ignored, as the protocol says).
struct Options {
    threads: Option<usize>,
    paged_attention: Option<bool>,
    pa_memory_fraction: Option<f64>,
    pa_memory_mb: Option<usize>,
    pa_block_size: usize,
    max_num_seqs: usize,
}

impl Options {
    fn parse(o: &Map<String, Value>) -> Result<Options, EngineError> {
        let positive = |key: &str| -> Result<Option<usize>, EngineError> {
            match o.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .filter(|&n| n >= 1)
                    .map(|n| Some(n as usize))
                    .ok_or_else(|| EngineError::bad_request(format!("options.{key} must be a positive integer, not {v}"))),
            }
        };
        let paged_attention = match o.get("paged_attention") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => return Err(EngineError::bad_request(format!("options.paged_attention must be true or false, not {v}"))),
        };
        let pa_memory_fraction = match o.get("pa_memory_fraction") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_f64()
                    .filter(|f| *f > 0.0 && *f <= 1.0)
                    .ok_or_else(|| EngineError::bad_request(format!("options.pa_memory_fraction must be in (0, 1], not {v}")))?,
            ),
        };
        let pa_block_size = positive("pa_block_size")?.unwrap_or(DEFAULT_PA_BLOCK);
        if ![8, 16, 32].contains(&pa_block_size) {
            return Err(EngineError::bad_request(format!(
                "options.pa_block_size must be 8, 16 or 32 (mistral.rs's CUDA kernels), not {pa_block_size}"
            )));
        }
        Ok(Options {
            threads: positive("threads")?,
            paged_attention,
            pa_memory_fraction,
            pa_memory_mb: positive("pa_memory_mb")?,
            pa_block_size,
            max_num_seqs: positive("max_num_seqs")?.unwrap_or(DEFAULT_MAX_NUM_SEQS),
        })
    }
}

fn parse_device(device: &str) -> Result<(Device, String), EngineError> {
    if device == "cpu" {
        return Ok((Device::Cpu, "cpu".into()));
    }
    let Some(n) = device.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) else {
        return Err(EngineError::bad_request(format!("device must be \"cpu\" or \"cuda:N\", not {device:?}")));
    };
    if !cfg!(feature = "cuda") {
        return Err(EngineError::unsupported(format!(
            "this mistral-rs-bench was built without the `cuda` feature and cannot use {device}"
        )));
    }
    let dev = Device::new_cuda(n).map_err(|e| EngineError::unsupported(format!("cannot open {device}: {e}")))?;
    Ok((dev, format!("cuda:{n}")))
}

/// Resident set size from /proc (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn classify(message: String) -> EngineError {
    let lower = message.to_lowercase();
    if lower.contains("out of memory") || lower.contains("out_of_memory") {
        EngineError::new(ErrorKind::OutOfMemory, message)
    } else {
        EngineError::internal(message)
    }
}

impl Engine {
    pub async fn load(req: &LoadRequest) -> Result<Engine, EngineError> {
        if req.protocol != PROTOCOL_VERSION {
            return Err(EngineError::unsupported(format!(
                "runner speaks protocol {}, this engine speaks {PROTOCOL_VERSION}",
                req.protocol
            )));
        }
        let opts = Options::parse(&req.options)?;
        let model_dir = std::path::Path::new(&req.model_path);
        for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
            if !model_dir.join(f).is_file() {
                return Err(EngineError::bad_request(format!("{}: no {f} there", model_dir.display())));
            }
        }
        let config_text = std::fs::read_to_string(model_dir.join("config.json"))
            .map_err(|e| EngineError::bad_request(format!("{}/config.json: {e}", model_dir.display())))?;
        let config: Value = serde_json::from_str(&config_text)
            .map_err(|e| EngineError::bad_request(format!("{}/config.json: {e}", model_dir.display())))?;
        let vocab_size = config["vocab_size"]
            .as_u64()
            .ok_or_else(|| EngineError::bad_request(format!("{}/config.json has no vocab_size", model_dir.display())))?
            as usize;
        // What no engine here can run is refused, naming the key; mistral.rs reads only the
        // transformers 4 form of config.json, so a transformers 5 one is handed over as that form.
        let normal = checkpoint::LlamaConfig::from_json(&config)
            .map_err(|e| EngineError::bad_request(format!("{}/config.json: {e}", model_dir.display())))?;
        normal
            .require_derived_head_dim("mistral.rs 0.8's llama")
            .map_err(|e| EngineError::unsupported(format!("{}/config.json: {e}", model_dir.display())))?;
        let view = normalised_view(model_dir, &config)?;
        let _view_guard = ViewDir(view.clone());

        let (device, device_name) = parse_device(&req.device)?;
        let on_cuda = !device.is_cpu();
        if let (false, Some(threads)) = (on_cuda, opts.threads) {
            // candle's CPU kernels size their pools from RAYON_NUM_THREADS; nothing has run yet.
            std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        }
        let dtype = match req.dtype {
            Dtype::F32 => ModelDType::F32,
            Dtype::Bf16 => ModelDType::BF16,
            Dtype::F16 => ModelDType::F16,
        };

        // PagedAttention exists only in CUDA (and Metal) builds of mistral.rs; on by default on CUDA.
        let paged = opts.paged_attention.unwrap_or(on_cuda);
        if paged && !on_cuda {
            return Err(EngineError::unsupported("mistral.rs has no PagedAttention on the CPU (options.paged_attention)"));
        }
        let pa_memory = match (opts.pa_memory_mb, opts.pa_memory_fraction) {
            (Some(mb), _) => MemoryGpuConfig::MbAmount(mb),
            (None, Some(f)) => MemoryGpuConfig::Utilization(f as f32),
            (None, None) => MemoryGpuConfig::Utilization(DEFAULT_PA_FRACTION as f32),
        };
        let pa_config = if paged {
            Some(
                PagedAttentionConfig::new(Some(opts.pa_block_size), pa_memory, PagedCacheType::Auto)
                    .map_err(|e| EngineError::bad_request(format!("PagedAttention settings: {e}")))?,
            )
        } else {
            None
        };

        let model_id = view.as_ref().map_or_else(|| req.model_path.clone(), |v| v.display().to_string());
        let load_device = device.clone();
        // The loader is synchronous (file reads, kernel set-up): keep it off the async workers, and
        // turn a panic inside mistral.rs into an error event instead of a dead process.
        let pipeline = tokio::task::spawn_blocking(move || {
            let loader = NormalLoaderBuilder::new(NormalSpecificConfig::default(), None, None, Some(model_id), false, None)
                .build(None)?;
            loader.load_model_from_hf(
                None,
                TokenSource::None,
                &dtype,
                &load_device,
                false,
                // Everything on the one device asked for (no automatic multi-GPU / CPU-offload split).
                DeviceMapSetting::dummy(),
                None,
                pa_config,
            )
        })
        .await
        .map_err(|e| EngineError::internal(format!("mistral.rs panicked while loading {}: {e}", req.model_path)))?
        // candle's errors carry their backtrace after the first line: the message is that line.
        .map_err(|e| classify(format!("mistral.rs could not load {}: {}", req.model_path, format!("{e:#}").lines().next().unwrap_or(""))))?;

        let (scheduler, pa_blocks) = scheduler_for(&*pipeline.lock().await, opts.max_num_seqs);
        let paged_in_force = pa_blocks.is_some();
        if paged && !paged_in_force {
            eprintln!("mistral-rs-bench: PagedAttention was asked for but mistral.rs turned it off for this model");
        }
        let runner = MistralRsBuilder::new(pipeline, scheduler, false, None)
            // Identical prompts in a batch must each be computed: no reuse of cached prefixes.
            .with_no_prefix_cache(true)
            // Exactly max_new_tokens per row: end-of-sequence tokens do not stop a sequence.
            .with_disable_eos_stop(true)
            .build()
            .await;
        let sender = runner
            .get_sender(None)
            .map_err(|e| EngineError::internal(format!("mistral.rs engine has no request channel: {e:?}")))?;
        let max_seq_len = runner.max_sequence_length(None).ok().flatten();

        let mut settings = Map::new();
        settings.insert("mistralrs".into(), MISTRALRS_VERSION.into());
        settings.insert("request".into(), "CompletionTokens (raw token ids, no chat template)".into());
        settings.insert(
            "sampling".into(),
            "temperature 0 (mistral.rs argmax), no top-k/top-p/min-p, no penalties; ties to the lowest index".into(),
        );
        settings.insert("eos_stop".into(), "disabled (MistralRsBuilder::with_disable_eos_stop)".into());
        settings.insert("prefix_cache".into(), "off (MistralRsBuilder::with_no_prefix_cache)".into());
        settings.insert("scheduler".into(), if paged_in_force { "paged-attention" } else { "default (fixed)" }.into());
        settings.insert("max_num_seqs".into(), opts.max_num_seqs.into());
        settings.insert("batching".into(), "one request per row, submitted together; continuous batching".into());
        if let Some((block, blocks)) = pa_blocks {
            let budget = match pa_memory {
                MemoryGpuConfig::MbAmount(mb) => json!({ "mb": mb }),
                MemoryGpuConfig::Utilization(f) => json!({ "gpu_fraction": f }),
                MemoryGpuConfig::ContextSize(n) => json!({ "context_tokens": n }),
            };
            settings.insert(
                "paged_attention".into(),
                json!({ "enabled": true, "block_size": block, "gpu_blocks": blocks, "kv_tokens": block * blocks,
                        "budget": budget, "cache_type": "auto (model dtype)" }),
            );
        } else {
            settings.insert(
                "paged_attention".into(),
                json!({ "enabled": false, "why": if on_cuda { "options.paged_attention = false" } else { "not available on the CPU" } }),
            );
            settings.insert("kv_cache".into(), "mistral.rs normal cache (contiguous, grown in chunks)".into());
        }
        settings.insert("flash_attn".into(), "off (the feature clones CUTLASS at build time; cannot build offline)".into());
        settings.insert("isq".into(), "none (weights in the compute dtype)".into());
        settings.insert("device_map".into(), "whole model on the one device".into());
        if !on_cuda {
            let threads = std::env::var("RAYON_NUM_THREADS")
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
                .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
            settings.insert("threads".into(), threads.into());
        }
        if on_cuda {
            settings.insert("memory_bytes".into(), "device total − free after load (includes the PagedAttention pool)".into());
        }

        let info = EngineInfo {
            name: if on_cuda { "mistral_rs_cuda" } else { "mistral_rs_cpu" }.into(),
            version: format!("mistral-rs-bench {} (mistralrs {MISTRALRS_VERSION})", env!("CARGO_PKG_VERSION")),
            backend: if on_cuda { "cuda" } else { "cpu" }.into(),
            device: device_name,
            dtype: req.dtype,
            settings,
        };
        let mut engine = Engine {
            _runner: runner,
            sender,
            info,
            vocab_size,
            max_seq_len,
            memory_bytes: None,
            next_id: std::sync::atomic::AtomicUsize::new(0),
        };
        // One short request through the whole path (prefill, a decode step, sampling), so first-use
        // costs (kernel loading; on CUDA the driver compiling PTX) fall in load_ns, not in a
        // measured request. The runner's own warm-up requests come on top.
        let warm: Vec<u32> = (0..3).map(|t| t.min(vocab_size as u32 - 1)).collect();
        engine
            .run("warm-up", &warm, 2, 1, false, false, Instant::now(), None)
            .await
            .map_err(|e| EngineError::new(e.kind, format!("warm-up request after loading failed: {}", e.message)))?;
        engine.memory_bytes = if on_cuda {
            match (MemoryUsage.get_total_memory(&device), MemoryUsage.get_memory_available(&device)) {
                (Ok(total), Ok(free)) => Some(total.saturating_sub(free) as u64),
                _ => None,
            }
        } else {
            resident_bytes()
        };

        Ok(engine)
    }

    pub fn ready(&self, load_ns: u64) -> Ready {
        Ready { protocol: PROTOCOL_VERSION, engine: self.info.clone(), load_ns, memory_bytes: self.memory_bytes }
    }

    fn check(&self, prompt: &[u32], new_tokens: usize, batch: usize) -> Result<(), EngineError> {
        if prompt.is_empty() {
            return Err(EngineError::bad_request("empty prompt"));
        }
        if new_tokens == 0 || batch == 0 {
            return Err(EngineError::bad_request("max_new_tokens (steps) and batch_size must be at least 1"));
        }
        if let Some(&t) = prompt.iter().find(|&&t| t as usize >= self.vocab_size) {
            return Err(EngineError::bad_request(format!("token id {t} is outside the vocabulary ({})", self.vocab_size)));
        }
        if let Some(max) = self.max_seq_len {
            if prompt.len() + new_tokens > max {
                return Err(EngineError::bad_request(format!(
                    "prompt ({}) + new tokens ({new_tokens}) exceed the model's {max} positions",
                    prompt.len()
                )));
            }
        }
        Ok(())
    }

    pub async fn generate(&self, req: GenerateRequest, received: Instant, out: &Out) {
        let event = match self.check(&req.prompt, req.max_new_tokens, req.batch_size) {
            Err(e) => error(&req.id, e),
            Ok(()) => {
                let run = self.run(&req.id, &req.prompt, req.max_new_tokens, req.batch_size, req.stream, false, received, Some(out));
                match run.await {
                    Err(e) => error(&req.id, e),
                    Ok(r) => Event::Done(Done {
                        id: req.id.clone(),
                        tokens: r.rows,
                        prompt_tokens: req.prompt.len(),
                        batch_size: req.batch_size,
                        queue_ns: r.queue_ns,
                        ttft_ns: r.ttft_ns,
                        token_ns: r.token_ns,
                        total_ns: r.total_ns,
                    }),
                }
            }
        };
        out.emit(&event);
    }

    pub async fn logits(&self, req: LogitsRequest, received: Instant, out: &Out) {
        let event = match self.check(&req.prompt, req.steps, 1) {
            Err(e) => error(&req.id, e),
            Ok(()) => match self.run(&req.id, &req.prompt, req.steps, 1, false, true, received, None).await {
                Err(e) => error(&req.id, e),
                Ok(mut r) => match r.logits.take() {
                    None => error(&req.id, EngineError::internal("mistral.rs ran the request but no logits were seen")),
                    Some(logits) if logits.len() != self.vocab_size => error(
                        &req.id,
                        EngineError::internal(format!("logits have {} entries, vocabulary {}", logits.len(), self.vocab_size)),
                    ),
                    Some(logits) => Event::Logits(LogitsResult {
                        id: req.id.clone(),
                        logits,
                        tokens: r.rows.swap_remove(0),
                        top2_gaps: Vec::new(),
                    }),
                },
            },
        };
        out.emit(&event);
    }

    /// Submits `batch` copies of `prompt` (one mistral.rs request per row, all put in its request
    /// channel in one burst) and collects exactly `n` greedy tokens per row with their times.
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        id: &str,
        prompt: &[u32],
        n: usize,
        batch: usize,
        stream: bool,
        want_logits: bool,
        received: Instant,
        out: Option<&Out>,
    ) -> Result<RunResult, EngineError> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let mut requests = Vec::with_capacity(batch);
        let mut responses = Vec::with_capacity(batch);
        for row in 0..batch {
            let (resp_tx, resp_rx) = mpsc::channel::<Response>(4);
            let recorder = Recorder { row, prompt_len: prompt.len(), want_logits: want_logits && row == 0, tx: tx.clone() };
            let sampling = SamplingParams {
                // Some(0.0) is what selects mistral.rs's argmax path; None would mean temperature 1.
                temperature: Some(0.0),
                top_k: None,
                top_p: None,
                min_p: None,
                top_n_logprobs: 0,
                frequency_penalty: None,
                presence_penalty: None,
                repetition_penalty: None,
                stop_toks: None,
                max_len: Some(n),
                logits_bias: None,
                n_choices: 1,
                dry_params: None,
            };
            requests.push(Request::Normal(Box::new(NormalRequest {
                messages: RequestMessage::CompletionTokens(prompt.to_vec()),
                sampling_params: sampling,
                response: resp_tx,
                return_logprobs: false,
                is_streaming: false,
                id: self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                constraint: Constraint::None,
                suffix: None,
                tools: None,
                tool_choice: None,
                logits_processors: Some(vec![Arc::new(recorder)]),
                return_raw_logits: false,
                web_search_options: None,
                model_id: None,
                truncate_sequence: false,
            })));
            responses.push(resp_rx);
        }

        // The clock starts at the hand-off to mistral.rs.
        let started = Instant::now();
        let queue_ns = started.saturating_duration_since(received).as_nanos() as u64;
        let mut pending = requests.into_iter();
        let mut submitted = 0;
        // try_send in a tight loop: every row is in mistral.rs's channel before its engine loop can
        // schedule a step, so the rows are prefilled and decoded as one batch.
        for r in pending.by_ref() {
            match self.sender.try_send(r) {
                Ok(()) => submitted += 1,
                Err(mpsc::error::TrySendError::Full(r)) => {
                    // A full channel (10,000 requests) only slows the hand-off down.
                    if self.sender.send(r).await.is_err() {
                        return Err(EngineError::internal("mistral.rs's engine has stopped"));
                    }
                    submitted += 1;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    return Err(EngineError::internal("mistral.rs's engine has stopped"));
                }
            }
        }
        debug_assert_eq!(submitted, batch);
        // One forwarding task per row turns mistral.rs's final response into a message on the same
        // channel; a row's Step messages are sent before its response exists, so they come first.
        for (row, mut resp_rx) in responses.into_iter().enumerate() {
            let tx = tx.clone();
            tokio::spawn(async move {
                let result = match resp_rx.recv().await {
                    None => Err(EngineError::internal("mistral.rs dropped the request without an answer")),
                    Some(resp) => response_result(resp),
                };
                let _ = tx.send(Msg::Finished { row, result });
            });
        }
        drop(tx);

        let mut rows: Vec<Vec<u32>> = vec![Vec::with_capacity(n); batch];
        let mut step_at: Vec<Option<Instant>> = vec![None; n];
        let mut step_count = vec![0usize; n];
        let mut finish_reasons: Vec<Option<String>> = vec![None; batch];
        let mut failure: Option<EngineError> = None;
        let mut logits = None;
        let mut finished = 0;
        let mut next_event = 0;
        while finished < batch {
            let Some(msg) = rx.recv().await else {
                failure.get_or_insert_with(|| EngineError::internal("lost contact with mistral.rs's rows"));
                break;
            };
            match msg {
                Msg::Finished { row, result } => {
                    finished += 1;
                    match result {
                        Ok(reason) => finish_reasons[row] = Some(reason),
                        Err(e) => {
                            failure.get_or_insert(e);
                        }
                    }
                }
                Msg::Step { row, step, token, at, logits: l } => {
                    if step != rows[row].len() || step >= n {
                        failure.get_or_insert_with(|| {
                            EngineError::internal(format!(
                                "row {row}: mistral.rs sampled step {step} after {} tokens (asked for {n})",
                                rows[row].len()
                            ))
                        });
                        continue;
                    }
                    rows[row].push(token);
                    if l.is_some() {
                        logits = l;
                    }
                    step_count[step] += 1;
                    step_at[step] = Some(step_at[step].map_or(at, |t: Instant| t.max(at)));
                    // A step is done when every row has its token; stream steps in order.
                    if let Some(out) = out.filter(|_| stream) {
                        while next_event < n && step_count[next_event] == batch {
                            let t = step_at[next_event].expect("a complete step has a time");
                            out.emit(&Event::Token(TokenEvent {
                                id: id.to_string(),
                                step: next_event,
                                tokens: rows.iter().map(|r| r[next_event]).collect(),
                                t_ns: since(started, t),
                            }));
                            next_event += 1;
                        }
                    }
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        for (row, tokens) in rows.iter().enumerate() {
            if tokens.len() != n {
                return Err(EngineError::internal(format!(
                    "row {row}: mistral.rs stopped after {} of {n} tokens (finish reason {:?})",
                    tokens.len(),
                    finish_reasons[row]
                )));
            }
        }
        let times: Vec<Instant> = step_at.into_iter().map(|t| t.expect("every step has a time")).collect();
        let token_ns = times.windows(2).map(|w| w[1].saturating_duration_since(w[0]).as_nanos() as u64).collect();
        let ttft_ns = since(started, times[0]);
        let total_ns = since(started, times[n - 1]);
        Ok(RunResult { rows, queue_ns, ttft_ns, token_ns, total_ns, logits })
    }
}

/// The scheduler mistral.rs's own builders pick: PagedAttention's when the pipeline set up a
/// PagedAttention cache, else the default one with a fixed number of sequences. Also returns the
/// PagedAttention (block size, GPU blocks) when in force.
fn scheduler_for<P: ?Sized + Pipeline>(pipeline: &P, max_num_seqs: usize) -> (SchedulerConfig, Option<(usize, usize)>) {
    match pipeline.get_metadata().cache_config.clone() {
        Some(config) => {
            let blocks = (config.block_size, config.num_gpu_blocks);
            (SchedulerConfig::PagedAttentionMeta { max_num_seqs, config }, Some(blocks))
        }
        None => (
            SchedulerConfig::DefaultScheduler {
                method: DefaultSchedulerMethod::Fixed(
                    std::num::NonZeroUsize::new(max_num_seqs).expect("max_num_seqs is at least 1"),
                ),
            },
            None,
        ),
    }
}

struct RunResult {
    rows: Vec<Vec<u32>>,
    queue_ns: u64,
    ttft_ns: u64,
    token_ns: Vec<u64>,
    total_ns: u64,
    logits: Option<Vec<f32>>,
}

fn since(start: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(start).as_nanos() as u64
}

fn error(id: &str, e: EngineError) -> Event {
    Event::Error(ErrorEvent { id: Some(id.to_string()), kind: e.kind, message: e.message })
}

/// mistral.rs's final answer for one row: the finish reason, or an error with its kind.
fn response_result(resp: Response) -> Result<String, EngineError> {
    match resp {
        Response::CompletionDone(c) => Ok(c.choices.first().map(|c| c.finish_reason.clone()).unwrap_or_default()),
        Response::ValidationError(e) => Err(EngineError::bad_request(format!("mistral.rs refused the request: {e}"))),
        Response::InternalError(e) => Err(classify(format!("mistral.rs failed: {e}"))),
        Response::CompletionModelError(msg, _) | Response::ModelError(msg, _) => {
            Err(classify(format!("mistral.rs model error: {msg}")))
        }
        Response::Done(_) | Response::Chunk(_) | Response::CompletionChunk(_) => {
            Err(EngineError::internal("mistral.rs answered a token-id completion with a chat/stream response"))
        }
        _ => Err(EngineError::internal("mistral.rs answered with an unexpected response kind")),
    }
}

/// A folder beside nothing: `config.json` in the transformers 4 form and links to every other file
/// of the checkpoint. None when the config is already in that form.
fn normalised_view(model_dir: &std::path::Path, config: &Value) -> Result<Option<std::path::PathBuf>, EngineError> {
    let normal = checkpoint::in_transformers_4_form(config);
    if &normal == config {
        return Ok(None);
    }
    let io = |what: &str, e: std::io::Error| EngineError::internal(format!("normalised view of {}: {what}: {e}", model_dir.display()));
    let view = std::env::temp_dir().join(format!("mistral-rs-bench-view-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&view);
    std::fs::create_dir_all(&view).map_err(|e| io("creating the folder", e))?;
    let source = std::fs::canonicalize(model_dir).map_err(|e| io("resolving the checkpoint", e))?;
    for entry in std::fs::read_dir(&source).map_err(|e| io("listing the checkpoint", e))? {
        let entry = entry.map_err(|e| io("listing the checkpoint", e))?;
        if entry.file_name() != "config.json" {
            std::os::unix::fs::symlink(entry.path(), view.join(entry.file_name())).map_err(|e| io("linking a file", e))?;
        }
    }
    std::fs::write(view.join("config.json"), serde_json::to_string_pretty(&normal).expect("JSON serialises")).map_err(|e| io("writing config.json", e))?;
    Ok(Some(view))
}

/// Removes the normalised view once the model is loaded (mistral.rs has read or mapped every file).
struct ViewDir(Option<std::path::PathBuf>);

impl Drop for ViewDir {
    fn drop(&mut self) {
        if let Some(v) = &self.0 {
            let _ = std::fs::remove_dir_all(v);
        }
    }
}
