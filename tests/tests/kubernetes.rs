//! Kubernetes API metadata end to end. No API server installs here, so a stand-in
//! (`tests/kubernetes/standin_api.py`, Python's http.server) serves recorded real API objects
//! (`agent/testdata/kubernetes/`): the pod list of node `n1`, watch streams of it (first a
//! `410 Gone`, then a watch dropped mid-stream, then one held open), a ReplicaSet and a Job.
//! The agent runs with `--kube-api http://127.0.0.1:PORT --node-name n1`; processes run in
//! podman containers carrying the CRI annotations of pods in that list (as in
//! `containers.rs`), so the agent finds each pod's uid the way it does on a node.
//!
//! Shown: the watch asks for this node's pods only and survives the 410 (lists again) and the
//! drop (watches again); the server's spans carry `k8s.node.name`, the ReplicaSet and the
//! Deployment it walked to, and a chosen label; the client's `service.name` comes from its
//! pod's `resource.opentelemetry.io/service.name` annotation; once the API is killed, spans of
//! a pod it never described still go out with what the CRI annotations said, and
//! `wirelens.k8s.metadata_misses` / `wirelens.k8s.api_failures` count the gap.
//!
//! Needs root and `scripts/setup.sh --tests` (podman, runc, busybox-static); run one at a time
//! (`-- --test-threads=1`).

use std::time::Duration;

use wirelens_tests::{
    Container, Scenario, Span, StandIn, busybox_image, cri_annotations, free_port, sum_total,
    wait_until,
};

const IMAGE: &str = "localhost/wirelens-itest:1.0";
const WEB_UID: &str = "5f0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d";
const DB_UID: &str = "6a7b8c9d-1111-4222-8333-944455556666";
/// `pod-debug.json`: a pod the stand-in never lists.
const DEBUG_UID: &str = "8d9e0f1a-3333-4444-8555-b66677778888";

fn run(name: &str, annotations: &[String], command: &[&str]) -> Container {
    let extra: Vec<&str> = annotations.iter().map(String::as_str).collect();
    Container::run(name, &extra, IMAGE, command)
}

/// A busybox wget of the server from a container of `pod`, waited for.
fn fetch(name: &str, annotations: &[String], port: u16) -> Container {
    let script = format!(
        "sleep 1; exec /bin/busybox wget -q -O /dev/null http://127.0.0.1:{port}/index.html"
    );
    let container = run(name, annotations, &["/bin/sh", "-c", &script]);
    container.wait_exit();
    assert_eq!(
        container.inspect("{{.State.ExitCode}}"),
        "0",
        "wget in {name}"
    );
    container
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.resource.get(key).and_then(|v| v.as_str())
}

#[test]
fn api_metadata_enriches_pods_and_its_absence_is_counted() {
    busybox_image(IMAGE);
    let api_port = free_port();
    let mut api = StandIn::start(api_port);
    let port = free_port();
    let api_url = format!("http://127.0.0.1:{api_port}");
    let port_arg = port.to_string();
    let scenario = Scenario::start(
        "kubernetes_api",
        &[
            "--port",
            &port_arg,
            "--kube-api",
            &api_url,
            "--node-name",
            "n1",
            "--k8s-pod-labels",
            "tier",
            // The peer watch (kubernetes_peers.rs) would add cluster-wide requests.
            "--k8s-peers",
            "false",
        ],
    );
    // The 410 makes it list again, the drop makes it watch again: the third watch is held.
    wait_until(
        "the agent's third watch of the stand-in",
        Duration::from_secs(60),
        || {
            std::thread::sleep(Duration::from_millis(200));
            let watches = api
                .requests()
                .iter()
                .filter(|r| r.contains("watch=true"))
                .count();
            (watches >= 3).then_some(())
        },
    );
    let requests = api.requests();
    let lists: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("/api/v1/pods") && !r.contains("watch=true"))
        .collect();
    assert!(
        lists.len() >= 2,
        "listed again after 410 Gone: {requests:#?}"
    );
    for r in requests.iter().filter(|r| r.starts_with("/api/v1/pods")) {
        assert!(
            r.contains("fieldSelector=spec.nodeName%3Dn1"),
            "only this node's pods: {r}"
        );
    }
    assert!(
        requests
            .iter()
            .any(|r| r == "/apis/apps/v1/namespaces/shop/replicasets/web-7d9f8c"),
        "the ReplicaSet was fetched: {requests:#?}"
    );

    let listen = format!("127.0.0.1:{port}");
    let _server = run(
        "wl-itest-k8s-web",
        &cri_annotations("web-7d9f8c-x2x5q", "shop", WEB_UID, "httpd", IMAGE),
        &["/bin/busybox", "httpd", "-f", "-p", &listen, "-h", "/www"],
    );
    wait_until("the server to listen", Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_millis(50));
        std::net::TcpStream::connect(&listen).ok()
    });
    let db = fetch(
        "wl-itest-k8s-db",
        &cri_annotations("db-0", "shop", DB_UID, "postgres", IMAGE),
        port,
    );

    // The API goes down; a pod it never described starts.
    api.kill();
    let debug = fetch(
        "wl-itest-k8s-debug",
        &cri_annotations("debug", "default", DEBUG_UID, "shell", IMAGE),
        port,
    );
    let done = scenario.finish_when(|spans| spans.len() >= 4, "http.server.request.duration", 2);

    let servers: Vec<&Span> = done.spans.iter().filter(|s| s.is_server()).collect();
    assert_eq!(servers.len(), 2, "two server spans\n{}", done.diagnostics());
    for served in &servers {
        assert_eq!(attr(served, "k8s.pod.uid"), Some(WEB_UID));
        assert_eq!(attr(served, "k8s.node.name"), Some("n1"));
        assert_eq!(attr(served, "k8s.replicaset.name"), Some("web-7d9f8c"));
        assert_eq!(attr(served, "k8s.deployment.name"), Some("web"));
        assert_eq!(attr(served, "k8s.pod.label.tier"), Some("front"));
        // No annotation, no app.kubernetes.io/name label: the top owner, not the container.
        assert_eq!(attr(served, "service.name"), Some("web"));
        assert_eq!(attr(served, "service.namespace"), Some("shop"));
        assert_eq!(
            attr(served, "service.instance.id"),
            Some("shop.web-7d9f8c-x2x5q.httpd")
        );
    }

    let db_spans = done.spans_of(db.pid);
    assert_eq!(
        db_spans.len(),
        1,
        "one db client span\n{}",
        done.diagnostics()
    );
    let c = db_spans[0];
    assert_eq!(attr(c, "k8s.statefulset.name"), Some("db"));
    assert_eq!(attr(c, "k8s.node.name"), Some("n1"));
    assert_eq!(attr(c, "service.name"), Some("orders-db"));
    assert_eq!(attr(c, "k8s.container.name"), Some("postgres"));

    let debug_spans = done.spans_of(debug.pid);
    assert_eq!(
        debug_spans.len(),
        1,
        "one debug client span\n{}",
        done.diagnostics()
    );
    let d = debug_spans[0];
    assert_eq!(attr(d, "k8s.pod.uid"), Some(DEBUG_UID));
    assert_eq!(attr(d, "k8s.pod.name"), Some("debug"));
    assert_eq!(attr(d, "k8s.node.name"), None, "the API never described it");
    assert_eq!(attr(d, "service.name"), Some("shell"));

    let misses = sum_total(&done.metrics, "wirelens.k8s.metadata_misses");
    let failures = sum_total(&done.metrics, "wirelens.k8s.api_failures");
    assert!(
        misses >= 1.0,
        "metadata_misses {misses}\n{}",
        done.diagnostics()
    );
    // The 410 Gone, and at least one refused call once the API is down.
    assert!(
        failures >= 2.0,
        "api_failures {failures}\n{}",
        done.diagnostics()
    );
}
