//! nats-server with one user, `app`/`secret`, who may not publish to `secret.>`.

use std::fs;
use std::net::Ipv4Addr;

use super::Daemon;

/// nats-server on 127.0.0.1:`port`.
pub fn nats_server(port: u16) -> Daemon {
    let dir = tempfile::Builder::new()
        .prefix("wirelens-nats-")
        .tempdir()
        .expect("temp dir");
    let conf = dir.path().join("nats.conf");
    fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{port}\n\
             authorization {{\n  users = [\n    {{user: app, password: secret, \
             permissions: {{publish: {{deny: [\"secret.>\"]}}}}}}\n  ]\n}}\n"
        ),
    )
    .expect("write nats.conf");
    let argv = vec![
        "/usr/sbin/nats-server".to_string(),
        "-c".to_string(),
        conf.display().to_string(),
    ];
    let mut daemon = Daemon::spawn("nats-server", dir, &argv, &[]);
    daemon.wait_listening(Ipv4Addr::LOCALHOST, port);
    daemon
}
