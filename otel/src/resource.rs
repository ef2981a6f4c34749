//! A traced process (or the agent itself) and its OTLP Resource.

use opentelemetry_proto::tonic::resource::v1::Resource;

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
    /// `service.name`: the process's own `OTEL_SERVICE_NAME`, else Kubernetes labels, else the
    /// executable name.
    pub service_name: String,
    /// The host the process runs on.
    pub host_name: String,
    /// Container id, when the process runs in one.
    pub container_id: Option<String>,
}

impl ProcessInfo {
    /// The OTLP Resource: `service.name`, `process.*`, `host.name`, `container.id` (if any) and
    /// `telemetry.distro.{name,version}` naming wirelens as the producer. Empty strings are left
    /// out.
    pub fn to_resource(&self) -> Resource {
        let mut attributes = Vec::with_capacity(9);
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
        if let Some(id) = self.container_id.as_deref().filter(|c| !c.is_empty()) {
            attributes.push(kv::string(semconv::CONTAINER_ID, id));
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

    #[test]
    fn resource_has_process_attributes() {
        let info = ProcessInfo {
            pid: 7,
            executable_name: "curl".into(),
            executable_path: Some("/usr/bin/curl".into()),
            command_line: "curl http://x/".into(),
            service_name: "curl".into(),
            host_name: "h".into(),
            container_id: None,
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
    fn container_id_when_known() {
        let info = ProcessInfo {
            container_id: Some("abc".into()),
            ..ProcessInfo::default()
        };
        let attrs = attr_map(&info.to_resource().attributes);
        assert_eq!(attrs["container.id"], "abc");
        assert!(!attrs.contains_key("service.name"));
    }
}
