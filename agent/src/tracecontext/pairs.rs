//! The two ends of one request on a connection between two traced processes: a client record
//! and a server record whose connections mirror each other (the client's local address is the
//! server's peer and the other way round) and whose requests start at the same byte position.

use std::{collections::VecDeque, net::SocketAddr};

use rustc_hash::FxHashMap;

/// (client address, server address, request position): what both ends agree on.
pub type PairKey = (SocketAddr, SocketAddr, u64);

/// Records waiting for their other end, by key, oldest first.
#[derive(Debug, Default)]
pub struct Pairing {
    clients: FxHashMap<PairKey, VecDeque<u64>>,
    servers: FxHashMap<PairKey, VecDeque<u64>>,
}

/// Which end a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The client's record.
    Client,
    /// The server's record.
    Server,
}

impl Pairing {
    /// Record `seq` is end `end` of the request at `key`: its other end, if it came already
    /// (taken), else `None` and `seq` waits.
    pub fn offer(&mut self, end: End, key: PairKey, seq: u64) -> Option<u64> {
        let (others, own) = match end {
            End::Client => (&mut self.servers, &mut self.clients),
            End::Server => (&mut self.clients, &mut self.servers),
        };
        if let Some(queue) = others.get_mut(&key) {
            let found = queue.pop_front();
            if queue.is_empty() {
                others.remove(&key);
            }
            if found.is_some() {
                return found;
            }
        }
        own.entry(key).or_default().push_back(seq);
        None
    }

    /// Record `seq` stops waiting (sent on, or forgotten).
    pub fn withdraw(&mut self, end: End, key: PairKey, seq: u64) {
        let own = match end {
            End::Client => &mut self.clients,
            End::Server => &mut self.servers,
        };
        if let Some(queue) = own.get_mut(&key) {
            queue.retain(|&s| s != seq);
            if queue.is_empty() {
                own.remove(&key);
            }
        }
    }

    /// Records waiting.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.clients
            .values()
            .chain(self.servers.values())
            .map(VecDeque::len)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_in_order_whichever_end_comes_first() {
        let c: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let s: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let mut p = Pairing::default();
        // Two pipelined requests at one position: paired in order.
        assert_eq!(p.offer(End::Server, (c, s, 0), 1), None);
        assert_eq!(p.offer(End::Server, (c, s, 0), 2), None);
        assert_eq!(p.offer(End::Client, (c, s, 0), 3), Some(1));
        assert_eq!(p.offer(End::Client, (c, s, 0), 4), Some(2));
        // Client first, then another position.
        assert_eq!(p.offer(End::Client, (c, s, 100), 5), None);
        assert_eq!(p.offer(End::Server, (c, s, 200), 6), None);
        assert_eq!(p.offer(End::Server, (c, s, 100), 7), Some(5));
        p.withdraw(End::Server, (c, s, 200), 6);
        assert_eq!(p.waiting(), 0);
    }
}
