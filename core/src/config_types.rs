//! Value types used in component configs: durations (`5s`), sizes (`10MiB`), listen addresses,
//! and secrets that never print.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

/// A duration written like `200ms`, `5s`, `5m`, `24h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(pub std::time::Duration);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

/// Reads a duration from text; a bare number gets the hint to add a unit (`5` → `write 5s`).
struct DurationVisitor;

impl DurationVisitor {
    fn unitless<E: serde::de::Error>(number: impl fmt::Display) -> E {
        E::custom(format!(
            "a duration needs a unit: write {number}s (or {number}ms, {number}m, {number}h)"
        ))
    }
}

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = ConfigDuration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration such as 200ms, 5s, 5m or 24h")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ConfigDuration, E> {
        let trimmed = text.trim();
        if trimmed.parse::<f64>().is_ok() {
            return Err(Self::unitless(trimmed));
        }
        humantime::parse_duration(trimmed)
            .map(ConfigDuration)
            .map_err(|e| {
                E::custom(format!(
                    "invalid duration {text:?} ({e}); write e.g. 200ms, 5s, 5m, 24h"
                ))
            })
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<ConfigDuration, E> {
        Err(Self::unitless(n))
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<ConfigDuration, E> {
        Err(Self::unitless(n))
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<ConfigDuration, E> {
        Err(Self::unitless(n))
    }
}

impl From<ConfigDuration> for std::time::Duration {
    fn from(value: ConfigDuration) -> Self {
        value.0
    }
}

/// A size in bytes written like `512KiB`, `10MiB`, `1GiB`, `1MB` or a plain number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigSize(pub u64);

impl ConfigSize {
    /// The size as `usize`, saturating.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl<'de> Deserialize<'de> for ConfigSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SizeVisitor)
    }
}

/// Reads a size: a whole number of bytes, or text with a unit (`10MiB`).
struct SizeVisitor;

impl SizeVisitor {
    fn invalid<E: serde::de::Error>(shown: impl fmt::Display) -> E {
        E::custom(format!(
            "invalid size {shown}: write a size with a unit, e.g. 512KiB, 10MiB, 1GiB, or a whole number of bytes"
        ))
    }
}

impl serde::de::Visitor<'_> for SizeVisitor {
    type Value = ConfigSize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a size such as 512KiB, 10MiB or 1GiB, or a number of bytes")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ConfigSize, E> {
        let trimmed = text.trim();
        if let Ok(bytes) = trimmed.parse::<u64>() {
            return Ok(ConfigSize(bytes));
        }
        trimmed
            .parse::<bytesize::ByteSize>()
            .map(|s| ConfigSize(s.as_u64()))
            .map_err(|_| Self::invalid(format!("{text:?}")))
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<ConfigSize, E> {
        Ok(ConfigSize(n))
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<ConfigSize, E> {
        u64::try_from(n)
            .map(ConfigSize)
            .map_err(|_| Self::invalid(n))
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<ConfigSize, E> {
        Err(Self::invalid(n))
    }
}

/// A `host:port` to listen on or connect to, checked at load time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    /// The text as configured.
    pub text: String,
    /// The resolved address (first one for names such as `localhost`).
    pub addr: SocketAddr,
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_host_port(&text).map_err(serde::de::Error::custom)
    }
}

/// Why a `host:port` is not usable; the message quotes the text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid endpoint {text:?}: {problem}")]
pub struct HostPortError {
    /// The text as written.
    pub text: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Parses `host:port`, naming what is wrong.
pub fn parse_host_port(text: &str) -> Result<HostPort, HostPortError> {
    let error = |problem: String| HostPortError {
        text: text.to_string(),
        problem,
    };
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| error("expected host:port".into()))?;
    let port: u32 = port
        .parse()
        .map_err(|_| error(format!("port {port:?} is not a number")))?;
    if port > 65535 {
        return Err(error(format!("port {port} is out of range 0-65535")));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addr = (host, port as u16)
        .to_socket_addrs()
        .map_err(|e| error(e.to_string()))?
        .next()
        .ok_or_else(|| error("host does not resolve".into()))?;
    Ok(HostPort {
        text: text.to_string(),
        addr,
    })
}

/// A secret (token, key): deserialized from config, never printed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret's text, for use on the wire only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() {
            return Err(serde::de::Error::custom("secret is empty"));
        }
        crate::scrub::note_secret(&text);
        Ok(Secret(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_sizes_and_endpoints_parse_with_clear_errors() {
        let d: ConfigDuration = serde_json::from_str("\"5s\"").unwrap();
        assert_eq!(d.0.as_secs(), 5);
        assert!(
            serde_json::from_str::<ConfigDuration>("\"5 parsecs\"")
                .unwrap_err()
                .to_string()
                .contains("invalid duration")
        );
        let s: ConfigSize = serde_json::from_str("\"10MiB\"").unwrap();
        assert_eq!(s.0, 10 * 1024 * 1024);
        let s: ConfigSize = serde_json::from_str("\"1GiB\"").unwrap();
        assert_eq!(s.0, 1 << 30);
        assert!(serde_json::from_str::<ConfigSize>("\"ten\"").is_err());
        assert_eq!(serde_json::from_str::<ConfigSize>("4096").unwrap().0, 4096);
        assert_eq!(
            serde_json::from_str::<ConfigSize>("\"4096\"").unwrap().0,
            4096
        );
        for (input, hint) in [
            ("5", "write 5s"),
            ("\"5\"", "write 5s"),
            ("2.5", "write 2.5s"),
        ] {
            let error = serde_json::from_str::<ConfigDuration>(input)
                .unwrap_err()
                .to_string();
            assert!(error.contains(hint), "{input}: {error}");
        }
        for input in ["10.5", "-3", "\"ten\"", "true"] {
            let error = serde_json::from_str::<ConfigSize>(input)
                .unwrap_err()
                .to_string();
            assert!(error.contains("10MiB"), "{input}: {error}");
        }
        assert_eq!(parse_host_port("127.0.0.1:8088").unwrap().addr.port(), 8088);
        assert!(
            parse_host_port("127.0.0.1:70000")
                .unwrap_err()
                .to_string()
                .contains("out of range")
        );
        assert!(
            parse_host_port("127.0.0.1")
                .unwrap_err()
                .to_string()
                .contains("host:port")
        );
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}

/// A problem found while validating one component's config, with the key path inside that
/// component (`include.attributes.user_email.regex`). The loader prefixes the component's place
/// in the file (`processors.filter/security-only.`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigIssue {
    /// Dotted key path relative to the component's config block ("" for the block itself).
    pub key: String,
    /// What is wrong, never containing a secret value.
    pub message: String,
}

impl ConfigIssue {
    /// A new issue at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> ConfigIssue {
        ConfigIssue {
            key: key.into(),
            message: message.into(),
        }
    }
}
