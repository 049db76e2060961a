//! The sans-I/O response driver: from `start_response` calls, `write()` data
//! and body chunks to a response head plus the bytes to send (SR-9, CL-*, BODY-6).
//!
//! Every server uses it (usually through [`crate::run`]), so head timing,
//! `Content-Length` enforcement, bodiless responses and the choice of framing
//! are decided once, here.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};

use crate::start_response::check_headers;
use crate::{AppError, Error, FileBody, Status};

/// How the body of a response is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Framing {
    /// Exactly this many bytes follow; `Content-Length` is in the headers.
    Length(u64),
    /// Unknown length: chunked on HTTP/1.1, plain data frames on HTTP/2.
    Chunked,
    /// Unknown length on HTTP/1.0: the server closes the connection at the end.
    CloseDelimited,
    /// No body at all (HEAD, 1xx, 204, 304): headers are sent as they are.
    NoBody,
}

/// A response head ready to be written.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// The status and reason phrase.
    pub status: Status,
    /// The headers, checked (SR-4, SR-5, SR-7). The server adds `Date`,
    /// `Server` and its framing headers (SR-6).
    pub headers: HeaderMap,
    /// How the body is delimited.
    pub framing: Framing,
}

/// What to send after feeding the driver one chunk.
#[derive(Debug, Default)]
pub struct Emit {
    /// The head, the first time something commits it.
    pub head: Option<ResponseHead>,
    /// The bytes to send now (possibly empty: held, suppressed or truncated).
    pub data: Bytes,
}

/// The response state machine of one request.
///
/// ```
/// use wsgi_spec::driver::{ResponseDriver, Framing};
/// use wsgi_spec::Status;
/// let mut d = ResponseDriver::new(&http::Method::GET, http::Version::HTTP_11);
/// d.start_response(Status::OK, http::HeaderMap::new(), None)?;
/// // An empty chunk does not commit the head (SR-9).
/// assert!(d.data(bytes::Bytes::new(), None)?.head.is_none());
/// let emit = d.data(bytes::Bytes::from("hi"), None)?;
/// assert_eq!(emit.head.unwrap().framing, Framing::Chunked);
/// assert_eq!(emit.data, "hi");
/// assert!(d.finish()?.is_none());
/// # Ok::<(), wsgi_spec::Error>(())
/// ```
#[derive(Debug)]
pub struct ResponseDriver {
    head_request: bool,
    version: Version,
    pending: Option<(Status, HeaderMap)>,
    /// The `Content-Length` of the pending headers, checked when they came.
    pending_length: Option<u64>,
    calls: u32,
    committed: bool,
    returned: bool,
    no_body: bool,
    declared: Option<u64>,
    sent: u64,
    finished: bool,
}

impl ResponseDriver {
    /// A driver for a response to a request with `method` over `version`.
    #[must_use]
    pub fn new(method: &Method, version: Version) -> ResponseDriver {
        ResponseDriver {
            head_request: *method == Method::HEAD,
            version,
            pending: None,
            pending_length: None,
            calls: 0,
            committed: false,
            returned: false,
            no_body: false,
            declared: None,
            sent: 0,
            finished: false,
        }
    }

    /// `start_response` (SR-*): check the head and hold it.
    ///
    /// # Errors
    /// Invalid headers (SR-4, SR-5, SR-7) or `Content-Length`
    /// ([`Error::InvalidContentLength`], checked here so the application
    /// learns it while it still runs, SR-8); a second call without `exc_info`
    /// ([`Error::AlreadyStarted`], SR-15); `exc_info` after the head was sent
    /// ([`Error::HeadersSent`] carrying it, SR-13).
    pub fn start_response(
        &mut self,
        status: Status,
        headers: HeaderMap,
        exc_info: Option<AppError>,
    ) -> Result<(), Error> {
        self.calls += 1;
        match exc_info {
            Some(exc) if self.committed => return Err(Error::HeadersSent(exc)),
            Some(_) => {}
            None if self.calls > 1 => return Err(Error::AlreadyStarted),
            None => {}
        }
        check_status(&status)?;
        check_headers(&headers)?;
        self.pending_length = declared_length(&headers)?;
        self.pending = Some((status, headers));
        Ok(())
    }

    /// True once `start_response` succeeded.
    #[must_use]
    pub fn is_started(&self) -> bool {
        self.pending.is_some() || self.committed
    }

    /// True once the head was handed out.
    #[must_use]
    pub fn is_committed(&self) -> bool {
        self.committed
    }

    /// Mark that the application returned its body: `write()` is over (WR-5).
    pub fn app_returned(&mut self) {
        self.returned = true;
    }

    /// True once the application returned its body.
    #[must_use]
    pub fn has_returned(&self) -> bool {
        self.returned
    }

    /// True when no more body bytes will be sent: `Content-Length` reached,
    /// or the response has no body. A server stops iterating then (CL-1).
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.committed && (self.no_body || self.declared.is_some_and(|d| self.sent >= d))
    }

    /// Body bytes sent so far.
    #[must_use]
    pub fn bytes_sent(&self) -> u64 {
        self.sent
    }

    /// The head's status, once committed or pending.
    #[must_use]
    pub fn status(&self) -> Option<&Status> {
        self.pending.as_ref().map(|(s, _)| s)
    }

    /// Feed a chunk from `write()` or the body. `remaining` is the body's
    /// exact length still to come after this chunk, when known; it lets the
    /// first commit set `Content-Length` (CL-3).
    ///
    /// # Errors
    /// [`Error::BodyBeforeStart`] for data before `start_response` (SR-17);
    /// [`Error::InvalidContentLength`] for a bad app `Content-Length`.
    pub fn data(&mut self, chunk: Bytes, remaining: Option<u64>) -> Result<Emit, Error> {
        if chunk.is_empty() {
            return Ok(Emit::default());
        }
        let mut emit = Emit::default();
        if !self.committed {
            let total = remaining.map(|r| r + chunk.len() as u64);
            emit.head = Some(self.commit(total)?);
        }
        emit.data = self.take(chunk);
        Ok(emit)
    }

    /// Commit the head for a file body and cut the file to `Content-Length`.
    ///
    /// # Errors
    /// As [`data`](Self::data), and [`Error::NeverStarted`];
    /// [`Error::ShortBody`] when the file is shorter than the declared
    /// `Content-Length` and nothing was sent yet: the head is then not
    /// committed, so the server can still answer 500 (CL-2, EXC-2).
    pub fn file(&mut self, file: &mut FileBody) -> Result<Option<ResponseHead>, Error> {
        let head = if self.committed {
            None
        } else {
            if self.pending.is_none() {
                return Err(Error::NeverStarted);
            }
            Some(self.commit(Some(file.len()))?)
        };
        if self.no_body {
            file.truncate(0);
        } else if let Some(d) = self.declared {
            file.truncate(d.saturating_sub(self.sent));
            if head.is_some() && file.len() < d {
                self.committed = false;
                return Err(Error::ShortBody { expected: d, sent: 0 });
            }
        }
        self.sent += file.len();
        Ok(head)
    }

    /// The body ended. Returns the head if nothing committed it yet.
    ///
    /// # Errors
    /// [`Error::NeverStarted`] when `start_response` was never called;
    /// [`Error::ShortBody`] when fewer bytes than `Content-Length` were sent
    /// (CL-2): the server must then close the connection. When nothing at
    /// all was sent, the head stays uncommitted and
    /// [`error_response`](Self::error_response) still gives a clean 500.
    pub fn finish(&mut self) -> Result<Option<ResponseHead>, Error> {
        self.finished = true;
        let head = if self.committed { None } else { Some(self.commit(Some(self.sent))?) };
        if let Some(expected) = self.declared {
            if !self.no_body && self.sent < expected {
                if head.is_some() {
                    // The head was never handed out: keep it uncommitted.
                    self.committed = false;
                }
                return Err(Error::ShortBody { expected, sent: self.sent });
            }
        }
        Ok(head)
    }

    /// What to do about an error: a complete `500` response when the head
    /// was not committed yet (EXC-2), else `None`, and the server must abort
    /// the connection (EXC-3).
    pub fn error_response(&mut self) -> Option<(ResponseHead, Bytes)> {
        if self.committed {
            return None;
        }
        self.committed = true;
        let body = Bytes::from_static(b"Internal Server Error\n");
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        let framing = if self.head_request { Framing::NoBody } else { Framing::Length(body.len() as u64) };
        headers.insert(CONTENT_LENGTH, length_value(body.len() as u64));
        let body = if self.head_request { Bytes::new() } else { body };
        let head = ResponseHead { status: StatusCode::INTERNAL_SERVER_ERROR.into(), headers, framing };
        Some((head, body))
    }

    fn take(&mut self, mut chunk: Bytes) -> Bytes {
        if self.no_body {
            return Bytes::new();
        }
        if let Some(d) = self.declared {
            let room = d.saturating_sub(self.sent);
            if (chunk.len() as u64) > room {
                chunk.truncate(usize::try_from(room).unwrap_or(usize::MAX));
            }
        }
        self.sent += chunk.len() as u64;
        chunk
    }

    fn commit(&mut self, known_total: Option<u64>) -> Result<ResponseHead, Error> {
        let Some((status, mut headers)) = self.pending.take() else {
            return Err(if self.finished { Error::NeverStarted } else { Error::BodyBeforeStart });
        };
        let code = status.code();
        let bodiless_status =
            code.is_informational() || code == StatusCode::NO_CONTENT || code == StatusCode::NOT_MODIFIED;
        self.no_body = bodiless_status || self.head_request;
        let declared = self.pending_length;
        if code.is_informational() || code == StatusCode::NO_CONTENT {
            // RFC 9110 8.6: no Content-Length on 1xx and 204.
            headers.remove(CONTENT_LENGTH);
        }
        let framing = if self.no_body {
            self.declared = declared;
            Framing::NoBody
        } else if let Some(n) = declared {
            self.declared = Some(n);
            Framing::Length(n)
        } else if let Some(n) = known_total {
            headers.insert(CONTENT_LENGTH, length_value(n));
            self.declared = Some(n);
            Framing::Length(n)
        } else if self.version <= Version::HTTP_10 {
            Framing::CloseDelimited
        } else {
            Framing::Chunked
        };
        self.committed = true;
        self.pending = Some((status.clone(), HeaderMap::new()));
        Ok(ResponseHead { status, headers, framing })
    }
}

/// A final status must be 200..=999 with a reason free of control bytes
/// (SR-2): a 1xx is not a final response, and a CR or LF in the reason
/// would let an app inject header lines.
fn check_status(status: &Status) -> Result<(), Error> {
    let bad_reason = status.reason().iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f);
    if status.code().is_informational() || bad_reason {
        return Err(Error::InvalidStatus(status.to_string()));
    }
    Ok(())
}

fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    let mut values = headers.get_all(CONTENT_LENGTH).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let parse = |v: &HeaderValue| -> Result<u64, Error> {
        let s = v.as_bytes();
        if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
            return Err(Error::InvalidContentLength(String::from_utf8_lossy(s).into_owned()));
        }
        std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::InvalidContentLength(String::from_utf8_lossy(s).into_owned()))
    };
    let n = parse(first)?;
    for v in values {
        if parse(v)? != n {
            return Err(Error::InvalidContentLength("conflicting values".to_owned()));
        }
    }
    Ok(Some(n))
}

/// `n` in decimal, spelled at the end of `digits` (without the formatting
/// machinery: every response and every environ spells numbers).
pub(crate) fn decimal(n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        // A digit: `rest % 10` is below 10.
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    &digits[at..]
}

/// A `Content-Length` value, spelled into a shared block (see
/// [`block_copy`]): `HeaderValue::from(u64)` makes a buffer, then a shared
/// header for it when hyper clones it.
fn length_value(n: u64) -> HeaderValue {
    let mut digits = [0u8; 20];
    let spelled = decimal(n, &mut digits);
    HeaderValue::from_maybe_shared(block_copy(spelled)).unwrap_or_else(|_| HeaderValue::from(n))
}

/// The largest copy [`block_copy`] puts into the shared block.
const BLOCK_COPY_MAX: usize = 512;

/// `bytes` as `Bytes` copied into a per-thread block shared by the values
/// made from it: one allocation per few kilobytes of small values instead
/// of one or two per value (a `Bytes` made from a `Vec` allocates again
/// when it is first cloned or sliced, to share it). Larger values are
/// copied on their own, so a long-lived value keeps at most a 4 KiB block
/// alive.
pub(crate) fn block_copy(bytes: &[u8]) -> bytes::Bytes {
    use std::cell::RefCell;
    thread_local! {
        static BLOCK: RefCell<bytes::BytesMut> = RefCell::new(bytes::BytesMut::new());
    }
    if bytes.len() > BLOCK_COPY_MAX {
        return bytes::Bytes::copy_from_slice(bytes);
    }
    BLOCK
        .try_with(|block| {
            let mut block = block.borrow_mut();
            if block.capacity() - block.len() < bytes.len() {
                *block = bytes::BytesMut::with_capacity(4096);
            }
            block.extend_from_slice(bytes);
            block.split().freeze()
        })
        .unwrap_or_else(|_| bytes::Bytes::copy_from_slice(bytes))
}
