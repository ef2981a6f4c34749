//! One scenario's processes (nginx, receiver, agent tracing nginx's port) and the asserters for
//! what comes out of them.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::agent::{Agent, AgentOutput};
use crate::clients::ClientRun;
use crate::nginx::Nginx;
use crate::otlp::{MetricPoint, Span, summarize_spans};
use crate::receiver::{Otlp, Receiver};
use crate::util::{exe_name, free_port, host_name, tail, write_actual};

/// How long spans may take to reach the receiver once the traffic is done.
const SPANS_TIMEOUT: Duration = Duration::from_secs(30);

/// nginx, a receiver and an agent with `--port <nginx port>` exporting to the receiver.
pub struct Setup {
    /// Test name (names `tests/actual/<name>.json`).
    pub name: String,
    /// The traced server.
    pub nginx: Nginx,
    /// Where the agent exports.
    pub receiver: Receiver,
    /// The agent, ready.
    pub agent: Agent,
    /// The transport the agent was told to use.
    pub otlp: Otlp,
    /// The traced port is nginx's TLS port.
    pub tls: bool,
    worker_pid: u32,
}

impl Setup {
    /// Starts nginx on a free port, a receiver, and the agent exporting over `otlp`.
    pub fn start(name: &str, otlp: Otlp) -> Self {
        Self::start_with(name, otlp, Receiver::start(), &[])
    }

    /// Like [`Setup::start`] with a given receiver and extra agent arguments.
    pub fn start_with(name: &str, otlp: Otlp, receiver: Receiver, extra_args: &[&str]) -> Self {
        Self::start_agent(name, otlp, Nginx::start(free_port()), receiver, extra_args)
    }

    /// Like [`Setup::start`], tracing nginx's TLS port instead of its plain one.
    pub fn start_tls(name: &str, otlp: Otlp) -> Self {
        Self::start_traced(
            name,
            otlp,
            Nginx::start(free_port()),
            Receiver::start(),
            &[],
            true,
        )
    }

    /// Starts the agent for an nginx and a receiver that already run (say, with a client
    /// connected before the agent).
    pub fn start_agent(
        name: &str,
        otlp: Otlp,
        nginx: Nginx,
        receiver: Receiver,
        extra_args: &[&str],
    ) -> Self {
        Self::start_traced(name, otlp, nginx, receiver, extra_args, false)
    }

    /// Like [`Setup::start`] (or [`Setup::start_tls`] with `tls`), with the agent run by a
    /// wrapper program: `wrapper` with `wrapper_args`, then the agent binary and its arguments
    /// (say, `setpriv` with a capability set).
    pub fn start_wrapped(
        name: &str,
        otlp: Otlp,
        tls: bool,
        wrapper: &Path,
        wrapper_args: &[String],
    ) -> Self {
        Self::start_launched(
            name,
            otlp,
            Nginx::start(free_port()),
            Receiver::start(),
            &[],
            tls,
            Some((wrapper, wrapper_args)),
        )
    }

    fn start_traced(
        name: &str,
        otlp: Otlp,
        nginx: Nginx,
        receiver: Receiver,
        extra_args: &[&str],
        tls: bool,
    ) -> Self {
        Self::start_launched(name, otlp, nginx, receiver, extra_args, tls, None)
    }

    fn start_launched(
        name: &str,
        otlp: Otlp,
        nginx: Nginx,
        receiver: Receiver,
        extra_args: &[&str],
        tls: bool,
        wrapper: Option<(&Path, &[String])>,
    ) -> Self {
        let worker_pid = nginx.worker_pid();
        let port = if tls { nginx.tls_port } else { nginx.port }.to_string();
        let mut args = vec!["--port", port.as_str()];
        args.extend_from_slice(extra_args);
        let env = receiver.env(otlp);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let agent = match wrapper {
            None => Agent::start(&args, &env),
            Some((program, pre)) => {
                let binary = Agent::binary();
                let mut all: Vec<&str> = pre.iter().map(String::as_str).collect();
                all.push(binary.to_str().expect("utf-8 agent path"));
                all.extend_from_slice(&args);
                let mut agent = Agent::spawn_command(Agent::command(program, &all, &env));
                agent.wait_ready();
                agent
            }
        };
        Setup {
            name: name.to_string(),
            nginx,
            receiver,
            agent,
            otlp,
            tls,
            worker_pid,
        }
    }

    /// The nginx worker's pid (the process of the server spans).
    pub fn worker_pid(&self) -> u32 {
        self.worker_pid
    }

    /// Waits (up to 30 s) until at least `expected_spans` spans have arrived, then stops the
    /// agent (SIGINT: it flushes) and collects everything. If they do not arrive it stops
    /// anyway, and the count assertions report what did.
    pub fn finish(self, expected_spans: usize) -> Finished {
        let _ = crate::util::poll(SPANS_TIMEOUT, || {
            self.receiver.spans().len() >= expected_spans
        });
        self.finish_now()
    }

    /// Stops the agent at once (its SIGINT flush must deliver what is pending) and collects.
    pub fn finish_now(self) -> Finished {
        let Setup {
            name,
            nginx,
            receiver,
            agent,
            otlp,
            tls,
            worker_pid,
        } = self;
        let output = agent.stop();
        let done = Finished {
            spans: sorted(receiver.spans()),
            metrics: receiver.metrics(),
            requests: receiver.requests(),
            rejected: receiver.rejected(),
            name,
            port: if tls { nginx.tls_port } else { nginx.port },
            scheme: if tls { "https" } else { "http" },
            version: "1.1",
            worker_pid,
            worker_exe: exe_name(worker_pid),
            otlp,
            output,
            receiver_log: receiver.log(),
            nginx_error_log: nginx.error_log(),
        };
        write_actual(&done.name, &done.to_json());
        done.output.assert_success();
        done
    }
}

fn sorted(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| (s.start_ns, s.end_ns));
    spans
}

/// What a scenario produced, after the agent exited.
pub struct Finished {
    /// Test name.
    pub name: String,
    /// Every span received, by start time.
    pub spans: Vec<Span>,
    /// Every metric data point received.
    pub metrics: Vec<MetricPoint>,
    /// Every accepted export request, raw.
    pub requests: Vec<Value>,
    /// How many export requests the receiver refused (see [`Receiver::start_failing_first`]).
    pub rejected: usize,
    /// nginx's traced port.
    pub port: u16,
    /// `http`, or `https` when the traced port was the TLS one.
    pub scheme: &'static str,
    /// The `network.protocol.version` the span asserters expect (`1.1` unless a test sets it).
    pub version: &'static str,
    /// nginx worker's pid.
    pub worker_pid: u32,
    /// nginx worker's executable base name.
    pub worker_exe: String,
    /// The transport the agent was told to use.
    pub otlp: Otlp,
    /// The agent's exit status and output.
    pub output: AgentOutput,
    receiver_log: String,
    nginx_error_log: String,
}

/// One expected HTTP exchange.
#[derive(Clone, Debug)]
pub struct Exchange<'a> {
    /// Request method.
    pub method: &'a str,
    /// Request target (path and query) as sent.
    pub target: &'a str,
    /// Response status.
    pub status: i64,
    /// User-Agent the client sent.
    pub user_agent: &'a str,
}

impl Finished {
    /// Server spans, by start time.
    pub fn servers(&self) -> Vec<&Span> {
        self.spans.iter().filter(|s| s.is_server()).collect()
    }

    /// Client spans, by start time.
    pub fn clients(&self) -> Vec<&Span> {
        self.spans.iter().filter(|s| s.is_client()).collect()
    }

    /// Asserts exactly `servers` server spans, `clients` client spans and nothing else.
    pub fn assert_counts(&self, servers: usize, clients: usize) {
        let (s, c) = (self.servers().len(), self.clients().len());
        assert!(
            s == servers && c == clients && s + c == self.spans.len(),
            "{}: expected {servers} server + {clients} client spans, got {s} server + {c} client \
             ({} in all):\n{}{}",
            self.name,
            self.spans.len(),
            summarize_spans(&self.spans),
            self.diagnostics()
        );
    }

    /// Asserts that every export request came over the transport the agent was told to use.
    pub fn assert_transport(&self) {
        let want = self.otlp.transport();
        for req in &self.requests {
            assert_eq!(
                req["transport"], want,
                "{}: an export request came over {} instead of {want}",
                self.name, req["transport"]
            );
        }
    }

    /// Asserts the semconv fields of a server span for `ex`, in the nginx worker's Resource.
    pub fn assert_server_span(&self, span: &Span, ex: &Exchange<'_>) {
        let ctx = format!("{}: server span for {} {}", self.name, ex.method, ex.target);
        let (path, query) = split_target(ex.target);
        assert_eq!(span.kind, "SPAN_KIND_SERVER", "{ctx}: kind");
        assert_eq!(span.name, ex.method, "{ctx}: name");
        assert_eq!(span.str_attr("http.request.method"), ex.method, "{ctx}");
        assert_eq!(span.str_attr("url.path"), path, "{ctx}");
        if let Some(query) = query {
            assert_eq!(span.str_attr("url.query"), query, "{ctx}");
        }
        assert_eq!(span.str_attr("url.scheme"), self.scheme, "{ctx}");
        assert_eq!(
            span.int_attr("http.response.status_code"),
            ex.status,
            "{ctx}"
        );
        assert_eq!(span.str_attr("server.address"), "127.0.0.1", "{ctx}");
        assert_eq!(span.int_attr("server.port"), i64::from(self.port), "{ctx}");
        assert_eq!(span.str_attr("client.address"), "127.0.0.1", "{ctx}");
        assert_eq!(
            span.str_attr("network.protocol.version"),
            self.version,
            "{ctx}"
        );
        assert_eq!(span.str_attr("user_agent.original"), ex.user_agent, "{ctx}");
        let want_status = if ex.status >= 500 {
            "STATUS_CODE_ERROR"
        } else {
            "STATUS_CODE_UNSET"
        };
        assert_eq!(span.status_code, want_status, "{ctx}: status");
        assert_times(span, &ctx);
        assert_eq!(
            span.res_str("service.name"),
            self.worker_exe,
            "{ctx}: service.name"
        );
        assert_eq!(
            span.res_int("process.pid"),
            i64::from(self.worker_pid),
            "{ctx}: process.pid"
        );
        assert_eq!(
            span.res_str("process.executable.name"),
            self.worker_exe,
            "{ctx}"
        );
        assert!(
            !span.resource.contains_key("process.command_line"),
            "{ctx}: process.command_line is not exported by default"
        );
        assert_eq!(span.res_str("host.name"), host_name(), "{ctx}: host.name");
    }

    /// Asserts the semconv fields of a client span for `ex`, in `client`'s Resource;
    /// `service_name` is the client's `OTEL_SERVICE_NAME`, if it set one.
    pub fn assert_client_span(
        &self,
        span: &Span,
        ex: &Exchange<'_>,
        client: &ClientRun,
        service_name: Option<&str>,
    ) {
        let ctx = format!("{}: client span for {} {}", self.name, ex.method, ex.target);
        assert_eq!(span.kind, "SPAN_KIND_CLIENT", "{ctx}: kind");
        assert_eq!(span.name, ex.method, "{ctx}: name");
        assert_eq!(span.str_attr("http.request.method"), ex.method, "{ctx}");
        assert_eq!(
            span.str_attr("url.full"),
            format!("{}://127.0.0.1:{}{}", self.scheme, self.port, ex.target),
            "{ctx}"
        );
        assert_eq!(span.str_attr("server.address"), "127.0.0.1", "{ctx}");
        assert_eq!(span.int_attr("server.port"), i64::from(self.port), "{ctx}");
        assert_eq!(
            span.int_attr("http.response.status_code"),
            ex.status,
            "{ctx}"
        );
        assert_eq!(
            span.str_attr("network.protocol.version"),
            self.version,
            "{ctx}"
        );
        assert_eq!(span.str_attr("user_agent.original"), ex.user_agent, "{ctx}");
        if let Some(scheme) = span.attributes.get("url.scheme") {
            assert_eq!(scheme, self.scheme, "{ctx}: url.scheme");
        }
        let want_status = if ex.status >= 400 {
            "STATUS_CODE_ERROR"
        } else {
            "STATUS_CODE_UNSET"
        };
        assert_eq!(span.status_code, want_status, "{ctx}: status");
        assert_times(span, &ctx);
        let service = service_name.unwrap_or(&client.exe_name);
        assert_eq!(span.res_str("service.name"), service, "{ctx}: service.name");
        assert_eq!(
            span.res_int("process.pid"),
            i64::from(client.pid),
            "{ctx}: process.pid"
        );
        assert_eq!(
            span.res_str("process.executable.name"),
            client.exe_name,
            "{ctx}"
        );
        assert!(
            !span.resource.contains_key("process.command_line"),
            "{ctx}: process.command_line is not exported by default"
        );
        assert_eq!(span.res_str("host.name"), host_name(), "{ctx}: host.name");
    }

    /// Metric points named `name`.
    pub fn metric(&self, name: &str) -> Vec<&MetricPoint> {
        self.metrics.iter().filter(|p| p.name == name).collect()
    }

    /// Agent stderr, receiver log and nginx error log tails, for panic messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "--- agent stderr (tail) ---\n{}\n--- receiver log (tail) ---\n{}\n--- nginx error log (tail) ---\n{}\n",
            tail(&self.output.stderr, 30),
            tail(&self.receiver_log, 10),
            tail(&self.nginx_error_log, 10)
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "port": self.port,
            "worker_pid": self.worker_pid,
            "transport": self.otlp.transport(),
            "agent_status": self.output.status.to_string(),
            "spans": self.spans.iter().map(Span::to_json).collect::<Vec<_>>(),
            "metrics": self.metrics.iter().map(MetricPoint::to_json).collect::<Vec<_>>(),
            "agent_stderr": self.output.stderr.lines().collect::<Vec<_>>(),
        })
    }
}

fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

fn assert_times(span: &Span, ctx: &str) {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64;
    let hour = 3_600_000_000_000;
    assert!(
        span.start_ns > now_ns - hour && span.start_ns <= span.end_ns && span.end_ns <= now_ns,
        "{ctx}: times start={} end={} now={now_ns} (want within the last hour, start <= end)",
        span.start_ns,
        span.end_ns
    );
}
