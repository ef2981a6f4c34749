//! Opening the capture file: mapped rather than read, so a capture of any size costs page
//! cache, not agent memory; anything but a regular file (a FIFO, `/dev/zero`) is refused,
//! since it could be endless.

use std::{fs::File, ops::Deref, path::Path};

use anyhow::{Context as _, bail};

/// A capture file's bytes.
pub enum Capture {
    /// The file, mapped.
    Mapped(memmap2::Mmap),
    /// An empty file (an empty mapping is an error on Linux).
    Empty,
}

impl Deref for Capture {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Mapped(map) => map,
            Self::Empty => &[],
        }
    }
}

/// Open `path` as a capture.
pub fn open(path: &Path) -> anyhow::Result<Capture> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!(
            "cannot read {}: not a regular file (a capture file is needed)",
            path.display()
        );
    }
    if meta.len() == 0 {
        return Ok(Capture::Empty);
    }
    // SAFETY: the map is read-only and lives while the replay reads it. Another process
    // truncating the file meanwhile would fault the read (SIGBUS), as with any mapped
    // reader (tshark, tcpdump -r); captures are not written while being replayed.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .with_context(|| format!("cannot map {}", path.display()))?;
    Ok(Capture::Mapped(map))
}
