//! The owner walk and the service-name rules on recorded API objects
//! (`agent/testdata/kubernetes/`: a PodList, a ReplicaSet and a Job as the API returns them).

use k8s_openapi::{
    List,
    api::{apps::v1::ReplicaSet, batch::v1::Job, core::v1::Pod},
};

use super::*;

fn testdata(name: &str) -> String {
    let path = format!("{}/testdata/kubernetes/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn pods() -> Vec<Pod> {
    let list: List<Pod> = serde_json::from_str(&testdata("pods.json")).expect("PodList");
    list.items
}

fn pod_named(name: &str) -> Pod {
    pods()
        .into_iter()
        .find(|p| p.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no pod {name}"))
}

fn owners(info: &wirelens_otel::PodInfo) -> Vec<(&str, &str)> {
    info.owners.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn deployment_pod_walks_through_its_replicaset() {
    let rs: ReplicaSet = serde_json::from_str(&testdata("replicaset-web.json")).expect("rs");
    let pod = pod_named("web-7d9f8c-x2x5q");
    let info = pod::pod_info(&pod, Some(&rs.metadata), &Selection::default());
    assert_eq!(info.name, "web-7d9f8c-x2x5q");
    assert_eq!(info.uid, "5f0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d");
    assert_eq!(info.namespace, "shop");
    assert_eq!(info.node_name, "n1");
    assert_eq!(
        owners(&info),
        [
            ("k8s.replicaset.name", "web-7d9f8c"),
            ("k8s.deployment.name", "web")
        ]
    );
    // No annotation, no app.kubernetes.io/name: the top owner names the service.
    assert_eq!(info.service_name.as_deref(), Some("web"));
}

#[test]
fn replicaset_not_fetched_still_names_the_replicaset() {
    let info = pod::pod_info(&pod_named("web-7d9f8c-x2x5q"), None, &Selection::default());
    assert_eq!(owners(&info), [("k8s.replicaset.name", "web-7d9f8c")]);
    assert_eq!(info.service_name.as_deref(), Some("web-7d9f8c"));
}

#[test]
fn cronjob_pod_walks_through_its_job() {
    let job: Job = serde_json::from_str(&testdata("job-report.json")).expect("job");
    let info = pod::pod_info(
        &pod_named("report-29412345-8kq2z"),
        Some(&job.metadata),
        &Selection::default(),
    );
    assert_eq!(
        owners(&info),
        [
            ("k8s.job.name", "report-29412345"),
            ("k8s.cronjob.name", "report")
        ]
    );
    assert_eq!(info.service_name.as_deref(), Some("report"));
}

#[test]
fn annotation_wins_over_label_and_owner() {
    let info = pod::pod_info(&pod_named("db-0"), None, &Selection::default());
    assert_eq!(owners(&info), [("k8s.statefulset.name", "db")]);
    assert_eq!(info.service_name.as_deref(), Some("orders-db"));
    let mut pod = pod_named("db-0");
    pod.metadata.annotations = None;
    let info = pod::pod_info(&pod, None, &Selection::default());
    assert_eq!(info.service_name.as_deref(), Some("postgres"));
}

#[test]
fn bare_pod_leaves_the_service_to_the_container_name() {
    let pod: Pod = serde_json::from_str(&testdata("pod-debug.json")).expect("pod");
    let info = pod::pod_info(&pod, None, &Selection::default());
    assert!(info.owners.is_empty());
    assert_eq!(info.service_name, None);
}

#[test]
fn chosen_labels_and_annotations_only() {
    let selection = Selection {
        labels: vec!["tier".into(), "missing".into()],
        annotations: vec!["kubectl.kubernetes.io/restartedAt".into()],
    };
    let info = pod::pod_info(&pod_named("web-7d9f8c-x2x5q"), None, &selection);
    assert_eq!(
        info.attributes,
        [
            ("k8s.pod.label.tier".to_string(), "front".to_string()),
            (
                "k8s.pod.annotation.kubectl.kubernetes.io/restartedAt".into(),
                "2026-12-07T09:13:58Z".into()
            ),
        ]
    );
}

#[test]
fn store_replace_apply_delete() {
    let store = PodStore::default();
    let all: Vec<_> = pods()
        .iter()
        .map(|p| pod::pod_info(p, None, &Selection::default()))
        .collect();
    let g0 = store.generation();
    store.replace(all);
    assert_eq!(store.len(), 3);
    assert!(store.generation() > g0);
    let uid = "6a7b8c9d-1111-4222-8333-944455556666";
    assert_eq!(
        store.get(uid).map(|p| p.name.clone()).as_deref(),
        Some("db-0")
    );
    store.delete(uid);
    assert!(store.get(uid).is_none());
    assert_eq!(store.len(), 2);
}

#[test]
fn config_needs_a_node_name_and_a_url() {
    let none = KubeConfig::resolve(Some("http://127.0.0.1:1"), None, Selection::default(), true);
    assert!(matches!(none, Err(KubeError::NoNodeName)));
    let bad = KubeConfig::resolve(Some("http://[::1"), Some("n1"), Selection::default(), true);
    assert!(matches!(bad, Err(KubeError::Url { .. })));
    let ok = KubeConfig::resolve(
        Some("http://127.0.0.1:1"),
        Some("n1"),
        Selection::default(),
        true,
    )
    .expect("config")
    .expect("enabled");
    assert_eq!(ok.node_name, "n1");
}

fn list<T: k8s_openapi::ListableResource + serde::de::DeserializeOwned>(name: &str) -> Vec<T> {
    let list: List<T> =
        serde_json::from_str(&testdata(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    list.items
}

fn peer_attrs(identity: &wirelens_otel::PeerIdentity) -> Vec<(&str, &str)> {
    identity
        .attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn peer_pods_named_by_their_workload_without_fetching_owners() {
    let all: Vec<Pod> = list::<Pod>("pods-other-nodes.json");
    let api = &all[0];
    assert_eq!(
        peer::pod_ips(api),
        ["10.244.2.9".parse::<std::net::IpAddr>().expect("ip")]
    );
    let identity = peer::pod_identity(api);
    // The ReplicaSet's name minus the pod-template-hash is the Deployment's.
    assert_eq!(identity.service_name, "api");
    assert_eq!(identity.service_namespace, "shop");
    assert_eq!(
        peer_attrs(&identity),
        [
            ("wirelens.peer.k8s.pod.name", "api-5c6d7e8f9-q8w7e"),
            ("wirelens.peer.k8s.namespace.name", "shop"),
            ("wirelens.peer.k8s.node.name", "n2"),
            ("wirelens.peer.k8s.deployment.name", "api"),
            ("wirelens.peer.k8s.replicaset.name", "api-5c6d7e8f9"),
        ]
    );
    // A pod on the node's network has no address of its own.
    assert!(peer::pod_ips(&all[1]).is_empty());
    // The annotation wins, as for the pod's own Resource.
    assert_eq!(
        peer::pod_identity(&pod_named("db-0")).service_name,
        "orders-db"
    );
}

#[test]
fn services_named_at_their_cluster_ips() {
    let all: Vec<k8s_openapi::api::core::v1::Service> = list("services.json");
    let ips: Vec<Vec<std::net::IpAddr>> = all.iter().map(peer::service_ips).collect();
    assert_eq!(
        ips[0],
        ["10.96.0.1".parse::<std::net::IpAddr>().expect("ip")]
    );
    assert_eq!(
        ips[1],
        ["10.96.0.50".parse::<std::net::IpAddr>().expect("ip")]
    );
    assert!(ips[2].is_empty(), "headless");
    let checkout = peer::service_identity(&all[1]);
    assert_eq!(checkout.service_name, "checkout");
    assert_eq!(
        peer_attrs(&checkout),
        [
            ("wirelens.peer.k8s.service.name", "checkout"),
            ("wirelens.peer.k8s.namespace.name", "shop"),
        ]
    );
}
