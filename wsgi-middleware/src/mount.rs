//! `Mount`: several applications under path prefixes, like Werkzeug's
//! `DispatcherMiddleware`.
//!
//! A request whose `PATH_INFO` starts with a mounted prefix at a `/`
//! boundary goes to that prefix's application, with the prefix moved from
//! `PATH_INFO` to the end of `SCRIPT_NAME` (PEP 3333, SPEC.md ENV-3): a
//! request for `/api/users` through `mount("/api", api)` reaches `api` with
//! `SCRIPT_NAME` `/api` and `PATH_INFO` `/users`. The longest matching prefix
//! wins; `/api` never matches `/apiary`. Everything else goes to the wrapped
//! (default) application, unchanged.
//!
//! Prefixes are compared with the percent-decoded `PATH_INFO`, byte for
//! byte (case-sensitive).
//!
//! ```
//! use tower_layer::Layer;
//! use wsgi_middleware::MountLayer;
//! use wsgi_spec::{testing::TestClient, AppError, Body, Environ, StartResponse};
//!
//! fn show(env: Environ, sr: StartResponse) -> Result<Body, AppError> {
//!     sr.start(http::StatusCode::OK, http::HeaderMap::new())?;
//!     let s = format!("{}|{}", String::from_utf8_lossy(&env.script_name), String::from_utf8_lossy(&env.path_info));
//!     Ok(Body::full(s))
//! }
//! let app = MountLayer::new().mount("/api", show)?.mount("/api/v2", show)?.layer(show);
//! let client = TestClient::new(app);
//! assert_eq!(client.get("/api/users").body, "/api|/users");
//! assert_eq!(client.get("/api/v2/users").body, "/api/v2|/users");
//! assert_eq!(client.get("/api").body, "/api|");
//! assert_eq!(client.get("/apiary").body, "|/apiary");
//! # Ok::<(), wsgi_middleware::Error>(())
//! ```

use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use wsgi_spec::{AppError, Application, Body, Environ, SharedApp, StartResponse};

use crate::util::{normalize_prefix, strip_path_prefix};
use crate::Error;

/// Configuration for [`Mount`]: the prefixes and their applications. The
/// application the layer wraps is the default for every other path.
#[derive(Clone, Default)]
pub struct MountLayer {
    /// Longest prefix first.
    mounts: Vec<(Bytes, SharedApp)>,
}

impl MountLayer {
    /// No mounts yet.
    #[must_use]
    pub fn new() -> MountLayer {
        MountLayer::default()
    }

    /// Serve `app` under `prefix` (e.g. `/api`; a trailing `/` is ignored).
    /// Mounting the same prefix again replaces the application.
    ///
    /// # Errors
    /// [`Error::InvalidPrefix`] when `prefix` does not start with `/` or is
    /// `/` itself (that is the default application's place).
    pub fn mount(self, prefix: &str, app: impl Application) -> Result<MountLayer, Error> {
        self.mount_shared(prefix, Arc::new(app))
    }

    /// [`mount`](Self::mount) for an application that is already shared.
    ///
    /// # Errors
    /// As [`mount`](Self::mount).
    pub fn mount_shared(mut self, prefix: &str, app: SharedApp) -> Result<MountLayer, Error> {
        let prefix = Bytes::from(normalize_prefix(prefix, false)?);
        self.mounts.retain(|(p, _)| *p != prefix);
        self.mounts.push((prefix, app));
        self.mounts.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Ok(self)
    }

    /// The mounted prefixes, longest first.
    pub fn prefixes(&self) -> impl Iterator<Item = &[u8]> {
        self.mounts.iter().map(|(p, _)| &p[..])
    }
}

impl fmt::Debug for MountLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefixes: Vec<_> = self.prefixes().map(String::from_utf8_lossy).collect();
        f.debug_struct("MountLayer").field("prefixes", &prefixes).finish()
    }
}

impl<A> tower_layer::Layer<A> for MountLayer {
    type Service = Mount<A>;

    fn layer(&self, inner: A) -> Mount<A> {
        Mount::new(inner, self.clone())
    }
}

/// Dispatches by path prefix; `A` answers the paths no prefix matches.
#[derive(Debug, Clone)]
pub struct Mount<A> {
    inner: A,
    config: MountLayer,
}

impl<A> Mount<A> {
    /// `inner` as the default application, with the mounts of `config`.
    pub fn new(inner: A, config: MountLayer) -> Mount<A> {
        Mount { inner, config }
    }

    /// The default application.
    #[must_use]
    pub fn get_ref(&self) -> &A {
        &self.inner
    }

    /// The default application, mutably.
    pub fn get_mut(&mut self) -> &mut A {
        &mut self.inner
    }

    /// Unwrap the default application.
    pub fn into_inner(self) -> A {
        self.inner
    }
}

impl<A: Application> Application for Mount<A> {
    fn call(&self, mut environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
        for (prefix, app) in &self.config.mounts {
            if let Some(rest) = strip_path_prefix(&environ.path_info, prefix) {
                let rest = environ.path_info.slice_ref(rest);
                let mut script_name = BytesMut::with_capacity(environ.script_name.len() + prefix.len());
                script_name.extend_from_slice(&environ.script_name);
                script_name.extend_from_slice(prefix);
                environ.script_name = script_name.freeze();
                environ.path_info = rest;
                return app.call(environ, start_response);
            }
        }
        self.inner.call(environ, start_response)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use http::{HeaderMap, StatusCode};
    use tower_layer::Layer;
    use wsgi_spec::ext::ScriptName;
    use wsgi_spec::testing::TestClient;

    use super::*;

    fn named(name: &'static str) -> impl Application {
        move |env: Environ, sr: StartResponse| -> Result<Body, AppError> {
            sr.start(StatusCode::OK, HeaderMap::new())?;
            let s = format!(
                "{name} {}|{}",
                String::from_utf8_lossy(&env.script_name),
                String::from_utf8_lossy(&env.path_info)
            );
            Ok(Body::full(s))
        }
    }

    fn client() -> TestClient {
        let layer = MountLayer::new()
            .mount("/api", named("api"))
            .unwrap()
            .mount("/api/v2/", named("v2"))
            .unwrap()
            .mount("/my app", named("space"))
            .unwrap();
        TestClient::new(layer.layer(named("default")))
    }

    #[test]
    fn longest_prefix_wins_at_slash_boundaries() {
        let c = client();
        assert_eq!(c.get("/api/users").body, "api /api|/users");
        assert_eq!(c.get("/api/v2/users").body, "v2 /api/v2|/users");
        assert_eq!(c.get("/api/v2").body, "v2 /api/v2|");
        assert_eq!(c.get("/api/v2x").body, "api /api|/v2x");
        assert_eq!(c.get("/api/").body, "api /api|/");
        assert_eq!(c.get("/api").body, "api /api|");
        assert_eq!(c.get("/apiary").body, "default |/apiary");
        assert_eq!(c.get("/").body, "default |/");
        assert_eq!(c.get("/API/x").body, "default |/API/x");
    }

    #[test]
    fn prefixes_are_compared_decoded() {
        let c = client();
        assert_eq!(c.get("/my%20app/x").body, "space /my app|/x");
        // An encoded slash is a slash once decoded (PATH_INFO is decoded).
        assert_eq!(c.get("/api%2Fusers").body, "api /api|/users");
    }

    #[test]
    fn an_existing_script_name_is_extended() {
        let c = client();
        let mut req = http::Request::get("/outer/api/x").body(Bytes::new()).unwrap();
        req.extensions_mut().insert(ScriptName(Bytes::from_static(b"/outer")));
        assert_eq!(c.request(req).body, "api /outer/api|/x");
    }

    #[test]
    fn remounting_replaces_and_bad_prefixes_fail() {
        let layer = MountLayer::new().mount("/a", named("one")).unwrap().mount("/a/", named("two")).unwrap();
        assert_eq!(layer.prefixes().count(), 1);
        assert_eq!(TestClient::new(layer.layer(named("d"))).get("/a/b").body, "two /a|/b");
        assert!(MountLayer::new().mount("a", named("x")).is_err());
        assert!(MountLayer::new().mount("/", named("x")).is_err());
        assert!(MountLayer::new().mount("", named("x")).is_err());
    }
}
