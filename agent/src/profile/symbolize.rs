//! Addresses to function names with `blazesym`: ELF symbols and DWARF for user code (through
//! `/proc/<pid>/map_files`, so processes in containers resolve too), `/proc/kallsyms` for the
//! kernel, Rust and C++ names demangled. Cached per process, evicted when it exits or execs.
//! An address that does not resolve keeps its module and file offset.

use std::{
    collections::{HashMap, HashSet},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use blazesym::{
    MaybeDefault, Pid,
    symbolize::{
        Input, Symbolized, Symbolizer,
        evict::{self, Evict},
        source::{Elf, Kernel, Process, Source},
    },
};

use super::procmaps::{self, Mapping};

/// One resolved frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Function name (demangled), or `module+0xoffset` when unresolved.
    pub function: Arc<str>,
    /// Module file name (`[kernel]` for the kernel).
    pub module: Arc<str>,
    /// Kernel frame.
    pub kernel: bool,
}

/// Module name of kernel frames.
pub const KERNEL_MODULE: &str = "[kernel]";

/// Symbol caches for the kernel and every sampled process.
pub struct Symbols {
    symbolizer: Symbolizer,
    kernel: HashMap<u64, Frame>,
    user: HashMap<u32, HashMap<u64, Frame>>,
    /// Module files by (device, inode): the path opened, and the processes mapping it.
    files: HashMap<(u64, u64), (PathBuf, HashSet<u32>)>,
    kernel_module: Arc<str>,
    /// Addresses that resolved to a name.
    pub resolved: u64,
    /// Addresses that kept module + offset.
    pub unresolved: u64,
    /// Processes whose cache was dropped (they exited or exec'd).
    pub evicted: u64,
}

impl Default for Symbols {
    fn default() -> Self {
        Self::new()
    }
}

impl Symbols {
    /// Empty caches.
    pub fn new() -> Self {
        let symbolizer = Symbolizer::builder()
            .enable_demangling(true)
            .enable_code_info(false)
            .enable_inlined_fns(false)
            .build();
        Self {
            symbolizer,
            kernel: HashMap::new(),
            user: HashMap::new(),
            files: HashMap::new(),
            kernel_module: Arc::from(KERNEL_MODULE),
            resolved: 0,
            unresolved: 0,
            evicted: 0,
        }
    }

    /// Kernel frames for `addrs`.
    pub fn kernel(&mut self, addrs: &[u64]) -> Vec<Frame> {
        let missing: Vec<u64> = addrs
            .iter()
            .copied()
            .filter(|a| !self.kernel.contains_key(a))
            .collect();
        if !missing.is_empty() {
            let src = Source::Kernel(Kernel {
                vmlinux: MaybeDefault::None,
                debug_syms: false,
                ..Kernel::default()
            });
            let syms = self
                .symbolizer
                .symbolize(&src, Input::AbsAddr(&missing))
                .unwrap_or_default();
            for (i, &addr) in missing.iter().enumerate() {
                let function: Arc<str> = match syms.get(i) {
                    Some(Symbolized::Sym(sym)) => {
                        self.resolved += 1;
                        Arc::from(&*sym.name)
                    }
                    _ => {
                        self.unresolved += 1;
                        Arc::from(format!("[kernel]+0x{addr:x}"))
                    }
                };
                self.kernel.insert(
                    addr,
                    Frame {
                        function,
                        module: self.kernel_module.clone(),
                        kernel: true,
                    },
                );
            }
        }
        addrs
            .iter()
            .filter_map(|a| self.kernel.get(a).cloned())
            .collect()
    }

    /// User frames of `pid` for `addrs`, with `maps` for module names.
    ///
    /// Addresses in file mappings are looked up by file offset in that file, opened once for
    /// every process that maps it (by device and inode: the host path when it is the same file,
    /// else `/proc/<pid>/map_files/…`, which also reaches into containers and deleted files).
    /// Others (the vDSO, JIT code with a perf map) go through blazesym's process source.
    pub fn user(&mut self, pid: u32, addrs: &[u64], maps: &[Mapping]) -> Vec<Frame> {
        let known = self.user.entry(pid).or_default();
        let mut missing: Vec<u64> = addrs
            .iter()
            .copied()
            .filter(|a| !known.contains_key(a))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        let mut by_file: HashMap<(u64, u64), (Mapping, Vec<u64>)> = HashMap::new();
        let mut others = Vec::new();
        for &addr in &missing {
            match procmaps::find(maps, addr) {
                Some(m) if m.is_file() => by_file
                    .entry((m.dev, m.inode))
                    .or_insert_with(|| (m.clone(), Vec::new()))
                    .1
                    .push(addr),
                _ => others.push(addr),
            }
        }
        let mut names: HashMap<u64, Arc<str>> = HashMap::new();
        for (key, (m, file_addrs)) in by_file {
            let Some(path) = self.module_path(pid, key, &m) else {
                continue;
            };
            // Offsets within this mapping's file: a library's other mappings land here too
            // when their own mapping holds the address (find() picked it).
            let offsets: Vec<u64> = file_addrs
                .iter()
                .map(|&a| procmaps::find(maps, a).map_or(0, |mm| mm.file_offset(a)))
                .collect();
            // ELF symbols first; DWARF only for what they leave unresolved (parsing a big
            // binary's DWARF costs far more, and names are all a profile needs).
            let mut left: Vec<(u64, u64)> = file_addrs.iter().copied().zip(offsets).collect();
            for debug_syms in [false, true] {
                if left.is_empty() {
                    break;
                }
                let mut elf = Elf::new(path.clone());
                elf.debug_syms = debug_syms;
                let offs: Vec<u64> = left.iter().map(|&(_, o)| o).collect();
                let syms = self
                    .symbolizer
                    .symbolize(&Source::Elf(elf), Input::FileOffset(&offs))
                    .unwrap_or_default();
                let mut still = Vec::new();
                for (i, &(addr, off)) in left.iter().enumerate() {
                    match syms.get(i) {
                        Some(Symbolized::Sym(sym)) => {
                            names.insert(addr, Arc::from(&*sym.name));
                        }
                        _ => still.push((addr, off)),
                    }
                }
                left = still;
            }
        }
        if !others.is_empty() {
            let mut src = Process::new(Pid::from(pid));
            src.perf_map = true;
            src.map_files = true;
            let syms = self
                .symbolizer
                .symbolize(&Source::Process(src), Input::AbsAddr(&others))
                .unwrap_or_default();
            for (addr, sym) in others.iter().zip(&syms) {
                if let Symbolized::Sym(sym) = sym {
                    names.insert(*addr, Arc::from(&*sym.name));
                }
            }
        }
        let known = self.user.entry(pid).or_default();
        for addr in missing {
            let mapping = procmaps::find(maps, addr);
            let module: Arc<str> = Arc::from(mapping.map_or("[unknown]", |m| m.module_name()));
            let function = match names.remove(&addr) {
                Some(name) => {
                    self.resolved += 1;
                    name
                }
                None => {
                    self.unresolved += 1;
                    match mapping {
                        Some(m) => Arc::from(format!("{module}+0x{:x}", m.file_offset(addr))),
                        None => Arc::from(format!("[unknown]+0x{addr:x}")),
                    }
                }
            };
            known.insert(
                addr,
                Frame {
                    function,
                    module,
                    kernel: false,
                },
            );
        }
        addrs.iter().filter_map(|a| known.get(a).cloned()).collect()
    }

    /// The path blazesym opens for the file `key` (device, inode) that `pid` maps as `m`.
    fn module_path(&mut self, pid: u32, key: (u64, u64), m: &Mapping) -> Option<PathBuf> {
        if let Some(e) = self.files.get_mut(&key) {
            e.1.insert(pid);
            return Some(e.0.clone());
        }
        let host = Path::new(&m.path);
        let same = std::fs::metadata(host).is_ok_and(|md| {
            let dev = md.dev();
            (
                u64::from(libc::major(dev)) << 32 | u64::from(libc::minor(dev)),
                md.ino(),
            ) == key
        });
        let path = if same {
            host.to_path_buf()
        } else {
            PathBuf::from(format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end))
        };
        self.files.insert(key, (path.clone(), HashSet::from([pid])));
        Some(path)
    }

    /// Processes with cached names, and module files held open for them.
    pub fn cached(&self) -> (usize, usize) {
        (self.user.len(), self.files.len())
    }

    /// Drop what is cached for `pid` (it exited or exec'd).
    pub fn forget(&mut self, pid: u32) {
        if self.user.remove(&pid).is_some() {
            self.evicted += 1;
        }
        // Files no process of ours maps any more are closed.
        let mut unused = Vec::new();
        self.files.retain(|_, (path, pids)| {
            pids.remove(&pid);
            if pids.is_empty() {
                unused.push(path.clone());
            }
            !pids.is_empty()
        });
        for path in unused {
            let _ = self.symbolizer.evict(&Evict::Elf(evict::Elf::new(path)));
        }
        let _ = self
            .symbolizer
            .evict(&Evict::Process(evict::Process::new(Pid::from(pid))));
    }
}
