//! tower and a spec application, both ways round, served over hyper.
//!
//! **Inside**, before the app becomes a service: spec middleware are
//! `tower_layer::Layer`s over [`Application`]s, and `tower::ServiceBuilder`
//! only asks its layers for `Layer<S>` — not that `S` be a `Service` — so it
//! composes them too. [`spec_app`] builds
//!
//! ```text
//! ServiceBuilder::new()
//!     .layer(RequestIdLayer::new())   // wsgi-middleware
//!     .layer(LintLayer::new())        // wsgi_spec::lint: wsgiref.validate
//!     .service(app)                   // -> RequestId<Lint<fn>>: an Application
//! ```
//!
//! **Outside**, once [`SpecService`] made it an HTTP service: tower-http's
//! layers wrap it like any other `tower::Service` ([`serve`]):
//!
//! | layer | what it does here |
//! |---|---|
//! | `TraceLayer` | a span per request; the `on_response` hook counts responses (and logs them in `main`) |
//! | `RequestBodyLimitLayer` | `413` before the app runs when `Content-Length` is over the limit; a body without one is cut at the limit and the app sees a read error it can turn into `413` |
//! | `TimeoutLayer` | `504 Gateway Timeout` when the app has not answered in time (the app thread finishes on its own; the server keeps serving) |
//!
//! `TimeoutLayer` is built with `with_status_code` (tower-http 0.6.7
//! deprecated `new`, whose answer is `408 Request Timeout`): 504 is what a
//! slow application is, and browsers retry a 408 on their own. It needs a
//! response body with `Default`, which `SpecService`'s body has not, so the
//! body is boxed under it (`map_response`).
//!
//! App routes: `/` greets, `/upload` reads the request body and says how many
//! bytes came, `/slow?ms=N` sleeps `N` ms (default 2000) before answering.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::LengthLimitError;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;
use wsgi_middleware::RequestIdLayer;
use wsgi_server::{AppPool, ResponseBody, SpecService};
use wsgi_spec::ext::ConnectionInfo;
use wsgi_spec::lint::{LintLayer, LintReport};
use wsgi_spec::{AppError, Application, Body, Environ, ServerInfo, StartResponse};

fn text(start_response: StartResponse, status: StatusCode, body: impl Into<Bytes>) -> Result<Body, AppError> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    start_response.start(status, headers)?;
    Ok(Body::full(body.into()))
}

/// The bare spec application (routes in the [crate docs](crate)).
///
/// # Errors
/// A read error of the request body other than the body limit;
/// `start_response` errors are propagated.
pub fn app(mut environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
    match &environ.path_info[..] {
        b"/upload" => match environ.input.read_all() {
            Ok(data) => text(start_response, StatusCode::OK, format!("got {} bytes\n", data.len())),
            // A body without Content-Length, cut by RequestBodyLimitLayer.
            Err(e) if e.get_ref().is_some_and(|e| e.is::<LengthLimitError>()) => {
                text(start_response, StatusCode::PAYLOAD_TOO_LARGE, "payload too large\n")
            }
            Err(e) => Err(e.into()),
        },
        b"/slow" => {
            let query = String::from_utf8_lossy(&environ.query_string).into_owned();
            let ms = query.strip_prefix("ms=").and_then(|v| v.parse().ok()).unwrap_or(2000);
            std::thread::sleep(Duration::from_millis(ms));
            text(start_response, StatusCode::OK, "finally\n")
        }
        _ => text(start_response, StatusCode::OK, "hello from a spec app behind tower layers\n"),
    }
}

/// [`app`] wrapped in spec middleware with `tower::ServiceBuilder`, and the
/// lint's shared report.
///
/// The result is still an [`Application`]: no runtime, no HTTP yet, so the
/// spec's in-process client can call it.
///
/// ```
/// use wsgi_spec::testing::TestClient;
///
/// let (app, lint) = example_tower_layers::spec_app();
/// let resp = TestClient::new(app).get("/");
/// assert_eq!(resp.status, http::StatusCode::OK);
/// assert!(resp.headers.contains_key("x-request-id"));
/// assert!(lint.is_clean());
/// ```
#[must_use]
pub fn spec_app() -> (impl Application, LintReport) {
    let lint = LintLayer::new();
    let report = lint.report().clone();
    let app = ServiceBuilder::new().layer(RequestIdLayer::new()).layer(lint).service(app);
    (app, report)
}

/// The knobs of the tower-http layers.
#[derive(Debug, Clone)]
pub struct Options {
    /// `TimeoutLayer`: how long the app may take to produce the response head.
    pub timeout: Duration,
    /// `RequestBodyLimitLayer`: the largest request body, in bytes.
    pub body_limit: usize,
    /// Log a line per response to stderr (from `TraceLayer`'s `on_response`).
    pub log: bool,
    /// Counts responses seen by `TraceLayer`'s `on_response`.
    pub responses: Arc<AtomicU64>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            timeout: Duration::from_secs(1),
            body_limit: 64 * 1024,
            log: false,
            responses: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// The [`spec_app`] as a [`SpecService`] on `threads` app threads (with as
/// many queued requests), and the lint's report.
///
/// # Errors
/// When the pool's threads cannot be started.
pub fn spec_service(threads: usize) -> io::Result<(SpecService, LintReport)> {
    let (app, report) = spec_app();
    let info = ServerInfo { software: "example-tower-layers".into(), ..ServerInfo::default() };
    Ok((SpecService::new(Arc::new(app), AppPool::new(threads, threads)?, info), report))
}

// `boxed` and `OnResponse` are a named fn and a struct, not closures: as
// closures, their `&Response<..Box<dyn Error..>>` argument gets a lifetime
// that makes the connection future not `Send` ("higher-ranked lifetime
// error" at `tokio::spawn`).

/// The response body under `TimeoutLayer`: one with `Default`.
type BoxedBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

fn boxed(res: Response<ResponseBody>) -> Response<BoxedBody> {
    res.map(UnsyncBoxBody::new)
}

/// `TraceLayer`'s response hook: count, and maybe log.
#[derive(Debug, Clone)]
struct OnResponse {
    responses: Arc<AtomicU64>,
    log: bool,
    peer: SocketAddr,
}

impl<B> tower_http::trace::OnResponse<B> for OnResponse {
    fn on_response(self, response: &Response<B>, latency: Duration, _span: &Span) {
        self.responses.fetch_add(1, Ordering::Relaxed);
        if self.log {
            eprintln!("{} {} in {latency:?}", self.peer, response.status());
        }
    }
}

/// Accept connections on `listener` forever, serving each over HTTP/1.1
/// with `spec` inside tower-http's trace, body limit and timeout layers.
///
/// # Errors
/// When accepting fails.
pub async fn serve(listener: TcpListener, spec: SpecService, options: Options) -> io::Result<()> {
    let local = listener.local_addr().ok();
    loop {
        let (stream, peer) = listener.accept().await?;
        let conn = ConnectionInfo { peer: Some(peer), local, secure: false };
        let on_response = OnResponse { responses: Arc::clone(&options.responses), log: options.log, peer };
        let log = options.log;
        let service = ServiceBuilder::new()
            .layer(TraceLayer::new_for_http().on_response(on_response))
            .layer(RequestBodyLimitLayer::new(options.body_limit))
            .layer(TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, options.timeout))
            // TimeoutLayer builds its own response with `Default::default()`.
            .map_response(boxed)
            .service(spec.for_connection(conn));
        tokio::spawn(async move {
            let io = TokioIo::new(stream);
            let conn =
                http1::Builder::new().timer(TokioTimer::new()).serve_connection(io, TowerToHyperService::new(service));
            if let Err(e) = conn.await {
                if log {
                    eprintln!("{peer}: {e}");
                }
            }
        });
    }
}
