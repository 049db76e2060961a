//! The response body: PEP 3333's iterable (BODY-*), closed by `Drop`.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io;

use bytes::Bytes;

use crate::AppError;

/// A source of body chunks pulled one at a time: the iterator behind an
/// application's response iterable.
///
/// `close()` of PEP 3333 is `Drop`: a server drops the iterator when the
/// request completes, on an error and on disconnect (BODY-3).
///
/// # Blocking
/// `next_chunk` may block (it is application code); servers call it on a
/// thread where blocking is allowed, and drop it there too.
pub trait BodyIter: Send {
    /// The next chunk, `None` at the end, or the application's error.
    fn next_chunk(&mut self) -> Option<Result<Bytes, AppError>>;

    /// The exact number of bytes still to come, when known (APP-5). A server
    /// uses it to send `Content-Length`; it must be accurate.
    fn len_hint(&self) -> Option<u64> {
        None
    }
}

struct IterAdapter<I>(I);

impl<I, B, E> BodyIter for IterAdapter<I>
where
    I: Iterator<Item = Result<B, E>> + Send,
    B: Into<Bytes>,
    E: Into<AppError>,
{
    fn next_chunk(&mut self) -> Option<Result<Bytes, AppError>> {
        self.0.next().map(|r| r.map(Into::into).map_err(Into::into))
    }
}

/// A file sent as the body: the role of `wsgi.file_wrapper` (FW-*).
///
/// A server may transmit it with `sendfile(2)` (it can take the raw file
/// descriptor from [`FileBody::file`]); any server can also iterate it, which
/// reads `block_size` bytes at a time with positioned reads, so the file's own
/// cursor is never moved.
#[derive(Debug)]
pub struct FileBody {
    file: File,
    offset: u64,
    len: u64,
    block_size: usize,
}

impl FileBody {
    /// The default block size for reads: 64 KiB.
    pub const DEFAULT_BLOCK_SIZE: usize = 64 * 1024;

    /// Send `file` from its current position to its end (FW-6).
    ///
    /// # Errors
    /// When the file's metadata or position cannot be read, or it is not a
    /// regular file (use an iterator body for pipes and the like).
    pub fn new(mut file: File) -> io::Result<FileBody> {
        use std::io::Seek;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
        let offset = file.stream_position()?;
        let len = meta.len().saturating_sub(offset);
        Ok(FileBody { file, offset, len, block_size: Self::DEFAULT_BLOCK_SIZE })
    }

    /// Send `len` bytes of `file` starting at `offset` (a byte range).
    #[must_use]
    pub fn with_range(file: File, offset: u64, len: u64) -> FileBody {
        FileBody { file, offset, len, block_size: Self::DEFAULT_BLOCK_SIZE }
    }

    /// Read in blocks of `size` bytes when iterated (the second argument of
    /// `wsgi.file_wrapper`); zero keeps the default.
    #[must_use]
    pub fn block_size(mut self, size: usize) -> FileBody {
        if size > 0 {
            self.block_size = size;
        }
        self
    }

    /// The file.
    #[must_use]
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Where the bytes to send start.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// How many bytes are still to send.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing is left to send.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Send at most `max` bytes (a server enforcing `Content-Length`, CL-1).
    pub fn truncate(&mut self, max: u64) {
        self.len = self.len.min(max);
    }

    /// Record that `n` bytes were sent by other means (e.g. `sendfile`).
    pub fn advance(&mut self, n: u64) {
        let n = n.min(self.len);
        self.offset += n;
        self.len -= n;
    }

    /// Read the next block.
    ///
    /// # Errors
    /// The read error; an unexpected end of file is reported as
    /// [`io::ErrorKind::UnexpectedEof`] (the file shrank while being sent).
    ///
    /// # Blocking
    /// Reads the file.
    pub fn read_block(&mut self) -> io::Result<Option<Bytes>> {
        use std::os::unix::fs::FileExt;
        if self.len == 0 {
            return Ok(None);
        }
        let want = usize::try_from(self.len).unwrap_or(usize::MAX).min(self.block_size);
        let mut buf = vec![0u8; want];
        let n = loop {
            match self.file.read_at(&mut buf, self.offset) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being sent"));
        }
        buf.truncate(n);
        self.advance(n as u64);
        Ok(Some(Bytes::from(buf)))
    }
}

enum Kind {
    Empty,
    Full(Bytes),
    Chunks(VecDeque<Bytes>, u64),
    Iter(Box<dyn BodyIter>),
    File(FileBody),
}

/// A response body: zero or more byte chunks, produced lazily (APP-4).
///
/// Dropping a `Body` is PEP 3333's `close()`: it drops the iterator behind it
/// and then runs the hooks added with [`Body::on_close`], exactly once, on
/// every path (BODY-3).
///
/// ```
/// use wsgi_spec::Body;
/// let mut body = Body::chunks(["Hello, ", "world"]);
/// assert_eq!(body.len_hint(), Some(12));
/// let all: Vec<_> = body.by_ref().map(Result::unwrap).collect();
/// assert_eq!(all.concat(), b"Hello, world");
///
/// let closed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
/// let flag = closed.clone();
/// let body = Body::full("x").on_close(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
/// drop(body);
/// assert!(closed.load(std::sync::atomic::Ordering::SeqCst));
/// ```
pub struct Body {
    kind: Kind,
    on_close: Vec<Box<dyn FnOnce() + Send>>,
}

impl Body {
    /// No bytes.
    #[must_use]
    pub fn empty() -> Body {
        Body::from_kind(Kind::Empty)
    }

    /// One chunk; its length is known.
    pub fn full(data: impl Into<Bytes>) -> Body {
        Body::from_kind(Kind::Full(data.into()))
    }

    /// A list of chunks, like a WSGI app returning a list; the total length is
    /// known.
    pub fn chunks<I>(chunks: I) -> Body
    where
        I: IntoIterator,
        I::Item: Into<Bytes>,
    {
        let chunks: VecDeque<Bytes> = chunks.into_iter().map(Into::into).collect();
        let total = chunks.iter().map(|c| c.len() as u64).sum();
        Body::from_kind(Kind::Chunks(chunks, total))
    }

    /// A lazy body from an iterator of fallible chunks (a generator).
    // Not `FromIterator`: the iterator is kept, so it must be `Send + 'static`,
    // bounds `FromIterator::from_iter` cannot require.
    #[allow(clippy::should_implement_trait)]
    pub fn from_iter<I, B, E>(iter: I) -> Body
    where
        I: IntoIterator<Item = Result<B, E>>,
        I::IntoIter: Send + 'static,
        B: Into<Bytes>,
        E: Into<AppError>,
    {
        Body::from_body_iter(IterAdapter(iter.into_iter()))
    }

    /// A lazy body from any [`BodyIter`].
    pub fn from_body_iter(iter: impl BodyIter + 'static) -> Body {
        Body::from_kind(Kind::Iter(Box::new(iter)))
    }

    /// A file (the `wsgi.file_wrapper` role); servers may `sendfile` it.
    #[must_use]
    pub fn file(file: FileBody) -> Body {
        Body::from_kind(Kind::File(file))
    }

    fn from_kind(kind: Kind) -> Body {
        Body { kind, on_close: Vec::new() }
    }

    /// Run `hook` when the body is closed (dropped), after the iterator
    /// behind it is dropped. Hooks run in the order they were added.
    #[must_use]
    pub fn on_close(mut self, hook: impl FnOnce() + Send + 'static) -> Body {
        self.on_close.push(Box::new(hook));
        self
    }

    /// The exact number of bytes still to come, when known.
    #[must_use]
    pub fn len_hint(&self) -> Option<u64> {
        match &self.kind {
            Kind::Empty => Some(0),
            Kind::Full(b) => Some(b.len() as u64),
            Kind::Chunks(_, total) => Some(*total),
            Kind::Iter(it) => it.len_hint(),
            Kind::File(f) => Some(f.len()),
        }
    }

    /// True when this body is a file a server may send with `sendfile`.
    #[must_use]
    pub fn is_file(&self) -> bool {
        matches!(self.kind, Kind::File(_))
    }

    /// Take the file out of a file body, for servers that transmit it
    /// themselves; the body is left empty and its close hooks still run when
    /// it is dropped.
    pub fn take_file(&mut self) -> Option<FileBody> {
        match std::mem::replace(&mut self.kind, Kind::Empty) {
            Kind::File(f) => Some(f),
            other => {
                self.kind = other;
                None
            }
        }
    }

    /// The whole body, when it is at most one chunk made in advance (empty,
    /// full, or a list of one) with no close hooks: taking it and dropping
    /// the rest runs no application code, so a server may deliver it in one
    /// go. `None` (and the body untouched) otherwise.
    pub(crate) fn take_whole(&mut self) -> Option<Bytes> {
        if !self.on_close.is_empty() {
            return None;
        }
        match &mut self.kind {
            Kind::Empty => Some(Bytes::new()),
            Kind::Full(b) => Some(std::mem::take(b)),
            Kind::Chunks(q, total) if q.len() <= 1 => {
                *total = 0;
                Some(q.pop_front().unwrap_or_default())
            }
            _ => None,
        }
    }

    /// The next chunk, `None` at the end. Empty chunks are passed on as they
    /// come (an app may yield `b""`, STRM-2).
    ///
    /// # Blocking
    /// Runs application code or reads a file.
    pub fn next_chunk(&mut self) -> Option<Result<Bytes, AppError>> {
        match &mut self.kind {
            Kind::Empty => None,
            Kind::Full(_) => match std::mem::replace(&mut self.kind, Kind::Empty) {
                Kind::Full(b) => Some(Ok(b)),
                _ => None,
            },
            Kind::Chunks(q, total) => {
                let c = q.pop_front()?;
                *total -= c.len() as u64;
                Some(Ok(c))
            }
            Kind::Iter(it) => it.next_chunk(),
            Kind::File(f) => f.read_block().map_err(AppError::from).transpose(),
        }
    }
}

impl Iterator for Body {
    type Item = Result<Bytes, AppError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk()
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::empty()
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        // Close the iterator first (PEP 3333 close()), then the hooks.
        self.kind = Kind::Empty;
        for hook in self.on_close.drain(..) {
            hook();
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Empty => "empty",
            Kind::Full(_) => "full",
            Kind::Chunks(..) => "chunks",
            Kind::Iter(_) => "iter",
            Kind::File(_) => "file",
        };
        f.debug_struct("Body").field("kind", &kind).field("len_hint", &self.len_hint()).finish()
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        Body::full(b)
    }
}
impl From<&'static str> for Body {
    fn from(s: &'static str) -> Body {
        Body::full(s)
    }
}
impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Body {
        Body::full(s)
    }
}
impl From<String> for Body {
    fn from(s: String) -> Body {
        Body::full(s)
    }
}
impl From<Vec<u8>> for Body {
    fn from(s: Vec<u8>) -> Body {
        Body::full(s)
    }
}
