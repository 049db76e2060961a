//! Trusted proxies: `X-Forwarded-For/Proto/Host/Port` and RFC 7239
//! `Forwarded` change the environ only when the peer is a trusted proxy
//! (`forwarded_allow_ips`, default `127.0.0.1` and `::1`).

use std::net::IpAddr;
use std::str::FromStr;

use http::header::HOST;
use http::{HeaderMap, HeaderValue};
use wsgi_spec::{Environ, Scheme};

use crate::Error;

/// A set of peer addresses whose forwarding headers are believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedAllow {
    any: bool,
    nets: Vec<(IpAddr, u8)>,
}

impl Default for ForwardedAllow {
    /// `127.0.0.1,::1`, as Gunicorn.
    fn default() -> Self {
        ForwardedAllow {
            any: false,
            nets: vec![(IpAddr::from([127, 0, 0, 1]), 32), (IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]), 128)],
        }
    }
}

impl FromStr for ForwardedAllow {
    type Err = Error;

    /// A comma-separated list of addresses and CIDR networks, or `*` for any
    /// peer. An empty string trusts nobody.
    fn from_str(s: &str) -> Result<Self, Error> {
        let mut out = ForwardedAllow { any: false, nets: Vec::new() };
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if item == "*" {
                out.any = true;
                continue;
            }
            let bad =
                || Error::InvalidSetting(format!("forwarded_allow_ips: {item:?} is not an IP address or CIDR network"));
            let (addr, prefix) = match item.split_once('/') {
                Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
                None => (item, None),
            };
            let addr: IpAddr = addr.parse().map_err(|_| bad())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = prefix.unwrap_or(max);
            if prefix > max {
                return Err(bad());
            }
            out.nets.push((addr, prefix));
        }
        Ok(out)
    }
}

impl ForwardedAllow {
    /// Trust nobody.
    #[must_use]
    pub fn none() -> Self {
        ForwardedAllow { any: false, nets: Vec::new() }
    }

    /// True when `ip` is trusted.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.any || self.nets.iter().any(|&(net, prefix)| in_net(ip, net, prefix))
    }

    /// True when no peer is trusted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.any && self.nets.is_empty()
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Apply forwarding headers to `env` when its peer is trusted.
///
/// A peer on a Unix socket (`unix_peer`) is a local process the socket's
/// permissions let in, typically the reverse proxy: it is trusted, as
/// Gunicorn trusts Unix-socket clients, unless nobody is (an empty list).
pub(crate) fn apply(env: &mut Environ, allow: &ForwardedAllow, unix_peer: bool) {
    let trusted = match env.remote_addr {
        Some(peer) => allow.contains(peer),
        None => unix_peer && !allow.is_empty(),
    };
    if !trusted {
        return;
    }
    // One pass over the names (no hashing) to skip the common case: no
    // forwarding header at all.
    let mut forwarded = false;
    let mut x_forwarded = false;
    for name in env.headers.keys() {
        let n = name.as_str();
        forwarded |= n == "forwarded";
        x_forwarded |= n.starts_with("x-forwarded-");
    }
    let fwd = if forwarded {
        parse_forwarded(&env.headers)
    } else if x_forwarded {
        parse_x_forwarded(&env.headers)
    } else {
        return;
    };
    // The client is the rightmost address that is not a trusted proxy.
    if let Some(client) = fwd.chain.iter().rev().find(|ip| !allow.contains(**ip)).or(fwd.chain.first()) {
        env.remote_addr = Some(*client);
        env.remote_port = None;
    }
    match fwd.proto.as_deref() {
        Some(p) if p.eq_ignore_ascii_case("https") => env.url_scheme = Scheme::Https,
        Some(p) if p.eq_ignore_ascii_case("http") => env.url_scheme = Scheme::Http,
        _ => {}
    }
    if let Some(host) = fwd.host.filter(|h| valid_host(h)) {
        let (name, port) = split_host_port(&host);
        env.server_port = port.or(fwd.port).unwrap_or(env.url_scheme.default_port());
        env.server_name = name;
        if let Ok(v) = HeaderValue::from_str(&host) {
            env.headers.insert(HOST, v);
        }
    } else if let Some(port) = fwd.port {
        env.server_port = port;
    }
}

/// `name[:port]` or `[v6][:port]`.
fn split_host_port(host: &str) -> (String, Option<u16>) {
    if host.starts_with('[') {
        if let Some(end) = host.find(']') {
            let port = host[end + 1..].strip_prefix(':').and_then(|p| p.parse().ok());
            return (host[..=end].to_owned(), port);
        }
    }
    match host.split_once(':') {
        Some((n, p)) if !p.contains(':') => (n.to_owned(), p.parse().ok()),
        _ => (host.to_owned(), None),
    }
}

fn valid_host(h: &str) -> bool {
    !h.is_empty() && h.len() <= 255 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
}

#[derive(Debug, Default)]
struct Forwarded {
    chain: Vec<IpAddr>,
    proto: Option<String>,
    host: Option<String>,
    port: Option<u16>,
}

fn values<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(str::trim)
}

fn parse_x_forwarded(headers: &HeaderMap) -> Forwarded {
    let chain = values(headers, "x-forwarded-for").filter_map(parse_node).collect();
    let last = |name| values(headers, name).last().map(str::to_owned);
    Forwarded {
        chain,
        proto: last("x-forwarded-proto"),
        host: last("x-forwarded-host"),
        port: last("x-forwarded-port").and_then(|p| p.parse().ok()),
    }
}

/// RFC 7239: `Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8::1]:4711"`.
fn parse_forwarded(headers: &HeaderMap) -> Forwarded {
    let mut out = Forwarded::default();
    for element in values(headers, "forwarded") {
        for pair in element.split(';') {
            let Some((k, v)) = pair.split_once('=') else { continue };
            let v = v.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "for" => {
                    if let Some(ip) = parse_node(v) {
                        out.chain.push(ip);
                    }
                }
                "proto" => out.proto = Some(v.to_owned()),
                "host" => out.host = Some(v.to_owned()),
                _ => {}
            }
        }
    }
    out
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `[::1]`, `[::1]:80`, `::1`.
fn parse_node(v: &str) -> Option<IpAddr> {
    let v = v.trim().trim_matches('"');
    if let Ok(ip) = v.parse() {
        return Some(ip);
    }
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    v.rsplit_once(':').and_then(|(a, _)| a.parse().ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use wsgi_spec::ext::ConnectionInfo;
    use wsgi_spec::{Input, ServerInfo};

    fn env(peer: &str, headers: &[(&str, &str)]) -> Environ {
        let mut b = http::Request::get("/").header("host", "backend:8000");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (mut parts, ()) = b.body(()).unwrap().into_parts();
        parts.extensions.insert(ConnectionInfo { peer: Some(peer.parse().unwrap()), local: None, secure: false });
        Environ::from_request(parts, Input::empty(), &ServerInfo::default())
    }

    #[test]
    fn trusted_proxy_headers_change_the_environ() {
        let mut e = env(
            "127.0.0.1:5000",
            &[
                ("x-forwarded-for", "203.0.113.9, 10.0.0.2"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "example.com"),
            ],
        );
        apply(&mut e, &ForwardedAllow::default(), false);
        // 10.0.0.2 is not trusted, so it is the client as the proxy saw it.
        assert_eq!(e.remote_addr, Some("10.0.0.2".parse().unwrap()));
        assert_eq!(e.url_scheme, Scheme::Https);
        assert_eq!(e.server_name, "example.com");
        assert_eq!(e.server_port, 443);
        assert_eq!(e.get("HTTP_HOST").unwrap(), &b"example.com"[..]);
    }

    #[test]
    fn chains_of_trusted_proxies_are_walked_from_the_right() {
        let allow: ForwardedAllow = "127.0.0.1, 10.0.0.0/8".parse().unwrap();
        let mut e = env("127.0.0.1:5000", &[("x-forwarded-for", "198.51.100.7, 10.1.2.3")]);
        apply(&mut e, &allow, false);
        assert_eq!(e.remote_addr, Some("198.51.100.7".parse().unwrap()));
    }

    #[test]
    fn untrusted_peers_are_ignored() {
        let mut e = env("192.0.2.1:5000", &[("x-forwarded-for", "203.0.113.9"), ("x-forwarded-proto", "https")]);
        apply(&mut e, &ForwardedAllow::default(), false);
        assert_eq!(e.remote_addr, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(e.url_scheme, Scheme::Http);
        assert_eq!(e.server_name, "backend");
    }

    #[test]
    fn rfc_7239_forwarded_is_understood() {
        let mut e = env("[::1]:5000", &[("forwarded", r#"for="[2001:db8::17]:4711";proto=https;host=shop.example"#)]);
        apply(&mut e, &ForwardedAllow::default(), false);
        assert_eq!(e.remote_addr, Some("2001:db8::17".parse().unwrap()));
        assert_eq!(e.url_scheme, Scheme::Https);
        assert_eq!(e.server_name, "shop.example");
    }

    #[test]
    fn malformed_values_change_nothing() {
        let mut e = env(
            "127.0.0.1:5000",
            &[("x-forwarded-for", "not-an-ip"), ("x-forwarded-proto", "gopher"), ("x-forwarded-host", "bad host\\")],
        );
        apply(&mut e, &ForwardedAllow::default(), false);
        assert_eq!(e.remote_addr, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(e.url_scheme, Scheme::Http);
        assert_eq!(e.server_name, "backend");
    }

    #[test]
    fn unix_socket_peers_are_trusted_unless_nobody_is() {
        let mut b =
            http::Request::get("/").header("x-forwarded-for", "203.0.113.5").header("x-forwarded-proto", "https");
        b = b.header("host", "backend");
        let (parts, ()) = b.body(()).unwrap().into_parts();
        let fresh = || Environ::from_request(parts.clone(), Input::empty(), &ServerInfo::default());
        let mut e = fresh();
        apply(&mut e, &ForwardedAllow::default(), true);
        assert_eq!(e.remote_addr, Some("203.0.113.5".parse().unwrap()));
        assert_eq!(e.url_scheme, Scheme::Https);
        let mut e = fresh();
        apply(&mut e, &ForwardedAllow::none(), true);
        assert_eq!(e.remote_addr, None);
        let mut e = fresh();
        apply(&mut e, &ForwardedAllow::default(), false);
        assert_eq!(e.remote_addr, None, "no peer and not a Unix socket: not trusted");
    }

    #[test]
    fn allow_lists_parse_and_refuse_garbage() {
        let a: ForwardedAllow = "10.0.0.0/8, 2001:db8::/32".parse().unwrap();
        assert!(a.contains("10.200.1.1".parse().unwrap()));
        assert!(a.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!a.contains("11.0.0.1".parse().unwrap()));
        assert!("*".parse::<ForwardedAllow>().unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<ForwardedAllow>().is_err());
        assert!("banana".parse::<ForwardedAllow>().is_err());
    }
}
