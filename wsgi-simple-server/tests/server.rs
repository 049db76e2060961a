//! What the conformance kit does not look at: the server's own settings
//! and life cycle (threads, keep-alive, shutdown), and how it treats a
//! `wsgi.input` kept beyond its request.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderMap, StatusCode};
use wsgi_simple_server::{Handle, SimpleServer};
use wsgi_spec::{AppError, Application, Body, Environ, Input, ServerInfo, StartResponse};

/// A response as read off the wire.
#[derive(Debug)]
struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Client { reader: BufReader::new(stream) }
    }

    fn send(&mut self, raw: &[u8]) {
        self.reader.get_mut().write_all(raw).unwrap();
    }

    /// Read one response framed by Content-Length or chunked.
    fn response(&mut self) -> Resp {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            assert!(self.reader.read_line(&mut line).unwrap() > 0, "connection closed before a response");
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let status = head[9..12].parse().unwrap();
        let mut resp = Resp { status, head, body: Vec::new() };
        if let Some(n) = resp.header("content-length") {
            let mut body = vec![0; n.parse().unwrap()];
            self.reader.read_exact(&mut body).unwrap();
            resp.body = body;
        } else if resp.header("transfer-encoding").as_deref() == Some("chunked") {
            loop {
                let mut line = String::new();
                self.reader.read_line(&mut line).unwrap();
                let size = usize::from_str_radix(line.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk).unwrap();
                if size == 0 {
                    break;
                }
                resp.body.extend_from_slice(&chunk[..size]);
            }
        }
        resp
    }

    /// True when the server closes the connection within `timeout`.
    fn closed_within(&mut self, timeout: Duration) -> bool {
        self.reader.get_ref().set_read_timeout(Some(timeout)).unwrap();
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok()
    }
}

fn text(start_response: &StartResponse, body: String) -> Result<Body, AppError> {
    start_response.start(StatusCode::OK, HeaderMap::new())?;
    Ok(Body::full(body))
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes()
}

fn serve(server: SimpleServer, app: impl Application) -> Handle {
    server.serve(app).unwrap()
}

fn bind() -> SimpleServer {
    SimpleServer::bind("127.0.0.1:0").unwrap()
}

#[test]
fn env_21_multithread_follows_the_number_of_threads() {
    let app = |env: Environ, sr: StartResponse| text(&sr, env.multithread.to_string());
    for (threads, want) in [(1, "false"), (3, "true")] {
        let server = serve(bind().threads(threads), app);
        let mut c = Client::connect(server.local_addr());
        c.send(&get("/"));
        assert_eq!(c.response().body, want.as_bytes(), "{threads} threads");
        server.shutdown();
    }
}

#[test]
fn server_info_names_the_software_and_carries_deployer_variables() {
    let info = ServerInfo {
        software: "my-dev-server/1.2".into(),
        vars: [("deploy.stage".to_owned(), "test".to_owned())].into_iter().collect(),
        ..ServerInfo::default()
    };
    let app = |env: Environ, sr: StartResponse| {
        let get = |k: &str| String::from_utf8_lossy(&env.get(k).unwrap_or_default()).into_owned();
        text(&sr, format!("{} {}", get("SERVER_SOFTWARE"), get("deploy.stage")))
    };
    let server = serve(bind().server_info(info), app);
    let mut c = Client::connect(server.local_addr());
    c.send(&get("/"));
    let r = c.response();
    assert_eq!(r.body, b"my-dev-server/1.2 test");
    assert_eq!(r.header("server").as_deref(), Some("my-dev-server"));
    server.shutdown();
}

#[test]
fn keep_alive_zero_closes_after_each_response() {
    let server = serve(bind().keep_alive(Duration::ZERO), |_: Environ, sr: StartResponse| text(&sr, "one".into()));
    let mut c = Client::connect(server.local_addr());
    c.send(&get("/"));
    let r = c.response();
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert!(c.closed_within(Duration::from_secs(2)));
    server.shutdown();
}

#[test]
fn an_idle_connection_is_closed_after_the_keep_alive_time() {
    let server =
        serve(bind().keep_alive(Duration::from_millis(200)), |_: Environ, sr: StartResponse| text(&sr, "hi".into()));
    let mut c = Client::connect(server.local_addr());
    c.send(&get("/"));
    assert_eq!(c.response().status, 200);
    let t = Instant::now();
    assert!(c.closed_within(Duration::from_secs(3)));
    assert!(t.elapsed() < Duration::from_secs(2), "closed after {:?}", t.elapsed());
    server.shutdown();
}

#[test]
fn http10_keep_alive_is_honoured_when_the_length_is_known() {
    let server = serve(bind(), |env: Environ, sr: StartResponse| text(&sr, env.protocol_str().to_owned()));
    let mut c = Client::connect(server.local_addr());
    for _ in 0..2 {
        c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = c.response();
        assert_eq!(r.body, b"HTTP/1.0");
        assert_eq!(r.header("connection").as_deref(), Some("keep-alive"));
    }
    server.shutdown();
}

#[test]
fn a_large_unread_body_closes_the_connection_after_the_response() {
    let server = serve(bind(), |_: Environ, sr: StartResponse| text(&sr, "not read".into()));
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\nsome of it");
    assert_eq!(c.response().body, b"not read");
    assert!(c.closed_within(Duration::from_secs(5)));
    server.shutdown();
}

#[test]
fn in_2_an_input_kept_past_its_request_fails_and_steals_nothing() {
    // The app keeps the first request's wsgi.input and reads it during the
    // second request: it must fail, and the second body stay intact.
    let kept: Arc<Mutex<Option<Input>>> = Arc::new(Mutex::new(None));
    let app = move |mut env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        if &env.path_info[..] == b"/keep" {
            *kept.lock().unwrap() = Some(std::mem::replace(&mut env.input, Input::empty()));
            return text(&sr, "kept".into());
        }
        let stale = kept.lock().unwrap().take().map(|mut input| input.read_size(5).map(|b| b.to_vec()));
        let own = env.input.read_all()?;
        text(&sr, format!("stale={} own={}", matches!(stale, Some(Err(_))), String::from_utf8_lossy(&own)))
    };
    let server = serve(bind(), app);
    let mut c = Client::connect(server.local_addr());
    c.send(b"POST /keep HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst");
    assert_eq!(c.response().body, b"kept");
    c.send(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsecond");
    assert_eq!(c.response().body, b"stale=true own=second");
    server.shutdown();
}

#[test]
fn shutdown_closes_idle_connections_and_join_returns() {
    let server = serve(bind().keep_alive(Duration::from_secs(60)).threads(2), |_: Environ, sr: StartResponse| {
        text(&sr, "hi".into())
    });
    let addr = server.local_addr();
    let mut c = Client::connect(addr);
    c.send(&get("/"));
    assert_eq!(c.response().status, 200);

    server.shutdown();
    assert!(c.closed_within(Duration::from_secs(2)), "the idle keep-alive connection stays open");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        server.join();
        let _ = tx.send(());
    });
    assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok(), "join() did not return");
    // Nothing accepts any more: a new connection is refused or never served.
    if let Ok(mut s) = TcpStream::connect(addr) {
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let _ = s.write_all(&get("/"));
        let mut buf = [0u8; 1];
        assert!(!matches!(s.read(&mut buf), Ok(1)), "served after shutdown");
    }
}
