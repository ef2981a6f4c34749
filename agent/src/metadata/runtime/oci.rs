//! The OCI runtime bundle's `config.json` (the spec a runtime hands to runc or crun) and what
//! its annotations say: the CRI pod identity (containerd's `io.kubernetes.cri.*`, CRI-O's
//! `io.kubernetes.*`), the image, the managing runtime. Readers for CRI-O's and containerd's
//! bundles; podman's is read by its own module through [`read_annotations`].

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use wirelens_otel::ContainerInfo;

use super::{Lookup, MAX_CONFIG_BYTES, Roots, docker, fill, fill_image, read_json};
use crate::metadata::cgroup::Runtime;

/// containerd's CRI plugin: pod name, namespace and uid, container and image.
const CRI_SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
const CRI_SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
const CRI_SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";
const CRI_CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
const CRI_IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
const CRI_PREFIX: &str = "io.kubernetes.cri.";
/// CRI-O (and cri-dockerd's Docker labels): the kubelet's own keys.
pub(super) const K8S_POD_NAME: &str = "io.kubernetes.pod.name";
pub(super) const K8S_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub(super) const K8S_POD_UID: &str = "io.kubernetes.pod.uid";
pub(super) const K8S_CONTAINER_NAME: &str = "io.kubernetes.container.name";
const CRIO_IMAGE_NAME: &str = "io.kubernetes.cri-o.ImageName";
/// Set by CRI-O only (podman also writes `io.kubernetes.cri-o.Created` and `.TTY`).
const CRIO_CONTAINER_ID: &str = "io.kubernetes.cri-o.ContainerID";
/// podman marks its containers `io.container.manager=libpod`.
const MANAGER: &str = "io.container.manager";
/// nerdctl's container name.
const NERDCTL_NAME: &str = "nerdctl/name";

/// The part of the OCI runtime spec read here.
#[derive(Debug, Default, Deserialize)]
struct Spec {
    #[serde(default)]
    annotations: HashMap<String, String>,
}

/// The annotations of the bundle `config.json` at `path`, if it exists.
pub(super) fn read_annotations(
    path: &Path,
    lookup: &mut Lookup,
) -> Option<HashMap<String, String>> {
    let spec: Option<Spec> = lookup.note(read_json(path, MAX_CONFIG_BYTES));
    spec.map(|s| s.annotations)
}

/// Fills what `annotations` say about the container; returns the runtime they name.
pub(super) fn apply_annotations(
    info: &mut ContainerInfo,
    annotations: &HashMap<String, String>,
) -> Option<Runtime> {
    let get = |key: &str| annotations.get(key).map(String::as_str);
    fill(&mut info.k8s_pod_name, get(CRI_SANDBOX_NAME));
    fill(&mut info.k8s_namespace, get(CRI_SANDBOX_NAMESPACE));
    fill(&mut info.k8s_pod_uid, get(CRI_SANDBOX_UID));
    fill(&mut info.k8s_container_name, get(CRI_CONTAINER_NAME));
    apply_kubernetes_labels(info, annotations);
    fill(&mut info.name, get(NERDCTL_NAME));
    fill_image(info, get(CRI_IMAGE_NAME).or_else(|| get(CRIO_IMAGE_NAME)));
    if get(MANAGER) == Some("libpod") {
        Some(Runtime::Podman)
    } else if annotations.contains_key(CRIO_CONTAINER_ID) {
        Some(Runtime::CriO)
    } else if annotations.keys().any(|k| k.starts_with(CRI_PREFIX)) {
        Some(Runtime::Containerd)
    } else {
        None
    }
}

/// The kubelet's `io.kubernetes.*` keys, as CRI-O annotations or cri-dockerd's Docker labels.
pub(super) fn apply_kubernetes_labels(info: &mut ContainerInfo, labels: &HashMap<String, String>) {
    let get = |key: &str| labels.get(key).map(String::as_str);
    fill(&mut info.k8s_pod_name, get(K8S_POD_NAME));
    fill(&mut info.k8s_namespace, get(K8S_POD_NAMESPACE));
    fill(&mut info.k8s_pod_uid, get(K8S_POD_UID));
    fill(&mut info.k8s_container_name, get(K8S_CONTAINER_NAME));
}

fn apply(lookup: &mut Lookup, annotations: &HashMap<String, String>) {
    if let Some(runtime) = apply_annotations(&mut lookup.info, annotations)
        && lookup.info.runtime.is_empty()
    {
        lookup.info.runtime = runtime.name().to_string();
    }
}

/// CRI-O's bundle, in its run root (or its graph root).
pub(super) fn read_crio(roots: &Roots, lookup: &mut Lookup) -> bool {
    let id = lookup.info.id.clone();
    for store in [roots.storage_run(), roots.storage_graph()] {
        let path = store
            .join("overlay-containers")
            .join(&id)
            .join("userdata/config.json");
        if let Some(annotations) = read_annotations(&path, lookup) {
            apply(lookup, &annotations);
            return true;
        }
    }
    false
}

/// containerd's task bundle, in any namespace (`k8s.io` for the CRI, `moby` for Docker,
/// `default` for ctr and nerdctl).
pub(super) fn read_containerd(roots: &Roots, lookup: &mut Lookup) -> bool {
    let tasks = roots.containerd_tasks();
    let Ok(dir) = std::fs::read_dir(&tasks) else {
        return false;
    };
    let mut namespaces: Vec<String> = dir
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    // The CRI's namespace first: that is where a bare id under kubepods usually lives.
    namespaces.sort_by_key(|ns| (ns != "k8s.io", ns.clone()));
    let id = lookup.info.id.clone();
    for ns in namespaces.iter().take(64) {
        let path = tasks.join(ns).join(&id).join("config.json");
        if let Some(annotations) = read_annotations(&path, lookup) {
            apply(lookup, &annotations);
            if ns == "moby" {
                lookup.info.runtime = Runtime::Docker.name().to_string();
                docker::read(roots, lookup);
            }
            return true;
        }
    }
    false
}
