//! `wsgi.input`: the request body as a blocking byte stream (IN-*).

use std::fmt;
use std::io::{self, BufRead, Read};

use bytes::{Bytes, BytesMut};

const BUF_SIZE: usize = 16 * 1024;

/// The request body, as PEP 3333's `wsgi.input`.
///
/// Servers build it from any blocking byte source plus the request's
/// `Content-Length` when it had one. It never reads past that length and
/// simulates end-of-file there (IN-2); without a length (a chunked request)
/// it reads until the source ends (IN-10). It implements [`Read`] and
/// [`BufRead`] and the PEP methods: [`read_size`](Input::read_size) (`read(n)`,
/// fill-or-EOF, IN-12), [`read_all`](Input::read_all) (`read()`),
/// [`readline`](Input::readline) (keeps the newline, honours a size limit,
/// IN-5, IN-11), [`readlines`](Input::readlines) and iteration by lines.
/// A source that ends before `Content-Length` (the client went away) makes
/// every read from then on fail with [`io::ErrorKind::UnexpectedEof`] (IN-13).
///
/// ```
/// use wsgi_spec::Input;
/// // The source holds more than Content-Length: the rest is never read.
/// let mut input = Input::new(&b"a\nbc\ndef-next-request"[..], Some(8));
/// assert_eq!(input.readline(None)?, "a\n");
/// assert_eq!(input.readline(Some(2))?, "bc");
/// assert_eq!(input.readline(None)?, "\n");
/// assert_eq!(input.read_size(100)?, "def");
/// assert_eq!(input.read_size(100)?, "");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Blocking
/// Every read may block until the client sends more data.
pub struct Input {
    source: Box<dyn Read + Send>,
    content_length: Option<u64>,
    /// Bytes the source may still deliver (None: until EOF).
    remaining: Option<u64>,
    buf: BytesMut,
    eof: bool,
}

impl Input {
    /// An input reading `source`, stopping after `content_length` bytes when
    /// given.
    pub fn new(source: impl Read + Send + 'static, content_length: Option<u64>) -> Input {
        Input {
            source: Box::new(source),
            content_length,
            remaining: content_length,
            buf: BytesMut::new(),
            eof: content_length == Some(0),
        }
    }

    /// An empty body.
    #[must_use]
    pub fn empty() -> Input {
        Input::new(io::empty(), Some(0))
    }

    /// A body held in memory, with its length.
    pub fn from_bytes(data: impl Into<Bytes>) -> Input {
        let data: Bytes = data.into();
        let len = data.len() as u64;
        Input::new(io::Cursor::new(data), Some(len))
    }

    /// True when the body is known to be empty (a length of zero): every
    /// read returns nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.content_length == Some(0)
    }

    /// The request's `Content-Length`, if it had one.
    #[must_use]
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Refill the buffer when empty; false at end of input.
    fn fill(&mut self) -> io::Result<bool> {
        if !self.buf.is_empty() {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        let want = match self.remaining {
            Some(r) => usize::try_from(r).unwrap_or(usize::MAX).min(BUF_SIZE),
            None => BUF_SIZE,
        };
        if want == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.buf.resize(want, 0);
        let n = loop {
            match self.source.read(&mut self.buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.clear();
                    return Err(e);
                }
            }
        };
        self.buf.truncate(n);
        if n == 0 {
            if let Some(r) = self.remaining {
                if r > 0 {
                    // Not marked as EOF: every later read fails the same
                    // way, so a truncated body never passes for a whole one.
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("request body ended {r} bytes short of its Content-Length"),
                    ));
                }
            }
            self.eof = true;
            return Ok(false);
        }
        if let Some(r) = self.remaining.as_mut() {
            *r -= n as u64;
            if *r == 0 {
                self.eof = true;
            }
        }
        Ok(true)
    }

    /// `read(size)`: up to `size` bytes, fewer only at end of input (IN-12).
    /// `read_size(0)` is empty; at the end every read is empty (IN-4).
    ///
    /// # Errors
    /// The source's error (e.g. the client disconnected).
    pub fn read_size(&mut self, size: usize) -> io::Result<Bytes> {
        if size == 0 {
            return Ok(Bytes::new());
        }
        if self.buf.len() >= size {
            return Ok(self.buf.split_to(size).freeze());
        }
        let mut out = BytesMut::with_capacity(size.min(BUF_SIZE * 4));
        while out.len() < size && self.fill()? {
            let take = (size - out.len()).min(self.buf.len());
            if out.is_empty() && take == self.buf.len() {
                out = self.buf.split_to(take);
            } else {
                out.extend_from_slice(&self.buf.split_to(take));
            }
        }
        Ok(out.freeze())
    }

    /// `read()` with no size: the rest of the body (IN-3).
    ///
    /// # Errors
    /// The source's error.
    pub fn read_all(&mut self) -> io::Result<Bytes> {
        let mut out = BytesMut::new();
        while self.fill()? {
            let chunk = self.buf.split();
            if out.is_empty() {
                out = chunk;
            } else {
                out.extend_from_slice(&chunk);
            }
        }
        Ok(out.freeze())
    }

    /// `readline(size)`: the next line including its `\n` (IN-11), at most
    /// `limit` bytes when given (IN-5); empty at the end.
    ///
    /// # Errors
    /// The source's error.
    pub fn readline(&mut self, limit: Option<usize>) -> io::Result<Bytes> {
        let limit = limit.unwrap_or(usize::MAX);
        let mut out = BytesMut::new();
        while out.len() < limit && self.fill()? {
            let room = limit - out.len();
            let window = &self.buf[..self.buf.len().min(room)];
            let (take, done) = match window.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (window.len(), false),
            };
            let part = self.buf.split_to(take);
            if out.is_empty() {
                out = part;
            } else {
                out.extend_from_slice(&part);
            }
            if done {
                break;
            }
        }
        Ok(out.freeze())
    }

    /// `readlines(hint)`: the remaining lines; with a hint, stop once the
    /// lines read total at least `hint` bytes (IN-6).
    ///
    /// # Errors
    /// The source's error.
    pub fn readlines(&mut self, hint: Option<usize>) -> io::Result<Vec<Bytes>> {
        let mut lines = Vec::new();
        let mut total = 0usize;
        loop {
            let line = self.readline(None)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            lines.push(line);
            if hint.is_some_and(|h| h > 0 && total >= h) {
                break;
            }
        }
        Ok(lines)
    }
}

/// Iteration yields lines, like iterating a Python file (IN-1).
impl Iterator for Input {
    type Item = io::Result<Bytes>;
    fn next(&mut self) -> Option<io::Result<Bytes>> {
        match self.readline(None) {
            Ok(line) if line.is_empty() => None,
            other => Some(other),
        }
    }
}

impl Read for Input {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || !self.fill()? {
            return Ok(0);
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf.split_to(n));
        Ok(n)
    }
}

impl BufRead for Input {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.fill()?;
        Ok(&self.buf)
    }
    fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.buf.len());
        let _ = self.buf.split_to(amt);
    }
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Input")
            .field("content_length", &self.content_length)
            .field("remaining", &self.remaining)
            .field("buffered", &self.buf.len())
            .field("eof", &self.eof)
            .finish()
    }
}
