//! A [`Profile`] as gzipped pprof (`profile.proto` of github.com/google/pprof): sample types
//! `samples`/`count` and `cpu`/`nanoseconds`, one location per distinct frame, a `pid` and a
//! `comm` label on each sample. The messages are declared here with `prost` derives, field
//! numbers as in `profile.proto` (only the fields we write).

use std::{collections::HashMap, io::Write as _};

use prost::Message as _;

use super::{aggregate::Profile, symbolize::Frame};

/// `perftools.profiles.Profile`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PprofProfile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

/// `perftools.profiles.ValueType`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// `perftools.profiles.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// `perftools.profiles.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
    #[prost(int64, tag = "3")]
    pub num: i64,
}

/// `perftools.profiles.Mapping`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Mapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
}

/// `perftools.profiles.Location`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

/// `perftools.profiles.Line`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
}

/// `perftools.profiles.Function`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
}

/// Builds the tables (strings, mappings, functions, locations) with deduplication.
#[derive(Default)]
struct Tables {
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    mappings: HashMap<String, u64>,
    locations: HashMap<Frame, u64>,
    out: PprofProfile,
}

impl Tables {
    fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.string_ids.get(s) {
            return i;
        }
        let i = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), i);
        i
    }

    fn mapping(&mut self, module: &str) -> u64 {
        if let Some(&id) = self.mappings.get(module) {
            return id;
        }
        let id = self.mappings.len() as u64 + 1;
        let filename = self.string(module);
        self.out.mapping.push(Mapping {
            id,
            filename,
            has_functions: true,
        });
        self.mappings.insert(module.to_string(), id);
        id
    }

    fn location(&mut self, frame: &Frame) -> u64 {
        if let Some(&id) = self.locations.get(frame) {
            return id;
        }
        let id = self.locations.len() as u64 + 1;
        let mapping_id = self.mapping(&frame.module);
        let name = self.string(&frame.function);
        self.out.function.push(Function {
            id,
            name,
            system_name: name,
        });
        self.out.location.push(Location {
            id,
            mapping_id,
            line: vec![Line { function_id: id }],
        });
        self.locations.insert(frame.clone(), id);
        id
    }
}

/// The pprof message of `profile`.
pub fn encode(profile: &Profile) -> PprofProfile {
    let mut t = Tables::default();
    t.string("");
    let samples = t.string("samples");
    let count = t.string("count");
    let cpu = t.string("cpu");
    let nanos = t.string("nanoseconds");
    let pid_key = t.string("pid");
    let comm_key = t.string("comm");
    let period = i64::try_from(profile.period_ns).unwrap_or(i64::MAX);
    for (&pid, process) in &profile.processes {
        let comm = t.string(&process.comm);
        for (stack, &n) in &process.stacks {
            let location_id = stack.iter().map(|f| t.location(f)).collect();
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            t.out.sample.push(Sample {
                location_id,
                value: vec![n, n.saturating_mul(period)],
                label: vec![
                    Label {
                        key: pid_key,
                        str: 0,
                        num: i64::from(pid),
                    },
                    Label {
                        key: comm_key,
                        str: comm,
                        num: 0,
                    },
                ],
            });
        }
    }
    let mut out = std::mem::take(&mut t.out);
    out.sample_type = vec![
        ValueType {
            r#type: samples,
            unit: count,
        },
        ValueType {
            r#type: cpu,
            unit: nanos,
        },
    ];
    out.period_type = Some(ValueType {
        r#type: cpu,
        unit: nanos,
    });
    out.period = period;
    out.default_sample_type = cpu;
    out.time_nanos = profile
        .start
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    out.duration_nanos = i64::try_from(profile.duration.as_nanos()).unwrap_or(i64::MAX);
    out.string_table = t.strings;
    out
}

/// Gzipped pprof bytes of `profile`.
pub fn to_gzip(profile: &Profile) -> std::io::Result<Vec<u8>> {
    let bytes = encode(profile).encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes)?;
    gz.finish()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn frame(name: &str) -> Frame {
        Frame {
            function: Arc::from(name),
            module: Arc::from("prog"),
            kernel: false,
        }
    }

    #[test]
    fn tables_are_deduplicated_and_values_scaled() {
        let mut p = Profile::new(10_000_000);
        p.add(7, "prog", vec![frame("leaf"), frame("main")], 3);
        p.add(7, "prog", vec![frame("other"), frame("main")], 1);
        let out = encode(&p);
        assert_eq!(out.string_table[0], "");
        assert_eq!(out.sample.len(), 2);
        assert_eq!(out.location.len(), 3);
        assert_eq!(out.mapping.len(), 1);
        let total: i64 = out.sample.iter().map(|s| s.value[0]).sum();
        assert_eq!(total, 4);
        let cpu: i64 = out.sample.iter().map(|s| s.value[1]).sum();
        assert_eq!(cpu, 40_000_000);
        let name = |id: u64| {
            let f = &out.function[id as usize - 1];
            out.string_table[f.name as usize].clone()
        };
        let s = out.sample.iter().find(|s| s.value[0] == 3).expect("sample");
        assert_eq!(name(s.location_id[0]), "leaf");
        let decoded = PprofProfile::decode(&*out.encode_to_vec()).expect("decodes");
        assert_eq!(decoded, out);
    }
}
