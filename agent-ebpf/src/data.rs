//! The socket data path: the `sock_send_length` / `sock_recv_length` tracepoints.
//!
//! These fire inside the socket send/receive path of the calling thread, after the call has
//! moved its bytes, with the `struct sock` and the result. That makes them the socket detector
//! and the data hook at once: the syscall's own arguments (fd, buffer, length) are read from
//! the thread's saved user registers (`bpf_task_pt_regs`), whose layout is the x86_64 user ABI
//! (`struct pt_regs` in `asm/ptrace.h`). Nothing runs for non-socket I/O, and there is no
//! `sys_enter` stash to keep per call.
//!
//! They are attached as BTF raw tracepoints (`tp_btf`): no perf record is built per call, and
//! `sk` arrives as a BTF-typed pointer. That gives plain verifier-checked loads of the
//! `sock_common` fields used (family, ports: the layout every kernel since 2.6 shares) and the
//! socket's own local storage for per-connection state, which is cheaper than a hash map and
//! freed by the kernel with the socket.

use aya_ebpf::bindings::bpf_pidns_info;
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
        generated::{
            bpf_get_current_task_btf, bpf_get_ns_current_pid_tgid, bpf_get_smp_processor_id,
            bpf_probe_read_user, bpf_sk_storage_get, bpf_task_pt_regs,
        },
    },
    programs::BtfTracePointContext,
};
use wirelens_ebpf::{
    ConnState, DATA_HEADER_LEN, DataEvent, DataHeader, EventKind, MAX_CAPTURE, MAX_IOV,
    SMALL_CAPTURE, SmallDataEvent, SockStateEvent, TINY_CAPTURE, counter, data_flags, direction,
    filter, ip_proto, syscall_nr as nr, tls_op, tls_state, verdict,
};

use crate::{config, maps};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const MSG_PEEK: i32 = 2;
const BPF_RB_NO_WAKEUP: u64 = 1;
const MAX: u32 = MAX_CAPTURE as u32;
/// `sizeof(struct mmsghdr)` on x86_64.
const MMSGHDR_LEN: u64 = 64;

/// The syscall argument registers, as laid out in `struct pt_regs` from `dx` to `orig_ax`.
#[repr(C)]
#[derive(Clone, Copy)]
struct SyscallRegs {
    dx: u64,
    si: u64,
    di: u64,
    orig_ax: u64,
}
/// Offset of `dx` in x86_64 `struct pt_regs`.
const PT_REGS_DX: usize = 96;

/// Entry of a `sendmmsg`/`recvmmsg`: the next message the thread moves is index 0.
#[inline(always)]
pub fn on_mmsg_enter() {
    let _ = maps::MMSG_INDEX.insert(bpf_get_current_pid_tgid(), 0u32, 0);
}

/// `struct sock_common` offsets: `skc_daddr`, `skc_rcv_saddr`, `skc_dport` (network order),
/// `skc_num`, `skc_family`, `skc_v6_daddr`, `skc_v6_rcv_saddr`: the layout every kernel since
/// 2.6 shares on 64-bit.
const SKC_DADDR: usize = 0;
const SKC_RCV_SADDR: usize = 4;
const SKC_DPORT: usize = 12;
const SKC_NUM: usize = 14;
const SKC_FAMILY: usize = 16;
const SKC_V6_DADDR: usize = 56;
const SKC_V6_RCV_SADDR: usize = 72;
/// Offset of `r8` (a syscall's fifth argument) in x86_64 `struct pt_regs`.
const PT_REGS_R8: usize = 72;
const BPF_SK_STORAGE_GET_F_CREATE: u64 = 1;

#[inline(always)]
pub fn on_sock_io(ctx: &BtfTracePointContext, dir: u32) {
    let sk: *const u8 = ctx.arg(0);
    let ret: i32 = ctx.arg(1);
    let flags: i32 = ctx.arg(2);
    if sk.is_null() {
        return;
    }
    // SAFETY: `sk` is a BTF-typed `struct sock *`; the verifier checks these loads against the
    // kernel's BTF and makes them fault-safe.
    let family = unsafe { core::ptr::read_volatile(sk.add(SKC_FAMILY) as *const u16) };
    if family != AF_INET && family != AF_INET6 {
        return;
    }
    if ret < 0 || (ret == 0 && dir == direction::EGRESS) {
        return;
    }
    if dir == direction::INGRESS && flags & MSG_PEEK != 0 {
        return;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(comm) = process_filter(pid_tgid) else {
        if is_agent(pid_tgid) {
            note_agent_socket(sk, family);
        }
        maps::count(counter::FILTERED, 1);
        return;
    };
    let filters = config::filters();
    // A socket call inside a probed SSL call: the plaintext comes from its return probe.
    let tls_pending = maps::tls_active();
    let in_ssl = if tls_pending {
        maps::TLS_CALLS.get_ptr_mut(&pid_tgid)
    } else {
        None
    };
    // SAFETY: `CONNS` is a socket-storage map; `sk` is the BTF socket pointer the helper wants.
    let conn = unsafe {
        bpf_sk_storage_get(
            core::ptr::from_ref(&maps::CONNS).cast_mut().cast(),
            sk.cast_mut().cast(),
            core::ptr::null_mut(),
            BPF_SK_STORAGE_GET_F_CREATE,
        )
    } as *mut ConnState;
    if conn.is_null() {
        maps::count(counter::CONN_MAP_FULL, 1);
        return;
    }
    let len = ret as u64;
    // SAFETY: `conn` is this socket's storage; concurrent calls on one socket direction are
    // serialised by the socket lock, so the plain read-modify-write is enough.
    let (position, protocol) = unsafe {
        if (*conn).verdict == verdict::UNKNOWN {
            (*conn).verdict = first_verdict(sk, filters);
            (*conn).protocol = sk_protocol(sk);
        }
        if let Some(call) = in_ssl {
            if (*call).op == tls_op::ASSOCIATE {
                // Only a socket that opened with a TLS handshake can carry that ciphertext.
                if (*conn).tls == tls_state::CIPHERTEXT {
                    let pending = *call;
                    maps::tls_call_remove(pid_tgid);
                    crate::tls::associate(
                        &pending,
                        pid_tgid,
                        sk as u64,
                        syscall_regs().di as u32,
                        family,
                        (*conn).verdict,
                    );
                    (*conn).tls = tls_state::PROBED;
                }
            } else {
                (*call).sk = sk as u64;
                (*call).fd = syscall_regs().di as u32;
                (*call).verdict = (*conn).verdict;
                (*call).family = family as u32;
                (*conn).tls = tls_state::PROBED;
            }
        }
        if (*conn).tls == tls_state::NONE
            && tls_pending
            && crate::gotls::claim_wanted(pid_tgid, syscall_regs().di as u32)
        {
            // A Go TLS connection whose handshake the agent missed: this is its socket.
            (*conn).tls = tls_state::CIPHERTEXT;
            crate::gotls::remember_tls_socket(
                pid_tgid,
                syscall_regs().di as u32,
                sk as u64,
                (*conn).verdict,
                family,
            );
        }
        if (*conn).tls != tls_state::NONE {
            maps::count(counter::TLS_CIPHERTEXT, 1);
            return;
        }
        if (*conn).verdict == verdict::IGNORE {
            maps::count(counter::FILTERED, 1);
            return;
        }
        let p = take_position(dir, &mut (*conn).tx_pos, &mut (*conn).rx_pos, len);
        (p, (*conn).protocol as u16)
    };

    let regs = syscall_regs();
    let msg_index = match regs.orig_ax {
        nr::SENDMMSG | nr::RECVMMSG => mmsg_index(pid_tgid),
        _ => 0,
    };
    let call = Call {
        dir,
        pid_tgid,
        sk,
        ret,
        len,
        position,
        family,
        protocol,
        comm,
        msg_index,
    };
    let limit = config::capture_limit();
    // `ret` within the buffer too: a UDP receive with MSG_TRUNC returns the datagram's length.
    if ret > 0
        && (ret as u32) <= limit
        && ret as usize <= SMALL_CAPTURE
        && ret as u64 <= regs.dx
        && is_plain(regs.orig_ax)
    {
        // A small single-buffer call (most requests and responses): read straight into a
        // ring slot reserved at its full size, no scratch area and no second copy.
        if ret as usize <= TINY_CAPTURE {
            capture_small::<TINY_CAPTURE>(&call, &regs, conn);
        } else {
            capture_small::<SMALL_CAPTURE>(&call, &regs, conn);
        }
        return;
    }

    let Some(ev) = scratch() else {
        return;
    };
    fill_header(&mut ev.header, &call, &regs);
    if protocol == ip_proto::UDP {
        udp_addrs(&mut ev.header, sk, family, dir, &regs, msg_index);
    }

    if ret > 0 {
        let want = if (ret as u32) < limit {
            ret as u32
        } else {
            limit
        };
        if want < ret as u32 {
            maps::count(counter::TRUNCATED, 1);
        }
        let captured = match regs.orig_ax {
            nr::READ | nr::WRITE | nr::SENDTO | nr::RECVFROM => {
                let want = if regs.dx < want as u64 {
                    regs.dx as u32
                } else {
                    want
                };
                copy_plain(ev, regs.si, want)
            }
            nr::READV | nr::WRITEV => copy_iov(ev, regs.si, regs.dx, want),
            nr::SENDMSG | nr::RECVMSG => copy_msghdr(ev, regs.si, want),
            nr::SENDMMSG | nr::RECVMMSG => {
                copy_msghdr(ev, regs.si + msg_index as u64 * MMSGHDR_LEN, want)
            }
            _ => {
                ev.header.flags |= data_flags::UNREADABLE;
                maps::count(counter::UNREADABLE, 1);
                Some(0)
            }
        };
        match captured {
            Some(n) => ev.header.cap_len = n,
            None => {
                ev.header.flags |= data_flags::READ_FAILED;
                maps::count(counter::READ_FAILED, 1);
            }
        }
        if opens_tls(&ev.header, &ev.data) {
            mark_ciphertext(conn, &call, regs.di as u32);
            return;
        }
    }
    submit(ev);
}

/// What one socket call moved, for its record's header.
struct Call {
    dir: u32,
    pid_tgid: u64,
    sk: *const u8,
    ret: i32,
    len: u64,
    position: u64,
    family: u16,
    protocol: u16,
    comm: [u64; 2],
    msg_index: u32,
}

/// Calls whose data is one user buffer (`rsi`, at most `rdx` bytes).
#[inline(always)]
fn is_plain(syscall: u64) -> bool {
    matches!(syscall, nr::READ | nr::WRITE | nr::SENDTO | nr::RECVFROM)
}

/// Every header field of `call` (the UDP addresses zero; `udp_addrs` fills them).
#[inline(always)]
fn fill_header(h: &mut DataHeader, call: &Call, regs: &SyscallRegs) {
    h.kind = EventKind::Data as u32;
    h.direction = call.dir;
    let ids = reported_pid_tgid(call.pid_tgid);
    h.tgid = (ids >> 32) as u32;
    h.tid = ids as u32;
    h.fd = regs.di as u32;
    h.syscall = regs.orig_ax as u32;
    h.flags = if call.ret == 0 { data_flags::EOF } else { 0 };
    h.cap_len = 0;
    h.sk = call.sk as u64;
    // SAFETY: helper without arguments.
    h.ts_ns = unsafe { bpf_ktime_get_ns() };
    h.position = call.position;
    h.len = call.len;
    h.family = call.family;
    h.protocol = call.protocol;
    h.msg_index = call.msg_index;
    set_comm(h, call.comm);
    clear_addrs(h);
}

/// Capture a plain call of at most `N` bytes (within the capture limit) into a reserved
/// [`SmallDataEvent`].
#[inline(always)]
fn capture_small<const N: usize>(call: &Call, regs: &SyscallRegs, conn: *mut ConnState) {
    let Some(mut entry) = maps::EVENTS.reserve::<SmallDataEvent<N>>(0) else {
        maps::count(counter::RING_FULL, 1);
        return;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` is the reserved slot, exclusively ours until submitted or discarded.
    let ev = unsafe { &mut *rec };
    fill_header(&mut ev.header, call, regs);
    if call.protocol == ip_proto::UDP {
        udp_addrs(
            &mut ev.header,
            call.sk,
            call.family,
            call.dir,
            regs,
            call.msg_index,
        );
    }
    // Read back from the slot: the verifier needs the bound checked on the register the
    // helper gets, which the compiler would otherwise fold into the caller's check.
    // SAFETY: a field of the slot, just written.
    let n = unsafe { core::ptr::read_volatile(&ev.header.len) };
    if n > 0 && n <= N as u64 {
        let n = n as u32;
        // SAFETY: n ≤ N, the size of `data`; a read of user memory through the
        // helper, which fails cleanly.
        let read =
            unsafe { bpf_probe_read_user(ev.data.as_mut_ptr().cast(), n, regs.si as *const _) };
        if read == 0 {
            ev.header.cap_len = n;
        } else {
            ev.header.flags |= data_flags::READ_FAILED;
            maps::count(counter::READ_FAILED, 1);
        }
    }
    if opens_tls(&ev.header, &ev.data) {
        mark_ciphertext(conn, call, regs.di as u32);
        entry.discard(BPF_RB_NO_WAKEUP);
        return;
    }
    entry.submit(BPF_RB_NO_WAKEUP);
}

/// Whether this record opens a TCP stream with a TLS handshake.
#[inline(always)]
fn opens_tls(h: &DataHeader, data: &[u8]) -> bool {
    h.position == 0 && h.protocol == ip_proto::TCP && tls_record_start(h.cap_len, data)
}

/// A TLS handshake opened the stream: ciphertext from here on. OpenSSL's and Go's probes
/// give the plaintext (Go's find the socket by its fd, remembered here); other TLS stacks are
/// not readable from the socket.
#[inline(always)]
fn mark_ciphertext(conn: *mut ConnState, call: &Call, fd: u32) {
    // SAFETY: `conn` is this socket's storage, as in `on_sock_io`.
    let verdict = unsafe {
        (*conn).tls = tls_state::CIPHERTEXT;
        (*conn).verdict
    };
    crate::gotls::remember_tls_socket(call.pid_tgid, fd, call.sk as u64, verdict, call.family);
    maps::count(counter::TLS_CIPHERTEXT, 1);
}

/// The stream position of `len` bytes moved in `dir`: the direction's counter, advanced.
#[inline(always)]
pub fn take_position(dir: u32, tx_pos: &mut u64, rx_pos: &mut u64, len: u64) -> u64 {
    let pos = if dir == direction::EGRESS {
        tx_pos
    } else {
        rx_pos
    };
    let p = *pos;
    *pos = p + len;
    p
}

/// Whether the calling thread belongs to the agent itself.
#[inline(always)]
fn is_agent(pid_tgid: u64) -> bool {
    let tgid = (if config::filters() & filter::PIDNS != 0 {
        match ns_pid_tgid() {
            Some(id) => id,
            None => return false,
        }
    } else {
        pid_tgid
    } >> 32) as u32;
    tgid == config::agent_tgid()
}

/// The agent's own socket, seen for the first time: mark it ignored and tell user space its
/// local end, so that the other end (a collector on this host, in any network namespace) is
/// excluded by who it talks to, not by port. One socket-storage lookup per agent call; the
/// agent's own traffic is its export, a few calls a second.
#[inline(always)]
fn note_agent_socket(sk: *const u8, family: u16) {
    // SAFETY: as in `on_sock_io`: `CONNS` is a socket-storage map, `sk` the BTF socket.
    let conn = unsafe {
        bpf_sk_storage_get(
            core::ptr::from_ref(&maps::CONNS).cast_mut().cast(),
            sk.cast_mut().cast(),
            core::ptr::null_mut(),
            BPF_SK_STORAGE_GET_F_CREATE,
        )
    } as *mut ConnState;
    if conn.is_null() {
        return;
    }
    // SAFETY: this socket's storage; a lost race only sends the event twice.
    unsafe {
        if (*conn).verdict != verdict::UNKNOWN {
            return;
        }
        (*conn).verdict = verdict::IGNORE;
    }
    let Some(mut entry) = maps::EVENTS.reserve::<SockStateEvent>(0) else {
        maps::count(counter::RING_FULL, 1);
        return;
    };
    let mut ev = SockStateEvent {
        kind: EventKind::AgentSocket as u32,
        old_state: 0,
        new_state: 0,
        family,
        sport: 0,
        dport: 0,
        _pad: 0,
        tgid: 0,
        sk: sk as u64,
        // SAFETY: helper without arguments.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        saddr: [0; 16],
        daddr: [0; 16],
    };
    (ev.saddr, ev.sport, ev.daddr, ev.dport) = sock_ends(sk, family);
    entry.write(ev);
    entry.submit(0);
}

/// Whether the calling process passes the pid-namespace, pid, cgroup and comm filters (never the
/// agent itself); its thread name when the comm filter is on (else zeros: user space names
/// processes from /proc and exec events, and the name costs a helper call).
#[inline(always)]
pub fn process_filter(pid_tgid: u64) -> Option<[u64; 2]> {
    let filters = config::filters();
    // In pid-namespace mode the pids user space knows (ours included) are the namespace's.
    let tgid = (if filters & filter::PIDNS != 0 {
        ns_pid_tgid()?
    } else {
        pid_tgid
    } >> 32) as u32;
    if tgid == config::agent_tgid() {
        return None;
    }
    // SAFETY: read-only lookups of plain values.
    if filters & filter::PID != 0 && unsafe { maps::PID_FILTER.get(&tgid) }.is_none() {
        return None;
    }
    // Host tgids, also in pid-namespace mode (the exec and fork programs see those).
    if filters & filter::EXE != 0
        // SAFETY: a read-only lookup of a plain value.
        && unsafe { maps::EXE_PIDS.get(&((pid_tgid >> 32) as u32)) }.is_none()
    {
        return None;
    }
    if filters & filter::CGROUP != 0 {
        // SAFETY: a helper on the current task, no memory of ours.
        let cgroup = unsafe { aya_ebpf::helpers::bpf_get_current_cgroup_id() };
        // SAFETY: a read-only lookup of a plain value.
        if unsafe { maps::CGROUP_FILTER.get(&cgroup) }.is_none() {
            return None;
        }
    }
    if filters & filter::COMM != 0 {
        let comm = bpf_get_current_comm().unwrap_or([0u8; 16]);
        // SAFETY: as above.
        if unsafe { maps::COMM_FILTER.get(&comm) }.is_none() {
            return None;
        }
        // SAFETY: 16 plain bytes as two words.
        return Some(unsafe { core::mem::transmute::<[u8; 16], [u64; 2]>(comm) });
    }
    // Two word stores, not a byte loop (`[0u8; 16]` becomes a BPF memset call).
    Some([0, 0])
}

/// The current task's (tgid, pid) in the agent's pid namespace, as a `pid_tgid`; `None` when
/// the task is outside it.
#[inline(always)]
fn ns_pid_tgid() -> Option<u64> {
    let (dev, ino) = config::pidns();
    let mut ns = bpf_pidns_info { pid: 0, tgid: 0 };
    // SAFETY: `ns` is a valid, writable `bpf_pidns_info` of the size passed.
    let ret = unsafe {
        bpf_get_ns_current_pid_tgid(
            dev,
            ino,
            &mut ns,
            core::mem::size_of::<bpf_pidns_info>() as u32,
        )
    };
    (ret == 0).then_some(((ns.tgid as u64) << 32) | ns.pid as u64)
}

/// The `pid_tgid` to put in a record of the current task (which passed [`process_filter`]):
/// the host's, or in pid-namespace mode the namespace's.
#[inline(always)]
pub fn reported_pid_tgid(pid_tgid: u64) -> u64 {
    if config::filters() & filter::PIDNS != 0 {
        ns_pid_tgid().unwrap_or(pid_tgid)
    } else {
        pid_tgid
    }
}

/// Whether the current task is one user space can see: always, or in pid-namespace mode
/// when it is in the agent's namespace.
#[inline(always)]
pub fn visible() -> bool {
    config::filters() & filter::PIDNS == 0 || ns_pid_tgid().is_some()
}

// The word stores below depend on this layout.
const _: () = {
    assert!(core::mem::offset_of!(DataHeader, comm) == 72);
    assert!(core::mem::offset_of!(DataHeader, local_addr) == 88);
    assert!(core::mem::offset_of!(DataHeader, _pad) == 124);
    assert!(DATA_HEADER_LEN == 128);
};

/// Store `comm` (two words from [`process_filter`]) in the header with two word stores.
#[inline(always)]
pub fn set_comm(h: &mut DataHeader, comm: [u64; 2]) {
    let p = h.comm.as_mut_ptr().cast::<u64>();
    // SAFETY: `comm` is 16 bytes at offset 72 of the 8-byte aligned header.
    unsafe {
        core::ptr::write_volatile(p, comm[0]);
        core::ptr::write_volatile(p.add(1), comm[1]);
    }
}

/// Zero the UDP address fields (`local_addr`, `peer_addr`, the ports, the padding) with word
/// stores.
#[inline(always)]
fn clear_addrs(h: &mut DataHeader) {
    let p = h.local_addr.as_mut_ptr().cast::<u64>();
    // SAFETY: `local_addr` at offset 88 through `_pad` at 124: 40 bytes of the 8-byte
    // aligned header, written as five words. Volatile, or LLVM turns them back into a
    // call to BPF's byte-at-a-time memset.
    unsafe {
        core::ptr::write_volatile(p, 0);
        core::ptr::write_volatile(p.add(1), 0);
        core::ptr::write_volatile(p.add(2), 0);
        core::ptr::write_volatile(p.add(3), 0);
        core::ptr::write_volatile(p.add(4), 0);
    }
}

/// This CPU's scratch record.
#[inline(always)]
pub fn scratch() -> Option<&'static mut DataEvent> {
    // SAFETY: helper without arguments.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    // SAFETY: per-CPU slot, exclusively ours while this program runs (programs do not nest on
    // a CPU: tracepoint and uprobe programs run with migration and preemption of BPF off).
    maps::SCRATCH.get_ptr_mut(cpu).map(|p| unsafe { &mut *p })
}

/// The port filter's verdict for a socket seen for the first time (also one that predates
/// the agent): its local and remote ports, read from `sock_common`.
#[inline(always)]
fn first_verdict(sk: *const u8, filters: u32) -> u32 {
    if filters & filter::PORT == 0 {
        return verdict::TRACE;
    }
    // SAFETY: BTF-checked loads from `struct sock_common`, as for the family.
    let (local, remote) = unsafe {
        (
            core::ptr::read_volatile(sk.add(SKC_NUM) as *const u16),
            u16::from_be(core::ptr::read_volatile(sk.add(SKC_DPORT) as *const u16)),
        )
    };
    // SAFETY: read-only lookups of plain values.
    let hit = unsafe {
        maps::PORT_FILTER.get(&local).is_some() || maps::PORT_FILTER.get(&remote).is_some()
    };
    if hit { verdict::TRACE } else { verdict::IGNORE }
}

/// The socket's IP protocol, read once per socket at the offset the agent found in BTF.
#[inline(always)]
fn sk_protocol(sk: *const u8) -> u32 {
    let off = config::sk_protocol_offset();
    if off == 0 || off > 4096 {
        return 0;
    }
    // SAFETY: a read of kernel memory through the helper, which fails cleanly.
    unsafe { aya_ebpf::helpers::bpf_probe_read_kernel(sk.add(off as usize) as *const u16) }
        .map_or(0, u32::from)
}

/// A socket's local and remote ends (addresses as 16 bytes, IPv4 in the first four; ports in
/// host order), from `struct sock_common`.
#[inline(always)]
fn sock_ends(sk: *const u8, family: u16) -> ([u8; 16], u16, [u8; 16], u16) {
    // SAFETY: BTF-checked loads from `struct sock_common`, as for the family.
    unsafe {
        let at32 = |off: usize| core::ptr::read_volatile(sk.add(off) as *const u32);
        let local_port = core::ptr::read_volatile(sk.add(SKC_NUM) as *const u16);
        let peer_port = u16::from_be(core::ptr::read_volatile(sk.add(SKC_DPORT) as *const u16));
        let (local, peer) = if family == AF_INET {
            ([at32(SKC_RCV_SADDR), 0, 0, 0], [at32(SKC_DADDR), 0, 0, 0])
        } else {
            (
                [
                    at32(SKC_V6_RCV_SADDR),
                    at32(SKC_V6_RCV_SADDR + 4),
                    at32(SKC_V6_RCV_SADDR + 8),
                    at32(SKC_V6_RCV_SADDR + 12),
                ],
                [
                    at32(SKC_V6_DADDR),
                    at32(SKC_V6_DADDR + 4),
                    at32(SKC_V6_DADDR + 8),
                    at32(SKC_V6_DADDR + 12),
                ],
            )
        };
        (
            core::mem::transmute::<[u32; 4], [u8; 16]>(local),
            local_port,
            core::mem::transmute::<[u32; 4], [u8; 16]>(peer),
            peer_port,
        )
    }
}

/// The addresses of a UDP datagram: local from the socket; the peer from the call's
/// destination (`sendto`/`sendmsg`/`sendmmsg` with an address), else the connected address.
#[inline(always)]
fn udp_addrs(
    h: &mut DataHeader,
    sk: *const u8,
    family: u16,
    dir: u32,
    regs: &SyscallRegs,
    msg_index: u32,
) {
    (h.local_addr, h.local_port, h.peer_addr, h.peer_port) = sock_ends(sk, family);
    if dir != direction::EGRESS {
        return;
    }
    let name = match regs.orig_ax {
        nr::SENDTO => user_regs_r8(),
        // struct msghdr: msg_name at 0.
        nr::SENDMSG => read_user_u64(regs.si),
        nr::SENDMMSG => read_user_u64(regs.si + msg_index as u64 * MMSGHDR_LEN),
        _ => 0,
    };
    if name == 0 {
        return;
    }
    // struct sockaddr_in / sockaddr_in6: family, port (network order), then the address
    // (at 4 for IPv4, at 8 for IPv6).
    // SAFETY: a read of user memory through the helper.
    let Ok(sa) = (unsafe { aya_ebpf::helpers::bpf_probe_read_user(name as *const [u8; 24]) })
    else {
        return;
    };
    let sa_family = u16::from_ne_bytes([sa[0], sa[1]]);
    h.peer_port = u16::from_be_bytes([sa[2], sa[3]]);
    if sa_family == AF_INET {
        let p = h.peer_addr.as_mut_ptr().cast::<u32>();
        // SAFETY: 16 bytes at offset 104 of the 8-byte aligned header; word stores, not a
        // memset call.
        unsafe {
            core::ptr::write_volatile(p.add(1), 0);
            core::ptr::write_volatile(p.add(2), 0);
            core::ptr::write_volatile(p.add(3), 0);
        }
        h.peer_addr[0] = sa[4];
        h.peer_addr[1] = sa[5];
        h.peer_addr[2] = sa[6];
        h.peer_addr[3] = sa[7];
    } else if sa_family == AF_INET6 {
        let mut i = 0;
        while i < 16 {
            h.peer_addr[i] = sa[8 + i];
            i += 1;
        }
    }
}

/// Whether the captured bytes open with a TLS handshake record header: content type 22,
/// version 3.x (`0x0301`–`0x0304`), a length up to 2^14 + 2048.
#[inline(always)]
fn tls_record_start(cap_len: u32, d: &[u8]) -> bool {
    if cap_len < 5 || d.len() < 5 {
        return false;
    }
    let len = u16::from_be_bytes([d[3], d[4]]);
    d[0] == 0x16 && d[1] == 0x03 && d[2] <= 0x04 && len > 0 && len <= 18432
}

#[inline(always)]
pub fn read_user_u64(addr: u64) -> u64 {
    // SAFETY: a read of user memory through the helper.
    unsafe { aya_ebpf::helpers::bpf_probe_read_user(addr as *const u64) }.unwrap_or(0)
}

/// The current thread's fifth syscall argument (`sendto`'s destination address).
#[inline(always)]
fn user_regs_r8() -> u64 {
    // SAFETY: as in `syscall_regs`.
    unsafe {
        let task = bpf_get_current_task_btf();
        let pt = bpf_task_pt_regs(task) as *const u8;
        if pt.is_null() {
            return 0;
        }
        core::ptr::read_volatile(pt.add(PT_REGS_R8) as *const u64)
    }
}

#[inline(always)]
fn mmsg_index(pid_tgid: u64) -> u32 {
    match maps::MMSG_INDEX.get_ptr_mut(&pid_tgid) {
        Some(p) => {
            // SAFETY: per-thread key; only this thread updates it.
            unsafe {
                let i = *p;
                *p = i + 1;
                i
            }
        }
        None => 0,
    }
}

/// The current thread's syscall number and first three arguments.
///
/// `bpf_task_pt_regs` returns a BTF-typed pointer, so the four fields are plain loads the
/// verifier checks against the kernel's `struct pt_regs` (no `bpf_probe_read_kernel` call).
#[inline(always)]
fn syscall_regs() -> SyscallRegs {
    // SAFETY: helpers on the current task; the loads are at pt_regs field offsets, which the
    // verifier checks against BTF and turns into fault-safe loads.
    unsafe {
        let task = bpf_get_current_task_btf();
        let pt = bpf_task_pt_regs(task) as *const u8;
        if pt.is_null() {
            return SyscallRegs {
                dx: 0,
                si: 0,
                di: 0,
                orig_ax: u64::MAX,
            };
        }
        let at = |off: usize| core::ptr::read_volatile(pt.add(off) as *const u64);
        SyscallRegs {
            dx: at(PT_REGS_DX),
            si: at(PT_REGS_DX + 8),
            di: at(PT_REGS_DX + 16),
            orig_ax: at(PT_REGS_DX + 24),
        }
    }
}

/// Copy `n` bytes from user address `src` to `ev.data[off..]`. Offsets and sizes are masked so
/// the verifier sees them bounded; callers keep them within `MAX`.
#[inline(always)]
fn read_into(ev: &mut DataEvent, off: u32, src: u64, n: u32) -> bool {
    let off = off & (MAX - 1);
    if n > MAX {
        return false;
    }
    // SAFETY: off < MAX and n <= MAX, inside `data` (2 * MAX bytes).
    unsafe {
        bpf_probe_read_user(
            ev.data.as_mut_ptr().add(off as usize).cast(),
            n,
            src as *const _,
        ) == 0
    }
}

#[inline(always)]
pub fn copy_plain(ev: &mut DataEvent, buf: u64, n: u32) -> Option<u32> {
    if read_into(ev, 0, buf, n) {
        Some(n)
    } else {
        None
    }
}

#[inline(always)]
fn copy_msghdr(ev: &mut DataEvent, msg: u64, want: u32) -> Option<u32> {
    // struct msghdr: msg_iov at 16, msg_iovlen at 24.
    // SAFETY: reads of user memory through the helper.
    let iov: u64 =
        unsafe { aya_ebpf::helpers::bpf_probe_read_user((msg + 16) as *const u64) }.ok()?;
    let cnt: u64 =
        unsafe { aya_ebpf::helpers::bpf_probe_read_user((msg + 24) as *const u64) }.ok()?;
    copy_iov(ev, iov, cnt, want)
}

#[inline(always)]
fn copy_iov(ev: &mut DataEvent, iov: u64, cnt: u64, want: u32) -> Option<u32> {
    let mut off: u32 = 0;
    for i in 0..MAX_IOV {
        if i as u64 >= cnt || off >= want {
            break;
        }
        // SAFETY: struct iovec { void *base; size_t len; } read through the helper.
        let seg: [u64; 2] = unsafe {
            aya_ebpf::helpers::bpf_probe_read_user((iov + i as u64 * 16) as *const [u64; 2])
        }
        .ok()?;
        let room = (want - off) as u64;
        let n = if seg[1] < room {
            seg[1] as u32
        } else {
            room as u32
        };
        if !read_into(ev, off, seg[0], n) {
            return if off > 0 { Some(off) } else { None };
        }
        off += n;
    }
    Some(off)
}

/// Send the record. Never wakes the reader: it drains on a short timer, in batches (waking
/// per event halved throughput in the prototype, and a ring query per event costs a helper).
#[inline(always)]
pub fn submit(ev: &mut DataEvent) {
    let cap = ev.header.cap_len & (2 * MAX - 1);
    let size = DATA_HEADER_LEN + cap as usize;
    // SAFETY: `size` ≤ size_of::<DataEvent>(), so the slice stays inside the map value.
    let bytes = unsafe { core::slice::from_raw_parts((ev as *const DataEvent).cast::<u8>(), size) };
    if maps::EVENTS
        .output::<[u8]>(bytes, BPF_RB_NO_WAKEUP)
        .is_err()
    {
        maps::count(counter::RING_FULL, 1);
    }
}
