//! The wirelens agent as a library: every module the `wirelens` binary (`main.rs`) is built from.
//!
//! It exists so that fuzz targets (`agent/fuzz/`) can reach the pure parts, such as
//! [`conntrack`]; the binary is its only other user, so nothing here is a stable API.

pub mod cli;
pub mod clock;
pub mod conntrack;
pub mod jvm;
pub mod lock;
pub mod memlimit;
pub mod metadata;
pub mod netmetrics;
pub mod own_sockets;
pub mod panics;
pub mod pipeline;
pub mod privileges;
pub mod probes;
pub mod profile;
pub mod reader;
pub mod replay;
pub mod resource_metrics;
pub mod scripts;
pub mod sinks;
pub mod stats;
pub mod tracecontext;
