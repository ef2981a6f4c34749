//! The harness on its own, without the agent: the receiver decodes what the official protos
//! encode, nginx serves every location the scenarios use, and the python clients behave. When
//! an agent test fails, these say whether the harness is to blame.

use std::collections::BTreeSet;
use std::path::PathBuf;

use wirelens_tests::{
    Agent, ClientProcess, Nginx, Receiver, curl, free_port, histogram_count, python, python_client,
};

fn send_sample(receiver: &Receiver) -> Vec<String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("receiver/send_sample.py");
    let grpc = receiver.grpc_endpoint();
    let http = receiver.http_endpoint();
    let argv = [
        python().display().to_string(),
        script.display().to_string(),
        "--grpc-port".into(),
        grpc.rsplit(':').next().unwrap().into(),
        "--http-port".into(),
        http.rsplit(':').next().unwrap().into(),
    ];
    let run = ClientProcess::spawn(&argv, &[]).wait();
    assert!(
        run.status.success(),
        "send_sample.py failed:\n{}",
        run.stderr
    );
    serde_json::from_value(run.json()).expect("outcomes")
}

#[test]
fn receiver_decodes_grpc_and_http() {
    let receiver = Receiver::start();
    assert_eq!(send_sample(&receiver), ["ok", "ok", "ok", "ok"]);

    let requests = receiver.requests();
    let kinds: Vec<(String, String)> = requests
        .iter()
        .map(|r| {
            (
                r["signal"].as_str().unwrap().into(),
                r["transport"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("traces", "grpc"),
            ("traces", "http"),
            ("metrics", "grpc"),
            ("metrics", "http")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );

    let spans = receiver.spans();
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].name, "grpc-span");
    assert_eq!(spans[1].name, "http-span");
    for span in &spans {
        assert!(span.is_server());
        assert_eq!(span.res_str("service.name"), "sample");
        assert_eq!(span.res_int("process.pid"), 4242);
        assert_eq!(span.int_attr("http.response.status_code"), 500);
        assert_eq!(span.str_attr("url.path"), "/x");
        assert_eq!(span.status_code, "STATUS_CODE_ERROR");
        assert_eq!(span.trace_id, "0102030405060708090a0b0c0d0e0f10");
        assert_eq!(span.span_id, "0102030405060708");
        assert_eq!((span.start_ns, span.end_ns), (1_000, 2_000));
    }

    let points = receiver.metrics();
    assert_eq!(points.len(), 2);
    assert_eq!(points[0].unit, "s");
    assert_eq!(points[0].bucket_counts, [3, 0, 0]);
    assert_eq!(points[0].explicit_bounds, [0.1, 1.0]);
    assert_eq!(points[0].sum, Some(0.5));
    // Two points of one cumulative series at the same time: the later one stands.
    assert_eq!(histogram_count(&points, "http.server.request.duration"), 7);
    assert_eq!(receiver.rejected(), 0);
}

#[test]
fn receiver_fails_first_requests() {
    let receiver = Receiver::start_failing_first(2, "all");
    assert_eq!(send_sample(&receiver), ["UNAVAILABLE", "503", "ok", "ok"]);
    assert_eq!(receiver.rejected(), 2);
    assert_eq!(receiver.spans().len(), 0);
    assert_eq!(receiver.metrics().len(), 2);
}

#[test]
fn nginx_serves_every_location() {
    let nginx = Nginx::start(free_port());
    let code = |path: &str| {
        curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
            &nginx.url(path),
        ])
        .stdout
    };
    assert!(code("/index.html").starts_with("200 "));
    assert_eq!(code("/big.bin"), "200 1048576");
    assert!(code("/missing").starts_with("404 "));
    assert!(code("/error").starts_with("500 "));

    // gzip on the fly: chunked, and a second request on the same connection still works.
    let run = curl(&[
        "--compressed",
        "-D",
        "-",
        "-o",
        "/dev/null",
        &nginx.url("/chunked"),
        "-o",
        "/dev/null",
        &nginx.url("/index.html"),
        "-w",
        r"%{local_port}\n",
    ]);
    let headers = run.stdout.to_ascii_lowercase();
    assert!(
        headers.contains("transfer-encoding: chunked"),
        "{}",
        run.stdout
    );
    assert!(headers.contains("content-encoding: gzip"), "{}", run.stdout);
    let ports: BTreeSet<&str> = run
        .stdout
        .lines()
        .filter(|l| l.chars().all(|c| c.is_ascii_digit()) && !l.is_empty())
        .collect();
    assert_eq!(
        ports.len(),
        1,
        "two requests, one connection: {}",
        run.stdout
    );

    // A 100 KB POST is read in full, answered 201, and the connection stays usable.
    let port = nginx.port.to_string();
    let upload = python_client(&["upload", "--port", &port, "--size", "102400"], &[]);
    assert_eq!(upload.json()["statuses"], serde_json::json!([201, 200]));
    assert_eq!(upload.json()["pid"], upload.pid);
    assert_eq!(upload.json()["exe_name"], upload.exe_name.as_str());
    assert!(
        nginx
            .error_log()
            .lines()
            .all(|l| !l.contains("[alert]") && !l.contains("[emerg]"))
    );
}

#[test]
fn python_clients_pipeline_and_concurrency() {
    let nginx = Nginx::start(free_port());
    let port = nginx.port.to_string();

    let run = python_client(&["pipeline", "--port", &port, "--count", "10"], &[]);
    assert_eq!(run.json()["statuses"], serde_json::json!(vec![200; 10]));

    let run = python_client(&["concurrent", "--port", &port, "--count", "200"], &[]);
    let report = run.json();
    assert_eq!(report["statuses"], serde_json::json!(vec![200; 200]));
    let ports: BTreeSet<u64> = report["local_ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert_eq!(ports.len(), 200, "200 distinct connections");
}

#[test]
fn python_client_holds_its_connection() {
    let nginx = Nginx::start(free_port());
    let port = nginx.port.to_string();
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let mut client = ClientProcess::python(
        &["hold", "--port", &port, "--go", go.to_str().unwrap()],
        &[],
    );
    let first: serde_json::Value =
        serde_json::from_str(&client.wait_lines(1, std::time::Duration::from_secs(30))[0]).unwrap();
    assert_eq!(first["status"], 200);
    std::fs::write(&go, "").unwrap();
    let run = client.wait();
    assert!(run.status.success(), "{}", run.stderr);
    let second = run.json();
    assert_eq!(second["status"], 200);
    assert_eq!(second["local_port"], first["local_port"]);
}

#[test]
fn agent_helpers_with_a_stand_in() {
    let stand_in = wirelens_tests::fixture("stand_in_agent.sh");
    let cmd = Agent::command(&stand_in, &["--port", "1"], &[("EXTRA", "1")]);
    let mut agent = Agent::spawn_command(cmd);
    agent.wait_ready();
    let out = agent.stop();
    out.assert_success();
    assert_eq!(out.counter("records"), 2);
    assert_eq!(out.counter("export_failures"), 0);
    let records = out.json_records();
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0]["interval"], "1000",
        "test default OTEL_METRIC_EXPORT_INTERVAL"
    );
    assert_eq!(records[0]["args"], "--port 1");
}
