//! `sock:inet_sock_set_state`: TCP connects, accepts and closes, with the 4-tuple.
//!
//! A client socket goes SYN_SENT → ESTABLISHED, an accepted one SYN_RECV → ESTABLISHED; both
//! are reported with their addresses, so user space learns role and peer without hooking
//! `connect`/`accept`. Closing transitions are reported so user space can flush the connection,
//! and CLOSE drops the connection's map entry. When the port filter is on, the verdict for the
//! connection is decided here, once.

use aya_ebpf::{helpers::bpf_ktime_get_ns, programs::TracePointContext};
use wirelens_ebpf::{ConnState, EventKind, SockStateEvent, filter, tcp_state, verdict};

use crate::{config, maps};

const IPPROTO_TCP: u16 = 6;

#[inline(always)]
pub fn on_set_state(ctx: &TracePointContext) {
    // SAFETY: offsets from the tracepoint's format file (stable ABI).
    let (sk, old_state, new_state, sport, dport, family, protocol) = unsafe {
        (
            ctx.read_at::<u64>(8).unwrap_or(0),
            ctx.read_at::<i32>(16).unwrap_or(0),
            ctx.read_at::<i32>(20).unwrap_or(0),
            ctx.read_at::<u16>(24).unwrap_or(0),
            ctx.read_at::<u16>(26).unwrap_or(0),
            ctx.read_at::<u16>(28).unwrap_or(0),
            ctx.read_at::<u16>(30).unwrap_or(0),
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
    if !established && !closing {
        return;
    }
    if established {
        let mut state = ConnState::default();
        if config::filters() & filter::PORT != 0 {
            // SAFETY: read-only lookups of plain values.
            let hit = unsafe {
                maps::PORT_FILTER.get(&sport).is_some() || maps::PORT_FILTER.get(&dport).is_some()
            };
            state.verdict = if hit { verdict::TRACE } else { verdict::IGNORE };
        }
        let _ = maps::CONNS.insert(&sk, &state, 0);
    } else if new_state == tcp_state::CLOSE {
        let _ = maps::CONNS.remove(&sk);
    }
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
        _pad: [0; 3],
        sk,
        // SAFETY: helper without arguments.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        saddr: [0; 16],
        daddr: [0; 16],
    };
    // SAFETY: as above; v4 addresses at 32/36, v6 at 40/56.
    unsafe {
        if family == 2 {
            let s = ctx.read_at::<[u8; 4]>(32).unwrap_or([0; 4]);
            let d = ctx.read_at::<[u8; 4]>(36).unwrap_or([0; 4]);
            ev.saddr[..4].copy_from_slice(&s);
            ev.daddr[..4].copy_from_slice(&d);
        } else {
            ev.saddr = ctx.read_at::<[u8; 16]>(40).unwrap_or([0; 16]);
            ev.daddr = ctx.read_at::<[u8; 16]>(56).unwrap_or([0; 16]);
        }
    }
    entry.write(ev);
    entry.submit(1 /* BPF_RB_NO_WAKEUP: batched with data */);
}
