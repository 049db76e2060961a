//! # wsgi-server: the reference `wsgi-spec` server
//!
//! Serves any [`wsgi_spec::Application`] over HTTP/1.0, HTTP/1.1 and HTTP/2
//! (h2c) with tokio and hyper. Every request's bytes pass a strict parser
//! before hyper sees them, so malformed requests are refused (400, 413, 414,
//! 431, 501, 505) without reaching the app. Applications run on a bounded
//! pool of threads; when it is full the server answers 503 at once.
//!
//! ```no_run
//! use wsgi_spec::{AppError, Body, Environ, StartResponse};
//! fn hello(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
//!     sr.start(http::StatusCode::OK, http::HeaderMap::new())?;
//!     Ok(Body::full("Hello"))
//! }
//! let bound = wsgi_server::Server::new()
//!     .bind("127.0.0.1:8000".parse()?)
//!     .threads(4)
//!     .bind_all()?;
//! bound.run_until(std::sync::Arc::new(hello), async { let _ = tokio::signal::ctrl_c().await; })?;
//! # Ok::<(), wsgi_server::Error>(())
//! ```

pub mod accesslog;
#[cfg(feature = "mimalloc")]
pub mod alloc;
pub mod bind;
mod bridge;
mod guard;
pub mod inline;
mod io;
pub mod logging;
pub mod master;
pub mod pool;
pub mod proxy;
mod sendfile;
mod server;
mod service;
pub mod settings;
#[cfg(feature = "tls")]
pub mod tls;

pub use bind::{Bind, Listener};
pub use bridge::ResponseBody;
pub use pool::AppPool;
pub use sendfile::sendfile_bytes;
pub use server::{Bound, Server, Shutdown, ShutdownHandle};
pub use service::{SpecFuture, SpecService};

/// Everything that can go wrong starting or running the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bind address that cannot be parsed.
    #[error("invalid bind address {0}")]
    InvalidBind(String),
    /// An address that cannot be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(String, #[source] std::io::Error),
    /// A setting with a value it cannot take.
    #[error("{0}")]
    InvalidSetting(String),
    /// A TLS certificate or key that cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// Any other I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
