//! A real Flask app (`wsgi-server/tests/python/flask_app.py`, hosted by
//! `wsgi-python`) on the simple server, the reference server and the
//! in-process `TestClient`: for each route, the same status, reason,
//! headers (but `Date`, `Server`, `Connection`; `Transfer-Encoding` read as
//! the framing, as `TestClient` reports it) and body bytes.
//!
//! Run: `bash scripts/python-venv.sh` (prints the venv path), then
//! `WSGI_TEST_VENV=$PWD/.venv cargo test -p wsgi-simple-server --features python --test python_flask`.
#![cfg(feature = "python")]
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use wsgi_conformance::client::Conn;
use wsgi_python::{LoadOptions, PythonApp};
use wsgi_spec::driver::Framing;
use wsgi_spec::testing::TestClient;
use wsgi_spec::{ServerInfo, SharedApp};

/// The data file `/file` sends.
const FILE_DATA: &[u8] = b"a file sent by Flask's send_file\n";

fn venv() -> PathBuf {
    let Some(dir) = std::env::var_os("WSGI_TEST_VENV") else {
        panic!(
            "WSGI_TEST_VENV is not set: run `bash scripts/python-venv.sh` (it prints the venv path) and \
             `export WSGI_TEST_VENV=<that path>` before `cargo test -p wsgi-simple-server --features python`"
        );
    };
    let dir = PathBuf::from(dir);
    assert!(dir.join("bin/python").exists(), "WSGI_TEST_VENV={} is not a virtualenv", dir.display());
    dir
}

/// The Flask app, loaded once per process (one embedded interpreter).
fn flask() -> SharedApp {
    static APP: OnceLock<SharedApp> = OnceLock::new();
    Arc::clone(APP.get_or_init(|| {
        let data = std::env::temp_dir().join(format!("wsgi-simple-server-flask-{}.txt", std::process::id()));
        std::fs::write(&data, FILE_DATA).unwrap();
        let opts = LoadOptions {
            pythonpath: vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../wsgi-server/tests/python")],
            virtualenv: Some(venv()),
            env: vec![("TESTS_DATA_FILE".to_owned(), data.display().to_string())],
            ..LoadOptions::default()
        };
        Arc::new(PythonApp::load("flask_app:app", &opts).unwrap())
    }))
}

/// What every server must agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    status: u16,
    reason: Vec<u8>,
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

/// A request: method, target, JSON body (if any).
#[derive(Clone, Copy)]
struct Req {
    method: &'static str,
    target: &'static str,
    json: Option<&'static str>,
}

fn in_process(app: SharedApp, req: Req) -> Observed {
    let client = TestClient::from_shared(app).server_info(ServerInfo { multithread: true, ..ServerInfo::default() });
    let mut builder = http::Request::builder().method(req.method).uri(req.target).header("host", "localhost");
    let body = req.json.unwrap_or("");
    if req.json.is_some() {
        builder = builder.header("content-type", "application/json").header("content-length", body.len());
    }
    let resp = client.request(builder.body(Bytes::from_static(body.as_bytes())).unwrap());
    assert!(!resp.aborted, "TestClient: aborted: {:?}", resp.error);
    let headers = resp.headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec())).collect();
    Observed {
        status: resp.status.as_u16(),
        reason: resp.reason.to_vec(),
        headers: normalise(headers),
        framing: resp.framing,
        body: resp.body.to_vec(),
    }
}

/// The request over a socket with `Connection: close`, read with the
/// conformance kit's raw HTTP/1 client (which de-chunks bodies).
fn over_the_wire(addr: SocketAddr, req: Req) -> Observed {
    let mut conn = Conn::connect(addr).unwrap();
    let mut raw = format!("{} {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n", req.method, req.target);
    if let Some(json) = req.json {
        raw.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", json.len()));
    }
    raw.push_str("\r\n");
    raw.push_str(req.json.unwrap_or(""));
    assert!(conn.send(raw.as_bytes()));
    let resp = conn.read_response(Duration::from_secs(20), false).expect("a response");
    assert!(resp.complete, "the body ended as its framing says: {}", resp.describe());
    let framing = resp.spec_framing();
    assert!(framing.is_some(), "neither chunked nor Content-Length: {}", resp.describe());
    let headers = resp.headers.iter().map(|(k, v)| (String::from_utf8(k.clone()).unwrap(), v.clone())).collect();
    Observed { status: resp.status, reason: resp.reason, headers: normalise(headers), framing, body: resp.body }
}

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

const ROUTES: &[(Req, u16)] = &[
    (Req { method: "GET", target: "/api/hello", json: None }, 200),
    (Req { method: "POST", target: "/api/echo", json: Some(r#"{"a": [1, 2], "b": "caf\u00e9"}"#) }, 201),
    (Req { method: "GET", target: "/stream_plain?n=5&prefix=row", json: None }, 200),
    (Req { method: "GET", target: "/stream?n=3", json: None }, 200),
    (Req { method: "GET", target: "/file", json: None }, 200),
    (Req { method: "GET", target: "/forbidden", json: None }, 403),
    (Req { method: "GET", target: "/boom", json: None }, 500),
    (Req { method: "GET", target: "/no/such/route", json: None }, 404),
];

#[test]
fn flask_routes_are_the_same_on_every_server() {
    let app = flask();
    let reference = Reference::start(Arc::clone(&app));
    let simple =
        wsgi_simple_server::SimpleServer::bind("127.0.0.1:0").unwrap().threads(4).serve(Arc::clone(&app)).unwrap();
    for &(req, status) in ROUTES {
        let expected = in_process(Arc::clone(&app), req);
        assert_eq!(expected.status, status, "{} {}: TestClient {expected:?}", req.method, req.target);
        for (server, addr) in [("wsgi-simple-server", simple.local_addr()), ("wsgi-server", reference.addr)] {
            let got = over_the_wire(addr, req);
            assert_eq!(got, expected, "{} {}: {server} differs from TestClient", req.method, req.target);
        }
    }
    simple.shutdown();
    simple.join();
}

#[test]
fn flask_sees_the_simple_servers_environ() {
    let simple = wsgi_simple_server::SimpleServer::bind("127.0.0.1:0").unwrap().threads(2).serve(flask()).unwrap();
    let got = over_the_wire(simple.local_addr(), Req { method: "GET", target: "/api/hello", json: None });
    simple.shutdown();
    assert_eq!(got.status, 200);
    let text = String::from_utf8(got.body).unwrap();
    assert!(text.contains("\"multithread\":true") || text.contains("\"multithread\": true"), "{text}");
    assert!(text.contains("flask"), "{text}");
}
