//! rabbitmq-server (Debian's) with every file in temp dirs: run as root straight from
//! `/usr/lib/rabbitmq/bin` (the `/usr/sbin` wrapper would `su rabbitmq` and use
//! `/var/lib/rabbitmq`), its own epmd on a free port, the default `guest` user, no plugins.
//! Nothing of the system install (its state, its epmd, its cookie) is read or written.

use std::fs;
use std::net::Ipv4Addr;
use std::thread;
use std::time::{Duration, Instant};

use super::{Daemon, START_TIMEOUT};
use crate::util::{children_of, exe_name, free_port, send_signal, wait_until};

const RABBITMQ_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const EPMD: &str = "/usr/bin/epmd";
/// The line rabbit logs once every boot step has run.
const STARTED: &str = "Server startup complete";

/// A broker: the `rabbitmq-server` script (which runs beam.smp and stops it on SIGTERM) and
/// the epmd it registers with. Dropping it stops the broker, kills whatever the VM started
/// (erl_child_setup, inet_gethost, the disk monitor's shell) and then epmd.
pub struct RabbitMq {
    /// The AMQP port, on 127.0.0.1.
    pub port: u16,
    server: Option<Daemon>,
    epmd: Option<Daemon>,
    beam: u32,
}

impl RabbitMq {
    /// The Erlang VM's pid (beam.smp): the process that owns the broker's sockets.
    pub fn pid(&self) -> u32 {
        self.beam
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        self.server.as_ref().map(Daemon::log).unwrap_or_default()
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        // Once beam.smp is gone its children are re-parented: note them while they are ours.
        let started: Vec<(u32, String)> = self
            .server
            .as_ref()
            .map(|s| descendants(s.pid()))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|pid| start_time(pid).map(|t| (pid, t)))
            .collect();
        // SIGTERM to the script: it stops the broker (`kill -TERM` beam.smp, then waits).
        drop(self.server.take());
        for (pid, t) in &started {
            if start_time(*pid).as_ref() == Some(t) {
                send_signal(*pid, libc::SIGKILL);
            }
        }
        // The orphans come to us (a subreaper, see `rabbitmq_server`): reap them.
        let mut left = started;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !left.is_empty() && Instant::now() < deadline {
            left.retain(|(pid, t)| !reap(*pid) && start_time(*pid).as_ref() == Some(t));
            if !left.is_empty() {
                thread::sleep(Duration::from_millis(20));
            }
        }
        drop(self.epmd.take());
        reap_adopted(None);
    }
}

/// rabbitmq-server on 127.0.0.1:`port` (AMQP 0-9-1, user `guest`/`guest`), ready (its boot
/// finished and the port accepts connections).
pub fn rabbitmq_server(port: u16) -> RabbitMq {
    // Three different ports (a port just released may come back).
    let epmd_port = loop {
        let p = free_port();
        if p != port {
            break p;
        }
    };
    let dist_port = loop {
        let p = free_port();
        if p != port && p != epmd_port {
            break p;
        }
    };
    let epmd_dir = tempfile::Builder::new()
        .prefix("wirelens-epmd-")
        .tempdir()
        .expect("temp dir");
    let epmd_argv = vec![
        EPMD.to_string(),
        "-port".to_string(),
        epmd_port.to_string(),
        "-address".to_string(),
        "127.0.0.1".to_string(),
    ];
    let mut epmd = Daemon::spawn("epmd", epmd_dir, &epmd_argv, &[]);
    epmd.wait_listening(Ipv4Addr::LOCALHOST, epmd_port);

    let dir = tempfile::Builder::new()
        .prefix("wirelens-rabbitmq-")
        .tempdir()
        .expect("temp dir");
    let d = dir.path();
    let path = |name: &str| d.join(name).display().to_string();
    // Read instead of /etc/rabbitmq/rabbitmq-env.conf.
    fs::write(d.join("rabbitmq-env.conf"), "").expect("write rabbitmq-env.conf");
    fs::write(d.join("enabled_plugins"), "[].\n").expect("write enabled_plugins");
    // A nearly full disk must not block publishers (Connection.Blocked) mid-test.
    fs::write(
        d.join("rabbitmq.conf"),
        "disk_free_limit.absolute = 1MB\nlog.console = true\nlog.console.level = info\n\
         log.file = false\n",
    )
    .expect("write rabbitmq.conf");
    let node = format!("wirelens-{port}@localhost");
    let (port_s, dist_s, epmd_s) = (
        port.to_string(),
        dist_port.to_string(),
        epmd_port.to_string(),
    );
    let (home, env_file, mnesia, logs, conf, advanced, plugins) = (
        d.display().to_string(),
        path("rabbitmq-env.conf"),
        path("mnesia"),
        path("log"),
        path("rabbitmq.conf"),
        path("advanced.config"),
        path("enabled_plugins"),
    );
    let envs = [
        // The Erlang cookie goes to $HOME/.erlang.cookie.
        ("HOME", home.as_str()),
        ("RABBITMQ_CONF_ENV_FILE", env_file.as_str()),
        ("RABBITMQ_MNESIA_BASE", mnesia.as_str()),
        ("RABBITMQ_LOG_BASE", logs.as_str()),
        ("RABBITMQ_NODENAME", node.as_str()),
        ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1"),
        ("RABBITMQ_NODE_PORT", port_s.as_str()),
        ("RABBITMQ_DIST_PORT", dist_s.as_str()),
        ("RABBITMQ_CONFIG_FILE", conf.as_str()),
        ("RABBITMQ_ADVANCED_CONFIG_FILE", advanced.as_str()),
        ("RABBITMQ_ENABLED_PLUGINS_FILE", plugins.as_str()),
        // Distribution on loopback only, like everything else.
        (
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
            "-kernel inet_dist_use_interface {127,0,0,1}",
        ),
        // Every erl, the broker's and the one it runs to make sure epmd is up: use the epmd
        // above (each would start a daemon of its own).
        ("ERL_FLAGS", "-start_epmd false"),
        ("ERL_EPMD_ADDRESS", "127.0.0.1"),
        ("ERL_EPMD_PORT", epmd_s.as_str()),
    ];
    // The VM's helpers (inet_gethost...) outlive it for a moment; orphaned, they would come to
    // pid 1, which may never reap them. As a subreaper this process gets them, and the drop
    // reaps them.
    // SAFETY: prctl(2) with integer arguments; it touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let argv = vec![RABBITMQ_SERVER.to_string()];
    let mut server = Daemon::spawn("rabbitmq-server", dir, &argv, &envs);
    let beam = wait_until("rabbitmq-server to start beam.smp", START_TIMEOUT, || {
        server.assert_running();
        children_of(server.pid()).into_iter().find(|&pid| {
            fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.ends_with("beam.smp"))
        })
    });
    let mut broker = RabbitMq {
        port,
        server: Some(server),
        epmd: Some(epmd),
        beam,
    };
    let server = broker.server.as_mut().expect("just set");
    wait_until("rabbitmq-server boot to complete", START_TIMEOUT, || {
        server.assert_running();
        server.log().contains(STARTED).then_some(())
    });
    server.wait_listening(Ipv4Addr::LOCALHOST, port);
    assert_eq!(exe_name(beam), "beam.smp");
    // The throwaway node rabbit runs at boot (to make sure epmd is up) left its helpers.
    reap_adopted(broker.epmd.as_ref().map(Daemon::pid));
    broker
}

/// What the Erlang VMs start (and leave to the subreaper when they exit first).
const ERLANG_HELPERS: [&str; 4] = ["beam.smp", "erl_child_setup", "inet_gethost", "epmd"];

/// Reaps the exited Erlang helpers that were re-parented to this process (a subreaper), but
/// not `ours` (a child whose handle will wait for it).
fn reap_adopted(ours: Option<u32>) {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let mut fields = stat[close + 1..].split_whitespace();
        let (state, ppid) = (fields.next(), fields.next());
        let adopted = ppid == Some(&me.to_string()) && Some(pid) != ours;
        if state == Some("Z") && adopted && ERLANG_HELPERS.contains(&comm) {
            reap(pid);
        }
    }
}

/// Every live descendant of `root`, children before their own children.
fn descendants(root: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut next = vec![root];
    while let Some(pid) = next.pop() {
        for child in children_of(pid) {
            out.push(child);
            next.push(child);
        }
    }
    out
}

/// Reaps `pid` if it is a child of ours that exited; whether it did.
fn reap(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    let mut status = 0;
    // SAFETY: waitpid(2) writes only the status integer it is given.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) == pid }
}

/// The process's start time (`/proc/<pid>/stat` field 22), to tell it from a reused pid.
fn start_time(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // Fields from 3 (state) on; the start time is field 22.
    rest.split_whitespace().nth(19).map(str::to_owned)
}
