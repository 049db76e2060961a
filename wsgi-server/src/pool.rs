//! The bounded pool of application threads.
//!
//! Blocking application code never runs on a runtime thread: requests are
//! handed to `threads` dedicated OS threads. At most `threads + backlog`
//! requests are admitted at once (running or waiting); beyond that
//! [`AppPool::try_submit`] refuses at once and the server answers 503.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of threads running request jobs, with a bounded queue.
#[derive(Debug, Clone)]
pub struct AppPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: SyncSender<Job>,
    threads: usize,
    /// Jobs admitted and not yet finished (running + queued).
    admitted: AtomicUsize,
    capacity: usize,
    /// Per thread: when its current job started (ms since `epoch`), 0 when idle.
    busy_since: Vec<AtomicU64>,
    epoch: Instant,
}

/// Why a job was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolFull;

impl AppPool {
    /// Start `threads` threads (at least one) admitting at most
    /// `threads + backlog` jobs at once.
    ///
    /// # Errors
    /// When a thread cannot be spawned.
    pub fn new(threads: usize, backlog: usize) -> std::io::Result<AppPool> {
        let threads = threads.max(1);
        let capacity = threads + backlog;
        let (tx, rx) = mpsc::sync_channel::<Job>(capacity);
        let rx = Arc::new(Mutex::new(rx));
        let inner = Arc::new(Inner {
            tx,
            threads,
            admitted: AtomicUsize::new(0),
            capacity,
            busy_since: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
        });
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let weak = Arc::downgrade(&inner);
            thread::Builder::new().name(format!("wsgi-app-{i}")).spawn(move || worker(&rx, &weak, i))?;
        }
        Ok(AppPool { inner })
    }

    /// The number of application threads.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.inner.threads
    }

    /// Jobs running or waiting right now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.inner.admitted.load(Ordering::Relaxed)
    }

    /// How long the longest-running job has been running, if any runs: what
    /// a supervisor checks to find a hung application.
    #[must_use]
    pub fn oldest_busy(&self) -> Option<Duration> {
        let now = self.inner.epoch.elapsed().as_millis() as u64;
        self.inner
            .busy_since
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .filter(|&t| t != 0)
            .min()
            .map(|t| Duration::from_millis(now.saturating_sub(t)))
    }

    /// Jobs admitted but waiting for a thread (an estimate).
    #[must_use]
    pub fn queued(&self) -> usize {
        self.in_flight().saturating_sub(self.inner.threads)
    }

    /// Run `job` on an application thread, or refuse at once when the
    /// threads are busy and the queue is full.
    ///
    /// # Errors
    /// [`PoolFull`].
    pub fn try_submit(&self, job: impl FnOnce() + Send + 'static) -> Result<(), PoolFull> {
        self.try_submit_or_return(job).map_err(|_| PoolFull)
    }

    /// Like [`try_submit`](Self::try_submit), giving the job back when
    /// the pool is full.
    ///
    /// # Errors
    /// The job, not run.
    pub fn try_submit_or_return<F: FnOnce() + Send + 'static>(&self, job: F) -> Result<(), F> {
        let inner = &self.inner;
        let mut cur = inner.admitted.load(Ordering::Relaxed);
        loop {
            if cur >= inner.capacity {
                return Err(job);
            }
            match inner.admitted.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        let guard = Admitted(Arc::clone(&self.inner));
        let job: Job = Box::new(move || {
            let _guard = guard;
            job();
        });
        // Capacity is reserved above, so the channel has room; a send can
        // only fail once the workers are gone (then the job is dropped).
        let _ = inner.tx.try_send(job);
        Ok(())
    }
}

/// Releases a job's admission when the job ends (or is dropped unrun).
struct Admitted(Arc<Inner>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

fn worker(rx: &Mutex<Receiver<Job>>, inner: &std::sync::Weak<Inner>, index: usize) {
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
            rx.recv()
        };
        match job {
            // The job catches application panics itself; a panic escaping
            // here would be a server bug, and must not kill the thread.
            Ok(job) => {
                let mark = |v: Option<u64>| {
                    if let Some(inner) = inner.upgrade() {
                        let now = v.unwrap_or_else(|| (inner.epoch.elapsed().as_millis() as u64).max(1));
                        inner.busy_since[index].store(now, Ordering::Relaxed);
                    }
                };
                mark(None);
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                mark(Some(0));
            }
            Err(_) => return,
        }
    }
}
