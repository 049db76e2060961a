//! The bridge between hyper's async bodies and the spec's blocking ones.
//!
//! - [`BodyReader`]: a blocking [`Read`] over hyper's request body, used as
//!   the source of `wsgi.input`. It pulls a frame only when the application
//!   reads, so `Expect: 100-continue` is answered at the first read (HTTP-1)
//!   and at most one frame is buffered.
//! - [`ChannelSink`]: the [`ResponseSink`] an application thread writes the
//!   response into; the async side receives the head through a oneshot and
//!   the body through a channel of one chunk (backpressure, BODY-1).
//! - [`ResponseBody`]: the `http_body::Body` hyper writes out.

use std::io::{self, Read};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderName};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use crate::sendfile::{FileQueue, ResponseFiles};
use wsgi_spec::driver::{Framing, ResponseHead};
use wsgi_spec::run::ResponseSink;

/// The error type of boxed errors crossing the bridge.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A blocking reader over an async request body.
pub(crate) struct BodyReader<B> {
    body: Pin<Box<B>>,
    handle: Handle,
    chunk: Bytes,
    done: bool,
}

impl<B> BodyReader<B>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    pub(crate) fn new(body: B, handle: Handle) -> Self {
        let done = body.is_end_stream();
        BodyReader { body: Box::pin(body), handle, chunk: Bytes::new(), done }
    }
}

impl<B> Read for BodyReader<B>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            if self.done || out.is_empty() {
                return Ok(0);
            }
            let body = &mut self.body;
            // Runs on an application thread, never on a runtime thread.
            let frame = self.handle.block_on(std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)));
            match frame {
                None => self.done = true,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.chunk = data;
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Err(io::Error::new(io::ErrorKind::ConnectionAborted, e.into()));
                }
            }
        }
        let n = out.len().min(self.chunk.len());
        out[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

/// What the application thread hands the async side first.
pub(crate) enum Start {
    /// The whole response is known: head and complete body.
    Complete(ResponseHead, Bytes, Option<Arc<ResponseFiles>>),
    /// The head; the body follows through the channel.
    Streaming(ResponseHead, mpsc::Receiver<Result<Bytes, BoxError>>, Option<Arc<ResponseFiles>>),
}

/// The response sink of one request, living on an application thread.
pub(crate) struct ChannelSink {
    start: Option<oneshot::Sender<Start>>,
    /// A head waiting for its first chunk, to send both at once.
    held: Option<ResponseHead>,
    tx: Option<mpsc::Sender<Result<Bytes, BoxError>>>,
    /// Response headers to copy for the access log.
    capture: Option<(Vec<HeaderName>, Arc<Mutex<HeaderMap>>)>,
    /// The connection's queue, when it sends file bodies with `sendfile(2)`.
    connection_files: Option<Arc<FileQueue>>,
    /// This response's file tokens, made when a file body comes.
    files: Option<Arc<ResponseFiles>>,
}

impl ChannelSink {
    pub(crate) fn new(start: oneshot::Sender<Start>, connection_files: Option<Arc<FileQueue>>) -> Self {
        ChannelSink { start: Some(start), held: None, tx: None, capture: None, connection_files, files: None }
    }

    /// Copy these response headers, when the head is sent, into the
    /// returned map.
    pub(crate) fn capture_headers(&mut self, names: Vec<HeaderName>) -> Option<Arc<Mutex<HeaderMap>>> {
        if names.is_empty() {
            return None;
        }
        let map = Arc::new(Mutex::new(HeaderMap::new()));
        self.capture = Some((names, Arc::clone(&map)));
        Some(map)
    }

    fn gone() -> io::Error {
        io::Error::new(io::ErrorKind::BrokenPipe, "client disconnected")
    }

    fn send_start(&mut self, start: Start) -> io::Result<()> {
        let tx = self.start.take().ok_or_else(Self::gone)?;
        tx.send(start).map_err(|_| Self::gone())
    }

    fn open_stream(&mut self, head: ResponseHead) -> io::Result<()> {
        let (tx, rx) = mpsc::channel(1);
        self.tx = Some(tx);
        let files = self.files.clone();
        self.send_start(Start::Streaming(head, rx, files))
    }
}

impl ResponseSink for ChannelSink {
    fn send_file(&mut self, mut file: wsgi_spec::FileBody) -> io::Result<()> {
        match &self.connection_files {
            Some(connection) => {
                let files = Arc::new(ResponseFiles::new(Arc::clone(connection)));
                self.files = Some(Arc::clone(&files));
                for token in files.tokens(&file)? {
                    self.send_data(token)?;
                }
            }
            None => {
                while let Some(block) = file.read_block()? {
                    self.send_data(block)?;
                }
            }
        }
        Ok(())
    }

    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        if let Some((names, map)) = &self.capture {
            let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
            for name in names {
                for v in head.headers.get_all(name) {
                    map.append(name.clone(), v.clone());
                }
            }
        }
        // Hold it: the driver sends the first chunk right after, and a
        // response whose only chunk completes it goes out in one piece.
        self.held = Some(head);
        Ok(())
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        if let Some(head) = self.held.take() {
            if head.framing == Framing::Length(data.len() as u64) {
                let files = self.files.clone();
                return self.send_start(Start::Complete(head, data, files));
            }
            self.open_stream(head)?;
        }
        match &self.tx {
            Some(tx) => tx.blocking_send(Ok(data)).map_err(|_| Self::gone()),
            // Complete response already sent: the driver never sends more.
            None => Ok(()),
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        if let Some(head) = self.held.take() {
            return self.send_start(Start::Complete(head, Bytes::new(), None));
        }
        // Dropping the sender ends the body.
        self.tx = None;
        Ok(())
    }

    fn abort(&mut self, error: &wsgi_spec::Error) {
        if let Some(head) = self.held.take() {
            // Head never left: open the stream only to break it.
            if self.open_stream(head).is_err() {
                return;
            }
        }
        if let Some(tx) = self.tx.take() {
            // Let the connection take and write what was sent before the
            // error breaks it, so the client sees the partial response cut
            // off rather than nothing (bounded: this is the error path).
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
            while tx.capacity() < tx.max_capacity() && std::time::Instant::now() < deadline && !tx.is_closed() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
            let _ = tx.blocking_send(Err(error.to_string().into()));
        }
    }
}

/// The body of a response from a spec application, as an `http_body::Body`.
#[derive(Debug)]
pub struct ResponseBody(BodyKind, Option<Arc<ResponseFiles>>);

#[derive(Debug)]
enum BodyKind {
    // Bytes known up front (`None` once taken).
    Full(Option<Bytes>),
    // Chunks from the application thread; the length when declared.
    Stream { rx: mpsc::Receiver<Result<Bytes, BoxError>>, remaining: Option<u64> },
}

impl ResponseBody {
    pub(crate) fn full(b: Bytes) -> Self {
        ResponseBody(BodyKind::Full(Some(b)), None)
    }
    pub(crate) fn stream(rx: mpsc::Receiver<Result<Bytes, BoxError>>, len: Option<u64>) -> Self {
        ResponseBody(BodyKind::Stream { rx, remaining: len }, None)
    }
    /// Its chunks may be file tokens from `files` (see [`crate::sendfile`]).
    pub(crate) fn with_files(mut self, files: Option<Arc<ResponseFiles>>) -> Self {
        self.1 = files;
        self
    }
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let ResponseBody(kind, files) = self.get_mut();
        let files = files.as_deref();
        let handed = |data: Bytes| {
            if let Some(files) = files {
                files.release(&data);
            }
            Frame::data(data)
        };
        match kind {
            BodyKind::Full(b) => Poll::Ready(b.take().filter(|b| !b.is_empty()).map(|b| Ok(handed(b)))),
            BodyKind::Stream { rx, remaining } => match rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    if let Some(r) = remaining.as_mut() {
                        *r = r.saturating_sub(data.len() as u64);
                    }
                    Poll::Ready(Some(Ok(handed(data))))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            BodyKind::Full(b) => b.as_ref().is_none_or(Bytes::is_empty),
            BodyKind::Stream { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            BodyKind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            BodyKind::Stream { remaining: Some(r), .. } => SizeHint::with_exact(*r),
            BodyKind::Stream { .. } => SizeHint::default(),
        }
    }
}
