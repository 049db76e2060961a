//! The axum router with the mounted spec app, over a real socket: axum's
//! own route, and the spec app seeing the mount prefix as SCRIPT_NAME.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use axum::Router;
use tower::Layer;

/// Serve `app` on 127.0.0.1:0 from a background runtime; its address.
fn start(app: Router) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
        });
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

fn start_example() -> SocketAddr {
    start(example_axum_mount::router(example_axum_mount::spec_service(2).unwrap()))
}

/// One HTTP/1.1 request with `Connection: close`; status and body (the
/// responses here have a Content-Length, so no de-chunking).
fn get(addr: SocketAddr, target: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// The `NAME=value` lines of the echo app.
fn var<'a>(body: &'a str, name: &str) -> &'a str {
    body.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('='))).unwrap()
}

#[test]
fn root_is_served_by_axum() {
    let addr = start_example();
    assert_eq!(get(addr, "/"), (200, "axum here".to_owned()));
}

#[test]
fn mounted_app_sees_prefix_as_script_name() {
    let addr = start_example();
    let (status, body) = get(addr, "/legacy/a/b?x=1");
    assert_eq!(status, 200, "{body}");
    assert_eq!(var(&body, "SCRIPT_NAME"), "/legacy");
    assert_eq!(var(&body, "PATH_INFO"), "/a/b");
    assert_eq!(var(&body, "QUERY_STRING"), "x=1");
    // ConnectInfo<SocketAddr> became the spec's ConnectionInfo.
    assert_eq!(var(&body, "REMOTE_ADDR"), "127.0.0.1");
}

#[test]
fn mount_point_itself_has_empty_path_info() {
    let addr = start_example();
    // `/legacy`: PATH_INFO is empty (PEP 3333: the request names the app's root).
    let (status, body) = get(addr, "/legacy");
    assert_eq!(status, 200);
    assert_eq!(var(&body, "SCRIPT_NAME"), "/legacy");
    assert_eq!(var(&body, "PATH_INFO"), "");
    // `/legacy/`: PATH_INFO is `/`.
    let (status, body) = get(addr, "/legacy/");
    assert_eq!(status, 200);
    assert_eq!(var(&body, "SCRIPT_NAME"), "/legacy");
    assert_eq!(var(&body, "PATH_INFO"), "/");
}

#[test]
fn path_repeating_the_prefix_and_escapes_are_kept() {
    let addr = start_example();
    let (_, body) = get(addr, "/legacy/legacy/x");
    assert_eq!(var(&body, "SCRIPT_NAME"), "/legacy");
    assert_eq!(var(&body, "PATH_INFO"), "/legacy/x");
    let (_, body) = get(addr, "/legacy/a%20b//c");
    assert_eq!(var(&body, "PATH_INFO"), "/a b//c");
    // Only whole segments match: `/legacyx` is not under the mount.
    assert_eq!(get(addr, "/legacyx").0, 404);
}

#[test]
fn nested_routers_and_parameters_give_the_matched_text() {
    let spec = example_axum_mount::spec_service(2).unwrap();
    let mounted = example_axum_mount::script_name_layer().layer(spec);
    let app = Router::new()
        .nest("/v1", Router::new().nest_service("/legacy", mounted.clone()))
        .nest_service("/t/{tenant}", mounted);
    let addr = start(app);
    let (status, body) = get(addr, "/v1/legacy/a?y=2");
    assert_eq!(status, 200, "{body}");
    assert_eq!(var(&body, "SCRIPT_NAME"), "/v1/legacy");
    assert_eq!(var(&body, "PATH_INFO"), "/a");
    assert_eq!(var(&body, "QUERY_STRING"), "y=2");
    let (_, body) = get(addr, "/t/ac%6De/z");
    assert_eq!(var(&body, "SCRIPT_NAME"), "/t/acme");
    assert_eq!(var(&body, "PATH_INFO"), "/z");
}
