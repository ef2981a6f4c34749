//! `wirelens replay <capture>`: a capture recorded here (tshark on lo while curl fetches from
//! Python's http.server) gives exactly its client records; every file of the shared capture
//! corpus replays without a panic; truncated and non-capture files fail cleanly.
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

/// The value of `name=` in the `wirelens counters:` line.
fn counter(stderr: &str, name: &str) -> Option<u64> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("wirelens counters:"))?;
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
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
    assert_eq!(counter(&stderr, "records"), Some(2), "{stderr}");
    assert_eq!(counter(&stderr, "malformed_packets"), Some(0), "{stderr}");

    // The server end: the same exchanges, server role.
    let out = replay(&pcap, &["--output", "json", "--side", "server"]);
    assert!(out.status.success());
    let roles: Vec<Value> = json_lines(&out).iter().map(|r| r["role"].clone()).collect();
    assert_eq!(roles, vec!["server", "server"]);
}

fn captures_dir() -> PathBuf {
    workspace_root().join("../shared/captures")
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("pcap" | "pcapng")
        ) {
            out.push(path);
        }
    }
}

#[test]
fn every_corpus_capture_replays_without_panic() {
    let dir = captures_dir();
    assert!(dir.is_dir(), "{} not found", dir.display());
    let mut files = Vec::new();
    collect(&dir, &mut files);
    files.sort();
    assert!(!files.is_empty(), "no captures under {}", dir.display());
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
            counter(&stderr, "records"),
            Some(records.len() as u64),
            "{name}: {stderr}"
        );
        println!(
            "{name:<60} {:>8} {:>8} {:>10}",
            records.len(),
            counter(&stderr, "packets").unwrap_or(0),
            counter(&stderr, "malformed_packets").unwrap_or(0)
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
        counter(&stderr, "packets").is_some_and(|n| n > 0),
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
    assert_eq!(counter(&stderr, "spans_exported"), Some(5), "{stderr}");
    let spans = receiver.wait_for_spans(5, Duration::from_secs(10));
    assert_eq!(spans.len(), 5, "{}", receiver.log());
    for span in &spans {
        assert!(span.is_client(), "{}", span.summary());
        assert_eq!(span.res_str("service.name"), "pipelined-requests");
        assert_eq!(span.str_attr("http.request.method"), "GET");
    }
}
