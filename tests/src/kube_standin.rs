//! The stand-in Kubernetes API server (`tests/kubernetes/standin_api.py`) and the CRI
//! annotations that make a podman container look like a pod's container to the agent.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{python, wait_until, workspace_root};

/// The stand-in API server; killed on drop.
pub struct StandIn {
    child: Child,
    log: std::path::PathBuf,
}

impl StandIn {
    /// Starts it on `port`, serving `agent/testdata/kubernetes/`; waits until it listens.
    pub fn start(port: u16) -> Self {
        let root = workspace_root();
        let log = std::env::temp_dir().join(format!("wirelens-kube-standin-{port}.log"));
        let _ = std::fs::remove_file(&log);
        let child = Command::new(python())
            .arg(root.join("tests/kubernetes/standin_api.py"))
            .arg(port.to_string())
            .arg(root.join("agent/testdata/kubernetes"))
            .arg(&log)
            .stdout(Stdio::null())
            .spawn()
            .expect("start the stand-in API server");
        wait_until(
            "the stand-in API to listen",
            Duration::from_secs(10),
            || {
                std::thread::sleep(Duration::from_millis(50));
                std::net::TcpStream::connect(("127.0.0.1", port)).ok()
            },
        );
        StandIn { child, log }
    }

    /// Every request so far, `path?query`.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Stops it (the API goes down).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `--annotation` arguments giving a podman container the annotations containerd's CRI plugin
/// writes for a pod's container (image `image`).
pub fn cri_annotations(
    pod: &str,
    namespace: &str,
    uid: &str,
    container: &str,
    image: &str,
) -> Vec<String> {
    [
        "io.kubernetes.cri.container-type=container".to_string(),
        format!("io.kubernetes.cri.container-name={container}"),
        format!("io.kubernetes.cri.sandbox-id={}", "6b".repeat(32)),
        format!("io.kubernetes.cri.sandbox-name={pod}"),
        format!("io.kubernetes.cri.sandbox-namespace={namespace}"),
        format!("io.kubernetes.cri.sandbox-uid={uid}"),
        format!("io.kubernetes.cri.image-name={image}"),
    ]
    .into_iter()
    .flat_map(|a| ["--annotation".to_string(), a])
    .collect()
}
