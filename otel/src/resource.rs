//! A traced process (or the agent itself) and its OTLP Resource.

use std::sync::Arc;

use opentelemetry_proto::tonic::{common::v1::KeyValue, resource::v1::Resource};

use crate::{kv, semconv};

/// What the agent knows about a process; becomes the Resource of everything it did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ProcessInfo {
    /// Process id (the thread group id) as seen from the agent's pid namespace.
    pub pid: u32,
    /// Executable file name (`nginx`), from `/proc/<pid>/exe` or `comm`.
    pub executable_name: String,
    /// Full path of the executable, when readable.
    pub executable_path: Option<String>,
    /// The command line, arguments joined by spaces.
    pub command_line: String,
    /// `service.name`: the process's own `OTEL_SERVICE_NAME`, else its Kubernetes container
    /// name, else the executable name.
    pub service_name: String,
    /// The host the process runs on.
    pub host_name: String,
    /// The container the process runs in, if any (shared by its processes).
    pub container: Option<Arc<ContainerInfo>>,
    /// What the Kubernetes API says of the container's pod, if the agent watches it.
    pub pod: Option<Arc<PodInfo>>,
}

/// What the Kubernetes API says of a pod: its node, its owners (the controller chain, walked
/// up to the Deployment or CronJob), and the labels and annotations configuration asked for.
/// Empty strings are unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PodInfo {
    /// `k8s.pod.name`.
    pub name: String,
    /// `k8s.pod.uid`.
    pub uid: String,
    /// `k8s.namespace.name`.
    pub namespace: String,
    /// `k8s.node.name`.
    pub node_name: String,
    /// `(k8s.<kind>.name, name)` of each owner, the pod's controller first
    /// (`k8s.replicaset.name`, then `k8s.deployment.name`).
    pub owners: Vec<(&'static str, String)>,
    /// `(attribute key, value)` for the labels and annotations chosen by configuration
    /// (`k8s.pod.label.<key>`, `k8s.pod.annotation.<key>`).
    pub attributes: Vec<(String, String)>,
    /// `service.name` by the OpenTelemetry Kubernetes rules, when the pod decides it: the
    /// `resource.opentelemetry.io/service.name` annotation, else the `app.kubernetes.io/name`
    /// label, else the top owner's name (the container name comes after, per process).
    pub service_name: Option<String>,
}

impl PodInfo {
    fn push_attributes(&self, container: Option<&ContainerInfo>, attributes: &mut Vec<KeyValue>) {
        let known = |f: fn(&ContainerInfo) -> &str| container.is_some_and(|c| !f(c).is_empty());
        let mut string = |key: &str, value: &str| {
            if !value.is_empty() {
                attributes.push(kv::string(key, value));
            }
        };
        // The CRI annotations already named the pod; the API fills what they did not.
        if !known(|c| &c.k8s_pod_name) {
            string(semconv::K8S_POD_NAME, &self.name);
        }
        if !known(|c| &c.k8s_pod_uid) {
            string(semconv::K8S_POD_UID, &self.uid);
        }
        if !known(|c| &c.k8s_namespace) {
            string(semconv::K8S_NAMESPACE_NAME, &self.namespace);
            string(semconv::SERVICE_NAMESPACE, &self.namespace);
        }
        string(semconv::K8S_NODE_NAME, &self.node_name);
        for (key, name) in &self.owners {
            string(key, name);
        }
        for (key, value) in &self.attributes {
            string(key, value);
        }
    }
}

/// What the agent knows about a container: its id from the cgroup, the rest from the
/// runtime's own metadata on the node. Empty strings are unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ContainerInfo {
    /// `container.id`: the runtime's full id (64 hex digits).
    pub id: String,
    /// `container.name`, as the runtime reports it.
    pub name: String,
    /// `container.runtime.name`: `podman`, `docker`, `containerd`, `cri-o`.
    pub runtime: String,
    /// `container.image.name`: the image reference without tag or digest.
    pub image_name: String,
    /// The image tag (`container.image.tags`), when the reference had one.
    pub image_tag: String,
    /// `k8s.pod.name`, for containers started through the CRI.
    pub k8s_pod_name: String,
    /// `k8s.pod.uid`.
    pub k8s_pod_uid: String,
    /// `k8s.namespace.name`.
    pub k8s_namespace: String,
    /// `k8s.container.name`.
    pub k8s_container_name: String,
}

impl ContainerInfo {
    /// `service.instance.id` per the OpenTelemetry Kubernetes conventions:
    /// `<namespace>.<pod>.<container>`, when all three are known.
    pub fn k8s_instance_id(&self) -> Option<String> {
        let parts = [
            &self.k8s_namespace,
            &self.k8s_pod_name,
            &self.k8s_container_name,
        ];
        if parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        Some(format!("{}.{}.{}", parts[0], parts[1], parts[2]))
    }

    fn push_attributes(&self, attributes: &mut Vec<KeyValue>) {
        let mut string = |key: &str, value: &str| {
            if !value.is_empty() {
                attributes.push(kv::string(key, value));
            }
        };
        string(semconv::CONTAINER_ID, &self.id);
        string(semconv::CONTAINER_NAME, &self.name);
        string(semconv::CONTAINER_RUNTIME_NAME, &self.runtime);
        string(semconv::CONTAINER_IMAGE_NAME, &self.image_name);
        string(semconv::K8S_POD_NAME, &self.k8s_pod_name);
        string(semconv::K8S_POD_UID, &self.k8s_pod_uid);
        string(semconv::K8S_NAMESPACE_NAME, &self.k8s_namespace);
        string(semconv::K8S_CONTAINER_NAME, &self.k8s_container_name);
        string(semconv::SERVICE_NAMESPACE, &self.k8s_namespace);
        if let Some(instance) = self.k8s_instance_id() {
            attributes.push(kv::string(semconv::SERVICE_INSTANCE_ID, instance));
        }
        if !self.image_tag.is_empty() {
            attributes.push(kv::string_array(
                semconv::CONTAINER_IMAGE_TAGS,
                [self.image_tag.as_str()],
            ));
        }
    }
}

impl ContainerInfo {
    /// The Resource of the container itself, for its cgroup's figures: `container.*`, the
    /// `k8s.*` the runtime and (when watched) the Kubernetes API tell, `service.name` (the
    /// Kubernetes container name, else the runtime's container name), `host.name` and
    /// `telemetry.distro.*`. No `process.*`: it describes every process in the container.
    pub fn to_resource(&self, pod: Option<&PodInfo>, host_name: &str) -> Resource {
        let mut attributes = Vec::with_capacity(16);
        let service = [&self.k8s_container_name, &self.name]
            .into_iter()
            .find(|n| !n.is_empty());
        if let Some(service) = service {
            attributes.push(kv::string(semconv::SERVICE_NAME, service));
        }
        if !host_name.is_empty() {
            attributes.push(kv::string(semconv::HOST_NAME, host_name));
        }
        self.push_attributes(&mut attributes);
        if let Some(pod) = pod {
            pod.push_attributes(Some(self), &mut attributes);
        }
        push_distro(&mut attributes);
        Resource {
            attributes,
            ..Resource::default()
        }
    }

    /// The Resource of the pod this container belongs to (for the pod cgroup's figures):
    /// `k8s.pod.*`, `k8s.namespace.name`, `service.namespace`, and what the Kubernetes API
    /// tells of the pod; `service.name` when the pod decides it. `None` outside a pod.
    pub fn pod_resource(&self, pod: Option<&PodInfo>, host_name: &str) -> Option<Resource> {
        let uid = pod
            .map(|p| p.uid.as_str())
            .filter(|u| !u.is_empty())
            .unwrap_or(&self.k8s_pod_uid);
        if uid.is_empty() {
            return None;
        }
        let mut attributes = Vec::with_capacity(12);
        if let Some(name) = pod.and_then(|p| p.service_name.as_deref()) {
            attributes.push(kv::string(semconv::SERVICE_NAME, name));
        }
        if !host_name.is_empty() {
            attributes.push(kv::string(semconv::HOST_NAME, host_name));
        }
        let mut string = |key: &str, value: &str| {
            if !value.is_empty() {
                attributes.push(kv::string(key, value));
            }
        };
        string(semconv::K8S_POD_NAME, &self.k8s_pod_name);
        string(semconv::K8S_POD_UID, &self.k8s_pod_uid);
        string(semconv::K8S_NAMESPACE_NAME, &self.k8s_namespace);
        string(semconv::SERVICE_NAMESPACE, &self.k8s_namespace);
        if let Some(pod) = pod {
            pod.push_attributes(Some(self), &mut attributes);
        }
        push_distro(&mut attributes);
        Some(Resource {
            attributes,
            ..Resource::default()
        })
    }
}

/// `telemetry.distro.{name,version}`: wirelens made this.
fn push_distro(attributes: &mut Vec<KeyValue>) {
    attributes.push(kv::string(
        semconv::TELEMETRY_DISTRO_NAME,
        semconv::SCOPE_NAME,
    ));
    attributes.push(kv::string(
        semconv::TELEMETRY_DISTRO_VERSION,
        semconv::VERSION,
    ));
}

impl ProcessInfo {
    /// `service.namespace` as the Resource gives it (the Kubernetes namespace), when known.
    pub fn service_namespace(&self) -> Option<&str> {
        let from_container = self
            .container
            .as_deref()
            .map(|c| c.k8s_namespace.as_str())
            .filter(|n| !n.is_empty());
        from_container.or_else(|| {
            self.pod
                .as_deref()
                .map(|p| p.namespace.as_str())
                .filter(|n| !n.is_empty())
        })
    }

    /// The OTLP Resource: `service.name`, `process.*`, `host.name`, the container's
    /// `container.*`, `k8s.*`, `service.namespace` and `service.instance.id` (if any) and
    /// `telemetry.distro.{name,version}` naming wirelens as the producer. Empty strings are left
    /// out.
    pub fn to_resource(&self) -> Resource {
        let mut attributes = Vec::with_capacity(20);
        if !self.service_name.is_empty() {
            attributes.push(kv::string(semconv::SERVICE_NAME, &self.service_name));
        }
        attributes.push(kv::int(semconv::PROCESS_PID, i64::from(self.pid)));
        if !self.executable_name.is_empty() {
            attributes.push(kv::string(
                semconv::PROCESS_EXECUTABLE_NAME,
                &self.executable_name,
            ));
        }
        if let Some(path) = self.executable_path.as_deref().filter(|p| !p.is_empty()) {
            attributes.push(kv::string(semconv::PROCESS_EXECUTABLE_PATH, path));
        }
        if !self.command_line.is_empty() {
            attributes.push(kv::string(
                semconv::PROCESS_COMMAND_LINE,
                &self.command_line,
            ));
        }
        if !self.host_name.is_empty() {
            attributes.push(kv::string(semconv::HOST_NAME, &self.host_name));
        }
        if let Some(container) = &self.container {
            container.push_attributes(&mut attributes);
        }
        if let Some(pod) = &self.pod {
            pod.push_attributes(self.container.as_deref(), &mut attributes);
        }
        attributes.push(kv::string(
            semconv::TELEMETRY_DISTRO_NAME,
            semconv::SCOPE_NAME,
        ));
        attributes.push(kv::string(
            semconv::TELEMETRY_DISTRO_VERSION,
            semconv::VERSION,
        ));
        Resource {
            attributes,
            ..Resource::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::attr_map;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;

    #[test]
    fn resource_has_process_attributes() {
        let info = ProcessInfo {
            pid: 7,
            executable_name: "curl".into(),
            executable_path: Some("/usr/bin/curl".into()),
            command_line: "curl http://x/".into(),
            service_name: "curl".into(),
            host_name: "h".into(),
            container: None,
            pod: None,
        };
        let attrs = attr_map(&info.to_resource().attributes);
        let keys: Vec<&str> = attrs.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "host.name",
                "process.command_line",
                "process.executable.name",
                "process.executable.path",
                "process.pid",
                "service.name",
                "telemetry.distro.name",
                "telemetry.distro.version",
            ]
        );
        assert_eq!(attrs["process.pid"], "7");
        assert_eq!(attrs["telemetry.distro.name"], "wirelens");
    }

    #[test]
    fn container_id_alone() {
        let info = ProcessInfo {
            container: Some(Arc::new(ContainerInfo {
                id: "abc".into(),
                ..ContainerInfo::default()
            })),
            ..ProcessInfo::default()
        };
        let attrs = attr_map(&info.to_resource().attributes);
        assert_eq!(attrs["container.id"], "abc");
        assert!(!attrs.contains_key("service.name"));
        assert!(!attrs.contains_key("container.name"));
        assert!(!attrs.contains_key("service.instance.id"));
    }

    #[test]
    fn container_and_pod_attributes() {
        let info = ProcessInfo {
            pid: 9,
            service_name: "web".into(),
            container: Some(Arc::new(ContainerInfo {
                id: "c0ffee".into(),
                name: "web".into(),
                runtime: "containerd".into(),
                image_name: "registry.local/shop/web".into(),
                image_tag: "1.2".into(),
                k8s_pod_name: "web-7d9f".into(),
                k8s_pod_uid: "0d3c7e5a-1111-2222-3333-444455556666".into(),
                k8s_namespace: "shop".into(),
                k8s_container_name: "web".into(),
            })),
            ..ProcessInfo::default()
        };
        let resource = info.to_resource();
        let tags = resource
            .attributes
            .iter()
            .find(|kv| kv.key == "container.image.tags")
            .and_then(|kv| kv.value.as_ref()?.value.as_ref());
        let Some(Value::ArrayValue(tags)) = tags else {
            panic!("no container.image.tags array: {tags:?}");
        };
        let tags: Vec<_> = tags.values.iter().map(|v| v.value.clone()).collect();
        assert_eq!(tags, [Some(Value::StringValue("1.2".into()))]);
        let attrs = attr_map(&resource.attributes);
        assert_eq!(attrs["container.id"], "c0ffee");
        assert_eq!(attrs["container.name"], "web");
        assert_eq!(attrs["container.runtime.name"], "containerd");
        assert_eq!(attrs["container.image.name"], "registry.local/shop/web");
        assert_eq!(attrs["k8s.pod.name"], "web-7d9f");
        assert_eq!(attrs["k8s.pod.uid"], "0d3c7e5a-1111-2222-3333-444455556666");
        assert_eq!(attrs["k8s.namespace.name"], "shop");
        assert_eq!(attrs["k8s.container.name"], "web");
        assert_eq!(attrs["service.namespace"], "shop");
        assert_eq!(attrs["service.instance.id"], "shop.web-7d9f.web");
    }

    #[test]
    fn pod_attributes_fill_what_the_container_did_not_say() {
        let info = ProcessInfo {
            container: Some(Arc::new(ContainerInfo {
                id: "c0ffee".into(),
                k8s_pod_name: "web-7d9f".into(),
                k8s_namespace: "shop".into(),
                k8s_container_name: "web".into(),
                ..ContainerInfo::default()
            })),
            pod: Some(Arc::new(PodInfo {
                name: "web-7d9f".into(),
                uid: "u1".into(),
                namespace: "shop".into(),
                node_name: "n1".into(),
                owners: vec![
                    (semconv::K8S_REPLICASET_NAME, "web-7d9f8c".into()),
                    (semconv::K8S_DEPLOYMENT_NAME, "web".into()),
                ],
                attributes: vec![("k8s.pod.label.tier".into(), "front".into())],
                service_name: Some("web".into()),
            })),
            ..ProcessInfo::default()
        };
        let resource = info.to_resource();
        let names: Vec<&str> = resource
            .attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .collect();
        for unique in ["k8s.pod.name", "k8s.namespace.name", "service.namespace"] {
            assert_eq!(
                names.iter().filter(|n| **n == unique).count(),
                1,
                "{unique}"
            );
        }
        let attrs = attr_map(&resource.attributes);
        assert_eq!(attrs["k8s.pod.uid"], "u1");
        assert_eq!(attrs["k8s.node.name"], "n1");
        assert_eq!(attrs["k8s.replicaset.name"], "web-7d9f8c");
        assert_eq!(attrs["k8s.deployment.name"], "web");
        assert_eq!(attrs["k8s.pod.label.tier"], "front");
    }
}
