//! The plugin's `config:` block.

use serde::Deserialize;
use siemrelay_plugin_sdk::Issue;
use std::collections::BTreeMap;
use ureq::http::{HeaderName, HeaderValue, Uri};

/// `config:` of the GELF plugin.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GelfConfig {
    /// The GELF HTTP input, e.g. `http://graylog.example.com:12201/gelf` (required).
    pub endpoint: String,
    /// Send the whole batch in one request, newline-separated (needs "Enable Bulk Receiving" on
    /// the input; default false: one message per request over keep-alive connections).
    #[serde(default)]
    pub bulk: bool,
    /// The GELF `host` of events with neither `source` nor a `host.name` resource attribute
    /// (default `siemrelay`).
    #[serde(default = "default_host")]
    pub default_host: String,
    /// Extra request headers, e.g. the input's authorization header (default none).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Timeout of one HTTP request in milliseconds (default 10000). Keep it below siemrelay's
    /// `sending.timeout`.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_host() -> String {
    "siemrelay".into()
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl GelfConfig {
    /// Checks the endpoint, the headers and the timeout.
    pub fn validate(&self) -> Vec<Issue> {
        let mut issues = Vec::new();
        match self.endpoint.parse::<Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https"))
                    && uri.host().is_some_and(|h| !h.is_empty()) => {}
            Ok(_) => issues.push(Issue::new(
                "endpoint",
                format!("{:?} must be an http:// or https:// URL with a host, e.g. http://graylog:12201/gelf", self.endpoint),
            )),
            Err(e) => issues.push(Issue::new("endpoint", format!("{:?} is not a URL: {e}", self.endpoint))),
        }
        if self.default_host.trim().is_empty() {
            issues.push(Issue::new("default_host", "must not be empty"));
        }
        for (name, value) in &self.headers {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                issues.push(Issue::new(
                    format!("headers.{name}"),
                    "is not a valid HTTP header name",
                ));
            } else if HeaderValue::from_str(value).is_err() {
                // Never echo the value: it is often a secret.
                issues.push(Issue::new(
                    format!("headers.{name}"),
                    "the value is not a valid HTTP header value",
                ));
            }
        }
        if self.timeout_ms == 0 {
            issues.push(Issue::new("timeout_ms", "must be at least 1"));
        }
        issues
    }
}

#[cfg(test)]
mod tests {
    use crate::Gelf;
    use siemrelay_plugin_sdk::check_config;

    fn keys(json: &str) -> Vec<String> {
        match check_config::<Gelf>(json.as_bytes()) {
            Ok(_) => Vec::new(),
            Err(issues) => issues.into_iter().map(|i| i.key).collect(),
        }
    }

    #[test]
    fn issues_name_their_keys() {
        assert!(keys(r#"{"endpoint":"http://graylog:12201/gelf"}"#).is_empty());
        assert_eq!(keys(r#"{"endpoint":"graylog:12201"}"#), ["endpoint"]);
        assert_eq!(keys(r#"{}"#), [""]);
        assert_eq!(
            keys(r#"{"endpoint":"http://g/gelf","bulk":"yes"}"#),
            ["bulk"]
        );
        assert_eq!(
            keys(r#"{"endpoint":"http://g/gelf","colour":1}"#),
            ["colour"]
        );
        assert_eq!(
            keys(r#"{"endpoint":"http://g/gelf","headers":{"bad name":"x"},"timeout_ms":0}"#),
            ["headers.bad name", "timeout_ms"]
        );
    }
}
