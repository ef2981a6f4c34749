//! The two ends of one request between two traced processes: a client record and a server
//! record that agree on a [`PairKey`] and whose time windows overlap.
//!
//! - **TCP** (any protocol): the connections mirror each other (the client's local address is
//!   the server's peer and the other way round) and the requests start at the same byte
//!   position. The kernel counts positions from the first byte the agent saw on each end, so
//!   on a connection opened before the agent started they agree only if the two ends began at
//!   the same request: when one end saw a request the other did not (a request in flight when
//!   the agent attached), equal positions name different requests. The time check refuses
//!   those, and [`Pairing::unpaired_on`] lists what is left on the connection so the stage can
//!   pair it by time alone (requests on one connection follow each other).
//! - **UDP** (DNS): no positions; the datagram's ports and the DNS transaction id, with the
//!   addresses compared loosely (an unconnected socket's local address is the wildcard).

use std::{collections::VecDeque, net::SocketAddr};

use rustc_hash::FxHashMap;

/// What both ends of one request agree on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PairKey {
    /// A request on a TCP connection.
    Stream {
        /// The client's address.
        client: SocketAddr,
        /// The server's address.
        server: SocketAddr,
        /// Stream position of the request's first byte.
        position: u64,
    },
    /// A DNS query over UDP.
    Datagram {
        /// The client's port.
        client_port: u16,
        /// The server's port.
        server_port: u16,
        /// The DNS transaction id.
        id: u16,
    },
}

impl PairKey {
    /// The TCP connection (client, server) of a stream key.
    pub fn connection(&self) -> Option<(SocketAddr, SocketAddr)> {
        match *self {
            Self::Stream { client, server, .. } => Some((client, server)),
            Self::Datagram { .. } => None,
        }
    }
}

/// Which end a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The client's record.
    Client,
    /// The server's record.
    Server,
}

impl End {
    fn index(self) -> usize {
        match self {
            Self::Client => 0,
            Self::Server => 1,
        }
    }
}

/// Records waiting for their other end, by key, oldest first, and by TCP connection.
#[derive(Debug, Default)]
pub struct Pairing {
    /// By end, then key.
    waiting: [FxHashMap<PairKey, VecDeque<u64>>; 2],
    /// By end, then (client, server) of stream keys: what is left to pair by time.
    by_connection: [FxHashMap<(SocketAddr, SocketAddr), VecDeque<u64>>; 2],
}

impl Pairing {
    /// Record `seq` is end `end` of the request at `key`: the oldest record of the other end
    /// at that key that `fits` (taken), else `None` and `seq` waits.
    pub fn offer(
        &mut self,
        end: End,
        key: PairKey,
        seq: u64,
        fits: impl Fn(u64) -> bool,
    ) -> Option<u64> {
        let other = match end {
            End::Client => End::Server,
            End::Server => End::Client,
        };
        if let Some(queue) = self.waiting[other.index()].get(&key)
            && let Some(found) = queue.iter().copied().find(|&s| fits(s))
        {
            self.withdraw(other, key, found);
            return Some(found);
        }
        self.waiting[end.index()]
            .entry(key)
            .or_default()
            .push_back(seq);
        if let Some(connection) = key.connection() {
            self.by_connection[end.index()]
                .entry(connection)
                .or_default()
                .push_back(seq);
        }
        None
    }

    /// Record `seq` stops waiting (paired late, sent on, or forgotten).
    pub fn withdraw(&mut self, end: End, key: PairKey, seq: u64) {
        remove(&mut self.waiting[end.index()], key, seq);
        if let Some(connection) = key.connection() {
            remove(&mut self.by_connection[end.index()], connection, seq);
        }
    }

    /// Records of end `end` still waiting on the TCP connection (client, server), oldest first.
    pub fn unpaired_on(
        &self,
        end: End,
        connection: (SocketAddr, SocketAddr),
    ) -> impl Iterator<Item = u64> + '_ {
        self.by_connection[end.index()]
            .get(&connection)
            .into_iter()
            .flatten()
            .copied()
    }

    /// Records waiting.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.waiting
            .iter()
            .flat_map(|m| m.values())
            .map(VecDeque::len)
            .sum()
    }
}

/// Take `seq` out of the queue at `key` (records leave about oldest first: a short search),
/// and the queue out of the map once empty.
fn remove<K: std::hash::Hash + Eq>(map: &mut FxHashMap<K, VecDeque<u64>>, key: K, seq: u64) {
    if let Some(queue) = map.get_mut(&key) {
        if let Some(at) = queue.iter().position(|&s| s == seq) {
            queue.remove(at);
        }
        if queue.is_empty() {
            map.remove(&key);
        }
    }
}

/// Whether two time windows (Unix ns) share an instant.
pub fn overlap(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

/// Whether two addresses may name the same end: equal ports, and equal addresses unless one
/// is the wildcard (an unconnected UDP socket's local address).
pub fn same_end(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(position: u64) -> PairKey {
        PairKey::Stream {
            client: "127.0.0.1:40000".parse().unwrap(),
            server: "127.0.0.1:8080".parse().unwrap(),
            position,
        }
    }

    #[test]
    fn pairs_in_order_whichever_end_comes_first() {
        let mut p = Pairing::default();
        let any = |_| true;
        // Two pipelined requests at one position: paired in order.
        assert_eq!(p.offer(End::Server, stream(0), 1, any), None);
        assert_eq!(p.offer(End::Server, stream(0), 2, any), None);
        assert_eq!(p.offer(End::Client, stream(0), 3, any), Some(1));
        assert_eq!(p.offer(End::Client, stream(0), 4, any), Some(2));
        // Client first, then another position.
        assert_eq!(p.offer(End::Client, stream(100), 5, any), None);
        assert_eq!(p.offer(End::Server, stream(200), 6, any), None);
        assert_eq!(p.offer(End::Server, stream(100), 7, any), Some(5));
        let connection = stream(0).connection().unwrap();
        assert_eq!(
            p.unpaired_on(End::Server, connection).collect::<Vec<_>>(),
            [6]
        );
        p.withdraw(End::Server, stream(200), 6);
        assert_eq!(p.waiting(), 0);
        assert_eq!(p.unpaired_on(End::Server, connection).count(), 0);
    }

    #[test]
    fn a_record_that_does_not_fit_is_passed_over() {
        let mut p = Pairing::default();
        let key = PairKey::Datagram {
            client_port: 40000,
            server_port: 53,
            id: 7,
        };
        assert_eq!(p.offer(End::Server, key, 1, |_| true), None);
        assert_eq!(p.offer(End::Client, key, 2, |s| s != 1), None);
        assert_eq!(p.offer(End::Server, key, 3, |_| true), Some(2));
        assert_eq!(p.waiting(), 1);
    }

    #[test]
    fn loose_address_comparison() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(same_end(a("0.0.0.0:40000"), a("127.0.0.1:40000")));
        assert!(same_end(a("127.0.0.1:40000"), a("127.0.0.1:40000")));
        assert!(!same_end(a("127.0.0.2:40000"), a("127.0.0.1:40000")));
        assert!(!same_end(a("127.0.0.1:40001"), a("127.0.0.1:40000")));
        assert!(overlap((1, 5), (5, 9)));
        assert!(!overlap((1, 4), (5, 9)));
    }
}
