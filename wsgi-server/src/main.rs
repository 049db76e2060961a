//! The `wsgi-server` command: serve a Python WSGI application with a master
//! process and worker processes, configured like Gunicorn.
//!
//! `wsgi-server [OPTIONS] APP`; `wsgi-server --help` lists the options.
//! Bad options, values and applications get one line on stderr and exit
//! status 2.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use wsgi_python::{LoadOptions, PythonApp};
use wsgi_server::accesslog::{AccessLog, LogFormat};
use wsgi_server::bind::{listen, systemd_binds, Bind, Listener};
use wsgi_server::logging::{parse_level, ErrorLog, LogTarget};
use wsgi_server::master::{self, Hooks, MasterConfig, WorkerContext, APP_LOAD_ERROR, WORKER_BOOT_ERROR};
use wsgi_server::settings::{self, Config};
use wsgi_server::{AppPool, Server, ShutdownHandle};

/// mimalloc for the server's own (Rust) allocations (measured: 0.5 µs less
/// CPU per request on the Python hello app than glibc's). Python's objects
/// keep CPython's allocator (pymalloc).
#[global_allocator]
static ALLOCATOR: wsgi_server::alloc::MiMalloc = wsgi_server::alloc::MiMalloc;

/// With a health path, how long a stopping worker keeps accepting while
/// its health check answers 503.
const HEALTH_DRAIN: Duration = Duration::from_secs(1);

/// Exit status for bad input: flags, values, applications.
const USAGE: u8 = 2;

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("wsgi-server: error: {msg}");
    ExitCode::from(code)
}

fn open_log(path: &str, stdio: fn() -> Box<dyn Write + Send>) -> std::io::Result<Box<dyn Write + Send>> {
    if path == "-" {
        return Ok(stdio());
    }
    let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    Ok(Box::new(std::io::LineWriter::new(f)))
}

fn load_options(config: &Config) -> LoadOptions {
    LoadOptions {
        chdir: config.chdir.clone(),
        pythonpath: config.pythonpath.clone(),
        env: config.env.clone(),
        virtualenv: config.virtualenv.clone(),
    }
}

/// Read the settings, with their relative paths resolved against
/// `launch_dir` (the directory the server was started in).
fn read_config(args: &[String], launch_dir: Option<&Path>) -> Result<Config, String> {
    let mut config = settings::parse(args, &|k| std::env::var(k).ok()).map_err(|e| e.to_string())?;
    if let Some(dir) = launch_dir {
        config.resolve_paths(dir);
    }
    Ok(config)
}

/// Every `--static-map` DIR is a directory.
fn check_static_dirs(config: &Config) -> Result<(), String> {
    for (prefix, dir) in &config.static_map {
        if !dir.is_dir() {
            return Err(format!("invalid value for --static-map {prefix}={}: not a directory", dir.display()));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Read once: with --preload the master changes directory (--chdir).
    let launch_dir = std::env::current_dir().ok();
    let config = match read_config(&args, launch_dir.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(USAGE, e),
    };
    if config.help {
        print!("{}", settings::help());
        return ExitCode::SUCCESS;
    }
    if config.version {
        println!("wsgi-server {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if config.print_config {
        println!("{config:#?}");
        return ExitCode::SUCCESS;
    }
    if let Err(e) = check_static_dirs(&config) {
        return fail(USAGE, e);
    }
    let Some(app_spec) = config.app.clone() else {
        return fail(USAGE, "no application given: expected MODULE:CALLABLE (see --help)");
    };
    let level = match parse_level(&config.log_level) {
        Ok(l) => l,
        Err(e) => return fail(USAGE, format!("invalid value for --log-level: {e}")),
    };
    let error_log: LogTarget = match open_log(&config.error_logfile, || Box::new(std::io::stderr())) {
        Ok(w) => Arc::new(Mutex::new(w)),
        Err(e) => return fail(USAGE, format!("cannot open the error log {:?}: {e}", config.error_logfile)),
    };
    let _ = tracing::subscriber::set_global_default(ErrorLog::new(level, Arc::clone(&error_log)));

    // --check-config and --preload load the app here, in the master.
    let preloaded = if config.check_config || config.preload {
        match PythonApp::load(&app_spec, &load_options(&config)) {
            Ok(app) => Some(Arc::new(app)),
            Err(e) => return fail(USAGE, e),
        }
    } else {
        None
    };
    let access_log = match make_access_log(&config) {
        Ok(l) => l,
        Err(e) => return fail(USAGE, e),
    };
    if config.check_config {
        println!("wsgi-server: configuration OK, application {app_spec:?} loaded");
        return ExitCode::SUCCESS;
    }
    if let Some(mask) = config.umask {
        // SAFETY: umask(2) only changes this process's file mode mask.
        unsafe { libc::umask(mask as libc::mode_t) };
    }
    let mut binds = config.binds.clone();
    if binds.is_empty() {
        binds = systemd_binds();
    }
    if binds.is_empty() {
        binds.push(Bind::Tcp(([127, 0, 0, 1], 8000).into()));
    }
    let mut listeners = Vec::new();
    for b in &binds {
        match listen(b, config.backlog) {
            Ok(l) => listeners.push(l),
            Err(e) => return fail(1, e),
        }
    }
    if let Err(e) = drop_privileges(&config) {
        return fail(USAGE, e);
    }
    tracing::info!("Starting wsgi-server {}", env!("CARGO_PKG_VERSION"));
    for l in &listeners {
        tracing::info!("Listening at: {} ({})", l.describe(), std::process::id());
    }
    let mode =
        if config.threads == 1 { "inline (1 thread)".to_owned() } else { format!("{} app threads", config.threads) };
    tracing::info!("Serving {app_spec} with {} worker(s), {mode}", config.workers);

    let generations = Arc::new(Mutex::new(Generations { configs: BTreeMap::from([(1, config.clone())]) }));
    let mut hooks = CliHooks {
        args,
        launch_dir,
        generations: Arc::clone(&generations),
        python_forks: preloaded.is_some(),
        error_log: Arc::clone(&error_log),
        access_log: access_log.clone(),
        notify: std::env::var_os("NOTIFY_SOCKET").map(PathBuf::from),
    };
    let master_config = MasterConfig {
        workers: config.workers,
        timeout: config.timeout,
        graceful_timeout: config.graceful_timeout,
        pidfile: config.pidfile.clone(),
    };
    let mut worker = |ctx: WorkerContext| -> i32 {
        let config = generations.lock().unwrap_or_else(PoisonError::into_inner).get(ctx.generation);
        let logs = Logs { error_log: Arc::clone(&error_log), access_log: access_log.clone() };
        run_worker(&config, &app_spec, preloaded.clone(), &listeners, logs, ctx)
    };
    let code = master::run(master_config, &mut hooks, &mut worker);
    hooks.notify("STOPPING=1");
    for l in &listeners {
        if let Listener::Unix(_, Some(path)) = l {
            let _ = std::fs::remove_file(path);
        }
    }
    tracing::info!("Shutting down");
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn make_access_log(config: &Config) -> Result<Option<AccessLog>, String> {
    let Some(path) = &config.access_logfile else { return Ok(None) };
    let format = if config.access_logformat == "json" {
        LogFormat::Json
    } else {
        LogFormat::gunicorn(&config.access_logformat).map_err(|e| e.to_string())?
    };
    let out = open_log(path, || Box::new(std::io::stdout()))
        .map_err(|e| format!("cannot open the access log {path:?}: {e}"))?;
    Ok(Some(AccessLog::new(format, out)))
}

fn drop_privileges(config: &Config) -> Result<(), String> {
    if let Some(group) = &config.group {
        let gid = match group.parse::<libc::gid_t>() {
            Ok(g) => g,
            Err(_) => {
                let name = std::ffi::CString::new(group.as_str()).map_err(|_| format!("invalid group {group:?}"))?;
                // SAFETY: getgrnam reads the group database; the result is
                // copied out at once.
                let gr = unsafe { libc::getgrnam(name.as_ptr()) };
                if gr.is_null() {
                    return Err(format!("invalid value for --group: no group {group:?}"));
                }
                // SAFETY: non-null result of getgrnam.
                unsafe { (*gr).gr_gid }
            }
        };
        // SAFETY: setgid(2) on this process.
        if unsafe { libc::setgid(gid) } != 0 {
            return Err(format!("cannot switch to group {group:?}: {}", std::io::Error::last_os_error()));
        }
    }
    if let Some(user) = &config.user {
        let uid = match user.parse::<libc::uid_t>() {
            Ok(u) => u,
            Err(_) => {
                let name = std::ffi::CString::new(user.as_str()).map_err(|_| format!("invalid user {user:?}"))?;
                // SAFETY: getpwnam reads the user database; copied out at once.
                let pw = unsafe { libc::getpwnam(name.as_ptr()) };
                if pw.is_null() {
                    return Err(format!("invalid value for --user: no user {user:?}"));
                }
                // SAFETY: non-null result of getpwnam.
                unsafe { (*pw).pw_uid }
            }
        };
        // SAFETY: setuid(2) on this process.
        if unsafe { libc::setuid(uid) } != 0 {
            return Err(format!("cannot switch to user {user:?}: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// The settings of the worker generations that may still start workers
/// (see `master`): the serving one and the newer ones of reloads under way.
struct Generations {
    configs: BTreeMap<u64, Config>,
}

impl Generations {
    /// The settings of `generation` (else the newest).
    fn get(&self, generation: u64) -> Config {
        self.configs.get(&generation).or_else(|| self.configs.values().next_back()).cloned().unwrap_or_default()
    }
}

/// The master's hooks: Python fork safety, reload, log reopening, systemd.
struct CliHooks {
    args: Vec<String>,
    /// Where relative paths of the settings start (see `read_config`).
    launch_dir: Option<PathBuf>,
    generations: Arc<Mutex<Generations>>,
    python_forks: bool,
    error_log: LogTarget,
    access_log: Option<AccessLog>,
    notify: Option<PathBuf>,
}

impl CliHooks {
    /// `sd_notify`: one datagram to `$NOTIFY_SOCKET`.
    fn notify(&self, msg: &str) {
        if let Some(path) = &self.notify {
            if let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() {
                let _ = sock.send_to(msg.as_bytes(), path);
            }
        }
    }
}

impl Hooks for CliHooks {
    fn before_fork(&mut self) {
        if self.python_forks {
            wsgi_python::before_fork();
        }
    }
    fn after_fork_parent(&mut self) {
        if self.python_forks {
            wsgi_python::after_fork_parent();
        }
    }
    fn after_fork_child(&mut self) {
        if self.python_forks {
            wsgi_python::after_fork_child();
        }
        // A worker must not outlive its master.
        // SAFETY: prctl on this (child) process.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
    }
    fn reload(&mut self, generation: u64) -> Result<usize, String> {
        self.notify("RELOADING=1");
        let config =
            read_config(&self.args, self.launch_dir.as_deref()).and_then(|c| check_static_dirs(&c).map(|()| c));
        self.notify("READY=1");
        let config = config?;
        let workers = config.workers;
        self.generations.lock().unwrap_or_else(PoisonError::into_inner).configs.insert(generation, config);
        Ok(workers)
    }
    fn reload_abandoned(&mut self, generation: u64) {
        self.generations.lock().unwrap_or_else(PoisonError::into_inner).configs.retain(|&g, _| g <= generation);
    }
    fn reload_done(&mut self, generation: u64) {
        self.generations.lock().unwrap_or_else(PoisonError::into_inner).configs.retain(|&g, _| g >= generation);
    }
    fn reopen_logs(&mut self) {
        // The newest settings (the `u64::MAX`th generation's, were there one).
        let config = self.generations.lock().unwrap_or_else(PoisonError::into_inner).get(u64::MAX);
        Logs { error_log: Arc::clone(&self.error_log), access_log: self.access_log.clone() }.reopen(&config);
    }
    fn ready(&mut self) {
        self.notify(&format!("READY=1\nMAINPID={}", std::process::id()));
    }
}

/// A worker's log handles, to reopen on `USR1`.
#[derive(Clone)]
struct Logs {
    error_log: LogTarget,
    access_log: Option<AccessLog>,
}

impl Logs {
    fn reopen(&self, config: &Config) {
        if let Ok(w) = open_log(&config.error_logfile, || Box::new(std::io::stderr())) {
            *self.error_log.lock().unwrap_or_else(PoisonError::into_inner) = w;
        }
        if let (Some(log), Some(path)) = (&self.access_log, &config.access_logfile) {
            if let Ok(w) = open_log(path, || Box::new(std::io::stdout())) {
                log.reopen(w);
            }
        }
    }
}

/// The body of a worker process.
fn run_worker(
    config: &Config,
    app_spec: &str,
    preloaded: Option<Arc<PythonApp>>,
    listeners: &[Listener],
    logs: Logs,
    ctx: WorkerContext,
) -> i32 {
    let access_log = logs.access_log.clone();
    let app = match preloaded {
        Some(app) => app,
        None => match PythonApp::load(app_spec, &load_options(config)) {
            Ok(app) => Arc::new(app),
            Err(e) => {
                eprintln!("wsgi-server: error: {e}");
                return APP_LOAD_ERROR;
            }
        },
    };
    // Whatever reaches stderr (Python's own tracebacks, faulthandler) goes
    // to the error log file too.
    if config.error_logfile != "-" {
        if let Ok(f) = std::fs::OpenOptions::new().create(true).append(true).open(&config.error_logfile) {
            use std::os::fd::AsRawFd;
            // SAFETY: dup2 onto fd 2 of this (worker) process.
            unsafe { libc::dup2(f.as_raw_fd(), 2) };
        }
    }
    // On SIGABRT (the master's timeout), write every thread's Python stack.
    wsgi_python::enable_faulthandler();
    let mut own = Vec::new();
    for l in listeners {
        match l.try_clone() {
            Ok(l) => own.push(l),
            Err(e) => {
                tracing::error!("worker cannot use its sockets: {e}");
                return WORKER_BOOT_ERROR;
            }
        }
    }
    let readiness = wsgi_middleware::health::Readiness::new();
    let app = match wrap_app(config, app, &readiness) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("wsgi-server: error: {e}");
            return APP_LOAD_ERROR;
        }
    };
    let inline = config.threads == 1;
    let pool = match AppPool::new(config.threads, config.queue) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("worker cannot start its threads: {e}");
            return WORKER_BOOT_ERROR;
        }
    };
    let requests = Arc::new(AtomicU64::new(0));
    let mut server = Server::new()
        .listeners(own)
        .threads(config.threads)
        .queue(config.queue)
        .pool(pool.clone())
        .count_requests(Arc::clone(&requests))
        .inline(inline)
        .keep_alive(config.keep_alive)
        .graceful_timeout(config.graceful_timeout)
        .max_connections(config.max_connections)
        .limit_request_line(config.limit_request_line)
        .limit_request_fields(config.limit_request_fields)
        .limit_request_field_size(config.limit_request_field_size)
        .limit_request_body(config.limit_request_body)
        .forwarded_allow_ips(config.forwarded_allow_ips.clone());
    let mut info = wsgi_spec::ServerInfo {
        software: concat!("wsgi-server/", env!("CARGO_PKG_VERSION")).into(),
        multiprocess: config.workers > 1,
        ..wsgi_spec::ServerInfo::default()
    };
    info.errors = wsgi_spec::Errors::new(TracingErrors);
    server = server.server_info(info);
    if let Some(log) = access_log {
        server = server.access_log(log);
    }
    #[cfg(feature = "tls")]
    if let (Some(cert), Some(key)) = (&config.certfile, &config.keyfile) {
        server = server.tls(wsgi_server::tls::TlsFiles { cert_file: cert.clone(), key_file: key.clone() });
    }
    #[cfg(not(feature = "tls"))]
    if config.certfile.is_some() {
        eprintln!("wsgi-server: error: --certfile/--keyfile: this build has no TLS (build with the `tls` feature)");
        return APP_LOAD_ERROR;
    }
    let bound = match server.bind_all() {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("worker cannot start: {e}");
            return WORKER_BOOT_ERROR;
        }
    };
    let mut builder = if inline {
        // One thread runs the loop and the app: it holds the GIL while it
        // has work, not once per request (see wsgi_python::loop_busy).
        let mut b = tokio::runtime::Builder::new_current_thread();
        b.on_thread_unpark(wsgi_python::loop_busy).on_thread_park(wsgi_python::loop_idle);
        b
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()));
        b
    };
    let rt = match builder.thread_name("wsgi-io").enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("worker cannot start its runtime: {e}");
            return WORKER_BOOT_ERROR;
        }
    };
    let handle = bound.shutdown_handle();
    let limit = max_requests(config, ctx.id);
    let watch = Watch {
        heartbeat: ctx.heartbeat,
        pool,
        inline,
        timeout: config.timeout,
        requests,
        limit,
        memory: config.max_worker_memory,
        reload: config.reload.then(|| config.reload_extra_files.clone()),
    };
    let config = config.clone();
    let result = rt.block_on(async move {
        tokio::spawn(worker_signals(handle.clone(), logs, config.clone(), readiness));
        tokio::spawn(watch.run(handle));
        if inline {
            tokio::spawn(let_python_threads_run());
        }
        ctx.heartbeat.ready();
        bound.serve(app).await
    });
    wsgi_python::loop_idle();
    drop(rt);
    match result {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("worker stopped: {e}");
            1
        }
    }
}

/// An inline worker's loop holds the GIL while it is busy; a loop that
/// stays busy with Rust work (static files, say) gives other Python threads
/// their turn every 10 ms here.
async fn let_python_threads_run() {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        wsgi_python::loop_idle();
        wsgi_python::loop_busy();
    }
}

/// Wrap the app in the middleware the flags ask for, outermost first:
/// health, metrics, request id, static files, compression.
fn wrap_app(
    config: &Config,
    app: Arc<PythonApp>,
    readiness: &wsgi_middleware::health::Readiness,
) -> Result<wsgi_spec::SharedApp, String> {
    use tower_layer::Layer;
    use wsgi_middleware::{compression, health, metrics, request_id, static_files};
    let mut app: wsgi_spec::SharedApp = app;
    if config.compress {
        app = Arc::new(compression::CompressionLayer::new().layer(app));
    }
    for (prefix, dir) in config.static_map.iter().rev() {
        let layer = static_files::StaticLayer::new(prefix, dir)
            .map_err(|e| format!("invalid value for --static-map {prefix}={}: {e}", dir.display()))?;
        app = Arc::new(layer.layer(app));
    }
    if config.request_id {
        app = Arc::new(request_id::RequestIdLayer::new().layer(app));
    }
    if let Some(path) = &config.metrics_path {
        let layer =
            metrics::MetricsLayer::new().path(path).map_err(|e| format!("invalid value for --metrics-path: {e}"))?;
        app = Arc::new(layer.layer(app));
    }
    if let Some(path) = &config.health_path {
        let layer = health::HealthLayer::new()
            .path(path)
            .map_err(|e| format!("invalid value for --health-path: {e}"))?
            .with_readiness(readiness.clone());
        app = Arc::new(layer.layer(app));
    }
    Ok(app)
}

/// `max_requests` plus this worker's jitter.
fn max_requests(config: &Config, id: u64) -> u64 {
    if config.max_requests == 0 {
        return 0;
    }
    let jitter = if config.max_requests_jitter == 0 {
        0
    } else {
        let seed = u64::from(std::process::id()) ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        seed % (config.max_requests_jitter + 1)
    };
    config.max_requests + jitter
}

/// The default `wsgi.errors` destination: `tracing` error events.
#[derive(Debug, Clone, Copy)]
struct TracingErrors;

impl wsgi_spec::errors::ErrorSink for TracingErrors {
    fn line(&self, line: &str) {
        tracing::error!(target: "wsgi.errors", "{line}");
    }
}

/// What a worker watches: its heartbeat, its request count, its memory.
struct Watch {
    heartbeat: master::Heartbeat,
    pool: AppPool,
    inline: bool,
    timeout: Duration,
    requests: Arc<AtomicU64>,
    limit: u64,
    memory: u64,
    /// With `--reload`: the extra files to watch besides the modules.
    reload: Option<Vec<PathBuf>>,
}

impl Watch {
    async fn run(self, handle: ShutdownHandle) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut seen: std::collections::HashMap<PathBuf, std::time::SystemTime> = std::collections::HashMap::new();
        let mut ticks = 0u64;
        loop {
            tick.tick().await;
            ticks += 1;
            if let Some(extra) = &self.reload {
                if ticks % 2 == 0 && changed_files(&mut seen, extra) {
                    tracing::info!("A source file changed: restarting the worker (--reload)");
                    handle.graceful();
                    return;
                }
            }
            // Inline: this task runs on the app's own thread, so a hung
            // request stops it. With app threads: beat only while no
            // request runs longer than the timeout.
            let hung =
                !self.inline && !self.timeout.is_zero() && self.pool.oldest_busy().is_some_and(|d| d > self.timeout);
            if !hung {
                self.heartbeat.beat();
            }
            if self.limit > 0 && self.requests.load(Ordering::Relaxed) >= self.limit {
                tracing::info!("Worker reached max-requests ({}): recycling", self.limit);
                handle.graceful();
                return;
            }
            if self.memory > 0 {
                if let Some(rss) = rss_bytes() {
                    if rss > self.memory {
                        tracing::warn!("Worker memory {} MiB is over max-worker-memory: recycling", rss >> 20);
                        handle.graceful();
                        return;
                    }
                }
            }
        }
    }
}

/// With `--reload`: true when a loaded module's file or an extra file
/// changed since the last look (the first look records the baseline).
fn changed_files(seen: &mut std::collections::HashMap<PathBuf, std::time::SystemTime>, extra: &[PathBuf]) -> bool {
    let mut changed = false;
    for path in wsgi_python::loaded_module_files().into_iter().chain(extra.iter().cloned()) {
        let Ok(mtime) = std::fs::metadata(&path).and_then(|m| m.modified()) else { continue };
        match seen.insert(path, mtime) {
            Some(before) if before != mtime => changed = true,
            _ => {}
        }
    }
    changed
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// In a worker: TERM graceful stop; INT and QUIT fast stop; USR1 reopen
/// the log files.
async fn worker_signals(
    handle: ShutdownHandle,
    logs: Logs,
    config: Config,
    readiness: wsgi_middleware::health::Readiness,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut quit), Ok(mut usr1)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::quit()),
        signal(SignalKind::user_defined1()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => {
                readiness.set_ready(false);
                if config.health_path.is_some() {
                    // Keep accepting for a moment so health checks see 503
                    // (load balancers take the worker out) before it stops
                    // accepting.
                    tokio::select! {
                        () = tokio::time::sleep(HEALTH_DRAIN) => {}
                        _ = int.recv() => { handle.immediate(); continue; }
                    }
                }
                handle.graceful();
            }
            _ = int.recv() => handle.immediate(),
            _ = quit.recv() => handle.immediate(),
            _ = usr1.recv() => logs.reopen(&config),
        }
    }
}
