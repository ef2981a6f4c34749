//! One agent per host: an exclusive `flock` on a lock file holding our pid.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, Write},
    os::fd::AsRawFd,
    path::Path,
};

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another agent holds it.
    #[error("another wirelens is already running (pid {pid}, lock {path}); stop it first")]
    Held {
        /// Its pid, as written in the file.
        pid: String,
        /// The lock file.
        path: String,
    },
    /// The file could not be opened or written.
    #[error("cannot use lock file {path}")]
    Io {
        /// The lock file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Held for the agent's lifetime; released when dropped (or when the process dies).
pub struct InstanceLock {
    _file: File,
}

impl InstanceLock {
    /// Take the lock at `path` or say who holds it.
    pub fn acquire(path: &Path) -> Result<Self, LockError> {
        let io = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        // SAFETY: valid fd owned by `file`.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(LockError::Held {
                pid: pid.trim().to_string(),
                path: path.display().to_string(),
            });
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_with_pid() {
        let path = std::env::temp_dir().join(format!("wirelens-lock-test-{}", std::process::id()));
        let first = InstanceLock::acquire(&path).expect("first lock");
        let err = InstanceLock::acquire(&path)
            .err()
            .expect("second lock refused");
        assert!(err.to_string().contains("already running"));
        assert!(err.to_string().contains(&std::process::id().to_string()));
        drop(first);
        // Another test of this process may be forking a child right now: until that child
        // execs, its copy of our (close-on-exec) descriptor keeps the lock. Wait that out.
        let again = (0..100).find_map(|_| {
            InstanceLock::acquire(&path).ok().or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(10));
                None
            })
        });
        assert!(again.is_some(), "lock free again");
        let _ = std::fs::remove_file(path);
    }
}
