//! A scenario for any protocol: an independent receiver and the agent exporting to it over
//! OTLP/gRPC with the given arguments; `finish` waits for the expected spans and metrics,
//! stops the agent (it flushes) and keeps what arrived for the assertions.

use std::time::Duration;

use serde_json::{Value, json};

use crate::agent::{Agent, AgentOutput};
use crate::otlp::{MetricPoint, Span, histogram_count, histogram_series, summarize_spans};
use crate::receiver::{Otlp, Receiver};
use crate::util::{poll, tail, write_actual};

const SPANS_TIMEOUT: Duration = Duration::from_secs(30);
const METRICS_TIMEOUT: Duration = Duration::from_secs(10);

/// A receiver and a ready agent.
pub struct Scenario {
    /// Test name (names `tests/actual/<name>.json`).
    pub name: String,
    /// Where the agent exports.
    pub receiver: Receiver,
    /// The agent, ready.
    pub agent: Agent,
}

impl Scenario {
    /// Starts a receiver and the agent with `args` (say `--port 53`), exporting over gRPC.
    pub fn start(name: &str, args: &[&str]) -> Self {
        Self::start_with_env(name, args, &[])
    }

    /// Like [`Scenario::start`] with extra agent environment (say, `WIRELENS_LOG=debug`).
    pub fn start_with_env(name: &str, args: &[&str], extra_env: &[(&str, &str)]) -> Self {
        let receiver = Receiver::start();
        let env = receiver.env(Otlp::Grpc);
        let mut env: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.extend_from_slice(extra_env);
        let agent = Agent::start(args, &env);
        Scenario {
            name: name.to_string(),
            receiver,
            agent,
        }
    }

    /// Waits (30 s at most) until `ready` holds for the spans received so far, then (10 s at
    /// most) until the histogram `metric` has `metric_points` observations; stops the agent.
    pub fn finish_when(
        self,
        ready: impl Fn(&[Span]) -> bool,
        metric: &str,
        metric_points: u64,
    ) -> Done {
        let _ = poll(SPANS_TIMEOUT, || ready(&self.receiver.spans()));
        let _ = poll(METRICS_TIMEOUT, || {
            histogram_count(&self.receiver.metrics(), metric) >= metric_points
        });
        // Late spans (a second batch) would change exact counts: give the exporter one more
        // batch interval before stopping.
        std::thread::sleep(Duration::from_millis(1500));
        let Scenario {
            name,
            receiver,
            agent,
        } = self;
        let output = agent.stop();
        let mut spans = receiver.spans();
        spans.sort_by_key(|s| (s.start_ns, s.end_ns));
        let done = Done {
            name,
            spans,
            metrics: receiver.metrics(),
            raw: receiver.raw_bytes(),
            output,
            receiver_log: receiver.log(),
        };
        write_actual(&done.name, &done.to_json());
        done.output.assert_success();
        done
    }
}

/// What a scenario produced, after the agent exited.
pub struct Done {
    /// Test name.
    pub name: String,
    /// Every span received, by start time.
    pub spans: Vec<Span>,
    /// Every metric data point received.
    pub metrics: Vec<MetricPoint>,
    /// The protobuf bytes of every export request received, every signal.
    pub raw: Vec<u8>,
    /// The agent's exit status and output.
    pub output: AgentOutput,
    receiver_log: String,
}

impl Done {
    /// Spans whose Resource is process `pid`, by start time.
    pub fn spans_of(&self, pid: u32) -> Vec<&Span> {
        self.spans
            .iter()
            .filter(|s| s.resource.get("process.pid").and_then(Value::as_i64) == Some(pid.into()))
            .collect()
    }

    /// Spans whose Resource has `process.executable.name` = `exe`, by start time.
    pub fn spans_of_exe(&self, exe: &str) -> Vec<&Span> {
        self.spans
            .iter()
            .filter(|s| {
                s.resource
                    .get("process.executable.name")
                    .and_then(Value::as_str)
                    == Some(exe)
            })
            .collect()
    }

    /// The histogram `name`, one point per series: the latest of a cumulative series (each
    /// export repeats the running totals), the sum of a delta series.
    pub fn points(&self, name: &str) -> Vec<MetricPoint> {
        histogram_series(&self.metrics, name)
    }

    /// Everything useful when an assertion fails: spans, the agent's counters and log tail,
    /// the receiver's log tail.
    pub fn diagnostics(&self) -> String {
        format!(
            "spans:\n{}\nagent counters: {:?}\nagent stderr:\n{}\nreceiver log:\n{}",
            summarize_spans(&self.spans),
            self.output.counters(),
            tail(&self.output.stderr, 20),
            tail(&self.receiver_log, 10)
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "spans": self.spans.iter().map(Span::to_json).collect::<Vec<_>>(),
            "metrics": self.metrics.iter().map(MetricPoint::to_json).collect::<Vec<_>>(),
        })
    }
}
