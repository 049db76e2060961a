//! [`GuardedIo`]: the connection as hyper sees it, with every incoming byte
//! checked by the strict request [`Guard`](crate::guard::Guard) first.
//!
//! Bytes reach hyper only once validated. When a request is refused, hyper
//! sees the end of the input (it finishes any response in progress and
//! closes), and the refusal is written when it shuts the connection down:
//! the app is never called and earlier pipelined responses are not lost.
//! An HTTP/2 connection preface switches the guard off (h2 frames are
//! checked by hyper's h2 codec).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::guard::{Guard, Limits, Reject};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The first read size of a connection.
const READ_MIN: usize = 8 * 1024;
/// The largest read size (a request body streaming in).
const READ_MAX: usize = 256 * 1024;

/// A stream whose reads pass through the request guard.
pub(crate) struct GuardedIo<T: AsyncRead + AsyncWrite + Unpin> {
    inner: T,
    guard: Option<Guard>,
    buf: BytesMut,
    /// Validated bytes at the front of `buf`, not yet handed to hyper.
    ready: usize,
    reject: Option<Reject>,
    /// The refusal response still to write.
    refusal: Bytes,
    eof: bool,
    /// Still looking at the first bytes for an HTTP/2 preface.
    sniffing: bool,
    /// Called once with a refusal, for the error log.
    on_reject: Option<Box<dyn FnOnce(Reject) + Send>>,
    /// How much to read at once: doubles while reads fill it (a large
    /// body arriving), up to [`READ_MAX`].
    read_size: usize,
    /// Write coalescing (see [`GuardedIo::poll_write_vectored`]): this
    /// write was already put off once, so it goes out now.
    write_deferred: bool,
    /// The file ranges of the file-body tokens hyper will write (plain
    /// HTTP/1 connections; see [`crate::sendfile`]).
    files: Option<std::sync::Arc<crate::sendfile::FileQueue>>,
    /// How long a request head may take, from when the connection starts
    /// waiting for it (an idle keep-alive connection included).
    head_timeout: Option<std::time::Duration>,
    /// The head timer: armed for one timeout while a head is awaited, and
    /// looked at again only when it fires (see
    /// [`poll_head_deadline`](GuardedIo::poll_head_deadline)).
    head_timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The guard's count of completed heads when the timer was armed.
    head_armed_for: u64,
    /// The waker the timer was registered with.
    head_waker: Option<Waker>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> GuardedIo<T> {
    /// Send file-body tokens from `files` with `sendfile(2)`.
    pub(crate) fn set_files(&mut self, files: std::sync::Arc<crate::sendfile::FileQueue>) {
        self.files = Some(files);
    }

    pub(crate) fn new(inner: T, limits: Limits, allow_h2: bool) -> Self {
        GuardedIo {
            inner,
            guard: Some(Guard::new(limits)),
            buf: BytesMut::with_capacity(8 * 1024),
            ready: 0,
            reject: None,
            refusal: Bytes::new(),
            eof: false,
            sniffing: allow_h2,
            on_reject: None,
            write_deferred: false,
            files: None,
            read_size: READ_MIN,
            head_timeout: None,
            head_timer: None,
            head_armed_for: 0,
            head_waker: None,
        }
    }

    /// Close an HTTP/1 connection whose request head (or the wait for the
    /// next one on an idle keep-alive connection) takes longer than
    /// `timeout`.
    pub(crate) fn head_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.head_timeout = Some(timeout);
        self
    }

    /// The read found nothing: while a request head is awaited, make sure
    /// the connection is woken when the head timeout may have passed, and
    /// fail the read once it has.
    ///
    /// The timer is coarse on purpose, so that a busy connection neither
    /// reads the clock nor touches the timer for each request: it is armed
    /// for one timeout while head number `n` is awaited, and when it fires,
    /// the connection has timed out if head `n` is still awaited; if heads
    /// completed meanwhile, it is armed again for the head awaited now. A
    /// head (or an idle keep-alive connection) is therefore given at least
    /// the timeout and at most twice it.
    fn poll_head_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(timeout) = self.head_timeout else { return Poll::Pending };
        let Some(heads) = self.guard.as_ref().and_then(Guard::awaiting_head) else {
            return Poll::Pending;
        };
        let timed_out = || Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "request head timed out")));
        let timer = match &mut self.head_timer {
            Some(timer) => {
                if !timer.is_elapsed() && self.head_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    // Armed, and it wakes this task: nothing to do.
                    return Poll::Pending;
                }
                timer
            }
            None => {
                self.head_armed_for = heads;
                self.head_timer.insert(Box::pin(tokio::time::sleep(timeout)))
            }
        };
        // A fired timer (seen elapsed, or found fired when polling registers
        // this task's waker): timed out if the same head is still awaited,
        // else armed again for the head awaited now.
        while std::future::Future::poll(timer.as_mut(), cx).is_ready() {
            if self.head_armed_for == heads {
                return timed_out();
            }
            timer.as_mut().reset(tokio::time::Instant::now() + timeout);
            self.head_armed_for = heads;
        }
        self.head_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    pub(crate) fn on_reject(mut self, f: impl FnOnce(Reject) + Send + 'static) -> Self {
        self.on_reject = Some(Box::new(f));
        self
    }

    fn refuse(&mut self, reject: Reject) {
        let reason = reject.reason;
        let status = reject.status;
        let phrase =
            http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Bad Request");
        let body = format!("{phrase}: {reason}\n");
        let head = format!(
            "HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        // A refusal in the body cannot be answered (a response may be under
        // way): the connection is just closed.
        if !reject.in_body {
            self.refusal = Bytes::from(head + &body);
        }
        self.reject = Some(reject);
        if let Some(f) = self.on_reject.take() {
            f(reject);
        }
    }

    /// Read until the first bytes tell whether this is an HTTP/2 preface
    /// (the bytes stay buffered for hyper). False at once when HTTP/2 is
    /// off.
    pub(crate) async fn sniff_h2(&mut self) -> io::Result<bool> {
        std::future::poll_fn(|cx| {
            while self.sniffing {
                if self.eof {
                    return Poll::Ready(Ok(false));
                }
                if self.buf.capacity() - self.buf.len() < 1024 {
                    self.buf.reserve(8 * 1024);
                }
                let n = {
                    let spare = self.buf.spare_capacity_mut();
                    let mut rb = ReadBuf::uninit(spare);
                    std::task::ready!(Pin::new(&mut self.inner).poll_read(cx, &mut rb))?;
                    rb.filled().len()
                };
                if n == 0 {
                    self.eof = true;
                    continue;
                }
                // SAFETY: `poll_read` initialised the first `n` bytes of the spare capacity.
                unsafe { self.buf.set_len(self.buf.len() + n) };
                self.check();
            }
            Poll::Ready(Ok(self.guard.is_none()))
        })
        .await
    }

    /// Run the guard over the unvalidated bytes.
    fn check(&mut self) {
        if self.sniffing {
            let n = self.buf.len().min(H2_PREFACE.len());
            if self.buf[..n] != H2_PREFACE[..n] {
                self.sniffing = false;
            } else if n == H2_PREFACE.len() {
                // HTTP/2 prior knowledge: pass everything through.
                self.sniffing = false;
                self.guard = None;
                self.ready = self.buf.len();
                return;
            } else {
                return; // need more bytes to tell
            }
        }
        let Some(guard) = &mut self.guard else {
            self.ready = self.buf.len();
            return;
        };
        // One call validates at most one message part; keep going so that a
        // refusal in bytes already received is found without more input.
        loop {
            match guard.advance(&self.buf[self.ready..]) {
                Ok(0) => return,
                Ok(n) => self.ready += n,
                Err(r) => {
                    self.refuse(r);
                    return;
                }
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready > 0 {
                let n = this.ready.min(out.remaining());
                out.put_slice(&this.buf[..n]);
                this.buf.advance(n);
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            if let Some(r) = &this.reject {
                if r.in_body {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, r.reason)));
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                if this.sniffing && !this.buf.is_empty() {
                    // A short prefix of the preface, then EOF: let the guard judge it.
                    this.sniffing = false;
                    this.check();
                    continue;
                }
                return Poll::Ready(Ok(()));
            }
            if this.buf.capacity() - this.buf.len() < this.read_size / 2 {
                this.buf.reserve(this.read_size);
            }
            let (n, full) = {
                let spare = this.buf.spare_capacity_mut();
                let room = spare.len();
                let mut rb = ReadBuf::uninit(spare);
                if Pin::new(&mut this.inner).poll_read(cx, &mut rb)?.is_pending() {
                    return this.poll_head_deadline(cx);
                }
                (rb.filled().len(), rb.filled().len() == room)
            };
            if full && this.read_size < READ_MAX {
                this.read_size *= 2;
            }
            if n == 0 {
                this.eof = true;
                if this.guard.as_ref().is_some_and(|g| !g.is_idle()) {
                    tracing::debug!(target: "wsgi_server::http", "client closed the connection mid-request");
                }
                continue;
            }
            // SAFETY: `poll_read` initialised the first `n` bytes of the spare capacity.
            unsafe { this.buf.set_len(this.buf.len() + n) };
            this.check();
        }
    }
}

/// Write coalescing: a response that took long to make asks for its first
/// write to be put off by one scheduler round (see `GuardedIo::defer_write`).
/// A flag of the runtime thread: the write follows the request's handling
/// on the same thread, in the same or the next poll of its connection.
pub(crate) mod coalesce {
    use std::cell::Cell;
    use std::time::Duration;

    /// Responses made in less time than this go out at once: the peer is
    /// likely still busy with the previous one, and waking it is cheap.
    pub(crate) const SLOW: Duration = Duration::from_micros(20);

    thread_local! {
        static DEFER_NEXT: Cell<bool> = const { Cell::new(false) };
    }

    /// The response being made on this thread took long: put its first
    /// write off.
    pub(crate) fn request() {
        DEFER_NEXT.with(|d| d.set(true));
    }

    /// Whether the next write is to be put off (and clear the request).
    pub(crate) fn take() -> bool {
        DEFER_NEXT.with(|d| d.replace(false))
    }

    /// Tells whether making a response took [`SLOW`] or more.
    ///
    /// Every request asks, so on x86-64 it reads the CPU's time-stamp
    /// counter rather than the clock (a clock read costs tens of
    /// nanoseconds in a virtual machine). The counter's rate is learnt
    /// from the clock over the first 50 ms it is used; until then, and on
    /// other CPUs, the clock is read. A counter that is off (a VM moved to
    /// another host) only changes which responses are coalesced.
    pub(crate) enum Stopwatch {
        /// Started at this counter value.
        #[cfg(target_arch = "x86_64")]
        Ticks(u64),
        /// Started at this time.
        Clock(std::time::Instant),
    }

    #[cfg(target_arch = "x86_64")]
    mod tsc {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::OnceLock;
        use std::time::{Duration, Instant};

        /// Counter ticks in [`super::SLOW`]; 0 until learnt.
        static PER_SLOW: AtomicU64 = AtomicU64::new(0);
        /// The first reading of both, to learn the rate from.
        static FIRST: OnceLock<(Instant, u64)> = OnceLock::new();

        pub(super) fn ticks() -> u64 {
            // SAFETY: RDTSC exists on every x86-64 CPU and only reads the
            // counter (the intrinsic is safe in newer Rust).
            #[allow(unused_unsafe)]
            unsafe {
                core::arch::x86_64::_rdtsc()
            }
        }

        pub(super) fn per_slow() -> u64 {
            PER_SLOW.load(Ordering::Relaxed)
        }

        /// Learn the rate once 50 ms passed since the first reading.
        pub(super) fn learn(now: Instant) {
            let t = ticks();
            let &(t0, c0) = FIRST.get_or_init(|| (now, t));
            let wall = now.saturating_duration_since(t0);
            if wall >= Duration::from_millis(50) && t > c0 {
                let per = u128::from(t - c0) * super::SLOW.as_nanos() / wall.as_nanos();
                PER_SLOW.store(u64::try_from(per).unwrap_or(u64::MAX).max(1), Ordering::Relaxed);
            }
        }
    }

    impl Stopwatch {
        /// Start measuring.
        pub(crate) fn start() -> Stopwatch {
            #[cfg(target_arch = "x86_64")]
            {
                if tsc::per_slow() != 0 {
                    return Stopwatch::Ticks(tsc::ticks());
                }
                let now = std::time::Instant::now();
                tsc::learn(now);
                Stopwatch::Clock(now)
            }
            #[cfg(not(target_arch = "x86_64"))]
            Stopwatch::Clock(std::time::Instant::now())
        }

        /// [`SLOW`] or more passed since the start.
        pub(crate) fn is_slow(&self) -> bool {
            match self {
                #[cfg(target_arch = "x86_64")]
                // A counter read on another core may be slightly behind:
                // wrapped, it counts as slow, which is harmless.
                Stopwatch::Ticks(t) => tsc::ticks().wrapping_sub(*t) >= tsc::per_slow(),
                Stopwatch::Clock(t) => t.elapsed() >= SLOW,
            }
        }

        /// If slow, ask for the next write to be put off.
        pub(crate) fn request_if_slow(&self) {
            if self.is_slow() {
                request();
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> GuardedIo<T> {
    /// Put a write off once, when [`coalesce`] asks for it: the task is
    /// woken at once, so it runs again after the other tasks already queued
    /// on this runtime thread, and the responses made in one scheduler
    /// round go out back to back. A peer waiting in `epoll_wait` (a proxy,
    /// a load generator) is then woken once per round instead of once per
    /// response: measured on loopback with a Flask app, the server's kernel
    /// time per request halved (21 to 10 µs). The cost is one more poll of
    /// the connection task (about 0.5 µs), which is why quick responses do
    /// not ask for it.
    fn defer_write(&mut self, cx: &mut Context<'_>) -> bool {
        if self.write_deferred {
            self.write_deferred = false;
            return false;
        }
        if !coalesce::take() {
            return false;
        }
        self.write_deferred = true;
        cx.waker().wake_by_ref();
        true
    }

    // (write side)
    fn poll_write_refusal(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.refusal.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.refusal))?;
            if n == 0 {
                self.refusal = Bytes::new();
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.refusal.advance(n);
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }
}

impl<T: crate::sendfile::Transport> AsyncWrite for GuardedIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.defer_write(cx) {
            return Poll::Pending;
        }
        if crate::sendfile::token_offset(data).is_some() {
            return crate::sendfile::poll_write_token(&mut this.inner, this.files.as_deref(), cx, data);
        }
        Pin::new(&mut this.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.defer_write(cx) {
            return Poll::Pending;
        }
        crate::sendfile::poll_write_vectored(&mut this.inner, this.files.as_deref(), cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = std::task::ready!(this.poll_write_refusal(cx)) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Drop for GuardedIo<T> {
    fn drop(&mut self) {
        // Best effort when hyper ended without shutting down: one
        // non-blocking write attempt of a pending refusal.
        if !self.refusal.is_empty() {
            let mut cx = Context::from_waker(Waker::noop());
            let _ = self.poll_write_refusal(&mut cx);
        }
    }
}
