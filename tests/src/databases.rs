//! Private database servers (PostgreSQL, MariaDB, Redis) in temp dirs on free ports, never the
//! system services nor the default ports, and a scenario around one: receiver, agent tracing the
//! server's port, and the asserters for database spans and metrics.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::agent::{Agent, AgentOutput};
use crate::clients::{ClientProcess, ClientRun};
use crate::otlp::{MetricPoint, Span, histogram_count, summarize_spans};
use crate::receiver::{Otlp, Receiver};
use crate::util::{
    children_of, exe_name, host_name, poll, read_lossy, tail, terminate, wait_until, write_actual,
};

/// PostgreSQL 15's binaries (Debian's layout).
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The database every PostgreSQL and MariaDB server here has (made before the agent starts).
pub const DB_NAME: &str = "shop";
const START_TIMEOUT: Duration = Duration::from_secs(60);
const SPANS_TIMEOUT: Duration = Duration::from_secs(30);

/// Which database server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    /// PostgreSQL 15 (`postgres`).
    Postgres,
    /// MariaDB (`mariadbd`).
    MariaDb,
    /// Redis (`redis-server`).
    Redis,
    /// Cassandra: the tests crate's scripted CQL responder (`cql_responder`).
    Cassandra,
}

impl DbKind {
    /// `db.system.name` of its spans.
    pub fn system(self) -> &'static str {
        match self {
            DbKind::Postgres => "postgresql",
            DbKind::MariaDb => "mariadb",
            DbKind::Redis => "redis",
            DbKind::Cassandra => "cassandra",
        }
    }
}

/// A private database server; stopped on drop.
pub struct DbServer {
    child: Child,
    dir: TempDir,
    /// Which server.
    pub kind: DbKind,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
}

fn postgres_ids() -> (u32, u32) {
    let name = std::ffi::CString::new("postgres").expect("cstring");
    // SAFETY: getpwnam returns a pointer to static storage or null; read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "no user postgres: run scripts/setup.sh (installs postgresql)"
    );
    // SAFETY: non-null, points to a valid passwd.
    unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
}

fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: spawn: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        tail(&text, 30)
    );
    text
}

fn temp(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create temp dir")
}

impl DbServer {
    /// PostgreSQL: `initdb` (as user postgres, trust auth) and `postgres` on 127.0.0.1:`port`,
    /// no TLS, its socket in the temp dir; database [`DB_NAME`] created.
    pub fn postgres(port: u16) -> Self {
        Self::postgres_with(port, false)
    }

    /// Like [`DbServer::postgres`] with TLS on (`ssl=on`, a self-signed certificate).
    pub fn postgres_tls(port: u16) -> Self {
        Self::postgres_with(port, true)
    }

    fn postgres_with(port: u16, tls: bool) -> Self {
        let dir = temp("wirelens-pg-");
        let (uid, gid) = postgres_ids();
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown pg dir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let data = dir.path().join("data");
        run_ok(
            Command::new(format!("{PG_BIN}/initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
                .arg("--locale=C")
                .uid(uid)
                .gid(gid),
            "initdb",
        );
        let log = dir.path().join("server.log");
        let ssl = if tls {
            crate::util::write_certificate(dir.path());
            for f in ["cert.pem", "key.pem"] {
                let path = dir.path().join(f);
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown cert");
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
            }
            vec![
                "ssl=on".to_string(),
                format!("ssl_cert_file={}", dir.path().join("cert.pem").display()),
                format!("ssl_key_file={}", dir.path().join("key.pem").display()),
            ]
        } else {
            vec!["ssl=off".to_string()]
        };
        let mut command = Command::new(format!("{PG_BIN}/postgres"));
        command
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1"]);
        for setting in &ssl {
            command.arg("-c").arg(setting);
        }
        let child = command
            .args(["-c", "fsync=off", "-c", "logging_collector=off"])
            .uid(uid)
            .gid(gid)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("create pg log"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn postgres (run scripts/setup.sh): {e}"));
        let server = Self::ready(child, dir, DbKind::Postgres, port);
        // Ready to accept queries (TCP accepts before recovery ends).
        wait_until("postgres to answer", START_TIMEOUT, || {
            Command::new(format!("{PG_BIN}/pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
                .status()
                .ok()
                .filter(|s| s.success())
        });
        server.psql_setup(&format!("CREATE DATABASE {DB_NAME}"));
        server
    }

    /// MariaDB: `mariadb-install-db` and `mariadbd` on 127.0.0.1:`port` without grant tables,
    /// its socket in the temp dir; database [`DB_NAME`] created.
    pub fn mariadb(port: u16) -> Self {
        let dir = temp("wirelens-mariadb-");
        let data = dir.path().join("data");
        run_ok(
            Command::new("/usr/bin/mariadb-install-db")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .args([
                    "--auth-root-authentication-method=normal",
                    "--user=root",
                    "--skip-test-db",
                ]),
            "mariadb-install-db",
        );
        let log = dir.path().join("server.log");
        let child = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", dir.path().join("s").display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!("--log-error={}", log.display()))
            .args(["--user=root", "--skip-grant-tables", "--skip-networking=0"])
            .args(["--skip-ssl", "--innodb-flush-log-at-trx-commit=0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn mariadbd (run scripts/setup.sh): {e}"));
        let server = Self::ready(child, dir, DbKind::MariaDb, port);
        let sock = server.dir.path().join("s");
        run_ok(
            Command::new("/usr/bin/mariadb")
                .arg("--no-defaults")
                .arg(format!("--socket={}", sock.display()))
                .args(["-u", "root", "-e"])
                .arg(format!("CREATE DATABASE {DB_NAME}")),
            "mariadb CREATE DATABASE",
        );
        server
    }

    /// Redis: `redis-server` on 127.0.0.1:`port`, no persistence.
    pub fn redis(port: u16) -> Self {
        Self::redis_with(port, false)
    }

    /// Like [`DbServer::redis`] speaking only TLS on `port` (a self-signed certificate, client
    /// certificates not asked for).
    pub fn redis_tls(port: u16) -> Self {
        Self::redis_with(port, true)
    }

    fn redis_with(port: u16, tls: bool) -> Self {
        let dir = temp("wirelens-redis-");
        let log = dir.path().join("server.log");
        let mut command = Command::new("/usr/bin/redis-server");
        if tls {
            crate::util::write_certificate(dir.path());
            let cert = dir.path().join("cert.pem");
            command
                .args(["--port", "0", "--tls-port", &port.to_string()])
                .arg("--tls-cert-file")
                .arg(&cert)
                .arg("--tls-key-file")
                .arg(dir.path().join("key.pem"))
                .arg("--tls-ca-cert-file")
                .arg(&cert)
                .args(["--tls-auth-clients", "no"]);
        } else {
            command.args(["--port", &port.to_string()]);
        }
        let child = command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).expect("create redis log"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn redis-server (run scripts/setup.sh): {e}"));
        Self::ready(child, dir, DbKind::Redis, port)
    }

    /// Cassandra: the CQL responder `exe` (the `cql_responder` binary of this crate, which an
    /// integration test names with `env!("CARGO_BIN_EXE_cql_responder")`) on 127.0.0.1:`port`,
    /// its stderr (one line per request) as the server log.
    pub fn cql_responder(exe: &Path, port: u16) -> Self {
        let dir = temp("wirelens-cql-");
        let log = dir.path().join("server.log");
        let child = Command::new(exe)
            .args(["--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("create cql responder log"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", exe.display()));
        Self::ready(child, dir, DbKind::Cassandra, port)
    }

    fn ready(child: Child, dir: TempDir, kind: DbKind, port: u16) -> Self {
        let mut server = DbServer {
            child,
            dir,
            kind,
            port,
        };
        wait_until(
            &format!("{kind:?} to accept on 127.0.0.1:{port}"),
            START_TIMEOUT,
            || {
                if let Ok(Some(status)) = server.child.try_wait() {
                    panic!(
                        "{kind:?} exited ({status}) before accepting on port {port}:\n{}",
                        tail(&server.log(), 30)
                    );
                }
                TcpStream::connect_timeout(
                    &([127, 0, 0, 1], port).into(),
                    Duration::from_millis(200),
                )
                .ok()
                .map(|_| ())
            },
        );
        server
    }

    fn psql_setup(&self, sql: &str) {
        run_ok(
            Command::new(format!("{PG_BIN}/psql"))
                .args(["-X", "-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", "postgres", "-d", "postgres", "-c", sql]),
            "psql setup",
        );
    }

    /// The server's main pid (for PostgreSQL the postmaster; its backends are children).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("server.log"))
    }
}

impl Drop for DbServer {
    fn drop(&mut self) {
        let children = children_of(self.child.id());
        // SIGTERM: smart/normal shutdown; SIGKILL after the grace period.
        let signal = if self.kind == DbKind::Postgres {
            libc::SIGQUIT
        } else {
            libc::SIGTERM
        };
        terminate(&mut self.child, signal, Duration::from_secs(10));
        for pid in children {
            crate::util::send_signal(pid, libc::SIGKILL);
        }
    }
}

/// Runs a client `argv` to completion (killed after 90 s); panics unless it exits with 0 when
/// `must_succeed`.
pub fn run_client(argv: &[&str], must_succeed: bool) -> ClientRun {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let run = ClientProcess::spawn(&argv, &[]).wait();
    assert!(
        !must_succeed || run.status.success(),
        "{} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        run.command_line(),
        run.status,
        tail(&run.stdout, 30),
        tail(&run.stderr, 30)
    );
    run
}

/// Runs `db_clients.py <args>` with the venv's python; panics if it fails.
pub fn db_python_client(args: &[&str]) -> ClientRun {
    let mut argv = vec![
        crate::util::python().display().to_string(),
        crate::util::fixture("clients/db_clients.py")
            .display()
            .to_string(),
    ];
    argv.extend(args.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    run_client(&argv, true)
}

/// A database server, a receiver and an agent with `--port <server port>` exporting to it.
pub struct DbSetup {
    /// Test name (names `tests/actual/<name>.json`).
    pub name: String,
    /// The traced server.
    pub server: DbServer,
    /// Where the agent exports.
    pub receiver: Receiver,
    /// The agent, ready.
    pub agent: Agent,
}

impl DbSetup {
    /// Starts a receiver and the agent (OTLP/gRPC) tracing `server`'s port.
    pub fn start(name: &str, server: DbServer) -> Self {
        Self::start_with_env(name, server, &[])
    }

    /// Like [`DbSetup::start`] with extra agent environment (say, a larger span queue).
    pub fn start_with_env(name: &str, server: DbServer, extra_env: &[(&str, &str)]) -> Self {
        let receiver = Receiver::start();
        let port = server.port.to_string();
        let env = receiver.env(Otlp::Grpc);
        let mut env: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.extend_from_slice(extra_env);
        let agent = Agent::start(&["--port", port.as_str()], &env);
        DbSetup {
            name: name.to_string(),
            server,
            receiver,
            agent,
        }
    }

    /// Waits (up to 30 s) for `expected_spans` spans and for metrics covering them, stops the
    /// agent (SIGINT: it flushes) and collects.
    pub fn finish(self, expected_spans: usize) -> DbFinished {
        let _ = poll(SPANS_TIMEOUT, || {
            self.receiver.spans().len() >= expected_spans
        });
        let _ = poll(Duration::from_secs(10), || {
            let m = self.receiver.metrics();
            histogram_count(&m, "db.client.operation.duration")
                + histogram_count(&m, "wirelens.db.server.operation.duration")
                >= expected_spans as u64
        });
        let DbSetup {
            name,
            server,
            receiver,
            agent,
        } = self;
        let output = agent.stop();
        let mut spans = receiver.spans();
        spans.sort_by_key(|s| (s.start_ns, s.end_ns));
        let done = DbFinished {
            spans,
            metrics: receiver.metrics(),
            name,
            port: server.port,
            kind: server.kind,
            server_pid: server.pid(),
            output,
            receiver_log: receiver.log(),
            server_log: server.log(),
        };
        write_actual(&done.name, &done.to_json());
        drop(server);
        done.output.assert_success();
        done
    }
}

/// What a database scenario produced, after the agent exited.
pub struct DbFinished {
    /// Test name.
    pub name: String,
    /// Every span received, by start time.
    pub spans: Vec<Span>,
    /// Every metric data point received.
    pub metrics: Vec<MetricPoint>,
    /// The server's port.
    pub port: u16,
    /// Which server.
    pub kind: DbKind,
    /// The server's main pid.
    pub server_pid: u32,
    /// The agent's exit status and output.
    pub output: AgentOutput,
    receiver_log: String,
    server_log: String,
}

/// One expected database operation.
#[derive(Clone, Debug, Default)]
pub struct DbOp<'a> {
    /// `db.operation.name`.
    pub operation: &'a str,
    /// `db.collection.name` (absent when `None`).
    pub collection: Option<&'a str>,
    /// `db.namespace` (absent when `None`).
    pub namespace: Option<&'a str>,
    /// `db.query.text` exactly (absent when `None`).
    pub query_text: Option<&'a str>,
    /// `db.response.status_code` and `error.type` of a failed operation.
    pub error: Option<&'a str>,
}

impl DbFinished {
    /// Server spans, by start time.
    pub fn servers(&self) -> Vec<&Span> {
        self.spans.iter().filter(|s| s.is_server()).collect()
    }

    /// Client spans, by start time.
    pub fn clients(&self) -> Vec<&Span> {
        self.spans.iter().filter(|s| s.is_client()).collect()
    }

    /// Client spans of process `pid`, by start time.
    pub fn clients_of(&self, pid: u32) -> Vec<&Span> {
        self.clients()
            .into_iter()
            .filter(|s| s.resource.get("process.pid").and_then(Value::as_i64) == Some(pid.into()))
            .collect()
    }

    /// Asserts exactly `servers` server spans, `clients` client spans and nothing else.
    pub fn assert_counts(&self, servers: usize, clients: usize) {
        let (s, c) = (self.servers().len(), self.clients().len());
        assert!(
            s == servers && c == clients && s + c == self.spans.len(),
            "{}: expected {servers} server + {clients} client spans, got {s} server + {c} client \
             ({} in all):\n{}{}",
            self.name,
            self.spans.len(),
            self.summary(),
            self.diagnostics()
        );
    }

    /// One line per span: kind, name, text, status, pid.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for s in self.spans.iter().take(80) {
            out.push_str(&format!(
                "  {} {:?} text={} code={} {} pid={}\n",
                s.kind.trim_start_matches("SPAN_KIND_"),
                s.name,
                s.attributes
                    .get("db.query.text")
                    .cloned()
                    .unwrap_or_default(),
                s.attributes
                    .get("db.response.status_code")
                    .cloned()
                    .unwrap_or_default(),
                s.status_code.trim_start_matches("STATUS_CODE_"),
                s.resource.get("process.pid").cloned().unwrap_or_default(),
            ));
        }
        if self.spans.len() > 80 {
            out.push_str(&format!("  ... {} more\n", self.spans.len() - 80));
        }
        if self.spans.is_empty() {
            out.push_str(&summarize_spans(&self.spans));
        }
        out
    }

    /// Asserts the fields of `span` (of either kind) against `op`.
    pub fn assert_db_span(&self, span: &Span, op: &DbOp<'_>) {
        let ctx = format!(
            "{}: {} span for {} {:?}",
            self.name, span.kind, op.operation, op.query_text
        );
        let describe = serde_json::to_string_pretty(&span.to_json()).unwrap_or_default();
        let ctx = format!("{ctx}\n{describe}");
        assert_eq!(span.str_attr("db.system.name"), self.kind.system(), "{ctx}");
        assert_eq!(span.str_attr("db.operation.name"), op.operation, "{ctx}");
        let opt = |k: &str| span.attributes.get(k).and_then(Value::as_str);
        assert_eq!(
            opt("db.collection.name"),
            op.collection,
            "{ctx}: collection"
        );
        assert_eq!(opt("db.namespace"), op.namespace, "{ctx}: namespace");
        if let Some(text) = op.query_text {
            assert_eq!(opt("db.query.text"), Some(text), "{ctx}: query text");
        }
        let want_name = match op.collection {
            Some(c) => format!("{} {c}", op.operation),
            None => op.operation.to_string(),
        };
        assert_eq!(span.name, want_name, "{ctx}: span name");
        assert_eq!(
            opt("db.response.status_code"),
            op.error,
            "{ctx}: status code"
        );
        assert_eq!(opt("error.type"), op.error, "{ctx}: error.type");
        let want_status = if op.error.is_some() {
            "STATUS_CODE_ERROR"
        } else {
            "STATUS_CODE_UNSET"
        };
        assert_eq!(span.status_code, want_status, "{ctx}: status");
        assert_eq!(span.str_attr("server.address"), "127.0.0.1", "{ctx}");
        assert_eq!(span.int_attr("server.port"), i64::from(self.port), "{ctx}");
        assert!(
            span.start_ns > 0 && span.start_ns <= span.end_ns,
            "{ctx}: times"
        );
        assert_eq!(span.res_str("host.name"), host_name(), "{ctx}: host.name");
    }

    /// Asserts that `span` is in `client`'s Resource.
    pub fn assert_client_resource(&self, span: &Span, client: &ClientRun) {
        assert_eq!(span.kind, "SPAN_KIND_CLIENT", "{}", self.name);
        assert_eq!(
            span.res_int("process.pid"),
            i64::from(client.pid),
            "{}: client span pid",
            self.name
        );
        assert_eq!(
            span.res_str("process.executable.name"),
            client.exe_name,
            "{}",
            self.name
        );
        assert!(
            !span.resource.contains_key("process.command_line"),
            "{}: process.command_line is not exported by default",
            self.name
        );
    }

    /// Asserts that `span` is in the server's Resource: the server's pid (or, for PostgreSQL,
    /// a backend's: any pid other than the postmaster's and the clients'), executable `exe`.
    pub fn assert_server_resource(&self, span: &Span, exe: &str, client_pids: &[u32]) {
        assert_eq!(span.kind, "SPAN_KIND_SERVER", "{}", self.name);
        let pid = span.res_int("process.pid");
        let keys: Vec<&str> = span.resource.keys().map(String::as_str).collect();
        assert!(
            [
                "service.name",
                "process.executable.name",
                "process.executable.path"
            ]
            .iter()
            .all(|k| span.resource.contains_key(*k)),
            "{}: server span of pid {pid} ({:?}) has a Resource with only {keys:?}: the agent \
             read nothing of the process (gone from /proc before it looked, and no comm)",
            self.name,
            span.name
        );
        if self.kind == DbKind::Postgres {
            assert!(
                pid != i64::from(self.server_pid)
                    && !client_pids.iter().any(|c| i64::from(*c) == pid),
                "{}: server span pid {pid} (postmaster {}, clients {client_pids:?})",
                self.name,
                self.server_pid
            );
        } else {
            assert_eq!(
                pid,
                i64::from(self.server_pid),
                "{}: server span pid",
                self.name
            );
        }
        assert_eq!(
            span.res_str("process.executable.name"),
            exe,
            "{}: server executable",
            self.name
        );
    }

    /// Asserts the duration histograms count `clients` client and `servers` server operations,
    /// all with this system's `db.system.name`.
    pub fn assert_metrics(&self, servers: usize, clients: usize) {
        let c = histogram_count(&self.metrics, "db.client.operation.duration");
        let s = histogram_count(&self.metrics, "wirelens.db.server.operation.duration");
        let names: std::collections::BTreeSet<&str> =
            self.metrics.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            (s, c),
            (servers as u64, clients as u64),
            "{}: db.server/client.operation.duration counts; metrics: {names:?}",
            self.name
        );
        for p in self
            .metrics
            .iter()
            .filter(|p| p.name.starts_with("db.") && p.name.ends_with("operation.duration"))
        {
            assert_eq!(p.kind, "histogram", "{}", p.name);
            assert_eq!(p.unit, "s", "{}", p.name);
            assert_eq!(
                p.attr_str("db.system.name"),
                Some(self.kind.system()),
                "{}",
                p.name
            );
            assert!(
                !p.attributes.contains_key("db.query.text"),
                "{}: db.query.text on a metric",
                p.name
            );
        }
    }

    /// Agent stderr, receiver and server log tails, for panic messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "--- agent stderr (tail) ---\n{}\n--- receiver log (tail) ---\n{}\n--- server log (tail) ---\n{}\n",
            tail(&self.output.stderr, 30),
            tail(&self.receiver_log, 10),
            tail(&self.server_log, 10)
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "port": self.port,
            "server_pid": self.server_pid,
            "system": self.kind.system(),
            "agent_status": self.output.status.to_string(),
            "spans": self.spans.iter().map(Span::to_json).collect::<Vec<_>>(),
            "metrics": self.metrics.iter().map(MetricPoint::to_json).collect::<Vec<_>>(),
            "agent_stderr": self.output.stderr.lines().collect::<Vec<_>>(),
        })
    }
}

/// Base name of `/proc/<pid>/exe` of a running server (what its spans' Resource names).
pub fn server_exe(server: &DbServer) -> String {
    exe_name(server.pid())
}

/// Path of a PostgreSQL binary.
pub fn pg_bin(name: &str) -> PathBuf {
    PathBuf::from(PG_BIN).join(name)
}
