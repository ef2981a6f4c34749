//! `wirelens profile`: sample for a while, then write gzipped pprof and optionally an SVG
//! flame graph, and print what was sampled and lost.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use clap::Args;

use super::{
    Collector, PROFILE_FREQUENCY, flamegraph, pprof,
    sampler::{SamplerConfig, UnwindMode},
};

/// Arguments of `wirelens profile`.
#[derive(Debug, Clone, Args)]
pub struct ProfileArgs {
    /// Profile only this process id (repeatable).
    #[arg(long = "pid", value_name = "PID", value_delimiter = ',')]
    pub pids: Vec<u32>,
    /// Profile only threads with this command name (repeatable; the kernel's 15-byte `comm`).
    #[arg(long = "comm", value_name = "NAME", value_delimiter = ',')]
    pub comms: Vec<String>,
    /// How long to sample (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Samples per second per CPU.
    #[arg(long, default_value_t = PROFILE_FREQUENCY)]
    pub frequency: u64,
    /// How user stacks are taken: dwarf (from .eh_frame, no frame pointers needed) or fp.
    #[arg(long, value_enum, default_value = "dwarf")]
    pub unwind: UnwindMode,
    /// Gzipped pprof output.
    #[arg(
        short = 'o',
        long = "out",
        value_name = "FILE",
        default_value = "cpu.pb.gz"
    )]
    pub out: PathBuf,
    /// Also write an SVG flame graph here.
    #[arg(long, value_name = "FILE")]
    pub flamegraph: Option<PathBuf>,
    /// Also write the folded stacks (one `a;b;c count` line per stack) here.
    #[arg(long, value_name = "FILE")]
    pub folded: Option<PathBuf>,
}

impl ProfileArgs {
    fn check(&self) -> anyhow::Result<()> {
        if self.frequency == 0 || self.frequency > 10_000 {
            anyhow::bail!(
                "--frequency must be between 1 and 10000 Hz, got {}",
                self.frequency
            );
        }
        for comm in &self.comms {
            if comm.is_empty() || comm.len() > 15 {
                anyhow::bail!(
                    "--comm {comm:?}: a command name has 1 to 15 bytes (the kernel's comm)"
                );
            }
        }
        Ok(())
    }
}

/// Run `wirelens profile` (root and the instance lock are already checked).
pub fn run(args: &ProfileArgs) -> anyhow::Result<()> {
    args.check()?;
    let config = SamplerConfig {
        frequency: args.frequency,
        unwind: args.unwind,
        pids: args.pids.clone(),
        comms: args.comms.clone(),
        ring_size: 8 << 20,
    };
    let mut collector = Collector::start(&config)?;
    let stop = Arc::new(AtomicBool::new(false));
    let _ = STOP.set(stop.clone());
    for signal in [libc::SIGINT, libc::SIGTERM] {
        register(signal)?;
    }
    tracing::info!(
        cpus = collector.cpus(),
        frequency = args.frequency,
        duration = %humantime::format_duration(args.duration),
        unwind = ?args.unwind,
        "profiling"
    );
    let profile = collector.run_for(args.duration, &|| stop.load(Ordering::Relaxed));
    let bytes = pprof::to_gzip(&profile).context("cannot encode the profile")?;
    std::fs::write(&args.out, bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    if let Some(path) = &args.flamegraph {
        let svg = flamegraph::svg(&profile, "wirelens CPU profile")?;
        std::fs::write(path, svg).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.folded {
        let mut text = flamegraph::folded(&profile).join("\n");
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let s = &collector.stats;
    let (resolved, unresolved) = collector.symbol_counts();
    let k = &s.kernel;
    let c = collector.caches();
    eprintln!(
        "wirelens profile: {} samples of {} processes in {:.1}s written to {}\n  \
         kernel: {} taken, {} idle, {} filtered, {} ring full, {} stack unreadable, {} count map full, {} stacks lost\n  \
         user: {} unwound ({} incomplete), {} counted in the kernel, {} bad records, {} stacks gone\n  \
         symbols: {resolved} resolved, {unresolved} kept module+offset\n  \
         caches: {} processes evicted on exit or exec; held at the end: symbols of {} processes \
         ({} files), unwinders of {} processes ({} images)",
        profile.samples(),
        profile.processes.len(),
        profile.duration.as_secs_f64(),
        args.out.display(),
        k[0],
        k[1],
        k[2],
        k[3],
        k[4],
        k[5],
        k[6],
        s.unwound,
        s.unwind_incomplete,
        s.kernel_counted,
        s.bad_records,
        s.stack_missing,
        c.evicted,
        c.symbol_processes,
        c.symbol_files,
        c.unwind_processes,
        c.unwind_images,
    );
    Ok(())
}

static STOP: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

extern "C" fn on_signal(_: i32) {
    if let Some(stop) = STOP.get() {
        stop.store(true, Ordering::Relaxed);
    }
}

/// Route `signal` to [`STOP`]: Ctrl-C ends the sampling early and still writes the profile.
fn register(signal: i32) -> anyhow::Result<()> {
    // SAFETY: `on_signal` is async-signal-safe (an atomic store).
    let prev = unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    if prev == libc::SIG_ERR {
        anyhow::bail!("cannot install the handler of signal {signal}");
    }
    Ok(())
}
