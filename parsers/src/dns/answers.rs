//! A response's answers in presentation form, decoded with `simple-dns` (`Packet::parse`), and
//! its full response code (extended by the OPT record, read by hand: see `message.rs`).
//!
//! Compact forms, one string per answer record in order, owner names left out:
//! `A`/`AAAA` the address (`192.0.2.10`, `2001:db8::10`); `CNAME target`, `NS host`,
//! `PTR host`, `DNAME target`; `MX 10 mail.test`; `SRV 0 100 389 mail.test` (priority,
//! weight, port, target); `SOA mname rname serial`; `TXT "first" "second"` (each string quoted,
//! `"` and `\` escaped, bytes outside printable ASCII as `\DDD`); any other type its mnemonic
//! alone (`HTTPS`, `RRSIG`, `TYPE65400`). At most [`MAX_ANSWERS`] strings of at most
//! [`MAX_ANSWER_LEN`] bytes each.
//!
//! `simple-dns` refuses a whole message for a question type or class it does not know
//! (`TYPE65400`) or the reserved Z bit: the message is then parsed again with those fields
//! neutralised in a copy (answers do not depend on them). When it still refuses (a record of a
//! class it does not know, a truncated capture, a malformed record), the answers are left empty
//! and the header's RCODE stands.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use simple_dns::rdata::RData;
use simple_dns::{Name, Packet};

use super::message::{Head, extended_rcode, push_label, rcode_name, type_name};

/// Answers kept per record.
pub const MAX_ANSWERS: usize = 16;
/// Longest answer string kept, in bytes (longer ones are cut at a character boundary).
pub const MAX_ANSWER_LEN: usize = 256;
/// Smallest resource record on the wire: root owner, type, class, TTL, RDLENGTH.
const MIN_RR_LEN: usize = 11;
/// Smallest question on the wire: root name, type, class.
const MIN_QUESTION_LEN: usize = 5;

/// What a response says: its response code mnemonic and answers.
pub(crate) struct Answers {
    pub(crate) rcode: String,
    pub(crate) answers: Vec<String>,
}

/// Decodes the response `msg` whose header is `head`; `scratch` holds the copy handed to
/// `simple-dns` (kept by the caller so that messages do not allocate it).
pub(crate) fn decode(msg: &[u8], head: &Head, scratch: &mut Vec<u8>) -> Answers {
    let header_rcode = extended_rcode(msg, head);
    // Counts no message of this size could hold: refuse before simple-dns reserves room for them.
    let room = msg.len().saturating_sub(super::message::HEADER_LEN);
    let least = usize::from(head.qdcount) * MIN_QUESTION_LEN + head.record_count() * MIN_RR_LEN;
    if least > room || head.ancount == 0 {
        return header_only(header_rcode);
    }
    if let Ok(packet) = Packet::parse(msg) {
        return from_packet(&packet, header_rcode);
    }
    // simple-dns refuses a question whose type or class it does not know, and the Z bit; the
    // answers do not depend on them: parse a copy with those set to A, IN and 0.
    let Some(question) = &head.question else {
        return header_only(header_rcode);
    };
    scratch.clear();
    scratch.extend_from_slice(msg);
    let fixed = question
        .end
        .checked_sub(4)
        .and_then(|at| scratch.get_mut(at..question.end));
    let Some(fixed) = fixed else {
        return header_only(header_rcode);
    };
    fixed.copy_from_slice(&[0, 1, 0, 1]);
    if let Some(flags) = scratch.get_mut(3) {
        *flags &= !0x40;
    }
    match Packet::parse(scratch) {
        Ok(packet) => from_packet(&packet, header_rcode),
        Err(_) => header_only(header_rcode),
    }
}

/// No answers: the header's response code alone.
fn header_only(rcode: u16) -> Answers {
    Answers {
        rcode: rcode_name(rcode),
        answers: Vec::new(),
    }
}

fn from_packet(packet: &Packet<'_>, rcode: u16) -> Answers {
    let answers = packet
        .answers
        .iter()
        .take(MAX_ANSWERS)
        .map(|rr| capped(present(&rr.rdata)))
        .collect();
    Answers {
        rcode: rcode_name(rcode),
        answers,
    }
}

/// One record's data in the compact form of the module doc.
fn present(rdata: &RData<'_>) -> String {
    match rdata {
        RData::A(a) => ipv4(Ipv4Addr::from(a.address)),
        RData::AAAA(a) => Ipv6Addr::from(a.address).to_string(),
        RData::CNAME(n) => with_name("CNAME", &n.0),
        RData::NS(n) => with_name("NS", &n.0),
        RData::PTR(n) => with_name("PTR", &n.0),
        RData::MX(mx) => with_name(&format!("MX {}", mx.preference), &mx.exchange),
        RData::SRV(srv) => with_name(
            &format!("SRV {} {} {}", srv.priority, srv.weight, srv.port),
            &srv.target,
        ),
        RData::SOA(soa) => {
            let mut s = with_name("SOA", &soa.mname);
            s.push(' ');
            push_name(&mut s, &soa.rname);
            let _ = write!(s, " {}", soa.serial);
            s
        }
        RData::TXT(txt) => {
            let mut s = String::from("TXT");
            for (key, value) in txt.iter_raw() {
                s.push_str(" \"");
                push_quoted(&mut s, key);
                if let Some(value) = value {
                    s.push('=');
                    push_quoted(&mut s, value);
                }
                s.push('"');
                if s.len() > MAX_ANSWER_LEN {
                    break;
                }
            }
            s
        }
        RData::NULL(code, _) => type_name(*code),
        other => type_name(other.type_code().into()),
    }
}

/// An IPv4 address in dotted-decimal form, written directly (`Display` goes through the
/// formatting machinery, a third of a short response's time).
fn ipv4(address: Ipv4Addr) -> String {
    let mut s = String::with_capacity(15);
    for (i, b) in address.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if b >= 100 {
            s.push(char::from(b'0' + b / 100));
        }
        if b >= 10 {
            s.push(char::from(b'0' + b / 10 % 10));
        }
        s.push(char::from(b'0' + b % 10));
    }
    s
}

fn with_name(prefix: &str, name: &Name<'_>) -> String {
    let mut s = String::from(prefix);
    s.push(' ');
    push_name(&mut s, name);
    s
}

/// A name in presentation form, without the trailing dot (`.` for the root).
fn push_name(s: &mut String, name: &Name<'_>) {
    let labels = name.get_labels();
    if labels.is_empty() {
        s.push('.');
    }
    for (i, label) in labels.iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        push_label(s, label.as_ref());
    }
}

/// Character-string bytes inside double quotes: `"` and `\` escaped, others as in a label.
fn push_quoted(s: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(char::from(b));
            }
            b' ' | b'.' => s.push(char::from(b)),
            _ => push_label(s, &[b]),
        }
    }
}

/// `s` cut to at most [`MAX_ANSWER_LEN`] bytes at a character boundary.
fn capped(mut s: String) -> String {
    if s.len() > MAX_ANSWER_LEN {
        let mut cut = MAX_ANSWER_LEN;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
