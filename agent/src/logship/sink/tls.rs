//! rustls client settings for the TLS sinks: the CA file the receiver must chain to (default:
//! the system bundle), an optional client certificate and key for mutual TLS. Key material is
//! read from files and never logged.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::logship::sink::SinkError;
use crate::logship::spec::SinkSpec;

/// The CA bundle used when a TLS sink names none (Debian's ca-certificates).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

fn tls_err(path: &Path, what: &str, problem: impl std::fmt::Display) -> SinkError {
    SinkError::TlsConfig {
        path: path.to_path_buf(),
        problem: format!("{what}: {problem}"),
    }
}

/// Build the client config for `spec` (ALPN protocols as given: `http/1.1` for HTTP sinks).
pub fn client_config(spec: &SinkSpec, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, SinkError> {
    let ca: PathBuf = spec.ca.clone().unwrap_or_else(|| SYSTEM_CA_BUNDLE.into());
    let mut roots = RootCertStore::empty();
    let certs =
        CertificateDer::pem_file_iter(&ca).map_err(|e| tls_err(&ca, "reading ca file", e))?;
    for c in certs {
        let c = c.map_err(|e| tls_err(&ca, "reading ca file", e))?;
        roots
            .add(c)
            .map_err(|e| tls_err(&ca, "ca certificate", e))?;
    }
    if roots.is_empty() {
        return Err(tls_err(&ca, "ca file", "no certificates in it"));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&ca, "tls versions", e))?
        .with_root_certificates(roots);
    let mut config = match (&spec.client_cert, &spec.client_key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| tls_err(cert, "reading client certificate", e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_err(cert, "reading client certificate", e))?;
            if chain.is_empty() {
                return Err(tls_err(cert, "client certificate", "no certificate in it"));
            }
            // The error text of a key parse names the file only: never the key's bytes.
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|_| tls_err(key, "reading client key", "no usable PEM private key"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls_err(cert, "client certificate and key", e))?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}
