//! A strict, sans-I/O validator for HTTP/1.x requests that runs in front of hyper.
//!
//! hyper's HTTP/1 parser (httparse) is deliberately lenient. The connection's
//! read side therefore passes every byte received from the client through a
//! [`Guard`] before hyper sees it. The guard releases bytes only once they are
//! validated; for an invalid request it returns a [`Reject`] (status code and
//! a short reason), the server answers that status itself and closes the
//! connection, and the application is never called for it.
//!
//! The rules are at least as strict as Gunicorn's request parser (its public
//! request corpus is the test suite, see the tests at the end of this file)
//! and the message framing agrees with hyper's, so that no byte can be read as
//! body by one side and as a request by the other (request smuggling):
//!
//! * the head is held until it is complete (up to the empty line), then
//!   validated as a whole and released at once; size limits are enforced
//!   while it is still incomplete;
//! * a body is framed by `Transfer-Encoding: chunked` (validated chunk by
//!   chunk) or by a single `Content-Length`; a request with neither has no
//!   body, so the bytes after its head are the next request;
//! * everything that RFC 9112 allows a recipient to reject as ambiguous is
//!   rejected: bare LF, stray CR, obs-fold, repeated or list-valued
//!   `Content-Length`, `Content-Length` together with `Transfer-Encoding`,
//!   transfer codings other than a single final `chunked`, and so on.
//!
//! The guard does not interpret `Connection`, `Upgrade` or `CONNECT`: bytes
//! after such a request are validated as the next request. A server that
//! switches protocols must stop feeding the guard at that point.

use std::fmt;

/// Most empty lines (CRLF) skipped before a request line (RFC 9112 section 2.2
/// asks to ignore "at least one"); more is treated as garbage.
const LEADING_EMPTY_LINES_MAX: usize = 16;

/// Gunicorn's cap on the number of header fields when `limit_request_fields` is 0.
const FIELDS_CAP: usize = 32_768;

/// Longest chunk-size line (CRLF not counted) when `Limits::field_size` is 0,
/// Gunicorn's fallback for the same case.
const CHUNK_LINE_FALLBACK: usize = 8190;

/// Largest `Content-Length` hyper accepts (`u64::MAX - 2`; the two values
/// above are its internal markers for "chunked" and "close-delimited").
const CONTENT_LENGTH_MAX: u64 = u64::MAX - 2;

/// hyper rejects a body whose chunk extensions add up to this many bytes
/// (counted after each `;`, whole body); the guard refuses them first.
const CHUNK_EXTENSIONS_MAX: u64 = 16 * 1024;

/// hyper rejects a trailer section of this many bytes (all trailer lines and
/// the final CRLF); the guard refuses it first.
const TRAILER_SECTION_MAX: usize = 16 * 1024;

/// Most hexadecimal digits in a chunk size: 16 digits always fit in a `u64`.
const CHUNK_SIZE_DIGITS_MAX: usize = 16;

/// Field names (lowercase) refused in a trailer section (RFC 9110 section 6.5.1):
/// message framing, routing, connection management, request modifiers,
/// authentication and content coding all have to be known before the content.
const TRAILER_FORBIDDEN: &[&[u8]] = &[
    b"authorization",
    b"connection",
    b"content-encoding",
    b"content-length",
    b"content-range",
    b"expect",
    b"host",
    b"keep-alive",
    b"proxy-authorization",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
];

/// Limits, names and defaults as Gunicorn.
///
/// Each field mirrors one `limit_request_*` setting of Gunicorn (same default,
/// same way of counting), plus the body limit and the Host requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Longest request line in bytes, its CRLF not counted (Gunicorn
    /// `limit_request_line`, default 4094). A longer one is refused with 414,
    /// even before its CRLF has arrived. 0 means unlimited, as in Gunicorn.
    pub(crate) request_line: usize,
    /// Most header fields in a head, and most fields in a trailer section
    /// (Gunicorn `limit_request_fields`, default 100). More are refused with
    /// 431. 0 means Gunicorn's cap of 32768.
    pub(crate) fields: usize,
    /// Longest header field line in bytes, its CRLF counted as Gunicorn does
    /// (Gunicorn `limit_request_field_size`, default 8190). A longer one is
    /// refused with 431; trailer lines follow the same rule and chunk-size
    /// lines may not be longer either (400). 0 means unlimited for field
    /// lines (chunk-size lines then fall back to 8190 bytes).
    pub(crate) field_size: usize,
    /// Largest request body in bytes; `None` (the default) means no limit. A
    /// `Content-Length` above it is refused with 413 when the head arrives; a
    /// chunked body growing past it is refused with 413 mid-body.
    pub(crate) max_body: Option<u64>,
    /// Whether an HTTP/1.1 request without a `Host` field is refused with 400
    /// (RFC 9112 section 3.2; default true).
    pub(crate) require_host: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self { request_line: 4094, fields: 100, field_size: 8190, max_body: None, require_host: true }
    }
}

impl Limits {
    /// Number of header fields allowed, with Gunicorn's meaning of 0.
    pub(crate) fn max_fields(&self) -> usize {
        if self.fields == 0 {
            FIELDS_CAP
        } else {
            self.fields
        }
    }

    /// True if a field line of `len` bytes (CRLF not included) is too long.
    fn field_too_long(&self, len: usize) -> bool {
        self.field_size > 0 && len.saturating_add(2) > self.field_size
    }

    /// True if a request line of `len` bytes (CRLF not included) is too long.
    fn request_line_too_long(&self, len: usize) -> bool {
        self.request_line > 0 && len > self.request_line
    }

    /// Longest chunk-size line accepted (CRLF not included).
    fn chunk_line_max(&self) -> usize {
        if self.field_size == 0 {
            CHUNK_LINE_FALLBACK
        } else {
            self.field_size
        }
    }

    /// Largest head (leading empty lines, request line, fields and the empty
    /// line) these limits let through, or `None` when a limit is unlimited.
    /// The server can size hyper's read buffer (`max_buf_size`) from it.
    pub(crate) fn max_head_len(&self) -> Option<usize> {
        if self.request_line == 0 || self.field_size == 0 {
            return None;
        }
        let fields = self.max_fields().checked_mul(self.field_size)?;
        (LEADING_EMPTY_LINES_MAX * 2)
            .checked_add(self.request_line)?
            .checked_add(2)?
            .checked_add(fields)?
            .checked_add(2)
    }
}

/// Why a request was refused: the status to answer and a short reason for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reject {
    /// HTTP status code to answer with (400, 413, 414, 431, 501 or 505).
    pub(crate) status: u16,
    /// Short, static description of the problem, for the log.
    pub(crate) reason: &'static str,
    /// True if the problem was found after the request head had been released
    /// (in the body or the trailer section): hyper, and maybe the application,
    /// have already seen the request.
    pub(crate) in_body: bool,
}

impl Reject {
    /// A rejection found in the request head.
    const fn head(status: u16, reason: &'static str) -> Self {
        Self { status, reason, in_body: false }
    }

    /// A rejection found after the head was released.
    const fn body(status: u16, reason: &'static str) -> Self {
        Self { status, reason, in_body: true }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = if self.in_body { "body" } else { "head" };
        write!(f, "{} ({}, in {})", self.status, self.reason, phase)
    }
}

/// Shorthand for a 400 found in the head.
const fn bad(reason: &'static str) -> Reject {
    Reject::head(400, reason)
}

/// Shorthand for a 400 found in the body.
const fn bad_body(reason: &'static str) -> Reject {
    Reject::body(400, reason)
}

/// The validating state machine for one client connection.
///
/// Feed it everything received with [`Guard::advance`] and pass on only the
/// bytes it releases.
#[derive(Debug)]
pub(crate) struct Guard {
    /// Configured limits.
    limits: Limits,
    /// Where in the message stream the next unreleased byte is.
    state: State,
    /// Chunk data bytes of the current chunked body so far.
    chunked_total: u64,
    /// Chunk extension bytes of the current chunked body so far (hyper's count).
    chunk_ext_total: u64,
    /// Request heads completed so far.
    heads: u64,
}

/// Where the guard is in the message stream.
#[derive(Debug)]
enum State {
    /// Reading (and holding) a request head.
    Head(Head),
    /// Inside a `Content-Length` body; the number is the bytes still to come.
    Length(u64),
    /// Reading (and holding) a chunk-size line.
    ChunkSize(LineScan),
    /// Inside chunk data; the number is the bytes of this chunk still to come.
    ChunkData(u64),
    /// Expecting the CRLF that ends chunk data.
    ChunkDataEnd,
    /// Reading the trailer section after the last chunk.
    Trailers(Trailers),
    /// A request was refused; every later call returns this rejection.
    Failed(Reject),
}

/// Result of looking for the end of a line in held bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// A CRLF-terminated line of this many bytes (CRLF not counted).
    Complete(usize),
    /// No line end yet; this many bytes so far (a trailing CR not counted).
    Partial(usize),
    /// An LF not preceded by CR.
    BareLf,
    /// A CR followed by something other than LF.
    StrayCr,
}

/// Incremental search for a CRLF line end, remembering how far it looked.
#[derive(Debug, Default, Clone, Copy)]
struct LineScan {
    /// Bytes of the line already examined (all of them ordinary bytes).
    scanned: usize,
}

impl LineScan {
    /// Looks for the end of the line that starts at `buf[0]`.
    ///
    /// `buf` must start at the same byte on every call for one line (the
    /// guard holds unfinished lines, so it does). After `Complete` the scan
    /// is reset for the next line.
    fn scan(&mut self, buf: &[u8]) -> Line {
        let start = self.scanned.min(buf.len());
        let rest = buf.get(start..).unwrap_or_default();
        match find_cr_or_lf(rest) {
            None => {
                self.scanned = buf.len();
                Line::Partial(buf.len())
            }
            Some(rel) => {
                let at = start + rel;
                if buf.get(at) == Some(&b'\n') {
                    return Line::BareLf;
                }
                match buf.get(at + 1) {
                    Some(b'\n') => {
                        self.scanned = 0;
                        Line::Complete(at)
                    }
                    Some(_) => Line::StrayCr,
                    None => {
                        self.scanned = at;
                        Line::Partial(at)
                    }
                }
            }
        }
    }
}

/// The index of the first CR or LF in `s`: eight bytes at a time (a line
/// of a head is tens of bytes, mostly without either).
fn find_cr_or_lf(s: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const CRS: u64 = u64::from_ne_bytes([b'\r'; 8]);
    const LFS: u64 = u64::from_ne_bytes([b'\n'; 8]);
    // High bit set in each byte of `v` that is zero, and possibly in bytes
    // above a zero byte (a borrow), never below the lowest zero byte.
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut words = s.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(word);
        let v = u64::from_le_bytes(b);
        let hits = zero_bytes(v ^ CRS) | zero_bytes(v ^ LFS);
        if hits != 0 {
            // Little endian: the lowest flagged byte comes first in `s`.
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words.remainder().iter().position(|&b| b == b'\r' || b == b'\n').map(|i| at + i)
}

/// What the head parser learned from a complete request line.
#[derive(Debug, Clone, Copy)]
struct RequestLine {
    /// True for HTTP/1.1, false for HTTP/1.0.
    http11: bool,
}

/// What the `Transfer-Encoding` lines of a head said so far.
#[derive(Debug, Default, Clone, Copy)]
struct TransferCodings {
    /// Number of `Transfer-Encoding` field lines.
    lines: usize,
    /// Whether the last coding seen so far is `chunked`.
    last_is_chunked: bool,
    /// Whether a coding other than `chunked` was seen.
    other: bool,
}

/// How the body of a request is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// No body: the next byte starts the next request.
    None,
    /// A body of exactly this many bytes (more than zero).
    Length(u64),
    /// A chunked body.
    Chunked,
}

/// Progress through one request head, which is held until complete.
#[derive(Debug, Default)]
struct Head {
    /// Offset of the current line within the held head.
    line_start: usize,
    /// Line-end search for the current line.
    scan: LineScan,
    /// Bytes of the current, unfinished line seen so far.
    partial: usize,
    /// Empty lines skipped before the request line.
    empty_lines: usize,
    /// The request line, once it has been validated.
    request: Option<RequestLine>,
    /// Header field lines so far.
    fields: usize,
    /// `Host` field lines so far.
    hosts: usize,
    /// `Content-Type` field lines so far.
    content_types: usize,
    /// `Content-Length` field lines so far.
    content_lengths: usize,
    /// The `Content-Length` value, once one has been seen.
    content_length: Option<u64>,
    /// Summary of the `Transfer-Encoding` field lines.
    codings: TransferCodings,
}

/// What happened when more of a head was examined.
#[derive(Debug, Clone, Copy)]
enum HeadStep {
    /// The head is not complete yet; nothing can be released.
    Hold,
    /// The head is complete and valid: release `len` bytes, then `body`.
    Done {
        /// Length of the head including leading empty lines and the final CRLF.
        len: usize,
        /// How the body that follows is framed.
        body: Body,
    },
}

impl Head {
    /// True if nothing but (parts of) empty lines has been seen.
    fn is_idle(&self) -> bool {
        self.request.is_none() && self.partial == 0
    }

    /// Examines the held head `buf` (which starts at the head's first byte).
    fn feed(&mut self, buf: &[u8], limits: &Limits) -> Result<HeadStep, Reject> {
        loop {
            let line_buf = buf.get(self.line_start..).unwrap_or_default();
            let len = match self.scan.scan(line_buf) {
                Line::BareLf => return Err(bad("bare LF in request head")),
                Line::StrayCr => return Err(bad("CR not followed by LF in request head")),
                Line::Partial(len) => {
                    self.partial = len;
                    self.check_partial(line_buf.get(..len).unwrap_or_default(), limits)?;
                    return Ok(HeadStep::Hold);
                }
                Line::Complete(len) => len,
            };
            self.partial = 0;
            let line = line_buf.get(..len).unwrap_or_default();
            let next = self.line_start + len + 2;
            match self.request {
                None if line.is_empty() => {
                    self.empty_lines += 1;
                    if self.empty_lines > LEADING_EMPTY_LINES_MAX {
                        return Err(bad("too many empty lines before the request line"));
                    }
                }
                None => {
                    if limits.request_line_too_long(len) {
                        return Err(Reject::head(414, "request line too long"));
                    }
                    self.request = Some(parse_request_line(line)?);
                }
                Some(request) if line.is_empty() => {
                    let body = self.finish(request, limits)?;
                    return Ok(HeadStep::Done { len: next, body });
                }
                Some(_) => self.field(line, limits)?,
            }
            self.line_start = next;
        }
    }

    /// Enforces the limits on a line whose end has not arrived yet.
    fn check_partial(&self, line: &[u8], limits: &Limits) -> Result<(), Reject> {
        if self.request.is_none() {
            if limits.request_line_too_long(line.len()) {
                return Err(Reject::head(414, "request line too long"));
            }
            return Ok(());
        }
        if line.is_empty() {
            return Ok(());
        }
        if self.fields >= limits.max_fields() {
            return Err(Reject::head(431, "too many header fields"));
        }
        if limits.field_too_long(line.len()) {
            return Err(Reject::head(431, "header field line too long"));
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            return Err(bad("obsolete line folding in header"));
        }
        Ok(())
    }

    /// Validates one complete header field line and records what matters.
    fn field(&mut self, line: &[u8], limits: &Limits) -> Result<(), Reject> {
        self.fields += 1;
        if self.fields > limits.max_fields() {
            return Err(Reject::head(431, "too many header fields"));
        }
        if limits.field_too_long(line.len()) {
            return Err(Reject::head(431, "header field line too long"));
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            return Err(bad("obsolete line folding in header"));
        }
        let (name, value) = split_field(line).map_err(bad)?;
        if name.eq_ignore_ascii_case(b"host") {
            self.hosts += 1;
            if self.hosts > 1 {
                return Err(bad("more than one Host field"));
            }
            if !valid_authority(value, AuthorityUse::HostField) {
                return Err(bad("invalid Host field value"));
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            self.content_lengths += 1;
            if self.content_lengths > 1 {
                return Err(bad("more than one Content-Length field"));
            }
            self.content_length = Some(parse_content_length(value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            add_transfer_codings(&mut self.codings, value)?;
        } else if name.eq_ignore_ascii_case(b"content-type") {
            self.content_types += 1;
            if self.content_types > 1 {
                return Err(bad("more than one Content-Type field"));
            }
        }
        Ok(())
    }

    /// Checks the head as a whole once its empty line has arrived, and
    /// decides how the body is framed (RFC 9112 section 6.3).
    fn finish(&self, request: RequestLine, limits: &Limits) -> Result<Body, Reject> {
        if request.http11 && limits.require_host && self.hosts == 0 {
            return Err(bad("HTTP/1.1 request without Host"));
        }
        if self.codings.lines > 0 {
            if !request.http11 {
                return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
            }
            if self.content_length.is_some() {
                return Err(bad("both Content-Length and Transfer-Encoding"));
            }
            if !self.codings.last_is_chunked {
                return Err(bad("chunked is not the final transfer coding"));
            }
            if self.codings.other {
                return Err(Reject::head(501, "unsupported transfer coding"));
            }
            return Ok(Body::Chunked);
        }
        match self.content_length {
            Some(len) if limits.max_body.is_some_and(|max| len > max) => {
                Err(Reject::head(413, "Content-Length over the body limit"))
            }
            Some(0) | None => Ok(Body::None),
            Some(len) => Ok(Body::Length(len)),
        }
    }
}

/// Progress through a trailer section; each field line is held until complete.
#[derive(Debug, Default)]
struct Trailers {
    /// Line-end search for the current line.
    scan: LineScan,
    /// Trailer field lines so far.
    fields: usize,
    /// Bytes of the trailer field lines so far, CRLFs included.
    bytes: usize,
}

impl Trailers {
    /// Examines the held trailer line at the start of `buf`; returns how many
    /// bytes may be released (0 = hold) and whether the message is complete.
    fn feed(&mut self, buf: &[u8], limits: &Limits) -> Result<(usize, bool), Reject> {
        let len = match self.scan.scan(buf) {
            Line::BareLf => return Err(bad_body("bare LF in trailer section")),
            Line::StrayCr => return Err(bad_body("CR not followed by LF in trailer section")),
            Line::Partial(len) => {
                self.check_line(buf.get(..len).unwrap_or_default(), limits)?;
                return Ok((0, false));
            }
            Line::Complete(len) => len,
        };
        if len == 0 {
            return Ok((2, true));
        }
        let line = buf.get(..len).unwrap_or_default();
        self.check_line(line, limits)?;
        let (name, _value) = split_field(line).map_err(bad_body)?;
        if TRAILER_FORBIDDEN.iter().any(|forbidden| name.eq_ignore_ascii_case(forbidden)) {
            return Err(bad_body("field not allowed in a trailer section"));
        }
        self.fields += 1;
        self.bytes += len + 2;
        Ok((len + 2, false))
    }

    /// Enforces the limits on a trailer line (complete or not).
    fn check_line(&self, line: &[u8], limits: &Limits) -> Result<(), Reject> {
        if line.is_empty() {
            return Ok(());
        }
        if self.fields >= limits.max_fields() {
            return Err(Reject::body(431, "too many trailer fields"));
        }
        if limits.field_too_long(line.len()) {
            return Err(Reject::body(431, "trailer field line too long"));
        }
        // The section still needs this line's CRLF and the final CRLF.
        if self.bytes.saturating_add(line.len()).saturating_add(4) >= TRAILER_SECTION_MAX {
            return Err(Reject::body(431, "trailer section too large"));
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            return Err(bad_body("obsolete line folding in trailer section"));
        }
        Ok(())
    }
}

impl Guard {
    /// A guard for a new connection, expecting a request head.
    pub(crate) fn new(limits: Limits) -> Self {
        Self { limits, state: State::Head(Head::default()), chunked_total: 0, chunk_ext_total: 0, heads: 0 }
    }

    /// Validates received bytes and says how many may be passed on.
    ///
    /// `buf` is all bytes received and not yet released (the caller keeps them
    /// contiguous and drops the first n after this returns Ok(n)). Returns how
    /// many bytes at the front of `buf` are validated and may be passed on now
    /// (0 = need more data). Called again with the remainder plus newly
    /// received bytes. After Err, the guard stays failed.
    ///
    /// One call validates as far as `buf` allows: a complete head is released
    /// with whatever body bytes follow it, chunk-size and trailer lines once
    /// complete, and chunk data as it arrives. If a problem is found after
    /// other bytes were already validated in the same call, those bytes are
    /// returned first and the rejection comes from the next call, so that
    /// complete earlier (pipelined) requests still reach hyper. Callers should
    /// therefore call again with the remainder, before waiting for more input,
    /// whenever bytes are left over after Ok(n) with n > 0.
    pub(crate) fn advance(&mut self, buf: &[u8]) -> Result<usize, Reject> {
        let mut released = 0;
        loop {
            if let State::Failed(reject) = self.state {
                return Err(reject);
            }
            let rest = buf.get(released..).unwrap_or_default();
            if rest.is_empty() {
                return Ok(released);
            }
            match self.step(rest) {
                Ok(0) => return Ok(released),
                Ok(n) => released += n,
                Err(reject) => {
                    self.state = State::Failed(reject);
                    if released == 0 {
                        return Err(reject);
                    }
                    return Ok(released);
                }
            }
        }
    }

    /// True between messages (nothing of a request pending) — lets the server tell an idle EOF from a truncated request.
    ///
    /// Held empty lines (CRLF) before a request line do not count as pending.
    /// False while a head, body or trailer section is unfinished, and after a
    /// rejection.
    pub(crate) fn is_idle(&self) -> bool {
        match &self.state {
            State::Head(head) => head.is_idle(),
            _ => false,
        }
    }

    /// Waiting for (or inside) a request head: between messages or before
    /// the end of a head. The `u64` counts the heads completed so far, so a
    /// caller timing a head can tell a new one from the one it timed.
    pub(crate) fn awaiting_head(&self) -> Option<u64> {
        matches!(self.state, State::Head(_)).then_some(self.heads)
    }

    /// Handles the bytes at the front of `buf` (non-empty) in the current
    /// state; returns how many may be released (0 = need more data).
    fn step(&mut self, buf: &[u8]) -> Result<usize, Reject> {
        let limits = self.limits;
        match &mut self.state {
            State::Failed(reject) => Err(*reject),
            State::Head(head) => match head.feed(buf, &limits)? {
                HeadStep::Hold => Ok(0),
                HeadStep::Done { len, body } => {
                    self.heads += 1;
                    self.state = match body {
                        Body::None => State::Head(Head::default()),
                        Body::Length(n) => State::Length(n),
                        Body::Chunked => {
                            self.chunked_total = 0;
                            self.chunk_ext_total = 0;
                            State::ChunkSize(LineScan::default())
                        }
                    };
                    Ok(len)
                }
            },
            State::Length(remaining) => {
                let take = clamp_len(*remaining, buf.len());
                *remaining -= take as u64;
                if *remaining == 0 {
                    self.state = State::Head(Head::default());
                }
                Ok(take)
            }
            State::ChunkSize(scan) => {
                let len = match scan.scan(buf) {
                    Line::BareLf => return Err(bad_body("bare LF in chunk-size line")),
                    Line::StrayCr => return Err(bad_body("CR not followed by LF in chunk-size line")),
                    Line::Partial(len) => {
                        if len > limits.chunk_line_max() {
                            return Err(bad_body("chunk-size line too long"));
                        }
                        return Ok(0);
                    }
                    Line::Complete(len) => len,
                };
                if len > limits.chunk_line_max() {
                    return Err(bad_body("chunk-size line too long"));
                }
                let chunk = parse_chunk_line(buf.get(..len).unwrap_or_default())?;
                self.chunk_ext_total = self.chunk_ext_total.saturating_add(chunk.ext_len);
                if self.chunk_ext_total >= CHUNK_EXTENSIONS_MAX {
                    return Err(bad_body("chunk extensions too long"));
                }
                if chunk.size == 0 {
                    self.state = State::Trailers(Trailers::default());
                } else {
                    self.chunked_total = self.chunked_total.saturating_add(chunk.size);
                    if limits.max_body.is_some_and(|max| self.chunked_total > max) {
                        return Err(Reject::body(413, "chunked body over the body limit"));
                    }
                    self.state = State::ChunkData(chunk.size);
                }
                Ok(len + 2)
            }
            State::ChunkData(remaining) => {
                let take = clamp_len(*remaining, buf.len());
                *remaining -= take as u64;
                if *remaining == 0 {
                    self.state = State::ChunkDataEnd;
                }
                Ok(take)
            }
            State::ChunkDataEnd => match buf {
                [b'\r', b'\n', ..] => {
                    self.state = State::ChunkSize(LineScan::default());
                    Ok(2)
                }
                [b'\r'] => Ok(0),
                _ => Err(bad_body("chunk data not followed by CRLF")),
            },
            State::Trailers(trailers) => {
                let (n, done) = trailers.feed(buf, &limits)?;
                if done {
                    self.state = State::Head(Head::default());
                }
                Ok(n)
            }
        }
    }
}

/// `min(remaining, available)` as a byte count.
fn clamp_len(remaining: u64, available: usize) -> usize {
    usize::try_from(remaining).map_or(available, |r| r.min(available))
}

/// RFC 9110 `tchar`: the bytes of a token.
fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// A byte class as a table: ASCII letters and digits plus `extra`.
const fn byte_class(extra: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
}

/// RFC 9110 `tchar`.
static TCHAR: [bool; 256] = byte_class(b"!#$%&'*+-.^_`|~");

/// RFC 3986 `reg-name` bytes (unreserved, sub-delims, `%` of pct-encoded).
static REG_NAME: [bool; 256] = byte_class(b"-._~%!$&'()*+,;=");

/// True if `s` is a non-empty RFC 9110 token.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Optional whitespace (SP / HTAB).
fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `s` without leading and trailing SP / HTAB.
fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ows(b)).map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or_default()
}

/// Splits a field line into its name and its OWS-trimmed value, checking both.
fn split_field(line: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    let colon = line.iter().position(|&b| b == b':').ok_or("header line without colon")?;
    let name = line.get(..colon).unwrap_or_default();
    if name.is_empty() {
        return Err("empty field name");
    }
    if !is_token(name) {
        return Err("invalid field name");
    }
    let value = trim_ows(line.get(colon + 1..).unwrap_or_default());
    // RFC 9110 section 5.5: VCHAR, obs-text, SP and HTAB only.
    // Without an early exit, so the loop is vectorised.
    if value.iter().fold(false, |found, &b| found | ((b < 0x20) & (b != b'\t')) | (b == 0x7f)) {
        return Err("control character in field value");
    }
    Ok((name, value))
}

/// Parses a `Content-Length` value: digits only, as hyper reads it.
fn parse_content_length(value: &[u8]) -> Result<u64, Reject> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(bad("invalid Content-Length"));
    }
    value
        .iter()
        .try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .filter(|&n| n <= CONTENT_LENGTH_MAX)
        .ok_or(bad("Content-Length too large"))
}

/// Adds the codings of one `Transfer-Encoding` field value to `codings`.
fn add_transfer_codings(codings: &mut TransferCodings, value: &[u8]) -> Result<(), Reject> {
    codings.lines += 1;
    for element in value.split(|&b| b == b',') {
        let element = trim_ows(element);
        if element.is_empty() {
            return Err(bad("empty transfer coding"));
        }
        let name_end = element.iter().position(|&b| !is_tchar(b)).unwrap_or(element.len());
        let (name, params) = element.split_at(name_end);
        if name.is_empty() {
            return Err(bad("invalid transfer coding"));
        }
        let has_params = !params.is_empty();
        if has_params && trim_ows(params).first() != Some(&b';') {
            return Err(bad("invalid transfer coding"));
        }
        if codings.last_is_chunked {
            // Nothing may follow chunked, not even a second chunked.
            return Err(bad("chunked is not the final transfer coding"));
        }
        if name.eq_ignore_ascii_case(b"chunked") {
            if has_params {
                return Err(bad("parameters on the chunked transfer coding"));
            }
            codings.last_is_chunked = true;
        } else {
            codings.other = true;
        }
    }
    Ok(())
}

/// What a valid chunk-size line says.
#[derive(Debug, Clone, Copy)]
struct ChunkLine {
    /// The chunk size.
    size: u64,
    /// Bytes after the first `;` (hyper's chunk-extension count).
    ext_len: u64,
}

/// Validates a chunk-size line (without CRLF): `1*16HEXDIG *chunk-ext`
/// (RFC 9112 section 7.1.1).
fn parse_chunk_line(line: &[u8]) -> Result<ChunkLine, Reject> {
    let digits = line.iter().position(|b| !b.is_ascii_hexdigit()).unwrap_or(line.len());
    if digits == 0 {
        return Err(bad_body("invalid chunk size"));
    }
    if digits > CHUNK_SIZE_DIGITS_MAX {
        return Err(bad_body("chunk size too large"));
    }
    let (hex, rest) = line.split_at(digits);
    let size = hex.iter().try_fold(0u64, |acc, &b| {
        let digit = char::from(b).to_digit(16)?;
        acc.checked_mul(16)?.checked_add(u64::from(digit))
    });
    let size = size.ok_or(bad_body("invalid chunk size"))?;
    if rest.is_empty() {
        return Ok(ChunkLine { size, ext_len: 0 });
    }
    // Whitespace after the size is only allowed before an extension.
    let semi = rest.iter().position(|&b| !is_ows(b)).unwrap_or(rest.len());
    if rest.get(semi) != Some(&b';') {
        return Err(bad_body("invalid chunk size"));
    }
    let ext = rest.get(semi..).unwrap_or_default();
    if !valid_chunk_extensions(ext) {
        return Err(bad_body("invalid chunk extension"));
    }
    let ext_len = u64::try_from(ext.len().saturating_sub(1)).unwrap_or(u64::MAX);
    Ok(ChunkLine { size, ext_len })
}

/// Validates `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`,
/// starting at the first `;`.
fn valid_chunk_extensions(mut s: &[u8]) -> bool {
    loop {
        s = skip_ows(s);
        let Some((&b';', rest)) = s.split_first() else {
            return s.is_empty();
        };
        s = skip_ows(rest);
        let name_end = s.iter().position(|&b| !is_tchar(b)).unwrap_or(s.len());
        if name_end == 0 {
            return false;
        }
        s = s.get(name_end..).unwrap_or_default();
        let after_name = skip_ows(s);
        if let Some((&b'=', value)) = after_name.split_first() {
            let value = skip_ows(value);
            match value.first() {
                Some(b'"') => match quoted_string_len(value) {
                    Some(n) => s = value.get(n..).unwrap_or_default(),
                    None => return false,
                },
                _ => {
                    let end = value.iter().position(|&b| !is_tchar(b)).unwrap_or(value.len());
                    if end == 0 {
                        return false;
                    }
                    s = value.get(end..).unwrap_or_default();
                }
            }
        }
        // Only whitespace followed by ';' may come next (no trailing BWS).
        let next = skip_ows(s);
        if next.is_empty() && !s.is_empty() {
            return false;
        }
    }
}

/// `s` without leading SP / HTAB.
fn skip_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ows(b)).unwrap_or(s.len());
    s.get(start..).unwrap_or_default()
}

/// Length of the quoted-string at the start of `s` (which starts with `"`),
/// or `None` if it is malformed or unterminated (RFC 9110 section 5.6.4).
fn quoted_string_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    loop {
        match *s.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => {
                // quoted-pair: HTAB, SP, VCHAR or obs-text may be escaped.
                let escaped = *s.get(i + 1)?;
                if (escaped < 0x20 && escaped != b'\t') || escaped == 0x7f {
                    return None;
                }
                i += 2;
            }
            b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => i += 1,
            _ => return None,
        }
    }
}

/// Validates a request line (without CRLF): `method SP target SP version`
/// with exactly one space between the parts (RFC 9112 section 3).
fn parse_request_line(line: &[u8]) -> Result<RequestLine, Reject> {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("malformed request line"));
    };
    check_method(method)?;
    let http11 = parse_version(version)?;
    check_target(method, target).map_err(bad)?;
    Ok(RequestLine { http11 })
}

/// Methods are tokens; like Gunicorn by default, also 3 to 20 bytes without
/// lowercase letters or `#`.
fn check_method(method: &[u8]) -> Result<(), Reject> {
    if !is_token(method) {
        return Err(bad("invalid method"));
    }
    if method.iter().any(|&b| b.is_ascii_lowercase() || b == b'#') {
        return Err(bad("method with lowercase letters or '#'"));
    }
    if method.len() < 3 {
        return Err(bad("method shorter than 3 bytes"));
    }
    if method.len() > 20 {
        return Err(Reject::head(501, "method longer than 20 bytes"));
    }
    Ok(())
}

/// Accepts `HTTP/1.0` and `HTTP/1.1` (true for 1.1); another well-formed
/// version is 505, anything else 400.
fn parse_version(version: &[u8]) -> Result<bool, Reject> {
    match version {
        b"HTTP/1.1" => Ok(true),
        b"HTTP/1.0" => Ok(false),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit() => {
            Err(Reject::head(505, "HTTP version not supported"))
        }
        _ => Err(bad("malformed HTTP version")),
    }
}

/// Bytes hyper's URI parser (the `http` crate) takes unescaped in a path.
fn is_path_byte(b: u8) -> bool {
    matches!(b, 0x21 | b'"' | 0x24..=0x3b | b'=' | 0x40..=0x5f | 0x61..=0x7a | b'{' | b'|' | b'}' | b'~')
}

/// Bytes hyper's URI parser takes unescaped in a query (also used for fragments).
fn is_query_byte(b: u8) -> bool {
    matches!(b, 0x21 | 0x24..=0x3b | b'=' | 0x3f..=0x7e)
}

/// Checks the request-target form against the method (RFC 9112 section 3.2).
fn check_target(method: &[u8], target: &[u8]) -> Result<(), &'static str> {
    if method == b"CONNECT" {
        return if valid_authority(target, AuthorityUse::Connect) {
            Ok(())
        } else {
            Err("CONNECT needs an authority-form target")
        };
    }
    match target {
        [] => Err("empty request-target"),
        [b'/', ..] => check_path_query(target),
        b"*" if method == b"OPTIONS" => Ok(()),
        b"*" => Err("asterisk-form target without OPTIONS"),
        _ => check_absolute(target),
    }
}

/// Checks `path [ "?" query ] [ "#" fragment ]` byte by byte.
fn check_path_query(s: &[u8]) -> Result<(), &'static str> {
    let path_end = s.iter().position(|&b| b == b'?' || b == b'#').unwrap_or(s.len());
    let (path, mut rest) = s.split_at(path_end);
    if !path.iter().all(|&b| is_path_byte(b)) {
        return Err("invalid byte in request-target path");
    }
    if let Some((&b'?', query)) = rest.split_first() {
        let query_end = query.iter().position(|&b| b == b'#').unwrap_or(query.len());
        let (query, after) = query.split_at(query_end);
        if !query.iter().all(|&b| is_query_byte(b)) {
            return Err("invalid byte in request-target query");
        }
        rest = after;
    }
    if let Some((&b'#', fragment)) = rest.split_first() {
        if !fragment.iter().all(|&b| is_query_byte(b)) {
            return Err("invalid byte in request-target fragment");
        }
    }
    Ok(())
}

/// Checks an absolute-form target: `http` or `https`, an authority without
/// userinfo, then an optional path, query and fragment.
fn check_absolute(target: &[u8]) -> Result<(), &'static str> {
    let scheme_end = target
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
        .unwrap_or(target.len());
    let (scheme, rest) = target.split_at(scheme_end);
    let Some(rest) = rest.strip_prefix(b"://") else {
        return Err("request-target is not origin-form or absolute-form");
    };
    if !(scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https")) {
        return Err("absolute-form target with a scheme other than http(s)");
    }
    let authority_end = rest.iter().position(|&b| matches!(b, b'/' | b'?' | b'#')).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if authority.contains(&b'@') {
        return Err("userinfo in request-target");
    }
    if !valid_authority(authority, AuthorityUse::Absolute) {
        return Err("invalid authority in request-target");
    }
    check_path_query(path)
}

/// Where an authority (`host [ ":" port ]`) appears, which decides what may be empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthorityUse {
    /// The value of a `Host` field: may be empty altogether.
    HostField,
    /// An absolute-form target: the host must not be empty.
    Absolute,
    /// A CONNECT target: host and port are both required.
    Connect,
}

/// RFC 3986 unreserved and sub-delims bytes plus `%` (pct-encoding), the
/// bytes of a reg-name or IPv4 address.
fn is_reg_name_byte(b: u8) -> bool {
    REG_NAME[usize::from(b)]
}

/// Validates `host [ ":" port ]` without userinfo (RFC 3986 section 3.2).
fn valid_authority(s: &[u8], usage: AuthorityUse) -> bool {
    if s.is_empty() {
        return usage == AuthorityUse::HostField;
    }
    let (host_ok, rest) = if let Some(inner) = s.strip_prefix(b"[") {
        // IP-literal: IPv6 address or IPvFuture, checked loosely by bytes.
        let Some(close) = inner.iter().position(|&b| b == b']') else {
            return false;
        };
        let (literal, rest) = inner.split_at(close);
        let ok = !literal.is_empty() && literal.iter().all(|&b| is_reg_name_byte(b) || b == b':');
        (ok, rest.get(1..).unwrap_or_default())
    } else {
        let host_end = s.iter().position(|&b| b == b':').unwrap_or(s.len());
        let (host, rest) = s.split_at(host_end);
        // hyper's URI parser refuses pct-encoding in a target's host; a Host
        // field value is not parsed by hyper and may use it (RFC 3986).
        let pct_ok = usage == AuthorityUse::HostField;
        let ok = host.iter().all(|&b| is_reg_name_byte(b) && (b != b'%' || pct_ok))
            && (usage == AuthorityUse::HostField || !host.is_empty());
        (ok, rest)
    };
    if !host_ok {
        return false;
    }
    match rest.split_first() {
        None => usage != AuthorityUse::Connect,
        Some((&b':', port)) => {
            if port.is_empty() {
                return usage != AuthorityUse::Connect;
            }
            port.len() <= 5
                && port.iter().all(u8::is_ascii_digit)
                && port.iter().fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0')) <= 65_535
        }
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    //! Unit tests for each rule, plus the gunicorn request corpus
    //! (`wsgi-conformance/fixtures/gunicorn-corpus.txt`, generated by
    //! `tools/corpus_to_data.py`) replayed through the guard.

    use super::*;

    #[test]
    fn line_ends_are_found_like_a_byte_scan() {
        // Every length up to 40, every position of a CR or LF in it, over
        // filler bytes next to both (0x0c, 0x0e, 0x8d, 0x8a, 0xff) and with a
        // second line end after the first.
        for filler in [b'a', 0x0c, 0x0e, 0x8d, 0x8a, 0xff, 0x00] {
            for len in 0..40 {
                let mut line = vec![filler; len];
                assert_eq!(find_cr_or_lf(&line), None, "filler {filler:#x}, len {len}");
                for at in 0..len {
                    for end in [b'\r', b'\n'] {
                        line[at] = end;
                        if at + 3 < len {
                            line[at + 3] = b'\n';
                        }
                        let naive = line.iter().position(|&b| b == b'\r' || b == b'\n');
                        assert_eq!(find_cr_or_lf(&line), naive, "filler {filler:#x}, len {len}, at {at}");
                        line.fill(filler);
                    }
                }
            }
        }
    }

    /// What feeding a whole byte stream through a guard led to.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Outcome {
        /// No rejection; `released` bytes passed on, `held` bytes still held
        /// at the end, and whether the guard ended idle.
        Passed { released: usize, held: usize, idle: bool },
        /// Rejected after `released` bytes had been passed on.
        Rejected { reject: Reject, released: usize },
    }

    /// Feeds `data` to a fresh guard in pieces of the given sizes (the last
    /// piece takes whatever is left), calling `advance` after each arrival
    /// until it makes no more progress, like a server's read loop.
    fn feed_pieces(limits: Limits, data: &[u8], sizes: &mut dyn Iterator<Item = usize>) -> Outcome {
        let mut guard = Guard::new(limits);
        let mut pending: Vec<u8> = Vec::new();
        let mut released = 0;
        let mut arrived = 0;
        while arrived < data.len() {
            let size = sizes.next().unwrap_or(data.len()).max(1);
            let end = (arrived + size).min(data.len());
            pending.extend_from_slice(&data[arrived..end]);
            arrived = end;
            loop {
                match guard.advance(&pending) {
                    Ok(0) => break,
                    Ok(n) => {
                        assert!(n <= pending.len(), "released more than given");
                        pending.drain(..n);
                        released += n;
                    }
                    Err(reject) => {
                        // The guard stays failed.
                        assert_eq!(guard.advance(&pending), Err(reject));
                        assert_eq!(guard.advance(b""), Err(reject));
                        assert!(!guard.is_idle());
                        return Outcome::Rejected { reject, released };
                    }
                }
            }
            // No progress without new bytes.
            assert_eq!(guard.advance(&pending), Ok(0));
        }
        Outcome::Passed { released, held: pending.len(), idle: guard.is_idle() }
    }

    /// Feeds `data` in one piece.
    fn feed(limits: Limits, data: &[u8]) -> Outcome {
        feed_pieces(limits, data, &mut std::iter::once(data.len()))
    }

    /// Feeds `data` one byte at a time.
    fn feed_bytewise(limits: Limits, data: &[u8]) -> Outcome {
        feed_pieces(limits, data, &mut std::iter::repeat(1))
    }

    /// Deterministic pseudo-random piece sizes in `1..=max` (xorshift64).
    fn random_sizes(seed: u64, max: usize) -> impl Iterator<Item = usize> {
        let mut x = seed | 1;
        std::iter::from_fn(move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Some(1 + (x % max.max(1) as u64) as usize)
        })
    }

    /// Feeds `data` whole, byte by byte and in several random splits, checks
    /// that all of them agree, and returns the common outcome.
    fn feed_all_ways(limits: Limits, data: &[u8]) -> Outcome {
        let whole = feed(limits, data);
        let mut others = vec![("bytewise".to_string(), feed_bytewise(limits, data))];
        for seed in 1..=6u64 {
            let max = if seed % 2 == 0 { 7 } else { data.len() / 3 + 1 };
            let outcome = feed_pieces(limits, data, &mut random_sizes(seed * 0x9e37_79b9, max));
            others.push((format!("random split seed {seed}"), outcome));
        }
        for (how, outcome) in others {
            match (&whole, &outcome) {
                (Outcome::Rejected { reject: a, .. }, Outcome::Rejected { reject: b, .. }) => {
                    assert_eq!(a, b, "{how} rejected differently")
                }
                _ => assert_eq!(whole, outcome, "{how} differs from feeding whole"),
            }
        }
        whole
    }

    /// The outcome of a request that passes completely and ends idle.
    fn passed(data: &[u8]) -> Outcome {
        Outcome::Passed { released: data.len(), held: 0, idle: true }
    }

    /// Asserts that `data` passes completely, fed in every way.
    fn assert_accepts(data: &[u8]) {
        assert_eq!(feed_all_ways(Limits::default(), data), passed(data), "{}", show(data));
    }

    /// Asserts that `data` is rejected with `status`, fed in every way, and
    /// returns the rejection.
    fn assert_rejects(data: &[u8], status: u16) -> Reject {
        assert_rejects_with(Limits::default(), data, status)
    }

    /// Like `assert_rejects` with explicit limits.
    fn assert_rejects_with(limits: Limits, data: &[u8], status: u16) -> Reject {
        match feed_all_ways(limits, data) {
            Outcome::Rejected { reject, .. } => {
                assert_eq!(reject.status, status, "{reject} for {}", show(data));
                reject
            }
            other => panic!("expected {status}, got {other:?} for {}", show(data)),
        }
    }

    /// Printable form of request bytes for assertion messages.
    fn show(data: &[u8]) -> String {
        data.escape_ascii().to_string()
    }

    /// A GET request with the given extra header lines (each ending in CRLF).
    fn get_with(headers: &str) -> Vec<u8> {
        format!("GET / HTTP/1.1\r\nHost: example.com\r\n{headers}\r\n").into_bytes()
    }

    /// A chunked POST head followed by `body`.
    fn chunked(body: &str) -> Vec<u8> {
        format!("POST /up HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n{body}").into_bytes()
    }

    // ------------------------------------------------------------ head basics

    #[test]
    fn accepts_simple_get() {
        assert_accepts(b"GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
        assert_accepts(b"GET / HTTP/1.0\r\n\r\n");
    }

    #[test]
    fn holds_head_until_complete_then_releases_it_at_once() {
        let mut guard = Guard::new(Limits::default());
        let head = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
        for end in 0..head.len() {
            assert_eq!(guard.advance(&head[..end]), Ok(0), "released early at {end}");
        }
        assert_eq!(guard.advance(head), Ok(head.len()));
        assert!(guard.is_idle());
    }

    #[test]
    fn is_idle_only_between_messages() {
        let mut guard = Guard::new(Limits::default());
        assert!(guard.is_idle());
        assert_eq!(guard.advance(b"G"), Ok(0));
        assert!(!guard.is_idle());
        let head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nab";
        assert_eq!(guard.advance(head), Ok(head.len()));
        assert!(!guard.is_idle(), "one body byte still to come");
        assert_eq!(guard.advance(b"c"), Ok(1));
        assert!(guard.is_idle());
    }

    #[test]
    fn skips_leading_empty_lines_and_releases_them_with_the_head() {
        let data = b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_accepts(data);
        let mut guard = Guard::new(Limits::default());
        assert_eq!(guard.advance(b"\r\n\r\n"), Ok(0));
        assert!(guard.is_idle(), "empty lines alone are not a request");
        assert_eq!(guard.advance(data), Ok(data.len()));
    }

    #[test]
    fn rejects_too_many_leading_empty_lines() {
        let mut data = b"\r\n".repeat(LEADING_EMPTY_LINES_MAX + 1);
        data.extend_from_slice(b"GET / HTTP/1.0\r\n\r\n");
        assert_rejects(&data, 400);
    }

    #[test]
    fn rejects_bare_lf_in_request_line() {
        assert_rejects(b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400);
        assert_rejects(b"GET\n/\nHTTP/1.1\r\n\r\n", 400);
    }

    #[test]
    fn rejects_bare_lf_in_header() {
        assert_rejects(&get_with("X: a\nY: b\r\n"), 400);
        assert_rejects(b"GET / HTTP/1.1\r\nHost: a\n\r\n", 400);
        assert_rejects(b"GET / HTTP/1.1\r\nHost: a\r\n\n", 400);
    }

    #[test]
    fn rejects_stray_cr() {
        assert_rejects(b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400);
        assert_rejects(&get_with("X: a\rb\r\n"), 400);
        assert_rejects(b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400);
    }

    #[test]
    fn rejects_obs_fold() {
        assert_rejects(&get_with("Long: one\r\n two\r\n"), 400);
        assert_rejects(&get_with("Long: one\r\n\ttwo\r\n"), 400);
        assert_rejects(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400);
    }

    #[test]
    fn rejects_whitespace_between_field_name_and_colon() {
        assert_rejects(&get_with("Content-Length : 0\r\n"), 400);
        assert_rejects(&get_with("X-A\t: b\r\n"), 400);
    }

    #[test]
    fn rejects_empty_field_name() {
        assert_rejects(&get_with(": value\r\n"), 400);
    }

    #[test]
    fn rejects_field_line_without_colon() {
        assert_rejects(&get_with("NoColonHere\r\n"), 400);
    }

    #[test]
    fn rejects_field_names_that_are_not_tokens() {
        for name in ["X(a)", "X/a", "X\u{7f}", "Content-Length\u{df}", "a\"b", "{x}"] {
            assert_rejects(&get_with(&format!("{name}: v\r\n")), 400);
        }
        assert_rejects(b"GET / HTTP/1.1\r\nHost: a\r\nba\x00z: bar\r\n\r\n", 400);
    }

    #[test]
    fn accepts_unusual_token_field_names() {
        assert_accepts(&get_with("X.Custom|Pipe: ok\r\nX_Under~score!#$%&'*+^`: ok\r\n"));
    }

    #[test]
    fn rejects_nul_in_field_value() {
        assert_rejects(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400);
    }

    #[test]
    fn rejects_control_bytes_in_field_value() {
        for ctl in (0x01u8..0x20).filter(|&b| b != b'\t' && b != b'\r' && b != b'\n') {
            let mut data = b"GET / HTTP/1.1\r\nHost: a\r\nX: a".to_vec();
            data.push(ctl);
            data.extend_from_slice(b"b\r\n\r\n");
            assert_rejects(&data, 400);
        }
    }

    #[test]
    fn rejects_del_in_field_value() {
        assert_rejects(b"GET / HTTP/1.1\r\nHost: a\r\nX: plain\x7finjected\r\n\r\n", 400);
    }

    #[test]
    fn accepts_htab_obs_text_and_padding_in_field_values() {
        assert_accepts(b"GET / HTTP/1.1\r\nHost: a\r\nX: \t caf\xc3\xa9 \tb \t \r\nY:\r\n\r\n");
    }

    // ---------------------------------------------------------------- limits

    /// A request line of exactly `len` bytes (CRLF not counted).
    fn request_line_of(len: usize) -> Vec<u8> {
        let fixed = "GET / HTTP/1.1".len();
        let line = format!("GET /{} HTTP/1.1", "a".repeat(len - fixed));
        assert_eq!(line.len(), len);
        format!("{line}\r\nHost: a\r\n\r\n").into_bytes()
    }

    #[test]
    fn accepts_request_line_of_exactly_4094_bytes() {
        assert_accepts(&request_line_of(4094));
    }

    #[test]
    fn rejects_request_line_of_4095_bytes_with_414() {
        assert_rejects(&request_line_of(4095), 414);
    }

    #[test]
    fn rejects_long_request_line_before_its_crlf_arrives() {
        let mut guard = Guard::new(Limits::default());
        let mut line = b"GET /".to_vec();
        line.resize(4094, b'a');
        assert_eq!(guard.advance(&line), Ok(0));
        line.push(b'\r');
        assert_eq!(guard.advance(&line), Ok(0), "a trailing CR may still end the line");
        line.pop();
        line.push(b'a');
        let reject = guard.advance(&line).err();
        assert_eq!(reject.map(|r| r.status), Some(414));
    }

    #[test]
    fn request_line_limit_zero_is_unlimited() {
        let limits = Limits { request_line: 0, ..Limits::default() };
        let data = request_line_of(20_000);
        assert_eq!(feed(limits, &data), passed(&data));
    }

    /// A GET head with `n` header fields (Host included).
    fn with_fields(n: usize) -> Vec<u8> {
        let mut head = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 1..n {
            head.push_str(&format!("X-{i}: {i}\r\n"));
        }
        head.push_str("\r\n");
        head.into_bytes()
    }

    #[test]
    fn accepts_100_header_fields() {
        assert_accepts(&with_fields(100));
    }

    #[test]
    fn rejects_101_header_fields_with_431() {
        assert_rejects(&with_fields(101), 431);
    }

    /// A GET head with one extra field line of exactly `len` bytes, CRLF counted.
    fn with_field_line_of(len: usize) -> Vec<u8> {
        let value = "v".repeat(len - "X: ".len() - 2);
        get_with(&format!("X: {value}\r\n"))
    }

    #[test]
    fn accepts_field_line_of_field_size_bytes() {
        assert_accepts(&with_field_line_of(8190));
    }

    #[test]
    fn rejects_field_line_over_field_size_with_431() {
        assert_rejects(&with_field_line_of(8191), 431);
    }

    #[test]
    fn rejects_long_field_line_before_its_crlf_arrives() {
        let mut guard = Guard::new(Limits::default());
        let mut data = b"GET / HTTP/1.1\r\nX: ".to_vec();
        data.resize(16 + 8188, b'v');
        assert_eq!(guard.advance(&data), Ok(0));
        data.push(b'v');
        assert_eq!(guard.advance(&data).map_err(|r| r.status), Err(431));
    }

    #[test]
    fn custom_limits_apply() {
        let limits = Limits { request_line: 20, fields: 2, field_size: 20, max_body: Some(4), require_host: false };
        let ok = b"GET /x HTTP/1.1\r\nA: 1\r\nB: 1234567\r\n\r\n";
        assert_eq!(feed(limits, ok), passed(ok));
        assert_rejects_with(limits, b"GET /xxxxxxx HTTP/1.1\r\n\r\n", 414);
        assert_rejects_with(limits, b"GET /x HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\n\r\n", 431);
        assert_rejects_with(limits, b"GET /x HTTP/1.1\r\nB: 12345678901234567\r\n\r\n", 431);
        assert_rejects_with(limits, b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\n12345", 413);
    }

    #[test]
    fn max_head_len_covers_the_largest_head() {
        let limits = Limits::default();
        let max = limits.max_head_len().unwrap_or(0);
        assert!(max >= 4094 + 2 + 100 * 8190 + 2);
        let unlimited = Limits { field_size: 0, ..limits };
        assert_eq!(unlimited.max_head_len(), None);
    }

    // ---------------------------------------------------------------- method

    #[test]
    fn rejects_lowercase_method() {
        assert_rejects(b"get / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
        assert_rejects(b"-bl /foo HTTP/1.1\r\nHost: a\r\n\r\n", 400);
        assert_rejects(b"bla:rgh /foo HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    }

    #[test]
    fn rejects_method_with_hash() {
        assert_rejects(b"GE#T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    }

    #[test]
    fn rejects_method_shorter_than_3_bytes() {
        assert_rejects(b"GE / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    }

    #[test]
    fn rejects_method_longer_than_20_bytes_with_501() {
        assert_rejects(b"ABCDEFGHIJKLMNOPQRSTU / HTTP/1.1\r\nHost: a\r\n\r\n", 501);
        assert_accepts(b"ABCDEFGHIJKLMNOPQRST / HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    #[test]
    fn rejects_method_that_is_not_a_token() {
        assert_rejects(b"GET: / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
        assert_rejects(b"GET\x00PROXY /foo HTTP/1.1\r\nHost: a\r\n\r\n", 400);
        assert_rejects(b"GET\xc3\x9f / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
        assert_rejects(b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    }

    #[test]
    fn accepts_unconventional_uppercase_methods() {
        assert_accepts(b"-BLARGH /foo HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_accepts(b"M-SEARCH / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_accepts(b"PROPPATCH /x HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    // ----------------------------------------------------------- request line

    #[test]
    fn rejects_more_than_one_space_between_parts() {
        assert_rejects(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
        assert_rejects(b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400);
        assert_rejects(b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400);
        assert_rejects(b" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    }

    #[test]
    fn rejects_request_line_with_missing_parts() {
        assert_rejects(b"GET HTTP/1.1\r\nHost: a\r\n\r\n", 400);
        assert_rejects(b"GET /\r\n\r\n", 400);
        assert_rejects(b"GET\r\n\r\n", 400);
    }

    #[test]
    fn rejects_unsupported_versions_with_505() {
        assert_rejects(b"GET /foo HTTP/2.0\r\nHost: a\r\n\r\n", 505);
        assert_rejects(b"GET /foo HTTP/1.2\r\nHost: a\r\n\r\n", 505);
        assert_rejects(b"GET /foo HTTP/0.9\r\n\r\n", 505);
        assert_rejects(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505);
    }

    #[test]
    fn rejects_malformed_versions_with_400() {
        for version in ["HTTP/111", "HTTP/0.99", "http/1.1", "FTP/1.1", "HTTP/1.1.1", "HTTP/1", "HTTP/1.x"] {
            assert_rejects(format!("GET /foo {version}\r\nHost: a\r\n\r\n").as_bytes(), 400);
        }
    }

    // ---------------------------------------------------------------- target

    #[test]
    fn accepts_origin_form_targets() {
        for target in [
            "/",
            "///keeping_slashes",
            "/a/b?c=d&e=%20f",
            "/p?q=a/b?c",
            "/x?f[a]=1|2^{}`~",
            "/forums/1?page=1#posts-17408",
            "/with_\"quotes\"",
            "/{}|\\^[]",
        ] {
            assert_accepts(format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        }
    }

    #[test]
    fn rejects_invalid_bytes_in_origin_form_target() {
        for target in [
            &b"/a b"[..],
            b"/a\tb",
            b"/a\x00",
            b"/a\x7f",
            b"/a<b",
            b"/a>b",
            b"/a`b",
            b"/?q=\"x\"",
            b"/?a<b",
            b"/#a#b",
            b"/\xc3\xa0",
        ] {
            let mut data = b"GET ".to_vec();
            data.extend_from_slice(target);
            data.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_rejects(&data, 400);
        }
    }

    #[test]
    fn rejects_relative_target() {
        assert_rejects(b"GET foo/bar HTTP/1.1\r\nHost: a\r\n\r\n", 400);
        assert_rejects(b"GET ?x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    }

    #[test]
    fn accepts_asterisk_form_with_options() {
        assert_accepts(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    #[test]
    fn rejects_asterisk_form_without_options() {
        assert_rejects(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400);
        assert_rejects(b"OPTIONS ** HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    }

    #[test]
    fn accepts_absolute_form_targets() {
        for target in [
            "http://example.com/foo?q=1",
            "https://example.com",
            "HTTP://example.com:8080?x",
            "http://[::1]:8080/foo",
            "http://127.0.0.1/#frag",
        ] {
            assert_accepts(format!("GET {target} HTTP/1.1\r\nHost: example.com\r\n\r\n").as_bytes());
        }
    }

    #[test]
    fn rejects_invalid_absolute_form_targets() {
        for target in [
            "ftp://example.com/",
            "http:///foo",
            "http://user:pass@example.com/",
            "s://]ufd/:",
            "http://exa mple.com/",
            "http://[::1/",
            "http://a:99999/",
            "http://a:8x/",
            "http://a/b c",
            "h@p://a/",
            "http://ex%41mple.com/",
        ] {
            assert_rejects(format!("GET {target} HTTP/1.1\r\nHost: example.com\r\n\r\n").as_bytes(), 400);
        }
    }

    #[test]
    fn accepts_authority_form_with_connect() {
        assert_accepts(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
        assert_accepts(b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n");
    }

    #[test]
    fn rejects_authority_form_without_connect() {
        assert_rejects(b"GET example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 400);
    }

    #[test]
    fn rejects_connect_without_authority_form() {
        assert_rejects(b"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
        assert_rejects(b"CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n", 400);
        assert_rejects(b"CONNECT example.com: HTTP/1.1\r\nHost: a\r\n\r\n", 400);
        assert_rejects(b"CONNECT u@example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    }

    // ------------------------------------------------------------------ Host

    #[test]
    fn rejects_http11_request_without_host() {
        assert_rejects(b"GET / HTTP/1.1\r\n\r\n", 400);
    }

    #[test]
    fn accepts_http10_request_without_host() {
        assert_accepts(b"GET / HTTP/1.0\r\n\r\n");
    }

    #[test]
    fn accepts_missing_host_when_not_required() {
        let limits = Limits { require_host: false, ..Limits::default() };
        let data = b"GET / HTTP/1.1\r\n\r\n";
        assert_eq!(feed(limits, data), passed(data));
    }

    #[test]
    fn rejects_more_than_one_host() {
        assert_rejects(b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400);
        assert_rejects(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    }

    #[test]
    fn rejects_invalid_host_values() {
        for host in ["a b", "a/b", "a@b", "[::1", "a:b", "a:123456", "a\"b"] {
            assert_rejects(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes(), 400);
        }
    }

    #[test]
    fn accepts_valid_host_values() {
        for host in ["", "example.com", "0.0.0.0=5000", "[::1]:8080", "a:", "xn--bcher-kva.example:80"] {
            assert_accepts(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes());
        }
    }

    #[test]
    fn rejects_repeated_content_type() {
        assert_rejects(&get_with("Content-Type: a/b\r\nContent-Type: a/b\r\n"), 400);
    }

    // ------------------------------------------------------- Content-Length

    #[test]
    fn releases_content_length_body_as_it_arrives() {
        let mut guard = Guard::new(Limits::default());
        let head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(guard.advance(head), Ok(head.len()));
        assert_eq!(guard.advance(b"0123"), Ok(4));
        assert_eq!(guard.advance(b"456"), Ok(3));
        assert!(!guard.is_idle());
        assert_eq!(guard.advance(b"789"), Ok(3));
        assert!(guard.is_idle());
        assert_eq!(guard.advance(b"GET"), Ok(0), "the next head");
        assert!(!guard.is_idle());
    }

    #[test]
    fn accepts_leading_zeros_in_content_length() {
        assert_accepts(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 005\r\n\r\nhello");
    }

    #[test]
    fn accepts_zero_content_length() {
        assert_accepts(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    fn rejects_repeated_content_length_even_with_equal_values() {
        assert_rejects(&get_with("Content-Length: 3\r\nContent-Length: 3\r\n"), 400);
        assert_rejects(&get_with("Content-Length: 3\r\nContent-Length: 2\r\n"), 400);
    }

    #[test]
    fn rejects_content_length_list() {
        assert_rejects(&get_with("Content-Length: 5, 5\r\n"), 400);
        assert_rejects(&get_with("Content-Length: 5,5\r\n"), 400);
    }

    #[test]
    fn rejects_invalid_content_length_values() {
        for value in ["-1", "+1", "-0", "", "0x10", "1.0", "0_1", "0 1", "bla", "1e3", "\u{661}"] {
            assert_rejects(&get_with(&format!("Content-Length: {value}\r\n")), 400);
        }
    }

    #[test]
    fn rejects_overflowing_content_length() {
        assert_rejects(&get_with("Content-Length: 18446744073709551616\r\n"), 400);
        assert_rejects(&get_with("Content-Length: 18446744073709551615\r\n"), 400);
        assert_rejects(&get_with("Content-Length: 99999999999999999999999999\r\n"), 400);
    }

    #[test]
    fn rejects_content_length_over_max_body_with_413() {
        let limits = Limits { max_body: Some(10), ..Limits::default() };
        let ok = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789";
        assert_eq!(feed(limits, ok), passed(ok));
        let reject = assert_rejects_with(limits, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", 413);
        assert!(!reject.in_body);
    }

    // ---------------------------------------------------- Transfer-Encoding

    #[test]
    fn rejects_content_length_with_transfer_encoding() {
        assert_rejects(&get_with("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"), 400);
        assert_rejects(&get_with("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"), 400);
    }

    #[test]
    fn rejects_transfer_encoding_in_http10() {
        assert_rejects(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
    }

    #[test]
    fn rejects_transfer_encoding_whose_final_coding_is_not_chunked() {
        assert_rejects(&get_with("Transfer-Encoding: chunked, gzip\r\n"), 400);
        assert_rejects(&get_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n"), 400);
        assert_rejects(&get_with("Transfer-Encoding: gzip\r\n"), 400);
        assert_rejects(&get_with("Transfer-Encoding: identity\r\n"), 400);
    }

    #[test]
    fn rejects_chunked_more_than_once() {
        assert_rejects(&get_with("Transfer-Encoding: chunked, chunked\r\n"), 400);
        assert_rejects(&get_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), 400);
        assert_rejects(&get_with("Transfer-Encoding: identity, chunked, identity, chunked\r\n"), 400);
    }

    #[test]
    fn rejects_unsupported_transfer_coding_with_501() {
        assert_rejects(&chunked_with_te("gzip, chunked"), 501);
        assert_rejects(&chunked_with_te("gzip,chunked"), 501);
        assert_rejects(&chunked_with_te("identity, chunked"), 501);
        assert_rejects(&chunked_with_te("x-unknown;q=1, chunked"), 501);
    }

    /// A POST with the given Transfer-Encoding value and a valid chunked body.
    fn chunked_with_te(te: &str) -> Vec<u8> {
        format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n").into_bytes()
    }

    #[test]
    fn rejects_malformed_transfer_encoding_with_400() {
        for te in ["", ",chunked", "chunked,", "chunked;x=1", "gz ip, chunked", "\"chunked\""] {
            assert_rejects(&chunked_with_te(te), 400);
        }
    }

    #[test]
    fn accepts_chunked_in_any_case_with_padding() {
        assert_accepts(&chunked_with_te("Chunked"));
        assert_accepts(&chunked_with_te(" \tCHUNKED\t "));
    }

    #[test]
    fn requests_without_framing_have_no_body() {
        // The bytes after the head are the next request, not a body.
        let data = b"POST /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_accepts(data);
        assert_rejects(b"POST /a HTTP/1.1\r\nHost: a\r\n\r\nhello\r\n", 400);
    }

    // --------------------------------------------------------------- chunked

    #[test]
    fn accepts_chunked_body() {
        assert_accepts(&chunked("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
        assert_accepts(&chunked("0005\r\nhello\r\nA\r\n0123456789\r\n000\r\n\r\n"));
        assert_accepts(&chunked("0\r\n\r\n"));
    }

    #[test]
    fn releases_chunk_size_lines_only_when_complete_and_data_as_it_arrives() {
        let mut guard = Guard::new(Limits::default());
        let head = chunked("");
        assert_eq!(guard.advance(&head), Ok(head.len()));
        assert_eq!(guard.advance(b"1"), Ok(0));
        assert_eq!(guard.advance(b"1a"), Ok(0));
        assert_eq!(guard.advance(b"1a\r"), Ok(0));
        assert_eq!(guard.advance(b"1a\r\n"), Ok(4));
        assert_eq!(guard.advance(b"abc"), Ok(3));
        assert_eq!(guard.advance(&[b'x'; 23]), Ok(23));
        assert_eq!(guard.advance(b"\r"), Ok(0));
        assert_eq!(guard.advance(b"\r\n0;a=b\r"), Ok(2));
        assert_eq!(guard.advance(b"0;a=b\r"), Ok(0));
        assert_eq!(guard.advance(b"0;a=b\r\n"), Ok(7));
        assert!(!guard.is_idle());
        assert_eq!(guard.advance(b"\r"), Ok(0));
        assert_eq!(guard.advance(b"\r\n"), Ok(2));
        assert!(guard.is_idle());
    }

    #[test]
    fn accepts_chunk_extensions() {
        for ext in [
            "; some; parameters=stuff",
            ";foo=\"bar baz\"",
            ";a=\"q\\\"x\\\\\"",
            " ;a",
            "\t; a = b ;c",
            ";a=\"caf\u{e9}\"",
        ] {
            assert_accepts(&chunked(&format!("5{ext}\r\nhello\r\n0{ext}\r\n\r\n")));
        }
    }

    #[test]
    fn rejects_invalid_chunk_extensions() {
        for ext in [
            ";",
            "; ",
            ";=b",
            ";a=",
            ";a=\"unterminated",
            ";a=b c",
            ";a b",
            ";a=\"x\"y",
            ";a;",
            ";a ",
            ";(a)",
            ";a=\"\x01\"",
        ] {
            let reject = assert_rejects(&chunked(&format!("5{ext}\r\nhello\r\n0\r\n\r\n")), 400);
            assert!(reject.in_body);
        }
        assert_rejects(&chunked("5;ext=val\rue\r\nhello\r\n0\r\n\r\n"), 400);
        assert_rejects(&chunked("5\n;\r\nhello\r\n0\r\n\r\n"), 400);
        assert_rejects(&chunked("5;a\nb\r\nhello\r\n0\r\n\r\n"), 400);
    }

    #[test]
    fn rejects_invalid_chunk_sizes() {
        for line in ["", " 0", "0 ", "-5", "+5", "0x5", "6_0", "g", "5 5", " ;foo=bar", "5\t"] {
            let reject = assert_rejects(&chunked(&format!("{line}\r\nhello\r\n0\r\n\r\n")), 400);
            assert!(reject.in_body, "{line:?}");
        }
    }

    #[test]
    fn caps_chunk_size_at_16_hex_digits() {
        // 16 digits are fine (the data then simply has not arrived yet).
        let data = chunked("0000000000000005\r\nhello\r\n0\r\n\r\n");
        assert_accepts(&data);
        let big = chunked("ffffffffffffffff\r\nhello");
        assert_eq!(feed(Limits::default(), &big), Outcome::Passed { released: big.len(), held: 0, idle: false });
        assert_rejects(&chunked("00000000000000005\r\nhello\r\n0\r\n\r\n"), 400);
        assert_rejects(&chunked("10000000000000000\r\n"), 400);
    }

    #[test]
    fn rejects_missing_crlf_after_chunk_data() {
        assert_rejects(&chunked("5\r\nhelloX\r\n0\r\n\r\n"), 400);
        assert_rejects(&chunked("5\r\nhello\rX0\r\n\r\n"), 400);
        assert_rejects(&chunked("5\r\nhello\n0\r\n\r\n"), 400);
        assert_rejects(&chunked("5\r\nhello world\r\n0\r\n\r\n"), 400);
    }

    #[test]
    fn rejects_long_chunk_size_line() {
        let ext = format!(";a={}", "b".repeat(9000));
        assert_rejects(&chunked(&format!("5{ext}\r\nhello\r\n0\r\n\r\n")), 400);
    }

    #[test]
    fn rejects_chunk_extensions_over_hypers_limit() {
        let ext = format!(";a={}", "b".repeat(4000));
        let mut body = String::new();
        for _ in 0..5 {
            body.push_str(&format!("1{ext}\r\nx\r\n"));
        }
        body.push_str("0\r\n\r\n");
        assert_rejects(&chunked(&body), 400);
        let ok = format!("1{ext}\r\nx\r\n0\r\n\r\n");
        assert_accepts(&chunked(&ok));
    }

    #[test]
    fn rejects_chunked_body_over_max_body_mid_body() {
        let limits = Limits { max_body: Some(10), ..Limits::default() };
        let ok = chunked("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n");
        assert_eq!(feed(limits, &ok), passed(&ok));
        let data = chunked("5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n");
        let reject = assert_rejects_with(limits, &data, 413);
        assert!(reject.in_body);
        match feed(limits, &data) {
            Outcome::Rejected { released, .. } => assert!(released > chunked("").len()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn accepts_trailer_section_and_releases_it_ending_with_crlf() {
        let data = chunked("5\r\nhello\r\n0\r\nVary: *\r\nContent-Type: text/plain\r\n\r\n");
        assert_accepts(&data);
        let mut guard = Guard::new(Limits::default());
        let head_and_chunks = chunked("5\r\nhello\r\n0\r\n");
        assert_eq!(guard.advance(&head_and_chunks), Ok(head_and_chunks.len()));
        assert_eq!(guard.advance(b"Vary: *\r"), Ok(0));
        assert_eq!(guard.advance(b"Vary: *\r\n\r"), Ok(9));
        assert!(!guard.is_idle());
        assert_eq!(guard.advance(b"\r\n"), Ok(2));
        assert!(guard.is_idle());
    }

    #[test]
    fn rejects_forbidden_trailer_fields() {
        for name in ["Content-Length", "transfer-encoding", "Host", "Trailer", "TE", "Connection", "Authorization"] {
            let reject = assert_rejects(&chunked(&format!("5\r\nhello\r\n0\r\n{name}: x\r\n\r\n")), 400);
            assert!(reject.in_body);
        }
    }

    #[test]
    fn rejects_malformed_trailer_fields() {
        for trailer in
            ["X : y\r\n", "X: a\r\n b\r\n", ": y\r\n", "X: a\x01\r\n", "X y\r\n", "X: a\nY: b\r\n", "X: a\rb\r\n"]
        {
            let reject = assert_rejects(&chunked(&format!("5\r\nhello\r\n0\r\n{trailer}\r\n")), 400);
            assert!(reject.in_body);
        }
    }

    #[test]
    fn rejects_too_many_or_too_large_trailers_with_431() {
        let mut many = String::new();
        for i in 0..101 {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        assert_rejects(&chunked(&format!("0\r\n{many}\r\n")), 431);
        let long = format!("X: {}\r\n", "v".repeat(8190));
        assert_rejects(&chunked(&format!("0\r\n{long}\r\n")), 431);
        let mut big = String::new();
        for i in 0..3 {
            big.push_str(&format!("X-{i}: {}\r\n", "v".repeat(6000)));
        }
        assert_rejects(&chunked(&format!("0\r\n{big}\r\n")), 431);
    }

    // ----------------------------------------------------- pipelining

    #[test]
    fn accepts_pipelined_requests_split_at_every_point() {
        let data: Vec<u8> = [
            &b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
            b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
            b"\r\nGET /d HTTP/1.0\r\n\r\n",
        ]
        .concat();
        for first in 0..=data.len() {
            let sizes = [first, 1, 2, 3];
            let outcome = feed_pieces(Limits::default(), &data, &mut sizes.into_iter());
            assert_eq!(outcome, passed(&data), "split at {first}");
        }
        for first in 1..data.len() {
            for second in (first + 1)..data.len() {
                let sizes = [first, second - first, data.len()];
                let outcome = feed_pieces(Limits::default(), &data, &mut sizes.into_iter());
                assert_eq!(outcome, passed(&data), "split at {first} and {second}");
            }
        }
        assert_accepts(&data);
    }

    #[test]
    fn pipelined_rejection_comes_after_earlier_requests_are_released() {
        let good = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
        let data = [&good[..], b"GET /b HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n"].concat();
        let mut guard = Guard::new(Limits::default());
        assert_eq!(guard.advance(&data), Ok(good.len()));
        let reject = guard.advance(&data[good.len()..]);
        assert_eq!(reject.map_err(|r| (r.status, r.in_body)), Err((400, false)));
        assert_eq!(
            feed(Limits::default(), &data),
            Outcome::Rejected { reject: bad("invalid field name"), released: good.len() }
        );
    }

    #[test]
    fn content_length_body_that_looks_like_a_request_is_body() {
        assert_accepts(b"GET /first HTTP/1.0\r\nContent-Length: 24\r\n\r\nGET /second HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn stays_failed_after_rejection() {
        let mut guard = Guard::new(Limits::default());
        let first = guard.advance(b"get / HTTP/1.1\r\n");
        assert!(first.is_err());
        assert_eq!(guard.advance(b"GET / HTTP/1.0\r\n\r\n"), first);
        assert!(!guard.is_idle());
    }

    #[test]
    fn reject_display_names_status_reason_and_phase() {
        assert_eq!(bad_body("x").to_string(), "400 (x, in body)");
        assert_eq!(Reject::head(414, "y").to_string(), "414 (y, in head)");
    }

    // ------------------------------------------------------------ corpus

    /// One case of the corpus data file.
    #[derive(Debug, Default)]
    struct Case {
        /// `valid/NAME` or `invalid/NAME`.
        name: String,
        /// valid, valid-lenient, invalid, invalid-policy, skipped-*.
        group: String,
        /// Request bytes as sent (Host inserted where the harness does).
        raw: Vec<u8>,
        /// For invalid cases: whether the error is a body-phase one.
        body_phase: bool,
    }

    /// Decodes the data file's hex (`-` is the empty string).
    fn unhex(s: &str) -> Vec<u8> {
        if s == "-" {
            return Vec::new();
        }
        assert!(s.len() % 2 == 0, "odd hex length");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|e| panic!("bad hex {s}: {e}")))
            .collect()
    }

    /// Reads `wsgi-conformance/fixtures/gunicorn-corpus.txt`.
    fn corpus() -> Vec<Case> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../wsgi-conformance/fixtures/gunicorn-corpus.txt");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        let mut cases = Vec::new();
        let mut case: Option<Case> = None;
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match (key, case.as_mut()) {
                ("case", None) => case = Some(Case { name: value.to_string(), ..Case::default() }),
                ("end", Some(_)) => cases.extend(case.take()),
                ("group", Some(c)) => c.group = value.to_string(),
                ("raw", Some(c)) => c.raw = unhex(value),
                ("body-phase", Some(c)) => c.body_phase = value == "yes",
                (_, Some(_)) => {}
                _ => panic!("unexpected line outside a case: {line}"),
            }
        }
        assert!(case.is_none(), "unterminated case");
        cases
    }

    /// What the guard does with a lenient valid case.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Decision {
        /// Passed on whole, ending idle; `held` trailing bytes are empty lines.
        Accept { held: usize },
        /// Refused in the head with this status.
        Reject(u16),
    }

    /// The guard's decision for each lenient valid case (sec_parser.py's
    /// LENIENT_VALID: RFC 9110/9112 allow rejecting them).
    const LENIENT: &[(&str, Decision)] = &[
        // '#' fragment: Gunicorn and hyper accept it (hyper drops the fragment).
        ("valid/005", Decision::Accept { held: 0 }),
        // Content-Length together with Transfer-Encoding (identity).
        ("valid/009", Decision::Reject(400)),
        // '"' in the query: hyper's URI parser refuses it too.
        ("valid/014", Decision::Reject(400)),
        // gzip before chunked: unsupported transfer coding.
        ("valid/025", Decision::Reject(501)),
        ("valid/025_line", Decision::Reject(501)),
        // Raw non-ASCII bytes in the request-target.
        ("valid/027", Decision::Reject(400)),
        // identity before chunked: unsupported (obsolete) transfer coding.
        ("valid/029", Decision::Reject(501)),
        ("valid/030", Decision::Reject(501)),
        // "-BLARGH" is an uppercase token method: the app answers 405/501.
        ("valid/031", Decision::Accept { held: 0 }),
        // '_' in field names is a token; the CRLF after the body is an
        // empty line before a next request, held but idle.
        ("valid/040", Decision::Accept { held: 2 }),
        ("valid/rfc9110_field_name_special_chars_01", Decision::Accept { held: 0 }),
        ("valid/rfc9112_smuggle_gzip_chunked_01", Decision::Reject(501)),
        ("valid/rfc9112_smuggle_te_identity_chunked_01", Decision::Reject(501)),
        ("valid/rfc9112_target_absolute_https_01", Decision::Accept { held: 0 }),
        // userinfo in an http(s) URI: RFC 9110 section 4.2.4 says treat as an error.
        ("valid/rfc9112_target_absolute_userinfo_01", Decision::Reject(400)),
        ("valid/rfc9112_target_asterisk_options_01", Decision::Accept { held: 0 }),
        ("valid/rfc9112_target_authority_connect_01", Decision::Accept { held: 0 }),
        ("valid/rfc9112_target_authority_ipv6_01", Decision::Accept { held: 0 }),
    ];

    /// Invalid cases whose bytes end before the request does: no rejection
    /// from the bytes alone, but the guard is not idle at EOF, which the
    /// server treats as a truncated request.
    const TRUNCATED: &[&str] = &["invalid/001", "invalid/rfc9112_chunked_missing_final_crlf_01"];

    #[test]
    fn corpus_file_has_the_expected_groups() {
        let cases = corpus();
        let count = |g: &str| cases.iter().filter(|c| c.group == g).count();
        assert_eq!(cases.len(), 137);
        assert_eq!(count("valid"), 31);
        assert_eq!(count("valid-lenient"), 18);
        assert_eq!(count("invalid"), 56);
        assert_eq!(count("invalid-policy"), 7);
        let lenient: Vec<&str> = cases.iter().filter(|c| c.group == "valid-lenient").map(|c| c.name.as_str()).collect();
        let table: Vec<&str> = LENIENT.iter().map(|(name, _)| *name).collect();
        assert_eq!(lenient, table, "the LENIENT table must list exactly the lenient cases");
    }

    #[test]
    fn corpus_valid_cases_are_released_whole() {
        let mut failures = Vec::new();
        for case in corpus().iter().filter(|c| c.group == "valid") {
            let outcome = std::panic::catch_unwind(|| feed_all_ways(Limits::default(), &case.raw));
            match outcome {
                Ok(outcome) if outcome == passed(&case.raw) => {}
                Ok(outcome) => failures.push(format!("{}: {outcome:?}", case.name)),
                Err(_) => failures.push(format!("{}: inconsistent across splits", case.name)),
            }
        }
        assert!(failures.is_empty(), "valid cases not accepted:\n{}", failures.join("\n"));
    }

    #[test]
    fn corpus_lenient_cases_follow_the_decision_table() {
        let mut failures = Vec::new();
        for case in corpus().iter().filter(|c| c.group == "valid-lenient") {
            let Some((_, decision)) = LENIENT.iter().find(|(name, _)| *name == case.name) else {
                failures.push(format!("{}: not in the LENIENT table", case.name));
                continue;
            };
            let outcome = std::panic::catch_unwind(|| feed_all_ways(Limits::default(), &case.raw));
            let ok = match (decision, &outcome) {
                (Decision::Accept { held }, Ok(Outcome::Passed { released, held: h, idle: true })) => {
                    *h == *held && released + h == case.raw.len()
                }
                (Decision::Reject(status), Ok(Outcome::Rejected { reject, .. })) => {
                    reject.status == *status && !reject.in_body
                }
                _ => false,
            };
            if !ok {
                failures.push(format!("{}: expected {decision:?}, got {outcome:?}", case.name));
            }
        }
        assert!(failures.is_empty(), "lenient cases:\n{}", failures.join("\n"));
    }

    #[test]
    fn corpus_invalid_cases_are_refused() {
        let mut failures = Vec::new();
        for case in corpus().iter().filter(|c| c.group == "invalid" || c.group == "invalid-policy") {
            let outcome = std::panic::catch_unwind(|| feed_all_ways(Limits::default(), &case.raw));
            let truncated = TRUNCATED.contains(&case.name.as_str());
            match outcome {
                Ok(Outcome::Rejected { reject, .. }) if !truncated => {
                    if reject.in_body != case.body_phase {
                        failures
                            .push(format!("{}: rejected ({reject}) but body-phase is {}", case.name, case.body_phase));
                    }
                }
                Ok(Outcome::Passed { idle: false, .. }) if truncated => {}
                Ok(outcome) => failures.push(format!("{}: {outcome:?}", case.name)),
                Err(_) => failures.push(format!("{}: inconsistent across splits", case.name)),
            }
        }
        assert!(failures.is_empty(), "invalid cases not refused:\n{}", failures.join("\n"));
    }
}
