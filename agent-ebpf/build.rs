//! Rebuild the kernel object when the `bpf-linker` binary changes.

fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
