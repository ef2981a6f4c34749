//! Function ranges by name from a Go executable's `.gopclntab`, the table the Go runtime keeps
//! for stack traces and which `-ldflags=-s -w` (no symbol table, no DWARF) leaves in place.
//!
//! Hand-written: no well-kept crate on crates.io reads it. Handles the layouts of Go 1.16/1.17
//! (magic `0xfffffffa`) and Go 1.18 and later (`0xfffffff0`, `0xfffffff1`), per
//! `src/runtime/symtab.go` (`pcHeader`, `functab`, `_func`) of those releases; every read is
//! bounds-checked, so a damaged table gives `None`, never a panic.

/// Magic of Go 1.16 and 1.17 tables.
const MAGIC_116: u32 = 0xffff_fffa;
/// Magic of Go 1.18 and 1.19 tables.
const MAGIC_118: u32 = 0xffff_fff0;
/// Magic of Go 1.20 and later tables.
const MAGIC_120: u32 = 0xffff_fff1;

/// The parsed header of a table.
pub struct Pclntab<'a> {
    data: &'a [u8],
    /// Go 1.18+: function entries are `u32` offsets from `text_start`.
    relative: bool,
    ptr_size: usize,
    nfunc: usize,
    text_start: u64,
    funcname: usize,
    functab: usize,
}

impl<'a> Pclntab<'a> {
    /// Parse the header of `data` (the section's bytes); `text` is the `.text` address, used
    /// when the header leaves the text start to the runtime.
    pub fn parse(data: &'a [u8], text: u64) -> Option<Self> {
        let magic = u32::from_le_bytes(data.get(0..4)?.try_into().ok()?);
        let ptr_size = usize::from(*data.get(7)?);
        if ptr_size != 8 {
            return None;
        }
        let word = |i: usize| -> Option<u64> {
            let at = 8 + i * ptr_size;
            Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?))
        };
        let usize_word = |i: usize| word(i).and_then(|w| usize::try_from(w).ok());
        match magic {
            MAGIC_118 | MAGIC_120 => {
                let text_start = word(2)?;
                Some(Self {
                    data,
                    relative: true,
                    ptr_size,
                    nfunc: usize_word(0)?,
                    text_start: if text_start == 0 { text } else { text_start },
                    funcname: usize_word(3)?,
                    functab: usize_word(7)?,
                })
            }
            MAGIC_116 => Some(Self {
                data,
                relative: false,
                ptr_size,
                nfunc: usize_word(0)?,
                text_start: 0,
                funcname: usize_word(2)?,
                functab: usize_word(6)?,
            }),
            _ => None,
        }
    }

    /// The address range `[start, end)` of the function named `name`.
    pub fn find(&self, name: &str) -> Option<(u64, u64)> {
        let slot = if self.relative { 4 } else { self.ptr_size };
        let entry_at = |i: usize| -> Option<u64> {
            let at = self.functab.checked_add(i.checked_mul(2 * slot)?)?;
            self.read_word(at, slot)
        };
        for i in 0..self.nfunc {
            let pair = self.functab.checked_add(i.checked_mul(2 * slot)?)?;
            let func_off = self.read_word(pair.checked_add(slot)?, slot)?;
            let func = self.functab.checked_add(usize::try_from(func_off).ok()?)?;
            // `_func`: entry (u32 offset or uintptr), then nameOff (i32).
            let name_off = self.read_word(func.checked_add(slot)?, 4)?;
            let at = self.funcname.checked_add(usize::try_from(name_off).ok()?)?;
            let rest = self.data.get(at..)?;
            let len = rest.iter().position(|&b| b == 0)?;
            if &rest[..len] != name.as_bytes() {
                continue;
            }
            let start = entry_at(i)?;
            let end = entry_at(i + 1)?;
            return if self.relative {
                Some((
                    self.text_start.checked_add(start)?,
                    self.text_start.checked_add(end)?,
                ))
            } else {
                Some((start, end))
            };
        }
        None
    }

    /// A little-endian `u32` or `u64` at `at`.
    fn read_word(&self, at: usize, size: usize) -> Option<u64> {
        let b = self.data.get(at..at.checked_add(size)?)?;
        Some(match size {
            4 => u64::from(u32::from_le_bytes(b.try_into().ok()?)),
            _ => u64::from_le_bytes(b.try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Go 1.18-layout table with two functions, `a` at text+0x10 and `main.b` at text+0x40,
    /// ending at text+0x80.
    fn table() -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&MAGIC_118.to_le_bytes());
        t.extend_from_slice(&[0, 0, 1, 8]);
        let funcname = 72usize;
        let functab = 96usize;
        for w in [2u64, 0, 0x40_0000, funcname as u64, 0, 0, 0, functab as u64] {
            t.extend_from_slice(&w.to_le_bytes());
        }
        t.resize(funcname, 0);
        t.extend_from_slice(b"a\0main.b\0");
        t.resize(functab, 0);
        // functab: (entryoff, funcoff) x2, then the end entry.
        for w in [0x10u32, 24, 0x40, 32, 0x80] {
            t.extend_from_slice(&w.to_le_bytes());
        }
        t.resize(functab + 24, 0);
        for (entry, name) in [(0x10u32, 0u32), (0x40, 2)] {
            t.extend_from_slice(&entry.to_le_bytes());
            t.extend_from_slice(&name.to_le_bytes());
        }
        t
    }

    #[test]
    fn finds_functions_by_name() {
        let t = table();
        let p = Pclntab::parse(&t, 0).expect("header");
        assert_eq!(p.find("main.b"), Some((0x40_0040, 0x40_0080)));
        assert_eq!(p.find("a"), Some((0x40_0010, 0x40_0040)));
        assert_eq!(p.find("main"), None);
    }

    #[test]
    fn damaged_tables_give_none() {
        let t = table();
        for cut in [0, 3, 8, 40, 80, 100, t.len() - 1] {
            if let Some(p) = Pclntab::parse(&t[..cut], 0) {
                let _ = p.find("main.b");
            }
        }
        let mut bad = t.clone();
        bad[96 + 4] = 0xff; // funcoff far out of range
        let p = Pclntab::parse(&bad, 0).expect("header");
        assert_eq!(p.find("main.b"), None);
    }
}
