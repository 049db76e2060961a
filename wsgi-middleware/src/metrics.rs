//! `Metrics`: request counts by status class, requests in flight and a
//! latency histogram, served as Prometheus text at a path (default
//! `/metrics`).
//!
//! A request is counted when its body is closed (or when the application
//! fails or panics in `call`), under the class of the last status the
//! application gave `start_response` (`5xx` when it gave none: the server
//! then answers 500). Its latency runs from `call` to the close of its body.
//! The metrics path itself is not counted. Every [`Metrics`] a
//! [`MetricsLayer`] makes shares its [`MetricsRegistry`].
//!
//! ```
//! use tower_layer::Layer;
//! use wsgi_middleware::MetricsLayer;
//! use wsgi_spec::{testing::TestClient, AppError, Body, Environ, StartResponse};
//!
//! fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
//!     sr.start(http::StatusCode::OK, http::HeaderMap::new())?;
//!     Ok(Body::full("hi"))
//! }
//! let layer = MetricsLayer::new();
//! let client = TestClient::new(layer.layer(app));
//! let _ = client.get("/");
//! let _ = client.get("/other");
//! assert_eq!(layer.registry().requests("2xx"), 2);
//! let text = String::from_utf8(client.get("/metrics").body.to_vec()).unwrap();
//! assert!(text.contains("wsgi_requests_total{class=\"2xx\"} 2\n"));
//! assert!(text.contains("wsgi_request_duration_seconds_count 2\n"));
//! ```

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use wsgi_spec::{AppError, Application, Body, Environ, StartResponse};

use crate::util::{normalize_prefix, text_response};
use crate::Error;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

#[derive(Default)]
struct Inner {
    requests: [AtomicU64; 6],
    in_flight: AtomicI64,
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; 12],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// The shared counters: clones see the same values.
#[derive(Clone, Default)]
pub struct MetricsRegistry(Arc<Inner>);

impl MetricsRegistry {
    /// Empty counters.
    #[must_use]
    pub fn new() -> MetricsRegistry {
        MetricsRegistry::default()
    }

    /// Requests counted under `class` (`"1xx"` … `"5xx"`, `"other"`).
    #[must_use]
    pub fn requests(&self, class: &str) -> u64 {
        CLASSES.iter().position(|c| *c == class).map_or(0, |i| self.0.requests[i].load(Ordering::Relaxed))
    }

    /// Requests being answered now.
    #[must_use]
    pub fn in_flight(&self) -> i64 {
        self.0.in_flight.load(Ordering::Relaxed)
    }

    /// The metrics in Prometheus' text format (version 0.0.4).
    #[must_use]
    pub fn render(&self) -> String {
        let m = &self.0;
        let mut out = String::new();
        out.push_str("# HELP wsgi_requests_total Requests answered, by status class.\n");
        out.push_str("# TYPE wsgi_requests_total counter\n");
        for (class, n) in CLASSES.iter().zip(&m.requests) {
            let _ = writeln!(out, "wsgi_requests_total{{class=\"{class}\"}} {}", n.load(Ordering::Relaxed));
        }
        out.push_str("# HELP wsgi_requests_in_flight Requests being answered.\n");
        out.push_str("# TYPE wsgi_requests_in_flight gauge\n");
        let _ = writeln!(out, "wsgi_requests_in_flight {}", m.in_flight.load(Ordering::Relaxed));
        out.push_str("# HELP wsgi_request_duration_seconds Time from the call to the close of the body.\n");
        out.push_str("# TYPE wsgi_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, n) in m.buckets.iter().enumerate() {
            cumulative += n.load(Ordering::Relaxed);
            let le = BUCKETS.get(i).map_or_else(|| "+Inf".to_owned(), ToString::to_string);
            let _ = writeln!(out, "wsgi_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let micros = m.sum_micros.load(Ordering::Relaxed);
        let _ = writeln!(out, "wsgi_request_duration_seconds_sum {}.{:06}", micros / 1_000_000, micros % 1_000_000);
        let _ = writeln!(out, "wsgi_request_duration_seconds_count {}", m.count.load(Ordering::Relaxed));
        out
    }

    fn record(&self, status: u16, seconds: f64) {
        let m = &self.0;
        let class = match status {
            100..=599 => usize::from(status / 100 - 1),
            _ => 5,
        };
        m.requests[class].fetch_add(1, Ordering::Relaxed);
        let bucket = BUCKETS.iter().position(|&b| seconds <= b).unwrap_or(BUCKETS.len());
        m.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        // Whole microseconds; sub-microsecond latencies round down.
        let micros = std::time::Duration::from_secs_f64(seconds).as_micros();
        m.sum_micros.fetch_add(u64::try_from(micros).unwrap_or(u64::MAX), Ordering::Relaxed);
        m.count.fetch_add(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsRegistry").field("in_flight", &self.in_flight()).finish_non_exhaustive()
    }
}

/// Configuration for [`Metrics`]: the path the metrics are served at and
/// the registry.
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    path: String,
    registry: MetricsRegistry,
}

impl MetricsLayer {
    /// Serve `/metrics` from a new registry.
    #[must_use]
    pub fn new() -> MetricsLayer {
        MetricsLayer { path: "/metrics".to_owned(), registry: MetricsRegistry::new() }
    }

    /// Serve the metrics at `path` (compared with `PATH_INFO`).
    ///
    /// # Errors
    /// [`Error::InvalidPrefix`] when `path` does not start with `/` or is `/`.
    pub fn path(mut self, path: &str) -> Result<MetricsLayer, Error> {
        self.path = normalize_prefix(path, false)?;
        Ok(self)
    }

    /// Count into `registry` (e.g. one shared by several stacks).
    #[must_use]
    pub fn with_registry(mut self, registry: MetricsRegistry) -> MetricsLayer {
        self.registry = registry;
        self
    }

    /// The registry.
    #[must_use]
    pub fn registry(&self) -> MetricsRegistry {
        self.registry.clone()
    }
}

impl Default for MetricsLayer {
    fn default() -> MetricsLayer {
        MetricsLayer::new()
    }
}

impl<A> tower_layer::Layer<A> for MetricsLayer {
    type Service = Metrics<A>;

    fn layer(&self, inner: A) -> Metrics<A> {
        Metrics::new(inner, self.clone())
    }
}

/// Measures `A`'s requests and serves the metrics; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Metrics<A> {
    inner: A,
    config: MetricsLayer,
}

impl<A> Metrics<A> {
    /// Wrap `inner` with the configuration `config`.
    pub fn new(inner: A, config: MetricsLayer) -> Metrics<A> {
        Metrics { inner, config }
    }

    /// The registry.
    #[must_use]
    pub fn registry(&self) -> MetricsRegistry {
        self.config.registry()
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

/// Records one request when dropped: on the body's close, on an error, or
/// while unwinding from a panic.
struct Measure {
    registry: MetricsRegistry,
    started: Instant,
    status: Arc<AtomicU16>,
}

impl Drop for Measure {
    fn drop(&mut self) {
        let status = match self.status.load(Ordering::SeqCst) {
            0 => 500,
            s => s,
        };
        self.registry.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.registry.record(status, self.started.elapsed().as_secs_f64());
    }
}

impl<A: Application> Application for Metrics<A> {
    fn call(&self, environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
        if environ.path_info == self.config.path.as_bytes() {
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
            let text = self.config.registry.render();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            headers.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
            start_response.start(StatusCode::OK, headers)?;
            return Ok(Body::full(text));
        }
        let registry = self.config.registry.clone();
        registry.0.in_flight.fetch_add(1, Ordering::Relaxed);
        let status = Arc::new(AtomicU16::new(0));
        let measure = Measure { registry, started: Instant::now(), status: status.clone() };
        let start = StartResponse::from_fn(move |s, headers, exc_info| {
            let write = start_response.call(s.clone(), headers, exc_info)?;
            status.store(s.code().as_u16(), Ordering::SeqCst);
            Ok(write)
        });
        let body = self.inner.call(environ, start)?;
        Ok(body.on_close(move || drop(measure)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;
    use tower_layer::Layer;
    use wsgi_spec::testing::TestClient;

    use super::*;

    fn app(env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        match &env.path_info[..] {
            b"/missing" => {
                sr.start(StatusCode::NOT_FOUND, HeaderMap::new())?;
                Ok(Body::full("nf"))
            }
            b"/error" => Err("failed".into()),
            b"/panic" => panic!("boom"),
            b"/slow" => {
                std::thread::sleep(std::time::Duration::from_millis(30));
                sr.start(StatusCode::OK, HeaderMap::new())?;
                Ok(Body::empty())
            }
            _ => {
                sr.start(StatusCode::OK, HeaderMap::new())?;
                Ok(Body::full("ok"))
            }
        }
    }

    #[test]
    fn counts_by_class_and_serves_prometheus_text() {
        let layer = MetricsLayer::new();
        let reg = layer.registry();
        let c = TestClient::new(layer.layer(app));
        let _ = c.get("/");
        let _ = c.get("/slow");
        let _ = c.get("/missing");
        let _ = c.get("/error");
        assert_eq!(reg.requests("2xx"), 2);
        assert_eq!(reg.requests("4xx"), 1);
        assert_eq!(reg.requests("5xx"), 1);
        assert_eq!(reg.in_flight(), 0);
        let resp = c.get("/metrics");
        assert_eq!(resp.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
        let text = String::from_utf8(resp.body.to_vec()).unwrap();
        assert!(text.contains("# TYPE wsgi_requests_total counter\n"));
        assert!(text.contains("wsgi_requests_total{class=\"4xx\"} 1\n"));
        assert!(text.contains("wsgi_requests_in_flight 0\n"));
        assert!(text.contains("wsgi_request_duration_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(text.contains("wsgi_request_duration_seconds_count 4\n"));
        // The slow one is above 25 ms; cumulative buckets never decrease.
        let buckets: Vec<u64> = text
            .lines()
            .filter(|l| l.starts_with("wsgi_request_duration_seconds_bucket"))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(buckets.len(), 12);
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]));
        assert!(buckets[2] <= 3, "{text}");
        // The metrics path is not counted.
        assert_eq!(reg.requests("2xx"), 2);
    }

    #[test]
    fn in_flight_until_the_body_is_closed_and_panics_count() {
        let layer = MetricsLayer::new().path("/m").unwrap();
        let reg = layer.registry();
        let m = layer.layer(app);
        let (parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
        let env = Environ::from_request(parts, wsgi_spec::Input::empty(), &wsgi_spec::ServerInfo::default());
        let sr = StartResponse::from_fn(|_, _, _| Ok(wsgi_spec::Write::from_fn(|_| Ok(()))));
        let body = m.call(env, sr).unwrap();
        assert_eq!(reg.in_flight(), 1);
        drop(body);
        assert_eq!(reg.in_flight(), 0);
        assert_eq!(reg.requests("2xx"), 1);

        let c = TestClient::new(m);
        assert_eq!(c.get("/panic").status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(reg.requests("5xx"), 1);
        assert_eq!(reg.in_flight(), 0);
        let post = c.request(http::Request::post("/m").body(Bytes::new()).unwrap());
        assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(c.get("/m").body.starts_with(b"# HELP"));
        assert!(MetricsLayer::new().path("metrics").is_err());
    }
}
