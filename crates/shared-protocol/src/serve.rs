//! The engine-side loop: a reader thread queues commands as they arrive (several requests may be in
//! flight), the main thread answers them in arrival order with the engine's [`Model`].

use std::io::{BufRead, Write};
use std::sync::mpsc;
use std::time::Instant;

use crate::messages::*;

/// What an engine implements. Everything else (parsing, queueing, the greedy loop, timing) is shared.
pub trait Model: Sized {
    fn load(req: &LoadRequest) -> Result<Self, EngineError>;
    fn info(&self) -> EngineInfo;
    /// Memory held after loading, if the engine can tell.
    fn memory_bytes(&self) -> Option<u64> {
        None
    }
    /// Starts a new batch: forgets any previous KV cache, makes room for `capacity` positions per
    /// sequence, runs every prompt position and returns each sequence's greedy next token (and, when
    /// `want_logits`, the logits of the last position). Returning tokens to the host is the sync point:
    /// an engine on a device must have finished the step when this returns.
    fn prefill(&mut self, prompts: &[Vec<u32>], capacity: usize, want_logits: bool) -> Result<Step, EngineError>;
    /// Appends one token per sequence and returns the next greedy token of each.
    fn decode_step(&mut self, tokens: &[u32], want_logits: bool) -> Result<Step, EngineError>;
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub next_tokens: Vec<u32>,
    pub logits: Option<Vec<Vec<f32>>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EngineError {
    pub kind: ErrorKind,
    pub message: String,
}

impl EngineError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        EngineError { kind, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for EngineError {}

/// Index of the largest value; the first one on ties, as `torch.argmax` does.
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// Serves the protocol on stdin/stdout until `shutdown` or end of input. Returns the exit code.
pub fn serve<M: Model>() -> std::process::ExitCode {
    let stdin = std::io::BufReader::new(std::io::stdin());
    let stdout = std::io::stdout();
    match serve_io::<M>(stdin, stdout.lock()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("engine: cannot write to the runner: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

struct Queued {
    line_no: usize,
    line: String,
    received: Instant,
}

/// [`serve`] over any reader and writer (tests drive it in memory).
pub fn serve_io<M: Model>(input: impl BufRead + Send + 'static, mut out: impl Write) -> std::io::Result<()> {
    let (tx, rx) = mpsc::channel::<Queued>();
    std::thread::spawn(move || {
        for (i, line) in input.lines().enumerate() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            if tx.send(Queued { line_no: i + 1, line, received: Instant::now() }).is_err() {
                break;
            }
        }
    });

    let mut model: Option<M> = None;
    let mut emit = |out: &mut dyn Write, e: Event| -> std::io::Result<()> {
        writeln!(out, "{}", e.to_line())?;
        out.flush()
    };
    for q in rx {
        let cmd: Command = match serde_json::from_str(&q.line) {
            Ok(c) => c,
            Err(e) => {
                let message = format!("input line {}: not a protocol command: {e}", q.line_no);
                emit(&mut out, Event::Error(ErrorEvent { id: None, kind: ErrorKind::BadRequest, message }))?;
                continue;
            }
        };
        match cmd {
            Command::Shutdown => break,
            Command::Load(req) => {
                let started = Instant::now();
                let event = if req.protocol != PROTOCOL_VERSION {
                    error(
                        None,
                        EngineError::unsupported(format!("runner speaks protocol {}, this engine speaks {PROTOCOL_VERSION}", req.protocol)),
                    )
                } else {
                    match M::load(&req) {
                        Ok(m) => {
                            let ready = Ready {
                                protocol: PROTOCOL_VERSION,
                                engine: m.info(),
                                load_ns: started.elapsed().as_nanos() as u64,
                                memory_bytes: m.memory_bytes(),
                            };
                            model = Some(m);
                            Event::Ready(ready)
                        }
                        Err(e) => error(None, e),
                    }
                };
                emit(&mut out, event)?;
            }
            Command::Generate(req) => {
                let id = req.id.clone();
                let event = match model.as_mut() {
                    None => error(Some(id), EngineError::bad_request("generate before a successful load")),
                    Some(m) => match generate(m, &req, q.received, &mut out, &mut emit) {
                        Ok(done) => Event::Done(done),
                        Err(GenerateFailure::Engine(e)) => error(Some(id), e),
                        Err(GenerateFailure::Io(e)) => return Err(e),
                    },
                };
                emit(&mut out, event)?;
            }
            Command::Logits(req) => {
                let id = req.id.clone();
                let event = match model.as_mut() {
                    None => error(Some(id), EngineError::bad_request("logits before a successful load")),
                    Some(m) => match logits(m, &req) {
                        Ok(r) => Event::Logits(r),
                        Err(e) => error(Some(id), e),
                    },
                };
                emit(&mut out, event)?;
            }
        }
    }
    Ok(())
}

fn error(id: Option<String>, e: EngineError) -> Event {
    Event::Error(ErrorEvent { id, kind: e.kind, message: e.message })
}

enum GenerateFailure {
    Engine(EngineError),
    Io(std::io::Error),
}

impl From<EngineError> for GenerateFailure {
    fn from(e: EngineError) -> Self {
        GenerateFailure::Engine(e)
    }
}

fn check_prompt(prompt: &[u32]) -> Result<(), EngineError> {
    if prompt.is_empty() {
        return Err(EngineError::bad_request("empty prompt"));
    }
    Ok(())
}

fn check_step(step: &Step, batch: usize) -> Result<(), EngineError> {
    if step.next_tokens.len() != batch {
        return Err(EngineError::internal(format!("engine returned {} tokens for a batch of {batch}", step.next_tokens.len())));
    }
    Ok(())
}

fn generate<M: Model, W: Write>(
    model: &mut M,
    req: &GenerateRequest,
    received: Instant,
    out: &mut W,
    emit: &mut impl FnMut(&mut dyn Write, Event) -> std::io::Result<()>,
) -> Result<Done, GenerateFailure> {
    check_prompt(&req.prompt)?;
    if req.max_new_tokens == 0 || req.batch_size == 0 {
        return Err(EngineError::bad_request("max_new_tokens and batch_size must be at least 1").into());
    }
    let started = Instant::now();
    let queue_ns = (started - received).as_nanos() as u64;
    let prompts = vec![req.prompt.clone(); req.batch_size];
    let capacity = req.prompt.len() + req.max_new_tokens;

    let mut rows: Vec<Vec<u32>> = vec![Vec::with_capacity(req.max_new_tokens); req.batch_size];
    let mut token_ns = Vec::with_capacity(req.max_new_tokens.saturating_sub(1));
    let mut step = model.prefill(&prompts, capacity, false)?;
    check_step(&step, req.batch_size)?;
    let mut last = started.elapsed();
    let ttft_ns = last.as_nanos() as u64;
    for k in 0..req.max_new_tokens {
        for (row, &t) in rows.iter_mut().zip(&step.next_tokens) {
            row.push(t);
        }
        if req.stream {
            let ev =
                Event::Token(TokenEvent { id: req.id.clone(), step: k, tokens: step.next_tokens.clone(), t_ns: last.as_nanos() as u64 });
            emit(out, ev).map_err(GenerateFailure::Io)?;
        }
        if k + 1 == req.max_new_tokens {
            break;
        }
        step = model.decode_step(&step.next_tokens, false)?;
        check_step(&step, req.batch_size)?;
        let now = started.elapsed();
        token_ns.push((now - last).as_nanos() as u64);
        last = now;
    }
    Ok(Done {
        id: req.id.clone(),
        tokens: rows,
        prompt_tokens: req.prompt.len(),
        batch_size: req.batch_size,
        queue_ns,
        ttft_ns,
        token_ns,
        total_ns: last.as_nanos() as u64,
    })
}

fn logits<M: Model>(model: &mut M, req: &LogitsRequest) -> Result<LogitsResult, EngineError> {
    check_prompt(&req.prompt)?;
    if req.steps == 0 {
        return Err(EngineError::bad_request("steps must be at least 1"));
    }
    let mut step = model.prefill(std::slice::from_ref(&req.prompt), req.prompt.len() + req.steps, true)?;
    check_step(&step, 1)?;
    let logits =
        step.logits.take().and_then(|mut l| l.pop()).ok_or_else(|| EngineError::internal("prefill asked for logits returned none"))?;
    let mut tokens = vec![step.next_tokens[0]];
    while tokens.len() < req.steps {
        step = model.decode_step(&[*tokens.last().unwrap()], false)?;
        check_step(&step, 1)?;
        tokens.push(step.next_tokens[0]);
    }
    Ok(LogitsResult { id: req.id.clone(), logits, tokens, top2_gaps: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Next token = (last token + 1) mod 10; logits put the maximum there. A prompt ending in 13 runs out of memory.
    struct Counter {
        last: Vec<u32>,
    }

    impl Counter {
        fn step(&mut self, want_logits: bool) -> Result<Step, EngineError> {
            if self.last.contains(&13) {
                return Err(EngineError::new(ErrorKind::OutOfMemory, "token 13 is unlucky"));
            }
            let next: Vec<u32> = self.last.iter().map(|t| (t + 1) % 10).collect();
            let logits = want_logits.then(|| next.iter().map(|&n| (0..10).map(|i| if i == n { 1.0 } else { 0.0 }).collect()).collect());
            self.last = next.clone();
            Ok(Step { next_tokens: next, logits })
        }
    }

    impl Model for Counter {
        fn load(req: &LoadRequest) -> Result<Self, EngineError> {
            if req.model_path == "missing" {
                return Err(EngineError::bad_request("no such model"));
            }
            Ok(Counter { last: vec![] })
        }
        fn info(&self) -> EngineInfo {
            EngineInfo {
                name: "counter".into(),
                version: "0".into(),
                backend: "test".into(),
                device: "cpu".into(),
                dtype: Dtype::F32,
                settings: Default::default(),
            }
        }
        fn prefill(&mut self, prompts: &[Vec<u32>], _cap: usize, want_logits: bool) -> Result<Step, EngineError> {
            self.last = prompts.iter().map(|p| *p.last().unwrap()).collect();
            self.step(want_logits)
        }
        fn decode_step(&mut self, tokens: &[u32], want_logits: bool) -> Result<Step, EngineError> {
            self.last = tokens.to_vec();
            self.step(want_logits)
        }
    }

    fn run(lines: &[&str]) -> Vec<Event> {
        let input = std::io::Cursor::new(lines.join("\n").into_bytes());
        let mut out = Vec::new();
        serve_io::<Counter>(input, &mut out).unwrap();
        String::from_utf8(out).unwrap().lines().map(|l| Event::from_line(l).unwrap()).collect()
    }

    const LOAD: &str = r#"{"cmd":"load","protocol":1,"model_path":"m","device":"cpu","dtype":"f32"}"#;

    #[test]
    fn generates_exactly_n_tokens_per_row_with_timings_and_stream_events() {
        let events = run(&[LOAD, r#"{"cmd":"generate","id":"a","prompt":[7],"max_new_tokens":4,"batch_size":2,"stream":true}"#]);
        assert!(matches!(&events[0], Event::Ready(r) if r.engine.name == "counter"));
        let steps: Vec<usize> = events
            .iter()
            .filter_map(|e| match e {
                Event::Token(t) => Some(t.step),
                _ => None,
            })
            .collect();
        assert_eq!(steps, vec![0, 1, 2, 3]);
        let Event::Done(done) = events.last().unwrap() else { panic!("{events:?}") };
        assert_eq!(done.tokens, vec![vec![8, 9, 0, 1], vec![8, 9, 0, 1]]);
        assert_eq!(done.token_ns.len(), 3);
        assert_eq!(done.total_ns, done.ttft_ns + done.token_ns.iter().sum::<u64>());
    }

    #[test]
    fn queued_requests_are_answered_in_order_and_errors_do_not_stop_the_loop() {
        let events = run(&[
            r#"{"cmd":"generate","id":"early","prompt":[1],"max_new_tokens":1}"#,
            LOAD,
            "this is not json",
            r#"{"cmd":"generate","id":"oom","prompt":[13],"max_new_tokens":3}"#,
            r#"{"cmd":"generate","id":"empty","prompt":[],"max_new_tokens":3}"#,
            r#"{"cmd":"logits","id":"l","prompt":[3],"steps":3}"#,
            r#"{"cmd":"shutdown"}"#,
            r#"{"cmd":"generate","id":"after","prompt":[1],"max_new_tokens":1}"#,
        ]);
        let summary: Vec<String> = events
            .iter()
            .map(|e| match e {
                Event::Error(err) => format!("{}:{:?}", err.id.clone().unwrap_or_default(), err.kind),
                Event::Ready(_) => "ready".into(),
                Event::Logits(l) => format!("{}:{:?}", l.id, l.tokens),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(summary, vec!["early:BadRequest", "ready", ":BadRequest", "oom:OutOfMemory", "empty:BadRequest", "l:[4, 5, 6]",]);
        let Event::Logits(l) = &events[5] else { unreachable!() };
        assert_eq!(argmax(&l.logits), 4);
    }

    #[test]
    fn failed_load_and_protocol_mismatch_are_reported() {
        let events = run(&[
            r#"{"cmd":"load","protocol":1,"model_path":"missing","device":"cpu","dtype":"f32"}"#,
            r#"{"cmd":"load","protocol":99,"model_path":"m","device":"cpu","dtype":"f32"}"#,
        ]);
        assert!(matches!(&events[0], Event::Error(e) if e.kind == ErrorKind::BadRequest && e.message == "no such model"));
        assert!(matches!(&events[1], Event::Error(e) if e.kind == ErrorKind::Unsupported && e.message.contains("99")));
    }

    #[test]
    fn argmax_takes_the_first_of_equal_maxima() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, -5.0]), 1);
    }
}
