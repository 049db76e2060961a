//! The master process: Gunicorn's arbiter for `wsgi-server`.
//!
//! The master binds the sockets, forks the workers and supervises them: a
//! worker that exits or crashes is replaced, one whose heartbeat stops for
//! longer than the timeout is aborted (`SIGABRT`, which makes Python's
//! `faulthandler` write the stacks of its threads) and replaced, and a crash
//! loop is slowed down instead of spun. Signals, as Gunicorn: `TERM`
//! graceful stop, `INT`/`QUIT` fast stop, `HUP` reload (new workers first,
//! old ones stopped only once their replacements are ready), `TTIN`/`TTOU`
//! one worker more/less, `USR1` reopen the logs, `CHLD` reap.
//!
//! Workers belong to generations: the first start is generation 1 and each
//! `HUP` begins the next one, with the settings the reload read
//! ([`Hooks::reload`]); workers are always started in the newest generation
//! still wanted, and told its number ([`WorkerContext::generation`]). Once
//! all the workers of a generation serve, it is the *serving* generation.
//!
//! A worker that cannot load the application ([`APP_LOAD_ERROR`] before it
//! served):
//! - before any generation served (the first start, until all its workers
//!   are ready): the master stops (fast) and exits with status 2;
//! - of a reload's generation: the reload is abandoned. The master logs one
//!   error, stops the workers of that generation, and goes back to the
//!   serving generation: its workers, never retired for replacements that
//!   did not come, keep serving, and workers started from then on (to
//!   replace one that exits, or on `TTIN`) are of that generation again,
//!   with its settings and worker count ([`Hooks::reload_abandoned`]). With
//!   `--preload` they fork the app loaded in the master; without, they
//!   import it like any worker, so while the code on disk is still broken
//!   they fail too: counted as crashes (crash-loop backoff), with the workers
//!   that serve kept. The next `HUP` clears the backoff and tries again;
//! - otherwise (a replacement in the serving generation, or a worker of a
//!   generation a newer `HUP` superseded): a crash like any other.
//!
//! The master is single-threaded, so forking is safe; workers start their
//! own threads after the fork.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A worker exit status: the application could not be loaded.
pub const APP_LOAD_ERROR: i32 = 4;
/// A worker exit status: the worker could not start.
pub const WORKER_BOOT_ERROR: i32 = 3;

const MAX_SLOTS: usize = 512;

/// What one worker shares with the master (in shared memory).
#[repr(C)]
struct Slot {
    /// Milliseconds since the master's start at the last heartbeat.
    beat: AtomicU64,
    /// 1 once the worker serves.
    ready: AtomicU32,
    /// The worker's pid (0: free).
    pid: AtomicU32,
}

/// The shared memory of all slots.
struct Slots {
    ptr: *mut Slot,
}

// SAFETY: the slots are atomics in memory shared with the children; the
// pointer stays valid for the process's life (never unmapped).
unsafe impl Send for Slots {}
unsafe impl Sync for Slots {}

impl Slots {
    fn new() -> io::Result<Slots> {
        let size = std::mem::size_of::<Slot>() * MAX_SLOTS;
        // SAFETY: an anonymous shared mapping, zero-filled by the kernel;
        // all-zero is a valid `Slot` (atomics).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Slots { ptr: ptr.cast() })
    }

    fn get(&self, i: usize) -> &Slot {
        assert!(i < MAX_SLOTS);
        // SAFETY: `i` is in bounds of the mapping made in `new`.
        unsafe { &*self.ptr.add(i) }
    }
}

/// A worker's handle on its slot: heartbeats and readiness.
#[derive(Clone, Copy)]
pub struct Heartbeat {
    slot: *const Slot,
    epoch: Instant,
}

// SAFETY: see `Slots`.
unsafe impl Send for Heartbeat {}
unsafe impl Sync for Heartbeat {}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Heartbeat")
    }
}

impl Heartbeat {
    /// Tell the master this worker is alive and making progress.
    pub fn beat(&self) {
        // SAFETY: the slot lives in the shared mapping.
        let slot = unsafe { &*self.slot };
        slot.beat.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Tell the master this worker serves requests.
    pub fn ready(&self) {
        self.beat();
        // SAFETY: as above.
        unsafe { &*self.slot }.ready.store(1, Ordering::Release);
    }
}

/// What a worker is told when it starts.
#[derive(Debug, Clone, Copy)]
pub struct WorkerContext {
    /// Its heartbeat.
    pub heartbeat: Heartbeat,
    /// Its number, from 1 (for logs).
    pub id: u64,
    /// Its generation: 1 for the first workers, one more for each reload
    /// (see [`Hooks::reload`]); start the worker with that generation's
    /// settings.
    pub generation: u64,
}

/// Settings of the master.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// Worker processes.
    pub workers: usize,
    /// Abort a worker whose heartbeat is older than this (0: never).
    pub timeout: Duration,
    /// How long workers get to finish after a graceful stop.
    pub graceful_timeout: Duration,
    /// Write the master's pid here; removed on exit.
    pub pidfile: Option<PathBuf>,
}

/// What the master calls around forks and on reloads.
pub trait Hooks {
    /// Just before `fork()` (e.g. Python's `PyOS_BeforeFork`).
    fn before_fork(&mut self) {}
    /// In the parent after `fork()`.
    fn after_fork_parent(&mut self) {}
    /// In the child after `fork()`, before the worker body.
    fn after_fork_child(&mut self) {}
    /// On `HUP`: reload the settings for the workers of `generation` (the
    /// new one); the new worker count. Keep the settings of older
    /// generations until [`Hooks::reload_done`]: the reload may yet be
    /// abandoned.
    ///
    /// # Errors
    /// A message; the reload is then abandoned and the old workers kept.
    fn reload(&mut self, generation: u64) -> Result<usize, String> {
        let _ = generation;
        Err("reload not supported".to_owned())
    }
    /// A reload was abandoned (a worker of its generation could not load
    /// the application): workers are started in `generation`, the serving
    /// one, again; the settings of newer generations are no longer needed.
    fn reload_abandoned(&mut self, generation: u64) {
        let _ = generation;
    }
    /// Every worker of `generation`, a reload's, serves: the settings of
    /// older generations are no longer needed.
    fn reload_done(&mut self, generation: u64) {
        let _ = generation;
    }
    /// On `USR1`: reopen log files.
    fn reopen_logs(&mut self) {}
    /// The master is ready (all first workers serve): e.g. `READY=1` to systemd.
    fn ready(&mut self) {}
    /// A message for the error log.
    fn log(&mut self, level: tracing::Level, msg: &str) {
        match level {
            tracing::Level::ERROR => tracing::error!("{msg}"),
            tracing::Level::WARN => tracing::warn!("{msg}"),
            _ => tracing::info!("{msg}"),
        }
    }
}

static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; a full pipe drops the byte.
        unsafe {
            libc::write(fd, (&raw const b).cast(), 1);
        }
    }
}

const SIGNALS: [libc::c_int; 9] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGCHLD,
];

fn install_handlers() -> io::Result<RawFd> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: plain syscalls on our own descriptors and handlers.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) != 0 {
            return Err(io::Error::last_os_error());
        }
        SIGNAL_PIPE.store(fds[1], Ordering::Relaxed);
        for sig in SIGNALS {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(fds[0])
}

fn reset_handlers_in_child(read_fd: RawFd) {
    // SAFETY: in the child right after fork; restores default dispositions.
    unsafe {
        for sig in SIGNALS {
            libc::signal(sig, libc::SIG_DFL);
        }
        let w = SIGNAL_PIPE.swap(-1, Ordering::Relaxed);
        libc::close(w);
        libc::close(read_fd);
    }
}

struct Worker {
    pid: libc::pid_t,
    slot: usize,
    generation: u64,
    started: Instant,
    /// When we sent SIGABRT (timeout) or SIGTERM (retired).
    aborted: Option<Instant>,
    retiring: Option<Instant>,
}

fn send(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Run the master until it is stopped; returns the process exit status.
///
/// `worker` runs in each forked child and returns its exit status.
pub fn run(config: MasterConfig, hooks: &mut dyn Hooks, worker: &mut dyn FnMut(WorkerContext) -> i32) -> i32 {
    let slots = match Slots::new() {
        Ok(s) => s,
        Err(e) => {
            hooks.log(tracing::Level::ERROR, &format!("cannot map the worker slots: {e}"));
            return 1;
        }
    };
    let read_fd = match install_handlers() {
        Ok(fd) => fd,
        Err(e) => {
            hooks.log(tracing::Level::ERROR, &format!("cannot install signal handlers: {e}"));
            return 1;
        }
    };
    if let Some(p) = &config.pidfile {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            hooks.log(tracing::Level::ERROR, &format!("cannot write the pid file {}: {e}", p.display()));
            return 1;
        }
    }
    let epoch = Instant::now();
    let mut m = Master {
        config,
        slots,
        epoch,
        workers: Vec::new(),
        wanted: 0,
        generation: 1,
        begun: 1,
        serving: None,
        next_id: 1,
        stopping: None,
        crashes: VecDeque::new(),
        backoff_until: None,
        exit_code: 0,
        read_fd,
    };
    m.wanted = m.config.workers.max(1);
    let code = m.main_loop(hooks, worker);
    if let Some(p) = &m.config.pidfile {
        let _ = std::fs::remove_file(p);
    }
    code
}

struct Master {
    config: MasterConfig,
    slots: Slots,
    epoch: Instant,
    workers: Vec<Worker>,
    wanted: usize,
    /// The generation workers are started in.
    generation: u64,
    /// The newest generation begun (an abandoned reload's number is not
    /// reused).
    begun: u64,
    /// The generation whose workers all served last, and its worker count
    /// (to go back to if a reload is abandoned); `None` until the first
    /// workers served.
    serving: Option<(u64, usize)>,
    next_id: u64,
    /// Set once a stop is under way: (graceful?, deadline).
    stopping: Option<(bool, Instant)>,
    crashes: VecDeque<Instant>,
    backoff_until: Option<Instant>,
    exit_code: i32,
    read_fd: RawFd,
}

impl Master {
    fn main_loop(&mut self, hooks: &mut dyn Hooks, worker: &mut dyn FnMut(WorkerContext) -> i32) -> i32 {
        loop {
            self.manage(hooks, worker);
            self.wait_for_events(Duration::from_millis(200));
            for sig in self.read_signals() {
                self.handle_signal(sig, hooks);
            }
            self.reap(hooks);
            self.murder(hooks);
            self.retire_replaced();
            if let Some((_, deadline)) = self.stopping {
                if self.workers.is_empty() {
                    return self.exit_code;
                }
                if Instant::now() > deadline {
                    for w in &self.workers {
                        send(w.pid, libc::SIGKILL);
                    }
                }
            }
        }
    }

    fn wait_for_events(&self, timeout: Duration) {
        let mut pfd = libc::pollfd { fd: self.read_fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd on our pipe.
        unsafe {
            libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int);
        }
    }

    fn read_signals(&self) -> Vec<libc::c_int> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reading our non-blocking pipe into a local buffer.
            let n = unsafe { libc::read(self.read_fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            out.extend(buf[..n as usize].iter().map(|&b| libc::c_int::from(b)));
        }
        out
    }

    fn live(&self) -> impl Iterator<Item = &Worker> {
        self.workers.iter().filter(|w| w.retiring.is_none() && w.aborted.is_none())
    }

    fn handle_signal(&mut self, sig: libc::c_int, hooks: &mut dyn Hooks) {
        match sig {
            libc::SIGCHLD => {}
            libc::SIGTERM => {
                if self.stopping.is_some_and(|(graceful, _)| graceful) {
                    // A second TERM: stop now.
                    self.stop(false, hooks);
                } else {
                    self.stop(true, hooks);
                }
            }
            libc::SIGINT | libc::SIGQUIT => self.stop(false, hooks),
            libc::SIGHUP => {
                hooks.log(tracing::Level::INFO, "Handling signal: hup (reload)");
                // The generation to go back to if this reload fails.
                self.note_serving(hooks);
                match hooks.reload(self.begun + 1) {
                    Ok(n) => {
                        self.wanted = n.max(1);
                        // New generation; old workers retire once replaced.
                        self.begun += 1;
                        self.generation = self.begun;
                        // New code or settings: a crash loop of the old ones
                        // must not hold the new workers back.
                        self.crashes.clear();
                        self.backoff_until = None;
                    }
                    Err(e) => hooks.log(tracing::Level::ERROR, &format!("reload failed, keeping the workers: {e}")),
                }
            }
            libc::SIGTTIN => {
                self.wanted += 1;
                if let Some((_, n)) = &mut self.serving {
                    *n += 1;
                }
                hooks.log(tracing::Level::INFO, &format!("Handling signal: ttin ({} workers)", self.wanted));
            }
            libc::SIGTTOU if self.wanted > 1 => {
                self.wanted -= 1;
                if let Some((_, n)) = &mut self.serving {
                    *n = n.saturating_sub(1).max(1);
                }
                hooks.log(tracing::Level::INFO, &format!("Handling signal: ttou ({} workers)", self.wanted));
                if let Some(oldest) = self.live().min_by_key(|w| w.started).map(|w| w.pid) {
                    self.retire(oldest);
                }
            }
            libc::SIGUSR1 => {
                hooks.log(tracing::Level::INFO, "Handling signal: usr1 (reopen logs)");
                hooks.reopen_logs();
                for w in &self.workers {
                    send(w.pid, libc::SIGUSR1);
                }
            }
            libc::SIGUSR2 => {
                hooks.log(tracing::Level::WARN, "SIGUSR2 (binary upgrade) is not supported; ignored");
            }
            _ => {}
        }
    }

    fn stop(&mut self, graceful: bool, hooks: &mut dyn Hooks) {
        let what = if graceful { "graceful stop" } else { "fast stop" };
        hooks.log(tracing::Level::INFO, &format!("Shutting down: {what}"));
        let margin =
            if graceful { self.config.graceful_timeout + Duration::from_secs(2) } else { Duration::from_secs(3) };
        self.stopping = Some((graceful, Instant::now() + margin));
        let sig = if graceful { libc::SIGTERM } else { libc::SIGINT };
        for w in &self.workers {
            send(w.pid, sig);
        }
    }

    fn retire(&mut self, pid: libc::pid_t) {
        if let Some(w) = self.workers.iter_mut().find(|w| w.pid == pid) {
            if w.retiring.is_none() {
                w.retiring = Some(Instant::now());
                send(pid, libc::SIGTERM);
            }
        }
    }

    /// After a reload: retire one old worker per new worker that is ready.
    fn retire_replaced(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        let current = self.generation;
        let ready_new = self
            .workers
            .iter()
            .filter(|w| w.generation == current && self.slots.get(w.slot).ready.load(Ordering::Acquire) == 1)
            .count();
        let live_old: Vec<libc::pid_t> = self.live().filter(|w| w.generation < current).map(|w| w.pid).collect();
        // Keep at least `wanted` ready workers serving at every moment.
        let total_ready = ready_new + live_old.len();
        let excess = total_ready.saturating_sub(self.wanted).min(live_old.len());
        for pid in live_old.into_iter().take(excess) {
            self.retire(pid);
        }
        // Retired workers past the graceful timeout: kill.
        let limit = self.config.graceful_timeout + Duration::from_secs(2);
        for w in &self.workers {
            if w.retiring.is_some_and(|t| t.elapsed() > limit) {
                send(w.pid, libc::SIGKILL);
            }
        }
    }

    fn reap(&mut self, hooks: &mut dyn Hooks) {
        loop {
            let mut status = 0;
            // SAFETY: reaping our children without blocking.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            let Some(i) = self.workers.iter().position(|w| w.pid == pid) else { continue };
            let w = self.workers.swap_remove(i);
            let was_ready = self.slots.get(w.slot).ready.load(Ordering::Acquire) == 1;
            self.slots.get(w.slot).pid.store(0, Ordering::Relaxed);
            let (code, signal) = if libc::WIFEXITED(status) {
                (Some(libc::WEXITSTATUS(status)), None)
            } else if libc::WIFSIGNALED(status) {
                (None, Some(libc::WTERMSIG(status)))
            } else {
                (None, None)
            };
            if self.stopping.is_some() || w.retiring.is_some() {
                continue;
            }
            let load_error = code == Some(APP_LOAD_ERROR) && !was_ready;
            if load_error {
                self.note_serving(hooks);
                match self.serving {
                    None => {
                        hooks.log(tracing::Level::ERROR, "the application failed to load; stopping");
                        self.exit_code = 2;
                        self.stop(false, hooks);
                        continue;
                    }
                    Some((serving, n)) if w.generation == self.generation && w.generation > serving => {
                        self.abandon_reload(serving, n, hooks);
                        continue;
                    }
                    // A replacement in the serving generation (the code on
                    // disk may be broken since) or a superseded generation:
                    // a crash, the serving workers kept.
                    Some(_) => {}
                }
            }
            if code == Some(0) && was_ready {
                hooks.log(tracing::Level::INFO, &format!("Worker {pid} exited to be recycled"));
                continue;
            }
            let why = match (code, signal) {
                (Some(c), _) if load_error => format!("could not load the application, exit status {c}"),
                (Some(c), _) => format!("exit status {c}"),
                (_, Some(s)) => format!("signal {s}"),
                _ => "unknown status".to_owned(),
            };
            let level = if w.aborted.is_some() { tracing::Level::WARN } else { tracing::Level::ERROR };
            hooks.log(level, &format!("Worker {pid} died ({why}); starting a new one"));
            let now = Instant::now();
            self.crashes.push_back(now);
            while self.crashes.front().is_some_and(|t| now.duration_since(*t) > Duration::from_secs(10)) {
                self.crashes.pop_front();
            }
            if self.crashes.len() >= 5 {
                let wait = Duration::from_secs(1 << self.crashes.len().min(6));
                hooks.log(
                    tracing::Level::ERROR,
                    &format!(
                        "{} workers died in 10 s: waiting {} s before starting another",
                        self.crashes.len(),
                        wait.as_secs()
                    ),
                );
                self.backoff_until = Some(now + wait);
            }
        }
    }

    /// A worker of the reload's generation could not load the application:
    /// stop the workers of the generations newer than `serving` (those that
    /// already serve too: the reload is all or nothing) and start workers in
    /// `serving`, `wanted` of them, again. Its workers serve on: an old
    /// worker is retired only for a new one that serves, and if some were,
    /// `manage` starts new ones of `serving` in their place.
    fn abandon_reload(&mut self, serving: u64, wanted: usize, hooks: &mut dyn Hooks) {
        let failed = self.generation;
        let doomed: Vec<libc::pid_t> = self.live().filter(|w| w.generation > serving).map(|w| w.pid).collect();
        for pid in doomed {
            self.retire(pid);
        }
        self.generation = serving;
        self.wanted = wanted;
        hooks.reload_abandoned(serving);
        let kept = self.live().count();
        hooks.log(
            tracing::Level::ERROR,
            &format!(
                "Reload failed: a new worker (generation {failed}) could not load the application; \
                 keeping the {kept} worker(s) of generation {serving}; fix the application and send HUP again"
            ),
        );
    }

    /// Abort workers whose heartbeat is older than the timeout.
    fn murder(&mut self, hooks: &mut dyn Hooks) {
        let timeout = self.config.timeout;
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        for w in &mut self.workers {
            if let Some(t) = w.aborted {
                if t.elapsed() > Duration::from_secs(5) {
                    send(w.pid, libc::SIGKILL);
                }
                continue;
            }
            if timeout.is_zero() || w.retiring.is_some() {
                continue;
            }
            let slot = self.slots.get(w.slot);
            if slot.ready.load(Ordering::Acquire) == 0 {
                // Booting (loading the app) gets the timeout from its start.
                if w.started.elapsed() > timeout.max(Duration::from_secs(30)) {
                    hooks.log(tracing::Level::ERROR, &format!("Worker {} did not boot in time; aborting it", w.pid));
                    w.aborted = Some(Instant::now());
                    send(w.pid, libc::SIGABRT);
                }
                continue;
            }
            let last = slot.beat.load(Ordering::Relaxed);
            if now_ms.saturating_sub(last) > timeout.as_millis() as u64 {
                hooks.log(
                    tracing::Level::ERROR,
                    &format!(
                        "WORKER TIMEOUT (pid:{}): no heartbeat for {} s; aborting it",
                        w.pid,
                        (now_ms - last) / 1000
                    ),
                );
                w.aborted = Some(Instant::now());
                send(w.pid, libc::SIGABRT);
            }
        }
    }

    fn manage(&mut self, hooks: &mut dyn Hooks, worker: &mut dyn FnMut(WorkerContext) -> i32) {
        if self.stopping.is_some() {
            return;
        }
        self.note_serving(hooks);
        if self.backoff_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.backoff_until = None;
        let current = self.generation;
        while self
            .workers
            .iter()
            .filter(|w| w.generation == current && w.retiring.is_none() && w.aborted.is_none())
            .count()
            < self.wanted
        {
            if let Err(e) = self.spawn(hooks, worker) {
                hooks.log(tracing::Level::ERROR, &format!("cannot start a worker: {e}"));
                self.backoff_until = Some(Instant::now() + Duration::from_secs(1));
                return;
            }
        }
    }

    /// Once every worker of the current generation serves: it is the
    /// serving one (the first time: the master is ready).
    fn note_serving(&mut self, hooks: &mut dyn Hooks) {
        let current = self.generation;
        if self.serving.is_some_and(|(g, _)| g == current) {
            return;
        }
        let ready = self
            .workers
            .iter()
            .filter(|w| w.generation == current && self.slots.get(w.slot).ready.load(Ordering::Acquire) == 1)
            .count();
        if ready >= self.wanted {
            let first = self.serving.is_none();
            self.serving = Some((current, self.wanted));
            if first {
                hooks.ready();
            } else {
                hooks.log(tracing::Level::INFO, &format!("Reload done: generation {current} serves"));
                hooks.reload_done(current);
            }
        }
    }

    fn spawn(&mut self, hooks: &mut dyn Hooks, worker: &mut dyn FnMut(WorkerContext) -> i32) -> io::Result<()> {
        let slot = (0..MAX_SLOTS)
            .find(|&i| self.slots.get(i).pid.load(Ordering::Relaxed) == 0 && !self.workers.iter().any(|w| w.slot == i))
            .ok_or_else(|| io::Error::other("too many workers"))?;
        let s = self.slots.get(slot);
        s.ready.store(0, Ordering::Release);
        s.beat.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        let id = self.next_id;
        self.next_id += 1;
        hooks.before_fork();
        // SAFETY: the master is single-threaded; the child only runs the
        // worker body and exits with `_exit`.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            hooks.after_fork_parent();
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            hooks.after_fork_child();
            reset_handlers_in_child(self.read_fd);
            let heartbeat = Heartbeat { slot: std::ptr::from_ref(self.slots.get(slot)), epoch: self.epoch };
            let code = worker(WorkerContext { heartbeat, id, generation: self.generation });
            use std::io::Write;
            let _ = std::io::stdout().flush();
            let _ = std::io::stderr().flush();
            // SAFETY: end the child without running the parent's atexit
            // handlers or destructors of state it shares with the master.
            unsafe { libc::_exit(code) };
        }
        hooks.after_fork_parent();
        s.pid.store(pid as u32, Ordering::Relaxed);
        self.workers.push(Worker {
            pid,
            slot,
            generation: self.generation,
            started: Instant::now(),
            aborted: None,
            retiring: None,
        });
        hooks.log(tracing::Level::INFO, &format!("Booting worker with pid: {pid}"));
        Ok(())
    }
}
