//! `wsgi.errors`: the application's error stream (ERR-*).

use std::fmt;
use std::sync::{Arc, Mutex};

/// Where a server sends what applications write to [`Errors`]: its error log.
///
/// A sink receives whole lines, without the trailing newline.
pub trait ErrorSink: Send + Sync {
    /// Log one line.
    fn line(&self, line: &str);
}

/// The default sink: standard error.
#[derive(Debug, Clone, Copy, Default)]
pub struct StderrSink;

impl ErrorSink for StderrSink {
    fn line(&self, line: &str) {
        eprintln!("{line}");
    }
}

/// A sink that keeps lines in memory; useful in tests.
#[derive(Debug, Clone, Default)]
pub struct MemorySink(Arc<Mutex<Vec<String>>>);

impl MemorySink {
    /// A new, empty sink.
    #[must_use]
    pub fn new() -> MemorySink {
        MemorySink::default()
    }
    /// The lines logged so far.
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl ErrorSink for MemorySink {
    fn line(&self, line: &str) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line.to_owned());
    }
}

/// PEP 3333's `wsgi.errors`: a text stream with `write`, `writelines` and
/// `flush` (ERR-1), line-buffered into the server's [`ErrorSink`].
///
/// Any text is accepted (ERR-3). A partial line is held until a newline,
/// [`flush`](Errors::flush) or the drop of the last handle. Clones share the
/// same stream.
///
/// ```
/// use wsgi_spec::{Errors, errors::MemorySink};
/// let sink = MemorySink::new();
/// let errors = Errors::new(sink.clone());
/// errors.write("half a ");
/// errors.write("line\nand more");
/// assert_eq!(sink.lines(), ["half a line"]);
/// errors.flush();
/// assert_eq!(sink.lines(), ["half a line", "and more"]);
/// ```
#[derive(Clone)]
pub struct Errors {
    inner: Arc<ErrorsInner>,
}

struct ErrorsInner {
    sink: Arc<dyn ErrorSink>,
    partial: Mutex<String>,
}

impl Errors {
    /// A stream writing into `sink`.
    pub fn new(sink: impl ErrorSink + 'static) -> Errors {
        Errors::from_arc(Arc::new(sink))
    }

    /// A stream writing into a shared sink.
    #[must_use]
    pub fn from_arc(sink: Arc<dyn ErrorSink>) -> Errors {
        Errors { inner: Arc::new(ErrorsInner { sink, partial: Mutex::new(String::new()) }) }
    }

    /// Whether `other` is a clone of this stream (the same buffer and
    /// sink), so an adapter can reuse what it built for one with the other.
    #[must_use]
    pub fn same_stream(&self, other: &Errors) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// A stream writing to standard error.
    #[must_use]
    pub fn stderr() -> Errors {
        Errors::new(StderrSink)
    }

    /// `write(str)`: append text; complete lines go to the sink.
    pub fn write(&self, text: &str) {
        let mut partial = self.inner.partial.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        partial.push_str(text);
        while let Some(i) = partial.find('\n') {
            let line: String = partial.drain(..=i).collect();
            self.inner.sink.line(line.trim_end_matches(['\n', '\r']));
        }
    }

    /// `writelines(seq)`: write each item.
    pub fn writelines<I, S>(&self, lines: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for l in lines {
            self.write(l.as_ref());
        }
    }

    /// `flush()`: pass on a pending partial line (ERR-4).
    pub fn flush(&self) {
        let mut partial = self.inner.partial.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !partial.is_empty() {
            let line = std::mem::take(&mut *partial);
            self.inner.sink.line(&line);
        }
    }
}

impl Drop for ErrorsInner {
    fn drop(&mut self) {
        let partial = self.partial.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !partial.is_empty() {
            self.sink.line(partial);
        }
    }
}

impl fmt::Write for &Errors {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        Errors::write(self, s);
        Ok(())
    }
}

impl std::io::Write for &Errors {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Errors::write(self, &String::from_utf8_lossy(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Errors::flush(self);
        Ok(())
    }
}

impl fmt::Debug for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Errors").finish_non_exhaustive()
    }
}
