//! HPACK Huffman decoding (RFC 7541 §5.2, Appendix B), by hand: `loona-hpack` builds its
//! decoding table (a map of maps) anew for every Huffman-coded string, which measured at
//! 0.4 MB/s on recorded nghttp2 traffic, so header blocks are rewritten with their strings
//! decoded (`dehuffman`) before `loona-hpack` sees them, and it keeps the dynamic table.
//!
//! The code is canonical (codes assigned in order of length, then symbol), so the code
//! lengths of Appendix B are all the table needs.

#[cfg(test)]
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

/// The decoding automaton: one state per internal node of the code tree (256 of them, the
/// root first), consuming four bits at a time (nghttp2's approach). No code is shorter than
/// five bits, so a nibble completes at most one symbol.
struct Fsm {
    /// By state and nibble.
    step: [[Step; 16]; 256],
    /// States where the string may end: the bits since the last symbol are all ones (a prefix
    /// of EOS) and at most seven.
    accepting: [bool; 256],
}

#[derive(Clone, Copy, Default)]
struct Step {
    next: u8,
    /// The symbol the nibble completed, if `EMIT`.
    symbol: u8,
    flags: u8,
}

const EMIT: u8 = 1;
/// The nibble completed EOS or left the tree: not a valid coding.
const FAIL: u8 = 2;

/// The canonical code as (symbol, code, length), in code order: by length, then symbol, each
/// code one more than the last, shifted left whenever the length grows. EOS (256) included.
fn canonical_codes() -> Vec<(u16, u32, u8)> {
    let mut order: Vec<u16> = (0..257).collect();
    order.sort_by_key(|&s| (CODE_LENGTHS[usize::from(s)], s));
    let (mut code, mut prev_len) = (0u32, 0u8);
    order
        .iter()
        .enumerate()
        .map(|(i, &sym)| {
            let len = CODE_LENGTHS[usize::from(sym)];
            if i > 0 {
                code = (code + 1) << (len - prev_len);
            }
            prev_len = len;
            (sym, code, len)
        })
        .collect()
}

fn fsm() -> &'static Fsm {
    static FSM: OnceLock<Fsm> = OnceLock::new();
    FSM.get_or_init(|| {
        // Tree nodes: children of internal nodes, `LEAF | symbol` for leaves.
        const LEAF: u32 = 1 << 16;
        const NONE: u32 = u32::MAX;
        let mut children: Vec<[u32; 2]> = vec![[NONE, NONE]];
        let mut depth_ones: Vec<(u8, bool)> = vec![(0, true)];
        for (sym, code, len) in canonical_codes() {
            let mut node = 0usize;
            for bit_at in (0..len).rev() {
                let bit = ((code >> bit_at) & 1) as usize;
                if bit_at == 0 {
                    children[node][bit] = LEAF | u32::from(sym);
                } else {
                    if children[node][bit] == NONE {
                        children.push([NONE, NONE]);
                        let (d, ones) = depth_ones[node];
                        depth_ones.push((d + 1, ones && bit == 1));
                        children[node][bit] = (children.len() - 1) as u32;
                    }
                    node = children[node][bit] as usize;
                }
            }
        }
        debug_assert_eq!(children.len(), 256);
        let mut fsm = Fsm {
            step: [[Step::default(); 16]; 256],
            accepting: [false; 256],
        };
        for (state, &(depth, ones)) in depth_ones.iter().enumerate().take(256) {
            fsm.accepting[state] = ones && depth <= 7;
            for nibble in 0..16u8 {
                let mut node = state;
                let mut step = Step::default();
                for bit_at in (0..4).rev() {
                    let bit = usize::from((nibble >> bit_at) & 1);
                    let child = children[node][bit];
                    if child == NONE || child == LEAF | 256 {
                        step.flags = FAIL;
                        break;
                    }
                    if child & LEAF != 0 {
                        step.flags |= EMIT;
                        step.symbol = child as u8;
                        node = 0;
                    } else {
                        node = child as usize;
                    }
                }
                step.next = node as u8;
                fsm.step[state][usize::from(nibble)] = step;
            }
        }
        fsm
    })
}

/// Decodes a Huffman-coded string; `None` if it is not a valid coding (EOS inside, padding
/// longer than 7 bits or not all ones, a code that does not exist).
pub fn decode(bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let fsm = fsm();
    out.reserve(bytes.len() * 8 / 5);
    let mut state = 0usize;
    for &byte in bytes {
        for nibble in [byte >> 4, byte & 0x0f] {
            let step = fsm.step[state][usize::from(nibble)];
            if step.flags & FAIL != 0 {
                return None;
            }
            if step.flags & EMIT != 0 {
                out.push(step.symbol);
            }
            state = usize::from(step.next);
        }
    }
    fsm.accepting[state].then_some(())
}

/// `block` with every Huffman-coded string literal replaced by its plain form (borrowed when
/// it has none); `None` if a representation is cut short or a coding is invalid, or with
/// `partial` (a block whose end was not captured), the representations before that one.
#[cfg(test)]
pub fn dehuffman(block: &[u8], partial: bool) -> Option<Cow<'_, [u8]>> {
    let mut w = Vec::new();
    Some(match dehuffman_into(block, partial, &mut w)? {
        Plain::Block(n) => Cow::Borrowed(&block[..n]),
        Plain::Rewritten => Cow::Owned(w),
    })
}

/// Where [`dehuffman_into`] left a block's plain form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plain {
    /// The block had no Huffman string (before the cut, if partial): its first `n` bytes.
    Block(usize),
    /// The plain form was written to the buffer.
    Rewritten,
}

impl Plain {
    /// The plain bytes: `block`'s own or `buf`'s.
    pub fn bytes<'a>(self, block: &'a [u8], buf: &'a [u8]) -> &'a [u8] {
        match self {
            Plain::Block(n) => &block[..n],
            Plain::Rewritten => buf,
        }
    }
}

/// [`dehuffman`] into `w` (cleared first; kept by the caller so that blocks do not allocate):
/// where the plain form is, or `None` as `dehuffman`.
pub fn dehuffman_into(block: &[u8], partial: bool, w: &mut Vec<u8>) -> Option<Plain> {
    w.clear();
    let mut rewriting = false;
    let mut at = 0;
    while at < block.len() {
        let (start, was_rewriting, before) = (at, rewriting, w.len());
        match representation(block, &mut at, w, &mut rewriting) {
            Some(()) => {}
            None if partial => {
                return Some(if was_rewriting {
                    w.truncate(before);
                    Plain::Rewritten
                } else if rewriting {
                    // Begun in this representation: its first `start` bytes are the block's.
                    w.truncate(start);
                    Plain::Rewritten
                } else {
                    Plain::Block(start)
                });
            }
            None => return None,
        }
    }
    Some(if rewriting {
        Plain::Rewritten
    } else {
        Plain::Block(block.len())
    })
}

/// Rewrites the representation at `*at` into `w` (started, `rewriting`, at the block's first
/// Huffman string, with the plain bytes before it) and moves `*at` past it.
fn representation(
    block: &[u8],
    at: &mut usize,
    w: &mut Vec<u8>,
    rewriting: &mut bool,
) -> Option<()> {
    let mut pos = *at;
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
    // Raw bytes are copied only once a rewrite has begun; on failure the caller truncates.
    if *rewriting {
        w.extend_from_slice(&block[pos..pos + n]);
    }
    pos += n;
    for _ in 0..strings {
        let rest = block.get(pos..)?;
        let (len, n) = super::hpack::integer(rest, 7)?;
        let raw = rest.get(n..n.checked_add(len)?)?;
        if rest[0] & 0x80 != 0 {
            if !*rewriting {
                *rewriting = true;
                w.reserve(block.len() * 2);
                w.extend_from_slice(&block[..pos]);
            }
            let start = w.len();
            if raw.len() * 8 / 5 < 0x7f {
                // At most 126 plain bytes: a one-byte length, written once they are known.
                w.push(0);
                decode(raw, w)?;
                w[start] = (w.len() - start - 1) as u8;
            } else {
                decode(raw, w)?;
                let plain = w.len() - start;
                let mut length = Vec::new();
                encode_integer(plain, 7, 0, &mut length);
                w.splice(start..start, length);
            }
        } else if *rewriting {
            w.extend_from_slice(&rest[..n + len]);
        }
        pos += n + len;
    }
    *at = pos;
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

    /// The plain bit-at-a-time canonical decoder, as the automaton's oracle.
    fn decode_bitwise(bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
        let mut order: Vec<u16> = (0..257).collect();
        order.sort_by_key(|&s| (CODE_LENGTHS[usize::from(s)], s));
        let (mut first, mut count, mut offset) = ([0u32; 31], [0u32; 31], [0u32; 31]);
        for &s in &order {
            count[usize::from(CODE_LENGTHS[usize::from(s)])] += 1;
        }
        let (mut c, mut index) = (0u32, 0u32);
        for len in 1..31 {
            first[len] = c;
            offset[len] = index;
            c = (c + count[len]) << 1;
            index += count[len];
        }
        let (mut code, mut len) = (0u32, 0usize);
        for &byte in bytes {
            for bit in (0..8).rev() {
                code = (code << 1) | u32::from((byte >> bit) & 1);
                len += 1;
                if len > 30 {
                    return None;
                }
                let rel = code.wrapping_sub(first[len]);
                if code >= first[len] && rel < count[len] {
                    let symbol = order[(offset[len] + rel) as usize];
                    if symbol == 256 {
                        return None;
                    }
                    out.push(symbol as u8);
                    code = 0;
                    len = 0;
                }
            }
        }
        (len <= 7 && code == (1u32 << len) - 1).then_some(())
    }

    #[test]
    fn automaton_agrees_with_the_bitwise_decoder() {
        // Every byte string of one and two bytes, then pseudo-random longer ones (most of
        // them invalid codings, some valid).
        let mut inputs: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        for a in 0..=255u8 {
            for b in (0..=255u8).step_by(3) {
                inputs.push(vec![a, b]);
            }
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for n in 0..20_000usize {
            let mut v = Vec::new();
            for _ in 0..(n % 24) + 3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Bias towards ones so that long codes and padding get exercised.
                v.push((x as u8) | if n % 3 == 0 { 0xe0 } else { 0 });
            }
            inputs.push(v);
        }
        let mut valid = 0;
        for input in &inputs {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let ra = decode(input, &mut a);
            let rb = decode_bitwise(input, &mut b);
            assert_eq!(ra, rb, "{input:02x?}");
            if ra.is_some() {
                valid += 1;
                assert_eq!(a, b, "{input:02x?}");
            }
        }
        assert!(valid > 100, "only {valid} valid codings exercised");
    }

    #[test]
    fn every_symbol_round_trips() {
        // Each symbol alone, coded canonically and padded with ones.
        for (sym, code, len) in canonical_codes().into_iter().filter(|&(s, ..)| s < 256) {
            let code = u64::from(code);
            let bits = u32::from(len);
            let total = bits.div_ceil(8) * 8;
            let padded = (code << (total - bits)) | ((1u64 << (total - bits)) - 1);
            let bytes: Vec<u8> = (0..total / 8)
                .rev()
                .map(|k| (padded >> (k * 8)) as u8)
                .collect();
            let mut out = Vec::new();
            assert_eq!(decode(&bytes, &mut out), Some(()), "symbol {sym}");
            assert_eq!(out, [sym as u8]);
        }
    }

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
