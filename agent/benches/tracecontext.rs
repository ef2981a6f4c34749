//! The trace-context stage's CPU cost (`src/tracecontext/`): records per second through it
//! (accepted, held, decided, sent and forgotten, as the pipeline drives it), for each way it
//! connects spans, and the cost per request of a whole proxied request.
//!
//! - `pairing`: client and server records of one request between two traced processes (TCP,
//!   paired by position at arrival).
//! - `in_process`: a server request and a client call made inside it on the same thread.
//! - `dns`: a lookup and the DNS server's side of it (UDP, paired by transaction id).
//! - `midstream`: client and server records of a connection joined mid-stream (positions
//!   disagree: paired by time when due).
//! - `proxy_request`: curl → nginx → app, four records per request (two pairs, one call made
//!   inside a request); its time per element is the stage's CPU per request.
//!
//! Times are the bench thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time: on a
//! shared host, wall time counts the other processes' turns too. The records are made outside
//! the measurement; sending includes dropping each record (the exporter's queue would take it).
//!
//! `cargo bench -p wirelens --bench tracecontext`

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use wirelens::conntrack::CallOrigin;
use wirelens::stats::Stats;
use wirelens::tracecontext::{TraceContext, TraceContextConfig};
use wirelens_otel::{Observation, ProcessInfo};
use wirelens_parsers::{Detail, DnsRecord, DnsTransport, HttpRecord, Protocol, Record, Role};

/// Requests per batch: the stage holds one batch at a time, as under a steady load of this
/// many requests per hold time.
const REQUESTS: u64 = 1000;

fn process(pid: u32, name: &str) -> Arc<ProcessInfo> {
    Arc::new(ProcessInfo {
        pid,
        executable_name: name.into(),
        service_name: name.into(),
        ..ProcessInfo::default()
    })
}

fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

/// One record: who, which role, when, on which thread, between which addresses, where.
struct Rec<'a> {
    process: &'a Arc<ProcessInfo>,
    role: Role,
    start: u64,
    end: u64,
    tid: u32,
    local: SocketAddr,
    peer: SocketAddr,
    position: u64,
}

fn http(r: Rec<'_>) -> (Observation, CallOrigin) {
    let record = Record {
        protocol: Protocol::Http1,
        role: r.role,
        start_ns: r.start,
        end_ns: r.end,
        request_bytes: 80,
        response_bytes: 200,
        detail: Detail::Http(HttpRecord {
            method: "GET".into(),
            target: "/".into(),
            status: Some(200),
            ..HttpRecord::default()
        }),
    };
    let origin = CallOrigin {
        request_tid: r.tid,
        response_tid: r.tid,
        request_position: Some(r.position),
    };
    let obs = Observation {
        record,
        process: Arc::clone(r.process),
        local: Some(r.local),
        peer: Some(r.peer),
        tls: false,
        trace: None,
        peer_identity: None,
    };
    (obs, origin)
}

fn dns(r: Rec<'_>, id: u16) -> (Observation, CallOrigin) {
    let peer = r.peer;
    let (mut obs, origin) = http(r);
    obs.record.protocol = Protocol::Dns;
    obs.record.detail = Detail::Dns(DnsRecord {
        id,
        question_name: "web.test".into(),
        question_type: "A".into(),
        response_code: Some("NOERROR".into()),
        answers: vec!["10.1.2.3".into()],
        transport: DnsTransport::Udp,
        peer: Some(peer),
    });
    (obs, origin)
}

/// Request `i`'s records of a workload, finishing order (innermost first).
type Workload = fn(u64, &Procs) -> Vec<(Observation, CallOrigin)>;

struct Procs {
    curl: Arc<ProcessInfo>,
    nginx: Arc<ProcessInfo>,
    app: Arc<ProcessInfo>,
    dnsmasq: Arc<ProcessInfo>,
}

const LO: [u8; 4] = [127, 0, 0, 1];

fn pairing(i: u64, p: &Procs) -> Vec<(Observation, CallOrigin)> {
    let t = i * 10_000;
    let port = 20_000 + (i % 20_000) as u16;
    vec![
        http(Rec {
            process: &p.nginx,
            role: Role::Server,
            start: t + 100,
            end: t + 900,
            tid: 2,
            local: addr(LO, 8080),
            peer: addr(LO, port),
            position: i * 80,
        }),
        http(Rec {
            process: &p.curl,
            role: Role::Client,
            start: t,
            end: t + 1000,
            tid: 1,
            local: addr(LO, port),
            peer: addr(LO, 8080),
            position: i * 80,
        }),
    ]
}

fn in_process(i: u64, p: &Procs) -> Vec<(Observation, CallOrigin)> {
    let t = i * 10_000;
    let port = 20_000 + (i % 20_000) as u16;
    vec![
        http(Rec {
            process: &p.app,
            role: Role::Client,
            start: t + 200,
            end: t + 800,
            tid: 3 + (i % 8) as u32,
            local: addr(LO, port),
            peer: addr([10, 0, 0, 9], 443),
            position: i * 80,
        }),
        http(Rec {
            process: &p.app,
            role: Role::Server,
            start: t + 100,
            end: t + 900,
            tid: 3 + (i % 8) as u32,
            local: addr(LO, 9000),
            peer: addr([10, 0, 0, 8], port),
            position: i * 80,
        }),
    ]
}

fn dns_lookup(i: u64, p: &Procs) -> Vec<(Observation, CallOrigin)> {
    let t = i * 10_000;
    let port = 20_000 + (i % 20_000) as u16;
    let id = (i % 65_536) as u16;
    vec![
        dns(
            Rec {
                process: &p.dnsmasq,
                role: Role::Server,
                start: t + 100,
                end: t + 900,
                tid: 4,
                local: addr([127, 0, 0, 2], 53),
                peer: addr(LO, port),
                position: 0,
            },
            id,
        ),
        dns(
            Rec {
                process: &p.app,
                role: Role::Client,
                start: t,
                end: t + 1000,
                tid: 3,
                local: addr([0, 0, 0, 0], port),
                peer: addr([127, 0, 0, 2], 53),
                position: 0,
            },
            id,
        ),
    ]
}

fn midstream(i: u64, p: &Procs) -> Vec<(Observation, CallOrigin)> {
    let mut records = pairing(i, p);
    // The server's end counts positions from one request earlier.
    records[0].1.request_position = Some(i * 80 + 80);
    records
}

fn proxy_request(i: u64, p: &Procs) -> Vec<(Observation, CallOrigin)> {
    let t = i * 10_000;
    let port = 20_000 + (i % 20_000) as u16;
    let upstream = 40_000 + (i % 20_000) as u16;
    vec![
        http(Rec {
            process: &p.app,
            role: Role::Server,
            start: t + 300,
            end: t + 700,
            tid: 3,
            local: addr(LO, 9000),
            peer: addr(LO, upstream),
            position: i * 80,
        }),
        http(Rec {
            process: &p.nginx,
            role: Role::Client,
            start: t + 200,
            end: t + 800,
            tid: 2,
            local: addr(LO, upstream),
            peer: addr(LO, 9000),
            position: i * 80,
        }),
        http(Rec {
            process: &p.nginx,
            role: Role::Server,
            start: t + 100,
            end: t + 900,
            tid: 2,
            local: addr(LO, 8080),
            peer: addr(LO, port),
            position: i * 80,
        }),
        http(Rec {
            process: &p.curl,
            role: Role::Client,
            start: t,
            end: t + 1000,
            tid: 1,
            local: addr(LO, port),
            peer: addr(LO, 8080),
            position: i * 80,
        }),
    ]
}

/// Every record of a batch through `stage`, as one hold time of a steady load: accepted at
/// `now`, then ticks past the hold (decide and send) and past the lookup time (forget).
/// `now` moves on by then. Returns the records sent.
fn run(
    stage: &mut TraceContext,
    now: &mut Instant,
    batch: Vec<(Observation, CallOrigin)>,
) -> usize {
    let t0 = *now;
    let mut sent = 0usize;
    let mut send = |o: Observation| {
        black_box(&o);
        sent += 1;
    };
    for (obs, origin) in batch {
        stage.accept(obs, origin, t0, &mut send);
    }
    stage.tick(t0 + Duration::from_millis(1000), &mut send);
    stage.tick(t0 + Duration::from_millis(5000), &mut send);
    *now = t0 + Duration::from_millis(5000);
    debug_assert!(stage.is_empty());
    sent
}

/// The calling thread's CPU time, in ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Criterion measuring the bench thread's CPU time.
struct ThreadCpu;

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, started: u64) -> u64 {
        thread_cpu_ns().saturating_sub(started)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// CPU ns as durations, and elements per CPU second.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if ns < 1e3 {
            (1.0, "ns")
        } else if ns < 1e6 {
            (1e-3, "µs")
        } else {
            (1e-6, "ms")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }
    fn scale_throughputs(
        &self,
        _: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let n = match *throughput {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => n,
            Throughput::Bits(n) => n / 8,
        } as f64;
        values.iter_mut().for_each(|v| *v = n * 1e9 / *v / 1e3);
        "K/s (CPU)"
    }
    fn scale_for_machines(&self, _: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn bench(c: &mut Criterion<ThreadCpu>) {
    let procs = Procs {
        curl: process(1, "curl"),
        nginx: process(2, "nginx"),
        app: process(3, "app"),
        dnsmasq: process(4, "dnsmasq"),
    };
    let workloads: [(&str, Workload); 5] = [
        ("pairing", pairing),
        ("in_process", in_process),
        ("dns", dns_lookup),
        ("midstream", midstream),
        ("proxy_request", proxy_request),
    ];
    let mut group = c.benchmark_group("tracecontext");
    for (name, workload) in workloads {
        let make = || -> Vec<(Observation, CallOrigin)> {
            (0..REQUESTS).flat_map(|i| workload(i, &procs)).collect()
        };
        let records = make().len() as u64;
        // Per record, except the whole request for `proxy_request`.
        let elements = if name == "proxy_request" {
            REQUESTS
        } else {
            records
        };
        group.throughput(Throughput::Elements(elements));
        // One stage for every batch: its tables warm, as in a running agent.
        let mut stage =
            TraceContext::new(TraceContextConfig::default(), Arc::new(Stats::default()));
        let mut now = Instant::now();
        group.bench_function(name, |b| {
            b.iter_batched(
                make,
                |batch| black_box(run(&mut stage, &mut now, batch)),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = bench
}
criterion_main!(benches);
