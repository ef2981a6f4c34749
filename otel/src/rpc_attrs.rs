//! RPC record fields → semantic-convention values (the RPC and gRPC conventions, release
//! candidate), shared by spans and metrics.
//!
//! - `rpc.system.name` `grpc`; `rpc.method` the fully qualified `service/method`
//!   (`wirelens.Echo/Unary`), `_OTHER` when `:path` was not decoded; the span is named by it.
//! - `rpc.status_code` the status name (`OK`, `NOT_FOUND`...), when a status is
//!   known.
//! - Errors (`error.type` = the status name, span status ERROR): every status but `OK` on a
//!   client span; on a server span only `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`,
//!   `INTERNAL`, `UNAVAILABLE` and `DATA_LOSS` (a `NOT_FOUND` is the server doing its job).
//!   A call with no status at all (the stream ended without trailers) fails both as `_OTHER`,
//!   unless part of it was not captured: then its status is unknown, not an error.

use std::borrow::Cow;

use wirelens_parsers::{Role, RpcRecord};

use crate::semconv;

/// Status names a server span counts as errors (gRPC conventions).
const SERVER_ERRORS: [&str; 6] = [
    "UNKNOWN",
    "DEADLINE_EXCEEDED",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
];

/// `rpc.method`: `service/method`, or `_OTHER`.
pub(crate) fn method(rpc: &RpcRecord) -> Cow<'_, str> {
    match (&rpc.service, &rpc.method) {
        (Some(service), Some(method)) => Cow::Owned(format!("{service}/{method}")),
        _ => Cow::Borrowed(semconv::RPC_METHOD_OTHER),
    }
}

/// `error.type` for a call, or `None` when it succeeded for `role`.
pub(crate) fn error_type(role: Role, rpc: &RpcRecord) -> Option<&'static str> {
    let Some(name) = rpc.status_name() else {
        return (!rpc.truncated).then_some(semconv::ERROR_TYPE_OTHER);
    };
    let failed = match role {
        Role::Client => name != "OK",
        Role::Server => SERVER_ERRORS.contains(&name),
    };
    failed.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wirelens_parsers::RpcSystem;

    fn call(status: Option<u32>) -> RpcRecord {
        RpcRecord {
            system: RpcSystem::Grpc,
            service: Some("pkg.Svc".into()),
            method: Some("Do".into()),
            status_code: status,
            status_message: None,
            request_messages: Some(1),
            response_messages: Some(1),
            authority: None,
            user_agent: None,
            traceparent: None,
            content_type: None,
            http_status: Some(200),
            reset: false,
            truncated: false,
        }
    }

    #[test]
    fn errors_by_role() {
        assert_eq!(method(&call(Some(0))), "pkg.Svc/Do");
        assert_eq!(error_type(Role::Client, &call(Some(0))), None);
        assert_eq!(error_type(Role::Client, &call(Some(5))), Some("NOT_FOUND"));
        assert_eq!(error_type(Role::Server, &call(Some(5))), None);
        assert_eq!(error_type(Role::Server, &call(Some(13))), Some("INTERNAL"));
        assert_eq!(error_type(Role::Server, &call(None)), Some("_OTHER"));
        let mut cut = call(None);
        cut.truncated = true;
        assert_eq!(error_type(Role::Client, &cut), None, "unknown is no error");
        let mut unknown = call(Some(0));
        unknown.method = None;
        assert_eq!(method(&unknown), "_OTHER");
    }
}
