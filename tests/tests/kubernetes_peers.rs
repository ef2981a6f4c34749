//! Peers named from the Kubernetes API, and what to trace chosen by pod labels and by
//! executable path.
//!
//! No API server installs here, so a stand-in (`tests/kubernetes/standin_api.py`) serves
//! recorded API objects (`agent/testdata/kubernetes/`): node `n1`'s pods, a pod of node `n2`
//! and a host-network pod (`pods-other-nodes.json`), and the cluster's Services
//! (`services.json`: a ClusterIP Service, a headless one, `kubernetes`). The pods of `n1` were
//! recorded from a real API; the other files are written in the shapes the Kubernetes 1.33 API
//! reference gives for `PodList` and `ServiceList` (the OpenAPI schema of `k8s-openapi`
//! reads them in the unit tests). Every watch kind gets a `410 Gone` first, then a watch
//! dropped mid-stream, then one held open.
//!
//! Peers: podman bridge networks with the cluster's subnets stand in for the pod and Service
//! networks. A busybox httpd holds the IP of the `api` pod of node `n2` (10.244.2.9), another
//! the cluster IP of Service `checkout` (10.96.0.50; in a cluster kube-proxy would translate it,
//! here the container holds it), and a client container holds the IP of pod `db-0`
//! (10.244.1.18). Shown: the client's spans carry `server.service.name` and
//! `wirelens.peer.k8s.*` of the pod and of the Service while `server.address` stays the IP; the
//! api server's span carries the client pod's `client.service.name`; the agent relisted pods
//! and Services after the 410 and watched again after the drop.
//!
//! Selection: `--k8s-pod-selector tier=front` with two client containers carrying the CRI
//! annotations of pods `web-…` (label `tier=front`) and `db-0` (no such label): only the first
//! one's requests are traced, exactly. `--exe /usr/bin/curl,/usr/bin/python3*`: curl (matched
//! in the kernel at its exec) and a Python server started before the agent (matched by the glob
//! in the start-up scan) are traced, busybox wget to the same server is not.
//!
//! Needs root and `scripts/setup.sh --tests` (podman, runc, busybox-static; podman's bridge
//! networks with Debian's containernetworking-plugins); run one at a time
//! (`-- --test-threads=1`).

use std::time::Duration;

use wirelens_tests::{
    ClientProcess, Container, Daemon, Network, Scenario, Span, StandIn, busybox_image,
    cri_annotations, curl, free_port, python, wait_until,
};

const IMAGE: &str = "localhost/wirelens-itest:1.0";
const WEB_UID: &str = "5f0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d";
const DB_UID: &str = "6a7b8c9d-1111-4222-8333-944455556666";
/// The `api` pod's IP (node n2) and the `checkout` Service's cluster IP.
const API_POD_IP: &str = "10.244.2.9";
const CHECKOUT_IP: &str = "10.96.0.50";
/// Pod `db-0`'s IP: the client container's.
const DB_POD_IP: &str = "10.244.1.18";

/// Waits until the stand-in has seen `n` watches whose request matches `what`.
fn wait_watches(api: &StandIn, what: impl Fn(&str) -> bool, n: usize, label: &str) {
    wait_until(label, Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_millis(100));
        let watches = api
            .requests()
            .iter()
            .filter(|r| r.contains("watch=true") && what(r))
            .count();
        (watches >= n).then_some(())
    });
}

fn is_node_pods(r: &str) -> bool {
    r.starts_with("/api/v1/pods") && r.contains("spec.nodeName")
}

fn is_cluster_pods(r: &str) -> bool {
    r.starts_with("/api/v1/pods") && !r.contains("spec.nodeName")
}

fn is_services(r: &str) -> bool {
    r.starts_with("/api/v1/services")
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes.get(key).and_then(|v| v.as_str())
}

#[test]
fn client_spans_name_peer_pods_and_services() {
    busybox_image(IMAGE);
    let api_port = free_port();
    let api = StandIn::start(api_port);
    let api_url = format!("http://127.0.0.1:{api_port}");
    let scenario = Scenario::start(
        "kubernetes_peers",
        &[
            "--port",
            "8080",
            "--port",
            "80",
            "--kube-api",
            &api_url,
            "--node-name",
            "n1",
        ],
    );
    // Each kind: a 410 (list again), a dropped watch (watch again), then held.
    wait_watches(
        &api,
        is_cluster_pods,
        3,
        "the third watch of the cluster's pods",
    );
    wait_watches(&api, is_services, 3, "the third watch of the Services");
    let requests = api.requests();
    for (kind, is) in [
        ("cluster pods", is_cluster_pods as fn(&str) -> bool),
        ("services", is_services),
    ] {
        let lists = requests
            .iter()
            .filter(|r| is(r) && !r.contains("watch=true"))
            .count();
        assert!(
            lists >= 2,
            "{kind} listed again after 410 Gone: {requests:#?}"
        );
    }
    assert!(
        requests
            .iter()
            .filter(|r| is_cluster_pods(r))
            .all(|r| r.contains("status.phase%21%3DSucceeded")),
        "only live pods asked for: {requests:#?}"
    );

    let pods_net = Network::create("wl-itest-pods", "10.244.0.0/16");
    let services_net = Network::create("wl-itest-services", "10.96.0.0/16");
    let _api_server = Container::run_on(
        "wl-itest-peer-api",
        &pods_net.name,
        &["--ip", API_POD_IP],
        IMAGE,
        &["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"],
    );
    let _checkout = Container::run_on(
        "wl-itest-peer-checkout",
        &services_net.name,
        &["--ip", CHECKOUT_IP],
        IMAGE,
        &["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"],
    );
    let script = format!(
        "sleep 1; /bin/busybox wget -q -O /dev/null http://{API_POD_IP}:8080/index.html && \
         /bin/busybox wget -q -O /dev/null http://{CHECKOUT_IP}/index.html"
    );
    let client = Container::run_on(
        "wl-itest-peer-client",
        &pods_net.name,
        &["--ip", DB_POD_IP],
        IMAGE,
        &["/bin/sh", "-c", &script],
    );
    client.wait_exit();
    assert_eq!(
        client.inspect("{{.State.ExitCode}}"),
        "0",
        "wget in the client"
    );

    let client_span = |spans: &[Span], ip: &str| {
        spans
            .iter()
            .any(|s| s.is_client() && attr(s, "server.address") == Some(ip))
    };
    let done = scenario.finish_when(
        |spans| {
            client_span(spans, API_POD_IP)
                && client_span(spans, CHECKOUT_IP)
                && spans
                    .iter()
                    .any(|s| s.is_server() && attr(s, "client.address") == Some(DB_POD_IP))
        },
        "http.client.request.duration",
        2,
    );
    let only = |pred: &dyn Fn(&Span) -> bool, what: &str| -> Span {
        let found: Vec<&Span> = done.spans.iter().filter(|s| pred(s)).collect();
        assert_eq!(found.len(), 1, "one {what}\n{}", done.diagnostics());
        found[0].clone()
    };

    let to_pod = only(
        &|s| s.is_client() && attr(s, "server.address") == Some(API_POD_IP),
        "client span to the api pod",
    );
    for (key, value) in [
        ("server.service.name", "api"),
        ("server.service.namespace", "shop"),
        ("wirelens.peer.k8s.pod.name", "api-5c6d7e8f9-q8w7e"),
        ("wirelens.peer.k8s.namespace.name", "shop"),
        ("wirelens.peer.k8s.node.name", "n2"),
        ("wirelens.peer.k8s.deployment.name", "api"),
        ("wirelens.peer.k8s.replicaset.name", "api-5c6d7e8f9"),
    ] {
        assert_eq!(
            attr(&to_pod, key),
            Some(value),
            "{key}\n{}",
            to_pod.summary()
        );
    }
    assert_eq!(to_pod.int_attr("server.port"), 8080);

    let to_service = only(
        &|s| s.is_client() && attr(s, "server.address") == Some(CHECKOUT_IP),
        "client span to the checkout Service",
    );
    for (key, value) in [
        ("server.service.name", "checkout"),
        ("server.service.namespace", "shop"),
        ("wirelens.peer.k8s.service.name", "checkout"),
        ("wirelens.peer.k8s.namespace.name", "shop"),
    ] {
        assert_eq!(
            attr(&to_service, key),
            Some(value),
            "{key}\n{}",
            to_service.summary()
        );
    }
    assert_eq!(attr(&to_service, "wirelens.peer.k8s.pod.name"), None);

    // The api server's side: its client is pod db-0 (service.name from its annotation).
    let served = only(
        &|s| s.is_server() && s.res_str("container.name") == "wl-itest-peer-api",
        "server span of the api pod",
    );
    assert_eq!(attr(&served, "client.address"), Some(DB_POD_IP));
    assert_eq!(attr(&served, "client.service.name"), Some("orders-db"));
    assert_eq!(attr(&served, "client.service.namespace"), Some("shop"));
    assert_eq!(attr(&served, "wirelens.peer.k8s.pod.name"), Some("db-0"));
    assert_eq!(
        attr(&served, "wirelens.peer.k8s.statefulset.name"),
        Some("db")
    );
    assert_eq!(attr(&served, "server.service.name"), None);
    // The checkout server is called through the host (its bridge address, 10.96.0.1, is
    // Service `kubernetes`'s cluster IP here): a cluster IP never names a client.
    let checkout_served = only(
        &|s| s.is_server() && s.res_str("container.name") == "wl-itest-peer-checkout",
        "server span of the checkout container",
    );
    assert_eq!(attr(&checkout_served, "client.service.name"), None);
}

#[test]
fn pod_label_selector_traces_only_matching_pods() {
    busybox_image(IMAGE);
    let api_port = free_port();
    let api = StandIn::start(api_port);
    let api_url = format!("http://127.0.0.1:{api_port}");
    let port = free_port();
    let port_arg = port.to_string();
    let scenario = Scenario::start(
        "kubernetes_pod_selector",
        &[
            "--port",
            &port_arg,
            "--kube-api",
            &api_url,
            "--node-name",
            "n1",
            "--k8s-peers",
            "false",
            "--k8s-pod-selector",
            "tier in (front,back),app!=db",
        ],
    );
    wait_watches(&api, is_node_pods, 1, "the agent to list this node's pods");

    let listen = format!("127.0.0.1:{port}");
    // The server is on the host network in a container of no pod: not selected.
    let _server = Container::run(
        "wl-itest-sel-server",
        &[],
        IMAGE,
        &["/bin/busybox", "httpd", "-f", "-p", &listen, "-h", "/www"],
    );
    wait_until("the server to listen", Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_millis(50));
        std::net::TcpStream::connect(&listen).ok()
    });
    // One wget, two requests: the container's first process, resolved with its container.
    let url = format!("http://{listen}/index.html");
    let script = format!("sleep 1; exec /bin/busybox wget -q -O /dev/null {url} {url}");
    let web = Container::run(
        "wl-itest-sel-web",
        &cri_annotations("web-7d9f8c-x2x5q", "shop", WEB_UID, "web", IMAGE)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        IMAGE,
        &["/bin/sh", "-c", &script],
    );
    let db = Container::run(
        "wl-itest-sel-db",
        &cri_annotations("db-0", "shop", DB_UID, "postgres", IMAGE)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        IMAGE,
        &["/bin/sh", "-c", &script],
    );
    web.wait_exit();
    db.wait_exit();
    for c in [&web, &db] {
        assert_eq!(c.inspect("{{.State.ExitCode}}"), "0", "wget in {}", c.name);
    }

    let done = scenario.finish_when(|spans| spans.len() >= 2, "http.client.request.duration", 2);
    // Exactly the web pod's two requests: not the db pod's, not the server's side.
    assert_eq!(done.spans.len(), 2, "{}", done.diagnostics());
    for span in &done.spans {
        assert!(span.is_client(), "{}", span.summary());
        assert_eq!(span.res_int("process.pid"), i64::from(web.pid));
        assert_eq!(span.res_str("k8s.pod.uid"), WEB_UID, "{}", span.summary());
        assert_eq!(span.res_str("k8s.container.name"), "web");
    }
}

#[test]
fn exe_selects_processes_by_executable_path() {
    let port = free_port();
    let port_arg = port.to_string();
    // Started before the agent: found by the start-up scan, through the glob.
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("index.html"), "hello\n").expect("index");
    let argv: Vec<String> = [
        python().display().to_string(),
        "-m".into(),
        "http.server".into(),
        "--bind".into(),
        "127.0.0.1".into(),
        port_arg.clone(),
    ]
    .into();
    let mut server = Daemon::spawn("python http.server", dir, &argv, &[]);
    server.wait_listening(std::net::Ipv4Addr::LOCALHOST, port);
    let python_real = std::fs::canonicalize(python()).expect("python path");
    assert!(
        python_real
            .to_string_lossy()
            .starts_with("/usr/bin/python3"),
        "the venv's python is Debian's: {}",
        python_real.display()
    );

    let scenario = Scenario::start(
        "exe_selector",
        &[
            "--port",
            &port_arg,
            "--exe",
            "/usr/bin/curl,/usr/bin/python3*",
        ],
    );
    let url = format!("http://127.0.0.1:{port}/index.html");
    let curls: Vec<u32> = (0..2)
        .map(|_| curl(&["-o", "/dev/null", &url]).pid)
        .collect();
    for _ in 0..2 {
        let argv: Vec<String> = ["/bin/busybox", "wget", "-q", "-O", "/dev/null", &url]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let run = ClientProcess::spawn(&argv, &[]).wait();
        assert!(run.status.success(), "busybox wget: {}", run.stderr);
    }

    let done = scenario.finish_when(|spans| spans.len() >= 6, "http.server.request.duration", 4);
    let clients: Vec<&Span> = done.spans.iter().filter(|s| s.is_client()).collect();
    let servers = done.spans_of(server.pid());
    assert_eq!(
        clients.len(),
        2,
        "curl's two, not wget's\n{}",
        done.diagnostics()
    );
    for c in &clients {
        assert_eq!(
            c.res_str("process.executable.name"),
            "curl",
            "{}",
            c.summary()
        );
        assert!(curls.contains(&(c.res_int("process.pid") as u32)));
    }
    assert_eq!(
        servers.len(),
        4,
        "the server's side of all four\n{}",
        done.diagnostics()
    );
    assert_eq!(done.spans.len(), 6, "{}", done.diagnostics());
    assert!(done.spans_of_exe("busybox").is_empty());
}
