//! `endpoint:` of an HTTP exporter, checked in one place: http(s), with a host, and without a
//! query or fragment unless the exporter posts to the URL exactly as given.

use reqwest::Url;

/// A checked `endpoint:` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpEndpoint(Url);

/// Why an `endpoint:` is not usable. The message quotes the URL as written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Not a URL at all.
    #[error("{text:?} is not a URL ({reason}); write e.g. {example}")]
    NotAUrl {
        /// The text as written.
        text: String,
        /// The parser's complaint.
        reason: String,
        /// A URL of the right shape for this exporter.
        example: &'static str,
    },
    /// Not http or https.
    #[error("{0:?} must start with https:// (or http://)")]
    Scheme(String),
    /// No host.
    #[error("{0:?} has no host")]
    NoHost(String),
    /// A base URL with a query or fragment (the exporter appends its API path).
    #[error("{0:?} must not have a query or fragment")]
    Query(String),
}

impl HttpEndpoint {
    /// A base URL the exporter appends its API path to: no query or fragment. `example` shows
    /// the right shape in the error.
    pub fn base(text: &str, example: &'static str) -> Result<HttpEndpoint, EndpointError> {
        let endpoint = HttpEndpoint::exact(text, example)?;
        if endpoint.0.query().is_some() || endpoint.0.fragment().is_some() {
            return Err(EndpointError::Query(text.to_string()));
        }
        Ok(endpoint)
    }

    /// A URL the exporter posts to exactly as given (a query is kept).
    pub fn exact(text: &str, example: &'static str) -> Result<HttpEndpoint, EndpointError> {
        let url = Url::parse(text.trim()).map_err(|e| EndpointError::NotAUrl {
            text: text.to_string(),
            reason: e.to_string(),
            example,
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EndpointError::Scheme(text.to_string()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(EndpointError::NoHost(text.to_string()));
        }
        Ok(HttpEndpoint(url))
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.0
    }

    /// The URL without its trailing `/`, to append a path to.
    pub fn trimmed(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    /// `<endpoint>/<path>` (one `/` between them).
    pub fn join(&self, path: &str) -> String {
        format!("{}/{}", self.trimmed(), path.trim_start_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_check_for_every_endpoint() {
        let ok = HttpEndpoint::base("https://siem.example.com:8088/", "https://x").unwrap();
        assert_eq!(
            ok.join("/services/collector/event"),
            "https://siem.example.com:8088/services/collector/event"
        );
        assert!(matches!(
            HttpEndpoint::base("ftp://x", "https://x"),
            Err(EndpointError::Scheme(_))
        ));
        assert!(matches!(
            HttpEndpoint::base("http://x/?a=1", "https://x"),
            Err(EndpointError::Query(_))
        ));
        assert!(matches!(
            HttpEndpoint::base("not a url", "https://x"),
            Err(EndpointError::NotAUrl { .. })
        ));
        assert!(matches!(
            HttpEndpoint::base("unix:/run/x", "https://x"),
            Err(EndpointError::Scheme(_))
        ));
        let exact =
            HttpEndpoint::exact("https://hooks.example.com/h?token=1", "https://x").unwrap();
        assert_eq!(exact.url().query(), Some("token=1"));
        let error = HttpEndpoint::base("nope", "https://soar.example.com/hooks/siem")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("https://soar.example.com/hooks/siem"),
            "{error}"
        );
    }
}
