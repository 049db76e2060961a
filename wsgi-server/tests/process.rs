//! The `wsgi-server` master and its worker processes, driven like an
//! operator would: real processes, real signals (`libc::kill`), real sockets.
//!
//! Each test starts the real binary as a child process serving
//! `tests/python/process_app.py` (`/` answers `pid=<worker pid>`,
//! `/sleep?S` sleeps S seconds first), with `VIRTUAL_ENV` from
//! `$WSGI_TEST_VENV` and its stderr (the error log) captured to a file. The
//! workers are found from the responses (`pid=`) and from `/proc` (the live
//! processes whose parent is the master).
//!
//! Covered: reload (`HUP`) under load, a killed worker, a worker timeout with
//! the Python stack in the error log, max-requests recycling, graceful `TERM`
//! with the pid file, `TTIN`/`TTOU`, `USR1` reopening a rotated access log,
//! systemd socket activation, and the command's exit statuses for bad input
//! (flags, values, environment variables, config files, applications).
//!
//! Run: `bash scripts/python-venv.sh` (prints the venv path), then
//! `WSGI_TEST_VENV=$PWD/.venv cargo test -p wsgi-server --features python,tls --test process`.
//! HUP under load and max-requests require that no request fails while
//! workers stop gracefully: a stopping worker answers `Connection: close` and
//! still serves connections it accepted but had not read yet.
#![cfg(feature = "python")]
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use support::python::{free_port, python_dir, temp_dir, venv, STARTUP};

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{read_response, Resp};

// ---------------------------------------------------------------------------
// The server under test, as a child process.
// ---------------------------------------------------------------------------

/// How long one request may take in the tests that do not sleep on purpose.
const REQUEST: Duration = Duration::from_secs(10);

/// The variables the command reads that must not leak in from whoever runs
/// the tests: `WSGI_SERVER_*`, `WEB_CONCURRENCY`, the systemd ones, Python's.
fn leaking_vars() -> Vec<String> {
    std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .filter(|k| {
            k.starts_with("WSGI_SERVER_")
                || k.starts_with("LISTEN_")
                || ["WEB_CONCURRENCY", "NOTIFY_SOCKET", "PYTHONPATH", "PYTHONHOME"].contains(&k.as_str())
        })
        .collect()
}

/// The command with a clean environment and `VIRTUAL_ENV` the test venv.
fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsgi-server"));
    for k in leaking_vars() {
        cmd.env_remove(k);
    }
    cmd.env("VIRTUAL_ENV", venv()).stdin(Stdio::null()).stdout(Stdio::null());
    cmd
}

fn kill(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) on a process this test started (or one of its workers).
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig}): {}", std::io::Error::last_os_error());
}

/// The live (not zombie) children of `parent`, read from `/proc/*/stat`.
fn children_of(parent: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return out };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let ppid = fields.next().and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(parent) && state != "Z" && state != "X" {
            out.insert(pid);
        }
    }
    out
}

/// Poll `check` every 20 ms until it gives `Some`, or panic after `within`.
fn wait_for<T>(within: Duration, what: impl Fn() -> String, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {}", what());
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Server {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Server {
    /// Start `wsgi-server process_app --bind 127.0.0.1:PORT` plus `extra`,
    /// and wait until it answers.
    fn start(extra: &[&str]) -> Server {
        let dir = temp_dir("process-tests");
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut cmd = command();
        cmd.arg("process_app")
            .args(["--bind", &addr.to_string(), "--pythonpath"])
            .arg(python_dir())
            .args(extra)
            .current_dir(&dir)
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap());
        Server::spawn(cmd, addr, dir)
    }

    fn spawn(mut cmd: Command, addr: SocketAddr, dir: PathBuf) -> Server {
        let child = cmd.spawn().unwrap();
        let mut server = Server { child, addr, dir };
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("wsgi-server exited with {status} before serving; its stderr:\n{}", server.log());
            }
            if get(addr, "/", Duration::from_secs(2)).is_ok() {
                return server;
            }
            assert!(Instant::now() < deadline, "wsgi-server did not serve within {STARTUP:?}:\n{}", server.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    fn signal(&self, sig: libc::c_int) {
        kill(self.pid(), sig);
    }

    /// The master's live worker processes.
    fn workers(&self) -> BTreeSet<i32> {
        children_of(self.pid())
    }

    /// Wait until the master has exactly `n` live workers; them.
    fn wait_workers(&self, n: usize, within: Duration) -> BTreeSet<i32> {
        wait_for(
            within,
            || format!("{n} workers (now {:?}); error log:\n{}", self.workers(), self.log()),
            || Some(self.workers()).filter(|w| w.len() == n),
        )
    }

    /// Wait until each of the master's `n` workers has answered a request;
    /// their pids. An inline worker (`--threads 1`) does not accept while
    /// its app runs, so `n` slow requests sent 80 ms apart, each sleeping
    /// until the last one is sent, land on `n` different workers. (Sent at
    /// once, one worker could accept them all in one go.)
    fn wait_serving(&self, n: usize, within: Duration) -> BTreeSet<i32> {
        let deadline = Instant::now() + within;
        let mut seen = BTreeSet::new();
        loop {
            let workers = self.workers();
            if workers.len() == n && workers.is_subset(&seen) {
                return workers;
            }
            assert!(
                Instant::now() < deadline,
                "not all of the workers {workers:?} answered within {within:?} (answered: {seen:?}); error log:\n{}",
                self.log()
            );
            let addr = self.addr;
            let path = format!("/sleep?{:.2}", 0.08 * n as f64 + 0.1);
            let threads: Vec<_> = (0..n)
                .map(|_| {
                    let path = path.clone();
                    let t = std::thread::spawn(move || get(addr, &path, REQUEST).map(|r| pid_of(&r)));
                    std::thread::sleep(Duration::from_millis(80));
                    t
                })
                .collect();
            for t in threads {
                match t.join().unwrap() {
                    Ok(pid) => {
                        seen.insert(pid);
                    }
                    Err(e) => panic!("a request failed: {e}; error log:\n{}", self.log()),
                }
            }
        }
    }

    /// The error log so far.
    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.join("stderr.log")).unwrap_or_default()).into_owned()
    }

    /// Wait until the error log holds every one of `needles`; the log.
    fn wait_log(&self, needles: &[&str], within: Duration) -> String {
        wait_for(
            within,
            || format!("the error log to hold all of {needles:?}:\n{}", self.log()),
            || Some(self.log()).filter(|log| needles.iter().all(|n| log.contains(n))),
        )
    }

    /// Wait for the master to exit.
    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the master did not exit within {within:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    /// A fast stop (`QUIT`); `KILL` for the master and its workers if it
    /// does not exit in time.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let workers = self.workers();
            // SAFETY: signalling our own child.
            unsafe { libc::kill(self.pid(), libc::SIGQUIT) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.child.try_wait().ok().flatten().is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
                for w in workers {
                    // SAFETY: the workers of the master we just killed.
                    unsafe { libc::kill(w, libc::SIGKILL) };
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------
// Clients.
// ---------------------------------------------------------------------------

/// Why a request failed.
#[derive(Debug)]
enum Failure {
    /// The connection was closed (or reset) before any byte of the response:
    /// the request may be retried on a new connection when the connection
    /// was a reused keep-alive one (RFC 9112 9.3.1).
    BeforeResponse(String),
    /// Anything else: a timeout, a cut response, a refused connection.
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::BeforeResponse(e) => write!(f, "closed before any response byte: {e}"),
            Failure::Other(e) => f.write_str(e),
        }
    }
}

fn is_closed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe)
}

fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, Failure> {
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| Failure::Other(format!("connect: {e}")))?;
    s.set_read_timeout(Some(timeout)).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    Ok(s)
}

/// Send `GET path` on `s` and read the response.
fn exchange(s: &mut TcpStream, path: &str, keep_alive: bool) -> Result<Resp, Failure> {
    let conn = if keep_alive { "keep-alive" } else { "close" };
    let raw = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: {conn}\r\n\r\n");
    s.write_all(raw.as_bytes()).map_err(|e| {
        if is_closed(&e) {
            Failure::BeforeResponse(format!("write: {e}"))
        } else {
            Failure::Other(format!("write: {e}"))
        }
    })?;
    let mut first = [0u8; 1];
    match s.read(&mut first) {
        Ok(0) => return Err(Failure::BeforeResponse("EOF".into())),
        Ok(_) => {}
        Err(e) if is_closed(&e) => return Err(Failure::BeforeResponse(format!("read: {e}"))),
        Err(e) => return Err(Failure::Other(format!("read: {e}"))),
    }
    read_response(&mut (&first[..]).chain(&mut *s), false)
        .ok_or_else(|| Failure::Other("the response was cut short".into()))
}

/// One request on a new connection (`Connection: close`).
fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Resp, Failure> {
    let mut s = connect(addr, timeout)?;
    exchange(&mut s, path, false)
}

/// The worker pid a `/` or `/sleep` response names.
fn pid_of(resp: &Resp) -> i32 {
    let body = String::from_utf8_lossy(&resp.body);
    assert_eq!(resp.status, 200, "{resp:?}: {body}");
    body.split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {body:?}"))
}

/// A keep-alive client that follows the retry rule every HTTP client library
/// has (RFC 9112 9.3.1): a request sent on a *reused* connection that is
/// closed before any byte of the response came is sent again on a new
/// connection. A server may close an idle keep-alive connection at any time
/// (a retiring worker does), and the client cannot tell that from a request
/// that raced with the close. Failures on a fresh connection are real.
struct KeepAliveClient {
    addr: SocketAddr,
    conn: Option<TcpStream>,
    retries: usize,
}

impl KeepAliveClient {
    fn get(&mut self, path: &str) -> Result<Resp, Failure> {
        if let Some(mut s) = self.conn.take() {
            match exchange(&mut s, path, true) {
                Ok(resp) => {
                    if !closes(&resp) {
                        self.conn = Some(s);
                    }
                    return Ok(resp);
                }
                Err(Failure::BeforeResponse(_)) => self.retries += 1,
                Err(e) => return Err(e),
            }
        }
        let mut s = connect(self.addr, REQUEST)?;
        let resp = exchange(&mut s, path, true)?;
        if !closes(&resp) {
            self.conn = Some(s);
        }
        Ok(resp)
    }
}

fn closes(resp: &Resp) -> bool {
    resp.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
}

/// What a set of load threads saw.
#[derive(Debug, Default)]
struct Load {
    ok: usize,
    failures: Vec<String>,
    pids: HashMap<i32, usize>,
    retries: usize,
}

/// Run `threads` clients issuing `/` in a loop until `stop`; half of them
/// (the odd ones) on keep-alive connections when `keep_alive`.
fn load(
    addr: SocketAddr,
    threads: usize,
    keep_alive: bool,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Load>> {
    (0..threads)
        .map(|i| {
            let stop = Arc::clone(stop);
            std::thread::spawn(move || {
                let t0 = Instant::now();
                let mut seen = Load::default();
                let mut client = (keep_alive && i % 2 == 1).then(|| KeepAliveClient { addr, conn: None, retries: 0 });
                while !stop.load(Ordering::Relaxed) {
                    let result = match &mut client {
                        Some(c) => c.get("/"),
                        None => get(addr, "/", REQUEST),
                    };
                    match result {
                        Ok(resp) if resp.status == 200 => {
                            seen.ok += 1;
                            *seen.pids.entry(pid_of(&resp)).or_default() += 1;
                        }
                        Ok(resp) => seen.failures.push(format!("status {}", resp.status)),
                        Err(e) => seen.failures.push(format!(
                            "{} client, at {:?}: {e}",
                            if client.is_some() { "keep-alive" } else { "one-connection-per-request" },
                            t0.elapsed()
                        )),
                    }
                }
                seen.retries = client.map_or(0, |c| c.retries);
                seen
            })
        })
        .collect()
}

fn join_load(handles: Vec<std::thread::JoinHandle<Load>>) -> Load {
    let mut all = Load::default();
    for h in handles {
        let one = h.join().unwrap();
        all.ok += one.ok;
        all.failures.extend(one.failures);
        all.retries += one.retries;
        for (pid, n) in one.pids {
            *all.pids.entry(pid).or_default() += n;
        }
    }
    all
}

// ---------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------

/// `HUP` twice during 10 s of steady load from 8 clients, 2 workers: no
/// request fails and every worker is replaced (by a new generation each
/// time).
///
/// Four clients use a new connection per request (`Connection: close`): for
/// them not one request may fail. The four others keep their connections
/// alive and, like every HTTP client library, retry a request on a reused
/// connection that was closed before any response byte (RFC 9112 9.3.1): an
/// idle keep-alive connection can be closed by a retiring worker at any
/// moment. Only failures beyond that rule count.
#[test]
fn hup_under_load_replaces_every_worker_without_failing_a_request() {
    let srv = Server::start(&["--workers", "2"]);
    let first = srv.wait_serving(2, STARTUP);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles = load(srv.addr, 8, true, &stop);
    let mut generations = vec![first.clone()];
    for at in [2, 6] {
        std::thread::sleep(Duration::from_secs(at).saturating_sub(started.elapsed()));
        srv.signal(libc::SIGHUP);
        // The old workers retire once their replacements serve.
        let before = generations.last().unwrap().clone();
        let next = wait_for(
            Duration::from_secs(4),
            || format!("the workers {before:?} to be replaced (now {:?}):\n{}", srv.workers(), srv.log()),
            || Some(srv.workers()).filter(|w| w.len() == 2 && w.is_disjoint(&before)),
        );
        generations.push(next);
    }
    std::thread::sleep(Duration::from_secs(10).saturating_sub(started.elapsed()));
    stop.store(true, Ordering::Relaxed);
    let seen = join_load(handles);
    assert!(seen.ok > 100, "only {} requests in 10 s", seen.ok);
    let last = srv.wait_workers(2, Duration::from_secs(5));
    assert_eq!(&last, generations.last().unwrap(), "{}", srv.log());
    assert!(last.is_disjoint(&first), "workers {first:?} were not replaced: {last:?}");
    // Every generation served part of the load.
    for g in &generations {
        assert!(g.iter().any(|p| seen.pids.contains_key(p)), "generation {g:?} never answered: {:?}", seen.pids);
    }
    let now = srv.wait_serving(2, Duration::from_secs(5));
    assert!(now.is_disjoint(&first));
    eprintln!(
        "HUP under load: {} requests, {} keep-alive retries, workers {:?}, answers per pid {:?}",
        seen.ok, seen.retries, generations, seen.pids
    );
    assert!(seen.failures.is_empty(), "{} of {} requests failed: {:?}", seen.failures.len(), seen.ok, seen.failures);
}

/// `HUP` without load: a new generation of workers replaces the old one,
/// twice, and the master lives on. (The same under load, with no request
/// failing, is the test above.)
#[test]
fn hup_replaces_every_worker() {
    let mut srv = Server::start(&["--workers", "2"]);
    let first = srv.wait_serving(2, STARTUP);
    let mut previous = first.clone();
    for _ in 0..2 {
        srv.signal(libc::SIGHUP);
        let next = wait_for(
            Duration::from_secs(5),
            || format!("the workers {previous:?} to be replaced (now {:?}):\n{}", srv.workers(), srv.log()),
            || Some(srv.workers()).filter(|w| w.len() == 2 && w.is_disjoint(&previous)),
        );
        assert_eq!(srv.wait_serving(2, Duration::from_secs(5)), next);
        previous = next;
    }
    assert!(previous.is_disjoint(&first));
    assert!(srv.child.try_wait().unwrap().is_none(), "the master exited:\n{}", srv.log());
    srv.wait_log(&["Handling signal: hup (reload)"], Duration::from_secs(1));
}

/// An app module, `hup_app.py`, whose answers name its `version` and the
/// worker's pid (`/sleep?S` sleeps S seconds first); with `version` `None`,
/// one that raises at import.
fn write_hup_app(dir: &Path, version: Option<u32>) {
    let code = match version {
        Some(v) => format!(
            "import os\nimport time\n\n\ndef application(environ, start_response):\n    \
             if environ['PATH_INFO'] == '/sleep':\n        time.sleep(float(environ['QUERY_STRING']))\n    \
             body = ('version={v} pid=%d' % os.getpid()).encode()\n    \
             start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])\n    \
             return [body]\n"
        ),
        None => "raise RuntimeError('broken on purpose')\n".to_owned(),
    };
    std::fs::write(dir.join("hup_app.py"), code).unwrap();
}

/// `GET /`: its status, body and worker pid.
fn get_text(srv: &Server, path: &str) -> (u16, String, i32) {
    let resp = get(srv.addr, path, REQUEST).unwrap_or_else(|e| panic!("GET {path}: {e}:\n{}", srv.log()));
    let pid = if resp.status == 200 { pid_of(&resp) } else { 0 };
    (resp.status, String::from_utf8_lossy(&resp.body).into_owned(), pid)
}

/// A `HUP` after the app's module was broken (it raises at import): the new
/// workers fail to load it, the master logs one error, stops starting that
/// generation and stays up, and the old workers serve on. A `TTIN` then
/// starts a worker of the old generation, which imports the broken module
/// too and fails without taking the server down. Once the module is fixed, a
/// `HUP` reloads as usual: new workers with the new code.
#[test]
fn a_hup_with_broken_code_keeps_the_old_workers_serving() {
    let dir = temp_dir("process-tests");
    let app_dir = dir.join("app");
    std::fs::create_dir(&app_dir).unwrap();
    write_hup_app(&app_dir, Some(1));
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut cmd = command();
    cmd.arg("hup_app:application")
        .args(["--bind", &addr.to_string(), "--workers", "2", "--chdir"])
        .arg(&app_dir)
        // A module rewritten within the same second must not be read from
        // a stale .pyc.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(&dir)
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap());
    let mut srv = Server::spawn(cmd, addr, dir);
    let old = srv.wait_serving(2, STARTUP);
    let (status, body, _) = get_text(&srv, "/");
    assert_eq!((status, body.starts_with("version=1 ")), (200, true), "{body}");

    write_hup_app(&app_dir, None);
    srv.signal(libc::SIGHUP);
    srv.wait_log(&["Reload failed"], Duration::from_secs(20));
    // The new workers are gone; the old ones were never stopped.
    wait_for(
        Duration::from_secs(5),
        || format!("only the old workers {old:?} (now {:?}):\n{}", srv.workers(), srv.log()),
        || Some(()).filter(|()| srv.workers() == old),
    );
    let serve_old_code = |srv: &mut Server, for_how_long: Duration| {
        let until = Instant::now() + for_how_long;
        let mut n = 0;
        while Instant::now() < until {
            let (status, body, pid) = get_text(srv, "/");
            assert_eq!(status, 200, "{body}:\n{}", srv.log());
            assert!(body.starts_with("version=1 ") && old.contains(&pid), "{body} not from {old:?}:\n{}", srv.log());
            assert!(srv.child.try_wait().unwrap().is_none(), "the master exited:\n{}", srv.log());
            n += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(n > 10, "{n}");
    };
    serve_old_code(&mut srv, Duration::from_secs(3));
    let log = srv.log();
    assert!(log.contains("broken on purpose"), "the load error is not in the log:\n{log}");
    assert_eq!(log.matches("Reload failed").count(), 1, "{log}");
    assert!(!log.contains("Shutting down"), "{log}");

    // A worker more, while the module is broken: it is of the old
    // generation but imports the module from disk, so it fails; the others
    // serve on and the master stays up.
    srv.signal(libc::SIGTTIN);
    srv.wait_log(&["could not load the application, exit status 4"], Duration::from_secs(20));
    serve_old_code(&mut srv, Duration::from_secs(1));
    assert_eq!(srv.log().matches("Reload failed").count(), 1, "{}", srv.log());

    // Fixed: the next HUP reloads (and clears the crash-loop backoff the
    // failing extra worker may have started).
    write_hup_app(&app_dir, Some(3));
    srv.signal(libc::SIGHUP);
    let (body, new) = wait_for(
        Duration::from_secs(20),
        || format!("the new code to answer, and 2 new workers (now {:?}):\n{}", srv.workers(), srv.log()),
        || {
            let (status, body, _) = get_text(&srv, "/");
            let workers = srv.workers();
            let done = srv.log().contains("Reload done");
            (status == 200 && body.starts_with("version=3 ") && done && workers.len() == 2 && workers.is_disjoint(&old))
                .then_some((body, workers))
        },
    );
    assert_eq!(srv.wait_serving(2, Duration::from_secs(10)), new, "{}", srv.log());
    assert!(srv.child.try_wait().unwrap().is_none(), "the master exited:\n{}", srv.log());
    eprintln!("HUP with broken code: old workers {old:?} kept; after the fix, {new:?} answer {body:?}");
}

/// `--static-map PREFIX=DIR` with a relative DIR and `--chdir`: DIR is
/// relative to the `--chdir` directory (as Gunicorn's paths are), for the
/// master's check and the workers alike, with and without `--preload`.
#[test]
fn a_relative_static_dir_is_relative_to_chdir() {
    for preload in [false, true] {
        let dir = temp_dir("process-tests");
        std::fs::create_dir_all(dir.join("proj/assets")).unwrap();
        std::fs::write(dir.join("proj/assets/hello.txt"), "hello, static\n").unwrap();
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut cmd = command();
        cmd.arg("process_app")
            .args(["--bind", &addr.to_string(), "--pythonpath"])
            .arg(python_dir())
            .args(["--chdir", "proj", "--static-map", "/static=assets"])
            .args(if preload { &["--preload"][..] } else { &[] })
            .current_dir(&dir)
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap());
        let srv = Server::spawn(cmd, addr, dir);
        let resp = get(addr, "/static/hello.txt", REQUEST).unwrap_or_else(|e| panic!("{e}:\n{}", srv.log()));
        assert_eq!(resp.status, 200, "preload {preload}: {resp:?}\n{}", srv.log());
        assert_eq!(resp.body, b"hello, static\n", "preload {preload}");
        // The app still answers what is not under the prefix.
        let resp = get(addr, "/", REQUEST).unwrap();
        pid_of(&resp);
    }
    // A relative DIR that does not exist under --chdir (but does in the
    // directory the server starts in) is refused at once, naming the
    // directory looked at.
    let dir = temp_dir("process-tests");
    std::fs::create_dir_all(dir.join("proj")).unwrap();
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    let mut cmd = command();
    cmd.args(["process_app", "--bind", &format!("127.0.0.1:{}", free_port()), "--pythonpath"])
        .arg(python_dir())
        .args(["--chdir", "proj", "--static-map", "/static=assets"])
        .current_dir(&dir)
        .stderr(Stdio::piped());
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let want = dir.join("proj/assets");
    assert!(stderr.contains(&format!("--static-map /static={}: not a directory", want.display())), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kill -9` of the only worker: the request sent right after is answered
/// by a new worker within 2 s; the master lives on.
#[test]
fn a_killed_worker_is_replaced_within_two_seconds() {
    let mut srv = Server::start(&["--workers", "1"]);
    let old = srv.wait_serving(1, STARTUP);
    let old_pid = *old.iter().next().unwrap();
    let killed = Instant::now();
    kill(old_pid, libc::SIGKILL);
    // The master holds the socket: the connection waits in its listen queue
    // until the new worker accepts it.
    let resp = get(srv.addr, "/", Duration::from_secs(2)).unwrap_or_else(|e| panic!("{e}:\n{}", srv.log()));
    let took = killed.elapsed();
    let new_pid = pid_of(&resp);
    assert_ne!(new_pid, old_pid);
    assert!(took < Duration::from_secs(2), "the new worker answered after {took:?}");
    assert!(srv.child.try_wait().unwrap().is_none(), "the master exited:\n{}", srv.log());
    assert_eq!(srv.wait_workers(1, Duration::from_secs(2)), BTreeSet::from([new_pid]), "{}", srv.log());
    srv.wait_log(&[&format!("Worker {old_pid} died (signal 9)")], Duration::from_secs(2));
    eprintln!("kill -9: worker {old_pid} replaced by {new_pid} in {took:?}");
}

/// A request sleeping past `--timeout 2`: its worker is aborted and
/// replaced, the error log holds the Python stack of the sleeping thread,
/// and the other worker serves all along.
#[test]
fn a_hung_worker_is_aborted_with_its_python_stack_and_replaced() {
    let mut srv = Server::start(&["--workers", "2", "--timeout", "2"]);
    let first = srv.wait_serving(2, STARTUP);
    let addr = srv.addr;
    let sent = Instant::now();
    let sleeper = std::thread::spawn(move || get(addr, "/sleep?8", Duration::from_secs(15)));
    std::thread::sleep(Duration::from_millis(300));
    // Until a worker goes, every request must be answered, by the other one.
    let mut answered_by = BTreeSet::new();
    let mut answers = 0;
    let gone = loop {
        let resp = get(srv.addr, "/", Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}:\n{}", srv.log()));
        answered_by.insert(pid_of(&resp));
        answers += 1;
        let gone: Vec<i32> = first.difference(&srv.workers()).copied().collect();
        if !gone.is_empty() {
            break gone;
        }
        assert!(sent.elapsed() < Duration::from_secs(7), "no worker was aborted:\n{}", srv.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    let aborted_after = sent.elapsed();
    assert_eq!(gone.len(), 1, "{gone:?}");
    let hung = gone[0];
    let other = *first.iter().find(|&&p| p != hung).unwrap();
    // The hung worker answered nothing; the other one did (and perhaps the
    // replacement, once up, before this loop saw the hung one go).
    assert!(answered_by.contains(&other) && !answered_by.contains(&hung), "answers came from {answered_by:?}");
    // A worker beats twice a second, so its last beat may predate the
    // request by up to 0.5 s: the abort comes 1.5 s to 2.5 s (plus the
    // master's 0.2 s poll) into the request.
    assert!(aborted_after >= Duration::from_millis(1400), "aborted after {aborted_after:?}, before the timeout");
    assert!(aborted_after < Duration::from_secs(6), "aborted after {aborted_after:?}");
    // The sleeping request never completes.
    match sleeper.join().unwrap() {
        Ok(resp) => assert_ne!(resp.status, 200, "the hung request was answered: {resp:?}"),
        Err(e) => eprintln!("the hung request failed as expected: {e}"),
    }
    let log = srv.wait_log(&["WORKER TIMEOUT", "sleep_in_handler"], Duration::from_secs(5));
    assert!(log.contains(&format!("WORKER TIMEOUT (pid:{hung})")), "{log}");
    assert!(
        log.lines().any(|l| l.contains("process_app.py") && l.contains("in sleep_in_handler")),
        "no Python stack of the sleeping thread in the error log:\n{log}"
    );
    // Replaced: two workers again, the other one still among them.
    let now = srv.wait_serving(2, Duration::from_secs(5));
    assert!(now.contains(&other) && !now.contains(&hung), "{now:?}");
    assert!(srv.child.try_wait().unwrap().is_none());
    eprintln!(
        "timeout: worker {hung} aborted after {aborted_after:?}; {answers} answers meanwhile, from {answered_by:?}"
    );
}

/// `--max-requests 50 --max-requests-jitter 10`, 2 workers: after 300
/// requests both original workers have been recycled, and no request failed.
#[test]
fn max_requests_recycles_every_worker_without_failing_a_request() {
    let srv = Server::start(&["--workers", "2", "--max-requests", "50", "--max-requests-jitter", "10"]);
    let first = srv.wait_serving(2, STARTUP);
    let count = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let count = Arc::clone(&count);
            let addr = srv.addr;
            std::thread::spawn(move || {
                let mut seen = Load::default();
                while count.fetch_add(1, Ordering::Relaxed) < 300 {
                    // ~120 requests a second: the workers reach their limits
                    // and are recycled while the load goes on.
                    std::thread::sleep(Duration::from_millis(50));
                    match get(addr, "/", REQUEST) {
                        Ok(resp) => {
                            seen.ok += 1;
                            *seen.pids.entry(pid_of(&resp)).or_default() += 1;
                        }
                        Err(e) => seen.failures.push(e.to_string()),
                    }
                }
                seen
            })
        })
        .collect();
    let seen = join_load(threads);
    assert_eq!(seen.ok + seen.failures.len(), 300);
    // A worker checks its count twice a second: give them that.
    let now = wait_for(
        Duration::from_secs(5),
        || {
            format!(
                "both workers {first:?} to be recycled (now {:?}; answers {:?}):\n{}",
                srv.workers(),
                seen.pids,
                srv.log()
            )
        },
        || Some(srv.workers()).filter(|w| w.len() == 2 && w.is_disjoint(&first)),
    );
    let log = srv.log();
    for pid in &first {
        assert!(log.contains(&format!("Worker {pid} exited to be recycled")), "{log}");
    }
    // (They may be recycled again meanwhile: these requests count too.)
    assert!(srv.wait_serving(2, Duration::from_secs(5)).is_disjoint(&first));
    assert!(
        seen.pids.keys().any(|p| !first.contains(p)),
        "no recycled worker answered during the load: {:?}",
        seen.pids
    );
    eprintln!("max-requests: answers per pid {:?}; workers after the load {now:?}", seen.pids);
    assert!(seen.failures.is_empty(), "{} requests failed: {:?}\n{}", seen.failures.len(), seen.failures, srv.log());
}

/// `TERM` during a 3 s request: the request completes, then the master
/// exits 0 and removes its pid file.
#[test]
fn term_lets_the_running_request_finish_then_exits_zero() {
    let dir = temp_dir("process-tests");
    let pidfile = dir.join("master.pid");
    let mut srv = Server::start(&["--workers", "1", "--pid", pidfile.to_str().unwrap()]);
    let written = std::fs::read_to_string(&pidfile).unwrap();
    assert_eq!(written.trim(), srv.pid().to_string());
    let addr = srv.addr;
    let sent = Instant::now();
    let slow = std::thread::spawn(move || get(addr, "/sleep?3", Duration::from_secs(15)));
    std::thread::sleep(Duration::from_millis(500));
    srv.signal(libc::SIGTERM);
    let resp = slow.join().unwrap().unwrap_or_else(|e| panic!("the running request failed: {e}\n{}", srv.log()));
    assert_eq!(resp.status, 200);
    assert!(String::from_utf8_lossy(&resp.body).starts_with("slept=3 "), "{resp:?}");
    assert!(sent.elapsed() >= Duration::from_secs(3));
    let status = srv.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status}:\n{}", srv.log());
    assert!(!pidfile.exists(), "the pid file is still there");
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("TERM: master exited {status} {:?} after the request was sent", sent.elapsed());
}

/// `TTIN` adds a worker process, `TTOU` removes one.
#[test]
fn ttin_and_ttou_change_the_number_of_workers() {
    let srv = Server::start(&["--workers", "2"]);
    let two = srv.wait_workers(2, STARTUP);
    srv.signal(libc::SIGTTIN);
    let three = srv.wait_workers(3, Duration::from_secs(5));
    assert!(two.is_subset(&three), "{two:?} -> {three:?}");
    srv.wait_serving(3, Duration::from_secs(5));
    srv.signal(libc::SIGTTOU);
    let back = srv.wait_workers(2, Duration::from_secs(5));
    assert!(back.is_subset(&three), "{three:?} -> {back:?}");
    srv.signal(libc::SIGTTOU);
    let one = srv.wait_workers(1, Duration::from_secs(5));
    assert!(one.is_subset(&back));
    // The last worker is never removed.
    srv.signal(libc::SIGTTOU);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(srv.workers(), one);
    assert_eq!(srv.wait_serving(1, Duration::from_secs(5)), one);
}

/// `USR1` after the access log was renamed (rotated): the master and the
/// workers reopen it, so new lines go to a new file and the old lines stay
/// in the renamed one.
#[test]
fn usr1_reopens_a_rotated_access_log() {
    let dir = temp_dir("process-tests");
    let access = dir.join("access.log");
    let rotated = dir.join("access.log.1");
    let srv = Server::start(&["--workers", "2", "--access-logfile", access.to_str().unwrap()]);
    srv.wait_serving(2, STARTUP);
    let burst = |tag: &str| {
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (addr, path) = (srv.addr, format!("/?{tag}-{i}"));
                std::thread::spawn(move || get(addr, &path, REQUEST).map(|r| pid_of(&r)))
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap().unwrap()).collect::<BTreeSet<i32>>()
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    burst("before");
    wait_for(
        Duration::from_secs(5),
        || read(&access),
        || Some(()).filter(|()| read(&access).matches("before-").count() == 8),
    );
    std::fs::rename(&access, &rotated).unwrap();
    srv.signal(libc::SIGUSR1);
    srv.wait_log(&["Handling signal: usr1"], Duration::from_secs(5));
    // The master forwards USR1 to the workers right after logging it.
    std::thread::sleep(Duration::from_millis(300));
    assert!(access.exists(), "the master did not reopen the access log");
    // Both workers must have reopened: make sure both answer.
    let mut pids = burst("after");
    for _ in 0..5 {
        if pids.len() == 2 {
            break;
        }
        pids.extend(burst("after"));
    }
    assert_eq!(pids.len(), 2, "one worker answered every request after the reopen: {pids:?}");
    wait_for(
        Duration::from_secs(5),
        || format!("the new lines in {}: {:?}", access.display(), read(&access)),
        || Some(()).filter(|()| read(&access).matches("after-").count() >= 8),
    );
    let new = read(&access);
    let old = read(&rotated);
    assert_eq!(old.matches("before-").count(), 8, "{old}");
    assert_eq!(old.matches("after-").count(), 0, "lines after the reopen went to the rotated file:\n{old}");
    assert_eq!(new.matches("before-").count(), 0, "{new}");
    assert!(new.lines().all(|l| l.contains("\"GET /")), "{new}");
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Socket activation: the socket is bound by the "service manager" (the
/// test), passed as fd 3 with `LISTEN_FDS=1` and `LISTEN_PID` set to the
/// server's own pid, and no `--bind`: the server serves through it.
#[test]
fn systemd_socket_activation_serves_on_the_passed_socket() {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStringExt;
    use std::os::unix::process::CommandExt;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fd = listener.as_raw_fd();
    let dir = temp_dir("process-tests");
    // The environment is set up in the child, after the fork: once a
    // `Command` has its own environment (`env`, `env_remove`), `setenv` in
    // `pre_exec` is lost, as std execs with the environment it built before
    // the fork. So this command inherits ours and edits it in the child.
    let unset: Vec<CString> = leaking_vars().into_iter().map(|k| CString::new(k).unwrap()).collect();
    let venv = CString::new(venv().into_os_string().into_vec()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsgi-server"));
    cmd.arg("process_app")
        .args(["--workers", "2", "--pythonpath"])
        .arg(python_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .current_dir(&dir)
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap());
    // SAFETY: the closure runs in the child between fork and exec: dup2,
    // fcntl and getpid are async-signal-safe; setenv and unsetenv may
    // allocate, which glibc makes safe in the child of a fork.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                // dup2(3, 3) would keep close-on-exec: clear it.
                let flags = libc::fcntl(3, libc::F_GETFD);
                if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The child's pid in decimal, NUL-terminated, without allocating.
            let mut digits = [0u8; 12];
            let mut n = std::process::id();
            let mut i = digits.len() - 1;
            loop {
                i -= 1;
                digits[i] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            for k in &unset {
                libc::unsetenv(k.as_ptr());
            }
            if libc::setenv(c"VIRTUAL_ENV".as_ptr(), venv.as_ptr(), 1) != 0
                || libc::setenv(c"LISTEN_FDS".as_ptr(), c"1".as_ptr(), 1) != 0
                || libc::setenv(c"LISTEN_PID".as_ptr(), digits[i..].as_ptr().cast(), 1) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let srv = Server::spawn(cmd, addr, dir);
    // Only the server holds the socket now.
    drop(listener);
    let pids = srv.wait_serving(2, STARTUP);
    let log = srv.log();
    assert!(log.contains(&format!("Listening at: http://{addr}")), "{log}");
    assert!(!log.contains("127.0.0.1:8000"), "the server bound its default address too:\n{log}");
    eprintln!("socket activation: {addr} served by {pids:?}");
}

/// Run the command to its end (20 s at most): status, stdout, stderr.
fn run(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let dir = temp_dir("process-tests");
    let mut cmd = command();
    cmd.args(args)
        .envs(env.iter().copied())
        .current_dir(&dir)
        .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wsgi-server {args:?} did not exit within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |f: &str| String::from_utf8_lossy(&std::fs::read(dir.join(f)).unwrap()).into_owned();
    let out = (status, read("stdout"), read("stderr"));
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// Bad flags, values, environment variables, config files and applications:
/// exit status 2 and one line on stderr naming the culprit; `--check-config`,
/// `--print-config`, `--version` and `--help`.
#[test]
fn bad_input_exits_2_with_one_line_naming_it() {
    let py = python_dir();
    let py = py.to_str().unwrap();
    let bind = format!("127.0.0.1:{}", free_port());
    // Rejected while parsing the settings: stderr is exactly one line.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);
    // Config files (`-c`): a missing one, a directory, a bad value in one.
    let conf = temp_dir("process-tests");
    let missing = conf.join("missing.toml");
    let missing = missing.to_str().unwrap();
    let conf_dir = conf.to_str().unwrap();
    let bad_conf = conf.join("bad.toml");
    std::fs::write(&bad_conf, "workers = \"abc\"\n").unwrap();
    let bad_conf = bad_conf.to_str().unwrap();
    let parse_errors: &[Case<'_>] = &[
        (&["-c", missing, "process_app"], &[], &["config file", missing]),
        (&["--config", conf_dir, "process_app"], &[], &["config file", conf_dir]),
        (&["-c", bad_conf, "process_app"], &[], &["--workers", bad_conf, "\"abc\""]),
        (&["--nope", "process_app"], &[], &["--nope"]),
        (&["--workers", "abc", "process_app"], &[], &["--workers", "\"abc\""]),
        (&["--bind", "nohost:99999", "process_app"], &[], &["--bind", "nohost:99999"]),
        (&["--timeout", "-1", "process_app"], &[], &["--timeout", "\"-1\""]),
        (&["process_app"], &[("WSGI_SERVER_THREADS", "x")], &["WSGI_SERVER_THREADS", "\"x\""]),
        (&["--check-config", "--pythonpath", py, "no_such_module:app"], &[], &["no_such_module"]),
        (&["--check-config", "--pythonpath", py, "process_app:nope"], &[], &["'nope'"]),
    ];
    for (args, env, needles) in parse_errors {
        let (status, stdout, stderr) = run(args, env);
        let what = format!("wsgi-server {args:?} with {env:?}: {status}\nstdout: {stdout}\nstderr: {stderr}");
        assert_eq!(status.code(), Some(2), "{what}");
        assert_eq!(stderr.lines().count(), 1, "not one line: {what}");
        assert!(stderr.starts_with("wsgi-server: error: "), "{what}");
        for n in *needles {
            assert!(stderr.contains(n), "{n:?} not named: {what}");
        }
    }
    // A bad app without --check-config is found by the first worker: the
    // master's info lines come first, then one error line, then exit 2.
    for (app, needle) in [("no_such_module:app", "no_such_module"), ("process_app:nope", "'nope'")] {
        let (status, stdout, stderr) = run(&["--bind", &bind, "--pythonpath", py, app], &[]);
        let what = format!("wsgi-server {app}: {status}\nstdout: {stdout}\nstderr: {stderr}");
        assert_eq!(status.code(), Some(2), "{what}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("wsgi-server: error: ")).collect();
        assert_eq!(errors.len(), 1, "{what}");
        assert!(errors[0].contains(needle), "{what}");
        assert!(!stderr.contains("Traceback"), "{what}");
    }
    let (status, stdout, stderr) = run(&["--check-config", "--pythonpath", py, "process_app"], &[]);
    assert_eq!(status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("configuration OK"), "{stdout}");
    let (status, stdout, _) = run(&["--print-config", "process_app"], &[]);
    assert_eq!(status.code(), Some(0));
    assert!(stdout.contains("process_app"), "{stdout}");
    let (status, stdout, _) = run(&["--version"], &[]);
    assert_eq!(status.code(), Some(0));
    assert!(stdout.starts_with("wsgi-server "), "{stdout}");
    let (status, stdout, _) = run(&["--help"], &[]);
    assert_eq!(status.code(), Some(0));
    assert!(stdout.contains("usage: wsgi-server") && stdout.contains("--max-requests"), "{stdout}");
    let _ = std::fs::remove_dir_all(&conf);
}
