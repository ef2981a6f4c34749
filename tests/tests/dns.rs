//! DNS end to end: dnsmasq on 127.0.0.2:53, queried by `dig` over UDP and TCP and by glibc's
//! resolver (`getent ahosts`: A and AAAA in one `sendmmsg` on a connected UDP socket); the
//! agent (`--port 53`) exports CLIENT spans for the queriers, SERVER spans for dnsmasq, and
//! `dns.lookup.duration`, decoded by the independent receiver.
//!
//! glibc always asks port 53 of the servers in `/etc/resolv.conf`: `getent` runs in a private
//! mount namespace where a bind-mounted `resolv.conf` names 127.0.0.2, so the host's resolver
//! configuration is never touched.
//!
//! Needs root and `scripts/setup.sh` (dnsmasq, dnsutils); run one at a time.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use wirelens_tests::{Agent, ClientRun, Done, Scenario, Span, dnsmasq, run_client, wait_until};

const DNS_IP: &str = "127.0.0.2";

/// One expected lookup: question, type, response code, address answers, transport.
struct Lookup<'a> {
    name: &'a str,
    qtype: &'a str,
    rcode: &'a str,
    answers: &'a [&'a str],
    transport: &'a str,
}

fn dig(args: &[&str]) -> ClientRun {
    let server = format!("@{DNS_IP}");
    let mut argv = vec![
        "/usr/bin/dig",
        server.as_str(),
        "-p",
        "53",
        "+tries=1",
        "+time=5",
    ];
    argv.extend_from_slice(args);
    run_client(&argv, true)
}

fn getent_ahosts(name: &str, dir: &std::path::Path) -> ClientRun {
    let resolv = dir.join("resolv.conf");
    std::fs::write(
        &resolv,
        format!("nameserver {DNS_IP}\noptions attempts:1\n"),
    )
    .expect("write resolv.conf");
    let script = format!(
        "mount --bind {} /etc/resolv.conf && exec getent ahosts {name}",
        resolv.display()
    );
    // `unshare` execs sh, which execs getent: the traced process is getent itself, with the
    // pid the run reports and getent's own executable.
    let mut run = run_client(&["/usr/bin/unshare", "-m", "/bin/sh", "-c", &script], true);
    run.exe_name = "getent".to_string();
    run
}

fn assert_lookup(done: &Done, span: &Span, want: &Lookup<'_>, kind: &str) {
    let context = || {
        format!(
            "{}: span {}\n{}",
            done.name,
            span.summary(),
            done.diagnostics()
        )
    };
    assert_eq!(span.kind, kind, "{}", context());
    assert_eq!(span.name, format!("DNS {}", want.qtype), "{}", context());
    assert_eq!(
        span.str_attr("dns.question.name"),
        want.name,
        "{}",
        context()
    );
    assert_eq!(
        span.str_attr("network.transport"),
        want.transport,
        "{}",
        context()
    );
    let answers = span
        .attributes
        .get("dns.answers")
        .cloned()
        .unwrap_or(json!([]));
    assert_eq!(answers, json!(want.answers), "{}", context());
    match want.rcode {
        "NOERROR" => {
            assert!(!span.attributes.contains_key("error.type"), "{}", context());
            assert_ne!(span.status_code, "STATUS_CODE_ERROR", "{}", context());
        }
        rcode if kind == "SPAN_KIND_CLIENT" => {
            assert_eq!(span.str_attr("error.type"), rcode, "{}", context());
            assert_eq!(span.status_code, "STATUS_CODE_ERROR", "{}", context());
        }
        _ => {}
    }
    if kind == "SPAN_KIND_CLIENT" {
        assert_eq!(span.str_attr("server.address"), DNS_IP, "{}", context());
        assert_eq!(span.int_attr("server.port"), 53, "{}", context());
    }
}

#[test]
fn dig_and_glibc_lookups_become_dns_spans_and_metrics() {
    let server = dnsmasq(DNS_IP, 53);
    let scenario = Scenario::start("dns_lookups", &["--port", "53"]);

    let udp_a = dig(&["web.test", "A"]);
    assert!(udp_a.stdout.contains("10.1.2.3"), "{}", udp_a.stdout);
    let nxdomain = dig(&["missing.test", "A"]);
    assert!(nxdomain.stdout.contains("NXDOMAIN"), "{}", nxdomain.stdout);
    let tcp_a = dig(&["+tcp", "web.test", "A"]);
    let cname = dig(&["alias.test", "A"]);
    assert!(cname.stdout.contains("CNAME"), "{}", cname.stdout);
    let glibc = getent_ahosts("web.test", server.dir());
    assert!(glibc.stdout.contains("10.1.2.3"), "{}", glibc.stdout);

    let expected_clients = 6;
    let done = scenario.finish_when(
        |spans| spans.len() >= 2 * expected_clients,
        "dns.lookup.duration",
        expected_clients as u64,
    );

    let web_a = Lookup {
        name: "web.test",
        qtype: "A",
        rcode: "NOERROR",
        answers: &["10.1.2.3"],
        transport: "udp",
    };
    let expected: [(&ClientRun, Vec<Lookup<'_>>); 5] = [
        (&udp_a, vec![Lookup { ..web_a }]),
        (
            &nxdomain,
            vec![Lookup {
                name: "missing.test",
                rcode: "NXDOMAIN",
                answers: &[],
                ..web_a
            }],
        ),
        (
            &tcp_a,
            vec![Lookup {
                transport: "tcp",
                ..web_a
            }],
        ),
        (
            &cname,
            vec![Lookup {
                name: "alias.test",
                ..web_a
            }],
        ),
        (
            &glibc,
            vec![
                Lookup { ..web_a },
                Lookup {
                    qtype: "AAAA",
                    answers: &[],
                    ..web_a
                },
            ],
        ),
    ];
    let mut all_expected = Vec::new();
    for (client, lookups) in &expected {
        let mut spans = done.spans_of(client.pid);
        // glibc's two queries leave together; their order on the wire is A then AAAA.
        spans.sort_by_key(|s| (s.start_ns, s.name.clone()));
        assert_eq!(
            spans.len(),
            lookups.len(),
            "{}: {} spans for `{}`:\n{}",
            done.name,
            spans.len(),
            client.command_line(),
            done.diagnostics()
        );
        for (span, want) in spans.iter().zip(lookups) {
            assert_lookup(&done, span, want, "SPAN_KIND_CLIENT");
            assert_eq!(span.res_int("process.pid"), i64::from(client.pid));
            assert_eq!(span.res_str("process.executable.name"), client.exe_name);
            all_expected.push(want);
        }
    }

    let served = done.spans_of(server.pid());
    assert_eq!(
        served.len(),
        expected_clients,
        "{}: dnsmasq spans:\n{}",
        done.name,
        done.diagnostics()
    );
    for span in &served {
        assert_eq!(span.kind, "SPAN_KIND_SERVER", "{}", span.summary());
        assert_eq!(span.res_str("process.executable.name"), "dnsmasq");
        let name = span.str_attr("dns.question.name");
        assert!(
            all_expected.iter().any(|l| l.name == name),
            "unexpected question {name}"
        );
    }
    assert_eq!(
        done.spans.len(),
        2 * expected_clients,
        "{}: spans beyond the lookups:\n{}",
        done.name,
        done.diagnostics()
    );

    let points = done.points("dns.lookup.duration");
    let total: u64 = points.iter().map(|p| p.count).sum();
    assert_eq!(total, expected_clients as u64, "{}", done.diagnostics());
    for p in &points {
        assert_eq!(p.unit, "s");
        assert!(
            p.attr_str("dns.question.name").is_some(),
            "{:?}",
            p.attributes
        );
        let errored = p.attr_str("error.type");
        let question = p.attr_str("dns.question.name").unwrap_or("");
        assert_eq!(
            errored == Some("NXDOMAIN"),
            question == "missing.test",
            "{:?}",
            p.attributes
        );
    }
}

/// A responder that reads each query into a 64-byte buffer with `MSG_TRUNC` (the call then
/// returns the datagram's whole length, larger than the buffer).
const TRUNC_RESPONDER: &str = r#"
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(64, socket.MSG_TRUNC)
    end = data.index(b"\0", 12) + 5
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([10, 9, 8, 7])
    s.sendto(data[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0) + data[12:end] + answer, peer)
"#;

/// A server that reads only the start of a datagram: the agent captures what the server read
/// (never the memory past its buffer, which a read of the call's return value would take), and
/// both sides' records give the datagram's wire length. dig pads its query to 128 bytes (EDNS
/// padding); the responder reads 64 of them.
#[test]
fn a_server_reading_part_of_a_datagram() {
    let (ip, port) = ("127.0.0.3", "5354");
    let mut responder = Command::new("/usr/bin/python3")
        .args(["-c", TRUNC_RESPONDER, ip, port])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the responder");
    let mut ready = String::new();
    BufReader::new(responder.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("read the responder's ready line");
    assert_eq!(ready.trim(), "ready");
    let agent = Agent::start(&["--port", port, "--output", "json"], &[]);
    let server = format!("@{ip}");
    let dig = run_client(
        &[
            "/usr/bin/dig",
            &server,
            "-p",
            port,
            "+tries=1",
            "+time=5",
            "+padding=128",
            "web.test",
            "A",
        ],
        true,
    );
    assert!(dig.stdout.contains("10.9.8.7"), "{}", dig.stdout);
    wait_until("two DNS records", Duration::from_secs(10), || {
        (agent.stdout().lines().count() >= 2).then_some(())
    });
    let out = agent.stop();
    let _ = responder.kill();
    let _ = responder.wait();
    out.assert_success();
    let records = out.json_records();
    let role = |r: &str| {
        records
            .iter()
            .find(|x| x["role"] == r)
            .unwrap_or_else(|| panic!("no {r} record in {records:?}"))
    };
    let (client, server) = (role("client"), role("server"));
    // The response: header, the question (10 + 4 bytes) and one A answer (16 bytes).
    let response = 12 + 14 + 16;
    for r in [client, server] {
        assert_eq!(r["question_name"], "web.test", "{r}");
        assert_eq!(r["answers"], json!(["10.9.8.7"]), "{r}");
        assert_eq!(r["request_bytes"], 128, "{r}");
        assert_eq!(r["response_bytes"], response, "{r}");
    }
    // Captured: the client's 128-byte query, the 64 bytes the server read, the response twice.
    assert_eq!(
        out.counter("bytes"),
        128 + 64 + 2 * response,
        "{}",
        out.stderr
    );
}
