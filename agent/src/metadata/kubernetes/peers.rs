//! The cluster's pods and Services by address, as the peer watcher last saw them, shared
//! between the watcher thread (which writes) and the reader thread (one read-locked lookup per
//! record that has a peer address). Bounded: past [`MAX_PEER_ADDRESSES`] addresses of a kind,
//! new ones are counted and not kept.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use wirelens_otel::PeerIdentity;

/// Most addresses kept per kind (pod IPs, Service IPs): about 200 bytes each.
pub const MAX_PEER_ADDRESSES: usize = 65536;

/// Addresses of one kind of object, indexed by the object's key (`namespace/name`) too so a
/// deleted or changed object takes its old addresses with it.
#[derive(Default)]
struct Index {
    /// The identity at each address, with the key of the object that holds it (an address
    /// passed from a deleted pod to a new one belongs to the new one).
    by_ip: HashMap<IpAddr, (Arc<str>, Arc<PeerIdentity>)>,
    by_key: HashMap<String, Vec<IpAddr>>,
}

impl Index {
    /// Sets `key`'s addresses, as many as the bound leaves room for.
    fn apply(&mut self, key: String, ips: Vec<IpAddr>, identity: PeerIdentity) {
        self.delete(&key);
        if ips.is_empty() {
            return;
        }
        let identity = Arc::new(identity);
        let owner: Arc<str> = Arc::from(key.as_str());
        let mut kept = Vec::with_capacity(ips.len());
        for ip in ips {
            if self.by_ip.len() >= MAX_PEER_ADDRESSES && !self.by_ip.contains_key(&ip) {
                continue;
            }
            self.by_ip.insert(ip, (owner.clone(), identity.clone()));
            kept.push(ip);
        }
        self.by_key.insert(key, kept);
    }

    fn delete(&mut self, key: &str) {
        for ip in self.by_key.remove(key).unwrap_or_default() {
            if self
                .by_ip
                .get(&ip)
                .is_some_and(|(owner, _)| &**owner == key)
            {
                self.by_ip.remove(&ip);
            }
        }
    }
}

#[derive(Default)]
struct Shared {
    pods: RwLock<Index>,
    services: RwLock<Index>,
    over_capacity: AtomicU64,
}

/// Which index an update is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerKind {
    /// Pod IPs.
    Pod,
    /// Service cluster IPs.
    Service,
}

/// Address -> [`PeerIdentity`] for the cluster's pods and Services; cheap to clone.
#[derive(Clone, Default)]
pub struct PeerStore {
    shared: Arc<Shared>,
}

impl PeerStore {
    fn index(&self, kind: PeerKind) -> &RwLock<Index> {
        match kind {
            PeerKind::Pod => &self.shared.pods,
            PeerKind::Service => &self.shared.services,
        }
    }

    /// Who a client reached at `ip`: a Service's cluster IP first, then a pod's IP.
    pub fn server(&self, ip: IpAddr) -> Option<Arc<PeerIdentity>> {
        self.read(PeerKind::Service, ip)
            .or_else(|| self.read(PeerKind::Pod, ip))
    }

    /// Who a server was called from at `ip`: a pod (a cluster IP is only ever a destination;
    /// a connection that seems to come from one was translated on the way).
    pub fn client(&self, ip: IpAddr) -> Option<Arc<PeerIdentity>> {
        self.read(PeerKind::Pod, ip)
    }

    fn read(&self, kind: PeerKind, ip: IpAddr) -> Option<Arc<PeerIdentity>> {
        let index = self.index(kind).read().unwrap_or_else(|e| e.into_inner());
        index.by_ip.get(&ip).map(|(_, identity)| identity.clone())
    }

    /// Adds or replaces the object `key` of `kind` with its addresses.
    pub fn apply(&self, kind: PeerKind, key: String, ips: Vec<IpAddr>, identity: PeerIdentity) {
        let wanted = ips.len();
        let mut index = self.index(kind).write().unwrap_or_else(|e| e.into_inner());
        index.apply(key.clone(), ips, identity);
        let kept = index.by_key.get(&key).map_or(0, Vec::len);
        if kept < wanted {
            self.shared
                .over_capacity
                .fetch_add((wanted - kept) as u64, Ordering::Relaxed);
        }
    }

    /// Forgets the object `key` of `kind`.
    pub fn delete(&self, kind: PeerKind, key: &str) {
        let mut index = self.index(kind).write().unwrap_or_else(|e| e.into_inner());
        index.delete(key);
    }

    /// Replaces every object of `kind` (after a full list).
    pub fn replace(&self, kind: PeerKind, all: Vec<(String, Vec<IpAddr>, PeerIdentity)>) {
        let mut fresh = Index::default();
        let mut dropped = 0u64;
        for (key, ips, identity) in all {
            let wanted = ips.len();
            fresh.apply(key.clone(), ips, identity);
            dropped += wanted.saturating_sub(fresh.by_key.get(&key).map_or(0, Vec::len)) as u64;
        }
        *self.index(kind).write().unwrap_or_else(|e| e.into_inner()) = fresh;
        self.shared
            .over_capacity
            .fetch_add(dropped, Ordering::Relaxed);
    }

    /// Addresses known now, of `kind`.
    pub fn len(&self, kind: PeerKind) -> usize {
        let index = self.index(kind).read().unwrap_or_else(|e| e.into_inner());
        index.by_ip.len()
    }

    /// Addresses not kept because of the bound so far
    /// (`wirelens.k8s.peer_addresses_dropped`).
    pub fn over_capacity(&self) -> u64 {
        self.shared.over_capacity.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(name: &str) -> PeerIdentity {
        PeerIdentity {
            service_name: name.into(),
            ..PeerIdentity::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn services_win_and_changes_take_old_addresses_away() {
        let store = PeerStore::default();
        store.apply(
            PeerKind::Pod,
            "shop/api".into(),
            vec![ip("10.244.2.9")],
            identity("api"),
        );
        store.apply(
            PeerKind::Service,
            "shop/checkout".into(),
            vec![ip("10.96.0.50")],
            identity("checkout"),
        );
        let name = |a| store.server(ip(a)).map(|p| p.service_name.clone());
        assert_eq!(name("10.244.2.9").as_deref(), Some("api"));
        assert_eq!(name("10.96.0.50").as_deref(), Some("checkout"));
        assert!(store.client(ip("10.96.0.50")).is_none(), "never a client");
        assert!(store.client(ip("10.244.2.9")).is_some());
        assert_eq!(name("10.1.1.1"), None);
        // The pod moved to another address: the old one no longer names it.
        store.apply(
            PeerKind::Pod,
            "shop/api".into(),
            vec![ip("10.244.2.10")],
            identity("api"),
        );
        assert_eq!(name("10.244.2.9"), None);
        assert_eq!(name("10.244.2.10").as_deref(), Some("api"));
        store.delete(PeerKind::Pod, "shop/api");
        assert_eq!(name("10.244.2.10"), None);
        store.replace(PeerKind::Service, Vec::new());
        assert_eq!(name("10.96.0.50"), None);
        assert_eq!(store.over_capacity(), 0);
    }

    #[test]
    fn addresses_past_the_bound_are_counted_not_kept() {
        let store = PeerStore::default();
        let all = (0..MAX_PEER_ADDRESSES as u32 + 3)
            .map(|i| {
                let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000u32 + i));
                (format!("ns/p{i}"), vec![a], identity("p"))
            })
            .collect();
        store.replace(PeerKind::Pod, all);
        assert_eq!(store.len(PeerKind::Pod), MAX_PEER_ADDRESSES);
        assert_eq!(store.over_capacity(), 3);
    }
}
