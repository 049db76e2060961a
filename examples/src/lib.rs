//! Small example applications written against `wsgi-spec`.
//!
//! Each runs unchanged on any server that implements the spec, and in the
//! spec's in-process test client:
//!
//! ```
//! use wsgi_spec::testing::TestClient;
//! let resp = TestClient::new(examples::hello).get("/");
//! assert_eq!(resp.body, "Hello, World!\n");
//! ```

use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use wsgi_spec::{AppError, Body, Environ, StartResponse};

fn text_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    h
}

/// The hello app's body.
const HELLO: &[u8] = b"Hello, World!\n";

/// The hello app: a fixed greeting, the response of the benchmark's other
/// hello servers (`text/plain`; the server adds its length).
///
/// # Errors
/// Never in practice; `start_response` errors are propagated.
pub fn hello(_environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    start_response.start(StatusCode::OK, headers)?;
    Ok(Body::full(Bytes::from_static(HELLO)))
}

/// A streaming app: a slow generator body, one line every `?delay_ms=`
/// milliseconds (default 100), `?n=` lines (default 5).
///
/// # Errors
/// Never in practice; `start_response` errors are propagated.
pub fn streaming(environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
    let query = String::from_utf8_lossy(&environ.query_string).into_owned();
    let param = |name: &str, default: u64| -> u64 {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(default)
    };
    let n = param("n", 5);
    let delay = Duration::from_millis(param("delay_ms", 100));
    start_response.start(StatusCode::OK, text_headers())?;
    Ok(Body::from_iter((0..n).map(move |i| {
        if i > 0 {
            std::thread::sleep(delay);
        }
        Ok::<_, AppError>(Bytes::from(format!("line {i}\n")))
    })))
}

/// An app that calls `start_response` lazily, during the first iteration of
/// its body, and an app that uses `write()`: both PEP 3333 corners.
///
/// `/write` sends its first part through `write()`; anything else starts the
/// response from inside the body.
///
/// # Errors
/// Never in practice; `start_response` and `write` errors are propagated.
pub fn lazy_write(environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
    if &environ.path_info[..] == b"/write" {
        let write = start_response.start(StatusCode::OK, text_headers())?;
        write.write("written with write()\n")?;
        return Ok(Body::chunks(["then yielded by the body\n"]));
    }
    let mut started = false;
    Ok(Body::from_iter(std::iter::from_fn(move || {
        if started {
            return None;
        }
        started = true;
        Some(
            start_response
                .start(StatusCode::OK, text_headers())
                .map(|_| Bytes::from_static(b"started lazily, in the first iteration\n")),
        )
    })))
}
