//! Where the fd sits under a `*tls.Conn`: the offsets of `tls.Conn.conn`, `net.conn.fd` and
//! `netFD.pfd.Sysfd`, from the executable's DWARF when it has some, else from a table of the
//! layouts of known Go releases.

use std::borrow::Cow;
use std::io::Read as _;

use object::{CompressionFormat, Object, ObjectSection};

/// The three offsets the kernel side follows (see `wirelens_ebpf::go_cookie`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnOffsets {
    /// Offset in `tls.Conn` of the data word of `conn net.Conn` (the interface's second word).
    pub conn_data: u16,
    /// Offset in `net.TCPConn` of `fd *netFD` (through the embedded `net.conn`).
    pub tcp_fd: u16,
    /// Offset in `net.netFD` of `pfd.Sysfd`.
    pub sysfd: u16,
}

/// Where the offsets came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSource {
    /// The executable's DWARF.
    Dwarf,
    /// The table of known releases (stripped executable).
    Table,
}

/// The layout of every Go release with the register ABI checked so far (Go 1.17 to 1.25:
/// `tls.Conn` starts with `conn net.Conn`; `net.TCPConn` is `struct{ conn }` and `net.conn`
/// is `struct{ fd *netFD }`; `netFD` starts with `pfd poll.FD`, whose `fdmu fdMutex` (16
/// bytes) precedes `Sysfd int`).
const GO_1_17_TO_1_25: ConnOffsets = ConnOffsets {
    conn_data: 8,
    tcp_fd: 0,
    sysfd: 16,
};
/// Newest minor release the table was checked against.
pub const NEWEST_KNOWN_MINOR: u32 = 25;

/// The offsets for Go `1.minor` from the table (`None` before the register ABI).
pub fn from_table(minor: u32) -> Option<ConnOffsets> {
    (minor >= 17).then_some(GO_1_17_TO_1_25)
}

/// The struct members wanted: (type, member).
const MEMBERS: [(&str, &str); 5] = [
    ("crypto/tls.Conn", "conn"),
    ("net.TCPConn", "conn"),
    ("net.conn", "fd"),
    ("net.netFD", "pfd"),
    ("internal/poll.FD", "Sysfd"),
];

/// The offsets from the DWARF of `file`: `Ok(None)` when it has none (stripped) or lacks one
/// of the types.
pub fn from_dwarf(file: &object::File<'_>) -> Result<Option<ConnOffsets>, gimli::Error> {
    if file.section_by_name(".debug_info").is_none()
        && file.section_by_name(".zdebug_info").is_none()
    {
        return Ok(None);
    }
    let load = |id: gimli::SectionId| -> Result<Cow<'_, [u8]>, gimli::Error> {
        Ok(section_bytes(file, id.name()).unwrap_or(Cow::Borrowed(&[])))
    };
    let sections = gimli::DwarfSections::load(load)?;
    let dwarf = sections.borrow(|s| gimli::EndianSlice::new(s, gimli::LittleEndian));
    let mut found: [Option<u64>; 5] = [None; 5];
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        let unit = unit.unit_ref(&dwarf);
        let mut tree = unit.entries_tree(None)?;
        let root = tree.root()?;
        let mut children = root.children();
        while let Some(node) = children.next()? {
            let entry = node.entry();
            if entry.tag() != gimli::DW_TAG_structure_type {
                continue;
            }
            let Some(name) = entry.attr_value(gimli::DW_AT_name) else {
                continue;
            };
            let name = unit.attr_string(name)?;
            let Some(type_name) = MEMBERS
                .iter()
                .map(|m| m.0)
                .find(|t| t.as_bytes() == name.slice())
            else {
                continue;
            };
            let mut members = node.children();
            while let Some(member) = members.next()? {
                let m = member.entry();
                if m.tag() != gimli::DW_TAG_member {
                    continue;
                }
                let (Some(name), Some(loc)) = (
                    m.attr_value(gimli::DW_AT_name),
                    m.attr_value(gimli::DW_AT_data_member_location),
                ) else {
                    continue;
                };
                let name = unit.attr_string(name)?;
                for (i, (t, field)) in MEMBERS.iter().enumerate() {
                    if *t == type_name && field.as_bytes() == name.slice() {
                        found[i] = loc.udata_value();
                    }
                }
            }
        }
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    let [Some(conn), Some(tcp_conn), Some(fd), Some(pfd), Some(sysfd)] = found else {
        return Ok(None);
    };
    let small = |v: u64| u16::try_from(v).ok();
    Ok((|| {
        Some(ConnOffsets {
            conn_data: small(conn + 8)?,
            tcp_fd: small(tcp_conn + fd)?,
            sysfd: small(pfd + sysfd)?,
        })
    })())
}

/// A section's bytes, decompressed (`SHF_COMPRESSED` zlib, or the older `.zdebug_*` form).
fn section_bytes<'d>(file: &object::File<'d>, name: &str) -> Option<Cow<'d, [u8]>> {
    if let Some(section) = file.section_by_name(name) {
        let c = section.compressed_data().ok()?;
        return match c.format {
            CompressionFormat::None => Some(Cow::Borrowed(c.data)),
            CompressionFormat::Zlib => inflate(c.data, c.uncompressed_size).map(Cow::Owned),
            _ => None,
        };
    }
    // `.zdebug_info`: "ZLIB", the size (big-endian u64), then the zlib stream.
    let z = format!(".zdebug_{}", name.strip_prefix(".debug_")?);
    let data = file.section_by_name(&z)?.data().ok()?;
    let size = u64::from_be_bytes(data.get(4..12)?.try_into().ok()?);
    (data.get(..4)? == b"ZLIB")
        .then(|| inflate(data.get(12..)?, size))
        .flatten()
        .map(Cow::Owned)
}

fn inflate(data: &[u8], size: u64) -> Option<Vec<u8>> {
    // Bounded: DWARF of even a large binary is far below this.
    const MAX: u64 = 1 << 30;
    let mut out = Vec::with_capacity(usize::try_from(size.min(MAX)).ok()?);
    flate2::read::ZlibDecoder::new(data)
        .take(MAX)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_covers_the_register_abi_only() {
        assert_eq!(from_table(16), None);
        assert_eq!(from_table(17), Some(GO_1_17_TO_1_25));
        assert_eq!(from_table(19), Some(GO_1_17_TO_1_25));
    }
}
