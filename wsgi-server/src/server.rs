//! The [`Server`] builder: bind, configure, serve until shut down.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::{watch, Notify, Semaphore};
use wsgi_spec::ext::ConnectionInfo;
use wsgi_spec::{ServerInfo, SharedApp};

use crate::accesslog::AccessLog;
use crate::bind::{listen, Bind, Listener};
use crate::guard::Limits;
use crate::io::GuardedIo;
use crate::pool::AppPool;
use crate::proxy::ForwardedAllow;
use crate::service::SpecService;
use crate::Error;

/// Header fields hyper parses on the stack (its default `max_headers`).
const HYPER_STACK_HEADERS: usize = 100;

/// The default `wsgi.errors` destination: `tracing` error events.
#[derive(Debug, Clone, Copy)]
struct TracingErrors;

impl wsgi_spec::errors::ErrorSink for TracingErrors {
    fn line(&self, line: &str) {
        tracing::error!(target: "wsgi.errors", "{line}");
    }
}

/// How the server should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shutdown {
    /// Keep serving.
    Running,
    /// Stop accepting, finish in-flight requests (up to the graceful
    /// timeout), close idle keep-alive connections.
    Graceful,
    /// Stop now.
    Immediate,
}

/// A handle to ask a running server to stop.
#[derive(Debug, Clone)]
pub struct ShutdownHandle(watch::Sender<Shutdown>);

impl ShutdownHandle {
    /// Ask for a graceful stop.
    pub fn graceful(&self) {
        self.0.send_if_modified(|s| {
            let change = *s == Shutdown::Running;
            if change {
                *s = Shutdown::Graceful;
            }
            change
        });
    }
    /// Ask for an immediate stop.
    pub fn immediate(&self) {
        let _ = self.0.send_replace(Shutdown::Immediate);
    }
}

/// The server's settings; build with [`Server::new`] and the setters.
#[derive(Debug)]
pub struct Server {
    binds: Vec<Bind>,
    listeners: Vec<Listener>,
    threads: usize,
    backlog: usize,
    listen_backlog: i32,
    limits: Limits,
    keep_alive: Duration,
    graceful_timeout: Duration,
    max_connections: usize,
    http2: bool,
    info: ServerInfo,
    forwarded: ForwardedAllow,
    access_log: Option<AccessLog>,
    inline: bool,
    io_threads: usize,
    pool: Option<AppPool>,
    requests: Option<Arc<std::sync::atomic::AtomicU64>>,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsFiles>,
}

impl Default for Server {
    fn default() -> Self {
        Server::new()
    }
}

impl Server {
    /// A server with Gunicorn's defaults: 1 app thread, keep-alive 2 s,
    /// graceful timeout 30 s, listen backlog 2048, request limits 4094 /
    /// 100 / 8190.
    #[must_use]
    pub fn new() -> Server {
        Server {
            binds: Vec::new(),
            listeners: Vec::new(),
            threads: 1,
            backlog: 64,
            listen_backlog: 2048,
            limits: Limits::default(),
            keep_alive: Duration::from_secs(2),
            graceful_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            http2: true,
            info: ServerInfo {
                software: concat!("wsgi-server/", env!("CARGO_PKG_VERSION")).into(),
                errors: wsgi_spec::Errors::new(TracingErrors),
                ..ServerInfo::default()
            },
            forwarded: ForwardedAllow::default(),
            access_log: None,
            inline: false,
            io_threads: 0,
            pool: None,
            requests: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Serve TLS on every TCP listener with this certificate chain and key.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, files: crate::tls::TlsFiles) -> Server {
        self.tls = Some(files);
        self
    }

    /// Listen on `bind` (repeatable).
    #[must_use]
    pub fn bind(mut self, bind: Bind) -> Server {
        self.binds.push(bind);
        self
    }

    /// Serve on an already-bound TCP listener (e.g. `127.0.0.1:0` in tests).
    #[must_use]
    pub fn listener(mut self, l: std::net::TcpListener) -> Server {
        self.listeners.push(Listener::Tcp(l));
        self
    }

    /// Serve on listeners bound elsewhere (e.g. by a master process).
    #[must_use]
    pub fn listeners(mut self, ls: impl IntoIterator<Item = Listener>) -> Server {
        self.listeners.extend(ls);
        self
    }

    /// Run the app on this pool (instead of one made from `threads` and
    /// `queue`), e.g. to watch it for hung requests.
    #[must_use]
    pub fn pool(mut self, pool: AppPool) -> Server {
        self.pool = Some(pool);
        self
    }

    /// Count every request handed to the app in `counter`.
    #[must_use]
    pub fn count_requests(mut self, counter: Arc<std::sync::atomic::AtomicU64>) -> Server {
        self.requests = Some(counter);
        self
    }

    /// Serve on an already-bound Unix listener.
    #[must_use]
    pub fn unix_listener(mut self, l: std::os::unix::net::UnixListener) -> Server {
        self.listeners.push(Listener::Unix(l, None));
        self
    }

    /// Application threads (Gunicorn's `--threads`); `wsgi.multithread` is
    /// true when more than one.
    #[must_use]
    pub fn threads(mut self, n: usize) -> Server {
        self.threads = n.max(1);
        self
    }

    /// Requests that may wait for a free app thread before the server
    /// answers 503.
    #[must_use]
    pub fn queue(mut self, n: usize) -> Server {
        self.backlog = n;
        self
    }

    /// The listen queue length of new sockets (Gunicorn's `--backlog`).
    #[must_use]
    pub fn listen_backlog(mut self, n: i32) -> Server {
        self.listen_backlog = n;
        self
    }

    /// Longest request line (414 over it).
    #[must_use]
    pub fn limit_request_line(mut self, n: usize) -> Server {
        self.limits.request_line = n;
        self
    }

    /// Most header fields (431 over it).
    #[must_use]
    pub fn limit_request_fields(mut self, n: usize) -> Server {
        self.limits.fields = n;
        self
    }

    /// Longest header field line (431 over it).
    #[must_use]
    pub fn limit_request_field_size(mut self, n: usize) -> Server {
        self.limits.field_size = n;
        self
    }

    /// Largest request body accepted (413 over it); `None` for no limit.
    #[must_use]
    pub fn limit_request_body(mut self, n: Option<u64>) -> Server {
        self.limits.max_body = n;
        self
    }

    /// How long an idle keep-alive connection, or a client sending its
    /// request head, may take before the connection is closed.
    #[must_use]
    pub fn keep_alive(mut self, d: Duration) -> Server {
        self.keep_alive = d.max(Duration::from_millis(1));
        self
    }

    /// How long in-flight requests may take to finish after a graceful
    /// shutdown was asked for.
    #[must_use]
    pub fn graceful_timeout(mut self, d: Duration) -> Server {
        self.graceful_timeout = d;
        self
    }

    /// Most connections open at once; more wait in the listen queue.
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Server {
        self.max_connections = n.max(1);
        self
    }

    /// Accept HTTP/2 with prior knowledge (h2c) besides HTTP/1.x.
    #[must_use]
    pub fn http2(mut self, on: bool) -> Server {
        self.http2 = on;
        self
    }

    /// Peers whose `X-Forwarded-*` and `Forwarded` headers are believed
    /// (Gunicorn's `forwarded_allow_ips`; default `127.0.0.1,::1`).
    #[must_use]
    pub fn forwarded_allow_ips(mut self, allow: ForwardedAllow) -> Server {
        self.forwarded = allow;
        self
    }

    /// Run the app inline on the runtime threads for requests with small
    /// bodies (see [`SpecService::inline`]): fastest for quick apps, but a
    /// slow request stalls the other connections of its thread.
    #[must_use]
    pub fn inline(mut self, on: bool) -> Server {
        self.inline = on;
        self
    }

    /// Runtime (I/O) threads used by [`Bound::run_until`]; 0, the default,
    /// means one per CPU. With 1, a current-thread runtime serves on the
    /// thread that calls `run_until`.
    #[must_use]
    pub fn io_threads(mut self, n: usize) -> Server {
        self.io_threads = n;
        self
    }

    /// Write an access log (off by default, as in Gunicorn).
    #[must_use]
    pub fn access_log(mut self, log: AccessLog) -> Server {
        self.access_log = Some(log);
        self
    }

    /// What the server says about itself in each environ. Its `errors`
    /// stream is where `wsgi.errors` goes (by default: `tracing` events with
    /// target `wsgi.errors`).
    #[must_use]
    pub fn server_info(mut self, info: ServerInfo) -> Server {
        self.info = info;
        self
    }

    /// Bind every address now (so errors surface before serving, and so a
    /// caller can read the addresses).
    ///
    /// # Errors
    /// The first address that cannot be bound.
    pub fn bind_all(mut self) -> Result<Bound, Error> {
        for b in std::mem::take(&mut self.binds) {
            let l = listen(&b, self.listen_backlog)?;
            self.listeners.push(l);
        }
        if self.listeners.is_empty() {
            let l = listen(&Bind::Tcp(([127, 0, 0, 1], 8000).into()), self.listen_backlog)?;
            self.listeners.push(l);
        }
        #[cfg(feature = "tls")]
        let tls = match &self.tls {
            Some(files) => Some(tokio_rustls::TlsAcceptor::from(crate::tls::server_config(files, self.http2)?)),
            None => None,
        };
        let (tx, _) = watch::channel(Shutdown::Running);
        Ok(Bound {
            server: self,
            shutdown: tx,
            #[cfg(feature = "tls")]
            tls,
        })
    }
}

/// A server whose sockets are bound, ready to serve.
pub struct Bound {
    server: Server,
    shutdown: watch::Sender<Shutdown>,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound").field("server", &self.server).finish_non_exhaustive()
    }
}

impl Bound {
    /// The listeners, for their addresses.
    #[must_use]
    pub fn listeners(&self) -> &[Listener] {
        &self.server.listeners
    }

    /// The first TCP address listened on.
    #[must_use]
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.listeners.iter().find_map(Listener::local_addr)
    }

    /// A handle that stops [`serve`](Bound::serve).
    #[must_use]
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shutdown.clone())
    }

    /// Serve `app` until a shutdown is asked for through a
    /// [`ShutdownHandle`], then drain.
    ///
    /// # Errors
    /// When the app pool cannot start or a listener cannot be registered.
    pub async fn serve(self, app: SharedApp) -> Result<(), Error> {
        #[cfg(feature = "tls")]
        let Bound { server, shutdown, tls } = self;
        #[cfg(not(feature = "tls"))]
        let Bound { server, shutdown } = self;
        let pool = match server.pool.clone() {
            Some(p) => p,
            None => AppPool::new(server.threads, server.backlog).map_err(Error::Io)?,
        };
        let service = SpecService::new(app, pool, server.info.clone())
            .forwarded_allow(server.forwarded.clone())
            .access_log(server.access_log.clone())
            .inline(server.inline, tokio::runtime::Handle::current().metrics().num_workers())
            .count_requests(server.requests.clone());
        let mut h1 = http1::Builder::new();
        // No hyper timer: the head-read timeout (`keep_alive`) is
        // GuardedIo's, one timer per connection instead of one reset per
        // request.
        h1.keep_alive(true)
            .half_close(true)
            // The guard enforces the head limits; hyper must never be the
            // stricter one.
            .max_buf_size(server.limits.max_head_len().unwrap_or(4 << 20).max(400 * 1024) + 16 * 1024);
        // hyper parses up to 100 fields into arrays on the stack; a set
        // `max_headers` puts both arrays (6 KiB) on the heap for every
        // request, so it is set only above that (the guard allows at most
        // `max_fields`).
        if server.limits.max_fields() > HYPER_STACK_HEADERS {
            h1.max_headers(server.limits.max_fields());
        }
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new()).keep_alive_interval(None);
        let builders = Arc::new(Builders { h1, h2, first_byte_timeout: server.keep_alive });
        let state = Arc::new(ConnState {
            active: AtomicUsize::new(0),
            drained: Notify::new(),
            permits: Arc::new(Semaphore::new(server.max_connections)),
        });
        let mut accept_tasks = Vec::new();
        for l in server.listeners {
            let ctx = AcceptCtx {
                service: service.clone(),
                builders: Arc::clone(&builders),
                state: Arc::clone(&state),
                shutdown: shutdown.subscribe(),
                limits: server.limits,
                http2: server.http2,
                #[cfg(feature = "tls")]
                tls: tls.clone(),
            };
            match l {
                Listener::Tcp(l) => {
                    l.set_nonblocking(true).map_err(Error::Io)?;
                    let l = tokio::net::TcpListener::from_std(l).map_err(Error::Io)?;
                    accept_tasks.push(tokio::spawn(accept_tcp(l, ctx)));
                }
                Listener::Unix(l, path) => {
                    l.set_nonblocking(true).map_err(Error::Io)?;
                    let l = tokio::net::UnixListener::from_std(l).map_err(Error::Io)?;
                    accept_tasks.push(tokio::spawn(accept_unix(l, path, ctx)));
                }
            }
        }
        let mut rx = shutdown.subscribe();
        wait_until(&mut rx, |s| s != Shutdown::Running).await;
        service.begin_closing();
        for t in &accept_tasks {
            t.abort();
        }
        let state_now = *rx.borrow();
        if state_now == Shutdown::Graceful {
            let drain = async {
                while state.active.load(Ordering::Acquire) > 0 {
                    let notified = state.drained.notified();
                    if state.active.load(Ordering::Acquire) == 0 {
                        break;
                    }
                    notified.await;
                }
            };
            let immediate = wait_until(&mut rx, |s| s == Shutdown::Immediate);
            tokio::select! {
                () = drain => {}
                () = immediate => {}
                () = tokio::time::sleep(server.graceful_timeout) => {}
            }
        }
        Ok(())
    }

    /// Serve on a new runtime until `stop` resolves, then shut down
    /// gracefully (a convenience for programs without a runtime).
    ///
    /// # Errors
    /// As [`serve`](Bound::serve), or when the runtime cannot start.
    pub fn run_until(self, app: SharedApp, stop: impl Future<Output = ()> + Send + 'static) -> Result<(), Error> {
        // One I/O thread: a current-thread runtime runs every task on the
        // calling thread, without the work-stealing scheduler's bookkeeping.
        let mut builder = if self.server.io_threads == 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if self.server.io_threads > 0 {
                b.worker_threads(self.server.io_threads);
            }
            b
        };
        let rt = builder.thread_name("wsgi-io").enable_all().build().map_err(Error::Io)?;
        let handle = self.shutdown_handle();
        rt.block_on(async move {
            tokio::spawn(async move {
                stop.await;
                handle.graceful();
            });
            self.serve(app).await
        })
    }
}

struct ConnState {
    active: AtomicUsize,
    drained: Notify,
    permits: Arc<Semaphore>,
}

struct AcceptCtx {
    service: SpecService,
    builders: Arc<Builders>,
    state: Arc<ConnState>,
    shutdown: watch::Receiver<Shutdown>,
    limits: Limits,
    http2: bool,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
}

async fn accept_tcp(l: tokio::net::TcpListener, ctx: AcceptCtx) {
    let local = l.local_addr().ok();
    loop {
        let Ok(permit) = Arc::clone(&ctx.state.permits).acquire_owned().await else {
            return;
        };
        let (stream, peer) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                accept_error(&e).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        #[cfg(feature = "tls")]
        if let Some(acceptor) = &ctx.tls {
            let info = ConnectionInfo { peer: Some(peer), local, secure: true };
            spawn_tls_conn(acceptor.clone(), stream, info, &ctx, permit);
            continue;
        }
        let info = ConnectionInfo { peer: Some(peer), local, secure: false };
        spawn_conn(stream, info, &ctx, permit);
    }
}

async fn accept_unix(l: tokio::net::UnixListener, path: Option<std::path::PathBuf>, ctx: AcceptCtx) {
    let _cleanup = path.map(RemoveOnDrop);
    loop {
        let Ok(permit) = Arc::clone(&ctx.state.permits).acquire_owned().await else {
            return;
        };
        let stream = match l.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                accept_error(&e).await;
                continue;
            }
        };
        spawn_conn_with(stream, ConnectionInfo::default(), &ctx, permit, true);
    }
}

/// Removes a Unix socket file when the accept loop ends.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn accept_error(e: &std::io::Error) {
    // Out of file descriptors and the like: back off instead of spinning.
    eprintln!("[wsgi-server] accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Hand-shake TLS in the connection's own task, then serve it.
#[cfg(feature = "tls")]
fn spawn_tls_conn(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    info: ConnectionInfo,
    ctx: &AcceptCtx,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let ctx = AcceptCtx {
        service: ctx.service.clone(),
        builders: Arc::clone(&ctx.builders),
        state: Arc::clone(&ctx.state),
        shutdown: ctx.shutdown.clone(),
        limits: ctx.limits,
        http2: ctx.http2,
        tls: None,
    };
    let timeout = Duration::from_secs(10);
    tokio::spawn(async move {
        // A failed or slow handshake just ends the connection.
        if let Ok(Ok(tls)) = tokio::time::timeout(timeout, acceptor.accept(stream)).await {
            spawn_conn(tls, info, &ctx, permit);
        }
    });
}

fn spawn_conn<S>(stream: S, info: ConnectionInfo, ctx: &AcceptCtx, permit: tokio::sync::OwnedSemaphorePermit)
where
    S: crate::sendfile::Transport,
{
    spawn_conn_with(stream, info, ctx, permit, false);
}

fn spawn_conn_with<S>(
    stream: S,
    info: ConnectionInfo,
    ctx: &AcceptCtx,
    permit: tokio::sync::OwnedSemaphorePermit,
    unix: bool,
) where
    S: crate::sendfile::Transport,
{
    let service = if unix { ctx.service.for_unix_connection() } else { ctx.service.for_connection(info) };
    let builders = Arc::clone(&ctx.builders);
    let state = Arc::clone(&ctx.state);
    let mut shutdown = ctx.shutdown.clone();
    let peer = info.peer;
    let mut io = GuardedIo::new(stream, ctx.limits, ctx.http2).head_timeout(ctx.builders.first_byte_timeout).on_reject(move |r| {
        tracing::info!(target: "wsgi_server::http", peer = ?peer, status = r.status, "refused a malformed request: {}", r.reason);
    });
    state.active.fetch_add(1, Ordering::AcqRel);
    tokio::spawn(async move {
        let _permit = permit;
        // HTTP/2 with prior knowledge (or by ALPN) starts with its preface;
        // anything else is HTTP/1. A silent client is closed after the
        // keep-alive timeout.
        let h2 = match tokio::time::timeout(builders.first_byte_timeout, io.sniff_h2()).await {
            Ok(Ok(h2)) => h2,
            Ok(Err(_)) | Err(_) => false,
        };
        let mut service = service;
        if !h2 && S::SENDFILE {
            let files = Arc::new(crate::sendfile::FileQueue::default());
            io.set_files(Arc::clone(&files));
            service = service.with_files(files);
        }
        let io = TokioIo::new(io);
        if h2 {
            let conn = builders.h2.serve_connection(io, service);
            tokio::pin!(conn);
            drive(conn, |c| c.graceful_shutdown(), &mut shutdown, builders.first_byte_timeout).await;
        } else {
            let conn = builders.h1.serve_connection(io, service);
            tokio::pin!(conn);
            drive(conn, |c| c.graceful_shutdown(), &mut shutdown, builders.first_byte_timeout).await;
        }
        if state.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            state.drained.notify_waiters();
        }
    });
}

/// The HTTP/1 and HTTP/2 connection settings.
struct Builders {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    first_byte_timeout: Duration,
}

/// Run a connection until it ends, closing it gracefully on a graceful
/// shutdown and at once on an immediate one.
async fn drive<C, O>(
    mut conn: std::pin::Pin<&mut C>,
    graceful: impl FnOnce(std::pin::Pin<&mut C>),
    shutdown: &mut watch::Receiver<Shutdown>,
    grace: Duration,
) where
    C: Future<Output = O>,
{
    if !serve_until_shutdown(conn.as_mut(), shutdown).await {
        return;
    }
    // A graceful stop: every response now says `Connection: close` (see
    // SpecService::begin_closing), so busy connections end after their
    // current request. A connection that was accepted but has not sent its
    // request yet, or an idle keep-alive one, still gets to send one (hyper
    // would drop it at once): only after the keep-alive time is it closed.
    tokio::select! {
        biased;
        _ = conn.as_mut() => return,
        () = tokio::time::sleep(grace) => {}
        () = wait_until(shutdown, |s| s == Shutdown::Immediate) => return,
    }
    graceful(conn.as_mut());
    tokio::select! {
        biased;
        _ = conn.as_mut() => {}
        () = wait_until(shutdown, |s| s == Shutdown::Immediate) => {}
    }
}

/// Run `conn` until it ends (false) or a shutdown begins (true).
///
/// Unlike a `select!` over both, the shutdown watch is polled only when its
/// own waker fired: a connection task is polled for every request, and
/// re-polling the watch each time locks its waiter list.
async fn serve_until_shutdown<C: Future>(
    mut conn: std::pin::Pin<&mut C>,
    shutdown: &mut watch::Receiver<Shutdown>,
) -> bool {
    /// Wakes the connection task and records that the watch changed.
    struct Flag {
        fired: std::sync::atomic::AtomicBool,
        task: atomic_waker::AtomicWaker,
    }
    impl std::task::Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.fired.store(true, Ordering::Release);
            self.task.wake();
        }
    }
    // Fired at first, so the watch is polled once (and registers).
    let flag =
        Arc::new(Flag { fired: std::sync::atomic::AtomicBool::new(true), task: atomic_waker::AtomicWaker::new() });
    let waker = std::task::Waker::from(Arc::clone(&flag));
    let stop = wait_until(shutdown, |s| s != Shutdown::Running);
    tokio::pin!(stop);
    std::future::poll_fn(|cx| {
        if conn.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(false);
        }
        flag.task.register(cx.waker());
        if flag.fired.swap(false, Ordering::AcqRel)
            && stop.as_mut().poll(&mut std::task::Context::from_waker(&waker)).is_ready()
        {
            return std::task::Poll::Ready(true);
        }
        std::task::Poll::Pending
    })
    .await
}

/// Wait until the shutdown state satisfies `f` (or the sender is gone).
async fn wait_until(rx: &mut watch::Receiver<Shutdown>, f: impl Fn(Shutdown) -> bool) {
    let _ = rx.wait_for(|s| f(*s)).await.map(|r| *r);
}
