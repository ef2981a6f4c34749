//! Network and connection metrics (`--network-metrics`) against the kernel's own figures.
//!
//! The test makes two network namespaces joined by a veth pair, a server in one and a client
//! in the other, and loses 20% of the client's packets on their way in to the server (this
//! kernel has no `sch_netem`, so the loss is an `iptables` `statistic` rule inside the
//! server's namespace: the same for TCP as loss on the wire). The client plays ping-pong
//! with small messages (one segment each, so one retransmitted skb is one retransmitted
//! segment), then also makes a refused connect, and at the end a connect the kernel times out
//! (SYNs to a port the server's namespace drops, `tcp_syn_retries=1` in the client's) and one
//! the client gives up on itself (a 0.3 s connect timeout, then close): failures counted per
//! `error.type` (`refused`, `timeout`, `aborted`). The agent's figures for the client's
//! endpoint are checked against `ss -ti` for the same connection and against
//! `TcpRetransSegs` of the client's namespace (`/proc/net/netstat`, which holds only this
//! test's traffic), and the per-interface counters against the namespace's `/proc/net/dev`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wirelens_tests::{Agent, MetricPoint, Otlp, Receiver, check_semconv, free_port, wait_until};

const CLIENT_ADDR: &str = "10.213.7.1";
const SERVER_ADDR: &str = "10.213.7.2";
/// Ping-pong rounds: about 25 losses at 20%, each costing a retransmission timeout.
const ROUNDS: usize = 120;

fn run(args: &[&str]) {
    let status = Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap_or_else(|e| panic!("run {args:?}: {e}"));
    assert!(status.success(), "{args:?} failed");
}

fn output(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("run {args:?}: {e}"));
    assert!(out.status.success(), "{args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces and the veth between them; deleted on drop.
struct Link {
    client_ns: String,
    server_ns: String,
}

impl Link {
    fn new() -> Self {
        let id = std::process::id() % 100_000;
        let link = Self {
            client_ns: format!("wlnm-c-{id}"),
            server_ns: format!("wlnm-s-{id}"),
        };
        let (c, s) = (link.client_ns.as_str(), link.server_ns.as_str());
        let (vc, vs) = (format!("wlc{id}"), format!("wls{id}"));
        run(&["ip", "netns", "add", c]);
        run(&["ip", "netns", "add", s]);
        run(&[
            "ip", "link", "add", &vc, "netns", c, "type", "veth", "peer", &vs, "netns", s,
        ]);
        run(&[
            "ip",
            "-n",
            c,
            "addr",
            "add",
            &format!("{CLIENT_ADDR}/24"),
            "dev",
            &vc,
        ]);
        run(&[
            "ip",
            "-n",
            s,
            "addr",
            "add",
            &format!("{SERVER_ADDR}/24"),
            "dev",
            &vs,
        ]);
        for (ns, dev) in [(c, &vc), (s, &vs)] {
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        run(&[
            "ip",
            "netns",
            "exec",
            s,
            "iptables",
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "-s",
            CLIENT_ADDR,
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            "0.2",
            "-j",
            "DROP",
        ]);
        link
    }

    /// Drop every packet to `port` in the server's namespace, and let the client's kernel
    /// give up a connect after one SYN retransmission (about 3 s).
    fn silence(&self, port: u16) {
        run(&[
            "ip",
            "netns",
            "exec",
            &self.server_ns,
            "iptables",
            "-I",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            &port.to_string(),
            "-j",
            "DROP",
        ]);
        run(&[
            "ip",
            "netns",
            "exec",
            &self.client_ns,
            "sysctl",
            "-qw",
            "net.ipv4.tcp_syn_retries=1",
        ]);
    }

    fn client_interface(&self) -> String {
        format!("wlc{}", std::process::id() % 100_000)
    }

    /// Inode of the client's namespace (what the agent puts in `wirelens.network.namespace`).
    fn client_inode(&self) -> u64 {
        std::fs::metadata(format!("/run/netns/{}", self.client_ns))
            .expect("netns file")
            .ino()
    }

    fn in_client(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "netns", "exec", self.client_ns.as_str()];
        all.extend_from_slice(args);
        output(&all)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for ns in [&self.client_ns, &self.server_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A Python program in a namespace, talking over stdin/stdout.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn start(ns: &str, script: &str) -> Self {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "/usr/bin/python3", "-u", "-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn expect_line(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read peer");
        assert!(
            line.starts_with(prefix),
            "peer said {line:?}, expected {prefix}"
        );
        line
    }

    fn tell(&mut self) {
        writeln!(self.stdin).expect("write to peer");
        self.stdin.flush().expect("flush");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
}

/// `TcpRetransSegs` of `/proc/net/netstat`'s `Tcp:` lines (`/proc/net/snmp` format).
fn retrans_segs(snmp: &str) -> u64 {
    let tcp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Tcp:")).collect();
    let names: Vec<&str> = tcp[0].split_whitespace().collect();
    let values: Vec<&str> = tcp[1].split_whitespace().collect();
    let i = names
        .iter()
        .position(|n| *n == "RetransSegs")
        .expect("RetransSegs column");
    values[i].parse().expect("number")
}

/// A `key:value` field of `ss -ti` output.
fn ss_field<'a>(ss: &'a str, key: &str) -> &'a str {
    ss.split_whitespace()
        .find_map(|f| f.strip_prefix(key).and_then(|v| v.strip_prefix(':')))
        .unwrap_or_else(|| panic!("no {key} in ss output:\n{ss}"))
}

/// Latest value of `name` for `pid`'s endpoint selected by `filter`, with its time.
fn latest(
    points: &[MetricPoint],
    name: &str,
    pid: u32,
    filter: impl Fn(&MetricPoint) -> bool,
) -> Option<(u64, f64)> {
    points
        .iter()
        .filter(|p| p.name == name)
        .filter(|p| p.resource.get("process.pid").and_then(|v| v.as_i64()) == Some(i64::from(pid)))
        .filter(|p| filter(p))
        .max_by_key(|p| p.time_ns)
        .and_then(|p| Some((p.time_ns, p.value?)))
}

#[test]
fn connection_metrics_match_the_kernel() {
    let link = Link::new();
    let port = free_port();
    let closed_port = free_port();
    let silent_port = free_port();
    let receiver = Receiver::start();
    let mut env = receiver.env(Otlp::Grpc);
    env.push(("OTEL_METRIC_EXPORT_INTERVAL".into(), "1000".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let port_arg = port.to_string();
    let prometheus = format!("127.0.0.1:{}", free_port());
    let agent = Agent::start(
        &[
            "--output",
            "none",
            "--port",
            &port_arg,
            "--network-metrics",
            "true",
            "--prometheus-listen",
            &prometheus,
        ],
        &env,
    );

    let mut server = Peer::start(
        &link.server_ns,
        &format!(
            "import socket\n\
             l = socket.socket()\n\
             l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             l.bind(('{SERVER_ADDR}', {port})); l.listen()\n\
             print('ready', flush=True)\n\
             c, _ = l.accept()\n\
             c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n\
             while True:\n\
             \x20   d = c.recv(65536)\n\
             \x20   if not d: break\n\
             \x20   c.sendall(d * 2)\n"
        ),
    );
    server.expect_line("ready");
    let retrans_before = retrans_segs(&link.in_client(&["cat", "/proc/net/snmp"]));
    let mut client = Peer::start(
        &link.client_ns,
        &format!(
            "import socket, sys\n\
             s = socket.create_connection(('{SERVER_ADDR}', {port}))\n\
             s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n\
             for i in range({ROUNDS}):\n\
             \x20   s.sendall(b'm' * 100)\n\
             \x20   got = 0\n\
             \x20   while got < 200: got += len(s.recv(65536))\n\
             try:\n\
             \x20   socket.create_connection(('127.0.0.1', {closed_port}))\n\
             \x20   print('connected?!', flush=True)\n\
             except ConnectionRefusedError:\n\
             \x20   print('refused', flush=True)\n\
             print('done', flush=True)\n\
             sys.stdin.readline()\n\
             s.close()\n\
             print('closed', flush=True)\n\
             sys.stdin.readline()\n\
             try:\n\
             \x20   socket.create_connection(('{SERVER_ADDR}', {silent_port}), timeout=0.3)\n\
             except TimeoutError:\n\
             \x20   print('gave up', flush=True)\n\
             try:\n\
             \x20   socket.create_connection(('{SERVER_ADDR}', {silent_port}))\n\
             except OSError as e:\n\
             \x20   print('timed out', e.errno, flush=True)\n\
             sys.stdin.readline()\n"
        ),
    );
    let pid = client.child.id();
    client.expect_line("refused");
    client.expect_line("done");

    // Let the last delayed ACKs and any late retransmission of the server go out first.
    std::thread::sleep(Duration::from_millis(1500));
    // The kernel's view of the open connection, and of the namespace's retransmissions.
    let ss = link.in_client(&["ss", "-tin", "dst", SERVER_ADDR]);
    let ss_at = now_ns();
    let kernel_retrans = retrans_segs(&link.in_client(&["cat", "/proc/net/snmp"])) - retrans_before;
    eprintln!("ss -ti:\n{ss}\nTcpRetransSegs: {kernel_retrans}");
    let to_server = |p: &MetricPoint| {
        p.attr_str("network.peer.address") == Some(SERVER_ADDR)
            && p.attr_int("network.peer.port") == Some(i64::from(port))
    };
    let dir = |d: &'static str| {
        move |p: &MetricPoint| to_server(p) && p.attr_str("network.io.direction") == Some(d)
    };
    let (_, segs_out) = wait_until("segments sampled after ss", Duration::from_secs(20), || {
        latest(
            &receiver.metrics(),
            "wirelens.network.packet.count",
            pid,
            dir("transmit"),
        )
        .filter(|(t, _)| *t > ss_at + 2_500_000_000)
    });
    let points = receiver.metrics();
    let value = |name: &str, f: &dyn Fn(&MetricPoint) -> bool| {
        latest(&points, name, pid, f)
            .unwrap_or_else(|| panic!("no {name} for pid {pid}"))
            .1
    };
    let (segs_in, sent, received, retrans, rtt, rttvar) = (
        value("wirelens.network.packet.count", &dir("receive")),
        value("wirelens.network.io", &dir("transmit")),
        value("wirelens.network.io", &dir("receive")),
        value("wirelens.tcp.retransmits", &to_server),
        value("wirelens.tcp.rtt", &to_server),
        value("wirelens.tcp.rtt.variance", &to_server),
    );
    eprintln!(
        "agent: segs out {segs_out} in {segs_in}, bytes out {sent} in {received}, \
         retransmits {retrans}, rtt {rtt} s ± {rttvar} s"
    );
    let num = |key: &str| ss_field(&ss, key).parse::<f64>().expect("number");
    assert_eq!(sent, (ROUNDS * 100) as f64, "bytes sent");
    assert_eq!(sent, num("bytes_acked") - 1.0, "bytes_acked counts the SYN");
    assert_eq!(received, num("bytes_received"), "bytes received");
    assert_eq!(received, (ROUNDS * 200) as f64);
    assert_eq!(segs_out, num("segs_out"), "segments sent");
    assert_eq!(segs_in, num("segs_in"), "segments received");
    let (ss_rtt, ss_rttvar) = ss_field(&ss, "rtt").split_once('/').expect("rtt:a/b");
    let (ss_rtt, ss_rttvar): (f64, f64) = (
        ss_rtt.parse().expect("rtt"),
        ss_rttvar.parse().expect("rttvar"),
    );
    // ss prints milliseconds with three decimals; the agent exports seconds.
    assert!(
        (rtt * 1e3 - ss_rtt).abs() <= 0.002,
        "rtt {rtt} s vs ss {ss_rtt} ms"
    );
    assert!(
        (rttvar * 1e3 - ss_rttvar).abs() <= 0.002,
        "rttvar {rttvar} s vs ss {ss_rttvar} ms"
    );
    let ss_retrans: f64 = ss_field(&ss, "retrans")
        .split_once('/')
        .and_then(|(_, total)| total.parse().ok())
        .expect("retrans:a/b");
    assert!(
        kernel_retrans >= 5,
        "the loss rule lost too little: {kernel_retrans}"
    );
    assert_eq!(retrans, ss_retrans, "retransmits against tcp_info's total");
    let off = (retrans - kernel_retrans as f64).abs() / kernel_retrans as f64;
    assert!(
        off <= 0.05,
        "retransmits {retrans} vs TcpRetransSegs {kernel_retrans}: {:.1}% off",
        off * 100.0
    );

    // The refused connect, under the connecting process.
    let refused = |p: &MetricPoint| {
        p.attr_str("network.peer.address") == Some("127.0.0.1")
            && p.attr_int("network.peer.port") == Some(i64::from(closed_port))
    };
    assert_eq!(value("wirelens.tcp.connection.failed", &refused), 1.0);
    let reasons: std::collections::BTreeSet<&str> = points
        .iter()
        .filter(|p| p.name == "wirelens.tcp.connection.failed" && refused(p))
        .filter_map(|p| p.attr_str("error.type"))
        .collect();
    assert_eq!(
        reasons,
        ["refused"].into(),
        "error.type of the refused connect"
    );
    assert_eq!(value("wirelens.tcp.connection.opened", &refused), 0.0);
    assert_eq!(value("wirelens.tcp.connection.opened", &to_server), 1.0);
    assert_eq!(value("wirelens.tcp.connection.active", &to_server), 1.0);

    // Close: closed 1, active 0.
    client.tell();
    client.expect_line("closed");
    let closed_at = now_ns();
    wait_until("the close exported", Duration::from_secs(20), || {
        latest(
            &receiver.metrics(),
            "wirelens.tcp.connection.closed",
            pid,
            to_server,
        )
        .filter(|(t, v)| *t > closed_at && *v == 1.0)
    });
    let points = receiver.metrics();
    assert_eq!(
        latest(&points, "wirelens.tcp.connection.active", pid, to_server).map(|x| x.1),
        Some(0.0)
    );

    // Per interface, under the client namespace's Resource.
    let inode = link.client_inode() as i64;
    let interface = link.client_interface();
    let tx_bytes = points
        .iter()
        .filter(|p| p.name == "system.network.io")
        .filter(|p| {
            p.resource
                .get("wirelens.network.namespace")
                .and_then(|v| v.as_i64())
                == Some(inode)
        })
        .filter(|p| p.attr_str("network.interface.name") == Some(interface.as_str()))
        .filter(|p| p.attr_str("network.io.direction") == Some("transmit"))
        .max_by_key(|p| p.time_ns)
        .and_then(|p| p.value)
        .unwrap_or_else(|| panic!("no system.network.io for {interface} in netns {inode}"));
    let dev = link.in_client(&["cat", "/proc/net/dev"]);
    let kernel_tx: f64 = dev
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{interface}:")))
        .and_then(|rest| rest.split_whitespace().nth(8))
        .and_then(|v| v.parse().ok())
        .expect("tx bytes in /proc/net/dev");
    eprintln!("{interface} tx bytes: agent {tx_bytes}, /proc/net/dev now {kernel_tx}");
    assert!(
        tx_bytes > sent && tx_bytes <= kernel_tx,
        "{tx_bytes} vs {kernel_tx}"
    );

    // The Prometheus endpoint serves the same series.
    let pid_label = format!("/{pid}\"");
    let (retrans_line, body) = wait_until(
        "the client's retransmits on /metrics",
        Duration::from_secs(10),
        || {
            let (status, body) = wirelens_tests::http_get(&prometheus, "/metrics")?;
            assert_eq!(status, 200);
            let line = body
                .lines()
                .find(|l| {
                    l.starts_with("wirelens_tcp_retransmits")
                        && l.contains(&pid_label)
                        && l.contains(SERVER_ADDR)
                })?
                .to_owned();
            Some((line, body))
        },
    );
    // A connect the kernel times out, one the client abandons: each its own error.type.
    link.silence(silent_port);
    client.tell();
    client.expect_line("gave up");
    let timed_out = client.expect_line("timed out");
    assert_eq!(timed_out.trim(), "timed out 110", "ETIMEDOUT");
    let failed_at = now_ns();
    let silent = |reason: &'static str| {
        move |p: &MetricPoint| {
            p.attr_str("network.peer.address") == Some(SERVER_ADDR)
                && p.attr_int("network.peer.port") == Some(i64::from(silent_port))
                && p.attr_str("error.type") == Some(reason)
        }
    };
    wait_until(
        "the failed connects exported",
        Duration::from_secs(20),
        || {
            latest(
                &receiver.metrics(),
                "wirelens.tcp.connection.failed",
                pid,
                silent("timeout"),
            )
            .filter(|(t, _)| *t > failed_at)
        },
    );
    let points = receiver.metrics();
    let failed = |reason| {
        latest(
            &points,
            "wirelens.tcp.connection.failed",
            pid,
            silent(reason),
        )
        .map(|x| x.1)
    };
    assert_eq!(failed("timeout"), Some(1.0), "timed out by the kernel");
    assert_eq!(failed("aborted"), Some(1.0), "abandoned by the client");
    assert_eq!(failed("refused"), None);
    client.tell();
    drop(server);
    let requests = receiver.requests();
    agent.stop().assert_success();
    // Scraped after the OTLP export the figure above came from: the connection may have
    // retransmitted since (its close), never fewer.
    let scraped: f64 = retrans_line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0);
    assert!(
        scraped >= retrans && scraped <= retrans * 1.05 + 2.0,
        "{retrans_line} against {retrans} exported over OTLP"
    );
    assert!(
        body.lines()
            .any(|l| l.starts_with("system_network_io_bytes_total"))
    );
    check_semconv(&requests, "system.network.io");
}
