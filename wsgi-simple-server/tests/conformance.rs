//! The conformance kit (`wsgi-conformance`) against the simple server:
//! every corpus case and every server rule, over real sockets, 100%.
//!
//! Run one rule or case with `CONFORMANCE_ONLY=CL-,valid/001 cargo test -p
//! wsgi-simple-server --test conformance -- --nocapture`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;

use wsgi_conformance::{run_with, Options, RunningServer, ServerUnderTest};
use wsgi_simple_server::{Handle, SimpleServer};
use wsgi_spec::SharedApp;

/// The simple server with a pool of 8 threads on 127.0.0.1:0.
struct Simple;

struct Running(Handle);

impl RunningServer for Running {
    fn addr(&self) -> SocketAddr {
        self.0.local_addr()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Not joined: a request a check left behind must not hold up the kit.
        self.0.shutdown();
    }
}

impl ServerUnderTest for Simple {
    fn start(&self, app: SharedApp) -> Box<dyn RunningServer> {
        let handle = SimpleServer::bind("127.0.0.1:0").unwrap().threads(8).serve(app).unwrap();
        Box::new(Running(handle))
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
fn the_simple_server_passes_the_conformance_kit() {
    let report = run_with(&Simple, &options());
    println!("{report}");
    report.assert_all_passed();
    assert!(report.passed() > 0, "no check ran");
}
