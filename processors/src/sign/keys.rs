//! Signing keys: the `keys:` list shared by the `sign` processor and `siemrelay verify`.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use siemrelay_core::ConfigIssue;
use siemrelay_core::config_types::Secret;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

/// HMAC-SHA256 with its key schedule computed; cloned per event.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// One key of a `keys:` list. The HMAC key is the secret's UTF-8 bytes as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Key id, written into each signature as `kid`.
    pub id: String,
    /// The secret itself (use `${env:NAME}`). Exclusive with `secret_file`.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// A file holding the secret; one trailing newline is ignored. Exclusive with `secret`.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

/// The keys file given to `siemrelay verify --keys FILE`: the same `keys:` list as the `sign`
/// processor, usually with retired keys kept so old events still verify.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    /// The keys, by id.
    pub keys: Vec<KeyConfig>,
}

impl KeysFile {
    /// Reads the secrets and prepares the keys for verification.
    pub fn keyring(&self) -> Result<Keyring, Vec<ConfigIssue>> {
        Keyring::from_keys(&self.keys, "keys")
    }
}

/// Prepared HMAC keys by id. Its `Debug` output lists ids only.
#[derive(Clone, Default)]
pub struct Keyring {
    keys: HashMap<String, HmacSha256>,
}

impl Keyring {
    /// Reads and prepares `keys`; issues name `<list_key>[i].<field>` and never a secret.
    pub fn from_keys(keys: &[KeyConfig], list_key: &str) -> Result<Keyring, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let mut ring = Keyring::default();
        if keys.is_empty() {
            issues.push(ConfigIssue::new(list_key, "at least one key is required"));
        }
        for (i, key) in keys.iter().enumerate() {
            let at = format!("{list_key}[{i}]");
            if key.id.trim().is_empty() {
                issues.push(ConfigIssue::new(format!("{at}.id"), "key id is empty"));
                continue;
            }
            if ring.keys.contains_key(&key.id) {
                issues.push(ConfigIssue::new(
                    format!("{at}.id"),
                    format!("key id {:?} is listed twice", key.id),
                ));
                continue;
            }
            match key.secret_bytes(&at) {
                Ok(secret) => match HmacSha256::new_from_slice(&secret) {
                    Ok(mac) => {
                        ring.keys.insert(key.id.clone(), mac);
                    }
                    Err(_) => issues.push(ConfigIssue::new(at, "key cannot be used for HMAC")),
                },
                Err(issue) => issues.push(issue),
            }
        }
        if issues.is_empty() {
            Ok(ring)
        } else {
            Err(issues)
        }
    }

    /// The prepared MAC for key `id`.
    pub(crate) fn get(&self, id: &str) -> Option<&HmacSha256> {
        self.keys.get(id)
    }

    /// Whether a key with this id is present.
    pub fn contains(&self, id: &str) -> bool {
        self.keys.contains_key(id)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Keyring").field("ids", &ids).finish()
    }
}

impl KeyConfig {
    /// The secret's bytes, from `secret` or read from `secret_file`.
    fn secret_bytes(&self, at: &str) -> Result<Vec<u8>, ConfigIssue> {
        match (&self.secret, &self.secret_file) {
            (Some(secret), None) => Ok(secret.expose().as_bytes().to_vec()),
            (None, Some(path)) => {
                let key = format!("{at}.secret_file");
                let mut bytes = std::fs::read(path).map_err(|e| {
                    ConfigIssue::new(&key, format!("cannot read {}: {e}", path.display()))
                })?;
                if bytes.last() == Some(&b'\n') {
                    bytes.pop();
                    if bytes.last() == Some(&b'\r') {
                        bytes.pop();
                    }
                }
                if bytes.is_empty() {
                    return Err(ConfigIssue::new(
                        key,
                        format!("{} holds an empty secret", path.display()),
                    ));
                }
                Ok(bytes)
            }
            (Some(_), Some(_)) => Err(ConfigIssue::new(
                format!("{at}.secret_file"),
                "give either `secret` or `secret_file`, not both",
            )),
            (None, None) => Err(ConfigIssue::new(
                format!("{at}.secret"),
                "key needs `secret` or `secret_file`",
            )),
        }
    }
}
