//! The adapter in-process, through the spec's test client: every PEP 3333
//! corner a Python app can reach.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use wsgi_python::{LoadOptions, PythonApp};
use wsgi_spec::testing::TestClient;

fn apps_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/apps")
}

fn load(spec: &str) -> PythonApp {
    let opts = LoadOptions { pythonpath: vec![apps_dir()], ..LoadOptions::default() };
    PythonApp::load(spec, &opts).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

fn client(spec: &str) -> TestClient {
    TestClient::from_shared(Arc::new(load(spec)))
}

fn post(uri: &str, body: &'static [u8]) -> http::Request<Bytes> {
    http::Request::post(uri).body(Bytes::from_static(body)).unwrap()
}

#[test]
fn hello_list_gets_content_length() {
    let r = client("pep_apps:hello").get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "Hello, World!\n");
    assert_eq!(r.headers["content-length"], "14");
}

#[test]
fn environ_is_a_dict_of_latin1_native_strings() {
    let req = http::Request::get("/caf%C3%A9?q=%20x")
        .header("X-Latin", http::HeaderValue::from_bytes(b"caf\xe9").unwrap())
        .header("X_Hidden", "no")
        .body(Bytes::new())
        .unwrap();
    let r = client("pep_apps:environ_dump").request(req);
    let text: String = r.body.iter().map(|&b| char::from(b)).collect();
    assert!(text.contains("HTTP_X_LATIN=caf\u{e9}"), "{text}");
    // PATH_INFO bytes are UTF-8 on the wire, decoded as latin-1 (PEP 3333).
    assert!(text.contains("PATH_INFO=/caf\u{c3}\u{a9}"), "{text}");
    assert!(text.contains("QUERY_STRING=q=%20x"), "{text}");
    assert!(!text.contains("HIDDEN"), "header names with _ never reach the app: {text}");
    for key in [
        "wsgi.version:tuple",
        "wsgi.input:Input",
        "wsgi.errors:Errors",
        "wsgi.multithread:bool",
        "wsgi.multiprocess:bool",
        "wsgi.run_once:bool",
        "wsgi.input_terminated:bool",
        "wsgi.file_wrapper:type",
        "wsgi.url_scheme=http",
        "REQUEST_METHOD=GET",
        "SERVER_PROTOCOL=HTTP/1.1",
    ] {
        assert!(text.contains(key), "missing {key}: {text}");
    }
}

/// Request `i` of a mixed sequence: the environ is built from a template
/// the earlier requests shaped (keys they had and this one lacks, values
/// that differ), so every shape follows every other.
fn mixed_request(i: usize) -> http::Request<Bytes> {
    let b = match i % 6 {
        0 => http::Request::get("/").header("Host", "example.com"),
        1 => http::Request::get(format!("/a?x={i}")).header("X-A", i.to_string()).header("Cookie", "c=1"),
        2 => http::Request::post("/form")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Content-Length", "3"),
        3 => http::Request::get("/").header("X-A", "same").header("Host", "example.com:8080"),
        4 => http::Request::head("/h").version(http::Version::HTTP_10),
        _ => http::Request::get("/caf%C3%A9").header("X-Latin", http::HeaderValue::from_bytes(b"caf\xe9").unwrap()),
    };
    // Requests 20..50 carry many other headers: none fits the template.
    let b = if (20..50).contains(&i) {
        (0..8).fold(b, |b, j| b.header(format!("X-H{j}"), format!("{}", i * j)))
    } else {
        b
    };
    let body = if i % 6 == 2 { Bytes::from(format!("n={}", i % 10)) } else { Bytes::new() };
    b.body(body).unwrap()
}

#[test]
fn env_14_each_environ_holds_its_own_request_whatever_came_before() {
    let warm = client("pep_apps:environ_and_input");
    for i in 0..80 {
        let got = warm.request(mixed_request(i));
        // A new app has no template: what the environ must be.
        let want = client("pep_apps:environ_and_input").request(mixed_request(i));
        assert_eq!(want.status, 200);
        assert_eq!(
            String::from_utf8_lossy(&got.body),
            String::from_utf8_lossy(&want.body),
            "request {i} after {} others",
            i
        );
    }
}

#[test]
fn input_methods_read_the_body() {
    let c = client("pep_apps:echo_input");
    let body: &'static [u8] = b"a\nbb\nccc";
    assert_eq!(c.request(post("/", body)).body, body);
    assert_eq!(c.request(post("/?readline", body)).body, "[a\n][bb\n][ccc]");
    assert_eq!(c.request(post("/?readlines", body)).body, "a\n|bb\n|ccc");
    assert_eq!(c.request(post("/?iter", body)).body, "a\n|bb\n|ccc");
    assert_eq!(c.request(post("/?read10", b"0123456789abcdefghijXYZ")).body, "0123456789abcdefghijXYZ");
    assert_eq!(c.request(post("/", b"")).body, "");
}

#[test]
fn close_is_called_on_normal_end_and_on_error() {
    let c = client("pep_apps:generator_with_close");
    let count = client("pep_apps:closed_count");
    let before: u32 = String::from_utf8_lossy(&count.get("/").body).parse().unwrap();
    assert_eq!(c.get("/").body, "one two three");
    let r = client("pep_apps:fail_mid_body").get("/");
    assert!(r.aborted, "an error after the head aborts");
    assert_eq!(r.body, "partial");
    let after: u32 = String::from_utf8_lossy(&count.get("/").body).parse().unwrap();
    assert_eq!(after, before + 2);
}

#[test]
fn lazy_start_response_and_custom_reason() {
    let r = client("pep_apps:lazy").get("/");
    assert_eq!(r.status, 201);
    assert_eq!(r.reason, "Created Lazily");
    assert_eq!(r.body, "lazy body");
}

#[test]
fn write_data_comes_first() {
    assert_eq!(client("pep_apps:writer").get("/").body, "written returned");
}

#[test]
fn exc_info_before_the_head_replaces_it() {
    let r = client("pep_apps:exc_before").get("/");
    assert_eq!(r.status, 500);
    assert_eq!(r.reason, "Oops");
    assert_eq!(r.body, "error page");
}

#[test]
fn exc_info_after_the_head_reraises_and_aborts() {
    let c = client("pep_apps:exc_after");
    let r = c.get("/");
    assert!(r.aborted);
    assert_eq!(r.status, 200);
    let log = c.errors().join("\n");
    assert!(log.contains("ValueError: late boom"), "{log}");
    assert!(log.contains("Traceback"), "{log}");
}

#[test]
fn an_exception_before_the_head_is_a_500_with_a_traceback() {
    let c = client("pep_apps:raises");
    let r = c.get("/");
    assert_eq!(r.status, 500);
    let log = c.errors().join("\n");
    assert!(log.contains("Traceback") && log.contains("KeyError: 'no such thing'"), "{log}");
}

#[test]
fn start_response_checks_its_arguments() {
    let c = client("pep_apps:bad_header");
    assert_eq!(c.get("/").status, 500);
    assert!(c.errors().join("\n").contains("SR-7"), "{:?}", c.errors());
    let c = client("pep_apps:bad_status");
    assert_eq!(c.get("/").status, 500);
    assert!(c.errors().join("\n").contains("status must be str"), "{:?}", c.errors());
    let c = client("pep_apps:returns_str");
    assert_eq!(c.get("/").status, 500);
    assert!(c.errors().join("\n").contains("returned a str"), "{:?}", c.errors());
}

#[test]
fn sr_10_kept_start_response_and_write_stay_bound_to_their_request() {
    let c = client("pep_apps:kept_callables");
    assert_eq!(c.get("/").body, "kept");
    for _ in 0..3 {
        // Each later request gets its own objects; the kept ones still
        // belong to the first request, which is over.
        let body = String::from_utf8(c.get("/").body.to_vec()).unwrap();
        assert!(body.starts_with("fresh "), "{body}");
        assert!(!body.contains("-ok"), "a kept callable acted on a later request: {body}");
    }
    // Requests whose objects are reused (a list body, a lazy generator)
    // still see their own start_response.
    let c = client("pep_apps:lazy_generator");
    for path in ["/a", "/b", "/c"] {
        assert_eq!(c.get(path).body, path);
    }
    let c = client("pep_apps:hello");
    for _ in 0..3 {
        assert_eq!(c.get("/").body, "Hello, World!\n");
    }
}

#[test]
fn wsgi_errors_goes_to_the_error_log() {
    let c = client("pep_apps:errors_stream");
    assert_eq!(c.get("/").body, "ok");
    assert_eq!(c.errors(), ["line one", "line two"]);
}

#[test]
fn file_wrapper_sends_the_file_from_its_position() {
    let r = client("pep_apps:file_wrapper").get("/");
    let file = std::fs::read(apps_dir().join("pep_apps.py")).unwrap();
    assert_eq!(r.body, &file[10..]);
    assert_eq!(r.headers["content-length"], (file.len() - 10).to_string());
}

#[test]
fn loading_supports_factories_and_dotted_names() {
    assert_eq!(client(r#"pep_apps:factory("Hi", punct="?")"#).get("/").body, "Hi?");
    assert_eq!(client("pep_apps:Nested.Inner.app").get("/").body, "nested");
}

#[test]
fn loading_errors_name_the_culprit_on_one_line() {
    let opts = LoadOptions { pythonpath: vec![apps_dir()], ..LoadOptions::default() };
    let cases = [
        ("no_such_module_xyz:app", "no_such_module_xyz"),
        ("pep_apps:missing", "'missing'"),
        ("pep_apps:not_callable", "not callable"),
        ("pep_apps:factory(open)", "literals"),
    ];
    for (spec, needle) in cases {
        let err = PythonApp::load(spec, &opts).unwrap_err().to_string();
        assert!(err.contains(needle), "{spec}: {err}");
        assert!(!err.contains('\n'), "{spec}: one line: {err}");
    }
}
