//! Messaging record fields → semantic-convention values, shared by spans and metrics.
//!
//! Follows the messaging conventions in development (semconv 1.3x, `docs/messaging/`):
//!
//! - **Span kind** (client role): `send` → PRODUCER, `process` and `receive` → CONSUMER (the
//!   issue asks for Fetch → CONSUMER; the latest conventions' table has CLIENT for a pull
//!   `receive`), `settle`, entity creation and other exchanges → CLIENT.
//!   The broker itself (server role) → SERVER. A `send` is PRODUCER although the conventions
//!   reserve it for spans whose context is the message's creation context (a passive observer
//!   injects nothing): it marks the producer side of the exchange for service maps.
//! - **`messaging.operation.type`**: `send`, `receive`, `process`, `settle`. The record's
//!   [`MessagingOperation::Create`] is the creation of an entity (AMQP `Queue.Declare`), not of a
//!   message (the conventions' `create`, always one message, PRODUCER), so it gets no type.
//! - **Destination**: the topic (Kafka) or subject (NATS); for RabbitMQ `{exchange}:{routing
//!   key}` (either alone when the other is empty, `amq.default` for a send with neither), as
//!   `rabbitmq.md` asks, except for a `receive` (Basic.Get): its destination is the queue it
//!   names, which is not an exchange to join the message's routing key to (the key stays in
//!   `rabbitmq.destination.routing_key`). Generated names (NATS `_INBOX.` reply
//!   subjects, RabbitMQ `amq.gen-` queues and `amq.rabbitmq.reply-to`) are flagged
//!   anonymous/temporary, left out of the span name and of metrics (they are
//!   high-cardinality).
//! - **Trace context**: a `traceparent` carried in the message is the message's creation
//!   context. Every span links to it; in addition it is the parent of a `send` (the producing
//!   application's own span, same process), of a single-message `process` (remote: the
//!   conventions allow this for single messages and ask to document it) and of the broker's
//!   SERVER span (remote, as for an HTTP server). `receive`, batches and settles only link.

use std::borrow::Cow;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use wirelens_parsers::{MessagingOperation, MessagingRecord, MessagingSystem, Role};

use crate::semconv;

/// A non-empty trimmed value.
fn present(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// The span kind of an operation seen from `role`.
pub(crate) fn span_kind(role: Role, operation: MessagingOperation) -> SpanKind {
    match (role, operation) {
        (Role::Server, _) => SpanKind::Server,
        (Role::Client, MessagingOperation::Send) => SpanKind::Producer,
        // The issue asks for CONSUMER on receive (Kafka Fetch, AMQP Basic.Get), as the
        // conventions did before 1.3x moved pull-based receive to CLIENT.
        (Role::Client, MessagingOperation::Process | MessagingOperation::Receive) => {
            SpanKind::Consumer
        }
        (
            Role::Client,
            MessagingOperation::Settle | MessagingOperation::Create | MessagingOperation::Other,
        ) => SpanKind::Client,
    }
}

/// `messaging.operation.type`, when the operation is one the conventions define.
pub(crate) fn operation_type(operation: MessagingOperation) -> Option<&'static str> {
    match operation {
        MessagingOperation::Create | MessagingOperation::Other => None,
        other => other.as_str(),
    }
}

/// `messaging.operation.name`: the record's name, else the operation type, else the system.
pub(crate) fn operation_name(m: &MessagingRecord) -> &str {
    present(Some(&m.operation_name))
        .or_else(|| m.operation.as_str())
        .unwrap_or(m.system.as_str())
}

/// `rabbitmq.destination.routing_key`, when not empty.
pub(crate) fn routing_key(m: &MessagingRecord) -> Option<&str> {
    present(m.routing_key.as_deref())
}

/// `messaging.client.id`.
pub(crate) fn client_id(m: &MessagingRecord) -> Option<&str> {
    present(m.client_id.as_deref())
}

/// `messaging.consumer.group.name`.
pub(crate) fn consumer_group(m: &MessagingRecord) -> Option<&str> {
    present(m.consumer_group.as_deref())
}

/// The destination an operation acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Destination {
    /// `messaging.destination.name`.
    pub(crate) name: String,
    /// The name was generated (`messaging.destination.anonymous`).
    pub(crate) anonymous: bool,
    /// The destination lives for one conversation (`messaging.destination.temporary`).
    pub(crate) temporary: bool,
}

impl Destination {
    /// Whether the name is fit for span names and metric attributes (low cardinality).
    pub(crate) fn is_named(&self) -> bool {
        !self.anonymous && !self.temporary
    }
}

/// (anonymous, temporary) for one destination name or name part.
fn generated(system: MessagingSystem, part: &str) -> (bool, bool) {
    match system {
        MessagingSystem::Nats if part.starts_with("_INBOX.") => (true, true),
        MessagingSystem::RabbitMq if part.starts_with("amq.gen-") => (true, false),
        MessagingSystem::RabbitMq if part.starts_with("amq.rabbitmq.reply-to") => (true, true),
        _ => (false, false),
    }
}

/// `messaging.destination.name` and what kind of destination it is, when known.
pub(crate) fn destination(m: &MessagingRecord) -> Option<Destination> {
    let target = present(m.destination.as_deref());
    let parts: Vec<&str> = match m.system {
        MessagingSystem::RabbitMq => {
            // A Basic.Get's destination is its queue: `{queue}:{routing key}` would read as an
            // exchange and key, and split one queue's spans and series by the keys of the
            // messages got (a Get-Empty has none).
            let key = match m.operation {
                MessagingOperation::Receive => None,
                _ => present(m.routing_key.as_deref()),
            };
            match (target, key) {
                (Some(t), Some(k)) if t == k => vec![t],
                (Some(t), Some(k)) => vec![t, k],
                (Some(one), None) | (None, Some(one)) => vec![one],
                (None, None) if m.operation == MessagingOperation::Send => {
                    vec![semconv::RABBITMQ_DEFAULT_EXCHANGE]
                }
                (None, None) => return None,
            }
        }
        MessagingSystem::Kafka | MessagingSystem::Nats => vec![target?],
    };
    let (anonymous, temporary) = parts.iter().fold((false, false), |(a, t), part| {
        let (pa, pt) = generated(m.system, part);
        (a || pa, t || pt)
    });
    Some(Destination {
        name: parts.join(":"),
        anonymous,
        temporary,
    })
}

/// The span name: `{messaging.operation.name} {destination}`, the destination left out when
/// unknown or generated.
pub(crate) fn span_name(m: &MessagingRecord) -> String {
    let operation = operation_name(m);
    match destination(m).filter(Destination::is_named) {
        Some(d) => format!("{operation} {}", d.name),
        None => operation.to_owned(),
    }
}

/// `messaging.destination.partition.id`: the Kafka partition, when one (not negative).
pub(crate) fn partition_id(m: &MessagingRecord) -> Option<String> {
    m.partition.filter(|&p| p >= 0).map(|p| p.to_string())
}

/// `messaging.batch.message_count`: for batches only, so never 1 (the conventions ask not to
/// set it on single-message spans); 0 is kept (a fetch that returned nothing).
pub(crate) fn batch_count(m: &MessagingRecord) -> Option<u64> {
    m.message_count.filter(|&n| n != 1)
}

/// `messaging.message.body.size`: for single messages only.
pub(crate) fn body_size(m: &MessagingRecord) -> Option<u64> {
    match m.message_count {
        None | Some(1) => m.body_size,
        Some(_) => None,
    }
}

/// `error.type` when the operation failed: the system's error name or code, else `_OTHER`.
pub(crate) fn error_type(m: &MessagingRecord) -> Option<Cow<'_, str>> {
    match present(m.error_type.as_deref()) {
        Some(error) => Some(Cow::Borrowed(error)),
        None if m.error_message.is_some() => Some(Cow::Borrowed(semconv::ERROR_TYPE_OTHER)),
        None => None,
    }
}

/// How the message's creation context (its `traceparent`) relates to the span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ContextUse {
    /// Parent and link; `remote` says whether it comes from another process.
    Parent {
        /// The context was made by another process.
        remote: bool,
    },
    /// Link only (remote).
    Link,
}

/// How a span uses the creation context found in its message.
pub(crate) fn context_use(role: Role, m: &MessagingRecord) -> ContextUse {
    let single = matches!(m.message_count, None | Some(1));
    match (role, m.operation) {
        (Role::Server, _) => ContextUse::Parent { remote: true },
        (Role::Client, MessagingOperation::Send) => ContextUse::Parent { remote: false },
        (Role::Client, MessagingOperation::Process) if single => {
            ContextUse::Parent { remote: true }
        }
        (Role::Client, _) => ContextUse::Link,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(system: MessagingSystem, op: MessagingOperation, name: &str) -> MessagingRecord {
        MessagingRecord::new(system, op, name)
    }

    #[test]
    fn kinds_and_types() {
        use MessagingOperation::*;
        let cases = [
            (Send, SpanKind::Producer, Some("send")),
            (Receive, SpanKind::Consumer, Some("receive")),
            (Process, SpanKind::Consumer, Some("process")),
            (Settle, SpanKind::Client, Some("settle")),
            (Create, SpanKind::Client, None),
            (Other, SpanKind::Client, None),
        ];
        for (op, kind, ty) in cases {
            assert_eq!(span_kind(Role::Client, op), kind, "{op:?}");
            assert_eq!(span_kind(Role::Server, op), SpanKind::Server, "{op:?}");
            assert_eq!(operation_type(op), ty, "{op:?}");
        }
    }

    #[test]
    fn rabbitmq_destinations() {
        let mut m = record(
            MessagingSystem::RabbitMq,
            MessagingOperation::Send,
            "publish",
        );
        let name = |m: &MessagingRecord| destination(m).map(|d| d.name);
        assert_eq!(name(&m).as_deref(), Some("amq.default"));
        m.routing_key = Some("jobs".into());
        assert_eq!(name(&m).as_deref(), Some("jobs"));
        m.destination = Some("logs".into());
        assert_eq!(name(&m).as_deref(), Some("logs:jobs"));
        m.routing_key = Some("logs".into());
        assert_eq!(name(&m).as_deref(), Some("logs"));
        m.routing_key = Some(" ".into());
        assert_eq!(span_name(&m), "publish logs");

        let mut ack = record(MessagingSystem::RabbitMq, MessagingOperation::Settle, "ack");
        assert_eq!(destination(&ack), None);
        assert_eq!(span_name(&ack), "ack");
        ack.routing_key = Some("amq.gen-Xa2".into());
        let d = destination(&ack).expect("destination");
        assert!(d.anonymous && !d.temporary && !d.is_named());
        assert_eq!(span_name(&ack), "ack");
    }

    #[test]
    fn rabbitmq_get_destination_is_its_queue() {
        // Basic.Get-Ok: the queue got from, and the key the message was published with.
        let mut get = record(
            MessagingSystem::RabbitMq,
            MessagingOperation::Receive,
            "receive",
        );
        get.destination = Some("orders.created".into());
        get.routing_key = Some("created".into());
        let d = destination(&get).expect("destination");
        assert_eq!(d.name, "orders.created");
        assert!(d.is_named());
        assert_eq!(span_name(&get), "receive orders.created");
        assert_eq!(routing_key(&get), Some("created"));
        // Get-Empty: same queue, same name.
        get.routing_key = None;
        assert_eq!(span_name(&get), "receive orders.created");
        // A server-named queue stays out of the name.
        get.destination = Some("amq.gen-Xa2".into());
        get.routing_key = Some("created".into());
        assert!(destination(&get).is_some_and(|d| d.anonymous));
        assert_eq!(span_name(&get), "receive");
        // A Get with no queue named (the channel's last declared one): no destination.
        get.destination = Some(String::new());
        assert_eq!(destination(&get), None);
        // Deliveries still join the exchange and key.
        let mut deliver = record(
            MessagingSystem::RabbitMq,
            MessagingOperation::Process,
            "process",
        );
        deliver.destination = Some("orders".into());
        deliver.routing_key = Some("created".into());
        assert_eq!(span_name(&deliver), "process orders:created");
    }

    #[test]
    fn nats_inbox_is_temporary() {
        let mut m = record(MessagingSystem::Nats, MessagingOperation::Process, "msg");
        m.destination = Some("_INBOX.abc.1".into());
        let d = destination(&m).expect("destination");
        assert_eq!(d.name, "_INBOX.abc.1");
        assert!(d.anonymous && d.temporary);
        assert_eq!(span_name(&m), "msg");
        m.destination = Some("orders".into());
        assert_eq!(span_name(&m), "msg orders");
        m.operation_name = String::new();
        assert_eq!(span_name(&m), "process orders");
    }

    #[test]
    fn counts_sizes_errors() {
        let mut m = record(MessagingSystem::Kafka, MessagingOperation::Send, "produce");
        m.body_size = Some(10);
        m.partition = Some(-1);
        assert_eq!(
            (batch_count(&m), body_size(&m), partition_id(&m)),
            (None, Some(10), None)
        );
        m.message_count = Some(1);
        m.partition = Some(3);
        assert_eq!(batch_count(&m), None);
        assert_eq!(partition_id(&m).as_deref(), Some("3"));
        m.message_count = Some(0);
        assert_eq!((batch_count(&m), body_size(&m)), (Some(0), None));
        assert_eq!(error_type(&m), None);
        m.error_message = Some("boom".into());
        assert_eq!(error_type(&m).as_deref(), Some("_OTHER"));
        m.error_type = Some("UNKNOWN_TOPIC_OR_PARTITION".into());
        assert_eq!(
            error_type(&m).as_deref(),
            Some("UNKNOWN_TOPIC_OR_PARTITION")
        );
    }

    #[test]
    fn context_uses() {
        use MessagingOperation::*;
        let m = |op, count| {
            let mut m = record(MessagingSystem::Nats, op, "x");
            m.message_count = count;
            m
        };
        let remote = ContextUse::Parent { remote: true };
        assert_eq!(
            context_use(Role::Client, &m(Send, Some(5))),
            ContextUse::Parent { remote: false }
        );
        assert_eq!(context_use(Role::Client, &m(Process, None)), remote);
        assert_eq!(
            context_use(Role::Client, &m(Process, Some(3))),
            ContextUse::Link
        );
        assert_eq!(
            context_use(Role::Client, &m(Receive, None)),
            ContextUse::Link
        );
        assert_eq!(
            context_use(Role::Client, &m(Settle, None)),
            ContextUse::Link
        );
        assert_eq!(context_use(Role::Server, &m(Send, None)), remote);
    }
}
