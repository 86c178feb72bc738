//! TLS for siemrelay's listeners (`tls: { cert_file, key_file, client_ca_file }`, the OTel
//! Collector's shape): one loader of rustls server configs, shared by every listener.
//!
//! - TLS 1.2 and 1.3 only (rustls speaks nothing older).
//! - With `client_ca_file`, a client must present a certificate signed by one of its CAs, or the
//!   handshake fails: nothing of the request is read.
//! - [`ReloadableTls::reload`] re-reads the files without dropping the listener: connections
//!   accepted after it use the new certificate, open ones keep theirs. A file that cannot be
//!   read or does not fit keeps the previous config and says why. [`reload_all`] reloads every
//!   listener of the process (what SIGHUP does).

use crate::config_types::ConfigIssue;
use anyhow::{Context, bail};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Longest a TLS handshake may take before the connection is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener's `tls:` block.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsConfig {
    /// PEM file with the server's certificate chain, leaf first (required).
    pub cert_file: PathBuf,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1; required).
    pub key_file: PathBuf,
    /// PEM file with the CA certificates that sign client certificates. When set, every client
    /// must present a certificate signed by one of them (mutual TLS). Default: none.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

impl ListenerTlsConfig {
    /// Checks that every named file exists and is readable (keys relative to the `tls` block).
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let files = [
            ("cert_file", Some(&self.cert_file)),
            ("key_file", Some(&self.key_file)),
            ("client_ca_file", self.client_ca_file.as_ref()),
        ];
        for (key, path) in files {
            if let Some(path) = path
                && let Err(e) = std::fs::File::open(path)
            {
                issues.push(ConfigIssue::new(
                    key,
                    format!("cannot read {}: {e}", path.display()),
                ));
            }
        }
        issues
    }

    /// Reads the files into a rustls server config offering `alpn` (e.g. `h2`, `http/1.1`).
    /// `key` is the block's config path (`service.admin.tls`), used in error messages.
    pub fn server_config(&self, key: &str, alpn: &[&[u8]]) -> anyhow::Result<rustls::ServerConfig> {
        let certs = read_certs(&self.cert_file, &format!("{key}.cert_file"))?;
        let private_key = PrivateKeyDer::from_pem_file(&self.key_file).with_context(|| {
            format!(
                "{key}.key_file: cannot read a PEM private key from {}",
                self.key_file.display()
            )
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("TLS protocol versions")?;
        let builder = match &self.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let cas = read_certs(path, &format!("{key}.client_ca_file"))?;
                let mut roots = rustls::RootCertStore::empty();
                for ca in cas {
                    roots.add(ca).with_context(|| {
                        format!(
                            "{key}.client_ca_file: {} holds a certificate that is not a usable CA",
                            path.display()
                        )
                    })?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .with_context(|| format!("{key}.client_ca_file: {}", path.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut server = builder
            .with_single_cert(certs, private_key)
            .with_context(|| {
                format!(
                    "{key}: the key in {} does not fit the certificate in {}",
                    self.key_file.display(),
                    self.cert_file.display()
                )
            })?;
        server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(server)
    }
}

fn read_certs(path: &Path, key: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect())
        .with_context(|| format!("{key}: cannot read certificates from {}", path.display()))?;
    if certs.is_empty() {
        bail!("{key}: {} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// A listener's TLS settings, re-readable while the listener runs.
pub struct ReloadableTls {
    config: ListenerTlsConfig,
    key: String,
    alpn: Vec<Vec<u8>>,
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for ReloadableTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableTls")
            .field("key", &self.key)
            .field("config", &self.config)
            .finish()
    }
}

type Registry = Mutex<Vec<Weak<ReloadableTls>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Vec::new()))
}

impl ReloadableTls {
    /// Loads `config` (errors name `key`, the block's config path) and registers the result for
    /// [`reload_all`].
    pub fn load(
        config: &ListenerTlsConfig,
        key: &str,
        alpn: &[&[u8]],
    ) -> anyhow::Result<Arc<ReloadableTls>> {
        let server = config.server_config(key, alpn)?;
        let tls = Arc::new(ReloadableTls {
            config: config.clone(),
            key: key.to_string(),
            alpn: alpn.iter().map(|p| p.to_vec()).collect(),
            current: RwLock::new(Arc::new(server)),
        });
        let mut listeners = registry().lock().unwrap_or_else(|p| p.into_inner());
        listeners.retain(|weak| weak.strong_count() > 0);
        listeners.push(Arc::downgrade(&tls));
        Ok(tls)
    }

    /// The config path of the `tls` block (for messages).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// True when clients must present a certificate.
    pub fn requires_client_certificate(&self) -> bool {
        self.config.client_ca_file.is_some()
    }

    /// Re-reads the files; on failure the previous certificate stays in use.
    pub fn reload(&self) -> anyhow::Result<()> {
        let alpn: Vec<&[u8]> = self.alpn.iter().map(Vec::as_slice).collect();
        let server = self.config.server_config(&self.key, &alpn)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(server);
        Ok(())
    }

    /// An acceptor with the current certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }

    /// Runs the server side of the handshake on `stream`, within [`HANDSHAKE_TIMEOUT`].
    pub async fn accept<S>(&self, stream: S) -> std::io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor().accept(stream))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
            })?
    }
}

/// Reloads the TLS files of every listener of this process (SIGHUP); returns each failure with
/// the listener's config path. Successes are logged at INFO, failures at ERROR.
pub fn reload_all() -> Vec<(String, anyhow::Error)> {
    let listeners: Vec<Arc<ReloadableTls>> = {
        let mut listeners = registry().lock().unwrap_or_else(|p| p.into_inner());
        listeners.retain(|weak| weak.strong_count() > 0);
        listeners.iter().filter_map(Weak::upgrade).collect()
    };
    let mut failures = Vec::new();
    for tls in listeners {
        match tls.reload() {
            Ok(()) => tracing::info!(tls = %tls.key, "TLS certificate and key reloaded"),
            Err(e) => {
                tracing::error!(tls = %tls.key, error = %format!("{e:#}"), "TLS reload failed; the previous certificate stays in use");
                failures.push((tls.key.clone(), e));
            }
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named_with_their_key() {
        let config = ListenerTlsConfig {
            cert_file: "/nonexistent/cert.pem".into(),
            key_file: "/nonexistent/key.pem".into(),
            client_ca_file: Some("/nonexistent/ca.pem".into()),
        };
        let keys: Vec<String> = config.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(keys, ["cert_file", "key_file", "client_ca_file"]);
        let error = config
            .server_config("service.admin.tls", &[])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("service.admin.tls.cert_file"), "{error}");
    }

    #[test]
    fn a_failed_reload_keeps_the_certificate_in_use_and_a_good_one_replaces_it() {
        let dir = std::env::temp_dir().join(format!("siemrelay-tls-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str| {
            let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
            std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
            std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        };
        write("first.example");
        let config = ListenerTlsConfig {
            cert_file: dir.join("cert.pem"),
            key_file: dir.join("key.pem"),
            client_ca_file: None,
        };
        let tls = ReloadableTls::load(&config, "service.admin.tls", &[b"http/1.1"]).unwrap();
        let current = |tls: &ReloadableTls| tls.current.read().unwrap().clone();
        let before = current(&tls);
        std::fs::write(dir.join("cert.pem"), "garbage\n").unwrap();
        let error = format!("{:#}", tls.reload().unwrap_err());
        assert!(error.contains("service.admin.tls.cert_file"), "{error}");
        assert!(Arc::ptr_eq(&before, &current(&tls)), "the old config stays");
        write("second.example");
        let failures = reload_all();
        assert!(failures.is_empty(), "{failures:?}");
        assert!(
            !Arc::ptr_eq(&before, &current(&tls)),
            "the new files are in use"
        );
        assert_eq!(current(&tls).alpn_protocols, vec![b"http/1.1".to_vec()]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("siemrelay-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        let config = ListenerTlsConfig {
            cert_file: empty.clone(),
            key_file: empty,
            client_ca_file: None,
        };
        let error = format!("{:#}", config.server_config("x.tls", &[]).unwrap_err());
        assert!(error.contains("holds no PEM certificate"), "{error}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
