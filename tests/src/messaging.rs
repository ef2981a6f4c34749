//! Shared by the messaging tests (`nats.rs`, `rabbitmq.rs`, `kafka.rs`): the python clients in
//! `tests/fixtures/clients/`, and span expectations checked field by field.

use serde_json::Value;

use crate::clients::ClientRun;
use crate::databases::run_client;
use crate::otlp::Span;
use crate::scenario::Done;
use crate::util::{fixture, python};

/// Trace id of the traceparent the clients put in message headers.
pub const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
/// The span id in that traceparent: the parent the agent's span must have.
pub const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

/// Runs the python client `script` (in `tests/fixtures/clients/`) with `args`; panics if it fails.
pub fn python_script(script: &str, args: &[&str]) -> ClientRun {
    let script = fixture(&format!("clients/{script}"));
    let mut argv = vec![python().display().to_string(), script.display().to_string()];
    argv.extend(args.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    run_client(&argv, true)
}

/// One expected span: kind, name, destination, and an error.type when it failed.
#[derive(Clone, Copy, Debug)]
pub struct Expect<'a> {
    /// `SPAN_KIND_PRODUCER`, ...
    pub kind: &'a str,
    /// Span name.
    pub name: &'a str,
    /// `messaging.operation.name`.
    pub operation: &'a str,
    /// `messaging.destination.name` (absent when `None`).
    pub destination: Option<&'a str>,
    /// `error.type` (and an ERROR status) when it failed.
    pub error: Option<&'a str>,
}

/// Asserts one span against its expectation.
pub fn check_span(done: &Done, span: &Span, want: &Expect<'_>, system: &str) {
    let context = || {
        format!(
            "{}: span {}\n{}",
            done.name,
            span.summary(),
            done.diagnostics()
        )
    };
    assert_eq!(span.kind, want.kind, "{}", context());
    assert_eq!(span.name, want.name, "{}", context());
    assert_eq!(
        span.str_attr("messaging.system.name"),
        system,
        "{}",
        context()
    );
    assert_eq!(
        span.str_attr("messaging.operation.name"),
        want.operation,
        "{}",
        context()
    );
    assert_eq!(
        span.attributes
            .get("messaging.destination.name")
            .and_then(Value::as_str),
        want.destination,
        "{}",
        context()
    );
    match want.error {
        Some(error) => {
            assert_eq!(span.str_attr("error.type"), error, "{}", context());
            assert_eq!(span.status_code, "STATUS_CODE_ERROR", "{}", context());
        }
        None => assert!(!span.attributes.contains_key("error.type"), "{}", context()),
    }
}

/// Asserts `spans` match `want` one for one (`who` names the process in messages).
pub fn check_spans(done: &Done, spans: &[&Span], want: &[Expect<'_>], system: &str, who: &str) {
    assert_eq!(
        spans.len(),
        want.len(),
        "{}: {who}: {} spans, expected {}:\n{}",
        done.name,
        spans.len(),
        want.len(),
        done.diagnostics()
    );
    for (span, want) in spans.iter().zip(want) {
        check_span(done, span, want, system);
    }
}
