//! Process metadata from `/proc`, cached per pid: the Resource each span and metric sits under.
//!
//! Resolved when a process `exec`s (the reader is woken at once for exec events, so short-lived
//! clients like `curl` are read before they exit), inherited from the parent when a process
//! forks (a child runs the parent's image until it execs, so a PostgreSQL backend that serves
//! one short session gets the postmaster's metadata with its own pid), or read on its first
//! traced call; kept for a while after the process exits so its last records still carry it.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use wirelens_otel::{ProcessInfo, redact::redact_command_line};

/// Whether a process's command line is exported (`process.command_line`), and how.
///
/// Off by default: command lines carry passwords (`mysql -pPASSWORD`), credentials in URLs and
/// SQL literals (`psql -c "INSERT ... 'secret'"`), and they would go out in every Resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandLine {
    /// Not read, not exported (the executable's name and path still are).
    #[default]
    Off,
    /// Exported with its secrets replaced by the rules of `wirelens_otel::redact`.
    Redacted,
}

use super::container::ContainerCache;
use super::kubernetes::PodStore;
use super::runtime::Roots;

/// How long an exited process's metadata stays cached.
const KEEP_AFTER_EXIT: Duration = Duration::from_secs(30);
/// Most processes cached; the oldest exited ones go first.
const MAX_PROCESSES: usize = 65536;

struct Entry {
    info: Arc<ProcessInfo>,
    exited: Option<Instant>,
    /// Set for entries copied from a parent at fork: thread creation makes those too, and
    /// threads never report an exit, so they age out.
    inherited: Option<Instant>,
    /// The pod's API metadata was not known yet: the store's generation at the last try.
    waiting_pod: Option<u64>,
    /// `service.name` came from the process's own `OTEL_SERVICE_NAME` (the pod does not
    /// override it).
    service_from_env: bool,
}

/// How long an inherited entry lives (it is re-read from /proc at the next exec).
const KEEP_INHERITED: Duration = Duration::from_secs(600);

/// Per-pid cache of [`ProcessInfo`].
pub struct ProcessCache {
    entries: HashMap<u32, Entry>,
    host_name: String,
    command_line: CommandLine,
    containers: ContainerCache,
    pods: Option<PodStore>,
}

impl Default for ProcessCache {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessCache {
    /// An empty cache for this host; command lines are not read; container runtimes' state
    /// is read under `WIRELENS_HOST_ROOT` (default `/`).
    pub fn new() -> Self {
        Self::with(Roots::from_env(), CommandLine::Off)
    }

    /// An empty cache for this host that reads command lines as `command_line` says.
    pub fn with_command_line(command_line: CommandLine) -> Self {
        Self::with(Roots::from_env(), command_line)
    }

    /// An empty cache reading container state under `roots` and command lines as
    /// `command_line` says.
    pub fn with(roots: Roots, command_line: CommandLine) -> Self {
        Self {
            entries: HashMap::new(),
            host_name: host_name(),
            command_line,
            containers: ContainerCache::new(roots),
            pods: None,
        }
    }

    /// Enrich Resources with what the Kubernetes API says of each container's pod.
    pub fn set_pods(&mut self, pods: PodStore) {
        self.pods = Some(pods);
    }

    /// The Kubernetes metadata store, if the API is watched.
    pub fn pods(&self) -> Option<&PodStore> {
        self.pods.as_ref()
    }

    /// Container metadata lookups that failed so far (see [`ContainerCache::failures`]).
    pub fn container_failures(&self) -> u64 {
        self.containers.failures()
    }

    /// Metadata for `pid`, read from /proc on first use; `comm` is the fallback name.
    pub fn get(&mut self, pid: u32, comm: &[u8; 16]) -> Arc<ProcessInfo> {
        if let Some(e) = self.entries.get_mut(&pid) {
            if let (Some(seen), Some(pods)) = (e.waiting_pod, &self.pods) {
                retry_pod(e, seen, pods);
            }
            return e.info.clone();
        }
        self.resolve(pid, comm)
    }

    /// `pid` called exec: read it again now (replacing what it inherited at fork).
    pub fn on_exec(&mut self, pid: u32, comm: &[u8; 16]) {
        self.entries.remove(&pid);
        self.resolve(pid, comm);
    }

    /// Read every running process now (at start-up): connections that predate the agent
    /// belong to processes that may exit before their records come out, and no exec or fork
    /// event will ever announce them. Returns how many were read.
    pub fn scan_running(&mut self) -> usize {
        let Ok(all) = procfs::process::all_processes() else {
            return 0;
        };
        let mut n = 0;
        for proc in all.flatten() {
            if self.entries.len() >= MAX_PROCESSES {
                break;
            }
            let pid = proc.pid as u32;
            if !self.entries.contains_key(&pid) {
                self.resolve(pid, &[0; 16]);
                n += 1;
            }
        }
        n
    }

    /// `parent` forked `child`: the child runs the parent's image, so it inherits the parent's
    /// metadata (read now from /proc if the parent is not cached yet).
    pub fn on_fork(&mut self, parent: u32, child: u32) {
        if self.entries.contains_key(&child) || self.entries.len() >= MAX_PROCESSES {
            return;
        }
        let parent_info = match self.entries.get(&parent) {
            Some(e) => e.info.clone(),
            None => self.resolve(parent, &[0; 16]),
        };
        if parent_info.executable_name.is_empty() {
            return;
        }
        let (waiting_pod, service_from_env) = self
            .entries
            .get(&parent)
            .map(|e| (e.waiting_pod, e.service_from_env))
            .unwrap_or_default();
        let mut info = (*parent_info).clone();
        info.pid = child;
        self.entries.insert(
            child,
            Entry {
                info: Arc::new(info),
                exited: None,
                inherited: Some(Instant::now()),
                waiting_pod,
                service_from_env,
            },
        );
    }

    /// Processes cached now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no process is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every cached process.
    pub fn all(&self) -> Vec<Arc<ProcessInfo>> {
        self.entries.values().map(|e| e.info.clone()).collect()
    }

    /// `pid` exited: keep its metadata a little longer.
    pub fn on_exit(&mut self, pid: u32) {
        if let Some(e) = self.entries.get_mut(&pid) {
            e.exited = Some(Instant::now());
        }
    }

    /// Drop exited processes past their grace time.
    pub fn expire(&mut self, now: Instant) {
        self.entries.retain(|_, e| {
            e.exited
                .is_none_or(|t| now.duration_since(t) < KEEP_AFTER_EXIT)
                && e.inherited
                    .is_none_or(|t| now.duration_since(t) < KEEP_INHERITED)
        });
    }

    fn resolve(&mut self, pid: u32, comm: &[u8; 16]) -> Arc<ProcessInfo> {
        let (mut info, service_from_env) = read_process(
            pid,
            comm,
            &self.host_name,
            self.command_line,
            &mut self.containers,
        );
        let waiting_pod = self.pods.as_ref().and_then(|pods| {
            let generation = pods.generation();
            match attach_pod(&mut info, service_from_env, pods)? {
                true => None,
                false => {
                    pods.count_miss();
                    Some(generation)
                }
            }
        });
        let info = Arc::new(info);
        if info.executable_name.is_empty() {
            // Gone before we looked, and no name from the kernel: nothing worth caching.
            return info;
        }
        if self.entries.len() >= MAX_PROCESSES {
            self.expire(Instant::now() + KEEP_AFTER_EXIT);
        }
        if self.entries.len() < MAX_PROCESSES {
            self.entries.insert(
                pid,
                Entry {
                    info: info.clone(),
                    exited: None,
                    inherited: None,
                    waiting_pod,
                    service_from_env,
                },
            );
        }
        info
    }
}

/// Look the pod of `info`'s container up in `pods`: `None` when the process is in no pod,
/// else whether the pod was known (its metadata is then in `info`). The pod's service name
/// replaces the container-name fallback, never the process's own `OTEL_SERVICE_NAME`.
fn attach_pod(info: &mut ProcessInfo, service_from_env: bool, pods: &PodStore) -> Option<bool> {
    let uid = info
        .container
        .as_ref()
        .map(|c| c.k8s_pod_uid.as_str())
        .filter(|u| !u.is_empty())?;
    let Some(pod) = pods.get(uid) else {
        return Some(false);
    };
    if !service_from_env && let Some(name) = &pod.service_name {
        info.service_name = name.clone();
    }
    info.pod = Some(pod);
    Some(true)
}

/// A process whose pod was unknown: look again if the store changed since `seen`.
fn retry_pod(entry: &mut Entry, seen: u64, pods: &PodStore) {
    let generation = pods.generation();
    if generation == seen {
        return;
    }
    let mut info = (*entry.info).clone();
    if attach_pod(&mut info, entry.service_from_env, pods) == Some(true) {
        entry.info = Arc::new(info);
        entry.waiting_pod = None;
    } else {
        entry.waiting_pod = Some(generation);
    }
}

/// The kernel `comm` as a string.
pub fn comm_str(comm: &[u8; 16]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

fn read_process(
    pid: u32,
    comm: &[u8; 16],
    host_name: &str,
    command_line: CommandLine,
    containers: &mut ContainerCache,
) -> (ProcessInfo, bool) {
    let comm = comm_str(comm);
    let proc = procfs::process::Process::new(pid as i32).ok();
    let exe = proc.as_ref().and_then(|p| p.exe().ok());
    let executable_name = exe
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| comm.clone());
    let command_line = match command_line {
        CommandLine::Off => String::new(),
        CommandLine::Redacted => proc
            .as_ref()
            .and_then(|p| p.cmdline().ok())
            .map(|args| redact_command_line(&args))
            .unwrap_or_default(),
    };
    let service_from_env = proc
        .as_ref()
        .and_then(|p| p.environ().ok())
        .and_then(|env| {
            env.get(std::ffi::OsStr::new("OTEL_SERVICE_NAME"))
                .map(|v| v.to_string_lossy().into_owned())
                .filter(|v| !v.is_empty())
        });
    let container = containers.for_pid(pid);
    // The Kubernetes container name, else OpenTelemetry's default when nothing names the
    // service.
    let fallback = || {
        if let Some(c) = container
            .as_ref()
            .filter(|c| !c.k8s_container_name.is_empty())
        {
            c.k8s_container_name.clone()
        } else if executable_name.is_empty() {
            "unknown_service".to_string()
        } else {
            executable_name.clone()
        }
    };
    let from_env = service_from_env.is_some();
    let info = ProcessInfo {
        pid,
        service_name: service_from_env.unwrap_or_else(fallback),
        executable_name,
        executable_path: exe.map(|p| p.to_string_lossy().into_owned()),
        command_line,
        host_name: host_name.to_string(),
        container,
        pod: None,
    };
    (info, from_env)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let mut cache = ProcessCache::new();
        let me = cache.get(std::process::id(), b"fallback\0\0\0\0\0\0\0\0");
        assert_eq!(me.pid, std::process::id());
        assert!(
            me.command_line.is_empty(),
            "command lines are off by default"
        );
        assert_ne!(me.executable_name, "fallback");
        assert!(me.executable_path.is_some());
    }

    #[test]
    fn command_line_only_when_asked_and_redacted() {
        // `sh -c` with two commands stays `sh` (it does not exec the last one).
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30; true", "sh", "--password=hunter2"])
            .spawn()
            .expect("start sh");
        let pid = child.id();
        let mut cache = ProcessCache::with_command_line(CommandLine::Redacted);
        // `spawn` returns once the exec began, maybe before the kernel set up the arguments.
        for _ in 0..100 {
            if std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let info = cache.get(pid, &[0; 16]);
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            info.command_line.ends_with("sh --password=REDACTED"),
            "{}",
            info.command_line
        );
        assert!(!info.command_line.contains("hunter2"));
        let mut off = ProcessCache::new();
        assert!(
            off.get(std::process::id(), &[0; 16])
                .command_line
                .is_empty()
        );
    }

    #[test]
    fn scan_reads_running_processes() {
        let mut cache = ProcessCache::new();
        assert!(cache.scan_running() > 0);
        assert!(cache.entries.contains_key(&std::process::id()));
    }

    #[test]
    fn forked_child_inherits_the_parent() {
        let mut cache = ProcessCache::new();
        let me = std::process::id();
        cache.on_fork(me, u32::MAX - 2);
        let child = cache.get(u32::MAX - 2, &[0; 16]);
        let parent = cache.get(me, &[0; 16]);
        assert_eq!(child.pid, u32::MAX - 2);
        assert_eq!(child.executable_name, parent.executable_name);
        assert_eq!(child.executable_path, parent.executable_path);
    }

    #[test]
    fn unnamed_gone_process_is_an_unknown_service() {
        let mut cache = ProcessCache::new();
        let info = cache.get(u32::MAX - 3, &[0; 16]);
        assert_eq!(info.service_name, "unknown_service");
    }

    #[test]
    fn pod_unknown_at_first_is_attached_once_the_store_changes() {
        let pods = PodStore::default();
        let info = ProcessInfo {
            pid: 5,
            service_name: "web".into(),
            container: Some(Arc::new(wirelens_otel::ContainerInfo {
                k8s_pod_uid: "u1".into(),
                k8s_container_name: "web".into(),
                ..Default::default()
            })),
            ..ProcessInfo::default()
        };
        let mut missing = info.clone();
        assert_eq!(attach_pod(&mut missing, false, &pods), Some(false));
        let mut entry = Entry {
            info: Arc::new(missing),
            exited: None,
            inherited: None,
            waiting_pod: Some(pods.generation()),
            service_from_env: false,
        };
        let seen = pods.generation();
        retry_pod(&mut entry, seen, &pods);
        assert!(
            entry.info.pod.is_none(),
            "nothing changed, nothing attached"
        );
        pods.apply(wirelens_otel::PodInfo {
            uid: "u1".into(),
            node_name: "n1".into(),
            service_name: Some("shop-web".into()),
            ..Default::default()
        });
        retry_pod(&mut entry, seen, &pods);
        assert_eq!(entry.waiting_pod, None);
        assert_eq!(entry.info.service_name, "shop-web");
        assert_eq!(
            entry.info.pod.as_ref().map(|p| p.node_name.as_str()),
            Some("n1")
        );
        // The process's own OTEL_SERVICE_NAME wins over the pod's.
        let mut own = info.clone();
        own.service_name = "from-env".into();
        assert_eq!(attach_pod(&mut own, true, &pods), Some(true));
        assert_eq!(own.service_name, "from-env");
        // A process in no pod is not a miss.
        let mut host = ProcessInfo::default();
        assert_eq!(attach_pod(&mut host, false, &pods), None);
    }

    #[test]
    fn gone_process_falls_back_to_comm() {
        let mut cache = ProcessCache::new();
        let info = cache.get(u32::MAX - 1, b"ghost\0\0\0\0\0\0\0\0\0\0\0");
        assert_eq!(info.executable_name, "ghost");
        assert_eq!(info.service_name, "ghost");
    }
}
