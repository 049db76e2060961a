//! The Python objects of PEP 3333: `wsgi.input`, `wsgi.errors`,
//! `start_response`, `write` and `wsgi.file_wrapper`.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use pyo3::exceptions::{PyOSError, PyStopIteration, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use wsgi_spec::{AppError, Errors, Input, StartResponse, Status, Write};

use crate::convert::latin1_bytes;

/// A Python exception that escaped the application, as an [`AppError`].
/// Its traceback was written to `wsgi.errors` when it was caught.
pub struct PyAppError {
    summary: String,
    err: PyErr,
}

impl PyAppError {
    /// The exception.
    #[must_use]
    pub fn pyerr(&self) -> &PyErr {
        &self.err
    }
}

impl fmt::Debug for PyAppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary)
    }
}

impl fmt::Display for PyAppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary)
    }
}

impl std::error::Error for PyAppError {}

fn summary(py: Python<'_>, err: &PyErr) -> String {
    let name = err.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".into());
    let msg = err.value(py).str().map(|s| s.to_string()).unwrap_or_default();
    if msg.is_empty() {
        name
    } else {
        format!("{name}: {msg}")
    }
}

/// Write the traceback of `err` to the error stream.
pub(crate) fn log_traceback(py: Python<'_>, err: &PyErr, errors: &Errors) {
    let text = py
        .import("traceback")
        .and_then(|tb| tb.call_method1("format_exception", (err.get_type(py), err.value(py), err.traceback(py))))
        .and_then(|lines| lines.extract::<Vec<String>>())
        .map(|lines| lines.concat())
        .unwrap_or_else(|_| format!("{}\n", summary(py, err)));
    errors.write(&text);
    errors.flush();
}

/// An exception from the application: log its traceback, make it an
/// [`AppError`]. An exception carrying a spec error (e.g. `start_response`
/// refusing a header) is logged the same way.
pub(crate) fn app_error(py: Python<'_>, err: PyErr, errors: &Errors) -> AppError {
    log_traceback(py, &err, errors);
    Box::new(PyAppError { summary: summary(py, &err), err })
}

/// `wsgi.input`.
#[pyclass(frozen, module = "wsgi_rs", name = "Input")]
pub(crate) struct InputStream {
    inner: Mutex<Input>,
}

impl InputStream {
    pub(crate) fn new(input: Input) -> Self {
        InputStream { inner: Mutex::new(input) }
    }

    /// Run `f` on the input with the GIL released (reads may wait for the
    /// network).
    fn with<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut Input) -> std::io::Result<T> + Send) -> PyResult<T> {
        py.detach(|| {
            let mut input = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut input)
        })
        .map_err(|e| PyOSError::new_err(format!("reading the request body: {e}")))
    }
}

fn size_arg(size: Option<&Bound<'_, PyAny>>) -> PyResult<Option<usize>> {
    match size {
        None => Ok(None),
        Some(s) if s.is_none() => Ok(None),
        Some(s) => {
            let n: i64 = s.extract().map_err(|_| PyTypeError::new_err("size must be an integer or None"))?;
            Ok(usize::try_from(n).ok())
        }
    }
}

#[pymethods]
impl InputStream {
    /// `read(size=-1)`: up to `size` bytes; all that is left when negative or omitted.
    #[pyo3(signature = (size=None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyBytes>> {
        let size = size_arg(size)?;
        let data = self.with(py, |i| match size {
            Some(n) => i.read_size(n),
            None => i.read_all(),
        })?;
        Ok(PyBytes::new(py, &data))
    }

    /// `readline(size=-1)`: the next line, with its newline.
    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyBytes>> {
        let size = size_arg(size)?;
        let data = self.with(py, |i| i.readline(size))?;
        Ok(PyBytes::new(py, &data))
    }

    /// `readlines(hint=-1)`: the remaining lines.
    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyList>> {
        let hint = size_arg(hint)?;
        let lines = self.with(py, |i| i.readlines(hint))?;
        PyList::new(py, lines.iter().map(|l| PyBytes::new(py, l)))
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let line = self.with(py, |i| i.readline(None))?;
        if line.is_empty() {
            return Err(PyStopIteration::new_err(()));
        }
        Ok(PyBytes::new(py, &line))
    }
}

/// `wsgi.errors`: a text stream into the server's error log.
#[pyclass(frozen, module = "wsgi_rs", name = "Errors")]
pub(crate) struct ErrorStream {
    inner: Errors,
}

impl ErrorStream {
    pub(crate) fn new(inner: Errors) -> Self {
        ErrorStream { inner }
    }
}

#[pymethods]
impl ErrorStream {
    /// `write(str)`.
    fn write(&self, text: &Bound<'_, PyAny>) -> PyResult<()> {
        let s =
            text.cast::<PyString>().map_err(|_| PyTypeError::new_err("wsgi.errors.write() argument must be str"))?;
        self.inner.write(&s.to_string_lossy());
        Ok(())
    }

    /// `writelines(seq)`.
    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(&line?)?;
        }
        Ok(())
    }

    /// `flush()`.
    fn flush(&self) {
        self.inner.flush();
    }
}

/// The object behind a request's `start_response`: the application gets
/// its bound method `start_response` (a fast call, no argument tuple), and
/// calling it returns [`WriteFn`]. Both are reused for later requests when
/// nothing else holds them (see [`Responder`]).
#[pyclass(frozen, module = "wsgi_rs", name = "StartResponse")]
pub(crate) struct StartResponseFn {
    inner: Mutex<Option<StartResponse>>,
    write: Py<WriteFn>,
}

/// A `start_response` callable and the object behind it, kept together so
/// they can be reused: a request's objects are handed to the next request
/// only when the application kept no reference to them ([`exclusive`]).
///
/// [`exclusive`]: Responder::exclusive
pub(crate) struct Responder {
    /// The bound method `obj.start_response`: what the application gets.
    pub(crate) func: Py<PyAny>,
    obj: Py<StartResponseFn>,
}

impl Responder {
    pub(crate) fn new(py: Python<'_>) -> PyResult<Responder> {
        let write = Py::new(py, WriteFn { inner: Mutex::new(None) })?;
        let obj = Py::new(py, StartResponseFn { inner: Mutex::new(None), write })?;
        let func = obj.bind(py).getattr(pyo3::intern!(py, "start_response"))?.unbind();
        Ok(Responder { func, obj })
    }

    /// Serve `inner`'s request.
    pub(crate) fn arm(&self, inner: StartResponse) {
        *lock(&self.obj.get().inner) = Some(inner);
    }

    /// True when only this value holds the objects: the bound method, its
    /// `self` (referenced by this value and by the bound method) and the
    /// `write` callable (referenced by its `StartResponse` object only).
    pub(crate) fn exclusive(&self, _py: Python<'_>) -> bool {
        // SAFETY: reading reference counts with the GIL held (the token).
        unsafe {
            pyo3::ffi::Py_REFCNT(self.func.as_ptr()) == 1
                && pyo3::ffi::Py_REFCNT(self.obj.as_ptr()) == 2
                && pyo3::ffi::Py_REFCNT(self.obj.get().write.as_ptr()) == 1
        }
    }

    /// Forget the request (so its state is dropped now, not at the next
    /// request); only when [`exclusive`](Responder::exclusive).
    pub(crate) fn disarm(&self) {
        let obj = self.obj.get();
        lock(&obj.inner).take();
        lock(&obj.write.get().inner).take();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn parse_status(status: &Bound<'_, PyAny>) -> PyResult<Status> {
    let s = status
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("status must be str, not {}", type_name(status))))?;
    let s = s.to_str()?;
    let bytes = latin1_bytes(s).ok_or_else(|| PyValueError::new_err(format!("status {s:?} is not latin-1")))?;
    Status::parse(&bytes).map_err(|e| PyValueError::new_err(e.to_string()))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

fn parse_headers(headers: &Bound<'_, PyAny>) -> PyResult<HeaderMap> {
    let list = headers
        .cast::<PyList>()
        .map_err(|_| PyTypeError::new_err(format!("response_headers must be a list, not {}", type_name(headers))))?;
    // Room for what the server adds (`Server`, a computed `Content-Length`):
    // a full map would be reallocated for them.
    let mut map = HeaderMap::with_capacity(list.len() + 2);
    for item in list.iter() {
        let pair = item.cast::<PyTuple>().map_err(|_| {
            PyTypeError::new_err(format!("each header must be a (name, value) tuple, not {}", type_name(&item)))
        })?;
        if pair.len() != 2 {
            return Err(PyTypeError::new_err(format!(
                "each header must be a (name, value) tuple, got {} items",
                pair.len()
            )));
        }
        let (name, value) = (pair.get_item(0)?, pair.get_item(1)?);
        let name = name
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err(format!("header name must be str, not {}", type_name(&name))))?;
        let value = value
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err(format!("header value must be str, not {}", type_name(&value))))?;
        // Leading and trailing whitespace is not part of a field value
        // (RFC 9110 5.5); Django's Set-Cookie starts with a space.
        let (name, value) = (name.to_str()?, value.to_str()?.trim_matches([' ', '\t']));
        let name_h = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| PyValueError::new_err(format!("invalid header name {name:?}")))?;
        let vbytes = latin1_bytes(value)
            .ok_or_else(|| PyValueError::new_err(format!("header {name:?}: value {value:?} is not latin-1")))?;
        let value_h = HeaderValue::from_bytes(&vbytes)
            .map_err(|_| PyValueError::new_err(format!("header {name:?}: value {value:?} holds control characters")))?;
        map.append(name_h, value_h);
    }
    Ok(map)
}

#[pymethods]
impl StartResponseFn {
    /// `start_response(status, response_headers, exc_info=None)`.
    #[pyo3(signature = (status, response_headers, exc_info=None))]
    fn start_response(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        response_headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<WriteFn>> {
        let status = parse_status(status)?;
        let headers = parse_headers(response_headers)?;
        let exc: Option<AppError> = match exc_info {
            Some(e) if !e.is_none() => {
                let t = e.cast::<PyTuple>().map_err(|_| PyTypeError::new_err("exc_info must be a tuple or None"))?;
                let value = t.get_item(1)?;
                let err = PyErr::from_value(value);
                Some(Box::new(PyAppError { summary: summary(py, &err), err }))
            }
            _ => None,
        };
        let result = match &*lock(&self.inner) {
            Some(inner) => inner.call(status, headers, exc),
            None => return Err(PyValueError::new_err("start_response called outside of a request")),
        };
        match result {
            Ok(write) => {
                *lock(&self.write.get().inner) = Some(write);
                Ok(self.write.clone_ref(py))
            }
            Err(wsgi_spec::Error::HeadersSent(original)) => match original.downcast::<PyAppError>() {
                // Re-raise the application's own exception (SR-13).
                Ok(e) => Err(e.err),
                Err(other) => Err(PyValueError::new_err(other.to_string())),
            },
            Err(e) => Err(PyValueError::new_err(e.to_string())),
        }
    }
}

/// The `write(data)` callable.
#[pyclass(frozen, module = "wsgi_rs", name = "Write")]
pub(crate) struct WriteFn {
    inner: Mutex<Option<Write>>,
}

#[pymethods]
impl WriteFn {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let b = data
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err(format!("write() argument must be bytes, not {}", type_name(data))))?;
        let bytes = Bytes::copy_from_slice(b.as_bytes());
        let Some(inner) = lock(&self.inner).clone() else {
            return Err(PyValueError::new_err("write() called outside of a request"));
        };
        py.detach(|| inner.write(bytes)).map_err(|e| match e {
            wsgi_spec::Error::Disconnected(io) => PyOSError::new_err(format!("client disconnected: {io}")),
            other => PyValueError::new_err(other.to_string()),
        })
    }
}

/// `wsgi.file_wrapper(filelike, blksize=8192)`: an iterable over the file;
/// when it is the application's result and `fileno()` gives a regular file,
/// the server sends the file itself, from where the file object stands to
/// its end, outside the GIL: with `sendfile(2)` on plain HTTP/1
/// connections, else with positioned reads in Rust of `blksize` bytes but
/// at least 64 KiB. Other file-likes are iterated, calling their
/// `read(blksize)`.
#[pyclass(module = "wsgi_rs", name = "FileWrapper")]
pub(crate) struct FileWrapper {
    pub(crate) filelike: Py<PyAny>,
    pub(crate) blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        FileWrapper { filelike, blksize: blksize.max(1) }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let data = self.filelike.bind(py).call_method1("read", (self.blksize,))?;
        if data.len().unwrap_or(0) == 0 {
            return Err(PyStopIteration::new_err(()));
        }
        Ok(data)
    }

    /// Close the file, when it can be closed (FW-3).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let f = self.filelike.bind(py);
        if f.hasattr("close")? {
            f.call_method0("close")?;
        }
        Ok(())
    }
}
