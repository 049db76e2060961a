//! Wire-level tests of the reference server over real sockets.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use support::{connect, get, read_response, start};
use wsgi_spec::{AppError, Body, Environ, StartResponse};

fn echo_path(env: Environ, sr: StartResponse) -> Result<Body, AppError> {
    sr.start(StatusCode::OK, HeaderMap::new())?;
    Ok(Body::full(env.path_info))
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let srv = start(echo_path, |s| s.threads(4));
    let mut s = connect(srv.addr);
    let mut raw = Vec::new();
    for p in ["/one", "/two", "/three", "/four"] {
        raw.extend_from_slice(format!("GET {p} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    }
    s.write_all(&raw).unwrap();
    for p in ["/one", "/two", "/three", "/four"] {
        let r = read_response(&mut s, false).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, p.as_bytes());
    }
}

#[test]
fn a_client_leaving_a_slow_stream_gets_the_body_closed() {
    let (closed_tx, closed_rx) = mpsc::channel::<usize>();
    let closed_tx = Mutex::new(closed_tx);
    let app = move |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        let produced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let p2 = Arc::clone(&produced);
        let tx = closed_tx.lock().unwrap().clone();
        Ok(Body::from_iter((0..2000).map(move |i| {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
            p2.fetch_add(1, Ordering::SeqCst);
            Ok::<_, AppError>(Bytes::from(vec![b'.'; 1024]))
        }))
        .on_close(move || {
            let _ = tx.send(produced.load(Ordering::SeqCst));
        }))
    };
    let srv = start(app, |s| s);
    let mut s = connect(srv.addr);
    s.write_all(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(n > 0);
    drop(s);
    let produced = closed_rx.recv_timeout(Duration::from_secs(10)).expect("body closed after disconnect");
    assert!(produced < 2000, "iteration stopped early, produced {produced}");
}

#[test]
fn a_full_pool_and_queue_answer_503_quickly() {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let entered_tx = Mutex::new(entered_tx);
    let app = move |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        entered_tx.lock().unwrap().send(()).unwrap();
        release_rx.lock().unwrap().recv_timeout(Duration::from_secs(10)).ok();
        sr.start(StatusCode::OK, HeaderMap::new())?;
        Ok(Body::full("slow"))
    };
    let srv = start(app, |s| s.threads(1).queue(0));
    let addr = srv.addr;
    let first = std::thread::spawn(move || get(addr, "/first"));
    entered_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let t = Instant::now();
    let busy = get(srv.addr, "/second");
    assert_eq!(busy.status, 503);
    assert!(t.elapsed() < Duration::from_secs(2));
    release_tx.send(()).unwrap();
    assert_eq!(first.join().unwrap().status, 200);
    // The app was entered once only: the refused request never reached it.
    assert!(entered_rx.try_recv().is_err());
}

#[test]
fn graceful_shutdown_finishes_in_flight_requests_and_refuses_new_ones() {
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let entered_tx = Mutex::new(entered_tx);
    let app = move |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        entered_tx.lock().unwrap().send(()).unwrap();
        std::thread::sleep(Duration::from_millis(800));
        sr.start(StatusCode::OK, HeaderMap::new())?;
        Ok(Body::full("finished"))
    };
    let mut srv = start(app, |s| s.graceful_timeout(Duration::from_secs(10)));
    let addr = srv.addr;
    let inflight = std::thread::spawn(move || get(addr, "/slow"));
    entered_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    srv.shutdown.graceful();
    let r = inflight.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"finished");
    srv.thread.take().unwrap().join().unwrap();
    assert!(std::net::TcpStream::connect(addr).is_err(), "listener closed after shutdown");
}

#[test]
fn a_panicking_app_gets_a_500_and_the_server_keeps_serving() {
    let app = |env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        if &env.path_info[..] == b"/panic" {
            panic!("boom");
        }
        sr.start(StatusCode::OK, HeaderMap::new())?;
        Ok(Body::full("fine"))
    };
    let srv = start(app, |s| s);
    assert_eq!(get(srv.addr, "/panic").status, 500);
    assert_eq!(get(srv.addr, "/ok").body, b"fine");
}

#[test]
fn an_error_after_the_head_aborts_the_connection() {
    let app = |_env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        let mut i = 0;
        Ok(Body::from_iter(std::iter::from_fn(move || {
            i += 1;
            match i {
                1 => Some(Ok(Bytes::from_static(b"partial"))),
                2 => Some(Err::<Bytes, AppError>("mid-body failure".into())),
                _ => None,
            }
        })))
    };
    let srv = start(app, |s| s);
    let mut s = connect(srv.addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    // The connection is closed (read_to_end returned) and whatever arrived
    // is visibly incomplete: a chunked response without its last chunk.
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 200"), "{text:?}");
    assert!(!text.ends_with("0\r\n\r\n"), "response must not look complete: {text:?}");
}

#[test]
fn unix_socket_binds_are_served() {
    let dir = std::env::temp_dir().join(format!("wsgi-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let bound = wsgi_server::Server::new()
        .bind(wsgi_server::Bind::Unix { path: path.clone(), mode: Some(0o600) })
        .bind_all()
        .unwrap();
    let handle = bound.shutdown_handle();
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(bound.serve(Arc::new(echo_path))).unwrap();
    });
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    s.write_all(b"GET /over-unix HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.body, b"/over-unix");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    handle.immediate();
    t.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn inherited_fd_binds_are_served() {
    use std::os::fd::IntoRawFd;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let fd = l.into_raw_fd();
    let bound = wsgi_server::Server::new().bind(format!("fd://{fd}").parse().unwrap()).bind_all().unwrap();
    let handle = bound.shutdown_handle();
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(bound.serve(Arc::new(echo_path))).unwrap();
    });
    assert_eq!(get(addr, "/via-fd").body, b"/via-fd");
    handle.immediate();
    t.join().unwrap();
}

#[test]
fn a_client_leaving_mid_body_gets_an_input_error_and_the_body_closed() {
    let (tx, rx) = mpsc::channel::<String>();
    let tx = Mutex::new(tx);
    let closed = Arc::new(AtomicBool::new(false));
    let closed2 = Arc::clone(&closed);
    let app = move |mut env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        let res = env.input.read_all();
        tx.lock().unwrap().send(format!("{:?}", res.as_ref().map(Bytes::len).map_err(|e| e.kind()))).unwrap();
        res?;
        sr.start(StatusCode::OK, HeaderMap::new())?;
        let closed = Arc::clone(&closed2);
        Ok(Body::empty().on_close(move || closed.store(true, Ordering::SeqCst)))
    };
    let srv = start(app, |s| s);
    let mut s = connect(srv.addr);
    s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nonly a few bytes").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(s);
    let seen = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(seen.starts_with("Err"), "the app saw {seen}");
    assert_eq!(get(srv.addr, "/after").status, 200, "server still serves");
}

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn remote(env: Environ, sr: StartResponse) -> Result<Body, AppError> {
    let mut h = HeaderMap::new();
    h.insert("x-app", "yes".parse().unwrap());
    sr.start(StatusCode::OK, h)?;
    Ok(Body::full(format!(
        "{} {} {}",
        env.remote_addr.map(|a| a.to_string()).unwrap_or_default(),
        env.url_scheme.as_str(),
        env.server_name
    )))
}

#[test]
fn access_log_lines_use_gunicorn_atoms() {
    let buf = SharedBuf::default();
    let format =
        wsgi_server::accesslog::LogFormat::gunicorn(r#"%(h)s "%(r)s" %(s)s %(b)s "%(a)s" %({x-app}o)s %({x-req}i)s"#)
            .unwrap();
    let log = wsgi_server::accesslog::AccessLog::new(format, buf.clone());
    let srv = start(remote, |s| s.access_log(log).forwarded_allow_ips(wsgi_server::proxy::ForwardedAllow::none()));
    let mut s = connect(srv.addr);
    s.write_all(b"GET /p?q=1 HTTP/1.1\r\nHost: t\r\nUser-Agent: probe/1\r\nX-Req: abc\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 200);
    // The line is written after the response: wait for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        if !text.is_empty() || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let len = r.body.len();
    assert_eq!(line, format!("127.0.0.1 \"GET /p?q=1 HTTP/1.1\" 200 {len} \"probe/1\" yes abc\n"));
}

#[test]
fn forwarded_headers_count_only_from_trusted_proxies() {
    let trusted = start(remote, |s| s);
    let req = b"GET / HTTP/1.1\r\nHost: backend\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example\r\nConnection: close\r\n\r\n";
    let mut s = connect(trusted.addr);
    s.write_all(req).unwrap();
    assert_eq!(read_response(&mut s, false).unwrap().body, b"203.0.113.7 https shop.example");

    let untrusted = start(remote, |s| s.forwarded_allow_ips("10.9.9.9".parse().unwrap()));
    let mut s = connect(untrusted.addr);
    s.write_all(req).unwrap();
    assert_eq!(read_response(&mut s, false).unwrap().body, b"127.0.0.1 http backend");
}

/// Inline mode: every request runs on a runtime thread, never on an app
/// thread; large responses are produced in steps, request bodies (chunked,
/// or large enough to be spooled to a file) are read first.
#[test]
fn inline_mode_serves_small_and_large_requests_alike() {
    let app = |mut env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        let input = env.input.read_all()?;
        sr.start(StatusCode::OK, HeaderMap::new())?;
        let thread = std::thread::current().name().unwrap_or("").to_owned();
        let n: usize = String::from_utf8_lossy(&env.query_string).parse().unwrap_or(1);
        let head = Bytes::from(format!("{} {}\n", input.len(), thread));
        Ok(Body::from_iter(
            std::iter::once(Ok::<_, AppError>(head))
                .chain((0..n).map(|_| Ok::<_, AppError>(Bytes::from(vec![b'z'; 64 * 1024])))),
        ))
    };
    let srv = start(app, |s| s.inline(true).threads(2));
    // Small: inline, on a runtime thread.
    let r = get(srv.addr, "/?1");
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.starts_with("0 "), "{text:.40}");
    assert_eq!(r.body.len(), text.find('\n').unwrap() + 1 + 64 * 1024);
    // Large (16 x 64 KiB): starts inline, finishes on an app thread.
    let r = get(srv.addr, "/?16");
    let first_line = String::from_utf8_lossy(&r.body[..r.body.iter().position(|&b| b == b'\n').unwrap()]).into_owned();
    assert_eq!(r.body.len(), first_line.len() + 1 + 16 * 64 * 1024);
    assert!(r.body[first_line.len() + 1..].iter().all(|&b| b == b'z'));
    // A chunked request body is read first, then the app runs inline.
    let mut s = connect(srv.addr);
    s.write_all(b"POST /?0 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false).unwrap();
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(text.starts_with("5 ") && !text.contains("wsgi-app-"), "{text}");
    // A 3 MiB body is spooled to a file, then the app runs inline.
    let mut s = connect(srv.addr);
    s.write_all(b"POST /?0 HTTP/1.1\r\nHost: t\r\nContent-Length: 3145728\r\nConnection: close\r\n\r\n").unwrap();
    s.write_all(&vec![b'q'; 3 << 20]).unwrap();
    let r = read_response(&mut s, false).unwrap();
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(text.starts_with("3145728 ") && !text.contains("wsgi-app-"), "{text:.60}");
}

/// Behind a reverse proxy on a Unix socket there is no peer address: the
/// proxy (a local process) is trusted for X-Forwarded-*, as in Gunicorn.
#[test]
fn unix_socket_peers_are_trusted_for_forwarded_headers() {
    let dir = std::env::temp_dir().join(format!("wsgi-unix-fwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let bound =
        wsgi_server::Server::new().bind(wsgi_server::Bind::Unix { path: path.clone(), mode: None }).bind_all().unwrap();
    let handle = bound.shutdown_handle();
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(bound.serve(Arc::new(remote))).unwrap();
    });
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: backend\r\nX-Forwarded-For: 198.51.100.9\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.body, b"198.51.100.9 https backend");
    handle.immediate();
    t.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Read until the server closes the connection (or `limit` passes); the
/// time it took, or `None` if it stayed open.
fn time_to_close(s: &mut std::net::TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_keep_alive_time() {
    let srv = start(echo_path, |s| s.keep_alive(Duration::from_millis(400)));
    let mut s = connect(srv.addr);
    s.write_all(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, false).unwrap().body, b"/a");
    let closed = time_to_close(&mut s, Duration::from_secs(5)).expect("the idle connection was never closed");
    assert!(closed >= Duration::from_millis(300), "closed after {closed:?}, before the keep-alive time");
    // The timer is coarse: at most twice the time (plus scheduling slack).
    assert!(closed < Duration::from_millis(1200), "closed after {closed:?}, later than twice the keep-alive time");
}

#[test]
fn a_head_sent_slower_than_the_keep_alive_time_is_cut_off() {
    let called = Arc::new(AtomicBool::new(false));
    let c2 = Arc::clone(&called);
    let app = move |env: Environ, sr: StartResponse| {
        c2.store(true, Ordering::SeqCst);
        echo_path(env, sr)
    };
    let srv = start(app, |s| s.keep_alive(Duration::from_millis(400)));
    let mut s = connect(srv.addr);
    // A byte every 50 ms: each one arrives well within the timeout, but
    // the head as a whole does not.
    let raw = b"GET /slow HTTP/1.1\r\nHost: t\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let start = Instant::now();
    let mut sent = 0;
    for b in raw {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(50));
        if start.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let closed = time_to_close(&mut s, Duration::from_secs(3));
    assert!(sent < raw.len(), "the whole head went through byte by byte ({:?})", start.elapsed());
    assert!(closed.is_some(), "the slow connection stayed open");
    assert!(start.elapsed() < Duration::from_secs(3), "cut off after {:?}", start.elapsed());
    assert!(!called.load(Ordering::SeqCst), "the app was called");
    // Others are still served.
    assert_eq!(get(srv.addr, "/fast").status, 200);
}

#[test]
fn a_busy_keep_alive_connection_outlives_many_keep_alive_times() {
    let srv = start(echo_path, |s| s.keep_alive(Duration::from_millis(200)));
    let mut s = connect(srv.addr);
    let start = Instant::now();
    let mut n = 0;
    // Requests 20 ms apart for five times the keep-alive time: each head
    // is timed from when the server starts waiting for it.
    while start.elapsed() < Duration::from_millis(1000) {
        s.write_all(format!("GET /{n} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).unwrap();
        let r =
            read_response(&mut s, false).unwrap_or_else(|| panic!("request {n} after {:?}: closed", start.elapsed()));
        assert_eq!(r.body, format!("/{n}").as_bytes());
        n += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(n > 20);
    // Then idle: the wait for the next head is timed from when it began,
    // however late in the timer's period the last request came.
    let closed = time_to_close(&mut s, Duration::from_secs(3)).expect("the idle connection was never closed");
    assert!(closed >= Duration::from_millis(150), "closed {closed:?} after the last response");
    assert!(closed < Duration::from_millis(700), "closed {closed:?} after the last response");
}
