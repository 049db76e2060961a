//! `Static`: serve the files of a directory under a URL prefix, like
//! WhiteNoise or uWSGI's `--static-map`.
//!
//! A `GET` or `HEAD` for `PREFIX/some/file.css` is answered from
//! `ROOT/some/file.css`:
//! - `Content-Type` from a built-in table of extensions (add more with
//!   [`StaticLayer::mime_type`]), text types with `charset=utf-8`;
//! - `ETag` (from the size and modification time) and `Last-Modified`, with
//!   `304 Not Modified` for a matching `If-None-Match` or, without one, an
//!   `If-Modified-Since` not older than the file;
//! - a single byte range (`Range: bytes=0-99`, `bytes=100-`, `bytes=-100`)
//!   as `206 Partial Content` with `Content-Range`, `416` with
//!   `Content-Range: bytes */SIZE` when it lies past the end; multiple ranges
//!   and malformed ones get the whole file (200), as does a stale `If-Range`;
//! - precompressed siblings `file.css.br` and `file.css.gz`, chosen by the
//!   request's `Accept-Encoding` q-values (brotli on ties) and sent with
//!   `Content-Encoding`; every file that has such a sibling is sent with
//!   `Vary: Accept-Encoding`. Range requests get the identity file;
//! - `Cache-Control: public, max-age=31536000, immutable` for names with a
//!   content hash as Django's `ManifestStaticFilesStorage` makes them
//!   (`app.0123456789ab.css`: a segment of 12 hex digits), else
//!   `public, max-age=60` ([`StaticLayer::max_age`]);
//! - the body is a [`Body::file`], so the server may `sendfile(2)` it.
//!   (Put `Static` outside `Compression` when both are
//!   used: a compressible file passing through `Compression` is compressed
//!   on the fly and is no longer sent as a file.)
//!
//! Other methods get `405` with `Allow: GET, HEAD`. Requests outside the
//! prefix go to the wrapped application; a missing file (or a directory)
//! under the prefix is a `404`, or goes to the application with
//! [`StaticLayer::fallthrough`].
//!
//! # No escape from the directory
//! `PATH_INFO` is already percent-decoded once (SPEC.md ENV-4) and is never
//! decoded again. Any path with a segment that is empty (`//`, a leading `/`
//! after the prefix, a trailing `/`), starts with `.` (`.`, `..`, `...`,
//! hidden files), ends with `.` or a space (Windows trailing-dot tricks), or
//! holds `%`, `\`, `:`, NUL or another control character, or that is not
//! UTF-8 (overlong encodings such as `%c0%ae`), is refused with a 404 —
//! never passed to the application, even with fallthrough. A path that
//! passes is joined to the root, resolved with `canonicalize` (following
//! symlinks) and served only if the result is still inside the canonical
//! root; a symlink pointing outside is a 404. (A directory swapped for a
//! symlink between that check and the `open` could still be followed: keep
//! the tree writable only by its deployer.)
//!
//! ```
//! use tower_layer::Layer;
//! use wsgi_middleware::StaticLayer;
//! use wsgi_spec::{testing::TestClient, AppError, Body, Environ, StartResponse};
//!
//! let root = std::env::temp_dir().join(format!("wsgi-static-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&root).unwrap();
//! std::fs::write(root.join("app.0123456789ab.css"), "body { color: red }").unwrap();
//!
//! fn app(_env: Environ, sr: StartResponse) -> Result<Body, AppError> {
//!     sr.start(http::StatusCode::OK, http::HeaderMap::new())?;
//!     Ok(Body::full("the app"))
//! }
//! let client = TestClient::new(StaticLayer::new("/static", &root)?.layer(app));
//! let resp = client.get("/static/app.0123456789ab.css");
//! assert_eq!(resp.status, http::StatusCode::OK);
//! assert_eq!(resp.body, "body { color: red }");
//! assert_eq!(resp.headers["content-type"], "text/css; charset=utf-8");
//! assert_eq!(resp.headers["cache-control"], "public, max-age=31536000, immutable");
//!
//! assert_eq!(client.get("/static/../etc/passwd").status, http::StatusCode::NOT_FOUND);
//! assert_eq!(client.get("/elsewhere").body, "the app");
//! # std::fs::remove_dir_all(&root).unwrap();
//! # Ok::<(), wsgi_middleware::Error>(())
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{
    ACCEPT_RANGES, ALLOW, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, RANGE, VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use wsgi_spec::{AppError, Application, Body, Environ, FileBody, StartResponse};

use crate::util::{accept_encoding, choose_encoding, normalize_prefix, strip_path_prefix, text_response};
use crate::Error;

/// The `Cache-Control` of a content-hashed name.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The longest path (after the prefix) looked up.
const MAX_PATH: usize = 1024;

/// Configuration for [`Static`]: the URL prefix, the directory and options.
#[derive(Debug, Clone)]
pub struct StaticLayer {
    prefix: String,
    root: PathBuf,
    fallthrough: bool,
    max_age: u64,
    precompressed: bool,
    mime: Arc<Vec<(String, HeaderValue)>>,
}

impl StaticLayer {
    /// Serve the directory `root` under the URL path `prefix` (`/static`;
    /// `/` serves it at the root).
    ///
    /// # Errors
    /// [`Error::InvalidPrefix`] when `prefix` does not start with `/`;
    /// [`Error::InvalidRoot`] when `root` cannot be resolved or is not a
    /// directory.
    ///
    /// # Blocking
    /// Resolves `root` on the file system.
    pub fn new(prefix: &str, root: impl AsRef<Path>) -> Result<StaticLayer, Error> {
        let prefix = normalize_prefix(prefix, true)?;
        let given = root.as_ref();
        let invalid = |source| Error::InvalidRoot { path: given.to_owned(), source };
        let root = std::fs::canonicalize(given).map_err(invalid)?;
        if !std::fs::metadata(&root).map_err(invalid)?.is_dir() {
            return Err(invalid(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a directory")));
        }
        Ok(StaticLayer { prefix, root, fallthrough: false, max_age: 60, precompressed: true, mime: Arc::default() })
    }

    /// Pass requests for missing files under the prefix to the application
    /// instead of answering 404 (refused paths are still 404).
    #[must_use]
    pub fn fallthrough(mut self, fallthrough: bool) -> StaticLayer {
        self.fallthrough = fallthrough;
        self
    }

    /// `max-age` for files without a content hash in their name (default 60 s).
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> StaticLayer {
        self.max_age = max_age.as_secs();
        self
    }

    /// Look for `.br` / `.gz` siblings (default on).
    #[must_use]
    pub fn precompressed(mut self, precompressed: bool) -> StaticLayer {
        self.precompressed = precompressed;
        self
    }

    /// Send files ending in `.ext` with `content_type` (overrides the table).
    #[must_use]
    pub fn mime_type(mut self, ext: &str, content_type: HeaderValue) -> StaticLayer {
        let ext = ext.trim_start_matches('.').to_ascii_lowercase();
        Arc::make_mut(&mut self.mime).insert(0, (ext, content_type));
        self
    }

    /// The URL prefix, without a trailing `/` (empty at the root).
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The canonical directory files are served from.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl<A> tower_layer::Layer<A> for StaticLayer {
    type Service = Static<A>;

    fn layer(&self, inner: A) -> Static<A> {
        Static::new(inner, self.clone())
    }
}

/// Serves files under a prefix and passes other requests to `A`; see the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct Static<A> {
    inner: A,
    config: StaticLayer,
}

impl<A> Static<A> {
    /// Wrap `inner` with the configuration `config`.
    pub fn new(inner: A, config: StaticLayer) -> Static<A> {
        Static { inner, config }
    }

    /// The wrapped application.
    #[must_use]
    pub fn get_ref(&self) -> &A {
        &self.inner
    }

    /// The wrapped application, mutably.
    pub fn get_mut(&mut self) -> &mut A {
        &mut self.inner
    }

    /// Unwrap the application.
    pub fn into_inner(self) -> A {
        self.inner
    }
}

/// A file found under the root.
struct Found {
    file: File,
    len: u64,
    mtime: SystemTime,
}

enum Lookup {
    /// The path may not be served, whatever exists.
    Refused,
    /// Nothing servable there.
    Missing,
    /// The file (and the request path's last segment).
    Found(Found, String),
}

impl StaticLayer {
    /// Resolve the path after the prefix (`""` or `/...`).
    fn lookup(&self, rest: &[u8]) -> Lookup {
        let Some(rel) = rest.strip_prefix(b"/") else { return Lookup::Missing };
        if rel.is_empty() {
            return Lookup::Missing; // the directory itself
        }
        let Some(segments) = safe_segments(rel) else { return Lookup::Refused };
        let mut path = self.root.clone();
        path.extend(&segments);
        let name = segments.last().map_or_else(String::new, |s| (*s).to_owned());
        match self.open(&path) {
            Ok(Some(found)) => Lookup::Found(found, name),
            Ok(None) => Lookup::Missing,
            Err(()) => Lookup::Refused,
        }
    }

    /// Open `path` if it resolves to a regular file inside the root;
    /// `Err` when it resolves outside.
    fn open(&self, path: &Path) -> Result<Option<Found>, ()> {
        let Ok(real) = std::fs::canonicalize(path) else { return Ok(None) };
        if !real.starts_with(&self.root) {
            return Err(());
        }
        let Ok(file) = File::open(&real) else { return Ok(None) };
        let Ok(meta) = file.metadata() else { return Ok(None) };
        if !meta.is_file() {
            return Ok(None);
        }
        let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
        Ok(Some(Found { file, len: meta.len(), mtime }))
    }

    fn content_type(&self, name: &str) -> HeaderValue {
        let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
        if let Some((_, v)) = self.mime.iter().find(|(e, _)| *e == ext) {
            return v.clone();
        }
        HeaderValue::from_static(builtin_type(&ext))
    }
}

/// The segments of a relative path, when every one is safe to join.
fn safe_segments(rel: &[u8]) -> Option<Vec<&str>> {
    if rel.len() > MAX_PATH {
        return None;
    }
    let rel = std::str::from_utf8(rel).ok()?;
    let mut out = Vec::new();
    for seg in rel.split('/') {
        let bad_char = |c: char| c.is_control() || matches!(c, '\\' | '%' | ':' | '\0');
        if seg.is_empty() || seg.starts_with('.') || seg.ends_with(['.', ' ']) || seg.contains(bad_char) {
            return None;
        }
        out.push(seg);
    }
    Some(out)
}

fn builtin_type(ext: &str) -> &'static str {
    match ext {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" | "cjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "txt" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "bmp" => "image/bmp",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "eot" => "application/vnd.ms-fontobject",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "ogg" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "br" => "application/x-brotli",
        "tar" => "application/x-tar",
        _ => "application/octet-stream",
    }
}

/// A name with a 12-hex-digit segment between dots: `app.0123456789ab.css`.
fn is_hashed(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() >= 3
        && parts[1..parts.len() - 1].iter().any(|p| p.len() == 12 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl<A: Application> Application for Static<A> {
    fn call(&self, environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
        let Some(rest) = strip_path_prefix(&environ.path_info, self.config.prefix.as_bytes()) else {
            return self.inner.call(environ, start_response);
        };
        let (found, name) = match self.config.lookup(rest) {
            Lookup::Found(found, name) => (found, name),
            Lookup::Missing if self.config.fallthrough => return self.inner.call(environ, start_response),
            Lookup::Missing | Lookup::Refused => {
                return text_response(&start_response, StatusCode::NOT_FOUND, HeaderMap::new(), "Not Found\n", None)
            }
        };
        if environ.method != Method::GET && environ.method != Method::HEAD {
            let mut headers = HeaderMap::new();
            headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return text_response(
                &start_response,
                StatusCode::METHOD_NOT_ALLOWED,
                headers,
                "Method Not Allowed\n",
                None,
            );
        }
        self.serve(&environ, &start_response, found, &name, rest)
    }
}

impl<A> Static<A> {
    fn serve(
        &self,
        environ: &Environ,
        start_response: &StartResponse,
        identity: Found,
        name: &str,
        rest: &[u8],
    ) -> Result<Body, AppError> {
        let req = &environ.headers;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, self.config.content_type(name));
        let cache = if is_hashed(name) {
            HeaderValue::from_static(IMMUTABLE)
        } else {
            HeaderValue::try_from(format!("public, max-age={}", self.config.max_age))?
        };
        headers.insert(CACHE_CONTROL, cache);

        // Precompressed siblings: which exist, and which one the client takes.
        let mut file = identity;
        let mut coding = None;
        if self.config.precompressed {
            let mut siblings = Vec::new();
            for (coding, ext) in [("br", "br"), ("gzip", "gz")] {
                let rel = [rest, b".", ext.as_bytes()].concat();
                if let Lookup::Found(found, _) = self.config.lookup(&rel) {
                    siblings.push((coding, found));
                }
            }
            if !siblings.is_empty() {
                headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
                let codings: Vec<&str> = siblings.iter().map(|(c, _)| *c).collect();
                let chosen = match accept_encoding(req) {
                    Some(accepted) if !req.contains_key(RANGE) => choose_encoding(&accepted, &codings),
                    _ => None,
                };
                if let Some(pos) = siblings.iter().position(|(c, _)| Some(*c) == chosen) {
                    let (c, found) = siblings.swap_remove(pos);
                    file = found;
                    coding = Some(c);
                }
            }
        }
        let mtime_secs = file.mtime.duration_since(UNIX_EPOCH).unwrap_or_default();
        let etag = format!(
            "\"{:x}-{:x}-{:x}{}\"",
            file.len,
            mtime_secs.as_secs(),
            mtime_secs.subsec_nanos(),
            coding.map_or("", |c| if c == "br" { "-br" } else { "-gz" })
        );
        headers.insert(ETAG, HeaderValue::try_from(etag.as_str())?);
        headers.insert(LAST_MODIFIED, HeaderValue::try_from(http_date(mtime_secs.as_secs()))?);
        if let Some(c) = coding {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static(c));
        }

        if not_modified(req, &etag, mtime_secs.as_secs()) {
            headers.remove(CONTENT_TYPE);
            start_response.start(StatusCode::NOT_MODIFIED, headers)?;
            return Ok(Body::empty());
        }

        headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        let range = match req.get(RANGE) {
            Some(r) if coding.is_none() && if_range_holds(req, &etag, mtime_secs.as_secs()) => {
                parse_range(r.as_bytes(), file.len)
            }
            _ => RangeSpec::Whole,
        };
        match range {
            RangeSpec::Whole => {
                headers.insert(CONTENT_LENGTH, HeaderValue::from(file.len));
                start_response.start(StatusCode::OK, headers)?;
                Ok(Body::file(FileBody::with_range(file.file, 0, file.len)))
            }
            RangeSpec::Part(start, end) => {
                let len = end - start + 1;
                headers.insert(CONTENT_RANGE, HeaderValue::try_from(format!("bytes {start}-{end}/{}", file.len))?);
                headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
                start_response.start(StatusCode::PARTIAL_CONTENT, headers)?;
                Ok(Body::file(FileBody::with_range(file.file, start, len)))
            }
            RangeSpec::Unsatisfiable => {
                let mut h = HeaderMap::new();
                h.insert(CONTENT_RANGE, HeaderValue::try_from(format!("bytes */{}", file.len))?);
                text_response(start_response, StatusCode::RANGE_NOT_SATISFIABLE, h, "Range Not Satisfiable\n", None)
            }
        }
    }
}

/// `If-None-Match` (weak comparison) or, without it, `If-Modified-Since`.
fn not_modified(req: &HeaderMap, etag: &str, mtime: u64) -> bool {
    if req.contains_key(IF_NONE_MATCH) {
        return req.get_all(IF_NONE_MATCH).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
            })
        });
    }
    let since = req.get(IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok()).and_then(parse_http_date);
    since.is_some_and(|since| mtime <= since)
}

/// `If-Range`: the range applies only if the validator still matches
/// (a strong ETag, or exactly the modification date).
fn if_range_holds(req: &HeaderMap, etag: &str, mtime: u64) -> bool {
    let Some(v) = req.get(IF_RANGE) else { return true };
    let Ok(v) = v.to_str() else { return false };
    let v = v.trim();
    if v.starts_with('"') || v.starts_with("W/") {
        return v == etag;
    }
    parse_http_date(v) == Some(mtime)
}

#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    /// No usable range: send everything.
    Whole,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// Past the end: 416.
    Unsatisfiable,
}

/// A single `bytes=` range; anything else (multiple ranges, other units,
/// malformed) is ignored.
fn parse_range(v: &[u8], size: u64) -> RangeSpec {
    let Ok(v) = std::str::from_utf8(v) else { return RangeSpec::Whole };
    let Some((unit, spec)) = v.trim().split_once('=') else { return RangeSpec::Whole };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeSpec::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return RangeSpec::Whole };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        return match num(last) {
            None => RangeSpec::Whole,
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if size == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Part(size.saturating_sub(n), size - 1),
        };
    }
    let Some(start) = num(first) else { return RangeSpec::Whole };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match num(last) {
            Some(end) if end >= start => end,
            _ => return RangeSpec::Whole,
        }
    };
    if start >= size {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Part(start, end.min(size - 1))
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let weekday = DAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let month = MONTHS[usize::try_from(m - 1).unwrap_or(0)];
    format!("{weekday}, {d:02} {month} {y} {:02}:{:02}:{:02} GMT", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// An HTTP date in any of the three formats of RFC 9110 5.6.7, as seconds
/// since the epoch.
fn parse_http_date(s: &str) -> Option<u64> {
    let s = s.trim();
    let fields: Vec<&str> = s.split_ascii_whitespace().collect();
    let (day, month, year, time) = match fields.as_slice() {
        // Sun, 06 Nov 1994 08:49:37 GMT
        [_, d, mon, y, t, "GMT"] => (*d, *mon, *y, *t),
        // Sunday, 06-Nov-94 08:49:37 GMT
        [_, dmy, t, "GMT"] => {
            let mut it = dmy.split('-');
            let (d, mon, y) = (it.next()?, it.next()?, it.next()?);
            let y: i64 = y.parse().ok()?;
            let y = if y < 70 { 2000 + y } else { 1900 + y };
            return finish_date(d, mon, &y.to_string(), t);
        }
        // Sun Nov  6 08:49:37 1994
        [_, mon, d, t, y] => (*d, *mon, *y, *t),
        _ => return None,
    };
    finish_date(day, month, year, time)
}

fn finish_date(day: &str, month: &str, year: &str, time: &str) -> Option<u64> {
    let d: u32 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let m = u32::try_from(MONTHS.iter().position(|&x| x == month)? + 1).ok()?;
    let y: i64 = year.parse().ok().filter(|y| (1970..=9999).contains(y))?;
    let mut t = time.split(':');
    let (h, mi, sec): (u64, u64, u64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    if t.next().is_some() || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = u64::try_from(days_from_civil(y, m, d)).ok()?;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http::Request;
    use tower_layer::Layer;
    use wsgi_spec::testing::{TestClient, TestResponse};
    use wsgi_spec::{Input, ServerInfo};

    use super::*;

    /// A temporary tree: `base/root` is served, `base/outside` is not.
    struct Tree {
        base: PathBuf,
    }

    impl Tree {
        fn new(name: &str) -> Tree {
            static N: AtomicUsize = AtomicUsize::new(0);
            let base = std::env::temp_dir().join(format!(
                "wsgi-mw-static-{}-{}-{name}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = std::fs::remove_dir_all(&base);
            std::fs::create_dir_all(base.join("root/css")).unwrap();
            std::fs::create_dir_all(base.join("root/sub")).unwrap();
            std::fs::create_dir_all(base.join("outside")).unwrap();
            std::fs::write(base.join("outside/secret.txt"), "SECRET").unwrap();
            std::fs::write(base.join("root/hello.txt"), "hello world").unwrap();
            std::fs::write(base.join("root/css/app.css"), "body{}").unwrap();
            std::fs::write(base.join("root/css/app.css.gz"), "GZ-BYTES").unwrap();
            std::fs::write(base.join("root/css/app.css.br"), "BR-BYTES").unwrap();
            std::fs::write(base.join("root/css/site.0123456789ab.css"), "hashed").unwrap();
            std::fs::write(base.join("root/.env"), "PASSWORD=1").unwrap();
            std::fs::write(base.join("root/sub/data.json"), "{}").unwrap();
            std::fs::write(base.join("root/empty.txt"), "").unwrap();
            std::fs::write(base.join("root/x.unknownext"), "?").unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::symlink;
                symlink(base.join("outside/secret.txt"), base.join("root/link.txt")).unwrap();
                symlink(base.join("outside"), base.join("root/outdir")).unwrap();
                symlink(base.join("root/hello.txt"), base.join("root/inner-link.txt")).unwrap();
            }
            Tree { base }
        }

        fn root(&self) -> PathBuf {
            self.base.join("root")
        }

        fn client(&self, config: impl FnOnce(StaticLayer) -> StaticLayer) -> TestClient {
            let layer = config(StaticLayer::new("/static", self.root()).unwrap());
            TestClient::new(layer.layer(app))
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }

    fn app(env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        sr.start(StatusCode::IM_A_TEAPOT, HeaderMap::new())?;
        Ok(Body::full(format!("app {}", String::from_utf8_lossy(&env.path_info))))
    }

    fn get(client: &TestClient, uri: &str, headers: &[(&str, &str)]) -> TestResponse {
        let mut req = Request::get(uri).body(Bytes::new()).unwrap();
        for (k, v) in headers {
            req.headers_mut()
                .append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        client.request(req)
    }

    /// A GET whose PATH_INFO is exactly `path` (bytes no URI could carry).
    fn get_raw(client: &TestClient, path: &[u8]) -> TestResponse {
        let (parts, ()) = Request::get("/").body(()).unwrap().into_parts();
        let mut env = Environ::from_request(parts, Input::empty(), &ServerInfo::default());
        env.path_info = Bytes::copy_from_slice(path);
        client.call(env)
    }

    #[test]
    fn serves_a_file_with_validators_as_a_file_body() {
        let tree = Tree::new("basic");
        let c = tree.client(|l| l);
        let resp = get(&c, "/static/hello.txt", &[]);
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(resp.body, "hello world");
        assert_eq!(resp.headers["content-type"], "text/plain; charset=utf-8");
        assert_eq!(resp.headers["content-length"], "11");
        assert_eq!(resp.headers["cache-control"], "public, max-age=60");
        assert_eq!(resp.headers["accept-ranges"], "bytes");
        assert!(resp.headers["etag"].to_str().unwrap().starts_with("\"b-"));
        assert!(resp.headers["last-modified"].to_str().unwrap().ends_with(" GMT"));
        assert!(!resp.headers.contains_key("vary"));
        assert_eq!(get(&c, "/static/sub/data.json", &[]).headers["content-type"], "application/json");
        assert_eq!(get(&c, "/static/x.unknownext", &[]).headers["content-type"], "application/octet-stream");
        assert_eq!(get(&c, "/static/empty.txt", &[]).headers["content-length"], "0");
        assert_eq!(get(&c, "/static/inner-link.txt", &[]).body, "hello world");
    }

    #[test]
    fn the_body_is_a_file_body() {
        let tree = Tree::new("filebody");
        let layer = StaticLayer::new("/static", tree.root()).unwrap();
        let (parts, ()) = Request::get("/static/hello.txt").body(()).unwrap().into_parts();
        let env = Environ::from_request(parts, Input::empty(), &ServerInfo::default());
        let sr = StartResponse::from_fn(|_, _, _| Ok(wsgi_spec::Write::from_fn(|_| Ok(()))));
        let body = layer.layer(app).call(env, sr).unwrap();
        assert!(body.is_file());
        assert_eq!(body.len_hint(), Some(11));
    }

    #[test]
    fn hashed_names_are_immutable_and_max_age_is_configurable() {
        let tree = Tree::new("hashed");
        let c = tree.client(|l| l.max_age(Duration::from_secs(5)));
        assert_eq!(get(&c, "/static/css/site.0123456789ab.css", &[]).headers["cache-control"], IMMUTABLE);
        assert_eq!(get(&c, "/static/hello.txt", &[]).headers["cache-control"], "public, max-age=5");
        assert!(is_hashed("a.0123456789ab.css"));
        assert!(is_hashed("a.b.ABCDEF012345.min.js"));
        assert!(!is_hashed("0123456789ab.css"));
        assert!(!is_hashed("a.0123456789a.css"));
        assert!(!is_hashed("a.0123456789abc.css"));
        assert!(!is_hashed("a.0123456789ag.css"));
    }

    #[test]
    fn outside_the_prefix_goes_to_the_app_and_missing_is_404_or_fallthrough() {
        let tree = Tree::new("fallthrough");
        let c = tree.client(|l| l);
        assert_eq!(get(&c, "/other", &[]).body, "app /other");
        assert_eq!(get(&c, "/staticfoo/hello.txt", &[]).body, "app /staticfoo/hello.txt");
        assert_eq!(get(&c, "/static/nope.txt", &[]).status, StatusCode::NOT_FOUND);
        assert_eq!(get(&c, "/static", &[]).status, StatusCode::NOT_FOUND);
        assert_eq!(get(&c, "/static/sub", &[]).status, StatusCode::NOT_FOUND);
        let c = tree.client(|l| l.fallthrough(true));
        assert_eq!(get(&c, "/static/nope.txt", &[]).body, "app /static/nope.txt");
        assert_eq!(get(&c, "/static/sub", &[]).status, StatusCode::IM_A_TEAPOT);
        // Refused paths are never passed on.
        assert_eq!(get(&c, "/static/../x", &[]).status, StatusCode::NOT_FOUND);
        assert_eq!(get(&c, "/static/hello.txt", &[]).body, "hello world");
    }

    #[test]
    fn served_at_the_root() {
        let tree = Tree::new("rootprefix");
        let c = TestClient::new(StaticLayer::new("/", tree.root()).unwrap().layer(app));
        assert_eq!(get(&c, "/hello.txt", &[]).body, "hello world");
        assert_eq!(get(&c, "/", &[]).status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn only_get_and_head() {
        let tree = Tree::new("methods");
        let c = tree.client(|l| l);
        let resp = c.request(Request::post("/static/hello.txt").body(Bytes::new()).unwrap());
        assert_eq!(resp.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers["allow"], "GET, HEAD");
        let resp = c.request(Request::delete("/static/hello.txt").body(Bytes::new()).unwrap());
        assert_eq!(resp.status, StatusCode::METHOD_NOT_ALLOWED);
        let resp = c.request(Request::head("/static/hello.txt").body(Bytes::new()).unwrap());
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(resp.headers["content-length"], "11");
        assert!(resp.body.is_empty());
    }

    #[test]
    fn conditional_requests() {
        let tree = Tree::new("conditional");
        let c = tree.client(|l| l);
        let first = get(&c, "/static/hello.txt", &[]);
        let etag = first.headers["etag"].to_str().unwrap().to_owned();
        let lm = first.headers["last-modified"].to_str().unwrap().to_owned();

        let resp = get(&c, "/static/hello.txt", &[("if-none-match", &etag)]);
        assert_eq!(resp.status, StatusCode::NOT_MODIFIED);
        assert!(resp.body.is_empty());
        assert_eq!(resp.headers["etag"], etag.as_str());
        assert!(resp.headers.contains_key("cache-control"));
        let weak_list = format!("\"other\", W/{etag}");
        assert_eq!(get(&c, "/static/hello.txt", &[("if-none-match", &weak_list)]).status, StatusCode::NOT_MODIFIED);
        assert_eq!(get(&c, "/static/hello.txt", &[("if-none-match", "*")]).status, StatusCode::NOT_MODIFIED);
        assert_eq!(get(&c, "/static/hello.txt", &[("if-none-match", "\"nope\"")]).status, StatusCode::OK);

        assert_eq!(get(&c, "/static/hello.txt", &[("if-modified-since", &lm)]).status, StatusCode::NOT_MODIFIED);
        let future = "Fri, 01 Jan 2999 00:00:00 GMT";
        assert_eq!(get(&c, "/static/hello.txt", &[("if-modified-since", future)]).status, StatusCode::NOT_MODIFIED);
        let past = "Thu, 01 Jan 1970 00:00:00 GMT";
        assert_eq!(get(&c, "/static/hello.txt", &[("if-modified-since", past)]).status, StatusCode::OK);
        assert_eq!(get(&c, "/static/hello.txt", &[("if-modified-since", "garbage")]).status, StatusCode::OK);
        // If-None-Match wins over If-Modified-Since.
        let both = [("if-none-match", "\"nope\""), ("if-modified-since", lm.as_str())];
        assert_eq!(get(&c, "/static/hello.txt", &both).status, StatusCode::OK);
    }

    #[test]
    fn ranges() {
        let tree = Tree::new("ranges");
        let c = tree.client(|l| l);
        let resp = get(&c, "/static/hello.txt", &[("range", "bytes=0-4")]);
        assert_eq!(resp.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(resp.body, "hello");
        assert_eq!(resp.headers["content-range"], "bytes 0-4/11");
        assert_eq!(resp.headers["content-length"], "5");
        assert_eq!(get(&c, "/static/hello.txt", &[("range", "bytes=6-")]).body, "world");
        assert_eq!(get(&c, "/static/hello.txt", &[("range", "bytes=-5")]).body, "world");
        assert_eq!(get(&c, "/static/hello.txt", &[("range", "bytes=-50")]).body, "hello world");
        assert_eq!(get(&c, "/static/hello.txt", &[("range", "bytes=6-100")]).headers["content-range"], "bytes 6-10/11");

        let resp = get(&c, "/static/hello.txt", &[("range", "bytes=11-")]);
        assert_eq!(resp.status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(resp.headers["content-range"], "bytes */11");
        assert_eq!(get(&c, "/static/hello.txt", &[("range", "bytes=-0")]).status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(get(&c, "/static/empty.txt", &[("range", "bytes=0-")]).status, StatusCode::RANGE_NOT_SATISFIABLE);

        for ignored in [
            "bytes=0-1,3-4",
            "bytes=5-2",
            "items=0-1",
            "bytes=a-b",
            "bytes 0-1",
            "bytes=--1",
            "bytes=99999999999999999999-",
        ] {
            let resp = get(&c, "/static/hello.txt", &[("range", ignored)]);
            assert_eq!(resp.status, StatusCode::OK, "{ignored}");
            assert_eq!(resp.body, "hello world", "{ignored}");
        }

        let etag = get(&c, "/static/hello.txt", &[]).headers["etag"].to_str().unwrap().to_owned();
        let resp = get(&c, "/static/hello.txt", &[("range", "bytes=0-4"), ("if-range", &etag)]);
        assert_eq!(resp.status, StatusCode::PARTIAL_CONTENT);
        let resp = get(&c, "/static/hello.txt", &[("range", "bytes=0-4"), ("if-range", "\"stale\"")]);
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(resp.body, "hello world");
        let resp =
            get(&c, "/static/hello.txt", &[("range", "bytes=0-4"), ("if-range", "Thu, 01 Jan 1970 00:00:00 GMT")]);
        assert_eq!(resp.status, StatusCode::OK);
    }

    #[test]
    fn precompressed_siblings_by_accept_encoding() {
        let tree = Tree::new("precompressed");
        let c = tree.client(|l| l);
        let resp = get(&c, "/static/css/app.css", &[("accept-encoding", "gzip, br")]);
        assert_eq!(resp.body, "BR-BYTES");
        assert_eq!(resp.headers["content-encoding"], "br");
        assert_eq!(resp.headers["content-type"], "text/css; charset=utf-8");
        assert_eq!(resp.headers["vary"], "Accept-Encoding");
        assert!(resp.headers["etag"].to_str().unwrap().ends_with("-br\""));

        let resp = get(&c, "/static/css/app.css", &[("accept-encoding", "gzip;q=1, br;q=0.5")]);
        assert_eq!(resp.body, "GZ-BYTES");
        assert_eq!(resp.headers["content-encoding"], "gzip");

        let resp = get(&c, "/static/css/app.css", &[]);
        assert_eq!(resp.body, "body{}");
        assert!(!resp.headers.contains_key("content-encoding"));
        assert_eq!(resp.headers["vary"], "Accept-Encoding");

        for none in ["identity", "br;q=0, gzip;q=0", "gzip;q=bad"] {
            let resp = get(&c, "/static/css/app.css", &[("accept-encoding", none)]);
            assert_eq!(resp.body, "body{}", "{none}");
        }
        // A range gets the identity file.
        let resp = get(&c, "/static/css/app.css", &[("accept-encoding", "br"), ("range", "bytes=0-3")]);
        assert_eq!(resp.body, "body");
        assert!(!resp.headers.contains_key("content-encoding"));
        // Each variant has its own ETag for 304s.
        let br = get(&c, "/static/css/app.css", &[("accept-encoding", "br")]);
        let etag = br.headers["etag"].to_str().unwrap();
        let resp = get(&c, "/static/css/app.css", &[("accept-encoding", "br"), ("if-none-match", etag)]);
        assert_eq!(resp.status, StatusCode::NOT_MODIFIED);
        assert_eq!(resp.headers["content-encoding"], "br");
        assert_eq!(get(&c, "/static/css/app.css", &[("if-none-match", etag)]).status, StatusCode::OK);

        let c = tree.client(|l| l.precompressed(false));
        let resp = get(&c, "/static/css/app.css", &[("accept-encoding", "br")]);
        assert_eq!(resp.body, "body{}");
        assert!(!resp.headers.contains_key("vary"));
    }

    #[test]
    fn custom_mime_types() {
        let tree = Tree::new("mime");
        let c = tree.client(|l| l.mime_type(".unknownext", HeaderValue::from_static("text/x-custom")));
        assert_eq!(get(&c, "/static/x.unknownext", &[]).headers["content-type"], "text/x-custom");
    }

    /// Every trick must end in a 404 (or 400), never a file outside the root
    /// and never the app.
    #[test]
    fn path_traversal_is_refused() {
        let tree = Tree::new("traversal");
        let c = tree.client(|l| l.fallthrough(true));
        let uris = [
            "/static/../outside/secret.txt",
            "/static/../../etc/passwd",
            "/static/..%2foutside%2fsecret.txt",
            "/static/..%2Foutside/secret.txt",
            "/static/%2e%2e/outside/secret.txt",
            "/static/%2E%2E/outside/secret.txt",
            "/static/%252e%252e/outside/secret.txt",
            "/static/%252e%252e%252foutside%252fsecret.txt",
            "/static/....//outside/secret.txt",
            "/static/.../outside/secret.txt",
            "/static/..%5coutside%5csecret.txt",
            "/static/..%5c..%5cetc%5cpasswd",
            "/static/%c0%ae%c0%ae/outside/secret.txt",
            "/static/%c0%ae%c0%ae%c0%afoutside%c0%afsecret.txt",
            "/static/%e0%80%ae%e0%80%ae/outside/secret.txt",
            "/static/hello.txt%00.png",
            "/static/%00",
            "/static//etc/passwd",
            "/static/%2fetc%2fpasswd",
            "/static/sub/../../outside/secret.txt",
            "/static/./hello.txt",
            "/static/sub/./data.json",
            "/static/hello.txt.",
            "/static/hello.txt%20",
            "/static/hello.txt::$DATA",
            "/static/C:%5cWindows%5cwin.ini",
            "/static/.env",
            "/static/link.txt",
            "/static/outdir/secret.txt",
            "/static/sub/",
            "/static/%2e/hello.txt",
            "/static/%0d%0aSet-Cookie:x",
        ];
        for uri in uris {
            let resp = get(&c, uri, &[]);
            assert!(
                resp.status == StatusCode::NOT_FOUND || resp.status == StatusCode::BAD_REQUEST,
                "{uri}: {} {:?}",
                resp.status,
                resp.body
            );
            assert!(!resp.body.windows(6).any(|w| w == b"SECRET"), "{uri}");
        }
        let absolute = tree.base.join("outside/secret.txt");
        let raw: Vec<Vec<u8>> = vec![
            [b"/static/".as_slice(), absolute.to_string_lossy().as_bytes()].concat(),
            b"/static/\\\\server\\share\\secret.txt".to_vec(),
            b"/static/..\\outside\\secret.txt".to_vec(),
            b"/static/hello.txt\0".to_vec(),
            b"/static/\xc0\xae\xc0\xae/outside/secret.txt".to_vec(),
            b"/static/\xff".to_vec(),
            b"/static/..".to_vec(),
            b"/static/sub/..".to_vec(),
            b"/static/a/../hello.txt".to_vec(),
            [b"/static/".as_slice(), &b"a/".repeat(600)].concat(),
        ];
        for path in raw {
            let resp = get_raw(&c, &path);
            assert_eq!(resp.status, StatusCode::NOT_FOUND, "{:?}", String::from_utf8_lossy(&path));
        }
    }

    #[test]
    fn bad_configuration() {
        let tree = Tree::new("config");
        assert!(matches!(StaticLayer::new("static", tree.root()), Err(Error::InvalidPrefix(_))));
        assert!(matches!(StaticLayer::new("/s", tree.base.join("missing")), Err(Error::InvalidRoot { .. })));
        assert!(matches!(StaticLayer::new("/s", tree.root().join("hello.txt")), Err(Error::InvalidRoot { .. })));
        let layer = StaticLayer::new("/s/", tree.root()).unwrap();
        assert_eq!(layer.prefix(), "/s");
        assert!(layer.root().is_absolute());
    }

    #[test]
    fn http_dates_round_trip() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(784_111_777));
        for t in [0u64, 1, 86_399, 951_782_400, 4_102_444_800, 1_700_000_000] {
            assert_eq!(parse_http_date(&http_date(t)), Some(t));
        }
        for bad in
            ["", "Sun, 32 Nov 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:00:00 GMT"]
        {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn range_parsing() {
        assert_eq!(parse_range(b"bytes=0-0", 10), RangeSpec::Part(0, 0));
        assert_eq!(parse_range(b"bytes=9-", 10), RangeSpec::Part(9, 9));
        assert_eq!(parse_range(b"bytes=10-", 10), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range(b"BYTES=0-1", 10), RangeSpec::Part(0, 1));
        assert_eq!(parse_range(b"bytes=-", 10), RangeSpec::Whole);
        assert_eq!(parse_range(b"bytes=", 10), RangeSpec::Whole);
        assert_eq!(parse_range(b"bytes=1-2-3", 10), RangeSpec::Whole);
    }
}
