//! `tcp_info` of every TCP connection of a network namespace through `NETLINK_SOCK_DIAG`
//! (what `ss -ti` reads): smoothed RTT, its variance and segment counts, without kprobes.
//!
//! A netlink socket answers for the namespace it was created in, so one socket is made per
//! namespace, from a short-lived thread that enters it (`setns`, which needs `CAP_SYS_ADMIN`
//! over that namespace; without it only the agent's own namespace is sampled).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    os::fd::AsRawFd as _,
};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::{
    SockDiagMessage,
    constants::{AF_INET, AF_INET6, IPPROTO_TCP},
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags, nlas::Nla},
};
use netlink_sys::{Socket, SocketAddr as NetlinkAddr, protocols::NETLINK_SOCK_DIAG};

/// Why a namespace could not be sampled.
#[derive(Debug, thiserror::Error)]
pub enum SockDiagError {
    /// Opening or using the netlink socket failed.
    #[error("sock_diag netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// Entering the namespace failed.
    #[error("cannot enter network namespace of pid {pid}")]
    Setns {
        /// The process whose namespace it is.
        pid: u32,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The kernel answered with an error or something unreadable.
    #[error("sock_diag reply: {0}")]
    Reply(String),
}

/// One connection's `tcp_info` figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpSample {
    /// Smoothed RTT, µs.
    pub rtt_us: u32,
    /// RTT mean deviation, µs.
    pub rttvar_us: u32,
    /// Segments sent.
    pub segs_out: u32,
    /// Segments received.
    pub segs_in: u32,
    /// Retransmitted segments over the connection's life.
    pub total_retrans: u32,
}

/// A sock_diag socket bound to one network namespace.
pub struct DiagSocket {
    socket: Socket,
    seq: u32,
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

impl DiagSocket {
    /// A socket in the caller's network namespace.
    pub fn new() -> Result<Self, SockDiagError> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(SockDiagError::Socket)?;
        socket.bind_auto().map_err(SockDiagError::Socket)?;
        socket
            .connect(&NetlinkAddr::new(0, 0))
            .map_err(SockDiagError::Socket)?;
        Ok(Self { socket, seq: 0 })
    }

    /// A socket in the network namespace of process `pid`.
    pub fn in_namespace_of(pid: u32) -> Result<Self, SockDiagError> {
        let path = format!("/proc/{pid}/ns/net");
        let ns =
            std::fs::File::open(&path).map_err(|source| SockDiagError::Setns { pid, source })?;
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: a valid namespace fd; only this short-lived thread moves.
                    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(SockDiagError::Setns {
                            pid,
                            source: std::io::Error::last_os_error(),
                        });
                    }
                    Self::new()
                })
                .join()
                .unwrap_or_else(|_| Err(SockDiagError::Reply("setns thread panicked".into())))
        })
    }

    /// Every non-listening TCP socket with its `tcp_info`, by (local, remote) address
    /// (IPv4-mapped addresses as IPv4).
    pub fn dump(&mut self) -> Result<HashMap<(SocketAddr, SocketAddr), TcpSample>, SockDiagError> {
        let mut out = HashMap::new();
        for family in [AF_INET, AF_INET6] {
            self.dump_family(family, &mut out)?;
        }
        Ok(out)
    }

    fn dump_family(
        &mut self,
        family: u8,
        out: &mut HashMap<(SocketAddr, SocketAddr), TcpSample>,
    ) -> Result<(), SockDiagError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = self.seq;
        let states = StateFlags::all() - StateFlags::LISTEN - StateFlags::TIME_WAIT;
        let mut packet = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::INFO,
                states,
                socket_id: if family == AF_INET {
                    SocketId::new_v4()
                } else {
                    SocketId::new_v6()
                },
            })
            .into(),
        );
        packet.finalize();
        let mut request = vec![0; packet.buffer_len()];
        packet.serialize(&mut request);
        self.socket
            .send(&request, 0)
            .map_err(SockDiagError::Socket)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let size = self
                .socket
                .recv(&mut &mut buf[..], 0)
                .map_err(SockDiagError::Socket)?;
            let mut offset = 0;
            while offset < size {
                let bytes = &buf[offset..size];
                let message = NetlinkMessage::<SockDiagMessage>::deserialize(bytes)
                    .map_err(|e| SockDiagError::Reply(e.to_string()))?;
                let len = message.header.length as usize;
                match message.payload {
                    NetlinkPayload::Done(_) => return Ok(()),
                    NetlinkPayload::Error(e) => {
                        return Err(SockDiagError::Reply(format!("{e:?}")));
                    }
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                        let id = &response.header.socket_id;
                        let local = canonical(SocketAddr::new(id.source_address, id.source_port));
                        let peer =
                            canonical(SocketAddr::new(id.destination_address, id.destination_port));
                        if peer.ip() == IpAddr::from([0u8; 4]) && peer.port() == 0 {
                            continue_after(&mut offset, len)?;
                            continue;
                        }
                        for nla in &response.nlas {
                            if let Nla::TcpInfo(info) = nla {
                                out.insert(
                                    (local, peer),
                                    TcpSample {
                                        rtt_us: info.rtt,
                                        rttvar_us: info.rttvar,
                                        segs_out: info.segs_out,
                                        segs_in: info.segs_in,
                                        total_retrans: info.total_retrans,
                                    },
                                );
                            }
                        }
                    }
                    _ => {}
                }
                continue_after(&mut offset, len)?;
            }
        }
    }
}

/// Move past a message of `len` bytes; a zero length would loop forever.
fn continue_after(offset: &mut usize, len: usize) -> Result<(), SockDiagError> {
    if len == 0 {
        return Err(SockDiagError::Reply("netlink message of length 0".into()));
    }
    *offset += len;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};

    /// Needs no privilege: sock_diag dumps of one's own namespace are open to every user.
    #[test]
    fn samples_a_loopback_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut client = std::net::TcpStream::connect(addr).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        client.write_all(b"ping").expect("write");
        let mut got = [0u8; 4];
        server.read_exact(&mut got).expect("read");
        let local = client.local_addr().expect("local");
        let mut diag = DiagSocket::new().expect("socket");
        let all = diag.dump().expect("dump");
        let sample = all
            .get(&(local, addr))
            .expect("the client socket is listed");
        assert!(sample.segs_out >= 2, "{sample:?}");
        assert!(sample.rtt_us > 0, "{sample:?}");
    }
}
