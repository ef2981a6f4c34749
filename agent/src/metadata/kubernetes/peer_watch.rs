//! The peer watch: every pod (for its IP) and every Service (for its cluster IPs) of the
//! cluster, not only this node's, since a peer may run on any node. kube's watcher lists, then
//! watches, lists again after `410 Gone`, watches again after a dropped stream and backs off
//! while the API is down; each failure is counted with the pod watch's
//! (`wirelens.k8s.api_failures`). Only addresses and a few names are kept ([`PeerStore`]).

use std::{net::IpAddr, pin::pin};

use futures::StreamExt as _;
use k8s_openapi::{
    Metadata,
    api::core::v1::{Pod, Service},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, Client, Resource,
    runtime::{WatchStreamExt as _, watcher},
};
use serde::de::DeserializeOwned;
use wirelens_otel::PeerIdentity;

use super::{
    peer,
    peers::{PeerKind, PeerStore},
    store::PodStore,
};

/// Pods that hold no address any more are left out by the API.
const LIVE_PODS: &str = "status.phase!=Succeeded,status.phase!=Failed";

/// Watch the cluster's pods and Services until the process ends.
pub async fn run(client: Client, peers: PeerStore, counters: PodStore) {
    let pods = watch_kind(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().fields(LIVE_PODS),
        PeerKind::Pod,
        |p: &Pod| (peer::pod_ips(p), peer::pod_identity(p)),
        &peers,
        &counters,
    );
    let services = watch_kind(
        Api::<Service>::all(client),
        watcher::Config::default(),
        PeerKind::Service,
        |s: &Service| (peer::service_ips(s), peer::service_identity(s)),
        &peers,
        &counters,
    );
    tokio::join!(pods, services);
}

fn key(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

async fn watch_kind<K>(
    api: Api<K>,
    config: watcher::Config,
    kind: PeerKind,
    describe: impl Fn(&K) -> (Vec<IpAddr>, PeerIdentity),
    peers: &PeerStore,
    counters: &PodStore,
) where
    K: Resource
        + Metadata<Ty = ObjectMeta>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let mut stream = pin!(watcher(api, config).default_backoff());
    let mut listing = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(o)) => {
                let (ips, identity) = describe(&o);
                listing.push((key(o.metadata()), ips, identity));
            }
            Ok(watcher::Event::InitDone) => {
                peers.replace(kind, std::mem::take(&mut listing));
                tracing::debug!(
                    ?kind,
                    addresses = peers.len(kind),
                    "kubernetes peers listed"
                );
            }
            Ok(watcher::Event::Apply(o)) => {
                let (ips, identity) = describe(&o);
                peers.apply(kind, key(o.metadata()), ips, identity);
            }
            Ok(watcher::Event::Delete(o)) => peers.delete(kind, &key(o.metadata())),
            Err(error) => {
                counters.count_api_failure();
                tracing::warn!(?kind, error = %error, "kubernetes peer watch failed; peers named by what is known");
            }
        }
    }
}
