//! The AMQP 0-9-1 method table: names, which side sends each method, and which reply a
//! synchronous method waits for.

/// Who sends a method (RabbitMQ's reading of the 0-9-1 spec).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sender {
    Client,
    Server,
    Either,
}

/// `class.method`, lowercase, with who sends it; `None` for unknown ids.
pub(super) fn describe(class: u16, method: u16) -> Option<(&'static str, Sender)> {
    use Sender::{Client as C, Either as E, Server as S};
    Some(match (class, method) {
        (10, 10) => ("connection.start", S),
        (10, 11) => ("connection.start-ok", C),
        (10, 20) => ("connection.secure", S),
        (10, 21) => ("connection.secure-ok", C),
        (10, 30) => ("connection.tune", S),
        (10, 31) => ("connection.tune-ok", C),
        (10, 40) => ("connection.open", C),
        (10, 41) => ("connection.open-ok", S),
        (10, 50) => ("connection.close", E),
        (10, 51) => ("connection.close-ok", E),
        (10, 60) => ("connection.blocked", S),
        (10, 61) => ("connection.unblocked", S),
        (10, 70) => ("connection.update-secret", C),
        (10, 71) => ("connection.update-secret-ok", S),
        (20, 10) => ("channel.open", C),
        (20, 11) => ("channel.open-ok", S),
        (20, 20) => ("channel.flow", E),
        (20, 21) => ("channel.flow-ok", E),
        (20, 40) => ("channel.close", E),
        (20, 41) => ("channel.close-ok", E),
        (30, 10) => ("access.request", C),
        (30, 11) => ("access.request-ok", S),
        (40, 10) => ("exchange.declare", C),
        (40, 11) => ("exchange.declare-ok", S),
        (40, 20) => ("exchange.delete", C),
        (40, 21) => ("exchange.delete-ok", S),
        (40, 30) => ("exchange.bind", C),
        (40, 31) => ("exchange.bind-ok", S),
        (40, 40) => ("exchange.unbind", C),
        (40, 51) => ("exchange.unbind-ok", S),
        (50, 10) => ("queue.declare", C),
        (50, 11) => ("queue.declare-ok", S),
        (50, 20) => ("queue.bind", C),
        (50, 21) => ("queue.bind-ok", S),
        (50, 30) => ("queue.purge", C),
        (50, 31) => ("queue.purge-ok", S),
        (50, 40) => ("queue.delete", C),
        (50, 41) => ("queue.delete-ok", S),
        (50, 50) => ("queue.unbind", C),
        (50, 51) => ("queue.unbind-ok", S),
        (60, 10) => ("basic.qos", C),
        (60, 11) => ("basic.qos-ok", S),
        (60, 20) => ("basic.consume", C),
        (60, 21) => ("basic.consume-ok", S),
        (60, 30) => ("basic.cancel", E),
        (60, 31) => ("basic.cancel-ok", E),
        (60, 40) => ("basic.publish", C),
        (60, 50) => ("basic.return", S),
        (60, 60) => ("basic.deliver", S),
        (60, 70) => ("basic.get", C),
        (60, 71) => ("basic.get-ok", S),
        (60, 72) => ("basic.get-empty", S),
        (60, 80) => ("basic.ack", E),
        (60, 90) => ("basic.reject", C),
        (60, 100) => ("basic.recover-async", C),
        (60, 110) => ("basic.recover", C),
        (60, 111) => ("basic.recover-ok", S),
        (60, 120) => ("basic.nack", E),
        (85, 10) => ("confirm.select", C),
        (85, 11) => ("confirm.select-ok", S),
        (90, 10) => ("tx.select", C),
        (90, 11) => ("tx.select-ok", S),
        (90, 20) => ("tx.commit", C),
        (90, 21) => ("tx.commit-ok", S),
        (90, 30) => ("tx.rollback", C),
        (90, 31) => ("tx.rollback-ok", S),
        _ => return None,
    })
}

/// The method's name, if the ids are known.
pub(super) fn name(class: u16, method: u16) -> Option<&'static str> {
    describe(class, method).map(|(name, _)| name)
}

/// The reply a synchronous method sent by the client waits for (`basic.get` also accepts
/// `basic.get-empty`); `None` for asynchronous methods.
pub(super) fn reply_of(class: u16, method: u16) -> Option<(u16, u16)> {
    let reply = match (class, method) {
        (40, 40) => 51,
        (10, 40 | 50 | 70)
        | (20, 10 | 20 | 40)
        | (30, 10)
        | (40, 10 | 20 | 30)
        | (50, 10 | 20 | 30 | 40 | 50)
        | (60, 10 | 20 | 30 | 70 | 110)
        | (85, 10)
        | (90, 10 | 20 | 30) => method + 1,
        _ => return None,
    };
    Some((class, reply))
}
