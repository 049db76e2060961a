//! A small `tracing` subscriber for the command line: one line an event,
//! Gunicorn's shape (`[time] [pid] [LEVEL] message`), to stderr or a file,
//! with a level filter. Libraries embedding the server install their own.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Where error-log lines go.
pub type LogTarget = Arc<Mutex<Box<dyn Write + Send>>>;

/// The subscriber.
pub struct ErrorLog {
    max: Level,
    out: LogTarget,
}

impl std::fmt::Debug for ErrorLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrorLog").field("max", &self.max).finish_non_exhaustive()
    }
}

impl ErrorLog {
    /// Log events at `max` and above (`max = INFO` shows INFO, WARN, ERROR).
    #[must_use]
    pub fn new(max: Level, out: LogTarget) -> ErrorLog {
        ErrorLog { max, out }
    }
}

/// Parse a Gunicorn log level: debug, info, warning, error, critical.
///
/// # Errors
/// The accepted names, when `s` is none of them.
pub fn parse_level(s: &str) -> Result<Level, String> {
    match s.to_ascii_lowercase().as_str() {
        "debug" => Ok(Level::DEBUG),
        "info" => Ok(Level::INFO),
        "warning" | "warn" => Ok(Level::WARN),
        "error" | "critical" => Ok(Level::ERROR),
        _ => Err("expected debug, info, warning, error or critical".to_owned()),
    }
}

struct Message<'a>(&'a mut String);

impl Visit for Message<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl Subscriber for ErrorLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }
    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _span: &Id, _values: &Record<'_>) {}
    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let level = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            Level::DEBUG => "DEBUG",
            Level::TRACE => "TRACE",
        };
        let mut line = format!("[{}] [{}] [{level}] ", crate::accesslog::now_iso(), std::process::id());
        event.record(&mut Message(&mut line));
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }
    fn enter(&self, _span: &Id) {}
    fn exit(&self, _span: &Id) {}
}
