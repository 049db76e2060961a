//! Helpers shared by several middlewares.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use wsgi_spec::{AppError, Body, StartResponse, Status, Write};

use crate::Error;

/// Answer with a short plain-text page; `exc_info` replaces a head the
/// application may already have set (SR-12).
pub(crate) fn text_response(
    start_response: &StartResponse,
    status: StatusCode,
    mut headers: HeaderMap,
    text: impl Into<Bytes>,
    exc_info: Option<AppError>,
) -> Result<Body, AppError> {
    let text = text.into();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
    start_response.call(Status::from_code(status), headers, exc_info)?;
    Ok(Body::full(text))
}

/// A `start_response` passing everything to `start_response` that sets
/// `sent` once the application passes non-empty data to `write()` (which
/// commits the head, SR-9).
pub(crate) fn track_writes(start_response: StartResponse, sent: Arc<AtomicBool>) -> StartResponse {
    StartResponse::from_fn(move |status, headers, exc_info| {
        let write = start_response.call(status, headers, exc_info)?;
        let sent = sent.clone();
        Ok(Write::from_fn(move |data: Bytes| {
            if !data.is_empty() {
                sent.store(true, Ordering::SeqCst);
            }
            write.write(data)
        }))
    })
}

/// A path prefix as configured: starts with `/`, no trailing `/`. `"/"`
/// becomes `""` (the root) when `allow_root`.
pub(crate) fn normalize_prefix(prefix: &str, allow_root: bool) -> Result<String, Error> {
    let bad = || Error::InvalidPrefix(prefix.to_owned());
    if !prefix.starts_with('/') || prefix.bytes().any(|b| b.is_ascii_control()) {
        return Err(bad());
    }
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() && !allow_root {
        return Err(bad());
    }
    Ok(trimmed.to_owned())
}

/// The rest of `path` after `prefix`, when `prefix` matches at a segment
/// boundary: `/app` matches `/app` (rest `""`) and `/app/x` (rest `/x`),
/// never `/apple`. An empty prefix matches every path.
pub(crate) fn strip_path_prefix<'a>(path: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest[0] == b'/').then_some(rest)
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Longest `Accept-Encoding` we parse; longer ones are not trusted.
const MAX_ACCEPT_ENCODING: usize = 2048;
/// Most codings we look at in one `Accept-Encoding`.
const MAX_CODINGS: usize = 32;

/// The codings of `Accept-Encoding` with their q-values (0..=1000), or
/// `None` when the field is absent, malformed or too large.
pub(crate) fn accept_encoding(headers: &HeaderMap) -> Option<Vec<(String, u16)>> {
    let mut total = 0usize;
    let mut out = Vec::new();
    let mut seen = false;
    for value in headers.get_all(http::header::ACCEPT_ENCODING) {
        seen = true;
        total += value.len();
        if total > MAX_ACCEPT_ENCODING {
            return None;
        }
        let value = std::str::from_utf8(value.as_bytes()).ok()?;
        for element in value.split(',') {
            let element = element.trim();
            if element.is_empty() {
                continue;
            }
            if out.len() == MAX_CODINGS {
                return None;
            }
            let mut params = element.split(';');
            let coding = params.next().unwrap_or_default().trim();
            if coding.is_empty() || !coding.bytes().all(is_tchar) {
                return None;
            }
            let mut q = 1000;
            for param in params {
                let (name, value) = param.split_once('=')?;
                if name.trim().eq_ignore_ascii_case("q") {
                    q = parse_qvalue(value.trim())?;
                }
            }
            out.push((coding.to_ascii_lowercase(), q));
        }
    }
    seen.then_some(out)
}

/// A q-value (RFC 9110 12.4.2) in thousandths.
fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value =
        frac.bytes().chain(std::iter::repeat(b'0')).take(3).fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The most preferred of `supported` (in order of the server's preference,
/// which breaks ties) that the client accepts with q > 0.
pub(crate) fn choose_encoding<'a>(accepted: &[(String, u16)], supported: &[&'a str]) -> Option<&'a str> {
    let star = accepted.iter().find(|(c, _)| c == "*").map(|(_, q)| *q);
    let mut best: Option<(&'a str, u16)> = None;
    for &coding in supported {
        let explicit =
            accepted.iter().find(|(c, _)| c == coding || (coding == "gzip" && c == "x-gzip")).map(|(_, q)| *q);
        let q = explicit.or(star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, bq)| q > bq) {
            best = Some((coding, q));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ae(v: &str) -> Option<Vec<(String, u16)>> {
        let mut h = HeaderMap::new();
        h.insert(http::header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        accept_encoding(&h)
    }

    #[test]
    fn q_values_and_ties() {
        let s = ["br", "gzip"];
        assert_eq!(choose_encoding(&ae("gzip, br").unwrap(), &s), Some("br"));
        assert_eq!(choose_encoding(&ae("gzip;q=1.0, br;q=0.9").unwrap(), &s), Some("gzip"));
        assert_eq!(choose_encoding(&ae("br;q=0, gzip;q=0.001").unwrap(), &s), Some("gzip"));
        assert_eq!(choose_encoding(&ae("*").unwrap(), &s), Some("br"));
        assert_eq!(choose_encoding(&ae("*;q=0.5, br;q=0").unwrap(), &s), Some("gzip"));
        assert_eq!(choose_encoding(&ae("identity").unwrap(), &s), None);
        assert_eq!(choose_encoding(&ae("x-gzip").unwrap(), &s), Some("gzip"));
        assert_eq!(choose_encoding(&ae("GZIP;Q=0.5").unwrap(), &s), Some("gzip"));
        assert_eq!(choose_encoding(&ae("").unwrap(), &s), None);
    }

    #[test]
    fn malformed_accept_encoding_is_none() {
        for bad in ["gzip;q=2", "gzip;q=1.5", "gzip;q=abc", "gzip;q", "gzip;q=0.0001", "g zip", "gzip;q=-1", "\"gzip\""]
        {
            assert_eq!(ae(bad), None, "{bad}");
        }
        assert_eq!(ae(&"gzip,".repeat(1000)), None);
        assert_eq!(ae(&vec!["a"; 40].join(",")), None);
        assert_eq!(accept_encoding(&HeaderMap::new()), None);
    }

    #[test]
    fn prefixes() {
        assert_eq!(strip_path_prefix(b"/app/x", b"/app"), Some(&b"/x"[..]));
        assert_eq!(strip_path_prefix(b"/app", b"/app"), Some(&b""[..]));
        assert_eq!(strip_path_prefix(b"/apple", b"/app"), None);
        assert_eq!(strip_path_prefix(b"/x", b""), Some(&b"/x"[..]));
        assert_eq!(normalize_prefix("/static/", false).unwrap(), "/static");
        assert!(normalize_prefix("static", false).is_err());
        assert!(normalize_prefix("/", false).is_err());
        assert_eq!(normalize_prefix("/", true).unwrap(), "");
    }
}
