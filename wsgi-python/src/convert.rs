//! From the spec's `Environ` to PEP 3333's `environ` dict.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyString, PyTuple};
use wsgi_spec::{Environ, StartResponse};

use crate::objects::{ErrorStream, FileWrapper, InputStream, StartResponseFn};

/// Python objects built once and reused for every request.
pub(crate) struct Consts {
    version: Py<PyTuple>,
    http: Py<PyString>,
    https: Py<PyString>,
    file_wrapper: Py<PyAny>,
    k_version: Py<PyString>,
    k_url_scheme: Py<PyString>,
    k_input: Py<PyString>,
    k_errors: Py<PyString>,
    k_multithread: Py<PyString>,
    k_multiprocess: Py<PyString>,
    k_run_once: Py<PyString>,
    k_input_terminated: Py<PyString>,
    k_file_wrapper: Py<PyString>,
}

impl Consts {
    pub(crate) fn new(py: Python<'_>) -> PyResult<Consts> {
        let k = |s: &str| PyString::intern(py, s).unbind();
        Ok(Consts {
            version: PyTuple::new(py, [1, 0])?.unbind(),
            http: k("http"),
            https: k("https"),
            file_wrapper: py.get_type::<FileWrapper>().into_any().unbind(),
            k_version: k("wsgi.version"),
            k_url_scheme: k("wsgi.url_scheme"),
            k_input: k("wsgi.input"),
            k_errors: k("wsgi.errors"),
            k_multithread: k("wsgi.multithread"),
            k_multiprocess: k("wsgi.multiprocess"),
            k_run_once: k("wsgi.run_once"),
            k_input_terminated: k("wsgi.input_terminated"),
            k_file_wrapper: k("wsgi.file_wrapper"),
        })
    }

    pub(crate) fn file_wrapper_type<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.file_wrapper.bind(py)
    }
}

/// A native string from bytes, decoded as latin-1 (UNI-3): every byte is
/// the code point of the same value.
pub(crate) fn latin1_str<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    if bytes.is_ascii() {
        // ASCII is valid UTF-8 and means the same in latin-1.
        if let Ok(s) = std::str::from_utf8(bytes) {
            return PyString::new(py, s);
        }
    }
    let s: String = bytes.iter().map(|&b| char::from(b)).collect();
    PyString::new(py, &s)
}

/// The latin-1 bytes of a native string; `None` if it holds a code point
/// above U+00FF (UNI-1).
pub(crate) fn latin1_bytes(s: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
    if s.is_ascii() {
        return Some(std::borrow::Cow::Borrowed(s.as_bytes()));
    }
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect::<Option<Vec<u8>>>().map(std::borrow::Cow::Owned)
}

/// Build the `environ` dict and the `start_response` callable for a request.
pub(crate) fn environ_dict<'py>(
    py: Python<'py>,
    c: &Consts,
    mut environ: Environ,
    start_response: StartResponse,
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, StartResponseFn>)> {
    let dict = PyDict::new(py);
    for (key, value) in environ.cgi_vars() {
        if key == "wsgi.url_scheme" {
            continue;
        }
        dict.set_item(PyString::intern(py, &key), latin1_str(py, &value))?;
    }
    let scheme = match environ.url_scheme {
        wsgi_spec::Scheme::Https => &c.https,
        _ => &c.http,
    };
    dict.set_item(c.k_url_scheme.bind(py), scheme.bind(py))?;
    dict.set_item(c.k_version.bind(py), c.version.bind(py))?;
    dict.set_item(c.k_multithread.bind(py), PyBool::new(py, environ.multithread))?;
    dict.set_item(c.k_multiprocess.bind(py), PyBool::new(py, environ.multiprocess))?;
    dict.set_item(c.k_run_once.bind(py), PyBool::new(py, environ.run_once))?;
    let terminated = environ.extensions.get::<wsgi_spec::ext::InputTerminated>().is_some();
    dict.set_item(c.k_input_terminated.bind(py), PyBool::new(py, terminated))?;
    dict.set_item(c.k_file_wrapper.bind(py), c.file_wrapper.bind(py))?;
    let errors = environ.errors.clone();
    let input = std::mem::replace(&mut environ.input, wsgi_spec::Input::empty());
    dict.set_item(c.k_input.bind(py), Bound::new(py, InputStream::new(input))?)?;
    dict.set_item(c.k_errors.bind(py), Bound::new(py, ErrorStream::new(errors.clone()))?)?;
    let sr = Bound::new(py, StartResponseFn::new(start_response))?;
    Ok((dict, sr))
}
