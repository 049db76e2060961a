//! Every middleware of `wsgi-middleware` over real sockets.
//!
//! - `python`: the real `wsgi-server` command serving a Flask app
//!   (`tests/python/static_site/site_app.py`) with `--static-map`,
//!   `--compress`, `--request-id`, `--health-path`, `--metrics-path` and its
//!   trusted-proxy handling (`--forwarded-allow-ips`), alone and all in one
//!   stack; the static files are made in a temporary directory at test start
//!   (with a `secret` one level above the served root and symlinks pointing
//!   out of it), and a list of path-traversal tricks is sent as raw request
//!   targets.
//! - `library`: the middlewares the command has no flag for (`Mount`,
//!   `CatchPanic`, `BodyLimit`, `Timeout`, and the `ProxyHeaders` middleware)
//!   around Rust apps served by [`wsgi_server::Server`] on 127.0.0.1.
//!
//! Run: `bash scripts/python-venv.sh`, then
//! `WSGI_TEST_VENV=$PWD/.venv cargo test -p wsgi-server --features python,tls --test middleware`.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;

use support::{connect, read_response, Resp};

/// The middlewares this file exercises through the library.
mod mw {
    pub(crate) use wsgi_middleware::body_limit::BodyLimitLayer;
    pub(crate) use wsgi_middleware::catch_panic::CatchPanicLayer;
    pub(crate) use wsgi_middleware::mount::MountLayer;
    pub(crate) use wsgi_middleware::proxy_headers::ProxyHeadersLayer;
    pub(crate) use wsgi_middleware::timeout::TimeoutLayer;
}

// ---------------------------------------------------------------------------
// Raw HTTP/1.1 helpers shared by both halves.
// ---------------------------------------------------------------------------

/// `METHOD TARGET HTTP/1.1` with `Host` and `Connection: close`, the given
/// headers and body; the target goes out byte for byte.
fn raw_request(method: &str, target: &[u8], headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut raw = format!("{method} ").into_bytes();
    raw.extend_from_slice(target);
    raw.extend_from_slice(b" HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n");
    for (k, v) in headers {
        raw.extend_from_slice(k.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(v);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(body);
    raw
}

/// Send `raw` on a new connection; one response, and whatever followed it
/// until the server closed.
fn send(addr: SocketAddr, raw: &[u8], head: bool) -> (Resp, Vec<u8>) {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    let resp = read_response(&mut s, head)
        .unwrap_or_else(|| panic!("no complete response to {:?}", String::from_utf8_lossy(raw)));
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    (resp, rest)
}

fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    let headers: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    send(addr, &raw_request(method, target.as_bytes(), &headers, b""), method == "HEAD").0
}

fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Resp {
    request(addr, "GET", target, headers)
}

fn text(resp: &Resp) -> String {
    String::from_utf8_lossy(&resp.body).into_owned()
}

// ---------------------------------------------------------------------------
// The library: Rust apps inside the middlewares the command has no flag for.
// ---------------------------------------------------------------------------

mod library {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue, StatusCode};
    use tower_layer::Layer;
    use wsgi_server::proxy::ForwardedAllow;
    use wsgi_spec::{AppError, Application, Body, Environ, StartResponse};

    use super::support::{connect, exchange, read_response, start};
    use super::{get, mw, raw_request, request, send, text};

    fn plain(sr: &StartResponse, status: StatusCode, body: String) -> Result<Body, AppError> {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.insert("content-length", HeaderValue::from(body.len()));
        sr.start(status, headers)?;
        Ok(Body::full(body))
    }

    /// An app that names itself and shows SCRIPT_NAME | PATH_INFO ? QUERY.
    fn named(name: &'static str) -> impl Application {
        move |env: Environ, sr: StartResponse| {
            let line = format!(
                "{name} {}|{}?{}",
                String::from_utf8_lossy(&env.script_name),
                String::from_utf8_lossy(&env.path_info),
                String::from_utf8_lossy(&env.query_string)
            );
            plain(&sr, StatusCode::OK, line)
        }
    }

    #[test]
    fn mount_moves_the_prefix_to_script_name() {
        let app = mw::MountLayer::new()
            .mount("/api", named("api"))
            .unwrap()
            .mount("/api/v2", named("v2"))
            .unwrap()
            .mount("/admin/", named("admin"))
            .unwrap()
            .layer(named("site"));
        let srv = start(app, |s| s.threads(2));
        let cases = [
            ("/api/users", "api /api|/users?"),
            ("/api/users?page=2", "api /api|/users?page=2"),
            ("/api", "api /api|?"),
            ("/api/", "api /api|/?"),
            ("/api/v2/users", "v2 /api/v2|/users?"),
            ("/api/v2", "v2 /api/v2|?"),
            ("/api/v3/users", "api /api|/v3/users?"),
            ("/admin/login", "admin /admin|/login?"),
            ("/apiary", "site |/apiary?"),
            ("/", "site |/?"),
            ("/API/users", "site |/API/users?"),
            // Prefixes are compared with the decoded path.
            ("/%61pi/users", "api /api|/users?"),
            ("/api%2Fusers", "api /api|/users?"),
        ];
        for (target, want) in cases {
            let resp = get(srv.addr, target, &[]);
            assert_eq!(resp.status, 200, "{target}");
            assert_eq!(text(&resp), want, "{target}");
        }
        srv.stop();
    }

    /// A body that yields `first` (when not empty) and then panics.
    struct PanicBody {
        first: Option<&'static str>,
    }

    impl wsgi_spec::BodyIter for PanicBody {
        fn next_chunk(&mut self) -> Option<Result<Bytes, AppError>> {
            match self.first.take() {
                Some(data) => Some(Ok(Bytes::from_static(data.as_bytes()))),
                None => panic!("the body broke (marker b0d7)"),
            }
        }
    }

    fn fragile(env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        match &env.path_info[..] {
            b"/panic" => panic!("the handler broke (marker c4a1)"),
            b"/error" => Err("the handler failed (marker e7f2)".into()),
            b"/body-panic" => {
                sr.start(StatusCode::OK, HeaderMap::new())?;
                Ok(Body::from_body_iter(PanicBody { first: None }))
            }
            b"/late-panic" => {
                sr.start(StatusCode::OK, HeaderMap::new())?;
                Ok(Body::from_body_iter(PanicBody { first: Some("partial data") }))
            }
            _ => plain(&sr, StatusCode::OK, "fine".to_owned()),
        }
    }

    #[test]
    fn catch_panic_answers_500_and_the_server_keeps_serving() {
        let srv = start(mw::CatchPanicLayer::new().layer(fragile), |s| s.threads(2));
        for target in ["/panic", "/error", "/body-panic"] {
            let resp = get(srv.addr, target, &[]);
            assert_eq!(resp.status, 500, "{target}");
            assert_eq!(text(&resp), "Internal Server Error\n", "{target}");
            assert_eq!(resp.header("cache-control"), Some("no-store"), "{target}");
            assert_eq!(resp.header("content-length"), Some("22"), "{target}");
            assert!(!text(&resp).contains("marker"), "{target}: the plain page shows no internals");
            assert_eq!(text(&get(srv.addr, "/ok", &[])), "fine", "after {target}");
        }
        // After the first body byte the response cannot change: the server
        // aborts it, so the chunked body never gets its last chunk.
        let raw = exchange(srv.addr, b"GET /late-panic HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let raw = String::from_utf8_lossy(&raw);
        assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
        assert!(raw.contains("partial data"), "{raw}");
        assert!(!raw.ends_with("0\r\n\r\n"), "an aborted response must not look complete: {raw:?}");
        assert_eq!(text(&get(srv.addr, "/ok", &[])), "fine");
        srv.stop();

        let srv = start(mw::CatchPanicLayer::new().debug(true).layer(fragile), |s| s.threads(2));
        let resp = get(srv.addr, "/panic", &[]);
        assert_eq!(resp.status, 500);
        assert!(text(&resp).contains("marker c4a1"), "{}", text(&resp));
        let resp = get(srv.addr, "/error", &[]);
        assert!(text(&resp).contains("marker e7f2"), "{}", text(&resp));
        srv.stop();
    }

    #[test]
    fn body_limit_answers_413_for_long_and_chunked_bodies() {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let upload = move |mut env: Environ, sr: StartResponse| {
            seen.fetch_add(1, Ordering::SeqCst);
            let data = env.input.read_all()?;
            plain(&sr, StatusCode::OK, format!("got {}", data.len()))
        };
        let srv = start(mw::BodyLimitLayer::new(1024).layer(upload), |s| s.threads(2));
        let post = |headers: &[(&str, &[u8])], body: &[u8]| {
            send(srv.addr, &raw_request("POST", b"/up", headers, body), false).0
        };

        let resp = post(&[("Content-Length", b"100")], &[b'a'; 100]);
        assert_eq!((resp.status, text(&resp)), (200, "got 100".to_owned()));
        let resp = post(&[("Content-Length", b"1024")], &[b'a'; 1024]);
        assert_eq!((resp.status, text(&resp)), (200, "got 1024".to_owned()));
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        // Too long by its Content-Length: 413 without calling the app.
        let resp = post(&[("Content-Length", b"2048")], &[b'a'; 2048]);
        assert_eq!(resp.status, 413);
        assert_eq!(text(&resp), "Payload Too Large\n");
        assert_eq!(calls.load(Ordering::SeqCst), 2, "the app must not be called");

        // With Expect: 100-continue the body is never asked for.
        let mut s = connect(srv.addr);
        s.write_all(&raw_request("POST", b"/up", &[("Content-Length", b"1000000"), ("Expect", b"100-continue")], b""))
            .unwrap();
        let resp = read_response(&mut s, false).unwrap();
        assert_eq!(resp.status, 413, "the first answer must be the 413, not 100 Continue");
        drop(s);
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        // Chunked: the read that crosses the limit fails, the answer is 413.
        let chunked = |n_chunks: usize| {
            let mut body = Vec::new();
            for _ in 0..n_chunks {
                body.extend_from_slice(b"200\r\n");
                body.extend_from_slice(&[b'z'; 512]);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"0\r\n\r\n");
            post(&[("Transfer-Encoding", b"chunked")], &body)
        };
        let resp = chunked(4);
        assert_eq!(resp.status, 413, "{}", text(&resp));
        assert_eq!(text(&resp), "Payload Too Large\n");
        let resp = chunked(2);
        assert_eq!((resp.status, text(&resp)), (200, "got 1024".to_owned()));
        srv.stop();
    }

    #[test]
    fn timeout_answers_504_and_the_server_keeps_serving() {
        let app = |env: Environ, sr: StartResponse| {
            if &env.path_info[..] == b"/slow" {
                std::thread::sleep(Duration::from_millis(1500));
            }
            plain(&sr, StatusCode::OK, "on time".to_owned())
        };
        let srv = start(mw::TimeoutLayer::new(Duration::from_millis(200)).layer(app), |s| s.threads(1));
        let t0 = Instant::now();
        let resp = get(srv.addr, "/slow", &[]);
        let took = t0.elapsed();
        assert_eq!(resp.status, 504);
        assert_eq!(text(&resp), "Gateway Timeout\n");
        assert_eq!(resp.header("cache-control"), Some("no-store"));
        assert!(took >= Duration::from_millis(190) && took < Duration::from_millis(1200), "{took:?}");
        // The app thread is still asleep; the server's one app thread is free.
        let t0 = Instant::now();
        let resp = get(srv.addr, "/fast", &[]);
        assert_eq!((resp.status, text(&resp)), (200, "on time".to_owned()));
        assert!(t0.elapsed() < Duration::from_millis(1000), "{:?}", t0.elapsed());
        srv.stop();
    }

    /// What the app saw of the client: REMOTE_ADDR scheme HTTP_HOST SERVER_NAME:SERVER_PORT.
    fn client_view(env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        let host = env.headers.get("host").map(|h| h.to_str().unwrap_or("?").to_owned()).unwrap_or_default();
        let line = format!(
            "{} {} {} {}:{}",
            env.remote_addr.map(|a| a.to_string()).unwrap_or_default(),
            env.url_scheme.as_str(),
            host,
            env.server_name,
            env.server_port
        );
        plain(&sr, StatusCode::OK, line)
    }

    #[test]
    fn proxy_headers_middleware_over_the_wire() {
        let forwarded = [
            ("X-Forwarded-For", "6.6.6.6, 203.0.113.7"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "shop.example"),
        ];
        // The server itself trusts nobody: only the middleware applies them.
        let layer = mw::ProxyHeadersLayer::new().x_host(1);
        let srv = start(layer.layer(client_view), |s| s.forwarded_allow_ips(ForwardedAllow::none()));
        assert_eq!(text(&get(srv.addr, "/", &forwarded)), "203.0.113.7 https shop.example shop.example:443");
        let rfc = [("Forwarded", "for=198.51.100.1;proto=https;host=a.example")];
        assert_eq!(text(&get(srv.addr, "/", &rfc)), "127.0.0.1 http test.local test.local:80", "forwarded(0) is off");
        assert_eq!(text(&get(srv.addr, "/", &[])), "127.0.0.1 http test.local test.local:80");
        srv.stop();

        let layer = mw::ProxyHeadersLayer::new().forwarded(1);
        let srv = start(layer.layer(client_view), |s| s.forwarded_allow_ips(ForwardedAllow::none()));
        assert_eq!(text(&get(srv.addr, "/", &rfc)), "198.51.100.1 https a.example a.example:443");
        srv.stop();

        // A peer that is not trusted changes nothing.
        let layer = mw::ProxyHeadersLayer::new().x_host(1).trust("10.0.0.1").unwrap();
        let srv = start(layer.layer(client_view), |s| s.forwarded_allow_ips(ForwardedAllow::none()));
        assert_eq!(text(&get(srv.addr, "/", &forwarded)), "127.0.0.1 http test.local test.local:80");
        srv.stop();
    }

    #[test]
    fn the_server_trusts_forwarded_headers_from_loopback_by_default() {
        let srv = start(client_view, |s| s);
        let fwd = [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "ex.org")];
        assert_eq!(text(&get(srv.addr, "/", &fwd)), "203.0.113.9 https ex.org ex.org:443");
        srv.stop();
        let srv = start(client_view, |s| s.forwarded_allow_ips("10.0.0.1".parse().unwrap()));
        assert_eq!(text(&request(srv.addr, "GET", "/", &fwd)), "127.0.0.1 http test.local test.local:80");
        srv.stop();
    }
}

// ---------------------------------------------------------------------------
// The `wsgi-server` command around a Flask app.
// ---------------------------------------------------------------------------

#[cfg(feature = "python")]
mod python {
    use std::io::Write;
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use super::support::python::{temp_dir, venv, STARTUP};
    use super::support::{read_response, Resp};
    use super::{get, raw_request, request, send, text};

    /// What every file outside the served root holds.
    const SECRET: &str = "TOP-SECRET";

    /// Deterministic bytes (xorshift).
    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    const BLOB_LEN: usize = 1 << 20;

    /// The static files: `base/root` is served; `base/secret` and
    /// `base/root-evil/secret` are not, nor what symlinks point to there.
    struct Site {
        base: PathBuf,
        root: PathBuf,
    }

    impl Site {
        fn new() -> Site {
            let base = temp_dir("middleware-site");
            let root = base.join("root");
            for d in ["css", "sub"] {
                std::fs::create_dir_all(root.join(d)).unwrap();
            }
            std::fs::create_dir_all(base.join("root-evil")).unwrap();
            let write = |rel: &str, data: &[u8]| std::fs::write(root.join(rel), data).unwrap();
            std::fs::write(base.join("secret"), format!("{SECRET} one level above the root\n")).unwrap();
            std::fs::write(base.join("root-evil/secret"), format!("{SECRET} in a sibling of the root\n")).unwrap();
            write("hello.txt", b"hello world");
            write("empty.txt", b"");
            write("index.html", b"<!doctype html><p>hi</p>\n");
            write("css/app.css", b"body { color: red }\n");
            write("css/app.css.gz", b"GZIP-VARIANT");
            write("css/app.css.br", b"BROTLI-VARIANT");
            write("css/app.0123456789ab.css", b"body{}");
            write("app.js", b"console.log('hi');\n");
            write("data.json", format!("[{}0]", "1234567890,".repeat(400)).as_bytes());
            write("img.png", b"\x89PNG\r\n\x1a\n0000");
            write("logo.svg", b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>");
            write("blob.bin", &pseudo_random(BLOB_LEN, 0xb10b));
            write("sub/nested.txt", b"nested");
            write(".env", format!("{SECRET}=hidden file\n").as_bytes());
            let link = |target: &str, name: &str| std::os::unix::fs::symlink(target, root.join(name)).unwrap();
            link("hello.txt", "link-in");
            link("../secret", "link-out");
            link("..", "dir-out");
            link("../root-evil", "sib");
            Site { base, root }
        }

        fn map(&self) -> String {
            format!("/static={}", self.root.display())
        }
    }

    impl Drop for Site {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }

    /// `wsgi-server site_app:app` as a child process.
    struct Server {
        child: Child,
        addr: SocketAddr,
        dir: PathBuf,
    }

    impl Server {
        fn start(extra: &[&str]) -> Server {
            let dir = temp_dir("middleware-server");
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let stderr = std::fs::File::create(dir.join("stderr.log")).unwrap();
            let app_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/static_site");
            let child = Command::new(env!("CARGO_BIN_EXE_wsgi-server"))
                .arg("site_app:app")
                .args(["--bind", &addr.to_string()])
                .arg("--pythonpath")
                .arg(app_dir)
                .args(extra)
                .env("VIRTUAL_ENV", venv())
                .env_remove("PYTHONPATH")
                .env_remove("PYTHONHOME")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap();
            let mut server = Server { child, addr, dir };
            let deadline = Instant::now() + STARTUP;
            loop {
                if let Some(status) = server.child.try_wait().unwrap() {
                    panic!("wsgi-server {extra:?} exited with {status}; its stderr:\n{}", server.log());
                }
                if TcpStream::connect_timeout(&server.addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                assert!(Instant::now() < deadline, "wsgi-server did not listen; stderr:\n{}", server.log());
                std::thread::sleep(Duration::from_millis(20));
            }
            // Listening is not loaded: wait for the app itself.
            while get(server.addr, "/count", &[]).status != 200 {
                assert!(Instant::now() < deadline, "the app did not answer; stderr:\n{}", server.log());
                std::thread::sleep(Duration::from_millis(50));
            }
            server
        }

        fn log(&self) -> String {
            String::from_utf8_lossy(&std::fs::read(self.dir.join("stderr.log")).unwrap_or_default()).into_owned()
        }

        fn get(&self, target: &str, headers: &[(&str, &str)]) -> Resp {
            get(self.addr, target, headers)
        }

        /// Still running, and nothing in the error log that should not be.
        fn assert_healthy(&mut self) {
            assert!(self.child.try_wait().unwrap().is_none(), "the server exited; stderr:\n{}", self.log());
            let log = self.log();
            for bad in ["panicked", "Traceback", "[ERROR]", "[CRITICAL]"] {
                assert!(!log.contains(bad), "the error log has {bad:?}:\n{log}");
            }
        }

        /// The app's own request counter.
        fn app_count(&self) -> u64 {
            let resp = self.get("/count", &[]);
            assert_eq!(resp.status, 200);
            json_field(&text(&resp), "count").unwrap().parse().unwrap()
        }

        fn signal(&self, sig: libc::c_int) {
            let pid = libc::pid_t::try_from(self.child.id()).unwrap();
            // SAFETY: kill(2) on our own child process.
            assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// A top-level-or-nested `"key": value` of a JSON text: the string (no
    /// escapes expected), the number, or `None` for null / absent.
    fn json_field(json: &str, key: &str) -> Option<String> {
        let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
        let rest = json[at..].trim_start();
        if let Some(s) = rest.strip_prefix('"') {
            return Some(s[..s.find('"')?].to_owned());
        }
        if rest.starts_with("null") {
            return None;
        }
        let end = rest.find([',', '}', ']']).unwrap_or(rest.len());
        Some(rest[..end].trim().to_owned())
    }

    /// gzip-decode with the venv's Python (no inflate crate in this test).
    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut child = Command::new(venv().join("bin/python"))
            .args(["-c", "import gzip, sys; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(data).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "not gzip: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// Every value of a header (they may be repeated).
    fn header_values<'a>(resp: &'a Resp, name: &str) -> Vec<&'a str> {
        resp.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    fn is_request_id(v: &str) -> bool {
        v.len() == 32 && v.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    fn has_vary(resp: &Resp, what: &str) -> bool {
        header_values(resp, "vary").iter().any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(what)))
    }

    // -----------------------------------------------------------------------
    // Static
    // -----------------------------------------------------------------------

    #[test]
    fn static_files_over_the_wire() {
        let site = Site::new();
        let mut srv = Server::start(&["--static-map", &site.map()]);
        let addr = srv.addr;

        let resp = srv.get("/static/hello.txt", &[]);
        assert_eq!(resp.status, 200);
        assert_eq!(text(&resp), "hello world");
        assert_eq!(resp.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(resp.header("content-length"), Some("11"));
        assert_eq!(resp.header("cache-control"), Some("public, max-age=60"));
        assert_eq!(resp.header("accept-ranges"), Some("bytes"));
        let etag = resp.header("etag").unwrap().to_owned();
        let last_modified = resp.header("last-modified").unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        assert!(last_modified.ends_with(" GMT"), "{last_modified}");

        for (path, ct) in [
            ("/static/css/app.0123456789ab.css", "text/css; charset=utf-8"),
            ("/static/app.js", "text/javascript; charset=utf-8"),
            ("/static/data.json", "application/json"),
            ("/static/index.html", "text/html; charset=utf-8"),
            ("/static/img.png", "image/png"),
            ("/static/logo.svg", "image/svg+xml"),
            ("/static/blob.bin", "application/octet-stream"),
            ("/static/sub/nested.txt", "text/plain; charset=utf-8"),
        ] {
            let resp = srv.get(path, &[]);
            assert_eq!(resp.status, 200, "{path}");
            assert_eq!(resp.header("content-type"), Some(ct), "{path}");
            let file = site.root.join(path.trim_start_matches("/static/"));
            assert_eq!(resp.body, std::fs::read(file).unwrap(), "{path}");
        }

        // Conditional requests.
        let resp = srv.get("/static/hello.txt", &[("If-None-Match", &etag)]);
        assert_eq!(resp.status, 304);
        assert!(resp.body.is_empty());
        assert_eq!(resp.header("etag"), Some(etag.as_str()));
        assert_eq!(srv.get("/static/hello.txt", &[("If-None-Match", &format!("\"x\", W/{etag}"))]).status, 304);
        assert_eq!(srv.get("/static/hello.txt", &[("If-None-Match", "\"other\"")]).status, 200);
        assert_eq!(srv.get("/static/hello.txt", &[("If-Modified-Since", &last_modified)]).status, 304);
        let old = "Thu, 01 Jan 1970 00:00:00 GMT";
        assert_eq!(srv.get("/static/hello.txt", &[("If-Modified-Since", old)]).status, 200);
        let both = [("If-None-Match", "\"other\""), ("If-Modified-Since", last_modified.as_str())];
        assert_eq!(srv.get("/static/hello.txt", &both).status, 200, "If-None-Match wins");

        // Ranges.
        let resp = srv.get("/static/hello.txt", &[("Range", "bytes=0-4")]);
        assert_eq!(resp.status, 206);
        assert_eq!(text(&resp), "hello");
        assert_eq!(resp.header("content-range"), Some("bytes 0-4/11"));
        assert_eq!(resp.header("content-length"), Some("5"));
        assert_eq!(text(&srv.get("/static/hello.txt", &[("Range", "bytes=-5")])), "world");
        let resp = srv.get("/static/blob.bin", &[("Range", "bytes=500000-500099")]);
        assert_eq!(resp.status, 206);
        assert_eq!(resp.body, pseudo_random(BLOB_LEN, 0xb10b)[500_000..500_100]);
        assert_eq!(resp.header("content-range"), Some(format!("bytes 500000-500099/{BLOB_LEN}").as_str()));
        let resp = srv.get("/static/hello.txt", &[("Range", "bytes=100-")]);
        assert_eq!(resp.status, 416);
        assert_eq!(resp.header("content-range"), Some("bytes */11"));
        let resp = srv.get("/static/hello.txt", &[("Range", "bytes=0-1,3-4")]);
        assert_eq!((resp.status, text(&resp)), (200, "hello world".to_owned()), "multiple ranges: the whole file");
        let resp = srv.get("/static/hello.txt", &[("Range", "bytes=0-4"), ("If-Range", "\"stale\"")]);
        assert_eq!(resp.status, 200, "a stale If-Range gets the whole file");

        // HEAD: the head of a GET, no body on the wire.
        let (resp, rest) = send(addr, &raw_request("HEAD", b"/static/hello.txt", &[], b""), true);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-length"), Some("11"));
        assert_eq!(resp.header("etag"), Some(etag.as_str()));
        assert!(rest.is_empty(), "HEAD sent a body: {rest:?}");

        // Precompressed siblings by Accept-Encoding.
        for (ae, body, coding) in [
            ("gzip", "GZIP-VARIANT", Some("gzip")),
            ("br", "BROTLI-VARIANT", Some("br")),
            ("gzip, br", "BROTLI-VARIANT", Some("br")),
            ("br;q=0.5, gzip;q=1", "GZIP-VARIANT", Some("gzip")),
            ("br;q=0, gzip", "GZIP-VARIANT", Some("gzip")),
            ("identity", "body { color: red }\n", None),
            ("", "body { color: red }\n", None),
        ] {
            let headers: &[(&str, &str)] = if ae.is_empty() { &[] } else { &[("Accept-Encoding", ae)] };
            let resp = srv.get("/static/css/app.css", headers);
            assert_eq!(resp.status, 200, "{ae}");
            assert_eq!(text(&resp), body, "{ae}");
            assert_eq!(resp.header("content-encoding"), coding, "{ae}");
            assert_eq!(resp.header("content-type"), Some("text/css; charset=utf-8"), "{ae}");
            assert!(has_vary(&resp, "accept-encoding"), "{ae}: {:?}", resp.headers);
            assert_eq!(resp.header("content-length"), Some(body.len().to_string().as_str()), "{ae}");
        }
        let br = srv.get("/static/css/app.css", &[("Accept-Encoding", "br")]);
        let br_etag = br.header("etag").unwrap();
        assert_ne!(Some(br_etag), srv.get("/static/css/app.css", &[]).header("etag"), "each variant its own ETag");
        let resp = srv.get("/static/css/app.css", &[("Accept-Encoding", "br"), ("If-None-Match", br_etag)]);
        assert_eq!(resp.status, 304);
        let resp = srv.get("/static/css/app.css", &[("Accept-Encoding", "br"), ("Range", "bytes=0-3")]);
        assert_eq!((resp.status, text(&resp)), (206, "body".to_owned()), "a range gets the identity file");
        assert_eq!(resp.header("content-encoding"), None);
        assert!(!has_vary(&srv.get("/static/hello.txt", &[]), "accept-encoding"), "no sibling, no Vary");

        // Caching by name.
        let resp = srv.get("/static/css/app.0123456789ab.css", &[]);
        assert_eq!(resp.header("cache-control"), Some("public, max-age=31536000, immutable"));

        // Missing, directories, methods.
        for path in ["/static/nope.txt", "/static/sub", "/static/sub/", "/static", "/static/", "/static/css/nope.css"] {
            let resp = srv.get(path, &[]);
            assert_eq!(resp.status, 404, "{path}");
            assert!(!text(&resp).contains("app saw"), "{path} reached the app");
        }
        for method in ["POST", "PUT", "DELETE"] {
            let resp = request(addr, method, "/static/hello.txt", &[("Content-Length", "0")]);
            assert_eq!(resp.status, 405, "{method}");
            assert_eq!(resp.header("allow"), Some("GET, HEAD"));
        }

        // A symlink inside the root is followed.
        assert_eq!(text(&srv.get("/static/link-in", &[])), "hello world");

        // Everything else reaches the app.
        for path in ["/", "/other", "/staticfoo", "/static-files/x", "/STATIC/hello.txt"] {
            let resp = srv.get(path, &[]);
            assert_eq!(resp.status, 200, "{path}");
            assert_eq!(text(&resp), format!("app saw {path}\n"), "{path}");
        }

        // Several files on one keep-alive connection (file bodies and
        // sendfile must leave the connection usable).
        let mut s = super::connect(addr);
        let blob = pseudo_random(BLOB_LEN, 0xb10b);
        for path in ["/static/hello.txt", "/static/blob.bin", "/static/empty.txt", "/static/hello.txt", "/"] {
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let resp = read_response(&mut s, false).unwrap();
            assert_eq!(resp.status, 200, "{path}");
            match path {
                "/static/blob.bin" => assert!(resp.body == blob, "the 1 MiB file arrived changed"),
                "/static/empty.txt" => assert!(resp.body.is_empty()),
                "/" => assert_eq!(text(&resp), "app saw /\n"),
                _ => assert_eq!(text(&resp), "hello world"),
            }
        }
        drop(s);
        srv.assert_healthy();
    }

    /// Request targets that try to leave the served directory, as raw bytes
    /// (no client normalises them).
    fn traversal_targets(site: &Site, host: &str) -> Vec<Vec<u8>> {
        let mut list: Vec<Vec<u8>> = [
            "/static/../secret",
            "/static/../../../../../../etc/passwd",
            "/static/%2e%2e/secret",
            "/static/%2E%2E/secret",
            "/static/.%2e/secret",
            "/static/%2e./secret",
            "/static/%252e%252e/secret",
            "/static/%252e%252e%252fsecret",
            "/static/..%2fsecret",
            "/static/..%2Fsecret",
            "/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
            "/static/..%5csecret",
            "/static/..%5c..%5cetc%5cpasswd",
            "/static/%2e%2e%5csecret",
            "/static/..%255csecret",
            "/static/%c0%ae%c0%ae/secret",
            "/static/%c0%ae%c0%ae%c0%afsecret",
            "/static/..%c0%afsecret",
            "/static/%e0%80%ae%e0%80%ae/secret",
            "/static/%c0%2e%c0%2e/secret",
            "/static/%u002e%u002e/secret",
            "/static/%ef%bc%8e%ef%bc%8e/secret",
            "/static/%00",
            "/static/..%00/secret",
            "/static/hello.txt%00.png",
            "/static//etc/passwd",
            "/static/%2fetc%2fpasswd",
            "/static/./../secret",
            "/static/sub/../../secret",
            "/static/hello.txt/../../secret",
            "/static/..;/secret",
            "/static/.../secret",
            "/static/..",
            "/static/../",
            "/static/.env",
            "/static/hello.txt.",
            "/static/hello.txt%20",
            "/static/hello.txt::$DATA",
            "/static/C:%5cWindows%5cwin.ini",
            "/static/%0d%0aSet-Cookie:%20x=1",
            "/%73tatic/../secret",
            "/static/link-out",
            "/static/dir-out/secret",
            "/static/dir-out/root-evil/secret",
            "/static/sib/secret",
        ]
        .iter()
        .map(|t| t.as_bytes().to_vec())
        .collect();
        list.push(format!("/static/{}/secret", site.base.display()).into_bytes());
        list.push(format!("/static/{}", site.base.join("secret").display()).into_bytes());
        list.push(format!("http://{host}/static/../secret").into_bytes());
        list.push(b"/static/..\\secret".to_vec());
        list.push(b"/static/\\..\\..\\secret".to_vec());
        list.push(b"/static/\xc0\xae\xc0\xae/secret".to_vec());
        list.push(b"/static/\xff".to_vec());
        list.push([b"/static/".as_slice(), &b"../".repeat(50), b"secret"].concat());
        list
    }

    #[test]
    fn path_traversal_is_refused_over_the_wire() {
        let site = Site::new();
        let mut srv = Server::start(&["--static-map", &site.map(), "--threads", "2"]);
        let targets = traversal_targets(&site, &srv.addr.to_string());
        assert!(targets.len() >= 20);
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        for target in &targets {
            let shown = String::from_utf8_lossy(target);
            for method in ["GET", "HEAD"] {
                let (resp, rest) = send(srv.addr, &raw_request(method, target, &[], b""), method == "HEAD");
                assert!(
                    resp.status == 404 || resp.status == 400,
                    "{method} {shown}: {} {:?}",
                    resp.status,
                    text(&resp)
                );
                let body = [resp.body.as_slice(), &rest].concat();
                let body = String::from_utf8_lossy(&body);
                assert!(!body.contains(SECRET), "{method} {shown} leaked a file outside the root: {body}");
                assert!(!body.contains("root:x:0:0") && (passwd.is_empty() || !body.contains(&passwd)), "{shown}");
                assert!(!body.contains("app saw"), "{method} {shown} reached the app");
                assert!(resp.header("set-cookie").is_none(), "{shown}: header injection");
            }
        }
        // Still serving, files and app alike.
        assert_eq!(text(&srv.get("/static/hello.txt", &[])), "hello world");
        assert_eq!(text(&srv.get("/", &[])), "app saw /\n");
        srv.assert_healthy();
    }

    // -----------------------------------------------------------------------
    // Compression
    // -----------------------------------------------------------------------

    #[test]
    fn compression_over_the_wire() {
        let site = Site::new();
        for threads in ["1", "4"] {
            let mut srv = Server::start(&["--compress", "--static-map", &site.map(), "--threads", threads]);
            let plain = srv.get("/json", &[]);
            assert_eq!(plain.status, 200);
            assert!(plain.body.len() > 4096, "{}", plain.body.len());
            assert_eq!(plain.header("content-encoding"), None, "no Accept-Encoding, no compression");
            assert_eq!(plain.header("content-length"), Some(plain.body.len().to_string().as_str()));
            assert!(has_vary(&plain, "accept-encoding"), "a compressible type always gets Vary");

            for (ae, want) in [
                ("gzip", Some("gzip")),
                ("br", Some("br")),
                ("gzip, br", Some("br")),
                ("gzip;q=1.0, br;q=0.5", Some("gzip")),
                ("gzip;q=0.5, br;q=0.9", Some("br")),
                ("br;q=0, gzip", Some("gzip")),
                ("x-gzip", Some("gzip")),
                ("*", Some("br")),
                ("*;q=0.5, br;q=0", Some("gzip")),
                ("identity", None),
                ("gzip;q=0, br;q=0", None),
                ("deflate", None),
                ("gzip;q=bad", None),
            ] {
                let resp = srv.get("/json", &[("Accept-Encoding", ae)]);
                assert_eq!(resp.status, 200, "{ae}");
                assert_eq!(resp.header("content-encoding"), want, "{ae} (threads {threads})");
                assert!(has_vary(&resp, "accept-encoding"), "{ae}");
                match want {
                    None => assert_eq!(resp.body, plain.body, "{ae}"),
                    Some(coding) => {
                        assert_eq!(resp.header("content-length"), None, "{ae}: a compressed body has no length");
                        assert_eq!(resp.header("transfer-encoding"), Some("chunked"), "{ae}");
                        assert_ne!(resp.body, plain.body, "{ae}");
                        assert!(resp.body.len() * 3 < plain.body.len(), "{ae}: {} bytes", resp.body.len());
                        if coding == "gzip" {
                            assert!(gunzip(&resp.body) == plain.body, "{ae}: gunzip differs from the plain body");
                        } else {
                            // No brotli decoder here: check it is not gzip.
                            assert_ne!(resp.body[..2], [0x1f, 0x8b], "{ae}");
                        }
                    }
                }
            }

            // Not compressed: HEAD, a 206, a body the app encoded, a small body,
            // a static file (Static is outside Compression).
            let (head, rest) =
                send(srv.addr, &raw_request("HEAD", b"/json", &[("Accept-Encoding", b"gzip")], b""), true);
            assert_eq!(head.status, 200);
            assert_eq!(head.header("content-encoding"), None, "HEAD");
            assert!(rest.is_empty(), "HEAD sent a body");
            let resp = srv.get("/partial", &[("Accept-Encoding", "gzip")]);
            assert_eq!(resp.status, 206);
            assert_eq!(resp.header("content-encoding"), None, "206");
            assert!(resp.body == plain.body, "206 body changed");
            let resp = srv.get("/encoded", &[("Accept-Encoding", "gzip, br")]);
            assert_eq!(resp.header("content-encoding"), Some("gzip"), "the app's own coding");
            assert!(gunzip(&resp.body) == plain.body, "compressed twice?");
            let resp = srv.get("/small", &[("Accept-Encoding", "gzip")]);
            assert_eq!((resp.header("content-encoding"), text(&resp)), (None, "{\"small\": true}".to_owned()));
            let resp = srv.get("/static/data.json", &[("Accept-Encoding", "gzip")]);
            assert_eq!(resp.header("content-encoding"), None, "static files pass Compression untouched");
            assert_eq!(resp.body, std::fs::read(site.root.join("data.json")).unwrap());
            srv.assert_healthy();
        }
    }

    // -----------------------------------------------------------------------
    // RequestId
    // -----------------------------------------------------------------------

    #[test]
    fn request_id_over_the_wire() {
        let site = Site::new();
        let mut srv = Server::start(&["--request-id", "--static-map", &site.map()]);
        let seen_by_app = |resp: &Resp| json_field(&text(resp), "request_id");

        let a = srv.get("/environ", &[]);
        let id = a.header("x-request-id").unwrap().to_owned();
        assert!(is_request_id(&id), "{id}");
        assert_eq!(seen_by_app(&a).as_deref(), Some(id.as_str()), "the app sees the id it answers with");
        let b = srv.get("/environ", &[]);
        assert_ne!(b.header("x-request-id"), Some(id.as_str()), "each request its own id");

        // A trusted incoming id is kept, end to end.
        let long_ok = "x".repeat(200);
        for incoming in ["abc-123", "trace.42_Z:9/+=", long_ok.as_str()] {
            let resp = srv.get("/environ", &[("X-Request-ID", incoming)]);
            assert_eq!(resp.header("x-request-id"), Some(incoming));
            assert_eq!(seen_by_app(&resp).as_deref(), Some(incoming));
        }

        // A bad one is replaced: too long, empty, with a tab or a byte past
        // ASCII, or sent twice.
        let too_long = "y".repeat(201);
        let bad: Vec<Vec<(&str, &[u8])>> = vec![
            vec![("X-Request-ID", too_long.as_bytes())],
            vec![("X-Request-ID", b"")],
            vec![("X-Request-ID", b"abc\tdef")],
            vec![("X-Request-ID", b"caf\xe9")],
            vec![("X-Request-ID", b"one"), ("X-Request-ID", b"two")],
        ];
        for headers in bad {
            let (resp, _) = send(srv.addr, &raw_request("GET", b"/environ", &headers, b""), false);
            assert_eq!(resp.status, 200, "{headers:?}");
            let id = resp.header("x-request-id").unwrap();
            assert!(is_request_id(id), "{headers:?}: {id}");
            assert_eq!(seen_by_app(&resp).as_deref(), Some(id), "{headers:?}");
        }

        // Other control characters never get past the server's parser.
        for value in [&b"a\x01b"[..], b"a\x7fb", b"a\rb"] {
            let (resp, _) = send(srv.addr, &raw_request("GET", b"/environ", &[("X-Request-ID", value)], b""), false);
            assert_eq!(resp.status, 400, "{value:?}");
            assert!(!text(&resp).contains("request_id"), "{value:?} reached the app");
        }

        // Static answers (and their 404s) carry it too.
        assert!(is_request_id(srv.get("/static/hello.txt", &[]).header("x-request-id").unwrap()));
        assert!(is_request_id(srv.get("/static/nope", &[]).header("x-request-id").unwrap()));
        assert_eq!(srv.get("/static/hello.txt", &[("X-Request-ID", "s-1")]).header("x-request-id"), Some("s-1"));
        srv.assert_healthy();
    }

    // -----------------------------------------------------------------------
    // Health
    // -----------------------------------------------------------------------

    #[test]
    fn health_answers_without_the_app() {
        let mut srv = Server::start(&["--health-path", "/healthz"]);
        let before = srv.app_count();
        for target in ["/healthz", "/healthz/", "/healthz?probe=lb"] {
            let resp = srv.get(target, &[]);
            assert_eq!((resp.status, text(&resp)), (200, "ok\n".to_owned()), "{target}");
            assert_eq!(resp.header("cache-control"), Some("no-store"));
        }
        let (head, rest) = send(srv.addr, &raw_request("HEAD", b"/healthz", &[], b""), true);
        assert_eq!(head.status, 200);
        assert!(rest.is_empty());
        let resp = request(srv.addr, "POST", "/healthz", &[("Content-Length", "0")]);
        assert_eq!(resp.status, 405);
        assert_eq!(resp.header("allow"), Some("GET, HEAD"));
        assert_eq!(srv.app_count(), before + 1, "only the /count request reached the app");
        assert_eq!(text(&srv.get("/healthzz", &[])), "app saw /healthzz\n");
        srv.assert_healthy();
    }

    /// The readiness flag flips to "not ready" when a worker gets TERM, so a
    /// load balancer polling the health path should see 503 while in-flight
    /// requests drain.
    #[test]
    fn health_answers_503_during_a_graceful_stop() {
        let srv = Server::start(&["--health-path", "/healthz", "--threads", "4"]);
        assert_eq!(srv.get("/healthz", &[]).status, 200);
        let addr = srv.addr;
        let slow = std::thread::spawn(move || get(addr, "/slow?s=3", &[]));
        std::thread::sleep(Duration::from_millis(500));
        srv.signal(libc::SIGTERM);
        std::thread::sleep(Duration::from_millis(300));
        let mut s = TcpStream::connect(addr).expect("the listening socket is still open during the stop");
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let resp = read_response(&mut s, false);
        let slow = slow.join().unwrap();
        assert_eq!(slow.status, 200, "the in-flight request finishes");
        let resp = resp.expect("no answer from the health path during the graceful stop");
        assert_eq!(resp.status, 503);
    }

    #[test]
    fn a_graceful_stop_lets_the_in_flight_request_finish() {
        let mut srv = Server::start(&["--health-path", "/healthz", "--threads", "4"]);
        let addr = srv.addr;
        let slow = std::thread::spawn(move || get(addr, "/slow?s=1.5", &[]));
        std::thread::sleep(Duration::from_millis(500));
        srv.signal(libc::SIGTERM);
        let slow = slow.join().unwrap();
        assert_eq!((slow.status, text(&slow)), (200, "slow done\n".to_owned()));
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = srv.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the server did not exit after TERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status}; stderr:\n{}", srv.log());
    }

    // -----------------------------------------------------------------------
    // Metrics
    // -----------------------------------------------------------------------

    fn metric(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn metrics_count_requests() {
        let mut srv = Server::start(&["--metrics-path", "/metrics", "--threads", "4"]);
        let scrape = || {
            let resp = srv.get("/metrics", &[]);
            assert_eq!(resp.status, 200);
            assert_eq!(resp.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
            text(&resp)
        };
        // Start from settled counts: the start-up request is counted when its
        // body closes, which may come just after the client had the answer.
        let deadline = Instant::now() + Duration::from_secs(5);
        let first = loop {
            let t = scrape();
            if metric(&t, "wsgi_request_duration_seconds_count") >= 1.0 && metric(&t, "wsgi_requests_in_flight") == 0.0
            {
                break t;
            }
            assert!(Instant::now() < deadline, "the start-up request was never counted:\n{t}");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(first.contains("# TYPE wsgi_requests_total counter\n"), "{first}");
        assert!(first.contains("# TYPE wsgi_request_duration_seconds histogram\n"), "{first}");
        let count = |t: &str, class: &str| metric(t, &format!("wsgi_requests_total{{class=\"{class}\"}}"));
        let (ok0, c4_0, c5_0) = (count(&first, "2xx"), count(&first, "4xx"), count(&first, "5xx"));
        let n0 = metric(&first, "wsgi_request_duration_seconds_count");
        assert_eq!(metric(&scrape(), "wsgi_request_duration_seconds_count"), n0, "scraping is not counted");

        for target in ["/", "/a", "/b", "/status/404", "/status/418", "/status/503"] {
            srv.get(target, &[]);
        }
        // A request is counted when its body closes, just after it was sent.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = scrape();
            let done = count(&now, "2xx") == ok0 + 3.0
                && count(&now, "4xx") == c4_0 + 2.0
                && count(&now, "5xx") == c5_0 + 1.0
                && metric(&now, "wsgi_request_duration_seconds_count") == n0 + 6.0;
            if done {
                let inf = metric(&now, "wsgi_request_duration_seconds_bucket{le=\"+Inf\"}");
                assert_eq!(inf, n0 + 6.0);
                assert!(metric(&now, "wsgi_request_duration_seconds_sum") > 0.0);
                break;
            }
            assert!(Instant::now() < deadline, "counts did not change as expected:\n{first}\n---\n{now}");
            std::thread::sleep(Duration::from_millis(20));
        }

        // In flight while a slow request runs.
        let addr = srv.addr;
        let slow = std::thread::spawn(move || get(addr, "/slow?s=1", &[]));
        let deadline = Instant::now() + Duration::from_secs(5);
        while metric(&scrape(), "wsgi_requests_in_flight") != 1.0 {
            assert!(Instant::now() < deadline, "the slow request never showed in flight");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(slow.join().unwrap().status, 200);
        srv.assert_healthy();
    }

    // -----------------------------------------------------------------------
    // Proxy headers (the server's own trusted-proxy handling)
    // -----------------------------------------------------------------------

    const FORWARDED: [(&str, &str); 3] =
        [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "example.com")];

    #[test]
    fn trusted_proxy_headers_reach_the_app() {
        let mut srv = Server::start(&[]);
        let resp = srv.get("/environ", &FORWARDED);
        let body = text(&resp);
        assert_eq!(json_field(&body, "remote_addr").as_deref(), Some("203.0.113.9"), "{body}");
        assert_eq!(json_field(&body, "scheme").as_deref(), Some("https"), "{body}");
        assert_eq!(json_field(&body, "host").as_deref(), Some("example.com"), "{body}");
        assert_eq!(json_field(&body, "server_name").as_deref(), Some("example.com"), "{body}");
        assert_eq!(json_field(&body, "server_port").as_deref(), Some("443"), "{body}");

        let rfc = [("Forwarded", "for=\"[2001:db8::17]:4711\";proto=https;host=shop.example")];
        let body = text(&srv.get("/environ", &rfc));
        assert_eq!(json_field(&body, "remote_addr").as_deref(), Some("2001:db8::17"), "{body}");
        assert_eq!(json_field(&body, "scheme").as_deref(), Some("https"), "{body}");
        assert_eq!(json_field(&body, "host").as_deref(), Some("shop.example"), "{body}");

        // A chain: the client is the rightmost address that is not trusted.
        let chain = [("X-Forwarded-For", "6.6.6.6, 198.51.100.4, 127.0.0.1")];
        let body = text(&srv.get("/environ", &chain));
        assert_eq!(json_field(&body, "remote_addr").as_deref(), Some("198.51.100.4"), "{body}");

        let body = text(&srv.get("/environ", &[]));
        assert_eq!(json_field(&body, "remote_addr").as_deref(), Some("127.0.0.1"), "{body}");
        assert_eq!(json_field(&body, "scheme").as_deref(), Some("http"), "{body}");
        srv.assert_healthy();
    }

    #[test]
    fn untrusted_proxy_headers_are_ignored() {
        let mut srv = Server::start(&["--forwarded-allow-ips", "10.0.0.1"]);
        let body = text(&srv.get("/environ", &FORWARDED));
        assert_eq!(json_field(&body, "remote_addr").as_deref(), Some("127.0.0.1"), "{body}");
        assert_eq!(json_field(&body, "scheme").as_deref(), Some("http"), "{body}");
        assert_eq!(json_field(&body, "host").as_deref(), Some("test.local"), "{body}");
        assert_eq!(json_field(&body, "server_port").as_deref(), Some("80"), "from the Host header, not forwarded");
        srv.assert_healthy();
    }

    // -----------------------------------------------------------------------
    // Everything at once
    // -----------------------------------------------------------------------

    #[test]
    fn one_stack_static_compression_proxy_headers_request_id() {
        let site = Site::new();
        let mut srv = Server::start(&[
            "--static-map",
            &site.map(),
            "--compress",
            "--request-id",
            "--health-path",
            "/healthz",
            "--metrics-path",
            "/metrics",
            "--threads",
            "4",
        ]);

        // A static file, with its id and its long caching.
        let css = srv.get("/static/css/app.0123456789ab.css", &[("Accept-Encoding", "gzip")]);
        assert_eq!((css.status, text(&css)), (200, "body{}".to_owned()));
        assert_eq!(css.header("cache-control"), Some("public, max-age=31536000, immutable"));
        assert_eq!(css.header("content-encoding"), None);
        assert!(is_request_id(css.header("x-request-id").unwrap()));
        let sibling = srv.get("/static/css/app.css", &[("Accept-Encoding", "br")]);
        assert_eq!((text(&sibling), sibling.header("content-encoding")), ("BROTLI-VARIANT".to_owned(), Some("br")));

        // A compressed JSON route through a proxy, with the proxy's request id.
        let headers = [
            ("Accept-Encoding", "gzip"),
            ("X-Request-ID", "trace-42"),
            ("X-Forwarded-For", "198.51.100.23"),
            ("X-Forwarded-Proto", "https"),
        ];
        let resp = srv.get("/json?env=1", &headers);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-encoding"), Some("gzip"));
        assert!(has_vary(&resp, "accept-encoding"));
        assert_eq!(resp.header("x-request-id"), Some("trace-42"));
        let json = String::from_utf8(gunzip(&resp.body)).unwrap();
        assert!(json.len() > 4 * resp.body.len(), "{} -> {}", resp.body.len(), json.len());
        assert_eq!(json_field(&json, "request_id").as_deref(), Some("trace-42"), "{json}");
        assert_eq!(json_field(&json, "remote_addr").as_deref(), Some("198.51.100.23"), "{json}");
        assert_eq!(json_field(&json, "scheme").as_deref(), Some("https"), "{json}");

        // Without an incoming id the app sees the one made for it.
        let resp = srv.get("/json?env=1", &[("Accept-Encoding", "gzip")]);
        let id = resp.header("x-request-id").unwrap();
        assert!(is_request_id(id));
        let json = String::from_utf8(gunzip(&resp.body)).unwrap();
        assert_eq!(json_field(&json, "request_id").as_deref(), Some(id));

        // Refused paths, health and metrics in the same stack.
        let resp = get(srv.addr, "/static/%2e%2e/secret", &[]);
        assert_eq!(resp.status, 404);
        assert!(!text(&resp).contains(SECRET));
        assert_eq!(srv.get("/healthz", &[]).status, 200);
        let metrics = text(&srv.get("/metrics", &[]));
        assert!(metric(&metrics, "wsgi_requests_total{class=\"2xx\"}") >= 4.0, "{metrics}");
        srv.assert_healthy();
    }
}
