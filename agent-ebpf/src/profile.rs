//! `perf_event` cpu-clock sampler: one program run per sample on every CPU; the sample's
//! stacks go to user space (unwinding mode) or are counted in the kernel (frame-pointer mode).

use aya_ebpf::{
    bindings::{BPF_F_USER_STACK, BPF_NOEXIST, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid,
        generated::{
            bpf_get_current_task_btf, bpf_ktime_get_ns, bpf_probe_read_user, bpf_task_pt_regs,
        },
    },
    programs::{PerfEventContext, tracing::StackIdContext as _},
};
use wirelens_ebpf::{
    filter,
    profile::{NO_STACK, SAMPLE_HEADER_LEN, SampleKey, StackSample, counter, mode},
};

use crate::maps::{self, PROFILE_COUNTS, PROFILE_SAMPLES, PROFILE_SCRATCH, PROFILE_STACKS};

/// [`wirelens_ebpf::profile::mode`] value, written by the agent at load time.
#[unsafe(no_mangle)]
static PROFILE_MODE: u32 = mode::UNWIND;

/// x86_64 `struct pt_regs` offsets (uapi layout, stable).
const PT_REGS_BP: usize = 4 * 8;
const PT_REGS_IP: usize = 16 * 8;
const PT_REGS_CS: usize = 17 * 8;
const PT_REGS_SP: usize = 19 * 8;

#[inline(always)]
fn profile_mode() -> u32 {
    // SAFETY: the loader rewrites this global; volatile keeps the compiler from folding it.
    unsafe { core::ptr::read_volatile(&PROFILE_MODE) }
}

#[inline(always)]
fn count(idx: u32) {
    if let Some(p) = maps::PROFILE_COUNTERS.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU while we run.
        unsafe { *p += 1 };
    }
}

/// One sample.
#[inline(always)]
pub fn on_sample(ctx: &PerfEventContext) {
    count(counter::SAMPLES);
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if tgid == 0 {
        count(counter::IDLE);
        return;
    }
    let comm = bpf_get_current_comm().unwrap_or([0; 16]);
    if !wanted(tgid, &comm) {
        count(counter::FILTERED);
        return;
    }
    // EFAULT: no kernel stack (the CPU was in user mode).
    let kernel_stack = stack_id(ctx.get_stackid(&PROFILE_STACKS, 0));
    if profile_mode() == mode::UNWIND && send_sample(pid_tgid, kernel_stack, comm) {
        return;
    }
    // User stack by frame pointers.
    let user_stack = stack_id(ctx.get_stackid(&PROFILE_STACKS, BPF_F_USER_STACK as u64));
    let key = SampleKey {
        tgid,
        user_stack,
        kernel_stack,
        _pad: 0,
    };
    match PROFILE_COUNTS.get_ptr_mut(&key) {
        // SAFETY: a map value; a racing increment from another CPU may be lost, never torn.
        Some(p) => unsafe { *p += 1 },
        None => {
            if PROFILE_COUNTS.insert(&key, &1, BPF_NOEXIST as u64).is_err() {
                // Another CPU inserted it first, or the map is full.
                match PROFILE_COUNTS.get_ptr_mut(&key) {
                    // SAFETY: as above.
                    Some(p) => unsafe { *p += 1 },
                    None => count(counter::COUNTS_FULL),
                }
            }
        }
    }
}

/// A stack id, or [`NO_STACK`]; a stack lost for want of room (not for want of a stack) is
/// counted.
#[inline(always)]
fn stack_id(r: Result<aya_ebpf::cty::c_long, i32>) -> i32 {
    match r {
        Ok(id) => id as i32,
        Err(e) => {
            if e != -EFAULT {
                count(counter::STACK_LOST);
            }
            NO_STACK
        }
    }
}

/// `EFAULT`: the helper found no stack to walk.
const EFAULT: i32 = 14;

/// The pid and comm filters (the agent's own maps, shared with the data path).
#[inline(always)]
fn wanted(tgid: u32, comm: &[u8; 16]) -> bool {
    let filters = crate::config::filters();
    // SAFETY: lookups in hash maps of plain values.
    if filters & filter::PID != 0 && unsafe { maps::PID_FILTER.get(&tgid) }.is_none() {
        return false;
    }
    if filters & filter::COMM != 0 && unsafe { maps::COMM_FILTER.get(comm) }.is_none() {
        return false;
    }
    true
}

/// Unwinding mode: user registers and stack bytes to the ring. False when the ring is full
/// (the caller counts the sample in the kernel instead).
#[inline(always)]
fn send_sample(pid_tgid: u64, kernel_stack: i32, comm: [u8; 16]) -> bool {
    let Some(slot) = PROFILE_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: the per-CPU scratch slot is ours while the program runs.
    let s: &mut StackSample = unsafe { &mut *slot };
    s.header.tgid = (pid_tgid >> 32) as u32;
    s.header.tid = pid_tgid as u32;
    s.header.kernel_stack = kernel_stack;
    s.header.stack_len = 0;
    // SAFETY: helper without arguments.
    s.header.ts_ns = unsafe { bpf_ktime_get_ns() };
    s.header.comm = comm;
    s.header.ip = 0;
    s.header.sp = 0;
    s.header.bp = 0;
    // SAFETY: helpers on the current task; loads at pt_regs field offsets, checked by the
    // verifier against the kernel's BTF.
    unsafe {
        let task = bpf_get_current_task_btf();
        let pt = bpf_task_pt_regs(task) as *const u8;
        if !pt.is_null() {
            let at = |off: usize| core::ptr::read_volatile(pt.add(off) as *const u64);
            // User mode (ring 3) registers only: a kernel thread has none.
            if at(PT_REGS_CS) & 3 == 3 {
                s.header.ip = at(PT_REGS_IP);
                s.header.sp = at(PT_REGS_SP);
                s.header.bp = at(PT_REGS_BP);
            }
        }
    }
    if s.header.sp == 0 {
        return output(s, 0);
    }
    let sp = s.header.sp;
    // A read crossing the top of the stack fails whole: try smaller copies (constant sizes,
    // so the verifier sees each bound).
    macro_rules! try_copy {
        ($n:literal) => {
            // SAFETY: $n ≤ MAX_STACK_COPY bytes into the scratch slot's stack array.
            if unsafe { bpf_probe_read_user(s.stack.as_mut_ptr().cast(), $n, sp as *const _) } == 0
            {
                s.header.stack_len = $n;
                return output(s, $n);
            }
        };
    }
    try_copy!(16384);
    try_copy!(12288);
    try_copy!(8192);
    try_copy!(4096);
    try_copy!(2048);
    try_copy!(1024);
    count(counter::STACK_READ_FAILED);
    output(s, 0)
}

#[inline(always)]
fn output(s: &StackSample, stack_len: usize) -> bool {
    let size = SAMPLE_HEADER_LEN + stack_len;
    // SAFETY: `size` ≤ size_of::<StackSample>(): the slice stays inside the map value.
    let bytes =
        unsafe { core::slice::from_raw_parts((s as *const StackSample).cast::<u8>(), size) };
    if PROFILE_SAMPLES
        .output::<[u8]>(bytes, BPF_RB_NO_WAKEUP as u64)
        .is_ok()
    {
        true
    } else {
        count(counter::RING_FULL);
        false
    }
}
