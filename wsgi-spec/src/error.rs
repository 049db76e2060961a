//! The crate's one error type.

use std::fmt;

/// An error raised by application code: any error, boxed.
///
/// This is the Rust counterpart of a Python exception escaping a WSGI
/// application. It is also what `exc_info` carries (rule EXC-1).
pub type AppError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong between a server and an application.
///
/// The `Display` text is meant for logs and is not part of the API; match on
/// the variants instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A status line that is not three digits, one space and a reason (SR-2).
    #[error("SR-2: invalid status {0:?}")]
    InvalidStatus(String),
    /// The application passed a hop-by-hop header to `start_response` (SR-7).
    #[error("SR-7: hop-by-hop header {0:?} from app")]
    HopByHopHeader(String),
    /// A header name or value that HTTP cannot carry (SR-4, SR-5).
    #[error("SR-4: invalid header {0:?}")]
    InvalidHeader(String),
    /// `start_response` was called a second time without `exc_info` (SR-15).
    #[error("SR-15: start_response called again without exc_info")]
    AlreadyStarted,
    /// `start_response` was called with `exc_info` after the head was sent:
    /// the original error, to be propagated by the application (SR-13).
    #[error("SR-13: headers already sent: {0}")]
    HeadersSent(#[source] AppError),
    /// `write()` was called before `start_response` (WR-6).
    #[error("WR-6: write() before start_response()")]
    WriteBeforeStart,
    /// `write()` was called after the application returned its body (WR-5).
    #[error("WR-5: write() called from inside the response iterable")]
    WriteAfterReturn,
    /// The body yielded data before `start_response` was called (SR-17).
    #[error("SR-17: body yielded data before start_response was called")]
    BodyBeforeStart,
    /// The application never called `start_response` (SR-17).
    #[error("SR-17: start_response was never called")]
    NeverStarted,
    /// The application's `Content-Length` header is not a non-negative integer (CL-1).
    #[error("CL-1: invalid Content-Length {0:?} from app")]
    InvalidContentLength(String),
    /// The body ended before the bytes promised by `Content-Length` (CL-2).
    #[error("CL-2: body shorter than Content-Length: {sent} of {expected} bytes")]
    ShortBody {
        /// The length the application declared.
        expected: u64,
        /// The bytes it produced.
        sent: u64,
    },
    /// The application failed (returned an error or panicked).
    #[error("application error: {0}")]
    App(#[source] AppError),
    /// The application panicked; the payload's message when it had one.
    #[error("application panicked: {0}")]
    Panic(String),
    /// The client went away or the server could not deliver the response.
    #[error("client disconnected: {0}")]
    Disconnected(#[source] std::io::Error),
    /// An I/O error reading the request body or a file body.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A rule of the contract was broken; the message starts with the rule id.
    #[error("{0}")]
    Lint(LintViolation),
}

impl Error {
    /// The SPEC.md rule id this error reports, when it reports one.
    #[must_use]
    pub fn rule(&self) -> Option<&str> {
        match self {
            Error::InvalidStatus(_) => Some("SR-2"),
            Error::HopByHopHeader(_) => Some("SR-7"),
            Error::InvalidHeader(_) => Some("SR-4"),
            Error::AlreadyStarted => Some("SR-15"),
            Error::HeadersSent(_) => Some("SR-13"),
            Error::WriteBeforeStart => Some("WR-6"),
            Error::WriteAfterReturn => Some("WR-5"),
            Error::BodyBeforeStart | Error::NeverStarted => Some("SR-17"),
            Error::InvalidContentLength(_) => Some("CL-1"),
            Error::ShortBody { .. } => Some("CL-2"),
            Error::Lint(v) => Some(v.rule),
            _ => None,
        }
    }
}

/// One broken rule found by [`Lint`](crate::lint::Lint): the rule id and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintViolation {
    /// The SPEC.md rule id, e.g. `"SR-7"`.
    pub rule: &'static str,
    /// Which side broke it.
    pub side: Side,
    /// What happened.
    pub message: String,
}

/// Which side of the contract broke a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Side {
    /// The server (or the middleware above the checked app).
    Server,
    /// The application (or the middleware below).
    App,
}

impl fmt::Display for LintViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.side {
            Side::Server => "server",
            Side::App => "app",
        };
        write!(f, "{}: {} ({side})", self.rule, self.message)
    }
}
