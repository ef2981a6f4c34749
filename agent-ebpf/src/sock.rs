//! `sock:inet_sock_set_state`: TCP connects, accepts and closes, with the 4-tuple.
//!
//! A client socket goes SYN_SENT → ESTABLISHED, an accepted one SYN_RECV → ESTABLISHED; both
//! are reported with their addresses, so user space learns role and peer without hooking
//! `connect`/`accept`. Closing transitions are reported so user space can flush the connection
//! (the connection's kernel state lives in the socket's storage and goes with it).
//! With network metrics on, connects (`CLOSE` → `SYN_SENT`) are reported too, with the
//! connecting process, `tcp:tcp_retransmit_skb` sends one small record per retransmission, and
//! `sock:inet_sk_error_report` the error of a TCP socket (why a connect failed).

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    programs::TracePointContext,
};
use wirelens_ebpf::{EventKind, SockStateEvent, tcp_state};

use crate::{config, data, maps};

const IPPROTO_TCP: u16 = 6;

#[inline(always)]
pub fn on_set_state(ctx: &TracePointContext) {
    // SAFETY: offsets from the tracepoint's format file (stable ABI), inside the record.
    let base = ctx.as_ptr() as *const u8;
    let field = |off: usize| unsafe { base.add(off) };
    let (sk, old_state, new_state, sport, dport, family, protocol) = unsafe {
        (
            *(field(8) as *const u64),
            *(field(16) as *const i32),
            *(field(20) as *const i32),
            *(field(24) as *const u16),
            *(field(26) as *const u16),
            *(field(28) as *const u16),
            *(field(30) as *const u16),
        )
    };
    if protocol != IPPROTO_TCP {
        return;
    }
    let established = new_state == tcp_state::ESTABLISHED
        && (old_state == tcp_state::SYN_SENT || old_state == tcp_state::SYN_RECV);
    let closing = new_state == tcp_state::FIN_WAIT1
        || new_state == tcp_state::CLOSE_WAIT
        || new_state == tcp_state::CLOSE;
    // With network metrics on, connects too: the one transition that runs in the owner's
    // context, so user space learns who owns a socket that fails before any data.
    let connecting = new_state == tcp_state::SYN_SENT
        && old_state == tcp_state::CLOSE
        && config::network_metrics();
    if !established && !closing && !connecting {
        return;
    }
    let tgid = if connecting {
        (data::reported_pid_tgid(bpf_get_current_pid_tgid()) >> 32) as u32
    } else {
        0
    };
    let Some(mut entry) = maps::EVENTS.reserve::<SockStateEvent>(0) else {
        maps::count(wirelens_ebpf::counter::RING_FULL, 1);
        return;
    };
    let mut ev = SockStateEvent {
        kind: EventKind::SockState as u32,
        old_state,
        new_state,
        family,
        sport,
        dport,
        _pad: 0,
        tgid,
        sk,
        // SAFETY: helper without arguments.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        saddr: [0; 16],
        daddr: [0; 16],
    };
    // SAFETY: as above; v4 addresses at 32/36, v6 at 40/56. Whole-word loads: the verifier
    // refuses a byte loop over a moved context pointer.
    unsafe {
        let word = |off: usize| *(field(off) as *const u64);
        if family == 2 {
            ev.saddr[..4].copy_from_slice(&(*(field(32) as *const u32)).to_ne_bytes());
            ev.daddr[..4].copy_from_slice(&(*(field(36) as *const u32)).to_ne_bytes());
        } else {
            ev.saddr[..8].copy_from_slice(&word(40).to_ne_bytes());
            ev.saddr[8..].copy_from_slice(&word(48).to_ne_bytes());
            ev.daddr[..8].copy_from_slice(&word(56).to_ne_bytes());
            ev.daddr[8..].copy_from_slice(&word(64).to_ne_bytes());
        }
    }
    entry.write(ev);
    entry.submit(1 /* BPF_RB_NO_WAKEUP: batched with data */);
}

/// `tcp:tcp_retransmit_skb`: one record with the socket's address; user space knows its owner.
#[inline(always)]
pub fn on_retransmit(ctx: &TracePointContext) {
    // SAFETY: offsets from the tracepoint's format file (skaddr at 16, state at 24).
    let base = ctx.as_ptr() as *const u8;
    let (sk, state) = unsafe { (*(base.add(16) as *const u64), *(base.add(24) as *const i32)) };
    let Some(mut entry) = maps::EVENTS.reserve::<wirelens_ebpf::RetransmitEvent>(0) else {
        maps::count(wirelens_ebpf::counter::RING_FULL, 1);
        return;
    };
    entry.write(wirelens_ebpf::RetransmitEvent {
        kind: EventKind::Retransmit as u32,
        state,
        sk,
    });
    entry.submit(1 /* BPF_RB_NO_WAKEUP: batched with data */);
}

/// `sock:inet_sk_error_report`: a TCP socket's error with its 4-tuple (rare: errors only).
#[inline(always)]
pub fn on_error_report(ctx: &TracePointContext) {
    // SAFETY: offsets from the tracepoint's format file (stable ABI), inside the record.
    let base = ctx.as_ptr() as *const u8;
    let field = |off: usize| unsafe { base.add(off) };
    let (error, sport, dport, family, protocol) = unsafe {
        (
            *(field(8) as *const i32),
            *(field(12) as *const u16),
            *(field(14) as *const u16),
            *(field(16) as *const u16),
            *(field(18) as *const u16),
        )
    };
    if protocol != IPPROTO_TCP {
        return;
    }
    let Some(mut entry) = maps::EVENTS.reserve::<wirelens_ebpf::SockErrorEvent>(0) else {
        maps::count(wirelens_ebpf::counter::RING_FULL, 1);
        return;
    };
    let mut ev = wirelens_ebpf::SockErrorEvent {
        kind: EventKind::SockError as u32,
        error,
        family,
        sport,
        dport,
        _pad: 0,
        saddr: [0; 16],
        daddr: [0; 16],
    };
    // SAFETY: offsets as above; v4 addresses at 20/24, v6 at 28/44. Read with
    // `bpf_probe_read_kernel`: direct loads at offsets 28 and up come out of LLVM as loads
    // through a moved context pointer, which the verifier refuses (this runs on errors only).
    unsafe {
        if family == 2 {
            let saddr = ctx.read_at::<[u8; 4]>(20).unwrap_or_default();
            let daddr = ctx.read_at::<[u8; 4]>(24).unwrap_or_default();
            ev.saddr[..4].copy_from_slice(&saddr);
            ev.daddr[..4].copy_from_slice(&daddr);
        } else {
            ev.saddr = ctx.read_at::<[u8; 16]>(28).unwrap_or_default();
            ev.daddr = ctx.read_at::<[u8; 16]>(44).unwrap_or_default();
        }
    }
    entry.write(ev);
    entry.submit(1 /* BPF_RB_NO_WAKEUP: batched with data */);
}
