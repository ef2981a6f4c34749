//! A complete head (start line and header section) → [`RequestHead`] / [`ResponseHead`], with
//! the body-length rules of RFC 9112 §6.3. The syntax is httparse's.

use std::mem::MaybeUninit;

use super::types::{BodyLen, RequestHead, ResponseHead, ResponseHint};
use crate::record::HttpVersion;

/// Header fields parsed without allocating; a head with more is parsed again with room for
/// one per line.
const STACK_HEADERS: usize = 64;

/// Why a head did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// httparse rejected it, or it was not exactly one head.
    Syntax,
    /// `Content-Length` not a number, or conflicting values (RFC 9112 §6.3 item 5).
    ContentLength,
    /// A request with a transfer coding other than chunked last (RFC 9112 §6.3 item 4).
    TransferEncoding,
    /// More header fields than the buffer given to httparse; retried with a larger one.
    TooManyHeaders,
}

/// Lenient where real peers are: an observer must read what the server accepted.
fn config() -> httparse::ParserConfig {
    let mut config = httparse::ParserConfig::default();
    config
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .ignore_invalid_headers_in_requests(true)
        .ignore_invalid_headers_in_responses(true);
    config
}

/// Parses `head`, which must end with the blank line ending the header section.
pub(crate) fn parse_request(head: &[u8], start_ns: u64) -> Result<RequestHead, HeadError> {
    let mut stack = [const { MaybeUninit::uninit() }; STACK_HEADERS];
    match request_with(head, start_ns, &mut stack) {
        Err(HeadError::TooManyHeaders) => {
            let mut heap = vec![MaybeUninit::uninit(); line_count(head)];
            request_with(head, start_ns, &mut heap)
        }
        result => result,
    }
}

fn request_with<'b>(
    head: &'b [u8],
    start_ns: u64,
    headers: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<RequestHead, HeadError> {
    let mut req = httparse::Request::new(&mut []);
    check(
        config().parse_request_with_uninit_headers(&mut req, head, headers),
        head,
    )?;
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Syntax);
    };
    let fields = Fields::read(req.headers)?;
    let body = match (fields.chunked, fields.content_length) {
        (Some(true), _) => BodyLen::Chunked,
        (Some(false), _) => return Err(HeadError::TransferEncoding),
        (None, Some(n)) => BodyLen::Length(n),
        (None, None) => BodyLen::Empty,
    };
    Ok(RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        version: version_of(version),
        host: fields.host,
        user_agent: fields.user_agent,
        traceparent: fields.traceparent,
        content_type: fields.content_type,
        body,
        start_ns,
        head_len: head.len() as u64,
    })
}

/// Parses `head`, which must end with the blank line ending the header section; `hint` is
/// what the request it answers says about its body.
pub(crate) fn parse_response(
    head: &[u8],
    start_ns: u64,
    hint: ResponseHint,
) -> Result<ResponseHead, HeadError> {
    let mut stack = [const { MaybeUninit::uninit() }; STACK_HEADERS];
    match response_with(head, start_ns, hint, &mut stack) {
        Err(HeadError::TooManyHeaders) => {
            let mut heap = vec![MaybeUninit::uninit(); line_count(head)];
            response_with(head, start_ns, hint, &mut heap)
        }
        result => result,
    }
}

fn response_with<'b>(
    head: &'b [u8],
    start_ns: u64,
    hint: ResponseHint,
    headers: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<ResponseHead, HeadError> {
    let mut resp = httparse::Response::new(&mut []);
    check(
        config().parse_response_with_uninit_headers(&mut resp, head, headers),
        head,
    )?;
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err(HeadError::Syntax);
    };
    let fields = Fields::read(resp.headers)?;
    let body = match status {
        101 => BodyLen::Tunnel,
        100..=199 | 204 | 304 => BodyLen::Empty,
        _ if hint.head => BodyLen::Empty,
        200..=299 if hint.connect => BodyLen::Tunnel,
        _ => match (fields.chunked, fields.content_length) {
            (Some(true), _) => BodyLen::Chunked,
            (Some(false), _) => BodyLen::UntilClose,
            (None, Some(n)) => BodyLen::Length(n),
            (None, None) => BodyLen::UntilClose,
        },
    };
    Ok(ResponseHead {
        version: version_of(version),
        status,
        content_type: fields.content_type,
        body,
        start_ns,
        head_len: head.len() as u64,
    })
}

/// httparse must have read exactly the head it was given.
fn check(parsed: httparse::Result<usize>, head: &[u8]) -> Result<(), HeadError> {
    match parsed {
        Ok(httparse::Status::Complete(n)) if n == head.len() => Ok(()),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooManyHeaders),
        _ => Err(HeadError::Syntax),
    }
}

/// An upper bound on the header fields in `head`.
fn line_count(head: &[u8]) -> usize {
    head.iter().filter(|&&b| b == b'\n').count()
}

fn version_of(minor: u8) -> HttpVersion {
    if minor == 0 {
        HttpVersion::Http10
    } else {
        HttpVersion::Http11
    }
}

/// The header fields [`Fields`] reads.
#[derive(Clone, Copy)]
enum Field {
    Host,
    UserAgent,
    Traceparent,
    ContentType,
    ContentLength,
    TransferEncoding,
}

/// The header fields a record or the framing needs; names compared case-insensitively.
#[derive(Default)]
struct Fields {
    host: Option<String>,
    user_agent: Option<String>,
    traceparent: Option<String>,
    content_type: Option<String>,
    content_length: Option<u64>,
    /// Whether `Transfer-Encoding` is present (`Some`), and with chunked as the final coding.
    chunked: Option<bool>,
}

impl Fields {
    fn read(headers: &[httparse::Header<'_>]) -> Result<Self, HeadError> {
        let mut fields = Fields::default();
        for h in headers {
            let name = h.name;
            let value = h.value.trim_ascii();
            let keep = |slot: &mut Option<String>| {
                if slot.is_none() {
                    *slot = Some(String::from_utf8_lossy(value).into_owned());
                }
            };
            // The name's length picks the one field it can be: one comparison per header.
            let is = |wanted: &str| name.eq_ignore_ascii_case(wanted);
            let field = match name.len() {
                4 if is("host") => Field::Host,
                10 if is("user-agent") => Field::UserAgent,
                11 if is("traceparent") => Field::Traceparent,
                12 if is("content-type") => Field::ContentType,
                14 if is("content-length") => Field::ContentLength,
                17 if is("transfer-encoding") => Field::TransferEncoding,
                _ => continue,
            };
            match field {
                Field::Host => keep(&mut fields.host),
                Field::UserAgent => keep(&mut fields.user_agent),
                Field::Traceparent => keep(&mut fields.traceparent),
                Field::ContentType => keep(&mut fields.content_type),
                Field::ContentLength => {
                    // A list of identical values is one value (RFC 9110 §8.6).
                    for part in value.split(|&b| b == b',') {
                        let n =
                            content_length(part.trim_ascii()).ok_or(HeadError::ContentLength)?;
                        if fields.content_length.is_some_and(|seen| seen != n) {
                            return Err(HeadError::ContentLength);
                        }
                        fields.content_length = Some(n);
                    }
                }
                Field::TransferEncoding => {
                    // Later fields append to earlier ones; only the last coding decides.
                    let last = value
                        .rsplit(|&b| b == b',')
                        .next()
                        .unwrap_or_default()
                        .trim_ascii();
                    if !last.is_empty() || fields.chunked.is_none() {
                        fields.chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
                    }
                }
            }
        }
        Ok(fields)
    }
}

/// `1*DIGIT`, fitting in a u64.
fn content_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}
