//! TLS server configuration from PEM files.

use super::config::TlsConfig;
use anyhow::{Context, bail};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Loads the certificate chain and key named by `config` (`key` is its config path, for
/// errors) into an acceptor offering HTTP/2 and HTTP/1.1 over ALPN.
pub fn acceptor(config: &TlsConfig, key: &str) -> anyhow::Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.cert_file)
        .and_then(|certs| certs.collect())
        .with_context(|| {
            format!(
                "{key}.cert_file: cannot read certificates from {}",
                config.cert_file.display()
            )
        })?;
    if certs.is_empty() {
        bail!(
            "{key}.cert_file: {} holds no PEM certificate",
            config.cert_file.display()
        );
    }
    let private_key = PrivateKeyDer::from_pem_file(&config.key_file).with_context(|| {
        format!(
            "{key}.key_file: cannot read a PEM private key from {}",
            config.key_file.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, private_key)
        .with_context(|| {
            format!(
                "{key}: the key in {} does not fit the certificate in {}",
                config.key_file.display(),
                config.cert_file.display()
            )
        })?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}
