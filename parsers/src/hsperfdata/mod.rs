//! HotSpot performance data (`hsperfdata`): the memory-mapped file every HotSpot JVM
//! (OpenJDK, and the JVMs built from it) keeps at `/tmp/hsperfdata_<user>/<pid>`, decoded into
//! named counters. Bytes in, counters out; no file access here (the agent reads the file).
//!
//! Written by hand: no crate on crates.io parses this format. The layout is HotSpot's
//! `PerfDataPrologue` and `PerfDataEntry` (`src/hotspot/share/runtime/perfMemory.hpp`):
//!
//! ```text
//! prologue (32 bytes): magic 0xCAFEC0C0 (always big-endian) | byte_order u8 (0 big, 1 little)
//!   | major u8 | minor u8 | accessible u8 | used u32 | overflow u32 | mod_time_stamp i64
//!   | entry_offset u32 | num_entries u32
//! entry (20-byte header, then name and data, in the file's byte order):
//!   entry_length u32 | name_offset u32 | vector_length u32 | data_type u8 ('J' i64, 'B' bytes)
//!   | flags u8 | data_units u8 | data_variability u8 | data_offset u32
//! ```
//!
//! Offsets in an entry are from the entry's start. A scalar (`vector_length` 0) of type `J` is
//! a 64-bit integer; a `B` vector is a NUL-terminated string. Everything is bounds-checked and
//! nothing panics: the JVM may be writing the file while it is read, so an entry that runs
//! past the bytes given ends the walk ([`PerfData::truncated`]), an entry whose name or data
//! does not fit is skipped and counted ([`PerfData::malformed`]).

#[cfg(test)]
mod tests;

use std::fmt;

/// The prologue's magic number, as its first four bytes read big-endian.
pub const MAGIC: u32 = 0xCAFE_C0C0;
/// Bytes in the prologue.
pub const PROLOGUE_LEN: usize = 32;
/// Bytes in an entry's fixed header.
pub const ENTRY_HEADER_LEN: usize = 20;
/// Most entries read from one file (HotSpot writes about 200 to 300).
pub const MAX_ENTRIES: usize = 4096;

/// Why a buffer is not performance data at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HsperfError {
    /// Shorter than the prologue.
    TooShort(usize),
    /// The first four bytes are not [`MAGIC`].
    BadMagic(u32),
    /// The byte-order byte is neither 0 nor 1.
    BadByteOrder(u8),
    /// A major version other than 2 (every HotSpot since JDK 1.4.2 writes 2).
    UnsupportedVersion(u8),
}

impl fmt::Display for HsperfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(n) => write!(
                f,
                "{n} bytes, shorter than the {PROLOGUE_LEN}-byte prologue"
            ),
            Self::BadMagic(m) => write!(f, "bad magic {m:#010x}"),
            Self::BadByteOrder(b) => write!(f, "bad byte order {b}"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported major version {v}"),
        }
    }
}

impl std::error::Error for HsperfError {}

/// Byte order of the file's fields after the magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteOrder {
    /// Written by a big-endian JVM.
    Big,
    /// Written by a little-endian JVM (x86-64, aarch64).
    Little,
}

/// What a counter measures (`PerfData::Units`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Units {
    /// A plain number.
    None,
    /// Bytes.
    Bytes,
    /// Ticks of the high-resolution timer (`sun.os.hrt.frequency` per second).
    Ticks,
    /// A count of events.
    Events,
    /// A string.
    String,
    /// A frequency in hertz.
    Hertz,
    /// A code this parser does not know.
    Unknown(u8),
}

impl Units {
    fn from_code(code: u8) -> Self {
        match code {
            1 => Self::None,
            2 => Self::Bytes,
            3 => Self::Ticks,
            4 => Self::Events,
            5 => Self::String,
            6 => Self::Hertz,
            other => Self::Unknown(other),
        }
    }
}

/// How a counter changes (`PerfData::Variability`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variability {
    /// Set once.
    Constant,
    /// Only grows.
    Monotonic,
    /// Goes up and down.
    Variable,
    /// A code this parser does not know.
    Unknown(u8),
}

impl Variability {
    fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Constant,
            2 => Self::Monotonic,
            3 => Self::Variable,
            other => Self::Unknown(other),
        }
    }
}

/// A counter's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A scalar of type `J`.
    Long(i64),
    /// A vector of type `B`, up to its first NUL (invalid UTF-8 replaced).
    String(String),
    /// Any other type or shape, not decoded (the type code is kept).
    Other(u8),
}

/// One named counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    /// Dotted name, such as `sun.gc.generation.0.space.0.used`.
    pub name: String,
    /// What it measures.
    pub units: Units,
    /// How it changes.
    pub variability: Variability,
    /// Its value when read.
    pub value: Value,
}

/// A decoded file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerfData {
    /// Byte order of the fields.
    pub byte_order: ByteOrder,
    /// Major version (2).
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Whether the JVM has finished setting the file up.
    pub accessible: bool,
    /// The counters, in file order.
    pub counters: Vec<Counter>,
    /// Entries skipped because their name or data did not fit in them.
    pub malformed: u32,
    /// Whether the walk stopped before `num_entries` (an entry ran past the bytes given, or
    /// [`MAX_ENTRIES`] was reached).
    pub truncated: bool,
}

impl PerfData {
    /// The counter named `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.counters
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.value)
    }

    /// The integer counter named `name`.
    pub fn long(&self, name: &str) -> Option<i64> {
        match self.get(name)? {
            Value::Long(v) => Some(*v),
            _ => None,
        }
    }

    /// The string counter named `name`.
    pub fn string(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// Reads fixed-size fields in the file's byte order; every read is checked.
#[derive(Clone, Copy)]
struct Fields<'a> {
    bytes: &'a [u8],
    order: ByteOrder,
}

impl Fields<'_> {
    fn array<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        self.bytes.get(at..at.checked_add(N)?)?.try_into().ok()
    }

    fn u32(&self, at: usize) -> Option<u32> {
        let b = self.array::<4>(at)?;
        Some(match self.order {
            ByteOrder::Big => u32::from_be_bytes(b),
            ByteOrder::Little => u32::from_le_bytes(b),
        })
    }

    fn i64(&self, at: usize) -> Option<i64> {
        let b = self.array::<8>(at)?;
        Some(match self.order {
            ByteOrder::Big => i64::from_be_bytes(b),
            ByteOrder::Little => i64::from_le_bytes(b),
        })
    }

    fn u8(&self, at: usize) -> Option<u8> {
        self.bytes.get(at).copied()
    }
}

/// Decode a whole hsperfdata file.
pub fn parse(bytes: &[u8]) -> Result<PerfData, HsperfError> {
    let Some(prologue) = bytes.get(..PROLOGUE_LEN) else {
        return Err(HsperfError::TooShort(bytes.len()));
    };
    let magic = u32::from_be_bytes([prologue[0], prologue[1], prologue[2], prologue[3]]);
    if magic != MAGIC {
        return Err(HsperfError::BadMagic(magic));
    }
    let byte_order = match prologue[4] {
        0 => ByteOrder::Big,
        1 => ByteOrder::Little,
        other => return Err(HsperfError::BadByteOrder(other)),
    };
    let (major, minor) = (prologue[5], prologue[6]);
    if major != 2 {
        return Err(HsperfError::UnsupportedVersion(major));
    }
    let fields = Fields {
        bytes,
        order: byte_order,
    };
    let mut data = PerfData {
        byte_order,
        major,
        minor,
        accessible: prologue[7] != 0,
        counters: Vec::new(),
        malformed: 0,
        truncated: false,
    };
    let (Some(entry_offset), Some(num_entries)) = (fields.u32(24), fields.u32(28)) else {
        return Ok(data);
    };
    let mut at = entry_offset as usize;
    for index in 0..num_entries as usize {
        if index >= MAX_ENTRIES {
            data.truncated = true;
            break;
        }
        let Some(entry_len) = fields.u32(at).map(|n| n as usize) else {
            data.truncated = true;
            break;
        };
        let end = at.saturating_add(entry_len);
        if entry_len < ENTRY_HEADER_LEN || end > bytes.len() {
            data.truncated = true;
            break;
        }
        match entry(Fields {
            bytes: &bytes[at..end],
            order: byte_order,
        }) {
            Some(counter) => data.counters.push(counter),
            None => data.malformed += 1,
        }
        at = end;
    }
    Ok(data)
}

/// One entry, given exactly its bytes (at least the header).
fn entry(e: Fields<'_>) -> Option<Counter> {
    let name_offset = e.u32(4)? as usize;
    let vector_length = e.u32(8)? as usize;
    let data_type = e.u8(12)?;
    let units = Units::from_code(e.u8(14)?);
    let variability = Variability::from_code(e.u8(15)?);
    let data_offset = e.u32(16)? as usize;
    let name_bytes = e.bytes.get(name_offset..)?;
    let name_len = memchr::memchr(0, name_bytes)?;
    let name = String::from_utf8_lossy(&name_bytes[..name_len]).into_owned();
    if name.is_empty() {
        return None;
    }
    let value = match (data_type, vector_length) {
        (b'J', 0) => Value::Long(e.i64(data_offset)?),
        (b'B', n) if n > 0 => {
            let raw = e.bytes.get(data_offset..data_offset.checked_add(n)?)?;
            let len = memchr::memchr(0, raw).unwrap_or(raw.len());
            Value::String(String::from_utf8_lossy(&raw[..len]).into_owned())
        }
        (other, _) => Value::Other(other),
    };
    Some(Counter {
        name,
        units,
        variability,
        value,
    })
}
