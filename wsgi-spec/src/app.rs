//! The application: PEP 3333's callable (APP-*).

use std::sync::Arc;

use crate::{AppError, Body, Environ, StartResponse};

/// A WSGI application: called with an [`Environ`] and a [`StartResponse`],
/// it returns the response body (APP-1, APP-4).
///
/// It is called once per request, possibly on several threads at once
/// (`Send + Sync`), and must be callable any number of times. It calls
/// `start_response` before its body yields data: before returning, or lazily
/// during the first iteration (SR-17). An `Err` is an exception escaping the
/// application: the server answers 500 if nothing was sent yet (EXC-2).
///
/// Plain functions and closures with the right signature are applications:
///
/// ```
/// use wsgi_spec::{AppError, Application, Body, Environ, StartResponse};
/// fn hello(_env: Environ, start_response: StartResponse) -> Result<Body, AppError> {
///     start_response.start(http::StatusCode::OK, http::HeaderMap::new())?;
///     Ok(Body::full("Hello"))
/// }
/// let apps: Vec<std::sync::Arc<dyn Application>> = vec![
///     std::sync::Arc::new(hello),
///     std::sync::Arc::new(|_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
///         sr.start(http::StatusCode::NO_CONTENT, http::HeaderMap::new())?;
///         Ok(Body::empty())
///     }),
/// ];
/// assert_eq!(apps.len(), 2);
/// ```
///
/// # Blocking
/// `call` and the body's iteration are blocking code. Servers run them on
/// threads meant for it (see [`crate::run::run`]).
pub trait Application: Send + Sync + 'static {
    /// Handle one request.
    ///
    /// # Errors
    /// Any error the application raises; [`crate::Error`] values returned by
    /// `start_response` (notably [`crate::Error::HeadersSent`]) must be
    /// propagated, not swallowed (SR-14).
    fn call(&self, environ: Environ, start_response: StartResponse) -> Result<Body, AppError>;
}

impl<F> Application for F
where
    F: Fn(Environ, StartResponse) -> Result<Body, AppError> + Send + Sync + 'static,
{
    fn call(&self, environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
        self(environ, start_response)
    }
}

impl<A: Application + ?Sized> Application for Arc<A> {
    fn call(&self, environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
        (**self).call(environ, start_response)
    }
}

/// A shared, type-erased application, as servers hold it.
pub type SharedApp = Arc<dyn Application>;
