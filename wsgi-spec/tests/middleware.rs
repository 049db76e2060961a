//! Middleware written the way SPEC.md describes it (`FooLayer` + `Foo<A>`,
//! `StartResponse::from_fn`, wrapped bodies), and the rules it must keep
//! (SPEC.md STRM-2, STRM-3, STRM-4, EXC-4, SR-12).

mod common;

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use common::{chunk, get, run_app, Probe, Rec, Scripted, Sink};
use http::{HeaderMap, HeaderValue, StatusCode};
use tower_layer::Layer;
use wsgi_spec::run::run;
use wsgi_spec::testing::TestClient;
use wsgi_spec::{AppError, Application, Body, BodyIter, Environ, StartResponse, Status, Write};

type AppResult = Result<Body, AppError>;

/// Adds `x-tag` to every response and upper-cases the body, both what the
/// app yields and what it passes to `write()`.
#[derive(Debug, Clone)]
struct UpperLayer {
    tag: &'static str,
}

#[derive(Debug, Clone)]
struct Upper<A> {
    inner: A,
    tag: &'static str,
}

impl<A> Layer<A> for UpperLayer {
    type Service = Upper<A>;
    fn layer(&self, inner: A) -> Upper<A> {
        Upper { inner, tag: self.tag }
    }
}

struct UpperBody(Body);

impl BodyIter for UpperBody {
    fn next_chunk(&mut self) -> Option<Result<Bytes, AppError>> {
        self.0.next_chunk().map(|r| r.map(|b| Bytes::from(b.to_ascii_uppercase())))
    }
    fn len_hint(&self) -> Option<u64> {
        self.0.len_hint()
    }
}

impl<A: Application> Application for Upper<A> {
    fn call(&self, environ: Environ, start_response: StartResponse) -> AppResult {
        let tag = self.tag;
        let wrapped = StartResponse::from_fn(move |status, mut headers, exc_info| {
            headers.append("x-tag", HeaderValue::from_static(tag));
            // STRM-4: the app's write() data goes through our own write().
            let write = start_response.call(status, headers, exc_info)?;
            Ok(Write::from_fn(move |data: Bytes| write.write(Bytes::from(data.to_ascii_uppercase()))))
        });
        // STRM-3: return as soon as the inner app returns, without iterating.
        let body = self.inner.call(environ, wrapped)?;
        Ok(Body::from_body_iter(UpperBody(body)))
    }
}

/// Joins every two chunks of the inner body into one, yielding an empty
/// chunk in between (STRM-2).
struct Pairs {
    inner: Body,
    held: Option<Bytes>,
}

impl BodyIter for Pairs {
    fn next_chunk(&mut self) -> Option<Result<Bytes, AppError>> {
        match self.inner.next_chunk() {
            Some(Ok(c)) => match self.held.take() {
                None => {
                    self.held = Some(c);
                    Some(Ok(Bytes::new()))
                }
                Some(first) => {
                    let mut both = BytesMut::from(&first[..]);
                    both.extend_from_slice(&c);
                    Some(Ok(both.freeze()))
                }
            },
            Some(Err(e)) => Some(Err(e)),
            None => self.held.take().map(Ok),
        }
    }
}

fn pairs<A: Application>(inner: A) -> impl Application {
    move |env: Environ, sr: StartResponse| -> AppResult {
        let body = inner.call(env, sr)?;
        Ok(Body::from_body_iter(Pairs { inner: body, held: None }))
    }
}

#[test]
fn strm_2_buffering_middleware_yields_an_empty_chunk_per_inner_chunk() {
    let rec = Rec::new();
    let probe = Probe::new();
    let (r, p) = (rec.clone(), Arc::clone(&probe));
    let inner = move |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        Ok(Scripted::new(vec![chunk("a"), chunk("b"), chunk("c")], &p).noting(&r).body())
    };
    let app = pairs(inner);
    let outcome = run(&app, get(), Sink::new(&rec));
    assert_eq!(
        rec.trace(),
        [
            "pull 1", // Pairs yields "": nothing is sent, the head waits
            "pull 2", "head 200", "data ab", "pull 3", "pull 4", "data c", "pull 5", "drop", "finish"
        ]
    );
    assert!(outcome.is_complete());
    assert_eq!(probe.pulls(), 5, "the server kept pulling through the empty chunks");
}

#[test]
fn strm_3_middleware_returns_the_body_without_iterating_it() {
    let probe = Probe::new();
    let p = Arc::clone(&probe);
    let app = UpperLayer { tag: "t" }.layer(move |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        Ok(Scripted::new(vec![chunk("lazy")], &p).body())
    });
    let sr = StartResponse::from_fn(|_, _, _| Ok(Write::from_fn(|_| Ok(()))));
    let mut body = app.call(get(), sr).expect("returned");
    assert_eq!(probe.pulls(), 0, "nothing pulled while the middleware ran");
    assert_eq!(body.next_chunk().map(|r| r.ok()), Some(Some(Bytes::from("LAZY"))));
    assert_eq!(probe.pulls(), 1);
    drop(body);
    assert_eq!(probe.drops(), 1, "closing the outer body closes the inner one");
}

#[test]
fn strm_4_app_write_data_goes_through_the_middleware_write() {
    let app = UpperLayer { tag: "t" }.layer(|_env: Environ, sr: StartResponse| -> AppResult {
        let w = sr.start(StatusCode::OK, HeaderMap::new())?;
        w.write("written, ")?;
        Ok(Body::chunks(["yielded"]))
    });
    let resp = TestClient::new(app).get("/");
    assert_eq!(resp.body, "WRITTEN, YIELDED", "write data first, both transformed");
    assert_eq!(resp.chunks.len(), 2, "the middleware did not write() the yielded data");
}

#[test]
fn strm_4_layers_compose_and_see_the_head() {
    let app = |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        Ok(Body::full("abc"))
    };
    let app = UpperLayer { tag: "outer" }.layer(UpperLayer { tag: "inner" }.layer(app));
    let resp = TestClient::new(app).get("/");
    let tags: Vec<_> = resp.headers.get_all("x-tag").iter().collect();
    assert_eq!(tags, ["inner", "outer"]);
    assert_eq!(resp.body, "ABC");
    assert_eq!(resp.headers["content-length"], "3", "the length hint survives wrapping");
}

#[test]
fn sr_12_exc_info_passes_through_middleware() {
    let app = UpperLayer { tag: "t" }.layer(|_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        sr.start_with_exc_info(StatusCode::BAD_GATEWAY, HeaderMap::new(), "upstream".into())?;
        Ok(Body::full("bad gateway"))
    });
    let resp = TestClient::new(app).get("/");
    assert_eq!(resp.status, StatusCode::BAD_GATEWAY);
    assert_eq!(resp.body, "BAD GATEWAY");
    assert_eq!(resp.headers["x-tag"], "t");
}

/// Replaces any error page the app sends with its own (EXC-4): it keeps the
/// app's `exc_info` instead of passing it on.
fn error_pages<A: Application>(inner: A) -> impl Application {
    move |env: Environ, sr: StartResponse| -> AppResult {
        let captured: Arc<Mutex<Option<AppError>>> = Arc::default();
        let cap = Arc::clone(&captured);
        let outer = sr.clone();
        let wrapped = StartResponse::from_fn(move |status: Status, headers, exc_info| {
            if let Some(e) = exc_info {
                *cap.lock().expect("lock") = Some(e);
                return Ok(Write::from_fn(|_| Ok(())));
            }
            outer.call(status, headers, None)
        });
        let body = inner.call(env, wrapped)?;
        if let Some(e) = captured.lock().expect("lock").take() {
            drop(body);
            let page = format!("maintenance ({e})");
            sr.start_with_exc_info(StatusCode::SERVICE_UNAVAILABLE, HeaderMap::new(), e)?;
            return Ok(Body::full(page));
        }
        Ok(body)
    }
}

#[test]
fn exc_4_middleware_may_replace_the_error_output() {
    let app = error_pages(|_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        sr.start_with_exc_info(StatusCode::INTERNAL_SERVER_ERROR, HeaderMap::new(), "db".into())?;
        Ok(Body::full("the app's own error page"))
    });
    let (outcome, rec) = run_app(&app, get());
    assert_eq!(rec.head().status.code(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(rec.body(), "maintenance (db)");
    assert!(outcome.is_complete());
    let fine = error_pages(|_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        Ok(Body::full("fine"))
    });
    assert_eq!(TestClient::new(fine).get("/").body, "fine");
}
