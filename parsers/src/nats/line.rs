//! One NATS control line (`PUB s 5`, `MSG s 1 5`, `-ERR '...'`...) parsed into a [`Control`];
//! the CONNECT JSON fields the parser needs, and the traceparent of a header block. Stateless.

use std::borrow::Cow;

/// Every protocol operation NATS clients and servers send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    /// Server → client: server information (JSON).
    Info,
    /// Client → server: connection options (JSON).
    Connect,
    /// Client → server: a message.
    Pub,
    /// Client → server: a message with headers.
    Hpub,
    /// Client → server: subscribe.
    Sub,
    /// Client → server: unsubscribe.
    Unsub,
    /// Server → client: a delivered message.
    Msg,
    /// Server → client: a delivered message with headers.
    Hmsg,
    /// Either way: keep-alive.
    Ping,
    /// Either way: keep-alive answer.
    Pong,
    /// Server → client: verbose acknowledgement.
    Ok,
    /// Server → client: an error.
    Err,
}

impl Verb {
    /// Whether only clients send it (`Some(true)`), only servers (`Some(false)`), or both.
    pub(crate) fn sent_by_client(self) -> Option<bool> {
        match self {
            Verb::Connect | Verb::Pub | Verb::Hpub | Verb::Sub | Verb::Unsub => Some(true),
            Verb::Info | Verb::Msg | Verb::Hmsg | Verb::Ok | Verb::Err => Some(false),
            Verb::Ping | Verb::Pong => None,
        }
    }

    /// Whether a byte-counted payload follows the line.
    pub(crate) fn has_payload(self) -> bool {
        matches!(self, Verb::Pub | Verb::Hpub | Verb::Msg | Verb::Hmsg)
    }
}

/// A parsed control line. Slices borrow from the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Control<'a> {
    pub(crate) verb: Verb,
    /// Subject of PUB/HPUB/MSG/HMSG/SUB; empty otherwise.
    pub(crate) subject: &'a [u8],
    /// Header bytes of HPUB/HMSG (0 for the others).
    pub(crate) header_len: u64,
    /// Payload bytes (headers included) of PUB/HPUB/MSG/HMSG.
    pub(crate) total_len: u64,
    /// JSON of INFO/CONNECT, text of -ERR; empty otherwise.
    pub(crate) rest: &'a [u8],
}

/// Largest byte count accepted (1 TiB: NATS caps payloads at 64 MiB).
const MAX_COUNT: u64 = 1 << 40;
/// Most arguments any operation takes (HMSG: subject, sid, reply, header, total).
const MAX_ARGS: usize = 5;

/// Parses `line` (without its `\n`; a trailing `\r` is allowed). `None`: not a NATS line.
pub(crate) fn parse(line: &[u8]) -> Option<Control<'_>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let verb_len = line
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(line.len());
    let (word, rest) = line.split_at(verb_len);
    let verb = verb_of(word)?;
    let mut control = Control {
        verb,
        subject: b"",
        header_len: 0,
        total_len: 0,
        rest: b"",
    };
    match verb {
        Verb::Info | Verb::Connect => {
            let json = trim(rest);
            (json.first() == Some(&b'{') && json.last() == Some(&b'}')).then_some(())?;
            control.rest = json;
        }
        Verb::Err => {
            let text = trim(rest);
            (!text.is_empty() && printable(text)).then_some(())?;
            control.rest = text;
        }
        Verb::Ping | Verb::Pong | Verb::Ok => trim(rest).is_empty().then_some(())?,
        _ => args(&mut control, rest)?,
    }
    Some(control)
}

/// The operation a (case-insensitive) word names.
fn verb_of(word: &[u8]) -> Option<Verb> {
    let mut upper = [0u8; 7];
    let upper = upper.get_mut(..word.len())?;
    upper.copy_from_slice(word);
    upper.make_ascii_uppercase();
    Some(match &*upper {
        b"PUB" => Verb::Pub,
        b"MSG" => Verb::Msg,
        b"HPUB" => Verb::Hpub,
        b"HMSG" => Verb::Hmsg,
        b"PING" => Verb::Ping,
        b"PONG" => Verb::Pong,
        b"SUB" => Verb::Sub,
        b"UNSUB" => Verb::Unsub,
        b"+OK" => Verb::Ok,
        b"-ERR" => Verb::Err,
        b"INFO" => Verb::Info,
        b"CONNECT" => Verb::Connect,
        _ => return None,
    })
}

/// Fills `control` from the space-separated arguments of PUB/HPUB/MSG/HMSG/SUB/UNSUB.
fn args<'a>(control: &mut Control<'a>, rest: &'a [u8]) -> Option<()> {
    let mut found: [&[u8]; MAX_ARGS] = [b""; MAX_ARGS];
    let mut n = 0;
    // One pass: split on spaces and tabs, refuse control characters.
    let mut start = None;
    for (i, &b) in rest.iter().chain(b" ").enumerate() {
        if b == b' ' || b == b'\t' {
            if let Some(s) = start.take() {
                *found.get_mut(n)? = rest.get(s..i)?;
                n += 1;
            }
        } else if b < 0x20 || b == 0x7f {
            return None;
        } else if start.is_none() {
            start = Some(i);
        }
    }
    let found = &found[..n];
    // (fewest, most) arguments, and how many counts end the list.
    let (min, max, counts) = match control.verb {
        Verb::Pub => (2, 3, 1),
        Verb::Hpub => (3, 4, 2),
        Verb::Msg => (3, 4, 1),
        Verb::Hmsg => (4, 5, 2),
        Verb::Sub => (2, 3, 0),
        Verb::Unsub => (1, 2, 0),
        _ => return None,
    };
    if n < min || n > max {
        return None;
    }
    if control.verb == Verb::Unsub {
        count(found.first()?)?;
        if let Some(max_msgs) = found.get(1) {
            count(max_msgs)?;
        }
        return Some(());
    }
    control.subject = found.first()?;
    match counts {
        1 => control.total_len = count(found.last()?)?,
        2 => {
            control.header_len = count(found.get(n - 2)?)?;
            control.total_len = count(found.last()?)?;
            (control.header_len <= control.total_len).then_some(())?;
        }
        _ => {}
    }
    Some(())
}

/// A decimal byte count or sid.
fn count(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 13 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    (n <= MAX_COUNT).then_some(n)
}

/// No control characters (tabs allowed) and no DEL.
fn printable(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// What the parser keeps of a CONNECT: the client's `name` and whether it asked for `verbose`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ConnectOptions {
    pub(crate) name: Option<String>,
    pub(crate) verbose: bool,
}

/// Longest client name kept.
const MAX_NAME: usize = 256;

/// Reads `name` and `verbose` from the top level of the CONNECT JSON object; other keys and
/// nested values are skipped. Malformed JSON gives what was read before the fault.
pub(crate) fn connect_options(json: &[u8]) -> ConnectOptions {
    let mut options = ConnectOptions::default();
    let mut scan = Json { bytes: json, at: 0 };
    if !scan.eat(b'{') {
        return options;
    }
    loop {
        let Some(key) = scan.string() else {
            return options;
        };
        if !scan.eat(b':') {
            return options;
        }
        match &*key {
            b"name" => match scan.string() {
                Some(name) if !name.is_empty() => {
                    let name = String::from_utf8_lossy(&name);
                    options.name = Some(name.chars().take(MAX_NAME).collect());
                }
                Some(_) => {}
                None => return options,
            },
            b"verbose" => {
                let value = scan.scalar();
                options.verbose = value == b"true";
            }
            _ => {
                if !scan.skip_value() {
                    return options;
                }
            }
        }
        if !scan.eat(b',') {
            return options;
        }
    }
}

/// A forward-only reader of a JSON text, enough to skip values and read strings.
struct Json<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Json<'a> {
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes.get(self.at) {
            if !b.is_ascii_whitespace() {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    fn eat(&mut self, want: u8) -> bool {
        let ok = self.peek() == Some(want);
        if ok {
            self.at += 1;
        }
        ok
    }

    /// A string, unescaped (`\uXXXX` decoded when it is a whole character); borrowed when it
    /// has no escapes.
    fn string(&mut self) -> Option<Cow<'a, [u8]>> {
        if !self.eat(b'"') {
            return None;
        }
        let body = self.bytes.get(self.at..)?;
        let end = memchr::memchr2(b'"', b'\\', body)?;
        if body.get(end) == Some(&b'"') {
            self.at += end + 1;
            return body.get(..end).map(Cow::Borrowed);
        }
        let mut out = Vec::new();
        loop {
            let b = *self.bytes.get(self.at)?;
            self.at += 1;
            match b {
                b'"' => return Some(Cow::Owned(out)),
                b'\\' => self.escape(&mut out)?,
                _ if out.len() < MAX_NAME * 4 => out.push(b),
                // Long values are only skipped past.
                _ => {}
            }
        }
    }

    /// The escape after a backslash, appended to `out`.
    fn escape(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let e = *self.bytes.get(self.at)?;
        self.at += 1;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'u' => {
                let hex = self.bytes.get(self.at..self.at + 4)?;
                self.at += 4;
                let code = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .and_then(char::from_u32)
                    .unwrap_or(char::REPLACEMENT_CHARACTER);
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(code.encode_utf8(&mut utf8).as_bytes());
            }
            other => out.push(other),
        }
        Some(())
    }

    /// A number, `true`, `false` or `null`, as its bytes.
    fn scalar(&mut self) -> &'a [u8] {
        self.peek();
        let start = self.at;
        while self
            .bytes
            .get(self.at)
            .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
        {
            self.at += 1;
        }
        self.bytes.get(start..self.at).unwrap_or_default()
    }

    /// Any value, nested ones included. `false` at a fault.
    fn skip_value(&mut self) -> bool {
        match self.peek() {
            Some(b'"') => self.string().is_some(),
            Some(b'{' | b'[') => self.skip_nested(),
            Some(_) => !self.scalar().is_empty(),
            None => false,
        }
    }

    /// An object or array, by depth, strings skipped whole.
    fn skip_nested(&mut self) -> bool {
        let mut depth = 0usize;
        while let Some(b) = self.peek() {
            match b {
                b'"' => {
                    if self.string().is_none() {
                        return false;
                    }
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        self.at += 1;
                        return true;
                    }
                }
                _ => {}
            }
            self.at += 1;
        }
        false
    }
}

/// Longest traceparent value kept (the W3C version 00 form is 55 characters).
const MAX_TRACEPARENT: usize = 128;

/// The `traceparent` header (name in any case) of a `NATS/1.0` header block, trimmed.
pub(crate) fn traceparent(headers: &[u8]) -> Option<String> {
    let mut lines = headers.split(|&b| b == b'\n');
    let status = lines.next()?;
    if !status.starts_with(b"NATS/") {
        return None;
    }
    lines.find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = line.split_at(colon);
        if !name.trim_ascii().eq_ignore_ascii_case(b"traceparent") {
            return None;
        }
        let value = value.get(1..)?.trim_ascii();
        (!value.is_empty() && value.len() <= MAX_TRACEPARENT && printable(value))
            .then(|| String::from_utf8_lossy(value).into_owned())
    })
}
