//! Container and pod identity end to end: a busybox `httpd` server and a busybox `wget` client,
//! each in its own podman container (runc, host network, an image built here from Debian's
//! busybox-static with `podman import`), traced by the agent on the host; the spans' Resources
//! carry each container's id, name, runtime and image exactly as `podman inspect` reports them,
//! and the container process's own pid, executable and service name.
//!
//! No kubelet runs here: the CRI test stands in for it by giving podman containers the OCI
//! annotations the kubelet's runtimes write into the bundle's `config.json` (containerd's CRI
//! plugin: `io.kubernetes.cri.*` on the server; CRI-O: `io.kubernetes.pod.*` and
//! `io.kubernetes.container.name` on the client). The agent reads them from the same file it
//! reads on a node.
//!
//! With containerd (Debian's, driven by `ctr`, the image copied from podman), a container
//! given exactly the annotations containerd's CRI plugin writes for the kubelet is read from
//! containerd's own task bundle (`/run/containerd/io.containerd.runtime.v2.task/<ns>/<id>/`).
//!
//! A further test serves HTTPS from nginx in a container (nginx and its libraries copied into the
//! image, so its libssl is a file only the container's mount namespace names): the agent
//! probes that libssl through `/proc/<pid>/root` and reads the plaintext.
//!
//! Needs root and `scripts/setup.sh --tests` (podman, runc, busybox-static); run one at a time
//! (`-- --test-threads=1`).

use std::time::Duration;

use serde_json::{Value, json};
use wirelens_tests::{
    Container, Containerd, Done, Rootfs, Scenario, Span, busybox_image, curl, fixture, free_port,
    host_name, wait_until, write_certificate,
};

const IMAGE: &str = "localhost/wirelens-itest:1.0";
const IMAGE_NAME: &str = "localhost/wirelens-itest";
const IMAGE_TAG: &str = "1.0";

/// A busybox httpd on 127.0.0.1:`port` in container `name`, with extra podman arguments.
fn server(name: &str, port: u16, extra: &[&str]) -> Container {
    let listen = format!("127.0.0.1:{port}");
    let container = Container::run(
        name,
        extra,
        IMAGE,
        &["/bin/busybox", "httpd", "-f", "-p", &listen, "-h", "/www"],
    );
    wait_listening(&listen);
    container
}

fn wait_listening(address: &str) {
    wait_until(
        &format!("a container to listen on {address}"),
        Duration::from_secs(30),
        || {
            std::thread::sleep(Duration::from_millis(50));
            std::net::TcpStream::connect(address).ok()
        },
    );
}

/// A busybox wget of `/index.html` in container `name`: the container's first process sleeps
/// (so its pid can be read) and then execs wget, which keeps that pid.
fn client(name: &str, port: u16, extra: &[&str]) -> Container {
    let script = format!(
        "sleep 1; exec /bin/busybox wget -q -O /dev/null http://127.0.0.1:{port}/index.html"
    );
    let container = Container::run(name, extra, IMAGE, &["/bin/sh", "-c", &script]);
    container.wait_exit();
    assert_eq!(
        container.inspect("{{.State.ExitCode}}"),
        "0",
        "wget in {name} failed"
    );
    container
}

fn only<'a>(done: &'a Done, spans: Vec<&'a Span>, what: &str) -> &'a Span {
    assert_eq!(spans.len(), 1, "one {what} span\n{}", done.diagnostics());
    spans[0]
}

/// The Resource attributes of a busybox container's process, as podman reports them.
fn assert_container(span: &Span, container: &Container) {
    assert_image_container(span, container, IMAGE_NAME, "busybox");
}

/// The Resource attributes of a process of `container` (image `image_name:1.0`) running
/// executable `exe`, as podman reports them.
fn assert_image_container(span: &Span, container: &Container, image_name: &str, exe: &str) {
    assert_eq!(span.res_str("container.id"), container.id);
    assert_eq!(
        span.res_str("container.name"),
        container.inspect("{{.Name}}")
    );
    assert_eq!(span.res_str("container.name"), container.name);
    assert_eq!(span.res_str("container.runtime.name"), "podman");
    assert_eq!(
        format!(
            "{}:{}",
            span.res_str("container.image.name"),
            span.res("container.image.tags")[0].as_str().unwrap_or("")
        ),
        container.inspect("{{.ImageName}}")
    );
    assert_eq!(span.res_str("container.image.name"), image_name);
    assert_eq!(span.res("container.image.tags"), &json!([IMAGE_TAG]));
    assert_eq!(span.res_str("process.executable.name"), exe);
    assert_eq!(span.res_str("host.name"), host_name());
}

#[test]
fn podman_containers_are_the_spans_resources() {
    busybox_image(IMAGE);
    let port = free_port();
    let port_arg = port.to_string();
    // Command lines on (redacted; these hold no secret): they show which process was read.
    let scenario = Scenario::start(
        "containers_podman",
        &["--port", &port_arg, "--command-line", "redacted"],
    );
    let server = server("wl-itest-server", port, &[]);
    let client = client(
        "wl-itest-client",
        port,
        &["-e", "OTEL_SERVICE_NAME=shop-client"],
    );
    let done = scenario.finish_when(|spans| spans.len() >= 2, "http.server.request.duration", 1);

    let served = only(
        &done,
        done.spans.iter().filter(|s| s.is_server()).collect(),
        "server",
    );
    assert_eq!(served.name, "GET", "{}", done.diagnostics());
    assert_container(served, &server);
    assert_eq!(
        served.res_str("process.command_line"),
        format!("/bin/busybox httpd -f -p 127.0.0.1:{port} -h /www")
    );
    assert_eq!(served.res_str("service.name"), "busybox");
    for key in ["k8s.pod.name", "k8s.namespace.name", "service.instance.id"] {
        assert!(
            !served.resource.contains_key(key),
            "{key} on a plain container"
        );
    }

    let fetched = only(&done, done.spans_of(client.pid), "client");
    assert!(fetched.is_client(), "{}", done.diagnostics());
    assert_container(fetched, &client);
    assert_eq!(fetched.res_int("process.pid"), i64::from(client.pid));
    assert_eq!(
        fetched.res_str("process.command_line"),
        format!("/bin/busybox wget -q -O /dev/null http://127.0.0.1:{port}/index.html")
    );
    // Its own OTEL_SERVICE_NAME, read from the container process's environment.
    assert_eq!(fetched.res_str("service.name"), "shop-client");
    assert_ne!(
        served.res_str("container.id"),
        fetched.res_str("container.id")
    );
}

#[test]
fn cri_annotations_give_pod_identity() {
    busybox_image(IMAGE);
    let port = free_port();
    let port_arg = port.to_string();
    let sandbox_id = "5a".repeat(32);
    let server_uid = "0f4d2b9c-7a1e-4c55-8d3b-2e6f9a1c7b40";
    let client_uid = "9b1e6c3a-2d4f-4e8a-b7c5-1a3d5f7e9c20";
    // What containerd's CRI plugin writes for the kubelet.
    let server_annotations = [
        "io.kubernetes.cri.container-type=container".to_string(),
        "io.kubernetes.cri.container-name=web".into(),
        format!("io.kubernetes.cri.sandbox-id={sandbox_id}"),
        "io.kubernetes.cri.sandbox-name=web-7d9f8c-x2x5q".into(),
        "io.kubernetes.cri.sandbox-namespace=shop".into(),
        format!("io.kubernetes.cri.sandbox-uid={server_uid}"),
        format!("io.kubernetes.cri.image-name={IMAGE}"),
    ];
    // What CRI-O writes.
    let client_annotations = [
        "io.kubernetes.pod.name=loadgen-0".to_string(),
        "io.kubernetes.pod.namespace=tools".into(),
        format!("io.kubernetes.pod.uid={client_uid}"),
        "io.kubernetes.container.name=fetch".into(),
    ];
    let as_args = |annotations: &[String]| -> Vec<String> {
        annotations
            .iter()
            .flat_map(|a| ["--annotation".to_string(), a.clone()])
            .collect()
    };
    let server_args = as_args(&server_annotations);
    let client_args = as_args(&client_annotations);
    let server_args: Vec<&str> = server_args.iter().map(String::as_str).collect();
    let client_args: Vec<&str> = client_args.iter().map(String::as_str).collect();

    let scenario = Scenario::start("containers_cri", &["--port", &port_arg]);
    let server = server("wl-itest-web", port, &server_args);
    let client = client("wl-itest-fetch", port, &client_args);
    let done = scenario.finish_when(|spans| spans.len() >= 2, "http.server.request.duration", 1);

    let served = only(
        &done,
        done.spans.iter().filter(|s| s.is_server()).collect(),
        "server",
    );
    assert_container(served, &server);
    let pod = |span: &Span| -> Value {
        json!({
            "k8s.pod.name": span.res_str("k8s.pod.name"),
            "k8s.pod.uid": span.res_str("k8s.pod.uid"),
            "k8s.namespace.name": span.res_str("k8s.namespace.name"),
            "k8s.container.name": span.res_str("k8s.container.name"),
            "service.name": span.res_str("service.name"),
            "service.namespace": span.res_str("service.namespace"),
            "service.instance.id": span.res_str("service.instance.id"),
        })
    };
    assert_eq!(
        pod(served),
        json!({
            "k8s.pod.name": "web-7d9f8c-x2x5q",
            "k8s.pod.uid": server_uid,
            "k8s.namespace.name": "shop",
            "k8s.container.name": "web",
            // No OTEL_SERVICE_NAME in the container: the Kubernetes container name.
            "service.name": "web",
            "service.namespace": "shop",
            "service.instance.id": "shop.web-7d9f8c-x2x5q.web",
        })
    );

    let fetched = only(&done, done.spans_of(client.pid), "client");
    assert_container(fetched, &client);
    assert_eq!(
        pod(fetched),
        json!({
            "k8s.pod.name": "loadgen-0",
            "k8s.pod.uid": client_uid,
            "k8s.namespace.name": "tools",
            "k8s.container.name": "fetch",
            "service.name": "fetch",
            "service.namespace": "tools",
            "service.instance.id": "tools.loadgen-0.fetch",
        })
    );
}

#[test]
fn tls_server_in_a_container_is_read_through_its_own_libssl() {
    const NGINX_IMAGE: &str = "localhost/wirelens-itest-nginx:1.0";
    const UA: &str = "wirelens-container-tls";
    let port = free_port();
    let tls_port = free_port();
    let rootfs = Rootfs::new();
    rootfs.binary("/usr/sbin/nginx");
    rootfs.write(
        "/etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
    );
    rootfs.write("/etc/group", "root:x:0:\nnogroup:x:65534:\n");
    let conf = std::fs::read_to_string(fixture("nginx/nginx.conf.in"))
        .expect("nginx template")
        .replace("@PREFIX@", "/srv")
        .replace("@TLS_PORT@", &tls_port.to_string())
        .replace("@PORT@", &port.to_string());
    rootfs.write("/srv/nginx.conf", &conf);
    rootfs.write("/srv/html/index.html", "hello over TLS from a container\n");
    rootfs.write("/srv/tmp/.keep", "");
    write_certificate(&rootfs.root().join("srv"));
    rootfs.import(NGINX_IMAGE);

    let tls_arg = tls_port.to_string();
    let scenario = Scenario::start("containers_tls", &["--port", &tls_arg]);
    let server = Container::run(
        "wl-itest-nginx",
        &[],
        NGINX_IMAGE,
        &[
            "/usr/sbin/nginx",
            "-p",
            "/srv",
            "-c",
            "/srv/nginx.conf",
            "-e",
            "/srv/error.log",
            "-g",
            "daemon off;",
        ],
    );
    wait_listening(&format!("127.0.0.1:{tls_port}"));
    // The container's libssl is probed after nginx's exec; a request before that would be
    // ciphertext only.
    let probed = format!("pid={}", server.pid);
    wait_until(
        "the agent to probe the container's libssl",
        Duration::from_secs(30),
        || {
            std::thread::sleep(Duration::from_millis(100));
            scenario
                .agent
                .stderr()
                .lines()
                .any(|l| l.contains("probing OpenSSL") && l.contains(&probed))
                .then_some(())
        },
    );
    let worker: u32 = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", server.pid))
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the nginx worker's pid");
    let url = format!("https://127.0.0.1:{tls_port}/index.html");
    let run = curl(&["-k", "--http1.1", "-A", UA, "-o", "/dev/null", &url]);
    let done = scenario.finish_when(|spans| spans.len() >= 2, "http.server.request.duration", 1);

    let served = only(
        &done,
        done.spans.iter().filter(|s| s.is_server()).collect(),
        "server",
    );
    assert_eq!(served.str_attr("url.path"), "/index.html");
    assert_eq!(served.str_attr("url.scheme"), "https");
    assert_eq!(served.int_attr("http.response.status_code"), 200);
    assert_eq!(served.str_attr("user_agent.original"), UA);
    assert_image_container(served, &server, "localhost/wirelens-itest-nginx", "nginx");
    assert_eq!(served.res_int("process.pid"), i64::from(worker));

    // The client on the host: its own Resource, no container.
    let fetched = only(&done, done.spans_of(run.pid), "client");
    assert_eq!(fetched.str_attr("url.full"), url);
    assert_eq!(fetched.int_attr("http.response.status_code"), 200);
    assert_eq!(fetched.res_str("process.executable.name"), "curl");
    for key in ["container.id", "container.name", "k8s.pod.name"] {
        assert!(
            !fetched.resource.contains_key(key),
            "{key} on a host process"
        );
    }
}

#[test]
fn containerd_cri_container_gives_pod_identity() {
    busybox_image(IMAGE);
    let containerd = Containerd::start("wirelens-itest");
    containerd.import_from_podman(IMAGE);
    let port = free_port();
    let port_arg = port.to_string();
    // containerd ids of CRI containers are 64 hex digits.
    let id = format!("{:064x}", u128::from(port) * 0x9e37_79b9_7f4a_7c15);
    let uid = "3c2b1a09-8f7e-4d6c-9b5a-1f2e3d4c5b6a";
    let annotations = [
        "io.kubernetes.cri.container-type=container".to_string(),
        "io.kubernetes.cri.container-name=api".into(),
        format!("io.kubernetes.cri.sandbox-id={}", "7c".repeat(32)),
        "io.kubernetes.cri.sandbox-name=api-5b8d6c7f9-qwert".into(),
        "io.kubernetes.cri.sandbox-namespace=payments".into(),
        format!("io.kubernetes.cri.sandbox-uid={uid}"),
        format!("io.kubernetes.cri.image-name={IMAGE}"),
    ];
    let scenario = Scenario::start("containers_containerd", &["--port", &port_arg]);
    let listen = format!("127.0.0.1:{port}");
    let task = containerd.run(
        &id,
        &annotations,
        IMAGE,
        &["/bin/busybox", "httpd", "-f", "-p", &listen, "-h", "/www"],
    );
    wait_listening(&listen);
    let run = curl(&["-o", "/dev/null", &format!("http://{listen}/index.html")]);
    let done = scenario.finish_when(|spans| spans.len() >= 2, "http.server.request.duration", 1);

    let served = only(
        &done,
        done.spans.iter().filter(|s| s.is_server()).collect(),
        "server",
    );
    let listed = containerd.ctr(&["tasks", "ls"]);
    assert!(
        listed.contains(&format!("{} ", task.id)),
        "ctr lists {listed}"
    );
    assert_eq!(served.res_str("container.id"), task.id);
    assert_eq!(served.res_str("container.runtime.name"), "containerd");
    // A CRI container's name, as crictl shows it, is its Kubernetes container name.
    assert_eq!(served.res_str("container.name"), "api");
    assert_eq!(served.res_str("container.image.name"), IMAGE_NAME);
    assert_eq!(served.res("container.image.tags"), &json!([IMAGE_TAG]));
    assert_eq!(served.res_str("process.executable.name"), "busybox");
    assert_eq!(served.res_str("k8s.pod.name"), "api-5b8d6c7f9-qwert");
    assert_eq!(served.res_str("k8s.pod.uid"), uid);
    assert_eq!(served.res_str("k8s.namespace.name"), "payments");
    assert_eq!(served.res_str("k8s.container.name"), "api");
    assert_eq!(served.res_str("service.name"), "api");
    assert_eq!(served.res_str("service.namespace"), "payments");
    assert_eq!(
        served.res_str("service.instance.id"),
        "payments.api-5b8d6c7f9-qwert.api"
    );
    let fetched = only(&done, done.spans_of(run.pid), "client");
    assert!(!fetched.resource.contains_key("container.id"));
}

#[test]
fn only_selected_containers_are_traced() {
    busybox_image(IMAGE);
    // Three pods' containers (CRI annotations as containerd writes them), one selected by
    // Kubernetes container name and namespace together.
    let pods = [
        ("wl-itest-shop-web", "web", "shop"),
        ("wl-itest-dev-web", "web", "dev"),
        ("wl-itest-shop-api", "api", "shop"),
    ];
    let ports: Vec<u16> = pods.iter().map(|_| free_port()).collect();
    let port_args: Vec<String> = ports.iter().map(u16::to_string).collect();
    let mut args = vec!["--container", "web", "--k8s-namespace", "shop"];
    for p in &port_args {
        args.extend(["--port", p.as_str()]);
    }
    let scenario = Scenario::start("containers_selected", &args);
    let servers: Vec<Container> = pods
        .iter()
        .zip(&ports)
        .map(|(&(name, container, namespace), &port)| {
            let annotations = [
                format!("io.kubernetes.cri.container-name={container}"),
                format!("io.kubernetes.cri.sandbox-name={container}-0"),
                format!("io.kubernetes.cri.sandbox-namespace={namespace}"),
            ];
            let extra: Vec<&str> = annotations
                .iter()
                .flat_map(|a| ["--annotation", a.as_str()])
                .collect();
            server(name, port, &extra)
        })
        .collect();
    for port in &ports {
        curl(&[
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{port}/index.html"),
        ]);
    }
    let done = scenario.finish_when(|spans| !spans.is_empty(), "http.server.request.duration", 1);
    // One server span, in the selected container; the other two containers and the host's
    // curl were filtered out in the kernel.
    let traced = only(&done, done.spans.iter().collect(), "traced");
    assert!(traced.is_server(), "{}", done.diagnostics());
    assert_eq!(traced.res_str("container.id"), servers[0].id);
    assert_eq!(traced.res_str("k8s.namespace.name"), "shop");
    assert_eq!(traced.res_str("k8s.container.name"), "web");
    assert!(
        done.output.stderr.contains("tracing selected container"),
        "{}",
        done.diagnostics()
    );
}
