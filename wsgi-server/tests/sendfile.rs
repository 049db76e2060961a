//! File bodies on plain HTTP/1 connections go out with `sendfile(2)`
//! (SPEC.md FW-1, FW-6, FW-8 on the server side): the bytes are the file's,
//! ranges and `Content-Length` cuts hold, pipelined responses keep their
//! order around them, and a file that ends early closes the connection.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use support::{connect, read_response, start};
use wsgi_spec::{AppError, Body, Environ, FileBody, StartResponse};

/// A file of `len` bytes that differ from their neighbours.
fn data_file(name: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("wsgi-sendfile-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("data.bin");
    let mut x: u32 = 0x9e37_79b9;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect();
    std::fs::write(&path, &data).expect("write data file");
    (path, data)
}

/// `/file?offset=A&len=B&cl=C`: `B` bytes of the file from `A` (default: the
/// whole file), with `Content-Length: C` when given; `/small`: a short text.
fn file_app(path: &Path) -> impl wsgi_spec::Application {
    let path = Arc::new(path.to_owned());
    move |environ: Environ, start_response: StartResponse| -> Result<Body, AppError> {
        let query = String::from_utf8_lossy(&environ.query_string).into_owned();
        let param = |name: &str| -> Option<u64> {
            query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name)?.1.parse().ok()
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        if &environ.path_info[..] == b"/small" {
            start_response.start(StatusCode::OK, headers)?;
            return Ok(Body::full(Bytes::from_static(b"small\n")));
        }
        if let Some(cl) = param("cl") {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(cl));
        }
        let file = std::fs::File::open(&*path)?;
        let size = file.metadata()?.len();
        let offset = param("offset").unwrap_or(0);
        let len = param("len").unwrap_or(size - offset);
        start_response.start(StatusCode::OK, headers)?;
        Ok(Body::file(FileBody::with_range(file, offset, len)))
    }
}

/// A way to configure the server under test.
type Configure = fn(wsgi_server::Server) -> wsgi_server::Server;

fn modes() -> [(&'static str, Configure); 2] {
    [("pool", |s| s.threads(4)), ("inline", |s| s.threads(1).inline(true))]
}

#[test]
fn fw_1_file_bodies_go_out_with_sendfile_on_plain_http1() {
    let (path, data) = data_file("whole", 3 << 20);
    for (mode, configure) in modes() {
        let server = start(file_app(&path), configure);
        let before = wsgi_server::sendfile_bytes();
        let mut s = connect(server.addr);
        s.write_all(b"GET /file HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
        let r = read_response(&mut s, false).expect("a response");
        assert_eq!(r.status, 200, "{mode}");
        assert_eq!(r.header("content-length"), Some(data.len().to_string().as_str()), "{mode}");
        assert!(r.body == data, "{mode}: the body is not the file ({} bytes)", r.body.len());
        let sent = wsgi_server::sendfile_bytes() - before;
        assert!(sent >= data.len() as u64, "{mode}: only {sent} bytes went out with sendfile");
        // The connection is still good for another request.
        s.write_all(b"GET /small HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
        assert_eq!(read_response(&mut s, false).expect("a response").body, b"small\n", "{mode}");
        server.stop();
    }
}

#[test]
fn fw_6_ranges_and_content_length_cuts_keep_pipelined_order() {
    let (path, data) = data_file("ranges", 1 << 20);
    for (mode, configure) in modes() {
        let server = start(file_app(&path), configure);
        let mut s = connect(server.addr);
        // All at once: a range, a cut by the app's Content-Length, a small
        // body, the whole file, a range of more than one token.
        let requests = [
            ("/file?offset=1000&len=300000", &data[1000..301_000]),
            ("/file?cl=12345", &data[..12345]),
            ("/small", &b"small\n"[..]),
            ("/file", &data[..]),
            ("/file?offset=7&len=600000", &data[7..600_007]),
        ];
        let mut raw = Vec::new();
        for (target, _) in &requests {
            raw.extend_from_slice(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        }
        s.write_all(&raw).expect("send");
        for (target, expected) in requests {
            let r = read_response(&mut s, false).unwrap_or_else(|| panic!("{mode}: no response to {target}"));
            assert_eq!(r.status, 200, "{mode} {target}");
            assert_eq!(r.header("content-length"), Some(expected.len().to_string().as_str()), "{mode} {target}");
            assert!(r.body == expected, "{mode} {target}: wrong bytes ({} of {})", r.body.len(), expected.len());
        }
        // HEAD sends no file bytes and keeps the connection.
        s.write_all(b"HEAD /file HTTP/1.1\r\nHost: t\r\n\r\nGET /small HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
        assert_eq!(read_response(&mut s, true).expect("a HEAD response").status, 200, "{mode}");
        assert_eq!(read_response(&mut s, false).expect("a response").body, b"small\n", "{mode}");
        server.stop();
    }
}

#[test]
fn fw_8_a_file_that_ends_early_closes_the_connection() {
    let (path, data) = data_file("short", 100_000);
    for (mode, configure) in modes() {
        let server = start(file_app(&path), configure);
        let mut s = connect(server.addr);
        // The range claims more than the file holds.
        s.write_all(b"GET /file?offset=0&len=400000 HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        let end = all.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
        let head = String::from_utf8_lossy(&all[..end]).to_ascii_lowercase();
        assert!(head.contains("content-length: 400000"), "{mode}: {head}");
        let body = &all[end..];
        assert!(body.len() < 400_000, "{mode}: a short file must not look complete");
        assert!(data.starts_with(body), "{mode}: the bytes sent are the file's");
        server.stop();
    }
}
