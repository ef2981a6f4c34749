//! What is never exported, and how what is exported is cleaned first: the one place every
//! sink (OTLP, the live view) takes its redaction rules from.
//!
//! - Headers: parsers do not carry credential headers today; the deny-list is here so that any
//!   header ever added to a record is checked against it in one place.
//! - URLs lose their user info, and the values of signature and credential query parameters
//!   (the URL semantic conventions' list, plus `password`, `token`, `api_key` and the like).
//! - Command lines ([`command_line`]) are not exported unless asked for, and then their
//!   secrets are replaced by rules.
//! - SQL and CQL literals are replaced by `?` in `db.query.text` (`wirelens_parsers::sql`), and
//!   Redis statements keep only the command and key (the Redis parser).

mod command_line;

pub use command_line::redact_command_line;

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

/// Query parameters whose values are replaced by [`REDACTED`] in `url.full` and `url.query`:
/// the URL semantic conventions' list, matched exactly.
pub const REDACTED_QUERY_KEYS: &[&str] =
    &["AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"];

/// Parts of a parameter, flag or header name (lowercase) that mark its value as a credential:
/// `password`, `access_token`, `X-Api-Key`, `client_secret`, `--auth-token`...
const SECRET_NAME_PARTS: &[&str] = &[
    "pass",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "credential",
    "private",
    "session",
    "cookie",
    "signature",
];

/// Whether a parameter, flag, variable or header name says its value is a credential (any
/// case; `PGPASSWORD`, `access_token`, `X-Api-Key`, `--db-password`).
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let lower = lower.trim_start_matches('-');
    // `auth`, `auth_key`, `x-auth-token`, `authorization`, not `author`.
    let auth = lower
        .split(['-', '_', '.'])
        .any(|w| w == "auth" || w.starts_with("authoriz") || w.starts_with("authentic"));
    auth || SECRET_NAME_PARTS.iter().any(|part| lower.contains(part))
}

/// The replacement for redacted values.
pub const REDACTED: &str = "REDACTED";

/// Whether a header (any case) must never be exported: the deny-list, and any name that says
/// it holds a credential ([`is_secret_name`]).
pub fn is_denied_header(name: &str) -> bool {
    DENIED_HEADERS.iter().any(|d| d.eq_ignore_ascii_case(name)) || is_secret_name(name)
}

/// `query` (without the `?`) with the values of [`REDACTED_QUERY_KEYS`] replaced.
pub fn redact_query(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((key, _)) if REDACTED_QUERY_KEYS.contains(&key) || is_secret_name(key) => {
                out.push_str(key);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(pair),
        }
    }
    out
}

/// A request target (`/path?query`, or an absolute URL) with its query redacted by
/// [`redact_query`] and, when absolute, its user info removed: what the live view prints.
pub fn redact_target(target: &str) -> String {
    if target.contains("://") {
        return redact_url(target);
    }
    match target.split_once('?') {
        Some((path, query)) => format!("{path}?{}", redact_query(query)),
        None => target.to_string(),
    }
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

    #[test]
    fn credential_query_parameters() {
        assert_eq!(
            redact_query("q=cats&access_token=t0k&Password=pw&api_key=k&page=2"),
            "q=cats&access_token=REDACTED&Password=REDACTED&api_key=REDACTED&page=2"
        );
        assert_eq!(
            redact_target("/search?q=1&token=abc"),
            "/search?q=1&token=REDACTED"
        );
        assert_eq!(redact_target("/plain"), "/plain");
        assert_eq!(
            redact_target("http://u:p@h/x?secret=s"),
            "http://REDACTED:REDACTED@h/x?secret=REDACTED"
        );
    }

    #[test]
    fn secret_header_names() {
        assert!(is_denied_header("X-Vault-Token"));
        assert!(is_denied_header("X-Api-Key"));
        assert!(!is_denied_header("content-type"));
        assert!(is_secret_name("--auth"));
        assert!(is_secret_name("auth_key"));
        assert!(!is_secret_name("author"));
    }
}
