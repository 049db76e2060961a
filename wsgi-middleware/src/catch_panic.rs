//! `CatchPanic`: a 500 page for an application that panics or fails before
//! its head was sent.
//!
//! A panic in the application's `call`, or in its body's iteration, becomes
//! an error; an error (returned by `call`, or yielded by the body) that comes
//! while no body byte was sent yet is answered with `500 Internal Server
//! Error` — a plain page, or with [`CatchPanicLayer::debug`] a page listing
//! the error and its `source()` chain (never turn that on in production: it
//! shows internals). The head the application may have set is replaced
//! through `start_response` with `exc_info` (SPEC.md SR-12, EXC-4), and the
//! error is written to `wsgi.errors`, since the server no longer sees it.
//!
//! After the first body byte the response cannot change: the error (a panic
//! as [`Error::Panic`]) is passed on, and the server
//! aborts the response (EXC-3).
//!
//! ```
//! use tower_layer::Layer;
//! use wsgi_middleware::CatchPanicLayer;
//! use wsgi_spec::{testing::TestClient, AppError, Body, Environ, StartResponse};
//!
//! fn app(_env: Environ, _sr: StartResponse) -> Result<Body, AppError> {
//!     panic!("database on fire");
//! }
//! let client = TestClient::new(CatchPanicLayer::new().debug(true).layer(app));
//! let resp = client.get("/");
//! assert_eq!(resp.status, http::StatusCode::INTERNAL_SERVER_ERROR);
//! assert!(std::str::from_utf8(&resp.body).unwrap().contains("database on fire"));
//! assert!(resp.error.is_none()); // answered, not failed
//! ```

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use wsgi_spec::{AppError, Application, Body, BodyIter, Environ, Errors, StartResponse, Status};

use crate::util::{panic_message, track_writes};
use crate::Error;

/// Configuration for [`CatchPanic`]: plain (default) or debug error pages.
#[derive(Debug, Clone, Default)]
pub struct CatchPanicLayer {
    debug: bool,
}

impl CatchPanicLayer {
    /// Plain error pages.
    #[must_use]
    pub fn new() -> CatchPanicLayer {
        CatchPanicLayer::default()
    }

    /// List the error and its causes in the page (development only).
    #[must_use]
    pub fn debug(mut self, debug: bool) -> CatchPanicLayer {
        self.debug = debug;
        self
    }
}

impl<A> tower_layer::Layer<A> for CatchPanicLayer {
    type Service = CatchPanic<A>;

    fn layer(&self, inner: A) -> CatchPanic<A> {
        CatchPanic::new(inner, self.debug)
    }
}

/// Turns panics and errors before the head into a 500; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct CatchPanic<A> {
    inner: A,
    debug: bool,
}

impl<A> CatchPanic<A> {
    /// Wrap `inner`; `debug` lists the error chain in the page.
    pub fn new(inner: A, debug: bool) -> CatchPanic<A> {
        CatchPanic { inner, debug }
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

/// What a failure needs: where to answer, whether it is too late, where to log.
#[derive(Clone)]
struct Ctx {
    start_response: StartResponse,
    sent: Arc<AtomicBool>,
    errors: Errors,
    debug: bool,
}

impl Ctx {
    /// Answer 500 for `err` if no body byte went out; else give `err` back.
    fn fail(&self, err: AppError) -> Result<Bytes, AppError> {
        if self.sent.load(Ordering::SeqCst) {
            return Err(err);
        }
        let chain = error_chain(&*err);
        self.errors.write(&format!("catch_panic: {}\n", chain.join(": ")));
        let mut page = String::from("Internal Server Error\n");
        if self.debug {
            page.push('\n');
            for (i, e) in chain.iter().enumerate() {
                let _ = writeln!(page, "{}{e}", if i == 0 { "error: " } else { "caused by: " });
            }
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(page.len()));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        self.start_response.call(Status::from_code(StatusCode::INTERNAL_SERVER_ERROR), headers, Some(err))?;
        Ok(Bytes::from(page))
    }
}

/// The error's `Display` and those of its sources.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        out.push(e.to_string());
        cur = e.source();
    }
    out
}

fn panic_error(payload: &(dyn std::any::Any + Send)) -> AppError {
    Box::new(Error::Panic(panic_message(payload)))
}

impl<A: Application> Application for CatchPanic<A> {
    fn call(&self, environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
        let ctx = Ctx {
            start_response: start_response.clone(),
            sent: Arc::new(AtomicBool::new(false)),
            errors: environ.errors.clone(),
            debug: self.debug,
        };
        let start = track_writes(start_response, ctx.sent.clone());
        let err = match catch_unwind(AssertUnwindSafe(|| self.inner.call(environ, start))) {
            // A file body is left as it is, so the server can still send it
            // as a file (FW-5).
            Ok(Ok(body)) if body.is_file() => return Ok(body),
            Ok(Ok(body)) => return Ok(Body::from_body_iter(Guarded { inner: Some(body), ctx })),
            Ok(Err(err)) => err,
            Err(payload) => panic_error(&*payload),
        };
        Ok(Body::full(ctx.fail(err)?))
    }
}

struct Guarded {
    /// The application's body; `None` once it failed (and was closed).
    inner: Option<Body>,
    ctx: Ctx,
}

impl BodyIter for Guarded {
    fn next_chunk(&mut self) -> Option<Result<Bytes, AppError>> {
        let body = self.inner.as_mut()?;
        let err = match catch_unwind(AssertUnwindSafe(|| body.next_chunk())) {
            Ok(Some(Ok(chunk))) => {
                if !chunk.is_empty() {
                    self.ctx.sent.store(true, Ordering::SeqCst);
                }
                return Some(Ok(chunk));
            }
            Ok(None) => return None,
            Ok(Some(Err(err))) => err,
            Err(payload) => panic_error(&*payload),
        };
        // Close the failed body now; a panic while closing is only logged.
        let failed = self.inner.take();
        if catch_unwind(AssertUnwindSafe(move || drop(failed))).is_err() {
            self.ctx.errors.write("catch_panic: the failed body panicked while closing\n");
        }
        Some(self.ctx.fail(err))
    }

    fn len_hint(&self) -> Option<u64> {
        match &self.inner {
            Some(body) => body.len_hint(),
            None => Some(0),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tower_layer::Layer;
    use wsgi_spec::testing::TestClient;

    use super::*;

    fn text_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer failure")]
    struct Outer(#[source] std::io::Error);

    fn client(app: impl Application, debug: bool) -> TestClient {
        TestClient::new(CatchPanicLayer::new().debug(debug).layer(app))
    }

    #[test]
    fn panic_in_call_is_a_plain_500() {
        let c = client(|_e: Environ, _s: StartResponse| -> Result<Body, AppError> { panic!("secret detail") }, false);
        let resp = c.get("/");
        assert_eq!(resp.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(resp.body, "Internal Server Error\n");
        assert!(resp.error.is_none());
        assert!(!resp.aborted);
        assert!(c.errors().iter().any(|l| l.contains("secret detail")), "{:?}", c.errors());
    }

    #[test]
    fn error_after_start_response_replaces_the_head() {
        let app = |_e: Environ, s: StartResponse| -> Result<Body, AppError> {
            let mut h = text_headers();
            h.insert("x-app", HeaderValue::from_static("1"));
            s.start(StatusCode::OK, h)?;
            Err(Box::new(Outer(std::io::Error::other("disk gone"))))
        };
        let resp = client(app, true).get("/");
        assert_eq!(resp.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!resp.headers.contains_key("x-app"));
        let body = String::from_utf8(resp.body.to_vec()).unwrap();
        assert!(body.contains("error: outer failure\ncaused by: disk gone\n"), "{body}");
    }

    #[test]
    fn panic_in_the_body_before_data_is_a_500() {
        let app = |_e: Environ, s: StartResponse| -> Result<Body, AppError> {
            s.start(StatusCode::OK, text_headers())?;
            let mut n = 0;
            Ok(Body::from_iter(std::iter::from_fn(move || {
                n += 1;
                match n {
                    1 => Some(Ok::<_, AppError>(Bytes::new())),
                    _ => panic!("lazy failure"),
                }
            })))
        };
        let resp = client(app, true).get("/");
        assert_eq!(resp.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(String::from_utf8_lossy(&resp.body).contains("application panicked: lazy failure"));
        assert_eq!(resp.headers["content-length"], resp.body.len().to_string().as_str());
    }

    #[test]
    fn error_after_the_head_is_passed_on() {
        let app = |_e: Environ, s: StartResponse| -> Result<Body, AppError> {
            s.start(StatusCode::OK, text_headers())?;
            let items: Vec<Result<Bytes, AppError>> = vec![Ok(Bytes::from("partial")), Err("boom".into())];
            Ok(Body::from_iter(items))
        };
        let resp = client(app, false).get("/");
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(resp.body, "partial");
        assert!(resp.aborted);
        assert!(resp.error.is_some());
    }

    #[test]
    fn panic_after_write_is_passed_on_as_an_error() {
        let app = |_e: Environ, s: StartResponse| -> Result<Body, AppError> {
            let w = s.start(StatusCode::OK, text_headers())?;
            w.write("written")?;
            panic!("after write");
        };
        let resp = client(app, false).get("/");
        assert_eq!(resp.status, StatusCode::OK);
        assert!(resp.aborted);
        assert!(resp.error.unwrap().to_string().contains("after write"));
    }

    #[test]
    fn good_responses_pass_unchanged() {
        let app = |_e: Environ, s: StartResponse| -> Result<Body, AppError> {
            s.start(StatusCode::OK, text_headers())?;
            Ok(Body::chunks(["a", "b"]))
        };
        let resp = client(app, false).get("/");
        assert_eq!(resp.body, "ab");
        assert_eq!(resp.headers["content-length"], "2");
        assert_eq!(resp.chunks.len(), 2);
    }
}
