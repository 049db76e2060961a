//! From the spec's `Environ` to PEP 3333's `environ` dict.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyString, PyTuple};
use wsgi_spec::{Environ, StartResponse};

use crate::objects::{ErrorStream, FileWrapper, InputStream, Responder};

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
    /// The value this key has in the environ template, when it is there.
    tmpl: Option<Py<PyString>>,
    /// The last request (`Cache::epoch`) that set this key.
    seen: u32,
}

impl Slot {
    fn new(key: Py<PyString>) -> Slot {
        Slot { key, last: None, tmpl: None, seen: 0 }
    }

    /// The string for `value`: the last one made if equal, else a new one.
    fn value<'py>(&mut self, py: Python<'py>, value: &[u8]) -> PyResult<Bound<'py, PyString>> {
        if let Some((bytes, s)) = &self.last {
            if same_bytes(bytes, value) {
                return Ok(s.bind(py).clone());
            }
        }
        let s = latin1_str(py, value)?;
        if value.len() <= CACHED_VALUE_MAX {
            match &mut self.last {
                Some((bytes, old)) => {
                    bytes.clear();
                    bytes.extend_from_slice(value);
                    *old = s.clone().unbind();
                }
                None => self.last = Some((value.to_vec(), s.clone().unbind())),
            }
        }
        Ok(s)
    }

    /// Set `key: value` in `dict`, a copy of the template of `epoch`:
    /// nothing to do when the template holds the same string. The value's
    /// string.
    fn set<'py>(
        &mut self,
        py: Python<'py>,
        dict: &Bound<'py, PyDict>,
        value: &[u8],
        epoch: u32,
        w: &mut Walk,
    ) -> PyResult<Bound<'py, PyString>> {
        let v = self.value(py, value)?;
        self.seen = epoch;
        if let Some(t) = &self.tmpl {
            w.members_seen += 1;
            if t.is(&v) {
                return Ok(v);
            }
            w.changed += 1;
        } else {
            w.reshaped += 1;
        }
        dict_set(dict, self.key.bind(py), &v)?;
        Ok(v)
    }
}

/// Short byte strings compared without a call into libc.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        if x != y {
            return false;
        }
    }
    ca.remainder() == cb.remainder()
}

/// What one request's walk over its variables found.
#[derive(Default)]
struct Walk {
    /// Template variables this request has (whatever their value).
    members_seen: usize,
    /// Template variables set to another value.
    changed: usize,
    /// Keys added to or removed from the copy.
    reshaped: usize,
    /// When the template is to be made from this request: the slots set,
    /// with their values, in order.
    visited: Vec<(SlotRef, Py<PyString>)>,
}

/// Where a [`Slot`] lives in the [`Cache`].
#[derive(Clone)]
enum SlotRef {
    Core(usize),
    Header(http::HeaderName),
    Var(usize),
}

/// The environ every request starts from (copied): the constant `wsgi.*`
/// entries, and the variables of a typical request (`members`), so a
/// request like it only sets what differs (its client's port, say) and
/// removes what it lacks.
struct Template {
    /// The `wsgi.*` flags it was made with.
    flags: u8,
    dict: Py<PyDict>,
    /// The slots whose values the template holds.
    members: Vec<SlotRef>,
    /// The `wsgi.errors` object in the template, once it has variables.
    errors: Option<Py<PyAny>>,
    /// Requests in a row that did not fit (see [`Template::CHANGED`]).
    misfits: u32,
}

impl Template {
    /// A request fits the template when it has the same keys and at most
    /// this many other values (its client's port, its path...).
    const CHANGED: usize = 2;
    /// Requests in a row that do not fit, after which the template is made
    /// again from the next request.
    const MISFITS: u32 = 16;
}

/// A bounded stack of [`Responder`]s whose requests are over.
#[derive(Clone, Default)]
pub(crate) struct Responders(std::sync::Arc<std::sync::Mutex<Vec<Responder>>>);

impl Responders {
    /// At most this many are kept (one per app thread is what is needed).
    const MAX: usize = 64;

    fn take(&self) -> Option<Responder> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop()
    }

    /// Keep `r` for a later request if the application holds no reference
    /// to it; else drop it (its objects stay bound to the ended request).
    pub(crate) fn recycle(&self, py: Python<'_>, r: Responder) {
        if !r.exclusive(py) {
            return;
        }
        r.disarm();
        let mut free = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if free.len() < Self::MAX {
            free.push(r);
        }
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
    /// The environ every request starts from.
    template: Option<Template>,
    /// Counts requests (see [`Slot::seen`]).
    epoch: u32,
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
    /// `start_response` objects free for the next request (see [`Responder`]).
    pub(crate) responders: Responders,
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
                epoch: 0,
                errors: None,
                empty_input: None,
            }),
            responders: Responders::default(),
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

impl Cache {
    fn slot_mut(&mut self, r: &SlotRef) -> Option<&mut Slot> {
        match r {
            SlotRef::Core(i) => self.core.get_mut(*i),
            SlotRef::Header(name) => self.headers.get_mut(name),
            SlotRef::Var(i) => self.vars.get_mut(*i).map(|(_, s)| s),
        }
    }

    /// Forget the template's variables (the next request makes them anew).
    fn clear_members(&mut self) {
        let members = self.template.as_mut().map(|t| std::mem::take(&mut t.members)).unwrap_or_default();
        for m in &members {
            if let Some(slot) = self.slot_mut(m) {
                slot.tmpl = None;
            }
        }
    }
}

impl Consts {
    /// The constant entries of every environ (`wsgi.*` but input and
    /// errors), in a dict made large enough for a whole environ, so a copy
    /// of it takes the request's entries without growing.
    fn constants<'py>(&self, py: Python<'py>, environ: &Environ, terminated: bool) -> PyResult<Bound<'py, PyDict>> {
        let dict = presized_dict(py, 48)?;
        dict.set_item(self.k_url_scheme.bind(py), self.http.bind(py))?;
        dict.set_item(self.k_version.bind(py), self.version.bind(py))?;
        dict.set_item(self.k_multithread.bind(py), PyBool::new(py, environ.multithread))?;
        dict.set_item(self.k_multiprocess.bind(py), PyBool::new(py, environ.multiprocess))?;
        dict.set_item(self.k_run_once.bind(py), PyBool::new(py, environ.run_once))?;
        dict.set_item(self.k_input_terminated.bind(py), PyBool::new(py, terminated))?;
        dict.set_item(self.k_file_wrapper.bind(py), self.file_wrapper.bind(py))?;
        Ok(dict)
    }

    /// The template for this request's flags (made, with no variables yet,
    /// when the flags changed).
    fn template<'py>(&self, py: Python<'py>, cache: &mut Cache, environ: &Environ) -> PyResult<Bound<'py, PyDict>> {
        let terminated = environ.extensions.get::<wsgi_spec::ext::InputTerminated>().is_some();
        let flags = u8::from(environ.multithread)
            | u8::from(environ.multiprocess) << 1
            | u8::from(environ.run_once) << 2
            | u8::from(terminated) << 3;
        if let Some(t) = &cache.template {
            if t.flags == flags {
                return Ok(t.dict.bind(py).clone());
            }
        }
        cache.clear_members();
        let dict = self.constants(py, environ, terminated)?;
        cache.template =
            Some(Template { flags, dict: dict.clone().unbind(), members: Vec::new(), errors: None, misfits: 0 });
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
) -> PyResult<(Bound<'py, PyDict>, Responder)> {
    // Locked without deadlock: if another thread holds it, the GIL is
    // released while waiting (that thread may need the GIL to finish).
    let mut cache =
        pyo3::sync::MutexExt::lock_py_attached(&c.cache, py).unwrap_or_else(std::sync::PoisonError::into_inner);
    let cache = &mut *cache;
    let template = c.template(py, cache, &environ)?;
    cache.epoch = cache.epoch.wrapping_add(1);
    let epoch = cache.epoch;
    // SAFETY: with the GIL; a new reference (a copy of a dict) or NULL
    // with an exception set.
    let dict: Bound<'py, PyDict> =
        unsafe { Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyDict_Copy(template.as_ptr()))?.cast_into_unchecked() };
    let members = cache.template.as_ref().map_or(0, |t| t.members.len());
    let mut walk = Walk::default();
    // A template without variables takes this request's.
    let fill = members == 0;
    let mut failed = None;
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
                Some(slot) => slot.set(py, &dict, value, epoch, &mut walk).map(|v| {
                    if fill {
                        walk.visited.push((SlotRef::Core(k.index()), v.unbind()));
                    }
                }),
                None => latin1_str(py, value).and_then(|v| dict.set_item(PyString::intern(py, k.as_str()), v)),
            },
            wsgi_spec::CgiKey::Header(name) => {
                let push = |walk: &mut Walk, v: Bound<'_, PyString>| {
                    if fill {
                        walk.visited.push((SlotRef::Header(name.clone()), v.unbind()));
                    }
                };
                if let Some(slot) = cache.headers.get_mut(name) {
                    slot.set(py, &dict, value, epoch, &mut walk).map(|v| push(&mut walk, v))
                } else if cache.headers.len() < 1024 {
                    // Bounded: clients choose header names.
                    let slot = cache
                        .headers
                        .entry(name.clone())
                        .or_insert_with(|| Slot::new(PyString::intern(py, &wsgi_spec::http_key(name)).unbind()));
                    slot.set(py, &dict, value, epoch, &mut walk).map(|v| push(&mut walk, v))
                } else {
                    latin1_str(py, value)
                        .and_then(|v| dict.set_item(PyString::intern(py, &wsgi_spec::http_key(name)), v))
                }
            }
            wsgi_spec::CgiKey::Var(name) => {
                let i = match cache.vars.iter().position(|(k, _)| **k == *name) {
                    Some(i) => Some(i),
                    // Bounded: middleware may make names up per request.
                    None if cache.vars.len() < 64 => {
                        cache.vars.push((name.into(), Slot::new(PyString::intern(py, name).unbind())));
                        Some(cache.vars.len() - 1)
                    }
                    None => None,
                };
                match i.and_then(|i| cache.vars.get_mut(i).map(|(_, slot)| (i, slot))) {
                    Some((i, slot)) => slot.set(py, &dict, value, epoch, &mut walk).map(|v| {
                        if fill {
                            walk.visited.push((SlotRef::Var(i), v.unbind()));
                        }
                    }),
                    None => latin1_str(py, value).and_then(|v| dict.set_item(PyString::intern(py, name), v)),
                }
            }
            other => latin1_str(py, value).and_then(|v| dict.set_item(PyString::intern(py, &other.to_key()), v)),
        };
        if let Err(e) = r {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    // Remove the template's variables this request does not have.
    if walk.members_seen < members {
        let tmpl = cache.template.take();
        for m in tmpl.iter().flat_map(|t| &t.members) {
            if let Some(slot) = cache.slot_mut(m) {
                if slot.seen != epoch {
                    walk.reshaped += 1;
                    // SAFETY: with the GIL; a valid dict and key. The key is
                    // in the copy (it is a template member).
                    if unsafe { pyo3::ffi::PyDict_DelItem(dict.as_ptr(), slot.key.as_ptr()) } != 0 {
                        cache.template = tmpl;
                        return Err(PyErr::fetch(py));
                    }
                }
            }
        }
        cache.template = tmpl;
    }
    let empty_input = match &cache.empty_input {
        Some(i) => i.bind(py).clone(),
        None => {
            let i = Bound::new(py, InputStream::new(wsgi_spec::Input::empty()))?;
            cache.empty_input = Some(i.clone().unbind());
            i
        }
    };
    let errors = match &cache.errors {
        Some((e, obj)) if e.same_stream(&environ.errors) => obj.bind(py).clone(),
        _ => {
            let obj = Bound::new(py, ErrorStream::new(environ.errors.clone()))?;
            cache.errors = Some((environ.errors.clone(), obj.clone().unbind()));
            obj
        }
    };
    let mut tmpl = cache.template.take();
    if let Some(t) = tmpl.as_mut() {
        if fill {
            // This request's variables become the template's, with the
            // shared empty input and this error stream.
            let tdict = t.dict.bind(py);
            let mut members = Vec::with_capacity(walk.visited.len());
            for (r, v) in walk.visited {
                if let Some(slot) = cache.slot_mut(&r) {
                    dict_set(tdict, slot.key.bind(py), v.bind(py))?;
                    slot.tmpl = Some(v);
                    members.push(r);
                }
            }
            dict_set(tdict, c.k_input.bind(py), &empty_input)?;
            dict_set(tdict, c.k_errors.bind(py), &errors)?;
            t.errors = Some(errors.clone().into_any().unbind());
            t.members = members;
            t.misfits = 0;
        } else if walk.reshaped > 0 || walk.changed > Template::CHANGED {
            t.misfits += 1;
        } else {
            t.misfits = 0;
        }
    }
    let template_errors = tmpl.as_ref().and_then(|t| t.errors.as_ref().map(|e| e.as_ptr()));
    let remake = tmpl.as_ref().is_some_and(|t| t.misfits >= Template::MISFITS);
    cache.template = tmpl;
    if remake {
        // Requests no longer look like the template: the next one makes it
        // anew.
        cache.clear_members();
        if let Some(t) = cache.template.as_mut() {
            t.dict = c.constants(py, &environ, t.flags & 8 != 0)?.unbind();
            t.errors = None;
            t.misfits = 0;
        }
    }
    if fill || !environ.input.is_empty() {
        let input = if environ.input.is_empty() {
            empty_input
        } else {
            let input = std::mem::replace(&mut environ.input, wsgi_spec::Input::empty());
            Bound::new(py, InputStream::new(input))?
        };
        dict_set(&dict, c.k_input.bind(py), &input)?;
    }
    if fill || template_errors != Some(errors.as_ptr()) {
        dict_set(&dict, c.k_errors.bind(py), &errors)?;
    }
    let sr = match c.responders.take() {
        Some(r) => r,
        None => Responder::new(py)?,
    };
    sr.arm(start_response);
    Ok((dict, sr))
}
