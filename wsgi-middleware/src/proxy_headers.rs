//! `ProxyHeaders`: the client's address, scheme and host from the headers
//! of trusted reverse proxies, like Werkzeug's `ProxyFix`.
//!
//! Behind a proxy, `REMOTE_ADDR` is the proxy and `wsgi.url_scheme` is what
//! the proxy used to reach us. Proxies tell the truth in `X-Forwarded-For`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Forwarded-Port` or in RFC
//! 7239's `Forwarded`; anyone else can forge them. So this middleware
//! believes them only when the peer (`REMOTE_ADDR`) is in the trusted list
//! (addresses and CIDR networks; default `127.0.0.1` and `::1`), and then
//! only as far as the hop counts say: with `x_for(n)`, `n` proxies each
//! appended to `X-Forwarded-For`, so the client is the `n`-th value from the
//! right (earlier values may be forged by the client and are ignored). A
//! header with fewer values than its count is ignored. Defaults follow
//! `ProxyFix`: `x_for = 1`, `x_proto = 1`, `x_host = 0`, `x_port = 0`, and
//! `forwarded = 0` (off); 0 means "never use this header".
//!
//! What is changed, when a value is present and valid:
//! - for: `REMOTE_ADDR` (and `REMOTE_PORT` when the value has a port, else
//!   none);
//! - proto (`http` or `https` only): `wsgi.url_scheme`;
//! - host: the `Host` request header (`HTTP_HOST`), `SERVER_NAME` and
//!   `SERVER_PORT` (the host's port, else the scheme's default);
//! - port: `SERVER_PORT`, and the port of `HTTP_HOST`.
//!
//! With `forwarded(n)` and a `Forwarded` field, its `n`-th element from the
//! right gives `for`, `proto` and `host`, and the `X-Forwarded-*` fields are
//! not used. Malformed values are ignored one by one, never an error. The
//! values from before the change are kept as a [`ProxyOrigin`] in
//! [`Environ::extensions`].
//!
//! A request without a peer address (a Unix socket) is trusted only when
//! the list holds `*`.
//!
//! ```
//! use tower_layer::Layer;
//! use wsgi_middleware::ProxyHeadersLayer;
//! use wsgi_spec::{testing::TestClient, AppError, Body, Environ, StartResponse};
//!
//! fn app(env: Environ, sr: StartResponse) -> Result<Body, AppError> {
//!     sr.start(http::StatusCode::OK, http::HeaderMap::new())?;
//!     Ok(Body::full(format!("{:?} {}", env.remote_addr, env.url_scheme.as_str())))
//! }
//! // The test client's peer is 127.0.0.1: trusted by default.
//! let client = TestClient::new(ProxyHeadersLayer::new().layer(app));
//! let req = http::Request::get("/")
//!     .header("x-forwarded-for", "6.6.6.6, 203.0.113.7") // 6.6.6.6 is the client's own claim
//!     .header("x-forwarded-proto", "https")
//!     .body(bytes::Bytes::new())
//!     .unwrap();
//! assert_eq!(client.request(req).body, "Some(203.0.113.7) https");
//!
//! // From an untrusted peer the same headers change nothing.
//! let client = TestClient::new(ProxyHeadersLayer::new().trust("10.0.0.0/8")?.layer(app));
//! let req = http::Request::get("/").header("x-forwarded-for", "203.0.113.7").body(bytes::Bytes::new()).unwrap();
//! assert_eq!(client.request(req).body, "Some(127.0.0.1) http");
//! # Ok::<(), wsgi_middleware::Error>(())
//! ```

use std::net::{IpAddr, SocketAddr};

use http::header::HOST;
use http::{HeaderMap, HeaderValue};
use wsgi_spec::{AppError, Application, Body, Environ, Scheme, StartResponse};

use crate::Error;

/// The environ's values from before [`ProxyHeaders`] changed them, put into
/// [`Environ::extensions`] when it changed something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyOrigin {
    /// `REMOTE_ADDR` as the server saw it: the proxy.
    pub remote_addr: Option<IpAddr>,
    /// `REMOTE_PORT` as the server saw it.
    pub remote_port: Option<u16>,
    /// `wsgi.url_scheme` as the server saw it.
    pub url_scheme: Scheme,
    /// The `Host` request header as received.
    pub host: Option<HeaderValue>,
    /// `SERVER_NAME` as the server saw it.
    pub server_name: String,
    /// `SERVER_PORT` as the server saw it.
    pub server_port: u16,
}

/// Configuration for [`ProxyHeaders`]: which peers are trusted and how many
/// proxies set each header.
#[derive(Debug, Clone)]
pub struct ProxyHeadersLayer {
    any: bool,
    nets: Vec<(IpAddr, u8)>,
    x_for: usize,
    x_proto: usize,
    x_host: usize,
    x_port: usize,
    forwarded: usize,
}

impl ProxyHeadersLayer {
    /// Trust `127.0.0.1` and `::1`; `x_for = 1`, `x_proto = 1`, the rest off.
    #[must_use]
    pub fn new() -> ProxyHeadersLayer {
        ProxyHeadersLayer {
            any: false,
            nets: vec![(IpAddr::from([127, 0, 0, 1]), 32), (IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]), 128)],
            x_for: 1,
            x_proto: 1,
            x_host: 0,
            x_port: 0,
            forwarded: 0,
        }
    }

    /// Trust these peers instead: a comma-separated list of addresses and
    /// CIDR networks (`10.0.0.0/8, 2001:db8::/32, 192.0.2.1`), or `*` for
    /// any peer. An empty list trusts nobody.
    ///
    /// # Errors
    /// [`Error::InvalidNetwork`] for an item that is neither.
    pub fn trust(mut self, list: &str) -> Result<ProxyHeadersLayer, Error> {
        self.any = false;
        self.nets.clear();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if item == "*" {
                self.any = true;
                continue;
            }
            let bad = || Error::InvalidNetwork(item.to_owned());
            let (addr, prefix) = match item.split_once('/') {
                Some((a, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                    (a, Some(p.parse::<u8>().map_err(|_| bad())?))
                }
                Some(_) => return Err(bad()),
                None => (item, None),
            };
            let addr: IpAddr = addr.parse().map_err(|_| bad())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = prefix.unwrap_or(max);
            if prefix > max {
                return Err(bad());
            }
            self.nets.push((addr, prefix));
        }
        Ok(self)
    }

    /// How many proxies append to `X-Forwarded-For` (0: ignore it).
    #[must_use]
    pub fn x_for(mut self, hops: usize) -> ProxyHeadersLayer {
        self.x_for = hops;
        self
    }

    /// How many proxies set `X-Forwarded-Proto` (0: ignore it).
    #[must_use]
    pub fn x_proto(mut self, hops: usize) -> ProxyHeadersLayer {
        self.x_proto = hops;
        self
    }

    /// How many proxies set `X-Forwarded-Host` (0: ignore it, the default).
    #[must_use]
    pub fn x_host(mut self, hops: usize) -> ProxyHeadersLayer {
        self.x_host = hops;
        self
    }

    /// How many proxies set `X-Forwarded-Port` (0: ignore it, the default).
    #[must_use]
    pub fn x_port(mut self, hops: usize) -> ProxyHeadersLayer {
        self.x_port = hops;
        self
    }

    /// How many proxies append to RFC 7239 `Forwarded` (0: ignore it, the
    /// default). When used and present, `X-Forwarded-*` are not.
    #[must_use]
    pub fn forwarded(mut self, hops: usize) -> ProxyHeadersLayer {
        self.forwarded = hops;
        self
    }

    /// True when forwarding headers from `peer` are believed.
    #[must_use]
    pub fn is_trusted(&self, peer: Option<IpAddr>) -> bool {
        let Some(ip) = peer else { return self.any };
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.any || self.nets.iter().any(|&(net, prefix)| in_net(ip, net, prefix))
    }
}

impl Default for ProxyHeadersLayer {
    fn default() -> ProxyHeadersLayer {
        ProxyHeadersLayer::new()
    }
}

impl<A> tower_layer::Layer<A> for ProxyHeadersLayer {
    type Service = ProxyHeaders<A>;

    fn layer(&self, inner: A) -> ProxyHeaders<A> {
        ProxyHeaders::new(inner, self.clone())
    }
}

/// Applies trusted forwarding headers to the environ; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct ProxyHeaders<A> {
    inner: A,
    config: ProxyHeadersLayer,
}

impl<A> ProxyHeaders<A> {
    /// Wrap `inner` with the configuration `config`.
    pub fn new(inner: A, config: ProxyHeadersLayer) -> ProxyHeaders<A> {
        ProxyHeaders { inner, config }
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

impl<A: Application> Application for ProxyHeaders<A> {
    fn call(&self, mut environ: Environ, start_response: StartResponse) -> Result<Body, AppError> {
        apply(&self.config, &mut environ);
        self.inner.call(environ, start_response)
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// What the proxies said, before validation of host and port.
#[derive(Debug, Default)]
struct Said {
    client: Option<(IpAddr, Option<u16>)>,
    proto: Option<Scheme>,
    host: Option<String>,
    port: Option<u16>,
}

/// Most comma-separated values looked at in one header.
const MAX_VALUES: usize = 64;

fn apply(config: &ProxyHeadersLayer, env: &mut Environ) {
    if !config.is_trusted(env.remote_addr) {
        return;
    }
    let said = match forwarded_element(&env.headers, config.forwarded) {
        Some(element) => from_forwarded(&element),
        None => Said {
            client: nth_from_right(&env.headers, "x-forwarded-for", config.x_for).and_then(|v| parse_node(&v)),
            proto: nth_from_right(&env.headers, "x-forwarded-proto", config.x_proto).and_then(|v| parse_proto(&v)),
            host: nth_from_right(&env.headers, "x-forwarded-host", config.x_host),
            port: nth_from_right(&env.headers, "x-forwarded-port", config.x_port).and_then(|v| parse_port(&v)),
        },
    };
    let host = said.host.filter(|h| valid_host(h)).and_then(|h| split_host_port(&h).map(|(n, p)| (h.clone(), n, p)));
    if said.client.is_none() && said.proto.is_none() && host.is_none() && said.port.is_none() {
        return;
    }
    env.extensions.insert(ProxyOrigin {
        remote_addr: env.remote_addr,
        remote_port: env.remote_port,
        url_scheme: env.url_scheme,
        host: env.headers.get(HOST).cloned(),
        server_name: env.server_name.clone(),
        server_port: env.server_port,
    });
    if let Some((ip, port)) = said.client {
        env.remote_addr = Some(ip);
        env.remote_port = port;
    }
    if let Some(scheme) = said.proto {
        env.url_scheme = scheme;
    }
    if let Some((full, name, port)) = host {
        if let Ok(v) = HeaderValue::from_str(&full) {
            env.headers.insert(HOST, v);
            env.server_name = name;
            env.server_port = port.unwrap_or(env.url_scheme.default_port());
        }
    }
    if let Some(port) = said.port {
        env.server_port = port;
        let name = env.headers.get(HOST).and_then(|h| h.to_str().ok()).and_then(split_host_port).map(|(n, _)| n);
        if let Some(v) = name.and_then(|n| HeaderValue::from_str(&format!("{n}:{port}")).ok()) {
            env.headers.insert(HOST, v);
        }
    }
}

/// The `n`-th comma-separated value from the right over every field `name`.
fn nth_from_right(headers: &HeaderMap, name: &str, n: usize) -> Option<String> {
    if n == 0 {
        return None;
    }
    let mut values = Vec::new();
    for field in headers.get_all(name) {
        let field = std::str::from_utf8(field.as_bytes()).ok()?;
        for v in field.split(',') {
            if values.len() == MAX_VALUES {
                return None;
            }
            values.push(v.trim());
        }
    }
    let v = *values.get(values.len().checked_sub(n)?)?;
    (!v.is_empty()).then(|| v.to_owned())
}

/// The `n`-th element from the right of `Forwarded`, as `(name, value)` pairs.
fn forwarded_element(headers: &HeaderMap, n: usize) -> Option<Vec<(String, String)>> {
    if n == 0 {
        return None;
    }
    let mut elements = Vec::new();
    for field in headers.get_all("forwarded") {
        let field = std::str::from_utf8(field.as_bytes()).ok()?;
        for element in split_unquoted(field, ',') {
            if elements.len() == MAX_VALUES {
                return None;
            }
            elements.push(element);
        }
    }
    let element = elements.get(elements.len().checked_sub(n)?)?;
    let mut pairs = Vec::new();
    for pair in split_unquoted(element, ';') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let (name, value) = pair.split_once('=')?;
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(q) => unquote(q.strip_suffix('"')?)?,
            None => value.to_owned(),
        };
        pairs.push((name.trim().to_ascii_lowercase(), value));
    }
    Some(pairs)
}

fn from_forwarded(pairs: &[(String, String)]) -> Said {
    let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    Said {
        client: get("for").and_then(parse_node),
        proto: get("proto").and_then(parse_proto),
        host: get("host").map(str::to_owned),
        port: None,
    }
}

/// Split on `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// The inside of a quoted-string, unescaped.
fn unquote(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// A node: `192.0.2.1`, `192.0.2.1:8080`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:8080`. `unknown` and obfuscated names are not addresses.
fn parse_node(s: &str) -> Option<(IpAddr, Option<u16>)> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some((ip, None));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some((sa.ip(), Some(sa.port())));
    }
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<std::net::Ipv6Addr>().ok().map(|ip| (IpAddr::V6(ip), None))
}

fn parse_proto(s: &str) -> Option<Scheme> {
    match s.trim() {
        p if p.eq_ignore_ascii_case("https") => Some(Scheme::Https),
        p if p.eq_ignore_ascii_case("http") => Some(Scheme::Http),
        _ => None,
    }
}

fn parse_port(s: &str) -> Option<u16> {
    let s = s.trim();
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&p| p > 0)
}

fn valid_host(h: &str) -> bool {
    !h.is_empty() && h.len() <= 255 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
}

/// `name[:port]` or `[v6][:port]`; `None` when the shape is wrong.
fn split_host_port(host: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = host.strip_prefix('[') {
        let end = rest.find(']')?;
        rest[..end].parse::<std::net::Ipv6Addr>().ok()?;
        let name = host[..end + 2].to_owned();
        return match &rest[end + 1..] {
            "" => Some((name, None)),
            p => Some((name, Some(parse_port(p.strip_prefix(':')?)?))),
        };
    }
    match host.split_once(':') {
        Some((n, p)) if !n.is_empty() && !n.contains('[') && !n.contains(']') => {
            Some((n.to_owned(), Some(parse_port(p)?)))
        }
        Some(_) => None,
        None if host.contains('[') || host.contains(']') => None,
        None => Some((host.to_owned(), None)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;
    use http::{Request, StatusCode};
    use tower_layer::Layer;
    use wsgi_spec::ext::ConnectionInfo;
    use wsgi_spec::testing::TestClient;

    use super::*;

    /// Shows what the app sees: REMOTE_ADDR REMOTE_PORT scheme HTTP_HOST SERVER_NAME SERVER_PORT.
    fn show(env: Environ, sr: StartResponse) -> Result<Body, AppError> {
        sr.start(StatusCode::OK, HeaderMap::new())?;
        let host = env.get("HTTP_HOST").map(|h| String::from_utf8_lossy(&h).into_owned()).unwrap_or_default();
        let origin = env.extensions.get::<ProxyOrigin>().map_or("-".to_owned(), |o| format!("{:?}", o.remote_addr));
        Ok(Body::full(format!(
            "{} {} {} {host} {} {} {origin}",
            env.remote_addr.map_or("-".to_owned(), |a| a.to_string()),
            env.remote_port.map_or("-".to_owned(), |p| p.to_string()),
            env.url_scheme.as_str(),
            env.server_name,
            env.server_port,
        )))
    }

    fn ask(layer: ProxyHeadersLayer, peer: &str, headers: &[(&str, &str)]) -> String {
        let mut req = Request::get("/").header("host", "internal:8000").body(Bytes::new()).unwrap();
        for (k, v) in headers {
            req.headers_mut()
                .append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        req.extensions_mut().insert(ConnectionInfo {
            peer: Some(SocketAddr::new(peer.parse().unwrap(), 5555)),
            local: None,
            secure: false,
        });
        let body = TestClient::new(layer.layer(show)).request(req).body;
        String::from_utf8(body.to_vec()).unwrap()
    }

    const UNCHANGED: &str = "10.1.1.1 5555 http internal:8000 internal 8000 -";

    #[test]
    fn x_forwarded_from_a_trusted_peer() {
        let layer = ProxyHeadersLayer::new().trust("10.0.0.0/8").unwrap().x_host(1).x_port(1);
        let got = ask(
            layer,
            "10.1.1.1",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "example.com"),
                ("x-forwarded-port", "8443"),
            ],
        );
        assert_eq!(got, "203.0.113.9 - https example.com:8443 example.com 8443 Some(10.1.1.1)");
    }

    #[test]
    fn host_alone_sets_the_default_port_of_the_scheme() {
        let layer = ProxyHeadersLayer::new().trust("10.1.1.1").unwrap().x_host(1);
        let got =
            ask(layer.clone(), "10.1.1.1", &[("x-forwarded-host", "example.com"), ("x-forwarded-proto", "https")]);
        assert_eq!(got, "10.1.1.1 5555 https example.com example.com 443 Some(10.1.1.1)");
        let got = ask(layer, "10.1.1.1", &[("x-forwarded-host", "[2001:db8::1]:9000")]);
        assert_eq!(got, "10.1.1.1 5555 http [2001:db8::1]:9000 [2001:db8::1] 9000 Some(10.1.1.1)");
    }

    #[test]
    fn forged_headers_from_untrusted_peers_are_ignored() {
        let layer = ProxyHeadersLayer::new().x_host(1).x_port(1); // trusts loopback only
        let forged = [
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-port", "1"),
            ("forwarded", "for=1.2.3.4;proto=https"),
        ];
        assert_eq!(ask(layer.clone().forwarded(1), "10.1.1.1", &forged), UNCHANGED);
        assert_eq!(
            ask(ProxyHeadersLayer::new().trust("").unwrap(), "127.0.0.1", &forged[..1]).split(' ').next(),
            Some("127.0.0.1")
        );
    }

    #[test]
    fn hop_count_picks_the_value_its_proxy_added() {
        let layer = ProxyHeadersLayer::new().trust("10.0.0.0/8").unwrap();
        // The client claims 6.6.6.6; our one proxy appended the real address.
        let got = ask(layer.clone(), "10.1.1.1", &[("x-forwarded-for", "6.6.6.6, 198.51.100.2")]);
        assert!(got.starts_with("198.51.100.2 - "), "{got}");
        // Two proxies: the second from the right. Several fields count as one list.
        let two = layer.clone().x_for(2);
        let got = ask(
            two.clone(),
            "10.1.1.1",
            &[("x-forwarded-for", "6.6.6.6, 198.51.100.2"), ("x-forwarded-for", "10.2.2.2")],
        );
        assert!(got.starts_with("198.51.100.2 - "), "{got}");
        // Fewer values than proxies: ignored.
        let got = ask(two, "10.1.1.1", &[("x-forwarded-for", "198.51.100.2")]);
        assert!(got.starts_with("10.1.1.1 5555 "), "{got}");
        // Off.
        let got = ask(layer.x_for(0), "10.1.1.1", &[("x-forwarded-for", "198.51.100.2")]);
        assert!(got.starts_with("10.1.1.1 5555 "), "{got}");
    }

    #[test]
    fn rfc_7239_forwarded() {
        let layer = ProxyHeadersLayer::new().trust("10.0.0.0/8").unwrap().forwarded(1);
        let got = ask(
            layer.clone(),
            "10.1.1.1",
            &[
                (
                    "forwarded",
                    "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=HTTPS;host=\"shop.example\";by=10.1.1.1",
                ),
                ("x-forwarded-for", "7.7.7.7"),
            ],
        );
        assert_eq!(got, "2001:db8:cafe::17 4711 https shop.example shop.example 443 Some(10.1.1.1)");
        // Obfuscated and unknown nodes are not addresses; the proto still applies.
        let got = ask(layer.clone(), "10.1.1.1", &[("forwarded", "for=unknown;proto=https")]);
        assert_eq!(got, "10.1.1.1 5555 https internal:8000 internal 8000 Some(10.1.1.1)");
        let got = ask(layer, "10.1.1.1", &[("forwarded", "for=_hidden, for=192.0.2.43:80")]);
        assert!(got.starts_with("192.0.2.43 80 "), "{got}");
    }

    #[test]
    fn malformed_values_are_ignored() {
        let layer = ProxyHeadersLayer::new().trust("*").unwrap().x_host(1).x_port(1).forwarded(0);
        for headers in [
            &[("x-forwarded-for", "not-an-ip")][..],
            &[("x-forwarded-for", "1.2.3.4.5")],
            &[("x-forwarded-for", "")],
            &[("x-forwarded-for", "1.2.3.4, ")],
            &[("x-forwarded-proto", "gopher")],
            &[("x-forwarded-host", "evil.example/path")],
            &[("x-forwarded-host", "a b")],
            &[("x-forwarded-host", "host:port")],
            &[("x-forwarded-host", "[::1")],
            &[("x-forwarded-host", "host:99999")],
            &[("x-forwarded-port", "http")],
            &[("x-forwarded-port", "0")],
            &[("x-forwarded-port", "-1")],
            &[("x-forwarded-port", "123456")],
        ] {
            assert_eq!(ask(layer.clone(), "10.1.1.1", headers), UNCHANGED, "{headers:?}");
        }
        let fw = layer.forwarded(1);
        for bad in ["for", "for=\"1.2.3.4", "for=1.2.3.4;;proto", "=", "for=\"a\"b\""] {
            assert_eq!(ask(fw.clone(), "10.1.1.1", &[("forwarded", bad)]), UNCHANGED, "{bad}");
        }
        let huge = vec!["1.2.3.4"; 100].join(",");
        assert_eq!(ask(fw, "10.1.1.1", &[("x-forwarded-for", &huge)]), UNCHANGED);
    }

    #[test]
    fn trust_lists() {
        let l = ProxyHeadersLayer::new().trust("10.0.0.0/8, 2001:db8::/32, 192.0.2.1").unwrap();
        assert!(l.is_trusted(Some("10.200.0.1".parse().unwrap())));
        assert!(l.is_trusted(Some("2001:db8::5".parse().unwrap())));
        assert!(l.is_trusted(Some("::ffff:10.0.0.1".parse().unwrap())));
        assert!(l.is_trusted(Some("192.0.2.1".parse().unwrap())));
        assert!(!l.is_trusted(Some("192.0.2.2".parse().unwrap())));
        assert!(!l.is_trusted(Some("127.0.0.1".parse().unwrap())));
        assert!(!l.is_trusted(None));
        assert!(ProxyHeadersLayer::new().trust("*").unwrap().is_trusted(None));
        assert!(ProxyHeadersLayer::new().trust("0.0.0.0/0").unwrap().is_trusted(Some("8.8.8.8".parse().unwrap())));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/", "::1/129", "1.2.3.4/-1", "1.2.3.4/ 8"] {
            assert!(ProxyHeadersLayer::new().trust(bad).is_err(), "{bad}");
        }
    }
}
