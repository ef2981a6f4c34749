//! gRPC over HTTP/2 (<https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md>): the
//! 5-byte length prefix of each message, counted per direction of a stream; `:path` split
//! into service and method; the status a call ends with when no `grpc-status` came.

/// Counts length-prefixed messages (1 byte compressed flag, 4 bytes big-endian length) in
/// one direction of a stream, from its DATA bytes in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageCounter {
    /// Prefix bytes of the next message seen so far.
    prefix: [u8; 5],
    have: u8,
    /// Body bytes of the current message still to come.
    body_left: u64,
    /// Messages whose prefix was seen.
    count: u64,
    /// A gap hid a message boundary: the count is no longer known.
    lost: bool,
}

impl MessageCounter {
    /// DATA bytes, in order.
    pub fn bytes(&mut self, mut b: &[u8]) {
        while !b.is_empty() && !self.lost {
            if self.body_left > 0 {
                let n = self.body_left.min(b.len() as u64);
                self.body_left -= n;
                b = &b[n as usize..];
                continue;
            }
            let h = usize::from(self.have);
            let n = (5 - h).min(b.len());
            self.prefix[h..h + n].copy_from_slice(&b[..n]);
            self.have += n as u8;
            b = &b[n..];
            if self.have == 5 {
                self.have = 0;
                self.count += 1;
                let [_, l0, l1, l2, l3] = self.prefix;
                self.body_left = u64::from(u32::from_be_bytes([l0, l1, l2, l3]));
            }
        }
    }

    /// `len` DATA bytes were not captured.
    pub fn gap(&mut self, len: u64) {
        if self.have == 0 && len <= self.body_left {
            self.body_left -= len;
        } else {
            self.lost = true;
        }
    }

    /// Messages counted, `None` if a gap made the count unknown.
    pub fn count(&self) -> Option<u64> {
        (!self.lost).then_some(self.count)
    }
}

/// `/package.Service/Method` → (`package.Service`, `Method`).
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (service, method) = rest.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// Whether a `content-type` is gRPC's (`application/grpc`, `application/grpc+proto`, ...).
pub fn is_grpc(content_type: &str) -> bool {
    let ct = content_type.as_bytes();
    ct.len() >= 16
        && ct[..16].eq_ignore_ascii_case(b"application/grpc")
        && matches!(ct.get(16), None | Some(b'+' | b';'))
}

/// The status of a stream reset with HTTP/2 error `code` (the gRPC HTTP/2 mapping).
pub fn status_of_reset(code: u32) -> u32 {
    match code {
        0x8 => 1,  // CANCEL → CANCELLED
        0x7 => 14, // REFUSED_STREAM → UNAVAILABLE
        0xb => 8,  // ENHANCE_YOUR_CALM → RESOURCE_EXHAUSTED
        0xc => 7,  // INADEQUATE_SECURITY → PERMISSION_DENIED
        _ => 13,   // INTERNAL
    }
}

/// The status of a response whose HTTP status is not 200 and that has no `grpc-status`.
pub fn status_of_http(status: u16) -> u32 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    }
}

/// `grpc-message` is percent-encoded (the spec's "Percent-Encoded"); invalid escapes are kept.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(hex) = b.get(i + 1..i + 3)
            && let Ok(hex) = std::str::from_utf8(hex)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_messages_split_anywhere() {
        let mut stream = Vec::new();
        for body in [&b"abc"[..], b"", b"0123456789"] {
            stream.push(0);
            stream.extend_from_slice(&(body.len() as u32).to_be_bytes());
            stream.extend_from_slice(body);
        }
        for chunk in 1..stream.len() {
            let mut c = MessageCounter::default();
            for piece in stream.chunks(chunk) {
                c.bytes(piece);
            }
            assert_eq!(c.count(), Some(3), "chunk {chunk}");
        }
        let mut c = MessageCounter::default();
        c.bytes(&stream[..7]);
        c.gap(1);
        c.bytes(&stream[8..]);
        assert_eq!(c.count(), Some(3));
        let mut c = MessageCounter::default();
        c.bytes(&stream[..2]);
        c.gap(1);
        assert_eq!(c.count(), None);
    }

    #[test]
    fn paths_and_content_types() {
        assert_eq!(
            split_path("/helloworld.Greeter/SayHello"),
            Some(("helloworld.Greeter", "SayHello"))
        );
        assert_eq!(split_path("/index.html"), None);
        assert_eq!(split_path("//x"), None);
        assert!(is_grpc("application/grpc"));
        assert!(is_grpc("application/grpc+proto"));
        assert!(is_grpc("Application/GRPC;charset=utf-8"));
        assert!(!is_grpc("application/grpc-web"));
        assert!(!is_grpc("application/json"));
        assert_eq!(percent_decode("not%20found%2"), "not found%2");
    }
}
