//! Builds the kernel object (`agent-ebpf`, target `bpfel-unknown-none`) with aya-build and puts it
//! in `OUT_DIR`, where `src/probes/mod.rs` embeds it. `AYA_BUILD_SKIP=1` skips it (clippy, docs).

use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "wirelens-ebpf")
        .ok_or_else(|| anyhow!("wirelens-ebpf package not found"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    if std::env::var_os("AYA_BUILD_SKIP").is_some() {
        // Keep `include_bytes!` compiling when the kernel object is not built.
        let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").context("OUT_DIR")?);
        let dst = out.join("wirelens-ebpf");
        if !dst.exists() {
            std::fs::write(&dst, []).context("write stub kernel object")?;
        }
    }
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
