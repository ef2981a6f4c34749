//! Integration-test harness for wirelens: the built agent loaded into this kernel, real peers on
//! 127.0.0.1, and an independent OTLP receiver.
//!
//! It is not a library for the agent: nothing here is used by the `wirelens` binary, and it
//! shares no code with it, so that what the agent exports is decoded by the official protos
//! (`tests/receiver/otlp_receiver.py`), not by our own types.
//!
//! Every helper panics with a message that says what it waited for and what the process printed,
//! every wait is bounded, and every process a helper starts is ended when its handle drops.
//!
//! # Examples
//!
//! ```no_run
//! use wirelens_tests::{Otlp, Setup, curl};
//!
//! let setup = Setup::start("example", Otlp::Grpc);
//! curl(&["-o", "/dev/null", &setup.nginx.url("/index.html")]);
//! let done = setup.finish(2);
//! done.assert_counts(1, 1);
//! ```
//!
//! Needs root, `scripts/setup.sh` (nginx, curl, the venv at `/opt/wirelens-venv`) and a built
//! agent (`cargo build --release -p wirelens`, or `WIRELENS_BIN`).

#![deny(missing_docs)]

mod agent;
mod bpf;
mod clients;
mod containers;
mod databases;
mod fixture_pcap;
mod kube_standin;
mod messaging;
mod nginx;
mod otlp;
mod privileges;
mod prometheus;
mod receiver;
mod scenario;
mod semconv_check;
mod servers;
mod setup;
mod util;

pub use agent::{Agent, AgentOutput, stderr_counter};
pub use bpf::bpf_objects;
pub use clients::{ClientProcess, ClientRun, curl, python_client};
pub use containers::{
    Container, Containerd, CtrTask, Network, OCI_RUNTIME, Rootfs, busybox_image, logs, podman,
};
pub use databases::{
    DB_NAME, DbFinished, DbKind, DbOp, DbServer, DbSetup, PG_BIN, db_python_client, pg_bin,
    run_client, server_exe,
};
pub use fixture_pcap::write_fixture_pcaps;
pub use kube_standin::{StandIn, cri_annotations};
pub use messaging::{Expect, PARENT_SPAN_ID, TRACE_ID, check_span, check_spans, python_script};
pub use nginx::Nginx;
pub use otlp::{
    HTTP_DURATION_BOUNDS, LogRecord, MetricPoint, Span, flatten_metrics_of, histogram_count,
    histogram_series, sum_total, summarize_spans,
};
pub use privileges::{
    DocumentedCapabilities, capability_mask, documented_capabilities, effective_capabilities,
    setpriv_args,
};
pub use prometheus::{Prometheus, Sample, http_get};
pub use receiver::{Otlp, Receiver};
pub use scenario::{Done, Scenario};
pub use semconv_check::check_semconv;
pub use servers::{
    DNS_HOSTS, Daemon, RabbitMq, TANSU_BIN, dnsmasq, nats_server, nghttpd, rabbitmq_server, tansu,
    tansu_bin,
};
pub use setup::{Exchange, Finished, Setup};
pub use util::{
    MtlsFiles, comm, corpus_captures, exe_name, fixture, free_port, host_name, poll, python,
    send_signal, tail, wait_until, workspace_root, write_actual, write_certificate,
    write_mtls_certificates,
};
