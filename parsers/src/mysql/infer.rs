//! Recognising MySQL packets from one direction's bytes: protocol inference, and the places a
//! framer may start again after a gap. Stateless.

use super::types::cmd;
use crate::{Direction, Inference, Protocol, Role};

/// Whether bytes start something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// They do.
    Yes,
    /// They do not.
    No,
    /// They may, given more bytes.
    Partial,
}

/// Longest statement accepted by the scan after a gap (a header claiming more is not taken).
const MAX_PLAUSIBLE: u32 = 1 << 20;

/// Bytes of statement text checked for printability.
const TEXT_CHECK: usize = 32;

/// MySQL's opinion of the first bytes of `_dir`: 100 for a server greeting (protocol 10),
/// 80 for COM_QUERY with printable SQL, 70 for COM_STMT_PREPARE, 60 for COM_INIT_DB, 30 for
/// COM_PING; `None` for anything else, including an opening not yet complete.
pub fn infer(_dir: Direction, bytes: &[u8]) -> Option<Inference> {
    let (confidence, role) = if greeting(bytes) {
        (100, Role::Server)
    } else {
        let (len, seq, payload) = header(bytes)?;
        if seq != 0 {
            return None;
        }
        let (&command, rest) = payload.split_first()?;
        let confidence = match command {
            cmd::QUERY if statement(len, rest) => 80,
            cmd::STMT_PREPARE if statement(len, rest) => 70,
            cmd::INIT_DB if (2..=65).contains(&len) && identifier(rest) => 60,
            cmd::PING if len == 1 && payload.len() == 1 => 30,
            _ => return None,
        };
        (confidence, Role::Client)
    };
    Some(Inference {
        protocol: Protocol::MySql,
        confidence,
        sender_role: Some(role),
    })
}

/// Payload length, sequence id and the payload bytes present.
fn header(bytes: &[u8]) -> Option<(u32, u8, &[u8])> {
    let h = bytes.get(..4)?;
    let len = u32::from_le_bytes([h[0], h[1], h[2], 0]);
    let payload = &bytes[4..];
    Some((len, h[3], &payload[..payload.len().min(len as usize)]))
}

/// A server greeting: seq 0, protocol 10, a printable version starting with a digit, NUL.
pub(crate) fn greeting(bytes: &[u8]) -> bool {
    let Some((len, 0, payload)) = header(bytes) else {
        return false;
    };
    if !(30..=1024).contains(&len) || payload.first() != Some(&0x0a) {
        return false;
    }
    let Some(nul) = payload.iter().skip(1).take(64).position(|&b| b == 0) else {
        return false;
    };
    let version = &payload[1..1 + nul];
    version.first().is_some_and(u8::is_ascii_digit) && version.iter().all(u8::is_ascii_graphic)
}

/// Whether `text` (the captured start of a statement of payload length `len`) looks like SQL:
/// printable, starting with a letter, a parenthesis, a comment or whitespace. The MySQL 8 query
/// attributes prefix (`00 01`) is allowed in front.
pub(crate) fn statement(len: u32, text: &[u8]) -> bool {
    let text = match text {
        [0, 1, rest @ ..] => rest,
        _ => text,
    };
    let Some(&first) = text.first() else {
        return false;
    };
    len >= 2
        && (first.is_ascii_alphabetic()
            || matches!(
                first,
                b'(' | b'/' | b'-' | b'#' | b' ' | b'\t' | b'\r' | b'\n'
            ))
        && text
            .iter()
            .take(TEXT_CHECK)
            .all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace() || b >= 0x80)
}

/// A database name: printable, no spaces.
fn identifier(text: &[u8]) -> bool {
    !text.is_empty() && text.iter().all(|&b| b.is_ascii_graphic() || b >= 0x80)
}

/// Whether a command packet starts at `bytes`: seq 0, a command byte the parser knows, a length
/// that fits it (and printable text for statements).
pub(crate) fn plausible_request(bytes: &[u8]) -> Check {
    if bytes.len() < 5 {
        return Check::Partial;
    }
    let Some((len, seq, payload)) = header(bytes) else {
        return Check::Partial;
    };
    if seq != 0 || len > MAX_PLAUSIBLE {
        return Check::No;
    }
    command_start(u64::from(len), payload)
}

/// Whether a packet of payload length `len` starting with `payload` is a command.
pub(crate) fn command_start(len: u64, payload: &[u8]) -> Check {
    let Some(&command) = payload.first() else {
        return if len == 0 { Check::No } else { Check::Partial };
    };
    let fits = match command {
        cmd::QUIT | cmd::STATISTICS | cmd::DEBUG | cmd::PING | cmd::RESET_CONNECTION => len == 1,
        cmd::QUERY | cmd::STMT_PREPARE => {
            let want = usize::try_from(len)
                .unwrap_or(usize::MAX)
                .min(1 + TEXT_CHECK);
            if payload.len() < want {
                return Check::Partial;
            }
            statement(u32::try_from(len).unwrap_or(u32::MAX), &payload[1..])
        }
        cmd::INIT_DB => (2..=65).contains(&len),
        cmd::STMT_EXECUTE => len >= 10,
        cmd::STMT_CLOSE | cmd::STMT_RESET => len == 5,
        _ => false,
    };
    if fits { Check::Yes } else { Check::No }
}

/// Whether the first packet of a response starts at `bytes`: seq 1, and an OK, an ERR with a
/// SQLSTATE marker, or a column count followed by a column definition (catalog `def`).
pub(crate) fn plausible_response(bytes: &[u8]) -> Check {
    if bytes.len() < 5 {
        return Check::Partial;
    }
    let Some((len, seq, payload)) = header(bytes) else {
        return Check::Partial;
    };
    if seq != 1 || len == 0 {
        return Check::No;
    }
    match payload[0] {
        0x00 if (7..=256).contains(&len) => Check::Yes,
        0xff if len >= 9 => match payload.get(3) {
            Some(b'#') => Check::Yes,
            Some(_) => Check::No,
            None => Check::Partial,
        },
        1..=0xfa if len == 1 => {
            let next = &bytes[5..];
            if next.len() < 8 {
                return Check::Partial;
            }
            if next[3] == 2 && next[4..8] == *b"\x03def" {
                Check::Yes
            } else {
                Check::No
            }
        }
        _ => Check::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openings() {
        let greeting = b"\x5b\x00\x00\x00\x0a5.5.5-10.11.19-MariaDB-0+deb12u1\x00\x07\x00\x00\x00abcdefgh\x00\xfe\xff\x2d\x02\x00\xff\x81\x15\x00\x00\x00\x00\x00\x00\x1d\x00\x00\x00ijklmnopqrst\x00mysql_native_password\x00";
        type Row<'a> = (&'a [u8], Option<(u8, Role)>);
        let table: &[Row<'_>] = &[
            (greeting, Some((100, Role::Server))),
            (b"\x09\x00\x00\x00\x03SELECT 1", Some((80, Role::Client))),
            (b"\x09\x00\x00\x00\x03SEL", Some((80, Role::Client))),
            (
                b"\x0b\x00\x00\x00\x03\x00\x01SELECT 1",
                Some((80, Role::Client)),
            ),
            (b"\x09\x00\x00\x00\x16SELECT ?", Some((70, Role::Client))),
            (b"\x05\x00\x00\x00\x02shop", Some((60, Role::Client))),
            (b"\x01\x00\x00\x00\x0e", Some((30, Role::Client))),
            (b"\x09\x00\x00\x01\x03SELECT 1", None),
            (b"\x09\x00\x00\x00\x03\x01\x02\x03\x04", None),
            (b"\x02\x00\x00\x00\x0e\x00", None),
            (b"GET / HTTP/1.1\r\n", None),
            (b"\x00\x00\x00\x08\x04\xd2\x16\x2f", None),
            (b"\x00\x00\x00\x29\x00\x03\x00\x00user\x00", None),
            (b"*1\r\n$4\r\nPING\r\n", None),
            (b"\x04\x00\x00\x00\x05\x00\x00\x00\x00", None),
            (b"\x04\x00\x00\x00\x01\x00\x00\x00\x16", None),
            (b"", None),
        ];
        for (bytes, want) in table {
            let got = infer(Direction::Egress, bytes)
                .map(|i| (i.confidence, i.sender_role.unwrap_or(Role::Client)));
            assert_eq!(got, *want, "{bytes:?}");
        }
    }

    #[test]
    fn resync_points() {
        assert_eq!(
            plausible_request(b"\x09\x00\x00\x00\x03SELECT 1"),
            Check::Yes
        );
        assert_eq!(
            plausible_request(b"\x09\x00\x00\x00\x03SEL"),
            Check::Partial
        );
        assert_eq!(
            plausible_request(b"\x09\x00\x00\x01\x03SELECT 1"),
            Check::No
        );
        assert_eq!(plausible_request(b"\x01\x00\x00\x00\x0e"), Check::Yes);
        assert_eq!(plausible_request(b"\x02\x00\x00\x00\x0e\x00"), Check::No);
        assert_eq!(
            plausible_response(b"\x07\x00\x00\x01\x00\x01\x00\x02\x00\x00\x00"),
            Check::Yes
        );
        assert_eq!(
            plausible_response(b"\x17\x00\x00\x01\xff\x7a\x04#42S02Table"),
            Check::Yes
        );
        assert_eq!(
            plausible_response(b"\x01\x00\x00\x01\x02\x20\x00\x00\x02\x03def"),
            Check::Yes
        );
        assert_eq!(
            plausible_response(b"\x01\x00\x00\x01\x02\x20\x00\x00\x02\x03abc"),
            Check::No
        );
        assert_eq!(plausible_response(b"\x01\x00\x00\x01\x02"), Check::Partial);
        assert_eq!(
            plausible_response(b"\x07\x00\x00\x02\x00\x01\x00\x02\x00\x00\x00"),
            Check::No
        );
    }
}
