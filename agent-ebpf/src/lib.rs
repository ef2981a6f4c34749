//! Kernel side of wirelens: the eBPF programs, and the kernel/user ABI they share with the agent.
//!
//! This library target is the ABI only: every type that crosses the ring buffer or sits in a map
//! is defined here once, `#[repr(C)]`, `Copy`, with fixed-width fields and no implicit padding.
//! The kernel object (`src/main.rs`, built for `bpfel-unknown-none` by the agent's build script)
//! and the agent (with feature `user`, which adds `aya::Pod`) both use it.
//!
//! Every ring-buffer record starts with a `u32` kind ([`EventKind`]); user space reads the kind
//! first and decodes the rest in one place (`agent/src/reader.rs`).
#![no_std]
#![deny(missing_docs)]

/// Largest capture the kernel object can copy per call (compile-time bound for the verifier).
pub const MAX_CAPTURE: usize = 32 * 1024;
/// Default capture limit per call; configurable at load time up to [`MAX_CAPTURE`].
pub const DEFAULT_CAPTURE: u32 = 16 * 1024;
/// Most iovec segments copied from one `readv`/`writev`/`sendmsg`/`recvmsg` call.
pub const MAX_IOV: u32 = 32;

/// Kinds of ring-buffer records: the first `u32` of each.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// [`DataHeader`] followed by `cap_len` captured bytes.
    Data = 1,
    /// [`SockStateEvent`]: a TCP state change with the 4-tuple.
    SockState = 2,
    /// [`ProcEvent`]: a process called `exec`.
    ProcExec = 3,
    /// [`ProcEvent`]: a whole process (thread group) exited.
    ProcExit = 4,
    /// [`ProcEvent`]: a process forked; `tgid` is the child's pid, `parent` the forking process.
    ProcFork = 5,
    /// [`TlsAssocEvent`]: a TLS connection read through memory BIOs learnt its socket.
    TlsAssoc = 6,
    /// [`SockStateEvent`] (states zero): the agent's own process moved data on this socket
    /// for the first time; its local end is `saddr`/`sport`. Whoever is at the other end (a
    /// collector on this host) is talking to the agent, and is not traced.
    AgentSocket = 7,
    /// [`RetransmitEvent`]: `tcp:tcp_retransmit_skb`, a TCP segment sent again.
    Retransmit = 8,
    /// [`SockErrorEvent`]: `sock:inet_sk_error_report`, an error reported on a TCP socket.
    SockError = 9,
}

impl EventKind {
    /// The kind for a raw `u32`, if known.
    pub fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Data),
            2 => Some(Self::SockState),
            3 => Some(Self::ProcExec),
            4 => Some(Self::ProcExit),
            5 => Some(Self::ProcFork),
            6 => Some(Self::TlsAssoc),
            7 => Some(Self::AgentSocket),
            8 => Some(Self::Retransmit),
            9 => Some(Self::SockError),
            _ => None,
        }
    }
}

/// Direction of a data event, seen from the traced process.
pub mod direction {
    /// The process sent these bytes.
    pub const EGRESS: u32 = 0;
    /// The process received these bytes.
    pub const INGRESS: u32 = 1;
}

/// Bits of [`DataHeader::flags`].
pub mod data_flags {
    /// A receive returned 0: the peer closed its side (end of stream).
    pub const EOF: u32 = 1;
    /// The bytes were moved by a call whose buffers the kernel side does not read
    /// (`sendfile`, io_uring, ...): `cap_len` is 0 and `len` bytes are missing.
    pub const UNREADABLE: u32 = 2;
    /// Reading the user buffer failed; `cap_len` is 0.
    pub const READ_FAILED: u32 = 4;
    /// Plaintext of a TLS connection, from an OpenSSL `SSL_read`/`SSL_write` (`_ex`) return
    /// probe. `position` counts plaintext bytes; `sk` is the socket once a socket call nested
    /// in an SSL call has named it, else the `SSL *` (a user address, so it cannot collide
    /// with a kernel `struct sock` address); `syscall` is a [`tls_op`].
    pub const TLS: u32 = 8;
}

/// The OpenSSL calls probed, as attach cookies and in [`DataHeader::syscall`] of TLS records.
pub mod tls_op {
    /// `int SSL_write(SSL *, const void *buf, int num)`.
    pub const WRITE: u32 = 0x1000;
    /// `int SSL_read(SSL *, void *buf, int num)`.
    pub const READ: u32 = 0x1001;
    /// `int SSL_write_ex(SSL *, const void *buf, size_t num, size_t *written)`.
    pub const WRITE_EX: u32 = 0x1002;
    /// `int SSL_read_ex(SSL *, void *buf, size_t num, size_t *readbytes)`.
    pub const READ_EX: u32 = 0x1003;
    /// Not a call: an `SSL_write` on this thread used no socket (OpenSSL over memory BIOs, as
    /// gRPC core does), so the next socket call of the thread on a TLS socket sends its
    /// ciphertext and names the connection ([`super::TlsAssocEvent`]).
    pub const ASSOCIATE: u32 = 0x10ff;
    /// Go's `crypto/tls.(*Conn).Write(b []byte) (int, error)`.
    pub const GO_WRITE: u32 = 0x1010;
    /// Go's `crypto/tls.(*Conn).Read(b []byte) (int, error)`.
    pub const GO_READ: u32 = 0x1011;
}

/// Attach cookie of the Go TLS probes: the [`tls_op`] in bits 0..15, [`go_cookie::ON_STACK_CHECK`]
/// in bit 15, then the three struct offsets that lead from a `*tls.Conn` to its socket's fd,
/// each 16 bits, as read from the binary's DWARF or from the table of known Go layouts.
pub mod go_cookie {
    /// The probe sits on the prologue's stack-check branch (`JBE` to `morestack`), which the
    /// kernel emulates instead of single-stepping: the program ignores a hit where the branch
    /// is taken (the function then grows its stack and starts again).
    pub const ON_STACK_CHECK: u64 = 0x8000;
    /// The cookie of a probe on `op` for a binary with these offsets.
    pub const fn pack(op: u32, conn_data: u16, tcp_fd: u16, sysfd: u16) -> u64 {
        (op as u64 & 0xffff)
            | (conn_data as u64) << 16
            | (tcp_fd as u64) << 32
            | (sysfd as u64) << 48
    }
    /// The [`super::tls_op`] of a cookie.
    pub const fn op(cookie: u64) -> u32 {
        (cookie & 0x7fff) as u32
    }
    /// Offset in `tls.Conn` of the data word of its `conn net.Conn` interface (the
    /// `*net.TCPConn`).
    pub const fn conn_data(cookie: u64) -> u64 {
        (cookie >> 16) & 0xffff
    }
    /// Offset in `net.TCPConn` (its embedded `net.conn`) of `fd *netFD`.
    pub const fn tcp_fd(cookie: u64) -> u64 {
        (cookie >> 32) & 0xffff
    }
    /// Offset in `net.netFD` of `pfd.Sysfd` (the fd, a Go `int`).
    pub const fn sysfd(cookie: u64) -> u64 {
        cookie >> 48
    }
}

/// A TLS connection whose plaintext was sent keyed by its `SSL *` (no socket known yet) is
/// the socket `sk`: user space moves it there.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TlsAssocEvent {
    /// Always [`EventKind::TlsAssoc`].
    pub kind: u32,
    /// Process id.
    pub tgid: u32,
    /// The socket's fd.
    pub fd: u32,
    /// Reserved, zero.
    pub _pad: u32,
    /// The `SSL *`: the key the plaintext was sent under.
    pub ssl: u64,
    /// Kernel address of the socket.
    pub sk: u64,
}

/// Header of a [`EventKind::Data`] record; `cap_len` captured bytes follow it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DataHeader {
    /// Always [`EventKind::Data`].
    pub kind: u32,
    /// [`direction::EGRESS`] or [`direction::INGRESS`].
    pub direction: u32,
    /// Process id (thread group id).
    pub tgid: u32,
    /// Thread id.
    pub tid: u32,
    /// File descriptor of the socket in `tgid`.
    pub fd: u32,
    /// x86_64 syscall number that moved the bytes.
    pub syscall: u32,
    /// [`data_flags`] bits.
    pub flags: u32,
    /// Bytes captured after this header (at most the capture limit).
    pub cap_len: u32,
    /// Kernel address of the `struct sock`: the connection's identity while it lives.
    pub sk: u64,
    /// `bpf_ktime_get_ns` when the call completed (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// Stream position of the first byte of this call in this direction of the connection.
    pub position: u64,
    /// Bytes the call really moved (≥ `cap_len`).
    pub len: u64,
    /// Address family (`AF_INET` = 2, `AF_INET6` = 10).
    pub family: u16,
    /// IP protocol (6 = TCP, 17 = UDP).
    pub protocol: u16,
    /// Index of the message inside a `sendmmsg`/`recvmmsg` call, else 0.
    pub msg_index: u32,
    /// Thread command name (`comm`), NUL padded.
    pub comm: [u8; 16],
    /// UDP only: the local address (IPv4 in the first 4 bytes), from the socket.
    pub local_addr: [u8; 16],
    /// UDP only: the peer of this datagram: the destination of a send (the call's
    /// `msg_name`, else the connected address); for a receive, the connected address or zero
    /// (the sender of a datagram on an unconnected socket is not visible from this hook).
    pub peer_addr: [u8; 16],
    /// UDP only: local port (host order).
    pub local_port: u16,
    /// UDP only: peer port (host order); 0 when the peer is unknown.
    pub peer_port: u16,
    /// Reserved, zero.
    pub _pad: u32,
}

/// Size of [`DataHeader`] in bytes.
pub const DATA_HEADER_LEN: usize = core::mem::size_of::<DataHeader>();

/// Most bytes of a plain (one-buffer) socket call that go straight into a reserved ring record
/// ([`SmallDataEvent`]) instead of through the per-CPU scratch area and a copy.
pub const SMALL_CAPTURE: usize = 512;
/// The smaller slot size for plain calls (requests are mostly this short): slots are reserved
/// at a fixed size, so two sizes keep short records from taking a 512-byte slot.
pub const TINY_CAPTURE: usize = 128;

/// A data record reserved in the ring at its full size: header + up to `N` bytes (the rest of
/// the slot unused; `header.cap_len` says how many were captured).
#[repr(C)]
pub struct SmallDataEvent<const N: usize> {
    /// The header.
    pub header: DataHeader,
    /// Captured bytes; the first `header.cap_len` are valid.
    pub data: [u8; N],
}

/// Per-CPU scratch area the kernel side builds a data record in (header + bytes).
///
/// Twice [`MAX_CAPTURE`] of room so that a bounded offset plus a bounded length always fits,
/// which is what lets the verifier accept the iovec copy loop.
#[repr(C)]
pub struct DataEvent {
    /// The header.
    pub header: DataHeader,
    /// Captured bytes; only the first `header.cap_len` are sent.
    pub data: [u8; MAX_CAPTURE * 2],
}

/// TCP states from `include/net/tcp_states.h` used by the agent.
pub mod tcp_state {
    /// Connection established.
    pub const ESTABLISHED: i32 = 1;
    /// Active open in progress (we called `connect`).
    pub const SYN_SENT: i32 = 2;
    /// Passive open in progress (the peer called `connect`).
    pub const SYN_RECV: i32 = 3;
    /// We closed first.
    pub const FIN_WAIT1: i32 = 4;
    /// Fully closed.
    pub const CLOSE: i32 = 7;
    /// The peer closed first.
    pub const CLOSE_WAIT: i32 = 8;
}

/// A `sock:inet_sock_set_state` transition the agent cares about.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SockStateEvent {
    /// Always [`EventKind::SockState`].
    pub kind: u32,
    /// Previous TCP state ([`tcp_state`]).
    pub old_state: i32,
    /// New TCP state.
    pub new_state: i32,
    /// Address family (2 or 10).
    pub family: u16,
    /// Local port (host order).
    pub sport: u16,
    /// Remote port (host order).
    pub dport: u16,
    /// Reserved, zero.
    pub _pad: u16,
    /// For a connect (`CLOSE` → `SYN_SENT`, which runs in the connecting process): its process
    /// id. 0 for every other transition, which may run in softirq context where the current
    /// task is not the socket's owner.
    pub tgid: u32,
    /// Kernel address of the `struct sock`.
    pub sk: u64,
    /// `bpf_ktime_get_ns` of the transition.
    pub ts_ns: u64,
    /// Local address (IPv4 in the first 4 bytes for `AF_INET`).
    pub saddr: [u8; 16],
    /// Remote address.
    pub daddr: [u8; 16],
}

/// `tcp:tcp_retransmit_skb`: one retransmitted segment (skb) of a socket. Sent only with
/// network metrics on. Runs in softirq or timer context: the socket's owner comes from user
/// space's table of sockets, by `sk`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RetransmitEvent {
    /// Always [`EventKind::Retransmit`].
    pub kind: u32,
    /// TCP state of the socket ([`tcp_state`]).
    pub state: i32,
    /// Kernel address of the `struct sock`.
    pub sk: u64,
}

/// `sock:inet_sk_error_report`: the kernel reported an error on a TCP socket (a refused or
/// timed-out connect, an unreachable peer, a reset). Sent only with network metrics on. The
/// tracepoint has no socket address: user space matches the 4-tuple. For a failed connect it
/// comes right after the socket's `SYN_SENT` → `CLOSE` transition, from the same CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SockErrorEvent {
    /// Always [`EventKind::SockError`].
    pub kind: u32,
    /// The socket's error (`sk_err`, a positive errno: `ECONNREFUSED`, `ETIMEDOUT`...).
    pub error: i32,
    /// Address family (2 or 10).
    pub family: u16,
    /// Local port (host order).
    pub sport: u16,
    /// Remote port (host order).
    pub dport: u16,
    /// Reserved, zero.
    pub _pad: u16,
    /// Local address (IPv4 in the first 4 bytes for `AF_INET`).
    pub saddr: [u8; 16],
    /// Remote address.
    pub daddr: [u8; 16],
}

/// A process event (`exec`, `fork`, or exit of a thread group).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProcEvent {
    /// [`EventKind::ProcExec`], [`EventKind::ProcExit`] or [`EventKind::ProcFork`].
    pub kind: u32,
    /// Process id (for a fork: the child's; a new thread's id when the "fork" made a thread).
    pub tgid: u32,
    /// For a fork: the forking process's id; otherwise 0.
    pub parent: u32,
    /// Reserved, zero.
    pub _pad: u32,
    /// `bpf_ktime_get_ns` of the event.
    pub ts_ns: u64,
    /// Command name, NUL padded.
    pub comm: [u8; 16],
}

/// Value of the per-connection map: stream positions and the filter verdict.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnState {
    /// Bytes sent so far (next egress position).
    pub tx_pos: u64,
    /// Bytes received so far (next ingress position).
    pub rx_pos: u64,
    /// [`verdict`] of the port filter for this connection.
    pub verdict: u32,
    /// IP protocol of the socket (6 = TCP, 17 = UDP; 0 when unknown), read once.
    pub protocol: u32,
    /// [`tls_state`] of the connection.
    pub tls: u32,
    /// Reserved, zero.
    pub _pad: u32,
}

/// What the kernel side knows of a connection's TLS, in [`ConnState::tls`].
pub mod tls_state {
    /// No TLS seen.
    pub const NONE: u32 = 0;
    /// Its first bytes were a TLS handshake record: ciphertext, not sent to user space.
    pub const CIPHERTEXT: u32 = 1;
    /// A socket call nested in a probed SSL call used it: its plaintext comes from the
    /// OpenSSL probes.
    pub const PROBED: u32 = 2;
}

/// IP protocol numbers in [`DataHeader::protocol`].
pub mod ip_proto {
    /// TCP.
    pub const TCP: u16 = 6;
    /// UDP.
    pub const UDP: u16 = 17;
}

/// Port-filter verdicts stored in [`ConnState::verdict`].
pub mod verdict {
    /// Not decided yet (connection predates the agent): events flow, user space decides.
    pub const UNKNOWN: u32 = 0;
    /// Trace this connection.
    pub const TRACE: u32 = 1;
    /// Drop this connection's events in the kernel.
    pub const IGNORE: u32 = 2;
}

/// Bits of the `FILTERS` global: which in-kernel filters are on.
pub mod filter {
    /// Only pids in the `PID_FILTER` map.
    pub const PID: u32 = 1;
    /// Only connections with a port in the `PORT_FILTER` map.
    pub const PORT: u32 = 2;
    /// Only threads whose `comm` is in the `COMM_FILTER` map.
    pub const COMM: u32 = 4;
    /// Only processes in the agent's own pid namespace (`PIDNS_DEV`/`PIDNS_INO`), reported
    /// with the pids of that namespace: the agent in a container without the host's pids (a
    /// sidecar) traces its pod and reads the pod's `/proc`.
    pub const PIDNS: u32 = 8;
    /// Only processes whose cgroup v2 id is in the `CGROUP_FILTER` map (selected containers).
    pub const CGROUP: u32 = 16;
    /// Only processes whose tgid is in the `EXE_PIDS` map (`--exe`): put there at `exec` when
    /// the file name is in `EXE_PATHS`, inherited at `fork`, removed at exit.
    pub const EXE: u32 = 32;
}

/// Bytes of an `EXE_PATHS` key: an executable path, NUL-padded (longer paths are matched in
/// user space only).
pub const EXE_PATH_LEN: usize = 256;

/// Indices of the per-CPU `COUNTERS` array: what the kernel side loses or skips. Events and
/// bytes delivered are counted in user space, which keeps two map updates off every event.
pub mod counter {
    /// Records lost because the ring buffer was full.
    pub const RING_FULL: u32 = 0;
    /// Calls truncated at the capture limit.
    pub const TRUNCATED: u32 = 1;
    /// User buffers that could not be read.
    pub const READ_FAILED: u32 = 2;
    /// Socket calls from a syscall whose buffers are not read (sendfile, io_uring...).
    pub const UNREADABLE: u32 = 3;
    /// Socket calls skipped by a pid/comm/port filter.
    pub const FILTERED: u32 = 4;
    /// Connection-state map full: positions unknown for a connection.
    pub const CONN_MAP_FULL: u32 = 5;
    /// Socket calls carrying TLS ciphertext, not sent (the plaintext comes from the probes).
    pub const TLS_CIPHERTEXT: u32 = 6;
    /// SSL calls (OpenSSL or Go `crypto/tls`) whose return was seen without their entry (probe
    /// attached mid-call).
    pub const TLS_UNPAIRED: u32 = 7;
    /// Number of counters.
    pub const COUNT: u32 = 8;
}

/// x86_64 syscall numbers the data path understands.
pub mod syscall_nr {
    #![allow(missing_docs)]
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const READV: u64 = 19;
    pub const WRITEV: u64 = 20;
    pub const SENDFILE: u64 = 40;
    pub const SENDTO: u64 = 44;
    pub const RECVFROM: u64 = 45;
    pub const SENDMSG: u64 = 46;
    pub const RECVMSG: u64 = 47;
    pub const RECVMMSG: u64 = 299;
    pub const SENDMMSG: u64 = 307;
}

/// CPU profiler ABI (`src/profile.rs` in the kernel object, `agent/src/profile/` in the agent).
///
/// Each cpu-clock sample either goes to user space whole, as a [`profile::StackSample`] in the
/// `PROFILE_SAMPLES` ring (unwinding mode: user registers and stack bytes, unwound there from
/// `.eh_frame`), or is counted in the kernel in `PROFILE_COUNTS` by [`profile::SampleKey`]
/// (frame-pointer mode, and the fallback when the ring is full), drained each interval.
pub mod profile {
    /// Bytes of user stack copied per sample from the stack pointer up (unwinding mode). A read
    /// that crosses the top of the stack fails whole, so the kernel side tries 16, 12, 8, 4, 2
    /// and 1 KiB in turn.
    pub const MAX_STACK_COPY: usize = 16 * 1024;
    /// [`StackSample::kernel_stack`] / [`SampleKey`] stack id when there is no stack.
    pub const NO_STACK: i32 = -1;
    /// Entries of the stack-trace map (kernel and frame-pointer user stacks).
    pub const STACK_MAP_ENTRIES: u32 = 16384;
    /// Entries of the in-kernel count map.
    pub const COUNT_MAP_ENTRIES: u32 = 16384;

    /// Values of the `PROFILE_MODE` global.
    pub mod mode {
        /// User stacks by frame pointers (`bpf_get_stackid`), counted in the kernel.
        pub const FRAME_POINTERS: u32 = 0;
        /// User registers and stack bytes to user space, unwound there.
        pub const UNWIND: u32 = 1;
    }

    /// Key of `PROFILE_COUNTS`: one (process, user stack, kernel stack).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct SampleKey {
        /// Process id (thread group id).
        pub tgid: u32,
        /// Stack id of the user stack in `PROFILE_STACKS`, or [`NO_STACK`].
        pub user_stack: i32,
        /// Stack id of the kernel stack in `PROFILE_STACKS`, or [`NO_STACK`].
        pub kernel_stack: i32,
        /// Reserved, zero.
        pub _pad: u32,
    }

    /// Header of a sample record in `PROFILE_SAMPLES`; `stack_len` bytes of user stack follow.
    #[repr(C)]
    #[derive(Clone, Copy, Debug)]
    pub struct SampleHeader {
        /// Process id (thread group id).
        pub tgid: u32,
        /// Thread id.
        pub tid: u32,
        /// Stack id of the kernel stack in `PROFILE_STACKS`, or [`NO_STACK`].
        pub kernel_stack: i32,
        /// Bytes of user stack after the header (0: no user stack could be read).
        pub stack_len: u32,
        /// `bpf_ktime_get_ns` of the sample.
        pub ts_ns: u64,
        /// User instruction pointer (0 for a kernel thread).
        pub ip: u64,
        /// User stack pointer: the address of the first stack byte.
        pub sp: u64,
        /// User frame pointer (`rbp`).
        pub bp: u64,
        /// Thread command name, NUL padded.
        pub comm: [u8; 16],
    }

    /// Size of [`SampleHeader`].
    pub const SAMPLE_HEADER_LEN: usize = core::mem::size_of::<SampleHeader>();

    /// A whole sample record as the kernel side builds it (in a per-CPU scratch slot).
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct StackSample {
        /// The header.
        pub header: SampleHeader,
        /// User stack bytes from `header.sp`; only `header.stack_len` are sent.
        pub stack: [u8; MAX_STACK_COPY],
    }

    /// Indices of the per-CPU `PROFILE_COUNTERS` array.
    pub mod counter {
        /// Samples taken (all processes, before filters).
        pub const SAMPLES: u32 = 0;
        /// Samples of the idle task, skipped.
        pub const IDLE: u32 = 1;
        /// Samples skipped by the pid/comm filter.
        pub const FILTERED: u32 = 2;
        /// Samples that did not fit in the ring (counted in the kernel map instead).
        pub const RING_FULL: u32 = 3;
        /// User stacks that could not be read at all.
        pub const STACK_READ_FAILED: u32 = 4;
        /// The count map was full: samples lost.
        pub const COUNTS_FULL: u32 = 5;
        /// A stack could not be stored in the stack-trace map (full, or a hash collision): the
        /// sample keeps its other stack only.
        pub const STACK_LOST: u32 = 6;
        /// Number of counters.
        pub const COUNT: u32 = 7;
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all these types are repr(C), Copy, made of integers and byte arrays, with no padding.
    unsafe impl aya::Pod for super::ConnState {}
    // SAFETY: as above (profiler ABI).
    unsafe impl aya::Pod for super::profile::SampleKey {}
}
