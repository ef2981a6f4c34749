//! Runs each script under `bpftrace`, reads its rows, and starts it again with backoff when it
//! exits or is killed; its stderr is logged line by line.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wirelens_otel::ProcessInfo;
use wirelens_otel::export::logs::LogsSender;
use wirelens_otel::logs::{ColumnSum, RowValue, ScriptRow};
use wirelens_otel::semconv;

use super::row::{self, Line, Value};
use super::{Script, ScriptsConfig};
use crate::clock::Clock;
use crate::metadata::process::ProcessCache;
use crate::sinks::live::LiveSender;

/// A script that ran at least this long before exiting starts again after the shortest wait.
const STABLE_RUN: Duration = Duration::from_secs(60);
/// The process cache is read anew this often (pids are reused; the cache sees no exits).
const PROCESS_CACHE_LIFETIME: Duration = Duration::from_secs(30);

/// Most (script, column, process) sums kept for declared metrics; past it, rows of new
/// processes are summed under the host.
const MAX_COLUMN_SERIES: usize = 1000;

/// The source's counters, over all scripts, and the sums of declared columns.
#[derive(Debug, Default)]
pub struct ScriptCounters {
    /// Sums of the columns declared as metrics.
    pub sums: Mutex<Vec<ColumnSum>>,
    /// Rows read.
    pub rows: AtomicU64,
    /// Output lines that were not rows of their table.
    pub rows_dropped: AtomicU64,
    /// Starts after an exit.
    pub restarts: AtomicU64,
}

impl ScriptCounters {
    /// The declared columns' sums now.
    pub fn column_sums(&self) -> Vec<ColumnSum> {
        match self.sums.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Add `row`'s declared columns to their sums.
    fn add_to_sums(&self, row: &ScriptRow, declared: &[(Arc<str>, Arc<str>)]) {
        let mut sums = match self.sums.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for (table, column) in declared.iter().filter(|(t, _)| *t == row.table) {
            let Some(value) = row.columns.iter().find_map(|(name, value)| match value {
                RowValue::Int(v) if name == column => Some(*v),
                _ => None,
            }) else {
                continue;
            };
            let mut process = row.process.clone();
            let same = |e: &ColumnSum, p: &Option<Arc<ProcessInfo>>| {
                e.table == *table
                    && e.column == *column
                    && e.process.as_ref().map(|p| p.pid) == p.as_ref().map(|p| p.pid)
            };
            if !sums.iter().any(|e| same(e, &process)) && sums.len() >= MAX_COLUMN_SERIES {
                process = None;
            }
            match sums.iter_mut().find(|e| same(e, &process)) {
                Some(entry) => {
                    entry.sum = entry.sum.saturating_add(value);
                    entry.rows += 1;
                }
                None => sums.push(ColumnSum {
                    table: Arc::clone(table),
                    column: Arc::clone(column),
                    process,
                    sum: value,
                    rows: 1,
                    start_unix_nano: row.observed_unix_nano,
                }),
            }
        }
    }

    /// As the agent's own metrics.
    pub fn metrics(&self) -> Vec<(&'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            (semconv::WIRELENS_SCRIPT_ROWS, get(&self.rows)),
            (
                semconv::WIRELENS_SCRIPT_ROWS_DROPPED,
                get(&self.rows_dropped),
            ),
            (semconv::WIRELENS_SCRIPT_RESTARTS, get(&self.restarts)),
        ]
    }
}

/// Where rows go.
#[derive(Clone)]
struct Outputs {
    logs: Option<LogsSender>,
    live: Option<LiveSender>,
    processes: Arc<Mutex<(ProcessCache, Instant)>>,
    make_cache: Arc<dyn Fn() -> ProcessCache + Send + Sync>,
    counters: Arc<ScriptCounters>,
    declared: Arc<[(Arc<str>, Arc<str>)]>,
}

/// The running scripts.
pub struct Scripts {
    stop: Arc<AtomicBool>,
    children: Vec<Arc<Mutex<Option<u32>>>>,
    threads: Vec<JoinHandle<()>>,
    counters: Arc<ScriptCounters>,
}

impl Scripts {
    /// The counters, shared.
    pub fn counters(&self) -> Arc<ScriptCounters> {
        Arc::clone(&self.counters)
    }

    /// Stop every script (SIGTERM to its bpftrace) and wait for their threads.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for child in &self.children {
            let pid = match child.lock() {
                Ok(g) => *g,
                Err(p) => *p.into_inner(),
            };
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) on the pid of a child we started and have not reaped.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::warn!("a script thread panicked");
            }
        }
    }
}

/// Start one thread per script. `make_cache` builds the process cache that gives rows with a
/// `pid` column their Resource.
pub fn spawn(
    config: &ScriptsConfig,
    logs: Option<LogsSender>,
    live: Option<LiveSender>,
    make_cache: impl Fn() -> ProcessCache + Send + Sync + 'static,
) -> std::io::Result<Scripts> {
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(ScriptCounters::default());
    let make_cache: Arc<dyn Fn() -> ProcessCache + Send + Sync> = Arc::new(make_cache);
    let outputs = Outputs {
        logs,
        live,
        processes: Arc::new(Mutex::new((make_cache(), Instant::now()))),
        make_cache,
        counters: Arc::clone(&counters),
        declared: config.metrics.clone().into(),
    };
    let mut children = Vec::new();
    let mut threads = Vec::new();
    for script in &config.scripts {
        let child = Arc::new(Mutex::new(None));
        children.push(Arc::clone(&child));
        let (script, outputs, stop) = (script.clone(), outputs.clone(), Arc::clone(&stop));
        let bpftrace = config.bpftrace.clone();
        let (min, max) = (config.min_backoff, config.max_backoff);
        threads.push(
            std::thread::Builder::new()
                .name(format!("wirelens-bt-{}", script.name))
                .spawn(move || supervise(&script, &bpftrace, min, max, &outputs, &stop, &child))?,
        );
    }
    Ok(Scripts {
        stop,
        children,
        threads,
        counters,
    })
}

/// Run `script` until `stop`, starting it again after each exit.
fn supervise(
    script: &Script,
    bpftrace: &std::path::Path,
    min_backoff: Duration,
    max_backoff: Duration,
    outputs: &Outputs,
    stop: &AtomicBool,
    child_slot: &Mutex<Option<u32>>,
) {
    let name = &*script.name;
    let mut backoff = min_backoff;
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        if !first {
            outputs.counters.restarts.fetch_add(1, Ordering::Relaxed);
        }
        first = false;
        let started = Instant::now();
        let status = match start(bpftrace, script) {
            Ok(mut child) => {
                set_slot(child_slot, Some(child.id()));
                tracing::info!(script = name, pid = child.id(), origin = %script.origin, "script started");
                let status = read_until_exit(script, &mut child, outputs);
                set_slot(child_slot, None);
                status
            }
            Err(e) => format!("cannot start {}: {e}", bpftrace.display()),
        };
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if started.elapsed() >= STABLE_RUN {
            backoff = min_backoff;
        }
        tracing::warn!(
            script = name,
            "script {status}; starting it again in {backoff:?}"
        );
        let until = Instant::now() + backoff;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        backoff = (backoff * 2).min(max_backoff);
    }
}

fn set_slot(slot: &Mutex<Option<u32>>, value: Option<u32>) {
    match slot.lock() {
        Ok(mut g) => *g = value,
        Err(p) => *p.into_inner() = value,
    }
}

/// `bpftrace -f json -B none -e <rewritten script>`, dying with the agent.
fn start(bpftrace: &std::path::Path, script: &Script) -> std::io::Result<Child> {
    let mut command = Command::new(bpftrace);
    command
        .args(["-f", "json", "-B", "none", "-e"])
        .arg(&script.checked.rewritten)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Read rows until the child's stdout closes; its exit, as words.
fn read_until_exit(script: &Script, child: &mut Child, outputs: &Outputs) -> String {
    let name = Arc::clone(&script.name);
    let stderr = child.stderr.take().map(|err| {
        let name = Arc::clone(&name);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                match line {
                    Ok(line) if !line.trim().is_empty() => {
                        tracing::warn!(script = &*name, "bpftrace: {line}");
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        })
    });
    if let Some(out) = child.stdout.take() {
        let mut clock = Clock::new();
        let mut clock_read = Instant::now();
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if clock_read.elapsed() > Duration::from_secs(10) {
                clock = Clock::new();
                clock_read = Instant::now();
            }
            match row::parse(&line, &script.checked.columns) {
                Line::Row(values) => {
                    outputs.counters.rows.fetch_add(1, Ordering::Relaxed);
                    let row = to_row(script, values, clock, outputs);
                    if !outputs.declared.is_empty() {
                        outputs.counters.add_to_sums(&row, &outputs.declared);
                    }
                    if let Some(live) = &outputs.live {
                        live.send_row(&row);
                    }
                    if let Some(logs) = &outputs.logs {
                        logs.try_send(row);
                    }
                }
                Line::Attached(probes) => {
                    tracing::info!(script = &*name, probes, "script attached");
                }
                Line::Other => {}
                Line::Bad => {
                    outputs
                        .counters
                        .rows_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(script = &*name, "output line that is not a row: {line}");
                }
            }
        }
    }
    let status = match child.wait() {
        Ok(status) => match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            _ => "ended".to_owned(),
        },
        Err(e) => format!("cannot be waited for: {e}"),
    };
    if let Some(stderr) = stderr {
        let _ = stderr.join();
    }
    status
}

/// A parsed row with its timestamp and process.
fn to_row(script: &Script, values: Vec<Value>, clock: Clock, outputs: &Outputs) -> ScriptRow {
    let now = wall_now_ns();
    let checked = &script.checked;
    let time = checked
        .time_column()
        .and_then(|i| match values.get(i) {
            Some(Value::Int(ns)) => u64::try_from(*ns).ok().map(|ns| clock.to_unix(ns)),
            _ => None,
        })
        .unwrap_or(now);
    let pid = checked.pid_column().and_then(|i| match values.get(i) {
        Some(Value::Int(pid)) => u32::try_from(*pid).ok().filter(|&p| p > 0),
        _ => None,
    });
    let comm = checked
        .columns
        .iter()
        .position(|c| c.name == "comm")
        .and_then(|i| match values.get(i) {
            Some(Value::Text(c)) => Some(c.clone()),
            _ => None,
        });
    let process = pid.map(|pid| {
        let mut comm_bytes = [0u8; 16];
        if let Some(c) = &comm {
            let n = c.len().min(15);
            comm_bytes[..n].copy_from_slice(&c.as_bytes()[..n]);
        }
        let mut guard = match outputs.processes.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if guard.1.elapsed() > PROCESS_CACHE_LIFETIME {
            *guard = ((outputs.make_cache)(), Instant::now());
        }
        guard.0.get(pid, &comm_bytes)
    });
    let columns = checked
        .columns
        .iter()
        .zip(values)
        .map(|(column, value)| {
            let value = match value {
                Value::Int(v) => RowValue::Int(v),
                Value::Text(v) => RowValue::Text(v),
            };
            (Arc::from(column.name.as_str()), value)
        })
        .collect();
    ScriptRow {
        table: Arc::clone(&script.name),
        time_unix_nano: time,
        observed_unix_nano: now,
        columns,
        process,
    }
}

fn wall_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
