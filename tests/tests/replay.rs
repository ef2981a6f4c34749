//! `wirelens replay <capture>`: a capture recorded here (tshark on lo while curl fetches from
//! Python's http.server) gives exactly its client records; every file of the shared capture
//! corpus replays without a panic; truncated and non-capture files fail cleanly; a 200 MB
//! capture of 2000 interleaved flows replays whole (and within `--max-connections`), and
//! captures with 4 GB record lengths, bogus pcapng block lengths or random bytes end with an
//! error or a counted stop, never a panic or a hang.
//!
//! Needs a built agent (`cargo build --release -p wirelens`, or `WIRELENS_BIN`); the recording
//! test needs root (tshark on lo), tshark, curl and python3. Replay itself needs no root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wirelens_tests::{Agent, Otlp, Receiver, curl, free_port, wait_until, workspace_root};

/// Run `wirelens replay <path> <args>` with a clean environment.
fn replay(path: &Path, args: &[&str]) -> Output {
    let mut all = vec!["replay", path.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    Agent::command(&Agent::binary(), &all, &[])
        .stdin(Stdio::null())
        .output()
        .expect("run wirelens replay")
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn recorded_capture_gives_exactly_its_client_records() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("www");
    fs::create_dir_all(&root).expect("mkdir");
    fs::write(root.join("hello.txt"), "hello from the replay test\n").expect("write");
    let port = free_port();
    let pcap = dir.path().join("recorded.pcap");

    let _server = Killed(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 -m http.server"),
    );
    wait_until("http.server to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });

    let mut tshark = Killed(
        Command::new("tshark")
            .args([
                "-i",
                "lo",
                "-F",
                "pcap",
                "-q",
                "-f",
                &format!("tcp port {port}"),
            ])
            .arg("-w")
            .arg(&pcap)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tshark (is it installed?)"),
    );
    wait_until("tshark to start writing", Duration::from_secs(15), || {
        fs::metadata(&pcap).ok().filter(|m| m.len() >= 24)
    });
    std::thread::sleep(Duration::from_millis(500));

    let base = format!("http://127.0.0.1:{port}");
    curl(&["-s", "-o", "/dev/null", &format!("{base}/hello.txt")]);
    curl(&["-s", "-o", "/dev/null", &format!("{base}/missing?x=1")]);
    std::thread::sleep(Duration::from_millis(800));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(tshark.0.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while tshark.0.try_wait().expect("wait tshark").is_none() {
        assert!(Instant::now() < deadline, "tshark did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    }

    let out = replay(&pcap, &["--output", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "replay failed: {stderr}");
    let records = json_lines(&out);
    let summary: Vec<(String, String, u64, String, String)> = records
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap_or("").to_string(),
                r["target"].as_str().unwrap_or("").to_string(),
                r["status"].as_u64().unwrap_or(0),
                r["role"].as_str().unwrap_or("").to_string(),
                r["protocol"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "GET".into(),
                "/hello.txt".into(),
                200,
                "client".into(),
                "http1".into()
            ),
            (
                "GET".into(),
                "/missing?x=1".into(),
                404,
                "client".into(),
                "http1".into()
            ),
        ],
        "records: {records:#?}\nstderr: {stderr}"
    );
    for r in &records {
        assert_eq!(r["peer"], format!("127.0.0.1:{port}"), "{r}");
        assert_eq!(r["comm"], "replay");
        assert_eq!(r["pid"], 0);
        assert_eq!(r["service"], "recorded");
    }
    assert_eq!(
        wirelens_tests::stderr_counter(&stderr, "records"),
        Some(2),
        "{stderr}"
    );
    assert_eq!(
        wirelens_tests::stderr_counter(&stderr, "malformed_packets"),
        Some(0),
        "{stderr}"
    );

    // The server end: the same exchanges, server role.
    let out = replay(&pcap, &["--output", "json", "--side", "server"]);
    assert!(out.status.success());
    let roles: Vec<Value> = json_lines(&out).iter().map(|r| r["role"].clone()).collect();
    assert_eq!(roles, vec!["server", "server"]);
}

fn captures_dir() -> PathBuf {
    workspace_root().join("../shared/captures")
}

#[test]
fn every_corpus_capture_replays_without_panic() {
    let files = wirelens_tests::corpus_captures();
    let dir = captures_dir();
    let started = Instant::now();
    // Records per (capture, protocol).
    let mut found = std::collections::BTreeMap::<(String, String), usize>::new();
    println!(
        "{:<60} {:>8} {:>8} {:>10}",
        "capture", "records", "packets", "malformed"
    );
    for file in &files {
        let out = replay(file, &["--output", "json"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = file
            .strip_prefix(&dir)
            .unwrap_or(file)
            .display()
            .to_string();
        assert!(
            out.status.success(),
            "{name}: exit {:?}\n{stderr}",
            out.status
        );
        assert!(!stderr.contains("panicked"), "{name} panicked:\n{stderr}");
        let records = json_lines(&out);
        assert_eq!(
            wirelens_tests::stderr_counter(&stderr, "records"),
            Some(records.len() as u64),
            "{name}: {stderr}"
        );
        println!(
            "{name:<60} {:>8} {:>8} {:>10}",
            records.len(),
            wirelens_tests::stderr_counter(&stderr, "packets").unwrap_or(0),
            wirelens_tests::stderr_counter(&stderr, "malformed_packets").unwrap_or(0)
        );
        for r in &records {
            let protocol = r["protocol"].as_str().unwrap_or("?").to_string();
            *found.entry((name.clone(), protocol)).or_default() += 1;
        }
    }
    // Captures whose requests we know: at least this many records of their protocol (the
    // counts they give today, a little under, so a parser change that loses them fails).
    for (known, protocol, least) in [
        ("zeek/http/pipelined-requests.pcap", "http1", 5),
        ("ndpi/http.pcapng", "http1", 1),
        ("zeek/postgresql/greenhouse-app.pcap", "postgres", 80),
        ("ndpi/pgsql.pcap", "postgres", 5),
        ("zeek/mysql/mysql.pcap", "mysql", 12),
        ("ndpi/mysql.pcapng", "mysql", 1),
        ("zeek/redis/django-cloud.pcapng", "redis", 150),
        ("ndpi/kafka.pcapng", "kafka", 11),
        ("ndpi/amqp.pcap", "amqp", 36),
        ("ndpi/dns.pcap", "dns", 1),
        ("zeek/dns/long-connection.pcap", "dns", 11),
        ("ndpi/bad-dns-traffic.pcap", "dns", 160),
    ] {
        let got = found
            .get(&(known.to_string(), protocol.to_string()))
            .copied()
            .unwrap_or(0);
        assert!(
            got >= least,
            "{known} gave {got} {protocol} records, want at least {least}"
        );
    }
    println!("{} captures in {:?}", files.len(), started.elapsed());
}

#[test]
fn truncated_and_non_capture_files_fail_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = captures_dir().join("zeek/http/pipelined-requests.pcap");
    let bytes = fs::read(&source).expect("read the corpus capture");
    let cut = dir.path().join("cut.pcap");
    fs::write(&cut, &bytes[..bytes.len() / 2 + 7]).expect("write");
    let out = replay(&cut, &["--output", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "truncated capture: {stderr}");
    assert!(stderr.contains("truncated"), "no warning: {stderr}");
    assert!(
        wirelens_tests::stderr_counter(&stderr, "packets").is_some_and(|n| n > 0),
        "{stderr}"
    );

    let text = dir.path().join("notes.pcap");
    fs::write(&text, "this is not a capture\n").expect("write");
    let out = replay(&text, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a pcap or pcapng"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = replay(&dir.path().join("absent.pcap"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn replay_exports_client_spans_over_otlp() {
    let receiver = Receiver::start();
    let file = captures_dir().join("zeek/http/pipelined-requests.pcap");
    let env = receiver.env(Otlp::Grpc);
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = Agent::command(
        &Agent::binary(),
        &["replay", file.to_str().expect("utf-8"), "--output", "none"],
        &envs,
    )
    .stdin(Stdio::null())
    .output()
    .expect("run wirelens replay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "--output none printed something");
    assert_eq!(
        wirelens_tests::stderr_counter(&stderr, "spans_exported"),
        Some(5),
        "{stderr}"
    );
    let spans = receiver.wait_for_spans(5, Duration::from_secs(10));
    assert_eq!(spans.len(), 5, "{}", receiver.log());
    for span in &spans {
        assert!(span.is_client(), "{}", span.summary());
        assert_eq!(span.res_str("service.name"), "pipelined-requests");
        assert_eq!(span.str_attr("http.request.method"), "GET");
    }
}

/// Run `wirelens replay` and wait at most `limit` for it: past it, the replay hangs.
fn replay_bounded(path: &Path, args: &[&str], limit: Duration) -> wirelens_tests::AgentOutput {
    let mut all = vec!["replay", path.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    let cmd = Agent::command(&Agent::binary(), &all, &[]);
    let out = Agent::spawn_command(cmd).wait_exit(limit);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    out
}

/// A classic little-endian µs pcap header; link type 101 (raw IP).
fn pcap_header() -> Vec<u8> {
    let mut h = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&65535u32.to_le_bytes());
    h.extend_from_slice(&101u32.to_le_bytes());
    h
}

/// One pcap record: an IPv4/TCP packet from port `sport` to `dport` of 127.0.0.1.
#[allow(clippy::too_many_arguments)]
fn tcp_record(
    out: &mut Vec<u8>,
    ts_us: u64,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) {
    let total = 40 + payload.len();
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ack.to_be_bytes());
    p.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend_from_slice(payload);
    out.extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&p);
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;
const FIN_ACK: u8 = 0x11;

/// Writes a capture of `flows` HTTP/1.1 connections to port 80, open at once, each carrying
/// `exchanges` request/response pairs of about 1.5 KB; returns its size.
fn write_big_capture(path: &Path, flows: u16, exchanges: u32) -> u64 {
    use std::io::Write as _;
    let file = fs::File::create(path).expect("create the capture");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    w.write_all(&pcap_header()).expect("write");
    let body = vec![b'x'; 1400];
    let response = [
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes(),
        body,
    ]
    .concat();
    let mut ts = 1_700_000_000_000_000u64;
    let mut buf = Vec::with_capacity(1 << 16);
    // Sequence numbers: client 1000 + sent, server 5000 + sent (both after their SYN).
    let (c0, s0) = (1000u32, 5000u32);
    let mut sent = vec![(0u32, 0u32); usize::from(flows)];
    let port = |f: u16| 10_000 + f;
    for f in 0..flows {
        tcp_record(&mut buf, ts, port(f), 80, c0 - 1, 0, SYN, b"");
        tcp_record(&mut buf, ts + 1, 80, port(f), s0 - 1, c0, SYN | ACK, b"");
        tcp_record(&mut buf, ts + 2, port(f), 80, c0, s0, ACK, b"");
        ts += 3;
        w.write_all(&buf).expect("write");
        buf.clear();
    }
    for round in 0..exchanges {
        for f in 0..flows {
            let (c, s) = &mut sent[usize::from(f)];
            let request = format!("GET /{f}/{round} HTTP/1.1\r\nHost: big\r\n\r\n").into_bytes();
            tcp_record(
                &mut buf,
                ts,
                port(f),
                80,
                c0 + *c,
                s0 + *s,
                PSH_ACK,
                &request,
            );
            *c += request.len() as u32;
            tcp_record(
                &mut buf,
                ts + 1,
                80,
                port(f),
                s0 + *s,
                c0 + *c,
                PSH_ACK,
                &response,
            );
            *s += response.len() as u32;
            ts += 2;
            w.write_all(&buf).expect("write");
            buf.clear();
        }
    }
    for f in 0..flows {
        let (c, s) = sent[usize::from(f)];
        tcp_record(&mut buf, ts, port(f), 80, c0 + c, s0 + s, FIN_ACK, b"");
        tcp_record(
            &mut buf,
            ts + 1,
            80,
            port(f),
            s0 + s,
            c0 + c + 1,
            FIN_ACK,
            b"",
        );
        ts += 2;
        w.write_all(&buf).expect("write");
        buf.clear();
    }
    w.flush().expect("flush");
    fs::metadata(path).expect("stat").len()
}

#[test]
fn huge_capture_replays_whole_and_within_the_connection_bound() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("big.pcap");
    let (flows, exchanges) = (2000u16, 70u32);
    let size = write_big_capture(&path, flows, exchanges);
    assert!(size > 200 << 20, "the capture has {size} bytes");
    let packets = u64::from(flows) * (5 + 2 * u64::from(exchanges));

    let out = replay_bounded(&path, &["--output", "none"], Duration::from_secs(600));
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(
        wirelens_tests::stderr_counter(&out.stderr, "packets"),
        Some(packets),
        "{}",
        out.stderr
    );
    assert_eq!(
        wirelens_tests::stderr_counter(&out.stderr, "records"),
        Some(u64::from(flows) * u64::from(exchanges)),
        "every exchange of every flow: {}",
        out.stderr
    );
    assert_eq!(
        wirelens_tests::stderr_counter(&out.stderr, "drops"),
        Some(0),
        "{}",
        out.stderr
    );

    // At most 100 flows at once: the first 100 give their records, the rest are counted.
    let out = replay_bounded(
        &path,
        &["--output", "none", "--max-connections", "100"],
        Duration::from_secs(600),
    );
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(
        wirelens_tests::stderr_counter(&out.stderr, "records"),
        Some(100 * u64::from(exchanges)),
        "{}",
        out.stderr
    );
    assert!(
        wirelens_tests::stderr_counter(&out.stderr, "drops")
            .is_some_and(|n| n >= u64::from(flows) - 100),
        "the rejected flows are counted: {}",
        out.stderr
    );
}

/// Deterministic noise (xorshift64).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// A pcapng section header and one raw-IP interface.
fn pcapng_start() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0x0a0d_0d0au32.to_le_bytes());
    b.extend_from_slice(&28u32.to_le_bytes());
    b.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    b.extend_from_slice(&[1, 0, 0, 0]);
    b.extend_from_slice(&u64::MAX.to_le_bytes());
    b.extend_from_slice(&28u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&20u32.to_le_bytes());
    b.extend_from_slice(&101u16.to_le_bytes());
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(&20u32.to_le_bytes());
    b
}

#[test]
fn malformed_captures_end_with_an_error_or_a_counted_stop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limit = Duration::from_secs(60);
    let mut one_packet = pcap_header();
    tcp_record(
        &mut one_packet,
        1,
        40000,
        80,
        1,
        1,
        PSH_ACK,
        b"GET / HTTP/1.1\r\n\r\n",
    );

    // A record header claiming 4 GB after one good packet: a stop, reported.
    let mut huge = one_packet.clone();
    huge.extend_from_slice(&[0; 8]);
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    huge.extend_from_slice(&noise(4096, 7));
    // pcapng blocks claiming 4 GB, 0 and 5 bytes.
    let bogus_block = |len: u32| {
        let mut b = pcapng_start();
        b.extend_from_slice(&6u32.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&noise(256, 11));
        b
    };
    let stopped: Vec<(&str, Vec<u8>)> = vec![
        ("huge-record.pcap", huge),
        (
            "cut-header.pcap",
            one_packet[..one_packet.len() - 30].to_vec(),
        ),
        ("huge-block.pcapng", bogus_block(0xffff_fff0)),
        ("zero-block.pcapng", bogus_block(0)),
        ("odd-block.pcapng", bogus_block(5)),
    ];
    for (name, bytes) in stopped {
        let path = dir.path().join(name);
        fs::write(&path, bytes).expect("write");
        let out = replay_bounded(&path, &["--output", "json"], limit);
        assert!(out.status.success(), "{name}: {}", out.stderr);
        assert!(
            out.stderr.contains("stopped after"),
            "{name}: the stop is reported: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("wirelens counters:"),
            "{name}: {}",
            out.stderr
        );
    }

    // Random bytes after a good header: frames of noise, each decoded or counted.
    let mut noisy = pcap_header();
    noisy.extend_from_slice(&noise(1 << 20, 3));
    let path = dir.path().join("noise-after-header.pcap");
    fs::write(&path, noisy).expect("write");
    let out = replay_bounded(&path, &[], limit);
    assert!(out.status.success(), "{}", out.stderr);

    // Not a capture at all: random bytes, an empty file, a directory, a device.
    let random = dir.path().join("random.pcap");
    fs::write(&random, noise(1 << 20, 5)).expect("write");
    let empty = dir.path().join("empty.pcap");
    fs::write(&empty, b"").expect("write");
    for (path, says) in [
        (random.as_path(), "not a pcap or pcapng"),
        (empty.as_path(), "not a pcap or pcapng"),
        (dir.path(), "not a regular file"),
        (Path::new("/dev/zero"), "not a regular file"),
    ] {
        let out = replay_bounded(path, &[], limit);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: {}",
            path.display(),
            out.stderr
        );
        assert!(
            out.stderr.contains(says),
            "{}: {}",
            path.display(),
            out.stderr
        );
    }
}
