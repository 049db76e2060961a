//! The kit's own applications: one router app per server under test, whose
//! routes (under `/__kit/`) each exercise one server rule, and an echo app
//! for every other path.
//!
//! The app records every call in its [`LaneState`] (route, path, body
//! outcome), so a check can tell whether the server called the app at all;
//! per-check signals (close hooks, gates a streaming body waits on, notes)
//! are keyed by an `id` query parameter.
//!
//! The echo response ([`Echo`]) is self-describing text, one `KEY HEX` per
//! line (`-` is the empty byte string):
//!
//! ```text
//! wsgi-conformance-echo 1
//! call 3
//! method 474554
//! script_name -
//! path_info 2f
//! query -
//! protocol 485454502f312e31
//! env 485454505f484f5354 6c6f63616c686f7374
//! input_terminated 1
//! body -
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use wsgi_spec::ext::InputTerminated;
use wsgi_spec::{AppError, Application, Body, Environ, Error, FileBody, StartResponse, Status};

/// The first line of an echo body.
pub const ECHO_MAGIC: &str = "wsgi-conformance-echo 1";

/// Prefix of the kit's special routes; every other path is echoed.
pub const ROUTE_PREFIX: &str = "/__kit/";

/// What the app saw of one call.
#[derive(Debug, Clone)]
pub struct Call {
    /// The route (`echo` for the echo app, `sync` for health requests).
    pub route: String,
    /// `SCRIPT_NAME + PATH_INFO`.
    pub path: Vec<u8>,
    /// `None` while the body is not read (or never read), else the bytes
    /// read or the read error.
    pub body: Option<Result<Vec<u8>, String>>,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    closes: HashMap<String, u32>,
    gates: HashSet<String>,
    notes: HashMap<String, Vec<String>>,
}

/// What the kit's app records for one server under test.
#[derive(Default)]
pub struct LaneState {
    inner: Mutex<Inner>,
    cv: Condvar,
}

impl std::fmt::Debug for LaneState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneState").finish_non_exhaustive()
    }
}

impl LaneState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, route: &str, path: Vec<u8>) -> usize {
        let mut g = self.lock();
        g.calls.push(Call { route: route.to_owned(), path, body: None });
        let n = g.calls.len();
        drop(g);
        self.cv.notify_all();
        n
    }

    fn set_body(&self, call: usize, body: Result<Vec<u8>, String>) {
        if let Some(c) = self.lock().calls.get_mut(call - 1) {
            c.body = Some(body);
        }
        self.cv.notify_all();
    }

    /// A mark to pass to [`calls_since`](Self::calls_since).
    pub fn mark(&self) -> usize {
        self.lock().calls.len()
    }

    /// Calls after `mark`, health requests (`sync`) left out.
    pub fn calls_since(&self, mark: usize) -> Vec<Call> {
        self.lock().calls.iter().skip(mark).filter(|c| c.route != "sync").cloned().collect()
    }

    /// Wait until a call satisfies `pred` (after `mark`), up to `timeout`.
    pub fn wait_call(&self, mark: usize, timeout: Duration, pred: impl Fn(&Call) -> bool) -> Option<Call> {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            if let Some(c) = g.calls.iter().skip(mark).find(|c| pred(c)) {
                return Some(c.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            g = self.cv.wait_timeout(g, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    fn closed(&self, id: &str) {
        *self.lock().closes.entry(id.to_owned()).or_insert(0) += 1;
        self.cv.notify_all();
    }

    /// How many times the body of request `id` was closed, waiting up to
    /// `timeout` for the first close and then `settle` for more.
    pub fn wait_closes(&self, id: &str, timeout: Duration, settle: Duration) -> u32 {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        while g.closes.get(id).copied().unwrap_or(0) == 0 {
            let now = Instant::now();
            if now >= deadline {
                return 0;
            }
            g = self.cv.wait_timeout(g, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
        drop(g);
        std::thread::sleep(settle);
        self.lock().closes.get(id).copied().unwrap_or(0)
    }

    /// Open the gate `id` a streaming body waits on.
    pub fn open_gate(&self, id: &str) {
        self.lock().gates.insert(id.to_owned());
        self.cv.notify_all();
    }

    fn wait_gate(&self, id: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        while !g.gates.contains(id) {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = self.cv.wait_timeout(g, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }

    fn note(&self, id: &str, text: impl Into<String>) {
        self.lock().notes.entry(id.to_owned()).or_default().push(text.into());
        self.cv.notify_all();
    }

    /// The notes the app left for `id`, waiting up to `timeout` for the first.
    pub fn wait_notes(&self, id: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            if let Some(n) = g.notes.get(id) {
                return n.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                return Vec::new();
            }
            g = self.cv.wait_timeout(g, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }
}

/// Hex of bytes, `-` when empty (the corpus data file's convention).
#[must_use]
pub fn hex(b: &[u8]) -> String {
    if b.is_empty() {
        return "-".to_owned();
    }
    let mut s = String::with_capacity(b.len() * 2);
    for byte in b {
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

/// Bytes from [`hex`] text.
#[must_use]
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if s == "-" {
        return Some(Vec::new());
    }
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// What the echo app saw, as it reports it in its response body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Echo {
    /// The app call number on this server.
    pub call: u64,
    /// `REQUEST_METHOD`.
    pub method: Vec<u8>,
    /// `SCRIPT_NAME`.
    pub script_name: Vec<u8>,
    /// `PATH_INFO`.
    pub path_info: Vec<u8>,
    /// `QUERY_STRING`.
    pub query: Vec<u8>,
    /// `SERVER_PROTOCOL`.
    pub protocol: Vec<u8>,
    /// Every string key of the environ (`Environ::cgi_vars`), in order.
    pub env: Vec<(String, Vec<u8>)>,
    /// The `InputTerminated` extension (`wsgi.input_terminated`) was present.
    pub input_terminated: bool,
    /// The body, read fully from `wsgi.input`.
    pub body: Vec<u8>,
}

impl Echo {
    fn from_environ(call: u64, env: &Environ, body: Vec<u8>) -> Echo {
        Echo {
            call,
            method: env.method.as_str().as_bytes().to_vec(),
            script_name: env.script_name.to_vec(),
            path_info: env.path_info.to_vec(),
            query: env.query_string.to_vec(),
            protocol: env.protocol_str().as_bytes().to_vec(),
            env: env.cgi_vars().into_iter().map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
            input_terminated: env.extensions.get::<InputTerminated>().is_some(),
            body,
        }
    }

    /// The text form.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = format!("{ECHO_MAGIC}\ncall {}\n", self.call);
        for (k, v) in [
            ("method", &self.method),
            ("script_name", &self.script_name),
            ("path_info", &self.path_info),
            ("query", &self.query),
            ("protocol", &self.protocol),
        ] {
            out.push_str(&format!("{k} {}\n", hex(v)));
        }
        for (k, v) in &self.env {
            out.push_str(&format!("env {} {}\n", hex(k.as_bytes()), hex(v)));
        }
        out.push_str(&format!("input_terminated {}\n", u8::from(self.input_terminated)));
        out.push_str(&format!("body {}\n", hex(&self.body)));
        out
    }

    /// Parse the text form; `None` when it is not an echo body.
    #[must_use]
    pub fn parse(text: &[u8]) -> Option<Echo> {
        let text = std::str::from_utf8(text).ok()?;
        let mut lines = text.lines();
        if lines.next()? != ECHO_MAGIC {
            return None;
        }
        let mut e = Echo::default();
        let mut saw_body = false;
        for line in lines {
            let mut parts = line.split(' ');
            let key = parts.next()?;
            let a = parts.next()?;
            match key {
                "call" => e.call = a.parse().ok()?,
                "method" => e.method = unhex(a)?,
                "script_name" => e.script_name = unhex(a)?,
                "path_info" => e.path_info = unhex(a)?,
                "query" => e.query = unhex(a)?,
                "protocol" => e.protocol = unhex(a)?,
                "env" => {
                    let k = String::from_utf8(unhex(a)?).ok()?;
                    e.env.push((k, unhex(parts.next()?)?));
                }
                "input_terminated" => e.input_terminated = a == "1",
                "body" => {
                    e.body = unhex(a)?;
                    saw_body = true;
                }
                _ => return None,
            }
        }
        saw_body.then_some(e)
    }

    /// The value of an environ key.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_slice())
    }

    /// `SCRIPT_NAME + PATH_INFO`.
    #[must_use]
    pub fn path(&self) -> Vec<u8> {
        [self.script_name.as_slice(), self.path_info.as_slice()].concat()
    }
}

/// The kit's router application for one server under test.
#[derive(Debug, Clone)]
pub struct KitApp {
    state: Arc<LaneState>,
}

impl KitApp {
    /// An app recording into `state`.
    #[must_use]
    pub fn new(state: Arc<LaneState>) -> KitApp {
        KitApp { state }
    }
}

fn param<'a>(query: &'a [u8], name: &str) -> Option<&'a str> {
    let q = std::str::from_utf8(query).ok()?;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

fn num(query: &[u8], name: &str, default: u64) -> u64 {
    param(query, name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn text_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h
}

fn err(msg: &str) -> AppError {
    msg.to_owned().into()
}

type Chunk = Result<Bytes, AppError>;

/// The bytes of the kit's file bodies: `(i * 7 + 3) % 251` for byte `i`.
#[must_use]
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| u8::try_from((i * 7 + 3) % 251).unwrap_or(0)).collect()
}

/// A temporary file holding `data`, positioned at `offset`, already unlinked.
fn temp_file(data: &[u8], offset: u64) -> std::io::Result<std::fs::File> {
    use std::io::{Seek, SeekFrom, Write};
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("wsgi-conformance-{}-{n}.bin", std::process::id()));
    let mut f = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    let _ = std::fs::remove_file(&path);
    f.write_all(data)?;
    f.seek(SeekFrom::Start(offset))?;
    Ok(f)
}

impl Application for KitApp {
    fn call(&self, mut env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        let path = [env.script_name.as_ref(), env.path_info.as_ref()].concat();
        let route = path
            .strip_prefix(ROUTE_PREFIX.as_bytes())
            .map(|rest| {
                let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
                String::from_utf8_lossy(&rest[..end]).into_owned()
            })
            .unwrap_or_else(|| "echo".to_owned());
        let call = self.state.record(&route, path.clone());
        let q = env.query_string.clone();
        let id = param(&q, "id").unwrap_or("").to_owned();
        let st = Arc::clone(&self.state);
        match route.as_str() {
            "sync" => {
                sr.start(StatusCode::OK, text_headers())?;
                Ok(Body::full("ok"))
            }
            "hello" => {
                sr.start(StatusCode::OK, text_headers())?;
                let mut out = b"hello ".to_vec();
                out.extend_from_slice(&path);
                Ok(Body::full(out))
            }
            "no_read" => {
                sr.start(StatusCode::OK, text_headers())?;
                Ok(Body::full("did-not-read"))
            }
            "read_past" => {
                // IN-2: read(n) past Content-Length gets what is there, then EOF.
                let t0 = Instant::now();
                let a = env.input.read_size(100)?;
                let b = env.input.read_size(100)?;
                let c = env.input.read_size(1)?;
                let ms = t0.elapsed().as_millis();
                sr.start(StatusCode::OK, text_headers())?;
                Ok(Body::full(format!("{}\n{}\n{}\n{ms}\n", hex(&a), hex(&b), hex(&c))))
            }
            "status" => {
                let code = StatusCode::from_u16(u16::try_from(num(&q, "code", 200)).unwrap_or(200))?;
                sr.start(code, text_headers())?;
                Ok(if num(&q, "body", 0) == 1 { Body::full("body-the-server-must-not-send") } else { Body::empty() })
            }
            "stream_status" => {
                // A streamed (unknown length) body for HEAD.
                sr.start(StatusCode::OK, text_headers())?;
                Ok(Body::from_iter((0..3).map(|i| Ok::<_, AppError>(Bytes::from(format!("chunk{i};"))))))
            }
            "reason" => {
                sr.start(Status::parse("299 Custom Reason Phrase")?, text_headers())?;
                Ok(Body::full("custom"))
            }
            "empty_then_raise" => {
                // SR-9: the head is not sent before a non-empty chunk.
                sr.start(StatusCode::OK, text_headers())?;
                let chunks: Vec<Chunk> = vec![Ok(Bytes::new()), Err(err("kit: error after an empty chunk"))];
                Ok(Body::from_iter(chunks))
            }
            "stream_gated" => {
                // BODY-1/STRM-1: the second chunk waits for the client to
                // have received the first.
                sr.start(StatusCode::OK, text_headers())?;
                let mut step = 0;
                Ok(Body::from_iter(std::iter::from_fn(move || {
                    step += 1;
                    match step {
                        1 => Some(Ok::<_, AppError>(Bytes::from_static(b"first-chunk;"))),
                        2 => {
                            let opened = st.wait_gate(&id, Duration::from_secs(3));
                            st.note(&id, if opened { "gate-opened" } else { "gate-timeout" });
                            Some(Ok(Bytes::from_static(b"second-chunk;")))
                        }
                        _ => None,
                    }
                })))
            }
            "close" => {
                // BODY-3: close() (Drop) on every path.
                sr.start(StatusCode::OK, text_headers())?;
                let kind = param(&q, "kind").unwrap_or("normal").to_owned();
                let mut step = 0u32;
                let t0 = Instant::now();
                let body = Body::from_iter(std::iter::from_fn(move || {
                    step += 1;
                    match kind.as_str() {
                        "error" => match step {
                            1 => Some(Ok::<_, AppError>(Bytes::from_static(b"e1;"))),
                            2 => Some(Err(err("kit: error while iterating"))),
                            _ => None,
                        },
                        "endless" => {
                            if t0.elapsed() > Duration::from_secs(10) {
                                return None;
                            }
                            std::thread::sleep(Duration::from_millis(5));
                            Some(Ok(Bytes::from(vec![b'z'; 16 * 1024])))
                        }
                        _ => (step <= 3).then(|| Ok(Bytes::from(format!("c{step};")))),
                    }
                }));
                Ok(body.on_close(move || st.closed(&id)))
            }
            "cl" => {
                let declared = num(&q, "declared", 0);
                let actual = usize::try_from(num(&q, "actual", 0)).unwrap_or(0);
                let mut h = text_headers();
                h.insert(CONTENT_LENGTH, HeaderValue::from(declared));
                sr.start(StatusCode::OK, h)?;
                let half = actual / 2;
                let chunks: Vec<Chunk> =
                    vec![Ok(Bytes::from(vec![b'x'; half])), Ok(Bytes::from(vec![b'y'; actual - half]))];
                Ok(Body::from_iter(chunks))
            }
            "nocl" => {
                sr.start(StatusCode::OK, text_headers())?;
                let n = num(&q, "n", 3);
                Ok(Body::from_iter((0..n).map(|i| Ok::<_, AppError>(Bytes::from(format!("chunk{i};"))))))
            }
            "write" => {
                let write = sr.start(StatusCode::OK, text_headers())?;
                write.write("part1;")?;
                write.write("part2;")?;
                Ok(Body::from_iter([Ok::<_, AppError>(Bytes::from_static(b"part3"))]))
            }
            "own_headers" => {
                // SR-6: the server adds Date/Server only when the app did not.
                let mut h = text_headers();
                h.insert("date", HeaderValue::from_static("Mon, 01 Jan 2001 00:00:00 GMT"));
                h.insert("server", HeaderValue::from_static("kit-app"));
                sr.start(StatusCode::OK, h)?;
                Ok(Body::full("own headers"))
            }
            "file" => {
                // FW-6: a file body, from the file's current position, cut to
                // the app's Content-Length when it gives one.
                let size = usize::try_from(num(&q, "size", 0)).unwrap_or(0);
                let offset = num(&q, "offset", 0);
                let mut h = text_headers();
                if let Some(cl) = param(&q, "cl").and_then(|v| v.parse::<u64>().ok()) {
                    h.insert(CONTENT_LENGTH, HeaderValue::from(cl));
                }
                let file = temp_file(&pattern(size), offset)?;
                sr.start(StatusCode::OK, h)?;
                Ok(Body::file(FileBody::new(file)?))
            }
            "error_before" => Err(err("kit: error before start_response")),
            "panic_before" => panic!("kit: panic before start_response (expected by the EXC-5 check)"),
            "error_after" => {
                sr.start(StatusCode::OK, text_headers())?;
                let chunks: Vec<Chunk> =
                    vec![Ok(Bytes::from(vec![b'p'; 1000])), Err(err("kit: error after the head was sent"))];
                Ok(Body::from_iter(chunks))
            }
            "exc_info_before" => {
                let mut h = text_headers();
                h.insert("x-first", HeaderValue::from_static("1"));
                sr.start(StatusCode::OK, h)?;
                sr.start_with_exc_info(StatusCode::INTERNAL_SERVER_ERROR, text_headers(), err("kit: replaced"))?;
                Ok(Body::full("replaced"))
            }
            "exc_info_after" => {
                sr.start(StatusCode::OK, text_headers())?;
                let sr2 = sr.clone();
                let mut step = 0;
                Ok(Body::from_iter(std::iter::from_fn(move || {
                    step += 1;
                    match step {
                        1 => Some(Ok::<_, AppError>(Bytes::from(vec![b'a'; 1000]))),
                        2 => {
                            let r = sr2.start_with_exc_info(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                text_headers(),
                                err("kit: late error"),
                            );
                            match r {
                                Err(e @ Error::HeadersSent(_)) => {
                                    st.note(&id, "raised HeadersSent");
                                    Some(Err(e.into()))
                                }
                                Err(e) => {
                                    st.note(&id, format!("raised another error: {e}"));
                                    Some(Err(e.into()))
                                }
                                Ok(_) => {
                                    st.note(&id, "did not raise");
                                    Some(Err(err("kit: start_response(exc_info) did not raise")))
                                }
                            }
                        }
                        _ => None,
                    }
                })))
            }
            "start_twice" => {
                sr.start(StatusCode::OK, text_headers())?;
                let second = sr.start(StatusCode::OK, text_headers());
                Ok(Body::full(match second {
                    Err(Error::AlreadyStarted) => "raised AlreadyStarted".to_owned(),
                    Err(e) => format!("raised another error: {e}"),
                    Ok(_) => "did not raise".to_owned(),
                }))
            }
            "hop_by_hop" => {
                let mut h = text_headers();
                h.insert("connection", HeaderValue::from_static("close"));
                match sr.start(StatusCode::OK, h) {
                    Err(e) => {
                        st.note(&id, format!("raised: {e}"));
                        Err(e.into())
                    }
                    Ok(_) => {
                        st.note(&id, "accepted");
                        Ok(Body::full("hop-by-hop header accepted"))
                    }
                }
            }
            _ => {
                // The echo app: everything it saw, the body read fully.
                let body = env.input.read_all();
                self.state.set_body(call, body.as_ref().map(|b| b.to_vec()).map_err(ToString::to_string));
                let body = body?;
                let echo = Echo::from_environ(call as u64, &env, body.to_vec());
                sr.start(StatusCode::OK, text_headers())?;
                Ok(Body::full(echo.encode()))
            }
        }
    }
}
