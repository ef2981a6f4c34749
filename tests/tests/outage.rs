//! A backend that is down, or accepts and then stalls, does not hurt, and loses nothing it need
//! not: nginx traced under curl load while the OTLP endpoint first refuses connections, then
//! accepts them and never answers, then finally is a real receiver. Every span produced is
//! either delivered (once) or counted as dropped, and with the default spool nothing is
//! dropped; with a spool too small for the outage, the oldest are dropped and counted. The
//! agent's memory stays under its bound throughout.
//!
//! The outage is shortened for CI (seconds, not minutes); `bench/` holds nothing longer yet.
//!
//! Needs root, `scripts/setup.sh` and a built agent; run one at a time.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wirelens_tests::{Agent, ClientProcess, Nginx, Receiver, free_port, poll};

/// Requests per load phase.
const REQUESTS: usize = 1500;

/// A TCP server that accepts every connection and never answers (reads and discards).
struct Staller {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Staller {
    fn start(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the stalling server");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Ok((conn, _)) = listener.accept() {
                    let _ = conn.set_nonblocking(true);
                    held.push(conn);
                }
                for conn in &mut held {
                    let mut buf = [0u8; 4096];
                    let _ = conn.read(&mut buf);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Staller {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Staller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `REQUESTS` GETs over one keep-alive connection, tagged with `phase`.
fn load(nginx: &Nginx, phase: &str) {
    let url = format!(
        "http://127.0.0.1:{}/index.html?{phase}=[1-{REQUESTS}]",
        nginx.port
    );
    let run = ClientProcess::spawn(
        &[
            "/usr/bin/curl".to_string(),
            "-s".into(),
            "-o".into(),
            "/dev/null".into(),
            url,
        ],
        &[],
    )
    .wait();
    assert!(run.status.success(), "curl failed: {}", run.stderr);
}

/// Peak resident memory of `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Down, then stalled, then back: returns (produced, exported, dropped, unique spans received,
/// peak RSS KiB).
fn outage(spool_bytes: &str) -> (u64, u64, u64, usize, u64) {
    let nginx = Nginx::start(free_port());
    let otlp_port = free_port();
    let endpoint = format!("http://127.0.0.1:{otlp_port}");
    let port = nginx.port.to_string();
    let agent = Agent::start(
        &["--port", &port, "--output", "none"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("WIRELENS_EXPORT_BUFFER_BYTES", spool_bytes),
        ],
    );
    // Down: nothing listens.
    load(&nginx, "down");
    std::thread::sleep(Duration::from_secs(3));
    // Stalled: connections accepted, never answered.
    {
        let _staller = Staller::start(otlp_port);
        load(&nginx, "stalled");
        std::thread::sleep(Duration::from_secs(4));
    }
    // Back.
    let receiver = Receiver::start_on(otlp_port);
    // Until every span is in, or (when some were dropped) the count stops growing for 8 s.
    let expected = 4 * REQUESTS;
    let mut last = (0usize, std::time::Instant::now());
    poll(Duration::from_secs(90), || {
        let n = receiver.spans().len();
        if n != last.0 {
            last = (n, std::time::Instant::now());
        }
        n >= expected || (n > 0 && last.1.elapsed() > Duration::from_secs(8))
    });
    let rss = peak_rss_kib(agent.pid());
    let out = agent.stop();
    out.assert_success();
    let spans = receiver.spans();
    let unique: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    assert_eq!(
        unique.len(),
        spans.len(),
        "a span was delivered twice ({} spans, {} unique)",
        spans.len(),
        unique.len()
    );
    eprintln!("agent log:\n{}", wirelens_tests::tail(&out.stderr, 30));
    (
        out.counter("records"),
        out.counter("spans_exported"),
        out.counter("spans_dropped"),
        unique.len(),
        rss,
    )
}

#[test]
fn spans_spooled_through_an_outage_and_a_stall_are_all_delivered() {
    let (produced, exported, dropped, received, rss) = outage("33554432");
    let expected = (4 * REQUESTS) as u64;
    assert_eq!(
        produced, expected,
        "records: curl's and nginx's side of every request"
    );
    assert_eq!(
        (exported, dropped),
        (expected, 0),
        "with the default spool every span survives the outage"
    );
    assert_eq!(
        received as u64, exported,
        "the receiver got what was exported"
    );
    assert!(rss < 256 * 1024, "peak RSS {rss} KiB over 256 MiB");
}

#[test]
fn a_small_spool_drops_the_oldest_and_counts_them() {
    let (produced, exported, dropped, received, _) = outage("65536");
    assert_eq!(produced, (4 * REQUESTS) as u64);
    assert!(dropped > 0, "a 64 KiB spool cannot hold the outage's spans");
    assert_eq!(
        exported + dropped,
        produced,
        "every span exported or counted as dropped"
    );
    assert_eq!(
        received as u64, exported,
        "the receiver got what was exported"
    );
}
