//! # wsgi-simple-server: wsgiref's simple server, for Rust
//!
//! A small, blocking HTTP/1.1 server for [`wsgi_spec`] applications, built
//! on `std` alone (no async runtime, no HTTP library): meant for
//! development, tests and embedding, the role Python's
//! `wsgiref.simple_server` plays, but correct enough to pass the same
//! conformance kit as the reference server `wsgi-server`.
//!
//! ```
//! use std::io::{Read, Write};
//! use wsgi_simple_server::SimpleServer;
//! use wsgi_spec::{AppError, Body, Environ, StartResponse};
//!
//! fn hello(_env: Environ, start_response: StartResponse) -> Result<Body, AppError> {
//!     start_response.start(http::StatusCode::OK, http::HeaderMap::new())?;
//!     Ok(Body::full("Hello, World!\n"))
//! }
//!
//! let server = SimpleServer::bind("127.0.0.1:0")?.threads(4).serve(hello)?;
//! let mut conn = std::net::TcpStream::connect(server.local_addr())?;
//! conn.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
//! let mut response = String::new();
//! conn.read_to_string(&mut response)?;
//! assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
//! assert!(response.ends_with("\r\n\r\nHello, World!\n"));
//! server.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## How it works
//! A fixed pool of threads accepts connections from one listener; each
//! thread serves one connection at a time, request after request
//! (keep-alive, pipelining in order), and calls the application itself
//! through [`wsgi_spec::run::run`]. The server only moves bytes: the spec
//! crate builds the environ, implements `wsgi.input` over the server's
//! body reader, and decides the response head, its framing and every error
//! answer; the server writes them.
//!
//! - **Requests** are read by its own strict parser (request line, header
//!   fields, limits of 4094 / 100 / 8190 bytes answered with 414 / 431,
//!   `Content-Length` or chunked, no ambiguity tolerated: a bad request is
//!   answered 400, 501 or 505 and the application is not called).
//! - **Bodies** are read only when the application reads `wsgi.input`:
//!   `Expect: 100-continue` is answered then; whatever the application
//!   leaves unread is skipped before the next request (or the connection is
//!   closed).
//! - **Responses** get `Date` and `Server` (unless the application set
//!   them) and the framing the driver chose: `Content-Length`, chunked (the
//!   final `0` chunk only when complete), close-delimited for HTTP/1.0, or
//!   no body for HEAD, 204 and 304. Each chunk is flushed before the
//!   application makes the next (BODY-1). A response that fails after its
//!   head is cut off by shutting the socket down (EXC-3).
//! - **Connections** stay open between requests for
//!   [`keep_alive`](SimpleServer::keep_alive) (HTTP/1.1 by default, HTTP/1.0
//!   with `Connection: keep-alive`) and close on `Connection: close`.
//!
//! `wsgi.errors` goes where [`ServerInfo::errors`](wsgi_spec::ServerInfo)
//! says (standard error by default); the server logs nothing else.
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod body;
mod connection;
mod request;
mod response;
mod server;

pub use request::Limits;
pub use server::{Handle, SimpleServer};

/// What can go wrong starting a [`SimpleServer`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The address could not be resolved or bound.
    #[error("cannot bind the listening socket: {0}")]
    Bind(#[source] std::io::Error),
    /// The listener could not be used (its address, its blocking mode).
    #[error("cannot use the listening socket: {0}")]
    Listener(#[source] std::io::Error),
    /// A server thread could not be started.
    #[error("cannot start a server thread: {0}")]
    Spawn(#[source] std::io::Error),
}
