//! `Health`: a health-check path answered without touching the application,
//! with a readiness flag for graceful shutdown.
//!
//! `GET /healthz` (the path is configurable) answers `200 ok` while the
//! [`Readiness`] handle says ready, and `503 not ready` once
//! [`Readiness::set_ready`]`(false)` was called — what a load balancer needs
//! to stop sending traffic before the server shuts down. Other paths go to
//! the application. The answer carries `Cache-Control: no-store`.
//!
//! ```
//! use tower_layer::Layer;
//! use wsgi_middleware::HealthLayer;
//! use wsgi_spec::{testing::TestClient, AppError, Body, Environ, StartResponse};
//!
//! fn app(_env: Environ, _sr: StartResponse) -> Result<Body, AppError> {
//!     Err("the app is never called for /healthz".into())
//! }
//! let layer = HealthLayer::new();
//! let ready = layer.readiness();
//! let client = TestClient::new(layer.layer(app));
//! let resp = client.get("/healthz");
//! assert_eq!(resp.status, http::StatusCode::OK);
//! assert_eq!(resp.body, "ok\n");
//!
//! ready.set_ready(false); // shutting down
//! assert_eq!(client.get("/healthz").status, http::StatusCode::SERVICE_UNAVAILABLE);
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::header::{ALLOW, CACHE_CONTROL};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use wsgi_spec::{AppError, Application, Body, Environ, StartResponse};

use crate::util::{normalize_prefix, text_response};
use crate::Error;

/// A shared readiness flag: clones see the same value. Ready when created.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// A flag that starts ready.
    #[must_use]
    pub fn new() -> Readiness {
        Readiness(Arc::new(AtomicBool::new(true)))
    }

    /// Say whether the application is ready for traffic.
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    /// True when ready.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl Default for Readiness {
    fn default() -> Readiness {
        Readiness::new()
    }
}

/// Configuration for [`Health`]: the path (default `/healthz`) and the
/// readiness flag all its [`Health`]s share.
#[derive(Debug, Clone)]
pub struct HealthLayer {
    path: String,
    readiness: Readiness,
}

impl HealthLayer {
    /// Answer `/healthz`, ready.
    #[must_use]
    pub fn new() -> HealthLayer {
        HealthLayer { path: "/healthz".to_owned(), readiness: Readiness::new() }
    }

    /// Answer `path` instead (compared with `PATH_INFO`, exactly; a trailing
    /// `/` is ignored).
    ///
    /// # Errors
    /// [`Error::InvalidPrefix`] when `path` does not start with `/` or is `/`.
    pub fn path(mut self, path: &str) -> Result<HealthLayer, Error> {
        self.path = normalize_prefix(path, false)?;
        Ok(self)
    }

    /// Use this readiness flag (e.g. one shared with the server's shutdown code).
    #[must_use]
    pub fn with_readiness(mut self, readiness: Readiness) -> HealthLayer {
        self.readiness = readiness;
        self
    }

    /// The readiness flag: `set_ready(false)` makes the path answer 503.
    #[must_use]
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }
}

impl Default for HealthLayer {
    fn default() -> HealthLayer {
        HealthLayer::new()
    }
}

impl<A> tower_layer::Layer<A> for HealthLayer {
    type Service = Health<A>;

    fn layer(&self, inner: A) -> Health<A> {
        Health::new(inner, self.clone())
    }
}

/// Answers the health path itself and passes every other request to `A`.
#[derive(Debug, Clone)]
pub struct Health<A> {
    inner: A,
    config: HealthLayer,
}

impl<A> Health<A> {
    /// Wrap `inner` with the configuration `config`.
    pub fn new(inner: A, config: HealthLayer) -> Health<A> {
        Health { inner, config }
    }

    /// The readiness flag.
    #[must_use]
    pub fn readiness(&self) -> Readiness {
        self.config.readiness()
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

impl<A: Application> Application for Health<A> {
    fn call(&self, environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
        let path = environ.path_info.strip_suffix(b"/").unwrap_or(&environ.path_info);
        if path != self.config.path.as_bytes() {
            return self.inner.call(environ, start_response);
        }
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if environ.method != Method::GET && environ.method != Method::HEAD {
            headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return text_response(
                &start_response,
                StatusCode::METHOD_NOT_ALLOWED,
                headers,
                "method not allowed\n",
                None,
            );
        }
        if self.config.readiness.is_ready() {
            text_response(&start_response, StatusCode::OK, headers, "ok\n", None)
        } else {
            text_response(&start_response, StatusCode::SERVICE_UNAVAILABLE, headers, "not ready\n", None)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::AtomicUsize;

    use bytes::Bytes;
    use tower_layer::Layer;
    use wsgi_spec::testing::TestClient;

    use super::*;

    fn counting(calls: Arc<AtomicUsize>) -> impl Application {
        move |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            calls.fetch_add(1, Ordering::SeqCst);
            sr.start(StatusCode::OK, HeaderMap::new())?;
            Ok(Body::full("app"))
        }
    }

    #[test]
    fn healthz_does_not_touch_the_app() {
        let calls = Arc::new(AtomicUsize::new(0));
        let client = TestClient::new(HealthLayer::new().layer(counting(calls.clone())));
        let resp = client.get("/healthz");
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(resp.body, "ok\n");
        assert_eq!(resp.headers["cache-control"], "no-store");
        assert_eq!(client.get("/healthz/").status, StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(client.get("/").body, "app");
        assert_eq!(client.get("/healthzz").body, "app");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn not_ready_is_503_and_back() {
        let layer = HealthLayer::new().path("/ready").unwrap();
        let ready = layer.readiness();
        let client = TestClient::new(layer.layer(counting(Arc::default())));
        assert_eq!(client.get("/ready").status, StatusCode::OK);
        ready.set_ready(false);
        let resp = client.get("/ready");
        assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.body, "not ready\n");
        assert_eq!(client.get("/healthz").body, "app");
        ready.set_ready(true);
        assert_eq!(client.get("/ready").status, StatusCode::OK);
    }

    #[test]
    fn other_methods_are_405_and_head_has_no_body() {
        let client = TestClient::new(HealthLayer::new().layer(counting(Arc::default())));
        let post = http::Request::post("/healthz").body(Bytes::new()).unwrap();
        let resp = client.request(post);
        assert_eq!(resp.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers["allow"], "GET, HEAD");
        let head = http::Request::head("/healthz").body(Bytes::new()).unwrap();
        let resp = client.request(head);
        assert_eq!(resp.status, StatusCode::OK);
        assert!(resp.body.is_empty());
    }

    #[test]
    fn bad_paths_are_rejected() {
        assert!(HealthLayer::new().path("healthz").is_err());
        assert!(HealthLayer::new().path("/").is_err());
    }
}
