//! `run::run`, the loop every server shares (SPEC.md BODY-*, EXC-*, WR-*,
//! SR-9, SR-14, SR-17, CL-*, STRM-1, APP-*): what reaches a `ResponseSink`,
//! in which order, and that the body is closed exactly once on every path.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{chunk, get, run_app, run_into, run_step, server_info, Probe, Rec, Scripted, Sink, Step};
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};
use wsgi_spec::driver::Framing;
use wsgi_spec::run::run;
use wsgi_spec::testing::TestClient;
use wsgi_spec::{AppError, Body, Environ, Error, Input, StartResponse, Write};

type AppResult = Result<Body, AppError>;

fn ok_headers() -> HeaderMap {
    HeaderMap::new()
}

fn with_length(n: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_LENGTH, HeaderValue::from_static(n));
    h
}

/// An app that starts 200 with `headers` and returns a scripted body.
fn scripted_app(
    headers: HeaderMap,
    steps: impl Fn() -> Vec<Step> + Send + Sync + 'static,
    probe: &Arc<Probe>,
    rec: &Rec,
) -> impl Fn(Environ, StartResponse) -> AppResult + Send + Sync + 'static {
    let probe = Arc::clone(probe);
    let rec = rec.clone();
    move |_env, sr| {
        sr.start(StatusCode::OK, headers.clone())?;
        Ok(Scripted::new(steps(), &probe).noting(&rec).body())
    }
}

fn run_scripted(
    headers: HeaderMap,
    steps: fn() -> Vec<Step>,
    environ: Environ,
) -> (wsgi_spec::run::Outcome, Rec, Arc<Probe>) {
    let probe = Probe::new();
    let rec = Rec::new();
    let app = scripted_app(headers, steps, &probe, &rec);
    let outcome = run(&app, environ, Sink::new(&rec));
    (outcome, rec, probe)
}

fn environ_with_log() -> (Environ, wsgi_spec::errors::MemorySink) {
    let (info, log) = server_info();
    let (parts, ()) = http::Request::get("/").body(()).expect("valid").into_parts();
    (Environ::from_request(parts, Input::empty(), &info), log)
}

#[test]
fn body_1_each_chunk_sent_before_the_next_is_pulled() {
    let (outcome, rec, _) = run_scripted(ok_headers(), || vec![chunk("a"), chunk("b")], get());
    assert_eq!(rec.trace(), ["pull 1", "head 200", "data a", "pull 2", "data b", "pull 3", "drop", "finish"]);
    assert!(outcome.is_complete());
}

#[test]
fn body_1_chunks_are_neither_coalesced_nor_split() {
    let (_, rec, _) = run_scripted(ok_headers(), || vec![chunk("one"), chunk("two"), chunk("three")], get());
    assert_eq!(rec.data_chunks(), ["one", "two", "three"]);
}

#[test]
fn body_2_bytes_are_sent_unchanged() {
    let raw: &'static [u8] = b"line\r\nnul\0 high\xff\x80 lf\n";
    let app = move |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        Ok(Body::chunks([raw, raw]))
    };
    let (_, rec) = run_app(&app, get());
    assert_eq!(rec.body(), [raw, raw].concat());
}

#[test]
fn body_3_close_once_on_normal_end() {
    let (outcome, rec, probe) = run_scripted(ok_headers(), || vec![chunk("a")], get());
    assert_eq!(probe.drops(), 1);
    let trace = rec.trace();
    let drop_at = trace.iter().position(|t| t == "drop").expect("dropped");
    let finish_at = trace.iter().position(|t| t == "finish").expect("finished");
    assert!(drop_at < finish_at, "closed before the response is finished: {trace:?}");
    assert!(outcome.error.is_none());
}

#[test]
fn body_3_close_once_on_error_mid_iteration() {
    let (outcome, rec, probe) = run_scripted(ok_headers(), || vec![chunk("a"), Step::Fail("broken generator")], get());
    assert_eq!(probe.drops(), 1);
    assert_eq!(probe.pulls(), 2);
    assert_eq!(rec.trace(), ["pull 1", "head 200", "data a", "pull 2", "drop", "abort"]);
    assert!(matches!(outcome.error, Some(Error::App(ref e)) if e.to_string() == "broken generator"));
}

#[test]
fn body_3_close_once_on_panic_mid_iteration() {
    let (outcome, rec, probe) = run_scripted(ok_headers(), || vec![chunk("a"), Step::Panic("boom")], get());
    assert_eq!(probe.drops(), 1);
    assert_eq!(rec.trace(), ["pull 1", "head 200", "data a", "pull 2", "drop", "abort"]);
    assert!(matches!(outcome.error, Some(Error::Panic(ref m)) if m == "boom"));
}

#[test]
fn body_3_close_once_on_client_disconnect() {
    let probe = Probe::new();
    let rec = Rec::new();
    let app = scripted_app(ok_headers(), || vec![chunk("a"), chunk("b"), chunk("c"), chunk("d")], &probe, &rec);
    let mut sink = Sink::new(&rec);
    sink.fail_data_at = Some(1);
    let outcome = run_into(&app, get(), sink);
    assert_eq!(probe.pulls(), 2, "iteration stops at the failed send");
    assert_eq!(probe.drops(), 1);
    assert!(!rec.finished(), "a response the client did not get is not finished");
    assert_eq!(rec.body(), "a");
    assert!(matches!(outcome.error, Some(Error::Disconnected(_))));
    assert!(!outcome.is_complete());
}

#[test]
fn body_3_close_once_on_disconnect_before_the_head() {
    let probe = Probe::new();
    let rec = Rec::new();
    let app = scripted_app(ok_headers(), || vec![chunk("a"), chunk("b")], &probe, &rec);
    let mut sink = Sink::new(&rec);
    sink.fail_head = true;
    let outcome = run_into(&app, get(), sink);
    assert_eq!((probe.pulls(), probe.drops()), (1, 1));
    assert!(rec.heads().is_empty() && !rec.finished());
    assert_eq!(outcome.status, None, "no head reached the client");
    assert!(matches!(outcome.error, Some(Error::Disconnected(_))));
}

#[test]
fn body_3_close_once_when_content_length_is_reached_early() {
    let (outcome, rec, probe) =
        run_scripted(with_length("5"), || vec![chunk("abc"), chunk("def"), chunk("ghi"), chunk("jkl")], get());
    assert_eq!(probe.pulls(), 2, "stopped once 5 bytes were sent");
    assert_eq!(probe.drops(), 1);
    assert_eq!(rec.body(), "abcde");
    assert!(rec.finished());
    assert_eq!(outcome.bytes_sent, 5);
    assert!(outcome.is_complete());
}

#[test]
fn body_3_close_once_when_the_app_never_started() {
    let probe = Probe::new();
    let p = Arc::clone(&probe);
    let app = move |_env: Environ, _sr: StartResponse| -> AppResult { Ok(Scripted::new(vec![chunk("x")], &p).body()) };
    let (outcome, rec) = run_app(&app, get());
    assert_eq!(probe.drops(), 1);
    assert_eq!(rec.head().status.code(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(matches!(outcome.error, Some(Error::BodyBeforeStart)));
}

#[test]
fn body_3_on_close_hooks_run_after_the_iterator_and_before_finish() {
    let probe = Probe::new();
    let rec = Rec::new();
    let (p, r) = (Arc::clone(&probe), rec.clone());
    let app = move |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        let (r1, r2) = (r.clone(), r.clone());
        Ok(Scripted::new(vec![chunk("a")], &p)
            .noting(&r)
            .body()
            .on_close(move || r1.note("hook 1"))
            .on_close(move || r2.note("hook 2")))
    };
    run(&app, get(), Sink::new(&rec));
    let trace = rec.trace();
    assert_eq!(trace[trace.len() - 4..], ["drop", "hook 1", "hook 2", "finish"], "{trace:?}");
}

#[test]
fn body_3_a_panicking_close_is_caught() {
    let probe = Probe::new();
    let p = Arc::clone(&probe);
    let app = move |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        Ok(Scripted::new(vec![chunk("a")], &p).panic_on_drop().body())
    };
    let (outcome, rec) = run_app(&app, get());
    assert_eq!(probe.drops(), 1);
    assert!(rec.aborted() && !rec.finished(), "close failed after the head: abort");
    assert!(matches!(outcome.error, Some(Error::Panic(ref m)) if m == "close() failed"));

    let p = Arc::clone(&probe);
    let app = move |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        Ok(Scripted::new(vec![], &p).panic_on_drop().body())
    };
    let (_, rec) = run_app(&app, get());
    assert_eq!(rec.head().status.code(), StatusCode::INTERNAL_SERVER_ERROR, "nothing was sent yet: a clean 500");
}

#[test]
fn body_4_head_request_pulls_one_chunk_then_closes() {
    let (outcome, rec, probe) = run_scripted(
        ok_headers(),
        || vec![chunk("a"), chunk("b"), chunk("c")],
        common::environ(Method::HEAD, "/", Version::HTTP_11),
    );
    assert_eq!((probe.pulls(), probe.drops()), (1, 1));
    assert_eq!(rec.head().framing, Framing::NoBody);
    assert!(rec.data_chunks().is_empty(), "no body bytes for HEAD");
    assert!(rec.finished());
    assert!(outcome.is_complete());
}

#[test]
fn body_6_no_content_sends_no_body_and_no_content_length() {
    let app = |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::NO_CONTENT, HeaderMap::new())?;
        Ok(Body::full("ignored"))
    };
    let (outcome, rec) = run_app(&app, get());
    let head = rec.head();
    assert_eq!(head.framing, Framing::NoBody);
    assert!(head.headers.get(CONTENT_LENGTH).is_none());
    assert!(rec.data_chunks().is_empty());
    assert!(outcome.is_complete());
}

#[test]
fn sr_9_empty_chunks_then_error_is_a_clean_500() {
    let (outcome, rec, probe) =
        run_scripted(ok_headers(), || vec![chunk(""), chunk(""), Step::Fail("late failure")], get());
    assert_eq!(probe.pulls(), 3);
    let head = rec.head();
    assert_eq!(head.status.code(), StatusCode::INTERNAL_SERVER_ERROR, "never a 200 head");
    assert_eq!(rec.body(), "Internal Server Error\n");
    assert!(rec.finished() && !rec.aborted());
    assert_eq!(outcome.status, Some(StatusCode::INTERNAL_SERVER_ERROR));
}

#[test]
fn sr_14_propagated_headers_sent_aborts_the_response() {
    let app = |_env: Environ, sr: StartResponse| -> AppResult {
        let write = sr.start(StatusCode::OK, HeaderMap::new())?;
        write.write("partial")?;
        let failure: AppError = "database gone".into();
        sr.start_with_exc_info(StatusCode::INTERNAL_SERVER_ERROR, HeaderMap::new(), failure)?;
        unreachable!("start_response must fail after the head was sent");
    };
    let (outcome, rec) = run_app(&app, get());
    assert_eq!(rec.head().status.code(), StatusCode::OK);
    assert!(rec.aborted() && !rec.finished());
    let Some(Error::App(err)) = &outcome.error else {
        panic!("{:?}", outcome.error);
    };
    let Some(Error::HeadersSent(orig)) = err.downcast_ref::<Error>() else {
        panic!("{err:?}");
    };
    assert_eq!(orig.to_string(), "database gone");
}

#[test]
fn sr_17_lazy_start_in_the_first_iteration() {
    let rec = Rec::new();
    let probe = Probe::new();
    let (r, p) = (rec.clone(), Arc::clone(&probe));
    let app = move |_env: Environ, sr: StartResponse| -> AppResult {
        let steps = vec![
            run_step(move || {
                if let Err(e) = sr.start(StatusCode::ACCEPTED, HeaderMap::new()) {
                    return Some(Err(e.into()));
                }
                Some(Ok(Bytes::from_static(b"lazy")))
            }),
            chunk("!"),
        ];
        Ok(Scripted::new(steps, &p).noting(&r).body())
    };
    let outcome = run(&app, get(), Sink::new(&rec));
    assert_eq!(rec.head().status.code(), StatusCode::ACCEPTED);
    assert_eq!(rec.body(), "lazy!");
    assert!(outcome.is_complete());
    let client = TestClient::new(|_env: Environ, sr: StartResponse| -> AppResult {
        let mut sr = Some(sr);
        Ok(Body::from_iter(std::iter::from_fn(move || {
            let sr = sr.take()?;
            Some(sr.start(StatusCode::OK, HeaderMap::new()).map(|_| Bytes::from("x")))
        })))
    });
    assert_eq!(client.get("/").body, "x");
}

#[test]
fn sr_17_never_started_is_a_500() {
    let app = |_env: Environ, _sr: StartResponse| -> AppResult { Ok(Body::empty()) };
    let (outcome, rec) = run_app(&app, get());
    assert_eq!(rec.head().status.code(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(matches!(outcome.error, Some(Error::NeverStarted)));
}

#[test]
fn sr_17_body_data_before_start_is_a_500() {
    let app = |_env: Environ, _sr: StartResponse| -> AppResult { Ok(Body::full("early")) };
    let (outcome, rec) = run_app(&app, get());
    assert_eq!(rec.head().status.code(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(rec.body(), "Internal Server Error\n", "the early bytes are not sent");
    assert!(matches!(outcome.error, Some(Error::BodyBeforeStart)));
}

#[test]
fn exc_1_app_renders_its_own_error_page() {
    let app = |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        let work: Result<(), AppError> = Err("no such user".into());
        if let Err(e) = work {
            let mut h = HeaderMap::new();
            h.insert("content-type", HeaderValue::from_static("text/plain"));
            let page = format!("sorry: {e}");
            sr.start_with_exc_info(StatusCode::NOT_FOUND, h, e)?;
            return Ok(Body::full(page));
        }
        Ok(Body::full("found"))
    };
    let (outcome, rec) = run_app(&app, get());
    assert_eq!(rec.head().status.code(), StatusCode::NOT_FOUND);
    assert_eq!(rec.body(), "sorry: no such user");
    assert!(outcome.error.is_none() && outcome.is_complete());
}

#[test]
fn exc_2_app_error_before_the_head_is_a_logged_500() {
    let (environ, log) = environ_with_log();
    let app = |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        Err("kaboom".into())
    };
    let (outcome, rec) = run_app(&app, environ);
    let head = rec.head();
    assert_eq!(head.status.code(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(head.framing, Framing::Length(22));
    assert_eq!(rec.body(), "Internal Server Error\n");
    assert!(rec.finished() && !rec.aborted());
    assert!(matches!(outcome.error, Some(Error::App(_))));
    assert_eq!(outcome.status, Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert!(!outcome.is_complete(), "an error response is not a complete response");
    assert!(log.lines().iter().any(|l| l.contains("kaboom")), "{:?}", log.lines());
}

#[test]
fn exc_3_error_after_the_head_aborts() {
    let (environ, log) = environ_with_log();
    let (outcome, rec, _) = run_scripted(ok_headers(), || vec![chunk("part"), Step::Fail("mid-stream")], environ);
    assert_eq!(rec.heads().len(), 1, "no second head");
    assert_eq!(rec.head().status.code(), StatusCode::OK);
    assert!(rec.aborted() && !rec.finished());
    assert_eq!(outcome.status, Some(StatusCode::OK));
    assert!(log.lines().iter().any(|l| l.contains("mid-stream")));
}

#[test]
fn exc_5_panic_in_the_app_before_the_head_is_a_500() {
    let app = |_env: Environ, _sr: StartResponse| -> AppResult { panic!("app exploded") };
    let (outcome, rec) = run_app(&app, get());
    assert_eq!(rec.head().status.code(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(rec.finished());
    assert!(matches!(outcome.error, Some(Error::Panic(ref m)) if m == "app exploded"));
    let app = |_env: Environ, _sr: StartResponse| -> AppResult {
        std::panic::panic_any(42_u8);
    };
    let (outcome, _) = run_app(&app, get());
    assert!(matches!(outcome.error, Some(Error::Panic(_))), "any payload");
}

#[test]
fn exc_5_panic_after_the_head_aborts_and_run_returns() {
    let app = |_env: Environ, sr: StartResponse| -> AppResult {
        let w = sr.start(StatusCode::OK, HeaderMap::new())?;
        w.write("sent")?;
        panic!("{}", String::from("late panic"));
    };
    let (outcome, rec) = run_app(&app, get());
    assert_eq!(rec.head().status.code(), StatusCode::OK);
    assert!(rec.aborted() && !rec.finished());
    assert!(matches!(outcome.error, Some(Error::Panic(ref m)) if m == "late panic"));
    let (outcome, _) = run_app(&app, get());
    assert!(outcome.error.is_some(), "the same app runs again: nothing is poisoned");
}

#[test]
fn exc_6_client_disconnect_is_not_an_app_error() {
    let (environ, log) = environ_with_log();
    let rec = Rec::new();
    let probe = Probe::new();
    let app = scripted_app(ok_headers(), || vec![chunk("a"), chunk("b")], &probe, &rec);
    let mut sink = Sink::new(&rec);
    sink.fail_data_at = Some(0);
    let outcome = run_into(&app, environ, sink);
    assert!(matches!(outcome.error, Some(Error::Disconnected(ref e)) if e.kind() == std::io::ErrorKind::BrokenPipe));
    assert!(log.lines().is_empty(), "nothing to log: {:?}", log.lines());
    assert_eq!(probe.drops(), 1);
}

#[test]
fn wr_1_write_data_is_treated_as_body_data() {
    let app = |_env: Environ, sr: StartResponse| -> AppResult {
        let w = sr.start(StatusCode::OK, with_length("3"))?;
        w.write("abcdef")?;
        w.write("more")?;
        Ok(Body::empty())
    };
    let (outcome, rec) = run_app(&app, get());
    assert_eq!(rec.body(), "abc", "truncated to Content-Length like body data");
    assert!(outcome.is_complete());
}

#[test]
fn wr_2_write_hands_data_over_before_returning() {
    let rec = Rec::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (r, s) = (rec.clone(), Arc::clone(&seen));
    let app = move |_env: Environ, sr: StartResponse| -> AppResult {
        let w = sr.start(StatusCode::OK, HeaderMap::new())?;
        w.write("first")?;
        s.lock().expect("lock").push(r.body());
        w.write(" second")?;
        s.lock().expect("lock").push(r.body());
        Ok(Body::empty())
    };
    run(&app, get(), Sink::new(&rec));
    assert_eq!(seen.lock().expect("lock").as_slice(), ["first", "first second"]);
}

#[test]
fn wr_3_write_commits_the_head_without_a_length() {
    for (version, framing) in [(Version::HTTP_11, Framing::Chunked), (Version::HTTP_10, Framing::CloseDelimited)] {
        let app = |_env: Environ, sr: StartResponse| -> AppResult {
            sr.start(StatusCode::OK, HeaderMap::new())?.write("ab")?;
            Ok(Body::full("cd"))
        };
        let (_, rec) = run_app(&app, common::environ(Method::GET, "/", version));
        let head = rec.head();
        assert_eq!(head.framing, framing);
        assert!(head.headers.get(CONTENT_LENGTH).is_none());
        assert_eq!(rec.body(), "abcd");
    }
}

#[test]
fn wr_4_write_data_goes_before_body_data() {
    let (_, rec, _) = {
        let probe = Probe::new();
        let rec = Rec::new();
        let p = Arc::clone(&probe);
        let app = move |_env: Environ, sr: StartResponse| -> AppResult {
            let w = sr.start(StatusCode::OK, HeaderMap::new())?;
            w.write("w1")?;
            w.write("")?;
            w.write("w2")?;
            Ok(Scripted::new(vec![chunk("b1"), chunk("b2")], &p).body())
        };
        let outcome = run(&app, get(), Sink::new(&rec));
        (outcome, rec, probe)
    };
    assert_eq!(rec.data_chunks(), ["w1", "w2", "b1", "b2"]);
}

#[test]
fn wr_5_write_from_inside_the_iterable_is_write_after_return() {
    let results = Arc::new(Mutex::new(Vec::new()));
    let res = Arc::clone(&results);
    let app = move |_env: Environ, sr: StartResponse| -> AppResult {
        let w: Write = sr.start(StatusCode::OK, HeaderMap::new())?;
        let res = Arc::clone(&res);
        let mut once = Some(w);
        Ok(Body::from_iter(std::iter::from_fn(move || {
            let w = once.take()?;
            let r = w.write("sneaky");
            res.lock().expect("lock").push(format!("{:?}", r.map_err(|e| e.rule().map(str::to_owned))));
            Some(Ok::<_, AppError>(Bytes::from("body")))
        })))
    };
    let (outcome, rec) = run_app(&app, get());
    assert_eq!(results.lock().expect("lock").as_slice(), ["Err(Some(\"WR-5\"))"]);
    assert_eq!(rec.body(), "body", "the written bytes were not sent");
    assert!(outcome.is_complete());
}

#[test]
fn wr_6_no_write_without_a_successful_start_response() {
    let app = |_env: Environ, sr: StartResponse| -> AppResult {
        let mut h = HeaderMap::new();
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        let failed = sr.start(StatusCode::OK, h);
        assert!(failed.is_err(), "no Write handle comes out of a failed call");
        Ok(Body::full("body without a head"))
    };
    let (outcome, rec) = run_app(&app, get());
    assert_eq!(rec.head().status.code(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(matches!(outcome.error, Some(Error::BodyBeforeStart)));
}

#[test]
fn app_1_app_is_called_many_times_and_concurrently() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let client = TestClient::new(move |env: Environ, sr: StartResponse| -> AppResult {
        c.fetch_add(1, Ordering::SeqCst);
        sr.start(StatusCode::OK, HeaderMap::new())?;
        Ok(Body::full(env.path_info))
    });
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let client = client.clone();
            std::thread::spawn(move || {
                for i in 0..10 {
                    let path = format!("/t{t}/r{i}");
                    assert_eq!(client.get(&path).body, path.as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no panic");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 40);
}

#[test]
fn app_4_body_may_be_empty_after_write() {
    let app = |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?.write("everything")?;
        Ok(Body::empty())
    };
    let (outcome, rec) = run_app(&app, get());
    assert_eq!(rec.body(), "everything");
    assert!(rec.finished() && outcome.is_complete());
}

#[test]
fn app_5_len_hint_gives_content_length() {
    let probe = Probe::new();
    let p = Arc::clone(&probe);
    let app = move |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        Ok(Scripted::new(vec![chunk("ab"), chunk("cd")], &p).with_hint().body())
    };
    let (_, rec) = run_app(&app, get());
    let head = rec.head();
    assert_eq!(head.framing, Framing::Length(4));
    assert_eq!(head.headers[CONTENT_LENGTH], "4");
    assert_eq!(rec.body(), "abcd");
}

#[test]
fn cl_2_short_body_after_the_head_aborts() {
    let (environ, log) = environ_with_log();
    let app = |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, with_length("10"))?;
        Ok(Body::from_iter([Ok::<_, AppError>("abc")]))
    };
    let (outcome, rec) = run_app(&app, environ);
    assert_eq!(rec.head().framing, Framing::Length(10));
    assert_eq!(rec.body(), "abc");
    assert!(rec.aborted() && !rec.finished(), "the connection must be closed");
    assert!(matches!(outcome.error, Some(Error::ShortBody { expected: 10, sent: 3 })));
    assert!(log.lines().iter().any(|l| l.contains("CL-2")));
}

#[test]
fn cl_2_short_body_with_nothing_sent_is_a_clean_500() {
    let app = |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, with_length("10"))?;
        Ok(Body::empty())
    };
    let (outcome, rec) = run_app(&app, get());
    assert_eq!(rec.head().status.code(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(rec.finished() && !rec.aborted(), "abort is only for a head already sent");
    assert!(matches!(outcome.error, Some(Error::ShortBody { expected: 10, sent: 0 })));
}

#[test]
fn cl_3_framing_chosen_from_what_is_known() {
    type MakeBody = fn() -> Body;
    let cases: [(MakeBody, Version, Framing); 6] = [
        (|| Body::full("12345"), Version::HTTP_11, Framing::Length(5)),
        (|| Body::chunks(["12", "345"]), Version::HTTP_10, Framing::Length(5)),
        (Body::empty, Version::HTTP_11, Framing::Length(0)),
        (|| Body::from_iter([Ok::<_, AppError>("12345")]), Version::HTTP_11, Framing::Chunked),
        (|| Body::from_iter([Ok::<_, AppError>("12345")]), Version::HTTP_10, Framing::CloseDelimited),
        (|| Body::from_iter([Ok::<_, AppError>("12345")]), Version::HTTP_2, Framing::Chunked),
    ];
    for (make, version, framing) in cases {
        let app = move |_env: Environ, sr: StartResponse| -> AppResult {
            sr.start(StatusCode::OK, HeaderMap::new())?;
            Ok(make())
        };
        let (_, rec) = run_app(&app, common::environ(Method::GET, "/", version));
        let head = rec.head();
        assert_eq!(head.framing, framing, "{version:?}");
        match framing {
            Framing::Length(n) => assert_eq!(head.headers[CONTENT_LENGTH], n.to_string().as_str()),
            _ => assert!(head.headers.get(CONTENT_LENGTH).is_none()),
        }
    }
}

#[test]
fn strm_1_a_chunk_is_out_while_the_app_makes_the_next() {
    let rec = Rec::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (r, s) = (rec.clone(), Arc::clone(&seen));
    let probe = Probe::new();
    let p = Arc::clone(&probe);
    let app = move |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        let (r, s) = (r.clone(), Arc::clone(&s));
        let steps = vec![
            chunk("first"),
            run_step(move || {
                s.lock().expect("lock").push(r.body());
                Some(Ok(Bytes::from("second")))
            }),
        ];
        Ok(Scripted::new(steps, &p).body())
    };
    run(&app, get(), Sink::new(&rec));
    assert_eq!(
        seen.lock().expect("lock").as_slice(),
        ["first"],
        "the first chunk reached the sink before the second was asked for"
    );
}

/// `run::start` + `Running::resume` split a request across threads (the
/// server's inline mode): a budget pauses iteration, the rest resumes on
/// another thread, the bytes and their order are those of `run`.
#[test]
fn body_1_start_and_resume_deliver_the_same_bytes_across_threads() {
    use wsgi_spec::run::{start, Step as RunStep};
    let rec = Rec::new();
    let app = |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        Ok(Body::from_iter((0..6).map(|i| Ok::<_, AppError>(Bytes::from(format!("{i}-"))))))
    };
    let env = get();
    let running = match start(&app, env, Sink::new(&rec)) {
        RunStep::Paused(r) => r,
        RunStep::Done(o) => panic!("app finished before iteration: {o:?}"),
    };
    // Nothing iterated yet: the head is held.
    assert!(rec.heads().is_empty());
    let running = match running.resume(Some(4)) {
        RunStep::Paused(r) => r,
        RunStep::Done(o) => panic!("budget ignored: {o:?}"),
    };
    assert_eq!(rec.body(), "0-1-", "paused once 4 bytes were handed over");
    let outcome = std::thread::spawn(move || running.finish()).join().expect("the resuming thread");
    assert!(outcome.is_complete());
    assert_eq!(rec.body(), "0-1-2-3-4-5-");
    assert!(rec.finished());
}

/// Dropping a paused request closes its body (BODY-3).
#[test]
fn body_3_dropping_a_paused_request_closes_the_body() {
    use wsgi_spec::run::start;
    let closed = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&closed);
    let app = move |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        let c = Arc::clone(&c);
        Ok(Body::from_iter((0..3).map(|_| Ok::<_, AppError>(Bytes::from_static(b"x")))).on_close(move || {
            c.fetch_add(1, Ordering::SeqCst);
        }))
    };
    let rec = Rec::new();
    let env = get();
    let step = start(&app, env, Sink::new(&rec));
    assert_eq!(closed.load(Ordering::SeqCst), 0);
    drop(step);
    assert_eq!(closed.load(Ordering::SeqCst), 1);
}
