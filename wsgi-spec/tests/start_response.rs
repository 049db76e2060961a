//! `start_response` and its arguments (SPEC.md SR-*, CL-4, UNI-1, HTTP-2):
//! status parsing, header checks, repeated calls and `exc_info`, seen by an
//! application through the test client.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{HeaderName, CONTENT_TYPE, SET_COOKIE};
use http::{HeaderMap, HeaderValue, StatusCode};
use wsgi_spec::testing::TestClient;
use wsgi_spec::{
    check_headers, is_hop_by_hop, AppError, Body, Environ, Error, StartResponse, Status, Write, HOP_BY_HOP,
};

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

/// The error an application got back from a call, kept for the test.
type Seen = Arc<Mutex<Vec<String>>>;

fn describe(e: &Error) -> String {
    format!("{:?}", e.rule())
}

#[test]
fn sr_2_valid_status_lines() {
    let s = Status::parse("200 OK").expect("valid");
    assert_eq!((s.code(), s.custom_reason()), (StatusCode::OK, None));
    let s = Status::parse("404 Not Found").expect("valid");
    assert_eq!(s.code(), StatusCode::NOT_FOUND);
    assert_eq!(s.reason(), b"Not Found");
    let s = Status::parse("599 Network Timeout").expect("valid");
    assert_eq!(s.code().as_u16(), 599);
    assert_eq!(s.to_string(), "599 Network Timeout");
    let s = Status::parse("200 A\tB").expect("a tab inside the reason is allowed");
    assert_eq!(s.reason(), b"A\tB");
    let s = Status::parse("204 ").expect("an empty reason is allowed");
    assert_eq!(s.reason(), b"");
    assert_eq!(Status::try_from("301 Moved Permanently").expect("valid").code().as_u16(), 301);
}

#[test]
fn sr_2_custom_reason_preserved() {
    let s = Status::parse("200 Froody").expect("valid");
    assert_eq!(s.code(), StatusCode::OK);
    assert_eq!(s.reason(), b"Froody");
    assert_eq!(s.custom_reason(), Some(&Bytes::from_static(b"Froody")));
    assert_eq!(s.to_string(), "200 Froody");
    let client = TestClient::new(|_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        sr.start(Status::parse("200 Froody")?, HeaderMap::new())?;
        Ok(Body::empty())
    });
    assert_eq!(client.get("/").reason, "Froody", "it reaches the server");
}

#[test]
fn sr_2_canonical_reason_is_not_stored() {
    assert_eq!(Status::parse("200 OK").expect("valid"), Status::OK);
    assert_eq!(Status::from(StatusCode::IM_A_TEAPOT).reason(), b"I'm a teapot");
    let s = Status::with_reason(StatusCode::OK, Bytes::from_static(b"OK"));
    assert_eq!(s.custom_reason(), None);
}

#[test]
fn sr_2_bad_status_lines_rejected() {
    let bad: [&[u8]; 17] = [
        b"",
        b"200",
        b"200OK",
        b"20 OK",
        b"2000 OK",
        b"099 X",
        b"000 Zero",
        b"abc OK",
        b"2x0 OK",
        b" 200 OK",
        b"200  OK",
        b"200\tOK",
        b"200 OK ",
        b"200 OK\r\n",
        b"200 O\nK",
        b"200 O\0K",
        b"200 O\x7fK",
    ];
    for raw in bad {
        match Status::parse(raw) {
            Err(Error::InvalidStatus(_)) => {}
            other => panic!("{:?} gave {other:?}", String::from_utf8_lossy(raw)),
        }
    }
}

#[test]
fn sr_3_header_order_and_repeats_are_kept() {
    let client = TestClient::new(|_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, HeaderValue::from_static("a=1"));
        h.append(SET_COOKIE, HeaderValue::from_static("b=2"));
        h.append("x-custom", HeaderValue::from_static("v"));
        sr.start(StatusCode::OK, h)?;
        Ok(Body::full("x"))
    });
    let resp = client.get("/");
    let cookies: Vec<_> = resp.headers.get_all(SET_COOKIE).iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(resp.headers["x-custom"], "v");
}

#[test]
fn sr_4_status_header_name_rejected() {
    let h = headers(&[("status", "200")]);
    assert!(matches!(check_headers(&h), Err(Error::InvalidHeader(_))));
}

#[test]
fn sr_4_invalid_names_cannot_be_expressed() {
    for bad in [&b"X Foo"[..], b"X:Foo", b"X-Foo:", b"", b"X\nFoo"] {
        assert!(HeaderName::from_bytes(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn sr_5_control_characters_in_values_cannot_be_expressed() {
    for bad in [&b"a\r\nb"[..], b"a\nb", b"a\rb", b"a\0b", b"a\x7fb", b"a\x1bb"] {
        assert!(HeaderValue::from_bytes(bad).is_err(), "{bad:?}");
    }
    let fine = headers(&[("x-a", "tab\tinside")]);
    assert!(check_headers(&fine).is_ok());
    let mut latin1 = HeaderMap::new();
    latin1.insert("x-b", HeaderValue::from_bytes(b"caf\xe9").expect("obs-text"));
    assert!(check_headers(&latin1).is_ok(), "latin-1 bytes are not control characters");
}

#[test]
fn sr_7_every_hop_by_hop_name_rejected() {
    let mut names: Vec<String> = HOP_BY_HOP.iter().map(|s| (*s).to_owned()).collect();
    names.extend(["proxy-authenticate", "proxy-authorization", "proxy-connection", "proxy-x"].map(String::from));
    for name in &names {
        let mut h = HeaderMap::new();
        h.insert(HeaderName::from_bytes(name.as_bytes()).expect("valid name"), HeaderValue::from_static("x"));
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        match check_headers(&h) {
            Err(Error::HopByHopHeader(n)) => assert_eq!(&n, name),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(HOP_BY_HOP.len(), 7);
    for h in ["connection", "keep-alive", "te", "trailer", "trailers", "transfer-encoding", "upgrade"] {
        assert!(HOP_BY_HOP.contains(&h), "{h} missing from HOP_BY_HOP");
    }
}

#[test]
fn sr_7_hop_by_hop_is_case_insensitive() {
    for name in ["CONNECTION", "Keep-Alive", "Transfer-Encoding", "PROXY-AUTHENTICATE", "Proxy-Foo", "TE"] {
        assert!(is_hop_by_hop(name), "{name}");
    }
    for name in ["proxy", "proxied-by", "x-connection", "content-type", "tea", "upgrade-insecure-requests", "é"] {
        assert!(!is_hop_by_hop(name), "{name}");
    }
}

#[test]
fn sr_7_hop_by_hop_from_the_app_is_an_error_and_a_500() {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let client = TestClient::new(move |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        let err = sr.start(StatusCode::OK, headers(&[("connection", "close")])).expect_err("hop-by-hop");
        log.lock().expect("lock").push(describe(&err));
        Err(err.into())
    });
    let resp = client.get("/");
    assert_eq!(resp.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(seen.lock().expect("lock").as_slice(), ["Some(\"SR-7\")"]);
}

#[test]
fn sr_8_errors_are_raised_inside_start_response() {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let client = TestClient::new(move |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        for bad in ["abc", "-1", "", "1 2"] {
            let mut h = HeaderMap::new();
            h.insert("content-length", HeaderValue::from_static(bad));
            let err = sr.start_with_exc_info(StatusCode::OK, h, "retry".into()).expect_err("bad Content-Length");
            log.lock().expect("lock").push(describe(&err));
        }
        let mut two = HeaderMap::new();
        two.append("content-length", HeaderValue::from_static("1"));
        two.append("content-length", HeaderValue::from_static("2"));
        let err = sr.start_with_exc_info(StatusCode::OK, two, "retry".into());
        log.lock().expect("lock").push(describe(&err.expect_err("conflict")));
        let mut same = HeaderMap::new();
        same.append("content-length", HeaderValue::from_static("1"));
        same.append("content-length", HeaderValue::from_static("1"));
        sr.start_with_exc_info(StatusCode::OK, same, "retry".into())?;
        Ok(Body::full("x"))
    });
    let resp = client.get("/");
    assert_eq!(seen.lock().expect("lock").as_slice(), ["Some(\"CL-1\")"; 5]);
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.body, "x");
}

#[test]
fn sr_10_start_response_returns_write() {
    let client = TestClient::new(|_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        let write: Write = sr.start(StatusCode::OK, HeaderMap::new())?;
        write.write("via write")?;
        Ok(Body::empty())
    });
    assert_eq!(client.get("/").body, "via write");
}

#[test]
fn sr_12_exc_info_before_output_replaces_the_head() {
    let client = TestClient::new(|_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        sr.start(StatusCode::OK, headers(&[("x-first", "1")]))?;
        sr.start_with_exc_info(StatusCode::SERVICE_UNAVAILABLE, headers(&[("x-second", "2")]), "db down".into())?;
        Ok(Body::full("sorry"))
    });
    let resp = client.get("/");
    assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers.get("x-first").is_none(), "the old headers are gone");
    assert_eq!(resp.headers["x-second"], "2");
    assert_eq!(resp.body, "sorry");
    assert!(resp.error.is_none());
}

#[test]
fn sr_12_replaced_twice_and_with_three_argument_form() {
    let client = TestClient::new(|_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        sr.call(Status::OK, HeaderMap::new(), None)?;
        sr.call(Status::from(StatusCode::BAD_GATEWAY), HeaderMap::new(), Some("one".into()))?;
        sr.call(Status::parse("503 Later")?, HeaderMap::new(), Some("two".into()))?;
        Ok(Body::empty())
    });
    let resp = client.get("/");
    assert_eq!((resp.status.as_u16(), &resp.reason[..]), (503, &b"Later"[..]));
}

#[derive(Debug)]
struct Original(u32);

impl std::fmt::Display for Original {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "original #{}", self.0)
    }
}

impl std::error::Error for Original {}

#[test]
fn sr_13_exc_info_after_head_returns_headers_sent() {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let client = TestClient::new(move |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        let write = sr.start(StatusCode::OK, HeaderMap::new())?;
        write.write("partial")?;
        let err = sr
            .start_with_exc_info(StatusCode::INTERNAL_SERVER_ERROR, HeaderMap::new(), Box::new(Original(7)))
            .expect_err("the head is out");
        let Error::HeadersSent(orig) = &err else {
            panic!("expected HeadersSent, got {err:?}");
        };
        let orig = orig.downcast_ref::<Original>().expect("the original error, unchanged");
        log.lock().expect("lock").push(orig.to_string());
        Err(err.into())
    });
    let resp = client.get("/");
    assert_eq!(seen.lock().expect("lock").as_slice(), ["original #7"]);
    assert_eq!(resp.status, StatusCode::OK, "the head already sent stays");
    assert_eq!(resp.body, "partial");
    assert!(resp.aborted);
}

#[test]
fn sr_15_second_call_without_exc_info_is_already_started() {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let client = TestClient::new(move |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        sr.start(StatusCode::CREATED, HeaderMap::new())?;
        let err = sr.start(StatusCode::OK, HeaderMap::new()).expect_err("twice");
        assert!(matches!(err, Error::AlreadyStarted));
        log.lock().expect("lock").push(describe(&err));
        Ok(Body::full("x"))
    });
    let resp = client.get("/");
    assert_eq!(seen.lock().expect("lock").as_slice(), ["Some(\"SR-15\")"]);
    assert_eq!(resp.status, StatusCode::CREATED, "the first head stands");
}

#[test]
fn sr_15_even_when_the_first_call_failed() {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let client = TestClient::new(move |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        let first = sr.start(StatusCode::OK, headers(&[("upgrade", "websocket")]));
        log.lock().expect("lock").push(describe(&first.expect_err("hop-by-hop")));
        let second = sr.start(StatusCode::OK, HeaderMap::new());
        log.lock().expect("lock").push(describe(&second.expect_err("no retry without exc_info")));
        sr.start_with_exc_info(StatusCode::BAD_REQUEST, HeaderMap::new(), "retry".into())?;
        Ok(Body::full("fixed"))
    });
    let resp = client.get("/");
    assert_eq!(seen.lock().expect("lock").as_slice(), ["Some(\"SR-7\")", "Some(\"SR-15\")"]);
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert_eq!(resp.body, "fixed");
}

#[test]
fn sr_18_latin1_reason_phrase() {
    let s = Status::parse(b"200 Caf\xe9").expect("latin-1 reason");
    assert_eq!(s.reason(), b"Caf\xe9");
    assert_eq!(s.to_string(), "200 Café", "each byte is one latin-1 character");
}

#[test]
fn cl_4_transfer_encoding_from_the_app_rejected() {
    for value in ["chunked", "gzip"] {
        let mut h = HeaderMap::new();
        h.insert("transfer-encoding", HeaderValue::from_static(value));
        assert!(matches!(check_headers(&h), Err(Error::HopByHopHeader(_))));
    }
    let h = headers(&[("content-encoding", "gzip")]);
    assert!(check_headers(&h).is_ok(), "Content-Encoding is the app's to use");
}

#[test]
fn uni_1_latin1_header_values_pass_through() {
    let client = TestClient::new(|_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        let mut h = HeaderMap::new();
        h.insert("x-name", HeaderValue::from_bytes(b"Jos\xe9 \xff")?);
        sr.start(StatusCode::OK, h)?;
        Ok(Body::empty())
    });
    assert_eq!(client.get("/").headers["x-name"].as_bytes(), b"Jos\xe9 \xff");
}

#[test]
fn http_2_app_headers_reach_the_server_unchanged() {
    let client = TestClient::new(|_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        let h = headers(&[
            ("content-type", "text/html; charset=latin-1"),
            ("cache-control", "no-store"),
            ("x-a", "1"),
            ("x-a", "2"),
            ("server", "my-app"),
        ]);
        sr.start(Status::parse("200 Fine")?, h)?;
        Ok(Body::full("body"))
    });
    let resp = client.get("/");
    let mut expected = headers(&[
        ("content-type", "text/html; charset=latin-1"),
        ("cache-control", "no-store"),
        ("x-a", "1"),
        ("x-a", "2"),
        ("server", "my-app"),
    ]);
    expected.insert("content-length", HeaderValue::from_static("4"));
    assert_eq!(resp.headers, expected, "only Content-Length was added");
    assert_eq!(resp.reason, "Fine");
}

#[test]
fn sr_1_start_response_from_fn_sees_every_argument() {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let sr = StartResponse::from_fn(move |status, headers, exc| {
        log.lock().expect("lock").push(format!(
            "{status} {} {}",
            headers.len(),
            exc.map_or("-".to_owned(), |e| e.to_string())
        ));
        Ok(Write::from_fn(|_| Ok(())))
    });
    sr.start(StatusCode::OK, headers(&[("a", "1")])).expect("ok");
    sr.start_with_exc_info(StatusCode::BAD_GATEWAY, HeaderMap::new(), "boom".into()).expect("ok");
    assert_eq!(seen.lock().expect("lock").as_slice(), ["200 OK 1 -", "502 Bad Gateway 0 boom"]);
}

#[test]
fn error_rules_name_spec_rules() {
    let cases: Vec<(Error, Option<&str>)> = vec![
        (Error::InvalidStatus("x".into()), Some("SR-2")),
        (Error::HopByHopHeader("te".into()), Some("SR-7")),
        (Error::InvalidHeader("status".into()), Some("SR-4")),
        (Error::AlreadyStarted, Some("SR-15")),
        (Error::HeadersSent("e".into()), Some("SR-13")),
        (Error::WriteBeforeStart, Some("WR-6")),
        (Error::WriteAfterReturn, Some("WR-5")),
        (Error::BodyBeforeStart, Some("SR-17")),
        (Error::NeverStarted, Some("SR-17")),
        (Error::InvalidContentLength("x".into()), Some("CL-1")),
        (Error::ShortBody { expected: 2, sent: 1 }, Some("CL-2")),
        (Error::App("e".into()), None),
        (Error::Panic("p".into()), None),
    ];
    for (err, rule) in cases {
        assert_eq!(err.rule(), rule, "{err:?}");
        if let Some(rule) = rule {
            assert!(err.to_string().starts_with(rule), "{err}: the message starts with its rule");
        }
    }
}
