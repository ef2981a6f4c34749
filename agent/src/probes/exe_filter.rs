//! The executable selector (`--exe`), enforced in the kernel by pid: a process is traced
//! while its tgid is in `EXE_PIDS`, and every other process costs one map lookup per call.
//!
//! Who puts it there: the kernel's exec program, when the file name given to `execve` is one
//! of the plain paths (or where they lead through symlinks) in `EXE_PATHS`, from the exec on;
//! its fork program, for children (which run the same image until they exec); and user space
//! here, for processes running before the agent started (the start-up scan) and for globs,
//! relative names and other links (matched on `/proc/<pid>/exe` at the exec event, so the
//! calls a process makes before the agent has read that event are not traced).

use std::fmt;

use aya::maps::{HashMap as BpfHashMap, MapData};
use wirelens_ebpf::EXE_PATH_LEN;
use wirelens_otel::ProcessInfo;

/// Most plain paths given to the kernel (the size of `EXE_PATHS`, with their link targets).
const MAX_KERNEL_PATHS: usize = 64;

/// Which executables to trace.
#[derive(Clone, Debug)]
pub struct ExeSelector {
    given: Vec<String>,
    /// Plain paths, as given and as resolved through symlinks.
    paths: Vec<String>,
    globs: Vec<glob::Pattern>,
}

/// Why an `--exe` value is refused.
#[derive(Debug, thiserror::Error)]
pub enum ExeError {
    /// Paths are matched whole.
    #[error("{0:?} is not an absolute path")]
    Relative(String),
    /// A glob that does not parse.
    #[error("{path:?} is not a valid glob")]
    Glob {
        /// What was given.
        path: String,
        /// The cause.
        #[source]
        source: glob::PatternError,
    },
    /// Too many for the kernel's map.
    #[error("more than {MAX_KERNEL_PATHS} paths")]
    TooMany,
}

impl ExeSelector {
    /// `None` when no executable is selected.
    pub fn new(given: &[String]) -> Result<Option<Self>, ExeError> {
        if given.is_empty() {
            return Ok(None);
        }
        let mut paths = Vec::new();
        let mut globs = Vec::new();
        for path in given {
            if !path.starts_with('/') {
                return Err(ExeError::Relative(path.clone()));
            }
            if path.contains(['*', '?', '[']) {
                globs.push(glob::Pattern::new(path).map_err(|source| ExeError::Glob {
                    path: path.clone(),
                    source,
                })?);
                continue;
            }
            paths.push(path.clone());
            if let Ok(real) = std::fs::canonicalize(path) {
                let real = real.to_string_lossy().into_owned();
                if !paths.contains(&real) {
                    paths.push(real);
                }
            }
        }
        if paths.len() > MAX_KERNEL_PATHS {
            return Err(ExeError::TooMany);
        }
        Ok(Some(Self {
            given: given.to_vec(),
            paths,
            globs,
        }))
    }

    /// Whether the executable at `path` is selected.
    pub fn matches(&self, path: &str) -> bool {
        self.paths.iter().any(|p| p == path) || self.globs.iter().any(|g| g.matches(path))
    }

    /// The `EXE_PATHS` keys: every plain path short enough for the kernel's key.
    pub fn kernel_keys(&self) -> Vec<[u8; EXE_PATH_LEN]> {
        self.paths
            .iter()
            .filter(|p| p.len() < EXE_PATH_LEN)
            .map(|p| {
                let mut key = [0u8; EXE_PATH_LEN];
                key[..p.len()].copy_from_slice(p.as_bytes());
                key
            })
            .collect()
    }
}

impl fmt::Display for ExeSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.given.join(","))
    }
}

/// The `EXE_PIDS` map, filled from user space where the kernel cannot decide.
pub struct ExeFilter {
    pids: BpfHashMap<MapData, u32, u8>,
    selector: ExeSelector,
}

impl ExeFilter {
    /// A filter adding the processes `selector` picks to `pids`.
    pub fn new(pids: BpfHashMap<MapData, u32, u8>, selector: ExeSelector) -> Self {
        Self { pids, selector }
    }

    /// Adds `process` if its executable is selected (at start-up, and after each exec).
    pub fn consider(&mut self, process: &ProcessInfo) {
        let Some(path) = process.executable_path.as_deref() else {
            return;
        };
        if !self.selector.matches(path) {
            return;
        }
        match self.pids.insert(process.pid, 1, 0) {
            Ok(()) => tracing::debug!(pid = process.pid, path, "tracing selected executable"),
            Err(e) => {
                tracing::warn!(%e, pid = process.pid, "cannot add a process to the exe filter")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(given: &[&str]) -> ExeSelector {
        let given: Vec<String> = given.iter().map(|s| s.to_string()).collect();
        ExeSelector::new(&given).expect("valid").expect("some")
    }

    #[test]
    fn plain_paths_globs_and_links() {
        let s = selector(&["/usr/sbin/nginx", "/opt/app/bin/*"]);
        assert!(s.matches("/usr/sbin/nginx"));
        assert!(!s.matches("/usr/sbin/nginx2"));
        assert!(s.matches("/opt/app/bin/server"));
        assert!(!s.matches("/opt/other/server"));
        // Only plain paths go to the kernel, NUL-padded.
        let keys = s.kernel_keys();
        assert!(keys.iter().any(|k| k.starts_with(b"/usr/sbin/nginx\0")));
        assert!(!keys.iter().any(|k| k.starts_with(b"/opt")));
        // /bin is a link to /usr/bin on Debian 12: both names match.
        let sh = selector(&["/bin/sh"]);
        let real = std::fs::canonicalize("/bin/sh").expect("sh");
        assert!(sh.matches(&real.to_string_lossy()));
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(ExeSelector::new(&[]).expect("empty").is_none());
        assert!(matches!(
            ExeSelector::new(&["nginx".into()]),
            Err(ExeError::Relative(_))
        ));
        assert!(matches!(
            ExeSelector::new(&["/opt/[".into()]),
            Err(ExeError::Glob { .. })
        ));
    }
}
