//! Load-time settings written by the agent before the object is loaded (read-only globals).

/// Capture limit per call in bytes (≤ `MAX_CAPTURE`).
#[unsafe(no_mangle)]
static CAPTURE_LIMIT: u32 = wirelens_ebpf::DEFAULT_CAPTURE;
/// The agent's own pid: its traffic (OTLP export) is never traced.
#[unsafe(no_mangle)]
static AGENT_TGID: u32 = 0;
/// Which filters are on (`wirelens_ebpf::filter` bits).
#[unsafe(no_mangle)]
static FILTERS: u32 = 0;

/// Device and inode of the agent's pid namespace (`stat /proc/self/ns/pid`), read when the
/// `PIDNS` filter is on.
#[unsafe(no_mangle)]
static PIDNS_DEV: u64 = 0;
#[unsafe(no_mangle)]
static PIDNS_INO: u64 = 0;

/// Byte offset of `sk_protocol` (a `u16`) in `struct sock`, from the kernel's BTF; 0 when the
/// agent could not find it (the protocol is then reported as unknown).
#[unsafe(no_mangle)]
static SK_PROTOCOL_OFFSET: u32 = 0;

/// 1 when network metrics are on: connects are reported and retransmits counted.
#[unsafe(no_mangle)]
static NETWORK_METRICS: u32 = 0;

fn read(v: &u32) -> u32 {
    // SAFETY: the loader rewrites these globals; volatile keeps the compiler from folding them.
    unsafe { core::ptr::read_volatile(v) }
}

pub fn capture_limit() -> u32 {
    read(&CAPTURE_LIMIT)
}

pub fn agent_tgid() -> u32 {
    read(&AGENT_TGID)
}

pub fn filters() -> u32 {
    read(&FILTERS)
}

pub fn pidns() -> (u64, u64) {
    // SAFETY: as `read`.
    unsafe {
        (
            core::ptr::read_volatile(&PIDNS_DEV),
            core::ptr::read_volatile(&PIDNS_INO),
        )
    }
}

pub fn sk_protocol_offset() -> u32 {
    read(&SK_PROTOCOL_OFFSET)
}

pub fn network_metrics() -> bool {
    read(&NETWORK_METRICS) != 0
}
