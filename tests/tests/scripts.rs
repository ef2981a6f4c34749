//! bpftrace scripts as data sources (`--script`): the real bpftrace runs two scripts written for
//! this test and three shipped ones in one agent; each row arrives at the independent receiver
//! as an OTLP log record with exactly the columns expected, under the Resource of its `pid`
//! column. A script killed with SIGKILL is started again and counted
//! (`wirelens.script.restarts`), and each rule a script can break refuses it with its message.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wirelens_tests::{Agent, LogRecord, Otlp, Receiver, send_signal, sum_total, tail, wait_until};

/// Time for bpftrace to compile and attach every script (they start together).
const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);
/// Time for a row to reach the receiver.
const ROW_TIMEOUT: Duration = Duration::from_secs(15);

fn test_script(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("bpftrace")
        .join(name)
        .display()
        .to_string()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

/// A Python process whose thread is named `comm`; it runs `action` each time it is told to.
struct Helper {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pid: u32,
}

impl Helper {
    fn start(comm: &str, action: &str) -> Self {
        let program = format!(
            "import ctypes, os, sys, time\n\
             ctypes.CDLL(None).prctl(15, {comm:?}.encode(), 0, 0, 0)\n\
             print(os.getpid(), flush=True)\n\
             while sys.stdin.readline():\n    {action}\n    print('done', flush=True)\n"
        );
        let mut child = Command::new("/usr/bin/python3")
            .args(["-c", &program])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the helper's pid");
        let pid = line.trim().parse().expect("the helper's pid");
        Self {
            child,
            stdin,
            stdout,
            pid,
        }
    }

    fn act(&mut self) {
        writeln!(self.stdin).expect("tell the helper");
        self.stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read the helper");
        assert_eq!(line.trim(), "done");
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rows_of<'a>(logs: &'a [LogRecord], script: &str) -> Vec<&'a LogRecord> {
    logs.iter()
        .filter(|r| r.attr("wirelens.script.name").as_str() == Some(script))
        .collect()
}

/// Lines of the agent's log with `script attached` for `script`.
fn attached(agent: &Agent, script: &str) -> usize {
    agent
        .stderr()
        .lines()
        .filter(|l| l.contains("script attached") && l.contains(script))
        .count()
}

/// A packet filter rule that drops loopback TCP packets to `port` as they arrive, removed on
/// drop. (Dropped on the way in: a retransmit that the output hook refuses fails, and the
/// kernel's `tcp_retransmit_skb` tracepoint does not report failed retransmits.)
struct DropPort(u16);

impl DropPort {
    fn rule(&self, op: &str) -> bool {
        Command::new("iptables")
            .args([op, "INPUT", "-i", "lo", "-p", "tcp", "--dport"])
            .arg(self.0.to_string())
            .args(["-j", "DROP"])
            .status()
            .expect("run iptables (Debian's iptables)")
            .success()
    }
}

impl Drop for DropPort {
    fn drop(&mut self) {
        self.rule("-D");
    }
}

/// A memory cgroup limited to 64 MiB (cgroup v1 or v2), removed on drop.
struct MemoryCgroup(PathBuf);

impl MemoryCgroup {
    fn new() -> Self {
        let name = format!("wirelens-oom-test-{}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let (dir, limit_file) = if v1.is_dir() {
            (v1.join(&name), "memory.limit_in_bytes")
        } else {
            (Path::new("/sys/fs/cgroup").join(&name), "memory.max")
        };
        std::fs::create_dir_all(&dir).expect("create a memory cgroup");
        std::fs::write(dir.join(limit_file), format!("{}", 64 << 20)).expect("limit it");
        Self(dir)
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The pid of the agent's child bpftrace whose command line holds `marker`.
fn bpftrace_child(agent_pid: u32, marker: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let ppid: u32 = stat
            .rsplit(')')
            .next()?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        (ppid == agent_pid && String::from_utf8_lossy(&cmdline).contains(marker)).then_some(pid)
    })
}

#[test]
fn scripts_give_exactly_the_rows_expected_and_restart_when_killed() {
    let receiver = Receiver::start();
    let env = receiver.env(Otlp::Grpc);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (count, timestamps) = (test_script("count-events.bt"), test_script("timestamps.bt"));
    let agent = Agent::start(
        &[
            "--output",
            "json",
            "--port",
            "1",
            "--script",
            &count,
            "--script",
            &timestamps,
            "--script",
            "exec",
            "--script",
            "tcp-retransmits",
            "--script",
            "oom-kills",
            "--script-metric",
            "count-events.call",
        ],
        &env,
    );
    for script in [
        "count-events",
        "timestamps",
        "exec",
        "tcp-retransmits",
        "oom-kills",
    ] {
        wait_until(&format!("{script} attached"), ATTACH_TIMEOUT, || {
            (attached(&agent, script) > 0).then_some(())
        });
    }

    // count-events: five calls, five rows numbered 1 to 5, under the helper's Resource.
    let mut counter = Helper::start("wlbt-count", "[os.getppid() for _ in range(5)]");
    counter.act();
    // timestamps: three calls 200 ms apart, each row stamped with the kernel's time of its call.
    let mut timer = Helper::start(
        "wlbt-time",
        "[(os.getpgid(0), time.sleep(0.2)) for _ in range(3)]",
    );
    let before = now_ns();
    timer.act();
    let after = now_ns();
    // exec: one exec with known arguments.
    let token = format!("wlbt-exec-{}", std::process::id());
    let mut echo = Command::new("/bin/echo")
        .args([token.as_str(), "two", "three"])
        .stdout(Stdio::null())
        .spawn()
        .expect("run /bin/echo");
    let echo_pid = echo.id();
    echo.wait().expect("echo exits");
    // tcp-retransmits: a loopback connection whose packets to the server are dropped.
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("address").port();
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let client_port = client.local_addr().expect("address").port();
    let (_server, _) = listener.accept().expect("accept");
    let filter = DropPort(port);
    assert!(filter.rule("-I"), "iptables could not add the drop rule");
    client.write_all(b"retransmit me").expect("write");
    // oom-kills: a process past its cgroup's 64 MiB limit.
    let cgroup = MemoryCgroup::new();
    let mut hog = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import os, sys\nopen(sys.argv[1], 'w').write(str(os.getpid()))\nx = bytearray(512 << 20)\n",
        ])
        .arg(cgroup.0.join("cgroup.procs"))
        .spawn()
        .expect("run python3");
    let hog_pid = hog.id();
    let hog_status = hog.wait().expect("the hog exits");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&hog_status),
        Some(libc::SIGKILL),
        "the hog was not OOM-killed: {hog_status}"
    );

    let expected = |logs: &[LogRecord]| {
        [
            rows_of(logs, "count-events").len() >= 5,
            rows_of(logs, "timestamps").len() >= 3,
            rows_of(logs, "exec")
                .iter()
                .any(|r| r.attr("arg1").as_str() == Some(token.as_str())),
            rows_of(logs, "tcp-retransmits")
                .iter()
                .any(|r| r.attr("dport").as_i64() == Some(i64::from(port))),
            rows_of(logs, "oom-kills")
                .iter()
                .any(|r| r.attr("pid").as_i64() == Some(i64::from(hog_pid))),
        ]
    };
    let deadline = std::time::Instant::now() + ROW_TIMEOUT;
    let logs = loop {
        let logs = receiver.logs();
        let seen = expected(&logs);
        if seen.iter().all(|s| *s) {
            break logs;
        }
        if std::time::Instant::now() > deadline {
            let tables: std::collections::BTreeMap<String, usize> =
                logs.iter().fold(Default::default(), |mut m, r| {
                    *m.entry(r.str_attr("wirelens.script.name").to_owned())
                        .or_default() += 1;
                    m
                });
            panic!(
                "rows missing (count, timestamps, exec, retransmits, oom: {seen:?}); rows per table {tables:?}; retransmits to {port}: {:?}; agent:\n{}",
                rows_of(&logs, "tcp-retransmits")
                    .iter()
                    .take(5)
                    .map(|r| &r.body)
                    .collect::<Vec<_>>(),
                tail(&agent.stderr(), 30)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(filter);

    let counted = rows_of(&logs, "count-events");
    let calls: Vec<i64> = counted.iter().map(|r| r.int_attr("call")).collect();
    assert_eq!(calls, [1, 2, 3, 4, 5], "{counted:#?}");
    for row in &counted {
        assert_eq!(row.int_attr("pid"), i64::from(counter.pid));
        assert_eq!(row.str_attr("comm"), "wlbt-count");
        assert_eq!(row.resource["process.pid"], i64::from(counter.pid));
        assert_eq!(row.event_name, "count-events");
        assert_eq!(row.severity_text, "INFO");
        assert_eq!(row.scope, "wirelens");
        assert!(
            row.body
                .starts_with(&format!("pid={} comm=wlbt-count call=", counter.pid))
        );
        let keys: Vec<&str> = row.attributes.keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 4, "{keys:?}");
    }

    let timed = rows_of(&logs, "timestamps");
    assert_eq!(timed.len(), 3, "{timed:#?}");
    let times: Vec<u64> = timed.iter().map(|r| r.time_ns).collect();
    for (row, time) in timed.iter().zip(&times) {
        assert!(
            (before..=after).contains(time),
            "row time {time} outside the calls' window {before}..{after}"
        );
        assert_eq!(row.int_attr("pid"), i64::from(timer.pid));
        assert_eq!(row.int_attr("asked"), 0);
        assert_eq!(row.resource["process.pid"], i64::from(timer.pid));
        // The column itself is kept too: the kernel's monotonic time.
        assert!(row.int_attr("time_") > 0);
    }
    for pair in times.windows(2) {
        assert!(
            pair[1] >= pair[0] + 150_000_000,
            "calls 200 ms apart, rows stamped {times:?}"
        );
    }

    let execs: Vec<_> = rows_of(&logs, "exec")
        .into_iter()
        .filter(|r| r.attr("arg1").as_str() == Some(token.as_str()))
        .collect();
    assert_eq!(execs.len(), 1, "{execs:#?}");
    let exec = execs[0];
    assert_eq!(exec.int_attr("pid"), i64::from(echo_pid));
    assert_eq!(exec.int_attr("ppid"), i64::from(std::process::id()));
    assert_eq!(exec.str_attr("filename"), "/bin/echo");
    assert_eq!(exec.str_attr("arg2"), "two");
    assert_eq!(exec.str_attr("arg3"), "three");

    let retransmits: Vec<_> = rows_of(&logs, "tcp-retransmits")
        .into_iter()
        .filter(|r| r.attr("dport").as_i64() == Some(i64::from(port)))
        .collect();
    assert!(!retransmits.is_empty());
    for row in &retransmits {
        assert_eq!(row.str_attr("saddr"), "127.0.0.1");
        assert_eq!(row.str_attr("daddr"), "127.0.0.1");
        assert_eq!(row.int_attr("sport"), i64::from(client_port));
        assert_eq!(row.int_attr("family"), 2);
        assert_eq!(row.int_attr("state"), 1, "TCP_ESTABLISHED");
        // No pid column: the host's Resource.
        assert!(!row.resource.contains_key("process.pid"), "{row:#?}");
        assert!(row.resource.contains_key("host.name"));
    }

    let ooms: Vec<_> = rows_of(&logs, "oom-kills")
        .into_iter()
        .filter(|r| r.attr("pid").as_i64() == Some(i64::from(hog_pid)))
        .collect();
    assert_eq!(ooms.len(), 1, "{ooms:#?}");
    assert_eq!(ooms[0].str_attr("victim_comm"), "python3");
    assert!(ooms[0].int_attr("anon_rss_pages") > 0);

    // Killed with SIGKILL: started again, counted, and its rows come again.
    let agent_pid = agent.pid();
    let victim = wait_until("the count-events bpftrace", ROW_TIMEOUT, || {
        bpftrace_child(agent_pid, "wlbt-count")
    });
    send_signal(victim, libc::SIGKILL);
    wait_until("count-events started again", ATTACH_TIMEOUT, || {
        (attached(&agent, "count-events") >= 2).then_some(())
    });
    assert!(
        agent
            .stderr()
            .contains("script was killed by signal 9; starting it again"),
        "{}",
        tail(&agent.stderr(), 20)
    );
    let mut again = Helper::start("wlbt-count", "[os.getppid() for _ in range(5)]");
    again.act();
    let second = wait_until("rows after the restart", ROW_TIMEOUT, || {
        let rows: Vec<i64> = rows_of(&receiver.logs(), "count-events")
            .iter()
            .filter(|r| r.int_attr("pid") == i64::from(again.pid))
            .map(|r| r.int_attr("call"))
            .collect();
        (rows.len() >= 5).then_some(rows)
    });
    assert_eq!(second, [1, 2, 3, 4, 5]);
    wait_until(
        "wirelens.script.restarts at the receiver",
        ROW_TIMEOUT,
        || (sum_total(&receiver.metrics(), "wirelens.script.restarts") >= 1.0).then_some(()),
    );

    // The declared column: its sum per process (1 + 2 + 3 + 4 + 5 for each helper).
    let sums = wait_until("wirelens.script.count-events.call", ROW_TIMEOUT, || {
        let points = receiver.metrics();
        let of = |pid: u32| {
            points
                .iter()
                .filter(|p| {
                    p.name == "wirelens.script.count-events.call"
                        && p.attr_str("wirelens.script.name") == Some("count-events")
                        && p.resource.get("process.pid").and_then(|v| v.as_i64())
                            == Some(i64::from(pid))
                })
                .filter_map(|p| p.value)
                .next_back()
        };
        match (of(counter.pid), of(again.pid)) {
            (Some(a), Some(b)) if b >= 15.0 => Some((a, b)),
            _ => None,
        }
    });
    assert_eq!(sums, (15.0, 15.0));

    let out = agent.stop();
    out.assert_success();
    assert!(
        out.stderr.contains("restarts=1"),
        "{}",
        tail(&out.stderr, 10)
    );
    // Rows show in the live view too.
    let live = out
        .json_records()
        .into_iter()
        .filter(|r| r["script"] == "count-events")
        .count();
    assert_eq!(live, 10, "{}", tail(&out.stdout, 20));
    drop(cgroup);
}

#[test]
fn each_broken_rule_is_refused_with_its_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        (
            "no-printf",
            "tracepoint:syscalls:sys_enter_getppid { @n = count(); }\n",
            "script no-printf, line 1, column 1: the script has no printf, so it gives no rows",
        ),
        (
            "two-formats",
            "tracepoint:syscalls:sys_enter_getppid {\n  printf(\"pid:%d\\n\", pid);\n}\ntracepoint:syscalls:sys_enter_getpgid {\n  printf(\"tid:%d\\n\", tid);\n}\n",
            "script two-formats, line 5, column 10: every printf must use the same format string (it defines the columns); the first printf, line 2, uses another",
        ),
        (
            "in-begin",
            "BEGIN { printf(\"pid:%d\\n\", pid); }\ntracepoint:syscalls:sys_enter_getppid { printf(\"pid:%d\\n\", pid); }\n",
            "script in-begin, line 1, column 9: printf is not allowed in BEGIN or END",
        ),
        (
            "in-end",
            "tracepoint:syscalls:sys_enter_getppid { printf(\"pid:%d\\n\", pid); }\nEND\n{\n  printf(\"pid:%d\\n\", 0);\n}\n",
            "script in-end, line 4, column 3: printf is not allowed in BEGIN or END",
        ),
        (
            "time-not-nsecs",
            "tracepoint:syscalls:sys_enter_getppid { printf(\"time_:%llu pid:%d\\n\", elapsed, pid); }\n",
            "script time-not-nsecs, line 1, column 71: the column time_ must be given nsecs",
        ),
    ];
    for (name, text, message) in cases {
        let path = dir.path().join(format!("{name}.bt"));
        std::fs::write(&path, text).expect("write the script");
        let out = Agent::spawn(&["--script", path.to_str().expect("utf-8")], &[])
            .wait_exit(Duration::from_secs(20));
        assert!(!out.status.success(), "{name} was accepted");
        assert!(
            out.stderr.contains(&format!("wirelens: error: {message}")),
            "{name}: expected {message:?} in:\n{}",
            tail(&out.stderr, 10)
        );
    }
}

/// A loop device over a file on the disk of the test's directory, detached on drop.
struct LoopDevice {
    path: String,
    file: PathBuf,
}

impl LoopDevice {
    fn new() -> Self {
        let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("wirelens-slow-disk-{}.img", std::process::id()));
        std::fs::File::create(&file)
            .and_then(|f| f.set_len(16 << 20))
            .expect("create the backing file");
        let out = Command::new("losetup")
            .args(["--find", "--show", "--direct-io=on"])
            .arg(&file)
            .output()
            .expect("run losetup (Debian's mount)");
        assert!(out.status.success(), "losetup: {out:?}");
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Self { path, file }
    }

    /// (major, minor) of the loop device.
    fn numbers(&self) -> (i64, i64) {
        use std::os::unix::fs::MetadataExt as _;
        let rdev = std::fs::metadata(&self.path).expect("loop device").rdev();
        (i64::from(libc::major(rdev)), i64::from(libc::minor(rdev)))
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.path]).status();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// A block-I/O cgroup (v1 `blkio` or v2 `io`) whose writes to the whole disk holding `file`
/// are limited to `bytes_per_s`, removed on drop. A loop device's worker charges its I/O on
/// the backing file to the writer's cgroup, so each request to the loop device waits out the
/// limit between its issue and its completion: slow disk I/O on demand.
struct SlowWrites(PathBuf);

impl SlowWrites {
    fn new(file: &Path, bytes_per_s: u64) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        let dev = std::fs::metadata(file).expect("backing file").dev();
        let mut numbers = format!("{}:{}", libc::major(dev), libc::minor(dev));
        // Limits apply to whole disks: a partition's disk is its parent in sysfs.
        let sys = PathBuf::from(format!("/sys/dev/block/{numbers}"));
        if sys.join("partition").exists() {
            numbers = std::fs::read_to_string(sys.join("../dev"))
                .expect("the partition's disk")
                .trim()
                .to_owned();
        }
        let name = format!("wirelens-slow-disk-{}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/blkio");
        let (dir, file, rule) = if v1.is_dir() {
            (
                v1.join(&name),
                "blkio.throttle.write_bps_device",
                format!("{numbers} {bytes_per_s}"),
            )
        } else {
            let _ = std::fs::write("/sys/fs/cgroup/cgroup.subtree_control", "+io");
            (
                Path::new("/sys/fs/cgroup").join(&name),
                "io.max",
                format!("{numbers} wbps={bytes_per_s}"),
            )
        };
        std::fs::create_dir_all(&dir).expect("create a block-I/O cgroup");
        std::fs::write(dir.join(file), &rule).unwrap_or_else(|e| panic!("{rule} in {file}: {e}"));
        Self(dir)
    }

    fn procs(&self) -> String {
        self.0.join("cgroup.procs").display().to_string()
    }
}

impl Drop for SlowWrites {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The two shipped scripts the first test does not cover, exported over OTLP/HTTP.
///
/// slow-disk-io (threshold 10 ms, fixed in the script): a helper in a cgroup whose writes to
/// the disk are limited to 256 KiB/s writes three 64 KiB blocks with `O_DIRECT` to a loop
/// device over a file on that disk; each loop request takes about 250 ms from issue to
/// completion, so exactly three rows on that device, each under the helper's Resource.
/// runq-latency (threshold 5 ms): a helper pinned to CPU 0 sleeps 40 ms while a child of it,
/// on the same CPU, runs a 100 ms `SCHED_FIFO` busy loop; the helper's wake-up waits about
/// 80 ms for the CPU. Three rounds, three rows of 50 ms or more for the helper's thread, with
/// the host's Resource (no pid column).
#[test]
fn disk_and_run_queue_rows_arrive_as_otlp_http_logs() {
    let receiver = Receiver::start();
    let env = receiver.env(Otlp::Http);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let agent = Agent::start(
        &[
            "--output",
            "none",
            "--port",
            "1",
            "--script",
            "slow-disk-io",
            "--script",
            "runq-latency",
        ],
        &env,
    );
    for script in ["slow-disk-io", "runq-latency"] {
        wait_until(&format!("{script} attached"), ATTACH_TIMEOUT, || {
            (attached(&agent, script) > 0).then_some(())
        });
    }

    let disk = LoopDevice::new();
    let slow = SlowWrites::new(&disk.file, 256 << 10);
    let writes = format!(
        "open({:?}, 'w').write(str(os.getpid()))\n\
         fd = os.open({:?}, os.O_WRONLY | os.O_DIRECT)\n\
         block = __import__('mmap').mmap(-1, 65536)\n\
         for i in range(3):\n    os.pwrite(fd, block, i * 65536)\n\
         os.close(fd)\n",
        slow.procs(),
        disk.path
    );
    let mut writer = Helper::start("wlbt-disk", &format!("exec({writes:?})"));
    let started = std::time::Instant::now();
    writer.act();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500),
        "the writes were not slowed ({took:?})"
    );

    // The child sleeps first so that the helper is asleep when the busy loop starts.
    let round = "os.sched_setaffinity(0, {0})\n\
                 kid = os.fork()\n\
                 if kid == 0:\n\
                 \x20   time.sleep(0.02)\n\
                 \x20   os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))\n\
                 \x20   end = time.monotonic() + 0.1\n\
                 \x20   while time.monotonic() < end: pass\n\
                 \x20   os._exit(0)\n\
                 time.sleep(0.04)\n\
                 os.waitpid(kid, 0)\n";
    let mut sleeper = Helper::start("wlbt-runq", &format!("exec({round:?})"));
    for _ in 0..3 {
        sleeper.act();
    }

    let (major, minor) = disk.numbers();
    let on_disk = |r: &&LogRecord| {
        r.attr("dev_major").as_i64() == Some(major) && r.attr("dev_minor").as_i64() == Some(minor)
    };
    let slow_runq = |r: &&LogRecord| {
        r.attr("tid").as_i64() == Some(i64::from(sleeper.pid))
            && r.attr("latency_us").as_i64().is_some_and(|us| us >= 50_000)
    };
    let logs = wait_until("the disk and run-queue rows", ROW_TIMEOUT, || {
        let logs = receiver.logs();
        let disk_rows = rows_of(&logs, "slow-disk-io")
            .into_iter()
            .filter(on_disk)
            .count();
        let runq_rows = rows_of(&logs, "runq-latency")
            .into_iter()
            .filter(slow_runq)
            .count();
        (disk_rows >= 3 && runq_rows >= 3).then_some(logs)
    });

    let disk_rows: Vec<_> = rows_of(&logs, "slow-disk-io")
        .into_iter()
        .filter(on_disk)
        .collect();
    assert_eq!(disk_rows.len(), 3, "{disk_rows:#?}");
    let mut sectors: Vec<i64> = disk_rows.iter().map(|r| r.int_attr("sector")).collect();
    sectors.sort_unstable();
    assert_eq!(sectors, [0, 128, 256]);
    for row in &disk_rows {
        assert_eq!(row.transport, "http");
        assert_eq!(row.int_attr("pid"), i64::from(writer.pid));
        assert_eq!(row.resource["process.pid"], i64::from(writer.pid));
        assert_eq!(row.int_attr("bytes"), 65536);
        assert!(row.str_attr("rwbs").starts_with('W'), "{row:#?}");
        assert!(row.int_attr("latency_us") >= 10_000, "{row:#?}");
        let keys: Vec<&str> = row.attributes.keys().map(String::as_str).collect();
        assert_eq!(
            keys.len(),
            9,
            "eight columns and the script's name: {keys:?}"
        );
    }

    let runq_rows: Vec<_> = rows_of(&logs, "runq-latency")
        .into_iter()
        .filter(slow_runq)
        .collect();
    assert_eq!(runq_rows.len(), 3, "{runq_rows:#?}");
    for row in &runq_rows {
        assert_eq!(row.transport, "http");
        assert_eq!(row.str_attr("comm"), "wlbt-runq");
        assert!(row.int_attr("latency_us") < 1_000_000, "{row:#?}");
        assert!(row.int_attr("time_") > 0);
        assert!(!row.resource.contains_key("process.pid"), "{row:#?}");
        assert!(row.resource.contains_key("host.name"));
    }
    agent.stop().assert_success();
    // The helper leaves the cgroup first: a cgroup with a process in it cannot be removed.
    drop(writer);
    drop(slow);
}
