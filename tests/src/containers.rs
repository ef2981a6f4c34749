//! Real containers: Debian's podman (with runc) running a busybox image built here from
//! Debian's busybox-static and imported with `podman import` (no image registry is reachable),
//! on the host network. Every container a helper starts is removed when its handle drops.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::util::{tail, terminate, wait_until};

const PODMAN: &str = "/usr/bin/podman";
const BUSYBOX: &str = "/bin/busybox";

/// The OCI runtime podman runs the containers with. crun 1.8 refuses a hybrid cgroup v1/v2
/// host that has a controller on the v2 hierarchy (as this machine does); runc runs there and
/// on pure v1 or v2 hosts alike.
pub const OCI_RUNTIME: &str = "runc";

/// Runs podman with `args`; panics with its output if it fails. Returns stdout, trimmed.
pub fn podman(args: &[&str]) -> String {
    let out = Command::new(PODMAN)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run podman (scripts/setup.sh --tests): {e}"));
    assert!(
        out.status.success(),
        "podman {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `podman logs` of container `name`: its stdout and stderr.
pub fn logs(name: &str) -> String {
    let out = Command::new(PODMAN)
        .args(["logs", name])
        .output()
        .unwrap_or_else(|e| panic!("cannot run podman logs: {e}"));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A root filesystem assembled in a temporary directory from this host's files, then imported
/// as an image.
pub struct Rootfs {
    dir: tempfile::TempDir,
}

impl Default for Rootfs {
    fn default() -> Self {
        Self::new()
    }
}

impl Rootfs {
    /// An empty tree with `/bin/busybox` (and `/bin/sh`) and `/tmp`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let rootfs = Rootfs { dir };
        std::fs::create_dir_all(rootfs.root().join("tmp")).expect("mkdir tmp");
        assert!(
            Path::new(BUSYBOX).exists(),
            "{BUSYBOX} missing (Debian busybox-static, scripts/setup.sh --tests)"
        );
        rootfs.copy(BUSYBOX);
        std::os::unix::fs::symlink("busybox", rootfs.root().join("bin/sh")).expect("symlink");
        rootfs
    }

    /// The tree's top.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Copies the host's file `path` (symlinks followed) to the same path in the tree.
    pub fn copy(&self, path: &str) {
        let to = self.root().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(path, &to).unwrap_or_else(|e| panic!("copy {path}: {e}"));
    }

    /// Copies the executable `path` and every shared library `ldd` lists for it.
    pub fn binary(&self, path: &str) {
        self.copy(path);
        let out = Command::new("ldd").arg(path).output().expect("ldd");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x…)" or "/lib64/ld-linux… (0x…)"
            let lib = line
                .split("=>")
                .last()
                .and_then(|s| s.split_whitespace().next())
                .filter(|p| p.starts_with('/'));
            if let Some(lib) = lib {
                self.copy(lib);
            }
        }
    }

    /// Writes `contents` at `path` in the tree.
    pub fn write(&self, path: &str, contents: &str) {
        let to = self.root().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::write(&to, contents).unwrap_or_else(|e| panic!("write {path}: {e}"));
    }

    /// Imports the tree as image `reference` (`localhost/name:tag`), replacing an older image of
    /// that name.
    pub fn import(self, reference: &str) {
        let tar = self.dir.path().join("rootfs.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(self.root())
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar");
        assert!(status.success(), "tar failed");
        let tar = tar.to_string_lossy().into_owned();
        // The image of an earlier run would be left untagged (and kept) by a new import.
        let _ = Command::new(PODMAN)
            .args(["rmi", "--force", "--ignore", reference])
            .output();
        podman(&["import", "--quiet", &tar, reference]);
    }
}

/// Image `reference` with busybox and `/www/index.html`.
pub fn busybox_image(reference: &str) {
    let rootfs = Rootfs::new();
    rootfs.write("/www/index.html", "hello from a container\n");
    rootfs.import(reference);
}

/// A container started with `podman run -d`, removed on drop.
pub struct Container {
    /// The name given with `--name`.
    pub name: String,
    /// The full id, as `podman inspect --format {{.Id}}` reports it.
    pub id: String,
    /// The host pid of its first process (`{{.State.Pid}}`).
    pub pid: u32,
}

impl Container {
    /// `podman run -d --name NAME --network host <extra> IMAGE <command>`, waiting until it runs.
    pub fn run(name: &str, extra: &[&str], image: &str, command: &[&str]) -> Self {
        Self::run_on(name, "host", extra, image, command)
    }

    /// Like [`Container::run`] on podman network `network` (`--ip` in `extra` gives it an
    /// address of the network's subnet).
    pub fn run_on(
        name: &str,
        network: &str,
        extra: &[&str],
        image: &str,
        command: &[&str],
    ) -> Self {
        // A container left by an earlier, killed run would hold the name.
        let _ = Command::new(PODMAN)
            .args(["rm", "-f", "-t", "0", name])
            .output();
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "--runtime",
            OCI_RUNTIME,
            // Lower than any host's hard limits: podman's defaults (raising them) are refused
            // in an unprivileged sandbox.
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ];
        args.extend_from_slice(extra);
        args.push(image);
        args.extend_from_slice(command);
        let id = podman(&args);
        let mut container = Container {
            name: name.to_string(),
            id: String::new(),
            pid: 0,
        };
        let pid = wait_until(
            &format!("container {name} running"),
            Duration::from_secs(30),
            || {
                std::thread::sleep(Duration::from_millis(100));
                let state = podman(&[
                    "inspect",
                    "--format",
                    "{{.State.Pid}} {{.State.Status}}",
                    name,
                ]);
                let (pid, status) = state.split_once(' ')?;
                if status == "exited" {
                    panic!(
                        "container {name} exited before it was seen running:\n{}",
                        tail(&logs(name), 30)
                    );
                }
                let pid: u32 = pid.parse().ok()?;
                (pid != 0).then_some(pid)
            },
        );
        container.id = podman(&["inspect", "--format", "{{.Id}}", name]);
        assert_eq!(container.id, id, "podman run printed another id");
        container.pid = pid;
        container
    }

    /// `podman inspect --format <format>` of this container.
    pub fn inspect(&self, format: &str) -> String {
        podman(&["inspect", "--format", format, &self.name])
    }

    /// Waits (30 s at most) until the container's first process has exited.
    pub fn wait_exit(&self) {
        wait_until(
            &format!("container {} to exit", self.name),
            Duration::from_secs(30),
            || {
                std::thread::sleep(Duration::from_millis(100));
                (self.inspect("{{.State.Running}}") == "false").then_some(())
            },
        );
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new(PODMAN)
            .args(["rm", "-f", "-t", "0", &self.name])
            .output();
    }
}

const CTR: &str = "/usr/bin/ctr";
const CONTAINERD: &str = "/usr/bin/containerd";

/// containerd (Debian's) for a test: the host's daemon if one answers, else one started here
/// with its default paths and stopped on drop. Its containers live in `namespace`.
pub struct Containerd {
    daemon: Option<std::process::Child>,
    /// The containerd namespace of the test's images and containers.
    pub namespace: String,
}

impl Containerd {
    /// Connects to (or starts) containerd.
    pub fn start(namespace: &str) -> Self {
        let answers = || {
            Command::new(CTR)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let daemon = if answers() {
            None
        } else {
            let log = std::fs::File::create(std::env::temp_dir().join("wirelens-containerd.log"))
                .expect("containerd log");
            let child = Command::new(CONTAINERD)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start {CONTAINERD} (scripts/setup.sh --tests): {e}")
                });
            Some(child)
        };
        let containerd = Containerd {
            daemon,
            namespace: namespace.to_string(),
        };
        wait_until("containerd to answer", Duration::from_secs(30), || {
            std::thread::sleep(Duration::from_millis(100));
            answers().then_some(())
        });
        containerd
    }

    /// Runs `ctr -n <namespace> <args>`; panics with its output if it fails. Returns stdout.
    pub fn ctr(&self, args: &[&str]) -> String {
        let out = Command::new(CTR)
            .args(["-n", &self.namespace])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run ctr: {e}"));
        assert!(
            out.status.success(),
            "ctr {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Copies podman's image `reference` into containerd (`podman save` as an OCI archive,
    /// `ctr images import`).
    pub fn import_from_podman(&self, reference: &str) {
        let dir = tempfile::tempdir().expect("temp dir");
        let archive = dir.path().join("image.tar");
        let archive = archive.to_string_lossy().into_owned();
        podman(&[
            "save",
            "--quiet",
            "--format",
            "oci-archive",
            "-o",
            &archive,
            reference,
        ]);
        self.ctr(&["images", "import", &archive]);
    }

    /// `ctr run -d --net-host` of `image` as container `id` with OCI `annotations` (key=value);
    /// returns once its task runs.
    pub fn run(&self, id: &str, annotations: &[String], image: &str, command: &[&str]) -> CtrTask {
        // A container left by an earlier, killed run would hold the id.
        CtrTask::remove(&self.namespace, id);
        let mut args = vec!["run", "-d", "--net-host"];
        for a in annotations {
            args.extend(["--annotation", a.as_str()]);
        }
        args.extend([image, id]);
        args.extend_from_slice(command);
        self.ctr(&args);
        let mut task = CtrTask {
            namespace: self.namespace.clone(),
            id: id.to_string(),
            pid: 0,
        };
        task.pid = wait_until(
            &format!("containerd task {id} running"),
            Duration::from_secs(30),
            || {
                std::thread::sleep(Duration::from_millis(100));
                let list = self.ctr(&["tasks", "ls"]);
                list.lines().find_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() == 3 && f[0] == id && f[2] == "RUNNING")
                        .then(|| f[1].parse().ok())
                        .flatten()
                })
            },
        );
        task
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            terminate(&mut child, libc::SIGTERM, Duration::from_secs(10));
        }
    }
}

/// A containerd container and its task, removed on drop.
pub struct CtrTask {
    namespace: String,
    /// The container id (what `ctr tasks ls` lists).
    pub id: String,
    /// The host pid of its first process.
    pub pid: u32,
}

impl CtrTask {
    fn remove(namespace: &str, id: &str) {
        for args in [
            &["tasks", "kill", "-s", "SIGKILL", id][..],
            &["tasks", "delete", "-f", id],
            &["containers", "delete", id],
        ] {
            let _ = Command::new(CTR)
                .args(["-n", namespace])
                .args(args)
                .output();
        }
    }
}

impl Drop for CtrTask {
    fn drop(&mut self) {
        CtrTask::remove(&self.namespace, &self.id);
    }
}

/// A podman bridge network with a subnet of our choosing, removed on drop.
pub struct Network {
    /// Its name.
    pub name: String,
}

impl Network {
    /// `podman network create --subnet SUBNET NAME`, replacing a network of that name left by
    /// an earlier run.
    pub fn create(name: &str, subnet: &str) -> Self {
        let _ = Command::new(PODMAN)
            .args(["network", "rm", "-f", name])
            .output();
        podman(&["network", "create", "--subnet", subnet, name]);
        Network {
            name: name.to_string(),
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = Command::new(PODMAN)
            .args(["network", "rm", "-f", &self.name])
            .output();
    }
}
