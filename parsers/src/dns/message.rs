//! The DNS header and first question, read by hand (RFC 1035 §4.1.1–4.1.2), and the mnemonics
//! of record types and response codes.
//!
//! `simple-dns` refuses some valid questions (an unnamed QTYPE such as `TYPE65400`, a QCLASS
//! it does not list, the reserved Z bit set), and every message needs its header and question
//! for matching, queries included, so these few fields are read here; the answers of a
//! response are left to `simple-dns` (see `answers.rs`).

use std::fmt::Write as _;

/// Bytes in a DNS header.
pub(crate) const HEADER_LEN: usize = 12;
/// Longest name on the wire (RFC 1035 §2.3.4).
const MAX_NAME_WIRE: usize = 255;
/// Compression pointers followed in one name before it is refused.
const MAX_POINTERS: usize = 64;

/// QR: the message is a response.
const FLAG_QR: u16 = 0x8000;
/// Z: reserved, zero in every message sent by a conforming implementation.
const FLAG_Z: u16 = 0x0040;

/// A message's header and first question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) id: u16,
    pub(crate) flags: u16,
    pub(crate) qdcount: u16,
    pub(crate) ancount: u16,
    pub(crate) nscount: u16,
    pub(crate) arcount: u16,
    /// The first question, when `qdcount` is at least 1.
    pub(crate) question: Option<Question>,
}

/// One question: name in presentation form (as sent, without the trailing dot), type, class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Question {
    pub(crate) name: String,
    pub(crate) qtype: u16,
    pub(crate) qclass: u16,
    /// Offset of the byte after the question.
    pub(crate) end: usize,
}

impl Head {
    pub(crate) fn is_response(&self) -> bool {
        self.flags & FLAG_QR != 0
    }

    pub(crate) fn opcode(&self) -> u16 {
        (self.flags >> 11) & 0xF
    }

    /// The 4-bit RCODE of the header (the OPT record may extend it).
    pub(crate) fn rcode(&self) -> u16 {
        self.flags & 0xF
    }

    pub(crate) fn z_bit(&self) -> bool {
        self.flags & FLAG_Z != 0
    }

    /// Resource records the three sections announce.
    pub(crate) fn record_count(&self) -> usize {
        usize::from(self.ancount) + usize::from(self.nscount) + usize::from(self.arcount)
    }
}

fn u16_at(msg: &[u8], at: usize) -> Option<u16> {
    let bytes = msg.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

/// Reads the header and, if there is one, the first question. `None` if they do not parse.
pub(crate) fn parse_head(msg: &[u8]) -> Option<Head> {
    let field = |i: usize| u16_at(msg, 2 * i);
    let mut head = Head {
        id: field(0)?,
        flags: field(1)?,
        qdcount: field(2)?,
        ancount: field(3)?,
        nscount: field(4)?,
        arcount: field(5)?,
        question: None,
    };
    if head.qdcount > 0 {
        let (name, after) = read_name(msg, HEADER_LEN)?;
        head.question = Some(Question {
            name,
            qtype: u16_at(msg, after)?,
            qclass: u16_at(msg, after + 2)?,
            end: after + 4,
        });
    }
    Some(head)
}

/// Reads the name at `start`: its presentation form and the offset after it in place.
/// Compression pointers must point before the name that holds them (so reading ends), at most
/// [`MAX_POINTERS`] of them; labels are at most 63 bytes, the name at most 255.
pub(crate) fn read_name(msg: &[u8], start: usize) -> Option<(String, usize)> {
    // Walked twice, to size the text exactly (one allocation), then to write it.
    let mut len = 0usize;
    let end = walk_name(msg, start, |label| len += 1 + presented_len(label))?;
    let mut text = String::with_capacity(len.max(1));
    walk_name(msg, start, |label| {
        if !text.is_empty() {
            text.push('.');
        }
        push_label(&mut text, label);
    })?;
    if text.is_empty() {
        text.push('.');
    }
    Some((text, end))
}

/// The offset after the name at `start`, checked as [`read_name`] checks it, without its text.
pub(crate) fn skip_name(msg: &[u8], start: usize) -> Option<usize> {
    walk_name(msg, start, |_| {})
}

/// Hands each label of the name at `start` to `label`, following compression pointers (see
/// [`read_name`]); the offset after the name in place, `None` if it does not parse.
fn walk_name(msg: &[u8], start: usize, mut label: impl FnMut(&[u8])) -> Option<usize> {
    let (mut at, mut end, mut wire_len, mut hops, mut floor) = (start, None, 0usize, 0, start);
    loop {
        let len = *msg.get(at)?;
        match len & 0xC0 {
            0x00 if len == 0 => break,
            0x00 => {
                let bytes = msg.get(at + 1..at + 1 + usize::from(len))?;
                wire_len += 1 + bytes.len();
                if wire_len >= MAX_NAME_WIRE {
                    return None;
                }
                label(bytes);
                at += 1 + bytes.len();
            }
            0xC0 => {
                let target = usize::from(u16_at(msg, at)? & 0x3FFF);
                hops += 1;
                if target >= floor || hops > MAX_POINTERS {
                    return None;
                }
                end.get_or_insert(at + 2);
                (at, floor) = (target, target);
            }
            _ => return None, // 0x40 and 0x80: extended label types, obsolete.
        }
    }
    Some(end.unwrap_or(at + 1))
}

/// The response code with the OPT record's upper 8 bits (RFC 6891 §6.1.3), found by walking
/// the record sections after the first question; the header's 4 bits when there is no OPT
/// record or the walk fails. (`simple-dns` 0.13 shifts those bits the wrong way.)
pub(crate) fn extended_rcode(msg: &[u8], head: &Head) -> u16 {
    const OPT: u16 = 41;
    let Some(question) = &head.question else {
        return head.rcode();
    };
    if head.qdcount != 1 || head.arcount == 0 {
        return head.rcode();
    }
    let mut at = question.end;
    for _ in 0..head.record_count() {
        let Some(after) = skip_name(msg, at) else {
            break;
        };
        let (Some(rtype), Some(rdlen)) = (u16_at(msg, after), u16_at(msg, after + 8)) else {
            break;
        };
        if rtype == OPT {
            let upper = msg.get(after + 4).copied().unwrap_or(0);
            return (u16::from(upper) << 4) | head.rcode();
        }
        at = after + 10 + usize::from(rdlen);
    }
    head.rcode()
}

/// Whether a label byte is presented as itself.
fn plain(b: &u8) -> bool {
    matches!(b, 0x21..=0x7E) && !matches!(b, b'.' | b'\\')
}

/// Bytes of a label in presentation form (see [`push_label`]).
fn presented_len(label: &[u8]) -> usize {
    label
        .iter()
        .map(|b| match b {
            b'.' | b'\\' => 2,
            _ if plain(b) => 1,
            _ => 4,
        })
        .sum()
}

/// Appends a label in presentation form: printable ASCII as is, `.` and `\` escaped with a
/// backslash, other bytes as `\DDD` (RFC 1035 §5.1).
pub(crate) fn push_label(text: &mut String, label: &[u8]) {
    if label.iter().all(plain) {
        // Printable ASCII only: valid UTF-8 as is.
        text.push_str(std::str::from_utf8(label).unwrap_or_default());
        return;
    }
    for &b in label {
        match b {
            b'.' | b'\\' => {
                text.push('\\');
                text.push(char::from(b));
            }
            0x21..=0x7E => text.push(char::from(b)),
            _ => {
                let _ = write!(text, "\\{b:03}");
            }
        }
    }
}

/// A record type's mnemonic (`A`, `AAAA`, `HTTPS`), or `TYPE<n>` (RFC 3597) when unnamed.
pub(crate) fn type_name(qtype: u16) -> String {
    let name = match qtype {
        1 => "A",
        2 => "NS",
        3 => "MD",
        4 => "MF",
        5 => "CNAME",
        6 => "SOA",
        7 => "MB",
        8 => "MG",
        9 => "MR",
        10 => "NULL",
        11 => "WKS",
        12 => "PTR",
        13 => "HINFO",
        14 => "MINFO",
        15 => "MX",
        16 => "TXT",
        17 => "RP",
        18 => "AFSDB",
        19 => "X25",
        20 => "ISDN",
        21 => "RT",
        22 => "NSAP",
        24 => "SIG",
        25 => "KEY",
        28 => "AAAA",
        29 => "LOC",
        30 => "NXT",
        33 => "SRV",
        35 => "NAPTR",
        36 => "KX",
        37 => "CERT",
        39 => "DNAME",
        41 => "OPT",
        42 => "APL",
        43 => "DS",
        44 => "SSHFP",
        45 => "IPSECKEY",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        49 => "DHCID",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        53 => "SMIMEA",
        55 => "HIP",
        59 => "CDS",
        60 => "CDNSKEY",
        61 => "OPENPGPKEY",
        62 => "CSYNC",
        63 => "ZONEMD",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        108 => "EUI48",
        109 => "EUI64",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        253 => "MAILB",
        254 => "MAILA",
        255 => "ANY",
        256 => "URI",
        257 => "CAA",
        _ => return format!("TYPE{qtype}"),
    };
    name.to_owned()
}

/// A response code's mnemonic (RFC 6895 §2.3), or `RCODE<n>` when unassigned.
pub(crate) fn rcode_name(rcode: u16) -> String {
    let name = match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        11 => "DSOTYPENI",
        16 => "BADVERS",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        23 => "BADCOOKIE",
        _ => return format!("RCODE{rcode}"),
    };
    name.to_owned()
}
