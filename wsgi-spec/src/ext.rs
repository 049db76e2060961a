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

/// The typed extensions of an environ (ENV-24): a type map with the API of
/// `http::Extensions`.
///
/// The values every request has ([`ConnectionInfo`], [`InputTerminated`],
/// [`FileWrapper`]) are held in place, so an environ costs no map (and no
/// allocation) unless something else is added; any other type goes into an
/// `http::Extensions`. Lookups by type see both alike.
///
/// ```
/// use wsgi_spec::ext::{Extensions, InputTerminated};
/// let mut ext = Extensions::new();
/// assert!(ext.get::<InputTerminated>().is_none());
/// ext.insert(InputTerminated);
/// ext.insert(7u32);
/// assert_eq!(ext.get::<InputTerminated>(), Some(&InputTerminated));
/// assert_eq!(ext.remove::<u32>(), Some(7));
/// assert_eq!(ext.len(), 1);
/// ```
#[derive(Clone, Default)]
pub struct Extensions {
    conn: Option<ConnectionInfo>,
    input_terminated: Option<InputTerminated>,
    file_wrapper: Option<FileWrapper>,
    other: http::Extensions,
}

/// The slot of `T` in `$ext`, when `T` is one of the types held in place.
macro_rules! slot {
    ($ext:expr, $as:ident, $T:ty) => {{
        use std::any::Any;
        if let Some(s) = (&$ext.conn as &dyn Any).$as::<Option<$T>>() {
            Some(s)
        } else if let Some(s) = (&$ext.input_terminated as &dyn Any).$as::<Option<$T>>() {
            Some(s)
        } else {
            (&$ext.file_wrapper as &dyn Any).$as::<Option<$T>>()
        }
    }};
}

/// As [`slot!`], for a mutable slot.
macro_rules! slot_mut {
    ($ext:expr, $T:ty) => {{
        use std::any::Any;
        let ext = $ext;
        if let Some(s) = (&mut ext.conn as &mut dyn Any).downcast_mut::<Option<$T>>() {
            Some(s)
        } else if let Some(s) = (&mut ext.input_terminated as &mut dyn Any).downcast_mut::<Option<$T>>() {
            Some(s)
        } else if let Some(s) = (&mut ext.file_wrapper as &mut dyn Any).downcast_mut::<Option<$T>>() {
            Some(s)
        } else {
            None
        }
    }};
}

impl Extensions {
    /// No extensions.
    #[must_use]
    pub fn new() -> Extensions {
        Extensions::default()
    }

    /// The value of type `T`, if there is one.
    #[must_use]
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        match slot!(self, downcast_ref, T) {
            Some(s) => s.as_ref(),
            None => self.other.get::<T>(),
        }
    }

    /// The value of type `T`, mutably, if there is one.
    pub fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        use std::any::TypeId;
        let held = [TypeId::of::<ConnectionInfo>(), TypeId::of::<InputTerminated>(), TypeId::of::<FileWrapper>()];
        if held.contains(&TypeId::of::<T>()) {
            return slot_mut!(self, T).and_then(Option::as_mut);
        }
        self.other.get_mut::<T>()
    }

    /// Insert `value`, returning the previous value of its type.
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        if let Some(s) = slot_mut!(&mut *self, T) {
            return s.replace(value);
        }
        self.other.insert(value)
    }

    /// Remove and return the value of type `T`, if there is one.
    pub fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        if let Some(s) = slot_mut!(&mut *self, T) {
            return s.take();
        }
        self.other.remove::<T>()
    }

    /// How many values there are.
    #[must_use]
    pub fn len(&self) -> usize {
        usize::from(self.conn.is_some())
            + usize::from(self.input_terminated.is_some())
            + usize::from(self.file_wrapper.is_some())
            + self.other.len()
    }

    /// True when there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remove them all.
    pub fn clear(&mut self) {
        *self = Extensions::default();
    }

    /// Add all of `other`, replacing values of the same types.
    pub fn extend(&mut self, other: Extensions) {
        let Extensions { conn, input_terminated, file_wrapper, other } = other;
        if conn.is_some() {
            self.conn = conn;
        }
        if input_terminated.is_some() {
            self.input_terminated = input_terminated;
        }
        if file_wrapper.is_some() {
            self.file_wrapper = file_wrapper;
        }
        self.other.extend(other);
    }
}

impl From<http::Extensions> for Extensions {
    /// The extensions of a request: the types held in place move out of the
    /// map into their places.
    fn from(mut other: http::Extensions) -> Extensions {
        Extensions {
            conn: other.remove::<ConnectionInfo>(),
            input_terminated: other.remove::<InputTerminated>(),
            file_wrapper: other.remove::<FileWrapper>(),
            other,
        }
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("conn", &self.conn)
            .field("input_terminated", &self.input_terminated.is_some())
            .field("file_wrapper", &self.file_wrapper.is_some())
            .field("other", &self.other.len())
            .finish()
    }
}
