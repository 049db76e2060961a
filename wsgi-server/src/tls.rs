//! TLS with rustls: certificate chain and key from PEM files, HTTP/2 and
//! HTTP/1.1 offered by ALPN.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;

/// Where the certificate chain and private key are (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (`--certfile`).
    pub cert_file: PathBuf,
    /// The private key: PKCS#8, PKCS#1 or SEC1 (`--keyfile`).
    pub key_file: PathBuf,
}

/// Build a rustls server configuration from `files`.
///
/// # Errors
/// [`Error::Tls`] naming the file that cannot be read or used.
pub(crate) fn server_config(files: &TlsFiles, http2: bool) -> Result<Arc<rustls::ServerConfig>, Error> {
    let bad = |path: &Path, why: String| Error::Tls(format!("{}: {why}", path.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert_file)
        .map_err(|e| bad(&files.cert_file, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&files.cert_file, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(&files.cert_file, "no certificate found".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file).map_err(|e| bad(&files.key_file, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(&files.key_file, e.to_string()))?;
    config.alpn_protocols = if http2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    Ok(Arc::new(config))
}
