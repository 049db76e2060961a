//! Every example app on every server: the reference `wsgi-server` (tokio +
//! hyper), `wsgi-simple-server` (std only) and the in-process
//! `wsgi_spec::testing::TestClient` give the same status, reason, headers
//! (except `Date` and `Server`) and body bytes.
//!
//! The apps run unchanged: each server is started with the app itself.
//! The socket servers are asked with the conformance kit's raw HTTP/1.1
//! client, which de-chunks bodies. Their responses are normalised to what `TestClient`
//! reports:
//!
//! - `Date` and `Server` are the servers' own (SR-6) and left out;
//! - `Connection` is connection management (the client sends
//!   `Connection: close`), not part of the app's response, and left out;
//! - `Transfer-Encoding: chunked` becomes the framing `Chunked`, the way
//!   `TestResponse::framing` reports it (the driver never adds that header,
//!   the server does); `Content-Length` stays a header on both sides, since
//!   the driver puts it into the head it hands to any server, and the
//!   framing is `Length(n)` then;
//! - header names are compared lower-cased, sorted by name (stably, so
//!   repeated fields keep their order).
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use wsgi_conformance::client::Conn;
use wsgi_spec::driver::Framing;
use wsgi_spec::testing::TestClient;
use wsgi_spec::SharedApp;

/// A response reduced to what every server must agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    status: u16,
    reason: Vec<u8>,
    /// Lower-cased names, sorted by name (stable), values as bytes.
    headers: Vec<(String, Vec<u8>)>,
    framing: Option<Framing>,
    body: Vec<u8>,
}

fn normalise(mut headers: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    for (name, _) in &mut headers {
        *name = name.to_ascii_lowercase();
    }
    headers.retain(|(name, _)| !matches!(name.as_str(), "date" | "server" | "connection" | "transfer-encoding"));
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    headers
}

/// The in-process client's view.
fn in_process(app: SharedApp, target: &str) -> Observed {
    let resp = TestClient::from_shared(app).get(target);
    assert!(!resp.aborted, "TestClient: the response was aborted: {:?}", resp.error);
    let headers = resp.headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec())).collect::<Vec<_>>();
    Observed {
        status: resp.status.as_u16(),
        reason: resp.reason.to_vec(),
        headers: normalise(headers),
        framing: resp.framing,
        body: resp.body.to_vec(),
    }
}

/// One GET over a socket with `Connection: close`, read with the
/// conformance kit's raw HTTP/1 client (which de-chunks bodies).
fn over_the_wire(addr: SocketAddr, target: &str) -> Observed {
    let mut conn = Conn::connect(addr).unwrap();
    assert!(conn.send(format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes()));
    let resp = conn.read_response(Duration::from_secs(10), false).expect("a response");
    assert_eq!(resp.version, "HTTP/1.1", "status line {:?}", String::from_utf8_lossy(&resp.raw_head));
    assert!(resp.complete, "the body ended as its framing says: {}", resp.describe());
    let framing = resp.spec_framing();
    assert!(framing.is_some(), "neither chunked nor Content-Length: {}", resp.describe());
    let headers = resp.headers.iter().map(|(k, v)| (String::from_utf8(k.clone()).unwrap(), v.clone())).collect();
    Observed { status: resp.status, reason: resp.reason, headers: normalise(headers), framing, body: resp.body }
}

/// The reference server on 127.0.0.1:0, in a thread with its own runtime.
struct Reference {
    addr: SocketAddr,
    shutdown: wsgi_server::ShutdownHandle,
    thread: Option<JoinHandle<()>>,
}

impl Reference {
    fn start(app: SharedApp) -> Reference {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let bound = wsgi_server::Server::new().listener(listener).threads(4).bind_all().unwrap();
        let shutdown = bound.shutdown_handle();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(bound.serve(app)).unwrap();
        });
        Reference { addr, shutdown, thread: Some(thread) }
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        self.shutdown.immediate();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One app asked for `target` on all three servers: all must agree.
fn check(name: &str, app: SharedApp, target: &str) -> Observed {
    let reference = Reference::start(Arc::clone(&app));
    let simple =
        wsgi_simple_server::SimpleServer::bind("127.0.0.1:0").unwrap().threads(4).serve(Arc::clone(&app)).unwrap();

    let results = [
        ("wsgi-server", over_the_wire(reference.addr, target)),
        ("wsgi-simple-server", over_the_wire(simple.local_addr(), target)),
        ("TestClient", in_process(app, target)),
    ];
    simple.shutdown();
    simple.join();
    drop(reference);

    let (_, expected) = &results[2];
    for (server, got) in &results {
        assert_eq!(got, expected, "{name} {target}: {server} differs from TestClient");
    }
    results[2].1.clone()
}

fn header<'a>(o: &'a Observed, name: &str) -> Option<&'a [u8]> {
    o.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
}

#[test]
fn hello_is_the_same_everywhere() {
    let o = check("hello", Arc::new(examples::hello), "/");
    assert_eq!((o.status, o.body.as_slice()), (200, &b"Hello, World!\n"[..]));
    assert_eq!(o.framing, Some(Framing::Length(14)));
    assert_eq!(header(&o, "content-type"), Some(&b"text/plain"[..]));
}

#[test]
fn streaming_is_the_same_everywhere() {
    let o = check("streaming", Arc::new(examples::streaming), "/?n=3&delay_ms=20");
    assert_eq!(o.body, b"line 0\nline 1\nline 2\n");
    assert_eq!(o.framing, Some(Framing::Chunked));
    assert_eq!(header(&o, "content-length"), None);
}

#[test]
fn lazy_start_response_is_the_same_everywhere() {
    let o = check("lazy_write", Arc::new(examples::lazy_write), "/");
    assert_eq!(o.body, b"started lazily, in the first iteration\n");
    assert_eq!(o.status, 200);
}

#[test]
fn write_is_the_same_everywhere() {
    let o = check("lazy_write", Arc::new(examples::lazy_write), "/write");
    assert_eq!(o.body, b"written with write()\nthen yielded by the body\n");
    // write() commits the head before the length is known (WR-3).
    assert_eq!(o.framing, Some(Framing::Chunked));
}
