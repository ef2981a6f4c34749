//! A panic anywhere ends the agent: logged with the thread it hit and where, then the process
//! exits with status 70, so a supervisor (systemd, the kubelet) restarts a whole agent instead
//! of leaving one that reads nothing. The kernel frees the agent's BPF programs, links, maps
//! and perf-event uprobes with its file descriptors, so nothing is left attached.

/// Exit status after a panic (`EX_SOFTWARE`).
pub const PANIC_EXIT_STATUS: i32 = 70;

/// Environment variable that makes a thread panic once the agent is ready (fault injection
/// for the tests: `tests/tests/crash.rs`).
const INJECT_ENV: &str = "WIRELENS_INJECT_PANIC";

/// Installs the hook: every panic, on any thread, is logged and ends the process.
pub fn install() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        tracing::error!(
            thread = name,
            "panic: {info}; wirelens stops (exit status {PANIC_EXIT_STATUS}) rather than run half-working"
        );
        default(info);
        std::process::exit(PANIC_EXIT_STATUS);
    }));
}

/// With `WIRELENS_INJECT_PANIC=1`, a thread named `wirelens-injected-fault` panics 100 ms from
/// now.
pub fn inject_if_asked() {
    if std::env::var(INJECT_ENV).is_ok_and(|v| v == "1") {
        let spawned = std::thread::Builder::new()
            .name("wirelens-injected-fault".into())
            .spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(100));
                panic!("injected fault ({INJECT_ENV}=1)");
            });
        if let Err(err) = spawned {
            tracing::warn!("cannot start the fault injection thread: {err}");
        }
    }
}
