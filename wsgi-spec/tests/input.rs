//! `wsgi.input` (SPEC.md IN-*): reads at, before and past `Content-Length`,
//! chunked sources, short reads, `readline(limit)`, EOF and client disconnect.

mod common;

use std::io::{self, BufRead, ErrorKind, Read};
use std::sync::atomic::Ordering;

use bytes::Bytes;
use common::Trickle;
use wsgi_spec::Input;

type R = Result<(), Box<dyn std::error::Error>>;

/// A source that must never be read.
struct Untouchable;

impl Read for Untouchable {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        panic!("the source was read although Content-Length is 0");
    }
}

fn lines(input: Input) -> io::Result<Vec<Bytes>> {
    input.collect()
}

#[test]
fn in_1_all_pep_methods_read_the_same_body() -> R {
    let body = b"one\ntwo\nthree";
    assert_eq!(Input::from_bytes(&body[..]).read_all()?, &body[..]);
    assert_eq!(Input::from_bytes(&body[..]).read_size(100)?, &body[..]);
    assert_eq!(Input::from_bytes(&body[..]).readlines(None)?, ["one\n", "two\n", "three"]);
    assert_eq!(lines(Input::from_bytes(&body[..]))?, ["one\n", "two\n", "three"]);
    let mut s = String::new();
    Input::from_bytes(&body[..]).read_to_string(&mut s)?;
    assert_eq!(s, "one\ntwo\nthree");
    Ok(())
}

#[test]
fn in_1_read_and_bufread_traits() -> R {
    let mut input = Input::new(Trickle::new(b"ab\ncd\nef", 3), Some(8));
    let mut small = [0u8; 2];
    let n = input.read(&mut small)?;
    assert!((1..=2).contains(&n), "read returns what is there, at most the buffer");
    assert_eq!(&small[..n], &b"ab"[..n]);
    let mut rest = Vec::new();
    input.read_to_end(&mut rest)?;
    let mut all = small[..n].to_vec();
    all.extend_from_slice(&rest);
    assert_eq!(all, b"ab\ncd\nef");

    let mut input = Input::new(Trickle::new(b"ab\ncd\nef", 2), Some(8));
    let mut line = String::new();
    input.read_line(&mut line)?;
    assert_eq!(line, "ab\n");
    let mut until = Vec::new();
    input.read_until(b'd', &mut until)?;
    assert_eq!(until, b"cd");
    let buf = input.fill_buf()?.to_vec();
    assert!(!buf.is_empty() && b"\nef".starts_with(&buf));
    input.consume(1);
    let rest: Vec<String> = input.lines().collect::<io::Result<_>>()?;
    assert_eq!(rest, ["ef"]);
    Ok(())
}

#[test]
fn in_1_mixed_calls_share_one_buffer() -> R {
    let mut input = Input::new(Trickle::new(b"line1\nline2\nrest", 3), Some(16));
    assert_eq!(input.readline(None)?, "line1\n");
    assert_eq!(input.read_size(3)?, "lin");
    let mut b = [0u8; 3];
    input.read_exact(&mut b)?;
    assert_eq!(&b, b"e2\n");
    assert_eq!(input.next().transpose()?, Some(Bytes::from("rest")));
    assert!(input.next().is_none());
    Ok(())
}

#[test]
fn in_1_large_body_crosses_internal_buffers() -> R {
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut input = Input::new(io::Cursor::new(body.clone()), Some(body.len() as u64));
    let first = input.read_size(70_000)?;
    assert_eq!(first.len(), 70_000);
    let rest = input.read_all()?;
    assert_eq!([&first[..], &rest[..]].concat(), body);
    assert_eq!(input.read_size(1)?, "");
    Ok(())
}

#[test]
fn in_2_read_stops_at_content_length() -> R {
    let src = Trickle::new(b"0123456789NEXT-REQUEST", 3);
    let total = src.read_total.clone();
    let mut input = Input::new(src, Some(10));
    assert_eq!(input.read_size(100)?, "0123456789");
    assert_eq!(input.read_size(100)?, "");
    assert_eq!(input.read_all()?, "");
    assert_eq!(total.load(Ordering::SeqCst), 10, "never reads past Content-Length");
    Ok(())
}

#[test]
fn in_2_read_all_stops_at_content_length() -> R {
    let src = Trickle::new(b"0123456789NEXT", 3);
    let total = src.read_total.clone();
    let mut input = Input::new(src, Some(4));
    assert_eq!(input.read_all()?, "0123");
    assert_eq!(total.load(Ordering::SeqCst), 4);
    Ok(())
}

#[test]
fn in_2_readline_stops_at_content_length() -> R {
    let src = Trickle::new(b"abc\ndef\nghi\n", 2);
    let total = src.read_total.clone();
    let mut input = Input::new(src, Some(6));
    assert_eq!(input.readline(None)?, "abc\n");
    assert_eq!(input.readline(None)?, "de", "the line is cut at the end of the body");
    assert_eq!(input.readline(None)?, "");
    assert_eq!(total.load(Ordering::SeqCst), 6);
    Ok(())
}

#[test]
fn in_2_readlines_and_iteration_stop_at_content_length() -> R {
    let mut input = Input::new(&b"a\nb\nc\nd\n"[..], Some(5));
    assert_eq!(input.readlines(None)?, ["a\n", "b\n", "c"]);
    let input = Input::new(&b"a\nb\nc\nd\n"[..], Some(5));
    assert_eq!(lines(input)?, ["a\n", "b\n", "c"]);
    Ok(())
}

#[test]
fn in_2_read_trait_stops_at_content_length() -> R {
    let src = Trickle::new(b"0123456789", 3);
    let total = src.read_total.clone();
    let mut input = Input::new(src, Some(7));
    let mut out = Vec::new();
    input.read_to_end(&mut out)?;
    assert_eq!(out, b"0123456");
    assert_eq!(input.read(&mut [0u8; 8])?, 0);
    assert_eq!(total.load(Ordering::SeqCst), 7);
    let mut input = Input::new(&b"x\ny\nz\n"[..], Some(3));
    let got: Vec<String> = BufRead::lines(&mut input).collect::<io::Result<_>>()?;
    assert_eq!(got, ["x", "y"]);
    assert!(input.fill_buf()?.is_empty());
    Ok(())
}

#[test]
fn in_2_reading_before_content_length_leaves_the_rest() -> R {
    let mut input = Input::new(&b"0123456789"[..], Some(10));
    assert_eq!(input.content_length(), Some(10));
    assert_eq!(input.read_size(4)?, "0123");
    assert_eq!(input.read_size(4)?, "4567");
    assert_eq!(input.read_size(4)?, "89");
    Ok(())
}

#[test]
fn in_3_read_all_returns_the_rest() -> R {
    let mut input = Input::new(Trickle::new(b"head\nbody body body", 3), Some(19));
    input.readline(None)?;
    assert_eq!(input.read_all()?, "body body body");
    assert_eq!(input.read_all()?, "");
    Ok(())
}

#[test]
fn in_4_read_zero_is_empty_and_consumes_nothing() -> R {
    let mut input = Input::from_bytes("abc");
    assert_eq!(input.read_size(0)?, "");
    assert_eq!(input.read(&mut [])?, 0);
    assert_eq!(input.readline(Some(0))?, "");
    assert_eq!(input.read_all()?, "abc");
    Ok(())
}

#[test]
fn in_4_eof_is_repeated() -> R {
    for content_length in [Some(3), None] {
        let mut input = Input::new(&b"abc"[..], content_length);
        assert_eq!(input.read_all()?, "abc");
        for _ in 0..3 {
            assert_eq!(input.read_size(10)?, "");
            assert_eq!(input.readline(None)?, "");
            assert_eq!(input.read_all()?, "");
            assert!(input.readlines(None)?.is_empty());
            assert_eq!(input.read(&mut [0u8; 4])?, 0);
            assert!(input.next().is_none());
        }
    }
    Ok(())
}

#[test]
fn in_4_zero_content_length_never_touches_the_source() -> R {
    let mut input = Input::new(Untouchable, Some(0));
    assert_eq!(input.read_size(10)?, "");
    assert_eq!(input.readline(None)?, "");
    assert_eq!(input.read_all()?, "");
    assert!(input.next().is_none());
    let mut empty = Input::empty();
    assert_eq!(empty.content_length(), Some(0));
    assert_eq!(empty.read_all()?, "");
    Ok(())
}

#[test]
fn in_5_readline_limit_splits_long_lines() -> R {
    let mut input = Input::new(Trickle::new(b"abcdefgh\nij\n", 3), Some(12));
    assert_eq!(input.readline(Some(3))?, "abc");
    assert_eq!(input.readline(Some(3))?, "def");
    assert_eq!(input.readline(Some(3))?, "gh\n");
    assert_eq!(input.readline(Some(3))?, "ij\n");
    assert_eq!(input.readline(Some(3))?, "");
    Ok(())
}

#[test]
fn in_5_readline_limit_at_the_newline() -> R {
    let mut input = Input::from_bytes("ab\ncd\n");
    assert_eq!(input.readline(Some(2))?, "ab", "the newline is the third byte");
    assert_eq!(input.readline(Some(1))?, "\n");
    assert_eq!(input.readline(Some(3))?, "cd\n");
    Ok(())
}

#[test]
fn in_5_readline_limit_larger_than_line_stops_at_newline() -> R {
    let mut input = Input::new(Trickle::new(b"ab\ncdef", 1), None);
    assert_eq!(input.readline(Some(100))?, "ab\n");
    assert_eq!(input.readline(Some(100))?, "cdef");
    Ok(())
}

#[test]
fn in_6_readlines_hint_stops_after_enough_bytes() -> R {
    let body = "a\nbb\nccc\ndddd\n";
    assert_eq!(
        Input::from_bytes(body).readlines(Some(3))?,
        ["a\n", "bb\n"],
        "stops once the lines read total at least the hint"
    );
    assert_eq!(Input::from_bytes(body).readlines(Some(2))?, ["a\n"], "2 >= 2");
    assert_eq!(Input::from_bytes(body).readlines(Some(6))?, ["a\n", "bb\n", "ccc\n"]);
    assert_eq!(Input::from_bytes(body).readlines(Some(0))?.len(), 4, "0: no hint");
    assert_eq!(Input::from_bytes(body).readlines(None)?.len(), 4);
    let mut input = Input::from_bytes(body);
    input.readlines(Some(3))?;
    assert_eq!(input.read_all()?, "ccc\ndddd\n", "the rest is still there");
    Ok(())
}

#[test]
fn in_8_in_memory_and_streamed_inputs_agree() -> R {
    let body = b"x=1&y=2\nsecond line\n\nlast";
    let mut a = Input::from_bytes(Bytes::from_static(body));
    let mut b = Input::new(Trickle::new(body, 3), Some(body.len() as u64));
    let mut c = Input::new(Trickle::new(body, 2), None);
    for input in [&mut a, &mut b, &mut c] {
        assert_eq!(input.readline(None)?, "x=1&y=2\n");
        assert_eq!(input.read_size(6)?, "second");
        assert_eq!(input.readlines(None)?, [" line\n", "\n", "last"]);
    }
    Ok(())
}

#[test]
fn in_10_without_length_reads_to_the_end_of_the_source() -> R {
    let mut input = Input::new(Trickle::new(b"chunk one, chunk two", 3), None);
    assert_eq!(input.content_length(), None);
    assert_eq!(input.read_size(5)?, "chunk");
    assert_eq!(input.read_all()?, " one, chunk two");
    assert_eq!(input.read_size(5)?, "");
    Ok(())
}

#[test]
fn in_10_without_length_lines_and_iteration() -> R {
    let input = Input::new(Trickle::new(b"a\nbb\nccc", 2), None);
    assert_eq!(lines(input)?, ["a\n", "bb\n", "ccc"]);
    let mut input = Input::new(Trickle::new(b"a\nbb\nccc", 3), None);
    assert_eq!(input.readlines(None)?, ["a\n", "bb\n", "ccc"]);
    Ok(())
}

#[test]
fn in_10_without_length_an_empty_source_is_an_empty_body() -> R {
    let mut input = Input::new(io::empty(), None);
    assert_eq!(input.read_all()?, "");
    assert_eq!(input.readline(None)?, "");
    Ok(())
}

#[test]
fn in_11_readline_keeps_the_newline() -> R {
    let input = Input::from_bytes("a\nb\n");
    assert_eq!(lines(input)?, ["a\n", "b\n"]);
    let input = Input::from_bytes("a\nb");
    assert_eq!(lines(input)?, ["a\n", "b"], "the last line may lack its newline");
    let input = Input::from_bytes("\n\n");
    assert_eq!(lines(input)?, ["\n", "\n"], "empty lines are not the end");
    let mut input = Input::from_bytes("a\r\nb");
    assert_eq!(input.readline(None)?, "a\r\n", "only \\n ends a line, nothing is stripped");
    Ok(())
}

#[test]
fn in_12_read_n_fills_across_short_reads() -> R {
    let mut input = Input::new(Trickle::new(b"0123456789abcdef", 3), Some(16));
    assert_eq!(input.read_size(10)?, "0123456789", "no short read before the end");
    assert_eq!(input.read_size(10)?, "abcdef", "short only at the end");
    let mut input = Input::new(Trickle::new(b"0123456789abcdef", 1), None);
    assert_eq!(input.read_size(7)?, "0123456");
    assert_eq!(input.read_size(7)?, "789abcd");
    assert_eq!(input.read_size(7)?, "ef");
    Ok(())
}

#[test]
fn in_12_short_reads_do_not_change_lines() -> R {
    let body = b"first line\nsecond\n\nfourth line is longer\n";
    for max in 1..=3 {
        let with_len = Input::new(Trickle::new(body, max), Some(body.len() as u64));
        let without = Input::new(Trickle::new(body, max), None);
        let expected = ["first line\n", "second\n", "\n", "fourth line is longer\n"];
        assert_eq!(lines(with_len)?, expected);
        assert_eq!(lines(without)?, expected);
    }
    Ok(())
}

#[test]
fn in_12_interrupted_reads_are_retried() -> R {
    let mut src = Trickle::new(b"hello", 3);
    src.interrupt_first = true;
    let mut input = Input::new(src, Some(5));
    assert_eq!(input.read_size(5)?, "hello");
    Ok(())
}

#[test]
fn in_13_source_shorter_than_content_length_is_unexpected_eof() {
    let mut input = Input::new(&b"abc"[..], Some(10));
    let err = input.read_all().expect_err("the client sent 3 of 10 bytes");
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    let mut input = Input::new(Trickle::new(b"abc", 2), Some(10));
    let err = input.read_size(10).expect_err("short body");
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    let mut input = Input::new(&b"no newline"[..], Some(20));
    let err = input.readline(None).expect_err("short body");
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    let input = Input::new(&b"a\nb"[..], Some(20));
    let err = lines(input).expect_err("short body");
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
}

#[test]
fn in_13_truncated_body_keeps_failing_never_looks_complete() {
    let mut input = Input::new(&b"abc"[..], Some(10));
    let mut buf = [0u8; 16];
    assert_eq!(input.read(&mut buf).expect("the bytes that came"), 3);
    for _ in 0..3 {
        let err = input.read(&mut buf).expect_err("still short");
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
        let err = input.read_size(1).expect_err("still short");
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    }
}

#[test]
fn in_13_source_errors_are_passed_on() {
    let mut src = Trickle::new(b"abc", 3);
    src.error_at_end = Some(ErrorKind::ConnectionReset);
    let mut input = Input::new(src, None);
    let err = input.read_all().expect_err("the connection broke");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
}
