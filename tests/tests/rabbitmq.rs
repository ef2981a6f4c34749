//! RabbitMQ end to end: Debian's rabbitmq-server on 127.0.0.1 driven by pika
//! (`fixtures/clients/amqp_client.py`) and by amqp-tools (`amqp-publish`, `amqp-get`, the C
//! librabbitmq); the agent traces the broker's port and exports PRODUCER (Basic.Publish),
//! CONSUMER (Basic.Deliver, Basic.Get) and CLIENT (handshake, synchronous methods matched with
//! their -Ok, acks, broker closes) spans for the clients, the same exchanges as SERVER spans for
//! the broker, and `messaging.client.operation.duration`, decoded by the independent receiver.
//!
//! Needs root and `scripts/setup.sh`; run one at a time (`-- --test-threads=1`).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use wirelens_tests::{
    Done, Expect, PARENT_SPAN_ID, Scenario, Span, TRACE_ID, check_span, exe_name, free_port,
    python_script, rabbitmq_server, run_client,
};

/// The context amqp-publish puts in its message's headers (the pika client's is the same).
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const NO_QUEUE: &str = "NOT_FOUND - no queue 'orders.missing' in vhost '/'";
const NO_EXCHANGE: &str = "NOT_FOUND - no exchange 'nowhere' in vhost '/'";
const CONSUMER_TAG: &str = "orders-consumer";

/// One expected span as its client sees it (the broker's is the same exchange, SERVER).
#[derive(Clone, Copy, Debug)]
struct Want {
    kind: &'static str,
    name: &'static str,
    operation: &'static str,
    destination: Option<&'static str>,
    routing_key: Option<&'static str>,
    client_id: Option<&'static str>,
    body_size: Option<i64>,
    /// `messaging.batch.message_count` (only a Get-Empty has one among the checked spans).
    batch: Option<i64>,
    /// error.type and the status message.
    error: Option<(&'static str, &'static str)>,
}

const CLIENT: Want = Want {
    kind: "SPAN_KIND_CLIENT",
    name: "",
    operation: "",
    destination: None,
    routing_key: None,
    client_id: None,
    body_size: None,
    batch: None,
    error: None,
};

/// A CLIENT span with no destination, named after its operation.
const fn plain(name: &'static str) -> Want {
    Want {
        name,
        operation: name,
        ..CLIENT
    }
}

const fn publish(name: &'static str, exchange: &'static str, body: i64) -> Want {
    Want {
        kind: "SPAN_KIND_PRODUCER",
        name,
        operation: "publish",
        destination: Some(exchange),
        routing_key: Some("created"),
        body_size: Some(body),
        ..CLIENT
    }
}

const fn receive(body: i64) -> Want {
    Want {
        kind: "SPAN_KIND_CONSUMER",
        name: "receive orders.created",
        operation: "receive",
        destination: Some("orders.created"),
        routing_key: Some("created"),
        body_size: Some(body),
        ..CLIENT
    }
}

/// The pika client's spans, by name then start time.
fn pika_spans() -> Vec<Want> {
    let process = Want {
        kind: "SPAN_KIND_CONSUMER",
        name: "process orders:created",
        operation: "process",
        destination: Some("orders:created"),
        routing_key: Some("created"),
        client_id: Some(CONSUMER_TAG),
        body_size: Some(7),
        ..CLIENT
    };
    let order = publish("publish orders:created", "orders:created", 7);
    vec![
        plain("ack"),
        plain("ack"),
        plain("ack"),
        Want {
            client_id: Some(CONSUMER_TAG),
            ..plain("basic.cancel")
        },
        Want {
            name: "basic.consume orders.created",
            operation: "basic.consume",
            destination: Some("orders.created"),
            client_id: Some(CONSUMER_TAG),
            ..CLIENT
        },
        // The broker's close for the publish to a missing exchange (it answers no method),
        // then the client's own close of channel 1.
        Want {
            error: Some(("404", NO_EXCHANGE)),
            ..plain("channel.close")
        },
        plain("channel.close"),
        plain("channel.open"),
        plain("channel.open"),
        plain("channel.open"),
        plain("connect"),
        plain("connection.close"),
        Want {
            name: "exchange.declare orders",
            operation: "exchange.declare",
            destination: Some("orders"),
            ..CLIENT
        },
        process,
        process,
        process,
        publish("publish nowhere:created", "nowhere:created", 4),
        order,
        order,
        order,
        order,
        Want {
            name: "queue.bind orders.created:created",
            operation: "queue.bind",
            destination: Some("orders.created:created"),
            routing_key: Some("created"),
            ..CLIENT
        },
        Want {
            name: "queue.declare orders.created",
            operation: "queue.declare",
            destination: Some("orders.created"),
            ..CLIENT
        },
        Want {
            name: "queue.declare orders.missing",
            operation: "queue.declare",
            destination: Some("orders.missing"),
            error: Some(("404", NO_QUEUE)),
            ..CLIENT
        },
        receive(7),
        // Get-Empty: no message, a count of 0.
        Want {
            routing_key: None,
            body_size: None,
            batch: Some(0),
            ..receive(0)
        },
    ]
}

/// What every amqp-tools run does around its one operation, by name.
fn tool_spans(operation: Want) -> Vec<Want> {
    let mut spans = vec![
        plain("channel.close"),
        plain("channel.open"),
        plain("connect"),
        plain("connection.close"),
        operation,
    ];
    spans.sort_by_key(|w| w.name);
    spans
}

/// Spans in a stable order: by name, then start time.
fn by_name(spans: Vec<&Span>) -> Vec<&Span> {
    let mut spans = spans;
    spans.sort_by(|a, b| (&a.name, a.start_ns).cmp(&(&b.name, b.start_ns)));
    spans
}

/// Asserts `spans` (of process `pid`, executable `exe`) against `want`, one for one; `server`
/// for the broker's side (every kind SERVER).
fn check(
    done: &Done,
    spans: &[&Span],
    want: &[Want],
    who: &str,
    (pid, exe): (u32, &str),
    port: u16,
    server: bool,
) {
    assert_eq!(
        spans.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        want.iter().map(|w| w.name).collect::<Vec<_>>(),
        "{}: {who}: span names\n{}",
        done.name,
        done.diagnostics()
    );
    for (span, w) in spans.iter().zip(want) {
        let context = || format!("{}: {who}: {}", done.name, span.summary());
        let expect = Expect {
            kind: if server { "SPAN_KIND_SERVER" } else { w.kind },
            name: w.name,
            operation: w.operation,
            destination: w.destination,
            error: w.error.map(|(ty, _)| ty),
        };
        check_span(done, span, &expect, "rabbitmq");
        let get = |key: &str| span.attributes.get(key);
        assert_eq!(
            get("rabbitmq.destination.routing_key").and_then(Value::as_str),
            w.routing_key,
            "{}",
            context()
        );
        assert_eq!(
            get("messaging.client.id").and_then(Value::as_str),
            w.client_id,
            "{}",
            context()
        );
        assert_eq!(
            get("messaging.message.body.size").and_then(Value::as_i64),
            w.body_size,
            "{}",
            context()
        );
        if let Some(batch) = w.batch {
            assert_eq!(
                span.int_attr("messaging.batch.message_count"),
                batch,
                "{}",
                context()
            );
        }
        if let Some((_, message)) = w.error {
            assert_eq!(span.status_message, message, "{}", context());
        }
        assert_eq!(span.res_int("process.pid"), i64::from(pid), "{}", context());
        assert_eq!(
            span.res_str("process.executable.name"),
            exe,
            "{}",
            context()
        );
        assert_eq!(
            span.str_attr("server.address"),
            "127.0.0.1",
            "{}",
            context()
        );
        assert_eq!(
            span.int_attr("server.port"),
            i64::from(port),
            "{}",
            context()
        );
        assert_eq!(span.str_attr("network.transport"), "tcp", "{}", context());
    }
}

/// Whether the span's parent is the traceparent the messages carry.
fn has_message_parent(span: &Span) -> bool {
    span.trace_id == TRACE_ID && span.parent_span_id == PARENT_SPAN_ID
}

/// Asserts exactly the spans named in `want` (name, count) have the message's context as
/// parent, and every other span is a root of another trace.
fn check_parents(done: &Done, spans: &[&Span], want: &[(&str, usize)], who: &str) {
    let mut got: BTreeMap<&str, usize> = BTreeMap::new();
    for span in spans.iter().filter(|s| has_message_parent(s)) {
        *got.entry(span.name.as_str()).or_default() += 1;
    }
    let want: BTreeMap<&str, usize> = want.iter().copied().collect();
    assert_eq!(
        got,
        want,
        "{}: {who}: spans whose parent is the message's context\n{}",
        done.name,
        done.diagnostics()
    );
    // The rest: roots, or (the broker's side) children of the traced client's span of the
    // same exchange, which the agent connects; never in the message's trace.
    for span in spans.iter().filter(|s| !has_message_parent(s)) {
        assert_ne!(span.trace_id, TRACE_ID, "{}", span.summary());
        let parent_ok = span.parent_span_id.is_empty()
            || done
                .spans
                .iter()
                .any(|p| p.span_id == span.parent_span_id && p.trace_id == span.trace_id);
        assert!(parent_ok, "{}", span.summary());
    }
}

#[test]
fn rabbitmq_pika_and_amqp_tools() {
    let port = free_port();
    let server = rabbitmq_server(port);
    let broker = (server.pid(), exe_name(server.pid()));
    let port_arg = port.to_string();
    let scenario = Scenario::start("rabbitmq", &["--port", &port_arg]);

    let client = python_script("amqp_client.py", &["--port", &port_arg]);
    let report = client.json();
    assert_eq!(
        report["consumed"],
        serde_json::json!(["order-0", "order-1", "order-2"]),
        "{report}"
    );
    assert_eq!(
        report["got"],
        serde_json::json!(["order-3", null]),
        "{report}"
    );
    assert_eq!(
        report["errors"],
        serde_json::json!([[404, NO_QUEUE], [404, NO_EXCHANGE]]),
        "{report}"
    );
    let connection = ["--server", "127.0.0.1", "--port", &port_arg];
    let mut argv = vec!["/usr/bin/amqp-publish"];
    argv.extend(connection);
    let header = format!("traceparent: {TRACEPARENT}");
    argv.extend([
        "-e",
        "orders",
        "-r",
        "created",
        "-H",
        &header,
        "-b",
        "tool-order",
    ]);
    let tool_publish = run_client(&argv, true);
    let mut argv = vec!["/usr/bin/amqp-get"];
    argv.extend(connection);
    argv.extend(["-q", "orders.created"]);
    let tool_get = run_client(&argv, true);
    assert_eq!(tool_get.stdout, "tool-order", "{}", tool_get.stderr);

    let pika = pika_spans();
    let tool_publish_want = tool_spans(publish("publish orders:created", "orders:created", 10));
    let tool_get_want = tool_spans(receive(10));
    let mut broker_want: Vec<Want> = [&pika, &tool_publish_want, &tool_get_want]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    // Stable: the three connections follow one another, so within a name it is start order.
    broker_want.sort_by_key(|w| w.name);
    let clients = pika.len() + tool_publish_want.len() + tool_get_want.len();
    // Every client operation but the deliveries (`process`) is measured.
    let measured = [&pika, &tool_publish_want, &tool_get_want]
        .into_iter()
        .flatten()
        .filter(|w| w.operation != "process")
        .count() as u64;
    assert_eq!((clients, broker_want.len(), measured), (36, 36, 33));

    let done = scenario.finish_when(
        |spans| spans.len() >= clients + broker_want.len(),
        "messaging.client.operation.duration",
        measured,
    );

    let runs = [
        ("pika", &client, &pika),
        ("amqp-publish", &tool_publish, &tool_publish_want),
        ("amqp-get", &tool_get, &tool_get_want),
    ];
    for (who, run, want) in runs {
        let spans = by_name(done.spans_of(run.pid));
        check(
            &done,
            &spans,
            want,
            who,
            (run.pid, &run.exe_name),
            port,
            false,
        );
    }
    let broker_spans = by_name(done.spans_of(broker.0));
    check(
        &done,
        &broker_spans,
        &broker_want,
        "rabbitmq-server",
        (broker.0, &broker.1),
        port,
        true,
    );
    assert_eq!(
        clients + broker_spans.len(),
        done.spans.len(),
        "{}: spans from other processes:\n{}",
        done.name,
        done.diagnostics()
    );

    // The message's context: parent of its publish and of its single-message delivery (and,
    // remote, of the broker's spans for it); a Basic.Get's receive only links to it.
    check_parents(
        &done,
        &done.spans_of(client.pid),
        &[("process orders:created", 1), ("publish orders:created", 1)],
        "pika",
    );
    check_parents(
        &done,
        &done.spans_of(tool_publish.pid),
        &[("publish orders:created", 1)],
        "amqp-publish",
    );
    check_parents(&done, &done.spans_of(tool_get.pid), &[], "amqp-get");
    check_parents(
        &done,
        &broker_spans,
        &[
            ("process orders:created", 1),
            ("publish orders:created", 2),
            ("receive orders.created", 1),
        ],
        "rabbitmq-server",
    );

    // One series per process, operation, named destination and error; its latest count is
    // the number of spans with those.
    let mut want_series: BTreeMap<(i64, String, Option<String>, Option<String>), u64> =
        BTreeMap::new();
    for (_, run, want) in runs {
        for w in want.iter().filter(|w| w.operation != "process") {
            let key = (
                i64::from(run.pid),
                w.operation.to_string(),
                w.destination.map(str::to_string),
                w.error.map(|(ty, _)| ty.to_string()),
            );
            *want_series.entry(key).or_default() += 1;
        }
    }
    let mut got_series = BTreeMap::new();
    for p in done.points("messaging.client.operation.duration") {
        assert_eq!(
            p.attr_str("messaging.system.name"),
            Some("rabbitmq"),
            "{p:?}"
        );
        assert_eq!(p.attr_str("server.address"), Some("127.0.0.1"), "{p:?}");
        assert_eq!(p.attr_int("server.port"), Some(i64::from(port)), "{p:?}");
        let pid = p.resource.get("process.pid").and_then(Value::as_i64);
        let key = (
            pid.unwrap_or_default(),
            p.attr_str("messaging.operation.name")
                .unwrap_or_default()
                .to_string(),
            p.attr_str("messaging.destination.name").map(str::to_string),
            p.attr_str("error.type").map(str::to_string),
        );
        *got_series.entry(key).or_default() += p.count;
    }
    assert_eq!(got_series, want_series, "{}", done.diagnostics());
    assert_eq!(got_series.values().sum::<u64>(), measured);

    // Everything the broker started goes with it.
    let beam = broker.0;
    drop(server);
    assert!(
        !Path::new(&format!("/proc/{beam}")).exists(),
        "beam.smp ({beam}) still running"
    );
}
