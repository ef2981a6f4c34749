//! Kafka end to end: a tansu broker (Kafka-compatible, from crates.io, built by
//! `scripts/setup.sh --tests`) on 127.0.0.1, driven by kafka-python
//! (`tests/fixtures/clients/kafka_client.py`): an admin creates `orders` (2 partitions), a
//! producer sends 6 messages one request each, a group member of `billing` reads them all and
//! commits, and a hand-written Metadata request asks for a topic the broker does not have. The
//! agent traces the broker's port and exports PRODUCER/CONSUMER/CLIENT spans for the clients,
//! SERVER spans for the broker and `messaging.client.operation.duration`, decoded by the
//! independent receiver.
//!
//! kafka-python's own bookkeeping (ApiVersions and Metadata on each connection) is checked for
//! its fields and its mirror on the broker's side, not for a count: how many connections the
//! client opens is its own business.
//!
//! Needs root and `scripts/setup.sh --tests`; run one at a time (`-- --test-threads=1`).

use std::collections::BTreeMap;

use wirelens_tests::{ClientRun, Done, Scenario, Span, free_port, python_script, tansu};

/// Spans of one process, by name.
fn names(spans: &[&Span]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for span in spans {
        *out.entry(span.name.clone()).or_default() += 1;
    }
    out
}

/// Checks what every client span of `run` carries; returns its spans.
fn client_spans<'a>(done: &'a Done, run: &ClientRun, client_id: &str, port: u16) -> Vec<&'a Span> {
    let spans = done.spans_of(run.pid);
    assert!(
        !spans.is_empty(),
        "{}: no spans for {client_id}\n{}",
        done.name,
        done.diagnostics()
    );
    for span in &spans {
        let context = || format!("{}: {}", done.name, span.summary());
        assert!(!span.is_server(), "{}", context());
        assert_eq!(
            span.str_attr("messaging.system.name"),
            "kafka",
            "{}",
            context()
        );
        assert_eq!(
            span.str_attr("messaging.client.id"),
            client_id,
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
        assert_eq!(
            span.res_int("process.pid"),
            i64::from(run.pid),
            "{}",
            context()
        );
        assert_eq!(
            span.res_str("process.executable.name"),
            run.exe_name,
            "{}",
            context()
        );
    }
    spans
}

fn of_name<'a>(spans: &[&'a Span], name: &str) -> Vec<&'a Span> {
    spans.iter().copied().filter(|s| s.name == name).collect()
}

#[test]
fn kafka_python_against_tansu() {
    let port = free_port();
    let broker = tansu(port);
    let port_arg = port.to_string();
    let scenario = Scenario::start("kafka", &["--port", &port_arg]);
    let run = |command: &str| python_script("kafka_client.py", &[command, "--port", &port_arg]);
    let admin = run("admin");
    let producer = run("produce");
    assert_eq!(
        producer.json()["sent"].as_array().map(Vec::len),
        Some(6),
        "{}",
        producer.stdout
    );
    let consumer = run("consume");
    assert_eq!(
        consumer.json()["received"].as_array().map(Vec::len),
        Some(6),
        "{}",
        consumer.stdout
    );
    let errors = run("errors");
    assert_eq!(errors.json()["errors"][0], 3, "{}", errors.stdout);

    let (producer_pid, consumer_pid, errors_pid) = (producer.pid, consumer.pid, errors.pid);
    let done = scenario.finish_when(
        |spans| {
            let of = |pid: u32, name: &str| {
                spans
                    .iter()
                    .filter(|s| s.res_int("process.pid") == i64::from(pid) && s.name == name)
                    .count()
            };
            let servers = spans.iter().filter(|s| s.is_server()).count();
            of(producer_pid, "send orders") == 6
                && of(consumer_pid, "leave_group") == 1
                && of(errors_pid, "metadata missing") == 1
                && 2 * servers == spans.len()
        },
        "messaging.client.operation.duration",
        8,
    );

    // The admin: one CreateTopics among its bookkeeping.
    let mine = client_spans(&done, &admin, "orders-admin", port);
    assert_eq!(
        of_name(&mine, "create_topics").len(),
        1,
        "{:?}",
        names(&mine)
    );
    for span in &mine {
        assert_eq!(span.kind, "SPAN_KIND_CLIENT", "{}", span.summary());
        assert!(
            !span.attributes.contains_key("error.type"),
            "{}",
            span.summary()
        );
    }

    // The producer: 6 single-message sends, partitions 0 and 1 in turn, nothing failed.
    let mine = client_spans(&done, &producer, "orders-producer", port);
    let sends = of_name(&mine, "send orders");
    assert_eq!(sends.len(), 6, "{:?}", names(&mine));
    let mut partitions = BTreeMap::<String, usize>::new();
    for span in &sends {
        assert_eq!(span.kind, "SPAN_KIND_PRODUCER", "{}", span.summary());
        assert_eq!(span.str_attr("messaging.operation.name"), "send");
        assert_eq!(span.str_attr("messaging.operation.type"), "send");
        assert_eq!(span.str_attr("messaging.destination.name"), "orders");
        assert!(
            !span
                .attributes
                .contains_key("messaging.batch.message_count"),
            "one message per request: {}",
            span.summary()
        );
        *partitions
            .entry(
                span.str_attr("messaging.destination.partition.id")
                    .to_string(),
            )
            .or_default() += 1;
    }
    assert_eq!(
        partitions,
        BTreeMap::from([("0".into(), 3), ("1".into(), 3)])
    );
    for span in &mine {
        assert!(
            !span.attributes.contains_key("error.type"),
            "{}",
            span.summary()
        );
        if !span.name.starts_with("send") {
            assert_eq!(span.kind, "SPAN_KIND_CLIENT", "{}", span.summary());
        }
    }

    // The consumer: its fetches carried the 6 messages; the group calls name the group; one
    // commit settles, one leave ends the membership.
    let mine = client_spans(&done, &consumer, "orders-consumer", port);
    let fetches = of_name(&mine, "receive orders");
    assert!(!fetches.is_empty(), "{:?}", names(&mine));
    let mut fetched = 0;
    for span in &fetches {
        assert_eq!(span.kind, "SPAN_KIND_CONSUMER", "{}", span.summary());
        assert_eq!(span.str_attr("messaging.operation.type"), "receive");
        fetched += span.int_attr("messaging.batch.message_count");
    }
    assert_eq!(fetched, 6, "messages in the fetches: {:?}", names(&mine));
    let commits = of_name(&mine, "commit orders");
    assert_eq!(commits.len(), 1, "{:?}", names(&mine));
    assert_eq!(commits[0].kind, "SPAN_KIND_CLIENT");
    assert_eq!(commits[0].str_attr("messaging.operation.type"), "settle");
    for group_call in [
        "find_coordinator",
        "sync_group",
        "offset_fetch orders",
        "commit orders",
    ] {
        assert!(
            !of_name(&mine, group_call).is_empty(),
            "{group_call}: {:?}",
            names(&mine)
        );
    }
    for span in &mine {
        let grouped = [
            "join_group",
            "sync_group",
            "offset_fetch",
            "commit",
            "heartbeat",
        ]
        .iter()
        .any(|g| span.name.starts_with(g));
        if grouped {
            assert_eq!(
                span.str_attr("messaging.consumer.group.name"),
                "billing",
                "{}",
                span.summary()
            );
        }
    }
    // JoinGroup is answered MEMBER_ID_REQUIRED once, by protocol, then retried.
    let joins = of_name(&mine, "join_group");
    let failed: Vec<&&Span> = joins
        .iter()
        .filter(|s| s.attributes.contains_key("error.type"))
        .collect();
    assert_eq!((joins.len(), failed.len()), (2, 1), "{:?}", names(&mine));
    assert_eq!(failed[0].str_attr("error.type"), "MEMBER_ID_REQUIRED");

    // The missing topic: one Metadata request, one error.
    let mine = client_spans(&done, &errors, "orders-errors", port);
    assert_eq!(mine.len(), 1, "{:?}", names(&mine));
    let lookup = mine[0];
    assert_eq!(lookup.name, "metadata missing");
    assert_eq!(lookup.kind, "SPAN_KIND_CLIENT");
    assert_eq!(lookup.str_attr("error.type"), "UNKNOWN_TOPIC_OR_PARTITION");
    assert_eq!(lookup.status_code, "STATUS_CODE_ERROR");

    // The broker saw every exchange the clients saw, as SERVER spans of tansu.
    let clients: Vec<&Span> = done.spans.iter().filter(|s| !s.is_server()).collect();
    let served = done.spans_of(broker.pid());
    assert!(
        served.iter().all(|s| s.is_server()),
        "{}",
        done.diagnostics()
    );
    assert_eq!(
        served.len(),
        done.spans.len() - clients.len(),
        "{}",
        done.diagnostics()
    );
    assert_eq!(names(&served), names(&clients), "{}", done.diagnostics());
    for span in &served {
        assert_eq!(span.res_str("process.executable.name"), "tansu");
        assert_eq!(span.str_attr("messaging.system.name"), "kafka");
    }

    // One duration per client operation.
    let points = done.points("messaging.client.operation.duration");
    let total: u64 = points.iter().map(|p| p.count).sum();
    assert_eq!(total, clients.len() as u64, "{}", done.diagnostics());
    for p in &points {
        assert_eq!(p.attr_str("messaging.system.name"), Some("kafka"));
        assert_eq!(p.unit, "s");
    }
    let failures: u64 = points
        .iter()
        .filter(|p| p.attr_str("error.type") == Some("UNKNOWN_TOPIC_OR_PARTITION"))
        .map(|p| p.count)
        .sum();
    assert_eq!(failures, 1, "{}", done.diagnostics());
}
