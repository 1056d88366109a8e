//! One engine process: started with duct, commands on its stdin, events from its stdout (read by
//! a thread so every wait has a timeout), stderr appended to its log file.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use shared_protocol::{Command, Done, Event, GenerateRequest, LoadRequest, LogitsRequest, LogitsResult, Ready};

use crate::registry::Resolved;

/// Why an exchange with an engine did not produce an answer. Each becomes a recorded failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Fault {
    #[error("engine error ({kind}): {message}")]
    Engine { kind: shared_protocol::ErrorKind, message: String },
    #[error("no answer within {0:.0} s")]
    Timeout(f64),
    #[error("the process exited ({0})")]
    Exited(String),
    #[error("not a protocol line on stdout: {0:?}")]
    NotProtocol(String),
    #[error("could not start: {0}")]
    Spawn(String),
    #[error("unexpected event for {expected}: {got}")]
    Unexpected { expected: String, got: String },
}

impl Fault {
    /// A short machine-readable kind for raw records.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Engine { kind, .. } => match kind {
                shared_protocol::ErrorKind::OutOfMemory => "out_of_memory",
                shared_protocol::ErrorKind::Unsupported => "unsupported",
                shared_protocol::ErrorKind::BadRequest => "bad_request",
                shared_protocol::ErrorKind::Internal => "internal",
            },
            Fault::Timeout(_) => "timeout",
            Fault::Exited(_) => "crashed",
            Fault::NotProtocol(_) => "protocol_violation",
            Fault::Spawn(_) => "not_started",
            Fault::Unexpected { .. } => "protocol_violation",
        }
    }

    /// Whether the process can still be used after this fault.
    pub fn process_survives(&self) -> bool {
        matches!(self, Fault::Engine { .. })
    }
}

enum Line {
    Event(Event, Instant),
    Garbage(String),
    Closed,
}

pub struct EngineProcess {
    handle: duct::Handle,
    stdin: os_pipe::PipeWriter,
    lines: Receiver<Line>,
}

/// Runner-side view of one `generate`.
#[derive(Debug, Clone)]
pub struct Timed {
    pub done: Done,
    /// From writing the command to reading `done`.
    pub runner_total_ns: u64,
    /// From writing the command to reading the first `token` event (when streamed).
    pub runner_ttft_ns: Option<u64>,
}

impl EngineProcess {
    /// Starts the engine pinned to `cpus` (see [`crate::host`]), in a process group of its own so
    /// that a Ctrl-C meant for the runner does not reach it (the runner stops it cleanly).
    pub fn spawn(cmd: &Resolved, log: &Path, cpus: &[usize]) -> Result<EngineProcess, Fault> {
        let spawn_err = |e: std::io::Error| Fault::Spawn(format!("{}: {e}", cmd.program.display()));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(spawn_err)?;
        let (stdin_r, stdin_w) = os_pipe::pipe().map_err(spawn_err)?;
        let (stdout_r, stdout_w) = os_pipe::pipe().map_err(spawn_err)?;
        // The expression (and with it the child's ends of the pipes) is dropped right after the
        // start, so end of file on stdout means the child is gone.
        let handle = duct::cmd(&cmd.program, &cmd.args)
            .stdin_file(stdin_r)
            .stdout_file(stdout_w)
            .stderr_file(log)
            .env("PYTHONUNBUFFERED", "1")
            .before_spawn({
                let cpus = cpus.to_vec();
                move |c| {
                    use std::os::unix::process::CommandExt;
                    let cpus = cpus.clone();
                    // SAFETY: between fork and exec only async-signal-safe calls run here
                    // (setpgid, sched_setaffinity); `cpus` was allocated before the fork.
                    unsafe {
                        c.pre_exec(move || {
                            if libc::setpgid(0, 0) != 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                            crate::host::pin_current(&cpus)
                        });
                    }
                    Ok(())
                }
            })
            .unchecked()
            .start()
            .map_err(spawn_err)?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout_r).lines() {
                let Ok(line) = line else { break };
                let msg = match Event::from_line(&line) {
                    Ok(e) => Line::Event(e, Instant::now()),
                    Err(_) => Line::Garbage(line),
                };
                if tx.send(msg).is_err() {
                    return;
                }
            }
            let _ = tx.send(Line::Closed);
        });
        Ok(EngineProcess { handle, stdin: stdin_w, lines })
    }

    /// The engine's process id (for per-process memory).
    pub fn pid(&self) -> Option<u32> {
        self.handle.pids().first().copied()
    }

    /// Resident and peak resident memory of the engine process, from /proc (Linux).
    pub fn rss(&self) -> (Option<u64>, Option<u64>) {
        let Some(status) = self.pid().and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok()) else {
            return (None, None);
        };
        let field =
            |name: &str| status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024);
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Writes a command without waiting for its answer; returns when it was written.
    pub fn submit(&mut self, cmd: &Command) -> Result<Instant, Fault> {
        self.send(cmd)
    }

    /// The next event (and when it was read), waiting until `deadline`; `timeout_s` names the limit in the error.
    pub fn next_event(&mut self, deadline: Instant, timeout_s: f64) -> Result<(Event, Instant), Fault> {
        self.next(deadline, timeout_s)
    }

    fn send(&mut self, cmd: &Command) -> Result<Instant, Fault> {
        let line = cmd.to_line();
        let sent = Instant::now();
        self.stdin
            .write_all(line.as_bytes())
            .and_then(|_| self.stdin.write_all(b"\n"))
            .and_then(|_| self.stdin.flush())
            .map_err(|_| self.exit_fault())?;
        Ok(sent)
    }

    fn exit_fault(&self) -> Fault {
        // Give a dying process a moment to be reaped so its status can be reported.
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            if let Ok(Some(out)) = self.handle.try_wait() {
                return Fault::Exited(out.status.to_string());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Fault::Exited("stdout closed".into())
    }

    fn next(&mut self, deadline: Instant, timeout_s: f64) -> Result<(Event, Instant), Fault> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(Line::Event(e, at)) => Ok((e, at)),
            Ok(Line::Garbage(l)) => Err(Fault::NotProtocol(l.chars().take(200).collect())),
            Ok(Line::Closed) | Err(RecvTimeoutError::Disconnected) => Err(self.exit_fault()),
            Err(RecvTimeoutError::Timeout) => Err(Fault::Timeout(timeout_s)),
        }
    }

    pub fn load(&mut self, req: LoadRequest, timeout_s: f64) -> Result<Ready, Fault> {
        let deadline = self.begin_load(req, timeout_s)?;
        self.finish_load(deadline, timeout_s)
    }

    /// Sends `load` and returns the deadline for its answer (several engines load at once).
    pub fn begin_load(&mut self, req: LoadRequest, timeout_s: f64) -> Result<Instant, Fault> {
        Ok(self.send(&Command::Load(req))? + Duration::from_secs_f64(timeout_s))
    }

    /// Waits for the answer to [`EngineProcess::begin_load`].
    pub fn finish_load(&mut self, deadline: Instant, timeout_s: f64) -> Result<Ready, Fault> {
        match self.next(deadline, timeout_s)?.0 {
            Event::Ready(r) => Ok(r),
            Event::Error(e) => Err(Fault::Engine { kind: e.kind, message: e.message }),
            other => Err(Fault::Unexpected { expected: "load".into(), got: other.to_line() }),
        }
    }

    pub fn generate(&mut self, req: GenerateRequest, timeout_s: f64) -> Result<Timed, Fault> {
        let id = req.id.clone();
        let sent = self.send(&Command::Generate(req))?;
        let deadline = sent + Duration::from_secs_f64(timeout_s);
        let mut first_token = None;
        loop {
            match self.next(deadline, timeout_s)? {
                (Event::Token(t), at) if t.id == id => {
                    first_token.get_or_insert((at - sent).as_nanos() as u64);
                }
                (Event::Done(done), at) if done.id == id => {
                    return Ok(Timed { done, runner_total_ns: (at - sent).as_nanos() as u64, runner_ttft_ns: first_token })
                }
                (Event::Error(e), _) if e.id.as_deref() == Some(id.as_str()) => {
                    return Err(Fault::Engine { kind: e.kind, message: e.message })
                }
                (other, _) => return Err(Fault::Unexpected { expected: format!("request {id}"), got: other.to_line() }),
            }
        }
    }

    pub fn logits(&mut self, req: LogitsRequest, timeout_s: f64) -> Result<LogitsResult, Fault> {
        let id = req.id.clone();
        let deadline = self.send(&Command::Logits(req))? + Duration::from_secs_f64(timeout_s);
        match self.next(deadline, timeout_s)?.0 {
            Event::Logits(l) if l.id == id => Ok(l),
            Event::Error(e) => Err(Fault::Engine { kind: e.kind, message: e.message }),
            other => Err(Fault::Unexpected { expected: format!("logits {id}"), got: other.to_line() }),
        }
    }

    /// Asks the engine to exit, and kills it if it has not within a few seconds.
    pub fn shutdown(mut self) {
        let _ = self.send(&Command::Shutdown);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.handle.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.handle.kill();
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        // A process that hung or broke the protocol is not waited for.
        if let Ok(None) = self.handle.try_wait() {
            let _ = self.handle.kill();
        }
    }
}
