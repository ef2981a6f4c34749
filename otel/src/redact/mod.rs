//! What is never exported, and how URLs are cleaned before they are.
//!
//! Parsers do not carry credential headers today; the deny-list is here so that any header ever
//! added to a record is checked against it in one place. URLs lose their user info and the
//! values of well-known signature query parameters, as the URL semantic conventions ask.

/// Request and response headers that are never exported, lowercase.
pub const DENIED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
    "x-csrf-token",
    "x-xsrf-token",
];

/// Query parameters whose values are replaced by [`REDACTED`] in `url.full` and `url.query`.
pub const REDACTED_QUERY_KEYS: &[&str] =
    &["AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"];

/// The replacement for redacted values.
pub const REDACTED: &str = "REDACTED";

/// Whether a header (any case) must never be exported.
pub fn is_denied_header(name: &str) -> bool {
    DENIED_HEADERS.iter().any(|d| d.eq_ignore_ascii_case(name))
}

/// `query` (without the `?`) with the values of [`REDACTED_QUERY_KEYS`] replaced.
pub fn redact_query(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((key, _)) if REDACTED_QUERY_KEYS.contains(&key) => {
                out.push_str(key);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(pair),
        }
    }
    out
}

/// An absolute URL with `user:password@` replaced by `REDACTED:REDACTED@` and its query
/// redacted by [`redact_query`].
pub fn redact_url(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = String::with_capacity(url.len());
    match before_query.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            out.push_str(scheme);
            out.push_str("://");
            match authority.rsplit_once('@') {
                Some((_, host)) => {
                    out.push_str(REDACTED);
                    out.push(':');
                    out.push_str(REDACTED);
                    out.push('@');
                    out.push_str(host);
                }
                None => out.push_str(authority),
            }
            out.push_str(path);
        }
        None => out.push_str(before_query),
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(&redact_query(q));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_headers_any_case() {
        assert!(is_denied_header("Authorization"));
        assert!(is_denied_header("COOKIE"));
        assert!(!is_denied_header("user-agent"));
    }

    #[test]
    fn urls_lose_credentials_and_signatures() {
        assert_eq!(
            redact_url("http://user:pw@example.com/a?sig=abc&x=1"),
            "http://REDACTED:REDACTED@example.com/a?sig=REDACTED&x=1"
        );
        assert_eq!(
            redact_url("http://example.com/a@b?x"),
            "http://example.com/a@b?x"
        );
        assert_eq!(redact_query("a=1&Signature=zz"), "a=1&Signature=REDACTED");
    }
}
