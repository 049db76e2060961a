//! `wsgi.errors` (SPEC.md ERR-*): a line-buffered text stream into the
//! server's `ErrorSink`.

use std::sync::Arc;
use std::{fmt, io};

use wsgi_spec::errors::{ErrorSink, MemorySink};
use wsgi_spec::testing::TestClient;
use wsgi_spec::{AppError, Body, Environ, Errors, StartResponse};

fn stream() -> (Errors, MemorySink) {
    let sink = MemorySink::new();
    (Errors::new(sink.clone()), sink)
}

#[test]
fn err_1_write_writelines_flush() {
    let (errors, sink) = stream();
    errors.write("one\n");
    errors.writelines(["two", "\n", "three\nfour"]);
    assert_eq!(sink.lines(), ["one", "two", "three"]);
    errors.flush();
    assert_eq!(sink.lines(), ["one", "two", "three", "four"]);
}

#[test]
fn err_2_output_is_line_buffered() {
    let (errors, sink) = stream();
    errors.write("par");
    errors.write("tial");
    assert!(sink.lines().is_empty(), "a partial line is held");
    errors.write(" line\nsecond\nthird\n");
    assert_eq!(sink.lines(), ["partial line", "second", "third"]);
    errors.write("\n");
    assert_eq!(sink.lines().last().map(String::as_str), Some(""), "an empty line");
}

#[test]
fn err_2_crlf_ends_a_line_too() {
    let (errors, sink) = stream();
    errors.write("windows\r\nunix\n");
    assert_eq!(sink.lines(), ["windows", "unix"]);
}

#[test]
fn err_3_any_text_is_accepted() {
    let (errors, sink) = stream();
    errors.write("ünïcödé ✓ \u{0}\n");
    io::Write::write_all(&mut &errors, b"bad \xff utf-8\n").expect("never fails");
    fmt::Write::write_fmt(&mut &errors, format_args!("fmt {}\n", 42)).expect("never fails");
    assert_eq!(sink.lines(), ["ünïcödé ✓ \u{0}", "bad \u{fffd} utf-8", "fmt 42"]);
}

#[test]
fn err_4_flush_passes_on_a_partial_line() {
    let (errors, sink) = stream();
    errors.flush();
    assert!(sink.lines().is_empty(), "nothing pending, nothing logged");
    errors.write("no newline");
    errors.flush();
    assert_eq!(sink.lines(), ["no newline"]);
    errors.flush();
    assert_eq!(sink.lines(), ["no newline"], "flushed once");
    io::Write::write_all(&mut &errors, b"via io").expect("write");
    io::Write::flush(&mut &errors).expect("flush");
    assert_eq!(sink.lines(), ["no newline", "via io"]);
}

#[test]
fn err_4_dropping_the_last_handle_flushes() {
    let (errors, sink) = stream();
    let clone = errors.clone();
    clone.write("shared ");
    errors.write("partial");
    drop(clone);
    assert!(sink.lines().is_empty(), "another handle is alive");
    drop(errors);
    assert_eq!(sink.lines(), ["shared partial"]);
}

#[test]
fn err_4_concurrent_whole_lines_never_interleave() {
    let (errors, sink) = stream();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let errors = errors.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    errors.write(&format!("thread {t} line {i}\n"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no panic");
    }
    let lines = sink.lines();
    assert_eq!(lines.len(), 800);
    for t in 0..8 {
        let mine: Vec<_> = lines.iter().filter(|l| l.starts_with(&format!("thread {t} "))).cloned().collect();
        let expected: Vec<_> = (0..100).map(|i| format!("thread {t} line {i}")).collect();
        assert_eq!(mine, expected);
    }
}

struct Upper(MemorySink);

impl ErrorSink for Upper {
    fn line(&self, line: &str) {
        self.0.line(&line.to_uppercase());
    }
}

#[test]
fn err_6_the_server_chooses_the_sink() {
    let inner = MemorySink::new();
    let errors = Errors::from_arc(Arc::new(Upper(inner.clone())));
    errors.write("custom sink\n");
    assert_eq!(inner.lines(), ["CUSTOM SINK"]);
}

#[test]
fn err_6_app_lines_and_server_errors_share_the_log() {
    let client = TestClient::new(|env: Environ, _sr: StartResponse| -> Result<Body, AppError> {
        env.errors.write("app says hi\n");
        Err("app failed".into())
    });
    let resp = client.get("/");
    assert_eq!(resp.status, http::StatusCode::INTERNAL_SERVER_ERROR);
    let lines = client.errors();
    assert_eq!(lines[0], "app says hi");
    assert!(lines.iter().any(|l| l.contains("app failed")), "the server logs the app's error: {lines:?}");
}
