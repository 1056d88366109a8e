//! The protocol's stdout: one JSON line per event, written whole under a lock and flushed, so lines
//! from concurrent request tasks never interleave.

use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use shared_protocol::Event;

#[derive(Clone)]
pub struct Out {
    inner: Arc<Inner>,
}

struct Inner {
    file: Mutex<File>,
    broken: AtomicBool,
}

impl Out {
    /// Keeps the real stdout for the protocol (a duplicate descriptor) and points descriptor 1 at
    /// stderr, so a `println!` anywhere in mistral.rs or its dependencies lands in the log instead of
    /// corrupting the event stream.
    pub fn take_stdout() -> std::io::Result<Out> {
        // SAFETY: plain descriptor calls on the process's own standard streams; the duplicate is
        // owned by the File from here on and nothing else closes it.
        let file = unsafe {
            let protocol_fd = libc::dup(libc::STDOUT_FILENO);
            if protocol_fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            File::from_raw_fd(protocol_fd)
        };
        Ok(Out { inner: Arc::new(Inner { file: Mutex::new(file), broken: AtomicBool::new(false) }) })
    }

    /// Writes one event line (a single write of the whole line, then a flush).
    pub fn emit(&self, event: &Event) {
        let mut line = event.to_line();
        line.push('\n');
        let mut file = self.inner.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = file.write_all(line.as_bytes()).and_then(|_| file.flush()) {
            if !self.inner.broken.swap(true, Ordering::SeqCst) {
                eprintln!("mistral-rs-bench: cannot write to the runner: {e}");
            }
        }
    }

    pub fn flush(&self) {
        let mut file = self.inner.file.lock().unwrap_or_else(|p| p.into_inner());
        let _ = file.flush();
    }

    /// False once a write to the runner has failed.
    pub fn ok(&self) -> bool {
        !self.inner.broken.load(Ordering::SeqCst)
    }
}
