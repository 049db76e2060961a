//! The kit against a deliberately naive server (std only, one thread per
//! connection, no keep-alive, no chunked requests, no Date header, lenient
//! parsing): the kit must notice exactly that, and pass what the naive
//! server gets right through `wsgi_spec` itself.
//!
//! This is also an example of [`ServerUnderTest`] for a server that is not
//! `wsgi-server`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, CONTENT_LENGTH};
use http::{HeaderValue, Request};
use wsgi_conformance::{run_with, Options, Outcome, Report, RunningServer, ServerUnderTest};
use wsgi_spec::driver::ResponseHead;
use wsgi_spec::ext::ConnectionInfo;
use wsgi_spec::run::{run, ResponseSink};
use wsgi_spec::{Environ, Input, ServerInfo, SharedApp};

struct Naive;

struct Running {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl RunningServer for Running {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl ServerUnderTest for Naive {
    fn start(&self, app: SharedApp) -> Box<dyn RunningServer> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, peer)) => {
                        let app = Arc::clone(&app);
                        std::thread::spawn(move || {
                            let _ = serve(&app, stream, peer, addr);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Box::new(Running { addr, stop })
    }
}

/// One request per connection.
fn serve(app: &SharedApp, mut stream: TcpStream, peer: SocketAddr, local: SocketAddr) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut tmp)?;
        if n == 0 || buf.len() > 1 << 20 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let Some(req) = parse(&buf[..head_end]) else {
        return stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    };
    let (mut parts, ()) = req.into_parts();
    let len: usize = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut tmp)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    body.truncate(len);
    parts.extensions.insert(ConnectionInfo { peer: Some(peer), local: Some(local), secure: false });
    let environ = Environ::from_request(parts, Input::from_bytes(body), &ServerInfo::default());
    let _ = run(&**app, environ, Sink(stream.try_clone()?));
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

fn parse(head: &[u8]) -> Option<Request<()>> {
    let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let line = lines.next()?;
    let mut parts = line.split(|&b| b == b' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let version = match version {
        b"HTTP/1.0" => http::Version::HTTP_10,
        _ => http::Version::HTTP_11,
    };
    let mut req = Request::builder().method(method).uri(target).version(version);
    for l in lines {
        let i = l.iter().position(|&b| b == b':')?;
        let name = HeaderName::from_bytes(l[..i].trim_ascii()).ok()?;
        let value = HeaderValue::from_bytes(l[i + 1..].trim_ascii()).ok()?;
        req = req.header(name, value);
    }
    req.body(()).ok()
}

struct Sink(TcpStream);

impl ResponseSink for Sink {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        let mut out = format!("HTTP/1.1 {}\r\n", head.status).into_bytes();
        for (k, v) in &head.headers {
            out.extend_from_slice(k.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        // Unknown length: close-delimited, whatever the version.
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        self.0.write_all(&out)
    }
    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        self.0.write_all(&data)
    }
    fn finish(&mut self) -> io::Result<()> {
        self.0.flush()
    }
    fn abort(&mut self, _error: &wsgi_spec::Error) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

fn find<'a>(report: &'a Report, id: &str, name_part: &str) -> &'a wsgi_conformance::CheckResult {
    report
        .results
        .iter()
        .find(|r| r.id == id && r.name.contains(name_part))
        .unwrap_or_else(|| panic!("no check {id} / {name_part}"))
}

#[test]
fn the_kit_tells_what_a_naive_server_gets_wrong() {
    let report = run_with(&Naive, &Options::default());
    println!("{report}");
    let must_fail = [
        ("RFC9112-9.3", "keep-alive"),
        ("RFC9112-9.3.2", "three GETs"),
        ("SR-6", "Date"),
        ("IN-10", "chunked"),
        ("CL-3", "HTTP/1.1"),
        ("HTTP-1", "app reads"),
        ("RFC9112-6.3", "two different Content-Length"),
        ("RFC9112-6.3", "Content-Length with Transfer-Encoding"),
        ("RFC9112-3", "414"),
    ];
    let must_pass = [
        ("ENV-4", "percent-decoded"),
        ("ENV-4", "non-UTF-8"),
        ("ENV-5", "raw query"),
        ("ENV-9", "HTTP/1.0"),
        ("ENV-10", "joined with \", \""),
        ("SR-2", "reason phrase"),
        ("SR-9", "clean 500"),
        ("WR-4", "write()"),
        ("BODY-1", "STRM-1"),
        ("BODY-3", "normal end"),
        ("CL-1", "shorter than its body"),
        ("EXC-2", "error before the head"),
        ("KIT-slow-head", "byte by byte"),
    ];
    let mut wrong = Vec::new();
    for (id, part) in must_fail {
        let r = find(&report, id, part);
        if r.outcome != Outcome::Fail {
            wrong.push(format!("should have failed: {r}"));
        }
    }
    for (id, part) in must_pass {
        let r = find(&report, id, part);
        if r.outcome != Outcome::Pass {
            wrong.push(format!("should have passed: {r}"));
        }
    }
    let corpus_failures = report.failures().iter().filter(|r| r.section == wsgi_conformance::Section::Corpus).count();
    if corpus_failures < 10 {
        wrong.push(format!("only {corpus_failures} corpus failures for a lenient parser"));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_kit_lists_its_checks() {
    let checks = wsgi_conformance::checks();
    let corpus = checks.iter().filter(|c| c.section == wsgi_conformance::Section::Corpus).count();
    assert_eq!(corpus, 137);
    assert!(checks.iter().any(|c| c.id == "CL-2"));
    assert!(checks.iter().any(|c| c.id == "valid/001"));
}
