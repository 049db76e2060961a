//! The environ: everything the server tells the application about a request (ENV-*).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST};
use http::{HeaderMap, HeaderValue, Method, Version};

use crate::ext::{ConnectionInfo, Extensions, FileWrapper, InputTerminated, ScriptName};
use crate::{Errors, Input};

/// `wsgi.url_scheme` (ENV-18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Scheme {
    /// `http`
    #[default]
    Http,
    /// `https`
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port a URL of this scheme uses when it names none.
    #[must_use]
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// What a server says about itself in every environ.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// `SERVER_SOFTWARE`, e.g. `"wsgi-server/0.1.0"`.
    pub software: Cow<'static, str>,
    /// `wsgi.multithread`: the app may run on several threads at once (ENV-21).
    pub multithread: bool,
    /// `wsgi.multiprocess`: several processes run the app at once (ENV-22).
    pub multiprocess: bool,
    /// `wsgi.run_once` (ENV-23).
    pub run_once: bool,
    /// Where `wsgi.errors` goes (ERR-6).
    pub errors: Errors,
    /// The server sends file bodies from the file itself (adds [`FileWrapper`]).
    pub file_wrapper: bool,
    /// Deployer variables added to every environ (ENV-25).
    pub vars: BTreeMap<String, String>,
}

impl Default for ServerInfo {
    fn default() -> ServerInfo {
        ServerInfo {
            software: Cow::Borrowed(concat!("wsgi-spec/", env!("CARGO_PKG_VERSION"))),
            multithread: false,
            multiprocess: false,
            run_once: false,
            errors: Errors::stderr(),
            file_wrapper: false,
            vars: BTreeMap::new(),
        }
    }
}

/// PEP 3333's `environ`: the request as the application sees it.
///
/// The required keys are typed fields; request headers stay an
/// [`http::HeaderMap`] whose values are bytes, never decoded (UNI-3); other
/// string variables live in [`vars`](Environ::vars) and server capabilities in
/// [`extensions`](Environ::extensions). The application owns its environ and
/// may change it (ENV-1).
///
/// The [map view](Environ::get) gives the PEP 3333 keys a WSGI user expects:
///
/// ```
/// use wsgi_spec::{Environ, Input, ServerInfo};
/// let req = http::Request::post("/app/a%20b?x=1")
///     .header("Host", "example.com:8080")
///     .header("X-Foo", "one")
///     .header("X-Foo", "two")
///     .header("X_Foo", "spoofed")
///     .header("Content-Type", "text/plain")
///     .body(())
///     .unwrap();
/// let (parts, ()) = req.into_parts();
/// let env = Environ::from_request(parts, Input::empty(), &ServerInfo::default());
/// assert_eq!(env.get("PATH_INFO").unwrap(), &b"/app/a b"[..]);
/// assert_eq!(env.get("QUERY_STRING").unwrap(), &b"x=1"[..]);
/// assert_eq!(env.get("HTTP_X_FOO").unwrap(), &b"one, two"[..]);
/// assert_eq!(env.get("CONTENT_TYPE").unwrap(), &b"text/plain"[..]);
/// assert!(env.get("HTTP_CONTENT_TYPE").is_none());
/// assert_eq!(env.get("SERVER_NAME").unwrap(), &b"example.com"[..]);
/// assert_eq!(env.get("SERVER_PORT").unwrap(), &b"8080"[..]);
/// ```
#[non_exhaustive]
pub struct Environ {
    /// `REQUEST_METHOD` (ENV-2).
    pub method: Method,
    /// `SCRIPT_NAME`: where the app is mounted, percent-decoded bytes; empty
    /// at the root, never `/` (ENV-3, ENV-26).
    pub script_name: Bytes,
    /// `PATH_INFO`: the rest of the path, percent-decoded bytes (ENV-4).
    pub path_info: Bytes,
    /// `QUERY_STRING`, raw as received, without `?` (ENV-5).
    pub query_string: Bytes,
    /// `RAW_URI`: the request target as received.
    pub raw_uri: Bytes,
    /// `SERVER_NAME` (ENV-8).
    pub server_name: String,
    /// `SERVER_PORT` (ENV-8).
    pub server_port: u16,
    /// `SERVER_PROTOCOL` (ENV-9).
    pub protocol: Version,
    /// `wsgi.url_scheme` (ENV-18).
    pub url_scheme: Scheme,
    /// `REMOTE_ADDR`, when the transport has one.
    pub remote_addr: Option<IpAddr>,
    /// `REMOTE_PORT`, when the transport has one.
    pub remote_port: Option<u16>,
    /// The request headers: `HTTP_*`, `CONTENT_TYPE`, `CONTENT_LENGTH`
    /// (ENV-10, ENV-11). Names containing `_` are never present.
    pub headers: HeaderMap,
    /// `wsgi.input` (ENV-19).
    pub input: Input,
    /// `wsgi.errors` (ENV-20).
    pub errors: Errors,
    /// `wsgi.multithread` (ENV-21).
    pub multithread: bool,
    /// `wsgi.multiprocess` (ENV-22).
    pub multiprocess: bool,
    /// `wsgi.run_once` (ENV-23).
    pub run_once: bool,
    /// `SERVER_SOFTWARE` (ENV-12), unless [`vars`](Environ::vars) has one.
    pub server_software: Cow<'static, str>,
    /// Other string variables: deployer variables, variables added by
    /// middleware (ENV-12, ENV-25). A `SERVER_SOFTWARE` here wins over
    /// [`server_software`](Environ::server_software).
    pub vars: BTreeMap<String, String>,
    /// Typed server extensions: see [`crate::ext`] (ENV-24).
    pub extensions: Extensions,
}

/// The PEP 3333 keys the map view knows besides `HTTP_*` and [`Environ::vars`].
pub const CORE_CGI_KEYS: [&str; 12] = [
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "RAW_URI",
];

const SERVER_SOFTWARE: &str = "SERVER_SOFTWARE";

/// A string key the spec defines for every request: the CGI variables of
/// [`CORE_CGI_KEYS`] (in that order) and `wsgi.url_scheme`. An adapter that
/// caches per key indexes its table with [`CoreKey::index`] instead of
/// comparing strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CoreKey {
    /// `REQUEST_METHOD`
    RequestMethod,
    /// `SCRIPT_NAME`
    ScriptName,
    /// `PATH_INFO`
    PathInfo,
    /// `QUERY_STRING`
    QueryString,
    /// `CONTENT_TYPE`
    ContentType,
    /// `CONTENT_LENGTH`
    ContentLength,
    /// `SERVER_NAME`
    ServerName,
    /// `SERVER_PORT`
    ServerPort,
    /// `SERVER_PROTOCOL`
    ServerProtocol,
    /// `REMOTE_ADDR`
    RemoteAddr,
    /// `REMOTE_PORT`
    RemotePort,
    /// `RAW_URI`
    RawUri,
    /// `wsgi.url_scheme`
    UrlScheme,
}

impl CoreKey {
    /// Every core key, in [`index`](CoreKey::index) order: those of
    /// [`CORE_CGI_KEYS`], then `wsgi.url_scheme`.
    pub const ALL: [CoreKey; 13] = [
        CoreKey::RequestMethod,
        CoreKey::ScriptName,
        CoreKey::PathInfo,
        CoreKey::QueryString,
        CoreKey::ContentType,
        CoreKey::ContentLength,
        CoreKey::ServerName,
        CoreKey::ServerPort,
        CoreKey::ServerProtocol,
        CoreKey::RemoteAddr,
        CoreKey::RemotePort,
        CoreKey::RawUri,
        CoreKey::UrlScheme,
    ];

    /// The key's position in [`CoreKey::ALL`].
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The key as the environ spells it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            CoreKey::UrlScheme => "wsgi.url_scheme",
            k => CORE_CGI_KEYS[k as usize],
        }
    }

    /// The core key spelled `key`, if it is one.
    #[must_use]
    pub fn from_key(key: &str) -> Option<CoreKey> {
        Some(match key {
            "REQUEST_METHOD" => CoreKey::RequestMethod,
            "SCRIPT_NAME" => CoreKey::ScriptName,
            "PATH_INFO" => CoreKey::PathInfo,
            "QUERY_STRING" => CoreKey::QueryString,
            "CONTENT_TYPE" => CoreKey::ContentType,
            "CONTENT_LENGTH" => CoreKey::ContentLength,
            "SERVER_NAME" => CoreKey::ServerName,
            "SERVER_PORT" => CoreKey::ServerPort,
            "SERVER_PROTOCOL" => CoreKey::ServerProtocol,
            "REMOTE_ADDR" => CoreKey::RemoteAddr,
            "REMOTE_PORT" => CoreKey::RemotePort,
            "RAW_URI" => CoreKey::RawUri,
            "wsgi.url_scheme" => CoreKey::UrlScheme,
            _ => return None,
        })
    }
}

/// A core value before it is spelled: numbers and addresses are formatted
/// where they are used (into a stack buffer, or a string).
enum CoreValue<'a> {
    Bytes(Cow<'a, [u8]>),
    Port(u16),
    Addr(IpAddr),
}

impl CoreValue<'_> {
    fn into_cow<'a>(self) -> Cow<'a, [u8]>
    where
        Self: 'a,
    {
        match self {
            CoreValue::Bytes(b) => b,
            CoreValue::Port(p) => Cow::Owned(p.to_string().into_bytes()),
            CoreValue::Addr(a) => Cow::Owned(a.to_string().into_bytes()),
        }
    }
}

/// A fixed buffer `fmt::Write` fills: room for any IP address or port.
struct StackStr {
    buf: [u8; 48],
    len: usize,
}

impl StackStr {
    fn format(v: impl fmt::Display) -> StackStr {
        let mut s = StackStr { buf: [0; 48], len: 0 };
        // Cannot fail: an IPv6 address with an IPv4 tail is 45 bytes at most.
        let _ = fmt::Write::write_fmt(&mut s, format_args!("{v}"));
        s
    }

    /// A port in decimal, without the formatting machinery (every request
    /// spells two).
    fn port(p: u16) -> StackStr {
        let mut s = StackStr { buf: [0; 48], len: 0 };
        s.push_decimal(p);
        s
    }

    /// An address as `Display` spells it; IPv4 (the common case) directly.
    fn addr(a: IpAddr) -> StackStr {
        match a {
            IpAddr::V4(v4) => {
                let mut s = StackStr { buf: [0; 48], len: 0 };
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        s.buf[s.len] = b'.';
                        s.len += 1;
                    }
                    s.push_decimal(u16::from(octet));
                }
                s
            }
            IpAddr::V6(_) => StackStr::format(a),
        }
    }

    /// Append `n` in decimal (at most 5 digits; the buffer has room).
    fn push_decimal(&mut self, n: u16) {
        let mut digits = [0u8; 20];
        let tail = crate::driver::decimal(u64::from(n), &mut digits);
        self.buf[self.len..self.len + tail.len()].copy_from_slice(tail);
        self.len += tail.len();
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let Some(dst) = self.buf.get_mut(self.len..end) else {
            return Err(fmt::Error);
        };
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl Environ {
    /// Build the environ for a request, as SPEC.md's ENV rules say.
    ///
    /// `parts` carries the request line and headers; a [`ConnectionInfo`]
    /// and a [`ScriptName`] in its extensions are used when present (and all
    /// its extensions are kept). The path is percent-decoded and split into
    /// `SCRIPT_NAME` and `PATH_INFO`: the [`ScriptName`] is removed from the
    /// front of the full path when it matches there at a segment boundary
    /// (ENV-3); header fields whose name contains `_` are dropped (ENV-10);
    /// `SERVER_NAME`/`SERVER_PORT` come from the absolute-form target's
    /// authority, else `Host`, else the local address (ENV-8).
    #[must_use]
    pub fn from_request(parts: http::request::Parts, input: Input, server: &ServerInfo) -> Environ {
        Environ::build(parts, input, server, None)
    }

    /// As [`from_request`](Environ::from_request), with the connection
    /// given here rather than in the request's extensions: a server that
    /// knows it saves inserting it there, which costs a map allocation per
    /// request. It is in the environ's extensions all the same.
    #[inline]
    #[must_use]
    pub fn from_request_on(
        parts: http::request::Parts,
        input: Input,
        server: &ServerInfo,
        conn: ConnectionInfo,
    ) -> Environ {
        Environ::build(parts, input, server, Some(conn))
    }

    fn build(parts: http::request::Parts, input: Input, server: &ServerInfo, conn: Option<ConnectionInfo>) -> Environ {
        let http::request::Parts { method, uri, version, mut headers, extensions, .. } = parts;
        let mut extensions = Extensions::from(extensions);
        let conn = match conn {
            Some(conn) => {
                extensions.insert(conn);
                conn
            }
            None => extensions.get::<ConnectionInfo>().copied().unwrap_or_default(),
        };
        let script_name = extensions.remove::<ScriptName>().map(|s| s.0).unwrap_or_default();

        // Header names with '_' would collide with '-' names in HTTP_* keys.
        let underscored: Vec<HeaderName> = headers.keys().filter(|k| k.as_str().contains('_')).cloned().collect();
        for name in underscored {
            headers.remove(&name);
        }
        // An absolute-form target (or HTTP/2's `:authority`) names the host;
        // a `Host` field is then replaced by it (RFC 9112 3.2.2). Userinfo
        // is never part of the host.
        if let Some(auth) = uri.authority() {
            let host = auth.as_str().rsplit_once('@').map_or(auth.as_str(), |(_, host)| host);
            if let Ok(v) = HeaderValue::from_str(host) {
                headers.insert(HOST, v);
            }
        }

        // An absolute-form target is kept as sent; HTTP/2 has no request
        // line, so its RAW_URI is `:path` (hyper puts scheme and authority
        // into every HTTP/2 URI).
        let raw_uri = match uri.scheme() {
            Some(_) if version < Version::HTTP_2 => Bytes::from(uri.to_string()),
            // Shared, so PATH_INFO and QUERY_STRING slice it without
            // another allocation.
            _ => match uri.path_and_query() {
                Some(pq) => crate::driver::block_copy(pq.as_str().as_bytes()),
                None => Bytes::from_static(b"/"),
            },
        };
        let path = if method == Method::OPTIONS && uri.path() == "*" { "*" } else { uri.path() };
        // Without escapes the path is its own decoding: share RAW_URI's bytes.
        let mut path_info = if !path.as_bytes().contains(&b'%') && raw_uri.starts_with(path.as_bytes()) {
            raw_uri.slice(..path.len())
        } else {
            percent_decode(path.as_bytes())
        };
        let script_name = normalize_script_name(script_name);
        // Strip the mount point only at a segment boundary: `/app` is the
        // SCRIPT_NAME of `/app` and `/app/x`, never of `/apple` (ENV-3).
        if !script_name.is_empty()
            && path_info.starts_with(&script_name)
            && path_info.get(script_name.len()).is_none_or(|&b| b == b'/')
        {
            path_info = path_info.slice(script_name.len()..);
        }
        let query_string = match uri.query() {
            Some(q) if !q.is_empty() && raw_uri.ends_with(q.as_bytes()) => raw_uri.slice(raw_uri.len() - q.len()..),
            Some(q) => Bytes::copy_from_slice(q.as_bytes()),
            None => Bytes::new(),
        };

        let url_scheme = if conn.secure { Scheme::Https } else { Scheme::Http };
        let (server_name, server_port) = server_name_port(&headers, url_scheme, &conn);

        let vars = server.vars.clone();
        extensions.insert(InputTerminated);
        if server.file_wrapper {
            extensions.insert(FileWrapper);
        }

        Environ {
            method,
            script_name,
            path_info,
            query_string,
            raw_uri,
            server_name,
            server_port,
            protocol: version,
            url_scheme,
            remote_addr: conn.peer.map(|a| a.ip()),
            remote_port: conn.peer.map(|a| a.port()),
            headers,
            input,
            errors: server.errors.clone(),
            multithread: server.multithread,
            multiprocess: server.multiprocess,
            run_once: server.run_once,
            server_software: server.software.clone(),
            vars,
            extensions,
        }
    }

    /// `CONTENT_LENGTH` as a number, when the request had a valid one.
    #[must_use]
    pub fn content_length(&self) -> Option<u64> {
        self.headers.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
    }

    /// `CONTENT_TYPE`, when the request had one.
    #[must_use]
    pub fn content_type(&self) -> Option<&HeaderValue> {
        self.headers.get(CONTENT_TYPE)
    }

    /// `SERVER_PROTOCOL` as PEP 3333 writes it: `HTTP/1.0`, `HTTP/1.1`, `HTTP/2`.
    #[must_use]
    pub fn protocol_str(&self) -> &'static str {
        protocol_str(self.protocol)
    }

    /// The value of a PEP 3333 string key: `REQUEST_METHOD`, `HTTP_X_FOO`,
    /// `wsgi.url_scheme`, a variable of [`vars`](Environ::vars)... Values are
    /// bytes: the native string's latin-1 encoding (UNI-3). Repeated headers
    /// are joined with `", "` (`"; "` for `Cookie`); `CONTENT_TYPE` and
    /// `CONTENT_LENGTH` have no `HTTP_` form (ENV-11).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<Cow<'_, [u8]>> {
        if let Some(name) = key.strip_prefix("HTTP_") {
            // Keys are exactly those `cgi_vars` lists: upper case, `_` for `-`.
            if name == "CONTENT_TYPE"
                || name == "CONTENT_LENGTH"
                || name.contains('-')
                || name.bytes().any(|b| b.is_ascii_lowercase())
            {
                return None;
            }
            let header = name.to_ascii_lowercase().replace('_', "-");
            let name = HeaderName::from_bytes(header.as_bytes()).ok()?;
            return joined(&self.headers, &name);
        }
        match CoreKey::from_key(key) {
            Some(k) => self.core(k),
            None => match self.vars.get(key) {
                Some(v) => Some(latin1(v)),
                None if key == SERVER_SOFTWARE => Some(latin1(&self.server_software)),
                None => None,
            },
        }
    }

    /// The value of a core key (see [`Environ::get`]); `None` when the
    /// request has none (`CONTENT_TYPE`, `REMOTE_ADDR`...).
    #[must_use]
    pub fn core(&self, key: CoreKey) -> Option<Cow<'_, [u8]>> {
        self.core_value(key).map(CoreValue::into_cow)
    }

    fn core_value(&self, key: CoreKey) -> Option<CoreValue<'_>> {
        fn b(v: &[u8]) -> Option<CoreValue<'_>> {
            Some(CoreValue::Bytes(Cow::Borrowed(v)))
        }
        match key {
            CoreKey::RequestMethod => b(self.method.as_str().as_bytes()),
            CoreKey::ScriptName => b(&self.script_name),
            CoreKey::PathInfo => b(&self.path_info),
            CoreKey::QueryString => b(&self.query_string),
            CoreKey::ContentType => joined(&self.headers, &CONTENT_TYPE).map(CoreValue::Bytes),
            CoreKey::ContentLength => joined(&self.headers, &CONTENT_LENGTH).map(CoreValue::Bytes),
            CoreKey::ServerName => b(self.server_name.as_bytes()),
            CoreKey::ServerPort => Some(CoreValue::Port(self.server_port)),
            CoreKey::ServerProtocol => b(self.protocol_str().as_bytes()),
            CoreKey::RemoteAddr => self.remote_addr.map(CoreValue::Addr),
            CoreKey::RemotePort => self.remote_port.map(CoreValue::Port),
            CoreKey::RawUri => b(&self.raw_uri),
            CoreKey::UrlScheme => b(self.url_scheme.as_str().as_bytes()),
        }
    }

    /// All string keys and values of the map view, in a stable order: the
    /// core CGI keys, `HTTP_*` in header order, `wsgi.url_scheme`, then
    /// [`vars`](Environ::vars). Keys whose value is absent are left out (ENV-14).
    #[must_use]
    pub fn cgi_vars(&self) -> Vec<(Cow<'_, str>, Cow<'_, [u8]>)> {
        let mut out = Vec::with_capacity(CoreKey::ALL.len() + self.headers.keys_len() + self.vars.len() + 1);
        self.visit(|key, value| out.push((key.to_key(), value.into_cow())));
        out
    }

    /// Visit the map view without building its keys: what [`cgi_vars`]
    /// lists, in the same order, with each key as a [`CgiKey`] so an adapter
    /// can cache the strings it makes from them (per [`CoreKey::index`], per
    /// header name). Values are lent for the call only: numbers and
    /// addresses are spelled in a buffer on the stack.
    ///
    /// [`cgi_vars`]: Environ::cgi_vars
    pub fn for_each_cgi_var<'a>(&'a self, mut f: impl FnMut(CgiKey<'a>, &[u8])) {
        self.visit(|key, value| match value {
            CoreValue::Bytes(b) => f(key, &b),
            CoreValue::Port(p) => f(key, StackStr::port(p).as_bytes()),
            CoreValue::Addr(a) => f(key, StackStr::addr(a).as_bytes()),
        });
    }

    fn visit<'a>(&'a self, mut f: impl FnMut(CgiKey<'a>, CoreValue<'a>)) {
        for key in &CoreKey::ALL[..CORE_CGI_KEYS.len()] {
            if let Some(v) = self.core_value(*key) {
                f(CgiKey::Core(*key), v);
            }
        }
        for name in self.headers.keys() {
            if *name == CONTENT_TYPE || *name == CONTENT_LENGTH || name.as_str().contains('_') {
                continue;
            }
            if let Some(v) = joined(&self.headers, name) {
                f(CgiKey::Header(name), CoreValue::Bytes(v));
            }
        }
        f(CgiKey::Core(CoreKey::UrlScheme), CoreValue::Bytes(Cow::Borrowed(self.url_scheme.as_str().as_bytes())));
        // `SERVER_SOFTWARE` in its sorted place among the variables, unless
        // one of them is `SERVER_SOFTWARE`.
        let mut software = !self.vars.contains_key(SERVER_SOFTWARE);
        for (k, v) in &self.vars {
            if software && k.as_str() > SERVER_SOFTWARE {
                software = false;
                f(CgiKey::Var(SERVER_SOFTWARE), CoreValue::Bytes(latin1(&self.server_software)));
            }
            if CoreKey::from_key(k).is_none() && !k.starts_with("HTTP_") {
                f(CgiKey::Var(k.as_str()), CoreValue::Bytes(latin1(v)));
            }
        }
        if software {
            f(CgiKey::Var(SERVER_SOFTWARE), CoreValue::Bytes(latin1(&self.server_software)));
        }
    }
}

/// A key of the environ's map view, as [`Environ::for_each_cgi_var`] gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CgiKey<'a> {
    /// A PEP 3333 key the spec defines (`REQUEST_METHOD`, `wsgi.url_scheme`...).
    Core(CoreKey),
    /// `HTTP_` plus this header's name (see [`http_key`]).
    Header(&'a HeaderName),
    /// A variable of [`Environ::vars`].
    Var(&'a str),
}

impl<'a> CgiKey<'a> {
    /// The key as a string.
    #[must_use]
    pub fn to_key(self) -> Cow<'a, str> {
        match self {
            CgiKey::Core(k) => Cow::Borrowed(k.as_str()),
            CgiKey::Header(name) => Cow::Owned(http_key(name)),
            CgiKey::Var(k) => Cow::Borrowed(k),
        }
    }
}

/// A native string's bytes: its latin-1 encoding (UNI-3). A string with a
/// character above U+00FF breaks UNI-1 and has no latin-1 encoding; it is
/// passed on as UTF-8 (and [`Lint`](crate::lint::Lint) reports it).
fn latin1(s: &str) -> Cow<'_, [u8]> {
    if s.is_ascii() {
        return Cow::Borrowed(s.as_bytes());
    }
    match s.chars().map(|c| u8::try_from(u32::from(c))).collect() {
        Ok(bytes) => Cow::Owned(bytes),
        Err(_) => Cow::Borrowed(s.as_bytes()),
    }
}

/// `HTTP_` plus the header name upper-cased with `-` as `_`.
#[must_use]
pub fn http_key(name: &HeaderName) -> String {
    let mut key = String::with_capacity(5 + name.as_str().len());
    key.push_str("HTTP_");
    for c in name.as_str().chars() {
        key.push(if c == '-' { '_' } else { c.to_ascii_uppercase() });
    }
    key
}

/// `SERVER_PROTOCOL` for an HTTP version.
#[must_use]
pub fn protocol_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

fn joined<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<Cow<'a, [u8]>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(Cow::Borrowed(first.as_bytes()));
    };
    let sep: &[u8] = if name == COOKIE { b"; " } else { b", " };
    let mut out = Vec::with_capacity(first.len() + second.len() + 2);
    out.extend_from_slice(first.as_bytes());
    for v in std::iter::once(second).chain(values) {
        out.extend_from_slice(sep);
        out.extend_from_slice(v.as_bytes());
    }
    Some(Cow::Owned(out))
}

/// Percent-decode a path into bytes; malformed escapes stay as they are.
#[must_use]
pub fn percent_decode(input: &[u8]) -> Bytes {
    if !input.contains(&b'%') {
        return Bytes::copy_from_slice(input);
    }
    let hex = |b: u8| -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    };
    let mut out = BytesMut::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.extend_from_slice(&[h << 4 | l]);
                i += 3;
                continue;
            }
        }
        out.extend_from_slice(&input[i..=i]);
        i += 1;
    }
    out.freeze()
}

fn normalize_script_name(s: Bytes) -> Bytes {
    // SCRIPT_NAME is never "/" and never ends in "/" (ENV-26).
    let mut end = s.len();
    while end > 0 && s[end - 1] == b'/' {
        end -= 1;
    }
    s.slice(..end)
}

fn server_name_port(headers: &HeaderMap, scheme: Scheme, conn: &ConnectionInfo) -> (String, u16) {
    if let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) {
        let host = host.trim();
        if !host.is_empty() {
            let (name, port) = split_host_port(host);
            let port = match port {
                Some(p) if !p.is_empty() => p.parse().ok(),
                // `host` and `host:` both mean the scheme's default port.
                _ => Some(scheme.default_port()),
            };
            if let Some(port) = port {
                return (name.to_owned(), port);
            }
        }
    }
    match conn.local {
        // An IPv6 address keeps its brackets, as in a Host field, so that
        // SERVER_NAME + ":" + SERVER_PORT stays a valid authority.
        Some(std::net::SocketAddr::V6(addr)) => (format!("[{}]", addr.ip()), addr.port()),
        Some(addr) => (addr.ip().to_string(), addr.port()),
        None => ("localhost".to_owned(), scheme.default_port()),
    }
}

fn split_host_port(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        if let Some(end) = rest.find(']') {
            let name = &host[..end + 2];
            let port = rest[end + 1..].strip_prefix(':');
            return (name, port);
        }
        return (host, None);
    }
    match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    }
}

impl fmt::Debug for Environ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environ")
            .field("method", &self.method)
            .field("script_name", &self.script_name)
            .field("path_info", &self.path_info)
            .field("query_string", &self.query_string)
            .field("protocol", &self.protocol)
            .field("url_scheme", &self.url_scheme)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}
