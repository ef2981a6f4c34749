//! HTTP/1.x tests: byte-literal tables for framing edge cases, and golden replays of traffic
//! recorded from nginx (`testdata/http1/`, see its README) in both roles, split every way.
//!
//! Baselines are `testdata/http1/<case>.expected`; regenerate them deliberately with
//! `WIRELENS_BLESS=1 cargo test -p wirelens-parsers`.

use std::fmt::Write as _;

use super::{Http1Parser, MAX_HEAD, infer};
use crate::testkit::{
    Capture, Case, Chunkings, Op, Outcome, Script, Side, XorShift, assert_any_chunks,
    assert_split_in_two, case_failures, check_baseline, direction, outcome,
};

/// Fixture folder under `testdata/`.
const DIR: &str = "http1";
use crate::{Detail, Direction, Output, Parser, Protocol, Record, Role};

/// Runs `ops` with the traced process as `traced`; checks every record's role and protocol.
fn run(ops: &[Op<'_>], traced: Role, times: bool) -> Outcome {
    let render = |r: &Record| line(r, times);
    outcome(Http1Parser::new(), ops, traced, Protocol::Http1, render).0
}

/// One record as a line; times in ns (left out when the feeding pattern changes them).
fn line(r: &Record, times: bool) -> String {
    let Detail::Http(h) = &r.detail else {
        panic!("not an HTTP record: {r:?}")
    };
    let opt = |v: &Option<String>| v.as_deref().map_or("-".to_owned(), |s| format!("{s:?}"));
    let version = h.version.map_or("-", |v| v.as_str());
    let status = h.status.map_or("-".to_owned(), |s| s.to_string());
    let mut s = format!("{} {} {version} -> {status}", h.method, h.target);
    if times {
        let _ = write!(s, " t={}..{}", r.start_ns, r.end_ns);
    }
    let _ = write!(
        s,
        " req={}/{} resp={}/{} host={} ua={} tp={} ctype={}/{}",
        r.request_bytes,
        h.request_body_len,
        r.response_bytes,
        h.response_body_len,
        opt(&h.host),
        opt(&h.user_agent),
        opt(&h.traceparent),
        opt(&h.request_content_type),
        opt(&h.response_content_type),
    );
    s
}

// ---------------------------------------------------------------------------------------------
// Byte-literal tables.

const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
const OK3: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";

#[test]
fn framing_table() {
    let big_header = format!("GET /big HTTP/1.1\r\nX: {}\r\n\r\n", "x".repeat(MAX_HEAD));
    let many_headers = {
        let mut s = String::from("GET /many HTTP/1.1\r\n");
        for i in 0..100 {
            let _ = write!(s, "X-{i}: {i}\r\n");
        }
        s.push_str("Host: many\r\n\r\n");
        s
    };
    let cases = [
        Case {
            name: "content-length body",
            ops: Script::new().c(GET).s(OK3).close().0,
            want: &[r#"GET /a 1.1 -> 200 t=1000..2000 req=28/0 resp=41/3 host="h" ua=- tp=- ctype=-/-"#],
            losses: "none",
        },
        Case {
            name: "keep-alive, fields case-insensitive",
            ops: Script::new()
                .c(GET)
                .s(OK3)
                .c(b"POST /p?q=1 HTTP/1.1\r\nhOST: h2\r\nuser-agent: ua/1\r\nTRACEPARENT: 00-ab-cd-01\r\ncontent-type: text/x\r\nCONTENT-LENGTH: 4\r\n\r\nbody")
                .s(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
                .0,
            want: &[
                r#"GET /a 1.1 -> 200 t=1000..2000 req=28/0 resp=41/3 host="h" ua=- tp=- ctype=-/-"#,
                r#"POST /p?q=1 1.1 -> 201 t=3000..4000 req=123/4 resp=77/2 host="h2" ua="ua/1" tp="00-ab-cd-01" ctype="text/x"/"application/json""#,
            ],
            losses: "none",
        },
        Case {
            name: "pipelined: requests in one feed, responses in one feed",
            ops: Script::new()
                .c(b"GET /1 HTTP/1.1\r\n\r\nHEAD /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n")
                .s(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\n3")
                .0,
            want: &[
                "GET /1 1.1 -> 200 t=1000..2000 req=19/0 resp=39/1 host=- ua=- tp=- ctype=-/-",
                "HEAD /2 1.1 -> 200 t=1000..2000 req=20/0 resp=39/0 host=- ua=- tp=- ctype=-/-",
                "GET /3 1.1 -> 404 t=1000..2000 req=19/0 resp=46/1 host=- ua=- tp=- ctype=-/-",
            ],
            losses: "none",
        },
        Case {
            name: "chunked response: extensions, trailers, bare LF, next message after",
            ops: Script::new()
                .c(GET)
                .s(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;a=b\r\nhello\r\n1A \r\nabcdefghijklmnopqrstuvwxyz\r\n0\nTrailer: t\r\n\r\n")
                .c(GET)
                .s(OK3)
                .0,
            want: &[
                r#"GET /a 1.1 -> 200 t=1000..2000 req=28/0 resp=116/31 host="h" ua=- tp=- ctype=-/-"#,
                r#"GET /a 1.1 -> 200 t=3000..4000 req=28/0 resp=41/3 host="h" ua=- tp=- ctype=-/-"#,
            ],
            losses: "none",
        },
        Case {
            name: "chunked request body, response before the body ends",
            ops: Script::new()
                .c(b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
                .s(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .c(b"0\r\n\r\n")
                .0,
            want: &["POST /up 1.1 -> 200 t=1000..2000 req=62/3 resp=38/0 host=- ua=- tp=- ctype=-/-"],
            losses: "none",
        },
        Case {
            name: "100-continue is interim: the final response ends the exchange",
            ops: Script::new()
                .c(b"PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
                .s(b"HTTP/1.1 100 Continue\r\n\r\n")
                .c(b"12345")
                .s(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
                .0,
            want: &["PUT /f 1.1 -> 201 t=1000..4000 req=65/5 resp=68/0 host=- ua=- tp=- ctype=-/-"],
            losses: "none",
        },
        Case {
            name: "HEAD response has no body despite Content-Length",
            ops: Script::new()
                .c(b"HEAD /h HTTP/1.1\r\n\r\n")
                .s(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
                .c(GET)
                .s(OK3)
                .0,
            want: &[
                "HEAD /h 1.1 -> 200 t=1000..2000 req=20/0 resp=41/0 host=- ua=- tp=- ctype=-/-",
                r#"GET /a 1.1 -> 200 t=3000..4000 req=28/0 resp=41/3 host="h" ua=- tp=- ctype=-/-"#,
            ],
            losses: "none",
        },
        Case {
            name: "204 and 304 have no body",
            ops: Script::new()
                .c(b"DELETE /d HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\nIf-None-Match: \"x\"\r\n\r\n")
                .s(b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"x\"\r\n\r\n")
                .0,
            want: &[
                "DELETE /d 1.1 -> 204 t=1000..2000 req=22/0 resp=27/0 host=- ua=- tp=- ctype=-/-",
                "GET /c 1.1 -> 304 t=1000..2000 req=39/0 resp=60/0 host=- ua=- tp=- ctype=-/-",
            ],
            losses: "none",
        },
        Case {
            name: "close-delimited body ends when the server closes",
            ops: Script::new()
                .c(b"GET /old HTTP/1.0\r\n\r\n")
                .s(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<p>")
                .s(b"hi</p>")
                .end(Side::Server)
                .close()
                .0,
            want: &["GET /old 1.0 -> 200 t=1000..3000 req=21/0 resp=53/9 host=- ua=- tp=- ctype=-/\"text/html\""],
            losses: "none",
        },
        Case {
            name: "close-delimited body ended by close alone",
            ops: Script::new().c(GET).s(b"HTTP/1.1 200 OK\r\n\r\nabc").close().0,
            want: &[r#"GET /a 1.1 -> 200 t=1000..2000 req=28/0 resp=22/3 host="h" ua=- tp=- ctype=-/-"#],
            losses: "none",
        },
        Case {
            name: "Connection: close with a length completes at the length",
            ops: Script::new()
                .c(b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n")
                .s(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc")
                .end(Side::Server)
                .end(Side::Client)
                .close()
                .0,
            want: &["GET /a 1.1 -> 200 t=1000..2000 req=38/0 resp=60/3 host=- ua=- tp=- ctype=-/-"],
            losses: "none",
        },
        Case {
            name: "uncaptured request body bytes are counted",
            ops: Script::new()
                .c(b"POST /big HTTP/1.1\r\nContent-Length: 1000000\r\n\r\nhead-of-body")
                .skip(Side::Client, Some(999_976))
                .c(b"tail-of-body")
                .s(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                .0,
            want: &["POST /big 1.1 -> 202 t=1000..4000 req=1000047/1000000 resp=44/0 host=- ua=- tp=- ctype=-/-"],
            losses: "none",
        },
        Case {
            name: "uncaptured chunk data is counted",
            ops: Script::new()
                .c(GET)
                .s(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n400\r\nab")
                .skip(Side::Server, Some(1020))
                .s(b"yz\r\n0\r\n\r\n")
                .0,
            want: &[r#"GET /a 1.1 -> 200 t=1000..4000 req=28/0 resp=1083/1024 host="h" ua=- tp=- ctype=-/-"#],
            losses: "none",
        },
        Case {
            name: "a gap past the body end completes it, then loses the next head",
            ops: Script::new()
                .c(GET)
                .s(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
                .skip(Side::Server, Some(25))
                .c(GET)
                .s(b"ders\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")
                .0,
            want: &[
                r#"GET /a 1.1 -> 200 t=1000..3000 req=28/0 resp=49/10 host="h" ua=- tp=- ctype=-/-"#,
                r#"GET /a 1.1 -> 200 t=4000..5000 req=28/0 resp=41/3 host="h" ua=- tp=- ctype=-/-"#,
            ],
            losses: "resync_bytes=23",
        },
        Case {
            name: "a gap inside a response head: resync on the next status line",
            ops: Script::new()
                .c(GET)
                .s(b"HTTP/1.1 200 OK\r\nConte")
                .skip(Side::Server, Some(100))
                .s(b"body-tail")
                .c(GET)
                .s(OK3)
                .0,
            want: &[r#"GET /a 1.1 -> 200 t=5000..6000 req=28/0 resp=41/3 host="h" ua=- tp=- ctype=-/-"#],
            losses: "unmatched_request=1 resync_bytes=131",
        },
        Case {
            name: "a gap inside a request head: resync on the next request line",
            ops: Script::new()
                .c(b"GET /lost HTTP/1.1\r\nHo")
                .skip(Side::Client, Some(50))
                .c(b"st-tail\r\n\r\nGET /found HTTP/1.1\r\n\r\n")
                .s(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .0,
            want: &["GET /found 1.1 -> 200 t=3000..4000 req=23/0 resp=38/0 host=- ua=- tp=- ctype=-/-"],
            losses: "resync_bytes=83",
        },
        Case {
            name: "an unknown gap loses a counted body and the waiting request",
            ops: Script::new()
                .c(GET)
                .s(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
                .skip(Side::Server, None)
                .s(b"rest")
                .c(GET)
                .s(OK3)
                .0,
            want: &[r#"GET /a 1.1 -> 200 t=5000..6000 req=28/0 resp=41/3 host="h" ua=- tp=- ctype=-/-"#],
            losses: "unmatched_request=1 resync_bytes=4",
        },
        Case {
            name: "a gap over chunk framing loses the exchange",
            ops: Script::new()
                .c(GET)
                .s(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab")
                .skip(Side::Server, Some(10))
                .s(b"0\r\n\r\n")
                .close()
                .0,
            want: &[],
            losses: "unmatched_request=1 resync_bytes=15",
        },
        Case {
            name: "joined mid-stream: a response with no request",
            ops: Script::new().s(OK3).c(GET).s(OK3).0,
            want: &[r#"GET /a 1.1 -> 200 t=2000..3000 req=28/0 resp=41/3 host="h" ua=- tp=- ctype=-/-"#],
            losses: "unmatched_response=1",
        },
        Case {
            name: "joined mid-body: bytes before the first request line are passed over",
            ops: Script::new().c(b"dy of an earlier POST").c(GET).s(OK3).0,
            want: &[r#"GET /a 1.1 -> 200 t=2000..3000 req=28/0 resp=41/3 host="h" ua=- tp=- ctype=-/-"#],
            losses: "resync_bytes=21",
        },
        Case {
            name: "a request still waiting at close is counted, not emitted",
            ops: Script::new().c(GET).s(OK3).c(GET).close().0,
            want: &[r#"GET /a 1.1 -> 200 t=1000..2000 req=28/0 resp=41/3 host="h" ua=- tp=- ctype=-/-"#],
            losses: "unmatched_request=1",
        },
        Case {
            name: "garbage between messages: malformed, then resync",
            ops: Script::new().c(GET).s(OK3).c(b"\x16\x03\x01 garbage\r\n").c(GET).s(OK3).0,
            want: &[
                r#"GET /a 1.1 -> 200 t=1000..2000 req=28/0 resp=41/3 host="h" ua=- tp=- ctype=-/-"#,
                r#"GET /a 1.1 -> 200 t=4000..5000 req=28/0 resp=41/3 host="h" ua=- tp=- ctype=-/-"#,
            ],
            losses: "malformed=1 resync_bytes=13",
        },
        Case {
            name: "a bad Content-Length is malformed",
            ops: Script::new()
                .c(b"POST /x HTTP/1.1\r\nContent-Length: 1x\r\n\r\n")
                .c(b"POST /y HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n")
                .c(GET)
                .s(OK3)
                .0,
            want: &[r#"GET /a 1.1 -> 200 t=3000..4000 req=28/0 resp=41/3 host="h" ua=- tp=- ctype=-/-"#],
            losses: "malformed=2 resync_bytes=82",
        },
        Case {
            name: "leading empty lines before a request line are ignored",
            ops: Script::new().c(b"\r\n\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n").s(OK3).0,
            want: &[r#"GET /a 1.1 -> 200 t=1000..2000 req=28/0 resp=41/3 host="h" ua=- tp=- ctype=-/-"#],
            losses: "none",
        },
        Case {
            name: "101 Switching Protocols: the rest is not HTTP",
            ops: Script::new()
                .c(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                .s(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi")
                .c(b"\x81\x82abcdxx")
                .close()
                .0,
            want: &["GET /ws 1.1 -> 101 t=1000..2000 req=61/0 resp=56/0 host=- ua=- tp=- ctype=-/-"],
            losses: "none",
        },
        Case {
            name: "CONNECT 200: a tunnel follows",
            ops: Script::new()
                .c(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
                .s(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .c(b"\x16\x03\x01\x02\x00")
                .s(b"\x16\x03\x03\x00\x10")
                .0,
            want: &[r#"CONNECT example.com:443 1.1 -> 200 t=1000..2000 req=59/0 resp=39/0 host="example.com:443" ua=- tp=- ctype=-/-"#],
            losses: "none",
        },
        Case {
            name: "a head over the limit is oversized",
            ops: Script::new().c(big_header.as_bytes()).c(GET).s(OK3).0,
            want: &[r#"GET /a 1.1 -> 200 t=2000..3000 req=28/0 resp=41/3 host="h" ua=- tp=- ctype=-/-"#],
            losses: "oversized=1 resync_bytes=65562",
        },
        Case {
            name: "more header fields than fit on the stack",
            ops: Script::new().c(many_headers.as_bytes()).s(OK3).0,
            want: &[r#"GET /many 1.1 -> 200 t=1000..2000 req=1014/0 resp=41/3 host="many" ua=- tp=- ctype=-/-"#],
            losses: "none",
        },
        Case {
            name: "absolute-form target and an extension method",
            ops: Script::new()
                .c(b"GET http://example.com/x HTTP/1.1\r\n\r\n")
                .s(OK3)
                .c(b"PURGE /cache HTTP/1.1\r\n\r\n")
                .s(OK3)
                .0,
            want: &[
                "GET http://example.com/x 1.1 -> 200 t=1000..2000 req=37/0 resp=41/3 host=- ua=- tp=- ctype=-/-",
                "PURGE /cache 1.1 -> 200 t=3000..4000 req=25/0 resp=41/3 host=- ua=- tp=- ctype=-/-",
            ],
            losses: "none",
        },
        Case {
            name: "early final response to a request whose body never comes",
            ops: Script::new()
                .c(b"POST /big HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc")
                .s(b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                .end(Side::Server)
                .close()
                .0,
            want: &["POST /big 1.1 -> 413 t=1000..2000 req=43/0 resp=72/0 host=- ua=- tp=- ctype=-/-"],
            losses: "none",
        },
    ];
    let failures = case_failures(&cases, |ops, traced| run(ops, traced, true));
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn infer_table() {
    /// First bytes, and the confidence and sender role expected.
    type Row = (&'static [u8], Option<(u8, Role)>);
    let cases: &[Row] = &[
        (b"GET / HTTP/1.1\r\n", Some((100, Role::Client))),
        (b"PROPFIND /dav HTTP/1.0\n", Some((100, Role::Client))),
        (
            b"PATCH /x HTTP/1.1\r\nHost: h\r\n\r\n",
            Some((100, Role::Client)),
        ),
        (b"HTTP/1.1 200 OK\r\n", Some((90, Role::Server))),
        (b"HTTP/1.0 404 ", Some((90, Role::Server))),
        (b"HTTP/1.1 204\r\n", Some((90, Role::Server))),
        (b"GE", None),
        (b"GET / HTTP/1.1", None),
        (b"HTTP/1.1 20", None),
        (b"HTTP/2 200 ", None),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", None),
        (b"PURGE / HTTP/1.1\r\n", None),
        (b"get / HTTP/1.1\r\n", None),
        (b"GET / HTTP/1.2\r\n", None),
        (b"GET  HTTP/1.1\r\n", None),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", None),
        (b"", None),
    ];
    for (bytes, want) in cases {
        for dir in [Direction::Egress, Direction::Ingress] {
            let got = infer(dir, bytes).map(|i| {
                assert_eq!(i.protocol, Protocol::Http1);
                (i.confidence, i.sender_role.unwrap_or(Role::Server))
            });
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(bytes));
        }
    }
    assert_eq!(
        crate::infer(Direction::Egress, b"GET / HTTP/1.1\r\n").map(|i| i.protocol),
        Some(Protocol::Http1)
    );
}

/// Random bytes, random splits, random gaps: no panic, nothing unbounded.
#[test]
fn garbage_does_not_panic() {
    let pieces: [&[u8]; 12] = [
        b"GET / HTTP/1.1\r\n",
        b"HTTP/1.1 200 OK\r\n",
        b"Content-Length: 5\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"\r\n",
        b"5\r\nhello\r\n0\r\n\r\n",
        b"HEAD /x HTTP/1.0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"ffffffffffffffffff\r\n",
        b"Content-Length: 18446744073709551615\r\n",
        b"\x00\xff\x80garbage",
        b"HTTP/1.1 101 Switching\r\n\r\n",
    ];
    let mut rng = XorShift(0x5eed);
    for _ in 0..3000 {
        let mut parser = Http1Parser::new();
        let mut out = Output::default();
        let mut bytes = Vec::new();
        for step in 0..rng.below(40) {
            let dir = if rng.below(2) == 0 {
                Direction::Egress
            } else {
                Direction::Ingress
            };
            match rng.below(10) {
                0 => parser.skip(
                    dir,
                    if rng.below(3) == 0 {
                        None
                    } else {
                        Some(rng.below(100))
                    },
                    step,
                    &mut out,
                ),
                1 => parser.end(dir, step, &mut out),
                2 => {
                    bytes.clear();
                    bytes.extend((0..rng.below(64)).map(|_| rng.next() as u8));
                    parser.feed(dir, &bytes, step, &mut out);
                }
                _ => {
                    bytes.clear();
                    for _ in 0..rng.below(6) {
                        bytes.extend_from_slice(pieces[rng.below(pieces.len() as u64) as usize]);
                    }
                    let cut = rng.below(bytes.len() as u64 + 1) as usize;
                    parser.feed(dir, &bytes[..cut], step, &mut out);
                    parser.feed(dir, &bytes[cut..], step, &mut out);
                }
            }
        }
        parser.close(99, &mut out);
        for r in &out.records {
            assert!(r.start_ns <= 99 && r.end_ns <= 99);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Recorded traffic.

/// Fixtures in `testdata/http1/`, as recorded by `record.sh`.
const CASES: &[&str] = &[
    "keepalive_mixed",
    "chunked_gzip",
    "conditional_304",
    "put_100_continue",
    "pipelined_10",
    "http10_close_delimited",
    "connection_close",
];

/// Each capture, as recorded and in both roles, against its baseline.
#[test]
fn captures_match_baselines() {
    for &name in CASES {
        let cap = Capture::load(DIR, name);
        let got = run(&cap.ops(), Role::Client, true);
        check_baseline(DIR, &format!("{name}.expected"), &got.text());
        assert_eq!(run(&cap.ops(), Role::Server, true), got, "{name} as server");
    }
}

/// Each capture with one feed cut in two, everywhere.
#[test]
fn captures_split_everywhere() {
    for &name in CASES {
        let cap = Capture::load(DIR, name);
        assert_split_in_two(name, &cap.ops(), run, |_| 1);
    }
}

/// Each capture fed in small random chunks, byte by byte, and in two whole feeds.
#[test]
fn captures_in_any_chunks() {
    let ways = Chunkings::FINE;
    for &name in CASES {
        assert_any_chunks(name, &Capture::load(DIR, name), run, &ways);
    }
}

/// Where the first body in `stream` starts, and its Content-Length, first chunk size, or the
/// rest of the stream.
fn first_body(stream: &[u8]) -> (usize, usize) {
    let head_end = stream
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let head = String::from_utf8_lossy(&stream[..head_end]).to_ascii_lowercase();
    if let Some(v) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
    {
        return (head_end, v.trim().parse().expect("a length"));
    }
    if !head.contains("transfer-encoding: chunked") {
        return (head_end, stream.len() - head_end);
    }
    let line_end = head_end
        + stream[head_end..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size");
    let size = usize::from_str_radix(
        std::str::from_utf8(&stream[head_end..line_end]).expect("hex"),
        16,
    )
    .expect("hex");
    (line_end + 2, size)
}

/// Bytes moved but not captured (the 16 KiB cut, sendfile) inside a body change nothing.
#[test]
fn captures_with_uncaptured_body_bytes() {
    for (name, side) in [
        ("keepalive_mixed", Side::Server),
        ("chunked_gzip", Side::Server),
        ("put_100_continue", Side::Client),
        ("pipelined_10", Side::Server),
        ("http10_close_delimited", Side::Server),
    ] {
        let cap = Capture::load(DIR, name);
        let (start, len) = first_body(cap.stream(side));
        for traced in [Role::Client, Role::Server] {
            let want = run(&cap.ops(), traced, true);
            for range in [
                start..start + len,
                start + 1..start + len - 1,
                start..start + 1,
            ] {
                let got = run(&cap.ops_with_gap(side, range.clone(), true), traced, true);
                assert_eq!(got, want, "{name}: gap {range:?} in {side:?} as {traced:?}");
            }
        }
    }
}

/// A gap in a response head loses that exchange only; the rest of the connection is framed.
#[test]
fn capture_with_gap_in_a_head_resyncs() {
    let cap = Capture::load(DIR, "keepalive_mixed");
    let all = run(&cap.ops(), Role::Client, true);
    // The second response (the 404) is the server's second segment.
    let second = cap
        .timeline
        .iter()
        .filter(|(side, _, r)| *side == Side::Server && r.is_some())
        .nth(1)
        .and_then(|(_, _, r)| r.clone())
        .expect("a second response");
    let gap = second.start + 20..second.start + 40;
    for traced in [Role::Client, Role::Server] {
        let got = run(
            &cap.ops_with_gap(Side::Server, gap.clone(), true),
            traced,
            true,
        );
        let mut want_lines = all.lines.clone();
        want_lines.remove(1);
        assert_eq!(got.lines, want_lines, "as {traced:?}");
        assert_eq!(
            got.losses,
            format!("unmatched_request=1 resync_bytes={}", second.len()),
            "as {traced:?}"
        );
    }
}

/// A gap over chunk framing in the recorded gzip response loses it, and only it.
#[test]
fn capture_with_gap_over_chunk_framing() {
    let cap = Capture::load(DIR, "chunked_gzip");
    let (start, len) = first_body(&cap.server);
    let got = run(
        &cap.ops_with_gap(Side::Server, start + len - 10..start + len + 20, true),
        Role::Client,
        true,
    );
    assert!(got.lines.is_empty(), "{}", got.text());
    assert!(
        got.losses.starts_with("unmatched_request=1 resync_bytes="),
        "{}",
        got.losses
    );
}

/// Recorded traffic with random bytes changed, random splits and random gaps: no panic, and
/// records stay consistent (the fuzz target's checks, on inputs close to real ones).
#[test]
fn mutated_captures_do_not_panic() {
    let mut rng = XorShift(0xbad5eed);
    for &name in CASES {
        let cap = Capture::load(DIR, name);
        for _ in 0..200 {
            let mut client = cap.client.clone();
            let mut server = cap.server.clone();
            for _ in 0..rng.below(4) {
                let stream = if rng.below(2) == 0 {
                    &mut client
                } else {
                    &mut server
                };
                let at = rng.below(stream.len() as u64) as usize;
                stream[at] = rng.next() as u8;
            }
            let mut parser = Http1Parser::new();
            let mut out = Output::default();
            let mut offsets = [0usize; 2];
            for (step, (side, _, range)) in cap.timeline.iter().enumerate() {
                let ts = step as u64;
                let (i, stream) = match side {
                    Side::Client => (0, &client),
                    Side::Server => (1, &server),
                };
                let dir = direction(*side, Role::Client);
                let Some(range) = range else {
                    parser.end(dir, ts, &mut out);
                    continue;
                };
                while offsets[i] < range.end {
                    let n = (rng.below(300) as usize + 1).min(range.end - offsets[i]);
                    if rng.below(20) == 0 {
                        let len = (rng.below(3) != 0).then_some(n as u64);
                        parser.skip(dir, len, ts, &mut out);
                    } else {
                        parser.feed(dir, &stream[offsets[i]..offsets[i] + n], ts, &mut out);
                    }
                    offsets[i] += n;
                }
            }
            parser.close(cap.timeline.len() as u64, &mut out);
            for r in &out.records {
                let Detail::Http(h) = &r.detail else {
                    panic!("not an HTTP record: {r:?}")
                };
                assert!(r.start_ns <= r.end_ns, "{name}: {r:?}");
                assert!(r.response_bytes >= h.response_body_len, "{name}: {r:?}");
                assert!(r.request_bytes >= h.request_body_len, "{name}: {r:?}");
                assert_eq!(r.role, Role::Client);
            }
        }
    }
}

#[test]
fn role_is_unknown_until_a_start_line() {
    let mut parser = Http1Parser::new();
    let mut out = Output::default();
    assert_eq!((parser.protocol(), parser.role()), (Protocol::Http1, None));
    parser.feed(Direction::Ingress, b"GE", 1, &mut out);
    assert_eq!(parser.role(), None);
    parser.feed(Direction::Ingress, b"T / HTTP/1.1\r\n", 2, &mut out);
    assert_eq!(parser.role(), Some(Role::Server));
    let mut parser = Http1Parser::new();
    parser.feed(Direction::Ingress, b"HTTP/1.1 200 OK\r\n", 1, &mut out);
    assert_eq!(parser.role(), Some(Role::Client));
}
