//! [`SimpleServer`] (the settings) and [`Handle`] (a running server): a
//! fixed pool of threads, each accepting connections from the one listener
//! and serving them one at a time.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use wsgi_spec::{Application, ServerInfo, SharedApp};

use crate::body::lock;
use crate::request::Limits;
use crate::{connection, Error};

/// `SERVER_SOFTWARE` unless [`SimpleServer::server_info`] says otherwise.
const SOFTWARE: &str = concat!("wsgi-simple-server/", env!("CARGO_PKG_VERSION"));

/// A small blocking HTTP/1.1 server for a spec application, before it runs.
///
/// Build it with [`bind`](SimpleServer::bind) or
/// [`from_listener`](SimpleServer::from_listener), adjust the settings, then
/// [`serve`](SimpleServer::serve) (in the background) or
/// [`serve_forever`](SimpleServer::serve_forever) (on this thread).
///
/// | setting | default | |
/// |---|---|---|
/// | [`threads`](SimpleServer::threads) | 8 | connections served at once; `wsgi.multithread` is true above 1 |
/// | [`keep_alive`](SimpleServer::keep_alive) | 5 s | how long an idle connection waits for its next request (zero: one request per connection) |
/// | [`timeout`](SimpleServer::timeout) | 30 s | how long a read or write may stall inside a request or response (zero: forever) |
/// | [`limits`](SimpleServer::limits) | 4094 / 100 / 8190 | request line, header fields, field line size ([`Limits`]) |
/// | [`server_info`](SimpleServer::server_info) | `wsgi-simple-server/…`, `wsgi.errors` to stderr | `SERVER_SOFTWARE`, `wsgi.errors`, deployer variables |
pub struct SimpleServer {
    listener: TcpListener,
    threads: usize,
    keep_alive: Duration,
    timeout: Duration,
    limits: Limits,
    info: ServerInfo,
}

impl std::fmt::Debug for SimpleServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimpleServer")
            .field("listener", &self.listener)
            .field("threads", &self.threads)
            .field("keep_alive", &self.keep_alive)
            .field("timeout", &self.timeout)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl SimpleServer {
    /// Listen on `addr` (`"127.0.0.1:8000"`; port 0 picks a free one).
    ///
    /// # Errors
    /// [`Error::Bind`] when the address cannot be resolved or bound.
    pub fn bind(addr: impl ToSocketAddrs) -> Result<SimpleServer, Error> {
        let listener = TcpListener::bind(addr).map_err(Error::Bind)?;
        Ok(SimpleServer::from_listener(listener))
    }

    /// Serve connections from a listener bound elsewhere.
    #[must_use]
    pub fn from_listener(listener: TcpListener) -> SimpleServer {
        SimpleServer {
            listener,
            threads: 8,
            keep_alive: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            limits: Limits::default(),
            info: ServerInfo { software: SOFTWARE.into(), ..ServerInfo::default() },
        }
    }

    /// Serve this many connections at once (at least 1). Each thread
    /// accepts a connection and serves its requests until it closes; an
    /// idle keep-alive connection holds its thread until
    /// [`keep_alive`](SimpleServer::keep_alive) runs out.
    #[must_use]
    pub fn threads(mut self, n: usize) -> SimpleServer {
        self.threads = n.max(1);
        self
    }

    /// How long a connection may wait idle for its next request (and for
    /// its first one). `Duration::ZERO` turns keep-alive off: every
    /// response closes its connection.
    #[must_use]
    pub fn keep_alive(mut self, idle: Duration) -> SimpleServer {
        self.keep_alive = idle;
        self
    }

    /// How long one read or write may stall while a request head or body is
    /// received or a response is sent; the connection is closed then (the
    /// application sees a read error). `Duration::ZERO` waits forever.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> SimpleServer {
        self.timeout = timeout;
        self
    }

    /// Limits on request heads (414 and 431 beyond them).
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> SimpleServer {
        self.limits = limits;
        self
    }

    /// `SERVER_SOFTWARE`, where `wsgi.errors` goes (ERR-6), deployer
    /// variables (ENV-25). `multithread` follows
    /// [`threads`](SimpleServer::threads); `multiprocess` and
    /// `file_wrapper` are false (file bodies are read block by block).
    #[must_use]
    pub fn server_info(mut self, info: ServerInfo) -> SimpleServer {
        self.info = info;
        self
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    /// [`Error::Listener`] when the socket cannot tell.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.listener.local_addr().map_err(Error::Listener)
    }

    /// Start serving `app` on the pool's threads and return at once.
    ///
    /// # Errors
    /// [`Error::Listener`] when the listener is unusable, [`Error::Spawn`]
    /// when a thread cannot be started (the others are stopped again).
    pub fn serve(self, app: impl Application) -> Result<Handle, Error> {
        let addr = self.listener.local_addr().map_err(Error::Listener)?;
        self.listener.set_nonblocking(false).map_err(Error::Listener)?;
        let mut info = self.info;
        info.multithread = self.threads > 1;
        info.multiprocess = false;
        info.file_wrapper = false;
        let server_header: Arc<str> = info.software.split('/').next().unwrap_or("wsgi-simple-server").into();
        let shared = Arc::new(Shared {
            app: Arc::new(app),
            info,
            server_header,
            limits: self.limits,
            keep_alive: self.keep_alive,
            timeout: self.timeout,
            stopping: AtomicBool::new(false),
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        });
        let listener = Arc::new(self.listener);
        let mut handle = Handle { addr, shared: Arc::clone(&shared), threads: Vec::with_capacity(self.threads) };
        for i in 0..self.threads {
            let (listener, shared) = (Arc::clone(&listener), Arc::clone(&shared));
            let spawned = std::thread::Builder::new()
                .name(format!("wsgi-simple-server-{i}"))
                .spawn(move || accept_loop(&listener, &shared));
            match spawned {
                Ok(thread) => handle.threads.push(thread),
                Err(e) => {
                    handle.shutdown();
                    return Err(Error::Spawn(e));
                }
            }
        }
        Ok(handle)
    }

    /// Serve `app` on this thread's behalf until the process ends (like
    /// Python's `serve_forever`).
    ///
    /// # Errors
    /// As [`serve`](SimpleServer::serve).
    ///
    /// # Blocking
    /// Does not return once serving started.
    pub fn serve_forever(self, app: impl Application) -> Result<(), Error> {
        self.serve(app)?.join();
        Ok(())
    }
}

/// A running [`SimpleServer`].
///
/// Dropping the handle leaves the server running (like dropping a
/// `JoinHandle`); [`shutdown`](Handle::shutdown) stops it.
pub struct Handle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("addr", &self.addr).field("threads", &self.threads.len()).finish()
    }
}

impl Handle {
    /// The address the server listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop the server: no new connections are accepted, idle connections
    /// are closed, requests in progress finish (their responses say
    /// `Connection: close`). Returns at once; [`join`](Handle::join) waits.
    pub fn shutdown(&self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        for conn in lock(&self.shared.connections).values() {
            if conn.idle.load(Ordering::SeqCst) {
                let _ = conn.stream.shutdown(Shutdown::Both);
            }
        }
        // Wake every thread blocked in accept(): it sees the flag and ends.
        let wake = SocketAddr::new(loopback_if_unspecified(self.addr.ip()), self.addr.port());
        for _ in 0..self.threads.len() {
            let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        }
    }

    /// Wait until every server thread ended (after
    /// [`shutdown`](Handle::shutdown), once the requests in progress are
    /// answered).
    ///
    /// # Blocking
    /// Until the threads end; forever if the server was not shut down.
    pub fn join(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn loopback_if_unspecified(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}

/// What every server thread shares.
pub(crate) struct Shared {
    pub(crate) app: SharedApp,
    pub(crate) info: ServerInfo,
    /// The `Server` header: the software's name.
    pub(crate) server_header: Arc<str>,
    pub(crate) limits: Limits,
    pub(crate) keep_alive: Duration,
    pub(crate) timeout: Duration,
    stopping: AtomicBool,
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
}

impl Shared {
    /// True once [`Handle::shutdown`] was called.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// A connection as the shutdown sees it.
struct Connection {
    stream: TcpStream,
    /// Waiting for a request: safe to close.
    idle: AtomicBool,
}

/// One pool thread: accept a connection, serve it, repeat until shutdown.
fn accept_loop(listener: &TcpListener, shared: &Shared) {
    while !shared.stopping() {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of file descriptors and the like: try again shortly.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if shared.stopping() {
            return;
        }
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Connection { stream: clone, idle: AtomicBool::new(false) });
        lock(&shared.connections).insert(id, Arc::clone(&conn));
        let served = catch_unwind(AssertUnwindSafe(|| connection::serve(stream, peer, shared, &conn.idle)));
        lock(&shared.connections).remove(&id);
        if served.is_err() {
            // Application panics are caught by `run`; this is a server bug.
            shared
                .info
                .errors
                .write(&format!("wsgi-simple-server: the handler of a connection from {peer} panicked\n"));
        }
    }
}
