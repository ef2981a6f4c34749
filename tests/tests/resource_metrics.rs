//! Resource metrics end to end: a Python child burns a known amount of CPU, keeps a known
//! amount of memory and writes (and syncs) a known number of bytes, then idles; the agent's
//! `process.*` metrics for it match what `/proc/<pid>` (read here) and the child's own
//! `getrusage` say, within 10%. A podman container that writes, burns CPU under a CPU quota
//! and idles gets `container.*` figures equal (within 10%) to its cgroup files, read here.
//!
//! Run one at a time (`-- --test-threads=1`): needs root, podman, runc and busybox-static
//! (`scripts/setup.sh --tests`) and Node.js for the registry check.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use wirelens_tests::{
    Agent, Container, MetricPoint, Otlp, Receiver, Rootfs, check_semconv, wait_until,
};

const MIB: f64 = 1024.0 * 1024.0;
/// What the child allocates and touches.
const ALLOCATED_MIB: u64 = 128;
/// What the child writes and syncs.
const WRITTEN_MIB: u64 = 32;

const CHILD: &str = r#"
import os, resource, sys
def usage():
    return resource.getrusage(resource.RUSAGE_SELF)
start = usage().ru_utime
x = 0
while usage().ru_utime - start < float(sys.argv[2]):
    for i in range(20000):
        x += i
block = bytearray(b"\x01") * (int(sys.argv[3]) << 20)
chunk = b"\x02" * (1 << 20)
with open(os.path.join(sys.argv[1], "out.bin"), "wb") as f:
    for _ in range(int(sys.argv[4])):
        f.write(chunk)
    f.flush()
    os.fsync(f.fileno())
r = usage()
print("ready", os.getpid(), r.ru_utime, r.ru_stime, r.ru_minflt, r.ru_majflt, r.ru_oublock,
      r.ru_nvcsw, r.ru_nivcsw, flush=True)
sys.stdin.readline()
"#;

/// The child's own `getrusage(RUSAGE_SELF)` once it is done working.
#[derive(Debug)]
struct Rusage {
    utime: f64,
    stime: f64,
    minflt: f64,
    oublock: f64,
    nvcsw: f64,
}

struct Burner {
    child: Child,
    _stdin: ChildStdin,
    pid: u32,
    rusage: Rusage,
    _dir: tempfile::TempDir,
}

impl Burner {
    fn start() -> Self {
        // Under the target directory: a disk-backed file system (a tmpfs counts no disk I/O).
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let script = dir.path().join("burn.py");
        std::fs::write(&script, CHILD).expect("write script");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(dir.path())
            .arg("1.0")
            .arg(ALLOCATED_MIB.to_string())
            .arg(WRITTEN_MIB.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the child's line");
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.first(), Some(&"ready"), "child said {line:?}");
        let num = |i: usize| -> f64 { fields[i].parse().expect("a number") };
        let pid = fields[1].parse().expect("pid");
        assert_eq!(pid, child.id());
        Self {
            rusage: Rusage {
                utime: num(2),
                stime: num(3),
                minflt: num(4),
                oublock: num(6),
                nvcsw: num(7),
            },
            child,
            _stdin: stdin,
            pid,
            _dir: dir,
        }
    }
}

impl Drop for Burner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
}

/// The points of `name` whose Resource has `key` = `value`.
fn under<'a>(
    points: &'a [MetricPoint],
    name: &str,
    key: &str,
    value: &str,
) -> Vec<&'a MetricPoint> {
    points
        .iter()
        .filter(|p| p.name == name)
        .filter(|p| {
            p.resource.get(key).map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }) == Some(value.to_owned())
        })
        .collect()
}

/// The value of the latest export of `name` (with data-point attribute `attr` = `attr_value`
/// when given) under the Resource `key` = `value`, if exported after `after_ns`.
fn latest(
    points: &[MetricPoint],
    name: &str,
    (key, value): (&str, &str),
    attr: Option<(&str, &str)>,
    after_ns: u64,
) -> Option<f64> {
    let of = under(points, name, key, value);
    let time = of.iter().map(|p| p.time_ns).max()?;
    if time <= after_ns {
        return None;
    }
    of.iter()
        .filter(|p| p.time_ns == time)
        .find(|p| attr.is_none_or(|(k, v)| p.attr_str(k) == Some(v)))
        .and_then(|p| p.value)
}

#[track_caller]
fn within(what: &str, got: f64, want: f64, tolerance: f64) {
    let allowed = (want.abs() * 0.10).max(tolerance);
    assert!(
        (got - want).abs() <= allowed,
        "{what}: exported {got}, expected {want} (±{allowed})"
    );
}

/// `/proc/<pid>/stat` fields after the command name (field 3 is index 0).
fn proc_stat(pid: u32) -> Vec<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    let after = text.rsplit_once(')').expect("stat has a comm").1;
    after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect()
}

/// A `key value` (or `key: value`) line of a /proc or cgroup file.
fn field(text: &str, key: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once([' ', ':'])?;
        (k == key).then(|| v.split_whitespace().next()?.parse().ok())?
    })
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

fn metrics_env(receiver: &Receiver) -> Vec<(String, String)> {
    let mut env = receiver.env(Otlp::Grpc);
    env.push(("OTEL_METRIC_EXPORT_INTERVAL".into(), "1000".into()));
    // The harness turns them off for every other test.
    env.push(("WIRELENS_RESOURCE_METRICS".into(), "true".into()));
    env
}

#[test]
fn a_process_gets_figures_matching_proc_and_getrusage() {
    let burner = Burner::start();
    let pid = burner.pid;
    let done_at = now_ns();
    let receiver = Receiver::start();
    let env = metrics_env(&receiver);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let prometheus = format!("127.0.0.1:{}", wirelens_tests::free_port());
    let pid_arg = pid.to_string();
    let agent = Agent::start(
        &[
            "--output",
            "none",
            "--pid",
            &pid_arg,
            "--prometheus-listen",
            &prometheus,
        ],
        &env,
    );
    let res = ("process.pid", pid_arg.as_str());
    // Two exports after the child went idle: the second has a utilization over an idle
    // interval.
    wait_until(
        "two process.cpu.time exports of the idle child",
        Duration::from_secs(30),
        || {
            let points = receiver.metrics();
            let times: std::collections::BTreeSet<u64> =
                under(&points, "process.cpu.time", res.0, res.1)
                    .iter()
                    .map(|p| p.time_ns)
                    .filter(|&t| t > done_at)
                    .collect();
            (times.len() >= 2).then_some(())
        },
    );
    let (status, body) =
        wirelens_tests::http_get(&prometheus, "/metrics").expect("scrape /metrics");
    // What /proc says now: the child idles, so its figures no longer move.
    let stat = proc_stat(pid);
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("read io");
    let status_file = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count() as f64;
    let points = receiver.metrics();
    let requests = receiver.requests();
    let value = |name: &str, attr: Option<(&str, &str)>| {
        latest(&points, name, res, attr, done_at).unwrap_or_else(|| panic!("no {name} {attr:?}"))
    };

    let ticks = clock_ticks();
    let rusage = &burner.rusage;
    eprintln!("getrusage: {rusage:?}");
    let user = value("process.cpu.time", Some(("cpu.mode", "user")));
    let system = value("process.cpu.time", Some(("cpu.mode", "system")));
    // /proc and getrusage count in clock ticks: one tick of slack on small figures.
    let tick = 1.5 / ticks;
    within("user CPU vs getrusage", user, rusage.utime, tick);
    within(
        "user CPU vs /proc stat",
        user,
        stat[11] as f64 / ticks,
        tick,
    );
    within("system CPU vs getrusage", system, rusage.stime, tick);
    within(
        "system CPU vs /proc stat",
        system,
        stat[12] as f64 / ticks,
        tick,
    );
    assert!(user >= 1.0, "burned at least 1 s of user CPU: {user}");

    let rss = value("process.memory.usage", None);
    let vm_rss = field(&status_file, "VmRSS").expect("VmRSS") * 1024.0;
    within("resident memory vs /proc status", rss, vm_rss, 0.0);
    assert!(
        rss / MIB >= ALLOCATED_MIB as f64,
        "{} MiB resident, {ALLOCATED_MIB} MiB allocated",
        rss / MIB
    );
    within(
        "virtual memory vs /proc stat",
        value("process.memory.virtual", None),
        stat[20] as f64,
        0.0,
    );

    let written = value("process.disk.io", Some(("disk.io.direction", "write")));
    within(
        "bytes written vs /proc io",
        written,
        field(&io, "write_bytes").expect("write_bytes"),
        0.0,
    );
    within(
        "bytes written vs getrusage",
        written,
        rusage.oublock * 512.0,
        0.0,
    );
    assert!(
        written / MIB >= WRITTEN_MIB as f64,
        "{} MiB written",
        written / MIB
    );
    value("process.disk.io", Some(("disk.io.direction", "read")));

    let minor = value(
        "process.paging.faults",
        Some(("system.paging.fault.type", "minor")),
    );
    within("minor faults vs getrusage", minor, rusage.minflt, 50.0);
    within("minor faults vs /proc stat", minor, stat[7] as f64, 0.0);
    within(
        "major faults vs /proc stat",
        value(
            "process.paging.faults",
            Some(("system.paging.fault.type", "major")),
        ),
        stat[9] as f64,
        0.0,
    );
    within(
        "threads vs /proc stat",
        value("process.thread.count", None),
        stat[17] as f64,
        0.0,
    );
    within(
        "file descriptors vs /proc fd",
        value("process.unix.file_descriptor.count", None),
        fds,
        0.0,
    );
    let voluntary = value(
        "process.context_switches",
        Some(("process.context_switch.type", "voluntary")),
    );
    within(
        "voluntary switches vs getrusage",
        voluntary,
        rusage.nvcsw,
        3.0,
    );
    within(
        "voluntary switches vs /proc status",
        voluntary,
        field(&status_file, "voluntary_ctxt_switches").expect("switches"),
        0.0,
    );
    for mode in ["user", "system"] {
        let share = value("process.cpu.utilization", Some(("cpu.mode", mode)));
        assert!(
            (0.0..0.1).contains(&share),
            "an idle child's {mode} utilization: {share}"
        );
    }

    // Units and instruments, and the Resource.
    let sample = under(&points, "process.cpu.time", res.0, res.1)[0];
    assert_eq!((sample.unit.as_str(), sample.monotonic), ("s", true));
    assert!(sample.start_ns > 0 && sample.start_ns < done_at);
    assert!(
        sample
            .res_str("process.executable.name")
            .is_some_and(|n| n.starts_with("python3"))
    );
    let rss_point = under(&points, "process.memory.usage", res.0, res.1)[0];
    assert_eq!(
        (rss_point.unit.as_str(), rss_point.monotonic),
        ("By", false)
    );
    // Only the process the filter selects.
    let others: Vec<_> = points
        .iter()
        .filter(|p| p.name.starts_with("process."))
        .filter_map(|p| p.resource.get("process.pid"))
        .filter(|v| v.to_string().trim_matches('"') != pid_arg)
        .collect();
    assert!(others.is_empty(), "other processes exported: {others:?}");

    assert_eq!(status, 200);
    let pid_label = format!("/{pid}\"");
    assert!(
        body.lines()
            .any(|l| l.starts_with("process_cpu_time_seconds_total") && l.contains(&pid_label)),
        "no process_cpu_time series for {pid} in:\n{body}"
    );
    check_semconv(&requests, "process.cpu.time");

    // Once the child is gone, its series are too: a later export has none.
    drop(burner);
    let before = receiver.requests().len();
    wait_until(
        "an export without the exited child",
        Duration::from_secs(30),
        || {
            let requests = receiver.requests();
            let later: Vec<&serde_json::Value> = requests
                .iter()
                .skip(before)
                .filter(|r| r["signal"] == "metrics")
                .collect();
            let last = later.last()?;
            (later.len() >= 2 && !last.to_string().contains("process.cpu.time")).then_some(())
        },
    );
    agent.stop().assert_success();
}

/// The container's cgroup directory under `hierarchy` (`unified` for v2), from
/// `/proc/<pid>/cgroup`, the way `podman` and the kernel lay them out.
fn cgroup_dir(pid: u32, controller: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let hybrid = Path::new("/sys/fs/cgroup/unified").exists();
    text.lines().find_map(|line| {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        let base = match (controller, hybrid) {
            ("unified", true) => "/sys/fs/cgroup/unified".to_owned(),
            ("unified", false) => "/sys/fs/cgroup".to_owned(),
            (c, _) => format!("/sys/fs/cgroup/{c}"),
        };
        let wanted = if controller == "unified" {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == controller)
        };
        wanted.then(|| PathBuf::from(format!("{base}{path}")))
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn a_container_gets_its_cgroup_figures() {
    const IMAGE: &str = "localhost/wirelens-itest-resources:1.0";
    const NAME: &str = "wl-itest-resources";
    Rootfs::new().import(IMAGE);
    let receiver = Receiver::start();
    let env = metrics_env(&receiver);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let agent = Agent::start(&["--output", "none", "--container", NAME], &env);
    // Write and sync 16 MiB, burn CPU under a quota of a tenth of a CPU, then idle.
    let script = "/bin/busybox dd if=/dev/zero of=/tmp/out.bin bs=1M count=16 conv=fsync \
                  2>/dev/null; i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; \
                  echo done > /tmp/done; exec /bin/busybox sleep 600";
    let container = Container::run(NAME, &["--cpus", "0.1"], IMAGE, &["/bin/sh", "-c", script]);
    let marker = format!("/proc/{}/root/tmp/done", container.pid);
    wait_until("the container's work done", Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_millis(100));
        Path::new(&marker).exists().then_some(())
    });
    let done_at = now_ns();
    let res = ("container.id", container.id.as_str());
    wait_until(
        "a container.cpu.time export after the work",
        Duration::from_secs(30),
        || {
            latest(
                &receiver.metrics(),
                "container.cpu.time",
                res,
                None,
                done_at + 500_000_000,
            )
        },
    );
    let points = receiver.metrics();
    let requests = receiver.requests();
    let value = |name: &str, attr: Option<(&str, &str)>| {
        latest(&points, name, res, attr, done_at).unwrap_or_else(|| panic!("no {name} {attr:?}"))
    };

    // The cgroup files now (the container idles).
    let pid = container.pid;
    let unified = cgroup_dir(pid, "unified").expect("a cgroup v2 path");
    let cpu_stat = read(&unified.join("cpu.stat"));
    within(
        "user CPU vs cpu.stat",
        value("container.cpu.time", Some(("cpu.mode", "user"))),
        field(&cpu_stat, "user_usec").expect("user_usec") / 1e6,
        0.02,
    );
    within(
        "system CPU vs cpu.stat",
        value("container.cpu.time", Some(("cpu.mode", "system"))),
        field(&cpu_stat, "system_usec").expect("system_usec") / 1e6,
        0.02,
    );
    let (memory, memory_stat, blkio, cpu_v1) = match cgroup_dir(pid, "memory") {
        Some(dir) => (
            read(&dir.join("memory.usage_in_bytes")),
            read(&dir.join("memory.stat")),
            read(
                &cgroup_dir(pid, "blkio")
                    .expect("blkio")
                    .join("blkio.throttle.io_service_bytes_recursive"),
            ),
            Some(read(&cgroup_dir(pid, "cpu").expect("cpu").join("cpu.stat"))),
        ),
        None => (
            read(&unified.join("memory.current")),
            read(&unified.join("memory.stat")),
            read(&unified.join("io.stat")),
            None,
        ),
    };
    within(
        "memory vs the cgroup's usage",
        value("container.memory.usage", None),
        memory.trim().parse().expect("bytes"),
        0.0,
    );
    let written: f64 = blkio
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [_, "Write", n] => n.parse::<f64>().ok(),
                _ => l
                    .split_whitespace()
                    .find_map(|x| x.strip_prefix("wbytes="))
                    .and_then(|n| n.parse().ok()),
            }
        })
        .sum();
    // The cgroup's own count: on a hybrid host, v1 blkio's throttle statistics (the only
    // byte counts v1 keeps without a proportional-weight scheduler) may stay at 0.
    let exported = value("container.disk.io", Some(("disk.io.direction", "write")));
    within("bytes written vs the cgroup's", exported, written, 0.0);
    let faults_key = if memory_stat.contains("total_pgfault") {
        ("total_pgfault", "total_pgmajfault")
    } else {
        ("pgfault", "pgmajfault")
    };
    let all = field(&memory_stat, faults_key.0).expect("pgfault");
    let major = field(&memory_stat, faults_key.1).expect("pgmajfault");
    within(
        "minor faults vs memory.stat",
        value(
            "container.paging.faults",
            Some(("system.paging.fault.type", "minor")),
        ),
        all - major,
        20.0,
    );
    // The quota (10 ms per 100 ms period) throttled the busy loop.
    let throttled = value("wirelens.container.cpu.throttled.periods", None);
    let cpu_throttle = cpu_v1.as_deref().unwrap_or(&cpu_stat);
    within(
        "throttled periods vs cpu.stat",
        throttled,
        field(cpu_throttle, "nr_throttled").expect("nr_throttled"),
        1.0,
    );
    assert!(throttled > 0.0, "a busy loop under --cpus 0.5 is throttled");
    within(
        "periods vs cpu.stat",
        value("wirelens.container.cpu.periods", None),
        field(cpu_throttle, "nr_periods").expect("nr_periods"),
        1.0,
    );

    // The container's Resource names it; its processes have their own, with container.id.
    let sample = under(&points, "container.cpu.time", res.0, res.1)[0];
    assert_eq!(sample.res_str("container.name"), Some(NAME));
    assert_eq!(sample.res_str("container.runtime.name"), Some("podman"));
    assert!(!sample.resource.contains_key("process.pid"));
    let processes = under(&points, "process.cpu.time", res.0, res.1);
    assert!(
        processes
            .iter()
            .any(|p| p.resource.get("process.pid").and_then(|v| v.as_i64())
                == Some(i64::from(container.pid))),
        "the container's first process has process.* metrics"
    );
    assert!(
        points
            .iter()
            .filter(|p| p.name.starts_with("process."))
            .all(|p| p.res_str("container.id") == Some(container.id.as_str())),
        "--container selects the container's processes only"
    );
    check_semconv(&requests, "container.cpu.time");
    drop(container);
    agent.stop().assert_success();
}
