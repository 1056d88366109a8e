//! Stopping a run cleanly: SIGINT (Ctrl-C) or SIGTERM sets a flag that the runner checks between
//! requests. It then stops its engines, keeps everything measured, records the launch as
//! interrupted and writes the summary of what it has; `--resume` continues the run. A second
//! signal while the first is handled ends the runner at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn flag() -> &'static Arc<AtomicBool> {
    STOP.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Whether a stop was asked for.
pub fn stopping() -> bool {
    flag().load(Ordering::Relaxed)
}

/// Asks the run to stop at its next request (what the signals do; tests call it directly).
pub fn request_stop() {
    flag().store(true, Ordering::Relaxed);
}

/// Installs the handlers for SIGINT and SIGTERM (the binary does; the library never does).
pub fn install_signal_handlers() -> std::io::Result<()> {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first, so it sees the flag as the earlier signal left it.
        signal_hook::flag::register_conditional_shutdown(signal, 130, flag().clone())?;
        signal_hook::flag::register(signal, flag().clone())?;
    }
    Ok(())
}
