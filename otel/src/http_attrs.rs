//! HTTP record fields → semantic-convention values, shared by spans and metrics.

use std::borrow::Cow;
use std::net::SocketAddr;

use wirelens_parsers::Role;

use crate::semconv;

/// `http.request.method` and, for unknown methods, `http.request.method_original`.
pub(crate) fn method(raw: &str) -> (&'static str, Option<&str>) {
    match semconv::HTTP_KNOWN_METHODS.iter().find(|m| **m == raw) {
        Some(known) => (known, None),
        None => (
            semconv::HTTP_METHOD_OTHER,
            Some(raw).filter(|r| !r.is_empty()),
        ),
    }
}

/// `error.type` for an exchange, or `None` when it succeeded. Server spans fail on 5xx, client
/// spans on 4xx and 5xx; codes outside 100–599 fail both; no response at all is `_OTHER`.
pub(crate) fn error_type(role: Role, status: Option<u16>) -> Option<Cow<'static, str>> {
    let Some(status) = status else {
        return Some(Cow::Borrowed(semconv::ERROR_TYPE_OTHER));
    };
    let first_error = match role {
        Role::Server => 500,
        Role::Client => 400,
    };
    if !(100..first_error).contains(&status) {
        Some(Cow::Owned(status.to_string()))
    } else {
        None
    }
}

/// Path and query of a request target (origin form `/p?q`, or absolute form `http://h/p?q`).
pub(crate) fn split_target(target: &str) -> (&str, Option<&str>) {
    let target = target.split_once('#').map_or(target, |(t, _)| t);
    let origin = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    match origin.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (origin, None),
    }
}

/// Whether a target is in absolute form (`http://host/p`).
pub(crate) fn is_absolute(target: &str) -> bool {
    target.starts_with("http://") || target.starts_with("https://")
}

/// Address and port from a `Host` header: `name`, `name:port`, `[v6]`, `[v6]:port`.
/// IPv6 addresses come back without brackets.
pub(crate) fn parse_host(host: &str) -> Option<(&str, Option<u16>)> {
    let host = host.trim();
    if host.is_empty() {
        return None;
    }
    if let Some(rest) = host.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((addr, port)).filter(|(a, _)| !a.is_empty());
    }
    match host.rsplit_once(':') {
        // A single colon: name:port. More than one without brackets: a bare IPv6 address.
        Some((name, port)) if !name.contains(':') => {
            Some((name, port.parse().ok())).filter(|(n, _)| !n.is_empty())
        }
        _ => Some((host, None)),
    }
}

/// `server.address` and `server.port`: from the `Host` header, else from `fallback` (the local
/// address for a server, the peer for a client). A `Host` without a port takes the fallback's.
pub(crate) fn server_endpoint(
    host: Option<&str>,
    fallback: Option<SocketAddr>,
) -> Option<(String, Option<u16>)> {
    match host.and_then(parse_host) {
        Some((name, port)) => Some((name.to_owned(), port.or_else(|| fallback.map(|a| a.port())))),
        None => fallback.map(|a| (a.ip().to_string(), Some(a.port()))),
    }
}

/// `url.full` of a client request, credentials and signatures redacted.
pub(crate) fn url_full(
    host: Option<&str>,
    target: &str,
    peer: Option<SocketAddr>,
    tls: bool,
) -> Option<String> {
    if is_absolute(target) {
        return Some(crate::redact::redact_url(target));
    }
    let authority = match host.map(str::trim).filter(|h| !h.is_empty()) {
        Some(h) => h.to_owned(),
        None => peer?.to_string(),
    };
    Some(crate::redact::redact_url(&format!(
        "{}://{authority}{target}",
        semconv::http_scheme(tls)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods() {
        assert_eq!(method("GET"), ("GET", None));
        assert_eq!(method("get"), ("_OTHER", Some("get")));
        assert_eq!(method("PROPFIND"), ("_OTHER", Some("PROPFIND")));
        assert_eq!(method(""), ("_OTHER", None));
    }

    #[test]
    fn error_rules() {
        assert_eq!(error_type(Role::Server, Some(200)), None);
        assert_eq!(error_type(Role::Server, Some(404)), None);
        assert_eq!(error_type(Role::Server, Some(503)).as_deref(), Some("503"));
        assert_eq!(error_type(Role::Client, Some(404)).as_deref(), Some("404"));
        assert_eq!(error_type(Role::Client, Some(302)), None);
        assert_eq!(error_type(Role::Client, Some(99)).as_deref(), Some("99"));
        assert_eq!(error_type(Role::Server, None).as_deref(), Some("_OTHER"));
    }

    #[test]
    fn targets() {
        assert_eq!(split_target("/a/b?x=1&y"), ("/a/b", Some("x=1&y")));
        assert_eq!(split_target("/a"), ("/a", None));
        assert_eq!(split_target("http://h:8/p?q#f"), ("/p", Some("q")));
        assert_eq!(split_target("http://h"), ("/", None));
        assert_eq!(split_target("*"), ("*", None));
    }

    #[test]
    fn hosts() {
        assert_eq!(parse_host("example.com"), Some(("example.com", None)));
        assert_eq!(
            parse_host("example.com:8080"),
            Some(("example.com", Some(8080)))
        );
        assert_eq!(parse_host("[::1]:9"), Some(("::1", Some(9))));
        assert_eq!(parse_host("[::1]"), Some(("::1", None)));
        assert_eq!(parse_host("::1"), Some(("::1", None)));
        assert_eq!(parse_host("h:notaport"), Some(("h", None)));
        assert_eq!(parse_host(" "), None);
        assert_eq!(parse_host("[::1"), None);
    }

    #[test]
    fn server_endpoints() {
        let local: SocketAddr = "10.0.0.1:8080".parse().expect("addr");
        assert_eq!(
            server_endpoint(Some("a:1"), Some(local)),
            Some(("a".into(), Some(1)))
        );
        assert_eq!(
            server_endpoint(Some("a"), Some(local)),
            Some(("a".into(), Some(8080)))
        );
        assert_eq!(
            server_endpoint(None, Some(local)),
            Some(("10.0.0.1".into(), Some(8080)))
        );
        assert_eq!(server_endpoint(Some("a"), None), Some(("a".into(), None)));
        assert_eq!(server_endpoint(None, None), None);
    }

    #[test]
    fn full_urls() {
        let peer: SocketAddr = "[::1]:8080".parse().expect("addr");
        assert_eq!(
            url_full(Some("h:1"), "/p?q", None, false).as_deref(),
            Some("http://h:1/p?q")
        );
        assert_eq!(
            url_full(None, "/p", Some(peer), true).as_deref(),
            Some("https://[::1]:8080/p")
        );
        assert_eq!(url_full(None, "/p", None, false), None);
        assert_eq!(
            url_full(Some("h"), "http://u:p@x/y", None, false).as_deref(),
            Some("http://REDACTED:REDACTED@x/y")
        );
    }
}
