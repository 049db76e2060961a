//! `BodyLimit`: `413 Payload Too Large` before the application reads past a
//! limit on the request body.
//!
//! - A request whose `Content-Length` exceeds the limit is answered 413 at
//!   once: the application is not called and the body is never read (with
//!   `Expect: 100-continue` the client does not even send it).
//! - A request without a length (chunked) gets a `wsgi.input` that counts:
//!   reading up to the limit works, the read that would cross it fails with
//!   an [`io::Error`] whose source is [`Error::BodyTooLarge`]. When the
//!   application then fails (it propagates the error) and no body byte was
//!   sent yet, the answer is 413 (replacing any head it set, SR-12); after
//!   the head the error is passed on.
//!
//! ```
//! use tower_layer::Layer;
//! use wsgi_middleware::BodyLimitLayer;
//! use wsgi_spec::{testing::TestClient, AppError, Body, Environ, StartResponse};
//!
//! fn upload(mut env: Environ, sr: StartResponse) -> Result<Body, AppError> {
//!     let data = env.input.read_all()?;
//!     sr.start(http::StatusCode::OK, http::HeaderMap::new())?;
//!     Ok(Body::full(format!("got {}", data.len())))
//! }
//! let client = TestClient::new(BodyLimitLayer::new(8).layer(upload));
//! let small = http::Request::post("/").body("1234").unwrap();
//! assert_eq!(client.request(small).body, "got 4");
//! let big = http::Request::post("/").body("123456789").unwrap();
//! assert_eq!(client.request(big).status, http::StatusCode::PAYLOAD_TOO_LARGE);
//! let chunked = http::Request::post("/").header("transfer-encoding", "chunked").body("123456789").unwrap();
//! assert_eq!(client.request(chunked).status, http::StatusCode::PAYLOAD_TOO_LARGE);
//! ```

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use wsgi_spec::{AppError, Application, Body, BodyIter, Environ, Input, StartResponse};

use crate::util::{text_response, track_writes};
use crate::Error;

const PAGE: &str = "Payload Too Large\n";

/// Configuration for [`BodyLimit`]: the largest request body accepted, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimitLayer {
    limit: u64,
}

impl BodyLimitLayer {
    /// Accept request bodies of at most `limit` bytes.
    #[must_use]
    pub fn new(limit: u64) -> BodyLimitLayer {
        BodyLimitLayer { limit }
    }

    /// The limit in bytes.
    #[must_use]
    pub fn limit(&self) -> u64 {
        self.limit
    }
}

impl<A> tower_layer::Layer<A> for BodyLimitLayer {
    type Service = BodyLimit<A>;

    fn layer(&self, inner: A) -> BodyLimit<A> {
        BodyLimit::new(inner, self.limit)
    }
}

/// Limits request bodies to `limit` bytes; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct BodyLimit<A> {
    inner: A,
    limit: u64,
}

impl<A> BodyLimit<A> {
    /// Wrap `inner`, accepting bodies of at most `limit` bytes.
    pub fn new(inner: A, limit: u64) -> BodyLimit<A> {
        BodyLimit { inner, limit }
    }

    /// The wrapped application.
    #[must_use]
    pub fn get_ref(&self) -> &A {
        &self.inner
    }

    /// The wrapped application, mutably.
    pub fn get_mut(&mut self) -> &mut A {
        &mut self.inner
    }

    /// Unwrap the application.
    pub fn into_inner(self) -> A {
        self.inner
    }
}

/// `wsgi.input` for a body without a length: counts what it hands out.
struct Limited {
    inner: Input,
    limit: u64,
    read: u64,
    exceeded: Arc<AtomicBool>,
}

impl Limited {
    fn too_large(&self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, Error::BodyTooLarge { limit: self.limit })
    }
}

impl Read for Limited {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.exceeded.load(Ordering::SeqCst) {
            return Err(self.too_large());
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let room = self.limit - self.read;
        // One byte more than allowed tells whether the body goes on.
        let want = usize::try_from(room.saturating_add(1)).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > room {
            self.exceeded.store(true, Ordering::SeqCst);
            self.read = self.limit;
            // Hand out what fits; the next read fails.
            return if room > 0 { usize::try_from(room).map_err(|_| self.too_large()) } else { Err(self.too_large()) };
        }
        self.read += n as u64;
        Ok(n)
    }
}

impl<A: Application> Application for BodyLimit<A> {
    fn call(&self, mut environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
        if let Some(len) = environ.input.content_length() {
            if len > self.limit {
                return text_response(&start_response, StatusCode::PAYLOAD_TOO_LARGE, HeaderMap::new(), PAGE, None);
            }
            return self.inner.call(environ, start_response);
        }
        let exceeded = Arc::new(AtomicBool::new(false));
        let input = std::mem::replace(&mut environ.input, Input::empty());
        environ.input =
            Input::new(Limited { inner: input, limit: self.limit, read: 0, exceeded: exceeded.clone() }, None);
        let sent = Arc::new(AtomicBool::new(false));
        let guard = Guard { start_response: start_response.clone(), exceeded, sent: sent.clone() };
        match self.inner.call(environ, track_writes(start_response, sent)) {
            Ok(body) if body.is_file() => Ok(body),
            Ok(body) => Ok(Body::from_body_iter(LimitBody { inner: Some(body), guard })),
            Err(err) => Ok(Body::full(guard.fail(err)?)),
        }
    }
}

struct Guard {
    start_response: StartResponse,
    exceeded: Arc<AtomicBool>,
    sent: Arc<AtomicBool>,
}

impl Guard {
    /// A 413 page if the body was too large and nothing was sent; else `err`.
    fn fail(&self, err: AppError) -> Result<Bytes, AppError> {
        if !self.exceeded.load(Ordering::SeqCst) || self.sent.load(Ordering::SeqCst) {
            return Err(err);
        }
        text_response(&self.start_response, StatusCode::PAYLOAD_TOO_LARGE, HeaderMap::new(), PAGE, Some(err))?;
        Ok(Bytes::from_static(PAGE.as_bytes()))
    }
}

struct LimitBody {
    inner: Option<Body>,
    guard: Guard,
}

impl BodyIter for LimitBody {
    fn next_chunk(&mut self) -> Option<Result<Bytes, AppError>> {
        match self.inner.as_mut()?.next_chunk()? {
            Ok(chunk) => {
                if !chunk.is_empty() {
                    self.guard.sent.store(true, Ordering::SeqCst);
                }
                Some(Ok(chunk))
            }
            Err(err) => {
                self.inner = None;
                Some(self.guard.fail(err))
            }
        }
    }

    fn len_hint(&self) -> Option<u64> {
        self.inner.as_ref().map_or(Some(0), Body::len_hint)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::AtomicUsize;

    use http::{HeaderValue, Request};
    use tower_layer::Layer;
    use wsgi_spec::testing::{TestClient, TestResponse};

    use super::*;

    fn post(client: &TestClient, body: &'static str, chunked: bool) -> TestResponse {
        let mut req = Request::post("/").body(body).unwrap();
        if chunked {
            req.headers_mut().insert("transfer-encoding", HeaderValue::from_static("chunked"));
        }
        client.request(req)
    }

    fn reader(calls: Arc<AtomicUsize>) -> impl Application {
        move |mut env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            calls.fetch_add(1, Ordering::SeqCst);
            let data = env.input.read_all()?;
            sr.start(StatusCode::OK, HeaderMap::new())?;
            Ok(Body::full(data))
        }
    }

    #[test]
    fn content_length_over_the_limit_never_calls_the_app() {
        let calls = Arc::new(AtomicUsize::new(0));
        let client = TestClient::new(BodyLimitLayer::new(5).layer(reader(calls.clone())));
        let resp = post(&client, "123456", false);
        assert_eq!(resp.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(resp.body, PAGE);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(post(&client, "12345", false).body, "12345");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn chunked_bodies_are_counted() {
        let calls = Arc::new(AtomicUsize::new(0));
        let client = TestClient::new(BodyLimitLayer::new(5).layer(reader(calls.clone())));
        assert_eq!(post(&client, "12345", true).body, "12345");
        assert_eq!(post(&client, "", true).body, "");
        let resp = post(&client, "123456", true);
        assert_eq!(resp.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(resp.error.is_none());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn reads_up_to_the_limit_work_and_the_crossing_read_fails() {
        let app = |mut env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            let first = env.input.read_size(3)?;
            let second = env.input.read_size(2)?;
            let err = env.input.read_size(1).unwrap_err();
            let inner = err.get_ref().and_then(|e| e.downcast_ref::<Error>());
            assert!(matches!(inner, Some(Error::BodyTooLarge { limit: 5 })), "{err:?}");
            assert!(env.input.read_size(1).is_err(), "keeps failing");
            sr.start(StatusCode::OK, HeaderMap::new())?;
            Ok(Body::full([first, second].concat()))
        };
        let client = TestClient::new(BodyLimitLayer::new(5).layer(app));
        // The app swallowed the error and answered: its answer stands.
        let resp = post(&client, "1234567890", true);
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(resp.body, "12345");
    }

    #[test]
    fn lazy_reader_in_the_body_gets_413_before_the_head() {
        let app = |mut env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            sr.start(StatusCode::OK, HeaderMap::new())?;
            let mut done = false;
            Ok(Body::from_iter(std::iter::from_fn(move || {
                if done {
                    return None;
                }
                done = true;
                Some(env.input.read_all().map_err(AppError::from))
            })))
        };
        let client = TestClient::new(BodyLimitLayer::new(4).layer(app));
        assert_eq!(post(&client, "1234", true).body, "1234");
        let resp = post(&client, "12345", true);
        assert_eq!(resp.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(resp.body, PAGE);
    }

    #[test]
    fn after_the_head_the_error_is_passed_on() {
        let app = |mut env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            let w = sr.start(StatusCode::OK, HeaderMap::new())?;
            w.write("started")?;
            env.input.read_all()?;
            Ok(Body::empty())
        };
        let client = TestClient::new(BodyLimitLayer::new(4).layer(app));
        let resp = post(&client, "123456", true);
        assert_eq!(resp.status, StatusCode::OK);
        assert!(resp.aborted);
    }

    #[test]
    fn other_errors_are_not_turned_into_413() {
        let app = |_env: Environ, _sr: StartResponse| -> Result<Body, AppError> { Err("unrelated".into()) };
        let client = TestClient::new(BodyLimitLayer::new(4).layer(app));
        assert_eq!(post(&client, "12", true).status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(BodyLimitLayer::new(4).limit(), 4);
    }
}
