//! dnsmasq: an authoritative-only DNS server for `.test` names.

use std::fs;

use super::Daemon;

/// Names dnsmasq answers for: `web.test` → 10.1.2.3 (A only), `alias.test` → CNAME web.test.
pub const DNS_HOSTS: &str = "10.1.2.3 web.test\n";

/// dnsmasq on `ip`:`port` (UDP and TCP), authoritative for `.test` from [`DNS_HOSTS`]: other
/// `.test` names get NXDOMAIN; nothing is forwarded.
pub fn dnsmasq(ip: &str, port: u16) -> Daemon {
    let dir = tempfile::Builder::new()
        .prefix("wirelens-dns-")
        .tempdir()
        .expect("temp dir");
    let hosts = dir.path().join("hosts");
    fs::write(&hosts, DNS_HOSTS).expect("write hosts");
    let argv: Vec<String> = [
        "/usr/sbin/dnsmasq",
        "--no-daemon",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--no-negcache",
        "--cache-size=0",
        "--local=/test/",
        "--cname=alias.test,web.test",
        "--user=root",
        "--pid-file",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("--listen-address={ip}"),
        format!("--port={port}"),
        format!("--addn-hosts={}", hosts.display()),
    ])
    .collect();
    let mut daemon = Daemon::spawn("dnsmasq", dir, &argv, &[]);
    // dnsmasq binds its UDP socket before its TCP one.
    daemon.wait_listening(ip.parse().expect("an IPv4 address"), port);
    daemon
}
