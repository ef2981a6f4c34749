//! User stacks from registers and copied stack bytes: `framehop` over each module's
//! `.eh_frame`/`.debug_frame`, falling back to frame pointers where there is no unwind info.

use std::{
    collections::HashMap,
    fs::File,
    ops::{Deref, Range},
    sync::Arc,
    time::{Duration, Instant},
};

use framehop::{
    ExplicitModuleSectionInfo, Module, Unwinder as _,
    x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64},
};
use object::{Object as _, ObjectSection as _, ObjectSegment as _};

use super::procmaps::{self, Mapping};

/// Deepest user stack kept.
pub const MAX_FRAMES: usize = 128;
/// A process whose samples fall outside every known mapping has its maps read again at most
/// this often (it may have loaded a library).
const REREAD_AFTER: Duration = Duration::from_secs(1);

/// The bytes of an ELF image: a mapped file, or the vDSO copied from our own memory.
pub enum Backing {
    /// A file mapped read-only.
    Map(memmap2::Mmap),
    /// Bytes held in memory.
    Bytes(Vec<u8>),
}

impl Deref for Backing {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Map(m) => m,
            Self::Bytes(b) => b,
        }
    }
}

/// A byte range of an ELF image (framehop's section data type; no copies).
#[derive(Clone)]
pub struct Section {
    file: Arc<Backing>,
    range: Range<usize>,
}

impl Deref for Section {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.file.get(self.range.clone()).unwrap_or(&[])
    }
}

/// The unwind-relevant parts of one ELF file, shared by every process that maps it.
struct Image {
    file: Arc<Backing>,
    /// `p_vaddr - p_offset` of the executable segment.
    bias: u64,
    sections: HashMap<&'static str, (Range<u64>, Range<usize>)>,
}

/// Name of the vDSO in `/proc/<pid>/maps`.
const VDSO: &str = "[vdso]";

const SECTIONS: [&str; 5] = [
    ".text",
    ".eh_frame",
    ".eh_frame_hdr",
    ".debug_frame",
    ".got",
];

impl Image {
    fn open(mapping: &Mapping, pid: u32) -> Option<Self> {
        let file = mapping
            .open_paths(pid)
            .iter()
            .find_map(|p| File::open(p).ok())?;
        // SAFETY: a read-only private map; a file truncated under us can fault, which the
        // kernel's page cache makes rare for libraries and executables in use.
        let map = Arc::new(Backing::Map(unsafe { memmap2::Mmap::map(&file) }.ok()?));
        Self::parse(map, mapping)
    }

    /// The vDSO: the kernel maps the same image into every process, so ours serves for all.
    fn vdso() -> Option<Self> {
        let ours = procmaps::read(std::process::id()).ok()?;
        let m = ours.iter().find(|m| m.path == VDSO)?;
        let len = usize::try_from(m.end.checked_sub(m.start)?).ok()?;
        // SAFETY: our own vDSO mapping, readable and mapped for the life of the process.
        let bytes = unsafe { std::slice::from_raw_parts(m.start as *const u8, len) }.to_vec();
        Self::parse(Arc::new(Backing::Bytes(bytes)), m)
    }

    fn parse(map: Arc<Backing>, mapping: &Mapping) -> Option<Self> {
        let elf = object::File::parse(&map[..]).ok()?;
        // The executable PT_LOAD this mapping shows: its page-aligned file range holds the
        // mapping's offset (a read-only segment before it may share that page).
        let mut bias = 0;
        for seg in elf.segments() {
            let object::SegmentFlags::Elf { p_flags } = seg.flags() else {
                continue;
            };
            let (off, size) = seg.file_range();
            if p_flags & object::elf::PF_X != 0
                && off & !0xfff <= mapping.offset
                && mapping.offset < off + size.max(1)
            {
                bias = seg.address().wrapping_sub(off);
                break;
            }
        }
        let mut sections = HashMap::new();
        for name in SECTIONS {
            if let Some(s) = elf.section_by_name(name)
                && let Some((off, size)) = s.file_range()
            {
                let svma = s.address()..s.address() + s.size();
                sections.insert(name, (svma, off as usize..(off + size) as usize));
            }
        }
        Some(Self {
            file: map.clone(),
            bias,
            sections,
        })
    }

    fn section(&self, name: &str) -> (Option<Range<u64>>, Option<Section>) {
        match self.sections.get(name) {
            Some((svma, range)) => (
                Some(svma.clone()),
                Some(Section {
                    file: self.file.clone(),
                    range: range.clone(),
                }),
            ),
            None => (None, None),
        }
    }

    fn module(&self, mapping: &Mapping) -> Module<Section> {
        let (text_svma, text) = self.section(".text");
        let (eh_frame_svma, eh_frame) = self.section(".eh_frame");
        let (eh_frame_hdr_svma, eh_frame_hdr) = self.section(".eh_frame_hdr");
        let (_, debug_frame) = self.section(".debug_frame");
        let (got_svma, _) = self.section(".got");
        let info = ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma,
            text,
            got_svma,
            eh_frame_svma,
            eh_frame,
            eh_frame_hdr_svma,
            eh_frame_hdr,
            debug_frame,
            stubs_svma: None,
            stub_helper_svma: None,
            unwind_info: None,
            text_segment_svma: None,
            text_segment: None,
        };
        let base = mapping
            .start
            .wrapping_sub(mapping.offset)
            .wrapping_sub(self.bias);
        Module::new(mapping.path.clone(), mapping.start..mapping.end, base, info)
    }
}

/// One process: its mappings and an unwinder over them.
struct Process {
    maps: Vec<Mapping>,
    unwinder: UnwinderX86_64<Section>,
    read_at: Instant,
}

/// What one unwind found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UnwindOutcome {
    /// The unwinder reached the stack's root (or the outermost frame).
    pub complete: bool,
}

/// Unwinders for every sampled process, and the ELF images they share.
#[derive(Default)]
pub struct Unwinders {
    images: HashMap<(u64, u64), Arc<Image>>,
    processes: HashMap<u32, Process>,
    cache: Option<Box<CacheX86_64>>,
    /// The vDSO image, once read (`Some(None)`: not readable).
    vdso: Option<Option<Arc<Image>>>,
}

impl Unwinders {
    /// The mappings of `pid`, read now if unknown.
    pub fn maps(&mut self, pid: u32) -> &[Mapping] {
        match self.process(pid) {
            Some(p) => &p.maps,
            None => &[],
        }
    }

    fn process(&mut self, pid: u32) -> Option<&mut Process> {
        if !self.processes.contains_key(&pid) {
            let maps = procmaps::read(pid).ok()?;
            let mut unwinder = UnwinderX86_64::new();
            for m in &maps {
                if let Some(image) = self.image(m, pid) {
                    unwinder.add_module(image.module(m));
                }
            }
            self.processes.insert(
                pid,
                Process {
                    maps,
                    unwinder,
                    read_at: Instant::now(),
                },
            );
        }
        self.processes.get_mut(&pid)
    }

    fn image(&mut self, m: &Mapping, pid: u32) -> Option<Arc<Image>> {
        if m.path == VDSO {
            if self.vdso.is_none() {
                self.vdso = Some(Image::vdso().map(Arc::new));
            }
            return self.vdso.clone().flatten();
        }
        if !m.is_file() {
            return None;
        }
        let key = (m.dev, m.inode);
        if let Some(i) = self.images.get(&key) {
            return Some(i.clone());
        }
        let image = Arc::new(Image::open(m, pid)?);
        self.images.insert(key, image.clone());
        Some(image)
    }

    /// Unwind one sample into `out` (lookup addresses, leaf first: the ip, then each return
    /// address minus one).
    pub fn unwind(
        &mut self,
        pid: u32,
        regs: (u64, u64, u64),
        stack: &[u8],
        out: &mut Vec<u64>,
    ) -> UnwindOutcome {
        let (ip, sp, bp) = regs;
        out.clear();
        let stale = match self.processes.get(&pid) {
            Some(p) => procmaps::find(&p.maps, ip).is_none() && p.read_at.elapsed() > REREAD_AFTER,
            None => false,
        };
        if stale {
            self.processes.remove(&pid);
        }
        let mut cache = self
            .cache
            .take()
            .unwrap_or_else(|| Box::new(CacheX86_64::new()));
        let outcome = match self.process(pid) {
            Some(p) => walk(&p.unwinder, &mut cache, (ip, sp, bp), stack, out),
            None => {
                out.push(ip);
                UnwindOutcome::default()
            }
        };
        self.cache = Some(cache);
        outcome
    }

    /// Processes with an unwinder, and ELF images mapped for them (the vDSO not counted).
    pub fn cached(&self) -> (usize, usize) {
        (self.processes.len(), self.images.len())
    }

    /// Forget a process (it exited or exec'd); images nobody maps any more are unmapped.
    pub fn forget(&mut self, pid: u32) {
        if self.processes.remove(&pid).is_some() {
            // Modules of live unwinders hold clones of `file`; an image only we hold goes.
            self.images
                .retain(|_, image| Arc::strong_count(&image.file) > 1);
        }
    }
}

fn walk(
    unwinder: &UnwinderX86_64<Section>,
    cache: &mut CacheX86_64,
    (ip, sp, bp): (u64, u64, u64),
    stack: &[u8],
    out: &mut Vec<u64>,
) -> UnwindOutcome {
    let mut read_stack = |addr: u64| -> Result<u64, ()> {
        let off = usize::try_from(addr.checked_sub(sp).ok_or(())?).map_err(|_| ())?;
        let bytes = stack.get(off..off.checked_add(8).ok_or(())?).ok_or(())?;
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(word))
    };
    let mut frames = unwinder.iter_frames(
        ip,
        UnwindRegsX86_64::new(ip, sp, bp),
        cache,
        &mut read_stack,
    );
    loop {
        match frames.next() {
            Ok(Some(frame)) => {
                out.push(frame.address_for_lookup());
                if out.len() >= MAX_FRAMES {
                    return UnwindOutcome { complete: false };
                }
            }
            Ok(None) => return UnwindOutcome { complete: true },
            Err(_) => return UnwindOutcome { complete: false },
        }
    }
}
