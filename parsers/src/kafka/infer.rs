//! Is this Kafka? Judged from a request header: size prefix, api key, api version within the
//! `kafka-protocol` crate's supported range, correlation id and client id must agree. Only
//! requests are recognised (a response header is a bare correlation id). Joined mid-stream,
//! a whole request found in the first bytes is recognised too. The port is never consulted.

use kafka_protocol::messages::ApiKey;

use super::frame::{MAX_FRAME, Verdict};
use super::schema::{self, Body};
use crate::Direction;
use crate::protocol::{Inference, Protocol};
use crate::record::Role;

/// A request header, as read from the bytes after the size field.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RequestHeader<'a> {
    pub api_key: i16,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<&'a [u8]>,
    /// Bytes of the header (the body follows).
    pub len: usize,
}

/// Reads a request header from `bytes` (after the size field). `Err(true)`: more bytes are
/// needed to tell; `Err(false)`: not a request header this module knows.
pub(crate) fn request_header(bytes: &[u8]) -> Result<RequestHeader<'_>, bool> {
    let get = |at: usize, n: usize| bytes.get(at..at + n).ok_or(true);
    let i16_at = |at| get(at, 2).map(|b| i16::from_be_bytes([b[0], b[1]]));
    let api_key = i16_at(0)?;
    let version = i16_at(2)?;
    let key = ApiKey::try_from(api_key).map_err(|_| false)?;
    let range = key.valid_versions();
    if !(range.min..=range.max).contains(&version) {
        return Err(false);
    }
    let c = get(4, 4)?;
    let correlation_id = i32::from_be_bytes([c[0], c[1], c[2], c[3]]);
    if correlation_id < 0 {
        return Err(false);
    }
    let header_version = key.request_header_version(version);
    if header_version < 1 {
        return Ok(RequestHeader {
            api_key,
            version,
            correlation_id,
            client_id: None,
            len: 8,
        });
    }
    let client_len = i16_at(8)?;
    let printable = |id: &[u8]| id.iter().all(|b| (0x20..0x7f).contains(b));
    let (client_id, mut len) = match client_len {
        -1 => (None, 10),
        n if n >= 0 => {
            let n = n as usize;
            // Judge the part in view before asking for more.
            let seen = bytes.get(10..).unwrap_or_default();
            if !printable(&seen[..seen.len().min(n)]) {
                return Err(false);
            }
            (Some(get(10, n)?), 10 + n)
        }
        _ => return Err(false),
    };
    if header_version >= 2 {
        // Tagged fields: a count, then (tag, size, bytes); clients send none or few.
        let count = *bytes.get(len).ok_or(true)?;
        if count > 8 {
            return Err(false);
        }
        len += 1;
        for _ in 0..count {
            let _tag = *bytes.get(len).ok_or(true)?;
            let size = *bytes.get(len + 1).ok_or(true)?;
            if _tag >= 0x80 || size >= 0x80 {
                return Err(false);
            }
            len += 2 + usize::from(size);
        }
        if len > bytes.len() {
            return Err(true);
        }
    }
    Ok(RequestHeader {
        api_key,
        version,
        correlation_id,
        client_id,
        len,
    })
}

/// Reads the header of a request in the request direction: api keys and versions the crate
/// does not know are read too (with a v1 header), to name their records.
pub(crate) fn any_request_header(bytes: &[u8]) -> Option<RequestHeader<'_>> {
    if let Ok(h) = request_header(bytes) {
        return Some(h);
    }
    let get = |at: usize, n: usize| bytes.get(at..at + n);
    let api_key = i16::from_be_bytes(get(0, 2)?.try_into().ok()?);
    let version = i16::from_be_bytes(get(2, 2)?.try_into().ok()?);
    let correlation_id = i32::from_be_bytes(get(4, 4)?.try_into().ok()?);
    let known = ApiKey::try_from(api_key)
        .is_ok_and(|k| (k.valid_versions().min..=k.valid_versions().max).contains(&version));
    if known || api_key < 0 || version < 0 || correlation_id < 0 {
        return None;
    }
    let client_len = i16::from_be_bytes(get(8, 2)?.try_into().ok()?);
    let client_id = match client_len {
        -1 => None,
        n => Some(get(10, usize::try_from(n).ok()?)?),
    };
    if client_id.is_some_and(|id| !id.iter().all(|b| (0x20..0x7f).contains(b))) {
        return None;
    }
    Some(RequestHeader {
        api_key,
        version,
        correlation_id,
        client_id,
        len: 10 + client_id.map_or(0, <[u8]>::len),
    })
}

/// Whether `bytes` start a request frame the request direction can take: one [`request_at`]
/// accepts, or a size that holds a header of an api key or version the crate does not know.
pub(crate) fn any_request_at(bytes: &[u8]) -> Verdict {
    match request_at(bytes, false) {
        Verdict::No => {}
        known => return known,
    }
    let Some(size) = bytes.get(..4) else {
        return Verdict::NeedMore;
    };
    let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]);
    if !(10..=MAX_FRAME).contains(&size) {
        return Verdict::No;
    }
    let frame = &bytes[4..];
    let frame = &frame[..frame.len().min(size as usize)];
    // Kafka's api keys are below 100 and versions below 20 today: room to grow, no more.
    let sane = |h: &RequestHeader<'_>| {
        h.api_key <= 127 && h.version <= 40 && h.client_id.is_some_and(|c| !c.is_empty())
    };
    match any_request_header(frame) {
        Some(h) if h.len <= size as usize && sane(&h) => Verdict::Yes,
        Some(_) => Verdict::No,
        None if frame.len() < 10 => Verdict::NeedMore,
        None if frame.len() < size as usize && client_id_cut(frame) => Verdict::NeedMore,
        None => Verdict::No,
    }
}

/// Whether a header's only fault is a client id running past the bytes in view.
fn client_id_cut(frame: &[u8]) -> bool {
    let n = i16::from_be_bytes([frame[8], frame[9]]);
    let seen = &frame[10..];
    usize::try_from(n).is_ok_and(|n| n > seen.len())
        && seen.iter().all(|b| (0x20..0x7f).contains(b))
}

/// Whether `bytes` start with a size field and a request header that fits in it. With
/// `whole`, the whole frame must be in view and its body must read (for the api keys read).
pub(crate) fn request_at(bytes: &[u8], whole: bool) -> Verdict {
    let Some(size) = bytes.get(..4) else {
        return Verdict::NeedMore;
    };
    let size = i32::from_be_bytes([size[0], size[1], size[2], size[3]]);
    let Ok(size) = u32::try_from(size) else {
        return Verdict::No;
    };
    if !(8..=MAX_FRAME).contains(&size) {
        return Verdict::No;
    }
    let frame = &bytes[4..];
    let header = match request_header(&frame[..frame.len().min(size as usize)]) {
        Ok(h) => h,
        Err(true) if frame.len() < size as usize => return Verdict::NeedMore,
        Err(_) => return Verdict::No,
    };
    if header.len > size as usize {
        return Verdict::No;
    }
    if !whole {
        return Verdict::Yes;
    }
    let Some(body) = frame.get(header.len..size as usize) else {
        return Verdict::NeedMore;
    };
    let Ok(key) = ApiKey::try_from(header.api_key) else {
        return Verdict::No;
    };
    match schema::read_body(key, header.version, false, body, &mut Body::default()) {
        Ok(()) => Verdict::Yes,
        Err(_) => Verdict::No,
    }
}

/// Largest request size believed at the start of a connection (16 MiB; larger requests are
/// real but rare, and a big size is what other protocols' first bytes look like).
const MAX_FIRST: u32 = 16 << 20;
/// How far into the first bytes a whole request is looked for (joined mid-stream).
const MID_STREAM_WINDOW: usize = 4096;

fn sure(confidence: u8) -> Option<Inference> {
    Some(Inference {
        protocol: Protocol::Kafka,
        confidence,
        sender_role: Some(Role::Client),
    })
}

/// How well the first bytes of `dir` look like Kafka: a request header at the start (85; 95
/// when the whole request is in view and its body reads; 80 when the bytes end inside the
/// client id), or a whole readable request with a
/// client id starting within the first [`MID_STREAM_WINDOW`] bytes (70).
pub fn infer(_dir: Direction, bytes: &[u8]) -> Option<Inference> {
    let size_ok = |b: &[u8]| {
        b.get(..4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
            .is_some_and(|s| s <= MAX_FIRST)
    };
    if size_ok(bytes) {
        match request_at(bytes, true) {
            Verdict::Yes => return sure(95),
            Verdict::NeedMore => match request_at(bytes, false) {
                Verdict::Yes => return sure(85),
                // Size, api key, version, correlation id and client id length agree so far.
                Verdict::NeedMore if bytes.len() >= 14 => return sure(80),
                _ => {}
            },
            Verdict::No => {}
        }
    }
    let window = bytes.len().min(MID_STREAM_WINDOW);
    for at in 1..window {
        let rest = &bytes[at..];
        if size_ok(rest)
            && request_at(rest, true) == Verdict::Yes
            && request_header(&rest[4..]).is_ok_and(|h| h.client_id.is_some_and(|c| c.len() >= 2))
        {
            return sure(70);
        }
    }
    None
}
