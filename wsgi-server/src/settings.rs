//! Settings as data: one table gives every setting its command-line
//! flags, its environment variable (`WSGI_SERVER_<NAME>`), its default, its
//! validation and its help. The command line parser, the environment
//! loader and the generated reference (`docs/settings.md`) all read it.
//!
//! Precedence: environment < command line. `WSGI_SERVER_CMD_ARGS` holds
//! whole command-line arguments, read before the real ones.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::accesslog::DEFAULT_FORMAT;
use crate::bind::Bind;
use crate::proxy::ForwardedAllow;

/// How a setting takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A switch: present or not (`--check-config`).
    Switch,
    /// One value; the last one given wins.
    Value,
    /// Repeatable; each occurrence adds a value (`--bind`).
    Multi,
}

/// One setting.
#[derive(Debug)]
pub struct Setting {
    /// The name: config key, `WSGI_SERVER_<NAME>` upper-cased.
    pub name: &'static str,
    /// Command-line flags, Gunicorn's where the meaning is the same.
    pub flags: &'static [&'static str],
    /// What the value looks like, for the help (`INT`, `ADDRESS`).
    pub meta: &'static str,
    /// Switch, value or repeatable.
    pub kind: Kind,
    /// The default, as shown in the help.
    pub default: &'static str,
    /// The group it is listed under.
    pub section: &'static str,
    /// What it does.
    pub help: &'static str,
    apply: fn(&mut Config, &str) -> Result<(), String>,
}

impl Setting {
    /// The environment variable that sets it.
    #[must_use]
    pub fn env_var(&self) -> String {
        format!("WSGI_SERVER_{}", self.name.to_ascii_uppercase())
    }
}

/// Everything the command configures, typed and validated.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The application, `module:callable`.
    pub app: Option<String>,
    /// The config file read, if any.
    pub config: Option<PathBuf>,
    /// Where to listen.
    pub binds: Vec<Bind>,
    /// Worker processes.
    pub workers: usize,
    /// Application threads; 1 runs the app inline on a single I/O thread.
    pub threads: usize,
    /// Abort a worker silent for longer than this (0: never).
    pub timeout: Duration,
    /// Recycle a worker after this many requests (0: never).
    pub max_requests: u64,
    /// Add up to this many to `max_requests`, per worker.
    pub max_requests_jitter: u64,
    /// Recycle a worker whose RSS grows past this many bytes (0: never).
    pub max_worker_memory: u64,
    /// Load the app in the master before forking the workers.
    pub preload: bool,
    /// Write the master's pid to this file.
    pub pidfile: Option<PathBuf>,
    /// Switch to this user after binding.
    pub user: Option<String>,
    /// Switch to this group after binding.
    pub group: Option<String>,
    /// The umask of the processes (and Unix sockets).
    pub umask: Option<u32>,
    /// The process name shown in logs.
    pub proc_name: Option<String>,
    /// `--reload`: restart workers when a source file changes.
    pub reload: bool,
    /// `--reload-extra-file` paths.
    pub reload_extra_files: Vec<PathBuf>,
    /// `--static-map PREFIX=DIR` pairs (DIR absolute after
    /// [`Config::resolve_paths`]).
    pub static_map: Vec<(String, PathBuf)>,
    /// `--compress`.
    pub compress: bool,
    /// `--request-id`.
    pub request_id: bool,
    /// `--health-path`.
    pub health_path: Option<String>,
    /// `--metrics-path`.
    pub metrics_path: Option<String>,
    /// Requests that may wait for an app thread before 503.
    pub queue: usize,
    /// Keep-alive and request-head timeout.
    pub keep_alive: Duration,
    /// Time for in-flight requests after a graceful stop.
    pub graceful_timeout: Duration,
    /// `--chdir`.
    pub chdir: Option<PathBuf>,
    /// `--pythonpath` entries.
    pub pythonpath: Vec<PathBuf>,
    /// `--env KEY=VALUE` pairs.
    pub env: Vec<(String, String)>,
    /// `--virtualenv`.
    pub virtualenv: Option<PathBuf>,
    /// `--access-logfile` (`-` is stdout).
    pub access_logfile: Option<String>,
    /// `--access-logformat` (`json` for JSON lines).
    pub access_logformat: String,
    /// `--error-logfile` (`-` is stderr).
    pub error_logfile: String,
    /// `--log-level`.
    pub log_level: String,
    /// `--forwarded-allow-ips`.
    pub forwarded_allow_ips: ForwardedAllow,
    /// `--certfile`.
    pub certfile: Option<PathBuf>,
    /// `--keyfile`.
    pub keyfile: Option<PathBuf>,
    /// `--limit-request-line`.
    pub limit_request_line: usize,
    /// `--limit-request-fields`.
    pub limit_request_fields: usize,
    /// `--limit-request-field_size`.
    pub limit_request_field_size: usize,
    /// `--limit-request-body`.
    pub limit_request_body: Option<u64>,
    /// `--backlog`.
    pub backlog: i32,
    /// `--max-connections`.
    pub max_connections: usize,
    /// `--check-config`: check everything (importing the app) and exit.
    pub check_config: bool,
    /// `--print-config`: print the settings and exit.
    pub print_config: bool,
    /// `--version`.
    pub version: bool,
    /// `--help`.
    pub help: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            app: None,
            config: None,
            binds: Vec::new(),
            workers: 1,
            threads: 1,
            timeout: Duration::from_secs(30),
            max_requests: 0,
            max_requests_jitter: 0,
            max_worker_memory: 0,
            preload: false,
            pidfile: None,
            user: None,
            group: None,
            umask: None,
            proc_name: None,
            reload: false,
            reload_extra_files: Vec::new(),
            static_map: Vec::new(),
            compress: false,
            request_id: false,
            health_path: None,
            metrics_path: None,
            queue: 64,
            keep_alive: Duration::from_secs(2),
            graceful_timeout: Duration::from_secs(30),
            chdir: None,
            pythonpath: Vec::new(),
            env: Vec::new(),
            virtualenv: None,
            access_logfile: None,
            access_logformat: DEFAULT_FORMAT.to_owned(),
            error_logfile: "-".to_owned(),
            log_level: "info".to_owned(),
            forwarded_allow_ips: ForwardedAllow::default(),
            certfile: None,
            keyfile: None,
            limit_request_line: 4094,
            limit_request_fields: 100,
            limit_request_field_size: 8190,
            limit_request_body: None,
            backlog: 2048,
            max_connections: 10_000,
            check_config: false,
            print_config: false,
            version: false,
            help: false,
        }
    }
}

impl Config {
    /// Make the `--static-map` directories absolute, once, when the settings
    /// are read: a relative DIR is relative to `--chdir` when given (as with
    /// Gunicorn, whose `--chdir` happens first), else to `base`, the
    /// directory the server was started in. The master checks the same
    /// directories the workers serve, whatever directory either is in.
    pub fn resolve_paths(&mut self, base: &Path) {
        let root = match &self.chdir {
            Some(dir) => base.join(dir),
            None => base.to_path_buf(),
        };
        for (_, dir) in &mut self.static_map {
            if dir.is_relative() {
                *dir = root.join(&*dir);
            }
        }
    }
}

fn number<T: std::str::FromStr>(v: &str, what: &str) -> Result<T, String> {
    v.trim().parse().map_err(|_| format!("expected {what}, got {v:?}"))
}

fn seconds(v: &str) -> Result<Duration, String> {
    let s: f64 = number(v, "a number of seconds")?;
    if !(0.0..=1e9).contains(&s) {
        return Err(format!("expected a number of seconds, got {v:?}"));
    }
    Ok(Duration::from_secs_f64(s))
}

fn switch(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {v:?}")),
    }
}

macro_rules! setting {
    ($name:literal, $flags:expr, $meta:literal, $kind:ident, $default:literal, $section:literal, $help:literal, $apply:expr) => {
        Setting {
            name: $name,
            flags: $flags,
            meta: $meta,
            kind: Kind::$kind,
            default: $default,
            section: $section,
            help: $help,
            apply: $apply,
        }
    };
}

/// Every setting, in the order of the help.
pub static SETTINGS: &[Setting] = &[
    setting!("config", &["-c", "--config"], "FILE", Value, "./wsgi-server.toml if present", "Config file",
        "Read settings from this TOML file (top-level `name = value` lines, names as in this reference). The file is overridden by the environment, which the command line overrides.",
        |c, v| { c.config = Some(PathBuf::from(v)); Ok(()) }),
    setting!("bind", &["-b", "--bind"], "ADDRESS", Multi, "127.0.0.1:8000", "Server socket",
        "Listen on ADDRESS: `HOST:PORT`, `[IPV6]:PORT`, `unix:PATH` or `fd://N`. Repeat to listen on several. Sockets passed by systemd (LISTEN_FDS) are used when no bind is given.",
        |c, v| { c.binds.push(v.parse::<Bind>().map_err(|e| e.to_string())?); Ok(()) }),
    setting!("backlog", &["--backlog"], "INT", Value, "2048", "Server socket",
        "The listen queue length of each socket.",
        |c, v| { c.backlog = number(v, "a positive number")?; if c.backlog < 1 { return Err("expected a positive number".into()) } Ok(()) }),
    setting!("workers", &["-w", "--workers"], "INT", Value, "1 ($WEB_CONCURRENCY)", "Worker processes",
        "Worker processes, each serving all sockets. `WEB_CONCURRENCY` sets it when no flag or `WSGI_SERVER_WORKERS` does.",
        |c, v| { c.workers = number(v, "a positive number")?; if c.workers == 0 { return Err("expected a positive number".into()) } Ok(()) }),
    setting!("timeout", &["-t", "--timeout"], "SECONDS", Value, "30", "Worker processes",
        "A worker whose heartbeat is silent for longer (a request hung in the app) is aborted, with the Python stacks of its threads written to the error log, and replaced. 0 disables.",
        |c, v| { c.timeout = seconds(v)?; Ok(()) }),
    setting!("max_requests", &["--max-requests"], "INT", Value, "0", "Worker processes",
        "Recycle a worker (gracefully) after this many requests; 0 disables. Against memory leaks.",
        |c, v| { c.max_requests = number(v, "a number")?; Ok(()) }),
    setting!("max_requests_jitter", &["--max-requests-jitter"], "INT", Value, "0", "Worker processes",
        "Add a random number up to this to each worker's max-requests, so workers do not restart together.",
        |c, v| { c.max_requests_jitter = number(v, "a number")?; Ok(()) }),
    setting!("max_worker_memory", &["--max-worker-memory"], "MIB", Value, "0", "Worker processes",
        "Recycle a worker (gracefully) whose resident memory grows past this many MiB; 0 disables.",
        |c, v| { let mib: u64 = number(v, "a number of MiB")?; c.max_worker_memory = mib.saturating_mul(1 << 20); Ok(()) }),
    setting!("preload_app", &["--preload"], "", Switch, "false", "Worker processes",
        "Load the app in the master before forking the workers (memory shared copy-on-write; a reload re-forks from it).",
        |c, v| { c.preload = switch(v)?; Ok(()) }),
    setting!("reload", &["--reload"], "", Switch, "false", "Debugging",
        "Restart the workers when a loaded Python source file (or a --reload-extra-file) changes. For development.",
        |c, v| { c.reload = switch(v)?; Ok(()) }),
    setting!("reload_extra_files", &["--reload-extra-file"], "FILE", Multi, "", "Debugging",
        "Also restart the workers when FILE changes (with --reload). Repeatable.",
        |c, v| { c.reload_extra_files.push(PathBuf::from(v)); Ok(()) }),
    setting!("threads", &["--threads"], "INT", Value, "1", "Worker processes",
        "Application threads. With 1, the app runs inline on a single I/O thread, never concurrently (`wsgi.multithread` is false); with more, on that many threads beside the I/O threads.",
        |c, v| { c.threads = number(v, "a positive number")?; if c.threads == 0 { return Err("expected a positive number".into()) } Ok(()) }),
    setting!("queue", &["--queue"], "INT", Value, "64", "Worker processes",
        "Requests that may wait for a free app thread (with --threads > 1); beyond that the server answers 503 at once.",
        |c, v| { c.queue = number(v, "a number")?; Ok(()) }),
    setting!("max_connections", &["--max-connections"], "INT", Value, "10000", "Worker processes",
        "Most client connections open at once; more wait in the listen queue.",
        |c, v| { c.max_connections = number(v, "a positive number")?; if c.max_connections == 0 { return Err("expected a positive number".into()) } Ok(()) }),
    setting!("keepalive", &["--keep-alive"], "SECONDS", Value, "2", "Worker processes",
        "How long an idle keep-alive connection, or a client sending its request head, may take. Checked coarsely: such a connection is closed after between this time and twice it.",
        |c, v| { c.keep_alive = seconds(v)?; Ok(()) }),
    setting!("graceful_timeout", &["--graceful-timeout"], "SECONDS", Value, "30", "Worker processes",
        "After a graceful stop (SIGTERM), how long in-flight requests may take to finish.",
        |c, v| { c.graceful_timeout = seconds(v)?; Ok(()) }),
    setting!("chdir", &["--chdir"], "DIR", Value, "", "Python",
        "Change to DIR before loading the app; DIR is put first on sys.path.",
        |c, v| { c.chdir = Some(PathBuf::from(v)); Ok(()) }),
    setting!("pythonpath", &["--pythonpath"], "PATHS", Multi, "", "Python",
        "Comma-separated directories to put first on sys.path.",
        |c, v| { c.pythonpath.extend(v.split(',').filter(|p| !p.is_empty()).map(PathBuf::from)); Ok(()) }),
    setting!("raw_env", &["-e", "--env"], "KEY=VALUE", Multi, "", "Python",
        "Set an environment variable before the app is loaded. Repeatable.",
        |c, v| { let (k, val) = v.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, got {v:?}"))?; if k.is_empty() { return Err(format!("expected KEY=VALUE, got {v:?}")) } c.env.push((k.to_owned(), val.to_owned())); Ok(()) }),
    setting!("virtualenv", &["--virtualenv"], "DIR", Value, "$VIRTUAL_ENV", "Python",
        "A virtualenv whose packages the app imports.",
        |c, v| { c.virtualenv = Some(PathBuf::from(v)); Ok(()) }),
    setting!("static_map", &["--static-map"], "PREFIX=DIR", Multi, "", "Middleware",
        "Serve the files of DIR under the URL PREFIX in Rust, outside the GIL (ETag/304, Range, precompressed .br/.gz siblings, long caching for hashed names). A relative DIR is relative to --chdir when given, else to the directory the server was started in. Repeatable.",
        |c, v| { let (p, d) = v.split_once('=').ok_or_else(|| format!("expected PREFIX=DIR, got {v:?}"))?; if !p.starts_with('/') || d.is_empty() { return Err(format!("expected PREFIX=DIR with PREFIX starting with /, got {v:?}")) } c.static_map.push((p.to_owned(), PathBuf::from(d))); Ok(()) }),
    setting!("compress", &["--compress"], "", Switch, "false", "Middleware",
        "Compress responses with gzip or brotli, by Accept-Encoding (compressible types above 1 KiB).",
        |c, v| { c.compress = switch(v)?; Ok(()) }),
    setting!("request_id", &["--request-id"], "", Switch, "false", "Middleware",
        "Give every request an X-Request-ID (kept from trusted clients, else made), in the environ and the response.",
        |c, v| { c.request_id = switch(v)?; Ok(()) }),
    setting!("health_path", &["--health-path"], "PATH", Value, "", "Middleware",
        "Answer PATH (e.g. /healthz) with 200 without calling the app; 503 once a graceful stop began.",
        |c, v| { if !v.starts_with('/') { return Err(format!("expected a path starting with /, got {v:?}")) } c.health_path = Some(v.to_owned()); Ok(()) }),
    setting!("metrics_path", &["--metrics-path"], "PATH", Value, "", "Middleware",
        "Serve Prometheus metrics (requests by status class, in flight, latency histogram) at PATH.",
        |c, v| { if !v.starts_with('/') { return Err(format!("expected a path starting with /, got {v:?}")) } c.metrics_path = Some(v.to_owned()); Ok(()) }),
    setting!("pidfile", &["-p", "--pid"], "FILE", Value, "", "Server mechanics",
        "Write the master's pid to FILE; removed on exit.",
        |c, v| { c.pidfile = Some(PathBuf::from(v)); Ok(()) }),
    setting!("user", &["-u", "--user"], "USER", Value, "", "Server mechanics",
        "Switch the worker processes to this user (name or id) after binding.",
        |c, v| { c.user = Some(v.to_owned()); Ok(()) }),
    setting!("group", &["-g", "--group"], "GROUP", Value, "", "Server mechanics",
        "Switch the worker processes to this group (name or id) after binding.",
        |c, v| { c.group = Some(v.to_owned()); Ok(()) }),
    setting!("umask", &["-m", "--umask"], "INT", Value, "", "Server mechanics",
        "The umask of the processes, also for Unix sockets (octal with a leading 0, e.g. 0o007 or 007).",
        |c, v| { let t = v.trim_start_matches("0o"); c.umask = Some(u32::from_str_radix(t, 8).map_err(|_| format!("expected an octal umask, got {v:?}"))?); Ok(()) }),
    setting!("proc_name", &["-n", "--name"], "STRING", Value, "", "Server mechanics",
        "A name for the process in logs.",
        |c, v| { c.proc_name = Some(v.to_owned()); Ok(()) }),
    setting!("accesslog", &["--access-logfile"], "FILE", Value, "", "Logging",
        "Write an access log line per request to FILE (`-` is stdout). Off by default.",
        |c, v| { c.access_logfile = Some(v.to_owned()); Ok(()) }),
    setting!("access_log_format", &["--access-logformat"], "FORMAT", Value, "Gunicorn's default", "Logging",
        "The access log format, with Gunicorn's atoms (`%(h)s`, `%(r)s`, `%({header}i)s`...), or `json` for one JSON object a line.",
        |c, v| { if v != "json" { crate::accesslog::LogFormat::gunicorn(v).map_err(|e| e.to_string())?; } c.access_logformat = v.to_owned(); Ok(()) }),
    setting!("errorlog", &["--error-logfile", "--log-file"], "FILE", Value, "-", "Logging",
        "Write the error log to FILE (`-` is stderr).",
        |c, v| { c.error_logfile = v.to_owned(); Ok(()) }),
    setting!("loglevel", &["--log-level"], "LEVEL", Value, "info", "Logging",
        "The error log's level: debug, info, warning, error or critical.",
        |c, v| { crate::logging::parse_level(v)?; c.log_level = v.to_ascii_lowercase(); Ok(()) }),
    setting!("forwarded_allow_ips", &["--forwarded-allow-ips"], "IPS", Value, "127.0.0.1,::1", "Security",
        "Comma-separated addresses and CIDR networks (or `*`) of proxies whose X-Forwarded-For/Proto/Host/Port and Forwarded headers are believed. Peers on a Unix socket (a local reverse proxy) are believed unless the list is empty; the socket's permissions decide who can connect.",
        |c, v| { c.forwarded_allow_ips = v.parse().map_err(|e: crate::Error| e.to_string())?; Ok(()) }),
    setting!("certfile", &["--certfile"], "FILE", Value, "", "SSL",
        "The TLS certificate chain (PEM). With --keyfile, every TCP socket serves HTTPS (HTTP/2 by ALPN).",
        |c, v| { c.certfile = Some(PathBuf::from(v)); Ok(()) }),
    setting!("keyfile", &["--keyfile"], "FILE", Value, "", "SSL",
        "The TLS private key (PEM).",
        |c, v| { c.keyfile = Some(PathBuf::from(v)); Ok(()) }),
    setting!("limit_request_line", &["--limit-request-line"], "INT", Value, "4094", "Security",
        "The longest request line accepted (414 beyond); 0 for no limit.",
        |c, v| { c.limit_request_line = number(v, "a number")?; Ok(()) }),
    setting!("limit_request_fields", &["--limit-request-fields"], "INT", Value, "100", "Security",
        "The most header fields in a request (431 beyond).",
        |c, v| { c.limit_request_fields = number(v, "a number")?; Ok(()) }),
    setting!("limit_request_field_size", &["--limit-request-field_size", "--limit-request-field-size"], "INT", Value, "8190", "Security",
        "The longest header field line (431 beyond); 0 for no limit.",
        |c, v| { c.limit_request_field_size = number(v, "a number")?; Ok(()) }),
    setting!("limit_request_body", &["--limit-request-body"], "BYTES", Value, "0", "Security",
        "The largest request body accepted (413 beyond); 0 for no limit.",
        |c, v| { let n: u64 = number(v, "a number of bytes")?; c.limit_request_body = (n > 0).then_some(n); Ok(()) }),
    setting!("check_config", &["--check-config"], "", Switch, "false", "Debugging",
        "Check the settings and import the app, then exit (status 0 or 2).",
        |c, v| { c.check_config = switch(v)?; Ok(()) }),
    setting!("print_config", &["--print-config"], "", Switch, "false", "Debugging",
        "Print the resulting settings, then exit.",
        |c, v| { c.print_config = switch(v)?; Ok(()) }),
    setting!("version", &["-v", "--version"], "", Switch, "false", "Debugging",
        "Print the version and exit.",
        |c, v| { c.version = switch(v)?; Ok(()) }),
    setting!("help", &["-h", "--help"], "", Switch, "false", "Debugging",
        "Print this help and exit.",
        |c, v| { c.help = switch(v)?; Ok(()) }),
];

/// A setting error: one line naming the offending flag, variable or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn find_flag(flag: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.flags.contains(&flag))
}

/// Split a whole command line (`WSGI_SERVER_CMD_ARGS`) into arguments:
/// whitespace separates, single and double quotes group.
#[must_use]
pub fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Values gathered for each setting, before they are applied.
#[derive(Default)]
struct Gathered {
    values: Vec<(usize, Vec<String>, String)>,
    app: Option<String>,
}

impl Gathered {
    /// Record `value` for setting `idx`; `source` names where it came from.
    /// A later source replaces an earlier one; a repeatable setting keeps
    /// every value of one source.
    fn put(&mut self, idx: usize, value: String, source: &str) {
        match self.values.iter_mut().find(|(i, _, _)| *i == idx) {
            Some((_, vals, src)) if src == source && SETTINGS[idx].kind == Kind::Multi => vals.push(value),
            Some((_, vals, src)) => {
                *vals = vec![value];
                *src = source.to_owned();
            }
            None => self.values.push((idx, vec![value], source.to_owned())),
        }
    }
}

fn gather_args(g: &mut Gathered, args: &[String], source: &str) -> Result<(), ConfigError> {
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            for rest in &args[i..] {
                set_app(g, rest, source)?;
            }
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            set_app(g, arg, source)?;
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let Some(setting) = find_flag(flag) else {
            return Err(ConfigError(format!("unknown option {flag:?}{}", suggest(flag))));
        };
        let idx = SETTINGS.iter().position(|s| std::ptr::eq(s, setting)).unwrap_or(0);
        let value = match (setting.kind, inline) {
            (Kind::Switch, None) => "true".to_owned(),
            (_, Some(v)) => v,
            (_, None) => {
                let v = args.get(i).ok_or_else(|| ConfigError(format!("option {flag} expects {}", setting.meta)))?;
                i += 1;
                v.clone()
            }
        };
        g.put(idx, value, source);
    }
    Ok(())
}

fn set_app(g: &mut Gathered, arg: &str, source: &str) -> Result<(), ConfigError> {
    if let Some(prev) = &g.app {
        if source == "command line" {
            return Err(ConfigError(format!("more than one application given: {prev:?} and {arg:?}")));
        }
    }
    g.app = Some(arg.to_owned());
    Ok(())
}

fn suggest(flag: &str) -> String {
    let bare = flag.trim_start_matches('-').replace('-', "_");
    SETTINGS
        .iter()
        .flat_map(|s| s.flags.iter())
        .find(|f| f.trim_start_matches('-').replace('-', "_") == bare || (bare.len() > 3 && f.contains(&bare)))
        .map(|f| format!(" (did you mean {f}?)"))
        .unwrap_or_default()
}

/// Build the configuration from the environment (`getenv`) and the command
/// line (without the program name).
///
/// # Errors
/// One line naming the unknown flag, the bad value and its setting, or the
/// environment variable it came from.
pub fn parse(args: &[String], getenv: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let mut g = Gathered::default();
    if let Some(path) = config_path(args, getenv)? {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError(format!("cannot read the config file {}: {e}", path.display())))?;
        let label = format!("config file {}", path.display());
        for (line, key, values) in parse_toml(&text).map_err(|e| ConfigError(format!("{label}: {e}")))? {
            let Some(idx) = SETTINGS.iter().position(|s| s.name == key) else {
                return Err(ConfigError(format!("{label}, line {line}: unknown setting {key:?}{}", suggest(&key))));
            };
            if SETTINGS[idx].kind != Kind::Multi && values.len() != 1 {
                return Err(ConfigError(format!("{label}, line {line}: {key} takes one value, not a list")));
            }
            for v in values {
                g.put(idx, v, &label);
            }
        }
    }
    for (idx, s) in SETTINGS.iter().enumerate() {
        if let Some(v) = getenv(&s.env_var()) {
            if s.kind == Kind::Multi {
                for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    g.put(idx, part.to_owned(), &s.env_var());
                }
            } else {
                g.put(idx, v, &s.env_var());
            }
        }
    }
    if getenv("WSGI_SERVER_WORKERS").is_none() {
        if let Some(v) = getenv("WEB_CONCURRENCY") {
            if let Some(idx) = SETTINGS.iter().position(|s| s.name == "workers") {
                g.put(idx, v, "WEB_CONCURRENCY");
            }
        }
    }
    if let Some(cmd) = getenv("WSGI_SERVER_CMD_ARGS") {
        gather_args(&mut g, &split_args(&cmd), "WSGI_SERVER_CMD_ARGS")?;
    }
    gather_args(&mut g, args, "command line")?;
    let mut config = Config { app: g.app.clone(), ..Config::default() };
    for (idx, values, source) in &g.values {
        let s = &SETTINGS[*idx];
        for v in values {
            (s.apply)(&mut config, v).map_err(|why| {
                let from = if source == "command line" {
                    s.flags.last().copied().unwrap_or(s.name).to_owned()
                } else {
                    format!("{} (from {source})", s.flags.last().copied().unwrap_or(s.name))
                };
                ConfigError(format!("invalid value for {from}: {why}"))
            })?;
        }
    }
    if config.certfile.is_some() != config.keyfile.is_some() {
        return Err(ConfigError("--certfile and --keyfile go together".to_owned()));
    }
    Ok(config)
}

/// The config file to read: `-c/--config`, else `WSGI_SERVER_CONFIG`, else
/// `./wsgi-server.toml` when it exists.
fn config_path(args: &[String], getenv: &dyn Fn(&str) -> Option<String>) -> Result<Option<PathBuf>, ConfigError> {
    let mut found = None;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if let Some(v) = a.strip_prefix("--config=") {
            found = Some(v.to_owned());
        } else if a == "-c" || a == "--config" {
            found = Some(args.get(i + 1).cloned().ok_or_else(|| ConfigError(format!("option {a} expects FILE")))?);
            i += 1;
        }
        i += 1;
    }
    if let Some(f) = found.or_else(|| getenv("WSGI_SERVER_CONFIG")) {
        return Ok(Some(PathBuf::from(f)));
    }
    let default = PathBuf::from("wsgi-server.toml");
    Ok(default.is_file().then_some(default))
}

/// A small TOML reader for settings files: top-level `key = value` lines,
/// values being strings (basic or literal), integers, floats, booleans or
/// one-line arrays of those; `#` comments. Returns (line, key, values).
fn parse_toml(text: &str) -> Result<Vec<(usize, String, Vec<String>)>, String> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            return Err(format!("line {line_no}: tables are not supported; put settings at the top level"));
        }
        let (key, value) = line.split_once('=').ok_or_else(|| format!("line {line_no}: expected name = value"))?;
        let key = key.trim().trim_matches('"').to_owned();
        let value = value.trim();
        let values = if let Some(inner) = value.strip_prefix('[') {
            let inner =
                inner.strip_suffix(']').ok_or_else(|| format!("line {line_no}: an array must close on its line"))?;
            split_array(inner).iter().map(|v| toml_scalar(v.trim())).collect::<Option<Vec<_>>>()
        } else {
            toml_scalar(value).map(|v| vec![v])
        }
        .ok_or_else(|| format!("line {line_no}: cannot read the value of {key}"))?;
        out.push((line_no, key, values));
    }
    Ok(out)
}

fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '#') => return &line[..i],
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    line
}

fn split_array(inner: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    for c in inner.chars() {
        match (quote, c) {
            (None, ',') => items.push(std::mem::take(&mut cur)),
            (None, '"' | '\'') => {
                quote = Some(c);
                cur.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        items.push(cur);
    }
    items
}

fn toml_scalar(v: &str) -> Option<String> {
    if let Some(s) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return Some(s.replace("\\\"", "\"").replace("\\\\", "\\"));
    }
    if let Some(s) = v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        return Some(s.to_owned());
    }
    match v {
        "true" | "false" => Some(v.to_owned()),
        _ if !v.is_empty() && v.parse::<f64>().is_ok() => Some(v.replace('_', "")),
        _ => None,
    }
}

/// The command's `--help` text.
#[must_use]
pub fn help() -> String {
    let mut out = String::from(
        "usage: wsgi-server [OPTIONS] APP\n\nServe the Python WSGI application APP (`module:callable`, default callable\n`application`) over HTTP.\n",
    );
    let mut section = "";
    for s in SETTINGS {
        if s.section != section {
            section = s.section;
            let _ = write!(out, "\n{section}:\n");
        }
        let flags = s.flags.join(", ");
        let head = if s.meta.is_empty() { flags } else { format!("{flags} {}", s.meta) };
        let _ = writeln!(out, "  {head}");
        let _ = writeln!(out, "      {}", s.help);
        if !s.default.is_empty() && s.kind != Kind::Switch {
            let _ = writeln!(out, "      Default: {}", s.default);
        }
    }
    out
}

/// The settings reference in Markdown (`docs/settings.md`).
#[must_use]
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Settings reference\n\n<!-- Generated from wsgi-server/src/settings.rs; do not edit. Regenerate with\n     `cargo run -p wsgi-server --example gen-settings-doc`. -->\n\nEvery setting can be given in a TOML config file (`name = value`, see `config`),\nin the environment as `WSGI_SERVER_<NAME>` (repeatable settings take a\ncomma-separated list there) or on the command line; `WSGI_SERVER_CMD_ARGS` holds\nwhole command-line arguments. The command line wins over the environment, which\nwins over the config file.\n",
    );
    let mut section = "";
    for s in SETTINGS {
        if s.section != section {
            section = s.section;
            let _ = write!(out, "\n## {section}\n");
        }
        let _ = write!(out, "\n### `{}`\n\n", s.name);
        let flags: Vec<String> = s
            .flags
            .iter()
            .map(|f| format!("`{f}{}`", if s.meta.is_empty() { String::new() } else { format!(" {}", s.meta) }))
            .collect();
        let _ = writeln!(out, "- Command line: {}", flags.join(", "));
        let _ = writeln!(out, "- Environment: `{}`", s.env_var());
        if !s.default.is_empty() {
            let _ = writeln!(out, "- Default: `{}`", s.default);
        }
        if s.kind == Kind::Multi {
            let _ = writeln!(out, "- Repeatable");
        }
        let _ = write!(out, "\n{}\n", s.help);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn args(s: &str) -> Vec<String> {
        split_args(s)
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn flags_take_values_in_both_forms() {
        let c = parse(&args("app:x -b 127.0.0.1:9000 --bind=unix:/tmp/s --threads 4 --keep-alive=5"), &no_env).unwrap();
        assert_eq!(c.app.as_deref(), Some("app:x"));
        assert_eq!(c.binds.len(), 2);
        assert_eq!(c.threads, 4);
        assert_eq!(c.keep_alive, Duration::from_secs(5));
    }

    #[test]
    fn bad_values_name_the_flag() {
        let e = parse(&args("app --threads abc"), &no_env).unwrap_err().0;
        assert!(e.contains("--threads") && e.contains("abc"), "{e}");
        let e = parse(&args("app --bind nohost:99999"), &no_env).unwrap_err().0;
        assert!(e.contains("--bind") && e.contains("99999"), "{e}");
        let e = parse(&args("app --no-such-flag"), &no_env).unwrap_err().0;
        assert!(e.contains("--no-such-flag"), "{e}");
        let e = parse(&args("app --limit-request-line"), &no_env).unwrap_err().0;
        assert!(e.contains("expects"), "{e}");
    }

    #[test]
    fn the_command_line_wins_over_the_environment() {
        let env = |k: &str| match k {
            "WSGI_SERVER_THREADS" => Some("8".to_owned()),
            "WSGI_SERVER_BIND" => Some("127.0.0.1:1,127.0.0.1:2".to_owned()),
            "WSGI_SERVER_CMD_ARGS" => Some("--keep-alive 7 'my app:x'".to_owned()),
            _ => None,
        };
        let c = parse(&args("--threads 3"), &env).unwrap();
        assert_eq!(c.threads, 3);
        assert_eq!(c.binds.len(), 2);
        assert_eq!(c.keep_alive, Duration::from_secs(7));
        assert_eq!(c.app.as_deref(), Some("my app:x"));
        let bad = |k: &str| (k == "WSGI_SERVER_THREADS").then(|| "x".to_owned());
        let e = parse(&[], &bad).unwrap_err().0;
        assert!(e.contains("WSGI_SERVER_THREADS"), "{e}");
    }

    #[test]
    fn config_files_are_read_and_overridden() {
        let dir = std::env::temp_dir().join(format!("wsgi-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "# comment\nworkers = 3\nbind = [\"127.0.0.1:1\", 'unix:/tmp/x.sock']\nthreads = 2 # trailing\npreload_app = true\n",
        )
        .unwrap();
        let p = path.to_string_lossy().into_owned();
        let c = parse(&args(&format!("app -c {p} --threads 5")), &no_env).unwrap();
        assert_eq!((c.workers, c.threads, c.binds.len(), c.preload), (3, 5, 2, true));
        let env = |k: &str| (k == "WSGI_SERVER_WORKERS").then(|| "7".to_owned());
        assert_eq!(parse(&args(&format!("app --config={p}")), &env).unwrap().workers, 7);
        std::fs::write(&path, "wokers = 3\n").unwrap();
        let e = parse(&args(&format!("app -c {p}")), &no_env).unwrap_err().0;
        assert!(e.contains("wokers") && e.contains("line 1"), "{e}");
        std::fs::write(&path, "[server]\nworkers = 1\n").unwrap();
        assert!(parse(&args(&format!("app -c {p}")), &no_env).unwrap_err().0.contains("tables"));
        let e = parse(&args("app -c /nonexistent/file.toml"), &no_env).unwrap_err().0;
        assert!(e.contains("/nonexistent/file.toml"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn relative_static_dirs_are_relative_to_chdir_then_to_the_start_directory() {
        let base = Path::new("/srv/start");
        let mut c = parse(&args("--static-map /s=static --static-map /a=/abs/dir app:app"), &no_env).unwrap();
        c.resolve_paths(base);
        assert_eq!(c.static_map[0].1, Path::new("/srv/start/static"));
        assert_eq!(c.static_map[1].1, Path::new("/abs/dir"));
        for (chdir, want) in [("proj", "/srv/start/proj/static"), ("/srv/proj", "/srv/proj/static")] {
            let mut c = parse(&args(&format!("--chdir {chdir} --static-map /s=static app:app")), &no_env).unwrap();
            c.resolve_paths(base);
            assert_eq!(c.static_map[0].1, Path::new(want));
            assert_eq!(c.chdir.as_deref(), Some(Path::new(chdir)), "--chdir itself is kept as given");
        }
    }

    #[test]
    fn every_setting_has_a_unique_name_and_flags() {
        let mut seen = std::collections::HashSet::new();
        for s in SETTINGS {
            assert!(seen.insert(s.name), "{}", s.name);
            for f in s.flags {
                assert!(seen.insert(f), "{f}");
                assert!(f.starts_with('-'));
            }
            assert!(!s.help.is_empty());
        }
    }

    #[test]
    fn the_docs_reference_is_generated_from_the_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/settings.md");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == reference_markdown(),
            "docs/settings.md is stale: run `cargo run -p wsgi-server --example gen-settings-doc`"
        );
    }
}
