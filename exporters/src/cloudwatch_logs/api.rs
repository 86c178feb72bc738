//! One signed AWS JSON 1.1 call to CloudWatch Logs, and what its reply means.

use crate::delivery::http::error_chain;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use std::time::{Duration, SystemTime};

/// `Content-Type` of AWS JSON 1.1.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// `X-Amz-Target` prefix of the CloudWatch Logs API.
pub const TARGET_PREFIX: &str = "Logs_20140328.";

/// An AWS error reply: `{"__type":"<Code>","message":".."}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsError {
    /// The error code without its namespace (`ThrottlingException`).
    pub code: String,
    /// The message, if any.
    pub message: String,
}

/// The reply to one call.
#[derive(Debug)]
pub struct ApiReply {
    /// HTTP status (`None` when the request failed before a reply).
    pub status: Option<u16>,
    /// The reply body, or the transport error.
    pub text: String,
    /// The parsed reply body (success) or `None`.
    pub body: Option<serde_json::Value>,
    /// The AWS error, when the status is not 2xx.
    pub error: Option<AwsError>,
    /// `Retry-After` / `x-amz-retry-after`, when given.
    pub retry_after: Option<Duration>,
}

impl ApiReply {
    /// True for 2xx.
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// The error code, or "" when there is none.
    pub fn code(&self) -> &str {
        self.error.as_ref().map_or("", |e| e.code.as_str())
    }

    /// `HTTP 400 ThrottlingException: Rate exceeded` or the transport error.
    pub fn describe(&self) -> String {
        match (self.status, &self.error) {
            (Some(status), Some(error)) if error.message.is_empty() => {
                format!("HTTP {status} {}", error.code)
            }
            (Some(status), Some(error)) => {
                format!("HTTP {status} {}: {}", error.code, error.message)
            }
            (Some(status), None) => format!("HTTP {status}: {}", self.text),
            (None, _) => self.text.clone(),
        }
    }
}

/// Signs and sends CloudWatch Logs calls.
pub struct Api {
    client: reqwest::Client,
    url: String,
    region: String,
}

impl Api {
    /// Calls go to `url` (ending in `/`) in `region`.
    pub fn new(client: reqwest::Client, url: String, region: &str) -> Api {
        Api {
            client,
            url,
            region: region.to_string(),
        }
    }

    /// The API URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls `operation` (`PutLogEvents`) with a JSON body, signed with `credentials`.
    pub async fn call(
        &self,
        credentials: &Credentials,
        operation: &str,
        body: bytes::Bytes,
    ) -> ApiReply {
        let failed = |text: String| ApiReply {
            status: None,
            text,
            body: None,
            error: None,
            retry_after: None,
        };
        let target = format!("{TARGET_PREFIX}{operation}");
        let headers = match self.sign(credentials, &target, &body) {
            Ok(headers) => headers,
            Err(e) => return failed(format!("cannot sign the request: {e}")),
        };
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header("x-amz-target", &target);
        for (name, value, sensitive) in headers {
            let Ok(mut value) = reqwest::header::HeaderValue::from_str(&value) else {
                return failed(format!(
                    "the signature header {name} is not a valid header value"
                ));
            };
            value.set_sensitive(sensitive);
            request = request.header(name, value);
        }
        let response = match request.body(body).send().await {
            Ok(response) => response,
            Err(e) => return failed(format!("request failed: {}", error_chain(&e))),
        };
        let status = response.status().as_u16();
        let retry_after = ["retry-after", "x-amz-retry-after"]
            .iter()
            .find_map(|name| response.headers().get(*name))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|v| {
                // x-amz-retry-after is in milliseconds; Retry-After in seconds.
                if response.headers().contains_key("x-amz-retry-after") {
                    Duration::from_millis(v)
                } else {
                    Duration::from_secs(v)
                }
            });
        let header_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let raw = match response.bytes().await {
            Ok(raw) => raw,
            Err(e) => {
                let mut reply = failed(format!("reading the reply failed: {}", error_chain(&e)));
                reply.status = Some(status);
                return reply;
            }
        };
        let text = String::from_utf8_lossy(&raw[..raw.len().min(512)]).into_owned();
        let parsed: Option<serde_json::Value> = serde_json::from_slice(&raw).ok();
        let error = if (200..300).contains(&status) {
            None
        } else {
            Some(parse_error(parsed.as_ref(), header_type.as_deref()))
        };
        ApiReply {
            status: Some(status),
            text,
            body: parsed,
            error,
            retry_after,
        }
    }

    /// SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`) for one request.
    fn sign(
        &self,
        credentials: &Credentials,
        target: &str,
        body: &[u8],
    ) -> Result<Vec<(&'static str, String, bool)>, String> {
        let identity: Identity = credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("logs")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let signable = SignableRequest::new(
            "POST",
            self.url.as_str(),
            [("content-type", CONTENT_TYPE), ("x-amz-target", target)].into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        let (headers, _params) = instructions.into_parts();
        Ok(headers
            .into_iter()
            .map(|h| (h.name(), h.value().to_string(), h.sensitive()))
            .collect())
    }
}

/// The error code from `__type` (`ns#Code` → `Code`), else `x-amzn-ErrorType`, else `code`.
fn parse_error(body: Option<&serde_json::Value>, header: Option<&str>) -> AwsError {
    let field = |name: &str| {
        body.and_then(|b| b.get(name))
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    };
    let raw = field("__type")
        .or_else(|| header.map(|h| h.split(':').next().unwrap_or(h).to_string()))
        .or_else(|| field("code"))
        .unwrap_or_default();
    let code = raw.rsplit('#').next().unwrap_or(&raw).to_string();
    let message = field("message")
        .or_else(|| field("Message"))
        .unwrap_or_default();
    AwsError { code, message }
}

/// What to do after a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Temporary: retry later.
    Retry,
    /// The group or stream is missing.
    Missing,
    /// The credentials expired: refresh and resend.
    Expired,
    /// The credentials or permissions are wrong: permanent, logged loudly.
    Auth,
    /// Resending will not help.
    Permanent,
    /// The data was already accepted (older API versions).
    AlreadyAccepted,
}

/// Judges a failed reply.
pub fn judge(reply: &ApiReply) -> Verdict {
    let Some(status) = reply.status else {
        return Verdict::Retry;
    };
    match reply.code() {
        "ResourceNotFoundException" => Verdict::Missing,
        "ExpiredTokenException" | "ExpiredToken" | "TokenRefreshRequired" => Verdict::Expired,
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "MissingAuthenticationTokenException"
        | "MissingAuthenticationToken"
        | "NotAuthorized" => Verdict::Auth,
        "ThrottlingException"
        | "Throttling"
        | "ServiceUnavailableException"
        | "ServiceUnavailable"
        | "LimitExceededException"
        | "RequestExpired"
        | "RequestTimeout"
        | "RequestTimeoutException"
        | "InternalFailure" => Verdict::Retry,
        "DataAlreadyAcceptedException" => Verdict::AlreadyAccepted,
        _ if status == 429 || status == 408 || status >= 500 => Verdict::Retry,
        _ => Verdict::Permanent,
    }
}

/// What to check for a failed call, by error code.
pub fn hint_for(code: &str, url: &str) -> Option<String> {
    Some(match code {
        "UnrecognizedClientException" | "InvalidClientTokenId" | "InvalidSignatureException"
        | "IncompleteSignature" | "MissingAuthenticationTokenException" => format!(
            "AWS did not accept the credentials: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, the profile (AWS_PROFILE) or the role, and that the region matches {url}"
        ),
        "AccessDeniedException" => "the AWS identity lacks permission: allow logs:PutLogEvents, logs:CreateLogGroup and logs:CreateLogStream on the log group".to_string(),
        "ExpiredTokenException" => "the AWS session token expired and could not be refreshed: renew the credentials".to_string(),
        "ResourceNotFoundException" => "the log group or stream does not exist: create it or set create_missing: true".to_string(),
        "InvalidParameterException" => "CloudWatch Logs refused the request's parameters: check log_group and log_stream names".to_string(),
        "ThrottlingException" => "CloudWatch Logs is throttling: lower the rate or ask AWS for a higher quota".to_string(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> ApiReply {
        let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
        ApiReply {
            status: Some(status),
            text: body.into(),
            error: Some(parse_error(parsed.as_ref(), None)),
            body: parsed,
            retry_after: None,
        }
    }

    #[test]
    fn error_codes_are_judged() {
        let cases = [
            (
                400,
                r#"{"__type":"com.amazonaws.logs#ThrottlingException","message":"Rate exceeded"}"#,
                Verdict::Retry,
            ),
            (
                500,
                r#"{"__type":"ServiceUnavailableException"}"#,
                Verdict::Retry,
            ),
            (502, "<html>bad gateway</html>", Verdict::Retry),
            (
                400,
                r#"{"__type":"ResourceNotFoundException","message":"The specified log group does not exist."}"#,
                Verdict::Missing,
            ),
            (
                400,
                r#"{"__type":"ExpiredTokenException","message":"The security token included in the request is expired"}"#,
                Verdict::Expired,
            ),
            (400, r#"{"__type":"AccessDeniedException"}"#, Verdict::Auth),
            (
                400,
                r#"{"__type":"UnrecognizedClientException"}"#,
                Verdict::Auth,
            ),
            (
                400,
                r#"{"__type":"InvalidParameterException","message":"Log events in a single PutLogEvents request must be in chronological order."}"#,
                Verdict::Permanent,
            ),
        ];
        for (status, body, verdict) in cases {
            assert_eq!(judge(&reply(status, body)), verdict, "{body}");
        }
        let throttled = reply(400, cases[0].1);
        assert_eq!(throttled.code(), "ThrottlingException");
        assert_eq!(
            throttled.describe(),
            "HTTP 400 ThrottlingException: Rate exceeded"
        );
        let header_only = parse_error(
            None,
            Some("AccessDeniedException:http://internal.amazon.com/"),
        );
        assert_eq!(header_only.code, "AccessDeniedException");
        assert!(
            hint_for("AccessDeniedException", "u")
                .unwrap()
                .contains("logs:PutLogEvents")
        );
    }
}
