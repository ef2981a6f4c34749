//! Addresses to function names with `blazesym`: ELF symbols and DWARF for user code (through
//! `/proc/<pid>/map_files`, so processes in containers resolve too), `/proc/kallsyms` for the
//! kernel, Rust and C++ names demangled. Cached per process, evicted when it exits or execs.
//! An address that does not resolve keeps its module and file offset.

use std::{collections::HashMap, sync::Arc};

use blazesym::{
    MaybeDefault, Pid,
    symbolize::{
        Input, Symbolized, Symbolizer,
        evict::{self, Evict},
        source::{Kernel, Process, Source},
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
    kernel_module: Arc<str>,
    /// Addresses that resolved to a name.
    pub resolved: u64,
    /// Addresses that kept module + offset.
    pub unresolved: u64,
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
            kernel_module: Arc::from(KERNEL_MODULE),
            resolved: 0,
            unresolved: 0,
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
    pub fn user(&mut self, pid: u32, addrs: &[u64], maps: &[Mapping]) -> Vec<Frame> {
        let cache = self.user.entry(pid).or_default();
        let missing: Vec<u64> = addrs
            .iter()
            .copied()
            .filter(|a| !cache.contains_key(a))
            .collect();
        if !missing.is_empty() {
            let mut src = Process::new(Pid::from(pid));
            src.perf_map = true;
            src.map_files = true;
            let syms = self
                .symbolizer
                .symbolize(&Source::Process(src), Input::AbsAddr(&missing))
                .unwrap_or_default();
            for (i, &addr) in missing.iter().enumerate() {
                let mapping = procmaps::find(maps, addr);
                let module: Arc<str> = Arc::from(mapping.map_or("[unknown]", |m| m.module_name()));
                let function: Arc<str> = match syms.get(i) {
                    Some(Symbolized::Sym(sym)) => {
                        self.resolved += 1;
                        Arc::from(&*sym.name)
                    }
                    _ => {
                        self.unresolved += 1;
                        match mapping {
                            Some(m) => Arc::from(format!("{module}+0x{:x}", m.file_offset(addr))),
                            None => Arc::from(format!("[unknown]+0x{addr:x}")),
                        }
                    }
                };
                cache.insert(
                    addr,
                    Frame {
                        function,
                        module,
                        kernel: false,
                    },
                );
            }
        }
        addrs.iter().filter_map(|a| cache.get(a).cloned()).collect()
    }

    /// Drop what is cached for `pid` (it exited or exec'd).
    pub fn forget(&mut self, pid: u32) {
        self.user.remove(&pid);
        let _ = self
            .symbolizer
            .evict(&Evict::Process(evict::Process::new(Pid::from(pid))));
    }
}
