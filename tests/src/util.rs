//! Paths, ports, bounded waits and process plumbing shared by the helpers.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

/// The workspace root (the directory holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A file under `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// The venv's python (`WIRELENS_PYTHON` overrides), with the receiver's and clients' packages.
pub fn python() -> PathBuf {
    let path = std::env::var_os("WIRELENS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/wirelens-venv/bin/python"));
    assert!(
        path.exists(),
        "{} not found: run scripts/setup.sh (it creates /opt/wirelens-venv)",
        path.display()
    );
    path
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to 0, then released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// A self-signed certificate and key for `localhost` (`cert.pem`, `key.pem` in `prefix`).
pub fn write_certificate(prefix: &Path) {
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(prefix.join("key.pem"))
        .arg("-out")
        .arg(prefix.join("cert.pem"))
        .output()
        .unwrap_or_else(|e| panic!("run openssl (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and the certificates it signed, as PEM files: for TLS with client certificates.
#[derive(Clone, Debug)]
pub struct MtlsFiles {
    /// The CA's certificate (what both sides trust).
    pub ca: PathBuf,
    /// The server's certificate (`localhost`, `127.0.0.1`) and key.
    pub server_cert: PathBuf,
    /// The server's key.
    pub server_key: PathBuf,
    /// A client certificate (`CN=wirelens-agent`, client auth) and key.
    pub client_cert: PathBuf,
    /// The client's key.
    pub client_key: PathBuf,
    /// A certificate and key for the same name from a CA nobody trusts.
    pub stranger_cert: PathBuf,
    /// The stranger's key.
    pub stranger_key: PathBuf,
}

/// Makes a CA (openssl), a server certificate and a client certificate it signs, and a
/// client certificate signed by another CA, all in `dir`.
pub fn write_mtls_certificates(dir: &Path) -> MtlsFiles {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("run openssl (scripts/setup.sh installs it): {e}"));
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ca = |name: &str| {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ]);
    };
    let leaf = |name: &str, ca: &str, subject: &str, ext: &str| {
        fs::write(dir.join(format!("{name}.ext")), ext).expect("write extensions");
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ]);
    };
    ca("ca");
    ca("other-ca");
    let server = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
                  extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n";
    let client = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
                  extendedKeyUsage=clientAuth\n";
    leaf("server", "ca", "/CN=localhost", server);
    leaf("client", "ca", "/CN=wirelens-agent", client);
    leaf("stranger", "other-ca", "/CN=wirelens-agent", client);
    MtlsFiles {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
        stranger_cert: dir.join("stranger.pem"),
        stranger_key: dir.join("stranger.key"),
    }
}

/// This machine's host name, as the kernel reports it.
pub fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("read /proc/sys/kernel/hostname")
        .trim()
        .to_string()
}

/// Base name of the target of `/proc/<pid>/exe` (what `process.executable.name` must be).
pub fn exe_name(pid: u32) -> String {
    let target = fs::read_link(format!("/proc/{pid}/exe"))
        .unwrap_or_else(|e| panic!("readlink /proc/{pid}/exe: {e}"));
    target
        .file_name()
        .expect("exe has a file name")
        .to_string_lossy()
        .into_owned()
}

/// The kernel's command name of `pid` (`/proc/<pid>/comm`).
pub fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/comm: {e}"))
        .trim_end()
        .to_string()
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `check` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn poll(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Writes `value` as pretty JSON to `tests/actual/<name>.json` (ignored by git) for diffs.
pub fn write_actual(name: &str, value: &serde_json::Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("actual");
    if fs::create_dir_all(&dir).is_ok() {
        let text = serde_json::to_string_pretty(value).expect("serialise actual");
        let _ = fs::write(dir.join(format!("{name}.json")), text);
    }
}

/// Reads a file that may not exist yet, as text.
pub(crate) fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `n` lines of `text`, for panic messages.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Removes ANSI colour escapes (`ESC [ ... letter`).
pub(crate) fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Sends `signal` to `pid`; errors (already gone) are ignored.
pub fn send_signal(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Waits for `child` to exit, up to `timeout`; `None` if it is still running.
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => panic!("waiting for pid {}: {e}", child.id()),
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Asks `child` to stop with `signal`, then kills it if it has not exited after `grace`.
pub(crate) fn terminate(child: &mut Child, signal: libc::c_int, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    send_signal(child.id(), signal);
    if wait_timeout(child, grace).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Pids of the live children of `parent` (from `/proc/*/stat`).
pub(crate) fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses and may hold spaces.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let ppid = fields.next().and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(parent) && state != Some("Z") {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// The public capture corpus (`../shared/captures`, beside the repository): every `.pcap` and
/// `.pcapng` file below it, sorted. Panics if the folder or its captures are missing.
pub fn corpus_captures() -> Vec<PathBuf> {
    fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                collect(&path, out);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            ) {
                out.push(path);
            }
        }
    }
    let dir = workspace_root().join("../shared/captures");
    assert!(dir.is_dir(), "{} not found", dir.display());
    let mut files = Vec::new();
    collect(&dir, &mut files);
    files.sort();
    assert!(!files.is_empty(), "no captures under {}", dir.display());
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colour() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m ready"),
            "2026  INFO ready"
        );
    }

    #[test]
    fn tails() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
