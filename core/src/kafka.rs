//! Connection security shared by the Kafka exporter and the Kafka receiver: the `tls:` and
//! `sasl:` blocks, their checks, and the librdkafka properties they become.

use crate::ConfigIssue;
use crate::config_types::Secret;
use serde::Deserialize;
use std::path::PathBuf;

/// `tls:` block: TLS to the brokers.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTls {
    /// PEM file of the CA(s) that signed the brokers' certificates. Default: the system store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for mutual TLS. Default: none.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`. Required with `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Skip verifying the brokers' certificates and host names (tests only). Default `false`.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// `sasl:` block: SASL authentication.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`. Required.
    pub mechanism: SaslMechanism,
    /// User name. Required.
    pub username: String,
    /// Password; write `${env:KAFKA_PASSWORD}`. Required.
    pub password: Secret,
}

/// SASL mechanisms librdkafka supports without Kerberos.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    /// `PLAIN` (use with TLS only).
    #[serde(rename = "PLAIN")]
    Plain,
    /// `SCRAM-SHA-256`.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// `SCRAM-SHA-512`.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The mechanism's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// Checks a `brokers` list (`host:port` each, at least one): issues keyed `brokers` or
/// `brokers[i]`. Shared by the kafka exporter and receiver.
pub fn check_brokers(brokers: &[String]) -> Vec<ConfigIssue> {
    if brokers.is_empty() {
        return vec![ConfigIssue::new(
            "brokers",
            "at least one broker (host:port) is required",
        )];
    }
    let mut issues = Vec::new();
    for (index, broker) in brokers.iter().enumerate() {
        let key = format!("brokers[{index}]");
        let Some((host, port)) = broker.trim().rsplit_once(':') else {
            issues.push(ConfigIssue::new(
                key,
                format!("{broker:?} is not host:port"),
            ));
            continue;
        };
        if host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .is_empty()
        {
            issues.push(ConfigIssue::new(key, format!("{broker:?} has no host")));
        } else if port.parse::<u16>().map_or(true, |p| p == 0) {
            issues.push(ConfigIssue::new(
                key,
                format!("{broker:?}: port {port:?} is not a number 1-65535"),
            ));
        }
    }
    issues
}

/// Checks the TLS files are readable, naming the key.
pub fn check_tls(tls: &KafkaTls) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    for (key, path) in [
        ("tls.ca_file", &tls.ca_file),
        ("tls.cert_file", &tls.cert_file),
        ("tls.key_file", &tls.key_file),
    ] {
        if let Some(path) = path
            && let Err(e) = std::fs::metadata(path)
        {
            issues.push(ConfigIssue::new(
                key,
                format!("cannot read {}: {e}", path.display()),
            ));
        }
    }
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        issues.push(ConfigIssue::new(
            "tls",
            "cert_file and key_file must be given together",
        ));
    }
    issues
}

/// The librdkafka properties for `security.protocol` and the TLS / SASL settings (the SASL
/// password included: hand them to the client only, never log them).
pub fn security_properties(
    tls: Option<&KafkaTls>,
    sasl: Option<&KafkaSasl>,
) -> Vec<(&'static str, String)> {
    let protocol = match (tls.is_some(), sasl.is_some()) {
        (false, false) => "plaintext",
        (true, false) => "ssl",
        (false, true) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    };
    let mut properties = vec![("security.protocol", protocol.to_string())];
    if let Some(tls) = tls {
        for (key, path) in [
            ("ssl.ca.location", &tls.ca_file),
            ("ssl.certificate.location", &tls.cert_file),
            ("ssl.key.location", &tls.key_file),
        ] {
            if let Some(path) = path {
                properties.push((key, path.display().to_string()));
            }
        }
        if tls.insecure_skip_verify {
            properties.push(("enable.ssl.certificate.verification", "false".into()));
            properties.push(("ssl.endpoint.identification.algorithm", "none".into()));
        }
    }
    if let Some(sasl) = sasl {
        properties.push(("sasl.mechanism", sasl.mechanism.as_str().into()));
        properties.push(("sasl.username", sasl.username.clone()));
        properties.push(("sasl.password", sasl.password.expose().to_string()));
    }
    properties
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_lists_are_checked_entry_by_entry() {
        let keys = |brokers: &[&str]| {
            let brokers: Vec<String> = brokers.iter().map(|b| b.to_string()).collect();
            check_brokers(&brokers)
                .into_iter()
                .map(|issue| issue.key)
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&[]), ["brokers"]);
        assert!(keys(&["kafka-1:9092", "[::1]:9093"]).is_empty());
        assert_eq!(
            keys(&["ok:9092", "no-port", ":9092", "h:0", "h:99999"]),
            ["brokers[1]", "brokers[2]", "brokers[3]", "brokers[4]"]
        );
    }

    #[test]
    fn security_properties_follow_tls_and_sasl() {
        assert_eq!(
            security_properties(None, None),
            vec![("security.protocol", "plaintext".to_string())]
        );
        let tls = KafkaTls {
            ca_file: Some("/ca.pem".into()),
            insecure_skip_verify: true,
            ..Default::default()
        };
        let sasl = KafkaSasl {
            mechanism: SaslMechanism::ScramSha512,
            username: "u".into(),
            password: Secret::new("p"),
        };
        let props = security_properties(Some(&tls), Some(&sasl));
        assert_eq!(props[0], ("security.protocol", "sasl_ssl".to_string()));
        assert!(props.contains(&("ssl.ca.location", "/ca.pem".to_string())));
        assert!(props.contains(&("enable.ssl.certificate.verification", "false".to_string())));
        assert!(props.contains(&("sasl.mechanism", "SCRAM-SHA-512".to_string())));
        let bad = KafkaTls {
            cert_file: Some("/nonexistent/cert.pem".into()),
            ..Default::default()
        };
        let keys: Vec<String> = check_tls(&bad).into_iter().map(|i| i.key).collect();
        assert_eq!(keys, ["tls.cert_file", "tls"]);
    }
}
