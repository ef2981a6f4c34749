//! A pod as the API returns it, turned into the [`PodInfo`] its processes' Resources carry:
//! the owner walk (ReplicaSet -> Deployment, Job -> CronJob) and the service-name rules of the
//! OpenTelemetry Kubernetes conventions. Pure: the objects come in, nothing is fetched here.

use k8s_openapi::{
    api::core::v1::Pod,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use wirelens_otel::{PodInfo, semconv};

/// The annotation that names a pod's service, per the OpenTelemetry Kubernetes conventions.
pub const SERVICE_NAME_ANNOTATION: &str = "resource.opentelemetry.io/service.name";
/// The well-known label naming the application.
pub const APP_NAME_LABEL: &str = "app.kubernetes.io/name";

/// Which pod labels and annotations become Resource attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Label keys copied as `k8s.pod.label.<key>`.
    pub labels: Vec<String>,
    /// Annotation keys copied as `k8s.pod.annotation.<key>`.
    pub annotations: Vec<String>,
}

/// The controller among `meta`'s owners (the one with `controller: true`).
pub fn controller(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()?
        .iter()
        .find(|o| o.controller == Some(true))
}

/// The attribute key naming an owner of `kind`, for the kinds the conventions name.
fn owner_key(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "ReplicaSet" => semconv::K8S_REPLICASET_NAME,
        "Deployment" => semconv::K8S_DEPLOYMENT_NAME,
        "StatefulSet" => semconv::K8S_STATEFULSET_NAME,
        "DaemonSet" => semconv::K8S_DAEMONSET_NAME,
        "Job" => semconv::K8S_JOB_NAME,
        "CronJob" => semconv::K8S_CRONJOB_NAME,
        _ => return None,
    })
}

/// Whether the controller of a pod owned by `kind` has an owner worth fetching
/// (a ReplicaSet's Deployment, a Job's CronJob).
pub fn has_parent(kind: &str) -> bool {
    matches!(kind, "ReplicaSet" | "Job")
}

/// The pod's [`PodInfo`]; `parent` is the metadata of the pod's controller (its ReplicaSet or
/// Job) when it was fetched, so the walk can go one level further up.
pub fn pod_info(pod: &Pod, parent: Option<&ObjectMeta>, selection: &Selection) -> PodInfo {
    let meta = &pod.metadata;
    let mut owners = Vec::new();
    if let Some(owner) = controller(meta)
        && let Some(key) = owner_key(&owner.kind)
    {
        owners.push((key, owner.name.clone()));
        if let Some(up) = parent.and_then(controller)
            && let Some(key) = owner_key(&up.kind)
        {
            owners.push((key, up.name.clone()));
        }
    }
    let labels = meta.labels.as_ref();
    let annotations = meta.annotations.as_ref();
    let mut attributes = Vec::new();
    for key in &selection.labels {
        if let Some(v) = labels.and_then(|l| l.get(key)) {
            attributes.push((format!("{}{key}", semconv::K8S_POD_LABEL_PREFIX), v.clone()));
        }
    }
    for key in &selection.annotations {
        if let Some(v) = annotations.and_then(|a| a.get(key)) {
            attributes.push((
                format!("{}{key}", semconv::K8S_POD_ANNOTATION_PREFIX),
                v.clone(),
            ));
        }
    }
    let non_empty = |v: Option<&String>| v.filter(|v| !v.is_empty()).cloned();
    // The top owner names the workload: the Deployment over its ReplicaSet, the CronJob over
    // its Job.
    let service_name = non_empty(annotations.and_then(|a| a.get(SERVICE_NAME_ANNOTATION)))
        .or_else(|| non_empty(labels.and_then(|l| l.get(APP_NAME_LABEL))))
        .or_else(|| owners.last().map(|(_, name)| name.clone()));
    PodInfo {
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        node_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        owners,
        attributes,
        service_name,
    }
}
