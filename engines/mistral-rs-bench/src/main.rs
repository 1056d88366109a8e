//! mistral-rs-bench: Llama-3 inference with mistral.rs behind the shared protocol.
//!
//! mistral.rs is a serving engine with its own scheduler (continuous batching, PagedAttention on
//! CUDA), so this program does not use `shared_protocol::serve`'s one-request-at-a-time loop. A
//! reader thread turns stdin lines into commands; every `generate`/`logits` is handed to mistral.rs
//! at once as raw token ids (`RequestMessage::CompletionTokens`: no chat template) and answered by
//! its own tokio task, so several requests are in flight together and mistral.rs batches them.
//!
//! Token ids and their times come from a per-row logits processor (see [`recorder`]): mistral.rs's
//! responses carry text, not token ids, and its streaming chunks are held back while the text is
//! not valid UTF-8, so neither could time every step.

mod engine;
mod out;
mod recorder;

use std::io::BufRead;
use std::time::Instant;

use shared_protocol::{Command, ErrorEvent, ErrorKind, Event};

/// One stdin line and when the reader thread had it.
struct Line {
    no: usize,
    text: String,
    received: Instant,
}

fn main() -> std::process::ExitCode {
    // Everything that is not a protocol event goes to stderr, including stray prints from libraries.
    let out = match out::Out::take_stdout() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mistral-rs-bench: cannot set up stdout: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    init_logging();
    // mistral.rs must never reach for the Hugging Face hub: the model is a local directory.
    std::env::set_var("HF_HUB_OFFLINE", "1");

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-io")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mistral-rs-bench: cannot start the tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Line>();
    std::thread::Builder::new()
        .name("stdin-reader".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            for (i, line) in stdin.lock().lines().enumerate() {
                let Ok(text) = line else { break };
                if text.trim().is_empty() {
                    continue;
                }
                if tx.send(Line { no: i + 1, text, received: Instant::now() }).is_err() {
                    break;
                }
            }
        })
        .expect("spawning the stdin reader");

    let ok = runtime.block_on(serve(rx, out.clone()));
    out.flush();
    // mistral.rs's engine thread does not stop on its own; the answers are all written, so leave.
    std::process::exit(if ok { 0 } else { 1 });
}

/// mistral.rs logs through `tracing`; its own `initialize_logging` would print to stdout, so the
/// subscriber is installed here, on stderr. `RUST_LOG` overrides the default level (info).
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::builder()
        .with_default_directive(tracing_subscriber::filter::LevelFilter::INFO.into())
        .from_env_lossy();
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).try_init();
}

/// The command loop. Returns false only if stdout broke.
async fn serve(mut rx: tokio::sync::mpsc::UnboundedReceiver<Line>, out: out::Out) -> bool {
    let mut engine: Option<std::sync::Arc<engine::Engine>> = None;
    let mut in_flight = tokio::task::JoinSet::new();
    while let Some(line) = rx.recv().await {
        // Reap finished request tasks as we go (their answers are already written).
        while in_flight.try_join_next().is_some() {}
        let cmd: Command = match serde_json::from_str(&line.text) {
            Ok(c) => c,
            Err(e) => {
                out.emit(&Event::Error(ErrorEvent {
                    id: None,
                    kind: ErrorKind::BadRequest,
                    message: format!("input line {}: not a protocol command: {e}", line.no),
                }));
                continue;
            }
        };
        match cmd {
            Command::Shutdown => break,
            Command::Load(req) => {
                // A second load replaces the first once the requests in flight are answered.
                while in_flight.join_next().await.is_some() {}
                engine = None;
                let started = Instant::now();
                match engine::Engine::load(&req).await {
                    Ok(e) => {
                        out.emit(&Event::Ready(e.ready(started.elapsed().as_nanos() as u64)));
                        engine = Some(std::sync::Arc::new(e));
                    }
                    Err(e) => out.emit(&Event::Error(ErrorEvent { id: None, kind: e.kind, message: e.message })),
                }
            }
            Command::Generate(req) => match &engine {
                None => out.emit(&error_event(&req.id, ErrorKind::BadRequest, "generate before a successful load")),
                Some(e) => {
                    let (e, out) = (e.clone(), out.clone());
                    in_flight.spawn(async move { e.generate(req, line.received, &out).await });
                }
            },
            Command::Logits(req) => match &engine {
                None => out.emit(&error_event(&req.id, ErrorKind::BadRequest, "logits before a successful load")),
                Some(e) => {
                    let (e, out) = (e.clone(), out.clone());
                    in_flight.spawn(async move { e.logits(req, line.received, &out).await });
                }
            },
        }
    }
    // Shutdown or end of input: answer everything already accepted, then stop.
    while in_flight.join_next().await.is_some() {}
    out.ok()
}

fn error_event(id: &str, kind: ErrorKind, message: impl Into<String>) -> Event {
    Event::Error(ErrorEvent { id: Some(id.to_string()), kind, message: message.into() })
}
