//! The conformance kit (`wsgi-conformance`) against the reference server:
//! every corpus case and every server rule, over real sockets.
//!
//! Run one rule or case with `CONFORMANCE_ONLY=CL-,valid/001 cargo test -p
//! wsgi-server --test conformance -- --nocapture`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::thread::JoinHandle;

use wsgi_conformance::{run_with, Options, RunningServer, ServerUnderTest};
use wsgi_server::{Server, ShutdownHandle};
use wsgi_spec::SharedApp;

/// The reference server with 4 app threads, on 127.0.0.1:0 in a thread of
/// its own.
struct Reference {
    /// Inline mode on one runtime thread, instead of the app-thread pool.
    inline: bool,
}

struct Running {
    addr: SocketAddr,
    shutdown: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
}

impl RunningServer for Running {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.immediate();
        // Not joined: an app thread still running (a check that leaves a
        // stream behind) must not hold up the kit.
        drop(self.thread.take());
    }
}

impl ServerUnderTest for Reference {
    fn start(&self, app: SharedApp) -> Box<dyn RunningServer> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let bound = Server::new().listener(listener).threads(4).inline(self.inline).bind_all().unwrap();
        let shutdown = bound.shutdown_handle();
        let workers = if self.inline { 1 } else { 2 };
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().unwrap();
            rt.block_on(bound.serve(app)).unwrap();
        });
        Box::new(Running { addr, shutdown, thread: Some(thread) })
    }
}

fn options() -> Options {
    let mut options = Options::default();
    if let Ok(only) = std::env::var("CONFORMANCE_ONLY") {
        options.only = only.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    }
    options
}

#[test]
fn the_reference_server_passes_the_conformance_kit() {
    let report = run_with(&Reference { inline: false }, &options());
    println!("{report}");
    report.assert_all_passed();
}

#[test]
fn the_reference_server_in_inline_mode_passes_the_conformance_kit() {
    let report = run_with(&Reference { inline: true }, &options());
    println!("{report}");
    report.assert_all_passed();
}
