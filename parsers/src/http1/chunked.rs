//! Counting through a chunked body (RFC 9112 §7.1) byte by byte, split anywhere; chunk data
//! is skipped over, never buffered.

/// Longest chunk-size line (extensions included) and trailer section accepted.
const MAX_CHUNK_LINE: u32 = 4 * 1024;
const MAX_TRAILERS: u32 = 64 * 1024;

/// Where a [`Chunked`] decoder is in the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading the hex chunk size.
    Size { size: u64, digits: u8 },
    /// After the size: extensions and whitespace up to LF.
    Ext { size: u64, len: u32 },
    /// Inside chunk data.
    Data { remaining: u64 },
    /// After chunk data: CR (or a bare LF).
    DataCr,
    /// After chunk data and CR: LF.
    DataLf,
    /// Trailer section after the last chunk; `line` bytes into the current line.
    Trailers { line: u32, total: u32 },
    /// The body is complete.
    Done,
}

/// What a call to [`Chunked::feed`] came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// More bytes needed.
    More,
    /// The body ended; bytes after `used` belong to the next message.
    Done,
    /// The bytes are not a chunked body.
    Malformed,
}

/// Result of [`Chunked::feed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fed {
    /// Bytes consumed (all of them unless `Done` or `Malformed`).
    pub used: usize,
    /// Of which chunk data.
    pub payload: u64,
    /// What came of it.
    pub status: Status,
}

/// Incremental chunked-body decoder; the body's data is counted, not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chunked {
    state: State,
}

impl Default for Chunked {
    fn default() -> Self {
        Self {
            state: State::Size { size: 0, digits: 0 },
        }
    }
}

impl Chunked {
    /// Consumes bytes of the body, stopping at its end.
    pub fn feed(&mut self, bytes: &[u8]) -> Fed {
        let mut used = 0;
        let mut payload = 0;
        while used < bytes.len() {
            if let State::Data { remaining } = self.state {
                let n = (bytes.len() - used).min(usize::try_from(remaining).unwrap_or(usize::MAX));
                used += n;
                payload += n as u64;
                let remaining = remaining - n as u64;
                self.state = if remaining == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining }
                };
                continue;
            }
            let byte = bytes[used];
            used += 1;
            match self.step(byte) {
                Status::More => {}
                status => {
                    return Fed {
                        used,
                        payload,
                        status,
                    };
                }
            }
        }
        let status = if self.state == State::Done {
            Status::Done
        } else {
            Status::More
        };
        Fed {
            used,
            payload,
            status,
        }
    }

    /// `len` bytes of the body were moved but not seen. Returns whether they lay within one
    /// chunk's data (and so were counted); if not, the framing is lost.
    pub fn skip(&mut self, len: u64) -> bool {
        match self.state {
            State::Data { remaining } if len <= remaining => {
                let remaining = remaining - len;
                self.state = if remaining == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining }
                };
                true
            }
            _ => len == 0,
        }
    }

    /// One byte outside chunk data.
    fn step(&mut self, byte: u8) -> Status {
        self.state = match self.state {
            State::Size { size, digits } => match hex(byte) {
                Some(d) if digits < 16 => State::Size {
                    size: size << 4 | u64::from(d),
                    digits: digits + 1,
                },
                Some(_) => return Status::Malformed,
                None if digits == 0 => return Status::Malformed,
                None => return self.ext(size, 1, byte),
            },
            State::Ext { size, len } => return self.ext(size, len + 1, byte),
            State::DataCr => match byte {
                b'\r' => State::DataLf,
                b'\n' => State::Size { size: 0, digits: 0 },
                _ => return Status::Malformed,
            },
            State::DataLf => match byte {
                b'\n' => State::Size { size: 0, digits: 0 },
                _ => return Status::Malformed,
            },
            State::Trailers { line, total } => {
                if total >= MAX_TRAILERS {
                    return Status::Malformed;
                }
                match byte {
                    b'\n' if line == 0 => State::Done,
                    b'\n' => State::Trailers {
                        line: 0,
                        total: total + 1,
                    },
                    b'\r' => State::Trailers {
                        line,
                        total: total + 1,
                    },
                    _ => State::Trailers {
                        line: line + 1,
                        total: total + 1,
                    },
                }
            }
            // Data is handled in `feed`; nothing follows Done.
            State::Data { .. } | State::Done => return Status::Malformed,
        };
        if self.state == State::Done {
            Status::Done
        } else {
            Status::More
        }
    }

    /// A byte of the rest of a chunk-size line: `[BWS] *( ";" chunk-ext ) CRLF`.
    fn ext(&mut self, size: u64, len: u32, byte: u8) -> Status {
        if len > MAX_CHUNK_LINE {
            return Status::Malformed;
        }
        self.state = match byte {
            b'\n' if size == 0 => State::Trailers { line: 0, total: 0 },
            b'\n' => State::Data { remaining: size },
            b'\r' | b' ' | b'\t' | b';' | b'=' | b'"' | b'\\' => State::Ext { size, len },
            b if b.is_ascii_graphic() || b >= 0x80 => State::Ext { size, len },
            _ => return Status::Malformed,
        };
        Status::More
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> (usize, u64, Status) {
        let mut c = Chunked::default();
        let mut used = 0;
        let mut payload = 0;
        for bytes in chunks {
            let fed = c.feed(bytes);
            used += fed.used;
            payload += fed.payload;
            if fed.status != Status::More {
                return (used, payload, fed.status);
            }
        }
        (used, payload, Status::More)
    }

    #[test]
    fn sizes_extensions_trailers() {
        let body: &[u8] = b"4;name=\"v\"\r\nWiki\r\n5 \r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: x\r\n\r\nNEXT";
        assert_eq!(run(&[body]), (body.len() - 4, 23, Status::Done));
        for split in 0..body.len() {
            let (a, b) = body.split_at(split);
            assert_eq!(
                run(&[a, b]),
                (body.len() - 4, 23, Status::Done),
                "split at {split}"
            );
        }
    }

    #[test]
    fn bare_lf_accepted() {
        assert_eq!(run(&[b"3\nabc\n0\n\n"]), (9, 3, Status::Done));
    }

    #[test]
    fn malformed() {
        for bad in [
            &b"\r\n"[..],
            b"g\r\n",
            b"3\r\nabcX",
            b"11111111111111111\r\n",
            b"3\r\nabc\rX",
            b"1\x01\r\n",
        ] {
            assert_eq!(
                run(&[bad]).2,
                Status::Malformed,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn skip_within_data_only() {
        let mut c = Chunked::default();
        assert_eq!(c.feed(b"10\r\nab").payload, 2);
        assert!(c.skip(14));
        assert!(!c.skip(1), "the CRLF after the data is framing, not data");
        let mut c = Chunked::default();
        assert!(!c.skip(3), "a gap in a size line loses the framing");
    }
}
