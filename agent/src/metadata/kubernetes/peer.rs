//! A pod or a Service of the cluster as the other end of a connection: its addresses and the
//! [`PeerIdentity`] spans to or from them carry. Pure: the objects come in, nothing is fetched
//! (a peer pod's Deployment is read from its ReplicaSet's name and `pod-template-hash`, not
//! fetched: the watch covers the whole cluster, too many owners to ask for).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, Service};
use wirelens_otel::{PeerIdentity, semconv};

use super::pod::{APP_NAME_LABEL, SERVICE_NAME_ANNOTATION, controller};

/// The label the Deployment controller puts on its ReplicaSets' pods.
const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// `wirelens.peer.<k8s name>`.
fn peer_key(k8s: &str) -> String {
    format!("{}{k8s}", semconv::WIRELENS_PEER_PREFIX)
}

/// The IPs of a pod that are its own: `None` for a pod on the node's network (its IP is the
/// node's, shared by every such pod) or one without an IP yet.
pub fn pod_ips(pod: &Pod) -> Vec<IpAddr> {
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
    {
        return Vec::new();
    }
    let Some(status) = &pod.status else {
        return Vec::new();
    };
    let mut ips: Vec<IpAddr> = status
        .pod_ips
        .iter()
        .flatten()
        .filter_map(|p| p.ip.parse().ok())
        .collect();
    if let Some(ip) = status.pod_ip.as_deref().and_then(|ip| ip.parse().ok())
        && !ips.contains(&ip)
    {
        ips.push(ip);
    }
    ips
}

/// The identity of a peer pod: `service.name` by the rules the pod's own Resource follows
/// (the `resource.opentelemetry.io/service.name` annotation, the `app.kubernetes.io/name`
/// label, the workload), with the workload read from the controller reference.
pub fn pod_identity(pod: &Pod) -> PeerIdentity {
    let meta = &pod.metadata;
    let name = meta.name.clone().unwrap_or_default();
    let namespace = meta.namespace.clone().unwrap_or_default();
    let labels = meta.labels.as_ref();
    let mut attributes = vec![
        (peer_key(semconv::K8S_POD_NAME), name.clone()),
        (peer_key(semconv::K8S_NAMESPACE_NAME), namespace.clone()),
    ];
    if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
        attributes.push((peer_key(semconv::K8S_NODE_NAME), node));
    }
    let mut workload = None;
    if let Some(owner) = controller(meta) {
        let key = match owner.kind.as_str() {
            "ReplicaSet" => {
                // A Deployment names its ReplicaSets `<deployment>-<pod-template-hash>`.
                let hash = labels.and_then(|l| l.get(POD_TEMPLATE_HASH));
                if let Some(deployment) =
                    hash.and_then(|h| owner.name.strip_suffix(&format!("-{h}")))
                {
                    attributes.push((
                        peer_key(semconv::K8S_DEPLOYMENT_NAME),
                        deployment.to_string(),
                    ));
                    workload = Some(deployment.to_string());
                }
                Some(semconv::K8S_REPLICASET_NAME)
            }
            "StatefulSet" => Some(semconv::K8S_STATEFULSET_NAME),
            "DaemonSet" => Some(semconv::K8S_DAEMONSET_NAME),
            "Job" => Some(semconv::K8S_JOB_NAME),
            _ => None,
        };
        if let Some(key) = key {
            attributes.push((peer_key(key), owner.name.clone()));
            workload.get_or_insert_with(|| owner.name.clone());
        }
    }
    let non_empty = |v: Option<&String>| v.filter(|v| !v.is_empty()).cloned();
    let service_name = non_empty(
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(SERVICE_NAME_ANNOTATION)),
    )
    .or_else(|| non_empty(labels.and_then(|l| l.get(APP_NAME_LABEL))))
    .or(workload)
    .unwrap_or_else(|| name.clone());
    PeerIdentity {
        service_name,
        service_namespace: namespace,
        attributes,
    }
}

/// The virtual IPs of a Service (`spec.clusterIPs`, `spec.clusterIP`); none for a headless
/// Service (`None`) or an `ExternalName` one.
pub fn service_ips(service: &Service) -> Vec<IpAddr> {
    let Some(spec) = &service.spec else {
        return Vec::new();
    };
    let mut ips: Vec<IpAddr> = spec
        .cluster_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    if let Some(ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok())
        && !ips.contains(&ip)
    {
        ips.push(ip);
    }
    ips
}

/// The identity of a Service reached at its cluster IP: its name is the service name.
pub fn service_identity(service: &Service) -> PeerIdentity {
    let name = service.metadata.name.clone().unwrap_or_default();
    let namespace = service.metadata.namespace.clone().unwrap_or_default();
    PeerIdentity {
        service_name: name.clone(),
        service_namespace: namespace.clone(),
        attributes: vec![
            (peer_key(semconv::K8S_SERVICE_NAME), name),
            (peer_key(semconv::K8S_NAMESPACE_NAME), namespace),
        ],
    }
}
