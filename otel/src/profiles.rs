//! CPU profiles to OTLP profiles (`opentelemetry.proto.profiles.v1development`): one
//! `ResourceProfiles` per process, under that process's Resource, all sharing one dictionary.
//!
//! Each process's profile has sample type `samples`/`count`, period type `cpu`/`nanoseconds`
//! with the sampling period, one sample per distinct stack (leaf first), and each location
//! names its function, its mapping (the module file name) and `profile.frame.type`
//! (`kernel` or `native`). Pure: no I/O.

use std::collections::HashMap;

use opentelemetry_proto::tonic::{
    collector::profiles::v1development::ExportProfilesServiceRequest,
    common::v1::{AnyValue, any_value},
    profiles::v1development::{
        Function, KeyValueAndUnit, Line, Link, Location, Mapping, Profile, ProfilesDictionary,
        ResourceProfiles, Sample, ScopeProfiles, Stack, ValueType,
    },
};

use crate::{ProcessInfo, traces::scope};

/// One frame of a stack.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProfileFrame {
    /// Function name (or `module+0xoffset` when it did not resolve).
    pub function: String,
    /// Module file name (`[kernel]` for the kernel).
    pub module: String,
    /// A kernel frame.
    pub kernel: bool,
}

/// The samples of one process over the window.
#[derive(Clone, Debug, Default)]
pub struct ProcessSamples {
    /// The process: its Resource.
    pub process: ProcessInfo,
    /// Sample count per stack (frames leaf first).
    pub stacks: Vec<(Vec<ProfileFrame>, u64)>,
}

/// When and how the samples were taken.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProfileWindow {
    /// Start, in nanoseconds since the Unix epoch.
    pub start_unix_nano: u64,
    /// Length in nanoseconds.
    pub duration_nano: u64,
    /// CPU nanoseconds one sample stands for.
    pub period_ns: u64,
}

/// `profile.frame.type` (semantic conventions, profiles).
pub const FRAME_TYPE: &str = "profile.frame.type";

/// Index 0 of every table is its zero value, as the dictionary's contract requires.
#[derive(Default)]
struct Dictionary {
    out: ProfilesDictionary,
    strings: HashMap<String, i32>,
    mappings: HashMap<String, i32>,
    functions: HashMap<String, i32>,
    locations: HashMap<ProfileFrame, i32>,
    stacks: HashMap<Vec<i32>, i32>,
    frame_types: [i32; 2],
}

fn index(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

impl Dictionary {
    fn new() -> Self {
        let mut d = Self::default();
        d.out.string_table.push(String::new());
        d.strings.insert(String::new(), 0);
        d.out.mapping_table.push(Mapping::default());
        d.out.location_table.push(Location::default());
        d.out.function_table.push(Function::default());
        d.out.link_table.push(Link::default());
        d.out.attribute_table.push(KeyValueAndUnit::default());
        d.out.stack_table.push(Stack::default());
        let key = d.string(FRAME_TYPE);
        for (i, value) in ["native", "kernel"].into_iter().enumerate() {
            d.frame_types[i] = index(d.out.attribute_table.len());
            d.out.attribute_table.push(KeyValueAndUnit {
                key_strindex: key,
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(value.into())),
                }),
                unit_strindex: 0,
            });
        }
        d
    }

    fn string(&mut self, s: &str) -> i32 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = index(self.out.string_table.len());
        self.out.string_table.push(s.to_owned());
        self.strings.insert(s.to_owned(), i);
        i
    }

    fn mapping(&mut self, module: &str) -> i32 {
        if let Some(&i) = self.mappings.get(module) {
            return i;
        }
        let filename_strindex = self.string(module);
        let i = index(self.out.mapping_table.len());
        self.out.mapping_table.push(Mapping {
            filename_strindex,
            ..Mapping::default()
        });
        self.mappings.insert(module.to_owned(), i);
        i
    }

    fn function(&mut self, name: &str) -> i32 {
        if let Some(&i) = self.functions.get(name) {
            return i;
        }
        let name_strindex = self.string(name);
        let i = index(self.out.function_table.len());
        self.out.function_table.push(Function {
            name_strindex,
            system_name_strindex: name_strindex,
            ..Function::default()
        });
        self.functions.insert(name.to_owned(), i);
        i
    }

    fn location(&mut self, frame: &ProfileFrame) -> i32 {
        if let Some(&i) = self.locations.get(frame) {
            return i;
        }
        let mapping_index = self.mapping(&frame.module);
        let function_index = self.function(&frame.function);
        let i = index(self.out.location_table.len());
        self.out.location_table.push(Location {
            mapping_index,
            address: 0,
            lines: vec![Line {
                function_index,
                line: 0,
                column: 0,
            }],
            attribute_indices: vec![self.frame_types[usize::from(frame.kernel)]],
        });
        self.locations.insert(frame.clone(), i);
        i
    }

    fn stack(&mut self, frames: &[ProfileFrame]) -> i32 {
        let locations: Vec<i32> = frames.iter().map(|f| self.location(f)).collect();
        if let Some(&i) = self.stacks.get(&locations) {
            return i;
        }
        let i = index(self.out.stack_table.len());
        self.out.stack_table.push(Stack {
            location_indices: locations.clone(),
        });
        self.stacks.insert(locations, i);
        i
    }
}

/// The export request for `processes` sampled over `window`.
pub fn profiles_request(
    window: ProfileWindow,
    processes: &[ProcessSamples],
) -> ExportProfilesServiceRequest {
    let mut d = Dictionary::new();
    let samples_type = ValueType {
        type_strindex: d.string("samples"),
        unit_strindex: d.string("count"),
    };
    let period_type = ValueType {
        type_strindex: d.string("cpu"),
        unit_strindex: d.string("nanoseconds"),
    };
    let mut resource_profiles = Vec::with_capacity(processes.len());
    for p in processes {
        let samples = p
            .stacks
            .iter()
            .map(|(frames, n)| Sample {
                stack_index: d.stack(frames),
                values: vec![i64::try_from(*n).unwrap_or(i64::MAX)],
                ..Sample::default()
            })
            .collect();
        let profile = Profile {
            sample_type: Some(samples_type),
            samples,
            time_unix_nano: window.start_unix_nano,
            duration_nano: window.duration_nano,
            period_type: Some(period_type),
            period: i64::try_from(window.period_ns).unwrap_or(i64::MAX),
            profile_id: rand::random::<[u8; 16]>().to_vec(),
            ..Profile::default()
        };
        resource_profiles.push(ResourceProfiles {
            resource: Some(p.process.to_resource()),
            scope_profiles: vec![ScopeProfiles {
                scope: Some(scope()),
                profiles: vec![profile],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        });
    }
    ExportProfilesServiceRequest {
        resource_profiles,
        dictionary: Some(d.out),
    }
}

/// Samples in a request (all processes), for counting what was exported or dropped.
pub fn sample_count(request: &ExportProfilesServiceRequest) -> u64 {
    request
        .resource_profiles
        .iter()
        .flat_map(|r| &r.scope_profiles)
        .flat_map(|s| &s.profiles)
        .flat_map(|p| &p.samples)
        .map(|s| {
            s.values
                .first()
                .map_or(0, |&v| u64::try_from(v).unwrap_or(0))
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(name: &str, kernel: bool) -> ProfileFrame {
        ProfileFrame {
            function: name.into(),
            module: if kernel { "[kernel]" } else { "prog" }.into(),
            kernel,
        }
    }

    #[test]
    fn one_resource_per_process_sharing_a_dictionary() {
        let chain = vec![
            frame("vfs_write", true),
            frame("leaf", false),
            frame("main", false),
        ];
        let processes = vec![
            ProcessSamples {
                process: ProcessInfo {
                    pid: 1,
                    service_name: "a".into(),
                    ..ProcessInfo::default()
                },
                stacks: vec![(chain.clone(), 3), (chain[1..].to_vec(), 2)],
            },
            ProcessSamples {
                process: ProcessInfo {
                    pid: 2,
                    service_name: "b".into(),
                    ..ProcessInfo::default()
                },
                stacks: vec![(chain.clone(), 1)],
            },
        ];
        let window = ProfileWindow {
            start_unix_nano: 10,
            duration_nano: 20,
            period_ns: 52_631_578,
        };
        let r = profiles_request(window, &processes);
        assert_eq!(r.resource_profiles.len(), 2);
        assert_eq!(sample_count(&r), 6);
        let d = r.dictionary.expect("dictionary");
        assert_eq!(d.string_table[0], "");
        assert_eq!(d.stack_table[0], Stack::default());
        // Two distinct stacks, three distinct locations, shared by both processes.
        assert_eq!(d.stack_table.len(), 3);
        assert_eq!(d.location_table.len(), 4);
        let p = &r.resource_profiles[1].scope_profiles[0].profiles[0];
        assert_eq!(p.period, 52_631_578);
        let stack = &d.stack_table[p.samples[0].stack_index as usize];
        let names: Vec<&str> = stack
            .location_indices
            .iter()
            .map(|&l| {
                let f = d.location_table[l as usize].lines[0].function_index;
                d.string_table[d.function_table[f as usize].name_strindex as usize].as_str()
            })
            .collect();
        assert_eq!(names, ["vfs_write", "leaf", "main"]);
        let kernel_attr = d.location_table[stack.location_indices[0] as usize].attribute_indices[0];
        let kv = &d.attribute_table[kernel_attr as usize];
        assert_eq!(d.string_table[kv.key_strindex as usize], FRAME_TYPE);
    }
}
