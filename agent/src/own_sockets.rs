//! The agent's own sockets, by their local address: whoever talks to one of them (a collector
//! on this host, on loopback or in a pod's network namespace) is talking to the agent, and its
//! side of the conversation is not traced.
//!
//! The kernel drops the agent's own calls by its pid and, the first time the agent moves data
//! on a socket, reports that socket's local end ([`wirelens_ebpf::EventKind::AgentSocket`]).
//! A connection is dropped when its peer is one of these ends: checked when the connection is
//! first seen and again for every record, because the collector's first bytes can reach the
//! kernel before the agent's own send call returns.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;

/// At most this many ends are remembered (the oldest is forgotten first); the agent opens a
/// handful of export connections, so this only bounds a pathological churn.
const MAX_ENDS: usize = 1024;

/// The local ends of the agent's own sockets.
#[derive(Debug, Default)]
pub struct OwnSockets {
    ends: HashSet<SocketAddr>,
    order: VecDeque<SocketAddr>,
}

impl OwnSockets {
    /// Remember `local`, the local end of one of the agent's sockets.
    pub fn add(&mut self, local: SocketAddr) {
        let local = canonical(local);
        if !self.ends.insert(local) {
            return;
        }
        self.order.push_back(local);
        if self.order.len() > MAX_ENDS
            && let Some(old) = self.order.pop_front()
        {
            self.ends.remove(&old);
        }
    }

    /// Whether `peer` is one of the agent's own sockets.
    pub fn is_own(&self, peer: SocketAddr) -> bool {
        !self.ends.is_empty() && self.ends.contains(&canonical(peer))
    }

    /// Ends remembered now.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
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

    #[test]
    fn remembers_and_forgets_the_oldest() {
        let mut own = OwnSockets::default();
        let first: SocketAddr = "10.0.0.1:1000".parse().expect("addr");
        own.add(first);
        own.add(first);
        assert!(own.is_own(first));
        assert!(
            own.is_own("[::ffff:10.0.0.1]:1000".parse().expect("addr")),
            "as a dual-stack server sees it"
        );
        assert_eq!(own.len(), 1);
        for port in 0..MAX_ENDS as u16 {
            own.add(SocketAddr::new("10.0.0.2".parse().expect("ip"), port));
        }
        assert!(!own.is_own(first), "the oldest goes first");
        assert_eq!(own.len(), MAX_ENDS);
    }
}
