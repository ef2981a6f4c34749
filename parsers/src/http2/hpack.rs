//! Header blocks → header fields (HPACK, RFC 7541), one decoder per direction, through the
//! `loona-hpack` crate; and, when the direction's dynamic table is not known, a decoding that
//! keeps only the fields that are certain.
//!
//! Synced (the direction was seen from its start): `loona-hpack` decodes each block and keeps
//! the dynamic table. An error in a block, a block lost to a gap or over the size limit, or a
//! join mid-stream leaves the table unknown from then on ("unsynced").
//!
//! Unsynced: every representation is walked by hand (RFC 7541 §6: integers and string lengths
//! only, no Huffman) to classify it. A field is certain when it refers to the static table
//! only (indexed with index ≤ 61, or a literal whose name is a literal or a static index);
//! only those are handed to a decoder whose table is never relied on, so no field is ever
//! wrong. An indexed field or an indexed name with an index past the static table refers to
//! the dynamic table and is counted unknown: its entry may predate the join, and even the
//! entries the join saw added (literals with incremental indexing) cannot be trusted, because
//! the table's maximum size, and so which entries were evicted, is not known until a size
//! update is seen. The parser counts a block with unknown fields as
//! [`Loss::UndecodedHeaders`](crate::Loss::UndecodedHeaders).

use loona_hpack::Decoder;

use super::huffman::dehuffman_into;

/// Entries of the static table (RFC 7541 Appendix A).
const STATIC_ENTRIES: usize = 61;

/// Largest dynamic table a size update may ask for (bounds memory per direction).
const MAX_TABLE: usize = 64 * 1024;

/// What became of one block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Fields that could not be decoded (dynamic-table references while unsynced).
    pub unknown: u32,
    /// The block did not parse at all (after which the direction is unsynced).
    pub malformed: bool,
}

/// A `loona-hpack` decoder whose table may grow to [`MAX_TABLE`].
fn table_decoder() -> Decoder<'static> {
    let mut d = Decoder::new();
    d.set_max_allowed_table_size(MAX_TABLE);
    d
}

/// One direction's header decoder.
pub struct HeaderDecoder {
    /// `Some` while the dynamic table is known.
    synced: Option<Decoder<'static>>,
    /// Decodes the certain fields of unsynced blocks; its table is never referred to.
    /// Made on first use: most directions stay synced, and a decoder allocates its table.
    scratch_decoder: Option<Decoder<'static>>,
    scratch: Vec<u8>,
    /// The current block with its Huffman strings decoded, kept to reuse its allocation.
    plain: Vec<u8>,
}

impl std::fmt::Debug for HeaderDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderDecoder")
            .field("synced", &self.synced.is_some())
            .finish()
    }
}

impl HeaderDecoder {
    /// A decoder for a direction seen from its start (`synced`) or joined mid-stream.
    pub fn new(synced: bool) -> Self {
        Self {
            synced: synced.then(table_decoder),
            scratch_decoder: None,
            scratch: Vec::new(),
            plain: Vec::new(),
        }
    }

    /// The dynamic table is unknown from now on (a block was lost).
    pub fn lose(&mut self) {
        self.synced = None;
    }

    /// Decodes one whole header block, handing each decoded field to `field`.
    pub fn decode(&mut self, block: &[u8], field: &mut impl FnMut(&[u8], &[u8])) -> Decoded {
        // The plain form goes to a buffer kept between blocks (taken, so that `self` stays
        // free for the decoders, and put back).
        let mut buf = std::mem::take(&mut self.plain);
        let result = self.decode_plain(block, &mut buf, field);
        self.plain = buf;
        result
    }

    fn decode_plain(
        &mut self,
        block: &[u8],
        buf: &mut Vec<u8>,
        field: &mut impl FnMut(&[u8], &[u8]),
    ) -> Decoded {
        let Some(plain) = dehuffman_into(block, false, buf) else {
            // Cut short or a bad Huffman coding: what it did to the table is unknown.
            self.synced = None;
            let plain = dehuffman_into(block, true, buf).map_or(&[][..], |p| p.bytes(block, buf));
            let mut d = self.decode_unsynced(plain, field);
            d.malformed = true;
            d.unknown += 1;
            return d;
        };
        let plain = plain.bytes(block, buf);
        if let Some(d) = &mut self.synced {
            // A failure part-way leaves the fields before it, all correct (the table was
            // known up to there); the unsynced pass then repeats some with the same values.
            match d.decode_with_cb(plain, |n, v| field(&n, &v)) {
                Ok(()) => return Decoded::default(),
                Err(_) => {
                    self.synced = None;
                    let mut d = self.decode_unsynced(plain, field);
                    d.malformed = true;
                    return d;
                }
            }
        }
        self.decode_unsynced(plain, field)
    }

    /// Decodes the start of a block whose end was not captured: the representations that are
    /// whole, through the dynamic table while it is known; the table is unknown afterwards
    /// (the lost part may change it). The cut-off representation is counted unknown.
    pub fn decode_prefix(
        &mut self,
        prefix: &[u8],
        field: &mut impl FnMut(&[u8], &[u8]),
    ) -> Decoded {
        let mut buf = std::mem::take(&mut self.plain);
        let plain =
            dehuffman_into(prefix, true, &mut buf).map_or(&[][..], |p| p.bytes(prefix, &buf));
        let result = match self.synced.take() {
            Some(mut d) => {
                let _ = d.decode_with_cb(plain, |n, v| field(&n, &v));
                Decoded::default()
            }
            None => self.decode_walk(plain, field, true),
        };
        self.plain = buf;
        Decoded {
            unknown: result.unknown + 1,
            malformed: false,
        }
    }

    fn decode_unsynced(&mut self, block: &[u8], field: &mut impl FnMut(&[u8], &[u8])) -> Decoded {
        self.decode_walk(block, field, false)
    }

    fn decode_walk(
        &mut self,
        block: &[u8],
        field: &mut impl FnMut(&[u8], &[u8]),
        prefix: bool,
    ) -> Decoded {
        self.scratch.clear();
        let mut result = Decoded::default();
        let mut at = 0;
        while at < block.len() {
            let Some((len, certain)) = representation(&block[at..]) else {
                result.malformed = !prefix;
                break;
            };
            match certain {
                Certainty::Certain => self.scratch.extend_from_slice(&block[at..at + len]),
                Certainty::Unknown => result.unknown += 1,
                Certainty::NotAField => {}
            }
            at += len;
        }
        if self.scratch.is_empty() {
            return result;
        }
        let decoder = self.scratch_decoder.get_or_insert_with(table_decoder);
        if decoder
            .decode_with_cb(&self.scratch, |n, v| field(&n, &v))
            .is_err()
        {
            result.malformed = true;
        }
        // Keep the scratch decoder's table empty: nothing it holds is ever referred to.
        decoder.set_max_table_size(0);
        decoder.set_max_table_size(4096);
        result
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Certainty {
    Certain,
    Unknown,
    NotAField,
}

/// The length of the representation at the start of `b` and whether it is certain without
/// the dynamic table; `None` if it is cut short or malformed.
fn representation(b: &[u8]) -> Option<(usize, Certainty)> {
    let first = *b.first()?;
    if first & 0x80 != 0 {
        // Indexed field (§6.1).
        let (index, n) = integer(b, 7)?;
        let c = match index {
            0 => return None,
            i if i <= STATIC_ENTRIES => Certainty::Certain,
            _ => Certainty::Unknown,
        };
        return Some((n, c));
    }
    if first & 0xe0 == 0x20 {
        // Dynamic table size update (§6.3).
        let (_, n) = integer(b, 5)?;
        return Some((n, Certainty::NotAField));
    }
    // Literals (§6.2): with incremental indexing (01), without (0000), never indexed (0001).
    let prefix = if first & 0x40 != 0 { 6 } else { 4 };
    let (index, mut n) = integer(b, prefix)?;
    if index == 0 {
        n += string_len(b.get(n..)?)?;
    }
    n += string_len(b.get(n..)?)?;
    let c = if index <= STATIC_ENTRIES {
        Certainty::Certain
    } else {
        Certainty::Unknown
    };
    Some((n, c))
}

/// An HPACK integer with an `prefix`-bit prefix (§5.1): value and bytes used.
pub(super) fn integer(b: &[u8], prefix: u8) -> Option<(usize, usize)> {
    let mask = (1u16 << prefix) as usize - 1;
    let mut value = usize::from(*b.first()?) & mask;
    if value < mask {
        return Some((value, 1));
    }
    let mut shift = 0u32;
    for (i, &byte) in b.iter().enumerate().skip(1) {
        if i > 5 {
            return None;
        }
        value = value.checked_add(usize::from(byte & 0x7f) << shift)?;
        shift += 7;
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Bytes taken by the string literal at the start of `b` (§5.2).
fn string_len(b: &[u8]) -> Option<usize> {
    let (len, n) = integer(b, 7)?;
    let total = n.checked_add(len)?;
    (total <= b.len()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use loona_hpack::Encoder;

    fn fields(d: &mut HeaderDecoder, block: &[u8]) -> (Vec<String>, Decoded) {
        let mut got = Vec::new();
        let r = d.decode(block, &mut |n, v| {
            got.push(format!(
                "{}: {}",
                String::from_utf8_lossy(n),
                String::from_utf8_lossy(v)
            ))
        });
        (got, r)
    }

    #[test]
    fn unsynced_keeps_only_static_and_literal_fields() {
        let mut enc = Encoder::new();
        let first = enc.encode([
            (&b":method"[..], &b"GET"[..]),
            (b":path", b"/a"),
            (b"x-custom", b"1"),
        ]);
        let second = enc.encode([
            (&b":method"[..], &b"GET"[..]),
            (b":path", b"/a"),
            (b"x-custom", b"1"),
            (b"x-new", b"2"),
        ]);
        // Synced from the start: everything.
        let mut synced = HeaderDecoder::new(true);
        assert_eq!(fields(&mut synced, &first).0.len(), 3);
        let (got, r) = fields(&mut synced, &second);
        assert_eq!((got.len(), r.unknown), (4, 0));
        // Joined before the second block: :path and x-custom are dynamic references.
        let mut joined = HeaderDecoder::new(false);
        let (got, r) = fields(&mut joined, &second);
        // loona-hpack indexes neither `:method: GET` (static) nor `:path` (a literal with its
        // static name); `x-custom` it indexed, so the second block refers to it.
        assert_eq!(got, [":method: GET", ":path: /a", "x-new: 2"]);
        assert_eq!(r.unknown, 1);
        assert!(!r.malformed);
    }

    #[test]
    fn integers() {
        assert_eq!(integer(&[0x1f, 0x9a, 0x0a], 5), Some((1337, 3)));
        assert_eq!(integer(&[0x0a], 5), Some((10, 1)));
        assert_eq!(integer(&[0x1f, 0x9a], 5), None);
        assert_eq!(
            integer(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 7),
            None
        );
    }

    #[test]
    fn garbage_does_not_panic() {
        let mut d = HeaderDecoder::new(true);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut block = Vec::new();
            for _ in 0..(x % 40) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                block.push(x as u8);
            }
            let _ = fields(&mut d, &block);
        }
    }
}
