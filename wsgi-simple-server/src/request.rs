//! The strict, blocking request-head parser.
//!
//! It reads one line at a time from the connection's buffered reader, so a
//! head is never held in memory beyond the configured limits:
//!
//! 1. [`read_line`] returns one CRLF-terminated line or says why it cannot:
//!    too long, a bare LF, a CR inside the line, end of input, an I/O error;
//! 2. [`read_head`] skips a few empty lines, checks the request line
//!    (`method SP target SP version`, each part on its own), then reads and
//!    checks field lines until the empty line, remembering what decides the
//!    framing (`Content-Length`, `Transfer-Encoding`), the connection
//!    (`Connection`, `Expect`) and the host;
//! 3. once the head is complete it is checked as a whole (RFC 9112 6.3:
//!    how long the body is) and turned into `http::request::Parts`.
//!
//! Anything ambiguous is refused with a [`Refusal`] (400, 414, 431, 501 or
//! 505), never guessed at, so no byte can be taken for body by one side and
//! for a request by the other (request smuggling).

use std::io::{self, BufRead};

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, StatusCode, Uri, Version};

/// Most empty lines (CRLF) skipped before a request line (RFC 9112 2.2).
const EMPTY_LINES_MAX: usize = 8;

/// Limits on a request head, with Gunicorn's names, defaults and ways of
/// counting.
///
/// As in Gunicorn, 0 lifts a limit: `fields` then allows 32768 fields, and
/// the line limits fall back to a hard cap of 1 MiB per line.
///
/// ```
/// use wsgi_simple_server::{Limits, SimpleServer};
/// let limits = Limits { request_line: 8190, ..Limits::default() };
/// assert_eq!((limits.fields, limits.field_size), (100, 8190));
/// let _server = SimpleServer::bind("127.0.0.1:0")?.limits(limits);
/// # Ok::<(), wsgi_simple_server::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line in bytes, its CRLF not counted
    /// (`limit_request_line`, default 4094); longer is answered 414.
    pub request_line: usize,
    /// Most header fields in a head, and most trailer fields
    /// (`limit_request_fields`, default 100); more is answered 431.
    pub fields: usize,
    /// Longest header field line in bytes, its CRLF counted
    /// (`limit_request_field_size`, default 8190); longer is answered 431.
    /// Chunk-size and trailer lines of a chunked body obey it too.
    pub field_size: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { request_line: 4094, fields: 100, field_size: 8190 }
    }
}

/// The longest line read when a line limit is 0 ("unlimited").
const LINE_CAP: usize = 1024 * 1024;

impl Limits {
    /// The longest request line (CRLF not counted).
    pub(crate) fn request_line_max(&self) -> usize {
        if self.request_line == 0 {
            LINE_CAP
        } else {
            self.request_line
        }
    }

    /// The longest field line content (CRLF not counted).
    pub(crate) fn field_line_max(&self) -> usize {
        if self.field_size == 0 {
            LINE_CAP
        } else {
            self.field_size.saturating_sub(2)
        }
    }

    /// The most fields in a header or trailer section.
    pub(crate) fn max_fields(&self) -> usize {
        if self.fields == 0 {
            32_768
        } else {
            self.fields
        }
    }
}

/// Why a request is refused: the status to answer and a short reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) reason: &'static str,
}

const fn bad(reason: &'static str) -> Refusal {
    Refusal { status: StatusCode::BAD_REQUEST, reason }
}

/// Why no request head came out of the connection.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// The head is invalid: answer with this and close.
    Refused(Refusal),
    /// The connection failed or timed out in the middle of a head: close
    /// it without an answer.
    Lost,
}

impl From<Refusal> for HeadError {
    fn from(r: Refusal) -> HeadError {
        HeadError::Refused(r)
    }
}

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyLength {
    /// No body: the next byte starts the next request.
    Empty,
    /// Exactly this many bytes (more than zero).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A valid request head.
#[derive(Debug)]
pub(crate) struct RequestHead {
    /// Method, target, version and header fields.
    pub(crate) parts: http::request::Parts,
    /// How the body that follows is delimited.
    pub(crate) body: BodyLength,
    /// The client asked to close the connection after this request
    /// (`Connection: close`, or HTTP/1.0 without `keep-alive`).
    pub(crate) close: bool,
    /// An HTTP/1.0 client asked to keep the connection open.
    pub(crate) keep_alive_10: bool,
    /// `Expect: 100-continue` on HTTP/1.1.
    pub(crate) expect_continue: bool,
}

/// Why [`read_line`] returned no line.
#[derive(Debug)]
pub(crate) enum LineError {
    /// The line is longer than allowed.
    TooLong,
    /// An LF without a CR before it.
    BareLf,
    /// A CR that does not end the line.
    StrayCr,
    /// The input ended; `partial` when part of a line had arrived.
    Eof { partial: bool },
    /// Reading failed (including a read timeout).
    Io(io::Error),
}

/// Read one line ending in CRLF into `line` (without the CRLF), at most
/// `max` bytes long. Never consumes more than `max + 2` bytes of a line.
///
/// # Blocking
/// Reads from `r` until the line ends.
pub(crate) fn read_line(r: &mut impl BufRead, max: usize, line: &mut Vec<u8>) -> Result<(), LineError> {
    line.clear();
    loop {
        let available = match r.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LineError::Io(e)),
        };
        if available.is_empty() {
            return Err(LineError::Eof { partial: !line.is_empty() });
        }
        let (mut take, mut ended) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        // Hold at most max + 2 bytes: content, CR, LF.
        let room = (max + 2).saturating_sub(line.len());
        if take > room {
            take = room;
            ended = false;
        }
        line.extend_from_slice(&available[..take]);
        r.consume(take);
        if ended {
            let Some(content) = line.strip_suffix(b"\r\n") else {
                return Err(LineError::BareLf);
            };
            if content.len() > max {
                return Err(LineError::TooLong);
            }
            if content.contains(&b'\r') {
                return Err(LineError::StrayCr);
            }
            line.truncate(line.len() - 2);
            return Ok(());
        }
        // Even if a LF came next, the content would be longer than max.
        if line.len() > max + 1 {
            return Err(LineError::TooLong);
        }
    }
}

/// Read and check one request head.
///
/// `Ok(None)` when the connection ended before a request started.
///
/// # Errors
/// [`HeadError::Refused`] for an invalid head (answer it and close);
/// [`HeadError::Lost`] when reading failed or timed out mid-head.
///
/// # Blocking
/// Reads from `r` until the head is complete.
pub(crate) fn read_head(r: &mut impl BufRead, limits: &Limits) -> Result<Option<RequestHead>, HeadError> {
    let mut line = Vec::new();
    let mut empty_lines = 0;
    // The request line, after at most a few empty lines.
    loop {
        match read_line(r, limits.request_line_max(), &mut line) {
            Ok(()) if line.is_empty() => {
                empty_lines += 1;
                if empty_lines > EMPTY_LINES_MAX {
                    return Err(bad("too many empty lines before the request line").into());
                }
            }
            Ok(()) => break,
            Err(LineError::TooLong) => {
                return Err(Refusal { status: StatusCode::URI_TOO_LONG, reason: "request line too long" }.into())
            }
            Err(LineError::Eof { partial: false }) => return Ok(None),
            Err(e) => return Err(line_refusal(e)),
        }
    }
    let request_line = parse_request_line(&line)?;

    let mut fields = Fields::default();
    loop {
        match read_line(r, limits.field_line_max(), &mut line) {
            Ok(()) if line.is_empty() => break,
            Ok(()) => {
                fields.count += 1;
                if fields.count > limits.max_fields() {
                    return Err(Refusal {
                        status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                        reason: "too many header fields",
                    }
                    .into());
                }
                fields.add(&line)?;
            }
            Err(LineError::TooLong) => {
                return Err(Refusal {
                    status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    reason: "header field line too long",
                }
                .into())
            }
            Err(e) => return Err(line_refusal(e)),
        }
    }
    fields.finish(request_line).map(Some).map_err(HeadError::from)
}

fn line_refusal(e: LineError) -> HeadError {
    match e {
        LineError::BareLf => bad("bare LF in the request head").into(),
        LineError::StrayCr => bad("CR not followed by LF in the request head").into(),
        LineError::Eof { .. } => bad("the request head is incomplete").into(),
        LineError::Io(_) => HeadError::Lost,
        LineError::TooLong => bad("line too long").into(),
    }
}

/// The three parts of a valid request line.
struct RequestLine {
    method: Method,
    uri: Uri,
    version: Version,
}

/// `method SP request-target SP HTTP-version`, exactly one space apart
/// (RFC 9112 3).
fn parse_request_line(line: &[u8]) -> Result<RequestLine, Refusal> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("the request line is not `method target version`"));
    };
    let method = parse_method(method)?;
    let version = parse_version(version)?;
    let uri = parse_target(&method, target)?;
    Ok(RequestLine { method, uri, version })
}

/// A method is a token; like Gunicorn by default, 3 to 20 bytes and no
/// lowercase letters or `#`.
fn parse_method(method: &[u8]) -> Result<Method, Refusal> {
    if !is_token(method) {
        return Err(bad("the method is not a token"));
    }
    if method.len() < 3 || method.iter().any(|&b| b.is_ascii_lowercase() || b == b'#') {
        return Err(bad("unconventional method (lowercase, '#' or shorter than 3 bytes)"));
    }
    if method.len() > 20 {
        return Err(Refusal { status: StatusCode::NOT_IMPLEMENTED, reason: "method longer than 20 bytes" });
    }
    Method::from_bytes(method).map_err(|_| bad("invalid method"))
}

/// `HTTP/1.1` and `HTTP/1.0`; another well-formed version is 505.
fn parse_version(version: &[u8]) -> Result<Version, Refusal> {
    match version {
        b"HTTP/1.1" => Ok(Version::HTTP_11),
        b"HTTP/1.0" => Ok(Version::HTTP_10),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit() => {
            Err(Refusal { status: StatusCode::HTTP_VERSION_NOT_SUPPORTED, reason: "HTTP version not supported" })
        }
        _ => Err(bad("malformed HTTP version")),
    }
}

/// The request target: origin-form (`/path?query`), absolute-form
/// (`http://host/path`), or `*` for OPTIONS (RFC 9112 3.2). Only visible
/// ASCII is accepted; the `http` crate's URI parser has the last word.
fn parse_target(method: &Method, target: &[u8]) -> Result<Uri, Refusal> {
    if method == Method::CONNECT {
        return Err(Refusal { status: StatusCode::NOT_IMPLEMENTED, reason: "CONNECT is not supported" });
    }
    if target.is_empty() {
        return Err(bad("empty request target"));
    }
    if !target.iter().all(|&b| (0x21..=0x7e).contains(&b)) {
        return Err(bad("control, space or non-ASCII byte in the request target"));
    }
    if target == b"*" {
        if method != Method::OPTIONS {
            return Err(bad("`*` is a target for OPTIONS only"));
        }
    } else if target[0] != b'/' {
        check_absolute_form(target)?;
    }
    Uri::try_from(target).map_err(|_| bad("invalid request target"))
}

/// `http://` or `https://`, a host without userinfo, then the path.
fn check_absolute_form(target: &[u8]) -> Result<(), Refusal> {
    let rest = strip_prefix_ignore_case(target, b"http://")
        .or_else(|| strip_prefix_ignore_case(target, b"https://"))
        .ok_or(bad("the target is neither origin-form nor an http(s) absolute URI"))?;
    let end = rest.iter().position(|&b| matches!(b, b'/' | b'?' | b'#')).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains(&b'@') {
        return Err(bad("userinfo in the request target"));
    }
    if authority.is_empty() || !is_authority(authority) {
        return Err(bad("invalid host in the request target"));
    }
    Ok(())
}

fn strip_prefix_ignore_case<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)).then(|| &s[prefix.len()..])
}

/// `host [":" port]` (RFC 3986 3.2.2/3.2.3): an IP literal in brackets or a
/// reg-name / IPv4 address; the port, when present, fits in 16 bits.
fn is_authority(s: &[u8]) -> bool {
    let (host_ok, port) = if let Some(inner) = s.strip_prefix(b"[") {
        match inner.iter().position(|&b| b == b']') {
            Some(close) => {
                let literal = &inner[..close];
                let ok = !literal.is_empty() && literal.iter().all(|&b| b.is_ascii_hexdigit() || b":.vV".contains(&b));
                (ok, &inner[close + 1..])
            }
            None => (false, &b""[..]),
        }
    } else {
        let colon = s.iter().position(|&b| b == b':').unwrap_or(s.len());
        let host = &s[..colon];
        (host.iter().all(|&b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)), &s[colon..])
    };
    if !host_ok {
        return false;
    }
    match port.split_first() {
        None => true,
        Some((b':', digits)) => {
            digits.len() <= 5
                && digits.iter().all(u8::is_ascii_digit)
                && digits.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) <= 65_535
        }
        Some(_) => false,
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A non-empty RFC 9110 token.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// `s` without leading and trailing SP / HTAB.
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(s.len());
    let end = s.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |i| i + 1);
    &s[start..end]
}

/// Split a field line into its name and OWS-trimmed value, checking both
/// (RFC 9112 5, RFC 9110 5.5). Shared with the trailer section.
pub(crate) fn split_field(line: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err("obsolete line folding");
    }
    let colon = line.iter().position(|&b| b == b':').ok_or("field line without a colon")?;
    let name = &line[..colon];
    if !is_token(name) {
        return Err("invalid field name");
    }
    let value = trim_ows(&line[colon + 1..]);
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("control character in a field value");
    }
    Ok((name, value))
}

/// What the field lines said, as far as the server is concerned.
#[derive(Default)]
struct Fields {
    headers: Vec<(HeaderName, HeaderValue)>,
    count: usize,
    hosts: usize,
    content_types: usize,
    content_length: Option<u64>,
    content_lengths: usize,
    /// `Transfer-Encoding` seen at all.
    transfer_encoding: bool,
    /// `chunked` was the last coding so far.
    chunked: bool,
    /// A coding other than `chunked` came before it.
    other_coding: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

impl Fields {
    /// Check one field line and record it.
    fn add(&mut self, line: &[u8]) -> Result<(), Refusal> {
        let (name, value) = split_field(line).map_err(bad)?;
        if name.eq_ignore_ascii_case(b"host") {
            self.hosts += 1;
            if self.hosts > 1 {
                return Err(bad("more than one Host field"));
            }
            if !value.is_empty() && !is_authority(value) {
                return Err(bad("invalid Host field"));
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            self.content_lengths += 1;
            if self.content_lengths > 1 {
                return Err(bad("more than one Content-Length field"));
            }
            self.content_length = Some(parse_content_length(value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.add_codings(value)?;
        } else if name.eq_ignore_ascii_case(b"content-type") {
            self.content_types += 1;
            if self.content_types > 1 {
                return Err(bad("more than one Content-Type field"));
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(trim_ows) {
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            self.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        }
        let name = HeaderName::from_bytes(name).map_err(|_| bad("invalid field name"))?;
        let value = HeaderValue::from_bytes(value).map_err(|_| bad("invalid field value"))?;
        self.headers.push((name, value));
        Ok(())
    }

    /// The codings of one `Transfer-Encoding` line: only a single, final
    /// `chunked` is accepted (RFC 9112 6.1).
    fn add_codings(&mut self, value: &[u8]) -> Result<(), Refusal> {
        self.transfer_encoding = true;
        for coding in value.split(|&b| b == b',').map(trim_ows) {
            if coding.is_empty() {
                return Err(bad("empty transfer coding"));
            }
            if self.chunked {
                return Err(bad("chunked is not the final transfer coding"));
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                self.chunked = true;
            } else {
                self.other_coding = true;
            }
        }
        Ok(())
    }

    /// Check the head as a whole and decide the body length (RFC 9112 6.3).
    fn finish(self, request: RequestLine) -> Result<RequestHead, Refusal> {
        let http11 = request.version == Version::HTTP_11;
        if http11 && self.hosts == 0 {
            return Err(bad("HTTP/1.1 request without Host"));
        }
        let body = if self.transfer_encoding {
            if !http11 {
                return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
            }
            if self.content_length.is_some() {
                return Err(bad("both Content-Length and Transfer-Encoding"));
            }
            if !self.chunked {
                return Err(bad("chunked is not the final transfer coding"));
            }
            if self.other_coding {
                return Err(Refusal { status: StatusCode::NOT_IMPLEMENTED, reason: "unsupported transfer coding" });
            }
            BodyLength::Chunked
        } else {
            match self.content_length {
                None | Some(0) => BodyLength::Empty,
                Some(n) => BodyLength::Length(n),
            }
        };
        let mut headers = HeaderMap::with_capacity(self.headers.len());
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.method = request.method;
        parts.uri = request.uri;
        parts.version = request.version;
        parts.headers = headers;
        Ok(RequestHead {
            parts,
            body,
            close: self.close || (!http11 && !self.keep_alive),
            keep_alive_10: !http11 && self.keep_alive && !self.close,
            expect_continue: http11 && self.expect_continue,
        })
    }
}

/// Digits only, no sign, no list, no whitespace inside; fits in a `u64`.
fn parse_content_length(value: &[u8]) -> Result<u64, Refusal> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(bad("invalid Content-Length"));
    }
    value
        .iter()
        .try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .ok_or(bad("Content-Length too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Option<RequestHead>, HeadError> {
        read_head(&mut &raw[..], &Limits::default())
    }

    fn refused(raw: &[u8]) -> u16 {
        match parse(raw) {
            Err(HeadError::Refused(r)) => r.status.as_u16(),
            other => panic!("not refused: {other:?}"),
        }
    }

    fn head(raw: &[u8]) -> RequestHead {
        match parse(raw) {
            Ok(Some(h)) => h,
            other => panic!("not a head: {other:?}"),
        }
    }

    #[test]
    fn a_simple_get() {
        let h = head(b"GET /a%20b?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Foo:  bar \t\r\n\r\n");
        assert_eq!(h.parts.method, Method::GET);
        assert_eq!(h.parts.uri.path(), "/a%20b");
        assert_eq!(h.parts.uri.query(), Some("x=1"));
        assert_eq!(h.parts.headers["x-foo"], "bar");
        assert_eq!(h.body, BodyLength::Empty);
        assert!(!h.close);
    }

    #[test]
    fn empty_input_is_no_request() {
        assert!(matches!(parse(b""), Ok(None)));
        assert!(matches!(parse(b"\r\n\r\n"), Ok(None)));
    }

    #[test]
    fn framing_decisions() {
        assert_eq!(head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n").body, BodyLength::Length(5));
        assert_eq!(head(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").body, BodyLength::Chunked);
        assert_eq!(refused(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), 400);
        assert_eq!(refused(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n"), 400);
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(refused(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 400);
        assert_eq!(refused(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501);
        assert_eq!(refused(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
    }

    #[test]
    fn connection_decisions() {
        assert!(head(b"GET / HTTP/1.0\r\n\r\n").close);
        let h = head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(!h.close && h.keep_alive_10);
        assert!(head(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n").close);
        assert!(head(b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n\r\n").expect_continue);
    }

    #[test]
    fn limits() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(5000));
        assert_eq!(refused(long.as_bytes()), 414);
        let field = format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n", "b".repeat(8186));
        assert_eq!(refused(field.as_bytes()), 431);
        let ok = format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n", "b".repeat(8185));
        assert_eq!(head(ok.as_bytes()).parts.headers["x"].len(), 8185);
        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(refused(format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes()), 431);
    }

    #[test]
    fn malformed_heads() {
        for raw in [
            &b"GET / HTTP/1.1\nHost: x\n\n"[..],
            b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
            b" GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"get / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.x\r\nHost: x\r\n\r\n",
            b"GET foo HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Foo : bar\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Foo bar\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
            b"GET http://u@h/ HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n",
        ] {
            assert_eq!(refused(raw), 400, "{:?}", String::from_utf8_lossy(raw));
        }
        assert_eq!(refused(b"GET / HTTP/2.0\r\n\r\n"), 505);
    }

    #[test]
    fn targets() {
        let h = head(b"GET http://example.com:8080/p?q HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(h.parts.uri.authority().map(|a| a.as_str()), Some("example.com:8080"));
        assert_eq!(head(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").parts.uri.path(), "*");
        assert_eq!(head(b"GET / HTTP/1.1\r\nHost: 0.0.0.0=5000\r\n\r\n").parts.headers["host"], "0.0.0.0=5000");
    }

    #[test]
    fn obs_text_values_are_kept() {
        let h = head(b"GET / HTTP/1.1\r\nHost: x\r\nX-Latin: caf\xe9\r\n\r\n");
        assert_eq!(h.parts.headers["x-latin"].as_bytes(), b"caf\xe9");
    }
}
