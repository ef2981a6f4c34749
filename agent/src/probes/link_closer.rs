//! Closes the links of detached uprobes on a thread of its own.
//!
//! Closing a uprobe's perf-event link waits in the kernel for RCU grace periods: about 0.1 s
//! per link on this kernel, so the 17 links of one Go executable closed in a row took 1.6 s,
//! time in which the scan thread would probe no new process. The scan thread hands the links
//! over here and goes on. One closer: the kernel serialises these waits (eight closers in
//! parallel closed no faster).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{self, Sender},
    },
    thread::JoinHandle,
};

use aya::programs::uprobe::UProbeLink;

/// The closer thread and the links handed to it.
pub struct LinkCloser {
    links: Option<Sender<UProbeLink>>,
    pending: Arc<AtomicU64>,
    worker: Option<JoinHandle<()>>,
}

impl LinkCloser {
    /// Start the closer.
    pub fn spawn() -> std::io::Result<Self> {
        let (links, rx) = mpsc::channel::<UProbeLink>();
        let pending = Arc::new(AtomicU64::new(0));
        let left = pending.clone();
        let worker = std::thread::Builder::new()
            .name("wirelens-unlink".into())
            .spawn(move || {
                // Ends when the scan thread drops its end.
                for link in rx {
                    drop(link);
                    left.fetch_sub(1, Ordering::Relaxed);
                }
            })?;
        Ok(Self {
            links: Some(links),
            pending,
            worker: Some(worker),
        })
    }

    /// Close `link` soon (at once, on this thread, if the closer is gone).
    pub fn close(&self, link: UProbeLink) {
        self.pending.fetch_add(1, Ordering::Relaxed);
        if let Some(Err(mpsc::SendError(link))) = self.links.as_ref().map(|tx| tx.send(link)) {
            drop(link);
            self.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Links handed over and not closed yet.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }
}

impl Drop for LinkCloser {
    /// Close what is left, then stop the closer.
    fn drop(&mut self) {
        drop(self.links.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
