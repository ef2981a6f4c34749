//! tansu: a Kafka-compatible broker (crates.io, built by `scripts/setup.sh`), in-memory storage.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::Daemon;

/// Where `scripts/setup.sh` installs tansu; `TANSU` overrides it.
pub const TANSU_BIN: &str = "/opt/wirelens-tools/bin/tansu";

/// The tansu binary: `TANSU`, else [`TANSU_BIN`].
pub fn tansu_bin() -> PathBuf {
    std::env::var_os("TANSU")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(TANSU_BIN))
}

/// tansu on 127.0.0.1:`port`, advertising that address, keeping topics in memory.
pub fn tansu(port: u16) -> Daemon {
    let dir = tempfile::Builder::new()
        .prefix("wirelens-kafka-")
        .tempdir()
        .expect("temp dir");
    let url = format!("tcp://127.0.0.1:{port}");
    let bin = tansu_bin();
    assert!(
        bin.exists(),
        "{} not found: run scripts/setup.sh (it builds tansu) or set TANSU",
        bin.display()
    );
    let argv = vec![
        bin.display().to_string(),
        "broker".to_string(),
        "--listener-url".to_string(),
        url.clone(),
        "--advertised-listener-url".to_string(),
        url,
        "--storage-engine".to_string(),
        "memory://tansu/".to_string(),
    ];
    let mut daemon = Daemon::spawn("tansu", dir, &argv, &[]);
    daemon.wait_listening(Ipv4Addr::LOCALHOST, port);
    daemon
}
