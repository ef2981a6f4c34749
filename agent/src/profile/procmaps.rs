//! A process's executable mappings, read from `/proc/<pid>/maps`: which module holds an address.

use std::path::PathBuf;

/// One executable mapping of a file (or a pseudo-file such as `[vdso]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// File offset of `start`.
    pub offset: u64,
    /// Device (`major:minor` packed as `major << 32 | minor`).
    pub dev: u64,
    /// Inode (0 for anonymous and pseudo mappings).
    pub inode: u64,
    /// Path as the process sees it (inside its mount namespace), or `[vdso]`-style names.
    pub path: String,
}

impl Mapping {
    /// The file name, for frames that keep module + offset.
    pub fn module_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// File offset of `addr` (inside this mapping).
    pub fn file_offset(&self, addr: u64) -> u64 {
        addr.wrapping_sub(self.start).wrapping_add(self.offset)
    }

    /// Whether the mapping is backed by a file we can open.
    pub fn is_file(&self) -> bool {
        self.inode != 0 && self.path.starts_with('/')
    }

    /// Paths to open the mapped file through, best first: `map_files` (works for containers
    /// and deleted files), then the process's root.
    pub fn open_paths(&self, pid: u32) -> [PathBuf; 2] {
        [
            PathBuf::from(format!(
                "/proc/{pid}/map_files/{:x}-{:x}",
                self.start, self.end
            )),
            PathBuf::from(format!("/proc/{pid}/root{}", self.path)),
        ]
    }
}

/// Read the executable mappings of `pid`.
pub fn read(pid: u32) -> std::io::Result<Vec<Mapping>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    Ok(parse(&text))
}

/// Parse the text of a `maps` file, keeping executable mappings only, sorted by address.
/// Malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = text.lines().filter_map(parse_line).collect();
    out.sort_by_key(|m| m.start);
    out
}

fn parse_line(line: &str) -> Option<Mapping> {
    let mut fields = line.split_ascii_whitespace();
    let range = fields.next()?;
    let perms = fields.next()?;
    let offset = fields.next()?;
    let dev = fields.next()?;
    let inode = fields.next()?;
    let path = fields.collect::<Vec<_>>().join(" ");
    if perms.as_bytes().get(2) != Some(&b'x') {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let (major, minor) = dev.split_once(':')?;
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        offset: u64::from_str_radix(offset, 16).ok()?,
        dev: (u64::from_str_radix(major, 16).ok()? << 32) | u64::from_str_radix(minor, 16).ok()?,
        inode: inode.parse().ok()?,
        path,
    })
}

/// The mapping holding `addr`, if any (`maps` sorted by start).
pub fn find(maps: &[Mapping], addr: u64) -> Option<&Mapping> {
    let i = maps.partition_point(|m| m.start <= addr);
    let m = maps.get(i.checked_sub(1)?)?;
    (addr < m.end).then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1234 /usr/bin/prog
55d0c0a01000-55d0c0a02000 r-xp 00001000 08:01 1234 /usr/bin/prog
7f0000000000-7f0000100000 r-xp 00028000 08:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000200000-7f0000201000 rw-p 00000000 00:00 0
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
garbage line
7f0000300000-7f0000301000 r-xp 00000000 08:01 77 /tmp/a file (deleted)
";

    #[test]
    fn keeps_executable_mappings_sorted() {
        let maps = parse(MAPS);
        assert_eq!(maps.len(), 4);
        assert_eq!(maps[0].path, "/usr/bin/prog");
        assert_eq!(maps[0].offset, 0x1000);
        assert_eq!(maps[0].dev, (8 << 32) | 1);
        assert_eq!(maps[2].path, "/tmp/a file (deleted)");
        assert_eq!(maps[3].path, "[vdso]");
        assert!(!maps[3].is_file());
    }

    #[test]
    fn finds_the_mapping_of_an_address() {
        let maps = parse(MAPS);
        let m = find(&maps, 0x7f0000000010).expect("libc");
        assert_eq!(m.module_name(), "libc.so.6");
        assert_eq!(m.file_offset(0x7f0000000010), 0x28010);
        assert!(find(&maps, 0x7f0000100000).is_none());
        assert!(find(&maps, 0x10).is_none());
    }
}
