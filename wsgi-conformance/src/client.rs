//! A strict raw HTTP/1.x client over [`std::net::TcpStream`].
//!
//! Nothing here is lenient on purpose: responses are parsed exactly as the
//! server framed them (`Content-Length`, chunked or close-delimited), so that
//! truncation, stray bytes and framing errors stay visible. Every read is
//! bounded by a deadline.
//!
//! ```no_run
//! use wsgi_conformance::client::{build_request, Conn};
//! use std::time::Duration;
//! let addr = "127.0.0.1:8000".parse().unwrap();
//! let mut conn = Conn::connect(addr).unwrap();
//! conn.send(&build_request("GET", "/", &[("Connection", "close")], b"", "HTTP/1.1"));
//! let resp = conn.read_response(Duration::from_secs(2), false).unwrap();
//! assert_eq!(resp.status, 200);
//! ```

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How a response body was delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length`.
    Length,
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Read until the server closed the connection.
    Close,
    /// No body (HEAD, 1xx, 204, 304).
    None,
}

/// One parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// The status code; 0 when the status line was not HTTP (see `raw_head`).
    pub status: u16,
    /// The reason phrase, as bytes.
    pub reason: Vec<u8>,
    /// The header fields in order, names and values as bytes (OWS trimmed).
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
    /// How the body was delimited.
    pub framing: Framing,
    /// True when the framing finished cleanly (all `Content-Length` bytes,
    /// the last chunk, or a clean close).
    pub complete: bool,
    /// Interim (1xx) status codes received before this response.
    pub interim: Vec<u16>,
    /// The head as received.
    pub raw_head: Vec<u8>,
}

impl Response {
    /// The framing as the spec's driver names it (what
    /// `wsgi_spec::testing::TestResponse` reports), for a response that
    /// carried a body: `Length(body length)` or `Chunked`; `None` otherwise.
    #[must_use]
    pub fn spec_framing(&self) -> Option<wsgi_spec::driver::Framing> {
        match self.framing {
            Framing::Length => Some(wsgi_spec::driver::Framing::Length(self.body.len() as u64)),
            Framing::Chunked => Some(wsgi_spec::driver::Framing::Chunked),
            Framing::Close | Framing::None => None,
        }
    }

    /// The first value of a header, as (latin-1) text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| latin1(v))
    }

    /// Every value of a header, as bytes.
    #[must_use]
    pub fn header_all(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// The lower-cased tokens of every `Connection` header.
    #[must_use]
    pub fn connection_tokens(&self) -> Vec<String> {
        self.header_all("connection")
            .iter()
            .flat_map(|v| latin1(v).split(',').map(|t| t.trim().to_ascii_lowercase()).collect::<Vec<_>>())
            .collect()
    }

    /// True when the response announces `Connection: close`.
    #[must_use]
    pub fn says_close(&self) -> bool {
        self.connection_tokens().iter().any(|t| t == "close")
    }

    /// A one-line description for reports.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "{} {} (framing {:?}, complete {}, {} body bytes)",
            self.status,
            latin1(&self.reason),
            self.framing,
            self.complete,
            self.body.len()
        )
    }
}

/// Bytes as a latin-1 string (each byte one char).
#[must_use]
pub fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

/// Where a connection stands after an [`exchange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Still open.
    Open,
    /// The server closed it (or reset it).
    Closed,
    /// The deadline passed while waiting.
    Timeout,
}

/// A client connection with an input buffer and deadline-bounded reads.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    /// Bytes received and not consumed yet.
    pub buf: Vec<u8>,
    /// The server closed (or reset) the connection.
    pub eof: bool,
    /// The server reset the connection.
    pub reset: bool,
}

impl Conn {
    /// Connect to `addr` (2 s connect timeout, `TCP_NODELAY`).
    ///
    /// # Errors
    /// The connection could not be made.
    pub fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(Conn { stream, buf: Vec::new(), eof: false, reset: false })
    }

    /// Send bytes; false when the server no longer accepts them.
    pub fn send(&mut self, data: &[u8]) -> bool {
        self.stream.write_all(data).and_then(|()| self.stream.flush()).is_ok()
    }

    /// Close the sending side (the server reads end-of-file).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// The underlying stream.
    #[must_use]
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Read more bytes into `buf`; false on end of file or at the deadline.
    pub fn fill(&mut self, deadline: Instant) -> bool {
        if self.eof {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let wait = (deadline - now).max(Duration::from_millis(1));
        if self.stream.set_read_timeout(Some(wait)).is_err() {
            self.eof = true;
            return false;
        }
        let mut tmp = [0u8; 64 * 1024];
        match self.stream.read(&mut tmp) {
            Ok(0) => {
                self.eof = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => false,
            Err(e) => {
                self.eof = true;
                self.reset = matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted);
                false
            }
        }
    }

    /// Wait until the server closes the connection; true if it did within
    /// `timeout`. Bytes received meanwhile stay in `buf`.
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.eof && Instant::now() < deadline {
            self.fill(deadline);
        }
        self.eof
    }

    /// Read whatever arrives within `timeout` (stops early at end of file).
    pub fn drain_for(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.eof && Instant::now() < deadline {
            self.fill(deadline);
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let rest = self.buf.split_off(n);
        std::mem::replace(&mut self.buf, rest)
    }

    fn read_until(&mut self, marker: &[u8], deadline: Instant, limit: usize) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, marker) {
                return Some(self.take(i + marker.len()));
            }
            if self.buf.len() > limit {
                return None;
            }
            if !self.fill(deadline) && (self.eof || Instant::now() >= deadline) {
                return None;
            }
        }
    }

    fn read_exact(&mut self, n: usize, deadline: Instant) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill(deadline) && (self.eof || Instant::now() >= deadline) {
                return None;
            }
        }
        Some(self.take(n))
    }

    /// Read one response (after any 1xx interim responses). `None` when
    /// nothing parseable arrived before the deadline or the close. A head
    /// that is not HTTP gives a response with status 0.
    pub fn read_response(&mut self, timeout: Duration, head_request: bool) -> Option<Response> {
        let deadline = Instant::now() + timeout;
        let mut interim = Vec::new();
        loop {
            let Some(head) = self.read_until(b"\r\n\r\n", deadline, 1 << 20) else {
                if !interim.is_empty() || !self.buf.is_empty() && !self.buf.starts_with(b"HTTP/") {
                    let raw = std::mem::take(&mut self.buf);
                    return Some(garbage(raw, interim));
                }
                return None;
            };
            let Some(mut resp) = parse_head(&head) else {
                return Some(garbage(head, interim));
            };
            if (100..200).contains(&resp.status) && resp.status != 101 {
                interim.push(resp.status);
                continue;
            }
            resp.interim = interim;
            self.read_body(&mut resp, head_request, deadline);
            return Some(resp);
        }
    }

    fn read_body(&mut self, resp: &mut Response, head_request: bool, deadline: Instant) {
        let te = resp.header("transfer-encoding").unwrap_or_default().to_ascii_lowercase();
        let cl = resp.header("content-length");
        if head_request || resp.status == 204 || resp.status == 304 || resp.status < 200 {
            resp.framing = Framing::None;
            resp.complete = true;
        } else if te.contains("chunked") {
            resp.framing = Framing::Chunked;
            loop {
                let Some(line) = self.read_until(b"\r\n", deadline, 1 << 16) else { return };
                let text = latin1(&line);
                let size_text = text.trim().split(';').next().unwrap_or("").trim().to_owned();
                let Ok(size) = usize::from_str_radix(&size_text, 16) else { return };
                if size == 0 {
                    loop {
                        let Some(t) = self.read_until(b"\r\n", deadline, 1 << 16) else { return };
                        if t == b"\r\n" {
                            resp.complete = true;
                            return;
                        }
                    }
                }
                let Some(mut data) = self.read_exact(size + 2, deadline) else {
                    let partial = std::mem::take(&mut self.buf);
                    resp.body.extend_from_slice(&partial[..partial.len().min(size)]);
                    return;
                };
                if !data.ends_with(b"\r\n") {
                    return;
                }
                data.truncate(size);
                resp.body.extend_from_slice(&data);
            }
        } else if let Some(cl) = cl {
            resp.framing = Framing::Length;
            let Ok(n) = cl.trim().parse::<usize>() else { return };
            match self.read_exact(n, deadline) {
                Some(data) => {
                    resp.body = data;
                    resp.complete = true;
                }
                None => resp.body = std::mem::take(&mut self.buf),
            }
        } else {
            resp.framing = Framing::Close;
            while !self.eof && Instant::now() < deadline {
                self.fill(deadline);
            }
            resp.body = std::mem::take(&mut self.buf);
            resp.complete = self.eof && !self.reset;
        }
    }
}

fn garbage(raw: Vec<u8>, interim: Vec<u16>) -> Response {
    Response {
        version: String::new(),
        status: 0,
        reason: Vec::new(),
        headers: Vec::new(),
        body: Vec::new(),
        framing: Framing::None,
        complete: false,
        interim,
        raw_head: raw,
    }
}

fn parse_head(head: &[u8]) -> Option<Response> {
    let text = &head[..head.len() - 4];
    let mut lines = text.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next()?;
    if status_line.len() < 12 || !status_line.starts_with(b"HTTP/") || status_line[8] != b' ' {
        return None;
    }
    let code = std::str::from_utf8(&status_line[9..12]).ok()?.parse::<u16>().ok()?;
    if status_line.len() > 12 && status_line[12] != b' ' {
        return None;
    }
    let reason = status_line.get(13..).unwrap_or_default().to_vec();
    let mut headers = Vec::new();
    for line in lines {
        if let Some(i) = line.iter().position(|&b| b == b':') {
            headers.push((trim(&line[..i]).to_vec(), trim(&line[i + 1..]).to_vec()));
        }
    }
    Some(Response {
        version: latin1(&status_line[..8]),
        status: code,
        reason,
        headers,
        body: Vec::new(),
        framing: Framing::None,
        complete: false,
        interim: Vec::new(),
        raw_head: head.to_vec(),
    })
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !matches!(c, b' ' | b'\t')).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !matches!(c, b' ' | b'\t')).map_or(start, |i| i + 1);
    &b[start..end]
}

/// The first position of `needle` in `hay`.
#[must_use]
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Send `data` on a new connection and read up to `n` responses.
///
/// Returns the responses, what the connection did after the last one (or
/// instead of one), and the connection. With `half_close_after`, when no
/// response came within that time the sending side is shut down (the server
/// reads end-of-file) and reading goes on until `timeout`.
///
/// # Errors
/// The connection could not be made.
pub fn exchange(
    addr: SocketAddr,
    data: &[u8],
    n: usize,
    timeout: Duration,
    head_request: bool,
    half_close_after: Option<Duration>,
) -> io::Result<(Vec<Response>, State, Conn)> {
    let mut conn = Conn::connect(addr)?;
    // A failed send (the server closed early) still lets us read what it sent.
    conn.send(data);
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut state = State::Open;
    let mut half_closed = false;
    while out.len() < n {
        let now = Instant::now();
        if now >= deadline {
            state = State::Timeout;
            break;
        }
        let mut wait = deadline - now;
        if let (Some(h), false) = (half_close_after, half_closed) {
            wait = wait.min(h);
        }
        match conn.read_response(wait, head_request) {
            Some(r) => {
                let garbage = r.status == 0;
                out.push(r);
                if conn.eof {
                    state = State::Closed;
                }
                if garbage || conn.eof {
                    break;
                }
            }
            None if conn.eof => {
                state = State::Closed;
                break;
            }
            None if half_close_after.is_some() && !half_closed => {
                conn.shutdown_write();
                half_closed = true;
            }
            None => {
                state = State::Timeout;
                break;
            }
        }
    }
    Ok((out, state, conn))
}

/// Build a request: request line, `Host: localhost` unless `headers` has a
/// Host (pass `("Host", "")`-less raw bytes yourself to omit it), the
/// headers, an empty line and the body.
#[must_use]
pub fn build_request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8], version: &str) -> Vec<u8> {
    let mut out = format!("{method} {target} {version}\r\n").into_bytes();
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        out.extend_from_slice(b"Host: localhost\r\n");
    }
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// `body` in chunked encoding, cut into pieces of the given sizes (cycled),
/// then the last chunk, `trailers` (complete field lines) and the final CRLF.
#[must_use]
pub fn chunked(body: &[u8], sizes: &[usize], trailers: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut k = 0;
    while i < body.len() {
        let n = sizes.get(k % sizes.len().max(1)).copied().unwrap_or(7).max(1);
        k += 1;
        let piece = &body[i..(i + n).min(body.len())];
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
        i += piece.len();
    }
    out.extend_from_slice(b"0\r\n");
    out.extend_from_slice(trailers);
    out.extend_from_slice(b"\r\n");
    out
}

/// One GET with `Connection: close` on a new connection.
#[must_use]
pub fn simple_get(addr: SocketAddr, target: &str, timeout: Duration) -> Option<Response> {
    let req = build_request("GET", target, &[("Connection", "close")], b"", "HTTP/1.1");
    let (mut resps, _, _) = exchange(addr, &req, 1, timeout, false, None).ok()?;
    resps.pop()
}
