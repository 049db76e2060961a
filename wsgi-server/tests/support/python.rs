//! Helpers for tests that start the `wsgi-server` command on Python apps.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How long the server may take to load its app and listen.
pub const STARTUP: Duration = Duration::from_secs(20);

/// `wsgi-server/tests/python`: the test apps.
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// The test virtualenv (`WSGI_TEST_VENV`, made by `scripts/python-venv.sh`).
///
/// # Panics
/// When it is not set or not a virtualenv, with what to run.
pub fn venv() -> PathBuf {
    let Some(dir) = std::env::var_os("WSGI_TEST_VENV") else {
        panic!(
            "WSGI_TEST_VENV is not set: run `bash scripts/python-venv.sh` (it prints the venv path) and \
             `export WSGI_TEST_VENV=<that path>` before `cargo test --features python`"
        );
    };
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("bin/python").exists(),
        "WSGI_TEST_VENV={} is not a virtualenv: run `bash scripts/python-venv.sh`",
        dir.display()
    );
    dir
}

/// A free port on 127.0.0.1 (the command cannot bind port 0 and report it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A fresh, empty directory named after `what`, for one server's files.
pub fn temp_dir(what: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir =
        std::env::temp_dir().join(format!("wsgi-{what}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
