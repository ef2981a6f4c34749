//! The agent's own export is not traced at the collector's end either, wherever the collector
//! is. Here the collector (the independent receiver) runs in a network namespace the test
//! creates, reached over a veth pair: not loopback, so no rule about local ports can match
//! it, and the agent traces the whole host (the receiver included). Only the agent's report of
//! its own sockets (by its pid, in the kernel) can tell the receiver's side of the export
//! apart from any other gRPC server.
//!
//! Needs root, `ip` (iproute2), `scripts/setup.sh` and a built agent; run one at a time.

use std::process::Command;
use std::time::Duration;

use wirelens_tests::{Agent, Otlp, Receiver, curl};

/// A network namespace joined to the host by a veth pair: host 10.203.77.1, namespace
/// 10.203.77.2. Removed (with the pair) on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn create() -> Self {
        let name = format!("wl-self-{}", std::process::id());
        let host_if = format!("wlh{}", std::process::id() % 100_000);
        let ns_if = format!("wln{}", std::process::id() % 100_000);
        let ns = Netns { name };
        for args in [
            vec!["netns", "add", &ns.name],
            vec![
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ],
            vec!["link", "set", &ns_if, "netns", &ns.name],
            vec!["addr", "add", "10.203.77.1/30", "dev", &host_if],
            vec!["link", "set", &host_if, "up"],
            vec![
                "-n",
                &ns.name,
                "addr",
                "add",
                "10.203.77.2/30",
                "dev",
                &ns_if,
            ],
            vec!["-n", &ns.name, "link", "set", &ns_if, "up"],
            vec!["-n", &ns.name, "link", "set", "lo", "up"],
        ] {
            let status = Command::new("ip").args(&args).status().expect("run ip");
            assert!(status.success(), "ip {args:?} failed");
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it the host's end.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn a_collector_in_another_network_namespace_is_not_traced() {
    let ns = Netns::create();
    let receiver = Receiver::start_in_netns(&ns.name, "10.203.77.2");
    let mut env = receiver.env(Otlp::Grpc);
    env.push(("OTEL_METRIC_EXPORT_INTERVAL".into(), "500".into()));
    env.push(("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // The whole host: no filter.
    let agent = Agent::start(&[], &env);
    // A few requests of a process that is traced, so that spans are exported too; curl
    // answers itself with a refused connection, so talk to the receiver's HTTP side instead:
    // a GET there is a real, traced HTTP exchange with a 405/404, and it is not the export.
    for _ in 0..3 {
        let _ = curl(&[
            "-s",
            "-o",
            "/dev/null",
            &format!("{}/", receiver.http_endpoint()),
        ]);
    }
    // At least ten metric exports and a few span exports.
    std::thread::sleep(Duration::from_secs(6));
    let output = agent.stop();
    output.assert_success();
    let spans = receiver.spans();
    let metrics = receiver.metrics();
    assert!(
        !metrics.is_empty(),
        "the export reached the receiver in the namespace; agent stderr:\n{}",
        output.stderr
    );
    // Other agents on this host (a soak, say) export to their own collectors: those are
    // ordinary traffic here. Ours is the one that reaches the namespace's address.
    let export_spans: Vec<String> = spans
        .iter()
        .filter(|s| {
            let attrs = format!("{:?}", s.attributes);
            attrs.contains("opentelemetry.proto.collector") && attrs.contains("10.203.77.")
        })
        .map(|s| format!("{} {} {:?}", s.kind, s.name, s.resource.get("process.pid")))
        .collect();
    assert!(
        export_spans.is_empty(),
        "the receiver's side of the agent's own export was traced: {export_spans:?}"
    );
    let curl_spans = spans
        .iter()
        .filter(|s| {
            s.resource
                .get("process.executable.name")
                .and_then(|v| v.as_str())
                == Some("curl")
        })
        .count();
    assert!(
        curl_spans >= 3,
        "other traffic to the same receiver is still traced ({curl_spans} curl spans)"
    );
    assert!(
        output.counter("self_traffic") > 0,
        "the exclusion was exercised: {:?}",
        output.counters()
    );
}
