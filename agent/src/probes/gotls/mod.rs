//! Go executables' `crypto/tls`: where the Go TLS probes go and what they need to know.
//!
//! For a Go executable (it has a `.gopclntab` section) [`inspect`] finds
//! `crypto/tls.(*Conn).Write` and `(*Conn).Read` (from the ELF symbol table, else from
//! `.gopclntab`, which stripping keeps), the call inside each where its plaintext is in
//! registers ([`DataCall`]: `Write`'s calls of `writeRecordLocked`, `Read`'s one call of
//! `runtime.memmove`), or failing that every `RET` instruction in them (disassembled with
//! `iced-x86`: the return probes go there, since uretprobes break Go's movable stacks), the
//! Go version (`.go.buildinfo`) and the struct offsets from a `*tls.Conn` to its fd (DWARF,
//! else the table of known releases).
//!
//! Where the probes go decides what they cost: the kernel emulates a direct `CALL` or a
//! conditional branch at a uprobe, and single-steps any other instruction (a `RET`, a `MOV`)
//! out of line, whose debug trap cost ~14 µs per hit on the VM this was measured on against
//! ~0.7 µs for an emulated one (README, Go TLS overhead). Only the register ABI (Go 1.17 and later) is probed:
//! older executables pass arguments on the stack, and are skipped with a log line.
//!
//! Pure: reads files, never touches the kernel. `uprobes` attaches what this returns.

mod buildinfo;
mod offsets;
mod pclntab;

use std::{fs, path::Path};

use iced_x86::{Decoder, DecoderOptions, Mnemonic, OpKind};
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};
use wirelens_ebpf::{go_cookie, tls_op};

pub use offsets::{ConnOffsets, OffsetSource};

/// The functions probed: symbol, [`tls_op`] and the call inside it that carries its
/// plaintext.
pub const FUNCTIONS: [(&str, u32, DataCall); 2] = [
    (
        "crypto/tls.(*Conn).Write",
        tls_op::GO_WRITE,
        // writeRecordLocked(c, typ, data): c in RAX, data in RCX (pointer) and RDI (length),
        // called with the handshake done and `c.out` locked, before the bytes go out.
        DataCall {
            callee: "crypto/tls.(*Conn).writeRecordLocked",
            only_one: false,
            needs_entry: false,
        },
    ),
    (
        "crypto/tls.(*Conn).Read",
        tls_op::GO_READ,
        // `c.input.Read(b)`'s copy, memmove(to, from, n): the plaintext at RBX, n in RCX; the
        // `*tls.Conn` comes from the entry probe.
        DataCall {
            callee: "runtime.memmove",
            only_one: true,
            needs_entry: true,
        },
    ),
];

/// A call inside a probed function where its plaintext is in the call's argument registers,
/// so that a probe there (a direct `CALL`, which the kernel emulates) replaces the probes at
/// every `RET` (single-stepped). When the function does not call it as expected, the `RET`s
/// are probed instead.
#[derive(Clone, Copy, Debug)]
pub struct DataCall {
    /// The function called.
    pub callee: &'static str,
    /// Whether it must be called from exactly one place (else it is not used).
    pub only_one: bool,
    /// Whether the entry probe is needed too (the `*tls.Conn` is not among the arguments).
    pub needs_entry: bool,
}

/// `[start, end)` virtual addresses of a function.
type AddrRange = (u64, u64);

/// Where to probe one function.
#[derive(Clone, Debug)]
pub struct GoFunction {
    /// Its symbol.
    pub name: &'static str,
    /// Its [`tls_op`].
    pub op: u32,
    /// File offset of its entry probe, if it needs one: the prologue's stack-check branch
    /// when it has one (see [`entry_point`]), else its first instruction.
    pub entry: Option<u64>,
    /// Whether `entry` is the stack-check branch ([`go_cookie::ON_STACK_CHECK`]).
    pub entry_on_branch: bool,
    /// File offsets of the calls of its [`DataCall`] (empty: not found, `rets` are used).
    pub data_calls: Vec<u64>,
    /// File offsets of its `RET` instructions, when there are no `data_calls`.
    pub rets: Vec<u64>,
}

impl GoFunction {
    /// The attach cookie of this function's probes in a binary with `offsets`.
    pub fn cookie(&self, offsets: ConnOffsets) -> u64 {
        let cookie = go_cookie::pack(self.op, offsets.conn_data, offsets.tcp_fd, offsets.sysfd);
        if self.entry_on_branch {
            cookie | go_cookie::ON_STACK_CHECK
        } else {
            cookie
        }
    }
}

/// What the probes of one Go executable need.
#[derive(Clone, Debug)]
pub struct GoTlsTarget {
    /// Its Go version (`go1.19.8`).
    pub version: String,
    /// The fd's offsets.
    pub offsets: ConnOffsets,
    /// Where they came from.
    pub offsets_from: OffsetSource,
    /// `Write` and `Read`.
    pub functions: Vec<GoFunction>,
}

/// Why a Go executable cannot be probed.
#[derive(Debug, thiserror::Error)]
pub enum GoTlsError {
    /// The file could not be read.
    #[error("reading the executable failed")]
    Read(#[source] std::io::Error),
    /// Not a readable ELF file.
    #[error("parsing the ELF file failed")]
    Elf(#[source] object::Error),
    /// No `.go.buildinfo` version.
    #[error("the Go version is unknown (no readable .go.buildinfo)")]
    NoVersion,
    /// Built before the register ABI.
    #[error("{0} passes arguments on the stack (Go < 1.17): not probed")]
    StackAbi(String),
    /// Neither DWARF nor the table gives the offsets.
    #[error("no struct offsets for {0}")]
    NoOffsets(String),
    /// The DWARF is damaged.
    #[error("reading DWARF failed")]
    Dwarf(#[source] gimli::Error),
    /// A function's code is not where its symbol says, or has no `RET`.
    #[error("{0}: no code or no RET instruction found")]
    NoReturn(&'static str),
}

/// Whether the ELF file has Go's function table (cheap: section headers only).
pub fn is_go(file: &object::File<'_>) -> bool {
    file.section_by_name(".gopclntab").is_some()
}

/// The probes for the Go executable at `path`: `Ok(None)` if it is not a Go executable or
/// does not link `crypto/tls`.
pub fn inspect(path: &Path) -> Result<Option<GoTlsTarget>, GoTlsError> {
    let f = fs::File::open(path).map_err(GoTlsError::Read)?;
    // SAFETY: a read-only private mapping; a file changed underneath gives wrong bytes, which
    // every read below bounds-checks, never undefined behaviour in this code.
    let map = unsafe { memmap2::Mmap::map(&f) }.map_err(GoTlsError::Read)?;
    let file = object::File::parse(&*map).map_err(GoTlsError::Elf)?;
    if !is_go(&file) {
        return Ok(None);
    }
    let ranges: Vec<(&'static str, u32, DataCall, Option<AddrRange>)> = FUNCTIONS
        .iter()
        .map(|&(name, op, data)| (name, op, data, function_range(&file, name)))
        .collect();
    if ranges.iter().all(|r| r.3.is_none()) {
        return Ok(None); // no crypto/tls in this program
    }
    let version = go_version(&file).ok_or(GoTlsError::NoVersion)?;
    let (_, minor) = buildinfo::major_minor(&version).ok_or(GoTlsError::NoVersion)?;
    if minor < 17 {
        return Err(GoTlsError::StackAbi(version));
    }
    let (offsets, offsets_from) = match offsets::from_dwarf(&file).map_err(GoTlsError::Dwarf)? {
        Some(o) => (o, OffsetSource::Dwarf),
        None => {
            let o = offsets::from_table(minor).ok_or(GoTlsError::NoOffsets(version.clone()))?;
            if minor > offsets::NEWEST_KNOWN_MINOR {
                tracing::warn!(
                    %version,
                    "Go release newer than the table of struct offsets: assuming the last known layout"
                );
            }
            (o, OffsetSource::Table)
        }
    };
    let mut functions = Vec::new();
    for (name, op, data, range) in ranges {
        let Some((start, end)) = range else {
            continue;
        };
        let code = code_bytes(&file, start, end).ok_or(GoTlsError::NoReturn(name))?;
        let mut data_calls: Vec<u64> = function_range(&file, data.callee)
            .map(|(callee, _)| call_sites(code, start, callee))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|a| file_offset(&file, a))
            .collect();
        if data.only_one && data_calls.len() != 1 {
            data_calls.clear();
        }
        let rets: Vec<u64> = if data_calls.is_empty() {
            ret_addresses(code, start)
                .into_iter()
                .filter_map(|a| file_offset(&file, a))
                .collect()
        } else {
            Vec::new()
        };
        if data_calls.is_empty() && rets.is_empty() {
            return Err(GoTlsError::NoReturn(name));
        }
        let (entry, entry_on_branch) = entry_point(code, start);
        let entry = if data_calls.is_empty() || data.needs_entry {
            Some(file_offset(&file, entry).ok_or(GoTlsError::NoReturn(name))?)
        } else {
            None
        };
        functions.push(GoFunction {
            name,
            op,
            entry,
            entry_on_branch,
            data_calls,
            rets,
        });
    }
    Ok(Some(GoTlsTarget {
        version,
        offsets,
        offsets_from,
        functions,
    }))
}

/// `[start, end)` of `name`: the symbol table, else `.gopclntab`.
fn function_range(file: &object::File<'_>, name: &str) -> Option<AddrRange> {
    if let Some(sym) = file
        .symbols()
        .find(|s| s.is_definition() && s.name() == Ok(name) && s.size() > 0)
    {
        return Some((sym.address(), sym.address() + sym.size()));
    }
    let data = file.section_by_name(".gopclntab")?.data().ok()?;
    let text = file.section_by_name(".text").map_or(0, |s| s.address());
    pclntab::Pclntab::parse(data, text)?.find(name)
}

/// The Go version from `.go.buildinfo`.
fn go_version(file: &object::File<'_>) -> Option<String> {
    let section = file.section_by_name(".go.buildinfo")?.data().ok()?;
    buildinfo::version(section, |addr, len| {
        read_vaddr(file, addr, len).map(<[u8]>::to_vec)
    })
}

/// The bytes of `[start, end)` from the section holding them.
fn code_bytes<'d>(file: &object::File<'d>, start: u64, end: u64) -> Option<&'d [u8]> {
    read_vaddr(file, start, usize::try_from(end.checked_sub(start)?).ok()?)
}

/// `len` bytes at virtual address `addr`, from the section that holds them.
fn read_vaddr<'d>(file: &object::File<'d>, addr: u64, len: usize) -> Option<&'d [u8]> {
    for s in file.sections() {
        let (base, size) = (s.address(), s.size());
        if addr >= base && addr.checked_add(len as u64)? <= base + size {
            let data = s.data().ok()?;
            let at = usize::try_from(addr - base).ok()?;
            return data.get(at..at.checked_add(len)?);
        }
    }
    None
}

/// Addresses of the `RET` instructions in `code`, which starts at address `start`.
pub fn ret_addresses(code: &[u8], start: u64) -> Vec<u64> {
    let mut decoder = Decoder::with_ip(64, code, start, DecoderOptions::NONE);
    let mut rets = Vec::new();
    for instr in &mut decoder {
        if instr.mnemonic() == Mnemonic::Ret {
            rets.push(instr.ip());
        }
    }
    rets
}

/// Addresses of the direct `CALL`s of `target` in `code`, which starts at address `start`.
pub fn call_sites(code: &[u8], start: u64, target: u64) -> Vec<u64> {
    let mut decoder = Decoder::with_ip(64, code, start, DecoderOptions::NONE);
    let mut calls = Vec::new();
    for instr in &mut decoder {
        if instr.mnemonic() == Mnemonic::Call
            && instr.op0_kind() == OpKind::NearBranch64
            && instr.near_branch_target() == target
        {
            calls.push(instr.ip());
        }
    }
    calls
}

/// Where the entry probe goes, and whether it is the stack-check branch: the prologue's `JBE`
/// to `morestack` (after a `CMP` against `g.stackguard0`) when the function has one, else its
/// first instruction.
///
/// The kernel emulates a conditional branch at a uprobe, where it single-steps any other
/// instruction out of line; the single step's debug trap cost ~14 µs per hit on the VM this
/// was measured on, against ~0.7 µs for an emulated branch (see README, Go TLS overhead). The
/// arguments are still in their registers there, and the stack pointer is the entry's. When
/// the branch is taken, `morestack` grows the stack and starts the function again, through
/// the probe a second time: the program ignores the hit whose flags take the branch.
pub fn entry_point(code: &[u8], start: u64) -> (u64, bool) {
    let mut decoder = Decoder::with_ip(64, code, start, DecoderOptions::NONE);
    for instr in decoder.iter().take(4) {
        if instr.mnemonic() == Mnemonic::Jbe {
            return (instr.ip(), true);
        }
    }
    (start, false)
}

/// The file offset of virtual address `addr`, through the loadable segment holding it.
fn file_offset(file: &object::File<'_>, addr: u64) -> Option<u64> {
    file.segments().find_map(|seg| {
        let (off, size) = seg.file_range();
        let base = seg.address();
        (addr >= base && addr < base + size).then(|| off + (addr - base))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_ret() {
        // sub rsp,8; ret; mov eax,1; add rsp,8; ret; int3
        let code = [
            0x48, 0x83, 0xec, 0x08, 0xc3, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x48, 0x83, 0xc4, 0x08,
            0xc3, 0xcc,
        ];
        assert_eq!(ret_addresses(&code, 0x1000), vec![0x1004, 0x100e]);
        // A 0xc3 byte inside an immediate is no RET.
        let imm = [0xb8, 0xc3, 0xc3, 0x00, 0x00, 0xcc];
        assert!(ret_addresses(&imm, 0).is_empty());
    }

    #[test]
    fn finds_direct_calls_of_one_function() {
        // call 0x2000; call rax; call 0x3000; call 0x2000
        let code = [
            0xe8, 0xfb, 0x0f, 0x00, 0x00, 0xff, 0xd0, 0xe8, 0xf4, 0x1f, 0x00, 0x00, 0xe8, 0xef,
            0x0f, 0x00, 0x00,
        ];
        assert_eq!(call_sites(&code, 0x1000, 0x2000), vec![0x1000, 0x100c]);
        assert!(call_sites(&code, 0x1000, 0x4000).is_empty());
    }

    #[test]
    fn entry_probe_goes_on_the_stack_check_branch() {
        // The prologue of crypto/tls.(*Conn).Write in Go 1.19: lea r12,[rsp-0x68];
        // cmp r12,[r14+0x10]; jbe +0x764; sub rsp,0xe8.
        let code = [
            0x4c, 0x8d, 0x64, 0x24, 0x98, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x64, 0x07, 0x00,
            0x00, 0x48, 0x81, 0xec, 0xe8, 0x00, 0x00, 0x00,
        ];
        assert_eq!(entry_point(&code, 0x5ff060), (0x5ff069, true));
        // No stack check (NOSPLIT): the first instruction.
        let nosplit = [0x48, 0x83, 0xec, 0x08, 0xc3];
        assert_eq!(entry_point(&nosplit, 0x1000), (0x1000, false));
    }

    #[test]
    fn non_go_files_are_skipped() {
        let me = std::env::current_exe().expect("test binary path");
        assert!(matches!(inspect(&me), Ok(None)));
    }
}
