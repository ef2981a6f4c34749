//! Container identity from a process's cgroup paths (`/proc/<pid>/cgroup`): the container id,
//! the runtime the path names and the Kubernetes pod uid, for every runtime and cgroup driver.
//!
//! Pure: text in, identity out. Shapes handled (v2 `0::` line first, then the v1 lines):
//!
//! | runtime | systemd driver | cgroupfs driver |
//! |---|---|---|
//! | Docker | `/system.slice/docker-<id>.scope` | `/docker/<id>` |
//! | podman | `/machine.slice/libpod-<id>.scope[/container]` | `/libpod_parent/libpod-<id>` |
//! | containerd (CRI) | `/kubepods.slice/…-pod<uid_>.slice/cri-containerd-<id>.scope` | `/kubepods/<qos>/pod<uid>/<id>` |
//! | CRI-O | `/kubepods.slice/…-pod<uid_>.slice/crio-<id>.scope` | `/kubepods/<qos>/pod<uid>/crio-<id>` |
//! | nerdctl | `/system.slice/nerdctl-<id>.scope` | `/<namespace>/<id>` |
//!
//! The runtimes' monitors (`libpod-conmon-<id>`, `crio-conmon-<id>`) are not in the container
//! and get no identity. Nested containers (Docker in Docker) get the innermost id.

/// A container runtime, as named in `container.runtime.name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// Docker (dockerd, through containerd's `moby` namespace).
    Docker,
    /// containerd, through its CRI plugin or a client such as nerdctl.
    Containerd,
    /// CRI-O.
    CriO,
    /// podman (libpod).
    Podman,
}

impl Runtime {
    /// The `container.runtime.name` value.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Podman => "podman",
        }
    }
}

/// What a cgroup path tells about the container a process runs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupIdentity {
    /// The full container id, 64 lowercase hex digits.
    pub id: String,
    /// The runtime, when the path names it (a bare id under `kubepods` does not).
    pub runtime: Option<Runtime>,
    /// The Kubernetes pod uid, for containers under `kubepods`.
    pub pod_uid: Option<String>,
}

/// The identity in the text of `/proc/<pid>/cgroup`, or `None` outside a container.
pub fn parse(cgroup_file: &str) -> Option<CgroupIdentity> {
    let paths = cgroup_file.lines().filter_map(|line| {
        let mut fields = line.splitn(3, ':');
        let hierarchy = fields.next()?;
        let _controllers = fields.next()?;
        Some((hierarchy == "0", fields.next()?))
    });
    // The unified hierarchy first: on a hybrid host the v1 lines may disagree with it.
    let (unified, v1): (Vec<_>, Vec<_>) = paths.partition(|(unified, _)| *unified);
    unified
        .into_iter()
        .chain(v1)
        .find_map(|(_, path)| parse_path(path))
}

/// The identity in one cgroup path.
pub fn parse_path(path: &str) -> Option<CgroupIdentity> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate().rev() {
        let unit = part
            .strip_suffix(".scope")
            .or_else(|| part.strip_suffix(".slice"))
            .unwrap_or(part);
        if unit.starts_with("libpod-conmon-") || unit.starts_with("crio-conmon-") {
            return None;
        }
        let (runtime, id) = if let Some(id) = unit.strip_prefix("docker-") {
            (Some(Runtime::Docker), id)
        } else if let Some(id) = unit.strip_prefix("cri-containerd-") {
            (Some(Runtime::Containerd), id)
        } else if let Some(id) = unit.strip_prefix("crio-") {
            (Some(Runtime::CriO), id)
        } else if let Some(id) = unit.strip_prefix("libpod-") {
            (Some(Runtime::Podman), id)
        } else if let Some(id) = unit.strip_prefix("nerdctl-") {
            (Some(Runtime::Containerd), id)
        } else {
            let parent = i.checked_sub(1).and_then(|p| parts.get(p)).copied();
            let runtime = match parent {
                Some("docker") => Some(Runtime::Docker),
                _ => None,
            };
            (runtime, unit)
        };
        if is_container_id(id) {
            return Some(CgroupIdentity {
                id: id.to_ascii_lowercase(),
                runtime,
                pod_uid: parts[..i].iter().rev().find_map(|p| pod_uid(p)),
            });
        }
    }
    None
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The pod uid in `pod<uid>` (cgroupfs) or `kubepods-<qos>-pod<uid_with_underscores>.slice`
/// (systemd, which turns the uid's dashes into underscores).
fn pod_uid(part: &str) -> Option<String> {
    let unit = part.strip_suffix(".slice").unwrap_or(part);
    let at = if unit.starts_with("pod") {
        0
    } else {
        unit.rfind("-pod")? + 1
    };
    let uid = unit.get(at + 3..)?.replace('_', "-");
    // A uuid (36 characters), or a static pod's 32-hex-digit hash.
    let shape = uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    (shape && (uid.len() == 36 || uid.len() == 32)).then_some(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UID: &str = "6a3c5b8e-1f2d-4c7a-9b0e-3d4f5a6b7c8d";
    const UID_: &str = "6a3c5b8e_1f2d_4c7a_9b0e_3d4f5a6b7c8d";

    fn check(file: &str, runtime: Option<Runtime>, pod_uid: Option<&str>) {
        let got = parse(file).unwrap_or_else(|| panic!("no identity in {file:?}"));
        assert_eq!(got.id, ID, "{file}");
        assert_eq!(got.runtime, runtime, "{file}");
        assert_eq!(got.pod_uid.as_deref(), pod_uid, "{file}");
    }

    #[test]
    fn docker_both_drivers() {
        check(
            &format!("0::/system.slice/docker-{ID}.scope\n"),
            Some(Runtime::Docker),
            None,
        );
        check(
            &format!("12:memory:/docker/{ID}\n11:cpu,cpuacct:/docker/{ID}\n0::/\n"),
            Some(Runtime::Docker),
            None,
        );
        // Rootless Docker.
        check(
            &format!("0::/user.slice/user-1000.slice/user@1000.service/docker-{ID}.scope"),
            Some(Runtime::Docker),
            None,
        );
    }

    #[test]
    fn podman_both_drivers_and_crun_sub_cgroup() {
        check(
            &format!("0::/machine.slice/libpod-{ID}.scope/container\n"),
            Some(Runtime::Podman),
            None,
        );
        check(
            &format!("0::/machine.slice/machine-libpod_pod_{ID}.slice/libpod-{ID}.scope"),
            Some(Runtime::Podman),
            None,
        );
        // cgroup v1 hybrid with the cgroupfs manager, as on this test machine.
        check(
            &format!(
                "9:name=systemd:/libpod_parent/libpod-{ID}\n4:memory:/libpod_parent/libpod-{ID}\n0::/libpod_parent/libpod-{ID}\n"
            ),
            Some(Runtime::Podman),
            None,
        );
        // Rootless.
        check(
            &format!(
                "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"
            ),
            Some(Runtime::Podman),
            None,
        );
    }

    #[test]
    fn kubernetes_containerd_and_crio() {
        check(
            &format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope\n"
            ),
            Some(Runtime::Containerd),
            Some(UID),
        );
        check(
            &format!("0::/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope"),
            Some(Runtime::Containerd),
            Some(UID),
        );
        check(
            &format!("0::/kubepods/besteffort/pod{UID}/{ID}\n"),
            None,
            Some(UID),
        );
        check(
            &format!("5:memory:/kubepods/pod{UID}/{ID}\n0::/\n"),
            None,
            Some(UID),
        );
        check(
            &format!(
                "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-{ID}.scope"
            ),
            Some(Runtime::CriO),
            Some(UID),
        );
        check(
            &format!("0::/kubepods/burstable/pod{UID}/crio-{ID}"),
            Some(Runtime::CriO),
            Some(UID),
        );
        // kind and other nested set-ups put kubepods below a kubelet slice.
        check(
            &format!(
                "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope"
            ),
            Some(Runtime::Containerd),
            Some(UID),
        );
        // A static pod's uid is a hash.
        let hash = "d41d8cd98f00b204e9800998ecf8427e";
        check(
            &format!("0::/kubepods/burstable/pod{hash}/{ID}"),
            None,
            Some(hash),
        );
    }

    #[test]
    fn nerdctl_and_plain_containerd() {
        check(
            &format!("0::/system.slice/nerdctl-{ID}.scope"),
            Some(Runtime::Containerd),
            None,
        );
        check(&format!("0::/default/{ID}"), None, None);
    }

    #[test]
    fn innermost_of_nested_containers() {
        let outer = "f".repeat(64);
        check(
            &format!("0::/docker/{outer}/docker/{ID}"),
            Some(Runtime::Docker),
            None,
        );
    }

    #[test]
    fn uppercase_id_is_lowered() {
        let got = parse_path(&format!("/docker/{}", ID.to_uppercase()));
        assert_eq!(got.map(|g| g.id).as_deref(), Some(ID));
    }

    #[test]
    fn not_in_a_container() {
        for file in [
            "0::/user.slice/user-0.slice/session-1.scope\n",
            "0::/\n",
            "0::/init.scope",
            "4:memory:/process_api/23fe59822d3fcaac0a0a5e6845563aa4\n0::/\n",
            "0::/system.slice/docker.service",
            "0::/kubepods/burstable/pod6a3c5b8e-1f2d-4c7a-9b0e-3d4f5a6b7c8d",
            "",
            "garbage without colons",
            // Too short, not hex.
            "0::/docker/0123456789ab",
            "0::/docker/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
        ] {
            assert_eq!(parse(file), None, "{file:?}");
        }
    }

    #[test]
    fn runtime_monitors_are_not_containers() {
        assert_eq!(
            parse(&format!("0::/machine.slice/libpod-conmon-{ID}.scope")),
            None
        );
        assert_eq!(
            parse(&format!(
                "0::/kubepods.slice/kubepods-pod{UID_}.slice/crio-conmon-{ID}.scope"
            )),
            None
        );
    }

    #[test]
    fn unified_line_wins_on_a_hybrid_host() {
        let other = "e".repeat(64);
        let got = parse(&format!(
            "4:memory:/docker/{other}\n0::/system.slice/docker-{ID}.scope\n"
        ));
        assert_eq!(got.map(|g| g.id).as_deref(), Some(ID));
    }
}
