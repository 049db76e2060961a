//! Inline mode: the application runs on the runtime thread that serves the
//! connection, never on another thread.
//!
//! This is a documented trade (the model of bjoern and of Gunicorn's sync
//! worker, with the I/O still concurrent): no thread hop per request, and
//! with one runtime thread the app is never invoked concurrently
//! (`wsgi.multithread` is false), but while app code runs, the other
//! connections of that thread wait. To keep that bounded:
//! - the request body is read before the app is called (in memory up to
//!   1 MiB, spooled to an unlinked temporary file beyond), so `wsgi.input`
//!   never waits for the network;
//! - the response is produced one chunk at a time: each chunk is handed to
//!   the connection before the next is pulled (STRM-1); between chunks the
//!   task waits, without blocking, for the client to take them
//!   (backpressure), and other connections run.

use std::collections::VecDeque;
use std::io::{self, Seek, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName};
use http_body::Body as HttpBody;
use tokio::sync::mpsc;
use wsgi_spec::driver::ResponseHead;
use wsgi_spec::run::{ResponseSink, Running, Step};
use wsgi_spec::{FileBody, Input};

use crate::bridge::BoxError;

/// Body bytes produced per step: any chunk ends the step, so each one is
/// sent before the next is made (STRM-1).
pub(crate) const BUDGET: u64 = 1;
/// Request bodies larger than this are spooled to a temporary file.
const MEMORY_MAX: u64 = 1 << 20;

/// What the app produced and the async side has not sent yet.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) head: Option<ResponseHead>,
    /// The first chunk not sent yet (before any of `pending`).
    first: Option<Bytes>,
    pending: VecDeque<Bytes>,
    file: Option<FileBody>,
    error: Option<String>,
}

impl State {
    /// Keep a chunk for sending.
    fn push(&mut self, data: Bytes) {
        // Most responses are one chunk: no queue allocation for those.
        if self.pending.is_empty() && self.first.is_none() {
            self.first = Some(data);
        } else {
            self.pending.push_back(data);
        }
    }

    /// The app's body is a file, not sent yet.
    pub(crate) fn has_file(&self) -> bool {
        self.file.is_some()
    }
}

thread_local! {
    /// A state no response holds, kept for the next one on this thread.
    static SPARE: std::cell::Cell<Option<Arc<Mutex<State>>>> = const { std::cell::Cell::new(None) };
}

impl State {
    /// The state for a new response: this thread's spare one, if any.
    pub(crate) fn shared() -> Arc<Mutex<State>> {
        SPARE.try_with(std::cell::Cell::take).ok().flatten().unwrap_or_default()
    }

    /// Keep `state` for the next response on this thread, if nothing else
    /// holds it (an app may keep its `start_response`, and with it the
    /// sink) and everything in it was taken.
    pub(crate) fn recycle(mut state: Arc<Mutex<State>>) {
        let Some(st) = Arc::get_mut(&mut state) else { return };
        let st = st.get_mut().unwrap_or_else(PoisonError::into_inner);
        let empty =
            st.head.is_none() && st.first.is_none() && st.pending.is_empty() && st.file.is_none() && st.error.is_none();
        if empty {
            let _ = SPARE.try_with(|spare| spare.set(Some(state)));
        }
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A sink that never blocks: it keeps what the app produces for the async
/// side to send.
pub(crate) struct InlineSink {
    state: Arc<Mutex<State>>,
    capture: Option<(Vec<HeaderName>, Arc<Mutex<HeaderMap>>)>,
}

impl InlineSink {
    pub(crate) fn new(state: Arc<Mutex<State>>) -> Self {
        InlineSink { state, capture: None }
    }

    /// Copy these response headers for the access log.
    pub(crate) fn capture_headers(&mut self, names: Vec<HeaderName>) -> Option<Arc<Mutex<HeaderMap>>> {
        if names.is_empty() {
            return None;
        }
        let map = Arc::new(Mutex::new(HeaderMap::new()));
        self.capture = Some((names, Arc::clone(&map)));
        Some(map)
    }
}

impl InlineSink {
    /// Copy the response headers the access log wants.
    fn capture(&self, head: &ResponseHead) {
        if let Some((names, map)) = &self.capture {
            let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
            for name in names {
                for v in head.headers.get_all(name) {
                    map.append(name.clone(), v.clone());
                }
            }
        }
    }
}

impl ResponseSink for InlineSink {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        self.capture(&head);
        lock(&self.state).head = Some(head);
        Ok(())
    }

    fn send_head_with_data(&mut self, head: ResponseHead, data: Bytes) -> io::Result<()> {
        self.capture(&head);
        let mut st = lock(&self.state);
        st.head = Some(head);
        st.push(data);
        Ok(())
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        lock(&self.state).push(data);
        Ok(())
    }

    fn send_file(&mut self, file: FileBody) -> io::Result<()> {
        lock(&self.state).file = Some(file);
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn abort(&mut self, error: &wsgi_spec::Error) {
        lock(&self.state).error = Some(error.to_string());
    }
}

/// The head, and the whole body when everything produced fits in one
/// complete body now (no file, no error); taken under one lock. `None`
/// when no head was produced.
pub(crate) fn take_response(state: &Mutex<State>, complete: bool) -> Option<(ResponseHead, Option<Bytes>)> {
    let mut st = lock(state);
    let head = st.head.take()?;
    if !complete || st.error.is_some() || st.file.is_some() {
        return Some((head, None));
    }
    let first = st.first.take();
    let body = match (first, st.pending.len()) {
        (None, 0) => Bytes::new(),
        (Some(only), 0) => only,
        (first, _) => {
            let mut all = BytesMut::new();
            for c in first.iter().chain(st.pending.iter()) {
                all.extend_from_slice(c);
            }
            st.pending.clear();
            all.freeze()
        }
    };
    Some((head, Some(body)))
}

/// Send what the app produced, resuming it step by step, until the
/// response is complete or the client leaves. Runs as its own task.
pub(crate) async fn pump(
    state: Arc<Mutex<State>>,
    mut running: Option<Running<InlineSink>>,
    tx: mpsc::Sender<Result<Bytes, BoxError>>,
    mut log: Option<Box<dyn FnOnce(wsgi_spec::run::Outcome) + Send>>,
    files: Option<Arc<crate::sendfile::ResponseFiles>>,
) {
    loop {
        let (first, chunks, file, error) = {
            let mut st = lock(&state);
            let first = st.first.take();
            (first, std::mem::take(&mut st.pending), st.file.take(), st.error.take())
        };
        let mut gone = false;
        for c in first.into_iter().chain(chunks) {
            if tx.send(Ok(c)).await.is_err() {
                gone = true;
                break;
            }
        }
        if !gone {
            if let (Some(file), Some(files)) = (&file, &files) {
                // Sent with sendfile(2) by the connection.
                match files.tokens(file) {
                    Ok(tokens) => {
                        for token in tokens {
                            if tx.send(Ok(token)).await.is_err() {
                                gone = true;
                                break;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(Box::new(e))).await;
                        gone = true;
                    }
                }
            } else if let Some(mut file) = file {
                // Reads from the page cache, on this thread (inline mode).
                loop {
                    match file.read_block() {
                        Ok(Some(block)) => {
                            if tx.send(Ok(block)).await.is_err() {
                                gone = true;
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.send(Err(Box::new(e))).await;
                            gone = true;
                            break;
                        }
                    }
                }
            }
        }
        if gone {
            if let (Some(r), Some(log)) = (running.take(), log.take()) {
                log(r.abandon(io::Error::new(io::ErrorKind::BrokenPipe, "client disconnected")));
            }
            return;
        }
        if let Some(e) = error {
            let _ = tx.send(Err(e.into())).await;
            return;
        }
        if running.is_some() {
            // Before app code runs again on this thread: wait until the
            // connection took the last chunk, then let it write it out
            // (STRM-1: a chunk is sent before the next is made).
            match tx.reserve().await {
                Ok(permit) => drop(permit),
                Err(_) => {
                    if let (Some(r), Some(log)) = (running.take(), log.take()) {
                        log(r.abandon(io::Error::new(io::ErrorKind::BrokenPipe, "client disconnected")));
                    }
                    return;
                }
            }
            tokio::task::yield_now().await;
        }
        match running.take() {
            None => return,
            Some(r) => match r.resume(Some(BUDGET)) {
                Step::Done(outcome) => {
                    if let Some(log) = log.take() {
                        log(outcome);
                    }
                }
                Step::Paused(r) => running = Some(r),
            },
        }
    }
}

static SPOOL_ID: AtomicU64 = AtomicU64::new(0);

/// An anonymous temporary file (created, then unlinked at once).
fn spool_file() -> io::Result<std::fs::File> {
    let dir = std::env::temp_dir();
    loop {
        let n = SPOOL_ID.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".wsgi-server-body-{}-{n}", std::process::id()));
        match std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path) {
            Ok(f) => {
                std::fs::remove_file(&path)?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Read the whole request body without blocking the runtime on the
/// network: in memory, or spooled to a temporary file past 1 MiB. `None`
/// when the client left or sent less than it announced.
pub(crate) async fn read_body<B>(body: B, length: Option<u64>) -> Option<Input>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if length == Some(0) || body.is_end_stream() {
        return (length.unwrap_or(0) == 0).then(Input::empty);
    }
    let mut body = std::pin::pin!(body);
    let mut mem = BytesMut::new();
    let mut file: Option<std::fs::File> = None;
    let mut total = 0u64;
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let Ok(data) = frame.ok()?.into_data() else { continue };
        total += data.len() as u64;
        match &mut file {
            Some(f) => f.write_all(&data).ok()?,
            None if total > MEMORY_MAX => {
                let mut f = spool_file().ok()?;
                f.write_all(&mem).ok()?;
                f.write_all(&data).ok()?;
                mem = BytesMut::new();
                file = Some(f);
            }
            None => mem.extend_from_slice(&data),
        }
    }
    if length.is_some_and(|n| n != total) {
        return None;
    }
    match file {
        Some(mut f) => {
            f.rewind().ok()?;
            Some(Input::new(io::BufReader::new(f), Some(total)))
        }
        None => Some(Input::from_bytes(mem.freeze())),
    }
}
