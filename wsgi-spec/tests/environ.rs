//! The environ (SPEC.md ENV-*, UNI-3, EXT-1, FW-1): `Environ::from_request`
//! and the PEP 3333 map view (`get`, `cgi_vars`).

mod common;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;

use bytes::Bytes;
use common::{environ, environ_for, server_info};
use http::{HeaderValue, Method, Request, Version};
use wsgi_spec::ext::{ConnectionInfo, EarlyHints, FileWrapper, InputTerminated, ScriptName};
use wsgi_spec::testing::TestClient;
use wsgi_spec::{
    http_key, percent_decode, protocol_str, AppError, Body, CgiKey, CoreKey, Environ, Input, Scheme, ServerInfo,
    StartResponse, CORE_CGI_KEYS, WSGI_VERSION,
};

fn get<'a>(env: &'a Environ, key: &str) -> Option<Cow<'a, [u8]>> {
    env.get(key)
}

fn val(env: &Environ, key: &str) -> Vec<u8> {
    env.get(key).unwrap_or_else(|| panic!("{key} missing")).into_owned()
}

fn build(req: http::request::Builder) -> Environ {
    environ_for(req.body(()).expect("valid request"), Input::empty())
}

fn with_conn(req: http::request::Builder, conn: ConnectionInfo) -> Environ {
    let (mut parts, ()) = req.body(()).expect("valid request").into_parts();
    parts.extensions.insert(conn);
    Environ::from_request(parts, Input::empty(), &ServerInfo::default())
}

fn mounted(script_name: &'static str, uri: &str) -> Environ {
    let (mut parts, ()) = Request::get(uri).body(()).expect("valid").into_parts();
    parts.extensions.insert(ScriptName(Bytes::from_static(script_name.as_bytes())));
    Environ::from_request(parts, Input::empty(), &ServerInfo::default())
}

#[test]
fn env_1_app_owns_and_may_modify_its_environ() {
    let mut env = build(Request::get("/a").header("X-Foo", "1"));
    env.headers.insert("x-foo", HeaderValue::from_static("2"));
    env.vars.insert("myapp.user".into(), "alice".into());
    env.path_info = Bytes::from_static(b"/rewritten");
    env.method = Method::POST;
    assert_eq!(val(&env, "HTTP_X_FOO"), b"2");
    assert_eq!(val(&env, "myapp.user"), b"alice");
    assert_eq!(val(&env, "PATH_INFO"), b"/rewritten");
    assert_eq!(val(&env, "REQUEST_METHOD"), b"POST");
}

#[test]
fn env_2_request_method_any_token() {
    for m in ["GET", "HEAD", "POST", "PURGE", "PROPFIND"] {
        let env = build(Request::builder().method(m).uri("/"));
        assert_eq!(val(&env, "REQUEST_METHOD"), m.as_bytes());
    }
}

#[test]
fn env_3_script_name_from_extension_is_stripped_from_path() {
    let env = mounted("/app", "/app/x/y");
    assert_eq!(&env.script_name[..], b"/app");
    assert_eq!(&env.path_info[..], b"/x/y");
    assert_eq!(val(&env, "SCRIPT_NAME"), b"/app");
    let env = mounted("/app", "/app");
    assert_eq!(&env.path_info[..], b"", "the app root without a trailing slash");
    let env = mounted("/app", "/app/");
    assert_eq!(&env.path_info[..], b"/");
}

#[test]
fn env_3_script_name_only_at_a_segment_boundary() {
    let env = mounted("/app", "/apple/pie");
    assert_eq!(&env.path_info[..], b"/apple/pie", "/app is not a prefix of /apple");
}

#[test]
fn env_3_script_name_is_compared_decoded() {
    let env = mounted("/my app", "/my%20app/x");
    assert_eq!(&env.script_name[..], b"/my app");
    assert_eq!(&env.path_info[..], b"/x");
}

#[test]
fn env_3_without_extension_script_name_is_empty() {
    let env = build(Request::get("/x"));
    assert_eq!(val(&env, "SCRIPT_NAME"), b"");
    assert_eq!(val(&env, "PATH_INFO"), b"/x");
}

#[test]
fn env_4_path_info_is_percent_decoded_bytes() {
    let env = build(Request::get("/a%20b/c%2Fd/%7e%7E"));
    assert_eq!(val(&env, "PATH_INFO"), b"/a b/c/d/~~", "%2F decodes to / (as in CGI)");
    assert_eq!(val(&env, "RAW_URI"), b"/a%20b/c%2Fd/%7e%7E", "RAW_URI keeps it");
    let env = build(Request::get("/%FF%00x"));
    assert_eq!(val(&env, "PATH_INFO"), b"/\xff\x00x", "bytes, not UTF-8");
}

#[test]
fn env_4_malformed_escapes_stay_as_they_are() {
    assert_eq!(percent_decode(b"/%zz/%4/%"), Bytes::from_static(b"/%zz/%4/%"));
    assert_eq!(percent_decode(b"/%4g%41"), Bytes::from_static(b"/%4gA"));
    assert_eq!(percent_decode(b"%%41"), Bytes::from_static(b"%A"));
    assert_eq!(percent_decode(b"/%41"), Bytes::from_static(b"/A"));
    assert_eq!(percent_decode(b"plain"), Bytes::from_static(b"plain"));
    let env = build(Request::get("/100%25/%zz"));
    assert_eq!(val(&env, "PATH_INFO"), b"/100%/%zz");
}

#[test]
fn env_4_options_asterisk() {
    let env = build(Request::builder().method(Method::OPTIONS).uri("*"));
    assert_eq!(val(&env, "PATH_INFO"), b"*");
    assert_eq!(val(&env, "RAW_URI"), b"*");
}

#[test]
fn env_5_query_string_is_raw_and_always_present() {
    let env = build(Request::get("/p?a=%20b&c=d+e&&x"));
    assert_eq!(val(&env, "QUERY_STRING"), b"a=%20b&c=d+e&&x", "not decoded");
    let env = build(Request::get("/p"));
    assert_eq!(val(&env, "QUERY_STRING"), b"");
    let env = build(Request::get("/p?"));
    assert_eq!(val(&env, "QUERY_STRING"), b"");
}

#[test]
fn env_6_content_type_only_when_sent() {
    let env = build(Request::post("/").header("Content-Type", "text/plain"));
    assert_eq!(val(&env, "CONTENT_TYPE"), b"text/plain");
    assert_eq!(env.content_type().map(HeaderValue::as_bytes), Some(&b"text/plain"[..]));
    let env = build(Request::post("/"));
    assert!(get(&env, "CONTENT_TYPE").is_none());
    assert!(env.content_type().is_none());
}

#[test]
fn env_7_content_length_only_when_sent() {
    let env = build(Request::post("/").header("Content-Length", "12"));
    assert_eq!(val(&env, "CONTENT_LENGTH"), b"12");
    let env = build(Request::post("/"));
    assert!(get(&env, "CONTENT_LENGTH").is_none());
}

#[test]
fn env_8_server_name_and_port_from_host() {
    let cases: [(&str, bool, &[u8], &[u8]); 7] = [
        ("example.com:8080", false, b"example.com", b"8080"),
        ("example.com", false, b"example.com", b"80"),
        ("example.com", true, b"example.com", b"443"),
        ("example.com:", false, b"example.com", b"80"),
        ("[::1]:8443", true, b"[::1]", b"8443"),
        ("[2001:db8::7]", false, b"[2001:db8::7]", b"80"),
        ("10.1.2.3:81", false, b"10.1.2.3", b"81"),
    ];
    for (host, secure, name, port) in cases {
        let conn = ConnectionInfo { secure, ..ConnectionInfo::default() };
        let env = with_conn(Request::get("/").header("Host", host), conn);
        assert_eq!(val(&env, "SERVER_NAME"), name, "Host: {host}");
        assert_eq!(val(&env, "SERVER_PORT"), port, "Host: {host}");
        assert_eq!(val(&env, "HTTP_HOST"), host.as_bytes());
    }
}

#[test]
fn env_8_absolute_form_target_names_the_host() {
    let env = build(Request::get("http://example.org:8081/x?q"));
    assert_eq!(val(&env, "SERVER_NAME"), b"example.org");
    assert_eq!(val(&env, "SERVER_PORT"), b"8081");
    assert_eq!(val(&env, "HTTP_HOST"), b"example.org:8081");
    assert_eq!(val(&env, "PATH_INFO"), b"/x");
    assert_eq!(val(&env, "QUERY_STRING"), b"q");
    assert_eq!(val(&env, "RAW_URI"), b"http://example.org:8081/x?q");
    let env = build(Request::get("http://[::1]/").header("Host", "ignored.example"));
    assert_eq!(val(&env, "SERVER_NAME"), b"[::1]", "the target wins over Host");
    assert_eq!(val(&env, "SERVER_PORT"), b"80");
    assert_eq!(val(&env, "HTTP_HOST"), b"[::1]");
    let env = build(Request::get("http://user:pw@example.org/"));
    assert_eq!(val(&env, "HTTP_HOST"), b"example.org", "no userinfo");
    assert_eq!(val(&env, "SERVER_NAME"), b"example.org");
}

#[test]
fn env_8_falls_back_to_the_local_address() {
    let local: SocketAddr = ([10, 0, 0, 1], 8000).into();
    let env = with_conn(Request::get("/"), ConnectionInfo { local: Some(local), ..ConnectionInfo::default() });
    assert_eq!(val(&env, "SERVER_NAME"), b"10.0.0.1");
    assert_eq!(val(&env, "SERVER_PORT"), b"8000");
    assert!(get(&env, "HTTP_HOST").is_none());
    let local: SocketAddr = "[::1]:9000".parse().expect("addr");
    let env = with_conn(Request::get("/"), ConnectionInfo { local: Some(local), ..ConnectionInfo::default() });
    assert_eq!(val(&env, "SERVER_NAME"), b"[::1]", "bracketed like a Host");
    assert_eq!(val(&env, "SERVER_PORT"), b"9000");
    let env = with_conn(
        Request::get("/").header("Host", "example.com:abc"),
        ConnectionInfo { local: Some(([10, 0, 0, 1], 8000).into()), ..ConnectionInfo::default() },
    );
    assert_eq!(val(&env, "SERVER_NAME"), b"10.0.0.1", "a bad port is not trusted");
    assert_eq!(val(&env, "SERVER_PORT"), b"8000");
    let env = with_conn(Request::get("/"), ConnectionInfo::default());
    assert_eq!(val(&env, "SERVER_NAME"), b"localhost");
    assert_eq!(val(&env, "SERVER_PORT"), b"80");
    assert!(!env.server_name.is_empty());
}

#[test]
fn env_9_server_protocol() {
    for (v, s) in [(Version::HTTP_10, "HTTP/1.0"), (Version::HTTP_11, "HTTP/1.1"), (Version::HTTP_2, "HTTP/2")] {
        let env = environ(Method::GET, "/", v);
        assert_eq!(val(&env, "SERVER_PROTOCOL"), s.as_bytes());
        assert_eq!(env.protocol_str(), s);
    }
    assert_eq!(protocol_str(Version::HTTP_09), "HTTP/0.9");
    assert_eq!(protocol_str(Version::HTTP_3), "HTTP/3");
}

#[test]
fn env_10_headers_become_http_keys() {
    let env =
        build(Request::get("/").header("X-Foo", "1").header("User-Agent", "curl/8").header("Accept-Encoding", "gzip"));
    assert_eq!(val(&env, "HTTP_X_FOO"), b"1");
    assert_eq!(val(&env, "HTTP_USER_AGENT"), b"curl/8");
    assert_eq!(val(&env, "HTTP_ACCEPT_ENCODING"), b"gzip");
    assert!(get(&env, "HTTP_X_BAR").is_none(), "absent header, absent key");
    assert_eq!(http_key(&http::header::ACCEPT_ENCODING), "HTTP_ACCEPT_ENCODING");
}

#[test]
fn env_10_repeated_headers_joined_with_comma() {
    let env = build(
        Request::get("/")
            .header("Accept", "text/html")
            .header("Accept", "application/json")
            .header("X-Forwarded-For", "a")
            .header("X-Forwarded-For", "b")
            .header("X-Forwarded-For", "c"),
    );
    assert_eq!(val(&env, "HTTP_ACCEPT"), b"text/html, application/json");
    assert_eq!(val(&env, "HTTP_X_FORWARDED_FOR"), b"a, b, c");
}

#[test]
fn env_10_cookie_joined_with_semicolon() {
    let env = build(Request::get("/").header("Cookie", "a=1").header("Cookie", "b=2"));
    assert_eq!(val(&env, "HTTP_COOKIE"), b"a=1; b=2");
    let env = build(Request::get("/").header("Cookie", "a=1, b"));
    assert_eq!(val(&env, "HTTP_COOKIE"), b"a=1, b", "one field is left alone");
}

#[test]
fn env_10_header_names_with_underscore_are_dropped() {
    let env =
        build(Request::get("/").header("X_Foo", "spoofed").header("X-Foo", "real").header("Client_IP", "1.2.3.4"));
    assert_eq!(val(&env, "HTTP_X_FOO"), b"real");
    assert!(env.headers.get("x_foo").is_none());
    assert!(env.headers.get("client_ip").is_none());
    assert!(get(&env, "HTTP_CLIENT_IP").is_none());
    let keys: Vec<_> = env.cgi_vars().into_iter().map(|(k, _)| k.into_owned()).collect();
    assert_eq!(keys.iter().filter(|k| *k == "HTTP_X_FOO").count(), 1);
    assert!(!keys.iter().any(|k| k == "HTTP_CLIENT_IP"));
}

#[test]
fn env_10_underscore_names_unreachable_even_when_added_later() {
    let mut env = build(Request::get("/"));
    env.headers.insert("x_foo", HeaderValue::from_static("late"));
    assert!(get(&env, "HTTP_X_FOO").is_none());
    assert!(!env.cgi_vars().iter().any(|(k, _)| k == "HTTP_X_FOO"));
}

#[test]
fn env_10_map_keys_are_exact() {
    let env = build(Request::get("/").header("X-Foo", "1"));
    assert!(get(&env, "HTTP_X_FOO").is_some());
    assert!(get(&env, "HTTP_x_foo").is_none(), "keys are upper case");
    assert!(get(&env, "HTTP_X-FOO").is_none(), "keys use _ for -");
    assert!(get(&env, "HTTP_").is_none());
    assert!(get(&env, "http_x_foo").is_none());
}

#[test]
fn env_11_no_http_content_type_or_length() {
    let env = build(Request::post("/").header("Content-Type", "text/plain").header("Content-Length", "3"));
    assert!(get(&env, "HTTP_CONTENT_TYPE").is_none());
    assert!(get(&env, "HTTP_CONTENT_LENGTH").is_none());
    let keys: Vec<_> = env.cgi_vars().into_iter().map(|(k, _)| k.into_owned()).collect();
    assert!(keys.contains(&"CONTENT_TYPE".to_owned()));
    assert!(keys.contains(&"CONTENT_LENGTH".to_owned()));
    assert!(!keys.iter().any(|k| k.starts_with("HTTP_CONTENT_")));
}

#[test]
fn env_12_extra_cgi_variables() {
    let req = Request::get("/a%2Fb?x=1").body(()).expect("valid");
    let (mut parts, ()) = req.into_parts();
    parts.extensions.insert(ConnectionInfo {
        peer: Some("[2001:db8::1]:4444".parse().expect("addr")),
        local: None,
        secure: false,
    });
    let (info, _) = server_info();
    let env = Environ::from_request(parts, Input::empty(), &info);
    assert_eq!(val(&env, "RAW_URI"), b"/a%2Fb?x=1");
    assert_eq!(val(&env, "REMOTE_ADDR"), b"2001:db8::1");
    assert_eq!(val(&env, "REMOTE_PORT"), b"4444");
    assert_eq!(val(&env, "SERVER_SOFTWARE"), b"test-server/1");
    let env = build(Request::get("/"));
    assert_eq!(val(&env, "REMOTE_ADDR"), b"192.0.2.7");
    assert_eq!(val(&env, "REMOTE_PORT"), b"50000");
}

#[test]
fn env_13_map_view_keys_are_the_documented_ones() {
    let mut env = build(Request::post("/?q").header("Host", "h").header("X-A", "1").header("Content-Type", "a/b"));
    env.vars.insert("myapp.key".into(), "v".into());
    let documented = [
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
        "SERVER_SOFTWARE",
        "wsgi.url_scheme",
    ];
    for (k, _) in env.cgi_vars() {
        assert!(
            documented.contains(&&*k) || k.starts_with("HTTP_") || env.vars.contains_key(&*k),
            "undocumented key {k}"
        );
    }
    assert!(get(&env, "NOT_A_KEY").is_none());
}

#[test]
fn env_14_missing_keys_are_left_out() {
    let env = with_conn(Request::get("/"), ConnectionInfo::default());
    assert!(get(&env, "REMOTE_ADDR").is_none());
    assert!(get(&env, "REMOTE_PORT").is_none());
    assert!(get(&env, "CONTENT_TYPE").is_none());
    let keys: Vec<_> = env.cgi_vars().into_iter().map(|(k, _)| k.into_owned()).collect();
    for absent in ["REMOTE_ADDR", "REMOTE_PORT", "CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_HOST"] {
        assert!(!keys.contains(&absent.to_owned()), "{absent} listed");
    }
    assert!(
        env.cgi_vars().iter().all(|(k, v)| !v.is_empty() || ["SCRIPT_NAME", "QUERY_STRING"].contains(&&**k)),
        "no key is set to an empty value in place of leaving it out"
    );
}

#[test]
fn env_14_cgi_vars_order() {
    let (mut parts, ()) = Request::post("/app/x?q=1")
        .header("Host", "example.com")
        .header("X-B", "2")
        .header("Content-Type", "text/plain")
        .header("X-A", "1")
        .body(())
        .expect("valid")
        .into_parts();
    parts.extensions.insert(ScriptName(Bytes::from_static(b"/app")));
    parts.extensions.insert(ConnectionInfo { peer: Some(([127, 0, 0, 1], 5000).into()), local: None, secure: true });
    let info = ServerInfo {
        software: "s/1".into(),
        vars: BTreeMap::from([("zz.deploy".to_owned(), "1".to_owned())]),
        ..ServerInfo::default()
    };
    let env = Environ::from_request(parts, Input::empty(), &info);
    let got: Vec<(String, Vec<u8>)> =
        env.cgi_vars().into_iter().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let expected: Vec<(&str, &[u8])> = vec![
        ("REQUEST_METHOD", b"POST"),
        ("SCRIPT_NAME", b"/app"),
        ("PATH_INFO", b"/x"),
        ("QUERY_STRING", b"q=1"),
        ("CONTENT_TYPE", b"text/plain"),
        ("SERVER_NAME", b"example.com"),
        ("SERVER_PORT", b"443"),
        ("SERVER_PROTOCOL", b"HTTP/1.1"),
        ("REMOTE_ADDR", b"127.0.0.1"),
        ("REMOTE_PORT", b"5000"),
        ("RAW_URI", b"/app/x?q=1"),
        ("HTTP_HOST", b"example.com"),
        ("HTTP_X_B", b"2"),
        ("HTTP_X_A", b"1"),
        ("wsgi.url_scheme", b"https"),
        ("SERVER_SOFTWARE", b"s/1"),
        ("zz.deploy", b"1"),
    ];
    let expected: Vec<(String, Vec<u8>)> = expected.into_iter().map(|(k, v)| (k.to_owned(), v.to_vec())).collect();
    assert_eq!(got, expected);
}

#[test]
fn env_15_cgi_vars_agree_with_get() {
    let mut env = build(
        Request::get("/p?q")
            .header("Host", "h:1")
            .header("Cookie", "a=1")
            .header("Cookie", "b=2")
            .header("Content-Length", "0"),
    );
    env.vars.insert("wsgi.url_scheme".into(), "ftp".into());
    env.vars.insert("HTTP_SHADOW".into(), "x".into());
    env.vars.insert("PATH_INFO".into(), "/shadow".into());
    let vars = env.cgi_vars();
    let mut seen = std::collections::HashSet::new();
    for (k, v) in &vars {
        assert!(seen.insert(k.clone()), "{k} listed twice");
        assert_eq!(env.get(k).as_deref(), Some(&v[..]), "{k}");
    }
    assert_eq!(val(&env, "wsgi.url_scheme"), b"http", "typed fields win over vars");
    assert_eq!(val(&env, "PATH_INFO"), b"/p");
}

#[test]
fn env_17_wsgi_version() {
    assert_eq!(WSGI_VERSION, (1, 0));
}

#[test]
fn env_18_url_scheme_from_connection() {
    let env = with_conn(Request::get("/"), ConnectionInfo { secure: true, ..ConnectionInfo::default() });
    assert_eq!(env.url_scheme, Scheme::Https);
    assert_eq!(val(&env, "wsgi.url_scheme"), b"https");
    let env = with_conn(Request::get("/"), ConnectionInfo::default());
    assert_eq!(val(&env, "wsgi.url_scheme"), b"http");
    assert_eq!(Scheme::Https.default_port(), 443);
    assert_eq!(Scheme::Http.as_str(), "http");
}

#[test]
fn env_19_input_is_the_request_body() {
    let client = TestClient::new(|mut env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        let mut body = Vec::new();
        env.input.read_to_end(&mut body)?;
        sr.start(http::StatusCode::OK, http::HeaderMap::new())?;
        Ok(Body::full(body))
    });
    let resp = client.request(Request::post("/").body("posted bytes").expect("valid"));
    assert_eq!(resp.body, "posted bytes");
    let chunked = Request::post("/").header("Transfer-Encoding", "chunked").body("no length").expect("valid");
    assert_eq!(client.request(chunked).body, "no length");
}

#[test]
fn env_20_errors_stream_reaches_the_server_log() {
    let (info, sink) = server_info();
    let (parts, ()) = Request::get("/").body(()).expect("valid").into_parts();
    let env = Environ::from_request(parts, Input::empty(), &info);
    env.errors.write("from the app\n");
    assert_eq!(sink.lines(), ["from the app"]);
}

#[test]
fn env_21_22_23_process_model_flags() {
    for (mt, mp, once) in [(true, false, false), (false, true, true)] {
        let info = ServerInfo { multithread: mt, multiprocess: mp, run_once: once, ..ServerInfo::default() };
        let (parts, ()) = Request::get("/").body(()).expect("valid").into_parts();
        let env = Environ::from_request(parts, Input::empty(), &info);
        assert_eq!((env.multithread, env.multiprocess, env.run_once), (mt, mp, once));
    }
}

#[derive(Debug, Clone, PartialEq)]
struct ServerSpecific(u32);

#[test]
fn env_24_request_extensions_are_kept() {
    let (mut parts, ()) = Request::get("/").body(()).expect("valid").into_parts();
    parts.extensions.insert(ServerSpecific(7));
    let conn = ConnectionInfo { peer: Some(([1, 2, 3, 4], 5).into()), local: None, secure: false };
    parts.extensions.insert(conn);
    let env = Environ::from_request(parts, Input::empty(), &ServerInfo::default());
    assert_eq!(env.extensions.get::<ServerSpecific>(), Some(&ServerSpecific(7)));
    assert_eq!(env.extensions.get::<ConnectionInfo>(), Some(&conn));
}

#[test]
fn env_24_a_connection_given_directly_is_used_and_kept() {
    let (parts, ()) = Request::get("/").body(()).expect("valid").into_parts();
    let conn = ConnectionInfo {
        peer: Some(([10, 0, 0, 9], 4242).into()),
        local: Some(([10, 0, 0, 1], 8000).into()),
        secure: true,
    };
    let env = Environ::from_request_on(parts, Input::empty(), &ServerInfo::default(), conn);
    assert_eq!(env.remote_addr, Some([10, 0, 0, 9].into()));
    assert_eq!(env.remote_port, Some(4242));
    assert_eq!(env.url_scheme, wsgi_spec::Scheme::Https);
    assert_eq!((env.server_name.as_str(), env.server_port), ("10.0.0.1", 8000));
    assert_eq!(env.extensions.get::<ConnectionInfo>(), Some(&conn));
    assert_eq!(env.extensions.get::<InputTerminated>(), Some(&InputTerminated));
}

#[test]
fn env_24_extensions_find_every_type_wherever_it_is_held() {
    let mut http_ext = http::Extensions::new();
    http_ext.insert(ServerSpecific(1));
    http_ext.insert(InputTerminated);
    let mut ext = wsgi_spec::ext::Extensions::from(http_ext);
    assert_eq!(ext.len(), 2);
    assert_eq!(ext.get::<InputTerminated>(), Some(&InputTerminated));
    assert!(ext.get::<FileWrapper>().is_none());
    assert_eq!(ext.insert(FileWrapper), None);
    assert_eq!(ext.insert(FileWrapper), Some(FileWrapper));
    let conn = ConnectionInfo { peer: None, local: None, secure: false };
    ext.insert(conn);
    ext.get_mut::<ConnectionInfo>().expect("held").secure = true;
    ext.get_mut::<ServerSpecific>().expect("in the map").0 = 2;
    assert_eq!(ext.get::<ConnectionInfo>().map(|c| c.secure), Some(true));
    assert_eq!(ext.get::<ServerSpecific>(), Some(&ServerSpecific(2)));
    assert_eq!(ext.len(), 4);
    let mut more = wsgi_spec::ext::Extensions::new();
    more.insert(ServerSpecific(3));
    more.insert(7u8);
    ext.extend(more);
    assert_eq!(ext.get::<ServerSpecific>(), Some(&ServerSpecific(3)));
    assert_eq!(ext.remove::<InputTerminated>(), Some(InputTerminated));
    assert_eq!(ext.remove::<InputTerminated>(), None);
    assert_eq!(ext.remove::<u8>(), Some(7));
    assert_eq!(ext.len(), 3);
    ext.clear();
    assert!(ext.is_empty());
}

#[test]
fn env_25_deployer_variables_in_every_environ() {
    let info = ServerInfo {
        software: "srv/2".into(),
        vars: BTreeMap::from([
            ("myapp.config".to_owned(), "/etc/app.toml".to_owned()),
            ("SERVER_SOFTWARE".to_owned(), "overridden".to_owned()),
        ]),
        ..ServerInfo::default()
    };
    for path in ["/a", "/b"] {
        let (parts, ()) = Request::get(path).body(()).expect("valid").into_parts();
        let env = Environ::from_request(parts, Input::empty(), &info);
        assert_eq!(val(&env, "myapp.config"), b"/etc/app.toml");
        assert_eq!(val(&env, "SERVER_SOFTWARE"), b"overridden", "the deployer wins");
    }
    let info = ServerInfo { software: "srv/2".into(), ..ServerInfo::default() };
    let (parts, ()) = Request::get("/").body(()).expect("valid").into_parts();
    let env = Environ::from_request(parts, Input::empty(), &info);
    assert_eq!(val(&env, "SERVER_SOFTWARE"), b"srv/2");
}

#[test]
fn env_26_script_name_never_slash_path_info_starts_with_slash() {
    let env = mounted("/", "/x");
    assert_eq!(&env.script_name[..], b"", "SCRIPT_NAME is never /");
    assert_eq!(&env.path_info[..], b"/x");
    let env = mounted("/app/", "/app/x");
    assert_eq!(&env.script_name[..], b"/app", "no trailing slash");
    assert_eq!(&env.path_info[..], b"/x");
    let env = build(Request::get("/"));
    assert_eq!((&env.script_name[..], &env.path_info[..]), (&b""[..], &b"/"[..]));
    let env = build(Request::get("http://example.com"));
    assert_eq!(&env.path_info[..], b"/", "an absolute target without a path");
}

#[test]
fn env_27_content_length_parsed_only_when_valid() {
    let env = build(Request::post("/").header("Content-Length", "12"));
    assert_eq!(env.content_length(), Some(12));
    let env = build(Request::post("/").header("Content-Length", "12x"));
    assert_eq!(env.content_length(), None);
    let env = build(Request::post("/").header("Content-Length", "-1"));
    assert_eq!(env.content_length(), None);
    let env = build(Request::post("/"));
    assert_eq!(env.content_length(), None);
}

/// PEP 3333's URL reconstruction, written against the map view.
fn reconstruct(env: &Environ) -> Vec<u8> {
    let scheme = val(env, "wsgi.url_scheme");
    let mut url = scheme.clone();
    url.extend_from_slice(b"://");
    if let Some(host) = env.get("HTTP_HOST") {
        url.extend_from_slice(&host);
    } else {
        url.extend_from_slice(&val(env, "SERVER_NAME"));
        let port = val(env, "SERVER_PORT");
        let default: &[u8] = if scheme == b"https" { b"443" } else { b"80" };
        if port != default {
            url.push(b':');
            url.extend_from_slice(&port);
        }
    }
    let quote = |b: &[u8], out: &mut Vec<u8>| {
        for &c in b {
            if c.is_ascii_alphanumeric() || b"/-_.~".contains(&c) {
                out.push(c);
            } else {
                out.extend_from_slice(format!("%{c:02X}").as_bytes());
            }
        }
    };
    quote(&val(env, "SCRIPT_NAME"), &mut url);
    quote(&val(env, "PATH_INFO"), &mut url);
    let q = val(env, "QUERY_STRING");
    if !q.is_empty() {
        url.push(b'?');
        url.extend_from_slice(&q);
    }
    url
}

#[test]
fn env_29_url_reconstruction_round_trips() {
    let env = build(Request::get("/a%20b?x=1").header("Host", "example.com:8080"));
    assert_eq!(reconstruct(&env), b"http://example.com:8080/a%20b?x=1");
    let env = with_conn(
        Request::get("/p"),
        ConnectionInfo { local: Some(([10, 0, 0, 1], 443).into()), secure: true, peer: None },
    );
    assert_eq!(reconstruct(&env), b"https://10.0.0.1/p");
    let env = with_conn(
        Request::get("/p"),
        ConnectionInfo { local: Some("[::1]:8000".parse().expect("addr")), ..ConnectionInfo::default() },
    );
    assert_eq!(reconstruct(&env), b"http://[::1]:8000/p");
    let env = mounted("/app", "/app/x?y");
    assert_eq!(reconstruct(&env), b"http://localhost/app/x?y");
}

#[test]
fn uni_3_latin1_header_bytes_preserved() {
    let raw: &[u8] = b"caf\xe9 \x80\xff end";
    let value = HeaderValue::from_bytes(raw).expect("obs-text is valid in a field value");
    let env = build(Request::get("/").header("X-Name", value));
    assert_eq!(val(&env, "HTTP_X_NAME"), raw, "byte for byte, never decoded or dropped");
    let listed = env.cgi_vars().into_iter().find(|(k, _)| k == "HTTP_X_NAME").map(|(_, v)| v.into_owned());
    assert_eq!(listed.as_deref(), Some(raw));
}

#[test]
fn ext_1_input_terminated_always_present() {
    let env = build(Request::post("/"));
    assert_eq!(env.extensions.get::<InputTerminated>(), Some(&InputTerminated));
}

#[test]
fn ext_1_early_hints_handle_calls_the_server() {
    let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = sent.clone();
    let hints = EarlyHints::new(move |h: http::HeaderMap| {
        seen.lock().expect("lock").push(h);
        Ok(())
    });
    let (mut parts, ()) = Request::get("/").body(()).expect("valid").into_parts();
    parts.extensions.insert(hints);
    let env = Environ::from_request(parts, Input::empty(), &ServerInfo::default());
    let mut link = http::HeaderMap::new();
    link.insert("link", HeaderValue::from_static("</s.css>; rel=preload"));
    env.extensions.get::<EarlyHints>().expect("the server offered hints").send(link).expect("sent");
    assert_eq!(sent.lock().expect("lock")[0]["link"], "</s.css>; rel=preload");
}

#[test]
fn fw_1_file_wrapper_extension_only_when_the_server_says_so() {
    let (parts, ()) = Request::get("/").body(()).expect("valid").into_parts();
    let env = Environ::from_request(parts, Input::empty(), &ServerInfo::default());
    assert!(env.extensions.get::<FileWrapper>().is_none());
    let info = ServerInfo { file_wrapper: true, ..ServerInfo::default() };
    let (parts, ()) = Request::get("/").body(()).expect("valid").into_parts();
    let env = Environ::from_request(parts, Input::empty(), &info);
    assert_eq!(env.extensions.get::<FileWrapper>(), Some(&FileWrapper));
}

#[test]
fn uni_3_string_variables_are_latin1_encoded() {
    let mut env = build(Request::get("/"));
    env.vars.insert("myapp.name".into(), "José".into());
    assert_eq!(val(&env, "myapp.name"), b"Jos\xe9", "latin-1, not UTF-8");
    let listed = env.cgi_vars().into_iter().find(|(k, _)| k == "myapp.name").map(|(_, v)| v.into_owned());
    assert_eq!(listed.as_deref(), Some(&b"Jos\xe9"[..]));
    env.vars.insert("myapp.price".into(), "5 €".into());
    assert_eq!(val(&env, "myapp.price"), "5 €".as_bytes(), "UNI-1 broken: passed on as UTF-8");
}

#[test]
fn env_12_raw_uri_of_an_http2_request_is_its_path() {
    let env = build(Request::get("https://example.com:8443/x%20y?q=1").version(Version::HTTP_2));
    assert_eq!(val(&env, "RAW_URI"), b"/x%20y?q=1");
    assert_eq!(val(&env, "HTTP_HOST"), b"example.com:8443", ":authority is the host");
    assert_eq!(val(&env, "SERVER_PORT"), b"8443");
    assert_eq!(val(&env, "SERVER_PROTOCOL"), b"HTTP/2");
}

#[test]
fn env_14_for_each_cgi_var_lists_what_cgi_vars_lists() {
    // An IPv6 peer with an IPv4 tail: the longest address spelling.
    let peer: SocketAddr = "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535".parse().expect("addr");
    let local: SocketAddr = "[::1]:8443".parse().expect("addr");
    let conn = ConnectionInfo { peer: Some(peer), local: Some(local), secure: true };
    let mut env = with_conn(
        Request::post("/a%20b?x=1").header("Content-Type", "text/plain").header("X-A", "1").header("x-a", "2"),
        conn,
    );
    env.vars.insert("myapp.name".into(), "caf\u{e9}".into());
    let mut visited = Vec::new();
    env.for_each_cgi_var(|key, value| visited.push((key.to_key().into_owned(), value.to_vec())));
    let listed: Vec<_> = env.cgi_vars().into_iter().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    assert_eq!(visited, listed);
    let find = |k: &str| visited.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_slice());
    assert_eq!(find("REMOTE_ADDR"), Some(peer.ip().to_string().as_bytes()));
    assert_eq!(find("REMOTE_ADDR").map(<[u8]>::len), Some(39), "the longest spelling");
    assert_eq!(find("REMOTE_PORT"), Some(&b"65535"[..]));
    assert_eq!(find("SERVER_PORT"), Some(&b"8443"[..]));
    assert_eq!(find("wsgi.url_scheme"), Some(&b"https"[..]));
    assert_eq!(find("HTTP_X_A"), Some(&b"1, 2"[..]));
    assert_eq!(find("myapp.name"), Some(&b"caf\xe9"[..]), "latin-1 bytes");
}

#[test]
fn env_14_for_each_cgi_var_spells_addresses_and_ports_as_display_does() {
    let peers = ["0.0.0.0:0", "1.2.3.4:5", "10.0.0.10:80", "127.0.0.1:65535", "255.255.255.255:1000", "100.20.3.0:9"];
    let locals = ["[::1]:8000", "[::ffff:10.1.2.3]:10", "192.168.100.200:443", "9.9.9.9:59999"];
    for (peer, local) in peers.iter().zip(locals.iter().cycle()) {
        let peer: SocketAddr = peer.parse().expect("addr");
        let local: SocketAddr = local.parse().expect("addr");
        let conn = ConnectionInfo { peer: Some(peer), local: Some(local), secure: false };
        // No Host: SERVER_NAME and SERVER_PORT come from the local address.
        let env = with_conn(Request::get("/").version(Version::HTTP_10), conn);
        let mut seen = std::collections::HashMap::new();
        env.for_each_cgi_var(|key, value| {
            seen.insert(key.to_key().into_owned(), value.to_vec());
        });
        let want = |k: &str| seen.get(k).map(Vec::as_slice);
        assert_eq!(want("REMOTE_ADDR"), Some(peer.ip().to_string().as_bytes()), "{peer}");
        assert_eq!(want("REMOTE_PORT"), Some(peer.port().to_string().as_bytes()), "{peer}");
        assert_eq!(want("SERVER_PORT"), Some(local.port().to_string().as_bytes()), "{local}");
    }
}

#[test]
fn env_14_core_keys_index_their_names() {
    assert_eq!(CoreKey::ALL.len(), CORE_CGI_KEYS.len() + 1);
    for (i, key) in CoreKey::ALL.iter().enumerate() {
        assert_eq!(key.index(), i);
        assert_eq!(CoreKey::from_key(key.as_str()), Some(*key));
    }
    for (i, name) in CORE_CGI_KEYS.iter().enumerate() {
        assert_eq!(CoreKey::ALL[i].as_str(), *name);
    }
    assert_eq!(CoreKey::UrlScheme.as_str(), "wsgi.url_scheme");
    assert_eq!(CoreKey::from_key("HTTP_HOST"), None);
    assert_eq!(CoreKey::from_key("path_info"), None, "keys are exact");
    let env = build(Request::get("/p?q"));
    let mut core = Vec::new();
    env.for_each_cgi_var(|key, value| {
        if let CgiKey::Core(k) = key {
            assert_eq!(env.core(k).as_deref(), Some(value), "{}", k.as_str());
            assert_eq!(env.get(k.as_str()).as_deref(), Some(value));
            core.push(k);
        }
    });
    assert!(core.contains(&CoreKey::PathInfo) && core.contains(&CoreKey::UrlScheme));
    assert_eq!(env.core(CoreKey::ContentType), None);
}
