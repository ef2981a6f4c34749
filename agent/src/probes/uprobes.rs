//! User-space probes: OpenSSL's `SSL_write`/`SSL_read` (and `_ex`) and Go's
//! `crypto/tls.(*Conn).Write`/`Read` (found by [`super::gotls`]) for TLS plaintext, libc's
//! `sendmmsg`/`recvmmsg` entries for the message index of those calls.
//!
//! Which files to probe is read from `/proc/<pid>/maps`: every `libssl.so.1.1`/`libssl.so.3`
//! and `libc.so.6` a process maps, and its executable when that defines `SSL_write` itself
//! (OpenSSL or BoringSSL linked statically). A probe on a file applies to every process that
//! maps it, so each file is probed once, keyed by (device, inode); it is opened through
//! `/proc/<pid>/root/<path>`, which reaches files inside other mount namespaces (containers).
//!
//! All processes are scanned at start-up. A process that calls `exec` is scanned a little later
//! and again after a while (libraries are mapped after `exec`, and Python loads `_ssl` on
//! import), and every process is rescanned at a slow pace for libraries loaded by `dlopen`.
//!
//! After start-up the scans run on their own thread ([`UprobeThread`]), which owns the loaded
//! object: reading `/proc`, parsing executables' symbol tables and attaching probes take
//! milliseconds each, which the ring's reader must never spend.

use std::{
    collections::{HashMap, HashSet},
    fs,
    path::{Path, PathBuf},
    sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use aya::{
    Ebpf,
    programs::{
        UProbe,
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope},
    },
};
use wirelens_ebpf::tls_op;

use super::gotls;

/// Delays after an `exec` at which the process is scanned: at once (the executable is mapped
/// when the exec event fires, so a static OpenSSL is probed before `main`), after the dynamic
/// loader, and after a while (libraries opened on import).
const EXEC_SCANS: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_millis(150),
    Duration::from_millis(1500),
];
/// Every process is scanned again this often.
const RESCAN_ALL: Duration = Duration::from_secs(30);
/// Most scans run per tick (the rest wait for the next one).
const SCANS_PER_TICK: usize = 64;
/// How often the scan thread looks for due scans when no exec arrives.
const TICK: Duration = Duration::from_millis(25);
/// Exec notices queued for the scan thread; past this a notice is dropped (and counted in the
/// log): the periodic full rescan still finds what that process maps.
const EXEC_QUEUE: usize = 8192;

/// The OpenSSL functions probed: symbol and attach cookie.
const SSL_FUNCTIONS: [(&str, u32); 4] = [
    ("SSL_write", tls_op::WRITE),
    ("SSL_read", tls_op::READ),
    ("SSL_write_ex", tls_op::WRITE_EX),
    ("SSL_read_ex", tls_op::READ_EX),
];
/// The libc functions whose entry restarts the `mmsg` message index.
const MMSG_FUNCTIONS: [&str; 2] = ["sendmmsg", "recvmmsg"];

/// What a mapped file is to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// A shared OpenSSL (`libssl.so.*`).
    OpenSsl,
    /// An executable with OpenSSL or BoringSSL linked in.
    StaticSsl,
    /// The C library.
    Libc,
}

/// (device, inode) of a file.
type FileId = (u64, u64);

/// Counts for the log.
#[derive(Clone, Copy, Debug, Default)]
struct UprobeCounts {
    /// Files with OpenSSL probes attached.
    pub ssl_files: u64,
    /// Files with libc probes attached.
    pub libc_files: u64,
    /// Go executables with `crypto/tls` probes attached.
    pub go_files: u64,
    /// Probe attachments that failed.
    pub failures: u64,
}

/// The user-space probes attached so far and the scans still due.
pub struct Uprobes {
    done: HashSet<FileId>,
    /// Executables already checked for a static OpenSSL, probed or not.
    exes_seen: HashSet<FileId>,
    due: Vec<(Instant, u32)>,
    next_full: Instant,
    counts: UprobeCounts,
}

impl Uprobes {
    /// No probes yet; call [`Uprobes::scan_all`] to start.
    pub fn new() -> Self {
        Self {
            done: HashSet::new(),
            exes_seen: HashSet::new(),
            due: Vec::new(),
            next_full: Instant::now() + RESCAN_ALL,
            counts: UprobeCounts::default(),
        }
    }

    /// Scan every running process.
    pub fn scan_all(&mut self, ebpf: &mut Ebpf) {
        for pid in pids() {
            self.scan(ebpf, pid);
        }
        self.next_full = Instant::now() + RESCAN_ALL;
    }

    /// Process `pid` called exec: scan it soon, and again later.
    pub fn on_exec(&mut self, pid: u32, now: Instant) {
        for delay in EXEC_SCANS {
            self.due.push((now + delay, pid));
        }
    }

    /// Run the scans that are due (cheap when none is: call it on every drain).
    pub fn tick(&mut self, ebpf: &mut Ebpf, now: Instant) {
        if now >= self.next_full {
            self.scan_all(ebpf);
        }
        let mut ran = 0;
        let mut i = 0;
        while i < self.due.len() && ran < SCANS_PER_TICK {
            if self.due[i].0 <= now {
                let (_, pid) = self.due.swap_remove(i);
                self.scan(ebpf, pid);
                ran += 1;
            } else {
                i += 1;
            }
        }
    }

    fn scan(&mut self, ebpf: &mut Ebpf, pid: u32) {
        let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
            return; // gone, or a kernel thread
        };
        for (id, path) in mapped_files(&maps) {
            if self.done.contains(&id) {
                continue;
            }
            let Some(target) = library_target(&path) else {
                continue;
            };
            self.done.insert(id);
            self.attach(ebpf, pid, &path, target);
        }
        let exe = PathBuf::from(format!("/proc/{pid}/exe"));
        if let Some(id) = file_id(&exe)
            && self.exes_seen.insert(id)
            && !self.done.contains(&id)
        {
            if defines_symbol(&exe, "SSL_write") {
                self.done.insert(id);
                self.attach(ebpf, pid, &exe.to_string_lossy(), Target::StaticSsl);
            }
            self.attach_go(ebpf, pid, &exe);
        }
    }

    /// Go's `crypto/tls` in the executable, if it is a Go program that links it.
    fn attach_go(&mut self, ebpf: &mut Ebpf, pid: u32, exe: &Path) {
        let target = match gotls::inspect(exe) {
            Ok(Some(t)) => t,
            Ok(None) => return,
            Err(e) => {
                self.counts.failures += 1;
                tracing::warn!(error = %e, pid, "Go crypto/tls not probed");
                return;
            }
        };
        let (mut returns, mut data_calls) = (0, 0);
        for f in &target.functions {
            let cookie = Some(f.cookie(target.offsets));
            let mut points: Vec<_> = f.entry.iter().map(|&e| ("go_tls_enter", e)).collect();
            points.extend(f.data_calls.iter().map(|&c| ("go_tls_data", c)));
            points.extend(f.rets.iter().map(|&r| ("go_tls_return", r)));
            for (program, offset) in points {
                let at = UProbeAttachLocation::AbsoluteOffset(offset);
                match attach_at(ebpf, program, exe, at, cookie) {
                    Ok(()) if program == "go_tls_return" => returns += 1,
                    Ok(()) if program == "go_tls_data" => data_calls += 1,
                    Ok(()) => {}
                    Err(e) => {
                        self.counts.failures += 1;
                        tracing::warn!(%e, pid, function = f.name, offset, "Go TLS probe not attached");
                    }
                }
            }
        }
        self.counts.go_files += 1;
        tracing::info!(
            pid,
            version = %target.version,
            offsets = ?target.offsets_from,
            functions = target.functions.len(),
            data_calls,
            returns,
            "probing Go crypto/tls"
        );
    }

    fn attach(&mut self, ebpf: &mut Ebpf, pid: u32, path: &str, target: Target) {
        // The exe link already names the file; a mapped path is read in the process's root.
        let file = if path.starts_with("/proc/") {
            PathBuf::from(path)
        } else {
            Path::new(&format!("/proc/{pid}/root")).join(path.trim_start_matches('/'))
        };
        let attached = match target {
            Target::OpenSsl | Target::StaticSsl => {
                let mut n = 0;
                for (symbol, op) in SSL_FUNCTIONS {
                    // A library may lack the `_ex` pair (OpenSSL 1.1.0, BoringSSL).
                    match attach_pair(ebpf, &file, symbol, op) {
                        Ok(()) => n += 1,
                        Err(e) => tracing::debug!(%e, path, symbol, "SSL probe not attached"),
                    }
                }
                if let Err(e) = attach_one(ebpf, "ssl_free", &file, "SSL_free", None) {
                    tracing::debug!(%e, path, "SSL_free not probed");
                }
                if n > 0 {
                    self.counts.ssl_files += 1;
                    tracing::info!(path, pid, functions = n, "probing OpenSSL");
                } else {
                    self.counts.failures += 1;
                    tracing::warn!(path, pid, "no SSL function could be probed");
                }
                n > 0
            }
            Target::Libc => {
                let mut ok = true;
                for symbol in MMSG_FUNCTIONS {
                    if let Err(e) = attach_one(ebpf, "mmsg_enter", &file, symbol, None) {
                        tracing::debug!(%e, path, symbol, "libc probe not attached");
                        ok = false;
                    }
                }
                if ok {
                    self.counts.libc_files += 1;
                    tracing::debug!(path, pid, "probing libc sendmmsg/recvmmsg");
                } else {
                    self.counts.failures += 1;
                }
                ok
            }
        };
        if !attached {
            tracing::debug!(path, ?target, "probes not attached");
        }
    }
}

impl Default for Uprobes {
    fn default() -> Self {
        Self::new()
    }
}

/// The scan thread: owns the loaded object (programs and links) and the scan state; the
/// reader tells it of every `exec`.
pub struct UprobeThread {
    execs: SyncSender<u32>,
    dropped: u64,
    handle: JoinHandle<()>,
}

impl UprobeThread {
    /// Start scanning on a thread of its own; `ebpf` lives (and its probes stay attached) until
    /// [`UprobeThread::finish`].
    pub fn spawn(mut ebpf: Ebpf, mut uprobes: Uprobes) -> std::io::Result<Self> {
        let (execs, rx) = mpsc::sync_channel::<u32>(EXEC_QUEUE);
        let handle = std::thread::Builder::new()
            .name("wirelens-uprobe".into())
            .spawn(move || {
                loop {
                    match rx.recv_timeout(TICK) {
                        Ok(pid) => {
                            let now = Instant::now();
                            uprobes.on_exec(pid, now);
                            // Whatever else is queued, then the scans due (the first at once).
                            while let Ok(pid) = rx.try_recv() {
                                uprobes.on_exec(pid, now);
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                    uprobes.tick(&mut ebpf, Instant::now());
                }
                tracing::debug!(counts = ?uprobes.counts, "uprobe scans stopped");
                drop(ebpf);
            })?;
        Ok(Self {
            execs,
            dropped: 0,
            handle,
        })
    }

    /// Process `pid` called exec (never blocks).
    pub fn on_exec(&mut self, pid: u32) {
        if let Err(TrySendError::Full(_)) = self.execs.try_send(pid) {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(
                    dropped = self.dropped,
                    "exec notices dropped: the uprobe scans are behind (the periodic rescan \
                     still covers those processes)"
                );
            }
        }
    }

    /// Stop scanning and detach every probe.
    pub fn finish(self) {
        drop(self.execs);
        let _ = self.handle.join();
    }
}

/// Entry and return probes on `symbol`, with `op` as the cookie of both.
fn attach_pair(ebpf: &mut Ebpf, file: &Path, symbol: &str, op: u32) -> anyhow::Result<()> {
    attach_one(ebpf, "ssl_enter", file, symbol, Some(u64::from(op)))?;
    attach_one(ebpf, "ssl_return", file, symbol, Some(u64::from(op)))
}

fn attach_one(
    ebpf: &mut Ebpf,
    program: &str,
    file: &Path,
    symbol: &str,
    cookie: Option<u64>,
) -> anyhow::Result<()> {
    attach_at(
        ebpf,
        program,
        file,
        UProbeAttachLocation::Symbol(symbol),
        cookie,
    )
}

fn attach_at(
    ebpf: &mut Ebpf,
    program: &str,
    file: &Path,
    location: UProbeAttachLocation<'_>,
    cookie: Option<u64>,
) -> anyhow::Result<()> {
    let prog: &mut UProbe = ebpf
        .program_mut(program)
        .ok_or_else(|| anyhow::anyhow!("program {program} missing from the object"))?
        .try_into()?;
    let point = UProbeAttachPoint { location, cookie };
    prog.attach(point, file, UProbeScope::AllProcesses)?;
    Ok(())
}

/// Which probes a mapped file gets, by its name.
fn library_target(path: &str) -> Option<Target> {
    let name = path.rsplit('/').next()?;
    if name.starts_with("libssl.so") {
        Some(Target::OpenSsl)
    } else if name == "libc.so.6" || (name.starts_with("libc-2.") && name.ends_with(".so")) {
        Some(Target::Libc)
    } else {
        None
    }
}

/// The files mapped executable in a `/proc/<pid>/maps` text, with their (device, inode).
fn mapped_files(maps: &str) -> HashMap<FileId, String> {
    let mut files = HashMap::new();
    for line in maps.lines() {
        // address perms offset dev inode path
        let mut fields = line.split_ascii_whitespace();
        let (Some(_), Some(perms), Some(_), Some(dev), Some(inode)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue;
        };
        let path = fields.collect::<Vec<_>>().join(" ");
        if !perms.contains('x') || !path.starts_with('/') || path.ends_with(" (deleted)") {
            continue;
        }
        let (Some(dev), Ok(inode)) = (parse_dev(dev), inode.parse::<u64>()) else {
            continue;
        };
        if inode != 0 {
            files.entry((dev, inode)).or_insert(path);
        }
    }
    files
}

/// `major:minor` in hex, as maps prints it, packed like `st_dev`.
fn parse_dev(dev: &str) -> Option<u64> {
    let (major, minor) = dev.split_once(':')?;
    let major = u64::from_str_radix(major, 16).ok()?;
    let minor = u64::from_str_radix(minor, 16).ok()?;
    Some(libc::makedev(major as u32, minor as u32))
}

fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Whether the ELF file at `path` defines `symbol` (in `.dynsym` or `.symtab`).
fn defines_symbol(path: &Path, symbol: &str) -> bool {
    use object::{Object, ObjectSymbol};
    // Read through a cache of the ranges parsed (headers, symbol and string tables), not the
    // whole file: executables run to hundreds of MB.
    let Ok(f) = fs::File::open(path) else {
        return false;
    };
    let data = object::ReadCache::new(f);
    let Ok(file) = object::File::parse(&data) else {
        return false;
    };
    file.dynamic_symbols()
        .chain(file.symbols())
        .any(|s| s.is_definition() && s.name() == Ok(symbol))
}

fn pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_libraries_in_maps() {
        let maps = "\
5581c000-5581d000 r--p 00000000 fd:01 1234 /usr/sbin/nginx
7f00a000-7f00b000 r-xp 00002000 fd:01 5678 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f00b000-7f00c000 r--p 00080000 fd:01 5678 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f00c000-7f00d000 r-xp 00001000 fd:01 91 /usr/lib/x86_64-linux-gnu/libc.so.6
7f00d000-7f00e000 r-xp 00000000 00:00 0 [vdso]
7f00e000-7f00f000 r-xp 00000000 fd:01 92 /tmp/gone.so (deleted)
";
        let files = mapped_files(maps);
        assert_eq!(files.len(), 2);
        let ssl = files
            .get(&(libc::makedev(0xfd, 1), 5678))
            .map(String::as_str);
        assert_eq!(ssl, Some("/usr/lib/x86_64-linux-gnu/libssl.so.3"));
        assert_eq!(
            library_target("/usr/lib/x86_64-linux-gnu/libssl.so.3"),
            Some(Target::OpenSsl)
        );
        assert_eq!(library_target("/lib/libssl.so.1.1"), Some(Target::OpenSsl));
        assert_eq!(
            library_target("/lib/x86_64-linux-gnu/libc.so.6"),
            Some(Target::Libc)
        );
        assert_eq!(library_target("/usr/lib/libcrypto.so.3"), None);
    }

    #[test]
    fn reads_static_symbols() {
        // This test binary links no OpenSSL; libc defines sendmmsg.
        let me = std::env::current_exe().expect("test binary path");
        assert!(!defines_symbol(&me, "SSL_write"));
        assert!(defines_symbol(
            Path::new("/lib/x86_64-linux-gnu/libc.so.6"),
            "sendmmsg"
        ));
    }
}
