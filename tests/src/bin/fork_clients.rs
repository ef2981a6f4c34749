//! `fork_clients PORT COUNT PARALLEL`: COUNT short-lived client processes, each forked (no
//! exec) to send one `GET /` over its own connection to 127.0.0.1:PORT, read the answer to the
//! end and exit; at most PARALLEL alive at once. For the cardinality test
//! (`tests/tests/cardinality.rs`): every child is a process of its own, so a Resource of its
//! own in the agent's metrics, like the workers of a forking server or a shell loop of clients.
//!
//! Prints `ok=N failed=M` (children that got a `200` answer, and the others) on stdout.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numeric arguments: PORT COUNT PARALLEL"))
        .collect();
    let [port, count, parallel] = args[..] else {
        panic!("usage: fork_clients PORT COUNT PARALLEL");
    };
    let port = u16::try_from(port).expect("a port number");
    let (mut started, mut alive, mut ok, mut failed) = (0u64, 0u64, 0u64, 0u64);
    while started < count || alive > 0 {
        if started < count && alive < parallel {
            // SAFETY: this process is single-threaded; the child only does socket I/O and
            // leaves with _exit, running no destructor of the parent's state.
            let pid = unsafe { libc::fork() };
            match pid {
                0 => {
                    let code = if one_request(port) { 0 } else { 1 };
                    // SAFETY: ends the child at once, as fork's children should.
                    unsafe { libc::_exit(code) };
                }
                -1 => panic!("fork failed: {}", std::io::Error::last_os_error()),
                _ => {
                    started += 1;
                    alive += 1;
                }
            }
            continue;
        }
        let mut status = 0;
        // SAFETY: waits for any child; status is a valid out pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid > 0 {
            alive -= 1;
            if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                ok += 1;
            } else {
                failed += 1;
            }
        }
    }
    println!("ok={ok} failed={failed}");
}

fn one_request(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    if stream.read_to_end(&mut answer).is_err() {
        return false;
    }
    answer.starts_with(b"HTTP/1.1 200 ")
}
