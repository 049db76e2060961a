//! Real Python WSGI apps (a plain PEP 3333 app under `wsgiref.validate`,
//! Flask, a Django project) served by the real `wsgi-server` binary over real
//! sockets.
//!
//! Each test starts the command as a child process on a free port, with
//! `VIRTUAL_ENV` set to the test virtualenv (`$WSGI_TEST_VENV`, made by
//! `bash scripts/python-venv.sh`), `--pythonpath` at `tests/python`, and its
//! stderr (the error log) captured to a file; it is killed when the test ends.
//! Most groups run twice: `--threads 1` (inline) and `--threads 4`.
//!
//! Run: `bash scripts/python-venv.sh` (prints the venv path), then
//! `WSGI_TEST_VENV=$PWD/.venv cargo test -p wsgi-server --features python --test python_apps`.
#![cfg(feature = "python")]
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use support::python::{free_port, python_dir, temp_dir, venv, STARTUP};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{connect, read_response, Resp};

// ---------------------------------------------------------------------------
// The server under test, as a child process.
// ---------------------------------------------------------------------------

/// How long to wait for an error-log line that should come.
const LOG_WAIT: Duration = Duration::from_secs(5);

/// Deterministic bytes covering every byte value (xorshift).
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

/// The file the apps' file routes send (`TESTS_DATA_FILE`).
const DATA_LEN: usize = 300_007;

fn data() -> Vec<u8> {
    pseudo_random(DATA_LEN, 0x5eed)
}

struct Server {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Server {
    /// Start `wsgi-server APP --bind 127.0.0.1:PORT --threads N` plus `extra`
    /// and wait until it answers.
    fn start(app: &str, threads: usize, extra: &[&str]) -> Server {
        let venv = venv();
        let dir = temp_dir("python-apps");
        let data_file = dir.join("data.bin");
        std::fs::write(&data_file, data()).unwrap();
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let stderr = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsgi-server"));
        cmd.arg(app)
            .args(["--bind", &addr.to_string(), "--threads", &threads.to_string()])
            .arg("--pythonpath")
            .arg(python_dir())
            .arg("--env")
            .arg(format!("TESTS_DATA_FILE={}", data_file.display()))
            .arg("--env")
            .arg(format!("TESTS_TMP_DIR={}", dir.display()))
            .args(extra)
            .env("VIRTUAL_ENV", &venv)
            .env_remove("DJANGO_SETTINGS_MODULE")
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = cmd.spawn().unwrap();
        let mut server = Server { child, addr, dir };
        server.wait_ready(app);
        server
    }

    fn wait_ready(&mut self, app: &str) {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("wsgi-server {app} exited with {status} before listening; its stderr:\n{}", self.log());
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "wsgi-server {app} did not listen on {} within {STARTUP:?}; its stderr:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The error log so far.
    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.join("stderr.log")).unwrap_or_default()).into_owned()
    }

    /// Wait until the error log holds every one of `needles`; the log.
    fn wait_log(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + LOG_WAIT;
        loop {
            let log = self.log();
            if needles.iter().all(|n| log.contains(n)) {
                return log;
            }
            assert!(Instant::now() < deadline, "the error log lacks one of {needles:?}:\n{log}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    /// One request on a new connection (`Connection: close`); Content-Length
    /// is added when there is a body or the method is POST.
    fn request(&self, method: &str, path: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Resp {
        let mut s = connect(self.addr);
        s.write_all(&self.raw_request(method, path, headers, body)).unwrap();
        read_response(&mut s, method == "HEAD")
            .unwrap_or_else(|| panic!("{method} {path}: no complete response; error log:\n{}", self.log()))
    }

    fn raw_request(&self, method: &str, path: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
        let mut raw =
            format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.host()).into_bytes();
        for (k, v) in headers {
            raw.extend_from_slice(k.as_bytes());
            raw.extend_from_slice(b": ");
            raw.extend_from_slice(v);
            raw.extend_from_slice(b"\r\n");
        }
        if !body.is_empty() || method == "POST" {
            raw.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(body);
        raw
    }

    fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], b"")
    }

    fn get_with(&self, path: &str, headers: &[(&str, &[u8])]) -> Resp {
        self.request("GET", path, headers, b"")
    }

    fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Resp {
        self.request("POST", path, &[("Content-Type", content_type.as_bytes())], body)
    }

    /// A POST with a chunked body, cut into `chunks`.
    fn post_chunked(&self, path: &str, chunks: &[&[u8]]) -> Resp {
        let mut raw = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/octet-stream\r\n\
             Transfer-Encoding: chunked\r\n\r\n",
            self.host()
        )
        .into_bytes();
        for c in chunks.iter().filter(|c| !c.is_empty()) {
            raw.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            raw.extend_from_slice(c);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        let mut s = connect(self.addr);
        s.write_all(&raw).unwrap();
        read_response(&mut s, false).unwrap_or_else(|| panic!("POST {path} (chunked): no complete response"))
    }

    /// Send a GET and read everything until the server closes: the raw bytes.
    fn raw_get(&self, path: &str) -> Vec<u8> {
        let mut s = connect(self.addr);
        s.write_all(&self.raw_request("GET", path, &[], b"")).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    }

    fn json(&self, resp: &Resp) -> Json {
        assert!(
            resp.header("content-type").is_some_and(|t| t.starts_with("application/json")),
            "not JSON: {resp:?}\nerror log:\n{}",
            self.log()
        );
        Json::parse(&resp.body).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&resp.body)))
    }

    /// Assert the error log holds no Python error (for the good paths).
    fn assert_log_clean(&self) {
        let log = self.log();
        for bad in ["AssertionError", "Traceback", "Exception ignored", "WSGIWarning"] {
            assert!(!log.contains(bad), "the error log holds {bad:?}:\n{log}");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `Set-Cookie` headers as a `Cookie` header value.
fn cookie_header(resp: &Resp) -> String {
    resp.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.split(';').next().unwrap_or("").trim().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

fn text(resp: &Resp) -> String {
    String::from_utf8_lossy(&resp.body).into_owned()
}

fn sha256_hex(data: &[u8]) -> String {
    // ring's SHA-256, through rustls (a dev-dependency already).
    let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256.tls13().unwrap();
    suite.common.hash_provider.hash(data).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A `multipart/form-data` body with a `note` field and a `file` upload.
fn multipart(file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----wsgi-rs-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::with_capacity(file.len() + 512);
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello upload\r\n").as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Run a group with `--threads 1` (inline) and `--threads 4`.
macro_rules! both_modes {
    ($($(#[$meta:meta])* $name:ident => $group:ident;)*) => {$(
        mod $name {
            $(#[$meta])*
            #[test]
            fn inline() {
                super::$group(1);
            }
            $(#[$meta])*
            #[test]
            fn threads_4() {
                super::$group(4);
            }
        }
    )*};
}

// ---------------------------------------------------------------------------
// 1. A plain app under wsgiref.validate: every environ key, every input
//    method, wsgi.errors, exc_info, lazy start_response, write(),
//    wsgi.file_wrapper, close().
// ---------------------------------------------------------------------------

const PEP_APP: &str = "pep_validated:application";

/// The validator's complaints the app recorded: none; and a clean log.
fn assert_no_problems(srv: &Server) {
    let problems = srv.json(&srv.get("/problems"));
    assert_eq!(problems.as_array().len(), 0, "the validator complained: {problems:?}\nerror log:\n{}", srv.log());
    srv.assert_log_clean();
}

/// Wait until every earlier response's close() was called (close may run
/// just after the client has its last byte); the counters.
fn settled_counts(srv: &Server) -> Json {
    let deadline = Instant::now() + LOG_WAIT;
    loop {
        let c = srv.json(&srv.get("/counts"));
        // This very request is counted but not yet closed.
        if c["closed"].as_u64() + 1 == c["requests"].as_u64() {
            return c;
        }
        assert!(Instant::now() < deadline, "close() was not called on every response: {c:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn validated_environ(threads: usize) {
    let srv = Server::start(PEP_APP, threads, &[]);
    let mut s = connect(srv.addr);
    let local = s.local_addr().unwrap();
    let body = b"a=1&b=2";
    let raw = format!(
        "POST /environ?x=1&y=%20z HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nX-Custom: custom value\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        srv.host(),
        body.len()
    );
    s.write_all(raw.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let resp = read_response(&mut s, false).unwrap();
    assert_eq!(resp.status, 200);
    let env = srv.json(&resp);
    let port = srv.addr.port().to_string();
    for (key, want) in [
        ("REQUEST_METHOD", "POST"),
        ("SCRIPT_NAME", ""),
        ("PATH_INFO", "/environ"),
        ("QUERY_STRING", "x=1&y=%20z"),
        ("CONTENT_TYPE", "application/x-www-form-urlencoded"),
        ("CONTENT_LENGTH", "7"),
        ("SERVER_NAME", "127.0.0.1"),
        ("SERVER_PORT", port.as_str()),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("HTTP_HOST", srv.host().as_str()),
        ("HTTP_X_CUSTOM", "custom value"),
        ("HTTP_CONNECTION", "close"),
        ("wsgi.url_scheme", "http"),
    ] {
        assert_eq!(env[key].as_str(), Some(want), "environ[{key:?}] in {env:?}");
    }
    assert_eq!(env["REMOTE_PORT"].as_str(), Some(local.port().to_string().as_str()));
    for absent in ["HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"] {
        assert!(env.get(absent).is_none(), "{absent} must not be in environ: {env:?}");
    }
    assert_eq!(env["wsgi.version"], Json::Arr(vec![Json::Num(1.0), Json::Num(0.0)]));
    assert_eq!(env["wsgi.multithread"], Json::Bool(threads > 1), "wsgi.multithread with --threads {threads}");
    assert_eq!(env["wsgi.multiprocess"], Json::Bool(false));
    assert_eq!(env["wsgi.run_once"], Json::Bool(false));
    assert_eq!(env["wsgi.input_terminated"], Json::Bool(true));
    for key in ["wsgi.input", "wsgi.errors", "wsgi.file_wrapper", "tests.raw_input"] {
        assert!(env[key].as_str().is_some_and(|t| t.starts_with('<')), "environ[{key:?}] in {env:?}");
    }
    for (check, ok) in env["tests.checks"].as_object() {
        assert_eq!(*ok, Json::Bool(true), "app-side check {check} failed: {env:?}");
    }
    // Every key is a str, every CGI value a str (the validator checked too).
    for (key, value) in env.as_object() {
        if !key.contains('.') {
            assert!(value.as_str().is_some(), "environ[{key:?}] is not a str: {value:?}");
        }
    }

    // HTTP/1.0, a GET without a query or body.
    let mut s = connect(srv.addr);
    s.write_all(b"GET /environ HTTP/1.0\r\n\r\n").unwrap();
    let env = srv.json(&read_response(&mut s, false).unwrap());
    assert_eq!(env["SERVER_PROTOCOL"].as_str(), Some("HTTP/1.0"));
    assert_eq!(env["REQUEST_METHOD"].as_str(), Some("GET"));
    assert_eq!(env["QUERY_STRING"].as_str(), Some(""), "QUERY_STRING is present, even empty");
    assert!(env.get("CONTENT_LENGTH").is_none_or(|v| v.as_str() == Some("")), "{env:?}");
    assert!(env.get("HTTP_HOST").is_none());

    assert_no_problems(&srv);
}

/// A body with several lines, an empty line, bytes 0x80-0xFF and NUL, and
/// a last line without a newline.
const INPUT: &[u8] = b"first line\nsecond\n\n\xe9t\xe9 \xff\x00 bytes \x80\nlast, no newline";

fn lines(body: &[u8]) -> Vec<Vec<u8>> {
    body.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

/// What each input mode of /input reads from `body`.
fn expected_parts(mode: &str, body: &[u8]) -> Vec<Vec<u8>> {
    match mode {
        "read_n" => body.chunks(7).map(<[u8]>::to_vec).collect(),
        "read_all" => vec![body.to_vec(), Vec::new()],
        "read_neg" => vec![body.to_vec()],
        "readline" | "readlines" | "iter" | "iter_raw" => lines(body),
        "readline_size" => lines(body).iter().flat_map(|l| l.chunks(5).map(<[u8]>::to_vec)).collect(),
        "mixed" => {
            // read(3), readline(), readline(4), readlines(), read(1)
            fn take(rest: &mut &[u8], n: usize) -> Vec<u8> {
                let (a, b) = rest.split_at(n.min(rest.len()));
                *rest = b;
                a.to_vec()
            }
            let line_len = |r: &[u8]| r.iter().position(|&b| b == b'\n').map_or(r.len(), |i| i + 1);
            let mut rest = body;
            let mut out = vec![take(&mut rest, 3)];
            let n = line_len(rest);
            out.push(take(&mut rest, n));
            let n = line_len(rest).min(4);
            out.push(take(&mut rest, n));
            out.extend(lines(rest));
            out.push(Vec::new());
            out
        }
        _ => unreachable!("{mode}"),
    }
}

const INPUT_MODES: [&str; 9] =
    ["read_n", "read_all", "read_neg", "readline", "readline_size", "readlines", "iter", "iter_raw", "mixed"];

fn parts_of(j: &Json) -> Vec<Vec<u8>> {
    j["parts"].as_array().iter().map(|p| p.as_str().unwrap().chars().map(|c| c as u8).collect()).collect()
}

fn validated_input(threads: usize) {
    let srv = Server::start(PEP_APP, threads, &[]);
    for mode in INPUT_MODES {
        let path = format!("/input?{mode}");
        let want = expected_parts(mode, INPUT);

        // Content-Length.
        let j = srv.json(&srv.post(&path, "application/octet-stream", INPUT));
        assert_eq!(parts_of(&j), want, "{mode} with Content-Length: {j:?}");
        assert_eq!(j["content_length"].as_str(), Some(INPUT.len().to_string().as_str()));

        // Chunked, cut mid-line and mid-character-run.
        let j = srv.json(&srv.post_chunked(&path, &[&INPUT[..1], &INPUT[1..6], &INPUT[6..20], &INPUT[20..]]));
        assert_eq!(parts_of(&j), want, "{mode} with a chunked body: {j:?}");
        assert_eq!(j["content_length"], Json::Null, "no CONTENT_LENGTH with a chunked body: {j:?}");
        assert_eq!(j["input_terminated"], Json::Bool(true));

        // Empty: a POST with Content-Length: 0 and a GET without a body.
        let want_empty = expected_parts(mode, b"");
        let j = srv.json(&srv.post(&path, "application/octet-stream", b""));
        assert_eq!(parts_of(&j), want_empty, "{mode} with Content-Length: 0: {j:?}");
        let j = srv.json(&srv.get(&path));
        assert_eq!(parts_of(&j), want_empty, "{mode} with no body: {j:?}");
    }
    // A body larger than any buffer, read with read(n) through the validator.
    let big = pseudo_random(1 << 20, 7);
    let j = srv.json(&srv.post_chunked("/input?read_n", &[&big[..100_000], &big[100_000..]]));
    assert_eq!(parts_of(&j).concat(), big);
    assert_no_problems(&srv);
}

fn validated_responses(threads: usize) {
    let srv = Server::start(PEP_APP, threads, &[]);

    // wsgi.errors: write, writelines, flush reach the error log.
    let marker = format!("errors-marker-{threads}");
    let r = srv.get(&format!("/errors?{marker}"));
    assert_eq!((r.status, text(&r).as_str()), (200, "logged"));
    srv.wait_log(&[
        &format!("{marker} write"),
        &format!("{marker} writelines one"),
        &format!("{marker} writelines two"),
    ]);

    // exc_info before any output replaces the head.
    let r = srv.get("/exc_info");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(r.header("x-second"), Some("yes"));
    assert_eq!(r.header("x-first"), None, "the first head was replaced: {r:?}");
    assert_eq!(text(&r), "<p>the error page</p>");

    // start_response called during the first iteration.
    let r = srv.get("/lazy");
    assert_eq!((r.status, r.header("x-lazy")), (201, Some("yes")));
    assert_eq!(text(&r), "lazy body");

    // write() data comes before the iterable's.
    let r = srv.get("/write");
    assert_eq!(text(&r), "written-1 written-2 returned-1 returned-2");

    // wsgi.file_wrapper: through the validator (iterated) and as the result
    // itself (sent from the descriptor), from the file's current position.
    let data = data();
    for (path, offset) in
        [("/file_wrapper", 0), ("/file_wrapper", 1234), ("/raw/file_wrapper", 0), ("/raw/file_wrapper", 99)]
    {
        let r = srv.get(&format!("{path}?{offset}"));
        assert_eq!(r.status, 200, "{path}");
        let want = &data[offset..];
        assert_eq!(r.header("content-length"), Some(want.len().to_string().as_str()), "{path}?{offset}");
        assert!(r.body == want, "{path}?{offset}: {} bytes differ from the file's {}", r.body.len(), want.len());
    }

    // An iterable with close().
    let r = srv.get("/close");
    assert_eq!(text(&r), "one two three");

    let counts = settled_counts(&srv);
    assert_eq!(counts["app_closed"].as_u64(), 2, "close() of /write and /close: {counts:?}");
    assert_eq!(counts["file_closed"].as_u64(), 4, "every wrapped file closed: {counts:?}");
    assert_no_problems(&srv);
}

// ---------------------------------------------------------------------------
// 3. Header bytes: latin-1 values intact; names with `_` dropped.
// ---------------------------------------------------------------------------

fn latin1_and_underscore_headers(threads: usize) {
    let srv = Server::start(PEP_APP, threads, &[]);
    let value: &[u8] = b"caf\xe9 \x80\x81\x9f\xa0\xbf\xc0\xff end";
    let headers: [(&str, &[u8]); 3] =
        [("X-Latin", value), ("X_Under", b"secret-under-value"), ("X-Mixed_Name", b"secret-mixed-value")];
    let r = srv.get_with("/latin", &headers);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, value, "latin-1 header bytes reach the app intact");

    let env = srv.json(&srv.get_with("/headers", &headers));
    let latin: Vec<u8> = env["HTTP_X_LATIN"].as_str().unwrap().chars().map(|c| c as u8).collect();
    assert_eq!(latin, value);
    for (key, v) in env.as_object() {
        let upper = key.to_ascii_uppercase();
        assert!(!upper.contains("UNDER") && !upper.contains("MIXED"), "{key} reached the app: {env:?}");
        let v = v.as_str().unwrap_or("");
        assert!(!v.contains("secret-under") && !v.contains("secret-mixed"), "{key}={v:?} reached the app");
    }
    assert_no_problems(&srv);
}

// ---------------------------------------------------------------------------
// 4. Error paths over sockets.
// ---------------------------------------------------------------------------

fn head_and_body(raw: &[u8]) -> (String, &[u8]) {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
    (String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase(), &raw[end..])
}

fn error_paths(threads: usize) {
    let srv = Server::start(PEP_APP, threads, &[]);

    // Before the head: a 500, and the traceback in the error log.
    let r = srv.get("/err/before");
    assert_eq!(r.status, 500);
    let log = srv.wait_log(&["tests marker 7f3a"]);
    assert!(log.contains("Traceback (most recent call last)"), "{log}");
    assert!(log.contains("RuntimeError: raised before the head (tests marker 7f3a)"), "{log}");
    assert!(log.contains("raise_before"), "the traceback names the function: {log}");

    // After the head, chunked: the body stops without its last chunk.
    let raw = srv.raw_get("/err/after_chunked");
    let (head, body) = head_and_body(&raw);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(String::from_utf8_lossy(body).contains("partial-"), "{raw:?}");
    assert!(!body.ends_with(b"0\r\n\r\n"), "the response must look incomplete: {:?}", String::from_utf8_lossy(body));
    let mut cursor = std::io::Cursor::new(raw.clone());
    assert!(read_response(&mut cursor, false).is_none(), "a client cannot read a complete response");
    srv.wait_log(&["tests marker 9c1b"]);

    // After the head, with a Content-Length: fewer bytes than announced.
    let raw = srv.raw_get("/err/after_length");
    let (head, body) = head_and_body(&raw);
    assert!(head.contains("content-length: 1000"), "{head}");
    assert!(body.len() < 1000 && body.starts_with(b"only-these-bytes"), "{:?}", String::from_utf8_lossy(body));
    srv.wait_log(&["tests marker 2d8e"]);

    // exc_info after the head: start_response re-raises, the response aborts.
    let raw = srv.raw_get("/err/exc_info_after_head");
    let (head, body) = head_and_body(&raw);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(String::from_utf8_lossy(body).contains("head and some body sent"));
    let mut cursor = std::io::Cursor::new(raw.clone());
    assert!(read_response(&mut cursor, false).is_none(), "incomplete: {:?}", String::from_utf8_lossy(&raw));
    srv.wait_log(&["tests marker 5e60"]);

    // The server keeps serving, on new connections.
    for _ in 0..3 {
        let r = srv.get("/lazy");
        assert_eq!((r.status, text(&r).as_str()), (201, "lazy body"));
    }
    let problems = srv.json(&srv.get("/problems"));
    assert_eq!(problems.as_array().len(), 0, "{problems:?}");
}

// ---------------------------------------------------------------------------
// 2a. Flask.
// ---------------------------------------------------------------------------

fn flask_routes(threads: usize) {
    let srv = Server::start("flask_app:app", threads, &[]);

    // JSON.
    let r = srv.get("/api/hello");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let j = srv.json(&r);
    assert_eq!(j["hello"].as_str(), Some("world"));
    assert_eq!(j["multithread"], Json::Bool(threads > 1));
    let r = srv.post("/api/echo", "application/json", "{\"a\": [1, 2, \"\u{e9}\u{20ac}\"], \"b\": null}".as_bytes());
    assert_eq!(r.status, 201);
    let j = srv.json(&r);
    assert_eq!(j["received"]["a"][2].as_str(), Some("\u{e9}\u{20ac}"));
    assert_eq!(j["received"]["b"], Json::Null);

    // A urlencoded form, UTF-8 percent-encoded.
    let r = srv.post("/form", "application/x-www-form-urlencoded", b"name=J%C3%BCrgen+M&tag=a&tag=b&empty=");
    assert_eq!(r.status, 200);
    let j = srv.json(&r);
    assert_eq!(j["form"]["name"][0].as_str(), Some("J\u{fc}rgen M"));
    assert_eq!(j["form"]["tag"], Json::Arr(vec![Json::Str("a".into()), Json::Str("b".into())]));
    assert_eq!(j["form"]["empty"][0].as_str(), Some(""));

    // Cookies and the session: set, then read back with the cookies.
    let r = srv.get("/session/set?user=alice");
    assert_eq!(r.status, 200);
    let cookies = cookie_header(&r);
    assert!(cookies.contains("session=") && cookies.contains("plain=cookie-value"), "{r:?}");
    let r = srv.get_with("/session/get", &[("Cookie", cookies.as_bytes())]);
    let j = srv.json(&r);
    assert_eq!(j["user"].as_str(), Some("alice"), "the session came back: {j:?}");
    assert_eq!(j["visits"].as_u64(), 2);
    assert_eq!(j["plain"].as_str(), Some("cookie-value"));
    let j = srv.json(&srv.get("/session/get"));
    assert_eq!(j["user"], Json::Null, "no cookie, no session");

    // Streaming from a generator: chunked, complete. (stream_with_context:
    // flask_stream_with_context below.)
    let r = srv.get("/stream_plain?n=500&prefix=row");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{:?}", r.headers);
    assert_eq!(r.header("content-length"), None);
    let want: String = (0..500).map(|i| format!("row {i}\n")).collect();
    assert_eq!(text(&r), want);

    // send_file: through wsgi.file_wrapper.
    let r = srv.get("/file");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("content-length"), Some(DATA_LEN.to_string().as_str()));
    assert!(r.body == data(), "send_file bytes differ ({} bytes)", r.body.len());

    // 404, 403 and 500; the server keeps serving.
    let r = srv.get("/no/such/page");
    assert_eq!(r.status, 404);
    assert!(text(&r).contains("Not Found"), "{}", text(&r));
    assert_eq!(srv.get("/forbidden").status, 403);
    srv.assert_log_clean();
    let r = srv.get("/boom");
    assert_eq!(r.status, 500);
    assert!(text(&r).contains("Internal Server Error"), "{}", text(&r));
    let log = srv.wait_log(&["tests marker f1a5"]);
    assert!(log.contains("Traceback"), "Flask logs the view's traceback to wsgi.errors: {log}");
    for _ in 0..3 {
        assert_eq!(srv.get("/api/hello").status, 200);
    }
}

/// Flask's `stream_with_context`: the generator pushes the request context
/// (contextvars) during the view call and uses `request` while the body is
/// iterated.
fn flask_stream_with_context(threads: usize) {
    let srv = Server::start("flask_app:app", threads, &[]);
    let r = srv.request("GET", "/stream?n=200&prefix=ctx", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let want: String = (0..200).map(|i| format!("ctx {i}\n")).collect();
    assert_eq!(text(&r), want);
    srv.assert_log_clean();
}

/// A `contextvars.ContextVar` set by the app call is visible while the body
/// is iterated and in `close()` (where the app resets it with its token), as
/// under any pure-Python server.
fn contextvars_reach_the_body(threads: usize) {
    let srv = Server::start(PEP_APP, threads, &[]);
    for _ in 0..2 {
        let r = srv.get("/ctx/contextvars");
        assert_eq!(text(&r), "next=set-in-call");
    }
    std::thread::sleep(Duration::from_millis(100));
    let log = srv.log();
    assert!(!log.contains("tests contextvars reset failed"), "{log}");
}

/// `threading.local` data set by the app call is still there while the body
/// is iterated on the same OS thread.
fn thread_local_reaches_the_body(threads: usize) {
    let srv = Server::start(PEP_APP, threads, &[]);
    let r = srv.get("/ctx/thread_local");
    let body = text(&r);
    if body.contains("same_thread=True") {
        assert_eq!(body, "local=set-in-call same_thread=True");
    }
}

/// A background Python thread keeps running between requests and while
/// requests come: the server's threads hold the GIL only while they run
/// Python (an inline worker holds it while its loop is busy, and lets go
/// when the loop waits and every few milliseconds).
fn background_threads_keep_running(threads: usize) {
    let srv = Server::start(PEP_APP, threads, &[]);
    let ticks = |srv: &Server| text(&srv.get("/ctx/background")).parse::<u64>().unwrap();
    let t0 = ticks(&srv);
    // Idle: the thread sleeps 1 ms per tick; a few hundred in 500 ms.
    std::thread::sleep(Duration::from_millis(500));
    let t1 = ticks(&srv);
    assert!(t1 - t0 >= 150, "{} ticks in 500 ms while the server was idle", t1 - t0);
    // Busy: requests back to back for 500 ms.
    let start = Instant::now();
    let mut last = t1;
    while start.elapsed() < Duration::from_millis(500) {
        last = ticks(&srv);
    }
    assert!(last - t1 >= 150, "{} ticks in 500 ms of back-to-back requests", last - t1);
}

fn flask_upload(threads: usize) {
    let srv = Server::start("flask_app:app", threads, &[]);
    let file = pseudo_random(10 << 20, 42);
    let (ctype, body) = multipart(&file);
    let r = srv.post("/upload", &ctype, &body);
    assert_eq!(r.status, 200, "{}", text(&r));
    let j = srv.json(&r);
    assert_eq!(j["size"].as_u64(), 10 << 20);
    assert_eq!(j["sha256"].as_str(), Some(sha256_hex(&file).as_str()));
    assert_eq!(j["filename"].as_str(), Some("big.bin"));
    assert_eq!(j["fields"]["note"].as_str(), Some("hello upload"));
    srv.assert_log_clean();
}

// ---------------------------------------------------------------------------
// 2b. Django: a startproject layout loaded as mysite.wsgi:application.
// ---------------------------------------------------------------------------

/// The Django project, run from its directory (`--chdir`) like a deployment;
/// DJANGO_SETTINGS_MODULE comes from wsgi.py's default.
fn django(threads: usize) -> Server {
    let project = python_dir().join("django_project");
    Server::start("mysite.wsgi:application", threads, &["--chdir", project.to_str().unwrap()])
}

fn django_routes(threads: usize) {
    let srv = django(threads);

    let r = srv.get("/api/hello");
    assert_eq!(r.status, 200, "{}\n{}", text(&r), srv.log());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let j = srv.json(&r);
    assert_eq!(j["framework"].as_str(), Some("django"));
    assert_eq!(j["path"].as_str(), Some("/api/hello"));
    assert_eq!(j["multithread"], Json::Bool(threads > 1));

    // A urlencoded form to a csrf_exempt view.
    let r = srv.post("/api/form", "application/x-www-form-urlencoded", b"name=J%C3%BCrgen&tag=a&tag=b");
    assert_eq!(r.status, 200, "{}", text(&r));
    let j = srv.json(&r);
    assert_eq!(j["form"]["name"][0].as_str(), Some("J\u{fc}rgen"));
    assert_eq!(j["form"]["tag"].as_array().len(), 2);

    // StreamingHttpResponse: chunked, complete.
    let r = srv.get("/api/stream?n=300");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let want: String = (0..300).map(|i| format!("row {i}\n")).collect();
    assert_eq!(text(&r), want);

    // FileResponse: through wsgi.file_wrapper.
    let r = srv.get("/api/file");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(DATA_LEN.to_string().as_str()));
    assert!(r.body == data(), "FileResponse bytes differ ({} bytes)", r.body.len());

    // The admin's login page renders (sessions, auth, templates, CSRF).
    let r = srv.get("/admin/login/");
    assert_eq!(r.status, 200, "{}\n{}", text(&r), srv.log());
    assert!(r.header("content-type").is_some_and(|t| t.starts_with("text/html")));
    let html = text(&r);
    for needle in ["<form", "id=\"login-form\"", "name=\"username\"", "name=\"password\"", "csrfmiddlewaretoken"] {
        assert!(html.contains(needle), "the login page lacks {needle:?}:\n{html}");
    }
    assert!(cookie_header(&r).contains("csrftoken="), "{:?}", r.headers);
    // /admin/ redirects an anonymous user to the login page.
    let r = srv.get("/admin/");
    assert_eq!(r.status, 302);
    assert!(r.header("location").is_some_and(|l| l.starts_with("/admin/login/")), "{r:?}");

    // A 404 page, and a POST without a CSRF token refused.
    let r = srv.get("/no/such/page");
    assert_eq!(r.status, 404);
    let r = srv.post("/admin/login/", "application/x-www-form-urlencoded", b"username=a&password=b");
    assert_eq!(r.status, 403, "CSRF protection: {}", text(&r));
    srv.assert_log_clean();

    // A view raising: 500, its traceback logged (settings.LOGGING), and the
    // server keeps serving.
    let r = srv.get("/api/boom");
    assert_eq!(r.status, 500);
    let log = srv.wait_log(&["tests marker d7a0"]);
    assert!(log.contains("Traceback"), "{log}");
    for _ in 0..3 {
        assert_eq!(srv.get("/api/hello").status, 200);
    }
}

fn django_upload(threads: usize) {
    let srv = django(threads);
    let file = pseudo_random(10 << 20, 43);
    let (ctype, body) = multipart(&file);
    let r = srv.post("/api/upload", &ctype, &body);
    assert_eq!(r.status, 200, "{}\n{}", text(&r), srv.log());
    let j = srv.json(&r);
    assert_eq!(j["size"].as_u64(), 10 << 20);
    assert_eq!(j["sha256"].as_str(), Some(sha256_hex(&file).as_str()));
    assert_eq!(j["filename"].as_str(), Some("big.bin"));
    assert_eq!(j["on_disk"], Json::Bool(true), "10 MiB goes to a temporary file");
    assert_eq!(j["fields"]["note"].as_str(), Some("hello upload"));
    srv.assert_log_clean();
}

/// The project is a real one: `manage.py check` passes with the venv's Python.
#[test]
fn django_project_passes_manage_py_check() {
    let project = python_dir().join("django_project");
    let dir = temp_dir("python-apps");
    let out = Command::new(venv().join("bin/python"))
        .args(["manage.py", "check"])
        .current_dir(&project)
        .env("TESTS_TMP_DIR", &dir)
        .env_remove("DJANGO_SETTINGS_MODULE")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "manage.py check failed:\n{all}");
    assert!(all.contains("System check identified no issues"), "{all}");
}

both_modes! {
    validated_app_environ => validated_environ;
    validated_app_input => validated_input;
    validated_app_responses => validated_responses;
    latin1_headers_and_underscore_names => latin1_and_underscore_headers;
    error_paths_over_sockets => error_paths;
    flask => flask_routes;
    flask_stream_with_context => flask_stream_with_context;
    contextvars_from_call_to_body => contextvars_reach_the_body;
    thread_local_from_call_to_body => thread_local_reaches_the_body;
    background_python_threads_keep_running => background_threads_keep_running;
    flask_10mib_upload => flask_upload;
    django => django_routes;
    django_10mib_upload => django_upload;
}

// ---------------------------------------------------------------------------
// A small JSON reader for the apps' answers (no serde in this crate).
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

static NULL: Json = Json::Null;

impl Json {
    fn parse(bytes: &[u8]) -> Result<Json, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        let mut p = Parser { s: text.as_bytes(), i: 0 };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing data at {}", p.i));
        }
        Ok(v)
    }

    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(o) => o.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    fn as_u64(&self) -> u64 {
        match self {
            Json::Num(n) if *n >= 0.0 && n.fract() == 0.0 => *n as u64,
            other => panic!("not a count: {other:?}"),
        }
    }

    fn as_array(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            other => panic!("not an array: {other:?}"),
        }
    }

    fn as_object(&self) -> &[(String, Json)] {
        match self {
            Json::Obj(o) => o,
            other => panic!("not an object: {other:?}"),
        }
    }
}

impl std::ops::Index<&str> for Json {
    type Output = Json;
    fn index(&self, key: &str) -> &Json {
        self.get(key).unwrap_or(&NULL)
    }
}

impl std::ops::Index<usize> for Json {
    type Output = Json;
    fn index(&self, i: usize) -> &Json {
        match self {
            Json::Arr(a) => a.get(i).unwrap_or(&NULL),
            _ => &NULL,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> Result<(), String> {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(format!("expected {lit:?} at {}", self.i))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'n') => self.eat("null").map(|()| Json::Null),
            Some(b't') => self.eat("true").map(|()| Json::Bool(true)),
            Some(b'f') => self.eat("false").map(|()| Json::Bool(false)),
            Some(b'"') => self.string().map(Json::Str),
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(items));
                        }
                        _ => return Err(format!("bad array at {}", self.i)),
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(fields));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.ws();
                    self.eat(":")?;
                    fields.push((k, self.value()?));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(fields));
                        }
                        _ => return Err(format!("bad object at {}", self.i)),
                    }
                }
            }
            Some(_) => {
                let start = self.i;
                while self.s.get(self.i).is_some_and(|b| b"+-.eE0123456789".contains(b)) {
                    self.i += 1;
                }
                let n = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
                n.parse().map(Json::Num).map_err(|_| format!("bad number {n:?} at {start}"))
            }
            None => Err("unexpected end".into()),
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?;
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(h).map_err(|e| e.to_string())?, 16).map_err(|e| e.to_string())
    }

    fn string(&mut self) -> Result<String, String> {
        self.eat("\"")?;
        let mut out = String::new();
        loop {
            let start = self.i;
            while self.s.get(self.i).is_some_and(|&b| b != b'"' && b != b'\\') {
                self.i += 1;
            }
            out.push_str(std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?);
            match self.s.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let esc = *self.s.get(self.i + 1).ok_or("unexpected end")?;
                    self.i += 2;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let mut c = self.hex4()?;
                            if (0xD800..0xDC00).contains(&c) {
                                self.eat("\\u")?;
                                let lo = self.hex4()?;
                                c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
                            }
                            out.push(char::from_u32(c).ok_or("bad \\u escape")?);
                        }
                        _ => return Err(format!("bad escape at {}", self.i)),
                    }
                }
                _ => return Err("unterminated string".into()),
            }
        }
    }
}
