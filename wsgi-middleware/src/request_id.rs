//! `RequestId`: one id per request, in the environ and in the response.
//!
//! An incoming `X-Request-ID` (the header name is configurable) is reused
//! when trusted (the default; turn it off when clients are not your own
//! proxies) and valid: 1 to 200 visible ASCII characters, sent once. Otherwise
//! a new id is made: 32 lower-case hex digits from a process-wide counter
//! mixed with the time, the process id and a per-process random key (std's
//! `RandomState`), so ids are unique and hard to guess without a random
//! number crate.
//!
//! The application sees the id
//! - as the request header, so `HTTP_X_REQUEST_ID` holds it (an invalid
//!   incoming value is replaced), and
//! - as `vars["wsgi_middleware.request_id"]` ([`ENVIRON_KEY`]), whatever the
//!   header name.
//!
//! The response carries it in the same header, unless the application set
//! that header itself.
//!
//! ```
//! use tower_layer::Layer;
//! use wsgi_middleware::RequestIdLayer;
//! use wsgi_spec::{testing::TestClient, AppError, Body, Environ, StartResponse};
//!
//! fn app(env: Environ, sr: StartResponse) -> Result<Body, AppError> {
//!     sr.start(http::StatusCode::OK, http::HeaderMap::new())?;
//!     Ok(Body::full(env.get("HTTP_X_REQUEST_ID").unwrap_or_default().into_owned()))
//! }
//! let client = TestClient::new(RequestIdLayer::new().layer(app));
//! let req = http::Request::get("/").header("x-request-id", "abc-123").body(bytes::Bytes::new()).unwrap();
//! let resp = client.request(req);
//! assert_eq!(resp.body, "abc-123");
//! assert_eq!(resp.headers["x-request-id"], "abc-123");
//!
//! let made = client.get("/");
//! assert_eq!(made.body.len(), 32);
//! assert_eq!(made.headers["x-request-id"], &made.body[..]);
//! ```

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::HeaderName;
use http::HeaderValue;
use wsgi_spec::{AppError, Application, Body, Environ, StartResponse, Write};

use crate::Error;

/// The [`Environ::vars`] key holding the request id.
pub const ENVIRON_KEY: &str = "wsgi_middleware.request_id";

/// Configuration for [`RequestId`]: the header name (default
/// `x-request-id`) and whether incoming ids are trusted (default yes).
#[derive(Debug, Clone)]
pub struct RequestIdLayer {
    header: HeaderName,
    trust_incoming: bool,
}

impl RequestIdLayer {
    /// `X-Request-ID`, incoming ids trusted.
    #[must_use]
    pub fn new() -> RequestIdLayer {
        RequestIdLayer { header: HeaderName::from_static("x-request-id"), trust_incoming: true }
    }

    /// Use another header, e.g. `X-Correlation-ID`.
    ///
    /// # Errors
    /// [`Error::InvalidHeaderName`] when `name` is not a header name, or
    /// holds `_` (the environ drops such headers, SPEC.md ENV-10).
    pub fn header_name(mut self, name: &str) -> Result<RequestIdLayer, Error> {
        let bad = || Error::InvalidHeaderName(name.to_owned());
        if name.contains('_') {
            return Err(bad());
        }
        self.header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
        Ok(self)
    }

    /// Reuse valid incoming ids (`true`, the default) or always make a new one.
    #[must_use]
    pub fn trust_incoming(mut self, trust: bool) -> RequestIdLayer {
        self.trust_incoming = trust;
        self
    }
}

impl Default for RequestIdLayer {
    fn default() -> RequestIdLayer {
        RequestIdLayer::new()
    }
}

impl<A> tower_layer::Layer<A> for RequestIdLayer {
    type Service = RequestId<A>;

    fn layer(&self, inner: A) -> RequestId<A> {
        RequestId::new(inner, self.clone())
    }
}

/// Gives every request an id; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct RequestId<A> {
    inner: A,
    config: RequestIdLayer,
}

impl<A> RequestId<A> {
    /// Wrap `inner` with the configuration `config`.
    pub fn new(inner: A, config: RequestIdLayer) -> RequestId<A> {
        RequestId { inner, config }
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

/// True for an id worth keeping: 1 to 200 visible ASCII characters.
fn valid_id(v: &[u8]) -> bool {
    (1..=200).contains(&v.len()) && v.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// A new id: 32 hex digits.
#[must_use]
pub fn generate_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let keys = KEYS.get_or_init(RandomState::new);
    let half = |salt: u8| keys.hash_one((salt, n, now, std::process::id()));
    format!("{:016x}{:016x}", half(1), half(2))
}

impl<A: Application> Application for RequestId<A> {
    fn call(&self, mut environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
        let header = &self.config.header;
        let mut incoming = environ.headers.get_all(header).iter();
        let reuse = match (incoming.next(), incoming.next()) {
            (Some(v), None) if self.config.trust_incoming && valid_id(v.as_bytes()) => Some(v.clone()),
            _ => None,
        };
        let id = match reuse {
            Some(v) => v,
            None => HeaderValue::try_from(generate_id())?,
        };
        // Valid ids are visible ASCII, so this is the id as text.
        let text = String::from_utf8_lossy(id.as_bytes()).into_owned();
        environ.headers.insert(header.clone(), id.clone());
        environ.vars.insert(ENVIRON_KEY.to_owned(), text);
        let name = header.clone();
        let start = StartResponse::from_fn(move |status, mut headers, exc_info| -> Result<Write, wsgi_spec::Error> {
            if !headers.contains_key(&name) {
                headers.insert(name.clone(), id.clone());
            }
            start_response.call(status, headers, exc_info)
        });
        self.inner.call(environ, start)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashSet;

    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};
    use tower_layer::Layer;
    use wsgi_spec::testing::TestClient;

    use super::*;

    fn echo(env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        let header = env.get("HTTP_X_REQUEST_ID").map(|v| v.into_owned()).unwrap_or_default();
        let var = env.vars.get(ENVIRON_KEY).cloned().unwrap_or_default();
        Ok(Body::full(format!("{}|{var}", String::from_utf8_lossy(&header))))
    }

    fn with_id(client: &TestClient, name: &str, ids: &[&[u8]]) -> wsgi_spec::testing::TestResponse {
        let mut req = http::Request::get("/").body(Bytes::new()).unwrap();
        for id in ids {
            req.headers_mut()
                .append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_bytes(id).unwrap());
        }
        client.request(req)
    }

    #[test]
    fn valid_incoming_id_is_reused() {
        let client = TestClient::new(RequestIdLayer::new().layer(echo));
        let resp = with_id(&client, "x-request-id", &[b"req-42"]);
        assert_eq!(resp.body, "req-42|req-42");
        assert_eq!(resp.headers["x-request-id"], "req-42");
        let long = vec![b'a'; 200];
        assert_eq!(with_id(&client, "x-request-id", &[&long]).headers["x-request-id"].len(), 200);
    }

    #[test]
    fn invalid_incoming_ids_are_replaced() {
        let client = TestClient::new(RequestIdLayer::new().layer(echo));
        let long = vec![b'a'; 201];
        for bad in [&b"has space"[..], b"", &long, b"caf\xe9", b"tab\there"] {
            let resp = with_id(&client, "x-request-id", &[bad]);
            let id = resp.headers["x-request-id"].to_str().unwrap().to_owned();
            assert_eq!(id.len(), 32, "{bad:?}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(resp.body, format!("{id}|{id}"));
        }
        // Sent twice: which one is the id? Neither.
        let resp = with_id(&client, "x-request-id", &[b"one", b"two"]);
        assert_eq!(resp.headers["x-request-id"].len(), 32);
    }

    #[test]
    fn untrusted_incoming_ids_are_replaced() {
        let client = TestClient::new(RequestIdLayer::new().trust_incoming(false).layer(echo));
        let resp = with_id(&client, "x-request-id", &[b"forged"]);
        assert_ne!(resp.headers["x-request-id"], "forged");
        assert_eq!(resp.headers["x-request-id"].len(), 32);
    }

    #[test]
    fn generated_ids_are_unique() {
        let ids: HashSet<String> = (0..1000).map(|_| generate_id()).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn custom_header_name_and_app_header_wins() {
        let layer = RequestIdLayer::new().header_name("X-Correlation-ID").unwrap();
        let app = |env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            let mut headers = HeaderMap::new();
            if env.path_info == "/own" {
                headers.insert("x-correlation-id", HeaderValue::from_static("mine"));
            }
            sr.start(StatusCode::OK, headers)?;
            Ok(Body::full(env.vars.get(ENVIRON_KEY).cloned().unwrap_or_default()))
        };
        let client = TestClient::new(layer.layer(app));
        let resp = with_id(&client, "x-correlation-id", &[b"c-1"]);
        assert_eq!(resp.body, "c-1");
        assert_eq!(resp.headers["x-correlation-id"], "c-1");
        assert!(!resp.headers.contains_key("x-request-id"));
        let req = http::Request::get("/own").body(Bytes::new()).unwrap();
        assert_eq!(client.request(req).headers["x-correlation-id"], "mine");
        assert!(RequestIdLayer::new().header_name("x_request_id").is_err());
        assert!(RequestIdLayer::new().header_name("bad name").is_err());
    }

    #[test]
    fn error_pages_carry_the_id_too() {
        let app = |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            let mut h = HeaderMap::new();
            h.insert("content-type", HeaderValue::from_static("text/plain"));
            sr.start(StatusCode::OK, h.clone())?;
            // Changes its mind before any output (SR-12).
            sr.start_with_exc_info(StatusCode::NOT_FOUND, h, "gone".into())?;
            Ok(Body::full("nope"))
        };
        let client = TestClient::new(RequestIdLayer::new().layer(app));
        let resp = with_id(&client, "x-request-id", &[b"r1"]);
        assert_eq!(resp.status, StatusCode::NOT_FOUND);
        assert_eq!(resp.headers["x-request-id"], "r1");
    }
}
