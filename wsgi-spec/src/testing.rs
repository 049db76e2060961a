//! An in-process test client: call any application with an `http::Request`
//! and get the status, headers and body, without sockets.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};

use crate::driver::{Framing, ResponseHead};
use crate::errors::MemorySink;
use crate::ext::ConnectionInfo;
use crate::run::{run, ResponseSink};
use crate::{Application, Environ, Error, Errors, Input, ServerInfo, SharedApp, Status};

/// Calls an application in-process, the way a server would (through
/// [`crate::run::run`], so every rule of the driver applies).
///
/// Requests come from `127.0.0.1:40000` to `127.0.0.1:80` unless the request
/// carries its own [`ConnectionInfo`] extension. What the app writes to
/// `wsgi.errors` is kept in [`TestClient::errors`].
///
/// ```
/// use wsgi_spec::{testing::TestClient, AppError, Body, Environ, StartResponse};
/// let client = TestClient::new(|env: Environ, sr: StartResponse| -> Result<Body, AppError> {
///     sr.start(http::StatusCode::OK, http::HeaderMap::new())?;
///     Ok(Body::full(env.path_info))
/// });
/// let resp = client.get("/hello%21");
/// assert_eq!(resp.status, http::StatusCode::OK);
/// assert_eq!(resp.body, "/hello!");
/// assert_eq!(resp.headers["content-length"], "7");
/// ```
#[derive(Clone)]
pub struct TestClient {
    app: SharedApp,
    server: ServerInfo,
    errors: MemorySink,
}

/// A response as the test client received it.
#[derive(Debug)]
#[non_exhaustive]
pub struct TestResponse {
    /// The status code (500 when the app failed before its head).
    pub status: StatusCode,
    /// The reason phrase sent.
    pub reason: Bytes,
    /// The headers the app's head carried (plus `Content-Length` where the
    /// driver set it).
    pub headers: HeaderMap,
    /// How the body was framed.
    pub framing: Option<Framing>,
    /// All body bytes.
    pub body: Bytes,
    /// The body as the chunks the server was handed.
    pub chunks: Vec<Bytes>,
    /// True when the response was aborted after its head (a server would
    /// close the connection).
    pub aborted: bool,
    /// The error the request ended with, if any.
    pub error: Option<Error>,
}

#[derive(Default)]
struct Collected {
    head: Option<ResponseHead>,
    chunks: Vec<Bytes>,
    finished: bool,
    aborted: bool,
}

struct Sink(Arc<Mutex<Collected>>);

impl ResponseSink for Sink {
    fn send_head(&mut self, head: ResponseHead) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).head = Some(head);
        Ok(())
    }
    fn send_data(&mut self, data: Bytes) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).chunks.push(data);
        Ok(())
    }
    fn finish(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).finished = true;
        Ok(())
    }
    fn abort(&mut self, _error: &Error) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).aborted = true;
    }
}

impl TestClient {
    /// A client for `app`.
    pub fn new(app: impl Application) -> TestClient {
        TestClient::from_shared(Arc::new(app))
    }

    /// A client for a shared app.
    #[must_use]
    pub fn from_shared(app: SharedApp) -> TestClient {
        let errors = MemorySink::new();
        let server = ServerInfo {
            software: "wsgi-spec-test-client".into(),
            errors: Errors::new(errors.clone()),
            ..ServerInfo::default()
        };
        TestClient { app, server, errors }
    }

    /// Use these server settings (`wsgi.multithread` and so on); the errors
    /// stream is still captured.
    #[must_use]
    pub fn server_info(mut self, info: ServerInfo) -> TestClient {
        let errors = self.server.errors.clone();
        self.server = ServerInfo { errors, ..info };
        self
    }

    /// Lines the application (and the driver) wrote to `wsgi.errors`.
    #[must_use]
    pub fn errors(&self) -> Vec<String> {
        self.errors.lines()
    }

    /// `GET uri`.
    ///
    /// # Panics
    /// When `uri` is not a valid request target.
    #[must_use]
    pub fn get(&self, uri: &str) -> TestResponse {
        let req = http::Request::get(uri).body(Bytes::new()).expect("a valid request target");
        self.request(req)
    }

    /// Send `req`; its body becomes `wsgi.input` with a `Content-Length`
    /// unless the request says `Transfer-Encoding: chunked`.
    pub fn request<B: Into<Bytes>>(&self, req: http::Request<B>) -> TestResponse {
        let (mut parts, body) = req.into_parts();
        let body: Bytes = body.into();
        if parts.extensions.get::<ConnectionInfo>().is_none() {
            parts.extensions.insert(ConnectionInfo {
                peer: Some(([127, 0, 0, 1], 40000).into()),
                local: Some(([127, 0, 0, 1], 80).into()),
                secure: false,
            });
        }
        let chunked = parts
            .headers
            .get(http::header::TRANSFER_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
        let input = if chunked { Input::new(std::io::Cursor::new(body), None) } else { Input::from_bytes(body) };
        let environ = Environ::from_request(parts, input, &self.server);
        self.call(environ)
    }

    /// Call the app with a ready-made environ.
    #[must_use]
    pub fn call(&self, environ: Environ) -> TestResponse {
        let collected = Arc::new(Mutex::new(Collected::default()));
        let outcome = run(&*self.app, environ, Sink(Arc::clone(&collected)));
        let mut c = collected.lock().unwrap_or_else(PoisonError::into_inner);
        let head = c.head.take();
        let chunks = std::mem::take(&mut c.chunks);
        let mut body = BytesMut::new();
        for ch in &chunks {
            body.extend_from_slice(ch);
        }
        let (status, headers, framing) = match head {
            Some(h) => (h.status, h.headers, Some(h.framing)),
            None => (Status::from_code(StatusCode::INTERNAL_SERVER_ERROR), HeaderMap::new(), None),
        };
        TestResponse {
            status: status.code(),
            reason: Bytes::copy_from_slice(status.reason()),
            headers,
            framing,
            body: body.freeze(),
            chunks,
            aborted: c.aborted || !c.finished,
            error: outcome.error,
        }
    }
}

impl std::fmt::Debug for TestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestClient").finish_non_exhaustive()
    }
}
