//! `Timeout`: `504 Gateway Timeout` when the application has not started its
//! response in time.
//!
//! The application runs on a helper thread (one per request, named
//! `wsgi-timeout`); the request's thread waits for it at most the configured
//! duration. "Started" means the application returned its body, or passed
//! data to `write()`. If it did neither in time, the answer is 504 (it
//! replaces a head the application may have set, SR-12), the event is
//! written to `wsgi.errors`, and from then on the application's
//! `start_response` and `write()` fail with an [`io::Error`] of kind
//! `TimedOut` whose source is [`Error::Timeout`].
//!
//! **The application thread runs on.** A blocking Rust function cannot be
//! stopped from outside: after a timeout the helper thread goes on until the
//! application returns, and its body is then dropped (closed) on that
//! thread. A timeout protects the client and the server's worker, not the
//! CPU: an application stuck forever keeps its thread forever. Once the body
//! was returned, iterating it is not timed.
//!
//! # Blocking
//! `call` blocks the calling thread up to the duration (or, once the
//! application wrote data, until it returns).
//!
//! ```
//! use std::time::Duration;
//! use tower_layer::Layer;
//! use wsgi_middleware::TimeoutLayer;
//! use wsgi_spec::{testing::TestClient, AppError, Body, Environ, StartResponse};
//!
//! fn slow(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
//!     std::thread::sleep(Duration::from_millis(300));
//!     sr.start(http::StatusCode::OK, http::HeaderMap::new())?;
//!     Ok(Body::full("late"))
//! }
//! let client = TestClient::new(TimeoutLayer::new(Duration::from_millis(20)).layer(slow));
//! assert_eq!(client.get("/").status, http::StatusCode::GATEWAY_TIMEOUT);
//! ```

use std::io;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderValue, StatusCode};
use wsgi_spec::{AppError, Application, Body, Environ, StartResponse, Write};

use crate::util::text_response;
use crate::Error;

/// Configuration for [`Timeout`]: how long the application may take to
/// start its response.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    duration: Duration,
}

impl TimeoutLayer {
    /// Answer 504 after `duration`.
    #[must_use]
    pub fn new(duration: Duration) -> TimeoutLayer {
        TimeoutLayer { duration }
    }

    /// The duration.
    #[must_use]
    pub fn duration(&self) -> Duration {
        self.duration
    }
}

impl<A> tower_layer::Layer<A> for TimeoutLayer {
    type Service = Timeout<A>;

    fn layer(&self, inner: A) -> Timeout<A> {
        Timeout::new(inner, self.duration)
    }
}

/// Runs `A` on a helper thread and answers 504 when it is late; see the
/// [module docs](self).
#[derive(Debug)]
pub struct Timeout<A> {
    inner: Arc<A>,
    duration: Duration,
}

impl<A> Clone for Timeout<A> {
    fn clone(&self) -> Timeout<A> {
        Timeout { inner: self.inner.clone(), duration: self.duration }
    }
}

impl<A> Timeout<A> {
    /// Wrap `inner`, allowing it `duration` to start its response.
    pub fn new(inner: A, duration: Duration) -> Timeout<A> {
        Timeout { inner: Arc::new(inner), duration }
    }

    /// The wrapped application.
    #[must_use]
    pub fn get_ref(&self) -> &A {
        &self.inner
    }

    /// The wrapped application, mutably: `None` while a helper thread (a
    /// request still running after its timeout, or a clone) shares it.
    pub fn get_mut(&mut self) -> Option<&mut A> {
        Arc::get_mut(&mut self.inner)
    }

    /// Unwrap the application; gives `self` back while it is shared (see
    /// [`get_mut`](Self::get_mut)).
    ///
    /// # Errors
    /// `self`, unchanged, when the application is shared.
    pub fn into_inner(self) -> Result<A, Timeout<A>> {
        let duration = self.duration;
        Arc::try_unwrap(self.inner).map_err(|inner| Timeout { inner, duration })
    }
}

#[derive(Default)]
struct State {
    /// The 504 was sent: the application's calls fail.
    timed_out: bool,
    /// The application wrote data: too late for a 504.
    sent: bool,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn timed_out(duration: Duration) -> wsgi_spec::Error {
    wsgi_spec::Error::Io(io::Error::new(io::ErrorKind::TimedOut, Error::Timeout(duration)))
}

type Outcome = std::thread::Result<Result<Body, AppError>>;

fn settle(outcome: Outcome) -> Result<Body, AppError> {
    match outcome {
        Ok(result) => result,
        Err(payload) => resume_unwind(payload),
    }
}

impl<A: Application> Application for Timeout<A> {
    fn call(&self, environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
        let duration = self.duration;
        let state = Arc::new(Mutex::new(State::default()));
        let errors = environ.errors.clone();
        let wrapped = {
            let state = state.clone();
            let start_response = start_response.clone();
            StartResponse::from_fn(move |status, headers, exc_info| {
                let st = lock(&state);
                if st.timed_out {
                    return Err(timed_out(duration));
                }
                let write = start_response.call(status, headers, exc_info)?;
                drop(st);
                let state = state.clone();
                Ok(Write::from_fn(move |data: Bytes| {
                    // Held while writing, so a 504 cannot slip in between.
                    let mut st = lock(&state);
                    if st.timed_out {
                        return Err(timed_out(duration));
                    }
                    st.sent |= !data.is_empty();
                    write.write(data)
                }))
            })
        };
        let (tx, rx) = mpsc::sync_channel::<Outcome>(1);
        let inner = self.inner.clone();
        std::thread::Builder::new()
            .name("wsgi-timeout".to_owned())
            .spawn(move || {
                let outcome = catch_unwind(AssertUnwindSafe(|| inner.call(environ, wrapped)));
                // When nobody waits any more, the body is dropped (closed) here.
                let _ = tx.send(outcome);
            })
            .map_err(Error::Spawn)?;
        let waited = match rx.recv_timeout(duration) {
            Ok(outcome) => return settle(outcome),
            Err(RecvTimeoutError::Disconnected) => return Err(Box::new(Error::Panic("helper thread vanished".into()))),
            Err(RecvTimeoutError::Timeout) => rx,
        };
        let mut st = lock(&state);
        if st.sent {
            // Already streaming through write(): it has started; wait for it.
            drop(st);
            return match waited.recv() {
                Ok(outcome) => settle(outcome),
                Err(_) => Err(Box::new(Error::Panic("helper thread vanished".into()))),
            };
        }
        st.timed_out = true;
        errors.write(&format!("timeout: application did not respond within {duration:?}\n"));
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let exc_info: AppError = Box::new(Error::Timeout(duration));
        text_response(&start_response, StatusCode::GATEWAY_TIMEOUT, headers, "Gateway Timeout\n", Some(exc_info))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicBool, Ordering};

    use tower_layer::Layer;
    use wsgi_spec::testing::TestClient;

    use super::*;

    fn layer(ms: u64) -> TimeoutLayer {
        TimeoutLayer::new(Duration::from_millis(ms))
    }

    #[test]
    fn fast_apps_are_untouched() {
        let app = |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            sr.start(StatusCode::OK, HeaderMap::new())?;
            Ok(Body::full(format!("on {}", std::thread::current().name().unwrap_or("?"))))
        };
        let resp = TestClient::new(layer(5000).layer(app)).get("/");
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(resp.body, "on wsgi-timeout");
    }

    #[test]
    fn late_apps_get_504_and_their_calls_fail() {
        let (tx, rx) = mpsc::channel();
        let app = move |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            std::thread::sleep(Duration::from_millis(200));
            let err = sr.start(StatusCode::OK, HeaderMap::new()).unwrap_err();
            let _ = tx.send(err.to_string());
            Err(err.into())
        };
        let client = TestClient::new(layer(20).layer(app));
        let resp = client.get("/");
        assert_eq!(resp.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(resp.body, "Gateway Timeout\n");
        assert!(client.errors().iter().any(|l| l.contains("did not respond")));
        let late = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(late.contains("did not respond"), "{late}");
    }

    #[test]
    fn a_head_set_in_time_is_replaced_by_the_504() {
        let closed = Arc::new(AtomicBool::new(false));
        let flag = closed.clone();
        let app = move |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            sr.start(StatusCode::OK, HeaderMap::new())?;
            std::thread::sleep(Duration::from_millis(150));
            let flag = flag.clone();
            Ok(Body::full("too late").on_close(move || flag.store(true, Ordering::SeqCst)))
        };
        let resp = TestClient::new(layer(20).layer(app)).get("/");
        assert_eq!(resp.status, StatusCode::GATEWAY_TIMEOUT);
        // The late body is closed on the helper thread.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !closed.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(closed.load(Ordering::SeqCst));
    }

    #[test]
    fn an_app_streaming_through_write_is_not_cut() {
        let app = |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            let w = sr.start(StatusCode::OK, HeaderMap::new())?;
            w.write("first ")?;
            std::thread::sleep(Duration::from_millis(100));
            w.write("second")?;
            Ok(Body::empty())
        };
        let resp = TestClient::new(layer(20).layer(app)).get("/");
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(resp.body, "first second");
    }

    #[test]
    fn errors_and_panics_pass_through() {
        let failing = |_env: Environ, _sr: StartResponse| -> Result<Body, AppError> { Err("nope".into()) };
        let resp = TestClient::new(layer(1000).layer(failing)).get("/");
        assert_eq!(resp.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(resp.error.unwrap().to_string().contains("nope"));
        let panicking = |_env: Environ, _sr: StartResponse| -> Result<Body, AppError> { panic!("kaboom") };
        let resp = TestClient::new(layer(1000).layer(panicking)).get("/");
        assert_eq!(resp.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(resp.error.unwrap().to_string().contains("kaboom"));
    }

    #[test]
    fn accessors() {
        let app = |_env: Environ, _sr: StartResponse| -> Result<Body, AppError> { Ok(Body::empty()) };
        let mut t = Timeout::new(app, Duration::from_secs(1));
        assert!(t.get_mut().is_some());
        let copy = t.clone();
        assert!(t.get_mut().is_none());
        let Err(t) = t.into_inner() else { panic!("shared, so not unwrapped") };
        drop(copy);
        assert!(t.into_inner().is_ok());
        assert_eq!(layer(7).duration(), Duration::from_millis(7));
    }
}
