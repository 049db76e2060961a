//! Memory bounds, in a test binary of their own so nothing else runs in the
//! process while RSS is measured.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use support::{connect, read_response, start};
use wsgi_spec::{AppError, Body, Environ, StartResponse};

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn a_1_gib_request_body_streams_with_bounded_memory() {
    const TOTAL: u64 = 1 << 30;
    let peak = Arc::new(AtomicU64::new(0));
    let peak2 = Arc::clone(&peak);
    let app = move |mut env: Environ, sr: StartResponse| -> Result<Body, AppError> {
        let mut total = 0u64;
        let mut n = 0u32;
        loop {
            let piece = env.input.read_size(64 * 1024)?;
            if piece.is_empty() {
                break;
            }
            total += piece.len() as u64;
            n += 1;
            if n % 256 == 0 {
                peak2.fetch_max(rss_bytes(), Ordering::Relaxed);
            }
        }
        sr.start(StatusCode::OK, HeaderMap::new())?;
        Ok(Body::full(total.to_string()))
    };
    let srv = start(app, |s| s);
    let before = rss_bytes();
    let mut s = connect(srv.addr);
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(s, "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {TOTAL}\r\n\r\n").unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..(TOTAL >> 20) {
        s.write_all(&chunk).unwrap();
    }
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(String::from_utf8(r.body).unwrap(), TOTAL.to_string());
    let growth = peak.load(Ordering::Relaxed).saturating_sub(before);
    assert!(growth < 64 << 20, "RSS grew by {} MiB", growth >> 20);
}
