//! The agent's container image end to end. `deploy/image/build.sh` builds it from the agent
//! already built (`--binary`: no second cargo build), FROM scratch (no image registry is
//! reachable), and podman runs it the way the Helm chart's DaemonSet runs it: the image name,
//! arguments, environment, security context (user 0, `drop: [ALL]` plus the chart's
//! capabilities, no privilege escalation, read-only root filesystem, AppArmor unconfined, the
//! runtime's default seccomp profile as containerd's and Docker's are: see
//! `runtime_default_seccomp`) and host mounts (tracefs and the runtime state read-only,
//! the lock directory) are read from the chart as Helm's engine renders it (`deploy/render.py`),
//! never copied here; `hostPID` becomes `--pid=host`, never `--privileged`.
//!
//! What a pod gets from Kubernetes is supplied by the test: `NODE_NAME` (the downward API) is
//! the host's name, and the container is on the host's network so that it reaches the test's
//! receiver on 127.0.0.1 (the chart's pod has the pod network, which changes nothing for
//! tracing: the programs are in the host's kernel). The test's values file sets only the OTLP
//! endpoint, the traced port and the test's short export intervals.
//!
//! curl → nginx on the host is traced by the agent in the container; the independent receiver
//! gets the server and client spans with their semconv attributes and the processes' own
//! Resources, and the agent's own metrics under the chart's `service.name` and
//! `k8s.node.name`. `podman stop` then ends the agent (exit 0), and none of its BPF programs,
//! links or maps is left in the kernel (`bpftool`).
//!
//! Needs root, `scripts/setup.sh --tests` (podman, runc, bpftool, the venv with
//! `helm-python-sdk`) and a built agent; run one at a time (`-- --test-threads=1`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::{apps::v1::DaemonSet, core::v1::PodSpec};
use serde_json::Value;
use wirelens_tests::{
    Agent, Container, MetricPoint, Nginx, Otlp, Receiver, Span, bpf_objects, curl, free_port,
    host_name, logs, podman, poll, python, summarize_spans, tail, wait_until, workspace_root,
};

/// The image may not grow past this (it is the stripped agent and glibc: about 32 MB).
const MAX_IMAGE_BYTES: u64 = 64_000_000;
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const SPANS_TIMEOUT: Duration = Duration::from_secs(30);
const CONTAINER: &str = "wirelens-image-itest";
const USER_AGENT: &str = "wirelens-image-test";
const REQUESTS: usize = 3;

/// Runs `deploy/image/build.sh` with the built agent; returns the reference it printed.
fn build_image() -> String {
    let out = Command::new(workspace_root().join("deploy/image/build.sh"))
        .arg("--binary")
        .arg(Agent::binary())
        .output()
        .unwrap_or_else(|e| panic!("run deploy/image/build.sh: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "deploy/image/build.sh failed ({}):\n{stderr}",
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("build.sh printed no reference:\n{stderr}"))
        .to_string()
}

/// The chart's DaemonSet, rendered by Helm's engine with the values file `values`.
fn render_daemonset(values: &str) -> DaemonSet {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("values.yaml");
    std::fs::write(&path, values).expect("write values");
    let out = Command::new(python())
        .arg(workspace_root().join("deploy/render.py"))
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("run deploy/render.py: {e}"));
    assert!(
        out.status.success(),
        "deploy/render.py failed (is helm-python-sdk in the venv? scripts/setup.sh):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).expect("utf-8 manifests");
    let daemonset = serde_norway::Deserializer::from_str(&yaml)
        .map(|doc| {
            <Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("not YAML: {e}\n{yaml}"))
        })
        .find(|doc| doc["kind"] == "DaemonSet")
        .unwrap_or_else(|| panic!("no DaemonSet rendered:\n{yaml}"));
    serde_json::from_value(daemonset).unwrap_or_else(|e| panic!("not a DaemonSet: {e}"))
}

/// How the chart's pod runs the agent, as podman arguments.
struct PodmanRun {
    /// The container's image.
    image: String,
    /// `podman run` options: pid namespace, user, security, environment, mounts.
    options: Vec<String>,
    /// The agent's arguments.
    args: Vec<String>,
}

/// Translates the agent container of `pod` into `podman run` options. Every field the chart
/// sets is translated or the test fails, so a chart change cannot be silently left out.
fn podman_run(pod: &PodSpec, dir: &Path) -> PodmanRun {
    assert_ne!(
        pod.host_network,
        Some(true),
        "the chart's pod is not on the host network"
    );
    let agent = pod
        .containers
        .iter()
        .find(|c| c.name == "wirelens")
        .unwrap_or_else(|| panic!("no wirelens container in {pod:#?}"));
    let mut options = Vec::new();
    if pod.host_pid == Some(true) {
        options.push("--pid=host".to_string());
    }

    let sc = agent.security_context.as_ref().expect("a securityContext");
    assert_eq!(
        sc.privileged,
        Some(false),
        "the chart's agent is not privileged"
    );
    let user = sc.run_as_user.expect("runAsUser");
    let group = sc.run_as_group.unwrap_or(user);
    options.push(format!("--user={user}:{group}"));
    if sc.read_only_root_filesystem == Some(true) {
        // No tmpfs on /tmp, /run... either: a pod gets none.
        options.extend(["--read-only".into(), "--read-only-tmpfs=false".into()]);
    }
    if sc.allow_privilege_escalation == Some(false) {
        options.push("--security-opt=no-new-privileges".into());
    }
    let caps = sc.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    options.push("--cap-drop=all".into());
    for cap in caps.add.iter().flatten() {
        options.push(format!("--cap-add=CAP_{cap}"));
    }
    match sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()) {
        None | Some("RuntimeDefault") => options.push(format!(
            "--security-opt=seccomp={}",
            runtime_default_seccomp(dir)
        )),
        Some("Unconfined") => options.push("--security-opt=seccomp=unconfined".into()),
        Some(other) => panic!("seccompProfile {other} is not translated"),
    }
    match sc.app_armor_profile.as_ref().map(|p| p.type_.as_str()) {
        None | Some("RuntimeDefault") => {}
        Some("Unconfined") => options.push("--security-opt=apparmor=unconfined".into()),
        Some(other) => panic!("appArmorProfile {other} is not translated"),
    }

    // Environment, `$(VAR)` references expanded as the kubelet does.
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for var in agent.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), None) => {
                let mut value = value.clone();
                for (name, set) in &env {
                    value = value.replace(&format!("$({name})"), set);
                }
                value
            }
            (None, Some(from)) => {
                let field = from.field_ref.as_ref().map(|f| f.field_path.as_str());
                assert_eq!(
                    field,
                    Some("spec.nodeName"),
                    "{} is not translated",
                    var.name
                );
                host_name()
            }
            other => panic!("env {} is not translated: {other:?}", var.name),
        };
        options.push(format!("--env={}={value}", var.name));
        env.insert(var.name.clone(), value);
    }

    // Host paths, created when the chart says the kubelet creates them.
    for mount in agent.volume_mounts.iter().flatten() {
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .unwrap_or_else(|| panic!("no volume {}", mount.name));
        let host = volume
            .host_path
            .as_ref()
            .unwrap_or_else(|| panic!("volume {} is not a hostPath", volume.name));
        match host.type_.as_deref() {
            Some("DirectoryOrCreate") => std::fs::create_dir_all(&host.path)
                .unwrap_or_else(|e| panic!("create {}: {e}", host.path)),
            Some("Directory") => assert!(
                Path::new(&host.path).is_dir(),
                "{} is not a directory on this host",
                host.path
            ),
            other => panic!("hostPath type {other:?} of {} is not translated", host.path),
        }
        let mode = if mount.read_only == Some(true) {
            "ro"
        } else {
            "rw"
        };
        options.push(format!(
            "--volume={}:{}:{mode}",
            host.path, mount.mount_path
        ));
    }
    assert!(
        agent.command.is_none(),
        "the image's entrypoint runs the agent"
    );
    PodmanRun {
        image: agent.image.clone().expect("an image"),
        options,
        args: agent.args.clone().unwrap_or_default(),
    }
}

/// podman's default seccomp profile.
const PODMAN_SECCOMP: &str = "/usr/share/containers/seccomp.json";

/// The runtime's default seccomp profile as Kubernetes' runtimes have it: podman's own
/// profile, with `bpf` allowed to `CAP_BPF` and `perf_event_open` to `CAP_PERFMON`, as
/// containerd's and Docker's defaults allow them. The profile of Debian 12's podman
/// (containers-common 0.50) predates those capabilities and allows the two calls only with
/// `CAP_SYS_ADMIN`: the chart's `seccompProfile: {type: Unconfined}` is for such runtimes.
/// Written into `dir`; returns its path.
fn runtime_default_seccomp(dir: &Path) -> String {
    let text = std::fs::read_to_string(PODMAN_SECCOMP).unwrap_or_else(|e| {
        panic!("read {PODMAN_SECCOMP} (podman, scripts/setup.sh --tests): {e}")
    });
    let mut profile: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{PODMAN_SECCOMP}: {e}"));
    let rules = profile["syscalls"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("{PODMAN_SECCOMP}: no syscalls"));
    for (call, cap) in [("bpf", "CAP_BPF"), ("perf_event_open", "CAP_PERFMON")] {
        // The call leaves the rule that denies a group of calls to containers without
        // CAP_SYS_ADMIN; its own rule denies it to those without the capability either, and
        // another allows it to the capability's holders.
        let mut errno = None;
        for rule in rules.iter_mut() {
            if rule["action"] != "SCMP_ACT_ERRNO" {
                continue;
            }
            let errno_ret = rule["errnoRet"].clone();
            if let Some(names) = rule["names"].as_array_mut()
                && names.iter().any(|n| n == call)
            {
                names.retain(|n| n != call);
                errno = Some(errno_ret);
            }
        }
        let errno = errno.unwrap_or_else(|| panic!("{PODMAN_SECCOMP} does not deny {call}"));
        rules.push(serde_json::json!({
            "names": [call],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno,
            "excludes": {"caps": ["CAP_SYS_ADMIN", cap]},
        }));
        rules.push(serde_json::json!({
            "names": [call],
            "action": "SCMP_ACT_ALLOW",
            "includes": {"caps": [cap]},
        }));
    }
    let path = dir.join("seccomp.json");
    std::fs::write(&path, profile.to_string()).expect("write seccomp profile");
    path.to_string_lossy().into_owned()
}

/// Waits (60 s at most) until the agent in the container logs a line with the word `ready`;
/// panics with its log if the container stops first.
fn wait_ready(container: &Container) {
    wait_until(
        "the agent in the container to be ready",
        READY_TIMEOUT,
        || {
            std::thread::sleep(Duration::from_millis(200));
            let log = logs(&container.name);
            let ready = log.lines().any(|l| {
                l.split(|c: char| !c.is_ascii_alphanumeric())
                    .any(|w| w.eq_ignore_ascii_case("ready"))
            });
            if !ready && container.inspect("{{.State.Running}}") != "true" {
                panic!(
                    "the agent's container stopped before it was ready:\n{}",
                    tail(&log, 30)
                );
            }
            ready.then_some(())
        },
    );
}

fn spans_on(spans: &[Span], kind: &str, port: u16) -> Vec<Span> {
    spans
        .iter()
        .filter(|s| s.kind == kind && s.attributes.get("server.port") == Some(&port.into()))
        .cloned()
        .collect()
}

#[test]
fn image_runs_as_the_daemonset_and_traces_the_host() {
    let reference = build_image();
    let size: u64 = podman(&["image", "inspect", "--format", "{{.Size}}", &reference])
        .parse()
        .expect("image size");
    assert!(size < MAX_IMAGE_BYTES, "{reference} is {size} bytes");

    let nginx = Nginx::start(free_port());
    let receiver = Receiver::start();
    let endpoint = receiver
        .env(Otlp::Grpc)
        .into_iter()
        .find(|(k, _)| k == "OTEL_EXPORTER_OTLP_ENDPOINT")
        .map(|(_, v)| v)
        .expect("the receiver's endpoint");
    let values = format!(
        "otlp:\n  endpoint: {endpoint}\n  protocol: grpc\n\
         agent:\n  ports: [{port}]\n  extraEnv:\n\
         \x20   - {{name: OTEL_BSP_SCHEDULE_DELAY, value: \"200\"}}\n\
         \x20   - {{name: OTEL_METRIC_EXPORT_INTERVAL, value: \"1000\"}}\n\
         \x20   - {{name: WIRELENS_RESOURCE_METRICS, value: \"false\"}}\n\
         \x20   - {{name: NO_COLOR, value: \"1\"}}\n",
        port = nginx.port
    );
    let daemonset = render_daemonset(&values);
    let pod = daemonset
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    let dir = tempfile::tempdir().expect("temp dir");
    let run = podman_run(pod, dir.path());
    assert_eq!(
        run.image, reference,
        "the chart's default image is what deploy/image/build.sh builds"
    );
    let service_name = run
        .options
        .iter()
        .find_map(|o| o.strip_prefix("--env=OTEL_SERVICE_NAME="))
        .expect("the chart sets OTEL_SERVICE_NAME")
        .to_string();

    let before = bpf_objects();
    let mut options: Vec<&str> = run.options.iter().map(String::as_str).collect();
    options.push("--stop-timeout=30");
    let args: Vec<&str> = run.args.iter().map(String::as_str).collect();
    let container = Container::run(CONTAINER, &options, &reference, &args);
    wait_ready(&container);
    let mine: BTreeSet<_> = bpf_objects().difference(&before).copied().collect();
    for kind in ["prog", "link", "map"] {
        assert!(
            mine.iter().any(|(k, _)| *k == kind),
            "the agent in the container has no BPF {kind}: {mine:?}"
        );
    }

    let url = nginx.url("/index.html");
    let clients: Vec<_> = (0..REQUESTS)
        .map(|_| curl(&["-o", "/dev/null", "-A", USER_AGENT, &url]))
        .collect();
    let arrived = poll(SPANS_TIMEOUT, || {
        let spans = receiver.spans();
        spans_on(&spans, "SPAN_KIND_SERVER", nginx.port).len() >= REQUESTS
            && spans_on(&spans, "SPAN_KIND_CLIENT", nginx.port).len() >= REQUESTS
            && receiver
                .metrics()
                .iter()
                .any(|m| m.resource.get("service.name") == Some(&service_name.clone().into()))
    });
    let diagnostics = || {
        format!(
            "spans:\n{}\nagent log:\n{}",
            summarize_spans(&receiver.spans()),
            tail(&logs(CONTAINER), 20)
        )
    };
    assert!(arrived, "spans and the agent's metrics\n{}", diagnostics());

    // Stopped as the kubelet stops it: SIGTERM, then the agent flushes and exits 0.
    podman(&["stop", "--time", "30", CONTAINER]);
    assert_eq!(
        container.inspect("{{.State.ExitCode}}"),
        "0",
        "the agent's exit status\n{}",
        diagnostics()
    );
    let gone = poll(Duration::from_secs(1), || {
        let now = bpf_objects();
        mine.iter().all(|o| !now.contains(o))
    });
    let left: Vec<_> = mine.intersection(&bpf_objects()).copied().collect();
    assert!(gone && left.is_empty(), "BPF objects left: {left:?}");

    let spans = receiver.spans();
    let worker_pids: Vec<i64> = nginx.worker_pids().into_iter().map(i64::from).collect();
    let servers = spans_on(&spans, "SPAN_KIND_SERVER", nginx.port);
    assert_eq!(servers.len(), REQUESTS, "{}", diagnostics());
    for span in &servers {
        let ctx = format!("server span\n{}", diagnostics());
        assert_eq!(span.str_attr("http.request.method"), "GET", "{ctx}");
        assert_eq!(span.str_attr("url.path"), "/index.html", "{ctx}");
        assert_eq!(span.int_attr("http.response.status_code"), 200, "{ctx}");
        assert_eq!(span.str_attr("user_agent.original"), USER_AGENT, "{ctx}");
        assert_eq!(span.str_attr("client.address"), "127.0.0.1", "{ctx}");
        // The host's nginx, named through the host's /proc (CAP_SYS_PTRACE: its workers are
        // another user's), not the agent's container.
        assert_eq!(span.res_str("process.executable.name"), "nginx", "{ctx}");
        assert!(worker_pids.contains(&span.res_int("process.pid")), "{ctx}");
        assert_eq!(span.res_str("host.name"), host_name(), "{ctx}");
        assert!(!span.resource.contains_key("container.id"), "{ctx}");
    }
    let clients_seen = spans_on(&spans, "SPAN_KIND_CLIENT", nginx.port);
    assert_eq!(clients_seen.len(), REQUESTS, "{}", diagnostics());
    let curl_pids: BTreeSet<i64> = clients.iter().map(|c| i64::from(c.pid)).collect();
    let span_pids: BTreeSet<i64> = clients_seen
        .iter()
        .map(|s| s.res_int("process.pid"))
        .collect();
    assert_eq!(span_pids, curl_pids, "one client span per curl");
    for span in &clients_seen {
        let ctx = format!("client span\n{}", diagnostics());
        assert_eq!(span.str_attr("url.full"), url, "{ctx}");
        assert_eq!(span.int_attr("http.response.status_code"), 200, "{ctx}");
        assert_eq!(span.res_str("process.executable.name"), "curl", "{ctx}");
    }

    // The agent's own metrics carry the chart's OTEL_SERVICE_NAME and the node's name
    // (OTEL_RESOURCE_ATTRIBUTES=k8s.node.name=$(NODE_NAME)).
    let own: Vec<MetricPoint> = receiver
        .metrics()
        .into_iter()
        .filter(|m| m.resource.get("service.name") == Some(&service_name.clone().into()))
        .collect();
    assert!(!own.is_empty(), "no metrics of the agent itself");
    for point in &own {
        assert_eq!(
            point.resource.get("k8s.node.name"),
            Some(&host_name().into()),
            "{}: the agent's Resource",
            point.name
        );
    }
}
