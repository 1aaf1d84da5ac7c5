//! Haven's one TLS client configuration, shared by everything that connects out over TLS (list
//! downloads, DNS-over-TLS upstreams, and the proxy's connections to websites it decrypts): rustls with
//! the ring provider, trusting the system's roots plus any extra CA certificates the school names.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// Why the client configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The extra CA file could not be read, or holds no usable certificate.
    #[error("CA file {path}: {message}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// A client configuration trusting the system's roots and the certificates in `extra_ca`.
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(root_certificates(extra_ca)?);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The certificates [`client_config`] trusts: the system's roots that rustls accepts, then the
/// ones in `extra_ca` (for a client that builds its own configuration from roots, as the mail
/// library does).
pub fn root_certificates(
    extra_ca: Option<&Path>,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut certs: Vec<CertificateDer<'static>> = rustls_native_certs::load_native_certs()
        .certs
        .into_iter()
        .filter(|c| rustls::RootCertStore::empty().add(c.clone()).is_ok())
        .collect();
    if let Some(path) = extra_ca {
        let err = |message: String| TlsError::CaFile {
            path: path.display().to_string(),
            message,
        };
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| err(e.to_string()))? {
            let cert = cert.map_err(|e| err(e.to_string()))?;
            rustls::RootCertStore::empty()
                .add(cert.clone())
                .map_err(|e| err(e.to_string()))?;
            certs.push(cert);
            added += 1;
        }
        if added == 0 {
            return Err(err("no certificates in the file".to_owned()));
        }
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let missing = client_config(Some(Path::new("/nonexistent/ca.pem"))).expect_err("missing");
        assert!(
            missing
                .to_string()
                .starts_with("CA file /nonexistent/ca.pem:"),
            "{missing}"
        );
        let empty =
            std::env::temp_dir().join(format!("haven-tls-empty-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let err = client_config(Some(&empty)).expect_err("empty");
        assert!(err.to_string().contains("no certificates"), "{err}");
        let _ = std::fs::remove_file(empty);
        assert!(client_config(None).is_ok());
    }
}
