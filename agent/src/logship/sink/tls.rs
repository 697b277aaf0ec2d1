//! rustls client settings for the TLS sinks: the CA file the receiver must chain to (default:
//! the system bundle), an optional client certificate and key for mutual TLS. Key material is
//! read from files and never logged. HTTPS sinks, whose connections reqwest makes to the URL's
//! host, check a configured `server-name` through [`NameOverride`].
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

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
/// With `verify_as`, the receiver's certificate must carry that name whatever name the
/// connection was made to (HTTPS sinks with a `server-name`).
pub fn client_config(
    spec: &SinkSpec,
    alpn: &[&[u8]],
    verify_as: Option<&str>,
) -> Result<Arc<ClientConfig>, SinkError> {
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
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&ca, "tls versions", e))?;
    let builder = match verify_as {
        None => builder.with_root_certificates(roots),
        Some(name) => {
            let name = ServerName::try_from(name.to_string())
                .map_err(|e| tls_err(&ca, "server name", format!("{name:?}: {e}")))?;
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| tls_err(&ca, "ca certificates", e))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NameOverride { inner, name }))
        }
    };
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

/// rustls' own verification (chain to the CA, validity, signatures) for a fixed name instead
/// of the one the connection was made to.
#[derive(Debug)]
pub struct NameOverride {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NameOverride {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _connected_to: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
