//! Cassandra end to end without a Cassandra server: the real Python `cassandra-driver`
//! (`tests/fixtures/clients/cassandra_client.py`, protocol v4) against this crate's CQL
//! responder (`src/bin/cql_responder.rs`, every envelope encoded by the `cassandra-protocol`
//! crate) on a free port of 127.0.0.1, the agent tracing both processes and exporting to the
//! independent receiver. Exact span counts on both sides, the semconv database fields
//! (operation, collection, keyspace as namespace, sanitised text, rows, batch size, the 0x2200
//! error), both Resources, and the duration histograms.
//!
//! Needs root, `scripts/setup.sh` (the venv with cassandra-driver) and a built agent; run one at
//! a time (`-- --test-threads=1`).

use std::path::Path;

use serde_json::Value;
use wirelens_tests::{
    DbFinished, DbOp, DbServer, DbSetup, Span, fixture, free_port, python, run_client, server_exe,
};

/// The keyspace the client's session uses (`cluster.connect("shop")`).
const KEYSPACE: &str = "shop";

/// One expected operation and what its response carried.
struct Expected<'a> {
    op: DbOp<'a>,
    /// `db.response.returned_rows` (absent when `None`: only Rows results have a count).
    rows: Option<i64>,
    /// `db.operation.batch.size` (absent when `None`).
    batch_size: Option<i64>,
}

fn expect<'a>(
    operation: &'a str,
    collection: Option<&'a str>,
    namespace: &'a str,
    text: &'a str,
) -> Expected<'a> {
    Expected {
        op: DbOp {
            operation,
            collection,
            namespace: Some(namespace),
            query_text: Some(text),
            error: None,
        },
        rows: None,
        batch_size: None,
    }
}

fn with_rows(mut e: Expected<'_>, rows: i64) -> Expected<'_> {
    e.rows = Some(rows);
    e
}

const PEERS_V2: &str = "SELECT host_id, peer, peer_port, data_center, rack, native_address, \
                        native_port, release_version, schema_version FROM system.peers_v2";
const LOCAL: &str = "SELECT host_id, cluster_name, data_center, rack, partitioner, \
                     release_version, schema_version FROM system.local WHERE key=?";
const INSERT: &str = "INSERT INTO items (id, name) VALUES (?, ?)";

/// What the driver sends, in order: the control connection's two topology queries (sent
/// together, after OPTIONS, STARTUP and REGISTER, which give no span), then the session's
/// connection: its `USE "shop"` and the workload of `cassandra_client.py`.
fn expected() -> Vec<Expected<'static>> {
    let ks = KEYSPACE;
    let mut batch = expect(
        "BATCH",
        Some("items"),
        ks,
        "INSERT INTO items (id, name) VALUES (?, ?); INSERT INTO items (id, name) VALUES (?, ?); \
         INSERT INTO items (id, name) VALUES (?, ?)",
    );
    batch.batch_size = Some(3);
    let mut error = expect("SELECT", Some("missing"), ks, "SELECT * FROM missing");
    error.op.error = Some("0x2200");
    vec![
        with_rows(
            expect("SELECT", Some("system.peers_v2"), "system", PEERS_V2),
            0,
        ),
        with_rows(expect("SELECT", Some("system.local"), "system", LOCAL), 1),
        expect("USE", None, ks, "USE \"shop\""),
        expect(
            "CREATE",
            Some("items"),
            ks,
            "CREATE TABLE items (id int PRIMARY KEY, name text)",
        ),
        expect("INSERT", Some("items"), ks, INSERT),
        with_rows(
            expect("SELECT", Some("items"), ks, "SELECT id, name FROM items"),
            3,
        ),
        with_rows(
            expect(
                "SELECT",
                Some("shop.items"),
                ks,
                "SELECT name FROM shop.items WHERE id = ?",
            ),
            1,
        ),
        expect("PREPARE", Some("items"), ks, INSERT),
        expect("INSERT", Some("items"), ks, INSERT),
        expect("INSERT", Some("items"), ks, INSERT),
        expect("INSERT", Some("items"), ks, INSERT),
        batch,
        error,
    ]
}

/// Asserts that `spans` (one side, by start time) match `expected` one for one.
fn assert_spans(done: &DbFinished, spans: &[&Span], expected: &[Expected<'_>], side: &str) {
    assert_eq!(
        spans.len(),
        expected.len(),
        "{}: {side}: {} spans for {} operations:\n{}{}",
        done.name,
        spans.len(),
        expected.len(),
        done.summary(),
        done.diagnostics()
    );
    for (span, e) in spans.iter().zip(expected) {
        done.assert_db_span(span, &e.op);
        let int = |k: &str| span.attributes.get(k).and_then(Value::as_i64);
        let ctx = format!("{}: {side} span {:?}", done.name, span.name);
        assert_eq!(int("db.response.returned_rows"), e.rows, "{ctx}: rows");
        assert_eq!(
            int("db.operation.batch.size"),
            e.batch_size,
            "{ctx}: batch size"
        );
    }
}

/// Asserts that no span attribute holds any of `secrets` (values must never be exported).
fn assert_no_values(done: &DbFinished, secrets: &[&str]) {
    for span in &done.spans {
        for (k, v) in &span.attributes {
            let text = v.to_string();
            for secret in secrets {
                assert!(
                    !text.contains(secret),
                    "{}: attribute {k} holds the value {secret:?}: {text}",
                    done.name
                );
            }
        }
    }
}

#[test]
fn python_driver_against_cql_responder() {
    let responder = Path::new(env!("CARGO_BIN_EXE_cql_responder"));
    let server = DbServer::cql_responder(responder, free_port());
    let exe = server_exe(&server);
    let setup = DbSetup::start("db_cassandra", server);
    let port = setup.server.port.to_string();
    let python = python().display().to_string();
    let script = fixture("clients/cassandra_client.py").display().to_string();
    let run = run_client(&[&python, &script, "--port", &port], true);
    let report = run.json();
    assert_eq!(
        report["rows"],
        serde_json::json!([[1, "alpha"], [2, "beta"], [3, "gamma"]]),
        "{report}"
    );
    assert_eq!(report["qualified_rows"], 1, "{report}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(error.contains("code=2200"), "{report}");

    let expected = expected();
    let n = expected.len();
    let done = setup.finish(2 * n);
    done.assert_counts(n, n);
    let clients = done.clients_of(run.pid);
    assert_spans(&done, &clients, &expected, "client");
    assert_spans(&done, &done.servers(), &expected, "server");
    for s in &clients {
        done.assert_client_resource(s, &run);
        assert_eq!(s.res_str("service.name"), run.exe_name, "{}", done.name);
    }
    for s in done.servers() {
        done.assert_server_resource(s, &exe, &[run.pid]);
        assert_eq!(s.res_str("service.name"), exe, "{}", done.name);
    }
    assert_no_values(&done, &["secret", "alpha", "local'"]);
    let counters = done.output.counters();
    for key in ["unmatched_request", "unmatched_response", "gaps", "drops"] {
        assert_eq!(counters.get(key), Some(&0), "{key}: {counters:?}");
    }
    for key in ["records", "spans_exported"] {
        assert_eq!(
            counters.get(key),
            Some(&(2 * n as u64)),
            "{key}: {counters:?}"
        );
    }
    done.assert_metrics(n, n);
}
