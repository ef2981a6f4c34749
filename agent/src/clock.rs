//! Kernel timestamps (`CLOCK_MONOTONIC`) to Unix time.

/// Converts `bpf_ktime_get_ns` values to nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    offset_ns: i128,
}

fn now(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// Measure the offset now; call again periodically to follow clock adjustments.
    pub fn new() -> Self {
        Self {
            offset_ns: now(libc::CLOCK_REALTIME) - now(libc::CLOCK_MONOTONIC),
        }
    }

    /// Unix nanoseconds for a kernel timestamp.
    pub fn to_unix(self, ktime_ns: u64) -> u64 {
        (i128::from(ktime_ns) + self.offset_ns).max(0) as u64
    }

    /// Current monotonic time in ns (the kernel's clock).
    pub fn monotonic_now() -> u64 {
        now(libc::CLOCK_MONOTONIC).max(0) as u64
    }
}
