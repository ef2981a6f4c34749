//! DNS record fields → semantic-convention values, shared by spans and metrics.
//!
//! The conventions (development status, `docs/dns/`, `model/dns/`) define the `dns.lookup.duration`
//! metric and two attributes, `dns.question.name` and `dns.answers` (resolved IPv4/IPv6
//! addresses only); there is no DNS span and no attribute for the question type or response
//! code. So:
//!
//! - the span name is `DNS {question type}` (`DNS AAAA`): low cardinality, the type kept
//!   somewhere; the queried name is an attribute, never in the name;
//! - `dns.answers` holds the address answers (`A`/`AAAA`), not CNAMEs and other records;
//! - `error.type` is the response code mnemonic (`NXDOMAIN`, `SERVFAIL`...) when it is not
//!   `NOERROR`, `timeout` when no response came. For the resolver (client role) every such
//!   query failed; for the DNS server (server role) only its own failures count (`SERVFAIL`,
//!   `NOTIMP`, no response), as an HTTP server's 4xx are not its errors.

use std::borrow::Cow;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

use wirelens_parsers::{DnsRecord, DnsTransport, Role};

use crate::semconv;

/// Longest question type mnemonic kept in a span name (`TYPE65535` is 9).
const MAX_TYPE_LEN: usize = 16;

/// The span name: `DNS {question type}`, or `DNS` when the type is not a plain mnemonic.
pub(crate) fn span_name(dns: &DnsRecord) -> String {
    let qtype = dns.question_type.trim();
    let plain = !qtype.is_empty()
        && qtype.len() <= MAX_TYPE_LEN
        && qtype.bytes().all(|b| b.is_ascii_alphanumeric());
    if plain {
        format!("{} {qtype}", semconv::DNS_SPAN_NAME)
    } else {
        semconv::DNS_SPAN_NAME.to_owned()
    }
}

/// `dns.question.name`, escaped as the conventions ask: bytes below 32 or above 126 as `\DDD`,
/// backslashes and quotes escaped, tab, CR and LF as `\t`, `\r`, `\n`. `None` when empty.
pub(crate) fn question_name(dns: &DnsRecord) -> Option<Cow<'_, str>> {
    let name = dns.question_name.as_str();
    if name.is_empty() {
        return None;
    }
    let clean = name
        .bytes()
        .all(|b| (32..=126).contains(&b) && b != b'\\' && b != b'"');
    if clean {
        return Some(Cow::Borrowed(name));
    }
    let mut out = String::with_capacity(name.len() + 8);
    for b in name.bytes() {
        match b {
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\\' | b'"' => {
                out.push('\\');
                out.push(char::from(b));
            }
            32..=126 => out.push(char::from(b)),
            _ => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    Some(Cow::Owned(out))
}

/// `dns.answers`: the answers that are IPv4 or IPv6 addresses, in order.
pub(crate) fn answers(dns: &DnsRecord) -> Vec<String> {
    dns.answers
        .iter()
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_string())
        .collect()
}

/// `network.transport`.
pub(crate) fn transport(dns: &DnsRecord) -> &'static str {
    match dns.transport {
        DnsTransport::Udp => semconv::TRANSPORT_UDP,
        DnsTransport::Tcp => semconv::TRANSPORT_TCP,
    }
}

/// `error.type` when the query failed for `role` (see the module doc), else `None`.
pub(crate) fn error_type(role: Role, dns: &DnsRecord) -> Option<&str> {
    let Some(code) = dns.response_code.as_deref() else {
        return Some(semconv::DNS_ERROR_TIMEOUT);
    };
    let code = code.trim();
    let failed = match role {
        Role::Client => code != "NOERROR",
        Role::Server => matches!(code, "SERVFAIL" | "NOTIMP"),
    };
    failed.then_some(if code.is_empty() {
        semconv::ERROR_TYPE_OTHER
    } else {
        code
    })
}

/// The other end of the query: the record's own peer (per datagram), else the connection's.
pub(crate) fn peer(dns: &DnsRecord, obs_peer: Option<SocketAddr>) -> Option<SocketAddr> {
    dns.peer.or(obs_peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, qtype: &str, rcode: Option<&str>) -> DnsRecord {
        DnsRecord {
            id: 1,
            question_name: name.into(),
            question_type: qtype.into(),
            response_code: rcode.map(Into::into),
            answers: Vec::new(),
            transport: DnsTransport::Udp,
            peer: None,
        }
    }

    #[test]
    fn names() {
        assert_eq!(span_name(&record("a.example", "AAAA", None)), "DNS AAAA");
        assert_eq!(
            span_name(&record("a.example", "TYPE65", None)),
            "DNS TYPE65"
        );
        assert_eq!(span_name(&record("a.example", "", None)), "DNS");
        assert_eq!(span_name(&record("a.example", "A B", None)), "DNS");
    }

    #[test]
    fn question_escaping() {
        let plain = record("www.example.com", "A", None);
        assert!(matches!(
            question_name(&plain),
            Some(Cow::Borrowed("www.example.com"))
        ));
        let odd = record("a\tb\\c\"d\u{7f}.é", "A", None);
        assert_eq!(
            question_name(&odd).as_deref(),
            Some("a\\tb\\\\c\\\"d\\127.\\195\\169")
        );
        assert_eq!(question_name(&record("", "A", None)), None);
    }

    #[test]
    fn address_answers_only() {
        let mut dns = record("www.example.com", "A", Some("NOERROR"));
        dns.answers = vec![
            "CNAME web.example.net".into(),
            "93.184.216.34".into(),
            "2001:db8::1".into(),
            "MX 10 mail.example.com".into(),
        ];
        assert_eq!(answers(&dns), ["93.184.216.34", "2001:db8::1"]);
    }

    #[test]
    fn errors_by_role() {
        let cases = [
            (Some("NOERROR"), None, None),
            (Some("NXDOMAIN"), Some("NXDOMAIN"), None),
            (Some("REFUSED"), Some("REFUSED"), None),
            (Some("SERVFAIL"), Some("SERVFAIL"), Some("SERVFAIL")),
            (None, Some("timeout"), Some("timeout")),
        ];
        for (rcode, client, server) in cases {
            let dns = record("x.example", "A", rcode);
            assert_eq!(error_type(Role::Client, &dns), client, "{rcode:?}");
            assert_eq!(error_type(Role::Server, &dns), server, "{rcode:?}");
        }
    }

    #[test]
    fn peer_prefers_record() {
        let mut dns = record("x.example", "A", None);
        let conn: SocketAddr = "10.0.0.53:53".parse().expect("addr");
        let own: SocketAddr = "10.0.0.54:53".parse().expect("addr");
        assert_eq!(peer(&dns, Some(conn)), Some(conn));
        dns.peer = Some(own);
        assert_eq!(peer(&dns, Some(conn)), Some(own));
        assert_eq!(transport(&dns), "udp");
    }
}
