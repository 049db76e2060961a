//! [`SpecService`]: a spec application as a `tower::Service` and a hyper
//! `Service`. The server itself uses it, so an app mounted in someone's
//! hyper or axum server and an app run by `wsgi-server` take one code path.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, SERVER, TRANSFER_ENCODING};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body as HttpBody;
use tokio::sync::oneshot;
use wsgi_spec::driver::{Framing, ResponseHead};
use wsgi_spec::ext::ConnectionInfo;
use wsgi_spec::{Environ, Input, ServerInfo, SharedApp};

use crate::accesslog::{AccessLog, Record};
use crate::bridge::{BodyReader, BoxError, ChannelSink, ResponseBody, Start};
use crate::inline;
use crate::io::coalesce::Stopwatch;
use crate::pool::AppPool;
use crate::proxy::{self, ForwardedAllow};
use wsgi_spec::run::{self, Outcome, Step};

/// A spec application served over HTTP: turns an `http::Request` into an
/// `http::Response`, running the app on an [`AppPool`] thread.
///
/// `poll_ready` is always ready; admission happens in `call`: when every app
/// thread is busy and the queue is full, the response is a quick 503 and the
/// app is not called.
#[derive(Clone)]
pub struct SpecService {
    shared: Arc<Shared>,
    conn: Option<ConnectionInfo>,
    unix_peer: bool,
    /// The connection sends file bodies with `sendfile(2)` (see
    /// [`crate::sendfile`]).
    files: Option<Arc<crate::sendfile::FileQueue>>,
}

struct Shared {
    app: SharedApp,
    pool: AppPool,
    info: ServerInfo,
    server_header: HeaderValue,
    forwarded: ForwardedAllow,
    access_log: Option<AccessLog>,
    inline: bool,
    requests: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// A graceful stop began: responses close their connections.
    closing: std::sync::atomic::AtomicBool,
}

impl SpecService {
    /// Serve `app` on `pool`, describing the server with `info`.
    #[must_use]
    pub fn new(app: SharedApp, pool: AppPool, mut info: ServerInfo) -> SpecService {
        info.multithread = pool.threads() > 1;
        let server_header = HeaderValue::from_str(info.software.split('/').next().unwrap_or("wsgi-server"))
            .unwrap_or(HeaderValue::from_static("wsgi-server"));
        let shared = Shared {
            app,
            pool,
            info,
            server_header,
            forwarded: ForwardedAllow::default(),
            access_log: None,
            inline: false,
            requests: None,
            closing: std::sync::atomic::AtomicBool::new(false),
        };
        SpecService { shared: Arc::new(shared), conn: None, unix_peer: false, files: None }
    }

    /// Believe forwarding headers (`X-Forwarded-*`, `Forwarded`) only from
    /// these peers.
    ///
    /// # Panics
    /// When called after the service was cloned.
    #[must_use]
    pub fn forwarded_allow(mut self, allow: ForwardedAllow) -> SpecService {
        Arc::get_mut(&mut self.shared).expect("configure before cloning").forwarded = allow;
        self
    }

    /// Run the app inline, on the runtime threads (see [`crate::inline`]
    /// for the trade): `io_threads` is how many runtime threads may run it
    /// at once, which is what `wsgi.multithread` reports.
    ///
    /// # Panics
    /// When called after the service was cloned.
    #[must_use]
    pub fn inline(mut self, on: bool, io_threads: usize) -> SpecService {
        let shared = Arc::get_mut(&mut self.shared).expect("configure before cloning");
        shared.inline = on;
        if on {
            shared.info.multithread = io_threads != 1;
        }
        self
    }

    /// Count every request handed to the app in `counter`.
    ///
    /// # Panics
    /// When called after the service was cloned.
    #[must_use]
    pub fn count_requests(mut self, counter: Option<Arc<std::sync::atomic::AtomicU64>>) -> SpecService {
        Arc::get_mut(&mut self.shared).expect("configure before cloning").requests = counter;
        self
    }

    /// Write an access log line for every request.
    ///
    /// # Panics
    /// When called after the service was cloned.
    #[must_use]
    pub fn access_log(mut self, log: Option<AccessLog>) -> SpecService {
        Arc::get_mut(&mut self.shared).expect("configure before cloning").access_log = log;
        self
    }

    /// The same service for requests arriving on a connection: the
    /// connection's addresses and scheme go into each environ.
    #[must_use]
    pub fn for_connection(&self, conn: ConnectionInfo) -> SpecService {
        SpecService { shared: Arc::clone(&self.shared), conn: Some(conn), unix_peer: false, files: None }
    }

    /// The same service for a connection accepted on a Unix socket: its
    /// peer (a local process, typically the reverse proxy) is trusted for
    /// forwarding headers unless `forwarded_allow_ips` is empty.
    #[must_use]
    pub fn for_unix_connection(&self) -> SpecService {
        SpecService {
            shared: Arc::clone(&self.shared),
            conn: Some(ConnectionInfo::default()),
            unix_peer: true,
            files: None,
        }
    }

    /// File bodies become tokens for this connection's queue, which its
    /// writer sends with `sendfile(2)`.
    pub(crate) fn with_files(mut self, files: Arc<crate::sendfile::FileQueue>) -> SpecService {
        self.files = Some(files);
        self
    }

    /// Where a response's file tokens wait until hyper takes them, on a
    /// connection that sends files with `sendfile(2)`.
    fn response_files(&self) -> Option<Arc<crate::sendfile::ResponseFiles>> {
        self.files.as_ref().map(|q| Arc::new(crate::sendfile::ResponseFiles::new(Arc::clone(q))))
    }

    /// The pool the application runs on.
    #[must_use]
    pub fn pool(&self) -> &AppPool {
        &self.shared.pool
    }

    /// A graceful stop began: from now on every HTTP/1 response carries
    /// `Connection: close`, so connections end after their current request
    /// instead of being cut while idle.
    pub fn begin_closing(&self) {
        self.shared.closing.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Handle one request.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let version = req.version();
        let resp = self.handle_request(req).await;
        self.finish(version, resp)
    }

    /// `Connection: close` on HTTP/1 responses once a graceful stop began.
    fn finish(&self, version: http::Version, mut resp: Response<ResponseBody>) -> Response<ResponseBody> {
        if version < http::Version::HTTP_2 && self.shared.closing.load(std::sync::atomic::Ordering::Relaxed) {
            resp.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }

    /// Inline mode and a request without a body: nothing to wait for
    /// before the app runs, so the response (or its head, for a streamed
    /// body) is made here and now, without a boxed future.
    fn handle_now<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, _) = req.into_parts();
        let version = parts.version;
        let (record, started) = self.begin(&parts);
        let resp = self.run_inline(parts, Input::empty(), record, started);
        self.finish(version, resp)
    }

    /// Whether [`handle_now`](Self::handle_now) can take the request.
    fn can_handle_now<B: HttpBody>(&self, req: &Request<B>, hyper_framed: bool) -> bool {
        // A body announced but ended at once goes the async way (a 400).
        // Not with hyper's HTTP/1 bodies: hyper framed it from the same
        // headers, so one it sees ended was announced empty.
        self.shared.inline
            && req.body().is_end_stream()
            && ((hyper_framed && req.version() < http::Version::HTTP_2)
                || request_length(req.headers(), req.version(), req.body()).unwrap_or(0) == 0)
    }

    /// Count the request and start its access-log record.
    fn begin(&self, parts: &http::request::Parts) -> (Option<Box<Record>>, Stopwatch) {
        if let Some(c) = &self.shared.requests {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let record = self.shared.access_log.as_ref().map(|log| {
            let mut rec = Record {
                method: parts.method.as_str().to_owned(),
                raw_uri: parts.uri.to_string().into_bytes(),
                protocol: wsgi_spec::protocol_str(parts.version),
                start: Some(SystemTime::now()),
                started: Some(Instant::now()),
                ..Record::default()
            };
            for name in log.format().request_headers() {
                for v in parts.headers.get_all(&name) {
                    rec.request_headers.append(name.clone(), v.clone());
                }
            }
            // Boxed: the record travels with the request through several
            // calls, and a pointer moves cheaper than the record.
            Box::new(rec)
        });
        (record, Stopwatch::start())
    }

    /// The environ for the request, and the access-log writer to call with
    /// the outcome (with the response header names it wants captured).
    #[inline(always)]
    fn environ_and_log(
        &self,
        parts: http::request::Parts,
        input: Input,
        mut record: Option<Box<Record>>,
    ) -> (Environ, Vec<http::HeaderName>, impl FnOnce(Outcome, Option<Captured>) + Send + 'static) {
        let mut environ = match self.conn {
            Some(conn) => Environ::from_request_on(parts, input, &self.shared.info, conn),
            None => Environ::from_request(parts, input, &self.shared.info),
        };
        proxy::apply(&mut environ, &self.shared.forwarded, self.unix_peer);
        if let Some(rec) = record.as_mut() {
            rec.remote = environ.remote_addr;
            rec.path = [&environ.script_name[..], &environ.path_info[..]].concat();
            rec.query = environ.query_string.to_vec();
        }
        let names = match (&self.shared.access_log, &record) {
            (Some(log), Some(_)) => log.format().response_headers(),
            _ => Vec::new(),
        };
        // Only a request with a record has a line to write.
        let shared = record.as_ref().map(|_| Arc::clone(&self.shared));
        let log = move |outcome: Outcome, captured: Option<Captured>| {
            if let (Some(log), Some(mut rec)) = (shared.as_ref().and_then(|s| s.access_log.as_ref()), record) {
                rec.status = outcome.status.map(|s| s.as_u16());
                rec.bytes = outcome.bytes_sent;
                rec.duration = rec.started.map(|t| t.elapsed()).unwrap_or_default();
                if let Some(c) = captured {
                    rec.response_headers = std::mem::take(&mut *c.lock().unwrap_or_else(PoisonError::into_inner));
                }
                log.write(&rec);
            }
        };
        (environ, names, log)
    }

    async fn handle_request<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = req.into_parts();
        let length = request_length(&parts.headers, parts.version, &body);
        let (record, started) = self.begin(&parts);
        if self.shared.inline {
            return match inline::read_body(body, length).await {
                Some(input) => self.run_inline(parts, input, record, started),
                // The client left (or sent less than it announced).
                None => plain(StatusCode::BAD_REQUEST, "Bad Request: incomplete body\n"),
            };
        }
        let input = Input::new(BodyReader::new(body, tokio::runtime::Handle::current()), length);
        let (environ, names, log) = self.environ_and_log(parts, input, record);
        let (tx, rx) = oneshot::channel();
        let mut sink = ChannelSink::new(tx, self.files.clone());
        let captured = sink.capture_headers(names);
        let shared = Arc::clone(&self.shared);
        let job = move || log(run::run(&*shared.app, environ, sink), captured);
        if self.shared.pool.try_submit(job).is_err() {
            return plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable: the server is at capacity\n");
        }
        let head = rx.await;
        started.request_if_slow();
        match head {
            Ok(Start::Complete(head, body, files)) => self.response(head, ResponseBody::full(body).with_files(files)),
            Ok(Start::Streaming(head, rx, files)) => {
                let len = match head.framing {
                    Framing::Length(n) => Some(n),
                    _ => None,
                };
                self.response(head, ResponseBody::stream(rx, len).with_files(files))
            }
            // The job ended without a head: only when the client is gone.
            Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n"),
        }
    }

    #[inline(always)]
    fn run_inline(
        &self,
        parts: http::request::Parts,
        input: Input,
        record: Option<Box<Record>>,
        started: Stopwatch,
    ) -> Response<ResponseBody> {
        let (environ, names, log) = self.environ_and_log(parts, input, record);
        let resp = self.respond_inline(environ, names, log);
        started.request_if_slow();
        resp
    }

    /// Run the app here, on this runtime thread (inline mode).
    #[inline(always)]
    fn respond_inline(
        &self,
        environ: Environ,
        names: Vec<http::HeaderName>,
        log: impl FnOnce(Outcome, Option<Captured>) + Send + 'static,
    ) -> Response<ResponseBody> {
        let state = inline::State::shared();
        let mut sink = inline::InlineSink::new(Arc::clone(&state));
        let captured = sink.capture_headers(names);
        let mut log: Option<Box<dyn FnOnce(Outcome) + Send>> =
            if self.shared.access_log.is_some() { Some(Box::new(move |o| log(o, captured))) } else { None };
        let step = match run::start(&*self.shared.app, environ, sink) {
            Step::Paused(running) => running.resume(Some(inline::BUDGET)),
            done => done,
        };
        let Some((head, complete)) = inline::take_response(&state, matches!(step, Step::Done(_))) else {
            // Only when the error response could not be produced either.
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n");
        };
        let running = match step {
            Step::Done(outcome) => {
                if let Some(log) = log.take() {
                    log(outcome);
                }
                if let Some(body) = complete {
                    inline::State::recycle(state);
                    return self.response(head, ResponseBody::full(body));
                }
                None
            }
            Step::Paused(running) => Some(running),
        };
        let len = match head.framing {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        // Only a response with a file body needs a place for its tokens.
        let has_file = state.lock().unwrap_or_else(PoisonError::into_inner).has_file();
        let files = if has_file { self.response_files() } else { None };
        tokio::spawn(inline::pump(state, running, tx, log, files.clone()));
        self.response(head, ResponseBody::stream(rx, len).with_files(files))
    }

    fn response(&self, head: ResponseHead, body: ResponseBody) -> Response<ResponseBody> {
        let mut resp = Response::new(body);
        *resp.status_mut() = head.status.code();
        if let Some(reason) = head.status.custom_reason() {
            resp.extensions_mut().insert(
                hyper::ext::ReasonPhrase::try_from(reason.clone())
                    .unwrap_or_else(|_| hyper::ext::ReasonPhrase::from_static(b"Unknown")),
            );
        }
        *resp.headers_mut() = head.headers;
        if let http::header::Entry::Vacant(slot) = resp.headers_mut().entry(SERVER) {
            slot.insert(self.shared.server_header.clone());
        }
        resp
    }
}

/// Response headers copied for the access log.
type Captured = Arc<std::sync::Mutex<http::HeaderMap>>;

/// The request body's length: Content-Length, else none for chunked, else
/// (HTTP/1 without either) zero (RFC 9112 6.3).
fn request_length<B: HttpBody>(headers: &http::HeaderMap, version: http::Version, body: &B) -> Option<u64> {
    let chunked = headers.contains_key(TRANSFER_ENCODING);
    let length = if chunked {
        None
    } else {
        headers
            .get(CONTENT_LENGTH)
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .or_else(|| body.size_hint().exact().filter(|_| version < http::Version::HTTP_2))
    };
    match length {
        Some(n) => Some(n),
        None if !chunked && version < http::Version::HTTP_2 => Some(0),
        None => None,
    }
}

/// A small plain-text response made by the server itself.
pub(crate) fn plain(status: StatusCode, text: &'static str) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
    resp
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

/// The future of [`SpecService`]'s `call`: ready at once when the response
/// was made in `call` (inline mode, no request body), else boxed.
pub struct SpecFuture(Option<Result<Response<ResponseBody>, BoxFuture>>);

impl SpecFuture {
    /// `hyper_framed`: the body is hyper's, framed by hyper from the
    /// request's headers.
    fn new<B>(service: &SpecService, req: Request<B>, hyper_framed: bool) -> SpecFuture
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if service.can_handle_now(&req, hyper_framed) {
            return SpecFuture(Some(Ok(service.handle_now(req))));
        }
        let this = service.clone();
        SpecFuture(Some(Err(Box::pin(async move { Ok(this.handle(req).await) }))))
    }
}

impl Future for SpecFuture {
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.0.as_mut() {
            Some(Err(fut)) => fut.as_mut().poll(cx),
            Some(Ok(_)) => match self.0.take() {
                Some(Ok(resp)) => Poll::Ready(Ok(resp)),
                _ => Poll::Pending,
            },
            None => Poll::Pending,
        }
    }
}

impl std::fmt::Debug for SpecFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpecFuture").field("ready", &matches!(self.0, Some(Ok(_)))).finish()
    }
}

impl<B> tower_service::Service<Request<B>> for SpecService
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = SpecFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> SpecFuture {
        SpecFuture::new(self, req, false)
    }
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for SpecService {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = SpecFuture;

    fn call(&self, req: Request<hyper::body::Incoming>) -> SpecFuture {
        SpecFuture::new(self, req, true)
    }
}

impl std::fmt::Debug for SpecService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpecService").field("conn", &self.conn).finish_non_exhaustive()
    }
}
