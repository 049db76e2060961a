//! Typed server extensions carried in [`Environ::extensions`](crate::Environ::extensions).
//!
//! PEP 3333 servers advertise capabilities with extra environ keys
//! (`wsgi.file_wrapper`, `wsgi.input_terminated`, `wsgi.early_hints`). Here
//! each capability is a type a server inserts and an app looks up, so the
//! check is portable across servers (ENV-13, EXT-1).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;

use crate::Error;

/// The server transmits [`Body::file`](crate::Body::file) bodies from the
/// file itself, not through the application's iteration: PEP 3333's
/// `wsgi.file_wrapper` (FW-1).
///
/// Every server accepts file bodies; this marker says it reads the file on
/// its own side (`wsgi-server`: large positioned reads, block by block;
/// a server may use `sendfile(2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileWrapper;

/// `wsgi.input_terminated`: reading `wsgi.input` until it returns nothing is
/// safe, even without `Content-Length` (IN-10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InputTerminated;

/// `wsgi.early_hints`: send a `103 Early Hints` response before the final one.
///
/// Servers insert it only where the protocol allows (not for HTTP/1.0).
/// Calling it after the head was sent does nothing.
#[derive(Clone)]
pub struct EarlyHints(Arc<dyn Fn(HeaderMap) -> Result<(), Error> + Send + Sync>);

impl EarlyHints {
    /// A handle that calls `send` with the hint headers.
    pub fn new(send: impl Fn(HeaderMap) -> Result<(), Error> + Send + Sync + 'static) -> EarlyHints {
        EarlyHints(Arc::new(send))
    }

    /// Send the hints (typically `Link` headers).
    ///
    /// # Errors
    /// The server's error when the hints could not be sent.
    pub fn send(&self, headers: HeaderMap) -> Result<(), Error> {
        (self.0)(headers)
    }
}

impl fmt::Debug for EarlyHints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EarlyHints")
    }
}

/// What a server knows about the connection a request arrived on. Servers
/// put it into the `http::Request` extensions they hand to
/// [`Environ::from_request`](crate::Environ::from_request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionInfo {
    /// The client's address, when the transport has one (not on Unix sockets).
    pub peer: Option<SocketAddr>,
    /// The server's address the request came in on.
    pub local: Option<SocketAddr>,
    /// True when the connection is encrypted (TLS): `wsgi.url_scheme` `https`.
    pub secure: bool,
}

/// The part of the path where the application is mounted: SCRIPT_NAME
/// (ENV-3), percent-decoded, without a trailing `/`.
///
/// A server or router that mounts a spec app under a prefix inserts it into
/// the request extensions, and [`Environ::from_request`](crate::Environ::from_request)
/// moves it into `script_name` and removes it from the front of the path when
/// it matches there at a segment boundary (`/app` matches `/app` and
/// `/app/x`, not `/apple`). The request must carry the full path: a router
/// that strips the prefix from the URI puts the original URI back first, or a
/// path that repeats the prefix (`/app/app/x`) would lose it twice.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScriptName(pub Bytes);
