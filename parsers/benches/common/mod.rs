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

/// Criterion's measurement as the CPU time of the bench thread (`CLOCK_THREAD_CPUTIME_ID`)
/// instead of wall time: the machines these run on are shared, and time spent waiting for a
/// CPU is not the parser's. On an idle machine the two agree.
pub struct CpuTime {
    wall: criterion::measurement::WallTime,
}

/// The criterion configuration of every bench: [`CpuTime`].
pub fn config() -> criterion::Criterion<CpuTime> {
    criterion::Criterion::default().with_measurement(CpuTime {
        wall: criterion::measurement::WallTime,
    })
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux defines.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl criterion::measurement::Measurement for CpuTime {
    type Intermediate = u64;
    type Value = std::time::Duration;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> std::time::Duration {
        std::time::Duration::from_nanos(thread_cpu_ns().saturating_sub(start))
    }

    fn add(&self, a: &std::time::Duration, b: &std::time::Duration) -> std::time::Duration {
        *a + *b
    }

    fn zero(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    fn to_f64(&self, value: &std::time::Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn criterion::measurement::ValueFormatter {
        self.wall.formatter()
    }
}

/// Takes the records out of `out` after a call, as the agent's conntrack does after each one
/// (so that a connection's records do not pile up in one growing vector); their number.
pub fn drain(out: &mut wirelens_parsers::Output) -> usize {
    let n = out.records.len();
    out.records.clear();
    n
}
