//! Network namespaces of the host's processes, and each one's per-interface counters from
//! `/proc/<pid>/net/dev` of one of its members.

use std::{collections::BTreeMap, os::unix::fs::MetadataExt as _};

use wirelens_otel::net_metrics::{Direction, Interface};

/// The network namespace (inode of `/proc/<pid>/ns/net`) of `pid`, if readable.
pub fn namespace_of(pid: u32) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

/// Every network namespace that has a process, with its lowest pid.
pub fn namespaces() -> BTreeMap<u64, u32> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(ns) = namespace_of(pid) {
            out.entry(ns)
                .and_modify(|p: &mut u32| *p = (*p).min(pid))
                .or_insert(pid);
        }
    }
    out
}

/// Why a `net/dev` file could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NetDevError {
    /// A line with too few fields or a field that is not a number.
    #[error("net/dev line {line}: {text:?}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
}

/// Parse `/proc/net/dev`: two header lines, then `name: rx(8 fields) tx(8 fields)`.
pub fn parse(text: &str) -> Result<Vec<Interface>, NetDevError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(2) {
        let bad = || NetDevError::BadLine {
            line: i + 1,
            text: line.to_owned(),
        };
        let (name, rest) = line.split_once(':').ok_or_else(bad)?;
        let fields: Vec<u64> = rest
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        if fields.len() < 16 {
            return Err(bad());
        }
        out.push(Interface {
            name: name.trim().to_owned(),
            rx: Direction {
                bytes: fields[0],
                packets: fields[1],
                errors: fields[2],
                dropped: fields[3],
            },
            tx: Direction {
                bytes: fields[8],
                packets: fields[9],
                errors: fields[10],
                dropped: fields[11],
            },
        });
    }
    Ok(out)
}

/// The interfaces of `pid`'s network namespace.
pub fn read(pid: u32) -> Option<Vec<Interface>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    parse(&text)
        .map_err(|e| tracing::debug!(pid, "unreadable net/dev: {e}"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded from this host's /proc/net/dev (kernel 6.18).
    const RECORDED: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 9146720   87380    0    0    0     0          0         0  9146720   87380    0    0    0     0       0          0
  eth0: 1830417953 1370011    0   12    0     0          0         0 42117207  520118    3    0    0     0       0          0
";

    #[test]
    fn recorded_file() {
        let ifs = parse(RECORDED).expect("parses");
        assert_eq!(ifs.len(), 2);
        assert_eq!(ifs[1].name, "eth0");
        assert_eq!(ifs[1].rx.bytes, 1_830_417_953);
        assert_eq!(ifs[1].rx.dropped, 12);
        assert_eq!(ifs[1].tx.packets, 520_118);
        assert_eq!(ifs[1].tx.errors, 3);
    }

    #[test]
    fn bad_lines_are_errors() {
        let text = "h\nh\n  eth0: 1 2 3\n";
        assert!(matches!(
            parse(text),
            Err(NetDevError::BadLine { line: 3, .. })
        ));
        assert!(parse("h\nh\nno colon here\n").is_err());
    }

    #[test]
    fn own_namespace_is_listed() {
        let own = namespace_of(std::process::id()).expect("own namespace");
        assert!(namespaces().contains_key(&own));
        assert!(read(std::process::id()).is_some_and(|i| i.iter().any(|i| i.name == "lo")));
    }
}
