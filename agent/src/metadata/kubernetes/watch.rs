//! The watch itself: the pods of this node (field selector `spec.nodeName=<node>`) through
//! kube's watcher, which lists then watches, lists again after `410 Gone`, watches again after
//! a dropped stream and backs off while the API is down; each pod's controller (ReplicaSet,
//! Job) is fetched once to walk up to its Deployment or CronJob. Every failed call is counted.

use std::{collections::HashMap, pin::pin, time::Duration};

use futures::StreamExt as _;
use k8s_openapi::{
    api::{apps::v1::ReplicaSet, batch::v1::Job, core::v1::Pod},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, Client,
    runtime::{WatchStreamExt as _, watcher},
};

use super::{
    KubeConfig, KubeError,
    peers::PeerStore,
    pod::{self, Selection},
    store::PodStore,
};

/// How long one fetch of an owner may take before it counts as failed.
const OWNER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait before building the client again after a failure.
const CLIENT_RETRY: Duration = Duration::from_secs(10);
/// Most owners cached (ReplicaSets and Jobs of this node's pods).
const MAX_OWNERS: usize = 4096;

/// Watch until the process ends: this node's pods, and with `peers` the cluster's pods and
/// Services by address.
pub async fn run(config: KubeConfig, store: PodStore, peers: Option<PeerStore>) {
    let client = loop {
        match client(&config).await {
            Ok(c) => break c,
            Err(error) => {
                store.count_api_failure();
                tracing::warn!(error = %error, source = ?std::error::Error::source(&error), "kubernetes metadata: no client, retrying");
                tokio::time::sleep(CLIENT_RETRY).await;
            }
        }
    };
    match peers {
        Some(peers) => {
            let peer_watch = super::peer_watch::run(client.clone(), peers, store.clone());
            tokio::join!(watch_pods(client, &config, &store), peer_watch);
        }
        None => watch_pods(client, &config, &store).await,
    }
}

/// This node's pods into `store`.
async fn watch_pods(client: Client, config: &KubeConfig, store: &PodStore) {
    let pods: Api<Pod> = Api::all(client.clone());
    let selector = format!("spec.nodeName={}", config.node_name);
    let mut owners = Owners {
        client,
        cache: HashMap::new(),
    };
    let mut stream =
        pin!(watcher(pods, watcher::Config::default().fields(&selector)).default_backoff());
    let mut listing = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(p)) => {
                let info = owners.pod_info(&p, &config.selection, store).await;
                listing.push((info, p.metadata.labels.unwrap_or_default()));
            }
            Ok(watcher::Event::InitDone) => {
                store.replace_labeled(std::mem::take(&mut listing));
                tracing::debug!(pods = store.len(), node = %config.node_name, "kubernetes pods listed");
            }
            Ok(watcher::Event::Apply(p)) => {
                let info = owners.pod_info(&p, &config.selection, store).await;
                store.apply_labeled(info, p.metadata.labels.unwrap_or_default());
            }
            Ok(watcher::Event::Delete(p)) => {
                if let Some(uid) = &p.metadata.uid {
                    store.delete(uid);
                }
            }
            Err(error) => {
                store.count_api_failure();
                tracing::warn!(error = %error, "kubernetes pod watch failed; spans go out with what is known");
            }
        }
    }
}

async fn client(config: &KubeConfig) -> Result<Client, KubeError> {
    let kube_config = match &config.api {
        Some(url) => kube::Config::new(url.clone()),
        None => kube::Config::infer().await.map_err(KubeError::Config)?,
    };
    Client::try_from(kube_config).map_err(KubeError::Client)
}

/// The pods' controllers, fetched once each.
struct Owners {
    client: Client,
    cache: HashMap<(String, String, String), ObjectMeta>,
}

impl Owners {
    async fn pod_info(
        &mut self,
        p: &Pod,
        selection: &Selection,
        store: &PodStore,
    ) -> wirelens_otel::PodInfo {
        let parent = self.parent(p, store).await;
        pod::pod_info(p, parent.as_ref(), selection)
    }

    /// The metadata of the pod's controller, when its kind has an owner of its own.
    async fn parent(&mut self, p: &Pod, store: &PodStore) -> Option<ObjectMeta> {
        let owner = pod::controller(&p.metadata)?;
        if !pod::has_parent(&owner.kind) {
            return None;
        }
        let namespace = p.metadata.namespace.clone()?;
        let key = (owner.kind.clone(), namespace.clone(), owner.name.clone());
        if let Some(meta) = self.cache.get(&key) {
            return Some(meta.clone());
        }
        let client = self.client.clone();
        let fetch = async {
            match owner.kind.as_str() {
                "ReplicaSet" => Api::<ReplicaSet>::namespaced(client, &namespace)
                    .get(&owner.name)
                    .await
                    .map(|o| o.metadata),
                _ => Api::<Job>::namespaced(client, &namespace)
                    .get(&owner.name)
                    .await
                    .map(|o| o.metadata),
            }
        };
        match tokio::time::timeout(OWNER_TIMEOUT, fetch).await {
            Ok(Ok(meta)) => {
                if self.cache.len() >= MAX_OWNERS {
                    self.cache.clear();
                }
                self.cache.insert(key, meta.clone());
                Some(meta)
            }
            Ok(Err(error)) => {
                store.count_api_failure();
                tracing::warn!(kind = %owner.kind, name = %owner.name, error = %error, "kubernetes owner lookup failed");
                None
            }
            Err(_) => {
                store.count_api_failure();
                tracing::warn!(kind = %owner.kind, name = %owner.name, "kubernetes owner lookup timed out");
                None
            }
        }
    }
}
