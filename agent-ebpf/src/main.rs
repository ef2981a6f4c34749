//! The wirelens kernel object: entry points only. Each hook family lives in its own module.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]

#[cfg(target_arch = "bpf")]
mod config;
#[cfg(target_arch = "bpf")]
mod data;
#[cfg(target_arch = "bpf")]
mod gotls;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod profile;
#[cfg(target_arch = "bpf")]
mod sched;
#[cfg(target_arch = "bpf")]
mod sock;
#[cfg(target_arch = "bpf")]
mod tls;

#[cfg(target_arch = "bpf")]
mod programs {
    use aya_ebpf::{
        macros::{btf_tracepoint, tracepoint, uprobe, uretprobe},
        programs::{BtfTracePointContext, ProbeContext, RetProbeContext, TracePointContext},
    };
    use wirelens_ebpf::direction;

    /// `sock_send_length` (BTF raw tracepoint): the process sent bytes on a socket.
    #[btf_tracepoint(function = "sock_send_length")]
    pub fn sock_send_length(ctx: BtfTracePointContext) -> i32 {
        crate::data::on_sock_io(&ctx, direction::EGRESS);
        0
    }

    /// `sock_recv_length` (BTF raw tracepoint): the process received bytes from a socket.
    #[btf_tracepoint(function = "sock_recv_length")]
    pub fn sock_recv_length(ctx: BtfTracePointContext) -> i32 {
        crate::data::on_sock_io(&ctx, direction::INGRESS);
        0
    }

    /// `sock:inet_sock_set_state`: TCP connects, accepts and closes, with the 4-tuple.
    #[tracepoint]
    pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
        crate::sock::on_set_state(&ctx);
        0
    }

    /// `tcp:tcp_retransmit_skb`: a TCP segment sent again (attached with network metrics on).
    #[tracepoint]
    pub fn tcp_retransmit_skb(ctx: TracePointContext) -> u32 {
        crate::sock::on_retransmit(&ctx);
        0
    }

    /// `sock:inet_sk_error_report`: why a TCP socket failed (attached with network metrics on).
    #[tracepoint]
    pub fn inet_sk_error_report(ctx: TracePointContext) -> u32 {
        crate::sock::on_error_report(&ctx);
        0
    }

    /// Entry of libc's `sendmmsg` / `recvmmsg` (uprobe): restart the message index. A uprobe,
    /// not the `syscalls:sys_enter_*` tracepoints: enabling any syscall tracepoint sends every
    /// syscall of every thread through the slow entry path.
    #[uprobe]
    pub fn mmsg_enter(_ctx: ProbeContext) -> u32 {
        crate::data::on_mmsg_enter();
        0
    }

    /// Entry of `SSL_write`, `SSL_read`, `SSL_write_ex`, `SSL_read_ex` (cookie: which one).
    #[uprobe]
    pub fn ssl_enter(ctx: ProbeContext) -> u32 {
        crate::tls::on_enter(&ctx);
        0
    }

    /// Entry of `SSL_free`: the object's plaintext state goes.
    #[uprobe]
    pub fn ssl_free(ctx: ProbeContext) -> u32 {
        crate::tls::on_free(&ctx);
        0
    }

    /// Return of the same four functions: the plaintext they moved.
    #[uretprobe]
    pub fn ssl_return(ctx: RetProbeContext) -> u32 {
        crate::tls::on_return(&ctx);
        0
    }

    /// Entry of Go's `crypto/tls.(*Conn).Write` / `.Read` (cookie: which one, and the struct
    /// offsets to the fd).
    #[uprobe]
    pub fn go_tls_enter(ctx: ProbeContext) -> u32 {
        crate::gotls::on_enter(&ctx);
        0
    }

    /// A call inside the same functions where their plaintext is in registers (`Write`'s
    /// `writeRecordLocked`, `Read`'s copy): sends it, with no probe at the `RET`s.
    #[uprobe]
    pub fn go_tls_data(ctx: ProbeContext) -> u32 {
        crate::gotls::on_data(&ctx);
        0
    }

    /// A `RET` instruction of the same functions (a uprobe at each, not a uretprobe: Go's
    /// stacks move): the plaintext they moved.
    #[uprobe]
    pub fn go_tls_return(ctx: ProbeContext) -> u32 {
        crate::gotls::on_return(&ctx);
        0
    }

    /// `sched:sched_process_exec`.
    #[tracepoint]
    pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
        crate::sched::on_exec(&ctx);
        0
    }

    /// `sched:sched_process_fork`.
    #[tracepoint]
    pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
        crate::sched::on_fork(&ctx);
        0
    }

    /// `sched:sched_process_exit`.
    #[tracepoint]
    pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
        crate::sched::on_exit(&ctx);
        0
    }

    /// Software `cpu-clock` perf event, one per CPU: a profiler sample.
    #[aya_ebpf::macros::perf_event]
    pub fn profile_sample(ctx: aya_ebpf::programs::PerfEventContext) -> u32 {
        crate::profile::on_sample(&ctx);
        0
    }
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: the verifier rejects any program that could reach a panic.
    unsafe { core::hint::unreachable_unchecked() }
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
