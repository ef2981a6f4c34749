//! Go TLS end to end: plaintext read through the probes on `crypto/tls.(*Conn).Write` and
//! `.Read` (entry and every `RET`). Go peers built here from Debian's golang-go and
//! golang-google-grpc-dev (`tests/go/gotls/main.go`, GOPATH mode, no module download): an
//! HTTPS server and client (net/http, HTTP/1.1 and HTTP/2), gRPC-Go over TLS (health service:
//! unary `Check`, server-streaming `Watch`), the same with a stripped binary (`-s -w`: no
//! symbols, no DWARF), 200 concurrent connections with GOMAXPROCS above the CPU count, and
//! an HTTP/2 connection opened before the agent started (handshake and preface missed), and
//! 10 short-lived copies of the client in a temp dir, whose probes are detached when they exit.
//!
//! Needs root, `scripts/setup.sh --tests` (golang-go, golang-google-grpc-dev) and a built
//! agent; run one at a time (`-- --test-threads=1`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use wirelens_tests::{
    ClientProcess, ClientRun, Daemon, Done, MetricPoint, Scenario, Span, free_port, poll,
    workspace_root, write_certificate,
};

const UA: &str = "wirelens-gotls-test";
const GOPATH: &str = "/usr/share/gocode";

/// The Go peers, built once per source and Go version (cached under `target/gotls-go/`).
fn go_program(stripped: bool) -> PathBuf {
    let src = workspace_root().join("tests/go/gotls/main.go");
    let source = fs::read(&src).expect("read tests/go/gotls/main.go");
    let version = Command::new("go")
        .arg("version")
        .output()
        .unwrap_or_else(|e| panic!("run go (scripts/setup.sh --tests installs golang-go): {e}"));
    let mut h = DefaultHasher::new();
    (source, version.stdout, stripped).hash(&mut h);
    let dir = workspace_root()
        .join("target/gotls-go")
        .join(format!("{:016x}", h.finish()));
    let exe = dir.join(if stripped { "gotls-stripped" } else { "gotls" });
    if exe.exists() {
        return exe;
    }
    fs::create_dir_all(&dir).expect("create target/gotls-go");
    let tmp = dir.join("build.tmp");
    let mut cmd = Command::new("go");
    cmd.arg("build").arg("-o").arg(&tmp);
    if stripped {
        cmd.arg("-ldflags=-s -w");
    }
    let out = cmd
        .arg(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOFLAGS", "-p=2")
        .env("GOCACHE", workspace_root().join("target/gotls-go/cache"))
        .output()
        .expect("run go build");
    assert!(
        out.status.success(),
        "go build failed (golang-google-grpc-dev installed?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::rename(&tmp, &exe).expect("move the Go binary in place");
    exe
}

/// Certificate and key for `localhost` in a temp dir.
fn certificate() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("wirelens-gotls-")
        .tempdir()
        .expect("temp dir");
    write_certificate(dir.path());
    dir
}

/// A Go server (`https-server` or `grpc-server`) on `port`, listening.
fn server(exe: &Path, mode: &str, port: u16, certs: &Path, env: &[(&str, &str)]) -> Daemon {
    let dir = tempfile::Builder::new()
        .prefix("wirelens-gotls-server-")
        .tempdir()
        .expect("temp dir");
    let argv: Vec<String> = vec![
        exe.display().to_string(),
        mode.into(),
        port.to_string(),
        certs.join("cert.pem").display().to_string(),
        certs.join("key.pem").display().to_string(),
    ];
    let mut d = Daemon::spawn("go tls server", dir, &argv, env);
    d.wait_listening(Ipv4Addr::LOCALHOST, port);
    d
}

/// Runs a Go client to completion; panics if it fails.
fn client(exe: &Path, args: &[&str], env: &[(&str, &str)]) -> ClientRun {
    let mut argv = vec![exe.display().to_string()];
    argv.extend(args.iter().map(|s| s.to_string()));
    let run = ClientProcess::spawn(&argv, env).wait();
    assert!(
        run.status.success(),
        "{} failed ({}):\n{}",
        run.command_line(),
        run.status,
        run.stderr
    );
    run
}

/// `https-client` to the server on `port`: `conns` connections of `per_conn` GETs each.
fn https_client(exe: &Path, port: u16, proto: &str, conns: usize, per_conn: usize) -> ClientRun {
    https_client_env(exe, port, proto, conns, per_conn, &[])
}

fn https_client_env(
    exe: &Path,
    port: u16,
    proto: &str,
    conns: usize,
    per_conn: usize,
    env: &[(&str, &str)],
) -> ClientRun {
    let url = format!("https://127.0.0.1:{port}");
    let (c, r) = (conns.to_string(), per_conn.to_string());
    client(exe, &["https-client", &url, proto, &c, &r], env)
}

fn str_of<'a>(s: &'a Span, key: &str) -> Option<&'a str> {
    s.attributes.get(key).and_then(Value::as_str)
}

/// The HTTP spans of `pid` by path (server: `url.path`; client: the path of `url.full`), each
/// path exactly once.
fn http_by_path(done: &Done, pid: u32, server: bool) -> BTreeMap<String, &Span> {
    let mut out = BTreeMap::new();
    for s in done.spans_of(pid) {
        assert_eq!(s.is_server(), server, "{}", s.summary());
        let path = if server {
            s.str_attr("url.path").to_string()
        } else {
            let full = s.str_attr("url.full");
            let rest = full.split_once("://").map_or(full, |x| x.1);
            rest.find('/').map_or("", |i| &rest[i..]).to_string()
        };
        let dup = out.insert(path.clone(), s);
        assert!(dup.is_none(), "{path} twice\n{}", done.diagnostics());
    }
    out
}

/// Every field of one HTTP exchange as seen from one side.
fn check_http(s: &Span, path: &str, version: &str, port: u16, server: bool) {
    let what = s.summary();
    let status = if path.ends_with("/r2") { 404 } else { 200 };
    assert_eq!(s.name, "GET", "{what}");
    assert_eq!(s.str_attr("http.request.method"), "GET", "{what}");
    assert_eq!(s.int_attr("http.response.status_code"), status, "{what}");
    assert_eq!(s.str_attr("network.protocol.version"), version, "{what}");
    assert_eq!(s.int_attr("server.port"), i64::from(port), "{what}");
    assert_eq!(s.str_attr("user_agent.original"), UA, "{what}");
    if server {
        assert_eq!(s.str_attr("url.scheme"), "https", "{what}");
        assert_eq!(s.str_attr("url.path"), path, "{what}");
        assert_eq!(s.str_attr("client.address"), "127.0.0.1", "{what}");
    } else {
        assert_eq!(
            s.str_attr("url.full"),
            format!("https://127.0.0.1:{port}{path}"),
            "{what}"
        );
    }
    assert!(s.end_ns >= s.start_ns, "{what}");
}

/// The client spans of `run` and the server spans of `server` for `paths`: exactly those,
/// each checked.
fn check_http_pair(
    done: &Done,
    run: &ClientRun,
    server: u32,
    paths: &[String],
    version: &str,
    port: u16,
) {
    let clients = http_by_path(done, run.pid, false);
    let want: BTreeSet<&str> = paths.iter().map(String::as_str).collect();
    let got: BTreeSet<&str> = clients.keys().map(String::as_str).collect();
    assert_eq!(
        got,
        want,
        "client spans of {}\n{}",
        run.pid,
        done.diagnostics()
    );
    let servers = http_by_path(done, server, true);
    for p in paths {
        check_http(clients[p], p, version, port, false);
        let s = servers
            .get(p)
            .unwrap_or_else(|| panic!("no server span for {p}\n{}", done.diagnostics()));
        check_http(s, p, version, port, true);
    }
}

/// The paths `https-client` asks for.
fn paths(proto: &str, conns: usize, per_conn: usize) -> Vec<String> {
    (0..conns)
        .flat_map(|c| (0..per_conn).map(move |r| format!("/{proto}/c{c}/r{r}")))
        .collect()
}

/// The agent's log lines saying it probed a Go executable.
fn go_probe_lines(done: &Done) -> Vec<String> {
    done.output
        .stderr
        .lines()
        .filter(|l| l.contains("probing Go crypto/tls"))
        .map(str::to_string)
        .collect()
}

/// An HTTPS server and two clients, HTTP/1.1 and HTTP/2 (ALPN), 3 GETs each (the third 404);
/// `stripped` runs the same with `-s -w` binaries.
fn https_case(name: &str, stripped: bool) {
    let exe = go_program(stripped);
    let certs = certificate();
    let port = free_port();
    let srv = server(&exe, "https-server", port, certs.path(), &[]);
    let port_arg = port.to_string();
    let scenario = Scenario::start(name, &["--port", &port_arg]);
    let h1 = https_client(&exe, port, "h1", 1, 3);
    assert_eq!(h1.json()["protos"]["HTTP/1.1"], 3, "{}", h1.stdout);
    let h2 = https_client(&exe, port, "h2", 1, 3);
    assert_eq!(h2.json()["protos"]["HTTP/2.0"], 3, "{}", h2.stdout);
    let done = scenario.finish_when(|s| s.len() >= 12, "http.client.request.duration", 6);
    let d = done.diagnostics();
    assert_eq!(done.spans.len(), 12, "spans\n{d}");
    assert_eq!(done.spans_of(srv.pid()).len(), 6, "server spans\n{d}");
    check_http_pair(&done, &h1, srv.pid(), &paths("h1", 1, 3), "1.1", port);
    check_http_pair(&done, &h2, srv.pid(), &paths("h2", 1, 3), "2", port);
    let lines = go_probe_lines(&done);
    assert!(!lines.is_empty(), "no Go probe line\n{d}");
    let source = if stripped { "Table" } else { "Dwarf" };
    assert!(
        lines
            .iter()
            .all(|l| l.contains(&format!("offsets={source}"))),
        "offsets should come from {source}: {lines:#?}"
    );
    // The plaintext comes from probes on calls the kernel emulates, not from single-stepped
    // probes at each `RET` (see README, Go TLS overhead).
    assert!(
        lines
            .iter()
            .all(|l| l.contains("returns=0") && !l.contains("data_calls=0")),
        "the Go probes should sit on the data calls: {lines:#?}"
    );
}

#[test]
fn https_h1_and_h2_server_and_client() {
    https_case("gotls_https", false);
}

#[test]
fn stripped_binaries_use_pclntab_and_the_offset_table() {
    https_case("gotls_https_stripped", true);
    grpc_case("gotls_grpc_stripped", true);
}

/// gRPC-Go over TLS: 3 unary `Check` calls and one `Watch` stream read for 3 messages, then
/// cancelled.
fn grpc_case(name: &str, stripped: bool) {
    let exe = go_program(stripped);
    let certs = certificate();
    let port = free_port();
    let srv = server(&exe, "grpc-server", port, certs.path(), &[]);
    let port_arg = port.to_string();
    let scenario = Scenario::start(name, &["--port", &port_arg]);
    let run = client(&exe, &["grpc-client", &port_arg, "3", "3"], &[]);
    assert_eq!(run.json()["watch_messages"], 3, "{}", run.stdout);
    let done = scenario.finish_when(|s| s.len() >= 8, "rpc.client.call.duration", 4);
    let d = done.diagnostics();
    assert_eq!(done.spans.len(), 8, "spans\n{d}");
    for (pid, client) in [(run.pid, true), (srv.pid(), false)] {
        let spans = done.spans_of(pid);
        assert_eq!(spans.len(), 4, "{pid}\n{d}");
        let checks: Vec<&&Span> = spans
            .iter()
            .filter(|s| s.name == "grpc.health.v1.Health/Check")
            .collect();
        assert_eq!(checks.len(), 3, "Check spans of {pid}\n{d}");
        let watch: Vec<&&Span> = spans
            .iter()
            .filter(|s| s.name == "grpc.health.v1.Health/Watch")
            .collect();
        assert_eq!(watch.len(), 1, "Watch spans of {pid}\n{d}");
        for s in spans.iter() {
            let what = s.summary();
            assert_eq!(s.is_client(), client, "{what}");
            assert_eq!(s.str_attr("rpc.system.name"), "grpc", "{what}");
            assert_eq!(s.str_attr("rpc.method"), s.name, "{what}");
            assert_eq!(s.str_attr("server.address"), "localhost", "{what}");
            assert_eq!(s.int_attr("server.port"), i64::from(port), "{what}");
            assert_eq!(s.str_attr("network.protocol.version"), "2", "{what}");
            assert_eq!(str_of(s, "tls.protocol.name"), Some("tls"), "{what}");
        }
        for s in checks {
            let what = s.summary();
            assert_eq!(str_of(s, "rpc.status_code"), Some("OK"), "{what}");
            assert_eq!(s.int_attr("wirelens.rpc.request.messages"), 1, "{what}");
            assert_eq!(s.int_attr("wirelens.rpc.response.messages"), 1, "{what}");
        }
        let w = watch[0];
        assert_eq!(
            w.int_attr("wirelens.rpc.request.messages"),
            1,
            "{}",
            w.summary()
        );
        assert!(
            w.int_attr("wirelens.rpc.response.messages") >= 3,
            "{}",
            w.summary()
        );
    }
}

#[test]
fn grpc_unary_and_streaming_over_tls() {
    grpc_case("gotls_grpc", false);
}

#[test]
fn two_hundred_connections_with_gomaxprocs_above_the_cpus() {
    let exe = go_program(false);
    let certs = certificate();
    let port = free_port();
    // More Ps than CPUs: goroutines run on many threads and move between them mid-call.
    let procs = [("GOMAXPROCS", "8")];
    let srv = server(&exe, "https-server", port, certs.path(), &procs);
    let port_arg = port.to_string();
    let scenario = Scenario::start("gotls_concurrent", &["--port", &port_arg]);
    let (conns, per_conn) = (200, 3);
    let run = https_client_env(&exe, port, "h1", conns, per_conn, &procs);
    let n = conns * per_conn;
    assert_eq!(run.json()["protos"]["HTTP/1.1"], n, "{}", run.stdout);
    let done = scenario.finish_when(
        |s| s.len() >= 2 * n,
        "http.client.request.duration",
        n as u64,
    );
    let d = done.output.counters();
    assert_eq!(done.spans.len(), 2 * n, "spans; counters {d:?}");
    // Each path once on each side, with its own status: nothing lost, nothing mixed.
    check_http_pair(
        &done,
        &run,
        srv.pid(),
        &paths("h1", conns, per_conn),
        "1.1",
        port,
    );
    // Each connection's three requests went over one connection, seen from both sides: the
    // server's peer port of a connection's requests is one and the same, and differs between
    // connections.
    let servers = http_by_path(&done, srv.pid(), true);
    let mut ports = BTreeSet::new();
    for c in 0..conns {
        let peer: BTreeSet<i64> = (0..per_conn)
            .map(|r| servers[&format!("/h1/c{c}/r{r}")].int_attr("client.port"))
            .collect();
        assert_eq!(
            peer.len(),
            1,
            "connection {c}: requests on several ports {peer:?}"
        );
        ports.extend(peer);
    }
    assert_eq!(ports.len(), conns, "connections sharing a port");
}

#[test]
fn h2_connection_opened_before_the_agent() {
    let exe = go_program(false);
    let certs = certificate();
    let port = free_port();
    let srv = server(&exe, "https-server", port, certs.path(), &[]);
    let go = tempfile::NamedTempFile::new().expect("temp file");
    let go_path = go.path().to_path_buf();
    drop(go); // the client waits for this path to exist
    let url = format!("https://127.0.0.1:{port}");
    let argv = vec![
        exe.display().to_string(),
        "https-hold".to_string(),
        url,
        go_path.display().to_string(),
    ];
    let mut held = ClientProcess::spawn(&argv, &[]);
    held.wait_lines(1, Duration::from_secs(30));
    let port_arg = port.to_string();
    let scenario = Scenario::start("gotls_h2_midstream", &["--port", &port_arg]);
    fs::write(&go_path, b"go").expect("write the go file");
    let run = held.wait();
    assert!(run.status.success(), "{}", run.stderr);
    let _ = fs::remove_file(&go_path);
    let done = scenario.finish_when(|s| s.len() >= 4, "http.client.request.duration", 2);
    let d = done.diagnostics();
    // r0 ran before the agent. Both peers were blocked in a `Read` when the probes came (its
    // entry unseen), so r1's response (client) and request (server) are lost; r2 (a 404) and
    // r3 come out on both sides, joined mid-stream: HPACK entries made before the agent are
    // unknown, so a field may be missing, never wrong.
    assert_eq!(done.spans.len(), 4, "{d}");
    for (pid, server) in [(run.pid, false), (srv.pid(), true)] {
        let spans = done.spans_of(pid);
        assert_eq!(spans.len(), 2, "spans of {pid}\n{d}");
        let mut statuses: Vec<i64> = spans
            .iter()
            .map(|s| s.int_attr("http.response.status_code"))
            .collect();
        statuses.sort();
        assert_eq!(statuses, [200, 404], "{d}");
        for s in spans {
            let what = s.summary();
            assert_eq!(s.is_server(), server, "{what}");
            assert_eq!(s.name, "GET", "{what}");
            assert_eq!(s.str_attr("network.protocol.version"), "2", "{what}");
            let want = if s.int_attr("http.response.status_code") == 404 {
                "/hold/r2"
            } else {
                "/hold/r3"
            };
            if let Some(path) = str_of(s, "url.path") {
                assert_eq!(path, want, "{what}");
            }
            if let Some(full) = str_of(s, "url.full") {
                assert!(full.ends_with(want), "{what}");
            }
            if let Some(ua) = str_of(s, "user_agent.original") {
                assert_eq!(ua, UA, "{what}");
            }
        }
    }
}

/// Open fds of process `pid`.
fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
        .count()
}

/// Open fds of process `pid` by kind: `socket`, `anon_inode:bpf_link`, a path...
fn fd_kinds(pid: u32) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for e in fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let target =
            fs::read_link(e.path()).map_or_else(|_| "?".into(), |t| t.display().to_string());
        let kind = match target.split_once(':') {
            Some((k @ ("socket" | "pipe"), _)) => k.to_string(),
            _ => target,
        };
        *kinds.entry(kind).or_insert(0) += 1;
    }
    kinds
}

/// The fds of uprobe links among `kinds`.
fn link_fds(kinds: &BTreeMap<String, usize>) -> usize {
    ["anon_inode:bpf_link", "anon_inode:[perf_event]"]
        .iter()
        .filter_map(|k| kinds.get(*k))
        .sum()
}

/// The latest value of the agent's own metric `name` (a sum or a gauge) received so far.
fn agent_metric(metrics: &[MetricPoint], name: &str) -> Option<f64> {
    metrics
        .iter()
        .filter(|p| p.name == name)
        .max_by_key(|p| p.time_ns)
        .and_then(|p| p.value)
}

/// Go executables copied to a temp dir, each run once (a short-lived HTTPS server answering
/// one GET) and deleted: the agent probes each (its server span arrives) and detaches the probes
/// 5 s after the process exits, so its open fds come back to where they were (the
/// two-hour soak of 2026-12-07 saw them grow 74 → 140 by such links); a fresh copy afterwards is
/// probed again and traced. (Servers, not clients: a client that exits within milliseconds of
/// its exec is done before its executable is parsed and probed.)
#[test]
fn probes_of_exited_executables_are_detached() {
    const COPIES: usize = 10;
    // Exporter connections and the like may come and go.
    const SLACK: usize = 6;
    let exe = go_program(false);
    let certs = certificate();
    let ports: Vec<u16> = (0..=COPIES).map(|_| free_port()).collect();
    let mut args = Vec::new();
    for p in &ports {
        args.extend(["--port".to_string(), p.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let scenario = Scenario::start("gotls_uprobe_lifecycle", &args);
    let agent = scenario.agent.pid();
    let dir = tempfile::Builder::new()
        .prefix("wirelens-gotls-copies-")
        .tempdir()
        .expect("temp dir");
    // Copy `i` of the executable serving one GET (from the original, as client), then stopped
    // and deleted: its server's pid.
    let run_copy = |i: usize| -> u32 {
        let copy = dir.path().join(format!("gotls-copy-{i}"));
        fs::copy(&exe, &copy).expect("copy the Go program");
        let srv = server(&copy, "https-server", ports[i], certs.path(), &[]);
        let pid = srv.pid();
        let probed = format!("pid={pid} ");
        let attached = poll(Duration::from_secs(10), || {
            scenario
                .agent
                .stderr()
                .lines()
                .any(|l| l.contains("probing Go crypto/tls") && l.contains(&probed))
        });
        assert!(
            attached,
            "copy {i} (pid {pid}) not probed:\n{}",
            scenario.agent.stderr()
        );
        https_client(&exe, ports[i], "h1", 1, 1);
        drop(srv);
        fs::remove_file(&copy).expect("delete the copy");
        pid
    };
    let before = fd_kinds(agent);
    let pids: Vec<u32> = (0..COPIES).map(run_copy).collect();
    let after_runs = fd_kinds(agent);
    // COPIES × 17 links; the kernel takes 0.1 s (idle host) to 0.2 s (loaded) to close each
    // (grace periods, one close at a time).
    let settled = poll(Duration::from_secs(180), || {
        let now = fd_kinds(agent);
        link_fds(&now) <= link_fds(&before)
            && open_fds(agent) <= before.values().sum::<usize>() + SLACK
    });
    let now = fd_kinds(agent);
    // A fresh copy after all that: probed again, traced.
    let fresh = run_copy(COPIES);
    let detached = |m: &[MetricPoint]| agent_metric(m, "wirelens.uprobe.files_detached");
    poll(Duration::from_secs(20), || {
        detached(&scenario.receiver.metrics()) >= Some(COPIES as f64)
    });
    let done = scenario.finish_when(
        |s| {
            s.iter()
                .any(|s| s.resource.get("process.pid") == Some(&fresh.into()))
        },
        "http.server.request.duration",
        (COPIES + 1) as u64,
    );
    let d = done.diagnostics();
    assert!(
        settled,
        "the agent's fds did not come back: {before:?} before {COPIES} executables, \
         {after_runs:?} just after, {now:?} at most 180 s later\n{d}"
    );
    // Every copy was probed and traced: its links were made, and then dropped.
    for pid in pids.iter().chain([&fresh]) {
        let spans = done.spans_of(*pid);
        assert_eq!(spans.len(), 1, "spans of copy {pid}\n{d}");
        assert_eq!(spans[0].str_attr("url.path"), "/h1/c0/r0", "{d}");
        assert!(spans[0].is_server(), "{}", spans[0].summary());
    }
    let detached = detached(&done.metrics);
    assert!(
        detached >= Some(COPIES as f64),
        "wirelens.uprobe.files_detached = {detached:?}\n{d}"
    );
    let links = agent_metric(&done.metrics, "wirelens.uprobe.links");
    let attached = agent_metric(&done.metrics, "wirelens.uprobe.files_attached");
    assert!(
        attached.is_some_and(|n| n < COPIES as f64),
        "wirelens.uprobe.files_attached = {attached:?}, links {links:?}"
    );
}
