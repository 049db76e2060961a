//! `lint::Lint`: one failing app per rule the lint enforces (named after the
//! rule), a conforming app that passes cleanly, and the mode/close guarantees.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{HeaderName, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tower_layer::Layer;
use wsgi_spec::driver::ResponseHead;
use wsgi_spec::errors::MemorySink;
use wsgi_spec::lint::{find_violation, Lint, LintLayer, LintMode, LintReport};
use wsgi_spec::run::{run, ResponseSink};
use wsgi_spec::testing::{TestClient, TestResponse};
use wsgi_spec::{
    AppError, Application, Body, Environ, Error, Errors, FileBody, Input, LintViolation, ServerInfo, Side,
    StartResponse, Status, Write,
};

// ---------------------------------------------------------------------------
// Helpers

fn text() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h
}

fn text_with_length(n: u64) -> HeaderMap {
    let mut h = text();
    h.insert(CONTENT_LENGTH, HeaderValue::from(n));
    h
}

fn get(uri: &str) -> http::Request<Bytes> {
    http::Request::get(uri).body(Bytes::new()).expect("valid request")
}

fn head(uri: &str) -> http::Request<Bytes> {
    http::Request::head(uri).body(Bytes::new()).expect("valid request")
}

/// One request through a linted app.
struct Run {
    resp: TestResponse,
    report: LintReport,
    errors: Vec<String>,
}

fn lint_request<A: Application>(app: A, mode: LintMode, req: http::Request<Bytes>) -> Run {
    let lint = Lint::new(app).with_mode(mode);
    let report = lint.report().clone();
    let client = TestClient::new(lint);
    let resp = client.request(req);
    Run { resp, report, errors: client.errors() }
}

/// An environ built by hand (for the server-side rules), with its
/// `wsgi.errors` captured.
fn environ(method: Method, uri: &str) -> (Environ, MemorySink) {
    let sink = MemorySink::new();
    let server = ServerInfo { errors: Errors::new(sink.clone()), ..ServerInfo::default() };
    let (parts, ()) = http::Request::builder().method(method).uri(uri).body(()).expect("valid request").into_parts();
    (Environ::from_request(parts, Input::empty(), &server), sink)
}

fn lint_environ<A: Application>(app: A, mode: LintMode, edit: impl FnOnce(&mut Environ)) -> Run {
    let (mut env, sink) = environ(Method::GET, "/");
    edit(&mut env);
    let lint = Lint::new(app).with_mode(mode);
    let report = lint.report().clone();
    let resp = TestClient::new(lint).call(env);
    Run { resp, report, errors: sink.lines() }
}

fn ok_app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
    sr.start(StatusCode::OK, text())?;
    Ok(Body::full("ok"))
}

/// `rule` was recorded for `side`, its text starts with the rule id, and it
/// went to `wsgi.errors` as one line.
#[track_caller]
fn assert_flagged(run: &Run, rule: &str, side: Side) -> LintViolation {
    let all = run.report.violations();
    let v = all.iter().find(|v| v.rule == rule).unwrap_or_else(|| panic!("{rule} not reported: {all:?}")).clone();
    assert_eq!(v.side, side, "{v}");
    assert!(v.to_string().starts_with(&format!("{rule}: ")), "{v}");
    assert!(!v.message.is_empty());
    assert!(run.errors.contains(&format!("lint: {v}")), "not in wsgi.errors: {:?}", run.errors);
    assert!(!run.report.is_clean());
    v
}

/// The request failed with `Error::Lint` for `rule` (Fail mode).
#[track_caller]
fn assert_failed_with(run: &Run, rule: &str) {
    let err = run.resp.error.as_ref().unwrap_or_else(|| panic!("the request did not fail: {:?}", run.report));
    let v = find_violation(err).unwrap_or_else(|| panic!("not a lint error: {err}"));
    assert_eq!(v.rule, rule, "{err}");
    assert!(Error::Lint(v.clone()).to_string().starts_with(&format!("{rule}: ")));
    assert!(err.to_string().contains(&format!("{rule}: ")), "{err}");
    if run.resp.framing.is_none() || run.resp.status == StatusCode::INTERNAL_SERVER_ERROR {
        // Failed before its head: the server answered 500.
        assert_eq!(run.resp.status, StatusCode::INTERNAL_SERVER_ERROR);
    } else {
        // Failed after its head: the response was aborted.
        assert!(run.resp.aborted);
    }
}

/// The same observable response.
#[track_caller]
fn assert_same_response(a: &TestResponse, b: &TestResponse) {
    assert_eq!(a.status, b.status);
    assert_eq!(a.reason, b.reason);
    assert_eq!(a.headers, b.headers);
    assert_eq!(a.framing, b.framing);
    assert_eq!(a.body, b.body);
    assert_eq!(a.chunks, b.chunks);
    assert_eq!(a.aborted, b.aborted);
    assert_eq!(a.error.as_ref().map(ToString::to_string), b.error.as_ref().map(ToString::to_string));
}

/// An application-side rule that fails the request: Fail mode fails it with
/// `Error::Lint`; Record mode records it and changes nothing.
#[track_caller]
fn check_app_rule<A: Application + Clone>(app: A, req: fn() -> http::Request<Bytes>, rule: &str) {
    let failed = lint_request(app.clone(), LintMode::Fail, req());
    assert_flagged(&failed, rule, Side::App);
    assert_failed_with(&failed, rule);

    let recorded = lint_request(app.clone(), LintMode::Record, req());
    assert_flagged(&recorded, rule, Side::App);
    let plain = TestClient::new(app).request(req());
    assert_same_response(&recorded.resp, &plain);
    assert_eq!(recorded.report.open_bodies(), 0);
}

fn get_root() -> http::Request<Bytes> {
    get("/")
}

fn head_root() -> http::Request<Bytes> {
    head("/")
}

/// A file with `content`, already unlinked.
fn temp_file(name: &str, content: &[u8]) -> std::fs::File {
    let path = temp_path(name, content);
    let file = std::fs::File::open(&path).expect("open temp file");
    std::fs::remove_file(&path).expect("remove temp file");
    file
}

fn temp_path(name: &str, content: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("wsgi-spec-lint-{}-{name}", std::process::id()));
    let mut f = std::fs::File::create(&path).expect("create temp file");
    f.write_all(content).expect("write temp file");
    path
}

fn stub_start_response() -> StartResponse {
    StartResponse::from_fn(|_, _, _| Ok(Write::from_fn(|_| Ok(()))))
}

// ---------------------------------------------------------------------------
// Server side: the environ (recorded only, never fails the request)

#[track_caller]
fn assert_server_flagged(run: &Run, rule: &str) -> LintViolation {
    let v = assert_flagged(run, rule, Side::Server);
    // Server-side violations never fail the request, in either mode.
    assert!(run.resp.error.is_none(), "{:?}", run.resp.error);
    assert_eq!(run.resp.status, StatusCode::OK);
    v
}

#[test]
fn env_8_empty_server_name_and_zero_port_are_flagged() {
    let run = lint_environ(ok_app, LintMode::Fail, |env| {
        env.server_name.clear();
        env.server_port = 0;
    });
    assert_server_flagged(&run, "ENV-8");
    assert_eq!(run.report.rules(), ["ENV-8", "ENV-8"]);
}

#[test]
fn env_10_header_name_with_underscore_is_flagged() {
    let run = lint_environ(ok_app, LintMode::Fail, |env| {
        env.headers.insert(HeaderName::from_static("x_forwarded_for"), HeaderValue::from_static("10.0.0.1"));
    });
    let v = assert_server_flagged(&run, "ENV-10");
    assert!(v.message.contains("x_forwarded_for"));
}

#[test]
fn env_11_http_content_type_in_vars_is_flagged() {
    let run = lint_environ(ok_app, LintMode::Fail, |env| {
        env.vars.insert("HTTP_CONTENT_TYPE".into(), "text/plain".into());
        env.vars.insert("HTTP_CONTENT_LENGTH".into(), "3".into());
    });
    assert_server_flagged(&run, "ENV-11");
    assert_eq!(run.report.rules(), ["ENV-11", "ENV-11"]);
}

#[test]
fn uni_1_non_latin1_environ_string_is_flagged() {
    let run = lint_environ(ok_app, LintMode::Fail, |env| {
        env.vars.insert("REMOTE_USER".into(), "\u{540d}".into());
        // Latin-1 is fine.
        env.vars.insert("HTTP_X_NAME".into(), "caf\u{e9}".into());
    });
    let v = assert_server_flagged(&run, "UNI-1");
    assert!(v.message.contains("REMOTE_USER"), "{v}");
    assert_eq!(run.report.rules(), ["UNI-1"]);
}

#[test]
fn env_24_extension_variable_without_dot_is_flagged() {
    let run = lint_environ(ok_app, LintMode::Fail, |env| {
        env.vars.insert("myserver_socket".into(), "3".into());
        env.vars.insert("wsgi.fake".into(), "1".into());
        // Fine: CGI-style upper case, and a prefixed extension.
        env.vars.insert("HTTPS".into(), "on".into());
        env.vars.insert("myserver.socket".into(), "3".into());
    });
    assert_server_flagged(&run, "ENV-24");
    let messages: Vec<String> = run.report.violations().iter().map(|v| v.message.clone()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("myserver_socket")));
    assert!(messages.iter().any(|m| m.contains("wsgi.fake")));
}

#[test]
fn env_26_script_name_slash_is_flagged() {
    let run = lint_environ(ok_app, LintMode::Fail, |env| {
        env.script_name = Bytes::from_static(b"/");
        env.path_info = Bytes::new();
    });
    assert_server_flagged(&run, "ENV-26");
    assert_eq!(run.report.rules(), ["ENV-26"]);
}

#[test]
fn env_26_paths_without_leading_slash_are_flagged() {
    let run = lint_environ(ok_app, LintMode::Fail, |env| {
        env.script_name = Bytes::from_static(b"app");
        env.path_info = Bytes::from_static(b"x");
    });
    assert_server_flagged(&run, "ENV-26");
    assert_eq!(run.report.rules(), ["ENV-26", "ENV-26"]);
}

#[test]
fn env_26_both_paths_empty_is_flagged() {
    let run = lint_environ(ok_app, LintMode::Fail, |env| {
        env.path_info = Bytes::new();
    });
    let v = assert_server_flagged(&run, "ENV-26");
    assert!(v.message.contains("both empty"), "{v}");
}

#[test]
fn env_26_options_asterisk_and_mounted_apps_are_fine() {
    let (env, _sink) = environ(Method::OPTIONS, "*");
    assert_eq!(env.path_info, "*");
    let lint = Lint::new(ok_app);
    let report = lint.report().clone();
    let resp = TestClient::new(lint).call(env);
    assert_eq!(resp.status, StatusCode::OK);
    assert!(report.is_clean(), "{report:?}");

    // Mounted at /app, request for /app exactly: PATH_INFO is empty.
    let run = lint_environ(ok_app, LintMode::Fail, |env| {
        env.script_name = Bytes::from_static(b"/app");
        env.path_info = Bytes::new();
    });
    assert!(run.report.is_clean(), "{:?}", run.report);
}

#[test]
fn env_27_non_numeric_content_length_is_flagged() {
    let run = lint_environ(ok_app, LintMode::Fail, |env| {
        env.headers.insert(CONTENT_LENGTH, HeaderValue::from_static("12abc"));
    });
    let v = assert_server_flagged(&run, "ENV-27");
    assert!(v.message.contains("12abc"), "{v}");
}

#[test]
fn env_28_unknown_method_is_only_a_warning() {
    let run = lint_environ(ok_app, LintMode::Fail, |env| {
        env.method = Method::from_bytes(b"PROPFIND").expect("a valid method");
    });
    assert!(run.report.is_clean(), "{:?}", run.report);
    let warnings = run.report.warnings();
    assert_eq!(warnings.len(), 1);
    let w = &warnings[0];
    assert_eq!((w.rule, w.side), ("ENV-28", Side::Server));
    assert!(w.to_string().starts_with("ENV-28: "));
    assert!(run.errors.contains(&format!("lint warning: {w}")));
    assert!(run.resp.error.is_none());
}

#[test]
fn environ_violations_are_recorded_in_record_mode_too() {
    let run = lint_environ(ok_app, LintMode::Record, |env| env.server_port = 0);
    assert_server_flagged(&run, "ENV-8");
    assert_eq!(run.resp.body, "ok");
}

// ---------------------------------------------------------------------------
// Application side: start_response

#[test]
fn sr_2_interim_status_is_flagged() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        sr.start(StatusCode::CONTINUE, HeaderMap::new())?;
        Ok(Body::empty())
    }
    check_app_rule(app, get_root, "SR-2");
}

#[test]
fn sr_2_reason_with_control_characters_is_flagged() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        let status = Status::with_reason(StatusCode::OK, Bytes::from_static(b"OK\r\nX-Injected: 1"));
        sr.start(status, text())?;
        Ok(Body::full("ok"))
    }
    check_app_rule(app, get_root, "SR-2");
}

#[test]
fn sr_2_empty_reason_is_only_a_warning() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        sr.start(Status::parse("200 ")?, text())?;
        Ok(Body::full("ok"))
    }
    let run = lint_request(app, LintMode::Fail, get("/"));
    assert!(run.resp.error.is_none());
    assert!(run.report.is_clean(), "{:?}", run.report);
    let warnings = run.report.warnings();
    assert_eq!(warnings.len(), 1);
    assert_eq!((warnings[0].rule, warnings[0].side), ("SR-2", Side::App));
    assert!(warnings[0].to_string().starts_with("SR-2: "));
}

#[test]
fn sr_4_invalid_header_name_is_flagged() {
    fn trailing_dash(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        let mut h = text();
        h.insert(HeaderName::from_static("x-trailing-"), HeaderValue::from_static("1"));
        sr.start(StatusCode::OK, h)?;
        Ok(Body::full("ok"))
    }
    check_app_rule(trailing_dash, get_root, "SR-4");

    fn status_header(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        let mut h = text();
        h.insert(HeaderName::from_static("status"), HeaderValue::from_static("200 OK"));
        sr.start(StatusCode::OK, h)?;
        Ok(Body::full("ok"))
    }
    check_app_rule(status_header, get_root, "SR-4");
}

#[test]
fn sr_5_control_character_in_header_value_is_flagged() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        let mut h = text();
        // `http` accepts a tab; PEP 3333 and validate do not.
        h.insert("x-tabbed", HeaderValue::from_static("a\tb"));
        sr.start(StatusCode::OK, h)?;
        Ok(Body::full("ok"))
    }
    check_app_rule(app, get_root, "SR-5");
}

#[test]
fn sr_7_hop_by_hop_header_is_flagged() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        let mut h = text();
        h.insert(CONNECTION, HeaderValue::from_static("close"));
        sr.start(StatusCode::OK, h)?;
        Ok(Body::full("ok"))
    }
    check_app_rule(app, get_root, "SR-7");
    let run = lint_request(app, LintMode::Fail, get("/"));
    assert_eq!(run.report.violations()[0].to_string(), "SR-7: hop-by-hop header 'connection' (app)");
}

#[test]
fn sr_7_start_response_itself_returns_error_lint() {
    let seen = Arc::new(Mutex::new(None));
    let seen_in_app = Arc::clone(&seen);
    let app = move |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        let mut h = text();
        h.insert("proxy-authenticate", HeaderValue::from_static("Basic"));
        let err = match sr.start(StatusCode::OK, h) {
            Ok(_) => return Ok(Body::full("accepted?")),
            Err(e) => e,
        };
        let rule = match &err {
            Error::Lint(v) => Some(v.rule),
            _ => None,
        };
        *seen_in_app.lock().expect("lock") = rule;
        Err(err.into())
    };
    let run = lint_request(app, LintMode::Fail, get("/"));
    assert_eq!(*seen.lock().expect("lock"), Some("SR-7"));
    assert_failed_with(&run, "SR-7");
}

#[test]
fn v_15_missing_content_type_is_flagged() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        Ok(Body::full("untyped"))
    }
    check_app_rule(app, get_root, "V-15");
}

#[test]
fn v_15_content_type_on_204_is_flagged() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        sr.start(StatusCode::NO_CONTENT, text())?;
        Ok(Body::empty())
    }
    check_app_rule(app, get_root, "V-15");
}

#[test]
fn sr_15_second_start_response_without_exc_info_is_flagged() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        sr.start(StatusCode::OK, text())?;
        sr.start(StatusCode::NOT_FOUND, text())?;
        Ok(Body::full("twice"))
    }
    check_app_rule(app, get_root, "SR-15");
}

#[test]
fn sr_15_is_flagged_even_when_the_first_call_failed() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        let mut h = text();
        h.insert(CONNECTION, HeaderValue::from_static("close"));
        let _first_failed = sr.start(StatusCode::OK, h);
        sr.start(StatusCode::OK, text())?;
        Ok(Body::full("retry"))
    }
    let run = lint_request(app, LintMode::Record, get("/"));
    assert_eq!(run.report.rules(), ["SR-7", "SR-15"]);
}

#[test]
fn sr_14_swallowed_headers_sent_is_flagged() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        let write = sr.start(StatusCode::OK, text())?;
        write.write("partial")?; // the head is sent now
                                 // exc_info after the head: start_response returns HeadersSent,
                                 // which the app must propagate. It swallows it.
        let _swallowed = sr.start_with_exc_info(StatusCode::INTERNAL_SERVER_ERROR, text(), "boom".into());
        Ok(Body::empty())
    }
    check_app_rule(app, get_root, "SR-14");
}

#[test]
fn sr_14_swallowed_in_the_body_is_flagged() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        sr.start(StatusCode::OK, text())?;
        let mut step = 0;
        Ok(Body::from_iter(std::iter::from_fn(move || {
            step += 1;
            match step {
                1 => Some(Ok::<_, AppError>(Bytes::from_static(b"first"))),
                2 => {
                    let _swallowed = sr.start_with_exc_info(StatusCode::INTERNAL_SERVER_ERROR, text(), "boom".into());
                    Some(Ok(Bytes::from_static(b"second")))
                }
                _ => None,
            }
        })))
    }
    check_app_rule(app, get_root, "SR-14");
}

#[test]
fn sr_14_propagated_headers_sent_is_fine() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        let write = sr.start(StatusCode::OK, text())?;
        write.write("partial")?;
        sr.start_with_exc_info(StatusCode::INTERNAL_SERVER_ERROR, text(), "boom".into())?;
        Ok(Body::empty())
    }
    let run = lint_request(app, LintMode::Fail, get("/"));
    assert!(run.report.is_clean(), "{:?}", run.report);
    assert!(matches!(run.resp.error, Some(Error::App(_))));
    assert!(run.resp.aborted);
}

// ---------------------------------------------------------------------------
// Application side: body and write()

#[test]
fn sr_17_body_before_start_response_is_flagged() {
    fn app(_env: Environ, _sr: StartResponse) -> Result<Body, AppError> {
        Ok(Body::full("too early"))
    }
    check_app_rule(app, get_root, "SR-17");
}

#[test]
fn sr_17_start_response_never_called_is_flagged() {
    fn app(_env: Environ, _sr: StartResponse) -> Result<Body, AppError> {
        Ok(Body::empty())
    }
    check_app_rule(app, get_root, "SR-17");
    let run = lint_request(app, LintMode::Fail, get("/"));
    assert!(run.report.violations()[0].message.contains("never called"));
}

#[test]
fn sr_17_file_body_without_start_response_is_flagged() {
    let path = Arc::new(temp_path("sr17", b"file body"));
    let app = move |_env: Environ, _sr: StartResponse| -> Result<Body, AppError> {
        Ok(Body::file(FileBody::new(std::fs::File::open(&*path)?)?))
    };
    check_app_rule(app, get_root, "SR-17");
}

#[test]
fn wr_5_write_from_inside_the_body_is_flagged() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        let write = sr.start(StatusCode::OK, text())?;
        Ok(Body::from_iter(std::iter::once_with(move || -> Result<Bytes, AppError> {
            write.write("late")?;
            Ok(Bytes::from_static(b"body"))
        })))
    }
    check_app_rule(app, get_root, "WR-5");
}

#[test]
fn wr_5_write_itself_returns_error_lint() {
    let seen = Arc::new(Mutex::new(None));
    let seen_in_app = Arc::clone(&seen);
    let app = move |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        let write = sr.start(StatusCode::OK, text())?;
        let seen = Arc::clone(&seen_in_app);
        Ok(Body::from_iter(std::iter::once_with(move || -> Result<Bytes, AppError> {
            if let Err(Error::Lint(v)) = write.write("late") {
                *seen.lock().expect("lock") = Some(v.rule);
                return Err(Error::Lint(v).into());
            }
            Ok(Bytes::new())
        })))
    };
    let run = lint_request(app, LintMode::Fail, get("/"));
    assert_eq!(*seen.lock().expect("lock"), Some("WR-5"));
    assert_failed_with(&run, "WR-5");
}

#[test]
fn body_6_body_bytes_for_head_are_recorded_not_failed() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        sr.start(StatusCode::OK, text_with_length(5))?;
        Ok(Body::full("hello"))
    }
    for mode in [LintMode::Fail, LintMode::Record] {
        let run = lint_request(app, mode, head_root());
        let v = assert_flagged(&run, "BODY-6", Side::App);
        assert!(v.message.contains("HEAD"), "{v}");
        assert_eq!(run.report.rules(), ["BODY-6"]);
        // Record only: the response is what the app would get without the lint.
        assert!(run.resp.error.is_none());
        let plain = TestClient::new(app).request(head_root());
        assert_same_response(&run.resp, &plain);
    }
}

#[test]
fn body_6_body_bytes_for_204_are_recorded_not_failed() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        let write = sr.start(StatusCode::NO_CONTENT, HeaderMap::new())?;
        write.write("x")?;
        Ok(Body::chunks(["y", "z"]))
    }
    for mode in [LintMode::Fail, LintMode::Record] {
        let run = lint_request(app, mode, get_root());
        let v = assert_flagged(&run, "BODY-6", Side::App);
        assert!(v.message.contains("204"), "{v}");
        // Reported once per request.
        assert_eq!(run.report.rules(), ["BODY-6"]);
        assert!(run.resp.error.is_none());
        assert_eq!(run.resp.status, StatusCode::NO_CONTENT);
    }
}

#[test]
fn cl_1_body_longer_than_content_length_is_flagged() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        sr.start(StatusCode::OK, text_with_length(3))?;
        Ok(Body::chunks(["ab", "cd"]))
    }
    check_app_rule(app, get_root, "CL-1");
}

#[test]
fn cl_1_write_past_content_length_is_flagged() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        let write = sr.start(StatusCode::OK, text_with_length(3))?;
        write.write("abcd")?;
        Ok(Body::empty())
    }
    check_app_rule(app, get_root, "CL-1");
}

#[test]
fn cl_1_invalid_content_length_is_flagged() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        let mut h = text();
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("12abc"));
        sr.start(StatusCode::OK, h)?;
        Ok(Body::full("ok"))
    }
    check_app_rule(app, get_root, "CL-1");
}

#[test]
fn cl_1_file_longer_than_content_length_is_flagged() {
    let path = Arc::new(temp_path("cl1", b"12345"));
    let app = move |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        sr.start(StatusCode::OK, text_with_length(3))?;
        Ok(Body::file(FileBody::new(std::fs::File::open(&*path)?)?))
    };
    check_app_rule(app, get_root, "CL-1");
}

#[test]
fn cl_2_body_shorter_than_content_length_is_flagged() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        sr.start(StatusCode::OK, text_with_length(10))?;
        Ok(Body::full("abc"))
    }
    check_app_rule(app, get_root, "CL-2");
}

#[test]
fn cl_2_file_shorter_than_content_length_is_flagged() {
    let path = Arc::new(temp_path("cl2", b"abc"));
    let app = move |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        sr.start(StatusCode::OK, text_with_length(10))?;
        Ok(Body::file(FileBody::new(std::fs::File::open(&*path)?)?))
    };
    check_app_rule(app, get_root, "CL-2");
}

#[test]
fn content_length_is_not_checked_for_head() {
    fn app(env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        sr.start(StatusCode::OK, text_with_length(100))?;
        Ok(if env.method == Method::HEAD { Body::empty() } else { Body::full(vec![b'x'; 100]) })
    }
    let run = lint_request(app, LintMode::Fail, head_root());
    assert!(run.report.is_clean(), "{:?}", run.report);
    assert!(run.resp.error.is_none());
}

// ---------------------------------------------------------------------------
// Fail mode sticks; BODY-3

#[test]
fn fail_mode_violation_swallowed_by_the_app_still_fails_the_request() {
    fn at_start(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        let mut h = text();
        h.insert(CONNECTION, HeaderValue::from_static("close"));
        let _ignored = sr.start(StatusCode::OK, h);
        Ok(Body::full("carried on"))
    }
    let run = lint_request(at_start, LintMode::Fail, get("/"));
    assert_failed_with(&run, "SR-7");
    assert_eq!(run.report.rules(), ["SR-7"]);

    fn in_body(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        let write = sr.start(StatusCode::OK, text())?;
        Ok(Body::from_iter(std::iter::once_with(move || -> Result<Bytes, AppError> {
            let _ignored = write.write("late");
            Ok(Bytes::from_static(b"carried on"))
        })))
    }
    let run = lint_request(in_body, LintMode::Fail, get("/"));
    assert_failed_with(&run, "WR-5");
    assert_eq!(run.report.rules(), ["WR-5"]);
    assert_eq!(run.report.open_bodies(), 0);
}

#[test]
fn body_3_bodies_are_closed_on_every_path_through_run() {
    struct Disconnected;
    impl ResponseSink for Disconnected {
        fn send_head(&mut self, _head: ResponseHead) -> std::io::Result<()> {
            Ok(())
        }
        fn send_data(&mut self, _data: Bytes) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn finish(&mut self) -> std::io::Result<()> {
            Ok(())
        }
        fn abort(&mut self, _error: &Error) {}
    }
    fn streaming(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        sr.start(StatusCode::OK, text())?;
        Ok(Body::from_iter((0..3).map(|i| Ok::<_, AppError>(Bytes::from(format!("chunk {i}"))))))
    }
    fn failing(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        sr.start(StatusCode::OK, text())?;
        Ok(Body::from_iter([Ok(Bytes::from_static(b"one")), Err::<Bytes, AppError>("iteration failed".into())]))
    }

    let lint = Lint::new(streaming);
    let report = lint.report().clone();
    let lint = Arc::new(lint);
    // Normal end, through TestClient.
    let resp = TestClient::from_shared(lint.clone()).get("/");
    assert_eq!(resp.body, "chunk 0chunk 1chunk 2");
    assert_eq!(report.open_bodies(), 0);
    // Client gone, through run::run directly.
    let (env, _sink) = environ(Method::GET, "/");
    let outcome = run(&*lint, env, Disconnected);
    assert!(matches!(outcome.error, Some(Error::Disconnected(_))));
    assert_eq!(report.open_bodies(), 0);
    assert!(report.is_clean(), "{report:?}");

    // Error during iteration.
    let lint = Lint::new(failing);
    let report = lint.report().clone();
    let resp = TestClient::new(lint).get("/");
    assert!(resp.aborted);
    assert_eq!(report.open_bodies(), 0);
}

#[test]
fn body_3_a_leaked_body_stays_open() {
    let lint = Lint::new(ok_app);
    let report = lint.report().clone();

    let (env, _sink) = environ(Method::GET, "/");
    let body = lint.call(env, stub_start_response()).expect("a body");
    assert_eq!(report.open_bodies(), 1);
    drop(body);
    assert_eq!(report.open_bodies(), 0);

    let (env, _sink) = environ(Method::GET, "/");
    let body = lint.call(env, stub_start_response()).expect("a body");
    std::mem::forget(body); // never closed
    assert_eq!(report.open_bodies(), 1);
}

#[test]
fn wrapped_body_keeps_len_hint_and_chunk_boundaries() {
    fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        sr.start(StatusCode::OK, text())?;
        Ok(Body::chunks(["ab", "", "cde"]))
    }
    let lint = Lint::new(app);
    let (env, _sink) = environ(Method::GET, "/");
    let mut body = lint.call(env, stub_start_response()).expect("a body");
    assert!(!body.is_file());
    assert_eq!(body.len_hint(), Some(5));
    let chunks: Vec<Bytes> = body.by_ref().map(|c| c.expect("a chunk")).collect();
    assert_eq!(chunks, ["ab", "", "cde"]); // one out per one in (STRM-2)
    assert_eq!(body.len_hint(), Some(0));
    drop(body);
    assert!(lint.report().is_clean(), "{:?}", lint.report());
    assert_eq!(lint.report().open_bodies(), 0);
}

#[test]
fn file_body_stays_a_file() {
    let app = |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        sr.start(StatusCode::OK, text_with_length(9))?;
        Ok(Body::file(FileBody::new(temp_file("stays", b"file body"))?))
    };
    let lint = Lint::new(app);
    let (env, _sink) = environ(Method::GET, "/");
    let body = lint.call(env, stub_start_response()).expect("a body");
    assert!(body.is_file());
    assert_eq!(body.len_hint(), Some(9));
    assert_eq!(lint.report().open_bodies(), 1);
    drop(body);
    assert_eq!(lint.report().open_bodies(), 0);
    assert!(lint.report().is_clean(), "{:?}", lint.report());

    let client = TestClient::new(Lint::new(app));
    let resp = client.get("/");
    assert_eq!(resp.body, "file body");
    assert!(resp.error.is_none());
}

// ---------------------------------------------------------------------------
// A conforming application

/// Every legal way to answer: lazy start in the first iteration, write(),
/// streaming, HEAD, exc_info before the head, 204/304, files.
#[derive(Clone)]
struct Conforming {
    file: Arc<PathBuf>,
}

impl Application for Conforming {
    fn call(&self, env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        if env.method == Method::HEAD {
            sr.start(StatusCode::OK, text_with_length(5))?;
            return Ok(Body::empty());
        }
        match &env.path_info[..] {
            b"/lazy" => {
                let mut step = 0;
                Ok(Body::from_iter(std::iter::from_fn(move || {
                    step += 1;
                    match step {
                        // start_response during the first iteration (SR-17)
                        1 => Some(sr.start(StatusCode::OK, text()).map(|_| Bytes::new()).map_err(AppError::from)),
                        2 => Some(Ok(Bytes::from_static(b"streamed "))),
                        3 => Some(Ok(Bytes::new())),
                        4 => Some(Ok(Bytes::from_static(b"body"))),
                        _ => None,
                    }
                })))
            }
            b"/write" => {
                let write = sr.start(StatusCode::OK, text())?;
                write.write("written, ")?;
                Ok(Body::chunks(["then ", "yielded"]))
            }
            b"/error" => {
                sr.start(StatusCode::OK, text())?;
                // Something failed before any byte went out: change the head.
                sr.start_with_exc_info(StatusCode::INTERNAL_SERVER_ERROR, text(), "database down".into())?;
                Ok(Body::full("sorry"))
            }
            b"/length" => {
                let write = sr.start(StatusCode::OK, text_with_length(6))?;
                write.write("ab")?;
                Ok(Body::chunks(["cd", "ef"]))
            }
            b"/no-content" => {
                sr.start(StatusCode::NO_CONTENT, HeaderMap::new())?;
                Ok(Body::empty())
            }
            b"/not-modified" => {
                // No Content-Type on 304 (V-15); Content-Length describes the 200.
                let mut h = HeaderMap::new();
                h.insert(CONTENT_LENGTH, HeaderValue::from(5));
                sr.start(StatusCode::NOT_MODIFIED, h)?;
                Ok(Body::empty())
            }
            b"/file" => {
                sr.start(StatusCode::OK, text_with_length(9))?;
                let file = std::fs::File::open(&*self.file)?;
                Ok(Body::file(FileBody::new(file)?))
            }
            _ => {
                sr.start(Status::parse("200 Froody")?, text())?;
                Ok(Body::full("hello"))
            }
        }
    }
}

#[test]
fn conforming_app_passes_cleanly_in_both_modes() {
    let app = Conforming { file: Arc::new(temp_path("conforming", b"file body")) };
    let requests: [fn() -> http::Request<Bytes>; 9] = [
        || get("/"),
        || get("/lazy"),
        || get("/write"),
        || get("/error"),
        || get("/length"),
        || get("/no-content"),
        || get("/not-modified"),
        || get("/file"),
        || head("/"),
    ];
    for mode in [LintMode::Fail, LintMode::Record] {
        let lint = Lint::new(app.clone()).with_mode(mode);
        let report = lint.report().clone();
        let client = TestClient::new(lint);
        let plain = TestClient::new(app.clone());
        for req in requests {
            let uri = req().uri().clone();
            let resp = client.request(req());
            assert!(resp.error.is_none(), "{uri}: {:?}", resp.error);
            assert_same_response(&resp, &plain.request(req()));
            assert!(report.is_clean(), "{mode:?} {uri}: {report:?}");
            assert!(report.warnings().is_empty(), "{report:?}");
            assert_eq!(report.open_bodies(), 0);
        }
        assert!(client.errors().iter().all(|l| !l.starts_with("lint")));
    }
    let resp = TestClient::new(Lint::new(app)).get("/lazy");
    assert_eq!(resp.body, "streamed body");
    assert_eq!(resp.chunks, ["streamed ", "body"]);
}

// ---------------------------------------------------------------------------
// Layer, report

#[test]
fn layer_wraps_apps_that_share_one_report() {
    fn untyped(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        Ok(Body::full("hi"))
    }
    let layer = LintLayer::new().with_mode(LintMode::Record);
    assert_eq!(layer.mode(), LintMode::Record);
    let a = layer.layer(untyped);
    let b = layer.clone().layer(ok_app);
    assert_eq!(a.mode(), LintMode::Record);
    assert_eq!(TestClient::new(a).get("/").body, "hi");
    assert_eq!(TestClient::new(b).get("/").body, "ok");
    assert_eq!(layer.report().rules(), ["V-15"]);

    layer.report().clear();
    assert!(layer.report().is_clean());

    // A report can be shared across layers, too.
    let shared = LintReport::new();
    let lint = LintLayer::new().with_report(shared.clone()).layer(untyped);
    assert_eq!(lint.mode(), LintMode::Fail);
    let resp = TestClient::new(lint).get("/");
    assert_eq!(resp.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(shared.rules(), ["V-15"]);
}

#[test]
fn lint_gives_back_the_inner_app() {
    let mut lint = Lint::new(Conforming { file: Arc::new(PathBuf::from("unused")) }).with_report(LintReport::new());
    assert_eq!(lint.get_ref().file.to_str(), Some("unused"));
    lint.get_mut().file = Arc::new(PathBuf::from("changed"));
    assert_eq!(lint.into_inner().file.to_str(), Some("changed"));
}
