//! Running an application for one request: the loop every server shares.
//!
//! [`run`] calls the application with its environ and a `start_response`,
//! drives the [`ResponseDriver`], iterates the body and hands the results to
//! a [`ResponseSink`] the server implements. It catches application errors
//! and panics (500 before the head, an aborted response after, EXC-2/EXC-3),
//! and it drops (closes) the body on every path (BODY-3).

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::driver::{Emit, ResponseDriver, ResponseHead};
use crate::start_response::Handler;
use crate::{AppError, Application, Body, Environ, Error, Errors, FileBody, StartResponse, Status};

/// Where [`run`] delivers a response: the server's side of one request.
///
/// # Blocking
/// Every method may block until the client accepted the data; that is the
/// backpressure that keeps at most one chunk in flight (BODY-1, STRM-1). An
/// error means the client is gone: [`run`] stops and closes the body.
pub trait ResponseSink: Send + 'static {
    /// Send the head. Called once, before any data.
    ///
    /// # Errors
    /// The client is gone.
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()>;

    /// Send body bytes (never empty).
    ///
    /// # Errors
    /// The client is gone.
    fn send_data(&mut self, data: Bytes) -> io::Result<()>;

    /// Send the head and the first body bytes (never empty) together. The
    /// default calls [`send_head`](Self::send_head), then
    /// [`send_data`](Self::send_data); a sink that hands both over in one
    /// go overrides it.
    ///
    /// # Errors
    /// The client is gone.
    fn send_head_with_data(&mut self, head: ResponseHead, data: Bytes) -> io::Result<()> {
        self.send_head(head)?;
        self.send_data(data)
    }

    /// Send a file body (already cut to the response's length). The default
    /// reads it block by block into [`send_data`](Self::send_data); servers
    /// that can use `sendfile(2)` override it.
    ///
    /// # Errors
    /// The client is gone, or the file could not be read.
    fn send_file(&mut self, mut file: FileBody) -> io::Result<()> {
        while let Some(block) = file.read_block()? {
            self.send_data(block)?;
        }
        Ok(())
    }

    /// The response is complete.
    ///
    /// # Errors
    /// The client is gone.
    fn finish(&mut self) -> io::Result<()>;

    /// The response cannot be completed after its head was sent: the server
    /// must make that visible to the client (close the connection, reset the
    /// stream), never end it as if complete (EXC-3, CL-2).
    fn abort(&mut self, error: &Error);
}

/// How one request went, for access logs and metrics.
#[derive(Debug)]
#[non_exhaustive]
pub struct Outcome {
    /// The status sent, if a head was sent.
    pub status: Option<StatusCode>,
    /// Body bytes handed to the sink.
    pub bytes_sent: u64,
    /// What went wrong, if anything (already logged to `wsgi.errors`).
    pub error: Option<Error>,
}

impl Outcome {
    /// True when the client received a complete response.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.status.is_some() && self.error.is_none()
    }
}

struct Shared<S> {
    driver: ResponseDriver,
    sink: S,
    status: Option<StatusCode>,
}

impl<S: ResponseSink> Shared<S> {
    fn emit(&mut self, emit: Emit) -> Result<(), Error> {
        match emit.head {
            Some(head) => {
                let code = head.status.code();
                if emit.data.is_empty() {
                    self.sink.send_head(head)
                } else {
                    self.sink.send_head_with_data(head, emit.data)
                }
                .map_err(Error::Disconnected)?;
                self.status = Some(code);
            }
            None if !emit.data.is_empty() => self.sink.send_data(emit.data).map_err(Error::Disconnected)?,
            None => {}
        }
        Ok(())
    }
}

impl<S: ResponseSink + Send + 'static> Handler for Mutex<Shared<S>> {
    fn start(&self, status: Status, headers: HeaderMap, exc_info: Option<AppError>) -> Result<(), Error> {
        lock(self).driver.start_response(status, headers, exc_info)
    }

    fn write(&self, data: Bytes) -> Result<(), Error> {
        let mut g = lock(self);
        if g.driver.has_returned() {
            return Err(Error::WriteAfterReturn);
        }
        if !g.driver.is_started() {
            return Err(Error::WriteBeforeStart);
        }
        let emit = g.driver.data(data, None)?;
        g.emit(emit)
    }
}

fn lock<S>(m: &Mutex<Shared<S>>) -> MutexGuard<'_, Shared<S>> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Run `app` for one request and deliver the response to `sink`.
///
/// ```
/// use wsgi_spec::{run::{run, ResponseSink}, driver::ResponseHead, Body, Environ, Error, Input, ServerInfo};
/// struct Collect(std::sync::mpsc::Sender<String>);
/// impl ResponseSink for Collect {
///     fn send_head(&mut self, h: ResponseHead) -> std::io::Result<()> {
///         self.0.send(format!("head {}", h.status)).ok(); Ok(())
///     }
///     fn send_data(&mut self, d: bytes::Bytes) -> std::io::Result<()> {
///         self.0.send(format!("data {}", String::from_utf8_lossy(&d))).ok(); Ok(())
///     }
///     fn finish(&mut self) -> std::io::Result<()> { self.0.send("end".into()).ok(); Ok(()) }
///     fn abort(&mut self, e: &Error) { self.0.send(format!("abort {e}")).ok(); }
/// }
/// let app = |_env: Environ, sr: wsgi_spec::StartResponse| -> Result<Body, wsgi_spec::AppError> {
///     sr.start(http::StatusCode::OK, http::HeaderMap::new())?;
///     Ok(Body::chunks(["a", "b"]))
/// };
/// let (tx, rx) = std::sync::mpsc::channel();
/// let req = http::Request::get("/").body(()).unwrap().into_parts().0;
/// let env = Environ::from_request(req, Input::empty(), &ServerInfo::default());
/// let outcome = run(&app, env, Collect(tx));
/// assert!(outcome.is_complete());
/// assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["head 200 OK", "data a", "data b", "end"]);
/// ```
///
/// # Blocking
/// Runs application code: call it on a thread where blocking is allowed,
/// never on an async runtime's worker thread. The body is dropped on the
/// calling thread.
pub fn run<S: ResponseSink>(app: &dyn Application, environ: Environ, sink: S) -> Outcome {
    match start(app, environ, sink) {
        Step::Done(outcome) => outcome,
        Step::Paused(running) => running.finish(),
    }
}

/// Where a request stands after [`start`] or [`Running::resume`].
#[derive(Debug)]
#[must_use]
pub enum Step<S: ResponseSink> {
    /// The request is over.
    Done(Outcome),
    /// The body is not finished; resume it, possibly on another thread.
    Paused(Running<S>),
}

/// A request whose application returned its body, not yet fully delivered.
///
/// Dropping it closes the body (BODY-3) without finishing the response.
pub struct Running<S: ResponseSink> {
    shared: Arc<Mutex<Shared<S>>>,
    body: Option<Body>,
    errors: Errors,
}

impl<S: ResponseSink> std::fmt::Debug for Running<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("body", &self.body).finish_non_exhaustive()
    }
}

/// Call the application and stop before iterating its body: the first step
/// of [`run`], for servers that run part of a request on one thread and the
/// rest on another.
///
/// A body with nothing to iterate (empty, or one chunk made in advance,
/// with no close hooks) is delivered to the sink at once, and the request
/// is [`Step::Done`].
///
/// # Blocking
/// Runs application code, and may block in the sink.
pub fn start<S: ResponseSink>(app: &dyn Application, environ: Environ, sink: S) -> Step<S> {
    let driver = ResponseDriver::new(&environ.method, environ.protocol);
    let errors = environ.errors.clone();
    let shared = Arc::new(Mutex::new(Shared { driver, sink, status: None }));

    let start_response = StartResponse::from_handler(Arc::clone(&shared) as Arc<dyn Handler>);

    let called = catch_unwind(AssertUnwindSafe(|| app.call(environ, start_response)));
    let result = match called {
        Ok(Ok(mut body)) => {
            let mut g = lock(&shared);
            g.driver.app_returned();
            // A body made in advance (one chunk, no close hooks) is
            // delivered at once, under the same lock: there is nothing to
            // iterate, and the other path would end after its one chunk too.
            if let Some(whole) = body.take_whole() {
                drop(body);
                let result = deliver_whole(&mut g, whole);
                return Step::Done(conclude_locked(&mut g, &errors, result));
            }
            drop(g);
            return Step::Paused(Running { shared, body: Some(body), errors });
        }
        Ok(Err(e)) => Error::App(e),
        Err(p) => Error::Panic(panic_message(p.as_ref())),
    };
    Step::Done(conclude(&shared, &errors, Err(result)))
}

impl<S: ResponseSink> Running<S> {
    /// Iterate the body into the sink until it ends, or until `budget`
    /// more body bytes were handed to the sink (`None`: no limit). A file
    /// body goes to [`ResponseSink::send_file`] in one step whatever the
    /// budget: a sink that must not block keeps the file and sends it later.
    ///
    /// # Blocking
    /// Runs application code.
    pub fn resume(mut self, budget: Option<u64>) -> Step<S> {
        let Some(mut body) = self.body.take() else {
            return Step::Done(conclude(&self.shared, &self.errors, Ok(())));
        };
        let limit = budget.map(|b| lock(&self.shared).driver.bytes_sent().saturating_add(b));
        match stream_body(&self.shared, &mut body, limit) {
            Ok(Flow::Paused) => {
                self.body = Some(body);
                Step::Paused(self)
            }
            Ok(Flow::Ended) => Step::Done(conclude(&self.shared, &self.errors, close_and_finish(&self.shared, body))),
            Err(e) => {
                // close() even on error; a panic in it is secondary.
                let _ = catch_unwind(AssertUnwindSafe(move || drop(body)));
                Step::Done(conclude(&self.shared, &self.errors, Err(e)))
            }
        }
    }

    /// Deliver the rest of the response.
    ///
    /// # Blocking
    /// Runs application code.
    pub fn finish(self) -> Outcome {
        let mut step = self.resume(None);
        loop {
            match step {
                Step::Done(outcome) => return outcome,
                Step::Paused(r) => step = r.resume(None),
            }
        }
    }

    /// The server gives up on the request (its client is gone): close the
    /// body, deliver nothing more, and report `error`.
    pub fn abandon(mut self, error: std::io::Error) -> Outcome {
        if let Some(body) = self.body.take() {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(body)));
        }
        conclude(&self.shared, &self.errors, Err(Error::Disconnected(error)))
    }

    /// Use the sink, e.g. to switch how it delivers before resuming on
    /// another thread.
    pub fn with_sink<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut lock(&self.shared).sink)
    }
}

/// Turn the result of a request into its outcome: on an error, log it to
/// `wsgi.errors` and answer 500 if the head was not sent, else abort.
fn conclude<S: ResponseSink>(shared: &Mutex<Shared<S>>, errors: &Errors, result: Result<(), Error>) -> Outcome {
    conclude_locked(&mut lock(shared), errors, result)
}

/// [`conclude`] with the request's lock held.
fn conclude_locked<S: ResponseSink>(g: &mut Shared<S>, errors: &Errors, result: Result<(), Error>) -> Outcome {
    let error = match result {
        Ok(()) => None,
        Err(Error::Disconnected(e)) => Some(Error::Disconnected(e)),
        Err(err) => {
            errors.write(&format!("error handling request: {err}\n"));
            match g.driver.error_response() {
                Some((head, body)) => {
                    let sent = g
                        .emit(Emit { head: Some(head), data: body })
                        .and_then(|()| g.sink.finish().map_err(Error::Disconnected));
                    if let Err(e) = sent {
                        errors.write(&format!("could not send the error response: {e}\n"));
                    }
                }
                None => g.sink.abort(&err),
            }
            Some(err)
        }
    };
    Outcome { status: g.status, bytes_sent: g.driver.bytes_sent(), error }
}

/// The body ended: close it (drop), then finish the response.
fn close_and_finish<S: ResponseSink>(shared: &Mutex<Shared<S>>, body: Body) -> Result<(), Error> {
    // close(): runs application code, so it may panic too.
    if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(body))) {
        return Err(Error::Panic(panic_message(p.as_ref())));
    }
    let mut g = lock(shared);
    let head = g.driver.finish()?;
    g.emit(Emit { head, data: Bytes::new() })?;
    g.sink.finish().map_err(Error::Disconnected)
}

/// Deliver a whole body (see `Body::take_whole`) and finish the response:
/// the steps of `stream_body` and `close_and_finish`, under the lock the
/// caller holds.
fn deliver_whole<S: ResponseSink>(g: &mut Shared<S>, whole: Bytes) -> Result<(), Error> {
    let emit = g.driver.data(whole, Some(0))?;
    g.emit(emit)?;
    let head = g.driver.finish()?;
    g.emit(Emit { head, data: Bytes::new() })?;
    g.sink.finish().map_err(Error::Disconnected)
}

enum Flow {
    Ended,
    Paused,
}

fn stream_body<S: ResponseSink>(shared: &Mutex<Shared<S>>, body: &mut Body, limit: Option<u64>) -> Result<Flow, Error> {
    if body.is_file() {
        if let Some(mut file) = body.take_file() {
            let mut g = lock(shared);
            let head = g.driver.file(&mut file)?;
            g.emit(Emit { head, data: Bytes::new() })?;
            if !file.is_empty() {
                g.sink.send_file(file).map_err(Error::Disconnected)?;
            }
        }
        return Ok(Flow::Ended);
    }
    loop {
        {
            let g = lock(shared);
            if g.driver.is_complete() {
                return Ok(Flow::Ended);
            }
            if limit.is_some_and(|l| g.driver.bytes_sent() >= l) {
                return Ok(Flow::Paused);
            }
        }
        // The lock is not held while application code runs: the body may
        // call start_response lazily (SR-17).
        let next = catch_unwind(AssertUnwindSafe(|| body.next_chunk()));
        let chunk = match next {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(e))) => return Err(Error::App(e)),
            Ok(None) => return Ok(Flow::Ended),
            Err(p) => return Err(Error::Panic(panic_message(p.as_ref()))),
        };
        if chunk.is_empty() {
            continue;
        }
        let mut g = lock(shared);
        let emit = g.driver.data(chunk, body.len_hint())?;
        g.emit(emit)?;
    }
}
