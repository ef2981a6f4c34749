//! nghttpd (nghttp2's HTTP/2 server) over h2c, serving a small docroot.

use std::fs;
use std::net::Ipv4Addr;

use super::Daemon;

/// nghttpd on 127.0.0.1:`port`, h2c only (`--no-tls`), serving `/index.html` (`index` as its
/// body) and `/item.txt`.
pub fn nghttpd(port: u16, index: &str) -> Daemon {
    let dir = tempfile::Builder::new()
        .prefix("wirelens-nghttpd-")
        .tempdir()
        .expect("temp dir");
    let root = dir.path().join("html");
    fs::create_dir(&root).expect("docroot");
    fs::write(root.join("index.html"), index).expect("index");
    fs::write(root.join("item.txt"), "item\n").expect("item");
    let argv: Vec<String> = [
        "/usr/sbin/nghttpd",
        "--no-tls",
        "-a",
        "127.0.0.1",
        "-d",
        &root.display().to_string(),
        &port.to_string(),
    ]
    .map(String::from)
    .to_vec();
    let mut daemon = Daemon::spawn("nghttpd", dir, &argv, &[]);
    daemon.wait_listening(Ipv4Addr::LOCALHOST, port);
    daemon
}
