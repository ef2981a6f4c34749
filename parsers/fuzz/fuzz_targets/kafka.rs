//! Kafka parser on arbitrary calls: the input is a script of feeds (split anywhere, in both
//! directions), skips of known and unknown length, ends and a close. The parser must not
//! panic, and what it emits must be consistent. Seed with frames like those the tests in
//! `src/kafka/tests.rs` encode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wirelens_parsers::{Detail, MessagingOperation, MessagingSystem, Protocol};

fuzz_target!(|data: &[u8]| {
    for record in wirelens_parsers_fuzz::run(Protocol::Kafka, data) {
        let Detail::Messaging(m) = &record.detail else {
            panic!("a Kafka record is a messaging record");
        };
        assert_eq!(m.system, MessagingSystem::Kafka);
        assert!(
            record.request_bytes >= 12,
            "a request is at least a size and a request header"
        );
        let expected_name = match m.operation {
            MessagingOperation::Send => Some("send"),
            MessagingOperation::Receive => Some("receive"),
            MessagingOperation::Settle => Some("commit"),
            MessagingOperation::Other => None,
            other => panic!("Kafka never makes {other:?} records"),
        };
        if let Some(name) = expected_name {
            assert_eq!(m.operation_name, name, "the operation and its name agree");
        } else {
            assert!(
                !["send", "receive", "commit"].contains(&m.operation_name.as_str()),
                "only Produce, Fetch and OffsetCommit take those names"
            );
        }
        if record.response_bytes == 0 {
            assert_eq!(
                m.operation,
                MessagingOperation::Send,
                "only an acks=0 Produce has no response"
            );
            assert!(m.error_type.is_none(), "no response, no error");
        } else {
            assert!(
                record.response_bytes >= 8,
                "a response is at least a size and a correlation id"
            );
        }
        if m.message_count.is_some() {
            assert!(
                matches!(
                    m.operation,
                    MessagingOperation::Send | MessagingOperation::Receive
                ),
                "only Produce and Fetch count messages"
            );
        }
        if matches!(
            m.operation,
            MessagingOperation::Send | MessagingOperation::Receive
        ) {
            assert!(
                m.consumer_group.is_none(),
                "Produce and Fetch name no group"
            );
        }
        assert!(m.error_message.is_none() || m.error_type.is_some());
        assert!(m.error_type.as_ref().is_none_or(|e| !e.is_empty()));
        for text in [
            &m.destination,
            &m.client_id,
            &m.consumer_group,
            &m.error_message,
        ] {
            assert!(
                text.as_ref().is_none_or(|t| t.len() <= 3 * 256),
                "texts are cut to 256 bytes"
            );
        }
        assert!(m.routing_key.is_none() && m.traceparent.is_none() && m.body_size.is_none());
    }
});
