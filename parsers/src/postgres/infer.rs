//! Is this PostgreSQL? Judged from the first bytes of one direction, statelessly. The port is
//! never consulted.

use super::types::{CANCEL_REQUEST, GSSENC_REQUEST, PROTOCOL_3, SSL_REQUEST};
use crate::Direction;
use crate::protocol::{Inference, Protocol};
use crate::record::Role;

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn sure(confidence: u8, role: Role) -> Option<Inference> {
    Some(Inference {
        protocol: Protocol::Postgres,
        confidence,
        sender_role: Some(role),
    })
}

/// Whether `b` reads as the start of SQL text: printable ASCII (or UTF-8) and whitespace,
/// starting with a letter, `(`, `/` or `-` (comments) after any whitespace.
fn looks_like_sql(b: &[u8]) -> bool {
    let text = b.iter().position(|&c| c == 0).map_or(b, |end| &b[..end]);
    let trimmed = text.trim_ascii_start();
    let Some(&first) = trimmed.first() else {
        return false;
    };
    (first.is_ascii_alphabetic() || matches!(first, b'(' | b'/' | b'-'))
        && text
            .iter()
            .all(|&c| c.is_ascii_graphic() || c.is_ascii_whitespace() || c >= 0x80)
}

/// How well the first bytes of `dir` look like PostgreSQL: an untyped StartupMessage,
/// SSLRequest, GSSENCRequest or CancelRequest (100/90, from the client); a simple Query or a
/// Parse with SQL text (80/70, client); an Authentication request or ReadyForQuery (60, server).
pub fn infer(_dir: Direction, bytes: &[u8]) -> Option<Inference> {
    let len = be32(bytes, 0)?;
    // Untyped: the length's top byte is 0 (no type byte is 0).
    if bytes.first() == Some(&0) {
        let code = be32(bytes, 4)?;
        return match code {
            PROTOCOL_3 if (8..=10_000).contains(&len) => sure(100, Role::Client),
            SSL_REQUEST | GSSENC_REQUEST if len == 8 => sure(100, Role::Client),
            CANCEL_REQUEST if len == 16 => sure(90, Role::Client),
            _ => None,
        };
    }
    let tag = bytes[0];
    let len = be32(bytes, 1)?;
    let body = &bytes[5..];
    let body = &body[..body.len().min(len.saturating_sub(4) as usize)];
    match tag {
        b'Q' if (6..=1 << 30).contains(&len) && looks_like_sql(&body[..body.len().min(64)]) => {
            sure(80, Role::Client)
        }
        b'P' if (8..=1 << 30).contains(&len) => {
            // Statement name (printable, possibly empty), then SQL.
            let name_end = body.iter().take(64).position(|&b| b == 0)?;
            let name_ok = body[..name_end].iter().all(u8::is_ascii_graphic);
            let sql = &body[name_end + 1..];
            (name_ok && looks_like_sql(&sql[..sql.len().min(64)])).then_some(())?;
            sure(70, Role::Client)
        }
        b'R' => {
            let code = be32(bytes, 5)?;
            let ok = match code {
                0 | 2 | 3 | 7 | 9 => len == 8,
                5 => len == 12,
                8 | 10 | 11 | 12 => (8..=4096).contains(&len),
                _ => false,
            };
            if ok { sure(60, Role::Server) } else { None }
        }
        b'Z' if len == 5 && matches!(bytes.get(5), Some(b'I' | b'T' | b'E')) => {
            sure(60, Role::Server)
        }
        _ => None,
    }
}
