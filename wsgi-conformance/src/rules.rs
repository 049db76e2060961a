//! Section "server-rules": one black-box check per rule a server must honour
//! that is observable over the wire (or through what the kit's own app saw).
//!
//! Ids are the SPEC.md / spec-notes ids (`ENV-4`, `CL-2`...); HTTP/1.1 rules
//! that have no id there are named after their RFC section
//! (`RFC9112-6.3`: message body length), and the one check without any rule
//! behind it is `KIT-slow-head`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::apps::{pattern, Echo};
use super::client::{build_request, chunked, exchange, find, latin1, simple_get, Conn, Framing, Response, State};
use super::Lane;

/// A check: `Ok(detail)` passes, `Err(detail)` fails.
pub(crate) type Check = fn(&Lane<'_>) -> Result<String, String>;

/// One server rule check.
pub(crate) struct Rule {
    pub(crate) id: &'static str,
    pub(crate) name: &'static str,
    pub(crate) check: Check,
}

const fn rule(id: &'static str, name: &'static str, check: Check) -> Rule {
    Rule { id, name, check }
}

/// Every server rule check, in report order.
pub(crate) static RULES: &[Rule] = &[
    // environ
    rule("ENV-2", "REQUEST_METHOD is the request's method (standard and extension methods)", env2_methods),
    rule("ENV-3", "SCRIPT_NAME is empty at the root, PATH_INFO holds the path", env3_root),
    rule("ENV-4", "PATH_INFO is percent-decoded", env4_decoded),
    rule("ENV-4", "PATH_INFO keeps non-UTF-8 bytes (%C3%A9, %FF%FE) as bytes", env4_bytes),
    rule("ENV-4", "PATH_INFO decodes %2F to /", env4_slash),
    rule("ENV-4", "PATH_INFO keeps // as sent", env4_double_slash),
    rule("ENV-5", "QUERY_STRING is the raw query, undecoded", env5_raw),
    rule("ENV-5", "QUERY_STRING is present and empty when the target has no query", env5_empty),
    rule("ENV-7", "CONTENT_TYPE/CONTENT_LENGTH are left out when the request has none (ENV-6, ENV-7)", env7_absent),
    rule("ENV-8", "SERVER_NAME/SERVER_PORT from Host, and from the socket without Host", env8_server),
    rule("ENV-8", "an absolute-form target names the server, replacing Host", env8_absolute),
    rule("ENV-9", "SERVER_PROTOCOL is HTTP/1.1 for an HTTP/1.1 request", env9_11),
    rule("ENV-9", "SERVER_PROTOCOL is HTTP/1.0 for an HTTP/1.0 request", env9_10),
    rule("ENV-10", "repeated header fields are joined with \", \"", env10_joined),
    rule("ENV-10", "repeated Cookie fields are joined with \"; \"", env10_cookie),
    rule("ENV-10", "a header field whose name contains '_' never reaches the app", env10_underscore),
    rule("ENV-11", "Content-Type/Content-Length appear as CONTENT_TYPE/CONTENT_LENGTH only", env11_content),
    rule("ENV-18", "wsgi.url_scheme is http on a cleartext connection", env18_scheme),
    rule("UNI-3", "header bytes 0x80-0xFF reach the app unchanged", uni3_bytes),
    // wsgi.input
    rule("IN-2", "reading past Content-Length gets EOF at once, the next request is intact", in2_read_past),
    rule("IN-10", "a chunked request body is fully readable and input_terminated is set", in10_chunked),
    rule("IN-13", "a body cut short by the client is a read error, not a short body", in13_truncated),
    rule(
        "HTTP-1",
        "Expect: 100-continue, app does not read: final response without waiting for the body",
        http1_no_read,
    ),
    rule("HTTP-1", "Expect: 100-continue, app reads: 100 Continue, then the body is read", http1_read),
    // start_response
    rule("SR-2", "a custom reason phrase reaches the client", sr2_reason),
    rule("SR-6", "the server adds a Date header", sr6_date),
    rule("SR-6", "the app's own Date and Server headers are not duplicated", sr6_not_duplicated),
    rule("SR-7", "start_response refuses a hop-by-hop header", sr7_hop_by_hop),
    rule("SR-9", "head held until a non-empty chunk: b\"\" then an error gives a clean 500", sr9_empty_then_raise),
    rule("SR-12", "start_response(exc_info) before output replaces the head", sr12_exc_info_before),
    rule("SR-13", "start_response(exc_info) after output raises the error", sr13_exc_info_after),
    rule("SR-15", "a second start_response without exc_info raises", sr15_twice),
    rule("WR-4", "write() data precedes the body's data", wr4_write),
    // body
    rule("BODY-1", "each chunk is on the wire before the app makes the next (STRM-1)", body1_streaming),
    rule("BODY-3", "close() is called once after a normal end", body3_normal),
    rule("BODY-3", "close() is called once after an error while iterating", body3_error),
    rule("BODY-3", "close() is called once when the client leaves mid-stream", body3_disconnect),
    rule("BODY-6", "HEAD: no body bytes on the wire (known length)", body6_head),
    rule("BODY-6", "HEAD: no body bytes on the wire (streamed body)", body6_head_stream),
    rule("BODY-6", "204: no body, no Content-Length, no Transfer-Encoding", body6_204),
    rule("BODY-6", "304: no body, no Transfer-Encoding", body6_304),
    // Content-Length
    rule("CL-1", "app Content-Length shorter than its body: exactly that many bytes", cl1_truncated),
    rule("CL-2", "body shorter than its Content-Length: connection closed, never complete", cl2_short),
    rule("CL-3", "HTTP/1.1, unknown length: chunked", cl3_chunked),
    rule("CL-3", "HTTP/1.0, unknown length: close-delimited", cl3_close_delimited),
    // file bodies
    rule("FW-6", "a file body is sent from the file's current position to its end", fw6_file),
    rule("FW-6", "a file body is cut to the app's Content-Length, connection in sync", fw6_file_cut),
    // errors
    rule("EXC-2", "an app error before the head gives a 500, the server keeps serving", exc2_error),
    rule("EXC-5", "an app panic before the head gives a 500, the server keeps serving", exc2_panic),
    rule("EXC-3", "an app error after the head aborts the connection", exc3_abort),
    // connections
    rule("RFC9112-9.3", "keep-alive: three requests on one HTTP/1.1 connection", conn_keepalive),
    rule("RFC9112-9.3", "HTTP/1.0 without keep-alive: the connection is closed", conn_http10_close),
    rule("RFC9112-9.6", "Connection: close is honoured", conn_close),
    rule(
        "RFC9112-9.6",
        "Connection: close, then a pipelined request: first answered, second not processed",
        conn_close_pipelined,
    ),
    rule("RFC9112-9.3.2", "pipelining: three GETs answered in order", conn_pipeline),
    rule("RFC9112-9.3.2", "pipelining: POST with a body, then GET", conn_pipeline_post),
    rule("RFC9112-6.3", "an unread request body is skipped, never parsed as a request", conn_unread_body),
    rule("RFC9112-6.3", "no Content-Length, no Transfer-Encoding: the body is empty", conn_no_length),
    rule("HTTP-4", "a chunked body's trailer section is consumed, next request served", conn_trailers),
    rule("RFC9112-3.2", "HTTP/1.1 without Host: 400, app not called", host_missing),
    rule("RFC9112-3.2", "HTTP/1.0 without Host is served", host_missing_http10),
    rule("RFC9112-3.2.2", "absolute-form target: path and query as for origin-form", absolute_form),
    rule("KIT-slow-head", "a client sending its head byte by byte does not delay other clients", slow_head),
    // malformed requests
    rule("RFC9112-6.3", "bad input: two different Content-Length fields", bad_cl_conflict),
    rule("RFC9112-6.3", "bad input: repeated identical Content-Length fields", bad_cl_repeated),
    rule("RFC9112-6.3", "bad input: list-valued Content-Length", bad_cl_list),
    rule("RFC9112-6.3", "bad input: Content-Length with Transfer-Encoding", bad_cl_te),
    rule("RFC9112-6.3", "bad input: Transfer-Encoding not ending in chunked", bad_te_not_final),
    rule("RFC9112-6.1", "bad input: unknown transfer coding", bad_te_unknown),
    rule("RFC9112-6.3", "bad input: negative Content-Length", bad_cl_negative),
    rule("RFC9112-6.3", "bad input: Content-Length beyond 64 bits", bad_cl_huge),
    rule("RFC9112-6.3", "bad input: non-numeric Content-Length", bad_cl_alpha),
    rule("RFC9112-6.3", "bad input: Content-Length with a sign", bad_cl_plus),
    rule("RFC9112-2.2", "bad input: bare LF line endings", bad_bare_lf),
    rule("RFC9112-5.2", "bad input: obs-fold (refused, or replaced by SP)", bad_obs_fold),
    rule("RFC9112-5.1", "bad input: whitespace between field name and colon", bad_space_before_colon),
    rule("RFC9112-5", "bad input: field line without a colon", bad_no_colon),
    rule("RFC9110-5.5", "bad input: NUL in a field value (refused, or replaced by SP)", bad_nul_value),
    rule("RFC9110-5.5", "bad input: control byte in a field value never reaches the app", bad_ctl_value),
    rule("RFC9110-5.6.2", "bad input: invalid character in a field name", bad_field_name),
    rule("RFC9112-7.1", "bad input: non-hex chunk size", bad_chunk_hex),
    rule("RFC9112-7.1", "bad input: negative chunk size", bad_chunk_negative),
    rule("RFC9112-7.1", "bad input: chunk size beyond 64 bits", bad_chunk_huge),
    rule("RFC9112-7.1", "bad input: chunk data without its CRLF", bad_chunk_no_crlf),
    rule("RFC9112-3", "bad input: over-long request line is answered 414", bad_long_line),
    rule("RFC6585-5", "bad input: too many header fields is answered 431", bad_many_fields),
    rule("RFC6585-5", "bad input: too large header field is answered 431", bad_large_field),
    rule("RFC9112-3", "bad input: method with a non-token character", bad_method),
    rule("RFC9112-3", "bad input: request line starting with a space", bad_leading_space),
    rule("RFC9112-3.2", "bad input: target neither origin- nor absolute-form", bad_target_relative),
    rule("RFC9112-3.2", "bad input: NUL in the request target", bad_target_nul),
    rule("RFC9112-3.2", "bad input: control byte in the request target", bad_target_ctl),
    rule("RFC9112-3", "bad input: too many spaces in the request line", bad_request_line_spaces),
    rule("RFC9112-2.3", "bad input: malformed HTTP version", bad_version),
];

const TIMEOUT: Duration = Duration::from_secs(5);
const CLOSE_WAIT: Duration = Duration::from_secs(2);

// ------------------------------------------------------------------ helpers

fn rejected_status(st: u16) -> bool {
    (400..500).contains(&st) || st == 501 || st == 505
}

/// One request with `Connection: close` (HTTP/1.1) on a new connection.
fn req(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8], version: &str) -> Vec<u8> {
    let mut h: Vec<(&str, &str)> = headers.to_vec();
    if version == "HTTP/1.1" && !h.iter().any(|(k, _)| k.eq_ignore_ascii_case("connection")) {
        h.push(("Connection", "close"));
    }
    build_request(method, target, &h, body, version)
}

fn get(target: &str) -> Vec<u8> {
    req("GET", target, &[], b"", "HTTP/1.1")
}

/// Send `raw`, read one response.
fn one(lane: &Lane<'_>, raw: &[u8], head: bool) -> Result<(Response, Conn), String> {
    let (mut resps, state, conn) =
        exchange(lane.addr, raw, 1, TIMEOUT, head, None).map_err(|e| format!("connect: {e}"))?;
    match resps.pop() {
        Some(r) if r.status == 0 => {
            Err(format!("garbage response {:?}", latin1(&r.raw_head[..r.raw_head.len().min(60)])))
        }
        Some(r) => Ok((r, conn)),
        None => Err(format!("no response (connection {state:?})")),
    }
}

/// Send `raw` and parse the echo app's answer.
fn echo(lane: &Lane<'_>, raw: &[u8]) -> Result<Echo, String> {
    let (r, _) = one(lane, raw, false)?;
    if r.status != 200 {
        return Err(format!("response {}", r.describe()));
    }
    Echo::parse(&r.body).ok_or_else(|| format!("not an echo body: {}", r.describe()))
}

fn show(b: Option<&[u8]>) -> String {
    match b {
        Some(b) => format!("{:?}", latin1(b)),
        None => "absent".to_owned(),
    }
}

fn expect_eq(what: &str, got: Option<&[u8]>, want: &[u8]) -> Result<(), String> {
    if got == Some(want) {
        Ok(())
    } else {
        Err(format!("{what}={} want {:?}", show(got), latin1(want)))
    }
}

fn path_check(lane: &Lane<'_>, target: &str, want: &[u8]) -> Result<String, String> {
    let e = echo(lane, &get(target))?;
    let got = e.path();
    if got == want {
        Ok(format!("SCRIPT_NAME+PATH_INFO={:?}", latin1(&got)))
    } else {
        Err(format!("SCRIPT_NAME+PATH_INFO={:?} want {:?}", latin1(&got), latin1(want)))
    }
}

/// How a malformed request must be answered.
enum Refusal {
    /// 4xx, 501 or 505, or a close without a response; app not called.
    Rejected,
    /// Exactly one of these statuses; app not called.
    Status(&'static [u16]),
    /// Found while the body streams: the app may have been called, but no
    /// success may be returned (4xx/5xx or a close).
    BodyPhase,
    /// Rejected, or accepted when the echo the app returns passes this test.
    OrAccepted(fn(&Echo) -> Result<String, String>),
}

fn refused(lane: &Lane<'_>, raw: &[u8], how: Refusal) -> Result<String, String> {
    let mark = lane.state.mark();
    let (resps, mut state, mut conn) =
        exchange(lane.addr, raw, 1, Duration::from_millis(2500), false, Some(Duration::from_secs(1)))
            .map_err(|e| format!("connect: {e}"))?;
    if state == State::Open && conn.wait_closed(Duration::from_millis(50)) {
        state = State::Closed;
    }
    drop(conn);
    let healthy = lane.sync();
    let calls = lane.state.calls_since(mark);
    let r = resps.first();
    let desc = match r {
        Some(r) => format!("status {}", r.status),
        None => format!("no response, connection {state:?}"),
    };
    if !healthy {
        return Err(format!("{desc}; the server did not serve a good request afterwards"));
    }
    let st = r.map_or(0, |r| r.status);
    let closed_silently = r.is_none() && state == State::Closed;
    match how {
        Refusal::Status(list) => {
            if !calls.is_empty() {
                return Err(format!("{desc}; the app was called"));
            }
            if list.contains(&st) {
                Ok(desc)
            } else {
                Err(format!("{desc}, want {list:?}"))
            }
        }
        Refusal::Rejected => {
            if !calls.is_empty() {
                return Err(format!("{desc}; the app was called"));
            }
            if rejected_status(st) || closed_silently {
                Ok(desc)
            } else {
                Err(format!("{desc}, want a refusal (4xx, 501, 505 or close)"))
            }
        }
        Refusal::BodyPhase => {
            if (1..400).contains(&st) {
                return Err(format!("accepted: {desc}"));
            }
            if st >= 400 || r.is_none() && state == State::Closed {
                let called = if calls.is_empty() { "" } else { ", after the app was called" };
                Ok(format!("{desc}{called}"))
            } else {
                Err(format!("{desc}, want a refusal or an aborted connection"))
            }
        }
        Refusal::OrAccepted(test) => {
            if let Some(r) = r {
                if r.status == 200 {
                    let e = Echo::parse(&r.body)
                        .ok_or_else(|| format!("accepted, but not an echo body: {}", r.describe()))?;
                    return test(&e).map(|d| format!("accepted: {d}")).map_err(|d| format!("accepted: {d}"));
                }
            }
            if !calls.is_empty() {
                return Err(format!("{desc}; the app was called"));
            }
            if rejected_status(st) || closed_silently {
                Ok(desc)
            } else {
                Err(format!("{desc}, want a refusal or an accepted request"))
            }
        }
    }
}

/// A full request head with `Host` and `Connection: close` around `middle`
/// header lines (each ending in CRLF), and `body`.
fn raw_with(request_line: &[u8], middle: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = request_line.to_vec();
    out.extend_from_slice(b"\r\nHost: localhost\r\nConnection: close\r\n");
    out.extend_from_slice(middle);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

// ------------------------------------------------------------------ environ

fn env2_methods(lane: &Lane<'_>) -> Result<String, String> {
    let mut seen = Vec::new();
    for m in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PURGE"] {
        let headers: &[(&str, &str)] =
            if matches!(m, "POST" | "PUT" | "PATCH") { &[("Content-Length", "0")] } else { &[] };
        let e = echo(lane, &req(m, "/__kit/echo/env2", headers, b"", "HTTP/1.1")).map_err(|e| format!("{m}: {e}"))?;
        if e.method != m.as_bytes() || e.get("REQUEST_METHOD") != Some(m.as_bytes()) {
            return Err(format!("{m}: REQUEST_METHOD={:?}", latin1(&e.method)));
        }
        seen.push(m);
    }
    Ok(format!("{} passed through", seen.join("/")))
}

fn env3_root(lane: &Lane<'_>) -> Result<String, String> {
    for (target, want) in [("/", "/"), ("/__kit/echo/env3", "/__kit/echo/env3")] {
        let e = echo(lane, &get(target))?;
        if !e.script_name.is_empty() || e.path_info != want.as_bytes() {
            return Err(format!(
                "{target}: SCRIPT_NAME={:?} PATH_INFO={:?}",
                latin1(&e.script_name),
                latin1(&e.path_info)
            ));
        }
    }
    Ok("SCRIPT_NAME empty, PATH_INFO / and /__kit/echo/env3".to_owned())
}

fn env4_decoded(lane: &Lane<'_>) -> Result<String, String> {
    path_check(lane, "/__kit/echo/a%20b/c%7Ed", b"/__kit/echo/a b/c~d")
}

fn env4_bytes(lane: &Lane<'_>) -> Result<String, String> {
    path_check(lane, "/__kit/echo/caf%C3%A9/%FF%FE", b"/__kit/echo/caf\xc3\xa9/\xff\xfe")
}

fn env4_slash(lane: &Lane<'_>) -> Result<String, String> {
    path_check(lane, "/__kit/echo/a%2Fb", b"/__kit/echo/a/b")
}

fn env4_double_slash(lane: &Lane<'_>) -> Result<String, String> {
    path_check(lane, "/__kit/echo//a//b", b"/__kit/echo//a//b")
}

fn env5_raw(lane: &Lane<'_>) -> Result<String, String> {
    let q = "a=%20b&c=d+e&f=%2F&g&h=%C3%A9&i=?";
    let e = echo(lane, &get(&format!("/__kit/echo/env5?{q}")))?;
    expect_eq("QUERY_STRING", Some(&e.query), q.as_bytes())?;
    expect_eq("QUERY_STRING (environ)", e.get("QUERY_STRING"), q.as_bytes())?;
    path_ok(&e, b"/__kit/echo/env5")?;
    Ok(format!("QUERY_STRING={q:?}"))
}

fn path_ok(e: &Echo, want: &[u8]) -> Result<(), String> {
    if e.path() == want {
        Ok(())
    } else {
        Err(format!("SCRIPT_NAME+PATH_INFO={:?} want {:?}", latin1(&e.path()), latin1(want)))
    }
}

fn env5_empty(lane: &Lane<'_>) -> Result<String, String> {
    let e = echo(lane, &get("/__kit/echo/env5-empty"))?;
    match e.get("QUERY_STRING") {
        Some(b"") if e.query.is_empty() => Ok("QUERY_STRING present, empty".to_owned()),
        v => Err(format!("QUERY_STRING={}", show(v))),
    }
}

fn env7_absent(lane: &Lane<'_>) -> Result<String, String> {
    let e = echo(lane, &get("/__kit/echo/env7"))?;
    for k in ["CONTENT_TYPE", "CONTENT_LENGTH"] {
        if let Some(v) = e.get(k) {
            return Err(format!("{k}={:?} for a request without it", latin1(v)));
        }
    }
    Ok("both left out".to_owned())
}

fn env8_absolute(lane: &Lane<'_>) -> Result<String, String> {
    let port = lane.addr.port().to_string();
    let target = format!("http://localhost:{port}/__kit/echo/env8-abs");
    let e = echo(lane, &req("GET", &target, &[("Host", "other.example:81")], b"", "HTTP/1.1"))?;
    expect_eq("SERVER_NAME", e.get("SERVER_NAME"), b"localhost")?;
    expect_eq("SERVER_PORT", e.get("SERVER_PORT"), port.as_bytes())?;
    expect_eq("HTTP_HOST", e.get("HTTP_HOST"), format!("localhost:{port}").as_bytes())?;
    path_ok(&e, b"/__kit/echo/env8-abs")?;
    Ok(format!("SERVER_NAME localhost, SERVER_PORT {port}, HTTP_HOST replaced"))
}

fn env8_server(lane: &Lane<'_>) -> Result<String, String> {
    let port = lane.addr.port().to_string();
    let host = format!("127.0.0.1:{port}");
    let e = echo(lane, &req("GET", "/__kit/echo/env8", &[("Host", &host)], b"", "HTTP/1.1"))?;
    expect_eq("SERVER_NAME", e.get("SERVER_NAME"), b"127.0.0.1")?;
    expect_eq("SERVER_PORT", e.get("SERVER_PORT"), port.as_bytes())?;
    let raw = b"GET /__kit/echo/env8-nohost HTTP/1.0\r\n\r\n";
    let e = echo(lane, raw).map_err(|d| format!("HTTP/1.0 without Host: {d}"))?;
    let name = e.get("SERVER_NAME").unwrap_or_default();
    if name.is_empty() {
        return Err("HTTP/1.0 without Host: SERVER_NAME empty or absent".to_owned());
    }
    expect_eq("SERVER_PORT (HTTP/1.0 without Host)", e.get("SERVER_PORT"), port.as_bytes())?;
    Ok(format!("Host {host}: 127.0.0.1/{port}; no Host: {}/{port}", latin1(name)))
}

fn env9_11(lane: &Lane<'_>) -> Result<String, String> {
    let e = echo(lane, &get("/__kit/echo/env9"))?;
    expect_eq("SERVER_PROTOCOL", e.get("SERVER_PROTOCOL"), b"HTTP/1.1")?;
    Ok("HTTP/1.1".to_owned())
}

fn env9_10(lane: &Lane<'_>) -> Result<String, String> {
    let e = echo(lane, &req("GET", "/__kit/echo/env9", &[], b"", "HTTP/1.0"))?;
    expect_eq("SERVER_PROTOCOL", e.get("SERVER_PROTOCOL"), b"HTTP/1.0")?;
    Ok("HTTP/1.0".to_owned())
}

fn env10_joined(lane: &Lane<'_>) -> Result<String, String> {
    let e = echo(lane, &req("GET", "/__kit/echo/env10", &[("X-Dup", "a"), ("X-Dup", "b")], b"", "HTTP/1.1"))?;
    expect_eq("HTTP_X_DUP", e.get("HTTP_X_DUP"), b"a, b")?;
    Ok("HTTP_X_DUP=\"a, b\"".to_owned())
}

fn env10_cookie(lane: &Lane<'_>) -> Result<String, String> {
    let e = echo(lane, &req("GET", "/__kit/echo/env10c", &[("Cookie", "a=1"), ("Cookie", "b=2")], b"", "HTTP/1.1"))?;
    expect_eq("HTTP_COOKIE", e.get("HTTP_COOKIE"), b"a=1; b=2")?;
    Ok("HTTP_COOKIE=\"a=1; b=2\"".to_owned())
}

fn env10_underscore(lane: &Lane<'_>) -> Result<String, String> {
    let raw = req("GET", "/__kit/echo/env10u", &[("X-Foo", "real"), ("X_Foo", "spoofed")], b"", "HTTP/1.1");
    let mark = lane.state.mark();
    let (r, _) = one(lane, &raw, false)?;
    if rejected_status(r.status) {
        if lane.state.calls_since(mark).is_empty() {
            return Ok(format!("request refused with {}", r.status));
        }
        return Err(format!("refused with {} after calling the app", r.status));
    }
    if r.status != 200 {
        return Err(format!("response {}", r.describe()));
    }
    let e = Echo::parse(&r.body).ok_or_else(|| format!("not an echo body: {}", r.describe()))?;
    if let Some((k, _)) = e.env.iter().find(|(_, v)| find(v, b"spoofed").is_some()) {
        return Err(format!("the value of X_Foo reached the app as {k}"));
    }
    expect_eq("HTTP_X_FOO", e.get("HTTP_X_FOO"), b"real")?;
    Ok("X_Foo dropped, HTTP_X_FOO=\"real\"".to_owned())
}

fn env11_content(lane: &Lane<'_>) -> Result<String, String> {
    let body = b"hello=world";
    let e = echo(
        lane,
        &req(
            "POST",
            "/__kit/echo/env11",
            &[("Content-Type", "application/x-www-form-urlencoded"), ("Content-Length", "11")],
            body,
            "HTTP/1.1",
        ),
    )?;
    expect_eq("CONTENT_TYPE", e.get("CONTENT_TYPE"), b"application/x-www-form-urlencoded")?;
    expect_eq("CONTENT_LENGTH", e.get("CONTENT_LENGTH"), b"11")?;
    for k in ["HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"] {
        if e.get(k).is_some() {
            return Err(format!("{k} present"));
        }
    }
    if e.body != body {
        return Err(format!("body {:?}", latin1(&e.body)));
    }
    Ok("CONTENT_TYPE and CONTENT_LENGTH, no HTTP_ forms".to_owned())
}

fn env18_scheme(lane: &Lane<'_>) -> Result<String, String> {
    let e = echo(lane, &get("/__kit/echo/env18"))?;
    expect_eq("wsgi.url_scheme", e.get("wsgi.url_scheme"), b"http")?;
    Ok("http".to_owned())
}

fn uni3_bytes(lane: &Lane<'_>) -> Result<String, String> {
    let raw = raw_with(b"GET /__kit/echo/uni3 HTTP/1.1", b"X-Latin: caf\xe9 \xff\r\nX-Utf8: caf\xc3\xa9\r\n", b"");
    let e = echo(lane, &raw)?;
    expect_eq("HTTP_X_LATIN", e.get("HTTP_X_LATIN"), b"caf\xe9 \xff")?;
    expect_eq("HTTP_X_UTF8", e.get("HTTP_X_UTF8"), b"caf\xc3\xa9")?;
    Ok("latin-1 and UTF-8 bytes intact".to_owned())
}

// ------------------------------------------------------------------ input

fn in2_read_past(lane: &Lane<'_>) -> Result<String, String> {
    let mut raw = req(
        "POST",
        "/__kit/read_past",
        &[("Content-Length", "10"), ("Connection", "keep-alive")],
        b"0123456789",
        "HTTP/1.1",
    );
    raw.extend_from_slice(&get("/__kit/hello/after-in2"));
    let (resps, state, _) = exchange(lane.addr, &raw, 2, TIMEOUT, false, None).map_err(|e| format!("connect: {e}"))?;
    let r = resps.first().ok_or_else(|| format!("no response (connection {state:?})"))?;
    if r.status != 200 {
        return Err(format!("response {}", r.describe()));
    }
    let text = String::from_utf8_lossy(&r.body).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let want = ["30313233343536373839", "-", "-"];
    if lines.len() != 4 || lines[..3] != want {
        return Err(format!("reads gave {lines:?} want {want:?} + elapsed"));
    }
    let ms: u64 = lines[3].parse().unwrap_or(u64::MAX);
    if ms > 1000 {
        return Err(format!("reading past Content-Length blocked {ms} ms"));
    }
    let next = follow_up(r, resps.get(1), state, "/__kit/hello/after-in2")?;
    Ok(format!("read(100) gave 10 bytes, then b\"\" twice in {ms} ms; {next}"))
}

/// The pipelined request after a body: answered intact, or dropped because
/// the first response closed the connection.
fn follow_up(first: &Response, second: Option<&Response>, state: State, path: &str) -> Result<&'static str, String> {
    match second {
        Some(r2) if r2.status == 200 && r2.body == format!("hello {path}").as_bytes() => Ok("next request intact"),
        Some(r2) => Err(format!("the request after the body: {}", r2.describe())),
        None if state == State::Closed && first.says_close() => Ok("next request dropped after Connection: close"),
        None => Err(format!("no response to the request after the body (connection {state:?})")),
    }
}

fn in10_chunked(lane: &Lane<'_>) -> Result<String, String> {
    let body: Vec<u8> = b"The quick brown fox jumps over the lazy dog. ".repeat(10);
    let mut raw = req(
        "POST",
        "/__kit/echo/in10",
        &[("Transfer-Encoding", "chunked"), ("Connection", "keep-alive")],
        &chunked(&body, &[1, 17, 100], b""),
        "HTTP/1.1",
    );
    raw.extend_from_slice(&get("/__kit/hello/after-in10"));
    let (resps, state, _) = exchange(lane.addr, &raw, 2, TIMEOUT, false, None).map_err(|e| format!("connect: {e}"))?;
    let r = resps.first().ok_or_else(|| format!("no response (connection {state:?})"))?;
    let e = Echo::parse(&r.body).ok_or_else(|| format!("not an echo body: {}", r.describe()))?;
    if e.body != body {
        return Err(format!(
            "the app read {} of {} bytes: {:?}",
            e.body.len(),
            body.len(),
            latin1(&e.body[..e.body.len().min(40)])
        ));
    }
    if !e.input_terminated {
        return Err("body ok, but InputTerminated (wsgi.input_terminated) is missing from the environ".to_owned());
    }
    let next = follow_up(r, resps.get(1), state, "/__kit/hello/after-in10")?;
    Ok(format!("{} bytes read to EOF, input_terminated, {next}", body.len()))
}

fn in13_truncated(lane: &Lane<'_>) -> Result<String, String> {
    let path = format!("/__kit/echo/{}", lane.uid("in13-"));
    let mark = lane.state.mark();
    let mut conn = Conn::connect(lane.addr).map_err(|e| format!("connect: {e}"))?;
    let raw = req("POST", &path, &[("Content-Length", "100")], b"only-ten!!", "HTTP/1.1");
    conn.send(&raw);
    // Let the server hand the head to the app, then leave.
    // (A server that reads the whole body before calling the app never calls it.)
    let want = path.as_bytes().to_vec();
    lane.state.wait_call(mark, Duration::from_secs(1), |c| c.path == want);
    drop(conn);
    let done = lane.state.wait_call(mark, Duration::from_secs(3), |c| c.path == want && c.body.is_some());
    match done.and_then(|c| c.body) {
        Some(Err(e)) => Ok(format!("the read failed: {e}")),
        Some(Ok(b)) => Err(format!("the read returned {} bytes as if the body were complete", b.len())),
        None if lane.state.calls_since(mark).iter().any(|c| c.path == want) => {
            Err("the app's read still blocks 3 s after the client left".to_owned())
        }
        None => Ok("the app was never called for the truncated request".to_owned()),
    }
}

fn http1_no_read(lane: &Lane<'_>) -> Result<String, String> {
    let mut conn = Conn::connect(lane.addr).map_err(|e| format!("connect: {e}"))?;
    conn.send(&req("POST", "/__kit/no_read", &[("Content-Length", "16"), ("Expect", "100-continue")], b"", "HTTP/1.1"));
    let r = conn
        .read_response(Duration::from_secs(3), false)
        .ok_or("no final response and no 100 Continue while the client waits to send the body")?;
    if r.status == 0 && r.interim.contains(&100) {
        // HTTP-1 option 1 with IN-8: `100 Continue` at once, then the server
        // reads the whole body before calling the app. Conforming: a client
        // that got the 100 sends the body.
        conn.buf.clear();
        conn.send(b"0123456789abcdef");
        let r = conn.read_response(TIMEOUT, false).ok_or("no final response after the body was sent")?;
        if r.status != 200 || r.body != b"did-not-read" {
            return Err(format!("after the body: response {}", r.describe()));
        }
        return Ok("100 Continue sent at once; the body was read before the app (IN-8)".to_owned());
    }
    if r.status != 200 || r.body != b"did-not-read" {
        return Err(format!("response {}", r.describe()));
    }
    if r.interim.contains(&100) {
        // HTTP-1 allows sending it at once.
        Ok("100 Continue sent at once, then the final response".to_owned())
    } else {
        Ok("final response, no 100 Continue (it comes on the first read)".to_owned())
    }
}

fn http1_read(lane: &Lane<'_>) -> Result<String, String> {
    let body = b"expect-body-1234";
    let mut conn = Conn::connect(lane.addr).map_err(|e| format!("connect: {e}"))?;
    conn.send(&req(
        "POST",
        "/__kit/echo/expect",
        &[("Content-Length", "16"), ("Expect", "100-continue")],
        b"",
        "HTTP/1.1",
    ));
    let deadline = Instant::now() + Duration::from_secs(2);
    while find(&conn.buf, b"\r\n\r\n").is_none() && Instant::now() < deadline {
        if !conn.fill(deadline) && conn.eof {
            break;
        }
    }
    let interim = conn.buf.starts_with(b"HTTP/1.1 100");
    let early_final = conn.buf.starts_with(b"HTTP/") && !interim;
    conn.send(body);
    let r = conn.read_response(TIMEOUT, false);
    if early_final {
        return Err(format!("final response before the body: {}", r.map_or("unparsable".to_owned(), |r| r.describe())));
    }
    if !interim {
        return Err("no 100 Continue within 2 s although the app reads the body".to_owned());
    }
    let r = r.ok_or("no final response after the body")?;
    let e = Echo::parse(&r.body).ok_or_else(|| format!("not an echo body: {}", r.describe()))?;
    if e.body != body {
        return Err(format!("the app read {:?}", latin1(&e.body)));
    }
    Ok("100 Continue, then the body reached the app".to_owned())
}

// ------------------------------------------------------------------ start_response, write

fn sr2_reason(lane: &Lane<'_>) -> Result<String, String> {
    let (r, _) = one(lane, &get("/__kit/reason"), false)?;
    if r.status != 299 || r.reason != b"Custom Reason Phrase" {
        return Err(format!("status line {} {:?}", r.status, latin1(&r.reason)));
    }
    Ok("299 Custom Reason Phrase".to_owned())
}

fn sr6_date(lane: &Lane<'_>) -> Result<String, String> {
    let (r, _) = one(lane, &get("/__kit/hello/date"), false)?;
    match r.header("date") {
        Some(d) if d.ends_with(" GMT") => Ok(format!("Date: {d}")),
        Some(d) => Err(format!("Date: {d} (not an HTTP-date)")),
        None => Err("no Date header".to_owned()),
    }
}

fn sr6_not_duplicated(lane: &Lane<'_>) -> Result<String, String> {
    let (r, _) = one(lane, &get("/__kit/own_headers"), false)?;
    let dates = r.header_all("date");
    let servers = r.header_all("server");
    if dates != [b"Mon, 01 Jan 2001 00:00:00 GMT".as_slice()] {
        return Err(format!("Date headers: {:?}", dates.iter().map(|d| latin1(d)).collect::<Vec<_>>()));
    }
    if servers != [b"kit-app".as_slice()] {
        return Err(format!("Server headers: {:?}", servers.iter().map(|d| latin1(d)).collect::<Vec<_>>()));
    }
    Ok("one Date, one Server: the app's".to_owned())
}

fn sr7_hop_by_hop(lane: &Lane<'_>) -> Result<String, String> {
    let id = lane.uid("sr7-");
    let (r, _) = one(lane, &get(&format!("/__kit/hop_by_hop?id={id}")), false)?;
    let notes = lane.state.wait_notes(&id, Duration::from_secs(2));
    match notes.first() {
        Some(n) if n.starts_with("raised") => {
            if r.status == 500 {
                Ok(format!("start_response {n}; 500"))
            } else {
                Err(format!("start_response {n}, but the client got {}", r.describe()))
            }
        }
        Some(n) => Err(format!("start_response: {n} (Connection: close from the app)")),
        None => Err(format!("the app was not reached ({})", r.describe())),
    }
}

fn sr9_empty_then_raise(lane: &Lane<'_>) -> Result<String, String> {
    let (r, _) = one(lane, &get("/__kit/empty_then_raise"), false)?;
    if r.status != 500 {
        return Err(format!("response {} (the head went out before a non-empty chunk)", r.describe()));
    }
    if !r.complete {
        return Err(format!("500 not clean: {}", r.describe()));
    }
    Ok("clean 500".to_owned())
}

fn sr12_exc_info_before(lane: &Lane<'_>) -> Result<String, String> {
    let (r, _) = one(lane, &get("/__kit/exc_info_before"), false)?;
    if r.status != 500 || r.body != b"replaced" {
        return Err(format!("response {} body {:?}", r.describe(), latin1(&r.body)));
    }
    if r.header("x-first").is_some() {
        return Err("a header of the replaced head was sent".to_owned());
    }
    Ok("500 with the replacement head".to_owned())
}

fn sr13_exc_info_after(lane: &Lane<'_>) -> Result<String, String> {
    let id = lane.uid("sr13-");
    let r = one(lane, &get(&format!("/__kit/exc_info_after?id={id}")), false);
    let notes = lane.state.wait_notes(&id, Duration::from_secs(3));
    let note = notes.first().ok_or("the app never reached its second start_response")?;
    if note != "raised HeadersSent" {
        return Err(format!("start_response(exc_info) after output: {note}"));
    }
    if let Ok((r, _)) = r {
        if r.complete && r.status == 200 {
            return Err(format!("raised, but the client got a complete response: {}", r.describe()));
        }
    }
    Ok("raised HeadersSent, response aborted".to_owned())
}

fn sr15_twice(lane: &Lane<'_>) -> Result<String, String> {
    let (r, _) = one(lane, &get("/__kit/start_twice"), false)?;
    if r.body == b"raised AlreadyStarted" {
        Ok("raised AlreadyStarted".to_owned())
    } else {
        Err(format!("second start_response: {:?} ({})", latin1(&r.body), r.describe()))
    }
}

fn wr4_write(lane: &Lane<'_>) -> Result<String, String> {
    let (r, _) = one(lane, &get("/__kit/write"), false)?;
    if r.status != 200 || r.body != b"part1;part2;part3" || !r.complete {
        return Err(format!("response {} body {:?}", r.describe(), latin1(&r.body)));
    }
    Ok("part1;part2;part3".to_owned())
}

// ------------------------------------------------------------------ body

fn body1_streaming(lane: &Lane<'_>) -> Result<String, String> {
    let id = lane.uid("body1-");
    let mut conn = Conn::connect(lane.addr).map_err(|e| format!("connect: {e}"))?;
    conn.send(&get(&format!("/__kit/stream_gated?id={id}")));
    let deadline = Instant::now() + Duration::from_secs(2);
    while find(&conn.buf, b"first-chunk;").is_none() && Instant::now() < deadline {
        if !conn.fill(deadline) && conn.eof {
            break;
        }
    }
    let first = find(&conn.buf, b"first-chunk;").is_some();
    lane.state.open_gate(&id);
    if !first {
        return Err(format!(
            "the first chunk did not arrive within 2 s while the app waited to produce the second (got {:?})",
            latin1(&conn.buf[..conn.buf.len().min(80)])
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while find(&conn.buf, b"second-chunk;").is_none() && Instant::now() < deadline {
        if !conn.fill(deadline) && conn.eof {
            break;
        }
    }
    if find(&conn.buf, b"second-chunk;").is_none() {
        return Err("the second chunk never arrived".to_owned());
    }
    Ok("first chunk received before the app produced the second".to_owned())
}

fn close_check(lane: &Lane<'_>, kind: &str) -> Result<(String, Option<Response>), String> {
    let id = lane.uid("body3-");
    let r = one(lane, &get(&format!("/__kit/close?id={id}&kind={kind}")), false).ok().map(|(r, _)| r);
    let n = lane.state.wait_closes(&id, Duration::from_secs(2), Duration::from_millis(100));
    if n != 1 {
        return Err(format!("close() called {n} times"));
    }
    Ok(("close() called once".to_owned(), r))
}

fn body3_normal(lane: &Lane<'_>) -> Result<String, String> {
    let (d, r) = close_check(lane, "normal")?;
    match r {
        Some(r) if r.status == 200 && r.body == b"c1;c2;c3;" => Ok(d),
        Some(r) => Err(format!("{d}, but the response was {} {:?}", r.describe(), latin1(&r.body))),
        None => Err(format!("{d}, but there was no response")),
    }
}

fn body3_error(lane: &Lane<'_>) -> Result<String, String> {
    close_check(lane, "error").map(|(d, _)| d)
}

fn body3_disconnect(lane: &Lane<'_>) -> Result<String, String> {
    let id = lane.uid("body3d-");
    let mut conn = Conn::connect(lane.addr).map_err(|e| format!("connect: {e}"))?;
    conn.send(&get(&format!("/__kit/close?id={id}&kind=endless")));
    let deadline = Instant::now() + Duration::from_secs(2);
    while conn.buf.len() < 32 * 1024 && Instant::now() < deadline {
        if !conn.fill(deadline) && conn.eof {
            break;
        }
    }
    let got = conn.buf.len();
    drop(conn);
    if got < 32 * 1024 {
        return Err(format!("only {got} bytes of the endless stream arrived in 2 s"));
    }
    let t = Instant::now();
    let n = lane.state.wait_closes(&id, Duration::from_secs(3), Duration::from_millis(100));
    if n != 1 {
        return Err(format!("close() called {n} times within 3 s of the client leaving"));
    }
    Ok(format!("close() called once, {} ms after the client left", t.elapsed().as_millis()))
}

/// A request whose response must have no body, then a second request on the
/// same connection: no stray bytes in between.
fn no_body_then_next(
    lane: &Lane<'_>,
    method: &str,
    target: &str,
    check: fn(&Response) -> Result<(), String>,
) -> Result<String, String> {
    let mut conn = Conn::connect(lane.addr).map_err(|e| format!("connect: {e}"))?;
    conn.send(&build_request(method, target, &[], b"", "HTTP/1.1"));
    let r = conn.read_response(Duration::from_secs(3), method == "HEAD").ok_or("no response")?;
    check(&r)?;
    conn.drain_for(Duration::from_millis(200));
    if !conn.buf.is_empty() {
        return Err(format!(
            "stray body bytes after the {method} response: {:?}",
            latin1(&conn.buf[..conn.buf.len().min(40)])
        ));
    }
    if conn.eof {
        return Ok("no body bytes; the server closed the connection".to_owned());
    }
    conn.send(&get("/__kit/hello/next"));
    match conn.read_response(Duration::from_secs(3), false) {
        Some(r2) if r2.status == 200 && r2.body == b"hello /__kit/hello/next" => {
            Ok("no body bytes, connection in sync".to_owned())
        }
        Some(r2) => Err(format!("stray bytes: the next response parsed as {}", r2.describe())),
        None if conn.eof && conn.buf.is_empty() => Ok("no body bytes; the server closed the connection".to_owned()),
        None => Err(format!("no second response (stray {:?})", latin1(&conn.buf[..conn.buf.len().min(40)]))),
    }
}

fn status_is(r: &Response, code: u16) -> Result<(), String> {
    if r.status == code {
        Ok(())
    } else {
        Err(format!("response {}", r.describe()))
    }
}

fn body6_head(lane: &Lane<'_>) -> Result<String, String> {
    no_body_then_next(lane, "HEAD", "/__kit/hello/head", |r| status_is(r, 200))
}

fn body6_head_stream(lane: &Lane<'_>) -> Result<String, String> {
    no_body_then_next(lane, "HEAD", "/__kit/stream_status", |r| status_is(r, 200))
}

fn body6_204(lane: &Lane<'_>) -> Result<String, String> {
    no_body_then_next(lane, "GET", "/__kit/status?code=204&body=1", |r| {
        status_is(r, 204)?;
        if let Some(te) = r.header("transfer-encoding") {
            return Err(format!("204 with Transfer-Encoding: {te}"));
        }
        if let Some(cl) = r.header("content-length") {
            return Err(format!("204 with Content-Length: {cl}"));
        }
        Ok(())
    })
}

fn body6_304(lane: &Lane<'_>) -> Result<String, String> {
    no_body_then_next(lane, "GET", "/__kit/status?code=304&body=1", |r| {
        status_is(r, 304)?;
        if let Some(te) = r.header("transfer-encoding") {
            return Err(format!("304 with Transfer-Encoding: {te}"));
        }
        Ok(())
    })
}

// ------------------------------------------------------------------ Content-Length

fn cl1_truncated(lane: &Lane<'_>) -> Result<String, String> {
    let mut conn = Conn::connect(lane.addr).map_err(|e| format!("connect: {e}"))?;
    conn.send(&build_request("GET", "/__kit/cl?declared=5&actual=10", &[], b"", "HTTP/1.1"));
    let r = conn.read_response(Duration::from_secs(3), false).ok_or("no response")?;
    if r.status != 200 || r.body != b"xxxxx" {
        return Err(format!("response {} body {:?}", r.describe(), latin1(&r.body)));
    }
    conn.drain_for(Duration::from_millis(200));
    if !conn.buf.is_empty() {
        return Err(format!("bytes beyond Content-Length: {:?}", latin1(&conn.buf[..conn.buf.len().min(40)])));
    }
    if conn.eof {
        return Ok("5 bytes sent, connection closed".to_owned());
    }
    conn.send(&get("/__kit/hello/after-cl1"));
    match conn.read_response(Duration::from_secs(3), false) {
        Some(r2) if r2.status == 200 && r2.body == b"hello /__kit/hello/after-cl1" => {
            Ok("5 bytes sent, connection in sync".to_owned())
        }
        Some(r2) => Err(format!("bytes beyond Content-Length: the next response parsed as {}", r2.describe())),
        None if conn.eof && conn.buf.is_empty() => Ok("5 bytes sent, connection closed".to_owned()),
        None => Err(format!("no second response (stray {:?})", latin1(&conn.buf[..conn.buf.len().min(40)]))),
    }
}

fn cl2_short(lane: &Lane<'_>) -> Result<String, String> {
    let mut conn = Conn::connect(lane.addr).map_err(|e| format!("connect: {e}"))?;
    conn.send(&build_request("GET", "/__kit/cl?declared=10&actual=5", &[], b"", "HTTP/1.1"));
    let r = conn.read_response(Duration::from_secs(3), false);
    match r {
        None if conn.eof => Ok("no response, connection closed".to_owned()),
        None => Err("no response, the connection hangs".to_owned()),
        Some(r) if r.complete => Err(format!("the response looked complete: {}", r.describe())),
        Some(r) => {
            if conn.eof || conn.wait_closed(CLOSE_WAIT) {
                Ok(format!("connection closed after {} of 10 bytes", r.body.len()))
            } else {
                Err(format!("connection left open after {} of 10 bytes (the client hangs)", r.body.len()))
            }
        }
    }
}

fn cl3_chunked(lane: &Lane<'_>) -> Result<String, String> {
    let raw = build_request("GET", "/__kit/nocl?n=5", &[], b"", "HTTP/1.1");
    let (r, _) = one(lane, &raw, false)?;
    if r.status != 200 || r.body != b"chunk0;chunk1;chunk2;chunk3;chunk4;" || !r.complete {
        return Err(format!("response {} body {:?}", r.describe(), latin1(&r.body)));
    }
    if r.framing != Framing::Chunked {
        return Err(format!("framing {:?}, want chunked", r.framing));
    }
    Ok("chunked, complete".to_owned())
}

fn cl3_close_delimited(lane: &Lane<'_>) -> Result<String, String> {
    let raw = build_request("GET", "/__kit/nocl?n=3", &[], b"", "HTTP/1.0");
    let (r, mut conn) = one(lane, &raw, false)?;
    if r.status != 200 || r.body != b"chunk0;chunk1;chunk2;" {
        return Err(format!("response {} body {:?}", r.describe(), latin1(&r.body)));
    }
    if r.framing != Framing::Close || !r.complete {
        return Err(format!("framing {:?} (complete {}), want close-delimited", r.framing, r.complete));
    }
    if !(conn.eof || conn.wait_closed(CLOSE_WAIT)) {
        return Err("connection left open".to_owned());
    }
    Ok("close-delimited, complete".to_owned())
}

// ------------------------------------------------------------------ file bodies

fn fw6_file(lane: &Lane<'_>) -> Result<String, String> {
    let (r, _) = one(lane, &get("/__kit/file?size=300000&offset=1000"), false)?;
    let want = &pattern(300_000)[1000..];
    if r.status != 200 || !r.complete || r.body != want {
        return Err(format!("response {} (want the {} bytes after offset 1000)", r.describe(), want.len()));
    }
    Ok(format!("{} bytes from offset 1000, complete", want.len()))
}

fn fw6_file_cut(lane: &Lane<'_>) -> Result<String, String> {
    let mut conn = Conn::connect(lane.addr).map_err(|e| format!("connect: {e}"))?;
    conn.send(&build_request("GET", "/__kit/file?size=100000&cl=1000", &[], b"", "HTTP/1.1"));
    let r = conn.read_response(Duration::from_secs(3), false).ok_or("no response")?;
    if r.status != 200 || r.body != pattern(1000) {
        return Err(format!("response {} (want the first 1000 bytes)", r.describe()));
    }
    conn.drain_for(Duration::from_millis(200));
    if !conn.buf.is_empty() {
        return Err(format!("{} bytes beyond Content-Length", conn.buf.len()));
    }
    if conn.eof {
        return Ok("1000 bytes, connection closed".to_owned());
    }
    conn.send(&get("/__kit/hello/after-fw6"));
    match conn.read_response(Duration::from_secs(3), false) {
        Some(r2) if r2.status == 200 && r2.body == b"hello /__kit/hello/after-fw6" => {
            Ok("1000 bytes, connection in sync".to_owned())
        }
        Some(r2) => Err(format!("bytes beyond Content-Length: the next response parsed as {}", r2.describe())),
        None if conn.eof && conn.buf.is_empty() => Ok("1000 bytes, connection closed".to_owned()),
        None => Err("no second response".to_owned()),
    }
}

// ------------------------------------------------------------------ errors

fn exc2(lane: &Lane<'_>, route: &str) -> Result<String, String> {
    let (r, _) = one(lane, &get(route), false)?;
    if r.status != 500 || !r.complete {
        return Err(format!("response {}", r.describe()));
    }
    if r.body != b"Internal Server Error\n" || !r.header("content-type").is_some_and(|t| t.starts_with("text/plain")) {
        return Err(format!(
            "500 with body {:?} and Content-Type {:?}, want text/plain \"Internal Server Error\\n\"",
            latin1(&r.body),
            r.header("content-type")
        ));
    }
    if !lane.sync() {
        return Err("500, but the server did not serve the next request".to_owned());
    }
    Ok("500, next request served".to_owned())
}

fn exc2_error(lane: &Lane<'_>) -> Result<String, String> {
    exc2(lane, "/__kit/error_before")
}

fn exc2_panic(lane: &Lane<'_>) -> Result<String, String> {
    exc2(lane, "/__kit/panic_before")
}

fn exc3_abort(lane: &Lane<'_>) -> Result<String, String> {
    let mut conn = Conn::connect(lane.addr).map_err(|e| format!("connect: {e}"))?;
    conn.send(&build_request("GET", "/__kit/error_after", &[], b"", "HTTP/1.1"));
    match conn.read_response(Duration::from_secs(3), false) {
        None if conn.eof => Ok("no response, connection closed".to_owned()),
        None => Err("no response, the connection hangs".to_owned()),
        Some(r) if r.complete => Err(format!("the client got a complete-looking response: {}", r.describe())),
        Some(r) => {
            if conn.eof || conn.wait_closed(CLOSE_WAIT) {
                Ok(format!("{} head, {} body bytes, then the connection was closed", r.status, r.body.len()))
            } else {
                Err("the response stopped but the connection was left open".to_owned())
            }
        }
    }
}

// ------------------------------------------------------------------ connections

fn conn_keepalive(lane: &Lane<'_>) -> Result<String, String> {
    let mut conn = Conn::connect(lane.addr).map_err(|e| format!("connect: {e}"))?;
    for i in 0..3 {
        let path = format!("/__kit/hello/ka{i}");
        if !conn.send(&build_request("GET", &path, &[], b"", "HTTP/1.1")) {
            return Err(format!("send failed on request {}", i + 1));
        }
        let r = conn
            .read_response(Duration::from_secs(3), false)
            .ok_or_else(|| format!("no response to request {} (closed: {})", i + 1, conn.eof))?;
        if r.status != 200 || r.body != format!("hello {path}").as_bytes() {
            return Err(format!("request {}: {}", i + 1, r.describe()));
        }
        if r.says_close() {
            return Err(format!("Connection: close on request {}", i + 1));
        }
    }
    Ok("3 requests on one connection".to_owned())
}

fn conn_http10_close(lane: &Lane<'_>) -> Result<String, String> {
    let (r, mut conn) = one(lane, b"GET /__kit/hello/h10 HTTP/1.0\r\n\r\n", false)?;
    if r.status != 200 || r.body != b"hello /__kit/hello/h10" {
        return Err(format!("response {}", r.describe()));
    }
    if conn.eof || conn.wait_closed(CLOSE_WAIT) {
        Ok("closed after the response".to_owned())
    } else {
        Err("connection left open for HTTP/1.0 without keep-alive".to_owned())
    }
}

fn conn_close(lane: &Lane<'_>) -> Result<String, String> {
    let (r, mut conn) = one(lane, &get("/__kit/hello/c"), false)?;
    if r.status != 200 {
        return Err(format!("response {}", r.describe()));
    }
    if conn.eof || conn.wait_closed(CLOSE_WAIT) {
        Ok("closed after the response".to_owned())
    } else {
        Err("the server did not close after Connection: close".to_owned())
    }
}

fn conn_close_pipelined(lane: &Lane<'_>) -> Result<String, String> {
    let mut raw = get("/__kit/hello/close-first");
    raw.extend_from_slice(&build_request("GET", "/__kit/hello/close-second", &[], b"", "HTTP/1.1"));
    let mark = lane.state.mark();
    let (resps, state, _) =
        exchange(lane.addr, &raw, 2, Duration::from_secs(3), false, None).map_err(|e| format!("connect: {e}"))?;
    lane.sync();
    let second_called = lane.state.calls_since(mark).iter().any(|c| c.path == b"/__kit/hello/close-second");
    let first = resps.first().ok_or_else(|| format!("no response to the first request (connection {state:?})"))?;
    if first.status != 200 || first.body != b"hello /__kit/hello/close-first" {
        return Err(format!("first response {}", first.describe()));
    }
    if resps.len() > 1 || second_called {
        return Err("the request after Connection: close was processed".to_owned());
    }
    if state != State::Closed {
        return Err(format!("connection not closed after the response (connection {state:?})"));
    }
    Ok("first answered, connection closed, second never reached the app".to_owned())
}

fn conn_pipeline(lane: &Lane<'_>) -> Result<String, String> {
    let paths: Vec<String> = (0..3).map(|i| format!("/__kit/hello/p{i}")).collect();
    let raw: Vec<u8> = paths.iter().flat_map(|p| build_request("GET", p, &[], b"", "HTTP/1.1")).collect();
    let (resps, state, _) = exchange(lane.addr, &raw, 3, TIMEOUT, false, None).map_err(|e| format!("connect: {e}"))?;
    let got: Vec<(u16, String)> = resps.iter().map(|r| (r.status, latin1(&r.body))).collect();
    let want: Vec<(u16, String)> = paths.iter().map(|p| (200, format!("hello {p}"))).collect();
    if got != want {
        return Err(format!("got {got:?} (connection {state:?})"));
    }
    Ok("3 responses in order".to_owned())
}

fn conn_pipeline_post(lane: &Lane<'_>) -> Result<String, String> {
    let body = b"post-body-0123456789";
    let mut raw = build_request("POST", "/__kit/echo/pp1", &[("Content-Length", "20")], body, "HTTP/1.1");
    raw.extend_from_slice(&get("/__kit/hello/pp2"));
    let (resps, state, _) = exchange(lane.addr, &raw, 2, TIMEOUT, false, None).map_err(|e| format!("connect: {e}"))?;
    if resps.len() != 2 {
        return Err(format!("{} responses (connection {state:?})", resps.len()));
    }
    let e = Echo::parse(&resps[0].body).ok_or_else(|| format!("first response: {}", resps[0].describe()))?;
    if e.body != body || resps[1].body != b"hello /__kit/hello/pp2" {
        return Err(format!("bodies {:?} / {:?}", latin1(&e.body), latin1(&resps[1].body)));
    }
    Ok("both answered in order".to_owned())
}

fn conn_unread_body(lane: &Lane<'_>) -> Result<String, String> {
    let smuggled = b"GET /__kit/hello/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut body = smuggled.to_vec();
    body.extend_from_slice(&[b'x'; 100]);
    let len = body.len().to_string();
    let mut raw = build_request("POST", "/__kit/no_read", &[("Content-Length", &len)], &body, "HTTP/1.1");
    raw.extend_from_slice(&get("/__kit/hello/next"));
    let mark = lane.state.mark();
    let (resps, state, _) = exchange(lane.addr, &raw, 2, TIMEOUT, false, None).map_err(|e| format!("connect: {e}"))?;
    lane.sync();
    if lane.state.calls_since(mark).iter().any(|c| find(&c.path, b"smuggled").is_some()) {
        return Err("the unread request body was parsed as a request (smuggling)".to_owned());
    }
    let first = resps.first().ok_or_else(|| format!("no response (connection {state:?})"))?;
    if first.body != b"did-not-read" {
        return Err(format!("first response {}", first.describe()));
    }
    match resps.get(1) {
        Some(r) if r.body == b"hello /__kit/hello/next" => Ok("body skipped, next request served".to_owned()),
        Some(r) => Err(format!("second response {}", r.describe())),
        None if state == State::Closed => {
            Ok("the server closed the connection instead of skipping the body".to_owned())
        }
        None => Err(format!("second response missing (connection {state:?})")),
    }
}

fn conn_no_length(lane: &Lane<'_>) -> Result<String, String> {
    let raw = b"POST /__kit/echo/nolen HTTP/1.1\r\nHost: x\r\n\r\nhello-body-without-length";
    let (resps, state, _) =
        exchange(lane.addr, raw, 1, Duration::from_secs(3), false, None).map_err(|e| format!("connect: {e}"))?;
    let r = resps.first().ok_or_else(|| {
        format!("no response within 3 s (connection {state:?}): the server waits for a body that has no length")
    })?;
    if r.status == 400 || r.status == 411 {
        return Ok(format!("refused with {}", r.status));
    }
    let e = Echo::parse(&r.body).ok_or_else(|| format!("response {}", r.describe()))?;
    if !e.body.is_empty() {
        return Err(format!("the app read {} body bytes although the request has no length", e.body.len()));
    }
    Ok("the app saw an empty body".to_owned())
}

fn conn_trailers(lane: &Lane<'_>) -> Result<String, String> {
    let body = b"hello trailers";
    let mut raw = build_request(
        "POST",
        "/__kit/echo/tr",
        &[("Transfer-Encoding", "chunked"), ("Trailer", "X-Checksum")],
        &chunked(body, &[5], b"X-Checksum: abc\r\nX-Other: 1\r\n"),
        "HTTP/1.1",
    );
    raw.extend_from_slice(&get("/__kit/hello/after-trailers"));
    let (resps, state, _) = exchange(lane.addr, &raw, 2, TIMEOUT, false, None).map_err(|e| format!("connect: {e}"))?;
    let r = resps.first().ok_or_else(|| format!("no response (connection {state:?})"))?;
    let e = Echo::parse(&r.body).ok_or_else(|| format!("response {}", r.describe()))?;
    if e.body != body {
        return Err(format!("body {:?}", latin1(&e.body)));
    }
    match resps.get(1) {
        Some(r2) if r2.status == 200 && r2.body == b"hello /__kit/hello/after-trailers" => {
            Ok("trailers consumed, next request served".to_owned())
        }
        Some(r2) => Err(format!("the request after the trailers: {}", r2.describe())),
        None if state == State::Closed && r.says_close() => {
            Ok("body ok; the server announced Connection: close".to_owned())
        }
        None => Err(format!("no response to the request after the trailers (connection {state:?})")),
    }
}

fn host_missing(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, b"GET /__kit/echo/nohost HTTP/1.1\r\nConnection: close\r\n\r\n", Refusal::Status(&[400]))
}

fn host_missing_http10(lane: &Lane<'_>) -> Result<String, String> {
    let e = echo(lane, b"GET /__kit/echo/h10 HTTP/1.0\r\n\r\n")?;
    path_ok(&e, b"/__kit/echo/h10")?;
    Ok("served".to_owned())
}

fn absolute_form(lane: &Lane<'_>) -> Result<String, String> {
    let host = format!("localhost:{}", lane.addr.port());
    let target = format!("http://{host}/__kit/echo/abs?q=1");
    let e = echo(lane, &req("GET", &target, &[("Host", &host)], b"", "HTTP/1.1"))?;
    path_ok(&e, b"/__kit/echo/abs")?;
    expect_eq("QUERY_STRING", Some(&e.query), b"q=1")?;
    Ok("PATH_INFO /__kit/echo/abs, QUERY_STRING q=1".to_owned())
}

fn slow_head(lane: &Lane<'_>) -> Result<String, String> {
    let addr = lane.addr;
    let stop = AtomicBool::new(false);
    let raw = b"GET /__kit/hello/slow HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    std::thread::scope(|s| {
        let slow = s.spawn(|| -> String {
            let Ok(mut conn) = Conn::connect(addr) else { return "could not connect".to_owned() };
            for (i, b) in raw.iter().enumerate() {
                if stop.load(Ordering::Relaxed) {
                    return format!("slow client stopped after {i} bytes");
                }
                if !conn.send(&[*b]) {
                    return format!("the server closed the slow connection after {i} bytes");
                }
                conn.fill(Instant::now() + Duration::from_millis(200));
                if conn.eof {
                    return format!("the server closed the slow connection after {} bytes", i + 1);
                }
            }
            match conn.read_response(Duration::from_secs(2), false) {
                Some(r) => format!("slow client answered {}", r.status),
                None => "slow client got no response".to_owned(),
            }
        });
        let mut worst = Duration::ZERO;
        let mut fail = None;
        std::thread::sleep(Duration::from_millis(300));
        for i in 0..3 {
            let t = Instant::now();
            let path = format!("/__kit/hello/fast{i}");
            let r = simple_get(addr, &path, Duration::from_secs(2));
            let took = t.elapsed();
            worst = worst.max(took);
            match r {
                Some(r)
                    if r.status == 200
                        && r.body == format!("hello {path}").as_bytes()
                        && took < Duration::from_secs(1) => {}
                Some(r) => {
                    fail = Some(format!("fast request {} took {} ms: {}", i + 1, took.as_millis(), r.describe()));
                    break;
                }
                None => {
                    fail = Some(format!(
                        "fast request {} got no response within 2 s while a client sent its head slowly",
                        i + 1
                    ));
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        stop.store(true, Ordering::Relaxed);
        let slow_outcome = slow.join().unwrap_or_else(|_| "slow client panicked".to_owned());
        match fail {
            Some(f) => Err(format!("{f} ({slow_outcome})")),
            None => Ok(format!("3 fast requests served in at most {} ms ({slow_outcome})", worst.as_millis())),
        }
    })
}

// ------------------------------------------------------------------ malformed requests

const ECHO_LINE: &[u8] = b"POST /__kit/echo/bad HTTP/1.1";

fn bad_cl_conflict(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, &raw_with(ECHO_LINE, b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"), Refusal::Rejected)
}

fn bad_cl_repeated(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, &raw_with(ECHO_LINE, b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"), Refusal::Rejected)
}

fn bad_cl_list(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, &raw_with(ECHO_LINE, b"Content-Length: 5, 5\r\n", b"hello"), Refusal::Rejected)
}

fn bad_cl_te(lane: &Lane<'_>) -> Result<String, String> {
    refused(
        lane,
        &raw_with(ECHO_LINE, b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
        Refusal::Rejected,
    )
}

fn bad_te_not_final(lane: &Lane<'_>) -> Result<String, String> {
    refused(
        lane,
        &raw_with(ECHO_LINE, b"Transfer-Encoding: chunked, gzip\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
        Refusal::Rejected,
    )
}

fn bad_te_unknown(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, &raw_with(ECHO_LINE, b"Transfer-Encoding: bogus\r\n", b"hello"), Refusal::Rejected)
}

fn bad_cl_negative(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, &raw_with(ECHO_LINE, b"Content-Length: -1\r\n", b"hello"), Refusal::Rejected)
}

fn bad_cl_huge(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, &raw_with(ECHO_LINE, b"Content-Length: 99999999999999999999999999\r\n", b"hello"), Refusal::Rejected)
}

fn bad_cl_alpha(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, &raw_with(ECHO_LINE, b"Content-Length: five\r\n", b"hello"), Refusal::Rejected)
}

fn bad_cl_plus(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, &raw_with(ECHO_LINE, b"Content-Length: +5\r\n", b"hello"), Refusal::Rejected)
}

fn bad_bare_lf(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, b"GET /__kit/echo/bad HTTP/1.1\nHost: localhost\nConnection: close\n\n", Refusal::Rejected)
}

fn unfolded(e: &Echo) -> Result<String, String> {
    let v = e.get("HTTP_X_FOLD").ok_or("HTTP_X_FOLD missing")?;
    let words: Vec<&[u8]> = v.split(|b| *b == b' ' || *b == b'\t').filter(|w| !w.is_empty()).collect();
    if !v.contains(&b'\r') && !v.contains(&b'\n') && words == [b"one".as_slice(), b"two".as_slice()] {
        Ok(format!("obs-fold replaced by SP: {:?}", latin1(v)))
    } else {
        Err(format!("HTTP_X_FOLD={:?}", latin1(v)))
    }
}

fn bad_obs_fold(lane: &Lane<'_>) -> Result<String, String> {
    refused(
        lane,
        &raw_with(b"GET /__kit/echo/bad HTTP/1.1", b"X-Fold: one\r\n two\r\n", b""),
        Refusal::OrAccepted(unfolded),
    )
}

fn bad_space_before_colon(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, &raw_with(b"GET /__kit/echo/bad HTTP/1.1", b"X-Foo : bar\r\n", b""), Refusal::Rejected)
}

fn bad_no_colon(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, &raw_with(b"GET /__kit/echo/bad HTTP/1.1", b"X-Foo bar\r\n", b""), Refusal::Rejected)
}

fn nul_replaced(e: &Echo) -> Result<String, String> {
    let v = e.get("HTTP_X_NUL").ok_or("HTTP_X_NUL missing")?;
    if v == b"a b" {
        Ok("NUL replaced by SP".to_owned())
    } else {
        Err(format!("HTTP_X_NUL={:?}", latin1(v)))
    }
}

fn bad_nul_value(lane: &Lane<'_>) -> Result<String, String> {
    refused(
        lane,
        &raw_with(b"GET /__kit/echo/bad HTTP/1.1", b"X-Nul: a\x00b\r\n", b""),
        Refusal::OrAccepted(nul_replaced),
    )
}

fn ctl_absent(e: &Echo) -> Result<String, String> {
    match e.env.iter().find(|(_, v)| v.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f)) {
        Some((k, v)) => Err(format!("{k}={:?} carries a control byte", latin1(v))),
        None => Ok("the control byte did not reach the app".to_owned()),
    }
}

fn bad_ctl_value(lane: &Lane<'_>) -> Result<String, String> {
    refused(
        lane,
        &raw_with(b"GET /__kit/echo/bad HTTP/1.1", b"X-Ctl: a\x01b\x7fc\r\n", b""),
        Refusal::OrAccepted(ctl_absent),
    )
}

fn bad_field_name(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, &raw_with(b"GET /__kit/echo/bad HTTP/1.1", b"X-F(o)o: bar\r\n", b""), Refusal::Rejected)
}

fn chunk_body(lane: &Lane<'_>, body: &[u8]) -> Result<String, String> {
    refused(lane, &raw_with(ECHO_LINE, b"Transfer-Encoding: chunked\r\n", body), Refusal::BodyPhase)
}

fn bad_chunk_hex(lane: &Lane<'_>) -> Result<String, String> {
    chunk_body(lane, b"zz\r\nhello\r\n0\r\n\r\n")
}

fn bad_chunk_negative(lane: &Lane<'_>) -> Result<String, String> {
    chunk_body(lane, b"-5\r\nhello\r\n0\r\n\r\n")
}

fn bad_chunk_huge(lane: &Lane<'_>) -> Result<String, String> {
    chunk_body(lane, b"1ffffffffffffffff5\r\nhello\r\n0\r\n\r\n")
}

fn bad_chunk_no_crlf(lane: &Lane<'_>) -> Result<String, String> {
    chunk_body(lane, b"5\r\nhelloXX0\r\n\r\n")
}

fn bad_long_line(lane: &Lane<'_>) -> Result<String, String> {
    let target = format!("/__kit/echo/{}", "a".repeat(100 * 1024));
    let line = format!("GET {target} HTTP/1.1");
    refused(lane, &raw_with(line.as_bytes(), b"", b""), Refusal::Status(&[414]))
}

fn bad_many_fields(lane: &Lane<'_>) -> Result<String, String> {
    let fields: String = (0..1000).map(|i| format!("X-F{i}: v\r\n")).collect();
    refused(lane, &raw_with(b"GET /__kit/echo/bad HTTP/1.1", fields.as_bytes(), b""), Refusal::Status(&[431]))
}

fn bad_large_field(lane: &Lane<'_>) -> Result<String, String> {
    let field = format!("X-Big: {}\r\n", "b".repeat(100 * 1024));
    refused(lane, &raw_with(b"GET /__kit/echo/bad HTTP/1.1", field.as_bytes(), b""), Refusal::Status(&[431]))
}

fn bad_method(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, &raw_with(b"G@T /__kit/echo/bad HTTP/1.1", b"", b""), Refusal::Rejected)
}

fn bad_leading_space(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, &raw_with(b" GET /__kit/echo/bad HTTP/1.1", b"", b""), Refusal::Rejected)
}

fn bad_target_relative(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, &raw_with(b"GET __kit/echo/bad HTTP/1.1", b"", b""), Refusal::Rejected)
}

fn bad_target_nul(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, &raw_with(b"GET /__kit/echo/a\x00b HTTP/1.1", b"", b""), Refusal::Rejected)
}

fn bad_target_ctl(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, &raw_with(b"GET /__kit/echo/a\x01b HTTP/1.1", b"", b""), Refusal::Rejected)
}

fn bad_request_line_spaces(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, &raw_with(b"GET /__kit/echo/a b HTTP/1.1", b"", b""), Refusal::Rejected)
}

fn bad_version(lane: &Lane<'_>) -> Result<String, String> {
    refused(lane, &raw_with(b"GET /__kit/echo/bad HTTP/1.x", b"", b""), Refusal::Rejected)
}
