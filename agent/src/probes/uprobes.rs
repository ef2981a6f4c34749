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
//!
//! Probes do not outlive the files' users: the reader forwards forks and exits too, and when
//! the last process that maps a probed file is gone its links are detached (their fds closed),
//! see [`super::attached`]. The full rescan also drops users that no longer exist, so a notice
//! lost to a full queue delays a detach by [`RESCAN_ALL`] at most.

use std::{
    collections::{HashMap, HashSet},
    fs,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{self, RecvTimeoutError, SyncSender, TrySendError},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use aya::{
    Ebpf,
    programs::{
        UProbe,
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLinkId, UProbeScope},
    },
};
use wirelens_ebpf::tls_op;

use super::{
    attached::{AttachedFiles, FileId, Released},
    gotls,
    link_closer::LinkCloser,
};

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
/// Process notices (exec, fork, exit) queued for the scan thread; past this a notice is
/// dropped (and counted in the log): the periodic full rescan still finds what that process
/// maps, and drops the users that are gone.
const NOTICE_QUEUE: usize = 8192;
/// How long a probed file stays probed once no process uses it (a binary run again meanwhile
/// keeps its probes).
const DETACH_GRACE: Duration = Duration::from_secs(5);
/// Most files probed at once; files past it are not probed (counted, logged).
const MAX_PROBED_FILES: usize = 4096;
/// Most executables remembered as having no TLS to probe (then the memory starts over).
const MAX_PLAIN_EXES: usize = 16_384;

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

/// One attached probe: its program and the link to detach.
type Link = (&'static str, UProbeLinkId);

/// An executable as remembered when it has nothing to probe: (device, inode) and change time,
/// so that a new file reusing a deleted one's inode is looked at again.
type ExeKey = (FileId, i64, i64);

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

/// What the scan thread holds, for the agent's own metrics (`wirelens.uprobe.*`).
#[derive(Debug, Default)]
pub struct UprobeLevels {
    /// Files probed now (gauge).
    pub files_attached: AtomicU64,
    /// Probe links (each an fd of the agent) held now (gauge).
    pub links: AtomicU64,
    /// Files whose probes were detached since the start because no process used them any
    /// more (counter).
    pub files_detached: AtomicU64,
    /// Files not probed because [`MAX_PROBED_FILES`] were probed already (counter).
    pub files_refused: AtomicU64,
}

/// The user-space probes attached so far and the scans still due.
pub struct Uprobes {
    files: AttachedFiles<Link>,
    /// Executables checked and found without TLS to probe.
    plain_exes: HashSet<ExeKey>,
    due: Vec<(Instant, u32)>,
    next_full: Instant,
    counts: UprobeCounts,
    levels: Arc<UprobeLevels>,
    /// Closes detached links off this thread (each close waits for grace periods); none
    /// before [`UprobeThread::spawn`]: the start-up scan detaches nothing.
    closer: Option<LinkCloser>,
}

impl Uprobes {
    /// No probes yet; call [`Uprobes::scan_all`] to start.
    pub fn new() -> Self {
        Self {
            files: AttachedFiles::default(),
            plain_exes: HashSet::new(),
            due: Vec::new(),
            next_full: Instant::now() + RESCAN_ALL,
            counts: UprobeCounts::default(),
            levels: Arc::default(),
            closer: None,
        }
    }

    /// The gauges and counters this keeps up to date.
    pub fn levels(&self) -> Arc<UprobeLevels> {
        self.levels.clone()
    }

    /// Scan every running process, and drop the users that no longer exist.
    pub fn scan_all(&mut self, ebpf: &mut Ebpf) {
        let live: HashSet<u32> = pids().into_iter().collect();
        for &pid in &live {
            self.scan(ebpf, pid);
        }
        self.files.retain_live(&live, Instant::now());
        self.next_full = Instant::now() + RESCAN_ALL;
    }

    /// Process `child` was forked by `parent` (or is a thread of it): it uses its parent's
    /// files until it execs.
    pub fn on_fork(&mut self, parent: u32, child: u32, now: Instant) {
        // A thread (listed among its process's tasks) is no user of its own: it never exits as a
        // process. Nor is a child gone already.
        if Path::new(&format!("/proc/{parent}/task/{child}")).exists()
            || !Path::new(&format!("/proc/{child}")).exists()
        {
            return;
        }
        self.files.fork(parent, child, now);
    }

    /// Process `pid` exited: the files only it used lose their probes after [`DETACH_GRACE`].
    pub fn on_exit(&mut self, pid: u32, now: Instant) {
        self.files.exit(pid, now);
    }

    /// Detach the links of files no process uses any more (closing their fds).
    fn detach(&mut self, ebpf: &mut Ebpf, released: Vec<Released<Link>>) {
        for file in released {
            let n = file.links.len();
            for (program, id) in file.links {
                let result = ebpf
                    .program_mut(program)
                    .ok_or_else(|| anyhow::anyhow!("program {program} missing from the object"))
                    .and_then(|p| Ok(<&mut UProbe>::try_from(p)?.take_link(id)?));
                match (result, &self.closer) {
                    (Ok(link), Some(closer)) => closer.close(link),
                    (Ok(link), None) => drop(link),
                    (Err(e), _) => tracing::debug!(%e, program, "uprobe link not detached"),
                }
            }
            self.levels.files_detached.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                dev = file.file.0,
                inode = file.file.1,
                links = n,
                "no process uses this file any more: probes detached"
            );
        }
        self.publish();
    }

    /// Update the gauges.
    fn publish(&self) {
        let l = &self.levels;
        l.files_attached
            .store(self.files.len() as u64, Ordering::Relaxed);
        let closing = self.closer.as_ref().map_or(0, LinkCloser::pending);
        l.links
            .store(self.files.links() as u64 + closing, Ordering::Relaxed);
    }

    fn on_notice(&mut self, notice: Notice, now: Instant) {
        match notice {
            Notice::Exec(pid) => self.on_exec(pid, now),
            Notice::Fork { parent, child } => self.on_fork(parent, child, now),
            Notice::Exit(pid) => self.on_exit(pid, now),
        }
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
        let released = self.files.expire(now, DETACH_GRACE);
        if !released.is_empty() {
            self.detach(ebpf, released);
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

    /// Probe what `pid` maps that is not probed yet, and record the probed files it uses.
    fn scan(&mut self, ebpf: &mut Ebpf, pid: u32) {
        let now = Instant::now();
        let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else {
            // Gone (or a kernel thread, which uses nothing).
            self.on_exit(pid, now);
            self.publish();
            return;
        };
        let mut used = mapped_ids(&maps);
        for (id, path) in mapped_files(&maps) {
            if self.files.contains(&id) {
                continue;
            }
            let Some(target) = library_target(&path) else {
                continue;
            };
            if self.has_room() {
                let links = self.attach(ebpf, pid, &path, target);
                self.files.insert(id, links, now);
            }
        }
        let exe = PathBuf::from(format!("/proc/{pid}/exe"));
        if let Some(key) = exe_key(&exe) {
            let id = key.0;
            used.push(id);
            if !self.files.contains(&id) && !self.plain_exes.contains(&key) && self.has_room() {
                let static_ssl = defines_symbol(&exe, "SSL_write");
                let mut links = Vec::new();
                if static_ssl {
                    links = self.attach(ebpf, pid, &exe.to_string_lossy(), Target::StaticSsl);
                }
                let go = self.attach_go(ebpf, pid, &exe);
                let plain = !static_ssl && matches!(go, GoProbes::NotGoTls);
                if let GoProbes::Attached(go) = go {
                    links.extend(go);
                }
                if plain {
                    if self.plain_exes.len() >= MAX_PLAIN_EXES {
                        self.plain_exes.clear();
                    }
                    self.plain_exes.insert(key);
                } else if !links.is_empty() {
                    self.files.insert(id, links, now);
                }
                // Else unreadable (the process gone at once) or no probe attached: tried again
                // at the next scan.
            }
        }
        self.files.set_users(pid, used, now);
        self.publish();
    }

    /// Whether another file may be probed (counted when not).
    fn has_room(&self) -> bool {
        if self.files.len() < MAX_PROBED_FILES {
            return true;
        }
        let refused = self.levels.files_refused.fetch_add(1, Ordering::Relaxed) + 1;
        if refused.is_power_of_two() {
            tracing::warn!(
                refused,
                max = MAX_PROBED_FILES,
                "too many files probed at once: new files are not probed"
            );
        }
        false
    }

    /// Go's `crypto/tls` in the executable, if it is a Go program that links it.
    fn attach_go(&mut self, ebpf: &mut Ebpf, pid: u32, exe: &Path) -> GoProbes {
        let target = match gotls::inspect(exe) {
            Ok(Some(t)) => t,
            Ok(None) => return GoProbes::NotGoTls,
            Err(e) => {
                self.counts.failures += 1;
                tracing::warn!(error = %e, pid, "Go crypto/tls not probed");
                return GoProbes::Unreadable;
            }
        };
        let mut links = Vec::new();
        let (mut returns, mut data_calls) = (0, 0);
        for f in &target.functions {
            let cookie = Some(f.cookie(target.offsets));
            let mut points: Vec<_> = f.entry.iter().map(|&e| ("go_tls_enter", e)).collect();
            points.extend(f.data_calls.iter().map(|&c| ("go_tls_data", c)));
            points.extend(f.rets.iter().map(|&r| ("go_tls_return", r)));
            for (program, offset) in points {
                let at = UProbeAttachLocation::AbsoluteOffset(offset);
                match attach_at(ebpf, program, exe, at, cookie) {
                    Ok(link) => {
                        returns += u32::from(program == "go_tls_return");
                        data_calls += u32::from(program == "go_tls_data");
                        links.push(link);
                    }
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
        GoProbes::Attached(links)
    }

    /// Probe `path` as mapped by `pid`: the links made.
    fn attach(&mut self, ebpf: &mut Ebpf, pid: u32, path: &str, target: Target) -> Vec<Link> {
        // The exe link already names the file; a mapped path is read in the process's root.
        let file = if path.starts_with("/proc/") {
            PathBuf::from(path)
        } else {
            Path::new(&format!("/proc/{pid}/root")).join(path.trim_start_matches('/'))
        };
        let mut links = Vec::new();
        let attached = match target {
            Target::OpenSsl | Target::StaticSsl => {
                let mut n = 0;
                for (symbol, op) in SSL_FUNCTIONS {
                    // A library may lack the `_ex` pair (OpenSSL 1.1.0, BoringSSL).
                    match attach_pair(ebpf, &file, symbol, op, &mut links) {
                        Ok(()) => n += 1,
                        Err(e) => tracing::debug!(%e, path, symbol, "SSL probe not attached"),
                    }
                }
                match attach_one(ebpf, "ssl_free", &file, "SSL_free", None) {
                    Ok(link) => links.push(link),
                    Err(e) => tracing::debug!(%e, path, "SSL_free not probed"),
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
                    match attach_one(ebpf, "mmsg_enter", &file, symbol, None) {
                        Ok(link) => links.push(link),
                        Err(e) => {
                            tracing::debug!(%e, path, symbol, "libc probe not attached");
                            ok = false;
                        }
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
        links
    }
}

impl Default for Uprobes {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`Uprobes::attach_go`] did with an executable.
enum GoProbes {
    /// Not a Go program linking `crypto/tls`.
    NotGoTls,
    /// The executable could not be read.
    Unreadable,
    /// Probed: the links made (none if every attach failed).
    Attached(Vec<Link>),
}

/// What the reader tells the scan thread.
#[derive(Clone, Copy, Debug)]
enum Notice {
    /// The process called exec.
    Exec(u32),
    /// A process (or thread) was forked.
    Fork { parent: u32, child: u32 },
    /// The process exited.
    Exit(u32),
}

/// The scan thread: owns the loaded object (programs and links) and the scan state; the
/// reader tells it of every `exec`, fork and exit.
pub struct UprobeThread {
    notices: SyncSender<Notice>,
    dropped: u64,
    levels: Arc<UprobeLevels>,
    handle: JoinHandle<()>,
}

impl UprobeThread {
    /// Start scanning on a thread of its own; `ebpf` lives (and its probes stay attached) until
    /// [`UprobeThread::finish`].
    pub fn spawn(mut ebpf: Ebpf, mut uprobes: Uprobes) -> std::io::Result<Self> {
        uprobes.closer = Some(LinkCloser::spawn()?);
        let (notices, rx) = mpsc::sync_channel::<Notice>(NOTICE_QUEUE);
        let levels = uprobes.levels();
        let handle = std::thread::Builder::new()
            .name("wirelens-uprobe".into())
            .spawn(move || {
                loop {
                    match rx.recv_timeout(TICK) {
                        Ok(notice) => {
                            let now = Instant::now();
                            uprobes.on_notice(notice, now);
                            // Whatever else is queued, then the scans due (the first at once).
                            while let Ok(notice) = rx.try_recv() {
                                uprobes.on_notice(notice, now);
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                    uprobes.tick(&mut ebpf, Instant::now());
                }
                tracing::debug!(counts = ?uprobes.counts, "uprobe scans stopped");
                drop(uprobes);
                drop(ebpf);
            })?;
        Ok(Self {
            notices,
            dropped: 0,
            levels,
            handle,
        })
    }

    /// The scan thread's gauges and counters.
    pub fn levels(&self) -> &UprobeLevels {
        &self.levels
    }

    /// Process `pid` called exec (never blocks).
    pub fn on_exec(&mut self, pid: u32) {
        self.send(Notice::Exec(pid));
    }

    /// Process (or thread) `child` was forked by `parent` (never blocks).
    pub fn on_fork(&mut self, parent: u32, child: u32) {
        self.send(Notice::Fork { parent, child });
    }

    /// Process `pid` exited (never blocks).
    pub fn on_exit(&mut self, pid: u32) {
        self.send(Notice::Exit(pid));
    }

    fn send(&mut self, notice: Notice) {
        if let Err(TrySendError::Full(_)) = self.notices.try_send(notice) {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(
                    dropped = self.dropped,
                    "process notices dropped: the uprobe scans are behind (the periodic \
                     rescan still covers those processes)"
                );
            }
        }
    }

    /// Stop scanning and detach every probe.
    pub fn finish(self) {
        drop(self.notices);
        let _ = self.handle.join();
    }
}

/// Entry and return probes on `symbol`, with `op` as the cookie of both; their links go to
/// `links`.
fn attach_pair(
    ebpf: &mut Ebpf,
    file: &Path,
    symbol: &str,
    op: u32,
    links: &mut Vec<Link>,
) -> anyhow::Result<()> {
    links.push(attach_one(
        ebpf,
        "ssl_enter",
        file,
        symbol,
        Some(u64::from(op)),
    )?);
    links.push(attach_one(
        ebpf,
        "ssl_return",
        file,
        symbol,
        Some(u64::from(op)),
    )?);
    Ok(())
}

fn attach_one(
    ebpf: &mut Ebpf,
    program: &'static str,
    file: &Path,
    symbol: &str,
    cookie: Option<u64>,
) -> anyhow::Result<Link> {
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
    program: &'static str,
    file: &Path,
    location: UProbeAttachLocation<'_>,
    cookie: Option<u64>,
) -> anyhow::Result<Link> {
    let prog: &mut UProbe = ebpf
        .program_mut(program)
        .ok_or_else(|| anyhow::anyhow!("program {program} missing from the object"))?
        .try_into()?;
    let point = UProbeAttachPoint { location, cookie };
    let id = prog.attach(point, file, UProbeScope::AllProcesses)?;
    Ok((program, id))
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

/// Every file mapped in a `/proc/<pid>/maps` text, deleted or not: the files the process uses.
fn mapped_ids(maps: &str) -> Vec<FileId> {
    let mut ids: Vec<FileId> = maps
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace().skip(3);
            let dev = parse_dev(fields.next()?)?;
            let inode = fields.next()?.parse::<u64>().ok()?;
            (inode != 0).then_some((dev, inode))
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// `major:minor` in hex, as maps prints it, packed like `st_dev`.
fn parse_dev(dev: &str) -> Option<u64> {
    let (major, minor) = dev.split_once(':')?;
    let major = u64::from_str_radix(major, 16).ok()?;
    let minor = u64::from_str_radix(minor, 16).ok()?;
    Some(libc::makedev(major as u32, minor as u32))
}

/// The executable behind `path` (a `/proc/<pid>/exe` link): its id and change time.
fn exe_key(path: &Path) -> Option<ExeKey> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).ok()?;
    Some(((meta.dev(), meta.ino()), meta.ctime(), meta.ctime_nsec()))
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
        // What the process uses: every file, deleted ones too, each once.
        let fd01 = |ino| (libc::makedev(0xfd, 1), ino);
        assert_eq!(
            mapped_ids(maps),
            [fd01(91), fd01(92), fd01(1234), fd01(5678)]
        );
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
