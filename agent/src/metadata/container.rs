//! Container identity for the process cache: the cgroup gives the id, the runtime's state on
//! the node gives the rest (name, image, runtime, CRI pod identity), read once per container
//! and shared by all of its processes.
//!
//! Lookups happen where the process cache resolves a process (at exec, fork or first traced
//! call), never per event. A container whose runtime state was not found is looked up again
//! after [`RETRY`]; failures are counted, never fatal.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use wirelens_otel::ContainerInfo;

use super::cgroup::{self, CgroupIdentity};
use super::runtime::{self, Roots};

/// How long a container whose runtime state was not found waits before another lookup.
pub const RETRY: Duration = Duration::from_secs(10);
/// How long an unused container stays cached.
const KEEP_UNUSED: Duration = Duration::from_secs(600);
/// Most containers cached.
const MAX_CONTAINERS: usize = 4096;

struct Entry {
    info: Arc<ContainerInfo>,
    found: bool,
    read_at: Instant,
    used_at: Instant,
}

/// Per-container-id cache of [`ContainerInfo`].
pub struct ContainerCache {
    roots: Roots,
    entries: HashMap<String, Entry>,
    failures: u64,
}

impl ContainerCache {
    /// An empty cache reading the runtimes' state under `roots`.
    pub fn new(roots: Roots) -> Self {
        Self {
            roots,
            entries: HashMap::new(),
            failures: 0,
        }
    }

    /// The container process `pid` runs in, from its `/proc/<pid>/cgroup`; `None` on the host.
    pub fn for_pid(&mut self, pid: u32) -> Option<Arc<ContainerInfo>> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let identity = cgroup::parse(&text)?;
        Some(self.get(&identity))
    }

    /// The container of `identity`, looked up in the runtime's state unless cached.
    pub fn get(&mut self, identity: &CgroupIdentity) -> Arc<ContainerInfo> {
        let now = Instant::now();
        if let Some(e) = self.entries.get_mut(&identity.id)
            && (e.found || now.duration_since(e.read_at) < RETRY)
        {
            e.used_at = now;
            return e.info.clone();
        }
        let lookup = runtime::lookup(&self.roots, identity);
        for error in &lookup.errors {
            tracing::debug!(id = %identity.id, error = %error, source = ?std::error::Error::source(error), "container metadata");
        }
        tracing::debug!(
            id = %identity.id,
            name = %lookup.info.name,
            runtime = %lookup.info.runtime,
            found = lookup.found,
            micros = now.elapsed().as_micros() as u64,
            "container metadata read"
        );
        self.failures += lookup.errors.len() as u64 + u64::from(!lookup.found);
        let info = Arc::new(lookup.info);
        if self.entries.len() >= MAX_CONTAINERS && !self.entries.contains_key(&identity.id) {
            self.entries
                .retain(|_, e| now.duration_since(e.used_at) < KEEP_UNUSED);
        }
        if self.entries.len() < MAX_CONTAINERS || self.entries.contains_key(&identity.id) {
            self.entries.insert(
                identity.id.clone(),
                Entry {
                    info: info.clone(),
                    found: lookup.found,
                    read_at: now,
                    used_at: now,
                },
            );
        }
        info
    }

    /// Lookups that failed so far: runtime files unreadable, too large or not JSON, and
    /// containers no runtime's state knew.
    pub fn failures(&self) -> u64 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::cgroup::Runtime;

    fn identity() -> CgroupIdentity {
        CgroupIdentity {
            id: "c".repeat(64),
            runtime: Some(Runtime::Docker),
            pod_uid: None,
        }
    }

    #[test]
    fn not_found_is_counted_once_and_cached_until_retry() {
        let roots = Roots {
            host: std::env::temp_dir().join("wirelens-no-such-host-root"),
        };
        let mut cache = ContainerCache::new(roots);
        let first = cache.get(&identity());
        assert_eq!(first.id, "c".repeat(64));
        assert_eq!(first.runtime, "docker");
        assert_eq!(cache.failures(), 1);
        let second = cache.get(&identity());
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(cache.failures(), 1);
    }

    #[test]
    fn host_process_has_no_container() {
        // The test runs on the host (or in a cgroup no runtime names).
        let mut cache = ContainerCache::new(Roots::default());
        let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        assert_eq!(
            cache.for_pid(std::process::id()).is_some(),
            cgroup::parse(&text).is_some()
        );
    }
}
