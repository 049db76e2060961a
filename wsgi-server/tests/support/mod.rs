//! Shared helpers: start a server on 127.0.0.1:0 in a thread, raw clients.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

#[cfg(feature = "python")]
pub mod python;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use wsgi_server::{Server, ShutdownHandle};
use wsgi_spec::SharedApp;

pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: ShutdownHandle,
    pub thread: Option<JoinHandle<()>>,
}

impl Running {
    pub fn stop(mut self) {
        self.shutdown.immediate();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.immediate();
    }
}

pub fn start(app: impl wsgi_spec::Application, configure: impl FnOnce(Server) -> Server) -> Running {
    start_shared(Arc::new(app), configure)
}

pub fn start_shared(app: SharedApp, configure: impl FnOnce(Server) -> Server) -> Running {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let bound = configure(Server::new().listener(l)).bind_all().unwrap();
    let shutdown = bound.shutdown_handle();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(bound.serve(app)).unwrap();
    });
    Running { addr, shutdown, thread: Some(thread) }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Send raw bytes and read until the peer closes (or the timeout).
pub fn exchange(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// A parsed HTTP/1 response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Read one response from a stream (Content-Length, chunked, or to EOF).
pub fn read_response(s: &mut impl Read, head_request: bool) -> Option<Resp> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    let _version = parts.next()?;
    let status: u16 = parts.next()?.parse().ok()?;
    let reason = parts.next().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())))
        .collect();
    let mut resp = Resp { status, reason, headers, body: Vec::new() };
    if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
        return Some(resp);
    }
    if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().ok()?;
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).ok()?;
        resp.body = body;
    } else if resp.header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                s.read_exact(&mut byte).ok()?;
                line.push(byte[0]);
            }
            let size = usize::from_str_radix(String::from_utf8_lossy(&line).trim().split(';').next()?, 16).ok()?;
            if size == 0 {
                let mut crlf = [0u8; 2];
                s.read_exact(&mut crlf).ok()?;
                break;
            }
            let mut chunk = vec![0u8; size + 2];
            s.read_exact(&mut chunk).ok()?;
            chunk.truncate(size);
            resp.body.extend_from_slice(&chunk);
        }
    } else {
        s.read_to_end(&mut resp.body).ok()?;
    }
    Some(resp)
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    let mut s = connect(addr);
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
    read_response(&mut s, false).unwrap()
}
