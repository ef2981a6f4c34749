//! One process's figures from `/proc/<pid>/{stat,status,io,fd}`, and the previous reading of
//! each process that CPU utilization is measured against.

use std::{collections::HashMap, time::Instant};

use procfs::process::{Process, Stat};
use wirelens_otel::resource_metrics::ProcessFigures;

/// `PF_KTHREAD` in `stat`'s flags: a kernel thread (no user space, never traced).
const PF_KTHREAD: u32 = 0x0020_0000;

/// Whether `stat` is a kernel thread's.
pub fn is_kernel_thread(stat: &Stat) -> bool {
    stat.flags & PF_KTHREAD != 0
}

/// What the last reading of one process was.
struct Last {
    /// Start time in clock ticks after boot: with the pid, the process's identity.
    starttime: u64,
    /// The main thread's command name then (a change means an `exec`).
    comm: String,
    at: Instant,
    user_ticks: u64,
    system_ticks: u64,
    /// Generation of the scan that last saw it.
    seen: u64,
}

/// The system's clock and page figures, read once.
#[derive(Clone, Copy, Debug)]
pub struct Units {
    ticks_per_second: u64,
    page_size: u64,
    boot_time_ns: u64,
}

impl Units {
    /// This system's.
    pub fn read() -> Self {
        Self {
            ticks_per_second: procfs::ticks_per_second().max(1),
            page_size: procfs::page_size(),
            boot_time_ns: procfs::boot_time_secs()
                .unwrap_or(0)
                .saturating_mul(1_000_000_000),
        }
    }

    fn seconds(&self, ticks: u64) -> f64 {
        ticks as f64 / self.ticks_per_second as f64
    }
}

/// How a process changed since the last scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Seen for the first time.
    New,
    /// The same process as before.
    Same,
    /// Another process under the same pid, or the same one after an `exec`: its metadata is
    /// stale.
    Replaced,
}

/// The previous reading of every process, for utilization and to tell exits and `exec`s.
pub struct Readings {
    units: Units,
    last: HashMap<u32, Last>,
    generation: u64,
}

impl Readings {
    /// No reading yet.
    pub fn new(units: Units) -> Self {
        Self {
            units,
            last: HashMap::new(),
            generation: 0,
        }
    }

    /// A new scan begins.
    pub fn begin(&mut self) {
        self.generation += 1;
    }

    /// The processes not seen since [`Readings::begin`], forgotten now.
    pub fn finish(&mut self) -> Vec<u32> {
        let generation = self.generation;
        let gone: Vec<u32> = self
            .last
            .iter()
            .filter(|(_, l)| l.seen != generation)
            .map(|(pid, _)| *pid)
            .collect();
        for pid in &gone {
            self.last.remove(pid);
        }
        gone
    }

    /// How `pid` running as `stat` relates to the last reading (without recording it).
    pub fn change(&self, pid: u32, stat: &Stat) -> Change {
        match self.last.get(&pid) {
            None => Change::New,
            Some(l) if l.starttime == stat.starttime && l.comm == stat.comm => Change::Same,
            Some(_) => Change::Replaced,
        }
    }

    /// Read the rest of `process`'s figures, given its `stat` read at `at`, and record them.
    pub fn read(&mut self, process: &Process, stat: &Stat, at: Instant) -> ProcessFigures {
        let pid = process.pid as u32;
        let status = process.status().ok();
        let cpus = status
            .as_ref()
            .and_then(|s| s.cpus_allowed_list.as_ref())
            .map(|ranges| {
                ranges
                    .iter()
                    .map(|(a, b)| u64::from(b.saturating_sub(*a)) + 1)
                    .sum::<u64>()
            })
            .filter(|&n| n > 0)
            .unwrap_or(1);
        let utilization = self
            .last
            .get(&pid)
            .filter(|l| l.starttime == stat.starttime)
            .and_then(|l| {
                let elapsed = at.duration_since(l.at).as_secs_f64() * cpus as f64;
                (elapsed > 0.0).then(|| {
                    let share = |now: u64, then: u64| {
                        self.units.seconds(now.saturating_sub(then)) / elapsed
                    };
                    (
                        share(stat.utime, l.user_ticks),
                        share(stat.stime, l.system_ticks),
                    )
                })
            });
        self.last.insert(
            pid,
            Last {
                starttime: stat.starttime,
                comm: stat.comm.clone(),
                at,
                user_ticks: stat.utime,
                system_ticks: stat.stime,
                seen: self.generation,
            },
        );
        let start_ns = self.units.boot_time_ns.saturating_add(
            (stat.starttime as u128 * 1_000_000_000 / u128::from(self.units.ticks_per_second))
                .try_into()
                .unwrap_or(u64::MAX),
        );
        ProcessFigures {
            start_ns,
            cpu_user: self.units.seconds(stat.utime),
            cpu_system: self.units.seconds(stat.stime),
            utilization,
            memory_resident: stat.rss.saturating_mul(self.units.page_size),
            memory_virtual: stat.vsize,
            disk: process.io().ok().map(|io| (io.read_bytes, io.write_bytes)),
            faults: (stat.minflt, stat.majflt),
            threads: u64::try_from(stat.num_threads).unwrap_or(0),
            file_descriptors: process.fd_count().ok().map(|n| n as u64),
            context_switches: status
                .and_then(|s| Some((s.voluntary_ctxt_switches?, s.nonvoluntary_ctxt_switches?))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_figures_and_utilization_on_the_second_reading() {
        let me = Process::myself().expect("own /proc entry");
        let mut readings = Readings::new(Units::read());
        readings.begin();
        let stat = me.stat().expect("stat");
        assert!(!is_kernel_thread(&stat));
        assert_eq!(readings.change(me.pid as u32, &stat), Change::New);
        let first = readings.read(&me, &stat, Instant::now());
        assert!(first.utilization.is_none());
        assert!(first.memory_resident > 0 && first.memory_virtual >= first.memory_resident);
        assert!(first.threads >= 1);
        assert!(first.file_descriptors.is_some_and(|n| n >= 3));
        assert!(first.context_switches.is_some());
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos() as u64;
        assert!(first.start_ns > 0 && first.start_ns <= now_ns);
        // Burn some CPU, then read again.
        let until = Instant::now() + std::time::Duration::from_millis(50);
        let mut x = 0u64;
        while Instant::now() < until {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        std::hint::black_box(x);
        readings.begin();
        let stat = me.stat().expect("stat");
        assert_eq!(readings.change(me.pid as u32, &stat), Change::Same);
        let second = readings.read(&me, &stat, Instant::now());
        let (user, system) = second
            .utilization
            .expect("a second reading has utilization");
        assert!((0.0..=1.01).contains(&(user + system)), "{user} {system}");
        assert!(readings.finish().is_empty());
        readings.begin();
        assert_eq!(readings.finish(), vec![me.pid as u32]);
    }

    #[test]
    fn kernel_threads_are_told_apart() {
        // kthreadd is pid 2 in the initial pid namespace.
        if let Ok(stat) = Process::new(2).and_then(|p| p.stat())
            && stat.comm == "kthreadd"
        {
            assert!(is_kernel_thread(&stat));
        }
    }
}
