//! The agent's own sockets, by their two ends: whoever talks to one of them (a collector on
//! this host, on loopback or in a pod's network namespace) is talking to the agent, and its
//! side of the conversation is not traced.
//!
//! The kernel drops the agent's own calls by its pid and, the first time the agent moves data
//! on a socket, reports that socket's ends ([`wirelens_ebpf::EventKind::AgentSocket`]). A
//! connection is the collector's side of one of them when its peer is the agent's local end
//! and its own port is the port the agent connected to (the address may differ behind a
//! Service's NAT; the port rarely does). The port check keeps a client that later reuses the
//! agent's old ephemeral port, to talk to anything else, traced. The check runs when the
//! connection is first seen and again for every record, because the collector's first bytes
//! can reach the kernel before the agent's own send call returns.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// At most this many sockets are remembered (the oldest is forgotten first); the agent opens a
/// handful of export connections, so this only bounds a pathological churn.
const MAX_SOCKETS: usize = 1024;

/// The agent's own sockets: local end → the end it connected to.
#[derive(Debug, Default)]
pub struct OwnSockets {
    remote_of: HashMap<SocketAddr, SocketAddr>,
    order: VecDeque<SocketAddr>,
}

impl OwnSockets {
    /// Remember one of the agent's sockets by its ends.
    pub fn add(&mut self, local: SocketAddr, remote: SocketAddr) {
        let local = canonical(local);
        if self.remote_of.insert(local, canonical(remote)).is_some() {
            return;
        }
        self.order.push_back(local);
        if self.order.len() > MAX_SOCKETS
            && let Some(old) = self.order.pop_front()
        {
            self.remote_of.remove(&old);
        }
    }

    /// Whether a connection from `local` (when known) to `peer` is the other end of one of
    /// the agent's sockets.
    pub fn is_own(&self, local: Option<SocketAddr>, peer: SocketAddr) -> bool {
        if self.remote_of.is_empty() {
            return false;
        }
        match self.remote_of.get(&canonical(peer)) {
            Some(remote) => local.is_none_or(|l| l.port() == remote.port()),
            None => false,
        }
    }

    /// Sockets remembered now.
    pub fn len(&self) -> usize {
        self.remote_of.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.remote_of.is_empty()
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 one: a dual-stack server sees the agent's IPv4
/// end as `::ffff:a.b.c.d`.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn the_collectors_end_and_nothing_else() {
        let mut own = OwnSockets::default();
        own.add(addr("10.0.0.1:40000"), addr("10.0.0.9:4317"));
        assert!(own.is_own(Some(addr("10.0.0.9:4317")), addr("10.0.0.1:40000")));
        assert!(
            own.is_own(
                Some(addr("[::ffff:10.0.0.9]:4317")),
                addr("[::ffff:10.0.0.1]:40000")
            ),
            "as a dual-stack server sees it"
        );
        assert!(
            own.is_own(Some(addr("10.244.1.5:4317")), addr("10.0.0.1:40000")),
            "a collector pod behind a Service: the address differs, the port does not"
        );
        assert!(
            !own.is_own(Some(addr("10.0.0.9:80")), addr("10.0.0.1:40000")),
            "a client that reused the agent's old port to reach nginx"
        );
        assert!(!own.is_own(Some(addr("10.0.0.9:4317")), addr("10.0.0.1:40001")));
    }

    #[test]
    fn remembers_at_most_so_many() {
        let mut own = OwnSockets::default();
        let first = addr("10.0.0.1:1000");
        own.add(first, addr("10.0.0.9:4317"));
        own.add(first, addr("10.0.0.9:4317"));
        assert_eq!(own.len(), 1);
        for port in 0..MAX_SOCKETS as u16 {
            own.add(
                SocketAddr::new([10, 0, 0, 2].into(), port),
                addr("10.0.0.9:4317"),
            );
        }
        assert!(!own.is_own(None, first), "the oldest goes first");
        assert_eq!(own.len(), MAX_SOCKETS);
    }
}
