//! Each request runs in a `contextvars` context of its own: a copy of the
//! thread's, entered around every call into the app for that request (the
//! call itself, each pull of its body, its `close()`). Variables the app
//! sets stay with the request, even when other requests run on the same
//! thread in between. Through CPython's C API: no `Context.run` method
//! lookup, argument tuple or frame per call.

use pyo3::prelude::*;

/// A copy of the calling thread's current context.
pub(crate) fn copy_current(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    // SAFETY: with the GIL; a new reference, or NULL with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyContext_CopyCurrent()) }
}

/// Run `f` with `ctx` entered; the context is exited afterwards, also when
/// `f` fails or panics.
///
/// # Errors
/// `f`'s error, or CPython's when `ctx` cannot be entered (it is entered
/// already, on this thread or another).
pub(crate) fn run<'py, R>(ctx: &Bound<'py, PyAny>, f: impl FnOnce() -> PyResult<R>) -> PyResult<R> {
    struct Entered<'a, 'py>(&'a Bound<'py, PyAny>);
    impl Drop for Entered<'_, '_> {
        fn drop(&mut self) {
            // SAFETY: with the GIL (the `Bound` proves it), on the thread
            // that entered the context, which is the current one here.
            if unsafe { pyo3::ffi::PyContext_Exit(self.0.as_ptr()) } != 0 {
                // Only if something else switched contexts under us; the
                // error has no better place to go.
                PyErr::fetch(self.0.py()).write_unraisable(self.0.py(), Some(self.0));
            }
        }
    }
    // SAFETY: with the GIL; `ctx` is a context object (made by
    // `copy_current`); 0 on success, -1 with an exception set.
    if unsafe { pyo3::ffi::PyContext_Enter(ctx.as_ptr()) } != 0 {
        return Err(PyErr::fetch(ctx.py()));
    }
    let _entered = Entered(ctx);
    f()
}
