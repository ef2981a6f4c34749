//! The pods of this node as the watcher last saw them, shared between the watcher thread
//! (which writes) and the process cache on the reader thread (which reads at Resource build
//! time, never per event), with the counters of what the API failed to give.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use wirelens_otel::PodInfo;

/// A pod's labels, for `--k8s-pod-selector`.
pub type Labels = Arc<BTreeMap<String, String>>;

#[derive(Default)]
struct Shared {
    pods: RwLock<HashMap<String, Arc<PodInfo>>>,
    /// Every label of each pod (the Resource carries only the chosen ones).
    labels: RwLock<HashMap<String, Labels>>,
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
        self.apply_labeled(pod, BTreeMap::new());
    }

    /// Add or replace one pod, with all its labels.
    pub fn apply_labeled(&self, pod: PodInfo, labels: BTreeMap<String, String>) {
        let uid = pod.uid.clone();
        {
            let mut pods = self.shared.pods.write().unwrap_or_else(|e| e.into_inner());
            pods.insert(uid.clone(), Arc::new(pod));
        }
        let mut all = self
            .shared
            .labels
            .write()
            .unwrap_or_else(|e| e.into_inner());
        all.insert(uid, Arc::new(labels));
        drop(all);
        self.bump();
    }

    /// Forget one pod.
    pub fn delete(&self, uid: &str) {
        {
            let mut pods = self.shared.pods.write().unwrap_or_else(|e| e.into_inner());
            pods.remove(uid);
        }
        let mut all = self
            .shared
            .labels
            .write()
            .unwrap_or_else(|e| e.into_inner());
        all.remove(uid);
        drop(all);
        self.bump();
    }

    /// Replace every pod (after a full list).
    pub fn replace(&self, all: Vec<PodInfo>) {
        self.replace_labeled(all.into_iter().map(|p| (p, BTreeMap::new())).collect());
    }

    /// Replace every pod (after a full list), with their labels.
    pub fn replace_labeled(&self, all: Vec<(PodInfo, BTreeMap<String, String>)>) {
        let mut pods = HashMap::with_capacity(all.len());
        let mut labels = HashMap::with_capacity(all.len());
        for (pod, l) in all {
            labels.insert(pod.uid.clone(), Arc::new(l));
            pods.insert(pod.uid.clone(), Arc::new(pod));
        }
        *self.shared.pods.write().unwrap_or_else(|e| e.into_inner()) = pods;
        *self
            .shared
            .labels
            .write()
            .unwrap_or_else(|e| e.into_inner()) = labels;
        self.bump();
    }

    /// Every label of the pod with `uid`, if the watcher has seen it.
    pub fn labels(&self, uid: &str) -> Option<Labels> {
        let labels = self.shared.labels.read().unwrap_or_else(|e| e.into_inner());
        labels.get(uid).cloned()
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
