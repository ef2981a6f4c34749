//! The recorded file of `testdata/hsperfdata/` against `jcmd PerfCounter.print`, and built
//! files for both byte orders and broken input.

use super::*;

const RECORDED: &[u8] = include_bytes!("../../testdata/hsperfdata/openjdk17-g1-64mib.hsperfdata");
const JCMD: &str = include_str!("../../testdata/hsperfdata/openjdk17-g1-64mib.perfcounters.txt");

#[test]
fn recorded_file_header() {
    let data = parse(RECORDED).expect("recorded file parses");
    assert_eq!(data.byte_order, ByteOrder::Little);
    assert_eq!((data.major, data.minor), (2, 0));
    assert!(data.accessible);
    assert_eq!(data.malformed, 0);
    assert!(!data.truncated);
    assert!(
        data.counters.len() > 150,
        "{} counters",
        data.counters.len()
    );
}

#[test]
fn recorded_file_known_counters() {
    let data = parse(RECORDED).expect("recorded file parses");
    assert_eq!(data.long("sun.os.hrt.frequency"), Some(1_000_000_000));
    assert_eq!(data.long("java.threads.live"), Some(7));
    assert_eq!(data.long("java.cls.loadedClasses"), Some(45));
    assert_eq!(data.long("sun.gc.generation.0.space.0.used"), Some(0));
    // 64 one-MiB arrays, humongous in G1's old generation, kept through a full GC.
    assert_eq!(
        data.long("sun.gc.generation.1.space.0.used"),
        Some(135_417_496)
    );
    assert_eq!(
        data.long("sun.gc.metaspace.maxCapacity"),
        Some(1_140_850_688)
    );
    assert_eq!(data.long("sun.gc.collector.1.invocations"), Some(1));
    assert_eq!(
        data.string("sun.gc.collector.1.name"),
        Some("G1 full collection pauses")
    );
    assert_eq!(
        data.string("sun.gc.generation.0.space.0.name"),
        Some("eden")
    );
    assert_eq!(data.string("sun.gc.policy.name"), Some("GarbageFirst"));
    assert_eq!(
        data.string("java.property.java.vm.version"),
        Some("17.0.15+6-Debian-1deb12u1")
    );
    let used = data
        .counters
        .iter()
        .find(|c| c.name == "sun.gc.generation.1.space.0.used")
        .expect("old space used");
    assert_eq!(used.units, Units::Bytes);
    assert_eq!(used.variability, Variability::Variable);
}

/// `jcmd` printed every counter right after the copy: constants must agree exactly, and so
/// must the counters that did not move in between (GC and class counters of an idle JVM).
#[test]
fn recorded_file_agrees_with_jcmd() {
    let data = parse(RECORDED).expect("recorded file parses");
    let mut compared = 0;
    for line in JCMD.lines() {
        let Some((name, printed)) = line.split_once('=') else {
            continue;
        };
        if name.starts_with("sun.perfdata.") {
            // jcmd's reader makes these up from the prologue; they are not entries.
            continue;
        }
        let counter = data
            .counters
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} printed by jcmd, missing from the file"));
        let steady = counter.variability == Variability::Constant
            || name.starts_with("sun.gc.")
            || name.starts_with("java.cls.");
        if !steady {
            continue;
        }
        let ours = match &counter.value {
            Value::Long(v) => v.to_string(),
            Value::String(s) => format!("\"{s}\""),
            Value::Other(t) => panic!("{name}: undecoded type {t}"),
        };
        assert_eq!(ours, printed, "{name}");
        compared += 1;
    }
    assert!(compared > 100, "compared {compared} counters");
}

/// Builds a file in `order` with the given entries (name, value).
fn build(order: ByteOrder, entries: &[(&str, Value)]) -> Vec<u8> {
    let u32b = |v: u32| match order {
        ByteOrder::Big => v.to_be_bytes(),
        ByteOrder::Little => v.to_le_bytes(),
    };
    let mut out = MAGIC.to_be_bytes().to_vec();
    out.extend([u8::from(order == ByteOrder::Little), 2, 0, 1]);
    out.extend([0; 16]);
    out.extend(u32b(PROLOGUE_LEN as u32));
    out.extend(u32b(entries.len() as u32));
    for (name, value) in entries {
        let name_offset = ENTRY_HEADER_LEN;
        let data_offset = (name_offset + name.len() + 1).next_multiple_of(8);
        let (data_type, vector_length, units, data) = match value {
            Value::Long(v) => (
                b'J',
                0,
                2,
                match order {
                    ByteOrder::Big => v.to_be_bytes().to_vec(),
                    ByteOrder::Little => v.to_le_bytes().to_vec(),
                },
            ),
            Value::String(s) => {
                let mut d = s.as_bytes().to_vec();
                d.push(0);
                d.resize(d.len() + 3, 0);
                (b'B', d.len() as u32, 5, d)
            }
            Value::Other(t) => (*t, 0, 1, vec![0; 8]),
        };
        let len = data_offset + data.len();
        out.extend(u32b(len as u32));
        out.extend(u32b(name_offset as u32));
        out.extend(u32b(vector_length));
        out.extend([data_type, 0, units, 3]);
        out.extend(u32b(data_offset as u32));
        out.extend(name.as_bytes());
        out.resize(out.len() + data_offset - name_offset - name.len(), 0);
        out.extend(data);
    }
    out
}

#[test]
fn both_byte_orders() {
    let entries = [
        ("a.long", Value::Long(-5_000_000_000)),
        ("a.string", Value::String("G1 Old Gen".into())),
        ("a.other", Value::Other(b'I')),
    ];
    for order in [ByteOrder::Big, ByteOrder::Little] {
        let data = parse(&build(order, &entries)).expect("built file parses");
        assert_eq!(data.byte_order, order);
        assert_eq!(data.long("a.long"), Some(-5_000_000_000));
        assert_eq!(data.string("a.string"), Some("G1 Old Gen"));
        assert_eq!(data.get("a.other"), Some(&Value::Other(b'I')));
        assert_eq!(data.counters[0].units, Units::Bytes);
        assert_eq!(data.counters[0].variability, Variability::Variable);
        assert!(!data.truncated);
    }
}

#[test]
fn not_perfdata() {
    assert_eq!(parse(b"short"), Err(HsperfError::TooShort(5)));
    assert_eq!(parse(&[0; 32]), Err(HsperfError::BadMagic(0)));
    let mut bad = RECORDED.to_vec();
    bad[4] = 7;
    assert_eq!(parse(&bad), Err(HsperfError::BadByteOrder(7)));
    bad[4] = 1;
    bad[5] = 1;
    assert_eq!(parse(&bad), Err(HsperfError::UnsupportedVersion(1)));
}

#[test]
fn every_prefix_is_safe_and_keeps_whole_entries() {
    let full = parse(RECORDED).expect("recorded file parses");
    for len in (0..RECORDED.len()).step_by(7) {
        let Ok(part) = parse(&RECORDED[..len]) else {
            assert!(len < PROLOGUE_LEN);
            continue;
        };
        assert!(part.counters.len() <= full.counters.len());
        assert_eq!(part.counters[..], full.counters[..part.counters.len()]);
    }
}

#[test]
fn broken_entries_are_counted_not_fatal() {
    let mut file = build(
        ByteOrder::Little,
        &[("first", Value::Long(1)), ("second", Value::Long(2))],
    );
    // The first entry's name offset points past its end.
    file[PROLOGUE_LEN + 4..PROLOGUE_LEN + 8].copy_from_slice(&9999u32.to_le_bytes());
    let data = parse(&file).expect("prologue is fine");
    assert_eq!(data.malformed, 1);
    assert_eq!(data.long("second"), Some(2));
    // An entry length shorter than a header stops the walk.
    file[PROLOGUE_LEN..PROLOGUE_LEN + 4].copy_from_slice(&3u32.to_le_bytes());
    let data = parse(&file).expect("prologue is fine");
    assert!(data.truncated);
    assert!(data.counters.is_empty());
}
