//! A background sampling thread that is stopped and joined when its owner is dropped (the NVML
//! monitor and the host probe each own one).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct SamplerThread {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SamplerThread {
    /// Starts `body`, which runs until the flag it is given is set.
    pub fn spawn(name: &str, body: impl FnOnce(Arc<AtomicBool>) + Send + 'static) -> std::io::Result<SamplerThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || body(flag))?;
        Ok(SamplerThread { stop, thread: Some(thread) })
    }

    /// Whether the owner asked the thread to stop (for its loop).
    pub fn stopped(flag: &AtomicBool) -> bool {
        flag.load(Ordering::Relaxed)
    }
}

impl Drop for SamplerThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
