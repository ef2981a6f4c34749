//! CPU profiler end to end: test programs in C and Rust, built with and without frame pointers,
//! burn CPU in `main → outer → middle → leaf_spin`; `wirelens profile` samples them for a few
//! seconds; the gzipped pprof is decoded by an independent decoder (protoc + Python protobuf,
//! `tests/profilee/decode_pprof.py`) and the SVG flame graph is read back. In continuous mode the
//! agent's OTLP profiles are decoded by the independent receiver (the official protos).
//!
//! Needs root, gcc, rustc, protoc and Debian's python3-protobuf (`scripts/setup.sh`), and a built
//! agent; run one at a time (`-- --test-threads=1`): each test starts its own agent.
//!
//! "Leaf" below is the innermost user-space frame: a sample taken while the kernel handles an
//! interrupt or a syscall has kernel frames above it, and those are checked separately.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use wirelens_tests::{Agent, Otlp, Receiver, wait_until, workspace_root, write_actual};

/// How long each test samples.
const SAMPLE_FOR: &str = "3s";
/// How long the test program runs (longer than the sampling, with the agent's start-up).
const RUN_FOR: &str = "8";
/// The chain every sample of the test programs should show, leaf first.
const CHAIN: [&str; 4] = ["leaf_spin", "middle", "outer", "main"];
const KERNEL: &str = "[kernel]";

/// How a test program is built.
#[derive(Clone, Copy, Debug)]
enum Build {
    C {
        frame_pointers: bool,
    },
    Rust {
        frame_pointers: bool,
    },
    /// `spin.cpp`, without frame pointers.
    Cpp,
    /// `spin.c` with its functions renamed `decoy_*`: a different file at the same path.
    Decoy,
}

fn profilee(name: &str) -> PathBuf {
    workspace_root().join("tests/profilee").join(name)
}

/// Compiles the test program into `dir`, named `name` (which becomes its comm).
fn build(build: Build, dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = match build {
        Build::C { frame_pointers } => {
            let mut c = Command::new("gcc");
            c.arg("-O2").arg(if frame_pointers {
                "-fno-omit-frame-pointer"
            } else {
                "-fomit-frame-pointer"
            });
            c.arg("-o").arg(&out).arg(profilee("spin.c"));
            c
        }
        Build::Cpp => {
            let mut c = Command::new("g++");
            c.args(["-O2", "-fomit-frame-pointer", "-o"])
                .arg(&out)
                .arg(profilee("spin.cpp"));
            c
        }
        Build::Decoy => {
            let mut c = Command::new("gcc");
            c.args(["-O2", "-fomit-frame-pointer"])
                .args(["-Dleaf_spin=decoy_leaf", "-Dmiddle=decoy_middle"])
                .args(["-Douter=decoy_outer", "-o"])
                .arg(&out)
                .arg(profilee("spin.c"));
            c
        }
        Build::Rust { frame_pointers } => {
            let mut c = Command::new("rustc");
            c.args(["-C", "opt-level=2", "-C"]).arg(if frame_pointers {
                "force-frame-pointers=yes"
            } else {
                "force-frame-pointers=no"
            });
            c.arg("-o").arg(&out).arg(profilee("spin.rs"));
            c
        }
    };
    let status = cmd.status().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed: {status}");
    out
}

/// A test program, killed on drop.
struct Program(Child);

impl Program {
    fn start(path: &Path, args: &[&str]) -> Self {
        let child = Command::new(path)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", path.display()));
        // Past the dynamic loader and into main.
        std::thread::sleep(Duration::from_millis(300));
        Self(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What `wirelens profile` wrote, decoded independently.
struct Profiled {
    pprof: Value,
    svg: String,
    stderr: String,
}

/// Runs `wirelens profile` with `args` (plus output files in `dir`) and decodes what it wrote.
fn profile(dir: &Path, args: &[&str]) -> Profiled {
    let pb = dir.join("cpu.pb.gz");
    let svg = dir.join("cpu.svg");
    let mut all = vec!["profile", "--duration", SAMPLE_FOR];
    all.extend_from_slice(args);
    let (pb_s, svg_s) = (pb.to_string_lossy(), svg.to_string_lossy());
    all.extend_from_slice(&["-o", &pb_s, "--flamegraph", &svg_s]);
    let out = Agent::spawn(&all, &[]).wait_exit(Duration::from_secs(90));
    out.assert_success();
    let decoded = Command::new("/usr/bin/python3")
        .arg(profilee("decode_pprof.py"))
        .arg(&pb)
        .output()
        .expect("run decode_pprof.py");
    assert!(
        decoded.status.success(),
        "decode_pprof.py failed: {}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    Profiled {
        pprof: serde_json::from_slice(&decoded.stdout).expect("decoder prints JSON"),
        svg: std::fs::read_to_string(&svg).expect("read the SVG"),
        stderr: out.stderr,
    }
}

/// One decoded sample.
struct Sample {
    count: u64,
    /// User frames, leaf first, each reduced to its last `::` segment (Rust paths).
    user: Vec<String>,
    /// User frames, leaf first, as named in the profile.
    user_full: Vec<String>,
    /// Kernel frames, leaf first.
    kernel: Vec<String>,
}

fn samples_of(p: &Value, pid: u32) -> Vec<Sample> {
    p["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .filter(|s| s["pid"].as_u64() == Some(u64::from(pid)))
        .map(|s| {
            let frames = s["frames"].as_array().expect("frames");
            let modules = s["modules"].as_array().expect("modules");
            let mut user = Vec::new();
            let mut user_full = Vec::new();
            let mut kernel = Vec::new();
            for (f, m) in frames.iter().zip(modules) {
                let f = f.as_str().expect("frame name");
                if m.as_str() == Some(KERNEL) {
                    kernel.push(f.to_string());
                } else {
                    user.push(f.rsplit("::").next().unwrap_or(f).to_string());
                    user_full.push(f.to_string());
                }
            }
            Sample {
                count: s["values"][0].as_u64().expect("count"),
                user,
                user_full,
                kernel,
            }
        })
        .collect()
}

/// Fractions of samples whose user leaf is `leaf_spin` with the whole chain above it, and
/// whose stack reaches `main`.
fn fractions(samples: &[Sample]) -> (f64, f64, u64) {
    let total: u64 = samples.iter().map(|s| s.count).sum();
    let chain = count_leading(samples, &CHAIN, |s| &s.user);
    let main: u64 = samples
        .iter()
        .filter(|s| s.user.iter().any(|f| f == "main"))
        .map(|s| s.count)
        .sum();
    let t = total.max(1) as f64;
    (chain as f64 / t, main as f64 / t, total)
}

/// Samples whose user frames (as `frames` picks them) start with `chain`, leaf first.
fn count_leading(samples: &[Sample], chain: &[&str], frames: fn(&Sample) -> &Vec<String>) -> u64 {
    samples
        .iter()
        .filter(|s| {
            let f = frames(s);
            f.len() >= chain.len() && f.iter().zip(chain).all(|(a, b)| a == b)
        })
        .map(|s| s.count)
        .sum()
}

/// One line per sample: its count, kernel and user frames.
fn listing(samples: &[Sample]) -> String {
    samples
        .iter()
        .map(|s| format!("{} {:?} {:?}", s.count, s.kernel, s.user_full))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_pprof_header(p: &Value) {
    assert_eq!(
        p["sample_types"],
        serde_json::json!([["samples", "count"], ["cpu", "nanoseconds"]])
    );
    assert_eq!(p["period_type"], serde_json::json!(["cpu", "nanoseconds"]));
    assert!(
        p["period"].as_i64().is_some_and(|v| v > 0),
        "period: {}",
        p["period"]
    );
    for s in p["samples"].as_array().expect("samples") {
        let v = &s["values"];
        assert_eq!(
            v[1].as_i64(),
            v[0].as_i64().map(|n| n * p["period"].as_i64().unwrap_or(0)),
            "cpu = samples × period"
        );
    }
}

/// Profiles one build of the test program and checks the chain in ≥ 90% of its samples.
fn check_build(which: Build, name: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = build(which, dir.path(), name);
    let program = Program::start(&bin, &[RUN_FOR]);
    let pid = program.pid().to_string();
    let mut args = vec!["--pid", pid.as_str()];
    args.extend_from_slice(extra);
    let out = profile(dir.path(), &args);
    drop(program);
    assert_pprof_header(&out.pprof);
    let samples = samples_of(&out.pprof, pid.parse().expect("pid"));
    let (chain, main, total) = fractions(&samples);
    write_actual(
        &format!("profile-{name}"),
        &serde_json::json!({"samples": total, "chain": chain, "reaching_main": main}),
    );
    eprintln!(
        "{name} {extra:?}: {total} samples, {:.1}% leaf_spin with the full chain, {:.1}% reach main",
        chain * 100.0,
        main * 100.0
    );
    assert!(
        total >= 50,
        "{name}: only {total} samples in {SAMPLE_FOR}; agent said:\n{}",
        out.stderr
    );
    assert!(
        chain >= 0.9,
        "{name}: {:.1}% of {total} samples have the full chain; stacks:\n{}",
        chain * 100.0,
        listing(&samples)
    );
    for f in CHAIN {
        assert!(out.svg.contains(f), "{name}: the SVG does not name {f}");
    }
}

#[test]
fn c_with_frame_pointers() {
    check_build(
        Build::C {
            frame_pointers: true,
        },
        "prof-c-fp",
        &[],
    );
}

#[test]
fn c_without_frame_pointers() {
    check_build(
        Build::C {
            frame_pointers: false,
        },
        "prof-c-nofp",
        &[],
    );
}

#[test]
fn rust_with_frame_pointers() {
    check_build(
        Build::Rust {
            frame_pointers: true,
        },
        "prof-rs-fp",
        &[],
    );
}

#[test]
fn rust_without_frame_pointers() {
    check_build(
        Build::Rust {
            frame_pointers: false,
        },
        "prof-rs-nofp",
        &[],
    );
}

/// Frame-pointer mode: user stacks walked and samples counted in the kernel, drained at the end.
#[test]
fn frame_pointer_mode_counts_in_the_kernel() {
    check_build(
        Build::C {
            frame_pointers: true,
        },
        "prof-c-fpmode",
        &["--unwind", "fp"],
    );
}

/// `--comm` instead of `--pid`: only that command's samples.
#[test]
fn comm_filter() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = build(
        Build::C {
            frame_pointers: false,
        },
        dir.path(),
        "prof-c-comm",
    );
    let program = Program::start(&bin, &[RUN_FOR]);
    let out = profile(dir.path(), &["--comm", "prof-c-comm"]);
    let pid = program.pid();
    drop(program);
    let all = out.pprof["samples"].as_array().expect("samples");
    assert!(!all.is_empty(), "no samples; agent said:\n{}", out.stderr);
    for s in all {
        assert_eq!(s["comm"], "prof-c-comm", "a sample of another command: {s}");
        assert_eq!(s["pid"].as_u64(), Some(u64::from(pid)));
    }
    let (chain, _, total) = fractions(&samples_of(&out.pprof, pid));
    assert!(
        chain >= 0.9,
        "{:.1}% of {total} samples with the chain",
        chain * 100.0
    );
}

/// A program that spends its time in write(2): kernel frames under the user stack.
#[test]
fn kernel_frames_for_a_syscall_heavy_program() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = build(
        Build::C {
            frame_pointers: false,
        },
        dir.path(),
        "prof-c-sys",
    );
    let program = Program::start(&bin, &[RUN_FOR, "syscall"]);
    let pid = program.pid();
    let out = profile(dir.path(), &["--pid", &pid.to_string()]);
    drop(program);
    let samples = samples_of(&out.pprof, pid);
    let total: u64 = samples.iter().map(|s| s.count).sum();
    let in_kernel: u64 = samples
        .iter()
        .filter(|s| !s.kernel.is_empty())
        .map(|s| s.count)
        .sum();
    assert!(
        total >= 50,
        "only {total} samples; agent said:\n{}",
        out.stderr
    );
    assert!(
        in_kernel * 4 >= total,
        "{in_kernel} of {total} samples have kernel frames"
    );
    // The syscall path itself, with the user chain still whole below it.
    let chain = ["leaf_write", "middle", "outer", "main"];
    let write_path = samples.iter().any(|s| {
        s.kernel
            .iter()
            .any(|f| f.contains("sys_write") || f.contains("vfs_write"))
            && s.user.windows(chain.len()).any(|w| w == chain)
    });
    assert!(
        write_path,
        "no sample shows the kernel's write path above the user chain:\n{}",
        listing(&samples)
    );
    assert!(
        out.svg.contains("vfs_write") || out.svg.contains("sys_write"),
        "the SVG names no kernel write path"
    );
}

/// A JSON number that protobuf's JSON mapping may write as a string (64-bit) or leave out (0).
fn num(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn string_at(dict: &Value, v: &Value) -> String {
    dict["string_table"][num(v) as usize]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Continuous mode: OTLP profiles under the process's Resource, decoded by the official protos.
fn continuous(otlp: Otlp, name: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = build(
        Build::C {
            frame_pointers: false,
        },
        dir.path(),
        name,
    );
    let program = Program::start(&bin, &[RUN_FOR]);
    let pid = program.pid();
    let receiver = Receiver::start();
    let mut envs = receiver.env(otlp);
    envs.push(("WIRELENS_PROFILE_FREQUENCY".into(), "99".into()));
    envs.push(("WIRELENS_PROFILE_INTERVAL".into(), "1s".into()));
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let pid_s = pid.to_string();
    let agent = Agent::start(&["--pid", &pid_s, "--output", "none"], &envs);
    // Samples of our process, per request, until there are enough.
    let found = wait_until(
        "OTLP profiles of the test program",
        Duration::from_secs(30),
        || {
            let mut samples = Vec::new();
            for r in receiver.requests() {
                if r["signal"] != "profiles" {
                    continue;
                }
                assert_eq!(r["transport"], otlp.transport());
                samples.extend(process_samples(&r["request"], pid));
            }
            let total: u64 = samples.iter().map(|s| s.count).sum();
            (total >= 100).then_some(samples)
        },
    );
    let out = agent.stop();
    out.assert_success();
    drop(program);
    let (chain, main, total) = fractions(&found);
    eprintln!(
        "{name}: {total} samples over OTLP, {:.1}% with the full chain, {:.1}% reach main",
        chain * 100.0,
        main * 100.0
    );
    assert!(
        chain >= 0.9,
        "{:.1}% of {total} samples with the chain",
        chain * 100.0
    );
    assert!(
        out.stderr.contains("profiles:"),
        "no profiles summary:\n{}",
        out.stderr
    );
}

/// The samples of `pid` in one export request, checking its Resource and profile header.
fn process_samples(request: &Value, pid: u32) -> Vec<Sample> {
    let dict = &request["dictionary"];
    let mut out = Vec::new();
    for rp in request["resource_profiles"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let attrs = rp["resource"]["attributes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let attr = |key: &str| {
            attrs
                .iter()
                .find(|a| a["key"] == key)
                .map(|a| a["value"].clone())
        };
        if attr("process.pid").map(|v| num(&v["int_value"])) != Some(i64::from(pid)) {
            continue;
        }
        assert!(
            attr("service.name").is_some_and(|v| v["string_value"].as_str().is_some()),
            "no service.name: {attrs:?}"
        );
        for sp in rp["scope_profiles"].as_array().into_iter().flatten() {
            assert_eq!(sp["scope"]["name"], "wirelens");
            for p in sp["profiles"].as_array().into_iter().flatten() {
                assert_eq!(
                    string_at(dict, &p["sample_type"]["type_strindex"]),
                    "samples"
                );
                assert_eq!(string_at(dict, &p["sample_type"]["unit_strindex"]), "count");
                assert_eq!(string_at(dict, &p["period_type"]["type_strindex"]), "cpu");
                assert_eq!(
                    string_at(dict, &p["period_type"]["unit_strindex"]),
                    "nanoseconds"
                );
                assert_eq!(num(&p["period"]), 1_000_000_000 / 99);
                for s in p["samples"].as_array().into_iter().flatten() {
                    out.push(otlp_sample(dict, s));
                }
            }
        }
    }
    out
}

fn otlp_sample(dict: &Value, s: &Value) -> Sample {
    let stack = &dict["stack_table"][num(&s["stack_index"]) as usize];
    let mut user = Vec::new();
    let mut kernel = Vec::new();
    for l in stack["location_indices"].as_array().into_iter().flatten() {
        let loc = &dict["location_table"][num(l) as usize];
        let mapping = &dict["mapping_table"][num(&loc["mapping_index"]) as usize];
        let module = string_at(dict, &mapping["filename_strindex"]);
        let function = &dict["function_table"][num(&loc["lines"][0]["function_index"]) as usize];
        let name = string_at(dict, &function["name_strindex"]);
        let frame_type = loc["attribute_indices"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| &dict["attribute_table"][num(i) as usize])
            .find(|a| string_at(dict, &a["key_strindex"]) == "profile.frame.type")
            .and_then(|a| a["value"]["string_value"].as_str().map(str::to_string))
            .unwrap_or_default();
        assert_eq!(
            frame_type == "kernel",
            module == KERNEL,
            "{name}: {frame_type} in {module}"
        );
        if frame_type == "kernel" {
            kernel.push(name);
        } else {
            user.push(name);
        }
    }
    Sample {
        count: s["values"][0]
            .as_str()
            .and_then(|v| v.parse().ok())
            .or(s["values"][0].as_u64())
            .unwrap_or(0),
        user_full: user.clone(),
        user,
        kernel,
    }
}

#[test]
fn continuous_otlp_profiles_grpc() {
    continuous(Otlp::Grpc, "prof-otlp-grpc");
}

#[test]
fn continuous_otlp_profiles_http() {
    continuous(Otlp::Http, "prof-otlp-http");
}

/// C++ names are demangled: namespaces, a class template's member and parameter lists.
#[test]
fn cpp_names_are_demangled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = build(Build::Cpp, dir.path(), "prof-cpp");
    let program = Program::start(&bin, &[RUN_FOR]);
    let pid = program.pid();
    let out = profile(dir.path(), &["--pid", &pid.to_string()]);
    drop(program);
    let samples = samples_of(&out.pprof, pid);
    let chain = [
        "wl::Spinner<unsigned long>::leaf_spin(unsigned long)",
        "wl::middle(unsigned long)",
        "wl::outer(unsigned long)",
        "main",
    ];
    let total: u64 = samples.iter().map(|s| s.count).sum();
    let whole = count_leading(&samples, &chain, |s| &s.user_full);
    let listing = || listing(&samples);
    assert!(
        total >= 50,
        "only {total} samples; agent said:\n{}",
        out.stderr
    );
    assert!(
        whole * 10 >= total * 9,
        "{whole} of {total} samples have the demangled chain:\n{}",
        listing()
    );
    assert!(
        !samples
            .iter()
            .any(|s| s.user_full.iter().any(|f| f.starts_with("_Z"))),
        "a mangled name is left:\n{}",
        listing()
    );
    assert!(
        out.svg
            .contains("wl::Spinner&lt;unsigned long&gt;::leaf_spin"),
        "the SVG does not name the demangled leaf"
    );
}

/// A process in a container: its executable is bind-mounted in a private mount namespace (and
/// PID namespace) over a directory where the host has a different file of the same name, whose
/// functions are `decoy_*`. Unwinding (no frame pointers) and names must come from the file the
/// process maps (`/proc/<pid>/map_files`, `/proc/<pid>/root`), not from the host's path.
#[test]
fn process_in_a_container_is_symbolized_from_its_own_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let inner = dir.path().join("container");
    let host = dir.path().join("app");
    for d in [&inner, &host] {
        std::fs::create_dir(d).expect("mkdir");
    }
    let name = "prof-ctr";
    build(
        Build::C {
            frame_pointers: false,
        },
        &inner,
        name,
    );
    build(Build::Decoy, &host, name);
    let exe = host.join(name);
    let script = format!(
        "mount --bind {} {} && exec {} {RUN_FOR}",
        inner.display(),
        host.display(),
        exe.display()
    );
    let program = Program::start(
        Path::new("/usr/bin/unshare"),
        &[
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "--mount-proc",
            "/bin/sh",
            "-c",
            &script,
        ],
    );
    let out = profile(dir.path(), &["--comm", name]);
    drop(program);
    let all = out.pprof["samples"].as_array().expect("samples");
    let pid = all
        .first()
        .and_then(|s| s["pid"].as_u64())
        .unwrap_or_else(|| panic!("no samples of {name}; agent said:\n{}", out.stderr));
    let pid = u32::try_from(pid).expect("pid");
    assert!(
        all.iter()
            .all(|s| s["pid"].as_u64() == Some(u64::from(pid))),
        "samples of more than one {name}"
    );
    let samples = samples_of(&out.pprof, pid);
    let (chain, _, total) = fractions(&samples);
    let listing = listing(&samples);
    assert!(total >= 50, "only {total} samples:\n{}", out.stderr);
    assert!(
        chain >= 0.9,
        "{:.1}% of {total} samples have the container file's chain:\n{listing}",
        chain * 100.0
    );
    assert!(
        !listing.contains("decoy_"),
        "names were read from the host's file:\n{listing}"
    );
}

/// Caches go when a process exits: two programs are profiled, one exits half-way. Its samples
/// keep their names (they are symbolized before its cache goes), it is counted evicted, and at
/// the end the caches hold the live program only.
#[test]
fn caches_are_evicted_when_a_process_exits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let frame_pointers = false;
    let short = build(Build::C { frame_pointers }, dir.path(), "prof-c-short");
    let long = build(Build::C { frame_pointers }, dir.path(), "prof-c-long");
    let mut exiting = Program::start(&short, &["1.2"]);
    let staying = Program::start(&long, &[RUN_FOR]);
    let out = profile(dir.path(), &["--comm", "prof-c-short,prof-c-long"]);
    let status = exiting.0.try_wait().expect("wait");
    assert!(status.is_some(), "the short program is still running");
    let (gone, live) = (exiting.pid(), staying.pid());
    drop(staying);
    for pid in [gone, live] {
        let (chain, _, total) = fractions(&samples_of(&out.pprof, pid));
        assert!(
            total >= 20 && chain >= 0.9,
            "pid {pid}: {total} samples, {:.1}% with the chain",
            chain * 100.0
        );
    }
    let caches = out
        .stderr
        .lines()
        .find(|l| l.contains("caches:"))
        .unwrap_or_else(|| panic!("no cache line in:\n{}", out.stderr));
    assert!(
        caches.contains(
            "caches: 1 processes evicted on exit or exec; held at the end: symbols of 1 processes"
        ) && caches.contains("unwinders of 1 processes"),
        "caches after one of two processes exited: {caches}"
    );
}

/// Ranges of file offsets `[start, end)` of the functions `names` in the ELF file `path`, from
/// its symbol table (`nm -S`) and program headers (`readelf -lW`), so that an unresolved frame's
/// `module+0xoffset` can be checked against the function it must fall in.
fn function_offsets(path: &Path, names: &[&str]) -> Vec<(u64, u64)> {
    let run = |prog: &str, args: &[&str]| {
        let out = Command::new(prog)
            .args(args)
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("run {prog}: {e}"));
        assert!(out.status.success(), "{prog} {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex");
    // LOAD segments: (vaddr, file offset, file size).
    let loads: Vec<(u64, u64, u64)> = run("readelf", &["-lW"])
        .lines()
        .map(str::split_whitespace)
        .filter_map(|mut w| {
            (w.next() == Some("LOAD")).then(|| {
                let off = hex(w.next().expect("offset"));
                let vaddr = hex(w.next().expect("vaddr"));
                let _paddr = w.next();
                (vaddr, off, hex(w.next().expect("filesz")))
            })
        })
        .collect();
    let symbols = run("nm", &["-S", "--defined-only"]);
    names
        .iter()
        .map(|name| {
            let (addr, size) = symbols
                .lines()
                .find_map(|l| {
                    let w: Vec<&str> = l.split_whitespace().collect();
                    (w.len() == 4 && w[3] == *name).then(|| (hex(w[0]), hex(w[1])))
                })
                .unwrap_or_else(|| panic!("{name} not in the symbol table of {}", path.display()));
            let &(vaddr, off, _) = loads
                .iter()
                .find(|&&(v, _, size)| v <= addr && addr < v + size)
                .unwrap_or_else(|| panic!("{name} at {addr:#x} is in no LOAD segment"));
            let start = addr - vaddr + off;
            (start, start + size)
        })
        .collect()
}

/// A stripped program (no symbol table; `.eh_frame` is kept): stacks are still unwound to
/// `main`, and its frames keep module + file offset, each inside the function it stands for
/// (offsets from the unstripped copy's symbols). No frame is a bare address.
#[test]
fn stripped_program_keeps_module_and_offset() {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = "prof-c-strip";
    let bin = build(
        Build::C {
            frame_pointers: false,
        },
        dir.path(),
        name,
    );
    let unstripped = dir.path().join("unstripped");
    std::fs::copy(&bin, &unstripped).expect("copy");
    let status = Command::new("strip").arg(&bin).status().expect("run strip");
    assert!(status.success(), "strip failed");
    let ranges = function_offsets(&unstripped, &["leaf_spin", "middle", "outer", "main"]);
    let program = Program::start(&bin, &[RUN_FOR]);
    let pid = program.pid();
    let out = profile(dir.path(), &["--pid", &pid.to_string()]);
    drop(program);
    let samples = samples_of(&out.pprof, pid);
    let total: u64 = samples.iter().map(|s| s.count).sum();
    let prefix = format!("{name}+0x");
    let in_range = |frame: &str, &(start, end): &(u64, u64)| {
        frame
            .strip_prefix(&prefix)
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .is_some_and(|off| start <= off && off < end)
    };
    let whole: u64 = samples
        .iter()
        .filter(|s| {
            s.user_full.len() > ranges.len()
                && s.user_full.iter().zip(&ranges).all(|(f, r)| in_range(f, r))
        })
        .map(|s| s.count)
        .sum();
    let listing = listing(&samples);
    assert!(total >= 50, "only {total} samples:\n{}", out.stderr);
    assert!(
        whole * 10 >= total * 9,
        "{whole} of {total} samples have leaf_spin..main as {prefix}… in their ranges \
         {ranges:x?}:\n{listing}"
    );
    for s in &samples {
        for f in s.user_full.iter().chain(&s.kernel) {
            assert!(
                !f.starts_with("0x") && !f.starts_with('+'),
                "a bare address: {f}"
            );
        }
    }
    assert!(
        out.svg.contains(&prefix),
        "the SVG names no {prefix}… frame"
    );
}

/// Go's own pprof (`go tool pprof`, which Pyroscope's and Grafana's readers share the format
/// with) reads the file: its `-traces` listing has the test program's chain in ≥ 90% of the
/// samples, and its total agrees with the independent decoder's.
#[test]
fn go_tool_pprof_reads_the_profile() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = build(
        Build::C {
            frame_pointers: false,
        },
        dir.path(),
        "prof-c-go",
    );
    let program = Program::start(&bin, &[RUN_FOR]);
    let pid = program.pid();
    let out = profile(dir.path(), &["--pid", &pid.to_string()]);
    drop(program);
    let decoded: u64 = samples_of(&out.pprof, pid).iter().map(|s| s.count).sum();
    let pprof = Command::new("go")
        .args(["tool", "pprof", "-traces", "-sample_index=samples"])
        .arg(dir.path().join("cpu.pb.gz"))
        .env("HOME", dir.path())
        .output()
        .expect("run go tool pprof (scripts/setup.sh --tests installs golang-go)");
    let text = String::from_utf8_lossy(&pprof.stdout);
    assert!(
        pprof.status.success(),
        "go tool pprof failed: {}",
        String::from_utf8_lossy(&pprof.stderr)
    );
    assert!(text.contains("Type: samples"), "no sample type:\n{text}");
    // Each trace: a separator line, its labels ("pid:  123"), then "<count> <leaf>" and one
    // line per caller.
    #[derive(Default)]
    struct Trace {
        count: u64,
        frames: Vec<String>,
        labels: Vec<(String, String)>,
    }
    let mut traces: Vec<Trace> = Vec::new();
    for line in text.lines() {
        if line.starts_with("-----") {
            traces.push(Trace::default());
            continue;
        }
        let Some(t) = traces.last_mut() else {
            continue;
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [key, value] if key.ends_with(':') && t.frames.is_empty() => t
                .labels
                .push((key.trim_end_matches(':').to_string(), (*value).to_string())),
            [n, f] if t.frames.is_empty() => {
                t.count = n.parse().unwrap_or(0);
                t.frames.push((*f).to_string());
            }
            [f] if !t.frames.is_empty() => t.frames.push((*f).to_string()),
            _ => {}
        }
    }
    let pid_s = pid.to_string();
    for t in traces.iter().filter(|t| t.count > 0) {
        assert!(
            t.labels.contains(&("pid".into(), pid_s.clone()))
                && t.labels.contains(&("comm".into(), "prof-c-go".into())),
            "labels of a trace: {:?}",
            t.labels
        );
    }
    let total: u64 = traces.iter().map(|t| t.count).sum();
    let chain: u64 = traces
        .iter()
        .filter(|t| {
            t.frames.len() >= CHAIN.len() && t.frames.iter().zip(CHAIN).all(|(a, b)| a == b)
        })
        .map(|t| t.count)
        .sum();
    assert!(decoded >= 50, "only {decoded} samples:\n{}", out.stderr);
    assert_eq!(total, decoded, "go tool pprof's total:\n{text}");
    assert!(
        chain * 10 >= total * 9,
        "{chain} of {total} samples with the chain in go tool pprof:\n{text}"
    );
}
