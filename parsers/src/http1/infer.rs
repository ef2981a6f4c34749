//! Recognising HTTP/1.x start lines from one direction's bytes: protocol inference, and the
//! places a framer may start a message after a gap. Stateless.

use super::types::Kind;
use crate::{Direction, Inference, Protocol, Role};

/// Longest start line waited for; a longer one is not taken for a start line.
pub(crate) const MAX_START_LINE: usize = 16 * 1024;

/// Longest method token accepted when any token will do.
const MAX_METHOD: usize = 32;

/// Methods recognised by inference and by the scan after a gap: RFC 9110 §9, PATCH (RFC 5789)
/// and the common WebDAV ones (RFC 4918, 3253, 4791, 5323, 3744).
pub const KNOWN_METHODS: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "REPORT",
    "SEARCH",
    "MKCALENDAR",
    "ACL",
];

/// Whether bytes open a start line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// They do.
    Yes,
    /// They do not.
    No,
    /// They may, given more bytes.
    Partial,
}

/// Which method tokens a request line may start with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Methods {
    /// Only [`KNOWN_METHODS`]: after a gap, and for inference, where a false start costs more.
    Known,
    /// Any token (RFC 9110 §9.1 allows extension methods): at a known message boundary.
    AnyToken,
}

/// Where a start line begins in some bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// A complete start line of `kind` begins at `at`.
    Start { at: usize, kind: Kind },
    /// Bytes from `at` to the end may begin one.
    Partial { at: usize },
    /// No start line begins in these bytes.
    None,
}

/// HTTP/1.x's opinion of the first bytes of `_dir`: 100 for a request line with a known method,
/// 90 for a status line; `None` for anything else, including a start line not yet complete.
pub fn infer(_dir: Direction, bytes: &[u8]) -> Option<Inference> {
    let (confidence, sender_role) = if request_line(bytes, Methods::Known) == Check::Yes {
        (100, Role::Client)
    } else if status_line(bytes) == Check::Yes {
        (90, Role::Server)
    } else {
        return None;
    };
    Some(Inference {
        protocol: Protocol::Http1,
        confidence,
        sender_role: Some(sender_role),
    })
}

/// Looks for a start line of `kind` (either, if `None`) at the start of `bytes` only, or, if
/// `anywhere`, at every position, as after a gap, where a message may begin right after
/// the unseen end of a body.
pub(crate) fn find_start(
    bytes: &[u8],
    kind: Option<Kind>,
    anywhere: bool,
    methods: Methods,
) -> Found {
    let last = if anywhere {
        bytes.len()
    } else {
        bytes.len().min(1)
    };
    for at in 0..last {
        let rest = &bytes[at..];
        if anywhere && !may_open(rest[0], kind) {
            continue;
        }
        let mut partial = false;
        if kind != Some(Kind::Request) {
            match status_line(rest) {
                Check::Yes => {
                    return Found::Start {
                        at,
                        kind: Kind::Response,
                    };
                }
                Check::Partial => partial = true,
                Check::No => {}
            }
        }
        if kind != Some(Kind::Response) {
            match request_line(rest, methods) {
                Check::Yes => {
                    return Found::Start {
                        at,
                        kind: Kind::Request,
                    };
                }
                Check::Partial => partial = true,
                Check::No => {}
            }
        }
        if partial {
            return Found::Partial { at };
        }
    }
    Found::None
}

/// Cheap first-byte filter for the scan after a gap.
fn may_open(byte: u8, kind: Option<Kind>) -> bool {
    match kind {
        Some(Kind::Response) => byte == b'H',
        _ => byte.is_ascii_uppercase(),
    }
}

/// `method SP request-target SP HTTP/1.0|1.1 CRLF` (RFC 9112 §3; a bare LF is accepted, §2.2).
pub(crate) fn request_line(bytes: &[u8], methods: Methods) -> Check {
    let method_len = bytes
        .iter()
        .position(|&b| !is_tchar(b))
        .unwrap_or(bytes.len());
    if method_len == bytes.len() {
        let plausible = match methods {
            Methods::Known => KNOWN_METHODS
                .iter()
                .any(|m| m.as_bytes().starts_with(bytes)),
            Methods::AnyToken => method_len <= MAX_METHOD,
        };
        return if plausible { Check::Partial } else { Check::No };
    }
    let method = &bytes[..method_len];
    let method_ok = match methods {
        Methods::Known => KNOWN_METHODS.iter().any(|m| m.as_bytes() == method),
        Methods::AnyToken => (1..=MAX_METHOD).contains(&method_len),
    };
    if !method_ok || bytes[method_len] != b' ' {
        return Check::No;
    }
    let rest = &bytes[method_len + 1..];
    let target_len = rest
        .iter()
        .position(|&b| b <= b' ' || b == 0x7f)
        .unwrap_or(rest.len());
    if target_len == rest.len() {
        return partial_unless_long(bytes);
    }
    if target_len == 0 || rest[target_len] != b' ' {
        return Check::No;
    }
    match version_and_eol(&rest[target_len + 1..]) {
        Check::Partial => partial_unless_long(bytes),
        check => check,
    }
}

/// `HTTP/1.0|1.1 SP 3DIGIT` then SP or the line end (RFC 9112 §4; the reason may be absent).
pub(crate) fn status_line(bytes: &[u8]) -> Check {
    const PREFIX: &[u8] = b"HTTP/1.";
    let n = bytes.len().min(PREFIX.len());
    if bytes[..n] != PREFIX[..n] {
        return Check::No;
    }
    let pattern: [fn(u8) -> bool; 6] = [
        |b| b == b'0' || b == b'1',
        |b| b == b' ',
        |b| b.is_ascii_digit(),
        |b| b.is_ascii_digit(),
        |b| b.is_ascii_digit(),
        |b| matches!(b, b' ' | b'\r' | b'\n'),
    ];
    for (i, ok) in pattern.iter().enumerate() {
        match bytes.get(PREFIX.len() + i) {
            None => return Check::Partial,
            Some(&b) if !ok(b) => return Check::No,
            Some(_) => {}
        }
    }
    Check::Yes
}

/// `HTTP/1.0|1.1` then CRLF or LF.
fn version_and_eol(bytes: &[u8]) -> Check {
    const EXPECT: &[u8] = b"HTTP/1.";
    let n = bytes.len().min(EXPECT.len());
    if bytes[..n] != EXPECT[..n] {
        return Check::No;
    }
    match (bytes.get(7), bytes.get(8), bytes.get(9)) {
        (None, _, _) => Check::Partial,
        (Some(b'0' | b'1'), None, _) => Check::Partial,
        (Some(b'0' | b'1'), Some(b'\n'), _) => Check::Yes,
        (Some(b'0' | b'1'), Some(b'\r'), None) => Check::Partial,
        (Some(b'0' | b'1'), Some(b'\r'), Some(b'\n')) => Check::Yes,
        _ => Check::No,
    }
}

fn partial_unless_long(bytes: &[u8]) -> Check {
    if bytes.len() >= MAX_START_LINE {
        Check::No
    } else {
        Check::Partial
    }
}

/// RFC 9110 §5.6.2 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
