//! The crate's one error type.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// What can go wrong configuring or running these middlewares.
///
/// Configuration errors come from the layers' constructors; the others reach
/// the application as the source of an [`io::Error`] or an
/// [`AppError`](wsgi_spec::AppError). The `Display` text is meant for logs
/// and is not part of the API; match on the variants instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A URL path prefix that does not start with `/`, or is otherwise unusable.
    #[error("invalid path prefix {0:?}")]
    InvalidPrefix(String),
    /// The directory to serve files from cannot be used.
    #[error("invalid static root {path:?}: {source}")]
    InvalidRoot {
        /// The directory as given.
        path: PathBuf,
        /// Why it cannot be used.
        #[source]
        source: io::Error,
    },
    /// A header name that cannot be used (not a token, or with `_`, which the
    /// environ drops, SPEC.md ENV-10).
    #[error("invalid header name {0:?}")]
    InvalidHeaderName(String),
    /// A trusted proxy that is not an IP address or a CIDR network.
    #[error("invalid trusted proxy {0:?}: not an IP address or CIDR network")]
    InvalidNetwork(String),
    /// The request body is longer than the configured limit.
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The application did not start its response in time.
    #[error("application did not respond within {0:?}")]
    Timeout(Duration),
    /// The application panicked; the panic's message when it had one.
    #[error("application panicked: {0}")]
    Panic(String),
    /// A compressor failed.
    #[error("compression failed: {0}")]
    Compression(#[source] io::Error),
    /// A helper thread could not be started.
    #[error("cannot start a thread: {0}")]
    Spawn(#[source] io::Error),
}
