//! The memory limiter: keeps the agent under `--memory-limit` by shedding work before the
//! kernel's OOM killer (or a pod's limit) would end it, as the OpenTelemetry Collector's
//! `memory_limiter` processor does.
//!
//! Checked on the reader's housekeeping tick (every 100 ms: one read of `/proc/self/statm`).
//! Above the soft limit (80%) the tracked connections holding the most buffered bytes are
//! dropped, half of them, parser state and all: their later bytes start a new connection that
//! resynchronises like one joined mid-stream. Above the hard limit every connection is dropped
//! and the export spool is emptied to its newest quarter. Each shed is counted
//! (`wirelens.memory.shed_connections`, `wirelens.memory.shed_spans`), and freed memory is
//! handed back to the system (`malloc_trim`) so the resident size can fall again.

/// Share of the limit above which connections are shed.
const SOFT_SHARE: f64 = 0.8;

/// How hard the agent presses against its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pressure {
    /// Under the soft limit.
    None,
    /// Between the soft and the hard limit: shed the heaviest connections.
    Soft,
    /// Over the limit: shed every connection and most queued exports.
    Hard,
}

/// Resident-size checks against a limit.
pub struct MemoryLimiter {
    limit: u64,
    soft: u64,
    page: u64,
}

impl MemoryLimiter {
    /// A limiter for `limit` bytes; `None` when `limit` is 0 (no limit).
    pub fn new(limit: u64) -> Option<Self> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        (limit > 0).then(|| Self {
            limit,
            soft: (limit as f64 * SOFT_SHARE) as u64,
            page: u64::try_from(page).unwrap_or(4096).max(1),
        })
    }

    /// The agent's resident bytes now (0 if `/proc/self/statm` cannot be read).
    pub fn resident(&self) -> u64 {
        resident_pages().map_or(0, |pages| pages * self.page)
    }

    /// The pressure at `resident` bytes.
    pub fn pressure_at(&self, resident: u64) -> Pressure {
        if resident >= self.limit {
            Pressure::Hard
        } else if resident >= self.soft {
            Pressure::Soft
        } else {
            Pressure::None
        }
    }

    /// The pressure now.
    pub fn pressure(&self) -> Pressure {
        self.pressure_at(self.resident())
    }
}

/// The agent's resident pages now, from `/proc/self/statm`.
fn resident_pages() -> Option<u64> {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
}

/// The agent's resident bytes now, with or without a limit (0 if unreadable).
pub fn resident_bytes() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    resident_pages().map_or(0, |pages| pages * page)
}

/// Hand freed heap memory back to the system, so that shedding shows in the resident size.
pub fn release_freed_memory() {
    // SAFETY: malloc_trim only walks glibc's own heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `256MiB`, `1GiB`, `512M`, `65536`: a byte count for `--memory-limit`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a byte count (say 256MiB, 1GiB or 0 for none)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (B, KiB, MiB or GiB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_levels() {
        let m = MemoryLimiter::new(1000).expect("a limit");
        assert_eq!(m.pressure_at(100), Pressure::None);
        assert_eq!(m.pressure_at(850), Pressure::Soft);
        assert_eq!(m.pressure_at(1000), Pressure::Hard);
        assert!(MemoryLimiter::new(0).is_none());
        assert!(m.resident() > 0, "reads its own statm");
    }

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("256MiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("0"), Ok(0));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("5 parsecs").is_err());
    }
}
