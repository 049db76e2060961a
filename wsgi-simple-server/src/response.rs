//! The write half of a connection: response heads, body framing, and the
//! [`ResponseSink`] that `wsgi_spec::run::run` delivers a response into.
//!
//! The head comes from `driver::ResponseHead` as it is (status, reason,
//! the application's headers in order, HTTP-2); this module adds `Date` and
//! `Server` unless the application sent them, the framing header the
//! driver chose (SR-6, CL-3) and `Connection` when the connection's fate
//! needs saying. Each chunk is flushed to the socket before
//! [`ResponseSink::send_data`] returns, so the application makes its next
//! chunk only once the previous one is on its way (BODY-1, STRM-1).

use std::io::{self, BufWriter, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{DATE, SERVER};
use wsgi_spec::driver::{Framing, ResponseHead};
use wsgi_spec::run::ResponseSink;

use crate::body::lock;
use crate::request::{BodyLength, Refusal, RequestHead};

/// The write half of a connection and what the current response decided.
#[derive(Debug)]
pub(crate) struct Outgoing {
    out: BufWriter<TcpStream>,
    /// The current request asked for `Expect: 100-continue` and neither a
    /// `100 Continue` nor the final head went out yet.
    continue_pending: bool,
    /// The current response's head was written.
    head_sent: bool,
    /// The connection closes after the current response.
    close_after: bool,
    /// An HTTP/1.0 client asked for keep-alive: say yes in the head.
    keep_alive_10: bool,
    /// How the current response's body is framed, once the head was sent.
    framing: Framing,
    /// Writing failed or the response was aborted: the socket is done.
    dead: bool,
}

impl Outgoing {
    pub(crate) fn new(stream: TcpStream) -> Outgoing {
        Outgoing {
            out: BufWriter::with_capacity(16 * 1024, stream),
            continue_pending: false,
            head_sent: false,
            close_after: false,
            keep_alive_10: false,
            framing: Framing::NoBody,
            dead: false,
        }
    }

    /// Get ready for the response to `head`; `force_close` when the
    /// connection closes after this response whatever the client asked
    /// (the server shuts down, or keep-alive is off).
    pub(crate) fn begin(&mut self, head: &RequestHead, force_close: bool) {
        self.continue_pending = head.expect_continue && head.body != BodyLength::Empty;
        self.head_sent = false;
        self.close_after = head.close || force_close;
        self.keep_alive_10 = head.keep_alive_10;
        self.framing = Framing::NoBody;
    }

    /// Send `100 Continue` if the client waits for it and no final head
    /// went out (HTTP-1). Only the first call does anything.
    ///
    /// # Errors
    /// The client is gone.
    pub(crate) fn send_continue(&mut self) -> io::Result<()> {
        if !std::mem::take(&mut self.continue_pending) || self.head_sent || self.dead {
            return Ok(());
        }
        let sent = self.out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").and_then(|()| self.out.flush());
        self.check(sent)
    }

    /// The connection must close after the current response.
    pub(crate) fn close_after_response(&mut self) {
        self.close_after = true;
    }

    /// True when the connection cannot carry another request.
    pub(crate) fn will_close(&self) -> bool {
        self.close_after || self.dead
    }

    /// True when the socket failed or was shut down.
    pub(crate) fn is_dead(&self) -> bool {
        self.dead
    }

    /// Answer a request the server refuses itself, then the connection
    /// closes: a small plain-text response.
    ///
    /// # Errors
    /// The client is gone.
    pub(crate) fn refuse(&mut self, refusal: Refusal, server: &str) -> io::Result<()> {
        let reason = refusal.status.canonical_reason().unwrap_or("Bad Request");
        let body = format!("{reason}: {}\n", refusal.reason);
        let head = format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\
             date: {}\r\nserver: {server}\r\nconnection: close\r\n\r\n",
            refusal.status.as_str(),
            body.len(),
            http_date(SystemTime::now()),
        );
        self.close_after = true;
        let sent = self
            .out
            .write_all(head.as_bytes())
            .and_then(|()| self.out.write_all(body.as_bytes()))
            .and_then(|()| self.out.flush());
        self.check(sent)
    }

    /// Mark the socket dead when `result` failed.
    fn check(&mut self, result: io::Result<()>) -> io::Result<()> {
        if result.is_err() {
            self.dead = true;
        }
        result
    }

    fn write_head(&mut self, head: &ResponseHead, server: &str) -> io::Result<()> {
        if std::mem::take(&mut self.continue_pending) {
            // The client may still be waiting to send the body: the only
            // safe end for the connection is to close it.
            self.close_after = true;
        }
        if head.framing == Framing::CloseDelimited {
            self.close_after = true;
        }
        self.framing = head.framing;
        self.head_sent = true;

        let mut buf = Vec::with_capacity(512);
        buf.extend_from_slice(b"HTTP/1.1 ");
        buf.extend_from_slice(head.status.code().as_str().as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(head.status.reason());
        buf.extend_from_slice(b"\r\n");
        for (name, value) in &head.headers {
            field(&mut buf, name.as_str().as_bytes(), value.as_bytes());
        }
        if !head.headers.contains_key(DATE) {
            field(&mut buf, b"date", http_date(SystemTime::now()).as_bytes());
        }
        if !head.headers.contains_key(SERVER) {
            field(&mut buf, b"server", server.as_bytes());
        }
        if head.framing == Framing::Chunked {
            field(&mut buf, b"transfer-encoding", b"chunked");
        }
        if self.close_after {
            field(&mut buf, b"connection", b"close");
        } else if self.keep_alive_10 {
            field(&mut buf, b"connection", b"keep-alive");
        }
        buf.extend_from_slice(b"\r\n");
        // Buffered: it leaves with the first chunk, or at the end.
        let written = self.out.write_all(&buf);
        self.check(written)
    }

    fn write_data(&mut self, data: &[u8]) -> io::Result<()> {
        let written = match self.framing {
            Framing::Chunked => self
                .out
                .write_all(format!("{:x}\r\n", data.len()).as_bytes())
                .and_then(|()| self.out.write_all(data))
                .and_then(|()| self.out.write_all(b"\r\n")),
            // The driver never hands over bytes for a bodiless response.
            Framing::NoBody => Ok(()),
            _ => self.out.write_all(data),
        };
        let flushed = written.and_then(|()| self.out.flush());
        self.check(flushed)
    }

    fn write_end(&mut self) -> io::Result<()> {
        let written = if self.framing == Framing::Chunked { self.out.write_all(b"0\r\n\r\n") } else { Ok(()) };
        let flushed = written.and_then(|()| self.out.flush());
        self.check(flushed)
    }

    /// Make an unfinished response visibly incomplete: no last chunk, the
    /// connection shut down (EXC-3, CL-2).
    fn abort(&mut self) {
        let _ = self.out.flush();
        let _ = self.out.get_ref().shutdown(Shutdown::Both);
        self.dead = true;
    }
}

fn field(buf: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    buf.extend_from_slice(name);
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value);
    buf.extend_from_slice(b"\r\n");
}

/// The [`ResponseSink`] of one request: writes straight to the socket.
#[derive(Debug)]
pub(crate) struct WireSink {
    out: Arc<Mutex<Outgoing>>,
    server: Arc<str>,
}

impl WireSink {
    pub(crate) fn new(out: Arc<Mutex<Outgoing>>, server: Arc<str>) -> WireSink {
        WireSink { out, server }
    }
}

impl ResponseSink for WireSink {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        lock(&self.out).write_head(&head, &self.server)
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        lock(&self.out).write_data(&data)
    }

    fn finish(&mut self) -> io::Result<()> {
        lock(&self.out).write_end()
    }

    fn abort(&mut self, _error: &wsgi_spec::Error) {
        lock(&self.out).abort();
    }
}

/// An IMF-fixdate (RFC 9110 5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let (hour, minute, second) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Civil date from a day count (H. Hinnant's algorithm), days since 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {hour:02}:{minute:02}:{second:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize]
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::http_date;

    #[test]
    fn dates() {
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(UNIX_EPOCH + Duration::from_secs(784_111_777)), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(UNIX_EPOCH + Duration::from_secs(951_782_400)), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(UNIX_EPOCH + Duration::from_secs(4_102_444_799)), "Thu, 31 Dec 2099 23:59:59 GMT");
    }
}
