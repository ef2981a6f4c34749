//! OpenSSL plaintext: entry and return probes on `SSL_write`, `SSL_read`, `SSL_write_ex` and
//! `SSL_read_ex`, and the per-thread state that ties them to a socket.
//!
//! The entry probe stashes the call's arguments per thread ([`maps::TLS_CALLS`]). A socket
//! call that runs while the stash is there is nested in the SSL call: the data path
//! ([`crate::data`]) records its `sk`, fd and family in the stash, marks the socket as probed
//! TLS and drops its ciphertext. The return probe then sends the plaintext the call moved, as a
//! data record flagged [`data_flags::TLS`], with plaintext stream positions kept per
//! `(process, SSL *)` in [`maps::TLS_CONNS`] (an `SSL_read` served from OpenSSL's own buffer
//! runs no socket call, so the socket learnt earlier is kept there too).
//!
//! The attach cookie says which of the four functions fired ([`tls_op`]), so one entry and one
//! return program serve all of them.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_get_current_pid_tgid, generated::bpf_get_attach_cookie},
    programs::{ProbeContext, RetProbeContext},
};
use wirelens_ebpf::{
    EventKind, TlsAssocEvent, counter, data_flags, direction, ip_proto, tls_op, verdict,
};

use crate::{config, data, maps};

/// An SSL call in progress on a thread.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TlsCall {
    /// The `SSL *`.
    pub ssl: u64,
    /// The caller's buffer.
    pub buf: u64,
    /// `_ex` calls: where the byte count is written on return.
    pub len_ptr: u64,
    /// The socket a nested socket call used (0: none yet).
    pub sk: u64,
    /// Its fd.
    pub fd: u32,
    /// [`tls_op`] of the call.
    pub op: u32,
    /// The socket's port-filter verdict.
    pub verdict: u32,
    /// The socket's address family.
    pub family: u32,
}

/// Key of a TLS connection: the process and its `SSL *`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TlsKey {
    pub tgid: u32,
    pub _pad: u32,
    pub ssl: u64,
}

/// Plaintext stream state of a TLS connection.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TlsConn {
    pub sk: u64,
    pub tx_pos: u64,
    pub rx_pos: u64,
    pub fd: u32,
    pub verdict: u32,
    pub family: u32,
    pub _pad: u32,
}

/// A socket call of a thread that has an [`tls_op::ASSOCIATE`] entry, on a socket that opened
/// with a TLS handshake: the `SSL *` of the entry is this socket. Point its plaintext state at
/// the socket and tell user space.
#[inline(always)]
pub fn associate(call: &TlsCall, pid_tgid: u64, sk: u64, fd: u32, family: u16, verdict: u32) {
    let tgid = (pid_tgid >> 32) as u32;
    let key = TlsKey {
        tgid,
        _pad: 0,
        ssl: call.ssl,
    };
    if let Some(conn) = maps::TLS_CONNS.get_ptr_mut(&key) {
        // SAFETY: per-(process, SSL) entry, as in `on_return`.
        unsafe {
            (*conn).sk = sk;
            (*conn).fd = fd;
            (*conn).verdict = verdict;
            (*conn).family = family as u32;
        }
    }
    let Some(mut entry) = maps::EVENTS.reserve::<TlsAssocEvent>(0) else {
        maps::count(counter::RING_FULL, 1);
        return;
    };
    entry.write(TlsAssocEvent {
        kind: EventKind::TlsAssoc as u32,
        tgid: (data::reported_pid_tgid(pid_tgid) >> 32) as u32,
        fd,
        _pad: 0,
        ssl: call.ssl,
        sk,
    });
    entry.submit(1 /* BPF_RB_NO_WAKEUP */);
}

/// Entry of `SSL_free`: forget the object's plaintext state. The allocator hands the same
/// address to the next `SSL_new`, whose connection must start at position 0 on its own socket.
#[inline(always)]
pub fn on_free(ctx: &ProbeContext) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let key = TlsKey {
        tgid: (pid_tgid >> 32) as u32,
        _pad: 0,
        ssl: ctx.arg(0).unwrap_or(0),
    };
    let _ = maps::TLS_CONNS.remove(&key);
}

/// Entry of an SSL call: stash its arguments for the nested socket call and the return.
#[inline(always)]
pub fn on_enter(ctx: &ProbeContext) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if data::process_filter(pid_tgid).is_none() {
        return;
    }
    // SAFETY: the helper reads the cookie of the link that ran this program.
    let op = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } as u32;
    let ex = op == tls_op::WRITE_EX || op == tls_op::READ_EX;
    let call = TlsCall {
        ssl: ctx.arg(0).unwrap_or(0),
        buf: ctx.arg(1).unwrap_or(0),
        len_ptr: if ex { ctx.arg(3).unwrap_or(0) } else { 0 },
        sk: 0,
        fd: 0,
        op,
        verdict: verdict::UNKNOWN,
        family: 0,
    };
    maps::tls_call_insert(pid_tgid, &call);
}

/// Return of an SSL call: send the plaintext it moved.
#[inline(always)]
pub fn on_return(ctx: &RetProbeContext) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(comm) = data::process_filter(pid_tgid) else {
        return;
    };
    // SAFETY: read-only copy of a plain value, then the entry is removed.
    let Some(call) = (unsafe { maps::TLS_CALLS.get(&pid_tgid) })
        .copied()
        .filter(|c| c.op != tls_op::ASSOCIATE)
    else {
        maps::count(counter::TLS_UNPAIRED, 1);
        return;
    };
    maps::tls_call_remove(pid_tgid);
    let ret: i64 = ctx.ret::<i32>() as i64;
    let len = match call.op {
        tls_op::WRITE | tls_op::READ if ret > 0 => ret as u64,
        tls_op::WRITE_EX | tls_op::READ_EX if ret == 1 && call.len_ptr != 0 => {
            data::read_user_u64(call.len_ptr)
        }
        _ => return,
    };
    if len == 0 || call.buf == 0 {
        return;
    }
    let tgid = (pid_tgid >> 32) as u32;
    let key = TlsKey {
        tgid,
        _pad: 0,
        ssl: call.ssl,
    };
    let conn = match maps::TLS_CONNS.get_ptr_mut(&key) {
        Some(c) => c,
        None => {
            let fresh = TlsConn {
                sk: 0,
                tx_pos: 0,
                rx_pos: 0,
                fd: 0,
                verdict: verdict::UNKNOWN,
                family: 0,
                _pad: 0,
            };
            if maps::TLS_CONNS.insert(&key, &fresh, 0).is_err() {
                maps::count(counter::CONN_MAP_FULL, 1);
                return;
            }
            match maps::TLS_CONNS.get_ptr_mut(&key) {
                Some(c) => c,
                None => return,
            }
        }
    };
    let dir = if call.op == tls_op::WRITE || call.op == tls_op::WRITE_EX {
        direction::EGRESS
    } else {
        direction::INGRESS
    };
    // SAFETY: per-(process, SSL) entry; one thread drives an SSL object at a time.
    let (sk, fd, family, position) = unsafe {
        if call.sk != 0 {
            (*conn).sk = call.sk;
            (*conn).fd = call.fd;
            (*conn).verdict = call.verdict;
            (*conn).family = call.family;
        } else if (*conn).sk == 0 && dir == direction::EGRESS {
            // Encrypted into a memory BIO: the thread sends the ciphertext itself next.
            let pending = TlsCall {
                op: tls_op::ASSOCIATE,
                ..call
            };
            maps::tls_call_insert(pid_tgid, &pending);
        }
        if (*conn).verdict == verdict::IGNORE {
            maps::count(counter::FILTERED, 1);
            return;
        }
        let p = data::take_position(dir, &mut (*conn).tx_pos, &mut (*conn).rx_pos, len);
        let sk = if (*conn).sk != 0 {
            (*conn).sk
        } else {
            call.ssl
        };
        (sk, (*conn).fd, (*conn).family as u16, p)
    };
    send_plaintext(&Plaintext {
        pid_tgid,
        comm,
        dir,
        op: call.op,
        fd,
        sk,
        family,
        position,
        len,
        buf: call.buf,
    });
}

/// Plaintext one TLS call moved, ready to send.
pub struct Plaintext {
    pub pid_tgid: u64,
    pub comm: [u64; 2],
    pub dir: u32,
    /// [`tls_op`] of the call.
    pub op: u32,
    pub fd: u32,
    /// The socket, or the TLS object's user address while no socket is known.
    pub sk: u64,
    pub family: u16,
    /// Plaintext stream position of the first byte.
    pub position: u64,
    pub len: u64,
    /// The caller's buffer.
    pub buf: u64,
}

/// Send a data record flagged [`data_flags::TLS`] with the bytes of `p` (up to the capture
/// limit).
#[inline(always)]
pub fn send_plaintext(p: &Plaintext) {
    let Some(ev) = data::scratch() else {
        return;
    };
    let h = &mut ev.header;
    h.kind = wirelens_ebpf::EventKind::Data as u32;
    h.direction = p.dir;
    let ids = data::reported_pid_tgid(p.pid_tgid);
    h.tgid = (ids >> 32) as u32;
    h.tid = ids as u32;
    h.fd = p.fd;
    h.syscall = p.op;
    h.flags = data_flags::TLS;
    h.cap_len = 0;
    h.sk = p.sk;
    // SAFETY: helper without arguments.
    h.ts_ns = unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() };
    h.position = p.position;
    h.len = p.len;
    h.family = p.family;
    h.protocol = ip_proto::TCP;
    h.msg_index = 0;
    data::set_comm(h, p.comm);
    let len = p.len;
    let limit = config::capture_limit();
    let want = if len < limit as u64 {
        len as u32
    } else {
        maps::count(counter::TRUNCATED, 1);
        limit
    };
    match data::copy_plain(ev, p.buf, want) {
        Some(n) => ev.header.cap_len = n,
        None => {
            ev.header.flags |= data_flags::READ_FAILED;
            maps::count(counter::READ_FAILED, 1);
        }
    }
    data::submit(ev);
}
