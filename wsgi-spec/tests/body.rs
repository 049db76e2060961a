//! The response body and file bodies (SPEC.md APP-4, BODY-3, STRM-2, FW-*):
//! constructors, `len_hint`, close hooks, and files sent by any server.

mod common;

use std::io::{Seek, SeekFrom};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{get, run_app, run_into, Ev, Probe, Rec, Scripted, Sink, TempFile};
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};
use wsgi_spec::driver::Framing;
use wsgi_spec::testing::TestClient;
use wsgi_spec::{AppError, Body, Environ, Error, FileBody, StartResponse};

type AppResult = Result<Body, AppError>;

fn collect(body: Body) -> Vec<Bytes> {
    body.map(|c| c.expect("no error")).collect()
}

fn file_app(
    make: impl Fn() -> FileBody + Send + Sync + 'static,
    headers: HeaderMap,
) -> impl Fn(Environ, StartResponse) -> AppResult + Send + Sync + 'static {
    move |_env, sr| {
        sr.start(StatusCode::OK, headers.clone())?;
        Ok(Body::file(make()))
    }
}

#[test]
fn app_4_every_constructor_is_an_iterable_of_bytes() {
    assert_eq!(Body::empty().len_hint(), Some(0));
    assert!(collect(Body::empty()).is_empty());
    assert_eq!(Body::default().len_hint(), Some(0));
    assert_eq!(Body::full("abc").len_hint(), Some(3));
    assert_eq!(collect(Body::full("abc")), ["abc"]);
    let from_iter = Body::from_iter([Ok::<_, AppError>("a"), Ok("b")]);
    assert_eq!(from_iter.len_hint(), None, "a generator's length is unknown");
    assert_eq!(collect(from_iter), ["a", "b"]);
    assert_eq!(collect(Body::from(String::from("s"))), ["s"]);
    assert_eq!(collect(Body::from(vec![1u8, 2])), [Bytes::from_static(&[1, 2])]);
    assert_eq!(collect(Body::from("static")), ["static"]);
    assert_eq!(collect(Body::from(Bytes::from_static(b"b"))), ["b"]);
}

#[test]
fn app_4_generator_errors_come_out_in_order() {
    let mut body = Body::from_iter([Ok("a"), Err("bad chunk"), Ok("c")]);
    assert_eq!(body.next_chunk().map(|r| r.ok()), Some(Some(Bytes::from("a"))));
    let err = body.next_chunk().expect("an item").expect_err("the error");
    assert_eq!(err.to_string(), "bad chunk");
}

#[test]
fn app_5_chunks_len_hint_counts_down() {
    let mut body = Body::chunks(["ab", "", "cde"]);
    assert_eq!(body.len_hint(), Some(5));
    body.next_chunk();
    assert_eq!(body.len_hint(), Some(3));
    body.next_chunk();
    assert_eq!(body.len_hint(), Some(3));
    body.next_chunk();
    assert_eq!(body.len_hint(), Some(0));
    assert!(body.next_chunk().is_none());
    let mut full = Body::full("xyz");
    full.next_chunk();
    assert_eq!(full.len_hint(), Some(0));
}

#[test]
fn strm_2_empty_chunks_are_passed_on_by_the_body() {
    let chunks = collect(Body::chunks(["", "a", ""]));
    assert_eq!(chunks, ["", "a", ""], "Body does not hide empty chunks; the driver skips them");
}

#[test]
fn body_3_drop_closes_the_iterator_then_runs_hooks_in_order() {
    let rec = Rec::new();
    let probe = Probe::new();
    let (r1, r2) = (rec.clone(), rec.clone());
    let body = Scripted::new(vec![], &probe)
        .noting(&rec)
        .body()
        .on_close(move || r1.note("hook 1"))
        .on_close(move || r2.note("hook 2"));
    assert_eq!(probe.drops(), 0);
    drop(body);
    assert_eq!(rec.trace(), ["drop", "hook 1", "hook 2"]);
    assert_eq!(probe.drops(), 1);
}

#[test]
fn body_3_take_file_keeps_the_hooks() {
    let file = TempFile::new(b"data");
    let rec = Rec::new();
    let r = rec.clone();
    let mut body = Body::file(FileBody::new(file.open()).expect("file")).on_close(move || r.note("closed"));
    assert!(body.is_file());
    let fb = body.take_file().expect("a file body");
    assert_eq!(fb.len(), 4);
    assert!(!body.is_file());
    assert!(body.take_file().is_none());
    assert!(body.next_chunk().is_none(), "left empty");
    drop(body);
    assert_eq!(rec.trace(), ["closed"]);
    let mut not_file = Body::full("x");
    assert!(not_file.take_file().is_none());
    assert_eq!(collect(not_file), ["x"], "a non-file body is left as it was");
}

#[test]
fn fw_6_file_body_starts_at_the_current_position() {
    let tmp = TempFile::new(b"0123456789");
    let mut file = tmp.open();
    file.seek(SeekFrom::Start(4)).expect("seek");
    let fb = FileBody::new(file).expect("file");
    assert_eq!((fb.offset(), fb.len()), (4, 6));
    let mut body = Body::file(fb);
    assert_eq!(body.len_hint(), Some(6));
    let mut out = Vec::new();
    while let Some(c) = body.next_chunk() {
        out.extend_from_slice(&c.expect("read"));
    }
    assert_eq!(out, b"456789");
}

#[test]
fn fw_6_reads_never_move_the_file_cursor() {
    let tmp = TempFile::new(b"0123456789");
    let mut file = tmp.open();
    file.seek(SeekFrom::Start(2)).expect("seek");
    let mut fb = FileBody::new(file.try_clone().expect("clone")).expect("file");
    while fb.read_block().expect("read").is_some() {}
    assert_eq!(file.stream_position().expect("position"), 2, "positioned reads");
}

#[test]
fn fw_6_with_range_sends_a_slice() {
    let tmp = TempFile::new(b"0123456789");
    let body = Body::file(FileBody::with_range(tmp.open(), 2, 3));
    assert_eq!(collect(body).concat(), b"234");
}

#[test]
fn fw_6_truncate_and_advance() {
    let tmp = TempFile::new(b"0123456789");
    let mut fb = FileBody::new(tmp.open()).expect("file");
    fb.truncate(8);
    fb.advance(3);
    assert_eq!((fb.offset(), fb.len()), (3, 5));
    fb.truncate(100);
    assert_eq!(fb.len(), 5, "truncate never grows");
    fb.advance(100);
    assert!(fb.is_empty());
    assert_eq!(fb.offset(), 8);
    assert!(fb.read_block().expect("nothing to read").is_none());
}

#[test]
fn fw_6_new_rejects_what_is_not_a_regular_file() {
    let dir = std::fs::File::open(std::env::temp_dir()).expect("open a directory");
    let err = FileBody::new(dir).expect_err("a directory");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn fw_2_block_size_sets_the_chunk_size() {
    let tmp = TempFile::new(b"0123456789");
    let body = Body::file(FileBody::new(tmp.open()).expect("file").block_size(4));
    assert_eq!(collect(body), ["0123", "4567", "89"]);
    let fb = FileBody::new(tmp.open()).expect("file").block_size(0);
    assert_eq!(collect(Body::file(fb)), ["0123456789"], "0 keeps the default");
    assert_eq!(FileBody::DEFAULT_BLOCK_SIZE, 64 * 1024);
}

#[test]
fn fw_8_a_file_that_shrank_is_an_error() {
    let tmp = TempFile::new(b"0123");
    let mut fb = FileBody::with_range(tmp.open(), 2, 10);
    assert_eq!(fb.read_block().expect("2 bytes exist").expect("some"), "23");
    let err = fb.read_block().expect_err("the file ended early");
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
}

#[test]
fn fw_7_any_server_can_send_a_file_body() {
    let tmp = Arc::new(TempFile::new(b"file contents here"));
    let t = Arc::clone(&tmp);
    let client =
        TestClient::new(file_app(move || FileBody::new(t.open()).expect("file").block_size(5), HeaderMap::new()));
    let resp = client.get("/");
    assert_eq!(resp.body, "file contents here");
    assert_eq!(resp.headers[CONTENT_LENGTH], "18");
    assert_eq!(resp.framing, Some(Framing::Length(18)));
    assert_eq!(resp.chunks.len(), 4, "the default send_file reads block by block");
}

#[test]
fn fw_6_file_truncated_by_declared_content_length() {
    let tmp = Arc::new(TempFile::new(b"0123456789"));
    let t = Arc::clone(&tmp);
    let mut h = HeaderMap::new();
    h.insert(CONTENT_LENGTH, HeaderValue::from_static("4"));
    let client = TestClient::new(file_app(move || FileBody::new(t.open()).expect("file"), h));
    let resp = client.get("/");
    assert_eq!(resp.body, "0123");
    assert!(!resp.aborted && resp.error.is_none());
}

#[test]
fn cl_2_file_shorter_than_content_length_is_a_500() {
    let tmp = Arc::new(TempFile::new(b"0123456789"));
    let t = Arc::clone(&tmp);
    let mut h = HeaderMap::new();
    h.insert(CONTENT_LENGTH, HeaderValue::from_static("50"));
    let app = file_app(move || FileBody::new(t.open()).expect("file"), h);
    let (outcome, rec) = run_app(&app, get());
    assert_eq!(rec.head().status.code(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(matches!(outcome.error, Some(Error::ShortBody { expected: 50, sent: 0 })));
}

#[test]
fn fw_5_only_file_bodies_are_handed_to_send_file() {
    let tmp = Arc::new(TempFile::new(b"0123456789"));
    let t = Arc::clone(&tmp);
    let app = file_app(move || FileBody::with_range(t.open(), 1, 5), HeaderMap::new());
    let rec = Rec::new();
    let mut sink = Sink::new(&rec);
    sink.sendfile = true;
    run_into(&app, get(), sink);
    assert_eq!(rec.trace(), ["head 200", "file 1+5", "finish"]);
    assert_eq!(rec.body(), "12345");

    // A middleware that wraps the file in its own iterator hides it.
    let t = Arc::clone(&tmp);
    let wrapped = move |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        let inner = Body::file(FileBody::with_range(t.open(), 1, 5));
        Ok(Body::from_iter(inner))
    };
    let rec = Rec::new();
    let mut sink = Sink::new(&rec);
    sink.sendfile = true;
    run_into(&wrapped, get(), sink);
    assert!(!rec.events().iter().any(|e| matches!(e, Ev::File(..))));
    assert_eq!(rec.body(), "12345");
    assert_eq!(rec.head().framing, Framing::Chunked, "its length is unknown now");
}

#[test]
fn fw_3_file_and_hooks_are_closed_after_sending() {
    let tmp = Arc::new(TempFile::new(b"abc"));
    let rec = Rec::new();
    let (t, r) = (Arc::clone(&tmp), rec.clone());
    let app = move |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        let r = r.clone();
        Ok(Body::file(FileBody::new(t.open())?).on_close(move || r.note("closed")))
    };
    run_into(&app, get(), Sink::new(&rec));
    assert_eq!(rec.trace(), ["head 200", "data abc", "closed", "finish"]);
}

#[test]
fn body_6_head_request_with_a_file_sends_nothing() {
    let tmp = Arc::new(TempFile::new(b"0123456789"));
    let t = Arc::clone(&tmp);
    let app = file_app(move || FileBody::new(t.open()).expect("file"), HeaderMap::new());
    let rec = Rec::new();
    let mut sink = Sink::new(&rec);
    sink.sendfile = true;
    let outcome = run_into(&app, common::environ(Method::HEAD, "/", Version::HTTP_11), sink);
    assert_eq!(rec.trace(), ["head 200", "finish"]);
    assert!(outcome.is_complete());
}

#[test]
fn body_3_file_body_closed_on_disconnect() {
    let tmp = Arc::new(TempFile::new(&[7u8; 100]));
    let closes = Arc::new(Mutex::new(0));
    let (t, c) = (Arc::clone(&tmp), Arc::clone(&closes));
    let app = move |_env: Environ, sr: StartResponse| -> AppResult {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        let c = Arc::clone(&c);
        Ok(Body::file(FileBody::new(t.open())?.block_size(10)).on_close(move || *c.lock().expect("lock") += 1))
    };
    let rec = Rec::new();
    let mut sink = Sink::new(&rec);
    sink.fail_data_at = Some(2);
    let outcome = run_into(&app, get(), sink);
    assert!(matches!(outcome.error, Some(Error::Disconnected(_))));
    assert_eq!(rec.body().len(), 20);
    assert_eq!(*closes.lock().expect("lock"), 1);
}
