//! HTTP/2 (h2c prior knowledge) and TLS (HTTP/1.1 and HTTP/2 by ALPN).
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::start;
use wsgi_spec::{AppError, Body, Environ, StartResponse};

fn describe(env: Environ, sr: StartResponse) -> Result<Body, AppError> {
    sr.start(StatusCode::OK, HeaderMap::new())?;
    Ok(Body::full(format!(
        "{} {} {}",
        env.protocol_str(),
        env.url_scheme.as_str(),
        env.get("HTTP_HOST").map(|h| String::from_utf8_lossy(&h).into_owned()).unwrap_or_default()
    )))
}

/// 300 KiB that differ from their neighbours (more than one sendfile token).
fn file_data() -> Vec<u8> {
    (0..300 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()
}

/// Serves [`file_data`] from a file, as a file body.
fn file_app(env: Environ, sr: StartResponse) -> Result<Body, AppError> {
    let _ = env;
    let path = std::env::temp_dir().join(format!("wsgi-protocols-file-{}", std::process::id()));
    if !path.exists() {
        // Whole or not at all, for tests running at once in one process.
        let tmp = path.with_extension(format!("{:?}", std::thread::current().id()).replace(['(', ')'], ""));
        std::fs::write(&tmp, file_data())?;
        std::fs::rename(&tmp, &path)?;
    }
    sr.start(StatusCode::OK, HeaderMap::new())?;
    Ok(Body::file(wsgi_spec::FileBody::new(std::fs::File::open(&path)?)?))
}

/// `GET /` over HTTP/2 with prior knowledge: the response's version and body.
async fn h2c_get(addr: std::net::SocketAddr) -> (Version, Bytes) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("http://{addr}/")).body(Empty::<Bytes>::new()).unwrap();
    let resp = send.send_request(req).await.unwrap();
    let version = resp.version();
    (version, resp.into_body().collect().await.unwrap().to_bytes())
}

/// FW-7: where `sendfile(2)` cannot be used (HTTP/2 here; TLS below), a
/// file body is read and sent like any body, byte for byte.
#[tokio::test]
async fn fw_7_file_body_over_h2c_is_read_and_sent() {
    let srv = start(file_app, |s| s);
    let (version, body) = h2c_get(srv.addr).await;
    assert_eq!(version, Version::HTTP_2);
    assert!(body == file_data(), "{} bytes, not the file", body.len());
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let srv = start(describe, |s| s);
    let (version, body) = h2c_get(srv.addr).await;
    assert_eq!(version, Version::HTTP_2);
    assert_eq!(body, format!("HTTP/2 http {}", srv.addr));
}

#[cfg(feature = "tls")]
mod tls {
    use super::*;
    use std::sync::Arc;

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
    }

    fn client_config(alpn: &[u8]) -> Arc<rustls::ClientConfig> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_file_iter(fixture("test-ca.pem")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(cfg)
    }

    async fn connect(
        addr: std::net::SocketAddr,
        alpn: &[u8],
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(client_config(alpn));
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        connector.connect(name, tcp).await.unwrap()
    }

    fn tls_files() -> wsgi_server::tls::TlsFiles {
        wsgi_server::tls::TlsFiles { cert_file: fixture("test-cert.pem"), key_file: fixture("test-key.pem") }
    }

    #[tokio::test]
    async fn tls_http1_is_served_with_https_scheme() {
        let srv = start(describe, |s| s.tls(tls_files()));
        let stream = connect(srv.addr, b"http/1.1").await;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        let req = Request::get("/").header("host", "localhost").body(Empty::<Bytes>::new()).unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "HTTP/1.1 https localhost");
    }

    #[tokio::test]
    async fn tls_http2_by_alpn_is_served() {
        let srv = start(describe, |s| s.tls(tls_files()));
        let stream = connect(srv.addr, b"h2").await;
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        let req = Request::get("https://localhost/").body(Empty::<Bytes>::new()).unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.version(), Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "HTTP/2 https localhost");
    }

    #[tokio::test]
    async fn fw_7_file_body_over_tls_is_read_and_sent() {
        let srv = start(file_app, |s| s.tls(tls_files()));
        for alpn in [&b"http/1.1"[..], b"h2"] {
            let stream = connect(srv.addr, alpn).await;
            let body = if alpn == b"h2" {
                let (mut send, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
                tokio::spawn(conn);
                let req = Request::get("https://localhost/").body(Empty::<Bytes>::new()).unwrap();
                send.send_request(req).await.unwrap().into_body().collect().await.unwrap().to_bytes()
            } else {
                let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
                tokio::spawn(conn);
                let req = Request::get("/").header("host", "localhost").body(Empty::<Bytes>::new()).unwrap();
                send.send_request(req).await.unwrap().into_body().collect().await.unwrap().to_bytes()
            };
            assert!(body == file_data(), "{}: {} bytes, not the file", String::from_utf8_lossy(alpn), body.len());
        }
    }

    #[test]
    fn a_missing_key_file_is_named_in_the_error() {
        let files = wsgi_server::tls::TlsFiles { cert_file: fixture("test-cert.pem"), key_file: fixture("nope.pem") };
        let err = wsgi_server::Server::new()
            .listener(std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .tls(files)
            .bind_all()
            .unwrap_err();
        assert!(err.to_string().contains("nope.pem"), "{err}");
    }
}
