//! Struct member offsets from the kernel's BTF (`/sys/kernel/btf/vmlinux`).
//!
//! The kernel programs are built once, without CO-RE, so the few `struct sock` fields outside
//! the stable `sock_common` prefix are read at offsets the agent looks up here and passes in as
//! read-only globals. aya parses BTF but keeps its type lookup private, and a full BTF crate is
//! more than this needs: the format (`Documentation/bpf/btf.rst`) is a header, a type section
//! of fixed-size records each followed by a kind-specific tail, and a string section, so one
//! pass over the types finds a struct by name and reads its member list.

use std::fmt;

const MAGIC: u16 = 0xeb9f;

/// Why an offset was not found.
#[derive(Debug, PartialEq, Eq)]
pub enum BtfError {
    /// Not BTF, or a section outside the data.
    Malformed(&'static str),
    /// No struct of that name has that member.
    NotFound,
    /// The member is a bitfield (its offset is not a whole byte).
    Bitfield,
}

impl fmt::Display for BtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(what) => write!(f, "malformed BTF: {what}"),
            Self::NotFound => f.write_str("no such struct member in BTF"),
            Self::Bitfield => f.write_str("the member is a bitfield"),
        }
    }
}

impl std::error::Error for BtfError {}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn str_at(strings: &[u8], at: u32) -> Option<&[u8]> {
    let rest = strings.get(at as usize..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    Some(&rest[..end])
}

/// Byte offset of `member` in `struct name`, from raw (little-endian) BTF.
pub fn member_offset(btf: &[u8], name: &str, member: &str) -> Result<u32, BtfError> {
    let malformed = BtfError::Malformed;
    let magic = btf.get(0..2).ok_or(malformed("short header"))?;
    if u16::from_le_bytes([magic[0], magic[1]]) != MAGIC {
        return Err(malformed("bad magic (not little-endian BTF)"));
    }
    let field = |at| u32_at(btf, at).ok_or(malformed("short header"));
    let hdr_len = field(4)? as usize;
    let (type_off, type_len) = (field(8)? as usize, field(12)? as usize);
    let (str_off, str_len) = (field(16)? as usize, field(20)? as usize);
    let section = |off: usize, len: usize| {
        let start = hdr_len.checked_add(off)?;
        btf.get(start..start.checked_add(len)?)
    };
    let types = section(type_off, type_len).ok_or(malformed("type section"))?;
    let strings = section(str_off, str_len).ok_or(malformed("string section"))?;

    let mut at = 0usize;
    while at + 12 <= types.len() {
        let name_off = u32_at(types, at).ok_or(malformed("type record"))?;
        let info = u32_at(types, at + 4).ok_or(malformed("type record"))?;
        let vlen = (info & 0xffff) as usize;
        let kind = (info >> 24) & 0x1f;
        let kind_flag = info >> 31 == 1;
        at += 12;
        let tail = match kind {
            // INT, VAR, DECL_TAG: one u32.
            1 | 14 | 17 => 4,
            // ARRAY: type, index type, nelems.
            3 => 12,
            // STRUCT, UNION, DATASEC, ENUM64: vlen records of 12 bytes.
            4 | 5 | 15 | 19 => vlen * 12,
            // ENUM, FUNC_PROTO: vlen records of 8 bytes.
            6 | 13 => vlen * 8,
            // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG.
            2 | 7..=12 | 16 | 18 => 0,
            _ => return Err(malformed("unknown type kind")),
        };
        if kind == 4 && str_at(strings, name_off) == Some(name.as_bytes()) {
            for i in 0..vlen {
                let m = at + i * 12;
                let m_name = u32_at(types, m).ok_or(malformed("member"))?;
                let m_offset = u32_at(types, m + 8).ok_or(malformed("member"))?;
                if str_at(strings, m_name) != Some(member.as_bytes()) {
                    continue;
                }
                // With kind_flag the low 24 bits are the bit offset, the high 8 a bitfield size.
                let (bits, bitfield_size) = if kind_flag {
                    (m_offset & 0xff_ffff, m_offset >> 24)
                } else {
                    (m_offset, 0)
                };
                if bitfield_size != 0 || bits % 8 != 0 {
                    return Err(BtfError::Bitfield);
                }
                return Ok(bits / 8);
            }
        }
        at += tail;
    }
    Err(BtfError::NotFound)
}

/// Byte offset of `member` in `struct name` in the running kernel.
pub fn kernel_member_offset(name: &str, member: &str) -> anyhow::Result<u32> {
    let btf = std::fs::read("/sys/kernel/btf/vmlinux")?;
    Ok(member_offset(&btf, name, member)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal BTF blob: an INT and `struct sock { int a; u16 sk_protocol; }`.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0sock\0a\0sk_protocol\0";
        let mut types = Vec::new();
        // [1] INT "int", size 4, encoding u32.
        types.extend(1u32.to_le_bytes());
        types.extend((1u32 << 24).to_le_bytes());
        types.extend(4u32.to_le_bytes());
        types.extend((32u32).to_le_bytes());
        // [2] STRUCT "sock", 2 members, size 8.
        types.extend(5u32.to_le_bytes());
        types.extend(((4u32 << 24) | 2).to_le_bytes());
        types.extend(8u32.to_le_bytes());
        for (name, off) in [(10u32, 0u32), (12, 32)] {
            types.extend(name.to_le_bytes());
            types.extend(1u32.to_le_bytes());
            types.extend(off.to_le_bytes());
        }
        let mut out = Vec::new();
        out.extend(MAGIC.to_le_bytes());
        out.extend([1u8, 0]);
        out.extend(24u32.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend((types.len() as u32).to_le_bytes());
        out.extend((types.len() as u32).to_le_bytes());
        out.extend((strings.len() as u32).to_le_bytes());
        out.extend(types);
        out.extend(strings);
        out
    }

    #[test]
    fn finds_a_member() {
        assert_eq!(member_offset(&blob(), "sock", "sk_protocol"), Ok(4));
        assert_eq!(member_offset(&blob(), "sock", "a"), Ok(0));
        assert_eq!(
            member_offset(&blob(), "sock", "nope"),
            Err(BtfError::NotFound)
        );
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        let good = blob();
        for cut in 0..good.len() {
            let _ = member_offset(&good[..cut], "sock", "sk_protocol");
        }
        assert!(member_offset(b"not btf at all", "sock", "x").is_err());
    }

    #[test]
    fn reads_the_running_kernel() {
        // The kernels wirelens supports all have BTF; sk_protocol has been a u16 since 5.6.
        let off = kernel_member_offset("sock", "sk_protocol").expect("sk_protocol in BTF");
        assert!(off > 16 && off < 1024, "offset {off}");
    }
}
