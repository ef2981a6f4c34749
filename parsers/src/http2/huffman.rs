//! HPACK Huffman decoding (RFC 7541 §5.2, Appendix B), by hand: `loona-hpack` builds its
//! decoding table (a map of maps) anew for every Huffman-coded string, which measured at
//! 0.4 MB/s on recorded nghttp2 traffic, so header blocks are rewritten with their strings
//! decoded (`dehuffman`) before `loona-hpack` sees them, and it keeps the dynamic table.
//!
//! The code is canonical (codes assigned in order of length, then symbol), so the code
//! lengths of Appendix B are all the table needs.

use std::borrow::Cow;
use std::sync::OnceLock;

/// Code length of each symbol, 0–255 and EOS (256), from RFC 7541 Appendix B.
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

/// Canonical decoding tables, per code length 1–30.
struct Table {
    /// First code of each length.
    first: [u32; 31],
    /// Number of codes of each length.
    count: [u32; 31],
    /// Index in `symbols` of the first code of each length.
    offset: [u32; 31],
    /// Symbols in code order.
    symbols: [u16; 257],
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Table {
            first: [0; 31],
            count: [0; 31],
            offset: [0; 31],
            symbols: [0; 257],
        };
        let mut order: Vec<u16> = (0..257).collect();
        order.sort_by_key(|&s| (CODE_LENGTHS[usize::from(s)], s));
        for (i, &s) in order.iter().enumerate() {
            t.symbols[i] = s;
            t.count[usize::from(CODE_LENGTHS[usize::from(s)])] += 1;
        }
        let (mut code, mut index) = (0u32, 0u32);
        for len in 1..31 {
            t.first[len] = code;
            t.offset[len] = index;
            code = (code + t.count[len]) << 1;
            index += t.count[len];
        }
        t
    })
}

/// Decodes a Huffman-coded string; `None` if it is not a valid coding (EOS inside, padding
/// longer than 7 bits or not all ones, a code that does not exist).
pub fn decode(bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let t = table();
    let (mut code, mut len) = (0u32, 0usize);
    for &byte in bytes {
        for bit in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> bit) & 1);
            len += 1;
            if len > 30 {
                return None;
            }
            let rel = code.wrapping_sub(t.first[len]);
            if code >= t.first[len] && rel < t.count[len] {
                let symbol = t.symbols[(t.offset[len] + rel) as usize];
                if symbol == 256 {
                    return None;
                }
                out.push(symbol as u8);
                code = 0;
                len = 0;
            }
        }
    }
    // Padding: at most 7 bits, all ones (a prefix of EOS).
    (len <= 7 && code == (1u32 << len) - 1).then_some(())
}

/// `block` with every Huffman-coded string literal replaced by its plain form (borrowed when
/// it has none); `None` if a representation is cut short or a coding is invalid, or with
/// `partial` (a block whose end was not captured), the representations before that one.
pub fn dehuffman(block: &[u8], partial: bool) -> Option<Cow<'_, [u8]>> {
    let mut at = 0;
    let mut rewritten: Option<Vec<u8>> = None;
    while at < block.len() {
        let start = at;
        let before = rewritten.as_ref().map(Vec::len);
        match representation(block, &mut at, &mut rewritten) {
            Some(()) => {}
            None if partial => {
                return Some(match (rewritten, before) {
                    (Some(mut w), Some(len)) => {
                        w.truncate(len);
                        Cow::Owned(w)
                    }
                    (Some(mut w), None) => {
                        w.truncate(start);
                        Cow::Owned(w)
                    }
                    (None, _) => Cow::Borrowed(&block[..start]),
                });
            }
            None => return None,
        }
    }
    Some(match rewritten {
        Some(w) => Cow::Owned(w),
        None => Cow::Borrowed(block),
    })
}

/// Rewrites the representation at `*at` into `rewritten` (started at its first Huffman
/// string, with the plain bytes before it) and moves `*at` past it.
fn representation(block: &[u8], at: &mut usize, rewritten: &mut Option<Vec<u8>>) -> Option<()> {
    let mut pos = *at;
    {
        let first = *block.get(pos)?;
        let (prefix, strings) = if first & 0x80 != 0 {
            (7, 0)
        } else if first & 0xe0 == 0x20 {
            (5, 0)
        } else {
            (if first & 0x40 != 0 { 6 } else { 4 }, 1)
        };
        let (index, n) = super::hpack::integer(&block[pos..], prefix)?;
        let strings = if strings == 1 && index == 0 {
            2
        } else {
            strings
        };
        // Rewritten bytes of this representation, appended once it is whole.
        let mut mine: Vec<u8> = Vec::new();
        let copying = rewritten.is_some();
        mine.extend_from_slice(&block[pos..pos + n]);
        pos += n;
        let mut huffman_seen = false;
        for _ in 0..strings {
            let rest = block.get(pos..)?;
            let (len, n) = super::hpack::integer(rest, 7)?;
            let raw = rest.get(n..n.checked_add(len)?)?;
            if rest[0] & 0x80 != 0 {
                huffman_seen = true;
                let mut plain = Vec::with_capacity(len * 8 / 5 + 1);
                decode(raw, &mut plain)?;
                encode_integer(plain.len(), 7, 0, &mut mine);
                mine.extend_from_slice(&plain);
            } else {
                mine.extend_from_slice(&rest[..n + len]);
            }
            pos += n + len;
        }
        if !copying && huffman_seen {
            *rewritten = Some(block[..*at].to_vec());
        }
        if let Some(w) = rewritten {
            w.extend_from_slice(&mine);
        }
        *at = pos;
    }
    Some(())
}

/// Appends `value` as an HPACK integer with a `prefix`-bit prefix under the `flags` bits.
fn encode_integer(value: usize, prefix: u8, flags: u8, out: &mut Vec<u8>) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn rfc_7541_examples() {
        for (coded, plain) in [
            ("f1e3c2e5f23a6ba0ab90f4ff", "www.example.com"),
            ("a8eb10649cbf", "no-cache"),
            ("25a849e95ba97d7f", "custom-key"),
            ("25a849e95bb8e8b4bf", "custom-value"),
            ("6402", "302"),
            ("aec3771a4b", "private"),
            (
                "d07abe941054d444a8200595040b8166e082a62d1bff",
                "Mon, 21 Oct 2013 20:13:21 GMT",
            ),
        ] {
            let mut out = Vec::new();
            assert_eq!(decode(&hex(coded), &mut out), Some(()), "{plain}");
            assert_eq!(out, plain.as_bytes());
        }
        // Padding of 8 bits, or of zeros, is invalid.
        assert_eq!(decode(&hex("6402ff"), &mut Vec::new()), None);
        assert_eq!(decode(&hex("1f"), &mut Vec::new()), Some(()));
        assert_eq!(decode(&hex("18"), &mut Vec::new()), None);
    }

    #[test]
    fn rewritten_blocks_decode_the_same() {
        // RFC 7541 C.4.1: `:method GET`, `:scheme http`, `:path /`, `:authority` Huffman.
        let block = hex("828684418cf1e3c2e5f23a6ba0ab90f4ff");
        let plain = dehuffman(&block, false).expect("valid");
        let mut a = loona_hpack::Decoder::new();
        let mut b = loona_hpack::Decoder::new();
        assert_eq!(a.decode(&block).ok(), b.decode(&plain).ok());
        assert!(plain.len() > block.len());
        assert!(matches!(
            dehuffman(b"\x82\x86", false),
            Some(Cow::Borrowed(_))
        ));
        assert_eq!(dehuffman(&block[..10], false), None);
        assert_eq!(dehuffman(&block[..10], true).as_deref(), Some(&block[..3]));
    }
}
