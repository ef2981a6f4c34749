//! Finds the Java processes of the host and their hsperfdata files, through `/proc`.
//!
//! A HotSpot JVM keeps `/tmp/hsperfdata_<user>/<pid>` mapped, named by its pid in its own pid
//! namespace (the last `NSpid` of `/proc/<pid>/status`), under its own root: the agent looks at
//! `/proc/<pid>/root/tmp/hsperfdata_*/<nspid>` (as Pixie does), listing each distinct root's
//! `/tmp` once per scan. A file counts only if the process maps it (`/proc/<pid>/maps`), so a
//! file left behind by a killed JVM is never read for another process that got its pid.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// A running JVM and where its counters are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JavaProcess {
    /// Pid in the agent's pid namespace.
    pub pid: u32,
    /// The hsperfdata file, through `/proc/<pid>/root`.
    pub path: PathBuf,
}

/// The `hsperfdata_*` directories of one root's `/tmp`.
fn perf_dirs(tmp: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("hsperfdata_"))
        .map(|e| e.path())
        .collect()
}

/// The pid of `pid` in its innermost pid namespace.
fn ns_pid(process: &procfs::process::Process) -> Option<i32> {
    let status = process.status().ok()?;
    status
        .nspid
        .and_then(|ids| ids.last().copied())
        .or(Some(status.pid))
}

/// Whether `pid` maps a file named `<dir>/<nspid>` with dir `hsperfdata_*`.
fn maps_perf_file(pid: u32, nspid: i32) -> bool {
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return false;
    };
    let suffix = format!("/{nspid}");
    maps.lines().any(|line| {
        line.ends_with(&suffix)
            && line
                .rsplit('/')
                .nth(1)
                .is_some_and(|dir| dir.starts_with("hsperfdata_"))
    })
}

/// Every process of the host with a live hsperfdata file.
pub fn java_processes() -> Vec<JavaProcess> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    // (device, inode) of a root → its hsperfdata directories, for this scan.
    let mut roots: HashMap<(u64, u64), Vec<PathBuf>> = HashMap::new();
    let mut found = Vec::new();
    for process in all.flatten() {
        let Ok(pid) = u32::try_from(process.pid) else {
            continue;
        };
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        let Ok(meta) = std::fs::metadata(&root) else {
            continue;
        };
        let dirs = roots
            .entry((meta.dev(), meta.ino()))
            .or_insert_with(|| perf_dirs(&root.join("tmp")));
        if dirs.is_empty() {
            continue;
        }
        let Some(nspid) = ns_pid(&process) else {
            continue;
        };
        // The directories were listed through another process of the same root: re-base
        // them on this one's root.
        let candidate = dirs.iter().find_map(|dir| {
            let name = dir.file_name()?;
            let path = root.join("tmp").join(name).join(nspid.to_string());
            path.is_file().then_some(path)
        });
        if let Some(path) = candidate
            && maps_perf_file(pid, nspid)
        {
            found.push(JavaProcess { pid, path });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_pid_of_self_is_own_pid_on_the_host() {
        let me = procfs::process::Process::myself().expect("own /proc entry");
        assert_eq!(ns_pid(&me), Some(me.pid));
    }

    #[test]
    fn no_perf_dirs_in_a_missing_tmp() {
        assert!(perf_dirs(Path::new("/nonexistent/tmp")).is_empty());
    }
}
