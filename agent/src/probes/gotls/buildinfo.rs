//! The Go version an executable was built with, from its `.go.buildinfo` section (what
//! `go version <file>` prints), which stripping keeps.

/// The section's 14-byte magic.
const MAGIC: &[u8] = b"\xff Go buildinf:";
/// Flag: the version and module strings are inline (Go 1.18 and later).
const INLINE_STRINGS: u8 = 2;

/// The version string (`go1.19.8`) from the section's bytes; `read` reads `len` bytes at a
/// virtual address (older layouts point at the string).
pub fn version(section: &[u8], read: impl Fn(u64, usize) -> Option<Vec<u8>>) -> Option<String> {
    if section.get(..MAGIC.len())? != MAGIC {
        return None;
    }
    let ptr_size = usize::from(*section.get(14)?);
    let flags = *section.get(15)?;
    let bytes = if flags & INLINE_STRINGS != 0 {
        let (len, used) = uvarint(section.get(32..)?)?;
        let start = 32 + used;
        section
            .get(start..start.checked_add(usize::try_from(len).ok()?)?)?
            .to_vec()
    } else {
        if ptr_size != 8 {
            return None;
        }
        // A pointer to a Go string header (data pointer, length).
        let at = u64::from_le_bytes(section.get(16..24)?.try_into().ok()?);
        let header = read(at, 16)?;
        let data = u64::from_le_bytes(header.get(0..8)?.try_into().ok()?);
        let len = u64::from_le_bytes(header.get(8..16)?.try_into().ok()?);
        read(data, usize::try_from(len).ok().filter(|&l| l < 256)?)?
    };
    String::from_utf8(bytes).ok()
}

/// The (major, minor) of a version string: `go1.19.8` → (1, 19); `devel go1.22-abc` too.
pub fn major_minor(version: &str) -> Option<(u32, u32)> {
    let at = version.find("go1.")?;
    let rest = &version[at + 2..];
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// A Go unsigned varint: value and bytes used.
fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inline_versions() {
        let mut s = MAGIC.to_vec();
        s.extend_from_slice(&[8, INLINE_STRINGS]);
        s.resize(32, 0);
        s.push(8);
        s.extend_from_slice(b"go1.19.8");
        assert_eq!(version(&s, |_, _| None).as_deref(), Some("go1.19.8"));
        assert_eq!(version(&s[..35], |_, _| None), None);
        assert_eq!(version(b"not a go binary", |_, _| None), None);
    }

    #[test]
    fn parses_versions() {
        assert_eq!(major_minor("go1.19.8"), Some((1, 19)));
        assert_eq!(major_minor("go1.21rc2"), Some((1, 21)));
        assert_eq!(major_minor("devel go1.22-abcdef"), Some((1, 22)));
        assert_eq!(major_minor("gopher"), None);
    }
}
