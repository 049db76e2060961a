//! `sendfile(2)` for file bodies on plain HTTP/1 connections (TCP and Unix
//! sockets).
//!
//! hyper owns a connection's write path: it frames the body and writes the
//! chunks it is given. So a file goes through hyper as placeholder chunks,
//! *tokens*: slices of a static block that nothing reads or writes, each
//! standing for one range of the file, while the connection's
//! [`FileQueue`] holds those ranges in order. When hyper asks the
//! connection ([`GuardedIo`](crate::io::GuardedIo)) to write a token, the
//! connection sends the range it stands for with `sendfile(2)` instead and
//! reports the bytes sent as written; hyper never sees the file's bytes,
//! and neither does user space.
//!
//! TLS and HTTP/2 connections have no queue: their sinks read the file in
//! blocks as before (the spec's default `ResponseSink::send_file`). A token
//! that reaches a connection without a queue is an error, never bytes.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, Interest};

/// The largest range one token stands for.
pub(crate) const TOKEN_MAX: usize = 256 * 1024;

/// What tokens are slices of: zeros in `.bss`, never touched, so they take
/// no memory.
static TOKENS: [u8; TOKEN_MAX] = [0; TOKEN_MAX];

/// Bytes sent with `sendfile(2)` by this process.
static SENT: AtomicU64 = AtomicU64::new(0);

/// Bytes of file bodies this process has sent with `sendfile(2)` so far
/// (the rest of a file body is read in blocks and written like any body).
#[must_use]
pub fn sendfile_bytes() -> u64 {
    SENT.load(Ordering::Relaxed)
}

/// Where `s` starts inside a token, if it is (part of) one.
pub(crate) fn token_offset(s: &[u8]) -> Option<usize> {
    let base = TOKENS.as_ptr() as usize;
    let at = (s.as_ptr() as usize).checked_sub(base)?;
    (!s.is_empty() && at < TOKEN_MAX).then_some(at)
}

/// One range of a file that one token stands for.
struct Segment {
    file: Arc<File>,
    offset: u64,
    len: usize,
}

/// The file ranges of the tokens a connection has been given and not yet
/// written, in the order hyper writes them (one response at a time).
#[derive(Default)]
pub(crate) struct FileQueue {
    segments: Mutex<VecDeque<Segment>>,
}

impl std::fmt::Debug for FileQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileQueue").finish_non_exhaustive()
    }
}

/// The file ranges of one response's tokens that hyper has not taken yet.
/// A range moves to the connection's [`FileQueue`] only when the response
/// body hands its token to hyper ([`ResponseFiles::release`]), so a body
/// dropped early (its connection gone) takes its ranges with it and the
/// connection's queue never holds a range whose token hyper will not write.
pub(crate) struct ResponseFiles {
    pending: Mutex<VecDeque<Segment>>,
    connection: Arc<FileQueue>,
}

impl std::fmt::Debug for ResponseFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFiles").finish_non_exhaustive()
    }
}

impl ResponseFiles {
    /// The ranges of a response on the connection whose queue is `connection`.
    pub(crate) fn new(connection: Arc<FileQueue>) -> ResponseFiles {
        ResponseFiles { pending: Mutex::new(VecDeque::new()), connection }
    }

    /// The token for the next `len` bytes (at most [`TOKEN_MAX`]) of `file`
    /// from `offset`.
    fn token(&self, file: &Arc<File>, offset: u64, len: usize) -> Bytes {
        let len = len.min(TOKEN_MAX);
        let mut q = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        q.push_back(Segment { file: Arc::clone(file), offset, len });
        Bytes::from_static(TOKENS.get(..len).unwrap_or_default())
    }

    /// The tokens for the whole of `body`'s range, made one at a time.
    pub(crate) fn tokens(self: &Arc<Self>, body: &wsgi_spec::FileBody) -> io::Result<Tokens> {
        Ok(Tokens {
            files: Arc::clone(self),
            file: Arc::new(body.file().try_clone()?),
            offset: body.offset(),
            left: body.len(),
        })
    }

    /// The body is handing `chunk` to hyper: if it is a token, its range
    /// goes to the connection's queue.
    pub(crate) fn release(&self, chunk: &[u8]) {
        if token_offset(chunk).is_none() {
            return;
        }
        let segment = self.pending.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
        if let Some(segment) = segment {
            self.connection.segments.lock().unwrap_or_else(PoisonError::into_inner).push_back(segment);
        }
    }
}

impl FileQueue {
    /// Send what remains of the token whose part `at..at + len` hyper is
    /// writing, with `sendfile(2)` on `io`.
    fn poll_send<T: Transport>(&self, io: &T, cx: &mut Context<'_>, at: usize, len: usize) -> Poll<io::Result<usize>> {
        let (file, offset, seg_len) = {
            let q = self.segments.lock().unwrap_or_else(PoisonError::into_inner);
            match q.front() {
                Some(s) => (Arc::clone(&s.file), s.offset, s.len),
                None => return Poll::Ready(Err(io::Error::other("a file chunk without its file"))),
            }
        };
        let len = len.min(seg_len.saturating_sub(at));
        let n = std::task::ready!(io.poll_sendfile(cx, &file, offset + at as u64, len))?;
        if n == 0 && len > 0 {
            // The file is shorter than its range now (truncated while being
            // sent): the response cannot be completed.
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file ended before its length")));
        }
        SENT.fetch_add(n as u64, Ordering::Relaxed);
        if at + n >= seg_len {
            self.segments.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
        }
        Poll::Ready(Ok(n))
    }
}

/// The tokens of one file body, in order.
pub(crate) struct Tokens {
    files: Arc<ResponseFiles>,
    file: Arc<File>,
    offset: u64,
    left: u64,
}

impl Iterator for Tokens {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.left == 0 {
            return None;
        }
        let len = usize::try_from(self.left).unwrap_or(usize::MAX).min(TOKEN_MAX);
        let token = self.files.token(&self.file, self.offset, len);
        self.offset += len as u64;
        self.left -= len as u64;
        Some(token)
    }
}

/// Write `bufs` on `io`, sending tokens with `sendfile(2)`: the buffers
/// before the first token are written as they are; a token at the front is
/// sent from its file.
pub(crate) fn poll_write_vectored<T: Transport>(
    io: &mut T,
    queue: Option<&FileQueue>,
    cx: &mut Context<'_>,
    bufs: &[io::IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    match bufs.iter().position(|b| token_offset(b).is_some()) {
        None => std::pin::Pin::new(io).poll_write_vectored(cx, bufs),
        Some(0) => poll_write_token(io, queue, cx, bufs.first().map_or(&[][..], |b| &b[..])),
        Some(k) => std::pin::Pin::new(io).poll_write_vectored(cx, bufs.get(..k).unwrap_or_default()),
    }
}

/// Send the token (part) `buf` with `sendfile(2)`.
pub(crate) fn poll_write_token<T: Transport>(
    io: &mut T,
    queue: Option<&FileQueue>,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    let (Some(queue), Some(at)) = (queue, token_offset(buf)) else {
        return Poll::Ready(Err(io::Error::other("a file chunk on a connection that cannot send files")));
    };
    queue.poll_send(io, cx, at, buf.len())
}

/// A connection's transport, and whether it can send a file with
/// `sendfile(2)`.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// True if [`poll_sendfile`](Transport::poll_sendfile) works.
    const SENDFILE: bool = false;

    /// Send up to `len` bytes of `file` from `offset`.
    fn poll_sendfile(&self, _cx: &mut Context<'_>, _file: &File, _offset: u64, _len: usize) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
    }
}

/// One non-blocking `sendfile(2)` call.
fn sendfile(socket: i32, file: &File, offset: u64, len: usize) -> io::Result<usize> {
    let mut off = libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: two open descriptors (the socket and the file, both borrowed
    // for the call) and a valid offset pointer; the kernel copies between
    // them and writes the new offset to `off`.
    let n = unsafe { libc::sendfile(socket, file.as_raw_fd(), &mut off, len) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

macro_rules! sendfile_transport {
    ($t:ty) => {
        impl Transport for $t {
            const SENDFILE: bool = true;

            fn poll_sendfile(
                &self,
                cx: &mut Context<'_>,
                file: &File,
                offset: u64,
                len: usize,
            ) -> Poll<io::Result<usize>> {
                loop {
                    std::task::ready!(self.poll_write_ready(cx))?;
                    match self.try_io(Interest::WRITABLE, || sendfile(self.as_raw_fd(), file, offset, len)) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        r => return Poll::Ready(r),
                    }
                }
            }
        }
    };
}

sendfile_transport!(tokio::net::TcpStream);
sendfile_transport!(tokio::net::UnixStream);

#[cfg(feature = "tls")]
impl Transport for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {}
