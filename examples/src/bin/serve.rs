//! Serve one of the example apps with `wsgi-server`.
//!
//! `serve [hello|streaming|lazy] [--bind ADDR] [--threads N] [--inline] [--io-threads N]`

use std::sync::Arc;

/// The allocator the `wsgi-server` command uses too (see its `main.rs`).
#[global_allocator]
static ALLOCATOR: wsgi_server::alloc::MiMalloc = wsgi_server::alloc::MiMalloc;

use wsgi_spec::SharedApp;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut app_name = "hello".to_owned();
    let mut bind = "127.0.0.1:8000".to_owned();
    let mut threads = 4usize;
    let mut inline = false;
    let mut io_threads = 0usize;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bind" | "-b" => bind = args.next().unwrap_or_default(),
            "--inline" => inline = true,
            "--io-threads" => io_threads = args.next().and_then(|t| t.parse().ok()).unwrap_or(0),
            "--threads" => threads = args.next().and_then(|t| t.parse().ok()).unwrap_or(0),
            other if !other.starts_with('-') => app_name = other.to_owned(),
            other => fail(&format!("unknown option {other:?}")),
        }
    }
    let app: SharedApp = match app_name.as_str() {
        "hello" => Arc::new(examples::hello),
        "streaming" => Arc::new(examples::streaming),
        "lazy" => Arc::new(examples::lazy_write),
        other => fail(&format!("unknown app {other:?}: expected hello, streaming or lazy")),
    };
    if threads == 0 {
        fail("--threads expects a positive number");
    }
    let bind = bind.parse().unwrap_or_else(|e: wsgi_server::Error| fail(&e.to_string()));
    let bound = wsgi_server::Server::new()
        .bind(bind)
        .threads(threads)
        .inline(inline)
        .io_threads(io_threads)
        .bind_all()
        .unwrap_or_else(|e| fail(&e.to_string()));
    for l in bound.listeners() {
        eprintln!("serving the {app_name} example on {}", l.describe());
    }
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(e) = bound.run_until(app, stop) {
        fail(&e.to_string());
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("serve: {msg}");
    std::process::exit(2)
}
