//! The `wsgi-server` command: serve a Python WSGI application.
//!
//! `wsgi-server [OPTIONS] APP`; `wsgi-server --help` lists the options.
//! Bad options, values and applications get one line on stderr and exit
//! status 2.

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use wsgi_python::{LoadOptions, PythonApp};
use wsgi_server::accesslog::{AccessLog, LogFormat};
use wsgi_server::bind::{systemd_binds, Bind};
use wsgi_server::logging::{parse_level, ErrorLog, LogTarget};
use wsgi_server::settings::{self, Config};
use wsgi_server::{Server, ShutdownHandle};

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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match settings::parse(&args, &|k| std::env::var(k).ok()) {
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
    let Some(app_spec) = config.app.clone() else {
        return fail(USAGE, "no application given: expected MODULE:CALLABLE (see --help)");
    };
    let level = match parse_level(&config.log_level) {
        Ok(l) => l,
        Err(e) => return fail(USAGE, format!("invalid value for --log-level: {e}")),
    };
    let out: LogTarget = match open_log(&config.error_logfile, || Box::new(std::io::stderr())) {
        Ok(w) => Arc::new(Mutex::new(w)),
        Err(e) => return fail(USAGE, format!("cannot open the error log {:?}: {e}", config.error_logfile)),
    };
    let _ = tracing::subscriber::set_global_default(ErrorLog::new(level, out));

    let opts = LoadOptions {
        chdir: config.chdir.clone(),
        pythonpath: config.pythonpath.clone(),
        env: config.env.clone(),
        virtualenv: config.virtualenv.clone(),
    };
    let app = match PythonApp::load(&app_spec, &opts) {
        Ok(app) => app,
        Err(e) => return fail(USAGE, e),
    };
    if config.check_config {
        println!("wsgi-server: configuration OK, application {app_spec:?} loaded");
        return ExitCode::SUCCESS;
    }
    let server = match build(&config) {
        Ok(s) => s,
        Err(code_msg) => return fail(code_msg.0, code_msg.1),
    };
    let bound = match server.bind_all() {
        Ok(b) => b,
        Err(e @ wsgi_server::Error::InvalidSetting(_)) | Err(e @ wsgi_server::Error::Tls(_)) => return fail(USAGE, e),
        Err(e) => return fail(1, e),
    };
    tracing::info!("Starting wsgi-server {}", env!("CARGO_PKG_VERSION"));
    for l in bound.listeners() {
        tracing::info!("Listening at: {} ({})", l.describe(), std::process::id());
    }
    let mode =
        if config.threads == 1 { "inline (1 thread)".to_owned() } else { format!("{} app threads", config.threads) };
    tracing::info!("Serving {app_spec} with {mode}");
    let io_threads = if config.threads == 1 { 1 } else { std::thread::available_parallelism().map_or(2, |n| n.get()) };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(io_threads)
        .thread_name("wsgi-io")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, format!("cannot start the runtime: {e}")),
    };
    let handle = bound.shutdown_handle();
    let result = rt.block_on(async move {
        tokio::spawn(handle_signals(handle));
        bound.serve(Arc::new(app)).await
    });
    tracing::info!("Shutting down");
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, e),
    }
}

/// TERM: graceful stop; INT and QUIT: fast stop; a second TERM: fast stop.
async fn handle_signals(handle: ShutdownHandle) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut quit)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::quit()))
    else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    let mut graceful = false;
    loop {
        tokio::select! {
            _ = term.recv() => {
                if graceful {
                    handle.immediate();
                } else {
                    tracing::info!("Handling signal: term (graceful stop)");
                    graceful = true;
                    handle.graceful();
                }
            }
            _ = int.recv() => { tracing::info!("Handling signal: int"); handle.immediate(); }
            _ = quit.recv() => { tracing::info!("Handling signal: quit"); handle.immediate(); }
        }
    }
}

fn build(config: &Config) -> Result<Server, (u8, String)> {
    let mut server = Server::new()
        .threads(config.threads)
        .queue(config.queue)
        .inline(config.threads == 1)
        .listen_backlog(config.backlog)
        .keep_alive(config.keep_alive)
        .graceful_timeout(config.graceful_timeout)
        .max_connections(config.max_connections)
        .limit_request_line(config.limit_request_line)
        .limit_request_fields(config.limit_request_fields)
        .limit_request_field_size(config.limit_request_field_size)
        .limit_request_body(config.limit_request_body)
        .forwarded_allow_ips(config.forwarded_allow_ips.clone());
    let mut binds = config.binds.clone();
    if binds.is_empty() {
        binds = systemd_binds();
    }
    if binds.is_empty() {
        binds.push(Bind::Tcp(([127, 0, 0, 1], 8000).into()));
    }
    for b in binds {
        server = server.bind(b);
    }
    if let Some(path) = &config.access_logfile {
        let format = if config.access_logformat == "json" {
            LogFormat::Json
        } else {
            LogFormat::gunicorn(&config.access_logformat).map_err(|e| (USAGE, e.to_string()))?
        };
        let out = open_log(path, || Box::new(std::io::stdout()))
            .map_err(|e| (USAGE, format!("cannot open the access log {path:?}: {e}")))?;
        server = server.access_log(AccessLog::new(format, out));
    }
    if let (Some(cert), Some(key)) = (&config.certfile, &config.keyfile) {
        #[cfg(feature = "tls")]
        {
            server = server.tls(wsgi_server::tls::TlsFiles { cert_file: cert.clone(), key_file: key.clone() });
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = (cert, key);
            return Err((USAGE, "--certfile/--keyfile: this build has no TLS (build with the `tls` feature)".into()));
        }
    }
    Ok(server)
}
