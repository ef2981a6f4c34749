//! `sched:sched_process_{exec,fork,exit}`: tell user space to read, inherit or drop a
//! process's metadata; drop an exiting thread's in-kernel per-thread state.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
        bpf_probe_read_kernel_str_bytes,
    },
    programs::TracePointContext,
};
use wirelens_ebpf::{EXE_PATH_LEN, EventKind, ProcEvent, filter};

use crate::{config, data, maps};

#[inline(always)]
fn emit(kind: EventKind, tgid: u32, parent: u32, wakeup: u64) {
    let Some(mut entry) = maps::EVENTS.reserve::<ProcEvent>(0) else {
        maps::count(wirelens_ebpf::counter::RING_FULL, 1);
        return;
    };
    entry.write(ProcEvent {
        kind: kind as u32,
        tgid,
        parent,
        _pad: 0,
        // SAFETY: helper without arguments.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    });
    entry.submit(wakeup);
}

/// Wake the reader at once (exec: /proc must be read before a short-lived process exits).
const FORCE_WAKEUP: u64 = 2;
/// Batched with the data (fork: the child inherits what user space knows of the parent).
const NO_WAKEUP: u64 = 1;

#[inline(always)]
pub fn on_exec(ctx: &TracePointContext) {
    if config::filters() & filter::EXE != 0 {
        exe_filter_on_exec(ctx);
    }
    if !data::visible() {
        return;
    }
    emit(
        EventKind::ProcExec,
        (data::reported_pid_tgid(bpf_get_current_pid_tgid()) >> 32) as u32,
        0,
        FORCE_WAKEUP,
    );
}

/// A forked child runs the parent's image until it execs: user space copies the parent's
/// metadata to it, read from the long-lived parent, so a child that serves one short session
/// and exits (a PostgreSQL backend) still has a Resource. Thread creation fires this too; the
/// child id is then a thread id, which user space never looks up as a process. In
/// pid-namespace mode the child's pid in the namespace is unknown here: no event.
#[inline(always)]
pub fn on_fork(ctx: &TracePointContext) {
    if config::filters() & filter::PIDNS != 0 {
        return;
    }
    // SAFETY: `child_pid` at offset 20 of the tracepoint's format (stable ABI).
    let child = unsafe { *((ctx.as_ptr() as *const u8).add(20) as *const i32) } as u32;
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    if config::filters() & filter::EXE != 0
        // SAFETY: read-only lookup of a plain value.
        && unsafe { maps::EXE_PIDS.get(&parent) }.is_some()
    {
        // The child runs the traced image until it execs (threads too: same tgid, harmless).
        let _ = maps::EXE_PIDS.insert(&child, &1, 0);
    }
    if child != parent {
        emit(EventKind::ProcFork, child, parent, NO_WAKEUP);
    }
}

#[inline(always)]
pub fn on_exit(_ctx: &TracePointContext) {
    let pid_tgid = bpf_get_current_pid_tgid();
    // Every exiting thread: an SSL call it was blocked in never returns (a client killed in
    // `SSL_read`), and its entry must not stay in the map for good.
    maps::tls_call_remove(pid_tgid);
    if config::filters() & filter::EXE != 0 {
        // The thread's id (the tgid for the leader) leaves the exe filter with it.
        let _ = maps::EXE_PIDS.remove(&(pid_tgid as u32));
    }
    // Only the thread-group leader's exit ends the process.
    if pid_tgid as u32 == (pid_tgid >> 32) as u32 && data::visible() {
        emit(
            EventKind::ProcExit,
            (data::reported_pid_tgid(pid_tgid) >> 32) as u32,
            0,
            NO_WAKEUP,
        );
    }
}

/// The exe filter at `exec`: the process is traced from now on if the file it executes is in
/// `EXE_PATHS`, and no longer if not. Paths as the caller gave them to `execve` (user space
/// also matches `/proc/<pid>/exe` at the exec event, for globs, relative paths and links).
#[inline(always)]
fn exe_filter_on_exec(ctx: &TracePointContext) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(key) = maps::EXE_KEY.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: `key` points at this CPU's slot of EXE_PATH_LEN bytes; zeroed word by word so
    // the bytes after the name's NUL match the user-space key's padding.
    let words = key as *mut u64;
    for i in 0..EXE_PATH_LEN / 8 {
        unsafe { *words.add(i) = 0 };
    }
    // SAFETY: `__data_loc char[] filename` at offset 8: offset in the low 16 bits, length
    // in the high 16, relative to the record.
    let loc = unsafe { *((ctx.as_ptr() as *const u8).add(8) as *const u32) };
    let name = unsafe { (ctx.as_ptr() as *const u8).add((loc & 0xffff) as usize) };
    // SAFETY: the helper bounds the copy to the slot and NUL-terminates it.
    let read = unsafe { bpf_probe_read_kernel_str_bytes(name, &mut *key) };
    let traced = read.is_ok() && unsafe { maps::EXE_PATHS.get(&*key) }.is_some();
    if traced {
        let _ = maps::EXE_PIDS.insert(&tgid, &1, 0);
    } else {
        let _ = maps::EXE_PIDS.remove(&tgid);
    }
}
