//! From the application's result to the spec's [`Body`].

use std::os::fd::BorrowedFd;

use bytes::Bytes;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use wsgi_spec::{AppError, Body, BodyIter, Errors, FileBody};

use crate::convert::Consts;
use crate::objects::{app_error, log_traceback, FileWrapper};

/// Bytes shared with Python, without a copy.
fn py_bytes(item: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    if !item.is_instance_of::<PyBytes>() {
        let name = item.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        return Err(PyTypeError::new_err(format!("the response iterable yielded {name}, expected bytes")));
    }
    let backed: PyBackedBytes = item.extract()?;
    Ok(Bytes::from_owner(backed))
}

/// Turn the application's result into a body.
pub(crate) fn into_body(py: Python<'_>, c: &Consts, result: Bound<'_, PyAny>, errors: Errors) -> PyResult<Body> {
    if result.is_instance_of::<PyString>() || result.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(
            "the application returned a str or bytes object; it must return an iterable of bytes, e.g. [body]",
        ));
    }
    // The common case: a list or tuple of bytes, no close() to call.
    if let Ok(list) = result.cast::<PyList>() {
        let chunks = list.iter().map(|i| py_bytes(&i)).collect::<PyResult<Vec<_>>>()?;
        return Ok(Body::chunks(chunks));
    }
    if let Ok(tuple) = result.cast::<PyTuple>() {
        let chunks = tuple.iter().map(|i| py_bytes(&i)).collect::<PyResult<Vec<_>>>()?;
        return Ok(Body::chunks(chunks));
    }
    if result.is_instance(c.file_wrapper_type(py))? {
        if let Some(body) = file_body(py, &result, errors.clone())? {
            return Ok(body);
        }
    }
    let iter = result.try_iter()?.into_any().unbind();
    let close = if result.hasattr("close")? { Some(result.unbind()) } else { None };
    Ok(Body::from_body_iter(PyIterBody { iter: Some(iter), close, errors }))
}

/// A `wsgi.file_wrapper` result over a regular file: send the file itself.
fn file_body(py: Python<'_>, wrapper: &Bound<'_, PyAny>, errors: Errors) -> PyResult<Option<Body>> {
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
    let wrapper = wrapper.clone().unbind();
    Ok(Some(Body::file(body).on_close(move || {
        Python::attach(|py| {
            if let Err(e) = wrapper.bind(py).call_method0("close") {
                log_traceback(py, &e, &errors);
            }
        });
    })))
}

/// Any other iterable: pulled one item at a time, with the GIL held only
/// for the pull; its `close()` is called when the body is dropped.
struct PyIterBody {
    iter: Option<Py<PyAny>>,
    close: Option<Py<PyAny>>,
    errors: Errors,
}

impl BodyIter for PyIterBody {
    fn next_chunk(&mut self) -> Option<Result<Bytes, AppError>> {
        let iter = self.iter.as_ref()?;
        Python::attach(|py| {
            let it = iter.bind(py);
            match it.call_method0("__next__") {
                Ok(item) => Some(py_bytes(&item).map_err(|e| app_error(py, e, &self.errors))),
                Err(e) if e.is_instance_of::<pyo3::exceptions::PyStopIteration>(py) => None,
                Err(e) => Some(Err(app_error(py, e, &self.errors))),
            }
        })
    }
}

impl Drop for PyIterBody {
    fn drop(&mut self) {
        let iter = self.iter.take();
        let close = self.close.take();
        if iter.is_none() && close.is_none() {
            return;
        }
        Python::attach(|py| {
            drop(iter);
            if let Some(obj) = close {
                if let Err(e) = obj.bind(py).call_method0("close") {
                    log_traceback(py, &e, &self.errors);
                }
            }
        });
    }
}
