//! Every map of the kernel object, sized in one place. User space resizes `EVENTS` at load.

use aya_ebpf::{
    btf_maps::SkStorage,
    macros::{btf_map, map},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf, StackTrace},
};
use wirelens_ebpf::{ConnState, DataEvent, counter, profile};

use crate::{
    gotls::{GoCall, GoCallKey, GoFdKey, GoSock},
    tls::{TlsCall, TlsConn, TlsKey},
};

/// All records for user space.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Scratch area where a data record is assembled, one slot per CPU (indexed by CPU id; the
/// agent sizes it to the possible CPUs). A plain array because per-CPU map values are limited
/// to 32 KiB.
#[map]
pub static SCRATCH: Array<DataEvent> = Array::with_max_entries(256, 0);

/// Per-CPU counters, indexed by `wirelens_ebpf::counter`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Per connection: stream positions and filter verdict, in the socket's own local storage
/// (created on its first event, freed by the kernel with the socket: no eviction, no cleanup).
#[btf_map]
pub static CONNS: SkStorage<ConnState> = SkStorage::new();

/// Message index inside the `sendmmsg`/`recvmmsg` call a thread is in (keyed by pid_tgid); the
/// libc entry probes reset it.
#[map]
pub static MMSG_INDEX: LruHashMap<u64, u32> = LruHashMap::with_max_entries(4096, 0);

/// SSL calls in progress, per thread (keyed by pid_tgid): see `tls`.
#[map]
pub static TLS_CALLS: HashMap<u64, TlsCall> = HashMap::with_max_entries(16384, 0);

/// How many entries `TLS_CALLS` and `GO_WANTED` hold, over all threads (slot 0). The data
/// path looks a thread up in `TLS_CALLS` (and an fd in `GO_WANTED`) only while this is not 0, which keeps that lookup off every socket
/// call of a host where no SSL call is in progress. If it drifts it can only err upwards (a
/// lookup too many), never skip a call in progress.
#[map]
pub static TLS_ACTIVE: Array<u64> = Array::with_max_entries(1, 0);

/// Plaintext stream state per `(process, SSL *)`: see `tls`. LRU: an SSL object freed without
/// notice ages out.
#[map]
pub static TLS_CONNS: LruHashMap<TlsKey, TlsConn> = LruHashMap::with_max_entries(65536, 0);

/// Go `crypto/tls` calls in progress, per goroutine: see `gotls`. LRU: a goroutine that
/// never returns (a panic through the call) ages out.
#[map]
pub static GO_CALLS: LruHashMap<GoCallKey, GoCall> = LruHashMap::with_max_entries(16384, 0);

/// Sockets that opened with a TLS handshake, by (process, fd): see `gotls`. A reused fd's
/// new handshake overwrites its entry.
#[map]
pub static GO_FDS: LruHashMap<GoFdKey, GoSock> = LruHashMap::with_max_entries(65536, 0);

/// Go TLS connections sent without their socket (handshake missed), by (process, fd): the
/// data path claims the entry at the fd's next socket call and fills `GO_FDS`. See `gotls`.
#[map]
pub static GO_WANTED: LruHashMap<GoFdKey, u8> = LruHashMap::with_max_entries(4096, 0);

/// Traced pids when the pid filter is on.
#[map]
pub static PID_FILTER: HashMap<u32, u8> = HashMap::with_max_entries(1024, 0);

/// Traced ports (local or remote) when the port filter is on.
#[map]
pub static PORT_FILTER: HashMap<u16, u8> = HashMap::with_max_entries(1024, 0);

/// Traced command names when the comm filter is on.
#[map]
pub static COMM_FILTER: HashMap<[u8; 16], u8> = HashMap::with_max_entries(256, 0);

/// Traced cgroup v2 ids (the selected containers' cgroups) when the cgroup filter is on; user
/// space adds a container's cgroup when one of its processes is resolved.
#[map]
pub static CGROUP_FILTER: HashMap<u64, u8> = HashMap::with_max_entries(4096, 0);

/// Executable paths traced when the exe filter is on (`--exe` paths that are not globs, and
/// where they lead through symlinks), NUL-padded to `EXE_PATH_LEN`.
#[map]
pub static EXE_PATHS: HashMap<[u8; wirelens_ebpf::EXE_PATH_LEN], u8> =
    HashMap::with_max_entries(64, 0);

/// Traced processes (tgids, and thread ids of their threads) when the exe filter is on.
#[map]
pub static EXE_PIDS: HashMap<u32, u8> = HashMap::with_max_entries(65536, 0);

/// Where an exec's file name is read for the `EXE_PATHS` lookup (the BPF stack is too small).
#[map]
pub static EXE_KEY: PerCpuArray<[u8; wirelens_ebpf::EXE_PATH_LEN]> =
    PerCpuArray::with_max_entries(1, 0);

/// Profiler: unwinding-mode samples (header + user stack bytes) for user space.
#[map]
pub static PROFILE_SAMPLES: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// Profiler: kernel stacks, and frame-pointer user stacks, by stack id.
#[map]
pub static PROFILE_STACKS: StackTrace = StackTrace::with_max_entries(profile::STACK_MAP_ENTRIES, 0);

/// Profiler: sample counts by (process, user stack, kernel stack), drained each interval.
#[map]
pub static PROFILE_COUNTS: HashMap<profile::SampleKey, u64> =
    HashMap::with_max_entries(profile::COUNT_MAP_ENTRIES, 0);

/// Profiler: the sample record being built, one per CPU (16 KiB + header, under the 32 KiB
/// per-CPU value limit).
#[map]
pub static PROFILE_SCRATCH: PerCpuArray<profile::StackSample> = PerCpuArray::with_max_entries(1, 0);

/// Profiler: per-CPU counters, indexed by `wirelens_ebpf::profile::counter`.
#[map]
pub static PROFILE_COUNTERS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(profile::counter::COUNT, 0);

/// Insert `call` as the calling thread's entry in `TLS_CALLS`, counting a new entry.
#[inline(always)]
pub fn tls_call_insert(pid_tgid: u64, call: &TlsCall) {
    // SAFETY: a read-only probe of the thread's own key.
    let fresh = unsafe { TLS_CALLS.get(&pid_tgid) }.is_none();
    if TLS_CALLS.insert(&pid_tgid, call, 0).is_ok() && fresh {
        tls_active_add(1);
    }
}

/// Remove the calling thread's entry from `TLS_CALLS`, if it has one.
#[inline(always)]
pub fn tls_call_remove(pid_tgid: u64) {
    if TLS_CALLS.remove(&pid_tgid).is_ok() {
        tls_active_add(u64::MAX); // -1, wrapping
    }
}

/// Whether any thread has an entry in `TLS_CALLS`.
#[inline(always)]
pub fn tls_active() -> bool {
    // SAFETY: a plain load of a counter; a stale value only costs or saves one lookup.
    TLS_ACTIVE
        .get_ptr(0)
        .is_none_or(|p| unsafe { core::ptr::read_volatile(p) } != 0)
}

/// Add `n` (wrapping: `u64::MAX` is -1) to the `TLS_ACTIVE` count: a `GO_WANTED` entry
/// counts there too, so one counter gates both lookups of the data path.
#[inline(always)]
pub fn tls_active_add(n: u64) {
    atomic_add(TLS_ACTIVE.get_ptr_mut(0), n);
}

#[inline(always)]
fn atomic_add(slot: Option<*mut u64>, n: u64) {
    if let Some(p) = slot {
        // SAFETY: the slot is a u64 in map memory; the atomic add is a BPF atomic instruction.
        // (`AtomicU64::fetch_add` is not offered on this target: it has no compare-and-swap.)
        unsafe {
            core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
                p, n,
            )
        };
    }
}

/// Add `n` to counter `idx` of this CPU.
#[inline(always)]
pub fn count(idx: u32, n: u64) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU while we run.
        unsafe { *p += n };
    }
}
