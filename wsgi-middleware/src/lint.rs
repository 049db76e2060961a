//! `Lint`: wsgi-spec's `wsgiref.validate`, usable as one of these layers.
//!
//! This module re-exports [`wsgi_spec::lint`]'s middleware so that a stack
//! built from this crate can put a checker around and inside other layers
//! (SPEC.md section 5: "check it with `lint::Lint` around and inside your
//! middleware").
//!
//! ```
//! use tower_layer::Layer;
//! use wsgi_middleware::lint::{LintLayer, LintMode};
//! use wsgi_spec::{testing::TestClient, AppError, Body, Environ, StartResponse};
//!
//! fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
//!     let mut headers = http::HeaderMap::new();
//!     headers.insert("content-type", http::HeaderValue::from_static("text/plain"));
//!     sr.start(http::StatusCode::OK, headers)?;
//!     Ok(Body::full("fine"))
//! }
//! let layer = LintLayer::new().with_mode(LintMode::Record);
//! let resp = TestClient::new(layer.layer(app)).get("/");
//! assert_eq!(resp.body, "fine");
//! assert!(layer.report().is_clean());
//! ```

pub use wsgi_spec::lint::{find_violation, Lint, LintLayer, LintMode, LintReport};
