//! `sched:sched_process_{exec,exit}`: tell user space to refresh or drop a process's metadata.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    programs::TracePointContext,
};
use wirelens_ebpf::{EventKind, ProcEvent};

use crate::maps;

#[inline(always)]
fn emit(kind: EventKind, tgid: u32) {
    let Some(mut entry) = maps::EVENTS.reserve::<ProcEvent>(0) else {
        maps::count(wirelens_ebpf::counter::RING_FULL, 1);
        return;
    };
    entry.write(ProcEvent {
        kind: kind as u32,
        tgid,
        // SAFETY: helper without arguments.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    });
    // Wake the reader at once: it reads /proc for the new image before a short-lived
    // process can exit.
    entry.submit(2 /* BPF_RB_FORCE_WAKEUP */);
}

#[inline(always)]
pub fn on_exec(_ctx: &TracePointContext) {
    emit(
        EventKind::ProcExec,
        (bpf_get_current_pid_tgid() >> 32) as u32,
    );
}

#[inline(always)]
pub fn on_exit(_ctx: &TracePointContext) {
    let pid_tgid = bpf_get_current_pid_tgid();
    // Only the thread-group leader's exit ends the process.
    if pid_tgid as u32 == (pid_tgid >> 32) as u32 {
        emit(EventKind::ProcExit, (pid_tgid >> 32) as u32);
    }
}
