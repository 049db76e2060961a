//! From the spec's `Environ` to PEP 3333's `environ` dict.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyString, PyTuple};
use wsgi_spec::{Environ, StartResponse};

use crate::objects::{ErrorStream, FileWrapper, InputStream, StartResponseFn};

/// Key strings by header name, with FNV-1a: a cheap hash for short,
/// already-validated names (the cache is bounded, so flooding is harmless).
pub(crate) type KeyCache =
    std::collections::HashMap<http::HeaderName, Py<PyString>, std::hash::BuildHasherDefault<Fnv>>;

/// The FNV-1a hasher.
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Python objects built once and reused for every request.
pub(crate) struct Consts {
    /// Interned key strings (their hash is computed once), by key.
    core_keys: std::collections::HashMap<&'static str, Py<PyString>>,
    /// `HTTP_*` key strings by header name, made on first use.
    header_keys: std::sync::Mutex<KeyCache>,
    pub(crate) copy_context: Py<PyAny>,
    pub(crate) run: Py<PyString>,
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
        let core_keys =
            wsgi_spec::CORE_CGI_KEYS.iter().chain(["wsgi.url_scheme"].iter()).map(|&key| (key, k(key))).collect();
        Ok(Consts {
            core_keys,
            header_keys: std::sync::Mutex::new(KeyCache::default()),
            copy_context: py.import("contextvars")?.getattr("copy_context")?.unbind(),
            run: k("run"),
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
pub(crate) fn latin1_str<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    let len = isize::try_from(bytes.len()).map_err(|_| pyo3::exceptions::PyOverflowError::new_err("value too long"))?;
    // SAFETY: a 1-byte-kind string is made from `len` bytes at `bytes`,
    // which CPython copies; the result is a new reference (or NULL with an
    // exception set, which `from_owned_ptr_or_err` turns into an error).
    unsafe {
        let obj =
            pyo3::ffi::PyUnicode_FromKindAndData(pyo3::ffi::PyUnicode_1BYTE_KIND as _, bytes.as_ptr().cast(), len);
        Ok(Bound::from_owned_ptr_or_err(py, obj)?.cast_into_unchecked())
    }
}

impl Consts {
    fn key<'py>(&self, py: Python<'py>, cache: &mut KeyCache, key: wsgi_spec::CgiKey<'_>) -> Bound<'py, PyString> {
        match key {
            wsgi_spec::CgiKey::Core(k) => match self.core_keys.get(k) {
                Some(s) => s.bind(py).clone(),
                None => PyString::intern(py, k),
            },
            wsgi_spec::CgiKey::Header(name) => {
                if let Some(s) = cache.get(name) {
                    return s.bind(py).clone();
                }
                let s = PyString::intern(py, &wsgi_spec::http_key(name));
                // Bounded: clients choose header names.
                if cache.len() < 1024 {
                    cache.insert(name.clone(), s.clone().unbind());
                }
                s
            }
            other => PyString::intern(py, &other.to_key()),
        }
    }
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
    let mut failed = None;
    let mut cache = c.header_keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    environ.for_each_cgi_var(|key, value| {
        if failed.is_some() || key == wsgi_spec::CgiKey::Core("wsgi.url_scheme") {
            return;
        }
        let r = latin1_str(py, &value).and_then(|v| dict.set_item(c.key(py, &mut cache, key), v));
        if let Err(e) = r {
            failed = Some(e);
        }
    });
    drop(cache);
    if let Some(e) = failed {
        return Err(e);
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
