//! From the application's result to the spec's [`Body`].

use std::os::fd::BorrowedFd;

use bytes::Bytes;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyIterator, PyList, PyString, PyTuple};
use wsgi_spec::{AppError, Body, BodyIter, Errors, FileBody};

use crate::context;
use crate::convert::{Consts, Responders};
use crate::objects::{app_error, log_traceback, FileWrapper, Responder};

/// Chunks up to this size are copied out of Python (see [`py_bytes`]).
const SMALL_BODY: usize = 16 * 1024;

/// Bytes shared with Python, without a copy (unless small).
fn py_bytes(item: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    if !item.is_instance_of::<PyBytes>() {
        let name = item.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        return Err(PyTypeError::new_err(format!("the response iterable yielded {name}, expected bytes")));
    }
    let backed: PyBackedBytes = item.extract()?;
    // Small bodies are copied: cheaper than handing Python's object to the
    // network, whose release later (without the GIL) goes through pyo3's
    // deferred reference pool.
    if backed.len() <= SMALL_BODY {
        return Ok(Bytes::copy_from_slice(&backed));
    }
    Ok(Bytes::from_owner(backed))
}

/// Turn the application's result into a body.
pub(crate) fn into_body(
    py: Python<'_>,
    c: &Consts,
    result: Bound<'_, PyAny>,
    ctx: Bound<'_, PyAny>,
    responder: Responder,
    errors: Errors,
) -> PyResult<Body> {
    if result.is_instance_of::<PyString>() || result.is_instance_of::<PyBytes>() {
        c.responders.recycle(py, responder);
        return Err(PyTypeError::new_err(
            "the application returned a str or bytes object; it must return an iterable of bytes, e.g. [body]",
        ));
    }
    // The common case: a list or tuple of bytes, no close() to call; the
    // application is done with `start_response`.
    let chunks = if let Ok(list) = result.cast::<PyList>() {
        Some(list.iter().map(|i| py_bytes(&i)).collect::<PyResult<Vec<_>>>())
    } else if let Ok(tuple) = result.cast::<PyTuple>() {
        Some(tuple.iter().map(|i| py_bytes(&i)).collect::<PyResult<Vec<_>>>())
    } else {
        None
    };
    if let Some(chunks) = chunks {
        drop(result);
        c.responders.recycle(py, responder);
        return Ok(Body::chunks(chunks?));
    }
    if result.is_instance(c.file_wrapper_type(py))? {
        if let Some(body) = file_body(py, &result, &ctx, errors.clone())? {
            return Ok(body);
        }
    }
    let iter = result.try_iter()?.unbind();
    let close = if result.hasattr("close")? { Some(result.getattr("close")?.unbind()) } else { None };
    Ok(Body::from_body_iter(PyIterBody {
        iter: Some(iter),
        close,
        ctx: ctx.unbind(),
        errors,
        responder: Some((responder, c.responders.clone())),
    }))
}

/// A `wsgi.file_wrapper` result over a regular file: send the file itself.
fn file_body(
    py: Python<'_>,
    wrapper: &Bound<'_, PyAny>,
    ctx: &Bound<'_, PyAny>,
    errors: Errors,
) -> PyResult<Option<Body>> {
    let w = wrapper.cast::<FileWrapper>()?.borrow();
    let filelike = w.filelike.bind(py);
    let Ok(fd) = filelike.call_method0("fileno").and_then(|f| f.extract::<i32>()) else {
        return Ok(None);
    };
    // Where the Python file object stands (it may have read ahead).
    let Ok(pos) = filelike.call_method0("tell").and_then(|p| p.extract::<u64>()) else {
        return Ok(None);
    };
    // SAFETY: `fd` is the open descriptor of `filelike`, which stays alive
    // (we hold it and the GIL) while it is duplicated here.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let Ok(owned) = borrowed.try_clone_to_owned() else {
        return Ok(None);
    };
    let file = std::fs::File::from(owned);
    let Ok(meta) = file.metadata() else { return Ok(None) };
    if !meta.is_file() {
        return Ok(None);
    }
    let len = meta.len().saturating_sub(pos);
    let body = FileBody::with_range(file, pos, len).block_size(w.blksize.max(64 * 1024));
    let close = wrapper.getattr("close")?.unbind();
    let ctx = ctx.clone().unbind();
    Ok(Some(Body::file(body).on_close(move || {
        crate::keep_thread_state();
        Python::attach(|py| {
            if let Err(e) = context::run(ctx.bind(py), || close.bind(py).call0()) {
                log_traceback(py, &e, &errors);
            }
        });
    })))
}

/// Any other iterable: pulled one item at a time, with the GIL held only
/// for the pull, in the request's context; its `close()` is called when the
/// body is dropped.
struct PyIterBody {
    iter: Option<Py<PyIterator>>,
    close: Option<Py<PyAny>>,
    ctx: Py<PyAny>,
    errors: Errors,
    /// The request's `start_response`, for reuse once the body is closed.
    responder: Option<(Responder, Responders)>,
}

impl BodyIter for PyIterBody {
    fn next_chunk(&mut self) -> Option<Result<Bytes, AppError>> {
        let iter = self.iter.as_ref()?;
        crate::keep_thread_state();
        Python::attach(|py| {
            // PyIter_Next: the end of a generator raises no StopIteration.
            match context::run(self.ctx.bind(py), || iter.bind(py).clone().next().transpose()) {
                Ok(Some(item)) => Some(py_bytes(&item).map_err(|e| app_error(py, e, &self.errors))),
                Ok(None) => None,
                Err(e) => Some(Err(app_error(py, e, &self.errors))),
            }
        })
    }
}

impl Drop for PyIterBody {
    fn drop(&mut self) {
        let iter = self.iter.take();
        let close = self.close.take();
        crate::keep_thread_state();
        Python::attach(|py| {
            drop(iter);
            if let Some(close) = close {
                if let Err(e) = context::run(self.ctx.bind(py), || close.bind(py).call0()) {
                    log_traceback(py, &e, &self.errors);
                }
            }
            if let Some((r, free)) = self.responder.take() {
                free.recycle(py, r);
            }
        });
    }
}
