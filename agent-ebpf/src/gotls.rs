//! Go `crypto/tls` plaintext: probes in `crypto/tls.(*Conn).Write` and `(*Conn).Read` in Go
//! executables (register ABI, Go 1.17+).
//!
//! Each probe hit is a trap, and what it costs depends on the instruction under it: the
//! kernel emulates a direct `CALL` or a conditional branch, and single-steps anything else
//! out of line (a second trap, ~20 times dearer on the VM measured). So the probes sit on
//! such instructions where the agent finds them ([`on_data`]): `Write` is sent at its call of
//! `writeRecordLocked` (the `*tls.Conn` and the plaintext are its arguments), `Read` at its
//! copy out of the connection's plaintext (`runtime.memmove`), with the `*tls.Conn` from the
//! entry probe, which sits on the prologue's stack-check branch ([`on_enter`]).
//!
//! Where the calls are not found, the older scheme runs: the entry stashes the call, a probe
//! at each `RET` sends it ([`on_return`]). Go moves goroutines between threads and grows
//! their stacks by copying, so a uretprobe (which rewrites the return address on the stack) is
//! unsafe and a thread id does not tie a return to its entry: calls are stashed per goroutine
//! ([`maps::GO_CALLS`], keyed by the `g` pointer Go keeps in R14).
//!
//! The connection: the sending probe follows `tls.Conn.conn` (a `*net.TCPConn`) → `netFD` →
//! `pfd.Sysfd`, with the offsets in the attach cookie ([`go_cookie`]), and looks the fd up
//! in [`maps::GO_FDS`], where the data path put every socket of the process that opened
//! with a TLS handshake ([`remember_tls_socket`]). Plaintext positions are kept per
//! `(process, *tls.Conn)` in [`maps::TLS_CONNS`], as for OpenSSL. A connection whose
//! handshake the agent missed is sent under the `*tls.Conn` address, with its fd for the
//! addresses, like an OpenSSL connection whose socket is not known, and asks the data path
//! for its socket ([`maps::GO_WANTED`]): the fd's next socket call names it, and the
//! connection's plaintext starts afresh under it (position 0, joined mid-stream).
//!
//! In the older scheme a `Write` is sent at its entry when its socket is known (see
//! [`on_enter`]): its position is taken there, before `Write` takes the connection's write
//! lock, so two goroutines writing one `tls.Conn` at the same moment could have their bytes
//! placed in the wrong order (net/http, x/net/http2 and gRPC-Go each write a connection from
//! one goroutine or under their own lock). At `writeRecordLocked` the lock is held.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_get_current_pid_tgid, generated::bpf_get_attach_cookie},
    programs::ProbeContext,
};
use wirelens_ebpf::{counter, direction, go_cookie, tls_op, verdict};

use crate::{
    data, maps,
    tls::{Plaintext, TlsConn, TlsKey, send_plaintext},
};

/// Key of a Go TLS call in progress: the process and the goroutine (`g`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GoCallKey {
    pub tgid: u32,
    pub _pad: u32,
    pub g: u64,
}

/// A Go TLS call in progress.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GoCall {
    /// The `*tls.Conn`.
    pub conn: u64,
    /// `b.ptr` of the `[]byte` argument.
    pub buf: u64,
}

/// Key of [`maps::GO_FDS`]: a process and an fd.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GoFdKey {
    pub tgid: u32,
    pub fd: u32,
}

/// A socket that opened with a TLS handshake.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GoSock {
    pub sk: u64,
    pub verdict: u32,
    pub family: u32,
}

/// Carry and zero flags of x86 `EFLAGS`: a `JBE` is taken when either is set.
const EFLAGS_CF: u64 = 1;
const EFLAGS_ZF: u64 = 1 << 6;

/// The user registers of a uprobe.
#[inline(always)]
fn regs(ctx: &ProbeContext) -> aya_ebpf::bindings::pt_regs {
    // SAFETY: a uprobe's context is the user `pt_regs`, readable in place.
    unsafe { *ctx.regs }
}

/// A socket call on a socket whose stream opened with a TLS handshake: remember it by
/// (process, fd) for the Go return probe. Runs once per connection and direction, at its
/// first record.
#[inline(always)]
pub fn remember_tls_socket(pid_tgid: u64, fd: u32, sk: u64, verdict: u32, family: u16) {
    let key = GoFdKey {
        tgid: (pid_tgid >> 32) as u32,
        fd,
    };
    let sock = GoSock {
        sk,
        verdict,
        family: family as u32,
    };
    let _ = maps::GO_FDS.insert(&key, &sock, 0);
}

/// A socket call of process `pid_tgid` on `fd`: whether a Go TLS connection without a known
/// socket waits for it (and then it no longer waits).
#[inline(always)]
pub fn claim_wanted(pid_tgid: u64, fd: u32) -> bool {
    let key = GoFdKey {
        tgid: (pid_tgid >> 32) as u32,
        fd,
    };
    if maps::GO_WANTED.remove(&key).is_ok() {
        maps::tls_active_add(u64::MAX);
        true
    } else {
        false
    }
}

/// Ask the data path for the socket of `fd` (a connection whose handshake the agent missed).
#[inline(always)]
fn want_socket(tgid: u32, fd: u32) {
    let key = GoFdKey { tgid, fd };
    // SAFETY: a read-only probe of the key.
    if unsafe { maps::GO_WANTED.get(&key) }.is_none() && maps::GO_WANTED.insert(&key, &1, 0).is_ok()
    {
        maps::tls_active_add(1);
    }
}

/// Entry of `(*Conn).Write` / `(*Conn).Read`: receiver in RAX, `b.ptr` in RBX, `b.len` in
/// RCX, `g` in R14.
///
/// A `Write` of a connection whose socket is known (or that was seen before) is sent here,
/// before its bytes reach the socket: sent at the return, the peer's answer, read by another
/// goroutine, could come out first and the request would follow its response. Otherwise (the
/// first call of a connection, whose handshake may run inside it) the call waits for its
/// return, as `Read`s do.
#[inline(always)]
pub fn on_enter(ctx: &ProbeContext) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(comm) = data::process_filter(pid_tgid) else {
        return;
    };
    let r = regs(ctx);
    // SAFETY: the helper reads the cookie of the link that ran this program.
    let cookie = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    if cookie & go_cookie::ON_STACK_CHECK != 0 && r.eflags & (EFLAGS_CF | EFLAGS_ZF) != 0 {
        // `JBE` taken: the stack grows and the function starts again, through this probe.
        return;
    }
    let tgid = (pid_tgid >> 32) as u32;
    let call = GoCall {
        conn: r.rax,
        buf: r.rbx,
    };
    if go_cookie::op(cookie) == tls_op::GO_WRITE && call.conn != 0 && call.buf != 0 {
        let len = r.rcx;
        if len == 0 {
            return;
        }
        let fd = conn_fd(call.conn, cookie);
        // SAFETY: read-only copies of plain values.
        let sock = fd.and_then(|fd| unsafe { maps::GO_FDS.get(&GoFdKey { tgid, fd }) }.copied());
        let key = TlsKey {
            tgid,
            _pad: 0,
            ssl: call.conn,
        };
        if sock.is_some() || unsafe { maps::TLS_CONNS.get(&key) }.is_some() {
            send(pid_tgid, comm, &call, cookie, len, fd, sock);
            return;
        }
    }
    let key = GoCallKey {
        tgid,
        _pad: 0,
        g: r.r14,
    };
    // Overwritten in place: the goroutine's earlier call has returned (a `Read` sent at its
    // copy leaves its entry here, with no `RET` probe to remove it).
    match maps::GO_CALLS.get_ptr_mut(&key) {
        // SAFETY: the goroutine's own entry; a goroutine runs on one thread at a time.
        Some(p) => unsafe { *p = call },
        None => {
            let _ = maps::GO_CALLS.insert(&key, &call, 0);
        }
    }
}

/// A probe at a call inside `Write` or `Read` where the plaintext is in the call's argument
/// registers (user space found the call in the function's code):
/// - `Write`'s `c.writeRecordLocked(recordTypeApplicationData, b)`: `c` in RAX, `b` in RCX
///   (pointer) and RDI (length). The handshake is done and `c.out` locked; the bytes have not
///   reached the socket yet.
/// - `Read`'s copy out of `c.input`, `runtime.memmove(to, from, n)`: the plaintext at RBX, `n`
///   in RCX; the `*tls.Conn` from the goroutine's entry ([`on_enter`]).
#[inline(always)]
pub fn on_data(ctx: &ProbeContext) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(comm) = data::process_filter(pid_tgid) else {
        return;
    };
    let r = regs(ctx);
    let tgid = (pid_tgid >> 32) as u32;
    // SAFETY: the helper reads the cookie of the link that ran this program.
    let cookie = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    let (call, len) = if go_cookie::op(cookie) == tls_op::GO_WRITE {
        (
            GoCall {
                conn: r.rax,
                buf: r.rcx,
            },
            r.rdi,
        )
    } else {
        let key = GoCallKey {
            tgid,
            _pad: 0,
            g: r.r14,
        };
        // SAFETY: read-only copy of a plain value.
        let Some(entry) = (unsafe { maps::GO_CALLS.get(&key) }).copied() else {
            maps::count(counter::TLS_UNPAIRED, 1);
            return;
        };
        (
            GoCall {
                conn: entry.conn,
                buf: r.rbx,
            },
            r.rcx,
        )
    };
    if len == 0 || call.conn == 0 || call.buf == 0 {
        return;
    }
    let fd = conn_fd(call.conn, cookie);
    // SAFETY: a read-only copy of a plain value.
    let sock = fd.and_then(|fd| unsafe { maps::GO_FDS.get(&GoFdKey { tgid, fd }) }.copied());
    send(pid_tgid, comm, &call, cookie, len, fd, sock);
}

/// A `RET` of the same functions: `n` in RAX; send the plaintext a `Read` (or a `Write`
/// that waited, see [`on_enter`]) moved.
#[inline(always)]
pub fn on_return(ctx: &ProbeContext) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(comm) = data::process_filter(pid_tgid) else {
        return;
    };
    let r = regs(ctx);
    let tgid = (pid_tgid >> 32) as u32;
    let key = GoCallKey {
        tgid,
        _pad: 0,
        g: r.r14,
    };
    // SAFETY: read-only copy of a plain value, then the entry is removed.
    let Some(call) = (unsafe { maps::GO_CALLS.get(&key) }).copied() else {
        // SAFETY: as above.
        let cookie = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
        if go_cookie::op(cookie) == tls_op::GO_READ {
            maps::count(counter::TLS_UNPAIRED, 1);
        }
        return;
    };
    let _ = maps::GO_CALLS.remove(&key);
    let n = r.rax as i64;
    if n <= 0 || call.buf == 0 || call.conn == 0 {
        return;
    }
    // SAFETY: as above.
    let cookie = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    let fd = conn_fd(call.conn, cookie);
    // SAFETY: a read-only copy of a plain value.
    let sock = fd.and_then(|fd| unsafe { maps::GO_FDS.get(&GoFdKey { tgid, fd }) }.copied());
    send(pid_tgid, comm, &call, cookie, n as u64, fd, sock);
}

/// Send `len` bytes of `call`'s buffer as the plaintext of its connection, placed by the
/// connection's plaintext positions.
#[inline(always)]
fn send(
    pid_tgid: u64,
    comm: [u64; 2],
    call: &GoCall,
    cookie: u64,
    len: u64,
    fd: Option<u32>,
    sock: Option<GoSock>,
) {
    let tgid = (pid_tgid >> 32) as u32;
    if sock.is_none()
        && let Some(fd) = fd
    {
        want_socket(tgid, fd);
    }
    let op = go_cookie::op(cookie);
    let dir = if op == tls_op::GO_WRITE {
        direction::EGRESS
    } else {
        direction::INGRESS
    };
    let tls_key = TlsKey {
        tgid,
        _pad: 0,
        ssl: call.conn,
    };
    let conn = match maps::TLS_CONNS.get_ptr_mut(&tls_key) {
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
            if maps::TLS_CONNS.insert(&tls_key, &fresh, 0).is_err() {
                maps::count(counter::CONN_MAP_FULL, 1);
                return;
            }
            match maps::TLS_CONNS.get_ptr_mut(&tls_key) {
                Some(c) => c,
                None => return,
            }
        }
    };
    // SAFETY: per-(process, *tls.Conn) entry; Go serialises Writes and Reads of a Conn each
    // (its `out` and `in` locks), and the two directions touch different positions.
    let (sk, fd, family, position) = unsafe {
        if let Some(s) = sock
            && (*conn).sk != s.sk
        {
            // A new socket under this address (the Conn was freed and its memory reused, or
            // the handshake was learnt only now): its plaintext starts here.
            (*conn).sk = s.sk;
            (*conn).verdict = s.verdict;
            (*conn).family = s.family;
            (*conn).tx_pos = 0;
            (*conn).rx_pos = 0;
        }
        (*conn).fd = fd.unwrap_or(0);
        if (*conn).verdict == verdict::IGNORE {
            maps::count(counter::FILTERED, 1);
            return;
        }
        let p = data::take_position(dir, &mut (*conn).tx_pos, &mut (*conn).rx_pos, len);
        let sk = if (*conn).sk != 0 {
            (*conn).sk
        } else {
            call.conn
        };
        (sk, (*conn).fd, (*conn).family as u16, p)
    };
    send_plaintext(&Plaintext {
        pid_tgid,
        comm,
        dir,
        op,
        fd,
        sk,
        family,
        position,
        len,
        buf: call.buf,
    });
}

/// The fd under a `*tls.Conn`: `conn.data` → `fd *netFD` → `pfd.Sysfd`.
#[inline(always)]
fn conn_fd(conn: u64, cookie: u64) -> Option<u32> {
    let tcp = data::read_user_u64(conn + go_cookie::conn_data(cookie));
    if tcp == 0 {
        return None;
    }
    let net_fd = data::read_user_u64(tcp + go_cookie::tcp_fd(cookie));
    if net_fd == 0 {
        return None;
    }
    let sysfd = data::read_user_u64(net_fd + go_cookie::sysfd(cookie)) as i64;
    (0..=i64::from(i32::MAX))
        .contains(&sysfd)
        .then_some(sysfd as u32)
}
