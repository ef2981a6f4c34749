//! One profile: sample counts per process and stack (frames resolved, leaf first).

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, SystemTime},
};

use super::symbolize::Frame;

/// Samples of one process.
#[derive(Debug, Default, Clone)]
pub struct ProcessProfile {
    /// Command name at the last sample.
    pub comm: String,
    /// Sample count per stack (leaf first, kernel frames before user frames).
    pub stacks: HashMap<Vec<Frame>, u64>,
}

impl ProcessProfile {
    /// Samples of this process.
    pub fn samples(&self) -> u64 {
        self.stacks.values().sum()
    }
}

/// Samples of every process over one period of time.
#[derive(Debug, Clone)]
pub struct Profile {
    /// When sampling started.
    pub start: SystemTime,
    /// How long it sampled.
    pub duration: Duration,
    /// Nanoseconds of CPU time one sample stands for (1e9 / frequency).
    pub period_ns: u64,
    /// Per process id.
    pub processes: BTreeMap<u32, ProcessProfile>,
}

impl Profile {
    /// An empty profile starting now.
    pub fn new(period_ns: u64) -> Self {
        Self {
            start: SystemTime::now(),
            duration: Duration::ZERO,
            period_ns,
            processes: BTreeMap::new(),
        }
    }

    /// Count `n` samples of `stack` in `pid`.
    pub fn add(&mut self, pid: u32, comm: &str, stack: Vec<Frame>, n: u64) {
        let p = self.processes.entry(pid).or_default();
        if p.comm != comm {
            p.comm = comm.to_string();
        }
        *p.stacks.entry(stack).or_default() += n;
    }

    /// Samples of every process.
    pub fn samples(&self) -> u64 {
        self.processes.values().map(ProcessProfile::samples).sum()
    }

    /// Stop the clock: the duration is the time since `start`.
    pub fn finish(&mut self) {
        self.duration = self.start.elapsed().unwrap_or_default();
    }

    /// The profile so far, and a fresh one starting now (continuous mode).
    pub fn take(&mut self) -> Self {
        self.finish();
        std::mem::replace(self, Self::new(self.period_ns))
    }
}

/// A command name from the kernel's NUL-padded bytes.
pub fn comm_str(comm: &[u8; 16]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}
