//! The read half of a connection, and the request body as a blocking
//! reader for `wsgi.input`.
//!
//! [`Incoming`] owns the buffered reader of the socket. Between requests
//! the connection loop reads heads from it; during a request the
//! application reads the body through a [`BodyReader`], which decodes
//! `Content-Length` and chunked framing on demand (nothing is read before
//! the application asks, so `100 Continue` goes out on the first read,
//! HTTP-1) and never reads a byte past the body (IN-2). After the response,
//! whatever the application left unread is skipped, or the connection is
//! closed.

use std::io::{self, BufReader, Read};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::request::{read_line, split_field, BodyLength, Limits, LineError};
use crate::response::Outgoing;

/// Most hexadecimal digits of a chunk size (16 always fit in a `u64`).
const CHUNK_SIZE_DIGITS_MAX: usize = 16;

/// Lock a mutex, even one a panicking thread left poisoned: the state it
/// guards stays consistent (every change is a single assignment).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where the current request body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    /// Nothing (more) to read.
    Done,
    /// This many bytes of a `Content-Length` body still to come.
    Length(u64),
    /// A chunked body, expecting a chunk-size line.
    ChunkSize,
    /// Inside chunk data: this many bytes of the chunk still to come.
    ChunkData(u64),
    /// After chunk data: expecting its CRLF.
    ChunkEnd,
    /// Malformed, cut short or timed out: the connection cannot be reused.
    Broken,
}

/// The read half of a connection.
#[derive(Debug)]
pub(crate) struct Incoming {
    reader: BufReader<TcpStream>,
    limits: Limits,
    state: BodyState,
    /// The request whose body may be read now (`None` between requests).
    active: Option<u64>,
    requests: u64,
}

impl Incoming {
    pub(crate) fn new(stream: TcpStream, limits: Limits) -> Incoming {
        Incoming {
            reader: BufReader::with_capacity(16 * 1024, stream),
            limits,
            state: BodyState::Done,
            active: None,
            requests: 0,
        }
    }

    /// The buffered reader, for request heads.
    pub(crate) fn reader(&mut self) -> &mut BufReader<TcpStream> {
        &mut self.reader
    }

    /// The socket.
    pub(crate) fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    /// A new request whose body has this length; returns its number.
    pub(crate) fn begin(&mut self, length: BodyLength) -> u64 {
        self.requests += 1;
        self.active = Some(self.requests);
        self.state = match length {
            BodyLength::Empty => BodyState::Done,
            BodyLength::Length(n) => BodyState::Length(n),
            BodyLength::Chunked => BodyState::ChunkSize,
        };
        self.requests
    }

    /// The request is over: readers left behind by the application fail.
    pub(crate) fn retire(&mut self) {
        self.active = None;
    }

    /// Skip what is left of the body, up to `limit` bytes. True when the
    /// body ended cleanly, so the next request can be read.
    ///
    /// # Blocking
    /// Reads the rest of the body from the client.
    pub(crate) fn skip_body(&mut self, limit: u64) -> bool {
        if let BodyState::Length(n) = self.state {
            if n > limit {
                return false;
            }
        }
        let mut scratch = [0u8; 8 * 1024];
        let mut skipped = 0u64;
        loop {
            match self.state {
                BodyState::Done => return true,
                BodyState::Broken => return false,
                _ if skipped > limit => return false,
                _ => {}
            }
            match self.read_body(&mut scratch) {
                Ok(n) => skipped += n as u64,
                Err(_) => return false,
            }
        }
    }

    /// Read decoded body bytes; 0 at the end of the body.
    ///
    /// # Errors
    /// The client closed the connection early (`UnexpectedEof`), a read
    /// timed out, or the chunked framing is malformed (`InvalidData`); the
    /// body is then broken for good.
    pub(crate) fn read_body(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let result = self.decode(out);
        if result.is_err() {
            self.state = BodyState::Broken;
        }
        result
    }

    fn decode(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.state {
                BodyState::Done => return Ok(0),
                BodyState::Broken => return Err(invalid("the request body is unusable after an earlier error")),
                BodyState::Length(remaining) => {
                    let n = self.read_some(out, remaining)?;
                    self.state =
                        if remaining == n as u64 { BodyState::Done } else { BodyState::Length(remaining - n as u64) };
                    return Ok(n);
                }
                BodyState::ChunkData(remaining) => {
                    let n = self.read_some(out, remaining)?;
                    self.state = if remaining == n as u64 {
                        BodyState::ChunkEnd
                    } else {
                        BodyState::ChunkData(remaining - n as u64)
                    };
                    return Ok(n);
                }
                BodyState::ChunkSize => {
                    let size = self.chunk_size()?;
                    if size == 0 {
                        self.trailers()?;
                        self.state = BodyState::Done;
                    } else {
                        self.state = BodyState::ChunkData(size);
                    }
                }
                BodyState::ChunkEnd => {
                    // The chunk data must be followed by CRLF and nothing else.
                    let mut line = Vec::new();
                    read_line(&mut self.reader, 0, &mut line)
                        .map_err(|e| body_error(e, "chunk data not followed by CRLF"))?;
                    self.state = BodyState::ChunkSize;
                }
            }
        }
    }

    /// Read at most `remaining` body bytes into `out` (at least one).
    fn read_some(&mut self, out: &mut [u8], remaining: u64) -> io::Result<usize> {
        let want = usize::try_from(remaining).map_or(out.len(), |r| r.min(out.len()));
        loop {
            match self.reader.read(&mut out[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client closed the connection before the end of the request body",
                    ))
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// `1*HEXDIG [ chunk-ext ]` (RFC 9112 7.1).
    fn chunk_size(&mut self) -> io::Result<u64> {
        let mut line = Vec::new();
        read_line(&mut self.reader, self.limits.field_line_max(), &mut line)
            .map_err(|e| body_error(e, "chunk-size line too long"))?;
        let digits = line.iter().position(|b| !b.is_ascii_hexdigit()).unwrap_or(line.len());
        if digits == 0 || digits > CHUNK_SIZE_DIGITS_MAX {
            return Err(invalid("invalid chunk size"));
        }
        if !valid_extensions(&line[digits..]) {
            return Err(invalid("invalid chunk extension"));
        }
        let size = line[..digits].iter().fold(0u64, |n, &b| {
            let digit = char::from(b).to_digit(16).map_or(0, u64::from);
            (n << 4) | digit
        });
        Ok(size)
    }

    /// The trailer section after the last chunk: checked like header
    /// fields, then ignored (RFC 9110 6.5.1 lets a recipient discard them).
    fn trailers(&mut self) -> io::Result<()> {
        let mut line = Vec::new();
        let mut fields = 0;
        loop {
            read_line(&mut self.reader, self.limits.field_line_max(), &mut line)
                .map_err(|e| body_error(e, "trailer field line too long"))?;
            if line.is_empty() {
                return Ok(());
            }
            fields += 1;
            if fields > self.limits.max_fields() {
                return Err(invalid("too many trailer fields"));
            }
            split_field(&line).map_err(invalid)?;
        }
    }
}

/// `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`,
/// after the chunk size: nothing, or extensions that start with `;`.
fn valid_extensions(mut s: &[u8]) -> bool {
    if s.is_empty() {
        return true;
    }
    loop {
        s = trim_start(s);
        let Some(rest) = s.strip_prefix(b";") else {
            return false;
        };
        s = trim_start(rest);
        let name = token_len(s);
        if name == 0 {
            return false;
        }
        s = trim_start(&s[name..]);
        if let Some(value) = s.strip_prefix(b"=") {
            s = trim_start(value);
            let len = if s.first() == Some(&b'"') { quoted_len(s) } else { Some(token_len(s)).filter(|&n| n > 0) };
            let Some(len) = len else {
                return false;
            };
            s = trim_start(&s[len..]);
        }
        if s.is_empty() {
            return true;
        }
    }
}

/// `s` without leading SP / HTAB.
fn trim_start(s: &[u8]) -> &[u8] {
    let lead = s.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(s.len());
    &s[lead..]
}

fn token_len(s: &[u8]) -> usize {
    s.iter().position(|&b| !(b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))).unwrap_or(s.len())
}

/// The length of the quoted-string at the start of `s`, or `None`.
fn quoted_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    loop {
        match *s.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => {
                let escaped = *s.get(i + 1)?;
                if (escaped < 0x20 && escaped != b'\t') || escaped == 0x7f {
                    return None;
                }
                i += 2;
            }
            b if b == b'\t' || (b >= 0x20 && b != 0x7f) => i += 1,
            _ => return None,
        }
    }
}

fn invalid(reason: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

fn body_error(e: LineError, too_long: &'static str) -> io::Error {
    match e {
        LineError::Io(e) => e,
        LineError::Eof { .. } => io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the client closed the connection before the end of the chunked body",
        ),
        LineError::TooLong => invalid(too_long),
        LineError::BareLf => invalid("bare LF in the chunked body"),
        LineError::StrayCr => invalid("CR not followed by LF in the chunked body"),
    }
}

/// The source of one request's `wsgi.input`.
///
/// # Blocking
/// Reads block until the client sends more of the body (or the server's
/// timeout passes).
pub(crate) struct BodyReader {
    incoming: Arc<Mutex<Incoming>>,
    outgoing: Arc<Mutex<Outgoing>>,
    request: u64,
    first_read: bool,
}

impl BodyReader {
    pub(crate) fn new(incoming: Arc<Mutex<Incoming>>, outgoing: Arc<Mutex<Outgoing>>, request: u64) -> BodyReader {
        BodyReader { incoming, outgoing, request, first_read: true }
    }
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut incoming = lock(&self.incoming);
        if incoming.active != Some(self.request) {
            return Err(io::Error::other("the request this body belongs to is over"));
        }
        if std::mem::take(&mut self.first_read) {
            // HTTP-1: `100 Continue` when the application first reads.
            lock(&self.outgoing).send_continue()?;
        }
        let result = incoming.read_body(out);
        if result.is_err() {
            lock(&self.outgoing).close_after_response();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::valid_extensions;

    #[test]
    fn chunk_extensions() {
        for ok in [&b""[..], b";a", b"; some; parameters=stuff", b";foo=\"bar baz\"", b" ;a=b ; c"] {
            assert!(valid_extensions(ok), "{:?}", String::from_utf8_lossy(ok));
        }
        for bad in [&b" "[..], b"_0", b";", b";=x", b";a=", b";a=\"x", b"x", b";a b"] {
            assert!(!valid_extensions(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
