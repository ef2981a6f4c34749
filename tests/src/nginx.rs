//! A private nginx (its own prefix, config and port; never the system one) serving the files and
//! locations the HTTP/1 scenarios need.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::util::{children_of, read_lossy, tail, terminate, wait_until};

const CONFIG_TEMPLATE: &str = include_str!("../fixtures/nginx/nginx.conf.in");
const INDEX_HTML: &str = include_str!("../fixtures/nginx/index.html");

/// Size of `/big.bin`.
pub const BIG_BIN_LEN: usize = 1 << 20;

/// A running nginx master with one worker; stopped on drop.
///
/// It serves the site on `port` in plain HTTP/1, and over TLS (a self-signed certificate for
/// `localhost`, ALPN h2 and http/1.1) on `tls_port`, where `= /error` gives 500 too.
///
/// Locations: `/index.html` (small), `/big.bin` (exactly 1 MiB, sent with sendfile), `/chunked`
/// (text gzip-compressed on the fly, so chunked when the client accepts gzip), `= /error` (500),
/// `= /upload` (201 after reading and discarding a body of up to 10 MiB); anything else is 404.
pub struct Nginx {
    child: Child,
    dir: TempDir,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// The TLS port, on 127.0.0.1.
    pub tls_port: u16,
}

impl Nginx {
    /// Starts nginx on 127.0.0.1:`port` and waits until the port accepts and the worker runs.
    pub fn start(port: u16) -> Self {
        Self::start_with(port, "")
    }

    /// Like [`Nginx::start`], with `location /app/` passed to `http://127.0.0.1:<upstream>`
    /// (HTTP/1.1, keep-alive to the upstream off: one connection per proxied request).
    pub fn start_proxy(port: u16, upstream: u16) -> Self {
        let proxy = format!(
            "location /app/ {{ proxy_pass http://127.0.0.1:{upstream}; proxy_http_version 1.1; }}"
        );
        Self::start_with(port, &proxy)
    }

    fn start_with(port: u16, proxy: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("wirelens-nginx-")
            .tempdir()
            .expect("create nginx temp dir");
        let prefix = dir.path();
        write_docroot(prefix);
        crate::util::write_certificate(prefix);
        let tls_port = crate::util::free_port();
        let conf = CONFIG_TEMPLATE
            .replace("@PREFIX@", &prefix.display().to_string())
            .replace("@TLS_PORT@", &tls_port.to_string())
            .replace("@PORT@", &port.to_string())
            .replace("#@PROXY@", proxy);
        let conf_path = prefix.join("nginx.conf");
        fs::write(&conf_path, conf).expect("write nginx.conf");
        let error_log = prefix.join("error.log");

        let child = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(&error_log)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(prefix.join("stderr.log")).expect("create nginx stderr"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn /usr/sbin/nginx (run scripts/setup.sh): {e}"));
        let mut nginx = Nginx {
            child,
            dir,
            port,
            tls_port,
        };

        wait_until(
            &format!("nginx to accept on 127.0.0.1:{port}"),
            Duration::from_secs(15),
            || {
                if let Ok(Some(status)) = nginx.child.try_wait() {
                    panic!(
                        "nginx exited ({status}) before accepting on port {port}:\n{}\n{}",
                        tail(&read_lossy(&nginx.dir.path().join("stderr.log")), 20),
                        tail(&read_lossy(&error_log), 20)
                    );
                }
                let connected = TcpStream::connect_timeout(
                    &([127, 0, 0, 1], port).into(),
                    Duration::from_millis(200),
                )
                .is_ok();
                (connected && nginx.worker_pids().len() == 1).then_some(())
            },
        );
        nginx
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `https://127.0.0.1:<tls_port><path>`.
    pub fn tls_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.tls_port)
    }

    /// The master's pid.
    pub fn master_pid(&self) -> u32 {
        self.child.id()
    }

    /// Pids of the worker processes (one with this config).
    pub fn worker_pids(&self) -> Vec<u32> {
        children_of(self.child.id())
    }

    /// The single worker's pid: the process that serves requests, and the one in server spans.
    pub fn worker_pid(&self) -> u32 {
        let workers = self.worker_pids();
        assert_eq!(
            workers.len(),
            1,
            "expected one nginx worker, found {workers:?}"
        );
        workers[0]
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        read_lossy(&self.dir.path().join("error.log"))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let workers = self.worker_pids();
        // SIGTERM: fast shutdown of master and workers.
        terminate(&mut self.child, libc::SIGTERM, Duration::from_secs(5));
        // A worker whose master was killed keeps the port; end it too.
        for pid in workers {
            crate::util::send_signal(pid, libc::SIGKILL);
        }
    }
}

fn write_docroot(prefix: &Path) {
    let html = prefix.join("html");
    fs::create_dir_all(&html).expect("create docroot");
    fs::create_dir_all(prefix.join("tmp")).expect("create nginx tmp");
    fs::write(html.join("index.html"), INDEX_HTML).expect("write index.html");
    // Deterministic, incompressible-enough content of exactly 1 MiB.
    let mut big = Vec::with_capacity(BIG_BIN_LEN);
    let mut x: u32 = 0x1234_5678;
    while big.len() < BIG_BIN_LEN {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        big.extend_from_slice(&x.to_le_bytes());
    }
    big.truncate(BIG_BIN_LEN);
    fs::write(html.join("big.bin"), big).expect("write big.bin");
    let mut text = String::new();
    for i in 0..2000 {
        text.push_str(&format!(
            "line {i} of the chunked test body, compressible text\n"
        ));
    }
    fs::write(html.join("chunked.txt"), text).expect("write chunked.txt");
    // Readable whatever user the workers run as.
    for dir in [prefix, html.as_path()] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod docroot");
    }
}
