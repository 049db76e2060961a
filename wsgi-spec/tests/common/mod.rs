//! Helpers shared by the integration tests: a recording `ResponseSink`, a
//! scripted `BodyIter` that counts pulls and drops, environ builders and
//! temporary files.
// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::{Bytes, BytesMut};
use http::{Method, Version};
use wsgi_spec::driver::ResponseHead;
use wsgi_spec::errors::MemorySink;
use wsgi_spec::ext::ConnectionInfo;
use wsgi_spec::run::{run, Outcome, ResponseSink};
use wsgi_spec::{AppError, Application, Body, BodyIter, Environ, Error, Errors, FileBody, Input, ServerInfo};

/// One thing that happened during a request, in order.
#[derive(Debug, Clone)]
pub(crate) enum Ev {
    /// `send_head`.
    Head(ResponseHead),
    /// `send_data`.
    Data(Bytes),
    /// `send_file` on a sink that "sendfiles": offset, length, contents.
    File(u64, u64, Bytes),
    /// `finish`.
    Finish,
    /// `abort`, with the error's text.
    Abort(String),
    /// A note from the application or its body (pull, drop, ...).
    Note(String),
}

/// The shared record of a request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rec(Arc<Mutex<Vec<Ev>>>);

impl Rec {
    pub(crate) fn new() -> Rec {
        Rec::default()
    }
    fn lock(&self) -> MutexGuard<'_, Vec<Ev>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
    pub(crate) fn push(&self, ev: Ev) {
        self.lock().push(ev);
    }
    pub(crate) fn note(&self, s: impl Into<String>) {
        self.push(Ev::Note(s.into()));
    }
    pub(crate) fn events(&self) -> Vec<Ev> {
        self.lock().clone()
    }
    pub(crate) fn heads(&self) -> Vec<ResponseHead> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Ev::Head(h) => Some(h),
                _ => None,
            })
            .collect()
    }
    pub(crate) fn head(&self) -> ResponseHead {
        let heads = self.heads();
        assert_eq!(heads.len(), 1, "expected exactly one head, got {heads:?}");
        heads.into_iter().next().expect("one head")
    }
    /// Body bytes handed to the sink, in order (data and file events).
    pub(crate) fn body(&self) -> Bytes {
        let mut out = BytesMut::new();
        for e in self.events() {
            match e {
                Ev::Data(d) | Ev::File(_, _, d) => out.extend_from_slice(&d),
                _ => {}
            }
        }
        out.freeze()
    }
    pub(crate) fn data_chunks(&self) -> Vec<Bytes> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Ev::Data(d) => Some(d),
                _ => None,
            })
            .collect()
    }
    pub(crate) fn finished(&self) -> bool {
        self.events().iter().any(|e| matches!(e, Ev::Finish))
    }
    pub(crate) fn aborted(&self) -> bool {
        self.events().iter().any(|e| matches!(e, Ev::Abort(_)))
    }
    /// The events as short strings: `head 200`, `data abc`, `file 0+3`,
    /// `finish`, `abort`, and notes as they are.
    pub(crate) fn trace(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .map(|e| match e {
                Ev::Head(h) => format!("head {}", h.status.code().as_u16()),
                Ev::Data(d) => format!("data {}", String::from_utf8_lossy(&d)),
                Ev::File(off, len, _) => format!("file {off}+{len}"),
                Ev::Finish => "finish".to_owned(),
                Ev::Abort(_) => "abort".to_owned(),
                Ev::Note(n) => n,
            })
            .collect()
    }
}

/// A `ResponseSink` that records everything into a [`Rec`].
pub(crate) struct Sink {
    pub(crate) rec: Rec,
    /// `send_data` call number (0-based) that fails with `BrokenPipe`, and
    /// every call after it: the client went away.
    pub(crate) fail_data_at: Option<usize>,
    /// `send_head` fails: the client went away before the head.
    pub(crate) fail_head: bool,
    /// Override `send_file` the way a `sendfile(2)` server would.
    pub(crate) sendfile: bool,
    data_calls: usize,
}

impl Sink {
    pub(crate) fn new(rec: &Rec) -> Sink {
        Sink { rec: rec.clone(), fail_data_at: None, fail_head: false, sendfile: false, data_calls: 0 }
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "client went away")
}

impl ResponseSink for Sink {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        if self.fail_head {
            return Err(gone());
        }
        self.rec.push(Ev::Head(head));
        Ok(())
    }
    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        assert!(!data.is_empty(), "send_data is never called with nothing");
        let n = self.data_calls;
        self.data_calls += 1;
        if self.fail_data_at.is_some_and(|at| n >= at) {
            return Err(gone());
        }
        self.rec.push(Ev::Data(data));
        Ok(())
    }
    fn send_file(&mut self, mut file: FileBody) -> io::Result<()> {
        if !self.sendfile {
            while let Some(block) = file.read_block()? {
                self.send_data(block)?;
            }
            return Ok(());
        }
        use std::os::unix::fs::FileExt;
        let len = usize::try_from(file.len()).expect("small test file");
        let mut buf = vec![0; len];
        file.file().read_exact_at(&mut buf, file.offset())?;
        self.rec.push(Ev::File(file.offset(), file.len(), Bytes::from(buf)));
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        self.rec.push(Ev::Finish);
        Ok(())
    }
    fn abort(&mut self, error: &Error) {
        self.rec.push(Ev::Abort(error.to_string()));
    }
}

/// Counters shared between a test and a [`Scripted`] body.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    pulls: AtomicUsize,
    drops: AtomicUsize,
}

impl Probe {
    pub(crate) fn new() -> Arc<Probe> {
        Arc::new(Probe::default())
    }
    /// How many times `next_chunk` was called.
    pub(crate) fn pulls(&self) -> usize {
        self.pulls.load(Ordering::SeqCst)
    }
    /// How many times the body was dropped (closed).
    pub(crate) fn drops(&self) -> usize {
        self.drops.load(Ordering::SeqCst)
    }
}

type StepFn = Box<dyn FnOnce() -> Option<Result<Bytes, AppError>> + Send>;

/// One step of a [`Scripted`] body.
pub(crate) enum Step {
    /// Yield these bytes.
    Chunk(Bytes),
    /// Fail with this message.
    Fail(&'static str),
    /// Panic with this message.
    Panic(&'static str),
    /// Run application code (lazy `start_response`, `write()`...) and yield
    /// what it returns.
    Run(StepFn),
}

pub(crate) fn chunk(s: &'static str) -> Step {
    Step::Chunk(Bytes::from_static(s.as_bytes()))
}

pub(crate) fn run_step(f: impl FnOnce() -> Option<Result<Bytes, AppError>> + Send + 'static) -> Step {
    Step::Run(Box::new(f))
}

/// A body that plays a script, counting pulls and drops, noting both in an
/// optional [`Rec`].
pub(crate) struct Scripted {
    steps: VecDeque<Step>,
    probe: Arc<Probe>,
    rec: Option<Rec>,
    hint: bool,
    panic_on_drop: bool,
}

impl Scripted {
    pub(crate) fn new(steps: impl IntoIterator<Item = Step>, probe: &Arc<Probe>) -> Scripted {
        Scripted {
            steps: steps.into_iter().collect(),
            probe: Arc::clone(probe),
            rec: None,
            hint: false,
            panic_on_drop: false,
        }
    }
    /// Note `pull N` and `drop` in `rec`.
    pub(crate) fn noting(mut self, rec: &Rec) -> Scripted {
        self.rec = Some(rec.clone());
        self
    }
    /// Report an exact `len_hint` (the script must hold only chunks).
    pub(crate) fn with_hint(mut self) -> Scripted {
        self.hint = true;
        self
    }
    /// Panic in `Drop` (a `close()` that raises).
    pub(crate) fn panic_on_drop(mut self) -> Scripted {
        self.panic_on_drop = true;
        self
    }
    pub(crate) fn body(self) -> Body {
        Body::from_body_iter(self)
    }
}

impl BodyIter for Scripted {
    fn next_chunk(&mut self) -> Option<Result<Bytes, AppError>> {
        let n = self.probe.pulls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(rec) = &self.rec {
            rec.note(format!("pull {n}"));
        }
        match self.steps.pop_front()? {
            Step::Chunk(b) => Some(Ok(b)),
            Step::Fail(msg) => Some(Err(msg.into())),
            Step::Panic(msg) => panic!("{msg}"),
            Step::Run(f) => f(),
        }
    }
    fn len_hint(&self) -> Option<u64> {
        if !self.hint {
            return None;
        }
        let mut total = 0;
        for s in &self.steps {
            match s {
                Step::Chunk(b) => total += b.len() as u64,
                _ => return None,
            }
        }
        Some(total)
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.probe.drops.fetch_add(1, Ordering::SeqCst);
        if let Some(rec) = &self.rec {
            rec.note("drop");
        }
        if self.panic_on_drop && !std::thread::panicking() {
            panic!("close() failed");
        }
    }
}

/// Server settings whose `wsgi.errors` lines are kept in memory.
pub(crate) fn server_info() -> (ServerInfo, MemorySink) {
    let sink = MemorySink::new();
    let info =
        ServerInfo { software: "test-server/1".into(), errors: Errors::new(sink.clone()), ..ServerInfo::default() };
    (info, sink)
}

/// The environ for a request, with a peer and local address.
pub(crate) fn environ_for(req: http::Request<()>, input: Input) -> Environ {
    let (mut parts, ()) = req.into_parts();
    if parts.extensions.get::<ConnectionInfo>().is_none() {
        parts.extensions.insert(ConnectionInfo {
            peer: Some(([192, 0, 2, 7], 50000).into()),
            local: Some(([192, 0, 2, 1], 8080).into()),
            secure: false,
        });
    }
    Environ::from_request(parts, input, &server_info().0)
}

/// The environ for `method uri` over `version`, without a body.
pub(crate) fn environ(method: Method, uri: &str, version: Version) -> Environ {
    let req = http::Request::builder().method(method).uri(uri).version(version).body(()).expect("valid request");
    environ_for(req, Input::empty())
}

/// `GET /` over HTTP/1.1.
pub(crate) fn get() -> Environ {
    environ(Method::GET, "/", Version::HTTP_11)
}

/// Run `app` for `environ` into a recording sink.
pub(crate) fn run_app(app: &dyn Application, environ: Environ) -> (Outcome, Rec) {
    let rec = Rec::new();
    let outcome = run(app, environ, Sink::new(&rec));
    (outcome, rec)
}

/// Run `app` for `environ` into `sink`.
pub(crate) fn run_into(app: &dyn Application, environ: Environ, sink: Sink) -> Outcome {
    run(app, environ, sink)
}

/// A file in the temporary directory, removed on drop.
#[derive(Debug)]
pub(crate) struct TempFile {
    pub(crate) path: PathBuf,
}

impl TempFile {
    pub(crate) fn new(contents: &[u8]) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("wsgi-spec-test-{}-{n}.bin", std::process::id()));
        let mut f = File::create(&path).expect("create temp file");
        f.write_all(contents).expect("write temp file");
        TempFile { path }
    }
    pub(crate) fn open(&self) -> File {
        File::open(&self.path).expect("open temp file")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A `Read` that returns at most `max` bytes per call (1, 2, 3, 1, 2, 3...
/// when `max` is 3), counts what it handed out and can fail with a given
/// error instead of reporting its end.
pub(crate) struct Trickle {
    data: Bytes,
    pos: usize,
    max: usize,
    turn: usize,
    pub(crate) read_total: Arc<AtomicUsize>,
    pub(crate) interrupt_first: bool,
    pub(crate) error_at_end: Option<io::ErrorKind>,
}

impl Trickle {
    pub(crate) fn new(data: &[u8], max: usize) -> Trickle {
        Trickle {
            data: Bytes::copy_from_slice(data),
            pos: 0,
            max,
            turn: 0,
            read_total: Arc::new(AtomicUsize::new(0)),
            interrupt_first: false,
            error_at_end: None,
        }
    }
}

impl io::Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.interrupt_first {
            self.interrupt_first = false;
            return Err(io::Error::new(io::ErrorKind::Interrupted, "signal"));
        }
        if self.pos == self.data.len() {
            if let Some(kind) = self.error_at_end {
                return Err(io::Error::new(kind, "connection reset"));
            }
            return Ok(0);
        }
        self.turn += 1;
        let step = 1 + (self.turn - 1) % self.max;
        let n = step.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        self.read_total.fetch_add(n, Ordering::SeqCst);
        Ok(n)
    }
}
