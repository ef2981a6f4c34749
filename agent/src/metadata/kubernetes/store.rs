//! The pods of this node as the watcher last saw them, shared between the watcher thread
//! (which writes) and the process cache on the reader thread (which reads at Resource build
//! time, never per event), with the counters of what the API failed to give.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use wirelens_otel::PodInfo;

#[derive(Default)]
struct Shared {
    pods: RwLock<HashMap<String, Arc<PodInfo>>>,
    /// Bumped at every change, so a process still waiting for its pod knows when to look again.
    generation: AtomicU64,
    api_failures: AtomicU64,
    misses: AtomicU64,
}

/// Pod uid -> [`PodInfo`] for the pods of this node; cheap to clone.
#[derive(Clone, Default)]
pub struct PodStore {
    shared: Arc<Shared>,
}

impl PodStore {
    /// The pod with `uid`, if the watcher has seen it.
    pub fn get(&self, uid: &str) -> Option<Arc<PodInfo>> {
        let pods = self.shared.pods.read().unwrap_or_else(|e| e.into_inner());
        pods.get(uid).cloned()
    }

    /// Add or replace one pod.
    pub fn apply(&self, pod: PodInfo) {
        let mut pods = self.shared.pods.write().unwrap_or_else(|e| e.into_inner());
        pods.insert(pod.uid.clone(), Arc::new(pod));
        self.bump();
    }

    /// Forget one pod.
    pub fn delete(&self, uid: &str) {
        let mut pods = self.shared.pods.write().unwrap_or_else(|e| e.into_inner());
        pods.remove(uid);
        self.bump();
    }

    /// Replace every pod (after a full list).
    pub fn replace(&self, all: Vec<PodInfo>) {
        let map = all
            .into_iter()
            .map(|p| (p.uid.clone(), Arc::new(p)))
            .collect();
        *self.shared.pods.write().unwrap_or_else(|e| e.into_inner()) = map;
        self.bump();
    }

    /// How many pods are known.
    pub fn len(&self) -> usize {
        self.shared
            .pods
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Whether no pod is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Changes so far.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.shared.generation.fetch_add(1, Ordering::Release);
    }

    /// Count a failed API call (list, watch, get of an owner).
    pub fn count_api_failure(&self) {
        self.shared.api_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a process whose pod was not known when its Resource was built.
    pub fn count_miss(&self) {
        self.shared.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// Failed API calls so far (`wirelens.k8s.api_failures`).
    pub fn api_failures(&self) -> u64 {
        self.shared.api_failures.load(Ordering::Relaxed)
    }

    /// Processes whose pod was unknown at lookup so far (`wirelens.k8s.metadata_misses`).
    pub fn misses(&self) -> u64 {
        self.shared.misses.load(Ordering::Relaxed)
    }
}
