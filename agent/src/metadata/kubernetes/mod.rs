//! Kubernetes API metadata for the Resources of this node's pods: `k8s.node.name`, the
//! owners (`k8s.replicaset.name`, `k8s.deployment.name`, `k8s.statefulset.name`,
//! `k8s.daemonset.name`, `k8s.job.name`, `k8s.cronjob.name`), chosen pod labels and
//! annotations, and `service.name` by the OpenTelemetry Kubernetes rules.
//!
//! Enabled by `--kube-api <url>` (plain URL, no credentials: a proxy or a test stand-in), or
//! when running in a cluster (`KUBERNETES_SERVICE_HOST`: the service account token and CA) or
//! with a kubeconfig (`KUBECONFIG`). The node comes from `--node-name` / `NODE_NAME` (the
//! downward API's `spec.nodeName`). The watch runs on its own thread with its own small tokio
//! runtime, never on the reader thread; the process cache reads the shared [`PodStore`] when it
//! builds a Resource. The API being down or slow never stops tracing: spans go out with what
//! the CRI annotations said, and the gap is counted (`wirelens.k8s.metadata_misses`,
//! `wirelens.k8s.api_failures`).

pub mod peer;
mod peer_watch;
pub mod peers;
pub mod pod;
pub mod selector;
pub mod store;
mod watch;

pub use peers::PeerStore;
pub use pod::Selection;
pub use selector::LabelSelector;
pub use store::PodStore;

/// Where the API is and what to ask of it.
#[derive(Clone, Debug)]
pub struct KubeConfig {
    /// `--kube-api`: a URL reached without credentials; `None`: in-cluster or kubeconfig.
    pub api: Option<http::Uri>,
    /// The node whose pods are watched.
    pub node_name: String,
    /// Pod labels and annotations exported.
    pub selection: Selection,
    /// Also watch the cluster's pods and Services, to name the peers of connections
    /// (`--k8s-peers`, on by default).
    pub peers: bool,
}

impl KubeConfig {
    /// The configuration, or `None` when no API is configured or discoverable: `api` from
    /// `--kube-api`, else in-cluster (`KUBERNETES_SERVICE_HOST`) or a kubeconfig (`KUBECONFIG`).
    /// With `--kube-api` but no node name, the error says so; an API only discovered (in a
    /// sidecar, say) without a node name is left alone, with a warning.
    pub fn resolve(
        api: Option<&str>,
        node_name: Option<&str>,
        selection: Selection,
        peers: bool,
    ) -> Result<Option<Self>, KubeError> {
        let discoverable = ["KUBERNETES_SERVICE_HOST", "KUBECONFIG"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
        let api = match api.filter(|a| !a.is_empty()) {
            Some(url) => Some(url.parse::<http::Uri>().map_err(|source| KubeError::Url {
                url: url.to_string(),
                source,
            })?),
            None if discoverable => None,
            None => return Ok(None),
        };
        let Some(node_name) = node_name.filter(|n| !n.is_empty()) else {
            if api.is_none() {
                tracing::warn!(
                    "kubernetes api found but no NODE_NAME: pod metadata from the api is off"
                );
                return Ok(None);
            }
            return Err(KubeError::NoNodeName);
        };
        Ok(Some(Self {
            api,
            node_name: node_name.to_string(),
            selection,
            peers,
        }))
    }
}

/// A failure to set up the Kubernetes client.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// `--kube-api` is not a URL.
    #[error("--kube-api {url} is not a URL")]
    Url {
        /// What was given.
        url: String,
        /// The cause.
        #[source]
        source: http::uri::InvalidUri,
    },
    /// The API is configured but the node is not known.
    #[error(
        "kubernetes metadata needs the node name: set NODE_NAME (downward API spec.nodeName) or --node-name"
    )]
    NoNodeName,
    /// Neither in-cluster settings nor a kubeconfig could be read.
    #[error("cannot read the in-cluster or kubeconfig settings")]
    Config(#[source] kube::config::InferConfigError),
    /// The client could not be built from the settings.
    #[error("cannot build the kubernetes client")]
    Client(#[source] kube::Error),
    /// The watcher thread could not start.
    #[error("cannot start the kubernetes metadata thread")]
    Thread(#[source] std::io::Error),
}

/// What the watcher fills: this node's pods, and the cluster's peers when asked for.
pub struct Watched {
    /// This node's pods by uid.
    pub pods: PodStore,
    /// The cluster's pods and Services by address (with `--k8s-peers`).
    pub peers: Option<PeerStore>,
}

/// Start watching on a thread of its own; the returned stores fill as objects are listed.
pub fn spawn(config: KubeConfig) -> Result<Watched, KubeError> {
    let store = PodStore::default();
    let peers = config.peers.then(PeerStore::default);
    let shared = store.clone();
    let shared_peers = peers.clone();
    std::thread::Builder::new()
        .name("wirelens-kube".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(error) => {
                    shared.count_api_failure();
                    tracing::error!(error = %error, "kubernetes metadata: no runtime, not watching");
                    return;
                }
            };
            runtime.block_on(watch::run(config, shared, shared_peers));
        })
        .map_err(KubeError::Thread)?;
    Ok(Watched { pods: store, peers })
}

#[cfg(test)]
mod tests;
