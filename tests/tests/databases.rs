//! Databases end to end: PostgreSQL, MariaDB and Redis servers started in temp dirs on free
//! ports, real clients (psql, mariadb, redis-cli, redis-benchmark, psycopg, PyMySQL, redis-py),
//! the agent tracing the server's port and exporting to the independent receiver; exact span
//! counts for both sides, semconv database fields, and the duration histograms.
//!
//! Needs root, `scripts/setup.sh` (the servers, clients and python packages) and a built agent;
//! run one at a time (`-- --test-threads=1`).

use std::net::TcpListener;

use serde_json::Value;
use wirelens_tests::{
    ClientRun, DB_NAME, DbFinished, DbOp, DbServer, DbSetup, Span, db_python_client, free_port,
    pg_bin, run_client, server_exe,
};

fn op<'a>(
    operation: &'a str,
    collection: Option<&'a str>,
    namespace: &'a str,
    text: Option<&'a str>,
) -> DbOp<'a> {
    DbOp {
        operation,
        collection,
        namespace: Some(namespace),
        query_text: text,
        error: None,
    }
}

fn failed<'a>(mut op: DbOp<'a>, code: &'a str) -> DbOp<'a> {
    op.error = Some(code);
    op
}

/// Asserts that `spans` (one side, by start time) match `ops` one for one.
fn assert_ops(done: &DbFinished, spans: &[&Span], ops: &[DbOp<'_>], side: &str) {
    assert_eq!(
        spans.len(),
        ops.len(),
        "{}: {side}: {} spans for {} operations:\n{}{}",
        done.name,
        spans.len(),
        ops.len(),
        done.summary(),
        done.diagnostics()
    );
    for (span, op) in in_op_order(spans, ops).iter().zip(ops) {
        done.assert_db_span(span, op);
    }
}

/// A string attribute of `span`.
fn attr<'s>(span: &'s Span, key: &str) -> Option<&'s str> {
    span.attributes.get(key).and_then(Value::as_str)
}

/// `spans` (by start and end time) lined up with `ops`: spans with the same start and end
/// (pipelined requests read by one call) are equal in time, and the order they were exported
/// in is not theirs (the trace-context stage sends a span whose parent is known after its
/// parent), so within such a tie each op takes the first span with its query text and status.
fn in_op_order<'a>(spans: &[&'a Span], ops: &[DbOp<'_>]) -> Vec<&'a Span> {
    let mut out = Vec::with_capacity(spans.len());
    let mut i = 0;
    while i < spans.len() {
        let key = (spans[i].start_ns, spans[i].end_ns);
        let end = spans[i..]
            .iter()
            .position(|s| (s.start_ns, s.end_ns) != key)
            .map_or(spans.len(), |n| i + n);
        let mut group: Vec<&Span> = spans[i..end].to_vec();
        for op in ops.iter().skip(i).take(end - i) {
            let at = group
                .iter()
                .position(|s| {
                    attr(s, "db.query.text") == op.query_text
                        && attr(s, "db.response.status_code") == op.error
                })
                .unwrap_or(0);
            if !group.is_empty() {
                out.push(group.remove(at));
            }
        }
        out.extend(group);
        i = end;
    }
    out
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

fn servers_on<'a>(done: &'a DbFinished, clients: &[&ClientRun]) -> Vec<Vec<&'a Span>> {
    // Server spans are matched to a client through the connection's client.port/peer port:
    // the client span's local port is not exported, so split server spans by the order of
    // client runs instead (each client runs after the previous one ended).
    let mut out = Vec::new();
    let mut servers = done.servers().into_iter().peekable();
    for (i, _) in clients.iter().enumerate() {
        let next_start = clients
            .get(i + 1)
            .and_then(|c| done.clients_of(c.pid).first().map(|s| s.start_ns));
        let mut mine = Vec::new();
        while let Some(s) = servers.peek() {
            if next_start.is_some_and(|n| s.start_ns >= n) {
                break;
            }
            mine.push(servers.next().expect("peeked"));
        }
        out.push(mine);
    }
    out
}

fn psql(port: u16, db: &str, statements: &[&str]) -> ClientRun {
    let psql = pg_bin("psql").display().to_string();
    let port = port.to_string();
    let mut argv: Vec<&str> = vec![
        &psql,
        "-X",
        "-q",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "postgres",
        "-d",
        db,
    ];
    for s in statements {
        argv.extend(["-c", s]);
    }
    run_client(&argv, false)
}

#[test]
fn postgres_psql_simple_queries() {
    let server = DbServer::postgres(free_port());
    let exe = server_exe(&server);
    let setup = DbSetup::start("db_postgres_psql", server);
    let run = psql(
        setup.server.port,
        DB_NAME,
        &[
            "CREATE TABLE users (id int PRIMARY KEY, name text)",
            "INSERT INTO users (id, name) VALUES (1, 'alice')",
            "INSERT INTO users VALUES (2, 'bob')",
            "SELECT name FROM users WHERE id = 1",
            "INSERT INTO users VALUES (1, 'again')",
        ],
    );
    assert!(
        run.stderr.contains("duplicate key"),
        "psql stderr: {}",
        run.stderr
    );
    let done = setup.finish(10);
    let ns = DB_NAME;
    let ops = [
        op(
            "CREATE",
            Some("users"),
            ns,
            Some("CREATE TABLE users (id int PRIMARY KEY, name text)"),
        ),
        op(
            "INSERT",
            Some("users"),
            ns,
            Some("INSERT INTO users (id, name) VALUES (?, ?)"),
        ),
        op(
            "INSERT",
            Some("users"),
            ns,
            Some("INSERT INTO users VALUES (?, ?)"),
        ),
        op(
            "SELECT",
            Some("users"),
            ns,
            Some("SELECT name FROM users WHERE id = ?"),
        ),
        failed(
            op(
                "INSERT",
                Some("users"),
                ns,
                Some("INSERT INTO users VALUES (?, ?)"),
            ),
            "23505",
        ),
    ];
    done.assert_counts(5, 5);
    assert_ops(&done, &done.clients(), &ops, "client");
    assert_ops(&done, &done.servers(), &ops, "server");
    for s in done.clients() {
        done.assert_client_resource(s, &run);
    }
    for s in done.servers() {
        done.assert_server_resource(s, &exe, &[run.pid]);
    }
    assert_no_values(&done, &["alice", "bob", "again"]);
    done.assert_metrics(5, 5);
}

#[test]
fn postgres_psycopg_extended_and_pipeline() {
    let server = DbServer::postgres(free_port());
    let exe = server_exe(&server);
    let setup = DbSetup::start("db_postgres_psycopg", server);
    let run = db_python_client(&["pg", "--port", &setup.server.port.to_string()]);
    let report = run.json();
    assert_eq!(report["count"], 5, "{report}");
    assert_eq!(report["error"], "23505", "{report}");
    let done = setup.finish(18);
    let ns = DB_NAME;
    let insert = op(
        "INSERT",
        Some("items"),
        ns,
        Some("INSERT INTO items (id, name) VALUES ($1, $2)"),
    );
    let ops = [
        op(
            "CREATE",
            Some("items"),
            ns,
            Some("CREATE TABLE items (id int PRIMARY KEY, name text)"),
        ),
        insert.clone(),
        op(
            "SELECT",
            Some("items"),
            ns,
            Some("SELECT name FROM items WHERE id = $1"),
        ),
        insert.clone(),
        insert.clone(),
        insert.clone(),
        insert.clone(),
        op(
            "SELECT",
            Some("items"),
            ns,
            Some("SELECT count(*) FROM items"),
        ),
        failed(insert, "23505"),
    ];
    done.assert_counts(9, 9);
    assert_ops(&done, &done.clients(), &ops, "client");
    assert_ops(&done, &done.servers(), &ops, "server");
    for s in done.clients() {
        done.assert_client_resource(s, &run);
    }
    for s in done.servers() {
        done.assert_server_resource(s, &exe, &[run.pid]);
    }
    assert_no_values(&done, &["secret"]);
    done.assert_metrics(9, 9);
}

#[test]
fn mariadb_cli_and_pymysql() {
    let server = DbServer::mariadb(free_port());
    let exe = server_exe(&server);
    let setup = DbSetup::start("db_mariadb", server);
    let port = setup.server.port.to_string();
    let cli = run_client(
        &[
            "/usr/bin/mariadb",
            "--no-defaults",
            "--protocol=TCP",
            "-h",
            "127.0.0.1",
            "-P",
            &port,
            "-u",
            "root",
            "--force",
            DB_NAME,
            "-e",
            "CREATE TABLE t1 (id INT PRIMARY KEY, name TEXT); \
             INSERT INTO t1 VALUES (1, 'alice'); \
             SELECT name FROM t1 WHERE id = 1; \
             USE mysql; \
             SELECT 2; \
             SELECT * FROM missing",
        ],
        false,
    );
    assert!(
        cli.stderr.contains("1146"),
        "mariadb stderr: {}",
        cli.stderr
    );
    let py = db_python_client(&["mysql", "--port", &port]);
    assert_eq!(py.json()["error"], 1146, "{}", py.stdout);
    let done = setup.finish(24);
    let ns = DB_NAME;
    let cli_ops = [
        op(
            "CREATE",
            Some("t1"),
            ns,
            Some("CREATE TABLE t1 (id INT PRIMARY KEY, name TEXT)"),
        ),
        op(
            "INSERT",
            Some("t1"),
            ns,
            Some("INSERT INTO t1 VALUES (?, ?)"),
        ),
        op(
            "SELECT",
            Some("t1"),
            ns,
            Some("SELECT name FROM t1 WHERE id = ?"),
        ),
        // The client's `use` command asks for the current database first, then sends
        // COM_INIT_DB.
        op("SELECT", None, ns, Some("SELECT DATABASE()")),
        op("USE", None, "mysql", None),
        op("SELECT", None, "mysql", Some("SELECT ?")),
        failed(
            op(
                "SELECT",
                Some("missing"),
                "mysql",
                Some("SELECT * FROM missing"),
            ),
            "1146",
        ),
    ];
    let py_ops = [
        // PyMySQL's own, at connect.
        op("SET", None, ns, Some("SET NAMES utf8mb4")),
        op(
            "CREATE",
            Some("py_items"),
            ns,
            Some("CREATE TABLE py_items (id INT PRIMARY KEY, name TEXT)"),
        ),
        op(
            "INSERT",
            Some("py_items"),
            ns,
            Some("INSERT INTO py_items (id, name) VALUES (?, ?)"),
        ),
        op(
            "SELECT",
            Some("py_items"),
            ns,
            Some("SELECT name FROM py_items WHERE id = ?"),
        ),
        failed(
            op("SELECT", Some("nope"), ns, Some("SELECT * FROM nope")),
            "1146",
        ),
        op("USE", None, "mysql", None),
        op("SELECT", None, "mysql", Some("SELECT ?")),
    ];
    let n = cli_ops.len() + py_ops.len();
    done.assert_counts(n, n);
    assert_ops(&done, &done.clients_of(cli.pid), &cli_ops, "mariadb client");
    assert_ops(&done, &done.clients_of(py.pid), &py_ops, "pymysql client");
    let servers = servers_on(&done, &[&cli, &py]);
    assert_ops(&done, &servers[0], &cli_ops, "server (mariadb client)");
    assert_ops(&done, &servers[1], &py_ops, "server (pymysql)");
    for s in done.clients_of(cli.pid) {
        done.assert_client_resource(s, &cli);
    }
    for s in done.clients_of(py.pid) {
        done.assert_client_resource(s, &py);
    }
    for s in done.servers() {
        done.assert_server_resource(s, &exe, &[cli.pid, py.pid]);
    }
    assert_no_values(&done, &["alice", "secret"]);
    done.assert_metrics(n, n);
}

fn redis_op<'a>(operation: &'a str, namespace: &'a str, text: &'a str) -> DbOp<'a> {
    op(operation, None, namespace, Some(text))
}

#[test]
fn redis_cli_and_redis_py() {
    let server = DbServer::redis(free_port());
    let exe = server_exe(&server);
    let setup = DbSetup::start("db_redis", server);
    let port = setup.server.port.to_string();
    let cli = |args: &[&str]| {
        let mut argv = vec!["/usr/bin/redis-cli", "-h", "127.0.0.1", "-p", port.as_str()];
        argv.extend_from_slice(args);
        run_client(&argv, true)
    };
    let c1 = cli(&["SET", "cli:key", "topsecret-cli"]);
    let c2 = cli(&["GET", "cli:key"]);
    assert_eq!(c2.stdout.trim(), "topsecret-cli");
    let c3 = cli(&["-n", "2", "SET", "cli:db2", "topsecret-2"]);
    let py = db_python_client(&["redis", "--port", &port]);
    let report = py.json();
    assert_eq!(report["error"], "WRONGTYPE", "{report}");
    assert_eq!(report["pipelined"], 50, "{report}");

    let done = setup.finish(2 * (4 + 57));
    let c1_ops = [redis_op("SET", "0", "SET cli:key")];
    let c2_ops = [redis_op("GET", "0", "GET cli:key")];
    let c3_ops = [
        redis_op("SELECT", "2", "SELECT"),
        redis_op("SET", "2", "SET cli:db2"),
    ];
    let pipe_texts: Vec<String> = (0..50).map(|i| format!("SET py:pipe:{i}")).collect();
    let mut py_ops = vec![
        redis_op("SET", "0", "SET py:user:1"),
        redis_op("GET", "0", "GET py:user:1"),
        redis_op("DEL", "0", "DEL py:user:1"),
        redis_op("LPUSH", "0", "LPUSH py:list"),
        failed(redis_op("GET", "0", "GET py:list"), "WRONGTYPE"),
    ];
    py_ops.extend(pipe_texts.iter().map(|t| redis_op("SET", "0", t)));
    py_ops.push(redis_op("SELECT", "2", "SELECT"));
    py_ops.push(redis_op("SET", "2", "SET py:db2"));
    let runs = [&c1, &c2, &c3, &py];
    let all: [&[DbOp<'_>]; 4] = [&c1_ops, &c2_ops, &c3_ops, &py_ops];
    let n: usize = all.iter().map(|o| o.len()).sum();
    done.assert_counts(n, n);
    let servers = servers_on(&done, &runs);
    for ((run, ops), server_spans) in runs.iter().zip(all).zip(&servers) {
        let mine = done.clients_of(run.pid);
        assert_ops(&done, &mine, ops, &format!("client {}", run.command_line()));
        for s in &mine {
            done.assert_client_resource(s, run);
        }
        assert_ops(
            &done,
            server_spans,
            ops,
            &format!("server for {}", run.command_line()),
        );
    }
    let pids: Vec<u32> = runs.iter().map(|r| r.pid).collect();
    for s in done.servers() {
        done.assert_server_resource(s, &exe, &pids);
    }
    assert_no_values(&done, &["secret"]);
    done.assert_metrics(n, n);
}

#[test]
fn redis_benchmark_pipelined() {
    let server = DbServer::redis(free_port());
    // 8000 spans in a few hundred ms: a queue that holds them all (the default 2048 would drop).
    let setup = DbSetup::start_with_env(
        "db_redis_benchmark",
        server,
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "65536"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096"),
        ],
    );
    let port = setup.server.port.to_string();
    let bench = run_client(
        &[
            "/usr/bin/redis-benchmark",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-n",
            "2000",
            "-P",
            "16",
            "-t",
            "set,get",
            "-q",
        ],
        true,
    );
    let done = setup.finish(2 * 4002);
    let counters = done.output.counters();
    // redis-benchmark reads `CONFIG GET save` and `CONFIG GET appendonly` on a connection of
    // its own, then runs each test: 2000 requests, 16 per pipeline, over 50 connections.
    let texts: [(&str, usize); 3] = [
        ("CONFIG GET", 2),
        ("SET key:__rand_int__", 2000),
        ("GET key:__rand_int__", 2000),
    ];
    for server_side in [false, true] {
        for (text, n) in texts {
            let got = done
                .spans
                .iter()
                .filter(|s| s.is_server() == server_side)
                .filter(|s| s.attributes.get("db.query.text").and_then(Value::as_str) == Some(text))
                .count();
            assert_eq!(
                got,
                n,
                "{}: {text:?} spans (server side: {server_side}); counters {counters:?}\n{}",
                done.name,
                done.diagnostics()
            );
        }
    }
    done.assert_counts(4002, 4002);
    for s in &done.spans {
        let text = s.str_attr("db.query.text");
        let operation = if text.starts_with("CONFIG") {
            "CONFIG GET"
        } else {
            &text[..3]
        };
        done.assert_db_span(s, &redis_op(operation, "0", text));
        assert!(!text.contains("xxx"), "value in db.query.text: {text}");
        if s.is_client() {
            done.assert_client_resource(s, &bench);
        }
    }
    for key in ["records", "spans_exported"] {
        assert_eq!(counters.get(key), Some(&8004), "{key}: {counters:?}");
    }
    for key in [
        "drops",
        "spans_dropped",
        "unmatched_request",
        "unmatched_response",
        "gaps",
        "ring_full",
    ] {
        assert_eq!(counters.get(key), Some(&0), "{key}: {counters:?}");
    }
    done.assert_metrics(4002, 4002);
}

/// A port in the MySQL range (13306, else the next free one above it).
fn mysqlish_port() -> u16 {
    (13306..13406)
        .find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port in 13306..13406")
}

#[test]
fn postgres_on_a_mysql_port_is_postgres() {
    let server = DbServer::postgres(mysqlish_port());
    let exe = server_exe(&server);
    let setup = DbSetup::start("db_postgres_mysql_port", server);
    let run = psql(
        setup.server.port,
        DB_NAME,
        &["SELECT 1", "SELECT count(*) FROM pg_class"],
    );
    assert!(run.status.success(), "psql: {}", run.stderr);
    let done = setup.finish(4);
    let ops = [
        op("SELECT", None, DB_NAME, Some("SELECT ?")),
        op(
            "SELECT",
            Some("pg_class"),
            DB_NAME,
            Some("SELECT count(*) FROM pg_class"),
        ),
    ];
    done.assert_counts(2, 2);
    assert_ops(&done, &done.clients(), &ops, "client");
    assert_ops(&done, &done.servers(), &ops, "server");
    for s in done.servers() {
        done.assert_server_resource(s, &exe, &[run.pid]);
    }
    done.assert_metrics(2, 2);
}
