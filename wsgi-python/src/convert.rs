//! From the spec's `Environ` to PEP 3333's `environ` dict.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyString, PyTuple};
use wsgi_spec::{Environ, StartResponse};

use crate::objects::{ErrorStream, FileWrapper, InputStream, StartResponseFn};

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

/// Values longer than this are never cached (see [`Slot`]).
const CACHED_VALUE_MAX: usize = 128;

/// A key string and the last value string made for it: requests repeat
/// most of their values (method, protocol, host, server name and port, the
/// client's address, `Accept`, `User-Agent`...), and a Python string is
/// immutable, so an equal value reuses the string instead of making one.
pub(crate) struct Slot {
    key: Py<PyString>,
    last: Option<(Vec<u8>, Py<PyString>)>,
}

impl Slot {
    fn new(key: Py<PyString>) -> Slot {
        Slot { key, last: None }
    }

    /// Set `key: value` in `dict`, reusing the last value string if equal.
    fn set(&mut self, py: Python<'_>, dict: &Bound<'_, PyDict>, value: &[u8]) -> PyResult<()> {
        let v = match &mut self.last {
            Some((bytes, s)) if bytes.as_slice() == value => s.bind(py).clone(),
            last => {
                let s = latin1_str(py, value)?;
                if value.len() <= CACHED_VALUE_MAX {
                    match last {
                        Some((bytes, old)) => {
                            bytes.clear();
                            bytes.extend_from_slice(value);
                            *old = s.clone().unbind();
                        }
                        None => *last = Some((value.to_vec(), s.clone().unbind())),
                    }
                }
                s
            }
        };
        dict_set(dict, self.key.bind(py), &v)
    }
}

/// The strings reused across requests.
pub(crate) struct Cache {
    /// One slot per core key, by `CoreKey::index`.
    core: Vec<Slot>,
    /// `HTTP_*` slots by header name, made on first use (bounded).
    headers: std::collections::HashMap<http::HeaderName, Slot, std::hash::BuildHasherDefault<Fnv>>,
    /// Slots of `Environ::vars` names (`SERVER_SOFTWARE`, deployer
    /// variables), made on first use (bounded).
    vars: Vec<(Box<str>, Slot)>,
    /// The constant part of every environ, for the flags it was made with.
    template: Option<(u8, Py<PyDict>)>,
    /// The last `wsgi.errors` object, for the stream it writes to (the
    /// server's, the same for every request unless a middleware swaps it).
    errors: Option<(wsgi_spec::Errors, Py<ErrorStream>)>,
    /// A `wsgi.input` for requests without a body: reading it gives b""
    /// whoever reads it, so one object serves them all.
    empty_input: Option<Py<InputStream>>,
}

/// Python objects built once and reused for every request.
pub(crate) struct Consts {
    cache: std::sync::Mutex<Cache>,
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
        let core = wsgi_spec::CoreKey::ALL.iter().map(|key| Slot::new(k(key.as_str()))).collect();
        Ok(Consts {
            cache: std::sync::Mutex::new(Cache {
                core,
                headers: Default::default(),
                vars: Vec::new(),
                template: None,
                errors: None,
                empty_input: None,
            }),
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

/// The latin-1 bytes of a native string; `None` if it holds a code point
/// above U+00FF (UNI-1).
pub(crate) fn latin1_bytes(s: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
    if s.is_ascii() {
        return Some(std::borrow::Cow::Borrowed(s.as_bytes()));
    }
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect::<Option<Vec<u8>>>().map(std::borrow::Cow::Owned)
}

/// `dict[key] = value`.
fn dict_set(dict: &Bound<'_, PyDict>, key: &Bound<'_, PyString>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    // SAFETY: three valid objects held by the caller, with the GIL (the
    // `Bound`s prove it); PyDict_SetItem takes its own references.
    let r = unsafe { pyo3::ffi::PyDict_SetItem(dict.as_ptr(), key.as_ptr(), value.as_ptr()) };
    if r == 0 {
        Ok(())
    } else {
        Err(PyErr::fetch(dict.py()))
    }
}

impl Consts {
    /// The constant entries of every environ (`wsgi.*` but input and
    /// errors), in a dict made large enough for a whole environ, so a copy
    /// of it takes the request's entries without growing.
    fn template<'py>(&self, py: Python<'py>, cache: &mut Cache, environ: &Environ) -> PyResult<Bound<'py, PyDict>> {
        let terminated = environ.extensions.get::<wsgi_spec::ext::InputTerminated>().is_some();
        let flags = u8::from(environ.multithread)
            | u8::from(environ.multiprocess) << 1
            | u8::from(environ.run_once) << 2
            | u8::from(terminated) << 3;
        if let Some((f, t)) = &cache.template {
            if *f == flags {
                return Ok(t.bind(py).clone());
            }
        }
        let dict = presized_dict(py, 48)?;
        dict.set_item(self.k_url_scheme.bind(py), self.http.bind(py))?;
        dict.set_item(self.k_version.bind(py), self.version.bind(py))?;
        dict.set_item(self.k_multithread.bind(py), PyBool::new(py, environ.multithread))?;
        dict.set_item(self.k_multiprocess.bind(py), PyBool::new(py, environ.multiprocess))?;
        dict.set_item(self.k_run_once.bind(py), PyBool::new(py, environ.run_once))?;
        dict.set_item(self.k_input_terminated.bind(py), PyBool::new(py, terminated))?;
        dict.set_item(self.k_file_wrapper.bind(py), self.file_wrapper.bind(py))?;
        cache.template = Some((flags, dict.clone().unbind()));
        Ok(dict)
    }
}

/// An empty dict with room for `n` entries.
fn presized_dict(py: Python<'_>, n: isize) -> PyResult<Bound<'_, PyDict>> {
    extern "C" {
        // Exported by CPython (Include/cpython/dictobject.h), used by
        // Cython and others; not in pyo3's bindings.
        fn _PyDict_NewPresized(minused: pyo3::ffi::Py_ssize_t) -> *mut pyo3::ffi::PyObject;
    }
    // SAFETY: with the GIL; a new reference or NULL with an exception set.
    unsafe { Ok(Bound::from_owned_ptr_or_err(py, _PyDict_NewPresized(n))?.cast_into_unchecked()) }
}

/// Build the `environ` dict and the `start_response` callable for a request.
pub(crate) fn environ_dict<'py>(
    py: Python<'py>,
    c: &Consts,
    mut environ: Environ,
    start_response: StartResponse,
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, StartResponseFn>)> {
    // Locked without deadlock: if another thread holds it, the GIL is
    // released while waiting (that thread may need the GIL to finish).
    let mut cache =
        pyo3::sync::MutexExt::lock_py_attached(&c.cache, py).unwrap_or_else(std::sync::PoisonError::into_inner);
    let template = c.template(py, &mut cache, &environ)?;
    // SAFETY: with the GIL; a new reference (a copy of a dict) or NULL
    // with an exception set.
    let dict: Bound<'py, PyDict> =
        unsafe { Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyDict_Copy(template.as_ptr()))?.cast_into_unchecked() };
    let mut failed = None;
    let cache = &mut *cache;
    environ.for_each_cgi_var(|key, value| {
        if failed.is_some() {
            return;
        }
        let r = match key {
            // The template holds `http`.
            wsgi_spec::CgiKey::Core(wsgi_spec::CoreKey::UrlScheme) => {
                if environ.url_scheme == wsgi_spec::Scheme::Https {
                    dict.set_item(c.k_url_scheme.bind(py), c.https.bind(py))
                } else {
                    Ok(())
                }
            }
            wsgi_spec::CgiKey::Core(k) => match cache.core.get_mut(k.index()) {
                Some(slot) => slot.set(py, &dict, value),
                None => latin1_str(py, value).and_then(|v| dict.set_item(PyString::intern(py, k.as_str()), v)),
            },
            wsgi_spec::CgiKey::Header(name) => match cache.headers.get_mut(name) {
                Some(slot) => slot.set(py, &dict, value),
                None => {
                    let mut slot = Slot::new(PyString::intern(py, &wsgi_spec::http_key(name)).unbind());
                    let r = slot.set(py, &dict, value);
                    // Bounded: clients choose header names.
                    if cache.headers.len() < 1024 {
                        cache.headers.insert(name.clone(), slot);
                    }
                    r
                }
            },
            wsgi_spec::CgiKey::Var(name) => match cache.vars.iter_mut().find(|(k, _)| **k == *name) {
                Some((_, slot)) => slot.set(py, &dict, value),
                None => {
                    let mut slot = Slot::new(PyString::intern(py, name).unbind());
                    let r = slot.set(py, &dict, value);
                    // Bounded: middleware may make names up per request.
                    if cache.vars.len() < 64 {
                        cache.vars.push((name.into(), slot));
                    }
                    r
                }
            },
            other => latin1_str(py, value).and_then(|v| dict.set_item(PyString::intern(py, &other.to_key()), v)),
        };
        if let Err(e) = r {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let input = if environ.input.is_empty() {
        match &cache.empty_input {
            Some(i) => i.bind(py).clone(),
            None => {
                let i = Bound::new(py, InputStream::new(wsgi_spec::Input::empty()))?;
                cache.empty_input = Some(i.clone().unbind());
                i
            }
        }
    } else {
        let input = std::mem::replace(&mut environ.input, wsgi_spec::Input::empty());
        Bound::new(py, InputStream::new(input))?
    };
    dict.set_item(c.k_input.bind(py), input)?;
    let errors = match &cache.errors {
        Some((e, obj)) if e.same_stream(&environ.errors) => obj.bind(py).clone(),
        _ => {
            let obj = Bound::new(py, ErrorStream::new(environ.errors.clone()))?;
            cache.errors = Some((environ.errors.clone(), obj.clone().unbind()));
            obj
        }
    };
    dict.set_item(c.k_errors.bind(py), errors)?;
    let sr = Bound::new(py, StartResponseFn::new(start_response))?;
    Ok((dict, sr))
}
