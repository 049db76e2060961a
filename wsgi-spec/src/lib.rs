//! # wsgi-spec: PEP 3333 for Rust
//!
//! The contract between web servers and blocking web applications, shaped
//! like Python's WSGI: an application is called with an **environ** and a
//! **start_response** callback and returns an **iterable body**. Any server
//! that implements it runs any application written against it, unchanged.
//!
//! `SPEC.md` at the repository root is the normative text; every rule id in
//! these docs (`SR-7`, `IN-2`...) refers to it.
//!
//! ```
//! use wsgi_spec::{testing::TestClient, AppError, Body, Environ, StartResponse};
//! use http::{header::CONTENT_TYPE, HeaderMap, HeaderValue, StatusCode};
//!
//! fn hello(environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
//!     let mut headers = HeaderMap::new();
//!     headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
//!     start_response.start(StatusCode::OK, headers)?;
//!     let who = environ.get("QUERY_STRING").unwrap_or_default().into_owned();
//!     Ok(Body::chunks([&b"Hello, "[..], &who[..]].map(bytes::Bytes::copy_from_slice)))
//! }
//!
//! let resp = TestClient::new(hello).get("/?world");
//! assert_eq!(resp.status, StatusCode::OK);
//! assert_eq!(resp.body, "Hello, world");
//! ```
//!
//! ## The pieces
//! - [`Application`]: the callable; functions and closures qualify.
//! - [`Environ`]: the request (typed PEP 3333 keys, headers as bytes, a map
//!   view with [`Environ::get`]); [`Input`] is `wsgi.input`, [`Errors`] is
//!   `wsgi.errors`; [`ext`] holds typed server extensions.
//! - [`StartResponse`] and [`Write`]: `start_response` and `write()`.
//! - [`Body`]: the iterable; dropping it is `close()`. [`FileBody`] is
//!   `wsgi.file_wrapper`.
//! - For servers: [`run::run`] drives one request through the sans-I/O
//!   [`driver::ResponseDriver`] into a [`run::ResponseSink`].
//! - [`lint::Lint`]: `wsgiref.validate` for Rust; [`testing::TestClient`]:
//!   call apps without sockets.
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod app;
pub mod body;
pub mod driver;
mod environ;
mod error;
pub mod errors;
pub mod ext;
mod input;
pub mod lint;
pub mod run;
mod start_response;
mod status;
pub mod testing;

pub use app::{Application, SharedApp};
pub use body::{Body, BodyIter, FileBody};
pub use environ::{
    http_key, percent_decode, protocol_str, CgiKey, CoreKey, Environ, Scheme, ServerInfo, CORE_CGI_KEYS,
};
pub use error::{AppError, Error, LintViolation, Side};
pub use errors::Errors;
pub use input::Input;
pub use start_response::{check_headers, is_hop_by_hop, StartResponse, Write, HOP_BY_HOP};
pub use status::Status;

/// `wsgi.version`: the version of PEP 3333 this contract mirrors.
pub const WSGI_VERSION: (u8, u8) = (1, 0);
