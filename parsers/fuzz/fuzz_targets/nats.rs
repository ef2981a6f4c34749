//! NATS parser on arbitrary call scripts (see `src/lib.rs`): no panic, consistent records, and
//! every record is a NATS messaging record of the shapes the parser makes (publish, process,
//! error).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wirelens_parsers::{Detail, MessagingOperation, MessagingSystem, Protocol};

fuzz_target!(|data: &[u8]| {
    for record in wirelens_parsers_fuzz::run(Protocol::Nats, data) {
        let Detail::Messaging(m) = &record.detail else {
            panic!("the NATS parser made a non-messaging record")
        };
        assert_eq!(m.system, MessagingSystem::Nats);
        match (m.operation, m.operation_name.as_str()) {
            (MessagingOperation::Send | MessagingOperation::Process, _) => {
                assert!(m.destination.is_some(), "a message names its subject");
                assert!(m.body_size.is_some(), "a message has a body size");
                assert!(
                    record.request_bytes >= m.body_size.unwrap_or(0),
                    "the wire size holds the body"
                );
            }
            (MessagingOperation::Other, "error") => {
                assert!(m.error_type.is_some(), "an error record has its type");
                assert_eq!(record.start_ns, record.end_ns, "an error is one moment");
            }
            other => panic!("unexpected NATS record kind {other:?}"),
        }
        if m.operation == MessagingOperation::Send && record.response_bytes == 0 {
            assert_eq!(
                record.start_ns, record.end_ns,
                "a one-way publish is one moment"
            );
        }
        if m.operation == MessagingOperation::Process {
            assert_eq!(record.start_ns, record.end_ns, "a delivery is one moment");
        }
    }
});
