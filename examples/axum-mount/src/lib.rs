//! A spec application mounted inside an axum [`Router`]: the mount prefix
//! becomes `SCRIPT_NAME`, the rest of the path `PATH_INFO` (PEP 3333).
//!
//! ```text
//! GET /                  -> axum's own handler: "axum here"
//! GET /legacy/a/b?x=1    -> the spec app: SCRIPT_NAME=/legacy PATH_INFO=/a/b QUERY_STRING=x=1
//! GET /legacy            -> the spec app: SCRIPT_NAME=/legacy PATH_INFO= (empty)
//! GET /legacy/           -> the spec app: SCRIPT_NAME=/legacy PATH_INFO=/
//! ```
//!
//! ## How SCRIPT_NAME is derived
//!
//! [`Router::nest_service`] strips the prefix from the URI before calling the
//! nested service (`/legacy/a/b` arrives as `/a/b`, and `/legacy` as `/`) and
//! keeps the URI the router first saw in an [`OriginalUri`] extension (axum's
//! `original-uri` feature). It also records the *pattern* it nested at in a
//! `NestedPath` extension, which is not used here: for a pattern with
//! parameters (`/{tenant}`) it is not the path that matched.
//!
//! The spec's convention is the other way round (see
//! [`wsgi_spec::ext::ScriptName`]): the request keeps its full path and a
//! [`ScriptName`] extension says which leading part is the mount point. The
//! adapter [`from_axum`] converts:
//!
//! 1. the mount prefix is the original path minus the stripped path (the part
//!    axum removed), so nested routers (`/v1` then `/legacy`) and parameters
//!    in the prefix give the text that matched (`/v1/legacy`; `/t/acme` for
//!    `/t/{tenant}`); it is percent-decoded, as `SCRIPT_NAME` is;
//! 2. the URI is set back to the original one;
//! 3. `ConnectInfo<SocketAddr>` (when the router is served with
//!    `into_make_service_with_connect_info`) becomes the spec's
//!    [`ConnectionInfo`], so `REMOTE_ADDR` is set.
//!
//! `Environ::from_request` then splits the decoded full path at the
//! [`ScriptName`] (on a segment boundary), so `PATH_INFO` is exactly what
//! follows the mount point — empty for `/legacy`, `/` for `/legacy/` — as
//! PEP 3333 and `wsgiref.util.shift_path_info` have it.
//!
//! The adapter is a plain function, wrapped as a `tower::Layer` with
//! [`tower::util::MapRequestLayer`] by [`script_name_layer`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body as AxumBody;
use axum::extract::{ConnectInfo, OriginalUri};
use axum::routing::get;
use axum::Router;
use bytes::BytesMut;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use tower::util::MapRequestLayer;
use tower::Layer;
use wsgi_server::{AppPool, SpecService};
use wsgi_spec::ext::{ConnectionInfo, ScriptName};
use wsgi_spec::{percent_decode, AppError, Body, Environ, ServerInfo, StartResponse};

/// Where [`router`] mounts the spec application.
pub const MOUNT: &str = "/legacy";

/// The spec application: echoes the CGI variables that describe where it is
/// mounted, one `NAME=value` line each.
///
/// # Errors
/// Never in practice; `start_response` errors are propagated.
pub fn echo(environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
    let mut out = BytesMut::new();
    for key in ["SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REMOTE_ADDR"] {
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"=");
        out.extend_from_slice(&environ.get(key).unwrap_or_default());
        out.extend_from_slice(b"\n");
    }
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    start_response.start(StatusCode::OK, headers)?;
    Ok(Body::full(out.freeze()))
}

/// Rewrite a request as axum's `nest_service` hands it over into the spec's
/// mount convention: full original URI, mount prefix in [`ScriptName`], and
/// the peer address in [`ConnectionInfo`].
///
/// A request without [`OriginalUri`] (not routed by axum) passes unchanged.
///
/// ```
/// use axum::extract::OriginalUri;
/// use wsgi_spec::{Environ, Input, ServerInfo};
///
/// // What the nested service receives for `GET /legacy/a/b?x=1`.
/// let mut req = http::Request::get("/a/b?x=1").body(()).unwrap();
/// req.extensions_mut().insert(OriginalUri("/legacy/a/b?x=1".parse().unwrap()));
///
/// let req = example_axum_mount::from_axum(req);
/// assert_eq!(req.uri(), "/legacy/a/b?x=1");
/// let env = Environ::from_request(req.into_parts().0, Input::empty(), &ServerInfo::default());
/// assert_eq!(&env.script_name[..], b"/legacy");
/// assert_eq!(&env.path_info[..], b"/a/b");
/// assert_eq!(&env.query_string[..], b"x=1");
/// ```
pub fn from_axum<B>(mut req: Request<B>) -> Request<B> {
    if let Some(peer) = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0) {
        if req.extensions().get::<ConnectionInfo>().is_none() {
            req.extensions_mut().insert(ConnectionInfo { peer: Some(peer), local: None, secure: false });
        }
    }
    let Some(OriginalUri(original)) = req.extensions().get::<OriginalUri>().cloned() else {
        return req;
    };
    let full = original.path();
    let rest = req.uri().path();
    // axum leaves the path after the prefix (`/legacy/a/b` -> `/a/b`), or
    // `/` when nothing follows it (`/legacy` -> `/`).
    let prefix = match full.strip_suffix(rest) {
        Some(prefix) => prefix,
        None if rest == "/" => full,
        None => "",
    };
    let prefix = percent_decode(prefix.as_bytes());
    if !prefix.is_empty() {
        req.extensions_mut().insert(ScriptName(prefix));
    }
    *req.uri_mut() = original;
    req
}

/// The adapter type: a [`MapRequestLayer`] running [`from_axum`].
pub type ScriptNameLayer = MapRequestLayer<fn(Request<AxumBody>) -> Request<AxumBody>>;

/// [`from_axum`] as a `tower::Layer`, to put around a service given to
/// [`Router::nest_service`].
#[must_use]
pub fn script_name_layer() -> ScriptNameLayer {
    MapRequestLayer::new(from_axum::<AxumBody> as fn(Request<AxumBody>) -> Request<AxumBody>)
}

/// The [`echo`] app as a [`SpecService`] on a pool of `threads` app threads
/// (with as many queued requests).
///
/// # Errors
/// When the pool's threads cannot be started.
pub fn spec_service(threads: usize) -> std::io::Result<SpecService> {
    let info = ServerInfo { software: "example-axum-mount".into(), ..ServerInfo::default() };
    Ok(SpecService::new(Arc::new(echo), AppPool::new(threads, threads)?, info))
}

/// The example's router: a native axum route at `/` and the spec app
/// mounted at [`MOUNT`].
pub fn router(spec: SpecService) -> Router {
    Router::new().route("/", get(|| async { "axum here" })).nest_service(MOUNT, script_name_layer().layer(spec))
}
