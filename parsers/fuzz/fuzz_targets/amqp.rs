//! amqp parser on arbitrary call scripts (see `src/lib.rs`): no panic, consistent records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wirelens_parsers::{Detail, MessagingOperation, MessagingSystem, Protocol};

fuzz_target!(|data: &[u8]| {
    for record in wirelens_parsers_fuzz::run(Protocol::Amqp, data) {
        let Detail::Messaging(m) = &record.detail else {
            panic!("the AMQP parser made a non-messaging record")
        };
        assert_eq!(m.system, MessagingSystem::RabbitMq);
        assert!(!m.operation_name.is_empty(), "every record is named");
        assert_eq!(
            m.operation_name,
            m.operation_name.to_lowercase(),
            "operation names are lowercase"
        );
        match m.operation {
            // A message carries its exchange; its size comes from its content header.
            MessagingOperation::Send | MessagingOperation::Process => {
                assert!(m.destination.is_some(), "a message names its exchange");
                assert!(m.body_size.is_some(), "a message has a content header");
            }
            MessagingOperation::Settle => assert!(record.response_bytes == 0, "one-way"),
            _ => {}
        }
        // An error has its text, and a reply code is a number (or a confirm's `nack`).
        if let Some(code) = &m.error_type {
            assert!(m.error_message.is_some(), "an error has its text");
            assert!(code == "nack" || code.parse::<u16>().is_ok_and(|c| c >= 300));
        }
    }
});
