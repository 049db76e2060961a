//! Access logs: Gunicorn's format language (`--access-logformat`) or JSON.
//!
//! Atoms, as Gunicorn: `h` remote address, `l` `-`, `u` user (from Basic
//! auth), `t` time `[22/Nov/2026:10:00:00 +0000]`, `r` request line, `m`
//! method, `U` path, `q` query, `H` protocol, `s` status, `B` body bytes,
//! `b` body bytes or `-`, `f` referer, `a` user agent, `T` seconds, `M`
//! milliseconds, `D` microseconds, `L` decimal seconds, `p` pid,
//! `{name}i` request header, `{name}o` response header, `{name}e`
//! environment variable.

use std::fmt::Write as _;
use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName};

use crate::Error;

/// Gunicorn's default `--access-logformat`.
pub const DEFAULT_FORMAT: &str = r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Atom(char),
    ReqHeader(HeaderName),
    RespHeader(HeaderName),
    Env(String),
}

/// How lines look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFormat {
    /// A Gunicorn format string, parsed.
    Gunicorn(Vec<PieceRef>),
    /// One JSON object a line.
    Json,
}

/// One parsed piece of a Gunicorn format (opaque).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceRef(Piece);

impl LogFormat {
    /// Parse a Gunicorn format string: `%(h)s`, `%({x-real-ip}i)s`...
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] naming an unknown atom or a broken `%(`.
    pub fn gunicorn(format: &str) -> Result<LogFormat, Error> {
        let bad = |what: String| Error::InvalidSetting(format!("access_logformat: {what}"));
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = format;
        while let Some(i) = rest.find("%(") {
            text.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let end = after.find(")s").ok_or_else(|| bad(format!("unterminated atom at {:?}", &rest[i..])))?;
            let atom = &after[..end];
            if !text.is_empty() {
                pieces.push(PieceRef(Piece::Text(std::mem::take(&mut text))));
            }
            pieces.push(PieceRef(parse_atom(atom).ok_or_else(|| bad(format!("unknown atom %({atom})s")))?));
            rest = &after[end + 2..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(PieceRef(Piece::Text(text)));
        }
        Ok(LogFormat::Gunicorn(pieces))
    }

    /// The request headers lines need (to copy before the app gets them).
    pub(crate) fn request_headers(&self) -> Vec<HeaderName> {
        let mut out = vec![http::header::REFERER, http::header::USER_AGENT, http::header::AUTHORIZATION];
        if let LogFormat::Gunicorn(p) = self {
            out.extend(p.iter().filter_map(|p| match &p.0 {
                Piece::ReqHeader(h) => Some(h.clone()),
                _ => None,
            }));
        }
        out
    }

    /// The response headers lines need.
    pub(crate) fn response_headers(&self) -> Vec<HeaderName> {
        match self {
            LogFormat::Gunicorn(p) => p
                .iter()
                .filter_map(|p| match &p.0 {
                    Piece::RespHeader(h) => Some(h.clone()),
                    _ => None,
                })
                .collect(),
            LogFormat::Json => Vec::new(),
        }
    }
}

fn parse_atom(atom: &str) -> Option<Piece> {
    if let Some(inner) = atom.strip_prefix('{') {
        let (name, kind) = inner.rsplit_once('}')?;
        return match kind {
            "i" => HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok().map(Piece::ReqHeader),
            "o" => HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok().map(Piece::RespHeader),
            "e" => Some(Piece::Env(name.to_owned())),
            _ => None,
        };
    }
    let mut chars = atom.chars();
    let c = chars.next()?;
    if chars.next().is_some() || !"hlutrmUqHsBbfaTMDLp".contains(c) {
        return None;
    }
    Some(Piece::Atom(c))
}

/// What one request left for the access log.
#[derive(Debug, Default)]
pub(crate) struct Record {
    pub(crate) remote: Option<IpAddr>,
    pub(crate) method: String,
    pub(crate) raw_uri: Vec<u8>,
    pub(crate) path: Vec<u8>,
    pub(crate) query: Vec<u8>,
    pub(crate) protocol: &'static str,
    pub(crate) request_headers: HeaderMap,
    pub(crate) status: Option<u16>,
    pub(crate) response_headers: HeaderMap,
    pub(crate) bytes: u64,
    pub(crate) start: Option<SystemTime>,
    /// When the request was taken on, for `duration`.
    pub(crate) started: Option<std::time::Instant>,
    pub(crate) duration: Duration,
}

/// The access log: a format and where lines go.
#[derive(Clone)]
pub struct AccessLog {
    format: Arc<LogFormat>,
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").field("format", &self.format).finish_non_exhaustive()
    }
}

impl AccessLog {
    /// Lines in `format`, written to `out` (one `write_all` a line).
    pub fn new(format: LogFormat, out: impl Write + Send + 'static) -> AccessLog {
        AccessLog { format: Arc::new(format), out: Arc::new(Mutex::new(Box::new(out))) }
    }

    /// Send lines to a new writer from now on (log rotation).
    pub fn reopen(&self, out: impl Write + Send + 'static) {
        *self.out.lock().unwrap_or_else(PoisonError::into_inner) = Box::new(out);
    }

    pub(crate) fn format(&self) -> &LogFormat {
        &self.format
    }

    pub(crate) fn write(&self, rec: &Record) {
        let mut line = match &*self.format {
            LogFormat::Gunicorn(p) => gunicorn_line(p, rec),
            LogFormat::Json => json_line(rec),
        };
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        if out.write_all(line.as_bytes()).and_then(|()| out.flush()).is_err() {
            tracing::warn!(target: "wsgi_server::access", "cannot write the access log");
        }
    }
}

/// Bytes as latin-1 text, with `"`, `\` and control bytes escaped as Gunicorn does.
fn push_escaped(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

fn header<'a>(h: &'a HeaderMap, name: &HeaderName) -> Option<&'a [u8]> {
    h.get(name).map(http::HeaderValue::as_bytes)
}

fn user(rec: &Record) -> Option<String> {
    let auth = header(&rec.request_headers, &http::header::AUTHORIZATION)?;
    let b64 = auth.strip_prefix(b"Basic ").or_else(|| auth.strip_prefix(b"basic "))?;
    let decoded = base64_decode(b64)?;
    let user = decoded.split(|&b| b == b':').next()?;
    Some(String::from_utf8_lossy(user).into_owned())
}

fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let input: Vec<u8> = input.iter().copied().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    for chunk in input.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let n = chunk.len().saturating_sub(1);
        for i in 0..n {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// `[22/Nov/2026:10:00:00 +0000]` (UTC).
fn clf_time(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d, hh, mm, ss) = civil(secs);
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!("[{d:02}/{}/{y}:{hh:02}:{mm:02}:{ss:02} +0000]", MONTHS[(m - 1) as usize])
}

/// The current time as RFC 3339 UTC with milliseconds (for log lines).
#[must_use]
pub fn now_iso() -> String {
    iso_time(SystemTime::now())
}

/// RFC 3339 UTC time with milliseconds.
fn iso_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (y, m, day, hh, mm, ss) = civil(d.as_secs());
    format!("{y:04}-{m:02}-{day:02}T{hh:02}:{mm:02}:{ss:02}.{:03}Z", d.subsec_millis())
}

/// Days since the epoch to a civil date (Howard Hinnant's algorithm).
fn civil(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

fn gunicorn_line(pieces: &[PieceRef], rec: &Record) -> String {
    let mut out = String::with_capacity(160);
    for p in pieces {
        match &p.0 {
            Piece::Text(t) => out.push_str(t),
            Piece::ReqHeader(h) => push_escaped(&mut out, header(&rec.request_headers, h).unwrap_or(b"-")),
            Piece::RespHeader(h) => push_escaped(&mut out, header(&rec.response_headers, h).unwrap_or(b"-")),
            Piece::Env(name) => out.push_str(&std::env::var(name).unwrap_or_else(|_| "-".into())),
            Piece::Atom(c) => match c {
                'h' => out.push_str(&rec.remote.map_or_else(|| "-".into(), |a| a.to_string())),
                'l' => out.push('-'),
                'u' => out.push_str(&user(rec).unwrap_or_else(|| "-".into())),
                't' => out.push_str(&clf_time(rec.start.unwrap_or_else(SystemTime::now))),
                'r' => {
                    out.push_str(&rec.method);
                    out.push(' ');
                    push_escaped(&mut out, &rec.raw_uri);
                    out.push(' ');
                    out.push_str(rec.protocol);
                }
                'm' => out.push_str(&rec.method),
                'U' => push_escaped(&mut out, &rec.path),
                'q' => push_escaped(&mut out, &rec.query),
                'H' => out.push_str(rec.protocol),
                's' => out.push_str(&rec.status.map_or_else(|| "-".into(), |s| s.to_string())),
                'B' => {
                    let _ = write!(out, "{}", rec.bytes);
                }
                'b' => {
                    if rec.bytes == 0 {
                        out.push('-');
                    } else {
                        let _ = write!(out, "{}", rec.bytes);
                    }
                }
                'f' => push_escaped(&mut out, header(&rec.request_headers, &http::header::REFERER).unwrap_or(b"-")),
                'a' => push_escaped(&mut out, header(&rec.request_headers, &http::header::USER_AGENT).unwrap_or(b"-")),
                'T' => {
                    let _ = write!(out, "{}", rec.duration.as_secs());
                }
                'M' => {
                    let _ = write!(out, "{}", rec.duration.as_millis());
                }
                'D' => {
                    let _ = write!(out, "{}", rec.duration.as_micros());
                }
                'L' => {
                    let _ = write!(out, "{:.6}", rec.duration.as_secs_f64());
                }
                'p' => {
                    let _ = write!(out, "<{}>", std::process::id());
                }
                _ => out.push('-'),
            },
        }
    }
    out
}

/// A JSON string from bytes read as latin-1, every control byte escaped.
fn json_str(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\u{:04x}", b);
            }
        }
    }
    out.push('"');
}

fn json_line(rec: &Record) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"time\":");
    json_str(&mut out, iso_time(rec.start.unwrap_or_else(SystemTime::now)).as_bytes());
    out.push_str(",\"remote_addr\":");
    match rec.remote {
        Some(a) => json_str(&mut out, a.to_string().as_bytes()),
        None => out.push_str("null"),
    }
    out.push_str(",\"method\":");
    json_str(&mut out, rec.method.as_bytes());
    out.push_str(",\"uri\":");
    json_str(&mut out, &rec.raw_uri);
    out.push_str(",\"path\":");
    json_str(&mut out, &rec.path);
    out.push_str(",\"query\":");
    json_str(&mut out, &rec.query);
    out.push_str(",\"protocol\":");
    json_str(&mut out, rec.protocol.as_bytes());
    out.push_str(",\"status\":");
    match rec.status {
        Some(s) => {
            let _ = write!(out, "{s}");
        }
        None => out.push_str("null"),
    }
    let _ = write!(out, ",\"bytes\":{},\"duration_ms\":{:.3}", rec.bytes, rec.duration.as_secs_f64() * 1000.0);
    for (key, name) in [("referer", http::header::REFERER), ("user_agent", http::header::USER_AGENT)] {
        let _ = write!(out, ",\"{key}\":");
        match header(&rec.request_headers, &name) {
            Some(v) => json_str(&mut out, v),
            None => out.push_str("null"),
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record() -> Record {
        let mut h = HeaderMap::new();
        h.insert("referer", "http://ref/\"x\"".parse().unwrap());
        h.insert("user-agent", http::HeaderValue::from_bytes(b"ua\xe9").unwrap());
        h.insert("x-real-ip", "9.9.9.9".parse().unwrap());
        h.insert("authorization", "Basic YWxpY2U6c2VjcmV0".parse().unwrap());
        let mut resp = HeaderMap::new();
        resp.insert("content-type", "text/plain".parse().unwrap());
        Record {
            remote: Some("10.0.0.1".parse().unwrap()),
            method: "GET".into(),
            raw_uri: b"/a?b=1".to_vec(),
            path: b"/a".to_vec(),
            query: b"b=1".to_vec(),
            protocol: "HTTP/1.1",
            request_headers: h,
            status: Some(200),
            response_headers: resp,
            bytes: 14,
            start: Some(UNIX_EPOCH + Duration::from_secs(1_795_000_000)),
            started: None,
            duration: Duration::from_micros(1500),
        }
    }

    #[test]
    fn the_default_format_matches_gunicorn() {
        let f = LogFormat::gunicorn(DEFAULT_FORMAT).unwrap();
        let line = match &f {
            LogFormat::Gunicorn(p) => gunicorn_line(p, &record()),
            LogFormat::Json => unreachable!(),
        };
        assert_eq!(
            line,
            r#"10.0.0.1 - alice [18/Nov/2026:11:06:40 +0000] "GET /a?b=1 HTTP/1.1" 200 14 "http://ref/\"x\"" "ua\xe9""#
        );
    }

    #[test]
    fn every_atom_renders() {
        let f = LogFormat::gunicorn("%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|%(B)s|%(T)s|%(M)s|%(D)s|%(L)s|%({x-real-ip}i)s|%({content-type}o)s|%({missing}i)s").unwrap();
        let LogFormat::Gunicorn(p) = &f else { unreachable!() };
        assert_eq!(gunicorn_line(p, &record()), "GET|/a|b=1|HTTP/1.1|200|14|0|1|1500|0.001500|9.9.9.9|text/plain|-");
    }

    #[test]
    fn unknown_atoms_are_refused_by_name() {
        let e = LogFormat::gunicorn("%(h)s %(zz)s").unwrap_err();
        assert!(e.to_string().contains("%(zz)s"), "{e}");
        assert!(LogFormat::gunicorn("%(h").is_err());
    }

    #[test]
    fn json_lines_escape_everything() {
        let mut r = record();
        r.raw_uri = b"/\"quote\"\n\x01".to_vec();
        let line = json_line(&r);
        assert!(line.contains(r#""uri":"/\"quote\"\n\u0001""#), "{line}");
        assert!(line.contains(r#""user_agent":"ua\u00e9""#), "{line}");
        assert!(line.starts_with(r#"{"time":"2026-11-18T11:06:40.000Z""#), "{line}");
    }
}
