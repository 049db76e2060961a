//! The sans-I/O response driver, used directly (SPEC.md SR-9, SR-12..17,
//! CL-*, BODY-6, EXC-2, FW-6): head timing, exc_info, Content-Length,
//! bodiless responses and framing.

mod common;

use bytes::Bytes;
use common::TempFile;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};
use wsgi_spec::driver::{Framing, ResponseDriver, ResponseHead};
use wsgi_spec::{Error, FileBody, Status};

type R = Result<(), Error>;

fn driver() -> ResponseDriver {
    ResponseDriver::new(&Method::GET, Version::HTTP_11)
}

fn with_length(n: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_LENGTH, HeaderValue::from_static(n));
    h
}

fn status(code: u16) -> Status {
    Status::from(StatusCode::from_u16(code).expect("valid code"))
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn head_of(emit: wsgi_spec::driver::Emit) -> ResponseHead {
    emit.head.expect("this chunk commits the head")
}

#[test]
fn sr_9_head_held_until_first_nonempty_chunk() -> R {
    let mut d = driver();
    d.start_response(Status::OK, HeaderMap::new(), None)?;
    assert!(d.is_started() && !d.is_committed());
    for _ in 0..3 {
        let emit = d.data(Bytes::new(), None)?;
        assert!(emit.head.is_none() && emit.data.is_empty(), "empty chunks commit nothing");
    }
    assert!(!d.is_committed());
    let emit = d.data(b("a"), None)?;
    assert_eq!(emit.head.expect("committed now").status, Status::OK);
    assert_eq!(emit.data, "a");
    assert!(d.is_committed());
    let emit = d.data(b("b"), None)?;
    assert!(emit.head.is_none(), "the head is handed out once");
    assert_eq!(emit.data, "b");
    Ok(())
}

#[test]
fn sr_9_head_sent_at_the_end_of_an_empty_body() -> R {
    let mut d = driver();
    d.start_response(Status::OK, HeaderMap::new(), None)?;
    d.data(Bytes::new(), None)?;
    let head = d.finish()?.expect("the end commits the head");
    assert_eq!(head.framing, Framing::Length(0));
    assert_eq!(head.headers[CONTENT_LENGTH], "0");
    Ok(())
}

#[test]
fn sr_9_empty_chunks_then_error_gives_a_clean_500() -> R {
    let mut d = driver();
    d.start_response(Status::OK, with_length("5"), None)?;
    d.data(Bytes::new(), None)?;
    d.data(Bytes::new(), None)?;
    let (head, body) = d.error_response().expect("nothing was sent: a 500 is possible");
    assert_eq!(head.status.code(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, "Internal Server Error\n");
    assert_eq!(head.framing, Framing::Length(body.len() as u64));
    assert_eq!(head.headers[CONTENT_LENGTH], body.len().to_string().as_str());
    assert!(head.headers["content-type"].to_str().is_ok_and(|v| v.starts_with("text/plain")));
    assert!(d.error_response().is_none(), "only one head ever");
    Ok(())
}

#[test]
fn sr_12_exc_info_before_commit_replaces_the_head() -> R {
    let mut d = driver();
    let mut first = HeaderMap::new();
    first.insert("x-a", HeaderValue::from_static("1"));
    d.start_response(Status::OK, first, None)?;
    d.data(Bytes::new(), None)?;
    let mut second = HeaderMap::new();
    second.insert("x-b", HeaderValue::from_static("2"));
    d.start_response(status(500), second, Some("oops".into()))?;
    let head = head_of(d.data(b("error page"), None)?);
    assert_eq!(head.status.code(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(head.headers.get("x-a").is_none());
    assert_eq!(head.headers["x-b"], "2");
    Ok(())
}

#[test]
fn sr_12_exc_info_as_the_first_call_is_allowed() -> R {
    let mut d = driver();
    d.start_response(status(502), HeaderMap::new(), Some("upstream".into()))?;
    assert_eq!(head_of(d.data(b("x"), None)?).status.code().as_u16(), 502);
    Ok(())
}

#[test]
fn sr_13_exc_info_after_head_returns_headers_sent() -> R {
    let mut d = driver();
    d.start_response(Status::OK, HeaderMap::new(), None)?;
    d.data(b("sent"), None)?;
    let err = d.start_response(status(500), HeaderMap::new(), Some("the original".into())).expect_err("too late");
    match err {
        Error::HeadersSent(orig) => assert_eq!(orig.to_string(), "the original"),
        other => panic!("{other:?}"),
    }
    assert_eq!(d.status().map(Status::code), Some(StatusCode::OK), "unchanged");
    assert_eq!(d.data(b("more"), None)?.data, "more", "the response goes on");
    Ok(())
}

#[test]
fn sr_15_second_call_without_exc_info_is_already_started() -> R {
    let mut d = driver();
    d.start_response(Status::OK, HeaderMap::new(), None)?;
    let err = d.start_response(status(404), HeaderMap::new(), None).expect_err("second call");
    assert!(matches!(err, Error::AlreadyStarted));
    assert_eq!(d.status().map(Status::code), Some(StatusCode::OK));
    Ok(())
}

#[test]
fn sr_15_after_a_failed_first_call_too() -> R {
    let mut d = driver();
    let mut hop = HeaderMap::new();
    hop.insert("connection", HeaderValue::from_static("close"));
    let err = d.start_response(Status::OK, hop, None).expect_err("SR-7");
    assert!(matches!(err, Error::HopByHopHeader(_)));
    assert!(!d.is_started(), "a failed call sets no head");
    let err = d.start_response(Status::OK, HeaderMap::new(), None).expect_err("no second chance without exc_info");
    assert!(matches!(err, Error::AlreadyStarted));
    d.start_response(Status::OK, HeaderMap::new(), Some("retry".into()))?;
    assert!(d.is_started());
    Ok(())
}

#[test]
fn sr_17_data_before_start_is_body_before_start() {
    let mut d = driver();
    assert!(d.data(Bytes::new(), None).is_ok(), "an empty chunk is not data");
    let err = d.data(b("x"), None).expect_err("no head yet");
    assert!(matches!(err, Error::BodyBeforeStart));
    assert!(d.error_response().is_some());
}

#[test]
fn sr_17_end_without_start_is_never_started() {
    let mut d = driver();
    assert!(matches!(d.finish(), Err(Error::NeverStarted)));
    let file = TempFile::new(b"abc");
    let mut fb = FileBody::new(file.open()).expect("file");
    let mut d = driver();
    assert!(matches!(d.file(&mut fb), Err(Error::NeverStarted)));
}

#[test]
fn sr_17_start_during_iteration_is_fine() -> R {
    let mut d = driver();
    d.data(Bytes::new(), None)?;
    d.start_response(Status::OK, HeaderMap::new(), None)?;
    assert_eq!(d.data(b("late"), None)?.data, "late");
    Ok(())
}

#[test]
fn cl_1_body_truncated_to_declared_length() -> R {
    let mut d = driver();
    d.start_response(Status::OK, with_length("5"), None)?;
    let emit = d.data(b("abc"), None)?;
    assert_eq!(emit.head.expect("head").framing, Framing::Length(5));
    assert_eq!(emit.data, "abc");
    assert!(!d.is_complete());
    assert_eq!(d.data(b("defgh"), None)?.data, "de");
    assert!(d.is_complete(), "a server stops iterating now");
    assert_eq!(d.data(b("ignored"), None)?.data, "");
    assert_eq!(d.bytes_sent(), 5);
    assert!(d.finish()?.is_none());
    Ok(())
}

#[test]
fn cl_1_declared_zero_sends_nothing() -> R {
    let mut d = driver();
    d.start_response(Status::OK, with_length("0"), None)?;
    let emit = d.data(b("abc"), None)?;
    assert_eq!(emit.head.expect("head").framing, Framing::Length(0));
    assert!(emit.data.is_empty());
    assert!(d.is_complete());
    Ok(())
}

#[test]
fn cl_2_short_body_is_a_short_body_error() -> R {
    let mut d = driver();
    d.start_response(Status::OK, with_length("5"), None)?;
    d.data(b("abc"), None)?;
    match d.finish() {
        Err(Error::ShortBody { expected: 5, sent: 3 }) => {}
        other => panic!("{other:?}"),
    }
    assert!(d.error_response().is_none(), "the head is out: the server must abort");
    Ok(())
}

#[test]
fn cl_2_short_body_with_nothing_sent_still_allows_a_500() -> R {
    let mut d = driver();
    d.start_response(Status::OK, with_length("5"), None)?;
    assert!(matches!(d.finish(), Err(Error::ShortBody { expected: 5, sent: 0 })));
    assert!(!d.is_committed(), "no head was handed out");
    let (head, _) = d.error_response().expect("a clean 500");
    assert_eq!(head.status.code(), StatusCode::INTERNAL_SERVER_ERROR);
    Ok(())
}

#[test]
fn cl_2_file_shorter_than_content_length_fails_before_the_head() -> R {
    let file = TempFile::new(b"0123456789");
    let mut fb = FileBody::new(file.open()).expect("file");
    let mut d = driver();
    d.start_response(Status::OK, with_length("20"), None)?;
    assert!(matches!(d.file(&mut fb), Err(Error::ShortBody { expected: 20, sent: 0 })));
    assert!(!d.is_committed());
    assert!(d.error_response().is_some());
    Ok(())
}

#[test]
fn cl_3_known_total_sets_content_length() -> R {
    let mut d = driver();
    d.start_response(Status::OK, HeaderMap::new(), None)?;
    let head = head_of(d.data(b("ab"), Some(3))?);
    assert_eq!(head.framing, Framing::Length(5));
    assert_eq!(head.headers[CONTENT_LENGTH], "5");
    d.data(b("cde"), Some(0))?;
    assert!(d.is_complete());
    assert!(d.finish()?.is_none());
    Ok(())
}

#[test]
fn cl_3_content_length_spells_every_length() -> R {
    // Enough responses to fill several of the per-thread blocks the values
    // are spelled into; every value must stay intact after its block is
    // replaced.
    let lengths: Vec<u64> = (0..3000u64).map(|i| i * 7919).chain([9, 10, 99, 100, u64::MAX / 2, u64::MAX]).collect();
    let mut heads = Vec::new();
    for &n in &lengths {
        let mut d = driver();
        d.start_response(Status::OK, HeaderMap::new(), None)?;
        heads.push(head_of(d.data(b("x"), Some(n.saturating_sub(1)))?));
    }
    for (n, head) in lengths.iter().zip(&heads) {
        let expected = n.max(&1).to_string();
        assert_eq!(head.headers[CONTENT_LENGTH], expected.as_str());
    }
    Ok(())
}

#[test]
fn cl_3_app_content_length_wins_over_the_hint() -> R {
    let mut d = driver();
    d.start_response(Status::OK, with_length("4"), None)?;
    let head = head_of(d.data(b("ab"), Some(100))?);
    assert_eq!(head.framing, Framing::Length(4));
    assert_eq!(head.headers.get_all(CONTENT_LENGTH).iter().count(), 1);
    Ok(())
}

#[test]
fn cl_3_unknown_length_framing_by_version() -> R {
    for (version, framing) in [
        (Version::HTTP_11, Framing::Chunked),
        (Version::HTTP_10, Framing::CloseDelimited),
        (Version::HTTP_09, Framing::CloseDelimited),
        (Version::HTTP_2, Framing::Chunked),
    ] {
        let mut d = ResponseDriver::new(&Method::GET, version);
        d.start_response(Status::OK, HeaderMap::new(), None)?;
        let head = head_of(d.data(b("x"), None)?);
        assert_eq!(head.framing, framing, "{version:?}");
        assert!(head.headers.get(CONTENT_LENGTH).is_none());
        assert!(head.headers.get("transfer-encoding").is_none(), "framing is the server's");
    }
    Ok(())
}

#[test]
fn cl_3_equal_repeated_content_length_is_one_length() -> R {
    let mut d = driver();
    let mut h = HeaderMap::new();
    h.append(CONTENT_LENGTH, HeaderValue::from_static("2"));
    h.append(CONTENT_LENGTH, HeaderValue::from_static("2"));
    d.start_response(Status::OK, h, None)?;
    assert_eq!(head_of(d.data(b("abc"), None)?).framing, Framing::Length(2));
    Ok(())
}

#[test]
fn body_6_head_request_keeps_the_head_sends_no_body() -> R {
    let mut d = ResponseDriver::new(&Method::HEAD, Version::HTTP_11);
    d.start_response(Status::OK, with_length("10"), None)?;
    let emit = d.data(b("hello"), None)?;
    let head = emit.head.expect("head");
    assert_eq!(head.framing, Framing::NoBody);
    assert_eq!(head.headers[CONTENT_LENGTH], "10", "the GET length is kept");
    assert!(emit.data.is_empty());
    assert!(d.is_complete(), "no need to iterate further");
    assert!(d.finish()?.is_none(), "not a short body");
    Ok(())
}

#[test]
fn body_6_head_request_error_response_has_no_body() {
    let mut d = ResponseDriver::new(&Method::HEAD, Version::HTTP_11);
    let (head, body) = d.error_response().expect("500");
    assert_eq!(head.framing, Framing::NoBody);
    assert!(body.is_empty());
}

#[test]
fn body_6_no_content_has_no_body_and_no_content_length() -> R {
    let mut d = driver();
    d.start_response(status(204), with_length("3"), None)?;
    let emit = d.data(b("abc"), Some(0))?;
    let head = emit.head.expect("head");
    assert_eq!(head.framing, Framing::NoBody);
    assert!(head.headers.get(CONTENT_LENGTH).is_none());
    assert!(emit.data.is_empty());
    assert!(d.finish()?.is_none());
    Ok(())
}

#[test]
fn body_6_1xx_is_not_a_final_status() {
    for code in [100, 101, 103] {
        let mut d = driver();
        let err = d.start_response(status(code), HeaderMap::new(), None).expect_err("1xx cannot end a request");
        assert!(matches!(err, Error::InvalidStatus(_)), "{code}: {err:?}");
        assert!(!d.is_started());
    }
}

#[test]
fn sr_2_reason_with_control_bytes_rejected_by_start_response() {
    let bad = Status::with_reason(StatusCode::OK, Bytes::from_static(b"OK\r\nSet-Cookie: x"));
    let mut d = driver();
    let err = d.start_response(bad, HeaderMap::new(), None).expect_err("header injection through the reason");
    assert!(matches!(err, Error::InvalidStatus(_)));
}

#[test]
fn body_6_not_modified_keeps_content_length_sends_nothing() -> R {
    let mut d = driver();
    d.start_response(status(304), with_length("1234"), None)?;
    let head = d.finish()?.expect("head");
    assert_eq!(head.framing, Framing::NoBody);
    assert_eq!(head.headers[CONTENT_LENGTH], "1234");
    let mut d = driver();
    d.start_response(status(304), HeaderMap::new(), None)?;
    let emit = d.data(b("stale"), Some(0))?;
    assert!(emit.data.is_empty());
    assert!(emit.head.expect("head").headers.get(CONTENT_LENGTH).is_none(), "no length invented");
    Ok(())
}

#[test]
fn body_6_head_request_file_sends_nothing() -> R {
    let file = TempFile::new(b"0123456789");
    let mut fb = FileBody::new(file.open()).expect("file");
    let mut d = ResponseDriver::new(&Method::HEAD, Version::HTTP_11);
    d.start_response(Status::OK, HeaderMap::new(), None)?;
    let head = d.file(&mut fb)?.expect("head");
    assert_eq!(head.framing, Framing::NoBody);
    assert!(fb.is_empty());
    Ok(())
}

#[test]
fn exc_2_error_response_only_before_commit() -> R {
    let mut d = driver();
    d.start_response(Status::OK, HeaderMap::new(), None)?;
    assert!(d.status().is_some());
    d.data(b("x"), None)?;
    assert!(d.error_response().is_none());
    Ok(())
}

#[test]
fn fw_6_file_commit_sets_content_length_from_the_file() -> R {
    let file = TempFile::new(b"0123456789");
    let mut fb = FileBody::new(file.open()).expect("file");
    let mut d = driver();
    d.start_response(Status::OK, HeaderMap::new(), None)?;
    let head = d.file(&mut fb)?.expect("head");
    assert_eq!(head.framing, Framing::Length(10));
    assert_eq!(head.headers[CONTENT_LENGTH], "10");
    assert_eq!(d.bytes_sent(), 10);
    assert!(d.finish()?.is_none());
    Ok(())
}

#[test]
fn fw_6_file_truncated_to_declared_content_length() -> R {
    let file = TempFile::new(b"0123456789");
    let mut fb = FileBody::new(file.open()).expect("file");
    let mut d = driver();
    d.start_response(Status::OK, with_length("3"), None)?;
    let head = d.file(&mut fb)?.expect("head");
    assert_eq!(head.framing, Framing::Length(3));
    assert_eq!((fb.offset(), fb.len()), (0, 3));
    Ok(())
}

#[test]
fn fw_6_file_after_write_gets_the_remaining_length() -> R {
    let file = TempFile::new(b"0123456789");
    let mut fb = FileBody::new(file.open()).expect("file");
    let mut d = driver();
    d.start_response(Status::OK, with_length("6"), None)?;
    d.data(b("ab"), None)?;
    assert!(d.file(&mut fb)?.is_none(), "already committed");
    assert_eq!(fb.len(), 4);
    Ok(())
}

#[test]
fn wr_5_app_returned_is_recorded() {
    let mut d = driver();
    assert!(!d.has_returned());
    d.app_returned();
    assert!(d.has_returned());
}
