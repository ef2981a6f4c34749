//! The runtime readers on state trees laid out as each runtime lays them out on a node
//! (podman's from podman 4.3 on this machine; containerd's, CRI-O's and Docker's in the shapes
//! those runtimes write), under a temporary host root.

use std::path::{Path, PathBuf};

use super::*;
use crate::metadata::cgroup::CgroupIdentity;

const ID: &str = "1b25fe364ac12697d4d40d5fd024feac7ef0c335b0d0d4097f3f9a1db1b027c3";
const UID: &str = "6a3c5b8e-1f2d-4c7a-9b0e-3d4f5a6b7c8d";

/// A temporary host root, removed on drop.
struct Host(PathBuf);

impl Host {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("wirelens-runtime-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Host(dir)
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.0.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    fn roots(&self) -> Roots {
        Roots {
            host: self.0.clone(),
        }
    }

    fn lookup(&self, runtime: Option<Runtime>, pod_uid: Option<&str>) -> Lookup {
        let identity = CgroupIdentity {
            id: ID.into(),
            runtime,
            pod_uid: pod_uid.map(str::to_string),
        };
        lookup(&self.roots(), &identity)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn bundle(annotations: &str) -> String {
    format!(
        r#"{{"ociVersion":"1.0.2-dev","process":{{"args":["/bin/busybox","httpd"],"env":["container=podman"]}},"root":{{"path":"/x"}},"hostname":"vm","annotations":{annotations},"linux":{{}}}}"#
    )
}

#[test]
fn podman_name_image_and_annotations() {
    let host = Host::new("podman");
    host.write(
        &format!("/var/lib/containers/storage/overlay-containers/{ID}/userdata/config.json"),
        &bundle(
            r#"{"io.container.manager":"libpod","io.kubernetes.cri-o.Created":"2026-12-07T17:26:11Z","io.kubernetes.cri-o.TTY":"false","org.opencontainers.image.stopSignal":"15"}"#,
        ),
    );
    host.write(
        "/var/lib/containers/storage/overlay-containers/containers.json",
        &format!(
            r#"[{{"id":"{other}","names":["other"],"image":"aa","metadata":"{{}}"}},{{"id":"{ID}","names":["wl-srv"],"image":"03dcbf40706dd2937d5603620b136ef07c0fdfd7491e1f4f97e7fe041c7421bf","layer":"8bef","metadata":"{{\"image-name\":\"localhost/wltest:1.0\",\"image-id\":\"03dcbf40706dd2937d5603620b136ef07c0fdfd7491e1f4f97e7fe041c7421bf\",\"name\":\"wl-srv\",\"created-at\":1796664325}}","created":"2026-12-07T17:25:25.107246497Z","flags":{{"MountLabel":"","ProcessLabel":""}}}}]"#,
            other = "f".repeat(64)
        ),
    );
    let got = host.lookup(Some(Runtime::Podman), None);
    assert!(got.found);
    assert!(got.errors.is_empty(), "{:?}", got.errors);
    assert_eq!(got.info.id, ID);
    assert_eq!(got.info.name, "wl-srv");
    assert_eq!(got.info.runtime, "podman");
    assert_eq!(got.info.image_name, "localhost/wltest");
    assert_eq!(got.info.image_tag, "1.0");
    // podman's `io.kubernetes.cri-o.*` annotations do not make it CRI-O, nor a pod.
    assert_eq!(got.info.k8s_pod_name, "");
}

#[test]
fn podman_image_name_from_the_image_store() {
    let host = Host::new("podman-image");
    host.write(
        "/var/lib/containers/storage/overlay-containers/containers.json",
        &format!(r#"[{{"id":"{ID}","names":["x"],"image":"abc","metadata":""}}]"#),
    );
    host.write(
        "/var/lib/containers/storage/overlay-images/images.json",
        r#"[{"id":"abc","names":["registry.local:5000/team/app:v2"]}]"#,
    );
    let got = host.lookup(Some(Runtime::Podman), None);
    assert!(got.found);
    assert_eq!(got.info.name, "x");
    assert_eq!(got.info.image_name, "registry.local:5000/team/app");
    assert_eq!(got.info.image_tag, "v2");
}

#[test]
fn containerd_cri_pod_identity() {
    let host = Host::new("containerd");
    host.write(
        &format!("/run/containerd/io.containerd.runtime.v2.task/k8s.io/{ID}/config.json"),
        &bundle(&format!(
            r#"{{"io.kubernetes.cri.container-name":"web","io.kubernetes.cri.container-type":"container","io.kubernetes.cri.image-name":"docker.io/library/nginx:1.25","io.kubernetes.cri.sandbox-id":"{}","io.kubernetes.cri.sandbox-name":"web-7d9f","io.kubernetes.cri.sandbox-namespace":"shop","io.kubernetes.cri.sandbox-uid":"{UID}"}}"#,
            "a".repeat(64)
        )),
    );
    // A bare id under kubepods names no runtime: every runtime is tried.
    let got = host.lookup(None, Some(UID));
    assert!(got.found);
    assert_eq!(got.info.runtime, "containerd");
    assert_eq!(got.info.k8s_pod_name, "web-7d9f");
    assert_eq!(got.info.k8s_namespace, "shop");
    assert_eq!(got.info.k8s_pod_uid, UID);
    assert_eq!(got.info.k8s_container_name, "web");
    assert_eq!(got.info.name, "web");
    assert_eq!(got.info.image_name, "docker.io/library/nginx");
    assert_eq!(got.info.image_tag, "1.25");
}

#[test]
fn crio_pod_identity() {
    let host = Host::new("crio");
    host.write(
        &format!("/run/containers/storage/overlay-containers/{ID}/userdata/config.json"),
        &bundle(&format!(
            r#"{{"io.kubernetes.container.name":"api","io.kubernetes.cri-o.ContainerID":"{ID}","io.kubernetes.cri-o.ImageName":"quay.io/team/api:2.1","io.kubernetes.cri-o.Name":"k8s_api_api-5c_prod_{UID}_0","io.kubernetes.pod.name":"api-5c","io.kubernetes.pod.namespace":"prod","io.kubernetes.pod.uid":"{UID}"}}"#
        )),
    );
    let got = host.lookup(Some(Runtime::CriO), Some(UID));
    assert!(got.found);
    assert_eq!(got.info.runtime, "cri-o");
    assert_eq!(got.info.k8s_pod_name, "api-5c");
    assert_eq!(got.info.k8s_namespace, "prod");
    assert_eq!(got.info.k8s_pod_uid, UID);
    assert_eq!(got.info.k8s_container_name, "api");
    assert_eq!(got.info.image_name, "quay.io/team/api");
    assert_eq!(got.info.image_tag, "2.1");
}

#[test]
fn docker_name_image_and_cri_dockerd_labels() {
    let host = Host::new("docker");
    host.write(
        &format!("/var/lib/docker/containers/{ID}/config.v2.json"),
        &format!(
            r#"{{"ID":"{ID}","Name":"/k8s_web_web-1_shop_{UID}_0","Image":"sha256:abcd","Config":{{"Hostname":"web-1","Image":"nginx:1.25","Labels":{{"io.kubernetes.container.name":"web","io.kubernetes.pod.name":"web-1","io.kubernetes.pod.namespace":"shop","io.kubernetes.pod.uid":"{UID}"}}}}}}"#
        ),
    );
    let got = host.lookup(Some(Runtime::Docker), None);
    assert!(got.found);
    assert_eq!(got.info.runtime, "docker");
    assert_eq!(got.info.name, format!("k8s_web_web-1_shop_{UID}_0"));
    assert_eq!(got.info.image_name, "nginx");
    assert_eq!(got.info.image_tag, "1.25");
    assert_eq!(got.info.k8s_pod_name, "web-1");
    assert_eq!(got.info.k8s_container_name, "web");
}

#[test]
fn docker_through_containerds_moby_namespace() {
    let host = Host::new("moby");
    host.write(
        &format!("/run/containerd/io.containerd.runtime.v2.task/moby/{ID}/config.json"),
        &bundle("{}"),
    );
    host.write(
        &format!("/var/lib/docker/containers/{ID}/config.v2.json"),
        r#"{"Name":"/shop-db","Config":{"Image":"postgres:16","Labels":null}}"#,
    );
    let got = host.lookup(None, None);
    assert!(got.found);
    assert_eq!(got.info.runtime, "docker");
    assert_eq!(got.info.name, "shop-db");
    assert_eq!(got.info.image_name, "postgres");
}

#[test]
fn unknown_container_keeps_id_runtime_hint_and_pod_uid() {
    let host = Host::new("none");
    let got = host.lookup(Some(Runtime::Containerd), Some(UID));
    assert!(!got.found);
    assert!(got.errors.is_empty());
    assert_eq!(got.info.id, ID);
    assert_eq!(got.info.runtime, "containerd");
    assert_eq!(got.info.k8s_pod_uid, UID);
    assert_eq!(got.info.name, "");
}

#[test]
fn broken_files_are_errors_not_panics() {
    let host = Host::new("broken");
    let config = format!("/var/lib/docker/containers/{ID}/config.v2.json");
    host.write(&config, "{not json");
    let got = host.lookup(Some(Runtime::Docker), None);
    assert!(!got.found);
    assert_eq!(got.errors.len(), 1);
    assert!(
        matches!(&got.errors[0], MetadataError::Json { path: p, .. } if path(p).ends_with("config.v2.json"))
    );

    let big = format!("{{\"Name\":\"/x\",\"pad\":\"{}\"}}", "x".repeat(2 << 20));
    host.write(&config, &big);
    let got = host.lookup(Some(Runtime::Docker), None);
    assert!(matches!(&got.errors[..], [MetadataError::TooLarge { .. }]));
}

#[test]
fn host_root_prefixes_every_path() {
    let roots = Roots {
        host: PathBuf::from("/host"),
    };
    assert_eq!(
        roots.docker_containers(),
        PathBuf::from("/host/var/lib/docker/containers")
    );
    assert_eq!(
        Roots::default().containerd_tasks(),
        PathBuf::from("/run/containerd/io.containerd.runtime.v2.task")
    );
}
