//! Which processes get resource metrics: those the agent's filters select, tested in user
//! space as the kernel tests them for tracing (`--pid`, `--comm`, `--container`,
//! `--k8s-namespace`), plus `--port` read as "owns a socket with that local or remote port".
//!
//! With no filter every user-space process the agent can see is selected (its pid namespace's,
//! when it runs in one of its own); kernel threads and the agent itself never are.

use std::{
    collections::{HashMap, HashSet},
    os::unix::fs::MetadataExt as _,
};

use wirelens_otel::ProcessInfo;

use crate::probes::cgroup_filter::Selector;

/// The filters, as the resource metrics source applies them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// `--pid`: only these pids (empty: any).
    pub pids: Vec<u32>,
    /// `--comm`: only processes whose main thread's command name is one of these (empty: any).
    pub comms: Vec<String>,
    /// `--container`, `--k8s-namespace`: only processes in a container they select.
    pub containers: Option<Selector>,
    /// `--port`: only processes owning a TCP or UDP socket with one of these local or remote
    /// ports (empty: any).
    pub ports: Vec<u16>,
}

impl Selection {
    /// Whether the pid and command-name filters pass `pid` running as `comm`.
    pub fn passes_process(&self, pid: u32, comm: &str) -> bool {
        (self.pids.is_empty() || self.pids.contains(&pid))
            && (self.comms.is_empty() || self.comms.iter().any(|c| c == comm))
    }

    /// Whether the container selector passes `process`.
    pub fn passes_container(&self, process: &ProcessInfo) -> bool {
        match &self.containers {
            None => true,
            Some(selector) => process
                .container
                .as_ref()
                .is_some_and(|c| selector.matches(c)),
        }
    }
}

/// The socket inodes with a selected port, per network namespace, for one scan.
#[derive(Default)]
pub struct PortSockets {
    /// Network namespace inode → socket inodes.
    by_netns: HashMap<u64, HashSet<u64>>,
}

impl PortSockets {
    /// Whether `process` has a socket open whose local or remote port is in `ports`.
    pub fn owns_socket(&mut self, process: &procfs::process::Process, ports: &[u16]) -> bool {
        let Ok(netns) = std::fs::metadata(format!("/proc/{}/ns/net", process.pid)) else {
            return false;
        };
        let inodes = self
            .by_netns
            .entry(netns.ino())
            .or_insert_with(|| port_sockets(process, ports));
        if inodes.is_empty() {
            return false;
        }
        let Ok(fds) = process.fd() else {
            return false;
        };
        fds.flatten().any(|fd| match fd.target {
            procfs::process::FDTarget::Socket(inode) => inodes.contains(&inode),
            _ => false,
        })
    }
}

/// Inodes of the sockets of `process`'s network namespace with a port in `ports`.
fn port_sockets(process: &procfs::process::Process, ports: &[u16]) -> HashSet<u64> {
    let wanted = |local: std::net::SocketAddr, remote: std::net::SocketAddr| {
        ports.contains(&local.port()) || (remote.port() != 0 && ports.contains(&remote.port()))
    };
    let mut inodes = HashSet::new();
    for table in [process.tcp(), process.tcp6()].into_iter().flatten() {
        inodes.extend(
            table
                .iter()
                .filter(|e| wanted(e.local_address, e.remote_address))
                .map(|e| e.inode),
        );
    }
    for table in [process.udp(), process.udp6()].into_iter().flatten() {
        inodes.extend(
            table
                .iter()
                .filter(|e| wanted(e.local_address, e.remote_address))
                .map(|e| e.inode),
        );
    }
    inodes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn no_filter_passes_everything() {
        let all = Selection::default();
        assert!(all.passes_process(1, "init"));
        assert!(all.passes_container(&ProcessInfo::default()));
    }

    #[test]
    fn pid_and_comm_filters_both_apply() {
        let s = Selection {
            pids: vec![10, 11],
            comms: vec!["nginx".into()],
            ..Selection::default()
        };
        assert!(s.passes_process(10, "nginx"));
        assert!(!s.passes_process(12, "nginx"));
        assert!(!s.passes_process(11, "curl"));
    }

    #[test]
    fn container_selector_leaves_host_processes_out() {
        let s = Selection {
            containers: Selector::new(&["web".into()], &[], None),
            ..Selection::default()
        };
        assert!(!s.passes_container(&ProcessInfo::default()));
        let web = ProcessInfo {
            container: Some(Arc::new(wirelens_otel::ContainerInfo {
                name: "web".into(),
                ..Default::default()
            })),
            ..ProcessInfo::default()
        };
        assert!(s.passes_container(&web));
    }

    #[test]
    fn a_listening_socket_is_found_by_its_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let me = procfs::process::Process::myself().expect("own /proc entry");
        assert!(PortSockets::default().owns_socket(&me, &[port]));
        assert!(!PortSockets::default().owns_socket(&me, &[1]));
    }
}
