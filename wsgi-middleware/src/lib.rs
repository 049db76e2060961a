//! # wsgi-middleware: "postman" layers for wsgi-spec applications
//!
//! Middlewares that wrap any [`wsgi_spec::Application`] — a Rust app or a
//! Python WSGI app hosted by `wsgi-python` alike — each in the shape SPEC.md
//! section 5 gives: a `FooLayer` (the configuration, `Clone`, a
//! [`tower_layer::Layer`]) and a `Foo<A>` (the application wrapping `A`).
//! Each lives in its own module behind its own cargo feature; `full`
//! enables them all and `default` enables none.
//!
//! | feature | middleware | what it does |
//! |---|---|---|
//! | `static` | [`Static`] | serves a directory under a URL prefix (ETag, 304, Range, precompressed siblings) |
//! | `compression` | [`Compression`] | gzip / brotli by `Accept-Encoding`, streaming, `write()` too |
//! | `proxy-headers` | [`ProxyHeaders`] | `X-Forwarded-*` and `Forwarded` from trusted proxies into the environ |
//! | `mount` | [`Mount`] | several apps under path prefixes (`SCRIPT_NAME` / `PATH_INFO`) |
//! | `request-id` | [`RequestId`] | reuses or makes an `X-Request-ID`, in the environ and the response |
//! | `catch-panic` | [`CatchPanic`] | a 500 page for panics and errors before the head |
//! | `body-limit` | [`BodyLimit`] | 413 for request bodies over a limit |
//! | `health` | [`Health`] | `/healthz` with a readiness flag for graceful shutdown |
//! | `timeout` | [`Timeout`] | 504 when the app does not answer in time |
//! | `metrics` | [`Metrics`] | request counts, in-flight and latency as Prometheus text |
//! | `lint` | [`Lint`] | wsgi-spec's `wsgiref.validate`, re-exported |
//!
//! ## Composing layers
//!
//! Layers nest with plain [`Layer::layer`](tower_layer::Layer::layer) calls
//! (or `tower::ServiceBuilder`, which this crate does not depend on): the
//! last one applied is the outermost and sees the request first.
//!
//! ```
//! # #[cfg(all(feature = "mount", feature = "compression", feature = "request-id", feature = "catch-panic", feature = "health"))]
//! # fn main() {
//! use tower_layer::Layer;
//! use wsgi_middleware::{CatchPanicLayer, CompressionLayer, HealthLayer, MountLayer, RequestIdLayer};
//! use wsgi_spec::{testing::TestClient, AppError, Body, Environ, StartResponse};
//! use http::{header, HeaderMap, HeaderValue, StatusCode};
//!
//! fn site(env: Environ, sr: StartResponse) -> Result<Body, AppError> {
//!     let mut headers = HeaderMap::new();
//!     headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
//!     sr.start(StatusCode::OK, headers)?;
//!     let id = env.get("HTTP_X_REQUEST_ID").unwrap_or_default().into_owned();
//!     Ok(Body::full([b"<p>".repeat(600), id].concat()))
//! }
//! fn api(_env: Environ, _sr: StartResponse) -> Result<Body, AppError> {
//!     panic!("the API is broken");
//! }
//!
//! let app = MountLayer::new().mount("/api", api).unwrap().layer(site);
//! let app = CompressionLayer::new().layer(app);
//! let app = CatchPanicLayer::new().layer(app);
//! let app = RequestIdLayer::new().layer(app);
//! let app = HealthLayer::new().layer(app);
//! let client = TestClient::new(app);
//!
//! let req = http::Request::get("/").header("accept-encoding", "gzip").body(()).unwrap();
//! let resp = client.request(req.map(|()| bytes::Bytes::new()));
//! assert_eq!(resp.status, StatusCode::OK);
//! assert_eq!(resp.headers["content-encoding"], "gzip");
//! assert_eq!(resp.headers["x-request-id"].len(), 32);
//!
//! let resp = client.get("/api/users");
//! assert_eq!(resp.status, StatusCode::INTERNAL_SERVER_ERROR);
//! assert!(resp.headers.contains_key("x-request-id"));
//!
//! assert_eq!(client.get("/healthz").body, "ok\n");
//! # }
//! # #[cfg(not(all(feature = "mount", feature = "compression", feature = "request-id", feature = "catch-panic", feature = "health")))]
//! # fn main() {}
//! ```
//!
//! ## Errors
//! Configuration errors and the errors these layers raise are
//! [`Error`]; errors of the wrapped application pass through unchanged.
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]
// The table above links every middleware; with some features off, some of
// those links have no target.
#![cfg_attr(not(feature = "full"), allow(rustdoc::broken_intra_doc_links))]

mod error;
// Each helper is used by some of the features only.
#[allow(dead_code)]
mod util;

#[cfg(feature = "body-limit")]
pub mod body_limit;
#[cfg(feature = "catch-panic")]
pub mod catch_panic;
#[cfg(feature = "compression")]
pub mod compression;
#[cfg(feature = "health")]
pub mod health;
#[cfg(feature = "lint")]
pub mod lint;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "mount")]
pub mod mount;
#[cfg(feature = "proxy-headers")]
pub mod proxy_headers;
#[cfg(feature = "request-id")]
pub mod request_id;
#[cfg(feature = "static")]
pub mod static_files;
#[cfg(feature = "timeout")]
pub mod timeout;

pub use error::Error;

#[cfg(feature = "body-limit")]
pub use body_limit::{BodyLimit, BodyLimitLayer};
#[cfg(feature = "catch-panic")]
pub use catch_panic::{CatchPanic, CatchPanicLayer};
#[cfg(feature = "compression")]
pub use compression::{Compression, CompressionLayer};
#[cfg(feature = "health")]
pub use health::{Health, HealthLayer, Readiness};
#[cfg(feature = "lint")]
pub use lint::{Lint, LintLayer};
#[cfg(feature = "metrics")]
pub use metrics::{Metrics, MetricsLayer, MetricsRegistry};
#[cfg(feature = "mount")]
pub use mount::{Mount, MountLayer};
#[cfg(feature = "proxy-headers")]
pub use proxy_headers::{ProxyHeaders, ProxyHeadersLayer};
#[cfg(feature = "request-id")]
pub use request_id::{RequestId, RequestIdLayer};
#[cfg(feature = "static")]
pub use static_files::{Static, StaticLayer};
#[cfg(feature = "timeout")]
pub use timeout::{Timeout, TimeoutLayer};
