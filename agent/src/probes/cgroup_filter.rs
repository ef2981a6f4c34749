//! The container selector (`--container`, `--k8s-namespace`), enforced in the kernel: the
//! cgroup v2 id of each selected container's processes goes into `CGROUP_FILTER`, so every
//! other process (other containers, the host) costs one map lookup per call and no event.
//!
//! A container's cgroup is added when one of its processes is resolved: at start-up for the
//! running ones, at `exec` for new ones (calls a new container makes before the agent has read
//! its exec event are not traced). Children share their parent's cgroup.

use std::{collections::HashSet, os::unix::fs::MetadataExt as _, path::Path};

use aya::maps::{HashMap as BpfHashMap, MapData};
use wirelens_otel::{ContainerInfo, ProcessInfo};

/// Which containers to trace: every non-empty list must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// Container names (the runtime's name, or the Kubernetes container name).
    pub names: Vec<String>,
    /// Kubernetes namespaces.
    pub namespaces: Vec<String>,
}

impl Selector {
    /// `None` when nothing is selected (no cgroup filter).
    pub fn new(names: &[String], namespaces: &[String]) -> Option<Self> {
        (!names.is_empty() || !namespaces.is_empty()).then(|| Self {
            names: names.to_vec(),
            namespaces: namespaces.to_vec(),
        })
    }

    /// Whether `container` is selected.
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
}

impl CgroupFilter {
    /// A filter filling `map` with the cgroups of the containers `selector` picks.
    pub fn new(map: BpfHashMap<MapData, u64, u8>, selector: Selector) -> Self {
        Self {
            map,
            selector,
            added: HashSet::new(),
        }
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
        if !self.added.insert(id) {
            return;
        }
        match self.map.insert(id, 1, 0) {
            Ok(()) => tracing::info!(
                container = %container.name,
                id = %container.id,
                cgroup = id,
                "tracing selected container"
            ),
            Err(e) => {
                self.added.remove(&id);
                tracing::warn!(%e, cgroup = id, "cannot add a container's cgroup to the filter");
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
        let s = Selector::new(&["web".into()], &["shop".into()]).expect("selector");
        assert!(s.matches(&container("x", "web", "shop")));
        assert!(!s.matches(&container("x", "web", "dev")));
        assert!(!s.matches(&container("x", "api", "shop")));
        let by_name = Selector::new(&["db".into()], &[]).expect("selector");
        assert!(by_name.matches(&container("db", "", "")));
        assert!(!by_name.matches(&container("web", "", "")));
        let by_namespace = Selector::new(&[], &["prod".into()]).expect("selector");
        assert!(by_namespace.matches(&container("anything", "x", "prod")));
        assert!(!by_namespace.matches(&container("anything", "x", "")));
        assert_eq!(Selector::new(&[], &[]), None);
    }

    #[test]
    fn own_cgroup_id_is_a_directory_inode() {
        // Any process has a v2 line; its directory exists on this host's v2 hierarchy.
        let id = cgroup_v2_id(std::process::id());
        assert!(id.is_some_and(|i| i > 0), "{id:?}");
    }
}
