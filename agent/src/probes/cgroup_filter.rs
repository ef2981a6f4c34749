//! The container selector (`--container`, `--k8s-namespace`, `--k8s-pod-selector`), enforced
//! in the kernel: the cgroup v2 id of each selected container's processes goes into
//! `CGROUP_FILTER`, so every other process (other containers, the host) costs one map lookup
//! per call and no event.
//!
//! A container's cgroup is added when one of its processes is resolved: at start-up for the
//! running ones, at `exec` for new ones (calls a new container makes before the agent has read
//! its exec event are not traced). Children share their parent's cgroup. With a pod label
//! selector, a container whose pod the API has not described yet waits, and every container
//! is judged again when the pod set changes (a pod that appears, is relabelled or goes).

use std::{
    collections::{HashMap, HashSet},
    os::unix::fs::MetadataExt as _,
    path::Path,
};

use aya::maps::{HashMap as BpfHashMap, MapData};
use wirelens_otel::{ContainerInfo, ProcessInfo};

use crate::metadata::kubernetes::{LabelSelector, PodStore};

/// Most containers judged by pod labels that are remembered (as many as the map holds).
const MAX_LABEL_TRACKED: usize = 4096;

/// Which containers to trace: every given part must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// Container names (the runtime's name, or the Kubernetes container name).
    pub names: Vec<String>,
    /// Kubernetes namespaces.
    pub namespaces: Vec<String>,
    /// A label selector on the container's pod.
    pub pods: Option<LabelSelector>,
}

impl Selector {
    /// `None` when nothing is selected (no cgroup filter).
    pub fn new(
        names: &[String],
        namespaces: &[String],
        pods: Option<LabelSelector>,
    ) -> Option<Self> {
        (!names.is_empty() || !namespaces.is_empty() || pods.is_some()).then(|| Self {
            names: names.to_vec(),
            namespaces: namespaces.to_vec(),
            pods,
        })
    }

    /// Whether `container` is selected by name and namespace (the pod labels aside).
    pub fn matches(&self, container: &ContainerInfo) -> bool {
        let name = self.names.is_empty()
            || self
                .names
                .iter()
                .any(|n| *n == container.name || *n == container.k8s_container_name);
        let namespace =
            self.namespaces.is_empty() || self.namespaces.contains(&container.k8s_namespace);
        name && namespace
    }
}

/// The `CGROUP_FILTER` map and what was put in it.
pub struct CgroupFilter {
    map: BpfHashMap<MapData, u64, u8>,
    selector: Selector,
    added: HashSet<u64>,
    /// With a pod selector: each container cgroup judged by its pod's labels -> the pod uid.
    by_labels: HashMap<u64, String>,
    pods: Option<PodStore>,
    /// The pod store's generation when the containers were last judged.
    seen: u64,
}

impl CgroupFilter {
    /// A filter filling `map` with the cgroups of the containers `selector` picks.
    pub fn new(map: BpfHashMap<MapData, u64, u8>, selector: Selector) -> Self {
        Self {
            map,
            selector,
            added: HashSet::new(),
            by_labels: HashMap::new(),
            pods: None,
            seen: 0,
        }
    }

    /// The pods whose labels the pod selector reads.
    pub fn set_pods(&mut self, pods: Option<PodStore>) {
        self.pods = pods;
    }

    /// Adds the cgroup of process `process` if its container is selected.
    pub fn consider(&mut self, process: &ProcessInfo) {
        let Some(container) = &process.container else {
            return;
        };
        if !self.selector.matches(container) {
            return;
        }
        let Some(id) = cgroup_v2_id(process.pid) else {
            tracing::debug!(pid = process.pid, "no cgroup v2 id: not traced");
            return;
        };
        if self.selector.pods.is_some() {
            let uid = process
                .pod
                .as_ref()
                .map(|p| p.uid.clone())
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| container.k8s_pod_uid.clone());
            if uid.is_empty() {
                return;
            }
            if self.by_labels.len() < MAX_LABEL_TRACKED || self.by_labels.contains_key(&id) {
                self.by_labels.insert(id, uid.clone());
            }
            if self.pod_selected(&uid) != Some(true) {
                return;
            }
        }
        self.add(id, container);
    }

    /// Whether the pod `uid` is selected by its labels; `None` while its labels are unknown.
    fn pod_selected(&self, uid: &str) -> Option<bool> {
        let selector = self.selector.pods.as_ref()?;
        let labels = self.pods.as_ref()?.labels(uid)?;
        Some(selector.matches(&labels))
    }

    /// Judges the containers again when the pod set has changed since the last time: adds the
    /// ones whose pod now matches, removes the ones whose pod no longer does (or is gone).
    pub fn refresh(&mut self) {
        let Some(generation) = self.pods.as_ref().map(PodStore::generation) else {
            return;
        };
        if generation == self.seen {
            return;
        }
        self.seen = generation;
        let judged: Vec<(u64, String)> = self
            .by_labels
            .iter()
            .map(|(id, uid)| (*id, uid.clone()))
            .collect();
        for (id, uid) in judged {
            let known = self.pods.as_ref().is_some_and(|p| p.labels(&uid).is_some());
            match self.pod_selected(&uid) {
                Some(true) if !self.added.contains(&id) => {
                    let container = ContainerInfo {
                        k8s_pod_uid: uid,
                        ..ContainerInfo::default()
                    };
                    self.add(id, &container);
                }
                Some(false) => self.remove(id),
                None if self.added.contains(&id) && !known => {
                    // The pod is gone: so is its cgroup.
                    self.remove(id);
                    self.by_labels.remove(&id);
                }
                _ => {}
            }
        }
    }

    fn add(&mut self, id: u64, container: &ContainerInfo) {
        if !self.added.insert(id) {
            return;
        }
        match self.map.insert(id, 1, 0) {
            Ok(()) => tracing::info!(
                container = %container.name,
                id = %container.id,
                pod_uid = %container.k8s_pod_uid,
                cgroup = id,
                "tracing selected container"
            ),
            Err(e) => {
                self.added.remove(&id);
                tracing::warn!(%e, cgroup = id, "cannot add a container's cgroup to the filter");
            }
        }
    }

    fn remove(&mut self, id: u64) {
        if self.added.remove(&id) {
            tracing::info!(cgroup = id, "container no longer selected");
            if let Err(e) = self.map.remove(&id) {
                tracing::debug!(%e, cgroup = id, "cgroup already gone from the filter");
            }
        }
    }
}

/// The id the kernel's `bpf_get_current_cgroup_id` gives for process `pid`: the inode of its
/// cgroup's directory on the v2 hierarchy (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on a
/// hybrid host).
fn cgroup_v2_id(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .find(|r| Path::new(r).join("cgroup.controllers").exists())?;
    let dir = Path::new(root).join(path.trim_start_matches('/'));
    std::fs::metadata(dir).ok().map(|m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, k8s_name: &str, namespace: &str) -> ContainerInfo {
        ContainerInfo {
            name: name.into(),
            k8s_container_name: k8s_name.into(),
            k8s_namespace: namespace.into(),
            ..ContainerInfo::default()
        }
    }

    #[test]
    fn every_given_list_must_match() {
        let s = Selector::new(&["web".into()], &["shop".into()], None).expect("selector");
        assert!(s.matches(&container("x", "web", "shop")));
        assert!(!s.matches(&container("x", "web", "dev")));
        assert!(!s.matches(&container("x", "api", "shop")));
        let by_name = Selector::new(&["db".into()], &[], None).expect("selector");
        assert!(by_name.matches(&container("db", "", "")));
        assert!(!by_name.matches(&container("web", "", "")));
        let by_namespace = Selector::new(&[], &["prod".into()], None).expect("selector");
        assert!(by_namespace.matches(&container("anything", "x", "prod")));
        assert!(!by_namespace.matches(&container("anything", "x", "")));
        assert_eq!(Selector::new(&[], &[], None), None);
    }

    #[test]
    fn own_cgroup_id_is_a_directory_inode() {
        // Any process has a v2 line; its directory exists on this host's v2 hierarchy.
        let id = cgroup_v2_id(std::process::id());
        assert!(id.is_some_and(|i| i > 0), "{id:?}");
    }
}
