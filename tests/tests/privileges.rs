//! Least privilege: the agent run by `setpriv` as user 0 with exactly the README's capability
//! set (inheritable, ambient and bounding sets, `no_new_privs`: what a pod with
//! `capabilities: {drop: [ALL], add: [...]}` and `allowPrivilegeEscalation: false` gets)
//! passes an HTTP/1 end-to-end check; with any required one taken away it exits at once with a
//! line naming it. TLS plaintext needs `CAP_SYS_ADMIN` on this kernel (uprobes): with it the
//! HTTPS spans come, without it the agent says so and none come.
//!
//! Needs root (to hand out the capabilities), `setpriv` (util-linux) and a built agent; run one
//! at a time (`-- --test-threads=1`).

use std::path::Path;
use std::time::Duration;

use wirelens_tests::{
    Agent, ClientRun, Exchange, Finished, Otlp, Setup, capability_mask, curl,
    documented_capabilities, effective_capabilities, free_port, setpriv_args,
};

const SETPRIV: &str = "/usr/bin/setpriv";
const UA: &str = "wirelens-privileges";

/// The warning of an agent without `CAP_SYS_ADMIN`.
const NO_UPROBES: &str = "missing capability CAP_SYS_ADMIN: needed for uprobes";

/// Starts nginx, a receiver and the agent with exactly `caps`, checking the agent holds them.
fn start(name: &str, tls: bool, caps: &[String]) -> Setup {
    let setup = Setup::start_wrapped(
        name,
        Otlp::Grpc,
        tls,
        Path::new(SETPRIV),
        &setpriv_args(caps),
    );
    // The running agent holds exactly the set: no more (the test would prove nothing), no less.
    assert_eq!(
        effective_capabilities(setup.agent.pid()),
        capability_mask(caps),
        "CapEff of the agent under setpriv, for {caps:?}"
    );
    setup
}

/// Asserts one server and one client span per target, every field.
fn assert_exchanges(done: &Finished, targets: &[&str], run: &ClientRun) {
    done.assert_counts(targets.len(), targets.len());
    for target in targets {
        let ex = Exchange {
            method: "GET",
            target,
            status: 200,
            user_agent: UA,
        };
        let (path, query) = target.split_once('?').expect("query");
        let server = done
            .servers()
            .into_iter()
            .find(|s| s.str_attr("url.path") == path && s.str_attr("url.query") == query)
            .unwrap_or_else(|| panic!("no server span for {target}"));
        // The nginx worker runs as another user: its Resource (the executable, from
        // /proc/<pid>/exe) needs CAP_SYS_PTRACE.
        done.assert_server_span(server, &ex);
        let full = format!("{}://127.0.0.1:{}{target}", done.scheme, done.port);
        let client = done
            .clients()
            .into_iter()
            .find(|s| s.str_attr("url.full") == full)
            .unwrap_or_else(|| panic!("no client span for {full}"));
        done.assert_client_span(client, &ex, run, None);
    }
}

#[test]
fn http1_end_to_end_with_only_the_required_capabilities() {
    let caps = documented_capabilities().required;
    let setup = start("privileges_http1", false, &caps);
    let targets = ["/index.html?cap=1", "/index.html?cap=2"];
    let urls: Vec<String> = targets.iter().map(|t| setup.nginx.url(t)).collect();
    let run = curl(&[
        "-A",
        UA,
        "-o",
        "/dev/null",
        &urls[0],
        "-o",
        "/dev/null",
        &urls[1],
    ]);
    let done = setup.finish(4);
    assert_exchanges(&done, &targets, &run);
    let counters = done.output.counters();
    assert_eq!(counters["records"], 4, "{counters:?}");
    assert_eq!(counters["drops"], 0, "{counters:?}");
    assert!(
        done.output.stderr.contains(NO_UPROBES),
        "the agent should say what it loses without CAP_SYS_ADMIN; stderr:\n{}",
        done.output.stderr
    );
}

#[test]
fn tls_plaintext_needs_sys_admin_for_uprobes() {
    let documented = documented_capabilities();
    assert_eq!(documented.optional, ["CAP_SYS_ADMIN"]);
    let targets = ["/index.html?tls=1"];

    // With it: the OpenSSL uprobes attach and the HTTPS exchange gives both spans.
    let all: Vec<String> = documented
        .required
        .iter()
        .chain(&documented.optional)
        .cloned()
        .collect();
    let setup = start("privileges_tls", true, &all);
    let url = setup.nginx.tls_url(targets[0]);
    let run = curl(&["-k", "--http1.1", "-A", UA, "-o", "/dev/null", &url]);
    let done = setup.finish(2);
    assert_exchanges(&done, &targets, &run);
    assert!(
        !done.output.stderr.contains(NO_UPROBES),
        "{}",
        done.output.stderr
    );

    // Without it: the agent runs, says why, and sees only ciphertext, which it drops.
    let setup = start(
        "privileges_tls_without_sys_admin",
        true,
        &documented.required,
    );
    let url = setup.nginx.tls_url(targets[0]);
    curl(&["-k", "--http1.1", "-A", UA, "-o", "/dev/null", &url]);
    let done = setup.finish_now();
    done.assert_counts(0, 0);
    assert!(
        done.output.stderr.contains(NO_UPROBES),
        "stderr:\n{}",
        done.output.stderr
    );
}

#[test]
fn each_missing_capability_is_named_and_the_agent_exits() {
    let caps = documented_capabilities().required;
    let port = free_port().to_string();
    for missing in &caps {
        let rest: Vec<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        let binary = Agent::binary();
        let mut args = setpriv_args(&rest);
        args.push(binary.to_str().expect("utf-8 path").to_string());
        args.extend(["--port".to_string(), port.clone()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let cmd = Agent::command(Path::new(SETPRIV), &args, &[]);
        let out = Agent::spawn_command(cmd).wait_exit(Duration::from_secs(30));
        assert!(
            !out.status.success(),
            "started without {missing}; stderr:\n{}",
            out.stderr
        );
        let named: Vec<&str> = out
            .stderr
            .lines()
            .filter_map(|l| l.strip_prefix("wirelens: error: missing capability "))
            .filter_map(|l| l.split(':').next())
            .collect();
        assert_eq!(
            named,
            [missing.as_str()],
            "one line naming exactly {missing}; stderr:\n{}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("probes attached"),
            "it must stop before attaching anything; stderr:\n{}",
            out.stderr
        );
    }
}
