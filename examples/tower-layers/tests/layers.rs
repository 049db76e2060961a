//! tower-http's layers around a spec app, over a real socket: a normal
//! request, the body limit (both ways), the timeout, and the spec
//! middleware composed with `ServiceBuilder` (request id, lint).
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use example_tower_layers::{serve, spec_service, Options};
use wsgi_spec::lint::LintReport;

/// Serve the example on 127.0.0.1:0 from a background runtime.
fn start(options: Options) -> (SocketAddr, LintReport) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let (spec, report) = spec_service(2).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send((listener.local_addr().unwrap(), report)).unwrap();
            serve(listener, spec, options).await.unwrap();
        });
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// Send `request` (which asks for `Connection: close`) and read the reply.
fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply { status, head: head.to_ascii_lowercase(), body: body.to_owned() }
}

fn get(addr: SocketAddr, target: &str) -> Reply {
    exchange(addr, format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
}

/// Poll `cond` for up to two seconds (the app thread finishes after the
/// response went out).
fn eventually(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

#[test]
fn normal_request_passes_every_layer() {
    let options = Options::default();
    let responses = options.responses.clone();
    let (addr, lint) = start(options);
    let r = get(addr, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "hello from a spec app behind tower layers\n");
    // RequestIdLayer (spec middleware, via ServiceBuilder) added its header.
    assert!(r.head.contains("\r\nx-request-id: "), "{}", r.head);
    // TraceLayer's on_response ran.
    assert_eq!(responses.load(Ordering::Relaxed), 1);
    // The lint saw a clean exchange, and the body was closed.
    assert!(lint.is_clean(), "{lint:?}");
    assert!(eventually(|| lint.open_bodies() == 0), "{lint:?}");
}

#[test]
fn body_over_the_limit_is_413() {
    let (addr, lint) = start(Options { body_limit: 1024, ..Options::default() });

    // Under the limit: the app reads it all.
    let body = "x".repeat(1000);
    let req =
        format!("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{body}");
    let r = exchange(addr, req.as_bytes());
    assert_eq!((r.status, r.body.as_str()), (200, "got 1000 bytes\n"));

    // Content-Length over the limit: tower-http answers before the app runs.
    let req = "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n";
    let r = exchange(addr, req.as_bytes());
    assert_eq!(r.status, 413);
    assert_eq!(r.body, "length limit exceeded");
    assert!(!r.head.contains("x-request-id"), "the app was not called: {}", r.head);

    // Chunked, no Content-Length: the body is cut at the limit and the app
    // turns the read error into its own 413.
    let chunk = "y".repeat(2048);
    let req = format!(
        "POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         800\r\n{chunk}\r\n0\r\n\r\n"
    );
    let r = exchange(addr, req.as_bytes());
    assert_eq!((r.status, r.body.as_str()), (413, "payload too large\n"));
    assert!(r.head.contains("x-request-id"), "{}", r.head);
    assert!(lint.is_clean(), "{lint:?}");
}

#[test]
fn slow_app_times_out_and_server_keeps_serving() {
    let options = Options { timeout: Duration::from_millis(300), ..Options::default() };
    let responses = options.responses.clone();
    let (addr, _lint) = start(options);
    let started = Instant::now();
    let r = get(addr, "/slow?ms=1500");
    assert_eq!(r.status, 504);
    assert!(started.elapsed() < Duration::from_millis(1400), "{:?}", started.elapsed());
    // The server still serves, while the slow app thread is still sleeping.
    let r = get(addr, "/");
    assert_eq!(r.status, 200);
    // A fast enough /slow passes.
    assert_eq!(get(addr, "/slow?ms=10").body, "finally\n");
    assert_eq!(responses.load(Ordering::Relaxed), 3);
}
