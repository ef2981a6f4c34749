//! TLS end to end: plaintext read through the OpenSSL uprobes. nginx serving HTTPS to curl and
//! Python `requests`, a client with its own copy of libssl (probed only after its `exec`),
//! and PostgreSQL and Redis over TLS giving the same spans as in plaintext, marked TLS.
//!
//! Needs root and a built agent; run one at a time (`-- --test-threads=1`).

use std::collections::BTreeSet;
use std::fs;

use serde_json::Value;
use wirelens_tests::{
    ClientRun, DB_NAME, DbFinished, DbOp, DbServer, DbSetup, Exchange, Finished, Otlp, Setup, Span,
    curl, free_port, pg_bin, python_client, run_client, server_exe, workspace_root,
};

const UA: &str = "wirelens-tls-test";

fn get(target: &str, status: i64) -> Exchange<'_> {
    Exchange {
        method: "GET",
        target,
        status,
        user_agent: UA,
    }
}

/// The one span of `kind` whose target (server: `url.path`, client: `url.full`) is `target`.
fn span_for<'a>(done: &'a Finished, server: bool, target: &str) -> &'a Span {
    let full = format!("{}://127.0.0.1:{}{target}", done.scheme, done.port);
    let spans = if server {
        done.servers()
    } else {
        done.clients()
    };
    let matches: Vec<&Span> = spans
        .into_iter()
        .filter(|s| {
            if server {
                s.attributes.get("url.path").and_then(Value::as_str) == Some(target)
            } else {
                s.attributes.get("url.full").and_then(Value::as_str) == Some(full.as_str())
            }
        })
        .collect();
    assert_eq!(
        matches.len(),
        1,
        "{}: {} spans for {target}:\n{matches:#?}\n{}",
        done.name,
        if server { "server" } else { "client" },
        done.diagnostics()
    );
    matches[0]
}

/// One server and one client span per exchange, every field checked, ids unique.
fn assert_exchanges(done: &Finished, exchanges: &[Exchange<'_>], client: &ClientRun) {
    done.assert_counts(exchanges.len(), exchanges.len());
    for ex in exchanges {
        done.assert_server_span(span_for(done, true, ex.target), ex);
        done.assert_client_span(span_for(done, false, ex.target), ex, client, None);
    }
    let ids: BTreeSet<&str> = done.spans.iter().map(|s| s.span_id.as_str()).collect();
    assert_eq!(ids.len(), done.spans.len(), "{}: span ids", done.name);
}

#[test]
fn https_curl_keep_alive_404_and_500() {
    let setup = Setup::start_tls("tls_curl", Otlp::Grpc);
    let urls: Vec<String> = ["/index.html", "/missing", "/error"]
        .iter()
        .map(|t| setup.nginx.tls_url(t))
        .collect();
    let mut args = vec!["-k", "--http1.1", "-A", UA];
    for url in &urls {
        args.extend(["-o", "/dev/null", url.as_str()]);
    }
    // curl starts after the agent: the system libssl it maps was probed at start-up.
    let run = curl(&args);
    let done = setup.finish(6);
    assert_exchanges(
        &done,
        &[
            get("/index.html", 200),
            get("/missing", 404),
            get("/error", 500),
        ],
        &run,
    );
    // nginx and curl map the same libssl: one file, probed once (by device and inode).
    let system = "path=\"/usr/lib/x86_64-linux-gnu/libssl.so.3\"";
    let probed = done
        .output
        .stderr
        .lines()
        .filter(|l| l.contains("probing OpenSSL") && l.contains(system))
        .count();
    assert_eq!(
        probed,
        1,
        "{}: the system libssl must be probed exactly once\n{}",
        done.name,
        done.diagnostics()
    );
}

#[test]
fn https_h2_curl_two_streams() {
    let setup = Setup::start_tls("tls_h2_curl", Otlp::Grpc);
    let urls: Vec<String> = ["/index.html", "/missing"]
        .iter()
        .map(|t| setup.nginx.tls_url(t))
        .collect();
    let mut args = vec!["-k", "--http2", "-A", UA, "-w", r"%{http_version}\n"];
    for url in &urls {
        args.extend(["-o", "/dev/null", url.as_str()]);
    }
    let run = curl(&args);
    assert_eq!(run.stdout, "2\n2\n", "curl did not speak h2 (ALPN)");
    let mut done = setup.finish(4);
    done.version = "2";
    assert_exchanges(
        &done,
        &[get("/index.html", 200), get("/missing", 404)],
        &run,
    );
}

#[test]
fn https_python_requests_uses_the_ex_calls() {
    let setup = Setup::start_tls("tls_requests", Otlp::Http);
    let port = setup.nginx.tls_port.to_string();
    let run = python_client(
        &[
            "tls_get",
            "--port",
            &port,
            "--targets",
            "/index.html,/missing",
            "--user-agent",
            UA,
        ],
        &[],
    );
    assert_eq!(run.json()["statuses"], serde_json::json!([200, 404]));
    let done = setup.finish(4);
    assert_exchanges(
        &done,
        &[get("/index.html", 200), get("/missing", 404)],
        &run,
    );
}

#[test]
fn private_libssl_is_probed_after_exec() {
    // A copy of libssl is a new inode: nothing mapped it when the agent started, so only the
    // scan after the client's exec can find it.
    let lib = tempfile::Builder::new()
        .prefix("wirelens-libssl-")
        .tempdir()
        .expect("temp dir");
    let system = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
    fs::copy(system, lib.path().join("libssl.so.3")).expect("copy libssl");
    let setup = Setup::start_tls("tls_private_libssl", Otlp::Grpc);
    let port = setup.nginx.tls_port.to_string();
    let lib_dir = lib.path().display().to_string();
    let run = python_client(
        &[
            "tls_get",
            "--port",
            &port,
            "--targets",
            "/index.html",
            "--delay",
            "3",
            "--user-agent",
            UA,
        ],
        &[("LD_LIBRARY_PATH", lib_dir.as_str())],
    );
    let maps_check = fs::read_to_string(format!("/proc/{}/maps", std::process::id()))
        .unwrap_or_default()
        .contains(&lib_dir);
    assert!(!maps_check, "the test process itself must not map the copy");
    let done = setup.finish(2);
    assert!(
        done.output
            .stderr
            .contains(&format!("{lib_dir}/libssl.so.3")),
        "{}: the private libssl was not probed\n{}",
        done.name,
        done.diagnostics()
    );
    assert_exchanges(&done, &[get("/index.html", 200)], &run);
}

#[test]
fn libssl_in_a_private_mount_namespace_is_probed_through_proc_root() {
    // As in a container: the process sees its own file at the usual path. From the host that
    // path names the system libssl (already probed); only /proc/<pid>/root reaches the copy.
    let lib = tempfile::Builder::new()
        .prefix("wirelens-nslibssl-")
        .tempdir()
        .expect("temp dir");
    let system = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
    let copy = lib.path().join("libssl.so.3");
    fs::copy(system, &copy).expect("copy libssl");
    let setup = Setup::start_tls("tls_mount_namespace", Otlp::Grpc);
    let port = setup.nginx.tls_port.to_string();
    let python = wirelens_tests::python().display().to_string();
    let clients = wirelens_tests::fixture("clients/clients.py")
        .display()
        .to_string();
    let script = format!(
        "mount --bind {copy} {system} && exec {python} {clients} tls_get --port {port} \
         --targets /index.html --delay 3 --user-agent {UA}",
        copy = copy.display()
    );
    let run = run_client(
        &[
            "/usr/bin/unshare",
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            &script,
        ],
        true,
    );
    assert_eq!(run.json()["statuses"], serde_json::json!([200]));
    let done = setup.finish(2);
    let probed = format!("path=\"{system}\" pid={}", run.pid);
    assert!(
        done.output.stderr.contains(&probed),
        "{}: the namespace's libssl was not probed ({probed})\n{}",
        done.name,
        done.diagnostics()
    );
    // The client span's process is python, whatever unshare and sh were before its exec.
    let client = span_for(&done, false, "/index.html");
    assert_eq!(client.res_int("process.pid"), i64::from(run.pid));
    assert_eq!(done.servers().len(), 1, "{}", done.diagnostics());
}

#[test]
fn static_openssl_executable_is_probed() {
    let dir = tempfile::Builder::new()
        .prefix("wirelens-static-ssl-")
        .tempdir()
        .expect("temp dir");
    let exe = dir.path().join("static_client");
    let source = workspace_root().join("tests/fixtures/tls/static_client.c");
    let cc = std::process::Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(&source)
        .args([
            "-Wl,-Bstatic",
            "-lssl",
            "-lcrypto",
            "-Wl,-Bdynamic",
            "-ldl",
            "-lpthread",
        ])
        .output()
        .expect("run cc (build-essential, libssl-dev)");
    assert!(
        cc.status.success(),
        "cc static_client: {}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let setup = Setup::start_tls("tls_static_openssl", Otlp::Grpc);
    let port = setup.nginx.tls_port.to_string();
    let exe_path = exe.display().to_string();
    let run = run_client(&[exe_path.as_str(), &port, "/index.html", UA, "1"], true);
    assert_eq!(run.stdout.trim(), "HTTP/1.1 200 OK");
    let done = setup.finish(2);
    assert!(
        done.output
            .stderr
            .contains(&format!("path=\"/proc/{}/exe\"", run.pid)),
        "{}: the static executable was not probed\n{}",
        done.name,
        done.diagnostics()
    );
    assert_exchanges(&done, &[get("/index.html", 200)], &run);
}

fn db_op<'a>(operation: &'a str, collection: Option<&'a str>, text: &'a str) -> DbOp<'a> {
    DbOp {
        operation,
        collection,
        namespace: Some(DB_NAME),
        query_text: Some(text),
        error: None,
    }
}

/// Every span has exactly the expected operations (in order) and the TLS marker.
fn assert_tls_ops(done: &DbFinished, spans: &[&Span], ops: &[DbOp<'_>], side: &str) {
    assert_eq!(
        spans.len(),
        ops.len(),
        "{}: {side} spans\n{}",
        done.name,
        done.summary()
    );
    for (span, op) in spans.iter().zip(ops) {
        done.assert_db_span(span, op);
        assert_eq!(
            span.str_attr("tls.protocol.name"),
            "tls",
            "{}: {side} span {} lacks the TLS marker",
            done.name,
            span.name
        );
    }
}

#[test]
fn postgres_over_tls_same_spans_as_plaintext() {
    let server = DbServer::postgres_tls(free_port());
    let exe = server_exe(&server);
    let setup = DbSetup::start("tls_postgres", server);
    let port = setup.server.port.to_string();
    let psql = pg_bin("psql").display().to_string();
    let conninfo =
        format!("host=127.0.0.1 port={port} user=postgres dbname={DB_NAME} sslmode=require");
    let run = run_client(
        &[
            psql.as_str(),
            "-X",
            "-v",
            "ON_ERROR_STOP=0",
            conninfo.as_str(),
            "-c",
            "CREATE TABLE users (id int PRIMARY KEY, name text)",
            "-c",
            "INSERT INTO users VALUES (1, 'alice')",
            "-c",
            "SELECT name FROM users WHERE id = 1",
        ],
        true,
    );
    let done = setup.finish(6);
    let ops = [
        db_op(
            "CREATE",
            Some("users"),
            "CREATE TABLE users (id int PRIMARY KEY, name text)",
        ),
        db_op("INSERT", Some("users"), "INSERT INTO users VALUES (?, ?)"),
        db_op(
            "SELECT",
            Some("users"),
            "SELECT name FROM users WHERE id = ?",
        ),
    ];
    done.assert_counts(3, 3);
    assert_tls_ops(&done, &done.clients(), &ops, "client");
    assert_tls_ops(&done, &done.servers(), &ops, "server");
    for s in done.clients() {
        done.assert_client_resource(s, &run);
    }
    for s in done.servers() {
        done.assert_server_resource(s, &exe, &[run.pid]);
    }
    done.assert_metrics(3, 3);
}

#[test]
fn redis_over_tls_same_spans_as_plaintext() {
    let server = DbServer::redis_tls(free_port());
    let exe = server_exe(&server);
    let setup = DbSetup::start("tls_redis", server);
    let port = setup.server.port.to_string();
    let cli = |args: &[&str]| {
        let mut argv = vec![
            "/usr/bin/redis-cli",
            "--tls",
            "--insecure",
            "-h",
            "127.0.0.1",
            "-p",
            port.as_str(),
        ];
        argv.extend_from_slice(args);
        run_client(&argv, true)
    };
    let set = cli(&["SET", "tls:key", "topsecret"]);
    let get = cli(&["GET", "tls:key"]);
    assert_eq!(get.stdout.trim(), "topsecret");
    let done = setup.finish(4);
    let redis = |operation: &'static str, text: &'static str| DbOp {
        operation,
        collection: None,
        namespace: Some("0"),
        query_text: Some(text),
        error: None,
    };
    done.assert_counts(2, 2);
    for (run, op) in [
        (&set, redis("SET", "SET tls:key")),
        (&get, redis("GET", "GET tls:key")),
    ] {
        let mine = done.clients_of(run.pid);
        assert_tls_ops(&done, &mine, std::slice::from_ref(&op), "client");
        done.assert_client_resource(mine[0], run);
    }
    let servers = done.servers();
    assert_tls_ops(
        &done,
        &servers,
        &[redis("SET", "SET tls:key"), redis("GET", "GET tls:key")],
        "server",
    );
    for s in servers {
        done.assert_server_resource(s, &exe, &[set.pid, get.pid]);
    }
    done.assert_metrics(2, 2);
}
