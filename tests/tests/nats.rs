//! NATS end to end: nats-server on 127.0.0.1 driven by nats-py; the agent traces the server's
//! port and exports PRODUCER/CONSUMER/CLIENT spans for the client, SERVER spans for the broker,
//! and `messaging.client.operation.duration`, decoded by the independent receiver.
//!
//! Needs root and `scripts/setup.sh`; run one at a time (`-- --test-threads=1`).

use wirelens_tests::{
    Expect, PARENT_SPAN_ID, Scenario, TRACE_ID, check_spans, free_port, nats_server, python_script,
};

#[test]
fn nats_publish_subscribe_headers_and_errors() {
    let port = free_port();
    let server = nats_server(port);
    let port_arg = port.to_string();
    let scenario = Scenario::start("nats", &["--port", &port_arg]);
    let client = python_script("nats_client.py", &["nats", "--port", &port_arg]);
    let report = client.json();
    assert_eq!(
        report["received"].as_array().map(Vec::len),
        Some(3),
        "{report}"
    );
    assert_eq!(
        report["errors"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );

    // Client: 5 publishes (3 + HPUB + denied), 3 deliveries, the -ERR.
    let expected_client = 9;
    let done = scenario.finish_when(
        |spans| spans.len() >= 2 * expected_client,
        "messaging.client.operation.duration",
        6,
    );
    let publish = |dest| Expect {
        kind: "SPAN_KIND_PRODUCER",
        name: match dest {
            "orders.created" => "publish orders.created",
            "orders.audit" => "publish orders.audit",
            _ => "publish secret.plans",
        },
        operation: "publish",
        destination: Some(dest),
        error: None,
    };
    let process = Expect {
        kind: "SPAN_KIND_CONSUMER",
        name: "process orders.created",
        operation: "process",
        destination: Some("orders.created"),
        error: None,
    };
    let mut mine = done.spans_of(client.pid);
    // Deliveries may interleave with the publishes: compare in a stable order.
    mine.sort_by_key(|s| (s.kind.clone(), s.name.clone(), s.start_ns));
    let want = [
        Expect {
            kind: "SPAN_KIND_CLIENT",
            name: "error secret.plans",
            operation: "error",
            destination: Some("secret.plans"),
            error: Some("Permissions Violation for Publish"),
        },
        Expect { ..process },
        Expect { ..process },
        Expect { ..process },
        publish("orders.audit"),
        publish("orders.created"),
        publish("orders.created"),
        publish("orders.created"),
        publish("secret.plans"),
    ];
    check_spans(&done, &mine, &want, "nats", "nats-py");
    for span in &mine {
        assert_eq!(span.res_int("process.pid"), i64::from(client.pid));
        if span.name.starts_with("publish") || span.name.starts_with("process") {
            // "order-N" and "audited"; the denied publish carries "denied".
            let body = if span.name.ends_with("secret.plans") {
                6
            } else {
                7
            };
            assert_eq!(
                span.int_attr("messaging.message.body.size"),
                body,
                "{}",
                span.summary()
            );
            assert_eq!(span.str_attr("messaging.client.id"), "orders-app");
            assert_eq!(span.str_attr("server.address"), "127.0.0.1");
            assert_eq!(span.int_attr("server.port"), i64::from(port));
        }
    }
    let audit = mine
        .iter()
        .find(|s| s.name == "publish orders.audit")
        .expect("the HPUB span");
    assert_eq!(audit.trace_id, TRACE_ID, "{}", audit.summary());
    assert_eq!(audit.parent_span_id, PARENT_SPAN_ID, "{}", audit.summary());

    let broker = done.spans_of(server.pid());
    assert!(
        broker.iter().all(|s| s.is_server()),
        "{}",
        done.diagnostics()
    );
    assert_eq!(
        broker.len() + mine.len(),
        done.spans.len(),
        "{}: spans from other processes:\n{}",
        done.name,
        done.diagnostics()
    );
    let points = done.points("messaging.client.operation.duration");
    let total: u64 = points.iter().map(|p| p.count).sum();
    assert_eq!(total, 6, "{}", done.diagnostics());
    for p in &points {
        assert_eq!(p.attr_str("messaging.system.name"), Some("nats"));
    }
}
