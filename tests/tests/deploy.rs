//! The Kubernetes deployment: the Helm chart rendered by Helm's own engine (Helm v4's Go SDK,
//! from the PyPI package `helm-python-sdk`, through `deploy/render.py`, with `helm lint
//! --strict` first), and the plain manifests. Every object is checked strictly against the
//! Kubernetes API schema (`k8s-openapi`, Kubernetes 1.33): an unknown field, a wrong type or a
//! value that does not survive a round trip fails. Then the security posture: nothing
//! privileged, exactly the README's capability set, no privilege escalation, read-only mounts
//! for tracefs and the runtime state, the instance lock on a host path, read-only RBAC.
//!
//! Needs `scripts/setup.sh` (the venv with `helm-python-sdk`); no cluster, no root.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use k8s_openapi::api::{
    apps::v1::{DaemonSet, Deployment},
    core::v1::{Container, Namespace, PodSpec, Service, ServiceAccount, Volume},
    rbac::v1::{ClusterRole, ClusterRoleBinding},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use wirelens_tests::{documented_capabilities, python, workspace_root};

/// Where the lock file lives in the chart's defaults.
const LOCK_DIR: &str = "/run/wirelens";

/// Renders the chart with these values files (none: the defaults), as `helm template` does.
fn render(values: &[&str], extra: &[&str]) -> String {
    let root = workspace_root();
    let mut cmd = Command::new(python());
    cmd.arg(root.join("deploy/render.py")).arg("--lint");
    for v in values {
        cmd.arg("-f").arg(root.join(v));
    }
    cmd.args(extra);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run deploy/render.py: {e}"));
    assert!(
        out.status.success(),
        "deploy/render.py failed (is helm-python-sdk in the venv? scripts/setup.sh):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 manifests")
}

/// Every non-empty YAML document of a stream.
fn documents(yaml: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|doc| {
            <Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("not YAML: {e}\n{yaml}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// `doc` as `T`, rejecting any field the schema does not know and any value that does not
/// come back unchanged when serialized again.
fn strict<T: DeserializeOwned + Serialize>(doc: &Value) -> T {
    let what = format!(
        "{} {}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    );
    let mut unknown = Vec::new();
    let object: T = serde_ignored::deserialize(doc.clone(), |path| unknown.push(path.to_string()))
        .unwrap_or_else(|e| panic!("{what}: does not match the Kubernetes schema: {e}"));
    assert!(
        unknown.is_empty(),
        "{what}: fields the Kubernetes schema does not have: {unknown:?}"
    );
    let again = serde_json::to_value(&object).expect("serialize");
    assert_eq!(
        &again, doc,
        "{what}: changed by a round trip through the schema types"
    );
    object
}

/// The objects of a rendered stream, each validated by its kind.
#[derive(Default)]
struct Objects {
    daemonsets: Vec<DaemonSet>,
    deployments: Vec<Deployment>,
    service_accounts: Vec<ServiceAccount>,
    cluster_roles: Vec<ClusterRole>,
    bindings: Vec<ClusterRoleBinding>,
    services: Vec<Service>,
    namespaces: Vec<Namespace>,
}

fn validate(yaml: &str) -> Objects {
    let mut objects = Objects::default();
    for doc in documents(yaml) {
        match (doc["apiVersion"].as_str(), doc["kind"].as_str()) {
            (Some("apps/v1"), Some("DaemonSet")) => objects.daemonsets.push(strict(&doc)),
            (Some("apps/v1"), Some("Deployment")) => objects.deployments.push(strict(&doc)),
            (Some("v1"), Some("ServiceAccount")) => objects.service_accounts.push(strict(&doc)),
            (Some("v1"), Some("Service")) => objects.services.push(strict(&doc)),
            (Some("v1"), Some("Namespace")) => objects.namespaces.push(strict(&doc)),
            (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRole")) => {
                objects.cluster_roles.push(strict(&doc))
            }
            (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRoleBinding")) => {
                objects.bindings.push(strict(&doc))
            }
            other => panic!("unexpected object {other:?}:\n{doc:#}"),
        }
    }
    objects
}

/// The README's capabilities as Kubernetes spells them (`BPF`): the required ones, then with
/// `tls` the optional ones (`SYS_ADMIN`, for uprobes).
fn documented_k8s_capabilities(tls: bool) -> Vec<String> {
    let caps = documented_capabilities();
    let optional = if tls { caps.optional } else { Vec::new() };
    caps.required
        .iter()
        .chain(&optional)
        .map(|c| c.trim_start_matches("CAP_").to_string())
        .collect()
}

fn agent_container(pod: &PodSpec) -> &Container {
    pod.containers
        .iter()
        .find(|c| c.name == "wirelens")
        .unwrap_or_else(|| panic!("no wirelens container in {pod:#?}"))
}

/// The agent's container: not privileged, exactly the documented capabilities (with `tls`, the
/// uprobes' `SYS_ADMIN` too), no escalation unless `SYS_ADMIN` is there (Kubernetes refuses
/// the two together), user 0, read-only root filesystem, tracefs read-only; the pod privileged
/// in no other way.
fn assert_least_privilege(pod: &PodSpec, tls: bool) {
    assert_ne!(pod.host_network, Some(true), "hostNetwork is not needed");
    assert_ne!(pod.host_ipc, Some(true), "hostIPC is not needed");
    for c in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        let privileged = c.security_context.as_ref().and_then(|s| s.privileged);
        assert_ne!(privileged, Some(true), "container {} is privileged", c.name);
    }
    let agent = agent_container(pod);
    let sc = agent
        .security_context
        .as_ref()
        .expect("the agent has a securityContext");
    assert_eq!(sc.privileged, Some(false));
    assert_eq!(sc.allow_privilege_escalation, Some(tls));
    assert_eq!(sc.run_as_user, Some(0), "user 0 owns tracefs");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let caps = sc.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert_eq!(
        caps.add.clone().unwrap_or_default(),
        documented_k8s_capabilities(tls),
        "the added capabilities are the README's table"
    );
    let tracefs = mount(pod, agent, "/sys/kernel/tracing");
    assert_eq!(tracefs.1, Some(true), "tracefs is mounted read-only");
    for volume in pod.volumes.iter().flatten() {
        if let Some(host) = &volume.host_path {
            assert!(
                !["/", "/proc", "/sys", "/sys/fs/bpf", "/var/run", "/run"]
                    .contains(&host.path.trim_end_matches('/')),
                "hostPath {} is wider than needed",
                host.path
            );
        }
    }
}

/// (host path, readOnly) of the volume mounted at `path` in `container`.
fn mount(pod: &PodSpec, container: &Container, path: &str) -> (String, Option<bool>) {
    let m = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == path)
        .unwrap_or_else(|| panic!("nothing mounted at {path} in {}", container.name));
    let volume: &Volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == m.name)
        .unwrap_or_else(|| panic!("no volume {}", m.name));
    let host = volume
        .host_path
        .as_ref()
        .map(|h| h.path.clone())
        .unwrap_or_default();
    (host, m.read_only)
}

/// The DaemonSet's pod: host pid namespace, the lock file on a host path, the runtime state
/// read-only.
fn assert_daemonset_pod(pod: &PodSpec, lock_dir: &str, state_dirs: &[&str], tls: bool) {
    assert_least_privilege(pod, tls);
    assert_eq!(pod.host_pid, Some(true), "hostPID: the host's /proc");
    let agent = agent_container(pod);
    let args = agent.args.clone().unwrap_or_default();
    let lock = format!("--lock-file={lock_dir}/wirelens.lock");
    assert!(args.contains(&lock), "{lock} in {args:?}");
    let (host, read_only) = mount(pod, agent, lock_dir);
    assert_eq!(host, lock_dir, "the lock directory is the host's");
    assert_ne!(read_only, Some(true), "the lock file is written");
    let mut mounted = BTreeSet::new();
    for dir in state_dirs {
        let (host, read_only) = mount(pod, agent, dir);
        assert_eq!(&host, dir);
        assert_eq!(read_only, Some(true), "{dir} is mounted read-only");
        mounted.insert(host);
    }
    let host_paths: BTreeSet<String> = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.host_path.as_ref().map(|h| h.path.clone()))
        .collect();
    let mut expected: BTreeSet<String> = mounted;
    expected.insert("/sys/kernel/tracing".into());
    expected.insert(lock_dir.into());
    assert_eq!(
        host_paths, expected,
        "host paths: tracefs, lock, runtime state"
    );
}

/// Only get/list/watch on pods, their owners and Services (the peer names), bound to the
/// agent's service account.
fn assert_rbac(objects: &Objects) {
    assert_eq!(objects.cluster_roles.len(), 1);
    let allowed_verbs: BTreeSet<&str> = ["get", "list", "watch"].into();
    let allowed_resources: BTreeSet<&str> = [
        "pods",
        "services",
        "replicasets",
        "deployments",
        "statefulsets",
        "daemonsets",
        "jobs",
        "cronjobs",
    ]
    .into();
    let mut resources = BTreeSet::new();
    for rule in objects.cluster_roles[0].rules.iter().flatten() {
        for verb in &rule.verbs {
            assert!(allowed_verbs.contains(verb.as_str()), "verb {verb}");
        }
        for r in rule.resources.iter().flatten() {
            assert!(allowed_resources.contains(r.as_str()), "resource {r}");
            resources.insert(r.clone());
        }
        assert!(rule.non_resource_urls.is_none(), "no non-resource URLs");
        assert!(rule.resource_names.is_none());
    }
    assert!(resources.contains("pods"), "{resources:?}");
    assert!(
        resources.contains("services"),
        "peers on by default: {resources:?}"
    );
    let binding = &objects.bindings[0];
    assert_eq!(
        binding.role_ref.name,
        objects.cluster_roles[0]
            .metadata
            .name
            .clone()
            .unwrap_or_default()
    );
    let subject = &binding.subjects.as_ref().expect("subjects")[0];
    assert_eq!(subject.kind, "ServiceAccount");
    assert_eq!(
        Some(&subject.name),
        objects.service_accounts[0].metadata.name.as_ref()
    );
}

fn env<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

#[test]
fn chart_defaults_render_valid_least_privilege_objects() {
    let objects = validate(&render(&[], &[]));
    assert_eq!(objects.daemonsets.len(), 1);
    assert_eq!(objects.service_accounts.len(), 1);
    assert!(objects.services.is_empty(), "no metrics Service by default");
    assert!(objects.deployments.is_empty() && objects.namespaces.is_empty());
    let ds = &objects.daemonsets[0];
    let pod = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    assert_daemonset_pod(
        pod,
        LOCK_DIR,
        &["/run/containerd/io.containerd.runtime.v2.task"],
        false,
    );
    assert_eq!(
        pod.service_account_name,
        objects.service_accounts[0].metadata.name
    );
    let agent = agent_container(pod);
    assert_eq!(
        env(agent, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        None,
        "export off"
    );
    assert!(agent.liveness_probe.is_none() && agent.ports.is_none());
    assert_rbac(&objects);
}

#[test]
fn chart_with_every_option_renders_valid_objects() {
    let objects = validate(&render(&["deploy/helm/wirelens/ci/full-values.yaml"], &[]));
    let pod = objects.daemonsets[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    assert_daemonset_pod(
        pod,
        "/var/run/wirelens",
        &[
            "/run/containerd/io.containerd.runtime.v2.task",
            "/run/containers/storage/overlay-containers",
        ],
        true,
    );
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-node-critical")
    );
    assert_eq!(pod.tolerations.as_ref().map(Vec::len), Some(1));
    let agent = agent_container(pod);
    assert_eq!(
        env(agent, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        Some("http://otel-collector.observability:4317")
    );
    assert_eq!(
        env(agent, "OTEL_EXPORTER_OTLP_HEADERS"),
        Some("authorization=Bearer not-a-secret,x-tenant=team-a")
    );
    let args = agent.args.clone().unwrap_or_default();
    for arg in [
        "--port=80",
        "--port=5432",
        "--comm=nginx",
        "--k8s-pod-selector=app=web,tier in (front,back)",
        "--exe=/usr/sbin/nginx",
        "--capture-limit=4096",
    ] {
        assert!(args.iter().any(|a| a == arg), "{arg} in {args:?}");
    }
    // The metrics port: container port, probes and Service agree.
    let port = &agent.ports.as_ref().expect("ports")[0];
    assert_eq!(
        (port.name.as_deref(), port.container_port),
        (Some("metrics"), 9464)
    );
    assert!(agent.liveness_probe.is_some() && agent.readiness_probe.is_some());
    assert_eq!(objects.services.len(), 1);
    let svc = objects.services[0].spec.as_ref().expect("service spec");
    assert_eq!(svc.ports.as_ref().expect("ports")[0].port, 9464);
    assert_eq!(
        objects.service_accounts[0].metadata.name.as_deref(),
        Some("wirelens-agent")
    );
    assert_rbac(&objects);
}

#[test]
fn headers_from_a_secret_stay_out_of_the_manifest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        "otlp:\n  headersSecret: otlp-auth\n  headers:\n    authorization: leaked\n",
    )
    .expect("write values");
    let yaml = render(&[values.to_str().expect("utf-8")], &[]);
    assert!(!yaml.contains("leaked"), "{yaml}");
    let objects = validate(&yaml);
    let pod = objects.daemonsets[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    let headers = agent_container(pod)
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "OTEL_EXPORTER_OTLP_HEADERS")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("headers from a secret");
    assert_eq!(headers.name, "otlp-auth");
}

#[test]
fn plain_manifests_are_the_chart_rendered_and_valid() {
    let path = workspace_root().join("deploy/manifests/wirelens.yaml");
    let committed = std::fs::read_to_string(&path).expect("read deploy/manifests/wirelens.yaml");
    let fresh = render(&["deploy/manifests/values.yaml"], &["--namespace-object"]);
    assert!(
        committed == fresh,
        "deploy/manifests/wirelens.yaml is stale: regenerate it with\n  \
         /opt/wirelens-venv/bin/python deploy/render.py --namespace-object \
         -f deploy/manifests/values.yaml > {}",
        path.display()
    );
    let objects = validate(&committed);
    assert_eq!(objects.namespaces.len(), 1);
    let pod = objects.daemonsets[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    assert_daemonset_pod(
        pod,
        LOCK_DIR,
        &["/run/containerd/io.containerd.runtime.v2.task"],
        false,
    );
    assert_eq!(
        env(agent_container(pod), "OTEL_EXPORTER_OTLP_ENDPOINT"),
        Some("http://otel-collector.observability:4317")
    );
    assert_rbac(&objects);
}

#[test]
fn sidecar_example_is_valid_and_shares_the_pod_process_namespace() {
    let yaml = std::fs::read_to_string(workspace_root().join("deploy/manifests/sidecar.yaml"))
        .expect("read deploy/manifests/sidecar.yaml");
    let objects = validate(&yaml);
    assert_eq!(objects.deployments.len(), 1);
    let pod = objects.deployments[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    assert_eq!(pod.share_process_namespace, Some(true));
    assert_ne!(pod.host_pid, Some(true), "a sidecar sees its pod only");
    assert_least_privilege(pod, false);
    assert_eq!(pod.containers.len(), 2, "the application and the agent");
}

#[test]
fn demo_compose_file_grants_the_documented_capabilities_and_tls() {
    let compose = std::fs::read_to_string(workspace_root().join("docker-compose.yaml"))
        .expect("read docker-compose.yaml");
    let doc = &documents(&compose)[0];
    let agent = &doc["services"]["wirelens"];
    assert_ne!(agent["privileged"], Value::Bool(true));
    assert_eq!(agent["cap_drop"], serde_json::json!(["ALL"]));
    assert_eq!(
        agent["cap_add"],
        serde_json::json!(documented_k8s_capabilities(true))
    );
    assert_eq!(agent["build"]["dockerfile"], "deploy/Dockerfile");
    // The image deploy/image/build.sh makes, which the chart names by default.
    let chart = validate(&render(&[], &[]));
    let pod = chart.daemonsets[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    assert_eq!(
        agent["image"].as_str(),
        agent_container(pod).image.as_deref()
    );
    assert!(
        Path::new(&workspace_root().join("deploy/Dockerfile")).exists(),
        "deploy/Dockerfile"
    );
}
