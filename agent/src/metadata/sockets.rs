//! Addresses and role of sockets opened before the agent started, from `/proc`.
//!
//! Connections made while the agent runs get their 4-tuple from `sock:inet_sock_set_state`;
//! older ones are looked up once: `/proc/<pid>/fd/<fd>` gives the socket inode, the process's
//! `net/tcp{,6}` tables give its addresses, and a listening socket on the local port makes it
//! the server end.

use std::net::SocketAddr;

use procfs::net::TcpState;
use wirelens_parsers::Role;

/// What /proc says of one TCP socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketInfo {
    /// The traced process's end.
    pub local: SocketAddr,
    /// The other end.
    pub peer: SocketAddr,
    /// Server if the local port is a listening port.
    pub role: Role,
}

/// Look up socket `fd` of process `pid`; `None` if it is gone or not TCP.
pub fn resolve(pid: u32, fd: u32) -> Option<SocketInfo> {
    let proc = procfs::process::Process::new(pid as i32)
        .map_err(|e| tracing::debug!(pid, %e, "no /proc entry"))
        .ok()?;
    let info = proc
        .fd_from_fd(fd as i32)
        .map_err(|e| tracing::debug!(pid, fd, %e, "cannot read fd"))
        .ok()?;
    let procfs::process::FDTarget::Socket(inode) = info.target else {
        return None;
    };
    let mut entries = proc
        .tcp()
        .map_err(|e| tracing::debug!(pid, %e, "cannot read net/tcp"))
        .unwrap_or_default();
    entries.extend(proc.tcp6().unwrap_or_default());
    let entry = entries.iter().find(|e| e.inode == inode)?;
    let local = entry.local_address;
    let listening = entries
        .iter()
        .any(|e| e.state == TcpState::Listen && e.local_address.port() == local.port());
    Some(SocketInfo {
        local,
        peer: entry.remote_address,
        role: if listening {
            Role::Server
        } else {
            Role::Client
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn resolves_both_ends_of_a_loopback_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let pid = std::process::id();
        let c = resolve(pid, client.as_raw_fd() as u32).expect("client resolves");
        let s = resolve(pid, server.as_raw_fd() as u32).expect("server resolves");
        assert_eq!(c.role, Role::Client);
        assert_eq!(s.role, Role::Server);
        assert_eq!(c.local, s.peer);
        assert_eq!(c.peer, s.local);
    }
}
