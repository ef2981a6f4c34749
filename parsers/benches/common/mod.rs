//! Shared by the benches: recorded connections (`testdata/<proto>/<name>.{client,server}.bin`
//! and `<name>.timeline`, as each `record.sh` writes them) loaded as feeds.

// Each bench uses part of this module.
#![allow(dead_code)]

use std::path::Path;

use wirelens_parsers::Direction;

/// One recorded connection's feeds as the traced client: (direction, bytes, ns), one per TCP
/// segment; FINs are left out.
pub type Feeds = Vec<(Direction, Vec<u8>, u64)>;

/// The feeds of `testdata/<proto>/<name>`; `None` if a file is missing or malformed.
pub fn try_feeds(proto: &str, name: &str) -> Option<Feeds> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(proto);
    let read = |suffix: &str| std::fs::read(dir.join(format!("{name}.{suffix}"))).ok();
    let streams = [read("client.bin")?, read("server.bin")?];
    let mut offsets = [0usize; 2];
    let mut feeds = Vec::new();
    for line in String::from_utf8(read("timeline")?).ok()?.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let [side, us, len] = fields[..] else {
            return None;
        };
        let Ok(len) = len.parse::<usize>() else {
            continue; // "fin"
        };
        let (i, dir) = if side == "c" {
            (0, Direction::Egress)
        } else {
            (1, Direction::Ingress)
        };
        feeds.push((
            dir,
            streams[i].get(offsets[i]..offsets[i] + len)?.to_vec(),
            us.parse::<u64>().ok()? * 1000,
        ));
        offsets[i] += len;
    }
    Some(feeds)
}

/// The feeds of `testdata/<proto>/<name>`; panics if the recording cannot be read.
pub fn feeds(proto: &str, name: &str) -> Feeds {
    try_feeds(proto, name)
        .unwrap_or_else(|| panic!("reading the recorded connection {proto}/{name}"))
}
