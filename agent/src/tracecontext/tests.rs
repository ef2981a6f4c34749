//! The stage on hand-made records: who is whose parent, what stays a root, which edges count.

use std::sync::Arc;

use wirelens_otel::{Observation, ProcessInfo, TraceLinks, service_graph::ConnectionType};
use wirelens_parsers::{Detail, HttpRecord, Protocol, Record, Role};

use super::*;

fn process(pid: u32, name: &str) -> Arc<ProcessInfo> {
    Arc::new(ProcessInfo {
        pid,
        executable_name: name.into(),
        service_name: name.into(),
        ..ProcessInfo::default()
    })
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

struct Call {
    process: Arc<ProcessInfo>,
    role: Role,
    start: u64,
    end: u64,
    tid: u32,
    local: &'static str,
    peer: &'static str,
    position: u64,
    status: u16,
}

fn obs(c: &Call) -> (Observation, CallOrigin) {
    let record = Record {
        protocol: Protocol::Http1,
        role: c.role,
        start_ns: c.start,
        end_ns: c.end,
        request_bytes: 10,
        response_bytes: 10,
        detail: Detail::Http(HttpRecord {
            method: "GET".into(),
            target: "/".into(),
            status: Some(c.status),
            ..HttpRecord::default()
        }),
    };
    let obs = Observation {
        record,
        process: Arc::clone(&c.process),
        local: Some(addr(c.local)),
        peer: Some(addr(c.peer)),
        tls: false,
        trace: None,
        peer_identity: None,
    };
    let origin = CallOrigin {
        request_tid: c.tid,
        response_tid: c.tid,
        request_position: Some(c.position),
    };
    (obs, origin)
}

/// Run the calls through a stage (all arriving at once), then past the hold; the links of
/// each, in the calls' order.
fn run(calls: &[Call]) -> (Vec<TraceLinks>, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let mut stage = TraceContext::new(TraceContextConfig::default(), Arc::clone(&stats));
    let t0 = Instant::now();
    let mut out = Vec::new();
    for c in calls {
        let (o, origin) = obs(c);
        stage.accept(o, origin, t0, &mut |o| out.push(o));
    }
    stage.tick(t0 + Duration::from_secs(2), &mut |o| out.push(o));
    assert!(out.len() == calls.len(), "all sent after the hold");
    let links = calls
        .iter()
        .map(|c| {
            let o = out
                .iter()
                .find(|o| o.record.start_ns == c.start && o.process.pid == c.process.pid)
                .expect("sent");
            (**o.trace.as_ref().expect("links")).clone()
        })
        .collect();
    (links, stats)
}

#[test]
fn connects_a_proxy_chain_into_one_trace() {
    let curl = process(1, "curl");
    let nginx = process(2, "nginx");
    let app = process(3, "app");
    let call = |process: &Arc<ProcessInfo>, role, start, end, tid, local, peer| Call {
        process: Arc::clone(process),
        role,
        start,
        end,
        tid,
        local,
        peer,
        position: 0,
        status: 200,
    };
    // Finishing order: innermost first.
    let calls = [
        call(
            &app,
            Role::Server,
            300,
            400,
            30,
            "127.0.0.1:9000",
            "127.0.0.1:50002",
        ),
        call(
            &nginx,
            Role::Client,
            250,
            450,
            20,
            "127.0.0.1:50002",
            "127.0.0.1:9000",
        ),
        call(
            &nginx,
            Role::Server,
            200,
            500,
            20,
            "127.0.0.1:8080",
            "127.0.0.1:50001",
        ),
        call(
            &curl,
            Role::Client,
            100,
            600,
            10,
            "127.0.0.1:50001",
            "127.0.0.1:8080",
        ),
    ];
    let (links, stats) = run(&calls);
    let trace = links[3].trace_id;
    assert!(links.iter().all(|l| l.trace_id == trace), "one trace");
    assert_eq!(links[3].parent_span_id, None, "curl is the root");
    assert_eq!(links[2].parent_span_id, Some(links[3].span_id));
    assert_eq!(links[1].parent_span_id, Some(links[2].span_id));
    assert_eq!(links[0].parent_span_id, Some(links[1].span_id));
    assert_eq!(
        stats
            .trace_remote_parents
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(
        stats
            .trace_local_parents
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // Two edges between traced processes, and nothing else.
    let edges: Vec<(String, String)> = links
        .iter()
        .filter_map(|l| l.edge.as_ref())
        .map(|e| (e.client.clone(), e.server.clone()))
        .collect();
    assert_eq!(edges.len(), 2, "{edges:?}");
    assert!(edges.contains(&("curl".into(), "nginx".into())));
    assert!(edges.contains(&("nginx".into(), "app".into())));
}

#[test]
fn interleaved_requests_on_one_thread_leave_ambiguous_calls_as_roots() {
    let nginx = process(2, "nginx");
    let call = |role, start, end, local, peer, position| Call {
        process: Arc::clone(&nginx),
        role,
        start,
        end,
        tid: 20,
        local,
        peer,
        position,
        status: 200,
    };
    let calls = [
        call(
            Role::Server,
            100,
            300,
            "127.0.0.1:8080",
            "127.0.0.1:50001",
            0,
        ),
        call(
            Role::Server,
            200,
            400,
            "127.0.0.1:8080",
            "127.0.0.1:50003",
            0,
        ),
        // Before the second began: nested in the first only.
        call(
            Role::Client,
            110,
            150,
            "127.0.0.1:50010",
            "127.0.0.1:9000",
            0,
        ),
        // While both were open.
        call(
            Role::Client,
            210,
            250,
            "127.0.0.1:50010",
            "127.0.0.1:9000",
            100,
        ),
    ];
    let (links, stats) = run(&calls);
    assert_eq!(links[2].parent_span_id, Some(links[0].span_id));
    assert_eq!(links[2].trace_id, links[0].trace_id);
    assert_eq!(links[3].parent_span_id, None);
    assert_eq!(
        stats
            .trace_ambiguous
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // The untraced upstream is a virtual node named by its address.
    let edge = links[3].edge.as_ref().expect("edge");
    assert_eq!(edge.server, "127.0.0.1:9000");
    assert_eq!(edge.connection_type, ConnectionType::VirtualNode);
}

#[test]
fn a_traceparent_on_the_wire_wins_and_its_children_follow_it() {
    let app = process(3, "app");
    let stats = Arc::new(Stats::default());
    let mut stage = TraceContext::new(TraceContextConfig::default(), stats);
    let t0 = Instant::now();
    let mut out = Vec::new();
    let server = Call {
        process: Arc::clone(&app),
        role: Role::Server,
        start: 100,
        end: 400,
        tid: 5,
        local: "127.0.0.1:9000",
        peer: "10.0.0.1:40000",
        position: 0,
        status: 500,
    };
    let client = Call {
        role: Role::Client,
        start: 150,
        end: 200,
        local: "127.0.0.1:40001",
        peer: "127.0.0.1:5432",
        status: 200,
        process: Arc::clone(&app),
        ..server
    };
    let (c, co) = obs(&client);
    stage.accept(c, co, t0, &mut |o| out.push(o));
    let (mut s, so) = obs(&server);
    if let Detail::Http(h) = &mut s.record.detail {
        h.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
    }
    stage.accept(s, so, t0, &mut |o| out.push(o));
    stage.tick(t0 + Duration::from_millis(500), &mut |o| out.push(o));
    assert!(out.is_empty(), "held");
    stage.tick(t0 + Duration::from_secs(1), &mut |o| out.push(o));
    assert_eq!(out.len(), 2);
    let wire_trace = [
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47,
        0x36,
    ];
    for o in &out {
        assert_eq!(o.trace.as_ref().map(|t| t.trace_id), Some(wire_trace));
    }
    let server_links = out[0].trace.as_ref().expect("server first");
    assert_eq!(out[0].record.role, Role::Server);
    let client_links = out[1].trace.as_ref().expect("client");
    assert_eq!(client_links.parent_span_id, Some(server_links.span_id));
    let edge = server_links.edge.as_ref().expect("untraced caller");
    assert_eq!((edge.client.as_str(), edge.failed), ("10.0.0.1", true));
}

#[test]
fn a_full_table_sends_early_and_counts() {
    let stats = Arc::new(Stats::default());
    let config = TraceContextConfig {
        max_entries: 2,
        ..TraceContextConfig::default()
    };
    let mut stage = TraceContext::new(config, Arc::clone(&stats));
    let t0 = Instant::now();
    let mut out = Vec::new();
    for i in 0..5 {
        let (o, origin) = obs(&Call {
            process: process(1, "c"),
            role: Role::Client,
            start: i,
            end: i + 1,
            tid: 1,
            local: "127.0.0.1:1",
            peer: "127.0.0.1:2",
            position: i,
            status: 200,
        });
        stage.accept(o, origin, t0, &mut |o| out.push(o));
    }
    assert_eq!(out.len(), 3);
    assert!(stage.len() <= 2);
    assert_eq!(
        stats
            .trace_evicted
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    stage.flush(&mut |o| out.push(o));
    assert_eq!(out.len(), 5);
}

#[test]
fn config_from_the_environment() {
    let none = |_: &str| None;
    assert_eq!(
        TraceContextConfig::from_lookup(&none),
        Ok(TraceContextConfig::default())
    );
    let off = |k: &str| (k == "WIRELENS_TRACE_CONTEXT").then(|| "off".to_owned());
    assert!(
        !TraceContextConfig::from_lookup(&off)
            .expect("valid")
            .enabled
    );
    let hold = |k: &str| (k == "WIRELENS_TRACE_HOLD_MS").then(|| "250".to_owned());
    assert_eq!(
        TraceContextConfig::from_lookup(&hold).expect("valid").hold,
        Duration::from_millis(250)
    );
    let bad = |k: &str| (k == "WIRELENS_TRACE_HOLD_MS").then(|| "soon".to_owned());
    assert!(TraceContextConfig::from_lookup(&bad).is_err());
}

/// A DNS query over UDP with transaction id `id`.
fn dns(c: &Call, id: u16) -> (Observation, CallOrigin) {
    let (mut o, origin) = obs(c);
    o.record.protocol = Protocol::Dns;
    o.record.detail = Detail::Dns(wirelens_parsers::DnsRecord {
        id,
        question_name: "web.test".into(),
        question_type: "A".into(),
        response_code: Some("NOERROR".into()),
        answers: vec![],
        transport: wirelens_parsers::DnsTransport::Udp,
        peer: o.peer,
    });
    (o, origin)
}

/// Accept everything at once, tick past the hold; the links by (pid, start).
fn run_observations(calls: Vec<(Observation, CallOrigin)>) -> (Vec<TraceLinks>, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let mut stage = TraceContext::new(TraceContextConfig::default(), Arc::clone(&stats));
    let t0 = Instant::now();
    let mut out = Vec::new();
    let keys: Vec<(u32, u64)> = calls
        .iter()
        .map(|(o, _)| (o.process.pid, o.record.start_ns))
        .collect();
    for (o, origin) in calls {
        stage.accept(o, origin, t0, &mut |o| out.push(o));
    }
    stage.tick(t0 + Duration::from_secs(2), &mut |o| out.push(o));
    assert_eq!(out.len(), keys.len(), "all sent after the hold");
    let links = keys
        .iter()
        .map(|&(pid, start)| {
            let o = out
                .iter()
                .find(|o| o.record.start_ns == start && o.process.pid == pid)
                .expect("sent");
            (**o.trace.as_ref().expect("links")).clone()
        })
        .collect();
    (links, stats)
}

#[test]
fn dns_over_udp_pairs_by_ports_and_transaction_id() {
    let app = process(3, "app");
    let dnsmasq = process(4, "dnsmasq");
    let at = |process: &Arc<ProcessInfo>, role, start, end, local, peer| Call {
        process: Arc::clone(process),
        role,
        start,
        end,
        tid: 30,
        local,
        peer,
        position: 0,
        status: 200,
    };
    let calls = vec![
        // The app serves a request and resolves two names inside it, one datagram each (an
        // unconnected socket: its local address is the wildcard).
        obs(&at(
            &app,
            Role::Server,
            100,
            900,
            "127.0.0.1:9000",
            "127.0.0.1:50001",
        )),
        dns(
            &at(
                &app,
                Role::Client,
                200,
                300,
                "0.0.0.0:40000",
                "127.0.0.2:53",
            ),
            0x1111,
        ),
        dns(
            &at(
                &app,
                Role::Client,
                400,
                500,
                "0.0.0.0:40000",
                "127.0.0.2:53",
            ),
            0x2222,
        ),
        // The server's side, the second query first.
        dns(
            &at(
                &dnsmasq,
                Role::Server,
                410,
                490,
                "127.0.0.2:53",
                "127.0.0.1:40000",
            ),
            0x2222,
        ),
        dns(
            &at(
                &dnsmasq,
                Role::Server,
                210,
                290,
                "127.0.0.2:53",
                "127.0.0.1:40000",
            ),
            0x1111,
        ),
        // Same id and ports, another client address: not this query's server.
        dns(
            &at(
                &dnsmasq,
                Role::Server,
                220,
                280,
                "127.0.0.2:53",
                "10.0.0.9:40000",
            ),
            0x1111,
        ),
    ];
    let (links, stats) = run_observations(calls);
    let trace = links[0].trace_id;
    assert_eq!(
        links[1].parent_span_id,
        Some(links[0].span_id),
        "lookup in the request"
    );
    assert_eq!(links[2].parent_span_id, Some(links[0].span_id));
    assert_eq!(links[3].parent_span_id, Some(links[2].span_id), "by id");
    assert_eq!(links[4].parent_span_id, Some(links[1].span_id), "by id");
    assert!(links[..5].iter().all(|l| l.trace_id == trace), "one trace");
    assert_eq!(links[5].parent_span_id, None, "another client");
    assert_eq!(
        stats
            .trace_remote_parents
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    let edges: Vec<(String, String)> = links
        .iter()
        .filter_map(|l| l.edge.as_ref())
        .map(|e| (e.client.clone(), e.server.clone()))
        .collect();
    assert_eq!(
        edges
            .iter()
            .filter(|e| *e == &("app".into(), "dnsmasq".into()))
            .count(),
        2,
        "{edges:?}"
    );
}

#[test]
fn a_connection_joined_mid_stream_pairs_by_time() {
    let client = process(1, "client");
    let server = process(2, "server");
    // The agent attached with request 1 (10 bytes) in flight: the server's positions count
    // from request 1, the client's from request 2. Equal positions are different requests.
    let at = |process: &Arc<ProcessInfo>, role, start, end, position| Call {
        process: Arc::clone(process),
        role,
        start,
        end,
        tid: 7,
        local: if role == Role::Client {
            "127.0.0.1:40000"
        } else {
            "127.0.0.1:8080"
        },
        peer: if role == Role::Client {
            "127.0.0.1:8080"
        } else {
            "127.0.0.1:40000"
        },
        position,
        status: 200,
    };
    let calls = vec![
        obs(&at(&server, Role::Server, 100, 150, 0)),
        obs(&at(&server, Role::Server, 210, 290, 10)),
        obs(&at(&server, Role::Server, 410, 490, 20)),
        obs(&at(&client, Role::Client, 200, 300, 0)),
        obs(&at(&client, Role::Client, 400, 500, 10)),
    ];
    let (links, stats) = run_observations(calls);
    assert_eq!(
        links[0].parent_span_id, None,
        "its client call was not seen"
    );
    assert_eq!(links[1].parent_span_id, Some(links[3].span_id));
    assert_eq!(links[2].parent_span_id, Some(links[4].span_id));
    assert_eq!(links[1].trace_id, links[3].trace_id);
    assert_eq!(
        stats
            .trace_remote_parents
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    // Each pair's edge once; the lone server request an edge from the peer's address.
    let edges = links.iter().filter_map(|l| l.edge.as_ref()).count();
    assert_eq!(edges, 3);
}
