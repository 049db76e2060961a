//! `start_response` and the `write()` callable it returns (SR-*, WR-*).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;

use crate::{AppError, Error, Status};

type StartFn = dyn Fn(Status, HeaderMap, Option<AppError>) -> Result<Write, Error> + Send + Sync;
type WriteFn = dyn Fn(Bytes) -> Result<(), Error> + Send + Sync;

/// The server side of both callables in one object (the request loop in
/// [`crate::run`]): one allocation serves `start_response` and `write`.
pub(crate) trait Handler: Send + Sync {
    fn start(&self, status: Status, headers: HeaderMap, exc_info: Option<AppError>) -> Result<(), Error>;
    fn write(&self, data: Bytes) -> Result<(), Error>;
}

#[derive(Clone)]
enum StartInner {
    Fn(Arc<StartFn>),
    Handler(Arc<dyn Handler>),
}

#[derive(Clone)]
enum WriteInner {
    Fn(Arc<WriteFn>),
    Handler(Arc<dyn Handler>),
}

/// PEP 3333's `start_response(status, response_headers, exc_info=None)`.
///
/// A cloneable handle: the application may call it before returning its
/// body or lazily, during the first iteration of the body (SR-17), so the
/// body may hold a clone. The server's handle validates the head (SR-2,
/// SR-4, SR-5, SR-7) and holds it until the first non-empty body chunk
/// (SR-9). Middleware makes its own with [`StartResponse::from_fn`] to see or
/// change the head on its way out.
///
/// ```
/// use wsgi_spec::{testing::TestClient, Body, Environ, StartResponse, AppError};
/// use http::{HeaderMap, HeaderValue, StatusCode};
/// fn app(_env: Environ, start_response: StartResponse) -> Result<Body, AppError> {
///     let mut headers = HeaderMap::new();
///     headers.insert("content-type", HeaderValue::from_static("text/plain"));
///     let write = start_response.start(StatusCode::OK, headers)?;
///     write.write("written first, ")?;
///     Ok(Body::full("then the body"))
/// }
/// let resp = TestClient::new(app).get("/");
/// assert_eq!(resp.body, "written first, then the body");
/// ```
#[derive(Clone)]
pub struct StartResponse(StartInner);

impl StartResponse {
    /// A `start_response` that calls `f` with the status, headers and
    /// `exc_info`.
    pub fn from_fn(
        f: impl Fn(Status, HeaderMap, Option<AppError>) -> Result<Write, Error> + Send + Sync + 'static,
    ) -> StartResponse {
        StartResponse(StartInner::Fn(Arc::new(f)))
    }

    pub(crate) fn from_handler(h: Arc<dyn Handler>) -> StartResponse {
        StartResponse(StartInner::Handler(h))
    }

    /// `start_response(status, headers)`: set the response head.
    ///
    /// # Errors
    /// [`Error::HopByHopHeader`] or [`Error::InvalidHeader`] for headers
    /// HTTP/WSGI forbid, [`Error::AlreadyStarted`] on a second call (SR-15).
    pub fn start(&self, status: impl Into<Status>, headers: HeaderMap) -> Result<Write, Error> {
        self.call(status.into(), headers, None)
    }

    /// `start_response(status, headers, exc_info)`: replace the head with an
    /// error response while nothing was sent yet (SR-12).
    ///
    /// # Errors
    /// When the head was already sent: [`Error::HeadersSent`] carrying
    /// `exc_info`, which the application must propagate (SR-13, SR-14).
    pub fn start_with_exc_info(
        &self,
        status: impl Into<Status>,
        headers: HeaderMap,
        exc_info: AppError,
    ) -> Result<Write, Error> {
        self.call(status.into(), headers, Some(exc_info))
    }

    /// The three-argument form, for adapters that pass `exc_info` through.
    ///
    /// # Errors
    /// As [`start`](Self::start) and [`start_with_exc_info`](Self::start_with_exc_info).
    pub fn call(&self, status: Status, headers: HeaderMap, exc_info: Option<AppError>) -> Result<Write, Error> {
        match &self.0 {
            StartInner::Fn(f) => f(status, headers, exc_info),
            StartInner::Handler(h) => {
                h.start(status, headers, exc_info)?;
                Ok(Write(WriteInner::Handler(Arc::clone(h))))
            }
        }
    }
}

impl fmt::Debug for StartResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StartResponse")
    }
}

/// The `write(data)` callable returned by `start_response` (WR-*).
///
/// Data written goes out before anything the body yields (WR-4); by the time
/// `write` returns it was handed to the server (WR-2). Use it only before
/// returning the body (WR-5); a body is the better way to stream (WR-3).
#[derive(Clone)]
pub struct Write(WriteInner);

impl Write {
    /// A `write` that calls `f` with each chunk.
    pub fn from_fn(f: impl Fn(Bytes) -> Result<(), Error> + Send + Sync + 'static) -> Write {
        Write(WriteInner::Fn(Arc::new(f)))
    }

    /// Send `data` as if the body had yielded it (WR-1).
    ///
    /// # Errors
    /// [`Error::WriteAfterReturn`] once the body was returned,
    /// [`Error::Disconnected`] when the client is gone.
    ///
    /// # Blocking
    /// Blocks until the server accepted the data (backpressure).
    pub fn write(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        match &self.0 {
            WriteInner::Fn(f) => f(data.into()),
            WriteInner::Handler(h) => h.write(data.into()),
        }
    }
}

impl fmt::Debug for Write {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Write")
    }
}

/// Names of hop-by-hop headers an application must not send (SR-7); any
/// `proxy-*` name is hop-by-hop too.
pub const HOP_BY_HOP: [&str; 7] =
    ["connection", "keep-alive", "te", "trailer", "trailers", "transfer-encoding", "upgrade"];

/// True for a hop-by-hop header name (SR-7). Names are compared
/// case-insensitively.
#[must_use]
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
        || name.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("proxy-"))
}

/// True if `bytes` holds a control byte other than tab (or DEL). Without
/// an early exit, so the loop is vectorised: values are short and valid.
fn has_control_byte(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |found, &b| found | ((b < 0x20) & (b != b'\t')) | (b == 0x7f))
}

/// [`is_hop_by_hop`] for a `HeaderName`, which is lower case already: the
/// well-known names compare as one integer, the others by length first.
fn is_hop_by_hop_name(name: &http::HeaderName) -> bool {
    use http::header::{CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
    if name == CONNECTION || name == TE || name == TRAILER || name == TRANSFER_ENCODING || name == UPGRADE {
        return true;
    }
    let s = name.as_str();
    matches!(s, "keep-alive" | "trailers") || s.starts_with("proxy-")
}

/// Check response headers as `start_response` must (SR-4, SR-5, SR-7).
///
/// # Errors
/// [`Error::HopByHopHeader`] for a hop-by-hop name; [`Error::InvalidHeader`]
/// for a value with CR, LF, NUL or another control byte (tab aside), or a
/// name `http` would not accept (`Status`).
pub fn check_headers(headers: &HeaderMap) -> Result<(), Error> {
    for (name, value) in headers {
        if is_hop_by_hop_name(name) {
            return Err(Error::HopByHopHeader(name.as_str().to_owned()));
        }
        if name.as_str() == "status" {
            return Err(Error::InvalidHeader(name.as_str().to_owned()));
        }
        if has_control_byte(value.as_bytes()) {
            return Err(Error::InvalidHeader(format!("{}: {:?}", name, value)));
        }
    }
    Ok(())
}
