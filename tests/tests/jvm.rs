//! JVM metrics from hsperfdata: a real Java program (Debian's OpenJDK 17) keeps 64 MiB more
//! heap reachable when told to, and the agent's `jvm.memory.used` follows it, under the
//! Resource of the java process; its `jvm.cpu.time` matches the process's CPU time in `/proc`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use wirelens_tests::{Agent, MetricPoint, Otlp, Receiver, check_semconv, wait_until};

const MIB: f64 = 1024.0 * 1024.0;

/// `tests/java/HeapGrow.java` compiled into a temporary directory and running.
struct Java {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
    pid: u32,
    _dir: tempfile::TempDir,
}

impl Java {
    fn start() -> Self {
        Self::start_under(&[])
    }

    /// Runs `java` under `wrapper` (e.g. `unshare ...`), whose last process is the JVM.
    fn start_under(wrapper: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("java/HeapGrow.java");
        let javac = Command::new("javac")
            .arg("-d")
            .arg(dir.path())
            .arg(&source)
            .status()
            .expect("run javac (openjdk-17-jdk-headless)");
        assert!(javac.success(), "javac failed");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg("java");
                c
            }
            None => Command::new("java"),
        };
        let mut child = command
            .args(["-Xmx512m", "-cp"])
            .arg(dir.path())
            .arg("HeapGrow")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run java");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read java's first line");
        let pid = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("java said {line:?}"));
        if wrapper.is_empty() {
            assert_eq!(pid, child.id());
        }
        Self {
            child,
            stdin,
            stdout,
            pid,
            _dir: dir,
        }
    }

    /// Keep 64 MiB more reachable; returns when the program says it has.
    fn grow(&mut self) {
        writeln!(self.stdin).expect("write to java");
        self.stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read java");
        assert!(line.starts_with("grown "), "java said {line:?}");
    }
}

impl Java {
    /// Spin for 0.6 s of CPU time; returns the process's CPU time as the JVM reports it
    /// (`OperatingSystemMXBean.getProcessCpuTime`), in seconds.
    fn burn(&mut self) -> f64 {
        writeln!(self.stdin, "burn").expect("write to java");
        self.stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read java");
        line.strip_prefix("burnt ")
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .map(|ns| ns / 1e9)
            .unwrap_or_else(|| panic!("java said {line:?}"))
    }
}

impl Drop for Java {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The points of `name` under the Resource of `pid`.
fn of_pid(points: &[MetricPoint], name: &str, pid: u32) -> Vec<MetricPoint> {
    points
        .iter()
        .filter(|p| p.name == name)
        .filter(|p| p.resource.get("process.pid").and_then(|v| v.as_i64()) == Some(i64::from(pid)))
        .cloned()
        .collect()
}

/// Heap used (summed over heap pools) of the latest export that has it, and that export's time.
fn latest_heap_used(points: &[MetricPoint], pid: u32) -> Option<(u64, f64)> {
    let used = of_pid(points, "jvm.memory.used", pid);
    let time = used.iter().map(|p| p.time_ns).max()?;
    let heap = used
        .iter()
        .filter(|p| p.time_ns == time && p.attr_str("jvm.memory.type") == Some("heap"))
        .filter_map(|p| p.value)
        .sum();
    Some((time, heap))
}

fn latest_sum(points: &[MetricPoint], name: &str, pid: u32) -> f64 {
    let of = of_pid(points, name, pid);
    let time = of.iter().map(|p| p.time_ns).max().unwrap_or(0);
    of.iter()
        .filter(|p| p.time_ns == time)
        .filter_map(|p| p.value)
        .sum()
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
}

/// User + system CPU time of `pid` from `/proc/<pid>/stat`, in seconds.
fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the JVM's stat");
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .expect("stat after the command")
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the file, 11 and 12 after the command name.
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

#[test]
fn heap_growth_shows_in_jvm_memory_used() {
    let receiver = Receiver::start();
    let mut env = receiver.env(Otlp::Grpc);
    env.push(("OTEL_METRIC_EXPORT_INTERVAL".into(), "1000".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut java = Java::start();
    let prometheus = format!("127.0.0.1:{}", wirelens_tests::free_port());
    let agent = Agent::start(
        &[
            "--output",
            "none",
            "--port",
            "1",
            "--prometheus-listen",
            &prometheus,
        ],
        &env,
    );
    let pid = java.pid;

    let (before_time, before) = wait_until(
        "a first jvm.memory.used export",
        Duration::from_secs(30),
        || latest_heap_used(&receiver.metrics(), pid),
    );
    java.grow();
    let grown_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    let after = wait_until(
        "a jvm.memory.used export after the growth",
        Duration::from_secs(30),
        || {
            latest_heap_used(&receiver.metrics(), pid)
                .filter(|&(time, _)| time > grown_at && time > before_time)
                .map(|(_, heap)| heap)
        },
    );
    // jvm.cpu.time: the JVM spins for 0.6 s of CPU time, then waits for its next line (idle); its CPU
    // time in /proc read before and after an export made in between, and as it reports it.
    let by_jvm = java.burn();
    let cpu_before = proc_cpu_seconds(pid);
    let asked_at = now_ns();
    let cpu = wait_until("a jvm.cpu.time export", Duration::from_secs(30), || {
        of_pid(&receiver.metrics(), "jvm.cpu.time", pid)
            .into_iter()
            .filter(|p| p.time_ns > asked_at)
            .max_by_key(|p| p.time_ns)
    });
    let cpu_after = proc_cpu_seconds(pid);
    let points = receiver.metrics();
    let requests = receiver.requests();
    // The Prometheus endpoint serves the same JVM series.
    let (status, body) =
        wirelens_tests::http_get(&prometheus, "/metrics").expect("scrape /metrics");
    agent.stop().assert_success();
    assert_eq!(status, 200);
    let pid_label = format!("/{pid}\"");
    assert!(
        body.lines()
            .any(|l| l.starts_with("jvm_memory_used") && l.contains(&pid_label)),
        "no jvm_memory_used series for {pid} in:\n{body}"
    );

    let grew = (after - before) / MIB;
    eprintln!("jvm heap used: {before} -> {after} bytes ({grew:.1} MiB)");
    assert!(
        grew >= 64.0,
        "heap used grew by {grew:.1} MiB ({before} -> {after} bytes), expected at least 64"
    );

    let cpu_time = cpu.value.expect("a value");
    eprintln!(
        "jvm.cpu.time {cpu_time} s; /proc: {cpu_before} s before, {cpu_after} s after; \
         the JVM says {by_jvm} s"
    );
    assert!(cpu_before >= 0.5, "the JVM has spun ({cpu_before} s)");
    assert!(
        cpu_time >= cpu_before * 0.9 && cpu_time <= cpu_after * 1.1,
        "jvm.cpu.time {cpu_time} s, /proc {cpu_before}..{cpu_after} s"
    );
    assert!(
        (cpu_time - by_jvm).abs() <= by_jvm * 0.1,
        "jvm.cpu.time {cpu_time} s, the JVM's own {by_jvm} s"
    );
    assert_eq!((cpu.kind.as_str(), cpu.unit.as_str()), ("sum", "s"));
    assert!(cpu.monotonic);
    assert!(cpu.attributes.is_empty(), "{:?}", cpu.attributes);

    let used = of_pid(&points, "jvm.memory.used", pid);
    let sample = used.last().expect("points");
    assert_eq!(sample.kind, "sum");
    assert_eq!(sample.unit, "By");
    assert!(!sample.monotonic);
    assert_eq!(sample.res_str("process.executable.name"), Some("java"));
    assert!(
        used.iter()
            .any(|p| p.attr_str("jvm.memory.pool.name") == Some("Metaspace")
                && p.attr_str("jvm.memory.type") == Some("non_heap")),
        "a Metaspace pool"
    );
    assert!(!of_pid(&points, "jvm.memory.committed", pid).is_empty());
    assert!(!of_pid(&points, "jvm.memory.limit", pid).is_empty());
    assert!(
        latest_sum(&points, "jvm.thread.count", pid) > 0.0,
        "threads"
    );
    assert!(
        latest_sum(&points, "jvm.class.loaded", pid) > 0.0,
        "classes loaded"
    );
    assert!(
        latest_sum(&points, "jvm.class.count", pid) > 0.0,
        "class count"
    );
    let gc = of_pid(&points, "wirelens.jvm.gc.count", pid);
    assert!(
        gc.iter()
            .all(|p| p.monotonic && p.attr_str("jvm.gc.name").is_some())
    );
    assert!(!gc.is_empty(), "GC counts per collector");
    check_semconv(&requests, "jvm.memory.used");
}

/// A JVM in its own pid namespace (pid 1 there, so its file is `hsperfdata_root/1`) is found
/// by its `NSpid` and reported under its host pid.
#[test]
fn jvm_in_a_pid_namespace_is_reported_under_its_host_pid() {
    let receiver = Receiver::start();
    let mut env = receiver.env(Otlp::Grpc);
    env.push(("OTEL_METRIC_EXPORT_INTERVAL".into(), "1000".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let java = Java::start_under(&["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"]);
    assert_eq!(java.pid, 1, "java sees itself as pid 1");
    let unshare = java.child.id();
    let children = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
        .expect("unshare's children");
    let host_pid: u32 = children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unshare has no child: {children:?}"));
    let agent = Agent::start(&["--output", "none", "--port", "1"], &env);
    let (_, heap) = wait_until(
        "jvm.memory.used under the host pid",
        Duration::from_secs(30),
        || latest_heap_used(&receiver.metrics(), host_pid),
    );
    let points = receiver.metrics();
    agent.stop().assert_success();
    assert!(heap >= 0.0);
    let used = of_pid(&points, "jvm.memory.used", host_pid);
    assert_eq!(used[0].res_str("process.executable.name"), Some("java"));
    assert!(
        of_pid(&points, "jvm.memory.used", 1).is_empty(),
        "nothing under the namespace's pid"
    );
    assert!(latest_sum(&points, "jvm.thread.count", host_pid) > 0.0);
}
