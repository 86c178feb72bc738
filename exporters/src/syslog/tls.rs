//! `tls:` of the `syslog` and `qradar` exporters and the rustls client config built from it.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Deserialize;
use siemrelay_core::ConfigIssue;
use std::path::PathBuf;
use std::sync::Arc;

/// `tls:` — used by `transport: tls` (syslog over TLS) and, for `qradar`, `transport: http` with
/// an `https://` endpoint.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogTlsConfig {
    /// Extra CA certificate(s) (PEM) to trust, besides the built-in Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    pub key_file: Option<PathBuf>,
    /// Name to send as SNI and to verify the server certificate against (default: the endpoint's
    /// host). Syslog over TLS only.
    pub server_name: Option<String>,
    /// Accept any server certificate. Insecure: logged loudly at start.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

impl SyslogTlsConfig {
    /// Semantic checks (keys relative to the exporter block).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.cert_file.is_some() != self.key_file.is_some() {
            issues.push(ConfigIssue::new(
                "tls",
                "cert_file and key_file must be given together",
            ));
        }
        for (key, path) in [
            ("tls.ca_file", &self.ca_file),
            ("tls.cert_file", &self.cert_file),
            ("tls.key_file", &self.key_file),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                issues.push(ConfigIssue::new(
                    key,
                    format!("file {} does not exist", path.display()),
                ));
            }
        }
        if let Some(name) = &self.server_name
            && ServerName::try_from(name.as_str()).is_err()
        {
            issues.push(ConfigIssue::new(
                "tls.server_name",
                format!("{name:?} is not a DNS name or IP address"),
            ));
        }
        issues
    }

    /// Whether any TLS key is set.
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some()
            || self.cert_file.is_some()
            || self.key_file.is_some()
            || self.server_name.is_some()
            || self.insecure_skip_verify
    }

    /// The rustls client config (errors name the key and file).
    pub fn client_config(&self, exporter: &str) -> anyhow::Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow::anyhow!("TLS setup failed: {e}"))?;
        let builder = if self.insecure_skip_verify {
            tracing::warn!(
                exporter = %exporter,
                "tls.insecure_skip_verify is on: the SIEM's certificate is NOT checked; anyone on the path can read and alter events"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            if let Some(ca) = &self.ca_file {
                let certs = read_certs(ca, "tls.ca_file")?;
                for cert in certs {
                    roots.add(cert).map_err(|e| {
                        anyhow::anyhow!(
                            "tls.ca_file {}: unusable CA certificate: {e}",
                            ca.display()
                        )
                    })?;
                }
            }
            builder.with_root_certificates(roots)
        };
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "tls.cert_file")?;
                let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    anyhow::anyhow!("tls.key_file {}: no PEM private key: {e}", key.display())
                })?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    anyhow::anyhow!("tls.cert_file/key_file: unusable certificate and key: {e}")
                })
            }
            _ => Ok(builder.with_no_client_auth()),
        }
    }
}

fn read_certs(path: &PathBuf, key: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow::anyhow!("{key} {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{key} {}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{key} {}: no certificate in the file", path.display());
    }
    Ok(certs)
}

/// The verifier behind `insecure_skip_verify`: any certificate, signatures still checked.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
