//! Servers the messaging, DNS and HTTP/2 tests start: each a child process with its files in a temp
//! dir, listening on 127.0.0.x only, stopped (and its children killed) when dropped. One
//! module per server; [`Daemon`] is the process handle they share.

mod dns;
mod kafka;
mod nats;
mod nghttpd;
mod rabbitmq;

pub use dns::{DNS_HOSTS, dnsmasq};
pub use kafka::{TANSU_BIN, tansu, tansu_bin};
pub use nats::nats_server;
pub use nghttpd::nghttpd;
pub use rabbitmq::{RabbitMq, rabbitmq_server};

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::util::{children_of, read_lossy, send_signal, tail, terminate, wait_until};

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A server process; stopped on drop.
pub struct Daemon {
    child: Child,
    dir: TempDir,
    /// What it is, for messages.
    pub what: &'static str,
}

impl Daemon {
    /// Starts `argv` with its output in `<dir>/server.log`.
    pub fn spawn(what: &'static str, dir: TempDir, argv: &[String], envs: &[(&str, &str)]) -> Self {
        let log = fs::File::create(dir.path().join("server.log")).expect("create server log");
        let err = log.try_clone().expect("clone log handle");
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .envs(envs.iter().copied())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: spawn {}: {e}", argv[0]));
        Daemon { child, dir, what }
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("server.log"))
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited early ({status}):\n{}",
                self.what,
                tail(&self.log(), 30)
            );
        }
    }

    /// Waits until the daemon listens on `ip`:`port` (TCP), without connecting: while nothing
    /// listens, a connect may pick that very port as its source and connect to itself (TCP
    /// simultaneous open), and then the server cannot bind it. A server that boots for
    /// seconds (RabbitMQ) would hit that now and then.
    pub fn wait_listening(&mut self, ip: Ipv4Addr, port: u16) {
        let what = format!("{} listening on {ip}:{port}", self.what);
        wait_until(&what, START_TIMEOUT, || {
            self.assert_running();
            listening(ip, port).then_some(())
        });
    }
}

/// Whether a TCP socket listens on `ip`:`port` (`/proc/net/tcp`, state `0A`; addresses are
/// written as the bytes in memory, so 127.0.0.1 reads `0100007F`).
fn listening(ip: Ipv4Addr, port: u16) -> bool {
    let local = format!("{:08X}:{port:04X}", u32::from_le_bytes(ip.octets()));
    fs::read_to_string("/proc/net/tcp").is_ok_and(|table| {
        table.lines().skip(1).any(|line| {
            let mut fields = line.split_whitespace();
            // sl, local_address, rem_address, st
            let (address, state) = (fields.nth(1), fields.nth(1));
            address == Some(local.as_str()) && state == Some("0A")
        })
    })
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let children = children_of(self.child.id());
        terminate(&mut self.child, libc::SIGTERM, Duration::from_secs(10));
        for pid in children {
            send_signal(pid, libc::SIGKILL);
        }
    }
}
